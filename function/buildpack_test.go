package function_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/gcstest"
)

// buildpackMain is the program the Cloud Functions Go buildpack generates for a
// declaratively registered function: a main package in a module of its own that
// blank-imports the user's root package (which registers the function in its init) and
// starts the Functions Framework on $PORT; FUNCTION_TARGET picks the function.
const buildpackMain = `package main

import (
	"log"
	"os"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	_ "github.com/tamperguard/tamperguard"
)

func main() {
	port := "8080"
	if p := os.Getenv("PORT"); p != "" {
		port = p
	}
	if err := funcframework.Start(port); err != nil {
		log.Fatalf("funcframework.Start: %v", err)
	}
}
`

// TestBuildpackLayout builds the root package the way the buildpack does, runs it as the
// deployed function, and posts it an event: the CloudEvent function must be found by
// FUNCTION_TARGET, configured at cold start, and act.
func TestBuildpackLayout(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	dir := t.TempDir()
	gomod := fmt.Sprintf("module example.com/serverless_function_app\n\ngo 1.26.0\n\nrequire github.com/tamperguard/tamperguard v0.0.0\n\nreplace github.com/tamperguard/tamperguard => %s\n", root)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644))
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(buildpackMain), 0o644))

	gocmd := func(args ...string) {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		// -mod=mod adds the requirements the replaced module brings; the modules come from
		// the module cache or, as for the buildpack, the module proxy.
		cmd.Env = append(os.Environ(), "GOFLAGS="+os.Getenv("GOFLAGS")+" -mod=mod", "GOWORK=off", "GOPROXY="+moduleProxies(t))
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "go %s:\n%s", strings.Join(args, " "), out)
	}
	bin := filepath.Join(dir, "server")
	gocmd("build", "-o", bin, ".")

	t.Run("bad configuration: the instance does not start", func(t *testing.T) {
		out := &logBuffer{}
		cmd := exec.Command(bin)
		cmd.Env = functionEnv(freePort(t), map[string]string{"TAMPERGUARD_CONFIG": "rules: {"})
		cmd.Stdout, cmd.Stderr = out, out
		require.NoError(t, cmd.Start())
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			var ee *exec.ExitError
			require.True(t, errors.As(err, &ee), "exit: %v\n%s", err, out)
			assert.Equal(t, 1, ee.ExitCode())
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			t.Fatalf("the instance kept running with a bad configuration:\n%s", out)
		}
		lines := out.where(t, "severity", "CRITICAL")
		require.Len(t, lines, 1, out.String())
		assert.Contains(t, lines[0]["message"], "tamperguard cannot start: configuration $TAMPERGUARD_CONFIG")
	})

	t.Run("a tampered object is restored", func(t *testing.T) {
		h := &harness{t: t, srv: gcstest.New(t, gcstest.BucketSpec{Name: bucket, Versioning: true}, gcstest.BucketSpec{Name: stateBucket, Versioning: true}),
			good: taggedFile(t, "v1.2.0", "install.sh"), ctx: context.Background()}
		h.put("install.sh", h.good)
		bad := h.put("install.sh", tampered(h.good))

		url, out, _ := startInstance(t, bin, map[string]string{"TAMPERGUARD_CONFIG": configYAML(t), "STORAGE_EMULATOR_HOST": h.srv.URL})

		ev := storageEvent("finalized", "install.sh", bad, time.Now())
		status, body := do(t, ev.request(t, url))
		assert.Equal(t, http.StatusOK, status, "%s\n%s", body, out)
		_, data := h.live("install.sh")
		assert.Equal(t, h.good, data)

		require.Eventually(t, func() bool { return len(out.where(t, "severity", "CRITICAL")) > 0 }, 10*time.Second, 20*time.Millisecond)
		crit := out.where(t, "severity", "CRITICAL")
		require.Len(t, crit, 1, out.String())
		assert.Equal(t, ev.id, crit[0]["event_id"])
		assert.Equal(t, "install.sh", crit[0]["object"])
		assert.Equal(t, "tampered", crit[0]["verdict"])
		assert.Equal(t, "restored", crit[0]["action"])
		assert.Len(t, out.where(t, "message", "tamperguard ready"), 1)
	})

	// The deployed function's requests reach the framework through the front too
	// (function.FrontFramework): storms of abandoned and cancelled requests do not wedge it.
	t.Run("abandoned and cancelled requests do not wedge the instance", func(t *testing.T) {
		srv := gcstest.New(t, gcstest.BucketSpec{Name: bucket, Versioning: true}, gcstest.BucketSpec{Name: stateBucket, Versioning: true})
		url, out, _ := startInstance(t, bin, map[string]string{"TAMPERGUARD_CONFIG": configYAML(t), "STORAGE_EMULATOR_HOST": srv.URL, "TAMPERGUARD_LOG_LEVEL": "DEBUG"})
		s := &storm{url: url, client: newStormClient(t)}
		for round := range 3 {
			s.round(t, round, 120)
		}
		s.judged(t, out)
	})
}

// startInstance runs the deployed function's binary with functionEnv and extra, waits
// until it accepts connections, and returns its URL, its stdout (the JSON log) and its
// stderr. The instance is killed when the test ends.
func startInstance(t *testing.T, bin string, extra map[string]string) (url string, stdout, stderr *logBuffer) {
	t.Helper()
	port := freePort(t)
	stdout, stderr = &logBuffer{}, &logBuffer{}
	cmd := exec.Command(bin)
	cmd.Env = functionEnv(port, extra)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, time.Minute, 20*time.Millisecond, "the function never listened:\n%s%s", stdout, stderr)
	return "http://127.0.0.1:" + port + "/", stdout, stderr
}

// moduleProxies is the configured GOPROXY without "direct": modules are fetched as the
// buildpack fetches them, from the module proxy, never from a version control system.
// go.mod fixes every version and go.sum every hash.
func moduleProxies(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOPROXY").Output()
	require.NoError(t, err)
	var proxies []string
	for _, p := range strings.FieldsFunc(strings.TrimSpace(string(out)), func(r rune) bool { return r == ',' || r == '|' }) {
		if p != "direct" && p != "off" {
			proxies = append(proxies, p)
		}
	}
	if len(proxies) == 0 {
		return "off" // no proxy configured: the module cache alone
	}
	return strings.Join(proxies, ",")
}

// functionEnv is the environment Cloud Run gives a function instance, plus extra.
func functionEnv(port string, extra map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "TAMPERGUARD_") || k == "STORAGE_EMULATOR_HOST" || k == "FUNCTION_TARGET" || k == "PORT" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "FUNCTION_TARGET=VerifyObject", "PORT="+port, "K_SERVICE=tamperguard", "FUNCTION_SIGNATURE_TYPE=cloudevent")
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}
