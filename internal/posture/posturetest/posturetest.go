// Package posturetest serves Cloud Storage for posture checks in tests of the packages that
// run them (the delivery runtime, the CLI): a fake Cloud Storage (gcstest, fake-gcs-server)
// for what it implements — buckets, versioning, notification configs — and, for what it does
// not — the bucket's IAM policy, its IAM configuration, soft delete and retention fields, the
// project's HMAC keys — the JSON API's shapes from internal/posture/testdata (see the README
// there).
package posturetest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"cloud.google.com/go/storage"
	"google.golang.org/api/option"
)

// Project is the project of the fixtures' HMAC keys.
const Project = "example-project"

// Front is the Cloud Storage the posture checks read.
type Front struct {
	// URL is its base URL; Client talks to it.
	URL    string
	Client *storage.Client
	// IAMReads counts reads of the bucket's IAM policy: one per check.
	IAMReads atomic.Int32

	t      testing.TB
	mu     sync.Mutex
	extra  map[string]any
	policy map[string]any
	hmac   map[string]any
}

// New serves bucket's posture in front of the fake Cloud Storage at fake (its base URL), and
// stops when the test ends.
func New(t testing.TB, fake, bucket string) *Front {
	t.Helper()
	f := &Front{t: t, extra: fixture(t, "bucket.json"), policy: fixture(t, "iam-policy.json"), hmac: fixture(t, "hmac-keys.json")}
	// The fake keeps versioning itself, and names the bucket.
	for _, k := range []string{"versioning", "name", "id", "selfLink"} {
		delete(f.extra, k)
	}
	target, err := url.Parse(fake)
	if err != nil {
		t.Fatalf("posturetest: %v", err)
	}
	// The fake's XML reads answer only on its own host: the proxied requests carry it.
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }}
	bucketPath := "/storage/v1/b/" + bucket
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == bucketPath+"/iam":
			f.IAMReads.Add(1)
			f.reply(w, f.policy)
		case r.Method == http.MethodGet && r.URL.Path == "/storage/v1/projects/"+Project+"/hmacKeys":
			f.reply(w, f.hmac)
		case r.Method == http.MethodGet && r.URL.Path == bucketPath:
			rec := httptest.NewRecorder()
			proxy.ServeHTTP(rec, r)
			if rec.Code != http.StatusOK {
				w.WriteHeader(rec.Code)
				_, _ = w.Write(rec.Body.Bytes())
				return
			}
			var b map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			f.mu.Lock()
			for k, v := range f.extra {
				b[k] = v
			}
			f.mu.Unlock()
			f.reply(w, b)
		default:
			proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	f.Client, err = storage.NewClient(context.Background(), option.WithEndpoint(srv.URL+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatalf("posturetest: %v", err)
	}
	t.Cleanup(func() { _ = f.Client.Close() })
	return f
}

// AddBinding appends an IAM binding to the bucket's policy.
func (f *Front) AddBinding(role string, members ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ms []any
	for _, m := range members {
		ms = append(ms, m)
	}
	f.policy["bindings"] = append(f.policy["bindings"].([]any), map[string]any{"role": role, "members": ms})
}

func (f *Front) reply(w http.ResponseWriter, v any) {
	f.mu.Lock()
	data, err := json.Marshal(v)
	f.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(data)
}

func fixture(t testing.TB, name string) map[string]any {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	data, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "testdata", name))
	if err != nil {
		t.Fatalf("posturetest: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("posturetest: %s: %v", name, err)
	}
	return m
}
