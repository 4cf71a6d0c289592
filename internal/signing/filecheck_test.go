package signing

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stream writes data to c in small uneven pieces, as a reader of a large object would.
func stream(c *FileCheck, data []byte) {
	for len(data) > 0 {
		n := min(len(data), 7)
		_, _ = c.Write(data[:n])
		data = data[n:]
	}
}

// checkFile runs a FileCheck over data.
func checkFile(t *testing.T, k *Keys, data []byte, threshold int, sigs ...[]byte) (ThresholdResult, error) {
	t.Helper()
	c, err := k.NewFileCheck(sigs, threshold)
	if err != nil {
		return ThresholdResult{}, err
	}
	stream(c, data)
	assert.Equal(t, int64(len(data)), c.Size())
	return c.Result()
}

// A file streamed through a FileCheck is judged exactly as the whole file given to
// VerifyThreshold: same signers, same refusals, for every signature format.
func TestFileCheckAgreesWithVerify(t *testing.T) {
	k := pinnedKeys(t)
	msg := release(t, "SHA256SUMS")
	tampered := release(t, "SHA256SUMS.tampered")
	sigs := map[string][]byte{}
	for _, n := range []string{"SHA256SUMS.asc", "SHA256SUMS.textmode.asc", "SHA256SUMS.rsa.sig", "SHA256SUMS.ssh.sig",
		"SHA256SUMS.ssh-rsa.sig", "SHA256SUMS.cosign.sig", "SHA256SUMS.other.asc", "SHA256SUMS.ssh-other.sig",
		"SHA256SUMS.sha1.asc", "SHA256SUMS.rsa1024.asc", "SHA256SUMS.expired.asc", "SHA256SUMS.revoked.asc",
		"SHA256SUMS.ssh-wrongns.sig"} {
		sigs[n] = release(t, n)
	}
	sigs["cosign bundle"] = sigstoreFixture(t, "SHA256SUMS.cosign-key.sigstore.json")
	sigs["cosign legacy bundle"] = sigstoreFixture(t, "SHA256SUMS.cosign-key.legacy.json")
	sigs["clearsigned"] = fixture(t, "clearsigned", "SHA256SUMS.asc")
	sigs["garbage"] = []byte("not a signature at all")

	for name, sig := range sigs {
		for _, data := range [][]byte{msg, tampered} {
			want, wantErr := k.VerifyThreshold(data, [][]byte{sig}, 1)
			got, gotErr := checkFile(t, k, data, 1, sig)
			if wantErr == nil {
				if assert.NoError(t, gotErr, name) {
					require.Len(t, got.Signers, len(want.Signers), name)
					for i := range want.Signers {
						assert.Equal(t, want.Signers[i].Signer.ID(), got.Signers[i].Signer.ID(), name)
						assert.Equal(t, want.Signers[i].Time, got.Signers[i].Time, name)
					}
				}
				continue
			}
			assertRefused(t, gotErr, ErrThresholdNotMet)
			// The finer reason of the single signature is the same.
			require.NotEmpty(t, want.Refused, name)
			reason := finerReason(want.Refused[0])
			require.NotNil(t, reason, "%s: %v", name, want.Refused[0])
			if len(got.Refused) > 0 {
				assert.ErrorIs(t, got.Refused[0], reason, name)
			} else {
				// Refused before the file was read: the message names the first refusal.
				assert.Contains(t, gotErr.Error(), reason.Error(), name)
			}
		}
	}
}

// finerReason is the most specific sentinel err matches.
func finerReason(err error) error {
	for _, r := range []error{ErrUnknownKey, ErrBadSignature, ErrWeakAlgorithm, ErrKeyExpired, ErrSignatureExpired,
		ErrKeyRevoked, ErrWrongNamespace, ErrMalformed, ErrNoSignature, ErrSigstorePolicy} {
		if errors.Is(err, r) {
			return r
		}
	}
	return nil
}

func TestFileCheckThreshold(t *testing.T) {
	k := pinnedKeys(t)
	msg := release(t, "SHA256SUMS")

	// Three distinct keys of three schemes, and a bundle by the cosign key counted once.
	res, err := checkFile(t, k, msg, 3, release(t, "SHA256SUMS.asc"), release(t, "SHA256SUMS.ssh.sig"),
		release(t, "SHA256SUMS.cosign.sig"), sigstoreFixture(t, "SHA256SUMS.cosign-key.sigstore.json"))
	require.NoError(t, err)
	require.Len(t, res.Signers, 3)
	assert.Equal(t, fingerprint(t, "maintainer-ed25519.asc"), res.Signers[0].Signer.Fingerprint)
	assert.Equal(t, "openpgp", res.Signers[0].TimeSource)
	assert.Equal(t, fingerprint(t, "release_ed25519.pub"), res.Signers[1].Signer.Fingerprint)
	assert.Equal(t, fingerprint(t, "cosign.pub"), res.Signers[2].Signer.Fingerprint)
	require.Len(t, res.Refused, 1)
	assert.Contains(t, res.Refused[0].Error(), "already counted")

	// The same key twice is one key.
	_, err = checkFile(t, k, msg, 2, release(t, "SHA256SUMS.asc"), release(t, "SHA256SUMS.textmode.asc"))
	assertRefused(t, err, ErrThresholdNotMet)
	assert.Contains(t, err.Error(), "1 of the 2 required")

	// Refused before a byte is read: not enough signatures by pinned keys.
	_, err = k.NewFileCheck([][]byte{release(t, "SHA256SUMS.asc"), release(t, "SHA256SUMS.other.asc")}, 2)
	assertRefused(t, err, ErrThresholdNotMet)
	assert.Contains(t, err.Error(), "not pinned")
	_, err = k.NewFileCheck(nil, 1)
	assertRefused(t, err, ErrThresholdNotMet)
	_, err = k.NewFileCheck(make([][]byte, MaxThresholdSignatures+1), 1)
	assertRefused(t, err, ErrMalformed)

	// One OpenPGP file signed by two keys (gpg -u A -u B) meets 2-of-2.
	k2, err := NewKeys([][]byte{fixture(t, "clearsigned", "clearsign-ed25519.asc"), fixture(t, "threshold", "second-ed25519.asc")}, nil, nil,
		Options{Now: func() time.Time { return fixedNow }})
	require.NoError(t, err)
	res, err = checkFile(t, k2, msg, 2, fixture(t, "threshold", "SHA256SUMS.2of2.asc"))
	require.NoError(t, err)
	assert.Len(t, res.Signers, 2)
	_, err = checkFile(t, k2, release(t, "SHA256SUMS.tampered"), 1, fixture(t, "threshold", "SHA256SUMS.2of2.asc"))
	assertRefused(t, err, ErrThresholdNotMet)
	assert.Contains(t, err.Error(), "does not match the content")
}

// A signature file naming pinned keys many times cannot make one object cost many passes.
func TestFileCheckBoundsPasses(t *testing.T) {
	k := pinnedKeys(t)
	sig := release(t, "SHA256SUMS.asc")
	sigs := make([][]byte, maxFileChecks+1)
	for i := range sigs {
		sigs[i] = sig
	}
	_, err := k.NewFileCheck(sigs, 1)
	assertRefused(t, err, ErrMalformed)
	assert.Contains(t, err.Error(), "more than the 8 checked over one file")
}

// Keyless bundles are checked against the streamed digest: GoReleaser's real checksums.txt
// and its keyless bundle, with the pinned identity; another identity is refused.
func TestFileCheckKeylessBundle(t *testing.T) {
	sums := sigstoreFixture(t, grSums)
	b := sigstoreFixture(t, grBundle)
	res, err := checkFile(t, publicGoodKeys(t, grIdentity), sums, 1, b)
	require.NoError(t, err)
	require.Len(t, res.Signers, 1)
	assert.Equal(t, "rekor", res.Signers[0].TimeSource)
	assert.Equal(t, time.Unix(1764952422, 0).UTC(), res.Signers[0].Time)

	id := grIdentity
	id.SourceRepository = "https://github.com/goreleaser/goreleaser"
	_, err = checkFile(t, publicGoodKeys(t, id), sums, 1, b)
	assertRefused(t, err, ErrThresholdNotMet)
	assert.Contains(t, err.Error(), "identity")

	_, err = checkFile(t, publicGoodKeys(t, grIdentity), append(bytes.Clone(sums), '\n'), 1, b)
	assertRefused(t, err, ErrThresholdNotMet)
}

// An attestation is not a signature over a file.
func TestFileCheckRefusesAttestation(t *testing.T) {
	_, err := publicGoodKeys(t, grIdentity).NewFileCheck([][]byte{sigstoreFixture(t, "sigstore-js-2.0.0.provenance.sigstore.json")}, 1)
	assertRefused(t, err, ErrThresholdNotMet)
	assert.Contains(t, err.Error(), "attestation")
}
