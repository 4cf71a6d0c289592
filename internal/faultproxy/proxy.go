package faultproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// DefaultLogLimit is how many entries Log keeps unless WithLogLimit says otherwise;
// later requests are still counted in Stats.
const DefaultLogLimit = 100_000

// maxDrain bounds the request body the proxy reads and discards before it answers a
// request it does not forward, so that the client reads the answer instead of failing
// to send the rest of its body.
const maxDrain = 64 << 20

// Option configures a proxy.
type Option func(*config)

type config struct {
	preserveHost bool
	logLimit     int
}

// PreserveHost forwards the Host header the client sent instead of the upstream's
// host:port. By default the upstream sees its own host, as if the client had called it
// directly (fake-gcs-server routes path-style XML reads only for its public host).
func PreserveHost() Option { return func(c *config) { c.preserveHost = true } }

// WithLogLimit keeps at most n entries in the log (n <= 0: none).
func WithLogLimit(n int) Option { return func(c *config) { c.logLimit = n } }

// Proxy is a running fault-injecting reverse proxy.
type Proxy struct {
	upstream  *url.URL
	cfg       config
	srv       *httptest.Server
	transport *http.Transport

	// ctx ends when the proxy closes; requests whose answer the client must not be able
	// to cancel (LoseResponse, DelayResponse, Truncate) are forwarded with it.
	ctx    context.Context
	cancel context.CancelFunc

	handlers sync.WaitGroup

	mu      sync.Mutex
	rules   []*Handle
	log     []Entry
	stats   Stats
	seq     int
	changed chan struct{} // closed and replaced whenever a rule is applied or a request ends

	closeOnce sync.Once
}

// Entry is one finished request in the log.
type Entry struct {
	Seq    int    // arrival order, from 1
	Method string // as sent
	URL    string // escaped path and raw query, as sent
	Rule   string // the rule applied ("" if none)
	Fault  Kind   // KindNone if the request was forwarded untouched
	// Status is the status line the client got; 0 if it got none (reset, hang, lost).
	Status int
	// Upstream is the status the upstream answered; 0 if it was not asked or failed.
	Upstream int
	// Note says what happened when it was not a plain answer (e.g. "client gave up",
	// "released", "upstream: ...").
	Note string
	// BytesIn is the request body read from the client; BytesOut the response body
	// written to it.
	BytesIn, BytesOut int64
}

func (e Entry) String() string {
	s := fmt.Sprintf("#%d %s %s -> %d", e.Seq, e.Method, e.URL, e.Status)
	if e.Fault != KindNone {
		s += fmt.Sprintf(" [%s by %q]", e.Fault, e.Rule)
	}
	if e.Upstream != 0 {
		s += fmt.Sprintf(" (upstream %d)", e.Upstream)
	}
	if e.Note != "" {
		s += " " + e.Note
	}
	return s
}

// Stats are the proxy's counters.
type Stats struct {
	Requests    int   // requests received
	Faulted     int   // requests a rule applied to
	Forwarded   int   // requests sent to the upstream
	InFlight    int   // requests being handled now
	MaxInFlight int   // the most requests handled at once (see ResetMaxInFlight)
	BytesIn     int64 // request body bytes read from clients
	BytesOut    int64 // response body bytes written to clients
	LogDropped  int   // finished requests not kept in the log (WithLogLimit)
}

// New starts a proxy in front of upstream (a base URL such as httptest.Server.URL) and
// closes it when the test ends. It fails the test if upstream is not an http:// URL.
func New(t testing.TB, upstream string, opts ...Option) *Proxy {
	t.Helper()
	p, err := Start(upstream, opts...)
	if err != nil {
		t.Fatalf("faultproxy: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// Start starts a proxy in front of upstream; the caller must Close it.
func Start(upstream string, opts ...Option) (*Proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", upstream, err)
	}
	if u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("upstream %q: want http://host:port with no path, query or credentials", upstream)
	}
	cfg := config{logLimit: DefaultLogLimit}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		upstream: &url.URL{Scheme: u.Scheme, Host: u.Host},
		cfg:      cfg,
		transport: &http.Transport{
			Proxy:               nil, // never an environment proxy
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			DisableCompression:  true, // pass Accept-Encoding and gzip bodies through untouched
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		},
		ctx:     ctx,
		cancel:  cancel,
		changed: make(chan struct{}),
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	return p, nil
}

// URL is the proxy's base URL, http://127.0.0.1:PORT.
func (p *Proxy) URL() string { return p.srv.URL }

// Host is the proxy's host:port.
func (p *Proxy) Host() string { return p.srv.Listener.Addr().String() }

// SetKeepAlives turns HTTP keep-alive between clients and the proxy on (the default) or
// off. Off, every request comes on a new connection and Go's transport never replays a
// request on its own (see the package documentation).
func (p *Proxy) SetKeepAlives(on bool) { p.srv.Config.SetKeepAlivesEnabled(on) }

// Close releases every held request, waits until every request has been handled and
// closes the connections to the upstream. It is safe to call more than once.
func (p *Proxy) Close() {
	p.closeOnce.Do(func() {
		p.cancel()
		p.srv.Close()
		p.handlers.Wait()
		p.transport.CloseIdleConnections()
	})
}

// Add adds a rule after the existing ones and returns its handle. It panics if the rule
// has no When or no Fault (a test bug).
func (p *Proxy) Add(r Rule) *Handle {
	if err := r.validate(); err != nil {
		panic("faultproxy: " + err.Error())
	}
	h := &Handle{p: p, rule: r, name: r.describe()}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, h)
	return h
}

// Clear removes every rule; requests already selected keep their fault.
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, h := range p.rules {
		h.removed = true
	}
	p.rules = nil
	p.notifyLocked()
}

// Log returns the finished requests in the order they arrived (Seq). A request still
// being handled is not in it yet (see WaitIdle).
func (p *Proxy) Log() []Entry {
	p.mu.Lock()
	out := append([]Entry(nil), p.log...)
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b Entry) int { return a.Seq - b.Seq })
	return out
}

// ClearLog empties the log (the counters in Stats stay).
func (p *Proxy) ClearLog() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = nil
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// ResetMaxInFlight restarts the MaxInFlight counter from the number in flight now.
func (p *Proxy) ResetMaxInFlight() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.MaxInFlight = p.stats.InFlight
}

// WaitFinished blocks until at least n requests have finished (Log and Stats include
// them), or ctx ends.
func (p *Proxy) WaitFinished(ctx context.Context, n int) error {
	return p.waitFor(ctx, func() bool { return p.stats.Requests-p.stats.InFlight >= n })
}

// WaitIdle blocks until no request is being handled, or ctx ends. A client can have its
// whole answer before the proxy has logged the request: wait for idle before reading
// Log or the byte counters.
func (p *Proxy) WaitIdle(ctx context.Context) error {
	return p.waitFor(ctx, func() bool { return p.stats.InFlight == 0 })
}

// WaitInFlight blocks until at least n requests are being handled at once, or ctx ends.
func (p *Proxy) WaitInFlight(ctx context.Context, n int) error {
	return p.waitFor(ctx, func() bool { return p.stats.InFlight >= n })
}

// waitFor blocks until cond, evaluated under p.mu, holds or ctx ends.
func (p *Proxy) waitFor(ctx context.Context, cond func() bool) error {
	for {
		p.mu.Lock()
		ok, ch := cond(), p.changed
		p.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("faultproxy: wait: %w", ctx.Err())
		}
	}
}

func (p *Proxy) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// ---- handling -----------------------------------------------------------------------

// exchange is the state of one request while it is handled.
type exchange struct {
	p     *Proxy
	w     http.ResponseWriter
	r     *http.Request
	body  *countingReader
	entry Entry
	fault Fault
	// done is set once the connection was hijacked or dropped: nothing may be written.
	done bool
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	p.handlers.Add(1)
	defer p.handlers.Done()

	x := &exchange{p: p, w: w, r: r, body: &countingReader{r: r.Body}}
	r.Body = x.body
	x.entry = Entry{Method: r.Method, URL: r.RequestURI}

	p.mu.Lock()
	p.seq++
	x.entry.Seq = p.seq
	p.stats.Requests++
	p.stats.InFlight++
	if p.stats.InFlight > p.stats.MaxInFlight {
		p.stats.MaxInFlight = p.stats.InFlight
	}
	if h := p.pickLocked(r); h != nil {
		x.fault = h.rule.Fault
		x.entry.Rule = h.name
		x.entry.Fault = h.rule.Fault.kind
		p.stats.Faulted++
	}
	p.notifyLocked()
	p.mu.Unlock()

	defer p.finish(x)

	switch x.fault.kind {
	case KindNone:
		x.forward()
	case KindStatus:
		x.answerStatus()
	case KindHang:
		x.hang()
	case KindReset:
		x.note("reset")
		x.drop()
	case KindTruncate:
		x.truncate()
	case KindShortBody:
		x.shortBody()
	case KindLoseResponse:
		x.loseResponse()
	case KindDelay:
		x.delay()
	case KindDelayResponse:
		x.delayResponse()
	}
}

// pickLocked returns the first rule that applies to r, counting the match on every rule
// it passes whose matchers hold.
func (p *Proxy) pickLocked(r *http.Request) *Handle {
	for _, h := range p.rules {
		if !h.rule.matches(r) {
			continue
		}
		h.matched++
		if h.rule.When.covers(h.matched) {
			h.applied++
			return h
		}
	}
	return nil
}

func (p *Proxy) finish(x *exchange) {
	x.entry.BytesIn = x.body.n.Load()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.InFlight--
	p.stats.BytesIn += x.entry.BytesIn
	p.stats.BytesOut += x.entry.BytesOut
	if len(p.log) < p.cfg.logLimit {
		p.log = append(p.log, x.entry)
	} else {
		p.stats.LogDropped++
	}
	p.notifyLocked()
}

func (x *exchange) note(s string) {
	if x.entry.Note != "" {
		x.entry.Note += "; "
	}
	x.entry.Note += s
}

// drop closes the client's connection without an answer, with a reset if it can.
func (x *exchange) drop() {
	if x.done {
		return
	}
	x.done = true
	conn, _, err := http.NewResponseController(x.w).Hijack()
	if err != nil {
		// Not an HTTP/1 connection: let net/http abort it.
		x.note("abort: " + err.Error())
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// drain reads and discards up to maxDrain bytes of the request body.
func (x *exchange) drain() error {
	_, err := io.Copy(io.Discard, io.LimitReader(x.r.Body, maxDrain))
	return err
}

// roundTrip sends the request to the upstream with ctx, the body from body.
func (x *exchange) roundTrip(ctx context.Context, body io.Reader, length int64) (*http.Response, error) {
	p := x.p
	u := *p.upstream
	u.Path = x.r.URL.Path
	u.RawPath = x.r.URL.RawPath
	u.RawQuery = x.r.URL.RawQuery
	if length == 0 {
		body = nil
	}
	out, err := http.NewRequestWithContext(ctx, x.r.Method, u.String(), body)
	if err != nil {
		return nil, err
	}
	out.ContentLength = length
	out.Header = x.r.Header.Clone()
	removeHopHeaders(out.Header)
	if p.cfg.preserveHost {
		out.Host = x.r.Host
	} else {
		out.Host = p.upstream.Host
	}
	x.p.mu.Lock()
	x.p.stats.Forwarded++
	x.p.mu.Unlock()
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	x.entry.Upstream = resp.StatusCode
	return resp, nil
}

// forward proxies the request and streams the answer back.
func (x *exchange) forward() {
	resp, err := x.roundTrip(x.r.Context(), x.r.Body, x.r.ContentLength)
	if err != nil {
		x.upstreamFailed(err)
		return
	}
	defer resp.Body.Close()
	x.writeHeader(resp.Header, resp.StatusCode, -1)
	x.copyBody(resp.Body, -1)
}

// upstreamFailed answers 502 when the upstream could not be reached (or the client gave
// up while it was asked).
func (x *exchange) upstreamFailed(err error) {
	if x.r.Context().Err() != nil {
		x.note("client gave up")
		x.drop()
		return
	}
	x.note("upstream: " + err.Error())
	msg := "faultproxy: upstream " + x.p.upstream.Host + ": " + err.Error()
	x.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	x.w.Header().Set("Content-Length", strconv.Itoa(len(msg)))
	x.w.WriteHeader(http.StatusBadGateway)
	x.entry.Status = http.StatusBadGateway
	n, _ := io.WriteString(x.w, msg)
	x.entry.BytesOut += int64(n)
}

// writeHeader copies header (without hop-by-hop fields, upstream URLs rewritten to the
// proxy's) and writes status. contentLength >= 0 replaces Content-Length.
func (x *exchange) writeHeader(header http.Header, status int, contentLength int64) {
	h := x.w.Header()
	for k, vs := range header {
		h[k] = append([]string(nil), vs...)
	}
	removeHopHeaders(h)
	x.rewriteLocations(h)
	if contentLength >= 0 {
		h.Set("Content-Length", strconv.FormatInt(contentLength, 10))
	}
	x.w.WriteHeader(status)
	x.entry.Status = status
}

// rewriteLocations points URLs of the upstream in Location-like headers at the proxy, so
// a client that follows them (a resumable upload's session URL) stays behind the proxy.
func (x *exchange) rewriteLocations(h http.Header) {
	origin := x.p.upstream.Scheme + "://" + x.p.upstream.Host
	for _, k := range []string{"Location", "Content-Location", "X-Goog-Upload-Url"} {
		vs := h[http.CanonicalHeaderKey(k)]
		for i, v := range vs {
			if v == origin || strings.HasPrefix(v, origin+"/") || strings.HasPrefix(v, origin+"?") {
				vs[i] = x.p.srv.URL + strings.TrimPrefix(v, origin)
			}
		}
	}
}

// copyBody streams src to the client, at most limit bytes if limit >= 0, flushing after
// every read so a slow body reaches the client as it comes.
func (x *exchange) copyBody(src io.Reader, limit int64) {
	if limit >= 0 {
		src = io.LimitReader(src, limit)
	}
	rc := http.NewResponseController(x.w)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			m, werr := x.w.Write(buf[:n])
			x.entry.BytesOut += int64(m)
			if werr != nil {
				x.note("client gone while sending the body")
				return
			}
			_ = rc.Flush()
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			// The upstream broke off: break the client's connection too, so it cannot
			// take a partial body for a whole one.
			x.note("upstream body: " + err.Error())
			x.drop()
			return
		}
	}
}

// answerStatus answers the fault's status without forwarding.
func (x *exchange) answerStatus() {
	_ = x.drain()
	f := x.fault
	body, ctype := f.body, f.contentType
	if !f.customBody {
		body = storageError(f.status)
		ctype = "application/json; charset=UTF-8"
	}
	h := x.w.Header()
	for k, vs := range f.header {
		h[k] = append([]string(nil), vs...)
	}
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	x.w.WriteHeader(f.status)
	x.entry.Status = f.status
	n, _ := x.w.Write(body)
	x.entry.BytesOut += int64(n)
}

// hold waits for the fault's gate, the client giving up or the proxy closing, and
// reports whether the gate opened.
func (x *exchange) hold() bool {
	var open <-chan struct{} // nil: never
	if g := x.fault.gate; g != nil {
		open = g.enter()
		defer g.leave()
	}
	select {
	case <-open:
		x.note("released")
		return true
	case <-x.r.Context().Done():
		x.note("client gave up")
	case <-x.p.ctx.Done():
		x.note("proxy closed")
	}
	return false
}

func (x *exchange) hang() {
	// Read the body first: net/http watches for the client going away only once the
	// body has been read.
	if err := x.drain(); err != nil {
		x.note("client gone while sending the body")
		x.drop()
		return
	}
	x.hold()
	x.drop()
}

func (x *exchange) delay() {
	body, err := io.ReadAll(x.r.Body)
	if err != nil {
		x.note("client gone while sending the body")
		x.drop()
		return
	}
	if !x.hold() {
		x.drop()
		return
	}
	resp, err := x.roundTrip(x.r.Context(), bytes.NewReader(body), int64(len(body)))
	if err != nil {
		x.upstreamFailed(err)
		return
	}
	defer resp.Body.Close()
	x.writeHeader(resp.Header, resp.StatusCode, -1)
	x.copyBody(resp.Body, -1)
}

// forwardWhole forwards the request with the proxy's context (the client cannot cancel
// it) and reads the whole answer.
func (x *exchange) forwardWhole() (*http.Response, []byte, bool) {
	resp, err := x.roundTrip(x.p.ctx, x.r.Body, x.r.ContentLength)
	if err != nil {
		x.note("upstream: " + err.Error())
		x.drop()
		return nil, nil, false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		x.note("upstream body: " + err.Error())
		x.drop()
		return nil, nil, false
	}
	return resp, body, true
}

func (x *exchange) loseResponse() {
	if _, _, ok := x.forwardWhole(); !ok {
		return
	}
	x.note("response lost")
	x.drop()
}

func (x *exchange) delayResponse() {
	resp, body, ok := x.forwardWhole()
	if !ok {
		return
	}
	if !x.hold() {
		x.note("response lost")
		x.drop()
		return
	}
	x.writeHeader(resp.Header, resp.StatusCode, int64(len(body)))
	n, _ := x.w.Write(body)
	x.entry.BytesOut += int64(n)
}

func (x *exchange) shortBody() {
	resp, err := x.roundTrip(x.p.ctx, x.r.Body, x.r.ContentLength)
	if err != nil {
		x.upstreamFailed(err)
		return
	}
	defer resp.Body.Close()
	k := x.fault.k
	if x.r.Method == http.MethodHead {
		k = 0
	}
	head := make([]byte, k)
	n, err := io.ReadFull(resp.Body, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		x.note("upstream body: " + err.Error())
		x.drop()
		return
	}
	head = head[:n]
	h := resp.Header.Clone()
	h.Del("Content-Range") // a short body is not a range; the client must not learn the real size
	x.writeHeader(h, resp.StatusCode, int64(len(head)))
	m, _ := x.w.Write(head)
	x.entry.BytesOut += int64(m)
}

// truncate writes the upstream's answer cut after k body bytes straight onto the
// hijacked connection and closes it.
func (x *exchange) truncate() {
	resp, err := x.roundTrip(x.p.ctx, x.r.Body, x.r.ContentLength)
	if err != nil {
		x.note("upstream: " + err.Error())
		x.drop()
		return
	}
	defer resp.Body.Close()
	head := make([]byte, x.fault.k)
	n, err := io.ReadFull(resp.Body, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		x.note("upstream body: " + err.Error())
		x.drop()
		return
	}
	head = head[:n]

	conn, bw, err := http.NewResponseController(x.w).Hijack()
	if err != nil {
		x.note("abort: " + err.Error())
		x.done = true
		panic(http.ErrAbortHandler)
	}
	x.done = true
	defer conn.Close() // a FIN, so the bytes written arrive before the end

	h := resp.Header.Clone()
	removeHopHeaders(h)
	x.rewriteLocations(h)
	chunked := resp.ContentLength < 0 && x.r.Method != http.MethodHead
	if chunked {
		h.Del("Content-Length")
		h.Set("Transfer-Encoding", "chunked")
	} else if resp.ContentLength >= 0 {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	h.Set("Connection", "close")
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\n", resp.StatusCode, http.StatusText(resp.StatusCode))
	_ = h.Write(bw)
	_, _ = bw.WriteString("\r\n")
	x.entry.Status = resp.StatusCode
	if x.r.Method != http.MethodHead {
		if chunked && len(head) > 0 {
			fmt.Fprintf(bw, "%x\r\n", len(head))
			_, _ = bw.Write(head)
			_, _ = bw.WriteString("\r\n")
		} else if !chunked {
			_, _ = bw.Write(head)
		}
		x.entry.BytesOut += int64(len(head))
	}
	if err := bw.Flush(); err != nil {
		x.note("client gone: " + err.Error())
	}
	x.note(fmt.Sprintf("body cut after %d of %s bytes", len(head), lengthString(resp.ContentLength)))
}

func lengthString(n int64) string {
	if n < 0 {
		return "unknown"
	}
	return strconv.FormatInt(n, 10)
}

// ---- helpers ------------------------------------------------------------------------

// countingReader counts the bytes read through it. The transport may still be sending a
// request body from its own goroutine when the handler finishes, hence the atomic.
type countingReader struct {
	r io.ReadCloser
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

// hopHeaders are the fields of one connection, never forwarded (RFC 9110 section 7.6.1).
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func removeHopHeaders(h http.Header) {
	for _, v := range h["Connection"] {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				h.Del(f)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// storageReasons are the Cloud Storage JSON API error reasons for common statuses.
var storageReasons = map[int]string{
	http.StatusBadRequest:          "invalid",
	http.StatusUnauthorized:        "required",
	http.StatusForbidden:           "forbidden",
	http.StatusNotFound:            "notFound",
	http.StatusRequestTimeout:      "requestTimeout",
	http.StatusConflict:            "conflict",
	http.StatusPreconditionFailed:  "conditionNotMet",
	http.StatusTooManyRequests:     "rateLimitExceeded",
	http.StatusInternalServerError: "backendError",
	http.StatusBadGateway:          "backendError",
	http.StatusServiceUnavailable:  "backendError",
	http.StatusGatewayTimeout:      "backendError",
}

// storageError renders the JSON error body of the Cloud Storage JSON API for status.
func storageError(status int) []byte {
	return StorageErrorBody(status, fmt.Sprintf("injected by faultproxy (%d %s)", status, http.StatusText(status)))
}

// StorageErrorBody is the JSON error body Cloud Storage's JSON API answers status with,
// carrying message; the storage fake's own layer (internal/gcstest) answers with it too.
func StorageErrorBody(status int, message string) []byte {
	reason := storageReasons[status]
	if reason == "" {
		reason = strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", ""))
	}
	type item struct {
		Domain  string `json:"domain"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	}
	var doc struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Errors  []item `json:"errors"`
		} `json:"error"`
	}
	doc.Error.Code = status
	doc.Error.Message = message
	doc.Error.Errors = []item{{Domain: "global", Reason: reason, Message: message}}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err) // a fixed struct of strings and ints always marshals
	}
	return b
}
