package signing

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/checksum"
)

// Codecov's own layout (testdata/codecov/README.md): codecov.SHA256SUM with a
// detached armored OpenPGP signature codecov.SHA256SUM.sig by the key Codecov
// publishes, two real pairs committed in public repositories (2022 and 2026).
const codecovFingerprint = "27034E7FDB850E0BBC2C62FF806BB28AED779869"

func codecovKeys(t *testing.T, now time.Time) *Keys {
	t.Helper()
	k, err := NewKeys([][]byte{fixture(t, "codecov", "codecov_pgp_keys.asc")}, nil, nil, Options{Now: func() time.Time { return now }})
	require.NoError(t, err)
	require.Len(t, k.Signers(), 1)
	require.Equal(t, codecovFingerprint, k.Signers()[0].Fingerprint)
	return k
}

func TestCodecovReleasesVerify(t *testing.T) {
	k := codecovKeys(t, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	for _, tt := range []struct {
		pair   string
		signed time.Time
	}{
		{"codecov-demo", time.Date(2022, 8, 1, 17, 58, 7, 0, time.UTC)},
		{"kubb", time.Date(2026, 4, 21, 19, 28, 3, 0, time.UTC)},
	} {
		t.Run(tt.pair, func(t *testing.T) {
			sums := fixture(t, "codecov", tt.pair+".SHA256SUM")
			v, err := k.Verify(sums, fixture(t, "codecov", tt.pair+".SHA256SUM.sig"))
			require.NoError(t, err)
			assert.Equal(t, "openpgp", v.Signer.Scheme)
			assert.Equal(t, codecovFingerprint, v.Signer.Fingerprint)
			assert.Contains(t, v.Signer.Identity, "Codecov Uploader")
			assert.Equal(t, tt.signed, v.Time)
			assert.Equal(t, "openpgp", v.TimeSource)

			// The file parses, and lists the uploader.
			f, err := checksum.Parse(sums)
			require.NoError(t, err)
			_, ok := f.Lookup("codecov")
			assert.True(t, ok)

			// The 2021 attack: one changed digit in the published checksum.
			tampered := bytes.Clone(sums)
			tampered[0] ^= 1
			_, err = k.Verify(tampered, fixture(t, "codecov", tt.pair+".SHA256SUM.sig"))
			assertRefused(t, err, ErrBadSignature)
		})
	}
	// The pairs are not interchangeable.
	_, err := k.Verify(fixture(t, "codecov", "kubb.SHA256SUM"), fixture(t, "codecov", "codecov-demo.SHA256SUM.sig"))
	assertRefused(t, err, ErrBadSignature)
	// Another pinned key does not vouch for Codecov's file.
	_, err = pinnedKeys(t).Verify(fixture(t, "codecov", "kubb.SHA256SUM"), fixture(t, "codecov", "kubb.SHA256SUM.sig"))
	assertRefused(t, err, ErrUnknownKey)
}

// Node.js's real SHASUMS256.txt.asc for v14.2.0 (clearsigned), with the release
// key that signed it from nodejs/release-keys (testdata/clearsigned/README.md).
func TestClearsignedNodeRelease(t *testing.T) {
	k, err := NewKeys([][]byte{fixture(t, "clearsigned", "node-8FCCA13FEF1D0C2E91008E09770F7A9A5AE15600.asc")}, nil, nil,
		Options{Now: func() time.Time { return fixedNow }})
	require.NoError(t, err)
	data := fixture(t, "clearsigned", "node-v14.2.0-SHASUMS256.txt.asc")
	require.True(t, IsClearsigned(data))

	text, v, err := k.VerifyClearsigned(data)
	require.NoError(t, err)
	assert.Equal(t, "8FCCA13FEF1D0C2E91008E09770F7A9A5AE15600", v.Signer.Fingerprint)
	assert.Equal(t, time.Date(2020, 5, 5, 18, 26, 38, 0, time.UTC), v.Time)
	assert.False(t, bytes.Contains(text, []byte("PGP")), "only the signed text is returned")

	f, err := checksum.Parse(text)
	require.NoError(t, err)
	assert.Equal(t, 32, f.Len())
	e, ok := f.Lookup("node-v14.2.0-linux-x64.tar.xz")
	require.True(t, ok)
	assert.Equal(t, "468cbd92271da8c0cacaa3fa432a73a332e398bade8ad7359a94aa8ab3cc3cca", e.Sum.String())

	// A detached-signature caller handed the clearsigned file is told what it is.
	_, err = k.Verify([]byte("x"), data)
	assertRefused(t, err, ErrMalformed)
	assert.Contains(t, err.Error(), "clearsigned")
}

func TestClearsignedRefusals(t *testing.T) {
	k, err := NewKeys([][]byte{fixture(t, "clearsigned", "node-8FCCA13FEF1D0C2E91008E09770F7A9A5AE15600.asc")}, nil, nil,
		Options{Now: func() time.Time { return fixedNow }})
	require.NoError(t, err)
	data := fixture(t, "clearsigned", "node-v14.2.0-SHASUMS256.txt.asc")
	line := []byte("3307d8b95014e78b43f85242a03fe3b28edfb90cc15e1d26393dcbbc51d05c8e  node-v14.2.0-linux-x64.tar.gz\n")
	evil := []byte("0000000000000000000000000000000000000000000000000000000000000000  node-v14.2.0-linux-x64.tar.gz\n")
	require.True(t, bytes.Contains(data, line))

	cases := map[string]struct {
		data   []byte
		reason error
	}{
		"digest changed inside the signed text": {bytes.Replace(data, line, evil, 1), ErrBadSignature},
		"unsigned text before the block":        {append(append([]byte{}, evil...), data...), ErrMalformed},
		"unsigned text after the block":         {append(append([]byte{}, data...), evil...), ErrMalformed},
		"a second block after the first":        {append(append([]byte{}, data...), data...), ErrMalformed},
		"hash header names another hash":        {bytes.Replace(data, []byte("Hash: SHA256"), []byte("Hash: SHA512"), 1), ErrMalformed},
		"not clearsigned":                       {fixture(t, "codecov", "kubb.SHA256SUM.sig"), ErrMalformed},
		"unterminated":                          {data[:bytes.Index(data, []byte("-----BEGIN PGP SIGNATURE-----"))], ErrMalformed},
	}
	for name, tt := range cases {
		t.Run(name, func(t *testing.T) {
			text, _, err := k.VerifyClearsigned(tt.data)
			assertRefused(t, err, tt.reason)
			assert.Nil(t, text)
		})
	}
	// Unknown key.
	_, _, err = pinnedKeys(t).VerifyClearsigned(data)
	assertRefused(t, err, ErrUnknownKey)
}
