package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/policy"
	"github.com/tamperguard/tamperguard/internal/release"
)

// judged is the verdict on one generation's bytes.
type judged struct {
	attrs   ObjectAttrs
	exp     Expectation
	checked release.Checked
	sample  []byte // the judged bytes, when tampered and no larger than MaxSample (for the alert's diff)
	// versions is the listing of the object's generations the attributes came from, if they
	// did: a restore looks for good bytes among them without listing again.
	versions  []ObjectAttrs
	verdict   Verdict
	reason    Reason
	err       error
	transient bool
	// proof is, when the release names no digest for the object, the other copy that passed
	// the check its bytes failed (what makes them tampered, and what a restore writes).
	proof *goodSource
}

// judge reads exactly generation gen through the release's check (hashed and compared with
// the signed digest, or through the signatures over the file), resolving the release once
// more, uncached, before a mismatch counts.
func (e *Engine) judge(ctx context.Context, m policy.Match, bucket, object string, gen int64) judged {
	// Any release lookup that starts from here on started after the judged generation was
	// written: only such a lookup may declare a mismatch.
	begun := e.now()
	var attrs ObjectAttrs
	var versions []ObjectAttrs
	var err error
	if gen > 0 {
		versions, attrs, err = e.versionOf(ctx, bucket, object, gen)
	} else {
		attrs, err = e.store.Attrs(ctx, bucket, object, 0)
	}
	if err != nil {
		var j judged
		j.verdict, j.reason, j.err = VerdictUnverifiable, ReasonObjectUnreadable, err
		j.transient = errors.Is(err, ErrTransient)
		if errors.Is(err, ErrObjectNotFound) {
			j.reason = ReasonGenerationGone
		}
		return j
	}
	j := e.judgeAttrs(ctx, m, attrs, versions, begun)
	j.versions = versions
	return j
}

// versionOf finds generation gen in a listing of the object's generations, which says
// whether it is live and is what a restore needs next: one request for both. When the
// versions cannot be listed (too many of them), the generation is read on its own.
func (e *Engine) versionOf(ctx context.Context, bucket, object string, gen int64) ([]ObjectAttrs, ObjectAttrs, error) {
	vs, err := e.store.Versions(ctx, bucket, object)
	if err != nil {
		if errors.Is(err, ErrTransient) || ctx.Err() != nil {
			return nil, ObjectAttrs{}, err
		}
		a, err := e.store.Attrs(ctx, bucket, object, gen)
		return nil, a, err
	}
	for _, v := range vs {
		if v.Generation == gen {
			return vs, v, nil
		}
	}
	return nil, ObjectAttrs{}, fmt.Errorf("%w: %s is not among its object's generations", ErrObjectNotFound, ref(bucket, object, gen))
}

// judgeAttrs is judge for a generation whose attributes are already known (read, or listed
// by an audit): begun is an instant after the generation was written; versions, if listed,
// are the object's generations (a release without a signed digest looks among them for
// proof).
func (e *Engine) judgeAttrs(ctx context.Context, m policy.Match, attrs ObjectAttrs, versions []ObjectAttrs, begun time.Time) judged {
	var j judged
	bucket, object := attrs.Bucket, attrs.Name
	j.attrs = attrs
	if attrs.Size > e.maxSize {
		j.verdict, j.reason = VerdictUnverifiable, ReasonObjectTooLarge
		j.err = fmt.Errorf("%s is %d bytes, over the %d-byte limit", ref(bucket, object, attrs.Generation), attrs.Size, e.maxSize)
		return j
	}
	exp, err := Expect(ctx, e.res, m, object, time.Time{})
	j.exp = exp
	if err != nil {
		j.verdict, j.reason, j.err = VerdictUnverifiable, ReasonOf(err), err
		j.transient = isTransientRelease(err)
		return j
	}
	checked, sample, err := e.checkSample(ctx, exp, bucket, object, attrs)
	if err != nil {
		return j.failed(err)
	}
	j.checked, j.attrs.Size = checked, checked.Size
	e.hashes.put(bucket, object, attrs.Generation, checked.SHA256)
	if !checked.OK {
		j.sample = sample.keep() // for the diff: the bytes are not read again
	}
	sample.free()
	if checked.OK {
		j.verdict = VerdictOK
		return j
	}
	if exp.Release.Fetched.Before(begun) {
		fresh, err := Expect(ctx, e.res, m, object, begun)
		if err != nil {
			j.exp = fresh
			j.verdict, j.reason, j.err = VerdictUnverifiable, ReasonOf(err), err
			j.transient = isTransientRelease(err)
			return j
		}
		j.exp = fresh
		again, reused, err := fresh.Expected.Recheck(ctx, checked)
		if err != nil {
			err = &checkError{err}
		} else if !reused {
			again, err = e.checkGeneration(ctx, fresh, bucket, object, attrs.Generation)
		}
		if err != nil {
			return j.failed(err)
		}
		j.checked = again
		if again.OK {
			j.sample = nil
			j.verdict = VerdictOK
			return j
		}
	}
	if !j.exp.Expected.Proven() {
		// No signed digest to compare with: the bytes are tampered only if other bytes pass
		// the check they failed; otherwise the signature (or attestation) is as suspect.
		src, err := e.goodSource(ctx, m, bucket, object, j.exp, attrs.Generation, versions)
		switch {
		case err != nil:
			return j.failed(err)
		case src == nil:
			j.verdict, j.reason = VerdictUnverifiable, ReasonNotVouched
			j.err = fmt.Errorf("%s: %s refused these bytes and no other copy passes it either: %w", ref(bucket, object, attrs.Generation), j.exp.Expected.How, notVouched(j.checked))
			return j
		}
		j.proof = src
	}
	j.verdict = VerdictTampered
	return j
}

// notVouched is why bytes without a signed digest did not pass.
func notVouched(c release.Checked) error {
	if c.Why != nil {
		return c.Why
	}
	return errors.New("not vouched for")
}

// failed records a check that could not be made: the bytes could not be read, or the check
// itself failed (an attestation lookup).
func (j judged) failed(err error) judged {
	var ce *checkError
	if errors.As(err, &ce) {
		j.verdict, j.reason, j.err = VerdictUnverifiable, ReasonOf(ce.err), ce.err
		j.transient = isTransientRelease(ce.err) || errors.Is(ce.err, ErrTransient)
		return j
	}
	j.verdict, j.reason, j.err = VerdictUnverifiable, ReasonObjectUnreadable, err
	j.transient = errors.Is(err, ErrTransient)
	if errors.Is(err, ErrObjectNotFound) {
		j.reason, j.transient = ReasonGenerationGone, false
	}
	return j
}

// checkGeneration reads exactly that generation through the release's check, bounded by the
// size limit.
func (e *Engine) checkGeneration(ctx context.Context, exp Expectation, bucket, object string, gen int64) (release.Checked, error) {
	r, err := e.store.Open(ctx, bucket, object, gen)
	if err != nil {
		return release.Checked{}, err
	}
	defer r.Close()
	return e.checkRead(ctx, exp, bucket, object, gen, io.LimitReader(r, e.maxSize+1))
}

// checkRead runs the bytes of generation gen, read from r (bounded by the caller to one byte
// over the size limit), through the release's check.
func (e *Engine) checkRead(ctx context.Context, exp Expectation, bucket, object string, gen int64, r io.Reader) (release.Checked, error) {
	c, err := CheckReader(ctx, exp.Expected, r)
	var ce *checkError
	switch {
	case errors.As(err, &ce):
		return c, err
	case err != nil:
		return c, fmt.Errorf("reading %s: %w", ref(bucket, object, gen), err)
	case c.Size > e.maxSize:
		return c, fmt.Errorf("%s grew past the %d-byte limit while being read", ref(bucket, object, gen), e.maxSize)
	}
	return c, nil
}

// checkSample is checkGeneration that also keeps the bytes of a generation no larger than
// MaxSample (by its attributes), for an alert's diff, so that they need not be read again.
func (e *Engine) checkSample(ctx context.Context, exp Expectation, bucket, object string, a ObjectAttrs) (release.Checked, *sampleBuf, error) {
	if a.Size > MaxSample {
		c, err := e.checkGeneration(ctx, exp, bucket, object, a.Generation)
		return c, nil, err
	}
	r, err := e.store.Open(ctx, bucket, object, a.Generation)
	if err != nil {
		return release.Checked{}, nil, err
	}
	defer r.Close()
	sb := newSampleBuf()
	c, err := e.checkRead(ctx, exp, bucket, object, a.Generation, io.TeeReader(io.LimitReader(r, e.maxSize+1), sb))
	if err != nil {
		sb.free()
		return c, nil, err
	}
	return c, sb, nil
}

// hashGeneration streams exactly that generation through SHA-256.
func (e *Engine) hashGeneration(ctx context.Context, bucket, object string, gen int64) (checksum.Digest, int64, error) {
	r, err := e.store.Open(ctx, bucket, object, gen)
	if err != nil {
		return checksum.Digest{}, 0, err
	}
	defer r.Close()
	d, n, err := HashReader(io.LimitReader(r, e.maxSize+1))
	if err != nil {
		return d, n, fmt.Errorf("reading %s: %w", ref(bucket, object, gen), err)
	}
	if n > e.maxSize {
		return d, n, fmt.Errorf("%s grew past the %d-byte limit while being read", ref(bucket, object, gen), e.maxSize)
	}
	return d, n, nil
}

// hashSample is hashGeneration that also keeps the bytes of a generation no larger than
// MaxSample (by its attributes), for an alert's diff, so that they need not be read again.
func (e *Engine) hashSample(ctx context.Context, bucket, object string, a ObjectAttrs) (checksum.Digest, int64, *sampleBuf, error) {
	if a.Size > MaxSample {
		d, n, err := e.hashGeneration(ctx, bucket, object, a.Generation)
		return d, n, nil, err
	}
	r, err := e.store.Open(ctx, bucket, object, a.Generation)
	if err != nil {
		return checksum.Digest{}, 0, nil, err
	}
	defer r.Close()
	sb := newSampleBuf()
	d, n, err := HashReader(io.TeeReader(io.LimitReader(r, e.maxSize+1), sb))
	if err != nil {
		sb.free()
		return d, n, nil, fmt.Errorf("reading %s: %w", ref(bucket, object, a.Generation), err)
	}
	if n > e.maxSize {
		sb.free()
		return d, n, nil, fmt.Errorf("%s grew past the %d-byte limit while being read", ref(bucket, object, a.Generation), e.maxSize)
	}
	return d, n, sb, nil
}

// sampleBuf keeps the first MaxSample bytes written to it, or nothing if more come.
type sampleBuf struct {
	b    []byte
	over bool
}

var sampleBufs = sync.Pool{New: func() any { return &sampleBuf{} }}

func newSampleBuf() *sampleBuf { return sampleBufs.Get().(*sampleBuf) }

func (s *sampleBuf) Write(p []byte) (int, error) {
	switch {
	case s.over:
	case len(s.b)+len(p) > MaxSample:
		s.over, s.b = true, s.b[:0]
	default:
		s.b = append(s.b, p...)
	}
	return len(p), nil
}

// keep returns a copy of the bytes kept (nil if there were more than MaxSample); nil-safe.
func (s *sampleBuf) keep() []byte {
	if s == nil || s.over {
		return nil
	}
	return append([]byte{}, s.b...)
}

// free returns the buffer for reuse; nil-safe.
func (s *sampleBuf) free() {
	if s == nil {
		return
	}
	s.b, s.over = s.b[:0], false
	sampleBufs.Put(s)
}

// isTransientRelease reports whether resolving the release failed in a way worth a retry.
func isTransientRelease(err error) bool {
	return err != nil && ReasonOf(err) == ReasonReleaseUnreachable
}
