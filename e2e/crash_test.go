package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/demo"
	"github.com/tamperguard/tamperguard/internal/slackfake"
)

// slowTests gates the tests that run the real binaries for a minute or more; CI sets it.
func slowTests(t *testing.T) {
	t.Helper()
	if testing.Short() || os.Getenv("TAMPERGUARD_SLOW_TESTS") == "" {
		t.Skip("SKIPPED: set TAMPERGUARD_SLOW_TESTS=1 (CI does) to run the real binaries under kill -9 and as a fleet")
	}
}

// incidentAlerts counts Slack messages per incident key, from the metadata each carries.
func incidentAlerts(sf *slackfake.Server) map[string]int {
	out := map[string]int{}
	re := regexp.MustCompile(`"incident":"([^"]+)"`)
	for _, m := range sf.Messages() {
		if m.Metadata == nil {
			continue
		}
		if mm := re.FindSubmatch(m.Metadata.EventPayload); mm != nil {
			out[string(mm[1])]++
		}
	}
	return out
}

// kill -9 at random points during restores: tamperguard watch is killed and restarted
// again and again while objects are tampered. Without any audit, every object ends with the
// signed bytes and exactly one alert.
func TestWatchSurvivesKill9DuringRestores(t *testing.T) {
	slowTests(t)
	w := newWorld(t, 8*time.Minute, demo.StackOptions{AckDeadline: 10 * time.Second})
	ctx, bins, stack, rel := w.ctx, w.bins, w.stack, w.rel
	cfg := w.writeConfig(t, fmt.Sprintf(`state: {bucket: %s, lease: 3s}
rules:
  - bucket: %s
    objects: ["dl/*.sh"]
    release: {git: %q, tag: %s, entry: %s}
    keys: {openpgp: [%q]}
`, stateBucket, bucket, rel.Repo, rel.Tag, rel.Name, rel.KeyFile))

	sf := slackfake.New(t, slackfake.Options{})
	env := append(stack.Env(), "SLACK_BOT_TOKEN="+sf.Token(), "SLACK_CHANNEL=C0CRASHTST", "SLACK_API_URL="+sf.Endpoints().API)
	start := func() *demo.Process {
		p, err := demo.Start("tamperguard watch", bins.Tamperguard, []string{"watch", "--config", cfg,
			"--subscription", stack.SubscriptionPath(), "--retry-delay", "200ms"}, env, nil)
		require.NoError(t, err)
		_, _, err = p.WaitStderr(ctx, demo.ReadyLine, 0)
		require.NoError(t, err)
		return p
	}

	const objects = 12
	bad := demo.Tampered(rel.Script)
	badGens := map[string]int64{}
	watch := start()
	kills := 0
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range objects {
		name := fmt.Sprintf("dl/tool%02d.sh", i)
		_, err := stack.Upload(ctx, bucket, name, rel.Script)
		require.NoError(t, err)
		g, err := stack.Upload(ctx, bucket, name, bad)
		require.NoError(t, err)
		badGens[name] = g
		// Kill while the restore is under way: somewhere in the next ~150 ms.
		select {
		case <-time.After(time.Duration(rng.IntN(150)) * time.Millisecond):
		case <-ctx.Done():
		}
		watch.Kill()
		kills++
		watch = start()
	}
	defer watch.Stop(10 * time.Second)
	t.Logf("%d kills (SIGKILL) during %d tamperings", kills, objects)

	// Redeliveries (the ack deadline) and lease takeovers do the rest; no audit runs.
	want := map[string]int{}
	for name, g := range badGens {
		want[fmt.Sprintf("%s/%s#%d", bucket, name, g)] = 1
	}
	ok := assert.Eventually(t, func() bool {
		for name := range badGens {
			live, err := stack.Read(ctx, bucket, name, 0)
			if err != nil || !bytes.Equal(live, rel.Script) {
				return false
			}
		}
		alerts := incidentAlerts(sf)
		for k := range want {
			if alerts[k] < 1 {
				return false
			}
		}
		return true
	}, 3*time.Minute, 200*time.Millisecond, "every object signed and alerted")
	if !ok {
		t.Logf("watch stderr:\n%s", watch.Stderr)
	}
	alerts := incidentAlerts(sf)
	for k := range want {
		assert.Equal(t, 1, alerts[k], "exactly one alert for %s", k)
	}
	assert.Len(t, alerts, len(want), "no alert about anything else: %v", alerts)
	for name := range badGens {
		live, err := stack.Read(ctx, bucket, name, 0)
		require.NoError(t, err)
		assert.Equal(t, string(rel.Script), string(live), name)
	}
}

// A fleet: four serve processes sharing one state bucket, the same event delivered 100
// times at once across them, each delivery repeated until acknowledged (as Pub/Sub push
// does): one restore, one incident, one alert.
func TestServeFleetActsOnceOnConcurrentDuplicates(t *testing.T) {
	slowTests(t)
	w := newWorld(t, 6*time.Minute, demo.StackOptions{})
	ctx, bins, stack, rel, cfg := w.ctx, w.bins, w.stack, w.rel, w.cfg

	sf := slackfake.New(t, slackfake.Options{})
	env := append(stack.Env(), "SLACK_BOT_TOKEN="+sf.Token(), "SLACK_CHANNEL=C0FLEETTST", "SLACK_API_URL="+sf.Endpoints().API)
	var urls []string
	var serves []*demo.Process
	for i := range 4 {
		port, err := demo.FreePort()
		require.NoError(t, err)
		p, err := demo.Start(fmt.Sprintf("serve %d", i), bins.Tamperguard, []string{"serve", "--config", cfg, "--port", strconv.Itoa(port)}, env, nil)
		require.NoError(t, err)
		defer p.Stop(10 * time.Second)
		serves = append(serves, p)
		_, _, err = p.WaitStderr(ctx, regexp.MustCompile(`tamperguard serve: listening on`), 0)
		require.NoError(t, err)
		urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d/", port))
	}

	_, err := stack.Upload(ctx, bucket, demo.ScriptName, rel.Script)
	require.NoError(t, err)
	g, err := stack.Upload(ctx, bucket, demo.ScriptName, demo.Tampered(rel.Script))
	require.NoError(t, err)
	body := fmt.Sprintf(`{"bucket":%q,"name":%q,"generation":"%d","metageneration":"1"}`, bucket, demo.ScriptName, g)
	post := func(url string) int {
		req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
		require.NoError(t, err)
		for k, v := range map[string]string{"ce-id": "fleet-1", "ce-specversion": "1.0", "ce-type": "google.cloud.storage.object.v1.finalized",
			"ce-source": "//storage.googleapis.com/projects/_/buckets/" + bucket, "ce-subject": "objects/" + demo.ScriptName,
			"ce-time": time.Now().UTC().Format(time.RFC3339), "Content-Type": "application/json"} {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	retries := 0
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for attempt := 0; attempt < 100; attempt++ {
				if post(urls[i%len(urls)]) == http.StatusOK {
					return
				}
				mu.Lock()
				retries++
				mu.Unlock()
				time.Sleep(100 * time.Millisecond) // Pub/Sub push's backoff, shortened
			}
			t.Errorf("delivery %d never acknowledged", i)
		}()
	}
	wg.Wait()
	t.Logf("100 deliveries across %d serve processes: %d retried before acknowledgement", len(urls), retries)

	live, err := stack.Read(ctx, bucket, demo.ScriptName, 0)
	require.NoError(t, err)
	assert.Equal(t, string(rel.Script), string(live))
	versions, err := stack.Versions(ctx, bucket, demo.ScriptName)
	require.NoError(t, err)
	assert.Len(t, versions, 3, "good, tampered, one restore")
	alerts := incidentAlerts(sf)
	assert.Equal(t, map[string]int{fmt.Sprintf("%s/%s#%d", bucket, demo.ScriptName, g): 1}, alerts)

	// serve's stdout is its log, Cloud Logging JSON only: no plain line from the Functions
	// Framework (which prints one per instance unless FUNCTION_TARGET is set).
	for _, p := range serves {
		_ = p.Stop(10 * time.Second) // every line written whole before it is read
		for _, line := range strings.Split(strings.TrimSpace(p.Stdout.String()), "\n") {
			var v map[string]any
			assert.NoError(t, json.Unmarshal([]byte(line), &v), "%s: not a JSON line: %q", p.Name, line)
		}
	}
}
