package alerting

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/posture"
)

// Configured reports whether the environment asks for Slack (a bot token or a webhook).
func Configured(getenv func(string) string) bool {
	return strings.TrimSpace(getenv(EnvBotToken)) != "" || strings.TrimSpace(getenv(EnvWebhookURL)) != ""
}

// TextNotifier prints each alert as a person reads it in Slack (Text), framed, to a writer: the
// CLI's check and audit without Slack, where one log line holding the whole alert would be
// unreadable.
type TextNotifier struct {
	mu     sync.Mutex
	w      io.Writer
	render RenderOptions
}

var _ engine.Notifier = (*TextNotifier)(nil)

// NewTextNotifier returns a TextNotifier writing to w.
func NewTextNotifier(w io.Writer, opts RenderOptions) *TextNotifier {
	return &TextNotifier{w: w, render: opts}
}

// Notify implements engine.Notifier.
func (n *TextNotifier) Notify(_ context.Context, d *engine.Decision) error {
	if d == nil {
		return errors.New("alerting: nil decision")
	}
	if d.Verdict == engine.VerdictOK || d.Verdict == engine.VerdictIgnored {
		return nil
	}
	return n.print(Render(d, n.render))
}

// FollowUp prints the attribution found after an alert went out.
func (n *TextNotifier) FollowUp(_ context.Context, d *engine.Decision) error {
	if d == nil || d.WrittenBy == nil {
		return errors.New("alerting: a follow-up needs a decision with its attribution")
	}
	return n.print(RenderFollowUp(d, n.render))
}

// NotifyPosture prints the alert about a posture finding.
func (n *TextNotifier) NotifyPosture(_ context.Context, f posture.Finding) error {
	return n.print(RenderPosture(f, n.render))
}

func (n *TextNotifier) print(m Message) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, err := fmt.Fprintf(n.w, "\n--- the alert (Slack is not configured) %s\n%s%s\n", strings.Repeat("-", 30), Text(m), strings.Repeat("-", 70))
	return err
}
