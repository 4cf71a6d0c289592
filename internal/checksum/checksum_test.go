package checksum

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The literals below are real output of GNU coreutils 9.1, captured once so
// that the suite needs no external tools. The files hashed were:
//
//	printf 'hello\n'  > hello.txt
//	printf ''         > empty
//	printf 'z'        > 'with space.txt'
//	printf 'bin\0\1'  > app.bin
//	printf 'x'        > "$(printf 'a\nb\\c')"   # a, newline, b, backslash, c
//	printf 'q'        > "$(printf 'cr\rx')"     # c, r, carriage return, x
//	printf 'x'        > 'back\slash'
//	printf 'x'        > ' lead'; printf 'x' > 'trail '; printf 'x' > 'star*'
//	printf 'x'        > 'p) = q'
const (
	// sha256sum hello.txt empty 'with space.txt'
	realText = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  hello.txt\n" +
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  empty\n" +
		"594e519ae499312b29433b7dd8a97ff068defcba9755b6d5d00e84c524d67b06  with space.txt\n"

	// sha256sum -b hello.txt app.bin
	realBinary = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03 *hello.txt\n" +
		"e49b3961cbbf70a8493c703ed2c15911ac774eb4f95828408965f5c5d2e803f1 *app.bin\n"

	// sha256sum --tag hello.txt empty
	realTag = "SHA256 (hello.txt) = 5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03\n" +
		"SHA256 (empty) = e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"

	// sha256sum "$(printf 'a\nb\\c')" "$(printf 'cr\rx')" 'back\slash'
	realEscaped = `\2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881  a\nb\\c` + "\n" +
		`\8e35c2cd3bf6641bdb0e2050b76932cbb2e6034a0ddacc1d9bea82a6ba57f7cf  cr\rx` + "\n" +
		`\2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881  back\\slash` + "\n"

	// sha256sum -b "$(printf 'a\nb\\c')"
	realEscapedBinary = `\2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881 *a\nb\\c` + "\n"

	// sha256sum --tag "$(printf 'a\nb\\c')" "$(printf 'cr\rx')"
	realEscapedTag = `\SHA256 (a\nb\\c) = 2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881` + "\n" +
		`\SHA256 (cr\rx) = 8e35c2cd3bf6641bdb0e2050b76932cbb2e6034a0ddacc1d9bea82a6ba57f7cf` + "\n"

	// sha256sum ' lead' 'trail ' 'star*'
	realOddNames = "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881   lead\n" +
		"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881  trail \n" +
		"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881  star*\n"

	// sha256sum --tag 'p) = q' ' lead'
	realOddTag = "SHA256 (p) = q) = 2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881\n" +
		"SHA256 ( lead) = 2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881\n"

	// sha256sum hello.txt ./hello.txt sub/a.txt ./sub/a.txt
	realDotSlash = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  hello.txt\n" +
		"5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  ./hello.txt\n" +
		"5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  sub/a.txt\n" +
		"5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  ./sub/a.txt\n"
)

// Digests of the file contents above, computed independently of the literals.
var (
	dHello = Digest(sha256.Sum256([]byte("hello\n")))
	dEmpty = Digest(sha256.Sum256(nil))
	dZ     = Digest(sha256.Sum256([]byte("z")))
	dBin   = Digest(sha256.Sum256([]byte("bin\x00\x01")))
	dX     = Digest(sha256.Sum256([]byte("x")))
	dQ     = Digest(sha256.Sum256([]byte("q")))
)

const (
	hexHello = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
	hexX     = "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
)

// lines splits s after each newline.
func lines(s string) []string { return strings.SplitAfter(s, "\n") }

func TestParseValid(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []Entry
	}{
		{"text", realText, []Entry{
			{Name: "hello.txt", Digest: dHello, Line: 1},
			{Name: "empty", Digest: dEmpty, Line: 2},
			{Name: "with space.txt", Digest: dZ, Line: 3},
		}},
		{"binary marker", realBinary, []Entry{
			{Name: "hello.txt", Digest: dHello, Binary: true, Line: 1},
			{Name: "app.bin", Digest: dBin, Binary: true, Line: 2},
		}},
		{"bsd tag", realTag, []Entry{
			{Name: "hello.txt", Digest: dHello, Line: 1},
			{Name: "empty", Digest: dEmpty, Line: 2},
		}},
		{"escaped names", realEscaped, []Entry{
			{Name: "a\nb\\c", Digest: dX, Line: 1},
			{Name: "cr\rx", Digest: dQ, Line: 2},
			{Name: `back\slash`, Digest: dX, Line: 3},
		}},
		{"escaped binary", realEscapedBinary, []Entry{
			{Name: "a\nb\\c", Digest: dX, Binary: true, Line: 1},
		}},
		{"escaped bsd tag", realEscapedTag, []Entry{
			{Name: "a\nb\\c", Digest: dX, Line: 1},
			{Name: "cr\rx", Digest: dQ, Line: 2},
		}},
		{"leading, trailing space and star in names", realOddNames, []Entry{
			{Name: " lead", Digest: dX, Line: 1},
			{Name: "trail ", Digest: dX, Line: 2},
			{Name: "star*", Digest: dX, Line: 3},
		}},
		{"bsd tag name containing ') = '", realOddTag, []Entry{
			{Name: "p) = q", Digest: dX, Line: 1},
			{Name: " lead", Digest: dX, Line: 2},
		}},
		{"dot-slash names kept as listed", realDotSlash, []Entry{
			{Name: "hello.txt", Digest: dHello, Line: 1},
			{Name: "./hello.txt", Digest: dHello, Line: 2},
			{Name: "sub/a.txt", Digest: dHello, Line: 3},
			{Name: "./sub/a.txt", Digest: dHello, Line: 4},
		}},
		{"CRLF line endings", strings.ReplaceAll(realText, "\n", "\r\n"), []Entry{
			{Name: "hello.txt", Digest: dHello, Line: 1},
			{Name: "empty", Digest: dEmpty, Line: 2},
			{Name: "with space.txt", Digest: dZ, Line: 3},
		}},
		{"CRLF with escaped and tag lines", strings.ReplaceAll(realEscaped+realTag, "\n", "\r\n"), []Entry{
			{Name: "a\nb\\c", Digest: dX, Line: 1},
			{Name: "cr\rx", Digest: dQ, Line: 2},
			{Name: `back\slash`, Digest: dX, Line: 3},
			{Name: "hello.txt", Digest: dHello, Line: 4},
			{Name: "empty", Digest: dEmpty, Line: 5},
		}},
		{"comments and blank lines", "# release v1.2.3\n\n" + lines(realBinary)[0] +
			"   \n\t\n# trailing comment\r\n\r\n" + lines(realBinary)[1] + "\n\n", []Entry{
			{Name: "hello.txt", Digest: dHello, Binary: true, Line: 3},
			{Name: "app.bin", Digest: dBin, Binary: true, Line: 8},
		}},
		{"no final newline", strings.TrimSuffix(realText, "\n"), []Entry{
			{Name: "hello.txt", Digest: dHello, Line: 1},
			{Name: "empty", Digest: dEmpty, Line: 2},
			{Name: "with space.txt", Digest: dZ, Line: 3},
		}},
		{"upper-case hex", strings.ToUpper(hexHello) + "  hello.txt", []Entry{
			{Name: "hello.txt", Digest: dHello, Line: 1},
		}},
		{"mixed formats", lines(realText)[0] + lines(realTag)[1] + realEscapedBinary, []Entry{
			{Name: "hello.txt", Digest: dHello, Line: 1},
			{Name: "empty", Digest: dEmpty, Line: 2},
			{Name: "a\nb\\c", Digest: dX, Binary: true, Line: 3},
		}},
		{"backslash in unescaped line is literal", hexX + `  a\nb`, []Entry{
			{Name: `a\nb`, Digest: dX, Line: 1},
		}},
		{"escape prefix without escapes", `\` + hexX + "  plain", []Entry{
			{Name: "plain", Digest: dX, Line: 1},
		}},
		{"double space inside name", hexX + "  a  b", []Entry{
			{Name: "a  b", Digest: dX, Line: 1},
		}},
		{"name of exactly MaxNameLen bytes", hexX + "  " + strings.Repeat("n", MaxNameLen), []Entry{
			{Name: strings.Repeat("n", MaxNameLen), Digest: dX, Line: 1},
		}},
		{"escaped name of MaxNameLen bytes, longer when escaped", `\` + hexX + "  " + strings.Repeat(`\\`, MaxNameLen), []Entry{
			{Name: strings.Repeat(`\`, MaxNameLen), Digest: dX, Line: 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte(tt.input))
			require.NoError(t, err)
			require.NotNil(t, f)
			// Single SHA-256 listings: the strongest Sum is the SHA-256 digest.
			for i := range tt.want {
				tt.want[i].Sum = tt.want[i].Digest.Sum()
			}
			assert.Equal(t, tt.want, f.Entries())
			assert.Equal(t, len(tt.want), f.Len())
			for _, e := range tt.want {
				got, ok := f.LookupExact(e.Name)
				assert.True(t, ok, "LookupExact(%q)", e.Name)
				assert.Equal(t, e, got)
				got, ok = f.Lookup(e.Name)
				assert.True(t, ok, "Lookup(%q)", e.Name)
				assert.Equal(t, e, got)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	valid := hexHello + "  ok.txt\n"
	tests := []struct {
		name     string
		input    string
		line     int
		contains string
		is       error // sentinel matched besides ErrMalformed, if any
	}{
		// digest shape
		{"digest too short", valid + hexX[:63] + "  x\n", 2, "not a SHA-256 or SHA-512 digest (63 hex digits)", nil},
		{"digest too long", valid + hexX + "0  x\n", 2, "not a SHA-256 or SHA-512 digest (65 hex digits)", nil},
		{"sha1 digest", "f572d396fae9206628714fb2ce00f72e94f2258f  hello.txt\n", 1,
			"not a SHA-256 or SHA-512 digest (40 hex digits); looks like SHA-1", nil},
		{"sha512 digest only", valid + "# next\n" + strings.Repeat("e7", 64) + "  hello.txt\n", 3,
			`"hello.txt" is listed with SHA-512 only`, ErrNoSHA256},
		{"sha384 digest", valid + strings.Repeat("e7", 48) + "  hello.txt\n", 2, "(96 hex digits); looks like SHA-384", nil},
		{"md5 digest", "b1946ac92492d2347c6235b4d2611184  hello.txt\n", 1, "not a SHA-256 or SHA-512 digest (32 hex digits); looks like MD5", nil},
		{"non-hex in digest", valid + hexX[:20] + "g" + hexX[21:] + "  x\n", 2, `invalid character "g" in digest`, nil},
		{"non-hex at start", "hello world\n", 1, `expected a 64- or 128-hex-digit digest`, nil},
		{"base64 digest", "LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564=  x\n", 1, `expected a 64- or 128-hex-digit digest`, nil},
		{"digest with 0x prefix", "0x" + hexX + "  x\n", 1, `invalid character "x" in digest`, nil},

		// separator
		{"digest only", valid + hexX + "\n", 2, "missing separator and file name after digest", nil},
		{"digest only CRLF", valid + hexX + "\r\n", 2, "missing separator and file name after digest", nil},
		{"digest and one space", valid + hexX + " \n", 2, "missing file name after digest", nil},
		{"name glued to digest", valid + hexX + "x\n", 2, `missing separator after digest: expected two spaces or " *" before the file name, found "x"`, nil},
		{"star glued to digest", valid + hexX + "*x\n", 2, `missing separator after digest`, nil},
		{"tab separator", valid + hexX + "\tx\n", 2, `missing separator after digest`, nil},
		{"single space", valid + hexX + " x\n", 2, "a single space between digest and file name is not sha256sum/sha512sum format", nil},
		{"single space before paren", hexX + " (x)\n", 1, "a single space between digest and file name is not sha256sum/sha512sum format", nil},
		{"leading whitespace", " " + valid, 1, "whitespace before the digest", nil},
		{"leading tab", "\t" + valid, 1, "whitespace before the digest", nil},
		{"bom", "\xef\xbb\xbf" + valid, 1, "byte order mark", nil},

		// names
		{"empty name text", valid + hexX + "  \n", 2, "empty file name", nil},
		{"empty name binary", valid + hexX + " *\n", 2, "empty file name", nil},
		{"empty name CRLF", valid + hexX + "  \r\n", 2, "empty file name", nil},
		{"empty name tag", valid + "SHA256 () = " + hexX + "\n", 2, "empty file name", nil},
		{"empty name escaped", valid + `\` + hexX + "  \n", 2, "empty file name", nil},
		{"nul in name", valid + hexX + "  a\x00b\n", 2, "file name contains a NUL byte", nil},
		{"nul in tag name", "SHA256 (a\x00b) = " + hexX + "\n", 1, "file name contains a NUL byte", nil},
		{"sha256sum -z output", hexHello + "  hello.txt\x00" + hexX + "  x\x00", 1, "sha256sum -z output is not supported", nil},
		{"raw carriage return in name", valid + hexX + "  a\rb\n", 2, "raw carriage return", nil},
		{"two trailing carriage returns", valid + hexX + "  a\r\r\n", 2, "raw carriage return", nil},
		{"CR-only line endings", hexHello + "  a\r" + hexX + "  b\r", 1, "raw carriage return", nil},
		{"name too long", valid + hexX + "  " + strings.Repeat("n", MaxNameLen+1) + "\n", 2,
			fmt.Sprintf("file name is %d bytes, over the %d-byte limit", MaxNameLen+1, MaxNameLen), nil},
		{"escaped name too long", `\` + hexX + "  " + strings.Repeat(`\n`, MaxNameLen+1) + "\n", 1, "over the 4096-byte limit", nil},
		{"invalid escape", valid + `\` + hexX + `  a\tb` + "\n", 2, `invalid escape sequence "\\t" in file name`, nil},
		{"lone trailing backslash", valid + `\` + hexX + `  ab\` + "\n", 2, "file name ends in a lone backslash", nil},
		{"backslash only", valid + "\\\n", 2, "expected a digest after the leading backslash", nil},

		// bsd tags
		{"md5 tag", "MD5 (hello.txt) = b1946ac92492d2347c6235b4d2611184\n", 1, `unsupported algorithm tag "MD5": only SHA256 and SHA512 are accepted`, nil},
		{"sha512 tag only", valid + "SHA512 (hello.txt) = " + strings.Repeat("e7", 64) + "\n", 2, `"hello.txt" is listed with SHA-512 only`, ErrNoSHA256},
		{"sha384 tag", "SHA384 (x) = " + strings.Repeat("e7", 48) + "\n", 1, `unsupported algorithm tag "SHA384"`, nil},
		{"sha512 tag with sha256 digest", valid + "SHA512 (x) = " + hexX + "\n", 2, "not a SHA-512 digest (64 hex digits); looks like SHA-256", nil},
		{"sha256 tag with sha512 digest", "SHA256 (x) = " + strings.Repeat("e7", 64) + "\n", 1, "not a SHA-256 digest (128 hex digits); looks like SHA-512", nil},
		{"blake2 tag", "BLAKE2b-256 (x) = " + hexX + "\n", 1, `unsupported algorithm tag "BLAKE2b-256"`, nil},
		{"lower-case tag", "sha256 (x) = " + hexX + "\n", 1, `unsupported algorithm tag "sha256"`, nil},
		{"sha256 tag with sha1 digest", "SHA256 (x) = f572d396fae9206628714fb2ce00f72e94f2258f\n", 1, "not a SHA-256 digest (40 hex digits)", nil},
		{"tag with non-hex digest", "SHA256 (x) = " + hexX[:63] + "z\n", 1, `invalid character "z" in digest`, nil},
		{"tag with trailing space", "SHA256 (x) = " + hexX + " \n", 1, `invalid character " " in digest`, nil},
		{"tag without digest", "SHA256 (x) = \n", 1, "missing digest", nil},
		{"tag without equals", "SHA256 (x) " + hexX + "\n", 1, "malformed tag line", nil},
		{"tag without closing paren", "SHA256 (x = " + hexX + "\n", 1, "malformed tag line", nil},
		{"openssl format", "SHA2-256(x)= " + hexX + "\n", 1, "expected a 64- or 128-hex-digit digest", nil},

		// duplicates
		{"duplicate same digest", valid + hexX + "  x\n" + valid, 3,
			`duplicate SHA-256 entry for name "ok.txt" (first listed on line 1, again on line 3)`, ErrDuplicate},
		{"duplicate different digest", "# header\n" + hexX + "  x\n\n" + hexHello + "  x\n", 4,
			`conflicting SHA-256 digests for name "x" (line 2 and line 4 differ)`, ErrConflict},
		{"duplicate text and binary", hexX + "  x\n" + hexX + " *x\n", 2, "first listed on line 1, again on line 2", ErrDuplicate},
		{"duplicate text and tag", hexX + "  x\nSHA256 (x) = " + hexX + "\n", 2, "first listed on line 1", ErrDuplicate},
		{"duplicate via escaping", hexX + `  a\b` + "\n" + `\` + hexX + `  a\\b` + "\n", 2, `duplicate SHA-256 entry for name "a\\b"`, ErrDuplicate},
		{"duplicate CRLF and LF", hexX + "  x\r\n" + hexX + "  x\n", 2, "first listed on line 1", ErrDuplicate},

		// whole file
		{"empty file", "", 0, "no checksum entries", ErrNoEntries},
		{"only comments and blanks", "# nothing here\n\n  \r\n#" + valid, 0, "no checksum entries", ErrNoEntries},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte(tt.input))
			require.Error(t, err)
			assert.Nil(t, f)
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, tt.line, pe.Line)
			assert.Contains(t, pe.Msg, tt.contains)
			assert.ErrorIs(t, err, ErrMalformed)
			assert.NotErrorIs(t, err, ErrTooLarge)
			if tt.is != nil {
				assert.ErrorIs(t, err, tt.is)
			} else {
				assert.NotErrorIs(t, err, ErrDuplicate)
				assert.NotErrorIs(t, err, ErrNoEntries)
				assert.NotErrorIs(t, err, ErrNoSHA256)
			}
			if tt.line > 0 {
				assert.True(t, strings.HasPrefix(err.Error(), fmt.Sprintf("checksum file: line %d: ", tt.line)), err.Error())
			}
			assertSafeMessage(t, err.Error())
		})
	}
}

func TestErrorMessagesAreBoundedAndEscaped(t *testing.T) {
	hostile := "\x1b[31m\u202eevil\x07" + strings.Repeat("A\x00\xff", 1000)
	inputs := []string{
		hostile + "\n",
		hexX + "  " + hostile + "\x00\n",
		hexX + "  " + hostile + "\n", // NUL in name
		// A duplicate echoes the name: worst-case escaping of 60 bytes.
		hexX + "  " + strings.Repeat("\xff", 100) + "\n" + hexX + "  " + strings.Repeat("\xff", 100) + "\n",
		hexX + "  " + strings.Repeat("\U0001F600", 40) + "\n" + hexX + "  " + strings.Repeat("\U0001F600", 40) + "\n",
		"SHA512" + strings.Repeat("X", 20) + " (" + hostile + ") = x\n",
		hexX + "\x1b" + hostile + "\n",
		`\` + hexX + `  \` + hostile + "\n",
	}
	for i, in := range inputs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			_, err := Parse([]byte(in))
			require.Error(t, err)
			msg := err.Error()
			assert.LessOrEqual(t, len(msg), 400, msg)
			assertSafeMessage(t, msg)
			assert.NotContains(t, msg, "\u202e")
		})
	}
}

// assertSafeMessage checks that msg is printable ASCII only.
func assertSafeMessage(t testing.TB, msg string) {
	t.Helper()
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; c < 0x20 || c > 0x7e {
			assert.Failf(t, "unsafe byte in error message", "byte %#x at %d in %q", c, i, msg)
			return
		}
	}
}

func TestParseSizeLimit(t *testing.T) {
	line := hexX + "  x\n"
	pad := MaxFileSize - len(line)

	t.Run("exactly MaxFileSize", func(t *testing.T) {
		data := []byte(line + "#" + strings.Repeat("p", pad-2) + "\n")
		require.Len(t, data, MaxFileSize)
		f, err := Parse(data)
		require.NoError(t, err)
		assert.Equal(t, 1, f.Len())
	})
	t.Run("one byte over", func(t *testing.T) {
		data := []byte(line + "#" + strings.Repeat("p", pad-1) + "\n")
		require.Len(t, data, MaxFileSize+1)
		f, err := Parse(data)
		assert.Nil(t, f)
		assert.ErrorIs(t, err, ErrTooLarge)
		assert.NotErrorIs(t, err, ErrMalformed)
		var pe *ParseError
		assert.False(t, errors.As(err, &pe))
	})
	t.Run("ParseReader stops reading", func(t *testing.T) {
		r := &countingReader{}
		f, err := ParseReader(r)
		assert.Nil(t, f)
		assert.ErrorIs(t, err, ErrTooLarge)
		assert.LessOrEqual(t, r.n, int64(MaxFileSize+1))
	})
	t.Run("ParseReader ok", func(t *testing.T) {
		f, err := ParseReader(strings.NewReader(realText))
		require.NoError(t, err)
		assert.Equal(t, 3, f.Len())
	})
	t.Run("ParseReader read error", func(t *testing.T) {
		boom := errors.New("boom")
		_, err := ParseReader(errReader{boom})
		assert.ErrorIs(t, err, boom)
	})
}

// countingReader yields an endless stream of '#' and counts bytes served.
type countingReader struct{ n int64 }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '#'
	}
	r.n += int64(len(p))
	return len(p), nil
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestLookup(t *testing.T) {
	dA := Digest(sha256.Sum256([]byte("a")))
	dB := Digest(sha256.Sum256([]byte("b")))
	input := dA.String() + "  ./only-dotted\n" +
		dA.String() + "  both\n" +
		dB.String() + "  ./both\n" +
		dA.String() + "  plain\n" +
		dB.String() + "  ././twice\n"
	f, err := Parse([]byte(input))
	require.NoError(t, err)
	require.Equal(t, 5, f.Len(), `"./both" and "both" are distinct entries`)

	tests := []struct {
		lookup   string
		wantOK   bool
		wantName string
		exactOK  bool
	}{
		{"./only-dotted", true, "./only-dotted", true},
		{"only-dotted", true, "./only-dotted", false}, // fallback to "./" form
		{"both", true, "both", true},                  // exact wins over "./both", whatever the order
		{"./both", true, "./both", true},
		{"plain", true, "plain", true},
		{"./plain", false, "", false}, // no reverse fallback
		{"twice", false, "", false},   // only a single "./" is tried
		{"./twice", false, "", false}, // "./" names are never extended
		{"././twice", true, "././twice", true},
		{"", false, "", false},
		{"/plain", false, "", false},
		{"Plain", false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.lookup, func(t *testing.T) {
			e, ok := f.Lookup(tt.lookup)
			assert.Equal(t, tt.wantOK, ok)
			assert.Equal(t, tt.wantName, e.Name)
			_, ok = f.LookupExact(tt.lookup)
			assert.Equal(t, tt.exactOK, ok)
		})
	}

	// Exact precedence does not depend on line order.
	rev, err := Parse([]byte(dB.String() + "  ./both\n" + dA.String() + "  both\n"))
	require.NoError(t, err)
	e, ok := rev.Lookup("both")
	require.True(t, ok)
	assert.Equal(t, dA, e.Digest)
	assert.Equal(t, 2, e.Line)

	// Entries returns a copy.
	es := f.Entries()
	es[0].Name = "mutated"
	assert.Equal(t, "./only-dotted", f.Entries()[0].Name)
}

func TestDigest(t *testing.T) {
	d, err := ParseDigest(hexHello)
	require.NoError(t, err)
	assert.Equal(t, dHello, d)
	assert.Equal(t, hexHello, d.String())

	up, err := ParseDigest(strings.ToUpper(hexHello))
	require.NoError(t, err)
	assert.Equal(t, dHello, up)
	assert.Equal(t, hexHello, up.String(), "String is lower-case")

	assert.Equal(t, strings.Repeat("0", 64), Digest{}.String())

	js, err := json.Marshal(map[string]Digest{"d": dHello})
	require.NoError(t, err)
	assert.JSONEq(t, `{"d":"`+hexHello+`"}`, string(js))
	var back map[string]Digest
	require.NoError(t, json.Unmarshal(js, &back))
	assert.Equal(t, dHello, back["d"])
	var into Digest
	assert.ErrorIs(t, into.UnmarshalText([]byte("abc")), ErrInvalidDigest)
	assert.Equal(t, Digest{}, into, "unchanged on error")

	bad := []struct {
		in, contains string
	}{
		{"", "missing digest"},
		{hexHello[:63], "not a SHA-256 digest (63 hex digits)"},
		{hexHello + "0", "not a SHA-256 digest (65 hex digits)"},
		{"f572d396fae9206628714fb2ce00f72e94f2258f", "not a SHA-256 digest (40 hex digits)"},
		{hexHello[:63] + "g", `invalid character "g"`},
		{" " + hexHello[:63], `invalid character " "`},
		{hexHello[:62] + "\n", `invalid character "\n"`},
		{"0x" + hexHello[:62], `invalid character "x"`},
	}
	for _, tt := range bad {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseDigest(tt.in)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidDigest)
			assert.Contains(t, err.Error(), tt.contains)
		})
	}
}

func TestEntryFormat(t *testing.T) {
	tests := []struct {
		e    Entry
		want string
	}{
		{Entry{Name: "hello.txt", Digest: dHello}, strings.TrimSuffix(lines(realText)[0], "\n")},
		{Entry{Name: "hello.txt", Digest: dHello, Binary: true}, strings.TrimSuffix(lines(realBinary)[0], "\n")},
		{Entry{Name: "a\nb\\c", Digest: dX}, `\` + hexX + `  a\nb\\c`},
		{Entry{Name: "cr\rx", Digest: dQ}, strings.Split(realEscaped, "\n")[1]},
		{Entry{Name: "a\nb\\c", Digest: dX, Binary: true}, strings.TrimSuffix(realEscapedBinary, "\n")},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.e.Format())
	}

	// Re-formatting a real file reproduces it byte for byte.
	for _, in := range []string{realText, realBinary, realEscaped, realEscapedBinary, realOddNames, realDotSlash} {
		f, err := Parse([]byte(in))
		require.NoError(t, err)
		var b strings.Builder
		for _, e := range f.Entries() {
			b.WriteString(e.Format() + "\n")
		}
		assert.Equal(t, in, b.String())
	}
}

func TestParseErrorUnwrap(t *testing.T) {
	plain := &ParseError{Line: 3, Msg: "x"}
	assert.Equal(t, ErrMalformed, plain.Unwrap())
	assert.Equal(t, "checksum file: line 3: x", plain.Error())
	dup := &ParseError{Line: 3, Msg: "x", Err: ErrDuplicate}
	assert.ErrorIs(t, dup, ErrDuplicate)
	assert.ErrorIs(t, dup, ErrMalformed)
	assert.NotErrorIs(t, dup, ErrNoEntries)
	whole := &ParseError{Msg: "no checksum entries", Err: ErrNoEntries}
	assert.Equal(t, "checksum file: no checksum entries", whole.Error())
	assert.ErrorIs(t, whole, ErrMalformed)
}

func benchmarkInput(n int) []byte {
	var b strings.Builder
	b.WriteString("# release checksums\n")
	for i := range n {
		d := Digest(sha256.Sum256([]byte(fmt.Sprint(i))))
		switch i % 10 {
		case 0:
			fmt.Fprintf(&b, "SHA256 (dist/pkg-%04d.tar.gz) = %s\n", i, d)
		case 1:
			fmt.Fprintf(&b, "%s *dist/pkg-%04d.bin\n", d, i)
		default:
			fmt.Fprintf(&b, "%s  dist/pkg-%04d.tar.gz\n", d, i)
		}
	}
	return []byte(b.String())
}

func BenchmarkParse(b *testing.B) {
	data := benchmarkInput(1000)
	f, err := Parse(data)
	require.NoError(b, err)
	require.Equal(b, 1000, f.Len())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
