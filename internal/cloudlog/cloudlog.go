// Package cloudlog makes log/slog write what Cloud Logging reads from a container's
// stdout: one JSON object per line with "severity", "message" and "time", so that the
// Cloud Function and the CLI's serve command log the same way and alert policies can key
// on severity (a tampered object is CRITICAL).
package cloudlog

import (
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
	return slog.New(NewHandler(w, level))
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
