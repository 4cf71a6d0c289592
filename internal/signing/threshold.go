package signing

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// MaxThresholdSignatures bounds how many signature files one release may offer.
const MaxThresholdSignatures = 32

// ErrThresholdNotMet: fewer distinct pinned keys signed than keys.threshold requires.
var ErrThresholdNotMet = refusal("not enough distinct pinned keys signed")

// ThresholdResult lists the distinct pinned signers that vouched, in input order,
// and why each other signature was refused.
type ThresholdResult struct {
	Signers []Verified
	// Refused holds one error per signature input (or OpenPGP signature packet)
	// that did not count: it did not verify, or its key had already been counted.
	Refused []error
}

// VerifyThreshold checks detached signatures over message (each in any format
// Verify reads; an OpenPGP input may hold several signature packets, each counted)
// and succeeds when at least threshold distinct pinned keys signed it (k-of-n;
// threshold < 1 means 1). Keys are distinct by Signer.ID: an OpenPGP key counts
// once whichever of its subkeys signed, a cosign key once whether it signed a raw
// signature or a bundle, a keyless identity once per certificate SAN. Below the
// threshold the error matches ErrThresholdNotMet and ErrRefused and names who did
// and did not count.
func (k *Keys) VerifyThreshold(message []byte, sigs [][]byte, threshold int) (ThresholdResult, error) {
	if threshold < 1 {
		threshold = 1
	}
	if len(sigs) > MaxThresholdSignatures {
		return ThresholdResult{}, refuse(ErrMalformed, "%d signatures offered, more than the %d accepted", len(sigs), MaxThresholdSignatures)
	}
	if k == nil {
		k = &Keys{now: time.Now, log: slog.Default()}
	}
	var res ThresholdResult
	var found []Verified
	var inputs []int
	for i, sig := range sigs {
		vs, err := k.verifyEach(message, sig)
		if err != nil {
			res.Refused = append(res.Refused, fmt.Errorf("signature #%d: %w", i+1, err))
		}
		for _, v := range vs {
			found = append(found, v)
			inputs = append(inputs, i+1)
		}
	}
	return tally(res, found, inputs, threshold)
}

// tally counts the good signatures found (inputs[i] is the 1-based input found[i] came
// from) once per distinct pinned key, and refuses fewer than threshold.
func tally(res ThresholdResult, found []Verified, inputs []int, threshold int) (ThresholdResult, error) {
	seen := map[string]bool{}
	for i, v := range found {
		id := v.Signer.ID()
		if seen[id] {
			res.Refused = append(res.Refused, fmt.Errorf("signature #%d: %s already counted", inputs[i], v.Signer))
			continue
		}
		seen[id] = true
		res.Signers = append(res.Signers, v)
	}
	if len(res.Signers) >= threshold {
		return res, nil
	}
	var who []string
	for _, v := range res.Signers {
		who = append(who, v.Signer.String())
	}
	msg := fmt.Sprintf("%d of the %d required distinct pinned keys signed", len(res.Signers), threshold)
	if len(who) > 0 {
		msg += " (" + strings.Join(who, ", ") + ")"
	}
	if len(res.Refused) > 0 {
		msg += "; first refusal: " + res.Refused[0].Error()
	}
	var first error
	if len(res.Refused) > 0 {
		first = res.Refused[0]
	}
	return res, thresholdRefusal(msg, first)
}

// thresholdError is a k-of-n refusal: it matches ErrThresholdNotMet and, so that a caller
// can still tell why a single signature did not count, the first refusal's reasons.
type thresholdError struct {
	msg   string
	first error
}

func (e *thresholdError) Error() string { return e.msg }
func (e *thresholdError) Unwrap() []error {
	if e.first == nil {
		return []error{ErrThresholdNotMet}
	}
	return []error{ErrThresholdNotMet, e.first}
}

// thresholdRefusal builds the refusal with a bounded message (first is already in msg).
func thresholdRefusal(msg string, first error) error {
	return &thresholdError{msg: quoteCut(ErrThresholdNotMet.Error()+": "+msg, 360), first: first}
}

// verifyEach returns every good pinned signature in one input: each signature
// packet of an OpenPGP input, else the one signature Verify reads. err is the most
// telling refusal when some packet (or the input) did not verify.
func (k *Keys) verifyEach(message, sig []byte) (found []Verified, err error) {
	defer recoverParser(&err)
	if IsSigstoreBundle(sig) {
		v, err := k.Verify(message, sig)
		if err != nil {
			return nil, err
		}
		return []Verified{v}, nil
	}
	head, err := checkSize(sig)
	if err != nil {
		return nil, err
	}
	var body io.Reader
	switch {
	case bytes.HasPrefix(head, pgpSignatureHeader):
		block, err := armor.Decode(bytes.NewReader(head))
		if err != nil {
			return nil, refuse(ErrMalformed, "unreadable OpenPGP armor (%s)", libErr(err))
		}
		if block.Type != openpgp.SignatureType {
			return nil, refuse(ErrMalformed, "armored block is %s, not a PGP SIGNATURE", quote(block.Type, 40))
		}
		body = block.Body
	case head[0]&0x80 != 0 && !bytes.HasPrefix(head, armorHeader):
		body = bytes.NewReader(sig)
	default:
		v, err := k.Verify(message, sig)
		if err != nil {
			return nil, err
		}
		return []Verified{v}, nil
	}
	// Each packet on its own, so that one good signature does not hide the others.
	packets := packet.NewReader(body)
	var best error
	for n := 1; ; n++ {
		p, err := packets.NextWithUnsupported()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return found, refuse(ErrMalformed, "unreadable OpenPGP packet (%s)", libErr(err))
		}
		if n > maxSignaturePackets {
			return found, refuse(ErrMalformed, "more than %d OpenPGP packets", maxSignaturePackets)
		}
		var sigErr error
		switch p := p.(type) {
		case *packet.Signature:
			var signer Signer
			if signer, sigErr = k.checkOpenPGPSignature(message, p); sigErr == nil {
				found = append(found, Verified{Signer: signer, Time: p.CreationTime.UTC(), TimeSource: "openpgp"})
				continue
			}
		case *packet.UnsupportedPacket:
			sigErr = refuse(ErrWeakAlgorithm, "OpenPGP packet with an unsupported algorithm or version (%s)", libErr(p.Error))
		default:
			return found, refuse(ErrMalformed, "OpenPGP data holds a packet that is not a signature")
		}
		if best == nil || rank(sigErr) > rank(best) {
			best = sigErr
		}
	}
	if len(found) == 0 && best == nil {
		return nil, refuse(ErrMalformed, "OpenPGP data holds no signature")
	}
	return found, best
}

// quoteCut shortens an already printable message to at most max bytes, on a rune
// boundary.
func quoteCut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
