package auditlog

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The upload of testdata/data-write-create.json.
var (
	written = time.Date(2021, 1, 31, 14, 2, 10, 108744000, time.UTC)
	upload  = Write{Bucket: "uploader-prod", Object: "bash", Generation: 1612101730108744, Kind: KindCreate, Time: written}
)

func TestLookupExact(t *testing.T) {
	c := &clock{t: written.Add(30 * time.Second)}
	s := newLoggingServer(t, c)
	s.add(entryJSON(t, nil), written)
	cl := newClient(t, s)

	a, err := cl.Lookup(context.Background(), upload)
	require.NoError(t, err)
	require.Equal(t, StatusFound, a.Status)
	assert.Equal(t, "exact", a.Confidence)
	assert.Equal(t, 1, a.Candidates)
	require.NotNil(t, a.WrittenBy)
	wb := *a.WrittenBy
	assert.Equal(t, "ci-uploader@example-project.iam.gserviceaccount.com", wb.Principal)
	assert.Equal(t, "serviceAccount:ci-uploader@example-project.iam.gserviceaccount.com", wb.PrincipalSubject)
	assert.Equal(t, "203.0.113.7", wb.CallerIP)
	assert.Equal(t, "gcloud/460.0.0 command/gcloud.storage.cp invocation-id/0d1b2c3d,gzip(gfe)", wb.UserAgent)
	assert.Equal(t, "//iam.googleapis.com/projects/example-project/serviceAccounts/ci-uploader@example-project.iam.gserviceaccount.com/keys/c71e040fb4b71d798ce4baca14e15ab62115aaef", wb.ServiceAccountKey)
	assert.Equal(t, []string{"service-123456789012@compute-system.iam.gserviceaccount.com"}, wb.Delegation)
	assert.Empty(t, wb.HMACAccessID, "a service account key is not an HMAC key")
	assert.Equal(t, "storage.objects.create", wb.Method)
	assert.Equal(t, written, wb.Time)
	assert.Equal(t, "0s", wb.Offset)
	assert.Equal(t, "1bqh3aue1v2g1", wb.InsertID)
	assert.Empty(t, c.sleeps, "found at once: no retry")
	assert.Len(t, s.reqs(), 1)
}

func TestLookupRequest(t *testing.T) {
	c := &clock{t: written.Add(30 * time.Second)}
	s := newLoggingServer(t, c)
	s.add(entryJSON(t, nil), written)
	view := "projects/example-project/locations/global/buckets/tamperguard-audit/views/watched-writes"
	cl, err := New(context.Background(), view, WithEndpoint(s.srv.URL+"/"), WithClock(c.now, c.sleep))
	require.NoError(t, err)

	_, err = cl.Lookup(context.Background(), upload)
	require.NoError(t, err)
	reqs := s.reqs()
	require.Len(t, reqs, 1)
	assert.Equal(t, []string{view}, reqs[0].ResourceNames, "the read goes through the log view the runtime may read")
	assert.Equal(t, "timestamp asc", reqs[0].OrderBy)
	assert.Equal(t, PageSize, reqs[0].PageSize)
	assert.Equal(t, writeFilter(upload, DefaultBefore, DefaultAfter), reqs[0].Filter)
	assert.Empty(t, s.headers[0].Get("Authorization"), "no credentials go to an overridden endpoint")
}

func TestWriteFilter(t *testing.T) {
	w := Write{Bucket: "uploader-prod", Object: `v1/"quoted"\back`, Kind: KindMetadata, Time: written}
	assert.Equal(t,
		`log_id("cloudaudit.googleapis.com/data_access") AND resource.type="gcs_bucket" AND resource.labels.bucket_name="uploader-prod"`+
			` AND protoPayload.serviceName="storage.googleapis.com"`+
			` AND protoPayload.resourceName="projects/_/buckets/uploader-prod/objects/v1/\"quoted\"\\back"`+
			` AND protoPayload.methodName=("storage.objects.update" OR "storage.objects.patch")`+
			` AND timestamp>="2021-01-31T13:57:10.108744Z" AND timestamp<="2021-01-31T14:04:10.108744Z"`,
		writeFilter(w, DefaultBefore, DefaultAfter))
	assert.Contains(t, writeFilter(Write{Bucket: "b-1", Object: "o", Kind: KindDelete, Time: written}, 0, 0), `protoPayload.methodName=("storage.objects.delete")`)
	assert.Contains(t, writeFilter(upload, 0, 0), `"storage.objects.create" OR "storage.objects.compose" OR "storage.objects.copy" OR "storage.objects.rewrite" OR "storage.objects.restore"`)
}

func TestLookupClosestOfN(t *testing.T) {
	c := &clock{t: written.Add(time.Minute)}
	s := newLoggingServer(t, c)
	s.add(entryJSON(t, all(at(written.Add(-90*time.Second)), principal("early@example.com"), insertID("a"))), written)
	s.add(entryJSON(t, all(at(written.Add(3*time.Second)), principal("closest@example.com"), insertID("b"))), written)
	s.add(entryJSON(t, all(at(written.Add(40*time.Second)), principal("late@example.com"), insertID("c"))), written)
	cl := newClient(t, s)

	a, err := cl.Lookup(context.Background(), upload)
	require.NoError(t, err)
	require.Equal(t, StatusFound, a.Status)
	assert.Equal(t, "closest of 3", a.Confidence)
	assert.Equal(t, 3, a.Candidates)
	assert.Equal(t, "closest@example.com", a.WrittenBy.Principal)
	assert.Equal(t, "3s", a.WrittenBy.Offset)
	assert.Contains(t, a.Note, "3 entries")
}

// TestLookupIgnoresLookalikes: an entry that is closer in time than the real one but is not
// the write's (another object, a name differing only in case, another bucket, a read, a
// denied attempt, another service, not an AuditLog, another log, outside the window) is
// never taken, whatever the endpoint answers.
func TestLookupIgnoresLookalikes(t *testing.T) {
	near := at(written.Add(100 * time.Millisecond))
	cases := map[string]func(map[string]any){
		"other object":    all(near, object("uploader-prod", "bash.bak")),
		"case variant":    all(near, object("uploader-prod", "Bash")),
		"other bucket":    all(near, object("uploader-prod2", "bash")),
		"a read":          all(near, method("storage.objects.get")),
		"a deletion":      all(near, method("storage.objects.delete")),
		"denied attempt":  all(near, func(e map[string]any) { pp(e)["status"] = map[string]any{"code": 7, "message": "PERMISSION_DENIED"} }),
		"other service":   all(near, func(e map[string]any) { pp(e)["serviceName"] = "storagetransfer.googleapis.com" }),
		"not an AuditLog": all(near, func(e map[string]any) { pp(e)["@type"] = "type.googleapis.com/google.cloud.audit.Other" }),
		"admin activity log": all(near, func(e map[string]any) {
			e["logName"] = "projects/example-project/logs/cloudaudit.googleapis.com%2Factivity"
		}),
		"a user's own log": all(near, func(e map[string]any) {
			e["logName"] = "projects/example-project/logs/cloudaudit.googleapis.com%2Fdata_access2"
		}),
		"before the window":   at(written.Add(-DefaultBefore - time.Millisecond)),
		"after the window":    at(written.Add(DefaultAfter + time.Millisecond)),
		"no timestamp":        func(e map[string]any) { delete(e, "timestamp") },
		"garbled timestamp":   func(e map[string]any) { e["timestamp"] = "yesterday" },
		"jsonPayload entry":   func(e map[string]any) { e["jsonPayload"] = e["protoPayload"]; delete(e, "protoPayload") },
		"resourceName suffix": all(near, func(e map[string]any) { pp(e)["resourceName"] = ResourceName("uploader-prod", "bash") + "/" }),
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			c := &clock{t: written.Add(time.Hour)}
			s := newLoggingServer(t, c)
			s.add(entryJSON(t, all(principal("lookalike@example.com"), insertID("0"), edit)), written)
			s.add(entryJSON(t, all(at(written.Add(2*time.Second)), insertID("1"))), written)
			a, err := newClient(t, s).Lookup(context.Background(), upload)
			require.NoError(t, err)
			require.Equal(t, StatusFound, a.Status)
			assert.Equal(t, "ci-uploader@example-project.iam.gserviceaccount.com", a.WrittenBy.Principal)
			assert.Equal(t, "exact", a.Confidence, "the lookalike must not count as a candidate")
		})
	}
}

// TestLookupWaitsForIngestion: the entry becomes readable 12 s after the lookup starts;
// Lookup finds it on its third attempt, having slept 5 s and 10 s on the injected clock.
func TestLookupWaitsForIngestion(t *testing.T) {
	start := written.Add(2 * time.Second)
	c := &clock{t: start}
	s := newLoggingServer(t, c)
	s.add(entryJSON(t, nil), start.Add(12*time.Second))
	a, err := newClient(t, s).Lookup(context.Background(), upload)
	require.NoError(t, err)
	assert.Equal(t, StatusFound, a.Status)
	assert.Equal(t, []time.Duration{5 * time.Second, 10 * time.Second}, c.sleeps)
	assert.Len(t, s.reqs(), 3)
}

// TestLookupPending: the entry has not arrived after every retry and the write is recent:
// "not yet in audit logs", and no probe of the bucket (it would prove nothing yet).
func TestLookupPending(t *testing.T) {
	c := &clock{t: written.Add(2 * time.Second)}
	s := newLoggingServer(t, c)
	a, err := newClient(t, s).Lookup(context.Background(), upload)
	require.NoError(t, err)
	assert.Equal(t, StatusPending, a.Status)
	assert.Contains(t, a.Note, "not yet in audit logs")
	assert.Nil(t, a.WrittenBy)
	assert.Equal(t, DefaultDelays, c.sleeps)
	assert.Len(t, s.reqs(), len(DefaultDelays)+1)

	// Later, Find sees it with one query and no sleep.
	s.add(entryJSON(t, nil), c.now())
	c.sleeps = nil
	a, err = newClient(t, s).Find(context.Background(), upload)
	require.NoError(t, err)
	assert.Equal(t, StatusFound, a.Status)
	assert.Empty(t, c.sleeps)
}

// TestLookupLogsOff: long after the write there is no entry for it and none for any write
// of the bucket: Data Access logs appear off. Nothing is slept: waiting cannot help.
func TestLookupLogsOff(t *testing.T) {
	c := &clock{t: written.Add(time.Hour)}
	s := newLoggingServer(t, c)
	// A read and another bucket's write do not count as this bucket's writes being logged.
	s.add(entryJSON(t, method("storage.objects.get")), written)
	s.add(entryJSON(t, object("other-bucket", "x")), written)
	a, err := newClient(t, s).Lookup(context.Background(), upload)
	require.NoError(t, err)
	assert.Equal(t, StatusLogsOff, a.Status)
	assert.Contains(t, a.Note, "Data Access logs for Cloud Storage appear off")
	assert.Contains(t, a.Note, "gs://uploader-prod")
	assert.Empty(t, c.sleeps)
	reqs := s.reqs()
	require.Len(t, reqs, 2, "the write's query and one probe of the bucket")
	assert.Equal(t, bucketFilter("uploader-prod", written.Add(-probeBefore), c.now()), reqs[1].Filter)
}

// TestLookupNotLogged: other writes of the bucket are logged, this one is not.
func TestLookupNotLogged(t *testing.T) {
	c := &clock{t: written.Add(time.Hour)}
	s := newLoggingServer(t, c)
	s.add(entryJSON(t, all(object("uploader-prod", "install.sh"), at(written.Add(-time.Hour)))), written)
	del := upload
	del.Kind = KindDelete
	a, err := newClient(t, s).Lookup(context.Background(), del)
	require.NoError(t, err)
	assert.Equal(t, StatusNotLogged, a.Status)
	assert.Contains(t, a.Note, "exempted")
	assert.Contains(t, a.Note, "Lifecycle", "deletions may be lifecycle actions, which are never logged")
}

func TestLookupTransientErrors(t *testing.T) {
	c := &clock{t: written.Add(30 * time.Second)}
	s := newLoggingServer(t, c)
	s.add(entryJSON(t, nil), written)
	s.fail = []int{http.StatusServiceUnavailable, http.StatusTooManyRequests}
	a, err := newClient(t, s).Lookup(context.Background(), upload)
	require.NoError(t, err)
	assert.Equal(t, StatusFound, a.Status)
	assert.Equal(t, []time.Duration{5 * time.Second, 10 * time.Second}, c.sleeps)

	// Failing every attempt: an error that says so, a transient one.
	c2 := &clock{t: written.Add(30 * time.Second)}
	s2 := newLoggingServer(t, c2)
	s2.fail = []int{503, 503, 503, 503, 503}
	_, err = newClient(t, s2).Lookup(context.Background(), upload)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrTransient)
	assert.Contains(t, err.Error(), "after 4 attempts")
	assert.Contains(t, err.Error(), "HTTP 503")
	assert.Len(t, s2.reqs(), 4)
}

func TestLookupPermissionDenied(t *testing.T) {
	c := &clock{t: written.Add(30 * time.Second)}
	s := newLoggingServer(t, c)
	s.fail = []int{http.StatusForbidden}
	_, err := newClient(t, s).Lookup(context.Background(), upload)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrPermission)
	assert.NotErrorIs(t, err, ErrTransient)
	var aerr *APIError
	require.ErrorAs(t, err, &aerr)
	assert.Equal(t, 403, aerr.Status)
	assert.Equal(t, "projects/example-project", aerr.Resource)
	assert.Contains(t, err.Error(), `"The caller does not have permission\nto read projects/example-project"`, "the server's text is quoted: no forged log lines")
	assert.Len(t, s.reqs(), 1, "a permission error is not retried")
	assert.Empty(t, c.sleeps)
}

func TestInvalidWrites(t *testing.T) {
	c := &clock{t: written}
	s := newLoggingServer(t, c)
	cl := newClient(t, s)
	for name, w := range map[string]Write{
		"control character": {Bucket: "uploader-prod", Object: "bash\n", Kind: KindCreate, Time: written},
		"empty object":      {Bucket: "uploader-prod", Kind: KindCreate, Time: written},
		"long object":       {Bucket: "uploader-prod", Object: strings.Repeat("a", 1025), Kind: KindCreate, Time: written},
		"invalid UTF-8":     {Bucket: "uploader-prod", Object: "\xff", Kind: KindCreate, Time: written},
		"bad bucket":        {Bucket: `b"x`, Object: "bash", Kind: KindCreate, Time: written},
		"no time":           {Bucket: "uploader-prod", Object: "bash", Kind: KindCreate},
		"no kind":           {Bucket: "uploader-prod", Object: "bash", Time: written},
	} {
		_, err := cl.Lookup(context.Background(), w)
		assert.ErrorIs(t, err, ErrInvalidWrite, name)
		_, err = cl.Find(context.Background(), w)
		assert.ErrorIs(t, err, ErrInvalidWrite, name)
	}
	assert.Empty(t, s.reqs(), "nothing is asked for a write that cannot be expressed")
}

func TestPaging(t *testing.T) {
	c := &clock{t: written.Add(time.Minute)}
	s := newLoggingServer(t, c)
	for i := 0; i < PageSize+10; i++ {
		s.add(entryJSON(t, method("storage.objects.get")), written)
	}
	s.add(entryJSON(t, nil), written) // on the second page
	a, err := newClient(t, s).Lookup(context.Background(), upload)
	require.NoError(t, err)
	assert.Equal(t, StatusFound, a.Status)
	assert.Len(t, s.reqs(), 2)
	assert.Equal(t, "", s.reqs()[0].PageToken)
	assert.Equal(t, "50", s.reqs()[1].PageToken)

	// An endpoint that always has another page is read MaxPages times, no more.
	c2 := &clock{t: written.Add(time.Hour)}
	s2 := newLoggingServer(t, c2)
	s2.endless = true
	a, err = newClient(t, s2, WithRetry()).Find(context.Background(), upload)
	require.NoError(t, err)
	assert.Equal(t, StatusLogsOff, a.Status)
	assert.Len(t, s2.reqs(), 2*MaxPages, "the write's query and the probe, each bounded")
}

func TestMalformedResponses(t *testing.T) {
	for name, tc := range map[string]struct {
		body []byte
		msg  string
	}{
		"too large": {[]byte(`{"entries":[]}` + strings.Repeat(" ", MaxBody)), "body larger than"},
		"not JSON":  {[]byte(`<html>proxy error</html>`), "invalid character"},
	} {
		c := &clock{t: written.Add(time.Minute)}
		s := newLoggingServer(t, c)
		s.body = tc.body
		_, err := newClient(t, s).Lookup(context.Background(), upload)
		assert.ErrorIs(t, err, ErrResponse, name)
		assert.ErrorContains(t, err, tc.msg, name)
		assert.Len(t, s.reqs(), 1, "%s: not retried", name)
	}
}

// TestHostileText: text the writer chose comes back bounded, valid UTF-8, as data.
func TestHostileText(t *testing.T) {
	c := &clock{t: written.Add(time.Minute)}
	s := newLoggingServer(t, c)
	ua := "<!channel> *bold* \n\x1b[31m" + strings.Repeat("A", 10000) + "\xff"
	s.add(entryJSON(t, func(e map[string]any) {
		pp(e)["requestMetadata"].(map[string]any)["callerSuppliedUserAgent"] = ua
		pp(e)["authenticationInfo"].(map[string]any)["principalEmail"] = strings.Repeat("é", 300)
		var hops []any
		for i := 0; i < 50; i++ {
			hops = append(hops, map[string]any{"firstPartyPrincipal": map[string]any{"principalEmail": "hop@example.com"}})
		}
		hops = append(hops[:1], append([]any{map[string]any{"thirdPartyPrincipal": map[string]any{"thirdPartyClaims": map[string]any{}}}}, hops[1:]...)...)
		pp(e)["authenticationInfo"].(map[string]any)["serviceAccountDelegationInfo"] = hops
	}), written)
	a, err := newClient(t, s).Lookup(context.Background(), upload)
	require.NoError(t, err)
	wb := a.WrittenBy
	assert.LessOrEqual(t, len(wb.UserAgent), maxUserAgent+len("…"))
	assert.True(t, strings.HasPrefix(wb.UserAgent, "<!channel> *bold* \n\x1b[31m"), "kept as data, not rewritten (escaping is the alert's job)")
	assert.True(t, strings.HasSuffix(wb.UserAgent, "…"))
	assert.True(t, utf8.ValidString(wb.Principal))
	assert.LessOrEqual(t, len(wb.Principal), maxShort+len("…"))
	require.Len(t, wb.Delegation, maxDelegation+1)
	assert.Equal(t, "(third-party principal)", wb.Delegation[1])
	assert.Equal(t, "(41 more hops)", wb.Delegation[maxDelegation])
}

func TestHMACAccessID(t *testing.T) {
	const sa = "GOOG1EXHMACTESTONLYNOTAREALACCESSIDXXXXXXXXXXXXXXXXXXXXXXXXXX"
	require.Len(t, sa, 61)
	const user = "GOOGTS7C7FUP3AIRVJTE2BCD"
	for name, tc := range map[string]struct {
		edit        func(map[string]any)
		id, field   string
		description string
	}{
		"key name is an hmacKeys resource": {
			edit: func(e map[string]any) {
				pp(e)["authenticationInfo"].(map[string]any)["serviceAccountKeyName"] = "//storage.googleapis.com/projects/example-project/hmacKeys/" + sa
			},
			id: sa, field: "protoPayload.authenticationInfo.serviceAccountKeyName",
		},
		"key name ends in an access ID": {
			edit:  func(e map[string]any) { pp(e)["authenticationInfo"].(map[string]any)["serviceAccountKeyName"] = user },
			id:    user,
			field: "protoPayload.authenticationInfo.serviceAccountKeyName",
		},
		"in requestAttributes.auth": {
			edit: func(e map[string]any) {
				pp(e)["requestMetadata"].(map[string]any)["requestAttributes"].(map[string]any)["auth"] = map[string]any{"accessLevels": []any{}, "credentialId": sa}
			},
			id: sa, field: "protoPayload.requestMetadata.requestAttributes.auth.credentialId",
		},
		"planted in the user agent": {
			edit: func(e map[string]any) { pp(e)["requestMetadata"].(map[string]any)["callerSuppliedUserAgent"] = sa },
		},
		"planted in custom audit metadata": {
			edit: func(e map[string]any) { pp(e)["metadata"] = map[string]any{"audit_context": map[string]any{"key": sa}} },
		},
		"a principal that looks like one": {
			edit: principal(user),
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := &clock{t: written.Add(time.Minute)}
			s := newLoggingServer(t, c)
			s.add(entryJSON(t, tc.edit), written)
			a, err := newClient(t, s).Lookup(context.Background(), upload)
			require.NoError(t, err)
			require.Equal(t, StatusFound, a.Status)
			assert.Equal(t, tc.id, a.WrittenBy.HMACAccessID)
			assert.Equal(t, tc.field, a.WrittenBy.HMACAccessIDField)
		})
	}
}

func TestDataWriteLogging(t *testing.T) {
	now := written.Add(2 * time.Hour)
	for name, tc := range map[string]struct {
		lastWrite time.Time
		entries   []json.RawMessage
		want      Logging
		requests  int
	}{
		"no known write":      {want: LoggingUnknown},
		"too recent to judge": {lastWrite: now.Add(-time.Minute), want: LoggingUnknown},
		"older than kept":     {lastWrite: now.Add(-DefaultRetention), want: LoggingUnknown},
		"logged":              {lastWrite: written, entries: []json.RawMessage{entryJSON(t, at(written.Add(time.Hour)))}, want: LoggingOn, requests: 1},
		"only reads logged":   {lastWrite: written, entries: []json.RawMessage{entryJSON(t, method("storage.objects.list"))}, want: LoggingOff, requests: 1},
		"nothing logged":      {lastWrite: written, want: LoggingOff, requests: 1},
	} {
		t.Run(name, func(t *testing.T) {
			c := &clock{t: now}
			s := newLoggingServer(t, c)
			for _, e := range tc.entries {
				s.add(e, written)
			}
			got, err := newClient(t, s).DataWriteLogging(context.Background(), "uploader-prod", tc.lastWrite)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.Len(t, s.reqs(), tc.requests)
		})
	}
	c := &clock{t: now}
	s := newLoggingServer(t, c)
	s.fail = []int{403}
	got, err := newClient(t, s).DataWriteLogging(context.Background(), "uploader-prod", written)
	assert.ErrorIs(t, err, ErrPermission)
	assert.Equal(t, LoggingUnknown, got, "could not read is not off")
}

func TestNewRefuses(t *testing.T) {
	ctx := context.Background()
	for _, r := range []string{"", "project", "projects/", "projects/Example", "projects/p/locations/global/buckets/b", "projects/example-project/views/v", "folders/123"} {
		_, err := New(ctx, r, WithEndpoint("http://127.0.0.1:1"))
		assert.Error(t, err, r)
	}
	for _, e := range []string{"ftp://x", "http://", "http://user:secret@host", "https://host/?key=secret", "::"} {
		_, err := New(ctx, "projects/example-project", WithEndpoint(e))
		require.Error(t, err, e)
		assert.NotContains(t, err.Error(), "secret", "endpoint errors never echo credentials")
	}
	for _, r := range []string{"projects/example-project", "projects/example.com:example-project", "projects/example-project/locations/global/buckets/tamperguard-audit/views/tamperguard-watched-writes"} {
		_, err := New(ctx, r, WithEndpoint("http://127.0.0.1:1"))
		assert.NoError(t, err, r)
	}
	_, err := New(ctx, "projects/example-project", WithEndpoint("http://127.0.0.1:1"), WithWindow(-1, 0))
	assert.Error(t, err)
	_, err = New(ctx, "projects/example-project", WithEndpoint("http://127.0.0.1:1"), WithRetry(-time.Second))
	assert.Error(t, err)
}

func TestCanceledContext(t *testing.T) {
	c := &clock{t: written.Add(time.Second)}
	s := newLoggingServer(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := newClient(t, s).Lookup(ctx, upload)
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.Canceled))
}

func TestParseEntry(t *testing.T) {
	data, err := json.Marshal(fixture(t, "admin-activity-bucket-update.json"))
	require.NoError(t, err)
	e, err := ParseEntry(data)
	require.NoError(t, err)
	assert.True(t, e.AdminActivity())
	assert.True(t, e.OK)
	assert.Equal(t, "uploader-prod", e.Bucket)
	assert.Equal(t, "gcs_bucket", e.ResourceType)
	assert.Equal(t, "storage.googleapis.com", e.Service)
	assert.Equal(t, "storage.buckets.update", e.Method)
	assert.Equal(t, "projects/_/buckets/uploader-prod", e.ResourceName)
	assert.Equal(t, "mallory@example.com", e.WrittenBy.Principal)
	assert.Equal(t, "198.51.100.23", e.WrittenBy.CallerIP)
	assert.Equal(t, time.Date(2021, 1, 31, 13, 58, 2, 489531000, time.UTC), e.Time)

	e, err = ParseEntry(entryJSON(t, nil))
	require.NoError(t, err)
	assert.False(t, e.AdminActivity())

	for name, bad := range map[string]string{
		"not JSON":      `{"protoPayload":`,
		"no payload":    `{"timestamp":"2021-01-31T13:58:02Z","textPayload":"hi"}`,
		"other payload": `{"timestamp":"2021-01-31T13:58:02Z","protoPayload":{"@type":"type.googleapis.com/google.appengine.logging.v1.RequestLog"}}`,
		"bad time":      `{"timestamp":"soon","protoPayload":{"@type":"type.googleapis.com/google.cloud.audit.AuditLog"}}`,
		"too large":     `{"insertId":"` + strings.Repeat("x", maxEntryBytes) + `"}`,
	} {
		_, err := ParseEntry([]byte(bad))
		assert.Error(t, err, name)
	}
}
