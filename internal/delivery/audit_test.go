package delivery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/delivery"
	"github.com/tamperguard/tamperguard/internal/engine"
)

// An audit request may name a prefix (one shard of a big bucket); a prefix that cannot be an
// object name is malformed.
func TestAuditRequestPrefix(t *testing.T) {
	req, err := delivery.DecodeCloudEvent(pubsubCE(map[string]string{"tamperguard": "audit", "prefix": "dl/"}, []byte("{}"), nil))
	require.NoError(t, err)
	assert.True(t, req.Audit)
	assert.Equal(t, "dl/", req.AuditPrefix)
	req, err = delivery.DecodeMessage("m1", map[string]string{"tamperguard": "audit", "prefix": "v1."}, nil, req.PublishTime)
	require.NoError(t, err)
	assert.Equal(t, "v1.", req.AuditPrefix)
	_, err = delivery.DecodeMessage("m2", map[string]string{"tamperguard": "audit", "prefix": "a\nb"}, nil, req.PublishTime)
	var derr *delivery.DecodeError
	require.ErrorAs(t, err, &derr)
	assert.Equal(t, "message.attributes.prefix", derr.Field)
}

// safeBuffer is a log sink for the service's lines.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) lines(t *testing.T) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		out = append(out, m)
	}
	return out
}

// A requested audit logs what is not ok, one line each, and the ok objects only in its
// closing line's counts; a request for a prefix audits that shard only.
func TestRequestedAuditSummarisesOkObjects(t *testing.T) {
	logs := &safeBuffer{}
	s := newStack(t, nil, delivery.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	s.put("install.sh", s.good)
	for i := range 12 {
		s.put(fmt.Sprintf("dl/a%02d.sh", i), s.good)
	}
	s.put("dl/b.sh", append(append([]byte(nil), s.good...), "echo pwned\n"...))

	o := s.svc.Deliver(context.Background(), delivery.Request{Type: delivery.TypeMessagePublished, ID: "audit-1", Audit: true, AuditPrefix: "dl/a"})
	assert.True(t, o.Ack, o.Err)
	lines := logs.lines(t)
	var objects []string
	var done map[string]any
	for _, l := range lines {
		if o, ok := l["object"].(string); ok {
			objects = append(objects, o)
		}
		if l["msg"] == "audit finished" {
			done = l
		}
	}
	assert.Empty(t, objects, "no line per ok object")
	require.NotNil(t, done)
	assert.EqualValues(t, 12, done["ok"])
	assert.EqualValues(t, 12, done["listed"])
	assert.Equal(t, "dl/a", done["prefix"])

	o = s.svc.Deliver(context.Background(), delivery.Request{Type: delivery.TypeMessagePublished, ID: "audit-2", Audit: true})
	assert.True(t, o.Ack, o.Err)
	objects = nil
	for _, l := range logs.lines(t)[len(lines):] {
		if o, ok := l["object"].(string); ok {
			objects = append(objects, o)
		}
	}
	assert.Equal(t, []string{"dl/b.sh"}, objects, "the tampered one, restored")
	assert.Equal(t, s.good, s.live("dl/b.sh"))
}

// An audit that reaches its deadline's reserve stops, and its request is retried, never
// acknowledged: the retry resumes and finishes the pass (here: restores what the first run
// never reached).
func TestCutAuditIsRetriedNotAcknowledged(t *testing.T) {
	s := newStack(t, nil, delivery.Options{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	for i := range 5 {
		s.put(fmt.Sprintf("dl/a%02d.sh", i), s.good)
	}
	s.put("dl/b.sh", append(append([]byte(nil), s.good...), "echo pwned\n"...))

	// Less time left than the audit keeps in reserve (at least 2 s): it stops before the
	// first object.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	o := s.svc.Deliver(ctx, delivery.Request{Type: delivery.TypeMessagePublished, ID: "audit-1", Audit: true, AuditPrefix: "dl/"})
	cancel()
	assert.False(t, o.Ack, "a cut audit is delivered again")
	assert.Equal(t, "audit_incomplete", o.Why)
	assert.ErrorIs(t, o.Err, engine.ErrAuditCut)
	assert.NotEqual(t, s.good, s.live("dl/b.sh"), "nothing judged yet")

	o = s.svc.Deliver(context.Background(), delivery.Request{Type: delivery.TypeMessagePublished, ID: "audit-1", Audit: true, AuditPrefix: "dl/"})
	assert.True(t, o.Ack, o.Err)
	assert.Equal(t, s.good, s.live("dl/b.sh"), "the retry finished the pass")
}
