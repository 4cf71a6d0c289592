// Package slackfake is an in-process stand-in for the parts of Slack that tamperguard's
// alerting uses, for tests: the Web API methods chat.postMessage, chat.update,
// conversations.history, conversations.replies and auth.test (under /api/, as
// github.com/slack-go/slack calls them), and an incoming webhook. It records every
// message (channel, ts, thread, text, blocks as sent, metadata) and every call, and can be
// put behind a faultproxy to fail, hang or lose answers.
//
// slack-go's own slacktest was not enough: it stamps messages with time.Now().Unix()
// (equal within a second), keeps no message metadata, has no chat.update or history,
// shares a package-level hub between servers, and starts a goroutine per message that
// outlives the server.
//
// # What it models, and how strictly
//
//   - Authentication: the token (form field "token", or Authorization: Bearer) must be
//     the configured one: not_authed when missing, invalid_auth when wrong.
//   - Channels: any channel ID exists unless Options.Channels lists them
//     (channel_not_found otherwise).
//   - Timestamps: "seconds.micros" from Options.Now, strictly increasing.
//   - chat.postMessage: needs text, blocks or attachments (no_text); blocks must be a JSON
//     array of objects with a type, at most 50, header text plain and at most 150
//     characters, section text at most 3000 and at most 10 fields of 2000, context at
//     most 10 elements (invalid_blocks, with the reason in response_metadata.messages);
//     text at most 40000 characters (msg_too_long); metadata a JSON object with a
//     non-empty event_type and an object event_payload (invalid_metadata_format);
//     thread_ts a well-formed ts (invalid_thread_ts) of a top-level message of the
//     channel (thread_not_found; a reply's ts is refused too, strictly).
//   - chat.update: the message must exist (message_not_found) and have been posted
//     through the API, not a webhook (cant_update_message). Text and metadata are replaced
//     when given; blocks are kept when the field is absent and cleared by "[]".
//   - conversations.history: top-level messages and broadcast replies, newest first,
//     oldest/latest exclusive unless inclusive, limit (default 100, at most 999) with
//     has_more and a cursor. Metadata is returned only with include_all_metadata (Slack
//     returns an app's own metadata without it; asking is harmless, and forgetting to ask
//     shows up here).
//   - conversations.replies: the parent and its replies, oldest first.
//   - The incoming webhook answers 200 "ok", 400 invalid_payload / no_text /
//     invalid_blocks, 404 no_service for another path; its messages go to
//     Options.WebhookChannel, with thread_ts recorded as given.
//
// Not modelled: rate limits (inject them with RateLimited through a faultproxy), message
// deletion by the API (Delete is a test-side helper), files, reactions, users.
package slackfake

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// Defaults of Options.
const (
	DefaultToken          = "xoxb-test-only-token"
	DefaultWebhookChannel = "C0WEBHOOK"
	DefaultTeamID         = "T0TAMPERG"
	DefaultUserID         = "U0TAMPERG"
	DefaultBotID          = "B0TAMPERG"
	webhookPath           = "/services/T0TAMPERG/B0TAMPERG/test-only-webhook-secret"
)

// Limits Slack enforces that the fake checks.
const (
	MaxBlocks         = 50
	MaxHeaderText     = 150
	MaxSectionText    = 3000
	MaxSectionFields  = 10
	MaxFieldText      = 2000
	MaxContextElems   = 10
	MaxMessageText    = 40000
	maxBody           = 4 << 20
	defaultHistoryMax = 100
	maxHistoryLimit   = 999
)

// Options configure a fake.
type Options struct {
	// Token is the bot token requests must carry; "" uses DefaultToken.
	Token string
	// Channels, if not empty, are the only channel IDs that exist.
	Channels []string
	// WebhookChannel is where incoming-webhook messages go; "" uses DefaultWebhookChannel.
	WebhookChannel string
	// Now is the clock for message timestamps; nil uses time.Now.
	Now func() time.Time
}

// Metadata is a message's metadata, as posted.
type Metadata struct {
	EventType    string          `json:"event_type"`
	EventPayload json.RawMessage `json:"event_payload"`
}

// Message is a message as the fake holds it now (after any chat.update).
type Message struct {
	Channel string
	TS      string
	// ThreadTS is the parent's ts for a reply, "" for a top-level message.
	ThreadTS string
	Text     string
	// Blocks is the blocks JSON as sent; nil if none.
	Blocks json.RawMessage
	// Metadata is nil if none was posted.
	Metadata       *Metadata
	ReplyBroadcast bool
	// Via is "api" or "webhook".
	Via string
	// Edits counts the chat.update calls applied to it.
	Edits int
}

// Call is one request to the fake, in arrival order.
type Call struct {
	// Method is the Web API method ("chat.postMessage", ...) or "webhook".
	Method string
	// Form holds the arguments: the form fields, or a JSON body's top-level fields
	// (objects and arrays as their JSON text). The token is never recorded.
	Form url.Values
	// Error is the error code answered ("" if ok).
	Error string
}

// Server is a running fake.
type Server struct {
	// URL is the base URL, http://127.0.0.1:PORT.
	URL string

	opts Options
	srv  *httptest.Server

	mu       sync.Mutex
	msgs     map[string]*Message // by channel+"/"+ts
	order    []string            // keys in ts order
	calls    []Call
	lastTS   int64 // micros
	changed  chan struct{}
	channels map[string]bool
}

// New starts a fake and closes it when the test ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	s := Start(opts)
	t.Cleanup(s.Close)
	return s
}

// Start starts a fake; the caller must Close it.
func Start(opts Options) *Server {
	if opts.Token == "" {
		opts.Token = DefaultToken
	}
	if opts.WebhookChannel == "" {
		opts.WebhookChannel = DefaultWebhookChannel
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, msgs: map[string]*Message{}, changed: make(chan struct{})}
	if len(opts.Channels) > 0 {
		s.channels = map[string]bool{}
		for _, c := range opts.Channels {
			s.channels[c] = true
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/", s.serveAPI)
	mux.HandleFunc("/services/", s.serveWebhook)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	return s
}

// Close stops the fake.
func (s *Server) Close() { s.srv.Close() }

// Endpoints are where a client reaches a fake (directly or through a proxy).
type Endpoints struct {
	// API is the Web API base URL, with its trailing slash, for slack.OptionAPIURL.
	API string
	// Webhook is the incoming-webhook URL.
	Webhook string
}

// Endpoints returns the fake's own endpoints.
func (s *Server) Endpoints() Endpoints { return endpointsAt(s.URL) }

func endpointsAt(base string) Endpoints {
	return Endpoints{API: base + "/api/", Webhook: base + webhookPath}
}

// Token is the token requests must carry.
func (s *Server) Token() string { return s.opts.Token }

// Messages returns every message the fake holds, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, 0, len(s.order))
	for _, k := range s.order {
		out = append(out, cloneMessage(s.msgs[k]))
	}
	return out
}

// Calls returns every request received, in arrival order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, len(s.calls))
	for i, c := range s.calls {
		out[i] = Call{Method: c.Method, Form: cloneValues(c.Form), Error: c.Error}
	}
	return out
}

// CallsTo returns the calls of one method.
func (s *Server) CallsTo(method string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// WaitMessages blocks until the fake holds at least n messages, or ctx ends, and returns
// them.
func (s *Server) WaitMessages(ctx context.Context, n int) ([]Message, error) {
	for {
		s.mu.Lock()
		have, ch := len(s.order), s.changed
		s.mu.Unlock()
		if have >= n {
			return s.Messages(), nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return s.Messages(), fmt.Errorf("slackfake: waiting for %d messages (%d so far): %w", n, have, ctx.Err())
		}
	}
}

// Delete removes a message, as a person deleting it in Slack would; it reports whether
// the message existed.
func (s *Server) Delete(channel, ts string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(channel, ts)
	if _, ok := s.msgs[k]; !ok {
		return false
	}
	delete(s.msgs, k)
	s.order = slices.DeleteFunc(s.order, func(x string) bool { return x == k })
	s.notifyLocked()
	return true
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func key(channel, ts string) string { return channel + "/" + ts }

// nextTSLocked returns a ts after every one given so far.
func (s *Server) nextTSLocked() string {
	now := s.opts.Now().UnixMicro()
	if now <= s.lastTS {
		now = s.lastTS + 1
	}
	s.lastTS = now
	return fmt.Sprintf("%d.%06d", now/1_000_000, now%1_000_000)
}

// ---- the Web API --------------------------------------------------------------------

// apiError is an error answer of the Web API (HTTP 200, ok: false).
type apiError struct {
	code     string
	messages []string
}

func fail(code string, messages ...string) *apiError {
	return &apiError{code: code, messages: messages}
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	form, token, perr := readArgs(r)
	call := Call{Method: method, Form: form}
	var resp map[string]any
	var aerr *apiError
	switch {
	case perr != nil:
		aerr = perr
	case token == "":
		aerr = fail("not_authed")
	case token != s.opts.Token:
		aerr = fail("invalid_auth")
	default:
		s.mu.Lock()
		switch method {
		case "auth.test":
			resp = map[string]any{
				"url": "https://tamperguard-test.slack.com/", "team": "tamperguard test", "user": "tamperguard",
				"team_id": DefaultTeamID, "user_id": DefaultUserID, "bot_id": DefaultBotID,
			}
		case "chat.postMessage":
			resp, aerr = s.postLocked(form)
		case "chat.update":
			resp, aerr = s.updateLocked(form)
		case "conversations.history":
			resp, aerr = s.historyLocked(form)
		case "conversations.replies":
			resp, aerr = s.repliesLocked(form)
		default:
			aerr = fail("unknown_method")
		}
		s.mu.Unlock()
	}
	if aerr != nil {
		call.Error = aerr.code
		resp = map[string]any{"ok": false, "error": aerr.code}
		if len(aerr.messages) > 0 {
			resp["response_metadata"] = map[string]any{"messages": aerr.messages}
		}
	} else {
		resp["ok"] = true
	}
	s.mu.Lock()
	s.calls = append(s.calls, call)
	s.notifyLocked()
	s.mu.Unlock()

	body, err := json.Marshal(resp)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(body)
}

// readArgs reads a form or JSON body (and the query) into values, and the token.
func readArgs(r *http.Request) (url.Values, string, *apiError) {
	form := url.Values{}
	for k, v := range r.URL.Query() {
		form[k] = v
	}
	if r.Method == http.MethodPost {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil || len(body) > maxBody {
			return form, "", fail("invalid_form_data")
		}
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		switch ct {
		case "application/json":
			var doc map[string]json.RawMessage
			if err := json.Unmarshal(body, &doc); err != nil {
				return form, "", fail("invalid_json")
			}
			for k, raw := range doc {
				var str string
				if json.Unmarshal(raw, &str) == nil {
					form.Set(k, str)
				} else {
					form.Set(k, string(raw))
				}
			}
		case "application/x-www-form-urlencoded", "":
			vs, err := url.ParseQuery(string(body))
			if err != nil {
				return form, "", fail("invalid_form_data")
			}
			for k, v := range vs {
				form[k] = v
			}
		default:
			return form, "", fail("invalid_form_data")
		}
	}
	token := form.Get("token")
	form.Del("token")
	if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
		token = strings.TrimPrefix(a, "Bearer ")
	}
	return form, token, nil
}

func (s *Server) channelOK(c string) bool {
	return c != "" && (s.channels == nil || s.channels[c])
}

var tsPattern = regexp.MustCompile(`^[0-9]{1,12}\.[0-9]{6}$`)

func (s *Server) postLocked(form url.Values) (map[string]any, *apiError) {
	channel := form.Get("channel")
	if !s.channelOK(channel) {
		return nil, fail("channel_not_found")
	}
	m := &Message{Channel: channel, Text: form.Get("text"), Via: "api"}
	if err := checkText(m.Text); err != nil {
		return nil, err
	}
	if b := form.Get("blocks"); b != "" {
		blocks, err := checkBlocks(b)
		if err != nil {
			return nil, err
		}
		m.Blocks = blocks
	}
	if m.Text == "" && len(m.Blocks) == 0 && form.Get("attachments") == "" {
		return nil, fail("no_text")
	}
	if md := form.Get("metadata"); md != "" {
		meta, err := checkMetadata(md)
		if err != nil {
			return nil, err
		}
		m.Metadata = meta
	}
	if th := form.Get("thread_ts"); th != "" {
		if !tsPattern.MatchString(th) {
			return nil, fail("invalid_thread_ts")
		}
		parent, ok := s.msgs[key(channel, th)]
		if !ok || parent.ThreadTS != "" {
			return nil, fail("thread_not_found")
		}
		m.ThreadTS = th
		m.ReplyBroadcast = form.Get("reply_broadcast") == "true" || form.Get("reply_broadcast") == "1"
	}
	m.TS = s.nextTSLocked()
	s.addLocked(m)
	return map[string]any{"channel": channel, "ts": m.TS, "message": s.renderLocked(m, true)}, nil
}

func (s *Server) addLocked(m *Message) {
	k := key(m.Channel, m.TS)
	s.msgs[k] = m
	s.order = append(s.order, k) // ts only grow
	s.notifyLocked()
}

func (s *Server) updateLocked(form url.Values) (map[string]any, *apiError) {
	channel, ts := form.Get("channel"), form.Get("ts")
	if !s.channelOK(channel) {
		return nil, fail("channel_not_found")
	}
	m, ok := s.msgs[key(channel, ts)]
	if !ok {
		return nil, fail("message_not_found")
	}
	if m.Via != "api" {
		return nil, fail("cant_update_message")
	}
	upd := cloneMessage(m)
	if _, ok := form["text"]; ok {
		upd.Text = form.Get("text")
		if err := checkText(upd.Text); err != nil {
			return nil, err
		}
	}
	if _, ok := form["blocks"]; ok {
		blocks, err := checkBlocks(form.Get("blocks"))
		if err != nil {
			return nil, err
		}
		upd.Blocks = blocks
		if string(blocks) == "[]" {
			upd.Blocks = nil
		}
	}
	if upd.Text == "" && len(upd.Blocks) == 0 {
		return nil, fail("no_text")
	}
	if md := form.Get("metadata"); md != "" {
		meta, err := checkMetadata(md)
		if err != nil {
			return nil, err
		}
		upd.Metadata = meta
	}
	upd.Edits++
	*m = upd
	s.notifyLocked()
	return map[string]any{"channel": channel, "ts": ts, "text": m.Text, "message": s.renderLocked(m, true)}, nil
}

// window reads oldest, latest, inclusive and limit.
type window struct {
	oldest, latest int64 // micros; latest 0 = none
	inclusive      bool
	limit          int
	before         int64 // from the cursor: only messages before it (micros); 0 = none
}

func parseTS(s string) (int64, bool) {
	if s == "" {
		return 0, true
	}
	sec, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	us := int64(0)
	if frac != "" {
		if len(frac) > 6 {
			frac = frac[:6]
		}
		frac += strings.Repeat("0", 6-len(frac))
		v, err := strconv.ParseInt(frac, 10, 64)
		if err != nil {
			return 0, false
		}
		us = v
	}
	return n*1_000_000 + us, true
}

func readWindow(form url.Values) (window, *apiError) {
	var w window
	var ok bool
	if w.oldest, ok = parseTS(form.Get("oldest")); !ok {
		return w, fail("invalid_ts_oldest")
	}
	if w.latest, ok = parseTS(form.Get("latest")); !ok {
		return w, fail("invalid_ts_latest")
	}
	w.inclusive = form.Get("inclusive") == "1" || form.Get("inclusive") == "true"
	w.limit = defaultHistoryMax
	if l := form.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return w, fail("invalid_limit")
		}
		if n > 0 {
			w.limit = min(n, maxHistoryLimit)
		}
	}
	if c := form.Get("cursor"); c != "" {
		raw, err := base64.RawURLEncoding.DecodeString(c)
		v, ok := parseTS(strings.TrimPrefix(string(raw), "before:"))
		if err != nil || !strings.HasPrefix(string(raw), "before:") || !ok || v == 0 {
			return w, fail("invalid_cursor")
		}
		w.before = v
	}
	return w, nil
}

func (w window) admits(ts string) bool {
	v, _ := parseTS(ts)
	if w.before != 0 && v >= w.before {
		return false
	}
	if w.inclusive {
		return v >= w.oldest && (w.latest == 0 || v <= w.latest)
	}
	return v > w.oldest && (w.latest == 0 || v < w.latest)
}

func (s *Server) historyLocked(form url.Values) (map[string]any, *apiError) {
	channel := form.Get("channel")
	if !s.channelOK(channel) {
		return nil, fail("channel_not_found")
	}
	w, err := readWindow(form)
	if err != nil {
		return nil, err
	}
	withMeta := form.Get("include_all_metadata") == "1" || form.Get("include_all_metadata") == "true"
	var picked []*Message
	for i := len(s.order) - 1; i >= 0; i-- { // newest first
		m := s.msgs[s.order[i]]
		if m.Channel != channel || (m.ThreadTS != "" && !m.ReplyBroadcast) || !w.admits(m.TS) {
			continue
		}
		picked = append(picked, m)
	}
	return s.page(picked, w, withMeta), nil
}

func (s *Server) repliesLocked(form url.Values) (map[string]any, *apiError) {
	channel, ts := form.Get("channel"), form.Get("ts")
	if !s.channelOK(channel) {
		return nil, fail("channel_not_found")
	}
	parent, ok := s.msgs[key(channel, ts)]
	if !ok || parent.ThreadTS != "" {
		return nil, fail("thread_not_found")
	}
	w, err := readWindow(form)
	if err != nil {
		return nil, err
	}
	withMeta := form.Get("include_all_metadata") == "1" || form.Get("include_all_metadata") == "true"
	picked := []*Message{parent}
	for _, k := range s.order { // oldest first
		m := s.msgs[k]
		if m.Channel == channel && m.ThreadTS == ts && w.admits(m.TS) {
			picked = append(picked, m)
		}
	}
	// The cursor pages backwards in time for history; replies page forwards, so a
	// cursor here is not supported beyond the first page.
	w.before = 0
	return s.page(picked, w, withMeta), nil
}

func (s *Server) page(picked []*Message, w window, withMeta bool) map[string]any {
	more := len(picked) > w.limit
	if more {
		picked = picked[:w.limit]
	}
	out := make([]map[string]any, len(picked))
	for i, m := range picked {
		out[i] = s.renderLocked(m, withMeta)
	}
	resp := map[string]any{"messages": out, "has_more": more, "pin_count": 0}
	next := ""
	if more {
		last, _ := parseTS(picked[len(picked)-1].TS)
		next = base64.RawURLEncoding.EncodeToString([]byte("before:" + formatTS(last)))
	}
	resp["response_metadata"] = map[string]any{"next_cursor": next}
	return resp
}

func formatTS(us int64) string { return fmt.Sprintf("%d.%06d", us/1_000_000, us%1_000_000) }

// renderLocked renders m as the Web API returns a message.
func (s *Server) renderLocked(m *Message, withMeta bool) map[string]any {
	out := map[string]any{"type": "message", "ts": m.TS, "text": m.Text}
	if m.Via == "webhook" {
		out["subtype"] = "bot_message"
		out["bot_id"] = DefaultBotID
	} else {
		out["user"] = DefaultUserID
		out["bot_id"] = DefaultBotID
	}
	if len(m.Blocks) > 0 {
		out["blocks"] = m.Blocks
	}
	if m.ThreadTS != "" {
		out["thread_ts"] = m.ThreadTS
		out["parent_user_id"] = DefaultUserID
	} else {
		var replies []string
		for _, k := range s.order {
			if r := s.msgs[k]; r.Channel == m.Channel && r.ThreadTS == m.TS {
				replies = append(replies, r.TS)
			}
		}
		if len(replies) > 0 {
			out["thread_ts"] = m.TS
			out["reply_count"] = len(replies)
			out["latest_reply"] = replies[len(replies)-1]
		}
	}
	if m.Edits > 0 {
		out["edited"] = map[string]any{"user": DefaultUserID, "ts": m.TS}
	}
	if withMeta && m.Metadata != nil {
		out["metadata"] = m.Metadata
	}
	return out
}

// ---- the incoming webhook -----------------------------------------------------------

func (s *Server) serveWebhook(w http.ResponseWriter, r *http.Request) {
	answer := func(status int, text string, call Call) {
		call.Error = ""
		if status != http.StatusOK {
			call.Error = text
		}
		s.mu.Lock()
		s.calls = append(s.calls, call)
		s.notifyLocked()
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, text)
	}
	call := Call{Method: "webhook", Form: url.Values{}}
	if r.URL.Path != webhookPath || r.Method != http.MethodPost {
		answer(http.StatusNotFound, "no_service", call)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		answer(http.StatusBadRequest, "invalid_payload", call)
		return
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		answer(http.StatusBadRequest, "invalid_payload", call)
		return
	}
	for k, raw := range doc {
		var str string
		if json.Unmarshal(raw, &str) == nil {
			call.Form.Set(k, str)
		} else {
			call.Form.Set(k, string(raw))
		}
	}
	m := &Message{Channel: s.opts.WebhookChannel, Text: call.Form.Get("text"), Via: "webhook", ThreadTS: call.Form.Get("thread_ts")}
	if raw, ok := doc["blocks"]; ok && string(raw) != "null" {
		blocks, aerr := checkBlocks(string(raw))
		if aerr != nil {
			answer(http.StatusBadRequest, aerr.code, call)
			return
		}
		m.Blocks = blocks
	}
	if m.Text == "" && len(m.Blocks) == 0 && call.Form.Get("attachments") == "" {
		answer(http.StatusBadRequest, "no_text", call)
		return
	}
	s.mu.Lock()
	m.TS = s.nextTSLocked()
	s.addLocked(m)
	s.mu.Unlock()
	answer(http.StatusOK, "ok", call)
}

// ---- validation ---------------------------------------------------------------------

func checkText(t string) *apiError {
	if utf8.RuneCountInString(t) > MaxMessageText {
		return fail("msg_too_long")
	}
	return nil
}

type textObj struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type block struct {
	Type     string            `json:"type"`
	Text     *textObj          `json:"text"`
	Fields   []textObj         `json:"fields"`
	Elements []json.RawMessage `json:"elements"`
}

// checkBlocks checks the limits of Slack's Block Kit that alerts can run into and
// returns the blocks compacted.
func checkBlocks(raw string) (json.RawMessage, *apiError) {
	var blocks []json.RawMessage
	if err := json.Unmarshal([]byte(raw), &blocks); err != nil {
		return nil, fail("invalid_blocks", "[ERROR] blocks must be a JSON array")
	}
	if len(blocks) > MaxBlocks {
		return nil, fail("invalid_blocks", fmt.Sprintf("[ERROR] no more than %d items allowed [json-pointer:/blocks]", MaxBlocks))
	}
	for i, rb := range blocks {
		var b block
		if err := json.Unmarshal(rb, &b); err != nil || b.Type == "" {
			return nil, fail("invalid_blocks", fmt.Sprintf("[ERROR] missing required field: type [json-pointer:/blocks/%d]", i))
		}
		ptr := func(s string) string { return fmt.Sprintf("[json-pointer:/blocks/%d%s]", i, s) }
		switch b.Type {
		case "header":
			if b.Text == nil || b.Text.Type != "plain_text" {
				return nil, fail("invalid_blocks", "[ERROR] must be a plain_text object "+ptr("/text"))
			}
			if utf8.RuneCountInString(b.Text.Text) > MaxHeaderText {
				return nil, fail("invalid_blocks", fmt.Sprintf("[ERROR] must be less than %d characters %s", MaxHeaderText+1, ptr("/text/text")))
			}
		case "section":
			if b.Text == nil && len(b.Fields) == 0 {
				return nil, fail("invalid_blocks", "[ERROR] must provide text or fields "+ptr(""))
			}
			if b.Text != nil && utf8.RuneCountInString(b.Text.Text) > MaxSectionText {
				return nil, fail("invalid_blocks", fmt.Sprintf("[ERROR] must be less than %d characters %s", MaxSectionText+1, ptr("/text/text")))
			}
			if len(b.Fields) > MaxSectionFields {
				return nil, fail("invalid_blocks", fmt.Sprintf("[ERROR] no more than %d items allowed %s", MaxSectionFields, ptr("/fields")))
			}
			for j, f := range b.Fields {
				if utf8.RuneCountInString(f.Text) > MaxFieldText {
					return nil, fail("invalid_blocks", fmt.Sprintf("[ERROR] must be less than %d characters %s", MaxFieldText+1, ptr(fmt.Sprintf("/fields/%d/text", j))))
				}
			}
		case "context":
			if len(b.Elements) == 0 || len(b.Elements) > MaxContextElems {
				return nil, fail("invalid_blocks", fmt.Sprintf("[ERROR] must have 1 to %d elements %s", MaxContextElems, ptr("/elements")))
			}
		}
	}
	compact, err := json.Marshal(blocks)
	if err != nil {
		return nil, fail("invalid_blocks")
	}
	return compact, nil
}

func checkMetadata(raw string) (*Metadata, *apiError) {
	var doc struct {
		EventType    *string         `json:"event_type"`
		EventPayload json.RawMessage `json:"event_payload"`
	}
	if err := json.Unmarshal([]byte(raw), &doc); err != nil || doc.EventType == nil || *doc.EventType == "" {
		return nil, fail("invalid_metadata_format")
	}
	var payload map[string]json.RawMessage
	if err := json.Unmarshal(doc.EventPayload, &payload); err != nil || payload == nil {
		return nil, fail("invalid_metadata_format")
	}
	compact, err := json.Marshal(payload)
	if err != nil {
		return nil, fail("invalid_metadata_format")
	}
	return &Metadata{EventType: *doc.EventType, EventPayload: compact}, nil
}

// ---- helpers ------------------------------------------------------------------------

func cloneMessage(m *Message) Message {
	c := *m
	c.Blocks = slices.Clone(m.Blocks)
	if m.Metadata != nil {
		md := *m.Metadata
		md.EventPayload = slices.Clone(m.Metadata.EventPayload)
		c.Metadata = &md
	}
	return c
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}
