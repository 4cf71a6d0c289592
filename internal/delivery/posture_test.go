package delivery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"cloud.google.com/go/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/alerting"
	"github.com/tamperguard/tamperguard/internal/delivery"
	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/gcs"
	"github.com/tamperguard/tamperguard/internal/policy"
	"github.com/tamperguard/tamperguard/internal/posture"
	"github.com/tamperguard/tamperguard/internal/posture/posturetest"
	"github.com/tamperguard/tamperguard/internal/slackfake"
)

const project = posturetest.Project

// expectedNotification is the config the module creates on the watched bucket.
var expectedNotification = &policy.PostureNotification{TopicProject: project, Topic: "tamperguard-events",
	EventTypes:    []string{"OBJECT_FINALIZE", "OBJECT_METADATA_UPDATE", "OBJECT_DELETE", "OBJECT_ARCHIVE"},
	PayloadFormat: "JSON_API_V1"}

// guarded is a stack with posture checks whose record is kept in the state bucket, alerting
// to a Slack stand-in.
type guarded struct {
	*stack
	front *posturetest.Front
	slack *slackfake.Server
	log   *bytes.Buffer
}

// loadGate holds the first posture record load of each of two instances until both have
// loaded: they then judge the same change from the same record, and race to save it.
type loadGate struct {
	mu    sync.Mutex
	armed bool
	n     int
	both  chan struct{}
}

func (g *loadGate) arm() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.armed, g.n, g.both = true, 0, make(chan struct{})
}

func (g *loadGate) wait(ctx context.Context) {
	g.mu.Lock()
	if !g.armed {
		g.mu.Unlock()
		return
	}
	g.n++
	both := g.both
	if g.n == 2 {
		close(g.both)
		g.armed = false
	}
	g.mu.Unlock()
	select {
	case <-both:
	case <-ctx.Done():
	}
}

type gatedStore struct {
	posture.Store
	gate *loadGate
}

func (s gatedStore) Load(ctx context.Context, b string) (posture.Record, string, error) {
	rec, v, err := s.Store.Load(ctx, b)
	s.gate.wait(ctx)
	return rec, v, err
}

func newGuarded(t *testing.T, sf *slackfake.Server, reuse *stack, gate ...*loadGate) *guarded {
	t.Helper()
	if sf == nil {
		sf = slackfake.New(t, slackfake.Options{})
	}
	out := &bytes.Buffer{}
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&mu, out}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var s *stack
	mk := func(front *posturetest.Front, store engine.Store) delivery.Options {
		var st posture.Store = delivery.NewStatePostureStore(store, stateBucket, logger)
		if len(gate) > 0 {
			st = gatedStore{st, gate[0]}
		}
		checker, err := posture.New(front.Client, st,
			delivery.PostureConfig(&policy.Posture{Project: project, Bucket: bucket, Notification: expectedNotification}))
		require.NoError(t, err)
		return delivery.Options{Posture: checker, PostureBucket: bucket, Logger: logger, FollowUps: []time.Duration{}}
	}
	var front *posturetest.Front
	if reuse != nil {
		// Another instance of the same deployment: the same buckets, its own runtime.
		front = posturetest.New(t, reuse.srv.URL, bucket)
		notifier, err := alerting.NewSlack(alerting.Options{Token: sf.Token(), Channel: "C0TAMPERGD", APIURL: sf.Endpoints().API,
			Threads: alerting.NewStateThreads(gcs.New(reuse.srv.Client), stateBucket)})
		require.NoError(t, err)
		o := mk(front, gcs.New(reuse.srv.Client))
		o.Policy, o.Store, o.Notifier = reuse.svc.Policy(), gcs.New(reuse.srv.Client), notifier
		svc, err := delivery.New(o)
		require.NoError(t, err)
		s = &stack{t: t, srv: reuse.srv, svc: svc, good: reuse.good}
	} else {
		s = newStack(t, nil, delivery.Options{})
		front = posturetest.New(t, s.srv.URL, bucket)
		notifier, err := alerting.NewSlack(alerting.Options{Token: sf.Token(), Channel: "C0TAMPERGD", APIURL: sf.Endpoints().API,
			Threads: alerting.NewStateThreads(gcs.New(s.srv.Client), stateBucket)})
		require.NoError(t, err)
		o := mk(front, gcs.New(s.srv.Client))
		o.Policy, o.Store, o.Notifier = s.svc.Policy(), gcs.New(s.srv.Client), notifier
		svc, err := delivery.New(o)
		require.NoError(t, err)
		s.svc = svc
		// The module's notification config, and the signed script in place.
		_, err = s.srv.Client.Bucket(bucket).AddNotification(context.Background(), &storage.Notification{
			TopicProjectID: project, TopicID: "tamperguard-events", EventTypes: expectedNotification.EventTypes, PayloadFormat: storage.JSONPayload})
		require.NoError(t, err)
		s.put("install.sh", s.good)
	}
	t.Cleanup(func() { _ = s.svc.Close() })
	return &guarded{stack: s, front: front, slack: sf, log: out}
}

func auditRequest(id string) delivery.Request {
	return delivery.Request{Type: delivery.TypeMessagePublished, ID: id, Audit: true, Event: engine.Event{ID: id, Time: time.Now()}}
}

func (g *guarded) setVersioning(on bool) {
	g.t.Helper()
	_, err := g.srv.Client.Bucket(bucket).Update(context.Background(), storage.BucketAttrsToUpdate{VersioningEnabled: on})
	require.NoError(g.t, err)
}

// postureLines are the posture lines logged, as JSON objects.
func (g *guarded) postureLines(check string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(g.log.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["kind"] == "posture" && m["check"] == check {
			out = append(out, m)
		}
	}
	return out
}

// Every audit checks the bucket's posture; turning versioning off raises exactly one alert
// (and one line saying it is new), however many audits see it; turning it back on is one
// "Recovered" reply in the same thread.
func TestAuditChecksPostureOncePerChange(t *testing.T) {
	g := newGuarded(t, nil, nil)
	out := g.svc.Deliver(context.Background(), auditRequest("audit-1"))
	require.True(t, out.Ack, out.Error())
	require.Len(t, g.postureLines(posture.CheckVersioning), 1, g.log.String())
	assert.Equal(t, "ok", g.postureLines(posture.CheckVersioning)[0]["status"])
	assert.Empty(t, g.slack.Messages(), "a healthy baseline alerts nobody")

	g.setVersioning(false)
	for i := range 3 {
		out = g.svc.Deliver(context.Background(), auditRequest("audit-"+string(rune('2'+i))))
		require.True(t, out.Ack, out.Error())
	}
	msgs := g.slack.Messages()
	require.Len(t, msgs, 1, "one alert per change")
	assert.Contains(t, msgs[0].Text, "GUARD DOWN")
	assert.Contains(t, msgs[0].Text, "Object versioning is off")
	lines := g.postureLines(posture.CheckVersioning)
	require.Len(t, lines, 4)
	assert.Equal(t, []any{"failing", true}, []any{lines[1]["status"], lines[1]["new"]})
	assert.Equal(t, []any{"failing", false}, []any{lines[3]["status"], lines[3]["new"]}, "still failing, reported again, not new")
	assert.Equal(t, "ERROR", lines[3]["level"])

	g.setVersioning(true)
	require.True(t, g.svc.Deliver(context.Background(), auditRequest("audit-5")).Ack)
	msgs = g.slack.Messages()
	require.Len(t, msgs, 2)
	assert.Contains(t, msgs[1].Text, "Recovered")
	assert.Equal(t, msgs[0].TS, msgs[1].ThreadTS, "threaded under the check's first alert")
}

// Two instances that see the same change alert once: the record in the state bucket is
// saved with a precondition.
func TestPostureChangeAlertsOnceAcrossInstances(t *testing.T) {
	sf := slackfake.New(t, slackfake.Options{})
	gate := &loadGate{}
	a := newGuarded(t, sf, nil, gate)
	b := newGuarded(t, sf, a.stack, gate)
	require.True(t, a.svc.Deliver(context.Background(), auditRequest("audit-a1")).Ack)
	a.setVersioning(false)
	gate.arm()
	var wg sync.WaitGroup
	for _, g := range []*guarded{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := g.svc.Deliver(context.Background(), auditRequest("audit-both"))
			assert.True(t, out.Ack, out.Error())
		}()
	}
	wg.Wait()
	msgs := sf.Messages()
	require.Equal(t, 1, len(msgs), "one alert for the deployment")
	assert.Contains(t, msgs[0].Text, "GUARD DOWN")
}

// adminActivity is internal/auditlog/testdata/admin-activity-bucket-update.json about b, as
// the posture route's log sink publishes it.
func adminActivity(t *testing.T, b, logID string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "auditlog", "testdata", "admin-activity-bucket-update.json"))
	require.NoError(t, err)
	var e map[string]any
	require.NoError(t, json.Unmarshal(raw, &e))
	e["resource"].(map[string]any)["labels"].(map[string]any)["bucket_name"] = b
	e["protoPayload"].(map[string]any)["resourceName"] = "projects/_/buckets/" + b
	if logID != "" {
		e["logName"] = "projects/example-project/logs/" + logID
	}
	out, err := json.Marshal(e)
	require.NoError(t, err)
	return out
}

// The posture route: an Admin Activity entry of the watched bucket checks its posture at
// once (one alert); one about another bucket, or a Data Access entry, is acknowledged
// without a check.
func TestAdminActivityEntryChecksPostureNow(t *testing.T) {
	g := newGuarded(t, nil, nil)
	require.True(t, g.svc.Deliver(context.Background(), auditRequest("audit-1")).Ack)
	checks := g.front.IAMReads.Load()

	deliver := func(data []byte) delivery.Outcome {
		req, err := delivery.DecodeMessage("m-1", map[string]string{"logging.googleapis.com/timestamp": time.Now().UTC().Format(time.RFC3339Nano)}, data, time.Now())
		require.NoError(t, err)
		require.NotNil(t, req.Posture)
		return g.svc.Deliver(context.Background(), req)
	}
	out := deliver(adminActivity(t, "another-bucket", ""))
	assert.Equal(t, "unsupported", out.Why)
	out = deliver(adminActivity(t, bucket, "cloudaudit.googleapis.com%2Fdata_access"))
	assert.Equal(t, "unsupported", out.Why)
	assert.Equal(t, checks, g.front.IAMReads.Load(), "no check for those")
	assert.Contains(t, g.log.String(), "not a Cloud Storage Admin Activity entry")
	assert.Contains(t, g.log.String(), "not about the watched bucket")

	g.setVersioning(false)
	out = deliver(adminActivity(t, bucket, ""))
	require.True(t, out.Ack, out.Error())
	assert.Equal(t, checks+1, g.front.IAMReads.Load(), "checked now")
	msgs := g.slack.Messages()
	require.Len(t, msgs, 1)
	assert.Contains(t, msgs[0].Text, "GUARD DOWN")
	assert.Contains(t, g.log.String(), `"trigger":"admin_activity"`)
}

// Without a posture: section an entry of the posture route is acknowledged with a line.
func TestAdminActivityEntryWithoutPostureSection(t *testing.T) {
	var buf bytes.Buffer
	s := newStack(t, nil, delivery.Options{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	req, err := delivery.DecodeMessage("m-1", nil, adminActivity(t, bucket, ""), time.Now())
	require.NoError(t, err)
	out := s.svc.Deliver(context.Background(), req)
	assert.True(t, out.Ack)
	assert.Equal(t, "unsupported", out.Why)
	assert.Contains(t, buf.String(), "the configuration has no posture: section")
}

// The state bucket's record: created with DoesNotExist, replaced on the version it was read
// at, and a lost race is posture.ErrConflict.
func TestStatePostureStore(t *testing.T) {
	s := newStack(t, nil, delivery.Options{})
	st := delivery.NewStatePostureStore(gcs.New(s.srv.Client), stateBucket, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	rec, v, err := st.Load(ctx, bucket)
	require.NoError(t, err)
	assert.Empty(t, v)
	assert.Empty(t, rec.Checks)

	one := posture.Record{Checks: map[string]posture.CheckRecord{"versioning": {Baseline: "enabled", Last: "enabled"}}}
	v1, err := st.Save(ctx, bucket, one, "")
	require.NoError(t, err)
	_, err = st.Save(ctx, bucket, one, "")
	assert.ErrorIs(t, err, posture.ErrConflict, "a second creation loses")
	two := posture.Record{Checks: map[string]posture.CheckRecord{"versioning": {Baseline: "enabled", Last: "disabled"}}}
	v2, err := st.Save(ctx, bucket, two, v1)
	require.NoError(t, err)
	_, err = st.Save(ctx, bucket, one, v1)
	assert.ErrorIs(t, err, posture.ErrConflict, "a save from a stale read loses")
	rec, v, err = st.Load(ctx, bucket)
	require.NoError(t, err)
	assert.Equal(t, v2, v)
	assert.Equal(t, "disabled", rec.Checks["versioning"].Last)

	// A record that is not one: a new baseline, replaced by the next save.
	w := s.srv.Client.Bucket(stateBucket).Object("posture/" + bucket + ".json").NewWriter(ctx)
	_, _ = io.WriteString(w, "not json")
	require.NoError(t, w.Close())
	rec, v, err = st.Load(ctx, bucket)
	require.NoError(t, err)
	assert.Empty(t, rec.Checks)
	_, err = st.Save(ctx, bucket, one, v)
	require.NoError(t, err)
}

// countingChecker counts checks and holds each until released.
type countingChecker struct {
	calls   atomic.Int32
	release chan struct{}
}

func (c *countingChecker) Check(ctx context.Context) (posture.Report, error) {
	c.calls.Add(1)
	select {
	case <-c.release:
	case <-ctx.Done():
		return posture.Report{}, ctx.Err()
	}
	return posture.Report{Bucket: bucket}, nil
}

// A burst of Admin Activity entries makes two checks, not one each: those that arrive while
// a check runs share the next one.
func TestPostureChecksCoalesce(t *testing.T) {
	s := newStack(t, nil, delivery.Options{})
	synctest.Test(t, func(t *testing.T) {
		c := &countingChecker{release: make(chan struct{})}
		svc, err := delivery.New(delivery.Options{Policy: s.svc.Policy(), Store: gcs.New(s.srv.Client), Posture: c, PostureBucket: bucket,
			Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = svc.CheckPosture(context.Background()) }()
		synctest.Wait()
		require.Equal(t, int32(1), c.calls.Load())
		for range 9 {
			wg.Add(1)
			go func() { defer wg.Done(); _, _ = svc.CheckPosture(context.Background()) }()
		}
		synctest.Wait()
		c.release <- struct{}{} // the first check ends; one of the nine starts the next
		synctest.Wait()
		c.release <- struct{}{}
		wg.Wait()
		assert.Equal(t, int32(2), c.calls.Load())
		require.NoError(t, svc.Close())
	})
}

// The posture route's messages are LogEntry JSON without a notification's attributes: they
// decode, through a pull or a push (CloudEvent), to a posture request; anything else without
// an eventType is still malformed.
func TestDecodeAuditLogEntry(t *testing.T) {
	data := adminActivity(t, bucket, "")
	attrs := map[string]string{"logging.googleapis.com/timestamp": "2021-01-31T13:58:02.489531Z"}
	req, err := delivery.DecodeMessage("m-1", attrs, data, time.Now())
	require.NoError(t, err)
	require.NotNil(t, req.Posture)
	assert.True(t, req.Posture.AdminActivity())
	assert.Equal(t, bucket, req.Posture.Bucket)
	assert.Equal(t, "storage.buckets.update", req.Posture.Method)

	fromCE, err := delivery.DecodeCloudEvent(pubsubCE(attrs, data, nil))
	require.NoError(t, err)
	require.NotNil(t, fromCE.Posture)
	assert.Equal(t, req.Posture, fromCE.Posture)

	_, err = delivery.DecodeMessage("m-2", nil, []byte(`{"hello":"world"}`), time.Now())
	var de *delivery.DecodeError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, "message.attributes.eventType", de.Field)
	assert.Contains(t, de.Problem, "not a Cloud Storage notification")
}
