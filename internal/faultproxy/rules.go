package faultproxy

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// Kind is what the proxy did with a request.
type Kind int

// The fault kinds; KindNone is a request forwarded untouched.
const (
	KindNone Kind = iota
	KindStatus
	KindHang
	KindReset
	KindTruncate
	KindShortBody
	KindLoseResponse
	KindDelay
	KindDelayResponse
)

var kindNames = [...]string{"none", "status", "hang", "reset", "truncate", "short-body", "lose-response", "delay", "delay-response"}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Fault is what a rule does to the requests it applies to. Make one with Status, Hang,
// Reset, Truncate, ShortBody, LoseResponse, Delay or DelayResponse.
type Fault struct {
	kind        Kind
	status      int
	header      http.Header
	contentType string
	body        []byte
	customBody  bool
	k           int64
	gate        *Gate
}

// Kind reports the fault's kind.
func (f Fault) Kind() Kind { return f.kind }

func (f Fault) String() string {
	switch f.kind {
	case KindStatus:
		return fmt.Sprintf("status %d", f.status)
	case KindTruncate, KindShortBody:
		return fmt.Sprintf("%s after %d bytes", f.kind, f.k)
	default:
		return f.kind.String()
	}
}

// Status answers with code without forwarding the request. The body is the JSON error
// shape of the Cloud Storage JSON API (reason backendError for 5xx, rateLimitExceeded
// for 429, ...) unless WithBody sets another.
func Status(code int) Fault {
	if code < 100 || code > 599 {
		panic(fmt.Sprintf("faultproxy: Status: invalid HTTP status %d", code))
	}
	return Fault{kind: KindStatus, status: code}
}

// WithHeader returns a copy of a Status fault that also sends the header key: value
// (e.g. Retry-After: 1).
func (f Fault) WithHeader(key, value string) Fault {
	if f.kind != KindStatus {
		panic(fmt.Sprintf("faultproxy: WithHeader applies to Status faults, not to %s", f.kind))
	}
	h := f.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Add(key, value)
	f.header = h
	return f
}

// WithBody returns a copy of a Status fault that answers with body, of contentType,
// instead of the Cloud Storage error shape.
func (f Fault) WithBody(contentType string, body []byte) Fault {
	if f.kind != KindStatus {
		panic(fmt.Sprintf("faultproxy: WithBody applies to Status faults, not to %s", f.kind))
	}
	f.contentType = contentType
	f.body = append([]byte(nil), body...)
	f.customBody = true
	return f
}

// Hang holds the request without forwarding or answering it, until the client gives up,
// g is released (nil: never) or the proxy closes; then it drops the connection.
func Hang(g *Gate) Fault { return Fault{kind: KindHang, gate: g} }

// Reset closes the connection without forwarding or answering (TCP RST).
func Reset() Fault { return Fault{kind: KindReset} }

// Truncate forwards the request and sends the upstream's status, headers and first k
// bytes of body, then closes the connection: the client's read of the body fails.
func Truncate(k int64) Fault {
	if k < 0 {
		panic(fmt.Sprintf("faultproxy: Truncate: negative length %d", k))
	}
	return Fault{kind: KindTruncate, k: k}
}

// ShortBody forwards the request and answers with the upstream's status and headers but
// only the first k bytes of its body, announced with Content-Length: k, so the client
// reads a complete, shorter body.
func ShortBody(k int64) Fault {
	if k < 0 {
		panic(fmt.Sprintf("faultproxy: ShortBody: negative length %d", k))
	}
	return Fault{kind: KindShortBody, k: k}
}

// LoseResponse forwards the request, so the upstream commits it, reads the upstream's
// whole answer and drops the connection without answering.
func LoseResponse() Fault { return Fault{kind: KindLoseResponse} }

// Delay holds the request (its body read into memory) until g is released, then forwards
// it. If the client gives up or the proxy closes first, it is never forwarded.
func Delay(g *Gate) Fault {
	if g == nil {
		panic("faultproxy: Delay needs a gate (a Delay nobody releases is a Hang)")
	}
	return Fault{kind: KindDelay, gate: g}
}

// DelayResponse forwards the request, reads the upstream's whole answer and holds it until
// g is released, then sends it. If the client gives up or the proxy closes first, the
// answer is lost (the request was committed).
func DelayResponse(g *Gate) Fault {
	if g == nil {
		panic("faultproxy: DelayResponse needs a gate (use LoseResponse to never answer)")
	}
	return Fault{kind: KindDelayResponse, gate: g}
}

// When says which of the requests that match a rule it applies to, counting from 1 in
// the order they reach the proxy after the rule was added.
type When struct {
	from, count int // count < 0: unbounded
}

// Nth applies to the nth match only.
func Nth(n int) When {
	if n < 1 {
		panic(fmt.Sprintf("faultproxy: Nth(%d): matches are counted from 1", n))
	}
	return When{from: n, count: 1}
}

// Next applies to the next n matches.
func Next(n int) When {
	if n < 1 {
		panic(fmt.Sprintf("faultproxy: Next(%d): n must be at least 1", n))
	}
	return When{from: 1, count: n}
}

// From applies to the nth match and every one after it, until the rule is removed.
func From(n int) When {
	if n < 1 {
		panic(fmt.Sprintf("faultproxy: From(%d): matches are counted from 1", n))
	}
	return When{from: n, count: -1}
}

// Always applies to every match until the rule is removed.
func Always() When { return When{from: 1, count: -1} }

func (w When) covers(match int) bool {
	return match >= w.from && (w.count < 0 || match < w.from+w.count)
}

func (w When) String() string {
	switch {
	case w == (When{}):
		return "(no When)"
	case w.count < 0 && w.from == 1:
		return "always"
	case w.count < 0:
		return fmt.Sprintf("from match %d", w.from)
	case w.count == 1:
		return fmt.Sprintf("match %d", w.from)
	default:
		return fmt.Sprintf("matches %d-%d", w.from, w.from+w.count-1)
	}
}

// Rule selects requests and the fault to apply to them. Every matcher that is set must
// hold.
type Rule struct {
	// Name labels the rule in the log; "" uses a description of the rule.
	Name string
	// Method is the HTTP method to match (case-insensitive); "" matches any.
	Method string
	// Path must be a substring of the request's escaped path (r.URL.EscapedPath(), so
	// "a%2Fb" for a JSON API object named "a/b"); "" matches any.
	Path string
	// Query must be a substring of the raw query (r.URL.RawQuery, as sent); "" matches
	// any. QueryParam matches one parameter exactly.
	Query string
	// Match, if set, must return true. It runs under the proxy's lock, in the order
	// requests arrive; it must not read the body or block.
	Match func(*http.Request) bool
	// When selects among the matching requests. It must be set.
	When When
	// Fault is applied to the selected requests.
	Fault Fault
}

func (r Rule) matches(req *http.Request) bool {
	if r.Method != "" && !strings.EqualFold(r.Method, req.Method) {
		return false
	}
	if r.Path != "" && !strings.Contains(req.URL.EscapedPath(), r.Path) {
		return false
	}
	if r.Query != "" && !strings.Contains(req.URL.RawQuery, r.Query) {
		return false
	}
	return r.Match == nil || r.Match(req)
}

func (r Rule) describe() string {
	if r.Name != "" {
		return r.Name
	}
	var b strings.Builder
	m := r.Method
	if m == "" {
		m = "*"
	}
	b.WriteString(m)
	if r.Path != "" {
		fmt.Fprintf(&b, " path~%q", r.Path)
	}
	if r.Query != "" {
		fmt.Fprintf(&b, " query~%q", r.Query)
	}
	if r.Match != nil {
		b.WriteString(" match()")
	}
	fmt.Fprintf(&b, " %s: %s", r.When, r.Fault)
	return b.String()
}

func (r Rule) validate() error {
	switch {
	case r.When == (When{}):
		return fmt.Errorf("rule %q: When is not set (use Nth, Next, From or Always)", r.describe())
	case r.Fault.kind == KindNone:
		return fmt.Errorf("rule %q: Fault is not set", r.describe())
	case (r.Fault.kind == KindDelay || r.Fault.kind == KindDelayResponse) && r.Fault.gate == nil:
		return fmt.Errorf("rule %q: %s without a gate", r.describe(), r.Fault.kind)
	}
	return nil
}

// QueryParam returns a matcher that holds when the query parameter key has exactly the
// value value (one of its values, if it is repeated).
func QueryParam(key, value string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return false
		}
		for _, v := range q[key] {
			if v == value {
				return true
			}
		}
		return false
	}
}

// All returns a matcher that holds when every one of ms holds (nil ones are skipped).
func All(ms ...func(*http.Request) bool) func(*http.Request) bool {
	return func(r *http.Request) bool {
		for _, m := range ms {
			if m != nil && !m(r) {
				return false
			}
		}
		return true
	}
}

// Handle is a rule added to a proxy.
type Handle struct {
	p    *Proxy
	rule Rule
	name string

	// Guarded by p.mu.
	matched, applied int
	removed          bool
}

// Matched reports how many requests matched the rule's matchers so far (in its window
// or not, but not those an earlier rule claimed).
func (h *Handle) Matched() int {
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	return h.matched
}

// Applied reports how many requests the rule's fault was applied to.
func (h *Handle) Applied() int {
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	return h.applied
}

// Spent reports whether the rule's window has passed: it will apply to no more requests.
func (h *Handle) Spent() bool {
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	return h.removed || (h.rule.When.count >= 0 && h.matched >= h.rule.When.from+h.rule.When.count-1)
}

// Remove takes the rule out of the proxy; requests already selected keep their fault.
func (h *Handle) Remove() {
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	h.removed = true
	for i, x := range h.p.rules {
		if x == h {
			h.p.rules = append(h.p.rules[:i:i], h.p.rules[i+1:]...)
			break
		}
	}
	h.p.notifyLocked()
}

// WaitApplied blocks until the rule's fault was applied to at least n requests, or ctx
// ends.
func (h *Handle) WaitApplied(ctx context.Context, n int) error {
	return h.p.waitFor(ctx, func() bool { return h.applied >= n })
}

// Gate holds the requests of Hang, Delay and DelayResponse faults until Release.
type Gate struct {
	mu       sync.Mutex
	open     chan struct{} // closed by Release
	released bool
	arrived  int
	held     int
	changed  chan struct{} // closed and replaced on every change of arrived or held
}

// NewGate returns a closed gate.
func NewGate() *Gate {
	return &Gate{open: make(chan struct{}), changed: make(chan struct{})}
}

// Release lets every held request, and every later one, through. Calling it again does
// nothing.
func (g *Gate) Release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.released {
		g.released = true
		close(g.open)
	}
}

// Arrived reports how many requests have been held at the gate so far.
func (g *Gate) Arrived() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.arrived
}

// Held reports how many requests are held at the gate now.
func (g *Gate) Held() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held
}

// Wait blocks until at least n requests have arrived at the gate (Arrived() >= n), or
// ctx ends.
func (g *Gate) Wait(ctx context.Context, n int) error {
	for {
		g.mu.Lock()
		ok, ch := g.arrived >= n, g.changed
		g.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("faultproxy: waiting for %d requests at the gate (%d arrived): %w", n, g.Arrived(), ctx.Err())
		}
	}
}

// enter counts a request as held and returns the channel Release closes.
func (g *Gate) enter() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.arrived++
	g.held++
	close(g.changed)
	g.changed = make(chan struct{})
	return g.open
}

func (g *Gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.held--
	close(g.changed)
	g.changed = make(chan struct{})
}
