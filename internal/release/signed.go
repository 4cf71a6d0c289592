package release

import (
	"fmt"
	"time"

	"github.com/tamperguard/tamperguard/internal/signing"
)

// signedText verifies a checksum file against the pinned keys and returns the text that was
// signed, and who signed it. A clearsigned file (Node.js's SHASUMS256.txt.asc) carries its
// own signature: only the text inside the signed block is returned (sigs are not used).
// Otherwise sigs are its detached signatures (each in any format signing.Verify reads:
// OpenPGP, SSH, cosign, a Sigstore bundle), of which threshold distinct pinned keys must
// have signed it (k-of-n; threshold < 1 means 1).
func signedText(keys *signing.Keys, threshold int, sums []byte, sigs [][]byte) ([]byte, []signing.Verified, error) {
	if signing.IsClearsigned(sums) {
		if threshold > 1 {
			return nil, nil, fmt.Errorf("%w: a clearsigned checksum file counts one signer, and keys.threshold asks for %d distinct keys: publish detached signatures for k-of-n",
				signing.ErrThresholdNotMet, threshold)
		}
		text, v, err := keys.VerifyClearsigned(sums)
		if err != nil {
			return nil, nil, err
		}
		return text, []signing.Verified{v}, nil
	}
	if len(sigs) == 0 {
		return nil, nil, ErrUnsigned
	}
	res, err := keys.VerifyThreshold(sums, sigs, threshold)
	if err != nil {
		return nil, nil, err
	}
	return sums, res.Signers, nil
}

// signedAt is a release's signed time from the signatures that counted: the earliest any
// of them carries (an OpenPGP creation time, a Sigstore bundle's verified log or timestamp
// time), zero when none does.
func signedAt(vs []signing.Verified) time.Time {
	var at time.Time
	for _, v := range vs {
		t := v.Time
		if t.IsZero() {
			t = v.Signer.SignedAt
		}
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	return at.UTC()
}

// signersOf lists who counted.
func signersOf(vs []signing.Verified) []signing.Signer {
	out := make([]signing.Signer, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.Signer)
	}
	return out
}

// evidenceSigs stores signatures in Evidence the way it always did for one signature
// (Signature), so a kept release keeps its ID; several go to Signatures.
func evidenceSigs(ev *Evidence, sigs [][]byte) {
	if len(sigs) == 1 {
		ev.Signature = sigs[0]
		return
	}
	ev.Signatures = sigs
}

// keptSigs reads the signatures kept in Evidence.
func keptSigs(ev *Evidence) [][]byte {
	if len(ev.Signatures) > 0 {
		return ev.Signatures
	}
	if len(ev.Signature) > 0 {
		return [][]byte{ev.Signature}
	}
	return nil
}
