package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/tamperguard/tamperguard/internal/policy"
)

// repairTampered answers a tampered live generation, as the owner of its incident: keeps the
// bad bytes as evidence, then restores the signed bytes (GenerationMatch: the bad
// generation), quarantines, or only alerts, as the rule says.
func (e *Engine) repairTampered(ctx context.Context, m policy.Match, d *Decision, inc *incident, j judged) {
	e.noteBad(d, j)
	if ev, err := e.keepEvidence(ctx, j.attrs); err != nil {
		if errors.Is(err, ErrTransient) || ctx.Err() != nil {
			d.setErr(err)
			d.Transient = true
			return
		}
		e.log.Error("keeping evidence failed", "bucket", d.Bucket, "object", d.Object, "generation", d.Generation, "error", err)
	} else {
		d.Evidence = ev
	}

	src, srcErr := j.proof, error(nil)
	if src == nil {
		src, srcErr = e.goodSource(ctx, m, d.Bucket, d.Object, j.exp, j.attrs.Generation, j.versions)
	}
	if srcErr != nil && (errors.Is(srcErr, ErrTransient) || ctx.Err() != nil) {
		d.setErr(srcErr)
		d.Transient = true
		return
	}
	if src != nil {
		d.GoodContent = src.sample // a restore's read-back fills it in when not kept
	}
	switch m.Rule.OnMismatch {
	case policy.AlertOnly:
		d.Action = ActionNone
	case policy.Quarantine:
		e.quarantine(ctx, d, j.attrs)
	default:
		switch {
		case srcErr != nil:
			d.Action = ActionFailed
			d.setErr(srcErr)
		case src == nil:
			d.Reason = ReasonNoGoodSource
			if m.Rule.Fallback == policy.Quarantine {
				e.quarantine(ctx, d, j.attrs)
			} else {
				d.Action = ActionNone
			}
		default:
			e.writeGood(ctx, m, d, inc, src, Condition{GenerationMatch: j.attrs.Generation}, src.sha256)
		}
	}
	if src != nil && d.GoodContent == nil {
		d.GoodContent = src.content(ctx, e)
	}
}

// tamperedReplaced answers a tampered generation that a newer one replaced, as the owner of
// its incident. The newer one is tamperguard's own restore (a previous delivery of this
// incident wrote it and stopped before recording it), or someone else's write, which has
// its own event: the alert says this one was served until it was replaced.
func (e *Engine) tamperedReplaced(ctx context.Context, m policy.Match, d *Decision, inc *incident, j judged) {
	e.noteBad(d, j)
	if e.ownRestoreLive(ctx, d, inc.key, checkedBy(j.exp)) || d.Transient {
		return
	}
	if m.Rule.OnMismatch == policy.Quarantine {
		// A quarantine whose answer was lost leaves nothing live: it was quarantined.
		if _, err := e.store.Attrs(ctx, d.Bucket, d.Object, 0); errors.Is(err, ErrObjectNotFound) {
			d.Action, d.Restored = ActionQuarantined, j.attrs.Deleted
			return
		}
	}
	d.Action, d.Replaced = ActionSkippedNewer, j.attrs.Deleted
}

// noteBad keeps, for the alert, how the tampered generation was served and (when small
// enough) its bytes for the diff, as the judge read them.
func (e *Engine) noteBad(d *Decision, j judged) {
	d.BadCacheControl = j.attrs.Meta.CacheControl
	d.BadContent = j.sample
}

// quarantine deletes the tampered live generation, if it still is the live one. When the
// delete's precondition fails or the object is gone, a retried delete whose first response
// was lost is told apart from a newer write by what is live now.
func (e *Engine) quarantine(ctx context.Context, d *Decision, bad ObjectAttrs) {
	err := e.store.Delete(ctx, d.Bucket, d.Object, Condition{GenerationMatch: bad.Generation})
	switch {
	case err == nil:
		d.Action, d.Restored = ActionQuarantined, e.now()
	case errors.Is(err, ErrPrecondition), errors.Is(err, ErrObjectNotFound):
		live, lerr := e.store.Attrs(ctx, d.Bucket, d.Object, 0)
		switch {
		case errors.Is(lerr, ErrObjectNotFound):
			d.Action, d.Restored = ActionQuarantined, e.now() // nothing is served
		case lerr != nil:
			d.Action = ActionFailed
			d.setErr(fmt.Errorf("quarantining %s: %w", ref(d.Bucket, d.Object, bad.Generation), lerr))
		default:
			d.Action, d.Replaced = ActionSkippedNewer, live.Created
		}
	default:
		d.Action = ActionFailed
		d.setErr(fmt.Errorf("quarantining %s: %w", ref(d.Bucket, d.Object, bad.Generation), err))
		d.Transient = d.Transient || ctx.Err() != nil
	}
}

// keepEvidence copies the bad generation into the state bucket with its metadata, server-side
// (its bytes do not pass through tamperguard again).
func (e *Engine) keepEvidence(ctx context.Context, bad ObjectAttrs) (string, error) {
	if e.state == "" {
		return ref(bad.Bucket, bad.Name, bad.Generation).String() + " (noncurrent version)", nil
	}
	name := stateName("evidence", bad.Bucket, bad.Name, strconv.FormatInt(bad.Generation, 10))
	meta := bad.Meta
	if meta.ContentType == "" {
		meta.ContentType = "application/octet-stream"
	}
	custom := map[string]string{
		"tamperguard-source":     ref(bad.Bucket, bad.Name, 0).String(),
		"tamperguard-generation": strconv.FormatInt(bad.Generation, 10),
		"tamperguard-created":    bad.Created.UTC().Format("2006-01-02T15:04:05.000Z"),
	}
	for k, v := range bad.Meta.Custom {
		custom["original-"+k] = v
	}
	meta.Custom = custom
	_, err := e.store.Copy(ctx, ref(bad.Bucket, bad.Name, bad.Generation), ref(e.state, name, 0), Condition{DoesNotExist: true}, meta)
	if err != nil && !errors.Is(err, ErrPrecondition) {
		return "", fmt.Errorf("keeping evidence of %s: %w", ref(bad.Bucket, bad.Name, bad.Generation), err)
	}
	return ref(e.state, name, 0).String(), nil
}
