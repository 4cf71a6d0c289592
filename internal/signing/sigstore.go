package signing

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/tamperguard/tamperguard/internal/checksum"
)

// MaxBundleSize bounds a Sigstore bundle. A message-signature bundle is a few
// KiB; a DSSE attestation carries its in-toto statement (SLSA provenance runs to
// tens of KiB), so the bound is larger than MaxSignatureSize.
const MaxBundleSize = 1 << 20

// maxTrustedRootSize bounds the configured trusted_root.json (public good's is ~10 KiB).
const maxTrustedRootSize = 4 << 20

// Bundle media types: "application/vnd.dev.sigstore.bundle+json;version=0.1" (and
// 0.2) and "application/vnd.dev.sigstore.bundle.v0.3+json".
const bundleMediaPrefix = "application/vnd.dev.sigstore.bundle"

// ErrSigstorePolicy: the bundle verifies, but its certificate's identity is not one
// the configuration pins (issuer, SAN, source repository), or an attestation does not
// meet the policy (predicate type, source repository or ref).
var ErrSigstorePolicy = refusal("Sigstore identity or attestation policy not met")

// SigstoreIdentity is one keyless signer the configuration trusts: the OIDC issuer
// and the certificate's subject alternative name (for GitHub Actions, the workflow
// URI "https://github.com/OWNER/REPO/.github/workflows/FILE@REF"). Exactly one of
// Identity and IdentityRegexp, and exactly one of Issuer and IssuerRegexp, is set.
// The optional fields are checked against the Fulcio certificate's extensions.
type SigstoreIdentity struct {
	Issuer         string
	IssuerRegexp   string
	Identity       string
	IdentityRegexp string
	// SourceRepository is the exact source repository URI the certificate must
	// name (extension 1.3.6.1.4.1.57264.1.12), e.g. "https://github.com/example/uploader".
	SourceRepository string
}

// SigstoreOptions configure Sigstore bundle verification (Options.Sigstore).
type SigstoreOptions struct {
	// TrustedRoot is a trusted_root.json (Fulcio CAs, Rekor and CT log keys,
	// timestamp authorities), pinned in the configuration. Required for keyless
	// bundles and for checking the transparency-log entries of key-based ones.
	TrustedRoot []byte
	// Identities are the keyless signers trusted; a keyless bundle whose
	// certificate matches none is refused (ErrSigstorePolicy).
	Identities []SigstoreIdentity
	// TransparencyLog is how many verified Rekor entries a keyless bundle must
	// carry: 0 means 1 (public good), a negative value means none are required
	// (GitHub's Sigstore instance for private repositories timestamps with a TSA
	// and logs nothing). Observer timestamps (Rekor integrated time or RFC 3161)
	// are always required: at least one, as sigstore-go's verifier demands.
	TransparencyLog int
	// CertificateTransparency is how many SCTs a Fulcio certificate must carry:
	// 0 means 1, negative means none (a private instance without a CT log).
	CertificateTransparency int
}

// sigstoreConfig is the loaded form of SigstoreOptions.
type sigstoreConfig struct {
	root       *root.TrustedRoot
	identities verify.CertificateIdentities
	keyless    []verify.VerifierOption
}

func loadSigstore(o SigstoreOptions) (*sigstoreConfig, error) {
	c := &sigstoreConfig{}
	if len(bytes.TrimSpace(o.TrustedRoot)) > 0 {
		if len(o.TrustedRoot) > maxTrustedRootSize {
			return nil, fmt.Errorf("%w: trusted root is %d bytes, more than the %d accepted", ErrInvalidKey, len(o.TrustedRoot), maxTrustedRootSize)
		}
		tr, err := root.NewTrustedRootFromJSON(o.TrustedRoot)
		if err != nil {
			return nil, fmt.Errorf("%w: trusted root is not a readable trusted_root.json (%s)", ErrInvalidKey, libErr(err))
		}
		if len(tr.FulcioCertificateAuthorities()) == 0 && len(tr.RekorLogs()) == 0 && len(tr.TimestampingAuthorities()) == 0 {
			return nil, fmt.Errorf("%w: trusted root lists no certificate authority, transparency log or timestamp authority", ErrInvalidKey)
		}
		c.root = tr
	}
	for i, id := range o.Identities {
		ci, err := id.compile()
		if err != nil {
			return nil, &KeyError{Scheme: "sigstore", Index: i, Err: err}
		}
		c.identities = append(c.identities, ci)
	}
	if len(c.identities) > 0 && c.root == nil {
		return nil, fmt.Errorf("%w: keyless Sigstore identities are pinned but no trusted root is configured (sigstore.trusted_root)", ErrInvalidKey)
	}
	tlog := o.TransparencyLog
	if tlog == 0 {
		tlog = 1
	}
	if tlog > 0 {
		c.keyless = append(c.keyless, verify.WithTransparencyLog(tlog))
	}
	c.keyless = append(c.keyless, verify.WithObserverTimestamps(1))
	sct := o.CertificateTransparency
	if sct == 0 {
		sct = 1
	}
	if sct > 0 {
		c.keyless = append(c.keyless, verify.WithSignedCertificateTimestamps(sct))
	}
	return c, nil
}

// compile checks an identity and turns it into sigstore-go's matcher.
func (id SigstoreIdentity) compile() (verify.CertificateIdentity, error) {
	if (id.Issuer == "") == (id.IssuerRegexp == "") {
		return verify.CertificateIdentity{}, fmt.Errorf("%w: give exactly one of issuer and issuer_regexp", ErrInvalidKey)
	}
	if (id.Identity == "") == (id.IdentityRegexp == "") {
		return verify.CertificateIdentity{}, fmt.Errorf("%w: give exactly one of identity and identity_regexp", ErrInvalidKey)
	}
	for _, re := range []string{id.IssuerRegexp, id.IdentityRegexp} {
		if re == "" {
			continue
		}
		if _, err := regexp.Compile(re); err != nil {
			return verify.CertificateIdentity{}, fmt.Errorf("%w: regexp %s: %s", ErrInvalidKey, quote(re, 80), libErr(err))
		}
		// An unanchored pattern matches inside any SAN: "github.com/example/" would also
		// match "https://evil.example/github.com/example/…".
		if !strings.HasPrefix(re, "^") {
			return verify.CertificateIdentity{}, fmt.Errorf("%w: regexp %s must start with ^ so that it cannot match inside another identity", ErrInvalidKey, quote(re, 80))
		}
	}
	san, err := verify.NewSANMatcher(id.Identity, id.IdentityRegexp)
	if err != nil {
		return verify.CertificateIdentity{}, fmt.Errorf("%w: %s", ErrInvalidKey, libErr(err))
	}
	iss, err := verify.NewIssuerMatcher(id.Issuer, id.IssuerRegexp)
	if err != nil {
		return verify.CertificateIdentity{}, fmt.Errorf("%w: %s", ErrInvalidKey, libErr(err))
	}
	ci, err := verify.NewCertificateIdentity(san, iss, certificate.Extensions{SourceRepositoryURI: id.SourceRepository})
	if err != nil {
		return verify.CertificateIdentity{}, fmt.Errorf("%w: %s", ErrInvalidKey, libErr(err))
	}
	return ci, nil
}

// IsSigstoreBundle reports whether data is a Sigstore bundle: a JSON object whose
// top-level mediaType is a Sigstore bundle media type, or the bundle format cosign
// wrote before v3 (base64Signature, cert, rekorBundle; see legacybundle.go). It
// reads the bytes only; a true answer says nothing about whether the bundle verifies.
func IsSigstoreBundle(data []byte) bool {
	return isProtoBundle(data) || isLegacyBundle(data)
}

func isProtoBundle(data []byte) bool {
	head := bytes.TrimLeft(data, " \t\r\n")
	if len(head) == 0 || head[0] != '{' || len(data) > MaxBundleSize {
		return false
	}
	var probe struct {
		MediaType string `json:"mediaType"`
	}
	if json.Unmarshal(head, &probe) != nil {
		return false
	}
	return strings.HasPrefix(probe.MediaType, bundleMediaPrefix)
}

// Verified is a verified signature: who signed, and when if a trusted party says so.
type Verified struct {
	Signer Signer
	// Time is when the signature was made, by the most trustworthy source the
	// format has: a Sigstore bundle's verified transparency-log integrated time or
	// RFC 3161 timestamp (the earliest, if several); an OpenPGP signature's creation
	// time (asserted by the signer's key). Zero when the format has none (SSH and
	// raw cosign signatures, key-based bundles without a log entry).
	Time time.Time
	// TimeSource says where Time came from: "rekor", "tsa", "openpgp" or "".
	TimeSource string
}

// parseBundle reads a Sigstore bundle strictly (bounded, media type checked).
// artifactSHA256 is the artifact's SHA-256 when the caller knows it (a legacy
// cosign bundle without a log entry needs it as its digest hint).
func parseBundle(data, artifactSHA256 []byte) (*bundle.Bundle, error) {
	if len(data) > MaxBundleSize {
		return nil, refuse(ErrMalformed, "Sigstore bundle is %d bytes, more than the %d accepted", len(data), MaxBundleSize)
	}
	if isLegacyBundle(data) {
		converted, err := legacyToBundle(data, artifactSHA256)
		if err != nil {
			return nil, err
		}
		data = converted
	} else if !isProtoBundle(data) {
		return nil, refuse(ErrMalformed, "not a Sigstore bundle (no Sigstore bundle mediaType)")
	}
	var b bundle.Bundle
	if err := b.UnmarshalJSON(data); err != nil {
		return nil, refuse(ErrMalformed, "unreadable Sigstore bundle (%s)", libErr(err))
	}
	return &b, nil
}

// verifyBundle verifies a bundle with the pinned material and returns the result
// and who signed. artifact is the policy's artifact option.
func (k *Keys) verifyBundle(b *bundle.Bundle, artifact verify.ArtifactPolicyOption) (*verify.VerificationResult, Signer, error) {
	vc, err := b.VerificationContent()
	if err != nil {
		return nil, Signer{}, refuse(ErrMalformed, "Sigstore bundle without usable verification material (%s)", libErr(err))
	}
	if vc.Certificate() != nil {
		return k.verifyKeylessBundle(b, artifact)
	}
	if vc.PublicKey() != nil {
		return k.verifyKeyBundle(b, artifact)
	}
	return nil, Signer{}, refuse(ErrMalformed, "Sigstore bundle holds neither a certificate nor a public key hint")
}

func (k *Keys) verifyKeylessBundle(b *bundle.Bundle, artifact verify.ArtifactPolicyOption) (*verify.VerificationResult, Signer, error) {
	sc := k.sigstore
	if sc == nil || sc.root == nil {
		return nil, Signer{}, refuse(ErrUnknownKey, "keyless Sigstore bundle, but no Sigstore trusted root is configured")
	}
	if len(sc.identities) == 0 {
		return nil, Signer{}, refuse(ErrUnknownKey, "keyless Sigstore bundle, but no Sigstore identity is pinned (keys.sigstore)")
	}
	v, err := verify.NewVerifier(sc.root, sc.keyless...)
	if err != nil {
		return nil, Signer{}, fmt.Errorf("sigstore verifier: %w", err)
	}
	res, err := v.Verify(b, verify.NewPolicy(artifact, verify.WithCertificateIdentity(sc.identities[0]), moreIdentities(sc.identities[1:])))
	if err != nil {
		return nil, Signer{}, bundleRefusal(err)
	}
	s := res.Signature.Certificate
	identity := "issuer " + s.Extensions.Issuer
	if s.Extensions.SourceRepositoryURI != "" {
		identity += ", " + s.Extensions.SourceRepositoryURI
		if s.Extensions.SourceRepositoryRef != "" {
			identity += "@" + s.Extensions.SourceRepositoryRef
		}
	}
	return res, Signer{Scheme: "sigstore", Fingerprint: cleanIdentity(s.SubjectAlternativeName), Identity: cleanIdentity(identity)}, nil
}

// moreIdentities adds the other pinned identities to a policy (sigstore-go accepts
// the certificate if any one matches).
func moreIdentities(ids verify.CertificateIdentities) verify.PolicyOption {
	return func(p *verify.PolicyConfig) error {
		for _, id := range ids {
			if err := verify.WithCertificateIdentity(id)(p); err != nil {
				return err
			}
		}
		return nil
	}
}

// verifyKeyBundle checks a bundle signed with a cosign key pair against each pinned
// cosign key in turn: the bundle's key hint is not authenticated, so it selects
// nothing. Transparency-log entries are verified when the bundle carries them and a
// trusted root is configured (their integrated time is then the signed time);
// without them the signature has no trusted time.
func (k *Keys) verifyKeyBundle(b *bundle.Bundle, artifact verify.ArtifactPolicyOption) (*verify.VerificationResult, Signer, error) {
	if len(k.cosign) == 0 {
		return nil, Signer{}, refuse(ErrUnknownKey, "Sigstore bundle signed with a key, but no cosign key is pinned")
	}
	var opts []verify.VerifierOption
	var trusted []root.TrustedMaterial
	if b.HasInclusionPromise() || b.HasInclusionProof() {
		if k.sigstore == nil || k.sigstore.root == nil {
			opts = append(opts, verify.WithNoObserverTimestamps())
		} else {
			opts = append(opts, verify.WithTransparencyLog(1), verify.WithIntegratedTimestamps(1))
			trusted = append(trusted, k.sigstore.root)
		}
	} else {
		opts = append(opts, verify.WithNoObserverTimestamps())
	}
	var last error
	for _, key := range k.cosign {
		for _, sv := range key.verifiers {
			material := append(root.TrustedMaterialCollection{pinnedKeyMaterial(sv)}, trusted...)
			v, err := verify.NewVerifier(material, opts...)
			if err != nil {
				return nil, Signer{}, fmt.Errorf("sigstore verifier: %w", err)
			}
			res, err := v.Verify(b, verify.NewPolicy(artifact, verify.WithKey()))
			if err == nil {
				return res, key.signer, nil
			}
			last = err
		}
	}
	if err := bundleRefusal(last); !errors.Is(err, ErrBadSignature) {
		return nil, Signer{}, err
	}
	return nil, Signer{}, refuse(ErrBadSignature, "Sigstore bundle does not verify with any pinned cosign key (other key, or altered content): %s", libErr(last))
}

// pinnedKeyMaterial answers every key lookup with one pinned key, valid at all times
// (a pinned key has no validity window of its own).
func pinnedKeyMaterial(sv signature.Verifier) root.TrustedMaterial {
	key := root.NewExpiringKey(sv, time.Time{}, time.Time{})
	return root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) { return key, nil })
}

// bundleRefusal classifies a sigstore-go verification error. sigstore-go's errors
// are mostly plain strings, so the class is read from the message; anything not
// recognised is a bad signature.
func bundleRefusal(err error) error {
	if err == nil {
		return refuse(ErrBadSignature, "Sigstore bundle does not verify")
	}
	var noID *verify.ErrNoMatchingCertificateIdentity
	msg := libErr(err)
	switch {
	case errors.As(err, &noID):
		return refuse(ErrSigstorePolicy, "certificate identity is not pinned: %s", msg)
	case strings.Contains(msg, "certificate") && (strings.Contains(msg, "expired") || strings.Contains(msg, "not yet valid") || strings.Contains(msg, "valid at")):
		return refuse(ErrKeyExpired, "Sigstore certificate not valid at any verified timestamp: %s", msg)
	case strings.Contains(msg, "threshold not met") || strings.Contains(msg, "timestamp") || strings.Contains(msg, "log entries"):
		return refuse(ErrBadSignature, "Sigstore bundle lacks a verified timestamp or log entry: %s", msg)
	default:
		return refuse(ErrBadSignature, "Sigstore bundle does not verify: %s", msg)
	}
}

// signedTime picks the earliest verified timestamp of a result.
func signedTime(res *verify.VerificationResult) (time.Time, string) {
	var at time.Time
	source := ""
	for _, ts := range res.VerifiedTimestamps {
		if ts.Timestamp.IsZero() {
			continue
		}
		if at.IsZero() || ts.Timestamp.Before(at) {
			at = ts.Timestamp
			source = "rekor"
			if ts.Type == "TimestampAuthority" {
				source = "tsa"
			}
		}
	}
	return at.UTC(), source
}

// VerifyBundle checks a Sigstore bundle that signs message directly (cosign
// sign-blob --bundle: a message signature over the file). A keyless bundle must
// chain to the pinned trusted root and match a pinned identity; a key-based one
// must verify with a pinned cosign key. A DSSE (attestation) bundle is refused
// here: use VerifyAttestation.
func (k *Keys) VerifyBundle(message, bundleJSON []byte) (v Verified, err error) {
	defer recoverParser(&err)
	if k == nil {
		k = &Keys{now: time.Now}
	}
	sum := sha256.Sum256(message)
	b, err := parseBundle(bundleJSON, sum[:])
	if err != nil {
		return Verified{}, err
	}
	sc, err := b.SignatureContent()
	if err != nil {
		return Verified{}, refuse(ErrMalformed, "Sigstore bundle without signature content (%s)", libErr(err))
	}
	if sc.MessageSignatureContent() == nil {
		return Verified{}, refuse(ErrMalformed, "Sigstore bundle is an attestation (DSSE envelope), not a signature over the file; it needs an attestation policy")
	}
	res, signer, err := k.verifyBundle(b, verify.WithArtifact(bytes.NewReader(message)))
	if err != nil {
		return Verified{}, err
	}
	return k.verified(res, signer)
}

// VerifyBundleDigest is VerifyBundle for a file known by its digest (the engine
// hashes an object once, with the algorithm the caller chose): the bundle must
// sign a file with exactly this digest.
func (k *Keys) VerifyBundleDigest(sum checksum.Sum, bundleJSON []byte) (v Verified, err error) {
	defer recoverParser(&err)
	if k == nil {
		k = &Keys{now: time.Now}
	}
	var alg string
	switch sum.Algorithm() {
	case checksum.SHA256:
		alg = "sha256"
	case checksum.SHA512:
		alg = "sha512"
	default:
		return Verified{}, refuse(ErrMalformed, "no digest to verify the Sigstore bundle against")
	}
	var hint []byte
	if d, ok := sum.SHA256(); ok {
		hint = d[:]
	}
	b, err := parseBundle(bundleJSON, hint)
	if err != nil {
		return Verified{}, err
	}
	sc, err := b.SignatureContent()
	if err != nil {
		return Verified{}, refuse(ErrMalformed, "Sigstore bundle without signature content (%s)", libErr(err))
	}
	if sc.MessageSignatureContent() == nil {
		return Verified{}, refuse(ErrMalformed, "Sigstore bundle is an attestation (DSSE envelope), not a signature over the file; it needs an attestation policy")
	}
	res, signer, err := k.verifyBundle(b, verify.WithArtifactDigest(alg, sum.Bytes()))
	if err != nil {
		return Verified{}, err
	}
	return k.verified(res, signer)
}

func (k *Keys) verified(res *verify.VerificationResult, signer Signer) (Verified, error) {
	at, source := signedTime(res)
	if !at.IsZero() && at.After(k.now().Add(maxClockSkew)) {
		return Verified{}, refuse(ErrBadSignature, "Sigstore timestamp %s is in the future", at.Format(time.RFC3339))
	}
	return Verified{Signer: signer, Time: at, TimeSource: source}, nil
}
