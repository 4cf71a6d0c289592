package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/tamperguard/tamperguard/internal/delivery"
	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/gsref"
)

// newService loads the configuration and connects to Cloud Storage (or the emulator named
// by STORAGE_EMULATOR_HOST, as the storage SDK defines it). With act, alerts go to Slack
// (SLACK_BOT_TOKEN + SLACK_CHANNEL, or SLACK_WEBHOOK_URL) or, without them, to the log on
// stderr.
func newService(ctx context.Context, e env, flagFile string, act bool) (*delivery.Service, error) {
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return delivery.Build(ctx, delivery.Env{Getenv: e.getenv, ConfigFile: flagFile, StorageClient: e.storageClient,
		Logger: log, Alerting: act})
}

// outcome folds decisions into the exit status: tampered or missing wins (1), then
// unverifiable or failed (2), else 0.
type outcome struct {
	tampered, unverifiable bool
	counts                 map[string]int
}

func (o *outcome) add(d *engine.Decision) {
	if o.counts == nil {
		o.counts = map[string]int{}
	}
	o.counts[string(d.Verdict)]++
	switch {
	case d.Verdict == engine.VerdictTampered || d.Verdict == engine.VerdictMissing:
		o.tampered = true
	case d.Verdict == engine.VerdictUnverifiable || d.Action == engine.ActionFailed:
		o.unverifiable = true
	}
	if d.Action == engine.ActionFailed {
		o.unverifiable = true
	}
}

func (o *outcome) err() error {
	switch {
	case o.tampered:
		return errTampered
	case o.unverifiable:
		return errUnverifiable
	}
	return nil
}

// errUnverifiable makes a command exit 2 without another message: the JSON lines said it.
var errUnverifiable = errors.New("unverifiable")

func printDecision(w io.Writer, d *engine.Decision) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func runCheck(ctx context.Context, e env, args []string) error {
	fs := flagSet(e, "check", "check [--config FILE] [--restore] gs://BUCKET/OBJECT[#GENERATION]...\n\n"+
		"Judges the live generation (or the one given) of each object against its signed release.\n"+
		"With --restore, a tampered object is repaired as its rule says (restore, quarantine or alert).")
	configFile := configFlag(fs)
	restore := fs.Bool("restore", false, "repair tampered or missing objects (default: only report)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fs.Usage()
		return errors.New("need at least one gs://BUCKET/OBJECT")
	}
	var targets []gsref.ObjectRef
	for _, p := range pos {
		t, err := gsref.Parse(p)
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	flagFile := configFile()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	svc, err := newService(ctx, e, flagFile, *restore)
	if err != nil {
		return err
	}
	defer svc.Close()
	eng := svc.Engine()
	var out outcome
	for _, t := range targets {
		d := eng.Check(ctx, t.Bucket, t.Object, t.Generation, *restore)
		if d.Verdict == engine.VerdictIgnored && d.Reason == engine.ReasonNoRule {
			t.Generation = 0
			d.Verdict, d.Error = engine.VerdictUnverifiable, fmt.Sprintf("no rule in %s covers %s", svc.Policy().Origin, t)
		}
		out.add(&d)
		if err := printDecision(e.stdout, &d); err != nil {
			return err
		}
		explainDecision(e.stderr, &d)
		if err := svc.Alerts().Wait(ctx, &d); err != nil {
			fmt.Fprintf(e.stderr, "ALERT NOT DELIVERED: %v\n", err)
			out.unverifiable = true
		}
	}
	return out.err()
}

// explainDecision says on stderr, for a person, what a non-ok decision means.
func explainDecision(w io.Writer, d *engine.Decision) {
	// The object name comes from the bucket: it is printed quoted if it holds bytes that
	// could drive a terminal.
	where := d.Ref()
	switch d.Verdict {
	case engine.VerdictOK, engine.VerdictIgnored:
		return
	case engine.VerdictTampered:
		fmt.Fprintf(w, "TAMPERED: %s (sha256 %s) is not what release %s signed (%s); action: %s", where, d.ActualSHA256, d.Release, d.ExpectedSHA256, d.Action)
	case engine.VerdictMissing:
		fmt.Fprintf(w, "MISSING: %s is not in the bucket; action: %s", where, d.Action)
	default:
		fmt.Fprintf(w, "UNVERIFIABLE: %s (%s)", where, d.Reason)
	}
	if d.RestoredGeneration != 0 {
		fmt.Fprintf(w, ", restored as generation %d", d.RestoredGeneration)
	}
	if d.Evidence != "" {
		fmt.Fprintf(w, ", evidence kept at %s", d.Evidence)
	}
	if d.Error != "" {
		fmt.Fprintf(w, ": %s", d.Error)
	}
	fmt.Fprintln(w)
}

func runAudit(ctx context.Context, e env, args []string) error {
	fs := flagSet(e, "audit", "audit [--config FILE] [--restore] [--prefix P]... [--concurrency N] [--quiet]\n\n"+
		"Judges every object that a rule covers, and reports objects that rules name but that are missing.\n"+
		"With a state bucket, generations verified before against the same signed release are not read\n"+
		"again (the memo), and a run cut short resumes where it stopped (the cursor).")
	configFile := configFlag(fs)
	restore := fs.Bool("restore", false, "repair tampered or missing objects (default: only report)")
	timeout := fs.Duration("timeout", time.Hour, "give up after this long (the audit stops a little before, records where, and the next run resumes there)")
	concurrency := fs.Int("concurrency", engine.DefaultAuditConcurrency, "objects judged at once")
	var prefixes prefixList
	fs.Var(&prefixes, "prefix", "audit only object names under `P` (repeatable: shards of a big bucket)")
	noMemo := fs.Bool("no-memo", false, "read and hash every object; neither use nor write the memo and the cursor")
	fromStart := fs.Bool("from-start", false, "begin the pass at the first name instead of where the last run stopped")
	limit := fs.Int("limit", 0, "judge at most `N` objects in this run; the next run resumes after them (0: no limit)")
	quiet := fs.Bool("quiet", false, "print only objects that are not ok (ok ones are counted in the summary)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		fs.Usage()
		return fmt.Errorf("audit takes no arguments (got %q)", pos[0])
	}
	if *concurrency < 1 {
		return fmt.Errorf("--concurrency %d: must be at least 1", *concurrency)
	}
	if *limit < 0 {
		return fmt.Errorf("--limit %d: must not be negative", *limit)
	}
	flagFile := configFile()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	svc, err := newService(ctx, e, flagFile, *restore)
	if err != nil {
		return err
	}
	defer svc.Close()
	var out outcome
	var printErr error
	var alerts []<-chan error
	n := 0
	rep, err := svc.Engine().AuditWith(ctx, engine.AuditOptions{Act: *restore, Concurrency: *concurrency, Prefixes: prefixes,
		NoMemo: *noMemo, FromStart: *fromStart, Limit: *limit, ReportOK: !*quiet}, func(d *engine.Decision) {
		n++
		out.add(d)
		if e.terminal {
			fmt.Fprint(e.stderr, "\r\033[K")
		}
		if err := printDecision(e.stdout, d); err != nil && printErr == nil {
			printErr = err
		}
		explainDecision(e.stderr, d)
		alerts = append(alerts, svc.Alerts().Send(d))
		if e.terminal {
			fmt.Fprintf(e.stderr, "audited %d objects: %s", n, summary(out.counts))
		}
	})
	for _, c := range alerts {
		select {
		case aerr := <-c:
			if aerr != nil {
				fmt.Fprintf(e.stderr, "ALERT NOT DELIVERED: %v\n", aerr)
				out.unverifiable = true
			}
		case <-ctx.Done():
			out.unverifiable = true
		}
	}
	if e.terminal {
		fmt.Fprint(e.stderr, "\r\033[K")
	}
	counts := map[string]int{}
	total := 0
	for v, c := range rep.Verdicts {
		counts[string(v)] += c
		total += c
	}
	fmt.Fprintf(e.stderr, "audited %d objects: %s (%d listed: %d ok by the memo, %d read)\n", total, summary(counts), rep.Listed, rep.Reused, rep.Read)
	if rep.OnFloor > 0 && *quiet {
		fmt.Fprintf(e.stderr, "%d of the ok objects were judged against the last release that verified: %s\n", rep.OnFloor, rep.Floor)
	}
	for _, sp := range rep.Scopes {
		if !sp.Complete {
			fmt.Fprintf(e.stderr, "stopped in %s* (pass %d) after %q; the next audit resumes there\n",
				gsref.ObjectRef{Bucket: sp.Bucket, Object: sp.Prefix}, sp.Pass, sp.After)
		}
	}
	if err != nil {
		return err
	}
	if printErr != nil {
		return printErr
	}
	return out.err()
}

// prefixList is a repeatable --prefix.
type prefixList []string

func (p *prefixList) String() string { return strings.Join(*p, ",") }

func (p *prefixList) Set(v string) error {
	if err := gsref.CheckObject(v); err != nil {
		return fmt.Errorf("prefix %q: %w", v, err)
	}
	*p = append(*p, v)
	return nil
}

func summary(counts map[string]int) string {
	var parts []string
	for _, v := range []engine.Verdict{engine.VerdictOK, engine.VerdictTampered, engine.VerdictMissing, engine.VerdictUnverifiable} {
		if c := counts[string(v)]; c > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c, v))
		}
	}
	if len(parts) == 0 {
		return "nothing to check"
	}
	return strings.Join(parts, ", ")
}
