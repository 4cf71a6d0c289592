package signing

import (
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/checksum"
)

func sigstoreFixture(t testing.TB, name string) []byte {
	t.Helper()
	return fixture(t, "sigstore", name)
}

// The keyless message-signature bundle in sigstore-go's test data, made by a
// Sigstore scaffolding instance (issuer http://oidc.local:8080, an otherName SAN);
// it signs this digest.
const othernameDigest = "bc103b4a84971ef6459b294a2b98568a2bfb72cded09d4acd1e16366a401f95b"

func othernameSum(t testing.TB) checksum.Sum {
	t.Helper()
	s, err := checksum.ParseSum(checksum.SHA256, othernameDigest)
	require.NoError(t, err)
	return s
}

func scaffoldingKeys(t testing.TB, ids ...SigstoreIdentity) *Keys {
	t.Helper()
	k, err := NewKeys(nil, nil, nil, Options{
		Now:      func() time.Time { return fixedNow },
		Sigstore: SigstoreOptions{TrustedRoot: sigstoreFixture(t, "trusted_root.scaffolding.json"), Identities: ids},
	})
	require.NoError(t, err)
	return k
}

var othernameID = SigstoreIdentity{Issuer: "http://oidc.local:8080", Identity: "foo!oidc.local"}

func TestIsSigstoreBundle(t *testing.T) {
	for _, f := range []string{"othername.sigstore.json", "sigstore-js-2.0.0.provenance.sigstore.json", "sigstore-js-1.3.0.provenance.sigstore.json"} {
		assert.True(t, IsSigstoreBundle(sigstoreFixture(t, f)), f)
	}
	for name, b := range map[string][]byte{
		"trusted root":     sigstoreFixture(t, "trusted_root.public-good.json"),
		"openpgp":          release(t, "SHA256SUMS.asc"),
		"cosign raw":       release(t, "SHA256SUMS.cosign.sig"),
		"json not bundle":  []byte(`{"mediaType":"application/json"}`),
		"nested mediaType": []byte(`{"x":{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}}`),
		"broken json":      []byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"`),
		"empty":            nil,
	} {
		assert.False(t, IsSigstoreBundle(b), name)
	}
}

func TestSigstoreKeylessDigest(t *testing.T) {
	k := scaffoldingKeys(t, othernameID)
	v, err := k.VerifyBundleDigest(othernameSum(t), sigstoreFixture(t, "othername.sigstore.json"))
	require.NoError(t, err)
	assert.Equal(t, "sigstore", v.Signer.Scheme)
	assert.Equal(t, "foo!oidc.local", v.Signer.Fingerprint)
	assert.Equal(t, "rekor", v.TimeSource)
	assert.Equal(t, time.Date(2024, 7, 12, 19, 6, 29, 0, time.UTC), v.Time, "the Rekor integrated time")
	assert.Equal(t, "sigstore:foo!oidc.local", v.Signer.ID())

	// A regexp identity works too.
	k = scaffoldingKeys(t, SigstoreIdentity{IssuerRegexp: `^http://oidc\.local:8080$`, IdentityRegexp: `^foo!oidc\.local$`})
	_, err = k.VerifyBundleDigest(othernameSum(t), sigstoreFixture(t, "othername.sigstore.json"))
	assert.NoError(t, err)
}

func TestSigstoreKeylessRefusals(t *testing.T) {
	b := sigstoreFixture(t, "othername.sigstore.json")
	sum := othernameSum(t)

	t.Run("wrong identity", func(t *testing.T) {
		_, err := scaffoldingKeys(t, SigstoreIdentity{Issuer: "http://oidc.local:8080", Identity: "bar!oidc.local"}).VerifyBundleDigest(sum, b)
		assertRefused(t, err, ErrSigstorePolicy)
	})
	t.Run("wrong issuer", func(t *testing.T) {
		_, err := scaffoldingKeys(t, SigstoreIdentity{Issuer: "https://token.actions.githubusercontent.com", Identity: "foo!oidc.local"}).VerifyBundleDigest(sum, b)
		assertRefused(t, err, ErrSigstorePolicy)
	})
	t.Run("wrong repository", func(t *testing.T) {
		id := othernameID
		id.SourceRepository = "https://github.com/example/uploader"
		_, err := scaffoldingKeys(t, id).VerifyBundleDigest(sum, b)
		assertRefused(t, err, ErrSigstorePolicy)
	})
	t.Run("digest mismatch", func(t *testing.T) {
		other, err := checksum.ParseSum(checksum.SHA256, "0"+othernameDigest[1:])
		require.NoError(t, err)
		_, err = scaffoldingKeys(t, othernameID).VerifyBundleDigest(other, b)
		assertRefused(t, err, ErrBadSignature)
	})
	t.Run("message mismatch", func(t *testing.T) {
		_, err := scaffoldingKeys(t, othernameID).VerifyBundle([]byte("some other file\n"), b)
		assertRefused(t, err, ErrBadSignature)
		_, err = scaffoldingKeys(t, othernameID).VerifyDetached([]byte("some other file\n"), b)
		assertRefused(t, err, ErrBadSignature)
	})
	t.Run("another trusted root", func(t *testing.T) {
		k, err := NewKeys(nil, nil, nil, Options{Sigstore: SigstoreOptions{
			TrustedRoot: sigstoreFixture(t, "trusted_root.public-good.json"), Identities: []SigstoreIdentity{othernameID}}})
		require.NoError(t, err)
		_, err = k.VerifyBundleDigest(sum, b)
		assertRefused(t, err, ErrRefused)
	})
	t.Run("no identity pinned", func(t *testing.T) {
		_, err := pinnedKeys(t).VerifyBundleDigest(sum, b)
		assertRefused(t, err, ErrUnknownKey)
	})
	t.Run("attestation given as a file signature", func(t *testing.T) {
		_, err := scaffoldingKeys(t, othernameID).VerifyBundle([]byte("x"), sigstoreFixture(t, "sigstore-js-2.0.0.provenance.sigstore.json"))
		assertRefused(t, err, ErrMalformed)
	})
	t.Run("too large", func(t *testing.T) {
		big := append(append([]byte{}, b[:len(b)-1]...), make([]byte, MaxBundleSize)...)
		_, err := scaffoldingKeys(t, othernameID).VerifyBundleDigest(sum, big)
		assertRefused(t, err, ErrMalformed)
	})
}

func TestSigstoreIdentityConfig(t *testing.T) {
	root := sigstoreFixture(t, "trusted_root.scaffolding.json")
	for name, id := range map[string]SigstoreIdentity{
		"no issuer":         {Identity: "x"},
		"both issuers":      {Issuer: "a", IssuerRegexp: "^a$", Identity: "x"},
		"no identity":       {Issuer: "a"},
		"both identities":   {Issuer: "a", Identity: "x", IdentityRegexp: "^x$"},
		"unanchored regexp": {Issuer: "a", IdentityRegexp: "github.com/example/"},
		"bad regexp":        {Issuer: "a", IdentityRegexp: "^(x"},
	} {
		_, err := NewKeys(nil, nil, nil, Options{Sigstore: SigstoreOptions{TrustedRoot: root, Identities: []SigstoreIdentity{othernameID, id}}})
		var ke *KeyError
		require.ErrorAs(t, err, &ke, name)
		assert.Equal(t, "sigstore", ke.Scheme, name)
		assert.Equal(t, 1, ke.Index, name)
		assert.ErrorIs(t, err, ErrInvalidKey, name)
	}
	_, err := NewKeys(nil, nil, nil, Options{Sigstore: SigstoreOptions{Identities: []SigstoreIdentity{othernameID}}})
	assert.ErrorIs(t, err, ErrInvalidKey, "identities without a trusted root")
	_, err = NewKeys(nil, nil, nil, Options{Sigstore: SigstoreOptions{TrustedRoot: []byte(`{"mediaType":"x"}`)}})
	assert.ErrorIs(t, err, ErrInvalidKey)
	assert.False(t, scaffoldingKeys(t, othernameID).Empty(), "a pinned identity is something to verify with")
}

func TestSigstoreSumAlgorithms(t *testing.T) {
	d, err := hex.DecodeString(othernameDigest)
	require.NoError(t, err)
	s512, err := checksum.NewSum(checksum.SHA512, append(d, d...))
	require.NoError(t, err)
	_, err = scaffoldingKeys(t, othernameID).VerifyBundleDigest(s512, sigstoreFixture(t, "othername.sigstore.json"))
	assertRefused(t, err, ErrBadSignature)
	_, err = scaffoldingKeys(t, othernameID).VerifyBundleDigest(checksum.Sum{}, sigstoreFixture(t, "othername.sigstore.json"))
	assertRefused(t, err, ErrMalformed)
}
