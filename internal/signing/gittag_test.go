package signing

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func openUploader(t *testing.T) *git.Repository {
	t.Helper()
	repo, err := git.PlainOpen(filepath.Join(testdataDir, "git", "uploader.git"))
	require.NoError(t, err)
	return repo
}

func tagObject(t *testing.T, repo *git.Repository, name string) *object.Tag {
	t.Helper()
	ref, err := repo.Tag(name)
	require.NoError(t, err)
	tag, err := repo.TagObject(ref.Hash())
	require.NoError(t, err)
	return tag
}

// splitTag returns what git signed (the tag object without its signature)
// and the signature block; go-git keeps SSH signatures in PGPSignature too.
func splitTag(t *testing.T, tag *object.Tag) (payload, sig []byte) {
	t.Helper()
	var encoded plumbing.MemoryObject
	require.NoError(t, tag.EncodeWithoutSignature(&encoded))
	r, err := encoded.Reader()
	require.NoError(t, err)
	payload, err = io.ReadAll(r)
	require.NoError(t, err)
	return payload, []byte(tag.PGPSignature)
}

func TestGitTagsGood(t *testing.T) {
	k := pinnedKeys(t)
	repo := openUploader(t)
	cases := []struct{ tag, scheme, keyFile string }{
		{"v1.0.0", "openpgp", "maintainer-ed25519.asc"},
		{"v1.1.0", "ssh", "release_ed25519.pub"},
		{"v1.2.0", "openpgp", "maintainer-rsa3072.asc"},
	}
	for _, c := range cases {
		t.Run(c.tag, func(t *testing.T) {
			payload, sig := splitTag(t, tagObject(t, repo, c.tag))
			require.NotEmpty(t, sig)
			signer, err := k.VerifyGitTag(payload, sig)
			require.NoError(t, err)
			assert.Equal(t, c.scheme, signer.Scheme)
			assert.Equal(t, fingerprint(t, c.keyFile), signer.Fingerprint)

			// The same bytes with the message changed do not verify.
			forged := bytes.Replace(payload, []byte("Release "), []byte("Re1ease "), 1)
			require.NotEqual(t, payload, forged)
			_, err = k.VerifyGitTag(forged, sig)
			assertRefused(t, err, ErrBadSignature)
		})
	}
}

func TestGitTagSSHSignatureIsInPGPSignatureField(t *testing.T) {
	tag := tagObject(t, openUploader(t), "v1.1.0")
	assert.True(t, strings.HasPrefix(tag.PGPSignature, "-----BEGIN SSH SIGNATURE-----"))
}

func TestGitTagsRefused(t *testing.T) {
	k := pinnedKeys(t)
	repo := openUploader(t)
	cases := []struct {
		tag    string
		reason error
	}{
		{"v1.4.0", ErrUnknownKey},
		{"sha1-signed", ErrWeakAlgorithm},
		{"expired-signed", ErrKeyExpired},
		{"v1.3.0", ErrNoSignature},
	}
	for _, c := range cases {
		t.Run(c.tag, func(t *testing.T) {
			payload, sig := splitTag(t, tagObject(t, repo, c.tag))
			_, err := k.VerifyGitTag(payload, sig)
			assertRefused(t, err, c.reason)
		})
	}
}

func TestGitTagUnsignedAndLightweight(t *testing.T) {
	repo := openUploader(t)
	assert.Empty(t, tagObject(t, repo, "v1.3.0").PGPSignature)

	ref, err := repo.Tag("v1.5.0")
	require.NoError(t, err)
	_, err = repo.TagObject(ref.Hash())
	assert.ErrorIs(t, err, plumbing.ErrObjectNotFound, "a lightweight tag has no tag object, so nothing signed")
}

func TestGitTagRefusesDetachedOnlyFormats(t *testing.T) {
	k := pinnedKeys(t)
	msg := release(t, "SHA256SUMS")
	// Binary OpenPGP and cosign are never git tag signatures.
	_, err := k.VerifyGitTag(msg, release(t, "SHA256SUMS.rsa.sig"))
	assertRefused(t, err, ErrMalformed)
	_, err = k.VerifyGitTag(msg, release(t, "SHA256SUMS.cosign.sig"))
	assertRefused(t, err, ErrMalformed)
	_, err = k.VerifyGitTag(msg, []byte("-----BEGIN PGP MESSAGE-----\n"))
	assertRefused(t, err, ErrMalformed)
	// An armored OpenPGP detached signature is the same format git uses.
	_, err = k.VerifyGitTag(msg, release(t, "SHA256SUMS.asc"))
	assert.NoError(t, err)
}

// The fixture's promise: each tagged tree's SHA256SUMS matches its files.
func TestGitFixtureTreesMatchTheirChecksums(t *testing.T) {
	repo := openUploader(t)
	for _, name := range []string{"expired-signed", "v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0", "v1.4.0", "v1.5.0", "sha1-signed"} {
		t.Run(name, func(t *testing.T) {
			ref, err := repo.Tag(name)
			require.NoError(t, err)
			hash := ref.Hash()
			if tag, err := repo.TagObject(hash); err == nil {
				hash = tag.Target
			}
			commit, err := repo.CommitObject(hash)
			require.NoError(t, err)
			tree, err := commit.Tree()
			require.NoError(t, err)
			sums := fileContents(t, tree, "SHA256SUMS")
			sc := bufio.NewScanner(strings.NewReader(sums))
			n := 0
			for sc.Scan() {
				digest, file, ok := strings.Cut(sc.Text(), " ")
				require.True(t, ok)
				file = strings.TrimPrefix(strings.TrimPrefix(file, " "), "*")
				sum := sha256.Sum256([]byte(fileContents(t, tree, file)))
				assert.Equal(t, digest, hex.EncodeToString(sum[:]), file)
				n++
			}
			assert.Equal(t, 2, n)
		})
	}
	head, err := repo.Reference(plumbing.NewBranchReferenceName("main"), true)
	require.NoError(t, err)
	sha1Tag := tagObject(t, repo, "sha1-signed")
	assert.Equal(t, sha1Tag.Target, head.Hash(), "main is the newest commit")
}

func fileContents(t *testing.T, tree *object.Tree, name string) string {
	t.Helper()
	f, err := tree.File(name)
	require.NoError(t, err)
	s, err := f.Contents()
	require.NoError(t, err)
	return s
}
