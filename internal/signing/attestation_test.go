package signing

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/checksum"
)

// sigstore-js 2.0.0's npm provenance: a real public-good bundle (GitHub Actions,
// SLSA provenance v1), built from refs/heads/main.
const (
	jsProvenance = "sigstore-js-2.0.0.provenance.sigstore.json"
	jsRepo       = "https://github.com/sigstore/sigstore-js"
	jsRef        = "refs/heads/main"
	jsDigest     = "46d4e2f74c4877316640000a6fdf8a8b59f1e0847667973e9859f774dd31b8f1e0937813b777fb66a2ac67d50540fe34640966eee9fc2ccca387082b4c85cd3c"
)

var jsIdentity = SigstoreIdentity{
	Issuer:         "https://token.actions.githubusercontent.com",
	IdentityRegexp: `^https://github\.com/sigstore/sigstore-js/\.github/workflows/release\.yml@refs/`,
}

func publicGoodKeys(t testing.TB, ids ...SigstoreIdentity) *Keys {
	t.Helper()
	k, err := NewKeys(nil, nil, nil, Options{
		Now:      func() time.Time { return fixedNow },
		Sigstore: SigstoreOptions{TrustedRoot: sigstoreFixture(t, "trusted_root.public-good.json"), Identities: ids},
	})
	require.NoError(t, err)
	return k
}

func TestAttestationGood(t *testing.T) {
	a, err := publicGoodKeys(t, jsIdentity).VerifyAttestation(sigstoreFixture(t, jsProvenance),
		AttestationPolicy{SourceRepository: jsRepo, SourceRef: jsRef})
	require.NoError(t, err)
	assert.Equal(t, SLSAProvenanceV1, a.PredicateType)
	assert.Equal(t, "sigstore", a.Signer.Scheme)
	assert.Equal(t, "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main", a.Signer.Fingerprint)
	assert.Equal(t, "rekor", a.TimeSource)
	assert.Equal(t, 2023, a.Time.Year())
	require.Len(t, a.Subjects, 1)
	want, err := checksum.ParseSum(checksum.SHA512, jsDigest)
	require.NoError(t, err)
	s, ok := a.Subject("pkg:npm/sigstore@2.0.0")
	require.True(t, ok)
	assert.Equal(t, want, s.Sum)
	assert.True(t, a.Covers(want))

	// A bundle for another artifact: its subject is not the object's digest.
	other, err := checksum.ParseSum(checksum.SHA512, "0"+jsDigest[1:])
	require.NoError(t, err)
	assert.False(t, a.Covers(other))
	assert.False(t, a.Covers(checksum.Sum{}))
	assert.Equal(t, "refs/tags/v1.2.0", ReleaseRef("v1.2.0"))
}

func TestAttestationRefusals(t *testing.T) {
	good := AttestationPolicy{SourceRepository: jsRepo, SourceRef: jsRef}
	b := sigstoreFixture(t, jsProvenance)
	tests := []struct {
		name   string
		keys   *Keys
		bundle []byte
		policy AttestationPolicy
		reason error
	}{
		{"ref is not the release tag", publicGoodKeys(t, jsIdentity), b, AttestationPolicy{SourceRepository: jsRepo, SourceRef: ReleaseRef("v2.0.0")}, ErrSigstorePolicy},
		{"wrong repository", publicGoodKeys(t, jsIdentity), b, AttestationPolicy{SourceRepository: "https://github.com/example/uploader", SourceRef: jsRef}, ErrSigstorePolicy},
		{"wrong predicate type", publicGoodKeys(t, jsIdentity), b, AttestationPolicy{PredicateType: "https://spdx.dev/Document", SourceRepository: jsRepo, SourceRef: jsRef}, ErrSigstorePolicy},
		{"SLSA v0.2 provenance", publicGoodKeys(t, jsIdentity), sigstoreFixture(t, "sigstore-js-1.3.0.provenance.sigstore.json"), good, ErrSigstorePolicy},
		{"wrong identity", publicGoodKeys(t, SigstoreIdentity{Issuer: jsIdentity.Issuer, IdentityRegexp: `^https://github\.com/example/uploader/`}), b, good, ErrSigstorePolicy},
		{"wrong issuer", publicGoodKeys(t, SigstoreIdentity{Issuer: "https://accounts.google.com", IdentityRegexp: jsIdentity.IdentityRegexp}), b, good, ErrSigstorePolicy},
		{"identity pinned with another repository", publicGoodKeys(t, SigstoreIdentity{Issuer: jsIdentity.Issuer, IdentityRegexp: jsIdentity.IdentityRegexp, SourceRepository: "https://github.com/example/uploader"}), b, good, ErrSigstorePolicy},
		{"message signature bundle", scaffoldingKeys(t, othernameID), sigstoreFixture(t, "othername.sigstore.json"), good, ErrMalformed},
		{"no trusted root", pinnedKeys(t), b, good, ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.keys.VerifyAttestation(tt.bundle, tt.policy)
			assertRefused(t, err, tt.reason)
		})
	}
	_, err := publicGoodKeys(t, jsIdentity).VerifyAttestation(b, AttestationPolicy{SourceRepository: jsRepo})
	assert.Error(t, err, "a policy without a ref is a caller error")
}

// The certificate lives ten minutes; only a verified timestamp (here Rekor's
// integrated time) shows the signature was made inside that window. Without one,
// or with a forged one, the bundle is refused.
func TestAttestationExpiredCertificateNeedsTimestamp(t *testing.T) {
	edit := func(t *testing.T, f func(m map[string]any)) []byte {
		t.Helper()
		var m map[string]any
		require.NoError(t, json.Unmarshal(sigstoreFixture(t, jsProvenance), &m))
		f(m)
		out, err := json.Marshal(m)
		require.NoError(t, err)
		return out
	}
	vm := func(m map[string]any) map[string]any { return m["verificationMaterial"].(map[string]any) }
	k := publicGoodKeys(t, jsIdentity)
	good := AttestationPolicy{SourceRepository: jsRepo, SourceRef: jsRef}

	// The untouched bundle verifies after a JSON round trip.
	_, err := k.VerifyAttestation(edit(t, func(map[string]any) {}), good)
	require.NoError(t, err)

	noLog := edit(t, func(m map[string]any) { delete(vm(m), "tlogEntries") })
	_, err = k.VerifyAttestation(noLog, good)
	assertRefused(t, err, ErrRefused)

	// A log entry claiming a time inside the certificate's window, without a valid
	// promise for it.
	forged := edit(t, func(m map[string]any) {
		e := vm(m)["tlogEntries"].([]any)[0].(map[string]any)
		e["integratedTime"] = "1692374740"
	})
	_, err = k.VerifyAttestation(forged, good)
	assertRefused(t, err, ErrRefused)

	// With the log requirement turned off, the only remaining timestamp source is
	// gone too: still refused (sigstore-go never judges a certificate at "now").
	lax, err := NewKeys(nil, nil, nil, Options{Sigstore: SigstoreOptions{
		TrustedRoot: sigstoreFixture(t, "trusted_root.public-good.json"), Identities: []SigstoreIdentity{jsIdentity}, TransparencyLog: -1}})
	require.NoError(t, err)
	_, err = lax.VerifyAttestation(noLog, good)
	assertRefused(t, err, ErrRefused)
}
