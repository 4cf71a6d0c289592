package alerting

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/engine"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestFromEnvWithoutSlackLogsOnly(t *testing.T) {
	logger, logs := newLog()
	n, err := FromEnv(env(), logger, nil)
	require.NoError(t, err)
	require.IsType(t, &LogNotifier{}, n)
	recs := logs.Records(t)
	require.Len(t, recs, 1, "startup says it once")
	assert.Equal(t, "Slack not configured: alerts go to the log only", recs[0]["msg"])
	assert.Equal(t, "WARN", recs[0]["level"])

	ctx := context.Background()
	d, _ := goldenCases()["restored"]()
	require.NoError(t, n.Notify(ctx, d))
	u, _ := goldenCases()["signature_refused"]()
	require.NoError(t, n.Notify(ctx, u))
	require.NoError(t, n.Notify(ctx, &engine.Decision{Verdict: engine.VerdictOK}))
	recs = logs.Records(t)
	require.Len(t, recs, 3, "no further startup line, nothing for ok")
	assert.Equal(t, "ERROR", recs[1]["level"])
	assert.Equal(t, "✅ Restored · gs://dl.example.org/install/uploader.sh", recs[1]["msg"])
	assert.Equal(t, Text(Render(d, RenderOptions{})), recs[1]["alert"])
	assert.Equal(t, "install/uploader.sh", recs[1]["object"])
	assert.Equal(t, "WARN", recs[2]["level"])
	assert.Contains(t, recs[2]["msg"], "⚠️ Could not verify · gs://dl.example.org/install/uploader.sh")
}

func TestFromEnvBotToken(t *testing.T) {
	f := newFakeSlack(t)
	logger, logs := newLog()
	n, err := FromEnv(env(EnvBotToken, " "+testToken+"\n", EnvChannel, testChannel, EnvAPIURL, strings.TrimSuffix(f.srv.GetAPIURL(), "/")), logger, nil)
	require.NoError(t, err)
	require.IsType(t, &Slack{}, n)
	require.NoError(t, n.Notify(context.Background(), restoredDecision()))
	posts := f.Posts()
	require.Len(t, posts, 1, "SLACK_API_URL is where the alert goes")
	assert.Equal(t, testToken, posts[0].Get("token"), "a trailing newline from a secret manager is trimmed")
	assert.NotContains(t, logs.String(), "SECRETtoken")
}

func TestFromEnvWebhook(t *testing.T) {
	h := newWebhook(t)
	logger, logs := newLog()
	n, err := FromEnv(env(EnvWebhookURL, h.URL(), EnvChannel, "#ignored"), logger, nil)
	require.NoError(t, err)
	require.NoError(t, n.Notify(context.Background(), restoredDecision()))
	assert.Len(t, h.Bodies(), 1)
	assert.Contains(t, logs.String(), "SLACK_CHANNEL is ignored")
	assert.NotContains(t, logs.String(), "SECRETwebhook")
}

func TestFromEnvErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		env  func(string) string
		want string
	}{
		"token without channel": {env(EnvBotToken, testToken), "SLACK_CHANNEL is required with SLACK_BOT_TOKEN"},
		"channel alone":         {env(EnvChannel, testChannel), "SLACK_CHANNEL is set but SLACK_BOT_TOKEN is not"},
		"token with a space":    {env(EnvBotToken, "xoxb-SECRETtoken oops", EnvChannel, testChannel), "SLACK_BOT_TOKEN holds whitespace"},
		"webhook over http":     {env(EnvWebhookURL, "http://hooks.example.com/services/SECRETwebhook"), "SLACK_WEBHOOK_URL must be https"},
		"webhook not a URL":     {env(EnvWebhookURL, "SECRETwebhook"), "SLACK_WEBHOOK_URL is not a valid URL"},
		"webhook with userinfo": {env(EnvWebhookURL, "https://u:SECRETwebhook@hooks.example.com/x"), "SLACK_WEBHOOK_URL is not a valid URL"},
		"api over http":         {env(EnvBotToken, testToken, EnvChannel, testChannel, EnvAPIURL, "http://proxy.example.com/api/"), "SLACK_API_URL must be https"},
		"api not a URL":         {env(EnvBotToken, testToken, EnvChannel, testChannel, EnvAPIURL, "ftp://x"), "SLACK_API_URL must be an https URL"},
	} {
		t.Run(name, func(t *testing.T) {
			logger, logs := newLog()
			n, err := FromEnv(tc.env, logger, nil)
			require.Error(t, err)
			assert.Nil(t, n)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "SECRET", "errors name the variable, never its value")
			assert.NotContains(t, logs.String(), "SECRET")
		})
	}
}

func TestFromEnvPrefersTheToken(t *testing.T) {
	f := newFakeSlack(t)
	h := newWebhook(t)
	logger, logs := newLog()
	n, err := FromEnv(env(EnvBotToken, testToken, EnvChannel, testChannel, EnvAPIURL, f.srv.GetAPIURL(), EnvWebhookURL, h.URL()), logger, nil)
	require.NoError(t, err)
	require.NoError(t, n.Notify(context.Background(), restoredDecision()))
	assert.Len(t, f.Posts(), 1)
	assert.Empty(t, h.Bodies())
	assert.Contains(t, logs.String(), "SLACK_WEBHOOK_URL is ignored")
}

func TestNewSlackNeedsOneDestination(t *testing.T) {
	_, err := NewSlack(Options{})
	assert.Error(t, err)
	_, err = NewSlack(Options{Token: testToken})
	assert.Error(t, err)
	_, err = NewSlack(Options{Token: testToken, Channel: testChannel, WebhookURL: "https://x"})
	assert.Error(t, err)
	s, err := NewSlack(Options{Token: testToken, Channel: testChannel, HTTPClient: &http.Client{}})
	require.NoError(t, err)
	assert.NotNil(t, s.http.CheckRedirect, "a given client still refuses redirects")
}
