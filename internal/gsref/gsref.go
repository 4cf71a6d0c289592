// Package gsref is tamperguard's one way to name a Cloud Storage object: ObjectRef, with one
// parser (gs://BUCKET/OBJECT[#GENERATION]), one printer, and one set of name rules, the
// ones Cloud Storage itself enforces. The configuration, the event decoder, the storage
// adapter and the CLI all use it, so that a name one of them accepts is not refused by
// another.
package gsref

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ObjectRef names an object in Cloud Storage, or one generation of it.
type ObjectRef struct {
	Bucket string
	Object string
	// Generation is the generation named; 0 names none (the live one, where it matters).
	Generation int64
}

// Scheme starts every printed and parsed reference.
const Scheme = "gs://"

// ErrSyntax: the text is not gs://BUCKET/OBJECT[#GENERATION] at all.
var ErrSyntax = errors.New("want gs://BUCKET/OBJECT[#GENERATION]")

// Parse reads gs://BUCKET/OBJECT[#GENERATION] and checks both names against Cloud Storage's
// rules. A trailing '#' and decimal digits naming a positive number are the generation
// (so an object whose name ends that way can only be named with its generation); any
// other '#' is part of the object's name. Errors quote s; a malformed text is ErrSyntax, a
// name that cannot exist is a *NameError.
func Parse(s string) (ObjectRef, error) {
	rest, ok := strings.CutPrefix(s, Scheme)
	if !ok {
		return ObjectRef{}, fmt.Errorf("%s: %w", quote(s), ErrSyntax)
	}
	bucket, object, ok := strings.Cut(rest, "/")
	if !ok || bucket == "" || object == "" {
		return ObjectRef{}, fmt.Errorf("%s: %w", quote(s), ErrSyntax)
	}
	r := ObjectRef{Bucket: bucket, Object: object}
	if i := strings.LastIndexByte(object, '#'); i >= 0 && isDigits(object[i+1:]) {
		if g, err := strconv.ParseInt(object[i+1:], 10, 64); err == nil && g > 0 {
			r.Object, r.Generation = object[:i], g
		}
	}
	if err := r.Validate(); err != nil {
		return ObjectRef{}, fmt.Errorf("%s: %w", quote(s), err)
	}
	return r, nil
}

// Validate checks the bucket and object names against Cloud Storage's rules, and that the
// generation is not negative.
func (r ObjectRef) Validate() error {
	if err := CheckBucket(r.Bucket); err != nil {
		return err
	}
	if err := CheckObject(r.Object); err != nil {
		return err
	}
	if r.Generation < 0 {
		return fmt.Errorf("generation %d is negative", r.Generation)
	}
	return nil
}

// String names the object for people: gs://BUCKET/OBJECT, with #GENERATION when one is
// named. A name holding anything unprintable (control or format characters, invalid UTF-8)
// is quoted, as Go quotes strings, so that it cannot forge a log line or drive a terminal;
// so is a bucket name made of other characters than bucket names allow.
func (r ObjectRef) String() string { return r.print(false) }

// Format prints r as String does for %s and %v. %q always quotes the object name, for
// messages about hostile or odd names, where trailing spaces and look-alike characters
// matter: gs://bucket/"name"#12.
func (r ObjectRef) Format(f fmt.State, verb rune) {
	_, _ = f.Write([]byte(r.print(verb == 'q')))
}

func (r ObjectRef) print(quoteObject bool) string {
	var b strings.Builder
	b.WriteString(Scheme)
	if bucketChars(r.Bucket) {
		b.WriteString(r.Bucket)
	} else {
		b.WriteString(strconv.Quote(r.Bucket))
	}
	b.WriteByte('/')
	if quoteObject || !printable(r.Object) {
		b.WriteString(strconv.Quote(r.Object))
	} else {
		b.WriteString(r.Object)
	}
	if r.Generation != 0 {
		b.WriteByte('#')
		b.WriteString(strconv.FormatInt(r.Generation, 10))
	}
	return b.String()
}

func printable(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// maxQuoted bounds how much of a hostile name goes into a message.
const maxQuoted = 200

// quote renders a hostile name for a message: clipped on a rune boundary, Go-quoted (no
// control character and no invalid UTF-8 survives).
func quote(s string) string {
	if len(s) > maxQuoted {
		cut := maxQuoted
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strconv.Quote(s)
}
