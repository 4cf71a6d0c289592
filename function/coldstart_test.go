package function_test

import (
	"context"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/function"
	"github.com/tamperguard/tamperguard/internal/gcstest"
)

// coldStart runs function.ColdStart with the environment set by env and returns its log
// and the exit code it asked for (-1: none).
func coldStart(t *testing.T, env map[string]string) (*logBuffer, int) {
	t.Helper()
	for _, k := range []string{"TAMPERGUARD_CONFIG", "TAMPERGUARD_CONFIG_FILE", function.EnvMaxEventAge, function.EnvLogLevel} {
		t.Setenv(k, env[k])
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	logs := &logBuffer{}
	code := -1
	restore := function.SetProcess(logs, func(c int) { code = c })
	t.Cleanup(restore)
	function.ColdStart()
	return logs, code
}

func TestColdStartRefusesABadConfiguration(t *testing.T) {
	for name, c := range map[string]struct {
		env     map[string]string
		message string
	}{
		"YAML":          {map[string]string{"TAMPERGUARD_CONFIG": "rules:\n  - bucket: [\n"}, "tamperguard cannot start: configuration $TAMPERGUARD_CONFIG"},
		"no rules file": {map[string]string{"TAMPERGUARD_CONFIG_FILE": "/nonexistent/tamperguard.yaml"}, "tamperguard cannot start: reading configuration"},
		"both set":      {map[string]string{"TAMPERGUARD_CONFIG": "rules: []", "TAMPERGUARD_CONFIG_FILE": "x.yaml"}, "tamperguard cannot start: both TAMPERGUARD_CONFIG and TAMPERGUARD_CONFIG_FILE are set"},
		"max age":       {map[string]string{"TAMPERGUARD_CONFIG": "x", function.EnvMaxEventAge: "a day"}, ""},
		"log level":     {map[string]string{function.EnvLogLevel: "LOUD"}, `tamperguard cannot start: TAMPERGUARD_LOG_LEVEL="LOUD"`},
	} {
		t.Run(name, func(t *testing.T) {
			if name == "max age" {
				c.env["TAMPERGUARD_CONFIG"] = configYAML(t)
				c.message = `tamperguard cannot start: TAMPERGUARD_MAX_EVENT_AGE="a day" is not a duration`
			}
			logs, code := coldStart(t, c.env)
			assert.Equal(t, 1, code, "the instance exits")
			assert.Nil(t, function.Active())
			lines := logs.lines(t)
			require.Len(t, lines, 1, logs.String())
			assert.Equal(t, "CRITICAL", lines[0]["severity"])
			assert.Contains(t, lines[0]["message"], c.message)
		})
	}
}

func TestColdStartConfiguresTheInstance(t *testing.T) {
	srv := gcstest.New(t, gcstest.BucketSpec{Name: bucket, Versioning: true}, gcstest.BucketSpec{Name: stateBucket, Versioning: true})
	logs, code := coldStart(t, map[string]string{
		"TAMPERGUARD_CONFIG": configYAML(t), "STORAGE_EMULATOR_HOST": srv.URL,
		function.EnvMaxEventAge: "2h", function.EnvLogLevel: "debug",
	})
	assert.Equal(t, -1, code)
	require.NotNil(t, function.Active())
	ready := logs.where(t, "message", "tamperguard ready")
	require.Len(t, ready, 1, logs.String())
	assert.Equal(t, "2h0m0s", ready[0]["max_event_age"])
	assert.Equal(t, float64(1), ready[0]["rules"])
	assert.Equal(t, stateBucket, ready[0]["state_bucket"])

	// VerifyObject, the registered function, serves the configured instance.
	e := cloudevents.NewEvent()
	e.SetID("evt-1")
	e.SetType("google.cloud.storage.object.v1.finalized")
	e.SetSource("//storage.googleapis.com/projects/_/buckets/" + bucket)
	e.SetSubject("objects/unwatched.txt")
	e.SetTime(time.Now())
	require.NoError(t, e.SetData("application/json", map[string]string{"kind": "storage#object", "bucket": bucket,
		"name": "unwatched.txt", "generation": "1612135200123456", "metageneration": "1", "size": "1"}))
	require.NoError(t, function.VerifyObject(context.Background(), e))
	assert.Len(t, logs.where(t, "object", "unwatched.txt", "reason", "no_rule", "severity", "DEBUG"), 1, logs.String())
}
