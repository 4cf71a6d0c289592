package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/tamperguard/tamperguard/internal/policy"
)

// handleMetadata answers a metadata change on the live generation: protected metadata
// that differs from the rule's (or from the last good generation's) is put back.
func (e *Engine) handleMetadata(ctx context.Context, m policy.Match, ev Event, d *Decision) {
	e.checkMetadata(ctx, m, d, ev.Generation, ev.Metageneration, true)
}

// checkMetadata compares the live generation's protected metadata with what it must be.
// evMG is the metageneration the event reported (0 if none).
func (e *Engine) checkMetadata(ctx context.Context, m policy.Match, d *Decision, gen, evMG int64, act bool) {
	live, err := e.store.Attrs(ctx, d.Bucket, d.Object, 0)
	if errors.Is(err, ErrObjectNotFound) || (err == nil && gen != 0 && live.Generation != gen) {
		d.Verdict, d.Reason = VerdictIgnored, ReasonNotLive // a newer generation has its own events
		return
	}
	if err != nil {
		d.Verdict, d.Reason = VerdictUnverifiable, ReasonObjectUnreadable
		d.setErr(err)
		return
	}
	d.Generation, d.Size, d.Created = live.Generation, live.Size, live.Created
	if act && evMG != 0 && live.Metageneration > evMG && live.Meta.Custom[markerKey] == incidentKey(d, incidentMetadata(evMG)) {
		// This incident's repair is live; its owner stopped before recording it.
		_, inc, ok := e.own(ctx, d, incidentMetadata(evMG))
		if !ok {
			return
		}
		d.Verdict, d.Reason, d.Action, d.Restored = VerdictTampered, ReasonMetadata, ActionMetadataRestored, live.Updated
		e.conclude(inc, d, true)
		return
	}
	want, err := e.wantedMetadata(ctx, m, d)
	if err != nil {
		d.Verdict = VerdictUnverifiable
		if d.Reason == "" {
			d.Reason = ReasonObjectUnreadable
		}
		d.setErr(err)
		if errors.Is(err, ErrTransient) || isTransientRelease(err) {
			d.Transient = true
		}
		return
	}
	changes := map[string][2]string{}
	fixed := live.Meta
	compare := func(name string, have *string, want string) {
		if want != "" && *have != want {
			changes[name] = [2]string{*have, want}
			*have = want
		}
	}
	compare("Content-Type", &fixed.ContentType, want.ContentType)
	compare("Content-Encoding", &fixed.ContentEncoding, want.ContentEncoding)
	compare("Cache-Control", &fixed.CacheControl, want.CacheControl)
	compare("Content-Disposition", &fixed.ContentDisposition, want.ContentDisposition)
	if len(changes) == 0 {
		d.Verdict = VerdictOK
		return
	}
	d.Verdict, d.Reason, d.MetadataChanges = VerdictTampered, ReasonMetadata, changes
	if !act {
		return
	}
	ctx, inc, ok := e.own(ctx, d, incidentMetadata(live.Metageneration))
	if !ok {
		return
	}
	defer func() { e.conclude(inc, d, true) }()
	fixed.Custom = maps.Clone(live.Meta.Custom)
	if fixed.Custom == nil {
		fixed.Custom = map[string]string{}
	}
	fixed.Custom[markerKey] = inc.key
	_, err = e.store.UpdateMetadata(ctx, d.Bucket, d.Object, Condition{GenerationMatch: live.Generation, MetagenerationMatch: live.Metageneration}, fixed)
	switch {
	case err == nil:
		d.Action, d.Restored = ActionMetadataRestored, e.now()
	case errors.Is(err, ErrPrecondition), errors.Is(err, ErrObjectNotFound):
		// Changed again meanwhile (that change has its own event), unless the change is
		// this incident's own repair whose response was lost.
		now, lerr := e.store.Attrs(ctx, d.Bucket, d.Object, 0)
		if lerr == nil && now.Generation == live.Generation && now.Meta.Custom[markerKey] == inc.key && sameProtected(now.Meta, fixed) {
			d.Action, d.Restored = ActionMetadataRestored, e.now()
			return
		}
		d.Action = ActionSkippedNewer
	default:
		d.Action = ActionFailed
		d.setErr(fmt.Errorf("putting metadata back on %s: %w", ref(d.Bucket, d.Object, live.Generation), err))
		d.Transient = d.Transient || ctx.Err() != nil
	}
}

// sameProtected reports whether a and b agree on every protected header.
func sameProtected(a, b Metadata) bool {
	return a.ContentType == b.ContentType && a.ContentEncoding == b.ContentEncoding &&
		a.CacheControl == b.CacheControl && a.ContentDisposition == b.ContentDisposition
}

// wantedMetadata is the protected metadata the live generation must carry: the rule's,
// with what it leaves open derived as a restore derives it (protectedMetadata) from the
// newest other generation whose bytes are the signed ones, so that a repair and a restore
// never disagree.
func (e *Engine) wantedMetadata(ctx context.Context, m policy.Match, d *Decision) (Metadata, error) {
	spec := m.Rule.Metadata
	want := protectedMetadata(m, Metadata{})
	if spec.ContentType != "" {
		return want, nil
	}
	exp, err := Expect(ctx, e.res, m, d.Object, time.Time{})
	if err != nil {
		d.Reason = ReasonOf(err)
		return want, err
	}
	d.expect(exp)
	v, ok, err := e.goodVersion(ctx, d.Bucket, d.Object, exp.Entry.Digest, d.Generation)
	if err != nil || !ok {
		// Nothing to derive the Content-Type from: only the rule's fields are enforced.
		want.ContentType = ""
		return want, err
	}
	return protectedMetadata(m, v.Meta), nil
}
