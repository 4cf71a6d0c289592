package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tamperguard/tamperguard/internal/release"
	"github.com/tamperguard/tamperguard/internal/signing"
)

// The alert is part of the incident (an outbox): a decision that people must hear about
// carries an alertDue; whoever sends it calls Settle, which records in the incident that
// the alert went out. An incident whose owner died after the work and before the alert is
// found done and un-alerted by the next delivery or audit, which sends the alert then.

// Notifier tells people about a decision. It may be slow (Slack retries for tens of
// seconds): the delivery runtime calls it outside the work slots, never the engine.
type Notifier interface {
	Notify(ctx context.Context, d *Decision) error
}

// AlertFinder is implemented by notifiers that can tell whether an incident's alert already
// went out (a Slack bot searches its channel for messages carrying the incident's key). It
// closes the gap between "the alert was posted" and "the record says so" when an owner dies
// in between: the next owner looks before it sends again.
type AlertFinder interface {
	AlertSent(ctx context.Context, incident string, since time.Time) (bool, error)
}

// alertDue is attached to a decision that must be sent to people.
type alertDue struct {
	inc    *incident // nil for alerts that are not incidents (a refused release)
	outbox bool      // a previous owner finished the work; it may have sent the alert
	since  time.Time // when the work finished
}

// AlertDue reports whether d must be sent to people (and then settled with Settle).
func (d *Decision) AlertDue() bool { return d.alert != nil }

// Settle records the fate of d's alert: sent (err == nil) or not. An incident whose alert
// went out is complete; one whose alert failed is given up at once so that the retry (or
// the next audit) sends it. It returns an error when the record could not be written.
func (e *Engine) Settle(d *Decision, sent error) error {
	a := d.alert
	if a == nil {
		return nil
	}
	d.alert = nil
	if a.inc == nil {
		return nil
	}
	if sent != nil {
		a.inc.abandon()
		return nil
	}
	a.inc.stopHolding()
	err := a.inc.write(func(r *incidentRecord) {
		r.Alerted, r.AlertedAt, r.Lease = true, e.now(), time.Time{}
	})
	if err != nil {
		e.log.Error("the alert went out but the incident record does not say so; it may be sent again",
			"incident", a.inc.key, "error", err)
	}
	return err
}

// Alert sends d's alert through n and settles it. For an incident a previous owner may
// already have announced, it asks n first (when n can tell) instead of sending twice.
func (e *Engine) Alert(ctx context.Context, d *Decision, n Notifier) error {
	a := d.alert
	if a == nil {
		return nil
	}
	if a.outbox && a.inc != nil {
		if f, ok := n.(AlertFinder); ok {
			sent, err := f.AlertSent(ctx, a.inc.key, a.since.Add(-time.Minute))
			if err == nil && sent {
				e.log.Info("the incident's alert had gone out before its owner stopped; not sent again", "incident", a.inc.key)
				return e.Settle(d, nil)
			}
		}
	}
	var err error
	if n != nil {
		err = n.Notify(ctx, d)
	}
	if serr := e.Settle(d, err); err == nil {
		err = serr
	}
	return err
}

// outcome is what an incident's alert needs, kept in its record for whoever sends the alert
// if its owner cannot: the printed decision, its Detail (what has a JSON form), and of the
// release what the alert names. Object bytes are not kept: they are read again from the bucket.
type outcome struct {
	Decision Decision `json:"decision"`
	Detail
	ReleaseSource  string    `json:"release_source,omitempty"`
	SignerIdentity string    `json:"signer_identity,omitempty"`
	SkippedTags    []skipped `json:"skipped,omitempty"`
}

type skipped struct {
	Tag    string `json:"tag"`
	Reason string `json:"reason"`
}

func snapshot(d *Decision) *outcome {
	o := &outcome{Decision: *d, Detail: d.Detail}
	o.Decision.Detail, o.Decision.alert = Detail{}, nil
	if r := d.ReleaseInfo; r != nil {
		o.ReleaseSource, o.SignerIdentity = r.Source, r.Signer.Identity
		for _, s := range r.Skipped {
			o.SkippedTags = append(o.SkippedTags, skipped{Tag: s.Tag, Reason: fmt.Sprint(s.Reason)})
		}
	}
	return o
}

// decision rebuilds the decision an incident's alert is about.
func (o *outcome) decision() Decision {
	d := o.Decision
	d.Detail = o.Detail
	if o.ReleaseSource != "" || d.Release != "" {
		rel := &release.Release{Source: o.ReleaseSource, Tag: d.Release, Signer: signing.Signer{Identity: o.SignerIdentity}}
		for _, s := range o.SkippedTags {
			rel.Skipped = append(rel.Skipped, release.Skipped{Tag: s.Tag, Reason: errors.New(s.Reason)})
		}
		d.ReleaseInfo = rel
	}
	if d.Error != "" {
		d.Err = errors.New(d.Error)
	}
	return d
}

// resumeAlert turns a decision into the alert of an incident a previous owner finished: what
// that owner found and did, with the bytes read again for the diff.
func (e *Engine) resumeAlert(ctx context.Context, inc *incident, d *Decision) {
	if inc.rec.Outcome == nil {
		// Finished without an outcome cannot happen; say what we know rather than nothing.
		e.log.Error("incident finished without an outcome; alerting with the present judgement", "incident", inc.key)
	} else {
		*d = inc.rec.Outcome.decision()
		if d.Generation > 0 && d.Verdict == VerdictTampered && d.MetadataChanges == nil {
			if a, err := e.store.Attrs(ctx, d.Bucket, d.Object, d.Generation); err == nil {
				d.BadContent = e.sample(ctx, d.Bucket, d.Object, a)
			}
		}
		if g := d.RestoredGeneration; g > 0 {
			if a, err := e.store.Attrs(ctx, d.Bucket, d.Object, g); err == nil {
				d.GoodContent = e.sample(ctx, d.Bucket, d.Object, a)
			}
		}
	}
	d.Incident = inc.key
	d.alert = &alertDue{inc: inc, outbox: true, since: inc.rec.Updated}
	inc.hold(context.Background())
}
