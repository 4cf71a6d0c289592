package engine

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/release"
	"github.com/tamperguard/tamperguard/internal/signing"
)

// A memo entry vouches only for the very generation, metageneration and size it was made
// for, under the same signed release listing the same digest, while it is young; a listing
// whose CRC32C or MD5 differs from the remembered one proves other bytes.
func TestMemoEntryVouchesOnlyForWhatItSaw(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	digest := checksum.Digest(sha256.Sum256([]byte("signed")))
	rel := &release.Release{Source: "git x", Tag: "v1.2.0", Signer: signing.Signer{Scheme: "openpgp", Fingerprint: "AB"}, TagObject: "1111"}
	exp := Expectation{Release: rel, Entry: checksum.Entry{Name: "install.sh", Digest: digest}}
	listed := ObjectAttrs{Bucket: "b", Name: "install.sh", Generation: 7, Metageneration: 2, Size: 6,
		CRC32C: 0xdeadbeef, HasCRC32C: true, MD5: []byte{1, 2, 3}}
	var m scopeMemo
	m.now = func() time.Time { return now }
	m.loaded = map[string]*memoChunk{}
	m.record(context.Background(), listed, digest, releaseID(rel), true)
	e, id, ok := m.lookup(context.Background(), "install.sh")
	require.True(t, ok)
	require.True(t, e.valid(listed, id, exp, now), "the same generation under the same release")

	for name, change := range map[string]func(a *ObjectAttrs, x *Expectation, at *time.Time){
		"another generation":     func(a *ObjectAttrs, _ *Expectation, _ *time.Time) { a.Generation++ },
		"another metageneration": func(a *ObjectAttrs, _ *Expectation, _ *time.Time) { a.Metageneration++ },
		"another size":           func(a *ObjectAttrs, _ *Expectation, _ *time.Time) { a.Size++ },
		"another CRC32C":         func(a *ObjectAttrs, _ *Expectation, _ *time.Time) { a.CRC32C++ },
		"another MD5":            func(a *ObjectAttrs, _ *Expectation, _ *time.Time) { a.MD5 = []byte{9} },
		"another digest signed": func(_ *ObjectAttrs, x *Expectation, _ *time.Time) {
			x.Entry.Digest = checksum.Digest(sha256.Sum256([]byte("other")))
		},
		"another signed tag object": func(_ *ObjectAttrs, x *Expectation, _ *time.Time) {
			r := *x.Release
			r.TagObject = "2222"
			x.Release = &r
		},
		"another signer": func(_ *ObjectAttrs, x *Expectation, _ *time.Time) {
			r := *x.Release
			r.Signer.Fingerprint = "CD"
			x.Release = &r
		},
		"a release without a stable name": func(_ *ObjectAttrs, x *Expectation, _ *time.Time) {
			r := *x.Release
			r.TagObject, r.Evidence = "", nil
			x.Release = &r
		},
		"no release":      func(_ *ObjectAttrs, x *Expectation, _ *time.Time) { x.Release = nil },
		"too old":         func(_ *ObjectAttrs, _ *Expectation, at *time.Time) { *at = at.Add(memoMaxAge) },
		"from the future": func(_ *ObjectAttrs, _ *Expectation, at *time.Time) { *at = at.Add(-time.Hour) },
	} {
		a, x, at := listed, exp, now
		change(&a, &x, &at)
		assert.False(t, e.valid(a, id, x, at), name)
	}

	// The listing may lack checksums (a composite object has no MD5): that is no difference.
	a := listed
	a.MD5, a.HasCRC32C = nil, false
	assert.True(t, e.valid(a, id, exp, now))
}

// Records hold at most memoChunkMax entries: a bigger one is split, and both halves are found.
func TestMemoRecordsSplitAndStayFound(t *testing.T) {
	ctx := context.Background()
	blobs := &memoryBlobs{}
	now := func() time.Time { return time.Unix(1_800_000_000, 0) }
	s, err := openScope(ctx, blobs, "b", "dl/", "rule", now)
	require.NoError(t, err)
	digest := checksum.Digest(sha256.Sum256([]byte("x")))
	n := memoChunkMax*2 + 10
	for i := range n {
		s.record(ctx, ObjectAttrs{Bucket: "b", Name: fmt.Sprintf("dl/%05d", i), Generation: int64(i + 1), Size: 1}, digest, "rel", true)
	}
	s.walkedPast("", true)
	require.NoError(t, s.flush(ctx, "", true))
	count := 0
	require.NoError(t, blobs.list(ctx, auditPrefix, func(name string, gen int64, _ map[string]string) error {
		data, err := blobs.read(ctx, name, gen)
		require.NoError(t, err)
		var rec memoRecord
		if json.Unmarshal(data, &rec) == nil && len(rec.Entries) > 0 {
			assert.LessOrEqual(t, len(rec.Entries), memoChunkMax, name)
			count++
		}
		return nil
	}))
	assert.GreaterOrEqual(t, count, 2)

	again, err := openScope(ctx, blobs, "b", "dl/", "rule", now)
	require.NoError(t, err)
	for _, i := range []int{0, memoChunkMax, n - 1} {
		name := fmt.Sprintf("dl/%05d", i)
		e, _, ok := again.lookup(ctx, name)
		require.True(t, ok, name)
		assert.Equal(t, int64(i+1), e.Gen)
	}
}

// A first audit of a big scope writes its memo as the listing goes, in records of half the
// most, and keeps only the records still being filled in memory.
func TestMemoIsWrittenAsTheListingGoes(t *testing.T) {
	ctx := context.Background()
	blobs := &memoryBlobs{}
	now := func() time.Time { return time.Unix(1_800_000_000, 0) }
	s, err := openScope(ctx, blobs, "b", "", "rule", now)
	require.NoError(t, err)
	digest := checksum.Digest(sha256.Sum256([]byte("x")))
	n := memoChunkMax * 3
	written := func() int {
		count := 0
		require.NoError(t, blobs.list(ctx, auditPrefix, func(string, int64, map[string]string) error { count++; return nil }))
		return count
	}
	for i := range n {
		name := fmt.Sprintf("o/%06d", i)
		s.walkedPast(name, false)
		_, _, found := s.lookup(ctx, name)
		require.False(t, found)
		s.record(ctx, ObjectAttrs{Bucket: "b", Name: name, Generation: int64(i + 1), Size: 1}, digest, "rel", true)
		if i%500 == 499 {
			require.NoError(t, s.flush(ctx, name, false))
			assert.LessOrEqual(t, len(s.loaded), 2, "walked records are written and dropped")
		}
	}
	assert.GreaterOrEqual(t, written(), 5, "written as the listing went, before the end")
	s.walkedPast("", true)
	require.NoError(t, s.flush(ctx, "", true))
	assert.Equal(t, n/(memoChunkMax/2), written())

	again, err := openScope(ctx, blobs, "b", "", "rule", now)
	require.NoError(t, err)
	for i := range n {
		name := fmt.Sprintf("o/%06d", i)
		e, _, ok := again.lookup(ctx, name)
		require.True(t, ok, name)
		assert.Equal(t, int64(i+1), e.Gen)
	}
}
