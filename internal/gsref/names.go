package gsref

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Cloud Storage's naming rules (https://cloud.google.com/storage/docs/buckets#naming and
// https://cloud.google.com/storage/docs/objects#naming). A name that breaks them cannot
// exist, so it can only come from a typo, a forged event or a bug.
const (
	// MaxObjectName is the longest object name, in bytes of UTF-8.
	MaxObjectName = 1024
	// MinBucketName and MaxBucketName bound a bucket name; a name without dots is at most
	// MaxBucketPart long, and so is each dot-separated part of one with dots.
	MinBucketName = 3
	MaxBucketName = 222
	MaxBucketPart = 63
	// acmeChallenge is a prefix no object name may start with.
	acmeChallenge = ".well-known/acme-challenge/"
)

// ErrInvalidName: a bucket or object name that Cloud Storage cannot hold. Every *NameError
// is one.
var ErrInvalidName = errors.New("not a Cloud Storage name")

// NameError says which rule a bucket or object name breaks.
type NameError struct {
	Kind string // "bucket" or "object"
	Name string
	// Problem is the rule broken, e.g. "must start and end with a letter or digit".
	Problem string
	// msg is the whole message, when the name is better left out of it (too long to show).
	msg string
}

func (e *NameError) Error() string {
	if e.msg != "" {
		return e.msg
	}
	return fmt.Sprintf("%s is not a %s name (%s)", quote(e.Name), e.Kind, e.Problem)
}

// Is makes every NameError match ErrInvalidName.
func (e *NameError) Is(target error) bool { return target == ErrInvalidName }

// CheckBucket applies Cloud Storage's bucket naming rules: lowercase letters, digits, '-',
// '_' and '.'; starting and ending with a letter or digit; 3 to 63 characters, or up to 222
// with dots, each dot-separated part at most 63 and none empty; not an IP address in
// dotted-decimal notation; not starting with "goog" nor containing "google". (The rule
// against close misspellings of "google" is Cloud Storage's judgement, not checked here.)
func CheckBucket(b string) error {
	bad := func(problem string, args ...any) error {
		return &NameError{Kind: "bucket", Name: b, Problem: fmt.Sprintf(problem, args...)}
	}
	if b == "" {
		return bad("empty")
	}
	for _, r := range b {
		if r >= utf8.RuneSelf || !(lowerAlnum(byte(r)) || r == '-' || r == '_' || r == '.') {
			return bad("character %q", r)
		}
	}
	if len(b) < MinBucketName || len(b) > MaxBucketName {
		return bad("%d to %d characters", MinBucketName, MaxBucketName)
	}
	if !lowerAlnum(b[0]) || !lowerAlnum(b[len(b)-1]) {
		return bad("must start and end with a letter or digit")
	}
	if !strings.Contains(b, ".") && len(b) > MaxBucketPart {
		return bad("over %d characters without dots", MaxBucketPart)
	}
	parts := strings.Split(b, ".")
	for _, part := range parts {
		switch {
		case part == "":
			return bad("two dots in a row")
		case len(part) > MaxBucketPart:
			return bad("a part is over %d characters", MaxBucketPart)
		}
	}
	if dottedDecimal(parts) {
		return bad("an IP address")
	}
	if strings.HasPrefix(b, "goog") {
		return bad(`starts with "goog"`)
	}
	if strings.Contains(b, "google") {
		return bad(`contains "google"`)
	}
	return nil
}

func lowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// dottedDecimal reports whether parts are those of an IPv4 address: four numbers 0 to 255.
func dottedDecimal(parts []string) bool {
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if !isDigits(p) || len(p) > 3 {
			return false
		}
		n := 0
		for i := 0; i < len(p); i++ {
			n = n*10 + int(p[i]-'0')
		}
		if n > 255 {
			return false
		}
	}
	return true
}

// CheckObject applies Cloud Storage's object naming rules: 1 to 1024 bytes of valid UTF-8,
// no carriage return or line feed, not "." or "..", not starting with
// ".well-known/acme-challenge/".
func CheckObject(o string) error {
	bad := func(msg string) error {
		return &NameError{Kind: "object", Name: o, Problem: msg, msg: quote(o) + " " + msg}
	}
	switch {
	case o == "":
		return &NameError{Kind: "object", Problem: "empty", msg: "empty object name"}
	case len(o) > MaxObjectName:
		msg := fmt.Sprintf("%d bytes, over Cloud Storage's %d-byte limit", len(o), MaxObjectName)
		return &NameError{Kind: "object", Name: o, Problem: msg, msg: msg}
	case !utf8.ValidString(o):
		return bad("is not valid UTF-8")
	case strings.ContainsAny(o, "\r\n"):
		return bad("contains a carriage return or line feed")
	case o == "." || o == "..":
		return bad("is not an object name")
	case strings.HasPrefix(o, acmeChallenge):
		return bad("starts with " + acmeChallenge + ", which Cloud Storage reserves")
	}
	return nil
}

// bucketChars reports whether s is made only of the characters bucket names allow (the
// printer shows other bucket names quoted).
func bucketChars(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(lowerAlnum(c) || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
