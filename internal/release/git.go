package release

import (
	"container/list"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"golang.org/x/mod/semver"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/signing"
)

// maxChecksumFile bounds the checksum file read from a tag's tree.
const maxChecksumFile = 4 << 20

// gitLimits bound everything a git source reads. Before a tag's signature verified, only
// tag objects are read, each at most tagObject bytes, within a budget per listing; after
// it, one commit, the trees on the checksum file's path and the checksum file, each
// bounded; the release file only when a restore opens it, streamed.
type gitLimits struct {
	tagObject     int64 // one tag object: a real one is a few KiB (headers, message, signature)
	tagBatchKeep  int64 // tag objects held from one response
	commit        int64
	tree          int64
	checksums     int64
	releaseFile   int64 // streamed, never held
	deltaInMemory int64 // a local blob stored as a delta is rebuilt in memory, up to this
	deltaDepth    int
	refsBytes     int64 // the tag listing's response
	maxTags       int
	tagBatch      int   // tag objects asked for in one request
	listTags      int   // tag objects checked per listing (the newest first)
	listBytes     int64 // tag object bytes read per listing
	listRequests  int   // requests per listing

	// A server that cannot filter sends a commit with its whole tree: the trees are kept
	// (within fallbackKeep), everything else streamed through and dropped.
	fallbackPack    int64
	fallbackInflate int64
	fallbackObjects uint32
	fallbackKeep    int64

	cacheBytes int64 // verified objects kept between resolutions
	refusals   int   // refused tag objects remembered

	// evidence bounds the objects a release keeps as Evidence (the tag object, the commit,
	// the trees on the checksum file's path and the checksum file): base64-encoded in the
	// state bucket's mark record, they must stay below its 8 MiB bound. A real release's
	// are a few KiB; one over the bound keeps no evidence, and its floor then survives a
	// restart only while its tag can still be fetched.
	evidence int64
}

var defaultGitLimits = gitLimits{
	tagObject:     256 << 10,
	tagBatchKeep:  16 << 20,
	commit:        1 << 20,
	tree:          8 << 20,
	checksums:     maxChecksumFile,
	releaseFile:   1 << 30,
	deltaInMemory: 64 << 20,
	deltaDepth:    512,
	refsBytes:     16 << 20,
	maxTags:       100_000,
	tagBatch:      256,
	listTags:      4096,
	listBytes:     64 << 20,
	listRequests:  64,

	fallbackPack:    2 << 30,
	fallbackInflate: 8 << 30,
	fallbackObjects: 10_000_000,
	fallbackKeep:    64 << 20,

	cacheBytes: 32 << 20,
	refusals:   1 << 16,

	evidence: 5 << 20,
}

// maxRefusedListed bounds the refused tags ListCandidates reports.
const maxRefusedListed = 256

// GitSource reads releases from signed annotated tags of a git repository: the tag's
// signature must verify against the pinned keys, and the checksum file is read from the
// tree the tag points at. A remote repository (https) is read object by object over git's
// smart HTTP protocol v2; a local one is read in place, every object hashed again.
type GitSource struct {
	display   string // the repository for messages and Key, without credentials
	checksums string
	keys      *signing.Keys
	lim       gitLimits
	backend   gitBackend
	secrets   []string // credentials from the URL, removed from every message
	cache     *gitCache
}

var (
	_ Source          = (*GitSource)(nil)
	_ Reverifier      = (*GitSource)(nil)
	_ CandidateLister = (*GitSource)(nil)
)

// gitBackend is where a GitSource's refs and objects come from.
type gitBackend interface {
	// listTags lists refs/tags/* (only the tag named exact, when set).
	listTags(ctx context.Context, exact string) ([]tagRef, error)
	// tagObjects reads annotated tags' objects, hash-checked. refused names the tags whose
	// object was refused on its own; a *packLimitError means the batch as a whole was.
	tagObjects(ctx context.Context, refs []tagRef) (found map[oid][]byte, refused map[oid]error, read int64, err error)
	// object reads one object of type t (at most limit bytes) that a verified object named,
	// with whatever else arrived with it.
	object(ctx context.Context, id oid, t objType, limit int64) (map[oid]*packObject, error)
	// openBlob streams a blob; the reader fails at its end unless the bytes match id.
	openBlob(ctx context.Context, id oid, limit int64) (io.ReadCloser, error)
}

// tagRef is one tag as listed.
type tagRef struct {
	name      string
	id        oid
	peeled    oid   // remote: the object the tag finally points at
	annotated bool  // the ref names a tag object (else a lightweight tag)
	problem   error // the ref could not be used at all (local: its object is missing)
}

// NewGit returns a source for the repository at url: an https URL read over git's smart
// HTTP protocol (credentials in the URL are sent to that host only and never shown), or a
// local path (or file:// URL) opened in place. checksums is the checksum file's path in
// the tagged tree.
func NewGit(repoURL, checksums string, keys *signing.Keys) (*GitSource, error) {
	if repoURL == "" {
		return nil, errors.New("git source: empty repository URL")
	}
	s := &GitSource{checksums: checksums, keys: keys, lim: defaultGitLimits}
	lower := strings.ToLower(repoURL)
	var u *url.URL             // a remote
	var ep *transport.Endpoint // anything else
	if strings.HasPrefix(lower, "https://") || strings.HasPrefix(lower, "http://") {
		var err error
		if u, err = url.Parse(repoURL); err != nil {
			return nil, errors.New("git source: the repository URL does not parse")
		}
		s.display = redactURL(u)
		if u.User != nil {
			name := u.User.Username()
			pass, _ := u.User.Password()
			// The basic credentials as sent, in case a server echoes them back.
			s.secrets = append(s.secrets, base64.StdEncoding.EncodeToString([]byte(name+":"+pass)))
			if pass != "" {
				s.secrets = append(s.secrets, pass, url.QueryEscape(pass))
			} else if len(name) >= 8 {
				s.secrets = append(s.secrets, name, url.QueryEscape(name)) // a token given as the user name
			}
		}
	} else {
		var err error
		if ep, err = transport.NewEndpoint(repoURL); err != nil {
			if strings.Contains(repoURL, "@") {
				return nil, errors.New("git source: the repository URL does not parse")
			}
			return nil, fmt.Errorf("git source: bad repository URL %q: %w", repoURL, err)
		}
		s.display = repoURL
		if ep.Protocol != "file" {
			s.display = ep.Protocol + "://" + ep.Host + "/" + strings.TrimPrefix(ep.Path, "/")
		}
	}
	if checksums == "" || path.IsAbs(checksums) || path.Clean(checksums) != checksums || strings.HasPrefix(checksums, "../") {
		return nil, fmt.Errorf("git source %s: checksum file %q must be a clean relative path in the tree", s.display, checksums)
	}
	if keys == nil || keys.Empty() {
		return nil, fmt.Errorf("git source %s: no pinned keys", s.display)
	}
	switch {
	case u != nil:
		if err := checkGitURL(u); err != nil {
			return nil, fmt.Errorf("git source %s: the repository URL %v", s.display, err)
		}
		s.backend = newGitRemote(u, &s.lim)
	case ep.Protocol == "file":
		s.backend = &gitLocal{path: ep.Path, lim: &s.lim}
	default:
		return nil, fmt.Errorf("git source %s: %s repositories are not supported: give the https URL (tamperguard reads remote repositories over git's smart HTTP protocol v2, one object at a time) or a local path", s.display, ep.Protocol)
	}
	s.cache = newGitCache(&s.lim)
	return s, nil
}

// Key identifies the repository (without credentials).
func (s *GitSource) Key() string { return "git " + s.display }

// Candidates lists the tags that may be the latest release: every tag whose signature
// verified while listing and the tags that could not be checked within the listing's
// budget. The refused ones, and why, are in ListCandidates (which the Resolver uses): left
// out here, junk tags cannot crowd the real release out of a caller's candidate budget.
func (s *GitSource) Candidates(ctx context.Context) ([]Candidate, error) {
	cands, _, err := s.ListCandidates(ctx)
	return cands, err
}

// ListCandidates lists the repository's tags and checks them cheaply, newest first:
// lightweight tags are refused from the listing alone, and the annotated tags' objects
// (only those, fetched together, each bounded) are parsed and their signatures verified.
// cands are the tags that verified (with their signed tagger time) and those left
// unchecked because the listing's budget ran out; refused are the others, newest first,
// with the reason (the newest maxRefusedListed of them: a flood of junk tags must not make
// every report unbounded). A tag object already refused is remembered by its id and costs
// nothing.
func (s *GitSource) ListCandidates(ctx context.Context) (cands []Candidate, refused []Skipped, err error) {
	refs, err := s.backend.listTags(ctx, "")
	if err != nil {
		return nil, nil, s.redact(err)
	}
	sortTagRefs(refs)
	type ranked struct {
		rank int
		s    Skipped
	}
	var bad []ranked
	var pending []tagRef
	var pendingRank []int
	for i, ref := range refs {
		if err := s.quickRefusal(ref); err != nil {
			bad = append(bad, ranked{i, Skipped{Tag: shownTag(ref.name), Reason: err}})
			continue
		}
		pending = append(pending, ref)
		pendingRank = append(pendingRank, i)
	}
	budget := &tagBudget{tags: s.lim.listTags, bytes: s.lim.listBytes, requests: s.lim.listRequests}
	found, refusedByID, err := s.tagObjects(ctx, pending, budget)
	if err != nil {
		return nil, nil, s.redact(err)
	}
	for k, ref := range pending {
		i := pendingRank[k]
		if reason, ok := refusedByID[ref.id]; ok {
			bad = append(bad, ranked{i, Skipped{Tag: ref.name, Reason: s.tagError(ref.name, reason)}})
			continue
		}
		data, ok := found[ref.id]
		if !ok {
			cands = append(cands, Candidate{Tag: ref.name}) // not checked: budget spent
			continue
		}
		t, _, err := s.checkTag(ref, data)
		if err != nil {
			bad = append(bad, ranked{i, Skipped{Tag: ref.name, Reason: err}})
			continue
		}
		cands = append(cands, Candidate{Tag: ref.name, Time: t.Time})
	}
	sort.SliceStable(bad, func(i, j int) bool { return bad[i].rank < bad[j].rank })
	for _, b := range bad[:min(len(bad), maxRefusedListed)] {
		refused = append(refused, b.s)
	}
	return cands, refused, nil
}

// shownTag bounds a tag name from the repository for a report.
func shownTag(name string) string {
	if len(name) > 200 {
		return name[:200] + "…"
	}
	return name
}

// quickRefusal refuses a tag from its listing alone: an invalid name, a lightweight tag, a
// ref that cannot be used, a tag object refused before.
func (s *GitSource) quickRefusal(ref tagRef) error {
	switch {
	case !validTagName(ref.name):
		return fmt.Errorf("%w: %s in %s is not a valid tag name", ErrInvalid, quoteBytes([]byte(ref.name), 100), s.display)
	case ref.problem != nil:
		return s.tagError(ref.name, ref.problem)
	case !ref.annotated:
		return fmt.Errorf("%w: tag %q in %s is a lightweight tag (no signature)", ErrUnsigned, ref.name, s.display)
	}
	if reason, ok := s.cache.refusal(ref.id); ok {
		return s.tagError(ref.name, reason)
	}
	return nil
}

func (s *GitSource) tagError(name string, reason error) error {
	return s.redact(fmt.Errorf("tag %q in %s: %w", name, s.display, reason))
}

// tagBudget is what one listing may still spend on tag objects.
type tagBudget struct {
	tags     int
	bytes    int64
	requests int
}

// tagObjects returns the tags' objects (from the cache, else fetched in batches within the
// budget) and the tags whose object was refused on its own. Tags beyond the budget are in
// neither.
func (s *GitSource) tagObjects(ctx context.Context, refs []tagRef, b *tagBudget) (map[oid][]byte, map[oid]error, error) {
	found, refused := map[oid][]byte{}, map[oid]error{}
	var need []tagRef
	for _, ref := range refs {
		if data, ok := s.cache.get(ref.id, objTag); ok {
			found[ref.id] = data
		} else {
			need = append(need, ref)
		}
	}
	need = need[:min(len(need), max(b.tags, 0))]
	b.tags -= len(need)
	for len(need) > 0 {
		n := min(len(need), s.lim.tagBatch)
		if err := s.tagBatch(ctx, need[:n], b, found, refused); err != nil {
			return nil, nil, err
		}
		need = need[n:]
	}
	return found, refused, nil
}

// tagBatch fetches one batch. A batch refused as a whole (an object over a limit, which
// cannot be named before it is read) is split in two until the culprit is alone.
func (s *GitSource) tagBatch(ctx context.Context, batch []tagRef, b *tagBudget, found map[oid][]byte, refused map[oid]error) error {
	if b.requests <= 0 || b.bytes <= 0 {
		return nil
	}
	b.requests--
	objs, bad, n, err := s.backend.tagObjects(ctx, batch)
	b.bytes -= n
	var le *packLimitError
	if errors.As(err, &le) {
		if len(batch) == 1 {
			reason := fmt.Errorf("%w: its tag object could not be read within the limits that apply before a signature is checked: %v", ErrInvalid, le)
			refused[batch[0].id] = reason
			s.cache.refuse(batch[0].id, reason)
			return nil
		}
		h := len(batch) / 2
		if err := s.tagBatch(ctx, batch[:h], b, found, refused); err != nil {
			return err
		}
		return s.tagBatch(ctx, batch[h:], b, found, refused)
	}
	if err != nil {
		return err
	}
	for id, data := range objs {
		found[id] = data
		s.cache.put(id, objTag, data)
	}
	for _, ref := range batch {
		if reason, ok := bad[ref.id]; ok {
			refused[ref.id] = reason
			if !errors.Is(reason, ErrNotFound) {
				s.cache.refuse(ref.id, reason)
			}
		} else if _, ok := found[ref.id]; !ok {
			refused[ref.id] = fmt.Errorf("%w: the server did not send its tag object %s", ErrInvalid, ref.id.short())
		}
	}
	return nil
}

// checkTag checks a tag object against the ref that named it: it must parse, carry a
// signature, name the same tag, verify against a pinned key and point at a commit.
// Refusals that depend on the object alone are remembered by its id.
func (s *GitSource) checkTag(ref tagRef, data []byte) (*gitTag, signing.Signer, error) {
	name := ref.name
	t, err := parseTag(data)
	if err != nil {
		reason := fmt.Errorf("%w: its tag object %s does not parse: %v", ErrInvalid, ref.id.short(), err)
		s.cache.refuse(ref.id, reason)
		return nil, signing.Signer{}, s.tagError(name, reason)
	}
	if len(t.Signature) == 0 {
		reason := fmt.Errorf("%w: it is annotated but not signed", ErrUnsigned)
		s.cache.refuse(ref.id, reason)
		return nil, signing.Signer{}, s.tagError(name, reason)
	}
	// The name inside the signed tag object is what the maintainer signed. A ref renamed to
	// point at another signed tag (replaying v1.0.0 as v9.9.9) must not pass.
	if t.Name != name {
		return nil, signing.Signer{}, s.redact(fmt.Errorf("%w: ref %q in %s points at a tag object signed as %q", ErrInvalid, name, s.display, t.Name))
	}
	signer, err := s.keys.VerifyGitTag(t.Payload, t.Signature)
	if err != nil {
		if errors.Is(err, signing.ErrRefused) {
			s.cache.refuse(ref.id, err)
		}
		return nil, signing.Signer{}, s.tagError(name, err)
	}
	if t.TargetType != objCommit {
		reason := fmt.Errorf("%w: it points at a %s, not a commit", ErrInvalid, t.TargetType)
		s.cache.refuse(ref.id, reason)
		return nil, signing.Signer{}, s.tagError(name, reason)
	}
	return t, signer, nil
}

// Fetch reads and verifies the tag: its tag object first (alone, bounded), then, once
// the signature verified, the commit, the trees on the checksum file's path and the
// checksum file. The release file is read only when Release.Open asks for it.
func (s *GitSource) Fetch(ctx context.Context, tag string) (*Release, error) {
	if tag == "" {
		return nil, fmt.Errorf("%w: git source %s needs a tag", ErrInvalid, s.display)
	}
	refName := plumbing.NewTagReferenceName(tag)
	if err := refName.Validate(); err != nil || len(tag) > maxTagName {
		return nil, fmt.Errorf("%w: %s is not a valid tag name", ErrInvalid, quoteBytes([]byte(tag), 100))
	}
	refs, err := s.backend.listTags(ctx, tag)
	if err != nil {
		return nil, s.redact(err)
	}
	var ref *tagRef
	for i := range refs {
		if refs[i].name == tag {
			ref = &refs[i]
		}
	}
	if ref == nil {
		return nil, fmt.Errorf("%w: tag %q in %s", ErrNotFound, tag, s.display)
	}
	if err := s.quickRefusal(*ref); err != nil {
		return nil, err
	}
	found, refused, err := s.tagObjects(ctx, []tagRef{*ref}, &tagBudget{tags: 1, bytes: s.lim.tagObject + 1, requests: 1})
	if err != nil {
		return nil, s.redact(err)
	}
	if reason, ok := refused[ref.id]; ok {
		return nil, s.tagError(tag, reason)
	}
	data, ok := found[ref.id]
	if !ok {
		return nil, s.tagError(tag, fmt.Errorf("%w: its tag object %s was not read", ErrUnreachable, ref.id.short()))
	}
	t, signer, err := s.checkTag(*ref, data)
	if err != nil {
		return nil, err
	}
	rel, err := s.release(ctx, tag, ref.id, data, t, signer)
	return rel, s.redact(err)
}

// release reads the checksum file from the verified tag's tree, and keeps the objects on
// the way as the release's Evidence.
func (s *GitSource) release(ctx context.Context, tag string, id oid, tagData []byte, t *gitTag, signer signing.Signer) (*Release, error) {
	scope := fetchScope{}
	commit, err := s.object(ctx, scope, t.Object, objCommit, s.lim.commit)
	if err != nil {
		return nil, fmt.Errorf("commit of tag %q in %s: %w", tag, s.display, err)
	}
	root, err := commitTree(commit)
	if err != nil {
		return nil, fmt.Errorf("%w: commit of tag %q in %s: %v", ErrInvalid, tag, s.display, err)
	}
	var trees [][]byte
	e, err := s.walk(ctx, scope, root, s.checksums, &trees)
	if err != nil {
		return nil, fmt.Errorf("tree of tag %q in %s: %w", tag, s.display, err)
	}
	if e == nil || !e.isFile() {
		return nil, fmt.Errorf("%w: %s not in the tree of tag %q in %s", ErrNotFound, s.checksums, tag, s.display)
	}
	content, err := s.object(ctx, scope, e.id, objBlob, s.lim.checksums)
	if err != nil {
		return nil, fmt.Errorf("%s in tag %q of %s: %w", s.checksums, tag, s.display, err)
	}
	sums, err := checksum.ParseAll(content)
	if err != nil {
		return nil, fmt.Errorf("%w: %s in tag %q of %s: %w", ErrInvalid, s.checksums, tag, s.display, err)
	}
	var ev *Evidence
	size := int64(len(tagData) + len(commit) + len(content))
	for _, tr := range trees {
		size += int64(len(tr))
	}
	if size <= s.lim.evidence {
		ev = &Evidence{Tag: tag, Checksums: content, Git: &GitEvidence{TagObject: tagData, Commit: commit, Trees: trees}}
	}
	return &Release{
		Source:        s.Key(),
		Tag:           tag,
		Signer:        signer,
		Signers:       []signing.Signer{signer},
		Time:          t.Time,
		Checksums:     sums,
		ChecksumsName: s.checksums,
		TagObject:     id.String(),
		Evidence:      ev,
		files:         s.files(root, trees),
	}, nil
}

// files opens the release files of the tree root; trees are the trees already read on the
// checksum file's path (root first), so that they need not be fetched again.
func (s *GitSource) files(root oid, trees [][]byte) *gitFiles {
	known := fetchScope{}
	cur := root
	for i, name := range strings.Split(s.checksums, "/") {
		if i >= len(trees) {
			break
		}
		known[cur] = &packObject{typ: objTree, data: trees[i], id: cur}
		e, ok, err := lookupTree(trees[i], name)
		if err != nil || !ok || !e.isDir() {
			break
		}
		cur = e.id
	}
	return &gitFiles{src: s, root: root, dir: path.Dir(s.checksums), known: known}
}

// Reverify verifies a release again from its kept Evidence alone, offline: the tag object's
// id is its hash, its signature must verify against the keys pinned now and the tag name
// inside it must be the kept tag; the commit must hash to the id the tag names, each tree
// on the checksum file's path to the id the one before names, and the checksum file to
// the id of its entry. Neither the tag ref nor the remote takes part, so an attacker who
// deletes the tag, or rewrites every branch, does not take the floor away. The release
// file is still read by its object id when a restore opens it (hashed again on the way).
func (s *GitSource) Reverify(_ context.Context, ev *Evidence) (*Release, error) {
	rel, err := s.reverify(ev)
	if err != nil {
		return nil, s.redact(fmt.Errorf("git source %s: kept release %q: %w", s.display, clip(ev.Tag), err))
	}
	return rel, nil
}

func (s *GitSource) reverify(ev *Evidence) (*Release, error) {
	g := ev.Git
	switch {
	case g == nil:
		return nil, fmt.Errorf("%w: the kept evidence holds no git objects", ErrInvalid)
	case !validTagName(ev.Tag):
		return nil, fmt.Errorf("%w: %s is not a valid tag name", ErrInvalid, quoteBytes([]byte(ev.Tag), 100))
	case int64(len(g.TagObject)) > s.lim.tagObject:
		return nil, fmt.Errorf("%w: the kept tag object is over %d bytes", ErrInvalid, s.lim.tagObject)
	case int64(len(g.Commit)) > s.lim.commit:
		return nil, fmt.Errorf("%w: the kept commit is over %d bytes", ErrInvalid, s.lim.commit)
	case int64(len(ev.Checksums)) > s.lim.checksums:
		return nil, fmt.Errorf("%w: the kept %s is over %d bytes", ErrInvalid, s.checksums, s.lim.checksums)
	}
	id, collision := hashObject(objTag, g.TagObject)
	if collision {
		return nil, fmt.Errorf("%w: %w: the kept tag object carries a SHA-1 collision attack", ErrInvalid, ErrGitIntegrity)
	}
	t, signer, err := s.checkTag(tagRef{name: ev.Tag, id: id, annotated: true}, g.TagObject)
	if err != nil {
		return nil, err
	}
	if err := checkObject(t.Object, objCommit, g.Commit); err != nil {
		return nil, fmt.Errorf("the kept commit: %w", err)
	}
	root, err := commitTree(g.Commit)
	if err != nil {
		return nil, fmt.Errorf("%w: the kept commit: %v", ErrInvalid, err)
	}
	parts := strings.Split(s.checksums, "/")
	if len(g.Trees) != len(parts) {
		return nil, fmt.Errorf("%w: %d trees kept, the path %s needs %d", ErrInvalid, len(g.Trees), s.checksums, len(parts))
	}
	cur := root
	for i, name := range parts {
		tree := g.Trees[i]
		if int64(len(tree)) > s.lim.tree {
			return nil, fmt.Errorf("%w: kept tree %s is over %d bytes", ErrInvalid, cur.short(), s.lim.tree)
		}
		if err := checkObject(cur, objTree, tree); err != nil {
			return nil, fmt.Errorf("the kept trees: %w", err)
		}
		e, ok, err := lookupTree(tree, name)
		switch {
		case err != nil:
			return nil, fmt.Errorf("%w: kept tree %s: %v", ErrInvalid, cur.short(), err)
		case !ok:
			return nil, fmt.Errorf("%w: %s is not in the kept tree %s", ErrInvalid, s.checksums, cur.short())
		case i == len(parts)-1 && !e.isFile(), i < len(parts)-1 && !e.isDir():
			return nil, fmt.Errorf("%w: %s is not a file in the kept trees", ErrInvalid, s.checksums)
		}
		cur = e.id
	}
	if err := checkObject(cur, objBlob, ev.Checksums); err != nil {
		return nil, fmt.Errorf("the kept %s: %w", s.checksums, err)
	}
	sums, err := checksum.ParseAll(ev.Checksums)
	if err != nil {
		return nil, fmt.Errorf("%w: the kept %s: %w", ErrInvalid, s.checksums, err)
	}
	return &Release{
		Source:        s.Key(),
		Tag:           ev.Tag,
		Signer:        signer,
		Signers:       []signing.Signer{signer},
		Time:          t.Time,
		Checksums:     sums,
		ChecksumsName: s.checksums,
		TagObject:     id.String(),
		Evidence:      ev,
		files:         s.files(root, g.Trees),
	}, nil
}

// fetchScope holds the objects that arrived with others during one Fetch or Open (a
// server that cannot filter sends a commit's trees with it); only the objects used go to
// the cache.
type fetchScope map[oid]*packObject

// object returns an object a verified object named: from the scope, the cache, else the
// backend.
func (s *GitSource) object(ctx context.Context, scope fetchScope, id oid, t objType, limit int64) ([]byte, error) {
	if o, ok := scope[id]; ok && o.typ == t && int64(len(o.data)) <= limit {
		s.cache.put(id, t, o.data)
		return o.data, nil
	}
	if data, ok := s.cache.get(id, t); ok && int64(len(data)) <= limit {
		return data, nil
	}
	objs, err := s.backend.object(ctx, id, t, limit)
	if err != nil {
		return nil, err
	}
	o, ok := objs[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s %s was not sent", ErrInvalid, t, id.short())
	}
	if o.typ != t {
		return nil, fmt.Errorf("%w: %s is a %s, not a %s", ErrInvalid, id.short(), o.typ, t)
	}
	for oid, o := range objs {
		scope[oid] = o
	}
	s.cache.put(id, t, o.data)
	return o.data, nil
}

// walk finds p in the tree root; nil when it is not there. trees, when set, gets each tree
// read on the way, root first.
func (s *GitSource) walk(ctx context.Context, scope fetchScope, root oid, p string, trees *[][]byte) (*treeEntry, error) {
	cur := root
	parts := strings.Split(p, "/")
	for i, name := range parts {
		data, err := s.object(ctx, scope, cur, objTree, s.lim.tree)
		if err != nil {
			return nil, err
		}
		if trees != nil {
			*trees = append(*trees, data)
		}
		e, ok, err := lookupTree(data, name)
		if err != nil {
			return nil, fmt.Errorf("%w: tree %s: %v", ErrInvalid, cur.short(), err)
		}
		if !ok {
			return nil, nil
		}
		if i == len(parts)-1 {
			return &e, nil
		}
		if !e.isDir() {
			return nil, nil
		}
		cur = e.id
	}
	return nil, nil
}

// gitFiles opens files from the signed tag's tree, relative to the checksum file as
// `sha256sum -c` would. Nothing is fetched until a file is opened, and then only by object
// id, so a file can be read while its tag is deleted (as long as the remote still holds
// the objects). known are trees already verified, read from no remote.
type gitFiles struct {
	src   *GitSource
	root  oid
	dir   string
	known fetchScope
}

func (f *gitFiles) open(ctx context.Context, name string) (io.ReadCloser, error) {
	p := path.Join(f.dir, strings.TrimPrefix(name, "./"))
	if strings.HasPrefix(p, "../") || p == ".." || path.IsAbs(p) {
		return nil, fmt.Errorf("%w: %q leaves the tree", ErrInvalid, name)
	}
	s := f.src
	scope := fetchScope{}
	maps.Copy(scope, f.known)
	e, err := s.walk(ctx, scope, f.root, p, nil)
	if err != nil {
		return nil, s.redact(err)
	}
	if e == nil || !e.isFile() {
		return nil, fmt.Errorf("%w: %q not in the tagged tree", ErrFileMissing, p)
	}
	rc, err := s.backend.openBlob(ctx, e.id, s.lim.releaseFile)
	if err != nil {
		return nil, s.redact(fmt.Errorf("%q in the tagged tree: %w", p, err))
	}
	return rc, nil
}

// sortTagRefs orders tags newest first as far as names tell: semantic versions by
// precedence, then the other names.
func sortTagRefs(refs []tagRef) {
	ver := func(n string) string {
		if !strings.HasPrefix(n, "v") {
			n = "v" + n
		}
		if semver.IsValid(n) {
			return n
		}
		return ""
	}
	sort.SliceStable(refs, func(i, j int) bool {
		a, b := ver(refs[i].name), ver(refs[j].name)
		switch {
		case a != "" && b != "":
			if c := semver.Compare(a, b); c != 0 {
				return c > 0
			}
			return refs[i].name < refs[j].name
		case a != "" || b != "":
			return a != ""
		}
		return refs[i].name > refs[j].name
	})
}

// redact removes credentials from an error's message, keeping what errors.Is finds.
func (s *GitSource) redact(err error) error {
	if err == nil || len(s.secrets) == 0 {
		return err
	}
	msg := err.Error()
	changed := false
	for _, sec := range s.secrets {
		if sec != "" && strings.Contains(msg, sec) {
			msg = strings.ReplaceAll(msg, sec, "[redacted]")
			changed = true
		}
	}
	if !changed {
		return err
	}
	return &gitRedactedError{msg: msg, err: err}
}

// gitRedactedError shows a redacted message; errors.Is and errors.As still see the cause.
type gitRedactedError struct {
	msg string
	err error
}

func (e *gitRedactedError) Error() string { return e.msg }
func (e *gitRedactedError) Unwrap() error { return e.err }

// gitCache keeps verified objects by id (content-addressed, so never stale) and the
// reasons tag objects were refused, both bounded.
type gitCache struct {
	mu      sync.Mutex
	lim     *gitLimits
	size    int64
	lru     *list.List // of *cacheEntry, most recent first
	byID    map[oid]*list.Element
	refused map[oid]error
}

type cacheEntry struct {
	id   oid
	typ  objType
	data []byte
}

func newGitCache(lim *gitLimits) *gitCache {
	return &gitCache{lim: lim, lru: list.New(), byID: map[oid]*list.Element{}, refused: map[oid]error{}}
}

func (c *gitCache) get(id oid, t objType) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byID[id]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if e.typ != t {
		return nil, false
	}
	c.lru.MoveToFront(el)
	return e.data, true
}

// put keeps an object whose id was checked against its bytes.
func (c *gitCache) put(id oid, t objType, data []byte) {
	n := int64(len(data))
	if n > c.lim.cacheBytes/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byID[id]; ok {
		return
	}
	c.byID[id] = c.lru.PushFront(&cacheEntry{id: id, typ: t, data: data})
	c.size += n
	for c.size > c.lim.cacheBytes {
		old := c.lru.Back()
		e := old.Value.(*cacheEntry)
		c.lru.Remove(old)
		delete(c.byID, e.id)
		c.size -= int64(len(e.data))
	}
}

func (c *gitCache) refusal(id oid) (error, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	err, ok := c.refused[id]
	return err, ok
}

func (c *gitCache) refuse(id oid, reason error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.refused) >= c.lim.refusals {
		clear(c.refused) // crude, bounded: they are found again at the cost of a fetch
	}
	c.refused[id] = reason
}
