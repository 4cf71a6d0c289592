package policy

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/release"
)

func patterns(t testing.TB, raw ...string) []Pattern {
	t.Helper()
	var out []Pattern
	for _, r := range raw {
		p, err := CompilePattern(r)
		require.NoError(t, err)
		out = append(out, p)
	}
	return out
}

func testPolicy(t testing.TB) *Policy {
	return &Policy{Rules: []*Rule{
		{Bucket: "uploader-prod", Patterns: patterns(t, "bash", "v*/linux/codecov"), Tag: release.Latest, Entry: "install.sh"},
		{Bucket: "uploader-prod", Patterns: patterns(t, "bash", "other"), Tag: "v1.0.0"},
		{Bucket: "downloads.example.org", Patterns: patterns(t, "{tag}/install.sh"), Tag: TagPlaceholder, Entry: "install-{tag}.sh"},
	}}
}

func TestMatch(t *testing.T) {
	p := testPolicy(t)
	m, ok := p.Match("uploader-prod", "v1/linux/codecov")
	require.True(t, ok)
	assert.Same(t, p.Rules[0], m.Rule)
	assert.Equal(t, "latest", m.Tag)
	assert.Equal(t, "install.sh", m.Entry("v1/linux/codecov"))

	m, ok = p.Match("uploader-prod", "bash")
	require.True(t, ok)
	assert.Same(t, p.Rules[0], m.Rule, "the first rule that covers an object is its rule")

	m, ok = p.Match("uploader-prod", "other")
	require.True(t, ok)
	assert.Equal(t, "v1.0.0", m.Tag)
	assert.Equal(t, "other", m.Entry("other"), "no entry: the object's base name")

	m, ok = p.Match("downloads.example.org", "v2.0.1/install.sh")
	require.True(t, ok)
	assert.Equal(t, "v2.0.1", m.Tag)
	assert.Equal(t, "install-v2.0.1.sh", m.Entry("v2.0.1/install.sh"))

	for _, o := range [][2]string{{"uploader-prod", "v1/linux/other"}, {"other-bucket", "bash"}, {"downloads.example.org", "install.sh"}} {
		_, ok := p.Match(o[0], o[1])
		assert.False(t, ok, o)
	}
}

// An unwatched object costs no allocation (BenchmarkHandleIgnored in the engine relies on it).
func TestMatchIgnoredDoesNotAllocate(t *testing.T) {
	p := testPolicy(t)
	allocs := testing.AllocsPerRun(100, func() {
		if _, ok := p.Match("uploader-prod", "assets/img/logo-large.png"); ok {
			t.Fatal("matched")
		}
	})
	assert.Zero(t, allocs)
}

func TestListPrefixesAndExactObjects(t *testing.T) {
	r := &Rule{Patterns: patterns(t, "dl/*.sh", "dl/x/install.sh", "install.sh", "{tag}/linux/codecov", "v*/bin", "install.sh")}
	assert.Equal(t, []string{""}, r.ListPrefixes(), "a {tag} pattern lists everything; shorter prefixes cover longer ones")
	r = &Rule{Patterns: patterns(t, "dl/*.sh", "dl/x/install.sh", "install.sh", "v*/bin")}
	assert.Equal(t, []string{"dl/", "install.sh", "v"}, r.ListPrefixes())
	assert.Equal(t, []string{"dl/x/install.sh", "install.sh"}, r.ExactObjects())
}

func BenchmarkPolicyMatchIgnored(b *testing.B) {
	p := testPolicy(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := p.Match("uploader-prod", "assets/img/logo.png"); ok {
			b.Fatal("matched")
		}
	}
}
