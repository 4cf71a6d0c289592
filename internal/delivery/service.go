// Package delivery is tamperguard's delivery runtime: the one place that turns a delivered
// event into an outcome. The Cloud Function, the CLI's serve (the same function) and watch
// (Pub/Sub pull) only decode what their transport carries and translate the outcome:
// acknowledge (nil, Ack) or deliver again (an error, Nack).
//
// For every request the rules are the same: decode (a malformed or unsupported event is
// acknowledged: a redelivery would be just as wrong), the max-age gate (an event older than
// the sweep's horizon is acknowledged), then judge the event or run an audit in a work slot,
// log the decision, and send its alert outside the work slot (a slow Slack never holds a
// restore). The event is acknowledged only when its outcome is final: the work is done and
// recorded, and the alert went out (or was not needed). A transient failure, an incident
// another delivery holds under a live lease, or an alert that could not be sent yet is a
// retry.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/tamperguard/tamperguard/internal/auditlog"
	"github.com/tamperguard/tamperguard/internal/cloudlog"
	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/policy"
	"github.com/tamperguard/tamperguard/internal/posture"
)

// DefaultMaxEventAge is how old an event may be and still be acted on. Older ones have
// been retried for a day; the scheduled sweep has judged their objects since.
const DefaultMaxEventAge = 24 * time.Hour

// Options configure a Service.
type Options struct {
	Policy *policy.Policy
	Store  engine.Store
	// Notifier sends alerts (nil: they are only logged in the decision lines).
	Notifier engine.Notifier
	Logger   *slog.Logger // default slog.Default()
	// DecisionLogger gets the decision lines (default Logger); the demo, which tells its
	// own story, discards them.
	DecisionLogger *slog.Logger
	// MaxEventAge: older events are acknowledged without action (0: any age).
	MaxEventAge time.Duration
	// Concurrency bounds the events judged at once (0: no bound; the platform bounds
	// requests per instance).
	Concurrency int
	// Alerts tune the alert dispatcher.
	Alerts DispatcherOptions
	// Report, if set, hears every decision once it is logged (watch prints them).
	Report func(*engine.Decision)
	Now    func() time.Time
	// Lease overrides the policy's incident lease (tests).
	Lease time.Duration

	// Attribution looks up who made a write in Cloud Audit Logs (nil: attribution is off,
	// and alerts say so); AttributionFrom names what it reads, for the startup line.
	Attribution     Attributor
	AttributionFrom string
	// AttributionTimeout bounds the first look (default DefaultAttributionTimeout).
	AttributionTimeout time.Duration
	// FollowUps are the pauses before each later look for a writer that was not yet in the
	// audit logs (nil: DefaultFollowUps; empty: none).
	FollowUps []time.Duration
	// Sleep waits for the follow-ups (default: a timer; tests: a fake clock).
	Sleep func(ctx context.Context, d time.Duration) error
	// Posture checks the watched bucket's posture at every audit and on Admin Activity
	// entries (nil: no posture checks); PostureBucket is the bucket it checks.
	Posture       PostureChecker
	PostureBucket string
}

// Service is one configured runtime: an engine, its alert dispatcher and the rules above.
type Service struct {
	eng    *engine.Engine
	alerts *Dispatcher
	log    *slog.Logger
	dlog   *slog.Logger // decision lines
	maxAge time.Duration
	now    func() time.Time
	slots  chan struct{}
	report func(*engine.Decision)
	pol    *policy.Policy
	closer []func() error

	notifier    engine.Notifier
	attr        Attributor
	attrFrom    string
	attrTimeout time.Duration
	followUps   []time.Duration
	sleep       func(context.Context, time.Duration) error
	posture     *postureRunner

	// bg lives as long as the service: follow-ups and posture alerts run on it.
	bg     context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup
	fmu    sync.Mutex
	closed bool
	// following are the writes being looked up again.
	following map[string]bool
	rmu       sync.Mutex // serializes report
}

// New builds the engine for the policy and the runtime around it.
func New(o Options) (*Service, error) {
	if o.Policy == nil || o.Store == nil {
		return nil, errors.New("delivery: a policy and a store are required")
	}
	s := &Service{log: o.Logger, maxAge: o.MaxEventAge, now: o.Now, report: o.Report, pol: o.Policy,
		notifier: o.Notifier, attr: o.Attribution, attrFrom: o.AttributionFrom, attrTimeout: o.AttributionTimeout,
		followUps: o.FollowUps, sleep: o.Sleep, following: map[string]bool{}}
	s.bg, s.stop = context.WithCancel(context.Background())
	if s.attrTimeout <= 0 {
		s.attrTimeout = DefaultAttributionTimeout
	}
	if s.followUps == nil {
		s.followUps = DefaultFollowUps
	}
	if s.sleep == nil {
		s.sleep = sleepCtx
	}
	if o.Posture != nil {
		if o.PostureBucket == "" {
			return nil, errors.New("delivery: a posture checker needs the bucket it checks")
		}
		s.posture = newPostureRunner(o.Posture, o.PostureBucket)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.dlog = o.DecisionLogger
	if s.dlog == nil {
		s.dlog = s.log
	}
	if s.now == nil {
		s.now = time.Now
	}
	if o.Concurrency > 0 {
		s.slots = make(chan struct{}, o.Concurrency)
	}
	eng, err := engine.New(engine.Options{Store: o.Store, Policy: o.Policy, Logger: s.log, Now: s.now, Lease: o.Lease})
	if err != nil {
		return nil, err
	}
	s.eng = eng
	ao := o.Alerts
	if ao.Logger == nil {
		ao.Logger = s.log
	}
	s.alerts = NewDispatcher(eng, o.Notifier, ao)
	return s, nil
}

// Engine is the service's engine (check and audit use it directly).
func (s *Service) Engine() *engine.Engine { return s.eng }

// Policy is what the service enforces.
func (s *Service) Policy() *policy.Policy { return s.pol }

// Alerts is the service's alert dispatcher.
func (s *Service) Alerts() *Dispatcher { return s.alerts }

// MaxEventAge is the max-age gate in force.
func (s *Service) MaxEventAge() time.Duration { return s.maxAge }

// Close stops the follow-ups and lets go of what Build opened.
func (s *Service) Close() error {
	s.fmu.Lock()
	s.closed = true
	s.fmu.Unlock()
	s.stop()
	s.wg.Wait()
	var errs []error
	for _, c := range s.closer {
		errs = append(errs, c())
	}
	s.closer = nil
	return errors.Join(errs...)
}

// Outcome is what to do with a delivered request.
type Outcome struct {
	// Ack: the outcome is final; acknowledge. Otherwise deliver it again.
	Ack bool
	// Why is a stable word for logs and tests: final, malformed, unsupported, too_old,
	// transient, held, alert_pending, audit_incomplete, panic, shutdown.
	Why string
	// Err says what failed, for a retry's error message.
	Err error
}

// Error is the function's answer: nil to acknowledge, an error to be delivered again.
func (o Outcome) Error() error {
	if o.Ack {
		return nil
	}
	if o.Err != nil {
		return fmt.Errorf("%s; the event will be delivered again: %w", o.Why, o.Err)
	}
	return fmt.Errorf("%s; the event will be delivered again", o.Why)
}

func ack(why string) Outcome { return Outcome{Ack: true, Why: why} }

// Malformed acknowledges a request that could not be decoded, with an ERROR line saying why.
func (s *Service) Malformed(ctx context.Context, err error, attrs ...any) Outcome {
	msg, why := "malformed event acknowledged without action: ", "malformed"
	var de *DecodeError
	if errors.As(err, &de) && de.Unsupported {
		msg, why = "unsupported event acknowledged without action: ", "unsupported"
	}
	s.log.Error(msg+err.Error(), append(attrs, "problem", err.Error())...)
	return ack(why)
}

// Deliver decides on one decoded request. It never panics: a panic is logged at CRITICAL
// and the request retried (a poison event ends in the dead-letter topic, not in silence).
func (s *Service) Deliver(ctx context.Context, req Request) (out Outcome) {
	received := s.now()
	defer func() {
		if r := recover(); r != nil {
			s.log.Log(ctx, cloudlog.LevelCritical, "internal error while handling an event; it will be delivered again",
				append(eventAttrs(req), "panic", clip(fmt.Sprint(r)), "stack", string(debug.Stack()))...)
			out = Outcome{Why: "panic", Err: fmt.Errorf("internal error: %v", r)}
		}
	}()
	for _, w := range req.Warnings {
		s.log.Warn("odd event: "+w, eventAttrs(req)...)
	}
	if t := req.Event.Time; s.maxAge > 0 && !t.IsZero() {
		if age := s.now().Sub(t); age > s.maxAge {
			s.log.Warn("event older than the max event age acknowledged without action; the scheduled sweep judges the object",
				append(eventAttrs(req), "event_time", t.UTC().Format(time.RFC3339Nano), "age", age.Round(time.Second).String(), "max_age", s.maxAge.String())...)
			return ack("too_old")
		}
	}
	if req.Audit {
		return s.audit(ctx, req)
	}
	if req.Posture != nil {
		return s.postureHint(ctx, req)
	}
	if !s.acquire(ctx) {
		return Outcome{Why: "shutdown", Err: ctx.Err()}
	}
	d := s.eng.Handle(ctx, req.Event)
	d.Received = received
	s.releaseSlot()
	// Who wrote it, outside the work slot and before the line, so that both carry it.
	pending := false
	if d.AlertDue() {
		pending = s.Attribute(ctx, &d)
	}
	s.logDecision(ctx, req, &d)
	s.reportDecision(&d)
	switch {
	case d.Transient && d.Reason == engine.ReasonHeld:
		if d.AlertDue() {
			_ = s.eng.Settle(&d, errors.New("not sent"))
		}
		return Outcome{Why: "held", Err: fmt.Errorf("incident %s is being handled by another delivery", d.Incident)}
	case d.Transient:
		if d.AlertDue() {
			_ = s.eng.Settle(&d, errors.New("not sent"))
		}
		return Outcome{Why: "transient", Err: fmt.Errorf("%s: %s", d.Ref(), clip(d.Error))}
	}
	if err := s.alerts.Wait(ctx, &d); err != nil {
		return Outcome{Why: "alert_pending", Err: err}
	}
	if pending {
		s.followUp(&d)
	}
	return ack("final")
}

func (s *Service) reportDecision(d *engine.Decision) {
	if s.report == nil {
		return
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.report(d)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Service) acquire(ctx context.Context) bool {
	if s.slots == nil {
		return true
	}
	select {
	case s.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Service) releaseSlot() {
	if s.slots != nil {
		<-s.slots
	}
}

// audit runs a requested audit (with repairs), then the posture checks. Its alerts go out
// as it goes; objects found ok are counted in its closing line, not logged one by one. The
// request is retried when anything could not be judged or alerted for now, or when the audit
// stopped before its deadline with objects left (the retry resumes where it stopped).
func (s *Service) audit(ctx context.Context, req Request) Outcome {
	if !s.acquire(ctx) {
		return Outcome{Why: "shutdown", Err: ctx.Err()}
	}
	transient := 0
	var (
		mu      sync.Mutex
		sent    []<-chan error
		looking sync.WaitGroup
	)
	lookups := make(chan struct{}, auditLookups)
	finish := func(d *engine.Decision, pending bool) {
		s.logDecision(ctx, req, d)
		s.reportDecision(d)
		c := s.alerts.Send(d)
		if pending {
			c = s.followUpWhenSent(c, d)
		}
		mu.Lock()
		sent = append(sent, c)
		mu.Unlock()
	}
	var prefixes []string
	if req.AuditPrefix != "" {
		prefixes = []string{req.AuditPrefix}
	}
	rep, err := s.eng.AuditWith(ctx, engine.AuditOptions{Act: true, Prefixes: prefixes}, func(d *engine.Decision) {
		if d.Transient {
			transient++
		}
		if _, ok := writeOf(d); !ok || !d.AlertDue() || d.Transient {
			finish(d, false)
			return
		}
		// Who wrote it is looked up outside the work slot: the audit goes on meanwhile.
		cp := *d
		looking.Add(1)
		go func() {
			defer looking.Done()
			lookups <- struct{}{}
			pending := s.Attribute(ctx, &cp)
			<-lookups
			finish(&cp, pending)
		}()
	})
	s.releaseSlot()
	looking.Wait()
	undelivered := 0
	for _, c := range sent {
		select {
		case e := <-c:
			if e != nil {
				undelivered++
			}
		case <-ctx.Done():
			undelivered++
		}
	}
	s.noteAuditLogging(ctx, rep.Newest)
	report, perr := s.runPosture(ctx, "audit", true)
	attrs := append(eventAttrs(req), "transient", transient, "alerts_undelivered", undelivered,
		"listed", rep.Listed, "ok_by_memo", rep.Reused, "read", rep.Read)
	if rep.OnFloor > 0 {
		attrs = append(attrs, "ok_on_floor", rep.OnFloor, "floor", rep.Floor)
	}
	for _, v := range []engine.Verdict{engine.VerdictOK, engine.VerdictTampered, engine.VerdictMissing, engine.VerdictUnverifiable, engine.VerdictIgnored} {
		attrs = append(attrs, string(v), rep.Verdicts[v])
	}
	for _, sp := range rep.Scopes {
		if !sp.Complete {
			attrs = append(attrs, "stopped_in", sp.Bucket+"/"+sp.Prefix, "stopped_after", sp.After, "pass", sp.Pass)
		}
	}
	if report != nil {
		failing := 0
		for _, f := range report.Findings {
			if f.Status == posture.StatusFailing {
				failing++
			}
		}
		attrs = append(attrs, "posture_failing", failing)
	}
	switch {
	case err != nil && (errors.Is(err, engine.ErrTransient) || errors.Is(err, engine.ErrAuditCut) || ctx.Err() != nil):
		s.log.Error("audit incomplete; the request will be delivered again", append(attrs, "error", err.Error())...)
		return Outcome{Why: "audit_incomplete", Err: err}
	case err != nil:
		s.log.Error("audit incomplete", append(attrs, "error", err.Error())...)
		return ack("final")
	case transient > 0:
		s.log.Error("audit finished with transient failures; the request will be delivered again", attrs...)
		return Outcome{Why: "audit_incomplete", Err: fmt.Errorf("%d objects could not be judged for now", transient)}
	case undelivered > 0:
		s.log.Error("audit finished but alerts could not be sent; the request will be delivered again", attrs...)
		return Outcome{Why: "alert_pending", Err: fmt.Errorf("%d alerts not delivered", undelivered)}
	case perr != nil && (errors.Is(perr, engine.ErrTransient) || ctx.Err() != nil):
		s.log.Error("audit finished but the posture record could not be kept; the request will be delivered again", append(attrs, "error", perr.Error())...)
		return Outcome{Why: "audit_incomplete", Err: perr}
	}
	s.log.Info("audit finished", attrs...)
	return ack("final")
}

// auditLookups bounds the writers an audit looks up at once.
const auditLookups = 4

// followUpWhenSent passes on c's result and, once the alert went out, has its writer looked
// up again later.
func (s *Service) followUpWhenSent(c <-chan error, d *engine.Decision) <-chan error {
	out := make(chan error, 1)
	cp := *d
	go func() {
		err := <-c
		if err == nil {
			s.followUp(&cp)
		}
		out <- err
	}()
	return out
}

// noteAuditLogging says in the log when Data Access audit logs of a watched bucket appear
// off, judged by the newest write the audit read there.
func (s *Service) noteAuditLogging(ctx context.Context, newest map[string]time.Time) {
	for b, t := range newest {
		l, ok, err := s.AuditLogging(ctx, b, t)
		switch {
		case !ok:
			return
		case err != nil:
			s.log.Warn("whether Data Access audit logs are on could not be told", "bucket", b, "error", err.Error())
		case l == auditlog.LoggingOff:
			s.log.Warn("Data Access audit logs for Cloud Storage appear off: writers cannot be named; turn them on (terraform: storage_data_write_audit_logs)",
				"bucket", b, "newest_write", t.UTC().Format(time.RFC3339))
		}
	}
}

// eventAttrs are the attributes that identify a request on every line about it.
func eventAttrs(req Request) []any {
	ev := req.Event
	a := []any{"event_id", clip(req.ID), "event_type", req.Type}
	if req.MessageID != "" {
		a = append(a, "message_id", clip(req.MessageID))
	}
	if !req.Audit && req.Posture == nil {
		a = append(a, "kind", string(ev.Kind), "bucket", ev.Bucket, "object", ev.Object, "generation", ev.Generation)
	} else if req.AuditPrefix != "" {
		a = append(a, "prefix", req.AuditPrefix)
	}
	return a
}

// logDecision writes the decision line: who, what, which verdict, what was done. A
// tampered or missing object is CRITICAL (the alert policy keys on it).
func (s *Service) logDecision(ctx context.Context, req Request, d *engine.Decision) {
	level, msg := slog.LevelInfo, "event ignored"
	switch {
	case d.Reason == engine.ReasonHeld:
		msg = "incident held by another delivery"
	case d.Verdict == engine.VerdictTampered:
		level, msg = cloudlog.LevelCritical, "tampered object"
	case d.Verdict == engine.VerdictMissing && d.Action == engine.ActionNone && d.Reason == engine.ReasonNoGoodSource:
		level, msg = slog.LevelWarn, "protected object deleted; its last bytes were not the signed ones, nothing restored"
	case d.Verdict == engine.VerdictMissing:
		level, msg = cloudlog.LevelCritical, "protected object missing"
	case d.Verdict == engine.VerdictUnverifiable:
		level, msg = slog.LevelError, "object could not be verified"
	case d.Action == engine.ActionFailed:
		level, msg = slog.LevelError, "action failed"
	case d.Verdict == engine.VerdictOK && d.Floor != "":
		level, msg = slog.LevelWarn, "object verified against the last release that verified; newer releases not trusted"
	case d.Verdict == engine.VerdictOK:
		msg = "object verified"
	case d.Verdict == engine.VerdictIgnored && d.Reason == engine.ReasonNoRule:
		level = slog.LevelDebug
	}
	if d.Action != "" && d.Action != engine.ActionNone {
		msg += ": " + string(d.Action)
	}
	if d.Transient {
		msg += " (transient; the event will be delivered again)"
	}
	if !s.dlog.Enabled(ctx, level) {
		return
	}
	gen := d.Generation
	if gen == 0 {
		gen = req.Event.Generation
	}
	a := []any{"event_id", clip(req.ID), "event_type", req.Type}
	if req.MessageID != "" {
		a = append(a, "message_id", clip(req.MessageID))
	}
	kind := string(d.Kind)
	if kind == "" && req.Audit {
		kind = "audit"
	}
	a = append(a, "kind", kind, "bucket", d.Bucket, "object", d.Object, "generation", gen,
		"verdict", string(d.Verdict), "action", string(d.Action), "reason", string(d.Reason))
	add := func(k string, v any, present bool) {
		if present {
			a = append(a, k, v)
		}
	}
	add("overwritten_by", req.Event.OverwrittenBy, !req.Audit && req.Event.OverwrittenBy != 0)
	add("overwrote", req.Overwrote, !req.Audit && req.Overwrote != 0)
	add("expected_sha256", d.ExpectedSHA256, d.ExpectedSHA256 != "")
	add("actual_sha256", d.ActualSHA256, d.ActualSHA256 != "")
	add("size", d.Size, d.Size != 0)
	add("created", d.Created.UTC().Format(time.RFC3339Nano), !d.Created.IsZero())
	add("release", d.Release, d.Release != "")
	add("signer", d.Signer, d.Signer != "")
	add("restored_generation", d.RestoredGeneration, d.RestoredGeneration != 0)
	add("source", d.Source, d.Source != "")
	add("evidence", d.Evidence, d.Evidence != "")
	add("incident", d.Incident, d.Incident != "")
	add("floor", d.Floor, d.Floor != "")
	add("duplicate", true, d.Duplicate)
	add("transient", true, d.Transient)
	add("error", d.Error, d.Error != "")
	add("written_by", d.WrittenBy, d.WrittenBy != nil)
	if len(d.MetadataChanges) != 0 {
		changes := map[string]string{}
		for k, v := range d.MetadataChanges {
			changes[k] = strconv.Quote(v[0]) + " -> " + strconv.Quote(v[1])
		}
		a = append(a, "metadata_changes", changes)
	}
	s.dlog.Log(ctx, level, msg, a...)
}
