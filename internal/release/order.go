package release

import (
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/semver"
)

// canonicalSemver returns the tag as "vX.Y.Z..." when it is a semantic version, else "".
// Both "v1.2.3" and "1.2.3" count; "v1.2" does not (a release tag names a full version).
func canonicalSemver(tag string) string {
	v := tag
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	if !semver.IsValid(v) || strings.Count(strings.SplitN(strings.SplitN(v, "-", 2)[0], "+", 2)[0], ".") != 2 {
		return ""
	}
	return v
}

// newer reports whether a is a newer release than b: by semantic version when both tags are
// versions, else by time. Equal or incomparable releases are not newer.
func newer(aTag string, aTime time.Time, bTag string, bTime time.Time) bool {
	av, bv := canonicalSemver(aTag), canonicalSemver(bTag)
	if av != "" && bv != "" {
		return semver.Compare(av, bv) > 0
	}
	if aTime.IsZero() || bTime.IsZero() {
		return false
	}
	return aTime.After(bTime)
}

// sortCandidates orders candidates newest first. When any tag is a semantic version, only
// semantic versions are kept (a stray "nightly" tag must not outrank v2.0.0), and
// pre-releases are left out as GitHub's "latest" leaves them out: a signed v2.0.0-rc1 must
// not make the stable script look tampered. Otherwise the candidates are ordered by time,
// and those without a time are dropped (they cannot be ranked) unless there is only one.
func sortCandidates(cs []Candidate) []Candidate {
	if len(cs) == 1 && canonicalSemver(cs[0].Tag) == "" {
		return cs // one candidate (a fixed URL) needs no ranking
	}
	var versions, timed []Candidate
	for _, c := range cs {
		if v := canonicalSemver(c.Tag); v != "" {
			if semver.Prerelease(v) == "" {
				versions = append(versions, c)
			}
		} else if !c.Time.IsZero() {
			timed = append(timed, c)
		} else if !c.Time.IsZero() {
			timed = append(timed, c)
		}
	}
	if len(versions) > 0 || hasSemver(cs) {
		sort.SliceStable(versions, func(i, j int) bool {
			c := semver.Compare(canonicalSemver(versions[i].Tag), canonicalSemver(versions[j].Tag))
			if c != 0 {
				return c > 0
			}
			return versions[i].Tag < versions[j].Tag // "v1.0.0" and "1.0.0": a stable order
		})
		return versions
	}
	sort.SliceStable(timed, func(i, j int) bool { return timed[i].Time.After(timed[j].Time) })
	return timed
}

func hasSemver(cs []Candidate) bool {
	for _, c := range cs {
		if canonicalSemver(c.Tag) != "" {
			return true
		}
	}
	return false
}
