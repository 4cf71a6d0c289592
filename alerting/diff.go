package alerting

import (
	"bytes"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// How a tampered object's bytes differ from the signed ones.
const (
	ChangeTruncated = "truncated" // the bad bytes are a prefix of the good ones
	ChangeAppended  = "appended"  // the good bytes are a prefix of the bad ones
	ChangeModified  = "modified"  // text, changed in place
	ChangeReplaced  = "replaced"  // binary, changed
)

// Bounds of the diff shown in an alert.
const (
	maxDiffLines     = 40  // lines shown, hunk headers and cut markers included
	maxDiffLineRunes = 200 // per line, its +/-/space prefix included
	diffContext      = 3   // unchanged lines around a change
	maxRemovedRun    = 8   // consecutive removed lines shown before a cut
	maxAddedRun      = 20  // consecutive added lines shown before a cut
	maxDiffSideLines = 200000
	maxMyersWork     = 20_000_000 // bound on (n+m)·D for the line diff
	maxMyersD        = 500
	maxTextBytes     = 64 << 20 // larger samples are not treated as text
)

// contentChange is what an alert says about the bytes themselves.
type contentChange struct {
	Kind           string
	Text           bool     // both sides are text: Lines and Indicators are meaningful
	Partial        bool     // too many lines: the diff covers the first maxDiffSideLines only
	Lines          []string // the bounded unified diff, for display (cleaned)
	Added, Removed int      // lines only in the bad / only in the good bytes
	Cut            int      // changed lines not shown
	Indicators     []string // defanged URLs, hosts and IPs from added lines, for display
	MoreIndicators int      // indicators found but not listed
}

// analyze compares the signed (good) and the tampered (bad) bytes. It returns nil when
// either is missing or they are equal.
func analyze(good, bad []byte) *contentChange {
	if good == nil || bad == nil || bytes.Equal(good, bad) {
		return nil
	}
	c := &contentChange{}
	text := isText(good) && isText(bad)
	switch {
	case bytes.HasPrefix(good, bad):
		c.Kind = ChangeTruncated
	case bytes.HasPrefix(bad, good):
		c.Kind = ChangeAppended
	case text:
		c.Kind = ChangeModified
	default:
		c.Kind = ChangeReplaced
	}
	if !text {
		return c
	}
	c.Text = true
	lineDiff(c, good, bad)
	return c
}

// isText: no NUL byte and (nearly) valid UTF-8.
func isText(b []byte) bool {
	if len(b) > maxTextBytes || bytes.IndexByte(b, 0) >= 0 {
		return false
	}
	if utf8.Valid(b) {
		return true
	}
	bad := 0
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			bad++
		}
		i += n
	}
	return bad*100 <= len(b) // up to 1% stray bytes (a Latin-1 comment) is still text
}

// diffOp is one line of an edit script.
type diffOp struct {
	kind byte // ' ', '-', '+'
	line []byte
	a, b int // 0-based line numbers in good and bad (of the line, or where it would be)
}

// lineDiff fills c.Lines, Added, Removed, Cut and Indicators.
func lineDiff(c *contentChange, good, bad []byte) {
	// The changed region, widened to whole lines and then by diffContext lines each side.
	pre := commonPrefix(good, bad)
	pre = lineStart(good, pre)
	suf := commonSuffix(good[pre:], bad[pre:])
	gEnd, bEnd := len(good)-suf, len(bad)-suf
	for gEnd < len(good) && !(atLineStart(good, pre, gEnd) && atLineStart(bad, pre, bEnd)) {
		gEnd++
		bEnd++
	}
	ctxStart := pre
	for range diffContext {
		if ctxStart == 0 {
			break
		}
		ctxStart = lineStart(good, ctxStart-1)
	}
	gCtxEnd, bCtxEnd := gEnd, bEnd
	for range diffContext {
		nl := bytes.IndexByte(good[gCtxEnd:], '\n')
		if nl < 0 {
			gCtxEnd, bCtxEnd = len(good), len(bad)
			break
		}
		gCtxEnd += nl + 1
		bCtxEnd += nl + 1
	}
	firstLine := bytes.Count(good[:ctxStart], []byte{'\n'})
	a, aRest := splitLines(good[ctxStart:gCtxEnd], maxDiffSideLines)
	b, bRest := splitLines(bad[ctxStart:bCtxEnd], maxDiffSideLines)
	c.Partial = len(aRest) > 0 || len(bRest) > 0

	ops := diffLines(a, b)
	if ops == nil {
		ops = approxDiff(a, b)
	}
	for _, op := range ops {
		switch op.kind {
		case '+':
			c.Added++
		case '-':
			c.Removed++
		}
	}
	c.Lines, c.Cut = renderHunks(ops, firstLine)
	if c.Kind == ChangeTruncated {
		return // nothing was added: a cut line is only a piece of a signed one
	}

	// Indicators come from the lines of the bad bytes that are nowhere in the good ones, so
	// a URL that the signed file already had is not reported, whatever the diff looks like.
	goodSet := make(map[string]struct{}, len(a))
	for _, l := range a {
		goodSet[string(l)] = struct{}{}
	}
	ex := newExtractor()
	for _, l := range b {
		if _, ok := goodSet[string(l)]; !ok {
			ex.scan(l)
		}
	}
	for len(bRest) > 0 { // lines past the diff's bound are still read for indicators
		l := bRest
		if i := bytes.IndexByte(bRest, '\n'); i >= 0 {
			l, bRest = bRest[:i], bRest[i+1:]
		} else {
			bRest = nil
		}
		if _, ok := goodSet[string(l)]; !ok {
			ex.scan(l)
		}
	}
	c.Indicators, c.MoreIndicators = ex.list()
}

func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

func commonSuffix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[len(a)-1-i] == b[len(b)-1-i] {
		i++
	}
	return i
}

// lineStart is the start of the line holding offset i.
func lineStart(b []byte, i int) int {
	return bytes.LastIndexByte(b[:i], '\n') + 1
}

func atLineStart(b []byte, floor, i int) bool { return i == floor || b[i-1] == '\n' }

// splitLines splits b into at most max lines without their newlines, and returns what is
// left; a final newline ends the last line rather than starting an empty one.
func splitLines(b []byte, max int) (lines [][]byte, rest []byte) {
	if len(b) == 0 {
		return nil, nil
	}
	n := bytes.Count(b, []byte{'\n'})
	if b[len(b)-1] != '\n' {
		n++
	}
	out := make([][]byte, 0, min(n, max))
	for len(b) > 0 && len(out) < max {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			out = append(out, b)
			b = nil
			break
		}
		out = append(out, b[:i])
		b = b[i+1:]
	}
	return out, b
}

// diffLines is Myers' O(ND) diff over lines, or nil when the difference is too large to
// compute within its bounds.
func diffLines(a, b [][]byte) []diffOp {
	ids := map[string]int32{}
	intern := func(lines [][]byte) []int32 {
		out := make([]int32, len(lines))
		for i, l := range lines {
			id, ok := ids[string(l)]
			if !ok {
				id = int32(len(ids))
				ids[string(l)] = id
			}
			out[i] = id
		}
		return out
	}
	x, y := intern(a), intern(b)
	n, m := len(x), len(y)
	maxD := min(maxMyersD, n+m, maxMyersWork/(n+m+1))
	off := maxD + 1
	v := make([]int32, 2*maxD+3)
	var trace [][]int32 // trace[d] is v[off-d-1 : off+d+2] as it was before step d
	for d := 0; d <= maxD; d++ {
		lo, hi := off-d-1, off+d+2
		trace = append(trace, append([]int32(nil), v[lo:hi]...))
		for k := -d; k <= d; k += 2 {
			var xi int32
			if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
				xi = v[off+k+1]
			} else {
				xi = v[off+k-1] + 1
			}
			yi := xi - int32(k)
			for int(xi) < n && int(yi) < m && x[xi] == y[yi] {
				xi++
				yi++
			}
			v[off+k] = xi
			if int(xi) >= n && int(yi) >= m {
				return backtrack(trace, a, b, d)
			}
		}
	}
	return nil
}

// backtrack turns Myers' trace into an edit script, in order.
func backtrack(trace [][]int32, a, b [][]byte, dEnd int) []diffOp {
	var rev []diffOp
	x, y := len(a), len(b)
	for d := dEnd; d >= 0; d-- {
		snap := trace[d]
		get := func(k int) int { return int(snap[k+d+1]) } // snap index of diagonal k
		k := x - y
		var prevK int
		if k == -d || (k != d && get(k-1) < get(k+1)) {
			prevK = k + 1
		} else {
			prevK = k - 1
		}
		prevX := get(prevK)
		prevY := prevX - prevK
		for x > prevX && y > prevY {
			x--
			y--
			rev = append(rev, diffOp{kind: ' ', line: a[x], a: x, b: y})
		}
		if d == 0 {
			break
		}
		if x == prevX {
			y--
			rev = append(rev, diffOp{kind: '+', line: b[y], a: x, b: y})
		} else {
			x--
			rev = append(rev, diffOp{kind: '-', line: a[x], a: x, b: y})
		}
		x, y = prevX, prevY
	}
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	return rev
}

// approxDiff is the fallback for differences too large for diffLines: lines of good that
// bad lacks are removed, lines of bad that good lacks are added, the rest is context. It
// is not a minimal diff, but it is linear and it never hides an added line.
func approxDiff(a, b [][]byte) []diffOp {
	inA := make(map[string]struct{}, len(a))
	for _, l := range a {
		inA[string(l)] = struct{}{}
	}
	inB := make(map[string]struct{}, len(b))
	for _, l := range b {
		inB[string(l)] = struct{}{}
	}
	var ops []diffOp
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && bytes.Equal(a[i], b[j]):
			ops = append(ops, diffOp{kind: ' ', line: a[i], a: i, b: j})
			i++
			j++
		case i < len(a) && !has(inB, a[i]):
			ops = append(ops, diffOp{kind: '-', line: a[i], a: i, b: j})
			i++
		case j < len(b) && !has(inA, b[j]):
			ops = append(ops, diffOp{kind: '+', line: b[j], a: i, b: j})
			j++
		case i < len(a):
			ops = append(ops, diffOp{kind: '-', line: a[i], a: i, b: j}) // moved: shown as removed and added
			i++
		default:
			ops = append(ops, diffOp{kind: '+', line: b[j], a: i, b: j})
			j++
		}
	}
	return ops
}

func has(set map[string]struct{}, l []byte) bool { _, ok := set[string(l)]; return ok }

// renderHunks turns ops into bounded unified-diff lines (cleaned for display) and reports
// how many changed lines were left out. firstLine is the 0-based line number of ops[0].
func renderHunks(ops []diffOp, firstLine int) ([]string, int) {
	var out []string
	shown := 0
	total := 0
	for _, op := range ops {
		if op.kind != ' ' {
			total++
		}
	}
	emit := func(s string) bool {
		if len(out) >= maxDiffLines {
			return false
		}
		out = append(out, s)
		return true
	}
	i := 0
	for i < len(ops) && len(out) < maxDiffLines {
		// Next change.
		for i < len(ops) && ops[i].kind == ' ' {
			i++
		}
		if i == len(ops) {
			break
		}
		start := max(0, i-diffContext)
		for start < i && ops[start].kind != ' ' {
			start++
		}
		// Extend the hunk while the next change is within 2·context unchanged lines.
		end := i
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run < len(ops) && run-end <= 2*diffContext {
				end = run
				continue
			}
			end = min(end+diffContext, run)
			break
		}
		aStart, bStart := ops[start].a, ops[start].b
		aCount, bCount := 0, 0
		for _, op := range ops[start:end] {
			if op.kind != '+' {
				aCount++
			}
			if op.kind != '-' {
				bCount++
			}
		}
		if !emit(fmt.Sprintf("@@ -%s +%s @@", hunkRange(firstLine+aStart, aCount), hunkRange(firstLine+bStart, bCount))) {
			break
		}
		for j := start; j < end; {
			op := ops[j]
			if op.kind == ' ' {
				if !emit(diffLine(op)) {
					break
				}
				j++
				continue
			}
			run := j
			for run < end && ops[run].kind == op.kind {
				run++
			}
			limit := maxAddedRun
			what := "added"
			if op.kind == '-' {
				limit, what = maxRemovedRun, "removed"
			}
			k := j
			for ; k < run && k-j < limit; k++ {
				if !emit(diffLine(ops[k])) {
					break
				}
				shown++
			}
			if k < run && len(out) < maxDiffLines {
				if k-j == limit {
					emit(fmt.Sprintf("⋯ %d more %s lines", run-k, what))
				}
			}
			if len(out) >= maxDiffLines {
				break
			}
			j = run
		}
		i = end
	}
	return out, total - shown
}

func hunkRange(start, count int) string {
	if count == 0 {
		return strconv.Itoa(start) + ",0"
	}
	if count == 1 {
		return strconv.Itoa(start + 1)
	}
	return strconv.Itoa(start+1) + "," + strconv.Itoa(count)
}

// diffLine is one op as a bounded display line.
func diffLine(op diffOp) string {
	return string(op.kind) + escape(string(truncBytes(op.line, 4*maxDiffLineRunes+4)), maxDiffLineRunes-1, modeDisplay, true)
}

// truncBytes bounds b before it is converted to a string, so a 10 MB line is never copied.
func truncBytes(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	return b[:n+1] // one byte more than fits: escape sees there is more and cuts with "…"
}
