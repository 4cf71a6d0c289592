package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// claimTimeout is how long an incident may stay "handling" before another delivery may
// take it over (its owner died mid-way).
const claimTimeout = 2 * time.Minute

// recentWindow is how long this instance remembers incidents it handled.
const recentWindow = time.Hour

// maxRecordSize bounds the records read back from the state bucket.
const maxRecordSize = 1 << 20

// Incident statuses.
const (
	statusHandling = "handling"
	statusDone     = "done"
)

// incidentRecord is kept at incidents/<bucket>/<object>/<generation>.json in the state
// bucket. Its creation with DoesNotExist decides which instance owns the incident.
type incidentRecord struct {
	Key      string    `json:"key"`
	Status   string    `json:"status"`
	Started  time.Time `json:"started"`
	Updated  time.Time `json:"updated"`
	Decision *Decision `json:"decision,omitempty"`
}

// incident is one owned incident.
type incident struct {
	key    string
	name   string // record object in the state bucket; "" without one
	gen    int64  // the record's generation, for conditional updates
	record incidentRecord
}

// Incident kinds, part of the key: one generation can be written tampered, later deleted,
// and have its metadata changed many times, and each of those is its own incident.
const (
	incidentTampered = ""
	incidentGone     = ".gone"
)

func incidentMetadata(metageneration int64) string { return fmt.Sprintf(".m%d", metageneration) }

func incidentKey(d *Decision, kind string) string {
	return fmt.Sprintf("%s/%s#%d%s", d.Bucket, d.Object, d.Generation, kind)
}

// claim makes this delivery the owner of the incident, or returns nil when another one is.
func (e *Engine) claim(ctx context.Context, d *Decision, kind string) (*incident, error) {
	key := incidentKey(d, kind)
	now := e.now()
	e.mu.Lock()
	for k, t := range e.recent {
		if now.Sub(t) > recentWindow {
			delete(e.recent, k)
		}
	}
	if _, seen := e.recent[key]; seen {
		e.mu.Unlock()
		return nil, nil
	}
	e.recent[key] = now
	e.mu.Unlock()

	inc := &incident{key: key, record: incidentRecord{Key: key, Status: statusHandling, Started: now, Updated: now}}
	if e.state == "" {
		return inc, nil
	}
	inc.name = fmt.Sprintf("incidents/%s/%s/%d%s.json", d.Bucket, d.Object, d.Generation, kind)
	attrs, err := e.writeRecord(ctx, inc.name, Condition{DoesNotExist: true}, inc.record)
	if err == nil {
		inc.gen = attrs.Generation
		return inc, nil
	}
	if !errors.Is(err, ErrPrecondition) {
		e.forget(key)
		return nil, fmt.Errorf("creating incident record gs://%s/%s: %w", e.state, inc.name, err)
	}
	// Someone created it first. Take it over only if its owner died mid-way.
	var existing incidentRecord
	gen, err := e.readRecord(ctx, inc.name, &existing)
	if err != nil {
		e.forget(key)
		return nil, fmt.Errorf("reading incident record gs://%s/%s: %w", e.state, inc.name, err)
	}
	if existing.Status == statusDone || now.Sub(existing.Updated) < claimTimeout {
		return nil, nil
	}
	attrs, err = e.writeRecord(ctx, inc.name, Condition{GenerationMatch: gen}, inc.record)
	if errors.Is(err, ErrPrecondition) {
		return nil, nil
	}
	if err != nil {
		e.forget(key)
		return nil, fmt.Errorf("taking over incident record gs://%s/%s: %w", e.state, inc.name, err)
	}
	e.log.Warn("took over an incident abandoned mid-way", "incident", key, "started", existing.Started)
	inc.gen = attrs.Generation
	return inc, nil
}

// own claims the incident for d, or records on d why it cannot: a failure to reach the
// state bucket (transient) or another delivery owning it (duplicate).
func (e *Engine) own(ctx context.Context, d *Decision, kind string) (*incident, bool) {
	inc, err := e.claim(ctx, d, kind)
	if err != nil {
		d.setErr(err)
		d.Transient = true
		return nil, false
	}
	if inc == nil {
		d.Duplicate, d.Reason = true, ReasonDuplicate
		return nil, false
	}
	return inc, true
}

func (e *Engine) forget(key string) {
	e.mu.Lock()
	delete(e.recent, key)
	e.mu.Unlock()
}

// release gives up an incident after a transient failure, so the retry can own it.
func (e *Engine) release(ctx context.Context, inc *incident) {
	e.forget(inc.key)
	if inc.name == "" {
		return
	}
	if err := e.store.Delete(ctx, e.state, inc.name, Condition{GenerationMatch: inc.gen}); err != nil && !errors.Is(err, ErrObjectNotFound) {
		e.log.Error("releasing incident record failed; a retry may wait for the claim timeout", "incident", inc.key, "error", err)
	}
}

// finish alerts and records the outcome. Neither blocks nor undoes what was done.
func (e *Engine) finish(ctx context.Context, inc *incident, d *Decision) {
	e.notify(ctx, d)
	if inc.name == "" {
		return
	}
	inc.record.Status, inc.record.Updated, inc.record.Decision = statusDone, e.now(), d
	if _, err := e.writeRecord(ctx, inc.name, Condition{GenerationMatch: inc.gen}, inc.record); err != nil {
		e.log.Error("recording incident outcome failed", "incident", inc.key, "error", err)
	}
}

func (e *Engine) notify(ctx context.Context, d *Decision) {
	if e.notifier == nil {
		return
	}
	if err := e.notifier.Notify(ctx, d); err != nil {
		e.log.Error("alert not delivered", "bucket", d.Bucket, "object", d.Object, "generation", d.Generation, "error", err)
	}
}

func (e *Engine) writeRecord(ctx context.Context, name string, cond Condition, v any) (ObjectAttrs, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return ObjectAttrs{}, err
	}
	return e.store.Write(ctx, e.state, name, cond, Metadata{ContentType: "application/json", CacheControl: "no-store"}, strings.NewReader(string(b)))
}

// readRecord reads a JSON record from the state bucket and returns its generation.
func (e *Engine) readRecord(ctx context.Context, name string, v any) (int64, error) {
	attrs, err := e.store.Attrs(ctx, e.state, name, 0)
	if err != nil {
		return 0, err
	}
	r, err := e.store.Open(ctx, e.state, name, attrs.Generation)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxRecordSize+1))
	if err != nil {
		return 0, err
	}
	if len(b) > maxRecordSize {
		return 0, fmt.Errorf("record gs://%s/%s is over %d bytes", e.state, name, maxRecordSize)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return 0, fmt.Errorf("record gs://%s/%s is not valid JSON: %w", e.state, name, err)
	}
	return attrs.Generation, nil
}
