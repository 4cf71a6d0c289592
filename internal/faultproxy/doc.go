// Package faultproxy is an in-process HTTP reverse proxy for tests that injects faults
// between a client and an upstream server: it answers with an error status instead of
// forwarding, holds a request until the client gives up or the test releases it, resets
// the connection, cuts a response body short, or forwards a request (so the upstream
// commits it) and then drops the answer.
//
// It exists to prove what a client does when a step of a protocol fails in each of those
// ways, with the real client library (the Cloud Storage SDK, the Slack client) on one side
// and a faithful fake on the other.
//
// # Rules
//
// A Rule matches a request by method, by substrings of its escaped path and raw query,
// and by a func(*http.Request) bool, and says on which of the matching requests its fault
// applies: Nth(n), Next(n), From(n) or Always(). Rules are consulted in the order they
// were added; a request that matches a rule outside its window falls through to the
// following rules, and one no rule claims is forwarded untouched. Rules can be added and
// removed while traffic flows.
//
// # Fault kinds
//
//	Status(code)       answer code without forwarding; by default with the JSON error body of
//	                   Cloud Storage; WithHeader / WithBody change it (e.g. Retry-After, Slack)
//	Hang(gate)         hold the request without answering until the client gives up (its
//	                   context or connection ends), the gate is released or the proxy closes;
//	                   then drop the connection. Never forwarded.
//	Reset()            close the connection without any answer (TCP RST). Never forwarded.
//	Truncate(k)        forward; send the upstream's status and headers (its Content-Length
//	                   kept) and the first k bytes of its body; close the connection. The
//	                   client sees a body cut short (io.ErrUnexpectedEOF).
//	ShortBody(k)       forward; send the first k bytes of the body with Content-Length: k. The
//	                   client sees a complete, shorter body: a front end that lies.
//	LoseResponse()     forward (the upstream commits the request), read its whole answer, then
//	                   drop the connection without answering.
//	Delay(gate)        hold the request, forward it when the gate is released.
//	DelayResponse(gate) forward, read the whole answer, hold it until the gate is released,
//	                   then send it; if the client gives up first, the answer is lost.
//
// Dropped connections are closed with SO_LINGER 0, so the client gets a reset. Requests
// that are held have their body read first (Hang, Delay): only then does net/http notice
// that the client went away, so a held request ends when its client gives up.
//
// # What the client's transport does with a dropped connection
//
// Go's http.Transport silently sends a request again on a new connection when a reused
// keep-alive connection breaks before any response byte arrived and the request is
// replayable (GET, HEAD, OPTIONS without a body, or one with an Idempotency-Key header).
// So a single Reset or LoseResponse of a GET on a reused connection is invisible to the
// client: the retry goes through the proxy again (and consumes a second match of the
// rule, if its window is still open). Uploads and other POSTs are never replayed by the
// transport. SetKeepAlives(false) makes every request use a fresh connection, which makes
// the number of attempts exact.
//
// # Observability
//
// Log lists every finished request in arrival order (method, path and query, the rule and fault
// applied, the status the client got or 0 if it got none, the upstream's status); Stats
// counts requests, bytes, the requests in flight now and the most in flight at once;
// Handle reports how many requests matched a rule and how many it was applied to.
//
// # Lifetime
//
// Close releases every held request, waits for every handler (hijacked ones included) and
// closes the idle connections to the upstream. New registers Close with t.Cleanup.
package faultproxy
