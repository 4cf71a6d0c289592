package signing

import (
	"bytes"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The fuzz targets feed hostile bytes to every parser that sees attacker-controlled
// input. Properties, for every input: no panic (catchPanics is off, so a parser
// panic fails the target instead of becoming a refusal), no hang, bounded work (the
// production caps apply: MaxSignatureSize, maxKeySize, maxSSHLine), refusals match
// ErrRefused with a short message, and nothing is accepted unless it is a genuine
// signature by a pinned test key over the message that key signed.
//
// Run one for 10 s: go test ./internal/signing -run '^$' -fuzz '^FuzzVerifyDetached$' -fuzztime 10s
// Seeds: the fixtures (f.Add) and testdata/fuzz/<FuzzName>/.

func noCatch(f *testing.F) {
	catchPanics = false
	f.Cleanup(func() { catchPanics = true })
}

// canonicalText is what an OpenPGP text-mode signature covers (RFC 4880 5.2.1): a
// lone "\n" becomes "\r\n". Two messages with the same canonical text share signatures.
func canonicalText(b []byte) []byte {
	var out bytes.Buffer
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out.WriteByte('\r')
		}
		out.WriteByte(c)
	}
	return out.Bytes()
}

// signedMessage reports whether m is one of the messages (or, for text-mode
// signatures, has the same canonical text).
func signedMessage(m []byte, messages ...[]byte) bool {
	for _, s := range messages {
		if bytes.Equal(m, s) || bytes.Equal(canonicalText(m), canonicalText(s)) {
			return true
		}
	}
	return false
}

func pinnedSet(k *Keys) map[string]bool {
	out := map[string]bool{}
	for _, s := range k.Signers() {
		out[s.Fingerprint] = true
	}
	return out
}

// FuzzVerifyDetached: armored and binary OpenPGP signatures, armored SSH
// signatures and cosign signatures over a message.
func FuzzVerifyDetached(f *testing.F) {
	k := pinnedKeys(f)
	msg := release(f, "SHA256SUMS")
	pinned := pinnedSet(k)
	for _, name := range []string{"SHA256SUMS.asc", "SHA256SUMS.textmode.asc", "SHA256SUMS.rsa.sig", "SHA256SUMS.ssh.sig",
		"SHA256SUMS.ssh-rsa.sig", "SHA256SUMS.cosign.sig", "SHA256SUMS.sha1.asc", "SHA256SUMS.other.asc", "SHA256SUMS.ssh-wrongns.sig",
		"SHA256SUMS.expired.asc", "SHA256SUMS.revoked.asc", "SHA256SUMS.rsa1024.asc"} {
		f.Add(msg, release(f, name))
	}
	f.Add(msg, dearmor(f, release(f, "SHA256SUMS.asc")))
	f.Add(bytes.ReplaceAll(msg, []byte("\n"), []byte("\r\n")), release(f, "SHA256SUMS.textmode.asc"))
	f.Add([]byte("x"), []byte("-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----\n"))
	f.Add([]byte{}, []byte{0x88, 0x00})
	// Formats told apart by content: a Sigstore bundle, a clearsigned file, a
	// signature file with two OpenPGP signatures.
	f.Add(msg, fixture(f, "sigstore", "othername.sigstore.json"))
	f.Add(msg, fixture(f, "clearsigned", "SHA256SUMS.asc"))
	f.Add(msg, fixture(f, "threshold", "SHA256SUMS.2of2.asc"))

	noCatch(f)
	f.Fuzz(func(t *testing.T, message, sig []byte) {
		signer, err := k.VerifyDetached(message, sig)
		if err == nil {
			if !pinned[signer.Fingerprint] {
				t.Fatalf("accepted for a key that is not pinned: %v", signer)
			}
			if !signedMessage(message, msg) {
				t.Fatalf("accepted a message no pinned key signed (%d bytes)", len(message))
			}
			return
		}
		assertRefused(t, err, ErrRefused)
		if _, gerr := k.VerifyGitTag(message, sig); gerr != nil {
			assertRefused(t, gerr, ErrRefused)
		}
	})
}

// sshFuzzKeys pins every SSH fixture key: the allowed_signers file with each form,
// the release keys and OpenSSH's allowed signers.
func sshFuzzKeys(t testing.TB) *Keys {
	t.Helper()
	k, err := NewKeys(nil, [][]byte{
		sshFixture(t, "allowed_signers", "all"),
		key(t, "release_ed25519.pub"),
		fixture(t, "openssh", "git_allowed_signers"),
	}, nil, Options{Now: func() time.Time { return time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sshBlob(t testing.TB, armored []byte) []byte {
	t.Helper()
	block, _ := pem.Decode(armored)
	if block == nil {
		t.Fatal("no armor")
	}
	return block.Bytes
}

// FuzzSSHSignatureBlob mutates the binary SSH signature blob itself (public key or
// certificate, namespace, hash algorithm, signature, security-key flags), armored
// by the harness, and verifies it as a file signature and as a git tag signature.
func FuzzSSHSignatureBlob(f *testing.F) {
	k := sshFuzzKeys(f)
	pinned := pinnedSet(k)
	msg := sshFixture(f, "SHA256SUMS")
	var payloads [][]byte
	for _, name := range []string{"SHA256SUMS.ed25519.sig", "SHA256SUMS.ecdsa.sig", "SHA256SUMS.runitor.sig", "SHA256SUMS.cert.sig",
		"SHA256SUMS.cert-host.sig", "SHA256SUMS.cert-noprincipals.sig"} {
		f.Add(msg, sshBlob(f, sshFixture(f, name)))
	}
	f.Add(release(f, "SHA256SUMS"), sshBlob(f, release(f, "SHA256SUMS.ssh.sig")))
	for _, tag := range [][]byte{sshFixture(f, "tags", "v2.0.0.tag"), sshFixture(f, "tags", "v2.1.0.tag"), fixture(f, "openssh", "V_9_9_P1.tag")} {
		payload, sig := splitRawTag(f, tag)
		payloads = append(payloads, payload)
		f.Add(payload, sshBlob(f, sig))
	}

	noCatch(f)
	f.Fuzz(func(t *testing.T, message, blob []byte) {
		armored := pem.EncodeToMemory(&pem.Block{Type: "SSH SIGNATURE", Bytes: blob})
		if signer, err := k.VerifyDetached(message, armored); err == nil {
			if !pinned[signer.Fingerprint] || !signedMessage(message, msg, release(t, "SHA256SUMS")) {
				t.Fatalf("accepted a file signature no pinned key made over this message: %v", signer)
			}
		} else {
			assertRefused(t, err, ErrRefused)
		}
		if signer, err := k.VerifyGitTag(message, armored); err == nil {
			if !pinned[signer.Fingerprint] || !signedMessage(message, payloads...) {
				t.Fatalf("accepted a tag signature no pinned key made over this payload: %v", signer)
			}
		} else {
			assertRefused(t, err, ErrRefused)
		}
	})
}

// FuzzVerifyGitTag mutates raw tag objects (payload with its tagger date, and the
// trailing OpenPGP or SSH signature).
func FuzzVerifyGitTag(f *testing.F) {
	k := sshFuzzKeys(f)
	pinned := pinnedSet(k)
	var payloads [][]byte
	for _, tag := range [][]byte{sshFixture(f, "tags", "v2.0.0.tag"), sshFixture(f, "tags", "v2.1.0.tag"), fixture(f, "openssh", "V_9_9_P1.tag")} {
		payload, _ := splitRawTag(f, tag)
		payloads = append(payloads, payload)
		f.Add(tag)
	}
	f.Add([]byte("object x\ntagger A <a@b> 99999999999 +0000\n\n-----BEGIN SSH SIGNATURE-----\n-----END SSH SIGNATURE-----\n"))

	noCatch(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		i := bytes.LastIndex(raw, []byte("\n-----BEGIN "))
		if i < 0 {
			return
		}
		payload, sig := raw[:i+1], raw[i+1:]
		signer, err := k.VerifyGitTag(payload, sig)
		if err == nil {
			if !pinned[signer.Fingerprint] || !signedMessage(payload, payloads...) {
				t.Fatalf("accepted a tag no pinned key signed: %v", signer)
			}
			return
		}
		assertRefused(t, err, ErrRefused)
	})
}

// FuzzAllowedSignersLine: configured SSH lines (principals, options, keys). A line
// may pin any key with any options, so the property is about the parser: no panic or
// hang, errors are load errors, and whatever loads never accepts a signature over a
// message it does not cover.
func FuzzAllowedSignersLine(f *testing.F) {
	for _, line := range strings.Split(string(sshFixture(f, "allowed_signers", "all")), "\n") {
		f.Add([]byte(line))
	}
	for _, line := range strings.Split(string(fixture(f, "openssh", "git_allowed_signers")), "\n") {
		f.Add([]byte(line))
	}
	entries, err := os.ReadDir(filepath.Join(testdataDir, "ssh", "allowed_signers"))
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		f.Add(sshFixture(f, "allowed_signers", e.Name()))
	}
	f.Add(key(f, "release_ed25519.pub"))
	f.Add([]byte(`restrict,expiry-time="20300101" ` + strings.TrimSpace(string(key(f, "release_ed25519.pub")))))
	f.Add([]byte(`"a b" namespaces="x\"y",valid-after="19700101000001Z" ssh-ed25519 AAAA`))

	wrong := []byte("not the signed message\n")
	sigs := [][]byte{sshFixture(f, "SHA256SUMS.ed25519.sig"), sshFixture(f, "SHA256SUMS.cert.sig"), sshFixture(f, "SHA256SUMS.runitor.sig")}
	noCatch(f)
	f.Fuzz(func(t *testing.T, item []byte) {
		k, err := NewKeys(nil, [][]byte{item}, nil, Options{Now: func() time.Time { return time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC) }})
		if err != nil {
			var ke *KeyError
			if !errors.As(err, &ke) || !(errors.Is(err, ErrInvalidKey) || errors.Is(err, ErrWeakAlgorithm) || errors.Is(err, ErrPrivateKey)) {
				t.Fatalf("unexpected load error: %v", err)
			}
			if len(err.Error()) > 600 {
				t.Fatalf("load error echoes too much input (%d bytes)", len(err.Error()))
			}
			return
		}
		for _, s := range sigs {
			if _, err := k.VerifyDetached(wrong, s); err == nil {
				t.Fatal("accepted a signature over another message")
			}
			if _, err := k.VerifyDetached(sshFixture(t, "SHA256SUMS"), s); err != nil {
				assertRefused(t, err, ErrRefused)
			}
		}
	})
}

// FuzzOpenPGPKey: configured OpenPGP public keys (armored or binary, one or many).
// A key that loads can only vouch for what its real holder signed.
func FuzzOpenPGPKey(f *testing.F) {
	for _, name := range []string{"maintainer-ed25519.asc", "maintainer-rsa3072.asc", "other-ed25519.asc", "rsa1024.asc",
		"expired-ed25519.asc", "revoked-ed25519.asc", "nosign-ed25519.asc"} {
		f.Add(key(f, name))
		f.Add(dearmor(f, key(f, name)))
	}
	f.Add(policyFixture(f, "sha1-selfsig-ed25519.asc"))
	maintainer := fingerprint(f, "maintainer-ed25519.asc")
	rsa := fingerprint(f, "maintainer-rsa3072.asc")
	msg := release(f, "SHA256SUMS")

	noCatch(f)
	f.Fuzz(func(t *testing.T, item []byte) {
		k, err := NewKeys([][]byte{item}, nil, nil, Options{Now: func() time.Time { return fixedNow }})
		if err != nil {
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("load error without KeyError: %v", err)
			}
			return
		}
		for sigName, want := range map[string]string{"SHA256SUMS.asc": maintainer, "SHA256SUMS.rsa.sig": rsa} {
			signer, err := k.VerifyDetached(msg, release(t, sigName))
			if err == nil && signer.Fingerprint != want {
				t.Fatalf("%s accepted as signed by %s", sigName, signer.Fingerprint)
			}
			if _, err := k.VerifyDetached(append([]byte("x"), msg...), release(t, sigName)); err == nil {
				t.Fatal("accepted a signature over another message")
			}
		}
	})
}
