package function_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/function"
	"github.com/tamperguard/tamperguard/internal/cloudlog"
	"github.com/tamperguard/tamperguard/internal/config"
	"github.com/tamperguard/tamperguard/internal/delivery"
	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/gcs"
	"github.com/tamperguard/tamperguard/internal/gcstest"
	"github.com/tamperguard/tamperguard/internal/gsref"
)

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func ok2xx(t testing.TB, status int, body string) {
	t.Helper()
	assert.True(t, status >= 200 && status < 300, "want 2xx, got %d %q", status, body)
}

func TestTamperedFinalizeRestoredOnceUnderConcurrentDeliveries(t *testing.T) {
	// The restore waits until a delivery has met the incident in progress (or 10 s), so that
	// the deliveries overlap however fast the restore is.
	refused := make(chan struct{})
	var refusedOnce sync.Once
	h := newHarness(t, harnessOpts{wrap: func(s engine.Store) engine.Store {
		return holdCopy{Store: s, bucket: bucket, until: refused}
	}})
	h.put("install.sh", h.good)
	bad := h.put("install.sh", tampered(h.good))
	ev := storageEvent("finalized", "install.sh", bad, time.Now())

	// The same event, delivered five times at once (at-least-once delivery, many instances).
	// A delivery that meets the incident held by another is answered with an error, so
	// Pub/Sub delivers it again; each is redelivered until it is acknowledged.
	var wg sync.WaitGroup
	attempts := make([]int, 5)
	for i := range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for attempts[i] < 50 {
				attempts[i]++
				if status, _ := do(t, ev.request(t, h.url)); status == http.StatusOK {
					return
				}
				refusedOnce.Do(func() { close(refused) })
			}
		}()
	}
	wg.Wait()
	retried := 0
	for _, n := range attempts {
		assert.Less(t, n, 50, "every delivery is acknowledged in the end")
		retried += n - 1
	}
	assert.Positive(t, retried, "the deliveries that met the incident in progress were retried, not acknowledged")

	gen, data := h.live("install.sh")
	assert.Equal(t, h.good, data, "the signed bytes are live again")
	assert.NotEqual(t, bad, gen)
	assert.Equal(t, 3, h.generations("install.sh"), "good, tampered, restored: one restore only")

	restored := 0
	for _, d := range h.notes.all() {
		if d.Action == engine.ActionRestored {
			restored++
		}
	}
	assert.Equal(t, 1, restored, "one alert for the restore")

	// Every delivery logs the tampered object at CRITICAL with the attributes an alert
	// policy and a responder need; exactly one of them restored it.
	crit := h.logs.where(t, "severity", "CRITICAL", "event_id", ev.id)
	require.Len(t, crit, 5, h.logs.String())
	assert.Len(t, h.logs.where(t, "reason", engine.ReasonHeld, "event_id", ev.id), retried, "each retried delivery says why")
	nRestored := 0
	for _, l := range crit {
		assert.Equal(t, "tampered", l["verdict"])
		assert.Equal(t, bucket, l["bucket"])
		assert.Equal(t, "install.sh", l["object"])
		assert.Equal(t, float64(bad), l["generation"])
		assert.Equal(t, "finalize", l["kind"])
		assert.Equal(t, delivery.TypeFinalized, l["event_type"])
		assert.Equal(t, sum(h.good), l["expected_sha256"])
		assert.Equal(t, sum(tampered(h.good)), l["actual_sha256"])
		assert.Equal(t, "v1.2.0", l["release"])
		assert.Regexp(t, "^openpgp:", l["signer"])
		assert.Contains(t, l, "action")
		assert.Contains(t, l, "reason")
		assert.Contains(t, l, "time")
		assert.Contains(t, l["message"], "tampered object")
		if l["action"] == string(engine.ActionRestored) {
			nRestored++
			assert.Equal(t, float64(gen), l["restored_generation"])
		} else {
			assert.Equal(t, string(engine.ReasonDuplicate), l["reason"])
		}
	}
	assert.Equal(t, 1, nRestored)
}

func TestLateEventForAnOlderGenerationDoesNotClobberANewerOne(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	first := h.put("install.sh", h.good)
	bad := h.put("install.sh", tampered(h.good))
	newer := h.put("install.sh", h.good) // a maintainer's upload fixed it before the event arrived

	status, body := h.post(storageEvent("finalized", "install.sh", bad, time.Now()))
	ok2xx(t, status, body)
	gen, data := h.live("install.sh")
	assert.Equal(t, newer, gen, "the newer generation stays live")
	assert.Equal(t, h.good, data)

	lines := h.logs.where(t, "generation", bad, "kind", "finalize")
	require.Len(t, lines, 1, h.logs.String())
	assert.Equal(t, "CRITICAL", lines[0]["severity"], "the tampered bytes were served until replaced")
	assert.Equal(t, string(engine.ActionSkippedNewer), lines[0]["action"])

	// The even older, good generation's late event: verified, nothing written.
	status, body = h.post(storageEvent("finalized", "install.sh", first, time.Now()))
	ok2xx(t, status, body)
	gen, _ = h.live("install.sh")
	assert.Equal(t, newer, gen)
	assert.Equal(t, 3, h.generations("install.sh"))

	// The archive that shadows the overwrite, as a Pub/Sub notification: ignored.
	status, body = h.post(notification("OBJECT_ARCHIVE", "install.sh", bad, time.Now(), map[string]string{"overwrittenByGeneration": strconv.FormatInt(newer, 10)}))
	ok2xx(t, status, body)
	lines = h.logs.where(t, "generation", bad, "kind", "archive")
	require.Len(t, lines, 1, h.logs.String())
	assert.Equal(t, string(engine.ReasonOverwritten), lines[0]["reason"])
	assert.Equal(t, float64(newer), lines[0]["overwritten_by"])
	assert.Equal(t, 3, h.generations("install.sh"))
}

func TestDeletionIsRestored(t *testing.T) {
	t.Run("eventarc archived", func(t *testing.T) {
		h := newHarness(t, harnessOpts{})
		g := h.put("install.sh", h.good)
		h.del("install.sh") // versioned bucket: the live generation becomes noncurrent

		status, body := h.post(storageEvent("archived", "install.sh", g, time.Now()))
		ok2xx(t, status, body)
		gen, data := h.live("install.sh")
		assert.NotZero(t, gen)
		assert.Equal(t, h.good, data)
		lines := h.logs.where(t, "event_id", "archived-install.sh-"+strconv.FormatInt(g, 10))
		require.Len(t, lines, 1, h.logs.String())
		assert.Equal(t, "CRITICAL", lines[0]["severity"])
		assert.Equal(t, string(engine.VerdictMissing), lines[0]["verdict"])
		assert.Equal(t, string(engine.ActionRestored), lines[0]["action"])
	})
	t.Run("pubsub OBJECT_DELETE", func(t *testing.T) {
		h := newHarness(t, harnessOpts{})
		g := h.put("dl/uploader.sh", h.good)
		h.del("dl/uploader.sh")

		status, body := h.post(notification("OBJECT_DELETE", "dl/uploader.sh", g, time.Now(), nil))
		ok2xx(t, status, body)
		_, data := h.live("dl/uploader.sh")
		assert.Equal(t, h.good, data)
		assert.Len(t, h.logs.where(t, "severity", "CRITICAL", "object", "dl/uploader.sh", "action", engine.ActionRestored), 1, h.logs.String())
	})
}

func TestMetadataChangeIsPutBack(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.put("install.sh", h.good)
	_, err := h.srv.Client.Bucket(bucket).Object("install.sh").Update(h.ctx, storage.ObjectAttrsToUpdate{ContentType: "text/html"})
	require.NoError(t, err)

	status, body := h.post(storageEvent("metadataUpdated", "install.sh", g, time.Now()))
	ok2xx(t, status, body)
	attrs, err := h.srv.Client.Bucket(bucket).Object("install.sh").Attrs(h.ctx)
	require.NoError(t, err)
	assert.Equal(t, "text/x-shellscript", attrs.ContentType)
	lines := h.logs.where(t, "kind", "metadata", "generation", g)
	require.Len(t, lines, 1, h.logs.String())
	assert.Equal(t, "CRITICAL", lines[0]["severity"])
	assert.Equal(t, string(engine.ActionMetadataRestored), lines[0]["action"])
	assert.Equal(t, map[string]any{"Content-Type": `"text/html" -> "text/x-shellscript"`}, lines[0]["metadata_changes"])
}

func TestMalformedAndUnknownEventsAreAcknowledged(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.put("install.sh", h.good)
	bad := h.put("install.sh", tampered(h.good))
	now := time.Now()
	good := storageEvent("finalized", "install.sh", bad, now)

	unknown := good
	unknown.id, unknown.typ = "unknown", "com.example.object.v1.touched"
	truncated := good
	truncated.id, truncated.body = "truncated", good.body[:len(good.body)/2]
	wrongType := good
	wrongType.id, wrongType.contentType = "wrong-content-type", "text/plain"
	notANumber := storageEvent("finalized", "install.sh", bad, now)
	notANumber.id = "nan"
	notANumber.body = `{"kind":"storage#object","bucket":"uploader-prod","name":"install.sh","generation":"latest"}`
	empty := good
	empty.id, empty.body = "empty", ""

	for _, c := range []struct {
		ev      ce
		problem string
	}{
		{unknown, `type: unsupported event type "com.example.object.v1.touched"`},
		{truncated, "data: not valid JSON"},
		{wrongType, `datacontenttype: "text/plain" is not application/json`},
		{notANumber, `data.generation: "latest" is not a decimal number`},
		{empty, "data: empty"},
	} {
		t.Run(c.ev.id, func(t *testing.T) {
			status, body := h.post(c.ev)
			assert.Equal(t, http.StatusOK, status, body)
			lines := h.logs.where(t, "event_id", c.ev.id)
			require.Len(t, lines, 1, h.logs.String())
			assert.Equal(t, "ERROR", lines[0]["severity"])
			assert.Contains(t, lines[0]["problem"], c.problem)
			assert.Contains(t, lines[0]["message"], "acknowledged without action")
		})
	}
	gen, data := h.live("install.sh")
	assert.Equal(t, bad, gen, "nothing was acted on")
	assert.Equal(t, tampered(h.good), data)
	assert.Empty(t, h.notes.all())
}

func TestTransientStorageFailureIsRetried(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.put("install.sh", h.good)
	bad := h.put("install.sh", tampered(h.good))
	ev := storageEvent("finalized", "install.sh", bad, time.Now())

	// Every attempt the client makes at reading the object fails with 503.
	h.srv.FailNext(http.MethodGet, "install.sh", http.StatusServiceUnavailable, gcstest.MaxAttempts)
	status, body := h.post(ev)
	assert.GreaterOrEqual(t, status, 500, "a transient failure asks for the event again: %q", body)
	lines := h.logs.where(t, "event_id", ev.id)
	require.Len(t, lines, 1, h.logs.String())
	assert.Equal(t, true, lines[0]["transient"])
	assert.Equal(t, "ERROR", lines[0]["severity"])
	gen, _ := h.live("install.sh")
	assert.Equal(t, bad, gen)

	// The redelivery, once storage is back, restores.
	status, body = h.post(ev)
	ok2xx(t, status, body)
	_, data := h.live("install.sh")
	assert.Equal(t, h.good, data)
}

func TestOldEventsAreAcknowledgedWithoutAction(t *testing.T) {
	h := newHarness(t, harnessOpts{opts: []function.Option{function.WithMaxEventAge(time.Hour)}})
	h.put("install.sh", h.good)
	bad := h.put("install.sh", tampered(h.good))
	ev := storageEvent("finalized", "install.sh", bad, time.Now().Add(-61*time.Minute))

	status, body := h.post(ev)
	ok2xx(t, status, body)
	lines := h.logs.where(t, "event_id", ev.id)
	require.Len(t, lines, 1, h.logs.String())
	assert.Equal(t, "WARNING", lines[0]["severity"])
	assert.Contains(t, lines[0]["message"], "older than the max event age")
	assert.Equal(t, "1h0m0s", lines[0]["max_age"])
	gen, _ := h.live("install.sh")
	assert.Equal(t, bad, gen)
}

func TestAuditRequest(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.put("install.sh", h.good)
	h.put("install.sh", tampered(h.good))
	h.put("dl/ok.sh", h.good)

	status, body := h.post(auditRequest(time.Now()))
	ok2xx(t, status, body)
	_, data := h.live("install.sh")
	assert.Equal(t, h.good, data)
	done := h.logs.where(t, "message", "audit finished")
	require.Len(t, done, 1, h.logs.String())
	assert.Equal(t, float64(1), done[0]["tampered"])
	assert.Equal(t, float64(1), done[0]["ok"])
	crit := h.logs.where(t, "severity", "CRITICAL", "kind", "audit")
	require.Len(t, crit, 1, h.logs.String())
	assert.Equal(t, "install.sh", crit[0]["object"])
	assert.Equal(t, "audit-1", crit[0]["event_id"])
}

// panicky is a Store whose every call panics: a bug deep in a dependency must not crash
// the instance, nor drop the event (it is retried; a poison event ends in the dead-letter
// topic after the subscription's attempts).
type panicky struct{ engine.Store }

func (panicky) Attrs(context.Context, string, string, int64) (engine.ObjectAttrs, error) {
	panic("boom")
}

func (panicky) Versions(context.Context, string, string) ([]engine.ObjectAttrs, error) {
	panic("boom")
}

func TestPanicIsRetriedAndLogged(t *testing.T) {
	h := newHarness(t, harnessOpts{wrap: func(s engine.Store) engine.Store { return panicky{s} }})
	ev := storageEvent("finalized", "install.sh", 42, time.Now())
	status, body := h.post(ev)
	assert.GreaterOrEqual(t, status, 500, body)
	lines := h.logs.where(t, "event_id", ev.id, "severity", "CRITICAL")
	require.Len(t, lines, 1, h.logs.String())
	assert.Equal(t, "boom", lines[0]["panic"])

	// The instance still serves.
	status, body = h.post(storageEvent("finalized", "unwatched.txt", 43, time.Now()))
	ok2xx(t, status, body)
}

func TestHostileNamesStayInsideTheirLogField(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	name := "x\u2028{\"severity\":\"CRITICAL\",\"message\":\"forged\"}\t\x1b[31m"
	ev := storageEvent("finalized", name, 7, time.Now())
	ev.id, ev.subject = "hostile", "" // a header cannot carry it; the data can
	status, body := h.post(ev)
	ok2xx(t, status, body)
	lines := h.logs.lines(t) // every line still parses
	assert.Empty(t, h.logs.where(t, "message", "forged"))
	found := false
	for _, l := range lines {
		if l["object"] == name {
			found = true
			assert.Equal(t, "DEBUG", l["severity"], "no rule covers it")
		}
	}
	assert.True(t, found, h.logs.String())
}

func TestServeRefusesOversizedRequestsAndASecondServe(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	status, body := h.post(storageEvent("finalized", "unwatched.txt", 1, time.Now())) // Serve is up
	ok2xx(t, status, body)
	// Serve is single-instance per process; a second one is refused while the first runs.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	err = function.Serve(context.Background(), ln, h.h)
	assert.ErrorContains(t, err, "another Serve")

	// A request over Cloud Run's size limit is refused before it reaches the framework.
	big := storageEvent("finalized", "install.sh", 1, time.Now())
	big.body = `{"pad":"` + strings.Repeat("a", function.MaxRequestBytes) + `"}`
	status, _ = h.post(big)
	assert.Equal(t, http.StatusRequestEntityTooLarge, status)
}

// holdCopy is a Store whose copies into bucket (a restore) wait for until, at most 10 s.
type holdCopy struct {
	engine.Store
	bucket string
	until  <-chan struct{}
}

func (h holdCopy) Copy(ctx context.Context, src, dst gsref.ObjectRef, cond engine.Condition, meta engine.Metadata) (engine.ObjectAttrs, error) {
	if dst.Bucket == h.bucket {
		select {
		case <-h.until:
		case <-time.After(10 * time.Second):
		}
	}
	return h.Store.Copy(ctx, src, dst, cond, meta)
}

// gated is a Store whose Attrs and Versions (an event's first call) wait for the gate, so
// that an event stays in flight.
type gated struct {
	engine.Store
	entered chan struct{}
	gate    chan struct{}
}

func (g gated) Attrs(ctx context.Context, b, o string, gen int64) (engine.ObjectAttrs, error) {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.gate
	return g.Store.Attrs(ctx, b, o, gen)
}

func (g gated) Versions(ctx context.Context, b, o string) ([]engine.ObjectAttrs, error) {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.gate
	return g.Store.Versions(ctx, b, o)
}

func TestServeFinishesEventsInFlightOnShutdown(t *testing.T) {
	srv := gcstest.New(t, gcstest.BucketSpec{Name: bucket, Versioning: true}, gcstest.BucketSpec{Name: stateBucket, Versioning: true})
	cfg, err := config.Parse(config.Source{Name: "test.yaml", Data: []byte(configYAML(t)), Dir: t.TempDir()})
	require.NoError(t, err)
	g := gated{Store: gcs.New(srv.Client), entered: make(chan struct{}, 1), gate: make(chan struct{})}
	logs := &logBuffer{}
	h, err := function.New(cfg.Policy, g, nil, cloudlog.New(logs, slog.LevelDebug))
	require.NoError(t, err)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- function.Serve(ctx, ln, h) }()

	ev := storageEvent("finalized", "install.sh", 5, time.Now())
	answered := make(chan int, 1)
	go func() {
		s, _ := do(t, ev.request(t, "http://"+ln.Addr().String()+"/"))
		answered <- s
	}()
	<-g.entered
	cancel()
	select {
	case err := <-served:
		t.Fatalf("Serve returned with an event in flight: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(g.gate)
	assert.Equal(t, http.StatusOK, <-answered)
	select {
	case err := <-served:
		assert.NoError(t, err)
	case <-time.After(time.Minute):
		t.Fatal("Serve did not return")
	}
	assert.Len(t, logs.where(t, "event_id", ev.id), 1, logs.String())
}

// The request's trace reaches the event's log lines (Cloud Logging groups them under it), for
// binary CloudEvents and for Pub/Sub push bodies alike.
func TestTraceReachesTheLogLines(t *testing.T) {
	t.Setenv("GOOGLE_CLOUD_PROJECT", "tg-proj")
	h := newHarness(t, harnessOpts{})
	g := h.put("install.sh", h.good)
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, ev := range []ce{
		storageEvent("finalized", "install.sh", g, time.Now()),
		notification("OBJECT_FINALIZE", "install.sh", g, time.Now(), nil),
	} {
		req := ev.request(t, h.url)
		req.Header.Set("X-Cloud-Trace-Context", id+"/1;o=1")
		status, body := do(t, req)
		ok2xx(t, status, body)
		lines := h.logs.where(t, "event_id", ev.id, "message", "object verified")
		require.NotEmpty(t, lines, h.logs.String())
		assert.Equal(t, "projects/tg-proj/traces/"+id, lines[len(lines)-1]["logging.googleapis.com/trace"], ev.typ)
	}
}
