package engine_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/config"
	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/faultproxy"
	"github.com/tamperguard/tamperguard/internal/gcs"
	"github.com/tamperguard/tamperguard/internal/gcstest"
)

// auditSetup is a harness with n good scripts under dl/ and an engine whose every storage
// request goes through a counting proxy.
type auditSetup struct {
	*harness
	proxy *faultproxy.Proxy
	store engine.Store
	names []string
}

func newAuditSetup(t *testing.T, n int, o harnessOpts) *auditSetup {
	h := newHarness(t, o)
	s := &auditSetup{harness: h}
	for i := range n {
		name := fmt.Sprintf("dl/s%03d.sh", i)
		h.put(name, h.good)
		s.names = append(s.names, name)
	}
	h.put("install.sh", h.good) // named exactly by the rule
	var client *storage.Client
	s.proxy, client = h.srv.WithFaults(t)
	s.proxy.SetKeepAlives(false)
	s.store = gcs.New(client)
	return s
}

// engine is a fresh instance (nothing in memory) on the counted store.
func (s *auditSetup) engine(now func() time.Time) *engine.Engine {
	eng, err := engine.New(engine.Options{Store: s.store, Policy: s.cfg.Policy, Now: now})
	require.NoError(s.t, err)
	return eng
}

// run audits the dl/ shard and returns the report, the decisions handed over and the
// storage requests it made.
func (s *auditSetup) run(eng *engine.Engine, o engine.AuditOptions) (engine.AuditReport, []engine.Decision, int, error) {
	if o.Prefixes == nil {
		o.Prefixes = []string{"dl/"}
	}
	before := s.proxy.Stats().Requests
	var mu sync.Mutex
	var ds []engine.Decision
	rep, err := eng.AuditWith(s.ctx, o, func(d *engine.Decision) {
		mu.Lock()
		defer mu.Unlock()
		ds = append(ds, *d)
	})
	return rep, ds, s.proxy.Stats().Requests - before, err
}

// clearLog empties the proxy's log once the requests before it are logged (a client can
// hold a whole answer before the proxy logs it).
func (s *auditSetup) clearLog() {
	require.NoError(s.t, s.proxy.WaitIdle(s.ctx))
	s.proxy.ClearLog()
}

// objectReads counts the reads of watched objects' bytes since the log was cleared. The
// client can hold a whole answer before the proxy logs it, so it waits for the proxy to idle.
func (s *auditSetup) objectReads() int {
	require.NoError(s.t, s.proxy.WaitIdle(s.ctx))
	n := 0
	for _, e := range s.proxy.Log() {
		if e.Method == http.MethodGet && strings.HasPrefix(e.URL, "/"+bucket+"/") {
			n++
		}
	}
	return n
}

// The audit judges from the listing's attributes: one read per object, one listing request
// per 1,000 objects, nothing else per object (before: the generation's attributes, the live
// object's again, then the bytes).
func TestAuditReadsEachObjectOnceFromTheListing(t *testing.T) {
	s := newAuditSetup(t, 40, harnessOpts{})
	eng := s.engine(nil)
	rep, ds, calls, err := s.run(eng, engine.AuditOptions{NoMemo: true})
	require.NoError(t, err)
	assert.Empty(t, ds, "ok objects are counted, not handed over one by one")
	assert.Equal(t, 40, rep.Listed)
	assert.Equal(t, 40, rep.Read)
	assert.Equal(t, 40, rep.Verdicts[engine.VerdictOK])
	assert.True(t, rep.Complete)
	// 40 reads, 1 listing, and the release's rollback mark (read, then written) once.
	assert.LessOrEqual(t, calls, 40+1+3)
	assert.Equal(t, 40, s.objectReads())
}

// The memo: a second audit of an unchanged bucket reads no object, and costs a few requests
// (the listing, the scope's records), not one per object.
func TestAuditMemoSkipsUnchangedGenerations(t *testing.T) {
	s := newAuditSetup(t, 40, harnessOpts{})
	rep, _, first, err := s.run(s.engine(nil), engine.AuditOptions{})
	require.NoError(t, err)
	require.Equal(t, 40, rep.Read)

	s.clearLog()
	rep, ds, second, err := s.run(s.engine(nil), engine.AuditOptions{ReportOK: true}) // another instance
	require.NoError(t, err)
	assert.Equal(t, 40, rep.Reused)
	assert.Zero(t, rep.Read)
	assert.Zero(t, s.objectReads(), "no object read again")
	require.Len(t, ds, 40)
	for _, d := range ds {
		assert.Equal(t, engine.VerdictOK, d.Verdict)
		assert.Equal(t, "v1.2.0", d.Release)
		assert.Equal(t, d.ExpectedSHA256, d.ActualSHA256)
	}
	t.Logf("first audit %d requests, second %d", first, second)
	// The listing, the scope's records listed, the cursor and memo read, the cursor written;
	// the release's mark read (a fresh instance).
	assert.LessOrEqual(t, second, 8)
}

// Nothing the attacker can do to the watched bucket makes the memo vouch for other bytes: a
// new generation, a metadata change (a new metageneration) or a changed release means the
// object is read and hashed.
func TestAuditMemoNeverVouchesForAChange(t *testing.T) {
	s := newAuditSetup(t, 5, harnessOpts{})
	_, _, _, err := s.run(s.engine(nil), engine.AuditOptions{})
	require.NoError(t, err)

	// Overwritten (a new generation), and an old one's metadata patched.
	s.put("dl/s000.sh", tampered(s.good))
	_, err = s.srv.Client.Bucket(bucket).Object("dl/s001.sh").Update(s.ctx, storage.ObjectAttrsToUpdate{
		Metadata: map[string]string{"tamperguard-verified": "yes, trust me"}})
	require.NoError(t, err)

	s.clearLog()
	rep, ds, _, err := s.run(s.engine(nil), engine.AuditOptions{})
	require.NoError(t, err)
	require.Len(t, ds, 1)
	assert.Equal(t, "dl/s000.sh", ds[0].Object)
	assert.Equal(t, engine.VerdictTampered, ds[0].Verdict)
	assert.Equal(t, 2, rep.Read, "the new generation and the re-metadata'd one are read")
	assert.Equal(t, 3, rep.Reused)
	assert.Equal(t, 2, s.objectReads())

	// A new release for the rule: the memo's entries are the old release's; all read again.
	other := s.instanceWithTag(t, "v1.0.0", "maintainer-ed25519.asc")
	s.clearLog()
	rep, err = other.AuditWith(s.ctx, engine.AuditOptions{Prefixes: []string{"dl/"}}, func(*engine.Decision) {})
	require.NoError(t, err)
	assert.Zero(t, rep.Reused, "verified against another release: not reused")
	assert.Equal(t, 5, rep.Read)
}

// instanceWithTag is an engine on the counted store whose dl/ rule asks for tag (signed by
// key) instead.
func (s *auditSetup) instanceWithTag(t *testing.T, tag, key string) *engine.Engine {
	t.Helper()
	yaml := "state: {bucket: " + stateBucket + "}\nrules:\n" + `  - bucket: ` + bucket + `
    objects: ["install.sh", "dl/*.sh"]
    release: {git: ` + testdata(t, "git", "uploader.git") + `, tag: ` + tag + `, entry: install.sh}
    keys: {openpgp: [` + testdata(t, "keys", key) + `]}
    metadata: {content_type: text/x-shellscript}
`
	cfg := parseConfig(t, yaml)
	eng, err := engine.New(engine.Options{Store: s.store, Policy: cfg.Policy})
	require.NoError(t, err)
	return eng
}

// A garbled memo record is no memo: its objects are read.
func TestAuditUnreadableMemoMeansRead(t *testing.T) {
	s := newAuditSetup(t, 5, harnessOpts{})
	_, _, _, err := s.run(s.engine(nil), engine.AuditOptions{})
	require.NoError(t, err)
	it := s.srv.Client.Bucket(stateBucket).Objects(s.ctx, &storage.Query{Prefix: "audit/"})
	garbled := 0
	for {
		a, err := it.Next()
		if err != nil {
			break
		}
		if strings.Contains(a.Name, "/memo-") {
			w := s.srv.Client.Bucket(stateBucket).Object(a.Name).NewWriter(s.ctx)
			w.Metadata = a.Metadata
			_, _ = w.Write([]byte(`{"v":1,"entries":[{"n":"dl/s000.sh"`))
			require.NoError(t, w.Close())
			garbled++
		}
	}
	require.NotZero(t, garbled)
	rep, _, _, err := s.run(s.engine(nil), engine.AuditOptions{})
	require.NoError(t, err)
	assert.Zero(t, rep.Reused)
	assert.Equal(t, 5, rep.Read)
	rep, _, _, err = s.run(s.engine(nil), engine.AuditOptions{})
	require.NoError(t, err)
	assert.Equal(t, 5, rep.Reused, "and the record is written again")
}

// A run that stops with objects left records where it stopped; the next one resumes there,
// and together they judge every object once.
func TestAuditResumesWhereItStopped(t *testing.T) {
	s := newAuditSetup(t, 30, harnessOpts{})
	seen := map[string]int{}
	collect := func(ds []engine.Decision) {
		for _, d := range ds {
			seen[d.Object]++
		}
	}
	rep, ds, _, err := s.run(s.engine(nil), engine.AuditOptions{Limit: 12, ReportOK: true, Concurrency: 4})
	require.ErrorIs(t, err, engine.ErrAuditCut)
	assert.False(t, rep.Complete)
	require.Len(t, rep.Scopes, 1)
	assert.Equal(t, "dl/s011.sh", rep.Scopes[0].After, "done through the 12th name")
	assert.Contains(t, err.Error(), `done through "dl/s011.sh"`)
	collect(ds)

	rep, ds, _, err = s.run(s.engine(nil), engine.AuditOptions{Limit: 12, ReportOK: true, Concurrency: 4})
	require.ErrorIs(t, err, engine.ErrAuditCut)
	assert.Equal(t, "dl/s011.sh", rep.Scopes[0].From, "resumed where the first stopped")
	collect(ds)

	rep, ds, _, err = s.run(s.engine(nil), engine.AuditOptions{Limit: 12, ReportOK: true, Concurrency: 4})
	require.NoError(t, err)
	assert.True(t, rep.Complete)
	assert.Equal(t, int64(1), rep.Scopes[0].Pass)
	collect(ds)
	for _, n := range s.names {
		assert.Equal(t, 1, seen[n], "%s judged once across the runs", n)
	}

	// The pass is complete: the next run starts the next pass from the first name, and the
	// memo spares it every read.
	rep, _, _, err = s.run(s.engine(nil), engine.AuditOptions{})
	require.NoError(t, err)
	assert.Equal(t, int64(2), rep.Scopes[0].Pass)
	assert.Empty(t, rep.Scopes[0].From)
	assert.Equal(t, 30, rep.Reused)
}

// A deadline: the run stops taking objects a reserve before it, finishes those in flight,
// records where it stopped and says so; the next run resumes.
func TestAuditStopsBeforeItsDeadline(t *testing.T) {
	s := newAuditSetup(t, 30, harnessOpts{})
	// The engine's clock runs a second per reading: the reserve is reached after ~20.
	start := time.Now()
	var ticks atomic.Int64
	now := func() time.Time { return start.Add(time.Duration(ticks.Add(1)) * time.Second) }
	ctx, cancel := context.WithDeadline(s.ctx, start.Add(time.Hour))
	defer cancel()
	eng := s.engine(now)
	var ds []engine.Decision
	var mu sync.Mutex
	rep, err := eng.AuditWith(ctx, engine.AuditOptions{Prefixes: []string{"dl/"}, Reserve: time.Hour - 20*time.Second, ReportOK: true, Concurrency: 2},
		func(d *engine.Decision) { mu.Lock(); ds = append(ds, *d); mu.Unlock() })
	require.ErrorIs(t, err, engine.ErrAuditCut)
	assert.False(t, rep.Complete)
	assert.Less(t, len(ds), 30)
	after := rep.Scopes[0].After
	require.NotEmpty(t, after)

	rep, ds2, _, err := s.run(s.engine(nil), engine.AuditOptions{ReportOK: true})
	require.NoError(t, err)
	assert.Equal(t, after, rep.Scopes[0].From)
	assert.Len(t, append(ds, ds2...), 30, "every object once")
}

// Shards: an audit of a prefix lists and judges only the names under it.
func TestAuditShardsByPrefix(t *testing.T) {
	s := newAuditSetup(t, 20, harnessOpts{})
	rep, ds, _, err := s.run(s.engine(nil), engine.AuditOptions{Prefixes: []string{"dl/s01"}, ReportOK: true})
	require.NoError(t, err)
	assert.Equal(t, 10, rep.Listed)
	for _, d := range ds {
		assert.True(t, strings.HasPrefix(d.Object, "dl/s01"), d.Object)
	}
	// Exact names outside the shard are not reported missing.
	rep, ds, _, err = s.run(s.engine(nil), engine.AuditOptions{Prefixes: []string{"quarantine/"}})
	require.NoError(t, err)
	require.Len(t, ds, 1)
	assert.Equal(t, "quarantine/install.sh", ds[0].Object)
	assert.Equal(t, engine.VerdictMissing, ds[0].Verdict)
	assert.Zero(t, rep.Listed)
}

// The pool: objects are judged concurrently, never more at once than asked for.
func TestAuditWorkerPoolIsBounded(t *testing.T) {
	s := newAuditSetup(t, 24, harnessOpts{})
	gate := faultproxy.NewGate()
	s.proxy.Add(faultproxy.Rule{Match: s.srv.Match(gcstest.OpRead, bucket, ""), When: faultproxy.Always(), Fault: faultproxy.Delay(gate)})
	done := make(chan error, 1)
	go func() {
		_, _, _, err := s.run(s.engine(nil), engine.AuditOptions{NoMemo: true, Concurrency: 6})
		done <- err
	}()
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, gate.Wait(ctx, 6), "six reads in flight at once")
	assert.Equal(t, 6, gate.Held())
	gate.Release()
	require.NoError(t, <-done)
	assert.LessOrEqual(t, s.proxy.Stats().MaxInFlight, 6)
}

// Two audits of the same scope at once (a retried request and the next scheduled one): both
// finish, neither loses the other's memo, and a third reads nothing.
func TestConcurrentAuditsMergeTheirMemo(t *testing.T) {
	s := newAuditSetup(t, 30, harnessOpts{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, _, err := s.run(s.engine(nil), engine.AuditOptions{Concurrency: 3})
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	rep, _, _, err := s.run(s.engine(nil), engine.AuditOptions{})
	require.NoError(t, err)
	assert.Equal(t, 30, rep.Reused)
}

// A tampered object found by the audit is restored (with act), and the good generation the
// memo remembered is not read again for it: it is copied, and (known from the memo alone,
// not hashed by this process) the copy is read back and hashed.
func TestAuditRestoresFromTheRememberedGeneration(t *testing.T) {
	s := newAuditSetup(t, 3, harnessOpts{})
	_, _, _, err := s.run(s.engine(nil), engine.AuditOptions{})
	require.NoError(t, err)
	good, _ := s.live("dl/s001.sh")
	bad := s.put("dl/s001.sh", tampered(s.good))

	s.clearLog()
	_, ds, _, err := s.run(s.engine(nil), engine.AuditOptions{Act: true})
	require.NoError(t, err)
	require.Len(t, ds, 1)
	assert.Equal(t, engine.ActionRestored, ds[0].Action, string(ds[0].Reason)+ds[0].Error)
	reads := map[string]int{}
	require.NoError(t, s.proxy.WaitIdle(s.ctx))
	for _, e := range s.proxy.Log() {
		u, err := url.Parse(e.URL)
		require.NoError(t, err)
		if e.Method == http.MethodGet && u.Path == "/"+bucket+"/dl/s001.sh" {
			reads[u.Query().Get("generation")]++
		}
	}
	assert.Equal(t, 1, reads[itoa(bad)], "the tampered generation read once")
	assert.Zero(t, reads[itoa(good)], "the remembered good generation is not read")
	assert.Equal(t, 1, reads[itoa(ds[0].RestoredGeneration)], "the copy of a generation known from the memo is read back")
	assert.Equal(t, engine.VerifiedReadBack, ds[0].RestoreVerified)
	_, b := s.live("dl/s001.sh")
	assert.Equal(t, s.good, b)
}

func parseConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(config.Source{Name: "test.yaml", Data: []byte(yaml), Dir: t.TempDir()})
	require.NoError(t, err)
	return cfg
}

// The audit counts the objects it found ok only against the last release that verified (a
// newer one refused), and says why, though it does not hand them over one by one; the memo
// vouches for them on the same floor release too.
func TestAuditCountsObjectsOkOnTheFloor(t *testing.T) {
	ctx := context.Background()
	s := newFloorSetup(t)
	s.host.publish(t, "v1.1.0")
	eng, _ := s.engine(t)
	s.put(t, rollbackFile(t, "v1.1.0", "install.sh"))
	rep, err := eng.AuditWith(ctx, engine.AuditOptions{}, func(*engine.Decision) {})
	require.NoError(t, err)
	require.Zero(t, rep.OnFloor)

	s.host.setStatus("/latest/SHA256SUMS.asc", http.StatusNotFound) // the attacker deletes the signature
	for range 2 {                                                   // two fresh instances: the floor comes from the state bucket each time
		fresh, _ := s.engine(t)
		rep, err = fresh.AuditWith(ctx, engine.AuditOptions{}, func(*engine.Decision) {})
		require.NoError(t, err)
		assert.Equal(t, 1, rep.Verdicts[engine.VerdictOK])
		assert.Equal(t, 1, rep.OnFloor)
		assert.NotEmpty(t, rep.Floor)
		assert.Equal(t, 1, rep.Reused, "the floor is the same signed release the memo saw")
	}
}
