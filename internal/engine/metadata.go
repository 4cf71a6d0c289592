package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tamperguard/tamperguard/internal/config"
)

// handleMetadata answers a metadata change on the live generation: protected metadata
// that differs from the rule's (or from the last good generation's) is put back.
func (e *Engine) handleMetadata(ctx context.Context, m config.Match, ev Event, d *Decision) {
	e.checkMetadata(ctx, m, d, ev.Generation, true)
}

// checkMetadata compares the live generation's protected metadata with what it must be.
func (e *Engine) checkMetadata(ctx context.Context, m config.Match, d *Decision, gen int64, act bool) {
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
	inc, ok := e.own(ctx, d, incidentMetadata(live.Metageneration))
	if !ok {
		return
	}
	fixed.Custom = live.Meta.Custom
	_, err = e.store.UpdateMetadata(ctx, d.Bucket, d.Object, Condition{GenerationMatch: live.Generation, MetagenerationMatch: live.Metageneration}, fixed)
	switch {
	case err == nil:
		d.Action, d.Restored = ActionMetadataRestored, e.now()
	case errors.Is(err, ErrPrecondition), errors.Is(err, ErrObjectNotFound):
		d.Action = ActionSkippedNewer // changed again meanwhile: that change has its own event
	default:
		d.Action = ActionFailed
		d.setErr(fmt.Errorf("putting metadata back on %s: %w", GSPath(d.Bucket, d.Object, live.Generation), err))
		if d.Transient {
			e.release(ctx, inc)
			return
		}
	}
	e.finish(ctx, inc, d)
}

// wantedMetadata is the rule's protected metadata, with fields it leaves empty taken from
// the newest other generation whose bytes are the signed ones.
func (e *Engine) wantedMetadata(ctx context.Context, m config.Match, d *Decision) (Metadata, error) {
	spec := m.Rule.Metadata
	want := Metadata{ContentType: spec.ContentType, ContentEncoding: spec.ContentEncoding, CacheControl: spec.CacheControl, ContentDisposition: spec.ContentDisposition}
	if want.ContentType != "" && want.ContentEncoding != "" && want.CacheControl != "" && want.ContentDisposition != "" {
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
		return want, err
	}
	fill := func(dst *string, src string) {
		if *dst == "" {
			*dst = src
		}
	}
	fill(&want.ContentType, v.Meta.ContentType)
	fill(&want.ContentEncoding, v.Meta.ContentEncoding)
	fill(&want.ContentDisposition, v.Meta.ContentDisposition)
	fill(&want.CacheControl, v.Meta.CacheControl)
	return want, nil
}
