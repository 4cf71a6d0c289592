package alerting

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/gcs"
	"github.com/tamperguard/tamperguard/internal/gcstest"
)

// stateStore is the real Cloud Storage adapter over an in-process fake, with a versioned
// state bucket.
type stateStore struct {
	*gcs.Store
	t *testing.T
}

func newStateStore(t *testing.T) stateStore {
	srv := gcstest.New(t, gcstest.BucketSpec{Name: "state", Versioning: true})
	return stateStore{Store: gcs.New(srv.Client), t: t}
}

// put replaces object with data, whatever is there.
func (s stateStore) put(bucket, object, data string) {
	s.t.Helper()
	ctx := context.Background()
	cond := engine.Condition{DoesNotExist: true}
	if a, err := s.Attrs(ctx, bucket, object, 0); err == nil {
		cond = engine.Condition{GenerationMatch: a.Generation}
	}
	_, err := s.Write(ctx, bucket, object, cond, engine.Metadata{ContentType: "application/json"}, strings.NewReader(data))
	require.NoError(s.t, err)
}

func (s stateStore) get(bucket, object string) (string, bool) {
	s.t.Helper()
	ctx := context.Background()
	a, err := s.Attrs(ctx, bucket, object, 0)
	if err != nil {
		return "", false
	}
	r, err := s.Open(ctx, bucket, object, a.Generation)
	require.NoError(s.t, err)
	defer r.Close()
	b, err := io.ReadAll(r)
	require.NoError(s.t, err)
	return string(b), true
}

func testThreadStores(t *testing.T, fn func(t *testing.T, s ThreadStore)) {
	t.Run("memory", func(t *testing.T) { fn(t, NewMemoryThreads()) })
	t.Run("state", func(t *testing.T) { fn(t, NewStateThreads(newStateStore(t), "state")) })
}

func TestThreadStoreRoundTripAndConflicts(t *testing.T) {
	testThreadStores(t, func(t *testing.T, s ThreadStore) {
		ctx := context.Background()
		_, ok, err := s.Load(ctx, "b/o")
		require.NoError(t, err)
		assert.False(t, ok)

		th := Thread{Channel: "C1", TS: "1612087300.000001", Count: 1, First: tCreated, Last: tCreated}
		require.NoError(t, s.Save(ctx, "b/o", th))
		assert.ErrorIs(t, s.Save(ctx, "b/o", th), ErrThreadConflict, "a second creation loses")

		got, ok, err := s.Load(ctx, "b/o")
		require.NoError(t, err)
		require.True(t, ok)
		assert.NotZero(t, got.Version)
		assert.Equal(t, th.TS, got.TS)
		assert.Equal(t, th.Channel, got.Channel)
		assert.True(t, th.First.Equal(got.First))

		got.Count = 2
		require.NoError(t, s.Save(ctx, "b/o", got))
		assert.ErrorIs(t, s.Save(ctx, "b/o", got), ErrThreadConflict, "saving from a stale version loses")
		again, _, err := s.Load(ctx, "b/o")
		require.NoError(t, err)
		assert.Equal(t, 2, again.Count)
	})
}

func TestStateThreadsLayout(t *testing.T) {
	store := newStateStore(t)
	s := NewStateThreads(store, "state")
	ctx := context.Background()
	require.NoError(t, s.Save(ctx, "dl.example.org/install/uploader.sh", Thread{TS: "1.2", Count: 1}))
	raw, ok := store.get("state", "threads/dl.example.org/install/uploader.sh.json")
	require.True(t, ok)
	assert.JSONEq(t, `{"key":"dl.example.org/install/uploader.sh","thread":{"ts":"1.2","count":1,"first":"0001-01-01T00:00:00Z","last":"0001-01-01T00:00:00Z"}}`, raw)

	// Names Cloud Storage would refuse, or that are too long, get a digest name.
	long := "b/" + strings.Repeat("x", 1100)
	require.NoError(t, s.Save(ctx, long, Thread{Count: 1}))
	assert.True(t, strings.HasPrefix(threadObject(long), "threads/b/sha256-"))
	got, ok, err := s.Load(ctx, long)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, 1, got.Count)
	assert.True(t, strings.HasPrefix(threadObject("b/a\nb"), "threads/b/sha256-"))
	assert.True(t, strings.HasPrefix(threadObject("b/../x"), "threads/b/sha256-"))
}

func TestStateThreadsDistrustWhatTheyRead(t *testing.T) {
	ctx := context.Background()
	store := newStateStore(t)
	s := NewStateThreads(store, "state")
	for name, body := range map[string]string{
		"b/garbage":   "not json",
		"b/other-key": `{"key":"b/elsewhere","thread":{"ts":"1.2","count":1}}`,
		"b/bad-ts":    `{"key":"b/bad-ts","thread":{"ts":"<!channel>","count":1}}`,
		"b/bad-chan":  `{"key":"b/bad-chan","thread":{"ts":"1.2","channel":"<#C1|x>","count":1}}`,
		"b/huge":      `{"key":"b/huge","thread":{"ts":"1.2","count":1},"pad":"` + strings.Repeat("x", maxThreadRecord+1) + `"}`,
	} {
		store.put("state", threadObject(name), body)
		th, ok, err := s.Load(ctx, name)
		assert.False(t, ok, name)
		assert.Empty(t, th.TS, name)
		if name == "b/garbage" || name == "b/huge" {
			require.Error(t, err, name)
			assert.NotContains(t, err.Error(), "xxxxxxxx", "errors do not quote what was read")
		} else {
			require.NoError(t, err, name)
		}
		// The next save replaces the bad record.
		require.NotZero(t, th.Version, name)
		require.NoError(t, s.Save(ctx, name, Thread{Version: th.Version, TS: "3.4", Count: 1}), name)
		got, ok, err := s.Load(ctx, name)
		require.NoError(t, err)
		assert.True(t, ok)
		assert.Equal(t, "3.4", got.TS)
	}
}

func TestMemoryThreadsAreBounded(t *testing.T) {
	s := NewMemoryThreads()
	ctx := context.Background()
	for i := range maxMemoryThreads + 10 {
		require.NoError(t, s.Save(ctx, "b/"+strings.Repeat("o", i%7)+string(rune('a'+i%26))+time.Duration(i).String(), Thread{Last: tCreated.Add(time.Duration(i) * time.Second)}))
	}
	assert.LessOrEqual(t, len(s.m), maxMemoryThreads)
}

func TestThreadValidation(t *testing.T) {
	for ts, want := range map[string]bool{"1612087300.000100": true, "1.2": true, "12": true, "": false, ".1": false, "1.": false, "1.2.3": false, "1e5": false, "<!channel>": false, strings.Repeat("1", 40): false} {
		assert.Equal(t, want, validTS(ts), ts)
	}
	for ch, want := range map[string]bool{"C0ALERTS1": true, "G1": true, "#alerts": false, "c1": false, "": false} {
		assert.Equal(t, want, validChannel(ch), ch)
	}
}

var errBoom = errors.New("boom")

// failingThreads fails every call, as an unreachable state bucket would.
type failingThreads struct{}

func (failingThreads) Load(context.Context, string) (Thread, bool, error) {
	return Thread{}, false, errBoom
}
func (failingThreads) Save(context.Context, string, Thread) error { return errBoom }

func TestThreadStoreFailureDoesNotStopTheAlert(t *testing.T) {
	f := newFakeSlack(t)
	s, logs := newBot(t, f, newClock(), func(o *Options) { o.Threads = failingThreads{} })
	require.NoError(t, s.Notify(context.Background(), restoredDecision()))
	assert.Len(t, f.Posts(), 1)
	assert.Contains(t, logs.String(), "thread state unreadable")
	assert.Contains(t, logs.String(), "thread state not saved")
}
