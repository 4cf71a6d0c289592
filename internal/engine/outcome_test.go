package engine

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/release"
	"github.com/tamperguard/tamperguard/internal/signing"
)

// outcomeRecord is an incident record's outcome as the state bucket holds it. Records outlive
// deployments: an alert left to the outbox by one version is sent by the next, so this is the
// format, not a detail.
const outcomeRecord = `{"decision":{"bucket":"uploader-prod","object":"install.sh","generation":1612087200000123,` +
	`"verdict":"tampered","expected_sha256":"aa","actual_sha256":"bb","size":42,"release":"v1.2.0",` +
	`"signer":"openpgp:ABCD","action":"restored","restored_generation":1612087208000456,` +
	`"reason":"no_good_source","error":"boom","incident":"uploader-prod/install.sh#1612087200000123",` +
	`"floor":"newer releases refused"},` +
	`"kind":"finalize","event_id":"4242","event_time":"2021-01-31T10:00:00Z","created":"2021-01-31T10:00:01Z",` +
	`"restored":"2021-01-31T10:00:08Z","replaced":"2021-01-31T10:00:09Z","evidence":"gs://tg-state/evidence/x",` +
	`"source":"gs://uploader-prod/install.sh#1611000000000001","bad_cache_control":"public, max-age=300",` +
	`"metadata_changes":{"Content-Type":["text/html","text/x-shellscript"]},` +
	`"release_source":"git https://example.org/uploader.git","signer_identity":"Maintainer <m@example.org>",` +
	`"skipped":[{"tag":"v1.3.0","reason":"release is not signed"}]}`

func recordedDecision() *Decision {
	at := func(s int) time.Time { return time.Date(2021, 1, 31, 10, 0, s, 0, time.UTC) }
	d := &Decision{
		Bucket: "uploader-prod", Object: "install.sh", Generation: 1612087200000123, Verdict: VerdictTampered,
		ExpectedSHA256: "aa", ActualSHA256: "bb", Size: 42, Release: "v1.2.0", Signer: "openpgp:ABCD",
		Action: ActionRestored, RestoredGeneration: 1612087208000456, Reason: ReasonNoGoodSource, Error: "boom",
		Incident: "uploader-prod/install.sh#1612087200000123", Floor: "newer releases refused",
	}
	d.Kind, d.EventID, d.EventTime, d.Created = KindFinalize, "4242", at(0), at(1)
	d.Restored, d.Replaced = at(8), at(9)
	d.Evidence, d.Source, d.BadCacheControl = "gs://tg-state/evidence/x", "gs://uploader-prod/install.sh#1611000000000001", "public, max-age=300"
	d.MetadataChanges = map[string][2]string{"Content-Type": {"text/html", "text/x-shellscript"}}
	d.ReleaseInfo = &release.Release{Source: "git https://example.org/uploader.git", Tag: "v1.2.0",
		Signer:  signing.Signer{Scheme: "openpgp", Fingerprint: "ABCD", Identity: "Maintainer <m@example.org>"},
		Skipped: []release.Skipped{{Tag: "v1.3.0", Reason: errors.New("release is not signed")}}}
	d.Skipped = d.ReleaseInfo.Skipped
	d.Err = errors.New("boom")
	d.BadContent, d.GoodContent = []byte("bad"), []byte("good")
	d.alert = &alertDue{}
	return d
}

// TestOutcomeRecordFormat: what an incident record keeps of a decision is written in the same
// JSON as before, and read back into the decision its alert is about.
func TestOutcomeRecordFormat(t *testing.T) {
	b, err := json.Marshal(snapshot(recordedDecision()))
	require.NoError(t, err)
	assert.JSONEq(t, outcomeRecord, string(b))

	var o outcome
	require.NoError(t, json.Unmarshal([]byte(outcomeRecord), &o))
	got := o.decision()
	want := recordedDecision()
	// Not kept: the bytes (read again from the bucket), the alert, the signer's scheme and
	// fingerprint (the decision's Signer says them).
	want.BadContent, want.GoodContent, want.alert = nil, nil, nil
	want.ReleaseInfo.Signer = signing.Signer{Identity: want.ReleaseInfo.Signer.Identity}
	want.Skipped = nil
	assert.Equal(t, want.Err.Error(), got.Err.Error())
	want.Err, got.Err = nil, nil
	require.NotNil(t, got.ReleaseInfo)
	require.Len(t, got.ReleaseInfo.Skipped, 1)
	assert.Equal(t, "release is not signed", got.ReleaseInfo.Skipped[0].Reason.Error())
	want.ReleaseInfo.Skipped, got.ReleaseInfo.Skipped = nil, nil
	assert.Equal(t, *want, got)
}
