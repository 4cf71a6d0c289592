package engine

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/policy"
)

// maxVersionCandidates bounds how many older generations are hashed in search of good bytes.
const maxVersionCandidates = 20

// ErrSourceMismatch: bytes meant for a restore did not hash to the signed digest; they
// were not used.
var ErrSourceMismatch = errors.New("restore source does not match the signed digest")

// Incident kinds, part of the key: one generation can be written tampered, later deleted,
// and have its metadata changed many times, and each of those is its own incident.
const (
	incidentTampered = ""
	incidentGone     = ".gone"
)

func incidentMetadata(metageneration int64) string { return fmt.Sprintf(".m%d", metageneration) }

func incidentKey(d *Decision, kind string) string {
	return fmt.Sprintf("%s/%s#%d%s", d.Bucket, d.Object, d.Generation, kind)
}

// own claims the incident for d. It returns the incident and a context for the work (ended
// if the lease is lost) when this delivery is to act. Otherwise it records on d why not: the
// state bucket could not be reached or another delivery holds the incident (both retried),
// the incident is complete (a duplicate), or only its alert is left (d becomes that alert).
func (e *Engine) own(ctx context.Context, d *Decision, kind string) (context.Context, *incident, bool) {
	key := incidentKey(d, kind)
	inc, res, err := e.claim(ctx, key)
	switch {
	case err != nil:
		d.setErr(err)
		d.Transient = true
		return ctx, nil, false
	case res == claimHeld:
		d.Reason, d.Transient, d.Incident = ReasonHeld, true, key
		return ctx, nil, false
	case res == claimDuplicate:
		d.Duplicate, d.Reason, d.Incident = true, ReasonDuplicate, key
		return ctx, nil, false
	case res == claimOutbox:
		e.resumeAlert(ctx, inc, d)
		return ctx, nil, false
	}
	d.Incident = key
	return inc.hold(ctx), inc, true
}

// conclude ends the work on an incident: a transient failure gives it up for the retry;
// anything else is final and recorded, with an alert due unless alert is false. A failure to
// record the outcome makes the event a retry: the next owner finds the work done (its
// restore is marked) and finishes the record.
func (e *Engine) conclude(inc *incident, d *Decision, alert bool) {
	if d.Transient {
		inc.abandon()
		return
	}
	if err := inc.finish(d, alert); err != nil {
		e.log.Error("recording an incident's outcome failed; the event will be delivered again", "incident", inc.key, "error", err)
		inc.abandon()
		d.Transient = true
		if d.Error == "" {
			d.Error = err.Error()
		}
		return
	}
	if alert {
		d.alert = &alertDue{inc: inc, since: e.now()}
	}
}

// respondTampered acts on a tampered generation: owns the incident, keeps evidence, restores
// or quarantines as the rule says, and leaves the alert due.
func (e *Engine) respondTampered(ctx context.Context, m policy.Match, d *Decision, j judged) {
	ctx, inc, ok := e.own(ctx, d, incidentTampered)
	if !ok {
		return
	}
	defer func() { e.conclude(inc, d, true) }()
	want := j.exp.Entry.Digest
	d.BadCacheControl = j.attrs.Meta.CacheControl
	d.BadContent = e.sample(ctx, d.Bucket, d.Object, j.attrs)
	if !j.attrs.Live {
		// A newer generation replaced it: tamperguard's own restore (a previous delivery of
		// this incident wrote it and stopped before recording it), or someone else's write,
		// which has its own event. The alert says this one was served until it was replaced.
		if e.ownRestoreLive(ctx, m, d, inc.key, want) {
			return
		}
		if d.Transient {
			return
		}
		if m.Rule.OnMismatch == policy.Quarantine {
			// A quarantine whose answer was lost leaves nothing live: it was quarantined.
			if _, err := e.store.Attrs(ctx, d.Bucket, d.Object, 0); errors.Is(err, ErrObjectNotFound) {
				d.Action, d.Restored = ActionQuarantined, j.attrs.Deleted
				return
			}
		}
		d.Action, d.Replaced = ActionSkippedNewer, j.attrs.Deleted
		return
	}
	if ev, err := e.keepEvidence(ctx, j.attrs); err != nil {
		if errors.Is(err, ErrTransient) || ctx.Err() != nil {
			d.setErr(err)
			d.Transient = true
			return
		}
		e.log.Error("keeping evidence failed", "bucket", d.Bucket, "object", d.Object, "generation", d.Generation, "error", err)
	} else {
		d.Evidence = ev
	}

	src, srcErr := e.goodSource(ctx, m, d.Bucket, d.Object, want, j.attrs.Generation, j.exp)
	if srcErr != nil && (errors.Is(srcErr, ErrTransient) || ctx.Err() != nil) {
		d.setErr(srcErr)
		d.Transient = true
		return
	}
	if src != nil {
		d.GoodContent = src.sample(ctx)
	}
	switch m.Rule.OnMismatch {
	case policy.AlertOnly:
		d.Action = ActionNone
	case policy.Quarantine:
		e.quarantine(ctx, d, j.attrs)
	default:
		switch {
		case srcErr != nil:
			d.Action = ActionFailed
			d.setErr(srcErr)
		case src == nil:
			d.Reason = ReasonNoGoodSource
			if m.Rule.Fallback == policy.Quarantine {
				e.quarantine(ctx, d, j.attrs)
			} else {
				d.Action = ActionNone
			}
		default:
			e.writeGood(ctx, m, d, inc, src, Condition{GenerationMatch: j.attrs.Generation}, want)
		}
	}
}

// ownRestoreLive reports whether the live generation is tamperguard's restore for this
// incident: it carries the incident's marker and hashes to the signed digest (the marker
// alone proves nothing: anyone who can write the bucket can set it). Then d says restored.
func (e *Engine) ownRestoreLive(ctx context.Context, m policy.Match, d *Decision, key string, want checksum.Digest) bool {
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
	got, _, err := e.hashGeneration(ctx, d.Bucket, d.Object, live.Generation)
	if err != nil {
		d.setErr(fmt.Errorf("verifying restored %s: %w", ref(d.Bucket, d.Object, live.Generation), err))
		return false
	}
	if got != want {
		e.log.Warn("the live generation claims to be tamperguard's restore but is not the signed bytes", "incident", key,
			"bucket", d.Bucket, "object", d.Object, "generation", live.Generation)
		return false
	}
	d.Action, d.RestoredGeneration, d.Restored = ActionRestored, live.Generation, live.Created
	d.Reason, d.Err, d.Error, d.Transient = "", nil, "", false
	if d.Source == "" {
		d.Source = "restored by an earlier delivery of this incident"
	}
	if d.GoodContent == nil {
		d.GoodContent = e.sample(ctx, d.Bucket, d.Object, live)
	}
	return true
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

// sample reads the good bytes for the alert's diff, when they are small enough.
func (s *goodSource) sample(ctx context.Context) []byte {
	r, err := s.open(ctx)
	if err != nil {
		return nil
	}
	defer r.Close()
	return readSample(r)
}

// writeGood writes verified bytes under cond, marked as this incident's, reads the new
// generation back, and only then calls it restored. A lost precondition is someone else's
// write (judged by its own event, never clobbered) unless the live generation is this
// incident's own restore, whose response was lost.
func (e *Engine) writeGood(ctx context.Context, m policy.Match, d *Decision, inc *incident, src *goodSource, cond Condition, want checksum.Digest) {
	meta := e.restoredMetadata(m, src.meta)
	meta.Custom = map[string]string{markerKey: inc.key}
	r, err := src.open(ctx)
	if err != nil {
		d.Action = ActionFailed
		d.setErr(fmt.Errorf("opening restore source %s: %w", src.name, err))
		d.Transient = d.Transient || ctx.Err() != nil
		return
	}
	vr := &verifyingReader{r: r, h: sha256.New(), want: want}
	attrs, err := e.store.Write(ctx, d.Bucket, d.Object, cond, meta, vr)
	r.Close()
	switch {
	case errors.Is(err, ErrPrecondition):
		if !e.ownRestoreLive(ctx, m, d, inc.key, want) && !d.Transient {
			d.Action = ActionSkippedNewer
		}
		return
	case err != nil:
		// A write whose answer was cut short may have committed all the same.
		if e.ownRestoreLive(ctx, m, d, inc.key, want) {
			d.Source = src.name
			return
		}
		d.Action = ActionFailed
		d.setErr(fmt.Errorf("restoring %s from %s: %w", ref(d.Bucket, d.Object, 0), src.name, err))
		d.Transient = d.Transient || ctx.Err() != nil
		return
	}
	d.Source = src.name
	if err := inc.write(func(r *incidentRecord) { r.Restored = attrs.Generation }); err != nil {
		e.log.Warn("recording the restored generation failed; it is recognised by its marker", "incident", inc.key, "error", err)
	}
	got, _, err := e.hashGeneration(ctx, d.Bucket, d.Object, attrs.Generation)
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
	d.Action, d.RestoredGeneration, d.Restored = ActionRestored, attrs.Generation, e.now()
}

// quarantine deletes the tampered live generation, if it still is the live one. When the
// delete's precondition fails or the object is gone, a retried delete whose first response
// was lost is told apart from a newer write by what is live now.
func (e *Engine) quarantine(ctx context.Context, d *Decision, bad ObjectAttrs) {
	err := e.store.Delete(ctx, d.Bucket, d.Object, Condition{GenerationMatch: bad.Generation})
	switch {
	case err == nil:
		d.Action, d.Restored = ActionQuarantined, e.now()
	case errors.Is(err, ErrPrecondition), errors.Is(err, ErrObjectNotFound):
		live, lerr := e.store.Attrs(ctx, d.Bucket, d.Object, 0)
		switch {
		case errors.Is(lerr, ErrObjectNotFound):
			d.Action, d.Restored = ActionQuarantined, e.now() // nothing is served
		case lerr != nil:
			d.Action = ActionFailed
			d.setErr(fmt.Errorf("quarantining %s: %w", ref(d.Bucket, d.Object, bad.Generation), lerr))
		default:
			d.Action, d.Replaced = ActionSkippedNewer, live.Created
		}
	default:
		d.Action = ActionFailed
		d.setErr(fmt.Errorf("quarantining %s: %w", ref(d.Bucket, d.Object, bad.Generation), err))
		d.Transient = d.Transient || ctx.Err() != nil
	}
}

// restoreMissing puts the newest good bytes back when the object is gone. deletedGen is
// the generation whose deletion was reported (0 if unknown).
func (e *Engine) restoreMissing(ctx context.Context, m policy.Match, d *Decision, deletedGen int64, act bool) {
	d.Verdict = VerdictMissing
	exp, err := Expect(ctx, e.res, m, d.Object, time.Time{})
	if err != nil {
		d.Verdict, d.Reason = VerdictUnverifiable, ReasonOf(err)
		d.setErr(err)
		d.Transient = isTransientRelease(err)
		if act && !d.Transient {
			d.alert = &alertDue{}
		}
		return
	}
	d.expect(exp)
	if !act {
		return
	}
	if deletedGen == 0 {
		// Found missing by a check or an audit: what was deleted is the newest generation,
		// if there is one. Keying the incident on it makes the audit and the archive event
		// one incident, and a later deletion a new one.
		if vs, err := e.store.Versions(ctx, d.Bucket, d.Object); err == nil && len(vs) > 0 {
			deletedGen = vs[0].Generation
		}
		d.Generation = deletedGen
	}
	ctx, inc, ok := e.own(ctx, d, incidentGone)
	if !ok {
		return
	}
	alert := true
	defer func() { e.conclude(inc, d, alert) }()
	want := exp.Entry.Digest
	if e.ownRestoreLive(ctx, m, d, inc.key, want) || d.Transient {
		return
	}
	src, err := e.goodSource(ctx, m, d.Bucket, d.Object, want, 0, exp)
	switch {
	case err != nil:
		d.Action = ActionFailed
		d.setErr(err)
		d.Transient = d.Transient || ctx.Err() != nil
	case src == nil:
		d.Reason = ReasonNoGoodSource
		d.Action = ActionFailed
		// Deleting tampered bytes (a quarantine, or a maintainer's clean-up) with nothing good
		// to put back is not news; losing a good object we cannot restore is.
		if deletedGen != 0 {
			if sum, _, err := e.hashGeneration(ctx, d.Bucket, d.Object, deletedGen); err == nil && sum != want {
				d.Action, alert = ActionNone, false
			}
		}
	default:
		e.writeGood(ctx, m, d, inc, src, Condition{DoesNotExist: true}, want)
	}
}

// goodVersion finds the newest generation other than skipGen whose bytes hash to want.
// A candidate that cannot be read is passed over; a transient failure ends the search.
func (e *Engine) goodVersion(ctx context.Context, bucket, object string, want checksum.Digest, skipGen int64) (ObjectAttrs, bool, error) {
	versions, err := e.store.Versions(ctx, bucket, object)
	if err != nil && !errors.Is(err, ErrObjectNotFound) {
		return ObjectAttrs{}, false, fmt.Errorf("listing versions of %s: %w", ref(bucket, object, 0), err)
	}
	tried := 0
	for _, v := range versions {
		if v.Generation == skipGen || v.Size > e.maxSize {
			continue
		}
		if tried == maxVersionCandidates {
			break
		}
		tried++
		sum, _, err := e.hashGeneration(ctx, bucket, object, v.Generation)
		if err != nil {
			if errors.Is(err, ErrTransient) {
				return ObjectAttrs{}, false, err
			}
			continue // pruned meanwhile, or unreadable: try the next one
		}
		if sum == want {
			return v, true, nil
		}
	}
	return ObjectAttrs{}, false, nil
}

// goodSource is where verified bytes for a restore come from.
type goodSource struct {
	name string // for humans: "gs://b/o#123" or "release v1.2.0 (git …)"
	meta Metadata
	open func(ctx context.Context) (io.ReadCloser, error)
}

// goodSource finds bytes that hash to want: the newest other generation in the bucket
// that does, else the release's own copy. Every candidate is hashed; a candidate that does
// not match is never used. nil, nil means there is none.
func (e *Engine) goodSource(ctx context.Context, m policy.Match, bucket, object string, want checksum.Digest, skipGen int64, exp Expectation) (*goodSource, error) {
	if v, ok, err := e.goodVersion(ctx, bucket, object, want, skipGen); err != nil {
		return nil, err
	} else if ok {
		return &goodSource{
			name: ref(bucket, object, v.Generation).String(),
			meta: v.Meta,
			open: func(ctx context.Context) (io.ReadCloser, error) {
				return e.store.Open(ctx, bucket, object, v.Generation)
			},
		}, nil
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
	sum, _, err := HashReader(io.LimitReader(rc, e.maxSize+1))
	rc.Close()
	if err != nil || sum != want {
		e.log.Warn("release copy does not match its own signed digest; not used", "bucket", bucket, "object", object, "release", exp.Release.Name(), "error", err)
		return nil, nil
	}
	rel := exp.Release
	return &goodSource{
		name: "release " + rel.Name(),
		open: func(ctx context.Context) (io.ReadCloser, error) { return rel.Open(ctx, entry) },
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

// keepEvidence copies the bad generation into the state bucket with its metadata.
func (e *Engine) keepEvidence(ctx context.Context, bad ObjectAttrs) (string, error) {
	if e.state == "" {
		return ref(bad.Bucket, bad.Name, bad.Generation).String() + " (noncurrent version)", nil
	}
	name := stateName("evidence", bad.Bucket, bad.Name, strconv.FormatInt(bad.Generation, 10))
	r, err := e.store.Open(ctx, bad.Bucket, bad.Name, bad.Generation)
	if err != nil {
		return "", err
	}
	defer r.Close()
	meta := bad.Meta
	custom := map[string]string{
		"tamperguard-source":     ref(bad.Bucket, bad.Name, 0).String(),
		"tamperguard-generation": strconv.FormatInt(bad.Generation, 10),
		"tamperguard-created":    bad.Created.UTC().Format("2006-01-02T15:04:05.000Z"),
	}
	for k, v := range bad.Meta.Custom {
		custom["original-"+k] = v
	}
	meta.Custom = custom
	_, err = e.store.Write(ctx, e.state, name, Condition{DoesNotExist: true}, meta, r)
	if err != nil && !errors.Is(err, ErrPrecondition) {
		return "", fmt.Errorf("keeping evidence of %s: %w", ref(bad.Bucket, bad.Name, bad.Generation), err)
	}
	return ref(e.state, name, 0).String(), nil
}

func isTransientRelease(err error) bool {
	return err != nil && ReasonOf(err) == ReasonReleaseUnreachable
}
