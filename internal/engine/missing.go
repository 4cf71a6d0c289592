package engine

import (
	"context"

	"github.com/tamperguard/tamperguard/internal/policy"
)

// restoreMissing puts the newest good bytes back where nothing is live, with DoesNotExist, as
// the owner of the incident; exp is what the object must hash to, deletedGen the generation
// whose deletion is the incident (0 if none is known). It reports whether people must hear
// of it: deleting bytes that were not the signed ones, with nothing good to put back, is not
// news (a quarantine, or a maintainer's clean-up); losing a good object is.
func (e *Engine) restoreMissing(ctx context.Context, m policy.Match, d *Decision, inc *incident, exp Expectation, deletedGen int64) (alert bool) {
	if e.ownRestoreLive(ctx, d, inc.key, checkedBy(exp)) || d.Transient {
		return true
	}
	src, err := e.goodSource(ctx, m, d.Bucket, d.Object, exp, 0, nil)
	switch {
	case err != nil:
		d.Action = ActionFailed
		d.setErr(err)
		d.Transient = d.Transient || ctx.Err() != nil
	case src == nil:
		d.Reason = ReasonNoGoodSource
		d.Action = ActionFailed
		if deletedGen != 0 && exp.Expected.Proven() {
			if ok, err := e.holdsSigned(ctx, d.Bucket, d.Object, deletedGen, checkedBy(exp)); err == nil && !ok {
				d.Action = ActionNone
				return false
			}
		}
	default:
		e.writeGood(ctx, m, d, inc, src, Condition{DoesNotExist: true}, src.sha256)
	}
	return true
}

// newestGeneration is the newest stored generation of an object, 0 if there is none or the
// versions cannot be listed.
func (e *Engine) newestGeneration(ctx context.Context, bucket, object string) int64 {
	if vs, err := e.store.Versions(ctx, bucket, object); err == nil && len(vs) > 0 {
		return vs[0].Generation
	}
	return 0
}
