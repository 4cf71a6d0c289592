package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/policy"
	"github.com/tamperguard/tamperguard/internal/posture"
)

// Is the bucket still guarded. With a posture: section, every audit (the scheduled one, and
// the CLI's) runs the posture checks (internal/posture) after the objects, and so does an
// Admin Activity audit entry of the watched bucket that the posture route delivers. Each
// finding is a log line (and, from the CLI's audit, a JSON line); each change (Finding.New)
// is one alert, threaded per check. The checker's Store makes "one alert per change" hold
// across instances.

// PostureChecker checks the watched bucket's posture (*posture.Checker).
type PostureChecker interface {
	Check(ctx context.Context) (posture.Report, error)
}

// PostureNotifier is a notifier that can alert about posture findings (alerting's Slack and
// log notifiers).
type PostureNotifier interface {
	NotifyPosture(ctx context.Context, f posture.Finding) error
}

// PostureConfig is the checker's configuration for a policy's posture section.
func PostureConfig(p *policy.Posture) posture.Config {
	cfg := posture.Config{Project: p.Project, Bucket: p.Bucket, Repair: p.Repair,
		AllowedHMACAccessIDs: append([]string(nil), p.AllowedHMACAccessIDs...)}
	if n := p.Notification; n != nil {
		cfg.Notification = &posture.Notification{TopicProject: n.TopicProject, Topic: n.Topic,
			EventTypes: append([]string(nil), n.EventTypes...), PayloadFormat: n.PayloadFormat, ObjectNamePrefix: n.ObjectNamePrefix}
	}
	return cfg
}

// postureRunner runs one check at a time. A request that arrives while a check runs waits
// for the next one, unless a check that started after it arrived has finished meanwhile:
// then that check's result is its answer (a burst of Admin Activity entries makes one or two
// checks, not one each).
type postureRunner struct {
	checker PostureChecker
	bucket  string
	run     chan struct{} // held while a check runs

	mu       sync.Mutex
	started  uint64 // checks started
	finished uint64 // the number of the last check finished
	last     posture.Report
	lastErr  error
}

func newPostureRunner(c PostureChecker, bucket string) *postureRunner {
	return &postureRunner{checker: c, bucket: bucket, run: make(chan struct{}, 1)}
}

// check returns a report made by a check that started after the call; fresh reports
// whether this call made it (and must alert about its findings).
func (p *postureRunner) check(ctx context.Context) (r posture.Report, fresh bool, err error) {
	p.mu.Lock()
	arrived := p.started
	p.mu.Unlock()
	select {
	case p.run <- struct{}{}:
	case <-ctx.Done():
		return posture.Report{}, false, ctx.Err()
	}
	defer func() { <-p.run }()
	p.mu.Lock()
	if p.finished > arrived {
		r, err = p.last, p.lastErr
		p.mu.Unlock()
		return r, false, err
	}
	p.started++
	n := p.started
	p.mu.Unlock()

	r, err = p.checker.Check(ctx)

	p.mu.Lock()
	p.finished, p.last, p.lastErr = n, r, err
	p.mu.Unlock()
	return r, true, err
}

// CheckPosture runs the posture checks (nil without a posture: section) and alerts about
// each new finding; the caller prints the findings (the CLI's audit). The error says the
// record of findings could not be read or written: then "new" cannot be trusted, and the
// caller may retry.
func (s *Service) CheckPosture(ctx context.Context) (*posture.Report, error) {
	return s.runPosture(ctx, "", false)
}

// runPosture is CheckPosture for the runtime, which logs every finding. why says what asked
// ("audit", "admin_activity").
func (s *Service) runPosture(ctx context.Context, why string, logged bool) (*posture.Report, error) {
	if s.posture == nil {
		return nil, nil
	}
	r, fresh, err := s.posture.check(ctx)
	if !fresh {
		return &r, err
	}
	if logged {
		for _, f := range r.Findings {
			s.logFinding(ctx, why, f)
		}
		if err != nil {
			s.log.Error("posture check incomplete: its record could not be kept, so a change may be reported again or not at all",
				"bucket", s.posture.bucket, "trigger", why, "error", err.Error())
		}
	}
	for _, f := range r.New() {
		s.alertFinding(f)
	}
	return &r, err
}

// logFinding writes a finding's line: failing at ERROR, a change at WARN, a recovery at
// INFO, an unchanged healthy check at DEBUG.
func (s *Service) logFinding(ctx context.Context, why string, f posture.Finding) {
	level := slog.LevelDebug
	switch {
	case f.Status == posture.StatusFailing:
		level = slog.LevelError
	case f.Status == posture.StatusChanged:
		level = slog.LevelWarn
	case f.New:
		level = slog.LevelInfo
	}
	if !s.dlog.Enabled(ctx, level) {
		return
	}
	a := []any{"kind", "posture", "trigger", why, "bucket", f.Bucket, "check", f.Check, "status", string(f.Status),
		"detail", f.Detail, "new", f.New}
	if f.Observed != "" {
		a = append(a, "observed", f.Observed)
	}
	if f.Baseline != "" {
		a = append(a, "baseline", f.Baseline)
	}
	if f.Repair != "" {
		a = append(a, "repair", f.Repair, "repaired", f.Repaired)
	}
	if f.Err != nil {
		a = append(a, "error", f.Err.Error())
	}
	s.dlog.Log(ctx, level, "posture "+f.Check+": "+string(f.Status), a...)
}

// alertFinding sends a new finding's alert. It is not retried: the record already says the
// change was seen; a notifier that fails logs the alert's full text.
func (s *Service) alertFinding(f posture.Finding) {
	n, ok := s.notifier.(PostureNotifier)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(s.bg, DefaultAlertTimeout)
	defer cancel()
	if err := n.NotifyPosture(ctx, f); err != nil {
		s.log.Error("posture alert not delivered", "bucket", f.Bucket, "check", f.Check, "status", string(f.Status), "error", err.Error())
	}
}

// postureHint handles an audit log entry from the posture route: an Admin Activity entry
// of the watched bucket (or of the project's HMAC keys) runs the posture checks now; any
// other entry is acknowledged with a line saying why.
func (s *Service) postureHint(ctx context.Context, req Request) Outcome {
	e := req.Posture
	attrs := append(eventAttrs(req), "log_name", clip(e.LogName), "insert_id", clip(e.InsertID), "service", clip(e.Service),
		"method", clip(e.Method), "bucket", clip(e.Bucket), "principal", clip(e.WrittenBy.Principal))
	switch {
	case s.posture == nil:
		s.log.Warn("audit log entry acknowledged without action: the configuration has no posture: section", attrs...)
		return ack("unsupported")
	case !e.AdminActivity() || e.Service != "storage.googleapis.com":
		s.log.Warn("audit log entry acknowledged without action: not a Cloud Storage Admin Activity entry", attrs...)
		return ack("unsupported")
	case e.Bucket != s.posture.bucket && !strings.HasPrefix(e.Method, "storage.hmacKeys."):
		s.log.Info("Admin Activity entry acknowledged without action: not about the watched bucket or the project's HMAC keys", attrs...)
		return ack("unsupported")
	case !e.OK:
		// Refused: nothing changed. Someone tried, though.
		s.log.Warn("refused Admin Activity request on the watched bucket: nothing changed", attrs...)
		return ack("final")
	}
	s.log.Info("Admin Activity entry of the watched bucket: checking its posture", attrs...)
	_, err := s.runPosture(ctx, "admin_activity", true)
	if err != nil && (errors.Is(err, engine.ErrTransient) || ctx.Err() != nil) {
		return Outcome{Why: "transient", Err: err}
	}
	return ack("final")
}

// Posture describes the posture checks for the startup line.
func (s *Service) Posture() string {
	if s.posture == nil {
		return "off: the configuration has no posture: section"
	}
	return "on: gs://" + s.posture.bucket
}

// --- the posture record in the state bucket ------------------------------------------------

// maxPostureRecord bounds what is read back from the state bucket.
const maxPostureRecord = 1 << 20

// statePosture keeps posture records in the state bucket, at posture/<bucket>.json: created
// with DoesNotExist, replaced with GenerationMatch (the generation is the version), so of
// two instances that observe one change only one records it, and only that one alerts.
type statePosture struct {
	store  engine.Store
	bucket string
	log    *slog.Logger
}

// NewStatePostureStore returns a posture.Store over the state bucket.
func NewStatePostureStore(store engine.Store, stateBucket string, log *slog.Logger) posture.Store {
	if log == nil {
		log = slog.Default()
	}
	return &statePosture{store: store, bucket: stateBucket, log: log}
}

type postureRecord struct {
	Bucket string         `json:"bucket"`
	Record posture.Record `json:"record"`
}

func postureObject(bucket string) string { return "posture/" + bucket + ".json" }

func (s *statePosture) Load(ctx context.Context, bucket string) (posture.Record, string, error) {
	name := postureObject(bucket)
	for attempt := 0; ; attempt++ {
		attrs, err := s.store.Attrs(ctx, s.bucket, name, 0)
		if errors.Is(err, engine.ErrObjectNotFound) {
			return posture.Record{}, "", nil
		}
		if err != nil {
			return posture.Record{}, "", fmt.Errorf("reading posture record gs://%s/%s: %w", s.bucket, name, err)
		}
		r, err := s.store.Open(ctx, s.bucket, name, attrs.Generation)
		if errors.Is(err, engine.ErrObjectNotFound) && attempt < 2 {
			continue // replaced between the two reads
		}
		if err != nil {
			return posture.Record{}, "", fmt.Errorf("reading posture record gs://%s/%s: %w", s.bucket, name, err)
		}
		b, err := io.ReadAll(io.LimitReader(r, maxPostureRecord+1))
		r.Close()
		if err != nil {
			return posture.Record{}, "", fmt.Errorf("reading posture record gs://%s/%s: %w", s.bucket, name, err)
		}
		version := strconv.FormatInt(attrs.Generation, 10)
		var rec postureRecord
		if len(b) > maxPostureRecord || json.Unmarshal(b, &rec) != nil || rec.Bucket != bucket {
			// Unusable: start again from this observation, and let the save replace it.
			s.log.Warn("posture record unreadable; the bucket's posture is taken as a new baseline", "record", "gs://"+s.bucket+"/"+name)
			return posture.Record{}, version, nil
		}
		return rec.Record, version, nil
	}
}

func (s *statePosture) Save(ctx context.Context, bucket string, rec posture.Record, ifVersion string) (string, error) {
	name := postureObject(bucket)
	b, err := json.Marshal(postureRecord{Bucket: bucket, Record: rec})
	if err != nil {
		return "", err
	}
	cond := engine.Condition{DoesNotExist: true}
	if ifVersion != "" {
		g, err := strconv.ParseInt(ifVersion, 10, 64)
		if err != nil || g <= 0 {
			return "", fmt.Errorf("posture record version %q is not a generation", ifVersion)
		}
		cond = engine.Condition{GenerationMatch: g}
	}
	attrs, err := s.store.Write(ctx, s.bucket, name, cond, engine.Metadata{ContentType: "application/json", CacheControl: "no-store"}, strings.NewReader(string(b)))
	if errors.Is(err, engine.ErrPrecondition) {
		return "", posture.ErrConflict
	}
	if err != nil {
		return "", fmt.Errorf("saving posture record gs://%s/%s: %w", s.bucket, name, err)
	}
	return strconv.FormatInt(attrs.Generation, 10), nil
}

// observeOnly is a Store that reads the record and never writes it: check and audit without
// --restore report the posture against what is recorded without taking a change as
// reported (the deployment's own audit still alerts about it).
type observeOnly struct{ posture.Store }

func (o observeOnly) Save(_ context.Context, _ string, _ posture.Record, ifVersion string) (string, error) {
	return ifVersion, nil
}
