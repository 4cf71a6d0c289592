package release

import (
	"bytes"
	"compress/zlib"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gitOutput runs git and returns its raw output (stdin optional).
func gitOutput(t testing.TB, dir, stdin string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(gitBin(t), args...)
	cmd.Dir = dir
	cmd.Env = append(cmd.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "git %v: %s", args, stderr.String())
	return out
}

// fixturePack is a pack of every object of the fixture repository, made by git
// pack-objects (with deltas; offset deltas unless refDeltas).
func fixturePack(t testing.TB, refDeltas bool) (pack []byte, ids []string) {
	t.Helper()
	dir := fixture(t, "git", "uploader.git")
	list := string(gitOutput(t, dir, "", "rev-list", "--objects", "--all"))
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		ids = append(ids, strings.Fields(line)[0])
	}
	args := []string{"pack-objects", "--stdout", "-q"}
	if !refDeltas {
		args = append(args, "--delta-base-offset")
	}
	return gitOutput(t, dir, strings.Join(ids, "\n")+"\n", args...), ids
}

func everything(objType) int64 { return 1 << 20 }

func TestCollectPackRealPack(t *testing.T) {
	for _, ref := range []bool{false, true} {
		pack, ids := fixturePack(t, ref)
		objs, err := collectPack(bytes.NewReader(pack), collectPolicy{strict: true, keep: 64 << 20, limit: everything, stream: packStreamLimits{objects: 1000, inflate: 64 << 20}})
		require.NoError(t, err)
		assert.Len(t, objs, len(ids))
		for _, id := range ids {
			o, ok := objs[mustOID(t, id)]
			if assert.True(t, ok, id) {
				assert.Equal(t, id, o.id.String())
			}
		}
	}
}

func TestCollectPackLimits(t *testing.T) {
	pack, ids := fixturePack(t, false)
	tagsOnly := func(o objType) int64 {
		if o == objTag {
			return 1 << 20
		}
		return -1
	}
	// Dropping types: only the tags are kept, the rest is read through.
	objs, err := collectPack(bytes.NewReader(pack), collectPolicy{strict: true, keep: 1 << 20, limit: tagsOnly, stream: packStreamLimits{objects: 1000, inflate: 64 << 20}})
	require.NoError(t, err)
	for _, o := range objs {
		assert.Equal(t, objTag, o.typ)
	}
	assert.NotEmpty(t, objs)

	var le *packLimitError
	_, err = collectPack(bytes.NewReader(pack), collectPolicy{strict: true, keep: 64 << 20, limit: func(objType) int64 { return 100 }, stream: packStreamLimits{objects: 1000, inflate: 64 << 20}})
	assert.ErrorAs(t, err, &le, "an object over its limit fails a strict pack")
	_, err = collectPack(bytes.NewReader(pack), collectPolicy{strict: true, keep: 64 << 20, limit: everything, stream: packStreamLimits{objects: uint32(len(ids) - 1), inflate: 64 << 20}})
	assert.ErrorAs(t, err, &le, "more objects than allowed")
	_, err = collectPack(bytes.NewReader(pack), collectPolicy{strict: true, keep: 64 << 20, limit: everything, stream: packStreamLimits{objects: 1000, inflate: 1000}})
	assert.ErrorAs(t, err, &le, "more inflated bytes than allowed")
	_, err = collectPack(bytes.NewReader(pack), collectPolicy{strict: true, keep: 1000, limit: everything, stream: packStreamLimits{objects: 1000, inflate: 64 << 20}})
	assert.ErrorAs(t, err, &le, "more kept bytes than allowed")

	// Non-strict: oversized objects are dropped, as are deltas against them.
	objs, err = collectPack(bytes.NewReader(pack), collectPolicy{keep: 64 << 20, limit: func(objType) int64 { return 300 }, stream: packStreamLimits{objects: 1000, inflate: 64 << 20}})
	require.NoError(t, err)
	for _, o := range objs {
		assert.LessOrEqual(t, len(o.data), 300)
	}
}

func TestCollectPackCorrupt(t *testing.T) {
	pack, _ := fixturePack(t, false)
	pol := collectPolicy{strict: true, keep: 64 << 20, limit: everything, stream: packStreamLimits{objects: 1000, inflate: 64 << 20}}
	for i := 12; i < len(pack)-20; i += 97 {
		bad := bytes.Clone(pack)
		bad[i] ^= 0x55
		objs, err := collectPack(bytes.NewReader(bad), pol)
		if err == nil {
			// A flipped byte can only go unnoticed if it does not change any object.
			for id, o := range objs {
				got, _ := hashObject(o.typ, o.data)
				assert.Equal(t, id, got)
			}
		}
	}
	_, err := collectPack(bytes.NewReader(pack[:len(pack)/2]), pol)
	assert.Error(t, err)
	_, err = collectPack(strings.NewReader("NOTAPACK0000"), pol)
	assert.Error(t, err)
}

func TestApplyDelta(t *testing.T) {
	base := []byte("hello, world\n")
	// base size 13, result size 18: copy 7 bytes at 0 ("hello, "), insert "git!", copy 7 bytes at 6 (" world\n").
	delta := []byte{13, 18, 0x90, 7, 4, 'g', 'i', 't', '!', 0x91, 6, 7}
	out, err := applyDelta(base, delta, 100)
	require.NoError(t, err)
	assert.Equal(t, "hello, git! world\n", string(out))

	var le *packLimitError
	_, err = applyDelta(base, delta, 10)
	assert.ErrorAs(t, err, &le)
	for _, bad := range [][]byte{
		{14, 18, 0x90, 7},    // wrong base size
		{13, 18, 0x90, 7},    // short result
		{13, 5, 0x90, 7},     // copies past the result
		{13, 3, 0x91, 12, 3}, // copies past the base
		{13, 1, 0},           // reserved instruction
		{13, 4, 5, 'a'},      // truncated insert
		{13},                 // truncated header
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1}, // size overflow
	} {
		_, err := applyDelta(base, bad, 100)
		assert.Error(t, err, "%v", bad)
	}
}

// The tag parser agrees with git on the fixtures: the payload is the object without its
// signature, byte for byte what go-git re-encodes, and the fields are git's.
func TestParseTagFixtures(t *testing.T) {
	dir := fixture(t, "git", "uploader.git")
	repo, err := git.PlainOpen(dir)
	require.NoError(t, err)
	for _, name := range []string{"v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0", "v1.4.0", "sha1-signed", "expired-signed"} {
		raw := gitOutput(t, dir, "", "cat-file", "tag", name)
		tg, err := parseTag(raw)
		require.NoError(t, err, name)
		assert.Equal(t, name, tg.Name)
		assert.Equal(t, objCommit, tg.TargetType)
		assert.Equal(t, strings.TrimSpace(string(gitOutput(t, dir, "", "rev-parse", name+"^{commit}"))), tg.Object.String())
		assert.Equal(t, raw, append(bytes.Clone(tg.Payload), tg.Signature...))

		ref, err := repo.Tag(name)
		require.NoError(t, err)
		to, err := repo.TagObject(ref.Hash())
		require.NoError(t, err)
		assert.Equal(t, to.PGPSignature, string(tg.Signature))
		assert.True(t, to.Tagger.When.Equal(tg.Time), name)
		var enc plumbing.MemoryObject
		require.NoError(t, to.EncodeWithoutSignature(&enc))
		r, err := enc.Reader()
		require.NoError(t, err)
		want, err := io.ReadAll(r)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(tg.Payload), name)
	}
}

func TestParseTagRefusals(t *testing.T) {
	good := "object 0123456789012345678901234567890123456789\ntype commit\ntag v1\ntagger A <a@b> 1700000000 +0000\n\nmsg\n"
	_, err := parseTag([]byte(good))
	require.NoError(t, err)
	for name, bad := range map[string]string{
		"no object":        "type commit\ntag v1\n\n",
		"short id":         "object 0123\ntype commit\ntag v1\n\n",
		"bad type":         "object 0123456789012345678901234567890123456789\ntype thing\ntag v1\n\n",
		"two tags":         "object 0123456789012345678901234567890123456789\ntype commit\ntag v1\ntag v2\n\n",
		"unterminated":     "object 0123456789012345678901234567890123456789\ntype commit\ntag v1",
		"empty name":       "object 0123456789012345678901234567890123456789\ntype commit\ntag \n\n",
		"tagger elsewhere": "object 0123456789012345678901234567890123456789\ntype commit\ntag v1\nx y\ntagger A <a@b> 1 +0000\n\n",
		"order":            "type commit\nobject 0123456789012345678901234567890123456789\ntag v1\n\n",
	} {
		_, err := parseTag([]byte(bad))
		assert.Error(t, err, name)
	}
	// The last signature block counts, as git reads it.
	two := good + "-----BEGIN PGP SIGNATURE-----\nfake\n-----END PGP SIGNATURE-----\n-----BEGIN SSH SIGNATURE-----\nx\n"
	tg, err := parseTag([]byte(two))
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(tg.Signature, []byte("-----BEGIN SSH SIGNATURE-----")))
}

func TestLooseHeader(t *testing.T) {
	enc := func(s string) []byte {
		var b bytes.Buffer
		w := zlib.NewWriter(&b)
		w.Write([]byte(s))
		w.Close()
		return b.Bytes()
	}
	typ, size, r, err := looseHeader(bytes.NewReader(enc("blob 3\x00abc")))
	require.NoError(t, err)
	assert.Equal(t, objBlob, typ)
	assert.EqualValues(t, 3, size)
	b, err := readAllExact(r, size)
	require.NoError(t, err)
	assert.Equal(t, "abc", string(b))

	_, _, r, err = looseHeader(bytes.NewReader(enc("blob 3\x00abcd")))
	require.NoError(t, err)
	_, err = readAllExact(r, 3)
	assert.Error(t, err, "longer than declared")
	_, _, r, err = looseHeader(bytes.NewReader(enc("blob 3\x00ab")))
	require.NoError(t, err)
	_, err = readAllExact(r, 3)
	assert.Error(t, err, "shorter than declared")
	for _, bad := range []string{"blob 03\x00abc", "blob\x00", "bob 3\x00abc", "blob -3\x00", strings.Repeat("x", 40)} {
		_, _, _, err := looseHeader(bytes.NewReader(enc(bad)))
		assert.True(t, errors.Is(err, ErrInvalid), "%q: %v", bad, err)
	}
}

func mustOID(t testing.TB, s string) oid {
	t.Helper()
	id, ok := parseOID([]byte(s))
	require.True(t, ok, s)
	return id
}
