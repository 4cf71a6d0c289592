// Package checksum parses the maintainers' signed checksum file, written in
// the formats of GNU coreutils sha256sum and sha512sum (plain, binary and
// --tag/BSD lines, mixed in one file), and looks up the digest listed for a
// given name.
//
// The input is treated as hostile. Parsing is strict and all-or-nothing:
// any malformed line makes Parse fail with a *ParseError that names the line,
// and no partial result is returned.
//
// # Accepted format
//
// Each line is one of
//
//	<64 or 128 hex digits><space><space><name>     text mode (sha256sum, sha512sum)
//	<64 or 128 hex digits><space>*<name>           binary mode (-b)
//	SHA256 (<name>) = <64 hex digits>              BSD tag (sha256sum --tag, BSD sha256)
//	SHA512 (<name>) = <128 hex digits>             BSD tag (sha512sum --tag, BSD sha512)
//
// An untagged digest's algorithm is told by its length: 64 hex digits are
// SHA-256, 128 are SHA-512; any other length is an error (a SHA-1, MD5 or
// SHA-384 digest is never taken for something else). A tag's digest must have
// its algorithm's length. Hex digits may be upper or lower case. If a line
// starts with a backslash, the name is escaped as GNU coreutils does it: "\\"
// stands for a backslash, "\n" for a newline and "\r" for a carriage return;
// any other escape is an error. Lines may end in "\n" or "\r\n" (one trailing
// "\r" is removed), the final newline may be missing, and empty lines, lines
// holding only spaces and tabs, and lines starting with "#" are skipped.
//
// Rejected: a digest of a length no accepted algorithm has, non-hex
// characters, a missing separator, a single space between digest and name,
// whitespace before the digest, an empty name, a name containing a NUL byte or
// an unescaped carriage return, a name longer than MaxNameLen bytes, BSD tags
// for other algorithms ("MD5 (x) = ..."), a UTF-8 byte order mark, a file with
// no entries, and a file larger than MaxFileSize bytes (ErrTooLarge).
//
// # One name, several digests
//
// A name may be listed once per algorithm: a file may give both a SHA-256 and a
// SHA-512 line for the same name (as projects that publish both SHA256SUMS and
// SHA512SUMS sometimes merge them). The entry then carries both, and its Sum is
// the strongest one (SHA-512 over SHA-256): that is the digest a caller
// compares. Digests of different algorithms cannot be checked against each
// other without the file itself, so "the digests of an entry disagree" is
// defined as what can be detected from the text: the same name listed twice
// with the same algorithm. That is an error whether or not the two values are
// equal (ErrDuplicate; ErrConflict, which also matches ErrDuplicate, when they
// differ), so there is never a "first one wins" or "last one wins" rule.
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
// # Parse and ParseAll
//
// Parse requires a SHA-256 digest for every entry, so that Entry.Digest is
// always set: it is for callers that still compare SHA-256 only. ParseAll also
// accepts entries listed with SHA-512 alone; its callers compare Entry.Sum,
// hashing with NewHash(Entry.Sum.Algorithm()).
//
// Error messages quote at most 60 bytes of any line, escaped to printable
// ASCII, so they are safe to log.
package checksum

import (
	"bytes"
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
	// ErrDuplicate is matched by the *ParseError for a name listed twice with
	// the same algorithm. It wraps ErrMalformed, so such an error matches both.
	ErrDuplicate = fmt.Errorf("%w: duplicate entry", ErrMalformed)
	// ErrConflict is matched by the *ParseError for a name listed twice with
	// the same algorithm and different digests: the file contradicts itself.
	// It wraps ErrDuplicate.
	ErrConflict = fmt.Errorf("%w: conflicting digests", ErrDuplicate)
	// ErrNoEntries is matched by the *ParseError for a file that lists no
	// entries at all. It wraps ErrMalformed.
	ErrNoEntries = fmt.Errorf("%w: no entries", ErrMalformed)
	// ErrNoSHA256 is matched by the *ParseError from Parse for an entry listed
	// with SHA-512 only (ParseAll accepts it). It wraps ErrMalformed.
	ErrNoSHA256 = fmt.Errorf("%w: entry without a SHA-256 digest", ErrMalformed)
	// ErrTooLarge is returned (wrapped) for input over MaxFileSize bytes.
	// It is not a *ParseError and does not match ErrMalformed.
	ErrTooLarge = errors.New("checksum file too large")
	// ErrInvalidDigest is matched by errors from ParseDigest and ParseSum.
	ErrInvalidDigest = errors.New("invalid digest")
)

// Listing is one line's digest for a name.
type Listing struct {
	Sum    Sum
	Binary bool // "*" marker; always false for BSD tag lines
	Line   int  // 1-based line in the file
}

// Entry is what a checksum file lists for one name: one line, or one line per
// algorithm.
type Entry struct {
	Name string // file name as listed (unescaped)
	// Sum is the strongest digest listed for Name: the one a caller compares,
	// hashing with NewHash(Sum.Algorithm()).
	Sum Sum
	// Digest is the SHA-256 digest listed for Name, whether or not it is the
	// strongest; zero when Name is listed with SHA-512 only (never with Parse,
	// which requires a SHA-256 for every entry).
	Digest Digest
	Binary bool // "*" marker on Sum's line; always false for BSD tag lines
	Line   int  // 1-based line of Sum's listing
	// Weaker is the other listing when Name is listed with both algorithms (the
	// SHA-256 line when Sum is SHA-512); its zero value (Weaker.Sum.IsZero())
	// means one listing only.
	Weaker Listing
}

// HasSHA256 reports whether a SHA-256 digest is listed for the entry (Digest is set).
func (e Entry) HasSHA256() bool {
	return e.Sum.Algorithm() == SHA256 || e.Weaker.Sum.Algorithm() == SHA256 ||
		(e.Sum.IsZero() && e.Digest != Digest{})
}

// Listed returns the digest listed for the entry with alg, if any.
func (e Entry) Listed(alg Algorithm) (Sum, bool) {
	for _, l := range e.listings() {
		if l.Sum.Algorithm() == alg {
			return l.Sum, true
		}
	}
	return Sum{}, false
}

// listings returns the entry's listings in line order. An Entry built by hand
// with only Digest set counts as one SHA-256 listing.
func (e Entry) listings() []Listing {
	main := Listing{Sum: e.Sum, Binary: e.Binary, Line: e.Line}
	if main.Sum.IsZero() {
		main.Sum = e.Digest.Sum()
	}
	if e.Weaker.Sum.IsZero() {
		return []Listing{main}
	}
	if e.Weaker.Line > main.Line {
		return []Listing{main, e.Weaker}
	}
	return []Listing{e.Weaker, main}
}

// Format returns e as sha256sum/sha512sum lines (one per listing, in line
// order, joined by "\n") without the trailing newline, escaping the name as
// GNU coreutils does when it contains a backslash, newline or carriage return.
func (e Entry) Format() string {
	var b strings.Builder
	for i, l := range e.listings() {
		if i > 0 {
			b.WriteByte('\n')
		}
		name := e.Name
		if strings.ContainsAny(name, "\\\n\r") {
			b.WriteByte('\\')
			name = nameEscaper.Replace(name)
		}
		b.WriteString(l.Sum.String())
		if l.Binary {
			b.WriteString(" *")
		} else {
			b.WriteString("  ")
		}
		b.WriteString(name)
	}
	return b.String()
}

var nameEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`)

// File is a parsed checksum file. It is immutable and safe for concurrent use.
type File struct {
	entries []Entry
	index   map[string]int // name -> position in entries
}

// Len returns the number of entries (names).
func (f *File) Len() int { return len(f.entries) }

// Entries returns a copy of the entries, in the order their names first appear.
func (f *File) Entries() []Entry {
	out := make([]Entry, len(f.entries))
	copy(out, f.entries)
	return out
}

// Algorithms lists the algorithms the file uses, weakest first.
func (f *File) Algorithms() []Algorithm {
	var seen [SHA512 + 1]bool
	for _, e := range f.entries {
		for _, l := range e.listings() {
			seen[l.Sum.Algorithm()] = true
		}
	}
	var out []Algorithm
	for _, a := range algorithms {
		if seen[a] {
			out = append(out, a)
		}
	}
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
	// Err is the sentinel the error matches (ErrDuplicate, ErrConflict,
	// ErrNoEntries, ErrNoSHA256); nil means ErrMalformed. Every sentinel wraps
	// ErrMalformed.
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

// ParseReader reads at most MaxFileSize+1 bytes from r and parses them with
// Parse, failing with ErrTooLarge rather than reading an over-long input to the end.
func ParseReader(r io.Reader) (*File, error) {
	data, err := readBounded(r)
	if err != nil {
		return nil, err
	}
	return Parse(data)
}

// ParseAllReader is ParseReader for ParseAll.
func ParseAllReader(r io.Reader) (*File, error) {
	data, err := readBounded(r)
	if err != nil {
		return nil, err
	}
	return ParseAll(data)
}

func readBounded(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading checksum file: %w", err)
	}
	return data, nil
}

// Parse reads a checksum file (see the package documentation) and requires a
// SHA-256 digest for every entry, so that Entry.Digest is always set; an entry
// listed with SHA-512 only is an error matching ErrNoSHA256. It fails with an
// error matching ErrTooLarge, or with a *ParseError (matching ErrMalformed) for
// the first fault found.
func Parse(data []byte) (*File, error) {
	f, err := ParseAll(data)
	if err != nil {
		return nil, err
	}
	for _, e := range f.entries {
		if !e.HasSHA256() {
			return nil, &ParseError{
				Line: e.Line,
				Msg:  fmt.Sprintf("%s is listed with SHA-512 only; this release source compares SHA-256 digests", quote(e.Name)),
				Err:  ErrNoSHA256,
			}
		}
	}
	return f, nil
}

// ParseAll reads a checksum file (see the package documentation); entries may
// be listed with SHA-256, SHA-512 or both, and Entry.Sum is the strongest. It
// fails with an error matching ErrTooLarge, or with a *ParseError (matching
// ErrMalformed) for the first fault found.
func ParseAll(data []byte) (*File, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(data), MaxFileSize)
	}
	// Size for one entry per line (at most: blank lines, comments and a second
	// algorithm's line take no entry of their own), so nothing grows while parsing.
	// The shortest entry line is 64 hex digits, two spaces and a one-byte name.
	lines := min(bytes.Count(data, []byte{'\n'})+1, len(data)/67+1, 1<<16)
	f := &File{index: make(map[string]int, lines), entries: make([]Entry, 0, lines)}
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
		name, l, msg := parseLine(line)
		if msg != "" {
			return nil, &ParseError{Line: lineNo, Msg: msg}
		}
		l.Line = lineNo
		if err := f.add(name, l); err != nil {
			return nil, err
		}
	}
	if len(f.entries) == 0 {
		return nil, &ParseError{Msg: "no checksum entries", Err: ErrNoEntries}
	}
	return f, nil
}

// add records one listing for name, merging it with the name's listing of
// another algorithm; the same algorithm twice is refused.
func (f *File) add(name string, l Listing) error {
	i, seen := f.index[name]
	if !seen {
		e := Entry{Name: name, Sum: l.Sum, Binary: l.Binary, Line: l.Line}
		e.Digest, _ = l.Sum.SHA256()
		f.index[name] = len(f.entries)
		f.entries = append(f.entries, e)
		return nil
	}
	e := &f.entries[i]
	for _, prev := range e.listings() {
		if prev.Sum.Algorithm() != l.Sum.Algorithm() {
			continue
		}
		if prev.Sum != l.Sum {
			return &ParseError{
				Line: l.Line,
				Msg: fmt.Sprintf("conflicting %s digests for name %s (line %d and line %d differ)",
					l.Sum.Algorithm().Name(), quote(name), prev.Line, l.Line),
				Err: ErrConflict,
			}
		}
		return &ParseError{
			Line: l.Line,
			Msg: fmt.Sprintf("duplicate %s entry for name %s (first listed on line %d, again on line %d)",
				l.Sum.Algorithm().Name(), quote(name), prev.Line, l.Line),
			Err: ErrDuplicate,
		}
	}
	// Two algorithms: the stronger one becomes Sum, the other Weaker.
	main := Listing{Sum: e.Sum, Binary: e.Binary, Line: e.Line}
	if l.Sum.Algorithm() > main.Sum.Algorithm() {
		main, l = l, main
	}
	e.Sum, e.Binary, e.Line, e.Weaker = main.Sum, main.Binary, main.Line, l
	if d, ok := l.Sum.SHA256(); ok {
		e.Digest = d
	}
	return nil
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// tagAlgorithms are the BSD tag names accepted.
var tagAlgorithms = map[string]Algorithm{"SHA256": SHA256, "SHA512": SHA512}

// parseLine parses one non-blank, non-comment line with its line ending
// removed. On failure it returns a short reason.
func parseLine(line []byte) (string, Listing, string) {
	escaped := line[0] == '\\'
	if escaped {
		line = line[1:]
	}
	if len(line) == 0 {
		return "", Listing{}, "expected a digest after the leading backslash"
	}
	if line[0] == ' ' || line[0] == '\t' {
		return "", Listing{}, "whitespace before the digest"
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
		return "", Listing{}, fmt.Sprintf(
			"expected a 64- or 128-hex-digit digest or %q at the start of the line, found %s",
			"SHA256 (name) = digest", quote(line))
	case n < len(line) && line[n] != ' ':
		if n == 64 || n == 128 {
			return "", Listing{}, fmt.Sprintf(
				"missing separator after digest: expected two spaces or %q before the file name, found %s",
				" *", quote(line[n:n+1]))
		}
		return "", Listing{}, "invalid character " + quote(line[n:n+1]) + " in digest"
	case n != 64 && n != 128:
		return "", Listing{}, digestLenMsg(n, 0)
	case n == len(line):
		return "", Listing{}, "missing separator and file name after digest"
	}
	alg := SHA256
	if n == 128 {
		alg = SHA512
	}
	var l Listing
	l.Sum, _ = parseHexDigest(line[:n], alg) // cannot fail: n hex digits checked above
	rest := line[n+1:]                       // line[n] == ' '
	if len(rest) == 0 {
		return "", Listing{}, "missing file name after digest"
	}
	switch rest[0] {
	case ' ':
	case '*':
		l.Binary = true
	default:
		return "", Listing{}, "a single space between digest and file name is not sha256sum/sha512sum format " +
			"(expected two spaces, or a space and \"*\")"
	}
	name, msg := parseName(rest[1:], escaped)
	if msg != "" {
		return "", Listing{}, msg
	}
	return name, l, ""
}

// parseTag parses a BSD-style line "ALG (name) = digest" (after any leading
// backslash); word is ALG.
func parseTag(line, word []byte, escaped bool) (string, Listing, string) {
	alg, ok := tagAlgorithms[string(word)]
	if !ok {
		return "", Listing{}, fmt.Sprintf("unsupported algorithm tag %s: only SHA256 and SHA512 are accepted", quote(word))
	}
	body := line[len(word)+2:] // after "ALG ("
	i := bytes.LastIndex(body, []byte(") = "))
	if i < 0 {
		return "", Listing{}, fmt.Sprintf("malformed tag line: expected %q", string(word)+" (name) = digest")
	}
	var l Listing
	var msg string
	if l.Sum, msg = parseHexDigest(body[i+4:], alg); msg != "" {
		return "", Listing{}, msg
	}
	name, msg := parseName(body[:i], escaped)
	if msg != "" {
		return "", Listing{}, msg
	}
	return name, l, ""
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

// unescape undoes GNU coreutils name escaping: \\, \n and \r.
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
