package signing

import (
	"bytes"
	"testing"

	"github.com/tamperguard/tamperguard/internal/checksum"
)

// FuzzSigstoreBundle feeds hostile bundles to VerifyBundle, VerifyBundleDigest and
// VerifyAttestation. Properties: no panic (catchPanics off), refusals match
// ErrRefused with a short message, and nothing is accepted but the real bundles
// over what they really sign, by a pinned identity.
func FuzzSigstoreBundle(f *testing.F) {
	scaffold := scaffoldingKeys(f, othernameID)
	good := publicGoodKeys(f, jsIdentity)
	sum := othernameSum(f)
	for _, name := range []string{"othername.sigstore.json", jsProvenance, "sigstore-js-1.3.0.provenance.sigstore.json"} {
		f.Add(sigstoreFixture(f, name))
	}
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle+json;version=0.1","verificationMaterial":{"publicKey":{"hint":"x"}},"messageSignature":{"signature":"AAAA"}}`))

	noCatch(f)
	policy := AttestationPolicy{SourceRepository: jsRepo, SourceRef: jsRef}
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, err := scaffold.VerifyBundleDigest(sum, b); err == nil {
			if v.Signer.Fingerprint != othernameID.Identity {
				t.Fatalf("accepted for an identity that is not pinned: %v", v.Signer)
			}
		} else {
			assertRefused(t, err, ErrRefused)
		}
		if _, err := scaffold.VerifyBundle([]byte("not the artifact"), b); err == nil {
			t.Fatal("a bundle verified over a message nobody signed")
		} else {
			assertRefused(t, err, ErrRefused)
		}
		if a, err := good.VerifyAttestation(b, policy); err == nil {
			if a.PredicateType != SLSAProvenanceV1 || len(a.Subjects) == 0 {
				t.Fatalf("accepted an attestation outside the policy: %+v", a)
			}
		} else {
			assertRefused(t, err, ErrRefused)
		}
	})
}

// FuzzVerifyClearsigned: hostile clearsigned files. Accepted only when the returned
// text is the text the key signed (the fixtures'), never anything around it.
func FuzzVerifyClearsigned(f *testing.F) {
	k := clearsignKeys(f)
	signed := [][]byte{
		bytes.TrimSuffix(release(f, "SHA256SUMS"), []byte("\n")),
		bytes.TrimSuffix(fixture(f, "clearsigned", "notes.txt"), []byte("\n")),
	}
	for _, name := range []string{"SHA256SUMS.asc", "SHA256SUMS.sha512.asc", "notes.txt.asc", "node-v14.2.0-SHASUMS256.txt.asc"} {
		f.Add(fixture(f, "clearsigned", name))
	}
	f.Add([]byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nx\n-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----\n"))
	f.Add([]byte("-----BEGIN PGP SIGNED MESSAGE-----\n\n"))

	noCatch(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		text, v, err := k.VerifyClearsigned(data)
		if err != nil {
			assertRefused(t, err, ErrRefused)
			if text != nil {
				t.Fatal("text returned with an error")
			}
			return
		}
		if v.Signer.Scheme != "openpgp" {
			t.Fatalf("signer %v", v.Signer)
		}
		ok := false
		for _, s := range signed {
			// Trailing whitespace is not covered by the signature and is removed.
			if bytes.Equal(text, trimLineEnds(s)) {
				ok = true
			}
		}
		if !ok {
			t.Fatalf("accepted text nobody signed: %q", text)
		}
		if _, err := checksum.ParseAll(text); err != nil && bytes.Equal(text, signed[0]) {
			t.Fatalf("signed checksum text does not parse: %v", err)
		}
	})
}

func trimLineEnds(b []byte) []byte {
	lines := bytes.Split(b, []byte("\n"))
	for i, l := range lines {
		lines[i] = bytes.TrimRight(l, " \t")
	}
	return bytes.Join(lines, []byte("\n"))
}

// FuzzFileCheck: a hostile signature over a file streamed through a FileCheck. Properties:
// no panic, refusals match ErrRefused, and the streaming check agrees with VerifyThreshold
// over the whole file: accepted by one exactly when accepted by the other, by the same keys.
func FuzzFileCheck(f *testing.F) {
	k := pinnedKeys(f)
	msg := release(f, "SHA256SUMS")
	for _, name := range []string{"SHA256SUMS.asc", "SHA256SUMS.textmode.asc", "SHA256SUMS.rsa.sig", "SHA256SUMS.ssh.sig", "SHA256SUMS.cosign.sig", "SHA256SUMS.other.asc"} {
		f.Add(release(f, name), false)
	}
	f.Add(sigstoreFixture(f, "SHA256SUMS.cosign-key.sigstore.json"), false)
	f.Add(sigstoreFixture(f, "SHA256SUMS.cosign-key.legacy.json"), true)

	noCatch(f)
	f.Fuzz(func(t *testing.T, sig []byte, tamper bool) {
		data := msg
		if tamper {
			data = release(t, "SHA256SUMS.tampered")
		}
		want, wantErr := k.VerifyThreshold(data, [][]byte{sig}, 1)
		var got ThresholdResult
		c, gotErr := k.NewFileCheck([][]byte{sig}, 1)
		if gotErr == nil {
			_, _ = c.Write(data[:len(data)/2])
			_, _ = c.Write(data[len(data)/2:])
			got, gotErr = c.Result()
		}
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("streaming and whole-file checks disagree: %v / %v", wantErr, gotErr)
		}
		if gotErr != nil {
			assertRefused(t, gotErr, ErrRefused)
			return
		}
		if len(got.Signers) != len(want.Signers) || got.Signers[0].Signer.ID() != want.Signers[0].Signer.ID() {
			t.Fatalf("different signers: %v / %v", want.Signers, got.Signers)
		}
	})
}
