package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/config"
	"github.com/tamperguard/tamperguard/internal/demo"
	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/gcs"
	"github.com/tamperguard/tamperguard/internal/gcstest"
	"github.com/tamperguard/tamperguard/internal/gsref"
)

// The incident protocol under bad weather, at the Store seam: every fault is one that the
// storage adapter really reports (a 503 as ErrTransient, a retried conditional write whose
// first response was lost as ErrPrecondition). The same cases through HTTP, with the real
// SDK, are in the fault matrix.

// clock is a settable clock shared by the engines of one test.
type clock struct{ t atomic.Pointer[time.Time] }

func newClock() *clock {
	c := &clock{}
	now := time.Now()
	c.t.Store(&now)
	return c
}

func (c *clock) now() time.Time { return *c.t.Load() }

func (c *clock) advance(d time.Duration) {
	t := c.now().Add(d)
	c.t.Store(&t)
}

type faultKind int

const (
	failBefore   faultKind = iota // nothing happens; ErrTransient
	loseResponse                  // the call takes effect; the caller sees what its retry would (412 / 404)
	hang                          // the call never returns until its context ends or the test ends (a dead process)
	failRead                      // Open succeeds, reading fails with ErrTransient
	// copy only: the store says the copy differs from its source (another CRC32C), and
	// badCopy: the store writes other bytes than the source's and reports them truthfully
	otherChecksum
	badCopy
)

// faults is a Store that misbehaves on chosen calls.
type faults struct {
	engine.Store
	mu    sync.Mutex
	rules []*faultRule
	dead  chan struct{} // closed when the test ends: hung calls return
}

type faultRule struct {
	op     string // attrs, open, versions, write, delete, update
	bucket string
	sub    string // object name contains
	kind   faultKind
	skip   int // matching calls let through first
	left   int // calls affected after that
	hits   int
}

func newFaults(t *testing.T, s engine.Store) *faults {
	f := &faults{Store: s, dead: make(chan struct{})}
	t.Cleanup(func() { close(f.dead) })
	return f
}

func (f *faults) add(op, bucket, sub string, kind faultKind, skip, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, &faultRule{op: op, bucket: bucket, sub: sub, kind: kind, skip: skip, left: n})
}

func (f *faults) match(op, bucket, object string) (faultKind, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.rules {
		if r.op != op || r.bucket != bucket || !strings.Contains(object, r.sub) || r.left == 0 {
			continue
		}
		if r.skip > 0 {
			r.skip--
			continue
		}
		r.left--
		r.hits++
		return r.kind, true
	}
	return 0, false
}

func (f *faults) hung(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return errors.Join(engine.ErrTransient, ctx.Err())
	case <-f.dead:
		return engine.ErrTransient
	}
}

func (f *faults) Attrs(ctx context.Context, b, o string, gen int64) (engine.ObjectAttrs, error) {
	if k, ok := f.match("attrs", b, o); ok {
		if k == hang {
			return engine.ObjectAttrs{}, f.hung(ctx)
		}
		return engine.ObjectAttrs{}, engine.ErrTransient
	}
	return f.Store.Attrs(ctx, b, o, gen)
}

type failingReader struct{ io.ReadCloser }

func (failingReader) Read([]byte) (int, error) { return 0, engine.ErrTransient }

func (f *faults) Open(ctx context.Context, b, o string, gen int64) (io.ReadCloser, error) {
	if k, ok := f.match("open", b, o); ok {
		switch k {
		case hang:
			return nil, f.hung(ctx)
		case failRead:
			r, err := f.Store.Open(ctx, b, o, gen)
			if err != nil {
				return nil, err
			}
			return failingReader{r}, nil
		}
		return nil, engine.ErrTransient
	}
	return f.Store.Open(ctx, b, o, gen)
}

func (f *faults) Versions(ctx context.Context, b, o string) ([]engine.ObjectAttrs, error) {
	if k, ok := f.match("versions", b, o); ok {
		if k == hang {
			return nil, f.hung(ctx)
		}
		return nil, engine.ErrTransient
	}
	return f.Store.Versions(ctx, b, o)
}

func (f *faults) Write(ctx context.Context, b, o string, cond engine.Condition, meta engine.Metadata, r io.Reader) (engine.ObjectAttrs, error) {
	if k, ok := f.match("write", b, o); ok {
		switch k {
		case hang:
			return engine.ObjectAttrs{}, f.hung(ctx)
		case loseResponse:
			if _, err := f.Store.Write(ctx, b, o, cond, meta, r); err != nil {
				return engine.ObjectAttrs{}, err
			}
			return engine.ObjectAttrs{}, engine.ErrPrecondition
		}
		return engine.ObjectAttrs{}, engine.ErrTransient
	}
	return f.Store.Write(ctx, b, o, cond, meta, r)
}

func (f *faults) Copy(ctx context.Context, src, dst gsref.ObjectRef, cond engine.Condition, meta engine.Metadata) (engine.ObjectAttrs, error) {
	if k, ok := f.match("copy", dst.Bucket, dst.Object); ok {
		switch k {
		case hang:
			return engine.ObjectAttrs{}, f.hung(ctx)
		case loseResponse:
			if _, err := f.Store.Copy(ctx, src, dst, cond, meta); err != nil {
				return engine.ObjectAttrs{}, err
			}
			return engine.ObjectAttrs{}, engine.ErrPrecondition
		case otherChecksum:
			a, err := f.Store.Copy(ctx, src, dst, cond, meta)
			a.CRC32C++
			return a, err
		case badCopy:
			return f.Store.Write(ctx, dst.Bucket, dst.Object, cond, meta, strings.NewReader("#!/bin/sh\necho not the source\n"))
		}
		return engine.ObjectAttrs{}, engine.ErrTransient
	}
	return f.Store.Copy(ctx, src, dst, cond, meta)
}

func (f *faults) Delete(ctx context.Context, b, o string, cond engine.Condition) error {
	if k, ok := f.match("delete", b, o); ok {
		switch k {
		case hang:
			return f.hung(ctx)
		case loseResponse:
			if err := f.Store.Delete(ctx, b, o, cond); err != nil {
				return err
			}
			return engine.ErrObjectNotFound
		}
		return engine.ErrTransient
	}
	return f.Store.Delete(ctx, b, o, cond)
}

func (f *faults) UpdateMetadata(ctx context.Context, b, o string, cond engine.Condition, meta engine.Metadata) (engine.ObjectAttrs, error) {
	if k, ok := f.match("update", b, o); ok {
		switch k {
		case hang:
			return engine.ObjectAttrs{}, f.hung(ctx)
		case loseResponse:
			if _, err := f.Store.UpdateMetadata(ctx, b, o, cond, meta); err != nil {
				return engine.ObjectAttrs{}, err
			}
			return engine.ObjectAttrs{}, engine.ErrPrecondition
		}
		return engine.ObjectAttrs{}, engine.ErrTransient
	}
	return f.Store.UpdateMetadata(ctx, b, o, cond, meta)
}

// deliver handles ev with eng and sends the alert due, as the delivery runtime does, and
// says whether the event would be acknowledged.
func deliver(t *testing.T, eng *engine.Engine, ev engine.Event, n engine.Notifier) (engine.Decision, bool) {
	t.Helper()
	d := eng.Handle(context.Background(), ev)
	if d.Transient {
		require.False(t, d.AlertDue(), "a retried decision has no alert due")
		return d, false
	}
	err := eng.Alert(context.Background(), &d, n)
	return d, err == nil
}

// until redelivers ev until it is acknowledged (at most n times), as Pub/Sub does.
func until(t *testing.T, eng *engine.Engine, ev engine.Event, n engine.Notifier, tries int) engine.Decision {
	t.Helper()
	var d engine.Decision
	for i := 0; i < tries; i++ {
		var acked bool
		if d, acked = deliver(t, eng, ev, n); acked {
			return d
		}
	}
	t.Fatalf("not acknowledged after %d deliveries: %s %s %s", tries, d.Action, d.Reason, d.Error)
	return d
}

// settledOnce checks the end state every protocol test ends in: the signed bytes live,
// one alert about the object, the incident done and alerted.
func (h *harness) settledOnce(object string, gen int64) {
	h.t.Helper()
	_, b := h.live(object)
	assert.Equal(h.t, h.good, b, "the signed bytes are live")
	n := 0
	for _, d := range h.notes.all() {
		if d.Object == object {
			n++
		}
	}
	assert.Equal(h.t, 1, n, "exactly one alert")
	rec, ok := h.stateObject("incidents/" + bucket + "/" + object + "/" + itoa(gen) + ".json")
	if !ok {
		return // no state bucket
	}
	var r struct {
		Status  string
		Alerted bool
	}
	require.NoError(h.t, json.Unmarshal(rec, &r))
	assert.Equal(h.t, "done", r.Status)
	assert.True(h.t, r.Alerted)
}

func finalize(object string, gen int64) engine.Event {
	return engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: object, Generation: gen}
}

// The response to the incident record's create is lost: the retry meets 412 and must
// recognise its own record, not call the incident someone else's.
func TestLostResponseOnIncidentCreate(t *testing.T) {
	for _, noState := range []bool{false} {
		var f *faults
		h := newHarness(t, harnessOpts{noState: noState, wrap: func(s engine.Store) engine.Store { f = newFaults(t, s); return f }})
		h.put("install.sh", h.good)
		g := h.put("install.sh", tampered(h.good))
		f.add("write", stateBucket, "incidents/", loseResponse, 0, 1)
		d, acked := deliver(t, h.eng, finalize("install.sh", g), h.notes)
		assert.True(t, acked)
		assert.Equal(t, engine.ActionRestored, d.Action, string(d.Reason)+d.Error)
		h.settledOnce("install.sh", g)
	}
}

// The response to the restore (a copy of the good generation) is lost: the retry meets 412. The live generation is
// tamperguard's own restore, so the alert says restored, not "a newer generation replaced it".
func TestLostResponseOnRestoreWrite(t *testing.T) {
	for name, noState := range map[string]bool{"state bucket": false, "memory": true} {
		t.Run(name, func(t *testing.T) {
			var f *faults
			h := newHarness(t, harnessOpts{noState: noState, wrap: func(s engine.Store) engine.Store { f = newFaults(t, s); return f }})
			h.put("install.sh", h.good)
			g := h.put("install.sh", tampered(h.good))
			f.add("copy", bucket, "install.sh", loseResponse, 0, 1)
			d, acked := deliver(t, h.eng, finalize("install.sh", g), h.notes)
			assert.True(t, acked)
			assert.Equal(t, engine.ActionRestored, d.Action, string(d.Reason)+d.Error)
			assert.NotZero(t, d.RestoredGeneration)
			h.settledOnce("install.sh", g)
		})
	}
}

// Someone sets the incident's marker on their own upload: the marker proves nothing, the
// bytes decide. The forged generation is not taken for tamperguard's restore.
func TestForgedRestoreMarkerIsNotTrusted(t *testing.T) {
	var f *faults
	h := newHarness(t, harnessOpts{wrap: func(s engine.Store) engine.Store { f = newFaults(t, s); return f }})
	h.put("install.sh", h.good)
	g := h.put("install.sh", tampered(h.good))
	// The restore (a copy) fails as if a newer write came first: the attacker's, marked.
	f.add("copy", bucket, "install.sh", failBefore, 0, 1)
	w := h.srv.Client.Bucket(bucket).Object("install.sh").NewWriter(h.ctx)
	w.Metadata = map[string]string{"tamperguard-incident": bucket + "/install.sh#" + itoa(g)}
	_, err := w.Write(tampered(tampered(h.good)))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	forged := w.Attrs().Generation

	d := h.eng.Handle(h.ctx, finalize("install.sh", g))
	assert.NotEqual(t, engine.ActionRestored, d.Action, "a marked generation that is not the signed bytes is not tamperguard's restore")
	// The forged generation's own event is judged on its own: tampered, restored.
	d = until(t, h.eng, finalize("install.sh", forged), h.notes, 3)
	assert.Equal(t, engine.ActionRestored, d.Action, string(d.Reason)+d.Error)
	_, b := h.live("install.sh")
	assert.Equal(t, h.good, b)
}

// Reading the restored generation back fails after the write committed: restored, not yet
// verified. The retry verifies it; the alert goes out once, saying restored. (An upload of
// the release's own copy is read back: no older generation holds the signed bytes.)
func TestReadBackFailureAfterCommittedRestore(t *testing.T) {
	var f *faults
	h := newHarness(t, harnessOpts{wrap: func(s engine.Store) engine.Store { f = newFaults(t, s); return f }})
	g := h.put("install.sh", tampered(h.good))
	// Opens of install.sh: the bad generation (hashed, its bytes kept for the diff), then the
	// read-back of the upload, which fails.
	f.add("open", bucket, "install.sh", failRead, 1, 1)
	d, acked := deliver(t, h.eng, finalize("install.sh", g), h.notes)
	require.False(t, acked, "restored but not verified is not final")
	assert.True(t, d.Transient)
	gen, b := h.live("install.sh")
	require.Equal(t, h.good, b, "the write committed")
	assert.NotEqual(t, g, gen)

	d = until(t, h.eng, finalize("install.sh", g), h.notes, 3)
	assert.Equal(t, engine.ActionRestored, d.Action, string(d.Reason)+d.Error)
	assert.Equal(t, gen, d.RestoredGeneration, "the retry verified the first write, it did not write again")
	assert.Equal(t, engine.VerifiedReadBack, d.RestoreVerified)
	h.settledOnce("install.sh", g)
}

// A copy of a good generation counts as restored without a read-back only when the store
// reports it with the source's size and checksums. A copy reported otherwise is read back:
// restored when its bytes are the signed ones after all, restore_mismatch when they are not
// (a store that wrote other bytes), never "restored" on the store's word alone.
func TestCopyReportedWithOtherChecksumsIsReadBack(t *testing.T) {
	for _, c := range []struct {
		name   string
		kind   faultKind
		action engine.Action
	}{
		{"the bytes are the source's", otherChecksum, engine.ActionRestored},
		{"the store wrote other bytes", badCopy, engine.ActionFailed},
	} {
		t.Run(c.name, func(t *testing.T) {
			var f *faults
			h := newHarness(t, harnessOpts{wrap: func(s engine.Store) engine.Store { f = newFaults(t, s); return f }})
			h.put("install.sh", h.good)
			g := h.put("install.sh", tampered(h.good))
			f.add("copy", bucket, "install.sh", c.kind, 0, 1)
			d := h.handle(finalize("install.sh", g))
			require.Equal(t, c.action, d.Action, string(d.Reason)+d.Error)
			if c.action == engine.ActionRestored {
				assert.Equal(t, engine.VerifiedReadBack, d.RestoreVerified)
				return
			}
			assert.Equal(t, engine.ReasonRestoreMismatch, d.Reason)
			assert.Empty(t, d.RestoreVerified)
			assert.Zero(t, d.RestoredGeneration)
		})
	}
}

// A transient fault at each step after the claim: the incident is given up at once (not
// held until its lease ends), the redelivery owns it and finishes: signed bytes, one alert.
func TestTransientFaultAfterTheClaimIsRetriedAtOnce(t *testing.T) {
	for _, c := range []struct {
		name            string
		op, bucket, sub string
		kind            faultKind
		skip            int
		retried         bool
	}{
		{"evidence copy", "copy", stateBucket, "evidence/", failBefore, 0, true},
		{"versions listing", "versions", bucket, "install.sh", failBefore, 0, true},
		{"good generation read", "open", bucket, "install.sh", failBefore, 1, true},
		{"restore copy", "copy", bucket, "install.sh", failBefore, 0, true},
		{"read-back of the release's copy", "open", bucket, "install.sh", failBefore, 1, true},
		{"incident done", "write", stateBucket, "incidents/", failBefore, 1, true},
		{"evidence copy past the deadline", "copy", stateBucket, "evidence/", hang, 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var f *faults
			clk := newClock()
			h := newHarness(t, harnessOpts{now: clk.now, wrap: func(s engine.Store) engine.Store { f = newFaults(t, s); return f }})
			if !strings.HasPrefix(c.name, "read-back") { // else no generation to copy: the release's copy is uploaded
				h.put("install.sh", h.good)
			}
			g := h.put("install.sh", tampered(h.good))
			f.add(c.op, c.bucket, c.sub, c.kind, c.skip, 1)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			d := h.eng.Handle(ctx, finalize("install.sh", g))
			require.Equal(t, c.retried, d.Transient, "%s: %s %s", d.Action, d.Reason, d.Error)
			if !c.retried {
				require.NoError(t, h.eng.Alert(h.ctx, &d, h.notes))
				assert.Equal(t, engine.ActionRestored, d.Action, string(d.Reason)+d.Error)
				h.settledOnce("install.sh", g)
				return
			}
			// No clock advance: the lease was given up, the retry need not wait for it.
			d = until(t, h.eng, finalize("install.sh", g), h.notes, 3)
			assert.Equal(t, engine.ActionRestored, d.Action, string(d.Reason)+d.Error)
			h.settledOnce("install.sh", g)
		})
	}
}

// An instance dies in the middle of a restore (after its write, before it records the
// outcome): its redelivery finds the incident held while the lease lives (retried, not
// acknowledged), takes it over once it expired, recognises the restore as the incident's
// own, and alerts once.
func TestOwnerDiesMidRestore(t *testing.T) {
	clk := newClock()
	var f *faults
	h := newHarness(t, harnessOpts{now: clk.now, wrap: func(s engine.Store) engine.Store { f = newFaults(t, s); return f }})
	h.put("install.sh", h.good)
	g := h.put("install.sh", tampered(h.good))
	// The first instance hangs forever on the record write that follows its restore (the
	// outcome): it is dead from there on.
	f.add("write", stateBucket, "incidents/", hang, 1, 1)
	deadDone := make(chan engine.Decision, 1)
	go func() { deadDone <- h.eng.Handle(context.Background(), finalize("install.sh", g)) }()
	require.Eventually(t, func() bool { _, b := h.live("install.sh"); return string(b) == string(h.good) }, 10*time.Second, 5*time.Millisecond)

	other := h.instance(nil)
	d, acked := deliver(t, other, finalize("install.sh", g), h.notes)
	assert.False(t, acked, "held under a live lease: retried")
	assert.Equal(t, engine.ReasonHeld, d.Reason)

	clk.advance(engine.DefaultLease + time.Second)
	d = until(t, other, finalize("install.sh", g), h.notes, 3)
	assert.Equal(t, engine.ActionRestored, d.Action, string(d.Reason)+d.Error)
	h.settledOnce("install.sh", g)
	versions := 0
	it := h.srv.Client.Bucket(bucket).Objects(h.ctx, &storage.Query{Prefix: "install.sh", Versions: true})
	for {
		if _, err := it.Next(); err != nil {
			break
		}
		versions++
	}
	assert.Equal(t, 3, versions, "one restore: the new owner did not write again")
}

// An instance finishes the work and dies before the alert: the outbox. The incident is done
// and un-alerted; the next delivery after its lease sends the alert, once.
func TestOwnerDiesBeforeTheAlert(t *testing.T) {
	for name, noState := range map[string]bool{"state bucket": false, "memory": true} {
		t.Run(name, func(t *testing.T) {
			clk := newClock()
			h := newHarness(t, harnessOpts{noState: noState, now: clk.now})
			h.put("install.sh", h.good)
			g := h.put("install.sh", tampered(h.good))
			d := h.eng.Handle(h.ctx, finalize("install.sh", g))
			require.True(t, d.AlertDue())
			require.Equal(t, engine.ActionRestored, d.Action)
			// ...and the process dies: no Alert, no Settle.

			again, acked := deliver(t, h.eng, finalize("install.sh", g), h.notes)
			assert.False(t, acked, "the alert's owner may still be sending it")
			assert.Equal(t, engine.ReasonHeld, again.Reason)
			assert.Empty(t, h.notes.all())

			clk.advance(engine.DefaultLease + time.Second)
			again = until(t, h.eng, finalize("install.sh", g), h.notes, 3)
			assert.Equal(t, engine.ActionRestored, again.Action, "the alert says what the first owner did")
			assert.Equal(t, d.RestoredGeneration, again.RestoredGeneration)
			h.settledOnce("install.sh", g)
			notes := h.notes.all()
			require.Len(t, notes, 1)
			assert.Equal(t, tampered(h.good), notes[0].BadContent, "the bytes for the diff are read again")

			again, acked = deliver(t, h.eng, finalize("install.sh", g), h.notes)
			assert.True(t, acked)
			assert.Equal(t, engine.ReasonDuplicate, again.Reason)
			assert.Len(t, h.notes.all(), 1)
		})
	}
}

// finder is a notifier that can tell whether an incident's alert went out.
type finder struct {
	*recorder
	sent map[string]bool
}

func (f finder) AlertSent(_ context.Context, incident string, _ time.Time) (bool, error) {
	return f.sent[incident], nil
}

// The owner posted the alert and died before recording it: the next owner asks the
// notifier (a Slack bot searches its channel) and does not post it again.
func TestOutboxDoesNotRepeatAnAlertThatWentOut(t *testing.T) {
	clk := newClock()
	h := newHarness(t, harnessOpts{now: clk.now})
	h.put("install.sh", h.good)
	g := h.put("install.sh", tampered(h.good))
	d := h.eng.Handle(h.ctx, finalize("install.sh", g))
	require.True(t, d.AlertDue())
	n := finder{recorder: h.notes, sent: map[string]bool{d.Incident: true}}
	clk.advance(engine.DefaultLease + time.Second)
	again := until(t, h.eng, finalize("install.sh", g), n, 3)
	assert.Equal(t, engine.ActionRestored, again.Action)
	assert.Empty(t, h.notes.all(), "already posted: not posted again")
	d2, acked := deliver(t, h.eng, finalize("install.sh", g), n)
	assert.True(t, acked)
	assert.Equal(t, engine.ReasonDuplicate, d2.Reason)
}

// An alert that cannot be sent leaves the incident un-alerted and gives it up at once: the
// retry sends it.
func TestUndeliveredAlertIsSentByTheRetry(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.put("install.sh", h.good)
	g := h.put("install.sh", tampered(h.good))
	d := h.eng.Handle(h.ctx, finalize("install.sh", g))
	require.Error(t, h.eng.Alert(h.ctx, &d, failingNotifier{}))
	d = until(t, h.eng, finalize("install.sh", g), h.notes, 3)
	assert.Equal(t, engine.ActionRestored, d.Action)
	h.settledOnce("install.sh", g)
}

type failingNotifier struct{}

func (failingNotifier) Notify(context.Context, *engine.Decision) error {
	return errors.New("slack is down")
}

// The event of an incident whose owner died never comes back (dead-lettered): the audit
// finds the incident pending, finishes it and alerts, once.
func TestAuditFinishesAnAbandonedIncident(t *testing.T) {
	clk := newClock()
	var f *faults
	h := newHarness(t, harnessOpts{now: clk.now, wrap: func(s engine.Store) engine.Store { f = newFaults(t, s); return f }})
	h.put("install.sh", h.good)
	g := h.put("install.sh", tampered(h.good))
	f.add("write", stateBucket, "incidents/", hang, 1, 1)
	go h.eng.Handle(context.Background(), finalize("install.sh", g))
	require.Eventually(t, func() bool { _, b := h.live("install.sh"); return string(b) == string(h.good) }, 10*time.Second, 5*time.Millisecond)

	clk.advance(engine.DefaultLease + time.Second)
	other := h.instance(nil)
	var ds []engine.Decision
	require.NoError(t, other.Audit(h.ctx, true, func(d *engine.Decision) {
		require.NoError(t, other.Alert(h.ctx, d, h.notes))
		ds = append(ds, *d)
	}))
	h.settledOnce("install.sh", g)
	assert.Equal(t, engine.ActionRestored, h.notes.all()[0].Action)
}

// A deletion restored by an instance that died before recording it: the redelivered
// archive event finds the object live with the incident's marker and finishes the incident.
func TestOwnerDiesMidDeletionRestore(t *testing.T) {
	clk := newClock()
	var f *faults
	h := newHarness(t, harnessOpts{now: clk.now, wrap: func(s engine.Store) engine.Store { f = newFaults(t, s); return f }})
	g := h.put("install.sh", h.good)
	h.del("install.sh")
	f.add("write", stateBucket, "incidents/", hang, 1, 1)
	ev := engine.Event{Kind: engine.KindArchive, Bucket: bucket, Object: "install.sh", Generation: g}
	go h.eng.Handle(context.Background(), ev)
	require.Eventually(t, func() bool { _, b := h.live("install.sh"); return string(b) == string(h.good) }, 10*time.Second, 5*time.Millisecond)
	clk.advance(engine.DefaultLease + time.Second)
	d := until(t, h.instance(nil), ev, h.notes, 3)
	assert.Equal(t, engine.ActionRestored, d.Action, string(d.Reason)+d.Error)
	assert.Len(t, h.notes.all(), 1)
	rec, ok := h.stateObject("incidents/" + bucket + "/install.sh/" + itoa(g) + ".gone.json")
	require.True(t, ok)
	assert.Contains(t, string(rec), `"alerted":true`)
}

// A quarantine whose delete response was lost: nothing is served any more, so it was
// quarantined, not "skipped because a newer generation replaced it".
func TestLostResponseOnQuarantine(t *testing.T) {
	var f *faults
	h := newHarness(t, harnessOpts{wrap: func(s engine.Store) engine.Store { f = newFaults(t, s); return f }})
	h.put("quarantine/install.sh", h.good)
	g := h.put("quarantine/install.sh", tampered(h.good))
	f.add("delete", bucket, "quarantine/install.sh", loseResponse, 0, 1)
	d, acked := deliver(t, h.eng, finalize("quarantine/install.sh", g), h.notes)
	assert.True(t, acked)
	assert.Equal(t, engine.ActionQuarantined, d.Action, string(d.Reason)+d.Error)
	gen, _ := h.live("quarantine/install.sh")
	assert.Zero(t, gen)
}

// A metadata repair whose response was lost: the retry meets 412 and recognises its own
// repair.
func TestLostResponseOnMetadataRepair(t *testing.T) {
	var f *faults
	h := newHarness(t, harnessOpts{wrap: func(s engine.Store) engine.Store { f = newFaults(t, s); return f }})
	g := h.put("install.sh", h.good)
	a, err := h.srv.Client.Bucket(bucket).Object("install.sh").Update(h.ctx, storage.ObjectAttrsToUpdate{ContentType: "text/html"})
	require.NoError(t, err)
	f.add("update", bucket, "install.sh", loseResponse, 0, 1)
	d, acked := deliver(t, h.eng, engine.Event{Kind: engine.KindMetadata, Bucket: bucket, Object: "install.sh", Generation: g, Metageneration: a.Metageneration}, h.notes)
	assert.True(t, acked)
	assert.Equal(t, engine.ActionMetadataRestored, d.Action, string(d.Reason)+d.Error)
	attrs, err := h.srv.Client.Bucket(bucket).Object("install.sh").Attrs(h.ctx)
	require.NoError(t, err)
	assert.Equal(t, "text/x-shellscript", attrs.ContentType)
}

// A maintainer signs and pushes a new release tag and uploads its script 100 ms later,
// within a second of the engine's previous release lookup: the upload is judged against a
// lookup that started after it was written, so it is not reverted.
func TestMaintainerWhoTagsThenUploadsIsNotReverted(t *testing.T) {
	clk := newClock()
	old := []byte("#!/bin/sh\necho v1.0.0\n")
	rel, err := demo.NewRelease(t.TempDir(), "v1.0.0", "install.sh", old)
	require.NoError(t, err)
	srv := gcstest.New(t, gcstest.BucketSpec{Name: bucket, Versioning: true})
	yaml := `rules:
  - bucket: ` + bucket + `
    objects: ["install.sh"]
    release: {git: ` + rel.Repo + `, tag: latest}
    keys: {openpgp: [` + rel.KeyFile + `]}
`
	cfg, err := config.Parse(config.Source{Name: "t.yaml", Data: []byte(yaml), Dir: t.TempDir()})
	require.NoError(t, err)
	eng, err := engine.New(engine.Options{Store: gcs.New(srv.Client), Policy: cfg.Policy, Now: clk.now})
	require.NoError(t, err)
	put := func(b []byte) int64 {
		w := srv.Client.Bucket(bucket).Object("install.sh").NewWriter(context.Background())
		_, err := w.Write(b)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		return w.Attrs().Generation
	}
	d := eng.Handle(context.Background(), finalize("install.sh", put(old)))
	require.Equal(t, engine.VerdictOK, d.Verdict, d.Error)
	require.Equal(t, "v1.0.0", d.Release)

	next := []byte("#!/bin/sh\necho v1.1.0\n")
	require.NoError(t, rel.Next("v1.1.0", next))
	clk.advance(100 * time.Millisecond)
	g := put(next)
	d = eng.Handle(context.Background(), finalize("install.sh", g))
	assert.Equal(t, engine.VerdictOK, d.Verdict, "%s %s", d.Reason, d.Error)
	assert.Equal(t, "v1.1.0", d.Release)
	assert.Equal(t, engine.ActionNone, d.Action)
	r, err := srv.Client.Bucket(bucket).Object("install.sh").NewReader(context.Background())
	require.NoError(t, err)
	live, _ := io.ReadAll(r)
	r.Close()
	assert.Equal(t, string(next), string(live), "the new release's script stays live")
}
