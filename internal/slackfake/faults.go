package slackfake

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/tamperguard/tamperguard/internal/faultproxy"
)

// WithFaults starts a faultproxy in front of the fake and returns it with the endpoints
// that go through it. Both are closed when the test ends.
func (s *Server) WithFaults(t testing.TB) (*faultproxy.Proxy, Endpoints) {
	t.Helper()
	p := faultproxy.New(t, s.URL)
	return p, endpointsAt(p.URL())
}

// Method matches the requests to one Web API method, e.g. "chat.postMessage".
func Method(name string) func(*http.Request) bool {
	return func(r *http.Request) bool { return r.URL.Path == "/api/"+name }
}

// Webhook matches the requests to the incoming webhook.
func Webhook() func(*http.Request) bool {
	return func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/services/") }
}

// Error is a fault that answers as the Web API does when a call fails: HTTP 200 with
// {"ok": false, "error": code}. The call is not forwarded.
func Error(code string) faultproxy.Fault {
	body, err := json.Marshal(map[string]any{"ok": false, "error": code})
	if err != nil {
		panic(err) // a map of a bool and a string always marshals
	}
	return faultproxy.Status(http.StatusOK).WithBody("application/json; charset=utf-8", body)
}

// RateLimited is a fault that answers as Slack does past a rate limit: HTTP 429 with
// Retry-After (seconds) and {"ok": false, "error": "ratelimited"}.
func RateLimited(retryAfter int) faultproxy.Fault {
	return faultproxy.Status(http.StatusTooManyRequests).
		WithHeader("Retry-After", strconv.Itoa(retryAfter)).
		WithBody("application/json; charset=utf-8", []byte(`{"ok":false,"error":"ratelimited"}`))
}

// ServerError is a fault that answers code (5xx) with an HTML page, as Slack's front end
// does when it fails.
func ServerError(code int) faultproxy.Fault {
	return faultproxy.Status(code).WithBody("text/html; charset=utf-8",
		[]byte("<html><body><h1>"+strconv.Itoa(code)+" "+http.StatusText(code)+"</h1></body></html>"))
}
