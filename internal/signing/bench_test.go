package signing

import "testing"

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
