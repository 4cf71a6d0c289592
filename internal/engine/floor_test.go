package engine_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/config"
	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/gcs"
	"github.com/tamperguard/tamperguard/internal/gcstest"
	"github.com/tamperguard/tamperguard/internal/release"
)

// releaseHost serves a checksum file, its signature and the script at fixed URLs under
// /latest/, as Codecov served its uploader: the attacker can rewrite it too.
type releaseHost struct {
	srv    *httptest.Server
	mu     sync.Mutex
	files  map[string][]byte
	status map[string]int
}

func newReleaseHost(t *testing.T) *releaseHost {
	h := &releaseHost{files: map[string][]byte{}, status: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		body, ok := h.files[r.URL.Path]
		status := h.status[r.URL.Path]
		h.mu.Unlock()
		switch {
		case status != 0:
			w.WriteHeader(status)
		case ok:
			_, _ = w.Write(body)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// publish serves release version of testdata/rollback (signed by gpg at a known time).
func (h *releaseHost) publish(t *testing.T, version string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.status)
	for _, n := range []string{"SHA256SUMS", "SHA256SUMS.asc", "install.sh"} {
		h.files["/latest/"+n] = rollbackFile(t, version, n)
	}
}

func (h *releaseHost) setStatus(path string, status int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.status[path] = status
}

func rollbackFile(t *testing.T, version, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(testdata(t, "rollback", version, name))
	require.NoError(t, err)
	return b
}

type floorSetup struct {
	srv  *gcstest.Server
	host *releaseHost
	yaml string
}

func newFloorSetup(t *testing.T) *floorSetup {
	s := &floorSetup{
		srv:  gcstest.New(t, gcstest.BucketSpec{Name: bucket, Versioning: true}, gcstest.BucketSpec{Name: stateBucket, Versioning: true}),
		host: newReleaseHost(t),
	}
	s.yaml = `state: {bucket: ` + stateBucket + `}
rules:
  - bucket: ` + bucket + `
    objects: ["install.sh"]
    release: {url: ` + s.host.srv.URL + `/latest/SHA256SUMS}
    keys: {openpgp: [` + testdata(t, "rollback", "rollback-ed25519.asc") + `]}
`
	return s
}

// engine is one instance; a new one shares nothing with the others but the state bucket.
func (s *floorSetup) engine(t *testing.T) (*engine.Engine, *recorder) {
	cfg, err := config.Parse(config.Source{Name: "test.yaml", Data: []byte(s.yaml), Dir: t.TempDir()})
	require.NoError(t, err)
	notes := &recorder{}
	eng, err := engine.New(engine.Options{Store: gcs.New(s.srv.Client), Policy: cfg.Policy})
	require.NoError(t, err)
	return eng, notes
}

func (s *floorSetup) put(t *testing.T, data []byte) int64 {
	w := s.srv.Client.Bucket(bucket).Object("install.sh").NewWriter(context.Background())
	_, err := w.Write(data)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return w.Attrs().Generation
}

func (s *floorSetup) live(t *testing.T) []byte {
	h := &harness{t: t, srv: s.srv, ctx: context.Background()}
	_, b := h.live("install.sh")
	return b
}

// The attacker holds the bucket and the release host. They put back the older, validly
// signed checksum file (or break the host) and the older script: the script is judged
// against the last release that verified, found tampered and restored to its bytes, by this
// instance and by a fresh one that only shares the state bucket.
func TestAttackerBytesRestoredAgainstTheFloor(t *testing.T) {
	good := func(t *testing.T) []byte { return rollbackFile(t, "v1.1.0", "install.sh") }
	old := func(t *testing.T) []byte { return rollbackFile(t, "v1.0.0", "install.sh") }
	for _, tc := range []struct {
		name      string
		attack    func(t *testing.T, h *releaseHost)
		transient bool
		fresh     bool // judged by a new instance that shares only the state bucket
	}{
		{name: "older signed checksum file", attack: func(t *testing.T, h *releaseHost) { h.publish(t, "v1.0.0") }},
		{name: "signature deleted", attack: func(t *testing.T, h *releaseHost) { h.setStatus("/latest/SHA256SUMS.asc", http.StatusNotFound) }},
		{name: "host down", transient: true, attack: func(t *testing.T, h *releaseHost) { h.setStatus("/latest/SHA256SUMS", http.StatusServiceUnavailable) }},
		{name: "older signed checksum file, fresh instance", fresh: true, attack: func(t *testing.T, h *releaseHost) { h.publish(t, "v1.0.0") }},
		{name: "checksum file deleted, fresh instance", fresh: true, attack: func(t *testing.T, h *releaseHost) { h.setStatus("/latest/SHA256SUMS", http.StatusNotFound) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := newFloorSetup(t)
			s.host.publish(t, "v1.1.0")
			eng, notes := s.engine(t)
			g := s.put(t, good(t))
			d := eng.Handle(ctx, engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "install.sh", Generation: g})
			require.Equal(t, engine.VerdictOK, d.Verdict, d.Error)

			tc.attack(t, s.host)
			if tc.fresh {
				eng, notes = s.engine(t)
			}
			bad := s.put(t, old(t))
			d = eng.Handle(ctx, engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "install.sh", Generation: bad})
			require.NoError(t, eng.Alert(ctx, &d, notes))
			assert.Equal(t, engine.VerdictTampered, d.Verdict, "%s %s", d.Reason, d.Error)
			assert.Equal(t, engine.ActionRestored, d.Action, "%s %s", d.Reason, d.Error)
			assert.Equal(t, sum(good(t)), d.ExpectedSHA256)
			assert.Equal(t, good(t), s.live(t), "the signed bytes of the floor are live again")
			require.NotNil(t, d.ReleaseInfo)
			require.NotNil(t, d.ReleaseInfo.Floor, "the decision says it was judged against the floor")
			assert.Equal(t, tc.transient, d.ReleaseInfo.Floor.Transient())
			assert.NotEmpty(t, d.ReleaseInfo.Skipped, "and what was not trusted")
			assert.NotEmpty(t, notes.all(), "alerted")
		})
	}
}

// Without a floor, a broken source stays what it was: unverifiable, retried when transient.
func TestNoFloorNoRestore(t *testing.T) {
	ctx := context.Background()
	s := newFloorSetup(t)
	s.host.setStatus("/latest/SHA256SUMS", http.StatusServiceUnavailable)
	eng, _ := s.engine(t)
	g := s.put(t, rollbackFile(t, "v1.0.0", "install.sh"))
	d := eng.Handle(ctx, engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "install.sh", Generation: g})
	assert.Equal(t, engine.VerdictUnverifiable, d.Verdict)
	assert.Equal(t, engine.ReasonReleaseUnreachable, d.Reason)
	assert.True(t, d.Transient)
	assert.ErrorIs(t, d.Err, release.ErrUnreachable)
}

// newGitFloorSetup watches install.sh against "latest" of a copy of the fixture repository
// (v1.2.0 is the newest release the pinned keys verify).
func newGitFloorSetup(t *testing.T) (*floorSetup, string) {
	repo := filepath.Join(t.TempDir(), "uploader.git")
	require.NoError(t, os.CopyFS(repo, os.DirFS(testdata(t, "git", "uploader.git"))))
	s := &floorSetup{srv: gcstest.New(t, gcstest.BucketSpec{Name: bucket, Versioning: true}, gcstest.BucketSpec{Name: stateBucket, Versioning: true})}
	s.yaml = `state: {bucket: ` + stateBucket + `}
rules:
  - bucket: ` + bucket + `
    objects: ["install.sh"]
    release: {git: ` + repo + `, tag: latest}
    keys:
      openpgp: [` + testdata(t, "keys", "maintainer-ed25519.asc") + `, ` + testdata(t, "keys", "maintainer-rsa3072.asc") + `]
`
	return s, repo
}

// takeTheTag is the attacker who can push: the signed tag is deleted and an unsigned one of
// the same name put in its place, on another release's commit, with a newer one beside it.
func takeTheTag(t *testing.T, repo, tag string) {
	r, err := git.PlainOpen(repo)
	require.NoError(t, err)
	require.NoError(t, r.Storer.RemoveReference(plumbing.NewTagReferenceName(tag)))
	other, err := r.Tag("v1.4.0")
	require.NoError(t, err)
	to, err := r.TagObject(other.Hash())
	require.NoError(t, err)
	for _, name := range []string{tag, "v2.0.0"} {
		_, err = r.CreateTag(name, to.Target, &git.CreateTagOptions{
			Tagger:  &object.Signature{Name: "Attacker", Email: "attacker@example.org", When: time.Now()},
			Message: "Release " + name,
		})
		require.NoError(t, err)
	}
}

// The attacker deletes the signed git tag and pushes an unsigned one in its place; a fresh
// instance (sharing only the state bucket) still judges against the floor, verified again
// from the git objects kept in the state bucket, and restores the signed bytes: from a good
// generation in the bucket, or, when the attacker deleted that too, from the file in the
// signed tree, read by its object id.
func TestGitFloorSurvivesDeletedTag(t *testing.T) {
	for _, tc := range []struct {
		name       string
		deleteGood bool
		source     string
	}{
		{name: "good generation in the bucket", source: "gs://"},
		{name: "good generation deleted too", deleteGood: true, source: "release v1.2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, repo := newGitFloorSetup(t)
			good := taggedFile(t, "v1.2.0", "install.sh")
			eng, _ := s.engine(t)
			g := s.put(t, good)
			d := eng.Handle(ctx, engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "install.sh", Generation: g})
			require.Equal(t, engine.VerdictOK, d.Verdict, d.Error)
			require.Equal(t, "v1.2.0", d.Release)

			takeTheTag(t, repo, "v1.2.0")
			bad := s.put(t, tampered(good))
			if tc.deleteGood {
				require.NoError(t, s.srv.Client.Bucket(bucket).Object("install.sh").Generation(g).Delete(ctx))
			}

			eng, notes := s.engine(t)
			d = eng.Handle(ctx, engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "install.sh", Generation: bad})
			require.NoError(t, eng.Alert(ctx, &d, notes))
			assert.Equal(t, engine.VerdictTampered, d.Verdict, "%s %s", d.Reason, d.Error)
			assert.Equal(t, engine.ActionRestored, d.Action, "%s %s", d.Reason, d.Error)
			assert.Equal(t, "v1.2.0", d.Release)
			assert.Equal(t, sum(good), d.ExpectedSHA256)
			assert.True(t, strings.HasPrefix(d.Source, tc.source), "restored from %s", d.Source)
			assert.Equal(t, good, s.live(t), "the signed bytes of the floor are live again")
			require.NotNil(t, d.ReleaseInfo)
			require.NotNil(t, d.ReleaseInfo.Floor, "judged against the floor")
			assert.False(t, d.ReleaseInfo.Floor.Transient())
			assert.NotEmpty(t, d.Floor)
			var skipped []string
			for _, sk := range d.ReleaseInfo.Skipped {
				skipped = append(skipped, sk.Tag)
			}
			assert.Subset(t, skipped, []string{"v2.0.0", "v1.2.0"}, "the unsigned tags are named")
			assert.NotEmpty(t, notes.all(), "alerted")
		})
	}
}

// A git release keeps at most 5 MiB of objects as evidence; its mark record, base64 and
// all, must still be read back whole (a record over the bound would count as none).
func TestStateMarksHoldTheLargestGitEvidence(t *testing.T) {
	ctx := context.Background()
	srv := gcstest.New(t, gcstest.BucketSpec{Name: stateBucket, Versioning: true})
	marks := engine.NewStateMarks(gcs.New(srv.Client), stateBucket)
	fill := func(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }
	ev := &release.Evidence{Tag: "v1.2.0", Checksums: fill(3<<20, 'c'), Git: &release.GitEvidence{
		TagObject: fill(256<<10, 't'), Commit: fill(768<<10, 'm'), Trees: [][]byte{fill(1<<20, 'r')},
	}}
	m := release.Mark{Tag: "v1.2.0", Version: "v1.2.0", ID: "sha256:test", Evidence: ev}
	require.NoError(t, marks.SaveMark(ctx, "git example", m))
	got, ok, err := marks.LoadMark(ctx, "git example")
	require.NoError(t, err)
	require.True(t, ok, "the record was read back")
	require.NotNil(t, got.Evidence)
	assert.Equal(t, ev, got.Evidence)
}
