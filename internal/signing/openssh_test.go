package signing

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

// OpenSSH portable's own release tags are signed by a FIDO key
// (sk-ecdsa-sha2-nistp256@openssh.com) without the user-presence flag. The fixture is
// the real tag object and allowed signers file (testdata/openssh/README.md).

const (
	opensshTagID  = "d74a91a2e2fb498dc1837c9396428d78f6afbaba" // git rev-parse V_9_9_P1
	opensshDJMKey = "SHA256:JDubEpIXO0CfnM+iagFQce4MiJJDqTvgbBR80SuRwTQ"
)

// splitRawTag splits a raw tag object ("git cat-file tag") into what git signed and
// the signature, as git does: the signature starts at the last armor header line.
func splitRawTag(t testing.TB, raw []byte) (payload, sig []byte) {
	t.Helper()
	i := bytes.LastIndex(raw, []byte("\n-----BEGIN SSH SIGNATURE-----"))
	require.Positive(t, i)
	return raw[:i+1], raw[i+1:]
}

func opensshKeys(t testing.TB, allowedSigners []byte) *Keys {
	t.Helper()
	k, err := NewKeys(nil, [][]byte{allowedSigners}, nil, Options{Now: func() time.Time { return fixedNow }})
	require.NoError(t, err)
	return k
}

func TestOpenSSHReleaseTagFixtureIsTheRealObject(t *testing.T) {
	raw := fixture(t, "openssh", "V_9_9_P1.tag")
	h := sha1.New()
	fmt.Fprintf(h, "tag %d\x00", len(raw))
	h.Write(raw)
	assert.Equal(t, opensshTagID, hex.EncodeToString(h.Sum(nil)))
}

func TestOpenSSHReleaseTagVerifies(t *testing.T) {
	payload, sig := splitRawTag(t, fixture(t, "openssh", "V_9_9_P1.tag"))
	k := opensshKeys(t, fixture(t, "openssh", "git_allowed_signers"))

	signer, err := k.VerifyGitTag(payload, sig)
	require.NoError(t, err)
	assert.Equal(t, Signer{Scheme: "ssh", Fingerprint: opensshDJMKey, Identity: "djm@mindrot.org"}, signer)

	// Altered content is still caught.
	forged := bytes.Replace(payload, []byte("openssh-9.9p1"), []byte("openssh-9.9p2"), 1)
	require.NotEqual(t, payload, forged)
	_, err = k.VerifyGitTag(forged, sig)
	assertRefused(t, err, ErrBadSignature)

	// The same signature is not a file signature (its namespace is "git").
	_, err = k.VerifyDetached(payload, sig)
	assertRefused(t, err, ErrWrongNamespace)
}

// The reason the tag needs its own verifier: the signature carries no user-presence
// flag, and x/crypto/ssh's Verify demands it (sshd's default), while "ssh-keygen -Y
// verify" does not look at the flags. If x/crypto ever changes, this test says so.
func TestOpenSSHReleaseTagHasNoUserPresenceFlag(t *testing.T) {
	payload, sig := splitRawTag(t, fixture(t, "openssh", "V_9_9_P1.tag"))
	block, _ := pem.Decode(sig)
	require.NotNil(t, block)
	parsed, err := parseSSHSig(block.Bytes)
	require.NoError(t, err)
	require.Equal(t, ssh.KeyAlgoSKECDSA256, parsed.pub.Type())

	flags, err := parsed.verify(payload)
	require.NoError(t, err)
	assert.Zero(t, flags&skUserPresent, "no user presence")
	assert.Zero(t, flags&skUserVerified, "no user verification")

	h, err := parsed.newHash()
	require.NoError(t, err)
	h.Write(payload)
	data := parsed.signedData(h.Sum(nil))
	assert.Error(t, parsed.pub.Verify(data, &parsed.sig), "x/crypto/ssh refuses a security-key signature without user presence")
}

func TestOpenSSHReleaseTagWithVerifyRequired(t *testing.T) {
	payload, sig := splitRawTag(t, fixture(t, "openssh", "V_9_9_P1.tag"))
	var djm []string
	for _, line := range strings.Split(string(fixture(t, "openssh", "git_allowed_signers")), "\n") {
		if strings.HasPrefix(line, "djm@mindrot.org ") {
			djm = append(djm, line)
		}
	}
	require.NotEmpty(t, djm)
	for _, opt := range []string{"verify-required", "verify-required,no-touch-required"} {
		t.Run(opt, func(t *testing.T) {
			var lines []string
			for _, l := range djm {
				lines = append(lines, strings.Replace(l, "djm@mindrot.org ", "djm@mindrot.org "+opt+" ", 1))
			}
			_, err := opensshKeys(t, []byte(strings.Join(lines, "\n"))).VerifyGitTag(payload, sig)
			assertRefused(t, err, ErrSecurityKeyFlags)
		})
	}
	// no-touch-required alone states the default.
	var lines []string
	for _, l := range djm {
		lines = append(lines, strings.Replace(l, "djm@mindrot.org ", "djm@mindrot.org no-touch-required ", 1))
	}
	_, err := opensshKeys(t, []byte(strings.Join(lines, "\n"))).VerifyGitTag(payload, sig)
	assert.NoError(t, err)
}

func TestOpenSSHAllowedSignersValidBefore(t *testing.T) {
	// dtucker's retired key carries valid-before="20241206" in OpenSSH's own file.
	k := opensshKeys(t, fixture(t, "openssh", "git_allowed_signers"))
	var found bool
	for _, key := range k.ssh {
		if key.line.opts.beforeText == "20241206" {
			found = true
			assert.Equal(t, time.Date(2024, 12, 6, 0, 0, 0, 0, time.UTC), key.line.opts.validBefore)
			assert.Equal(t, "dtucker@dtucker.net", key.line.principals)
		}
	}
	assert.True(t, found)
}
