package pkgzip_test

import (
	"archive/zip"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/pkgzip"
)

// offline keeps every go command in a test off the network: for modules without
// requirements.
func offline(t *testing.T) {
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOFLAGS", "")
}

// throughModuleProxy makes the go commands a test runs resolve modules as the buildpack,
// which has the network, does: through the configured module proxy (never a version
// control system). go.mod fixes every version and go.sum every hash, so on a fresh module
// cache exactly the modules of the build graph are fetched, and nothing else can be. (With
// GOPROXY=off, a fresh cache lacks go.mod files that only the generated main module's
// graph needs, such as github.com/davecgh/go-spew@v1.1.1's.)
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
	t.Setenv("GOFLAGS", "")
}

// writeTree writes files (name → content) under a new directory and returns it.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(data), 0o644))
	}
	return dir
}

// module is a small module shaped like tamperguard: a root package importing an internal
// one (with an embedded file), next to everything the archive must leave out.
var module = map[string]string{
	"go.mod":                             "module example.com/fn\n\ngo 1.26.0\n",
	"fn.go":                              "package fn\n\nimport \"example.com/fn/internal/core\"\n\nvar Version = core.Version()\n",
	"fn_test.go":                         "package fn\n",
	"fn_ext_test.go":                     "package fn_test\n",
	"internal/core/core.go":              "package core\n\nimport _ \"embed\"\n\n//go:embed version.txt\nvar version string\n\nfunc Version() string { return version }\n",
	"internal/core/other.s":              "",
	"internal/core/version.txt":          "1.0\n",
	"internal/core/core_test.go":         "package core\n",
	"internal/core/testdata/fixture.txt": "fixture\n",
	"internal/core/core_windows.go":      "package core\n\nvar windowsOnly = 1\n",
	"internal/unused/unused.go":          "package unused\n",
	"cmd/fn/main.go":                     "package main\n\nfunc main() {}\n",
	"bench/bench.go":                     "package bench\n",
	"terraform/main.tf":                  "terraform {}\n",
	"testdata/event.json":                "{}\n",
	".git/config":                        "[core]\n",
	"function.zip":                       "PK",
	"README.md":                          "# fn\n",
}

func TestCollectTakesExactlyWhatTheRootPackageBuildNeeds(t *testing.T) {
	offline(t)
	dir := writeTree(t, module)
	src, err := pkgzip.Collect(context.Background(), dir)
	require.NoError(t, err)
	assert.Equal(t, "example.com/fn", src.Module)
	assert.Equal(t, "1.26.0", src.Go)
	// other.s is there because the linux/amd64 build of internal/core assembles it;
	// core_windows.go is not, the buildpack builds for linux/amd64.
	assert.Equal(t, []string{"fn.go", "go.mod", "internal/core/core.go", "internal/core/other.s", "internal/core/version.txt"}, src.Names())
	for _, f := range src.Files {
		want, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Name)))
		require.NoError(t, err)
		assert.Equal(t, want, f.Data, f.Name)
	}
}

func TestCollectRefuses(t *testing.T) {
	offline(t)
	for name, tc := range map[string]struct {
		files map[string]string
		want  string
	}{
		"no root package": {
			files: map[string]string{"go.mod": "module example.com/fn\n\ngo 1.26.0\n", "sub/sub.go": "package sub\n"},
			want:  "go list",
		},
		"a main package at the root": {
			files: map[string]string{"go.mod": "module example.com/fn\n\ngo 1.26.0\n", "main.go": "package main\n\nfunc main() {}\n"},
			want:  "root package is a main package",
		},
		"a local replace": {
			files: map[string]string{"go.mod": "module example.com/fn\n\ngo 1.26.0\n\nreplace example.com/x => ../x\n", "fn.go": "package fn\n"},
			want:  "cannot carry",
		},
		"not a module": {
			files: map[string]string{"fn.go": "package fn\n"},
			want:  "not a module root",
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := pkgzip.Collect(context.Background(), writeTree(t, tc.files))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestCollectRefusesSymlinks(t *testing.T) {
	offline(t)
	dir := writeTree(t, map[string]string{"go.mod": "module example.com/fn\n\ngo 1.26.0\n", "real/fn.go": "package fn\n"})
	require.NoError(t, os.Symlink(filepath.Join(dir, "real", "fn.go"), filepath.Join(dir, "fn.go")))
	_, err := pkgzip.Collect(context.Background(), dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a regular file")
}

func TestZipIsDeterministic(t *testing.T) {
	offline(t)
	dir := writeTree(t, module)
	zipOf := func() []byte {
		t.Helper()
		src, err := pkgzip.Collect(context.Background(), dir)
		require.NoError(t, err)
		var buf bytes.Buffer
		require.NoError(t, src.Zip(&buf))
		return buf.Bytes()
	}
	first := zipOf()

	// New times and modes on the same contents: the same bytes.
	later := time.Now().Add(time.Hour)
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		if !d.IsDir() {
			require.NoError(t, os.Chtimes(p, later, later))
			require.NoError(t, os.Chmod(p, 0o600))
		}
		return nil
	}))
	assert.Equal(t, first, zipOf())

	zr, err := zip.NewReader(bytes.NewReader(first), int64(len(first)))
	require.NoError(t, err)
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		assert.Equal(t, os.FileMode(0o644), f.Mode(), f.Name)
		assert.True(t, f.Modified.Equal(pkgzip.ModTime), "%s: %s", f.Name, f.Modified)
		assert.Equal(t, zip.Deflate, f.Method, f.Name)
		assert.False(t, strings.HasSuffix(f.Name, "/"), "directory entry %s", f.Name)
	}
	assert.Equal(t, []string{"fn.go", "go.mod", "internal/core/core.go", "internal/core/other.s", "internal/core/version.txt"}, names)

	// A changed byte changes the archive.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "internal", "core", "version.txt"), []byte("1.1\n"), 0o644))
	assert.NotEqual(t, first, zipOf())
}

// withFramework is module, importing the Functions Framework as tamperguard's root package
// does, with the repository's requirements and go.sum (what they name is in the module cache
// or on the module proxy: the repository builds).
func withFramework(t *testing.T) map[string]string {
	t.Helper()
	sum, err := os.ReadFile(filepath.Join("..", "..", "go.sum"))
	require.NoError(t, err)
	mod, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	require.NoError(t, err)
	_, requirements, ok := strings.Cut(string(mod), "\nrequire")
	require.True(t, ok)
	files := map[string]string{}
	for k, v := range module {
		files[k] = v
	}
	files["go.mod"] = "module example.com/fn\n\ngo 1.26.0\n\nrequire" + requirements
	files["go.sum"] = string(sum)
	files["fn.go"] = "package fn\n\nimport (\n\t_ \"github.com/GoogleCloudPlatform/functions-framework-go/functions\"\n\n\t\"example.com/fn/internal/core\"\n)\n\nvar Version = core.Version()\n"
	return files
}

func TestCheckBuildsTheFileSetAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	throughModuleProxy(t)
	src, err := pkgzip.Collect(context.Background(), writeTree(t, withFramework(t)))
	require.NoError(t, err)
	assert.Equal(t, []string{"fn.go", "go.mod", "go.sum", "internal/core/core.go", "internal/core/other.s", "internal/core/version.txt"}, src.Names())
	require.NoError(t, src.Check(context.Background()))

	// Without a file the build needs, the check fails (and nothing would be written).
	src.Files = slices.DeleteFunc(src.Files, func(f pkgzip.File) bool { return f.Name == "internal/core/version.txt" })
	err = src.Check(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "version.txt")
}

// TestRepositoryFileSet: tamperguard's own archive holds the root shim, go.mod, go.sum and
// the Go files of the packages the function imports; nothing else.
func TestRepositoryFileSet(t *testing.T) {
	throughModuleProxy(t)
	src, err := pkgzip.Collect(context.Background(), filepath.Join("..", ".."))
	require.NoError(t, err)
	assert.Equal(t, "github.com/tamperguard/tamperguard", src.Module)
	names := src.Names()
	for _, want := range []string{"go.mod", "go.sum", "function.go", "function/function.go", "internal/delivery/event.go"} {
		assert.Contains(t, names, want)
	}
	for _, n := range names {
		assert.False(t, strings.HasSuffix(n, "_test.go"), n)
		for _, dir := range []string{"terraform/", "testdata/", "bench/", "cmd/", ".git/", ".ci/"} {
			assert.False(t, strings.HasPrefix(n, dir) || strings.Contains(n, "/"+dir), "%s is under %s", n, dir)
		}
		assert.True(t, n == "go.mod" || n == "go.sum" || strings.HasSuffix(n, ".go"), "unexpected file %s", n)
		if !strings.Contains(n, "/") && strings.HasSuffix(n, ".go") {
			assert.NotContains(t, string(src.Files[slices.Index(names, n)].Data), "package main", n)
		}
	}
	// Determinism across two reads of the same tree.
	again, err := pkgzip.Collect(context.Background(), filepath.Join("..", ".."))
	require.NoError(t, err)
	var a, b bytes.Buffer
	require.NoError(t, src.Zip(&a))
	require.NoError(t, again.Zip(&b))
	assert.Equal(t, a.Bytes(), b.Bytes())
}

func TestStamp(t *testing.T) {
	s := &pkgzip.Source{Module: "github.com/tamperguard/tamperguard", Files: []pkgzip.File{
		{Name: "function.go", Data: []byte("// doc\npackage tamperguard\n")}, {Name: "go.mod", Data: []byte("module x\n")},
	}}
	require.NoError(t, s.Stamp("0123abcd 2026-12-07T10:00:00Z"))
	require.NoError(t, s.Stamp("4567ef-dirty 2026-12-08T10:00:00Z"), "a second stamp replaces the first")
	assert.Equal(t, []string{"function.go", "go.mod", pkgzip.StampFile}, s.Names())
	src := string(s.Files[2].Data)
	assert.Contains(t, src, "package tamperguard\n")
	assert.Contains(t, src, `version.Stamped = "4567ef-dirty 2026-12-08T10:00:00Z"`)
	assert.Error(t, s.Stamp("x\"; os.Exit(1); _ = \""), "nothing but a revision goes into the generated code")
}
