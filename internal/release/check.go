package release

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/signing"
)

// How a release vouches for a file's bytes. This file is the one place that says how bytes
// are checked against a release: the engine judges objects, picks restore sources and
// verifies what it wrote back only through Expected and Check.
//
//   - by digest: the signed checksum file lists the file (checksum.Entry.Sum), or a
//     verified attestation of the release names it as a subject; the bytes are hashed with
//     that digest's algorithm and compared;
//   - by a signature over the file itself (release.signed: file): the bytes stream through
//     the detached signatures' check (signing.FileCheck);
//   - by an attestation found by the bytes' own SHA-256 (release.attestations: true, for a
//     file the release's assets do not name): looked up and verified after hashing.
//
// The last two know no digest before the bytes are read, so "these bytes are not the
// signed ones" is all a failed check says: the signature or attestation may as well be
// the attacker's doing. The engine declares such bytes tampered only once other bytes
// pass the same check (see Expected.Proven).

// Expected is what a release says the bytes of one file must be.
type Expected struct {
	// Name is the file's name in the release (the checksum entry, the attested subject).
	Name string
	// Entry is the signed digest listed for the file; its Sum is zero when the release
	// vouches for the bytes without a digest known in advance (a signature over the file,
	// an attestation looked up by the bytes' digest): then only a Check can tell.
	Entry checksum.Entry
	// How names what vouches, for people: "checksum file SHA256SUMS", "signature over the
	// file", "attestation".
	How string

	file   *fileVouch  // signed: file
	attest *attestLook // attestation looked up by the bytes' digest
}

// Proven reports whether a failed check proves the bytes are not the signed ones (a
// signed digest is known); when false, a failure proves it only once other bytes pass.
func (x Expected) Proven() bool { return !x.Entry.Sum.IsZero() }

// Checked is the verdict of one Check.
type Checked struct {
	// OK is set when the release vouches for the bytes.
	OK bool
	// Size is how many bytes were checked.
	Size int64
	// SHA256 is the bytes' SHA-256 (what alerts show, and what a restore's write-back is
	// compared with once the bytes passed).
	SHA256 checksum.Digest
	// Sum is the bytes' digest in the algorithm of Want (SHA-256 when there is no Want).
	Sum checksum.Sum
	// Want is the signed digest the bytes were compared with; zero when none was known.
	Want checksum.Sum
	// Vouched is the signature or attestation that vouched for the bytes when it is not the
	// release's own signer (signed: file, attestations); zero otherwise.
	Vouched signing.Verified
	// Why is what refused the bytes when a signature or attestation check did (nil for a
	// digest that differs).
	Why error

	sigsID string // signed: file: which signatures judged the bytes
	sha512 checksum.Sum
}

// Check hashes bytes for one Expected: write the bytes, then call Done.
type Check struct {
	x      Expected
	sha256 hash.Hash
	alg    hash.Hash // the signed digest's algorithm, when it is not SHA-256
	sha512 hash.Hash // attestation lookups: subjects may list SHA-512 only
	sig    *signing.FileCheck
	size   int64
}

// NewCheck starts checking bytes against x.
func (x Expected) NewCheck() (*Check, error) {
	c := &Check{x: x, sha256: sha256.New()}
	switch {
	case x.file != nil:
		fc, err := x.file.keys.NewFileCheck(x.file.sigs, x.file.threshold)
		if err != nil {
			return nil, fmt.Errorf("signature over %s: %w", clip(x.Name), err)
		}
		c.sig = fc
	case x.attest != nil:
		c.sha512 = checksum.NewHash(checksum.SHA512)
	case x.Entry.Sum.IsZero():
		return nil, fmt.Errorf("%w: nothing vouches for %s", ErrEntryMissing, clip(x.Name))
	case x.Entry.Sum.Algorithm() != checksum.SHA256:
		c.alg = checksum.NewHash(x.Entry.Sum.Algorithm())
	}
	return c, nil
}

// Write hashes the next bytes. It never fails.
func (c *Check) Write(p []byte) (int, error) {
	c.sha256.Write(p)
	if c.alg != nil {
		c.alg.Write(p)
	}
	if c.sha512 != nil {
		c.sha512.Write(p)
	}
	if c.sig != nil {
		_, _ = c.sig.Write(p)
	}
	c.size += int64(len(p))
	return len(p), nil
}

// Done judges the bytes written. An error means the check could not be made (an
// attestation lookup failed); a refusal is a Checked with OK false.
func (c *Check) Done(ctx context.Context) (Checked, error) {
	var out Checked
	out.Size = c.size
	c.sha256.Sum(out.SHA256[:0])
	out.Sum = out.SHA256.Sum()
	if c.sha512 != nil {
		out.sha512 = checksum.SumOf(checksum.SHA512, c.sha512)
	}
	x := c.x
	switch {
	case c.sig != nil:
		out.sigsID = x.file.id
		res, err := c.sig.Result()
		if err != nil {
			out.Why = err
			return out, nil
		}
		out.OK, out.Vouched = true, res.Signers[0]
		return out, nil
	case c.alg != nil:
		out.Sum = checksum.SumOf(x.Entry.Sum.Algorithm(), c.alg)
	}
	return x.judge(ctx, out)
}

// judge compares measured digests with x; for an attestation lookup, it looks the bytes'
// SHA-256 up.
func (x Expected) judge(ctx context.Context, out Checked) (Checked, error) {
	if x.attest != nil {
		return x.attest.judge(ctx, x.Name, out)
	}
	out.Want = x.Entry.Sum
	out.OK = out.Sum == x.Entry.Sum
	return out, nil
}

// Check reads r to its end through a Check of x.
func (x Expected) Check(ctx context.Context, r io.Reader) (Checked, error) {
	c, err := x.NewCheck()
	if err != nil {
		return Checked{}, err
	}
	if _, err := io.Copy(c, r); err != nil {
		return Checked{Size: c.size}, err
	}
	return c.Done(ctx)
}

// Recheck judges bytes that were checked against another Expected (an older lookup of the
// same release) from what that check measured, when it can; ok is false when the bytes must
// be read again (another digest algorithm, other signatures over the file).
func (x Expected) Recheck(ctx context.Context, prior Checked) (Checked, bool, error) {
	out := prior
	out.OK, out.Want, out.Vouched, out.Why = false, checksum.Sum{}, signing.Verified{}, nil
	switch {
	case x.file != nil:
		if prior.sigsID != x.file.id {
			return Checked{}, false, nil
		}
		return prior, true, nil
	case x.attest != nil:
		if prior.sha512.IsZero() {
			return Checked{}, false, nil
		}
		out.Sum = prior.SHA256.Sum()
	case x.Entry.Sum.Algorithm() == checksum.SHA256:
		out.Sum = prior.SHA256.Sum()
	case x.Entry.Sum.Algorithm() == prior.Sum.Algorithm():
	case x.Entry.Sum.Algorithm() == checksum.SHA512 && !prior.sha512.IsZero():
		out.Sum = prior.sha512
	default:
		return Checked{}, false, nil
	}
	c, err := x.judge(ctx, out)
	return c, err == nil, err
}

// Expect says what the release vouches for file name: ErrEntryMissing when nothing does.
// For a release signed file by file it reads the file's signatures (bounded, cached with
// the release).
func (r *Release) Expect(ctx context.Context, name string) (Expected, error) {
	switch {
	case r.fileSigs != nil:
		return r.fileSigs.expect(ctx, r, name)
	case r.attested != nil:
		return r.attested.expect(r, name)
	}
	e, err := r.Lookup(name)
	if err != nil {
		return Expected{}, err
	}
	return Expected{Name: e.Name, Entry: e, How: "checksum file " + clip(r.ChecksumsName)}, nil
}

// fileVouch is what vouches for one file of a release signed file by file.
type fileVouch struct {
	sigs      [][]byte
	id        string // names the signatures, to tell a recheck whether they changed
	keys      *signing.Keys
	threshold int
}

func sigsID(sigs [][]byte) string {
	var b bytes.Buffer
	for _, s := range sigs {
		fmt.Fprintf(&b, "%d:", len(s))
		b.Write(s)
	}
	sum := sha256.Sum256(b.Bytes())
	return fmt.Sprintf("%x", sum[:])
}

// boundedCache keeps a bounded number of values by key, safe for concurrent use; when
// full it starts over (what it holds can always be read again).
type boundedCache[V any] struct {
	mu  sync.Mutex
	max int
	m   map[string]V
}

func (c *boundedCache[V]) get(k string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

func (c *boundedCache[V]) put(k string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= c.max {
		c.m = make(map[string]V)
	}
	c.m[k] = v
}

// errNoVouch is Why for bytes an attestation lookup found nothing for.
var errNoVouch = errors.New("no attestation by a pinned identity names these bytes")
