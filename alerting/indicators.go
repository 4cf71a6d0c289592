package alerting

import (
	"bytes"
	"net/netip"
	"net/url"
	"strings"
)

// Bounds of the indicators listed in an alert.
const (
	maxIndicators     = 20
	maxIndicatorRunes = 200
	maxIndicatorScan  = 16 << 20 // bytes of added lines scanned
	maxTokenBytes     = 2048     // longer tokens are not URLs or hosts a person can act on
)

// extractor collects the URLs, hosts and IP addresses that text reaches, in order of first
// appearance, deduplicated, defanged for display.
type extractor struct {
	seen    map[string]bool
	out     []string
	more    int
	scanned int
}

func newExtractor() *extractor { return &extractor{seen: map[string]bool{}} }

func (e *extractor) list() ([]string, int) { return e.out, e.more }

func (e *extractor) add(key, shown string) {
	if e.seen[key] {
		return
	}
	e.seen[key] = true
	if len(e.out) == maxIndicators {
		e.more++
		return
	}
	e.out = append(e.out, display(shown, maxIndicatorRunes))
}

// delimiter ends a token: whitespace, quotes, brackets and shell punctuation.
func delimiter(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f', '"', '\'', '`', '<', '>', '(', ')', '{', '}', '[', ']',
		',', ';', '|', '\\', '^', '$', '*', '!', '=', '&':
		return true
	}
	return c < 0x20 || c == 0x7f
}

// urlEnd ends a URL: what cannot appear in one unencoded, as written in scripts.
func urlEnd(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f', '"', '\'', '`', '<', '>', '{', '}', '|', '\\', '^', ';':
		return true
	}
	return c < 0x20 || c == 0x7f
}

// scan reads one added line.
func (e *extractor) scan(line []byte) {
	if e.scanned >= maxIndicatorScan {
		return
	}
	if rest := maxIndicatorScan - e.scanned; len(line) > rest {
		line = line[:rest]
	}
	e.scanned += len(line)
	i := 0
	for i < len(line) {
		// Skip delimiters.
		for i < len(line) && delimiter(line[i]) {
			i++
		}
		start := i
		for i < len(line) && !delimiter(line[i]) {
			i++
		}
		if start == i {
			continue
		}
		tok := line[start:i]
		if j := bytes.Index(tok, []byte("://")); j > 0 {
			// A URL runs further than a token: to the first character a URL cannot hold.
			end := i
			for end < len(line) && !urlEnd(line[end]) {
				end++
			}
			e.url(line[start:end], j)
			i = end
			continue
		}
		e.token(tok)
	}
}

// url records a URL whose scheme ends at colon (the index of "://").
func (e *extractor) url(u []byte, colon int) {
	// The scheme is the longest run of scheme characters before "://".
	s := colon
	for s > 0 && schemeChar(u[s-1]) {
		s--
	}
	for s < colon && !isAlpha(u[s]) {
		s++
	}
	if s == colon || len(u)-s > maxTokenBytes {
		return
	}
	raw := string(bytes.TrimRight(u[s:], ".,:!?)]"))
	if parsed, err := url.Parse(raw); err == nil && parsed.Host != "" {
		host := parsed.Hostname()
		e.add("url "+strings.ToLower(raw), defangURL(raw, parsed.Host))
		if addr, err := netip.ParseAddr(host); err == nil {
			e.addr(addr)
		} else if host != "" {
			e.add("host "+strings.ToLower(host), defangHost(host))
		}
		return
	}
	// Not a URL the parser accepts (a host with odd characters): still worth a look.
	e.add("url "+strings.ToLower(raw), strings.Replace(defangScheme(raw), ".", "[.]", -1))
}

func schemeChar(c byte) bool {
	return isAlpha(c) || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'
}

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// token records a bare host or IP address: "attacker.example", "user@host", "1.2.3.4:443",
// "host/path", "2001:db8::1".
func (e *extractor) token(tok []byte) {
	if len(tok) > maxTokenBytes {
		return
	}
	t := string(bytes.TrimRight(tok, ".,:!?"))
	if at := strings.LastIndexByte(t, '@'); at >= 0 {
		t = t[at+1:]
	}
	if slash := strings.IndexByte(t, '/'); slash >= 0 {
		t = t[:slash]
	}
	if t == "" {
		return
	}
	if addr, err := netip.ParseAddr(t); err == nil {
		e.addr(addr)
		return
	}
	if ap, err := netip.ParseAddrPort(t); err == nil {
		e.addr(ap.Addr())
		return
	}
	if colon := strings.IndexByte(t, ':'); colon > 0 && strings.Count(t, ":") == 1 {
		t = t[:colon] // host:port
		if addr, err := netip.ParseAddr(t); err == nil {
			e.addr(addr)
			return
		}
	}
	if hostLike(t) {
		e.add("host "+strings.ToLower(t), defangHost(t))
	}
}

func (e *extractor) addr(a netip.Addr) {
	a = a.Unmap()
	if a.IsLoopback() || a.IsUnspecified() {
		return
	}
	if a.Is6() && strings.Count(a.String(), ":") < 2 {
		return
	}
	e.add("ip "+a.String(), defangHost(a.String()))
}

// bareTLDs are the top-level domains a bare "name.tld" must end in to count as a host.
// Without a scheme, "install.sh", "Makefile.in", "foo.cc", "google.cloud" or "Foo.app" are
// file and module names far more often than hosts, so those TLDs are left out; a URL's host
// counts whatever its TLD.
var bareTLDs = map[string]bool{}

func init() {
	for _, t := range strings.Fields(`com net org info biz io co dev xyz top site online club shop
		live link click me tv ws pw su ru cn tk ml ga cf gq us uk de fr nl eu jp kr br au ca ch se
		es it cz ua ir kp vn tr by kz gov edu mil int onion example test invalid localhost tech
		store space website fun icu buzz cyou rest bar monster lol pro mobi name asia`) {
		bareTLDs[t] = true
	}
}

// hostLike: dotted DNS labels ending in a TLD from bareTLDs.
func hostLike(s string) bool {
	if len(s) > 253 || !strings.Contains(s, ".") {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(isAlpha(c) || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return bareTLDs[strings.ToLower(labels[len(labels)-1])]
}

// defangScheme makes a URL's scheme unclickable: https → hxxps.
func defangScheme(u string) string {
	i := strings.Index(u, "://")
	if i < 0 {
		return u
	}
	scheme := strings.ToLower(u[:i])
	switch scheme {
	case "http", "https":
		scheme = "hxxp" + scheme[4:]
	case "ftp", "ftps", "sftp":
		scheme = strings.Replace(scheme, "ftp", "fxp", 1)
	case "ws", "wss":
		scheme = "wx" + scheme[1:]
	}
	return scheme + u[i:]
}

// defangURL: scheme defanged, and the host's dots and colons bracketed.
func defangURL(u, host string) string {
	d := defangScheme(u)
	i := strings.Index(d, "://") + 3
	j := i + strings.Index(d[i:], host)
	if j < i {
		return strings.Replace(d, ".", "[.]", -1)
	}
	return d[:j] + defangHost(host) + d[j+len(host):]
}

// defangHost brackets the dots and colons of a host or address: attacker[.]example.
func defangHost(h string) string {
	h = strings.ReplaceAll(h, ".", "[.]")
	return strings.ReplaceAll(h, ":", "[:]")
}
