package engine_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/faultproxy"
	"github.com/tamperguard/tamperguard/internal/gcs"
	"github.com/tamperguard/tamperguard/internal/gcstest"
)

// A restore from a good generation: the store copies it (no upload, no read-back: the copy
// of a generation this process hashed is verified by the store's size and checksums of it),
// and the event costs at most 8 storage calls from its arrival to the outcome recorded (the
// release's rollback mark read and written once per process aside). The object's bytes
// through tamperguard: the read of the bad generation that detected it (its hash and its
// diff), and one read of the good one, for its hash when this process never hashed it,
// else for the alert's diff (objects up to MaxSample).
func TestRestoreFromAGoodGenerationIsAServerSideCopy(t *testing.T) {
	for _, c := range []struct {
		name      string
		seenGood  bool // this instance judged the good generation before (its own event)
		calls     int
		goodReads int
	}{
		{"the good generation judged by this instance", true, 8, 1},
		{"the good generation never seen", false, 8, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{})
			goodGen := h.put("install.sh", h.good)
			other := h.put("dl/other.sh", h.good)
			bad := h.put("install.sh", tampered(h.good))
			proxy, client := h.srv.WithFaults(t)
			proxy.SetKeepAlives(false) // every attempt is a request
			eng, err := engine.New(engine.Options{Store: gcs.New(client), Policy: h.cfg.Policy})
			require.NoError(t, err)
			// The release (and its rollback mark) once, as a warm instance has it.
			d := eng.Check(h.ctx, bucket, "dl/other.sh", other, false)
			require.Equal(t, engine.VerdictOK, d.Verdict, d.Error)
			if c.seenGood {
				d = eng.Check(h.ctx, bucket, "install.sh", goodGen, false)
				require.Equal(t, engine.VerdictOK, d.Verdict, d.Error)
			}
			require.NoError(t, proxy.WaitIdle(h.ctx)) // the warm-up's requests logged before the log is cleared
			proxy.ClearLog()
			before := proxy.Stats()

			d = eng.Handle(h.ctx, finalize("install.sh", bad))
			require.Equal(t, engine.ActionRestored, d.Action, string(d.Reason)+d.Error)
			calls := proxy.Stats().Requests - before.Requests
			var log []string
			uploads, copies, reads := 0, 0, map[string]int{}
			require.NoError(t, proxy.WaitIdle(h.ctx))
			for _, e := range proxy.Log() {
				log = append(log, e.String())
				u, err := url.Parse(e.URL)
				require.NoError(t, err)
				switch {
				case strings.HasPrefix(u.Path, "/upload/") && u.Query().Get("name") == "install.sh":
					uploads++
				case strings.Contains(u.Path, "/rewriteTo/b/"+bucket+"/o/install.sh"):
					copies++
					assert.Equal(t, strconv.FormatInt(goodGen, 10), u.Query().Get("sourceGeneration"))
					assert.Equal(t, strconv.FormatInt(bad, 10), u.Query().Get("ifGenerationMatch"))
				case e.Method == http.MethodGet && u.Path == "/"+bucket+"/install.sh":
					reads[u.Query().Get("generation")]++
				}
			}
			assert.LessOrEqual(t, calls, c.calls, "storage calls of one restore:\n%s", strings.Join(log, "\n"))
			assert.Zero(t, uploads, "the good bytes are not uploaded")
			assert.Equal(t, 1, copies)
			assert.Equal(t, 1, reads[strconv.FormatInt(bad, 10)], "the bad generation is read once: its hash and its diff")
			assert.Equal(t, c.goodReads, reads[strconv.FormatInt(goodGen, 10)], "the good one: its hash and its diff, or its diff\n%s", strings.Join(log, "\n"))
			assert.Zero(t, reads[strconv.FormatInt(d.RestoredGeneration, 10)], "the restored one is not read back")
			assert.Equal(t, engine.VerifiedCopyChecksums, d.RestoreVerified)
			assert.Equal(t, h.good, d.GoodContent)
			assert.Equal(t, tampered(h.good), d.BadContent)
			liveGen, b := h.live("install.sh")
			assert.Equal(t, d.RestoredGeneration, liveGen)
			assert.Equal(t, h.good, b)
			ev, ok := h.stateObject("evidence/" + bucket + "/install.sh/" + itoa(bad))
			require.True(t, ok, "the evidence is kept (copied in the store)")
			assert.Equal(t, tampered(h.good), ev)
		})
	}
}

// The good generation's metadata is not signed: an attacker who patched the noncurrent
// generation (Content-Encoding: gzip, a Content-Type a browser renders, a marker of their
// own) does not see it copied onto the restored object, whatever the store keeps of a
// copy's source (fake-gcs-server keeps every field the request leaves empty).
func TestCopiedRestoreCarriesOnlyTheSafeMetadata(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	goodGen := h.put("dl/get.sh", h.good)
	bad := h.put("dl/get.sh", tampered(h.good))
	_, err := h.srv.Client.Bucket(bucket).Object("dl/get.sh").Generation(goodGen).Update(h.ctx, storage.ObjectAttrsToUpdate{
		ContentEncoding: "gzip", ContentDisposition: "inline", CacheControl: "public, max-age=31536000",
		Metadata: map[string]string{"tamperguard-incident": "forged", "note": "attacker"},
	})
	require.NoError(t, err)

	d := h.handle(finalize("dl/get.sh", bad))
	require.Equal(t, engine.ActionRestored, d.Action, string(d.Reason)+d.Error)
	attrs, err := h.srv.Client.Bucket(bucket).Object("dl/get.sh").Attrs(h.ctx)
	require.NoError(t, err)
	assert.Equal(t, d.RestoredGeneration, attrs.Generation)
	assert.Equal(t, "text/x-shellscript", attrs.ContentType, "the rule's")
	assert.Empty(t, attrs.ContentEncoding)
	assert.Empty(t, attrs.ContentDisposition)
	assert.Equal(t, "no-cache", attrs.CacheControl)
	assert.Equal(t, map[string]string{"tamperguard-incident": bucket + "/dl/get.sh#" + itoa(bad)}, attrs.Metadata)
}

// A good generation deleted between the listing and the copy: the store answers the copy
// with 404, the decision is a retry (not a failure for good), and the retry restores.
func TestSourceGenerationGoneBeforeTheCopyIsRetried(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.put("install.sh", h.good)
	bad := h.put("install.sh", tampered(h.good))
	proxy, client := h.srv.WithFaults(t)
	eng, err := engine.New(engine.Options{Store: gcs.New(client), Policy: h.cfg.Policy})
	require.NoError(t, err)
	intoLive := func(r *http.Request) bool {
		return strings.Contains(r.URL.EscapedPath(), "/rewriteTo/b/"+bucket+"/o/install.sh")
	}
	copyGone := proxy.Add(faultproxy.Rule{Match: faultproxy.All(h.srv.Match(gcstest.OpCopy, bucket, "install.sh"), intoLive),
		When: faultproxy.Nth(1), Fault: faultproxy.Status(http.StatusNotFound)})
	d := eng.Handle(h.ctx, finalize("install.sh", bad))
	require.Equal(t, 1, copyGone.Applied())
	assert.True(t, d.Transient, "a source that vanished is worth a retry")
	assert.Equal(t, engine.ActionFailed, d.Action)
	assert.ErrorIs(t, d.Err, engine.ErrObjectNotFound)

	d = eng.Handle(h.ctx, finalize("install.sh", bad))
	assert.Equal(t, engine.ActionRestored, d.Action, string(d.Reason)+d.Error)
	_, b := h.live("install.sh")
	assert.Equal(t, h.good, b)
}
