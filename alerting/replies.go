package alerting

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/slack-go/slack"

	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/posture"
)

// Messages that are not an object's alert: the follow-up that names a writer found after
// the alert went out, and posture findings. Neither is an incident: they carry no incident
// metadata (AlertSent must never mistake them for an alert), and a post retried after a
// lost answer may show twice.

// renderOptions are the options every message of this notifier is rendered with.
func (s *Slack) renderOptions() RenderOptions {
	ro := s.render
	ro.NoThreads = s.api == nil
	return ro
}

// FollowUp posts who made d's write (d.WrittenBy, found after d's alert went out): with a
// bot token as a reply in the object's alert thread (a new message when there is none), as
// a message of its own through a webhook. When Slack stays unreachable the follow-up is
// logged at ERROR with its full text and an error wrapping ErrNotDelivered is returned.
func (s *Slack) FollowUp(ctx context.Context, d *engine.Decision) error {
	if d == nil || d.WrittenBy == nil {
		return errors.New("alerting: a follow-up needs a decision with its attribution")
	}
	key := d.Bucket + "/" + d.Object
	defer s.locks.lock(key)()
	m := RenderFollowUp(d, s.renderOptions())
	deadline := s.now().Add(s.elapsed)
	var err error
	if s.api == nil {
		err = s.postWebhook(ctx, deadline, m)
	} else {
		thread := ""
		if th, open, lerr := s.threads.Load(ctx, key); lerr == nil && open {
			thread = th.TS
		}
		_, err = s.postPlain(ctx, deadline, m, thread, false)
	}
	if err != nil {
		s.log.Error("follow-up not delivered to Slack; its full text follows", append(alertAttrs(d, m), "error", err.Error())...)
	}
	return err
}

// NotifyPosture posts the alert about a posture finding. Every alert about one check of one
// bucket goes into one thread (f.Thread), however far apart: the first is its parent, the
// later ones (a recovery, a new change) are replies also sent to the channel, so none is
// missed. Through a webhook each is a message of its own.
func (s *Slack) NotifyPosture(ctx context.Context, f posture.Finding) error {
	key := f.Thread
	if key == "" {
		key = "posture/" + f.Bucket + "/" + f.Check
	}
	defer s.locks.lock(key)()
	m := RenderPosture(f, s.renderOptions())
	now := s.now()
	deadline := now.Add(s.elapsed)
	var err error
	if s.api == nil {
		err = s.postWebhook(ctx, deadline, m)
	} else {
		err = s.postPostureBot(ctx, deadline, key, m, now)
	}
	if err != nil {
		s.log.Error("posture alert not delivered to Slack; its full text follows",
			"bucket", f.Bucket, "check", f.Check, "status", string(f.Status), "alert", Text(m), "error", err.Error())
	}
	return err
}

func (s *Slack) postPostureBot(ctx context.Context, deadline time.Time, key string, m Message, now time.Time) error {
	th, open, err := s.threads.Load(ctx, key)
	if err != nil {
		s.log.Warn("posture thread state unreadable; the alert goes out as a new message", "thread", key, "error", s.scrub(err.Error()))
	}
	if open && th.TS != "" {
		_, err := s.postPlain(ctx, deadline, m, th.TS, true)
		if err == nil {
			th.Count, th.Last = th.Count+1, now
			s.saveThread(ctx, key, th)
			return nil
		}
		var pe permanentError
		if !errors.As(err, &pe) {
			return err
		}
		s.log.Warn("reply to the posture thread refused; posting a new message", "thread", key, "error", err.Error())
	}
	ch, err := s.postPlain(ctx, deadline, m, "", false)
	if err != nil {
		return err
	}
	next := Thread{Version: th.Version, Count: 1, First: now, Last: now}
	if validTS(ch.ts) {
		next.TS = ch.ts
		if validChannel(ch.channel) {
			next.Channel = ch.channel
		}
	}
	s.saveThread(ctx, key, next)
	return nil
}

type posted struct{ channel, ts string }

// postPlain posts m with the bot token, as a reply in thread when it is set (broadcast: also
// shown in the channel).
func (s *Slack) postPlain(ctx context.Context, deadline time.Time, m Message, thread string, broadcast bool) (posted, error) {
	opts := []slack.MsgOption{
		slack.MsgOptionBlocks(m.Blocks...),
		slack.MsgOptionText(m.Fallback, false),
		slack.MsgOptionDisableLinkUnfurl(),
		slack.MsgOptionDisableMediaUnfurl(),
	}
	if thread != "" {
		opts = append(opts, slack.MsgOptionTS(thread))
		if broadcast {
			opts = append(opts, slack.MsgOptionBroadcast())
		}
	}
	var p posted
	err := s.try(ctx, deadline, func(ctx context.Context) error {
		var err error
		p.channel, p.ts, err = s.api.PostMessageContext(ctx, s.channel, opts...)
		return err
	})
	return p, err
}

func (s *Slack) saveThread(ctx context.Context, key string, th Thread) {
	if err := s.threads.Save(ctx, key, th); err != nil {
		level := slog.LevelWarn
		if errors.Is(err, ErrThreadConflict) {
			level = slog.LevelInfo
		}
		s.log.Log(ctx, level, "thread state not saved; the next message may start a new thread", "thread", key, "error", s.scrub(err.Error()))
	}
}

// FollowUp logs who made d's write, found after its alert.
func (l *LogNotifier) FollowUp(ctx context.Context, d *engine.Decision) error {
	if d == nil || d.WrittenBy == nil {
		return errors.New("alerting: a follow-up needs a decision with its attribution")
	}
	m := RenderFollowUp(d, l.render)
	l.log.Log(ctx, slog.LevelWarn, m.Header, alertAttrs(d, m)...)
	return nil
}

// NotifyPosture logs the alert about a posture finding.
func (l *LogNotifier) NotifyPosture(ctx context.Context, f posture.Finding) error {
	m := RenderPosture(f, l.render)
	l.log.Log(ctx, m.Level, m.Header, "bucket", f.Bucket, "check", f.Check, "status", string(f.Status), "alert", Text(m))
	return nil
}
