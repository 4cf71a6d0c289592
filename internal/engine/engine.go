// Package engine decides whether published bytes are the ones the maintainers signed, and
// repairs them when they are not. decide.go holds the decision table (DESIGN.md,
// "Decisions"); the steps it calls live in their own files; the incident protocol that makes
// one delivery act and one alert go out is in incident.go and outbox.go. The engine gets a
// policy (internal/policy) and a Store; it never reads configuration or a cloud SDK itself.
package engine

import (
	"errors"
	"log/slog"
	"time"

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
	hashes  knownHashes // digests of generations hashed before (see knownHashes)
	// auditMemory keeps the audit's memo and cursor without a state bucket.
	auditMemory memoryBlobs
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

// Ref names the event's object and generation.
func (ev Event) Ref() gsref.ObjectRef { return ref(ev.Bucket, ev.Object, ev.Generation) }
