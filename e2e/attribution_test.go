package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/auditlog"
	"github.com/tamperguard/tamperguard/internal/demo"
	"github.com/tamperguard/tamperguard/internal/slackfake"
)

// fakeLoggingAPI answers entries:list with the entries it was given, as the Logging API's
// JSON: the client checks every entry again, so it needs no filter.
type fakeLoggingAPI struct {
	mu       sync.Mutex
	entries  []json.RawMessage
	requests int
}

func (l *fakeLoggingAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v2/entries:list" {
		http.Error(w, `{"error":{"code":404,"message":"not found","status":"NOT_FOUND"}}`, http.StatusNotFound)
		return
	}
	l.mu.Lock()
	l.requests++
	body, _ := json.Marshal(map[string]any{"entries": l.entries})
	l.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// add records the Data Access entry of a write of object at written: the real entry's shape
// (internal/auditlog/testdata/data-write-create.json) with the name and time changed.
func (l *fakeLoggingAPI) add(t *testing.T, object string, written time.Time) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "internal", "auditlog", "testdata", "data-write-create.json"))
	require.NoError(t, err)
	var e map[string]any
	require.NoError(t, json.Unmarshal(raw, &e))
	e["timestamp"] = written.UTC().Format(time.RFC3339Nano)
	e["resource"].(map[string]any)["labels"].(map[string]any)["bucket_name"] = bucket
	e["protoPayload"].(map[string]any)["resourceName"] = auditlog.ResourceName(bucket, object)
	out, err := json.Marshal(e)
	require.NoError(t, err)
	l.mu.Lock()
	l.entries = append(l.entries, out)
	l.mu.Unlock()
}

// TestTamperingAlertNamesTheWriter: through the emulator stack (fake-gcs-server publishing
// to the Pub/Sub emulator, tamperguard watch pulling), a tampering's decision and its Slack
// alert name the principal and the service account key that wrote it, read from a Logging
// API (TAMPERGUARD_LOGGING_ENDPOINT) that holds the write's Data Access entry.
func TestTamperingAlertNamesTheWriter(t *testing.T) {
	if testing.Short() || os.Getenv("TAMPERGUARD_SLOW_TESTS") == "" {
		t.Skip("SKIPPED: attribution end to end builds and runs fake-gcs-server, pubsub-emulator and tamperguard as processes; set TAMPERGUARD_SLOW_TESTS=1 to run it (CI does), not under -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bins, err := demo.Build(ctx, dir)
	require.NoError(t, err)
	stack, err := demo.StartEmulators(ctx, bins, demo.StackOptions{
		Project: "tamperguard-local", Topic: "gcs-events", Subscription: "tamperguard-watch",
		Buckets: []string{bucket, stateBucket}, EventBucket: bucket,
	})
	require.NoError(t, err)
	defer stack.Close()

	rel, err := demo.NewRelease(dir, "v1.0.0", demo.ScriptName, demo.Script(0))
	require.NoError(t, err)
	cfg := filepath.Join(dir, "tamperguard.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(rel.Config(bucket, demo.ScriptName, stateBucket)), 0o644))

	logs := &fakeLoggingAPI{}
	logsSrv := httptest.NewServer(logs)
	defer logsSrv.Close()
	sf := slackfake.New(t, slackfake.Options{})

	watch, err := demo.Start("tamperguard watch", bins.Tamperguard,
		[]string{"watch", "--config", cfg, "--subscription", stack.SubscriptionPath()},
		append(stack.Env(),
			"TAMPERGUARD_AUDIT_LOGS=projects/tamperguard-local",
			"TAMPERGUARD_LOGGING_ENDPOINT="+logsSrv.URL,
			"TAMPERGUARD_DEPLOYMENT=e2e-downloads",
			"SLACK_BOT_TOKEN="+sf.Token(), "SLACK_CHANNEL=C0TAMPERGD", "SLACK_API_URL="+sf.Endpoints().API,
		), nil)
	require.NoError(t, err)
	defer watch.Stop(5 * time.Second)
	_, _, err = watch.WaitStderr(ctx, demo.ReadyLine, 0)
	require.NoError(t, err, "watch stderr:\n%s", watch.Stderr)
	assert.Contains(t, watch.Stderr.String(), "on: projects/tamperguard-local through "+logsSrv.URL, "the startup line says attribution is on")

	gen1, err := stack.Upload(ctx, bucket, demo.ScriptName, rel.Script)
	require.NoError(t, err)
	_, _, err = watch.WaitStdout(ctx, lineFor(gen1), 0)
	require.NoError(t, err, "watch stderr:\n%s", watch.Stderr)

	// The attacker's upload, and its Data Access entry (stamped when the request began).
	logs.add(t, demo.ScriptName, time.Now())
	gen2, err := stack.Upload(ctx, bucket, demo.ScriptName, demo.Tampered(rel.Script))
	require.NoError(t, err)
	m, _, err := watch.WaitStdout(ctx, lineFor(gen2), 0)
	require.NoError(t, err, "watch stderr:\n%s", watch.Stderr)
	var d struct {
		Verdict   string               `json:"verdict"`
		Action    string               `json:"action"`
		WrittenBy auditlog.Attribution `json:"written_by"`
	}
	require.NoError(t, json.Unmarshal([]byte(m[1]), &d), m[1])
	assert.Equal(t, "tampered", d.Verdict)
	assert.Equal(t, "restored", d.Action)
	assert.Equal(t, auditlog.StatusFound, d.WrittenBy.Status, m[1])
	require.NotNil(t, d.WrittenBy.WrittenBy, m[1])
	assert.Equal(t, "ci-uploader@example-project.iam.gserviceaccount.com", d.WrittenBy.WrittenBy.Principal)
	assert.Equal(t, "exact", d.WrittenBy.Confidence)

	msgs, err := sf.WaitMessages(ctx, 1)
	require.NoError(t, err)
	var alert string
	for _, msg := range msgs {
		if strings.Contains(msg.Text, "Tampered object restored") {
			alert = string(msg.Blocks)
		}
	}
	require.NotEmpty(t, alert, "the alert reached Slack")
	assert.Regexp(t, regexp.MustCompile("\\*Written by\\* `ci-uploader@\u200bexample-project\\.iam\\.gserviceaccount\\.com`"), alert, "the principal, under the title")
	assert.Contains(t, alert, "service account key `c71e040fb4b71d798ce4baca14e15ab62115aaef`", "and the key")
	assert.Contains(t, alert, "deployment `e2e-downloads`")
	require.NoError(t, watch.Stop(10*time.Second))
}
