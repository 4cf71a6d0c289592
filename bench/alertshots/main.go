// Command alertshots renders tamperguard's Slack alerts as Slack would show them, to PNG
// files, so that a person can look at every kind of alert before it ships.
//
//	go run ./bench/alertshots [-in testdata/alerts] [-out /tmp/alertshots] [-chromium /usr/bin/chromium]
//
// It reads each golden Block Kit file (testdata/alerts/KIND.json, the blocks exactly as
// they are sent), writes an HTML approximation of Slack's rendering of them (header,
// sections with mrkdwn text and fields, context, dividers, actions with buttons; mrkdwn's
// *bold*, _italic_, `code`, ```blocks```, <url|links> and &amp; entities), and screenshots
// it with headless Chromium. Without Chromium it writes the HTML only and says how to get
// it (Debian: apt-get install chromium).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

type text struct {
	Type  string `json:"type"`
	Text  string `json:"text"`
	Emoji bool   `json:"emoji"`
}

type element struct {
	Type  string `json:"type"`
	Text  *text  `json:"text"`
	URL   string `json:"url"`
	Style string `json:"style"`
	// context elements are texts themselves
	TextValue string `json:"-"`
}

type block struct {
	Type     string            `json:"type"`
	Text     *text             `json:"text"`
	Fields   []text            `json:"fields"`
	Elements []json.RawMessage `json:"elements"`
}

func main() {
	in := flag.String("in", "testdata/alerts", "directory of golden Block Kit files (KIND.json)")
	out := flag.String("out", filepath.Join(os.TempDir(), "alertshots"), "where the HTML and PNG files go")
	chromium := flag.String("chromium", "", "Chromium binary (default: chromium or chromium-browser on PATH)")
	width := flag.Int("width", 760, "viewport width in CSS pixels (a Slack message pane)")
	flag.Parse()
	if err := run(*in, *out, *chromium, *width); err != nil {
		fmt.Fprintln(os.Stderr, "alertshots:", err)
		os.Exit(1)
	}
}

func run(in, out, chromium string, width int) error {
	files, err := filepath.Glob(filepath.Join(in, "*.json"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no *.json in %s", in)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if chromium == "" {
		for _, c := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(c); err == nil {
				chromium = p
				break
			}
		}
	}
	for _, f := range files {
		kind := strings.TrimSuffix(filepath.Base(f), ".json")
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var blocks []block
		if err := json.Unmarshal(b, &blocks); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		page := filepath.Join(out, kind+".html")
		if err := os.WriteFile(page, []byte(render(kind, blocks)), 0o644); err != nil {
			return err
		}
		if chromium == "" {
			fmt.Printf("%s: %s (no Chromium: install it, e.g. apt-get install chromium, for the PNG)\n", kind, page)
			continue
		}
		png := filepath.Join(out, kind+".png")
		height := 300 + 26*lines(blocks)
		cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
			"--user-data-dir="+filepath.Join(out, ".chromium"),
			fmt.Sprintf("--window-size=%d,%d", width, height), "--screenshot="+png, "file://"+page)
		if o, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("chromium on %s: %v\n%s", page, err, o)
		}
		fmt.Printf("%s: %s\n", kind, png)
	}
	return nil
}

// lines estimates the rendered height of blocks, in text lines.
func lines(blocks []block) int {
	n := 0
	for _, b := range blocks {
		n += 2
		if b.Text != nil {
			n += strings.Count(b.Text.Text, "\n") + len(b.Text.Text)/90
		}
		for _, f := range b.Fields {
			n += (strings.Count(f.Text, "\n") + 1 + len(f.Text)/45) / 2
		}
		n += len(b.Elements)
	}
	return n
}

const style = `
body { font: 15px/1.46668 -apple-system, "Segoe UI", "Helvetica Neue", Helvetica, Arial, sans-serif; color: #1d1c1d; margin: 0; background: #fff; }
.msg { display: flex; padding: 12px 20px; }
.avatar { width: 36px; height: 36px; border-radius: 6px; background: #b01e1e; color: #fff; font-weight: 700; display: flex; align-items: center; justify-content: center; margin-right: 8px; flex: none; }
.body { flex: 1; min-width: 0; }
.who { font-weight: 900; } .who span { font-weight: 400; color: #616061; font-size: 12px; margin-left: 4px; }
.header { font-size: 18px; font-weight: 900; margin: 6px 0 4px; }
.section { margin: 4px 0; white-space: pre-wrap; overflow-wrap: anywhere; }
.fields { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 16px; margin: 6px 0; }
.fields div { white-space: pre-wrap; overflow-wrap: anywhere; }
.context { color: #616061; font-size: 12px; margin: 4px 0; white-space: pre-wrap; overflow-wrap: anywhere; }
.context span + span::before { content: "  "; }
hr { border: 0; border-top: 1px solid #ddd; margin: 8px 0; }
code { font: 12px Monaco, Menlo, Consolas, monospace; color: #e01e5a; background: #f8f8f8; border: 1px solid #e8e8e8; border-radius: 3px; padding: 0 3px; }
pre { font: 12px/1.5 Monaco, Menlo, Consolas, monospace; background: #f8f8f8; border: 1px solid #e8e8e8; border-radius: 4px; padding: 8px; margin: 4px 0; white-space: pre-wrap; overflow-wrap: anywhere; }
a { color: #1264a3; text-decoration: none; }
.actions { margin: 8px 0; display: flex; flex-wrap: wrap; gap: 8px; }
.button { border: 1px solid #bbb; border-radius: 4px; padding: 3px 12px; font-weight: 700; font-size: 13px; color: #1d1c1d; background: #fff; }
.button.primary { background: #007a5a; border-color: #007a5a; color: #fff; }
.button.danger { background: #e01e5a; border-color: #e01e5a; color: #fff; }
.kind { color: #999; font-size: 11px; padding: 4px 20px 0; }
`

func render(kind string, blocks []block) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<!doctype html><html><head><meta charset=utf-8><style>%s</style></head><body>", style)
	fmt.Fprintf(&b, `<div class=kind>%s (an approximation of Slack's rendering)</div>`, html.EscapeString(kind))
	b.WriteString(`<div class=msg><div class=avatar>TG</div><div class=body><div class=who>tamperguard<span>APP  10:00 AM</span></div>`)
	for _, bl := range blocks {
		switch bl.Type {
		case "header":
			if bl.Text != nil {
				fmt.Fprintf(&b, `<div class=header>%s</div>`, plain(bl.Text.Text))
			}
		case "section":
			if bl.Text != nil {
				fmt.Fprintf(&b, `<div class=section>%s</div>`, mrkdwn(bl.Text))
			}
			if len(bl.Fields) > 0 {
				b.WriteString(`<div class=fields>`)
				for _, f := range bl.Fields {
					fmt.Fprintf(&b, `<div>%s</div>`, mrkdwn(&f))
				}
				b.WriteString(`</div>`)
			}
		case "context":
			b.WriteString(`<div class=context>`)
			for _, raw := range bl.Elements {
				var t text
				if json.Unmarshal(raw, &t) == nil && t.Text != "" {
					fmt.Fprintf(&b, `<span>%s</span>`, mrkdwn(&t))
				}
			}
			b.WriteString(`</div>`)
		case "divider":
			b.WriteString(`<hr>`)
		case "actions":
			b.WriteString(`<div class=actions>`)
			for _, raw := range bl.Elements {
				var e element
				if json.Unmarshal(raw, &e) != nil || e.Text == nil {
					continue
				}
				fmt.Fprintf(&b, `<a class="button %s" href="%s">%s</a>`, html.EscapeString(e.Style), html.EscapeString(e.URL), plain(e.Text.Text))
			}
			b.WriteString(`</div>`)
		default:
			fmt.Fprintf(&b, `<div class=section><i>(block type %s not drawn)</i></div>`, html.EscapeString(bl.Type))
		}
	}
	b.WriteString(`</div></div></body></html>`)
	return b.String()
}

// plain renders plain_text: Slack shows it as is (zero-width spaces included, invisibly).
func plain(s string) string { return html.EscapeString(s) }

var (
	codeBlock = regexp.MustCompile("(?s)```(.*?)```")
	codeSpan  = regexp.MustCompile("`([^`\n]*)`")
	link      = regexp.MustCompile(`&lt;(https?://[^|&]*?)(?:\|([^&]*?))?&gt;`)
	bold      = regexp.MustCompile(`(^|[\s(])\*([^*\n]+)\*`)
	italic    = regexp.MustCompile(`(^|[\s(])_([^_\n]+)_`)
)

// mrkdwn renders Slack's mrkdwn closely enough to judge an alert: code first (nothing is
// formatted inside it), then links, bold and italic. Slack's own entities (&amp; &lt; &gt;)
// arrive escaped in the text and are shown as the characters they stand for.
func mrkdwn(t *text) string {
	if t.Type == "plain_text" {
		return plain(t.Text)
	}
	// Raw < and > in Slack's text delimit links; Slack's own entities stand for literal
	// characters. After HTML escaping, links are &lt;…&gt; and entities &amp;lt; and so on.
	s := html.EscapeString(t.Text)
	var saved []string
	keep := func(h string) string {
		saved = append(saved, h)
		return fmt.Sprintf("\x00%d\x00", len(saved)-1)
	}
	s = codeBlock.ReplaceAllStringFunc(s, func(m string) string {
		return keep("<pre>" + strings.Trim(codeBlock.FindStringSubmatch(m)[1], "\n") + "</pre>")
	})
	s = codeSpan.ReplaceAllStringFunc(s, func(m string) string {
		return keep("<code>" + codeSpan.FindStringSubmatch(m)[1] + "</code>")
	})
	s = link.ReplaceAllStringFunc(s, func(m string) string {
		p := link.FindStringSubmatch(m)
		label := p[2]
		if label == "" {
			label = p[1]
		}
		return keep(`<a href="` + p[1] + `">` + label + `</a>`)
	})
	s = bold.ReplaceAllString(s, "$1<b>$2</b>")
	s = italic.ReplaceAllString(s, "$1<i>$2</i>")
	for i, h := range saved {
		s = strings.Replace(s, fmt.Sprintf("\x00%d\x00", i), h, 1)
	}
	return slackEntities.Replace(s)
}

// slackEntities shows Slack's &amp; &lt; &gt; (HTML-escaped once more above) as the
// characters they stand for.
var slackEntities = strings.NewReplacer("&amp;amp;", "&amp;", "&amp;lt;", "&lt;", "&amp;gt;", "&gt;")
