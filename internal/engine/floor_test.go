package engine_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"

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
