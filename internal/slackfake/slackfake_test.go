package slackfake_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/faultproxy"
	"github.com/tamperguard/tamperguard/internal/slackfake"
)

const channel = "C0ALERTS"

// fixedClock returns the same instant every time: timestamps must still increase.
func fixedClock() time.Time { return time.Unix(1612087300, 0) }

func newFake(t *testing.T, mod ...func(*slackfake.Options)) *slackfake.Server {
	o := slackfake.Options{Now: fixedClock}
	for _, m := range mod {
		m(&o)
	}
	return slackfake.New(t, o)
}

func api(s *slackfake.Server, ep ...slackfake.Endpoints) *slack.Client {
	e := s.Endpoints()
	if len(ep) > 0 {
		e = ep[0]
	}
	return slack.New(s.Token(), slack.OptionAPIURL(e.API))
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func slackErr(t *testing.T, err error) slack.SlackErrorResponse {
	t.Helper()
	var se slack.SlackErrorResponse
	require.ErrorAs(t, err, &se)
	return se
}

func alertBlocks(header string) []slack.Block {
	return []slack.Block{
		slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, header, false, false)),
		slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "*gs://bucket/codecov* restored", false, false), nil, nil),
	}
}

func incident(id string) slack.SlackMetadata {
	return slack.SlackMetadata{EventType: "tamperguard_incident", EventPayload: map[string]any{"incident": id, "generation": "1612087300000001"}}
}

// ---- chat.postMessage ---------------------------------------------------------------

func TestPostMessageRecordsEverything(t *testing.T) {
	s := newFake(t)
	c := api(s)
	ch, ts, err := c.PostMessageContext(ctx(t), channel,
		slack.MsgOptionText("fallback text", false),
		slack.MsgOptionBlocks(alertBlocks("Restored codecov")...),
		slack.MsgOptionMetadata(incident("b/codecov#1")),
		slack.MsgOptionDisableLinkUnfurl(),
	)
	require.NoError(t, err)
	assert.Equal(t, channel, ch)
	assert.Equal(t, "1612087300.000000", ts)

	msgs := s.Messages()
	require.Len(t, msgs, 1)
	m := msgs[0]
	assert.Equal(t, channel, m.Channel)
	assert.Equal(t, ts, m.TS)
	assert.Empty(t, m.ThreadTS)
	assert.Equal(t, "fallback text", m.Text)
	assert.Equal(t, "api", m.Via)
	want, err := json.Marshal(alertBlocks("Restored codecov"))
	require.NoError(t, err)
	assert.JSONEq(t, string(want), string(m.Blocks))
	require.NotNil(t, m.Metadata)
	assert.Equal(t, "tamperguard_incident", m.Metadata.EventType)
	assert.JSONEq(t, `{"incident":"b/codecov#1","generation":"1612087300000001"}`, string(m.Metadata.EventPayload))

	calls := s.CallsTo("chat.postMessage")
	require.Len(t, calls, 1)
	assert.Equal(t, "false", calls[0].Form.Get("unfurl_links"))
	assert.Empty(t, calls[0].Form.Get("token"), "the token is never recorded")
	assert.Empty(t, calls[0].Error)
}

func TestTimestampsIncreaseStrictly(t *testing.T) {
	s := newFake(t) // a clock that never moves
	c := api(s)
	var last string
	for i := range 5 {
		_, ts, err := c.PostMessageContext(ctx(t), channel, slack.MsgOptionText(fmt.Sprint(i), false))
		require.NoError(t, err)
		assert.Greater(t, ts, last)
		last = ts
	}
	assert.Equal(t, "1612087300.000004", last)

	// A clock going backwards does not make them go back.
	now := time.Unix(1700000000, 0)
	s2 := newFake(t, func(o *slackfake.Options) { o.Now = func() time.Time { now = now.Add(-time.Second); return now } })
	c2 := api(s2)
	_, a, err := c2.PostMessageContext(ctx(t), channel, slack.MsgOptionText("a", false))
	require.NoError(t, err)
	_, b, err := c2.PostMessageContext(ctx(t), channel, slack.MsgOptionText("b", false))
	require.NoError(t, err)
	assert.Greater(t, b, a)
}

func TestAuth(t *testing.T) {
	s := newFake(t)
	r, err := api(s).AuthTestContext(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, slackfake.DefaultUserID, r.UserID)
	assert.Equal(t, slackfake.DefaultBotID, r.BotID)
	assert.Equal(t, slackfake.DefaultTeamID, r.TeamID)

	_, err = slack.New("xoxb-wrong", slack.OptionAPIURL(s.Endpoints().API)).AuthTestContext(ctx(t))
	assert.Equal(t, "invalid_auth", slackErr(t, err).Err)
	_, _, err = slack.New("", slack.OptionAPIURL(s.Endpoints().API)).PostMessageContext(ctx(t), channel, slack.MsgOptionText("x", false))
	assert.Equal(t, "not_authed", slackErr(t, err).Err)
	assert.Empty(t, s.Messages())
	assert.Equal(t, "not_authed", s.Calls()[2].Error)
}

func TestPostMessageRefusals(t *testing.T) {
	s := newFake(t, func(o *slackfake.Options) { o.Channels = []string{channel} })
	c := api(s)
	post := func(opts ...slack.MsgOption) error {
		_, _, err := c.PostMessageContext(ctx(t), channel, opts...)
		return err
	}
	_, _, err := c.PostMessageContext(ctx(t), "C0OTHER", slack.MsgOptionText("x", false))
	assert.Equal(t, "channel_not_found", slackErr(t, err).Err)

	assert.Equal(t, "no_text", slackErr(t, post()).Err)

	se := slackErr(t, post(slack.MsgOptionBlocks(alertBlocks(strings.Repeat("h", slackfake.MaxHeaderText+1))...)))
	assert.Equal(t, "invalid_blocks", se.Err)
	require.Len(t, se.ResponseMetadata.Messages, 1)
	assert.Contains(t, se.ResponseMetadata.Messages[0], "/blocks/0/text/text")
	require.NoError(t, post(slack.MsgOptionBlocks(alertBlocks(strings.Repeat("h", slackfake.MaxHeaderText))...)), "150 characters fit")
	require.NoError(t, post(slack.MsgOptionBlocks(alertBlocks(strings.Repeat("é", slackfake.MaxHeaderText))...)), "characters, not bytes")

	long := slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, strings.Repeat("x", slackfake.MaxSectionText+1), false, false), nil, nil)
	assert.Equal(t, "invalid_blocks", slackErr(t, post(slack.MsgOptionBlocks(long))).Err)
	many := make([]slack.Block, slackfake.MaxBlocks+1)
	for i := range many {
		many[i] = slack.NewDividerBlock()
	}
	assert.Equal(t, "invalid_blocks", slackErr(t, post(slack.MsgOptionBlocks(many...))).Err)
	var fields []*slack.TextBlockObject
	for range slackfake.MaxSectionFields + 1 {
		fields = append(fields, slack.NewTextBlockObject(slack.MarkdownType, "f", false, false))
	}
	assert.Equal(t, "invalid_blocks", slackErr(t, post(slack.MsgOptionBlocks(slack.NewSectionBlock(nil, fields, nil)))).Err)

	assert.Equal(t, "msg_too_long", slackErr(t, post(slack.MsgOptionText(strings.Repeat("x", slackfake.MaxMessageText+1), false))).Err)
	assert.Equal(t, "invalid_metadata_format", slackErr(t, post(slack.MsgOptionText("x", false), slack.MsgOptionMetadata(slack.SlackMetadata{EventType: ""}))).Err)
	assert.Equal(t, "invalid_metadata_format", slackErr(t, post(slack.MsgOptionText("x", false), slack.MsgOptionMetadata(slack.SlackMetadata{EventType: "t"}))).Err, "a payload must be an object")

	assert.Equal(t, "invalid_thread_ts", slackErr(t, post(slack.MsgOptionText("x", false), slack.MsgOptionTS("0"))).Err)
	assert.Equal(t, "thread_not_found", slackErr(t, post(slack.MsgOptionText("x", false), slack.MsgOptionTS("1612087300.999999"))).Err)

	assert.Len(t, s.Messages(), 2, "only the two posts that fit were kept")
}

// ---- threads, updates, history ------------------------------------------------------

func TestThreadsAndUpdates(t *testing.T) {
	s := newFake(t)
	c := api(s)
	_, parent, err := c.PostMessageContext(ctx(t), channel, slack.MsgOptionText("first alert", false), slack.MsgOptionBlocks(alertBlocks("first")...))
	require.NoError(t, err)
	_, reply, err := c.PostMessageContext(ctx(t), channel, slack.MsgOptionText("repeat 2", false), slack.MsgOptionTS(parent))
	require.NoError(t, err)
	_, err = func() (string, error) {
		_, ts, err := c.PostMessageContext(ctx(t), channel, slack.MsgOptionText("reply to a reply", false), slack.MsgOptionTS(reply))
		return ts, err
	}()
	assert.Equal(t, "thread_not_found", slackErr(t, err).Err, "a reply's ts is not a thread")

	// chat.update: text replaced, blocks kept when not sent, metadata set.
	_, ts, _, err := c.UpdateMessageContext(ctx(t), channel, parent, slack.MsgOptionText("2 alerts", false), slack.MsgOptionMetadata(incident("i1")))
	require.NoError(t, err)
	assert.Equal(t, parent, ts)
	msgs := s.Messages()
	require.Len(t, msgs, 2)
	assert.Equal(t, "2 alerts", msgs[0].Text)
	assert.Equal(t, 1, msgs[0].Edits)
	assert.Contains(t, string(msgs[0].Blocks), "first", "blocks kept")
	require.NotNil(t, msgs[0].Metadata)
	assert.Equal(t, parent, msgs[1].ThreadTS)

	// Blocks replaced when sent.
	_, _, _, err = c.UpdateMessageContext(ctx(t), channel, parent, slack.MsgOptionBlocks(alertBlocks("latest")...))
	require.NoError(t, err)
	assert.Contains(t, string(s.Messages()[0].Blocks), "latest")
	assert.Equal(t, 2, s.Messages()[0].Edits)

	_, _, _, err = c.UpdateMessageContext(ctx(t), channel, "1612087399.000000", slack.MsgOptionText("x", false))
	assert.Equal(t, "message_not_found", slackErr(t, err).Err)

	// History: the parent only, with its thread summary.
	h, err := c.GetConversationHistoryContext(ctx(t), &slack.GetConversationHistoryParameters{ChannelID: channel})
	require.NoError(t, err)
	require.Len(t, h.Messages, 1)
	assert.Equal(t, parent, h.Messages[0].Timestamp)
	assert.Equal(t, 1, h.Messages[0].ReplyCount)
	assert.Equal(t, reply, h.Messages[0].LatestReply)
	assert.Equal(t, parent, h.Messages[0].ThreadTimestamp)
	assert.NotNil(t, h.Messages[0].Edited)

	// Replies: parent and reply, oldest first.
	rs, more, _, err := c.GetConversationRepliesContext(ctx(t), &slack.GetConversationRepliesParameters{ChannelID: channel, Timestamp: parent})
	require.NoError(t, err)
	assert.False(t, more)
	require.Len(t, rs, 2)
	assert.Equal(t, parent, rs[0].Timestamp)
	assert.Equal(t, reply, rs[1].Timestamp)
	assert.Equal(t, "repeat 2", rs[1].Text)

	// A broadcast reply shows in the channel too.
	_, bc, err := c.PostMessageContext(ctx(t), channel, slack.MsgOptionText("broadcast", false), slack.MsgOptionTS(parent), slack.MsgOptionBroadcast())
	require.NoError(t, err)
	h, err = c.GetConversationHistoryContext(ctx(t), &slack.GetConversationHistoryParameters{ChannelID: channel})
	require.NoError(t, err)
	require.Len(t, h.Messages, 2)
	assert.Equal(t, bc, h.Messages[0].Timestamp, "newest first")

	// The parent deleted in Slack: replies and updates are refused.
	require.True(t, s.Delete(channel, parent))
	_, _, err = c.PostMessageContext(ctx(t), channel, slack.MsgOptionText("repeat 3", false), slack.MsgOptionTS(parent))
	assert.Equal(t, "thread_not_found", slackErr(t, err).Err)
	_, _, _, err = c.UpdateMessageContext(ctx(t), channel, parent, slack.MsgOptionText("x", false))
	assert.Equal(t, "message_not_found", slackErr(t, err).Err)
	assert.False(t, s.Delete(channel, parent))
}

func TestHistoryWindowsPagesAndMetadata(t *testing.T) {
	s := newFake(t)
	c := api(s)
	var tss []string
	for i := range 7 {
		_, ts, err := c.PostMessageContext(ctx(t), channel, slack.MsgOptionText(fmt.Sprint("m", i), false), slack.MsgOptionMetadata(incident(fmt.Sprint("i", i))))
		require.NoError(t, err)
		tss = append(tss, ts)
	}
	_, _, err := c.PostMessageContext(ctx(t), "C0ELSEWHERE", slack.MsgOptionText("other channel", false))
	require.NoError(t, err)

	texts := func(ms []slack.Message) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Text)
		}
		return out
	}
	hist := func(p slack.GetConversationHistoryParameters) *slack.GetConversationHistoryResponse {
		t.Helper()
		p.ChannelID = channel
		h, err := c.GetConversationHistoryContext(ctx(t), &p)
		require.NoError(t, err)
		return h
	}

	h := hist(slack.GetConversationHistoryParameters{})
	assert.Equal(t, []string{"m6", "m5", "m4", "m3", "m2", "m1", "m0"}, texts(h.Messages))
	assert.Empty(t, h.Messages[0].Metadata.EventType, "no metadata unless asked for")

	h = hist(slack.GetConversationHistoryParameters{Oldest: tss[2], Latest: tss[5]})
	assert.Equal(t, []string{"m4", "m3"}, texts(h.Messages), "bounds are exclusive")
	h = hist(slack.GetConversationHistoryParameters{Oldest: tss[2], Latest: tss[5], Inclusive: true})
	assert.Equal(t, []string{"m5", "m4", "m3", "m2"}, texts(h.Messages))

	h = hist(slack.GetConversationHistoryParameters{IncludeAllMetadata: true, Limit: 1})
	require.Len(t, h.Messages, 1)
	assert.Equal(t, "tamperguard_incident", h.Messages[0].Metadata.EventType)
	assert.Equal(t, "i6", h.Messages[0].Metadata.EventPayload["incident"])

	// Paging with the cursor visits every message once.
	var all []string
	cursor := ""
	for range 10 {
		h = hist(slack.GetConversationHistoryParameters{Limit: 3, Cursor: cursor})
		all = append(all, texts(h.Messages)...)
		if !h.HasMore {
			assert.Empty(t, h.ResponseMetaData.NextCursor)
			break
		}
		cursor = h.ResponseMetaData.NextCursor
		require.NotEmpty(t, cursor)
	}
	assert.Equal(t, []string{"m6", "m5", "m4", "m3", "m2", "m1", "m0"}, all)

	_, err = c.GetConversationHistoryContext(ctx(t), &slack.GetConversationHistoryParameters{ChannelID: channel, Cursor: "garbage"})
	assert.Equal(t, "invalid_cursor", slackErr(t, err).Err)
	_, err = c.GetConversationHistoryContext(ctx(t), &slack.GetConversationHistoryParameters{ChannelID: channel, Oldest: "yesterday"})
	assert.Equal(t, "invalid_ts_oldest", slackErr(t, err).Err)
}

// ---- webhook ------------------------------------------------------------------------

func TestWebhook(t *testing.T) {
	s := newFake(t)
	f := false
	err := slack.PostWebhookCustomHTTPContext(ctx(t), s.Endpoints().Webhook, http.DefaultClient, &slack.WebhookMessage{
		Text: "fallback", Blocks: &slack.Blocks{BlockSet: alertBlocks("via webhook")}, UnfurlLinks: &f,
	})
	require.NoError(t, err)
	msgs := s.Messages()
	require.Len(t, msgs, 1)
	assert.Equal(t, slackfake.DefaultWebhookChannel, msgs[0].Channel)
	assert.Equal(t, "webhook", msgs[0].Via)
	assert.Equal(t, "fallback", msgs[0].Text)
	assert.Contains(t, string(msgs[0].Blocks), "via webhook")
	assert.Equal(t, "false", s.CallsTo("webhook")[0].Form.Get("unfurl_links"))

	// Bot calls cannot edit a webhook's message.
	_, _, _, err = api(s).UpdateMessageContext(ctx(t), slackfake.DefaultWebhookChannel, msgs[0].TS, slack.MsgOptionText("x", false))
	assert.Equal(t, "cant_update_message", slackErr(t, err).Err)

	err = slack.PostWebhookCustomHTTPContext(ctx(t), s.Endpoints().Webhook, http.DefaultClient, &slack.WebhookMessage{})
	var sc slack.StatusCodeError
	require.ErrorAs(t, err, &sc)
	assert.Equal(t, http.StatusBadRequest, sc.Code)
	assert.Equal(t, "no_text", s.CallsTo("webhook")[1].Error)

	err = slack.PostWebhookCustomHTTPContext(ctx(t), s.URL+"/services/T0/B0/wrong", http.DefaultClient, &slack.WebhookMessage{Text: "x"})
	require.ErrorAs(t, err, &sc)
	assert.Equal(t, http.StatusNotFound, sc.Code)
	assert.Len(t, s.Messages(), 1)
}

// A JSON body with a bearer token, as Slack also accepts for write methods.
func TestJSONBodies(t *testing.T) {
	s := newFake(t)
	body := `{"channel":"` + channel + `","text":"json","metadata":{"event_type":"e","event_payload":{"k":1}},"blocks":[{"type":"divider"}]}`
	req, err := http.NewRequestWithContext(ctx(t), http.MethodPost, s.Endpoints().API+"chat.postMessage", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Authorization", "Bearer "+s.Token())
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var out struct {
		OK bool   `json:"ok"`
		TS string `json:"ts"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	_ = resp.Body.Close()
	require.True(t, out.OK)
	m := s.Messages()[0]
	assert.Equal(t, "json", m.Text)
	assert.JSONEq(t, `[{"type":"divider"}]`, string(m.Blocks))
	assert.JSONEq(t, `{"k":1}`, string(m.Metadata.EventPayload))
}

// ---- concurrency --------------------------------------------------------------------

func TestConcurrentPostsAndWait(t *testing.T) {
	s := newFake(t)
	c := api(s)
	const n = 20
	got := make(chan []slackfake.Message, 1)
	go func() {
		msgs, err := s.WaitMessages(ctx(t), n)
		assert.NoError(t, err)
		got <- msgs
	}()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, _, err := c.PostMessageContext(ctx(t), channel, slack.MsgOptionText(fmt.Sprint(i), false))
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	msgs := <-got
	require.Len(t, msgs, n)
	seen := map[string]bool{}
	for i, m := range msgs {
		assert.False(t, seen[m.TS], "unique ts")
		seen[m.TS] = true
		if i > 0 {
			assert.Greater(t, m.TS, msgs[i-1].TS, "oldest first")
		}
	}

	c2, cancel := context.WithCancel(ctx(t))
	cancel()
	_, err := s.WaitMessages(c2, n+1)
	assert.ErrorIs(t, err, context.Canceled)
}

// ---- behind a fault proxy -----------------------------------------------------------

func TestBehindAFaultProxy(t *testing.T) {
	s := newFake(t)
	p, ep := s.WithFaults(t)
	c := api(s, ep)

	// Rate limited: slack-go reports the wait Slack asked for.
	p.Add(faultproxy.Rule{Match: slackfake.Method("chat.postMessage"), When: faultproxy.Nth(1), Fault: slackfake.RateLimited(3)})
	_, _, err := c.PostMessageContext(ctx(t), channel, slack.MsgOptionText("a", false))
	var rl *slack.RateLimitedError
	require.ErrorAs(t, err, &rl)
	assert.Equal(t, 3*time.Second, rl.RetryAfter)

	// An API error injected without reaching the fake.
	p.Add(faultproxy.Rule{Match: slackfake.Method("chat.postMessage"), When: faultproxy.Nth(1), Fault: slackfake.Error("fatal_error")})
	_, _, err = c.PostMessageContext(ctx(t), channel, slack.MsgOptionText("a", false))
	assert.Equal(t, "fatal_error", slackErr(t, err).Err)

	p.Add(faultproxy.Rule{Match: slackfake.Method("chat.update"), When: faultproxy.Nth(1), Fault: slackfake.ServerError(http.StatusServiceUnavailable)})
	_, _, _, err = c.UpdateMessageContext(ctx(t), channel, "1612087300.000000", slack.MsgOptionText("a", false))
	var sc slack.StatusCodeError
	require.ErrorAs(t, err, &sc)
	assert.Equal(t, http.StatusServiceUnavailable, sc.Code)
	assert.Empty(t, s.Messages(), "none of these reached the fake")

	// A hang ends with the caller's context.
	g := faultproxy.NewGate()
	p.Add(faultproxy.Rule{Match: slackfake.Method("chat.postMessage"), When: faultproxy.Nth(1), Fault: faultproxy.Hang(g)})
	hctx, cancel := context.WithCancel(ctx(t))
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.PostMessageContext(hctx, channel, slack.MsgOptionText("held", false))
		errc <- err
	}()
	require.NoError(t, g.Wait(ctx(t), 1))
	cancel()
	assert.ErrorIs(t, <-errc, context.Canceled)
	assert.Empty(t, s.Messages())

	// The answer to a post is lost: the message is in the channel although the client
	// got an error, and posting again makes a second one. Finding the first (by its
	// metadata, in the history) is the caller's job.
	p.Add(faultproxy.Rule{Match: slackfake.Method("chat.postMessage"), When: faultproxy.Nth(1), Fault: faultproxy.LoseResponse()})
	_, _, err = c.PostMessageContext(ctx(t), channel, slack.MsgOptionText("alert", false), slack.MsgOptionMetadata(incident("i1")))
	require.Error(t, err)
	assert.False(t, errors.As(err, new(slack.SlackErrorResponse)))
	require.Len(t, s.Messages(), 1, "committed")
	h, err := c.GetConversationHistoryContext(ctx(t), &slack.GetConversationHistoryParameters{ChannelID: channel, IncludeAllMetadata: true})
	require.NoError(t, err)
	require.Len(t, h.Messages, 1)
	assert.Equal(t, "i1", h.Messages[0].Metadata.EventPayload["incident"])
	_, _, err = c.PostMessageContext(ctx(t), channel, slack.MsgOptionText("alert", false), slack.MsgOptionMetadata(incident("i1")))
	require.NoError(t, err)
	assert.Len(t, s.Messages(), 2, "Slack has no idempotency: a blind retry duplicates the alert")

	// The webhook behind the proxy.
	p.Add(faultproxy.Rule{Match: slackfake.Webhook(), When: faultproxy.Nth(1), Fault: slackfake.ServerError(http.StatusInternalServerError)})
	err = slack.PostWebhookCustomHTTPContext(ctx(t), ep.Webhook, http.DefaultClient, &slack.WebhookMessage{Text: "w"})
	require.ErrorAs(t, err, &sc)
	assert.Equal(t, http.StatusInternalServerError, sc.Code)
	require.NoError(t, slack.PostWebhookCustomHTTPContext(ctx(t), ep.Webhook, http.DefaultClient, &slack.WebhookMessage{Text: "w"}))
	assert.Len(t, s.Messages(), 3)
}
