package engine

import (
	"context"
	"errors"
	"fmt"
)

// errStop ends a listing early when the context is done.
var errStop = errors.New("audit stopped")

// Audit checks the live generation of every object that a rule covers, and reports every
// object a rule names exactly that is not there (VerdictMissing). With act, tampered
// objects are repaired and missing ones restored, as in Handle. fn gets every decision;
// the error is for the audit as a whole (a listing failed).
func (e *Engine) Audit(ctx context.Context, act bool, fn func(*Decision)) error {
	var errs []error
	for _, r := range e.cfg.Rules {
		seen := map[string]bool{}
		for _, prefix := range r.ListPrefixes() {
			err := e.store.List(ctx, r.Bucket, prefix, func(a ObjectAttrs) error {
				if ctx.Err() != nil {
					return errStop
				}
				if seen[a.Name] {
					return nil
				}
				m, ok := e.cfg.Match(r.Bucket, a.Name)
				if !ok || m.Rule != r {
					return nil // not this rule's (or an earlier rule's) object
				}
				seen[a.Name] = true
				d := &Decision{Bucket: a.Bucket, Object: a.Name, Generation: a.Generation, Action: ActionNone}
				e.checkMatched(ctx, m, d, act)
				fn(d)
				return nil
			})
			if err != nil {
				if errors.Is(err, errStop) {
					return ctx.Err()
				}
				errs = append(errs, fmt.Errorf("listing gs://%s/%s*: %w", r.Bucket, prefix, err))
			}
		}
		for _, name := range r.ExactObjects() {
			if seen[name] || ctx.Err() != nil {
				continue
			}
			m, ok := e.cfg.Match(r.Bucket, name)
			if !ok || m.Rule != r {
				continue
			}
			d := &Decision{Bucket: r.Bucket, Object: name, Action: ActionNone}
			if _, err := e.store.Attrs(ctx, r.Bucket, name, 0); err == nil {
				continue // appeared since the listing; its own event judges it
			} else if !errors.Is(err, ErrObjectNotFound) {
				d.Verdict, d.Reason = VerdictUnverifiable, ReasonObjectUnreadable
				d.setErr(err)
				fn(d)
				continue
			}
			e.restoreMissing(ctx, m, d, 0, act)
			if d.Reason == "" && d.Verdict == VerdictMissing {
				d.Reason = ReasonMissing
			}
			fn(d)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}
