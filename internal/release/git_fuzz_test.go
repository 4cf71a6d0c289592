package release

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The seed corpora under testdata/fuzz/FuzzGit* are real git objects and packs, taken from
// the fixture repository (made by testdata/gen.sh with git, gpg and ssh-keygen). Remake
// them with:
//
//	TAMPERGUARD_WRITE_GIT_FUZZ_SEEDS=1 go test -run TestWriteGitFuzzSeeds ./internal/release
func TestWriteGitFuzzSeeds(t *testing.T) {
	if os.Getenv("TAMPERGUARD_WRITE_GIT_FUZZ_SEEDS") == "" {
		t.Skip("set TAMPERGUARD_WRITE_GIT_FUZZ_SEEDS=1 to remake testdata/fuzz/FuzzGit* from the fixture repository")
	}
	dir := fixture(t, "git", "uploader.git")
	write := func(target, name string, args ...[]byte) {
		d := filepath.Join("testdata", "fuzz", target)
		require.NoError(t, os.MkdirAll(d, 0o755))
		var b strings.Builder
		b.WriteString("go test fuzz v1\n")
		for _, a := range args {
			fmt.Fprintf(&b, "[]byte(%q)\n", a)
		}
		require.NoError(t, os.WriteFile(filepath.Join(d, name), []byte(b.String()), 0o644))
	}
	for _, name := range []string{"v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0", "v1.4.0", "sha1-signed", "expired-signed"} {
		write("FuzzGitTag", name, gitOutput(t, dir, "", "cat-file", "tag", name))
	}
	ofs, _ := fixturePack(t, false)
	ref, _ := fixturePack(t, true)
	write("FuzzGitPack", "fixture-ofs-delta", ofs)
	write("FuzzGitPack", "fixture-ref-delta", ref)
	root := gitOutput(t, dir, "", "cat-file", "tree", "v1.2.0^{tree}")
	write("FuzzGitTree", "fixture-root", root, []byte("SHA256SUMS"))

	// The first offset delta of the pack, with its base.
	ps, err := newPackStream(bytes.NewReader(ofs), packStreamLimits{objects: 1000, inflate: 64 << 20})
	require.NoError(t, err)
	bases := map[int64][]byte{}
	for {
		e, off, err := ps.next()
		require.NoError(t, err, "the fixture pack has an offset delta")
		data, err := ps.readData(e)
		require.NoError(t, err)
		if e.kind == packOfsDelta {
			if base, ok := bases[off-e.baseRel]; ok {
				write("FuzzGitDelta", "fixture", base, data)
				break
			}
			continue
		}
		bases[off] = data
	}
}

// Tag objects come from the repository before anything about them is trusted.
func FuzzGitTag(f *testing.F) {
	keys := maintainerKeys(f)
	signed := map[string]bool{}
	dir := fixture(f, "git", "uploader.git")
	for _, name := range []string{"v1.0.0", "v1.1.0", "v1.2.0"} {
		tg, err := parseTag(gitOutput(f, dir, "", "cat-file", "tag", name))
		require.NoError(f, err)
		signed[string(tg.Payload)] = true
	}
	f.Add([]byte("object 0123456789012345678901234567890123456789\ntype commit\ntag v1\ntagger A <a@b> 1 +0000\n\nm\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if int64(len(data)) > defaultGitLimits.tagObject {
			return // never read past this before a signature is checked
		}
		tg, err := parseTag(data)
		if err != nil {
			return
		}
		require.Equal(t, data, append(bytes.Clone(tg.Payload), tg.Signature...))
		require.NotEmpty(t, tg.Name)
		if len(tg.Signature) > 0 {
			ok := false
			for _, s := range signatureStarts {
				ok = ok || bytes.HasPrefix(tg.Signature, s)
			}
			require.True(t, ok, "the signature starts with an armor line")
			require.Equal(t, len(tg.Payload), signatureStart(data))
		}
		if _, err := keys.VerifyGitTag(tg.Payload, tg.Signature); err == nil {
			require.True(t, signed[string(tg.Payload)], "verified a payload the pinned keys never signed: %q", tg.Payload)
		}
	})
}

// Packs come from the server; every object kept must hash to the id it is filed under.
func FuzzGitPack(f *testing.F) {
	f.Add([]byte("PACK\x00\x00\x00\x02\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, strict := range []bool{true, false} {
			pol := collectPolicy{strict: strict, keep: 1 << 20, limit: func(o objType) int64 {
				if o == objBlob {
					return -1
				}
				return 64 << 10
			}, stream: packStreamLimits{objects: 256, inflate: 4 << 20}}
			objs, err := collectPack(bytes.NewReader(data), pol)
			if err != nil {
				continue
			}
			var total int
			for id, o := range objs {
				got, _ := hashObject(o.typ, o.data)
				require.Equal(t, id, got)
				require.NotEqual(t, objBlob, o.typ)
				require.LessOrEqual(t, len(o.data), 64<<10)
				total += len(o.data)
			}
			require.LessOrEqual(t, total, 1<<20)
		}
	})
}

func FuzzGitDelta(f *testing.F) {
	f.Add([]byte("hello, world\n"), []byte{13, 18, 0x90, 7, 4, 'g', 'i', 't', '!', 0x91, 6, 7})
	f.Fuzz(func(t *testing.T, base, delta []byte) {
		out, err := applyDelta(base, delta, 1<<20)
		if err != nil {
			return
		}
		_, dst, _, err := deltaHeader(delta)
		require.NoError(t, err)
		require.EqualValues(t, dst, len(out))
	})
}

func FuzzGitTree(f *testing.F) {
	f.Add([]byte("100644 a\x00aaaaaaaaaaaaaaaaaaaa40000 d\x00dddddddddddddddddddd"), []byte("d"))
	f.Fuzz(func(t *testing.T, data, name []byte) {
		e, ok, err := lookupTree(data, string(name))
		if err != nil || !ok {
			return
		}
		require.True(t, bytes.Contains(data, append(append([]byte(" "), name...), 0)))
		require.True(t, bytes.Contains(data, e.id[:]))
	})
}
