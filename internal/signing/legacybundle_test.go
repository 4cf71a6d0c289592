package signing

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/checksum"
)

// GoReleaser's example-secure release: checksums.txt and its keyless
// checksums.txt.sigstore.json (cosign's pre-v3 bundle format), signed by the
// release workflow on public good at v0.1.0. Real files, see testdata/sigstore/README.md.
const (
	grSums   = "goreleaser-example-secure.checksums.txt"
	grBundle = "goreleaser-example-secure.checksums.txt.sigstore.json"
)

var grIdentity = SigstoreIdentity{
	Issuer:           "https://token.actions.githubusercontent.com",
	IdentityRegexp:   `^https://github\.com/goreleaser/example-secure/\.github/workflows/release\.yml@refs/tags/`,
	SourceRepository: "https://github.com/goreleaser/example-secure",
}

func TestGoReleaserKeylessChecksums(t *testing.T) {
	k := publicGoodKeys(t, grIdentity)
	b := sigstoreFixture(t, grBundle)
	sums := sigstoreFixture(t, grSums)
	require.True(t, IsSigstoreBundle(b))

	v, err := k.Verify(sums, b)
	require.NoError(t, err)
	assert.Equal(t, "sigstore", v.Signer.Scheme)
	assert.Equal(t, "https://github.com/goreleaser/example-secure/.github/workflows/release.yml@refs/tags/v0.1.0", v.Signer.Fingerprint)
	assert.Equal(t, time.Unix(1764952422, 0).UTC(), v.Time, "the Rekor integrated time")
	assert.Equal(t, "rekor", v.TimeSource)

	f, err := checksum.Parse(sums)
	require.NoError(t, err)
	assert.Equal(t, 14, f.Len())

	// The checksum file's digest verifies the same way.
	_, err = k.VerifyBundleDigest(checksum.Digest(sha256Of(sums)).Sum(), b)
	assert.NoError(t, err)
}

func TestGoReleaserKeylessRefusals(t *testing.T) {
	b := sigstoreFixture(t, grBundle)
	sums := sigstoreFixture(t, grSums)

	t.Run("tampered checksum file", func(t *testing.T) {
		evil := bytes.Replace(sums, []byte("3752638e"), []byte("0752638e"), 1)
		require.NotEqual(t, sums, evil)
		_, err := publicGoodKeys(t, grIdentity).Verify(evil, b)
		assertRefused(t, err, ErrBadSignature)
	})
	t.Run("wrong identity", func(t *testing.T) {
		id := grIdentity
		id.IdentityRegexp = `^https://github\.com/example/uploader/\.github/workflows/release\.yml@refs/tags/`
		_, err := publicGoodKeys(t, id).Verify(sums, b)
		assertRefused(t, err, ErrSigstorePolicy)
	})
	t.Run("wrong repository", func(t *testing.T) {
		id := grIdentity
		id.SourceRepository = "https://github.com/goreleaser/goreleaser"
		_, err := publicGoodKeys(t, id).Verify(sums, b)
		assertRefused(t, err, ErrSigstorePolicy)
	})
	t.Run("wrong issuer", func(t *testing.T) {
		id := grIdentity
		id.Issuer = "https://accounts.google.com"
		_, err := publicGoodKeys(t, id).Verify(sums, b)
		assertRefused(t, err, ErrSigstorePolicy)
	})
	edit := func(t *testing.T, f func(m map[string]any)) []byte {
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m))
		f(m)
		out, err := json.Marshal(m)
		require.NoError(t, err)
		return out
	}
	t.Run("expired certificate without its log entry", func(t *testing.T) {
		// The certificate lived ten minutes in December 2025; without the Rekor entry
		// nothing shows the signature was made inside that window.
		_, err := publicGoodKeys(t, grIdentity).Verify(sums, edit(t, func(m map[string]any) { delete(m, "rekorBundle") }))
		assertRefused(t, err, ErrRefused)
	})
	t.Run("log entry time moved", func(t *testing.T) {
		_, err := publicGoodKeys(t, grIdentity).Verify(sums, edit(t, func(m map[string]any) {
			m["rekorBundle"].(map[string]any)["Payload"].(map[string]any)["integratedTime"] = 1764952500
		}))
		assertRefused(t, err, ErrRefused)
	})
	t.Run("signature swapped", func(t *testing.T) {
		other := edit(t, func(m map[string]any) {
			m["base64Signature"] = "MEUCIQDYnJ8Zdkd2GaAW8tiAvEmrByQMnoGjKVhoFHI0DiWxSAIgZCUNXNtQVugvVjlzZPqh5JMPYi3HPoIGl3Jy9H9yiPg="
		})
		_, err := publicGoodKeys(t, grIdentity).Verify(sums, other)
		assertRefused(t, err, ErrRefused)
	})
}

func sha256Of(b []byte) [32]byte { return sha256.Sum256(b) }

func TestLegacyBundleShapes(t *testing.T) {
	b := sigstoreFixture(t, grBundle)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	delete(m, "rekorBundle")
	noLog, err := json.Marshal(m)
	require.NoError(t, err)
	require.True(t, IsSigstoreBundle(noLog), "a cosign bundle without a log entry is still recognised")
	_, err = publicGoodKeys(t, grIdentity).Verify(sigstoreFixture(t, grSums), noLog)
	assertRefused(t, err, ErrBadSignature)
	assert.Contains(t, err.Error(), "lacks a verified timestamp or log entry")

	// Without a log entry and with only a SHA-512 of the file, nothing can be checked.
	_, err = publicGoodKeys(t, grIdentity).VerifyBundleDigest(mustSum512(t), noLog)
	assertRefused(t, err, ErrMalformed)

	for name, bad := range map[string]string{
		"signature not base64": `{"base64Signature":"%%%"}`,
		"empty signature":      `{"base64Signature":""}`,
		"rekor body garbage":   `{"base64Signature":"AAAA","rekorBundle":{"SignedEntryTimestamp":"AAAA","Payload":{"body":"e30=","integratedTime":1,"logIndex":1,"logID":"00"}}}`,
		"intoto entry":         `{"base64Signature":"AAAA","rekorBundle":{"SignedEntryTimestamp":"AAAA","Payload":{"body":"eyJraW5kIjoiaW50b3RvIn0=","integratedTime":1,"logIndex":1,"logID":"00"}}}`,
		"cert not pem":         `{"base64Signature":"AAAA","cert":"aGVsbG8="}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := publicGoodKeys(t, grIdentity).Verify([]byte("x"), []byte(bad))
			assertRefused(t, err, ErrMalformed)
		})
	}
}

func mustSum512(t *testing.T) checksum.Sum {
	t.Helper()
	s, err := checksum.NewSum(checksum.SHA512, make([]byte, 64))
	require.NoError(t, err)
	return s
}

// A log time after our own clock (plus skew) is not believed: either the clock or
// the log is wrong, and rollback marks must not be fed a date from the future.
func TestSigstoreTimeInTheFuture(t *testing.T) {
	k, err := NewKeys(nil, nil, nil, Options{
		Now:      func() time.Time { return time.Date(2025, 12, 5, 16, 0, 0, 0, time.UTC) },
		Sigstore: SigstoreOptions{TrustedRoot: sigstoreFixture(t, "trusted_root.public-good.json"), Identities: []SigstoreIdentity{grIdentity}},
	})
	require.NoError(t, err)
	_, err = k.Verify(sigstoreFixture(t, grSums), sigstoreFixture(t, grBundle))
	assertRefused(t, err, ErrBadSignature)
	assert.Contains(t, err.Error(), "in the future")
}
