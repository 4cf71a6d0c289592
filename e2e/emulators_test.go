// Package e2e runs the emulator workflow of the README with real processes: the Pub/Sub
// emulator (cmd/pubsub-emulator), fake-gcs-server publishing the bucket's notifications
// to it, tamperguard watch pulling them, tamperguard check and tamperguard serve, all
// built from this module (and the module cache) into a temporary directory.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/demo"
)

const (
	bucket      = "my-downloads"
	stateBucket = "tamperguard-state"
)

// decision is the JSON line watch and check print.
type decision struct {
	Bucket             string `json:"bucket"`
	Object             string `json:"object"`
	Generation         int64  `json:"generation"`
	Verdict            string `json:"verdict"`
	Action             string `json:"action"`
	RestoredGeneration int64  `json:"restored_generation"`
	Reason             string `json:"reason"`
}

// lineFor matches the JSON line about generation gen (not the "ignored" line of the
// archive event that an overwrite of gen causes).
func lineFor(gen int64) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^(\{"bucket":"` + bucket + `","object":"install.sh","generation":` + strconv.FormatInt(gen, 10) + `,"verdict":"(?:ok|tampered|missing|unverifiable)",.*\})$`)
}

func parse(t *testing.T, line string) decision {
	t.Helper()
	var d decision
	require.NoError(t, json.Unmarshal([]byte(line), &d), line)
	return d
}

func TestEmulatorWorkflow(t *testing.T) {
	if testing.Short() || os.Getenv("TAMPERGUARD_SLOW_TESTS") == "" {
		t.Skip("SKIPPED: the emulator workflow end to end links fake-gcs-server, pubsub-emulator and tamperguard (~15s of CPU with a warm build cache) and runs them as processes; set TAMPERGUARD_SLOW_TESTS=1 to run it (CI does), not under -short")
	}
	w := newWorld(t, 3*time.Minute, demo.StackOptions{})
	ctx, bins, stack, rel, cfg := w.ctx, w.bins, w.stack, w.rel, w.cfg

	// A subscription that does not exist is refused at start, not waited on forever.
	nope, err := demo.Start("watch (no subscription)", bins.Tamperguard, []string{"watch", "--config", cfg,
		"--subscription", "projects/tamperguard-local/subscriptions/nope"}, stack.Env(), nil)
	require.NoError(t, err)
	_, _, err = nope.WaitStderr(ctx, regexp.MustCompile(`subscription projects/tamperguard-local/subscriptions/nope does not exist`), 0)
	require.NoError(t, err)
	require.Eventually(t, func() bool { done, _ := nope.Exited(); return done }, 10*time.Second, 10*time.Millisecond)
	_, exitErr := nope.Exited()
	var ee *exec.ExitError
	require.ErrorAs(t, exitErr, &ee)
	assert.Equal(t, 2, ee.ExitCode())

	watch, err := stack.StartWatch(ctx, bins.Tamperguard, cfg)
	require.NoError(t, err)
	defer watch.Stop(5 * time.Second)

	// The maintainer publishes the signed script: judged ok.
	gen1, err := stack.Upload(ctx, bucket, demo.ScriptName, rel.Script)
	require.NoError(t, err)
	m, _, err := watch.WaitStdout(ctx, lineFor(gen1), 0)
	require.NoError(t, err, "watch stderr:\n%s", watch.Stderr)
	assert.Equal(t, "ok", parse(t, m[1]).Verdict)

	// The attacker appends one line: restored, evidence kept, alerted (to the log: no Slack).
	bad := demo.Tampered(rel.Script)
	gen2, err := stack.Upload(ctx, bucket, demo.ScriptName, bad)
	require.NoError(t, err)
	m, _, err = watch.WaitStdout(ctx, lineFor(gen2), 0)
	require.NoError(t, err, "watch stderr:\n%s", watch.Stderr)
	d := parse(t, m[1])
	assert.Equal(t, "tampered", d.Verdict)
	require.Equal(t, "restored", d.Action, m[1])
	live, err := stack.Read(ctx, bucket, demo.ScriptName, 0)
	require.NoError(t, err)
	assert.Equal(t, string(rel.Script), string(live), "the live object is the signed script")
	liveGen, err := stack.Generation(ctx, bucket, demo.ScriptName)
	require.NoError(t, err)
	assert.Equal(t, d.RestoredGeneration, liveGen)
	evidence, err := stack.Read(ctx, stateBucket, fmt.Sprintf("evidence/%s/%s/%d", bucket, demo.ScriptName, gen2), 0)
	require.NoError(t, err)
	assert.Equal(t, string(bad), string(evidence), "the attacker's bytes are kept in the state bucket")
	versions, err := stack.Versions(ctx, bucket, demo.ScriptName)
	require.NoError(t, err)
	assert.Contains(t, versions, gen2, "and as a noncurrent generation")
	_, _, err = watch.WaitStderr(ctx, regexp.MustCompile(`Tampered object restored`), 0)
	require.NoError(t, err)
	// The alert can reach the pipe in more than one read: wait for the host, too.
	_, _, err = watch.WaitStderr(ctx, regexp.MustCompile(`attacker\[\.\]example`), 0)
	assert.NoError(t, err, "the alert names the host the added line reaches")
	// The restored generation's own notification is judged too, and is ok.
	m, _, err = watch.WaitStdout(ctx, lineFor(d.RestoredGeneration), 0)
	require.NoError(t, err)
	assert.Equal(t, "ok", parse(t, m[1]).Verdict)

	// check, run by hand against the same emulator, agrees.
	check := stack.Command(ctx, bins.Tamperguard, "check", "--config", cfg, "gs://"+bucket+"/"+demo.ScriptName)
	var checkErr bytes.Buffer
	check.Stderr = &checkErr
	out, err := check.Output()
	require.NoError(t, err, checkErr.String())
	assert.Equal(t, "ok", parse(t, strings.TrimSpace(string(out))).Verdict)

	// SIGTERM: watch stops cleanly.
	require.NoError(t, watch.Stop(10*time.Second), "watch stderr:\n%s", watch.Stderr)
	assert.Contains(t, watch.Stderr.String(), "tamperguard watch: stopped")

	// The Eventarc path: serve, and a CloudEvent posted as Eventarc would.
	gen3, err := stack.Upload(ctx, bucket, demo.ScriptName, bad)
	require.NoError(t, err)
	port, err := demo.FreePort()
	require.NoError(t, err)
	serve, err := demo.Start("tamperguard serve", bins.Tamperguard, []string{"serve", "--config", cfg, "--port", strconv.Itoa(port)}, stack.Env(), nil)
	require.NoError(t, err)
	defer serve.Stop(5 * time.Second)
	_, _, err = serve.WaitStderr(ctx, regexp.MustCompile(`tamperguard serve: listening on`), 0)
	require.NoError(t, err)
	body := fmt.Sprintf(`{"kind":"storage#object","bucket":%q,"name":%q,"generation":"%d","metageneration":"1"}`, bucket, demo.ScriptName, gen3)
	req, err := http.NewRequestWithContext(ctx, "POST", fmt.Sprintf("http://localhost:%d/", port), strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range map[string]string{
		"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "e2e-1",
		"ce-type": "google.cloud.storage.object.v1.finalized", "ce-source": "//storage.googleapis.com/projects/_/buckets/" + bucket,
		"ce-subject": "objects/" + demo.ScriptName, "ce-time": time.Now().UTC().Format(time.RFC3339Nano),
	} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	live, err = stack.Read(ctx, bucket, demo.ScriptName, 0)
	require.NoError(t, err)
	assert.Equal(t, string(rel.Script), string(live), "serve restored it too; serve log:\n%s", serve.Stdout)
	// The log line is copied from the process's pipe by a goroutine: wait for it.
	_, _, err = serve.WaitStdout(ctx, regexp.MustCompile(`"restored_generation"`), 0)
	assert.NoError(t, err, "serve log:\n%s", serve.Stdout)
	require.NoError(t, serve.Stop(10*time.Second))
}
