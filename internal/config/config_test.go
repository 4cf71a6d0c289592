package config

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/policy"
)

func testdata(t testing.TB, elem ...string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(append([]string{"..", "..", "testdata"}, elem...)...))
	require.NoError(t, err)
	return p
}

func readTestdata(t testing.TB, elem ...string) string {
	t.Helper()
	b, err := os.ReadFile(testdata(t, elem...))
	require.NoError(t, err)
	return string(b)
}

func parseString(t testing.TB, yamlText string) (*Config, error) {
	t.Helper()
	return Parse(Source{Name: "test.yaml", Data: []byte(yamlText), Dir: testdata(t)})
}

func TestParseValid(t *testing.T) {
	sshKey := strings.TrimSpace(readTestdata(t, "keys", "release_ed25519.pub"))
	cfg, err := parseString(t, `
release_ttl: 30s
rules:
  - bucket: uploader-prod
    objects: ["bash", "v*/linux/codecov"]
    release:
      git: git/uploader.git
      entry: install.sh
    keys:
      openpgp: ["keys/maintainer-ed25519.asc"]
      ssh: ["`+sshKey+`"]
      cosign: ["keys/cosign.pub"]
  - bucket: downloads.example.org
    objects: ["{tag}/install.sh"]
    release:
      url: https://example.org/dl/{tag}/SHA256SUMS
      tag: "{tag}"
    keys:
      openpgp: ["keys/maintainer-rsa3072.asc"]
    on_mismatch: quarantine
`)
	require.NoError(t, err)
	require.Len(t, cfg.Rules, 2)
	r := cfg.Rules[0]
	assert.Equal(t, "latest", r.Release.Tag)
	assert.Equal(t, "SHA256SUMS", r.Release.Checksums)
	assert.Equal(t, "restore", r.OnMismatch)
	assert.Equal(t, 4, r.Line)
	assert.Equal(t, "git "+testdata(t, "git", "uploader.git"), r.Source().Key())
	assert.False(t, r.PinnedKeys().Empty())

	m, ok := cfg.Policy.Match("uploader-prod", "v1/linux/codecov")
	require.True(t, ok)
	assert.Equal(t, "latest", m.Tag)
	assert.Equal(t, "install.sh", m.Entry("v1/linux/codecov"))
	_, ok = cfg.Policy.Match("uploader-prod", "v1/linux/other")
	assert.False(t, ok)
	_, ok = cfg.Policy.Match("other-bucket", "bash")
	assert.False(t, ok)

	m, ok = cfg.Policy.Match("downloads.example.org", "v2.0.1/install.sh")
	require.True(t, ok)
	assert.Equal(t, "v2.0.1", m.Tag)
	assert.Equal(t, "install.sh", m.Entry("v2.0.1/install.sh"))
	assert.Equal(t, policy.Quarantine, m.Rule.OnMismatch)
}

// TestPolicyFromConfiguration: the policy says what the configuration says, defaults filled in.
func TestPolicyFromConfiguration(t *testing.T) {
	cfg, err := parseString(t, `
release_ttl: 30s
state: {bucket: tg-state, lease: 45s}
rules:
  - bucket: uploader-prod
    objects: ["bash"]
    release: {git: git/uploader.git, tag: v1.2.0, entry: install.sh}
    keys: {openpgp: ["keys/maintainer-ed25519.asc"]}
    metadata: {content_type: text/x-shellscript, cache_control: "max-age=60"}
  - bucket: downloads.example.org
    objects: ["{tag}/install.sh"]
    release: {url: "https://example.org/dl/{tag}/SHA256SUMS", tag: "{tag}"}
    keys: {openpgp: ["keys/maintainer-rsa3072.asc"]}
    on_mismatch: alert
    fallback: alert
    cache_control: "no-store"
`)
	require.NoError(t, err)
	p := cfg.Policy
	require.NotNil(t, p)
	assert.Equal(t, "tg-state", p.StateBucket)
	assert.Equal(t, 45*time.Second, p.Lease)
	assert.Equal(t, 30*time.Second, p.ReleaseTTL)
	assert.Equal(t, "test.yaml", p.Origin)
	require.Len(t, p.Rules, 2)
	r := p.Rules[0]
	assert.Equal(t, "uploader-prod", r.Bucket)
	assert.Equal(t, "v1.2.0", r.Tag)
	assert.Equal(t, "install.sh", r.Entry)
	assert.Equal(t, policy.Restore, r.OnMismatch)
	assert.Equal(t, policy.Quarantine, r.Fallback)
	assert.Equal(t, "no-cache", r.CacheControl)
	assert.Equal(t, policy.Metadata{ContentType: "text/x-shellscript", CacheControl: "max-age=60"}, r.Metadata)
	assert.Same(t, cfg.Rules[0].Source(), r.Source)
	assert.Equal(t, []string{"bash"}, r.ExactObjects())
	r = p.Rules[1]
	assert.Equal(t, policy.TagPlaceholder, r.Tag)
	assert.Equal(t, policy.AlertOnly, r.OnMismatch)
	assert.Equal(t, policy.AlertOnly, r.Fallback)
	assert.Equal(t, "no-store", r.CacheControl)
	m, ok := p.Match("downloads.example.org", "v2.0.1/install.sh")
	require.True(t, ok)
	assert.Equal(t, "v2.0.1", m.Tag)
}

func TestParseErrors(t *testing.T) {
	good := func(extra string) string {
		return `rules:
  - bucket: b-1
    objects: ["bash"]
    release:
      git: git/uploader.git
    keys:
      openpgp: ["keys/maintainer-ed25519.asc"]
` + extra
	}
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"not yaml", "rules: [", []string{"not valid YAML"}},
		{"no rules", "release_ttl: 5s\n", []string{"no rules"}},
		{"unknown top field", "rulez: []\n", []string{"line 1", `unknown field "rulez"`, "known fields: posture, release_ttl, rules, state"}},
		{"unknown rule field", good("    on_mismatc: alert\n"), []string{"line 8", `rules[0]: unknown field "on_mismatc"`}},
		{"unknown release field", strings.Replace(good(""), "git: git/uploader.git", "gti: git/uploader.git", 1), []string{"line 5", `rules[0].release: unknown field "gti"`}},
		{"duplicate field", good("    bucket: b-2\n"), []string{"line 8", `"bucket" given twice`}},
		{"rule not a mapping", "rules:\n  - bash\n", []string{"line 2", "expected a mapping"}},
		{"no keys", strings.Replace(good(""), `openpgp: ["keys/maintainer-ed25519.asc"]`, "openpgp: []", 1), []string{"line 6", "rules[0].keys: no keys"}},
		{"bad glob", strings.Replace(good(""), `["bash"]`, `["bash", "v[1-"]`, 1), []string{"line 3", "rules[0].objects[1]", "bad glob"}},
		{"unreadable key", strings.Replace(good(""), "maintainer-ed25519.asc", "missing.asc", 1), []string{"line 7", "rules[0].keys.openpgp[0]", "cannot read key file"}},
		{"garbage key", strings.Replace(good(""), `openpgp: ["keys/maintainer-ed25519.asc"]`, "openpgp: [\"-----BEGIN PGP PUBLIC KEY BLOCK-----\\n\\nnope\\n-----END PGP PUBLIC KEY BLOCK-----\"]", 1), []string{"line 7", "rules[0].keys.openpgp[0]"}},
		{"two sources", strings.Replace(good(""), "git: git/uploader.git", "git: git/uploader.git\n      github: a/b", 1), []string{"rules[0].release", "exactly one of git, url, github"}},
		{"no source", strings.Replace(good(""), "git: git/uploader.git", "tag: latest", 1), []string{"exactly one of git, url, github"}},
		{"bad bucket", strings.Replace(good(""), "bucket: b-1", "bucket: gs://b-1", 1), []string{"line 2", "rules[0].bucket", "not a Cloud Storage bucket name"}},
		{"bucket with a dash first", strings.Replace(good(""), "bucket: b-1", "bucket: -ab", 1), []string{"line 2", "rules[0].bucket", "not a Cloud Storage bucket name", "must start and end with a letter or digit"}},
		{"bucket part too long", strings.Replace(good(""), "bucket: b-1", "bucket: "+strings.Repeat("a", 64), 1), []string{"line 2", "rules[0].bucket", "over 63 characters without dots"}},
		{"bucket named like google", strings.Replace(good(""), "bucket: b-1", "bucket: my-google-dl", 1), []string{"line 2", "rules[0].bucket", `contains "google"`}},
		{"bad state bucket", "state: {bucket: 192.168.5.4}\n" + good(""), []string{"line 1", "state.bucket", "not a Cloud Storage bucket name: an IP address"}},
		{"missing bucket", strings.Replace(good(""), "bucket: b-1", "bucket: \"\"", 1), []string{"rules[0]: bucket is required"}},
		{"missing objects", strings.Replace(good(""), `objects: ["bash"]`, "objects: []", 1), []string{"objects is required"}},
		{"bad on_mismatch", good("    on_mismatch: revert\n"), []string{"line 8", "on_mismatch", `"revert" is not one of restore, quarantine, alert`}},
		{"tag placeholder needs tag", strings.Replace(good(""), `["bash"]`, `["{tag}/bash"]`, 1), []string{"release.tag", `tag must be "{tag}"`}},
		{"tag placeholder everywhere", strings.Replace(good(""), "git: git/uploader.git", "git: git/uploader.git\n      tag: \"{tag}\"", 1), []string{"objects[0]", "every object pattern must contain {tag}"}},
		{"url latest with tag", strings.Replace(good(""), "git: git/uploader.git", "url: https://example.org/{tag}/SHA256SUMS", 1), []string{"tag: latest cannot list"}},
		{"bad duration", "release_ttl: soon\n" + good(""), []string{"line 1", `"soon" is not a duration`}},
		{"two documents", good("") + "---\nrules: []\n", []string{"more than one YAML document"}},
		{"alias", "rules:\n  - &r {bucket: b-1}\n  - *r\n", []string{"line 3", "aliases are not supported"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseString(t, tt.yaml)
			require.Error(t, err)
			msg := err.Error()
			assert.True(t, strings.HasPrefix(msg, "configuration test.yaml: "), msg)
			for _, w := range tt.want {
				assert.Contains(t, msg, w)
			}
		})
	}
}

func TestParseSSHKeyErrors(t *testing.T) {
	_, err := parseString(t, `rules:
  - bucket: b-1
    objects: ["bash"]
    release: {git: git/uploader.git}
    keys:
      ssh:
        - "ssh-ed25519 AAAAnotbase64 x@y"
`)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "line 7: rules[0].keys.ssh[0]")
}

func TestLocate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(file, []byte("rules: []\n"), 0o600))
	other := filepath.Join(dir, "other.yaml")
	require.NoError(t, os.WriteFile(other, []byte("rules: [x]\n"), 0o600))

	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	tests := []struct {
		name     string
		flag     string
		env      map[string]string
		wantName string
		wantData string
		wantErr  string
	}{
		{"flag wins over env", file, map[string]string{EnvConfig: "rules: [inline]"}, file, "rules: []\n", ""},
		{"inline env", "", map[string]string{EnvConfig: "rules: [inline]"}, "$TAMPERGUARD_CONFIG", "rules: [inline]", ""},
		{"file env", "", map[string]string{EnvConfigFile: other}, other, "rules: [x]\n", ""},
		{"both envs", "", map[string]string{EnvConfig: "a", EnvConfigFile: other}, "", "", "both TAMPERGUARD_CONFIG and TAMPERGUARD_CONFIG_FILE"},
		{"missing flag file", filepath.Join(dir, "nope.yaml"), nil, "", "", "no such file"},
		{"inline too big", "", map[string]string{EnvConfig: strings.Repeat("#", maxConfigSize+1)}, "", "", "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := Locate(tt.flag, env(tt.env))
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantName, src.Name)
			assert.Equal(t, tt.wantData, string(src.Data))
		})
	}

	t.Run("default file missing", func(t *testing.T) {
		t.Chdir(t.TempDir())
		_, err := Locate("", env(nil))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "tamperguard.yaml not found")
	})
	t.Run("default file relative keys resolve beside it", func(t *testing.T) {
		d := t.TempDir()
		t.Chdir(d)
		require.NoError(t, os.WriteFile(DefaultFile, []byte("rules: []\n"), 0o600))
		src, err := Locate("", env(nil))
		require.NoError(t, err)
		assert.Equal(t, DefaultFile, src.Name)
		real, _ := filepath.EvalSymlinks(d)
		gotDir, _ := filepath.EvalSymlinks(src.Dir)
		assert.Equal(t, real, gotDir)
	})
}

func BenchmarkConfigMatchIgnored(b *testing.B) {
	_, err := parseString(b, `rules:
  - bucket: uploader-prod
    objects: ["bash", "v*/linux/codecov", "{tag}/install.sh"]
    release: {git: git/uploader.git, tag: "{tag}"}
    keys: {openpgp: ["keys/maintainer-ed25519.asc"]}
`)
	if err == nil {
		b.Fatal("want error: mixed {tag} patterns")
	}
	cfg, err := parseString(b, `rules:
  - bucket: uploader-prod
    objects: ["bash", "v*/linux/codecov"]
    release: {git: git/uploader.git}
    keys: {openpgp: ["keys/maintainer-ed25519.asc"]}
`)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := cfg.Policy.Match("uploader-prod", "assets/img/logo.png"); ok {
			b.Fatal("matched")
		}
	}
}

func TestReleaseTagFilters(t *testing.T) {
	base := `rules:
  - bucket: b-1
    objects: ["bash"]
    release:
      git: git/uploader.git
EXTRA
    keys:
      openpgp: ["keys/maintainer-ed25519.asc"]
`
	with := func(extra string) string { return strings.Replace(base, "EXTRA", extra, 1) }

	cfg, err := parseString(t, with("      tags: \"v1.*\""))
	require.NoError(t, err)
	assert.Equal(t, "git "+testdata(t, "git", "uploader.git")+" tags v1.*", cfg.Rules[0].Source().Key(), "rules following other tags keep apart marks")
	cfg, err = parseString(t, with("      tags: 'regexp:curl-[0-9_]+'\n      prereleases: true"))
	require.NoError(t, err)
	assert.Contains(t, cfg.Rules[0].Source().Key(), "tags regexp:curl-[0-9_]+ with pre-releases")
	cfg, err = parseString(t, with(""))
	require.NoError(t, err)
	assert.Equal(t, "git "+testdata(t, "git", "uploader.git"), cfg.Rules[0].Source().Key(), "no filter, no change")

	for _, tc := range []struct{ extra, want string }{
		{"      tags: \"v[1\"", `line 6: rules[0].release.tags: bad glob "v[1"`},
		{"      tags: \"regexp:(\"", `line 6: rules[0].release.tags: bad regexp "("`},
		{"      tags: \"v2.*\"\n      tag: v1.0.0", `line 7: rules[0].release.tag: "v1.0.0" does not match tags "v2.*"`},
		{"      prereleases: maybe", "line 6"},
	} {
		_, err := parseString(t, with(tc.extra))
		require.Error(t, err, tc.extra)
		assert.Contains(t, err.Error(), tc.want)
	}
}

func TestGitHubTokenFromTheEnvironment(t *testing.T) {
	const token = "ghp_TESTtokenFROMenv0123456789"
	var got []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
		_, _ = w.Write([]byte(`[]`))
	}))
	t.Cleanup(api.Close)
	rule := func(extra string) string {
		return `rules:
  - bucket: b-1
    objects: ["bash"]
    release:
      github: o/r
      github_api: ` + api.URL + `
` + extra + `
    keys:
      openpgp: ["keys/maintainer-ed25519.asc"]
`
	}
	parse := func(yamlText string, env map[string]string) (*Config, error) {
		return Parse(Source{Name: "test.yaml", Data: []byte(yamlText), Dir: testdata(t), Getenv: func(k string) string { return env[k] }})
	}
	candidates := func(cfg *Config) {
		_, err := cfg.Rules[0].Source().Candidates(t.Context())
		require.NoError(t, err)
	}

	cfg, err := parse(rule(""), map[string]string{"GITHUB_TOKEN": token + "\n"})
	require.NoError(t, err)
	candidates(cfg)
	cfg, err = parse(rule("      github_token_env: RELEASE_READ_TOKEN"), map[string]string{"RELEASE_READ_TOKEN": token, "GITHUB_TOKEN": "other"})
	require.NoError(t, err)
	candidates(cfg)
	cfg, err = parse(rule(""), nil)
	require.NoError(t, err)
	candidates(cfg)
	assert.Equal(t, []string{"Bearer " + token, "Bearer " + token, ""}, got)
	assert.NotContains(t, cfg.Rules[0].Source().Key(), token)

	for _, tc := range []struct {
		yaml string
		env  map[string]string
		want string
	}{
		{rule("      github_token_env: RELEASE_READ_TOKEN"), nil, "line 7: rules[0].release.github_token_env: $RELEASE_READ_TOKEN is not set or empty"},
		{rule("      github_token_env: 'bad name'"), nil, "is not an environment variable name"},
		{rule(""), map[string]string{"GITHUB_TOKEN": token[:8] + "\n" + token[8:]}, "the token contains a line break"},
		{strings.Replace(rule("      github_token_env: T"), "github: o/r", "url: https://example.org/SHA256SUMS", 1), nil, "github_token_env: applies only to a github source"},
	} {
		_, err := parse(tc.yaml, tc.env)
		require.Error(t, err)
		assert.Contains(t, err.Error(), tc.want)
		assert.NotContains(t, err.Error(), token[8:])
	}
}

// A rule whose rollback cannot be detected says so when it is loaded, and how to fix it.
func TestRollbackWarnings(t *testing.T) {
	sshKey := strings.TrimSpace(readTestdata(t, "keys", "release_ed25519.pub"))
	rule := func(release, keys string) string {
		return "rules:\n  - bucket: b-1\n    objects: [\"bash\"]\n    release:\n" + release + "    keys:\n" + keys
	}
	pgp := "      openpgp: [\"keys/maintainer-ed25519.asc\"]\n"
	ssh := "      ssh: [\"" + sshKey + "\"]\n"
	cosign := "      cosign: [\"keys/cosign.pub\"]\n"
	for _, tc := range []struct {
		name, release, keys string
		want                []string
	}{
		{"fixed url, ssh", "      url: https://example.org/latest/SHA256SUMS?token=SECRET\n", ssh,
			[]string{"line 4: rules[0].release: rollback cannot be detected", "https://example.org/latest/SHA256SUMS passes", "OpenPGP", "{tag}", "signed git tags"}},
		{"fixed url, cosign", "      url: https://example.org/latest/SHA256SUMS\n", cosign, []string{"rollback cannot be detected"}},
		{"fixed url, openpgp and ssh", "      url: https://example.org/latest/SHA256SUMS\n", pgp + ssh, []string{"while the newest checksum file"}},
		{"github, ssh", "      github: o/r\n", ssh, []string{"rollback cannot be detected: GitHub release names are not signed"}},
		{"fixed url, openpgp", "      url: https://example.org/latest/SHA256SUMS\n", pgp, nil},
		{"url with tag, ssh", "      url: https://example.org/{tag}/SHA256SUMS\n      tag: v1.0.0\n", ssh, nil},
		{"github, openpgp", "      github: o/r\n", pgp, nil},
		{"git, ssh", "      git: git/uploader.git\n", ssh, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseString(t, rule(tc.release, tc.keys))
			require.NoError(t, err)
			if tc.want == nil {
				assert.Empty(t, cfg.Warnings)
				return
			}
			require.Len(t, cfg.Warnings, 1)
			for _, w := range tc.want {
				assert.Contains(t, cfg.Warnings[0], w)
			}
			assert.NotContains(t, cfg.Warnings[0], "SECRET")
		})
	}
}
