package signing

import (
	"bytes"
	"crypto/rsa"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// sshKey is one pinned SSH public key.
type sshKey struct {
	pub     ssh.PublicKey
	wire    []byte    // pub.Marshal(), compared with the key inside a signature
	expires time.Time // from an expiry-time="..." option; zero if none
	signer  Signer
}

// loadSSH reads authorized_keys lines. Every non-blank, non-comment line
// must be a key: x/crypto/ssh skips lines it cannot parse, which would drop a
// mistyped pinned key without a word.
func loadSSH(item []byte) ([]*sshKey, error) {
	if len(bytes.TrimSpace(item)) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if len(item) > maxKeySize {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d accepted", ErrInvalidKey, len(item), maxKeySize)
	}
	if bytes.Contains(item, []byte("PRIVATE KEY-----")) {
		return nil, fmt.Errorf("%w: this is a PRIVATE key; pin only the public key (the .pub file, one authorized_keys line)", ErrPrivateKey)
	}
	var keys []*sshKey
	for n, line := range bytes.Split(item, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		key, err := parseSSHLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no SSH key found", ErrInvalidKey)
	}
	return keys, nil
}

func parseSSHLine(line []byte) (*sshKey, error) {
	pub, comment, options, rest, err := ssh.ParseAuthorizedKey(line)
	if err != nil || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: not an authorized_keys line (\"TYPE BASE64 [COMMENT]\")", ErrInvalidKey)
	}
	if _, ok := pub.(*ssh.Certificate); ok {
		return nil, fmt.Errorf("%w: SSH certificates are not supported; pin the plain public key", ErrInvalidKey)
	}
	if err := checkSSHKeyStrength(pub); err != nil {
		return nil, err
	}
	key := &sshKey{
		pub:    pub,
		wire:   pub.Marshal(),
		signer: Signer{Scheme: "ssh", Fingerprint: ssh.FingerprintSHA256(pub), Identity: cleanIdentity(comment)},
	}
	for _, opt := range options {
		name, value, _ := strings.Cut(opt, "=")
		switch strings.ToLower(name) {
		case "cert-authority":
			return nil, fmt.Errorf("%w: cert-authority keys are not supported; pin the signing key itself", ErrInvalidKey)
		case "expiry-time":
			t, err := parseExpiryTime(strings.Trim(value, `"`))
			if err != nil {
				return nil, err
			}
			key.expires = t
		}
	}
	return key, nil
}

// parseExpiryTime reads OpenSSH's YYYYMMDD[HHMM[SS]][Z] as UTC: a function
// runs in UTC, and a pinned key must not expire hours early or late.
func parseExpiryTime(v string) (time.Time, error) {
	v = strings.TrimSuffix(strings.TrimSuffix(v, "Z"), "z")
	layouts := map[int]string{8: "20060102", 12: "200601021504", 14: "20060102150405"}
	if layout, ok := layouts[len(v)]; ok {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: expiry-time %s is not YYYYMMDD[HHMM[SS]][Z]", ErrInvalidKey, quote(v, 20))
}

func checkSSHKeyStrength(pub ssh.PublicKey) error {
	switch pub.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoSKED25519,
		ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoSKECDSA256:
		return nil
	case ssh.KeyAlgoRSA:
		cpk, ok := pub.(ssh.CryptoPublicKey)
		if !ok {
			return fmt.Errorf("%w: unreadable RSA key", ErrInvalidKey)
		}
		rk, ok := cpk.CryptoPublicKey().(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%w: unreadable RSA key", ErrInvalidKey)
		}
		if bits := rk.N.BitLen(); bits < 2048 {
			return because(ErrWeakAlgorithm, "RSA key of %d bits (at least 2048 required)", bits)
		}
		return nil
	case ssh.InsecureKeyAlgoDSA:
		return because(ErrWeakAlgorithm, "DSA (ssh-dss) keys are not accepted")
	}
	return because(ErrWeakAlgorithm, "SSH key type %s is not supported", quote(pub.Type(), 40))
}

// verifySSH checks an armored SSH signature ("ssh-keygen -Y sign") made by a
// pinned key in the given namespace ("file" for files, "git" for git).
func (k *Keys) verifySSH(message, data []byte, namespace string) (Signer, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != sshsig.PEMType || len(block.Headers) != 0 {
		return Signer{}, refuse(ErrMalformed, "unreadable SSH signature armor")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return Signer{}, refuse(ErrMalformed, "unexpected data after the SSH signature")
	}
	sig, err := sshsig.ParseSignature(block.Bytes)
	if err != nil {
		return Signer{}, refuse(ErrMalformed, "unreadable SSH signature (%s)", libErr(err))
	}
	wire := sig.PublicKey.Marshal()
	var key *sshKey
	for _, candidate := range k.ssh {
		if bytes.Equal(candidate.wire, wire) {
			key = candidate
			break
		}
	}
	if key == nil {
		return Signer{}, refuse(ErrUnknownKey, "SSH signature by %s", ssh.FingerprintSHA256(sig.PublicKey))
	}
	if sig.Namespace != namespace {
		return Signer{}, refuse(ErrWrongNamespace, "SSH signature namespace is %s, want %q", quote(sig.Namespace, 40), namespace)
	}
	if err := sig.HashAlgorithm.Available(); err != nil {
		return Signer{}, refuse(ErrWeakAlgorithm, "SSH signature hash %s", quote(sig.HashAlgorithm.String(), 20))
	}
	if sig.Signature == nil || (key.pub.Type() == ssh.KeyAlgoRSA && sig.Signature.Format != ssh.KeyAlgoRSASHA256 && sig.Signature.Format != ssh.KeyAlgoRSASHA512) {
		return Signer{}, refuse(ErrWeakAlgorithm, "SSH RSA signature must use rsa-sha2-256 or rsa-sha2-512")
	}
	if err := sshsig.Verify(bytes.NewReader(message), sig, key.pub, sig.HashAlgorithm, namespace); err != nil {
		return Signer{}, refuse(ErrBadSignature, "SSH signature by %s does not match the content", key.signer.Fingerprint)
	}
	if !key.expires.IsZero() && k.now().After(key.expires) {
		return Signer{}, refuse(ErrKeyExpired, "SSH key %s expired on %s (expiry-time)", key.signer.Fingerprint, key.expires.Format(time.RFC3339))
	}
	return key.signer, nil
}
