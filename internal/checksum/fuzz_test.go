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
			if e.Line <= prevLine {
				t.Fatalf("line %d after %d", e.Line, prevLine)
			}
			prevLine = e.Line
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
			want.Line = i + 1
			if got[i] != want {
				t.Fatalf("re-parse entry %d = %+v, want %+v", i, got[i], want)
			}
		}
	})
}
