package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/tamperguard/tamperguard/internal/signing"
)

// The release formats projects sign with: keyless Sigstore identities and the trusted root
// they chain to, k-of-n, a signature over each file, GitHub artifact attestations.

// SigstoreSpec configures Sigstore verification for a rule.
type SigstoreSpec struct {
	// TrustedRoot is the trusted_root.json that keyless bundles and attestations chain to
	// (Fulcio CAs, Rekor and CT logs, timestamp authorities): a path relative to the
	// configuration, or the JSON itself. It is pinned like a key: refresh it by redeploying.
	TrustedRoot string `yaml:"trusted_root"`
}

// SigstoreIdentitySpec is one keyless signer: the OIDC issuer and the certificate's subject
// (for GitHub Actions the workflow, "https://github.com/O/R/.github/workflows/F@REF"), each
// exact or as a regular expression anchored with ^.
type SigstoreIdentitySpec struct {
	Issuer         string `yaml:"issuer"`
	IssuerRegexp   string `yaml:"issuer_regexp"`
	Identity       string `yaml:"identity"`
	IdentityRegexp string `yaml:"identity_regexp"`
	// SourceRepository is the repository the certificate must name, exactly
	// ("https://github.com/O/R").
	SourceRepository string `yaml:"source_repository"`
}

// Values of release.signed.
const (
	signedChecksums = "checksums"
	signedFile      = "file"
)

// maxTrustedRoot bounds a trusted root file.
const maxTrustedRoot = 4 << 20

// sigstoreOptions reads the rule's trusted root and keyless identities.
func (r *Rule) sigstoreOptions(root *yaml.Node, i int, dir string) (signing.SigstoreOptions, error) {
	var o signing.SigstoreOptions
	for _, id := range r.Keys.Sigstore {
		o.Identities = append(o.Identities, signing.SigstoreIdentity{Issuer: id.Issuer, IssuerRegexp: id.IssuerRegexp,
			Identity: id.Identity, IdentityRegexp: id.IdentityRegexp, SourceRepository: id.SourceRepository})
	}
	tr := strings.TrimSpace(r.Sigstore.TrustedRoot)
	where := fmt.Sprintf("line %d: rules[%d].sigstore.trusted_root", lineOf(root, "rules", i, "sigstore", "trusted_root"), i)
	switch {
	case tr == "" && len(o.Identities) > 0:
		return o, fmt.Errorf("line %d: rules[%d].keys.sigstore: keyless identities need the trusted root their certificates chain to: set sigstore.trusted_root (a trusted_root.json; see the README on refreshing it)",
			lineOf(root, "rules", i, "keys", "sigstore"), i)
	case tr == "":
		return o, nil
	case strings.HasPrefix(tr, "{"):
		o.TrustedRoot = []byte(tr)
	default:
		p := tr
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		f, err := os.Open(p)
		if err != nil {
			return o, fmt.Errorf("%s: cannot read the trusted root: %w", where, err)
		}
		data, err := readLimited(f, maxTrustedRoot)
		f.Close()
		if err != nil {
			return o, fmt.Errorf("%s: %s: %w", where, p, err)
		}
		o.TrustedRoot = data
	}
	if len(bytes.TrimSpace(o.TrustedRoot)) == 0 {
		return o, fmt.Errorf("%s: empty", where)
	}
	return o, nil
}

// sigstoreKeyError points at the identity or the trusted root a signing.KeyError is about.
func (r *Rule) sigstoreKeyError(root *yaml.Node, i int, ke *signing.KeyError) error {
	if ke.Index >= 0 {
		return fmt.Errorf("line %d: rules[%d].keys.sigstore[%d]: %w", lineOf(root, "rules", i, "keys", "sigstore", ke.Index), i, ke.Index, ke.Err)
	}
	return fmt.Errorf("line %d: rules[%d].sigstore.trusted_root: %w", lineOf(root, "rules", i, "sigstore", "trusted_root"), i, ke.Err)
}

// checkThreshold: k-of-n needs at least k pinned keys (and keyless identities) to count.
func (r *Rule) checkThreshold(root *yaml.Node, i int, keys *signing.Keys) error {
	k := r.Keys.Threshold
	where := fmt.Sprintf("line %d: rules[%d].keys.threshold", lineOf(root, "rules", i, "keys", "threshold"), i)
	pinned := len(keys.Signers()) + len(r.Keys.Sigstore)
	switch {
	case k < 0:
		return fmt.Errorf("%s: %d is not a number of keys", where, k)
	case k > pinned:
		return fmt.Errorf("%s: %d distinct keys must sign, but the rule pins %d (keys and keyless identities): no release could ever verify", where, k, pinned)
	case k > 1 && r.Release.Git != "":
		return fmt.Errorf("%s: a git tag carries one signature; k-of-n needs a url or github source with a signature per signer", where)
	}
	return nil
}

// checkFormats checks release.signed, release.attestations and their companions.
func (r *Rule) checkFormats(root *yaml.Node, i int) error {
	rs := &r.Release
	at := func(field string) string {
		return fmt.Sprintf("line %d: rules[%d].release.%s", lineOf(root, "rules", i, "release", field), i, field)
	}
	switch rs.Signed {
	case "", signedChecksums:
		rs.Signed = signedChecksums
	case signedFile:
		if rs.URL == "" {
			return fmt.Errorf("%s: file (a signature over each file) needs a url source: url names the released files with {name}, signature their signatures", at("signed"))
		}
		if rs.Checksums != "" {
			return fmt.Errorf("%s: file: there is no checksum file, so checksums does not apply", at("signed"))
		}
	default:
		return fmt.Errorf("%s: %q is not one of checksums, file", at("signed"), rs.Signed)
	}
	if rs.AttestationRef != "" && !rs.Attestations {
		return fmt.Errorf("%s: set, but attestations is not", at("attestation_ref"))
	}
	if !rs.Attestations {
		return nil
	}
	switch {
	case rs.GitHub == "":
		return fmt.Errorf("%s: GitHub artifact attestations need a github source", at("attestations"))
	case rs.Checksums != "" || rs.Signature != "" || len(rs.Signatures) > 0:
		return fmt.Errorf("%s: the release is vouched for by attestations, so checksums, signature and signatures do not apply", at("attestations"))
	case len(r.Keys.Sigstore) == 0:
		return fmt.Errorf("%s: attestations are signed keyless: pin the workflow that makes them in keys.sigstore", at("attestations"))
	case r.Keys.Threshold > 1:
		return fmt.Errorf("%s: an attestation carries one signer; keys.threshold above 1 cannot be met", at("attestations"))
	}
	return nil
}

// formatWarnings names what a rule of these formats cannot protect against.
func (r *Rule) formatWarnings(root *yaml.Node, i int) []string {
	rs := &r.Release
	where := fmt.Sprintf("line %d: rules[%d].release", lineOf(root, "rules", i, "release"), i)
	var out []string
	if rs.Signed == signedFile && !strings.Contains(rs.URL, tagPlaceholder) {
		out = append(out, fmt.Sprintf("%s: signed: file has no release-wide signed time or version, so an older file put back at %s together with its older valid signature passes; put {tag} in the url (and signature) so that each release has its own files",
			where, redactedURL(rs.URL)))
	}
	if rs.Attestations && rs.AttestationRef != "" && !strings.Contains(rs.AttestationRef, tagPlaceholder) {
		out = append(out, fmt.Sprintf("%s.attestation_ref: %q names no {tag}, so an attestation of any build from it vouches for every release, an older build's too (gh attestation verify --source-ref refs/tags/TAG is the default for a reason)",
			where, rs.AttestationRef))
	}
	return out
}
