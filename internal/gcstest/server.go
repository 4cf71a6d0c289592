package gcstest

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	gax "github.com/googleapis/gax-go/v2"
	"google.golang.org/api/option"
)

// MaxAttempts is how many times Server.Client tries a retryable call (reads, metadata
// calls, conditional deletes and updates) before it returns the error.
const MaxAttempts = 3

// DropConnection, given to FailNext as the status, makes the server drop the connection
// without answering, as a crashed front end or a reset would.
const DropConnection = -1

// BucketSpec describes a bucket to create.
type BucketSpec struct {
	Name       string
	Versioning bool
}

// Server is a running fake Cloud Storage.
type Server struct {
	// Fake is the fakestorage server behind the layer. Calls on it bypass the layer (its
	// preconditions, its lock, its metageneration tracking): use it to seed and inspect.
	Fake *fakestorage.Server
	// URL is the base URL of the layer, e.g. http://127.0.0.1:41234. The JSON API is
	// under URL+"/storage/v1/"; STORAGE_EMULATOR_HOST=URL points the SDK at it.
	URL string
	// Client talks to URL through the layer.
	Client *storage.Client

	layer *layer
	stop  func()
}

// New starts a fake with the given buckets and stops it when the test ends.
func New(t testing.TB, buckets ...BucketSpec) *Server {
	t.Helper()
	s, err := Start(buckets...)
	if err != nil {
		t.Fatalf("gcstest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Start starts a fake with the given buckets outside a test (benchmark programs); Close
// stops it.
func Start(buckets ...BucketSpec) (*Server, error) {
	// The listener exists before the fake so that the fake can render self and media
	// links with the real address.
	ts := httptest.NewUnstartedServer(nil)
	host := ts.Listener.Addr().String()
	url := "http://" + host

	fake, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		NoListener:  true,
		ExternalURL: url,
		// The SDK's XML reads (GET http://host/BUCKET/OBJECT) reach the fake's
		// path-style download route only when the request host is its public host.
		PublicHost: host,
	})
	if err != nil {
		ts.Close()
		return nil, fmt.Errorf("start fakestorage: %w", err)
	}
	for _, b := range buckets {
		fake.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: b.Name, VersioningEnabled: b.Versioning})
	}

	l := newLayer(fake, host)
	ts.Config.Handler = l
	ts.Start()

	// XML reads, as in production: with storage.WithJSONReads the SDK (v1.65) refuses
	// ReadCompressed ("custom Accept-Encoding headers not allowed").
	client, err := storage.NewClient(context.Background(),
		option.WithEndpoint(url+"/storage/v1/"),
		option.WithoutAuthentication(),
	)
	if err != nil {
		ts.Close()
		fake.Stop()
		return nil, fmt.Errorf("storage client: %w", err)
	}
	client.SetRetry(
		storage.WithBackoff(gax.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond, Multiplier: 2}),
		storage.WithMaxAttempts(MaxAttempts),
	)
	s := &Server{Fake: fake, URL: url, Client: client, layer: l}
	s.stop = func() {
		_ = client.Close()
		ts.Close()
		fake.Stop()
	}
	return s, nil
}

// Close stops a server made by Start (New's stops when its test ends).
func (s *Server) Close() {
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// PublicHost is the host:port the fake routes XML reads for: a proxy in front of the
// server must send it as the Host of the requests it forwards.
func (s *Server) PublicHost() string { return s.layer.publicHost }

// FailNext makes the next n requests whose method is method (any method if "") and whose
// URL path contains pathSubstring (raw or percent-encoded form; any path if "") fail with
// status. Paths to match: metadata /storage/v1/b/BUCKET/o/OBJECT, downloads (XML API)
// /BUCKET/OBJECT, uploads /upload/storage/v1/b/BUCKET/o (name in the query). Failures are
// answered in the JSON error shape of GCS, or with a dropped connection when status is
// DropConnection (Go's transport may retry an idempotent request on a dropped reused
// connection by itself, so one attempt of the SDK can consume two counts). Rules are consulted in the order they were added; a request
// consumes one count of the first rule it matches.
func (s *Server) FailNext(method, pathSubstring string, status int, n int) {
	s.layer.addFault(method, pathSubstring, status, n)
}

// Metageneration reports the metageneration the layer tracks for one generation of an
// object (1 until its metadata is changed through the layer).
func (s *Server) Metageneration(bucket, object string, generation int64) int64 {
	return s.layer.metageneration(bucket, object, generation)
}
