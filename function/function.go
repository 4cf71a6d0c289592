// Package function is tamperguard's Cloud Function: it hands each CloudEvent (Eventarc's
// direct storage events and Pub/Sub-wrapped notifications) to the delivery runtime
// (internal/delivery), which decodes it, judges it, logs the decision in Cloud Logging's
// format and alerts, and returns an error, so that the event is delivered again, only
// when its outcome is not final.
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
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/tamperguard/tamperguard/internal/cloudlog"
	"github.com/tamperguard/tamperguard/internal/delivery"
	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/policy"
)

// Name is the function's name in the Functions Framework (FUNCTION_TARGET).
const Name = "VerifyObject"

// Environment variables read at cold start, besides the configuration's own
// (TAMPERGUARD_CONFIG, TAMPERGUARD_CONFIG_FILE).
const (
	// EnvMaxEventAge: events older than this are acknowledged without action (a Go
	// duration; "0" turns the check off). Default DefaultMaxEventAge.
	EnvMaxEventAge = delivery.EnvMaxEventAge
	// EnvLogLevel: DEBUG, INFO (default), WARNING, ERROR or CRITICAL.
	EnvLogLevel = "TAMPERGUARD_LOG_LEVEL"
	// EnvAuditLogs: the log resource the Data Access audit entries are read from, to name
	// who wrote a tampered, deleted or re-metadata'd object (the Terraform module's log
	// view). Unset: attribution is off; the startup line and the alerts say so.
	EnvAuditLogs = delivery.EnvAuditLogs
	// EnvLoggingEndpoint: another Logging API base URL (an emulator, a test server),
	// reached without credentials.
	EnvLoggingEndpoint = delivery.EnvLoggingEndpoint
	// EnvDeployment: the deployment's name (Terraform's name prefix), in every alert.
	EnvDeployment = delivery.EnvDeployment
)

// DefaultMaxEventAge is how old an event may be and still be acted on.
const DefaultMaxEventAge = delivery.DefaultMaxEventAge

func init() {
	functions.CloudEvent(Name, VerifyObject)
}

// Handler is one instance of the function: the delivery runtime and its logger.
type Handler struct {
	svc *delivery.Service
	log *slog.Logger
}

// Option adjusts a Handler made by New.
type Option func(*delivery.Options)

// WithMaxEventAge sets how old an event may be and still be acted on (0: any age).
func WithMaxEventAge(d time.Duration) Option { return func(o *delivery.Options) { o.MaxEventAge = d } }

// WithClock sets the clock used for event ages and by the engine.
func WithClock(now func() time.Time) Option { return func(o *delivery.Options) { o.Now = now } }

// WithLease sets the incident lease (tests).
func WithLease(d time.Duration) Option { return func(o *delivery.Options) { o.Lease = d } }

// New returns a Handler that enforces pol against store, alerting through
// notifier (nil: decisions are only logged) and logging to log (nil: a Cloud Logging
// JSON logger on stdout).
func New(pol *policy.Policy, store engine.Store, notifier engine.Notifier, log *slog.Logger, opts ...Option) (*Handler, error) {
	if log == nil {
		log = cloudlog.New(os.Stdout, nil)
	}
	o := delivery.Options{Policy: pol, Store: store, Notifier: notifier, Logger: log, MaxEventAge: DefaultMaxEventAge}
	for _, f := range opts {
		f(&o)
	}
	svc, err := delivery.New(o)
	if err != nil {
		return nil, err
	}
	return &Handler{svc: svc, log: log}, nil
}

// Env is what FromEnv reads from outside.
type Env = delivery.Env

// FromEnv loads the configuration and the settings above, connects to Cloud Storage and
// builds the notifier: everything a cold start does. Close the Handler when done.
func FromEnv(ctx context.Context, env Env) (*Handler, error) {
	if env.Logger == nil {
		env.Logger = cloudlog.New(os.Stdout, nil)
	}
	env.Alerting = true
	svc, err := delivery.Build(ctx, env)
	if err != nil {
		return nil, err
	}
	return &Handler{svc: svc, log: env.Logger}, nil
}

// Close releases what FromEnv opened.
func (h *Handler) Close() error { return h.svc.Close() }

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
	h.log.Info("tamperguard ready", append([]any{"how", how}, h.svc.ReadyAttrs()...)...)
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

// VerifyObject handles one event through the delivery runtime and translates its outcome:
// nil acknowledges, an error has the event delivered again.
func (h *Handler) VerifyObject(ctx context.Context, ce cloudevents.Event) error {
	// The request's trace, noted by the front under the event's id: the event's log lines
	// are grouped under it in Cloud Logging.
	ctx = cloudlog.WithTrace(ctx, traces.take(ce.ID()))
	return h.svc.DeliverCloudEvent(ctx, ce).Error()
}
