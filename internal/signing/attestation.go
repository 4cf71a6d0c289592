package signing

import (
	"fmt"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/tamperguard/tamperguard/internal/checksum"
)

// SLSAProvenanceV1 is the predicate type of GitHub's build provenance
// attestations (actions/attest-build-provenance), the one "gh attestation verify"
// requires by default.
const SLSAProvenanceV1 = "https://slsa.dev/provenance/v1"

// maxSubjects bounds the subjects read from one attestation.
const maxSubjects = 4096

// AttestationPolicy is what "gh attestation verify" checks beyond the signer's
// identity (which the pinned keys.sigstore identities decide): the predicate type,
// the source repository and the source ref the certificate names.
type AttestationPolicy struct {
	// PredicateType is the required predicate type; "" means SLSAProvenanceV1.
	PredicateType string
	// SourceRepository is the exact repository URI the certificate must name
	// (extension 1.3.6.1.4.1.57264.1.12), e.g. "https://github.com/example/uploader".
	// Required.
	SourceRepository string
	// SourceRef is the exact git ref the certificate must name (extension
	// 1.3.6.1.4.1.57264.1.14); for a release, ReleaseRef(tag). Required.
	SourceRef string
}

// ReleaseRef is the source ref of a build made from a release tag: "refs/tags/" + tag.
func ReleaseRef(tag string) string { return "refs/tags/" + tag }

// Subject is one artifact an attestation vouches for, with its strongest digest.
type Subject struct {
	Name string
	Sum  checksum.Sum
}

// Attestation is a verified in-toto attestation.
type Attestation struct {
	Verified
	PredicateType string
	Subjects      []Subject
}

// Subject returns the attested subject named name.
func (a Attestation) Subject(name string) (Subject, bool) {
	for _, s := range a.Subjects {
		if s.Name == name {
			return s, true
		}
	}
	return Subject{}, false
}

// Covers reports whether some subject has exactly this digest (a caller hashes the
// object with the subject's algorithm first).
func (a Attestation) Covers(sum checksum.Sum) bool {
	for _, s := range a.Subjects {
		if !sum.IsZero() && s.Sum == sum {
			return true
		}
	}
	return false
}

// VerifyAttestation checks a Sigstore bundle holding a DSSE envelope with an
// in-toto statement (GitHub artifact attestations): the signature chains to the
// pinned trusted root and the certificate matches a pinned keyless identity, then
// the policy "gh attestation verify" applies: predicate type, source repository
// and source ref. The subjects are returned with their strongest digest (SHA-512
// over SHA-256; other algorithms are ignored; a subject with none of these is
// left out): the expected digest of a published file is its subject's.
func (k *Keys) VerifyAttestation(bundleJSON []byte, p AttestationPolicy) (a Attestation, err error) {
	defer recoverParser(&err)
	if p.SourceRepository == "" || p.SourceRef == "" {
		return Attestation{}, fmt.Errorf("attestation policy: source repository and source ref are required")
	}
	want := p.PredicateType
	if want == "" {
		want = SLSAProvenanceV1
	}
	if k == nil {
		k = &Keys{now: time.Now}
	}
	b, err := parseBundle(bundleJSON, nil)
	if err != nil {
		return Attestation{}, err
	}
	sc, err := b.SignatureContent()
	if err != nil {
		return Attestation{}, refuse(ErrMalformed, "Sigstore bundle without signature content (%s)", libErr(err))
	}
	if sc.EnvelopeContent() == nil {
		return Attestation{}, refuse(ErrMalformed, "Sigstore bundle is a signature over a file, not an attestation (no DSSE envelope)")
	}
	// The artifact is not given here: the DSSE signature covers the statement, whose
	// subjects are the expected digests the caller compares.
	res, signer, err := k.verifyBundle(b, verify.WithoutArtifactUnsafe())
	if err != nil {
		return Attestation{}, err
	}
	if res.Signature == nil || res.Signature.Certificate == nil {
		return Attestation{}, refuse(ErrSigstorePolicy, "attestation signed with a key: no certificate names its source repository and ref")
	}
	ext := res.Signature.Certificate.Extensions
	if ext.SourceRepositoryURI != p.SourceRepository {
		return Attestation{}, refuse(ErrSigstorePolicy, "attestation built from repository %s, want %s",
			quote(ext.SourceRepositoryURI, 120), quote(p.SourceRepository, 120))
	}
	if ext.SourceRepositoryRef != p.SourceRef {
		return Attestation{}, refuse(ErrSigstorePolicy, "attestation built from ref %s, want %s",
			quote(ext.SourceRepositoryRef, 120), quote(p.SourceRef, 120))
	}
	st := res.Statement
	if st == nil {
		return Attestation{}, refuse(ErrMalformed, "attestation without an in-toto statement")
	}
	if st.PredicateType != want {
		return Attestation{}, refuse(ErrSigstorePolicy, "attestation predicate type %s, want %s", quote(st.PredicateType, 120), quote(want, 120))
	}
	if len(st.Subject) > maxSubjects {
		return Attestation{}, refuse(ErrMalformed, "attestation lists %d subjects, more than the %d accepted", len(st.Subject), maxSubjects)
	}
	v, err := k.verified(res, signer)
	if err != nil {
		return Attestation{}, err
	}
	a = Attestation{Verified: v, PredicateType: st.PredicateType}
	for _, s := range st.Subject {
		sub := Subject{Name: s.GetName()}
		for alg, hexDigest := range s.GetDigest() {
			var algo checksum.Algorithm
			switch strings.ToLower(alg) {
			case "sha256":
				algo = checksum.SHA256
			case "sha512":
				algo = checksum.SHA512
			default:
				continue
			}
			sum, err := checksum.ParseSum(algo, hexDigest)
			if err != nil {
				return Attestation{}, refuse(ErrMalformed, "attestation subject %s: %s digest: %s", quote(sub.Name, 80), alg, libErr(err))
			}
			if sum.Algorithm() > sub.Sum.Algorithm() {
				sub.Sum = sum
			}
		}
		if !sub.Sum.IsZero() {
			a.Subjects = append(a.Subjects, sub)
		}
	}
	if len(a.Subjects) == 0 {
		return Attestation{}, refuse(ErrMalformed, "attestation has no subject with a SHA-256 or SHA-512 digest")
	}
	return a, nil
}
