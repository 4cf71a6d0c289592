package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/policy"
	"github.com/tamperguard/tamperguard/internal/signing"
)

// maxVersionCandidates bounds how many older generations are hashed in search of good bytes.
const maxVersionCandidates = 20

// ErrSourceMismatch: bytes meant for a restore did not hash to the signed digest; they
// were not used.
var ErrSourceMismatch = errors.New("restore source does not match the signed digest")

// ownRestoreLive reports whether the live generation is tamperguard's restore for this
// incident: it carries the incident's marker and holds the signed bytes (the marker alone
// proves nothing: anyone who can write the bucket can set it). Then d says restored.
func (e *Engine) ownRestoreLive(ctx context.Context, d *Decision, key string, want signedBytes) bool {
	live, err := e.store.Attrs(ctx, d.Bucket, d.Object, 0)
	if err != nil {
		if !errors.Is(err, ErrObjectNotFound) {
			d.setErr(fmt.Errorf("reading the live generation of %s: %w", ref(d.Bucket, d.Object, 0), err))
		}
		return false
	}
	if live.Meta.Custom[markerKey] != key {
		return false
	}
	ok, sample, err := e.holdsSignedSample(ctx, d.Bucket, d.Object, live, want)
	defer sample.free()
	if err != nil {
		d.setErr(fmt.Errorf("verifying restored %s: %w", ref(d.Bucket, d.Object, live.Generation), err))
		return false
	}
	if !ok {
		e.log.Warn("the live generation claims to be tamperguard's restore but is not the signed bytes", "incident", key,
			"bucket", d.Bucket, "object", d.Object, "generation", live.Generation)
		return false
	}
	d.Action, d.RestoredGeneration, d.Restored = ActionRestored, live.Generation, live.Created
	d.RestoreVerified = VerifiedReadBack
	d.Reason, d.Err, d.Error, d.Transient = "", nil, "", false
	if d.Source == "" {
		d.Source = "restored by an earlier delivery of this incident"
	}
	if d.GoodContent == nil {
		d.GoodContent = sample.keep()
	}
	return true
}

// signedBytes says which bytes are the signed ones: those whose SHA-256 is known (bytes that
// already passed the release's check, such as what a restore wrote), or whatever passes the
// release's check.
type signedBytes struct {
	sha256 checksum.Digest
	known  bool
	exp    Expectation
}

// knownBytes are the bytes with this SHA-256 (which passed the check before).
func knownBytes(d checksum.Digest) signedBytes { return signedBytes{sha256: d, known: true} }

// checkedBy are the bytes that pass exp's check.
func checkedBy(exp Expectation) signedBytes { return signedBytes{exp: exp} }

// holdsSigned reports whether generation gen holds the signed bytes.
func (e *Engine) holdsSigned(ctx context.Context, bucket, object string, gen int64, want signedBytes) (bool, error) {
	if want.known {
		got, _, err := e.hashGeneration(ctx, bucket, object, gen)
		return err == nil && got == want.sha256, err
	}
	c, err := e.checkGeneration(ctx, want.exp, bucket, object, gen)
	return err == nil && c.OK, err
}

// holdsSignedSample is holdsSigned for a generation whose attributes are known, keeping its
// bytes (when no larger than MaxSample) from the same read, for the alert's diff.
func (e *Engine) holdsSignedSample(ctx context.Context, bucket, object string, a ObjectAttrs, want signedBytes) (bool, *sampleBuf, error) {
	if want.known {
		got, _, sample, err := e.hashSample(ctx, bucket, object, a)
		if err == nil {
			e.hashes.put(bucket, object, a.Generation, got)
		}
		return err == nil && got == want.sha256, sample, err
	}
	c, sample, err := e.checkSample(ctx, want.exp, bucket, object, a)
	if err == nil {
		e.hashes.put(bucket, object, a.Generation, c.SHA256)
	}
	return err == nil && c.OK, sample, err
}

// sample reads a generation for the alert's diff, when it is small enough.
func (e *Engine) sample(ctx context.Context, bucket, object string, a ObjectAttrs) []byte {
	if a.Size > MaxSample {
		return nil
	}
	r, err := e.store.Open(ctx, bucket, object, a.Generation)
	if err != nil {
		return nil
	}
	defer r.Close()
	return readSample(r)
}

func readSample(r io.Reader) []byte {
	b, err := io.ReadAll(io.LimitReader(r, MaxSample+1))
	if err != nil || len(b) > MaxSample {
		return nil
	}
	return b
}

// content returns the good bytes for the alert's diff, when they are small enough: those
// kept when they were checked, else read again (a generation known by its digest alone).
func (s *goodSource) content(ctx context.Context, e *Engine) []byte {
	switch {
	case s.sample != nil:
		return s.sample
	case s.gen != 0:
		return e.sample(ctx, s.attrs.Bucket, s.attrs.Name, s.attrs)
	}
	r, err := s.open(ctx)
	if err != nil {
		return nil
	}
	defer r.Close()
	return readSample(r)
}

// writeGood puts verified bytes live under cond, marked as this incident's, and calls it
// restored only once the new generation is verified. A generation of the same object is
// copied by the store (no bytes through tamperguard) and, when this process hashed that
// generation, verified by the copy's size and checksums equalling the source's; otherwise
// (the release's own copy, uploaded and hashed again on the way; a generation known from the
// audit's memo) the new generation is read back and hashed. A lost precondition is someone
// else's write (judged by its own event, never clobbered) unless the live generation is this
// incident's own restore, whose response was lost.
func (e *Engine) writeGood(ctx context.Context, m policy.Match, d *Decision, inc *incident, src *goodSource, cond Condition, want checksum.Digest) {
	meta := e.restoredMetadata(m, src.meta)
	meta.Custom = map[string]string{markerKey: inc.key}
	src.vouch(d)
	var attrs ObjectAttrs
	var err error
	if src.gen != 0 {
		attrs, err = e.store.Copy(ctx, ref(d.Bucket, d.Object, src.gen), ref(d.Bucket, d.Object, 0), cond, meta)
		if errors.Is(err, ErrObjectNotFound) {
			// The source generation was deleted since it was found: a retry finds another.
			d.Action = ActionFailed
			d.setErr(fmt.Errorf("restoring %s from %s: %w", ref(d.Bucket, d.Object, 0), src.name, err))
			d.Transient = true
			return
		}
	} else {
		var r io.ReadCloser
		r, err = src.open(ctx)
		if err != nil {
			d.Action = ActionFailed
			d.setErr(fmt.Errorf("opening restore source %s: %w", src.name, err))
			d.Transient = d.Transient || ctx.Err() != nil
			return
		}
		vr := &verifyingReader{r: r, h: sha256.New(), want: want}
		attrs, err = e.store.Write(ctx, d.Bucket, d.Object, cond, meta, vr)
		r.Close()
	}
	switch {
	case errors.Is(err, ErrPrecondition):
		if !e.ownRestoreLive(ctx, d, inc.key, knownBytes(want)) && !d.Transient {
			d.Action = ActionSkippedNewer
		}
		return
	case err != nil:
		// A write whose answer was cut short may have committed all the same.
		if e.ownRestoreLive(ctx, d, inc.key, knownBytes(want)) {
			d.Source = src.name
			return
		}
		d.Action = ActionFailed
		d.setErr(fmt.Errorf("restoring %s from %s: %w", ref(d.Bucket, d.Object, 0), src.name, err))
		d.Transient = d.Transient || ctx.Err() != nil
		return
	}
	d.Source = src.name
	// The restored generation is recorded with the outcome; until then its marker says it.
	if src.gen != 0 && src.hashed && sameStoredBytes(src.attrs, attrs) {
		// A copy, made by the store from a generation whose bytes this process hashed, that
		// the store reports with the source's size and checksums: no byte moves through
		// tamperguard, and reading it back would only test the store.
		e.hashes.put(d.Bucket, d.Object, attrs.Generation, want)
		d.Action, d.RestoredGeneration, d.Restored = ActionRestored, attrs.Generation, e.now()
		d.RestoreVerified = VerifiedCopyChecksums
		return
	}
	got, _, sample, err := e.hashSample(ctx, d.Bucket, d.Object, attrs)
	defer sample.free()
	if err != nil {
		// Written, not yet verified: the retry finds its marker and verifies it.
		d.Action = ActionFailed
		d.setErr(fmt.Errorf("reading back restored %s: %w", ref(d.Bucket, d.Object, attrs.Generation), err))
		d.Transient = true
		return
	}
	if got != want {
		d.Action, d.Reason = ActionFailed, ReasonRestoreMismatch
		d.setErr(fmt.Errorf("restored %s reads back as %s, not the signed %s", ref(d.Bucket, d.Object, attrs.Generation), got, want))
		return
	}
	e.hashes.put(d.Bucket, d.Object, attrs.Generation, got)
	if d.GoodContent == nil {
		d.GoodContent = sample.keep()
	}
	d.Action, d.RestoredGeneration, d.Restored = ActionRestored, attrs.Generation, e.now()
	d.RestoreVerified = VerifiedReadBack
}

// sameStoredBytes reports whether the store describes dst as holding the bytes of src: the
// same size, and the same CRC32C and MD5 wherever both sides have one (at least one of them).
// It is proof only for a copy the store made from src, the immutable generation tamperguard
// named and hashed; a checksum read from the watched bucket never proves bytes are signed.
func sameStoredBytes(src, dst ObjectAttrs) bool {
	if dst.Generation == 0 || dst.Size != src.Size {
		return false
	}
	compared := false
	if src.HasCRC32C && dst.HasCRC32C {
		if src.CRC32C != dst.CRC32C {
			return false
		}
		compared = true
	}
	if len(src.MD5) > 0 && len(dst.MD5) > 0 {
		if !bytes.Equal(src.MD5, dst.MD5) {
			return false
		}
		compared = true
	}
	return compared
}

// goodVersion finds the newest generation other than skipGen whose bytes pass exp's check,
// among versions (listed now if nil), and keeps its bytes when small enough (for the
// alert's diff). A generation hashed before (by this process, or recorded by the audit) is
// not read again when the release names a SHA-256: its known digest says whether it is the
// one. A candidate that cannot be read is passed over; a transient failure ends the search.
func (e *Engine) goodVersion(ctx context.Context, bucket, object string, exp Expectation, skipGen int64, versions []ObjectAttrs) (*goodSource, error) {
	if versions == nil {
		var err error
		versions, err = e.store.Versions(ctx, bucket, object)
		if err != nil && !errors.Is(err, ErrObjectNotFound) {
			return nil, fmt.Errorf("listing versions of %s: %w", ref(bucket, object, 0), err)
		}
	}
	// Known digests stand in for a read only when the release names a SHA-256 (a check by
	// signatures or another algorithm needs the bytes).
	wantSum, byDigest := exp.Entry.Sum.SHA256()
	byDigest = byDigest && exp.Expected.Proven()
	tried := 0
	for _, v := range versions {
		if v.Generation == skipGen || v.Size > e.maxSize {
			continue
		}
		if tried == maxVersionCandidates {
			break
		}
		if known, ok := e.hashes.get(bucket, object, v.Generation); ok && byDigest {
			if known.sum == wantSum {
				return e.versionSource(v, known.sum, signing.Verified{}, nil, known.hashed), nil
			}
			continue
		}
		tried++
		c, sample, err := e.checkSample(ctx, exp, bucket, object, v)
		if err != nil {
			var ce *checkError
			if errors.Is(err, ErrTransient) || errors.As(err, &ce) && isTransientRelease(ce.err) {
				return nil, err
			}
			continue // pruned meanwhile, or unreadable: try the next one
		}
		e.hashes.put(bucket, object, v.Generation, c.SHA256)
		kept := sample.keep()
		sample.free()
		if c.OK {
			return e.versionSource(v, c.SHA256, c.Vouched, kept, true), nil
		}
	}
	return nil, nil
}

// versionSource is a generation of the object as the source of a restore; hashed says this
// process hashed its bytes (else the audit's memo vouched for its digest).
func (e *Engine) versionSource(v ObjectAttrs, sum checksum.Digest, vouched signing.Verified, sample []byte, hashed bool) *goodSource {
	return &goodSource{name: ref(v.Bucket, v.Name, v.Generation).String(), meta: v.Meta, gen: v.Generation, attrs: v,
		sample: sample, sha256: sum, vouched: vouched, hashed: hashed}
}

// goodSource is where verified bytes for a restore come from: a generation of the object
// (gen, copied by the store) or the release's own copy (open).
type goodSource struct {
	name  string // for humans: "gs://b/o#123" or "release v1.2.0 (git …)"
	meta  Metadata
	gen   int64                                            // the generation, for a copy; 0 for the release
	attrs ObjectAttrs                                      // that generation's attributes
	open  func(ctx context.Context) (io.ReadCloser, error) // the release's copy
	// sample is the bytes, when no larger than MaxSample and kept when they were checked.
	sample []byte
	// sha256 is the SHA-256 of the bytes, which passed the release's check: what is written
	// is compared with it, and so is what reads back.
	sha256 checksum.Digest
	// vouched is what vouched for them when the release names no digest (a signature over
	// the file, an attestation).
	vouched signing.Verified
	// hashed: this process verified the generation's bytes (gen != 0; see knownHash), so a
	// copy of it is verified by the store's checksums of the copy equalling the source's.
	hashed bool
}

// vouch names, on a decision whose release has no signer of its own (signed file by file),
// the signer that vouched for the bytes restored.
func (s *goodSource) vouch(d *Decision) {
	if d.Signer == "" && s.vouched.Signer.Scheme != "" {
		d.Signer = s.vouched.Signer.ID()
	}
}

// goodSource finds bytes that pass exp's check: the newest other generation in the bucket
// that does (among versions, if the caller listed them), else the release's own copy. Every
// candidate is checked (or known by its digest); a candidate that does not pass is never
// used. nil, nil means there is none.
func (e *Engine) goodSource(ctx context.Context, m policy.Match, bucket, object string, exp Expectation, skipGen int64, versions []ObjectAttrs) (*goodSource, error) {
	if src, err := e.goodVersion(ctx, bucket, object, exp, skipGen, versions); err != nil || src != nil {
		return src, err
	}
	if exp.Release == nil {
		return nil, nil
	}
	entry := m.Entry(object)
	rc, err := exp.Release.Open(ctx, entry)
	if err != nil {
		e.log.Info("release carries no usable copy", "bucket", bucket, "object", object, "release", exp.Release.Name(), "error", err)
		return nil, nil
	}
	sb := newSampleBuf()
	defer sb.free()
	c, err := CheckReader(ctx, exp.Expected, io.TeeReader(io.LimitReader(rc, e.maxSize+1), sb))
	rc.Close()
	if err == nil && c.Size > e.maxSize {
		err = fmt.Errorf("over the %d-byte limit", e.maxSize)
	}
	if err != nil || !c.OK {
		e.log.Warn("release copy does not pass the release's own check; not used", "bucket", bucket, "object", object, "release", exp.Release.Name(), "error", err)
		return nil, nil
	}
	rel := exp.Release
	return &goodSource{
		name:   "release " + rel.Name(),
		open:   func(ctx context.Context) (io.ReadCloser, error) { return rel.Open(ctx, entry) },
		sample: sb.keep(),
		sha256: c.SHA256, vouched: c.Vouched,
	}, nil
}

// restoredMetadata is the metadata a restored object gets: the rule's protected metadata,
// else safe defaults, with the rule's Cache-Control so edge caches revalidate. Nothing is
// copied from a generation's metadata but a Content-Type that cannot make a browser run
// anything: metadata is not signed, and an attacker who once set Content-Encoding: gzip or
// Content-Type: text/html on an upload of the signed bytes must not see it restored.
func (e *Engine) restoredMetadata(m policy.Match, from Metadata) Metadata {
	md := protectedMetadata(m, from)
	md.CacheControl = m.Rule.CacheControl
	if c := m.Rule.Metadata.CacheControl; c != "" {
		md.CacheControl = c
	}
	return md
}

// protectedMetadata is what a rule's objects must carry: the rule's fields, else no
// Content-Encoding and no Content-Disposition, and the Content-Type of from only when it
// is inert (else application/octet-stream).
func protectedMetadata(m policy.Match, from Metadata) Metadata {
	spec := m.Rule.Metadata
	md := Metadata{ContentType: spec.ContentType, ContentEncoding: spec.ContentEncoding,
		ContentDisposition: spec.ContentDisposition, CacheControl: spec.CacheControl}
	if md.ContentType == "" {
		md.ContentType = "application/octet-stream"
		if inertContentType(from.ContentType) {
			md.ContentType = from.ContentType
		}
	}
	return md
}

// inertContentType: types a browser shows or saves but never renders as a page or runs.
func inertContentType(ct string) bool {
	t, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(ct)), ";")
	t = strings.TrimSpace(t)
	switch t {
	case "text/plain", "application/octet-stream", "text/x-shellscript", "text/x-sh", "application/x-sh",
		"application/x-shellscript", "application/gzip", "application/x-gzip", "application/x-tar",
		"application/x-xz", "application/zstd", "application/zip", "application/x-bzip2",
		"application/x-executable", "application/x-elf", "application/x-mach-binary",
		"application/vnd.microsoft.portable-executable", "application/x-msdownload",
		"application/x-debian-package", "application/x-rpm", "application/json",
		"application/pgp-signature", "application/x-powershell", "text/x-python":
		return true
	}
	return false
}

// verifyingReader passes bytes through and fails at the end if they did not hash to want,
// so a store aborts the write instead of committing unverified bytes.
type verifyingReader struct {
	r    io.Reader
	h    hash.Hash
	want checksum.Digest
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	if errors.Is(err, io.EOF) {
		var got checksum.Digest
		v.h.Sum(got[:0])
		if got != v.want {
			return n, fmt.Errorf("%w: got sha256 %s, want %s", ErrSourceMismatch, got, v.want)
		}
	}
	return n, err
}
