package alerting

import (
	"encoding/json"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/release"
)

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, slack, disp string }{
		{"<!channel>", "&lt;!channel&gt;", "<!channel>"},
		{"<@U123> <#C1|x>", "&lt;@\u200bU123&gt; &lt;#C1|x&gt;", "<@U123> <#C1|x>"},
		{"<https://evil|click>", "&lt;https://evil|click&gt;", "<https://evil|click>"},
		{"a & b", "a &amp; b", "a & b"},
		{"&lt;", "&amp;lt;", "&lt;"},
		{"@here @channel @everyone", "@\u200bhere @\u200bchannel @\u200beveryone", "@here @channel @everyone"},
		{"```x``` `y`", "ˋˋˋxˋˋˋ ˋyˋ", "```x``` `y`"},
		{"*b* _i_ ~s~", "*b* _i_ ~s~", "*b* _i_ ~s~"}, // inert inside the code spans they are put in
		{"a\nb\tc\x00\x1b[31m\x7f", "a␊b␉c␀␛[31m␡", "a␊b␉c␀␛[31m␡"},
		{"\xff\xfe ok \xc3", "\uFFFD\uFFFD ok \uFFFD", "\uFFFD\uFFFD ok \uFFFD"},
		{"evil\u202egnp.exe \u200b\u2066x\u2069 \u0085", "evil\uFFFDgnp.exe \uFFFD\uFFFDx\uFFFD \uFFFD", "evil\uFFFDgnp.exe \uFFFD\uFFFDx\uFFFD \uFFFD"},
		{"line\u2028sep", "line\uFFFDsep", "line\uFFFDsep"},
	} {
		assert.Equal(t, tc.slack, escape(tc.in, 0, modeSlack, false), "slack %q", tc.in)
		assert.Equal(t, tc.disp, escape(tc.in, 0, modeDisplay, false), "display %q", tc.in)
	}
	assert.Equal(t, "a    b", escape("a\tb", 0, modeDisplay, true))
	assert.Equal(t, "gs://evil.example/&lt;!here&gt;", headerText("gs://evil.example/<!here>", 0), "a header's path stays copyable; nothing in it can form a mention")
	assert.Equal(t, "gs://b/a@\u200bhere", headerText("gs://b/a@here", 0))
}

func TestEscapeBounds(t *testing.T) {
	// Never over the limit, never a split entity, always an ellipsis when cut.
	for _, in := range []string{strings.Repeat("<", 100), strings.Repeat("a&", 100), strings.Repeat("😀", 100), strings.Repeat("@x", 100)} {
		for limit := 1; limit < 60; limit++ {
			out := escape(in, limit, modeSlack, false)
			assert.LessOrEqual(t, textLen(out), limit, "%q at %d", in[:4], limit)
			assert.True(t, strings.HasSuffix(out, ellipsis), "%q at %d: %q", in[:4], limit, out)
			assert.True(t, utf8.ValidString(out))
			trimmed := strings.TrimSuffix(out, ellipsis)
			assert.Regexp(t, `^(?:&lt;|a&amp;|😀|@\x{200b}x|a|@\x{200b})*$`, trimmed)
		}
	}
	assert.Equal(t, "abc", escape("abc", 3, modeSlack, false), "an exact fit needs no ellipsis")
	assert.Equal(t, "ab…", escape("abcd", 3, modeSlack, false))
}

// Escaping a huge input costs what is kept, not what came: measured in bytes allocated
// (escaping all 10 MiB would allocate more than that), not in time, so that a loaded machine
// cannot fail it.
func TestEscapeOfHugeInputIsFast(t *testing.T) {
	huge := strings.Repeat("<!channel>", 1<<20) // 10 MiB
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	out := escape(huge, MaxSectionText, modeSlack, false)
	runtime.ReadMemStats(&after)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "escape must read only what it keeps")
	assert.LessOrEqual(t, textLen(out), MaxSectionText)
}

// payload is what an attacker puts in names and content: every way to mention, link or
// format in Slack, markers that must never be outside a code span ("PWNED"), control
// characters, a bidi override and invalid UTF-8.
const payload = "PWNED <!channel> <!here> <!everyone> <@U123> <#C123> <!subteam^S1> " +
	"<https://evil.example|click PWNED> `PWNED` ```PWNED``` *PWNED* _PWNED_ ~PWNED~ >PWNED " +
	"@channel @here @everyone :skull: &amp; &lt;!channel&gt; \x1b[2J\r\u202egnp.exe\xff\xfe"

func hostileDecision() *engine.Decision {
	good := []byte("#!/bin/sh\necho ok\n")
	huge := make([]byte, 0, 10<<20+200)
	huge = append(huge, "curl https://evil.example/"...)
	for len(huge) < 10<<20 {
		huge = append(huge, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA<!channel>"...)
	}
	bad := []byte("#!/bin/sh\necho ok\n" + payload + "\n")
	bad = append(bad, huge...)
	bad = append(bad, "\nwget "+payload+" http://a.example/`x`\n"...)
	return &engine.Decision{
		Bucket: "b<!here>", Object: "dir/" + payload + ".sh", Generation: 7,
		Verdict: engine.VerdictTampered, ExpectedSHA256: payload, ActualSHA256: payload, Size: int64(len(bad)),
		Release: payload, Signer: "openpgp:" + payload,
		Action: engine.ActionRestored, RestoredGeneration: 8,
		Error: payload,
		Detail: engine.Detail{
			ReleaseInfo:     testRelease(release.Skipped{Tag: payload}),
			Restored:        tRestored,
			Created:         tCreated,
			Source:          payload,
			Evidence:        payload,
			EventID:         payload,
			Kind:            engine.Kind(payload),
			BadCacheControl: payload,
			MetadataChanges: map[string][2]string{payload: {payload, payload}},
			Skipped:         []release.Skipped{{Tag: payload}},
			GoodContent:     good,
			BadContent:      bad,
		},
	}
}

func TestInjectionIsInert(t *testing.T) {
	d := hostileDecision()
	start := time.Now()
	m := Render(d, RenderOptions{Repeat: 2, FirstAlert: tFirst})
	elapsed := time.Since(start)
	assert.Less(t, elapsed, 5*time.Second, "a 10 MB line must render fast")
	assertWithinLimits(t, m)
	require.NotEmpty(t, m.Diff, "the content is text: a diff is shown")
	assert.Equal(t, []string{
		"hxxps://evil[.]example", "evil[.]example", // <https://evil.example|click>: the URL ends at the |
		"hxxps://evil[.]example/" + strings.Repeat("A", 63), // the 10 MB line: its URL ends at the first <
		"hxxp://a[.]example/", "a[.]example",
	}, m.Indicators)

	texts := slackTexts(t, m)
	require.NotEmpty(t, texts)
	for _, tx := range texts {
		assertInert(t, tx.text, tx.plain)
	}
	for _, r := range Text(m) {
		if r != '\n' {
			assert.False(t, unicode.IsControl(r) || unicode.Is(unicode.Cf, r), "Text holds %U", r)
		}
	}
}

func TestInjectionInEveryKind(t *testing.T) {
	for name, mk := range goldenCases() {
		d, o := mk()
		d.Bucket, d.Object, d.Error, d.Source, d.Evidence, d.EventID = payload, payload, payload, payload, payload, payload
		d.Release, d.Signer, d.BadCacheControl = payload, payload, payload
		if d.BadContent != nil {
			d.BadContent = append(append([]byte{}, d.BadContent...), payload+"\n"...)
		}
		m := Render(d, o)
		assertWithinLimits(t, m)
		for _, tx := range slackTexts(t, m) {
			assertInert(t, tx.text, tx.plain)
		}
		assert.NotContains(t, m.Header, "\x1b", name)
	}
}

func TestLongNamesKeepTheirEnd(t *testing.T) {
	d := &engine.Decision{Bucket: "b", Object: strings.Repeat("deep/", 300) + "install.sh", Verdict: engine.VerdictTampered, Action: engine.ActionRestored}
	m := Render(d, RenderOptions{})
	assert.True(t, strings.HasSuffix(m.Header, "install.sh"), m.Header)
	assert.LessOrEqual(t, textLen(headerText(m.Header, 0)), MaxHeaderText)
	assertWithinLimits(t, m)
}

type slackString struct {
	text  string
	plain bool // plain_text: Slack applies no formatting at all
}

// slackTexts are every text sent to Slack: the fallback and every text object in the
// blocks, as Slack receives them.
func slackTexts(t *testing.T, m Message) []slackString {
	t.Helper()
	raw, err := json.Marshal(m.Blocks)
	require.NoError(t, err)
	var v any
	require.NoError(t, json.Unmarshal(raw, &v))
	out := []slackString{{text: m.Fallback}}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if s, ok := x["text"].(string); ok {
				require.Contains(t, []any{"plain_text", "mrkdwn"}, x["type"])
				if x["type"] == "mrkdwn" {
					assert.Equal(t, true, x["verbatim"], "mrkdwn is sent verbatim: no automatic links or mentions")
				} else {
					assert.Equal(t, false, x["emoji"], "plain_text is sent without emoji parsing")
				}
				out = append(out, slackString{text: s, plain: x["type"] == "plain_text"})
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(v)
	return out
}

var (
	ourLink   = regexp.MustCompile(`^<https://console\.cloud\.google\.com/storage/browser/_details/[A-Za-z0-9._~%/-]+;tab=version_history\|Version history in the Cloud Console>$`)
	codeBlock = regexp.MustCompile("(?s)```.*?```")
	codeSpan  = regexp.MustCompile("`[^`\n]*`")
)

// assertInert checks that a text sent to Slack cannot mention, link or format anything
// that came from outside: no < or > but our own console link, no bare @mention, no control
// characters and, in mrkdwn, code spans and blocks closed and nothing from the payload
// outside them.
func assertInert(t *testing.T, text string, plain bool) {
	t.Helper()
	if ourLink.MatchString(text) {
		return
	}
	assert.NotContains(t, text, "<", "a raw < could open a mention or a link: %.200q", text)
	assert.NotContains(t, text, ">", "%.200q", text)
	for _, m := range []string{"@here", "@channel", "@everyone", "@U123"} {
		assert.NotContains(t, strings.ToLower(text), strings.ToLower(m), "%.200q", text)
	}
	for _, r := range text {
		if r != '\n' && r != '\u200b' {
			assert.False(t, unicode.IsControl(r) || unicode.Is(unicode.Cf, r), "control %U in %.200q", r, text)
		}
	}
	assert.True(t, utf8.ValidString(text))
	if plain {
		return // plain_text: Slack parses no links, mentions or formatting in it
	}
	outside := codeSpan.ReplaceAllString(codeBlock.ReplaceAllString(text, ""), "")
	assert.NotContains(t, outside, "`", "an unclosed code span in %.300q", text)
	assert.NotContains(t, outside, "PWNED", "payload outside a code span in %.300q", text)
	assert.NotContains(t, outside, "evil", "payload outside a code span in %.300q", text)
}
