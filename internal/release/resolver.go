package release

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Latest is the tag that asks for the newest release signed by a pinned key.
const Latest = "latest"

// DefaultTTL is how long a resolved "latest" is trusted before it is resolved again.
const DefaultTTL = 60 * time.Second

// exactTTL bounds how long an exact tag's release is kept. A signed tag does not change,
// but a maintainer may re-sign one; an hour keeps that visible without refetching per event.
const exactTTL = time.Hour

// maxCandidates bounds the tags tried for "latest": an attacker who can push tags must not
// make every event fetch thousands of them. Running out is a refusal (an alert), not a guess.
const maxCandidates = 32

// fetchTimeout bounds one shared fetch, which outlives the caller that started it.
const fetchTimeout = 2 * time.Minute

// Mark is the newest signed release seen from a source: the rollback high-water mark.
type Mark struct {
	Tag  string    `json:"tag"`
	Time time.Time `json:"time"`
}

// MarkStore keeps high-water marks. The memory store is per process; a state bucket keeps
// them across instances so a restarted function still refuses a rollback.
type MarkStore interface {
	LoadMark(ctx context.Context, source string) (Mark, bool, error)
	SaveMark(ctx context.Context, source string, m Mark) error
}

// MemoryMarks is a MarkStore in memory.
type MemoryMarks struct {
	mu    sync.Mutex
	marks map[string]Mark
}

var _ MarkStore = (*MemoryMarks)(nil)

// LoadMark returns the mark for source.
func (s *MemoryMarks) LoadMark(_ context.Context, source string) (Mark, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.marks[source]
	return m, ok, nil
}

// SaveMark stores m for source.
func (s *MemoryMarks) SaveMark(_ context.Context, source string, m Mark) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.marks == nil {
		s.marks = make(map[string]Mark)
	}
	s.marks[source] = m
	return nil
}

// ResolverOptions configures a Resolver. Zero values give the defaults.
type ResolverOptions struct {
	TTL   time.Duration    // how long "latest" is cached; default DefaultTTL
	Marks MarkStore        // rollback high-water marks; default in memory
	Now   func() time.Time // default time.Now
}

// Resolver finds and caches verified releases. Concurrent lookups of one release share
// one fetch. It is safe for concurrent use.
type Resolver struct {
	ttl   time.Duration
	marks MarkStore
	now   func() time.Time

	mu       sync.Mutex
	cache    map[string]cached
	inflight map[string]*call // the newest fetch in progress per source and tag
}

type cached struct {
	rel     *Release
	fetched time.Time // when the fetch that produced rel started
}

// call is one fetch in progress, shared by every lookup that may use it.
type call struct {
	started time.Time
	done    chan struct{}
	rel     *Release
	err     error
}

// NewResolver returns a Resolver.
func NewResolver(opts ResolverOptions) *Resolver {
	r := &Resolver{ttl: opts.TTL, marks: opts.Marks, now: opts.Now, cache: make(map[string]cached), inflight: make(map[string]*call)}
	if r.ttl <= 0 {
		r.ttl = DefaultTTL
	}
	if r.marks == nil {
		r.marks = &MemoryMarks{}
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// Resolve returns the verified release tag ("latest" or an exact tag) from src.
//
// startedAfter, when set, asks for a release read by a lookup that started at or after that
// instant (on the Resolver's clock): neither a cached release nor a fetch already in flight
// that started earlier is used. A mismatch is only declared against such a lookup, started
// after the judged bytes were written, so a maintainer who signs and then uploads is never
// reverted because a lookup began a moment before the new release existed. Zero allows
// the cache within its TTL.
func (r *Resolver) Resolve(ctx context.Context, src Source, tag string, startedAfter time.Time) (*Release, error) {
	if tag == "" {
		tag = Latest
	}
	key := src.Key() + "\x00" + tag
	ttl := r.ttl
	if tag != Latest {
		ttl = max(r.ttl, exactTTL)
	}
	now := r.now()
	r.mu.Lock()
	if c, ok := r.cache[key]; ok && now.Sub(c.fetched) < ttl && !c.fetched.Before(startedAfter) {
		r.mu.Unlock()
		return c.rel, nil
	}
	cl, ok := r.inflight[key]
	if !ok || cl.started.Before(startedAfter) {
		cl = &call{started: r.now(), done: make(chan struct{})}
		r.inflight[key] = cl
		go r.fetch(ctx, key, src, tag, cl)
	}
	r.mu.Unlock()
	select {
	case <-cl.done:
		return cl.rel, cl.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %s: %w", ErrUnreachable, src.Key(), ctx.Err())
	}
}

// fetch runs one shared fetch. It must not die with the first caller's context (others
// wait on it); each caller still stops waiting when its own context ends.
func (r *Resolver) fetch(ctx context.Context, key string, src Source, tag string, cl *call) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	var rel *Release
	var err error
	if tag == Latest {
		rel, err = r.latest(fctx, src)
	} else {
		rel, err = src.Fetch(fctx, tag)
	}
	if err == nil {
		rel.Fetched = cl.started
	}
	r.mu.Lock()
	if c, ok := r.cache[key]; ok && errors.Is(err, ErrRollback) && c.fetched.After(cl.started) {
		// A lookup that started later verified a newer release while this one read the
		// older state: this one is stale, not a rollback.
		rel, err = c.rel, nil
	}
	if err == nil {
		// A slower, older fetch never replaces what a newer one cached.
		if c, ok := r.cache[key]; !ok || !c.fetched.After(cl.started) {
			r.cache[key] = cached{rel: rel, fetched: cl.started}
		}
	}
	if r.inflight[key] == cl {
		delete(r.inflight, key)
	}
	r.mu.Unlock()
	cl.rel, cl.err = rel, err
	close(cl.done)
}

// latest returns the newest candidate whose signature verifies, refusing a rollback.
func (r *Resolver) latest(ctx context.Context, src Source) (*Release, error) {
	cands, err := src.Candidates(ctx)
	if err != nil {
		return nil, err
	}
	cands = sortCandidates(cands)
	var skipped []Skipped
	for i, c := range cands {
		if i == maxCandidates {
			break
		}
		rel, err := src.Fetch(ctx, c.Tag)
		if err != nil {
			if Refused(err) || errors.Is(err, ErrNotFound) {
				skipped = append(skipped, Skipped{Tag: c.Tag, Reason: err})
				continue
			}
			// Could not find out: skipping to an older release would be a guess.
			return nil, err
		}
		rel.Skipped = skipped
		if err := r.checkRollback(ctx, src.Key(), rel); err != nil {
			return nil, err
		}
		return rel, nil
	}
	return nil, noTrusted(src.Key(), len(cands), skipped)
}

// checkRollback refuses rel when a newer signed release was seen before, and raises the
// mark when rel is the newest yet.
func (r *Resolver) checkRollback(ctx context.Context, key string, rel *Release) error {
	mark, ok, err := r.marks.LoadMark(ctx, key)
	if err != nil {
		return fmt.Errorf("%w: reading rollback mark for %s: %w", ErrUnreachable, key, err)
	}
	if ok && newer(mark.Tag, mark.Time, rel.Tag, rel.Time) {
		return &RollbackError{Source: key, Offered: rel.Tag, Seen: mark.Tag, Skipped: rel.Skipped}
	}
	if !ok || newer(rel.Tag, rel.Time, mark.Tag, mark.Time) {
		if err := r.marks.SaveMark(ctx, key, Mark{Tag: rel.Tag, Time: rel.Time}); err != nil {
			return fmt.Errorf("%w: saving rollback mark for %s: %w", ErrUnreachable, key, err)
		}
	}
	return nil
}

// RollbackError says an older release was offered as latest after a newer one was seen.
type RollbackError struct {
	Source  string
	Offered string    // the newest tag that verified now
	Seen    string    // the newer tag seen before
	Skipped []Skipped // why the newer tags did not verify now
}

func (e *RollbackError) Error() string {
	return fmt.Sprintf("%v: %s offers %s as its newest signed release, but %s was seen before%s",
		ErrRollback, e.Source, e.Offered, e.Seen, skippedSummary(e.Skipped))
}

// Unwrap makes errors.Is(err, ErrRollback) true.
func (e *RollbackError) Unwrap() error { return ErrRollback }

func noTrusted(key string, n int, skipped []Skipped) error {
	if n == 0 {
		return fmt.Errorf("%w: %s has no release tags", ErrNoTrustedRelease, key)
	}
	tried := min(n, maxCandidates)
	return fmt.Errorf("%w: none of the %d newest releases of %s verified%s", ErrNoTrustedRelease, tried, key, skippedSummary(skipped))
}

// skippedSummary lists why candidates were skipped, bounded so a flood of tags cannot
// make an error line unbounded.
func skippedSummary(skipped []Skipped) string {
	if len(skipped) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(" (skipped: ")
	for i, s := range skipped {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(skipped)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %v", s.Tag, s.Reason)
	}
	b.WriteString(")")
	return b.String()
}

// NewerThan reports whether m marks a newer release than o.
func (m Mark) NewerThan(o Mark) bool { return newer(m.Tag, m.Time, o.Tag, o.Time) }
