// Package cloudlog makes log/slog write what Cloud Logging reads from a container's
// stdout: one JSON object per line with "severity", "message" and "time", so that the
// Cloud Function and the CLI's serve command log the same way and alert policies can key
// on severity (a tampered object is CRITICAL).
package cloudlog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// LevelCritical is the level of a line that needs a human now (a tampered object). slog
// has no such level; Cloud Logging's CRITICAL sits above ERROR.
const LevelCritical = slog.LevelError + 4

// Keys Cloud Logging gives a meaning to in a structured log line.
const (
	SeverityKey = "severity"
	MessageKey  = "message"
	TimeKey     = "time"
)

// Severity maps a slog level to a Cloud Logging severity.
func Severity(l slog.Level) string {
	switch {
	case l < slog.LevelInfo:
		return "DEBUG"
	case l < slog.LevelWarn:
		return "INFO"
	case l < slog.LevelError:
		return "WARNING"
	case l < LevelCritical:
		return "ERROR"
	default:
		return "CRITICAL"
	}
}

// ParseLevel reads a level name as Cloud Logging or slog spells it ("debug", "INFO",
// "warning", "warn", "error", "critical"); ok is false for anything else.
func ParseLevel(s string) (slog.Level, bool) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "DEBUG":
		return slog.LevelDebug, true
	case "INFO", "":
		return slog.LevelInfo, true
	case "WARNING", "WARN":
		return slog.LevelWarn, true
	case "ERROR":
		return slog.LevelError, true
	case "CRITICAL":
		return LevelCritical, true
	}
	return 0, false
}

// NewHandler returns a JSON handler writing Cloud Logging's structured format to w.
// Lines below level are dropped (nil: INFO). Attribute values are escaped by slog's JSON
// encoder, so nothing an event carries can start a new line or a new field.
func NewHandler(w io.Writer, level slog.Leveler) slog.Handler {
	if level == nil {
		level = slog.LevelInfo
	}
	return slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) != 0 {
				return a
			}
			switch a.Key {
			case slog.LevelKey:
				l, _ := a.Value.Any().(slog.Level)
				return slog.String(SeverityKey, Severity(l))
			case slog.MessageKey:
				return slog.Attr{Key: MessageKey, Value: a.Value}
			case slog.TimeKey:
				return slog.Attr{Key: TimeKey, Value: a.Value}
			}
			return a
		},
	})
}

// New returns a logger writing Cloud Logging's structured format to w.
func New(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(traceHandler{NewHandler(w, level)})
}

// LabelsKey is the structured log field Cloud Logging turns into the entry's labels.
const LabelsKey = "logging.googleapis.com/labels"

// TraceKey is the structured log field Cloud Logging turns into the entry's trace: a request's
// lines are then grouped under its trace ("projects/PROJECT/traces/TRACE_ID").
const TraceKey = "logging.googleapis.com/trace"

// WithLabels returns log with labels on every line (e.g. the deployment's name), as Cloud
// Logging reads them; nil or empty labels change nothing.
func WithLabels(log *slog.Logger, labels map[string]string) *slog.Logger {
	if len(labels) == 0 {
		return log
	}
	var attrs []any
	for k, v := range labels {
		attrs = append(attrs, slog.String(k, v))
	}
	return log.With(slog.Group(LabelsKey, attrs...))
}

// Format is how a long-running command writes its log.
type Format string

// Log formats.
const (
	FormatJSON Format = "json" // Cloud Logging's structured JSON, one object per line
	FormatText Format = "text" // logfmt for a person at a terminal
)

// ParseFormat reads --log-format: json, text, or "" (auto: json unless the log goes to a
// terminal).
func ParseFormat(s string, terminal bool) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "json":
		return FormatJSON, nil
	case "text":
		return FormatText, nil
	case "", "auto":
		if terminal {
			return FormatText, nil
		}
		return FormatJSON, nil
	}
	return "", fmt.Errorf("log format %q is not json or text", s)
}

// NewFormat returns a logger writing format to w at level: Cloud Logging JSON, or text whose
// levels are Cloud Logging's severities too (CRITICAL is CRITICAL, not ERROR+4).
func NewFormat(w io.Writer, format Format, level slog.Leveler) *slog.Logger {
	if format == FormatJSON {
		return New(w, level)
	}
	if level == nil {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.LevelKey {
				l, _ := a.Value.Any().(slog.Level)
				return slog.String(slog.LevelKey, Severity(l))
			}
			return a
		}}))
}

type traceKey struct{}

// WithTrace returns ctx carrying trace (a Cloud Logging trace resource name,
// "projects/P/traces/ID"); lines logged with ctx through a Cloud Logging handler carry it.
func WithTrace(ctx context.Context, trace string) context.Context {
	if trace == "" {
		return ctx
	}
	return context.WithValue(ctx, traceKey{}, trace)
}

// TraceOf returns the trace WithTrace put in ctx.
func TraceOf(ctx context.Context) string {
	s, _ := ctx.Value(traceKey{}).(string)
	return s
}

// TraceName turns an incoming request's trace header into Cloud Logging's trace resource
// name for project: W3C traceparent ("00-TRACEID-SPANID-FLAGS") or X-Cloud-Trace-Context
// ("TRACEID/SPANID;o=1"). "" when there is no project or the header is not one of those.
func TraceName(project, traceparent, cloudTrace string) string {
	if project == "" {
		return ""
	}
	id := ""
	if p := strings.Split(strings.TrimSpace(traceparent), "-"); len(p) == 4 && len(p[1]) == 32 {
		id = p[1]
	} else if t, _, _ := strings.Cut(strings.TrimSpace(cloudTrace), "/"); len(t) == 32 {
		id = t
	}
	if id == "" || strings.Trim(strings.ToLower(id), "0123456789abcdef") != "" || strings.Trim(id, "0") == "" {
		return ""
	}
	return "projects/" + project + "/traces/" + strings.ToLower(id)
}

// traceHandler adds the context's trace to every line.
type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if t := TraceOf(ctx); t != "" {
		r.AddAttrs(slog.String(TraceKey, t))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(attrs)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}
