package policy

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern string
		name    string
		ok      bool
		tag     string
	}{
		{"bash", "bash", true, ""},
		{"bash", "bash2", false, ""},
		{"bash", "dir/bash", false, ""},
		{"v*/linux/codecov", "v0.1.0/linux/codecov", true, ""},
		{"v*/linux/codecov", "v0.1.0/macos/codecov", false, ""},
		{"v*/linux/codecov", "v0.1.0/x/linux/codecov", false, ""},
		{"*.sh", "install.sh", true, ""},
		{"*.sh", "a/install.sh", false, ""},
		{"{tag}/linux/codecov", "v1.2.3/linux/codecov", true, "v1.2.3"},
		{"{tag}/linux/codecov", "v1.2.3/linux/codecov2", false, ""},
		{"{tag}/linux/codecov", "/linux/codecov", false, ""},
		{"{tag}/linux/codecov", "a/b/linux/codecov", false, ""},
		{"v{tag}/*/codecov", "v1.2.3/macos/codecov", true, "1.2.3"},
		{"dl/uploader-{tag}.sh", "dl/uploader-v2.0.0.sh", true, "v2.0.0"},
		{"dl/uploader-{tag}.sh", "dl/uploader-.sh", false, ""},
		{"dl/uploader-{tag}", "dl/uploader-v1/x", false, ""},
		{"releases/{tag}", "releases/v1.0.0", true, "v1.0.0"},
		{"name with space", "name with space", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"|"+tt.name, func(t *testing.T) {
			p, err := CompilePattern(tt.pattern)
			require.NoError(t, err)
			tag, ok := p.Match(tt.name)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.tag, tag)
		})
	}
}

func TestPatternErrors(t *testing.T) {
	for _, tt := range []struct{ pattern, want string }{
		{"", "empty"},
		{"/bash", "leading slash"},
		{"gs://b/bash", "object name only"},
		{"[a-", "bad glob"},
		{"{tag}/{tag}", "once"},
		{"{tag}/[x", "bad glob"},
		{"x[{tag}", "bad glob"},
	} {
		t.Run(tt.pattern, func(t *testing.T) {
			_, err := CompilePattern(tt.pattern)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// Hostile object names must not make matching slow or panic.
func TestPatternHostileNames(t *testing.T) {
	p, err := CompilePattern("*{tag}*x")
	require.NoError(t, err)
	name := strings.Repeat("a", 1024)
	_, ok := p.Match(name)
	assert.False(t, ok)
	for _, n := range []string{"\x00", "\xff\xfe", "a\nb", strings.Repeat("/", 1024)} {
		_, _ = p.Match(n)
	}
}

func BenchmarkMatchIgnored(b *testing.B) {
	p, err := CompilePattern("v*/linux/codecov")
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		p.Match("assets/images/logo-large.png")
	}
}
