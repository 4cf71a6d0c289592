package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/tamperguard/tamperguard/internal/policy"
)

// Check judges generation gen (0 = the live one) of bucket/object. With act, a tampered
// live generation is repaired as its rule says; without, it is only reported.
func (e *Engine) Check(ctx context.Context, bucket, object string, gen int64, act bool) Decision {
	m, ok := e.pol.Match(bucket, object)
	if !ok {
		return Decision{Bucket: bucket, Object: object, Generation: gen, Action: ActionNone, Verdict: VerdictIgnored, Reason: ReasonNoRule}
	}
	d := &Decision{Bucket: bucket, Object: object, Generation: gen, Action: ActionNone}
	e.checkMatched(ctx, m, d, act)
	return *d
}

func (e *Engine) checkMatched(ctx context.Context, m policy.Match, d *Decision, act bool) {
	j := e.judge(ctx, m, d.Bucket, d.Object, d.Generation)
	d.fill(j)
	if j.verdict == VerdictUnverifiable && j.reason == ReasonGenerationGone && d.Generation == 0 {
		// Asked about the live object and there is none: it is missing.
		d.Verdict, d.Reason, d.Err, d.Error = VerdictMissing, ReasonMissing, nil, ""
		e.restoreMissing(ctx, m, d, 0, act)
		return
	}
	if j.verdict == VerdictUnverifiable && j.reason == ReasonGenerationGone {
		// The generation was replaced and pruned before we read it; the newer write has
		// its own event. Nothing to judge, nothing to undo.
		d.Action = ActionSkippedNewer
		d.Verdict, d.Transient = VerdictIgnored, false
		return
	}
	if j.verdict != VerdictTampered {
		if act && j.verdict == VerdictUnverifiable && !j.transient {
			d.alert = &alertDue{}
		}
		return
	}
	if !act {
		return
	}
	e.respondTampered(ctx, m, d, j)
}

// Handle decides on one storage event. The returned decision says whether it is worth a
// retry (Transient); everything else is final. An event no rule covers costs no I/O and
// no allocation.
func (e *Engine) Handle(ctx context.Context, ev Event) Decision {
	m, ok := e.pol.Match(ev.Bucket, ev.Object)
	if !ok {
		return Decision{Bucket: ev.Bucket, Object: ev.Object, Generation: ev.Generation, Action: ActionNone,
			Detail: Detail{Kind: ev.Kind, EventID: ev.ID}, Verdict: VerdictIgnored, Reason: ReasonNoRule}
	}
	d := &Decision{Bucket: ev.Bucket, Object: ev.Object, Generation: ev.Generation, Action: ActionNone,
		Detail: Detail{Kind: ev.Kind, EventID: ev.ID, EventTime: ev.Time}}
	switch ev.Kind {
	case KindFinalize:
		e.checkMatched(ctx, m, d, true)
	case KindDelete, KindArchive:
		e.handleGone(ctx, m, ev, d)
	case KindMetadata:
		e.handleMetadata(ctx, m, ev, d)
	default:
		d.Verdict, d.Err = VerdictIgnored, fmt.Errorf("unknown event kind %q", ev.Kind)
		d.Error = d.Err.Error()
	}
	return *d
}

// handleGone answers a deletion or archive: when nothing is live any more, the newest good
// generation is put back.
func (e *Engine) handleGone(ctx context.Context, m policy.Match, ev Event, d *Decision) {
	d.Verdict = VerdictIgnored
	if ev.OverwrittenBy != 0 {
		d.Reason = ReasonOverwritten // the finalize of the new generation is judged on its own
		return
	}
	live, err := e.store.Attrs(ctx, ev.Bucket, ev.Object, 0)
	switch {
	case err == nil && live.Meta.Custom[markerKey] == incidentKey(d, incidentGone):
		// Live again through this incident's own restore, whose owner stopped before it
		// recorded the outcome: verify it and finish the incident.
		e.restoreMissing(ctx, m, d, ev.Generation, true)
		return
	case err == nil:
		d.Reason = ReasonStillLive
		return
	case !errors.Is(err, ErrObjectNotFound):
		d.Verdict, d.Reason = VerdictUnverifiable, ReasonObjectUnreadable
		d.setErr(err)
		return
	}
	e.restoreMissing(ctx, m, d, ev.Generation, true)
}

func (d *Decision) setErr(err error) {
	d.Err = err
	d.Error = err.Error()
	d.Transient = errors.Is(err, ErrTransient)
}
