package release

import (
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/signing"
)

func fixture(t testing.TB, elem ...string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(append([]string{"..", "..", "testdata"}, elem...)...))
	require.NoError(t, err)
	return p
}

// fixtureKeys loads pinned keys from testdata/keys by file name.
func fixtureKeys(t testing.TB, openpgp, ssh []string) *signing.Keys {
	t.Helper()
	var pgp, sshKeys [][]byte
	for _, n := range openpgp {
		b, err := os.ReadFile(fixture(t, "keys", n))
		require.NoError(t, err)
		pgp = append(pgp, b)
	}
	for _, n := range ssh {
		b, err := os.ReadFile(fixture(t, "keys", n))
		require.NoError(t, err)
		sshKeys = append(sshKeys, []byte(strings.TrimSpace(string(b))))
	}
	k, err := signing.NewKeys(pgp, sshKeys, nil, signing.Options{})
	require.NoError(t, err)
	return k
}

func maintainerKeys(t testing.TB) *signing.Keys {
	return fixtureKeys(t, []string{"maintainer-ed25519.asc", "maintainer-rsa3072.asc"}, []string{"release_ed25519.pub"})
}

// copyRepo gives a test its own copy of the fixture repository to change.
func copyRepo(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "uploader.git")
	require.NoError(t, os.CopyFS(dst, os.DirFS(fixture(t, "git", "uploader.git"))))
	return dst
}

func TestGitFetchSignedTags(t *testing.T) {
	src, err := NewGit(fixture(t, "git", "uploader.git"), "SHA256SUMS", maintainerKeys(t))
	require.NoError(t, err)
	for _, tt := range []struct {
		tag    string
		scheme string
	}{
		{"v1.0.0", "openpgp"},
		{"v1.1.0", "ssh"},
		{"v1.2.0", "openpgp"},
	} {
		t.Run(tt.tag, func(t *testing.T) {
			rel, err := src.Fetch(context.Background(), tt.tag)
			require.NoError(t, err)
			assert.Equal(t, tt.tag, rel.Tag)
			assert.Equal(t, tt.scheme, rel.Signer.Scheme)
			assert.NotEmpty(t, rel.Signer.Fingerprint)
			assert.False(t, rel.Time.IsZero())

			// The released copy in the tag's tree hashes to the signed digest.
			e, err := rel.Lookup("install.sh")
			require.NoError(t, err)
			f, err := rel.Open(context.Background(), "install.sh")
			require.NoError(t, err)
			b, err := io.ReadAll(f)
			require.NoError(t, err)
			require.NoError(t, f.Close())
			assert.Equal(t, e.Digest, checksum.Digest(sha256.Sum256(b)))
			assert.Contains(t, string(b), strings.TrimPrefix(tt.tag, "v"))

			_, err = rel.Lookup("not-listed")
			assert.ErrorIs(t, err, ErrEntryMissing)
			_, err = rel.Open(context.Background(), "../escape")
			assert.ErrorIs(t, err, ErrInvalid)
			_, err = rel.Open(context.Background(), "missing-file")
			assert.ErrorIs(t, err, ErrFileMissing)
		})
	}
}

func TestGitFetchRefusals(t *testing.T) {
	src, err := NewGit(fixture(t, "git", "uploader.git"), "SHA256SUMS", maintainerKeys(t))
	require.NoError(t, err)
	for _, tt := range []struct {
		tag  string
		want error
	}{
		{"v1.3.0", ErrUnsigned},        // annotated, unsigned
		{"v1.4.0", signing.ErrRefused}, // signed by a key that is not pinned
		{"v1.4.0", signing.ErrUnknownKey},
		{"v1.5.0", ErrUnsigned}, // lightweight
		{"sha1-signed", signing.ErrWeakAlgorithm},
		{"expired-signed", signing.ErrRefused},
		{"v7.7.7", ErrNotFound},
	} {
		t.Run(tt.tag, func(t *testing.T) {
			_, err := src.Fetch(context.Background(), tt.tag)
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.want)
			assert.Contains(t, err.Error(), tt.tag)
		})
	}
	_, err = src.Fetch(context.Background(), "bad..name")
	assert.ErrorIs(t, err, ErrInvalid)
}

func TestGitChecksumFileMissing(t *testing.T) {
	src, err := NewGit(fixture(t, "git", "uploader.git"), "dist/SHA256SUMS", maintainerKeys(t))
	require.NoError(t, err)
	_, err = src.Fetch(context.Background(), "v1.0.0")
	require.ErrorIs(t, err, ErrNotFound)
	assert.Contains(t, err.Error(), "dist/SHA256SUMS not in the tree")
}

func TestNewGitValidation(t *testing.T) {
	keys := maintainerKeys(t)
	for _, tt := range []struct{ url, sums string }{
		{"", "SHA256SUMS"},
		{"/x", ""},
		{"/x", "/abs"},
		{"/x", "../up"},
		{"/x", "a/../b"},
	} {
		_, err := NewGit(tt.url, tt.sums, keys)
		assert.Error(t, err, "%q %q", tt.url, tt.sums)
	}
	_, err := NewGit("/x", "SHA256SUMS", nil)
	assert.Error(t, err)
}

func TestGitLatest(t *testing.T) {
	ctx := context.Background()
	src, err := NewGit(fixture(t, "git", "uploader.git"), "SHA256SUMS", maintainerKeys(t))
	require.NoError(t, err)
	rel, err := NewResolver(ResolverOptions{}).Resolve(ctx, src, Latest, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, "v1.2.0", rel.Tag)
	var skipped []string
	for _, s := range rel.Skipped {
		skipped = append(skipped, s.Tag)
	}
	assert.Equal(t, []string{"v1.5.0", "v1.4.0", "v1.3.0"}, skipped)

	// Pinning only the ed25519 OpenPGP key: the SSH- and RSA-signed tags are not trusted.
	only := fixtureKeys(t, []string{"maintainer-ed25519.asc"}, nil)
	src2, err := NewGit(fixture(t, "git", "uploader.git"), "SHA256SUMS", only)
	require.NoError(t, err)
	rel, err = NewResolver(ResolverOptions{}).Resolve(ctx, src2, Latest, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, "v1.0.0", rel.Tag)
	assert.Len(t, rel.Skipped, 5)
}

func TestGitRollbackWhenNewestTagDeleted(t *testing.T) {
	ctx := context.Background()
	dir := copyRepo(t)
	src, err := NewGit(dir, "SHA256SUMS", maintainerKeys(t))
	require.NoError(t, err)
	r := NewResolver(ResolverOptions{})
	rel, err := r.Resolve(ctx, src, Latest, time.Time{})
	require.NoError(t, err)
	require.Equal(t, "v1.2.0", rel.Tag)

	repo, err := git.PlainOpen(dir)
	require.NoError(t, err)
	require.NoError(t, repo.Storer.RemoveReference(plumbing.NewTagReferenceName("v1.2.0")))

	// The rule is still judged against v1.2.0 (the floor), and the answer says why.
	rel, err = r.Resolve(ctx, src, Latest, time.Now())
	require.NoError(t, err)
	assert.Equal(t, "v1.2.0", rel.Tag)
	require.NotNil(t, rel.Floor)
	require.ErrorIs(t, rel.Floor.Reason, ErrRollback)
	assert.Contains(t, rel.Floor.Reason.Error(), "v1.1.0")
	assert.Contains(t, rel.Floor.Reason.Error(), "v1.2.0")
}

// An attacker who can push refs points a new version tag at an old signed tag object.
func TestGitReplayedTagObjectRefused(t *testing.T) {
	dir := copyRepo(t)
	repo, err := git.PlainOpen(dir)
	require.NoError(t, err)
	old, err := repo.Reference(plumbing.NewTagReferenceName("v1.0.0"), false)
	require.NoError(t, err)
	require.NoError(t, repo.Storer.SetReference(plumbing.NewHashReference(plumbing.NewTagReferenceName("v9.0.0"), old.Hash())))

	src, err := NewGit(dir, "SHA256SUMS", maintainerKeys(t))
	require.NoError(t, err)
	_, err = src.Fetch(context.Background(), "v9.0.0")
	require.ErrorIs(t, err, ErrInvalid)
	assert.Contains(t, err.Error(), `signed as "v1.0.0"`)

	// And "latest" skips it, reporting why.
	rel, err := NewResolver(ResolverOptions{}).Resolve(context.Background(), src, Latest, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, "v1.2.0", rel.Tag)
	require.NotEmpty(t, rel.Skipped)
	assert.Equal(t, "v9.0.0", rel.Skipped[0].Tag)
}

// The remote path: a shallow in-memory fetch over smart HTTP, served by git's own
// http-backend on loopback.
func TestGitRemoteOverHTTP(t *testing.T) {
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("SKIPPED: git is not installed; the remote fetch path is not tested (the local path is)")
	}
	root := t.TempDir()
	require.NoError(t, os.CopyFS(filepath.Join(root, "uploader.git"), os.DirFS(fixture(t, "git", "uploader.git"))))
	srv := httptest.NewServer(&cgi.Handler{
		Path:   gitBin,
		Args:   []string{"http-backend"},
		Env:    []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
		Stderr: io.Discard,
	})
	defer srv.Close()

	ctx := context.Background()
	src, err := NewGit(srv.URL+"/uploader.git", "SHA256SUMS", maintainerKeys(t))
	require.NoError(t, err)
	cands, refused, err := src.ListCandidates(ctx)
	require.NoError(t, err)
	var tags, refusedTags []string
	for _, c := range cands {
		tags = append(tags, c.Tag)
	}
	for _, s := range refused {
		refusedTags = append(refusedTags, s.Tag)
		assert.Error(t, s.Reason, s.Tag)
	}
	assert.ElementsMatch(t, []string{"v1.0.0", "v1.1.0", "v1.2.0"}, tags)
	assert.Equal(t, []string{"v1.5.0", "v1.4.0", "v1.3.0", "sha1-signed", "expired-signed"}, refusedTags, "newest first")
	plain, err := src.Candidates(ctx)
	require.NoError(t, err)
	assert.Len(t, plain, 3, "Candidates leaves the refused tags out")

	rel, err := NewResolver(ResolverOptions{}).Resolve(ctx, src, Latest, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, "v1.2.0", rel.Tag)
	f, err := rel.Open(ctx, "install.sh")
	require.NoError(t, err)
	b, err := io.ReadAll(f)
	require.NoError(t, err)
	e, err := rel.Lookup("install.sh")
	require.NoError(t, err)
	assert.Equal(t, e.Digest, checksum.Digest(sha256.Sum256(b)))

	_, err = src.Fetch(ctx, "v1.4.0")
	assert.ErrorIs(t, err, signing.ErrRefused)
	_, err = src.Fetch(ctx, "v8.0.0")
	assert.ErrorIs(t, err, ErrNotFound)

	missing, err := NewGit(srv.URL+"/nope.git", "SHA256SUMS", maintainerKeys(t))
	require.NoError(t, err)
	_, err = missing.Candidates(ctx)
	assert.Error(t, err)

	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	defer down.Close()
	bad, err := NewGit(down.URL+"/x.git", "SHA256SUMS", maintainerKeys(t))
	require.NoError(t, err)
	_, err = bad.Fetch(ctx, "v1.0.0")
	assert.ErrorIs(t, err, ErrUnreachable)
}
