package alerting

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/auditlog"
	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/posture"
	"github.com/tamperguard/tamperguard/internal/slackfake"
)

// writer is the attribution of internal/auditlog/testdata/data-write-create.json: an upload
// with a service account key, delegated through a first-party principal.
func writer() *auditlog.Attribution {
	return &auditlog.Attribution{
		Status: auditlog.StatusFound, Confidence: "exact", Candidates: 1,
		Note: "audit entry storage.objects.create at 2021-01-31T09:59:59.8Z",
		WrittenBy: &auditlog.WrittenBy{
			Principal:         "ci-uploader@example-project.iam.gserviceaccount.com",
			PrincipalSubject:  "serviceAccount:ci-uploader@example-project.iam.gserviceaccount.com",
			CallerIP:          "203.0.113.7",
			UserAgent:         "gcloud/460.0.0 command/gcloud.storage.cp invocation-id/0d1b2c3d,gzip(gfe)",
			ServiceAccountKey: "//iam.googleapis.com/projects/example-project/serviceAccounts/ci-uploader@example-project.iam.gserviceaccount.com/keys/c71e040fb4b71d798ce4baca14e15ab62115aaef",
			Delegation:        []string{"service-123456789012@compute-system.iam.gserviceaccount.com"},
			Method:            "storage.objects.create",
			Time:              tCreated.Add(-200 * time.Millisecond),
			Offset:            "-200ms",
			InsertID:          "1bqh3aue1v2g1",
		},
	}
}

const hmacID = "GOOG1EHMACACCESSIDOFASERVICEACCOUNTKEY0123456789ABCDEFGHIJKL"

// attributionCases are alerts that say who wrote the object (goldenCases includes them).
func attributionCases() map[string]func() (*engine.Decision, RenderOptions) {
	restored := func() *engine.Decision {
		d := tampered()
		d.Action, d.RestoredGeneration, d.Restored = engine.ActionRestored, 1612087208000456, tRestored
		d.Source = "gs://dl.example.org/\"install/uploader.sh\"#1611000000000001"
		return d
	}
	return map[string]func() (*engine.Decision, RenderOptions){
		"attribution_found": func() (*engine.Decision, RenderOptions) {
			d := restored()
			d.WrittenBy = writer()
			return d, RenderOptions{Deployment: "uploader-prod", Version: "v1.3.0"}
		},
		"attribution_found_hmac": func() (*engine.Decision, RenderOptions) {
			d := tampered()
			d.Action = engine.ActionNone // alert-only: STILL SERVED
			a := writer()
			a.Confidence, a.Candidates = "closest of 3", 3
			a.WrittenBy.Principal, a.WrittenBy.PrincipalSubject = "ci-uploader@example-project.iam.gserviceaccount.com", ""
			a.WrittenBy.ServiceAccountKey = "projects/example-project/hmacKeys/" + hmacID
			a.WrittenBy.HMACAccessID, a.WrittenBy.HMACAccessIDField = hmacID, "protoPayload.authenticationInfo.serviceAccountKeyName"
			a.WrittenBy.Delegation = nil
			a.WrittenBy.UserAgent = "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 botocore/2.0"
			d.WrittenBy = a
			return d, RenderOptions{}
		},
		"attribution_pending": func() (*engine.Decision, RenderOptions) {
			d := restored()
			d.WrittenBy = &auditlog.Attribution{Status: auditlog.StatusPending, Note: "not yet in audit logs (entries arrive seconds to minutes after the write)"}
			return d, RenderOptions{}
		},
		"attribution_logs_off": func() (*engine.Decision, RenderOptions) {
			d := &engine.Decision{
				Bucket: "dl.example.org", Object: "install/uploader.sh", Generation: 1612087200000123,
				Verdict: engine.VerdictMissing, ExpectedSHA256: goodSum, Release: "v1.2.0", Signer: signer,
				Action: engine.ActionRestored, RestoredGeneration: 1612087208000456,
				WrittenBy: &auditlog.Attribution{Status: auditlog.StatusLogsOff, Note: "no Data Access (DATA_WRITE) audit entry for gs://dl.example.org since 2021-01-30T10:00:00Z: Data Access logs for Cloud Storage appear off, so the writer cannot be named"},
				Detail: engine.Detail{
					ReleaseInfo: testRelease(),
					Restored:    tRestored,
					Source:      "release v1.2.0 (git https://github.com/example/uploader.git)",
					Kind:        engine.KindArchive,
					EventID:     "4242424243",
				},
			}
			return d, RenderOptions{}
		},
	}
}

// followUp is the decision of the attribution_pending alert once its writer was found.
func followUp() *engine.Decision {
	d, _ := attributionCases()["attribution_pending"]()
	d.WrittenBy = writer()
	d.Incident = "dl.example.org/install/uploader.sh#1612087200000123"
	return d
}

func finding(check string, status posture.Status) posture.Finding {
	return posture.Finding{Bucket: "dl.example.org", Check: check, Status: status, Thread: "posture/dl.example.org/" + check}
}

// goldenMessages are the messages that are not an object's alert: the attribution follow-up
// and the posture findings.
func goldenMessages() map[string]func() Message {
	return map[string]func() Message{
		"attribution_followup": func() Message { return RenderFollowUp(followUp(), RenderOptions{}) },
		"attribution_followup_webhook": func() Message {
			return RenderFollowUp(followUp(), RenderOptions{NoThreads: true, Deployment: "uploader-prod", Version: "v1.3.0"})
		},
		"posture_versioning_down": func() Message {
			f := finding(posture.CheckVersioning, posture.StatusFailing)
			f.Observed, f.Baseline, f.New = "disabled", "enabled", true
			f.Detail = "object versioning is off: an overwritten or deleted object leaves no noncurrent generation to restore from or keep as evidence"
			return RenderPosture(f, RenderOptions{Deployment: "uploader-prod", Version: "v1.3.0"})
		},
		"posture_versioning_repaired": func() Message {
			f := finding(posture.CheckVersioning, posture.StatusChanged)
			f.Observed, f.Baseline, f.New, f.Repaired = "enabled", "enabled", true, true
			f.Detail = "object versioning is off: an overwritten or deleted object leaves no noncurrent generation to restore from or keep as evidence; repaired by tamperguard"
			f.Repair = "versioning re-enabled and read back"
			return RenderPosture(f, RenderOptions{})
		},
		"posture_versioning_recovered": func() Message {
			f := finding(posture.CheckVersioning, posture.StatusOK)
			f.Observed, f.Baseline, f.New = "enabled", "enabled", true
			f.Detail = "object versioning: enabled"
			return RenderPosture(f, RenderOptions{})
		},
		"posture_writers_changed": func() Message {
			f := finding(posture.CheckWriters, posture.StatusChanged)
			f.Baseline = "roles/storage.objectAdmin serviceAccount:tamperguard-runtime@example-project.iam.gserviceaccount.com"
			f.Observed = f.Baseline + "\nroles/storage.objectCreator user:mallory@example.com"
			f.New = true
			f.Detail = "now able to write objects: roles/storage.objectCreator user:mallory@example.com"
			return RenderPosture(f, RenderOptions{})
		},
		"posture_notification_down": func() Message {
			f := finding(posture.CheckNotification, posture.StatusFailing)
			f.Baseline = `topic=projects/example-project/topics/tamperguard-events events=OBJECT_ARCHIVE,OBJECT_DELETE,OBJECT_FINALIZE,OBJECT_METADATA_UPDATE payload=JSON_API_V1 prefix=""`
			f.Observed, f.New = "none", true
			f.Detail = "the notification config that feeds tamperguard was removed: want " + f.Baseline + ", have none (tamperguard hears no events until the next audit)"
			f.Repair = "re-creating the notification config failed: googleapi: Error 403: tamperguard-runtime@example-project.iam.gserviceaccount.com does not have storage.buckets.update access"
			return RenderPosture(f, RenderOptions{})
		},
		"posture_hmac_down": func() Message {
			f := finding(posture.CheckHMACKeys, posture.StatusFailing)
			f.Baseline, f.Observed, f.New = "none", hmacID+" ci-uploader@example-project.iam.gserviceaccount.com", true
			f.Detail = "1 active HMAC key(s) for service accounts of the project: " + f.Observed + " (a long-lived storage key of this kind rewrote the Codecov uploader; deactivate unused keys, or deny HMAC-signed requests with storage.restrictAuthTypes)"
			return RenderPosture(f, RenderOptions{})
		},
		"posture_check_error": func() Message {
			f := finding(posture.CheckWriters, posture.StatusFailing)
			f.Err = errors.New("could not read the bucket's IAM policy: googleapi: Error 403: tamperguard-runtime@example-project.iam.gserviceaccount.com does not have storage.buckets.getIamPolicy access to the Google Cloud Storage bucket., forbidden")
			f.Detail, f.New = f.Err.Error(), true
			return RenderPosture(f, RenderOptions{})
		},
	}
}

func TestGoldenMessages(t *testing.T) {
	for name, mk := range goldenMessages() {
		t.Run(name, func(t *testing.T) {
			m := mk()
			blocks := goldenJSON(t, m)
			text := []byte(Text(m))
			jsonPath := filepath.Join(goldenDir, name+".json")
			textPath := filepath.Join(goldenDir, name+".txt")
			if *update {
				require.NoError(t, os.WriteFile(jsonPath, blocks, 0o644))
				require.NoError(t, os.WriteFile(textPath, text, 0o644))
			}
			wantBlocks, err := os.ReadFile(jsonPath)
			require.NoError(t, err, "run go test ./alerting -run TestGolden -update")
			wantText, err := os.ReadFile(textPath)
			require.NoError(t, err)
			assert.Equal(t, string(wantBlocks), string(blocks))
			assert.Equal(t, string(wantText), string(text))
			assertWithinLimits(t, m)
		})
	}
}

// The alert says who wrote the object right under its title: principal, key, delegation,
// where from, how, and how sure; the fallback text (Slack's notification) names the
// principal too.
func TestAlertNamesTheWriter(t *testing.T) {
	d, o := attributionCases()["attribution_found"]()
	m := Render(d, o)
	require.GreaterOrEqual(t, len(m.Blocks), 3)
	raw, err := json.Marshal(m.Blocks[1])
	require.NoError(t, err)
	section := string(raw)
	for _, want := range []string{
		"*Tampered object restored*\\n*Written by* `ci-uploader@" + zwsp + "example-project.iam.gserviceaccount.com`",
		"service account key `c71e040fb4b71d798ce4baca14e15ab62115aaef`",
		"delegated by `service-123456789012@" + zwsp + "compute-system.iam.gserviceaccount.com`",
		"from `203.0.113.7`", "`storage.objects.create` at 2021-01-31 09:59:59 UTC", "exact",
	} {
		assert.Contains(t, section, want, "the block right under the title")
	}
	assert.Contains(t, m.Fallback, "Written by: `ci-uploader@"+zwsp+"example-project.iam.gserviceaccount.com`")
	assert.Contains(t, Text(m), "\nWritten by: ci-uploader@example-project.iam.gserviceaccount.com")

	d, o = attributionCases()["attribution_found_hmac"]()
	text := Text(Render(d, o))
	assert.Contains(t, text, "HMAC key "+hmacID)
	assert.Contains(t, text, "closest of 3: the nearest in time of 3 audit entries")

	for status, want := range map[auditlog.Status]string{
		auditlog.StatusPending:     "not yet in audit logs — will follow in this thread",
		auditlog.StatusLogsOff:     "Data Access audit logs for Cloud Storage appear off: turn them on (terraform: storage_data_write_audit_logs)",
		auditlog.StatusNotLogged:   "this write was not logged",
		auditlog.StatusUnavailable: "the audit logs could not be read",
		auditlog.StatusOff:         "attribution is off",
	} {
		d := tampered()
		d.WrittenBy = &auditlog.Attribution{Status: status, Note: "a note"}
		assert.Contains(t, Text(Render(d, RenderOptions{})), want, string(status))
	}
	d = tampered()
	d.WrittenBy = &auditlog.Attribution{Status: auditlog.StatusPending}
	assert.Contains(t, Text(Render(d, RenderOptions{NoThreads: true})), "will follow in a separate message", "a webhook cannot thread")
	assert.NotContains(t, Text(Render(tampered(), RenderOptions{})), "Written by", "nobody looked: nothing said")
}

// Every value of an audit entry is text the writer chose in part: a hostile one stays inert.
func TestHostileWriterIsInert(t *testing.T) {
	d := tampered()
	a := writer()
	hostile := "<!channel> `x` *bold* <https://evil.example|click> @here \u202e"
	a.WrittenBy.Principal, a.WrittenBy.UserAgent, a.WrittenBy.CallerIP = hostile, hostile, hostile
	a.WrittenBy.Delegation = []string{hostile, hostile, hostile, hostile, hostile, hostile}
	a.Confidence = hostile
	d.WrittenBy = a
	m := Render(d, RenderOptions{})
	for _, tx := range slackTexts(t, m) {
		assertInert(t, tx.text, tx.plain)
	}
	assert.Contains(t, Text(m), "and 2 more", "delegation is bounded")
	f := RenderFollowUp(d, RenderOptions{})
	for _, tx := range slackTexts(t, f) {
		assertInert(t, tx.text, tx.plain)
	}
}

func TestPostureStates(t *testing.T) {
	for name, want := range map[string][2]string{
		"posture_versioning_down":      {"🚨 GUARD DOWN · gs://dl.example.org · Object versioning", "Object versioning is off"},
		"posture_versioning_repaired":  {"✅ Repaired · gs://dl.example.org · Object versioning", "Object versioning was turned off: tamperguard turned it back on"},
		"posture_versioning_recovered": {"✅ Recovered · gs://dl.example.org · Object versioning", "Object versioning is back to its baseline"},
		"posture_writers_changed":      {"⚠️ Changed · gs://dl.example.org · Who can write objects", "Who can write objects changed"},
		"posture_check_error":          {"🚨 GUARD DOWN · gs://dl.example.org · Who can write objects", "Who can write objects: the check could not be made"},
	} {
		m := goldenMessages()[name]()
		assert.Equal(t, want[0], m.Header, name)
		assert.Equal(t, want[1], m.Title, name)
	}
}

// FuzzRenderPosture: a finding whose values an attacker chose (member names, topics,
// prefixes, error texts) renders inert and within Slack's limits.
func FuzzRenderPosture(f *testing.F) {
	f.Add("roles/storage.objectCreator user:<!channel>@example.com", "`x`\n*y*", "<https://evil.example|x>")
	f.Add(strings.Repeat("a\n", 2000), "\u202e@here", strings.Repeat("é", 3000))
	f.Fuzz(func(t *testing.T, observed, detail, errText string) {
		if len(observed)+len(detail)+len(errText) > 1<<16 {
			return
		}
		for name, mk := range goldenMessages() {
			_ = mk
			if !strings.HasPrefix(name, "posture_") {
				continue
			}
			for _, st := range []posture.Status{posture.StatusFailing, posture.StatusChanged, posture.StatusOK} {
				fd := finding(posture.CheckWriters, st)
				fd.Observed, fd.Baseline, fd.Detail, fd.Repair = observed, detail, detail, errText
				if errText != "" {
					fd.Err = errors.New(errText)
				}
				m := RenderPosture(fd, RenderOptions{})
				assertWithinLimits(t, m)
				for _, tx := range slackTexts(t, m) {
					assertInert(t, tx.text, tx.plain)
				}
				for _, b := range m.Actions {
					u, err := url.Parse(b.URL)
					if err != nil || (u.Host != "console.cloud.google.com" && u.Host != "github.com") {
						t.Fatalf("button %q links to %q", b.Text, b.URL)
					}
				}
			}
			break
		}
	})
}

func newSlackfake(t *testing.T, clock *fakeClock) (*slackfake.Server, *Slack, *logBuffer) {
	t.Helper()
	srv := slackfake.New(t, slackfake.Options{Token: testToken})
	log, buf := newLog()
	s, err := NewSlack(Options{Token: testToken, Channel: testChannel, APIURL: srv.Endpoints().API, Logger: log, Now: clock.Now, Sleep: clock.Sleep})
	require.NoError(t, err)
	return srv, s, buf
}

// A writer found after the alert is posted as a reply in the object's alert thread, without
// the incident's metadata (so that AlertSent never takes it for the alert).
func TestFollowUpRepliesInTheAlertThread(t *testing.T) {
	clock := newClock()
	srv, s, _ := newSlackfake(t, clock)
	d, _ := attributionCases()["attribution_pending"]()
	d.Incident = "dl.example.org/install/uploader.sh#1612087200000123"
	require.NoError(t, s.Notify(context.Background(), d))
	msgs := srv.Messages()
	require.Len(t, msgs, 1)
	assert.Contains(t, string(msgs[0].Blocks), "not yet in audit logs — will follow in this thread")

	clock.Advance(2 * time.Minute)
	require.NoError(t, s.FollowUp(context.Background(), followUp()))
	msgs = srv.Messages()
	require.Len(t, msgs, 2)
	assert.Equal(t, msgs[0].TS, msgs[1].ThreadTS, "a reply in the alert's thread")
	assert.Nil(t, msgs[1].Metadata)
	assert.Contains(t, string(msgs[1].Blocks), "c71e040fb4b71d798ce4baca14e15ab62115aaef")
	assert.Contains(t, msgs[1].Text, "Who made the tampered write: found in Cloud Audit Logs. Written by: `ci-uploader@"+zwsp+"example-project.iam.gserviceaccount.com`")

	sent, err := s.AlertSent(context.Background(), "dl.example.org/install/uploader.sh#other", clock.Now().Add(-time.Hour))
	require.NoError(t, err)
	assert.False(t, sent, "the follow-up is not an alert")

	// Without a thread (another instance alerted, memory threads): a message of its own.
	s2, err := NewSlack(Options{Token: testToken, Channel: testChannel, APIURL: srv.Endpoints().API, Now: clock.Now, Sleep: clock.Sleep})
	require.NoError(t, err)
	require.NoError(t, s2.FollowUp(context.Background(), followUp()))
	msgs = srv.Messages()
	require.Len(t, msgs, 3)
	assert.Empty(t, msgs[2].ThreadTS)
}

// Through a webhook the follow-up is a message of its own that says what it follows up.
func TestFollowUpThroughAWebhook(t *testing.T) {
	srv := slackfake.New(t, slackfake.Options{})
	s, err := NewSlack(Options{WebhookURL: srv.Endpoints().Webhook})
	require.NoError(t, err)
	d, _ := attributionCases()["attribution_pending"]()
	require.NoError(t, s.Notify(context.Background(), d))
	require.NoError(t, s.FollowUp(context.Background(), followUp()))
	msgs := srv.Messages()
	require.Len(t, msgs, 2)
	assert.Contains(t, string(msgs[0].Blocks), "will follow in a separate message")
	assert.Contains(t, string(msgs[1].Blocks), "This follows up on the alert about generation 1612087200000123")
}

// Each posture alert of one check goes into that check's thread, however much later: the
// recovery is a reply, also shown in the channel. Another check has a thread of its own.
func TestPostureAlertsThreadPerCheck(t *testing.T) {
	clock := newClock()
	srv, s, _ := newSlackfake(t, clock)
	down := finding(posture.CheckVersioning, posture.StatusFailing)
	down.Observed, down.Baseline, down.New = "disabled", "enabled", true
	require.NoError(t, s.NotifyPosture(context.Background(), down))
	clock.Advance(72 * time.Hour)
	back := finding(posture.CheckVersioning, posture.StatusOK)
	back.Observed, back.Baseline, back.New = "enabled", "enabled", true
	require.NoError(t, s.NotifyPosture(context.Background(), back))
	writers := finding(posture.CheckWriters, posture.StatusChanged)
	writers.New = true
	require.NoError(t, s.NotifyPosture(context.Background(), writers))

	msgs := srv.Messages()
	require.Len(t, msgs, 3)
	assert.Empty(t, msgs[0].ThreadTS)
	assert.Contains(t, msgs[0].Text, "GUARD DOWN")
	assert.Equal(t, msgs[0].TS, msgs[1].ThreadTS)
	assert.True(t, msgs[1].ReplyBroadcast, "a recovery is seen in the channel too")
	assert.Contains(t, msgs[1].Text, "Recovered")
	assert.Empty(t, msgs[2].ThreadTS, "another check: another thread")

	// The parent is gone: the next alert starts a new thread.
	require.True(t, srv.Delete(msgs[0].Channel, msgs[0].TS))
	require.NoError(t, s.NotifyPosture(context.Background(), down))
	msgs = srv.Messages()
	assert.Empty(t, msgs[len(msgs)-1].ThreadTS)
}

// A posture alert that Slack does not take is logged with its full text.
func TestPostureAlertNotDeliveredIsLogged(t *testing.T) {
	clock := newClock()
	srv := slackfake.New(t, slackfake.Options{Token: testToken, Channels: []string{"C0OTHER"}})
	log, buf := newLog()
	s, err := NewSlack(Options{Token: testToken, Channel: testChannel, APIURL: srv.Endpoints().API, Logger: log, Now: clock.Now, Sleep: clock.Sleep})
	require.NoError(t, err)
	down := finding(posture.CheckVersioning, posture.StatusFailing)
	err = s.NotifyPosture(context.Background(), down)
	require.ErrorIs(t, err, ErrNotDelivered)
	assert.Contains(t, buf.String(), "posture alert not delivered to Slack")
	assert.Contains(t, buf.String(), "Object versioning is off")
}
