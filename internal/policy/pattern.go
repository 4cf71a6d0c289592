package policy

import (
	"fmt"
	"path"
	"strings"
)

// TagPlaceholder may stand in an object pattern (and a rule's tag and entry) for the release
// tag.
const TagPlaceholder = "{tag}"

// Pattern matches object names: an exact name, a path.Match glob, or a glob with one
// "{tag}" that captures the release tag from the name (no "/" in it).
type Pattern struct {
	raw    string
	glob   bool
	hasTag bool
	// With hasTag: the glob segments before and after the segment holding {tag}, and that
	// segment's glob split around {tag}.
	segs            []string
	tagSeg          int
	tagPre, tagPost string
}

// CompilePattern checks raw and returns its matcher. Errors name the pattern and what is
// wrong with it.
func CompilePattern(raw string) (Pattern, error) {
	if raw == "" {
		return Pattern{}, fmt.Errorf("empty object pattern")
	}
	if strings.HasPrefix(raw, "/") {
		return Pattern{}, fmt.Errorf("object pattern %q starts with \"/\": object names have no leading slash", raw)
	}
	if strings.HasPrefix(raw, "gs://") {
		return Pattern{}, fmt.Errorf("object pattern %q: give the object name only; the bucket has its own field", raw)
	}
	p := Pattern{raw: raw, glob: strings.ContainsAny(raw, `*?[\`)}
	if n := strings.Count(raw, TagPlaceholder); n > 1 {
		return Pattern{}, fmt.Errorf("object pattern %q: %s may appear once", raw, TagPlaceholder)
	} else if n == 1 {
		p.hasTag = true
		p.segs = strings.Split(raw, "/")
		for i, s := range p.segs {
			if before, after, ok := strings.Cut(s, TagPlaceholder); ok {
				p.tagSeg, p.tagPre, p.tagPost = i, before, after
			}
		}
		for i, s := range p.segs {
			if i != p.tagSeg {
				if _, err := path.Match(s, ""); err != nil {
					return Pattern{}, fmt.Errorf("object pattern %q: bad glob %q: %w", raw, s, err)
				}
			}
		}
		for _, part := range []string{p.tagPre, p.tagPost} {
			if _, err := path.Match(part, ""); err != nil {
				return Pattern{}, fmt.Errorf("object pattern %q: bad glob %q: %w", raw, part, err)
			}
		}
		return p, nil
	}
	if p.glob {
		if _, err := path.Match(raw, ""); err != nil {
			return Pattern{}, fmt.Errorf("object pattern %q: bad glob: %w", raw, err)
		}
	}
	return p, nil
}

// String is the pattern as written.
func (p *Pattern) String() string { return p.raw }

// HasTag reports whether the pattern captures the release tag ("{tag}").
func (p *Pattern) HasTag() bool { return p.hasTag }

// exact reports whether the pattern names one object (no glob, no {tag}).
func (p *Pattern) exact() bool { return !p.glob && !p.hasTag }

// Match reports whether name matches and, for a {tag} pattern, the tag it names. It does
// not allocate for names that do not match (most events in a busy bucket).
func (p *Pattern) Match(name string) (tag string, ok bool) {
	switch {
	case p.hasTag:
		return p.matchTag(name)
	case p.glob:
		ok, _ := path.Match(p.raw, name)
		return "", ok
	default:
		return "", name == p.raw
	}
}

func (p *Pattern) matchTag(name string) (string, bool) {
	rest := name
	var seg string
	for i := range p.segs {
		last := i == len(p.segs)-1
		if last {
			seg, rest = rest, ""
			if strings.Contains(seg, "/") {
				return "", false
			}
		} else {
			var ok bool
			seg, rest, ok = strings.Cut(rest, "/")
			if !ok {
				return "", false
			}
		}
		if i == p.tagSeg {
			continue
		}
		if ok, _ := path.Match(p.segs[i], seg); !ok {
			return "", false
		}
	}
	// Second pass for the tag segment (cheap: names rarely get here).
	seg = segment(name, p.tagSeg)
	// Leftmost start, longest tag: "v{tag}" on "v1.2.3" gives "1.2.3". If the leftmost
	// start has no end after it, no later start has one either, so this is linear in
	// path.Match calls however hostile the name.
	start := -1
	for i := 0; i <= len(seg); i++ {
		if ok, _ := path.Match(p.tagPre, seg[:i]); ok {
			start = i
			break
		}
	}
	if start < 0 {
		return "", false
	}
	for j := len(seg); j > start; j-- {
		if ok, _ := path.Match(p.tagPost, seg[j:]); ok {
			return seg[start:j], true
		}
	}
	return "", false
}

func segment(name string, n int) string {
	for ; n > 0; n-- {
		_, name, _ = strings.Cut(name, "/")
	}
	s, _, _ := strings.Cut(name, "/")
	return s
}

// literalPrefix is the part of the pattern before any glob character or {tag}: what a
// listing can be narrowed to.
func (p *Pattern) literalPrefix() string {
	end := len(p.raw)
	if i := strings.IndexAny(p.raw, `*?[\`); i >= 0 {
		end = i
	}
	if i := strings.Index(p.raw, TagPlaceholder); i >= 0 && i < end {
		end = i
	}
	return p.raw[:end]
}
