package alerting

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/tamperguard/tamperguard/internal/auditlog"
	"github.com/tamperguard/tamperguard/internal/engine"
)

// Who wrote it: the line under an alert's title, from the decision's audit log attribution.
// Every value comes from an audit entry whose text the writer partly chose (the user agent
// always): each is a code span.

// maxDelegation bounds the delegation hops shown.
const maxDelegation = 4

// writerLead is the line under the title that says who made the write (empty when nobody
// looked).
func writerLead(a *auditlog.Attribution, threads bool) Field {
	v := writerSpans(a, threads)
	if len(v) == 0 {
		return Field{}
	}
	return Field{Label: "Written by", Value: v}
}

// writerSpans says who made the write, or why that is not known; nil when nobody looked.
// threads is false for an incoming webhook, where a follow-up is a new message.
func writerSpans(a *auditlog.Attribution, threads bool) []Span {
	if a == nil {
		return nil
	}
	switch a.Status {
	case auditlog.StatusFound:
		if a.WrittenBy != nil {
			return foundSpans(a)
		}
		return []Span{lit("an audit entry matched but named nobody")}
	case auditlog.StatusPending:
		if threads {
			return []Span{lit("not yet in audit logs — will follow in this thread")}
		}
		return []Span{lit("not yet in audit logs — will follow in a separate message")}
	case auditlog.StatusLogsOff:
		return []Span{lit("unknown: Data Access audit logs for Cloud Storage appear off: turn them on (terraform: storage_data_write_audit_logs)")}
	case auditlog.StatusNotLogged:
		return []Span{lit("this write was not logged: " + display(a.Note, maxError))}
	case auditlog.StatusUnavailable:
		return []Span{lit("unknown: the audit logs could not be read: "), {Text: display(redact(a.Note), maxValue), Code: true}}
	case auditlog.StatusOff:
		return []Span{lit("unknown: this deployment reads no audit logs (attribution is off; terraform: storage_data_write_audit_logs)")}
	}
	return []Span{lit("unknown: "), val(string(a.Status))}
}

// foundSpans is the writer of a found entry: principal first, then where from and with
// what credential, then how the write was made and how sure the match is.
func foundSpans(a *auditlog.Attribution) []Span {
	w := a.WrittenBy
	var v []Span
	if w.Principal != "" {
		v = append(v, val(w.Principal))
	} else {
		v = append(v, lit("(no principal in the entry)"))
	}
	if w.PrincipalSubject != "" && w.PrincipalSubject != w.Principal && !strings.HasSuffix(w.PrincipalSubject, ":"+w.Principal) {
		v = append(v, lit(" ("), val(w.PrincipalSubject), lit(")"))
	}
	switch {
	case w.HMACAccessID != "":
		v = append(v, lit("\nHMAC key "), val(w.HMACAccessID))
		if w.ServiceAccountKey != "" && w.HMACAccessIDField != "protoPayload.authenticationInfo.serviceAccountKeyName" {
			v = append(v, lit(" · key "), val(w.ServiceAccountKey))
		}
	case w.ServiceAccountKey != "":
		// The key's ID; its full name only when it is not the principal's own key (the
		// decision's written_by has it either way).
		id := keyID(w.ServiceAccountKey)
		v = append(v, lit("\nservice account key "), val(id))
		if id == w.ServiceAccountKey || w.Principal == "" || !strings.Contains(w.ServiceAccountKey, "/serviceAccounts/"+w.Principal+"/keys/") {
			if id != w.ServiceAccountKey {
				v = append(v, lit(" ("), val(w.ServiceAccountKey), lit(")"))
			}
		}
	}
	if len(w.Delegation) > 0 {
		v = append(v, lit("\ndelegated by "))
		for i, d := range w.Delegation {
			if i == maxDelegation {
				v = append(v, lit(fmt.Sprintf(" and %d more", len(w.Delegation)-i)))
				break
			}
			if i > 0 {
				v = append(v, lit(" → "))
			}
			v = append(v, val(d))
		}
	}
	if w.CallerIP != "" || w.UserAgent != "" {
		v = append(v, lit("\n"))
		if w.CallerIP != "" {
			v = append(v, lit("from "), val(w.CallerIP))
		}
		if w.UserAgent != "" {
			if w.CallerIP != "" {
				v = append(v, lit(" · "))
			}
			v = append(v, lit("user agent "), val(w.UserAgent))
		}
	}
	v = append(v, lit("\n"))
	if w.Method != "" {
		v = append(v, val(w.Method), lit(" "))
	}
	v = append(v, lit("at "+fmtTime(w.Time)))
	switch {
	case a.Confidence == "exact":
		v = append(v, lit(" · exact: the one audit entry of this write"))
	case a.Candidates > 1:
		v = append(v, lit(fmt.Sprintf(" · closest of %d: the nearest in time of %d audit entries of this object and kind of write (see Writes in Logs Explorer)", a.Candidates, a.Candidates)))
	case a.Confidence != "":
		v = append(v, lit(" · "), val(a.Confidence))
	}
	return v
}

// keyID is the last segment of a service account key name (//iam.googleapis.com/…/keys/ID):
// the ID that gcloud iam service-accounts keys disable takes.
func keyID(name string) string {
	if i := strings.LastIndex(name, "/keys/"); i >= 0 && i+len("/keys/") < len(name) {
		return name[i+len("/keys/"):]
	}
	return name
}

// writerSummary is the attribution's status in tamperguard's own words, for the follow-up's
// title (never a value from the entry: a title is not a code span).
func writerSummary(a *auditlog.Attribution) string {
	if a == nil {
		return ""
	}
	switch a.Status {
	case auditlog.StatusFound:
		return "found in Cloud Audit Logs"
	case auditlog.StatusPending:
		return "not yet in audit logs"
	case auditlog.StatusLogsOff:
		return "unknown (Data Access audit logs appear off)"
	case auditlog.StatusNotLogged:
		return "unknown (this write was not logged)"
	case auditlog.StatusUnavailable:
		return "unknown (the audit logs could not be read)"
	case auditlog.StatusOff:
		return "unknown (attribution is off)"
	}
	return "unknown"
}

// FollowUpState is the follow-up's state cue.
const FollowUpState = "🔎 Who wrote it"

// RenderFollowUp renders the follow-up to an alert whose writer was not yet in the audit
// logs: d is the alert's decision with WrittenBy as found later. With a bot token it is a
// reply in the object's alert thread; through an incoming webhook a message of its own.
func RenderFollowUp(d *engine.Decision, opts RenderOptions) Message {
	o := opts.withDefaults()
	m := Message{Key: d.Bucket + "/" + d.Object, Level: slog.LevelInfo, State: FollowUpState}
	m.Object = display("gs://"+d.Bucket+"/"+d.Object, 4*maxValue)
	m.Header = header(m.State, m.Object, 0)
	what := "the write"
	switch {
	case d.Verdict == engine.VerdictMissing:
		what = "the deletion"
	case d.Reason == engine.ReasonMetadata:
		what = "the metadata change"
	case d.Verdict == engine.VerdictTampered:
		what = "the tampered write"
	}
	m.Title = "Who made " + what + ": " + writerSummary(d.WrittenBy)
	if opts.NoThreads {
		m.Summary = fmt.Sprintf("This follows up on the alert about generation %d of this object, sent when its audit entry had not arrived yet.", d.Generation)
	} else {
		m.Summary = fmt.Sprintf("The audit entry of generation %d arrived after the alert above was sent.", d.Generation)
	}
	m.Lead = writerLead(d.WrittenBy, !opts.NoThreads)
	m.Fields = []Field{{"Bucket", []Span{val(d.Bucket)}}, {"Object", []Span{val(d.Object)}}}
	if d.Generation != 0 {
		label := "Generation"
		if d.Verdict == engine.VerdictMissing {
			label = "Deleted generation"
		} else if d.Verdict == engine.VerdictTampered && d.Reason != engine.ReasonMetadata {
			label = "Bad generation"
		}
		v := []Span{num(d.Generation)}
		if !d.Created.IsZero() {
			v = append(v, lit("\nwritten "+fmtTime(d.Created)))
		}
		m.Fields = append(m.Fields, Field{label, v})
	}
	if d.Incident != "" {
		m.Fields = append(m.Fields, Field{"Incident", []Span{val(d.Incident)}})
	}
	m.ConsoleURL = consoleURL(o.ConsoleBase, d.Bucket, d.Object)
	if u := logsURL(o.ConsoleBase, d.Bucket, d.Object); len(u) <= maxButtonURL {
		m.Actions = append(m.Actions, Button{Text: "Writes in Logs Explorer", URL: u})
	}
	m.Actions = append(m.Actions, Button{Text: "Runbook", URL: o.RunbookURL})
	m.Footer = fromFooter(o)
	m.Blocks = blocks(m)
	m.Fallback = fallback(m)
	return m
}

// fromFooter is the footer's "From": tamperguard's version and the deployment.
func fromFooter(o RenderOptions) []Field {
	var by []Span
	if o.Version != "" {
		by = append(by, lit("tamperguard "), val(o.Version))
	}
	if o.Deployment != "" {
		if len(by) > 0 {
			by = append(by, lit(" · "))
		}
		by = append(by, lit("deployment "), val(o.Deployment))
	}
	if len(by) == 0 {
		return nil
	}
	return []Field{{"From", by}}
}
