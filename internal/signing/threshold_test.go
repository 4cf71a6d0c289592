package signing

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestThreshold(t *testing.T) {
	k := pinnedKeys(t)
	msg := release(t, "SHA256SUMS")
	sig := func(n string) []byte { return release(t, n) }

	// Three distinct pinned keys of three schemes.
	res, err := k.VerifyThreshold(msg, [][]byte{sig("SHA256SUMS.asc"), sig("SHA256SUMS.ssh.sig"), sig("SHA256SUMS.cosign.sig")}, 3)
	require.NoError(t, err)
	require.Len(t, res.Signers, 3)
	assert.Equal(t, fingerprint(t, "maintainer-ed25519.asc"), res.Signers[0].Signer.Fingerprint)
	assert.Equal(t, fingerprint(t, "release_ed25519.pub"), res.Signers[1].Signer.Fingerprint)
	assert.Equal(t, fingerprint(t, "cosign.pub"), res.Signers[2].Signer.Fingerprint)
	assert.Empty(t, res.Refused)

	// The same key twice (binary-mode and text-mode signatures) counts once.
	res, err = k.VerifyThreshold(msg, [][]byte{sig("SHA256SUMS.asc"), sig("SHA256SUMS.textmode.asc")}, 2)
	assertRefused(t, err, ErrThresholdNotMet)
	assert.Len(t, res.Signers, 1)
	assert.Contains(t, err.Error(), "1 of the 2 required distinct pinned keys signed")
	assert.Contains(t, err.Error(), "already counted")

	// A key that is not pinned and a tampered file do not count.
	_, err = k.VerifyThreshold(msg, [][]byte{sig("SHA256SUMS.asc"), sig("SHA256SUMS.other.asc")}, 2)
	assertRefused(t, err, ErrThresholdNotMet)
	res, err = k.VerifyThreshold(release(t, "SHA256SUMS.tampered"), [][]byte{sig("SHA256SUMS.asc"), sig("SHA256SUMS.rsa.sig")}, 1)
	assertRefused(t, err, ErrThresholdNotMet)
	assert.Len(t, res.Refused, 2)

	// 2 of 3 offered is enough for a threshold of 2; the refused one is reported.
	res, err = k.VerifyThreshold(msg, [][]byte{sig("SHA256SUMS.other.asc"), sig("SHA256SUMS.rsa.sig"), sig("SHA256SUMS.ssh-rsa.sig")}, 2)
	require.NoError(t, err)
	assert.Len(t, res.Signers, 2)
	require.Len(t, res.Refused, 1)
	assert.ErrorIs(t, res.Refused[0], ErrUnknownKey)

	// Default threshold is 1; an empty list is refused.
	_, err = k.VerifyThreshold(msg, [][]byte{sig("SHA256SUMS.rsa.sig")}, 0)
	assert.NoError(t, err)
	_, err = k.VerifyThreshold(msg, nil, 1)
	assertRefused(t, err, ErrThresholdNotMet)
	_, err = k.VerifyThreshold(msg, make([][]byte, MaxThresholdSignatures+1), 1)
	assertRefused(t, err, ErrMalformed)
}

// One OpenPGP file may carry signatures by several keys (gpg --detach-sign -u A -u
// B): each counts.
func TestThresholdOneFileSeveralSigners(t *testing.T) {
	k, err := NewKeys([][]byte{fixture(t, "clearsigned", "clearsign-ed25519.asc"), fixture(t, "threshold", "second-ed25519.asc")}, nil, nil,
		Options{Now: func() time.Time { return fixedNow }})
	require.NoError(t, err)
	msg := release(t, "SHA256SUMS")
	two := fixture(t, "threshold", "SHA256SUMS.2of2.asc")

	res, err := k.VerifyThreshold(msg, [][]byte{two}, 2)
	require.NoError(t, err)
	assert.Len(t, res.Signers, 2)

	// With only one of the two keys pinned, the file counts once.
	one, err := NewKeys([][]byte{fixture(t, "threshold", "second-ed25519.asc")}, nil, nil, Options{Now: func() time.Time { return fixedNow }})
	require.NoError(t, err)
	res, err = one.VerifyThreshold(msg, [][]byte{two}, 2)
	assertRefused(t, err, ErrThresholdNotMet)
	assert.Len(t, res.Signers, 1)
	// And Verify (threshold 1) accepts the file.
	_, err = one.Verify(msg, two)
	assert.NoError(t, err)
}
