package release

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/signing"
)

// A github source with release.attestations: true is vouched for by GitHub artifact
// attestations (actions/attest-build-provenance) instead of a signed checksum file.
//
// Fetching a release looks up the attestations of its assets by the digests the releases
// API lists for them (GET /repos/O/R/attestations/sha256:HEX), and verifies each bundle
// against the pinned keyless identities with the policy "gh attestation verify" applies:
// SLSA provenance v1, the repository, and the source ref (refs/tags/TAG by default). A
// release none of whose assets has such an attestation is not trusted. The verified
// subjects are the release's expected digests, by name; the earliest verified time orders
// releases (and with a ref that names the tag, the tag's version too: the certificate
// signs it). A file the assets do not name (uploaded only to the bucket, say) is looked
// up by its own SHA-256 when it is checked, and must be attested under its name.

const (
	// maxAttestedAssets bounds the attestation lookups of one release.
	maxAttestedAssets = 16
	// maxAttestationMisses bounds the lookups that find nothing before a release is given up
	// as unattested: anyone who can create releases (with assets, which GitHub lists with
	// digests) must not make each one cost a lookup per asset.
	maxAttestationMisses = 3
	// maxAttestationsPerDigest bounds the attestations verified for one digest.
	maxAttestationsPerDigest = 8
	// maxLookupCache bounds the digests one release remembers lookups of.
	maxLookupCache = 1024
	// maxAttestationEvidence bounds the bundles kept as a release's evidence (the floor in
	// the state bucket, whose records are read back with a bound); past it none are kept.
	maxAttestationEvidence = 4 << 20
)

// attestPolicy is what the attestations of a source's releases must meet.
type attestPolicy struct {
	repository string // https://github.com/OWNER/NAME
	ref        string // the source ref, "{tag}" standing for the tag
}

func newAttestPolicy(owner, name, ref string) (*attestPolicy, error) {
	if ref == "" {
		ref = "refs/tags/{tag}"
	}
	if !strings.HasPrefix(ref, "refs/") || hasControl(ref) || strings.ContainsAny(ref, " \\") || strings.Count(ref, "{tag}") > 1 {
		return nil, fmt.Errorf("attestation ref %q: want a git ref such as refs/tags/{tag}", clip(ref))
	}
	return &attestPolicy{repository: "https://github.com/" + owner + "/" + name, ref: ref}, nil
}

// signing is the policy for the release at tag.
func (p *attestPolicy) signing(tag string) signing.AttestationPolicy {
	return signing.AttestationPolicy{PredicateType: signing.SLSAProvenanceV1, SourceRepository: p.repository,
		SourceRef: strings.ReplaceAll(p.ref, "{tag}", tag)}
}

// signsTag reports whether a verified attestation names the release's tag.
func (p *attestPolicy) signsTag() bool { return strings.Contains(p.ref, "{tag}") }

// assetDigest is the SHA-256 the releases API lists for an asset ("sha256:HEX"), if any.
func assetDigest(a githubAsset) (checksum.Digest, bool) {
	hexDigest, ok := strings.CutPrefix(a.Digest, "sha256:")
	if !ok {
		return checksum.Digest{}, false
	}
	d, err := checksum.ParseDigest(hexDigest)
	return d, err == nil
}

// candidate names a release's content for the listing by its assets' digests; a release
// without any is refused from the listing alone.
func (p *attestPolicy) candidate(assets []githubAsset, where string) (string, error) {
	var parts []string
	for _, a := range assets {
		if d, ok := assetDigest(a); ok {
			parts = append(parts, a.Name+"="+d.String())
		}
	}
	if len(parts) == 0 {
		return "", fmt.Errorf("%w: %s: no asset lists a digest to look its attestation up by", ErrUnsigned, where)
	}
	slices.Sort(parts)
	sum := sha256.Sum256([]byte(strings.Join(parts, "\n")))
	return "attested:" + hex.EncodeToString(sum[:8]), nil
}

// attestationsAnswer is the part of the attestations API's answer that is used.
type attestationsAnswer struct {
	Attestations []struct {
		Bundle    json.RawMessage `json:"bundle"`
		BundleURL string          `json:"bundle_url"`
	} `json:"attestations"`
}

// attestationBundles looks up the attestations of digest d: the bundles, bounded. None is
// ErrNotFound.
func (s *GitHubSource) attestationBundles(ctx context.Context, d checksum.Digest) ([][]byte, error) {
	u, err := s.endpoint("/attestations/sha256:" + d.String() + "?per_page=" + fmt.Sprint(maxAttestationsPerDigest))
	if err != nil {
		return nil, err
	}
	var ans attestationsAnswer
	what := "attestations of sha256:" + d.String()[:12] + "… in github " + s.repo
	if _, err := s.getJSON(ctx, u, what, &ans); err != nil {
		return nil, err
	}
	if len(ans.Attestations) == 0 {
		return nil, fmt.Errorf("%w: %s: none", ErrNotFound, what)
	}
	var out [][]byte
	for i, a := range ans.Attestations {
		if i == maxAttestationsPerDigest {
			break
		}
		raw := bytes.TrimSpace(a.Bundle)
		if len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
			if len(raw) > signing.MaxBundleSize {
				return nil, fmt.Errorf("%w: %s: a bundle of %d bytes, more than the %d accepted", ErrInvalid, what, len(raw), signing.MaxBundleSize)
			}
			out = append(out, raw)
			continue
		}
		if a.BundleURL == "" {
			return nil, fmt.Errorf("%w: %s: an attestation with neither bundle nor bundle_url", ErrInvalid, what)
		}
		b, err := s.fetchBundle(ctx, a.BundleURL, what)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// fetchBundle reads a bundle from its bundle_url: a pre-signed URL on a storage host (no
// GitHub token goes there), serving the bundle snappy-compressed or as JSON.
func (s *GitHubSource) fetchBundle(ctx context.Context, raw, what string) ([]byte, error) {
	u, err := url.Parse(raw)
	if err != nil || hasControl(raw) {
		return nil, fmt.Errorf("%w: %s: bundle_url does not parse", ErrInvalid, what)
	}
	if err := checkBase(u); err != nil {
		return nil, fmt.Errorf("%w: %s: bundle_url %s %v", ErrInvalid, what, show(u), err)
	}
	data, err := s.get.document(ctx, u, "attestation bundle", signing.MaxBundleSize, "")
	if err != nil {
		return nil, err
	}
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		return data, nil
	}
	out, err := unsnappy(data, signing.MaxBundleSize)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: bundle at %s: %w", ErrInvalid, what, show(u), err)
	}
	return out, nil
}

// attestation is a verified attestation and the asset whose digest found it ("" when it
// was found by an object's own digest).
type attestation struct {
	signing.Attestation
	bundle []byte
	via    string
}

// verifyBundles verifies the bundles of one lookup against the policy for tag.
func (s *GitHubSource) verifyBundles(bundles [][]byte, tag, via string) ([]attestation, error) {
	var out []attestation
	var first error
	for _, b := range bundles {
		a, err := s.keys.VerifyAttestation(b, s.attest.signing(tag))
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		out = append(out, attestation{Attestation: a, bundle: b, via: via})
	}
	if len(out) == 0 {
		return nil, first
	}
	return out, nil
}

// attestedRelease verifies the attestations of a release's assets.
func (s *GitHubSource) attestedRelease(ctx context.Context, tag string, assets []githubAsset, ids map[string]int64, where string) (*Release, error) {
	list := slices.Clone(assets)
	slices.SortFunc(list, func(a, b githubAsset) int { return strings.Compare(a.Name, b.Name) })
	var found []attestation
	var refusal error
	lookups, verified := 0, 0
	covered := map[checksum.Digest]bool{}
	for _, a := range list {
		d, ok := assetDigest(a)
		if !ok || covered[d] {
			continue
		}
		if lookups == maxAttestedAssets || len(found) == 0 && lookups-verified == maxAttestationMisses {
			break
		}
		lookups++
		bundles, err := s.attestationBundles(ctx, d)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		as, err := s.verifyBundles(bundles, tag, a.Name)
		if err != nil {
			if refusal == nil {
				refusal = err
			}
			continue
		}
		verified++
		for _, at := range as {
			for _, sub := range at.Subjects {
				if sd, ok := sub.Sum.SHA256(); ok {
					covered[sd] = true
				}
			}
		}
		found = append(found, as...)
	}
	ref := s.attest.signing(tag).SourceRef
	if len(found) == 0 {
		if refusal != nil {
			return nil, fmt.Errorf("%s: attestation for %s: %w", where, clip(ref), refusal)
		}
		return nil, fmt.Errorf("%w: %s: no asset has an attestation (looked up %d digests)", ErrUnsigned, where, lookups)
	}
	ev := &Evidence{Tag: tag, Assets: ids}
	size := 0
	for _, a := range found {
		ev.Attestations = append(ev.Attestations, a.bundle)
		ev.AttestedVia = append(ev.AttestedVia, a.via)
		size += len(a.bundle)
	}
	rel, err := s.attestedFrom(ev, found, where)
	if err == nil && size > maxAttestationEvidence {
		rel.Evidence = nil // the floor is then kept in memory only
	}
	return rel, err
}

// reverifyAttested verifies kept attestations again, offline.
func (s *GitHubSource) reverifyAttested(ev *Evidence) (*Release, error) {
	where := "github " + s.repo + " release " + clip(ev.Tag) + ": kept attestations"
	if err := checkTag(ev.Tag); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if len(ev.Attestations) == 0 || len(ev.AttestedVia) != len(ev.Attestations) {
		return nil, fmt.Errorf("%w: %s: none kept", ErrInvalid, where)
	}
	var found []attestation
	for i, b := range ev.Attestations {
		as, err := s.verifyBundles([][]byte{b}, ev.Tag, ev.AttestedVia[i])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		found = append(found, as...)
	}
	return s.attestedFrom(ev, found, where)
}

// attestedFrom builds the release that verified attestations vouch for. Two attestations
// that give one subject name different digests are refused: which is meant cannot be told.
func (s *GitHubSource) attestedFrom(ev *Evidence, found []attestation, where string) (*Release, error) {
	subjects := map[string]checksum.Sum{}
	aliases := map[string]string{}
	var vs []signing.Verified
	for _, a := range found {
		vs = append(vs, a.Verified)
		for _, sub := range a.Subjects {
			if old, ok := subjects[sub.Name]; ok && old != sub.Sum {
				if old.Algorithm() == sub.Sum.Algorithm() {
					return nil, fmt.Errorf("%w: %s: two attestations give %q different %s digests", ErrInvalid, where, clip(sub.Name), sub.Sum.Algorithm().Name())
				}
				if old.Algorithm() > sub.Sum.Algorithm() {
					continue
				}
			}
			subjects[sub.Name] = sub.Sum
			if a.via != "" && a.via != sub.Name {
				aliases[sub.Name] = a.via
			}
		}
	}
	signers := distinctSigners(vs)
	rel := &Release{
		Source:        "github " + s.repo,
		Tag:           ev.Tag,
		Signer:        signers[0],
		Signers:       signers,
		Time:          signedAt(vs),
		ChecksumsName: "attestations",
		Evidence:      ev,
	}
	if s.attest.signsTag() {
		rel.Version = canonicalSemver(ev.Tag)
	}
	assets := make(map[string]githubAsset, len(ev.Assets))
	for n, id := range ev.Assets {
		assets[n] = githubAsset{ID: id, Name: n}
	}
	rel.files = &githubFiles{src: s, where: "github " + s.repo + " release " + clip(ev.Tag), assets: assets, aliases: aliases}
	rel.attested = &attested{src: s, tag: ev.Tag, subjects: subjects, lookups: &boundedCache[lookupResult]{max: maxLookupCache}}
	return rel, nil
}

func distinctSigners(vs []signing.Verified) []signing.Signer {
	var out []signing.Signer
	seen := map[string]bool{}
	for _, v := range vs {
		if !seen[v.Signer.ID()] {
			seen[v.Signer.ID()] = true
			out = append(out, v.Signer)
		}
	}
	return out
}

// attested is how a release vouched for by attestations vouches for a file.
type attested struct {
	src      *GitHubSource
	tag      string
	subjects map[string]checksum.Sum
	lookups  *boundedCache[lookupResult]
}

// lookupResult is a lookup by a digest: what verified, or why nothing did.
type lookupResult struct {
	found []attestation
	why   error
}

// expect: an attested subject's digest, else a lookup by the bytes' own digest.
func (a *attested) expect(r *Release, name string) (Expected, error) {
	x := Expected{Name: name, Entry: checksum.Entry{Name: name}, How: "attestation"}
	if sum, ok := a.subjects[name]; ok {
		x.Entry.Sum = sum
		return x, nil
	}
	x.attest = &attestLook{a: a}
	return x, nil
}

// attestLook looks the bytes up by their SHA-256 when they are checked.
type attestLook struct{ a *attested }

// judge looks out.SHA256 up and accepts the bytes when a verified attestation names them
// under name, with their digest.
func (l *attestLook) judge(ctx context.Context, name string, out Checked) (Checked, error) {
	a := l.a
	key := out.SHA256.String()
	res, ok := a.lookups.get(key)
	if !ok {
		bundles, err := a.src.attestationBundles(ctx, out.SHA256)
		switch {
		case errors.Is(err, ErrNotFound):
			res.why = errNoVouch
		case err != nil:
			return Checked{}, a.src.get.redact(err)
		default:
			res.found, res.why = a.src.verifyBundles(bundles, a.tag, "")
			if res.why == nil && len(res.found) == 0 {
				res.why = errNoVouch
			}
		}
		a.lookups.put(key, res)
	}
	out.Why = res.why
	for _, at := range res.found {
		sub, ok := at.Subject(name)
		if !ok {
			continue
		}
		mine := out.SHA256.Sum()
		if sub.Sum.Algorithm() == checksum.SHA512 {
			mine = out.sha512
		}
		if sub.Sum == mine {
			out.OK, out.Want, out.Sum, out.Vouched, out.Why = true, sub.Sum, mine, at.Verified, nil
			return out, nil
		}
	}
	if out.Why == nil {
		out.Why = fmt.Errorf("%w: attestations name these bytes, but not as %q", signing.ErrSigstorePolicy, clip(name))
	}
	return out, nil
}
