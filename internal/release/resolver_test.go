package release

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/signing"
)

// tableSource is a Source whose tags and their fates are a table; it stands in for the
// real sources (tested against real repositories and servers in their own tests) so the
// resolver's policy can be tested alone.
type tableSource struct {
	mu      sync.Mutex
	tags    map[string]error // nil = verifies
	times   map[string]time.Time
	fetches atomic.Int32
	gate    chan struct{} // when set, Fetch waits for it
	// holdFirst, when set, holds only the first Fetch until it is closed.
	holdFirst chan struct{}
}

func (s *tableSource) Key() string { return "table" }

func (s *tableSource) Candidates(context.Context) ([]Candidate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Candidate
	for t := range s.tags {
		out = append(out, Candidate{Tag: t, Time: s.times[t]})
	}
	return out, nil
}

func (s *tableSource) Fetch(ctx context.Context, tag string) (*Release, error) {
	if n := s.fetches.Add(1); n == 1 && s.holdFirst != nil {
		<-s.holdFirst
	}
	if s.gate != nil {
		<-s.gate
	}
	s.mu.Lock()
	err, ok := s.tags[tag]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, tag)
	}
	if err != nil {
		return nil, err
	}
	sums, perr := checksum.Parse([]byte(fmt.Sprintf("%064x  install.sh\n", len(tag))))
	if perr != nil {
		return nil, perr
	}
	return &Release{Source: "table", Tag: tag, Time: s.times[tag], Checksums: sums, ChecksumsName: "SHA256SUMS",
		Signer: signing.Signer{Scheme: "openpgp", Fingerprint: "ABCD"}}, nil
}

func (s *tableSource) set(tag string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tags == nil {
		s.tags = map[string]error{}
	}
	s.tags[tag] = err
}

func (s *tableSource) drop(tag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tags, tag)
}

var errRefusedForTest = fmt.Errorf("%w: signed by an unknown key", signing.ErrRefused)

func TestLatestPicksNewestVerified(t *testing.T) {
	src := &tableSource{}
	src.set("v1.0.0", nil)
	src.set("v1.2.0", nil)
	src.set("v1.10.0", errRefusedForTest)               // newest by semver, wrong key
	src.set("v1.9.0", fmt.Errorf("%w: x", ErrUnsigned)) // unsigned
	src.set("v2.0.0-rc.1", nil)                         // pre-release: not "latest"
	src.set("nightly", nil)                             // not a version
	r := NewResolver(ResolverOptions{})

	rel, err := r.Resolve(context.Background(), src, Latest, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, "v1.2.0", rel.Tag)
	require.Len(t, rel.Skipped, 2)
	assert.Equal(t, "v1.10.0", rel.Skipped[0].Tag)
	assert.ErrorIs(t, rel.Skipped[0].Reason, signing.ErrRefused)
	assert.Equal(t, "v1.9.0", rel.Skipped[1].Tag)
	assert.ErrorIs(t, rel.Skipped[1].Reason, ErrUnsigned)
}

func TestLatestByTimeWithoutVersions(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	src := &tableSource{times: map[string]time.Time{"old": now, "new": now.Add(time.Hour), "untimed": {}}}
	src.set("old", nil)
	src.set("new", nil)
	src.set("untimed", nil)
	rel, err := NewResolver(ResolverOptions{}).Resolve(context.Background(), src, Latest, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, "new", rel.Tag)
}

func TestLatestDoesNotSkipPastATransientError(t *testing.T) {
	src := &tableSource{}
	src.set("v1.0.0", nil)
	src.set("v1.1.0", fmt.Errorf("%w: connection reset", ErrUnreachable))
	_, err := NewResolver(ResolverOptions{}).Resolve(context.Background(), src, Latest, time.Time{})
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrUnreachable)
	assert.False(t, Refused(err))
}

func TestLatestNoTrustedRelease(t *testing.T) {
	src := &tableSource{}
	src.set("v1.0.0", errRefusedForTest)
	_, err := NewResolver(ResolverOptions{}).Resolve(context.Background(), src, Latest, time.Time{})
	require.ErrorIs(t, err, ErrNoTrustedRelease)
	assert.Contains(t, err.Error(), "v1.0.0")
	assert.True(t, Refused(err))

	_, err = NewResolver(ResolverOptions{}).Resolve(context.Background(), &tableSource{}, Latest, time.Time{})
	require.ErrorIs(t, err, ErrNoTrustedRelease)
	assert.Contains(t, err.Error(), "no release tags")
}

func TestLatestTriesBoundedCandidates(t *testing.T) {
	src := &tableSource{}
	src.set("v0.0.1", nil)
	for i := 1; i <= 100; i++ {
		src.set(fmt.Sprintf("v9.%d.0", i), errRefusedForTest)
	}
	_, err := NewResolver(ResolverOptions{}).Resolve(context.Background(), src, Latest, time.Time{})
	require.ErrorIs(t, err, ErrNoTrustedRelease)
	assert.Equal(t, int32(maxCandidates), src.fetches.Load())
	assert.Contains(t, err.Error(), "and 27 more")
}

func TestRollbackRefused(t *testing.T) {
	src := &tableSource{}
	src.set("v1.0.0", nil)
	src.set("v1.1.0", nil)
	marks := &MemoryMarks{}
	r := NewResolver(ResolverOptions{Marks: marks})
	rel, err := r.Resolve(context.Background(), src, Latest, time.Time{})
	require.NoError(t, err)
	require.Equal(t, "v1.1.0", rel.Tag)

	// The attacker deletes the newest tag: the older, validly signed one is offered.
	src.drop("v1.1.0")
	_, err = r.Resolve(context.Background(), src, Latest, time.Now())
	require.ErrorIs(t, err, ErrRollback)
	var rb *RollbackError
	require.ErrorAs(t, err, &rb)
	assert.Equal(t, "v1.0.0", rb.Offered)
	assert.Equal(t, "v1.1.0", rb.Seen)
	assert.True(t, Refused(err))

	// Or makes the newest one fail verification: still a rollback, with the reason.
	src.set("v1.1.0", errRefusedForTest)
	_, err = r.Resolve(context.Background(), src, Latest, time.Now())
	require.ErrorIs(t, err, ErrRollback)
	assert.Contains(t, err.Error(), "unknown key")

	// A new resolver sharing the store (another instance) refuses too.
	_, err = NewResolver(ResolverOptions{Marks: marks}).Resolve(context.Background(), src, Latest, time.Time{})
	require.ErrorIs(t, err, ErrRollback)

	// A newer signed release moves the mark forward.
	src.set("v1.2.0", nil)
	rel, err = r.Resolve(context.Background(), src, Latest, time.Now())
	require.NoError(t, err)
	assert.Equal(t, "v1.2.0", rel.Tag)
	m, ok, err := marks.LoadMark(context.Background(), "table")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "v1.2.0", m.Tag)
}

func TestExactTagIsNotSubjectToRollback(t *testing.T) {
	src := &tableSource{}
	src.set("v1.0.0", nil)
	src.set("v1.1.0", nil)
	r := NewResolver(ResolverOptions{})
	_, err := r.Resolve(context.Background(), src, Latest, time.Time{})
	require.NoError(t, err)
	rel, err := r.Resolve(context.Background(), src, "v1.0.0", time.Time{})
	require.NoError(t, err)
	assert.Equal(t, "v1.0.0", rel.Tag)
}

func TestCacheTTLAndFresh(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	src := &tableSource{}
	src.set("v1.0.0", nil)
	r := NewResolver(ResolverOptions{TTL: time.Minute, Now: clock})
	ctx := context.Background()

	_, err := r.Resolve(ctx, src, Latest, time.Time{})
	require.NoError(t, err)
	_, err = r.Resolve(ctx, src, Latest, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, int32(1), src.fetches.Load(), "second lookup within the TTL is cached")

	now = now.Add(time.Millisecond)
	_, err = r.Resolve(ctx, src, Latest, now)
	require.NoError(t, err)
	assert.Equal(t, int32(2), src.fetches.Load(), "a lookup that must start after now bypasses the cache")
	_, err = r.Resolve(ctx, src, Latest, now)
	require.NoError(t, err)
	assert.Equal(t, int32(2), src.fetches.Load(), "a release fetched since that instant is used")

	now = now.Add(61 * time.Second)
	_, err = r.Resolve(ctx, src, Latest, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, int32(3), src.fetches.Load(), "expired after the TTL")

	// Exact tags are kept longer than "latest".
	_, err = r.Resolve(ctx, src, "v1.0.0", time.Time{})
	require.NoError(t, err)
	now = now.Add(30 * time.Minute)
	_, err = r.Resolve(ctx, src, "v1.0.0", time.Time{})
	require.NoError(t, err)
	assert.Equal(t, int32(4), src.fetches.Load())

	// Failures are not cached.
	src.set("v9.0.0", fmt.Errorf("%w: down", ErrUnreachable))
	_, err = r.Resolve(ctx, src, "v9.0.0", time.Time{})
	require.Error(t, err)
	_, err = r.Resolve(ctx, src, "v9.0.0", time.Time{})
	require.Error(t, err)
	assert.Equal(t, int32(6), src.fetches.Load())
}

// A maintainer tags a release and uploads 100 ms later, while a lookup that started
// before the tag existed is still in flight: the judgement of the upload must not join
// that lookup, or the new script is compared with the old release and reverted.
func TestLookupStartedAfterDoesNotJoinAnOlderFetch(t *testing.T) {
	src := &tableSource{holdFirst: make(chan struct{})}
	src.set("v1.0.0", nil)
	r := NewResolver(ResolverOptions{})
	ctx := context.Background()

	old := make(chan *Release, 1)
	go func() {
		rel, err := r.Resolve(ctx, src, Latest, time.Time{})
		assert.NoError(t, err)
		old <- rel
	}()
	require.Eventually(t, func() bool { return src.fetches.Load() == 1 }, 5*time.Second, time.Millisecond)

	src.set("v1.1.0", nil) // the maintainer signs and pushes the new tag...
	uploaded := time.Now() // ...and uploads; the judgement starts after that
	rel, err := r.Resolve(ctx, src, Latest, uploaded)
	require.NoError(t, err)
	assert.Equal(t, "v1.1.0", rel.Tag, "the new release, not the one the older lookup is reading")
	assert.False(t, rel.Fetched.Before(uploaded))

	close(src.holdFirst)
	// The older lookup read v1.0.0, which is now behind the mark: it is stale, not a
	// rollback, and its waiter gets the newer release.
	assert.Equal(t, "v1.1.0", (<-old).Tag)
	// Nor does the older fetch, finished last, replace the newer release in the cache.
	rel, err = r.Resolve(ctx, src, Latest, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, "v1.1.0", rel.Tag)
}

func TestConcurrentLookupsShareOneFetch(t *testing.T) {
	src := &tableSource{gate: make(chan struct{})}
	src.set("v1.0.0", nil)
	r := NewResolver(ResolverOptions{})
	const n = 20
	var wg sync.WaitGroup
	results := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.Resolve(context.Background(), src, "v1.0.0", time.Time{})
			results <- err
		}()
	}
	// Let every goroutine reach the shared fetch, then release it.
	require.Eventually(t, func() bool { return src.fetches.Load() == 1 }, 5*time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	close(src.gate)
	wg.Wait()
	close(results)
	for err := range results {
		assert.NoError(t, err)
	}
	assert.Equal(t, int32(1), src.fetches.Load())
}

func TestCallerCancellationDoesNotKillSharedFetch(t *testing.T) {
	src := &tableSource{gate: make(chan struct{})}
	src.set("v1.0.0", nil)
	r := NewResolver(ResolverOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := r.Resolve(ctx, src, "v1.0.0", time.Time{})
		done <- err
	}()
	require.Eventually(t, func() bool { return src.fetches.Load() == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	err := <-done
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.Canceled))

	close(src.gate)
	// The fetch finishes and lands in the cache for the next caller.
	require.Eventually(t, func() bool {
		rel, err := r.Resolve(context.Background(), src, "v1.0.0", time.Time{})
		return err == nil && rel.Tag == "v1.0.0"
	}, 5*time.Second, time.Millisecond)
	assert.Equal(t, int32(1), src.fetches.Load())
}

func TestNewerOrdering(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	assert.True(t, newer("v1.10.0", time.Time{}, "v1.9.0", time.Time{}))
	assert.True(t, newer("1.10.0", time.Time{}, "v1.9.0", time.Time{}))
	assert.False(t, newer("v1.0.0", time.Time{}, "v1.0.0", time.Time{}))
	assert.True(t, newer("b", t0.Add(time.Second), "a", t0))
	assert.False(t, newer("b", time.Time{}, "a", t0))
	assert.Equal(t, "", canonicalSemver("v1.2"))
	assert.Equal(t, "v1.2.3-rc.1", canonicalSemver("1.2.3-rc.1"))
}

func BenchmarkResolveCached(b *testing.B) {
	src := &tableSource{}
	src.set("v1.0.0", nil)
	r := NewResolver(ResolverOptions{})
	ctx := context.Background()
	_, err := r.Resolve(ctx, src, Latest, time.Time{})
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Resolve(ctx, src, Latest, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}
