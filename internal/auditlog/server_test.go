package auditlog

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// clock is a fake clock; its sleeper advances it instead of sleeping.
type clock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	c.sleeps = append(c.sleeps, d)
	return nil
}

// stored is an entry of the fake Logging API and when it becomes readable.
type stored struct {
	raw     json.RawMessage
	arrival time.Time
}

// loggingServer answers entries:list in the Logging API's shape. It returns the readable
// entries in order, paged by pageSize, without evaluating the filter: the client must
// check every entry it gets (and the filter is tested on its own).
type loggingServer struct {
	t     *testing.T
	clock *clock
	srv   *httptest.Server

	mu       sync.Mutex
	entries  []stored
	requests []listRequest
	headers  []http.Header
	fail     []int  // statuses to answer with, one per request, before answering normally
	body     []byte // when set, answered verbatim with 200
	endless  bool   // always answer with a next page token
}

func newLoggingServer(t *testing.T, c *clock) *loggingServer {
	s := &loggingServer{t: t, clock: c}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *loggingServer) add(raw json.RawMessage, arrival time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries = append(s.entries, stored{raw: raw, arrival: arrival})
}

func (s *loggingServer) reqs() []listRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]listRequest(nil), s.requests...)
}

func (s *loggingServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v2/entries:list" {
		http.Error(w, `{"error":{"code":404,"message":"no such method","status":"NOT_FOUND"}}`, http.StatusNotFound)
		return
	}
	var req listRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"error":{"code":400,"message":"bad body","status":"INVALID_ARGUMENT"}}`, http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, req)
	s.headers = append(s.headers, r.Header.Clone())
	if len(s.fail) > 0 {
		code := s.fail[0]
		s.fail = s.fail[1:]
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write([]byte(`{"error":{"code":` + strconv.Itoa(code) + `,"message":"The caller does not have permission\nto read projects/example-project","status":"PERMISSION_DENIED"}}`))
		return
	}
	if s.body != nil {
		_, _ = w.Write(s.body)
		return
	}
	now := s.clock.now()
	var visible []json.RawMessage
	for _, e := range s.entries {
		if !now.Before(e.arrival) {
			visible = append(visible, e.raw)
		}
	}
	start := 0
	if req.PageToken != "" {
		start, _ = strconv.Atoi(req.PageToken)
	}
	size := req.PageSize
	if size <= 0 {
		size = 50
	}
	end := min(start+size, len(visible))
	start = min(start, end)
	resp := map[string]any{"entries": visible[start:end]}
	if end < len(visible) {
		resp["nextPageToken"] = strconv.Itoa(end)
	} else if s.endless {
		resp["nextPageToken"] = strconv.Itoa(end)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// fixture reads testdata/NAME as a decoded JSON object.
func fixture(t *testing.T, name string) map[string]any {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	return m
}

// entryJSON makes a variation of the upload entry of testdata/data-write-create.json.
func entryJSON(t *testing.T, edit func(e map[string]any)) json.RawMessage {
	t.Helper()
	e := fixture(t, "data-write-create.json")
	if edit != nil {
		edit(e)
	}
	data, err := json.Marshal(e)
	require.NoError(t, err)
	return data
}

func pp(e map[string]any) map[string]any { return e["protoPayload"].(map[string]any) }

func at(ts time.Time) func(map[string]any) {
	return func(e map[string]any) { e["timestamp"] = ts.UTC().Format(time.RFC3339Nano) }
}

func object(bucket, name string) func(map[string]any) {
	return func(e map[string]any) {
		pp(e)["resourceName"] = ResourceName(bucket, name)
		e["resource"].(map[string]any)["labels"].(map[string]any)["bucket_name"] = bucket
	}
}

func method(m string) func(map[string]any) {
	return func(e map[string]any) { pp(e)["methodName"] = m }
}

func principal(p string) func(map[string]any) {
	return func(e map[string]any) {
		pp(e)["authenticationInfo"].(map[string]any)["principalEmail"] = p
	}
}

func insertID(id string) func(map[string]any) {
	return func(e map[string]any) { e["insertId"] = id }
}

func all(fs ...func(map[string]any)) func(map[string]any) {
	return func(e map[string]any) {
		for _, f := range fs {
			f(e)
		}
	}
}

// newClient makes a client on the fake server and clock.
func newClient(t *testing.T, s *loggingServer, opts ...Option) *Client {
	t.Helper()
	base := []Option{WithEndpoint(s.srv.URL), WithClock(s.clock.now, s.clock.sleep)}
	c, err := New(context.Background(), "projects/example-project", append(base, opts...)...)
	require.NoError(t, err)
	return c
}
