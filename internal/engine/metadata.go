package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/tamperguard/tamperguard/internal/policy"
)

// judgeMetadata compares the live generation's protected metadata with what it must carry
// (wantedMetadata). It returns the metadata with the differences put right and the
// differences: field → {found, wanted}.
func (e *Engine) judgeMetadata(ctx context.Context, m policy.Match, d *Decision, live ObjectAttrs) (Metadata, map[string][2]string, error) {
	want, err := e.wantedMetadata(ctx, m, d)
	if err != nil {
		return Metadata{}, nil, err
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
	return fixed, changes, nil
}

// repairMetadata puts fixed back on the live generation, as the owner of the incident,
// conditionally on its generation and metageneration, marked as this incident's.
func (e *Engine) repairMetadata(ctx context.Context, d *Decision, inc *incident, live ObjectAttrs, fixed Metadata) {
	fixed.Custom = maps.Clone(live.Meta.Custom)
	if fixed.Custom == nil {
		fixed.Custom = map[string]string{}
	}
	fixed.Custom[markerKey] = inc.key
	_, err := e.store.UpdateMetadata(ctx, d.Bucket, d.Object, Condition{GenerationMatch: live.Generation, MetagenerationMatch: live.Metageneration}, fixed)
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
	src, err := e.goodVersion(ctx, d.Bucket, d.Object, exp, d.Generation, nil)
	if err != nil || src == nil {
		// Nothing to derive the Content-Type from: only the rule's fields are enforced.
		want.ContentType = ""
		return want, err
	}
	return protectedMetadata(m, src.meta), nil
}
