package main

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPackage builds tamperguard's own function archive twice: the same bytes both times,
// the digest printed is the file's, and the entries are the root shim, go.mod, go.sum and
// the function's packages, with nothing that the buildpack does not need. runPackage builds
// the file set as the buildpack does before writing (the first run takes a while).
func TestPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the function")
	}
	t.Setenv("GOPROXY", "off")
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	dir := t.TempDir()

	build := func(name string) ([]byte, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		out := filepath.Join(dir, name)
		err := runPackage(context.Background(), envFor(&stdout, &stderr, nil), []string{"-C", repo, "-o", out})
		require.NoError(t, err, stderr.String())
		data, err := os.ReadFile(out)
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("%x  %s\n", sha256.Sum256(data), out), stdout.String())
		assert.Contains(t, stderr.String(), "they build as the buildpack builds them")
		return data, stdout.String()
	}
	first, _ := build("a.zip")
	second, _ := build("b.zip")
	assert.Equal(t, first, second, "two runs on the same tree gave different archives")
	t.Logf("archive: %d bytes, sha256 %x", len(first), sha256.Sum256(first))

	zr, err := zip.NewReader(bytes.NewReader(first), int64(len(first)))
	require.NoError(t, err)
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	assert.True(t, slices.IsSorted(names), "entries out of order: %v", names)
	for _, want := range []string{"go.mod", "go.sum", "function.go", "function/function.go"} {
		assert.Contains(t, names, want)
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
	t.Setenv("GOPROXY", "off")
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
