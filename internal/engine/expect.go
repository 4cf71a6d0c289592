package engine

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/policy"
	"github.com/tamperguard/tamperguard/internal/release"
)

// Expectation is what an object must hash to, and who said so.
type Expectation struct {
	Release *release.Release
	Entry   checksum.Entry
}

// Expect resolves the signed digest for object under the matched rule. startedAfter, when
// set, asks for a release lookup that started at or after that instant (see
// release.Resolver.Resolve); it is used once more before a mismatch is declared.
func Expect(ctx context.Context, res *release.Resolver, m policy.Match, object string, startedAfter time.Time) (Expectation, error) {
	rel, err := res.Resolve(ctx, m.Rule.Source, m.Tag, startedAfter)
	if err != nil {
		return Expectation{}, err
	}
	e, err := rel.Lookup(m.Entry(object))
	if err != nil {
		return Expectation{Release: rel}, err
	}
	return Expectation{Release: rel, Entry: e}, nil
}

// hashBufSize is large enough that SHA-256, not the copy loop, bounds throughput.
const hashBufSize = 256 << 10

var hashBufs = sync.Pool{New: func() any { b := make([]byte, hashBufSize); return &b }}

// HashReader streams r through SHA-256 in constant memory.
func HashReader(r io.Reader) (checksum.Digest, int64, error) {
	h := sha256.New()
	bp := hashBufs.Get().(*[]byte)
	defer hashBufs.Put(bp)
	n, err := io.CopyBuffer(h, r, *bp)
	if err != nil {
		return checksum.Digest{}, n, err
	}
	var d checksum.Digest
	h.Sum(d[:0])
	return d, n, nil
}

// LocalResult is the verdict on a local copy of a published object.
type LocalResult struct {
	Object   string
	Verdict  Verdict
	Expected *checksum.Digest
	Actual   *checksum.Digest
	Size     int64
	Release  *release.Release
	Reason   Reason
	Err      error
}

// VerifyLocal judges a local file that claims to be object (the consumer-side check). A
// mismatch is only declared after the release was resolved once more, uncached.
func VerifyLocal(ctx context.Context, res *release.Resolver, m policy.Match, object string, open func() (io.ReadCloser, error)) LocalResult {
	out := LocalResult{Object: object}
	f, err := open()
	if err != nil {
		out.Verdict, out.Reason, out.Err = VerdictUnverifiable, ReasonObjectUnreadable, err
		return out
	}
	actual, size, err := HashReader(f)
	f.Close()
	if err != nil {
		out.Verdict, out.Reason, out.Err = VerdictUnverifiable, ReasonObjectUnreadable, fmt.Errorf("reading %s: %w", object, err)
		return out
	}
	out.Actual, out.Size = &actual, size
	started := time.Now()
	for _, after := range []time.Time{{}, started} {
		exp, err := Expect(ctx, res, m, object, after)
		out.Release = exp.Release
		if err != nil {
			out.Verdict, out.Reason, out.Err = VerdictUnverifiable, ReasonOf(err), err
			return out
		}
		d := exp.Entry.Digest
		out.Expected = &d
		if d == actual {
			out.Verdict, out.Reason, out.Err = VerdictOK, "", nil
			return out
		}
		if !exp.Release.Fetched.Before(started) {
			break // fetched just now: asking again would only repeat it
		}
	}
	out.Verdict = VerdictTampered
	return out
}
