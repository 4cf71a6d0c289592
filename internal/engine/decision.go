package engine

import (
	"errors"
	"time"

	"github.com/tamperguard/tamperguard/internal/auditlog"
	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/gsref"
	"github.com/tamperguard/tamperguard/internal/release"
)

// Decision is the outcome for one object: what was found and what was done. Its own fields
// are the JSON line every command prints; the embedded Detail is what alerts and logs need
// besides, and is not printed.
type Decision struct {
	Bucket         string  `json:"bucket"`
	Object         string  `json:"object"`
	Generation     int64   `json:"generation"`
	Verdict        Verdict `json:"verdict"`
	ExpectedSHA256 string  `json:"expected_sha256"`
	ActualSHA256   string  `json:"actual_sha256"`
	// ExpectedDigest and ActualDigest are the signed digest and the bytes' digest when the
	// release lists another algorithm than SHA-256 ("sha512:<hex>"); ExpectedSHA256 is then
	// set only when the release lists a SHA-256 as well, ActualSHA256 always.
	ExpectedDigest     string `json:"expected_digest,omitempty"`
	ActualDigest       string `json:"actual_digest,omitempty"`
	Size               int64  `json:"size"`
	Release            string `json:"release"`
	Signer             string `json:"signer"`
	Action             Action `json:"action"`
	RestoredGeneration int64  `json:"restored_generation,omitempty"`
	// RestoreVerified says how the restored generation was verified.
	RestoreVerified Verification `json:"restore_verified,omitempty"`
	Reason          Reason       `json:"reason,omitempty"`
	Error           string       `json:"error,omitempty"`
	// Incident names the incident record when the decision acted on one.
	Incident string `json:"incident,omitempty"`
	// Floor says why the object was judged against the last release that verified (the
	// floor) rather than a fresh one: newer candidates refused, or the source unreachable.
	Floor string `json:"floor,omitempty"`
	// WrittenBy is who made the judged write, as Cloud Audit Logs say: set by the delivery
	// runtime after the judgement, for a tampering, deletion or metadata change whose alert
	// is due (nil when nobody looked).
	WrittenBy *auditlog.Attribution `json:"written_by,omitempty"`

	Detail `json:"-"`

	alert *alertDue // set when people must hear about it (see AlertDue)
}

// Detail is what an alert and the decision's log line need besides the printed line. Its JSON
// form is what an incident record keeps of it (the outcome), for whoever sends the alert if
// the owner cannot; the fields without one are not kept.
type Detail struct {
	Kind      Kind      `json:"kind,omitempty"`      // the event that led here ("" for check/audit)
	EventID   string    `json:"event_id,omitempty"`  // the event's ID
	EventTime time.Time `json:"event_time,omitzero"` // when the storage change happened, if the event said
	Created   time.Time `json:"created,omitzero"`    // when the judged generation was written
	Restored  time.Time `json:"restored,omitzero"`   // when the good bytes were live again
	// Received is when the delivery runtime was handed the event (set by it, not logged).
	Received time.Time `json:"-"`
	// Replaced is when a newer generation replaced the judged one (skipped_newer), if known.
	Replaced time.Time `json:"replaced,omitzero"`
	Evidence string    `json:"evidence,omitempty"` // gs:// path of the evidence copy
	Source   string    `json:"source,omitempty"`   // where restored bytes came from
	// BadCacheControl is the Cache-Control the tampered generation was served with: edge
	// caches may keep serving it for its max-age.
	BadCacheControl string `json:"bad_cache_control,omitempty"`
	// MetadataChanges lists protected metadata that differed: field → {found, restored}.
	MetadataChanges map[string][2]string `json:"metadata_changes,omitempty"`

	// ReleaseInfo is the signed release the decision rests on (the record keeps its source,
	// signer identity and skipped tags: see outcome).
	ReleaseInfo *release.Release `json:"-"`
	// Skipped lists newer release tags that were not trusted, and why.
	Skipped   []release.Skipped `json:"-"`
	Duplicate bool              `json:"-"` // another delivery completed this incident
	Err       error             `json:"-"` // what failed (its text is the printed Error)
	Transient bool              `json:"-"` // worth a retry
	// BadContent and GoodContent are the tampered and the signed bytes, for a diff in the
	// alert; nil when the object is larger than MaxSample or could not be read. The record
	// does not keep them: they are read again from the bucket.
	BadContent, GoodContent []byte `json:"-"`
}

// MaxSample bounds the bytes kept in a Decision for diffs.
const MaxSample = 1 << 20

// Ref names the decision's object and generation.
func (d *Decision) Ref() gsref.ObjectRef { return ref(d.Bucket, d.Object, d.Generation) }

// fill records a judgement: the verdict, the generation judged and its digest, the release.
func (d *Decision) fill(j judged) {
	d.Verdict, d.Reason, d.Err, d.Transient = j.verdict, j.reason, j.err, j.transient
	if j.attrs.Generation != 0 {
		d.Generation = j.attrs.Generation
		d.Size = j.attrs.Size
		d.Created = j.attrs.Created
	}
	d.expect(j.exp)
	if j.verdict == VerdictOK || j.verdict == VerdictTampered {
		d.ActualSHA256 = j.checked.SHA256.String()
		if alg := j.checked.Sum.Algorithm(); alg != checksum.SHA256 && !j.checked.Sum.IsZero() {
			d.ActualDigest = sumText(j.checked.Sum)
		}
		if d.ExpectedSHA256 == "" && d.ExpectedDigest == "" {
			d.expected(j.checked.Want) // an attestation found by the bytes' digest
		}
	}
	if v := j.checked.Vouched.Signer; d.Signer == "" && v.Scheme != "" {
		d.Signer = v.ID()
	}
	if j.proof != nil {
		j.proof.vouch(d)
	}
	if j.err != nil {
		d.Error = j.err.Error()
	}
}

// expect records which signed release (and entry, when resolved) the decision rests on.
func (d *Decision) expect(exp Expectation) {
	if exp.Release == nil {
		return
	}
	d.ReleaseInfo, d.Release, d.Skipped = exp.Release, exp.Release.Tag, exp.Release.Skipped
	d.Signer = ""
	if s := exp.Release.Signer; s.Scheme != "" {
		d.Signer = s.ID() // a release signed file by file has none: each file's signer says
	}
	if f := exp.Release.Floor; f != nil && f.Reason != nil {
		d.Floor = f.Reason.Error()
	}
	if exp.Entry.Name != "" {
		d.expected(exp.Entry.Sum)
		if d.ExpectedSHA256 == "" && exp.Entry.HasSHA256() {
			d.ExpectedSHA256 = exp.Entry.Digest.String() // listed besides the stronger digest
		}
	}
}

// expected records the signed digest.
func (d *Decision) expected(sum checksum.Sum) {
	switch {
	case sum.IsZero():
	case sum.Algorithm() == checksum.SHA256:
		d.ExpectedSHA256 = sum.String()
	default:
		d.ExpectedDigest = sumText(sum)
	}
}

// sumText is a digest as "sha512:<hex>".
func sumText(s checksum.Sum) string {
	b, err := s.MarshalText()
	if err != nil {
		return ""
	}
	return string(b)
}

// setErr records what failed; a store's transient failure makes the decision a retry.
func (d *Decision) setErr(err error) {
	d.Err = err
	d.Error = err.Error()
	d.Transient = errors.Is(err, ErrTransient)
}
