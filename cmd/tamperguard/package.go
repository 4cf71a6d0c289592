package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/tamperguard/tamperguard/internal/pkgzip"
)

// runPackage writes the Cloud Function's source archive: the files the Cloud Functions Go
// buildpack needs to build the module's root package, in a zip whose bytes depend only on
// those files, after building them as the buildpack will. Its SHA-256 goes to stdout in
// sha256sum's format; the Terraform module names the uploaded object after it.
func runPackage(ctx context.Context, e env, args []string) error {
	fs := flagSet(e, "package", "package [-o FILE] [-C DIR]")
	out := fs.String("o", "function.zip", "write the archive to `FILE` (\"-\": to stdout, the digest to stderr)")
	dir := fs.String("C", "", "the module's root `DIR` (default: the module that holds the working directory)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return misuse("unexpected argument %q", pos[0])
	}
	root := *dir
	if root == "" {
		var err error
		if root, err = moduleRoot(); err != nil {
			return err
		}
	}

	src, err := pkgzip.Collect(ctx, root)
	if err != nil {
		return err
	}
	rev, err := vcsRevision(ctx, root)
	if err != nil {
		return err
	}
	if rev != "" {
		if err := src.Stamp(rev); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stderr, "tamperguard package: %s is not a git checkout: the function will report no revision\n", root)
	}
	if err := src.Check(ctx); err != nil {
		return fmt.Errorf("nothing written: %w", err)
	}
	var buf bytes.Buffer
	if err := src.Zip(&buf); err != nil {
		return err
	}
	sum := fmt.Sprintf("%x", sha256.Sum256(buf.Bytes()))

	if *out == "-" {
		if _, err := e.stdout.Write(buf.Bytes()); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "%s  -\n", sum)
		return nil
	}
	if err := writeFileAtomic(*out, buf.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "tamperguard package: %s: %d files from %s, %d bytes; they build as the buildpack builds them\n",
		*out, len(src.Files), src.Module, buf.Len())
	fmt.Fprintf(e.stdout, "%s  %s\n", sum, *out)
	return nil
}

// moduleRoot is the directory of the go.mod that governs the working directory.
func moduleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if fi, err := os.Stat(filepath.Join(d, "go.mod")); err == nil && fi.Mode().IsRegular() {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("no go.mod here or in any parent directory: run it in tamperguard's source tree, or pass -C DIR")
		}
		d = parent
	}
}

// writeFileAtomic writes data to name through a temporary file in the same directory, so
// that name is either the old file or the complete new one.
func writeFileAtomic(name string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(name), ".tamperguard-package-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Chmod(0o644)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, name)
	}
	if werr != nil {
		os.Remove(tmp)
		return werr
	}
	return nil
}

// vcsRevision is "REVISION COMMIT-TIME" of the git checkout at dir ("REVISION-dirty" with
// uncommitted changes), or "" when dir is not one or git is not installed.
func vcsRevision(ctx context.Context, dir string) (string, error) {
	gitOut := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	if _, err := exec.LookPath("git"); err != nil {
		return "", nil
	}
	rev, err := gitOut("rev-parse", "HEAD")
	if err != nil {
		return "", nil // not a git checkout
	}
	when, err := gitOut("show", "-s", "--format=%cI", "HEAD")
	if err != nil {
		return "", fmt.Errorf("reading the commit time of %s: %w", rev, err)
	}
	status, err := gitOut("status", "--porcelain", "--untracked-files=no")
	if err != nil {
		return "", fmt.Errorf("reading the state of the checkout %s: %w", dir, err)
	}
	if status != "" {
		rev += "-dirty"
	}
	return rev + " " + when, nil
}
