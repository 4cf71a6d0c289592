package signing

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// maxCosignSignature bounds a decoded cosign signature (RSA-8192 is 1 KiB).
const maxCosignSignature = 2048

// cosignKey is one pinned cosign key-pair public key.
type cosignKey struct {
	verifiers []signature.Verifier
	// hashes is, per verifier, the hash it verifies a digest of (0 for pure Ed25519,
	// which signs the message itself and so cannot be checked from a digest).
	hashes []crypto.Hash
	signer Signer
}

// loadCosign reads PEM public keys ("cosign generate-key-pair" writes
// cosign.pub); every block must be a usable public key.
func loadCosign(item []byte) ([]*cosignKey, error) {
	if len(bytes.TrimSpace(item)) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if len(item) > maxKeySize {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d accepted", ErrInvalidKey, len(item), maxKeySize)
	}
	var keys []*cosignKey
	rest := item
	for len(bytes.TrimSpace(rest)) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("%w: not a PEM public key", ErrInvalidKey)
		}
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return nil, fmt.Errorf("%w: this is a PRIVATE key; pin only the public key (cosign.pub)", ErrPrivateKey)
		}
		pub, err := cryptoutils.UnmarshalPEMToPublicKey(pem.EncodeToMemory(block))
		if err != nil {
			return nil, fmt.Errorf("%w: PEM block %s is not a readable public key", ErrInvalidKey, quote(block.Type, 40))
		}
		key, err := newCosignKey(pub)
		if err != nil {
			return nil, err
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// newCosignKey checks the key and prepares its verifiers. The hash is
// SHA-256 as cosign uses for key pairs; ECDSA keys on larger curves also
// accept their curve's own hash (what sigstore's default algorithms pick).
func newCosignKey(pub crypto.PublicKey) (*cosignKey, error) {
	hashes := []crypto.Hash{crypto.SHA256}
	switch pk := pub.(type) {
	case *ecdsa.PublicKey:
		switch pk.Curve {
		case elliptic.P256():
		case elliptic.P384():
			hashes = append(hashes, crypto.SHA384)
		case elliptic.P521():
			hashes = append(hashes, crypto.SHA512)
		default:
			return nil, because(ErrWeakAlgorithm, "ECDSA curve %s is not accepted (P-256, P-384, P-521)", quote(pk.Curve.Params().Name, 20))
		}
	case *rsa.PublicKey:
		if bits := pk.N.BitLen(); bits < 2048 {
			return nil, because(ErrWeakAlgorithm, "RSA key of %d bits (at least 2048 required)", bits)
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("%w: unsupported public key type %T", ErrInvalidKey, pub)
	}
	der, err := cryptoutils.MarshalPublicKeyToDER(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot encode the public key", ErrInvalidKey)
	}
	sum := sha256.Sum256(der)
	key := &cosignKey{signer: Signer{Scheme: "cosign", Fingerprint: "SHA256:" + hex.EncodeToString(sum[:])}}
	for _, h := range hashes {
		v, err := signature.LoadVerifier(pub, h)
		if err != nil {
			return nil, fmt.Errorf("%w: %s", ErrInvalidKey, libErr(err))
		}
		key.verifiers = append(key.verifiers, v)
		if _, ok := pub.(ed25519.PublicKey); ok {
			key.hashes = append(key.hashes, 0)
			break // pure Ed25519 has no separate hash
		}
		key.hashes = append(key.hashes, h)
	}
	return key, nil
}

// verifyCosign checks a base64 signature as written by "cosign sign-blob
// --output-signature" against each pinned cosign key. A raw signature names
// no key, so a signature by another key and altered content look the same.
func (k *Keys) verifyCosign(message, data []byte) (Signer, error) {
	// One base64 token; line breaks (wrapped output, a final newline) are
	// dropped, but inner spaces are not: prose is not a signature.
	text := bytes.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, bytes.TrimSpace(data))
	raw, err := base64.StdEncoding.DecodeString(string(text))
	if err != nil || len(raw) == 0 {
		return Signer{}, refuse(ErrMalformed, "not a recognised signature (armored OpenPGP, binary OpenPGP, armored SSH or base64 cosign)")
	}
	if len(raw) > maxCosignSignature {
		return Signer{}, refuse(ErrMalformed, "cosign signature of %d bytes is too large", len(raw))
	}
	if len(k.cosign) == 0 {
		return Signer{}, refuse(ErrUnknownKey, "cosign signature, but no cosign key is pinned")
	}
	for _, key := range k.cosign {
		for _, v := range key.verifiers {
			if v.VerifySignature(bytes.NewReader(raw), bytes.NewReader(message)) == nil {
				return key.signer, nil
			}
		}
	}
	return Signer{}, refuse(ErrBadSignature, "cosign signature does not verify with any pinned cosign key (other key, or altered content)")
}
