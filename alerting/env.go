// Package alerting tells people what tamperguard found and did: Slack messages (a bot
// token and a channel, or an incoming webhook) rendered from engine decisions, or log
// lines when Slack is not configured.
//
// Every byte that comes from an object, an event or Slack's answers is hostile. Render
// puts such values only inside code spans and code blocks, where Slack applies no
// formatting, links or mentions, after escape has made sure they cannot end the span or
// form a control sequence; tokens and webhook URLs never appear in logs or errors.
package alerting

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"strings"

	"github.com/tamperguard/tamperguard/internal/engine"
)

// Environment variables read by FromEnv.
const (
	EnvBotToken   = "SLACK_BOT_TOKEN"
	EnvChannel    = "SLACK_CHANNEL"
	EnvWebhookURL = "SLACK_WEBHOOK_URL"
	EnvAPIURL     = "SLACK_API_URL"
)

// FromEnv builds the notifier the environment asks for: SLACK_BOT_TOKEN with
// SLACK_CHANNEL, or SLACK_WEBHOOK_URL; SLACK_API_URL overrides Slack's API base. With
// neither, alerts go to the log only, and FromEnv says so once. threads may be nil (in
// memory). Errors name the variable, never its value.
func FromEnv(getenv func(string) string, logger *slog.Logger, threads ThreadStore) (engine.Notifier, error) {
	return NewFromEnv(getenv, EnvOptions{Logger: logger, Threads: threads})
}

// EnvOptions are what NewFromEnv needs besides the environment.
type EnvOptions struct {
	Logger  *slog.Logger
	Threads ThreadStore // nil: in memory
	// Render is what every alert is rendered with (the deployment and version in its
	// footer).
	Render RenderOptions
}

// NewFromEnv is FromEnv with the render options set by the caller (the deployment's name
// and tamperguard's version).
func NewFromEnv(getenv func(string) string, o EnvOptions) (engine.Notifier, error) {
	logger, threads := o.Logger, o.Threads
	if logger == nil {
		logger = slog.Default()
	}
	token := strings.TrimSpace(getenv(EnvBotToken))
	channel := strings.TrimSpace(getenv(EnvChannel))
	webhook := strings.TrimSpace(getenv(EnvWebhookURL))
	api := strings.TrimSpace(getenv(EnvAPIURL))

	switch {
	case token != "":
		if !printable(token) {
			return nil, errors.New(EnvBotToken + " holds whitespace, control or non-ASCII characters; a Slack token has none")
		}
		if channel == "" {
			return nil, errors.New(EnvChannel + " is required with " + EnvBotToken + ": the ID of the channel to post alerts to (e.g. C0123456789), with the bot invited to it")
		}
		if len(channel) > 80 || !printable(channel) {
			return nil, errors.New(EnvChannel + " is not a channel ID or name")
		}
		if api != "" {
			if err := checkURL(api); err != nil {
				return nil, errors.New(EnvAPIURL + " " + err.Error())
			}
		}
		if webhook != "" {
			logger.Warn(EnvWebhookURL + " is ignored: " + EnvBotToken + " is set")
		}
		return NewSlack(Options{Token: token, Channel: channel, APIURL: api, Logger: logger, Threads: threads, Render: o.Render})
	case webhook != "":
		if err := checkURL(webhook); err != nil {
			return nil, errors.New(EnvWebhookURL + " " + err.Error())
		}
		if channel != "" {
			logger.Warn(EnvChannel + " is ignored: an incoming webhook posts to the channel it was created for")
		}
		return NewSlack(Options{WebhookURL: webhook, Logger: logger, Threads: threads, Render: o.Render})
	case channel != "":
		return nil, errors.New(EnvChannel + " is set but " + EnvBotToken + " is not: set the bot token too, or use " + EnvWebhookURL)
	}
	logger.Warn("Slack not configured: alerts go to the log only", "hint", "set "+EnvBotToken+" and "+EnvChannel+", or "+EnvWebhookURL)
	ro := o.Render
	ro.NoThreads = true // a follow-up is a log line of its own
	return NewLogNotifier(logger, ro), nil
}

// printable: ASCII letters, digits and punctuation only.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// checkURL accepts https URLs, and http ones only on loopback (tests, a local proxy): a
// token or a webhook must not cross a network in the clear. Its error never quotes the URL.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return errors.New("is not a valid URL (scheme://host/path, no user info)")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
		return errors.New("must be https (plain http is allowed for loopback only)")
	}
	return errors.New("must be an https URL")
}

// LogNotifier writes each alert to the log: ERROR for tampering, WARN for what could not
// be verified, with the alert's full text.
type LogNotifier struct {
	log    *slog.Logger
	render RenderOptions
}

var _ engine.Notifier = (*LogNotifier)(nil)

// NewLogNotifier returns a LogNotifier.
func NewLogNotifier(logger *slog.Logger, opts RenderOptions) *LogNotifier {
	if logger == nil {
		logger = slog.Default()
	}
	return &LogNotifier{log: logger, render: opts}
}

// Notify implements engine.Notifier.
func (l *LogNotifier) Notify(ctx context.Context, d *engine.Decision) error {
	if d == nil {
		return errors.New("alerting: nil decision")
	}
	if d.Verdict == engine.VerdictOK || d.Verdict == engine.VerdictIgnored {
		return nil
	}
	m := Render(d, l.render)
	l.log.Log(ctx, m.Level, m.Header, alertAttrs(d, m)...)
	return nil
}
