package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tamperguard/tamperguard/internal/auditlog"
	"github.com/tamperguard/tamperguard/internal/delivery"
	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/gsref"
	"github.com/tamperguard/tamperguard/internal/posture"
)

// newService loads the configuration and connects to Cloud Storage (or the emulator named
// by STORAGE_EMULATOR_HOST, as the storage SDK defines it). With act, alerts go to Slack
// (SLACK_BOT_TOKEN + SLACK_CHANNEL, or SLACK_WEBHOOK_URL) or, without them, to the log on
// stderr.
func newService(ctx context.Context, e env, flagFile string, act bool) (*delivery.Service, error) {
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return delivery.Build(ctx, delivery.Env{Getenv: e.getenv, ConfigFile: flagFile, StorageClient: e.storageClient,
		Logger: log, Alerting: act, TextAlerts: e.stderr})
}

// outcome folds decisions into the exit status: tampered or missing wins (1), then
// unverifiable or failed (2), else 0.
type outcome struct {
	tampered, unverifiable bool
	// postureFailing: a posture check of the watched bucket fails (exit 1, as tampered).
	postureFailing bool
	counts         map[string]int
	// newest is the newest creation time read per bucket, to judge whether Data Access
	// audit logs are on.
	newest map[string]time.Time
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
	if !d.Created.IsZero() {
		if o.newest == nil {
			o.newest = map[string]time.Time{}
		}
		if d.Created.After(o.newest[d.Bucket]) {
			o.newest[d.Bucket] = d.Created
		}
	}
}

func (o *outcome) err() error {
	switch {
	case o.tampered, o.postureFailing:
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
	fs := flagSet(e, "check", "check [--config FILE] [--restore] [--timeout D] gs://BUCKET/OBJECT[#GENERATION]...\n\n"+
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
		return misuse("need at least one gs://BUCKET/OBJECT")
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
		svc.Attribute(ctx, &d)
		if err := printDecision(e.stdout, &d); err != nil {
			return err
		}
		explainDecision(e.stderr, &d)
		if err := svc.Alerts().Wait(ctx, &d); err != nil {
			fmt.Fprintf(e.stderr, "ALERT NOT DELIVERED: %v\n", err)
			out.unverifiable = true
		}
	}
	if err := printAuditLogging(ctx, e, svc, out.newest); err != nil {
		return err
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
		switch {
		case d.Reason == engine.ReasonMetadata:
			// The bytes are the signed ones; headers that change what clients do with them
			// are not what they must be.
			fmt.Fprintf(w, "TAMPERED METADATA: %s holds the bytes release %s signed, but its protected metadata changed (%s); action: %s",
				where, d.Release, metadataChanges(d.MetadataChanges), d.Action)
		case d.ExpectedDigest != "":
			fmt.Fprintf(w, "TAMPERED: %s (%s) is not what release %s signed (%s); action: %s", where, d.ActualDigest, d.Release, d.ExpectedDigest, d.Action)
		case d.ExpectedSHA256 == "":
			fmt.Fprintf(w, "TAMPERED: %s (sha256 %s) is not what release %s vouches for (by a signature over the file or an attestation); action: %s", where, d.ActualSHA256, d.Release, d.Action)
		default:
			fmt.Fprintf(w, "TAMPERED: %s (sha256 %s) is not what release %s signed (%s); action: %s", where, d.ActualSHA256, d.Release, d.ExpectedSHA256, d.Action)
		}
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

// metadataChanges says, field by field in a stable order, what was found and what it must be.
// The values come from the bucket: quoted, so that they cannot drive a terminal.
func metadataChanges(c map[string][2]string) string {
	fields := make([]string, 0, len(c))
	for f := range c {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	parts := make([]string, 0, len(fields))
	for _, f := range fields {
		parts = append(parts, fmt.Sprintf("%s %q, must be %q", f, c[f][0], c[f][1]))
	}
	return strings.Join(parts, "; ")
}

func runAudit(ctx context.Context, e env, args []string) error {
	fs := flagSet(e, "audit", "audit [--config FILE] [--restore] [--prefix P]... [--concurrency N] [--quiet]\n\n"+
		"Judges every object that a rule covers, and reports objects that rules name but that are missing.\n"+
		"With a state bucket, generations verified before against the same signed release are not read\n"+
		"again (the memo), and a run cut short resumes where it stopped (the cursor).\n"+
		"With a posture: section it then checks the watched bucket's posture and prints one\n"+
		"{\"kind\":\"posture\",\"check\":…,\"status\":\"ok|changed|failing\",…} line per check; with\n"+
		"--restore a change is recorded (and alerted, and with posture.repair repaired), without it\n"+
		"only reported. Exit 1 when anything was tampered or missing or a posture check fails.")
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
		return misuse("audit takes no arguments (got %q)", pos[0])
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
		svc.Attribute(ctx, d)
		if e.terminal {
			fmt.Fprint(e.stderr, "\r\033[K")
		}
		if err := printDecision(e.stdout, d); err != nil && printErr == nil {
			printErr = err
		}
		explainDecision(e.stderr, d)
		alerts = append(alerts, svc.Alerts().Send(d))
		if e.terminal {
			fmt.Fprintf(e.stderr, "audited %s: %s", plural(n, "object"), summary(out.counts))
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
	fmt.Fprintf(e.stderr, "audited %s: %s (%d listed: %d ok by the memo, %d read)\n", plural(total, "object"), summary(counts), rep.Listed, rep.Reused, rep.Read)
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
	if err := printAuditLogging(ctx, e, svc, rep.Newest); err != nil {
		return err
	}
	if err := printPosture(ctx, e, svc, &out); err != nil {
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

// printAuditLogging says, for each bucket it read, whether Data Access audit logs appear on
// (a {"kind":"audit_logs",…} line; a note on stderr when they appear off). Nothing when
// attribution is off (TAMPERGUARD_AUDIT_LOGS unset): then nobody can tell.
func printAuditLogging(ctx context.Context, e env, svc *delivery.Service, newest map[string]time.Time) error {
	buckets := make([]string, 0, len(newest))
	for b := range newest {
		buckets = append(buckets, b)
	}
	slices.Sort(buckets)
	for _, b := range buckets {
		l, ok, err := svc.AuditLogging(ctx, b, newest[b])
		if !ok {
			return nil
		}
		line := struct {
			Kind        string `json:"kind"`
			Bucket      string `json:"bucket"`
			DataWrite   string `json:"data_write_logging"`
			NewestWrite string `json:"newest_write"`
			Error       string `json:"error,omitempty"`
		}{"audit_logs", b, string(l), newest[b].UTC().Format(time.RFC3339Nano), ""}
		if err != nil {
			line.Error = err.Error()
			fmt.Fprintf(e.stderr, "could not tell whether Data Access audit logs are on for gs://%s: %v\n", b, err)
		}
		if l == auditlog.LoggingOff {
			fmt.Fprintf(e.stderr, "NOTE: Data Access audit logs for Cloud Storage appear off for gs://%s (no DATA_WRITE entry since its newest write, %s): writers cannot be named; turn them on (terraform: storage_data_write_audit_logs)\n",
				b, line.NewestWrite)
		}
		data, err := json.Marshal(line)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(e.stdout, "%s\n", data); err != nil {
			return err
		}
	}
	return nil
}

// printPosture runs the posture checks (with a posture: section) and prints one JSON line
// per check; a failing one makes the audit exit 1.
func printPosture(ctx context.Context, e env, svc *delivery.Service, out *outcome) error {
	r, err := svc.CheckPosture(ctx)
	if r == nil && err == nil {
		return nil
	}
	if r != nil {
		for _, f := range r.Findings {
			data, jerr := json.Marshal(f)
			if jerr != nil {
				return jerr
			}
			if _, werr := fmt.Fprintf(e.stdout, "%s\n", data); werr != nil {
				return werr
			}
			if f.Status == posture.StatusFailing {
				out.postureFailing = true
				fmt.Fprintf(e.stderr, "POSTURE FAILING: gs://%s %s: %s\n", f.Bucket, f.Check, f.Detail)
			} else if f.Status == posture.StatusChanged {
				fmt.Fprintf(e.stderr, "POSTURE CHANGED: gs://%s %s: %s\n", f.Bucket, f.Check, f.Detail)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("posture: %w", err)
	}
	return nil
}
