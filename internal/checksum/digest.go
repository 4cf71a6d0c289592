package checksum

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
)

// Algorithm is a digest algorithm a checksum file may list. The zero value is
// no algorithm.
type Algorithm uint8

// The accepted algorithms, weakest first: a larger value is stronger.
const (
	SHA256 Algorithm = 1
	SHA512 Algorithm = 2
)

// algorithms lists the accepted algorithms, weakest first.
var algorithms = []Algorithm{SHA256, SHA512}

// String is the algorithm's tag name as sha256sum --tag writes it: "SHA256", "SHA512".
func (a Algorithm) String() string {
	switch a {
	case SHA256:
		return "SHA256"
	case SHA512:
		return "SHA512"
	}
	return fmt.Sprintf("Algorithm(%d)", uint8(a))
}

// Name is the algorithm for humans: "SHA-256", "SHA-512".
func (a Algorithm) Name() string {
	switch a {
	case SHA256:
		return "SHA-256"
	case SHA512:
		return "SHA-512"
	}
	return a.String()
}

// Size is the digest length in bytes; 0 for an unknown algorithm.
func (a Algorithm) Size() int {
	switch a {
	case SHA256:
		return sha256.Size
	case SHA512:
		return sha512.Size
	}
	return 0
}

// Valid reports whether a is one of the accepted algorithms.
func (a Algorithm) Valid() bool { return a.Size() != 0 }

// NewHash returns a new hash.Hash for alg, so a caller hashes an object with the
// algorithm its entry lists (Entry.Sum.Algorithm()). It panics on an invalid
// Algorithm, which can only come from a programming error: every Sum this
// package makes has a valid one.
func NewHash(alg Algorithm) hash.Hash {
	switch alg {
	case SHA256:
		return sha256.New()
	case SHA512:
		return sha512.New()
	}
	panic("checksum: NewHash of invalid " + alg.String())
}

// Sum is a digest together with its algorithm. It is comparable: two Sums are
// == exactly when algorithm and digest are equal. The zero Sum has no algorithm.
type Sum struct {
	alg Algorithm
	b   [sha512.Size]byte // the first alg.Size() bytes are used, the rest are zero
}

// NewSum makes a Sum from raw digest bytes, which must have alg's size.
func NewSum(alg Algorithm, digest []byte) (Sum, error) {
	if !alg.Valid() {
		return Sum{}, fmt.Errorf("%w: unsupported algorithm %s", ErrInvalidDigest, alg)
	}
	if len(digest) != alg.Size() {
		return Sum{}, fmt.Errorf("%w: %s digest of %d bytes, want %d", ErrInvalidDigest, alg.Name(), len(digest), alg.Size())
	}
	var s Sum
	s.alg = alg
	copy(s.b[:], digest)
	return s, nil
}

// SumOf returns the digest that h (made by NewHash(alg)) holds now.
func SumOf(alg Algorithm, h hash.Hash) Sum {
	var s Sum
	s.alg = alg
	if h.Size() != alg.Size() {
		panic("checksum: SumOf: a " + alg.Name() + " Sum from a hash of another size")
	}
	h.Sum(s.b[:0])
	return s
}

// ParseSum parses a digest of alg written as hex (either case).
func ParseSum(alg Algorithm, s string) (Sum, error) {
	if !alg.Valid() {
		return Sum{}, fmt.Errorf("%w: unsupported algorithm %s", ErrInvalidDigest, alg)
	}
	sum, msg := parseHexDigest([]byte(s), alg)
	if msg != "" {
		return Sum{}, fmt.Errorf("%w: %s", ErrInvalidDigest, msg)
	}
	return sum, nil
}

// Algorithm is the Sum's algorithm; 0 for the zero Sum.
func (s Sum) Algorithm() Algorithm { return s.alg }

// IsZero reports whether s is the zero Sum (no algorithm).
func (s Sum) IsZero() bool { return s.alg == 0 }

// Bytes returns a copy of the digest bytes.
func (s Sum) Bytes() []byte { return append([]byte(nil), s.b[:s.alg.Size()]...) }

// String returns the digest as lower-case hex (64 or 128 digits); "" for the zero Sum.
func (s Sum) String() string { return hex.EncodeToString(s.b[:s.alg.Size()]) }

// Label is the digest for humans and logs: "SHA-512 ab12…".
func (s Sum) Label() string {
	if s.IsZero() {
		return "no digest"
	}
	return s.alg.Name() + " " + s.String()
}

// SHA256 returns the digest as a Digest when s is a SHA-256 digest.
func (s Sum) SHA256() (Digest, bool) {
	if s.alg != SHA256 {
		return Digest{}, false
	}
	var d Digest
	copy(d[:], s.b[:sha256.Size])
	return d, true
}

// MarshalText encodes s as "sha256:<hex>" or "sha512:<hex>".
func (s Sum) MarshalText() ([]byte, error) {
	if s.IsZero() {
		return nil, fmt.Errorf("%w: the zero Sum has no text form", ErrInvalidDigest)
	}
	return []byte(strings.ToLower(s.alg.String()) + ":" + s.String()), nil
}

// UnmarshalText decodes "sha256:<hex>" or "sha512:<hex>" (the prefix in either case).
func (s *Sum) UnmarshalText(text []byte) error {
	prefix, digest, ok := strings.Cut(string(text), ":")
	if !ok {
		return fmt.Errorf("%w: expected \"sha256:<hex>\" or \"sha512:<hex>\", found %s", ErrInvalidDigest, quote(text))
	}
	var alg Algorithm
	switch strings.ToUpper(prefix) {
	case "SHA256":
		alg = SHA256
	case "SHA512":
		alg = SHA512
	default:
		return fmt.Errorf("%w: unsupported algorithm %s", ErrInvalidDigest, quote(prefix))
	}
	v, err := ParseSum(alg, digest)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Digest is a SHA-256 digest: what the engine compares today (Entry.Digest).
type Digest [32]byte

// Sum returns d as a SHA-256 Sum.
func (d Digest) Sum() Sum {
	var s Sum
	s.alg = SHA256
	copy(s.b[:], d[:])
	return s
}

// String returns the digest as 64 lower-case hex digits.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// MarshalText encodes d as 64 lower-case hex digits.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText decodes exactly 64 hex digits, as ParseDigest does.
func (d *Digest) UnmarshalText(text []byte) error {
	v, err := ParseDigest(string(text))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// ParseDigest parses exactly 64 hex digits, in either case. Errors match
// ErrInvalidDigest.
func ParseDigest(s string) (Digest, error) {
	sum, msg := parseHexDigest([]byte(s), SHA256)
	if msg != "" {
		return Digest{}, fmt.Errorf("%w: %s", ErrInvalidDigest, msg)
	}
	d, _ := sum.SHA256()
	return d, nil
}

// parseHexDigest parses a token that must be exactly alg's digest in hex.
func parseHexDigest(tok []byte, alg Algorithm) (Sum, string) {
	if len(tok) == 0 {
		return Sum{}, "missing digest"
	}
	if n := hexPrefixLen(tok); n < len(tok) {
		return Sum{}, "invalid character " + quote(tok[n:n+1]) + " in digest"
	}
	if len(tok) != 2*alg.Size() {
		return Sum{}, digestLenMsg(len(tok), alg)
	}
	var s Sum
	s.alg = alg
	hex.Decode(s.b[:], tok) // cannot fail: checked above
	return s, ""
}

// digestLenMsg explains a hex digest of n digits where alg was expected (0: any).
func digestLenMsg(n int, alg Algorithm) string {
	var msg string
	if alg == 0 {
		msg = fmt.Sprintf("not a SHA-256 or SHA-512 digest (%d hex digits)", n)
	} else {
		msg = fmt.Sprintf("not a %s digest (%d hex digits)", alg.Name(), n)
	}
	switch n {
	case 32:
		msg += "; looks like MD5"
	case 40:
		msg += "; looks like SHA-1"
	case 56:
		msg += "; looks like SHA-224"
	case 64:
		if alg != SHA256 {
			msg += "; looks like SHA-256"
		}
	case 96:
		msg += "; looks like SHA-384"
	case 128:
		if alg != SHA512 {
			msg += "; looks like SHA-512"
		}
	}
	return msg
}
