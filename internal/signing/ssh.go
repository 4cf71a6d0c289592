package signing

import (
	"bytes"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// DSA key and certificate types, recognised only to be refused. (x/crypto/ssh's names for
// them are deprecated, which staticcheck reports wherever they are used.)
const (
	sshKeyAlgoDSA     = "ssh-dss"
	sshCertAlgoDSAv01 = "ssh-dss-cert-v01@openssh.com"
)

// sshKey is one pinned SSH entry: a plain key, an authorized_keys line or an
// allowed_signers line (see allowedsigners.go).
type sshKey struct {
	pub    ssh.PublicKey // the signing key, or the CA key of a cert-authority line
	wire   []byte        // pub.Marshal(), compared with the key inside a signature
	fp     string
	line   sshEntry
	signer Signer
}

// loadSSH reads the lines of one item. Every non-blank, non-comment line must be a
// usable key: x/crypto/ssh skips lines it cannot parse, which would drop a mistyped
// pinned key without a word.
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
	err := splitSSHLines(item, func(n int, line []byte) error {
		key, err := parseSSHLine(line)
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		keys = append(keys, key)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no SSH key found", ErrInvalidKey)
	}
	return keys, nil
}

func parseSSHLine(line []byte) (*sshKey, error) {
	e, err := parseSSHEntry(line)
	if err != nil {
		return nil, err
	}
	if err := checkSSHKeyStrength(e.pub); err != nil {
		return nil, err
	}
	fp := ssh.FingerprintSHA256(e.pub)
	identity := e.principals
	if identity == "" {
		identity = e.comment
	}
	return &sshKey{
		pub:    e.pub,
		wire:   e.pub.Marshal(),
		fp:     fp,
		line:   *e,
		signer: Signer{Scheme: "ssh", Fingerprint: fp, Identity: cleanIdentity(identity)},
	}, nil
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
	case sshKeyAlgoDSA:
		return because(ErrWeakAlgorithm, "DSA (ssh-dss) keys are not accepted")
	}
	return because(ErrWeakAlgorithm, "SSH key type %s is not supported", quote(pub.Type(), 40))
}

// sshContext is what a verification is judged against.
type sshContext struct {
	namespace string    // the namespace the use requires ("git"), or "" for a detached signature
	at        time.Time // the signing time OpenSSH's verify-time would be
	atText    string    // says where at came from, for messages
	fromTag   bool      // at is a tag's date (must not be in the future)
}

// verifySSH checks an armored SSH signature ("ssh-keygen -Y sign") by a pinned entry,
// the way "ssh-keygen -Y verify" with an allowed_signers file does (and git, which
// passes the tagger date as verify-time). The signature is verified first, so that a
// refusal of a good signature (wrong namespace, expired entry...) says so and is never
// reported as altered content.
func (k *Keys) verifySSH(message, data []byte, c sshContext) (Signer, error) {
	p, err := k.prepareSSH(data)
	if err != nil {
		return Signer{}, err
	}
	h, err := p.sig.newHash()
	if err != nil {
		return Signer{}, refuse(ErrWeakAlgorithm, "SSH signature by %s: %v", p.signedBy, err)
	}
	h.Write(message)
	return k.finishSSH(p, h.Sum(nil), c)
}

// sshPrepared is an SSH signature by a pinned entry whose certificate (if any) was
// issued by the pinned CA: what is left needs the signed data's digest.
type sshPrepared struct {
	sig        *sshSig
	cert       *ssh.Certificate
	signedBy   string
	candidates []*sshKey
}

// prepareSSH runs every check that does not need the signed data.
func (k *Keys) prepareSSH(data []byte) (*sshPrepared, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "SSH SIGNATURE" || len(block.Headers) != 0 {
		return nil, refuse(ErrMalformed, "unreadable SSH signature armor")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, refuse(ErrMalformed, "unexpected data after the SSH signature")
	}
	sig, err := parseSSHSig(block.Bytes)
	if err != nil {
		return nil, refuse(ErrMalformed, "unreadable SSH signature: %s", err.Error())
	}
	signedBy := ssh.FingerprintSHA256(sig.pub)
	// As in OpenSSH, a plain entry matches a plain signing key only, and a
	// certificate matches only cert-authority entries for its CA (a plain entry for
	// the certified key does not match: sshkey_equal compares the key types).
	cert, _ := sig.pub.(*ssh.Certificate)
	var candidates []*sshKey
	for _, key := range k.ssh {
		switch {
		case cert == nil && !key.line.opts.certAuthority && bytes.Equal(key.wire, sig.pub.Marshal()):
			candidates = append(candidates, key)
		case cert != nil && key.line.opts.certAuthority && bytes.Equal(key.wire, cert.SignatureKey.Marshal()):
			candidates = append(candidates, key)
		}
	}
	if len(candidates) == 0 {
		if cert != nil {
			return nil, refuse(ErrUnknownKey, "SSH signature by a certificate (key %s) issued by CA %s", ssh.FingerprintSHA256(cert.Key), ssh.FingerprintSHA256(cert.SignatureKey))
		}
		return nil, refuse(ErrUnknownKey, "SSH signature by %s", signedBy)
	}

	// A certificate's own signature first: until the pinned CA is shown to have
	// issued it, nothing in it (type, principals, dates) means anything.
	if cert != nil {
		if cert.Signature == nil || cert.Signature.Format == ssh.KeyAlgoRSA || cert.Signature.Format == sshKeyAlgoDSA {
			return nil, refuse(ErrWeakAlgorithm, "SSH certificate (key %s) is signed by CA %s with a SHA-1 algorithm", ssh.FingerprintSHA256(cert.Key), candidates[0].fp)
		}
		if !certSignedBy(cert) {
			return nil, refuse(ErrBadSignature, "SSH certificate (key %s) names CA %s, but its signature does not verify", ssh.FingerprintSHA256(cert.Key), candidates[0].fp)
		}
	}
	return &sshPrepared{sig: sig, cert: cert, signedBy: signedBy, candidates: candidates}, nil
}

// finishSSH verifies a prepared signature given the digest of the signed data (made
// with the signature's hash, sshSig.newHash) and applies the entries' rules.
func (k *Keys) finishSSH(p *sshPrepared, digest []byte, c sshContext) (Signer, error) {
	flags, err := p.sig.verifyDigest(digest)
	switch {
	case errors.Is(err, ErrWeakAlgorithm):
		return Signer{}, refuse(ErrWeakAlgorithm, "SSH signature by %s: %v", p.signedBy, err)
	case err != nil:
		return Signer{}, refuse(ErrBadSignature, "SSH signature by %s does not match the content", p.signedBy)
	}

	// The signature is good. Each candidate entry may still refuse it; one that
	// accepts is enough, as in OpenSSH.
	now := k.now()
	var first error
	for _, key := range p.candidates {
		signer, err := key.admit(p.sig, p.cert, flags, c, now)
		if err == nil {
			return signer, nil
		}
		if first == nil {
			first = err
		}
	}
	return Signer{}, first
}

// admit applies one entry's rules to a signature that verified.
func (key *sshKey) admit(sig *sshSig, cert *ssh.Certificate, flags byte, c sshContext, now time.Time) (Signer, error) {
	o := key.line.opts
	who := "key " + key.fp
	if o.certAuthority {
		who = "CA " + key.fp
	}
	if c.namespace != "" && sig.namespace != c.namespace {
		return Signer{}, refuse(ErrWrongNamespace, "SSH signature namespace is %s, want %q", quote(sig.namespace, 60), c.namespace)
	}
	if o.hasNamespaces {
		if matchPatternList(sig.namespace, o.namespaces) != 1 {
			return Signer{}, refuse(ErrWrongNamespace, "SSH signature namespace is %s, but %s is pinned with namespaces=%s", quote(sig.namespace, 60), who, quote(o.namespaces, 80))
		}
	} else if c.namespace == "" && sig.namespace != "file" {
		return Signer{}, refuse(ErrWrongNamespace, "SSH signature namespace is %s, want \"file\" (pin the key with namespaces=\"...\" to accept another)", quote(sig.namespace, 60))
	}
	if c.namespace == "" && sig.namespace == "git" {
		return Signer{}, refuse(ErrWrongNamespace, "SSH signature namespace is \"git\": a git object signature, not a file signature")
	}

	timed := !o.validAfter.IsZero() || !o.validBefore.IsZero() || o.certAuthority
	if timed && c.fromTag && c.at.After(now.Add(maxClockSkew)) {
		return Signer{}, refuse(ErrBadSignature, "the tag is dated %s, in the future", c.at.UTC().Format(time.RFC3339))
	}
	signer := key.signer
	// User presence and verification are not required, as in "ssh-keygen -Y verify",
	// unless the entry (or its certificate) asks for verify-required: then they are
	// required as sshd requires them for authorized_keys, presence being waived by
	// no-touch-required.
	requireUV, noTouch := o.verifyUV, o.noTouch
	if o.certAuthority {
		principal, err := checkSSHCert(cert, key, c)
		if err != nil {
			return Signer{}, err
		}
		if _, ok := cert.CriticalOptions["verify-required"]; ok {
			requireUV = true
		}
		if _, ok := cert.Extensions["no-touch-required"]; ok {
			noTouch = true
		}
		signer.Identity = cleanIdentity(fmt.Sprintf("%s (certificate %s, key %s)", principal, quote(cert.KeyId, 40), ssh.FingerprintSHA256(cert.Key)))
	}
	if !o.validAfter.IsZero() && c.at.Before(o.validAfter) {
		return Signer{}, refuse(ErrKeyNotYetValid, "%s not yet valid per valid-after=%q (%s)", who, o.afterText, c.atText)
	}
	if !o.validBefore.IsZero() && c.at.After(o.validBefore) {
		return Signer{}, refuse(ErrKeyExpired, "%s expired per valid-before=%q (%s)", who, o.beforeText, c.atText)
	}
	if !o.expires.IsZero() && now.After(o.expires) {
		return Signer{}, refuse(ErrKeyExpired, "%s expired on %s (expiry-time=%q)", who, o.expires.Format(time.RFC3339), o.expiresText)
	}
	if requireUV && !isSKKey(sig.pub) {
		return Signer{}, refuse(ErrSecurityKeyFlags, "verify-required: the signature is by a %s key, not a security key, so nothing vouches for user verification", sigKeyType(sig.pub))
	}
	if requireUV && !noTouch && flags&skUserPresent == 0 {
		return Signer{}, refuse(ErrSecurityKeyFlags, "security-key signature by %s lacks the user-presence flag that verify-required demands (add no-touch-required to waive it)", who)
	}
	if requireUV && flags&skUserVerified == 0 {
		return Signer{}, refuse(ErrSecurityKeyFlags, "security-key signature by %s lacks the user-verification flag (verify-required)", who)
	}
	return signer, nil
}

// certSignedBy reports whether the certificate's signature verifies with the CA key
// it names (the caller has matched that key with a pinned CA). x/crypto only offers
// the check inside CertChecker.CheckCert, so the other checks it makes are satisfied
// on purpose here (a time inside the validity window, a listed principal, the
// certificate's own critical options); checkSSHCert judges those for real.
func certSignedBy(cert *ssh.Certificate) bool {
	if cert.ValidAfter > 1<<62 || cert.ValidBefore <= cert.ValidAfter {
		return false // never valid; refused whatever its signature
	}
	var opts []string
	for opt := range cert.CriticalOptions {
		opts = append(opts, opt)
	}
	principal := ""
	if len(cert.ValidPrincipals) > 0 {
		principal = cert.ValidPrincipals[0]
	}
	inside := time.Unix(int64(cert.ValidAfter), 0)
	checker := ssh.CertChecker{SupportedCriticalOptions: opts, Clock: func() time.Time { return inside }}
	return checker.CheckCert(principal, cert) == nil
}

// checkSSHCert judges a certificate issued by a pinned CA (its signature already
// verified) as OpenSSH's sshkey_cert_check_authority and cert_filter_principals do at
// the verify time, and returns the first certificate principal the entry's principals
// accept.
func checkSSHCert(cert *ssh.Certificate, key *sshKey, c sshContext) (string, error) {
	ca := "CA " + key.fp
	id := quote(cert.KeyId, 40)
	if cert.CertType != ssh.UserCert {
		return "", refuse(ErrCertificate, "certificate %s from %s is a host certificate, not a user certificate", id, ca)
	}
	for opt := range cert.CriticalOptions {
		switch opt {
		case "verify-required", "force-command", "source-address":
			// verify-required is honoured by the caller; the others restrict logins only.
		default:
			return "", refuse(ErrCertificate, "certificate %s has a critical option %s that tamperguard does not understand", id, quote(opt, 40))
		}
	}
	if len(cert.ValidPrincipals) == 0 {
		return "", refuse(ErrCertificate, "certificate %s from %s lists no principals", id, ca)
	}
	at := c.at.Unix()
	if at < int64(cert.ValidAfter) || int64(cert.ValidAfter) < 0 {
		return "", refuse(ErrKeyNotYetValid, "certificate %s from %s is not valid before %s (%s)", id, ca, certTime(cert.ValidAfter), c.atText)
	}
	if cert.ValidBefore != ssh.CertTimeInfinity && (at >= int64(cert.ValidBefore) || int64(cert.ValidBefore) < 0) {
		return "", refuse(ErrKeyExpired, "certificate %s from %s expired on %s (%s)", id, ca, certTime(cert.ValidBefore), c.atText)
	}
	for _, p := range cert.ValidPrincipals {
		if matchPatternList(p, key.line.principals) == 1 {
			return p, nil
		}
	}
	return "", refuse(ErrPrincipalMismatch, "certificate %s from %s is for %s, which the pinned principals %s do not cover", id, ca, quote(strings.Join(cert.ValidPrincipals, ","), 80), quote(key.line.principals, 80))
}

func sigKeyType(pub ssh.PublicKey) string {
	if c, ok := pub.(*ssh.Certificate); ok {
		pub = c.Key
	}
	return pub.Type()
}

func certTime(t uint64) string {
	if t > 1<<40 {
		return "the end of time"
	}
	return time.Unix(int64(t), 0).UTC().Format(time.RFC3339)
}
