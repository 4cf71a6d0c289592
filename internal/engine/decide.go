package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tamperguard/tamperguard/internal/policy"
)

// The decision table (DESIGN.md, "Decisions"), in one place. Every event, check and audit
// comes through here; each row calls one step, and the steps live in their own files:
//
//	judge                 judge.go     hash exactly that generation, compare with the signed digest
//	repairTampered        tampered.go  evidence, then restore, quarantine or alert as the rule says
//	tamperedReplaced      tampered.go  a newer generation came first: say what was served, until when
//	restoreMissing        missing.go   put the newest good bytes back with DoesNotExist
//	judgeMetadata         metadata.go  the protected metadata the live generation must carry
//	repairMetadata        metadata.go  put it back with MetagenerationMatch
//
// A step that changes the bucket runs as the owner of the incident (asOwner, incident.go):
// exactly one delivery acts, and the alert goes out once.

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
		e.decideGeneration(ctx, m, d, true)
	case KindDelete, KindArchive:
		e.decideGone(ctx, m, ev, d)
	case KindMetadata:
		e.decideMetadata(ctx, m, d, ev.Generation, ev.Metageneration, true)
	default:
		d.Verdict, d.Err = VerdictIgnored, fmt.Errorf("unknown event kind %q", ev.Kind)
		d.Error = d.Err.Error()
	}
	return *d
}

// Check judges generation gen (0 = the live one) of bucket/object. With act, a tampered
// live generation is repaired as its rule says; without, it is only reported.
func (e *Engine) Check(ctx context.Context, bucket, object string, gen int64, act bool) Decision {
	m, ok := e.pol.Match(bucket, object)
	if !ok {
		return Decision{Bucket: bucket, Object: object, Generation: gen, Action: ActionNone, Verdict: VerdictIgnored, Reason: ReasonNoRule}
	}
	d := &Decision{Bucket: bucket, Object: object, Generation: gen, Action: ActionNone}
	e.decideGeneration(ctx, m, d, act)
	return *d
}

// decideGeneration: "finalize G", and a check or audit of an object (d.Generation, 0 for
// the live one). act: repair as the rule says; otherwise only report.
func (e *Engine) decideGeneration(ctx context.Context, m policy.Match, d *Decision, act bool) {
	e.decideJudged(ctx, m, d, e.judge(ctx, m, d.Bucket, d.Object, d.Generation), act)
}

// decideJudged is decideGeneration once the generation is judged (an audit judges the
// attributes its listing gave).
func (e *Engine) decideJudged(ctx context.Context, m policy.Match, d *Decision, j judged, act bool) {
	d.fill(j)
	gone := j.verdict == VerdictUnverifiable && j.reason == ReasonGenerationGone
	switch {
	case gone && d.Generation == 0:
		// Asked about the live object and there is none: it is missing.
		d.Verdict, d.Reason, d.Err, d.Error = VerdictMissing, ReasonMissing, nil, ""
		e.decideMissing(ctx, m, d, 0, act)
	case gone:
		// The generation was replaced and pruned before it was read; the newer write has
		// its own event. Nothing to judge, nothing to undo.
		d.Action = ActionSkippedNewer
		d.Verdict, d.Transient = VerdictIgnored, false
	case j.verdict == VerdictOK:
		// Nothing to do.
	case j.verdict == VerdictUnverifiable:
		// Never restore from untrusted data. People hear of it, unless a retry may still
		// get an answer.
		if act && !j.transient {
			d.alert = &alertDue{}
		}
	case !act:
		// Tampered, reported only.
	case j.attrs.Live:
		// Tampered and live: restore the signed bytes with GenerationMatch: G, keep G as
		// evidence, alert.
		e.asOwner(ctx, d, incidentTampered, func(ctx context.Context, inc *incident) bool {
			e.repairTampered(ctx, m, d, inc, j)
			return true
		})
	default:
		// Tampered, and a newer generation is live: no restore (the newer write has its
		// own event); alert that G was served from its creation until it was replaced.
		e.asOwner(ctx, d, incidentTampered, func(ctx context.Context, inc *incident) bool {
			e.tamperedReplaced(ctx, m, d, inc, j)
			return true
		})
	}
}

// decideGone: "delete or archive of G". When nothing is live any more, the newest good
// generation is put back; when something is, the event is the shadow of an overwrite
// (whose finalize is judged on its own) or the pruning of an old version.
func (e *Engine) decideGone(ctx context.Context, m policy.Match, ev Event, d *Decision) {
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
		e.decideMissing(ctx, m, d, ev.Generation, true)
	case err == nil:
		d.Reason = ReasonStillLive
	case !errors.Is(err, ErrObjectNotFound):
		d.Verdict, d.Reason = VerdictUnverifiable, ReasonObjectUnreadable
		d.setErr(err)
	default:
		e.decideMissing(ctx, m, d, ev.Generation, true)
	}
}

// decideListedMissing: an object that a rule names exactly is not in the bucket (audit).
func (e *Engine) decideListedMissing(ctx context.Context, m policy.Match, d *Decision, act bool) {
	e.decideMissing(ctx, m, d, 0, act)
	if d.Reason == "" && d.Verdict == VerdictMissing {
		d.Reason = ReasonMissing
	}
}

// decideMissing: the object is gone. deletedGen is the generation whose deletion was
// reported (0 if unknown). What it must be comes from the signed release; with act, its
// newest good bytes are put back with DoesNotExist, as the owner of the ".gone" incident.
func (e *Engine) decideMissing(ctx context.Context, m policy.Match, d *Decision, deletedGen int64, act bool) {
	d.Verdict = VerdictMissing
	exp, err := Expect(ctx, e.res, m, d.Object, time.Time{})
	if err != nil {
		// Nothing verified to restore from: never restore from untrusted data.
		d.Verdict, d.Reason = VerdictUnverifiable, ReasonOf(err)
		d.setErr(err)
		d.Transient = isTransientRelease(err)
		if act && !d.Transient {
			d.alert = &alertDue{}
		}
		return
	}
	d.expect(exp)
	if !act {
		return
	}
	if deletedGen == 0 {
		// Found missing by a check or an audit: what was deleted is the newest generation,
		// if there is one. Keying the incident on it makes the audit and the archive event
		// one incident, and a later deletion a new one.
		deletedGen = e.newestGeneration(ctx, d.Bucket, d.Object)
		d.Generation = deletedGen
	}
	e.asOwner(ctx, d, incidentGone, func(ctx context.Context, inc *incident) bool {
		return e.restoreMissing(ctx, m, d, inc, exp, deletedGen)
	})
}

// decideMetadata: "metadata update" of the live generation (gen, 0 for whichever is live;
// evMG is the metageneration the event reported, 0 if none). Protected metadata that
// differs from what the rule (or the last good generation) says is put back.
func (e *Engine) decideMetadata(ctx context.Context, m policy.Match, d *Decision, gen, evMG int64, act bool) {
	live, err := e.store.Attrs(ctx, d.Bucket, d.Object, 0)
	switch {
	case errors.Is(err, ErrObjectNotFound), err == nil && gen != 0 && live.Generation != gen:
		d.Verdict, d.Reason = VerdictIgnored, ReasonNotLive // a newer generation has its own events
		return
	case err != nil:
		d.Verdict, d.Reason = VerdictUnverifiable, ReasonObjectUnreadable
		d.setErr(err)
		return
	}
	d.Generation, d.Size, d.Created = live.Generation, live.Size, live.Created
	if act && evMG != 0 && live.Metageneration > evMG && live.Meta.Custom[markerKey] == incidentKey(d, incidentMetadata(evMG)) {
		// This incident's repair is live; its owner stopped before recording it.
		e.asOwner(ctx, d, incidentMetadata(evMG), func(context.Context, *incident) bool {
			d.Verdict, d.Reason, d.Action, d.Restored = VerdictTampered, ReasonMetadata, ActionMetadataRestored, live.Updated
			return true
		})
		return
	}
	fixed, changes, err := e.judgeMetadata(ctx, m, d, live)
	switch {
	case err != nil:
		// What it must carry cannot be told.
		d.Verdict = VerdictUnverifiable
		if d.Reason == "" {
			d.Reason = ReasonObjectUnreadable
		}
		d.setErr(err)
		d.Transient = d.Transient || isTransientRelease(err)
	case len(changes) == 0:
		d.Verdict = VerdictOK
	default:
		// Protected metadata changed: put it back with MetagenerationMatch, alert.
		d.Verdict, d.Reason, d.MetadataChanges = VerdictTampered, ReasonMetadata, changes
		if act {
			e.asOwner(ctx, d, incidentMetadata(live.Metageneration), func(ctx context.Context, inc *incident) bool {
				e.repairMetadata(ctx, d, inc, live, fixed)
				return true
			})
		}
	}
}
