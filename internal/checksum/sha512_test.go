package checksum

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Real output of GNU coreutils 9.1 sha512sum for the files described at the top
// of checksum_test.go.
const (
	// sha512sum hello.txt empty
	real512Text = "e7c22b994c59d9cf2b48e549b1e24666636045930d3da7c1acb299d1c3b7f931f94aae41edda2c2b207a36e10f8bcb8d45223e54878f5b316e7ce3b6bc019629  hello.txt\n" +
		"cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e  empty\n"
	// sha512sum -b app.bin
	real512Binary = "c7a6b27bf73c8c2d93e4eab02fa8bbe704125183c6eb9e93144eeb4eb861bb0516b3b7f1bd2b06f2a29deddcf1b3eff925105c755b663a6068495c42ff13fbdb *app.bin\n"
	// sha512sum --tag hello.txt
	real512Tag = "SHA512 (hello.txt) = e7c22b994c59d9cf2b48e549b1e24666636045930d3da7c1acb299d1c3b7f931f94aae41edda2c2b207a36e10f8bcb8d45223e54878f5b316e7ce3b6bc019629\n"
)

func sum512(b string) Sum {
	d := sha512.Sum512([]byte(b))
	s, err := NewSum(SHA512, d[:])
	if err != nil {
		panic(err)
	}
	return s
}

func sum256(b string) Sum { return Digest(sha256.Sum256([]byte(b))).Sum() }

func TestParseAllSHA512(t *testing.T) {
	f, err := ParseAll([]byte(real512Text + real512Binary))
	require.NoError(t, err)
	require.Equal(t, 3, f.Len())
	assert.Equal(t, []Algorithm{SHA512}, f.Algorithms())

	e, ok := f.Lookup("hello.txt")
	require.True(t, ok)
	assert.Equal(t, sum512("hello\n"), e.Sum)
	assert.Equal(t, SHA512, e.Sum.Algorithm())
	assert.False(t, e.HasSHA256())
	assert.Equal(t, Digest{}, e.Digest, "no SHA-256 listed: the compatibility field stays zero")
	assert.Equal(t, 1, e.Line)

	e, ok = f.Lookup("app.bin")
	require.True(t, ok)
	assert.Equal(t, sum512("bin\x00\x01"), e.Sum)
	assert.True(t, e.Binary)

	// The BSD tag form gives the same entry.
	tag, err := ParseAll([]byte(real512Tag))
	require.NoError(t, err)
	te, ok := tag.Lookup("hello.txt")
	require.True(t, ok)
	assert.Equal(t, sum512("hello\n"), te.Sum)
	assert.False(t, te.Binary)

	// Parse (SHA-256 callers) refuses a SHA-512-only entry, naming it.
	_, err = Parse([]byte(real512Text))
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrNoSHA256)
	assert.ErrorIs(t, err, ErrMalformed)
	assert.Contains(t, err.Error(), `line 1: "hello.txt" is listed with SHA-512 only`)
}

// A file mixing both algorithms and both line forms: each name's strongest
// digest is its Sum; the SHA-256 stays available as Digest.
func TestParseAllMixed(t *testing.T) {
	input := lines(realText)[0] + // hello.txt SHA-256 (text)
		real512Tag + // hello.txt SHA-512 (tag)
		lines(realTag)[1] + // empty SHA-256 (tag)
		lines(real512Text)[1] + // empty SHA-512 (text)
		real512Binary + // app.bin SHA-512 only
		lines(realBinary)[0][:64] + " *only256\n"
	_, err := Parse([]byte(input))
	assert.ErrorIs(t, err, ErrNoSHA256, "Parse refuses app.bin, listed with SHA-512 only")
	f, err := ParseAll([]byte(input))
	require.NoError(t, err)
	require.Equal(t, 4, f.Len())
	assert.Equal(t, []Algorithm{SHA256, SHA512}, f.Algorithms())

	hello, ok := f.Lookup("hello.txt")
	require.True(t, ok)
	assert.Equal(t, sum512("hello\n"), hello.Sum, "the strongest digest is the one compared")
	assert.Equal(t, 2, hello.Line, "Line is the strongest listing's line")
	assert.Equal(t, dHello, hello.Digest)
	assert.True(t, hello.HasSHA256())
	assert.Equal(t, Listing{Sum: dHello.Sum(), Line: 1}, hello.Weaker)
	got, ok := hello.Listed(SHA256)
	assert.True(t, ok)
	assert.Equal(t, dHello.Sum(), got)

	empty, ok := f.Lookup("empty")
	require.True(t, ok)
	assert.Equal(t, sum512(""), empty.Sum)
	assert.Equal(t, 4, empty.Line)
	assert.Equal(t, dEmpty, empty.Digest)

	app, ok := f.Lookup("app.bin")
	require.True(t, ok)
	assert.Equal(t, SHA512, app.Sum.Algorithm())
	assert.True(t, app.Weaker.Sum.IsZero())
	_, ok = app.Listed(SHA256)
	assert.False(t, ok)

	only, ok := f.Lookup("only256")
	require.True(t, ok)
	assert.Equal(t, SHA256, only.Sum.Algorithm())
	assert.Equal(t, dHello, only.Digest)

	// The order of the two lines does not matter: SHA-512 first, then SHA-256.
	rev, err := Parse([]byte(real512Tag + lines(realText)[0]))
	require.NoError(t, err)
	e, ok := rev.Lookup("hello.txt")
	require.True(t, ok)
	assert.Equal(t, sum512("hello\n"), e.Sum)
	assert.Equal(t, 1, e.Line)
	assert.Equal(t, Listing{Sum: dHello.Sum(), Line: 2}, e.Weaker)

	// Format gives one line per listing, in line order, and parses back the same.
	assert.Equal(t, lines(realText)[0]+strings.TrimSuffix(lines(real512Text)[0], "\n"), hello.Format())
	again, err := ParseAll([]byte(hello.Format()))
	require.NoError(t, err)
	back, _ := again.Lookup("hello.txt")
	assert.Equal(t, hello.Sum, back.Sum)
	assert.Equal(t, hello.Weaker.Sum, back.Weaker.Sum)
}

// "Disagree" is what the text can show: the same name twice with the same
// algorithm. Different values are ErrConflict; equal values are still
// ErrDuplicate. A SHA-256 and a SHA-512 that belong to different files cannot
// be told apart from two that belong to the same one without the file.
func TestParseAllDisagreement(t *testing.T) {
	h512 := strings.Repeat("e7", 64)
	tests := []struct {
		name, input string
		line        int
		is          error
		contains    string
	}{
		{"two different SHA-512", real512Tag + h512 + "  hello.txt\n", 2, ErrConflict,
			`conflicting SHA-512 digests for name "hello.txt" (line 1 and line 2 differ)`},
		{"two different SHA-256 among SHA-512", lines(realText)[0] + real512Tag + hexX + "  hello.txt\n", 3, ErrConflict,
			`conflicting SHA-256 digests for name "hello.txt" (line 1 and line 3 differ)`},
		{"same SHA-512 twice", real512Tag + lines(real512Text)[0], 2, ErrDuplicate,
			`duplicate SHA-512 entry for name "hello.txt" (first listed on line 1, again on line 2)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseAll([]byte(tt.input))
			require.Error(t, err)
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, tt.line, pe.Line)
			assert.ErrorIs(t, err, tt.is)
			assert.ErrorIs(t, err, ErrDuplicate)
			assert.ErrorIs(t, err, ErrMalformed)
			assert.Contains(t, err.Error(), tt.contains)
		})
	}
	// Same value twice is a duplicate but not a conflict.
	_, err := ParseAll([]byte(real512Tag + real512Tag))
	assert.NotErrorIs(t, err, ErrConflict)
}

func TestSum(t *testing.T) {
	s := sum512("hello\n")
	assert.Equal(t, strings.TrimSuffix(lines(real512Text)[0], "  hello.txt\n"), s.String())
	assert.Equal(t, SHA512, s.Algorithm())
	assert.Len(t, s.Bytes(), 64)
	assert.Equal(t, "SHA-512 "+s.String(), s.Label())
	_, ok := s.SHA256()
	assert.False(t, ok)

	d, ok := dHello.Sum().SHA256()
	assert.True(t, ok)
	assert.Equal(t, dHello, d)
	assert.NotEqual(t, dHello.Sum(), Sum{}, "a SHA-256 Sum is not the zero Sum")
	assert.True(t, Sum{}.IsZero())
	assert.Equal(t, "", Sum{}.String())

	// Parsed in either case, compared with ==.
	up, err := ParseSum(SHA512, strings.ToUpper(s.String()))
	require.NoError(t, err)
	assert.True(t, up == s)
	_, err = ParseSum(SHA512, hexHello)
	assert.ErrorIs(t, err, ErrInvalidDigest)
	assert.Contains(t, err.Error(), "not a SHA-512 digest (64 hex digits); looks like SHA-256")
	_, err = ParseSum(0, hexHello)
	assert.ErrorIs(t, err, ErrInvalidDigest)
	_, err = NewSum(SHA256, make([]byte, 64))
	assert.ErrorIs(t, err, ErrInvalidDigest)

	// Text form carries the algorithm.
	js, err := json.Marshal(map[string]Sum{"a": s, "b": dHello.Sum()})
	require.NoError(t, err)
	assert.JSONEq(t, `{"a":"sha512:`+s.String()+`","b":"sha256:`+hexHello+`"}`, string(js))
	var back map[string]Sum
	require.NoError(t, json.Unmarshal(js, &back))
	assert.Equal(t, s, back["a"])
	assert.Equal(t, dHello.Sum(), back["b"])
	var into Sum
	assert.ErrorIs(t, into.UnmarshalText([]byte("md5:"+strings.Repeat("0", 32))), ErrInvalidDigest)
	assert.ErrorIs(t, into.UnmarshalText([]byte(hexHello)), ErrInvalidDigest)
	assert.ErrorIs(t, into.UnmarshalText([]byte("sha512:"+hexHello)), ErrInvalidDigest)
	assert.True(t, into.IsZero(), "unchanged on error")
	_, err = Sum{}.MarshalText()
	assert.ErrorIs(t, err, ErrInvalidDigest)
}

func TestNewHash(t *testing.T) {
	for _, tt := range []struct {
		alg  Algorithm
		want Sum
	}{{SHA256, sum256("hello\n")}, {SHA512, sum512("hello\n")}} {
		h := NewHash(tt.alg)
		h.Write([]byte("hello\n"))
		assert.Equal(t, tt.want, SumOf(tt.alg, h))
		assert.Equal(t, tt.alg.Size(), h.Size())
	}
	assert.Panics(t, func() { NewHash(0) })
	assert.Panics(t, func() { SumOf(SHA512, NewHash(SHA256)) })
	assert.Equal(t, "SHA256", SHA256.String())
	assert.Equal(t, "SHA-512", SHA512.Name())
	assert.False(t, Algorithm(9).Valid())
}

func BenchmarkParseAllMixed(b *testing.B) {
	var sb strings.Builder
	for i := range 1000 {
		name := "dist/pkg-" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + "-" + itoa(i)
		sb.WriteString(sum256(name).String() + "  " + name + "\n")
		sb.WriteString("SHA512 (" + name + ") = " + sum512(name).String() + "\n")
	}
	data := []byte(sb.String())
	f, err := ParseAll(data)
	require.NoError(b, err)
	require.Equal(b, 1000, f.Len())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseAll(data); err != nil {
			b.Fatal(err)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
