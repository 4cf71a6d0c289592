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

// Its tag names stand for signed ones (as a git tag's name is inside the signed object).
func (s *tableSource) signsTagNames() bool { return true }

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

func TestRollbackHoldsTheFloor(t *testing.T) {
	src := &tableSource{}
	src.set("v1.0.0", nil)
	src.set("v1.1.0", nil)
	marks := &MemoryMarks{}
	r := NewResolver(ResolverOptions{Marks: marks})
	rel, err := r.Resolve(context.Background(), src, Latest, time.Time{})
	require.NoError(t, err)
	require.Equal(t, "v1.1.0", rel.Tag)
	assert.Nil(t, rel.Floor)

	// The attacker deletes the newest tag: only the older, validly signed one is offered.
	// The rule is still judged against v1.1.0, and the answer says why.
	src.drop("v1.1.0")
	rel, err = r.Resolve(context.Background(), src, Latest, time.Now())
	require.NoError(t, err)
	assert.Equal(t, "v1.1.0", rel.Tag)
	require.NotNil(t, rel.Floor)
	assert.ErrorIs(t, rel.Floor.Reason, ErrRollback)
	assert.False(t, rel.Floor.Transient())
	var rb *RollbackError
	require.ErrorAs(t, rel.Floor.Reason, &rb)
	assert.Contains(t, rb.Offered, "v1.0.0")
	assert.Equal(t, "v1.1.0", rb.Seen)

	// Or makes the newest one fail verification: the floor, with the reason.
	src.set("v1.1.0", errRefusedForTest)
	rel, err = r.Resolve(context.Background(), src, Latest, time.Now())
	require.NoError(t, err)
	assert.Equal(t, "v1.1.0", rel.Tag)
	require.NotNil(t, rel.Floor)
	require.Len(t, rel.Skipped, 1)
	assert.Equal(t, "v1.1.0", rel.Skipped[0].Tag)
	assert.ErrorIs(t, rel.Skipped[0].Reason, signing.ErrRefused)

	// A new resolver sharing the store (another instance) cannot verify v1.1.0 again (this
	// source keeps no evidence and the tag now fails): the mark still refuses v1.0.0.
	_, err = NewResolver(ResolverOptions{Marks: marks}).Resolve(context.Background(), src, Latest, time.Time{})
	require.ErrorIs(t, err, ErrRollback)
	assert.True(t, Refused(err))
	assert.Contains(t, err.Error(), "unknown key")

	// A newer signed release moves the mark forward.
	src.set("v1.2.0", nil)
	rel, err = r.Resolve(context.Background(), src, Latest, time.Now())
	require.NoError(t, err)
	assert.Equal(t, "v1.2.0", rel.Tag)
	assert.Nil(t, rel.Floor)
	m, ok, err := marks.LoadMark(context.Background(), "table")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "v1.2.0", m.Tag)
	assert.Equal(t, "v1.2.0", m.Version)
}

// Protection never switches off because the attacker broke something: a rule whose newer
// candidates are unsigned, wrongly signed, missing or unreachable is judged against the last
// release that verified.
func TestFloorStandsInForBrokenCandidates(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		transient bool
	}{
		{"unsigned", fmt.Errorf("%w: x", ErrUnsigned), false},
		{"wrong key", errRefusedForTest, false},
		{"garbled", fmt.Errorf("%w: not a checksum file", ErrInvalid), false},
		{"unreachable", fmt.Errorf("%w: connection reset", ErrUnreachable), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &tableSource{}
			src.set("v1.0.0", nil)
			r := NewResolver(ResolverOptions{})
			_, err := r.Resolve(context.Background(), src, Latest, time.Time{})
			require.NoError(t, err)

			// A newer candidate is broken, and so is the floor's own tag.
			src.set("v1.1.0", tc.err)
			src.set("v1.0.0", tc.err)
			rel, err := r.Resolve(context.Background(), src, Latest, time.Now())
			require.NoError(t, err)
			assert.Equal(t, "v1.0.0", rel.Tag)
			require.NotNil(t, rel.Floor)
			assert.Equal(t, tc.transient, rel.Floor.Transient())
			if tc.transient {
				assert.ErrorIs(t, rel.Floor.Reason, tc.err)
			} else {
				require.Len(t, rel.Skipped, 2)
				assert.Equal(t, "v1.1.0", rel.Skipped[0].Tag)
				assert.ErrorIs(t, rel.Skipped[0].Reason, tc.err)
			}
			assert.NotZero(t, rel.Checksums.Len(), "the floor's signed checksums are the answer")
			src.set("v1.0.0", nil)

			// An exact tag falls back to its own last verified copy the same way.
			_, err = r.Resolve(context.Background(), src, "v1.0.0", time.Time{})
			require.NoError(t, err)
			src.set("v1.0.0", tc.err)
			rel, err = r.Resolve(context.Background(), src, "v1.0.0", time.Now().Add(time.Hour))
			require.NoError(t, err)
			assert.Equal(t, "v1.0.0", rel.Tag)
			require.NotNil(t, rel.Floor)
			require.Len(t, rel.Skipped, 1)
			assert.ErrorIs(t, rel.Skipped[0].Reason, tc.err)
		})
	}
	t.Run("no floor: errors as before", func(t *testing.T) {
		src := &tableSource{}
		src.set("v1.1.0", fmt.Errorf("%w: connection reset", ErrUnreachable))
		_, err := NewResolver(ResolverOptions{}).Resolve(context.Background(), src, Latest, time.Time{})
		assert.ErrorIs(t, err, ErrUnreachable)
	})
}

// Unsigned and missing candidates do not exhaust the candidate budget: a flood of
// lightweight tags does not hide the real release.
func TestTagFloodDoesNotHideTheRelease(t *testing.T) {
	src := &tableSource{}
	src.set("v1.0.0", nil)
	for i := range 40 {
		src.set(fmt.Sprintf("v9.0.%d", i), fmt.Errorf("%w: lightweight tag", ErrUnsigned))
	}
	rel, err := NewResolver(ResolverOptions{}).Resolve(context.Background(), src, Latest, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, "v1.0.0", rel.Tag)
	assert.Len(t, rel.Skipped, 40)
}

// Candidates refused by a key of the attacker's own do exhaust the budget; then the floor
// stands in instead of no release at all.
func TestSignedFloodFallsBackToTheFloor(t *testing.T) {
	src := &tableSource{}
	src.set("v1.0.0", nil)
	r := NewResolver(ResolverOptions{})
	_, err := r.Resolve(context.Background(), src, Latest, time.Time{})
	require.NoError(t, err)
	for i := range 100 {
		src.set(fmt.Sprintf("v9.%d.0", i), errRefusedForTest)
	}
	rel, err := r.Resolve(context.Background(), src, Latest, time.Now())
	require.NoError(t, err)
	assert.Equal(t, "v1.0.0", rel.Tag)
	require.NotNil(t, rel.Floor)
	assert.ErrorIs(t, rel.Floor.Reason, ErrNoTrustedRelease)
	assert.Contains(t, rel.Floor.Reason.Error(), "69 older ones not tried")
}

// A candidate the source lists as refused (e.g. a release without a signature asset) costs
// no fetch; a candidate refused for its content is not fetched again while its ID holds.
func TestRefusedCandidatesAreNotFetchedAgain(t *testing.T) {
	src := &idSource{tableSource: &tableSource{}}
	src.set("v1.0.0", nil)
	src.set("v2.0.0", errRefusedForTest)
	src.listRefused = map[string]error{"v3.0.0": fmt.Errorf("%w: no signature asset", ErrUnsigned)}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := NewResolver(ResolverOptions{Now: func() time.Time { return now }})
	rel, err := r.Resolve(context.Background(), src, Latest, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, "v1.0.0", rel.Tag)
	assert.Equal(t, int32(2), src.fetches.Load(), "v2.0.0 and v1.0.0; v3.0.0 is refused by its listing")
	require.Len(t, rel.Skipped, 2)
	assert.Equal(t, "v3.0.0", rel.Skipped[0].Tag)

	now = now.Add(time.Minute)
	rel, err = r.Resolve(context.Background(), src, Latest, now)
	require.NoError(t, err)
	assert.Equal(t, "v1.0.0", rel.Tag)
	assert.Equal(t, int32(3), src.fetches.Load(), "only v1.0.0 again: v2.0.0's content did not change")
	assert.ErrorIs(t, rel.Skipped[1].Reason, signing.ErrRefused)

	now = now.Add(refusalTTL)
	_, err = r.Resolve(context.Background(), src, Latest, now)
	require.NoError(t, err)
	assert.Equal(t, int32(5), src.fetches.Load(), "a remembered refusal expires")
}

// idSource lists IDs for its candidates and may refuse some in the listing.
type idSource struct {
	*tableSource
	listRefused map[string]error
}

func (s *idSource) Candidates(ctx context.Context) ([]Candidate, error) {
	cs, err := s.tableSource.Candidates(ctx)
	for i := range cs {
		cs[i].ID = "id-" + cs[i].Tag
	}
	for tag, why := range s.listRefused {
		cs = append(cs, Candidate{Tag: tag, Refused: why})
	}
	return cs, err
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

func TestMarkOrdering(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v := func(v string) Mark { return Mark{Version: v} }
	at := func(t time.Time) Mark { return Mark{Time: t} }
	assert.True(t, v("v1.10.0").NewerThan(v("v1.9.0")))
	assert.False(t, v("v1.0.0").NewerThan(v("v1.0.0")))
	assert.True(t, at(t0.Add(time.Second)).NewerThan(at(t0)))
	assert.False(t, at(time.Time{}).NewerThan(at(t0)))
	// The name a release was found under orders nothing: only signed fields do.
	assert.False(t, Mark{Tag: "v9.9.9", Time: t0}.NewerThan(Mark{Tag: "v1.1.0", Time: t0.Add(time.Hour)}))
	// Equal versions fall back to the signed time (a re-signed release).
	assert.True(t, Mark{Version: "v1.0.0", Time: t0.Add(time.Hour)}.NewerThan(Mark{Version: "v1.0.0", Time: t0}))

	assert.NoError(t, checkOrder("s", Mark{}, Mark{}), "nothing signed to compare: accepted (warned at config load)")
	assert.ErrorIs(t, checkOrder("s", at(t0.Add(time.Hour)), at(t0)), ErrRollback)
	assert.ErrorIs(t, checkOrder("s", at(t0), Mark{}), ErrUnordered, "a floor with a signed time is not replaced by a release without one")
	assert.NoError(t, checkOrder("s", at(t0), at(t0)))

	assert.Equal(t, "", canonicalSemver("v1.2"))
	assert.Equal(t, "v1.2.3-rc.1", canonicalSemver("1.2.3-rc.1"))
}

func TestVersionsInNames(t *testing.T) {
	for name, want := range map[string][]string{
		"tool-1.2.0-linux-amd64.tar.gz": {"v1.2.0"},
		"tool_v1.2.0_darwin.zip":        {"v1.2.0"},
		"v1.2.0/linux/codecov":          {"v1.2.0"},
		"codecov":                       nil,
		"install.sh":                    nil,
		"python3.11.2-embed.zip":        nil,
		"x86_64-1.2.3.4.tar":            nil,
		"tool-1.2.tar.gz":               nil,
		"dev1.2.3":                      nil,
		"curl-8.21.0.tar.xz":            {"v8.21.0"},
	} {
		assert.Equal(t, want, versionsIn(name), name)
	}
}

func TestPrereleaseMarkers(t *testing.T) {
	for _, tag := range []string{"v2.0.0-rc.1", "rc-8_22_0-2", "1.2.0rc1", "nightly-2025-01-01", "v3-beta", "alpha", "release-dev", "PRE-1"} {
		assert.True(t, IsPrerelease(tag), tag)
	}
	for _, tag := range []string{"v2.0.0", "curl-8_21_0", "devops-1", "preview-2", "release-2025"} {
		assert.False(t, IsPrerelease(tag), tag)
	}
}

// tag: latest over non-semver tags picks a release, not a release candidate.
func TestLatestSkipsNonSemverReleaseCandidates(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	// The release candidate is the newest tag by time (as in curl's repository).
	src := &tableSource{times: map[string]time.Time{"curl-8_9_1": t0, "curl-8_21_0": t0.Add(time.Hour), "rc-8_22_0-2": t0.Add(2 * time.Hour)}}
	src.set("curl-8_21_0", nil)
	src.set("curl-8_9_1", nil)
	src.set("rc-8_22_0-2", nil)
	rel, err := NewResolver(ResolverOptions{}).Resolve(context.Background(), src, Latest, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, "curl-8_21_0", rel.Tag)

	// Without times (a remote listed without fetching), the numbers in the tags order them.
	src.times = nil
	rel, err = NewResolver(ResolverOptions{}).Resolve(context.Background(), src, Latest, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, "curl-8_21_0", rel.Tag)
}

func TestTagFilter(t *testing.T) {
	glob, err := NewTagFilter("curl-*", false)
	require.NoError(t, err)
	re, err := NewTagFilter(`regexp:v1\.[0-9]+\.[0-9]+`, false)
	require.NoError(t, err)
	pre, err := NewTagFilter("", true)
	require.NoError(t, err)
	assert.True(t, glob.Latest("curl-8_21_0"))
	assert.False(t, glob.Latest("tiny-curl-8_4_0"))
	assert.False(t, glob.Latest("curl-8_22_0-rc2"))
	assert.True(t, re.Latest("v1.2.3"))
	assert.False(t, re.Latest("v1.2.3x"), "the expression matches the whole tag")
	assert.False(t, re.Latest("v2.0.0"))
	assert.True(t, pre.Latest("v2.0.0-rc.1"))
	for _, bad := range []string{"[", "regexp:(", "regexp:"} {
		_, err := NewTagFilter(bad, false)
		assert.Error(t, err, bad)
	}

	src := &tableSource{}
	for _, tag := range []string{"v1.2.0", "v2.0.0", "v2.1.0-rc.1"} {
		src.set(tag, nil)
	}
	v1, err := NewTagFilter("v1.*", false)
	require.NoError(t, err)
	f := Filtered(src, v1)
	assert.Equal(t, "table tags v1.*", f.Key())
	rel, err := NewResolver(ResolverOptions{}).Resolve(context.Background(), f, Latest, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, "v1.2.0", rel.Tag)
	_, err = f.Fetch(context.Background(), "v2.0.0")
	assert.ErrorIs(t, err, ErrInvalid, "an exact tag outside the pattern is refused")

	rel, err = NewResolver(ResolverOptions{}).Resolve(context.Background(), Filtered(src, pre), Latest, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, "v2.1.0-rc.1", rel.Tag)
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
