// Package checksum parses the maintainers' signed checksum file, written in
// the format of GNU coreutils sha256sum, and looks up the SHA-256 digest
// listed for a given name.
//
// The input is treated as hostile. Parsing is strict and all-or-nothing:
// any malformed line makes Parse fail with a *ParseError that names the line,
// and no partial result is returned. A name may be listed only once; a
// repeated name is an error (ErrDuplicate) whether or not the digests agree,
// so there is never a "first one wins" or "last one wins" rule.
//
// # Accepted format
//
// Each line is one of
//
//	<64 hex digits><space><space><name>     text mode (sha256sum)
//	<64 hex digits><space>*<name>           binary mode (sha256sum -b)
//	SHA256 (<name>) = <64 hex digits>       BSD tag (sha256sum --tag)
//
// Hex digits may be upper or lower case. If a line starts with a backslash,
// the name is escaped as GNU sha256sum does it: "\\" stands for a backslash,
// "\n" for a newline and "\r" for a carriage return; any other escape is an
// error. Lines may end in "\n" or "\r\n" (one trailing "\r" is removed), the
// final newline may be missing, and empty lines, lines holding only spaces and
// tabs, and lines starting with "#" are skipped.
//
// Rejected: a digest of any length other than 64 hex digits (for example a
// SHA-1 or SHA-512 digest), non-hex characters, a missing separator, a single
// space between digest and name (not sha256sum output), whitespace before the
// digest, an empty name, a name containing a NUL byte or an unescaped carriage
// return, a name longer than MaxNameLen bytes, BSD tags for other algorithms
// ("MD5 (x) = ..."), a UTF-8 byte order mark, a file with no entries, and a
// file larger than MaxFileSize bytes (ErrTooLarge).
//
// # Names
//
// Names are kept exactly as listed, after unescaping: nothing is cleaned or
// normalised, so "./x", "x" and "a//b" are all distinct names, and "./x" and
// "x" may both be listed without being duplicates of each other. LookupExact
// matches the name byte for byte. Lookup does the same and, only when the
// name is absent and does not itself start with "./", also tries "./"+name,
// because `sha256sum ./*` writes names in that form; the returned
// Entry.Name says which form matched. An exact listing always takes
// precedence over the "./" form, independent of line order.
//
// Error messages quote at most 60 bytes of any line, escaped to printable
// ASCII, so they are safe to log.
package checksum

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

const (
	// MaxFileSize is the largest checksum file Parse accepts, in bytes.
	MaxFileSize = 4 << 20
	// MaxNameLen is the longest name accepted, in bytes after unescaping.
	MaxNameLen = 4096
	// maxEcho bounds how many bytes of hostile input an error message quotes.
	maxEcho = 60
)

var (
	// ErrMalformed is matched (errors.Is) by every *ParseError.
	ErrMalformed = errors.New("malformed checksum file")
	// ErrDuplicate is matched by the *ParseError for a name listed twice.
	// It wraps ErrMalformed, so such an error matches both.
	ErrDuplicate = fmt.Errorf("%w: duplicate entry", ErrMalformed)
	// ErrNoEntries is matched by the *ParseError for a file that lists no
	// entries at all. It wraps ErrMalformed.
	ErrNoEntries = fmt.Errorf("%w: no entries", ErrMalformed)
	// ErrTooLarge is returned (wrapped) for input over MaxFileSize bytes.
	// It is not a *ParseError and does not match ErrMalformed.
	ErrTooLarge = errors.New("checksum file too large")
	// ErrInvalidDigest is matched by errors from ParseDigest.
	ErrInvalidDigest = errors.New("invalid digest")
)

// Digest is a SHA-256 digest.
type Digest [32]byte

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
	d, msg := parseDigest([]byte(s))
	if msg != "" {
		return Digest{}, fmt.Errorf("%w: %s", ErrInvalidDigest, msg)
	}
	return d, nil
}

// Entry is one line of a checksum file.
type Entry struct {
	Name   string // file name as listed (unescaped)
	Digest Digest
	Binary bool // "*" marker; always false for BSD tag lines
	Line   int  // 1-based line in the file
}

// Format returns e as a sha256sum line without the trailing newline,
// escaping the name as GNU sha256sum does when it contains a backslash,
// newline or carriage return.
func (e Entry) Format() string {
	var b strings.Builder
	name := e.Name
	if strings.ContainsAny(name, "\\\n\r") {
		b.WriteByte('\\')
		name = nameEscaper.Replace(name)
	}
	b.WriteString(e.Digest.String())
	if e.Binary {
		b.WriteString(" *")
	} else {
		b.WriteString("  ")
	}
	b.WriteString(name)
	return b.String()
}

var nameEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`)

// File is a parsed checksum file. It is immutable and safe for concurrent use.
type File struct {
	entries []Entry
	index   map[string]int // name -> position in entries
}

// Len returns the number of entries.
func (f *File) Len() int { return len(f.entries) }

// Entries returns a copy of the entries, in file order.
func (f *File) Entries() []Entry {
	out := make([]Entry, len(f.entries))
	copy(out, f.entries)
	return out
}

// LookupExact returns the entry whose name is exactly name.
func (f *File) LookupExact(name string) (Entry, bool) {
	i, ok := f.index[name]
	if !ok {
		return Entry{}, false
	}
	return f.entries[i], true
}

// Lookup returns the entry listed for name. If name is not listed exactly
// and does not start with "./", the entry listed as "./"+name is returned
// instead, if any. Check Entry.Name to see which matched; use LookupExact to
// disable the fallback.
func (f *File) Lookup(name string) (Entry, bool) {
	if name == "" {
		return Entry{}, false
	}
	if e, ok := f.LookupExact(name); ok {
		return e, true
	}
	if strings.HasPrefix(name, "./") {
		return Entry{}, false
	}
	return f.LookupExact("./" + name)
}

// ParseError reports a malformed checksum file. Line is the 1-based line
// at fault, or 0 when the fault is with the file as a whole.
type ParseError struct {
	Line int
	Msg  string // short reason; any quoted input is bounded and escaped
	// Err is the sentinel the error matches, ErrDuplicate or ErrNoEntries;
	// nil means ErrMalformed. Every sentinel wraps ErrMalformed.
	Err error
}

func (e *ParseError) Error() string {
	if e.Line <= 0 {
		return "checksum file: " + e.Msg
	}
	return "checksum file: line " + strconv.Itoa(e.Line) + ": " + e.Msg
}

// Unwrap returns e.Err, or ErrMalformed if e.Err is nil.
func (e *ParseError) Unwrap() error {
	if e.Err == nil {
		return ErrMalformed
	}
	return e.Err
}

// ParseReader reads at most MaxFileSize+1 bytes from r and parses them,
// failing with ErrTooLarge rather than reading an over-long input to the end.
func ParseReader(r io.Reader) (*File, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading checksum file: %w", err)
	}
	return Parse(data)
}

// Parse reads a checksum file in GNU coreutils `sha256sum` format (see the
// package documentation). It fails with an error matching ErrTooLarge, or
// with a *ParseError (matching ErrMalformed) for the first fault found.
func Parse(data []byte) (*File, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(data), MaxFileSize)
	}
	// Size the index for the common case of one entry per ~80-byte line.
	f := &File{index: make(map[string]int, min(len(data)/80, 1<<16))}
	for lineNo := 1; len(data) > 0; lineNo++ {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if lineNo == 1 && bytes.HasPrefix(line, utf8BOM) {
			return nil, &ParseError{Line: 1, Msg: "file starts with a UTF-8 byte order mark"}
		}
		if isBlank(line) || line[0] == '#' {
			continue
		}
		e, msg := parseLine(line)
		if msg != "" {
			return nil, &ParseError{Line: lineNo, Msg: msg}
		}
		e.Line = lineNo
		if i, dup := f.index[e.Name]; dup {
			return nil, &ParseError{
				Line: lineNo,
				Msg: fmt.Sprintf("duplicate entry for name %s (first listed on line %d, again on line %d)",
					quote(e.Name), f.entries[i].Line, lineNo),
				Err: ErrDuplicate,
			}
		}
		f.index[e.Name] = len(f.entries)
		f.entries = append(f.entries, e)
	}
	if len(f.entries) == 0 {
		return nil, &ParseError{Msg: "no checksum entries", Err: ErrNoEntries}
	}
	return f, nil
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

const tagAlgorithm = "SHA256"

// parseLine parses one non-blank, non-comment line with its line ending
// removed. On failure it returns a short reason.
func parseLine(line []byte) (Entry, string) {
	escaped := line[0] == '\\'
	if escaped {
		line = line[1:]
	}
	if len(line) == 0 {
		return Entry{}, "expected a SHA-256 digest after the leading backslash"
	}
	if line[0] == ' ' || line[0] == '\t' {
		return Entry{}, "whitespace before the digest"
	}

	word := line
	if i := bytes.IndexByte(line, ' '); i >= 0 {
		word = line[:i]
	}
	if isAlgorithmName(word) && !isHex(word) && bytes.HasPrefix(line[len(word):], []byte(" (")) {
		return parseTag(line, word, escaped)
	}

	n := hexPrefixLen(line)
	switch {
	case n == 0:
		return Entry{}, fmt.Sprintf(
			"expected a 64-hex-digit SHA-256 digest or %q at the start of the line, found %s",
			"SHA256 (name) = digest", quote(line))
	case n < len(line) && line[n] != ' ':
		if n == 64 {
			return Entry{}, fmt.Sprintf(
				"missing separator after digest: expected two spaces or %q before the file name, found %s",
				" *", quote(line[n:n+1]))
		}
		return Entry{}, "invalid character " + quote(line[n:n+1]) + " in digest"
	case n != 64:
		return Entry{}, digestLenMsg(n)
	case n == len(line):
		return Entry{}, "missing separator and file name after digest"
	}
	var e Entry
	hex.Decode(e.Digest[:], line[:64]) // cannot fail: 64 hex digits checked above
	rest := line[65:]                  // line[64] == ' '
	if len(rest) == 0 {
		return Entry{}, "missing file name after digest"
	}
	switch rest[0] {
	case ' ':
	case '*':
		e.Binary = true
	default:
		return Entry{}, "a single space between digest and file name is not sha256sum format " +
			"(expected two spaces, or a space and \"*\")"
	}
	name, msg := parseName(rest[1:], escaped)
	if msg != "" {
		return Entry{}, msg
	}
	e.Name = name
	return e, ""
}

// parseTag parses a BSD-style line "ALG (name) = digest" (after any leading
// backslash); word is ALG.
func parseTag(line, word []byte, escaped bool) (Entry, string) {
	if string(word) != tagAlgorithm {
		return Entry{}, fmt.Sprintf("unsupported algorithm tag %s: only %s is accepted", quote(word), tagAlgorithm)
	}
	body := line[len(tagAlgorithm)+2:] // after "SHA256 ("
	i := bytes.LastIndex(body, []byte(") = "))
	if i < 0 {
		return Entry{}, fmt.Sprintf("malformed tag line: expected %q", "SHA256 (name) = digest")
	}
	var e Entry
	var msg string
	if e.Digest, msg = parseDigest(body[i+4:]); msg != "" {
		return Entry{}, msg
	}
	if e.Name, msg = parseName(body[:i], escaped); msg != "" {
		return Entry{}, msg
	}
	return e, ""
}

// parseName validates and, if escaped, unescapes a listed name.
func parseName(raw []byte, escaped bool) (string, string) {
	if len(raw) == 0 {
		return "", "empty file name"
	}
	if bytes.IndexByte(raw, '\r') >= 0 {
		return "", `file name contains a raw carriage return (sha256sum writes it escaped as \r)`
	}
	name := raw
	if escaped {
		var msg string
		if name, msg = unescape(raw); msg != "" {
			return "", msg
		}
	}
	if len(name) > MaxNameLen {
		return "", fmt.Sprintf("file name is %d bytes, over the %d-byte limit", len(name), MaxNameLen)
	}
	if bytes.IndexByte(name, 0) >= 0 {
		return "", "file name contains a NUL byte (sha256sum -z output is not supported)"
	}
	return string(name), ""
}

// unescape undoes GNU sha256sum name escaping: \\, \n and \r.
func unescape(s []byte) ([]byte, string) {
	if bytes.IndexByte(s, '\\') < 0 {
		return s, ""
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i+1 == len(s) {
			return nil, "file name ends in a lone backslash"
		}
		i++
		switch s[i] {
		case '\\':
			out = append(out, '\\')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		default:
			return nil, "invalid escape sequence " + quote(s[i-1:i+1]) + ` in file name (only \\, \n and \r are allowed)`
		}
	}
	return out, ""
}

// parseDigest parses a token that must be exactly 64 hex digits.
func parseDigest(tok []byte) (Digest, string) {
	var d Digest
	if len(tok) == 0 {
		return d, "missing digest"
	}
	if n := hexPrefixLen(tok); n < len(tok) {
		return d, "invalid character " + quote(tok[n:n+1]) + " in digest"
	}
	if len(tok) != 64 {
		return d, digestLenMsg(len(tok))
	}
	hex.Decode(d[:], tok) // cannot fail: checked above
	return d, ""
}

func digestLenMsg(n int) string {
	msg := fmt.Sprintf("not a SHA-256 digest (%d hex digits)", n)
	switch n {
	case 32:
		msg += "; looks like MD5"
	case 40:
		msg += "; looks like SHA-1"
	case 56:
		msg += "; looks like SHA-224"
	case 96:
		msg += "; looks like SHA-384"
	case 128:
		msg += "; looks like SHA-512"
	}
	return msg
}

func hexPrefixLen(b []byte) int {
	for i, c := range b {
		if !isHexDigit(c) {
			return i
		}
	}
	return len(b)
}

func isHex(b []byte) bool { return hexPrefixLen(b) == len(b) }

func isHexDigit(c byte) bool { return hexDigits[c] }

var hexDigits = func() (t [256]bool) {
	for _, c := range "0123456789abcdefABCDEF" {
		t[c] = true
	}
	return t
}()

// isAlgorithmName reports whether b looks like a BSD tag algorithm name such
// as MD5, SHA256 or BLAKE2b-256.
func isAlgorithmName(b []byte) bool {
	if len(b) == 0 || len(b) > 32 {
		return false
	}
	for _, c := range b {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func isBlank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' {
			return false
		}
	}
	return true
}

// quote returns at most maxEcho bytes of s as a Go string literal using only
// printable ASCII, with "..." appended if s was cut.
func quote[T ~string | ~[]byte](s T) string {
	if len(s) > maxEcho {
		return strconv.QuoteToASCII(string(s[:maxEcho])) + "..."
	}
	return strconv.QuoteToASCII(string(s))
}
