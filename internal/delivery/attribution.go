package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tamperguard/tamperguard/internal/auditlog"
	"github.com/tamperguard/tamperguard/internal/engine"
)

// Who wrote it. For a tampering, a deletion or a metadata change whose alert is due, the
// runtime looks up the write's Data Access audit entry (internal/auditlog) after the work
// slot is let go and before the decision line is logged, so the writer is in the decision's
// written_by and in the alert. Entries reach the Logging API seconds to minutes after the
// write, and the function must answer: the first look is short (DefaultAttributionRetry,
// bounded by DefaultAttributionTimeout). A writer not yet logged makes the alert say so, and
// once the alert is out the runtime looks again in the background (DefaultFollowUps, one
// query each, on an in-process timer) and posts what it finds as a reply in the object's
// alert thread. The follow-ups live in the instance: one that is shut down (or, on Cloud
// Run, idle without CPU) before they run does not post them.

// Environment variables Build reads for attribution.
const (
	// EnvAuditLogs is the log resource the Data Access entries are read from: projects/P or
	// the module's log view projects/P/locations/L/buckets/B/views/V. Unset: attribution is
	// off, and alerts say so.
	EnvAuditLogs = "TAMPERGUARD_AUDIT_LOGS"
	// EnvLoggingEndpoint overrides the Logging API's base URL (an emulator or a test server);
	// requests to it carry no credentials.
	EnvLoggingEndpoint = "TAMPERGUARD_LOGGING_ENDPOINT"
	// EnvDeployment names the deployment (Terraform's name prefix) in every alert.
	EnvDeployment = "TAMPERGUARD_DEPLOYMENT"
)

// Bounds of attribution.
var (
	// DefaultAttributionRetry are the pauses between the first look's queries: three
	// queries over about three seconds.
	DefaultAttributionRetry = []time.Duration{time.Second, 2 * time.Second}
	// DefaultFollowUps are the pauses before each later query for a writer that was not yet
	// in the audit logs: about fifteen minutes in all, past auditlog.DefaultSettle, so the
	// last answer is final (found, not logged, or logs off).
	DefaultFollowUps = []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute}
)

const (
	// DefaultAttributionTimeout bounds the first look, queries and pauses together.
	DefaultAttributionTimeout = 8 * time.Second
	// maxFollowUps bounds the writes looked up again at once; past it a pending writer stays
	// pending (the alert said so).
	maxFollowUps = 256
	// followUpQueryTimeout bounds one later query.
	followUpQueryTimeout = 30 * time.Second
)

// Attributor finds who made a write (*auditlog.Client).
type Attributor interface {
	// Lookup retries briefly while the entry may be on its way.
	Lookup(ctx context.Context, w auditlog.Write) (auditlog.Attribution, error)
	// Find asks once.
	Find(ctx context.Context, w auditlog.Write) (auditlog.Attribution, error)
	// DataWriteLogging says whether Data Access logs of the bucket appear on.
	DataWriteLogging(ctx context.Context, bucket string, lastWrite time.Time) (auditlog.Logging, error)
}

// FollowUpNotifier is a notifier that can post a writer found after the alert (alerting's
// Slack and log notifiers).
type FollowUpNotifier interface {
	FollowUp(ctx context.Context, d *engine.Decision) error
}

// writeOf is the write a decision is about, for the audit log lookup: the judged
// generation's creation for a tampering, the event's time for a deletion or a metadata
// change. false: nothing to look up (not such a decision, or no time to look around).
func writeOf(d *engine.Decision) (auditlog.Write, bool) {
	if d.Bucket == "" || d.Object == "" {
		return auditlog.Write{}, false
	}
	w := auditlog.Write{Bucket: d.Bucket, Object: d.Object, Generation: d.Generation}
	switch {
	case d.Verdict == engine.VerdictTampered && d.Reason == engine.ReasonMetadata:
		w.Kind, w.Time = auditlog.KindMetadata, d.EventTime
	case d.Verdict == engine.VerdictTampered:
		w.Kind, w.Time = auditlog.KindCreate, d.Created
	case d.Verdict == engine.VerdictMissing:
		w.Kind, w.Time = auditlog.KindDelete, d.EventTime
	default:
		return auditlog.Write{}, false
	}
	// An audit finds a deletion or a metadata change without an event: when it happened is
	// unknown, and a window around nothing would name someone at random.
	return w, !w.Time.IsZero()
}

// Attribute looks up who made the write d is about, for a tampering, a deletion or a
// metadata change, and puts it in d.WrittenBy (the runtime asks only for decisions whose
// alert is due; check and audit for every one they print). It reports whether the writer is
// not yet in the audit logs (worth a later look). With attribution off, WrittenBy says so.
func (s *Service) Attribute(ctx context.Context, d *engine.Decision) (pending bool) {
	if d.Transient || d.WrittenBy != nil {
		return false
	}
	w, ok := writeOf(d)
	if !ok {
		return false
	}
	if s.attr == nil {
		d.WrittenBy = &auditlog.Attribution{Status: auditlog.StatusOff,
			Note: "attribution is off: " + EnvAuditLogs + " is not set (terraform: storage_data_write_audit_logs)"}
		return false
	}
	lctx, cancel := context.WithTimeout(ctx, s.attrTimeout)
	defer cancel()
	a, err := s.attr.Lookup(lctx, w)
	switch {
	case err == nil:
	case lctx.Err() != nil && ctx.Err() == nil:
		// The first look ran out of time, not the request: the entry may still come.
		a = auditlog.Attribution{Status: auditlog.StatusPending,
			Note: fmt.Sprintf("not yet in audit logs (looked for %s)", s.attrTimeout)}
	default:
		s.log.Warn("who made the write could not be looked up in the audit logs", "bucket", d.Bucket, "object", d.Object,
			"generation", d.Generation, "error", err.Error())
		a = auditlog.Attribution{Status: auditlog.StatusUnavailable, Note: err.Error()}
		if errors.Is(err, auditlog.ErrTransient) {
			d.WrittenBy = &a
			return true
		}
	}
	d.WrittenBy = &a
	return a.Status == auditlog.StatusPending
}

// followUp looks again, in the background, for the writer of d's write, which was not yet
// in the audit logs when d's alert went out, and posts it in the alert's thread. One
// follow-up per write at a time, at most maxFollowUps at once.
func (s *Service) followUp(d *engine.Decision) {
	w, ok := writeOf(d)
	if !ok || s.attr == nil || len(s.followUps) == 0 {
		return
	}
	key := w.String()
	s.fmu.Lock()
	if s.closed || s.following[key] {
		s.fmu.Unlock()
		return
	}
	if len(s.following) >= maxFollowUps {
		s.fmu.Unlock()
		s.log.Warn("too many writers being looked up again; this one is not", "bucket", d.Bucket, "object", d.Object, "generation", d.Generation)
		return
	}
	s.following[key] = true
	s.wg.Add(1)
	s.fmu.Unlock()

	// A copy without what the follow-up does not need (the sampled bytes).
	cp := *d
	cp.BadContent, cp.GoodContent, cp.WrittenBy = nil, nil, nil
	go func() {
		defer s.wg.Done()
		defer func() {
			s.fmu.Lock()
			delete(s.following, key)
			s.fmu.Unlock()
		}()
		s.runFollowUp(&cp, w)
	}()
}

func (s *Service) runFollowUp(d *engine.Decision, w auditlog.Write) {
	attrs := []any{"bucket", d.Bucket, "object", d.Object, "generation", d.Generation, "incident", d.Incident}
	for i, pause := range s.followUps {
		if err := s.sleep(s.bg, pause); err != nil {
			s.log.Info("instance stopping: the writer is not looked up again", attrs...)
			return
		}
		ctx, cancel := context.WithTimeout(s.bg, followUpQueryTimeout)
		a, err := s.attr.Find(ctx, w)
		cancel()
		if err != nil {
			if errors.Is(err, auditlog.ErrTransient) && i < len(s.followUps)-1 {
				continue
			}
			s.log.Warn("the writer could not be looked up again; the alert keeps saying it was not yet in the audit logs",
				append(attrs, "error", err.Error())...)
			return
		}
		if a.Status == auditlog.StatusPending {
			continue
		}
		d.WrittenBy = &a
		s.log.Info("writer found after the alert", append(attrs, "written_by", a)...)
		n, ok := s.notifier.(FollowUpNotifier)
		if !ok {
			return
		}
		ctx, cancel = context.WithTimeout(s.bg, DefaultAlertTimeout)
		defer cancel()
		if err := n.FollowUp(ctx, d); err != nil {
			s.log.Error("follow-up naming the writer not delivered", append(attrs, "error", err.Error())...)
		}
		return
	}
	s.log.Warn("the writer is still not in the audit logs; not looked up again", append(attrs, "looks", len(s.followUps))...)
}

// AuditLogging says, for the check and audit output, whether Data Access audit logs of
// bucket appear on, judged by the newest write tamperguard read there. ok is false when
// attribution is off (nothing to ask).
func (s *Service) AuditLogging(ctx context.Context, bucket string, newest time.Time) (l auditlog.Logging, ok bool, err error) {
	if s.attr == nil {
		return auditlog.LoggingUnknown, false, nil
	}
	l, err = s.attr.DataWriteLogging(ctx, bucket, newest)
	return l, true, err
}

// Attribution describes attribution for the startup line.
func (s *Service) Attribution() string {
	if s.attr == nil {
		return "off: " + EnvAuditLogs + " is not set; alerts say the writer is unknown"
	}
	return "on: " + s.attrFrom
}
