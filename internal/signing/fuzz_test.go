package signing

import (
	"testing"
)

// FuzzVerifyDetached feeds hostile signature bytes: verification must never
// panic, must refuse with ErrRefused and a short message, and may only accept
// on behalf of a pinned key.
func FuzzVerifyDetached(f *testing.F) {
	k := pinnedKeys(f)
	msg := release(f, "SHA256SUMS")
	pinned := map[string]bool{}
	for _, s := range k.Signers() {
		pinned[s.Fingerprint] = true
	}
	for _, name := range []string{"SHA256SUMS.asc", "SHA256SUMS.textmode.asc", "SHA256SUMS.rsa.sig", "SHA256SUMS.ssh.sig",
		"SHA256SUMS.ssh-rsa.sig", "SHA256SUMS.cosign.sig", "SHA256SUMS.sha1.asc", "SHA256SUMS.other.asc", "SHA256SUMS.ssh-wrongns.sig"} {
		f.Add(msg, release(f, name))
	}
	f.Add(msg, dearmor(f, release(f, "SHA256SUMS.asc")))
	f.Add([]byte("x"), []byte("-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----\n"))
	f.Add([]byte{}, []byte{0x88, 0x00})

	catchPanics = false
	f.Cleanup(func() { catchPanics = true })
	f.Fuzz(func(t *testing.T, message, sig []byte) {
		signer, err := k.VerifyDetached(message, sig)
		if err == nil {
			if !pinned[signer.Fingerprint] {
				t.Fatalf("accepted for a key that is not pinned: %v", signer)
			}
			return
		}
		assertRefused(t, err, ErrRefused)
		if _, gerr := k.VerifyGitTag(message, sig); gerr != nil {
			assertRefused(t, gerr, ErrRefused)
		}
	})
}
