// Package release turns what the maintainers signed into the digest an object must have.
//
// A Release is only ever built by a Source after the signature over its checksum file (or
// over the git tag that carries it, or the attestations of its assets) verified against keys
// pinned in tamperguard's own configuration. The one exception says so: a release signed file
// by file (release.signed: file) is only where the files and their signatures are, and each
// file's signatures are verified over its bytes when it is checked (check.go). Nothing read
// from the bucket takes part.
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
	// Tag is the git tag or release name ("" for a fixed URL with no tag). It is signed only
	// for a git tag (the name inside the tag object); a GitHub release's or a URL's tag is
	// where the release was found, not what the maintainers signed.
	Tag string
	// Signer is the pinned key whose signature verified (the first that counted, when
	// keys.threshold asks for several; Signers lists them all). For a release signed file
	// by file it is zero: each file's signature names its own signer when it is checked.
	Signer signing.Signer
	// Signers are the distinct pinned keys (or keyless identities) that vouched, in the
	// order their signatures were given.
	Signers []signing.Signer
	// Time is when signed data says the release was made: the tagger time inside a verified
	// tag object, an OpenPGP signature's creation time, a Sigstore bundle's or attestation's
	// verified transparency-log or timestamp-authority time (the earliest, when several
	// signatures counted). Zero when nothing signed says (SSH and cosign signatures, a
	// key-based bundle without a log entry). An API's publication time is never used.
	Time time.Time
	// Version is the release's version as signed data names it (canonical "vX.Y.Z"), "" when
	// nothing signed does: the name of a verified git tag, or the one version that the signed
	// checksum file's entries carry in their names (tool-1.2.0-linux-amd64.tar.gz).
	Version string
	// Checksums is the signed checksum file (only the signed text of a clearsigned one).
	// Nil for a release signed file by file (release.signed: file) or vouched for by
	// attestations: Expect says what such a release vouches for.
	Checksums *checksum.File
	// ChecksumsName is the checksum file's name in the tree or the release.
	ChecksumsName string
	// Fetched is when this process fetched and verified it (set by the Resolver).
	Fetched time.Time
	// Skipped lists candidates that were not trusted, and why: newer tags for "latest", the
	// asked-for tag itself when the floor stands in for it.
	Skipped []Skipped
	// Floor is set when this is not a fresh answer but the last release that verified, used
	// because nothing newer can be trusted now (Floor.Reason says why, Skipped lists what).
	Floor *Floor
	// Evidence is the signed material the release was verified from, kept so that it can be
	// verified again, later or elsewhere (the floor in the state bucket); nil when the source
	// keeps none.
	Evidence *Evidence
	// TagObject is, for a git release, the id (hex SHA-1) of the signed tag object: the
	// same id is the same signed release.
	TagObject string

	files fileOpener
	// fileSigs is set for a release signed file by file; attested for a release vouched
	// for by GitHub artifact attestations.
	fileSigs *fileSigned
	attested *attested
}

// Floor says why a rule is judged against its last known good release.
type Floor struct {
	// Reason is why no newer release was used: a refusal (the newest candidate is unsigned,
	// wrongly signed, garbled or older than the floor) or, wrapping ErrUnreachable, a source
	// that could not be read.
	Reason error
	// Verified is when the floor release was verified (by this process or, for a floor read
	// from the state bucket, verified again when it was read).
	Verified time.Time
}

// Transient reports whether the floor stands in only because the source could not be read:
// a retry may find the newer release.
func (f *Floor) Transient() bool { return f != nil && errors.Is(f.Reason, ErrUnreachable) }

// Evidence is what a release was verified from: enough to verify it again against the
// rule's pinned keys without the source (which the attacker may have broken since).
type Evidence struct {
	// Tag is the tag the release was fetched as ("" for a fixed URL).
	Tag string `json:"tag"`
	// Checksums and Signature are the checksum file and its detached signature, byte for byte
	// (a clearsigned checksum file carries its signature: Signature is empty).
	Checksums []byte `json:"checksums"`
	Signature []byte `json:"signature"`
	// Signatures are the detached signatures when there are several (k-of-n, or signatures
	// in more than one format); Signature is empty then.
	Signatures [][]byte `json:"signatures,omitempty"`
	// Attestations are, for a release vouched for by GitHub artifact attestations, the
	// Sigstore bundles that verified (Checksums and Signature are empty).
	Attestations [][]byte `json:"attestations,omitempty"`
	// AttestedVia names, for each attestation, the asset whose digest found it (the copy a
	// restore may read for the attestation's subjects).
	AttestedVia []string `json:"attested_via,omitempty"`
	// Assets are a GitHub release's asset ids by name, to fetch restore copies from (their
	// bytes are hashed against the signed digest before use, like every restore copy).
	Assets map[string]int64 `json:"assets,omitempty"`
	// Git is, for a git release, the signed tag object and the objects on the path from it to
	// the checksum file (whose bytes are Checksums; Signature is empty: the signature is in
	// the tag object). Each is named by the one before it, so the tag object's signature
	// vouches for them all and no ref or remote is needed to verify them again.
	Git *GitEvidence `json:"git,omitempty"`
}

// GitEvidence is what a git release was verified from, byte for byte: the content of the
// objects, without their "<type> <size>" headers.
type GitEvidence struct {
	TagObject []byte `json:"tag_object"`
	Commit    []byte `json:"commit"`
	// Trees are the root tree and then each tree on the checksum file's path.
	Trees [][]byte `json:"trees"`
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

// Lookup returns the signed digest listed for entry in the signed checksum file. Expect
// answers for every kind of release.
func (r *Release) Lookup(entry string) (checksum.Entry, error) {
	if r.Checksums == nil {
		return checksum.Entry{}, fmt.Errorf("%w: %s lists no checksum file", ErrEntryMissing, r.Name())
	}
	e, ok := r.Checksums.Lookup(entry)
	if !ok {
		return checksum.Entry{}, fmt.Errorf("%w: %q not listed in %s of %s", ErrEntryMissing, entry, r.ChecksumsName, r.Name())
	}
	return e, nil
}

// ID names the signed release: for a git release the id of its signed tag object, else a
// digest of the checksum file and the signature it was verified from; "" when neither is
// known. The same ID is the same signed release (the same bytes were signed).
func (r *Release) ID() string {
	switch {
	case r.TagObject != "":
		return "git-tag:" + r.TagObject
	case r.Evidence != nil:
		return evidenceID(r.Evidence)
	}
	return ""
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
	Tag string
	// Time orders candidates that are not versions; zero when the source cannot tell without
	// fetching. It need not be signed: only which candidate is tried first depends on it.
	Time time.Time
	// Refused is set by a source that can tell from its listing alone that the candidate is
	// not a signed release (a GitHub release without the checksum or signature asset): the
	// resolver skips it without a fetch.
	Refused error
	// ID names the candidate's content when the listing tells it (a GitHub release's asset
	// ids): a candidate refused once for its signature is not fetched again while its ID
	// stays the same.
	ID string
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

// CandidateLister is a Source that also reports every tag it refused from its listing
// alone (newest first, bounded by the source), with the reason. The Resolver uses it instead
// of Candidates, so that each refused tag is reported as skipped without a fetch.
type CandidateLister interface {
	ListCandidates(ctx context.Context) (cands []Candidate, refused []Skipped, err error)
}

// Reverifier is a Source that can verify a release again from its Evidence alone, against
// its current pinned keys: the floor kept in the state bucket survives the attacker
// deleting or garbling the release at its source.
type Reverifier interface {
	Reverify(ctx context.Context, ev *Evidence) (*Release, error)
}
