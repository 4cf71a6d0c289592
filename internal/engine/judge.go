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
)

// judged is the verdict on one generation's bytes.
type judged struct {
	attrs  ObjectAttrs
	exp    Expectation
	actual checksum.Digest
	sample []byte // the judged bytes, when no larger than MaxSample (for the alert's diff)
	// versions is the listing of the object's generations the attributes came from, if they
	// did: a restore looks for good bytes among them without listing again.
	versions  []ObjectAttrs
	verdict   Verdict
	reason    Reason
	err       error
	transient bool
}

// judge hashes exactly generation gen and compares it with the signed digest, resolving
// the release once more, uncached, before a mismatch counts.
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
	j := e.judgeAttrs(ctx, m, attrs, begun)
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
// by an audit): begun is an instant after the generation was written.
func (e *Engine) judgeAttrs(ctx context.Context, m policy.Match, attrs ObjectAttrs, begun time.Time) judged {
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
	actual, n, sample, err := e.hashSample(ctx, bucket, object, attrs)
	if err != nil {
		j.verdict, j.reason, j.err = VerdictUnverifiable, ReasonObjectUnreadable, err
		j.transient = errors.Is(err, ErrTransient)
		if errors.Is(err, ErrObjectNotFound) {
			j.reason, j.transient = ReasonGenerationGone, false
		}
		return j
	}
	j.actual, j.attrs.Size = actual, n
	e.hashes.put(bucket, object, attrs.Generation, actual)
	if actual != exp.Entry.Digest {
		j.sample = sample.keep() // for the diff: the bytes are not read again
	}
	sample.free()
	if actual == exp.Entry.Digest {
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
		if actual == fresh.Entry.Digest {
			j.verdict = VerdictOK
			return j
		}
	}
	j.verdict = VerdictTampered
	return j
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
