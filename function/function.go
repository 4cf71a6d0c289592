// Package function is tamperguard's Cloud Function: it decodes Cloud Storage events
// (Eventarc's direct storage events and Pub/Sub-wrapped notifications), hands them to the
// engine, logs every decision in Cloud Logging's format, and returns an error, so that
// the event is delivered again, only when a retry can change the outcome.
//
// The function is registered with the Functions Framework as "VerifyObject" when this
// package is imported. The module's root package (function.go at the repository root,
// the package the Cloud Functions Go buildpack builds) calls ColdStart from its init, so
// a deployed instance reads its configuration once, at start, and refuses to start with
// a bad one. The CLI's serve command builds a Handler with FromEnv and serves it with
// Serve.
package function

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/storage"
	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/tamperguard/tamperguard/alerting"
	"github.com/tamperguard/tamperguard/internal/cloudlog"
	"github.com/tamperguard/tamperguard/internal/config"
	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/gcs"
)

// Name is the function's name in the Functions Framework (FUNCTION_TARGET).
const Name = "VerifyObject"

// Environment variables read at cold start, besides the configuration's own
// (TAMPERGUARD_CONFIG, TAMPERGUARD_CONFIG_FILE).
const (
	// EnvMaxEventAge: events older than this are acknowledged without action (a Go
	// duration; "0" turns the check off). Default DefaultMaxEventAge.
	EnvMaxEventAge = "TAMPERGUARD_MAX_EVENT_AGE"
	// EnvLogLevel: DEBUG, INFO (default), WARNING, ERROR or CRITICAL.
	EnvLogLevel = "TAMPERGUARD_LOG_LEVEL"
)

// DefaultMaxEventAge is how old an event may be and still be acted on. Older ones have
// been retried for a day; the scheduled sweep has judged their objects since.
const DefaultMaxEventAge = 24 * time.Hour

func init() {
	functions.CloudEvent(Name, VerifyObject)
}

// newNotifier builds the alerting from the environment at cold start: Slack with
// SLACK_BOT_TOKEN + SLACK_CHANNEL or SLACK_WEBHOOK_URL, else the log only. With a state
// bucket, the Slack thread of repeated incidents is kept there so every instance threads
// alike. A variable so tests can count alerts.
var newNotifier = func(getenv func(string) string, log *slog.Logger, store engine.Store, stateBucket string) (engine.Notifier, error) {
	var threads alerting.ThreadStore // nil: in memory
	if stateBucket != "" {
		threads = alerting.NewStateThreads(store, stateBucket)
	}
	return alerting.FromEnv(getenv, log, threads)
}

// Handler is one instance of the function: a configured engine and a logger.
type Handler struct {
	eng    *engine.Engine
	log    *slog.Logger
	maxAge time.Duration
	now    func() time.Time
	close  []func() error
}

// Option adjusts a Handler.
type Option func(*Handler)

// WithMaxEventAge sets how old an event may be and still be acted on (0: any age).
func WithMaxEventAge(d time.Duration) Option { return func(h *Handler) { h.maxAge = d } }

// WithClock sets the clock used for event ages and by the engine.
func WithClock(now func() time.Time) Option { return func(h *Handler) { h.now = now } }

// New returns a Handler that judges events with cfg against store, alerting through
// notifier (nil: decisions are only logged) and logging to log (nil: a Cloud Logging
// JSON logger on stdout).
func New(cfg *config.Config, store engine.Store, notifier engine.Notifier, log *slog.Logger, opts ...Option) (*Handler, error) {
	h := &Handler{log: log, maxAge: DefaultMaxEventAge, now: time.Now}
	for _, o := range opts {
		o(h)
	}
	if h.log == nil {
		h.log = cloudlog.New(os.Stdout, nil)
	}
	eng, err := engine.New(engine.Options{Store: store, Config: cfg, Notifier: notifier, Logger: h.log, Now: h.now})
	if err != nil {
		return nil, err
	}
	h.eng = eng
	return h, nil
}

// Env is what FromEnv reads from outside.
type Env struct {
	Getenv func(string) string
	// ConfigFile is the CLI's --config ("": TAMPERGUARD_CONFIG or TAMPERGUARD_CONFIG_FILE).
	ConfigFile string
	// StorageClient connects to Cloud Storage and says how to let go of it (nil:
	// gcs.NewClient, which honours STORAGE_EMULATOR_HOST). Handler.Close lets go.
	StorageClient func(context.Context) (*storage.Client, func() error, error)
	Logger        *slog.Logger
}

// FromEnv loads the configuration and the settings above, connects to Cloud Storage and
// builds the notifier: everything a cold start does. Close the Handler when done.
func FromEnv(ctx context.Context, env Env) (*Handler, error) {
	getenv := env.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	cfg, err := config.Load(env.ConfigFile, getenv)
	if err != nil {
		return nil, err
	}
	maxAge := DefaultMaxEventAge
	if s := getenv(EnvMaxEventAge); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("%s=%q is not a duration like \"24h\" or \"90m\" (0 turns the check off)", EnvMaxEventAge, s)
		}
		maxAge = d
	}
	connect := env.StorageClient
	if connect == nil {
		connect = func(ctx context.Context) (*storage.Client, func() error, error) {
			c, err := gcs.NewClient(ctx)
			if err != nil {
				return nil, nil, err
			}
			return c, c.Close, nil
		}
	}
	client, release, err := connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to Cloud Storage: %w", err)
	}
	if release == nil {
		release = func() error { return nil }
	}
	store := gcs.New(client)
	log := env.Logger
	if log == nil {
		log = cloudlog.New(os.Stdout, nil)
	}
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	notifier, err := newNotifier(getenv, log, store, cfg.State.Bucket)
	if err != nil {
		release()
		return nil, fmt.Errorf("alerting: %w", err)
	}
	h, err := New(cfg, store, notifier, log, WithMaxEventAge(maxAge))
	if err != nil {
		release()
		return nil, err
	}
	h.close = append(h.close, release)
	return h, nil
}

// Close releases what FromEnv opened.
func (h *Handler) Close() error {
	var errs []error
	for _, c := range h.close {
		errs = append(errs, c())
	}
	h.close = nil
	return errors.Join(errs...)
}

// active is the Handler that VerifyObject serves.
var active atomic.Pointer[Handler]

// exit ends the process when a cold start fails, and stdout is where the instance logs;
// tests replace them.
var (
	exit             = os.Exit
	stdout io.Writer = os.Stdout
)

// ColdStart configures the instance from the environment, once, before the Functions
// Framework starts serving. With a bad configuration (or an unreadable key, or an
// unknown setting) it logs one CRITICAL line saying what is wrong and exits with status
// 1: the instance never serves, so a new revision with a broken configuration fails to
// deploy and the previous one keeps handling events, instead of every event failing.
func ColdStart() {
	level, ok := cloudlog.ParseLevel(os.Getenv(EnvLogLevel))
	log := cloudlog.New(stdout, level)
	if !ok {
		log.Log(context.Background(), cloudlog.LevelCritical, fmt.Sprintf("tamperguard cannot start: %s=%q is not DEBUG, INFO, WARNING, ERROR or CRITICAL", EnvLogLevel, os.Getenv(EnvLogLevel)))
		exit(1)
		return
	}
	h, err := FromEnv(context.Background(), Env{Getenv: os.Getenv, Logger: log})
	if err != nil {
		log.Log(context.Background(), cloudlog.LevelCritical, "tamperguard cannot start: "+err.Error())
		exit(1)
		return
	}
	h.logReady("cold start")
	active.Store(h)
}

func (h *Handler) logReady(how string) {
	cfg := h.eng.Config()
	h.log.Info("tamperguard ready", "how", how, "config", cfg.Origin, "rules", len(cfg.Rules),
		"state_bucket", cfg.State.Bucket, "max_event_age", h.maxAge.String())
}

// lazy configures the instance on the first event when ColdStart did not run (the
// package was imported without the root package). A failure is logged once and makes
// every event fail, so that none is lost while the configuration is fixed.
var lazy = sync.OnceValues(func() (*Handler, error) {
	level, _ := cloudlog.ParseLevel(os.Getenv(EnvLogLevel))
	log := cloudlog.New(stdout, level)
	h, err := FromEnv(context.Background(), Env{Getenv: os.Getenv, Logger: log})
	if err != nil {
		log.Log(context.Background(), cloudlog.LevelCritical, "tamperguard cannot start: "+err.Error())
		return nil, err
	}
	h.logReady("first event")
	return h, nil
})

// VerifyObject is the CloudEvent function: it judges the object an event names and
// returns an error only when the event is worth delivering again.
func VerifyObject(ctx context.Context, ce cloudevents.Event) error {
	h := active.Load()
	if h == nil {
		var err error
		if h, err = lazy(); err != nil {
			return fmt.Errorf("tamperguard is not configured: %w", err)
		}
	}
	return h.VerifyObject(ctx, ce)
}

// VerifyObject handles one event: decode, judge, log, and map the outcome to a retry
// (an error) or an acknowledgement (nil). Final outcomes (ok, restored, skipped, refused
// and alerted, malformed input, unknown types, events too old) are acknowledged; only a
// transient failure (storage 5xx or timeouts, an unreachable release host, the state
// bucket) returns an error.
func (h *Handler) VerifyObject(ctx context.Context, ce cloudevents.Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			h.log.Log(ctx, cloudlog.LevelCritical, "internal error while handling an event; acknowledged, the scheduled sweep covers the object",
				"event_id", clip(ce.ID()), "event_type", clip(ce.Type()), "panic", clip(fmt.Sprint(r)), "stack", string(debug.Stack()))
			err = nil
		}
	}()

	req, derr := Decode(ce)
	if derr != nil {
		msg := "malformed event acknowledged without action: " + derr.Error()
		var de *DecodeError
		if errors.As(derr, &de) && de.Unsupported {
			msg = "unsupported event acknowledged without action: " + derr.Error()
		}
		h.log.Error(msg, "event_id", clip(ce.ID()), "event_type", clip(ce.Type()), "source", clip(ce.Source()),
			"subject", clip(ce.Subject()), "datacontenttype", clip(ce.DataContentType()), "problem", derr.Error())
		return nil
	}
	for _, w := range req.Warnings {
		h.log.Warn("odd event: "+w, h.eventAttrs(req)...)
	}

	if t := req.Event.Time; h.maxAge > 0 && !t.IsZero() {
		if age := h.now().Sub(t); age > h.maxAge {
			attrs := append(h.eventAttrs(req), "event_time", t.UTC().Format(time.RFC3339Nano), "age", age.Round(time.Second).String(), "max_age", h.maxAge.String())
			h.log.Warn("event older than "+EnvMaxEventAge+" acknowledged without action; the scheduled sweep judges the object", attrs...)
			return nil
		}
	}

	if req.Audit {
		return h.audit(ctx, req)
	}
	d := h.eng.Handle(ctx, req.Event)
	h.logDecision(ctx, req, &d)
	if d.Transient {
		return fmt.Errorf("transient failure on gs://%s/%s#%d, the event will be delivered again: %s",
			req.Event.Bucket, quote(req.Event.Object), req.Event.Generation, clip(d.Error))
	}
	return nil
}

func (h *Handler) audit(ctx context.Context, req Request) error {
	counts := map[string]int{}
	transient := 0
	err := h.eng.Audit(ctx, true, func(d *engine.Decision) {
		counts[string(d.Verdict)]++
		if d.Transient {
			transient++
		}
		h.logDecision(ctx, req, d)
	})
	attrs := []any{"event_id", clip(req.ID), "event_type", req.Type, "message_id", clip(req.MessageID), "transient", transient}
	for _, v := range []engine.Verdict{engine.VerdictOK, engine.VerdictTampered, engine.VerdictMissing, engine.VerdictUnverifiable, engine.VerdictIgnored} {
		attrs = append(attrs, string(v), counts[string(v)])
	}
	switch {
	case err != nil && (errors.Is(err, engine.ErrTransient) || ctx.Err() != nil):
		h.log.Error("audit incomplete; the request will be delivered again", append(attrs, "error", err.Error())...)
		return fmt.Errorf("audit incomplete: %w", err)
	case err != nil:
		h.log.Error("audit incomplete", append(attrs, "error", err.Error())...)
	case transient > 0:
		h.log.Error("audit finished with transient failures; the request will be delivered again", attrs...)
		return fmt.Errorf("audit: %d objects could not be judged for now", transient)
	default:
		h.log.Info("audit finished", attrs...)
	}
	return nil
}

// eventAttrs are the attributes that identify an event on every line about it.
func (h *Handler) eventAttrs(req Request) []any {
	ev := req.Event
	a := []any{"event_id", clip(req.ID), "event_type", req.Type}
	if req.MessageID != "" {
		a = append(a, "message_id", clip(req.MessageID))
	}
	if !req.Audit {
		a = append(a, "kind", string(ev.Kind), "bucket", ev.Bucket, "object", ev.Object, "generation", ev.Generation)
	}
	return a
}

// logDecision writes the decision line: who, what, which verdict, what was done. A
// tampered or missing object is CRITICAL (the alert policy keys on it).
func (h *Handler) logDecision(ctx context.Context, req Request, d *engine.Decision) {
	level, msg := slog.LevelInfo, "event ignored"
	switch {
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
	case d.Verdict == engine.VerdictOK:
		msg = "object verified"
	case d.Verdict == engine.VerdictIgnored && d.Reason == engine.ReasonNoRule:
		level = slog.LevelDebug
	}
	if d.Action != "" && d.Action != engine.ActionNone {
		msg += ": " + d.Action
	}
	if d.Transient {
		msg += " (transient; the event will be delivered again)"
	}
	if !h.log.Enabled(ctx, level) {
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
		"verdict", string(d.Verdict), "action", d.Action, "reason", d.Reason)
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
	add("duplicate", true, d.Duplicate)
	add("transient", true, d.Transient)
	add("error", d.Error, d.Error != "")
	if len(d.MetadataChanges) != 0 {
		changes := map[string]string{}
		for k, v := range d.MetadataChanges {
			changes[k] = strconv.Quote(v[0]) + " -> " + strconv.Quote(v[1])
		}
		a = append(a, "metadata_changes", changes)
	}
	h.log.Log(ctx, level, msg, a...)
}
