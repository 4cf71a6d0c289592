package signing

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDetachedInputRefusals(t *testing.T) {
	k := pinnedKeys(t)
	msg := release(t, "SHA256SUMS")

	for name, sig := range map[string][]byte{"nil": nil, "empty": {}, "whitespace": []byte(" \n\r\n\t")} {
		_, err := k.VerifyDetached(msg, sig)
		assertRefused(t, err, ErrNoSignature)
		_, err = k.VerifyGitTag(msg, sig)
		assertRefused(t, err, ErrNoSignature)
		_ = name
	}

	huge := bytes.Repeat([]byte("A"), MaxSignatureSize+1)
	_, err := k.VerifyDetached(msg, huge)
	assertRefused(t, err, ErrMalformed)
	assert.Contains(t, err.Error(), "65536")
	_, err = k.VerifyGitTag(msg, huge)
	assertRefused(t, err, ErrMalformed)

	// A big armored signature padded just over the limit is refused before parsing.
	padded := append(append([]byte{}, release(t, "SHA256SUMS.asc")...), bytes.Repeat([]byte("\n"), MaxSignatureSize)...)
	_, err = k.VerifyDetached(msg, padded)
	assertRefused(t, err, ErrMalformed)

	hostile := "-----BEGIN " + strings.Repeat("\x1b[31m<@channel>", 500) + "-----\n"
	for name, sig := range map[string]string{
		"text":          "this is not a signature at all",
		"unknown armor": "-----BEGIN PGP MESSAGE-----\n\nabc\n-----END PGP MESSAGE-----\n",
		"hostile armor": hostile,
		"binary junk":   "\xff\xfe\xfd",
		"nul":           "\x00\x00",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := k.VerifyDetached(msg, []byte(sig))
			assertRefused(t, err, ErrMalformed)
			assert.NotContains(t, err.Error(), "\x1b")
			assert.NotContains(t, err.Error(), "<@channel><@channel><@channel>")
		})
	}
}

func TestEmptyAndNilKeys(t *testing.T) {
	k, err := NewKeys(nil, nil, nil, Options{})
	require.NoError(t, err)
	assert.True(t, k.Empty())
	assert.Empty(t, k.Signers())
	_, err = k.VerifyDetached(release(t, "SHA256SUMS"), release(t, "SHA256SUMS.asc"))
	assertRefused(t, err, ErrUnknownKey)
	_, err = k.VerifyDetached(release(t, "SHA256SUMS"), release(t, "SHA256SUMS.ssh.sig"))
	assertRefused(t, err, ErrUnknownKey)

	var nilKeys *Keys
	assert.True(t, nilKeys.Empty())
	_, err = nilKeys.VerifyDetached(release(t, "SHA256SUMS"), release(t, "SHA256SUMS.asc"))
	assertRefused(t, err, ErrUnknownKey)
}

func TestSignersListsPinnedKeys(t *testing.T) {
	got := pinnedKeys(t).Signers()
	var fps []string
	for _, s := range got {
		fps = append(fps, s.Fingerprint)
	}
	assert.Equal(t, []string{
		fingerprint(t, "maintainer-ed25519.asc"), fingerprint(t, "maintainer-rsa3072.asc"), fingerprint(t, "expired-ed25519.asc"),
		fingerprint(t, "release_ed25519.pub"), fingerprint(t, "ssh_rsa3072.pub"), fingerprint(t, "cosign.pub"),
	}, fps)
}

func TestConcurrentVerification(t *testing.T) {
	k := pinnedKeys(t)
	msg := release(t, "SHA256SUMS")
	sigs := [][]byte{release(t, "SHA256SUMS.asc"), release(t, "SHA256SUMS.rsa.sig"), release(t, "SHA256SUMS.ssh.sig"), release(t, "SHA256SUMS.cosign.sig")}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, sig := range sigs {
				_, err := k.VerifyDetached(msg, sig)
				assert.NoError(t, err)
			}
		}()
	}
	wg.Wait()
}
