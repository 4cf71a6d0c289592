package engine

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"time"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/config"
)

// maxVersionCandidates bounds how many older generations are hashed in search of good bytes.
const maxVersionCandidates = 20

// ErrSourceMismatch: bytes meant for a restore did not hash to the signed digest; they
// were not used.
var ErrSourceMismatch = errors.New("restore source does not match the signed digest")

// respondTampered acts on a tampered generation: owns the incident, keeps evidence, restores
// or quarantines as the rule says, and alerts.
func (e *Engine) respondTampered(ctx context.Context, m config.Match, d *Decision, j judged) {
	inc, ok := e.own(ctx, d, incidentTampered)
	if !ok {
		return
	}
	d.BadCacheControl = j.attrs.Meta.CacheControl
	d.BadContent = e.sample(ctx, d.Bucket, d.Object, j.attrs)
	if !j.attrs.Live {
		// A newer generation replaced it: that write has its own event. The alert says this
		// one was served from its creation until it was replaced.
		d.Action, d.Replaced = ActionSkippedNewer, j.attrs.Deleted
		e.finish(ctx, inc, d)
		return
	}
	if ev, err := e.keepEvidence(ctx, j.attrs); err != nil {
		if errors.Is(err, ErrTransient) {
			e.release(ctx, inc)
			d.setErr(err)
			return
		}
		e.log.Error("keeping evidence failed", "bucket", d.Bucket, "object", d.Object, "generation", d.Generation, "error", err)
	} else {
		d.Evidence = ev
	}

	src, srcErr := e.goodSource(ctx, m, d.Bucket, d.Object, j.exp.Entry.Digest, j.attrs.Generation, j.exp)
	if srcErr != nil && errors.Is(srcErr, ErrTransient) {
		e.release(ctx, inc)
		d.setErr(srcErr)
		return
	}
	if src != nil {
		d.GoodContent = src.sample(ctx)
	}
	switch m.Rule.OnMismatch {
	case config.OnMismatchAlert:
		d.Action = ActionNone
	case config.OnMismatchQuarantine:
		e.quarantine(ctx, d, j.attrs)
	default:
		switch {
		case srcErr != nil:
			d.Action = ActionFailed
			d.setErr(srcErr)
		case src == nil:
			d.Reason = ReasonNoGoodSource
			if m.Rule.Fallback == config.OnMismatchQuarantine {
				e.quarantine(ctx, d, j.attrs)
			} else {
				d.Action = ActionNone
			}
		default:
			e.writeGood(ctx, m, d, src, Condition{GenerationMatch: j.attrs.Generation}, j.exp.Entry.Digest)
		}
	}
	if d.Transient {
		e.release(ctx, inc)
		return
	}
	e.finish(ctx, inc, d)
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

// writeGood writes verified bytes under cond, reads the new generation back, and only then
// calls it restored. A lost precondition means someone else wrote first: that write is
// judged by its own event, never clobbered.
func (e *Engine) writeGood(ctx context.Context, m config.Match, d *Decision, src *goodSource, cond Condition, want checksum.Digest) {
	meta := e.restoredMetadata(m, src.meta)
	r, err := src.open(ctx)
	if err != nil {
		d.Action = ActionFailed
		d.setErr(fmt.Errorf("opening restore source %s: %w", src.name, err))
		return
	}
	vr := &verifyingReader{r: r, h: sha256.New(), want: want}
	attrs, err := e.store.Write(ctx, d.Bucket, d.Object, cond, meta, vr)
	r.Close()
	switch {
	case errors.Is(err, ErrPrecondition):
		d.Action = ActionSkippedNewer
		return
	case err != nil:
		d.Action = ActionFailed
		d.setErr(fmt.Errorf("restoring %s from %s: %w", GSPath(d.Bucket, d.Object, 0), src.name, err))
		return
	}
	got, _, err := e.hashGeneration(ctx, d.Bucket, d.Object, attrs.Generation)
	if err != nil {
		d.Action = ActionFailed
		d.setErr(fmt.Errorf("reading back restored %s: %w", GSPath(d.Bucket, d.Object, attrs.Generation), err))
		return
	}
	if got != want {
		d.Action, d.Reason = ActionFailed, ReasonRestoreMismatch
		d.setErr(fmt.Errorf("restored %s reads back as %s, not the signed %s", GSPath(d.Bucket, d.Object, attrs.Generation), got, want))
		return
	}
	d.Action, d.RestoredGeneration, d.Restored, d.Source = ActionRestored, attrs.Generation, e.now(), src.name
}

// quarantine deletes the tampered live generation, if it still is the live one.
func (e *Engine) quarantine(ctx context.Context, d *Decision, bad ObjectAttrs) {
	err := e.store.Delete(ctx, d.Bucket, d.Object, Condition{GenerationMatch: bad.Generation})
	switch {
	case err == nil:
		d.Action, d.Restored = ActionQuarantined, e.now()
	case errors.Is(err, ErrPrecondition), errors.Is(err, ErrObjectNotFound):
		d.Action = ActionSkippedNewer
	default:
		d.Action = ActionFailed
		d.setErr(fmt.Errorf("quarantining %s: %w", GSPath(d.Bucket, d.Object, bad.Generation), err))
	}
}

// restoreMissing puts the newest good bytes back when the object is gone. deletedGen is
// the generation whose deletion was reported (0 if unknown).
func (e *Engine) restoreMissing(ctx context.Context, m config.Match, d *Decision, deletedGen int64, act bool) {
	d.Verdict = VerdictMissing
	exp, err := Expect(ctx, e.res, m, d.Object, time.Time{})
	if err != nil {
		d.Verdict, d.Reason = VerdictUnverifiable, ReasonOf(err)
		d.setErr(err)
		d.Transient = isTransientRelease(err)
		if act && !d.Transient {
			e.notify(ctx, d)
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
	inc, ok := e.own(ctx, d, incidentGone)
	if !ok {
		return
	}
	src, err := e.goodSource(ctx, m, d.Bucket, d.Object, exp.Entry.Digest, 0, exp)
	if err != nil {
		d.Action = ActionFailed
		d.setErr(err)
	} else if src == nil {
		d.Reason = ReasonNoGoodSource
		// Deleting tampered bytes (a quarantine, or a maintainer's clean-up) with nothing good
		// to put back is not news; losing a good object we cannot restore is.
		if deletedGen != 0 {
			if sum, _, err := e.hashGeneration(ctx, d.Bucket, d.Object, deletedGen); err == nil && sum != exp.Entry.Digest {
				d.Action = ActionNone
				e.release(ctx, inc)
				return
			}
		}
		d.Action = ActionFailed
	} else {
		e.writeGood(ctx, m, d, src, Condition{DoesNotExist: true}, exp.Entry.Digest)
	}
	if d.Transient {
		e.release(ctx, inc)
		return
	}
	e.finish(ctx, inc, d)
}

// goodVersion finds the newest generation other than skipGen whose bytes hash to want.
// A candidate that cannot be read is passed over; a transient failure ends the search.
func (e *Engine) goodVersion(ctx context.Context, bucket, object string, want checksum.Digest, skipGen int64) (ObjectAttrs, bool, error) {
	versions, err := e.store.Versions(ctx, bucket, object)
	if err != nil && !errors.Is(err, ErrObjectNotFound) {
		return ObjectAttrs{}, false, fmt.Errorf("listing versions of %s: %w", GSPath(bucket, object, 0), err)
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
func (e *Engine) goodSource(ctx context.Context, m config.Match, bucket, object string, want checksum.Digest, skipGen int64, exp Expectation) (*goodSource, error) {
	if v, ok, err := e.goodVersion(ctx, bucket, object, want, skipGen); err != nil {
		return nil, err
	} else if ok {
		return &goodSource{
			name: GSPath(bucket, object, v.Generation),
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
// else the good generation's, with the rule's Cache-Control so edge caches revalidate.
func (e *Engine) restoredMetadata(m config.Match, from Metadata) Metadata {
	md := Metadata{
		ContentType:        from.ContentType,
		ContentEncoding:    from.ContentEncoding,
		ContentDisposition: from.ContentDisposition,
	}
	spec := m.Rule.Metadata
	if spec.ContentType != "" {
		md.ContentType = spec.ContentType
	}
	if spec.ContentEncoding != "" {
		md.ContentEncoding = spec.ContentEncoding
	}
	if spec.ContentDisposition != "" {
		md.ContentDisposition = spec.ContentDisposition
	}
	md.CacheControl = m.Rule.CacheControl
	if spec.CacheControl != "" {
		md.CacheControl = spec.CacheControl
	}
	return md
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
		return GSPath(bad.Bucket, bad.Name, bad.Generation) + " (noncurrent version)", nil
	}
	name := fmt.Sprintf("evidence/%s/%s/%d", bad.Bucket, bad.Name, bad.Generation)
	r, err := e.store.Open(ctx, bad.Bucket, bad.Name, bad.Generation)
	if err != nil {
		return "", err
	}
	defer r.Close()
	meta := bad.Meta
	custom := map[string]string{
		"tamperguard-source":     fmt.Sprintf("gs://%s/%s", bad.Bucket, bad.Name),
		"tamperguard-generation": strconv.FormatInt(bad.Generation, 10),
		"tamperguard-created":    bad.Created.UTC().Format("2006-01-02T15:04:05.000Z"),
	}
	for k, v := range bad.Meta.Custom {
		custom["original-"+k] = v
	}
	meta.Custom = custom
	_, err = e.store.Write(ctx, e.state, name, Condition{DoesNotExist: true}, meta, r)
	if err != nil && !errors.Is(err, ErrPrecondition) {
		return "", fmt.Errorf("keeping evidence of %s: %w", GSPath(bad.Bucket, bad.Name, bad.Generation), err)
	}
	return GSPath(e.state, name, 0), nil
}

func isTransientRelease(err error) bool {
	return err != nil && ReasonOf(err) == ReasonReleaseUnreachable
}
