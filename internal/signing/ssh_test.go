package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

func TestSSHDetachedGood(t *testing.T) {
	k := pinnedKeys(t)
	msg := release(t, "SHA256SUMS")
	cases := []struct{ sig, keyFile, comment string }{
		{"SHA256SUMS.ssh.sig", "release_ed25519.pub", "release@example.org TEST-ONLY"},
		{"SHA256SUMS.ssh-rsa.sig", "ssh_rsa3072.pub", "release-rsa@example.org TEST-ONLY"},
	}
	for _, c := range cases {
		t.Run(c.sig, func(t *testing.T) {
			signer, err := k.VerifyDetached(msg, release(t, c.sig))
			require.NoError(t, err)
			assert.Equal(t, Signer{Scheme: "ssh", Fingerprint: fingerprint(t, c.keyFile), Identity: c.comment}, signer)
		})
	}
}

func TestSSHRefusals(t *testing.T) {
	k := pinnedKeys(t)
	msg := release(t, "SHA256SUMS")

	_, err := k.VerifyDetached(msg, release(t, "SHA256SUMS.ssh-wrongns.sig"))
	assertRefused(t, err, ErrWrongNamespace)
	assert.Contains(t, err.Error(), `"git"`)

	_, err = k.VerifyDetached(msg, release(t, "SHA256SUMS.ssh-other.sig"))
	assertRefused(t, err, ErrUnknownKey)
	assert.Contains(t, err.Error(), fingerprint(t, "other_ssh_ed25519.pub"))

	for _, sig := range []string{"SHA256SUMS.ssh.sig", "SHA256SUMS.ssh-rsa.sig"} {
		_, err = k.VerifyDetached(release(t, "SHA256SUMS.tampered"), release(t, sig))
		assertRefused(t, err, ErrBadSignature)
	}

	// A "file" signature is not a git tag signature.
	_, err = k.VerifyGitTag(msg, release(t, "SHA256SUMS.ssh.sig"))
	assertRefused(t, err, ErrWrongNamespace)

	// Data after the armored block is refused, not ignored.
	_, err = k.VerifyDetached(msg, append(release(t, "SHA256SUMS.ssh.sig"), []byte("trailing\n")...))
	assertRefused(t, err, ErrMalformed)

	// Armor around garbage.
	_, err = k.VerifyDetached(msg, []byte("-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n"))
	assertRefused(t, err, ErrMalformed)
}

func TestSSHWeakKeysRefusedAtLoad(t *testing.T) {
	_, err := NewKeys(nil, [][]byte{key(t, "release_ed25519.pub"), key(t, "ssh_rsa1024.pub")}, nil, Options{})
	require.Error(t, err)
	var ke *KeyError
	require.ErrorAs(t, err, &ke)
	assert.Equal(t, "ssh", ke.Scheme)
	assert.Equal(t, 1, ke.Index)
	assert.ErrorIs(t, err, ErrWeakAlgorithm)
	assert.Contains(t, err.Error(), "1024")
}

func TestSSHAuthorizedKeysOptions(t *testing.T) {
	pub := strings.TrimSpace(string(key(t, "release_ed25519.pub")))
	item := "# pinned release key\n\nrestrict,no-pty " + pub + "\n" + strings.TrimSpace(string(key(t, "ssh_rsa3072.pub"))) + "\n"
	k, err := NewKeys(nil, [][]byte{[]byte(item)}, nil, Options{})
	require.NoError(t, err)
	require.Len(t, k.Signers(), 2)
	_, err = k.VerifyDetached(release(t, "SHA256SUMS"), release(t, "SHA256SUMS.ssh.sig"))
	assert.NoError(t, err)

	// expiry-time is honoured against Options.Now.
	expiring := []byte(`expiry-time="20250701" ` + pub)
	before, err := NewKeys(nil, [][]byte{expiring}, nil, Options{Now: func() time.Time { return time.Date(2025, 6, 30, 0, 0, 0, 0, time.UTC) }})
	require.NoError(t, err)
	_, err = before.VerifyDetached(release(t, "SHA256SUMS"), release(t, "SHA256SUMS.ssh.sig"))
	assert.NoError(t, err)
	after, err := NewKeys(nil, [][]byte{expiring}, nil, Options{Now: func() time.Time { return fixedNow }})
	require.NoError(t, err)
	_, err = after.VerifyDetached(release(t, "SHA256SUMS"), release(t, "SHA256SUMS.ssh.sig"))
	assertRefused(t, err, ErrKeyExpired)

	_, err = NewKeys(nil, [][]byte{[]byte(`expiry-time="soon" ` + pub)}, nil, Options{})
	assert.ErrorIs(t, err, ErrInvalidKey)
	_, err = NewKeys(nil, [][]byte{[]byte(`cert-authority ` + pub)}, nil, Options{})
	assert.ErrorIs(t, err, ErrInvalidKey)
}

func TestSSHBadKeyInput(t *testing.T) {
	pub := strings.TrimSpace(string(key(t, "release_ed25519.pub")))
	for name, item := range map[string]string{
		"empty":             "",
		"only comments":     "# nothing\n\n",
		"garbage":           "hello world",
		"one bad line":      pub + "\nssh-ed25519 AAAAnotbase64!!\n",
		"truncated key":     pub[:40],
		"openpgp key":       string(key(t, "maintainer-ed25519.asc")),
		"trailing garbage ": pub + " comment\x00\x01",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewKeys(nil, [][]byte{[]byte(item)}, nil, Options{})
			if name == "trailing garbage " {
				// the comment swallows it; only printable text is kept for humans
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidKey)
		})
	}
}

func TestSSHPrivateKeyRefused(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	block, err := ssh.MarshalPrivateKey(priv, "TEST ONLY")
	require.NoError(t, err)
	secret := pem.EncodeToMemory(block)
	_, err = NewKeys(nil, [][]byte{secret}, nil, Options{})
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrPrivateKey)
	assertNoEcho(t, err, string(secret))
}
