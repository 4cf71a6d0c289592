package alerting

import (
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/tamperguard/tamperguard/internal/engine"
)

// DefaultConsoleBase is where console links point.
const DefaultConsoleBase = "https://console.cloud.google.com"

// DefaultMaxAge is how long edge caches keep a public Cloud Storage object that has no
// Cache-Control of its own (GCS serves those as "public, max-age=3600").
const DefaultMaxAge = time.Hour

// RenderOptions are what Render needs besides the decision. None of them is a clock:
// Render is a pure function of its arguments.
type RenderOptions struct {
	// ConsoleBase is the Cloud Console's base URL (default DefaultConsoleBase).
	ConsoleBase string
	// Repeat is this alert's number among the alerts for the same object within the
	// repeat window: 0 or 1 for the first one.
	Repeat int
	// FirstAlert is when the first alert of that series went out (shown with repeats).
	FirstAlert time.Time
	// DefaultMaxAge is assumed for a bad generation served without Cache-Control
	// (default DefaultMaxAge).
	DefaultMaxAge time.Duration
	// Deployment names the tamperguard deployment (Terraform's name_prefix) in the alert's
	// context; Version is tamperguard's own.
	Deployment, Version string
	// RunbookURL is where the "Runbook" button points (default DefaultRunbookURL).
	RunbookURL string
	// NoThreads: the alert goes where it cannot be threaded (an incoming webhook), so a
	// follow-up is announced as a separate message.
	NoThreads bool
}

// DefaultRunbookURL is the runbook section of the deployment's documentation.
const DefaultRunbookURL = "https://github.com/tamperguard/tamperguard/blob/main/terraform/README.md#runbook"

func (o RenderOptions) withDefaults() RenderOptions {
	if !safeBase(o.ConsoleBase) {
		o.ConsoleBase = DefaultConsoleBase
	}
	o.ConsoleBase = strings.TrimRight(o.ConsoleBase, "/")
	if o.DefaultMaxAge <= 0 {
		o.DefaultMaxAge = DefaultMaxAge
	}
	if !safeBase(o.RunbookURL) {
		o.RunbookURL = DefaultRunbookURL
	}
	return o
}

// safeBase: an http(s) URL with nothing that could end a Slack link.
func safeBase(s string) bool {
	if !strings.HasPrefix(s, "https://") && !strings.HasPrefix(s, "http://") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || strings.IndexByte("<>|&\"'`", c) >= 0 {
			return false
		}
	}
	return true
}

// Span is a piece of text in an alert. Code spans hold values that came from outside
// (names, digests, errors, content) and are shown as code; the others are tamperguard's
// own words. Text is already cleaned for display.
type Span struct {
	Text string
	Code bool
}

// Field is a labelled value.
type Field struct {
	Label string
	Value []Span
}

// Message is a rendered alert: what a person reads, the blocks sent to Slack, and the
// fallback text Slack shows in notifications.
type Message struct {
	// Key identifies the object, for threading repeats: "bucket/object".
	Key string
	// Level is the severity for logs: Error for tampering, Warn for unverifiable.
	Level slog.Level
	// State is the alert's first word, with its cue: what a responder must know before
	// anything else (restored, STILL SERVED, could not verify, …).
	State string
	// Title says what happened and what was done; Header is the state and the object,
	// copyable as it is.
	Title, Object, Header string
	// Summary is one paragraph in tamperguard's own words.
	Summary string
	// Lead is shown right under the title: who made the write, from Cloud Audit Logs, or
	// why that is not known ("Written by"); what a posture check found ("Found"). Empty
	// when there is nothing to say.
	Lead   Field
	Fields []Field
	// Details are lists under the fields: metadata changes, the error, skipped releases.
	Details []Detail
	// Change is how the bytes changed (ChangeTruncated, …), "" when unknown.
	Change        string
	ChangeSummary string
	// Diff is a bounded unified diff of the signed vs the tampered bytes (text only);
	// DiffCut counts the changed lines it leaves out.
	Diff    []string
	DiffCut int
	// Indicators are the URLs, hosts and IPs the added lines reach, defanged.
	Indicators     []string
	MoreIndicators int
	// Footer: evidence, event, repeat count, deployment and version.
	Footer     []Field
	ConsoleURL string
	// Actions are the next steps, as buttons.
	Actions []Button
	// Fallback is the text Slack shows where blocks are not shown (notifications),
	// escaped for Slack and bounded to MaxFallbackText.
	Fallback string
	// Blocks are the Block Kit blocks sent to Slack.
	Blocks []slack.Block
}

// Button is a link to a next step.
type Button struct {
	Text, URL string
	// Style is "primary", "danger" or "" (Slack's button styles).
	Style string
}

// Detail is a titled list.
type Detail struct {
	Title string
	Items [][]Span
}

// Display bounds of values from outside.
const (
	maxValue = 400  // a name, a digest, a tag
	maxError = 1000 // an error message
	maxItems = 8    // items in a detail list
)

func lit(s string) Span { return Span{Text: s} }
func val(s string) Span { return Span{Text: display(s, maxValue), Code: true} }
func num(n int64) Span  { return Span{Text: strconv.FormatInt(n, 10), Code: true} }

// Render turns a decision into an alert.
func Render(d *engine.Decision, opts RenderOptions) Message {
	o := opts.withDefaults()
	m := Message{Key: d.Bucket + "/" + d.Object, Level: slog.LevelError}
	m.Object = display("gs://"+d.Bucket+"/"+d.Object, 4*maxValue)
	m.Title, m.Summary = describe(d)
	m.State = state(d)
	if d.Verdict == engine.VerdictUnverifiable {
		m.Level = slog.LevelWarn
	}
	m.Header = header(m.State, m.Object, o.Repeat)
	m.Lead = writerLead(d.WrittenBy, !o.NoThreads)

	cc := analyze(d.GoodContent, d.BadContent)
	m.Fields = fields(d, o)
	m.Details = details(d)
	switch {
	case cc != nil:
		m.Change = cc.Kind
		m.ChangeSummary = changeSummary(cc, d)
		m.Diff, m.DiffCut = cc.Lines, cc.Cut
		m.Indicators, m.MoreIndicators = cc.Indicators, cc.MoreIndicators
	case d.Verdict == engine.VerdictTampered && d.Reason != engine.ReasonMetadata:
		// Say why there is no diff, so its absence is not read as "nothing changed".
		switch {
		case d.BadContent == nil:
			m.ChangeSummary = fmt.Sprintf("no diff: the bad bytes were not sampled (over %d MiB, or unreadable)", engine.MaxSample>>20)
		case d.GoodContent == nil && d.Reason == engine.ReasonNoGoodSource:
			m.ChangeSummary = "no diff: there is no verified copy to compare with"
		case d.GoodContent == nil:
			m.ChangeSummary = fmt.Sprintf("no diff: the signed bytes were not sampled (over %d MiB, or unreadable)", engine.MaxSample>>20)
		}
	}
	m.ConsoleURL = consoleURL(o.ConsoleBase, d.Bucket, d.Object)
	m.Actions = actions(d, o, m)
	if d.Evidence != "" {
		m.Footer = append(m.Footer, Field{"Evidence", []Span{val(d.Evidence)}})
	}
	if d.EventID != "" {
		ev := []Span{val(d.EventID)}
		if d.Kind != "" {
			ev = append(ev, lit(" ("), val(string(d.Kind)), lit(")"))
		}
		m.Footer = append(m.Footer, Field{"Event", ev})
	}
	if o.Repeat > 1 {
		r := fmt.Sprintf("%d alerts for this object", o.Repeat)
		if !o.FirstAlert.IsZero() {
			r += " since " + fmtTime(o.FirstAlert)
		}
		m.Footer = append(m.Footer, Field{"Repeat", []Span{lit(r)}})
	}
	m.Footer = append(m.Footer, fromFooter(o)...)
	m.Blocks = blocks(m)
	m.Fallback = fallback(m)
	return m
}

// header is the state and the object, bounded to MaxHeaderText once escaped for Slack; a
// long object name loses its middle, not its end.
func header(state, object string, repeat int) string {
	sep := " · "
	suffix := ""
	if repeat > 1 {
		suffix = fmt.Sprintf(" (repeat %d)", repeat)
	}
	for budget := MaxHeaderText; ; budget -= 8 {
		h := state + sep + middle(object, max(budget-textLen(state)-textLen(sep)-textLen(suffix), 8)) + suffix
		if textLen(headerText(h, 0)) <= MaxHeaderText || budget < 16 {
			return h
		}
	}
}

// state is the alert's first word, with a cue a responder takes in before reading: whether
// the signed bytes are live again, or the bad ones are still served, or nobody can tell.
func state(d *engine.Decision) string {
	switch {
	case d.Verdict == engine.VerdictUnverifiable:
		return "⚠️ Could not verify"
	case d.Action == engine.ActionRestored || d.Action == engine.ActionMetadataRestored:
		return "✅ Restored"
	case d.Action == engine.ActionQuarantined:
		return "⛔ Quarantined"
	case d.Action == engine.ActionSkippedNewer:
		return "⚠️ Served until replaced"
	case d.Verdict == engine.VerdictMissing:
		return "🚨 STILL MISSING"
	}
	return "🚨 STILL SERVED"
}

// actions are the next steps: the object (its versions) in the Cloud Console, the evidence
// copy, the writes to the object in Logs Explorer, and the runbook.
func actions(d *engine.Decision, o RenderOptions, m Message) []Button {
	style := ""
	if strings.HasPrefix(m.State, "🚨") {
		style = "danger"
	}
	bs := []Button{{Text: "Object versions", URL: m.ConsoleURL, Style: style}}
	if b, obj, ok := strings.Cut(strings.TrimPrefix(d.Evidence, "gs://"), "/"); ok && strings.HasPrefix(d.Evidence, "gs://") && !strings.Contains(obj, " ") {
		bs = append(bs, Button{Text: "Evidence copy", URL: objectURL(o.ConsoleBase, b, obj)})
	}
	if u := logsURL(o.ConsoleBase, d.Bucket, d.Object); len(u) <= maxButtonURL {
		bs = append(bs, Button{Text: "Writes in Logs Explorer", URL: u})
	}
	bs = append(bs, Button{Text: "Runbook", URL: o.RunbookURL})
	var out []Button
	for _, b := range bs {
		if len(b.URL) <= maxButtonURL {
			out = append(out, b)
		}
	}
	return out
}

// maxButtonURL is Slack's limit for a button's url.
const maxButtonURL = 3000

// objectURL links to one object's page in the Cloud Console.
func objectURL(base, bucket, object string) string {
	return strings.TrimSuffix(consoleURL(base, bucket, object), ";tab=version_history")
}

// logsURL is a Logs Explorer query for the audit entries of writes to the object. The query
// is percent-encoded whole, so no byte of the object name can end it or add a parameter.
func logsURL(base, bucket, object string) string {
	q := `protoPayload.serviceName="storage.googleapis.com"` + "\n" +
		`protoPayload.resourceName="projects/_/buckets/` + bucket + `/objects/` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(object) + `"` + "\n" +
		`protoPayload.methodName=("storage.objects.create" OR "storage.objects.delete" OR "storage.objects.update" OR "storage.objects.patch")`
	return base + "/logs/query;query=" + pathEncode(q, false, true)
}

// describe is the title and the summary of what happened and what was done.
func describe(d *engine.Decision) (title, summary string) {
	gen := fmt.Sprintf("Generation %d", d.Generation)
	restored := fmt.Sprintf("The signed bytes are live again as generation %d.", d.RestoredGeneration)
	switch {
	case d.Verdict == engine.VerdictUnverifiable:
		what, why := unverifiable(d.Reason)
		return what, "tamperguard could not establish the signed digest for this object, so it did not restore or delete anything. " + why
	case d.Verdict == engine.VerdictMissing:
		switch d.Action {
		case engine.ActionRestored:
			return "Deleted object restored", "The object was deleted. The newest copy whose SHA-256 matches the signed release was put back: " + lowerFirst(restored)
		case engine.ActionSkippedNewer:
			return "Deleted object was re-uploaded before it could be restored", "The object was deleted, and a new generation appeared before tamperguard wrote the signed bytes back; that upload is judged by its own event."
		case engine.ActionFailed:
			if d.Reason == engine.ReasonNoGoodSource {
				return "Deleted object NOT restored (no good copy)", "The object was deleted, and neither the bucket's older generations nor the signed release hold bytes that match the signed digest. The object is STILL MISSING."
			}
			return "Deleted object NOT restored (restore failed)", "The object was deleted, and putting the signed bytes back failed. The object is STILL MISSING."
		default:
			return "Object missing", "The object is not in the bucket."
		}
	case d.Reason == engine.ReasonMetadata:
		switch d.Action {
		case engine.ActionMetadataRestored:
			return "Protected metadata put back", gen + " kept its bytes, but headers that change what clients do with them were changed. They have been put back."
		case engine.ActionSkippedNewer:
			return "Protected metadata changed again before it could be put back", gen + " had its protected metadata changed, and it changed again (or a new generation appeared) before tamperguard acted; that change is judged by its own event."
		case engine.ActionFailed:
			return "Protected metadata NOT put back (update failed)", gen + " had its protected metadata changed, and putting it back failed. The changed headers are STILL SERVED."
		default:
			return "Protected metadata changed", gen + " had its protected metadata changed. Nothing was done: the changed headers are STILL SERVED."
		}
	}
	mismatch := gen + " does not match the SHA-256 in the signed release."
	switch d.Action {
	case engine.ActionRestored:
		return "Tampered object restored", mismatch + " " + restored
	case engine.ActionQuarantined:
		if d.Reason == engine.ReasonNoGoodSource {
			return "Tampered object quarantined (no good copy to restore)", mismatch + " No copy of the signed bytes was found, so the bad generation was deleted. The object is missing until a maintainer uploads the signed release."
		}
		return "Tampered object quarantined", mismatch + " The rule says quarantine: the bad generation was deleted. The object is missing until a maintainer uploads the signed release."
	case engine.ActionSkippedNewer:
		return "Tampered generation was served until replaced", mismatch + " A newer generation replaced it before tamperguard acted; that write is judged by its own event. The bad bytes were served in the meantime."
	case engine.ActionFailed:
		if d.Reason == engine.ReasonRestoreMismatch {
			return "Tampered object NOT restored (restored copy did not verify)", mismatch + " The restored generation did not read back as the signed bytes. The object may STILL SERVE bad bytes."
		}
		return "Tampered object NOT restored (restore failed)", mismatch + " Putting the signed bytes back failed. The bad bytes are STILL SERVED."
	default:
		if d.Reason == engine.ReasonNoGoodSource {
			return "Tampered object NOT restored (no good copy)", mismatch + " Neither the bucket's older generations nor the signed release hold bytes that match the signed digest. The bad bytes are STILL SERVED."
		}
		return "Tampered object NOT restored (alert-only rule)", mismatch + " The rule only alerts. The bad bytes are STILL SERVED."
	}
}

// unverifiable is the title and the explanation for an unverifiable verdict's reason.
func unverifiable(reason engine.Reason) (string, string) {
	rel := "Release could not be verified: "
	obj := "Object could not be verified: "
	switch reason {
	case engine.ReasonSignatureRefused:
		return rel + "signature refused", "The release's signature does not verify against the pinned keys (wrong key, weak algorithm, expired or revoked key, or altered content)."
	case engine.ReasonRollback:
		return rel + "rollback refused", "An older signed release was offered as the latest after a newer one had been seen: a rollback."
	case engine.ReasonUnsigned:
		return rel + "release not signed", "The tag or checksum file carries no signature."
	case engine.ReasonNoTrustedRelease:
		return rel + "no release signed by a pinned key", "None of the candidate releases is signed by a pinned key."
	case engine.ReasonEntryMissing:
		return rel + "object not in the signed checksums", "The signed checksum file does not list this object."
	case engine.ReasonReleaseNotFound:
		return rel + "release not found", "The tag, release or checksum file does not exist at its source."
	case engine.ReasonReleaseInvalid:
		return rel + "invalid release", "The source answered with something that is not a release."
	case engine.ReasonReleaseUnreachable:
		return rel + "release unreachable", "The release source could not be reached."
	case engine.ReasonObjectUnreadable:
		return obj + "unreadable", "The object could not be read from the bucket."
	case engine.ReasonObjectTooLarge:
		return obj + "too large", "The object is larger than the configured hashing limit."
	case engine.ReasonGenerationGone:
		return obj + "generation gone", "The generation disappeared before it could be read."
	}
	return "Object could not be verified", "" // the reason is shown as a field
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// fields are the facts a responder needs first.
func fields(d *engine.Decision, o RenderOptions) []Field {
	f := []Field{
		{"Bucket", []Span{val(d.Bucket)}},
		{"Object", []Span{val(d.Object)}},
	}
	tampered := d.Verdict == engine.VerdictTampered && d.Reason != engine.ReasonMetadata
	if d.Generation != 0 {
		label := "Generation"
		switch {
		case tampered:
			label = "Bad generation"
		case d.Verdict == engine.VerdictMissing:
			label = "Deleted generation"
		}
		v := []Span{num(d.Generation)}
		if !d.Created.IsZero() {
			v = append(v, lit("\nwritten "+fmtTime(d.Created)))
		}
		f = append(f, Field{label, v})
	}
	if d.ExpectedSHA256 != "" {
		v := []Span{val(d.ExpectedSHA256)}
		if d.GoodContent != nil {
			v = append(v, lit("\n"+sizeText(int64(len(d.GoodContent)))))
		}
		f = append(f, Field{"Expected SHA-256 (signed)", v})
	}
	if d.ExpectedDigest != "" {
		f = append(f, Field{"Expected digest (signed)", []Span{val(d.ExpectedDigest)}})
	}
	if d.ActualSHA256 != "" && d.Verdict != engine.VerdictMissing {
		f = append(f, Field{"Found SHA-256", []Span{val(d.ActualSHA256), lit("\n" + sizeText(d.Size))}})
	}
	if d.ActualDigest != "" && d.Verdict != engine.VerdictMissing {
		f = append(f, Field{"Found digest", []Span{val(d.ActualDigest)}})
	}
	if d.Release != "" || d.Signer != "" || d.ReleaseInfo != nil {
		f = append(f, Field{"Signed release", releaseSpans(d)})
	}
	if d.Verdict == engine.VerdictUnverifiable && d.Reason != "" {
		f = append(f, Field{"Reason", []Span{val(string(d.Reason))}})
	}
	f = append(f, Field{"Action", actionSpans(d)})
	if d.RestoredGeneration != 0 {
		v := []Span{num(d.RestoredGeneration)}
		if !d.Restored.IsZero() {
			v = append(v, lit("\nat "+fmtTime(d.Restored)))
		}
		f = append(f, Field{"Restored generation", v})
	}
	if tampered {
		if w := exposure(d); w != "" {
			f = append(f, Field{"Exposure window", []Span{lit(w)}})
		}
		f = append(f, Field{"Edge caches", edgeCaches(d, o)})
	}
	return f
}

func releaseSpans(d *engine.Decision) []Span {
	var v []Span
	tag := d.Release
	if tag == "" && d.ReleaseInfo != nil {
		tag = d.ReleaseInfo.Source
	}
	if tag != "" {
		v = append(v, val(tag))
	}
	if d.Signer != "" && d.Signer != ":" {
		if len(v) > 0 {
			v = append(v, lit("\n"))
		}
		v = append(v, lit("key "), val(d.Signer))
		if d.ReleaseInfo != nil && d.ReleaseInfo.Signer.Identity != "" {
			v = append(v, lit(" "), val(d.ReleaseInfo.Signer.Identity))
		}
	}
	if len(v) == 0 {
		v = append(v, lit("none trusted"))
	}
	if ri := d.ReleaseInfo; ri != nil && ri.Floor != nil {
		if ri.Floor.Transient() {
			v = append(v, lit("\nthe last release that verified: the release source could not be read"))
		} else {
			v = append(v, lit("\nthe last release that verified: what is newer was not trusted (below)"))
		}
	}
	return v
}

func actionSpans(d *engine.Decision) []Span {
	switch d.Action {
	case engine.ActionRestored:
		if d.Source != "" {
			return []Span{lit("restored from "), val(d.Source)}
		}
		return []Span{lit("restored")}
	case engine.ActionQuarantined:
		return []Span{lit("quarantined: the bad generation was deleted")}
	case engine.ActionMetadataRestored:
		return []Span{lit("metadata put back")}
	case engine.ActionSkippedNewer:
		return []Span{lit("none: a newer change came first")}
	case engine.ActionFailed:
		switch {
		case d.Reason == engine.ReasonNoGoodSource:
			return []Span{lit("FAILED: no good copy to restore from")}
		case d.Error != "":
			return []Span{lit("FAILED (see the error below)")}
		}
		return []Span{lit("FAILED")}
	}
	switch {
	case d.Verdict == engine.VerdictUnverifiable:
		return []Span{lit("none: nothing is restored from an unverified release")}
	case d.Reason == engine.ReasonNoGoodSource:
		return []Span{lit("none: no good copy to restore from")}
	}
	return []Span{lit("none: the rule only alerts")}
}

// exposure is how long the bad bytes were served: from the bad generation's creation to
// when good bytes were live again (or it was deleted, or replaced).
func exposure(d *engine.Decision) string {
	if d.Created.IsZero() {
		return ""
	}
	end := d.Restored
	if d.Action == engine.ActionSkippedNewer {
		end = d.Replaced
	}
	if end.IsZero() || end.Before(d.Created) {
		if d.Action == engine.ActionSkippedNewer {
			return "from " + fmtTime(d.Created) + " until it was replaced"
		}
		return "still open: served since " + fmtTime(d.Created)
	}
	return fmtDuration(end.Sub(d.Created)) + "\n" + fmtTime(d.Created) + " → " + fmtTime(end)
}

// edgeCaches says whether and until when caches may still serve the bad bytes.
func edgeCaches(d *engine.Decision, o RenderOptions) []Span {
	maxAge, found := o.DefaultMaxAge, false
	var ccSpan []Span
	if cc := strings.TrimSpace(d.BadCacheControl); cc != "" {
		ccSpan = []Span{lit(" (Cache-Control "), val(cc), lit(")")}
		var sMax, plain time.Duration
		hasS, hasPlain := false, false
		for _, dir := range strings.Split(strings.ToLower(cc), ",") {
			dir = strings.TrimSpace(dir)
			name, arg, _ := strings.Cut(dir, "=")
			switch strings.TrimSpace(name) {
			case "no-store", "private":
				return append([]Span{lit("not kept by shared caches")}, ccSpan...)
			case "no-cache":
				return append([]Span{lit("revalidated on every request")}, ccSpan...)
			case "s-maxage":
				if s, ok := seconds(arg); ok {
					sMax, hasS = s, true
				}
			case "max-age":
				if s, ok := seconds(arg); ok {
					plain, hasPlain = s, true
				}
			}
		}
		switch {
		case hasS:
			maxAge, found = sMax, true
		case hasPlain:
			maxAge, found = plain, true
		}
		if !found {
			return append([]Span{lit(fmt.Sprintf("may keep the bad bytes for an unknown time (assume %s)", fmtDuration(o.DefaultMaxAge)))}, ccSpan...)
		}
	} else {
		ccSpan = []Span{lit(fmt.Sprintf(" (no Cache-Control: public objects are served with max-age=%d)", int64(maxAge/time.Second)))}
	}
	if maxAge <= 0 {
		return append([]Span{lit("not kept (max-age 0)")}, ccSpan...)
	}
	end := d.Restored
	if d.Action == engine.ActionSkippedNewer {
		end = d.Replaced
	}
	if end.IsZero() {
		return append([]Span{lit(fmt.Sprintf("may serve the bad bytes while they are live and for up to %s after", fmtDuration(maxAge)))}, ccSpan...)
	}
	return append([]Span{lit("may serve the bad bytes until " + fmtTime(end.Add(maxAge)))}, ccSpan...)
}

// seconds parses a Cache-Control delta-seconds, clamped to a year.
func seconds(s string) (time.Duration, bool) {
	s = strings.Trim(strings.TrimSpace(s), `"`)
	if s == "" || len(s) > 12 {
		if len(s) > 12 && strings.Trim(s, "0123456789") == "" {
			return 365 * 24 * time.Hour, true
		}
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return min(time.Duration(n)*time.Second, 365*24*time.Hour), true
}

// details are the lists under the fields.
func details(d *engine.Decision) []Detail {
	var out []Detail
	if len(d.MetadataChanges) > 0 {
		names := make([]string, 0, len(d.MetadataChanges))
		for k := range d.MetadataChanges {
			names = append(names, k)
		}
		sort.Strings(names)
		det := Detail{Title: "Metadata changes"}
		verb := "put back"
		if d.Action != engine.ActionMetadataRestored {
			verb = "should be"
		}
		for i, k := range names {
			if i == maxItems {
				det.Items = append(det.Items, []Span{lit(fmt.Sprintf("and %d more", len(names)-i))})
				break
			}
			c := d.MetadataChanges[k]
			det.Items = append(det.Items, []Span{val(k), lit(": found "), valOrNone(c[0]), lit(", " + verb + " "), valOrNone(c[1])})
		}
		out = append(out, det)
	}
	if d.Error != "" {
		out = append(out, Detail{Title: "Error", Items: [][]Span{{{Text: display(redact(d.Error), maxError), Code: true}}}})
	}
	skipped := d.Skipped
	if len(skipped) == 0 && d.ReleaseInfo != nil {
		skipped = d.ReleaseInfo.Skipped
	}
	if len(skipped) > 0 {
		title := "Newer releases not trusted"
		for _, sk := range skipped {
			if sk.Tag == d.Release {
				title = "Releases not trusted" // an exact tag that no longer verifies names itself
			}
		}
		det := Detail{Title: title}
		for i, s := range skipped {
			if i == maxItems {
				det.Items = append(det.Items, []Span{lit(fmt.Sprintf("and %d more", len(skipped)-i))})
				break
			}
			item := []Span{val(s.Tag)}
			if s.Reason != nil {
				item = append(item, lit(": "), Span{Text: display(redact(s.Reason.Error()), maxValue), Code: true})
			}
			det.Items = append(det.Items, item)
		}
		out = append(out, det)
	}
	return out
}

func valOrNone(s string) Span {
	if s == "" {
		return lit("(none)")
	}
	return val(s)
}

func changeSummary(cc *contentChange, d *engine.Decision) string {
	s := cc.Kind
	switch cc.Kind {
	case ChangeTruncated:
		s += fmt.Sprintf(": %s of the signed %s remain", sizeText(int64(len(d.BadContent))), sizeText(int64(len(d.GoodContent))))
	case ChangeAppended:
		s += fmt.Sprintf(": %s added after the signed %s", sizeText(int64(len(d.BadContent)-len(d.GoodContent))), sizeText(int64(len(d.GoodContent))))
	case ChangeReplaced:
		s += fmt.Sprintf(" (binary): %s instead of the signed %s", sizeText(int64(len(d.BadContent))), sizeText(int64(len(d.GoodContent))))
	}
	if cc.Text {
		s += fmt.Sprintf("; %s added, %s removed", plural(cc.Added, "line"), plural(cc.Removed, "line"))
		if cc.Partial {
			s += fmt.Sprintf(" in the first %d lines of the change", maxDiffSideLines)
		}
	}
	return s
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

func sizeText(n int64) string {
	if n == 1 {
		return "1 byte"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// fmtDuration: "850ms", "8s", "42m", "1h", "1h2m3s".
func fmtDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "unknown"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// consoleURL links to the object's version history. Every byte of the bucket and object
// names but unreserved characters and "/" is percent-encoded, so the link cannot end early
// or change what it points at; names with "." or ".." segments get their "/" and "."
// encoded too, so a browser cannot resolve them away.
func consoleURL(base, bucket, object string) string {
	dots := false
	for _, seg := range strings.Split(object, "/") {
		if seg == "." || seg == ".." {
			dots = true
		}
	}
	bucketDots := bucket != "." && bucket != ".."
	u := base + "/storage/browser/_details/" + pathEncode(bucket, false, bucketDots) + "/" + pathEncode(object, !dots, !dots) + ";tab=version_history"
	if len(u) > maxConsoleURL {
		// Too long for a Slack link: the bucket's page, where the object can be found.
		u = base + "/storage/browser/" + pathEncode(bucket, false, bucketDots)
	}
	return u
}

// maxConsoleURL leaves room for the link's label in a context element.
const maxConsoleURL = MaxContextText - 100

func pathEncode(s string, keepSlash, keepDot bool) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '~',
			c == '.' && keepDot, c == '/' && keepSlash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// Credentials that other systems' errors sometimes quote: URL user info and secret-looking
// query parameters. They are cut before an error is shown.
var (
	userinfoRE  = regexp.MustCompile(`(?i)([a-z][a-z0-9+.-]*://)[^/\s@"']+@`)
	secretArgRE = regexp.MustCompile(`(?i)\b((?:access_?)?token|key|sig|signature|secret|password|passwd|auth|x-amz-signature|x-goog-signature)=[^&\s"']+`)
	bearerRE    = regexp.MustCompile(`(?i)\b(bearer|basic)\s+[a-z0-9._~+/=-]{8,}`)
	slackTokRE  = regexp.MustCompile(`\bxox[a-z]-[A-Za-z0-9-]+`)
)

// redact cuts credentials out of an error message before it is shown.
func redact(s string) string {
	if len(s) > 4*maxError {
		s = s[:4*maxError]
	}
	s = userinfoRE.ReplaceAllString(s, "${1}[redacted]@")
	s = secretArgRE.ReplaceAllString(s, "${1}=[redacted]")
	s = bearerRE.ReplaceAllString(s, "${1} [redacted]")
	return slackTokRE.ReplaceAllString(s, "[redacted]")
}
