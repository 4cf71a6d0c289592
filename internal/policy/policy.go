// Package policy is what the engine enforces: which objects of which buckets are vouched for
// by which signed release, and what to do when they are not the signed bytes. It is plain
// data and matching, with no I/O and no configuration format: internal/config builds a
// Policy from YAML at the edge; the engine, the delivery runtime and the CLI read it.
package policy

import (
	"path"
	"slices"
	"strings"
	"time"

	"github.com/tamperguard/tamperguard/internal/release"
)

// Policy is the rules and the settings of one deployment.
type Policy struct {
	// Rules are tried in order; the first that covers an object is its rule.
	Rules []*Rule
	// StateBucket keeps incidents, evidence, rollback marks and floors ("": incidents are
	// kept in memory, for one instance).
	StateBucket string
	// Lease is how long a claim on an incident holds without renewal (0: the engine's
	// default).
	Lease time.Duration
	// ReleaseTTL is how long a resolved "latest" release is cached (0: the resolver's
	// default).
	ReleaseTTL time.Duration
	// Origin names where the policy came from (a configuration file), for messages.
	Origin string
	// Posture is what the posture checks watch (nil: no posture: section, no checks).
	Posture *Posture
}

// Response is what a rule does about a tampered object.
type Response string

// Responses.
const (
	// Restore puts the signed bytes back (the default).
	Restore Response = "restore"
	// Quarantine deletes the tampered generation: serving nothing beats serving an
	// attacker's script.
	Quarantine Response = "quarantine"
	// AlertOnly leaves the object as it is; people are told.
	AlertOnly Response = "alert"
)

// Rule says which objects of a bucket are vouched for by which signed release.
type Rule struct {
	Bucket string
	// Patterns name the rule's objects: exact names, globs, or globs with one {tag}.
	Patterns []Pattern
	// Source is where the signed release is, built with the rule's pinned keys.
	Source release.Source
	// Tag is the release to resolve: release.Latest, an exact tag, or TagPlaceholder (the
	// tag an object's name carries).
	Tag string
	// Entry is the name the checksum file lists for the rule's objects, {tag} filled in
	// ("": an object's base name).
	Entry string
	// OnMismatch is what a tampered object gets.
	OnMismatch Response
	// Fallback is what a tampered object gets when there are no good bytes to restore:
	// Quarantine or AlertOnly.
	Fallback Response
	// CacheControl is set on restored objects so edge caches drop the bad bytes quickly.
	CacheControl string
	// Metadata is the protected metadata the objects must carry; fields left empty are
	// taken from the last good generation.
	Metadata Metadata
}

// Metadata is the protected metadata of a rule's objects: the headers that change what a
// client does with the bytes.
type Metadata struct {
	ContentType        string
	ContentEncoding    string
	CacheControl       string
	ContentDisposition string
}

// Match is a rule that applies to an object, with the tag the object's name selects.
type Match struct {
	Rule *Rule
	Tag  string // the release tag to resolve: "latest", an exact tag, or the one in the name
}

// Match returns the first rule that covers bucket/object. It does no I/O and does not
// allocate, so ignoring an unwatched object costs nothing.
func (p *Policy) Match(bucket, object string) (Match, bool) {
	for _, r := range p.Rules {
		if r.Bucket != bucket {
			continue
		}
		if tag, ok := r.matchObject(object); ok {
			return Match{Rule: r, Tag: tag}, true
		}
	}
	return Match{}, false
}

func (r *Rule) matchObject(object string) (string, bool) {
	for i := range r.Patterns {
		if tag, ok := r.Patterns[i].Match(object); ok {
			if r.Patterns[i].hasTag {
				return tag, true
			}
			return r.Tag, true
		}
	}
	return "", false
}

// Entry is the name the checksum file lists for object: the rule's entry (with {tag}
// filled in) or the object's base name.
func (m Match) Entry(object string) string {
	if e := m.Rule.Entry; e != "" {
		return strings.ReplaceAll(e, TagPlaceholder, m.Tag)
	}
	return path.Base(object)
}

// ListPrefixes are the name prefixes under which the rule's objects can be listed, with
// prefixes covered by a shorter one left out.
func (r *Rule) ListPrefixes() []string {
	var out []string
	for i := range r.Patterns {
		p := r.Patterns[i].literalPrefix()
		if r.Patterns[i].exact() {
			p = r.Patterns[i].raw
		}
		out = append(out, p)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	kept := out[:0]
	for _, p := range out {
		if len(kept) > 0 && strings.HasPrefix(p, kept[len(kept)-1]) {
			continue
		}
		kept = append(kept, p)
	}
	return kept
}

// ExactObjects are the names the rule lists without globs: objects that must exist.
func (r *Rule) ExactObjects() []string {
	var out []string
	for i := range r.Patterns {
		if r.Patterns[i].exact() {
			out = append(out, r.Patterns[i].raw)
		}
	}
	return out
}
