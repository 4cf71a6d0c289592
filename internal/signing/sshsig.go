package signing

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"math/big"

	"golang.org/x/crypto/ssh"
)

// The SSH signature format (OpenSSH PROTOCOL.sshsig) and the security-key signature
// format (PROTOCOL.u2f) are read and checked here rather than through x/crypto's
// PublicKey.Verify, because that requires the user-presence flag on security-key
// signatures, which "ssh-keygen -Y verify" (and git) do not: OpenSSH's own release tags
// are signed by a FIDO key without it.

const sshsigMagic = "SSHSIG"

// sshSig is a parsed SSH signature blob.
type sshSig struct {
	pub       ssh.PublicKey // may be an *ssh.Certificate
	namespace string
	hashAlg   string
	sig       ssh.Signature
}

// skFlags are the flags of a security-key signature.
const (
	skUserPresent  = 0x01
	skUserVerified = 0x04
)

// errSSHBadSignature is returned when the signature does not verify over the data.
var errSSHBadSignature = errors.New("signature does not verify")

// parseSSHSig reads the blob inside an armored SSH signature.
func parseSSHSig(b []byte) (*sshSig, error) {
	if len(b) < len(sshsigMagic) || string(b[:len(sshsigMagic)]) != sshsigMagic {
		return nil, errors.New("not an SSH signature (no SSHSIG preamble)")
	}
	var blob struct {
		Version   uint32
		PublicKey []byte
		Namespace string
		Reserved  []byte
		HashAlg   string
		Signature []byte
	}
	if err := ssh.Unmarshal(b[len(sshsigMagic):], &blob); err != nil {
		return nil, fmt.Errorf("malformed signature blob (%s)", libErr(err))
	}
	if blob.Version != 1 {
		return nil, fmt.Errorf("signature version %d (only 1 is defined)", blob.Version)
	}
	if blob.Namespace == "" {
		return nil, errors.New("empty namespace")
	}
	pub, err := ssh.ParsePublicKey(blob.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("unreadable public key (%s)", libErr(err))
	}
	var sig ssh.Signature
	if err := ssh.Unmarshal(blob.Signature, &sig); err != nil {
		return nil, fmt.Errorf("unreadable signature (%s)", libErr(err))
	}
	return &sshSig{pub: pub, namespace: blob.Namespace, hashAlg: blob.HashAlg, sig: sig}, nil
}

// newHash is the hash the signature's message digest is made with (sha256 or sha512):
// a file is streamed through it, then verifyDigest checks the signature.
func (s *sshSig) newHash() (hash.Hash, error) {
	switch s.hashAlg {
	case "sha256":
		return sha256.New(), nil
	case "sha512":
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("hash algorithm %s is not sha256 or sha512", quote(s.hashAlg, 20))
}

// signedData is what the key signed for a message with this digest (PROTOCOL.sshsig,
// "Signed Data"). The reserved field is empty, as in OpenSSH's verifier.
func (s *sshSig) signedData(digest []byte) []byte {
	return append([]byte(sshsigMagic), ssh.Marshal(struct {
		Namespace string
		Reserved  string
		HashAlg   string
		Digest    []byte
	}{s.namespace, "", s.hashAlg, digest})...)
}

// verify checks the signature over message with the signature's own key (the caller
// has matched that key against the pinned ones). For a security key it returns the
// signature's flags. A weak algorithm is an error wrapping ErrWeakAlgorithm; a
// signature that does not verify wraps errSSHBadSignature.
func (s *sshSig) verify(message []byte) (flags byte, err error) {
	h, err := s.newHash()
	if err != nil {
		return 0, because(ErrWeakAlgorithm, "%v", err)
	}
	h.Write(message)
	return s.verifyDigest(h.Sum(nil))
}

// verifyDigest is verify given the message's digest, made with newHash.
func (s *sshSig) verifyDigest(digest []byte) (flags byte, err error) {
	key := s.pub
	if c, ok := key.(*ssh.Certificate); ok {
		key = c.Key
	}
	if err := checkSSHKeyStrength(key); err != nil {
		return 0, err
	}
	if key.Type() == ssh.KeyAlgoRSA && s.sig.Format != ssh.KeyAlgoRSASHA256 && s.sig.Format != ssh.KeyAlgoRSASHA512 {
		return 0, because(ErrWeakAlgorithm, "SSH RSA signature must use rsa-sha2-256 or rsa-sha2-512, not %s", quote(s.sig.Format, 40))
	}
	if h, err := s.newHash(); err != nil {
		return 0, because(ErrWeakAlgorithm, "%v", err)
	} else if len(digest) != h.Size() {
		return 0, fmt.Errorf("%w: a %s digest of %d bytes", errSSHBadSignature, s.hashAlg, len(digest))
	}
	data := s.signedData(digest)
	switch key.Type() {
	case ssh.KeyAlgoSKECDSA256, ssh.KeyAlgoSKED25519:
		return verifySK(key, data, &s.sig)
	}
	if s.sig.Format != key.Type() && key.Type() != ssh.KeyAlgoRSA {
		return 0, fmt.Errorf("%w: signature format %s for a %s key", errSSHBadSignature, quote(s.sig.Format, 40), key.Type())
	}
	if err := key.Verify(data, &s.sig); err != nil {
		return 0, errSSHBadSignature
	}
	return 0, nil
}

// verifySK checks a security-key signature as OpenSSH's ssh_ecdsa_sk_verify and
// ssh_ed25519_sk_verify do: the key signed SHA256(application) || flags || counter ||
// SHA256(data). The flags are returned, not judged: whether user presence or
// verification is required is the allowed_signers entry's business.
func verifySK(key ssh.PublicKey, data []byte, sig *ssh.Signature) (byte, error) {
	if sig.Format != key.Type() {
		if sig.Format == "webauthn-sk-ecdsa-sha2-nistp256@openssh.com" {
			return 0, because(ErrWeakAlgorithm, "webauthn security-key signatures are not supported")
		}
		return 0, fmt.Errorf("%w: signature format %s for a %s key", errSSHBadSignature, quote(sig.Format, 40), key.Type())
	}
	if len(sig.Rest) != 5 {
		return 0, fmt.Errorf("%w: security-key signature without exactly flags and counter after it", errSSHBadSignature)
	}
	flags, counter := sig.Rest[0], binary.BigEndian.Uint32(sig.Rest[1:])

	var app string
	var verify func(signed []byte) bool
	switch key.Type() {
	case ssh.KeyAlgoSKECDSA256:
		var w struct {
			Name, Curve string
			Q           []byte
			Application string
		}
		if err := ssh.Unmarshal(key.Marshal(), &w); err != nil {
			return 0, fmt.Errorf("%w: unreadable security key", errSSHBadSignature)
		}
		pub, ok := key.(ssh.CryptoPublicKey).CryptoPublicKey().(*ecdsa.PublicKey)
		if !ok {
			return 0, fmt.Errorf("%w: unreadable security key", errSSHBadSignature)
		}
		var rs struct{ R, S *big.Int }
		if err := ssh.Unmarshal(sig.Blob, &rs); err != nil {
			return 0, fmt.Errorf("%w: unreadable ECDSA signature", errSSHBadSignature)
		}
		app = w.Application
		verify = func(signed []byte) bool {
			d := sha256.Sum256(signed)
			return ecdsa.Verify(pub, d[:], rs.R, rs.S)
		}
	case ssh.KeyAlgoSKED25519:
		var w struct {
			Name        string
			Key         []byte
			Application string
		}
		if err := ssh.Unmarshal(key.Marshal(), &w); err != nil || len(w.Key) != ed25519.PublicKeySize {
			return 0, fmt.Errorf("%w: unreadable security key", errSSHBadSignature)
		}
		if len(sig.Blob) != ed25519.SignatureSize {
			return 0, fmt.Errorf("%w: Ed25519 signature of %d bytes", errSSHBadSignature, len(sig.Blob))
		}
		app = w.Application
		verify = func(signed []byte) bool { return ed25519.Verify(ed25519.PublicKey(w.Key), signed, sig.Blob) }
	default:
		return 0, fmt.Errorf("%w: %s is not a security key", errSSHBadSignature, key.Type())
	}
	appHash := sha256.Sum256([]byte(app))
	dataHash := sha256.Sum256(data)
	signed := make([]byte, 0, 32+1+4+32)
	signed = append(signed, appHash[:]...)
	signed = append(signed, flags)
	signed = binary.BigEndian.AppendUint32(signed, counter)
	signed = append(signed, dataHash[:]...)
	if !verify(signed) {
		return 0, errSSHBadSignature
	}
	return flags, nil
}
