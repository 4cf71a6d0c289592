package gcstest

import (
	"context"
	"net/http"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	gax "github.com/googleapis/gax-go/v2"
	"google.golang.org/api/option"

	"github.com/tamperguard/tamperguard/internal/faultproxy"
)

// WithFaults starts a faultproxy in front of the layer and returns it with a client built
// as Server.Client is (JSON API, XML reads, MaxAttempts tries with millisecond backoff)
// whose every request, reads and resumable-upload chunks included, goes through the
// proxy. Both are closed when the test ends.
//
// The proxy forwards each request with the layer's own host:port as its Host, which is
// what makes the fake route the SDK's path-style XML reads (GET /BUCKET/OBJECT); it points
// the Location of a resumable upload session back at itself.
//
// Keep-alive is on, as in production, so Go's transport replays a GET or HEAD that was
// reset on a reused connection without the SDK seeing it (see the faultproxy package);
// call SetKeepAlives(false) on the proxy when a test counts attempts.
//
// What the adapter (internal/gcs) reports for each fault, and how many requests the fault
// takes (keep-alive off; cloud.google.com/go/storage v1.65; each line is pinned by a test
// in faults_test.go):
//
//	step                         fault                      requests         reported
//	attrs, list, download        503, 500, 429, reset,      MaxAttempts      ErrTransient
//	                             lost response
//	attrs, list, download        hang                       1                ErrTransient, DeadlineExceeded
//	attrs, list                  truncate                   MaxAttempts      ErrTransient, ErrUnexpectedEOF
//	download                     truncate after k > 0       ceil(size/k)     nothing: resumed with ranged
//	                                                                         reads, CRC32C checked at the end
//	download                     truncate after 0           until deadline   ErrTransient, DeadlineExceeded
//	download                     short body                 1                "bad CRC on read", not transient
//	attrs                        short body                 1                JSON error, not transient
//	delete, metadata update      503, reset                 MaxAttempts      ErrTransient
//	upload                       503, reset                 no bound         nothing if an attempt succeeds
//	                                                                         before the deadline, else
//	                                                                         ErrTransient, DeadlineExceeded
//	upload                       hang                       1                ErrTransient, DeadlineExceeded
//	upload with a condition      lost response              2                ErrPrecondition (the retry's
//	                                                                         412), yet COMMITTED
//	upload                       truncate                   1 (no retry)     ErrTransient, yet COMMITTED
//	upload                       short body                 1 (no retry)     an error, yet COMMITTED
//	upload                       answer held past deadline  1                ErrTransient, yet COMMITTED
//	delete with a condition      lost response              2                ErrObjectNotFound (the retry's
//	                                                                         404), yet COMMITTED
//	metadata update              lost response              2                ErrPrecondition, yet COMMITTED
//
// With keep-alive on, a reset or lost GET on a reused connection takes one more request
// (the transport's own replay), and a single such fault is not seen at all.
func (s *Server) WithFaults(t testing.TB) (*faultproxy.Proxy, *storage.Client) {
	t.Helper()
	p := faultproxy.New(t, s.URL)
	c, err := storage.NewClient(context.Background(),
		option.WithEndpoint(p.URL()+"/storage/v1/"),
		option.WithoutAuthentication(),
	)
	if err != nil {
		t.Fatalf("gcstest: storage client through the fault proxy: %v", err)
	}
	c.SetRetry(
		storage.WithBackoff(gax.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond, Multiplier: 2}),
		storage.WithMaxAttempts(MaxAttempts),
	)
	// Registered after the proxy's Close, so it runs first.
	t.Cleanup(func() { _ = c.Close() })
	return p, c
}

// Op is a kind of Cloud Storage request, for Server.Match.
type Op int

// The requests Match tells apart, as the Go SDK sends them to the layer.
const (
	// OpAttrs: objects.get of the metadata, GET /storage/v1/b/B/o/O.
	OpAttrs Op = iota + 1
	// OpRead: a read of the bytes: GET or HEAD /B/O (XML API, what the SDK sends),
	// /download/storage/v1/b/B/o/O, or objects.get with alt=media.
	OpRead
	// OpList: objects.list, GET /storage/v1/b/B/o; the object, if given, must be the
	// prefix parameter (Versions lists with prefix=O).
	OpList
	// OpUpload: an upload, POST or PUT /upload/storage/v1/b/B/o, the object named in the
	// name parameter (also on the chunks of a resumable upload).
	OpUpload
	// OpPatch: objects.patch, PATCH /storage/v1/b/B/o/O (the SDK's Update).
	OpPatch
	// OpUpdate: objects.update, PUT /storage/v1/b/B/o/O.
	OpUpdate
	// OpDelete: objects.delete, DELETE /storage/v1/b/B/o/O.
	OpDelete
	// OpCopy: objects.rewrite or objects.copy; the bucket and object may be the source
	// or the destination.
	OpCopy
	// OpCompose: objects.compose into B/O.
	OpCompose
)

var opNames = map[Op]string{
	OpAttrs: "attrs", OpRead: "read", OpList: "list", OpUpload: "upload", OpPatch: "patch",
	OpUpdate: "update", OpDelete: "delete", OpCopy: "copy", OpCompose: "compose",
}

func (o Op) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return "Op(?)"
}

// Match returns a faultproxy matcher for requests of kind op on bucket/object; "" for the
// bucket or the object matches any. It routes the request as the layer does, so object
// names match however they are escaped. Combine it with faultproxy.QueryParam (e.g.
// "generation", "ifGenerationMatch") and faultproxy.All to single out one step.
func (s *Server) Match(op Op, bucket, object string) func(*http.Request) bool {
	if _, ok := opNames[op]; !ok {
		panic("gcstest: Match: unknown Op")
	}
	is := func(b, o string) bool {
		return (bucket == "" || b == bucket) && (object == "" || o == object)
	}
	return func(r *http.Request) bool {
		// The proxy receives requests addressed to its own host; the layer routes XML
		// reads only for its public host.
		c := *r
		c.Host = s.layer.publicHost
		rt := s.layer.parseRoute(&c)
		switch op {
		case OpAttrs:
			return rt.kind == routeObject && (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
				r.URL.Query().Get("alt") != "media" && is(rt.bucket, rt.object)
		case OpRead:
			media := rt.kind == routeDownload ||
				(rt.kind == routeObject && r.URL.Query().Get("alt") == "media")
			return media && (r.Method == http.MethodGet || r.Method == http.MethodHead) && is(rt.bucket, rt.object)
		case OpList:
			return rt.kind == routeList && r.Method == http.MethodGet &&
				(bucket == "" || rt.bucket == bucket) && (object == "" || r.URL.Query().Get("prefix") == object)
		case OpUpload:
			return rt.kind == routeUpload && is(rt.bucket, r.URL.Query().Get("name"))
		case OpPatch:
			return rt.kind == routeObject && (r.Method == http.MethodPatch ||
				(r.Method == http.MethodPost && r.Header.Get("X-HTTP-Method-Override") == http.MethodPatch)) &&
				is(rt.bucket, rt.object)
		case OpUpdate:
			return rt.kind == routeObject && r.Method == http.MethodPut && is(rt.bucket, rt.object)
		case OpDelete:
			return rt.kind == routeObject && r.Method == http.MethodDelete && is(rt.bucket, rt.object)
		case OpCopy:
			return rt.kind == routeRewrite && (is(rt.bucket, rt.object) || is(rt.dstBucket, rt.dstObject))
		case OpCompose:
			return rt.kind == routeCompose && is(rt.bucket, rt.object)
		}
		return false
	}
}
