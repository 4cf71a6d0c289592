// Package posture checks that the watched bucket is still guarded: object versioning on,
// soft delete kept, the notification config that feeds tamperguard in place and as broad
// as deployed, nobody public (and nobody new) able to write objects, uniform bucket-level
// access and public access prevention not turned off, the retention policy unchanged, and
// no active HMAC key for a service account of the project (the kind of long-lived storage
// key that was leaked in the Codecov breach). HMAC keys of user accounts cannot be listed
// through any API; only the storage.restrictAuthTypes organization policy shuts them out.
//
// # Findings, baseline and alerts
//
// Each check observes one canonical value (e.g. "disabled", "retention 604800s",
// "roles/storage.objectCreator serviceAccount:ci@p.iam.gserviceaccount.com") and judges it:
//
//	failing  the value breaks what tamperguard relies on (versioning off, the event feed
//	         gone or narrowed, a public writer, ...); reported on every run, and an audit
//	         exits 1 while it lasts
//	changed  the value is acceptable but differs from the baseline (a new writer, a shorter
//	         soft delete, a new retention policy); reported once, then accepted as the new
//	         baseline
//	ok       the value is the baseline's
//
// The baseline is the first observation of the bucket, kept with the last observed value
// of every check by a Store (the deployment backs it with the state bucket; MemoryStore for
// one process and tests). Finding.New is true exactly when a check's value differs from the
// last one recorded: one alert per change (or per recovery, a reply in the same Thread), not
// one per audit. Store.Save is a compare-and-swap, so of several instances that observe the
// same change only the one whose save wins reports it as new and repairs it.
//
// # Repair
//
// With Config.Repair (posture.repair), a failing versioning check is repaired by turning
// versioning back on (conditional on the bucket's metageneration as observed), and a
// failing notification check by creating the expected notification config again (a
// narrowed config is left alone; the new one restores the feed). Each repair is checked by
// reading the setting again. A repair is claimed in the Store first, so instances do not
// repair the same change twice; a failed repair is tried again by a later run once the
// claim is older than Config.RepairClaim.
//
// Everything read from the bucket's settings is text an attacker may have chosen (member
// names, notification prefixes and topics): values are bounded and kept as data.
package posture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
)

// Check names: the "check" of a finding.
const (
	CheckVersioning   = "versioning"
	CheckSoftDelete   = "soft_delete"
	CheckNotification = "notification"
	CheckWriters      = "object_writers"
	CheckUniform      = "uniform_access"
	CheckPAP          = "public_access_prevention"
	CheckRetention    = "retention"
	CheckHMACKeys     = "hmac_keys"
)

// Checks lists every check in report order.
var Checks = []string{CheckVersioning, CheckSoftDelete, CheckNotification, CheckWriters, CheckUniform, CheckPAP, CheckRetention, CheckHMACKeys}

// Status of a finding.
type Status string

const (
	StatusOK      Status = "ok"
	StatusChanged Status = "changed"
	StatusFailing Status = "failing"
)

// Bounds on what is kept of the bucket's settings.
const (
	maxLines   = 500 // lines of one value (IAM grants, notification configs, keys)
	maxText    = 300 // bytes of one member, prefix, topic or access ID
	maxHMAC    = 1000
	maxNotifs  = 100
	maxDetail  = 2000
	errorValue = "error: "
)

// Errors.
var (
	// ErrConflict: Store.Save lost a race (the record changed since it was loaded).
	ErrConflict = errors.New("posture record changed concurrently")
	// ErrConfig: the Config cannot be used.
	ErrConfig = errors.New("invalid posture configuration")
)

// Notification is the notification config the deployment expects on the watched bucket
// (the module's: topic <prefix>-events, the four object event types, JSON_API_V1).
type Notification struct {
	TopicProject     string   // project of the Pub/Sub topic
	Topic            string   // topic ID
	EventTypes       []string // empty: all event types
	PayloadFormat    string   // storage.JSONPayload or storage.NoPayload
	ObjectNamePrefix string
}

func (n Notification) String() string {
	return describeNotification(n.TopicProject, n.Topic, n.EventTypes, n.PayloadFormat, n.ObjectNamePrefix)
}

// Config says what to check and how.
type Config struct {
	// Project is the project of the watched bucket, whose HMAC keys are listed.
	Project string
	// Bucket is the watched bucket.
	Bucket string
	// Notification is the config that feeds tamperguard. Nil: the notification configs of
	// the baseline are the expected ones, and nothing can be re-created.
	Notification *Notification
	// Repair (posture.repair) re-enables versioning and re-creates Notification when their
	// checks fail.
	Repair bool
	// AllowedHMACAccessIDs are HMAC keys that are known and accepted; any other active key
	// of a service account fails the hmac_keys check.
	AllowedHMACAccessIDs []string
	// RepairClaim is how long a claimed repair keeps other runs from trying it (default 2m).
	RepairClaim time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Finding is the result of one check.
type Finding struct {
	Bucket   string
	Check    string
	Status   Status
	Detail   string // what was found, in words, for the alert and the JSON line
	Observed string // the canonical value observed ("" when it could not be read)
	Baseline string // the baseline's value
	// New is true when this state was not reported before: send an alert (or, for a
	// recovery, a reply) in Thread.
	New bool
	// Thread keys the alert thread of this check of this bucket.
	Thread string
	// Repair says what posture.repair did ("" when nothing was tried).
	Repair string
	// Repaired: the failing setting was put back and read back as healthy (Status is then
	// changed: the guard is up again, and people must still hear that it was down).
	Repaired bool
	// Err is why the check could not be made (Status is then failing).
	Err error
}

// MarshalJSON renders the audit command's line:
// {"kind":"posture","bucket":…,"check":…,"status":"ok|changed|failing",…}.
func (f Finding) MarshalJSON() ([]byte, error) {
	out := struct {
		Kind     string `json:"kind"`
		Bucket   string `json:"bucket"`
		Check    string `json:"check"`
		Status   Status `json:"status"`
		Detail   string `json:"detail"`
		Observed string `json:"observed,omitempty"`
		Baseline string `json:"baseline,omitempty"`
		New      bool   `json:"new"`
		Repair   string `json:"repair,omitempty"`
		Repaired bool   `json:"repaired,omitempty"`
		Error    string `json:"error,omitempty"`
	}{"posture", f.Bucket, f.Check, f.Status, f.Detail, f.Observed, f.Baseline, f.New, f.Repair, f.Repaired, ""}
	if f.Err != nil {
		out.Error = f.Err.Error()
	}
	return json.Marshal(out)
}

// Report is one run of every check.
type Report struct {
	Bucket   string
	Findings []Finding
}

// Failing reports whether any check is failing (the audit then exits 1).
func (r Report) Failing() bool {
	for _, f := range r.Findings {
		if f.Status == StatusFailing {
			return true
		}
	}
	return false
}

// New returns the findings to alert about.
func (r Report) New() []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.New {
			out = append(out, f)
		}
	}
	return out
}

// Record is what a Store keeps for one bucket.
type Record struct {
	Checks map[string]CheckRecord `json:"checks"`
}

// CheckRecord is the kept state of one check.
type CheckRecord struct {
	Baseline string `json:"baseline"`
	Last     string `json:"last"`
	// At is when Last was observed (when the run that observed it started reading).
	At       time.Time `json:"at,omitzero"`
	RepairAt time.Time `json:"repair_at,omitzero"`
}

// Store keeps Records. Load returns the zero Record and version "" when there is none;
// Save stores rec only if the record is still at ifVersion ("" = none yet), and returns
// the new version or ErrConflict.
type Store interface {
	Load(ctx context.Context, bucket string) (rec Record, version string, err error)
	Save(ctx context.Context, bucket string, rec Record, ifVersion string) (version string, err error)
}

// Checker checks one bucket.
type Checker struct {
	c   *storage.Client
	st  Store
	cfg Config
}

var (
	bucketRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$`)
	projectRE = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$|^[a-z0-9.-]+:[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	topicRE   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$`)
)

var eventTypes = map[string]bool{
	storage.ObjectFinalizeEvent: true, storage.ObjectMetadataUpdateEvent: true,
	storage.ObjectDeleteEvent: true, storage.ObjectArchiveEvent: true,
}

// New makes a Checker. c must talk to the JSON API (the default).
func New(c *storage.Client, st Store, cfg Config) (*Checker, error) {
	switch {
	case c == nil || st == nil:
		return nil, fmt.Errorf("%w: nil client or store", ErrConfig)
	case !bucketRE.MatchString(cfg.Bucket):
		return nil, fmt.Errorf("%w: bucket name %q", ErrConfig, cfg.Bucket)
	case !projectRE.MatchString(cfg.Project):
		return nil, fmt.Errorf("%w: project ID %q", ErrConfig, cfg.Project)
	case cfg.RepairClaim < 0:
		return nil, fmt.Errorf("%w: negative repair claim %v", ErrConfig, cfg.RepairClaim)
	}
	if n := cfg.Notification; n != nil {
		switch {
		case !projectRE.MatchString(n.TopicProject) || !topicRE.MatchString(n.Topic):
			return nil, fmt.Errorf("%w: notification topic projects/%q/topics/%q", ErrConfig, n.TopicProject, n.Topic)
		case n.PayloadFormat != storage.JSONPayload && n.PayloadFormat != storage.NoPayload:
			return nil, fmt.Errorf("%w: notification payload format %q (want %s or %s)", ErrConfig, n.PayloadFormat, storage.JSONPayload, storage.NoPayload)
		}
		for _, e := range n.EventTypes {
			if !eventTypes[e] {
				return nil, fmt.Errorf("%w: notification event type %q", ErrConfig, e)
			}
		}
	}
	if cfg.RepairClaim == 0 {
		cfg.RepairClaim = 2 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Checker{c: c, st: st, cfg: cfg}, nil
}

// observation is one check's reading.
type observation struct {
	value     string
	err       error
	transient bool
	// judge says why value is unacceptable against the baseline ("" when it is fine).
	judge func(value, baseline string) string
	// describe explains a healthy value, or a healthy change from the baseline.
	describe       func(value, baseline string) string
	metageneration int64
}

// Check runs every check, records the outcome and, with Config.Repair, repairs. It returns
// an error (with the report computed so far) only when the Store cannot be read or written:
// then New cannot be trusted to be once per change.
func (k *Checker) Check(ctx context.Context) (Report, error) {
	at := k.cfg.Now()
	obs := k.observe(ctx)
	report, claims, err := k.record(ctx, obs, at)
	if err != nil {
		return report, err
	}
	for _, check := range claims {
		if err := k.repair(ctx, &report, check, obs[check]); err != nil {
			return report, err
		}
	}
	return report, nil
}

// observe reads the bucket's attributes, IAM policy and notification configs and the
// project's HMAC keys, and turns them into one observation per check.
func (k *Checker) observe(ctx context.Context) map[string]observation {
	obs := map[string]observation{}
	b := k.c.Bucket(k.cfg.Bucket)

	attrs, err := b.Attrs(ctx)
	for check, f := range map[string]func(*storage.BucketAttrs) observation{
		CheckVersioning: observeVersioning, CheckSoftDelete: observeSoftDelete, CheckUniform: observeUniform,
		CheckPAP: observePAP, CheckRetention: observeRetention,
	} {
		if err != nil {
			obs[check] = failed("read the bucket's attributes", err)
			continue
		}
		o := f(attrs)
		o.metageneration = attrs.MetaGeneration
		obs[check] = o
	}

	if policy, err := b.IAM().V3().Policy(ctx); err != nil {
		obs[CheckWriters] = failed("read the bucket's IAM policy", err)
	} else {
		var grants []grant
		for _, bd := range policy.Bindings {
			g := grant{role: bd.GetRole(), members: bd.GetMembers()}
			if c := bd.GetCondition(); c != nil {
				g.condition = c.GetTitle()
				if g.condition == "" {
					g.condition = c.GetExpression()
				}
			}
			grants = append(grants, g)
		}
		obs[CheckWriters] = observeWriters(grants)
	}

	if ns, err := b.Notifications(ctx); err != nil {
		obs[CheckNotification] = failed("list the bucket's notification configs", err)
	} else {
		obs[CheckNotification] = k.observeNotifications(ns)
	}

	obs[CheckHMACKeys] = k.observeHMAC(ctx)
	return obs
}

// failed is the observation of a check whose setting could not be read.
func failed(what string, err error) observation {
	o := observation{err: fmt.Errorf("could not %s: %w", what, err), transient: transient(err)}
	class := "other"
	var gerr *googleapi.Error
	switch {
	case errors.As(err, &gerr) && (gerr.Code == http.StatusForbidden || gerr.Code == http.StatusUnauthorized):
		class = "permission denied"
	case errors.As(err, &gerr) && gerr.Code == http.StatusNotFound, errors.Is(err, storage.ErrBucketNotExist):
		class = "not found"
	}
	o.value = errorValue + what + ": " + class
	return o
}

// transient: worth trying again rather than recording as the bucket's state.
func transient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		return gerr.Code == http.StatusTooManyRequests || gerr.Code == http.StatusRequestTimeout || gerr.Code >= 500
	}
	return storage.ShouldRetry(err)
}

// record compares the observations with the stored record and saves the new record,
// claiming the repairs to make. It retries on a lost compare-and-swap.
func (k *Checker) record(ctx context.Context, obs map[string]observation, at time.Time) (Report, []string, error) {
	for attempt := 0; ; attempt++ {
		rec, version, err := k.st.Load(ctx, k.cfg.Bucket)
		if err != nil {
			r := k.judge(obs, Record{}, false, at)
			return r.report, nil, fmt.Errorf("posture: gs://%s: load the posture record: %w", k.cfg.Bucket, err)
		}
		r := k.judge(obs, rec, true, at)
		if recordsEqual(rec, r.next) {
			return r.report, r.claims, nil
		}
		_, err = k.st.Save(ctx, k.cfg.Bucket, r.next, version)
		if err == nil {
			return r.report, r.claims, nil
		}
		if !errors.Is(err, ErrConflict) || attempt >= 4 {
			return r.report, nil, fmt.Errorf("posture: gs://%s: save the posture record: %w", k.cfg.Bucket, err)
		}
	}
}

type judged struct {
	report Report
	next   Record
	claims []string
}

// judge computes the findings and the next record from the observations (made from at on)
// and rec. A check whose record was written from an observation newer than ours (another
// instance's run, or its repair) takes the recorded value instead of ours: it is not a
// change, and it is not recorded again.
func (k *Checker) judge(obs map[string]observation, rec Record, stored bool, at time.Time) judged {
	now := k.cfg.Now()
	out := judged{report: Report{Bucket: k.cfg.Bucket}, next: Record{Checks: map[string]CheckRecord{}}}
	for c, r := range rec.Checks {
		out.next.Checks[c] = r
	}
	for _, check := range Checks {
		o := obs[check]
		prev, seen := rec.Checks[check]
		stale := seen && prev.At.After(at)
		if stale && o.judge != nil && !strings.HasPrefix(prev.Last, errorValue) {
			o.value, o.err = prev.Last, nil
		}
		f := Finding{Bucket: k.cfg.Bucket, Check: check, Thread: "posture/" + k.cfg.Bucket + "/" + check, Baseline: prev.Baseline}
		if o.err != nil {
			f.Status, f.Err = StatusFailing, o.err
			f.Detail = bound(o.err.Error(), maxDetail)
			if !o.transient && !stale {
				f.New = stored && prev.Last != o.value
				nr := prev
				nr.Last, nr.At = o.value, at
				out.next.Checks[check] = nr
			}
			out.report.Findings = append(out.report.Findings, f)
			continue
		}
		baseline := prev.Baseline
		if !seen || baseline == "" || strings.HasPrefix(baseline, errorValue) {
			baseline = o.value
		}
		f.Observed, f.Baseline = o.value, baseline
		violation := o.judge(o.value, baseline)
		switch {
		case violation != "":
			f.Status, f.Detail = StatusFailing, violation
		case o.value != baseline:
			f.Status, f.Detail = StatusChanged, o.describe(o.value, baseline)
		default:
			f.Status, f.Detail = StatusOK, o.describe(o.value, baseline)
		}
		f.Detail = bound(f.Detail, maxDetail)
		if seen {
			f.New = prev.Last != o.value
		} else {
			f.New = f.Status == StatusFailing
		}
		f.New = f.New && stored && !stale
		if stale {
			out.report.Findings = append(out.report.Findings, f)
			continue
		}
		nr := CheckRecord{Baseline: baseline, Last: o.value, At: at, RepairAt: prev.RepairAt}
		if f.Status == StatusChanged {
			nr.Baseline = o.value // reported once; accepted from now on
		}
		if f.Status != StatusFailing {
			nr.RepairAt = time.Time{}
		} else if k.repairable(check) && (f.New || prev.RepairAt.IsZero() || now.Sub(prev.RepairAt) >= k.cfg.RepairClaim) {
			nr.RepairAt = now
			out.claims = append(out.claims, check)
		}
		out.next.Checks[check] = nr
		out.report.Findings = append(out.report.Findings, f)
	}
	return out
}

func (k *Checker) repairable(check string) bool {
	return k.cfg.Repair && (check == CheckVersioning || check == CheckNotification)
}

func recordsEqual(a, b Record) bool {
	if len(a.Checks) != len(b.Checks) {
		return false
	}
	for c, x := range a.Checks {
		y, ok := b.Checks[c]
		if !ok || x.Baseline != y.Baseline || x.Last != y.Last || !x.RepairAt.Equal(y.RepairAt) {
			return false
		}
	}
	return true
}

// repair tries to bring a failing, claimed check back, verifies it, and records the
// outcome.
func (k *Checker) repair(ctx context.Context, report *Report, check string, o observation) error {
	idx := -1
	for i, f := range report.Findings {
		if f.Check == check {
			idx = i
		}
	}
	if idx < 0 {
		return nil
	}
	f := &report.Findings[idx]
	b := k.c.Bucket(k.cfg.Bucket)
	var after observation
	switch check {
	case CheckVersioning:
		if o.value != "disabled" {
			return nil
		}
		_, err := b.If(storage.BucketConditions{MetagenerationMatch: o.metageneration}).Update(ctx, storage.BucketAttrsToUpdate{VersioningEnabled: true})
		if err != nil {
			f.Repair = bound("re-enabling versioning failed: "+err.Error(), maxDetail)
			return nil
		}
		attrs, err := b.Attrs(ctx)
		if err != nil {
			f.Repair = bound("versioning was re-enabled, but reading it back failed: "+err.Error(), maxDetail)
			return nil
		}
		after = observeVersioning(attrs)
	case CheckNotification:
		n := k.cfg.Notification
		if n == nil {
			f.Repair = "cannot re-create the notification config: the expected one is not configured"
			return nil
		}
		_, err := b.AddNotification(ctx, &storage.Notification{
			TopicProjectID: n.TopicProject, TopicID: n.Topic, EventTypes: n.EventTypes,
			PayloadFormat: n.PayloadFormat, ObjectNamePrefix: n.ObjectNamePrefix,
		})
		if err != nil {
			f.Repair = bound("re-creating the notification config failed: "+err.Error(), maxDetail)
			return nil
		}
		ns, err := b.Notifications(ctx)
		if err != nil {
			f.Repair = bound("the notification config was re-created, but listing it back failed: "+err.Error(), maxDetail)
			return nil
		}
		after = k.observeNotifications(ns)
	default:
		return nil
	}
	if v := after.judge(after.value, f.Baseline); v != "" {
		f.Repair = bound("repair did not hold: "+v, maxDetail)
		return nil
	}
	switch check {
	case CheckVersioning:
		f.Repair = "versioning re-enabled and read back"
	case CheckNotification:
		f.Repair = "notification config re-created (" + k.cfg.Notification.String() + ") and read back"
	}
	f.Detail = bound(f.Detail+"; repaired by tamperguard", maxDetail)
	f.Status, f.Repaired = StatusChanged, true
	f.Observed = after.value
	// Record the repaired state as the last one seen, so the next run reports it as ok.
	for attempt := 0; ; attempt++ {
		rec, version, err := k.st.Load(ctx, k.cfg.Bucket)
		if err != nil {
			return fmt.Errorf("posture: gs://%s: load the posture record after a repair: %w", k.cfg.Bucket, err)
		}
		if rec.Checks == nil {
			rec.Checks = map[string]CheckRecord{}
		}
		cr := rec.Checks[check]
		cr.Last, cr.At, cr.RepairAt = after.value, k.cfg.Now(), time.Time{}
		if cr.Baseline == "" {
			cr.Baseline = after.value
		}
		rec.Checks[check] = cr
		if _, err = k.st.Save(ctx, k.cfg.Bucket, rec, version); err == nil {
			return nil
		}
		if !errors.Is(err, ErrConflict) || attempt >= 4 {
			return fmt.Errorf("posture: gs://%s: save the posture record after a repair: %w", k.cfg.Bucket, err)
		}
	}
}

// --- the checks -----------------------------------------------------------------------

func same(what string) func(v, b string) string {
	return func(v, b string) string {
		if v == b {
			return what + ": " + v
		}
		return what + " changed from " + b + " to " + v
	}
}

func observeVersioning(a *storage.BucketAttrs) observation {
	v := "disabled"
	if a.VersioningEnabled {
		v = "enabled"
	}
	return observation{value: v,
		judge: func(v, _ string) string {
			if v != "enabled" {
				return "object versioning is off: an overwritten or deleted object leaves no noncurrent generation to restore from or keep as evidence"
			}
			return ""
		},
		describe: same("object versioning"),
	}
}

func observeSoftDelete(a *storage.BucketAttrs) observation {
	v := "off"
	if p := a.SoftDeletePolicy; p != nil && p.RetentionDuration > 0 {
		v = "retention " + strconv.FormatInt(int64(p.RetentionDuration/time.Second), 10) + "s"
	}
	return observation{value: v,
		judge: func(v, _ string) string {
			if v == "off" {
				return "soft delete is off: a deleted or overwritten-and-pruned object cannot be brought back"
			}
			return ""
		},
		describe: func(v, b string) string {
			if v == b {
				return "soft delete: " + v
			}
			if softSeconds(v) < softSeconds(b) {
				return "soft delete shortened from " + b + " to " + v
			}
			return "soft delete changed from " + b + " to " + v
		},
	}
}

func softSeconds(v string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(v, "retention "), "s"), 10, 64)
	return n
}

func observeUniform(a *storage.BucketAttrs) observation {
	v := "disabled"
	if a.UniformBucketLevelAccess.Enabled {
		v = "enabled"
	}
	return observation{value: v,
		judge: func(v, _ string) string {
			if v != "enabled" {
				return "uniform bucket-level access is off: object ACLs can now grant access that the bucket's IAM policy does not show"
			}
			return ""
		},
		describe: same("uniform bucket-level access"),
	}
}

func observePAP(a *storage.BucketAttrs) observation {
	v := "unknown"
	switch a.PublicAccessPrevention {
	case storage.PublicAccessPreventionEnforced:
		v = "enforced"
	case storage.PublicAccessPreventionInherited, storage.PublicAccessPreventionUnspecified:
		v = "inherited"
	}
	return observation{value: v,
		judge: func(v, b string) string {
			if b == "enforced" && v != "enforced" {
				return "public access prevention was turned off (" + v + "): objects can now be made public"
			}
			return ""
		},
		describe: same("public access prevention"),
	}
}

func observeRetention(a *storage.BucketAttrs) observation {
	v := "none"
	if p := a.RetentionPolicy; p != nil && p.RetentionPeriod > 0 {
		v = "period " + strconv.FormatInt(int64(p.RetentionPeriod/time.Second), 10) + "s"
		if p.IsLocked {
			v += " locked"
		}
	}
	return observation{value: v,
		judge: func(string, string) string { return "" },
		describe: func(v, b string) string {
			if v == b {
				return "retention policy: " + v
			}
			return "retention policy changed from " + b + " to " + v + " (a retention policy keeps objects from being replaced or deleted before they reach the period: it can block restores)"
		},
	}
}

// grant is one IAM binding as read.
type grant struct {
	role      string
	members   []string
	condition string
}

// writeRoles are the predefined roles that can create, replace or delete objects.
var writeRoles = map[string]bool{
	"roles/storage.admin": true, "roles/storage.objectAdmin": true, "roles/storage.objectCreator": true,
	"roles/storage.objectUser": true, "roles/storage.folderAdmin": true,
	"roles/storage.legacyBucketWriter": true, "roles/storage.legacyBucketOwner": true, "roles/storage.legacyObjectOwner": true,
	"roles/owner": true, "roles/editor": true,
}

// customRoleRE matches custom roles, whose permissions cannot be read without
// iam.roles.get: they are counted as able to write.
var customRoleRE = regexp.MustCompile(`^(projects|organizations)/[^/]+/roles/[^/]+$`)

func observeWriters(grants []grant) observation {
	set := map[string]bool{}
	for _, g := range grants {
		if !writeRoles[g.role] && !customRoleRE.MatchString(g.role) {
			continue
		}
		for _, m := range g.members {
			line := clean(g.role) + " " + clean(m)
			if g.condition != "" {
				line += " if " + strconv.Quote(bound(g.condition, maxText))
			}
			set[line] = true
		}
	}
	return observation{value: lines(set),
		judge: func(v, _ string) string {
			var public []string
			for _, l := range splitLines(v) {
				f := strings.Fields(l)
				if len(f) >= 2 && (f[1] == "allUsers" || f[1] == "allAuthenticatedUsers") {
					public = append(public, l)
				}
			}
			if len(public) > 0 {
				return "anyone can write objects: " + strings.Join(public, "; ")
			}
			return ""
		},
		describe: func(v, b string) string {
			if v == b {
				return "principals that can write objects: " + orNone(v)
			}
			added, removed := diff(splitLines(b), splitLines(v))
			var parts []string
			if len(added) > 0 {
				parts = append(parts, "now able to write objects: "+strings.Join(added, "; "))
			}
			if len(removed) > 0 {
				parts = append(parts, "no longer able to: "+strings.Join(removed, "; "))
			}
			return strings.Join(parts, "; ")
		},
	}
}

func (k *Checker) observeNotifications(ns map[string]*storage.Notification) observation {
	set := map[string]bool{}
	n := 0
	for _, x := range ns {
		if n++; n > maxNotifs {
			break
		}
		set[describeNotification(x.TopicProjectID, x.TopicID, x.EventTypes, x.PayloadFormat, x.ObjectNamePrefix)] = true
	}
	want := k.cfg.Notification
	return observation{value: lines(set),
		judge: func(v, b string) string {
			have := splitLines(v)
			var expected []string
			if want != nil {
				expected = []string{want.String()}
			} else {
				expected = splitLines(b)
			}
			for _, e := range expected {
				if coveredBy(e, have) {
					continue
				}
				if sameTopic(e, have) {
					return "the notification config that feeds tamperguard was narrowed: want " + e + ", have " + orNone(strings.Join(have, "; ")) + " (events it no longer sends are not seen until the next audit)"
				}
				return "the notification config that feeds tamperguard was removed: want " + e + ", have " + orNone(strings.Join(have, "; ")) + " (tamperguard hears no events until the next audit)"
			}
			return ""
		},
		describe: func(v, b string) string {
			if v == b {
				return "notification configs: " + orNone(v)
			}
			added, removed := diff(splitLines(b), splitLines(v))
			var parts []string
			if len(added) > 0 {
				parts = append(parts, "notification configs added: "+strings.Join(added, "; "))
			}
			if len(removed) > 0 {
				parts = append(parts, "removed: "+strings.Join(removed, "; "))
			}
			return strings.Join(parts, "; ")
		},
	}
}

// describeNotification is the canonical text of a notification config.
func describeNotification(project, topic string, events []string, payload, prefix string) string {
	ev := append([]string(nil), events...)
	sort.Strings(ev)
	evs := "all"
	if len(ev) > 0 {
		evs = strings.Join(ev, ",")
	}
	return "topic=projects/" + clean(project) + "/topics/" + clean(topic) +
		" events=" + clean(evs) + " payload=" + clean(payload) + " prefix=" + strconv.Quote(bound(prefix, maxText))
}

// parsedNotification is describeNotification read back.
type parsedNotification struct {
	topic, payload, prefix string
	events                 map[string]bool // nil: all
}

var notifRE = regexp.MustCompile(`^topic=(\S+) events=(\S+) payload=(\S*) prefix=(".*")$`)

func parseNotification(s string) (parsedNotification, bool) {
	m := notifRE.FindStringSubmatch(s)
	if m == nil {
		return parsedNotification{}, false
	}
	prefix, err := strconv.Unquote(m[4])
	if err != nil {
		return parsedNotification{}, false
	}
	p := parsedNotification{topic: m[1], payload: m[3], prefix: prefix}
	if m[2] != "all" {
		p.events = map[string]bool{}
		for _, e := range strings.Split(m[2], ",") {
			p.events[e] = true
		}
	}
	return p, true
}

// coveredBy: some config in have delivers everything want does: same topic and payload
// format, every event type of want (all, when want has none), and a prefix no longer than
// want's.
func coveredBy(want string, have []string) bool {
	w, ok := parseNotification(want)
	if !ok {
		return false
	}
	for _, h := range have {
		c, ok := parseNotification(h)
		if !ok || c.topic != w.topic || c.payload != w.payload || !strings.HasPrefix(w.prefix, c.prefix) {
			continue
		}
		if c.events == nil {
			return true
		}
		if w.events == nil {
			continue
		}
		all := true
		for e := range w.events {
			all = all && c.events[e]
		}
		if all {
			return true
		}
	}
	return false
}

func sameTopic(want string, have []string) bool {
	w, ok := parseNotification(want)
	if !ok {
		return false
	}
	for _, h := range have {
		if c, ok := parseNotification(h); ok && c.topic == w.topic {
			return true
		}
	}
	return false
}

func (k *Checker) observeHMAC(ctx context.Context) observation {
	allowed := map[string]bool{}
	for _, id := range k.cfg.AllowedHMACAccessIDs {
		allowed[id] = true
	}
	it := k.c.ListHMACKeys(ctx, k.cfg.Project)
	set := map[string]bool{}
	for n := 0; ; n++ {
		key, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return failed("list the project's HMAC keys", err)
		}
		if n >= maxHMAC {
			set[fmt.Sprintf("(more than %d keys)", maxHMAC)] = true
			break
		}
		if key.State != storage.Active {
			continue
		}
		line := clean(key.AccessID) + " " + clean(key.ServiceAccountEmail)
		if allowed[key.AccessID] {
			line += " (allowed)"
		}
		set[line] = true
	}
	return observation{value: lines(set),
		judge: func(v, _ string) string {
			var bad []string
			for _, l := range splitLines(v) {
				if !strings.HasSuffix(l, " (allowed)") {
					bad = append(bad, l)
				}
			}
			if len(bad) > 0 {
				return fmt.Sprintf("%d active HMAC key(s) for service accounts of the project: %s (a long-lived storage key of this kind rewrote the Codecov uploader; deactivate unused keys, or deny HMAC-signed requests with storage.restrictAuthTypes)",
					len(bad), strings.Join(bad, "; "))
			}
			return ""
		},
		describe: func(v, b string) string {
			if v == b {
				return "active HMAC keys of service accounts: " + orNone(v)
			}
			return "active HMAC keys of service accounts changed from " + orNone(b) + " to " + orNone(v)
		},
	}
}

// --- text helpers ------------------------------------------------------------------------

// lines renders a set as sorted lines ("none" when empty), at most maxLines.
func lines(set map[string]bool) string {
	if len(set) == 0 {
		return "none"
	}
	out := make([]string, 0, len(set))
	for l := range set {
		out = append(out, l)
	}
	sort.Strings(out)
	if len(out) > maxLines {
		out = append(out[:maxLines], fmt.Sprintf("(%d more)", len(out)-maxLines))
	}
	return strings.Join(out, "\n")
}

func splitLines(v string) []string {
	if v == "none" || v == "" {
		return nil
	}
	return strings.Split(v, "\n")
}

func orNone(v string) string {
	if v == "" {
		return "none"
	}
	return strings.ReplaceAll(v, "\n", "; ")
}

// diff returns the lines of b not in a (added) and of a not in b (removed).
func diff(a, b []string) (added, removed []string) {
	in := func(xs []string, s string) bool {
		for _, x := range xs {
			if x == s {
				return true
			}
		}
		return false
	}
	for _, x := range b {
		if !in(a, x) {
			added = append(added, x)
		}
	}
	for _, x := range a {
		if !in(b, x) {
			removed = append(removed, x)
		}
	}
	return added, removed
}

// clean bounds a name read from the bucket's settings and quotes it when it holds spaces
// or control characters, so that it stays one field of one line.
func clean(s string) string {
	s = bound(s, maxText)
	if s == "" || strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029 }) >= 0 {
		return strconv.Quote(s)
	}
	return s
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
