package posture

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	gax "github.com/googleapis/gax-go/v2"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"
)

const (
	project = "example-project"
	bucket  = "uploader-prod"
	topic   = "tamperguard-events"
)

// expected is the notification config the module deploys.
var expected = Notification{
	TopicProject:  project,
	Topic:         topic,
	EventTypes:    []string{storage.ObjectFinalizeEvent, storage.ObjectMetadataUpdateEvent, storage.ObjectDeleteEvent, storage.ObjectArchiveEvent},
	PayloadFormat: storage.JSONPayload,
}

// env is a Cloud Storage for posture tests: fake-gcs-server for what it implements
// (buckets with versioning, notification configs), and, for what it does not, answers in
// the JSON API's shapes from testdata (the bucket's IAM configuration, soft delete and
// retention fields, its IAM policy, the project's HMAC keys).
type env struct {
	t      *testing.T
	fake   *fakestorage.Server
	srv    *httptest.Server
	client *storage.Client

	mu       sync.Mutex
	extra    map[string]any // merged into the bucket resource
	policy   map[string]any
	hmac     map[string]any
	fail     []fault
	requests []string // "METHOD path?query"
}

type fault struct {
	method, path string
	status       int
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, extra: fixture(t, "bucket.json"), policy: fixture(t, "iam-policy.json"), hmac: fixture(t, "hmac-keys.json")}
	// The fake keeps versioning itself.
	delete(e.extra, "versioning")
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(e.serve))
	url := "http://" + e.srv.Listener.Addr().String()
	fake, err := fakestorage.NewServerWithOptions(fakestorage.Options{NoListener: true, ExternalURL: url})
	require.NoError(t, err)
	e.fake = fake
	fake.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket, VersioningEnabled: true})
	e.srv.Start()
	t.Cleanup(func() { e.srv.Close(); fake.Stop() })

	e.client, err = storage.NewClient(context.Background(), option.WithEndpoint(url+"/storage/v1/"), option.WithoutAuthentication())
	require.NoError(t, err)
	e.client.SetRetry(storage.WithBackoff(gax.Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond}), storage.WithMaxAttempts(2))
	t.Cleanup(func() { _ = e.client.Close() })

	// The module's notification config.
	_, err = e.client.Bucket(bucket).AddNotification(context.Background(), &storage.Notification{
		TopicProjectID: expected.TopicProject, TopicID: expected.Topic, EventTypes: expected.EventTypes, PayloadFormat: expected.PayloadFormat,
	})
	require.NoError(t, err)
	e.requests = nil
	return e
}

func fixture(t *testing.T, name string) map[string]any {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	return m
}

func (e *env) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.requests = append(e.requests, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
	for i, f := range e.fail {
		if (f.method == "" || f.method == r.Method) && strings.Contains(r.URL.Path, f.path) {
			e.fail = append(e.fail[:i], e.fail[i+1:]...)
			e.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			if f.status == http.StatusOK {
				// Accepted and dropped: the change never happens.
				_, _ = w.Write([]byte(`{"kind":"storage#bucket","name":"` + bucket + `"}`))
				return
			}
			w.WriteHeader(f.status)
			_, _ = w.Write([]byte(`{"error":{"code":` + strconv.Itoa(f.status) + `,"message":"tamperguard-runtime@example-project.iam.gserviceaccount.com does not have storage.buckets.getIamPolicy access to the Google Cloud Storage bucket.","errors":[{"message":"denied","domain":"global","reason":"forbidden"}]}}`))
			return
		}
	}
	e.mu.Unlock()

	bucketPath := "/storage/v1/b/" + bucket
	switch {
	case r.Method == http.MethodGet && r.URL.Path == bucketPath+"/iam":
		e.reply(w, e.policy)
	case r.Method == http.MethodGet && r.URL.Path == "/storage/v1/projects/"+project+"/hmacKeys":
		e.reply(w, e.hmac)
	case r.Method == http.MethodGet && r.URL.Path == bucketPath:
		rec := httptest.NewRecorder()
		e.fake.HTTPHandler().ServeHTTP(rec, r)
		if rec.Code != http.StatusOK {
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
		var b map[string]any
		require.NoError(e.t, json.Unmarshal(rec.Body.Bytes(), &b))
		e.mu.Lock()
		for k, v := range e.extra {
			b[k] = v
		}
		e.mu.Unlock()
		e.reply(w, b)
	default:
		e.fake.HTTPHandler().ServeHTTP(w, r)
	}
}

func (e *env) reply(w http.ResponseWriter, v any) {
	e.mu.Lock()
	data, err := json.Marshal(v)
	e.mu.Unlock()
	require.NoError(e.t, err)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(data)
}

// set changes what the server answers (under the lock).
func (e *env) set(f func(e *env)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(e)
}

// reset forgets the requests seen so far.
func (e *env) reset() { e.set(func(e *env) { e.requests = nil }) }

// failNext answers the next request of method to a path containing path with status in
// the JSON API's error shape, or, for 200, with a bucket resource without doing anything.
func (e *env) failNext(method, path string, status int) {
	e.set(func(e *env) { e.fail = append(e.fail, fault{method, path, status}) })
}

func (e *env) count(prefix string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, r := range e.requests {
		if strings.HasPrefix(r, prefix) {
			n++
		}
	}
	return n
}

// addBinding appends an IAM binding to the policy answered.
func (e *env) addBinding(role string, members ...string) {
	e.set(func(e *env) {
		var ms []any
		for _, m := range members {
			ms = append(ms, m)
		}
		e.policy["bindings"] = append(e.policy["bindings"].([]any), map[string]any{"role": role, "members": ms})
	})
}

// addHMACKey appends a key to the project's HMAC key list.
func (e *env) addHMACKey(accessID, sa, state string) {
	e.set(func(e *env) {
		e.hmac["items"] = append(e.hmac["items"].([]any), map[string]any{
			"kind": "storage#hmacKeyMetadata", "id": project + "/" + accessID, "accessId": accessID, "projectId": project,
			"serviceAccountEmail": sa, "state": state, "timeCreated": "2021-01-31T13:40:00.000Z", "updated": "2021-01-31T13:40:00.000Z", "etag": "MQ==",
		})
	})
}

// setVersioning changes the bucket's versioning through the fake's JSON API.
func (e *env) setVersioning(on bool) {
	e.t.Helper()
	_, err := e.client.Bucket(bucket).Update(context.Background(), storage.BucketAttrsToUpdate{VersioningEnabled: on})
	require.NoError(e.t, err)
}

// notifications lists the fake's notification configs.
func (e *env) notifications() map[string]*storage.Notification {
	e.t.Helper()
	ns, err := e.client.Bucket(bucket).Notifications(context.Background())
	require.NoError(e.t, err)
	return ns
}

// replaceNotification deletes every config and adds n (nil: none).
func (e *env) replaceNotification(n *storage.Notification) {
	e.t.Helper()
	for id := range e.notifications() {
		require.NoError(e.t, e.client.Bucket(bucket).DeleteNotification(context.Background(), id))
	}
	if n != nil {
		_, err := e.client.Bucket(bucket).AddNotification(context.Background(), n)
		require.NoError(e.t, err)
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (e *env) checker(st Store, mod func(*Config)) *Checker {
	e.t.Helper()
	n := expected
	cfg := Config{Project: project, Bucket: bucket, Notification: &n}
	if mod != nil {
		mod(&cfg)
	}
	k, err := New(e.client, st, cfg)
	require.NoError(e.t, err)
	return k
}

func (e *env) check(k *Checker) Report {
	e.t.Helper()
	r, err := k.Check(context.Background())
	require.NoError(e.t, err)
	require.Len(e.t, r.Findings, len(Checks))
	return r
}

func finding(t *testing.T, r Report, check string) Finding {
	t.Helper()
	for _, f := range r.Findings {
		if f.Check == check {
			return f
		}
	}
	t.Fatalf("no finding for %s", check)
	return Finding{}
}

// statuses maps check → status, for compact assertions.
func statuses(r Report) map[string]Status {
	out := map[string]Status{}
	for _, f := range r.Findings {
		out[f.Check] = f.Status
	}
	return out
}

func newOnes(r Report) []string {
	var out []string
	for _, f := range r.New() {
		out = append(out, f.Check)
	}
	return out
}
