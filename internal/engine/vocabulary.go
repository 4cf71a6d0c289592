package engine

import (
	"errors"

	"github.com/tamperguard/tamperguard/internal/release"
	"github.com/tamperguard/tamperguard/internal/signing"
)

// The engine's vocabulary: what happened to an object (Kind), what was found (Verdict), what
// was done (Action) and why (Reason). The strings are stable: they are the decision's JSON
// line, log fields and alert text that operators and their alert policies key on.

// Kind is what happened to an object.
type Kind string

// Event kinds, as Cloud Storage names them in its notifications.
const (
	KindFinalize Kind = "finalize" // a generation was written
	KindDelete   Kind = "delete"   // a generation was deleted (an unversioned bucket)
	KindArchive  Kind = "archive"  // a generation became noncurrent: deleted or overwritten
	KindMetadata Kind = "metadata" // the live generation's metadata changed
)

// Verdict is the outcome of judging one object.
type Verdict string

// Verdicts.
const (
	VerdictOK           Verdict = "ok"           // the bytes (or metadata) are the signed ones
	VerdictTampered     Verdict = "tampered"     // they are not
	VerdictUnverifiable Verdict = "unverifiable" // no trusted answer: never acted on
	VerdictMissing      Verdict = "missing"      // an object a rule covers is not in the bucket
	VerdictIgnored      Verdict = "ignored"      // nothing to judge (no rule, a shadow of an overwrite, …)
)

// Action is what was done about an object.
type Action string

// Actions.
const (
	ActionNone             Action = "none"              // nothing was changed
	ActionRestored         Action = "restored"          // the signed bytes are live again, verified as restore_verified says
	ActionQuarantined      Action = "quarantined"       // the tampered generation was deleted
	ActionMetadataRestored Action = "metadata_restored" // the protected metadata was put back
	ActionSkippedNewer     Action = "skipped_newer"     // a newer generation came first: it is judged by its own event
	ActionFailed           Action = "failed"            // the repair was attempted and failed
)

// Verification is how a restored generation was verified to hold the signed bytes before
// the decision called it restored.
type Verification string

// Verifications.
const (
	VerifiedReadBack      Verification = "read_back"      // the new generation was read back and hashed
	VerifiedCopyChecksums Verification = "copy_checksums" // the store copied a generation this process hashed, and reports the copy with its size, CRC32C and MD5
)

// Reason says why a decision is what it is, when the verdict and action alone do not.
type Reason string

// Reasons about the signed release (an unverifiable verdict).
const (
	ReasonReleaseUnreachable Reason = "release_unreachable" // the release source could not be reached (transient)
	ReasonSignatureRefused   Reason = "signature_refused"   // a signature did not verify against the pinned keys
	ReasonUnsigned           Reason = "release_unsigned"    // the release carries no signature
	ReasonNoTrustedRelease   Reason = "no_trusted_release"  // no candidate release could be trusted
	ReasonRollback           Reason = "rollback"            // an older signed release offered as the latest
	ReasonReleaseNotFound    Reason = "release_not_found"   // the release (tag) does not exist
	ReasonReleaseInvalid     Reason = "release_invalid"     // the release is malformed (checksum file, tag)
	ReasonEntryMissing       Reason = "entry_missing"       // the signed checksum file does not list the object
	ReasonNotVouched         Reason = "not_vouched"         // no signed digest is listed, what vouches (a signature over the file, an attestation) refused the bytes, and no other copy passes it
)

// Reasons about the object in the bucket.
const (
	ReasonObjectUnreadable Reason = "object_unreadable" // the object could not be read
	ReasonObjectTooLarge   Reason = "object_too_large"  // over the size limit: not hashed
	ReasonGenerationGone   Reason = "generation_gone"   // the judged generation was pruned before it was read
	ReasonMissing          Reason = "missing"           // a rule names the object and it is not there
	ReasonNoRule           Reason = "no_rule"           // no rule covers the object
	ReasonOverwritten      Reason = "overwritten"       // an archive or deletion that is the shadow of an overwrite
	ReasonStillLive        Reason = "live_generation"   // a generation was pruned but the object is live
	ReasonNotLive          Reason = "not_live"          // a metadata event for a generation that is no longer live
	ReasonMetadata         Reason = "metadata_changed"  // protected metadata differs from what it must be
)

// Reasons about the response.
const (
	ReasonNoGoodSource    Reason = "no_good_source"   // tampered or gone, and nothing verified to restore from
	ReasonRestoreMismatch Reason = "restore_mismatch" // the restored generation did not read back as signed
	ReasonDuplicate       Reason = "duplicate"        // the incident is complete: acted on and alerted
	ReasonHeld            Reason = "incident_held"    // another delivery works on the incident under a live lease: retried
)

// ReasonOf maps an error from resolving a release or reading an object to a reason.
func ReasonOf(err error) Reason {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, release.ErrRollback):
		return ReasonRollback
	case errors.Is(err, signing.ErrRefused):
		return ReasonSignatureRefused
	case errors.Is(err, release.ErrUnsigned):
		return ReasonUnsigned
	case errors.Is(err, release.ErrNoTrustedRelease):
		return ReasonNoTrustedRelease
	case errors.Is(err, release.ErrEntryMissing):
		return ReasonEntryMissing
	case errors.Is(err, release.ErrNotFound):
		return ReasonReleaseNotFound
	case errors.Is(err, release.ErrInvalid):
		return ReasonReleaseInvalid
	case errors.Is(err, release.ErrUnreachable):
		return ReasonReleaseUnreachable
	default:
		return ReasonObjectUnreadable
	}
}
