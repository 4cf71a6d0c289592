package release

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/semver"
)

// Latest is the tag that asks for the newest release signed by a pinned key.
const Latest = "latest"

// DefaultTTL is how long a resolved "latest" is trusted before it is resolved again.
const DefaultTTL = 60 * time.Second

// exactTTL bounds how long an exact tag's release is kept. A signed tag does not change,
// but a maintainer may re-sign one; an hour keeps that visible without refetching per event.
const exactTTL = time.Hour

// maxCandidates bounds the candidates for "latest" whose signature is checked and refused in
// one resolution: an attacker who can push tags (and sign them with a key of their own) must
// not make every event fetch thousands of them. Candidates that are not signed at all, or not
// there, cost less and count only against maxFetches. Running out falls back to the floor.
const maxCandidates = 32

// maxFetches bounds every fetch of one resolution.
const maxFetches = 128

// maxRefusals bounds the memory of candidates refused for their content (by ID).
const maxRefusals = 4096

// fetchTimeout bounds one shared fetch, which outlives the caller that started it.
const fetchTimeout = 2 * time.Minute

// MarkStore keeps each rule's mark and floor (see Mark). The memory store is per process; a
// state bucket keeps them across instances and restarts, so a restarted function still
// refuses a rollback and still has a release to judge against when the source is broken.
type MarkStore interface {
	LoadMark(ctx context.Context, source string) (Mark, bool, error)
	// SaveMark stores m unless what is stored supersedes it (see Mark.Supersedes).
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

// SaveMark stores m for source unless the stored mark is newer.
func (s *MemoryMarks) SaveMark(_ context.Context, source string, m Mark) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.marks == nil {
		s.marks = make(map[string]Mark)
	}
	if old, ok := s.marks[source]; ok && !m.Supersedes(old) {
		return nil
	}
	m.Replaces = ""
	s.marks[source] = m
	return nil
}

// Supersedes reports whether m should replace stored: it is another release, and signed data
// does not show stored to be newer (nor leaves the two unordered when stored has an order).
func (m Mark) Supersedes(stored Mark) bool {
	if m.Replaces != "" && m.Replaces == stored.ID {
		return true // stored no longer verifies against the pinned keys
	}
	return !sameMark(m, stored) && checkOrder("", stored, m) == nil
}

func sameMark(a, b Mark) bool {
	return a.ID == b.ID && a.Tag == b.Tag && a.Version == b.Version && a.Time.Equal(b.Time)
}

// evidenceID names what verified: a digest of the tag, the checksum file and its signature
// (for a git release, the signed tag object, which names every other object).
func evidenceID(ev *Evidence) string {
	h := sha256.New()
	parts := [][]byte{[]byte(ev.Tag), ev.Checksums, ev.Signature}
	if ev.Git != nil {
		parts = append(parts, ev.Git.TagObject)
	}
	// Appended only when present, so that what was kept before they existed keeps its ID.
	for i, group := range [][][]byte{ev.Signatures, ev.Attestations} {
		if len(group) > 0 {
			parts = append(parts, []byte(fmt.Sprintf("%s %d", [2]string{"signatures", "attestations"}[i], len(group))))
			parts = append(parts, group...)
		}
	}
	for _, part := range parts {
		fmt.Fprintf(h, "%d:", len(part))
		h.Write(part)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// ResolverOptions configures a Resolver. Zero values give the defaults.
type ResolverOptions struct {
	TTL   time.Duration    // how long "latest" is cached; default DefaultTTL
	Marks MarkStore        // marks and floors; default in memory
	Now   func() time.Time // default time.Now
}

// Resolver finds and caches verified releases. Concurrent lookups of one release share
// one fetch. It is safe for concurrent use.
//
// Protection never switches off because the attacker added or broke something: for each rule
// (source and tag) the resolver keeps the newest release that verified, the floor, and when
// newer candidates are unsigned, wrongly signed, garbled, unreachable or older than the floor,
// it answers with the floor, saying so in Release.Floor and Release.Skipped. Releases are
// ordered by signed data only (Mark).
type Resolver struct {
	ttl   time.Duration
	marks MarkStore
	now   func() time.Time

	mu       sync.Mutex
	cache    map[string]cached
	inflight map[string]*call       // the newest fetch in progress per source and tag
	floors   map[string]*floorEntry // per mark key
	refusals map[string]refusal     // candidates refused for their content, by mark key, tag and ID
	voids    map[string]string      // per mark key, the ID of a stored mark that no longer verifies
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

// floorEntry is the newest release that verified for one rule.
type floorEntry struct {
	mark     Mark
	rel      *Release  // nil: only the mark is known (its evidence could not be verified again now)
	verified time.Time // when rel verified
	stored   bool      // the MarkStore holds this mark
}

// NewResolver returns a Resolver.
func NewResolver(opts ResolverOptions) *Resolver {
	r := &Resolver{ttl: opts.TTL, marks: opts.Marks, now: opts.Now, cache: make(map[string]cached),
		inflight: make(map[string]*call), floors: make(map[string]*floorEntry), refusals: make(map[string]refusal),
		voids: make(map[string]string)}
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
//
// When nothing newer can be trusted, the answer is the rule's floor (Release.Floor is set);
// an error means there is no floor either.
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
	rel, err := r.resolve(fctx, src, tag)
	if err == nil {
		rel.Fetched = cl.started
	}
	r.mu.Lock()
	if c, ok := r.cache[key]; ok && c.fetched.After(cl.started) &&
		(err != nil || rel.Floor != nil && c.rel.Floor == nil || markOf(c.rel).NewerThan(markOf(rel))) {
		// A lookup that started later verified a newer release while this one read the
		// older state: this one is stale, not a rollback, nor a reason to fall back.
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

// markKey names one rule's mark and floor: "latest" of a source, or one exact tag of it.
func markKey(src Source, tag string) string {
	if tag == Latest {
		return src.Key()
	}
	return src.Key() + " tag " + tag
}

// resolve finds the newest trusted release, or the floor when nothing newer can be trusted.
func (r *Resolver) resolve(ctx context.Context, src Source, tag string) (*Release, error) {
	mk := markKey(src, tag)
	fl, err := r.loadFloor(ctx, src, mk)
	if err != nil {
		return nil, err
	}
	var rel *Release
	var skipped []Skipped
	var cause error
	if tag == Latest {
		rel, skipped, cause = r.newest(ctx, src, mk, fl)
	} else {
		rel, skipped, cause = r.exact(ctx, src, tag, mk, fl)
	}
	if rel != nil {
		rel.Skipped = skipped
		return r.raise(ctx, mk, rel)
	}
	if fl != nil && fl.rel != nil {
		return fl.hold(skipped, cause), nil
	}
	return nil, cause
}

// newest returns the newest candidate whose signature verifies and that is not older than the
// floor; else what was skipped and why.
func (r *Resolver) newest(ctx context.Context, src Source, mk string, fl *floorEntry) (*Release, []Skipped, error) {
	cands, err := listCandidates(ctx, src)
	if err != nil {
		return nil, nil, err
	}
	listed := len(cands)
	cands = sortCandidates(cands, filterOf(src))
	var skipped []Skipped
	refused, fetches, notTried := 0, 0, 0
	var older string // the newest candidate left untried because the floor is newer
	for i, c := range cands {
		if fl != nil && fl.mark.Version != "" {
			if v := canonicalSemver(c.Tag); v != "" && semver.Compare(v, fl.mark.Version) < 0 {
				if c.Refused != nil {
					continue // could not have been the answer: not reported either
				}
				older = c.Tag // the floor is newer by signed version than all that is left
				break
			}
		}
		if c.Refused != nil {
			// Refused from the listing alone: reported, never fetched, and no budget spent.
			skipped = append(skipped, Skipped{Tag: c.Tag, Reason: c.Refused})
			continue
		}
		if why := r.refused(mk, c); why != nil {
			skipped = append(skipped, Skipped{Tag: c.Tag, Reason: why})
			continue
		}
		if refused >= maxCandidates || fetches >= maxFetches {
			notTried = len(cands) - i
			break
		}
		fetches++
		rel, err := src.Fetch(ctx, c.Tag)
		if err != nil {
			switch {
			case errors.Is(err, ErrUnsigned), errors.Is(err, ErrNotFound):
				skipped = append(skipped, Skipped{Tag: c.Tag, Reason: err})
				continue
			case Refused(err):
				refused++
				r.remember(mk, c, err)
				skipped = append(skipped, Skipped{Tag: c.Tag, Reason: err})
				continue
			}
			// Could not find out: skipping to an older release would be a guess.
			return nil, append(skipped, Skipped{Tag: c.Tag, Reason: err}), err
		}
		rel = named(src, rel)
		if fl != nil {
			if err := checkOrder(mk, fl.mark, markOf(rel)); err != nil {
				refused++
				skipped = append(skipped, Skipped{Tag: c.Tag, Reason: err})
				continue
			}
		}
		return rel, skipped, nil
	}
	if fl != nil && notTried == 0 && (older != "" || len(skipped) == 0) {
		// Nothing at or above the floor verifies: its own tag is gone or broken, and what
		// is left is older.
		offered := "no release at or above it"
		if older != "" {
			offered = "only older releases (the newest " + clip(older) + ")"
		}
		return nil, skipped, &RollbackError{Source: mk, Offered: offered, Seen: fl.mark.String(), Skipped: skipped}
	}
	if len(cands) == 1 && cands[0].Tag == "" && len(skipped) == 1 {
		return nil, skipped, skipped[0].Reason // a fixed URL: its one release, and why not
	}
	return nil, skipped, noTrusted(mk, listed, len(cands), skipped, notTried)
}

// listCandidates lists src's candidates; a CandidateLister's refused tags come along as
// candidates refused from the listing, so that every one is reported as skipped.
func listCandidates(ctx context.Context, src Source) ([]Candidate, error) {
	l, ok := src.(CandidateLister)
	if !ok {
		return src.Candidates(ctx)
	}
	cands, refused, err := l.ListCandidates(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range refused {
		reason := s.Reason
		if reason == nil {
			reason = fmt.Errorf("%w: %s refused tag %q", ErrInvalid, src.Key(), clip(s.Tag))
		}
		cands = append(cands, Candidate{Tag: s.Tag, Refused: reason})
	}
	return cands, nil
}

// exact fetches one tag, refusing it when it is older than the floor of that tag.
func (r *Resolver) exact(ctx context.Context, src Source, tag, mk string, fl *floorEntry) (*Release, []Skipped, error) {
	rel, err := src.Fetch(ctx, tag)
	if err != nil {
		return nil, []Skipped{{Tag: tag, Reason: err}}, err
	}
	rel = named(src, rel)
	if fl != nil {
		if err := checkOrder(mk, fl.mark, markOf(rel)); err != nil {
			return nil, []Skipped{{Tag: tag, Reason: err}}, err
		}
	}
	return rel, nil, nil
}

// named copies rel (a source may share the Release it returns) and fills in the signed
// version for sources whose tag names are signed.
func named(src Source, rel *Release) *Release {
	c := *rel
	c.Skipped, c.Floor = nil, nil
	if n, ok := src.(tagNamer); ok && n.signsTagNames() && c.Version == "" {
		c.Version = canonicalSemver(c.Tag)
	}
	return &c
}

// refusal is a candidate refused for its content, remembered for refusalTTL: long enough
// that a flood costs one fetch per candidate, short enough that a refusal that depended on
// the clock (a signature dated minutes ahead) does not last.
type refusal struct {
	err error
	at  time.Time
}

const refusalTTL = time.Hour

// refused is why candidate c was refused before, when its content (ID) has not changed.
func (r *Resolver) refused(mk string, c Candidate) error {
	if c.ID == "" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.refusals[mk+"\x00"+c.Tag+"\x00"+c.ID]; ok && r.now().Sub(f.at) < refusalTTL {
		return f.err
	}
	return nil
}

// remember keeps a refusal that depends only on the candidate's content.
func (r *Resolver) remember(mk string, c Candidate, err error) {
	if c.ID == "" || errors.Is(err, ErrRollback) || errors.Is(err, ErrUnordered) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.refusals) >= maxRefusals {
		clear(r.refusals)
	}
	r.refusals[mk+"\x00"+c.Tag+"\x00"+c.ID] = refusal{err: err, at: r.now()}
}

// hold is the floor as an answer: why it stands in, and what was not trusted.
func (fe *floorEntry) hold(skipped []Skipped, cause error) *Release {
	c := *fe.rel
	c.Skipped = skipped
	c.Floor = &Floor{Reason: cause, Verified: fe.verified}
	return &c
}

// loadFloor returns the rule's floor: the one in memory, or a newer one from the store,
// verified again against the source's current keys before it counts.
func (r *Resolver) loadFloor(ctx context.Context, src Source, mk string) (*floorEntry, error) {
	r.mu.Lock()
	mem := r.floors[mk]
	r.mu.Unlock()
	stored, ok, err := r.marks.LoadMark(ctx, mk)
	switch {
	case err != nil && mem != nil:
		return mem, nil // our own store is unreadable; the floor in memory still holds
	case err != nil:
		return nil, fmt.Errorf("%w: reading the rollback mark of %s: %w", ErrUnreachable, mk, err)
	case !ok:
		return mem, nil
	case mem != nil && (sameMark(mem.mark, stored) || !stored.NewerThan(mem.mark)):
		if sameMark(mem.mark, stored) && !mem.stored {
			r.mu.Lock()
			mem.stored = true
			r.mu.Unlock()
		}
		return mem, nil
	}
	// Another instance (or this one before a restart) verified a release this process has
	// not: verify it again now, against the keys pinned today.
	fe := &floorEntry{mark: stored, stored: true}
	rel, void, err := reverify(ctx, src, stored)
	switch {
	case err == nil:
		fe.rel, fe.verified = rel, r.now()
		if m := markOf(rel); !sameMark(m, stored) {
			fe.mark, fe.stored = m, false
		}
	case void:
		// The kept evidence no longer verifies against the pinned keys (they were changed):
		// it counts for nothing, neither as floor nor as mark, and the next floor replaces it.
		r.mu.Lock()
		r.voids[mk] = stored.ID
		r.mu.Unlock()
		return mem, nil
	default:
		// Could not check now (no evidence, and the tag is gone, broken or the source is
		// down): the mark still bars older releases, but there is no floor to answer with.
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur := r.floors[mk]; cur == nil || !cur.mark.NewerThan(fe.mark) {
		r.floors[mk] = fe
	}
	return r.floors[mk], nil
}

// ErrNoEvidence: a kept mark cannot be verified again (the source keeps no evidence and its
// tag cannot be fetched as the same release).
var ErrNoEvidence = errors.New("no evidence to verify the kept release again")

// reverify checks a kept mark's release again: from its evidence (offline, so a failure
// means it does not verify against today's keys: void), or else by fetching its tag again
// and finding the same signed order (a failure there may be the attacker's doing: the mark
// stands, without a floor).
func reverify(ctx context.Context, src Source, m Mark) (rel *Release, void bool, err error) {
	if m.Evidence != nil {
		if rv, ok := src.(Reverifier); ok {
			rel, err := rv.Reverify(ctx, m.Evidence)
			if err != nil {
				return nil, true, err
			}
			return named(src, rel), false, nil
		}
	}
	if m.Tag == "" || !m.hasOrder() {
		return nil, false, fmt.Errorf("%w: %s", ErrNoEvidence, src.Key())
	}
	rel, err = src.Fetch(ctx, m.Tag)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrNoEvidence, err)
	}
	rel = named(src, rel)
	if got := markOf(rel); got.Version != m.Version || !got.Time.Equal(m.Time) {
		return nil, false, fmt.Errorf("%w: %s of %s is no longer %s", ErrNoEvidence, clip(m.Tag), src.Key(), m.String())
	}
	return rel, false, nil
}

// raise makes rel the floor (in memory and in the store) unless a concurrent lookup already
// made a newer release the floor, which is then the answer.
func (r *Resolver) raise(ctx context.Context, mk string, rel *Release) (*Release, error) {
	m := markOf(rel)
	floor := *rel
	floor.Skipped = nil
	r.mu.Lock()
	cur := r.floors[mk]
	if cur != nil && !sameMark(cur.mark, m) && checkOrder(mk, cur.mark, m) != nil {
		r.mu.Unlock()
		if cur.rel == nil {
			return nil, checkOrder(mk, cur.mark, m)
		}
		c := *cur.rel
		return &c, nil
	}
	stored := cur != nil && cur.stored && sameMark(cur.mark, m)
	fe := &floorEntry{mark: m, rel: &floor, verified: r.now(), stored: stored}
	r.floors[mk] = fe
	save := m
	save.Replaces = r.voids[mk]
	r.mu.Unlock()
	if !stored {
		if err := r.marks.SaveMark(ctx, mk, save); err != nil {
			return nil, fmt.Errorf("%w: saving the rollback mark of %s: %w", ErrUnreachable, mk, err)
		}
		r.mu.Lock()
		fe.stored = true
		r.mu.Unlock()
	}
	return rel, nil
}

// RollbackError says an older release was offered after a newer one verified.
type RollbackError struct {
	Source  string
	Offered string    // what was offered (with its signed time or version)
	Seen    string    // the newer release that verified before
	Skipped []Skipped // why newer candidates did not verify now
}

func (e *RollbackError) Error() string {
	return fmt.Sprintf("%v: %s offers %s, but %s verified before%s",
		ErrRollback, e.Source, e.Offered, e.Seen, skippedSummary(e.Skipped))
}

// Unwrap makes errors.Is(err, ErrRollback) true.
func (e *RollbackError) Unwrap() error { return ErrRollback }

func noTrusted(key string, listed, kept int, skipped []Skipped, notTried int) error {
	switch {
	case listed == 0:
		return fmt.Errorf("%w: %s has no release tags", ErrNoTrustedRelease, key)
	case kept == 0:
		return fmt.Errorf("%w: none of the %d tags of %s may be latest (pre-releases and tags the rule's pattern leaves out are not)", ErrNoTrustedRelease, listed, key)
	}
	more := ""
	if notTried > 0 {
		more = fmt.Sprintf("; %d older ones not tried", notTried)
	}
	return fmt.Errorf("%w: none of the %d newest releases of %s verified%s%s", ErrNoTrustedRelease, len(skipped), key, more, skippedSummary(skipped))
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
		fmt.Fprintf(&b, "%s: %v", clip(s.Tag), s.Reason)
	}
	b.WriteString(")")
	return b.String()
}
