package signing

import "testing"

func BenchmarkVerifyBundleKeyless(b *testing.B) {
	k := publicGoodKeys(b, grIdentity)
	msg, bundle := sigstoreFixture(b, grSums), sigstoreFixture(b, grBundle)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Verify(msg, bundle); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyBundleKey(b *testing.B) {
	k := pinnedKeys(b)
	msg, bundle := release(b, "SHA256SUMS"), sigstoreFixture(b, keyBundle)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Verify(msg, bundle); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyAttestation(b *testing.B) {
	k := publicGoodKeys(b, jsIdentity)
	bundle := sigstoreFixture(b, jsProvenance)
	p := AttestationPolicy{SourceRepository: jsRepo, SourceRef: jsRef}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.VerifyAttestation(bundle, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyClearsignedNode(b *testing.B) {
	k, err := NewKeys([][]byte{fixture(b, "clearsigned", "node-8FCCA13FEF1D0C2E91008E09770F7A9A5AE15600.asc")}, nil, nil, Options{})
	if err != nil {
		b.Fatal(err)
	}
	data := fixture(b, "clearsigned", "node-v14.2.0-SHASUMS256.txt.asc")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := k.VerifyClearsigned(data); err != nil {
			b.Fatal(err)
		}
	}
}
