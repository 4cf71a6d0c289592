package main

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/pkgzip"
)

// throughModuleProxy makes the go commands a test runs resolve modules as the buildpack,
// which has the network, does: through the configured module proxy (never a version
// control system). go.mod fixes every version and go.sum every hash, so on a fresh module
// cache exactly the modules of the build graph are fetched, and nothing else can be.
func throughModuleProxy(t *testing.T) {
	t.Helper()
	out, err := exec.Command("go", "env", "GOPROXY").Output()
	require.NoError(t, err)
	var proxies []string
	for _, p := range strings.FieldsFunc(strings.TrimSpace(string(out)), func(r rune) bool { return r == ',' || r == '|' }) {
		if p != "direct" && p != "off" {
			proxies = append(proxies, p)
		}
	}
	if len(proxies) == 0 {
		proxies = []string{"off"} // no proxy configured: the module cache alone
	}
	t.Setenv("GOPROXY", strings.Join(proxies, ","))
}

// slow skips a test unless TAMPERGUARD_SLOW_TESTS is set (CI sets it).
func slow(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("TAMPERGUARD_SLOW_TESTS") == "" {
		t.Skip("SKIPPED: " + why + "; set TAMPERGUARD_SLOW_TESTS=1 to run it (CI does)")
	}
}

// TestPackage builds tamperguard's own function archive: the digest printed is the file's,
// the entries are the root shim, go.mod, go.sum and the function's packages, with nothing
// that the buildpack does not need, and the archive's bytes depend only on the tree (a
// second collection of the same tree zips to the same bytes). runPackage builds the file
// set as the buildpack does before writing: the one build of this test.
func TestPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the function")
	}
	slow(t, "builds the function as the buildpack does, from a copy of its files (~10s of CPU with a warm build cache); internal/pkgzip's tests cover the file set and the check quickly")
	throughModuleProxy(t)
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	out := filepath.Join(t.TempDir(), "function.zip")
	var stdout, stderr bytes.Buffer
	require.NoError(t, runPackage(context.Background(), envFor(&stdout, &stderr, nil), []string{"-C", repo, "-o", out}), stderr.String())
	first, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("%x  %s\n", sha256.Sum256(first), out), stdout.String())
	assert.Contains(t, stderr.String(), "they build as the buildpack builds them")
	t.Logf("archive: %d bytes, sha256 %x", len(first), sha256.Sum256(first))

	again, err := pkgzip.Collect(context.Background(), repo)
	require.NoError(t, err)
	// The archive is stamped with the checkout's revision, so the deployed function reports it.
	rev, err := vcsRevision(context.Background(), repo)
	require.NoError(t, err)
	if rev != "" {
		require.NoError(t, again.Stamp(rev))
	}
	var second bytes.Buffer
	require.NoError(t, again.Zip(&second))
	assert.Equal(t, first, second.Bytes(), "two collections of the same tree gave different archives")

	zr, err := zip.NewReader(bytes.NewReader(first), int64(len(first)))
	require.NoError(t, err)
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	assert.True(t, slices.IsSorted(names), "entries out of order: %v", names)
	for _, want := range []string{"go.mod", "go.sum", "function.go", "function/function.go", "internal/version/version.go"} {
		assert.Contains(t, names, want)
	}
	if rev != "" {
		assert.Contains(t, names, pkgzip.StampFile)
	}
	for _, n := range names {
		assert.False(t, strings.HasSuffix(n, "_test.go"), "a test file: %s", n)
		assert.False(t, strings.HasPrefix(n, "terraform/") || strings.HasPrefix(n, "cmd/") || strings.HasPrefix(n, "bench/") ||
			strings.HasPrefix(n, ".git") || strings.Contains(n, "testdata/"), "not for the buildpack: %s", n)
	}
}

func TestPackageToStdout(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the function")
	}
	slow(t, "builds the function as the buildpack does (~10s of CPU with a warm build cache)")
	throughModuleProxy(t)
	var stdout, stderr bytes.Buffer
	require.NoError(t, runPackage(context.Background(), envFor(&stdout, &stderr, nil), []string{"-C", filepath.Join("..", ".."), "-o", "-"}))
	assert.Equal(t, fmt.Sprintf("%x  -\n", sha256.Sum256(stdout.Bytes())), stderr.String())
	_, err := zip.NewReader(bytes.NewReader(stdout.Bytes()), int64(stdout.Len()))
	require.NoError(t, err)
}

func TestPackageErrors(t *testing.T) {
	t.Setenv("GOPROXY", "off")
	var stdout, stderr bytes.Buffer
	e := envFor(&stdout, &stderr, nil)

	err := runPackage(context.Background(), e, []string{"extra"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unexpected argument "extra"`)

	// A tree whose root package does not build: nothing is written.
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/fn\n\ngo 1.26.0\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "fn.go"), []byte("package fn\n\nvar x int = \"not an int\"\n"), 0o644))
	out := filepath.Join(dir, "function.zip")
	err = runPackage(context.Background(), e, []string{"-C", dir, "-o", out})
	require.Error(t, err)
	assert.NoFileExists(t, out)
	assert.Empty(t, stdout.String())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 2, "a temporary file was left behind")
}
