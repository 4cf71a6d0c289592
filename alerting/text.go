package alerting

import (
	"fmt"
	"strings"

	"github.com/slack-go/slack"
)

// mrkdwn builds Slack mrkdwn within a length budget. Its own syntax (labels in bold, code
// fences) is written raw; every other text goes through escape. Once something does not
// fit, the text ends with "…" and nothing more is added.
type mrkdwn struct {
	b    strings.Builder
	used int
	max  int
	full bool
}

func newMrkdwn(max int) *mrkdwn { return &mrkdwn{max: max} }

func (w *mrkdwn) room() int { return w.max - w.used }

func (w *mrkdwn) put(s string) bool {
	if w.full {
		return false
	}
	n := textLen(s)
	if n > w.room()-1 { // keep room for the ellipsis
		w.full = true
		if w.room() >= 1 {
			w.b.WriteString(ellipsis)
			w.used++
		}
		return false
	}
	w.b.WriteString(s)
	w.used += n
	return true
}

// raw writes tamperguard's own syntax.
func (w *mrkdwn) raw(s string) bool { return w.put(s) }

// text writes words, keeping their line breaks.
func (w *mrkdwn) text(s string) bool {
	for i, line := range strings.Split(s, "\n") {
		if i > 0 && !w.put("\n") {
			return false
		}
		if line == "" {
			continue
		}
		e := escape(line, max(w.room()-1, 1), modeSlack, false)
		if strings.HasSuffix(e, ellipsis) && !strings.HasSuffix(line, ellipsis) {
			w.put(e) // fits by construction; then stop
			w.full = true
			return false
		}
		if !w.put(e) {
			return false
		}
	}
	return true
}

// code writes an inline code span; a cut span is still closed.
func (w *mrkdwn) code(s string) bool {
	if w.full || w.room() < 4 {
		w.put("`…`")
		return false
	}
	e := escape(s, w.room()-3, modeSlack, false)
	cut := strings.HasSuffix(e, ellipsis) && !strings.HasSuffix(s, ellipsis)
	w.put("`" + e + "`")
	if cut {
		w.full = true
		return false
	}
	return true
}

func (w *mrkdwn) spans(v []Span) bool {
	for _, s := range v {
		var ok bool
		if s.Code {
			ok = w.code(s.Text)
		} else {
			ok = w.text(s.Text)
		}
		if !ok {
			return false
		}
	}
	return true
}

func (w *mrkdwn) String() string { return w.b.String() }

func mrkdwnText(s string) *slack.TextBlockObject {
	// verbatim: Slack does not turn URLs or channel names into links or parse mentions.
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, true)
}

func section(s string) slack.Block { return slack.NewSectionBlock(mrkdwnText(s), nil, nil) }

// blocks lays the message out in Block Kit, within Slack's limits.
func blocks(m Message) []slack.Block {
	var bs []slack.Block
	bs = append(bs, slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, headerText(m.Header, MaxHeaderText), false, false)))
	{
		w := newMrkdwn(MaxSectionText)
		w.raw("*")
		w.text(m.Title)
		w.raw("*")
		if len(m.Lead.Value) > 0 {
			// Who wrote it (or what was found) comes right under the title; the summary gets
			// a section of its own, so that a long lead never cuts it.
			w.raw("\n*" + m.Lead.Label + "* ")
			w.spans(m.Lead.Value)
			bs = append(bs, section(w.String()))
			w = newMrkdwn(MaxSectionText)
			if m.Summary != "" {
				w.text(m.Summary)
				bs = append(bs, section(w.String()))
			}
		} else {
			if m.Summary != "" {
				w.raw("\n")
				w.text(m.Summary)
			}
			bs = append(bs, section(w.String()))
		}
	}
	if len(m.Actions) > 0 {
		var els []slack.BlockElement
		for i, b := range m.Actions {
			btn := slack.NewButtonBlockElement(fmt.Sprintf("tamperguard_%d", i), "", slack.NewTextBlockObject(slack.PlainTextType, b.Text, false, false))
			btn.URL = b.URL
			if b.Style != "" {
				btn.Style = slack.Style(b.Style)
			}
			els = append(els, btn)
		}
		bs = append(bs, slack.NewActionBlock("tamperguard_actions", els...))
	}
	for i := 0; i < len(m.Fields); i += MaxFields {
		var fs []*slack.TextBlockObject
		for _, f := range m.Fields[i:min(i+MaxFields, len(m.Fields))] {
			w := newMrkdwn(MaxFieldText)
			w.raw("*" + f.Label + "*\n")
			w.spans(f.Value)
			fs = append(fs, mrkdwnText(w.String()))
		}
		bs = append(bs, slack.NewSectionBlock(nil, fs, nil))
	}
	for _, det := range m.Details {
		w := newMrkdwn(MaxSectionText)
		w.raw("*" + det.Title + "*")
		for _, item := range det.Items {
			if !w.raw("\n• ") || !w.spans(item) {
				break
			}
		}
		bs = append(bs, section(w.String()))
	}
	if m.ChangeSummary != "" {
		w := newMrkdwn(MaxSectionText)
		w.raw("*What changed*: ")
		w.text(m.ChangeSummary)
		if m.DiffCut > 0 {
			w.text(fmt.Sprintf(" (%s not shown)", plural(m.DiffCut, "changed line")))
		}
		bs = append(bs, section(w.String()))
	}
	bs = append(bs, diffBlocks(m.Diff)...)
	if len(m.Indicators) > 0 {
		w := newMrkdwn(MaxSectionText)
		w.raw("*Reached by the added lines* (defanged)")
		for _, ind := range m.Indicators {
			if !w.raw("\n") || !w.code(ind) {
				break
			}
		}
		if m.MoreIndicators > 0 {
			w.text(fmt.Sprintf("\nand %d more", m.MoreIndicators))
		}
		bs = append(bs, section(w.String()))
	}
	if len(m.Footer) > 0 {
		var els []slack.MixedElement
		for _, f := range m.Footer {
			w := newMrkdwn(MaxContextText)
			w.raw(f.Label + ": ")
			w.spans(f.Value)
			els = append(els, mrkdwnText(w.String()))
		}
		bs = append(bs, slack.NewContextBlock("", els...))
	}
	if len(bs) > MaxBlocks {
		bs = bs[:MaxBlocks]
	}
	return bs
}

// diffBlocks puts the diff lines in code blocks, as many sections as needed.
func diffBlocks(lines []string) []slack.Block {
	var bs []slack.Block
	const fence = "```"
	var cur []string
	used := 0
	flush := func() {
		if len(cur) > 0 {
			bs = append(bs, section(fence+strings.Join(cur, "\n")+fence))
			cur, used = nil, 0
		}
	}
	for _, l := range lines {
		e := escape(l, MaxSectionText-8, modeSlack, false)
		n := textLen(e) + 1
		if used+n > MaxSectionText-2*len(fence)-1 {
			flush()
		}
		cur = append(cur, e)
		used += n
	}
	flush()
	return bs
}

// fallback is the message's text for notifications and clients that do not show blocks:
// the same content as the blocks, without the diff, escaped the same way.
func fallback(m Message) string {
	w := newMrkdwn(MaxFallbackText)
	w.text(m.State + ": ")
	w.code(m.Object)
	w.text("\n" + m.Title + ".")
	if len(m.Lead.Value) > 0 {
		w.text(" " + m.Lead.Label + ": ")
		w.spans(oneLine(m.Lead.Value))
		w.text(".")
	}
	if m.Summary != "" {
		w.text(" " + m.Summary)
	}
	for _, f := range m.Fields {
		w.text("\n" + f.Label + ": ")
		w.spans(oneLine(f.Value))
	}
	for _, det := range m.Details {
		w.text("\n" + det.Title + ":")
		for _, item := range det.Items {
			w.text("\n- ")
			w.spans(item)
		}
	}
	if m.ChangeSummary != "" {
		w.text("\nWhat changed: " + m.ChangeSummary)
	}
	if len(m.Indicators) > 0 {
		w.text("\nReached by the added lines (defanged):")
		for _, ind := range m.Indicators {
			w.text(" ")
			w.code(ind)
		}
	}
	for _, f := range m.Footer {
		w.text("\n" + f.Label + ": ")
		w.spans(f.Value)
	}
	return w.String()
}

// oneLine joins the lines of tamperguard's own words with " · ".
func oneLine(v []Span) []Span {
	out := make([]Span, len(v))
	for i, s := range v {
		if !s.Code {
			s.Text = strings.ReplaceAll(s.Text, "\n", " · ")
		}
		out[i] = s
	}
	return out
}

func plainSpans(v []Span) string {
	var b strings.Builder
	for _, s := range oneLine(v) {
		b.WriteString(s.Text)
	}
	return b.String()
}

// Text is the alert as plain text, as a person reads it in Slack: for the log, the demo,
// and wherever Slack is not configured. Values from outside are cleaned of control
// characters, bidi overrides and invalid UTF-8 and bounded, but not escaped for Slack.
func Text(m Message) string {
	var b strings.Builder
	b.WriteString(m.Header)
	b.WriteString("\n\n")
	b.WriteString(m.Title)
	b.WriteString("\n")
	if len(m.Lead.Value) > 0 {
		fmt.Fprintf(&b, "%s: %s\n", m.Lead.Label, plainSpans(m.Lead.Value))
	}
	if m.Summary != "" {
		b.WriteString(m.Summary)
		b.WriteString("\n")
	}
	b.WriteString("\n")
	for _, f := range m.Fields {
		fmt.Fprintf(&b, "%s: %s\n", f.Label, plainSpans(f.Value))
	}
	for _, det := range m.Details {
		fmt.Fprintf(&b, "\n%s:\n", det.Title)
		for _, item := range det.Items {
			fmt.Fprintf(&b, "  - %s\n", plainSpans(item))
		}
	}
	if m.ChangeSummary != "" {
		fmt.Fprintf(&b, "\nWhat changed: %s", m.ChangeSummary)
		if m.DiffCut > 0 {
			fmt.Fprintf(&b, " (%s not shown)", plural(m.DiffCut, "changed line"))
		}
		b.WriteString("\n")
	}
	for _, l := range m.Diff {
		b.WriteString("    ")
		b.WriteString(l)
		b.WriteString("\n")
	}
	if len(m.Indicators) > 0 {
		b.WriteString("\nReached by the added lines (defanged):\n")
		for _, ind := range m.Indicators {
			fmt.Fprintf(&b, "  %s\n", ind)
		}
		if m.MoreIndicators > 0 {
			fmt.Fprintf(&b, "  and %d more\n", m.MoreIndicators)
		}
	}
	if len(m.Footer) > 0 {
		b.WriteString("\n")
		for _, f := range m.Footer {
			fmt.Fprintf(&b, "%s: %s\n", f.Label, plainSpans(f.Value))
		}
	}
	if len(m.Actions) > 0 {
		b.WriteString("\n")
		for _, a := range m.Actions {
			fmt.Fprintf(&b, "%s: %s\n", a.Text, a.URL)
		}
	}
	return b.String()
}
