package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/signing"
)

// DefaultGitHubAPI is the API of github.com.
const DefaultGitHubAPI = "https://api.github.com"

const (
	githubJSON     = "application/vnd.github+json"
	acceptOctets   = "application/octet-stream"
	githubPageSize = 100
	githubMaxPages = 3
)

// GitHubOptions configures releases read from GitHub release assets.
type GitHubOptions struct {
	// Repo is "owner/name".
	Repo string
	// API is the API's base URL; "" means https://api.github.com. For GitHub Enterprise
	// Server it is "https://HOST/api/v3".
	API string
	// Checksums is the asset name of the checksum file, e.g. "SHA256SUMS".
	Checksums string
	// Signature is the asset name of its detached signature; "" means every one of
	// Checksums+".asc", Checksums+".sig" and Checksums+".sigstore.json" that the release has
	// (a signature is recognised by its content). A clearsigned checksum file named "*.asc"
	// needs none.
	Signature string
	// Signatures are more signature asset names, read with Signature (k-of-n).
	Signatures []string
	// Threshold is how many distinct pinned keys must have signed (default 1).
	Threshold int
	// Attestations: the release is vouched for by GitHub artifact attestations of its assets
	// (release.attestations: true) instead of a signed checksum file; Checksums and the
	// signatures are not used.
	Attestations bool
	// AttestationRef is the source ref the attestations' certificates must name, "{tag}"
	// standing for the release's tag; "" means "refs/tags/{tag}" (gh attestation verify's
	// --source-ref for a release).
	AttestationRef string
	// Token is optional, sent as "Authorization: Bearer" to the API host only (never to the
	// storage host a download redirects to); it never appears in errors.
	Token string
	// Keys are the pinned keys one of which must have signed the checksum file.
	Keys *signing.Keys
	// Client is used for all requests; nil means a client with sane timeouts. Its redirect
	// policy and cookie jar are replaced, as for URLOptions.Client.
	Client *http.Client
	// Prereleases lists releases GitHub marks as pre-releases among the candidates for
	// latest too (they are left out by default, as GitHub's own "latest" leaves them out).
	Prereleases bool
}

// GitHubSource reads releases from the GitHub releases API.
type GitHubSource struct {
	repo, owner, name string
	api               *url.URL // no trailing slash
	apiDefault        bool
	checksums         string
	signatures        []string // signature asset names, every one present is read
	threshold         int
	attest            *attestPolicy // release.attestations: true
	keys              *signing.Keys
	get               *getter
	prereleases       bool
}

var _ Source = (*GitHubSource)(nil)

var (
	githubOwner = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,38})$`)
	githubName  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)
)

// NewGitHub checks opts and returns the source.
func NewGitHub(opts GitHubOptions) (*GitHubSource, error) {
	owner, name, ok := strings.Cut(opts.Repo, "/")
	if !ok || !githubOwner.MatchString(owner) || !githubName.MatchString(name) || name == "." || name == ".." {
		return nil, fmt.Errorf("github repo %q: want owner/name", clip(opts.Repo))
	}
	if opts.Keys == nil {
		return nil, fmt.Errorf("github %s: no pinned keys", opts.Repo)
	}
	s := &GitHubSource{
		repo:        opts.Repo,
		owner:       owner,
		name:        name,
		checksums:   opts.Checksums,
		threshold:   max(opts.Threshold, 1),
		keys:        opts.Keys,
		prereleases: opts.Prereleases,
	}
	if opts.Attestations {
		p, err := newAttestPolicy(owner, name, opts.AttestationRef)
		if err != nil {
			return nil, fmt.Errorf("github %s: %w", opts.Repo, err)
		}
		s.attest = p
	} else {
		if err := checkAssetName(opts.Checksums); err != nil {
			return nil, fmt.Errorf("github %s: checksums asset: %w", opts.Repo, err)
		}
		sigs := opts.Signatures
		if opts.Signature != "" {
			sigs = append([]string{opts.Signature}, sigs...)
		}
		if len(sigs) > maxSignatureURLs {
			return nil, fmt.Errorf("github %s: %d signature assets, at most %d", opts.Repo, len(sigs), maxSignatureURLs)
		}
		for _, n := range sigs {
			if err := checkAssetName(n); err != nil {
				return nil, fmt.Errorf("github %s: signature asset: %w", opts.Repo, err)
			}
		}
		if len(sigs) == 0 {
			sigs = []string{opts.Checksums + ".asc", opts.Checksums + ".sig", opts.Checksums + ".sigstore.json"}
		}
		s.signatures = sigs
	}
	api := opts.API
	if api == "" {
		api = DefaultGitHubAPI
	}
	api = strings.TrimRight(api, "/")
	u, err := url.Parse(api)
	if err == nil {
		err = checkBase(u)
	}
	if err == nil && (u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || hasControl(api)) {
		err = errors.New("must not have a query or fragment")
	}
	if err != nil {
		return nil, fmt.Errorf("github api %s: %v", showRaw(api), err)
	}
	s.api = u
	s.apiDefault = api == DefaultGitHubAPI
	if strings.ContainsAny(opts.Token, "\r\n") {
		return nil, fmt.Errorf("github %s: the token contains a line break", opts.Repo)
	}
	s.get = newGetter(opts.Client, u, opts.Token)
	return s, nil
}

func checkAssetName(n string) error {
	if n == "" || len(n) > 255 || strings.ContainsAny(n, "/\\") || hasControl(n) || !utf8.ValidString(n) {
		return fmt.Errorf("%q is not a valid asset name", clip(n))
	}
	return nil
}

// Key identifies the source: "github owner/name", plus the API URL when it is not github.com's.
func (s *GitHubSource) Key() string {
	if s.apiDefault {
		return "github " + s.repo
	}
	return "github " + s.repo + " " + s.api.String()
}

func (s *GitHubSource) endpoint(rest string) (*url.URL, error) {
	return parseChecked(s.api.String() + "/repos/" + s.owner + "/" + s.name + rest)
}

// githubRelease is the part of GitHub's release object that is used.
type githubRelease struct {
	TagName     string        `json:"tag_name"`
	Draft       bool          `json:"draft"`
	Prerelease  bool          `json:"prerelease"`
	PublishedAt *time.Time    `json:"published_at"`
	Assets      []githubAsset `json:"assets"`
}

type githubAsset struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	Size  int64  `json:"size"`
	State string `json:"state"`
	// Digest is "sha256:HEX" (GitHub computes it on upload; not signed: it only says what
	// to look an attestation up by).
	Digest string `json:"digest"`
}

// Candidates lists the published releases (no drafts; no pre-releases unless asked), as
// GitHub orders them, reading at most 3 pages of 100. A release without the checksum file or
// a signature asset is listed as refused, so it costs no further request; each candidate's ID
// names the assets that would be verified.
func (s *GitHubSource) Candidates(ctx context.Context) ([]Candidate, error) {
	cs, err := s.candidates(ctx)
	return cs, s.get.redact(err)
}

func (s *GitHubSource) candidates(ctx context.Context) ([]Candidate, error) {
	u, err := s.endpoint("/releases?per_page=" + strconv.Itoa(githubPageSize))
	if err != nil {
		return nil, err
	}
	var out []Candidate
	for page := 1; u != nil && page <= githubMaxPages; page++ {
		var rels []githubRelease
		next, err := s.getJSON(ctx, u, "release list", &rels)
		if err != nil {
			return nil, err
		}
		out = append(out, s.candidatesOf(rels)...)
		u = next
	}
	return out, nil
}

// candidatesOf turns one page of the release list into candidates.
func (s *GitHubSource) candidatesOf(rels []githubRelease) []Candidate {
	var out []Candidate
	for _, r := range rels {
		if r.Draft || (r.Prerelease && !s.prereleases) || checkTag(r.TagName) != nil {
			continue
		}
		// published_at is not signed: it only orders what is tried first.
		c := Candidate{Tag: r.TagName}
		if r.PublishedAt != nil {
			c.Time = *r.PublishedAt
		}
		where := "github " + s.repo + " release " + clip(r.TagName)
		assets, err := indexAssets(r.Assets)
		switch {
		case err != nil:
			c.Refused = fmt.Errorf("%w: %s: %w", ErrInvalid, where, err)
		case s.attest != nil:
			c.ID, c.Refused = s.attest.candidate(r.Assets, where)
		default:
			sums, sigs, err := s.pick(assets, where)
			if err != nil {
				c.Refused = err
			} else {
				c.ID = strconv.FormatInt(sums.ID, 10)
				for _, a := range sigs {
					c.ID += "/" + strconv.FormatInt(a.ID, 10)
				}
			}
		}
		out = append(out, c)
	}
	return out
}

// pick finds the checksum file and signature assets of a release: every signature asset
// it has. A checksum file named "*.asc" may be clearsigned and then needs no signature
// asset (whether it is, its content says).
func (s *GitHubSource) pick(assets map[string]githubAsset, where string) (sums githubAsset, sigs []githubAsset, err error) {
	sums, ok := assets[s.checksums]
	if !ok {
		return sums, nil, fmt.Errorf("%w: %s has no asset %s", ErrNotFound, where, s.checksums)
	}
	for _, n := range s.signatures {
		if a, ok := assets[n]; ok {
			sigs = append(sigs, a)
		}
	}
	if len(sigs) == 0 && !strings.HasSuffix(s.checksums, ".asc") {
		return sums, nil, fmt.Errorf("%w: %s has no signature asset (%s)", ErrUnsigned, where, strings.Join(s.signatures, " or "))
	}
	return sums, sigs, nil
}

// getJSON GETs an API document into v and returns the next page's URL from the Link header
// (nil when there is none). The next URL must be on the API's own origin: the token goes there.
func (s *GitHubSource) getJSON(ctx context.Context, u *url.URL, what string, v any) (*url.URL, error) {
	data, header, err := s.get.documentWithHeader(ctx, u, what, maxJSONBytes, githubJSON)
	if err != nil {
		return nil, err
	}
	if err := decodeJSON(data, v); err != nil {
		return nil, fmt.Errorf("%w: %s %s: %v", ErrInvalid, what, show(u), err)
	}
	link := nextLink(header.Values("Link"))
	if link == "" {
		return nil, nil
	}
	next, err := u.Parse(link)
	if err != nil || !sameOrigin(next, s.api) {
		return nil, fmt.Errorf("%w: %s %s: next page link %q is not on %s", ErrInvalid, what, show(u), clip(link), s.api.Host)
	}
	next.Fragment, next.RawFragment = "", ""
	return next, nil
}

// decodeJSON decodes an API answer (bounded by maxJSONBytes when it was read) into v; its
// error never repeats the document.
func decodeJSON(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return jsonError(err)
	}
	return nil
}

// jsonError describes a decoding error without repeating the document.
func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("not JSON (at byte %d)", syn.Offset)
	case errors.As(err, &typ) && typ.Field == "":
		return fmt.Errorf("the document is a JSON %s, want %s", typ.Value, typ.Type)
	case errors.As(err, &typ):
		return fmt.Errorf("field %q is a JSON %s, want %s", clip(typ.Field), typ.Value, typ.Type)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("truncated JSON")
	}
	return errors.New("malformed JSON")
}

// nextLink finds the rel="next" target in RFC 8288 Link header values.
func nextLink(values []string) string {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			if !strings.HasPrefix(part, "<") {
				continue
			}
			end := strings.IndexByte(part, '>')
			if end < 0 {
				continue
			}
			target := part[1:end]
			for _, param := range strings.Split(part[end+1:], ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(param), "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(k), "rel") {
					continue
				}
				for _, rel := range strings.Fields(strings.Trim(strings.TrimSpace(val), `"`)) {
					if strings.EqualFold(rel, "next") {
						return target
					}
				}
			}
		}
	}
	return ""
}

// Fetch reads the release at tag, downloads its checksum file and signature assets, verifies
// the signature against the pinned keys and only then parses the checksum file.
func (s *GitHubSource) Fetch(ctx context.Context, tag string) (*Release, error) {
	rel, err := s.fetch(ctx, tag)
	return rel, s.get.redact(err)
}

func (s *GitHubSource) fetch(ctx context.Context, tag string) (*Release, error) {
	if err := checkTag(tag); err != nil {
		return nil, fmt.Errorf("github %s: %w", s.repo, err)
	}
	u, err := s.endpoint("/releases/tags/" + url.PathEscape(tag))
	if err != nil {
		return nil, err
	}
	var rel githubRelease
	if _, err := s.getJSON(ctx, u, "release "+clip(tag)+" of github "+s.repo+" at", &rel); err != nil {
		return nil, err
	}
	if rel.TagName != tag {
		return nil, fmt.Errorf("%w: github %s: asked for release %q, got %q", ErrInvalid, s.repo, clip(tag), clip(rel.TagName))
	}
	if rel.Draft {
		return nil, fmt.Errorf("%w: github %s: release %s is a draft", ErrInvalid, s.repo, clip(tag))
	}
	assets, err := indexAssets(rel.Assets)
	if err != nil {
		return nil, fmt.Errorf("%w: github %s release %s: %w", ErrInvalid, s.repo, clip(tag), err)
	}
	where := "github " + s.repo + " release " + clip(tag)
	ids := make(map[string]int64, len(assets))
	for n, a := range assets {
		ids[n] = a.ID
	}
	if s.attest != nil {
		return s.attestedRelease(ctx, rel.TagName, rel.Assets, ids, where)
	}

	sumAsset, sigAssets, err := s.pick(assets, where)
	if err != nil {
		return nil, err
	}
	sums, err := s.download(ctx, sumAsset, "checksum file "+s.checksums+" of "+where, maxChecksumBytes)
	if err != nil {
		return nil, err
	}
	what := where + ": checksum file " + s.checksums
	var sigs [][]byte
	if !signing.IsClearsigned(sums) {
		if len(sigAssets) == 0 {
			return nil, fmt.Errorf("%w: %s is not clearsigned and has no signature asset (%s)", ErrUnsigned, what, strings.Join(s.signatures, " or "))
		}
		var names []string
		for _, a := range sigAssets {
			sig, err := s.download(ctx, a, "signature "+a.Name+" of "+where, maxSignatureBytes)
			if err != nil {
				return nil, err
			}
			sigs = append(sigs, sig)
			names = append(names, a.Name)
			if s.threshold == 1 {
				if _, _, err := signedText(s.keys, 1, sums, [][]byte{sig}); err == nil {
					break // one signer is enough: the other assets are not read
				}
			}
		}
		what += " with signature " + strings.Join(names, ", ")
	}
	ev := &Evidence{Tag: rel.TagName, Checksums: sums, Assets: ids}
	evidenceSigs(ev, sigs)
	return s.verified(ev, what)
}

// Reverify verifies kept evidence of this source again against the pinned keys.
func (s *GitHubSource) Reverify(_ context.Context, ev *Evidence) (*Release, error) {
	if err := checkTag(ev.Tag); err != nil {
		return nil, fmt.Errorf("github %s: kept release: %w", s.repo, err)
	}
	if s.attest != nil {
		rel, err := s.reverifyAttested(ev)
		return rel, s.get.redact(err)
	}
	rel, err := s.verified(ev, "github "+s.repo+" release "+clip(ev.Tag)+": kept checksum file "+s.checksums)
	return rel, s.get.redact(err)
}

// verified checks the signature over the checksum file against the pinned keys and only then
// parses it. The release is named by what was signed: its time is the signature's, its
// version the one its file names carry (a checksum file that names another version than the
// release's tag is an older release replayed under a new name), never the API's fields.
func (s *GitHubSource) verified(ev *Evidence, what string) (*Release, error) {
	where := "github " + s.repo + " release " + clip(ev.Tag)
	text, vs, err := signedText(s.keys, s.threshold, ev.Checksums, keptSigs(ev))
	if err != nil {
		if errors.Is(err, ErrUnsigned) {
			return nil, fmt.Errorf("%w: %s: no signature", ErrUnsigned, what)
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	file, err := checksum.ParseAll(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: checksum file %s: %w", ErrInvalid, where, s.checksums, err)
	}
	version, err := checkNamed(where, ev.Tag, file)
	if err != nil {
		return nil, err
	}
	assets := make(map[string]githubAsset, len(ev.Assets))
	for n, id := range ev.Assets {
		assets[n] = githubAsset{ID: id, Name: n}
	}
	return &Release{
		Source:        "github " + s.repo,
		Tag:           ev.Tag,
		Signer:        vs[0].Signer,
		Signers:       signersOf(vs),
		Time:          signedAt(vs),
		Version:       version,
		Checksums:     file,
		ChecksumsName: s.checksums,
		Evidence:      ev,
		files:         &githubFiles{src: s, where: where, assets: assets},
	}, nil
}

// indexAssets maps the uploaded assets by name. Two assets of one name are refused: which
// one was meant could not be told.
func indexAssets(list []githubAsset) (map[string]githubAsset, error) {
	m := make(map[string]githubAsset, len(list))
	for _, a := range list {
		if a.State != "" && a.State != "uploaded" {
			continue // an upload that did not complete
		}
		if _, dup := m[a.Name]; dup {
			return nil, fmt.Errorf("two assets named %q", clip(a.Name))
		}
		if a.ID <= 0 {
			return nil, fmt.Errorf("asset %q has no id", clip(a.Name))
		}
		m[a.Name] = a
	}
	return m, nil
}

// assetURL is the API URL of an asset, built from its id: the download goes to the API
// host, whatever URLs the release JSON names.
func (s *GitHubSource) assetURL(a githubAsset) (*url.URL, error) {
	return s.endpoint("/releases/assets/" + strconv.FormatInt(a.ID, 10))
}

func (s *GitHubSource) download(ctx context.Context, a githubAsset, what string, limit int64) ([]byte, error) {
	if a.Size > limit {
		return nil, fmt.Errorf("%w: %s: %d bytes, more than the limit of %d", ErrInvalid, what, a.Size, limit)
	}
	u, err := s.assetURL(a)
	if err != nil {
		return nil, err
	}
	return s.get.document(ctx, u, what, limit, acceptOctets)
}

// githubFiles opens the assets of one release.
type githubFiles struct {
	src    *GitHubSource
	where  string
	assets map[string]githubAsset
	// aliases maps an attested subject's name to the asset whose digest found its
	// attestation, when the names differ (a subject named as a package URL).
	aliases map[string]string
}

func (f *githubFiles) open(ctx context.Context, name string) (io.ReadCloser, error) {
	r, err := f.openAsset(ctx, name)
	return r, f.src.get.redact(err)
}

func (f *githubFiles) openAsset(ctx context.Context, name string) (io.ReadCloser, error) {
	a, ok := f.assets[name]
	if !ok {
		// "./x" (as `sha256sum ./*` writes it) is the asset x.
		a, ok = f.assets[strings.TrimPrefix(name, "./")]
	}
	if alias, found := f.aliases[name]; !ok && found {
		a, ok = f.assets[alias]
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s has no asset %q", ErrFileMissing, f.where, clip(name))
	}
	u, err := f.src.assetURL(a)
	if err != nil {
		return nil, err
	}
	return f.src.get.stream(ctx, u, "asset "+clip(name)+" of "+f.where, ErrFileMissing, acceptOctets)
}
