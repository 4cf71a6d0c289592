package alerting

import (
	"log/slog"
	"strings"

	"github.com/tamperguard/tamperguard/internal/posture"
)

// Posture alerts: one per change of a posture check (internal/posture), threaded per check
// of the bucket. The finding's detail and values are read from the bucket's settings, which
// an attacker may have chosen (member names, topics, prefixes): they are code spans.

// Posture state cues.
const (
	PostureDown      = "🚨 GUARD DOWN"
	PostureChanged   = "⚠️ Changed"
	PostureRecovered = "✅ Recovered"
	PostureRepaired  = "✅ Repaired"
)

// postureCheck is what the alert says about one check: its name in words, the title when
// it fails and when it changes, and why it matters with what to do.
type postureCheck struct {
	name, failing, changed, why string
}

var postureChecks = map[string]postureCheck{
	posture.CheckVersioning: {"Object versioning", "Object versioning is off", "Object versioning changed",
		"Without versioning an overwritten or deleted object keeps no older generation: tamperguard loses its restore source and the bad bytes' evidence. Turn it back on (gcloud storage buckets update gs://BUCKET --versioning), then find who turned it off."},
	posture.CheckSoftDelete: {"Soft delete", "Soft delete is off", "Soft delete changed",
		"Soft delete brings back objects that were deleted or pruned. Set it again (gcloud storage buckets update gs://BUCKET --soft-delete-duration=7d)."},
	posture.CheckNotification: {"Notification config", "The notification config that feeds tamperguard is gone or narrowed", "Notification configs changed",
		"tamperguard hears of writes through this config: without it, tampering is found only by the next audit. Re-create it (terraform apply, or posture.repair), and look for tampering since: whoever removed it could also write objects."},
	posture.CheckWriters: {"Who can write objects", "Anyone can write objects", "Who can write objects changed",
		"A principal that can write objects can replace what tamperguard guards. Remove a public writer at once; confirm a new principal is meant to publish."},
	posture.CheckUniform: {"Uniform bucket-level access", "Uniform bucket-level access is off", "Uniform bucket-level access changed",
		"Without it, object ACLs can grant access that the bucket's IAM policy does not show. Turn it back on, then look for objects with ACLs set meanwhile."},
	posture.CheckPAP: {"Public access prevention", "Public access prevention was lifted", "Public access prevention changed",
		"Objects can now be made public. Enforce it again unless publishing was meant."},
	posture.CheckRetention: {"Retention policy", "Retention policy", "Retention policy changed",
		"A retention policy keeps objects from being replaced or deleted before the period ends: it can block tamperguard's restores. Remove an unwanted, unlocked policy."},
	posture.CheckHMACKeys: {"HMAC keys", "A service account of the project has an active HMAC key", "HMAC keys changed",
		"A long-lived storage key of this kind rewrote the Codecov uploader in 2021. Deactivate and delete keys that are not needed; list the needed ones in posture.allowed_hmac_access_ids."},
}

// RenderPosture renders the alert about a posture finding.
func RenderPosture(f posture.Finding, opts RenderOptions) Message {
	o := opts.withDefaults()
	c, ok := postureChecks[f.Check]
	if !ok {
		c = postureCheck{name: display(f.Check, 80), failing: "Posture check " + display(f.Check, 80) + " failing", changed: "Posture check " + display(f.Check, 80) + " changed"}
	}
	m := Message{Key: f.Thread, Level: slog.LevelWarn}
	m.Object = display("gs://"+f.Bucket, 4*maxValue)
	switch {
	case f.Status == posture.StatusFailing:
		m.State, m.Level = PostureDown, slog.LevelError
		m.Title = c.failing
		if f.Check == posture.CheckNotification {
			// Say which of the two: a narrowed config still feeds some events.
			switch {
			case strings.Contains(f.Detail, "feeds tamperguard was removed"):
				m.Title = "The notification config that feeds tamperguard was removed"
			case strings.Contains(f.Detail, "feeds tamperguard was narrowed"):
				m.Title = "The notification config that feeds tamperguard was narrowed"
			}
		}
		if f.Err != nil {
			m.Title = c.name + ": the check could not be made"
		}
	case f.Repaired:
		m.State = PostureRepaired
		m.Title = c.name + " was changed and tamperguard put it back"
		switch f.Check {
		case posture.CheckVersioning:
			m.Title = "Object versioning was turned off: tamperguard turned it back on"
		case posture.CheckNotification:
			m.Title = "The notification config that feeds tamperguard was removed or narrowed: tamperguard re-created it"
		}
	case f.Status == posture.StatusChanged:
		m.State = PostureChanged
		m.Title = c.changed
	default:
		m.State, m.Level = PostureRecovered, slog.LevelInfo
		m.Title = c.name + " is back to its baseline"
	}
	m.Header = header(m.State, m.Object+" · "+c.name, 0)
	switch {
	case f.Err != nil:
		m.Summary = "tamperguard could not read this setting, so it cannot tell whether the bucket is still guarded. Grant the runtime what the check reads (terraform: the posture reader role), or look at the setting by hand."
	case f.Status == posture.StatusOK:
		m.Summary = "The setting is what it was when tamperguard first saw the bucket."
	case f.Repaired:
		m.Summary = "The guard is up again (posture.repair). Find out who changed it, in the bucket's Admin Activity entries: whoever could do this may also have written objects meanwhile."
	default:
		m.Summary = strings.ReplaceAll(c.why, "BUCKET", f.Bucket)
	}
	m.Fields = []Field{{"Bucket", []Span{val(f.Bucket)}}, {"Check", []Span{val(f.Check)}}, {"Status", []Span{val(string(f.Status))}}}
	if f.Observed != "" {
		m.Fields = append(m.Fields, Field{"Now", lineSpans(f.Observed)})
	}
	if f.Baseline != "" && f.Baseline != f.Observed {
		m.Fields = append(m.Fields, Field{"Baseline", lineSpans(f.Baseline)})
	}
	if f.Detail != "" && f.Err == nil {
		m.Lead = Field{Label: "Found", Value: []Span{{Text: display(f.Detail, maxError), Code: true}}}
	}
	if f.Repair != "" {
		m.Details = append(m.Details, Detail{Title: "Repair (posture.repair)", Items: [][]Span{{{Text: display(redact(f.Repair), maxError), Code: true}}}})
	}
	if f.Err != nil {
		m.Details = append(m.Details, Detail{Title: "Error", Items: [][]Span{{{Text: display(redact(f.Err.Error()), maxError), Code: true}}}})
	}
	m.ConsoleURL = o.ConsoleBase + "/storage/browser/_details/" + pathEncode(f.Bucket, false, true) + ";tab=configuration"
	settings := Button{Text: "Bucket settings", URL: m.ConsoleURL}
	if m.State == PostureDown {
		settings.Style = "danger"
	}
	m.Actions = []Button{settings}
	if u := adminActivityURL(o.ConsoleBase, f.Bucket); len(u) <= maxButtonURL {
		m.Actions = append(m.Actions, Button{Text: "Changes in Logs Explorer", URL: u})
	}
	m.Actions = append(m.Actions, Button{Text: "Runbook", URL: o.RunbookURL})
	m.Footer = fromFooter(o)
	m.Blocks = blocks(m)
	m.Fallback = fallback(m)
	return m
}

// lineSpans is a value of several lines (one grant or key per line) as code spans, one a line.
func lineSpans(v string) []Span {
	lines := strings.Split(v, "\n")
	var out []Span
	for i, l := range lines {
		if i == maxItems {
			out = append(out, lit("\nand "+plural(len(lines)-i, "more line")))
			break
		}
		if i > 0 {
			out = append(out, lit("\n"))
		}
		out = append(out, val(l))
	}
	return out
}

// adminActivityURL is a Logs Explorer query for the bucket's Admin Activity entries: who
// changed its settings, IAM policy or notification configs. The query is percent-encoded
// whole.
func adminActivityURL(base, bucket string) string {
	q := `logName:"cloudaudit.googleapis.com%2Factivity"` + "\n" +
		`resource.type="gcs_bucket"` + "\n" +
		`resource.labels.bucket_name="` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(bucket) + `"`
	return base + "/logs/query;query=" + pathEncode(q, false, true)
}
