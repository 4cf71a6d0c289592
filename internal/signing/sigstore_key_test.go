package signing

import (
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/checksum"
)

// cosign v3 "sign-blob --key --bundle" (testdata/gen-formats.sh) with the pinned
// TEST-ONLY cosign key pair.
const keyBundle = "SHA256SUMS.cosign-key.sigstore.json"

func TestSigstoreKeyBundle(t *testing.T) {
	k := pinnedKeys(t)
	b := sigstoreFixture(t, keyBundle)
	msg := release(t, "SHA256SUMS")
	require.True(t, IsSigstoreBundle(b))

	v, err := k.Verify(msg, b)
	require.NoError(t, err)
	assert.Equal(t, Signer{Scheme: "cosign", Fingerprint: fingerprint(t, "cosign.pub")}, v.Signer, "the same signer as the key's raw signatures")
	assert.True(t, v.Time.IsZero(), "no transparency-log entry: no trusted time")
	assert.Empty(t, v.TimeSource)

	signer, err := k.VerifyDetached(msg, b)
	require.NoError(t, err)
	assert.Equal(t, v.Signer, signer)

	sum := sha256.Sum256(msg)
	_, err = k.VerifyBundleDigest(checksum.Digest(sum).Sum(), b)
	assert.NoError(t, err)

	// The same key's raw signature and bundle count once towards a threshold.
	res, err := k.VerifyThreshold(msg, [][]byte{release(t, "SHA256SUMS.cosign.sig"), b}, 2)
	assertRefused(t, err, ErrThresholdNotMet)
	assert.Len(t, res.Signers, 1)
	_, err = k.VerifyThreshold(msg, [][]byte{b, release(t, "SHA256SUMS.asc")}, 2)
	assert.NoError(t, err)
}

func TestSigstoreKeyBundleRefusals(t *testing.T) {
	b := sigstoreFixture(t, keyBundle)
	msg := release(t, "SHA256SUMS")

	_, err := pinnedKeys(t).Verify(release(t, "SHA256SUMS.tampered"), b)
	assertRefused(t, err, ErrBadSignature)

	other, err := NewKeys(nil, nil, [][]byte{ecdsaPEM(t, elliptic.P256())}, Options{})
	require.NoError(t, err)
	_, err = other.Verify(msg, b)
	assertRefused(t, err, ErrBadSignature)

	_, err = scaffoldingKeys(t, othernameID).Verify(msg, b)
	assertRefused(t, err, ErrUnknownKey)

	// The key hint is not authenticated and selects nothing: a changed hint does
	// not stop the pinned key, and does not let another key in.
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	m["verificationMaterial"].(map[string]any)["publicKey"].(map[string]any)["hint"] = "AAAA"
	hinted, err := json.Marshal(m)
	require.NoError(t, err)
	_, err = pinnedKeys(t).Verify(msg, hinted)
	assert.NoError(t, err)
	_, err = other.Verify(msg, hinted)
	assertRefused(t, err, ErrBadSignature)

	// A pinned identity policy does not accept a key-signed bundle as keyless.
	withID, err := NewKeys(nil, nil, [][]byte{key(t, "cosign.pub")}, Options{Now: func() time.Time { return fixedNow },
		Sigstore: SigstoreOptions{TrustedRoot: sigstoreFixture(t, "trusted_root.public-good.json"), Identities: []SigstoreIdentity{grIdentity}}})
	require.NoError(t, err)
	v, err := withID.Verify(msg, b)
	require.NoError(t, err)
	assert.Equal(t, "cosign", v.Signer.Scheme)
}

func TestSigstoreKeyLegacyBundle(t *testing.T) {
	b := sigstoreFixture(t, "SHA256SUMS.cosign-key.legacy.json")
	msg := release(t, "SHA256SUMS")
	require.True(t, IsSigstoreBundle(b))
	v, err := pinnedKeys(t).Verify(msg, b)
	require.NoError(t, err)
	assert.Equal(t, fingerprint(t, "cosign.pub"), v.Signer.Fingerprint)
	_, err = pinnedKeys(t).Verify(release(t, "SHA256SUMS.tampered"), b)
	assertRefused(t, err, ErrBadSignature)
}
