package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// errStop ends a listing early when the context is done.
var errStop = errors.New("audit stopped")

// Audit checks the live generation of every object that a rule covers, and reports every
// object a rule names exactly that is not there (VerdictMissing). With act, tampered
// objects are repaired and missing ones restored, as in Handle. fn gets every decision;
// the error is for the audit as a whole (a listing failed).
func (e *Engine) Audit(ctx context.Context, act bool, fn func(*Decision)) error {
	var errs []error
	if act {
		if err := e.resumeIncidents(ctx, fn); err != nil {
			errs = append(errs, err)
		}
	}
	for _, r := range e.pol.Rules {
		seen := map[string]bool{}
		for _, prefix := range r.ListPrefixes() {
			err := e.store.List(ctx, r.Bucket, prefix, func(a ObjectAttrs) error {
				if ctx.Err() != nil {
					return errStop
				}
				if seen[a.Name] {
					return nil
				}
				m, ok := e.pol.Match(r.Bucket, a.Name)
				if !ok || m.Rule != r {
					return nil // not this rule's (or an earlier rule's) object
				}
				seen[a.Name] = true
				d := &Decision{Bucket: a.Bucket, Object: a.Name, Generation: a.Generation, Action: ActionNone}
				e.decideGeneration(ctx, m, d, act)
				fn(d)
				return nil
			})
			if err != nil {
				if errors.Is(err, errStop) {
					return ctx.Err()
				}
				errs = append(errs, fmt.Errorf("listing %s*: %w", ref(r.Bucket, prefix, 0), err))
			}
		}
		for _, name := range r.ExactObjects() {
			if seen[name] || ctx.Err() != nil {
				continue
			}
			m, ok := e.pol.Match(r.Bucket, name)
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
			e.decideListedMissing(ctx, m, d, act)
			fn(d)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// resumeIncidents finishes incidents whose owner stopped and whose event is not coming back
// (dead-lettered, or older than the max event age): each is handled as a redelivery of its
// event would be, so that its work is done and its alert goes out.
func (e *Engine) resumeIncidents(ctx context.Context, fn func(*Decision)) error {
	err := e.records.pending(ctx, func(rec incidentRecord) error {
		if ctx.Err() != nil {
			return errStop
		}
		if e.now().Before(rec.Lease) {
			return nil // its owner is at work
		}
		ev, ok := eventOfIncident(rec.Key)
		if !ok {
			e.log.Error("incident record with an unreadable key left alone", "incident", rec.Key)
			return nil
		}
		d := e.Handle(ctx, ev)
		if d.Incident != rec.Key {
			e.closeIncident(ctx, rec.Key, &d)
		}
		fn(&d)
		return nil
	})
	if errors.Is(err, errStop) {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("listing pending incidents: %w", err)
	}
	return nil
}

// closeIncident settles an incident that its event no longer leads to (its generation was
// pruned or is no longer the live one): a finished one gets its alert; an unfinished one is
// closed, since the audit judges the object as it is now.
func (e *Engine) closeIncident(ctx context.Context, key string, d *Decision) {
	inc, res, err := e.claim(ctx, key)
	switch {
	case err != nil:
		e.log.Warn("closing a stale incident failed; the next audit tries again", "incident", key, "error", err)
	case res == claimOutbox:
		e.resumeAlert(ctx, inc, d)
	case res == claimOwned:
		e.log.Error("closing an incident whose owner stopped and whose generation is gone; the audit judges the object as it is now",
			"incident", key, "restored_generation", inc.rec.Restored)
		closed := *d
		closed.Incident = key
		if err := inc.finish(&closed, false); err != nil {
			e.log.Warn("closing a stale incident failed; the next audit tries again", "incident", key, "error", err)
		}
	}
}

// eventOfIncident is the event an incident key stands for: a finalize of the generation,
// its deletion (".gone"), or a metadata change (".mN").
func eventOfIncident(key string) (Event, bool) {
	b, rest, ok := strings.Cut(key, "/")
	i := strings.LastIndexByte(rest, '#')
	if !ok || i < 0 {
		return Event{}, false
	}
	ev := Event{ID: "incident:" + key, Bucket: b, Object: rest[:i], Kind: KindFinalize}
	genPart := rest[i+1:]
	switch {
	case strings.HasSuffix(genPart, incidentGone):
		genPart, ev.Kind = strings.TrimSuffix(genPart, incidentGone), KindArchive
	case strings.Contains(genPart, ".m"):
		var mg string
		genPart, mg, _ = strings.Cut(genPart, ".m")
		n, err := strconv.ParseInt(mg, 10, 64)
		if err != nil {
			return Event{}, false
		}
		ev.Kind, ev.Metageneration = KindMetadata, n
	}
	g, err := strconv.ParseInt(genPart, 10, 64)
	if err != nil || g < 0 {
		return Event{}, false
	}
	ev.Generation = g
	return ev, true
}
