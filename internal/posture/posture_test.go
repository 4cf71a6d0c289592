package posture

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func allOK() map[string]Status {
	out := map[string]Status{}
	for _, c := range Checks {
		out[c] = StatusOK
	}
	return out
}

func TestHealthyBucket(t *testing.T) {
	e := newEnv(t)
	st := NewMemoryStore()
	k := e.checker(st, nil)

	r := e.check(k)
	assert.Equal(t, allOK(), statuses(r))
	assert.Empty(t, newOnes(r), "the first observation is the baseline: nothing to alert")
	assert.False(t, r.Failing())
	assert.Equal(t, "enabled", finding(t, r, CheckVersioning).Observed)
	assert.Equal(t, "retention 604800s", finding(t, r, CheckSoftDelete).Observed)
	assert.Equal(t, "enforced", finding(t, r, CheckPAP).Observed)
	assert.Equal(t, "none", finding(t, r, CheckRetention).Observed)
	assert.Equal(t, "none", finding(t, r, CheckHMACKeys).Observed, "an inactive key does not count")
	assert.Equal(t,
		"projects/example-project/roles/tamperguard_objectGuard serviceAccount:tamperguard-runtime@example-project.iam.gserviceaccount.com\n"+
			"roles/storage.legacyBucketOwner projectEditor:example-project\n"+
			"roles/storage.legacyBucketOwner projectOwner:example-project\n"+
			`roles/storage.objectCreator serviceAccount:release-ci@example-project.iam.gserviceaccount.com if "release objects only"`,
		finding(t, r, CheckWriters).Observed, "write-capable roles only: readers, including the public reader, are not listed")
	assert.Equal(t, `topic=projects/example-project/topics/tamperguard-events events=OBJECT_ARCHIVE,OBJECT_DELETE,OBJECT_FINALIZE,OBJECT_METADATA_UPDATE payload=JSON_API_V1 prefix=""`,
		finding(t, r, CheckNotification).Observed)
	assert.Equal(t, "posture/uploader-prod/versioning", finding(t, r, CheckVersioning).Thread)

	r = e.check(k)
	assert.Equal(t, allOK(), statuses(r))
	assert.Empty(t, newOnes(r))
	assert.Zero(t, e.count("PATCH"), "nothing repaired without posture.repair")
}

// TestVersioningDisabled: versioning turned off in the fake is failing on every run, new
// (an alert) only on the first; turning it on again is a new ok (a reply in the thread).
func TestVersioningDisabled(t *testing.T) {
	e := newEnv(t)
	k := e.checker(NewMemoryStore(), nil)
	e.check(k)

	e.setVersioning(false)
	r := e.check(k)
	f := finding(t, r, CheckVersioning)
	assert.Equal(t, StatusFailing, f.Status)
	assert.True(t, f.New)
	assert.Equal(t, "disabled", f.Observed)
	assert.Equal(t, "enabled", f.Baseline)
	assert.Contains(t, f.Detail, "object versioning is off")
	assert.True(t, r.Failing())
	assert.Equal(t, []string{CheckVersioning}, newOnes(r))

	r = e.check(k)
	assert.Equal(t, StatusFailing, finding(t, r, CheckVersioning).Status)
	assert.Empty(t, newOnes(r), "one alert per change, not one per audit")
	assert.True(t, r.Failing(), "the audit keeps failing while versioning is off")

	e.setVersioning(true)
	r = e.check(k)
	f = finding(t, r, CheckVersioning)
	assert.Equal(t, StatusOK, f.Status)
	assert.True(t, f.New, "the recovery is reported once")
	assert.False(t, r.Failing())
}

func TestVersioningRepair(t *testing.T) {
	e := newEnv(t)
	k := e.checker(NewMemoryStore(), func(c *Config) { c.Repair = true })
	e.check(k)

	e.setVersioning(false)
	e.reset()
	r := e.check(k)
	f := finding(t, r, CheckVersioning)
	assert.Equal(t, StatusChanged, f.Status, "repaired: the bucket is guarded again, and the change is reported")
	assert.True(t, f.New)
	assert.Equal(t, "versioning re-enabled and read back", f.Repair)
	assert.True(t, f.Repaired)
	assert.Contains(t, f.Detail, "object versioning is off")
	assert.Contains(t, f.Detail, "repaired by tamperguard")
	assert.Equal(t, "enabled", f.Observed)
	assert.False(t, r.Failing())
	assert.Equal(t, 1, e.count("PATCH /storage/v1/b/uploader-prod?"))
	e.set(func(e *env) {
		for _, req := range e.requests {
			if strings.HasPrefix(req, "PATCH") {
				assert.Contains(t, req, "ifMetagenerationMatch=", "the repair is conditional on the bucket as observed")
			}
		}
	})
	attrs, err := e.client.Bucket(bucket).Attrs(context.Background())
	require.NoError(t, err)
	assert.True(t, attrs.VersioningEnabled)

	r = e.check(k)
	assert.Equal(t, StatusOK, finding(t, r, CheckVersioning).Status)
	assert.Empty(t, newOnes(r))
	assert.Equal(t, 1, e.count("PATCH"), "nothing more to repair")
}

// TestRepairRetry: a repair that fails is claimed for RepairClaim, then tried again by a
// later run; it is not retried by every run in between.
func TestRepairRetry(t *testing.T) {
	e := newEnv(t)
	clk := &fakeClock{t: time.Date(2021, 1, 31, 14, 0, 0, 0, time.UTC)}
	k := e.checker(NewMemoryStore(), func(c *Config) { c.Repair = true; c.Now = clk.now })
	e.check(k)

	e.setVersioning(false)
	e.reset()
	e.failNext("PATCH", "/b/"+bucket, 403)
	r := e.check(k)
	f := finding(t, r, CheckVersioning)
	assert.Equal(t, StatusFailing, f.Status)
	assert.Contains(t, f.Repair, "re-enabling versioning failed")
	assert.Contains(t, f.Repair, "403")
	assert.Equal(t, 1, e.count("PATCH"))

	clk.advance(time.Minute)
	r = e.check(k)
	assert.Equal(t, StatusFailing, finding(t, r, CheckVersioning).Status)
	assert.Empty(t, finding(t, r, CheckVersioning).Repair)
	assert.Equal(t, 1, e.count("PATCH"), "within the claim: not tried again")

	clk.advance(2 * time.Minute)
	r = e.check(k)
	f = finding(t, r, CheckVersioning)
	assert.Equal(t, StatusChanged, f.Status)
	assert.Equal(t, "versioning re-enabled and read back", f.Repair)
	assert.False(t, f.New, "already alerted when it failed; the repair result is in Repair")
	assert.Equal(t, 2, e.count("PATCH"))
}

// TestRepairThatDoesNotHold: the update is accepted but versioning reads back off: the
// finding stays failing and says so.
func TestRepairThatDoesNotHold(t *testing.T) {
	e := newEnv(t)
	k := e.checker(NewMemoryStore(), func(c *Config) { c.Repair = true })
	e.check(k)
	e.setVersioning(false)
	e.failNext("PATCH", "/b/"+bucket, 200)
	r := e.check(k)
	f := finding(t, r, CheckVersioning)
	assert.Equal(t, StatusFailing, f.Status)
	assert.Contains(t, f.Repair, "repair did not hold: object versioning is off")
	assert.True(t, r.Failing())
}

func TestNotificationRemovedAndRepaired(t *testing.T) {
	e := newEnv(t)
	st := NewMemoryStore()
	k := e.checker(st, nil)
	e.check(k)

	e.replaceNotification(nil)
	r := e.check(k)
	f := finding(t, r, CheckNotification)
	assert.Equal(t, StatusFailing, f.Status)
	assert.True(t, f.New)
	assert.Contains(t, f.Detail, "was removed")
	assert.Contains(t, f.Detail, "have none")
	assert.Equal(t, "none", f.Observed)

	// The same bucket, now checked with posture.repair: the config is put back.
	k = e.checker(st, func(c *Config) { c.Repair = true })
	r = e.check(k)
	f = finding(t, r, CheckNotification)
	assert.Equal(t, StatusChanged, f.Status)
	assert.Contains(t, f.Repair, "notification config re-created")
	ns := e.notifications()
	require.Len(t, ns, 1)
	for _, n := range ns {
		assert.Equal(t, project, n.TopicProjectID)
		assert.Equal(t, topic, n.TopicID)
		assert.ElementsMatch(t, expected.EventTypes, n.EventTypes)
		assert.Equal(t, storage.JSONPayload, n.PayloadFormat)
		assert.Empty(t, n.ObjectNamePrefix)
	}
	r = e.check(k)
	assert.Equal(t, StatusOK, finding(t, r, CheckNotification).Status)
	assert.Len(t, e.notifications(), 1, "not re-created twice")
}

func TestNotificationNarrowedOrBroadened(t *testing.T) {
	without := func(drop string) []string {
		var out []string
		for _, ev := range expected.EventTypes {
			if ev != drop {
				out = append(out, ev)
			}
		}
		return out
	}
	for name, tc := range map[string]struct {
		n      *storage.Notification
		status Status
		detail string
	}{
		"archive dropped":    {&storage.Notification{TopicProjectID: project, TopicID: topic, EventTypes: without(storage.ObjectArchiveEvent), PayloadFormat: storage.JSONPayload}, StatusFailing, "was narrowed"},
		"prefix added":       {&storage.Notification{TopicProjectID: project, TopicID: topic, EventTypes: expected.EventTypes, PayloadFormat: storage.JSONPayload, ObjectNamePrefix: "unused/"}, StatusFailing, "was narrowed"},
		"payload dropped":    {&storage.Notification{TopicProjectID: project, TopicID: topic, EventTypes: expected.EventTypes, PayloadFormat: storage.NoPayload}, StatusFailing, "was narrowed"},
		"other topic":        {&storage.Notification{TopicProjectID: project, TopicID: "attacker-sink", EventTypes: expected.EventTypes, PayloadFormat: storage.JSONPayload}, StatusFailing, "was removed"},
		"other project":      {&storage.Notification{TopicProjectID: "attacker-project", TopicID: topic, EventTypes: expected.EventTypes, PayloadFormat: storage.JSONPayload}, StatusFailing, "was removed"},
		"all event types":    {&storage.Notification{TopicProjectID: project, TopicID: topic, PayloadFormat: storage.JSONPayload}, StatusChanged, "notification configs added"},
		"same, re-created":   {&storage.Notification{TopicProjectID: project, TopicID: topic, EventTypes: expected.EventTypes, PayloadFormat: storage.JSONPayload}, StatusOK, "notification configs: "},
		"custom attributes ": {&storage.Notification{TopicProjectID: project, TopicID: topic, EventTypes: expected.EventTypes, PayloadFormat: storage.JSONPayload, CustomAttributes: map[string]string{"a": "b"}}, StatusOK, ""},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			k := e.checker(NewMemoryStore(), nil)
			e.check(k)
			e.replaceNotification(tc.n)
			r := e.check(k)
			f := finding(t, r, CheckNotification)
			assert.Equal(t, tc.status, f.Status, f.Detail)
			assert.Contains(t, f.Detail, tc.detail)
			assert.Equal(t, tc.status != StatusOK, f.New)
			if tc.status == StatusChanged {
				r = e.check(k)
				assert.Equal(t, StatusOK, finding(t, r, CheckNotification).Status, "a harmless change is accepted after being reported once")
			}
		})
	}
}

// TestNotificationBaselineWithoutExpected: without the expected config, the baseline's
// configs are what must stay, and nothing can be re-created.
func TestNotificationBaselineWithoutExpected(t *testing.T) {
	e := newEnv(t)
	k := e.checker(NewMemoryStore(), func(c *Config) { c.Notification = nil; c.Repair = true })
	e.check(k)
	e.replaceNotification(&storage.Notification{TopicProjectID: project, TopicID: topic, EventTypes: []string{storage.ObjectFinalizeEvent}, PayloadFormat: storage.JSONPayload})
	r := e.check(k)
	f := finding(t, r, CheckNotification)
	assert.Equal(t, StatusFailing, f.Status)
	assert.Contains(t, f.Detail, "was narrowed")
	assert.Equal(t, "cannot re-create the notification config: the expected one is not configured", f.Repair)
	assert.Len(t, e.notifications(), 1)
}

func TestObjectWriters(t *testing.T) {
	for name, tc := range map[string]struct {
		role, member string
		status       Status
		detail       string
	}{
		"public reader":                  {"roles/storage.objectViewer", "allUsers", StatusOK, ""},
		"public writer":                  {"roles/storage.objectCreator", "allUsers", StatusFailing, "anyone can write objects: roles/storage.objectCreator allUsers"},
		"any Google account writes":      {"roles/storage.legacyBucketWriter", "allAuthenticatedUsers", StatusFailing, "anyone can write objects"},
		"a new writer":                   {"roles/storage.objectAdmin", "serviceAccount:new-ci@example-project.iam.gserviceaccount.com", StatusChanged, "now able to write objects: roles/storage.objectAdmin serviceAccount:new-ci@example-project.iam.gserviceaccount.com"},
		"a custom role counts":           {"projects/example-project/roles/uploader", "user:mallory@example.com", StatusChanged, "now able to write objects: projects/example-project/roles/uploader user:mallory@example.com"},
		"a public custom role fails":     {"organizations/123/roles/x", "allUsers", StatusFailing, "anyone can write objects"},
		"object user":                    {"roles/storage.objectUser", "group:ops@example.com", StatusChanged, "now able to write"},
		"convenience value of the owner": {"roles/storage.legacyObjectOwner", "projectOwner:example-project", StatusChanged, "now able to write"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			k := e.checker(NewMemoryStore(), nil)
			e.check(k)
			e.addBinding(tc.role, tc.member)
			r := e.check(k)
			f := finding(t, r, CheckWriters)
			assert.Equal(t, tc.status, f.Status, f.Detail)
			assert.Contains(t, f.Detail, tc.detail)
			assert.Equal(t, tc.status != StatusOK, f.New)
			r = e.check(k)
			f = finding(t, r, CheckWriters)
			assert.False(t, f.New, "reported once")
			if tc.status == StatusFailing {
				assert.Equal(t, StatusFailing, f.Status, "a public writer keeps failing")
			} else {
				assert.Equal(t, StatusOK, f.Status)
			}
		})
	}
}

// TestHostileMember: a member name with a newline (an odd endpoint, or a future API) stays
// one quoted field of one line: it cannot forge an allUsers grant.
func TestHostileMember(t *testing.T) {
	e := newEnv(t)
	k := e.checker(NewMemoryStore(), nil)
	e.check(k)
	e.addBinding("roles/storage.objectCreator", "user:a@example.com\nroles/storage.admin allUsers")
	r := e.check(k)
	f := finding(t, r, CheckWriters)
	assert.Equal(t, StatusChanged, f.Status, f.Detail)
	assert.Contains(t, f.Observed, `roles/storage.objectCreator "user:a@example.com\nroles/storage.admin allUsers"`)
}

func TestBucketSettings(t *testing.T) {
	for name, tc := range map[string]struct {
		edit           func(extra map[string]any)
		check          string
		status         Status
		detail         string
		acceptedAfter1 bool
	}{
		"soft delete off":     {func(x map[string]any) { delete(x, "softDeletePolicy") }, CheckSoftDelete, StatusFailing, "soft delete is off", false},
		"soft delete zero":    {func(x map[string]any) { x["softDeletePolicy"] = map[string]any{"retentionDurationSeconds": "0"} }, CheckSoftDelete, StatusFailing, "soft delete is off", false},
		"soft delete shorter": {func(x map[string]any) { x["softDeletePolicy"] = map[string]any{"retentionDurationSeconds": "86400"} }, CheckSoftDelete, StatusChanged, "soft delete shortened from retention 604800s to retention 86400s", true},
		"soft delete longer":  {func(x map[string]any) { x["softDeletePolicy"] = map[string]any{"retentionDurationSeconds": "7776000"} }, CheckSoftDelete, StatusChanged, "soft delete changed from retention 604800s to retention 7776000s", true},
		"uniform access off": {func(x map[string]any) {
			x["iamConfiguration"].(map[string]any)["uniformBucketLevelAccess"] = map[string]any{"enabled": false}
		}, CheckUniform, StatusFailing, "uniform bucket-level access is off", false},
		"public access opened": {func(x map[string]any) { x["iamConfiguration"].(map[string]any)["publicAccessPrevention"] = "inherited" }, CheckPAP, StatusFailing, "public access prevention was turned off (inherited)", false},
		"retention added": {func(x map[string]any) {
			x["retentionPolicy"] = map[string]any{"retentionPeriod": "2592000", "effectiveTime": "2021-01-31T13:50:00.000Z", "isLocked": false}
		}, CheckRetention, StatusChanged, "retention policy changed from none to period 2592000s", true},
		"retention locked": {func(x map[string]any) {
			x["retentionPolicy"] = map[string]any{"retentionPeriod": "1", "effectiveTime": "2021-01-31T13:50:00.000Z", "isLocked": true}
		}, CheckRetention, StatusChanged, "period 1s locked", true},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			k := e.checker(NewMemoryStore(), nil)
			e.check(k)
			e.set(func(e *env) { tc.edit(e.extra) })
			r := e.check(k)
			f := finding(t, r, tc.check)
			assert.Equal(t, tc.status, f.Status, f.Detail)
			assert.Contains(t, f.Detail, tc.detail)
			assert.True(t, f.New)
			assert.Equal(t, []string{tc.check}, newOnes(r), "only this check changed")
			r = e.check(k)
			f = finding(t, r, tc.check)
			assert.False(t, f.New)
			if tc.acceptedAfter1 {
				assert.Equal(t, StatusOK, f.Status)
			} else {
				assert.Equal(t, StatusFailing, f.Status)
			}
		})
	}
}

// TestInheritedPublicAccessBaseline: a bucket deployed with public_read keeps
// "inherited"; that is its baseline, not a failure.
func TestInheritedPublicAccessBaseline(t *testing.T) {
	e := newEnv(t)
	e.set(func(e *env) { e.extra["iamConfiguration"].(map[string]any)["publicAccessPrevention"] = "inherited" })
	k := e.checker(NewMemoryStore(), nil)
	r := e.check(k)
	assert.Equal(t, StatusOK, finding(t, r, CheckPAP).Status)
	e.set(func(e *env) { e.extra["iamConfiguration"].(map[string]any)["publicAccessPrevention"] = "enforced" })
	r = e.check(k)
	assert.Equal(t, StatusChanged, finding(t, r, CheckPAP).Status)
}

func TestHMACKeys(t *testing.T) {
	const newKey = "GOOG1ENEWKEYTESTONLYNOTAREALACCESSIDXXXXXXXXXXXXXXXXXXXXXXXXXX"
	const okKey = "GOOG1EALLOWEDTESTONLYNOTAREALACCESSIDXXXXXXXXXXXXXXXXXXXXXXXXX"
	e := newEnv(t)
	e.addHMACKey(okKey, "gcsfuse@example-project.iam.gserviceaccount.com", "ACTIVE")
	e.addHMACKey("GOOG1EDELETEDTESTONLYNOTAREALACCESSIDXXXXXXXXXXXXXXXXXXXXXXXXX", "old@example-project.iam.gserviceaccount.com", "DELETED")
	k := e.checker(NewMemoryStore(), func(c *Config) { c.AllowedHMACAccessIDs = []string{okKey} })
	r := e.check(k)
	f := finding(t, r, CheckHMACKeys)
	assert.Equal(t, StatusOK, f.Status, "an allowed key, an inactive one and a deleted one: %s", f.Detail)
	assert.Equal(t, okKey+" gcsfuse@example-project.iam.gserviceaccount.com (allowed)", f.Observed)

	e.addHMACKey(newKey, "release-ci@example-project.iam.gserviceaccount.com", "ACTIVE")
	r = e.check(k)
	f = finding(t, r, CheckHMACKeys)
	assert.Equal(t, StatusFailing, f.Status)
	assert.True(t, f.New)
	assert.Contains(t, f.Detail, "1 active HMAC key(s) for service accounts of the project: "+newKey+" release-ci@example-project.iam.gserviceaccount.com")
	assert.Contains(t, f.Detail, "Codecov")
	r = e.check(k)
	assert.False(t, finding(t, r, CheckHMACKeys).New)

	// Present from the first observation: failing and alerted at once.
	k2 := e.checker(NewMemoryStore(), nil)
	r = e.check(k2)
	f = finding(t, r, CheckHMACKeys)
	assert.Equal(t, StatusFailing, f.Status)
	assert.True(t, f.New, "a failing first observation is alerted")
	assert.Contains(t, f.Detail, "2 active HMAC key(s)")
}

func TestReadErrors(t *testing.T) {
	e := newEnv(t)
	k := e.checker(NewMemoryStore(), nil)
	e.check(k)

	// Not allowed to read the IAM policy: failing, alerted once.
	e.failNext("GET", "/b/"+bucket+"/iam", 403)
	r := e.check(k)
	f := finding(t, r, CheckWriters)
	assert.Equal(t, StatusFailing, f.Status)
	require.Error(t, f.Err)
	assert.Contains(t, f.Detail, "could not read the bucket's IAM policy")
	assert.True(t, f.New)
	assert.True(t, r.Failing())
	e.failNext("GET", "/b/"+bucket+"/iam", 403)
	r = e.check(k)
	assert.False(t, finding(t, r, CheckWriters).New, "the same error is not alerted again")
	r = e.check(k)
	f = finding(t, r, CheckWriters)
	assert.Equal(t, StatusOK, f.Status, "readable again, and as before")
	assert.True(t, f.New)

	// A transient failure (after the client's own retries): failing for this run, nothing
	// recorded, nothing alerted.
	for range 2 {
		e.failNext("GET", "/projects/"+project+"/hmacKeys", 503)
	}
	r = e.check(k)
	f = finding(t, r, CheckHMACKeys)
	assert.Equal(t, StatusFailing, f.Status)
	assert.False(t, f.New)
	r = e.check(k)
	f = finding(t, r, CheckHMACKeys)
	assert.Equal(t, StatusOK, f.Status)
	assert.False(t, f.New, "the transient failure was never recorded, so nothing recovered")

	// The bucket's attributes unreadable: every check that needs them fails.
	e.failNext("GET", "/storage/v1/b/"+bucket, 403)
	r = e.check(k)
	for _, c := range []string{CheckVersioning, CheckSoftDelete, CheckUniform, CheckPAP, CheckRetention} {
		assert.Equal(t, StatusFailing, finding(t, r, c).Status, c)
		assert.Contains(t, finding(t, r, c).Detail, "could not read the bucket's attributes", c)
	}
}

// racingStore runs a hook before the first Save, once: another instance's whole check.
type racingStore struct {
	Store
	once sync.Once
	hook func()
}

func (s *racingStore) Save(ctx context.Context, b string, rec Record, v string) (string, error) {
	s.once.Do(s.hook)
	return s.Store.Save(ctx, b, rec, v)
}

// TestOnceAcrossInstances: two instances observe the same change at the same time; the
// one that saves second loses the compare-and-swap, sees the change already recorded, and
// neither alerts nor repairs it again.
func TestOnceAcrossInstances(t *testing.T) {
	e := newEnv(t)
	mem := NewMemoryStore()
	// One clock for both instances, a millisecond further at every reading.
	clk := &fakeClock{t: time.Date(2021, 1, 31, 14, 0, 0, 0, time.UTC)}
	tick := func() time.Time { clk.advance(time.Millisecond); return clk.now() }
	repair := func(c *Config) { c.Repair = true; c.Now = tick }
	e.check(e.checker(mem, repair))
	e.setVersioning(false)
	e.reset()

	var other Report
	rs := &racingStore{Store: mem}
	a := e.checker(rs, repair)
	b := e.checker(mem, repair)
	rs.hook = func() { other = e.check(b) }
	mine := e.check(a)

	news := len(mine.New()) + len(other.New())
	assert.Equal(t, 1, news, "exactly one instance reports the change")
	assert.Equal(t, 1, e.count("PATCH"), "exactly one instance repairs it")
	assert.True(t, finding(t, other, CheckVersioning).New, "the instance that saved first reports it")
}

type failingStore struct{ err error }

func (s failingStore) Load(context.Context, string) (Record, string, error) {
	return Record{}, "", s.err
}
func (s failingStore) Save(context.Context, string, Record, string) (string, error) {
	return "", s.err
}

func TestStoreFailure(t *testing.T) {
	e := newEnv(t)
	e.setVersioning(false)
	e.reset()
	k := e.checker(failingStore{errors.New("state bucket: 503")}, func(c *Config) { c.Repair = true })
	r, err := k.Check(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "load the posture record")
	assert.Equal(t, StatusFailing, finding(t, r, CheckVersioning).Status, "the findings are still reported")
	assert.Zero(t, e.count("PATCH"), "no repair without a claim")
}

func TestFindingJSON(t *testing.T) {
	f := Finding{Bucket: bucket, Check: CheckVersioning, Status: StatusFailing, Detail: "object versioning is off", Observed: "disabled", Baseline: "enabled", New: true, Err: errors.New("x")}
	data, err := json.Marshal(f)
	require.NoError(t, err)
	assert.JSONEq(t, `{"kind":"posture","bucket":"uploader-prod","check":"versioning","status":"failing","detail":"object versioning is off","observed":"disabled","baseline":"enabled","new":true,"error":"x"}`, string(data))
}

func TestNewRefuses(t *testing.T) {
	e := newEnv(t)
	for name, cfg := range map[string]Config{
		"no bucket":        {Project: project},
		"bad project":      {Project: "P", Bucket: bucket},
		"bad topic":        {Project: project, Bucket: bucket, Notification: &Notification{TopicProject: project, Topic: "a/b", PayloadFormat: storage.JSONPayload}},
		"bad payload":      {Project: project, Bucket: bucket, Notification: &Notification{TopicProject: project, Topic: topic, PayloadFormat: "XML"}},
		"bad event":        {Project: project, Bucket: bucket, Notification: &Notification{TopicProject: project, Topic: topic, PayloadFormat: storage.JSONPayload, EventTypes: []string{"OBJECT_READ"}}},
		"negative claim":   {Project: project, Bucket: bucket, RepairClaim: -time.Second},
		"bucket with path": {Project: project, Bucket: "a/b"},
	} {
		_, err := New(e.client, NewMemoryStore(), cfg)
		assert.ErrorIs(t, err, ErrConfig, name)
	}
	_, err := New(nil, NewMemoryStore(), Config{Project: project, Bucket: bucket})
	assert.ErrorIs(t, err, ErrConfig)
}

func TestMemoryStore(t *testing.T) {
	ctx := context.Background()
	m := NewMemoryStore()
	rec, v, err := m.Load(ctx, bucket)
	require.NoError(t, err)
	assert.Empty(t, v)
	assert.Empty(t, rec.Checks)
	v1, err := m.Save(ctx, bucket, Record{Checks: map[string]CheckRecord{"a": {Last: "x"}}}, "")
	require.NoError(t, err)
	_, err = m.Save(ctx, bucket, Record{}, "")
	assert.ErrorIs(t, err, ErrConflict)
	rec, v, err = m.Load(ctx, bucket)
	require.NoError(t, err)
	assert.Equal(t, v1, v)
	rec.Checks["a"] = CheckRecord{Last: "mutated"}
	again, _, _ := m.Load(ctx, bucket)
	assert.Equal(t, "x", again.Checks["a"].Last, "Load returns a copy")
}
