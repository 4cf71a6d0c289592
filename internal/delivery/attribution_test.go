package delivery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/alerting"
	"github.com/tamperguard/tamperguard/internal/auditlog"
	"github.com/tamperguard/tamperguard/internal/delivery"
	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/slackfake"
)

// fakeClock is the Logging API client's clock and the follow-ups' sleeper: a sleep
// advances it at once.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
	return nil
}

// loggingAPI answers entries:list as the Logging API does, with the entries that have
// "arrived" by the fake clock, unfiltered: the client checks every entry itself.
type loggingAPI struct {
	t     *testing.T
	clock *fakeClock
	srv   *httptest.Server

	mu       sync.Mutex
	entries  []arrival
	status   int           // answer every request with this status when set
	hold     chan struct{} // when set, requests wait for it (or their end)
	requests atomic.Int32
}

type arrival struct {
	raw json.RawMessage
	at  time.Time
}

func newLoggingAPI(t *testing.T, clock *fakeClock) *loggingAPI {
	l := &loggingAPI{t: t, clock: clock}
	l.srv = httptest.NewServer(http.HandlerFunc(l.serve))
	t.Cleanup(l.srv.Close)
	return l
}

func (l *loggingAPI) serve(w http.ResponseWriter, r *http.Request) {
	l.requests.Add(1)
	if r.Method != http.MethodPost || r.URL.Path != "/v2/entries:list" {
		http.Error(w, `{"error":{"code":404,"message":"not found","status":"NOT_FOUND"}}`, http.StatusNotFound)
		return
	}
	l.mu.Lock()
	status, hold := l.status, l.hold
	l.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if status != 0 {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"error":{"code":403,"message":"Permission denied for all log views","status":"PERMISSION_DENIED"}}`))
		return
	}
	now := l.clock.now()
	var out []json.RawMessage
	l.mu.Lock()
	for _, e := range l.entries {
		if !now.Before(e.at) {
			out = append(out, e.raw)
		}
	}
	l.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]any{"entries": out})
}

// add makes an entry of the write of object at written, readable from arrives on.
func (l *loggingAPI) add(object string, written, arrives time.Time) {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, arrival{raw: dataWriteEntry(l.t, bucket, object, written), at: arrives})
}

// dataWriteEntry is internal/auditlog/testdata/data-write-create.json about bucket/object
// at written.
func dataWriteEntry(t testing.TB, bucket, object string, written time.Time) json.RawMessage {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "auditlog", "testdata", "data-write-create.json"))
	require.NoError(t, err)
	var e map[string]any
	require.NoError(t, json.Unmarshal(raw, &e))
	e["timestamp"] = written.UTC().Format(time.RFC3339Nano)
	e["resource"].(map[string]any)["labels"].(map[string]any)["bucket_name"] = bucket
	e["protoPayload"].(map[string]any)["resourceName"] = auditlog.ResourceName(bucket, object)
	out, err := json.Marshal(e)
	require.NoError(t, err)
	return out
}

const (
	principal = "ci-uploader@example-project.iam.gserviceaccount.com"
	keyID     = "c71e040fb4b71d798ce4baca14e15ab62115aaef"
)

// attributed is a stack whose runtime reads who wrote it from a Logging API, and alerts to a
// Slack stand-in.
type attributed struct {
	*stack
	clock *fakeClock
	logs  *loggingAPI
	slack *slackfake.Server
	out   *bytes.Buffer
}

func newAttributed(t *testing.T, o delivery.Options) *attributed {
	t.Helper()
	clock := &fakeClock{t: time.Now()}
	logs := newLoggingAPI(t, clock)
	client, err := auditlog.New(context.Background(), "projects/example-project",
		auditlog.WithEndpoint(logs.srv.URL), auditlog.WithClock(clock.now, clock.sleep), auditlog.WithRetry(delivery.DefaultAttributionRetry...))
	require.NoError(t, err)
	sf := slackfake.New(t, slackfake.Options{})
	notifier, err := alerting.NewSlack(alerting.Options{Token: sf.Token(), Channel: "C0TAMPERGD", APIURL: sf.Endpoints().API})
	require.NoError(t, err)
	out := &bytes.Buffer{}
	var mu sync.Mutex
	o.Attribution, o.AttributionFrom = client, "projects/example-project"
	o.Sleep = clock.sleep
	o.DecisionLogger = slog.New(slog.NewJSONHandler(lockedWriter{&mu, out}, nil))
	s := newStack(t, notifier, o)
	t.Cleanup(func() { _ = s.svc.Close() })
	return &attributed{stack: s, clock: clock, logs: logs, slack: sf, out: out}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// created is the creation time of the live generation of object.
func (s *stack) created(object string) time.Time {
	s.t.Helper()
	a, err := s.srv.Client.Bucket(bucket).Object(object).Attrs(context.Background())
	require.NoError(s.t, err)
	return a.Created
}

// A tampering's alert and decision line name the principal and the key that wrote it, from
// the write's Data Access entry.
func TestTamperingAlertNamesWhoWroteIt(t *testing.T) {
	a := newAttributed(t, delivery.Options{})
	a.put("install.sh", a.good)
	gen := a.put("install.sh", append(append([]byte(nil), a.good...), injected...))
	a.logs.add("install.sh", a.created("install.sh").Add(-300*time.Millisecond), time.Time{})

	out := a.svc.Deliver(context.Background(), finalize("install.sh", gen))
	require.True(t, out.Ack, out.Error())

	msgs := a.slack.Messages()
	require.Len(t, msgs, 1)
	assert.Contains(t, string(msgs[0].Blocks), "*Written by* `ci-uploader@")
	assert.Contains(t, string(msgs[0].Blocks), "service account key `"+keyID+"`")

	line := a.decisionLine(t, gen)
	wb := line["written_by"].(map[string]any)
	assert.Equal(t, "found", wb["status"])
	assert.Equal(t, "exact", wb["confidence"])
	assert.Equal(t, principal, wb["written_by"].(map[string]any)["principal"])
	assert.Contains(t, wb["written_by"].(map[string]any)["service_account_key"], keyID)
	assert.Equal(t, "203.0.113.7", wb["written_by"].(map[string]any)["caller_ip"])
}

// decisionLine is the decision line about generation gen.
func (a *attributed) decisionLine(t *testing.T, gen int64) map[string]any {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSpace(a.out.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		if g, ok := m["generation"].(float64); ok && int64(g) == gen && m["verdict"] != nil {
			return m
		}
	}
	t.Fatalf("no decision line about generation %d in:\n%s", gen, a.out.String())
	return nil
}

// A writer not yet in the audit logs: the alert says so, and once the entry arrives the
// writer is posted as a reply in the alert's thread.
func TestWriterNotYetLoggedFollowsInTheThread(t *testing.T) {
	a := newAttributed(t, delivery.Options{})
	a.put("install.sh", a.good)
	gen := a.put("install.sh", append(append([]byte(nil), a.good...), injected...))
	// Readable 45 s after now: after the first look (about 3 s), before the second follow-up.
	a.logs.add("install.sh", a.created("install.sh"), a.clock.now().Add(45*time.Second))

	out := a.svc.Deliver(context.Background(), finalize("install.sh", gen))
	require.True(t, out.Ack, out.Error())
	msgs := a.slack.Messages()
	require.GreaterOrEqual(t, len(msgs), 1)
	assert.Contains(t, string(msgs[0].Blocks), "not yet in audit logs — will follow in this thread")
	assert.Equal(t, "pending", a.decisionLine(t, gen)["written_by"].(map[string]any)["status"])

	got, err := a.slack.WaitMessages(context.Background(), 2)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, got[0].TS, got[1].ThreadTS, "the follow-up is a reply in the alert's thread")
	assert.Contains(t, string(got[1].Blocks), keyID)
	assert.Contains(t, got[1].Text, "Who made the tampered write: found in Cloud Audit Logs")
	assert.Equal(t, int32(5), a.logs.requests.Load(), "three queries for the first look, then one a follow-up until found")
}

// Without TAMPERGUARD_AUDIT_LOGS attribution is off: the decision and the alert say so.
func TestAttributionOff(t *testing.T) {
	sf := slackfake.New(t, slackfake.Options{})
	notifier, err := alerting.NewSlack(alerting.Options{Token: sf.Token(), Channel: "C0TAMPERGD", APIURL: sf.Endpoints().API})
	require.NoError(t, err)
	var d *engine.Decision
	s := newStack(t, notifier, delivery.Options{Report: func(x *engine.Decision) { cp := *x; d = &cp }})
	s.put("install.sh", s.good)
	gen := s.put("install.sh", append(append([]byte(nil), s.good...), injected...))
	require.True(t, s.svc.Deliver(context.Background(), finalize("install.sh", gen)).Ack)
	require.NotNil(t, d)
	require.NotNil(t, d.WrittenBy)
	assert.Equal(t, auditlog.StatusOff, d.WrittenBy.Status)
	assert.Contains(t, string(sf.Messages()[0].Blocks), "attribution is off")
	assert.Contains(t, s.svc.Attribution(), "off: TAMPERGUARD_AUDIT_LOGS is not set")
}

// A Logging API that refuses: the alert says the logs could not be read, and nobody looks
// again (a permission does not fix itself).
func TestAttributionRefused(t *testing.T) {
	a := newAttributed(t, delivery.Options{})
	a.logs.status = http.StatusForbidden
	a.put("install.sh", a.good)
	gen := a.put("install.sh", append(append([]byte(nil), a.good...), injected...))
	require.True(t, a.svc.Deliver(context.Background(), finalize("install.sh", gen)).Ack)
	wb := a.decisionLine(t, gen)["written_by"].(map[string]any)
	assert.Equal(t, "unavailable", wb["status"])
	assert.Contains(t, wb["note"], "not allowed to read the audit logs")
	require.NoError(t, a.svc.Close())
	assert.Len(t, a.slack.Messages(), 1, "no follow-up")
	assert.Equal(t, int32(1), a.logs.requests.Load())
}

// The lookup happens outside the work slot: with one slot and the Logging API hanging,
// another object's tampering is restored meanwhile.
func TestLookupDoesNotHoldTheWorkSlot(t *testing.T) {
	a := newAttributed(t, delivery.Options{Concurrency: 1, AttributionTimeout: time.Minute})
	hold := make(chan struct{})
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(hold) }) }) // before the server closes
	a.logs.hold = hold
	bad := append(append([]byte(nil), a.good...), injected...)
	a.put("dl/one.sh", a.good)
	a.put("dl/two.sh", a.good)
	g1 := a.put("dl/one.sh", bad)
	g2 := a.put("dl/two.sh", bad)
	first := make(chan delivery.Outcome, 1)
	go func() { first <- a.svc.Deliver(context.Background(), finalize("dl/one.sh", g1)) }()
	require.Eventually(t, func() bool { return a.logs.requests.Load() >= 1 }, 10*time.Second, time.Millisecond, "the first lookup is under way")
	second := make(chan delivery.Outcome, 1)
	go func() { second <- a.svc.Deliver(context.Background(), finalize("dl/two.sh", g2)) }()
	require.Eventually(t, func() bool { return string(a.live("dl/two.sh")) == string(a.good) }, 10*time.Second, time.Millisecond,
		"restored while the first lookup hangs")
	release.Do(func() { close(hold) })
	assert.True(t, (<-first).Ack)
	assert.True(t, (<-second).Ack)
}

// A first look that runs out of time says "not yet in audit logs" and looks again later.
func TestLookupThatRunsOutOfTimeIsPending(t *testing.T) {
	a := newAttributed(t, delivery.Options{AttributionTimeout: 200 * time.Millisecond, FollowUps: []time.Duration{}})
	hold := make(chan struct{})
	defer close(hold)
	a.logs.hold = hold
	a.put("install.sh", a.good)
	gen := a.put("install.sh", append(append([]byte(nil), a.good...), injected...))
	require.True(t, a.svc.Deliver(context.Background(), finalize("install.sh", gen)).Ack)
	wb := a.decisionLine(t, gen)["written_by"].(map[string]any)
	assert.Equal(t, "pending", wb["status"])
	assert.Contains(t, wb["note"], "looked for 200ms")
}

// Build reads attribution and the deployment's name at the edge: TAMPERGUARD_AUDIT_LOGS
// (the log view), TAMPERGUARD_LOGGING_ENDPOINT (without credentials), TAMPERGUARD_DEPLOYMENT
// and the version into every alert; the startup line says what is on.
func TestBuildReadsAttributionAndDeployment(t *testing.T) {
	srv := newStack(t, nil, delivery.Options{}).srv
	clock := &fakeClock{t: time.Now()}
	logs := newLoggingAPI(t, clock)
	sf := slackfake.New(t, slackfake.Options{})
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "tamperguard.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte("state: {bucket: "+stateBucket+"}\n"+`rules:
  - bucket: `+bucket+`
    objects: ["install.sh"]
    release: {git: `+testdata(t, "git", "uploader.git")+`, tag: v1.2.0, entry: install.sh}
    keys: {openpgp: [`+testdata(t, "keys", "maintainer-rsa3072.asc")+`]}
posture:
  project: example-project
  bucket: `+bucket+`
`), 0o644))
	env := map[string]string{
		delivery.EnvAuditLogs: "projects/example-project/locations/global/buckets/tg-audit/views/watched-writes", delivery.EnvLoggingEndpoint: logs.srv.URL,
		delivery.EnvDeployment: "uploader-prod", "SLACK_BOT_TOKEN": sf.Token(), "SLACK_CHANNEL": "C0TAMPERGD", "SLACK_API_URL": sf.Endpoints().API,
	}
	build := func(env map[string]string) (*delivery.Service, error) {
		return delivery.Build(context.Background(), delivery.Env{Getenv: func(k string) string { return env[k] }, ConfigFile: cfgFile,
			StorageClient: func(context.Context) (*storage.Client, func() error, error) { return srv.Client, nil, nil },
			Logger:        slog.New(slog.DiscardHandler), Alerting: true})
	}
	svc, err := build(env)
	require.NoError(t, err)
	defer svc.Close()
	ready := map[string]any{}
	attrs := svc.ReadyAttrs()
	for i := 0; i+1 < len(attrs); i += 2 {
		ready[attrs[i].(string)] = attrs[i+1]
	}
	assert.Equal(t, "on: projects/example-project/locations/global/buckets/tg-audit/views/watched-writes through "+logs.srv.URL, ready["attribution"])
	assert.Equal(t, "on: gs://"+bucket, ready["posture"])
	assert.NotEmpty(t, ready["version"])

	s := &stack{t: t, srv: srv, svc: svc, good: signedScript(t)}
	s.put("install.sh", s.good)
	gen := s.put("install.sh", append(append([]byte(nil), s.good...), injected...))
	logs.add("install.sh", s.created("install.sh"), time.Time{})
	require.True(t, svc.Deliver(context.Background(), finalize("install.sh", gen)).Ack)
	msgs := sf.Messages()
	require.Len(t, msgs, 1)
	blocks := string(msgs[0].Blocks)
	assert.Contains(t, blocks, "service account key `"+keyID+"`")
	assert.Contains(t, blocks, "deployment `uploader-prod`")
	assert.Contains(t, blocks, "From: tamperguard `")

	// Attribution off: said at start; a bad resource: refused, naming the variable.
	delete(env, delivery.EnvAuditLogs)
	svc2, err := build(env)
	require.NoError(t, err)
	defer svc2.Close()
	assert.Contains(t, svc2.Attribution(), "off: TAMPERGUARD_AUDIT_LOGS is not set")
	env[delivery.EnvAuditLogs] = "my-project"
	_, err = build(env)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "TAMPERGUARD_AUDIT_LOGS")
	env[delivery.EnvAuditLogs], env[delivery.EnvLoggingEndpoint] = "projects/example-project", "ftp://user:secret@logs.example"
	_, err = build(env)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "secret")
}
