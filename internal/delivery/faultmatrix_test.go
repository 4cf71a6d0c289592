package delivery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/iterator"

	"github.com/tamperguard/tamperguard/alerting"
	"github.com/tamperguard/tamperguard/internal/config"
	"github.com/tamperguard/tamperguard/internal/delivery"
	"github.com/tamperguard/tamperguard/internal/faultproxy"
	"github.com/tamperguard/tamperguard/internal/gcs"
	"github.com/tamperguard/tamperguard/internal/gcstest"
	"github.com/tamperguard/tamperguard/internal/slackfake"
)

// The fault matrix: every step of the tampered path × every kind of fault, through HTTP,
// with the real Cloud Storage SDK in front of fake-gcs-server and the real Slack client in
// front of a Slack stand-in. After the fault clears and the event is delivered again (as
// Pub/Sub does, until it is acknowledged), the end state must be the same every time: the
// signed bytes live, the bad generation kept (noncurrent and as evidence), exactly one
// incident (done, alerted), exactly one alert, and nothing stuck.

type matrixClock struct{ t atomic.Pointer[time.Time] }

func (c *matrixClock) now() time.Time { return *c.t.Load() }
func (c *matrixClock) advance(d time.Duration) {
	t := c.now().Add(d)
	c.t.Store(&t)
}

// step is one request of the tampered path, selected on the proxy in front of storage or
// of Slack. gens are the generations of the scenario: good (the older signed one) and bad.
type step struct {
	name  string
	slack bool
	match func(srv *gcstest.Server, good, bad int64) func(*http.Request) bool
	// skip lets this many matching requests through before the fault's window opens.
	skip int
	// noGood: the bucket holds no older signed generation, so the release's own copy is
	// uploaded and read back (a copy of a generation hashed in the same delivery is verified
	// by the store's checksums of it, without a read-back).
	noGood bool
}

func uploadOf(srv *gcstest.Server, b, prefix string) func(*http.Request) bool {
	return faultproxy.All(srv.Match(gcstest.OpUpload, b, ""), func(r *http.Request) bool {
		return strings.HasPrefix(r.URL.Query().Get("name"), prefix)
	})
}

func genIs(g int64) func(*http.Request) bool {
	return faultproxy.QueryParam("generation", strconv.FormatInt(g, 10))
}

var matrixSteps = []step{
	{name: "versions listing", match: func(srv *gcstest.Server, good, bad int64) func(*http.Request) bool {
		// The generation's attributes and the candidates for a restore, in one listing.
		return faultproxy.All(srv.Match(gcstest.OpList, bucket, ""), faultproxy.QueryParam("versions", "true"))
	}},
	{name: "read", match: func(srv *gcstest.Server, good, bad int64) func(*http.Request) bool {
		return faultproxy.All(srv.Match(gcstest.OpRead, bucket, "install.sh"), genIs(bad))
	}},
	{name: "incident create", match: func(srv *gcstest.Server, good, bad int64) func(*http.Request) bool {
		return faultproxy.All(uploadOf(srv, stateBucket, "incidents/"), faultproxy.QueryParam("ifGenerationMatch", "0"))
	}},
	{name: "evidence copy", match: func(srv *gcstest.Server, good, bad int64) func(*http.Request) bool {
		return srv.Match(gcstest.OpCopy, stateBucket, "")
	}},
	{name: "good generation read", match: func(srv *gcstest.Server, good, bad int64) func(*http.Request) bool {
		return faultproxy.All(srv.Match(gcstest.OpRead, bucket, "install.sh"), genIs(good))
	}},
	{name: "conditional copy", match: func(srv *gcstest.Server, good, bad int64) func(*http.Request) bool {
		return faultproxy.All(srv.Match(gcstest.OpCopy, bucket, "install.sh"), faultproxy.QueryParam("ifGenerationMatch", strconv.FormatInt(bad, 10)))
	}},
	{name: "read-back of the uploaded release copy", noGood: true, match: func(srv *gcstest.Server, good, bad int64) func(*http.Request) bool {
		read := srv.Match(gcstest.OpRead, bucket, "install.sh")
		return func(r *http.Request) bool {
			return read(r) && r.URL.Query().Get("generation") != strconv.FormatInt(bad, 10)
		}
	}},
	{name: "incident done", match: func(srv *gcstest.Server, good, bad int64) func(*http.Request) bool {
		// The record's updates: done, then alerted.
		return faultproxy.All(uploadOf(srv, stateBucket, "incidents/"), func(r *http.Request) bool {
			return r.URL.Query().Get("ifGenerationMatch") != "0"
		})
	}},
	{name: "alert", slack: true},
}

type faultKind struct {
	name  string
	fault func(g *faultproxy.Gate) faultproxy.Fault
	// the window: how many matching requests it hits (enough to beat the SDK's retries)
	n int
}

var matrixFaults = []faultKind{
	{"503", func(*faultproxy.Gate) faultproxy.Fault { return faultproxy.Status(http.StatusServiceUnavailable) }, gcstest.MaxAttempts},
	{"hang past the deadline", faultproxy.Hang, 1},
	{"reset", func(*faultproxy.Gate) faultproxy.Fault { return faultproxy.Reset() }, gcstest.MaxAttempts + 1},
	{"truncated body", func(*faultproxy.Gate) faultproxy.Fault { return faultproxy.Truncate(7) }, gcstest.MaxAttempts},
	{"committed, response lost", func(*faultproxy.Gate) faultproxy.Fault { return faultproxy.LoseResponse() }, 1},
}

// cellResult is what one cell of the matrix ended in, for the table.
type cellResult struct {
	first      string // the first delivery's outcome
	deliveries int
	applied    int
}

func TestFaultMatrix(t *testing.T) {
	results := map[string]map[string]cellResult{}
	var mu sync.Mutex
	t.Run("cells", func(t *testing.T) {
		for _, st := range matrixSteps {
			results[st.name] = map[string]cellResult{}
			for _, fk := range matrixFaults {
				t.Run(st.name+"/"+fk.name, func(t *testing.T) {
					t.Parallel() // most cells wait on a deadline or a backoff
					r := runCell(t, st, fk)
					mu.Lock()
					results[st.name][fk.name] = r
					mu.Unlock()
				})
			}
		}
	})
	// The table for people (go test -run FaultMatrix -v): step × fault → first outcome,
	// deliveries until acknowledged.
	var b strings.Builder
	names := make([]string, 0, len(matrixFaults))
	for _, fk := range matrixFaults {
		names = append(names, fk.name)
	}
	fmt.Fprintf(&b, "| step | %s |\n|---|%s\n", strings.Join(names, " | "), strings.Repeat("---|", len(names)))
	for _, st := range matrixSteps {
		fmt.Fprintf(&b, "| %s |", st.name)
		for _, fk := range matrixFaults {
			r := results[st.name][fk.name]
			if r.applied == 0 {
				fmt.Fprintf(&b, " (not reached) |")
				continue
			}
			fmt.Fprintf(&b, " %s → ack after %d |", r.first, r.deliveries)
		}
		b.WriteString("\n")
	}
	t.Log("\n" + b.String())
}

func runCell(t *testing.T, st step, fk faultKind) cellResult {
	srv := gcstest.New(t, gcstest.BucketSpec{Name: bucket, Versioning: true}, gcstest.BucketSpec{Name: stateBucket, Versioning: true})
	proxy, client := srv.WithFaults(t)
	store := gcs.New(client)

	sf := slackfake.New(t, slackfake.Options{})
	sproxy, ep := sf.WithFaults(t)
	notifier, err := alerting.NewSlack(alerting.Options{Token: sf.Token(), Channel: "C0TAMPERGD", APIURL: ep.API,
		MaxElapsed: time.Second, AttemptTimeout: 250 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
		Threads: alerting.NewStateThreads(store, stateBucket)})
	require.NoError(t, err)

	yaml := "state: {bucket: " + stateBucket + "}\n" + `rules:
  - bucket: ` + bucket + `
    objects: ["install.sh"]
    release: {git: ` + testdata(t, "git", "uploader.git") + `, tag: v1.2.0, entry: install.sh}
    keys: {openpgp: [` + testdata(t, "keys", "maintainer-rsa3072.asc") + `]}
`
	cfg, err := config.Parse(config.Source{Name: "matrix.yaml", Data: []byte(yaml), Dir: t.TempDir()})
	require.NoError(t, err)
	clk := &matrixClock{}
	start := time.Now()
	clk.t.Store(&start)
	const lease = 2 * time.Second
	svc, err := delivery.New(delivery.Options{Policy: cfg.Policy, Store: store, Notifier: notifier, Logger: slog.New(slog.DiscardHandler),
		Now: clk.now, Lease: lease, Alerts: delivery.DispatcherOptions{Timeout: 3 * time.Second}})
	require.NoError(t, err)

	good := signedScript(t)
	put := func(data []byte) int64 {
		w := srv.Client.Bucket(bucket).Object("install.sh").NewWriter(context.Background())
		w.ContentType = "text/x-shellscript"
		_, err := w.Write(data)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		return w.Attrs().Generation
	}
	var goodGen int64
	if !st.noGood {
		goodGen = put(good)
	}
	bad := append(append([]byte(nil), good...), injected...)
	badGen := put(bad)

	gate := faultproxy.NewGate()
	var h *faultproxy.Handle
	if st.slack {
		h = sproxy.Add(faultproxy.Rule{Name: st.name, Match: slackfake.Method("chat.postMessage"), When: faultproxy.Next(fk.n), Fault: fk.fault(gate)})
	} else {
		m, skip := st.match(srv, goodGen, badGen), st.skip
		h = proxy.Add(faultproxy.Rule{Name: st.name, When: faultproxy.Next(fk.n), Fault: fk.fault(gate), Match: func(r *http.Request) bool {
			if !m(r) {
				return false
			}
			if skip > 0 {
				skip-- // runs under the proxy's lock
				return false
			}
			return true
		}})
	}

	req := finalize("install.sh", badGen)
	var res cellResult
	for res.deliveries < 12 {
		res.deliveries++
		ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
		o := svc.Deliver(ctx, req)
		cancel()
		if res.deliveries == 1 {
			res.first = o.Why
			if o.Ack {
				res.first = "ack"
			}
		}
		if o.Ack {
			break
		}
		// Pub/Sub backs off before the next delivery; leases of the dead attempt run out.
		clk.advance(lease + time.Second)
	}
	gate.Release()
	res.applied = h.Applied()
	require.Less(t, res.deliveries, 12, "acknowledged in the end")

	// Let the fault clear for the checks, which read through the faulty client too.
	proxy.Clear()
	sproxy.Clear()

	// The signed bytes are live.
	r, err := srv.Client.Bucket(bucket).Object("install.sh").NewReader(context.Background())
	require.NoError(t, err)
	live, _ := io.ReadAll(r)
	r.Close()
	assert.Equal(t, string(good), string(live), "the signed bytes are live")

	// The bad generation is kept: as a noncurrent version and as evidence.
	_, err = srv.Client.Bucket(bucket).Object("install.sh").Generation(badGen).Attrs(context.Background())
	assert.NoError(t, err, "the bad generation is kept")
	_, err = srv.Client.Bucket(stateBucket).Object(fmt.Sprintf("evidence/%s/install.sh/%d", bucket, badGen)).Attrs(context.Background())
	assert.NoError(t, err, "the evidence copy exists")

	// Exactly one incident, done and alerted.
	var records []string
	it := srv.Client.Bucket(stateBucket).Objects(context.Background(), &storage.Query{Prefix: "incidents/"})
	for {
		a, err := it.Next()
		if err == iterator.Done {
			break
		}
		require.NoError(t, err)
		records = append(records, a.Name)
		rr, err := srv.Client.Bucket(stateBucket).Object(a.Name).NewReader(context.Background())
		require.NoError(t, err)
		var rec struct {
			Status  string
			Alerted bool
		}
		require.NoError(t, json.NewDecoder(rr).Decode(&rec))
		rr.Close()
		assert.Equal(t, "done", rec.Status, "nothing stuck")
		assert.True(t, rec.Alerted, "the alert is recorded")
	}
	sort.Strings(records)
	assert.Equal(t, []string{fmt.Sprintf("incidents/%s/install.sh/%d.json", bucket, badGen)}, records, "exactly one incident")

	// Exactly one alert, top-level, about this incident.
	msgs := sf.Messages()
	n := 0
	for _, m := range msgs {
		if m.Metadata != nil && strings.Contains(string(m.Metadata.EventPayload), "install.sh") {
			n++
			assert.Empty(t, m.ThreadTS, "a top-level alert")
		}
	}
	assert.Equal(t, 1, n, "exactly one alert (%d messages)", len(msgs))
	return res
}
