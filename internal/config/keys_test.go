package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// keysRule is a rule with the given keys block (indented under "keys:").
func keysRule(keys string) string {
	return `rules:
  - bucket: b-1
    objects: ["bash"]
    release: {git: git/uploader.git}
    keys:
` + keys
}

func TestParseSSHAllowedSigners(t *testing.T) {
	signer := strings.TrimSpace(readTestdata(t, "ssh", "signer_ed25519.pub"))
	ca := strings.TrimSpace(readTestdata(t, "ssh", "ca_ed25519.pub"))
	for name, keys := range map[string]string{
		"file with many lines and comments": `      ssh: ["ssh/allowed_signers/all"]
`,
		"inline allowed_signers lines": `      ssh:
        - 'release@example.org namespaces="file,git",valid-before="20991231Z" ` + signer + `'
        - '*@example.org cert-authority ` + ca + `'
        - |
          # a block of lines
          "Runitor release" namespaces="bdd.fi/x/runitor release" ` + signer + `
          ` + strings.TrimSpace(readTestdata(t, "ssh", "signer_ecdsa.pub")) + `
`,
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := parseString(t, keysRule(keys))
			require.NoError(t, err)
			assert.Len(t, cfg.Rules[0].PinnedKeys().Signers(), 4)
		})
	}
}

func TestParseSSHKeyLineErrorsNameTheLine(t *testing.T) {
	signer := strings.TrimSpace(readTestdata(t, "ssh", "signer_ed25519.pub"))
	dir := t.TempDir()
	bad := filepath.Join(dir, "allowed_signers")
	require.NoError(t, os.WriteFile(bad, []byte("# ok\n"+"release@example.org "+signer+"\n\n"+`release@example.org valid-befor="20241206" `+signer+"\n"), 0o600))

	for name, c := range map[string]struct {
		keys string
		want []string
	}{
		"file": {`      ssh: ["keys/release_ed25519.pub", "` + bad + `"]
`, []string{"line 6: rules[0].keys.ssh[1] (" + bad + "): line 4: ", `unknown option "valid-befor"`}},
		"inline": {`      ssh:
        - 'release@example.org valid-before=20241206 ` + signer + `'
`, []string{"line 7: rules[0].keys.ssh[0]: line 1: ", "needs a quoted value"}},
		"retired key without principals": {`      ssh: ['cert-authority ` + signer + `']
`, []string{"line 6: rules[0].keys.ssh[0]", "needs the principals"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseString(t, keysRule(c.keys))
			require.Error(t, err)
			for _, w := range c.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestLooksLikeSSHKey(t *testing.T) {
	for s, want := range map[string]bool{
		"ssh-ed25519 AAAAC3Nza":                                             true,
		"release@example.org ssh-ed25519 AAAAC3Nza":                         true,
		`r@e namespaces="file" sk-ecdsa-sha2-nistp256@openssh.com AAAAInNr`: true,
		`"principal with spaces" ecdsa-sha2-nistp256 AAAAE2Vj`:              true,
		"# comment\nssh-rsa AAAAB3Nza x@y\n":                                true,
		"keys/release_ed25519.pub":                                          false,
		"ssh/allowed_signers/all":                                           false,
		"ssh-keys/ssh-ed25519.pub":                                          false,
		"/abs/path with space/ssh-ed25519":                                  false,
	} {
		assert.Equal(t, want, looksLikeSSHKey(s), s)
	}
}

func TestParseOpenPGPSHA1SelfSignatureOption(t *testing.T) {
	// The key's self-signature uses SHA-1; the real clock is past the 2023-02-01 cut-off.
	keys := `      openpgp: ["openpgp-policy/sha1-selfsig-ed25519.asc"]
`
	_, err := parseString(t, keysRule(keys))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "line 6: rules[0].keys.openpgp[0]")
	assert.Contains(t, err.Error(), "openpgp_allow_sha1_self_signatures_unsafe: true (unsafe)")

	cfg, err := parseString(t, keysRule(keys+"      openpgp_allow_sha1_self_signatures_unsafe: true\n"))
	require.NoError(t, err)
	assert.True(t, cfg.Rules[0].Keys.OpenPGPAllowSHA1SelfSignaturesUnsafe)
	assert.Len(t, cfg.Rules[0].PinnedKeys().Signers(), 1)

	_, err = parseString(t, keysRule(`      ssh: ["keys/release_ed25519.pub"]
      openpgp_allow_sha1_self_signatures_unsafe: true
`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "line 7: rules[0].keys.openpgp_allow_sha1_self_signatures_unsafe: set, but the rule pins no openpgp key")

	_, err = parseString(t, keysRule(keys+"      openpgp_allow_sha1_self_signatures: true\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown field "openpgp_allow_sha1_self_signatures"`)
}
