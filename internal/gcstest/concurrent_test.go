package gcstest_test

import (
	"context"
	"io"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/gcstest"
)

// Reads of numbered generations at once, in a versioned bucket with noncurrent generations,
// as an audit's workers make them: every read gets its bytes, and (under -race) the fake's
// lookup does not race with itself.
func TestConcurrentGenerationReads(t *testing.T) {
	s := gcstest.New(t, gcstest.BucketSpec{Name: "b", Versioning: true})
	ctx := context.Background()
	// Four other live objects: the fake's slice of live objects has room to spare (cap 8 for
	// 5), more than the noncurrent generations it appends to it on every numbered read.
	for _, name := range []string{"a", "b", "c", "d"} {
		w := s.Client.Bucket("b").Object(name).NewWriter(ctx)
		_, err := w.Write([]byte(name))
		require.NoError(t, err)
		require.NoError(t, w.Close())
	}
	gens := map[int64]string{}
	for _, body := range []string{"one", "two"} {
		w := s.Client.Bucket("b").Object("x").NewWriter(ctx)
		_, err := w.Write([]byte(body))
		require.NoError(t, err)
		require.NoError(t, w.Close())
		gens[w.Attrs().Generation] = body
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				for g, want := range gens {
					r, err := s.Client.Bucket("b").Object("x").Generation(g).NewReader(ctx)
					if !assert.NoError(t, err) {
						return
					}
					got, err := io.ReadAll(r)
					r.Close()
					assert.NoError(t, err)
					assert.Equal(t, want, string(got))
					_, err = s.Client.Bucket("b").Object("x").Generation(g).Attrs(ctx)
					assert.NoError(t, err)
				}
			}
		}()
	}
	wg.Wait()
}
