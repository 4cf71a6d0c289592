package signing

import (
	"bufio"
	"bytes"
	"crypto"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testdata/openpgp-policy: a key made on 2022-06-01 whose self-signature uses SHA-1 (as
// old gpg versions made them), and SHA-256 signatures by it made on 2022-12-01 (before
// the standard policy's 2023-02-01 cut-off for SHA-1 self-signatures) and 2025-06-01.

func policyFixture(t testing.TB, name string) []byte {
	t.Helper()
	return fixture(t, "openpgp-policy", name)
}

func sha1SelfSigFingerprint(t testing.TB) string {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(policyFixture(t, "FINGERPRINTS")))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) == 3 && f[0] == "sha1-selfsig-ed25519.asc" {
			return f[2]
		}
	}
	require.FailNow(t, "no fingerprint recorded")
	return ""
}

func at(y int, m time.Month, d int) func() time.Time {
	return func() time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
}

func TestSHA1SelfSignatureFixtureReallyUsesSHA1(t *testing.T) {
	ring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(policyFixture(t, "sha1-selfsig-ed25519.asc")))
	require.NoError(t, err)
	require.Len(t, ring, 1)
	self, _ := ring[0].PrimarySelfSignature()
	require.NotNil(t, self)
	assert.Equal(t, crypto.SHA1, self.Hash)
}

func TestSHA1SelfSignatureRefusedAtLoadAfterCutoff(t *testing.T) {
	fp := sha1SelfSigFingerprint(t)
	_, err := NewKeys([][]byte{policyFixture(t, "sha1-selfsig-ed25519.asc")}, nil, nil, Options{Now: at(2026, 1, 1)})
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrWeakAlgorithm)
	for _, want := range []string{fp, "self-signature uses SHA-1", "refused since 2023-02-01 per the standard policy",
		"gpg --quick-set-expire", "openpgp_allow_sha1_self_signatures_unsafe: true (unsafe)"} {
		assert.Contains(t, err.Error(), want)
	}
	assert.Less(t, len(err.Error()), 400, err.Error())

	// On 2023-01-31 the same key was still acceptable.
	_, err = NewKeys([][]byte{policyFixture(t, "sha1-selfsig-ed25519.asc")}, nil, nil, Options{Now: at(2023, 1, 31)})
	assert.NoError(t, err)
}

// Verification judges the self-signature at the data signature's creation date.
func TestSHA1SelfSignatureJudgedAtSigningTime(t *testing.T) {
	k := keysFromBytesBypassingLoadPolicy(t, policyFixture(t, "sha1-selfsig-ed25519.asc"), sha1SelfSigFingerprint(t))
	msg := policyFixture(t, "SHA256SUMS")

	signer, err := k.VerifyDetached(msg, policyFixture(t, "SHA256SUMS.signed-2022.asc"))
	require.NoError(t, err, "signed 2022-12-01, before the cut-off")
	assert.Equal(t, sha1SelfSigFingerprint(t), signer.Fingerprint)

	_, err = k.VerifyDetached(msg, policyFixture(t, "SHA256SUMS.signed-2025.asc"))
	assertRefused(t, err, ErrWeakAlgorithm)
	assert.Contains(t, err.Error(), "signature made 2025-06-01")
	assert.Contains(t, err.Error(), "the primary key's self-signature uses SHA-1 (refused since 2023-02-01")
	assert.NotContains(t, err.Error(), "does not match")
}

func TestSHA1SelfSignatureUnsafeOption(t *testing.T) {
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	k, err := NewKeys([][]byte{policyFixture(t, "sha1-selfsig-ed25519.asc")}, nil, nil,
		Options{Now: at(2026, 1, 1), AllowSHA1SelfSignaturesUnsafe: true, Logger: log})
	require.NoError(t, err)
	fp := sha1SelfSigFingerprint(t)
	assert.Contains(t, logged.String(), "UNSAFE")
	assert.Contains(t, logged.String(), "openpgp_allow_sha1_self_signatures_unsafe")
	assert.Contains(t, logged.String(), fp)

	logged.Reset()
	msg := policyFixture(t, "SHA256SUMS")
	_, err = k.VerifyDetached(msg, policyFixture(t, "SHA256SUMS.signed-2025.asc"))
	require.NoError(t, err)
	assert.Contains(t, logged.String(), "UNSAFE")
	assert.Contains(t, logged.String(), "signed=2025-06-01T12:00:00Z")

	// A signature the standard policy accepts on its own is not logged as unsafe.
	logged.Reset()
	_, err = k.VerifyDetached(msg, policyFixture(t, "SHA256SUMS.signed-2022.asc"))
	require.NoError(t, err)
	assert.Empty(t, logged.String())

	// SHA-1 data signatures stay refused with the option set.
	strict, err := NewKeys([][]byte{key(t, "maintainer-ed25519.asc")}, nil, nil,
		Options{Now: func() time.Time { return fixedNow }, AllowSHA1SelfSignaturesUnsafe: true, Logger: log})
	require.NoError(t, err)
	_, err = strict.VerifyDetached(release(t, "SHA256SUMS"), release(t, "SHA256SUMS.sha1.asc"))
	assertRefused(t, err, ErrWeakAlgorithm)
}

func keysFromBytesBypassingLoadPolicy(t *testing.T, armored []byte, fp string) *Keys {
	t.Helper()
	ring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(armored))
	require.NoError(t, err)
	require.Len(t, ring, 1)
	return &Keys{
		now: func() time.Time { return fixedNow },
		log: slog.Default(),
		pgp: []*pgpKey{{entity: ring[0], signer: Signer{Scheme: "openpgp", Fingerprint: fp}}},
	}
}

func TestPolicyTable(t *testing.T) {
	p := pgpPolicy{}
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	for _, c := range []struct {
		h               crypto.Hash
		when            time.Time
		documentRefused bool
		bindingRefused  bool
	}{
		{crypto.SHA256, day(2099, 1, 1), false, false},
		{crypto.SHA512, day(2026, 1, 1), false, false},
		{crypto.SHA224, day(2026, 1, 1), false, false},
		{crypto.SHA3_256, day(2026, 1, 1), false, false},
		{crypto.SHA1, day(2013, 1, 31), false, false},
		{crypto.SHA1, day(2013, 2, 1), true, false},
		{crypto.SHA1, day(2023, 1, 31), true, false},
		{crypto.SHA1, day(2023, 2, 1), true, true},
		{crypto.MD5, day(1997, 1, 31), false, false},
		{crypto.MD5, day(1997, 2, 1), true, false},
		{crypto.MD5, day(2004, 2, 1), true, true},
		{crypto.RIPEMD160, day(2013, 2, 1), true, true},
		{crypto.Hash(0), day(1990, 1, 1), true, true},
		{crypto.BLAKE2b_256, day(2026, 1, 1), true, true},
	} {
		err := p.dataHash(c.h, c.when)
		assert.Equal(t, c.documentRefused, err != nil, "data %v at %v: %v", c.h, c.when, err)
		_, err = p.bindingHash("x", c.h, c.when)
		assert.Equal(t, c.bindingRefused, err != nil, "binding %v at %v: %v", c.h, c.when, err)
		if err != nil {
			assert.ErrorIs(t, err, ErrWeakAlgorithm)
		}
	}
	relaxed, err := pgpPolicy{allowSHA1SelfSigs: true}.bindingHash("x", crypto.SHA1, day(2026, 1, 1))
	assert.NoError(t, err)
	assert.True(t, relaxed)
	_, err = pgpPolicy{allowSHA1SelfSigs: true}.bindingHash("x", crypto.MD5, day(2026, 1, 1))
	assert.Error(t, err, "the option relaxes SHA-1 only")
	assert.Error(t, pgpPolicy{allowSHA1SelfSigs: true}.dataHash(crypto.SHA1, day(2026, 1, 1)))
}

func TestPolicyKeyAlgorithms(t *testing.T) {
	p := pgpPolicy{}
	load := func(file string) *openpgp.Entity {
		ring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(key(t, file)))
		require.NoError(t, err)
		return ring[0]
	}
	rsa1024 := load("rsa1024.asc").PrimaryKey
	assert.NoError(t, p.key(rsa1024, time.Date(2014, 1, 31, 0, 0, 0, 0, time.UTC)), "RSA-1024 until 2014-02-01 in the standard policy")
	err := p.key(rsa1024, time.Date(2014, 2, 1, 0, 0, 0, 0, time.UTC))
	assert.ErrorIs(t, err, ErrWeakAlgorithm)
	assert.Contains(t, err.Error(), "RSA key of 1024 bits")
	assert.Contains(t, err.Error(), "refused since 2014-02-01")

	for _, file := range []string{"maintainer-ed25519.asc", "maintainer-rsa3072.asc"} {
		e := load(file)
		assert.NoError(t, p.key(e.PrimaryKey, fixedNow), file)
		for _, sk := range e.Subkeys {
			assert.NoError(t, p.key(sk.PublicKey, fixedNow), file)
		}
	}
}
