package signing

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCosignDetachedGood(t *testing.T) {
	k := pinnedKeys(t)
	sig := release(t, "SHA256SUMS.cosign.sig")
	signer, err := k.VerifyDetached(release(t, "SHA256SUMS"), sig)
	require.NoError(t, err)
	assert.Equal(t, Signer{Scheme: "cosign", Fingerprint: fingerprint(t, "cosign.pub")}, signer)

	// A trailing newline (an editor, "echo >") does not matter.
	_, err = k.VerifyDetached(release(t, "SHA256SUMS"), append(append([]byte{}, sig...), '\n'))
	assert.NoError(t, err)
}

func TestCosignRefusals(t *testing.T) {
	k := pinnedKeys(t)
	sig := release(t, "SHA256SUMS.cosign.sig")

	_, err := k.VerifyDetached(release(t, "SHA256SUMS.tampered"), sig)
	assertRefused(t, err, ErrBadSignature)

	// Another cosign key pinned instead: the raw signature names no key, so this reads as "does not verify".
	other, err := NewKeys(nil, nil, [][]byte{ecdsaPEM(t, elliptic.P256())}, Options{})
	require.NoError(t, err)
	_, err = other.VerifyDetached(release(t, "SHA256SUMS"), sig)
	assertRefused(t, err, ErrBadSignature)

	// No cosign key pinned at all.
	noCosign, err := NewKeys([][]byte{key(t, "maintainer-ed25519.asc")}, nil, nil, Options{})
	require.NoError(t, err)
	_, err = noCosign.VerifyDetached(release(t, "SHA256SUMS"), sig)
	assertRefused(t, err, ErrUnknownKey)

	// Valid base64, not a signature.
	_, err = k.VerifyDetached(release(t, "SHA256SUMS"), []byte("aGVsbG8gd29ybGQ="))
	assertRefused(t, err, ErrBadSignature)
	// Base64 of a too-large blob.
	_, err = k.VerifyDetached(release(t, "SHA256SUMS"), bytes.Repeat([]byte("AAAA"), 1000))
	assertRefused(t, err, ErrMalformed)
}

func ecdsaPEM(t *testing.T, curve elliptic.Curve) []byte {
	t.Helper()
	priv, err := ecdsa.GenerateKey(curve, rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestCosignKeyPolicy(t *testing.T) {
	_, err := NewKeys(nil, nil, [][]byte{ecdsaPEM(t, elliptic.P384())}, Options{})
	assert.NoError(t, err)
	_, err = NewKeys(nil, nil, [][]byte{ecdsaPEM(t, elliptic.P224())}, Options{})
	assert.ErrorIs(t, err, ErrWeakAlgorithm)

	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&weak.PublicKey)
	require.NoError(t, err)
	_, err = NewKeys(nil, nil, [][]byte{key(t, "cosign.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}, Options{})
	require.Error(t, err)
	var ke *KeyError
	require.ErrorAs(t, err, &ke)
	assert.Equal(t, "cosign", ke.Scheme)
	assert.Equal(t, 1, ke.Index)
	assert.ErrorIs(t, err, ErrWeakAlgorithm)
}

func TestCosignPrivateKeyRefused(t *testing.T) {
	secret := key(t, "cosign.secret.key")
	_, err := NewKeys(nil, nil, [][]byte{secret}, Options{})
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrPrivateKey)
	assertNoEcho(t, err, string(secret))
}

func TestCosignBadKeyInput(t *testing.T) {
	for name, item := range map[string][]byte{
		"empty":         {},
		"not pem":       []byte("hello"),
		"bad der":       pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}}),
		"certificate":   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}),
		"trailing junk": append(append([]byte{}, key(t, "cosign.pub")...), []byte("junk")...),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewKeys(nil, nil, [][]byte{item}, Options{})
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidKey)
		})
	}
}
