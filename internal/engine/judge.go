package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/policy"
)

// judged is the verdict on one generation's bytes.
type judged struct {
	attrs     ObjectAttrs
	exp       Expectation
	actual    checksum.Digest
	verdict   Verdict
	reason    Reason
	err       error
	transient bool
}

// judge hashes exactly generation gen and compares it with the signed digest, resolving
// the release once more, uncached, before a mismatch counts.
func (e *Engine) judge(ctx context.Context, m policy.Match, bucket, object string, gen int64) judged {
	var j judged
	// Any release lookup that starts from here on started after the judged generation was
	// written: only such a lookup may declare a mismatch.
	begun := e.now()
	attrs, err := e.store.Attrs(ctx, bucket, object, gen)
	if err != nil {
		j.verdict, j.reason, j.err = VerdictUnverifiable, ReasonObjectUnreadable, err
		j.transient = errors.Is(err, ErrTransient)
		if errors.Is(err, ErrObjectNotFound) {
			j.reason = ReasonGenerationGone
		}
		return j
	}
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
	actual, n, err := e.hashGeneration(ctx, bucket, object, attrs.Generation)
	if err != nil {
		j.verdict, j.reason, j.err = VerdictUnverifiable, ReasonObjectUnreadable, err
		j.transient = errors.Is(err, ErrTransient)
		if errors.Is(err, ErrObjectNotFound) {
			j.reason, j.transient = ReasonGenerationGone, false
		}
		return j
	}
	j.actual, j.attrs.Size = actual, n
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

// isTransientRelease reports whether resolving the release failed in a way worth a retry.
func isTransientRelease(err error) bool {
	return err != nil && ReasonOf(err) == ReasonReleaseUnreachable
}
