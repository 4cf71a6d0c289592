// Package pkgzip builds the Cloud Function's source archive: exactly the files that the
// Cloud Functions Go buildpack needs to build the module's root package (go.mod, go.sum and
// the Go files of the main module's packages that the root package imports, directly or
// not), in a zip whose bytes depend only on those files' names and contents.
//
// The buildpack builds the package at the root of the archive: it generates a main module
// that imports it (through a replace directive pointing at the unpacked archive) and starts
// the Functions Framework. Check does the same with the file set before anything is written,
// so an archive that would fail to deploy is never produced.
package pkgzip

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
)

// The platform the buildpack builds for; the file set is selected for it, whatever the host.
const (
	targetOS   = "linux"
	targetArch = "amd64"
)

// ModTime is every entry's modification time: the earliest an MS-DOS date can say, so that
// the archive's bytes do not depend on when the files were touched.
var ModTime = time.Date(1980, time.January, 1, 0, 0, 0, 0, time.UTC)

// maxFile bounds one file read into the archive; a source file is far smaller.
const maxFile = 16 << 20

// File is one archive entry.
type File struct {
	Name string // slash-separated, relative to the module root
	Data []byte
}

// Source is the file set of one module's root package.
type Source struct {
	Dir    string // the module root it was read from
	Module string // the module path
	Go     string // the go directive ("1.26.0")
	Files  []File // sorted by Name
}

// Names returns the entries' names in archive order.
func (s *Source) Names() []string {
	names := make([]string, len(s.Files))
	for i, f := range s.Files {
		names[i] = f.Name
	}
	return names
}

// listedPackage is the part of `go list -json` that Collect reads.
type listedPackage struct {
	ImportPath string
	Name       string
	Dir        string
	Standard   bool
	Module     *struct {
		Path string
		Main bool
	}
	GoFiles, CgoFiles, CFiles, CXXFiles, HFiles, SFiles, SysoFiles, EmbedFiles []string
}

// goEnv is the environment of the go commands run here: the buildpack's target platform, no
// workspace, and the settings in extra.
func goEnv(extra ...string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOOS", "GOARCH", "CGO_ENABLED", "GOWORK", "GOFLAGS":
			return true
		}
		return false
	})
	return append(env, append([]string{"GOOS=" + targetOS, "GOARCH=" + targetArch, "GOWORK=off"}, extra...)...)
}

// Collect reads the file set of the module rooted at dir: go.mod, go.sum, and every file
// that building the root package for the buildpack's platform reads from the main module
// (Go, assembly and embedded files), as `go list -deps` reports them. Tests, testdata,
// commands, other directories and build outputs are not part of that build, so they are
// not in the set.
func Collect(ctx context.Context, dir string) (*Source, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	modData, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return nil, fmt.Errorf("%s is not a module root: %w", dir, err)
	}
	mf, err := modfile.Parse("go.mod", modData, nil)
	if err != nil {
		return nil, err
	}
	if mf.Module == nil || mf.Module.Mod.Path == "" {
		return nil, errors.New("go.mod has no module directive")
	}
	src := &Source{Dir: dir, Module: mf.Module.Mod.Path}
	if mf.Go != nil {
		src.Go = mf.Go.Version
	}
	for _, r := range mf.Replace {
		if modfile.IsDirectoryPath(r.New.Path) {
			return nil, fmt.Errorf("go.mod replaces %s with the directory %s, which the archive cannot carry", r.Old.Path, r.New.Path)
		}
	}

	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "-json", ".")
	cmd.Dir = dir
	// CGO_ENABLED=0: the selection does not depend on the host's C toolchain (and the main
	// module's packages are pure Go: cgo files are refused below).
	cmd.Env = goEnv("GOFLAGS=-mod=readonly", "CGO_ENABLED=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go list -deps: %w\n%s", err, strings.TrimSpace(stderr.String()))
	}

	names := map[string]bool{"go.mod": true}
	if _, err := os.Lstat(filepath.Join(dir, "go.sum")); err == nil {
		names["go.sum"] = true
	} else if len(mf.Require) > 0 {
		return nil, errors.New("go.mod has requirements but there is no go.sum")
	}
	root := false
	dec := json.NewDecoder(&stdout)
	for {
		var p listedPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("reading go list's output: %w", err)
		}
		if p.Standard || p.Module == nil || !p.Module.Main {
			continue
		}
		if p.ImportPath == src.Module {
			root = true
			if p.Name == "main" {
				return nil, errors.New("the root package is a main package; the buildpack needs a library package there that registers the function")
			}
		}
		if len(p.CgoFiles) > 0 {
			return nil, fmt.Errorf("package %s uses cgo; the function is built as pure Go", p.ImportPath)
		}
		rel, err := filepath.Rel(dir, p.Dir)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return nil, fmt.Errorf("package %s is outside the module root", p.ImportPath)
		}
		for _, group := range [][]string{p.GoFiles, p.CFiles, p.CXXFiles, p.HFiles, p.SFiles, p.SysoFiles, p.EmbedFiles} {
			for _, f := range group {
				names[path.Clean(filepath.ToSlash(filepath.Join(rel, f)))] = true
			}
		}
	}
	if !root {
		return nil, fmt.Errorf("there is no package at the module root (%s): the buildpack builds only that package", src.Module)
	}

	for _, name := range slices.Sorted(maps.Keys(names)) {
		data, err := readRegular(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return nil, err
		}
		src.Files = append(src.Files, File{Name: name, Data: data})
	}
	return src, nil
}

// readRegular reads a regular file; a symbolic link or anything else is refused, so that
// nothing from outside the tree ends up in the archive.
func readRegular(name string) ([]byte, error) {
	fi, err := os.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", name, fi.Mode().Type())
	}
	if fi.Size() > maxFile {
		return nil, fmt.Errorf("%s is %d bytes (limit %d)", name, fi.Size(), maxFile)
	}
	return os.ReadFile(name)
}

// Zip writes the archive: one entry per file, in name order, deflated, each with the mode
// 0644 and the time ModTime, no directory entries, no comment. The same files give the same
// bytes (with the same Go release's compress/flate).
func (s *Source) Zip(w io.Writer) error {
	zw := zip.NewWriter(w)
	for _, f := range s.Files {
		h := &zip.FileHeader{Name: f.Name, Method: zip.Deflate, Modified: ModTime}
		h.SetMode(0o644)
		fw, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		if _, err := fw.Write(f.Data); err != nil {
			return err
		}
	}
	return zw.Close()
}

// BuildpackMain is the program the buildpack generates around a declaratively registered
// function: a main package in a module of its own that imports the root package (whose init
// registers the function) and starts the Functions Framework.
const BuildpackMain = `package main

import (
	"log"
	"os"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	_ %q
)

func main() {
	port := "8080"
	if p := os.Getenv("PORT"); p != "" {
		port = p
	}
	if err := funcframework.Start(port); err != nil {
		log.Fatalf("funcframework.Start: %%v", err)
	}
}
`

// Check builds the file set the way the buildpack does: the files alone, unpacked in an
// empty directory, imported by a generated main module through a replace directive, built
// for the buildpack's platform. Dependencies come from the module cache or GOPROXY, as for
// any build.
func (s *Source) Check(ctx context.Context) error {
	tmp, err := os.MkdirTemp("", "tamperguard-package-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	srcDir, appDir := filepath.Join(tmp, "src"), filepath.Join(tmp, "app")
	var sum []byte
	for _, f := range s.Files {
		p := filepath.Join(srcDir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			return err
		}
		if f.Name == "go.sum" {
			sum = f.Data
		}
	}
	goVersion := s.Go
	if goVersion == "" {
		goVersion = "1.26.0"
	}
	gomod := fmt.Sprintf("module example.com/serverless_function_app\n\ngo %s\n\nrequire %s v0.0.0\n\nreplace %s => ../src\n", goVersion, s.Module, s.Module)
	if err := os.MkdirAll(appDir, 0o755); err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		"go.mod":  []byte(gomod),
		"go.sum":  sum,
		"main.go": fmt.Appendf(nil, BuildpackMain, s.Module),
	} {
		if err := os.WriteFile(filepath.Join(appDir, name), data, 0o644); err != nil {
			return err
		}
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(tmp, "server"), ".")
	cmd.Dir = appDir
	// -mod=mod: the generated module takes its requirements from the replaced one.
	cmd.Env = goEnv("GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build of the function as the buildpack builds it: %w\n%s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// StampFile is the generated file Stamp adds to the root package.
const StampFile = "zz_tamperguard_version.go"

// Stamp adds to the root package a file that records revision (VCS revision and commit time,
// "REV TIME") in internal/version, so that the deployed function, which the buildpack builds
// without VCS metadata, reports what it was built from. It is set while the package's
// variables are initialized, before any init function (ColdStart's startup line) runs.
func (s *Source) Stamp(revision string) error {
	if strings.ContainsAny(revision, "\"\\\n\r`") || len(revision) > 200 {
		return fmt.Errorf("pkgzip: %q cannot be a revision", revision)
	}
	src := fmt.Sprintf(`// Code generated by tamperguard package; DO NOT EDIT.

package %s

import "%s/internal/version"

var _ = func() bool { version.Stamped = %q; return true }()
`, s.rootPackageName(), s.Module, revision)
	files := make([]File, 0, len(s.Files)+1)
	for _, f := range s.Files {
		if f.Name != StampFile {
			files = append(files, f)
		}
	}
	files = append(files, File{Name: StampFile, Data: []byte(src)})
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	s.Files = files
	return nil
}

// rootPackageName is the package clause of the root package's Go files.
func (s *Source) rootPackageName() string {
	for _, f := range s.Files {
		if !strings.Contains(f.Name, "/") && strings.HasSuffix(f.Name, ".go") && f.Name != StampFile {
			for _, line := range strings.Split(string(f.Data), "\n") {
				if name, ok := strings.CutPrefix(strings.TrimSpace(line), "package "); ok {
					return strings.TrimSpace(name)
				}
			}
		}
	}
	return "main"
}
