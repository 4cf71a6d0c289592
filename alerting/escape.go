package alerting

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Slack's limits for the parts of a message (characters; counted here in UTF-16 code
// units, which is never less than what Slack counts).
const (
	MaxHeaderText   = 150
	MaxSectionText  = 3000
	MaxFieldText    = 2000
	MaxFields       = 10
	MaxContextText  = 2000
	MaxBlocks       = 50
	MaxFallbackText = 40000
)

// escMode says where escaped text goes.
type escMode uint8

const (
	// modeSlack: text for a Slack message (mrkdwn code span or block, plain_text, the
	// fallback text). Every value from an object, an event or Slack goes inside a code span
	// or block, where Slack applies no *bold*, _italic_, ~strike~, links or emoji; this mode
	// makes sure nothing can end the span or form a control sequence: & < > become entities
	// (so no <!channel>, <@U…>, <url|label> can form), backticks become ˋ (so no span or
	// block can be closed), a zero-width space follows every @ (so no @here, @channel,
	// @everyone), and controls, bidi overrides and invalid UTF-8 are replaced.
	modeSlack escMode = iota
	// modeHeader: a plain_text header, where Slack parses no links, mentions or formatting:
	// & < > become entities, a zero-width space follows every @, controls are replaced, and
	// nothing else changes, so that the gs:// path in it can be copied as it is.
	modeHeader
	// modeDisplay: what a person reads (Text, logs): controls, bidi overrides and invalid
	// UTF-8 replaced, nothing else changed.
	modeDisplay
)

const (
	ellipsis = "…"
	zwsp     = "\u200b"
)

// escape is the one function every untrusted byte goes through before it is shown. It
// returns at most max UTF-16 code units (max <= 0: unbounded), ending with "…" when s was
// cut, and never splits an entity or a rune. With expandTabs a tab becomes four spaces (diff
// lines); otherwise it is shown as ␉ like every other control character. It reads only as
// much of s as it needs, so a 10 MB line costs no more than a short one.
func escape(s string, max int, mode escMode, expandTabs bool) string {
	var b strings.Builder
	used := 0
	var piece [16]byte
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		p := mapRune(piece[:0], r, size, mode, expandTabs)
		w := utf16Len(p)
		if max > 0 && used+w > max-1 {
			// Fits only if it is the last piece and no ellipsis is needed.
			if i >= len(s) && used+w <= max {
				b.Write(p)
				return b.String()
			}
			b.WriteString(ellipsis)
			return b.String()
		}
		b.Write(p)
		used += w
	}
	return b.String()
}

// mapRune appends what r becomes in mode to dst.
func mapRune(dst []byte, r rune, size int, mode escMode, expandTabs bool) []byte {
	switch {
	case r == utf8.RuneError && size <= 1:
		return utf8.AppendRune(dst, utf8.RuneError)
	case r == '\t' && expandTabs:
		return append(dst, "    "...)
	case r < 0x20:
		return utf8.AppendRune(dst, 0x2400+r) // control pictures: ␀ … ␟
	case r == 0x7f:
		return utf8.AppendRune(dst, '␡')
	case r >= 0x80 && r <= 0x9f, r == 0x2028, r == 0x2029, unicode.Is(unicode.Cf, r):
		// C1 controls, line/paragraph separators, and format characters: bidi overrides
		// and isolates, zero-width characters, tags.
		return utf8.AppendRune(dst, utf8.RuneError)
	}
	if mode == modeHeader {
		switch r {
		case '&':
			return append(dst, "&amp;"...)
		case '<':
			return append(dst, "&lt;"...)
		case '>':
			return append(dst, "&gt;"...)
		case '@':
			return append(dst, "@"+zwsp...) // no @here, even in a client that parsed it
		}
	}
	if mode == modeSlack {
		switch r {
		case '&':
			return append(dst, "&amp;"...)
		case '<':
			return append(dst, "&lt;"...)
		case '>':
			return append(dst, "&gt;"...)
		case '`':
			return append(dst, "ˋ"...)
		case '@':
			return append(dst, "@"+zwsp...)
		}
	}
	return utf8.AppendRune(dst, r)
}

// utf16Len is the length of valid UTF-8 p in UTF-16 code units.
func utf16Len(p []byte) int {
	n := 0
	for _, c := range p {
		switch {
		case c < 0x80 || c >= 0xc0 && c < 0xf0:
			n++ // ASCII, or the lead byte of a rune in the BMP
		case c >= 0xf0:
			n += 2 // a rune outside the BMP: a surrogate pair
		}
	}
	return n
}

// textLen is the length of s in UTF-16 code units.
func textLen(s string) int { return utf16Len([]byte(s)) }

// display cleans untrusted s for a person to read, bounded to max.
func display(s string, max int) string { return escape(s, max, modeDisplay, false) }

// headerText is a header's text as sent to Slack (plain_text).
func headerText(s string, max int) string { return escape(s, max, modeHeader, false) }

// middle shortens s to at most max runes by cutting its middle, so both the start and the
// end (a file's extension) stay visible.
func middle(s string, max int) string {
	if utf8.RuneCountInString(s) <= max || max < 3 {
		return s
	}
	r := []rune(s)
	head := (max - 1) / 2
	tail := max - 1 - head
	return string(r[:head]) + ellipsis + string(r[len(r)-tail:])
}
