package alerting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/tamperguard/tamperguard/internal/engine"
)

// Defaults of a Slack notifier.
const (
	DefaultRepeatWindow   = time.Hour
	DefaultMaxElapsed     = 30 * time.Second
	DefaultAttemptTimeout = 10 * time.Second
	maxAttempts           = 8
	maxResponseBody       = 1 << 20
)

// ErrNotDelivered: Slack did not take the alert within the time allowed. The alert was
// logged at ERROR with its full text instead.
var ErrNotDelivered = errors.New("alert not delivered to Slack")

// Options configure a Slack notifier. Exactly one of Token (with Channel) and WebhookURL
// is required.
type Options struct {
	// Token is a bot token; alerts are posted with chat.postMessage to Channel.
	Token, Channel string
	// WebhookURL is an incoming webhook; it cannot thread, so repeats are new messages.
	WebhookURL string
	// APIURL overrides Slack's Web API base (tests, proxies).
	APIURL string
	// HTTPClient is used for every request; its redirects are refused and response
	// bodies bounded either way. Default: a client with http.DefaultTransport.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Threads keeps repeat threads (default: in memory).
	Threads ThreadStore
	// RepeatWindow: an alert within this long of the previous one about the same object
	// goes into its thread (default DefaultRepeatWindow).
	RepeatWindow time.Duration
	// MaxElapsed bounds the time one Notify spends on Slack, retries included
	// (default DefaultMaxElapsed); AttemptTimeout bounds one request.
	MaxElapsed, AttemptTimeout time.Duration
	// Render is passed to Render (Repeat and FirstAlert are set per alert).
	Render RenderOptions
	// Now and Sleep replace the clock (tests).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// Slack posts alerts to Slack. It implements engine.Notifier.
type Slack struct {
	api      *slack.Client // nil for a webhook
	channel  string
	webhook  string
	http     *http.Client
	log      *slog.Logger
	threads  ThreadStore
	window   time.Duration
	elapsed  time.Duration
	attempt  time.Duration
	render   RenderOptions
	now      func() time.Time
	sleep    func(ctx context.Context, d time.Duration) error
	secrets  []string
	locks    keyLocks
	endpoint string // "the Slack API" or "the Slack webhook", for errors
}

var _ engine.Notifier = (*Slack)(nil)

// NewSlack returns a Slack notifier.
func NewSlack(o Options) (*Slack, error) {
	s := &Slack{
		channel: o.Channel, webhook: o.WebhookURL, log: o.Logger, threads: o.Threads,
		window: o.RepeatWindow, elapsed: o.MaxElapsed, attempt: o.AttemptTimeout,
		render: o.Render, now: o.Now, sleep: o.Sleep,
	}
	switch {
	case o.Token != "" && o.WebhookURL != "":
		return nil, errors.New("alerting: give a bot token or a webhook URL, not both")
	case o.Token != "" && o.Channel == "":
		return nil, errors.New("alerting: a channel is required with a bot token")
	case o.Token == "" && o.WebhookURL == "":
		return nil, errors.New("alerting: a bot token and channel, or a webhook URL, is required")
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.threads == nil {
		s.threads = NewMemoryThreads()
	}
	if s.window <= 0 {
		s.window = DefaultRepeatWindow
	}
	if s.elapsed <= 0 {
		s.elapsed = DefaultMaxElapsed
	}
	if s.attempt <= 0 {
		s.attempt = DefaultAttemptTimeout
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.sleep == nil {
		s.sleep = sleepCtx
	}
	s.http = boundedClient(o.HTTPClient)
	if o.Token != "" {
		s.secrets = secretForms(o.Token)
		opts := []slack.Option{slack.OptionHTTPClient(s.http)}
		if o.APIURL != "" {
			api := o.APIURL
			if !strings.HasSuffix(api, "/") {
				api += "/"
			}
			opts = append(opts, slack.OptionAPIURL(api))
		}
		s.api = slack.New(o.Token, opts...)
		s.endpoint = "the Slack API"
	} else {
		s.secrets = secretForms(o.WebhookURL)
		if u, err := url.Parse(o.WebhookURL); err == nil && len(u.Path) > 1 {
			s.secrets = append(s.secrets, secretForms(u.Path)...)
			s.secrets = append(s.secrets, secretForms(strings.TrimPrefix(u.Path, "/"))...)
			if u.RawQuery != "" {
				s.secrets = append(s.secrets, secretForms(u.RawQuery)...)
			}
			// The last segments of a Slack webhook's path are its secret: each alone too.
			for _, seg := range strings.Split(u.Path, "/") {
				if len(seg) >= 8 {
					s.secrets = append(s.secrets, secretForms(seg)...)
				}
			}
		}
		s.endpoint = "the Slack webhook"
	}
	return s, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// boundedClient is c (or a default client) that follows no redirect (a redirect could send
// the token or the alert elsewhere) and reads at most maxResponseBody of any answer.
func boundedClient(c *http.Client) *http.Client {
	out := &http.Client{}
	if c != nil {
		*out = *c
	}
	base := out.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	out.Transport = boundedTransport{base: base}
	out.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return out
}

type boundedTransport struct{ base http.RoundTripper }

func (t boundedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.LimitReader(resp.Body, maxResponseBody), resp.Body}
	return resp, nil
}

// Notify posts the alert for d, as a reply in the object's thread when one is open. When
// Slack stays unreachable for MaxElapsed, the alert is logged at ERROR with its full text
// and an error wrapping ErrNotDelivered is returned.
func (s *Slack) Notify(ctx context.Context, d *engine.Decision) error {
	if d == nil {
		return errors.New("alerting: nil decision")
	}
	if d.Verdict == engine.VerdictOK || d.Verdict == engine.VerdictIgnored {
		return nil
	}
	key := d.Bucket + "/" + d.Object
	defer s.locks.lock(key)()

	now := s.now()
	deadline := now.Add(s.elapsed)
	th, open, err := s.threads.Load(ctx, key)
	if err != nil {
		s.log.Warn("thread state unreadable; the alert goes out as a new message", "bucket", d.Bucket, "object", d.Object, "error", s.scrub(err.Error()))
	}
	if !open || now.Sub(th.Last) > s.window || now.Before(th.First) {
		th = Thread{Version: th.Version}
	}
	count := th.Count + 1
	ro := s.renderOptions()
	ro.Repeat = count
	if count > 1 {
		ro.FirstAlert = th.First
	}
	m := Render(d, ro)

	var sendErr error
	if s.api != nil {
		summary := fmt.Sprintf("🔁 %d alerts for this object · first seen %s · last seen %s · the latest is in the thread", count, fmtTime(th.First), fmtTime(now))
		sendErr = s.postBot(ctx, deadline, &th, m, d.Incident, summary)
	} else {
		sendErr = s.postWebhook(ctx, deadline, m)
	}
	if sendErr != nil {
		attrs := append(alertAttrs(d, m), "error", sendErr.Error())
		s.log.Error("alert not delivered to Slack; its full text follows", attrs...)
		return sendErr
	}
	th.Count, th.Last = count, now
	if count == 1 {
		th.First = now
		th.Parent = nil
		if s.api != nil {
			if b, err := json.Marshal(m.Blocks); err == nil && len(b) <= maxParentBlocks {
				th.Parent = b
			}
		}
	}
	if err := s.threads.Save(ctx, key, th); err != nil {
		level := slog.LevelWarn
		if errors.Is(err, ErrThreadConflict) {
			level = slog.LevelInfo // another instance alerted about this object at the same time
		}
		s.log.Log(ctx, level, "thread state not saved; a repeat may start a new thread", "bucket", d.Bucket, "object", d.Object, "error", s.scrub(err.Error()))
	}
	return nil
}

// postWebhook posts m through the incoming webhook.
func (s *Slack) postWebhook(ctx context.Context, deadline time.Time, m Message) error {
	return s.try(ctx, deadline, func(ctx context.Context) error {
		f := false
		return slack.PostWebhookCustomHTTPContext(ctx, s.webhook, s.http, &slack.WebhookMessage{
			Text: m.Fallback, Blocks: &slack.Blocks{BlockSet: m.Blocks}, UnfurlLinks: &f, UnfurlMedia: &f,
		})
	})
}

// postBot posts m as a new message, or as a reply in th's thread and then updates the
// thread's parent: its first alert's blocks with summary under them (count, first and last
// seen), so the parent keeps the first incident's details. th gets the parent's channel and
// ts.
func (s *Slack) postBot(ctx context.Context, deadline time.Time, th *Thread, m Message, incident, summary string) error {
	opts := []slack.MsgOption{
		slack.MsgOptionBlocks(m.Blocks...),
		slack.MsgOptionText(m.Fallback, false),
		slack.MsgOptionDisableLinkUnfurl(),
		slack.MsgOptionDisableMediaUnfurl(),
	}
	if incident != "" {
		// The incident rides along as message metadata, so that AlertSent can find the
		// message if its poster dies before recording it.
		opts = append(opts, slack.MsgOptionMetadata(slack.SlackMetadata{
			EventType: metadataEventType, EventPayload: map[string]any{"incident": incident},
		}))
	}
	started := s.now()
	post := func(thread string, extra ...slack.MsgOption) (string, string, error) {
		var ch, ts string
		attempt := 0
		err := s.try(ctx, deadline, func(ctx context.Context) error {
			attempt++
			if attempt > 1 && incident != "" {
				// A post is not idempotent: the previous attempt may have posted and lost
				// its answer. Look before posting again.
				fch, fts, found, err := s.findPosted(ctx, deadline, incident, started, thread)
				if err != nil {
					return err
				}
				if found {
					ch, ts = fch, fts
					return nil
				}
			}
			var err error
			ch, ts, err = s.api.PostMessageContext(ctx, s.channel, append(opts, extra...)...)
			return err
		})
		return ch, ts, err
	}
	if th.TS != "" {
		_, _, err := post(th.TS, slack.MsgOptionTS(th.TS))
		if err == nil {
			channel := th.Channel
			if channel == "" {
				channel = s.channel
			}
			update := opts[:2] // without the first alert's blocks: the latest alert's
			var parent slack.Blocks
			if len(th.Parent) > 0 && json.Unmarshal(th.Parent, &parent) == nil && len(parent.BlockSet) > 0 {
				bs := append(parent.BlockSet[:len(parent.BlockSet):len(parent.BlockSet)],
					slack.NewContextBlock("tamperguard_repeats", mrkdwnText(escape(summary, MaxContextText, modeSlack, false))))
				if len(bs) > MaxBlocks {
					bs = append(bs[:MaxBlocks-1], bs[len(bs)-1])
				}
				update = []slack.MsgOption{slack.MsgOptionBlocks(bs...), slack.MsgOptionText(m.Fallback, false)}
			}
			err := s.try(ctx, deadline, func(ctx context.Context) error {
				_, _, _, err := s.api.UpdateMessageContext(ctx, channel, th.TS, update...)
				return err
			})
			if err != nil {
				s.log.Warn("thread parent not updated with the latest alert", "error", err.Error())
			}
			return nil
		}
		var pe permanentError
		if !errors.As(err, &pe) {
			return err
		}
		// The parent is gone or not ours any more: start a new thread.
		s.log.Warn("reply to the alert thread refused; posting a new message", "error", err.Error())
		th.TS, th.Channel = "", ""
	}
	ch, ts, err := post("")
	if err != nil {
		return err
	}
	if validTS(ts) {
		th.TS = ts
		th.Channel = ""
		if validChannel(ch) {
			th.Channel = ch
		}
	} else {
		s.log.Warn("Slack answered without a usable message ts; repeats will not be threaded")
	}
	return nil
}

// metadataEventType marks tamperguard's alerts in Slack message metadata.
const metadataEventType = "tamperguard_incident"

// maxHistoryPages bounds the pages of channel history AlertSent reads.
const maxHistoryPages = 5

var _ engine.AlertFinder = (*Slack)(nil)

// AlertSent reports whether an alert about incident was posted since: the channel's history
// (and the object's open thread, where repeats go) is searched for the message metadata that
// Notify attaches. An incoming webhook cannot read its channel: it answers false, and an
// alert whose poster died between posting and recording it may be posted twice.
func (s *Slack) AlertSent(ctx context.Context, incident string, since time.Time) (bool, error) {
	if s.api == nil || incident == "" {
		return false, nil
	}
	object := incident
	if i := strings.LastIndexByte(object, '#'); i >= 0 {
		object = object[:i]
	}
	thread := ""
	if th, open, err := s.threads.Load(ctx, object); err == nil && open {
		thread = th.TS
	}
	_, _, found, err := s.findPosted(ctx, s.now().Add(s.elapsed), incident, since, thread)
	return found, err
}

// findPosted looks for a message carrying incident in its metadata, posted since, at the top
// of the channel or in thread: the message a post whose answer was lost may have created.
func (s *Slack) findPosted(ctx context.Context, deadline time.Time, incident string, since time.Time, thread string) (channel, ts string, found bool, err error) {
	oldest := fmt.Sprintf("%d.000000", since.Unix()-1)
	find := func(msgs []slack.Message) (string, bool) {
		for _, m := range msgs {
			if m.Metadata.EventType == metadataEventType && fmt.Sprint(m.Metadata.EventPayload["incident"]) == incident {
				return m.Timestamp, true
			}
		}
		return "", false
	}
	cursor := ""
	for range maxHistoryPages {
		var resp *slack.GetConversationHistoryResponse
		err := s.try(ctx, deadline, func(ctx context.Context) error {
			var err error
			resp, err = s.api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{
				ChannelID: s.channel, Oldest: oldest, Limit: 200, Cursor: cursor, IncludeAllMetadata: true})
			return err
		})
		if err != nil {
			return "", "", false, err
		}
		if ts, ok := find(resp.Messages); ok {
			return s.channel, ts, true, nil
		}
		if !resp.HasMore || resp.ResponseMetaData.NextCursor == "" {
			break
		}
		cursor = resp.ResponseMetaData.NextCursor
	}
	if thread == "" {
		return "", "", false, nil
	}
	// Repeats are replies in the object's thread, which the history does not list.
	var msgs []slack.Message
	err = s.try(ctx, deadline, func(ctx context.Context) error {
		var err error
		msgs, _, _, err = s.api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{
			ChannelID: s.channel, Timestamp: thread, Oldest: oldest, Limit: 200, IncludeAllMetadata: true})
		return err
	})
	if err != nil {
		return "", "", false, err
	}
	ts, ok := find(msgs)
	return s.channel, ts, ok, nil
}

// permanentError is a refusal that a retry would not change.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// try calls call until it succeeds, fails for good, or the deadline (by the notifier's
// clock) or ctx leaves no time for another attempt. Its errors never contain a secret nor
// any byte of Slack's answer beyond a short error code.
func (s *Slack) try(ctx context.Context, deadline time.Time, call func(ctx context.Context) error) error {
	var last string
	for attempt := 1; ; attempt++ {
		remaining := deadline.Sub(s.now())
		if remaining <= 0 {
			return fmt.Errorf("%w: %s did not answer in time (%d attempts; last: %s)", ErrNotDelivered, s.endpoint, attempt-1, last)
		}
		actx, cancel := context.WithTimeout(ctx, min(s.attempt, remaining))
		err := call(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %v after %d attempts (last: %s)", ErrNotDelivered, ctx.Err(), attempt, s.describe(err))
		}
		last = s.describe(err)
		wait, retry := s.backoff(err, attempt)
		if !retry {
			return permanentError{fmt.Errorf("%w: %s refused it: %s", ErrNotDelivered, s.endpoint, last)}
		}
		if attempt >= maxAttempts {
			return fmt.Errorf("%w: %s failed %d times (last: %s)", ErrNotDelivered, s.endpoint, attempt, last)
		}
		if s.now().Add(wait).After(deadline) {
			return fmt.Errorf("%w: %s failed %d times and the next try would be past the %s limit (last: %s)", ErrNotDelivered, s.endpoint, attempt, s.elapsed, last)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return fmt.Errorf("%w: %s failed %d times and the caller's deadline leaves no time to retry (last: %s)", ErrNotDelivered, s.endpoint, attempt, last)
		}
		if err := s.sleep(ctx, wait); err != nil {
			return fmt.Errorf("%w: %v while waiting to retry (last: %s)", ErrNotDelivered, err, last)
		}
	}
}

// Slack Web API error codes worth a retry.
var retryableCodes = map[string]bool{
	"ratelimited": true, "rate_limited": true, "internal_error": true, "fatal_error": true,
	"service_unavailable": true, "request_timeout": true, "timeout": true,
}

// backoff says whether err is worth another attempt, and after how long.
func (s *Slack) backoff(err error, attempt int) (time.Duration, bool) {
	exp := time.Second << min(attempt-1, 3) // 1s, 2s, 4s, 8s, 8s…
	exp += rand.N(exp/4 + 1)
	var rl *slack.RateLimitedError
	var sc slack.StatusCodeError
	var se slack.SlackErrorResponse
	switch {
	case errors.As(err, &rl):
		if rl.RetryAfter > 0 {
			return rl.RetryAfter, true
		}
		return exp, true
	case errors.As(err, &sc):
		return exp, sc.Code >= 500 || sc.Code == http.StatusTooManyRequests
	case errors.As(err, &se):
		return exp, retryableCodes[se.Err]
	}
	// Network errors, timeouts of one attempt, an unreadable answer, a Retry-After that is
	// not a number: all worth another try.
	return exp, true
}

// describe is a short, safe account of err: no secret, no markup, bounded.
func (s *Slack) describe(err error) string {
	var rl *slack.RateLimitedError
	var sc slack.StatusCodeError
	var se slack.SlackErrorResponse
	var ue *url.Error
	var ne *strconv.NumError
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &rl):
		return fmt.Sprintf("rate limited, retry after %s", rl.RetryAfter)
	case errors.As(err, &sc):
		return fmt.Sprintf("HTTP %d", sc.Code)
	case errors.As(err, &se):
		return "Slack error " + slackCode(se.Err)
	case errors.As(err, &ne):
		return "rate limited with an unreadable Retry-After"
	case errors.As(err, &syn), errors.As(err, &typ), errors.Is(err, io.ErrUnexpectedEOF):
		return "unreadable answer from " + s.endpoint
	case errors.As(err, &ue):
		// Never ue.Error(): it holds the URL, and a webhook's URL is its secret.
		inner := "request failed"
		if ue.Timeout() {
			inner = "timed out"
		} else if ue.Err != nil {
			inner = s.scrub(ue.Err.Error())
		}
		return display(ue.Op+" to "+s.endpoint+": "+inner, 300)
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	}
	return display(s.scrub(err.Error()), 300)
}

// slackCode keeps an error code as Slack writes them ("channel_not_found"), nothing else.
func slackCode(c string) string {
	if c == "" || len(c) > 64 {
		return "(unreadable)"
	}
	for i := 0; i < len(c); i++ {
		if ch := c[i]; !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '_' || ch == '.') {
			return "(unreadable)"
		}
	}
	return c
}

// secretForms are the ways a secret may be written in an error: as is, quoted, escaped.
func secretForms(secret string) []string {
	if len(secret) < 4 {
		return nil
	}
	q := strconv.Quote(secret)
	return []string{secret, q[1 : len(q)-1], url.QueryEscape(secret), url.PathEscape(secret)}
}

// scrub removes every form of the notifier's secrets from s.
func (s *Slack) scrub(str string) string {
	for _, sec := range s.secrets {
		if sec != "" {
			str = strings.ReplaceAll(str, sec, "[redacted]")
		}
	}
	return str
}

// alertAttrs are the log attributes of an alert: what a query needs, and the full text.
func alertAttrs(d *engine.Decision, m Message) []any {
	return []any{
		"bucket", d.Bucket, "object", d.Object, "generation", d.Generation,
		"verdict", string(d.Verdict), "action", d.Action, "reason", d.Reason,
		"alert", Text(m),
	}
}

// keyLocks serializes the alerts about one object within this process, so a repeat never
// races its own thread's creation.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	sync.Mutex
	refs int
}

func (k *keyLocks) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &keyLock{}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
