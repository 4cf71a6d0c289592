package faultproxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/faultproxy"
)

// ---- an upstream that records what reaches it ---------------------------------------

type seen struct {
	Method, URI, Host string
	Header            http.Header
	Body              string
}

type upstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.reqs = append(u.reqs, seen{Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), Body: string(body)})
	u.mu.Unlock()
	switch {
	case strings.HasPrefix(r.URL.Path, "/bytes/"):
		// /bytes/N: N bytes, with a Content-Length.
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/bytes/"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Header().Set("X-Upstream", "yes")
		_, _ = w.Write(pattern(n))
	case strings.HasPrefix(r.URL.Path, "/chunked/"):
		// /chunked/N: N bytes, chunked (no Content-Length).
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/chunked/"))
		w.WriteHeader(http.StatusOK)
		half := n / 2
		_, _ = w.Write(pattern(n)[:half])
		http.NewResponseController(w).Flush()
		_, _ = w.Write(pattern(n)[half:])
	case r.URL.Path == "/redirect":
		w.Header().Set("Location", u.srv.URL+"/upload?upload_id=1")
		w.Header().Set("X-Goog-Upload-URL", u.srv.URL+"/upload?upload_id=1")
		w.Header().Set("Content-Location", "http://elsewhere.example/x")
		w.WriteHeader(http.StatusOK)
	case r.URL.Path == "/hop":
		w.Header().Set("Connection", "X-Private")
		w.Header().Set("X-Private", "hop")
		w.Header().Set("X-Public", "end")
		w.WriteHeader(http.StatusOK)
	case r.URL.Path == "/gzip":
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Type", "application/gzip")
		_, _ = w.Write([]byte{0x1f, 0x8b, 0x08, 0x00, 'n', 'o', 't', 'r', 'e', 'a', 'l'})
	default:
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.RequestURI, body)
	}
}

func (u *upstream) Requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.reqs...)
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

// client returns an HTTP client with its own transport (keep-alive on), closed at the end.
func client(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{Proxy: nil, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func do(t *testing.T, c *http.Client, ctx context.Context, method, url, body string) (*http.Response, string, error) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	require.NoError(t, err)
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// logOf waits until p is idle and returns its log.
func logOf(t *testing.T, p *faultproxy.Proxy) []faultproxy.Entry {
	t.Helper()
	require.NoError(t, p.WaitIdle(testCtx(t)))
	return p.Log()
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// ---- forwarding ---------------------------------------------------------------------

func TestForwardsUntouched(t *testing.T) {
	up := newUpstream(t)
	p := faultproxy.New(t, up.srv.URL)
	c := client(t)
	ctx := testCtx(t)

	resp, body, err := do(t, c, ctx, http.MethodPost, p.URL()+"/storage/v1/b/bk/o/a%2Fb?x=1&y=%2F", "payload")
	require.NoError(t, err)
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, "POST /storage/v1/b/bk/o/a%2Fb?x=1&y=%2F payload", body, "escaped path, raw query and body arrive as sent")

	reqs := up.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, up.srv.Listener.Addr().String(), reqs[0].Host, "the upstream sees its own host")

	// Large bodies both ways, with and without Content-Length upstream.
	for _, path := range []string{"/bytes/300000", "/chunked/300000"} {
		_, body, err = do(t, c, ctx, http.MethodGet, p.URL()+path, "")
		require.NoError(t, err, path)
		assert.Equal(t, string(pattern(300000)), body, path)
	}

	log := logOf(t, p)
	require.Len(t, log, 3)
	assert.Equal(t, faultproxy.KindNone, log[0].Fault)
	assert.Equal(t, http.StatusCreated, log[0].Status)
	assert.Equal(t, http.StatusCreated, log[0].Upstream)
	assert.Equal(t, "/storage/v1/b/bk/o/a%2Fb?x=1&y=%2F", log[0].URL)
	assert.EqualValues(t, len("payload"), log[0].BytesIn)
	assert.EqualValues(t, 300000, log[1].BytesOut)
	st := p.Stats()
	assert.Equal(t, 3, st.Requests)
	assert.Equal(t, 3, st.Forwarded)
	assert.Equal(t, 0, st.Faulted)
	assert.Equal(t, 0, st.InFlight)
	assert.EqualValues(t, len("payload"), st.BytesIn)
	assert.EqualValues(t, len("POST /storage/v1/b/bk/o/a%2Fb?x=1&y=%2F payload")+2*300000, st.BytesOut)
}

func TestPreserveHost(t *testing.T) {
	up := newUpstream(t)
	p := faultproxy.New(t, up.srv.URL, faultproxy.PreserveHost())
	_, _, err := do(t, client(t), testCtx(t), http.MethodGet, p.URL()+"/x", "")
	require.NoError(t, err)
	assert.Equal(t, p.Host(), up.Requests()[0].Host)
}

func TestRewritesUpstreamLocations(t *testing.T) {
	up := newUpstream(t)
	p := faultproxy.New(t, up.srv.URL)
	resp, _, err := do(t, client(t), testCtx(t), http.MethodPost, p.URL()+"/redirect", "")
	require.NoError(t, err)
	assert.Equal(t, p.URL()+"/upload?upload_id=1", resp.Header.Get("Location"), "a resumable upload's session URL stays behind the proxy")
	assert.Equal(t, p.URL()+"/upload?upload_id=1", resp.Header.Get("X-Goog-Upload-URL"))
	assert.Equal(t, "http://elsewhere.example/x", resp.Header.Get("Content-Location"), "other hosts are left alone")
}

func TestDropsHopByHopHeaders(t *testing.T) {
	up := newUpstream(t)
	p := faultproxy.New(t, up.srv.URL)
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, p.URL()+"/hop", nil)
	require.NoError(t, err)
	req.Header.Set("Connection", "X-Secret-Hop")
	req.Header.Set("X-Secret-Hop", "1")
	req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
	req.Header.Set("X-End", "2")
	resp, err := client(t).Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()

	h := up.Requests()[0].Header
	assert.Empty(t, h.Get("X-Secret-Hop"))
	assert.Empty(t, h.Get("Proxy-Authorization"))
	assert.Equal(t, "2", h.Get("X-End"))
	assert.Empty(t, resp.Header.Get("X-Private"), "a field named in the upstream's Connection header stays on its hop")
	assert.Equal(t, "end", resp.Header.Get("X-Public"))
}

func TestPassesEncodedBodiesThrough(t *testing.T) {
	up := newUpstream(t)
	p := faultproxy.New(t, up.srv.URL)
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, p.URL()+"/gzip", nil)
	require.NoError(t, err)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := client(t).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "gzip", resp.Header.Get("Content-Encoding"))
	assert.Equal(t, []byte{0x1f, 0x8b, 0x08, 0x00, 'n', 'o', 't', 'r', 'e', 'a', 'l'}, b, "stored bytes, never decoded by the proxy")
	assert.Equal(t, "gzip", up.Requests()[0].Header.Get("Accept-Encoding"))

	// A client that asks for no encoding is not given one behind its back.
	_, _, err = do(t, client(t), testCtx(t), http.MethodGet, p.URL()+"/x", "")
	require.NoError(t, err)
	assert.Empty(t, up.Requests()[1].Header.Values("Accept-Encoding"))
}

func TestUpstreamDown(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	p := faultproxy.New(t, url)
	resp, body, err := do(t, client(t), testCtx(t), http.MethodGet, p.URL()+"/x", "")
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.Contains(t, body, "faultproxy: upstream")
	assert.Contains(t, logOf(t, p)[0].Note, "upstream:")
}

func TestStartRefusesBadUpstreams(t *testing.T) {
	for _, u := range []string{"", "ftp://h/", "http://", "http://h:1/path", "http://u:p@h:1", "http://h:1/?q=1", "://"} {
		_, err := faultproxy.Start(u)
		assert.Error(t, err, "%q", u)
	}
}

// ---- rules --------------------------------------------------------------------------

func TestRuleWindows(t *testing.T) {
	up := newUpstream(t)
	p := faultproxy.New(t, up.srv.URL)
	c := client(t)
	ctx := testCtx(t)
	status := func(path string) int {
		t.Helper()
		resp, _, err := do(t, c, ctx, http.MethodGet, p.URL()+path, "")
		require.NoError(t, err)
		return resp.StatusCode
	}

	nth := p.Add(faultproxy.Rule{Path: "/nth", When: faultproxy.Nth(2), Fault: faultproxy.Status(500)})
	next := p.Add(faultproxy.Rule{Path: "/next", When: faultproxy.Next(2), Fault: faultproxy.Status(501)})
	from := p.Add(faultproxy.Rule{Path: "/from", When: faultproxy.From(3), Fault: faultproxy.Status(502)})
	always := p.Add(faultproxy.Rule{Path: "/always", When: faultproxy.Always(), Fault: faultproxy.Status(503)})

	var got []int
	for range 4 {
		got = append(got, status("/nth"))
	}
	assert.Equal(t, []int{201, 500, 201, 201}, got)
	got = nil
	for range 4 {
		got = append(got, status("/next"))
	}
	assert.Equal(t, []int{501, 501, 201, 201}, got)
	got = nil
	for range 4 {
		got = append(got, status("/from"))
	}
	assert.Equal(t, []int{201, 201, 502, 502}, got)
	got = nil
	for range 3 {
		got = append(got, status("/always"))
	}
	assert.Equal(t, []int{503, 503, 503}, got)

	assert.Equal(t, 4, nth.Matched())
	assert.Equal(t, 1, nth.Applied())
	assert.True(t, nth.Spent())
	assert.Equal(t, 2, next.Applied())
	assert.True(t, next.Spent())
	assert.Equal(t, 2, from.Applied())
	assert.False(t, from.Spent())
	assert.Equal(t, 3, always.Applied())

	always.Remove()
	assert.Equal(t, 201, status("/always"), "a removed rule applies no more")
	assert.True(t, always.Spent())
	assert.Equal(t, 3, always.Matched(), "a removed rule counts no more")

	p.Clear()
	assert.Equal(t, 201, status("/from"))
	assert.Equal(t, 4, from.Matched())
}

func TestRulesInOrderAndFallThrough(t *testing.T) {
	up := newUpstream(t)
	p := faultproxy.New(t, up.srv.URL)
	c := client(t)
	ctx := testCtx(t)

	// The first rule lets its first two matches through to the second one.
	first := p.Add(faultproxy.Rule{Name: "third", Method: "get", Path: "/o/", When: faultproxy.Nth(3), Fault: faultproxy.Status(500)})
	second := p.Add(faultproxy.Rule{Name: "any", Path: "/o/", When: faultproxy.Always(), Fault: faultproxy.Status(503)})
	var got []int
	for range 4 {
		resp, _, err := do(t, c, ctx, http.MethodGet, p.URL()+"/o/x", "")
		require.NoError(t, err)
		got = append(got, resp.StatusCode)
	}
	assert.Equal(t, []int{503, 503, 500, 503}, got)
	assert.Equal(t, 4, first.Matched())
	assert.Equal(t, 3, second.Matched(), "the request the first rule took never reached the second")
	log := logOf(t, p)
	assert.Equal(t, "third", log[2].Rule)
	assert.Equal(t, "any", log[0].Rule)

	// Method, path, query and a matcher must all hold.
	p.Clear()
	p.Add(faultproxy.Rule{
		Method: http.MethodPost, Path: "/upload/", Query: "name=x",
		Match: faultproxy.QueryParam("ifGenerationMatch", "0"),
		When:  faultproxy.Always(), Fault: faultproxy.Status(412),
	})
	for _, tc := range []struct {
		method, uri string
		want        int
	}{
		{http.MethodPost, "/upload/b?name=x&ifGenerationMatch=0", 412},
		{http.MethodGet, "/upload/b?name=x&ifGenerationMatch=0", 201},
		{http.MethodPost, "/other/b?name=x&ifGenerationMatch=0", 201},
		{http.MethodPost, "/upload/b?name=y&ifGenerationMatch=0", 201},
		{http.MethodPost, "/upload/b?name=x&ifGenerationMatch=01", 201},
		{http.MethodPost, "/upload/b?name=x", 201},
	} {
		resp, _, err := do(t, c, ctx, tc.method, p.URL()+tc.uri, "")
		require.NoError(t, err)
		assert.Equal(t, tc.want, resp.StatusCode, "%s %s", tc.method, tc.uri)
	}
}

func TestAllMatcher(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/x?a=1&b=2&b=3", nil)
	assert.True(t, faultproxy.All(faultproxy.QueryParam("a", "1"), nil, faultproxy.QueryParam("b", "3"))(r))
	assert.False(t, faultproxy.All(faultproxy.QueryParam("a", "1"), faultproxy.QueryParam("b", "4"))(r))
	assert.True(t, faultproxy.All()(r))
}

func TestInvalidRulesPanic(t *testing.T) {
	p := faultproxy.New(t, newUpstream(t).srv.URL)
	assert.PanicsWithValue(t, `faultproxy: rule "* (no When): status 503": When is not set (use Nth, Next, From or Always)`,
		func() { p.Add(faultproxy.Rule{Fault: faultproxy.Status(503)}) })
	assert.Panics(t, func() { p.Add(faultproxy.Rule{When: faultproxy.Always()}) })
	assert.Panics(t, func() { faultproxy.Nth(0) })
	assert.Panics(t, func() { faultproxy.Next(0) })
	assert.Panics(t, func() { faultproxy.From(-1) })
	assert.Panics(t, func() { faultproxy.Status(42) })
	assert.Panics(t, func() { faultproxy.Truncate(-1) })
	assert.Panics(t, func() { faultproxy.Delay(nil) })
	assert.Panics(t, func() { faultproxy.DelayResponse(nil) })
	assert.Panics(t, func() { faultproxy.Reset().WithHeader("a", "b") })
}

// ---- fault kinds --------------------------------------------------------------------

func TestStatusFault(t *testing.T) {
	up := newUpstream(t)
	p := faultproxy.New(t, up.srv.URL)
	c := client(t)
	ctx := testCtx(t)

	p.Add(faultproxy.Rule{Path: "/a", When: faultproxy.Next(1), Fault: faultproxy.Status(503)})
	resp, body, err := do(t, c, ctx, http.MethodPut, p.URL()+"/a", strings.Repeat("x", 100000))
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "application/json; charset=UTF-8", resp.Header.Get("Content-Type"))
	var doc struct {
		Error struct {
			Code   int `json:"code"`
			Errors []struct {
				Domain, Reason string
			} `json:"errors"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &doc), body)
	assert.Equal(t, 503, doc.Error.Code)
	require.Len(t, doc.Error.Errors, 1)
	assert.Equal(t, "backendError", doc.Error.Errors[0].Reason)
	assert.Equal(t, "global", doc.Error.Errors[0].Domain)
	assert.Empty(t, up.Requests(), "never forwarded")
	assert.EqualValues(t, 100000, logOf(t, p)[0].BytesIn, "the body is read so the client gets the answer")

	p.Add(faultproxy.Rule{Path: "/b", When: faultproxy.Next(1), Fault: faultproxy.Status(429).WithHeader("Retry-After", "7")})
	resp, body, err = do(t, c, ctx, http.MethodGet, p.URL()+"/b", "")
	require.NoError(t, err)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "7", resp.Header.Get("Retry-After"))
	assert.Contains(t, body, `"reason":"rateLimitExceeded"`)

	p.Add(faultproxy.Rule{Path: "/c", When: faultproxy.Next(1), Fault: faultproxy.Status(200).WithBody("application/json", []byte(`{"ok":false,"error":"fatal_error"}`))})
	resp, body, err = do(t, c, ctx, http.MethodPost, p.URL()+"/c", "x=1")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.Equal(t, `{"ok":false,"error":"fatal_error"}`, body)
	assert.Empty(t, up.Requests())
}

func TestHangUntilTheClientGivesUp(t *testing.T) {
	up := newUpstream(t)
	p := faultproxy.New(t, up.srv.URL)
	g := faultproxy.NewGate()
	p.Add(faultproxy.Rule{Path: "/h", When: faultproxy.Always(), Fault: faultproxy.Hang(g)})
	ctx := testCtx(t)

	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, _, err := do(t, client(t), cctx, http.MethodPost, p.URL()+"/h", "body")
		errc <- err
	}()
	require.NoError(t, g.Wait(ctx, 1))
	assert.Equal(t, 1, g.Held())
	assert.Equal(t, 1, p.Stats().InFlight)
	cancel()
	err := <-errc
	assert.ErrorIs(t, err, context.Canceled)

	require.NoError(t, p.WaitFinished(ctx, 1))
	assert.Equal(t, 0, g.Held())
	e := logOf(t, p)[0]
	assert.Equal(t, faultproxy.KindHang, e.Fault)
	assert.Equal(t, 0, e.Status)
	assert.Contains(t, e.Note, "client gave up")
	assert.Empty(t, up.Requests(), "never forwarded")
}

func TestHangReleasedDropsTheConnection(t *testing.T) {
	up := newUpstream(t)
	p := faultproxy.New(t, up.srv.URL)
	g := faultproxy.NewGate()
	h := p.Add(faultproxy.Rule{Path: "/h", When: faultproxy.Always(), Fault: faultproxy.Hang(g)})
	ctx := testCtx(t)
	p.SetKeepAlives(false) // one attempt: the transport cannot replay on a fresh connection

	errc := make(chan error, 1)
	go func() {
		_, _, err := do(t, client(t), ctx, http.MethodGet, p.URL()+"/h", "")
		errc <- err
	}()
	require.NoError(t, g.Wait(ctx, 1))
	g.Release()
	err := <-errc
	require.Error(t, err)
	assert.NotErrorIs(t, err, context.Canceled)
	require.NoError(t, p.WaitFinished(ctx, 1))
	assert.Contains(t, logOf(t, p)[0].Note, "released")
	assert.Equal(t, 1, h.Applied())
	assert.Empty(t, up.Requests())
}

func TestCloseEndsHeldRequests(t *testing.T) {
	up := newUpstream(t)
	p, err := faultproxy.Start(up.srv.URL)
	require.NoError(t, err)
	g := faultproxy.NewGate()
	p.Add(faultproxy.Rule{Path: "/hang", When: faultproxy.Always(), Fault: faultproxy.Hang(nil)})
	p.Add(faultproxy.Rule{Path: "/delay", When: faultproxy.Always(), Fault: faultproxy.Delay(g)})
	p.Add(faultproxy.Rule{Path: "/late", When: faultproxy.Always(), Fault: faultproxy.DelayResponse(g)})
	ctx := testCtx(t)

	const n = 6
	errc := make(chan error, n)
	for i := range n {
		path := []string{"/hang", "/delay", "/late"}[i%3]
		go func() {
			_, _, err := do(t, client(t), ctx, http.MethodPost, p.URL()+path, "b")
			errc <- err
		}()
	}
	require.NoError(t, g.Wait(ctx, 4)) // the delays and late answers
	require.NoError(t, p.WaitInFlight(ctx, n))

	p.Close()
	for range n {
		assert.Error(t, <-errc)
	}
	st := p.Stats()
	assert.Equal(t, 0, st.InFlight)
	assert.Equal(t, n, st.MaxInFlight)
	assert.Len(t, logOf(t, p), n)
	for _, e := range logOf(t, p) {
		assert.Equal(t, 0, e.Status, "%s", e)
		assert.Contains(t, e.Note, "proxy closed", "%s", e)
	}
	assert.Equal(t, 2, countPath(up.Requests(), "/late"), "DelayResponse forwarded before it held")
	assert.Equal(t, 0, countPath(up.Requests(), "/delay"), "a Delay never released is never forwarded")
	p.Close() // twice is fine
}

func countPath(reqs []seen, path string) int {
	n := 0
	for _, r := range reqs {
		if r.URI == path {
			n++
		}
	}
	return n
}

func TestReset(t *testing.T) {
	up := newUpstream(t)
	p := faultproxy.New(t, up.srv.URL)
	p.SetKeepAlives(false)
	h := p.Add(faultproxy.Rule{Path: "/r", When: faultproxy.Nth(1), Fault: faultproxy.Reset()})
	c := client(t)
	ctx := testCtx(t)

	_, _, err := do(t, c, ctx, http.MethodGet, p.URL()+"/r", "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "connection reset by peer")
	assert.Equal(t, 1, h.Applied(), "on a fresh connection the transport does not replay")
	assert.Empty(t, up.Requests())

	_, body, err := do(t, c, ctx, http.MethodGet, p.URL()+"/r", "")
	require.NoError(t, err)
	assert.Equal(t, "GET /r ", body)
}

// TestTransportReplaysOnAReusedConnection pins down Go's behaviour that the package
// documentation warns about: a GET reset on a reused keep-alive connection is sent again
// by the transport itself, so the client never sees the fault.
func TestTransportReplaysOnAReusedConnection(t *testing.T) {
	up := newUpstream(t)
	p := faultproxy.New(t, up.srv.URL)
	c := client(t)
	ctx := testCtx(t)
	_, _, err := do(t, c, ctx, http.MethodGet, p.URL()+"/warm", "") // leaves an idle connection
	require.NoError(t, err)

	p.Add(faultproxy.Rule{Path: "/r", When: faultproxy.Nth(1), Fault: faultproxy.Reset()})
	_, body, err := do(t, c, ctx, http.MethodGet, p.URL()+"/r", "")
	require.NoError(t, err, "replayed by the transport")
	assert.Equal(t, "GET /r ", body)
	log := logOf(t, p)
	require.Len(t, log, 3)
	assert.Equal(t, faultproxy.KindReset, log[1].Fault)
	assert.Equal(t, faultproxy.KindNone, log[2].Fault)

	// A POST is never replayed.
	_, _, err = do(t, c, ctx, http.MethodGet, p.URL()+"/warm", "")
	require.NoError(t, err)
	p.Add(faultproxy.Rule{Method: http.MethodPost, Path: "/r", When: faultproxy.Nth(1), Fault: faultproxy.Reset()})
	_, _, err = do(t, c, ctx, http.MethodPost, p.URL()+"/r", "x")
	assert.Error(t, err)
}

func TestTruncate(t *testing.T) {
	up := newUpstream(t)
	p := faultproxy.New(t, up.srv.URL)
	p.Add(faultproxy.Rule{Path: "/", When: faultproxy.Always(), Fault: faultproxy.Truncate(1000)})
	c := client(t)
	ctx := testCtx(t)

	for _, path := range []string{"/bytes/50000", "/chunked/50000"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL()+path, nil)
		require.NoError(t, err)
		resp, err := c.Do(req)
		require.NoError(t, err, "the status line and headers arrive")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		if path == "/bytes/50000" {
			assert.EqualValues(t, 50000, resp.ContentLength, "the upstream's length is announced")
			assert.Equal(t, "yes", resp.Header.Get("X-Upstream"))
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		assert.ErrorIs(t, err, io.ErrUnexpectedEOF, path)
		assert.Equal(t, pattern(50000)[:1000], b, path)
	}
	log := logOf(t, p)
	require.Len(t, log, 2)
	assert.Equal(t, http.StatusOK, log[0].Status)
	assert.EqualValues(t, 1000, log[0].BytesOut)
	assert.Contains(t, log[0].Note, "cut after 1000 of 50000 bytes")
	assert.Contains(t, log[1].Note, "cut after 1000 of unknown bytes")
	assert.Len(t, up.Requests(), 2, "forwarded")
}

func TestShortBody(t *testing.T) {
	up := newUpstream(t)
	p := faultproxy.New(t, up.srv.URL)
	p.Add(faultproxy.Rule{Path: "/bytes/", When: faultproxy.Next(1), Fault: faultproxy.ShortBody(10)})
	resp, body, err := do(t, client(t), testCtx(t), http.MethodGet, p.URL()+"/bytes/5000", "")
	require.NoError(t, err, "a clean, shorter body")
	assert.EqualValues(t, 10, resp.ContentLength)
	assert.Equal(t, string(pattern(10)), body)
}

func TestLoseResponseCommitsUpstream(t *testing.T) {
	up := newUpstream(t)
	p := faultproxy.New(t, up.srv.URL)
	h := p.Add(faultproxy.Rule{Method: http.MethodPost, When: faultproxy.Nth(1), Fault: faultproxy.LoseResponse()})
	_, _, err := do(t, client(t), testCtx(t), http.MethodPost, p.URL()+"/commit", "the write")
	require.Error(t, err)
	reqs := up.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "the write", reqs[0].Body, "the upstream got the whole request")
	e := logOf(t, p)[0]
	assert.Equal(t, 0, e.Status)
	assert.Equal(t, http.StatusCreated, e.Upstream)
	assert.Contains(t, e.Note, "response lost")
	assert.Equal(t, 1, h.Applied())
}

func TestDelay(t *testing.T) {
	up := newUpstream(t)
	p := faultproxy.New(t, up.srv.URL)
	g := faultproxy.NewGate()
	p.Add(faultproxy.Rule{Path: "/d", When: faultproxy.Next(2), Fault: faultproxy.Delay(g)})
	ctx := testCtx(t)

	// One client gives up while held: its request is never forwarded.
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, _, err := do(t, client(t), cctx, http.MethodPost, p.URL()+"/d", "first")
		errc <- err
	}()
	require.NoError(t, g.Wait(ctx, 1))
	cancel()
	assert.ErrorIs(t, <-errc, context.Canceled)
	require.NoError(t, p.WaitFinished(ctx, 1))

	// The other is forwarded once released.
	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		_, body, err := do(t, client(t), ctx, http.MethodPost, p.URL()+"/d", "second")
		res <- result{body, err}
	}()
	require.NoError(t, g.Wait(ctx, 2))
	assert.Empty(t, up.Requests(), "nothing forwarded while held")
	g.Release()
	r := <-res
	require.NoError(t, r.err)
	assert.Equal(t, "POST /d second", r.body)
	reqs := up.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "second", reqs[0].Body)
}

func TestDelayResponse(t *testing.T) {
	up := newUpstream(t)
	p := faultproxy.New(t, up.srv.URL)
	g := faultproxy.NewGate()
	p.Add(faultproxy.Rule{Path: "/d", When: faultproxy.Always(), Fault: faultproxy.DelayResponse(g)})
	ctx := testCtx(t)

	type result struct {
		resp *http.Response
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, body, err := do(t, client(t), ctx, http.MethodPost, p.URL()+"/d", "w")
		res <- result{resp, body, err}
	}()
	require.NoError(t, g.Wait(ctx, 1))
	assert.Len(t, up.Requests(), 1, "committed before the answer is held")
	g.Release()
	r := <-res
	require.NoError(t, r.err)
	assert.Equal(t, http.StatusCreated, r.resp.StatusCode)
	assert.Equal(t, "POST /d w", r.body)

	// Released gates stay open.
	_, body, err := do(t, client(t), ctx, http.MethodPost, p.URL()+"/d", "x")
	require.NoError(t, err)
	assert.Equal(t, "POST /d x", body)
}

func TestDelayResponseLostWhenTheClientGivesUp(t *testing.T) {
	up := newUpstream(t)
	p := faultproxy.New(t, up.srv.URL)
	g := faultproxy.NewGate()
	p.Add(faultproxy.Rule{Path: "/d", When: faultproxy.Always(), Fault: faultproxy.DelayResponse(g)})
	ctx := testCtx(t)
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, _, err := do(t, client(t), cctx, http.MethodPost, p.URL()+"/d", "w")
		errc <- err
	}()
	require.NoError(t, g.Wait(ctx, 1))
	cancel()
	assert.ErrorIs(t, <-errc, context.Canceled)
	require.NoError(t, p.WaitFinished(ctx, 1))
	e := logOf(t, p)[0]
	assert.Equal(t, http.StatusCreated, e.Upstream)
	assert.Equal(t, 0, e.Status)
	assert.Contains(t, e.Note, "response lost")
	assert.Len(t, up.Requests(), 1)
}

// ---- concurrency and lifetime -------------------------------------------------------

func TestMaxInFlight(t *testing.T) {
	up := newUpstream(t)
	p := faultproxy.New(t, up.srv.URL)
	g := faultproxy.NewGate()
	p.Add(faultproxy.Rule{Path: "/d", When: faultproxy.Always(), Fault: faultproxy.Delay(g)})
	ctx := testCtx(t)
	const n = 8
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, _, err := do(t, client(t), ctx, http.MethodGet, p.URL()+"/d", "")
			assert.NoError(t, err)
		})
	}
	require.NoError(t, g.Wait(ctx, n))
	assert.Equal(t, n, p.Stats().InFlight)
	g.Release()
	wg.Wait()
	require.NoError(t, p.WaitFinished(ctx, n))
	st := p.Stats()
	assert.Equal(t, 0, st.InFlight)
	assert.Equal(t, n, st.MaxInFlight)
	p.ResetMaxInFlight()
	assert.Equal(t, 0, p.Stats().MaxInFlight)
}

func TestRulesChangeWhileTrafficFlows(t *testing.T) {
	up := newUpstream(t)
	p := faultproxy.New(t, up.srv.URL)
	ctx := testCtx(t)
	c := client(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, _, err := do(t, c, ctx, http.MethodGet, p.URL()+"/o/x", "")
				if err == nil {
					assert.Contains(t, []int{201, 500, 503}, resp.StatusCode)
				}
			}
		})
	}
	for i := range 200 {
		h := p.Add(faultproxy.Rule{Path: "/o/", When: faultproxy.Next(1 + i%3), Fault: faultproxy.Status(503)})
		p.Add(faultproxy.Rule{Path: "/o/", When: faultproxy.Nth(2), Fault: faultproxy.Status(500)})
		if i%2 == 0 {
			h.Remove()
		}
		if i%10 == 0 {
			p.Clear()
		}
		_ = p.Stats()
		_ = p.Log()
	}
	close(stop)
	wg.Wait()
	log := logOf(t, p)
	st := p.Stats()
	assert.Equal(t, st.Requests, len(log)+st.LogDropped)
	assert.Equal(t, 0, st.InFlight)
}

func TestLogLimit(t *testing.T) {
	up := newUpstream(t)
	p := faultproxy.New(t, up.srv.URL, faultproxy.WithLogLimit(2))
	c := client(t)
	for range 3 {
		_, _, err := do(t, c, testCtx(t), http.MethodGet, p.URL()+"/x", "")
		require.NoError(t, err)
	}
	assert.Len(t, logOf(t, p), 2)
	assert.Equal(t, 1, p.Stats().LogDropped)
	p.ClearLog()
	assert.Empty(t, logOf(t, p))
	assert.Equal(t, 3, p.Stats().Requests)
}

// TestNoGoroutinesAfterClose: Close waits for every handler, hijacked or held ones
// included, so no goroutine of this package is left.
func TestNoGoroutinesAfterClose(t *testing.T) {
	up := newUpstream(t)
	p, err := faultproxy.Start(up.srv.URL)
	require.NoError(t, err)
	ctx := testCtx(t)
	p.Add(faultproxy.Rule{Path: "/hang", When: faultproxy.Always(), Fault: faultproxy.Hang(nil)})
	p.Add(faultproxy.Rule{Path: "/reset", When: faultproxy.Always(), Fault: faultproxy.Reset()})
	p.Add(faultproxy.Rule{Path: "/bytes/", When: faultproxy.Always(), Fault: faultproxy.Truncate(5)})
	c := client(t)
	errc := make(chan error, 1)
	go func() {
		_, _, err := do(t, c, ctx, http.MethodGet, p.URL()+"/hang", "")
		errc <- err
	}()
	for _, path := range []string{"/reset", "/bytes/100", "/plain"} {
		_, _, _ = do(t, c, ctx, http.MethodGet, p.URL()+path, "")
	}
	require.NoError(t, p.WaitInFlight(ctx, 1))
	p.Close()
	assert.Error(t, <-errc)

	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	for _, g := range strings.Split(stacks, "\n\n") {
		if strings.Contains(g, "internal/faultproxy.") {
			t.Errorf("goroutine left after Close:\n%s", g)
		}
	}
}

func TestGateWaitEndsWithTheContext(t *testing.T) {
	g := faultproxy.NewGate()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := g.Wait(ctx, 1)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "0 arrived")
	g.Release()
	g.Release()
}

func TestEntryString(t *testing.T) {
	e := faultproxy.Entry{Seq: 3, Method: "GET", URL: "/x", Rule: "r", Fault: faultproxy.KindReset, Note: "reset"}
	assert.Equal(t, `#3 GET /x -> 0 [reset by "r"] reset`, e.String())
	assert.Equal(t, "lose-response", faultproxy.KindLoseResponse.String())
	assert.Equal(t, "Kind(99)", faultproxy.Kind(99).String())
}
