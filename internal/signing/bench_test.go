package signing

import (
	"testing"
	"time"
)

func benchmarkDetached(b *testing.B, sigFile string) {
	k := pinnedKeys(b)
	msg := release(b, "SHA256SUMS")
	sig := release(b, sigFile)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.VerifyDetached(msg, sig); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyDetachedOpenPGP(b *testing.B) { benchmarkDetached(b, "SHA256SUMS.asc") }

func BenchmarkVerifyDetachedOpenPGPRSA(b *testing.B) { benchmarkDetached(b, "SHA256SUMS.rsa.sig") }

func BenchmarkVerifyDetachedSSH(b *testing.B) { benchmarkDetached(b, "SHA256SUMS.ssh.sig") }

func BenchmarkVerifyDetachedCosign(b *testing.B) { benchmarkDetached(b, "SHA256SUMS.cosign.sig") }

func BenchmarkVerifyDetachedSSHCertificate(b *testing.B) {
	k, err := NewKeys(nil, [][]byte{sshFixture(b, "allowed_signers", "ca")}, nil,
		Options{Now: func() time.Time { return time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC) }})
	if err != nil {
		b.Fatal(err)
	}
	msg, sig := sshFixture(b, "SHA256SUMS"), sshFixture(b, "SHA256SUMS.cert.sig")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.VerifyDetached(msg, sig); err != nil {
			b.Fatal(err)
		}
	}
}

// OpenSSH's own release tag: a security-key (sk-ecdsa) signature, verified by this
// package's own PROTOCOL.u2f code.
func BenchmarkVerifyGitTagOpenSSHSecurityKey(b *testing.B) {
	k := opensshKeys(b, fixture(b, "openssh", "git_allowed_signers"))
	payload, sig := splitRawTag(b, fixture(b, "openssh", "V_9_9_P1.tag"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.VerifyGitTag(payload, sig); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadAllowedSigners(b *testing.B) {
	item := fixture(b, "openssh", "git_allowed_signers")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewKeys(nil, [][]byte{item}, nil, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
