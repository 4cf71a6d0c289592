package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/policy"
	"github.com/tamperguard/tamperguard/internal/release"
)

// judged is the verdict on one generation's bytes.
type judged struct {
	attrs     ObjectAttrs
	exp       Expectation
	checked   release.Checked
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
	checked, err := e.checkGeneration(ctx, exp, bucket, object, attrs.Generation)
	if err != nil {
		return j.failed(err)
	}
	j.checked, j.attrs.Size = checked, checked.Size
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
			j.verdict = VerdictOK
			return j
		}
	}
	if !j.exp.Expected.Proven() {
		// No signed digest to compare with: the bytes are tampered only if other bytes pass
		// the check they failed; otherwise the signature (or attestation) is as suspect.
		src, err := e.goodSource(ctx, m, bucket, object, j.exp, attrs.Generation)
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
	c, err := CheckReader(ctx, exp.Expected, io.LimitReader(r, e.maxSize+1))
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
