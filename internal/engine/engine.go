package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/gsref"
	"github.com/tamperguard/tamperguard/internal/policy"
	"github.com/tamperguard/tamperguard/internal/release"
)

// Event is one storage change, decoded from whatever carried it.
type Event struct {
	ID             string
	Kind           Kind
	Bucket         string
	Object         string
	Generation     int64
	Metageneration int64
	// OverwrittenBy is the generation that replaced this one (archive/delete of an
	// overwrite), when the notification says so.
	OverwrittenBy int64
	Time          time.Time
}

// Decision is the outcome for one object: what was found and what was done. Its own fields
// are the JSON line every command prints; the embedded Detail is what alerts and logs need
// besides, and is not printed.
type Decision struct {
	Bucket             string  `json:"bucket"`
	Object             string  `json:"object"`
	Generation         int64   `json:"generation"`
	Verdict            Verdict `json:"verdict"`
	ExpectedSHA256     string  `json:"expected_sha256"`
	ActualSHA256       string  `json:"actual_sha256"`
	Size               int64   `json:"size"`
	Release            string  `json:"release"`
	Signer             string  `json:"signer"`
	Action             Action  `json:"action"`
	RestoredGeneration int64   `json:"restored_generation,omitempty"`
	Reason             Reason  `json:"reason,omitempty"`
	Error              string  `json:"error,omitempty"`
	// Incident names the incident record when the decision acted on one.
	Incident string `json:"incident,omitempty"`
	// Floor says why the object was judged against the last release that verified (the
	// floor) rather than a fresh one: newer candidates refused, or the source unreachable.
	Floor string `json:"floor,omitempty"`

	Detail `json:"-"`

	alert *alertDue // set when people must hear about it (see AlertDue)
}

// Detail is what an alert and the decision's log line need besides the printed line. Its JSON
// form is what an incident record keeps of it (the outcome), for whoever sends the alert if
// the owner cannot; the fields without one are not kept.
type Detail struct {
	Kind      Kind      `json:"kind,omitempty"`      // the event that led here ("" for check/audit)
	EventID   string    `json:"event_id,omitempty"`  // the event's ID
	EventTime time.Time `json:"event_time,omitzero"` // when the storage change happened, if the event said
	Created   time.Time `json:"created,omitzero"`    // when the judged generation was written
	Restored  time.Time `json:"restored,omitzero"`   // when the good bytes were live again
	// Replaced is when a newer generation replaced the judged one (skipped_newer), if known.
	Replaced time.Time `json:"replaced,omitzero"`
	Evidence string    `json:"evidence,omitempty"` // gs:// path of the evidence copy
	Source   string    `json:"source,omitempty"`   // where restored bytes came from
	// BadCacheControl is the Cache-Control the tampered generation was served with: edge
	// caches may keep serving it for its max-age.
	BadCacheControl string `json:"bad_cache_control,omitempty"`
	// MetadataChanges lists protected metadata that differed: field → {found, restored}.
	MetadataChanges map[string][2]string `json:"metadata_changes,omitempty"`

	// ReleaseInfo is the signed release the decision rests on (the record keeps its source,
	// signer identity and skipped tags: see outcome).
	ReleaseInfo *release.Release `json:"-"`
	// Skipped lists newer release tags that were not trusted, and why.
	Skipped   []release.Skipped `json:"-"`
	Duplicate bool              `json:"-"` // another delivery completed this incident
	Err       error             `json:"-"` // what failed (its text is the printed Error)
	Transient bool              `json:"-"` // worth a retry
	// BadContent and GoodContent are the tampered and the signed bytes, for a diff in the
	// alert; nil when the object is larger than MaxSample or could not be read. The record
	// does not keep them: they are read again from the bucket.
	BadContent, GoodContent []byte `json:"-"`
}

// MaxSample bounds the bytes kept in a Decision for diffs.
const MaxSample = 1 << 20

// Options configure an Engine.
type Options struct {
	Store  Store
	Policy *policy.Policy
	// Resolver resolves releases (default: one with the policy's TTL and, with a state
	// bucket, marks kept there).
	Resolver *release.Resolver
	Logger   *slog.Logger // default: slog.Default()
	Now      func() time.Time
	// MaxObjectSize bounds what is hashed (default 5 GiB); bigger objects are unverifiable.
	MaxObjectSize int64
	// Lease is how long a claim on an incident holds without renewal (default the
	// policy's, else DefaultLease).
	Lease time.Duration
}

// Engine judges objects against their signed releases and repairs them.
type Engine struct {
	store   Store
	pol     *policy.Policy
	res     *release.Resolver
	log     *slog.Logger
	now     func() time.Time
	maxSize int64
	state   string
	records recordStore
	lease   time.Duration
}

// New returns an Engine.
func New(opts Options) (*Engine, error) {
	if opts.Store == nil || opts.Policy == nil {
		return nil, errors.New("engine: a store and a policy are required")
	}
	e := &Engine{
		store: opts.Store, pol: opts.Policy, res: opts.Resolver,
		log: opts.Logger, now: opts.Now, maxSize: opts.MaxObjectSize, state: opts.Policy.StateBucket,
		lease: opts.Lease,
	}
	if e.lease <= 0 {
		e.lease = opts.Policy.Lease
	}
	if e.lease <= 0 {
		e.lease = DefaultLease
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.maxSize <= 0 {
		e.maxSize = 5 << 30
	}
	if e.state != "" {
		e.records = &bucketRecords{store: e.store, bucket: e.state}
	} else {
		e.records = newMemoryRecords(e.now)
	}
	if e.res == nil {
		ro := release.ResolverOptions{TTL: opts.Policy.ReleaseTTL, Now: e.now}
		if e.state != "" {
			ro.Marks = &stateMarks{store: e.store, bucket: e.state}
		}
		e.res = release.NewResolver(ro)
	}
	return e, nil
}

// Policy is what the engine enforces.
func (e *Engine) Policy() *policy.Policy { return e.pol }

// ref names generation gen of bucket/object (0: none); it prints as gs://B/O[#G], quoted when
// a name holds unprintable bytes, so that it cannot forge a log line or drive a terminal.
func ref(bucket, object string, gen int64) gsref.ObjectRef {
	return gsref.ObjectRef{Bucket: bucket, Object: object, Generation: gen}
}

// Ref names the decision's object and generation.
func (d *Decision) Ref() gsref.ObjectRef { return ref(d.Bucket, d.Object, d.Generation) }

// Ref names the event's object and generation.
func (ev Event) Ref() gsref.ObjectRef { return ref(ev.Bucket, ev.Object, ev.Generation) }

// judged is the verdict on one generation's bytes.
type judged struct {
	attrs     ObjectAttrs
	exp       Expectation
	actual    checksum.Digest
	verdict   Verdict
	reason    Reason
	err       error
	transient bool
}

// judge hashes exactly generation gen and compares it with the signed digest, resolving
// the release once more, uncached, before a mismatch counts.
func (e *Engine) judge(ctx context.Context, m policy.Match, bucket, object string, gen int64) judged {
	var j judged
	// Any release lookup that starts from here on started after the judged generation was
	// written: only such a lookup may declare a mismatch.
	begun := e.now()
	attrs, err := e.store.Attrs(ctx, bucket, object, gen)
	if err != nil {
		j.verdict, j.reason, j.err = VerdictUnverifiable, ReasonObjectUnreadable, err
		j.transient = errors.Is(err, ErrTransient)
		if errors.Is(err, ErrObjectNotFound) {
			j.reason = ReasonGenerationGone
		}
		return j
	}
	j.attrs = attrs
	if attrs.Size > e.maxSize {
		j.verdict, j.reason = VerdictUnverifiable, ReasonObjectTooLarge
		j.err = fmt.Errorf("%s is %d bytes, over the %d-byte limit", ref(bucket, object, attrs.Generation), attrs.Size, e.maxSize)
		return j
	}
	exp, err := Expect(ctx, e.res, m, object, time.Time{})
	j.exp = exp
	if err != nil {
		j.verdict, j.reason, j.err = VerdictUnverifiable, ReasonOf(err), err
		j.transient = isTransientRelease(err)
		return j
	}
	actual, n, err := e.hashGeneration(ctx, bucket, object, attrs.Generation)
	if err != nil {
		j.verdict, j.reason, j.err = VerdictUnverifiable, ReasonObjectUnreadable, err
		j.transient = errors.Is(err, ErrTransient)
		if errors.Is(err, ErrObjectNotFound) {
			j.reason, j.transient = ReasonGenerationGone, false
		}
		return j
	}
	j.actual, j.attrs.Size = actual, n
	if actual == exp.Entry.Digest {
		j.verdict = VerdictOK
		return j
	}
	if exp.Release.Fetched.Before(begun) {
		fresh, err := Expect(ctx, e.res, m, object, begun)
		if err != nil {
			j.exp = fresh
			j.verdict, j.reason, j.err = VerdictUnverifiable, ReasonOf(err), err
			j.transient = isTransientRelease(err)
			return j
		}
		j.exp = fresh
		if actual == fresh.Entry.Digest {
			j.verdict = VerdictOK
			return j
		}
	}
	j.verdict = VerdictTampered
	return j
}

// hashGeneration streams exactly that generation through SHA-256.
func (e *Engine) hashGeneration(ctx context.Context, bucket, object string, gen int64) (checksum.Digest, int64, error) {
	r, err := e.store.Open(ctx, bucket, object, gen)
	if err != nil {
		return checksum.Digest{}, 0, err
	}
	defer r.Close()
	d, n, err := HashReader(io.LimitReader(r, e.maxSize+1))
	if err != nil {
		return d, n, fmt.Errorf("reading %s: %w", ref(bucket, object, gen), err)
	}
	if n > e.maxSize {
		return d, n, fmt.Errorf("%s grew past the %d-byte limit while being read", ref(bucket, object, gen), e.maxSize)
	}
	return d, n, nil
}

func (d *Decision) fill(j judged) {
	d.Verdict, d.Reason, d.Err, d.Transient = j.verdict, j.reason, j.err, j.transient
	if j.attrs.Generation != 0 {
		d.Generation = j.attrs.Generation
		d.Size = j.attrs.Size
		d.Created = j.attrs.Created
	}
	if j.verdict == VerdictOK || j.verdict == VerdictTampered {
		d.ActualSHA256 = j.actual.String()
	}
	d.expect(j.exp)
	if j.err != nil {
		d.Error = j.err.Error()
	}
}

// expect records which signed release (and entry, when resolved) the decision rests on.
func (d *Decision) expect(exp Expectation) {
	if exp.Release == nil {
		return
	}
	d.ReleaseInfo, d.Release, d.Skipped = exp.Release, exp.Release.Tag, exp.Release.Skipped
	d.Signer = exp.Release.Signer.ID()
	if f := exp.Release.Floor; f != nil && f.Reason != nil {
		d.Floor = f.Reason.Error()
	}
	if exp.Entry.Name != "" {
		d.ExpectedSHA256 = exp.Entry.Digest.String()
	}
}
