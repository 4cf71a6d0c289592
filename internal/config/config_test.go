package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

	m, ok := cfg.Match("uploader-prod", "v1/linux/codecov")
	require.True(t, ok)
	assert.Equal(t, "latest", m.Tag)
	assert.Equal(t, "install.sh", m.Entry("v1/linux/codecov"))
	_, ok = cfg.Match("uploader-prod", "v1/linux/other")
	assert.False(t, ok)
	_, ok = cfg.Match("other-bucket", "bash")
	assert.False(t, ok)

	m, ok = cfg.Match("downloads.example.org", "v2.0.1/install.sh")
	require.True(t, ok)
	assert.Equal(t, "v2.0.1", m.Tag)
	assert.Equal(t, "install.sh", m.Entry("v2.0.1/install.sh"))
	assert.Equal(t, "quarantine", m.Rule.OnMismatch)
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
		{"unknown top field", "rulez: []\n", []string{"line 1", `unknown field "rulez"`, "known fields: release_ttl, rules, state"}},
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
	cfg, err := parseString(b, `rules:
  - bucket: uploader-prod
    objects: ["bash", "v*/linux/codecov", "{tag}/install.sh"]
    release: {git: git/uploader.git, tag: "{tag}"}
    keys: {openpgp: ["keys/maintainer-ed25519.asc"]}
`)
	if err == nil {
		b.Fatal("want error: mixed {tag} patterns")
	}
	cfg, err = parseString(b, `rules:
  - bucket: uploader-prod
    objects: ["bash", "v*/linux/codecov"]
    release: {git: git/uploader.git}
    keys: {openpgp: ["keys/maintainer-ed25519.asc"]}
`)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := cfg.Match("uploader-prod", "assets/img/logo.png"); ok {
			b.Fatal("matched")
		}
	}
}
