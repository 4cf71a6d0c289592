// Package auditlog finds out who wrote an object: it looks up the Cloud Audit Logs Data
// Access (DATA_WRITE) entry of one write to a Cloud Storage bucket through the Logging API
// (entries:list, REST and JSON) and returns the principal, caller IP, user agent, service
// account key, delegation chain, HMAC access ID and method, with how sure the match is.
//
// # Matching an entry to a write
//
// A Cloud Storage audit entry names the object (protoPayload.resourceName
// "projects/_/buckets/B/objects/O") and the method, but not the generation. So the lookup
// asks for the entries of that object and of the methods that make that kind of write
// within a window around the write's time (the generation's creation time, or the event
// time of a deletion or metadata update), and picks the entry closest in time: "exact" when
// exactly one entry qualifies, "closest of N" otherwise.
//
// Everything that comes back is checked again here, because the endpoint can be an
// emulator or a proxy and because the Logging query language compares strings loosely:
// only successful AuditLog entries of storage.googleapis.com whose resourceName is
// byte-for-byte the object's, whose method is one of the write's methods and whose
// timestamp is inside the window count.
//
// # Delay, absence and Data Access logs that are off
//
// Entries reach the Logging API seconds to minutes after the request. Lookup retries a
// few times with an injected sleeper; when the entry is still absent it answers Pending
// ("not yet in audit logs") while the write is younger than Settle, so that the caller
// can look again later (Find) and add the result to the alert's thread. Once Settle has
// passed, an absent entry is told apart in one more query: if the bucket has no DATA_WRITE
// entry at all around the write, Data Access logs for Cloud Storage appear off
// (StatusLogsOff); otherwise this one write was not logged (StatusNotLogged: an exempted
// principal, or an Object Lifecycle Management action, which Cloud Audit Logs never logs).
// DataWriteLogging makes the same judgement for the check and audit commands from the
// newest write tamperguard knows of.
//
// The project's IAM audit configuration is deliberately not read: it needs
// resourcemanager.projects.getIamPolicy, which reveals the whole project policy, and it
// does not show configurations inherited from folders and the organization, so it could
// say "off" where logs are on.
//
// # Hostile text
//
// Every field of an entry can carry text that the writer chose (the user agent always does).
// Strings are kept as data: bounded in length, invalid UTF-8 replaced, never parsed or
// interpreted; the alerting layer escapes them. Response bodies, pages and entries are
// bounded too.
package auditlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/api/option"
	htransport "google.golang.org/api/transport/http"
)

// DefaultEndpoint is the Logging API's base URL.
const DefaultEndpoint = "https://logging.googleapis.com"

// ReadScope is the OAuth scope the production client asks for: read logs, nothing else.
const ReadScope = "https://www.googleapis.com/auth/logging.read"

// Bounds on what is read from the Logging API.
const (
	// MaxBody bounds one entries:list response body.
	MaxBody = 4 << 20
	// MaxPages bounds the pages read for one query.
	MaxPages = 4
	// PageSize is the pageSize asked for.
	PageSize = 50
	// MaxEntries bounds the entries considered for one write.
	MaxEntries = 200
	// maxObjectName is the longest object name Cloud Storage accepts, in bytes.
	maxObjectName = 1024
)

// Defaults of the timing options.
const (
	// DefaultBefore and DefaultAfter bound the window around a write's time in which its
	// entry is looked for. The entry of a long resumable upload can be stamped before the
	// object's creation time; clocks of the two records are Google's, so a little after.
	DefaultBefore = 5 * time.Minute
	DefaultAfter  = 2 * time.Minute
	// DefaultSettle is how long after a write its entry may still be missing because of the
	// ingestion delay.
	DefaultSettle = 10 * time.Minute
	// DefaultRetention is how long entries are kept where they are read (the module's log
	// bucket keeps 30 days; so does _Default).
	DefaultRetention = 30 * 24 * time.Hour
	// probeBefore is how far before a write the "is anything logged?" query looks.
	probeBefore = 24 * time.Hour
)

// DefaultDelays are the pauses between Lookup's attempts (four attempts, 35 s in all).
// The Logging API allows 60 entries:list requests a minute per project: keep them few.
var DefaultDelays = []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second}

// Errors. *APIError wraps one of ErrPermission, ErrNotFound, ErrRejected or ErrTransient,
// so callers can tell "could not read" apart from a result, and a retry from a fix.
var (
	// ErrPermission: the identity may not read the entries (HTTP 401/403).
	ErrPermission = errors.New("not allowed to read the audit logs")
	// ErrNotFound: the project or log view does not exist (HTTP 404).
	ErrNotFound = errors.New("log resource not found")
	// ErrRejected: the Logging API refused the request (HTTP 400 and other 4xx).
	ErrRejected = errors.New("request rejected by the Logging API")
	// ErrTransient: a failure worth retrying (429, 5xx, a timeout, a dropped connection).
	ErrTransient = errors.New("transient Logging API failure")
	// ErrResponse: the response is not what the Logging API sends (too large, not JSON).
	ErrResponse = errors.New("malformed Logging API response")
	// ErrInvalidWrite: the write to look up cannot be expressed (bad bucket or object
	// name, zero time, unknown kind).
	ErrInvalidWrite = errors.New("invalid write")
)

// APIError is a failed entries:list call: the status and the Logging API's message
// (bounded, kept as data), the host asked (never credentials) and the resource read.
type APIError struct {
	Host     string // endpoint host
	Resource string // the resourceNames entry, e.g. projects/P or a log view
	Status   int    // HTTP status; 0 when no response arrived
	Message  string // the error message of the response, bounded
	Kind     error  // ErrPermission, ErrNotFound, ErrRejected, ErrTransient or ErrResponse
	Err      error  // the transport error, if any
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "auditlog: entries:list on %s for %s: %v", e.Host, e.Resource, e.Kind)
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.Status)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %q", e.Message)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Unwrap exposes the kind and the transport error.
func (e *APIError) Unwrap() []error {
	out := []error{e.Kind}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// Kind is the kind of write looked up; it decides the audited methods.
type Kind int

const (
	// KindCreate: a new generation (upload, overwrite, copy, rewrite, compose, restore of
	// a soft-deleted object).
	KindCreate Kind = iota + 1
	// KindDelete: a deletion (in a versioned bucket, also the archive of the live object).
	KindDelete
	// KindMetadata: a metadata update of an existing generation.
	KindMetadata
)

func (k Kind) String() string {
	switch k {
	case KindCreate:
		return "create"
	case KindDelete:
		return "delete"
	case KindMetadata:
		return "metadata update"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Methods are the audited methodName values of each kind of write. Copying, rewriting and
// composing log a read and a write entry; a rewrite in place is logged as
// storage.objects.create.
var Methods = map[Kind][]string{
	KindCreate:   {"storage.objects.create", "storage.objects.compose", "storage.objects.copy", "storage.objects.rewrite", "storage.objects.restore"},
	KindDelete:   {"storage.objects.delete"},
	KindMetadata: {"storage.objects.update", "storage.objects.patch"},
}

// Write is the write to attribute.
type Write struct {
	Bucket     string
	Object     string
	Generation int64 // for messages only: audit entries carry no generation
	Kind       Kind
	// Time is when the write happened: the generation's creation time for KindCreate, the
	// event time (or the generation's deletion / metadata update time) otherwise.
	Time time.Time
}

func (w Write) String() string {
	s := "gs://" + w.Bucket + "/" + strconv.Quote(w.Object)
	if w.Generation > 0 {
		s += "#" + strconv.FormatInt(w.Generation, 10)
	}
	return s + " (" + w.Kind.String() + " at " + w.Time.UTC().Format(time.RFC3339Nano) + ")"
}

// Status says what a lookup found.
type Status string

const (
	// StatusFound: the entry of the write; WrittenBy is set.
	StatusFound Status = "found"
	// StatusPending: not yet in audit logs; the write is younger than Settle. Look again.
	StatusPending Status = "pending"
	// StatusNotLogged: Settle has passed and this write has no entry, although the bucket's
	// other writes are logged (an exempted principal; a lifecycle action).
	StatusNotLogged Status = "not_logged"
	// StatusLogsOff: Settle has passed and the bucket has no DATA_WRITE entry at all around
	// the write: Data Access logs for Cloud Storage appear off.
	StatusLogsOff Status = "logs_off"
	// StatusUnavailable: the Logging API could not be read (Note says why: a permission, a
	// missing log view, an outage); the writer is unknown, not absent.
	StatusUnavailable Status = "unavailable"
	// StatusOff: attribution is not configured for this deployment (no audit log resource
	// to read), so nobody looked.
	StatusOff Status = "off"
)

// Attribution is the answer for one write.
type Attribution struct {
	Status Status `json:"status"`
	// WrittenBy is the matching entry (StatusFound only).
	WrittenBy *WrittenBy `json:"written_by,omitempty"`
	// Confidence is "exact" when exactly one entry qualified, "closest of N" otherwise
	// (StatusFound only).
	Confidence string `json:"confidence,omitempty"`
	// Candidates is how many entries qualified.
	Candidates int `json:"candidates"`
	// Note says in words what the status means for this write, for the alert.
	Note string `json:"note"`
}

// WrittenBy is who made a write, as the audit entry says. Every string is hostile text,
// bounded and kept as data.
type WrittenBy struct {
	Principal string `json:"principal"` // authenticationInfo.principalEmail, else principalSubject
	// PrincipalSubject is authenticationInfo.principalSubject (e.g. "serviceAccount:…",
	// or a workforce / workload identity subject).
	PrincipalSubject  string   `json:"principal_subject,omitempty"`
	CallerIP          string   `json:"caller_ip,omitempty"`
	UserAgent         string   `json:"user_agent,omitempty"`
	ServiceAccountKey string   `json:"service_account_key,omitempty"` // authenticationInfo.serviceAccountKeyName
	Delegation        []string `json:"delegation,omitempty"`          // serviceAccountDelegationInfo, first hop first
	// HMACAccessID is the access ID of the HMAC key that signed the request, when the entry
	// carries one; HMACAccessIDField names the field it was found in.
	HMACAccessID      string    `json:"hmac_access_id,omitempty"`
	HMACAccessIDField string    `json:"hmac_access_id_field,omitempty"`
	Method            string    `json:"method"`
	Time              time.Time `json:"time"`      // the entry's timestamp
	Offset            string    `json:"offset"`    // entry time minus write time, e.g. "-1.2s"
	InsertID          string    `json:"insert_id"` // the entry's insertId, to find it again
}

// Client reads audit entries through the Logging API.
type Client struct {
	http     *http.Client
	endpoint string // base URL without a trailing slash
	host     string
	resource string

	before, after, settle, retention time.Duration
	delays                           []time.Duration
	now                              func() time.Time
	sleep                            func(context.Context, time.Duration) error
}

// Option configures a Client.
type Option func(*Client) error

// WithEndpoint points the client at another Logging API base URL (an emulator or test
// server; TAMPERGUARD_LOGGING_ENDPOINT): requests then go out without credentials.
func WithEndpoint(base string) Option {
	return func(c *Client) error {
		u, err := url.Parse(base)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("auditlog: endpoint %q is not an http(s) URL", redact(base))
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("auditlog: endpoint %q must not carry credentials, a query or a fragment", redact(base))
		}
		c.endpoint = strings.TrimSuffix(u.String(), "/")
		c.host = u.Host
		if c.http == nil {
			c.http = &http.Client{Timeout: 30 * time.Second}
		}
		return nil
	}
}

// WithHTTPClient sets the HTTP client (it carries the credentials, if any).
func WithHTTPClient(h *http.Client) Option {
	return func(c *Client) error {
		if h == nil {
			return errors.New("auditlog: nil HTTP client")
		}
		c.http = h
		return nil
	}
}

// WithWindow sets how long before and after a write's time its entry is looked for.
func WithWindow(before, after time.Duration) Option {
	return func(c *Client) error {
		if before < 0 || after < 0 {
			return fmt.Errorf("auditlog: negative window (%v before, %v after)", before, after)
		}
		c.before, c.after = before, after
		return nil
	}
}

// WithSettle sets how long after a write a missing entry is still put down to the
// ingestion delay.
func WithSettle(d time.Duration) Option {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("auditlog: settle %v must be positive", d)
		}
		c.settle = d
		return nil
	}
}

// WithRetention sets how long entries are kept where they are read (the log bucket's
// retention): older writes cannot prove anything about logging.
func WithRetention(d time.Duration) Option {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("auditlog: retention %v must be positive", d)
		}
		c.retention = d
		return nil
	}
}

// WithRetry sets the pauses between Lookup's attempts (len(delays)+1 attempts).
func WithRetry(delays ...time.Duration) Option {
	return func(c *Client) error {
		for _, d := range delays {
			if d < 0 {
				return fmt.Errorf("auditlog: negative retry delay %v", d)
			}
		}
		c.delays = append([]time.Duration(nil), delays...)
		return nil
	}
}

// WithClock sets the clock and the sleeper (tests: a fake clock that the sleeper advances).
func WithClock(now func() time.Time, sleep func(context.Context, time.Duration) error) Option {
	return func(c *Client) error {
		if now == nil || sleep == nil {
			return errors.New("auditlog: nil clock or sleeper")
		}
		c.now, c.sleep = now, sleep
		return nil
	}
}

// resourceRE accepts the resourceNames the Logging API takes for reading: a project, or a
// log view (the module's narrow grant).
var resourceRE = regexp.MustCompile(`^projects/(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9](/locations/[a-z0-9-]{1,63}/buckets/[A-Za-z0-9_.-]{1,100}/views/[A-Za-z0-9_.-]{1,100})?$`)

// New makes a client that reads resource: "projects/P" or a log view,
// "projects/P/locations/L/buckets/B/views/V". Without WithEndpoint it talks to the Logging
// API with Application Default Credentials (scope logging.read); ctx is used only to find
// them.
func New(ctx context.Context, resource string, opts ...Option) (*Client, error) {
	if !resourceRE.MatchString(resource) {
		return nil, fmt.Errorf("auditlog: %q is neither projects/PROJECT nor projects/PROJECT/locations/L/buckets/B/views/V", resource)
	}
	c := &Client{
		resource:  resource,
		before:    DefaultBefore,
		after:     DefaultAfter,
		settle:    DefaultSettle,
		retention: DefaultRetention,
		delays:    DefaultDelays,
		now:       time.Now,
		sleep:     sleepCtx,
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.endpoint == "" {
		c.endpoint = DefaultEndpoint
		c.host = "logging.googleapis.com"
		if c.http == nil {
			h, _, err := htransport.NewClient(ctx, option.WithScopes(ReadScope))
			if err != nil {
				return nil, fmt.Errorf("auditlog: Logging API client with default credentials: %w", err)
			}
			c.http = h
		}
	}
	return c, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Lookup attributes w, retrying while its entry may still be on its way (see the package
// documentation). It returns an error only when the Logging API could not be read; an
// absent entry is a Status.
func (c *Client) Lookup(ctx context.Context, w Write) (Attribution, error) {
	if err := validateWrite(w); err != nil {
		return Attribution{}, err
	}
	var lastErr error
	for attempt := 0; ; attempt++ {
		entries, err := c.query(ctx, writeFilter(w, c.before, c.after), MaxEntries)
		if err == nil {
			if a, ok := pick(w, entries, c.before, c.after); ok {
				return a, nil
			}
			lastErr = nil
			if !c.now().Before(w.Time.Add(c.settle)) {
				break // waiting cannot change the answer any more
			}
		} else {
			if !errors.Is(err, ErrTransient) {
				return Attribution{}, err
			}
			lastErr = err
		}
		if attempt >= len(c.delays) {
			break
		}
		if err := c.sleep(ctx, c.delays[attempt]); err != nil {
			return Attribution{}, fmt.Errorf("auditlog: looking up %s: %w", w, err)
		}
	}
	if lastErr != nil {
		return Attribution{}, fmt.Errorf("auditlog: looking up %s after %d attempts: %w", w, len(c.delays)+1, lastErr)
	}
	return c.absent(ctx, w)
}

// Find attributes w with a single query, no retry: for looking again later at a write
// that was Pending.
func (c *Client) Find(ctx context.Context, w Write) (Attribution, error) {
	if err := validateWrite(w); err != nil {
		return Attribution{}, err
	}
	entries, err := c.query(ctx, writeFilter(w, c.before, c.after), MaxEntries)
	if err != nil {
		return Attribution{}, err
	}
	if a, ok := pick(w, entries, c.before, c.after); ok {
		return a, nil
	}
	return c.absent(ctx, w)
}

// absent classifies a write whose entry was not found.
func (c *Client) absent(ctx context.Context, w Write) (Attribution, error) {
	now := c.now()
	if now.Before(w.Time.Add(c.settle)) {
		return Attribution{Status: StatusPending, Note: "not yet in audit logs (entries arrive seconds to minutes after the write)"}, nil
	}
	logged, err := c.anyWrite(ctx, w.Bucket, w.Time.Add(-probeBefore), now)
	if err != nil {
		return Attribution{}, err
	}
	if !logged {
		return Attribution{Status: StatusLogsOff, Note: fmt.Sprintf(
			"no Data Access (DATA_WRITE) audit entry for gs://%s since %s: Data Access logs for Cloud Storage appear off, so the writer cannot be named",
			w.Bucket, w.Time.Add(-probeBefore).UTC().Format(time.RFC3339))}, nil
	}
	note := "no audit entry for this write, although other writes of the bucket are logged: the writer may be exempted from Data Access logs"
	if w.Kind == KindDelete {
		note += ", or it was an Object Lifecycle Management deletion (never audit-logged)"
	}
	return Attribution{Status: StatusNotLogged, Note: note}, nil
}

// Logging is what DataWriteLogging concluded.
type Logging string

const (
	// LoggingOn: DATA_WRITE entries of the bucket exist after the known write.
	LoggingOn Logging = "on"
	// LoggingOff: the known write is past Settle and within retention, and the bucket has no
	// DATA_WRITE entry since shortly before it.
	LoggingOff Logging = "off"
	// LoggingUnknown: no write to judge by (none known, too recent, or older than
	// retention).
	LoggingUnknown Logging = "unknown"
)

// DataWriteLogging says whether Data Access (DATA_WRITE) logs of bucket are being written,
// judged by a write known to have happened at lastWrite (the newest creation time
// tamperguard read among the bucket's objects). For check and audit output.
func (c *Client) DataWriteLogging(ctx context.Context, bucket string, lastWrite time.Time) (Logging, error) {
	if !validBucket(bucket) {
		return LoggingUnknown, fmt.Errorf("%w: bucket name %q", ErrInvalidWrite, bucket)
	}
	now := c.now()
	if lastWrite.IsZero() || now.Before(lastWrite.Add(c.settle)) || now.Sub(lastWrite) > c.retention-c.before {
		return LoggingUnknown, nil
	}
	logged, err := c.anyWrite(ctx, bucket, lastWrite.Add(-c.before), now)
	if err != nil {
		return LoggingUnknown, err
	}
	if logged {
		return LoggingOn, nil
	}
	return LoggingOff, nil
}

// anyWrite reports whether the bucket has any successful DATA_WRITE storage entry in
// [from, to].
func (c *Client) anyWrite(ctx context.Context, bucket string, from, to time.Time) (bool, error) {
	entries, err := c.query(ctx, bucketFilter(bucket, from, to), PageSize)
	if err != nil {
		return false, err
	}
	prefix := "projects/_/buckets/" + bucket + "/objects/"
	for _, e := range entries {
		if e.isAudit() && e.ok() && strings.HasPrefix(e.Payload.ResourceName, prefix) && isWriteMethod(e.Payload.MethodName) {
			return true, nil
		}
	}
	return false, nil
}

func isWriteMethod(m string) bool {
	for _, ms := range Methods {
		for _, x := range ms {
			if m == x {
				return true
			}
		}
	}
	return false
}

// pick chooses the entry of w among entries, after checking each again.
func pick(w Write, entries []entry, before, after time.Duration) (Attribution, bool) {
	want := ResourceName(w.Bucket, w.Object)
	methods := Methods[w.Kind]
	from, to := w.Time.Add(-before), w.Time.Add(after)
	var best *entry
	var bestD time.Duration
	n := 0
	for i := range entries {
		e := &entries[i]
		if !e.isAudit() || !e.ok() || e.Payload.ResourceName != want || !contains(methods, e.Payload.MethodName) {
			continue
		}
		if e.Timestamp.Before(from) || e.Timestamp.After(to) {
			continue
		}
		n++
		d := e.Timestamp.Sub(w.Time)
		if d < 0 {
			d = -d
		}
		if best == nil || d < bestD || (d == bestD && e.InsertID < best.InsertID) {
			best, bestD = e, d
		}
	}
	if best == nil {
		return Attribution{}, false
	}
	conf := "exact"
	if n > 1 {
		conf = fmt.Sprintf("closest of %d", n)
	}
	wb := best.writtenBy()
	wb.Offset = best.Timestamp.Sub(w.Time).String()
	note := fmt.Sprintf("audit entry %s at %s", wb.Method, wb.Time.UTC().Format(time.RFC3339Nano))
	if n > 1 {
		note += fmt.Sprintf(" (%d entries of this object and method within %v before and %v after the write; the closest in time is shown)", n, before, after)
	}
	return Attribution{Status: StatusFound, WrittenBy: &wb, Confidence: conf, Candidates: n, Note: note}, true
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// ResourceName is the audit resourceName of an object.
func ResourceName(bucket, object string) string {
	return "projects/_/buckets/" + bucket + "/objects/" + object
}

// listRequest is the body of entries:list.
type listRequest struct {
	ResourceNames []string `json:"resourceNames"`
	Filter        string   `json:"filter"`
	OrderBy       string   `json:"orderBy"`
	PageSize      int      `json:"pageSize"`
	PageToken     string   `json:"pageToken,omitempty"`
}

type listResponse struct {
	Entries       []json.RawMessage `json:"entries"`
	NextPageToken string            `json:"nextPageToken"`
}

// query runs entries:list for filter and decodes up to limit entries; entries that do not
// decode are skipped (they cannot be the write's).
func (c *Client) query(ctx context.Context, filter string, limit int) ([]entry, error) {
	req := listRequest{ResourceNames: []string{c.resource}, Filter: filter, OrderBy: "timestamp asc", PageSize: PageSize}
	var out []entry
	for page := 0; page < MaxPages && len(out) < limit; page++ {
		resp, err := c.post(ctx, req)
		if err != nil {
			return nil, err
		}
		for _, raw := range resp.Entries {
			if len(out) >= limit {
				break
			}
			if e, err := decodeEntry(raw); err == nil {
				out = append(out, e)
			}
		}
		if resp.NextPageToken == "" || len(resp.NextPageToken) > 4096 {
			break
		}
		req.PageToken = resp.NextPageToken
	}
	return out, nil
}

func (c *Client) post(ctx context.Context, body listRequest) (*listResponse, error) {
	fail := func(status int, kind error, msg string, err error) error {
		return &APIError{Host: c.host, Resource: c.resource, Status: status, Kind: kind, Message: msg, Err: err}
	}
	data, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("auditlog: encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint+"/v2/entries:list", bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("auditlog: request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fail(0, ErrTransient, "", ctx.Err())
		}
		return nil, fail(0, ErrTransient, "", scrub(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return nil, fail(resp.StatusCode, ErrTransient, "", err)
	}
	if resp.StatusCode != http.StatusOK {
		kind := ErrRejected
		switch c := resp.StatusCode; {
		case c == http.StatusUnauthorized || c == http.StatusForbidden:
			kind = ErrPermission
		case c == http.StatusNotFound:
			kind = ErrNotFound
		case c == http.StatusTooManyRequests || c == http.StatusRequestTimeout || c >= 500:
			kind = ErrTransient
		}
		return nil, fail(resp.StatusCode, kind, errorMessage(raw), nil)
	}
	if len(raw) > MaxBody {
		return nil, fail(resp.StatusCode, ErrResponse, fmt.Sprintf("body larger than %d bytes", MaxBody), nil)
	}
	var out listResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fail(resp.StatusCode, ErrResponse, "", err)
	}
	return &out, nil
}

// errorMessage takes error.message from a Google API error body, bounded.
func errorMessage(raw []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
		return bound(e.Error.Message, 300)
	}
	return bound(string(raw), 120)
}

// scrub drops a URL's userinfo from a transport error's text.
func scrub(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return fmt.Errorf("%s %s: %w", uerr.Op, redact(uerr.URL), uerr.Err)
	}
	return err
}

// redact renders a URL without credentials (userinfo, query and fragment can carry them).
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment = nil, "", false, ""
	return u.String()
}

// bound truncates s to n bytes at a rune boundary, replaces invalid UTF-8 and marks a cut.
func bound(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func validateWrite(w Write) error {
	switch {
	case !validBucket(w.Bucket):
		return fmt.Errorf("%w: bucket name %q", ErrInvalidWrite, w.Bucket)
	case w.Object == "" || len(w.Object) > maxObjectName || !utf8.ValidString(w.Object):
		return fmt.Errorf("%w: object name %q", ErrInvalidWrite, w.Object)
	case strings.ContainsFunc(w.Object, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("%w: object name %q holds control characters, which the audit log query cannot match", ErrInvalidWrite, w.Object)
	case w.Time.IsZero():
		return fmt.Errorf("%w: %s: no write time", ErrInvalidWrite, strconv.Quote(w.Object))
	case Methods[w.Kind] == nil:
		return fmt.Errorf("%w: %s: unknown kind %v", ErrInvalidWrite, strconv.Quote(w.Object), w.Kind)
	}
	return nil
}

var bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$`)

func validBucket(b string) bool { return bucketRE.MatchString(b) }
