package engine_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/config"
	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/release"
)

// The release formats real projects sign with, end to end: a rule in the configuration, a
// release host (httptest) serving the real signed files, the engine judging objects in a
// Cloud Storage fake, restoring, and refusing what does not verify.

// fileHost serves files by path, as a download host or GitHub's API and storage do.
type fileHost struct {
	srv   *httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	redir map[string]string
}

func newFileHost(t testing.TB) *fileHost {
	h := &fileHost{files: map[string][]byte{}, redir: map[string]string{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		body, ok := h.files[r.URL.EscapedPath()]
		loc := h.redir[r.URL.EscapedPath()]
		h.mu.Unlock()
		switch {
		case loc != "":
			http.Redirect(w, r, loc, http.StatusFound)
		case ok:
			_, _ = w.Write(body)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *fileHost) put(path string, body []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.files[path] = body
}

func (h *fileHost) drop(path string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.files, path)
}

func fixture(t testing.TB, elem ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(testdata(t, elem...))
	require.NoError(t, err)
	return b
}

// finalize judges the latest write of object as its finalize event would.
func (h *harness) finalize(object string, data []byte) engine.Decision {
	g := h.put(object, data)
	return h.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: object, Generation: g})
}

// okThenTamperedThenRestored is the path every format must take: the signed bytes are ok;
// other bytes are tampered and the signed ones are put back.
func okThenTamperedThenRestored(t *testing.T, h *harness, object string, good []byte) (ok, bad engine.Decision) {
	t.Helper()
	ok = h.finalize(object, good)
	require.Equal(t, engine.VerdictOK, ok.Verdict, ok.Error)
	assert.Equal(t, engine.ActionNone, ok.Action)
	bad = h.finalize(object, tampered(good))
	require.Equal(t, engine.VerdictTampered, bad.Verdict, bad.Error)
	assert.Equal(t, engine.ActionRestored, bad.Action, bad.Error)
	assert.Equal(t, sum(tampered(good)), bad.ActualSHA256)
	_, live := h.live(object)
	assert.Equal(t, good, live, "the signed bytes are live again")
	return ok, bad
}

// neverActed checks that an unverifiable verdict changed nothing and alerted.
func neverActed(t *testing.T, h *harness, d engine.Decision, object string, gen int64, reason engine.Reason) {
	t.Helper()
	assert.Equal(t, engine.VerdictUnverifiable, d.Verdict, d.Error)
	assert.Equal(t, reason, d.Reason, d.Error)
	assert.Equal(t, engine.ActionNone, d.Action)
	assert.False(t, d.Transient)
	liveGen, _ := h.live(object)
	assert.Equal(t, gen, liveGen, "never restored, never quarantined")
	assert.NotEmpty(t, h.notes.all(), "people hear of it")
}

const codecovKeyID = "openpgp:27034E7FDB850E0BBC2C62FF806BB28AED779869"

// Codecov's layout (the README's example): cli.codecov.io/{latest|vX}/{os}/codecov with
// codecov.SHA256SUM and its detached signature next to it, Codecov's key pinned.
func TestCodecovLayout(t *testing.T) {
	t.Run("the real signed pair: the object is judged against Codecov's signed digest", func(t *testing.T) {
		host := newFileHost(t)
		host.put("/latest/linux/codecov.SHA256SUM", fixture(t, "codecov", "codecov-demo.SHA256SUM"))
		host.put("/latest/linux/codecov.SHA256SUM.sig", fixture(t, "codecov", "codecov-demo.SHA256SUM.sig"))
		h := newHarness(t, harnessOpts{extra: `  - bucket: ` + bucket + `
    objects: ["cli/latest/linux/codecov"]
    release: {url: "` + host.srv.URL + `/latest/linux/codecov.SHA256SUM"}
    keys: {openpgp: [` + testdata(t, "codecov", "codecov_pgp_keys.asc") + `]}
    fallback: alert
`})
		// Codecov's binaries are not in this repository: the object here is not the one
		// Codecov signed, so it is tampered; the host has no copy to restore from.
		d := h.finalize("cli/latest/linux/codecov", fixture(t, "release", "codecov"))
		assert.Equal(t, engine.VerdictTampered, d.Verdict, d.Error)
		assert.Equal(t, "7cac64362baba90ba1c0fb388c689da6e4a56f744d7a61acf0d6aa11e651ee44", d.ExpectedSHA256, "the digest Codecov signed in 2022")
		assert.Equal(t, codecovKeyID, d.Signer)
		assert.Equal(t, engine.ReasonNoGoodSource, d.Reason)
		assert.Equal(t, engine.ActionNone, d.Action, "fallback: alert")
		require.Len(t, h.notes.all(), 1)

		// The 2021 attack: the checksum file rewritten next to the binary. Refused, never acted on.
		evil := bytes.Replace(fixture(t, "codecov", "codecov-demo.SHA256SUM"), []byte("7cac"), []byte(sum(fixture(t, "release", "codecov"))[:4]), 1)
		host.put("/latest/linux/codecov.SHA256SUM", evil)
		h2 := newHarness(t, harnessOpts{extra: `  - bucket: ` + bucket + `
    objects: ["cli/latest/linux/codecov"]
    release: {url: "` + host.srv.URL + `/latest/linux/codecov.SHA256SUM"}
    keys: {openpgp: [` + testdata(t, "codecov", "codecov_pgp_keys.asc") + `]}
`})
		g := h2.put("cli/latest/linux/codecov", fixture(t, "release", "codecov"))
		d = h2.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "cli/latest/linux/codecov", Generation: g})
		neverActed(t, h2, d, "cli/latest/linux/codecov", g, engine.ReasonSignatureRefused)
	})

	t.Run("the same layout signed by a test key: ok, tampered, restored", func(t *testing.T) {
		host := newFileHost(t)
		host.put("/v0.2.0/linux/codecov.SHA256SUM", fixture(t, "wire", "codecov-layout", "codecov.SHA256SUM"))
		host.put("/v0.2.0/linux/codecov.SHA256SUM.sig", fixture(t, "wire", "codecov-layout", "codecov.SHA256SUM.sig"))
		host.put("/v0.2.0/linux/codecov", fixture(t, "release", "codecov"))
		rule := `  - bucket: ` + bucket + `
    objects: ["cli/{tag}/linux/codecov"]
    release: {url: "` + host.srv.URL + `/{tag}/linux/codecov.SHA256SUM", tag: "{tag}"}
    keys: {openpgp: [` + testdata(t, "wire", "filesigner-ed25519.asc") + `]}
`
		h := newHarness(t, harnessOpts{extra: rule})
		good := fixture(t, "release", "codecov")
		_, bad := okThenTamperedThenRestored(t, h, "cli/v0.2.0/linux/codecov", good)
		assert.Contains(t, bad.Source, "gs://", "from the good generation")

		// No good generation: the release's own copy, checked before use.
		h = newHarness(t, harnessOpts{extra: rule})
		d := h.finalize("cli/v0.2.0/linux/codecov", tampered(good))
		assert.Equal(t, engine.ActionRestored, d.Action, d.Error)
		assert.Contains(t, d.Source, "release v0.2.0")
		_, live := h.live("cli/v0.2.0/linux/codecov")
		assert.Equal(t, good, live)
	})
}

// GoReleaser's layout: checksums.txt and checksums.txt.sigstore.json signed keyless by the
// release workflow (the real files of goreleaser/example-secure v0.1.0).
func TestGoReleaserKeyless(t *testing.T) {
	host := newFileHost(t)
	sums := fixture(t, "sigstore", "goreleaser-example-secure.checksums.txt")
	host.put("/gr/v0.1.0/checksums.txt", sums)
	host.put("/gr/v0.1.0/checksums.txt.sigstore.json", fixture(t, "sigstore", "goreleaser-example-secure.checksums.txt.sigstore.json"))
	root := testdata(t, "sigstore", "trusted_root.public-good.json")
	identity := func(issuer, re, repo string) string {
		return `{issuer: "` + issuer + `", identity_regexp: '` + re + `', source_repository: "` + repo + `"}`
	}
	good := identity("https://token.actions.githubusercontent.com", `^https://github\.com/goreleaser/example-secure/\.github/workflows/release\.yml@refs/tags/`, "https://github.com/goreleaser/example-secure")
	rule := func(prefix, release, id string) string {
		return `  - bucket: ` + bucket + `
    objects: ["` + prefix + `/{tag}/*"]
    release: {` + release + `, tag: "{tag}"}
    keys: {sigstore: [` + id + `]}
    sigstore: {trusted_root: ` + root + `}
    fallback: alert
`
	}
	checksums := `url: "` + host.srv.URL + `/gr/{tag}/checksums.txt"`

	t.Run("the keyless bundle over the checksum file", func(t *testing.T) {
		h := newHarness(t, harnessOpts{extra: rule("gr", checksums, good)})
		// GoReleaser's archives are not in this repository: an object claiming to be one is
		// judged against the digest the workflow signed.
		d := h.finalize("gr/v0.1.0/example_linux_amd64.tar.gz", []byte("not the archive"))
		assert.Equal(t, engine.VerdictTampered, d.Verdict, d.Error)
		assert.Equal(t, strings.Fields(string(sums))[2*6], d.ExpectedSHA256)
		assert.Equal(t, "sigstore:https://github.com/goreleaser/example-secure/.github/workflows/release.yml@refs/tags/v0.1.0", d.Signer)
	})
	t.Run("the keyless bundle as a signature over the file itself: ok, tampered, restored", func(t *testing.T) {
		h := newHarness(t, harnessOpts{extra: rule("grfile", `url: "`+host.srv.URL+`/gr/{tag}/{name}", signed: file`, good)})
		ok, bad := okThenTamperedThenRestored(t, h, "grfile/v0.1.0/checksums.txt", sums)
		assert.Equal(t, "sigstore:https://github.com/goreleaser/example-secure/.github/workflows/release.yml@refs/tags/v0.1.0", ok.Signer)
		assert.Empty(t, ok.ExpectedSHA256, "a signature over the file names no digest")
		assert.Equal(t, ok.Signer, bad.Signer, "who vouched for the bytes put back")
	})

	refusals := map[string]string{
		"wrong identity": identity("https://token.actions.githubusercontent.com", `^https://github\.com/goreleaser/goreleaser/`, "https://github.com/goreleaser/example-secure"),
		"wrong issuer": identity("https://accounts.google.com", `^https://github\.com/goreleaser/example-secure/\.github/workflows/release\.yml@refs/tags/`,
			"https://github.com/goreleaser/example-secure"),
		"wrong repository": identity("https://token.actions.githubusercontent.com", `^https://github\.com/goreleaser/example-secure/\.github/workflows/release\.yml@refs/tags/`,
			"https://github.com/goreleaser/goreleaser"),
	}
	for name, id := range refusals {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{extra: rule("gr", checksums, id)})
			g := h.put("gr/v0.1.0/example_linux_amd64.tar.gz", []byte("anything"))
			d := h.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "gr/v0.1.0/example_linux_amd64.tar.gz", Generation: g})
			neverActed(t, h, d, "gr/v0.1.0/example_linux_amd64.tar.gz", g, engine.ReasonSignatureRefused)
			assert.Contains(t, d.Error, "identity")
		})
	}
	t.Run("a bundle for another artifact", func(t *testing.T) {
		other := newFileHost(t)
		other.put("/gr/v0.1.0/checksums.txt", bytes.Replace(sums, []byte("3752638e"), []byte("0752638e"), 1))
		other.put("/gr/v0.1.0/checksums.txt.sigstore.json", fixture(t, "sigstore", "goreleaser-example-secure.checksums.txt.sigstore.json"))
		h := newHarness(t, harnessOpts{extra: rule("gr", `url: "`+other.srv.URL+`/gr/{tag}/checksums.txt"`, good)})
		g := h.put("gr/v0.1.0/example_linux_amd64.tar.gz", []byte("anything"))
		d := h.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "gr/v0.1.0/example_linux_amd64.tar.gz", Generation: g})
		neverActed(t, h, d, "gr/v0.1.0/example_linux_amd64.tar.gz", g, engine.ReasonSignatureRefused)
	})
	t.Run("an expired certificate without a valid timestamp", func(t *testing.T) {
		// The Fulcio certificate was valid for ten minutes in 2025; without the Rekor entry
		// nothing shows the signature was made then.
		var b map[string]any
		require.NoError(t, json.Unmarshal(fixture(t, "sigstore", "goreleaser-example-secure.checksums.txt.sigstore.json"), &b))
		delete(b, "rekorBundle")
		stripped, err := json.Marshal(b)
		require.NoError(t, err)
		other := newFileHost(t)
		other.put("/gr/v0.1.0/checksums.txt", sums)
		other.put("/gr/v0.1.0/checksums.txt.sigstore.json", stripped)
		h := newHarness(t, harnessOpts{extra: rule("gr", `url: "`+other.srv.URL+`/gr/{tag}/checksums.txt"`, good)})
		g := h.put("gr/v0.1.0/example_linux_amd64.tar.gz", []byte("anything"))
		d := h.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "gr/v0.1.0/example_linux_amd64.tar.gz", Generation: g})
		neverActed(t, h, d, "gr/v0.1.0/example_linux_amd64.tar.gz", g, engine.ReasonSignatureRefused)
	})
}

// Node.js's clearsigned SHASUMS256.txt.asc through a url rule: no signature url needed.
func TestClearsignedChecksums(t *testing.T) {
	t.Run("Node.js v14.2.0", func(t *testing.T) {
		host := newFileHost(t)
		host.put("/dist/v14.2.0/SHASUMS256.txt.asc", fixture(t, "clearsigned", "node-v14.2.0-SHASUMS256.txt.asc"))
		h := newHarness(t, harnessOpts{extra: `  - bucket: ` + bucket + `
    objects: ["node/{tag}/*"]
    release: {url: "` + host.srv.URL + `/dist/{tag}/SHASUMS256.txt.asc", tag: "{tag}"}
    keys: {openpgp: [` + testdata(t, "clearsigned", "node-8FCCA13FEF1D0C2E91008E09770F7A9A5AE15600.asc") + `]}
    fallback: alert
`})
		// Node's tarballs are not in this repository: an object claiming to be one is judged
		// against the digest in the signed text.
		d := h.finalize("node/v14.2.0/node-v14.2.0-linux-x64.tar.gz", []byte("not node"))
		assert.Equal(t, engine.VerdictTampered, d.Verdict, d.Error)
		assert.Equal(t, "openpgp:8FCCA13FEF1D0C2E91008E09770F7A9A5AE15600", d.Signer)
		assert.Len(t, d.ExpectedSHA256, 64)
	})
	t.Run("a clearsigned file by a test key: ok, tampered, restored", func(t *testing.T) {
		host := newFileHost(t)
		host.put("/cs/SHA256SUMS.asc", fixture(t, "clearsigned", "SHA256SUMS.asc"))
		h := newHarness(t, harnessOpts{extra: `  - bucket: ` + bucket + `
    objects: ["cs/install.sh"]
    release: {url: "` + host.srv.URL + `/cs/SHA256SUMS.asc"}
    keys: {openpgp: [` + testdata(t, "clearsigned", "clearsign-ed25519.asc") + `]}
`})
		okThenTamperedThenRestored(t, h, "cs/install.sh", fixture(t, "release", "install.sh"))
	})
}

// A checksum file that lists SHA-512 digests only: objects are hashed with SHA-512.
func TestSHA512Checksums(t *testing.T) {
	host := newFileHost(t)
	host.put("/s/SHA512SUMS", fixture(t, "wire", "SHA512SUMS"))
	host.put("/s/SHA512SUMS.asc", fixture(t, "wire", "SHA512SUMS.asc"))
	h := newHarness(t, harnessOpts{extra: `  - bucket: ` + bucket + `
    objects: ["s512/install.sh"]
    release: {url: "` + host.srv.URL + `/s/SHA512SUMS", entry: install.sh}
    keys: {openpgp: [` + testdata(t, "wire", "filesigner-ed25519.asc") + `]}
`})
	good := fixture(t, "release", "install.sh")
	ok, bad := okThenTamperedThenRestored(t, h, "s512/install.sh", good)
	want := "sha512:" + strings.Fields(string(fixture(t, "wire", "SHA512SUMS")))[0]
	assert.Equal(t, want, ok.ExpectedDigest)
	assert.Equal(t, want, ok.ActualDigest)
	assert.Empty(t, ok.ExpectedSHA256, "no SHA-256 is listed")
	assert.Equal(t, sum(good), ok.ActualSHA256)
	assert.Equal(t, want, bad.ExpectedDigest)
	assert.NotEqual(t, want, bad.ActualDigest)
	assert.True(t, strings.HasPrefix(bad.ActualDigest, "sha512:"))
}

// release.signed: file: a detached signature over each file (OpenPGP, SSH, a cosign bundle).
func TestSignatureOverTheFile(t *testing.T) {
	good := fixture(t, "release", "install.sh")
	serve := func(t *testing.T) *fileHost {
		host := newFileHost(t)
		host.put("/f/v1/install.sh", good)
		for _, s := range []string{".asc", ".sig", ".sigstore.json"} {
			host.put("/f/v1/install.sh"+s, fixture(t, "wire", "install.sh"+s))
		}
		return host
	}
	rule := func(host *fileHost, threshold int, extra string) string {
		return `  - bucket: ` + bucket + `
    objects: ["f/{tag}/install.sh"]
    release: {url: "` + host.srv.URL + `/f/{tag}/{name}", signed: file, tag: "{tag}"}
    keys:
      openpgp: [` + testdata(t, "wire", "filesigner-ed25519.asc") + `]
      ssh: [` + testdata(t, "wire", "filesigner_ed25519.pub") + `]
      cosign: [` + testdata(t, "keys", "cosign.pub") + `]
      threshold: ` + fmt.Sprint(threshold) + `
` + extra
	}

	t.Run("three signers: ok, tampered, restored", func(t *testing.T) {
		h := newHarness(t, harnessOpts{extra: rule(serve(t), 3, "")})
		ok, bad := okThenTamperedThenRestored(t, h, "f/v1/install.sh", good)
		assert.Regexp(t, "^openpgp:", ok.Signer)
		assert.Contains(t, bad.Source, "gs://")
	})
	t.Run("restored from the release's copy, checked the same way", func(t *testing.T) {
		h := newHarness(t, harnessOpts{extra: rule(serve(t), 1, "")})
		d := h.finalize("f/v1/install.sh", tampered(good))
		assert.Equal(t, engine.VerdictTampered, d.Verdict, d.Error)
		assert.Equal(t, engine.ActionRestored, d.Action, d.Error)
		assert.Contains(t, d.Source, "release")
	})
	t.Run("signatures replaced by another key's: refused, never acted on", func(t *testing.T) {
		host := serve(t)
		host.put("/f/v1/install.sh.asc", fixture(t, "release", "SHA256SUMS.other.asc"))
		host.drop("/f/v1/install.sh.sig")
		host.drop("/f/v1/install.sh.sigstore.json")
		h := newHarness(t, harnessOpts{extra: rule(host, 1, "    fallback: quarantine\n")})
		h.put("f/v1/install.sh", good)
		g := h.put("f/v1/install.sh", tampered(good))
		d := h.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "f/v1/install.sh", Generation: g})
		neverActed(t, h, d, "f/v1/install.sh", g, engine.ReasonSignatureRefused)
	})
	t.Run("a signature by the pinned key over other bytes, and no copy it covers: unverifiable", func(t *testing.T) {
		// The host's signature covers bytes nobody has: it may be the attacker's doing (a
		// replayed signature of another file), so nothing is quarantined on its word.
		host := newFileHost(t)
		host.put("/f/v1/install.sh.asc", fixture(t, "wire", "SHA512SUMS.asc"))
		h := newHarness(t, harnessOpts{extra: rule(host, 1, "    fallback: quarantine\n")})
		g := h.put("f/v1/install.sh", good)
		d := h.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "f/v1/install.sh", Generation: g})
		neverActed(t, h, d, "f/v1/install.sh", g, engine.ReasonNotVouched)
		_, live := h.live("f/v1/install.sh")
		assert.Equal(t, good, live)
	})
	t.Run("threshold not met", func(t *testing.T) {
		host := serve(t)
		host.drop("/f/v1/install.sh.sig")
		h := newHarness(t, harnessOpts{extra: rule(host, 3, "")})
		g := h.put("f/v1/install.sh", tampered(good))
		d := h.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "f/v1/install.sh", Generation: g})
		neverActed(t, h, d, "f/v1/install.sh", g, engine.ReasonSignatureRefused)
		assert.Contains(t, d.Error, "distinct pinned keys")
	})
}

// The audit's memo remembers only releases that list the SHA-256 the bytes hashed to: an
// object vouched for by signatures over it, or by a SHA-512-only listing, is read and checked
// by every audit.
func TestAuditMemoOnlyForSHA256Listings(t *testing.T) {
	good := fixture(t, "release", "install.sh")
	host := newFileHost(t)
	host.put("/f/v1/install.sh", good)
	host.put("/f/v1/install.sh.asc", fixture(t, "wire", "install.sh.asc"))
	host.put("/s/SHA512SUMS", fixture(t, "wire", "SHA512SUMS"))
	host.put("/s/SHA512SUMS.asc", fixture(t, "wire", "SHA512SUMS.asc"))
	h := newHarness(t, harnessOpts{extra: `  - bucket: ` + bucket + `
    objects: ["f/{tag}/install.sh"]
    release: {url: "` + host.srv.URL + `/f/{tag}/{name}", signed: file, tag: "{tag}"}
    keys: {openpgp: [` + testdata(t, "wire", "filesigner-ed25519.asc") + `]}
  - bucket: ` + bucket + `
    objects: ["s512/install.sh"]
    release: {url: "` + host.srv.URL + `/s/SHA512SUMS", entry: install.sh}
    keys: {openpgp: [` + testdata(t, "wire", "filesigner-ed25519.asc") + `]}
`})
	h.put("f/v1/install.sh", good)
	h.put("s512/install.sh", good)
	h.put("dl/a.sh", h.good) // listed with a SHA-256: remembered
	for run := range 2 {
		rep, err := h.instance(nil).AuditWith(h.ctx, engine.AuditOptions{Prefixes: []string{"f/", "s512/", "dl/"}}, func(d *engine.Decision) {
			t.Errorf("run %d: %s is %s: %s", run, d.Object, d.Verdict, d.Error)
		})
		require.NoError(t, err)
		assert.Equal(t, 3, rep.Verdicts[engine.VerdictOK], "run %d", run)
		if run == 1 {
			assert.Equal(t, 1, rep.Reused, "only the object whose release lists its SHA-256")
			assert.Equal(t, 2, rep.Read, "the other two are read and checked again")
		}
	}
}

// k-of-n over a checksum file: two signers required, one offered.
func TestThresholdNotMet(t *testing.T) {
	host := newFileHost(t)
	host.put("/t/SHA256SUMS", fixture(t, "release", "SHA256SUMS"))
	host.put("/t/SHA256SUMS.asc", fixture(t, "release", "SHA256SUMS.asc"))
	rule := func(threshold int) string {
		return `  - bucket: ` + bucket + `
    objects: ["t/install.sh"]
    release: {url: "` + host.srv.URL + `/t/SHA256SUMS"}
    keys: {openpgp: [` + testdata(t, "keys", "maintainer-ed25519.asc") + `], cosign: [` + testdata(t, "keys", "cosign.pub") + `], threshold: ` + fmt.Sprint(threshold) + `}
`
	}
	good := fixture(t, "release", "install.sh")
	h := newHarness(t, harnessOpts{extra: rule(2)})
	g := h.put("t/install.sh", tampered(good))
	d := h.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "t/install.sh", Generation: g})
	neverActed(t, h, d, "t/install.sh", g, engine.ReasonSignatureRefused)
	assert.Contains(t, d.Error, "1 of the 2 required distinct pinned keys signed")

	// The second signer publishes: 2 of 2.
	host.put("/t/SHA256SUMS.sig", fixture(t, "release", "SHA256SUMS.cosign.sig"))
	h = newHarness(t, harnessOpts{extra: rule(2)})
	okThenTamperedThenRestored(t, h, "t/install.sh", good)
}

// fakeGitHubAttestations is GitHub's API for sigstore/sigstore-js: release v2.0.0 with the npm
// package as its asset (with its digest), and the real attestation for that digest, served by
// reference to a snappy-compressed copy, as GitHub serves bundles today.
func fakeGitHubAttestations(t *testing.T, tgz []byte) *fileHost {
	api := newFileHost(t)
	blob := newFileHost(t)
	d := sum(tgz)
	rel, err := json.Marshal(map[string]any{"tag_name": "v2.0.0", "published_at": "2023-08-18T00:00:00Z",
		"assets": []any{map[string]any{"id": 42, "name": "sigstore-2.0.0.tgz", "size": len(tgz), "state": "uploaded", "digest": "sha256:" + d}}})
	require.NoError(t, err)
	api.put("/repos/sigstore/sigstore-js/releases/tags/v2.0.0", rel)
	api.redir["/repos/sigstore/sigstore-js/releases/assets/42"] = blob.srv.URL + "/asset/42"
	blob.put("/asset/42", tgz)
	blob.put("/att/"+d+".json.sn", fixture(t, "sigstore", "sigstore-js-2.0.0.provenance.sigstore.json.sn"))
	att, err := json.Marshal(map[string]any{"attestations": []any{map[string]any{"bundle": nil, "bundle_url": blob.srv.URL + "/att/" + d + ".json.sn?sig=x"}}})
	require.NoError(t, err)
	api.put("/repos/sigstore/sigstore-js/attestations/sha256:"+d, att)
	return api
}

// An attested object through a github rule: the real attestation of sigstore 2.0.0 (npm
// provenance, built from refs/heads/main), the package itself as the object.
func TestAttestedObject(t *testing.T) {
	tgz := fixture(t, "sigstore", "sigstore-2.0.0.tgz")
	api := fakeGitHubAttestations(t, tgz)
	rule := func(ref string) string {
		return `  - bucket: ` + bucket + `
    objects: ["npm/sigstore-2.0.0.tgz"]
    release: {github: sigstore/sigstore-js, github_api: "` + api.srv.URL + `", attestations: true, ` + ref + `tag: v2.0.0, entry: "pkg:npm/sigstore@2.0.0"}
    keys:
      sigstore: [{issuer: "https://token.actions.githubusercontent.com", identity_regexp: '^https://github\.com/sigstore/sigstore-js/\.github/workflows/release\.yml@'}]
    sigstore: {trusted_root: ` + testdata(t, "sigstore", "trusted_root.public-good.json") + `}
`
	}
	t.Run("ok, tampered, restored", func(t *testing.T) {
		h := newHarness(t, harnessOpts{extra: rule("attestation_ref: refs/heads/main, ")})
		ok, _ := okThenTamperedThenRestored(t, h, "npm/sigstore-2.0.0.tgz", tgz)
		assert.True(t, strings.HasPrefix(ok.ExpectedDigest, "sha512:46d4e2f7"), "the attested subject's SHA-512")
		assert.Regexp(t, `^sigstore:https://github\.com/sigstore/sigstore-js/\.github/workflows/release\.yml@refs/heads/main$`, ok.Signer)
	})
	t.Run("restored from the release asset", func(t *testing.T) {
		h := newHarness(t, harnessOpts{extra: rule("attestation_ref: refs/heads/main, ")})
		d := h.finalize("npm/sigstore-2.0.0.tgz", []byte("evil"))
		assert.Equal(t, engine.ActionRestored, d.Action, d.Error)
		assert.Contains(t, d.Source, "release v2.0.0")
		_, live := h.live("npm/sigstore-2.0.0.tgz")
		assert.Equal(t, tgz, live)
	})
	t.Run("built from a branch, not the release tag: refused", func(t *testing.T) {
		h := newHarness(t, harnessOpts{extra: rule("")})
		g := h.put("npm/sigstore-2.0.0.tgz", []byte("evil"))
		d := h.handle(engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: "npm/sigstore-2.0.0.tgz", Generation: g})
		neverActed(t, h, d, "npm/sigstore-2.0.0.tgz", g, engine.ReasonSignatureRefused)
		assert.Contains(t, d.Error, "refs/tags/v2.0.0")
	})
}

// benchCheck streams benchData through the release check of x.
func benchCheck(b *testing.B, x release.Expected) {
	data := benchData()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := engine.CheckReader(b.Context(), x, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// benchExpected is what a release of the given kind expects of install.sh.
func benchExpected(b *testing.B, host *fileHost, rel string, keys string, name string) release.Expected {
	cfg, err := config.Parse(config.Source{Name: "bench.yaml", Dir: b.TempDir(), Data: []byte(`rules:
  - bucket: b-1
    objects: ["x"]
    release: {` + rel + `}
    keys: {` + keys + `}
`)})
	require.NoError(b, err)
	r, err := release.NewResolver(release.ResolverOptions{}).Resolve(b.Context(), cfg.Policy.Rules[0].Source, release.Latest, time.Time{})
	require.NoError(b, err)
	x, err := r.Expect(b.Context(), name)
	require.NoError(b, err)
	return x
}

// BenchmarkCheckSHA256, ...SHA512 and ...SignatureOverFile stream the same bytes through the
// check each kind of rule makes (compare with BenchmarkHashPipeline: a SHA-512 rule also
// measures the SHA-256 alerts show; a signature over the file hashes once per signature).
func BenchmarkCheckSHA256(b *testing.B) {
	host := newFileHost(b)
	host.put("/s/SHA256SUMS", fixture(b, "release", "SHA256SUMS"))
	host.put("/s/SHA256SUMS.asc", fixture(b, "release", "SHA256SUMS.asc"))
	benchCheck(b, benchExpected(b, host, `url: "`+host.srv.URL+`/s/SHA256SUMS"`, `openpgp: [`+testdata(b, "keys", "maintainer-ed25519.asc")+`]`, "install.sh"))
}

func BenchmarkCheckSHA512(b *testing.B) {
	host := newFileHost(b)
	host.put("/s/SHA512SUMS", fixture(b, "wire", "SHA512SUMS"))
	host.put("/s/SHA512SUMS.asc", fixture(b, "wire", "SHA512SUMS.asc"))
	benchCheck(b, benchExpected(b, host, `url: "`+host.srv.URL+`/s/SHA512SUMS"`, `openpgp: [`+testdata(b, "wire", "filesigner-ed25519.asc")+`]`, "install.sh"))
}

// The signature covers install.sh, not these bytes: the check fails, after the same work.
func BenchmarkCheckSignatureOverFile(b *testing.B) {
	host := newFileHost(b)
	host.put("/f/install.sh.asc", fixture(b, "wire", "install.sh.asc"))
	benchCheck(b, benchExpected(b, host, `url: "`+host.srv.URL+`/f/{name}", signed: file`, `openpgp: [`+testdata(b, "wire", "filesigner-ed25519.asc")+`]`, "install.sh"))
}

// The consumer-side check (tamperguard verify) judges a local file the same way.
func TestVerifyLocalFormats(t *testing.T) {
	host := newFileHost(t)
	host.put("/s/SHA512SUMS", fixture(t, "wire", "SHA512SUMS"))
	host.put("/s/SHA512SUMS.asc", fixture(t, "wire", "SHA512SUMS.asc"))
	host.put("/f/install.sh.asc", fixture(t, "wire", "install.sh.asc"))
	cfg, err := config.Parse(config.Source{Name: "v.yaml", Dir: t.TempDir(), Data: []byte(`rules:
  - bucket: b-1
    objects: ["s512/install.sh"]
    release: {url: "` + host.srv.URL + `/s/SHA512SUMS"}
    keys: {openpgp: [` + testdata(t, "wire", "filesigner-ed25519.asc") + `]}
  - bucket: b-1
    objects: ["f/install.sh"]
    release: {url: "` + host.srv.URL + `/f/{name}", signed: file}
    keys: {openpgp: [` + testdata(t, "wire", "filesigner-ed25519.asc") + `]}
`)})
	require.NoError(t, err)
	good := fixture(t, "release", "install.sh")
	verify := func(object string, data []byte) engine.LocalResult {
		m, ok := cfg.Policy.Match("b-1", object)
		require.True(t, ok)
		return engine.VerifyLocal(t.Context(), release.NewResolver(release.ResolverOptions{}), m, object,
			func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	}

	r := verify("s512/install.sh", good)
	assert.Equal(t, engine.VerdictOK, r.Verdict, r.Err)
	assert.Nil(t, r.Expected, "no SHA-256 is listed")
	assert.Equal(t, "SHA-512", r.Checked.Want.Algorithm().Name())
	r = verify("s512/install.sh", tampered(good))
	assert.Equal(t, engine.VerdictTampered, r.Verdict)
	assert.NotEqual(t, r.Checked.Want, r.Checked.Sum)

	r = verify("f/install.sh", good)
	assert.Equal(t, engine.VerdictOK, r.Verdict, r.Err)
	assert.Equal(t, "openpgp", r.Checked.Vouched.Signer.Scheme)
	// A local file has no other copy to prove the signature is not the attacker's.
	r = verify("f/install.sh", tampered(good))
	assert.Equal(t, engine.VerdictUnverifiable, r.Verdict)
	assert.Equal(t, engine.ReasonNotVouched, r.Reason)
}
