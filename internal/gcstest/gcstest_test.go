package gcstest

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
)

const bucket = "tg-test"

// ---- helpers ------------------------------------------------------------------------

func put(t *testing.T, c *storage.Client, name string, cond *storage.Conditions, data string, attrs ...func(*storage.Writer)) (*storage.ObjectAttrs, error) {
	t.Helper()
	o := c.Bucket(bucket).Object(name)
	if cond != nil {
		o = o.If(*cond)
	}
	w := o.NewWriter(context.Background())
	for _, f := range attrs {
		f(w)
	}
	_, err := io.WriteString(w, data)
	require.NoError(t, err)
	err = w.Close()
	if err != nil {
		return nil, err
	}
	return w.Attrs(), nil
}

func mustPut(t *testing.T, c *storage.Client, name, data string, attrs ...func(*storage.Writer)) *storage.ObjectAttrs {
	t.Helper()
	a, err := put(t, c, name, nil, data, attrs...)
	require.NoError(t, err)
	return a
}

func read(t *testing.T, o *storage.ObjectHandle) string {
	t.Helper()
	r, err := o.NewReader(context.Background())
	require.NoError(t, err)
	defer r.Close()
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	return string(b)
}

func code(err error) int {
	var e *googleapi.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// bareFake is fakestorage without the layer, with its own in-process client.
func bareFake(t *testing.T) (*fakestorage.Server, *storage.Client) {
	t.Helper()
	fake, err := fakestorage.NewServerWithOptions(fakestorage.Options{NoListener: true})
	require.NoError(t, err)
	t.Cleanup(fake.Stop)
	fake.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket, VersioningEnabled: true})
	return fake, fake.Client()
}

// ---- what the bare fake does (the reason the layer exists) --------------------------

func TestBareFakeUploadEnforcesGenerationConditions(t *testing.T) {
	_, c := bareFake(t)
	a := mustPut(t, c, "x", "one")

	_, err := put(t, c, "x", &storage.Conditions{DoesNotExist: true}, "two")
	assert.Equal(t, http.StatusPreconditionFailed, code(err), "DoesNotExist while live")
	_, err = put(t, c, "x", &storage.Conditions{GenerationMatch: a.Generation + 1}, "two")
	assert.Equal(t, http.StatusPreconditionFailed, code(err), "stale GenerationMatch")

	_, err = put(t, c, "x", &storage.Conditions{GenerationNotMatch: a.Generation}, "two")
	assert.Equal(t, http.StatusPreconditionFailed, code(err), "GenerationNotMatch of the live generation")

	// ... but not the metageneration ones.
	_, err = put(t, c, "x", &storage.Conditions{GenerationMatch: a.Generation, MetagenerationMatch: 99}, "two")
	assert.NoError(t, err, "the bare fake ignores ifMetagenerationMatch on uploads")
}

func TestBareFakePatchIgnoresPreconditionsAndCannotClear(t *testing.T) {
	_, c := bareFake(t)
	a := mustPut(t, c, "x", "one", func(w *storage.Writer) {
		w.ContentType = "text/plain"
		w.CacheControl = "no-cache"
		w.Metadata = map[string]string{"k": "v"}
	})
	o := c.Bucket(bucket).Object("x")

	_, err := o.If(storage.Conditions{GenerationMatch: a.Generation + 1, MetagenerationMatch: 99}).
		Update(context.Background(), storage.ObjectAttrsToUpdate{ContentType: "evil/type"})
	assert.NoError(t, err, "the bare fake ignores ifGenerationMatch and ifMetagenerationMatch on patch")

	got, err := o.Attrs(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "evil/type", got.ContentType)
	assert.EqualValues(t, 1, got.Metageneration, "the bare fake never bumps the metageneration")

	_, err = o.Update(context.Background(), storage.ObjectAttrsToUpdate{CacheControl: "", Metadata: map[string]string{}})
	require.NoError(t, err)
	got, err = o.Attrs(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "no-cache", got.CacheControl, "the bare fake cannot clear a field")
	assert.Equal(t, map[string]string{"k": "v"}, got.Metadata, "the bare fake cannot clear custom metadata")
}

func TestBareFakeDeleteIgnoresPreconditions(t *testing.T) {
	_, c := bareFake(t)
	a := mustPut(t, c, "x", "one")
	err := c.Bucket(bucket).Object("x").If(storage.Conditions{GenerationMatch: a.Generation + 1}).Delete(context.Background())
	assert.NoError(t, err, "the bare fake ignores ifGenerationMatch on delete")

	mustPut(t, c, "y", "one")
	err = c.Bucket(bucket).Object("y").If(storage.Conditions{MetagenerationMatch: 99}).Delete(context.Background())
	assert.NoError(t, err, "the bare fake ignores ifMetagenerationMatch on delete")
}

func TestBareFakeRewriteIgnoresPreconditions(t *testing.T) {
	_, c := bareFake(t)
	mustPut(t, c, "src", "one")
	mustPut(t, c, "dst", "old")
	b := c.Bucket(bucket)

	_, err := b.Object("dst").If(storage.Conditions{DoesNotExist: true}).CopierFrom(b.Object("src")).Run(context.Background())
	assert.NoError(t, err, "the bare fake ignores DoesNotExist on the destination of a copy")
	_, err = b.Object("dst").If(storage.Conditions{GenerationMatch: 1}).CopierFrom(b.Object("src")).Run(context.Background())
	assert.NoError(t, err, "the bare fake ignores ifGenerationMatch on the destination of a copy")
	_, err = b.Object("dst").CopierFrom(b.Object("src").If(storage.Conditions{GenerationMatch: 1})).Run(context.Background())
	assert.NoError(t, err, "the bare fake ignores ifSourceGenerationMatch")
}

func TestBareFakeComposeIgnoresPreconditions(t *testing.T) {
	_, c := bareFake(t)
	mustPut(t, c, "p1", "a")
	mustPut(t, c, "p2", "b")
	mustPut(t, c, "dst", "old")
	b := c.Bucket(bucket)
	_, err := b.Object("dst").If(storage.Conditions{DoesNotExist: true}).ComposerFrom(b.Object("p1"), b.Object("p2")).Run(context.Background())
	assert.NoError(t, err, "the bare fake ignores DoesNotExist on the destination of a compose")
}

func TestBareFakeUpdateIgnoresPreconditions(t *testing.T) {
	fake, c := bareFake(t)
	a := mustPut(t, c, "x", "one")
	u := fmt.Sprintf("/storage/v1/b/%s/o/x?ifGenerationMatch=%d&ifMetagenerationMatch=99", bucket, a.Generation+1)
	req := httptest.NewRequest(http.MethodPut, u, strings.NewReader(`{"contentType":"evil/type"}`))
	rec := httptest.NewRecorder()
	fake.HTTPHandler().ServeHTTP(rec, req)
	assert.Equal(t, http.StatusOK, rec.Code, "the bare fake ignores preconditions on objects.update: %s", rec.Body)

	// Through the layer the same request is refused.
	s := newServer(t)
	b := mustPut(t, s.Client, "x", "one")
	u = fmt.Sprintf("%s/storage/v1/b/%s/o/x?ifGenerationMatch=%d&ifMetagenerationMatch=99", s.URL, bucket, b.Generation)
	hreq, err := http.NewRequest(http.MethodPut, u, strings.NewReader(`{"contentType":"evil/type"}`))
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(hreq)
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	require.NoError(t, res.Body.Close())
	assert.Equal(t, http.StatusPreconditionFailed, res.StatusCode)
	assert.Contains(t, string(body), `"reason":"conditionNotMet"`)
}

// ---- the layer ----------------------------------------------------------------------

func newServer(t *testing.T) *Server {
	return New(t, BucketSpec{Name: bucket, Versioning: true})
}

func TestUploadPreconditions(t *testing.T) {
	s := newServer(t)
	a, err := put(t, s.Client, "x", &storage.Conditions{DoesNotExist: true}, "one")
	require.NoError(t, err)

	_, err = put(t, s.Client, "x", &storage.Conditions{DoesNotExist: true}, "two")
	assert.Equal(t, http.StatusPreconditionFailed, code(err))
	_, err = put(t, s.Client, "x", &storage.Conditions{GenerationMatch: a.Generation + 1}, "two")
	assert.Equal(t, http.StatusPreconditionFailed, code(err))
	_, err = put(t, s.Client, "x", &storage.Conditions{GenerationMatch: a.Generation, MetagenerationMatch: 2}, "two")
	assert.Equal(t, http.StatusPreconditionFailed, code(err), "the layer enforces ifMetagenerationMatch on uploads")

	b, err := put(t, s.Client, "x", &storage.Conditions{GenerationMatch: a.Generation, MetagenerationMatch: 1}, "two")
	require.NoError(t, err)
	assert.Greater(t, b.Generation, a.Generation)
	assert.Equal(t, "two", read(t, s.Client.Bucket(bucket).Object("x")))
}

func TestDeletePreconditions(t *testing.T) {
	s := newServer(t)
	a := mustPut(t, s.Client, "x", "one")
	o := s.Client.Bucket(bucket).Object("x")

	err := o.If(storage.Conditions{GenerationMatch: a.Generation + 1}).Delete(context.Background())
	assert.Equal(t, http.StatusPreconditionFailed, code(err))
	err = o.If(storage.Conditions{GenerationMatch: a.Generation, MetagenerationMatch: 2}).Delete(context.Background())
	assert.Equal(t, http.StatusPreconditionFailed, code(err))
	_, err = o.Attrs(context.Background())
	require.NoError(t, err, "still live after refused deletes")

	require.NoError(t, o.If(storage.Conditions{GenerationMatch: a.Generation, MetagenerationMatch: 1}).Delete(context.Background()))
	_, err = o.Attrs(context.Background())
	assert.ErrorIs(t, err, storage.ErrObjectNotExist)

	err = o.If(storage.Conditions{GenerationMatch: a.Generation}).Delete(context.Background())
	assert.ErrorIs(t, err, storage.ErrObjectNotExist, "deleting what is gone is a 404, not a 412")
}

func TestPatchPreconditionsAndMetageneration(t *testing.T) {
	s := newServer(t)
	a := mustPut(t, s.Client, "x", "one", func(w *storage.Writer) { w.ContentType = "text/plain" })
	require.EqualValues(t, 1, a.Metageneration)
	o := s.Client.Bucket(bucket).Object("x")
	ctx := context.Background()

	_, err := o.If(storage.Conditions{GenerationMatch: a.Generation + 1, MetagenerationMatch: 1}).
		Update(ctx, storage.ObjectAttrsToUpdate{ContentType: "evil/type"})
	assert.Equal(t, http.StatusPreconditionFailed, code(err), "stale generation")

	u, err := o.If(storage.Conditions{GenerationMatch: a.Generation, MetagenerationMatch: 1}).
		Update(ctx, storage.ObjectAttrsToUpdate{ContentType: "evil/type"})
	require.NoError(t, err)
	assert.EqualValues(t, 2, u.Metageneration)
	assert.Equal(t, "evil/type", u.ContentType)

	_, err = o.If(storage.Conditions{GenerationMatch: a.Generation, MetagenerationMatch: 1}).
		Update(ctx, storage.ObjectAttrsToUpdate{ContentType: "text/plain"})
	assert.Equal(t, http.StatusPreconditionFailed, code(err), "stale metageneration")

	got, err := o.Attrs(ctx)
	require.NoError(t, err)
	assert.Equal(t, "evil/type", got.ContentType)
	assert.EqualValues(t, 2, got.Metageneration)
	assert.EqualValues(t, 2, s.Metageneration(bucket, "x", a.Generation))

	// Listings and downloads report it too.
	it := s.Client.Bucket(bucket).Objects(ctx, &storage.Query{Prefix: "x"})
	la, err := it.Next()
	require.NoError(t, err)
	assert.EqualValues(t, 2, la.Metageneration)
	r, err := o.NewReader(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 2, r.Attrs.Metageneration)
	require.NoError(t, r.Close())

	// A new generation starts again at 1.
	b := mustPut(t, s.Client, "x", "two")
	assert.EqualValues(t, 1, b.Metageneration)
}

func TestPatchClearsAndMerges(t *testing.T) {
	s := newServer(t)
	a := mustPut(t, s.Client, "x", "one", func(w *storage.Writer) {
		w.ContentType = "text/plain"
		w.ContentEncoding = "gzip"
		w.CacheControl = "no-cache"
		w.ContentDisposition = "attachment"
		w.Metadata = map[string]string{"a": "1", "b": "2"}
	})
	o := s.Client.Bucket(bucket).Object("x")
	ctx := context.Background()

	u, err := o.Update(ctx, storage.ObjectAttrsToUpdate{
		ContentEncoding: "", CacheControl: "", ContentDisposition: "",
		Metadata: map[string]string{"b": "two", "c": "3"},
	})
	require.NoError(t, err)
	assert.Equal(t, "text/plain", u.ContentType, "untouched")
	assert.Empty(t, u.ContentEncoding)
	assert.Empty(t, u.CacheControl)
	assert.Empty(t, u.ContentDisposition)
	assert.Equal(t, map[string]string{"a": "1", "b": "two", "c": "3"}, u.Metadata, "patch merges custom metadata")
	assert.Equal(t, a.Generation, u.Generation, "a patch is not a new generation")

	// A null key deletes it (the Go SDK cannot send this; GCS accepts it).
	patchRaw(t, s, "x", `{"metadata":{"a":null}}`)
	got, err := o.Attrs(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"b": "two", "c": "3"}, got.Metadata)

	u, err = o.Update(ctx, storage.ObjectAttrsToUpdate{ContentType: "", Metadata: map[string]string{}})
	require.NoError(t, err)
	assert.Empty(t, u.Metadata, "an empty map (sent as null) clears custom metadata")
	assert.Empty(t, u.ContentType)
	assert.EqualValues(t, 4, u.Metageneration)
	// The content is not gzip although it was stored with Content-Encoding: gzip; read
	// it as stored (decoding it would fail).
	assert.Equal(t, "one", read(t, o.ReadCompressed(true)), "content unchanged")
}

func patchRaw(t *testing.T, s *Server, object, body string) {
	t.Helper()
	u := s.URL + "/storage/v1/b/" + bucket + "/o/" + url.PathEscape(object)
	req, err := http.NewRequest(http.MethodPatch, u, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	require.Equal(t, http.StatusOK, res.StatusCode, "%s", b)
}

func TestPatchNoncurrentGeneration(t *testing.T) {
	s := newServer(t)
	a := mustPut(t, s.Client, "x", "one")
	b := mustPut(t, s.Client, "x", "two")
	ctx := context.Background()

	old := s.Client.Bucket(bucket).Object("x").Generation(a.Generation)
	u, err := old.If(storage.Conditions{MetagenerationMatch: 1}).Update(ctx, storage.ObjectAttrsToUpdate{CacheControl: "private"})
	require.NoError(t, err)
	assert.Equal(t, a.Generation, u.Generation)
	assert.EqualValues(t, 2, u.Metageneration)
	assert.False(t, u.Deleted.IsZero(), "still noncurrent")

	live, err := s.Client.Bucket(bucket).Object("x").Attrs(ctx)
	require.NoError(t, err)
	assert.Equal(t, b.Generation, live.Generation)
	assert.EqualValues(t, 1, live.Metageneration)
	assert.Empty(t, live.CacheControl)
}

func TestPatchMissingObject(t *testing.T) {
	s := newServer(t)
	_, err := s.Client.Bucket(bucket).Object("nope").If(storage.Conditions{GenerationMatch: 1, MetagenerationMatch: 1}).
		Update(context.Background(), storage.ObjectAttrsToUpdate{ContentType: "x/y"})
	assert.ErrorIs(t, err, storage.ErrObjectNotExist)
}

func TestRewritePreconditions(t *testing.T) {
	s := newServer(t)
	src := mustPut(t, s.Client, "src", "payload")
	dst := mustPut(t, s.Client, "dst", "old")
	b := s.Client.Bucket(bucket)
	ctx := context.Background()

	_, err := b.Object("dst").If(storage.Conditions{DoesNotExist: true}).CopierFrom(b.Object("src")).Run(ctx)
	assert.Equal(t, http.StatusPreconditionFailed, code(err))
	_, err = b.Object("dst").If(storage.Conditions{GenerationMatch: dst.Generation + 1}).CopierFrom(b.Object("src")).Run(ctx)
	assert.Equal(t, http.StatusPreconditionFailed, code(err))
	_, err = b.Object("dst").CopierFrom(b.Object("src").If(storage.Conditions{GenerationMatch: src.Generation + 1})).Run(ctx)
	assert.Equal(t, http.StatusPreconditionFailed, code(err))
	assert.Equal(t, "old", read(t, b.Object("dst")))

	_, err = b.Object("dst").If(storage.Conditions{GenerationMatch: dst.Generation}).
		CopierFrom(b.Object("src").If(storage.Conditions{GenerationMatch: src.Generation})).Run(ctx)
	require.NoError(t, err)
	_, err = b.Object("new").If(storage.Conditions{DoesNotExist: true}).CopierFrom(b.Object("src")).Run(ctx)
	require.NoError(t, err)
	assert.Equal(t, "payload", read(t, b.Object("dst")))
	assert.Equal(t, "payload", read(t, b.Object("new")))
}

func TestComposePreconditions(t *testing.T) {
	s := newServer(t)
	mustPut(t, s.Client, "p1", "a")
	mustPut(t, s.Client, "p2", "b")
	mustPut(t, s.Client, "dst", "old")
	b := s.Client.Bucket(bucket)
	_, err := b.Object("dst").If(storage.Conditions{DoesNotExist: true}).ComposerFrom(b.Object("p1"), b.Object("p2")).Run(context.Background())
	assert.Equal(t, http.StatusPreconditionFailed, code(err))
	assert.Equal(t, "old", read(t, b.Object("dst")))
}

func TestVersionedBucketKeepsNoncurrentGenerations(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	a := mustPut(t, s.Client, "x", "one")
	b := mustPut(t, s.Client, "x", "two")
	require.NoError(t, s.Client.Bucket(bucket).Object("x").If(storage.Conditions{GenerationMatch: b.Generation}).Delete(ctx))

	var got []*storage.ObjectAttrs
	it := s.Client.Bucket(bucket).Objects(ctx, &storage.Query{Prefix: "x", Versions: true})
	for {
		oa, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		require.NoError(t, err)
		got = append(got, oa)
	}
	require.Len(t, got, 2)
	gens := map[int64]*storage.ObjectAttrs{}
	for _, oa := range got {
		gens[oa.Generation] = oa
		assert.False(t, oa.Deleted.IsZero(), "generation %d is noncurrent: Deleted is set", oa.Generation)
	}
	require.Contains(t, gens, a.Generation)
	require.Contains(t, gens, b.Generation)

	assert.Equal(t, "one", read(t, s.Client.Bucket(bucket).Object("x").Generation(a.Generation)))
	assert.Equal(t, "two", read(t, s.Client.Bucket(bucket).Object("x").Generation(b.Generation)))

	oa, err := s.Client.Bucket(bucket).Object("x").Generation(a.Generation).Attrs(ctx)
	require.NoError(t, err)
	assert.False(t, oa.Deleted.IsZero())

	// The live listing is empty.
	it = s.Client.Bucket(bucket).Objects(ctx, &storage.Query{Prefix: "x"})
	_, err = it.Next()
	assert.ErrorIs(t, err, iterator.Done)
}

func TestUnversionedBucketDropsOldGenerations(t *testing.T) {
	s := New(t, BucketSpec{Name: bucket})
	a := mustPut(t, s.Client, "x", "one")
	mustPut(t, s.Client, "x", "two")
	_, err := s.Client.Bucket(bucket).Object("x").Generation(a.Generation).Attrs(context.Background())
	assert.ErrorIs(t, err, storage.ErrObjectNotExist)
}

func TestReadCompressedReturnsStoredBytes(t *testing.T) {
	s := newServer(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err := zw.Write([]byte("#!/bin/sh\necho hello\n"))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	stored := gz.String()

	a := mustPut(t, s.Client, "x.sh", stored, func(w *storage.Writer) {
		w.ContentType = "text/x-sh"
		w.ContentEncoding = "gzip"
	})
	o := s.Client.Bucket(bucket).Object("x.sh").Generation(a.Generation)

	assert.Equal(t, stored, read(t, o.ReadCompressed(true)), "ReadCompressed(true): the stored gzip bytes")
	assert.Equal(t, "#!/bin/sh\necho hello\n", read(t, o), "without it: decompressive transcoding")
}

func TestOddObjectNamesThroughTheLayer(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	for _, name := range []string{
		"a b", "dir/sub/file.sh", "hash#1", "q?x=1&y=2", "pct%2F%zz", "ünï/cødé ☃", "tab\there",
		"rewriteTo/b/x/o/y", "a/acl", "plus+sign", "..x",
	} {
		t.Run(name, func(t *testing.T) {
			a, err := put(t, s.Client, name, &storage.Conditions{DoesNotExist: true}, "data:"+name)
			require.NoError(t, err)
			assert.Equal(t, name, a.Name)
			o := s.Client.Bucket(bucket).Object(name)
			assert.Equal(t, "data:"+name, read(t, o.Generation(a.Generation)))
			u, err := o.If(storage.Conditions{GenerationMatch: a.Generation, MetagenerationMatch: 1}).
				Update(ctx, storage.ObjectAttrsToUpdate{CacheControl: "no-cache"})
			require.NoError(t, err)
			assert.Equal(t, name, u.Name)
			assert.EqualValues(t, 2, u.Metageneration)
			_, err = o.If(storage.Conditions{GenerationMatch: a.Generation, MetagenerationMatch: 1}).
				Update(ctx, storage.ObjectAttrsToUpdate{CacheControl: "public"})
			assert.Equal(t, http.StatusPreconditionFailed, code(err))
			require.NoError(t, o.If(storage.Conditions{GenerationMatch: a.Generation}).Delete(ctx))
		})
	}
}

func TestFailNext(t *testing.T) {
	s := newServer(t)
	mustPut(t, s.Client, "x", "one")
	o := s.Client.Bucket(bucket).Object("x")
	ctx := context.Background()

	s.FailNext(http.MethodGet, "/o/x", http.StatusServiceUnavailable, 1)
	_, err := o.Attrs(ctx)
	assert.NoError(t, err, "one 503 is absorbed by the client's retry")

	s.FailNext(http.MethodGet, "/o/x", http.StatusServiceUnavailable, MaxAttempts)
	_, err = o.Attrs(ctx)
	assert.Equal(t, http.StatusServiceUnavailable, code(err))
	_, err = o.Attrs(ctx)
	assert.NoError(t, err, "the rule is used up")

	// Downloads go through the XML API: GET /BUCKET/OBJECT.
	s.FailNext("", "/"+bucket+"/x", http.StatusTooManyRequests, MaxAttempts)
	_, err = o.NewReader(ctx)
	assert.Equal(t, http.StatusTooManyRequests, code(err), "%v", err)
	s.FailNext("", "/"+bucket+"/x", http.StatusServiceUnavailable, 1)
	assert.Equal(t, "one", read(t, o))

	// Go's transport itself retries an idempotent request once when a reused connection
	// is dropped, so a drop can consume two counts per attempt of the SDK.
	mustPut(t, s.Client, "y", "two")
	s.FailNext(http.MethodGet, "/o/y", DropConnection, 100)
	_, err = s.Client.Bucket(bucket).Object("y").Attrs(ctx)
	require.Error(t, err)
	assert.True(t, storage.ShouldRetry(err), "a dropped connection is retryable: %v", err)

	s.FailNext(http.MethodGet, "/o/other", http.StatusInternalServerError, 1)
	_, err = o.Attrs(ctx)
	assert.NoError(t, err, "a rule for another path does not fire")
}
