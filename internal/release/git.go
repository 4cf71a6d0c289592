package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/signing"
)

// maxChecksumFile bounds the checksum file read from a tag's tree.
const maxChecksumFile = 4 << 20

// GitSource reads releases from signed annotated tags of a git repository: the tag's
// signature must verify against the pinned keys, and the checksum file is read from the
// tree the tag points at.
type GitSource struct {
	url       string
	checksums string
	keys      *signing.Keys
	local     string // a path to open directly; "" for a remote fetched into memory
}

var _ Source = (*GitSource)(nil)

// NewGit returns a source for the repository at url: a remote URL (https://, ssh://,
// git://, user@host:path) fetched into memory, or a local path (or file:// URL) opened
// in place. checksums is the checksum file's path in the tagged tree.
func NewGit(url, checksums string, keys *signing.Keys) (*GitSource, error) {
	if url == "" {
		return nil, errors.New("git source: empty repository URL")
	}
	if checksums == "" || path.IsAbs(checksums) || path.Clean(checksums) != checksums || strings.HasPrefix(checksums, "../") {
		return nil, fmt.Errorf("git source %s: checksum file %q must be a clean relative path in the tree", url, checksums)
	}
	if keys == nil || keys.Empty() {
		return nil, fmt.Errorf("git source %s: no pinned keys", url)
	}
	s := &GitSource{url: url, checksums: checksums, keys: keys}
	ep, err := transport.NewEndpoint(url)
	if err != nil {
		return nil, fmt.Errorf("git source: bad repository URL %q: %w", url, err)
	}
	if ep.Protocol == "file" {
		s.local = ep.Path
	}
	return s, nil
}

// Key identifies the repository.
func (s *GitSource) Key() string { return "git " + s.url }

// Candidates lists the repository's tags. Times are only known for a local repository;
// a remote one is listed without fetching, and its non-version tags cannot rank.
func (s *GitSource) Candidates(ctx context.Context) ([]Candidate, error) {
	if s.local != "" {
		repo, err := s.openLocal()
		if err != nil {
			return nil, err
		}
		iter, err := repo.Tags()
		if err != nil {
			return nil, fmt.Errorf("%w: listing tags of %s: %w", ErrUnreachable, s.url, err)
		}
		var out []Candidate
		err = iter.ForEach(func(ref *plumbing.Reference) error {
			c := Candidate{Tag: ref.Name().Short()}
			if t, err := repo.TagObject(ref.Hash()); err == nil {
				c.Time = t.Tagger.When
			}
			out = append(out, c)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("%w: listing tags of %s: %w", ErrUnreachable, s.url, err)
		}
		return out, nil
	}
	remote := git.NewRemote(memory.NewStorage(), &gitconfig.RemoteConfig{Name: "origin", URLs: []string{s.url}})
	refs, err := remote.ListContext(ctx, &git.ListOptions{})
	if err != nil {
		return nil, s.remoteError("listing tags", err)
	}
	var out []Candidate
	for _, ref := range refs {
		if ref.Name().IsTag() && !strings.HasSuffix(ref.Name().String(), "^{}") {
			out = append(out, Candidate{Tag: ref.Name().Short()})
		}
	}
	return out, nil
}

// Fetch reads and verifies the tag. A remote is fetched shallow (the tag, its commit and
// tree only) into memory; nothing is written to disk.
func (s *GitSource) Fetch(ctx context.Context, tag string) (*Release, error) {
	if tag == "" {
		return nil, fmt.Errorf("%w: git source %s needs a tag", ErrInvalid, s.url)
	}
	refName := plumbing.NewTagReferenceName(tag)
	if err := refName.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %q is not a valid tag name", ErrInvalid, tag)
	}
	var repo *git.Repository
	var err error
	if s.local != "" {
		repo, err = s.openLocal()
	} else {
		repo, err = s.fetchTag(ctx, refName)
	}
	if err != nil {
		return nil, err
	}
	return s.verify(repo, tag, refName)
}

func (s *GitSource) openLocal() (*git.Repository, error) {
	repo, err := git.PlainOpenWithOptions(s.local, &git.PlainOpenOptions{EnableDotGitCommonDir: true})
	if err != nil {
		if errors.Is(err, git.ErrRepositoryNotExists) {
			return nil, fmt.Errorf("%w: no git repository at %s", ErrNotFound, s.local)
		}
		return nil, fmt.Errorf("%w: opening %s: %w", ErrUnreachable, s.local, err)
	}
	return repo, nil
}

func (s *GitSource) fetchTag(ctx context.Context, refName plumbing.ReferenceName) (*git.Repository, error) {
	repo, err := git.Init(memory.NewStorage(), nil)
	if err != nil {
		return nil, fmt.Errorf("git source %s: %w", s.url, err)
	}
	remote, err := repo.CreateRemote(&gitconfig.RemoteConfig{Name: "origin", URLs: []string{s.url}})
	if err != nil {
		return nil, fmt.Errorf("git source %s: %w", s.url, err)
	}
	spec := gitconfig.RefSpec("+" + refName.String() + ":" + refName.String())
	err = remote.FetchContext(ctx, &git.FetchOptions{RefSpecs: []gitconfig.RefSpec{spec}, Depth: 1, Tags: git.NoTags})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil, s.remoteError("fetching "+refName.Short(), err)
	}
	return repo, nil
}

func (s *GitSource) remoteError(what string, err error) error {
	var noRef git.NoMatchingRefSpecError
	switch {
	case errors.As(err, &noRef), errors.Is(err, transport.ErrRepositoryNotFound), errors.Is(err, transport.ErrEmptyRemoteRepository):
		return fmt.Errorf("%w: %s from %s: %w", ErrNotFound, what, s.url, err)
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed):
		return fmt.Errorf("%w: %s from %s: the repository needs credentials (tamperguard reads public repositories): %w", ErrUnreachable, what, s.url, err)
	default:
		return fmt.Errorf("%w: %s from %s: %w", ErrUnreachable, what, s.url, err)
	}
}

// verify checks the tag object's signature and reads the checksum file from its tree.
func (s *GitSource) verify(repo *git.Repository, tag string, refName plumbing.ReferenceName) (*Release, error) {
	ref, err := repo.Reference(refName, false)
	if err != nil {
		return nil, fmt.Errorf("%w: tag %q in %s", ErrNotFound, tag, s.url)
	}
	to, err := repo.TagObject(ref.Hash())
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return nil, fmt.Errorf("%w: tag %q in %s is a lightweight tag (no signature)", ErrUnsigned, tag, s.url)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: reading tag %q in %s: %w", ErrInvalid, tag, s.url, err)
	}
	if to.PGPSignature == "" {
		return nil, fmt.Errorf("%w: tag %q in %s is annotated but not signed", ErrUnsigned, tag, s.url)
	}
	// The name inside the signed tag object is what the maintainer signed. A ref renamed to
	// point at another signed tag (replaying v1.0.0 as v9.9.9) must not pass.
	if to.Name != tag {
		return nil, fmt.Errorf("%w: ref %q in %s points at a tag object signed as %q", ErrInvalid, tag, s.url, to.Name)
	}
	payload, err := tagPayload(to)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding tag %q in %s: %w", ErrInvalid, tag, s.url, err)
	}
	signer, err := s.keys.VerifyGitTag(payload, []byte(to.PGPSignature))
	if err != nil {
		return nil, fmt.Errorf("tag %q in %s: %w", tag, s.url, err)
	}
	if to.TargetType != plumbing.CommitObject {
		return nil, fmt.Errorf("%w: tag %q in %s points at a %s, not a commit", ErrInvalid, tag, s.url, to.TargetType)
	}
	commit, err := to.Commit()
	if err != nil {
		return nil, fmt.Errorf("%w: commit of tag %q in %s: %w", ErrInvalid, tag, s.url, err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return nil, fmt.Errorf("%w: tree of tag %q in %s: %w", ErrInvalid, tag, s.url, err)
	}
	f, err := tree.File(s.checksums)
	if err != nil {
		return nil, fmt.Errorf("%w: %s not in the tree of tag %q in %s", ErrNotFound, s.checksums, tag, s.url)
	}
	if f.Size > maxChecksumFile {
		return nil, fmt.Errorf("%w: %s in tag %q of %s is %d bytes (limit %d)", ErrInvalid, s.checksums, tag, s.url, f.Size, maxChecksumFile)
	}
	content, err := f.Contents()
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s in tag %q of %s: %w", ErrInvalid, s.checksums, tag, s.url, err)
	}
	sums, err := checksum.Parse([]byte(content))
	if err != nil {
		return nil, fmt.Errorf("%w: %s in tag %q of %s: %w", ErrInvalid, s.checksums, tag, s.url, err)
	}
	return &Release{
		Source:        s.Key(),
		Tag:           tag,
		Signer:        signer,
		Time:          to.Tagger.When,
		Checksums:     sums,
		ChecksumsName: s.checksums,
		files:         treeFiles{tree: tree, dir: path.Dir(s.checksums)},
	}, nil
}

// tagPayload is the tag object as it was signed: encoded without its signature.
func tagPayload(t *object.Tag) ([]byte, error) {
	obj := &plumbing.MemoryObject{}
	if err := t.EncodeWithoutSignature(obj); err != nil {
		return nil, err
	}
	r, err := obj.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// treeFiles opens files from the signed tag's tree, relative to the checksum file as
// `sha256sum -c` would.
type treeFiles struct {
	tree *object.Tree
	dir  string
}

func (t treeFiles) open(_ context.Context, name string) (io.ReadCloser, error) {
	p := path.Join(t.dir, strings.TrimPrefix(name, "./"))
	if strings.HasPrefix(p, "../") || p == ".." || path.IsAbs(p) {
		return nil, fmt.Errorf("%w: %q leaves the tree", ErrInvalid, name)
	}
	f, err := t.tree.File(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %q not in the tagged tree", ErrFileMissing, p)
	}
	return f.Reader()
}
