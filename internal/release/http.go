package release

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/signing"
)

// Limits on what is read from a release host. Everything past them is refused, not truncated.
const (
	maxChecksumBytes  = 4 << 20  // a checksum file
	maxSignatureBytes = 64 << 10 // a detached signature
	maxJSONBytes      = 8 << 20  // one GitHub API answer
	maxRedirects      = 5

	// docTimeout bounds one small download (API answer, checksum file, signature), all
	// redirects and the body included.
	docTimeout = 30 * time.Second
	// fileTimeout bounds the download of a released file (which may be a large binary).
	fileTimeout = 10 * time.Minute
	// maxShown bounds how much of a URL, tag or name from the network an error repeats.
	maxShown = 200
)

// URLOptions configures a checksum file fetched over HTTPS with its detached signatures, or
// (FileSigned) released files each with a detached signature of its own.
type URLOptions struct {
	// URL is the checksum file's URL; "{tag}" (in its path only) is replaced by the tag,
	// path-escaped so that it stays one path segment. With FileSigned it is the released
	// files' URL template instead, with "{name}" (and optionally "{tag}").
	URL string
	// Signature is the signature's URL template; "" tries URL+".asc", URL+".sig" and
	// URL+".sigstore.json" (every one that exists is read). A signature is recognised by its
	// content: OpenPGP, SSH, cosign, or a Sigstore bundle. A clearsigned checksum file needs
	// none.
	Signature string
	// Signatures are more signature URL templates, read with Signature (k-of-n: several
	// signers publishing one file each).
	Signatures []string
	// Threshold is how many distinct pinned keys must have signed (default 1).
	Threshold int
	// FileSigned says there is no checksum file: each released file (URL) carries a
	// detached signature over itself, checked while the file streams (release.signed: file).
	FileSigned bool
	// Keys are the pinned keys one of which must have signed the checksum file.
	Keys *signing.Keys
	// Client is used for all requests; nil means a client with sane timeouts. Its redirect
	// policy and cookie jar are replaced: redirects are followed here (at most 5, https only,
	// or http to a loopback host) and no cookies are kept.
	Client *http.Client
	// Files is the URL template of the released copy of a file: "{name}" is the checksum
	// entry's name (each segment path-escaped), "{tag}" the tag. "" means the file sits next
	// to the checksum file (with FileSigned: URL itself).
	Files string
}

// URLSource reads a signed checksum file from a URL.
type URLSource struct {
	url, files string   // templates
	signatures []string // signature templates, all read
	hasTag     bool
	fileSigned bool
	threshold  int
	keys       *signing.Keys
	get        *getter
}

var _ Source = (*URLSource)(nil)

// maxSignatureURLs bounds the signature templates of one source.
const maxSignatureURLs = 8

// NewURL checks opts and returns the source. Templates must be absolute https URLs (plain
// http only to a loopback host), without credentials, and may use "{tag}" only in the path.
func NewURL(opts URLOptions) (*URLSource, error) {
	if opts.Keys == nil {
		return nil, fmt.Errorf("url source %s: no pinned keys", showRaw(opts.URL))
	}
	placeholders := []string{"{tag}"}
	if opts.FileSigned {
		placeholders = append(placeholders, "{name}")
	}
	if err := checkTemplate(opts.URL, placeholders...); err != nil {
		return nil, fmt.Errorf("url %s: %w", showRaw(opts.URL), err)
	}
	s := &URLSource{
		url:        opts.URL,
		files:      opts.Files,
		hasTag:     strings.Contains(opts.URL, "{tag}"),
		fileSigned: opts.FileSigned,
		threshold:  max(opts.Threshold, 1),
		keys:       opts.Keys,
		get:        newGetter(opts.Client, nil, ""),
	}
	if opts.FileSigned {
		if !strings.Contains(opts.URL, "{name}") {
			return nil, fmt.Errorf("url %s: has no {name}: with signed: file it names each released file", showRaw(opts.URL))
		}
	} else if name, _ := lastSegment(mustParse(strings.ReplaceAll(opts.URL, "{tag}", "t"))); name == "" {
		// The checksum URL must name a file: its last path element is the checksum file's name.
		return nil, fmt.Errorf("url %s: does not name a file", showRaw(opts.URL))
	}
	sigs := opts.Signatures
	if opts.Signature != "" {
		sigs = append([]string{opts.Signature}, sigs...)
	}
	if len(sigs) > maxSignatureURLs {
		return nil, fmt.Errorf("url %s: %d signature urls, at most %d", showRaw(opts.URL), len(sigs), maxSignatureURLs)
	}
	for _, t := range sigs {
		if err := checkTemplate(t, placeholders...); err != nil {
			return nil, fmt.Errorf("signature url %s: %w", showRaw(t), err)
		}
		if opts.FileSigned && !strings.Contains(t, "{name}") {
			return nil, fmt.Errorf("signature url %s: has no {name}: with signed: file each file has its own signature", showRaw(t))
		}
	}
	if len(sigs) == 0 {
		for _, suffix := range []string{".asc", ".sig", ".sigstore.json"} {
			sigs = append(sigs, addPathSuffix(opts.URL, suffix))
		}
	}
	s.signatures = sigs
	if opts.Files != "" {
		if err := checkTemplate(opts.Files, "{tag}", "{name}"); err != nil {
			return nil, fmt.Errorf("files url %s: %w", showRaw(opts.Files), err)
		}
		if !strings.Contains(opts.Files, "{name}") {
			return nil, fmt.Errorf("files url %s: has no {name}", showRaw(opts.Files))
		}
	}
	if !s.hasTag {
		for _, t := range append([]string{opts.Files}, sigs...) {
			if strings.Contains(t, "{tag}") {
				return nil, fmt.Errorf("url %s has no {tag}, so the signature and files urls cannot use one", showRaw(opts.URL))
			}
		}
	}
	return s, nil
}

// Key identifies the source: "url " and the URL template. A query (which may carry a
// token) is replaced by a digest of it.
func (s *URLSource) Key() string { return "url " + redactTemplate(s.url) }

// redactTemplate is a checked URL template without its query: a short digest of the query
// keeps templates that differ only there apart.
func redactTemplate(t string) string {
	i := strings.IndexByte(t, '?')
	if i < 0 {
		return t
	}
	sum := sha256.Sum256([]byte(t[i+1:]))
	return t[:i] + "?<query sha256:" + hex.EncodeToString(sum[:6]) + ">"
}

// Candidates returns the one release of a URL without "{tag}". A URL with "{tag}" cannot
// list its releases.
func (s *URLSource) Candidates(ctx context.Context) ([]Candidate, error) {
	if s.hasTag {
		return nil, fmt.Errorf("%w: %s: tag: latest needs a git or github source, or a url without {tag}", ErrInvalid, redactTemplate(s.url))
	}
	return []Candidate{{Tag: ""}}, nil
}

// Fetch downloads the checksum file and its signatures, verifies them against the pinned
// keys and only then parses the checksum file. For a source signed file by file it only
// checks the tag: each file's signature is read when the file is checked (Release.Expect).
func (s *URLSource) Fetch(ctx context.Context, tag string) (*Release, error) {
	if s.fileSigned {
		return s.fileRelease(tag)
	}
	sumURL, err := s.locate(tag)
	if err != nil {
		return nil, err
	}
	sums, err := s.get.document(ctx, sumURL, "checksum file", maxChecksumBytes, "")
	if err != nil {
		return nil, err
	}
	what := "checksum file " + show(sumURL)
	var sigs [][]byte
	if !signing.IsClearsigned(sums) {
		var urls []string
		sigs, urls, err = s.signaturesFor(ctx, tag, "", "checksum file "+show(sumURL), s.enough(sums))
		if err != nil {
			return nil, err
		}
		what += " with signature " + strings.Join(urls, ", ")
	} else {
		what = "clearsigned " + what
	}
	return s.verified(tag, sumURL, sums, sigs, what)
}

// Reverify verifies kept evidence of this source again against the pinned keys.
func (s *URLSource) Reverify(_ context.Context, ev *Evidence) (*Release, error) {
	if s.fileSigned {
		return nil, fmt.Errorf("%w: url %s is signed file by file and keeps no evidence", ErrInvalid, redactTemplate(s.url))
	}
	sumURL, err := s.locate(ev.Tag)
	if err != nil {
		return nil, err
	}
	return s.verified(ev.Tag, sumURL, ev.Checksums, keptSigs(ev), "kept checksum file of "+show(sumURL))
}

// locate checks tag and returns the checksum file's URL.
func (s *URLSource) locate(tag string) (*url.URL, error) {
	if err := s.checkTag(tag); err != nil {
		return nil, err
	}
	return expand(s.url, tag, "")
}

// checkTag checks the tag a fetch asks for.
func (s *URLSource) checkTag(tag string) error {
	if s.hasTag {
		if err := checkTag(tag); err != nil {
			return fmt.Errorf("url %s: %w", redactTemplate(s.url), err)
		}
	} else if tag != "" {
		return fmt.Errorf("%w: url %s has no {tag}, so it cannot fetch tag %s", ErrInvalid, redactTemplate(s.url), clip(tag))
	}
	return nil
}

// verified checks the signatures over sums (or the clearsigned file's own) against the
// pinned keys and only then parses the signed text. what names the pair for errors.
func (s *URLSource) verified(tag string, sumURL *url.URL, sums []byte, sigs [][]byte, what string) (*Release, error) {
	text, vs, err := signedText(s.keys, s.threshold, sums, sigs)
	if err != nil {
		if errors.Is(err, ErrUnsigned) {
			return nil, fmt.Errorf("%w: %s: no signature", ErrUnsigned, what)
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	file, err := checksum.ParseAll(text)
	if err != nil {
		return nil, fmt.Errorf("%w: checksum file %s: %w", ErrInvalid, show(sumURL), err)
	}
	version, err := checkNamed("checksum file "+show(sumURL), tag, file)
	if err != nil {
		return nil, err
	}
	name, _ := lastSegment(sumURL)
	ev := &Evidence{Tag: tag, Checksums: sums}
	evidenceSigs(ev, sigs)
	return &Release{
		Source:        "url " + show(sumURL),
		Tag:           tag,
		Signer:        vs[0].Signer,
		Signers:       signersOf(vs),
		Time:          signedAt(vs),
		Version:       version,
		Checksums:     file,
		ChecksumsName: name,
		Evidence:      ev,
		files:         &urlFiles{src: s, tag: tag, sums: sumURL},
	}, nil
}

// enough says, for one signer (threshold 1), that the signatures read so far suffice once
// the last one verifies over sums: the rest are not read.
func (s *URLSource) enough(sums []byte) func([][]byte) bool {
	if s.threshold > 1 {
		return nil
	}
	return func(sigs [][]byte) bool {
		_, _, err := signedText(s.keys, 1, sums, sigs[len(sigs)-1:])
		return err == nil
	}
}

// signaturesFor downloads the signatures of the checksum file (name "") or a released
// file: the configured URLs, or those of URL.asc, URL.sig and URL.sigstore.json that
// exist, in that order, stopping early when enough (if set) says so. None at all is
// ErrUnsigned. what names the signed file for errors.
func (s *URLSource) signaturesFor(ctx context.Context, tag, escapedName, what string, enough func([][]byte) bool) ([][]byte, []string, error) {
	var sigs [][]byte
	var found, tried []string
	for _, t := range s.signatures {
		u, err := expand(t, tag, escapedName)
		if err != nil {
			return nil, nil, err
		}
		sig, err := s.get.document(ctx, u, "signature", maxSignatureBytes, "")
		if errors.Is(err, ErrNotFound) {
			tried = append(tried, show(u))
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		sigs = append(sigs, sig)
		found = append(found, show(u))
		if enough != nil && enough(sigs) {
			break
		}
	}
	if len(sigs) == 0 {
		return nil, nil, fmt.Errorf("%w: %s: no signature at %s", ErrUnsigned, what, strings.Join(tried, " or "))
	}
	return sigs, found, nil
}

// urlFiles opens the released copies of files of one URL release.
type urlFiles struct {
	src  *URLSource
	tag  string
	sums *url.URL
}

func (f *urlFiles) open(ctx context.Context, name string) (io.ReadCloser, error) {
	// "./x" (as `sha256sum ./*` writes it) is the file x next to the checksum file.
	escaped, err := escapeName(strings.TrimPrefix(name, "./"))
	if err != nil {
		return nil, err
	}
	var u *url.URL
	switch {
	case f.src.files != "":
		u, err = expand(f.src.files, f.tag, escaped)
	case f.src.fileSigned:
		u, err = expand(f.src.url, f.tag, escaped)
	default:
		dir := *f.sums
		dir.RawQuery, dir.ForceQuery, dir.Fragment, dir.RawFragment = "", false, "", ""
		p := dir.EscapedPath()
		u, err = parseChecked(dir.Scheme + "://" + dir.Host + p[:strings.LastIndex(p, "/")+1] + escaped)
	}
	if err != nil {
		return nil, err
	}
	return f.src.get.stream(ctx, u, "file "+clip(name), ErrFileMissing, "")
}

// escapeName checks a checksum entry name and path-escapes each of its segments. The name
// comes from a file off the network: it must not climb out of the release's directory or
// change the URL's host, query or fragment.
func escapeName(name string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: file name %q %s", ErrInvalid, clip(name), why)
	}
	switch {
	case name == "":
		return bad("is empty")
	case len(name) > 1024:
		return bad("is too long")
	case !utf8.ValidString(name):
		return bad("is not UTF-8")
	case strings.HasPrefix(name, "/"):
		return bad("is absolute")
	case strings.Contains(name, "\\"):
		return bad("contains a backslash")
	case hasControl(name):
		return bad("contains control characters")
	}
	segs := strings.Split(name, "/")
	for i, seg := range segs {
		switch seg {
		case "":
			return bad("has an empty path segment")
		case ".", "..":
			return bad("has a . or .. path segment")
		}
		segs[i] = url.PathEscape(seg)
	}
	return strings.Join(segs, "/"), nil
}

// checkTag refuses tags that cannot name a release: empty, huge, control characters, or
// the path segments "." and "..".
func checkTag(tag string) error {
	switch {
	case tag == "":
		return fmt.Errorf("%w: a tag is needed", ErrInvalid)
	case len(tag) > 255, !utf8.ValidString(tag), hasControl(tag), tag == ".", tag == "..":
		return fmt.Errorf("%w: tag %q is not a valid tag", ErrInvalid, clip(tag))
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return true
		}
	}
	return false
}

// checkTemplate checks a URL template: absolute, https (http for loopback hosts only), no
// credentials or fragment, and the placeholders only in the path.
func checkTemplate(t string, placeholders ...string) error {
	if t == "" {
		return errors.New("is empty")
	}
	if hasControl(t) || strings.ContainsAny(t, " \\") {
		return errors.New("contains spaces, backslashes or control characters")
	}
	sample := t
	for _, p := range placeholders {
		sample = strings.ReplaceAll(sample, p, "x")
	}
	u, err := url.Parse(sample)
	if err != nil {
		return errors.New("does not parse")
	}
	if err := checkBase(u); err != nil {
		return err
	}
	if u.Fragment != "" || strings.Contains(sample, "#") {
		return errors.New("has a fragment")
	}
	// The placeholders must sit in the path: after "scheme://host", before any "?".
	authority := strings.Index(t, "://") + len("://")
	pathStart := authority + strings.IndexAny(t[authority:]+"/", "/?#")
	query := strings.IndexAny(t, "?#")
	for _, p := range placeholders {
		for i := 0; ; {
			j := strings.Index(t[i:], p)
			if j < 0 {
				break
			}
			if i+j < pathStart || (query >= 0 && i+j > query) {
				return errors.New("placeholders may appear only in the path")
			}
			i += j + len(p)
		}
	}
	rest := t
	for _, p := range placeholders {
		rest = strings.ReplaceAll(rest, p, "")
	}
	if strings.ContainsAny(rest, "{}") {
		return errors.New("has an unknown {placeholder}")
	}
	return nil
}

// checkBase checks a parsed absolute URL: https, or http to a loopback host; no credentials.
func checkBase(u *url.URL) error {
	if u.User != nil {
		return errors.New("must not carry credentials")
	}
	if u.Host == "" || u.Opaque != "" {
		return errors.New("is not an absolute URL")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return errors.New("must use https (plain http is allowed only to a loopback host)")
		}
	default:
		return errors.New("must use https")
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// expand fills a checked template with the escaped tag and escaped name.
func expand(t, tag, escapedName string) (*url.URL, error) {
	s := strings.ReplaceAll(t, "{tag}", url.PathEscape(tag))
	s = strings.ReplaceAll(s, "{name}", escapedName)
	return parseChecked(s)
}

func parseChecked(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%w: url %s does not parse", ErrInvalid, clip(s))
	}
	if err := checkBase(u); err != nil {
		return nil, fmt.Errorf("%w: url %s %v", ErrInvalid, show(u), err)
	}
	return u, nil
}

func mustParse(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		return &url.URL{}
	}
	return u
}

// lastSegment is the unescaped last element of u's path.
func lastSegment(u *url.URL) (string, error) {
	p := u.EscapedPath()
	return url.PathUnescape(p[strings.LastIndex(p, "/")+1:])
}

// addPathSuffix appends suffix to the path of URL template t (before any query).
func addPathSuffix(t, suffix string) string {
	if i := strings.IndexAny(t, "?#"); i >= 0 {
		return t[:i] + suffix + t[i:]
	}
	return t + suffix
}

// clip shortens s (which may come from the network) for an error message.
func clip(s string) string {
	if len(s) <= maxShown {
		return s
	}
	cut := maxShown
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// showRaw is a configured URL (or template) for an error message, without credentials or
// query (which may carry a token).
func showRaw(s string) string {
	u, err := url.Parse(s)
	switch {
	case err == nil && u.User == nil && u.RawQuery == "" && !u.ForceQuery:
		return clip(s)
	case err == nil:
		return show(u)
	case strings.ContainsAny(s, "@?"):
		return "(a URL that does not parse)"
	}
	return clip(s)
}

// show is u for an error message: no credentials, query or fragment (signed download URLs
// carry tokens in their query), and clipped.
func show(u *url.URL) string {
	if u == nil {
		return "<nil>"
	}
	c := *u
	c.User, c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = nil, "", false, "", ""
	return clip(c.String())
}

// getter does GET requests with the limits, redirect policy and error mapping shared by the
// URL and GitHub sources.
type getter struct {
	client *http.Client
	// apiOrigin is the one scheme://host[:port] of the GitHub API (nil for none): the only
	// place the token and GitHub's API headers are sent to.
	apiOrigin *url.URL
	token     string
}

func newGetter(c *http.Client, apiOrigin *url.URL, token string) *getter {
	var client http.Client
	if c != nil {
		client = *c
	} else {
		client.Transport = defaultTransport()
	}
	client.Jar = nil // no cookies: they would be credentials sent wherever a redirect leads
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &getter{client: &client, apiOrigin: apiOrigin, token: token}
}

func defaultTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = docTimeout
	t.ExpectContinueTimeout = time.Second
	return t
}

// sameOrigin reports whether a and b have the same scheme, host and port.
func sameOrigin(a, b *url.URL) bool {
	return a != nil && b != nil && strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Host, b.Host)
}

// request does one GET of u, following redirects itself, and returns the final response
// when it is 200 OK. Any other status is an error: 404 and 410 wrap notFound.
func (g *getter) request(ctx context.Context, u *url.URL, what string, notFound error, accept string) (*http.Response, error) {
	first := u
	for hop := 0; ; hop++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, fmt.Errorf("%w: %s %s: %v", ErrInvalid, what, show(u), err)
		}
		req.Header.Set("User-Agent", "tamperguard")
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		// Credentials go only to the origin they are meant for, never to a redirect target
		// on another host or port.
		if sameOrigin(u, g.apiOrigin) {
			req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
			if g.token != "" {
				req.Header.Set("Authorization", "Bearer "+g.token)
			}
		}
		resp, err := g.client.Do(req)
		if err != nil {
			return nil, g.transportError(ctx, what, u, err)
		}
		switch resp.StatusCode {
		case http.StatusOK:
			return resp, nil
		case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
			http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			loc := resp.Header.Get("Location")
			discard(resp)
			if hop >= maxRedirects {
				return nil, fmt.Errorf("%w: %s %s: more than %d redirects", ErrInvalid, what, show(first), maxRedirects)
			}
			next, err := u.Parse(loc)
			if err != nil || loc == "" {
				return nil, fmt.Errorf("%w: %s %s: redirect to an unusable location %q", ErrInvalid, what, show(u), clip(loc))
			}
			if err := checkBase(next); err != nil {
				return nil, fmt.Errorf("%w: %s %s: redirect to %s refused: %v", ErrInvalid, what, show(u), show(next), err)
			}
			if u.Scheme == "https" && next.Scheme != "https" {
				return nil, fmt.Errorf("%w: %s %s: redirect from https to %s refused", ErrInvalid, what, show(u), show(next))
			}
			next.Fragment, next.RawFragment = "", ""
			u = next
		default:
			err := statusError(what, u, resp, notFound)
			discard(resp)
			return nil, err
		}
	}
}

func (g *getter) transportError(ctx context.Context, what string, u *url.URL, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its message repeats the URL, query and all
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %s %s: %w", ErrUnreachable, what, show(u), ctx.Err())
	}
	return fmt.Errorf("%w: %s %s: %w", ErrUnreachable, what, show(u), err)
}

// redact removes the token from an error's message (a hostile server could echo it back in
// a redirect location, say), keeping the sentinels that callers test with errors.Is.
func (g *getter) redact(err error) error {
	if err == nil || g.token == "" || !strings.Contains(err.Error(), g.token) {
		return err
	}
	var kept []error
	for _, s := range []error{ErrNotFound, ErrUnsigned, ErrFileMissing, ErrUnreachable, ErrInvalid,
		signing.ErrRefused, checksum.ErrMalformed, checksum.ErrTooLarge, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, s) {
			kept = append(kept, s)
		}
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), g.token, "[token]"), sentinels: kept}
}

type redactedError struct {
	msg       string
	sentinels []error
}

func (e *redactedError) Error() string   { return e.msg }
func (e *redactedError) Unwrap() []error { return e.sentinels }

// statusError maps an HTTP status to the release errors.
func statusError(what string, u *url.URL, resp *http.Response, notFound error) error {
	code := resp.StatusCode
	status := "HTTP " + strconv.Itoa(code)
	if t := http.StatusText(code); t != "" {
		status += " " + t
	}
	limited := resp.Header.Get("X-RateLimit-Remaining") == "0" || resp.Header.Get("Retry-After") != ""
	switch {
	case code == http.StatusNotFound || code == http.StatusGone:
		return fmt.Errorf("%w: %s %s: %s", notFound, what, show(u), status)
	case code == http.StatusTooManyRequests || (code == http.StatusForbidden && limited):
		msg := "rate limited"
		if reset, err := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64); err == nil && reset > 0 {
			msg += " until " + time.Unix(reset, 0).UTC().Format(time.RFC3339)
		}
		return fmt.Errorf("%w: %s %s: %s (%s)", ErrUnreachable, what, show(u), msg, status)
	case code >= 500:
		return fmt.Errorf("%w: %s %s: %s", ErrUnreachable, what, show(u), status)
	case code >= 400:
		return fmt.Errorf("%w: %s %s: %s", ErrInvalid, what, show(u), status)
	default:
		return fmt.Errorf("%w: %s %s: unexpected %s", ErrInvalid, what, show(u), status)
	}
}

// discard drains a little of an unwanted body (so the connection can be reused) and closes it.
func discard(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

// document downloads a small document of at most limit bytes. A missing one wraps
// ErrNotFound; a larger one is refused (ErrInvalid), never truncated.
func (g *getter) document(ctx context.Context, u *url.URL, what string, limit int64, accept string) ([]byte, error) {
	data, _, err := g.documentWithHeader(ctx, u, what, limit, accept)
	return data, err
}

// documentWithHeader is document that also returns the response's header (GitHub's Link).
func (g *getter) documentWithHeader(ctx context.Context, u *url.URL, what string, limit int64, accept string) ([]byte, http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, docTimeout)
	defer cancel()
	resp, err := g.request(ctx, u, what, ErrNotFound, accept)
	if err != nil {
		return nil, nil, err
	}
	defer discard(resp)
	if resp.ContentLength > limit {
		return nil, nil, fmt.Errorf("%w: %s %s: %d bytes, more than the limit of %d", ErrInvalid, what, show(u), resp.ContentLength, limit)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, nil, g.transportError(ctx, what, u, err)
	}
	if int64(len(data)) > limit {
		return nil, nil, fmt.Errorf("%w: %s %s: more than the limit of %d bytes", ErrInvalid, what, show(u), limit)
	}
	return data, resp.Header, nil
}

// stream opens a released file for the caller to hash. A missing one wraps notFound.
func (g *getter) stream(ctx context.Context, u *url.URL, what string, notFound error, accept string) (io.ReadCloser, error) {
	ctx, cancel := context.WithTimeout(ctx, fileTimeout)
	resp, err := g.request(ctx, u, what, notFound, accept)
	if err != nil {
		cancel()
		return nil, err
	}
	return &cancelBody{ReadCloser: resp.Body, cancel: cancel}, nil
}

// cancelBody releases the request's context when the body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
