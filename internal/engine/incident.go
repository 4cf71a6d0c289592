package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The incident protocol. Every tampering, deletion or metadata change that tamperguard acts
// on is an incident: a record keyed by what happened (bucket/object#generation, with a
// suffix for deletions and metadata changes), created with DoesNotExist in the state bucket
// (or in memory without one). The record says who works on it (an owner token), until when
// (a lease, renewed while the work goes on), and what came of it:
//
//	(none) ──create──▶ handling{owner, lease} ──finish──▶ done{alerted: false, lease} ──alerted──▶ done{alerted: true}
//	                      │  ▲                              │  ▲
//	                      │  └──take over (lease expired)───┘  └── take over (lease expired): send the alert (the outbox)
//	                      └──abandon (transient failure): lease ends now, a redelivery takes over at once
//
// A delivery that meets a record under a live lease is retried, never acknowledged; one that
// meets a done, alerted record is a duplicate. Writes are conditional on the record's
// generation; every write bumps Seq, so an owner that lost a write's response (and got 412
// on the retry, or any other error) recognises its own write by owner and write token.

// DefaultLease is how long a claim on an incident holds without renewal: short enough that
// a crashed owner's incident is taken over by the next redelivery, long enough for renewals
// (every third of it) to land under load.
const DefaultLease = 30 * time.Second

// settleTimeout bounds the record writes that end a piece of work (abandon, finish, alerted),
// and half the lease does too. They run on a fresh context: the event's own may be the
// deadline that just expired.
const settleTimeout = 15 * time.Second

// maxHold bounds how long one owner keeps renewing a lease, so that a wedged owner cannot
// hold an incident forever.
const maxHold = 15 * time.Minute

// memoryRetention is how long the in-memory store keeps finished records.
const memoryRetention = time.Hour

// maxRecordSize bounds the records read back from the state bucket.
const maxRecordSize = 1 << 20

// Incident statuses.
const (
	statusHandling = "handling"
	statusDone     = "done"
)

// ErrLeaseLost: another delivery took the incident over (this owner's lease had expired);
// the work stops and the event is retried.
var ErrLeaseLost = errors.New("incident lease lost to another delivery")

// markerKey is the custom metadata that names the incident on what tamperguard writes to
// the watched bucket (restored generations, repaired metadata), so that after a lost
// response it can tell its own write from someone else's. It is a hint, never proof: a
// generation is "ours" only if it also hashes to the signed digest.
const markerKey = "tamperguard-incident"

// incidentRecord is one incident in the record store.
type incidentRecord struct {
	Key   string `json:"key"`
	Owner string `json:"owner"`
	Seq   int64  `json:"seq"`
	// Write is a fresh token per write: after an error whose write may have committed, the
	// writer recognises its own write by it (the same Seq could be another attempt's).
	Write   string    `json:"write"`
	Status  string    `json:"status"`
	Lease   time.Time `json:"lease_until,omitzero"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
	// Owners counts the deliveries that owned it (1 + takeovers).
	Owners int `json:"owners"`
	// Restored is the generation tamperguard wrote, once the write committed.
	Restored  int64     `json:"restored_generation,omitempty"`
	Alerted   bool      `json:"alerted"`
	AlertedAt time.Time `json:"alerted_at,omitzero"`
	// Outcome is what was found and done, for whoever sends the alert.
	Outcome *outcome `json:"outcome,omitempty"`
}

// pending reports whether the record still needs an owner's attention: work or an alert.
func (r *incidentRecord) pending() bool { return r.Status != statusDone || !r.Alerted }

// recordStore keeps incident records. Implementations: the state bucket, or memory.
type recordStore interface {
	// create stores rec under key if there is none (ErrPrecondition otherwise).
	create(ctx context.Context, key string, rec incidentRecord) (int64, error)
	// load returns the record and its version (ErrObjectNotFound if none).
	load(ctx context.Context, key string) (incidentRecord, int64, error)
	// update replaces the record if its version is still ver (ErrPrecondition otherwise).
	update(ctx context.Context, key string, ver int64, rec incidentRecord) (int64, error)
	// pending lists the records that may still need work or an alert.
	pending(ctx context.Context, fn func(rec incidentRecord) error) error
}

// claimResult is what a claim found.
type claimResult int

const (
	claimOwned     claimResult = iota // this delivery owns the incident: do the work
	claimOutbox                       // the work is done, the alert is not: this delivery sends it
	claimHeld                         // another delivery holds a live lease: retry later
	claimDuplicate                    // done and alerted: nothing is left to do
)

// incident is an incident this delivery owns, until it is finished or abandoned.
type incident struct {
	e     *Engine
	key   string
	token string

	mu  sync.Mutex // one write at a time: renewals race with the work's own writes
	ver int64
	rec incidentRecord

	cancel  context.CancelCauseFunc // ends the work when the lease is lost
	stopped chan struct{}           // closed when renewal stops
	stop    sync.Once
	quit    chan struct{}
}

func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// claim makes this delivery the owner of the incident key, or says who is.
func (e *Engine) claim(ctx context.Context, key string) (*incident, claimResult, error) {
	inc := &incident{e: e, key: key, token: newToken()}
	now := e.now()
	inc.rec = incidentRecord{Key: key, Owner: inc.token, Seq: 1, Write: newToken(), Status: statusHandling,
		Lease: now.Add(e.lease), Started: now, Updated: now, Owners: 1}
	ver, err := e.records.create(ctx, key, inc.rec)
	if err == nil {
		inc.ver = ver
		return inc, claimOwned, nil
	}
	if !errors.Is(err, ErrPrecondition) {
		// The create may have committed with its answer lost or cut short: look.
		if cur, v, lerr := e.records.load(ctx, key); lerr == nil && cur.Owner == inc.token && cur.Write == inc.rec.Write {
			inc.ver, inc.rec = v, cur
			return inc, claimOwned, nil
		}
		return nil, 0, fmt.Errorf("creating incident record %s: %w", key, err)
	}
	for range 3 {
		cur, ver, err := e.records.load(ctx, key)
		if errors.Is(err, ErrObjectNotFound) {
			// Gone between our create and this read (pruned): create again.
			if ver, err = e.records.create(ctx, key, inc.rec); err == nil {
				inc.ver = ver
				return inc, claimOwned, nil
			} else if errors.Is(err, ErrPrecondition) {
				continue
			}
		}
		if err != nil {
			return nil, 0, fmt.Errorf("reading incident record %s: %w", key, err)
		}
		if cur.Owner == inc.token && cur.Write == inc.rec.Write {
			// Our create committed and its response was lost; the retry met our own record.
			inc.ver, inc.rec = ver, cur
			return inc, claimOwned, nil
		}
		switch {
		case !cur.pending():
			return nil, claimDuplicate, nil
		case e.now().Before(cur.Lease):
			return nil, claimHeld, nil
		}
		// Its owner died or gave up: take it over.
		next := cur
		next.Owner, next.Seq, next.Write, next.Lease, next.Updated = inc.token, cur.Seq+1, newToken(), e.now().Add(e.lease), e.now()
		next.Owners++
		nv, err := e.records.update(ctx, key, ver, next)
		if err != nil {
			if again, v2, lerr := e.records.load(ctx, key); lerr == nil && again.Owner == inc.token && again.Write == next.Write {
				nv, err = v2, nil // our takeover committed; its answer was lost
			} else if errors.Is(err, ErrPrecondition) {
				continue // someone else moved first: look again
			}
		}
		if err != nil {
			return nil, 0, fmt.Errorf("taking over incident record %s: %w", key, err)
		}
		inc.ver, inc.rec = nv, next
		e.log.Warn("took over an incident whose owner stopped", "incident", key, "started", cur.Started,
			"status", cur.Status, "owners", next.Owners)
		if cur.Status == statusDone {
			return inc, claimOutbox, nil
		}
		return inc, claimOwned, nil
	}
	return nil, claimHeld, nil
}

// write changes the record with mutate, conditionally on its version, on a fresh bounded
// context. A lost response is recognised by owner and Seq.
func (inc *incident) write(mutate func(*incidentRecord)) error {
	inc.mu.Lock()
	defer inc.mu.Unlock()
	e := inc.e
	ctx, cancel := context.WithTimeout(context.Background(), min(settleTimeout, e.lease/2))
	defer cancel()
	next := inc.rec
	mutate(&next)
	next.Seq, next.Write = inc.rec.Seq+1, newToken()
	next.Updated = e.now()
	ver, err := e.records.update(ctx, inc.key, inc.ver, next)
	if err != nil {
		// Committed with the answer lost (the retry met 412) or cut short? Look.
		cur, v2, lerr := e.records.load(ctx, inc.key)
		switch {
		case lerr == nil && cur.Owner == inc.token && cur.Write == next.Write:
			ver, err = v2, nil
		case lerr == nil && cur.Owner != inc.token:
			return fmt.Errorf("%w: incident %s", ErrLeaseLost, inc.key)
		case lerr == nil && cur.Write != inc.rec.Write:
			// An earlier write of ours whose outcome we did not know did commit: adopt it,
			// so that the next write is conditioned on the record as it is.
			inc.ver, inc.rec = v2, cur
		}
	}
	if err != nil {
		return fmt.Errorf("updating incident record %s: %w", inc.key, err)
	}
	inc.ver, inc.rec = ver, next
	return nil
}

// hold keeps the lease alive until the incident is settled, and returns a context for the
// work that ends when the lease is lost to another delivery.
func (inc *incident) hold(ctx context.Context) context.Context {
	wctx, cancel := context.WithCancelCause(ctx)
	inc.cancel = cancel
	inc.quit = make(chan struct{})
	inc.stopped = make(chan struct{})
	every := inc.e.lease / 3
	go func() {
		defer close(inc.stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		limit := time.NewTimer(maxHold)
		defer limit.Stop()
		for {
			select {
			case <-inc.quit:
				return
			case <-limit.C:
				inc.e.log.Error("incident held too long; letting the lease expire", "incident", inc.key)
				cancel(fmt.Errorf("%w: held for %s", ErrLeaseLost, maxHold))
				return
			case <-t.C:
				err := inc.write(func(r *incidentRecord) { r.Lease = inc.e.now().Add(inc.e.lease) })
				if errors.Is(err, ErrLeaseLost) {
					cancel(err)
					return
				}
				if err != nil {
					inc.e.log.Warn("renewing an incident lease failed; trying again", "incident", inc.key, "error", err)
				}
			}
		}
	}()
	return wctx
}

// stopHolding stops the lease renewal and ends the work's context.
func (inc *incident) stopHolding() {
	inc.stop.Do(func() {
		if inc.quit != nil {
			close(inc.quit)
			<-inc.stopped
		}
		if inc.cancel != nil {
			inc.cancel(context.Canceled)
		}
	})
}

// abandon gives the incident up after a transient failure: the lease ends now, so the
// retry takes it over at once instead of waiting out the lease.
func (inc *incident) abandon() {
	inc.stopHolding()
	if err := inc.write(func(r *incidentRecord) { r.Lease = inc.e.now() }); err != nil {
		inc.e.log.Warn("giving up an incident failed; a retry takes it over when its lease ends", "incident", inc.key, "error", err)
	}
}

// finish records the final outcome. With alert, the incident stays leased until Settle says
// the alert went out; without, it is complete.
func (inc *incident) finish(d *Decision, alert bool) error {
	out := snapshot(d)
	err := inc.write(func(r *incidentRecord) {
		r.Status, r.Outcome = statusDone, out
		r.Restored = d.RestoredGeneration
		if alert {
			r.Lease = inc.e.now().Add(inc.e.lease)
		} else {
			r.Alerted, r.Lease = true, time.Time{}
		}
	})
	if !alert || err != nil {
		inc.stopHolding()
	}
	return err
}

// ---- owning an incident ----------------------------------------------------------------

// Incident kinds, part of the key: one generation can be written tampered, later deleted,
// and have its metadata changed many times, and each of those is its own incident.
const (
	incidentTampered = ""
	incidentGone     = ".gone"
)

func incidentMetadata(metageneration int64) string { return fmt.Sprintf(".m%d", metageneration) }

func incidentKey(d *Decision, kind string) string {
	return fmt.Sprintf("%s/%s#%d%s", d.Bucket, d.Object, d.Generation, kind)
}

// own claims the incident for d. It returns the incident and a context for the work (ended
// if the lease is lost) when this delivery is to act. Otherwise it records on d why not: the
// state bucket could not be reached or another delivery holds the incident (both retried),
// the incident is complete (a duplicate), or only its alert is left (d becomes that alert).
func (e *Engine) own(ctx context.Context, d *Decision, kind string) (context.Context, *incident, bool) {
	key := incidentKey(d, kind)
	inc, res, err := e.claim(ctx, key)
	switch {
	case err != nil:
		d.setErr(err)
		d.Transient = true
		return ctx, nil, false
	case res == claimHeld:
		d.Reason, d.Transient, d.Incident = ReasonHeld, true, key
		return ctx, nil, false
	case res == claimDuplicate:
		d.Duplicate, d.Reason, d.Incident = true, ReasonDuplicate, key
		return ctx, nil, false
	case res == claimOutbox:
		e.resumeAlert(ctx, inc, d)
		return ctx, nil, false
	}
	d.Incident = key
	return inc.hold(ctx), inc, true
}

// conclude ends the work on an incident: a transient failure gives it up for the retry;
// anything else is final and recorded, with an alert due unless alert is false. A failure to
// record the outcome makes the event a retry: the next owner finds the work done (its
// restore is marked) and finishes the record.
func (e *Engine) conclude(inc *incident, d *Decision, alert bool) {
	if d.Transient {
		inc.abandon()
		return
	}
	if err := inc.finish(d, alert); err != nil {
		e.log.Error("recording an incident's outcome failed; the event will be delivered again", "incident", inc.key, "error", err)
		inc.abandon()
		d.Transient = true
		if d.Error == "" {
			d.Error = err.Error()
		}
		return
	}
	if alert {
		d.alert = &alertDue{inc: inc, since: e.now()}
	}
}

// asOwner runs work as the owner of d's incident of kind: it claims the incident (or records
// on d why this delivery does not act: see own), keeps the lease while work runs, and
// concludes the incident with the outcome work left on d, with an alert due if work
// returns true.
func (e *Engine) asOwner(ctx context.Context, d *Decision, kind string, work func(ctx context.Context, inc *incident) (alert bool)) {
	ctx, inc, ok := e.own(ctx, d, kind)
	if !ok {
		return
	}
	alert := true
	defer func() { e.conclude(inc, d, alert) }()
	alert = work(ctx, inc)
}

// ---- the state bucket -----------------------------------------------------------------

// stateName is the name of a record about bucket/object in the state bucket:
// prefix/bucket/object/leaf. An object name that would make it too long for Cloud Storage
// is replaced by its SHA-256, so that no name an attacker picks can make a record unwritable.
func stateName(prefix, bucket, object, leaf string) string {
	name := prefix + "/" + bucket + "/" + object + "/" + leaf
	if len(name) <= 1000 {
		return name
	}
	sum := sha256.Sum256([]byte(object))
	return prefix + "/" + bucket + "/_sha256/" + hex.EncodeToString(sum[:]) + "/" + leaf
}

// bucketRecords keeps incident records in the state bucket at incidents/B/O/LEAF.json. The
// record's status is repeated in its custom metadata so that a listing finds the pending
// ones without reading every record.
type bucketRecords struct {
	store  Store
	bucket string
}

var _ recordStore = (*bucketRecords)(nil)

const incidentPrefix = "incidents/"

func (s *bucketRecords) name(key string) string {
	b, rest, _ := strings.Cut(key, "/")
	i := strings.LastIndexByte(rest, '#')
	if i < 0 {
		return stateName("incidents", b, rest, "0.json")
	}
	return stateName("incidents", b, rest[:i], rest[i+1:]+".json")
}

func (s *bucketRecords) write(ctx context.Context, key string, cond Condition, rec incidentRecord) (int64, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	meta := Metadata{ContentType: "application/json", CacheControl: "no-store", Custom: map[string]string{
		"tamperguard-status": rec.Status, "tamperguard-alerted": strconv.FormatBool(rec.Alerted),
	}}
	a, err := s.store.Write(ctx, s.bucket, s.name(key), cond, meta, strings.NewReader(string(b)))
	return a.Generation, err
}

func (s *bucketRecords) create(ctx context.Context, key string, rec incidentRecord) (int64, error) {
	return s.write(ctx, key, Condition{DoesNotExist: true}, rec)
}

func (s *bucketRecords) update(ctx context.Context, key string, ver int64, rec incidentRecord) (int64, error) {
	return s.write(ctx, key, Condition{GenerationMatch: ver}, rec)
}

func (s *bucketRecords) load(ctx context.Context, key string) (incidentRecord, int64, error) {
	var rec incidentRecord
	gen, err := readJSON(ctx, s.store, s.bucket, s.name(key), &rec)
	if err == nil && rec.Key != key {
		err = fmt.Errorf("incident record %s holds %q, not %q", ref(s.bucket, s.name(key), 0), rec.Key, key)
	}
	return rec, gen, err
}

func (s *bucketRecords) pending(ctx context.Context, fn func(rec incidentRecord) error) error {
	return s.store.List(ctx, s.bucket, incidentPrefix, func(a ObjectAttrs) error {
		c := a.Meta.Custom
		if c["tamperguard-status"] == statusDone && c["tamperguard-alerted"] == "true" {
			return nil
		}
		var rec incidentRecord
		if _, err := readJSON(ctx, s.store, s.bucket, a.Name, &rec); err != nil {
			return fmt.Errorf("reading incident record %s: %w", ref(s.bucket, a.Name, 0), err)
		}
		if !rec.pending() {
			return nil
		}
		return fn(rec)
	})
}

// errBadRecord: a record in the state bucket is too large or not JSON. Its generation is
// still returned, so that the record can be replaced.
var errBadRecord = errors.New("unreadable record")

// readJSON reads a JSON record of at most maxRecordSize bytes from bucket and returns its
// generation.
func readJSON(ctx context.Context, store Store, bucket, name string, v any) (int64, error) {
	return readJSONLimit(ctx, store, bucket, name, v, maxRecordSize)
}

// readJSONLimit is readJSON with another bound.
func readJSONLimit(ctx context.Context, store Store, bucket, name string, v any, limit int64) (int64, error) {
	attrs, err := store.Attrs(ctx, bucket, name, 0)
	if err != nil {
		return 0, err
	}
	b, err := readRecordBytes(ctx, store, bucket, name, attrs.Generation, limit)
	if err == nil {
		err = unmarshalRecord(bucket, name, b, v)
	}
	return attrs.Generation, err
}

// readRecordBytes reads generation gen of a record of at most limit bytes.
func readRecordBytes(ctx context.Context, store Store, bucket, name string, gen, limit int64) ([]byte, error) {
	r, err := store.Open(ctx, bucket, name, gen)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: %s is over %d bytes", errBadRecord, ref(bucket, name, 0), limit)
	}
	return b, nil
}

// unmarshalRecord decodes a record's bytes.
func unmarshalRecord(bucket, name string, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s is not valid JSON: %v", errBadRecord, ref(bucket, name, 0), err)
	}
	return nil
}

// ---- memory ---------------------------------------------------------------------------

// memoryRecords keeps incident records in this process: the same protocol for one instance
// without a state bucket. Duplicates delivered to other instances are not de-duplicated.
type memoryRecords struct {
	now func() time.Time

	mu   sync.Mutex
	ver  int64
	recs map[string]memoryRecord
}

type memoryRecord struct {
	rec incidentRecord
	ver int64
}

var _ recordStore = (*memoryRecords)(nil)

func newMemoryRecords(now func() time.Time) *memoryRecords {
	return &memoryRecords{now: now, recs: map[string]memoryRecord{}}
}

func (s *memoryRecords) create(_ context.Context, key string, rec incidentRecord) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, r := range s.recs {
		if !r.rec.pending() && now.Sub(r.rec.Updated) > memoryRetention {
			delete(s.recs, k)
		}
	}
	if _, ok := s.recs[key]; ok {
		return 0, ErrPrecondition
	}
	s.ver++
	s.recs[key] = memoryRecord{rec: rec, ver: s.ver}
	return s.ver, nil
}

func (s *memoryRecords) load(_ context.Context, key string) (incidentRecord, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[key]
	if !ok {
		return incidentRecord{}, 0, ErrObjectNotFound
	}
	return r.rec, r.ver, nil
}

func (s *memoryRecords) update(_ context.Context, key string, ver int64, rec incidentRecord) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[key]
	if !ok || r.ver != ver {
		return 0, ErrPrecondition
	}
	s.ver++
	s.recs[key] = memoryRecord{rec: rec, ver: s.ver}
	return s.ver, nil
}

func (s *memoryRecords) pending(_ context.Context, fn func(rec incidentRecord) error) error {
	s.mu.Lock()
	var recs []incidentRecord
	for _, r := range s.recs {
		if r.rec.pending() {
			recs = append(recs, r.rec)
		}
	}
	s.mu.Unlock()
	for _, r := range recs {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}
