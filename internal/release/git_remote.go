package release

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// gitRemote reads a repository over git's smart HTTP protocol, version 2, and nothing
// else: every request names exactly the objects it wants (tag objects alone, then one
// commit, one tree at a time, one blob), and every response is read under a byte budget
// and parsed as it arrives, so nothing large is held before a signature verified.
//
// Protocol v2 is what lets a client want any object by id (git's upload-pack does not
// restrict wants in v2; in v0 it needs uploadpack.allowAnySHA1InWant or
// allowReachableSHA1InWant). A server that also advertises "filter" (partial clone:
// uploadpack.allowFilter) sends a commit or a tree alone with "filter tree:0"; without it
// (or when it refuses that filter) a commit comes with its whole tree, which is streamed
// through, keeping only the trees (the fallback, bounded by gitLimits.fallback*).
type gitRemote struct {
	base       *url.URL // the repository, without credentials
	user, pass string   // HTTP basic credentials from the configured URL, if any
	display    string   // base for messages
	client     *http.Client
	lim        *gitLimits

	mu     sync.Mutex
	caps   *remoteCaps
	capsAt time.Time
}

// capsTTL bounds how long a server's advertised capabilities are reused.
const capsTTL = 10 * time.Minute

// remoteCaps is what the server's v2 advertisement says it can do.
type remoteCaps struct {
	post         *url.URL // where commands go (after the advertisement's redirects)
	creds        bool     // post is on the configured origin: credentials may be sent
	filter       bool     // fetch accepts "filter"
	shallow      bool     // fetch accepts "deepen"
	objectFormat bool     // the server named its object format (sha1)
	agent        bool     // the server takes an agent line
}

const (
	gitUploadPackAdvert  = "application/x-git-upload-pack-advertisement"
	gitUploadPackRequest = "application/x-git-upload-pack-request"
	gitUploadPackResult  = "application/x-git-upload-pack-result"
	gitUserAgent         = "tamperguard"
	maxPktPayload        = 65516
	maxCapsBytes         = 64 << 10
)

func newGitRemote(u *url.URL, lim *gitLimits) *gitRemote {
	r := &gitRemote{lim: lim}
	c := *u
	if c.User != nil {
		r.user = c.User.Username()
		r.pass, _ = c.User.Password()
	}
	c.User, c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = nil, "", false, "", ""
	c.Path = strings.TrimSuffix(c.Path, "/")
	c.RawPath = ""
	r.base = &c
	r.display = c.String()
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 30 * time.Second
	r.client = &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return r
}

// checkGitURL accepts https, or http to a loopback host (tests); no query or fragment.
func checkGitURL(u *url.URL) error {
	if u.Host == "" || u.Opaque != "" {
		return errors.New("is not an absolute URL")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return errors.New("must not have a query or fragment")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !gitLoopback(u.Hostname()) {
			return errors.New("must use https (plain http is allowed only to a loopback host)")
		}
	default:
		return errors.New("must use https")
	}
	return nil
}

func gitLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redactURL is a repository URL for messages and keys: userinfo removed.
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

// capabilities returns the server's v2 capabilities, asking at most every capsTTL.
func (r *gitRemote) capabilities(ctx context.Context) (*remoteCaps, error) {
	r.mu.Lock()
	if r.caps != nil && time.Since(r.capsAt) < capsTTL {
		c := r.caps
		r.mu.Unlock()
		return c, nil
	}
	r.mu.Unlock()
	c, err := r.advertise(ctx)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.caps, r.capsAt = c, time.Now()
	r.mu.Unlock()
	return c, nil
}

// forgetCaps makes the next request ask for the capabilities again (after a failure that
// may come from a changed server).
func (r *gitRemote) forgetCaps() {
	r.mu.Lock()
	r.caps = nil
	r.mu.Unlock()
}

func (r *gitRemote) advertise(ctx context.Context) (*remoteCaps, error) {
	u := *r.base
	u.Path += "/info/refs"
	u.RawQuery = "service=git-upload-pack"
	cur := &u
	var resp *http.Response
	for hop := 0; ; hop++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, cur.String(), nil)
		if err != nil {
			return nil, fmt.Errorf("%w: git source %s: %v", ErrInvalid, r.display, err)
		}
		r.headers(req, sameGitOrigin(cur, r.base))
		resp, err = r.client.Do(req)
		if err != nil {
			return nil, r.transportError(ctx, "reading the capabilities", err)
		}
		if resp.StatusCode < 300 || resp.StatusCode > 399 {
			break
		}
		loc := resp.Header.Get("Location")
		drain(resp)
		if hop >= 5 {
			return nil, fmt.Errorf("%w: git source %s: more than 5 redirects", ErrUnreachable, r.display)
		}
		next, err := cur.Parse(loc)
		if err != nil || loc == "" {
			return nil, fmt.Errorf("%w: git source %s: redirect to an unusable location", ErrUnreachable, r.display)
		}
		next.User = nil
		if err := checkGitURL(&url.URL{Scheme: next.Scheme, Host: next.Host}); err != nil || (cur.Scheme == "https" && next.Scheme != "https") {
			return nil, fmt.Errorf("%w: git source %s: redirect to %s refused", ErrUnreachable, r.display, redactURL(&url.URL{Scheme: next.Scheme, Host: next.Host, Path: next.Path}))
		}
		if !strings.HasSuffix(next.Path, "/info/refs") {
			return nil, fmt.Errorf("%w: git source %s: redirect to %s, which is not a repository's info/refs", ErrUnreachable, r.display, redactURL(&url.URL{Scheme: next.Scheme, Host: next.Host, Path: next.Path}))
		}
		cur = next
	}
	defer drain(resp)
	if err := r.statusError("reading the capabilities", resp); err != nil {
		return nil, err
	}
	if ct := resp.Header.Get("Content-Type"); ct != gitUploadPackAdvert {
		return nil, fmt.Errorf("%w: git source %s is not a smart git HTTP server (Content-Type %s)", ErrUnreachable, r.display, quoteBytes([]byte(ct), 60))
	}
	p := newPktReader(&budgetReader{r: resp.Body, left: maxCapsBytes, what: "the capability advertisement"})
	c := &remoteCaps{post: &url.URL{Scheme: cur.Scheme, Host: cur.Host, Path: strings.TrimSuffix(cur.Path, "/info/refs") + "/git-upload-pack"}}
	c.creds = sameGitOrigin(cur, r.base)
	kind, line, err := p.read()
	if err != nil {
		return nil, r.protocolError("reading the capabilities", err)
	}
	if kind == pktData && bytes.HasPrefix(line, []byte("# service=")) {
		if kind, _, err = p.read(); err != nil || kind != pktFlush {
			return nil, r.protocolError("reading the capabilities", errOr(err, "no flush after the service line"))
		}
		if kind, line, err = p.read(); err != nil {
			return nil, r.protocolError("reading the capabilities", err)
		}
	}
	if kind != pktData || string(bytes.TrimSuffix(line, []byte("\n"))) != "version 2" {
		return nil, fmt.Errorf("%w: git source %s does not speak git protocol version 2, which tamperguard needs to fetch objects one by one", ErrUnreachable, r.display)
	}
	var lsRefs, fetch bool
	for {
		kind, line, err := p.read()
		if err != nil {
			return nil, r.protocolError("reading the capabilities", err)
		}
		if kind == pktFlush {
			break
		}
		key, val, _ := strings.Cut(strings.TrimSuffix(string(line), "\n"), "=")
		switch key {
		case "agent":
			c.agent = true
		case "ls-refs":
			lsRefs = true
		case "fetch":
			fetch = true
			for _, f := range strings.Fields(val) {
				switch f {
				case "filter":
					c.filter = true
				case "shallow":
					c.shallow = true
				}
			}
		case "object-format":
			if val != "sha1" {
				return nil, fmt.Errorf("%w: git source %s uses object format %s; only sha1 repositories are supported", ErrUnreachable, r.display, quoteBytes([]byte(val), 20))
			}
			c.objectFormat = true
		}
	}
	if !lsRefs || !fetch {
		return nil, fmt.Errorf("%w: git source %s does not offer ls-refs and fetch", ErrUnreachable, r.display)
	}
	return c, nil
}

func errOr(err error, msg string) error {
	if err != nil {
		return err
	}
	return errors.New(msg)
}

func sameGitOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Host, b.Host)
}

func (r *gitRemote) headers(req *http.Request, creds bool) {
	req.Header.Set("User-Agent", gitUserAgent)
	req.Header.Set("Git-Protocol", "version=2")
	if creds && (r.user != "" || r.pass != "") {
		req.SetBasicAuth(r.user, r.pass)
	}
}

// command posts one v2 command and returns the response body, read under limit bytes.
func (r *gitRemote) command(ctx context.Context, what, command string, args []string, limit int64) (*pktReader, func(), error) {
	c, err := r.capabilities(ctx)
	if err != nil {
		return nil, nil, err
	}
	var body bytes.Buffer
	writePkt(&body, "command="+command+"\n")
	if c.agent {
		writePkt(&body, "agent="+gitUserAgent+"\n")
	}
	if c.objectFormat {
		writePkt(&body, "object-format=sha1\n")
	}
	body.WriteString("0001")
	for _, a := range args {
		writePkt(&body, a+"\n")
	}
	body.WriteString("0000")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.post.String(), &body)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: git source %s: %v", ErrInvalid, r.display, err)
	}
	r.headers(req, c.creds)
	req.Header.Set("Content-Type", gitUploadPackRequest)
	req.Header.Set("Accept", gitUploadPackResult)
	resp, err := r.client.Do(req)
	if err != nil {
		r.forgetCaps()
		return nil, nil, r.transportError(ctx, what, err)
	}
	if err := r.statusError(what, resp); err != nil {
		drain(resp)
		r.forgetCaps()
		return nil, nil, err
	}
	if ct := resp.Header.Get("Content-Type"); ct != gitUploadPackResult {
		drain(resp)
		r.forgetCaps()
		return nil, nil, fmt.Errorf("%w: git source %s: %s: unexpected Content-Type %s", ErrUnreachable, r.display, what, quoteBytes([]byte(ct), 60))
	}
	p := newPktReader(&budgetReader{r: resp.Body, left: limit, limit: limit, what: "the response to " + what})
	return p, func() { drain(resp) }, nil
}

func writePkt(b *bytes.Buffer, s string) {
	fmt.Fprintf(b, "%04x%s", len(s)+4, s)
}

// remoteRef is one line of ls-refs.
type remoteRef struct {
	name   string // the tag name, without refs/tags/
	id     oid
	peeled oid // the object an annotated tag finally points at; zero for a lightweight tag
}

// lsRefs lists refs/tags/<prefix>*, peeled.
func (r *gitRemote) lsRefs(ctx context.Context, prefix string) ([]remoteRef, error) {
	p, done, err := r.command(ctx, "listing tags", "ls-refs", []string{"peel", "ref-prefix refs/tags/" + prefix}, r.lim.refsBytes)
	if err != nil {
		return nil, err
	}
	defer done()
	var out []remoteRef
	for {
		kind, line, err := p.read()
		if err != nil {
			return nil, r.protocolError("listing tags", err)
		}
		if kind == pktFlush {
			return out, nil
		}
		if kind != pktData {
			return nil, r.protocolError("listing tags", errors.New("unexpected delimiter"))
		}
		fields := strings.Split(strings.TrimSuffix(string(line), "\n"), " ")
		if len(fields) < 2 {
			return nil, r.protocolError("listing tags", fmt.Errorf("ref line %s", quoteBytes(line, 80)))
		}
		id, ok := parseOID([]byte(fields[0]))
		if !ok {
			if fields[0] == "unborn" {
				continue
			}
			return nil, r.protocolError("listing tags", fmt.Errorf("ref line %s has no object id", quoteBytes(line, 80)))
		}
		name, ok := strings.CutPrefix(fields[1], "refs/tags/")
		if !ok {
			continue // not asked for
		}
		ref := remoteRef{name: name, id: id}
		for _, attr := range fields[2:] {
			if v, ok := strings.CutPrefix(attr, "peeled:"); ok {
				if ref.peeled, ok = parseOID([]byte(v)); !ok {
					return nil, r.protocolError("listing tags", fmt.Errorf("peeled id in %s", quoteBytes(line, 80)))
				}
			}
		}
		if len(out) >= r.lim.maxTags {
			return nil, fmt.Errorf("%w: git source %s has more than %d tags", ErrInvalid, r.display, r.lim.maxTags)
		}
		out = append(out, ref)
	}
}

// listTags lists the tags; a tag without a peeled id in the listing is lightweight (the
// ref names a commit, not a tag object).
func (r *gitRemote) listTags(ctx context.Context, exact string) ([]tagRef, error) {
	refs, err := r.lsRefs(ctx, exact)
	if err != nil {
		return nil, err
	}
	out := make([]tagRef, 0, len(refs))
	for _, ref := range refs {
		if exact != "" && ref.name != exact {
			continue
		}
		out = append(out, tagRef{name: ref.name, id: ref.id, peeled: ref.peeled, annotated: !ref.peeled.isZero()})
	}
	return out, nil
}

// fetch asks for objects and hands the pack to read. args are the fetch arguments besides
// the wants and "done".
func (r *gitRemote) fetch(ctx context.Context, what string, wants, haves []oid, args []string, bodyLimit int64, read func(*sideband) error) error {
	a := []string{"no-progress", "ofs-delta"}
	a = append(a, args...)
	for _, w := range wants {
		a = append(a, "want "+w.String())
	}
	for _, h := range haves {
		a = append(a, "have "+h.String())
	}
	a = append(a, "done")
	p, done, err := r.command(ctx, what, "fetch", a, bodyLimit)
	if err != nil {
		return err
	}
	defer done()
	for {
		kind, line, err := p.read()
		if err != nil {
			return r.protocolError(what, err)
		}
		if kind != pktData {
			return r.protocolError(what, errors.New("the response has no packfile section"))
		}
		switch strings.TrimSuffix(string(line), "\n") {
		case "packfile":
			sb := &sideband{p: p}
			if err := read(sb); err != nil {
				var le *packLimitError
				if errors.As(err, &le) || errors.Is(err, ErrGitIntegrity) || errors.Is(err, ErrInvalid) {
					return err
				}
				if sb.serverErr != nil {
					return r.protocolError(what, sb.serverErr)
				}
				return r.protocolError(what, err)
			}
			if err := sb.drain(); err != nil {
				return r.protocolError(what, err)
			}
			return nil
		case "acknowledgments", "shallow-info", "wanted-refs", "packfile-uris":
			for {
				kind, _, err := p.read()
				if err != nil {
					return r.protocolError(what, err)
				}
				if kind == pktDelim {
					break
				}
				if kind == pktFlush {
					return r.protocolError(what, errors.New("the response ended before the pack"))
				}
			}
		default:
			return r.protocolError(what, fmt.Errorf("unknown section %s", quoteBytes(line, 40)))
		}
	}
}

// object fetches one object the signed tag leads to. With a server that filters, the
// request names exactly that object: a commit with "deepen 1" and "filter tree:0" (hosts
// such as GitHub allow no deeper tree filter), a tree with "filter tree:0" (a wanted
// object is always sent, its contents are not), a blob as it is. Without filtering, a
// commit or tree comes with everything beneath it: the trees are kept (they are what the
// path to the checksum file needs), the rest streamed through and dropped.
func (r *gitRemote) object(ctx context.Context, id oid, t objType, limit int64) (map[oid]*packObject, error) {
	c, err := r.capabilities(ctx)
	if err != nil {
		return nil, err
	}
	filter := c.filter
	for {
		objs, err := r.objectOnce(ctx, c, filter, id, t, limit)
		var se *serverError
		if err != nil && filter && t != objBlob && errors.As(err, &se) && strings.Contains(se.msg, "filter") {
			// The server advertises filters but refuses this one: fetch without.
			r.mu.Lock()
			if r.caps != nil {
				cp := *r.caps
				cp.filter = false
				r.caps = &cp
			}
			r.mu.Unlock()
			filter = false
			continue
		}
		return objs, err
	}
}

func (r *gitRemote) objectOnce(ctx context.Context, c *remoteCaps, filter bool, id oid, t objType, limit int64) (map[oid]*packObject, error) {
	var args []string
	only := func(o objType) int64 {
		if o == t {
			return limit
		}
		return -1
	}
	pol := collectPolicy{strict: true, limit: only, keep: limit, stream: packStreamLimits{objects: 4, inflate: limit}}
	switch {
	case t == objBlob:
		// A blob has nothing beneath it.
	case filter && (t == objTree || c.shallow):
		if t == objCommit {
			args = append(args, "deepen 1")
		}
		args = append(args, "filter tree:0")
	default:
		if t == objCommit && c.shallow {
			args = append(args, "deepen 1")
		}
		pol = collectPolicy{strict: false, keep: r.lim.fallbackKeep, limit: func(o objType) int64 {
			switch {
			case o == t:
				return limit
			case o == objTree:
				return r.lim.tree
			}
			return -1
		}, stream: packStreamLimits{objects: r.lim.fallbackObjects, inflate: r.lim.fallbackInflate}}
	}
	what := fmt.Sprintf("fetching %s %s", t, id.short())
	body := pol.stream.inflate + pol.stream.inflate/64 + 64<<10 + int64(pol.stream.objects)*64
	if !pol.strict {
		body = r.lim.fallbackPack
	}
	var objs map[oid]*packObject
	err := r.fetch(ctx, what, []oid{id}, nil, args, body, func(sb *sideband) error {
		var err error
		objs, err = collectPack(sb, pol)
		return err
	})
	if err != nil {
		return nil, r.objectError(what, err)
	}
	return objs, nil
}

// objectError maps what went wrong reading a pack.
func (r *gitRemote) objectError(what string, err error) error {
	var le *packLimitError
	switch {
	case errors.As(err, &le):
		return fmt.Errorf("%w: git source %s: %s: %v", ErrInvalid, r.display, what, le)
	case errors.Is(err, ErrGitIntegrity):
		return fmt.Errorf("%w: git source %s: %s: %w", ErrInvalid, r.display, what, err)
	}
	return err
}

// tagObjects fetches annotated tags' objects in one request: want each tag, have the
// commit it peels to, so that the server sends the tag objects and nothing else. A pack
// over a limit (a tag object too large) fails the request; the caller splits the batch.
func (r *gitRemote) tagObjects(ctx context.Context, refs []tagRef) (map[oid][]byte, map[oid]error, int64, error) {
	var wants, haves []oid
	seenW, seenH := map[oid]bool{}, map[oid]bool{}
	for _, ref := range refs {
		if !seenW[ref.id] {
			seenW[ref.id] = true
			wants = append(wants, ref.id)
		}
		if !ref.peeled.isZero() && !seenH[ref.peeled] {
			seenH[ref.peeled] = true
			haves = append(haves, ref.peeled)
		}
	}
	keep := min(int64(len(wants))*r.lim.tagObject, r.lim.tagBatchKeep)
	pol := collectPolicy{strict: true, keep: keep, limit: func(o objType) int64 {
		if o == objTag {
			return r.lim.tagObject
		}
		return -1
	}, stream: packStreamLimits{objects: uint32(4*len(wants) + 16), inflate: 2 * keep}}
	body := 2*keep + keep/32 + 64<<10 + int64(pol.stream.objects)*64
	var objs map[oid]*packObject
	var inflated int64
	err := r.fetch(ctx, fmt.Sprintf("fetching %d tag objects", len(wants)), wants, haves, nil, body, func(sb *sideband) error {
		var err error
		objs, err = collectPack(sb, pol)
		for _, o := range objs {
			inflated += int64(len(o.data))
		}
		return err
	})
	if err != nil {
		return nil, nil, inflated, err
	}
	out := make(map[oid][]byte, len(objs))
	for id, o := range objs {
		if o.typ == objTag {
			out[id] = o.data
		}
	}
	return out, nil, inflated, nil
}

// openBlob streams one blob, checking its id as the last byte is read.
func (r *gitRemote) openBlob(ctx context.Context, id oid, limit int64) (io.ReadCloser, error) {
	what := "fetching blob " + id.short()
	p, done, err := r.command(ctx, what, "fetch", []string{"no-progress", "want " + id.String(), "done"}, limit+limit/64+64<<10)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (io.ReadCloser, error) {
		done()
		return nil, err
	}
	for {
		kind, line, err := p.read()
		if err != nil {
			return fail(r.protocolError(what, err))
		}
		if kind != pktData {
			return fail(r.protocolError(what, errors.New("the response has no packfile section")))
		}
		if strings.TrimSuffix(string(line), "\n") == "packfile" {
			break
		}
		for kind != pktDelim {
			if kind, _, err = p.read(); err != nil || kind == pktFlush {
				return fail(r.protocolError(what, errOr(err, "the response ended before the pack")))
			}
		}
	}
	sb := &sideband{p: p}
	ps, err := newPackStream(sb, packStreamLimits{objects: 1, inflate: limit})
	if err != nil {
		return fail(r.objectError(what, r.packErr(sb, err)))
	}
	e, _, err := ps.next()
	if err != nil {
		return fail(r.protocolError(what, r.packErr(sb, err)))
	}
	if e.kind != int8(objBlob) {
		return fail(fmt.Errorf("%w: git source %s: %s: the server sent a %s entry", ErrInvalid, r.display, what, objType(e.kind)))
	}
	if e.size > limit {
		return fail(fmt.Errorf("%w: git source %s: %s: %v", ErrInvalid, r.display, what, &packLimitError{what: "a blob", size: e.size, limit: limit}))
	}
	data, err := ps.data(e)
	if err != nil {
		return fail(r.objectError(what, err))
	}
	return &verifyingReader{r: data, h: newObjectHasher(objBlob, e.size), want: id, t: objBlob, close: func() error { done(); return nil }}, nil
}

func (r *gitRemote) packErr(sb *sideband, err error) error {
	if sb.serverErr != nil {
		return sb.serverErr
	}
	return err
}

func (r *gitRemote) transportError(ctx context.Context, what string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its message repeats the URL
	}
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return fmt.Errorf("%w: git source %s: %s: %w", ErrUnreachable, r.display, what, err)
}

func (r *gitRemote) protocolError(what string, err error) error {
	var le *packLimitError
	if errors.As(err, &le) {
		return fmt.Errorf("%w: git source %s: %s: %v", ErrInvalid, r.display, what, le)
	}
	var se *serverError
	if errors.As(err, &se) && se.notOurRef() {
		return fmt.Errorf("%w: git source %s: %s: %w", ErrNotFound, r.display, what, se)
	}
	return fmt.Errorf("%w: git source %s: %s: %w", ErrUnreachable, r.display, what, err)
}

func (r *gitRemote) statusError(what string, resp *http.Response) error {
	code := resp.StatusCode
	status := "HTTP " + strconv.Itoa(code) + " " + http.StatusText(code)
	switch {
	case code == http.StatusOK:
		return nil
	case code == http.StatusNotFound || code == http.StatusGone:
		return fmt.Errorf("%w: git source %s: %s: %s (no such repository)", ErrNotFound, r.display, what, status)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return fmt.Errorf("%w: git source %s: %s: %s: the repository needs credentials or refuses them", ErrUnreachable, r.display, what, status)
	case code == http.StatusTooManyRequests || code >= 500:
		return fmt.Errorf("%w: git source %s: %s: %s", ErrUnreachable, r.display, what, status)
	default:
		return fmt.Errorf("%w: git source %s: %s: unexpected %s", ErrUnreachable, r.display, what, status)
	}
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

// budgetReader fails, rather than ends, when more than left bytes come.
type budgetReader struct {
	r     io.Reader
	left  int64
	limit int64
	what  string
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.r.Read(p)
	if int64(n) > b.left {
		b.left = -1
		return 0, &packLimitError{what: b.what, limit: b.limit}
	}
	b.left -= int64(n)
	return n, err
}

// Packet-line kinds.
const (
	pktData = iota
	pktFlush
	pktDelim
	pktEnd
)

// pktReader reads git packet lines.
type pktReader struct {
	r   *bufio.Reader
	buf []byte
}

func newPktReader(r io.Reader) *pktReader {
	return &pktReader{r: bufio.NewReaderSize(r, 64<<10), buf: make([]byte, maxPktPayload)}
}

// serverError is an "ERR" packet or a side-band error message: the server's words.
type serverError struct{ msg string }

func (e *serverError) Error() string { return "the server says " + quoteBytes([]byte(e.msg), 200) }

func (e *serverError) notOurRef() bool {
	return strings.Contains(e.msg, "not our ref") || strings.Contains(e.msg, "no such object") || strings.Contains(e.msg, "not found")
}

// read returns the next packet. The payload is valid until the next call.
func (p *pktReader) read() (int, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(p.r, hdr[:]); err != nil {
		return 0, nil, noEOF(err)
	}
	n, err := strconv.ParseUint(string(hdr[:]), 16, 16)
	if err != nil {
		return 0, nil, fmt.Errorf("bad packet length %s", quoteBytes(hdr[:], 8))
	}
	switch n {
	case 0:
		return pktFlush, nil, nil
	case 1:
		return pktDelim, nil, nil
	case 2:
		return pktEnd, nil, nil
	case 3:
		return 0, nil, errors.New("bad packet length 3")
	}
	if n-4 > maxPktPayload {
		return 0, nil, fmt.Errorf("packet of %d bytes is over the protocol's limit", n)
	}
	b := p.buf[:n-4]
	if _, err := io.ReadFull(p.r, b); err != nil {
		return 0, nil, noEOF(err)
	}
	if msg, ok := bytes.CutPrefix(b, []byte("ERR ")); ok {
		return 0, nil, &serverError{msg: strings.TrimSpace(string(msg))}
	}
	return pktData, b, nil
}

// sideband reads the pack out of the packfile section's band 1; it is a flate.Reader.
type sideband struct {
	p         *pktReader
	buf       []byte
	eof       bool
	serverErr error
}

func (s *sideband) fill() error {
	for len(s.buf) == 0 {
		if s.eof {
			return io.EOF
		}
		kind, pl, err := s.p.read()
		if err != nil {
			var se *serverError
			if errors.As(err, &se) {
				s.serverErr = se
			}
			return err
		}
		switch {
		case kind == pktFlush:
			s.eof = true
			return io.EOF
		case kind != pktData || len(pl) == 0:
			return errors.New("unexpected packet in the pack")
		}
		switch pl[0] {
		case 1:
			s.buf = pl[1:]
		case 2: // progress
		case 3:
			s.serverErr = &serverError{msg: strings.TrimSpace(string(pl[1:]))}
			return s.serverErr
		default:
			return fmt.Errorf("unknown side-band %d", pl[0])
		}
	}
	return nil
}

func (s *sideband) ReadByte() (byte, error) {
	if err := s.fill(); err != nil {
		return 0, err
	}
	b := s.buf[0]
	s.buf = s.buf[1:]
	return b, nil
}

func (s *sideband) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := s.fill(); err != nil {
		return 0, err
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// drain reads to the end of the section; nothing but the pack may be in it.
func (s *sideband) drain() error {
	if len(s.buf) > 0 {
		return errors.New("data after the pack")
	}
	if err := s.fill(); err != io.EOF {
		return errOr(err, "data after the pack")
	}
	return nil
}

// verifyingReader streams an object's content and fails at its end unless the bytes hash
// to the wanted id: the caller never gets a clean EOF on wrong bytes.
type verifyingReader struct {
	r     io.Reader
	h     *objectHasher
	want  oid
	t     objType
	close func() error
	err   error
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF {
		got, collision := v.h.sum()
		switch {
		case collision:
			err = fmt.Errorf("%w: %w: %s %s carries a SHA-1 collision attack", ErrInvalid, ErrGitIntegrity, v.t, v.want)
		case got != v.want:
			err = fmt.Errorf("%w: %w: %s %s hashes to %s", ErrInvalid, ErrGitIntegrity, v.t, v.want, got)
		}
	}
	v.err = err
	return n, err
}

func (v *verifyingReader) Close() error {
	if v.close == nil {
		return nil
	}
	c := v.close
	v.close = nil
	return c()
}

// validTagName says whether name (without refs/tags/) is a tag name git would create.
func validTagName(name string) bool {
	return len(name) <= maxTagName && plumbing.NewTagReferenceName(name).Validate() == nil
}
