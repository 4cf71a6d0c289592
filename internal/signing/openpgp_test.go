package signing

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func dearmor(t testing.TB, b []byte) []byte {
	t.Helper()
	block, err := armor.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	out, err := io.ReadAll(block.Body)
	require.NoError(t, err)
	return out
}

func TestOpenPGPDetachedGood(t *testing.T) {
	k := pinnedKeys(t)
	msg := release(t, "SHA256SUMS")
	cases := []struct{ sig, keyFile, identity string }{
		{"SHA256SUMS.asc", "maintainer-ed25519.asc", "Test Maintainer (TEST ONLY) <maintainer@example.org>"},
		{"SHA256SUMS.textmode.asc", "maintainer-ed25519.asc", "Test Maintainer (TEST ONLY) <maintainer@example.org>"},
		// binary, made by the RSA key's signing subkey: the Signer is still the primary key.
		{"SHA256SUMS.rsa.sig", "maintainer-rsa3072.asc", "Test Maintainer RSA (TEST ONLY) <maintainer-rsa@example.org>"},
	}
	for _, c := range cases {
		t.Run(c.sig, func(t *testing.T) {
			signer, err := k.VerifyDetached(msg, release(t, c.sig))
			require.NoError(t, err)
			// gen.sh makes every detached signature at 2025-06-01T12:00:00Z (gpg --faked-system-time).
			assert.Equal(t, Signer{Scheme: "openpgp", Fingerprint: fingerprint(t, c.keyFile), Identity: c.identity,
				SignedAt: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}, signer)
		})
	}
}

func TestOpenPGPDetachedBinaryOfArmored(t *testing.T) {
	k := pinnedKeys(t)
	signer, err := k.VerifyDetached(release(t, "SHA256SUMS"), dearmor(t, release(t, "SHA256SUMS.asc")))
	require.NoError(t, err)
	assert.Equal(t, fingerprint(t, "maintainer-ed25519.asc"), signer.Fingerprint)
}

func TestOpenPGPBinaryKeyAndKeyringBlock(t *testing.T) {
	ed := dearmor(t, key(t, "maintainer-ed25519.asc"))
	rsa := dearmor(t, key(t, "maintainer-rsa3072.asc"))

	// One binary item holding two keys (a keyring), and two armored blocks in one item.
	var armored bytes.Buffer
	armored.Write(key(t, "maintainer-ed25519.asc"))
	armored.Write(key(t, "maintainer-rsa3072.asc"))
	for name, item := range map[string][]byte{
		"binary keyring":      append(append([]byte{}, ed...), rsa...),
		"two armored blocks":  armored.Bytes(),
		"armored keyring":     armorKey(t, append(append([]byte{}, ed...), rsa...)),
		"leading whitespace ": append([]byte("\n\n  "), armored.Bytes()...),
	} {
		t.Run(name, func(t *testing.T) {
			k, err := NewKeys([][]byte{item}, nil, nil, Options{})
			require.NoError(t, err)
			got := k.Signers()
			require.Len(t, got, 2)
			assert.Equal(t, fingerprint(t, "maintainer-ed25519.asc"), got[0].Fingerprint)
			assert.Equal(t, fingerprint(t, "maintainer-rsa3072.asc"), got[1].Fingerprint)
			_, err = k.VerifyDetached(release(t, "SHA256SUMS"), release(t, "SHA256SUMS.rsa.sig"))
			assert.NoError(t, err)
		})
	}
}

func armorKey(t testing.TB, binary []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := armor.Encode(&out, openpgp.PublicKeyType, nil)
	require.NoError(t, err)
	_, err = w.Write(binary)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return out.Bytes()
}

func TestOpenPGPTamperedChecksumFile(t *testing.T) {
	k := pinnedKeys(t)
	tampered := release(t, "SHA256SUMS.tampered")
	require.NotEqual(t, release(t, "SHA256SUMS"), tampered)
	for _, sig := range []string{"SHA256SUMS.asc", "SHA256SUMS.textmode.asc", "SHA256SUMS.rsa.sig"} {
		_, err := k.VerifyDetached(tampered, release(t, sig))
		assertRefused(t, err, ErrBadSignature)
	}
}

func TestOpenPGPWrongKey(t *testing.T) {
	_, err := pinnedKeys(t).VerifyDetached(release(t, "SHA256SUMS"), release(t, "SHA256SUMS.other.asc"))
	assertRefused(t, err, ErrUnknownKey)
	assert.Contains(t, err.Error(), fingerprint(t, "other-ed25519.asc"), "names the key that signed")
}

func TestOpenPGPSHA1Refused(t *testing.T) {
	_, err := pinnedKeys(t).VerifyDetached(release(t, "SHA256SUMS"), release(t, "SHA256SUMS.sha1.asc"))
	assertRefused(t, err, ErrWeakAlgorithm)
	assert.Contains(t, err.Error(), "SHA-1")
}

// go-crypto's v1 API does not refuse SHA-1 message signatures by default
// (only its v2 API applies RejectMessageHashAlgorithms): this is why the
// package checks the hash itself. If this starts failing after an upgrade,
// the library got stricter; the policy here stays.
func TestGoCryptoDefaultAcceptsSHA1(t *testing.T) {
	ring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(key(t, "maintainer-ed25519.asc")))
	require.NoError(t, err)
	_, err = openpgp.CheckArmoredDetachedSignature(ring, bytes.NewReader(release(t, "SHA256SUMS")),
		bytes.NewReader(release(t, "SHA256SUMS.sha1.asc")), &packet.Config{Time: func() time.Time { return fixedNow }})
	assert.NoError(t, err)
}

func TestOpenPGPMD5Refused(t *testing.T) {
	raw := dearmor(t, release(t, "SHA256SUMS.asc"))
	require.Equal(t, byte(0x88), raw[0], "old-format signature packet with a one-byte length")
	require.Equal(t, byte(4), raw[2], "v4 signature")
	raw[5] = 1 // hash algorithm: MD5
	_, err := pinnedKeys(t).VerifyDetached(release(t, "SHA256SUMS"), raw)
	assertRefused(t, err, ErrWeakAlgorithm)
}

func TestOpenPGPRSA1024(t *testing.T) {
	_, err := NewKeys([][]byte{key(t, "maintainer-ed25519.asc"), key(t, "rsa1024.asc")}, nil, nil, Options{})
	require.Error(t, err)
	var ke *KeyError
	require.ErrorAs(t, err, &ke)
	assert.Equal(t, "openpgp", ke.Scheme)
	assert.Equal(t, 1, ke.Index)
	assert.ErrorIs(t, err, ErrWeakAlgorithm)
	assert.True(t, strings.HasPrefix(err.Error(), "openpgp key #1: "), err.Error())
	assert.Contains(t, err.Error(), "1024")

	// Had it been loaded anyway, its signature is still refused.
	k := keysBypassingLoadPolicy(t, "rsa1024.asc")
	_, err = k.VerifyDetached(release(t, "SHA256SUMS"), release(t, "SHA256SUMS.rsa1024.asc"))
	assertRefused(t, err, ErrWeakAlgorithm)
}

// keysBypassingLoadPolicy pins a key without the load-time checks, to show
// that verification re-checks what it relies on.
func keysBypassingLoadPolicy(t *testing.T, file string) *Keys {
	t.Helper()
	ring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(key(t, file)))
	require.NoError(t, err)
	require.Len(t, ring, 1)
	return &Keys{
		now: func() time.Time { return fixedNow },
		pgp: []*pgpKey{{entity: ring[0], signer: Signer{Scheme: "openpgp", Fingerprint: fingerprint(t, file)}}},
	}
}

func TestOpenPGPExpiredKey(t *testing.T) {
	k := pinnedKeys(t) // the expired key loads...
	_, err := k.VerifyDetached(release(t, "SHA256SUMS"), release(t, "SHA256SUMS.expired.asc"))
	assertRefused(t, err, ErrKeyExpired) // ...and its signatures are refused
	assert.Contains(t, err.Error(), "2024-01-02")

	// The check is against Options.Now: while the key was valid, the same signature is good.
	valid, err := NewKeys([][]byte{key(t, "expired-ed25519.asc")}, nil, nil,
		Options{Now: func() time.Time { return time.Date(2024, 1, 1, 18, 0, 0, 0, time.UTC) }})
	require.NoError(t, err)
	signer, err := valid.VerifyDetached(release(t, "SHA256SUMS"), release(t, "SHA256SUMS.expired.asc"))
	require.NoError(t, err)
	assert.Equal(t, fingerprint(t, "expired-ed25519.asc"), signer.Fingerprint)

	// With the real clock too (default Now).
	real, err := NewKeys([][]byte{key(t, "expired-ed25519.asc")}, nil, nil, Options{})
	require.NoError(t, err)
	_, err = real.VerifyDetached(release(t, "SHA256SUMS"), release(t, "SHA256SUMS.expired.asc"))
	assertRefused(t, err, ErrKeyExpired)
}

// go-crypto does refuse an expired key by default (checked against
// Config.Time); recorded so the report on library behaviour stays true.
func TestGoCryptoDefaultRefusesExpired(t *testing.T) {
	ring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(key(t, "expired-ed25519.asc")))
	require.NoError(t, err)
	_, err = openpgp.CheckArmoredDetachedSignature(ring, bytes.NewReader(release(t, "SHA256SUMS")),
		bytes.NewReader(release(t, "SHA256SUMS.expired.asc")), &packet.Config{Time: func() time.Time { return fixedNow }})
	assert.ErrorIs(t, err, pgperrors.ErrKeyExpired)
}

func TestOpenPGPSignatureFromTheFuture(t *testing.T) {
	// Fixture signatures are dated 2025-06-01; a clock at 2025-05-01 sees them in the future.
	k, err := NewKeys([][]byte{key(t, "maintainer-ed25519.asc")}, nil, nil,
		Options{Now: func() time.Time { return time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC) }})
	require.NoError(t, err)
	_, err = k.VerifyDetached(release(t, "SHA256SUMS"), release(t, "SHA256SUMS.asc"))
	assertRefused(t, err, ErrBadSignature)
	assert.Contains(t, err.Error(), "future")
}

func TestOpenPGPRevokedKey(t *testing.T) {
	_, err := NewKeys([][]byte{key(t, "revoked-ed25519.asc")}, nil, nil, Options{})
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrKeyRevoked)
	var ke *KeyError
	require.ErrorAs(t, err, &ke)
	assert.Equal(t, 0, ke.Index)

	// The signature was made before the revocation; it is refused all the same.
	k := keysBypassingLoadPolicy(t, "revoked-ed25519.asc")
	_, err = k.VerifyDetached(release(t, "SHA256SUMS"), release(t, "SHA256SUMS.revoked.asc"))
	assertRefused(t, err, ErrKeyRevoked)
}

func TestOpenPGPNoSigningCapability(t *testing.T) {
	_, err := NewKeys([][]byte{key(t, "nosign-ed25519.asc")}, nil, nil, Options{})
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrInvalidKey)
	assert.Contains(t, err.Error(), "sign")
}

func TestOpenPGPPrivateKeyRefused(t *testing.T) {
	e, err := openpgp.NewEntity("Private Test", "TEST ONLY", "private@example.org", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	require.NoError(t, err)
	var binary bytes.Buffer
	require.NoError(t, e.SerializePrivate(&binary, nil))
	var armored bytes.Buffer
	w, err := armor.Encode(&armored, openpgp.PrivateKeyType, nil)
	require.NoError(t, err)
	_, err = w.Write(binary.Bytes())
	require.NoError(t, err)
	require.NoError(t, w.Close())

	broken := append([]byte("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nnot even base64\n"), 0)
	for name, item := range map[string][]byte{"armored": armored.Bytes(), "binary": binary.Bytes(), "broken armor": broken} {
		t.Run(name, func(t *testing.T) {
			_, err := NewKeys([][]byte{item}, nil, nil, Options{})
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrPrivateKey)
			assert.Contains(t, err.Error(), "PRIVATE")
			assertNoEcho(t, err, armored.String())
		})
	}
}

// assertNoEcho checks that no line of the secret input shows up in err.
func assertNoEcho(t *testing.T, err error, secret string) {
	t.Helper()
	for _, line := range strings.Split(secret, "\n") {
		line = strings.TrimSpace(line)
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
			assert.NotContains(t, err.Error(), line)
		}
	}
	assert.Less(t, len(err.Error()), 400)
}

func TestOpenPGPBadKeyInput(t *testing.T) {
	for name, item := range map[string][]byte{
		"empty":          nil,
		"whitespace":     []byte(" \n\t"),
		"garbage":        []byte("this is not a key"),
		"binary garbage": {0x99, 0x01, 0x02, 0x03},
		"signature":      release(t, "SHA256SUMS.asc"),
		"truncated":      key(t, "maintainer-ed25519.asc")[:200],
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewKeys([][]byte{item}, nil, nil, Options{})
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidKey)
			assert.NotErrorIs(t, err, ErrPrivateKey)
		})
	}
}

func TestOpenPGPNotASignature(t *testing.T) {
	k := pinnedKeys(t)
	msg := release(t, "SHA256SUMS")
	// A public key (binary) where a signature belongs.
	_, err := k.VerifyDetached(msg, dearmor(t, key(t, "other-ed25519.asc")))
	assertRefused(t, err, ErrMalformed)
	// Armored, but a key block.
	_, err = k.VerifyDetached(msg, key(t, "other-ed25519.asc"))
	assertRefused(t, err, ErrMalformed)
	// Signature header, garbage body.
	_, err = k.VerifyDetached(msg, []byte("-----BEGIN PGP SIGNATURE-----\n\n!!!!\n-----END PGP SIGNATURE-----\n"))
	assertRefused(t, err, ErrMalformed)
	// A truncated binary signature.
	raw := dearmor(t, release(t, "SHA256SUMS.asc"))
	_, err = k.VerifyDetached(msg, raw[:len(raw)/2])
	assertRefused(t, err, ErrMalformed)
}

func TestOpenPGPTwoSignaturesOneGood(t *testing.T) {
	// Signatures by an unknown key and by a pinned key, concatenated (as
	// "gpg -u A -u B --detach-sign" writes): the pinned key's one counts.
	k := pinnedKeys(t)
	both := append(dearmor(t, release(t, "SHA256SUMS.other.asc")), dearmor(t, release(t, "SHA256SUMS.asc"))...)
	signer, err := k.VerifyDetached(release(t, "SHA256SUMS"), both)
	require.NoError(t, err)
	assert.Equal(t, fingerprint(t, "maintainer-ed25519.asc"), signer.Fingerprint)

	// Unknown key and a weak signature by a pinned key: the weak one is reported.
	weak := append(dearmor(t, release(t, "SHA256SUMS.other.asc")), dearmor(t, release(t, "SHA256SUMS.sha1.asc"))...)
	_, err = k.VerifyDetached(release(t, "SHA256SUMS"), weak)
	assertRefused(t, err, ErrWeakAlgorithm)
}

func TestSignerString(t *testing.T) {
	s := Signer{Scheme: "openpgp", Fingerprint: "0123456789ABCDEF0123456789ABCDEF01234567", Identity: "Test Maintainer <m@example.org>"}
	assert.Equal(t, "openpgp 01234567…01234567 (Test Maintainer <m@example.org>)", s.String())
	assert.Equal(t, "ssh SHA256:abcdefgh…stuvwxyz", Signer{Scheme: "ssh", Fingerprint: "SHA256:abcdefghijklmnopqrstuvwxyz"}.String())
	assert.Equal(t, "no signer", Signer{}.String())
}

func TestIdentityIsCleaned(t *testing.T) {
	assert.Equal(t, "evil[31m name", cleanIdentity("evil\x1b[31m name\n\r"))
	long := strings.Repeat("x", 500)
	assert.Equal(t, 129, len([]rune(cleanIdentity(long))))
}

func TestKeyErrorFormat(t *testing.T) {
	err := error(&KeyError{Scheme: "openpgp", Index: 2, Err: errors.New("boom")})
	assert.Equal(t, "openpgp key #2: boom", err.Error())
	assert.Equal(t, "boom", errors.Unwrap(err).Error())
}
