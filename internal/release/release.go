// Package release turns what the maintainers signed into the digest an object must have.
//
// A Release is only ever built by a Source after the signature over its checksum file (or
// over the git tag that carries it) verified against keys pinned in tamperguard's own
// configuration. Nothing read from the bucket takes part.
package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/signing"
)

// Errors a caller tells apart: a refused release is an alert, an unreachable one is a retry.
var (
	// ErrNotFound: the tag, release or checksum file does not exist at the source.
	ErrNotFound = errors.New("release not found")
	// ErrUnsigned: the tag or checksum file carries no signature at all.
	ErrUnsigned = errors.New("release is not signed")
	// ErrRollback: an older signed release was offered as "latest" after a newer one was seen.
	ErrRollback = errors.New("release rollback refused")
	// ErrNoTrustedRelease: "latest" was asked for and no candidate verified.
	ErrNoTrustedRelease = errors.New("no release signed by a pinned key")
	// ErrEntryMissing: the signed checksum file does not list the object.
	ErrEntryMissing = errors.New("entry missing from signed checksum file")
	// ErrFileMissing: the release does not carry a copy of the file (nothing to restore from).
	ErrFileMissing = errors.New("file not in release")
	// ErrUnreachable: the source could not be read (network, server error); worth a retry.
	ErrUnreachable = errors.New("release source unreachable")
	// ErrInvalid: the source answered with something that is not a release (bad JSON, a checksum
	// file that does not parse, a tag that points at no commit). Not worth a retry.
	ErrInvalid = errors.New("invalid release")
)

// Refused reports whether err means "this is not a trustworthy release", as opposed to
// "could not find out". Refusals are alerts; the rest may be retried.
func Refused(err error) bool {
	return errors.Is(err, signing.ErrRefused) || errors.Is(err, ErrUnsigned) ||
		errors.Is(err, ErrRollback) || errors.Is(err, ErrNoTrustedRelease) ||
		errors.Is(err, ErrInvalid)
}

// Release is a verified release: its checksum file was vouched for by Signer.
type Release struct {
	// Source names where it came from, e.g. "git https://example.org/x.git".
	Source string
	// Tag is the git tag or release name ("" for a fixed URL with no tag).
	Tag string
	// Signer is the pinned key whose signature verified.
	Signer signing.Signer
	// Time is the tagger time, the release's publication time or the signature time; zero if unknown.
	Time time.Time
	// Checksums is the signed checksum file.
	Checksums *checksum.File
	// ChecksumsName is the checksum file's name in the tree or the release.
	ChecksumsName string
	// Fetched is when this process fetched and verified it (set by the Resolver).
	Fetched time.Time
	// Skipped lists candidates newer than Tag that were not trusted, and why (latest only).
	Skipped []Skipped
	// TagObject is, for a git release, the id (hex SHA-1) of the signed tag object: the
	// same id is the same signed release.
	TagObject string

	files fileOpener
}

// Skipped is a release candidate that was not trusted.
type Skipped struct {
	Tag    string
	Reason error
}

// fileOpener gives the release's own copy of a published file, for restore.
type fileOpener interface {
	open(ctx context.Context, name string) (io.ReadCloser, error)
}

// Lookup returns the signed digest listed for entry.
func (r *Release) Lookup(entry string) (checksum.Entry, error) {
	e, ok := r.Checksums.Lookup(entry)
	if !ok {
		return checksum.Entry{}, fmt.Errorf("%w: %q not listed in %s of %s", ErrEntryMissing, entry, r.ChecksumsName, r.Name())
	}
	return e, nil
}

// Name is a short human name: "v1.2.0 (git https://...)".
func (r *Release) Name() string {
	if r.Tag == "" {
		return r.Source
	}
	return r.Tag + " (" + r.Source + ")"
}

// Open returns the release's own copy of the named file. The bytes are NOT verified here:
// the caller must hash them against the signed digest before using them.
func (r *Release) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if r.files == nil {
		return nil, fmt.Errorf("%w: %s carries no files", ErrFileMissing, r.Name())
	}
	return r.files.open(ctx, name)
}

// Candidate is a tag or release that may be the latest one.
type Candidate struct {
	Tag  string
	Time time.Time // zero when the source cannot tell without fetching
}

// Source is one place releases come from, with the keys that must have signed them.
type Source interface {
	// Key identifies the source for caching and the rollback high-water mark.
	Key() string
	// Candidates lists the tags that may be "latest", newest first.
	Candidates(ctx context.Context) ([]Candidate, error)
	// Fetch reads the release at tag and verifies its signature. tag is "" only for
	// sources whose location has no tag in it.
	Fetch(ctx context.Context, tag string) (*Release, error)
}
