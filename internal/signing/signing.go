// Package signing verifies release signatures against keys pinned in
// tamperguard's own configuration: detached signatures over checksum files
// (OpenPGP, SSH, cosign key pair), git tag signatures (OpenPGP, SSH), Sigstore
// bundles (key-based with the pinned cosign keys, keyless with pinned identities,
// verified offline against a pinned trusted root; sigstore.go), GitHub artifact
// attestations (attestation.go), clearsigned OpenPGP files (clearsigned.go) and
// k-of-n signing over distinct pinned keys (threshold.go).
//
// Signatures and signed data come from places an attacker may control, so the
// package is strict and says why it refused: it only trusts pinned keys (never
// a key carried inside a signature), and it applies its own policy on top of
// the libraries' defaults: an OpenPGP algorithm policy with dates modelled on
// Sequoia's standard policy (policy.go), SSH allowed_signers entries judged as
// "ssh-keygen -Y verify" judges them (allowedsigners.go, ssh.go), expired and
// revoked keys refused. Every verification failure matches ErrRefused.
package signing

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxSignatureSize bounds a signature input: real ones are a few hundred
// bytes to a few KiB, and anything larger is refused before parsing.
const MaxSignatureSize = 64 << 10

// maxKeySize bounds one configured key item (a keyring block may hold several keys).
const maxKeySize = 1 << 20

// maxClockSkew is how far in the future a signature's creation time may be.
const maxClockSkew = 5 * time.Minute

// Signer identifies the pinned key that vouched for something.
type Signer struct {
	Scheme      string // "openpgp" | "ssh" | "cosign"
	Fingerprint string // openpgp: upper-case hex fingerprint of the primary key; ssh: "SHA256:..."; cosign: "SHA256:" + hex sha256 of the DER SubjectPublicKeyInfo
	Identity    string // openpgp primary uid / ssh key comment / "" for cosign; for humans only
	// SignedAt is the creation time the signature itself carries, in UTC: it is signed, so
	// it can order releases and reveal a replayed older one. Only OpenPGP signatures carry
	// one; zero for SSH and cosign signatures.
	SignedAt time.Time
}

// ID is the signer as "scheme:fingerprint": the form decision lines carry.
func (s Signer) ID() string { return s.Scheme + ":" + s.Fingerprint }

// String is for logs and alerts: scheme, shortened fingerprint, identity.
func (s Signer) String() string {
	if s.Scheme == "" {
		return "no signer"
	}
	out := s.Scheme + " " + shortFingerprint(s.Fingerprint)
	if s.Identity != "" {
		out += " (" + s.Identity + ")"
	}
	return out
}

func shortFingerprint(fp string) string {
	prefix, body := "", fp
	if strings.HasPrefix(fp, "SHA256:") {
		prefix, body = "SHA256:", fp[len("SHA256:"):]
	}
	if utf8.RuneCountInString(body) <= 20 || len(body) != utf8.RuneCountInString(body) {
		return fp
	}
	return prefix + body[:8] + "…" + body[len(body)-8:]
}

// ErrRefused is matched by every verification failure.
var ErrRefused = errors.New("signature refused")

// Finer reasons; each wraps ErrRefused.
var (
	ErrUnknownKey       = refusal("signed by a key that is not pinned")
	ErrBadSignature     = refusal("signature does not verify")
	ErrWeakAlgorithm    = refusal("weak or unsupported algorithm")
	ErrKeyExpired       = refusal("key expired")
	ErrSignatureExpired = refusal("signature expired")
	ErrKeyRevoked       = refusal("key revoked")
	ErrMalformed        = refusal("malformed signature")
	ErrNoSignature      = refusal("no signature")
	ErrWrongNamespace   = refusal("wrong SSH signature namespace")
	ErrKeyNotYetValid   = refusal("key not yet valid")
	// ErrPrincipalMismatch: an SSH certificate by a pinned CA names no principal the
	// pinned entry covers.
	ErrPrincipalMismatch = refusal("certificate principal not allowed")
	// ErrCertificate: an SSH certificate that can never vouch (host certificate, no
	// principals, unknown critical option).
	ErrCertificate = refusal("unusable SSH certificate")
	// ErrSecurityKeyFlags: a security-key signature lacks a flag its entry requires.
	ErrSecurityKeyFlags = refusal("security-key signature lacks a required flag")
)

// Load-time errors (inside a KeyError); they do not match ErrRefused unless
// the key is refused for a reason above (weak, revoked).
var (
	ErrPrivateKey = errors.New("private key material where a public key belongs")
	ErrInvalidKey = errors.New("invalid key")
)

func refusal(msg string) error { return fmt.Errorf("%w: %s", ErrRefused, msg) }

// refuse builds an error that matches reason (and ErrRefused) with detail.
func refuse(reason error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{reason}, args...)...)
}

// detail reads as its own message but matches reason: load-time errors
// match ErrWeakAlgorithm or ErrKeyRevoked without saying "signature refused".
type detail struct {
	reason error
	msg    string
}

func (d *detail) Error() string { return d.msg }
func (d *detail) Unwrap() error { return d.reason }

func because(reason error, format string, args ...any) error {
	return &detail{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// KeyError says which configured key could not be used, so that the config
// loader can point at the right line. Index is the position (0-based) of the
// item in the slice given to NewKeys for that scheme (for "sigstore", in
// Options.Sigstore.Identities), or -1 for the scheme's settings as a whole (the
// Sigstore trusted root).
type KeyError struct {
	Scheme string
	Index  int
	Err    error
}

func (e *KeyError) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("%s: %v", e.Scheme, e.Err)
	}
	return fmt.Sprintf("%s key #%d: %v", e.Scheme, e.Index, e.Err)
}
func (e *KeyError) Unwrap() error { return e.Err }

// Options tune NewKeys.
type Options struct {
	Now func() time.Time // nil means time.Now; used for load-time policy and expiry checks at verification

	// AllowSHA1SelfSignaturesUnsafe accepts OpenPGP keys whose self-signatures or
	// subkey bindings use SHA-1 after the standard policy's cut-off (2023-02-01).
	// SHA-1 data signatures stay refused. Every use is logged at WARN.
	AllowSHA1SelfSignaturesUnsafe bool

	// Logger receives the warnings about relaxed (…Unsafe) policy being used; nil
	// means slog.Default().
	Logger *slog.Logger

	// Sigstore configures Sigstore bundles: the pinned trusted root and the
	// keyless identities. Key-based bundles use the cosign keys.
	Sigstore SigstoreOptions
}

// Keys is an immutable set of pinned keys; safe for concurrent use.
type Keys struct {
	now    func() time.Time
	policy pgpPolicy
	log    *slog.Logger
	pgp    []*pgpKey
	ssh    []*sshKey
	cosign []*cosignKey
	// sigstore is nil when no trusted root and no identity is configured.
	sigstore *sigstoreConfig
}

// NewKeys parses pinned keys: openpgp items are armored or binary public keys
// (a block may hold several), ssh items are lines of plain public keys,
// authorized_keys lines or allowed_signers lines (principals, options, key;
// '#' comments), cosign items are PEM public keys. A key that can never verify
// safely (weak, revoked, unable to sign, refused by the policy as of now,
// private, garbage) is an error at load time, not a surprise at the first
// release. Expired OpenPGP keys load; their signatures are refused at
// verification time.
func NewKeys(openpgp, ssh, cosign [][]byte, opts Options) (*Keys, error) {
	k := &Keys{now: opts.Now, log: opts.Logger, policy: pgpPolicy{allowSHA1SelfSigs: opts.AllowSHA1SelfSignaturesUnsafe}}
	if k.now == nil {
		k.now = time.Now
	}
	if k.log == nil {
		k.log = slog.Default()
	}
	for i, item := range openpgp {
		keys, err := k.loadOpenPGP(item)
		if err != nil {
			return nil, &KeyError{Scheme: "openpgp", Index: i, Err: err}
		}
		k.pgp = append(k.pgp, keys...)
	}
	for i, item := range ssh {
		keys, err := loadSSH(item)
		if err != nil {
			return nil, &KeyError{Scheme: "ssh", Index: i, Err: err}
		}
		k.ssh = append(k.ssh, keys...)
	}
	for i, item := range cosign {
		keys, err := loadCosign(item)
		if err != nil {
			return nil, &KeyError{Scheme: "cosign", Index: i, Err: err}
		}
		k.cosign = append(k.cosign, keys...)
	}
	if len(bytes.TrimSpace(opts.Sigstore.TrustedRoot)) > 0 || len(opts.Sigstore.Identities) > 0 {
		sc, err := loadSigstore(opts.Sigstore)
		if err != nil {
			var ke *KeyError
			if errors.As(err, &ke) {
				return nil, err
			}
			return nil, &KeyError{Scheme: "sigstore", Index: -1, Err: err}
		}
		k.sigstore = sc
	}
	return k, nil
}

// Empty reports whether no key is pinned (every verification would fail).
func (k *Keys) Empty() bool {
	return k == nil || len(k.pgp)+len(k.ssh)+len(k.cosign) == 0 && (k.sigstore == nil || len(k.sigstore.identities) == 0)
}

// Signers lists the pinned keys, e.g. to log what a deployment trusts.
func (k *Keys) Signers() []Signer {
	if k == nil {
		return nil
	}
	var out []Signer
	for _, p := range k.pgp {
		out = append(out, p.signer)
	}
	for _, s := range k.ssh {
		out = append(out, s.signer)
	}
	for _, c := range k.cosign {
		out = append(out, c.signer)
	}
	return out
}

var (
	pgpSignatureHeader = []byte("-----BEGIN PGP SIGNATURE-----")
	sshSignatureHeader = []byte("-----BEGIN SSH SIGNATURE-----")
	armorHeader        = []byte("-----BEGIN ")
)

// VerifyDetached checks sig over message. The format is told by the bytes:
// a Sigstore bundle (see VerifyBundle), armored OpenPGP, binary OpenPGP, armored
// SSH (namespace "file", or one its entry's namespaces="..." allows;
// time-bounded entries are judged at the current time: a detached SSH
// signature carries no date), otherwise a base64 cosign signature. Verify also
// returns the signed time.
func (k *Keys) VerifyDetached(message, sig []byte) (signer Signer, err error) {
	v, err := k.Verify(message, sig)
	return v.Signer, err
}

// Verify is VerifyDetached returning the signed time where the format has one
// (Verified.Time).
func (k *Keys) Verify(message, sig []byte) (v Verified, err error) {
	if IsSigstoreBundle(sig) {
		return k.VerifyBundle(message, sig)
	}
	defer recoverParser(&err)
	head, err := checkSize(sig)
	if err != nil {
		return Verified{}, err
	}
	if k == nil {
		k = &Keys{now: time.Now, log: slog.Default()}
	}
	switch {
	case bytes.HasPrefix(head, pgpSignatureHeader):
		return k.verifyOpenPGPTimed(message, head, true)
	case bytes.HasPrefix(head, sshSignatureHeader):
		now := k.now().UTC()
		signer, err := k.verifySSH(message, head, sshContext{at: now,
			atText: "verified " + now.Format(time.RFC3339) + "; a detached signature is judged at the current time"})
		return Verified{Signer: signer}, err
	case bytes.HasPrefix(head, clearsignedHeader):
		return Verified{}, refuse(ErrMalformed, "a clearsigned message is not a detached signature; give the clearsigned file itself as the signed file (VerifyClearsigned)")
	case bytes.HasPrefix(head, armorHeader):
		return Verified{}, refuse(ErrMalformed, "unsupported armored block %s", armorType(head))
	case sig[0]&0x80 != 0: // an OpenPGP packet tag always has the top bit set
		return k.verifyOpenPGPTimed(message, sig, false)
	default:
		signer, err := k.verifyCosign(message, sig)
		return Verified{Signer: signer}, err
	}
}

// VerifyGitTag checks a git tag's signature. payload is the tag object
// encoded without its signature; sig is the trailing signature block, an
// armored OpenPGP signature or an armored SSH signature (namespace "git";
// time-bounded entries are judged at the tagger date, as git passes it to
// "ssh-keygen -Y verify" as verify-time).
func (k *Keys) VerifyGitTag(payload, sig []byte) (signer Signer, err error) {
	defer recoverParser(&err)
	head, err := checkSize(sig)
	if err != nil {
		return Signer{}, err
	}
	if k == nil {
		k = &Keys{now: time.Now, log: slog.Default()}
	}
	switch {
	case bytes.HasPrefix(head, pgpSignatureHeader):
		return k.verifyOpenPGP(payload, head, true)
	case bytes.HasPrefix(head, sshSignatureHeader):
		c := sshContext{namespace: "git"}
		if at, ok := taggerTime(payload); ok {
			c.at, c.fromTag = at, true
			c.atText = "signed " + at.UTC().Format(time.RFC3339) + " per the tagger date"
		} else {
			c.at = k.now().UTC()
			c.atText = "verified " + c.at.Format(time.RFC3339) + "; the tag has no readable tagger date"
		}
		return k.verifySSH(payload, head, c)
	case bytes.HasPrefix(head, armorHeader):
		return Signer{}, refuse(ErrMalformed, "unsupported git signature block %s", armorType(head))
	default:
		return Signer{}, refuse(ErrMalformed, "git tag signature is neither an armored OpenPGP nor an SSH signature")
	}
}

// maxTagHeader bounds how much of a tag payload is searched for the tagger line.
const maxTagHeader = 64 << 10

// taggerTime reads the date of the tagger line of a tag object's header (what git
// passes to ssh-keygen as verify-time).
func taggerTime(payload []byte) (time.Time, bool) {
	if len(payload) > maxTagHeader {
		payload = payload[:maxTagHeader]
	}
	for len(payload) > 0 {
		line := payload
		if i := bytes.IndexByte(payload, '\n'); i >= 0 {
			line, payload = payload[:i], payload[i+1:]
		} else {
			payload = nil
		}
		if len(line) == 0 {
			break // end of the header
		}
		rest, ok := bytes.CutPrefix(line, []byte("tagger "))
		if !ok {
			continue
		}
		// "NAME <EMAIL> UNIXTIME TZ": the time is the second field from the end.
		end := bytes.LastIndexByte(rest, '>')
		fields := strings.Fields(string(rest[end+1:]))
		if end < 0 || len(fields) != 2 {
			return time.Time{}, false
		}
		secs, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || secs < 0 || secs > 1<<40 {
			return time.Time{}, false
		}
		return time.Unix(secs, 0).UTC(), true
	}
	return time.Time{}, false
}

// checkSize refuses empty and oversized input and returns sig without
// leading whitespace (where armor headers are looked for).
func checkSize(sig []byte) ([]byte, error) {
	if len(sig) > MaxSignatureSize {
		return nil, refuse(ErrMalformed, "signature is %d bytes, more than the %d accepted", len(sig), MaxSignatureSize)
	}
	head := bytes.TrimLeft(sig, " \t\r\n")
	if len(head) == 0 {
		return nil, refuse(ErrNoSignature, "signature is empty")
	}
	return head, nil
}

// catchPanics is switched off by the fuzz test so that a parser panic is
// found and fixed rather than hidden.
var catchPanics = true

// recoverParser turns a panic inside a parser fed hostile bytes into a
// refusal instead of a crash of the whole process.
func recoverParser(err *error) {
	if !catchPanics {
		return
	}
	if r := recover(); r != nil {
		*err = refuse(ErrMalformed, "signature could not be parsed (parser failure)")
	}
}

// armorType quotes the type of an armor header line, bounded.
func armorType(head []byte) string {
	line := head[len(armorHeader):]
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, "\r")
	line = bytes.TrimSuffix(line, []byte("-----"))
	return quote(string(line), 40)
}

// quote renders untrusted text for an error message: ASCII-only, quoted and
// cut to max bytes, so that errors never echo large or hostile input.
func quote(s string, max int) string {
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.QuoteToASCII(s[:cut]) + "…"
	}
	return strconv.QuoteToASCII(s)
}

// libErr renders an error from a parsing library, bounded and printable.
func libErr(err error) string {
	s := err.Error()
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, s)
}

// cleanIdentity keeps an identity printable and short: it ends up in alerts.
func cleanIdentity(s string) string {
	s = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > 128 {
		r := []rune(s)
		s = string(r[:128]) + "…"
	}
	return s
}
