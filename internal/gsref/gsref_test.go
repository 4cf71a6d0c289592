package gsref

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckBucket(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	for _, b := range []string{
		"abc", "uploader-prod", "tg_state", "a-b", "0ab", "ab9",
		long63, long63 + "." + long63 + "." + long63, // 191 characters with dots
		"downloads.example.org", "1.2.3.4.5", "1.2.3.256", "a.1.2.3",
	} {
		assert.NoError(t, CheckBucket(b), b)
	}
	for _, tt := range []struct{ bucket, problem string }{
		{"", "empty"},
		{"ab", "3 to 222 characters"},
		{strings.Repeat("a.", 111) + "ab", "3 to 222 characters"},
		{"-ab", "must start and end with a letter or digit"}, // config refused it, gcs and events accepted it
		{"ab-", "must start and end with a letter or digit"},
		{"_ab", "must start and end with a letter or digit"},
		{".ab", "must start and end with a letter or digit"},
		{"Uploader", "character 'U'"},
		{"up loader", "character ' '"},
		{"gs://b-1", "character ':'"},
		{"b/x", "character '/'"},
		{"bücket", "character 'ü'"},
		{long63 + "a", "over 63 characters without dots"},
		{long63 + "a.example.org", "a part is over 63 characters"},
		{"a..b", "two dots in a row"},
		{"192.168.5.4", "an IP address"},
		{"goog-downloads", `starts with "goog"`},
		{"my-google-bucket", `contains "google"`},
	} {
		err := CheckBucket(tt.bucket)
		require.Error(t, err, tt.bucket)
		assert.ErrorIs(t, err, ErrInvalidName)
		var ne *NameError
		require.ErrorAs(t, err, &ne)
		assert.Equal(t, "bucket", ne.Kind)
		assert.Equal(t, tt.problem, ne.Problem, tt.bucket)
		assert.Contains(t, err.Error(), "is not a bucket name ("+tt.problem+")")
	}
}

func TestCheckObject(t *testing.T) {
	for _, o := range []string{
		"install.sh", "a", "dir/sub/file", strings.Repeat("x", 1024), "naïve", "...", ".well-known/other",
		"a#12", "with space", "tab\there", ".well-known/acme-challenge", "x/.well-known/acme-challenge/y",
	} {
		assert.NoError(t, CheckObject(o), "%q", o)
	}
	for _, tt := range []struct{ object, msg string }{
		{"", "empty object name"},
		{strings.Repeat("x", 1025), "1025 bytes, over Cloud Storage's 1024-byte limit"},
		{"bad\xffutf8", `"bad\xffutf8" is not valid UTF-8`},
		{"line\nfeed", `"line\nfeed" contains a carriage return or line feed`},
		{"carriage\rreturn", `"carriage\rreturn" contains a carriage return or line feed`},
		{".", `"." is not an object name`},
		{"..", `".." is not an object name`},
		{".well-known/acme-challenge/token", `".well-known/acme-challenge/token" starts with .well-known/acme-challenge/, which Cloud Storage reserves`},
	} {
		err := CheckObject(tt.object)
		require.Error(t, err, "%q", tt.object)
		assert.ErrorIs(t, err, ErrInvalidName)
		assert.Equal(t, tt.msg, err.Error())
	}
	// A hostile name is clipped in the message.
	long := strings.Repeat("é", 400) + "\n"
	assert.Less(t, len(CheckObject(long).Error()), 300)
}

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want ObjectRef
	}{
		{"gs://uploader-prod/install.sh", ObjectRef{"uploader-prod", "install.sh", 0}},
		{"gs://uploader-prod/install.sh#1612087200000123", ObjectRef{"uploader-prod", "install.sh", 1612087200000123}},
		{"gs://b-1/dir/sub/x.tar.gz#7", ObjectRef{"b-1", "dir/sub/x.tar.gz", 7}},
		{"gs://b-1/a#b", ObjectRef{"b-1", "a#b", 0}},     // not digits: part of the name
		{"gs://b-1/a#0", ObjectRef{"b-1", "a#0", 0}},     // no generation 0
		{"gs://b-1/a#+5", ObjectRef{"b-1", "a#+5", 0}},   // digits only
		{"gs://b-1/a#12#3", ObjectRef{"b-1", "a#12", 3}}, // the last '#'
		{"gs://b-1/a#99999999999999999999", ObjectRef{"b-1", "a#99999999999999999999", 0}},
		{"gs://b-1//lead", ObjectRef{"b-1", "/lead", 0}},
	} {
		got, err := Parse(tt.in)
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
	}
	for _, tt := range []struct{ in, want string }{
		{"uploader-prod/install.sh", "want gs://BUCKET/OBJECT[#GENERATION]"},
		{"gs://nobucketslash", "want gs://BUCKET/OBJECT[#GENERATION]"},
		{"gs:///install.sh", "want gs://BUCKET/OBJECT[#GENERATION]"},
		{"gs://b-1/", "want gs://BUCKET/OBJECT[#GENERATION]"},
		{"gs://-ab/install.sh", "is not a bucket name"},
		{"gs://Bucket/install.sh", "is not a bucket name"},
		{"gs://b-1/#5", "empty object name"},
		{"gs://b-1/..", "is not an object name"},
		{"gs://b-1/a\nb", "contains a carriage return or line feed"},
	} {
		_, err := Parse(tt.in)
		require.Error(t, err, tt.in)
		assert.Contains(t, err.Error(), tt.want, tt.in)
		assert.Equal(t, strings.Contains(tt.want, "want gs://"), errors.Is(err, ErrSyntax), tt.in)
	}
}

func TestPrint(t *testing.T) {
	for _, tt := range []struct {
		ref  ObjectRef
		s, q string
	}{
		{ObjectRef{"b-1", "install.sh", 0}, `gs://b-1/install.sh`, `gs://b-1/"install.sh"`},
		{ObjectRef{"b-1", "install.sh", 42}, `gs://b-1/install.sh#42`, `gs://b-1/"install.sh"#42`},
		{ObjectRef{"b-1", "with space ", 0}, `gs://b-1/with space `, `gs://b-1/"with space "`},
		{ObjectRef{"b-1", "evil\u202e\x1b[31mname", 42}, `gs://b-1/"evil\u202e\x1b[31mname"#42`, `gs://b-1/"evil\u202e\x1b[31mname"#42`},
		{ObjectRef{"b-1", "bad\xff", 0}, `gs://b-1/"bad\xff"`, `gs://b-1/"bad\xff"`},
		{ObjectRef{"b-1", "tab\tx", 0}, `gs://b-1/"tab\tx"`, `gs://b-1/"tab\tx"`},
		{ObjectRef{"Bad/Bucket", "x", 0}, `gs://"Bad/Bucket"/x`, `gs://"Bad/Bucket"/"x"`},
	} {
		assert.Equal(t, tt.s, tt.ref.String())
		assert.Equal(t, tt.s, fmt.Sprint(tt.ref))
		assert.Equal(t, tt.s, fmt.Sprintf("%v", tt.ref))
		assert.Equal(t, "at "+tt.s, fmt.Sprintf("at %s", tt.ref))
		assert.Equal(t, tt.q, fmt.Sprintf("%q", tt.ref))
	}
}

func TestRoundTrip(t *testing.T) {
	for _, r := range []ObjectRef{
		{"uploader-prod", "install.sh", 0},
		{"uploader-prod", "install.sh", 1612087200000123},
		{"downloads.example.org", "v1.2.3/linux/codecov", 9},
		{"b-1", "a#b", 0},
		{"b-1", "a#12", 3},
		{"b-1", "naïve/ünïcode", 0},
	} {
		require.NoError(t, r.Validate())
		got, err := Parse(r.String())
		require.NoError(t, err, r.String())
		assert.Equal(t, r, got)
	}
}

// FuzzParse: whatever the text, Parse either refuses it or returns names Cloud Storage can
// hold, and the printed form of what it returns parses back to the same reference.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"gs://uploader-prod/install.sh", "gs://b-1/a#12", "gs://b-1/a#12#3", "gs://b-1/#5", "gs:///x",
		"gs://-ab/x", "gs://b-1/a\nb", "gs://b-1/\xff", "gs://b-1/.well-known/acme-challenge/x", "gs://192.168.5.4/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrInvalidName) {
				t.Fatalf("Parse(%q): an error that is neither ErrSyntax nor ErrInvalidName: %v", s, err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("Parse(%q) = %+v, which is not valid: %v", s, r, err)
		}
		if !utf8.ValidString(r.Object) || r.Generation < 0 {
			t.Fatalf("Parse(%q) = %+v", s, r)
		}
		printed := r.String()
		if !printable(r.Object) {
			return // a quoted name is for people, not for the parser
		}
		back, err := Parse(printed)
		if err != nil {
			t.Fatalf("Parse(%q) = %+v prints as %q, which does not parse: %v", s, r, printed, err)
		}
		if back != r {
			t.Fatalf("Parse(%q) = %+v prints as %q, which parses as %+v", s, r, printed, back)
		}
	})
}
