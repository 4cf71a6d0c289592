package delivery

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/tamperguard/tamperguard/alerting"
	"github.com/tamperguard/tamperguard/internal/auditlog"
	"github.com/tamperguard/tamperguard/internal/config"
	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/gcs"
	"github.com/tamperguard/tamperguard/internal/posture"
	"github.com/tamperguard/tamperguard/internal/version"
)

// EnvMaxEventAge: events older than this are acknowledged without action (a Go duration;
// "0" turns the check off). Default DefaultMaxEventAge.
const EnvMaxEventAge = "TAMPERGUARD_MAX_EVENT_AGE"

// Env is what Build reads from outside: the edge of the program.
type Env struct {
	Getenv func(string) string
	// ConfigFile is the CLI's --config ("": TAMPERGUARD_CONFIG or TAMPERGUARD_CONFIG_FILE).
	ConfigFile string
	// StorageClient connects to Cloud Storage and says how to let go of it (nil:
	// gcs.NewClient, which honours STORAGE_EMULATOR_HOST). Close lets go.
	StorageClient func(context.Context) (*storage.Client, func() error, error)
	Logger        *slog.Logger
	// Alerting: false leaves the notifier out (check and audit without --restore).
	Alerting bool
	// TextAlerts, when Slack is not configured, gets the alerts as text (the CLI's check
	// and audit) instead of the log.
	TextAlerts io.Writer
	// MaxEventAge overrides TAMPERGUARD_MAX_EVENT_AGE when set (watch's flag).
	MaxEventAge *time.Duration
	// Concurrency, Report: as in Options.
	Concurrency int
	Report      func(*engine.Decision)
}

// NewNotifier builds the alerting from the environment: Slack with SLACK_BOT_TOKEN +
// SLACK_CHANNEL or SLACK_WEBHOOK_URL, else the log only. With a state bucket, the Slack
// thread of repeated incidents is kept there so every instance threads alike. A variable so
// tests can count alerts.
var NewNotifier = func(getenv func(string) string, log *slog.Logger, store engine.Store, stateBucket string, render alerting.RenderOptions) (engine.Notifier, error) {
	var threads alerting.ThreadStore // nil: in memory
	if stateBucket != "" {
		threads = alerting.NewStateThreads(store, stateBucket)
	}
	return alerting.NewFromEnv(getenv, alerting.EnvOptions{Logger: log, Threads: threads, Render: render})
}

// Build loads the configuration (the YAML stops here: the service gets its policy) and the
// settings above, connects to Cloud Storage and builds
// the notifier: everything a cold start, serve, watch, check and audit do before their first
// request. Close the Service when done.
func Build(ctx context.Context, env Env) (*Service, error) {
	getenv := env.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	cfg, err := config.Load(env.ConfigFile, getenv)
	if err != nil {
		return nil, err
	}
	maxAge := DefaultMaxEventAge
	if env.MaxEventAge != nil {
		maxAge = *env.MaxEventAge
	} else if s := getenv(EnvMaxEventAge); s != "" {
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
	client, closeClient, err := connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to Cloud Storage: %w", err)
	}
	if closeClient == nil {
		closeClient = func() error { return nil }
	}
	store := gcs.New(client)
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	var notifier engine.Notifier
	if env.Alerting {
		render := alerting.RenderOptions{Deployment: strings.TrimSpace(getenv(EnvDeployment)), Version: version.Get().Short()}
		if env.TextAlerts != nil && !alerting.Configured(getenv) {
			notifier = alerting.NewTextNotifier(env.TextAlerts, render)
		} else if notifier, err = NewNotifier(getenv, log, store, cfg.Policy.StateBucket, render); err != nil {
			closeClient()
			return nil, fmt.Errorf("alerting: %w", err)
		}
	}
	o := Options{Policy: cfg.Policy, Store: store, Notifier: notifier, Logger: log, MaxEventAge: maxAge,
		Concurrency: env.Concurrency, Report: env.Report}
	if err := buildAttribution(ctx, getenv, log, &o); err != nil {
		closeClient()
		return nil, err
	}
	if p := cfg.Policy.Posture; p != nil {
		// check and audit without --restore observe: they neither record a change as
		// reported nor repair, so the deployment's own audit still alerts about it.
		var st posture.Store = posture.NewMemoryStore()
		if cfg.Policy.StateBucket != "" {
			st = NewStatePostureStore(store, cfg.Policy.StateBucket, log)
		}
		pc := PostureConfig(p)
		if !env.Alerting {
			st, pc.Repair = observeOnly{st}, false
		}
		checker, err := posture.New(client, st, pc)
		if err != nil {
			closeClient()
			return nil, fmt.Errorf("posture: %w", err)
		}
		o.Posture, o.PostureBucket = checker, p.Bucket
	}
	s, err := New(o)
	if err != nil {
		closeClient()
		return nil, err
	}
	s.closer = append(s.closer, closeClient)
	return s, nil
}

// buildAttribution reads TAMPERGUARD_AUDIT_LOGS and TAMPERGUARD_LOGGING_ENDPOINT into o.
func buildAttribution(ctx context.Context, getenv func(string) string, log *slog.Logger, o *Options) error {
	resource := strings.TrimSpace(getenv(EnvAuditLogs))
	endpoint := strings.TrimSpace(getenv(EnvLoggingEndpoint))
	if resource == "" {
		if endpoint != "" {
			log.Warn(EnvLoggingEndpoint + " is ignored: " + EnvAuditLogs + " is not set, so attribution is off")
		}
		return nil
	}
	opts := []auditlog.Option{auditlog.WithRetry(DefaultAttributionRetry...)}
	from := resource
	if endpoint != "" {
		opts = append(opts, auditlog.WithEndpoint(endpoint))
		from += " through " + redactURL(endpoint)
	}
	c, err := auditlog.New(ctx, resource, opts...)
	if err != nil {
		return fmt.Errorf("%s / %s: %w", EnvAuditLogs, EnvLoggingEndpoint, err)
	}
	o.Attribution, o.AttributionFrom = c, from
	return nil
}

// redactURL is a URL without user info, query or fragment, for the startup line.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// ReadyAttrs describe the service for its startup line.
func (s *Service) ReadyAttrs() []any {
	dedup := "state bucket: incidents are de-duplicated across instances"
	if s.pol.StateBucket == "" {
		dedup = "no state bucket: incidents are de-duplicated within this instance only; duplicates delivered to other instances are not"
	}
	return []any{"version", version.Get().Short(), "config", s.pol.Origin, "rules", len(s.pol.Rules), "state_bucket", s.pol.StateBucket,
		"incidents", dedup, "max_event_age", s.maxAge.String(), "attribution", s.Attribution(), "posture", s.Posture()}
}

// DeliverCloudEvent decodes a CloudEvent (Eventarc storage event or Pub/Sub message) and
// delivers it.
func (s *Service) DeliverCloudEvent(ctx context.Context, ce cloudevents.Event) Outcome {
	req, err := DecodeCloudEvent(ce)
	if err != nil {
		return s.Malformed(ctx, err, "event_id", clip(ce.ID()), "event_type", clip(ce.Type()), "source", clip(ce.Source()),
			"subject", clip(ce.Subject()), "datacontenttype", clip(ce.DataContentType()))
	}
	return s.Deliver(ctx, req)
}

// DeliverMessage decodes a pulled Pub/Sub message and delivers it.
func (s *Service) DeliverMessage(ctx context.Context, id string, attrs map[string]string, data []byte, published time.Time) Outcome {
	req, err := DecodeMessage(id, attrs, data, published)
	if err != nil {
		return s.Malformed(ctx, err, "message_id", clip(id))
	}
	return s.Deliver(ctx, req)
}
