package checksum

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		realText, realBinary, realTag, realEscaped, realEscapedBinary, realEscapedTag,
		realOddNames, realOddTag, realDotSlash,
		strings.ReplaceAll(realText, "\n", "\r\n"),
		"# c\n\n" + realBinary,
		hexX + "  x\n" + hexX + "  x\n",
		hexX + " x\n",
		"MD5 (x) = b1946ac92492d2347c6235b4d2611184\n",
		`\` + hexX + `  a\tb`,
		"SHA256 (x) = \n",
		"\xef\xbb\xbf" + realText,
		"",
	} {
		f.Add([]byte(s))
	}
	for _, s := range sha512Seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			if file != nil {
				t.Fatal("non-nil File with error")
			}
			var pe *ParseError
			switch {
			case errors.Is(err, ErrTooLarge):
			case errors.As(err, &pe):
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("ParseError does not match ErrMalformed: %v", err)
				}
				if pe.Line < 0 || pe.Line > bytes.Count(data, []byte("\n"))+1 {
					t.Fatalf("line %d out of range: %v", pe.Line, err)
				}
			default:
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			msg := err.Error()
			if len(msg) > 400 {
				t.Fatalf("error message too long (%d bytes): %q", len(msg), msg)
			}
			for i := 0; i < len(msg); i++ {
				if c := msg[i]; c < 0x20 || c > 0x7e {
					t.Fatalf("unsafe byte %#x in error message %q", c, msg)
				}
			}
			return
		}

		entries := file.Entries()
		if len(entries) == 0 || len(entries) != file.Len() {
			t.Fatalf("Len %d, %d entries", file.Len(), len(entries))
		}
		prevLine := 0
		var formatted strings.Builder
		for _, e := range entries {
			s := e.Digest.String()
			if len(s) != 64 || strings.Trim(s, "0123456789abcdef") != "" {
				t.Fatalf("Digest.String() = %q", s)
			}
			if d, err := ParseDigest(s); err != nil || d != e.Digest {
				t.Fatalf("ParseDigest(%q) = %v, %v", s, d, err)
			}
			if e.Name == "" || len(e.Name) > MaxNameLen || strings.IndexByte(e.Name, 0) >= 0 {
				t.Fatalf("bad name %q", e.Name)
			}
			// Entries come in the order their names first appear; an entry's Line is
			// its strongest listing's, which may come after the next entry's first line.
			first := e.Line
			if !e.Weaker.Sum.IsZero() {
				first = min(first, e.Weaker.Line)
			}
			if first <= prevLine {
				t.Fatalf("entry first listed on line %d after %d", first, prevLine)
			}
			prevLine = first
			if got, ok := file.LookupExact(e.Name); !ok || got != e {
				t.Fatalf("LookupExact(%q) = %+v, %v; want %+v", e.Name, got, ok, e)
			}
			if got, ok := file.Lookup(e.Name); !ok || got != e {
				t.Fatalf("Lookup(%q) = %+v, %v; want %+v", e.Name, got, ok, e)
			}
			formatted.WriteString(e.Format())
			formatted.WriteByte('\n')
		}

		// Formatting the entries and parsing again gives the same entries.
		if formatted.Len() > MaxFileSize {
			return
		}
		again, err := Parse([]byte(formatted.String()))
		if err != nil {
			t.Fatalf("re-parse of formatted entries: %v\n%q", err, formatted.String())
		}
		got := again.Entries()
		if len(got) != len(entries) {
			t.Fatalf("re-parse: %d entries, want %d", len(got), len(entries))
		}
		for i := range got {
			want := entries[i]
			g := got[i]
			if g.Name != want.Name || g.Sum != want.Sum || g.Digest != want.Digest || g.Binary != want.Binary ||
				g.Weaker.Sum != want.Weaker.Sum || g.Weaker.Binary != want.Weaker.Binary {
				t.Fatalf("re-parse entry %d = %+v, want %+v", i, got[i], want)
			}
		}
	})
}

var sha512Seeds = []string{
	real512Text, real512Binary, real512Tag,
	realText + real512Text,
	real512Tag + lines(realText)[0],
	real512Tag + real512Tag,
	real512Tag + strings.Repeat("e7", 64) + "  hello.txt\n",
	"SHA512 (x) = " + hexX + "\n",
	"SHA384 (x) = " + strings.Repeat("e7", 48) + "\n",
	strings.Repeat("e7", 48) + "  x\n",
	`\` + strings.Repeat("E7", 64) + ` *a\nb`,
}

// FuzzParseAll: the same properties as FuzzParse for files that may list
// SHA-512 alone, plus: every entry's Sum is its strongest listing, Digest is set
// exactly when a SHA-256 is listed, and formatting all entries parses back to
// the same digests.
func FuzzParseAll(f *testing.F) {
	for _, s := range append([]string{realText, realBinary, realTag, realEscapedTag, realOddTag, realDotSlash}, sha512Seeds...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseAll(data)
		if err != nil {
			if file != nil {
				t.Fatal("non-nil File with error")
			}
			var pe *ParseError
			if !errors.Is(err, ErrTooLarge) && (!errors.As(err, &pe) || !errors.Is(err, ErrMalformed)) {
				t.Fatalf("unexpected error %T: %v", err, err)
			}
			if len(err.Error()) > 400 {
				t.Fatalf("error message too long: %q", err.Error())
			}
			return
		}
		var formatted strings.Builder
		for _, e := range file.Entries() {
			if !e.Sum.Algorithm().Valid() || len(e.Sum.String()) != 2*e.Sum.Algorithm().Size() {
				t.Fatalf("entry %q: bad Sum %v", e.Name, e.Sum)
			}
			if !e.Weaker.Sum.IsZero() && e.Weaker.Sum.Algorithm() >= e.Sum.Algorithm() {
				t.Fatalf("entry %q: Sum %s is not the strongest (also %s)", e.Name, e.Sum.Label(), e.Weaker.Sum.Label())
			}
			if s256, ok := e.Listed(SHA256); ok != e.HasSHA256() || (ok && s256 != e.Digest.Sum()) || (!ok && e.Digest != Digest{}) {
				t.Fatalf("entry %q: Digest %s does not match its SHA-256 listing", e.Name, e.Digest)
			}
			formatted.WriteString(e.Format())
			formatted.WriteByte('\n')
		}
		if formatted.Len() > MaxFileSize {
			return
		}
		again, err := ParseAll([]byte(formatted.String()))
		if err != nil {
			t.Fatalf("re-parse: %v\n%q", err, formatted.String())
		}
		for _, e := range file.Entries() {
			g, ok := again.LookupExact(e.Name)
			if !ok || g.Sum != e.Sum || g.Weaker.Sum != e.Weaker.Sum || g.Digest != e.Digest {
				t.Fatalf("re-parse of %q: %+v, want %+v", e.Name, g, e)
			}
		}
	})
}
