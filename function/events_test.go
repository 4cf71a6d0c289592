package function_test

import (
	"bufio"
	"bytes"
	"log/slog"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/function"
	"github.com/tamperguard/tamperguard/internal/cloudlog"
	"github.com/tamperguard/tamperguard/internal/config"
	"github.com/tamperguard/tamperguard/internal/gcs"
	"github.com/tamperguard/tamperguard/internal/gcstest"
)

// pushPath is where a plain Pub/Sub push subscription should deliver: the Functions
// Framework reads the topic from the path (and prints a warning to stdout without one).
const pushPath = "/projects/tamperguard-demo/topics/uploader-prod-events"

// loadEvent reads a file of testdata/events as the HTTP request it describes:
//   - NAME.http: a raw HTTP/1.1 request (request line, headers, blank line, body);
//     Content-Length is computed;
//   - NAME.push.json: a Pub/Sub push subscription's body (Content-Type application/json);
//   - NAME.json: a CloudEvent in structured mode (application/cloudevents+json).
func loadEvent(t testing.TB, base, name string) *http.Request {
	t.Helper()
	raw, err := os.ReadFile(testdata(t, "events", name))
	require.NoError(t, err)
	switch {
	case strings.HasSuffix(name, ".http"):
		head, body, ok := bytes.Cut(raw, []byte("\n\n"))
		require.True(t, ok, "%s: no blank line after the headers", name)
		tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(head, '\n', '\n'))))
		line, err := tp.ReadLine()
		require.NoError(t, err)
		method, rest, _ := strings.Cut(line, " ")
		path, _, _ := strings.Cut(rest, " ")
		hdr, err := tp.ReadMIMEHeader()
		require.NoError(t, err)
		req, err := http.NewRequest(method, strings.TrimSuffix(base, "/")+path, bytes.NewReader(body))
		require.NoError(t, err)
		for k, vs := range hdr {
			if k != "Host" {
				req.Header[k] = vs
			}
		}
		return req
	case strings.HasSuffix(name, ".push.json"):
		req, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(base, "/")+pushPath, bytes.NewReader(raw))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		return req
	default:
		req, err := http.NewRequest(http.MethodPost, base, bytes.NewReader(raw))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/cloudevents+json")
		return req
	}
}

// The generations and times the fixtures use (the Codecov story: a good upload on
// 19 January 2021, the attacker's on 31 January).
const (
	genGood = 1611072000000000
	genBad  = 1612135200123456
)

type decoded struct {
	kind, object             string
	generation               int64
	overwrittenBy, overwrote int64
	messageID                string
}

// TestEventsTestdata posts every file of testdata/events through the Functions Framework
// and checks what the function made of it.
func TestEventsTestdata(t *testing.T) {
	srv := gcstest.New(t, gcstest.BucketSpec{Name: bucket, Versioning: true})
	// One rule that none of the fixtures' objects match: every event is decoded, logged
	// with what it names, and ignored without I/O.
	yaml := `rules:
  - bucket: ` + bucket + `
    objects: ["unwatched/*.sh"]
    release: {git: ` + testdata(t, "git", "uploader.git") + `, tag: v1.2.0, entry: install.sh}
    keys: {openpgp: [` + testdata(t, "keys", "maintainer-rsa3072.asc") + `]}
`
	cfg, err := config.Parse(config.Source{Name: "test.yaml", Data: []byte(yaml), Dir: t.TempDir()})
	require.NoError(t, err)
	logs := &logBuffer{}
	clock := func() time.Time { return time.Date(2021, 2, 1, 1, 0, 0, 0, time.UTC) }
	h, err := function.New(cfg.Policy, gcs.New(srv.Client), nil, cloudlog.New(logs, slog.LevelDebug), function.WithClock(clock))
	require.NoError(t, err)
	url := serve(t, h)

	cases := map[string]struct {
		status  int
		decoded *decoded
		problem string
		audit   bool
	}{
		"storage-finalized.binary.http":       {decoded: &decoded{kind: "finalize", object: "install.sh", generation: genBad}},
		"storage-finalized.structured.json":   {decoded: &decoded{kind: "finalize", object: "install.sh", generation: genBad}},
		"storage-archived.binary.http":        {decoded: &decoded{kind: "archive", object: "install.sh", generation: genGood}},
		"storage-deleted.binary.http":         {decoded: &decoded{kind: "delete", object: "dl/codecov.sh", generation: genGood}},
		"storage-metadataUpdated.binary.http": {decoded: &decoded{kind: "metadata", object: "install.sh", generation: genBad}},

		"pubsub-finalize.binary.http":            {decoded: &decoded{kind: "finalize", object: "install.sh", generation: genBad, overwrote: genGood, messageID: "2072873405394801"}},
		"pubsub-finalize.push.json":              {decoded: &decoded{kind: "finalize", object: "install.sh", generation: genBad, overwrote: genGood, messageID: "2072873405394803"}},
		"pubsub-archive-overwritten.binary.http": {decoded: &decoded{kind: "archive", object: "install.sh", generation: genGood, overwrittenBy: genBad, messageID: "2072873405394802"}},
		"pubsub-delete-none.binary.http":         {decoded: &decoded{kind: "delete", object: "install.sh", generation: genGood, messageID: "2072874420816601"}},
		"pubsub-metadata.structured.json":        {decoded: &decoded{kind: "metadata", object: "install.sh", generation: genBad, messageID: "2072874420816602"}},
		"pubsub-audit.binary.http":               {audit: true},

		"malformed-truncated.binary.http":           {problem: "data: not valid JSON"},
		"malformed-datacontenttype.binary.http":     {problem: `datacontenttype: "text/plain" is not application/json`},
		"malformed-datacontenttype.structured.json": {problem: `datacontenttype: "text/plain" is not application/json`},
		"malformed-generation.binary.http":          {problem: `data.generation: "latest" is not a decimal number`},
		"malformed-generation-number.binary.http":   {problem: "data.generation: a JSON number where a string belongs"},
		"malformed-source.binary.http":              {problem: `source: names bucket "other-bucket" but data.bucket is "uploader-prod"`},
		"malformed-payload-mismatch.binary.http":    {problem: "data.message.data: names gs://uploader-prod/\"install.sh\"#1611072000000000 but the attributes name gs://uploader-prod/\"install.sh\"#1612135200123456"},
		"malformed-object-name.binary.http":         {problem: "data.name: 1034 bytes, over Cloud Storage's 1024-byte limit"},
		"malformed-pubsub-data.binary.http":         {problem: "data.message.data: not base64"},
		"unsupported-type.binary.http":              {problem: `type: unsupported event type "google.cloud.storage.object.v1.rewritten"`},
		"unsupported-notification.binary.http":      {problem: `data.message.attributes.eventType: unsupported notification type "OBJECT_RESTORE"`},

		// Measured: the framework's CloudEvents SDK cannot parse a truncated structured-mode
		// body and answers 500 itself; the function never sees it (Eventarc sends binary mode).
		"malformed-truncated.structured.json": {status: http.StatusInternalServerError},
	}

	files, err := filepath.Glob(testdata(t, "events", "*"))
	require.NoError(t, err)
	var names []string
	for _, f := range files {
		if n := filepath.Base(f); n != "README.md" {
			names = append(names, n)
		}
	}
	for n := range cases {
		assert.Contains(t, names, n, "the table names a file that is not in testdata/events")
	}

	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			c, ok := cases[name]
			require.True(t, ok, "testdata/events/%s has no expectation in this table", name)
			before := len(logs.lines(t))
			req := loadEvent(t, url, name)
			id := req.Header.Get("Ce-Id")
			status, body := do(t, req)
			want := c.status
			if want == 0 {
				want = http.StatusOK
			}
			require.Equal(t, want, status, body)
			lines := logs.lines(t)[before:]
			if c.status != 0 {
				assert.Empty(t, lines)
				return
			}
			require.Len(t, lines, 1, logs.String())
			l := lines[0]
			if id != "" {
				assert.Equal(t, id, l["event_id"])
			}
			switch {
			case c.audit:
				assert.Equal(t, "audit finished", l["message"])
				assert.Equal(t, "INFO", l["severity"])
			case c.problem != "":
				assert.Equal(t, "ERROR", l["severity"])
				assert.Contains(t, l["problem"], c.problem)
			default:
				d := c.decoded
				assert.Equal(t, "DEBUG", l["severity"])
				assert.Equal(t, "no_rule", l["reason"])
				assert.Equal(t, d.kind, l["kind"])
				assert.Equal(t, bucket, l["bucket"])
				assert.Equal(t, d.object, l["object"])
				assert.Equal(t, norm(d.generation), norm(l["generation"]))
				for k, v := range map[string]int64{"overwritten_by": d.overwrittenBy, "overwrote": d.overwrote} {
					if v == 0 {
						assert.NotContains(t, l, k)
					} else {
						assert.Equal(t, norm(v), norm(l[k]), k)
					}
				}
				if d.messageID != "" {
					assert.Equal(t, d.messageID, l["message_id"])
				}
			}
		})
	}
	assert.True(t, slices.IsSorted(names))
}
