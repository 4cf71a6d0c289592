package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goreleaserRule is a keyless rule for GoReleaser's example-secure (its real identity).
const goreleaserRule = `rules:
  - bucket: b-1
    objects: ["checksums/*.tar.gz"]
    release:
      url: https://github.com/goreleaser/example-secure/releases/download/{tag}/checksums.txt
      tag: v0.1.0
    keys:
      sigstore:
        - issuer: https://token.actions.githubusercontent.com
          identity_regexp: ^https://github\.com/goreleaser/example-secure/\.github/workflows/release\.yml@refs/tags/
          source_repository: https://github.com/goreleaser/example-secure
    sigstore:
      trusted_root: sigstore/trusted_root.public-good.json
`

func TestParseKeyless(t *testing.T) {
	cfg, err := parseString(t, goreleaserRule)
	require.NoError(t, err)
	r := cfg.Rules[0]
	assert.False(t, r.PinnedKeys().Empty(), "a keyless identity is a pinned signer")
	assert.Equal(t, "checksums", r.Release.Signed)
	assert.Empty(t, cfg.Warnings, "keyless bundles carry a verified time; the url has {tag}")

	// The trusted root given inline.
	inline := strings.Replace(goreleaserRule, "trusted_root: sigstore/trusted_root.public-good.json",
		"trusted_root: '"+strings.ReplaceAll(readTestdata(t, "sigstore", "trusted_root.public-good.json"), "'", "''")+"'", 1)
	_, err = parseString(t, inline)
	require.NoError(t, err)
}

func TestParseFormatErrors(t *testing.T) {
	for name, c := range map[string]struct {
		yaml string
		want []string
	}{
		"keyless without a trusted root": {strings.Replace(goreleaserRule, "    sigstore:\n      trusted_root: sigstore/trusted_root.public-good.json\n", "", 1),
			[]string{"line 8: rules[0].keys.sigstore:", "trusted root"}},
		"unanchored identity": {strings.Replace(goreleaserRule, `identity_regexp: ^https`, `identity_regexp: https`, 1),
			[]string{"line 9: rules[0].keys.sigstore[0]:", "must start with ^"}},
		"identity and identity_regexp": {strings.Replace(goreleaserRule, "          source_repository:", "          identity: x\n          source_repository:", 1),
			[]string{"rules[0].keys.sigstore[0]:", "exactly one of identity and identity_regexp"}},
		"trusted root file missing": {strings.Replace(goreleaserRule, "trusted_root.public-good.json", "nope.json", 1),
			[]string{"line 13: rules[0].sigstore.trusted_root:", "cannot read"}},
		"trusted root not one": {strings.Replace(goreleaserRule, "sigstore/trusted_root.public-good.json", "keys/cosign.pub", 1),
			[]string{"line 13: rules[0].sigstore.trusted_root:", "trusted_root.json"}},
		"unknown identity field": {strings.Replace(goreleaserRule, "source_repository:", "repo:", 1),
			[]string{"line 11:", `unknown field "repo"`}},
		"threshold above the keys": {keysRule("      openpgp: [keys/maintainer-ed25519.asc]\n      threshold: 2\n"),
			[]string{"line 7: rules[0].keys.threshold:", "2 distinct keys must sign, but the rule pins 1"}},
		"threshold with a git source": {keysRule("      openpgp: [keys/maintainer-ed25519.asc, keys/maintainer-rsa3072.asc]\n      threshold: 2\n"),
			[]string{"rules[0].keys.threshold:", "a git tag carries one signature"}},
		"signed: file with a github source": {`rules:
  - bucket: b-1
    objects: ["x"]
    release: {github: o/r, signed: file}
    keys: {openpgp: [keys/maintainer-ed25519.asc]}
`, []string{"line 4: rules[0].release.signed:", "needs a url source"}},
		"signed: something else": {`rules:
  - bucket: b-1
    objects: ["x"]
    release: {url: "https://e.org/{name}", signed: tarball}
    keys: {openpgp: [keys/maintainer-ed25519.asc]}
`, []string{"rules[0].release.signed:", `"tarball" is not one of checksums, file`}},
		"signed: file without {name}": {`rules:
  - bucket: b-1
    objects: ["x"]
    release: {url: "https://e.org/x", signed: file}
    keys: {openpgp: [keys/maintainer-ed25519.asc]}
`, []string{"rules[0].release:", "has no {name}"}},
		"attestations with a url source": {`rules:
  - bucket: b-1
    objects: ["x"]
    release: {url: "https://e.org/SUMS", attestations: true}
    keys: {openpgp: [keys/maintainer-ed25519.asc]}
`, []string{"rules[0].release.attestations:", "need a github source"}},
		"attestations without an identity": {`rules:
  - bucket: b-1
    objects: ["x"]
    release: {github: o/r, attestations: true}
    keys: {openpgp: [keys/maintainer-ed25519.asc]}
`, []string{"rules[0].release.attestations:", "pin the workflow"}},
		"attestations with a checksum file": {`rules:
  - bucket: b-1
    objects: ["x"]
    release: {github: o/r, attestations: true, checksums: SHA256SUMS}
    keys: {openpgp: [keys/maintainer-ed25519.asc]}
`, []string{"rules[0].release.attestations:", "checksums, signature and signatures do not apply"}},
		"attestation_ref alone": {`rules:
  - bucket: b-1
    objects: ["x"]
    release: {github: o/r, attestation_ref: refs/heads/main}
    keys: {openpgp: [keys/maintainer-ed25519.asc]}
`, []string{"rules[0].release.attestation_ref:", "attestations is not"}},
		"signatures with a git source": {`rules:
  - bucket: b-1
    objects: ["x"]
    release: {git: git/uploader.git, signatures: ["https://e.org/a.sig"]}
    keys: {openpgp: [keys/maintainer-ed25519.asc]}
`, []string{"rules[0].release:", "do not apply to a git source"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseString(t, c.yaml)
			require.Error(t, err)
			for _, w := range c.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestParseFormatsValid(t *testing.T) {
	cfg, err := parseString(t, `rules:
  - bucket: b-1
    objects: ["{tag}/install.sh"]
    release:
      url: https://downloads.example.org/{tag}/{name}
      signature: https://downloads.example.org/{tag}/{name}.asc
      signed: file
      tag: "{tag}"
    keys: {openpgp: [wire/filesigner-ed25519.asc], ssh: [wire/filesigner_ed25519.pub], threshold: 2}
  - bucket: b-1
    objects: ["sigstore.tgz"]
    release:
      github: sigstore/sigstore-js
      attestations: true
      tag: v2.0.0
      entry: pkg:npm/sigstore@2.0.0
    keys:
      sigstore: [{issuer: "https://token.actions.githubusercontent.com", identity_regexp: '^https://github\.com/sigstore/sigstore-js/'}]
    sigstore: {trusted_root: sigstore/trusted_root.public-good.json}
  - bucket: b-1
    objects: ["SUMS/*"]
    release:
      url: https://e.org/{tag}/SHA256SUMS
      signatures: ["https://alice.e.org/{tag}.asc", "https://bob.e.org/{tag}.sig"]
      tag: v1
    keys: {openpgp: [keys/maintainer-ed25519.asc], cosign: [keys/cosign.pub], threshold: 2}
`)
	require.NoError(t, err)
	assert.Equal(t, "file", cfg.Rules[0].Release.Signed)
	assert.Empty(t, cfg.Rules[1].Release.Checksums, "attestations: no checksum file")
	m, ok := cfg.Policy.Match("b-1", "sigstore.tgz")
	require.True(t, ok)
	assert.Equal(t, "pkg:npm/sigstore@2.0.0", m.Entry("sigstore.tgz"), "a subject name may hold a /")
	assert.Empty(t, cfg.Warnings)
}

func TestFormatWarnings(t *testing.T) {
	cfg, err := parseString(t, `rules:
  - bucket: b-1
    objects: ["install.sh"]
    release: {url: "https://downloads.example.org/latest/{name}", signed: file}
    keys: {openpgp: [wire/filesigner-ed25519.asc]}
  - bucket: b-1
    objects: ["sigstore.tgz"]
    release: {github: sigstore/sigstore-js, attestations: true, attestation_ref: refs/heads/main, tag: v2.0.0, entry: "pkg:npm/sigstore@2.0.0"}
    keys:
      sigstore: [{issuer: "https://token.actions.githubusercontent.com", identity_regexp: '^https://github\.com/sigstore/sigstore-js/'}]
    sigstore: {trusted_root: sigstore/trusted_root.public-good.json}
`)
	require.NoError(t, err)
	require.Len(t, cfg.Warnings, 2)
	assert.Contains(t, cfg.Warnings[0], "line 4: rules[0].release: signed: file has no release-wide signed time")
	assert.Contains(t, cfg.Warnings[1], `attestation_ref: "refs/heads/main" names no {tag}`)
}

// The README's example for Codecov's layout is a configuration tamperguard accepts, and it
// sends latest/ and a version directory to the rules it says.
func TestReadmeCodecovExampleParses(t *testing.T) {
	readme := readTestdata(t, "..", "README.md")
	_, rest, ok := strings.Cut(readme, "### Example: Codecov's own layout")
	require.True(t, ok)
	_, rest, ok = strings.Cut(rest, "```yaml\n")
	require.True(t, ok)
	example, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)
	cfg, err := parseString(t, strings.ReplaceAll(example, "keys/codecov_pgp_keys.asc", "codecov/codecov_pgp_keys.asc"))
	require.NoError(t, err)
	assert.Empty(t, cfg.Warnings)
	m, ok := cfg.Policy.Match("codecov-cli", "latest/linux/codecov")
	require.True(t, ok)
	assert.Equal(t, "latest", m.Tag)
	assert.Equal(t, "codecov", m.Entry("latest/linux/codecov"))
	assert.Equal(t, "27034E7FDB850E0BBC2C62FF806BB28AED779869", cfg.Rules[0].PinnedKeys().Signers()[0].Fingerprint)
	m, ok = cfg.Policy.Match("codecov-cli", "v0.7.4/linux/codecov")
	require.True(t, ok)
	assert.Equal(t, "v0.7.4", m.Tag)
}
