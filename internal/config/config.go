// Package config reads tamperguard's YAML configuration: which objects to watch, which
// signed release vouches for them, and which keys may sign it. It is read at the edges
// (the CLI, the Cloud Function) and builds the policy (internal/policy) that everything
// past it enforces: the engine never sees YAML.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"gopkg.in/yaml.v3"

	"github.com/tamperguard/tamperguard/internal/gsref"
	"github.com/tamperguard/tamperguard/internal/policy"
	"github.com/tamperguard/tamperguard/internal/release"
	"github.com/tamperguard/tamperguard/internal/signing"
)

// Environment variables that carry the configuration.
const (
	EnvConfig     = "TAMPERGUARD_CONFIG"      // the YAML itself (how the Cloud Function gets it)
	EnvConfigFile = "TAMPERGUARD_CONFIG_FILE" // a path to it
	DefaultFile   = "tamperguard.yaml"
)

// tagPlaceholder may stand in an object pattern, a tag and an entry for the release tag.
const tagPlaceholder = policy.TagPlaceholder

// maxConfigSize bounds the configuration read (it holds keys, not data).
const maxConfigSize = 1 << 20

// Config is a loaded, validated configuration: the YAML document, and the policy built
// from it.
type Config struct {
	Rules []*Rule `yaml:"rules"`
	// ReleaseTTL is how long a resolved "latest" release is cached (default 60s).
	ReleaseTTL Duration `yaml:"release_ttl"`
	// State is where incidents, evidence and rollback marks are kept (optional).
	State State `yaml:"state"`
	// Posture says which bucket's guard the posture checks watch (optional; posture.go).
	Posture *PostureSpec `yaml:"posture"`

	// Origin names where the configuration came from, for messages.
	Origin string `yaml:"-"`
	// Warnings are weaknesses of a valid configuration that an operator must hear about
	// (e.g. a rule whose rollback cannot be detected); the commands print them at start.
	Warnings []string `yaml:"-"`
	// Policy is what the configuration says to enforce, for the engine.
	Policy *policy.Policy `yaml:"-"`
}

// Rule says which objects of a bucket are vouched for by which signed release.
type Rule struct {
	Bucket     string      `yaml:"bucket"`
	Objects    []string    `yaml:"objects"`
	Release    ReleaseSpec `yaml:"release"`
	Keys       KeySpec     `yaml:"keys"`
	OnMismatch string      `yaml:"on_mismatch"`
	// Fallback is what happens when a tampered object has no good source to restore from:
	// quarantine (delete it) or alert (leave it). Default quarantine: serving no script is
	// better than serving an attacker's.
	Fallback string `yaml:"fallback"`
	// CacheControl is set on restored objects (default "no-cache") so edge caches drop the
	// bad bytes quickly.
	CacheControl string `yaml:"cache_control"`
	// Metadata is the protected metadata the objects must carry; fields left empty are
	// taken from the last good generation.
	Metadata MetadataSpec `yaml:"metadata"`
	// Sigstore configures Sigstore verification for the rule's keys (formats.go).
	Sigstore SigstoreSpec `yaml:"sigstore"`

	// Line is the rule's line in the configuration, for messages.
	Line int `yaml:"-"`

	patterns []policy.Pattern
	keys     *signing.Keys
	source   release.Source
}

// ReleaseSpec says where the signed release is. Exactly one of Git, URL and GitHub is set.
type ReleaseSpec struct {
	Git       string `yaml:"git"`        // repository with signed annotated tags
	URL       string `yaml:"url"`        // checksum file URL template ("{tag}")
	Signature string `yaml:"signature"`  // detached signature URL template / asset name
	Files     string `yaml:"files"`      // URL template of released copies ("{tag}", "{name}")
	GitHub    string `yaml:"github"`     // owner/name, release assets
	GitHubAPI string `yaml:"github_api"` // API base for GitHub Enterprise or tests
	Tag       string `yaml:"tag"`        // "latest" | exact tag | "{tag}"
	Checksums string `yaml:"checksums"`  // checksum file in the tree / asset name
	Entry     string `yaml:"entry"`      // name in the checksum file; default the object's base name
	// Tags restricts the tags that may be "latest" (and that an object name may pick): a
	// glob ("v*", "curl-*") or "regexp:" and an expression matching the whole tag.
	Tags string `yaml:"tags"`
	// Prereleases lets pre-releases be "latest" too (semver pre-releases and tags with an
	// rc, alpha, beta, pre, dev or nightly component, and GitHub releases marked so).
	Prereleases bool `yaml:"prereleases"`
	// GitHubTokenEnv names the environment variable holding the GitHub token of a github
	// source (default GITHUB_TOKEN, when set). It is sent only to the GitHub API host.
	GitHubTokenEnv string `yaml:"github_token_env"`
	// Signatures are more signature URL templates / asset names besides Signature (k-of-n:
	// each signer publishes one); all of them are read.
	Signatures []string `yaml:"signatures"`
	// Signed is what the signatures cover: "checksums" (a checksum file; the default) or
	// "file" (a url source whose url names each released file, {name}, with a detached
	// signature over the file itself).
	Signed string `yaml:"signed"`
	// Attestations (github only) vouches for the release's files with GitHub artifact
	// attestations (SLSA provenance by a keys.sigstore identity) instead of a checksum file.
	Attestations bool `yaml:"attestations"`
	// AttestationRef is the source ref the attestations must have been built from; default
	// refs/tags/{tag}. A ref without {tag} (a branch) lets any build from it vouch.
	AttestationRef string `yaml:"attestation_ref"`
}

// EnvGitHubToken is read for a github source's token when the rule names no variable.
const EnvGitHubToken = "GITHUB_TOKEN"

// State names the bucket where tamperguard keeps its own records.
type State struct {
	Bucket string `yaml:"bucket"`
	// Lease is how long a claim on an incident holds without renewal (default 30s): a
	// crashed owner's incident is taken over by the first redelivery after it.
	Lease Duration `yaml:"lease"`
}

// MetadataSpec is the protected metadata of the rule's objects.
type MetadataSpec struct {
	ContentType        string `yaml:"content_type"`
	ContentEncoding    string `yaml:"content_encoding"`
	CacheControl       string `yaml:"cache_control"`
	ContentDisposition string `yaml:"content_disposition"`
}

// KeySpec lists the pinned public keys: file paths (relative to the configuration file) or
// the keys themselves. An ssh item is one or more lines, each a plain public key, an
// authorized_keys line or an allowed_signers line (PRINCIPALS [OPTIONS] KEY, with
// cert-authority, namespaces, valid-after, valid-before as ssh-keygen(1) defines them);
// a file may hold many lines and '#' comments.
type KeySpec struct {
	OpenPGP []string `yaml:"openpgp"`
	SSH     []string `yaml:"ssh"`
	Cosign  []string `yaml:"cosign"`
	// Sigstore are the keyless signers trusted (Sigstore bundles and attestations whose
	// Fulcio certificate names them); they need the rule's sigstore.trusted_root.
	Sigstore []SigstoreIdentitySpec `yaml:"sigstore"`
	// Threshold is how many distinct pinned keys (or keyless identities) must have signed:
	// k-of-n, default 1.
	Threshold int `yaml:"threshold"`

	// OpenPGPAllowSHA1SelfSignaturesUnsafe accepts OpenPGP keys whose self-signatures
	// use SHA-1 after the standard policy's cut-off (2023-02-01). Unsafe: SHA-1 is
	// broken; refresh the key instead. Every use is logged. SHA-1 data signatures stay
	// refused.
	OpenPGPAllowSHA1SelfSignaturesUnsafe bool `yaml:"openpgp_allow_sha1_self_signatures_unsafe"`
}

// Duration is a time.Duration written as "60s", "5m".
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration like \"60s\" or \"5m\"", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Source is where the configuration text comes from.
type Source struct {
	Name string // file path, or the environment variable's name
	Data []byte
	Dir  string // relative key paths resolve here
	// Getenv reads the variables a rule names (a GitHub token); nil reads none.
	Getenv func(string) string
}

// Locate finds the configuration: an explicit --config file wins, then TAMPERGUARD_CONFIG
// (YAML text), then TAMPERGUARD_CONFIG_FILE, then tamperguard.yaml in the working directory.
// flagFile is "" when --config was not given.
func Locate(flagFile string, getenv func(string) string) (Source, error) {
	inline, file := getenv(EnvConfig), getenv(EnvConfigFile)
	switch {
	case flagFile != "":
		return readSource(flagFile)
	case inline != "" && file != "":
		return Source{}, fmt.Errorf("both %s and %s are set: set one", EnvConfig, EnvConfigFile)
	case inline != "":
		if len(inline) > maxConfigSize {
			return Source{}, fmt.Errorf("%s is %d bytes (limit %d)", EnvConfig, len(inline), maxConfigSize)
		}
		wd, err := os.Getwd()
		if err != nil {
			return Source{}, err
		}
		return Source{Name: "$" + EnvConfig, Data: []byte(inline), Dir: wd}, nil
	case file != "":
		return readSource(file)
	default:
		src, err := readSource(DefaultFile)
		if errors.Is(err, os.ErrNotExist) {
			return Source{}, fmt.Errorf("no configuration: %s not found; pass --config FILE or set %s or %s", DefaultFile, EnvConfig, EnvConfigFile)
		}
		return src, err
	}
}

func readSource(name string) (Source, error) {
	f, err := os.Open(name)
	if err != nil {
		return Source{}, fmt.Errorf("reading configuration: %w", err)
	}
	defer f.Close()
	data, err := readLimited(f, maxConfigSize)
	if err != nil {
		return Source{}, fmt.Errorf("reading configuration %s: %w", name, err)
	}
	abs, err := filepath.Abs(name)
	if err != nil {
		return Source{}, err
	}
	return Source{Name: name, Data: data, Dir: filepath.Dir(abs)}, nil
}

// Load locates and parses the configuration.
func Load(flagFile string, getenv func(string) string) (*Config, error) {
	src, err := Locate(flagFile, getenv)
	if err != nil {
		return nil, err
	}
	src.Getenv = getenv
	return Parse(src)
}

// Parse decodes and validates a configuration, loading every key it names. Every error
// names the source, the line and the field.
func Parse(src Source) (*Config, error) {
	cfg, err := parse(src)
	if err != nil {
		return nil, fmt.Errorf("configuration %s: %w", src.Name, err)
	}
	return cfg, nil
}

func parse(src Source) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src.Data))
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("line %d: more than one YAML document", extra.Line)
	}
	if err := checkFields(&root, reflect.TypeOf(Config{}), ""); err != nil {
		return nil, err
	}
	cfg := &Config{Origin: src.Name}
	if err := root.Decode(cfg); err != nil {
		return nil, err
	}
	if len(cfg.Rules) == 0 {
		return nil, fmt.Errorf("no rules: the configuration must list at least one rule under \"rules:\"")
	}
	if b := cfg.State.Bucket; b != "" {
		if err := gsref.CheckBucket(b); err != nil {
			return nil, fmt.Errorf("line %d: state.bucket: %q is not a Cloud Storage bucket name: %s", lineOf(&root, "state", "bucket"), b, problem(err))
		}
	}
	if l := time.Duration(cfg.State.Lease); l != 0 && (l < 3*time.Second || l > 10*time.Minute) {
		return nil, fmt.Errorf("line %d: state.lease: %s is outside 3s to 10m (a lease is renewed every third of it; a crashed owner's incidents wait that long)", lineOf(&root, "state", "lease"), l)
	}
	for i, r := range cfg.Rules {
		if r == nil {
			return nil, fmt.Errorf("line %d: rules[%d] is empty", lineOf(&root, "rules", i), i)
		}
		r.Line = lineOf(&root, "rules", i)
		if err := r.validate(&root, i, src.Dir, src.Getenv); err != nil {
			return nil, err
		}
		cfg.Warnings = append(cfg.Warnings, r.warnings(&root, i)...)
		if r.Bucket == cfg.State.Bucket {
			return nil, fmt.Errorf("line %d: rules[%d].bucket: %q is also the state bucket; keep tamperguard's records apart from what it watches", lineOf(&root, "rules", i, "bucket"), i, r.Bucket)
		}
	}
	if err := cfg.validatePosture(&root); err != nil {
		return nil, err
	}
	cfg.Policy = cfg.policy()
	cfg.Policy.Posture = cfg.posturePolicy()
	return cfg, nil
}

// policy is what a validated configuration says to enforce.
func (c *Config) policy() *policy.Policy {
	p := &policy.Policy{StateBucket: c.State.Bucket, Lease: time.Duration(c.State.Lease),
		ReleaseTTL: time.Duration(c.ReleaseTTL), Origin: c.Origin}
	for _, r := range c.Rules {
		md := r.Metadata
		p.Rules = append(p.Rules, &policy.Rule{
			Bucket: r.Bucket, Patterns: r.patterns, Source: r.source,
			Tag: r.Release.Tag, Entry: r.Release.Entry,
			OnMismatch: policy.Response(r.OnMismatch), Fallback: policy.Response(r.Fallback),
			CacheControl: r.CacheControl,
			Metadata: policy.Metadata{ContentType: md.ContentType, ContentEncoding: md.ContentEncoding,
				CacheControl: md.CacheControl, ContentDisposition: md.ContentDisposition},
		})
	}
	return p
}

// lineOf returns the line of the node at path, or of its nearest existing parent.
func lineOf(root *yaml.Node, path ...any) int {
	for n := len(path); n >= 0; n-- {
		if node := nodeAt(root, path[:n]...); node != nil {
			return node.Line
		}
	}
	return 0
}

func (r *Rule) validate(root *yaml.Node, i int, dir string, getenv func(string) string) error {
	at := func(path ...any) string {
		full := append([]any{"rules", i}, path...)
		return fmt.Sprintf("line %d: rules[%d]", lineOf(root, full...), i)
	}
	if r.Bucket == "" {
		return fmt.Errorf("%s: bucket is required", at())
	}
	if err := gsref.CheckBucket(r.Bucket); err != nil {
		return fmt.Errorf("%s.bucket: %q is not a Cloud Storage bucket name (give the name only, no gs://): %s", at("bucket"), r.Bucket, problem(err))
	}
	if len(r.Objects) == 0 {
		return fmt.Errorf("%s: objects is required (exact names or globs)", at())
	}
	anyTag := false
	for j, o := range r.Objects {
		p, err := policy.CompilePattern(o)
		if err != nil {
			return fmt.Errorf("%s.objects[%d]: %w", at("objects", j), j, err)
		}
		anyTag = anyTag || p.HasTag()
		r.patterns = append(r.patterns, p)
	}

	rs := &r.Release
	if rs.Tag == "" {
		rs.Tag = release.Latest
	}
	if anyTag && rs.Tag != tagPlaceholder {
		return fmt.Errorf("%s.release.tag: objects use %s, so tag must be %q", at("release", "tag"), tagPlaceholder, tagPlaceholder)
	}
	if rs.Tag == tagPlaceholder {
		for j, p := range r.patterns {
			if !p.HasTag() {
				return fmt.Errorf("%s.objects[%d]: tag is %q, so every object pattern must contain %s", at("objects", j), j, tagPlaceholder, tagPlaceholder)
			}
		}
	}
	if (strings.Contains(rs.Entry, "/") && !rs.Attestations) || (rs.Entry != "" && strings.Count(rs.Entry, tagPlaceholder) > 1) {
		return fmt.Errorf("%s.release.entry: %q must be a file name as listed in the checksum file", at("release", "entry"), rs.Entry)
	}

	switch policy.Response(r.Fallback) {
	case "":
		r.Fallback = string(policy.Quarantine)
	case policy.Quarantine, policy.AlertOnly:
	default:
		return fmt.Errorf("%s.fallback: %q is not one of quarantine, alert", at("fallback"), r.Fallback)
	}
	if r.CacheControl == "" {
		r.CacheControl = "no-cache"
	}
	switch policy.Response(r.OnMismatch) {
	case "":
		r.OnMismatch = string(policy.Restore)
	case policy.Restore, policy.Quarantine, policy.AlertOnly:
	default:
		return fmt.Errorf("%s.on_mismatch: %q is not one of restore, quarantine, alert", at("on_mismatch"), r.OnMismatch)
	}

	filter, err := release.NewTagFilter(rs.Tags, rs.Prereleases)
	if err != nil {
		return fmt.Errorf("%s.release.tags: %v", at("release", "tags"), err)
	}
	if rs.Tag != release.Latest && rs.Tag != tagPlaceholder && !filter.MatchPattern(rs.Tag) {
		return fmt.Errorf("%s.release.tag: %q does not match tags %q", at("release", "tag"), rs.Tag, rs.Tags)
	}
	token, err := r.githubToken(getenv)
	if err != nil {
		return fmt.Errorf("%s.release.github_token_env: %v", at("release", "github_token_env"), err)
	}

	keys, err := r.loadKeys(root, i, dir)
	if err != nil {
		return err
	}
	r.keys = keys

	if err := r.checkFormats(root, i); err != nil {
		return err
	}
	src, err := r.buildSource(keys, dir, token)
	if err != nil {
		return fmt.Errorf("%s.release: %w", at("release"), err)
	}
	if rs.Tags != "" || rs.Prereleases {
		src = release.Filtered(src, filter)
	}
	r.source = src
	return nil
}

// problem is the naming rule a name breaks.
func problem(err error) string {
	var ne *gsref.NameError
	if errors.As(err, &ne) {
		return ne.Problem
	}
	return err.Error()
}

// envName is a portable environment variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// githubToken reads the token of a github source: from the variable the rule names, which
// must be set, else from GITHUB_TOKEN when that is set. The token never appears in an error.
func (r *Rule) githubToken(getenv func(string) string) (string, error) {
	rs := &r.Release
	if rs.GitHubTokenEnv != "" && rs.GitHub == "" {
		return "", errors.New("applies only to a github source")
	}
	if rs.GitHub == "" {
		return "", nil
	}
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	name := rs.GitHubTokenEnv
	if name == "" {
		return strings.TrimSpace(getenv(EnvGitHubToken)), nil
	}
	if !envName.MatchString(name) {
		return "", fmt.Errorf("%q is not an environment variable name", name)
	}
	token := strings.TrimSpace(getenv(name))
	if token == "" {
		return "", fmt.Errorf("$%s is not set or empty", name)
	}
	return token, nil
}

// warnings names what this valid rule cannot protect against.
func (r *Rule) warnings(root *yaml.Node, i int) []string {
	rs := &r.Release
	out := r.formatWarnings(root, i)
	pgp, other := len(r.Keys.Sigstore) > 0, false // keyless bundles carry a verified time too
	for _, s := range r.keys.Signers() {
		if s.Scheme == "openpgp" {
			pgp = true
		} else {
			other = true
		}
	}
	if !other || rs.Signed == signedFile || rs.Attestations {
		return out
	}
	where := fmt.Sprintf("line %d: rules[%d].release", lineOf(root, "rules", i, "release"), i)
	schemes := "ssh and cosign signatures carry no signing time"
	how := "sign the checksum file with OpenPGP (its signature time orders releases), or release through signed git tags"
	switch {
	case rs.URL != "" && !strings.Contains(rs.URL, tagPlaceholder):
		if pgp {
			return append(out, fmt.Sprintf("%s: %s, so while the newest checksum file at %s is signed with ssh or cosign, an older validly signed one put back there passes unless its file names carry versions; to detect that, %s, or put {tag} in the url",
				where, schemes, redactedURL(rs.URL), how))
		}
		return append(out, fmt.Sprintf("%s: rollback cannot be detected: %s, so an older validly signed checksum file put back at %s passes unless its file names carry versions; to detect it, %s, or put {tag} in the url",
			where, schemes, redactedURL(rs.URL), how))
	case rs.GitHub != "" && !pgp:
		return append(out, fmt.Sprintf("%s: rollback cannot be detected: GitHub release names are not signed and %s, so an older signed release re-uploaded under a newer name passes unless its checksum file names versioned files; to detect it, %s",
			where, schemes, how))
	}
	return out
}

// redactedURL is a configured URL without credentials or query, for messages.
func redactedURL(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		if at := strings.IndexByte(rest, '@'); at >= 0 && at < strings.IndexByte(rest+"/", '/') {
			rest = rest[at+1:]
		}
		s = scheme + "://" + rest
	}
	return s
}

func (r *Rule) buildSource(keys *signing.Keys, dir, token string) (release.Source, error) {
	rs := &r.Release
	set := 0
	for _, s := range []string{rs.Git, rs.URL, rs.GitHub} {
		if s != "" {
			set++
		}
	}
	if set != 1 {
		return nil, errors.New("give exactly one of git, url, github")
	}
	switch {
	case rs.Git != "":
		if rs.Checksums == "" {
			rs.Checksums = "SHA256SUMS"
		}
		if rs.Signature != "" || len(rs.Signatures) > 0 || rs.Files != "" || rs.GitHubAPI != "" {
			return nil, errors.New("signature, signatures, files and github_api do not apply to a git source (the tag itself is signed)")
		}
		repo := rs.Git
		// A local repository path is relative to the configuration, like key paths.
		// (go-git would resolve it against the working directory.)
		if ep, err := transport.NewEndpoint(repo); err == nil && ep.Protocol == "file" &&
			!strings.HasPrefix(repo, "file://") && !filepath.IsAbs(repo) {
			repo = filepath.Join(dir, repo)
		}
		return release.NewGit(repo, rs.Checksums, keys)
	case rs.URL != "":
		if rs.Checksums != "" || rs.GitHubAPI != "" {
			return nil, errors.New("checksums and github_api do not apply to a url source (the url names the checksum file)")
		}
		if rs.Tag == release.Latest && strings.Contains(rs.URL, tagPlaceholder) {
			return nil, fmt.Errorf("tag: latest cannot list the releases behind url %q: give an exact tag, use {tag} in the object names, or a git/github source", redactedURL(rs.URL))
		}
		return release.NewURL(release.URLOptions{URL: rs.URL, Signature: rs.Signature, Signatures: rs.Signatures, Files: rs.Files,
			Keys: keys, Threshold: r.Keys.Threshold, FileSigned: rs.Signed == signedFile})
	default:
		if rs.Checksums == "" && !rs.Attestations {
			rs.Checksums = "SHA256SUMS"
		}
		if rs.Files != "" {
			return nil, errors.New("files does not apply to a github source (release assets are used)")
		}
		return release.NewGitHub(release.GitHubOptions{Repo: rs.GitHub, API: rs.GitHubAPI, Checksums: rs.Checksums,
			Signature: rs.Signature, Signatures: rs.Signatures, Threshold: r.Keys.Threshold,
			Attestations: rs.Attestations, AttestationRef: rs.AttestationRef,
			Keys: keys, Token: token, Prereleases: rs.Prereleases})
	}
}

// loadKeys reads every pinned key. A key is given inline or as a path relative to the
// configuration file.
func (r *Rule) loadKeys(root *yaml.Node, i int, dir string) (*signing.Keys, error) {
	if len(r.Keys.OpenPGP)+len(r.Keys.SSH)+len(r.Keys.Cosign)+len(r.Keys.Sigstore) == 0 {
		return nil, fmt.Errorf("line %d: rules[%d].keys: no keys: a rule needs at least one pinned openpgp, ssh or cosign public key or sigstore identity", lineOf(root, "rules", i, "keys"), i)
	}
	if r.Keys.OpenPGPAllowSHA1SelfSignaturesUnsafe && len(r.Keys.OpenPGP) == 0 {
		return nil, fmt.Errorf("line %d: rules[%d].keys.openpgp_allow_sha1_self_signatures_unsafe: set, but the rule pins no openpgp key; remove it", lineOf(root, "rules", i, "keys", "openpgp_allow_sha1_self_signatures_unsafe"), i)
	}
	// Each item is passed whole (a file is one item): the signing package names the
	// line inside it, and origin names the item and file.
	type origin struct {
		field string
		index int
		file  string // the key file, "" when inline
	}
	load := func(field string, items []string, inline func(string) bool) ([][]byte, []origin, error) {
		var out [][]byte
		var origins []origin
		for j, item := range items {
			where := fmt.Sprintf("line %d: rules[%d].keys.%s[%d]", lineOf(root, "rules", i, "keys", field, j), i, field, j)
			if strings.TrimSpace(item) == "" {
				return nil, nil, fmt.Errorf("%s: empty key", where)
			}
			if inline(item) {
				out = append(out, []byte(item))
				origins = append(origins, origin{field, j, ""})
				continue
			}
			p := item
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			f, err := os.Open(p)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: cannot read key file: %w", where, err)
			}
			data, err := readLimited(f, 256<<10)
			f.Close()
			if err != nil {
				return nil, nil, fmt.Errorf("%s: key file %s: %w", where, p, err)
			}
			out = append(out, data)
			origins = append(origins, origin{field, j, item})
		}
		return out, origins, nil
	}
	pgp, pgpOrigins, err := load("openpgp", r.Keys.OpenPGP, func(s string) bool { return strings.Contains(s, "-----BEGIN PGP") })
	if err != nil {
		return nil, err
	}
	ssh, sshOrigins, err := load("ssh", r.Keys.SSH, looksLikeSSHKey)
	if err != nil {
		return nil, err
	}
	cos, cosOrigins, err := load("cosign", r.Keys.Cosign, func(s string) bool { return strings.Contains(s, "-----BEGIN") })
	if err != nil {
		return nil, err
	}
	sigstore, err := r.sigstoreOptions(root, i, dir)
	if err != nil {
		return nil, err
	}
	keys, err := signing.NewKeys(pgp, ssh, cos, signing.Options{
		AllowSHA1SelfSignaturesUnsafe: r.Keys.OpenPGPAllowSHA1SelfSignaturesUnsafe,
		Sigstore:                      sigstore,
	})
	if err != nil {
		var ke *signing.KeyError
		if errors.As(err, &ke) {
			if ke.Scheme == "sigstore" {
				return nil, r.sigstoreKeyError(root, i, ke)
			}
			var o origin
			switch ke.Scheme {
			case "openpgp":
				o = pgpOrigins[ke.Index]
			case "ssh":
				o = sshOrigins[ke.Index]
			case "cosign":
				o = cosOrigins[ke.Index]
			}
			in := ""
			if o.file != "" {
				in = " (" + o.file + ")"
			}
			return nil, fmt.Errorf("line %d: rules[%d].keys.%s[%d]%s: %w", lineOf(root, "rules", i, "keys", o.field, o.index), i, o.field, o.index, in, ke.Err)
		}
		return nil, fmt.Errorf("line %d: rules[%d].keys: %w", lineOf(root, "rules", i, "keys"), i, err)
	}
	if err := r.checkThreshold(root, i, keys); err != nil {
		return nil, err
	}
	return keys, nil
}

// looksLikeSSHKey tells inline SSH key text from a file path: some line holds a key
// type followed by base64 ("ssh-ed25519 AAAA…"), after optional principals and options.
func looksLikeSSHKey(s string) bool {
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		for j := 0; j+1 < len(f); j++ {
			if !strings.HasPrefix(f[j+1], "AAAA") {
				continue
			}
			for _, p := range []string{"ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-", "rsa-sha2-"} {
				if strings.HasPrefix(f[j], p) {
					return true
				}
			}
		}
	}
	return false
}

// Source is the rule's release source, built with its pinned keys at load time.
func (r *Rule) Source() release.Source { return r.source }

// PinnedKeys are the rule's pinned keys.
func (r *Rule) PinnedKeys() *signing.Keys { return r.keys }

func readLimited(f *os.File, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return buf.Bytes(), nil
}
