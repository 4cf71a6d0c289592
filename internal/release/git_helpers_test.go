package release

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/signing"
)

// gitBin returns the git binary, or skips the test loudly: repositories in these tests are
// made by git itself.
func gitBin(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("git")
	if err != nil {
		t.Skip("SKIPPED: git is not installed; this test builds its repository with the real git")
	}
	return p
}

// runGit runs git in dir with a clean configuration and fixed identities, and returns its
// trimmed output.
func runGit(t testing.TB, dir string, args ...string) string {
	t.Helper()
	return runGitEnv(t, dir, nil, args...)
}

// runGitEnv is runGit with more environment (which wins over the fixed one).
func runGitEnv(t testing.TB, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(gitBin(t), args...)
	cmd.Dir = dir
	home := t.TempDir()
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "HOME="+home,
		"GIT_AUTHOR_NAME=Test Maintainer", "GIT_AUTHOR_EMAIL=maintainer@example.org",
		"GIT_COMMITTER_NAME=Test Maintainer", "GIT_COMMITTER_EMAIL=maintainer@example.org",
		"GIT_AUTHOR_DATE=2025-06-01T12:00:00Z", "GIT_COMMITTER_DATE=2025-06-01T12:00:00Z",
		"TZ=UTC", "LC_ALL=C")
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "git %s: %s", strings.Join(args, " "), stderr.String())
	return strings.TrimSpace(string(out))
}

// gitSSHSigner makes a fresh ed25519 key with ssh-keygen (TEST-ONLY, in a temporary
// directory, never committed) and returns its private key file and the pinned keys.
func gitSSHSigner(t testing.TB) (string, *signing.Keys) {
	t.Helper()
	kg, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("SKIPPED: ssh-keygen is not installed; this test signs its tags with a fresh SSH key")
	}
	key := filepath.Join(t.TempDir(), "test_ed25519")
	out, err := exec.Command(kg, "-q", "-t", "ed25519", "-N", "", "-C", "TEST-ONLY", "-f", key).CombinedOutput()
	require.NoError(t, err, string(out))
	pub, err := os.ReadFile(key + ".pub")
	require.NoError(t, err)
	keys, err := signing.NewKeys(nil, [][]byte{bytes.TrimSpace(pub)}, nil, signing.Options{})
	require.NoError(t, err)
	return key, keys
}

// gitTestRepo is a bare repository built with git, with a scratch work tree to commit from.
type gitTestRepo struct {
	t    testing.TB
	dir  string // the bare repository
	work string
	key  string // SSH signing key, if any
}

func newGitTestRepo(t testing.TB, root, name string) *gitTestRepo {
	t.Helper()
	r := &gitTestRepo{t: t, dir: filepath.Join(root, name), work: t.TempDir()}
	runGit(t, root, "init", "-q", "--bare", "-b", "main", r.dir)
	return r
}

func (r *gitTestRepo) git(args ...string) string {
	r.t.Helper()
	return runGit(r.t, r.work, append([]string{"--git-dir=" + r.dir, "--work-tree=" + r.work}, args...)...)
}

// commit writes files (path → content) into the work tree and commits them all.
func (r *gitTestRepo) commit(files map[string][]byte) string {
	r.t.Helper()
	for p, b := range files {
		full := filepath.Join(r.work, p)
		require.NoError(r.t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(r.t, os.WriteFile(full, b, 0o644))
	}
	r.git("add", "-A")
	r.git("commit", "-q", "-m", "release")
	return r.git("rev-parse", "HEAD")
}

// signedTag makes an SSH-signed annotated tag (git tag -s, gpg.format=ssh) on HEAD.
func (r *gitTestRepo) signedTag(name string) {
	r.t.Helper()
	r.signedTagAt(name, "2025-06-01T12:00:00Z")
}

// signedTagAt is signedTag with the tagger date given.
func (r *gitTestRepo) signedTagAt(name, date string) {
	r.t.Helper()
	require.NotEmpty(r.t, r.key, "the repository has no signing key")
	runGitEnv(r.t, r.work, []string{"GIT_COMMITTER_DATE=" + date}, "--git-dir="+r.dir, "--work-tree="+r.work,
		"-c", "gpg.format=ssh", "-c", "user.signingKey="+r.key, "tag", "-s", "-m", "Release "+name, name)
}

// gitReleaseFiles is a tree holding install.sh and a SHA256SUMS that lists it (and the extra
// files given).
func gitReleaseFiles(t testing.TB, version string, extra map[string][]byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{"install.sh": []byte("#!/bin/sh\nVERSION=" + version + "\necho installing\n")}
	for k, v := range extra {
		files[k] = v
	}
	var sums strings.Builder
	for _, name := range slices.Sorted(maps.Keys(files)) {
		sums.WriteString(gitSHA256Hex(files[name]) + "  " + name + "\n")
	}
	files["SHA256SUMS"] = []byte(sums.String())
	return files
}

func gitSHA256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func gitRandom(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// gitServer serves the bare repositories under root over smart HTTP through git's own
// http-backend, and counts what it sends.
type gitServer struct {
	URL string

	mu         sync.Mutex
	fetches    int   // requests for objects (v2 "command=fetch", or v0)
	lsRefs     int   // "command=ls-refs" requests
	fetchBytes int64 // bytes of fetch responses
	auth       []string
}

type gitServerOpts struct {
	filter bool // uploadpack.allowFilter
	// refuseTreeFilter advertises filtering but answers a request with a tree filter as
	// git's upload-pack does when uploadpack.filter.tree.allow is false (the git run here
	// does not enforce that over protocol v2, so the answer is made here).
	refuseTreeFilter bool
	v0               bool // drop the Git-Protocol header: the server answers with protocol v0
}

func serveGit(t testing.TB, root string, o gitServerOpts) *gitServer {
	t.Helper()
	env := []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"}
	if o.filter || o.refuseTreeFilter {
		env = append(env, "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=uploadpack.allowFilter", "GIT_CONFIG_VALUE_0=true")
	}
	backend := &cgi.Handler{Path: gitBin(t), Args: []string{"http-backend"}, Env: env, Stderr: io.Discard, Logger: log.New(io.Discard, "", 0)}
	s := &gitServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.v0 {
			r.Header.Del("Git-Protocol")
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		cw := &gitCountingWriter{ResponseWriter: w}
		if o.refuseTreeFilter && bytes.Contains(body, []byte("filter tree:")) {
			w.Header().Set("Content-Type", "application/x-git-upload-pack-result")
			const msg = "ERR filter 'tree' not supported\n"
			fmt.Fprintf(cw, "%04x%s", len(msg)+4, msg)
		} else {
			backend.ServeHTTP(cw, r)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if a := r.Header.Get("Authorization"); a != "" {
			s.auth = append(s.auth, a)
		}
		switch {
		case r.Method != http.MethodPost:
		case bytes.Contains(body, []byte("command=ls-refs")):
			s.lsRefs++
		default: // a v2 "command=fetch", or a v0 request with its want lines
			s.fetches++
			s.fetchBytes += cw.n
		}
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *gitServer) counts() (fetches int, fetchBytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches, s.fetchBytes
}

type gitCountingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *gitCountingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *gitCountingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
