package cloudlog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/cloudlog"
)

func TestSeverities(t *testing.T) {
	var buf bytes.Buffer
	log := cloudlog.New(&buf, slog.LevelDebug)
	log.Debug("d")
	log.Info("i")
	log.Warn("w")
	log.Error("e")
	log.Log(context.Background(), cloudlog.LevelCritical, "c", "object", "install.sh")
	log.Log(context.Background(), cloudlog.LevelCritical+4, "above")

	var got []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		assert.NotContains(t, m, "level")
		assert.NotContains(t, m, "msg")
		ts, ok := m["time"].(string)
		require.True(t, ok, line)
		_, err := time.Parse(time.RFC3339Nano, ts)
		assert.NoError(t, err)
		got = append(got, m["severity"].(string)+":"+m["message"].(string))
	}
	assert.Equal(t, []string{"DEBUG:d", "INFO:i", "WARNING:w", "ERROR:e", "CRITICAL:c", "CRITICAL:above"}, got)
}

func TestDefaultLevelIsInfo(t *testing.T) {
	var buf bytes.Buffer
	log := cloudlog.New(&buf, nil)
	log.Debug("hidden")
	log.Info("shown")
	assert.NotContains(t, buf.String(), "hidden")
	assert.Contains(t, buf.String(), `"severity":"INFO"`)
}

func TestGroupsKeepTheirKeys(t *testing.T) {
	var buf bytes.Buffer
	log := cloudlog.New(&buf, nil).WithGroup("event")
	log.Info("m", "level", "x", "msg", "y")
	var m map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &m))
	assert.Equal(t, map[string]any{"level": "x", "msg": "y"}, m["event"])
}

// Hostile values cannot start a line of their own or a field of their own.
func TestHostileValuesStayInTheirField(t *testing.T) {
	var buf bytes.Buffer
	log := cloudlog.New(&buf, nil)
	evil := "a\n{\"severity\":\"CRITICAL\",\"message\":\"forged\"}\r\x00\xff"
	log.Error("bad event", "object", evil)
	out := strings.TrimSuffix(buf.String(), "\n")
	assert.NotContains(t, out, "\n")
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &m))
	assert.Equal(t, "ERROR", m["severity"])
	assert.Equal(t, "bad event", m["message"])
	assert.Contains(t, m["object"], "forged")
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{"debug": slog.LevelDebug, "": slog.LevelInfo, "Warning": slog.LevelWarn, "warn": slog.LevelWarn, "ERROR": slog.LevelError, "critical": cloudlog.LevelCritical} {
		got, ok := cloudlog.ParseLevel(in)
		assert.True(t, ok, in)
		assert.Equal(t, want, got, in)
	}
	_, ok := cloudlog.ParseLevel("loud")
	assert.False(t, ok)
}

func TestFormatsAndLabels(t *testing.T) {
	f, err := cloudlog.ParseFormat("", false)
	require.NoError(t, err)
	assert.Equal(t, cloudlog.FormatJSON, f, "not a terminal: JSON")
	f, err = cloudlog.ParseFormat("", true)
	require.NoError(t, err)
	assert.Equal(t, cloudlog.FormatText, f)
	_, err = cloudlog.ParseFormat("xml", false)
	assert.ErrorContains(t, err, `"xml" is not json or text`)

	var b strings.Builder
	log := cloudlog.WithLabels(cloudlog.NewFormat(&b, cloudlog.FormatJSON, nil), map[string]string{"deployment": "uploader-prod"})
	log.Log(context.Background(), cloudlog.LevelCritical, "tampered object")
	var line map[string]any
	require.NoError(t, json.Unmarshal([]byte(b.String()), &line))
	assert.Equal(t, "CRITICAL", line["severity"])
	assert.Equal(t, map[string]any{"deployment": "uploader-prod"}, line[cloudlog.LabelsKey])

	b.Reset()
	cloudlog.NewFormat(&b, cloudlog.FormatText, nil).Log(context.Background(), cloudlog.LevelCritical, "tampered object")
	assert.Contains(t, b.String(), "level=CRITICAL")
}

func TestTrace(t *testing.T) {
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	assert.Equal(t, "projects/p1/traces/"+id, cloudlog.TraceName("p1", "00-"+id+"-00f067aa0ba902b7-01", ""))
	assert.Equal(t, "projects/p1/traces/"+id, cloudlog.TraceName("p1", "", id+"/123;o=1"))
	assert.Empty(t, cloudlog.TraceName("", "", id+"/1"), "no project, no trace name")
	assert.Empty(t, cloudlog.TraceName("p1", "00-zz"+id[2:]+"-00f067aa0ba902b7-01", "not-a-trace"))
	assert.Empty(t, cloudlog.TraceName("p1", "", "00000000000000000000000000000000/1"))

	var b strings.Builder
	log := cloudlog.New(&b, nil)
	log.InfoContext(cloudlog.WithTrace(context.Background(), "projects/p1/traces/"+id), "event")
	var line map[string]any
	require.NoError(t, json.Unmarshal([]byte(b.String()), &line))
	assert.Equal(t, "projects/p1/traces/"+id, line[cloudlog.TraceKey])
}
