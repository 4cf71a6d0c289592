package function

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/tamperguard/tamperguard/internal/cloudlog"
)

// Trace correlation. Cloud Run gives each request a trace (X-Cloud-Trace-Context, or W3C
// traceparent); its log lines are grouped under it when they carry
// logging.googleapis.com/trace. The Functions Framework hands VerifyObject only the
// CloudEvent, so the front, which sees the request, notes the trace under the event's id,
// and VerifyObject takes it from there into the context its lines are logged with.

// projectEnv names the project a trace belongs to (the Terraform module sets it).
var projectEnv = []string{"GOOGLE_CLOUD_PROJECT", "GCP_PROJECT"}

func project() string {
	for _, k := range projectEnv {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return ""
}

// traceTable holds traces by event id, bounded in size and age.
type traceTable struct {
	mu   sync.Mutex
	m    map[string]traceEntry
	max  int
	keep time.Duration
}

type traceEntry struct {
	trace string
	at    time.Time
}

var traces = &traceTable{m: map[string]traceEntry{}, max: 4096, keep: 15 * time.Minute}

func (t *traceTable) put(id, trace string) {
	if id == "" || trace == "" || len(id) > 512 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if len(t.m) >= t.max {
		for k, e := range t.m {
			if now.Sub(e.at) > t.keep || len(t.m) >= t.max {
				delete(t.m, k)
			}
		}
	}
	t.m[id] = traceEntry{trace: trace, at: now}
}

func (t *traceTable) take(id string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[id]
	if !ok {
		return ""
	}
	delete(t.m, id)
	return e.trace
}

// noteTrace records r's trace under the id of the event it carries, reading the body when
// the id is inside it (structured CloudEvents, Pub/Sub push); the body is put back as read.
// It does nothing when r carries no trace or no project is known.
func noteTrace(r *http.Request) error {
	trace := cloudlog.TraceName(project(), r.Header.Get("traceparent"), r.Header.Get("X-Cloud-Trace-Context"))
	if trace == "" {
		return nil
	}
	if id := r.Header.Get("ce-id"); id != "" {
		traces.put(id, trace)
		return nil
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	body, err := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return err
	}
	var ev struct {
		ID      string `json:"id"`      // a structured CloudEvent
		EventID string `json:"eventId"` // a background event
		Message struct {
			MessageID  string `json:"messageId"`
			MessageID2 string `json:"message_id"`
		} `json:"message"` // a Pub/Sub push
	}
	if json.Unmarshal(body, &ev) != nil {
		return nil
	}
	for _, id := range []string{ev.ID, ev.EventID, ev.Message.MessageID, ev.Message.MessageID2} {
		if id != "" {
			traces.put(id, trace)
			return nil
		}
	}
	return nil
}
