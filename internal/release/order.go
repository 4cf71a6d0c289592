package release

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"golang.org/x/mod/semver"

	"github.com/tamperguard/tamperguard/internal/checksum"
)

// canonicalSemver returns the tag as "vX.Y.Z..." when it is a semantic version, else "".
// Both "v1.2.3" and "1.2.3" count; "v1.2" does not (a release tag names a full version).
func canonicalSemver(tag string) string {
	v := tag
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	if !semver.IsValid(v) || strings.Count(coreVersion(v), ".") != 2 {
		return ""
	}
	return v
}

// coreVersion is "vX.Y.Z" without pre-release or build suffix.
func coreVersion(v string) string {
	return strings.SplitN(strings.SplitN(v, "-", 2)[0], "+", 2)[0]
}

// Mark is what signed data says about a release's place in time. The newest release that
// verified is a rule's high-water mark (anything older offered later is a rollback) and,
// with its Evidence, the floor the rule is judged against when nothing newer can be trusted.
type Mark struct {
	// Tag is the name the release was found under. For people only: it is not signed for a
	// GitHub release or a URL, so it never orders anything.
	Tag string `json:"tag"`
	// Version is the signed version (canonical "vX.Y.Z"), "" when nothing signed names one.
	Version string `json:"version,omitempty"`
	// Time is the signed time (tagger or OpenPGP signature), zero when there is none.
	Time time.Time `json:"time,omitzero"`
	// ID names what verified (a digest of the checksum file and its signature), "" when the
	// source keeps no evidence.
	ID string `json:"id,omitempty"`
	// Evidence lets the floor be verified again; nil when the source keeps none.
	Evidence *Evidence `json:"evidence,omitempty"`
	// Replaces, when saving, is the ID of the stored mark whose evidence no longer verifies
	// against the pinned keys (they were changed): the store overwrites it. Not stored.
	Replaces string `json:"-"`
}

// markOf is the order signed data gives rel.
func markOf(rel *Release) Mark {
	m := Mark{Tag: rel.Tag, Version: rel.Version, Time: rel.Time, Evidence: rel.Evidence}
	if rel.Evidence != nil {
		m.ID = evidenceID(rel.Evidence)
	}
	return m
}

// hasOrder reports whether signed data says anything about where m stands.
func (m Mark) hasOrder() bool { return m.Version != "" || !m.Time.IsZero() }

// NewerThan reports whether signed data shows m to be a newer release than o: by version when
// both carry one and they differ, else by signed time. Equal or incomparable marks are not newer.
func (m Mark) NewerThan(o Mark) bool {
	if m.Version != "" && o.Version != "" {
		if c := semver.Compare(m.Version, o.Version); c != 0 {
			return c > 0
		}
	}
	if m.Time.IsZero() || o.Time.IsZero() {
		return false
	}
	return m.Time.After(o.Time)
}

// comparableWith reports whether signed data can order m and o at all.
func (m Mark) comparableWith(o Mark) bool {
	return (m.Version != "" && o.Version != "") || (!m.Time.IsZero() && !o.Time.IsZero())
}

// String describes the mark for messages: "v1.2.0 (signed 2025-03-08T12:00:00Z)".
func (m Mark) String() string {
	name := m.Tag
	if name == "" {
		name = "the release"
	}
	var facts []string
	if m.Version != "" && m.Version != canonicalSemver(m.Tag) {
		facts = append(facts, "version "+m.Version)
	}
	if !m.Time.IsZero() {
		facts = append(facts, "signed "+m.Time.UTC().Format(time.RFC3339))
	}
	if len(facts) == 0 {
		return clip(name)
	}
	return clip(name) + " (" + strings.Join(facts, ", ") + ")"
}

// ErrUnordered: a release carries no signed time or version by which it could be shown not to
// be older than the floor, which does carry one. Refused: it may be an older release replayed.
var ErrUnordered = errors.New("release cannot be ordered after the last verified one")

// checkOrder refuses offered when the floor is newer, or when signed data cannot tell
// whether it is (the floor has a signed time or version, offered has none of that kind).
func checkOrder(source string, floor, offered Mark) error {
	switch {
	case floor.ID != "" && floor.ID == offered.ID:
		return nil // the very same signed bytes
	case floor.NewerThan(offered):
		return &RollbackError{Source: source, Offered: offered.String(), Seen: floor.String()}
	case floor.hasOrder() && !floor.comparableWith(offered):
		return fmt.Errorf("%w: %s: %s carries no signed time or version, and %s does (an older release signed with another scheme would look the same); if the maintainers moved to another signature scheme, remove the old key from the rule",
			ErrUnordered, source, offered.String(), floor.String())
	}
	return nil
}

// namedVersion is the one version that the checksum file's entry names carry
// (tool-1.2.0-linux-amd64.tar.gz, tool_v1.2.0.zip), "" when none or several do.
func namedVersion(f *checksum.File) string {
	found := ""
	for _, e := range f.Entries() {
		for _, v := range versionsIn(e.Name) {
			switch {
			case found == "":
				found = v
			case found != v:
				return ""
			}
		}
	}
	return found
}

// versionsIn finds "X.Y.Z" (optionally "vX.Y.Z") in a file name, as whole tokens: not part
// of a longer dotted number (python3.11.2.1) or of a word (x86).
func versionsIn(name string) []string {
	var out []string
	isWord := func(b byte) bool { return b < 0x80 && (unicode.IsLetter(rune(b)) || unicode.IsDigit(rune(b))) }
	for i := 0; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' {
			continue
		}
		start := i
		if start > 0 && name[start-1] == 'v' {
			start--
		}
		if start > 0 && (isWord(name[start-1]) || name[start-1] == '.') {
			for i < len(name) && (name[i] >= '0' && name[i] <= '9' || name[i] == '.') {
				i++
			}
			continue
		}
		j := i
		parts := 0
		for parts < 3 {
			k := j
			for k < len(name) && name[k] >= '0' && name[k] <= '9' {
				k++
			}
			if k == j || k-j > 9 {
				break
			}
			parts++
			j = k
			if parts < 3 {
				if j >= len(name) || name[j] != '.' {
					break
				}
				j++
			}
		}
		longer := j < len(name) && (name[j] >= '0' && name[j] <= '9' ||
			name[j] == '.' && j+1 < len(name) && name[j+1] >= '0' && name[j+1] <= '9')
		if parts == 3 && !longer {
			if v := canonicalSemver("v" + name[i:j]); v != "" {
				out = append(out, v)
			}
		}
		for i < len(name) && (name[i] >= '0' && name[i] <= '9' || name[i] == '.') {
			i++
		}
	}
	return out
}

// checkNamed refuses a checksum file whose entries name another version than the tag it was
// found under: an older signed checksum file replayed as a new release. found is where.
func checkNamed(found, tag string, f *checksum.File) (string, error) {
	named := namedVersion(f)
	tv := canonicalSemver(tag)
	if named != "" && tv != "" && coreVersion(tv) != named {
		return named, fmt.Errorf("%w: %s: the signed checksum file lists the files of version %s, not of %s (an older signed release offered under a newer name)",
			ErrRollback, found, named, clip(tag))
	}
	return named, nil
}

// prereleaseMarkers are the tag components that mark a pre-release outside semver, too:
// rc-8_22_0-2, 1.2.0rc1, nightly-2025-01-01.
var prereleaseMarkers = []string{"rc", "alpha", "beta", "pre", "dev", "nightly"}

// IsPrerelease reports whether tag names a pre-release: a semver pre-release, or a tag with
// one of rc, alpha, beta, pre, dev, nightly as a whole component (split at punctuation and
// between letters and digits).
func IsPrerelease(tag string) bool {
	if v := canonicalSemver(tag); v != "" && semver.Prerelease(v) != "" {
		return true
	}
	for _, c := range tagComponents(tag) {
		if slices.Contains(prereleaseMarkers, strings.ToLower(c)) {
			return true
		}
	}
	return false
}

// tagComponents splits a tag at every non-alphanumeric byte and between letters and digits.
func tagComponents(tag string) []string {
	var out []string
	start := -1
	kind := 0 // 1 letter, 2 digit
	for i, r := range tag {
		k := 0
		switch {
		case unicode.IsLetter(r):
			k = 1
		case unicode.IsDigit(r):
			k = 2
		}
		if k != kind && start >= 0 {
			out = append(out, tag[start:i])
			start = -1
		}
		if k != 0 && start < 0 {
			start = i
		}
		kind = k
	}
	if start >= 0 {
		out = append(out, tag[start:])
	}
	return out
}

// TagFilter says which tags may be a rule's "latest" release.
type TagFilter struct {
	pattern     string
	glob        string
	re          *regexp.Regexp
	prereleases bool
}

// NewTagFilter checks pattern: "" (every tag), a glob as path.Match reads it ("v*",
// "curl-*"), or "regexp:" and an RE2 expression that must match the whole tag. With
// prereleases, pre-release tags (see IsPrerelease) may be latest too.
func NewTagFilter(pattern string, prereleases bool) (*TagFilter, error) {
	f := &TagFilter{pattern: pattern, prereleases: prereleases}
	if expr, ok := strings.CutPrefix(pattern, "regexp:"); ok {
		if expr == "" {
			return nil, errors.New("regexp: needs an expression")
		}
		re, err := regexp.Compile(`^(?:` + expr + `)$`)
		if err != nil {
			return nil, fmt.Errorf("bad regexp %q: %v", expr, err)
		}
		f.re = re
		return f, nil
	}
	if pattern != "" {
		if _, err := path.Match(pattern, ""); err != nil {
			return nil, fmt.Errorf("bad glob %q: %v", pattern, err)
		}
		f.glob = pattern
	}
	return f, nil
}

// MatchPattern reports whether tag matches the pattern (pre-releases aside).
func (f *TagFilter) MatchPattern(tag string) bool {
	switch {
	case f == nil:
		return true
	case f.re != nil:
		return f.re.MatchString(tag)
	case f.glob != "":
		ok, _ := path.Match(f.glob, tag)
		return ok
	}
	return true
}

// Latest reports whether tag may be the latest release: it matches, and is not a
// pre-release unless pre-releases are allowed.
func (f *TagFilter) Latest(tag string) bool {
	return f.MatchPattern(tag) && (f != nil && f.prereleases || !IsPrerelease(tag))
}

// String is the filter as the configuration gave it.
func (f *TagFilter) String() string {
	if f == nil {
		return ""
	}
	s := f.pattern
	if f.prereleases {
		if s != "" {
			s += " "
		}
		s += "with pre-releases"
	}
	return s
}

// sortCandidates orders the candidates that filter allows newest first. When any tag is a
// semantic version, only semantic versions are kept (a stray "nightly" tag must not outrank
// v2.0.0). Otherwise candidates with a time are ordered by it (those without are dropped,
// but for candidates refused from the listing: they come last, to be reported, never
// fetched); when none has one, by their numbers (curl-8_21_0 before curl-8_9_1).
// Pre-releases are left out unless the filter allows
// them, as GitHub's "latest" leaves them out: a signed v2.0.0-rc1 must not make the stable
// script look tampered, nor rc-8_22_0-2 outrank curl-8_21_0.
func sortCandidates(cs []Candidate, filter *TagFilter) []Candidate {
	if len(cs) == 1 && cs[0].Tag == "" {
		return cs // a fixed URL: one release, no name
	}
	var versions, others []Candidate
	for _, c := range cs {
		if !filter.Latest(c.Tag) {
			continue
		}
		if canonicalSemver(c.Tag) != "" {
			versions = append(versions, c)
		} else {
			others = append(others, c)
		}
	}
	// Any semantic version among the tags, even one the filter leaves out, means only
	// semantic versions rank.
	if hasSemver(cs) {
		sort.SliceStable(versions, func(i, j int) bool {
			c := semver.Compare(canonicalSemver(versions[i].Tag), canonicalSemver(versions[j].Tag))
			if c != 0 {
				return c > 0
			}
			return versions[i].Tag < versions[j].Tag // "v1.0.0" and "1.0.0": a stable order
		})
		return versions
	}
	var timed, refused []Candidate
	for _, c := range others {
		switch {
		case !c.Time.IsZero():
			timed = append(timed, c)
		case c.Refused != nil:
			refused = append(refused, c)
		}
	}
	if len(timed) > 0 {
		// Those without a time cannot be ranked among those with one.
		others = append(timed, refused...)
	}
	sort.SliceStable(others, func(i, j int) bool {
		if !others[i].Time.Equal(others[j].Time) {
			return others[i].Time.After(others[j].Time)
		}
		return naturalLess(others[j].Tag, others[i].Tag)
	})
	return others
}

// naturalLess orders tags by their components, numbers as numbers: curl-8_9_1 < curl-8_21_0.
func naturalLess(a, b string) bool {
	ac, bc := tagComponents(a), tagComponents(b)
	for i := 0; i < len(ac) && i < len(bc); i++ {
		x, y := ac[i], bc[i]
		if x == y {
			continue
		}
		if isDigits(x) && isDigits(y) {
			x, y = strings.TrimLeft(x, "0"), strings.TrimLeft(y, "0")
			if len(x) != len(y) {
				return len(x) < len(y)
			}
		}
		return x < y
	}
	if len(ac) != len(bc) {
		return len(ac) < len(bc)
	}
	return a < b
}

func isDigits(s string) bool {
	for _, r := range s {
		if !unicode.IsDigit(r) {
			return false
		}
	}
	return s != ""
}

func hasSemver(cs []Candidate) bool {
	for _, c := range cs {
		if canonicalSemver(c.Tag) != "" {
			return true
		}
	}
	return false
}

// signsTagNames: the name of a git tag is inside the signed tag object (GitSource refuses a
// ref whose tag object carries another name), so it orders releases as signed data.
func (s *GitSource) signsTagNames() bool { return true }

// tagNamer is a Source whose tag names are signed.
type tagNamer interface{ signsTagNames() bool }

// FilteredSource is a Source whose "latest" is chosen among the tags a TagFilter allows. Its
// key names the filter, so rules that follow different tags of one source keep apart marks.
type FilteredSource struct {
	Source
	filter *TagFilter
}

// Filtered returns src restricted to the tags f allows. An exact tag that does not match
// the pattern is refused, so an object name cannot pick a tag the rule does not follow.
func Filtered(src Source, f *TagFilter) *FilteredSource {
	return &FilteredSource{Source: src, filter: f}
}

// Key is the source's key and the filter.
func (s *FilteredSource) Key() string {
	if d := s.filter.String(); d != "" {
		return s.Source.Key() + " tags " + d
	}
	return s.Source.Key()
}

// Candidates lists the candidates whose tag matches the pattern.
func (s *FilteredSource) Candidates(ctx context.Context) ([]Candidate, error) {
	cs, err := s.Source.Candidates(ctx)
	if err != nil {
		return nil, err
	}
	kept := cs[:0:0]
	for _, c := range cs {
		if c.Tag == "" || s.filter.MatchPattern(c.Tag) {
			kept = append(kept, c)
		}
	}
	return kept, nil
}

// ListCandidates lists the candidates, and the refused tags of a CandidateLister, whose tag
// matches the pattern.
func (s *FilteredSource) ListCandidates(ctx context.Context) ([]Candidate, []Skipped, error) {
	l, ok := s.Source.(CandidateLister)
	if !ok {
		cs, err := s.Candidates(ctx)
		return cs, nil, err
	}
	cs, refused, err := l.ListCandidates(ctx)
	if err != nil {
		return nil, nil, err
	}
	kept := cs[:0:0]
	for _, c := range cs {
		if c.Tag == "" || s.filter.MatchPattern(c.Tag) {
			kept = append(kept, c)
		}
	}
	var keptRefused []Skipped
	for _, r := range refused {
		if s.filter.MatchPattern(r.Tag) {
			keptRefused = append(keptRefused, r)
		}
	}
	return kept, keptRefused, nil
}

// Fetch refuses a tag outside the pattern, else fetches it.
func (s *FilteredSource) Fetch(ctx context.Context, tag string) (*Release, error) {
	if tag != "" && !s.filter.MatchPattern(tag) {
		return nil, fmt.Errorf("%w: tag %q does not match the rule's tags pattern %q", ErrInvalid, clip(tag), s.filter.pattern)
	}
	return s.Source.Fetch(ctx, tag)
}

// Reverify forwards to the source.
func (s *FilteredSource) Reverify(ctx context.Context, ev *Evidence) (*Release, error) {
	rv, ok := s.Source.(Reverifier)
	if !ok {
		return nil, fmt.Errorf("%w: %s cannot verify kept evidence", ErrNoEvidence, s.Key())
	}
	if ev.Tag != "" && !s.filter.MatchPattern(ev.Tag) {
		return nil, fmt.Errorf("%w: kept tag %q does not match the rule's tags pattern %q", ErrInvalid, clip(ev.Tag), s.filter.pattern)
	}
	return rv.Reverify(ctx, ev)
}

func (s *FilteredSource) signsTagNames() bool {
	n, ok := s.Source.(tagNamer)
	return ok && n.signsTagNames()
}

// filterOf is the filter src applies, nil (no pattern, no pre-releases) for a plain source.
func filterOf(src Source) *TagFilter {
	if f, ok := src.(*FilteredSource); ok {
		return f.filter
	}
	return nil
}
