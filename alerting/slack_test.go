package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack/slacktest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/engine"
)

const (
	testToken   = "xoxb-1111111111-2222222222-SECRETtokenSECRET"
	testChannel = "C0ALERTS1"
)

// fakeClock is the notifier's clock: Sleep advances it at once and records the wait.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func newClock() *fakeClock { return &fakeClock{t: tRestored.Add(time.Second)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.sleeps = append(c.sleeps, d)
	c.mu.Unlock()
	return ctx.Err()
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// logBuffer collects JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Records are the decoded log lines.
func (b *logBuffer) Records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &r), line)
		out = append(out, r)
	}
	return out
}

func newLog() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// reply scripts one answer of the fake Slack.
type reply func(w http.ResponseWriter, r *http.Request, ts string)

func ok(w http.ResponseWriter, r *http.Request, ts string) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"ok":true,"channel":%q,"ts":%q}`, testChannel, ts)
}

func status(code int) reply {
	return func(w http.ResponseWriter, _ *http.Request, _ string) { http.Error(w, "<html>down</html>", code) }
}

func rateLimited(after string) reply {
	return func(w http.ResponseWriter, _ *http.Request, _ string) {
		w.Header().Set("Retry-After", after)
		w.WriteHeader(http.StatusTooManyRequests)
	}
}

func slackError(code string) reply {
	return func(w http.ResponseWriter, _ *http.Request, _ string) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"ok":false,"error":%q}`, code)
	}
}

// fakeSlack is slacktest with our own chat.postMessage and chat.update handlers, which
// record every form and answer as scripted (then "ok").
type fakeSlack struct {
	srv     *slacktest.Server
	mu      sync.Mutex
	posts   []url.Values
	updates []url.Values
	script  []reply
	n       int
}

func newFakeSlack(t *testing.T, script ...reply) *fakeSlack {
	f := &fakeSlack{script: script}
	handle := func(into *[]url.Values) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			require.NoError(t, r.ParseForm())
			f.mu.Lock()
			*into = append(*into, r.PostForm)
			f.n++
			ts := fmt.Sprintf("1612087300.%06d", f.n)
			next := reply(ok)
			if len(f.script) > 0 {
				next, f.script = f.script[0], f.script[1:]
			}
			f.mu.Unlock()
			next(w, r, ts)
		}
	}
	f.srv = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", handle(&f.posts))
		c.Handle("/chat.update", handle(&f.updates))
	})
	f.srv.Start()
	t.Cleanup(f.srv.Stop)
	return f
}

func (f *fakeSlack) Posts() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.posts...)
}

func (f *fakeSlack) Updates() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.updates...)
}

func newBot(t *testing.T, f *fakeSlack, clock *fakeClock, mod ...func(*Options)) (*Slack, *logBuffer) {
	t.Helper()
	logger, logs := newLog()
	o := Options{Token: testToken, Channel: testChannel, APIURL: f.srv.GetAPIURL(), Logger: logger, Now: clock.Now, Sleep: clock.Sleep}
	for _, m := range mod {
		m(&o)
	}
	s, err := NewSlack(o)
	require.NoError(t, err)
	return s, logs
}

func restoredDecision() *engine.Decision {
	d, _ := goldenCases()["restored"]()
	return d
}

// header is the header text of posted blocks.
func postedHeader(t *testing.T, form url.Values) string {
	t.Helper()
	var blocks []map[string]any
	require.NoError(t, json.Unmarshal([]byte(form.Get("blocks")), &blocks))
	require.NotEmpty(t, blocks)
	require.Equal(t, "header", blocks[0]["type"])
	return blocks[0]["text"].(map[string]any)["text"].(string)
}

func TestBotPostsTheGoldenBlocks(t *testing.T) {
	for name, mk := range goldenCases() {
		d, opts := mk()
		if opts.Repeat > 1 || opts.Deployment != "" {
			continue // a repeat's blocks depend on the thread (TestRepeatsGoIntoTheThread); the notifier's own options make the context
		}
		t.Run(name, func(t *testing.T) {
			f := newFakeSlack(t)
			s, _ := newBot(t, f, newClock())
			require.NoError(t, s.Notify(context.Background(), d))
			posts := f.Posts()
			require.Len(t, posts, 1)
			p := posts[0]
			assert.Equal(t, testToken, p.Get("token"))
			assert.Equal(t, testChannel, p.Get("channel"))
			assert.Equal(t, "false", p.Get("unfurl_links"))
			assert.Equal(t, "false", p.Get("unfurl_media"))
			assert.Empty(t, p.Get("thread_ts"))
			golden, err := os.ReadFile(filepath.Join(goldenDir, name+".json"))
			require.NoError(t, err)
			assert.JSONEq(t, string(golden), p.Get("blocks"))
			assert.Equal(t, Render(d, RenderOptions{Repeat: 1}).Fallback, p.Get("text"))
		})
	}
}

func TestRepeatsGoIntoTheThread(t *testing.T) {
	f := newFakeSlack(t)
	clock := newClock()
	s, _ := newBot(t, f, clock)
	ctx := context.Background()

	require.NoError(t, s.Notify(ctx, restoredDecision()))
	first := clock.Now()
	clock.Advance(10 * time.Minute)
	d := restoredDecision()
	d.Generation++
	require.NoError(t, s.Notify(ctx, d))

	posts := f.Posts()
	require.Len(t, posts, 2)
	assert.Empty(t, posts[0].Get("thread_ts"))
	assert.Equal(t, "1612087300.000001", posts[1].Get("thread_ts"), "the repeat is a reply to the first alert")
	assert.Contains(t, postedHeader(t, posts[1]), "(repeat 2)")
	assert.Contains(t, posts[1].Get("blocks"), "2 alerts for this object since "+fmtTime(first))

	updates := f.Updates()
	require.Len(t, updates, 1, "the parent is updated")
	assert.Equal(t, "1612087300.000001", updates[0].Get("ts"))
	assert.Equal(t, testChannel, updates[0].Get("channel"))
	// It keeps the first incident's details, with the count and first and last seen under them.
	parent := posts[0].Get("blocks")
	updated := updates[0].Get("blocks")
	assert.True(t, strings.HasPrefix(updated, strings.TrimSuffix(parent, "]")), "the first alert's blocks, unchanged")
	assert.Contains(t, updated, "🔁 2 alerts for this object · first seen "+fmtTime(first))
	assert.NotContains(t, updated, "(repeat 2)", "not the latest alert's")

	// A third within the window: count 3, still the first alert's thread.
	clock.Advance(50 * time.Minute)
	require.NoError(t, s.Notify(ctx, d))
	posts = f.Posts()
	require.Len(t, posts, 3)
	assert.Equal(t, "1612087300.000001", posts[2].Get("thread_ts"))
	assert.Contains(t, postedHeader(t, posts[2]), "(repeat 3)")

	// Another object: its own message.
	other := restoredDecision()
	other.Object = "install/other.sh"
	require.NoError(t, s.Notify(ctx, other))
	posts = f.Posts()
	require.Len(t, posts, 4)
	assert.Empty(t, posts[3].Get("thread_ts"))

	// Past the window since the last alert: a new top-level message.
	clock.Advance(61 * time.Minute)
	require.NoError(t, s.Notify(ctx, d))
	posts = f.Posts()
	require.Len(t, posts, 5)
	assert.Empty(t, posts[4].Get("thread_ts"))
	assert.NotContains(t, postedHeader(t, posts[4]), "repeat")
}

func TestThreadsSharedThroughTheStore(t *testing.T) {
	// Two instances sharing a thread store thread under the same parent.
	f := newFakeSlack(t)
	clock := newClock()
	store := NewStateThreads(newStateStore(t), "state")
	a, _ := newBot(t, f, clock, func(o *Options) { o.Threads = store })
	b, _ := newBot(t, f, clock, func(o *Options) { o.Threads = store })
	require.NoError(t, a.Notify(context.Background(), restoredDecision()))
	clock.Advance(time.Minute)
	require.NoError(t, b.Notify(context.Background(), restoredDecision()))
	posts := f.Posts()
	require.Len(t, posts, 2)
	assert.Equal(t, "1612087300.000001", posts[1].Get("thread_ts"))
}

func TestParentGoneStartsANewThread(t *testing.T) {
	f := newFakeSlack(t, ok, slackError("thread_not_found"))
	clock := newClock()
	s, _ := newBot(t, f, clock)
	require.NoError(t, s.Notify(context.Background(), restoredDecision()))
	require.NoError(t, s.Notify(context.Background(), restoredDecision()))
	posts := f.Posts()
	require.Len(t, posts, 3)
	assert.NotEmpty(t, posts[1].Get("thread_ts"))
	assert.Empty(t, posts[2].Get("thread_ts"), "refused as a reply, posted as a new message")
	assert.Contains(t, postedHeader(t, posts[2]), "(repeat 2)")
}

func TestRateLimitHonoursRetryAfter(t *testing.T) {
	f := newFakeSlack(t, rateLimited("1"))
	clock := newClock()
	s, _ := newBot(t, f, clock)
	start := time.Now()
	require.NoError(t, s.Notify(context.Background(), restoredDecision()))
	assert.Less(t, time.Since(start), 2*time.Second, "the wait goes through the injected clock")
	assert.Equal(t, []time.Duration{time.Second}, clock.Sleeps())
	assert.Len(t, f.Posts(), 2)
}

func TestRateLimitBeyondTheBudgetGivesUp(t *testing.T) {
	f := newFakeSlack(t, rateLimited("3600"))
	clock := newClock()
	s, logs := newBot(t, f, clock)
	err := s.Notify(context.Background(), restoredDecision())
	require.ErrorIs(t, err, ErrNotDelivered)
	assert.Contains(t, err.Error(), "rate limited, retry after 1h0m0s")
	assert.Empty(t, clock.Sleeps(), "no point waiting past the limit")
	assert.Len(t, f.Posts(), 1)
	assert.Contains(t, logs.String(), `"level":"ERROR"`)
}

func TestServerErrorThenSuccess(t *testing.T) {
	f := newFakeSlack(t, status(http.StatusInternalServerError), status(http.StatusBadGateway))
	clock := newClock()
	s, logs := newBot(t, f, clock)
	require.NoError(t, s.Notify(context.Background(), restoredDecision()))
	assert.Len(t, f.Posts(), 3)
	sleeps := clock.Sleeps()
	require.Len(t, sleeps, 2)
	assert.GreaterOrEqual(t, sleeps[0], time.Second)
	assert.GreaterOrEqual(t, sleeps[1], 2*time.Second, "backoff grows")
	assert.NotContains(t, logs.String(), `"level":"ERROR"`)
}

func TestMalformedRetryAfterIsRetried(t *testing.T) {
	f := newFakeSlack(t, rateLimited("soon<!channel>"))
	clock := newClock()
	s, _ := newBot(t, f, clock)
	require.NoError(t, s.Notify(context.Background(), restoredDecision()))
	assert.Len(t, f.Posts(), 2)
}

func TestPermanentRefusalIsNotRetried(t *testing.T) {
	f := newFakeSlack(t, slackError("channel_not_found"))
	clock := newClock()
	s, logs := newBot(t, f, clock)
	err := s.Notify(context.Background(), restoredDecision())
	require.ErrorIs(t, err, ErrNotDelivered)
	assert.Contains(t, err.Error(), "channel_not_found")
	assert.Len(t, f.Posts(), 1)
	assert.Empty(t, clock.Sleeps())
	assert.Contains(t, logs.String(), "alert not delivered to Slack")
}

// assertLoggedInFull checks the ERROR record that replaces an undelivered alert.
func assertLoggedInFull(t *testing.T, logs *logBuffer, d *engine.Decision) {
	t.Helper()
	var found map[string]any
	for _, r := range logs.Records(t) {
		if r["level"] == "ERROR" {
			found = r
		}
	}
	require.NotNil(t, found, "an ERROR record: %s", logs.String())
	assert.Equal(t, "alert not delivered to Slack; its full text follows", found["msg"])
	assert.Equal(t, Text(Render(d, RenderOptions{Repeat: 1})), found["alert"], "the full text of the alert")
	assert.Equal(t, d.Object, found["object"])
	assert.Equal(t, string(d.Verdict), found["verdict"])
}

func TestSlackDownLogsTheAlertAndGivesUpInTime(t *testing.T) {
	f := newFakeSlack(t, status(500), status(500), status(500), status(500), status(500), status(500), status(500), status(500), status(500), status(500))
	clock := newClock()
	s, logs := newBot(t, f, clock)
	started := clock.Now()
	realStart := time.Now()
	err := s.Notify(context.Background(), restoredDecision())
	require.ErrorIs(t, err, ErrNotDelivered)
	assert.Less(t, time.Since(realStart), 5*time.Second)
	assert.LessOrEqual(t, clock.Now().Sub(started), DefaultMaxElapsed, "bounded by MaxElapsed")
	assert.GreaterOrEqual(t, len(f.Posts()), 3, "retried")
	assert.LessOrEqual(t, len(f.Posts()), maxAttempts)
	assert.Contains(t, err.Error(), "HTTP 500")
	assertLoggedInFull(t, logs, restoredDecision())
	assert.NotContains(t, err.Error(), testToken)
	assert.NotContains(t, logs.String(), testToken)
	assert.NotContains(t, logs.String(), "SECRETtoken")
}

func TestSlackUnreachable(t *testing.T) {
	// Nothing listens: connection refused on every attempt.
	srv := httptest.NewServer(http.NotFoundHandler())
	api := srv.URL + "/api/"
	srv.Close()
	clock := newClock()
	logger, logs := newLog()
	s, err := NewSlack(Options{Token: testToken, Channel: testChannel, APIURL: api, Logger: logger, Now: clock.Now, Sleep: clock.Sleep, MaxElapsed: 10 * time.Second})
	require.NoError(t, err)
	err = s.Notify(context.Background(), restoredDecision())
	require.ErrorIs(t, err, ErrNotDelivered)
	assert.LessOrEqual(t, clock.Now().Sub(tRestored.Add(time.Second)), 10*time.Second)
	assertLoggedInFull(t, logs, restoredDecision())
	assert.NotContains(t, err.Error(), "SECRETtoken")
	assert.NotContains(t, logs.String(), "SECRETtoken")
}

func TestHostileAnswersDoNotLeakOrBreak(t *testing.T) {
	reflect := func(w http.ResponseWriter, r *http.Request, _ string) {
		// An answer that echoes the token and tries to inject into logs.
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"ok":false,"error":"invalid_auth %s <!channel>\n\u001b[2J"}`, r.PostForm.Get("token"))
	}
	badTS := func(w http.ResponseWriter, _ *http.Request, _ string) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true,"channel":"<!here>","ts":"<!channel>"}`)
	}
	huge := func(w http.ResponseWriter, _ *http.Request, _ string) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true,"ts":"`+strings.Repeat("1", 3<<20)+`"}`)
	}

	f := newFakeSlack(t, reflect)
	clock := newClock()
	s, logs := newBot(t, f, clock)
	err := s.Notify(context.Background(), restoredDecision())
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "SECRETtoken")
	assert.NotContains(t, err.Error(), "<!channel>")
	assert.Contains(t, err.Error(), "Slack error (unreadable)")
	assert.NotContains(t, logs.String(), "SECRETtoken")

	f = newFakeSlack(t, badTS)
	s, logs = newBot(t, f, clock)
	require.NoError(t, s.Notify(context.Background(), restoredDecision()))
	clock.Advance(time.Minute)
	require.NoError(t, s.Notify(context.Background(), restoredDecision()))
	posts := f.Posts()
	require.Len(t, posts, 2)
	assert.Empty(t, posts[1].Get("thread_ts"), "an unusable ts is never sent back")
	assert.Contains(t, logs.String(), "without a usable message ts")

	f = newFakeSlack(t, huge, huge, huge, huge, huge, huge, huge, huge)
	s, _ = newBot(t, f, clock)
	err = s.Notify(context.Background(), restoredDecision())
	require.Error(t, err, "an answer over the response bound is not read to its end")
	assert.Contains(t, err.Error(), "unreadable answer")
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	var got int
	var mu sync.Mutex
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got++
		mu.Unlock()
	}))
	t.Cleanup(elsewhere.Close)
	f := newFakeSlack(t, func(w http.ResponseWriter, r *http.Request, _ string) {
		http.Redirect(w, r, elsewhere.URL+"/steal", http.StatusTemporaryRedirect)
	})
	s, _ := newBot(t, f, newClock())
	err := s.Notify(context.Background(), restoredDecision())
	require.ErrorIs(t, err, ErrNotDelivered)
	assert.Contains(t, err.Error(), "HTTP 307")
	mu.Lock()
	assert.Zero(t, got, "the token never goes where a redirect points")
	mu.Unlock()
}

func TestCallerDeadlineBoundsNotify(t *testing.T) {
	f := newFakeSlack(t, status(500), status(500), status(500))
	s, err := NewSlack(Options{Token: testToken, Channel: testChannel, APIURL: f.srv.GetAPIURL(), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.Notify(ctx, restoredDecision())
	require.ErrorIs(t, err, ErrNotDelivered)
	assert.Less(t, time.Since(start), 2*time.Second)
}

// webhook is an incoming-webhook endpoint that records what it receives.
type webhook struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []map[string]any
	script []int
}

func newWebhook(t *testing.T, script ...int) *webhook {
	h := &webhook{script: script}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "/services/T000/B000/SECRETwebhookSECRET", r.URL.Path)
		b, err := io.ReadAll(r.Body)
		require.NoError(t, err)
		var v map[string]any
		require.NoError(t, json.Unmarshal(b, &v))
		h.mu.Lock()
		h.bodies = append(h.bodies, v)
		code := http.StatusOK
		if len(h.script) > 0 {
			code, h.script = h.script[0], h.script[1:]
		}
		h.mu.Unlock()
		if code != http.StatusOK {
			http.Error(w, "no_service", code)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *webhook) URL() string { return h.srv.URL + "/services/T000/B000/SECRETwebhookSECRET" }

func (h *webhook) Bodies() []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]map[string]any(nil), h.bodies...)
}

func TestWebhookDelivery(t *testing.T) {
	h := newWebhook(t, http.StatusServiceUnavailable)
	clock := newClock()
	logger, logs := newLog()
	s, err := NewSlack(Options{WebhookURL: h.URL(), Logger: logger, Now: clock.Now, Sleep: clock.Sleep})
	require.NoError(t, err)
	d := restoredDecision()
	require.NoError(t, s.Notify(context.Background(), d))
	bodies := h.Bodies()
	require.Len(t, bodies, 2, "a 503 is retried")
	golden, err := os.ReadFile(filepath.Join(goldenDir, "restored.json"))
	require.NoError(t, err)
	blocks, err := json.Marshal(bodies[1]["blocks"])
	require.NoError(t, err)
	assert.JSONEq(t, string(golden), string(blocks))
	assert.Equal(t, Render(d, RenderOptions{Repeat: 1}).Fallback, bodies[1]["text"])
	assert.Equal(t, false, bodies[1]["unfurl_links"])

	// Webhooks cannot thread: a repeat is a new message that says it is one.
	clock.Advance(5 * time.Minute)
	require.NoError(t, s.Notify(context.Background(), d))
	bodies = h.Bodies()
	require.Len(t, bodies, 3)
	assert.Nil(t, bodies[2]["thread_ts"])
	blocks, err = json.Marshal(bodies[2]["blocks"])
	require.NoError(t, err)
	assert.Contains(t, string(blocks), "(repeat 2)")
	assert.NotContains(t, logs.String(), "SECRETwebhook")
}

func TestWebhookURLNeverLeaks(t *testing.T) {
	h := newWebhook(t, 500, 500, 500, 500, 500, 500, 500, 500, 500)
	clock := newClock()
	logger, logs := newLog()
	s, err := NewSlack(Options{WebhookURL: h.URL(), Logger: logger, Now: clock.Now, Sleep: clock.Sleep})
	require.NoError(t, err)
	err1 := s.Notify(context.Background(), restoredDecision())
	require.ErrorIs(t, err1, ErrNotDelivered)
	assertLoggedInFull(t, logs, restoredDecision())

	// And when nothing listens, the transport's error (which names the URL) is scrubbed.
	url := h.URL()
	h.srv.Close()
	s, err = NewSlack(Options{WebhookURL: url, Logger: logger, Now: clock.Now, Sleep: clock.Sleep})
	require.NoError(t, err)
	err2 := s.Notify(context.Background(), restoredDecision())
	require.ErrorIs(t, err2, ErrNotDelivered)
	assert.Contains(t, err2.Error(), "the Slack webhook")
	for _, text := range []string{err1.Error(), err2.Error(), logs.String()} {
		assert.NotContains(t, text, "SECRETwebhook")
		assert.NotContains(t, text, "/services/")
	}
}

func TestScrubForms(t *testing.T) {
	const hook = "https://hooks.slack.com/services/T00000000/B00000000/XXXXsecret+24charsXXXXXX"
	s, err := NewSlack(Options{WebhookURL: hook})
	require.NoError(t, err)
	for _, leak := range []string{
		`Post "` + hook + `": EOF`,
		url.QueryEscape(hook),
		url.PathEscape(hook),
		`/services/T00000000/B00000000/XXXXsecret+24charsXXXXXX`,
		`services/T00000000/B00000000/XXXXsecret%2B24charsXXXXXX`,
		`unexpected token XXXXsecret+24charsXXXXXX`,
	} {
		assert.NotContains(t, s.scrub(leak), "secret", leak)
	}
	b, err := NewSlack(Options{Token: testToken, Channel: testChannel})
	require.NoError(t, err)
	assert.Equal(t, "token=[redacted]&x", b.scrub("token="+url.QueryEscape(testToken)+"&x"))
}

func TestConcurrentAlertsForOneObjectShareAThread(t *testing.T) {
	f := newFakeSlack(t)
	clock := newClock()
	s, _ := newBot(t, f, clock)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { assert.NoError(t, s.Notify(context.Background(), restoredDecision())) })
	}
	wg.Wait()
	posts := f.Posts()
	require.Len(t, posts, 8)
	top := 0
	for _, p := range posts {
		if p.Get("thread_ts") == "" {
			top++
		}
	}
	assert.Equal(t, 1, top, "one parent, seven replies")
	th, ok, err := s.threads.Load(context.Background(), "dl.example.org/install/uploader.sh")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, 8, th.Count)
}

func TestNotifySkipsNonAlerts(t *testing.T) {
	f := newFakeSlack(t)
	s, _ := newBot(t, f, newClock())
	require.NoError(t, s.Notify(context.Background(), &engine.Decision{Bucket: "b", Object: "o", Verdict: engine.VerdictOK}))
	require.NoError(t, s.Notify(context.Background(), &engine.Decision{Bucket: "b", Object: "o", Verdict: engine.VerdictIgnored}))
	assert.Empty(t, f.Posts())
	assert.Error(t, s.Notify(context.Background(), nil))
}
