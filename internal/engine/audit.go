package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/policy"
)

// errStop ends a listing early when the context is done.
var errStop = errors.New("audit stopped")

// ErrAuditCut: the audit stopped with objects left (its deadline was near, or it took as many
// as it was allowed); where it stopped is recorded, and the next audit resumes there. Worth a
// retry.
var ErrAuditCut = errors.New("audit stopped before the end; the next run resumes where it stopped")

// DefaultAuditConcurrency is how many objects an audit judges at once. Judging an object that
// the memo does not vouch for is one read (tens of milliseconds of waiting on Cloud Storage,
// microseconds of hashing for a script), so one CPU keeps 32 reads in flight busy; each holds
// at most a 256 KiB copy buffer and, for objects up to 1 MiB, their bytes (32 MiB at worst),
// which a 512 MiB function instance affords.
const DefaultAuditConcurrency = 32

// checkpointEvery bounds the work an audit cut short without its final checkpoint (a crash)
// does again: the cursor and memo are written every so many objects or so much time.
const (
	checkpointEvery  = 5000
	checkpointPeriod = 30 * time.Second
)

// AuditOptions configure an audit.
type AuditOptions struct {
	// Act repairs tampered objects and restores missing ones, as Handle does.
	Act bool
	// Concurrency is how many objects are judged at once (default DefaultAuditConcurrency).
	Concurrency int
	// Prefixes limit the audit to object names under them (shards of a big bucket); none:
	// every object a rule covers.
	Prefixes []string
	// NoMemo reads and hashes every object, and neither reads nor writes the memo and the
	// cursor (every run is a whole pass).
	NoMemo bool
	// FromStart begins every pass again from the first name instead of where the last run
	// stopped (the cursor is still written).
	FromStart bool
	// ReportOK hands every decision to fn; by default objects found ok are only counted in
	// the report (a bucket of 100,000 objects is not 100,000 lines).
	ReportOK bool
	// Limit, if positive, is how many objects a rule covers this run takes at most; the next
	// run resumes after them.
	Limit int
	// Reserve is how long before the context's deadline the audit stops taking objects, to
	// finish those in flight and record where it stopped (default: a tenth of the time
	// left, between 2 and 30 seconds).
	Reserve time.Duration
}

// AuditReport says what an audit did.
type AuditReport struct {
	Listed   int // objects listed that a rule covers
	Reused   int // of those, found ok by the memo without reading them
	Read     int // read and hashed
	Verdicts map[Verdict]int
	// OnFloor counts the objects found ok against the last release that verified because
	// no newer one was trusted; Floor is why (see Decision.Floor), from one of them.
	OnFloor int
	Floor   string
	Scopes  []ScopeProgress
	// Newest is, per bucket, when the newest generation judged (read or vouched for by the
	// memo) was written: whether Data Access audit logs are on is judged from it.
	Newest map[string]time.Time
	// Complete: every scope's pass reached its last name (in this run, or by another run).
	Complete bool
}

// ScopeProgress is how far an audit got in one scope: a rule's objects under one prefix.
type ScopeProgress struct {
	Bucket string
	Prefix string
	Pass   int64
	// From is the name this run resumed after ("" from the first name).
	From string
	// After is the last name done, with every name before it: where the next run resumes
	// when the pass is not complete.
	After    string
	Complete bool
	// ByOther: another audit completed this pass while this run was at it.
	ByOther bool
}

// Audit checks the live generation of every object that a rule covers, and reports every
// object a rule names exactly that is not there (VerdictMissing). With act, tampered
// objects are repaired and missing ones restored, as in Handle. fn gets every decision; the
// error is for the audit as a whole (a listing failed). It is AuditWith with the default
// options and every decision reported.
func (e *Engine) Audit(ctx context.Context, act bool, fn func(*Decision)) error {
	_, err := e.AuditWith(ctx, AuditOptions{Act: act, ReportOK: true}, fn)
	return err
}

// AuditWith runs an audit: every object a rule covers (under opts.Prefixes, if any) is
// judged by a pool of workers from the listing's attributes (no second metadata read), the
// memo skips generations verified before against the same signed release, and the cursor
// lets a run that its deadline cuts short resume where it stopped (see memo.go). fn gets the
// decisions (only those that are not ok, unless opts.ReportOK), one at a time.
func (e *Engine) AuditWith(ctx context.Context, opts AuditOptions, fn func(*Decision)) (AuditReport, error) {
	a := &auditRun{e: e, opts: opts, fn: fn, rep: AuditReport{Verdicts: map[Verdict]int{}, Complete: true}}
	if a.opts.Concurrency <= 0 {
		a.opts.Concurrency = DefaultAuditConcurrency
	}
	a.stopAt = stopTime(ctx, opts.Reserve, e.now())
	if !opts.NoMemo {
		if e.state != "" {
			a.blobs = &bucketBlobs{store: e.store, bucket: e.state}
		} else {
			a.blobs = &e.auditMemory
		}
	}
	var errs []error
	if opts.Act {
		if err := e.resumeIncidents(ctx, a.emitAll); err != nil {
			errs = append(errs, err)
		}
	}
	cut := false
rules:
	for _, r := range e.pol.Rules {
		seen := map[string]bool{}
		whole := true
		for _, prefix := range scopePrefixes(r.ListPrefixes(), opts.Prefixes) {
			sp, err := a.scope(ctx, r, prefix, seen)
			a.rep.Scopes = append(a.rep.Scopes, sp)
			if err != nil {
				errs = append(errs, err)
			}
			if !sp.Complete {
				a.rep.Complete = false
			}
			if !sp.Complete || sp.ByOther {
				whole = false // the names a rule must hold are checked when its pass ends
			}
			if errors.Is(err, ErrAuditCut) || ctx.Err() != nil {
				cut = true
				break rules
			}
		}
		if whole {
			a.missing(ctx, r, seen)
		}
	}
	if cut {
		a.rep.Complete = false
	}
	if err := ctx.Err(); err != nil {
		return a.rep, err
	}
	return a.rep, errors.Join(errs...)
}

// stopTime is when an audit stops taking objects: reserve before ctx's deadline (zero time
// when there is none).
func stopTime(ctx context.Context, reserve time.Duration, now time.Time) time.Time {
	dl, ok := ctx.Deadline()
	if !ok {
		return time.Time{}
	}
	if reserve <= 0 {
		reserve = min(max(dl.Sub(now)/10, 2*time.Second), 30*time.Second)
	}
	return dl.Add(-reserve)
}

// scopePrefixes are the listing prefixes of a rule within the shards asked for.
func scopePrefixes(rule, shards []string) []string {
	if len(shards) == 0 {
		return rule
	}
	var out []string
	for _, l := range rule {
		for _, p := range shards {
			switch {
			case strings.HasPrefix(p, l):
				out = append(out, p)
			case strings.HasPrefix(l, p):
				out = append(out, l)
			}
		}
	}
	sort.Strings(out)
	kept := out[:0]
	for _, p := range out {
		if len(kept) > 0 && strings.HasPrefix(p, kept[len(kept)-1]) {
			continue
		}
		kept = append(kept, p)
	}
	return kept
}

// ruleKey identifies a rule for its scopes' records: what it watches and what vouches.
func ruleKey(r *policy.Rule) string {
	var b strings.Builder
	b.WriteString(r.Source.Key())
	b.WriteString("\x00")
	b.WriteString(r.Tag)
	for i := range r.Patterns {
		b.WriteString("\x00")
		b.WriteString(r.Patterns[i].String())
	}
	return b.String()
}

// auditRun is one audit.
type auditRun struct {
	e      *Engine
	opts   AuditOptions
	fn     func(*Decision)
	stopAt time.Time
	blobs  blobStore // nil: no memo, no cursor

	fnMu sync.Mutex
	rep  AuditReport
}

// emit hands a decision to fn (ok ones only with ReportOK) and counts it.
func (a *auditRun) emit(d *Decision) {
	a.fnMu.Lock()
	defer a.fnMu.Unlock()
	a.rep.Verdicts[d.Verdict]++
	if !d.Created.IsZero() && d.Created.After(a.rep.Newest[d.Bucket]) {
		if a.rep.Newest == nil {
			a.rep.Newest = map[string]time.Time{}
		}
		a.rep.Newest[d.Bucket] = d.Created
	}
	if d.Verdict == VerdictOK && d.Floor != "" {
		a.rep.OnFloor++
		a.rep.Floor = d.Floor
	}
	if d.Verdict != VerdictOK || a.opts.ReportOK {
		a.fn(d)
	}
}

// emitAll hands every decision to fn (finished incidents are always news).
func (a *auditRun) emitAll(d *Decision) {
	a.fnMu.Lock()
	defer a.fnMu.Unlock()
	a.rep.Verdicts[d.Verdict]++
	a.fn(d)
}

// taken is how many listed objects this run took.
func (a *auditRun) taken() int {
	a.fnMu.Lock()
	defer a.fnMu.Unlock()
	return a.rep.Listed
}

func (a *auditRun) count(f func(r *AuditReport)) {
	a.fnMu.Lock()
	defer a.fnMu.Unlock()
	f(&a.rep)
}

// stopping reports whether the run must take no more objects.
func (a *auditRun) stopping(ctx context.Context) bool {
	return ctx.Err() != nil || (!a.stopAt.IsZero() && !a.e.now().Before(a.stopAt))
}

// auditItem is one listed object handed to a worker.
type auditItem struct {
	seq int
	a   ObjectAttrs
	m   policy.Match
}

// progress tracks which listed names are done, in listing (name) order, so that the cursor
// only ever claims names done with every one before them.
type progress struct {
	next    int            // the seq of the next item listed
	through int            // every seq below it is done
	last    string         // the name of seq through-1
	names   map[int]string // names of items not yet passed by through
	done    map[int]bool
}

func (p *progress) add(name string) int {
	seq := p.next
	p.next++
	p.names[seq] = name
	return seq
}

func (p *progress) finish(seq int) {
	p.done[seq] = true
	for p.done[p.through] {
		p.last = p.names[p.through]
		delete(p.done, p.through)
		delete(p.names, p.through)
		p.through++
	}
}

// scope audits one rule's objects under one prefix.
func (a *auditRun) scope(ctx context.Context, r *policy.Rule, prefix string, seen map[string]bool) (ScopeProgress, error) {
	e := a.e
	sp := ScopeProgress{Bucket: r.Bucket, Prefix: prefix, Pass: 1}
	var memo *scopeMemo
	if a.blobs != nil {
		m, err := openScope(ctx, a.blobs, r.Bucket, prefix, ruleKey(r), e.now)
		if err != nil {
			// Without its records the scope is audited whole, every object read.
			e.log.Warn("audit memo and cursor unreadable; auditing the scope whole", "bucket", r.Bucket, "prefix", prefix, "error", err)
		} else {
			memo = m
			sp.Pass = memo.cursor.Pass
			if !a.opts.FromStart {
				sp.From = memo.cursor.After
			}
		}
	}
	var mu sync.Mutex // guards memo and prog
	prog := &progress{names: map[int]string{}, done: map[int]bool{}}
	work := make(chan auditItem)
	var wg sync.WaitGroup
	for range a.opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				a.judge(ctx, it, memo, &mu, prog)
			}
		}()
	}

	lastCheckpoint, sinceCheckpoint := e.now(), 0
	stale := false
	cut := false
	listErr := e.store.ListFrom(ctx, r.Bucket, prefix, sp.From, func(o ObjectAttrs) error {
		if sp.From != "" && o.Name <= sp.From {
			return nil // done in an earlier run
		}
		if a.stopping(ctx) {
			cut = true
			return errStop
		}
		m, ok := e.pol.Match(r.Bucket, o.Name)
		if ok && m.Rule == r && a.opts.Limit > 0 && a.taken() >= a.opts.Limit {
			cut = true
			return errStop
		}
		mu.Lock()
		seq := prog.add(o.Name)
		if memo != nil {
			memo.walkedPast(o.Name, false)
		}
		if !ok || m.Rule != r {
			if memo != nil {
				memo.see(ctx, o.Name)
			}
			prog.finish(seq)
			mu.Unlock()
			return nil // not this rule's (or an earlier rule's) object
		}
		seen[o.Name] = true
		var entry memoEntry
		var rel string
		var found bool
		if memo != nil {
			entry, rel, found = memo.lookup(ctx, o.Name)
		}
		mu.Unlock()
		a.count(func(r *AuditReport) { r.Listed++ })

		if found && a.reuse(ctx, m, o, entry, rel) {
			mu.Lock()
			prog.finish(seq)
			mu.Unlock()
		} else {
			select {
			case work <- auditItem{seq: seq, a: o, m: m}:
			case <-ctx.Done():
				cut = true
				return errStop
			}
		}

		sinceCheckpoint++
		if memo != nil && (sinceCheckpoint >= checkpointEvery || e.now().Sub(lastCheckpoint) >= checkpointPeriod) {
			mu.Lock()
			through := prog.last
			if err := memo.flush(ctx, through, false); err != nil {
				e.log.Warn("writing the audit memo failed; its objects are read again next time", "error", err)
			}
			s, err := memo.checkpoint(ctx, through, false)
			mu.Unlock()
			if err != nil {
				e.log.Warn("writing the audit cursor failed", "bucket", r.Bucket, "prefix", prefix, "error", err)
			}
			lastCheckpoint, sinceCheckpoint = e.now(), 0
			if s {
				stale = true
				return errStop // another audit completed this pass
			}
		}
		return nil
	})
	close(work)
	wg.Wait()

	if errors.Is(listErr, errStop) {
		listErr = nil
	}
	complete := listErr == nil && !cut && !stale && ctx.Err() == nil
	sp.After = prog.last
	if sp.After == "" {
		sp.After = sp.From
	}
	if memo != nil {
		// The run is over for this scope: record what it learnt and where it stands, on a
		// context of its own (the audit's may be the deadline that just passed).
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
		if complete {
			memo.walkedPast("", true)
		}
		if err := memo.flush(wctx, prog.last, true); err != nil {
			e.log.Warn("writing the audit memo failed; its objects are read again next time", "error", err)
		}
		if !stale {
			s, err := memo.checkpoint(wctx, sp.After, complete)
			if err != nil {
				e.log.Warn("writing the audit cursor failed", "bucket", r.Bucket, "prefix", prefix, "error", err)
			}
			stale = s
		}
		cancel()
	}
	switch {
	case stale:
		sp.Complete, sp.ByOther = true, true
	case complete:
		sp.Complete = true
	}
	if listErr != nil {
		return sp, fmt.Errorf("listing %s*: %w", ref(r.Bucket, prefix, 0), listErr)
	}
	if cut && ctx.Err() == nil {
		return sp, fmt.Errorf("%w: %s* done through %s (pass %d)", ErrAuditCut, ref(r.Bucket, prefix, 0), strconv.Quote(sp.After), sp.Pass)
	}
	return sp, nil
}

// reuse decides an object from its memo entry, without reading it, if the entry vouches for
// the listed generation under the release resolved now; it reports whether it did.
func (a *auditRun) reuse(ctx context.Context, m policy.Match, o ObjectAttrs, entry memoEntry, rel string) bool {
	e := a.e
	sum, ok := entry.sum()
	if !ok {
		return false
	}
	if entry.Gen != o.Generation {
		// Another generation is live now; the remembered one may be the good bytes a
		// restore looks for among the older generations.
		e.hashes.remember(o.Bucket, o.Name, entry.Gen, sum)
		return false
	}
	exp, err := Expect(ctx, e.res, m, o.Name, time.Time{})
	if err != nil || !entry.valid(o, rel, exp, e.now()) {
		return false
	}
	e.hashes.remember(o.Bucket, o.Name, o.Generation, sum)
	d := &Decision{Bucket: o.Bucket, Object: o.Name, Generation: o.Generation, Verdict: VerdictOK, Action: ActionNone,
		Size: o.Size, ActualSHA256: entry.Digest}
	d.Created = o.Created
	d.expect(exp)
	a.count(func(r *AuditReport) { r.Reused++ })
	a.emit(d)
	return true
}

// judge reads and judges one listed object, records what the memo learns, and marks it done.
func (a *auditRun) judge(ctx context.Context, it auditItem, memo *scopeMemo, mu *sync.Mutex, prog *progress) {
	e := a.e
	j := e.judgeAttrs(ctx, it.m, it.a, nil, e.now())
	read := j.checked.SHA256 != checksum.Digest{}
	d := &Decision{Bucket: it.a.Bucket, Object: it.a.Name, Generation: it.a.Generation, Action: ActionNone}
	e.decideJudged(ctx, it.m, d, j, a.opts.Act)
	mu.Lock()
	if memo != nil {
		switch {
		case j.verdict == VerdictOK && releaseID(j.exp.Release) != "" && j.exp.Entry.Digest == j.checked.SHA256:
			// Only a release that lists the SHA-256 the bytes hashed to is remembered as
			// vouching for them (bytes vouched for by signatures over them are read each time).
			attrs := it.a
			attrs.Size = j.attrs.Size
			memo.record(ctx, attrs, j.checked.SHA256, releaseID(j.exp.Release), true)
		case j.verdict == VerdictTampered && read:
			memo.record(ctx, it.a, j.checked.SHA256, "", false)
		}
	}
	prog.finish(it.seq)
	mu.Unlock()
	if read {
		a.count(func(r *AuditReport) { r.Read++ })
	}
	a.emit(d)
}

// missing reports the objects a rule names exactly (within the audit's prefixes) that its
// listing did not show.
func (a *auditRun) missing(ctx context.Context, r *policy.Rule, seen map[string]bool) {
	e := a.e
	for _, name := range r.ExactObjects() {
		if seen[name] || ctx.Err() != nil || !underAny(name, a.opts.Prefixes) {
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
			a.emit(d)
			continue
		}
		e.decideListedMissing(ctx, m, d, a.opts.Act)
		a.emit(d)
	}
}

func underAny(name string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
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
