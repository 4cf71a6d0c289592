package signing

import (
	"crypto"
	"fmt"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// The OpenPGP algorithm policy: for each hash and public-key algorithm, the date from
// which it no longer vouches for anything. The dates are those of Sequoia's
// StandardPolicy (sequoia-openpgp, src/policy.rs), where this file is stricter it
// says so. go-crypto's v1 API accepts SHA-1 and RSA-1024, so nothing here is left to
// the library.
//
// When each table is evaluated:
//
//   - a data signature's hash, at the current time: a weak hash also makes the
//     signature's creation date (which it covers) worthless as evidence;
//   - the signing key's algorithm and size, at the current time: a broken key forges
//     signatures with any date;
//   - self-signatures and subkey bindings, at the data signature's creation time (a
//     date covered by a hash that passed the first check): whether the key holder's
//     certificate was still acceptable when they signed. At load time, with no
//     signature yet, at the current time: a key whose bindings are refused now cannot
//     vouch for a release made now, so it is refused up front.
//
// Revocations are honoured whatever their hash: ignoring one can only make a key
// trusted that its owner gave up (stricter than Sequoia, which ignores revocations
// with a hash past its cut-off plus seven years).

// accepted marks an algorithm with no known weakness; refusedAlways one that is never
// accepted (its cut-off is the epoch).
var (
	accepted      = time.Time{}
	refusedAlways = time.Unix(0, 0).UTC()
)

func cutoff(year int, month time.Month) time.Time {
	return time.Date(year, month, 1, 0, 0, 0, 0, time.UTC)
}

// hashRule holds a hash's cut-offs by what the signature needs from it.
type hashRule struct {
	name string
	// documents: collision resistance, for data signatures (and third-party
	// certifications, which tamperguard does not use).
	documents time.Time
	// bindings: second pre-image resistance, enough for self-signatures over user IDs,
	// subkey bindings and primary-key bindings, whose content the attacker cannot choose.
	bindings time.Time
}

// hashPolicy is Sequoia's CollisionResistantHashCutoffList and
// SecondPreImageResistantHashCutoffList. A hash not listed is refused.
var hashPolicy = map[crypto.Hash]hashRule{
	crypto.MD5:       {"MD5", cutoff(1997, time.February), cutoff(2004, time.February)},
	crypto.SHA1:      {"SHA-1", cutoff(2013, time.February), cutoff(2023, time.February)},
	crypto.RIPEMD160: {"RIPEMD-160", cutoff(2013, time.February), cutoff(2013, time.February)},
	crypto.SHA224:    {"SHA-224", accepted, accepted},
	crypto.SHA256:    {"SHA-256", accepted, accepted},
	crypto.SHA384:    {"SHA-384", accepted, accepted},
	crypto.SHA512:    {"SHA-512", accepted, accepted},
	crypto.SHA3_256:  {"SHA3-256", accepted, accepted},
	crypto.SHA3_512:  {"SHA3-512", accepted, accepted},
}

// refusedAt reports whether an algorithm with this cut-off is refused at t.
func refusedAt(cut, t time.Time) bool { return !cut.IsZero() && !t.Before(cut) }

// since renders a cut-off for messages.
func since(cut time.Time) string {
	if cut.Equal(refusedAlways) {
		return "refused at any date"
	}
	return "refused since " + cut.Format("2006-01-02") + " per the standard policy"
}

// pgpPolicy applies the tables, with the per-rule relaxations an operator chose.
type pgpPolicy struct {
	allowSHA1SelfSigs bool // Options.AllowSHA1SelfSignaturesUnsafe
}

func hashRuleOf(h crypto.Hash) hashRule {
	if r, ok := hashPolicy[h]; ok {
		return r
	}
	name := "an unknown hash"
	if h != 0 {
		name = h.String()
	}
	return hashRule{name, refusedAlways, refusedAlways}
}

// dataHash judges the hash of a data signature at t.
func (p pgpPolicy) dataHash(h crypto.Hash, t time.Time) error {
	r := hashRuleOf(h)
	if refusedAt(r.documents, t) {
		return because(ErrWeakAlgorithm, "uses %s (%s for data signatures)", r.name, since(r.documents))
	}
	return nil
}

// bindingHash judges the hash of a self-signature or key binding at t. relaxed is
// true when only AllowSHA1SelfSignaturesUnsafe let it pass; the caller logs that.
func (p pgpPolicy) bindingHash(what string, h crypto.Hash, t time.Time) (relaxed bool, err error) {
	r := hashRuleOf(h)
	if !refusedAt(r.bindings, t) {
		return false, nil
	}
	if h == crypto.SHA1 && p.allowSHA1SelfSigs {
		return true, nil
	}
	msg := fmt.Sprintf("%s uses %s (%s): refresh it (gpg --quick-set-expire FINGERPRINT EXPIRY, and with '*' for subkeys) and re-pin it", what, r.name, since(r.bindings))
	if h == crypto.SHA1 {
		msg += ", or set keys.openpgp_allow_sha1_self_signatures_unsafe: true (unsafe)"
	}
	return false, because(ErrWeakAlgorithm, "%s", msg)
}

// asymmetric classifies a public key as Sequoia's AsymmetricAlgorithm does and
// returns its cut-off.
func asymmetric(pk *packet.PublicKey) (name string, cut time.Time) {
	switch pk.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSASignOnly, packet.PubKeyAlgoRSAEncryptOnly:
		bits, err := pk.BitLength()
		if err != nil {
			return "an unreadable RSA key", refusedAlways
		}
		if bits < 2048 {
			return fmt.Sprintf("RSA key of %d bits (at least 2048 required)", bits), cutoff(2014, time.February)
		}
		return "RSA", accepted
	case packet.PubKeyAlgoDSA:
		// Sequoia: DSA-1024 until 2014, larger until 2030. tamperguard refuses DSA
		// outright: nobody signs releases with it, and gpg stopped making it.
		return "DSA key", refusedAlways
	case packet.PubKeyAlgoElGamal:
		return "ElGamal key", refusedAlways // encryption only; Sequoia: 2014 / 2025
	case packet.PubKeyAlgoECDSA, packet.PubKeyAlgoECDH, packet.PubKeyAlgoEdDSA:
		curve, err := pk.Curve()
		if err != nil {
			return "a key on an unknown curve", refusedAlways
		}
		switch curve {
		case packet.CurveNistP256, packet.CurveNistP384, packet.CurveNistP521,
			packet.CurveBrainpoolP256, packet.CurveBrainpoolP384, packet.CurveBrainpoolP512,
			packet.Curve25519, packet.Curve448:
			return string(curve), accepted
		}
		return fmt.Sprintf("a key on curve %s (not in the standard policy)", quote(string(curve), 20)), refusedAlways
	case packet.PubKeyAlgoEd25519, packet.PubKeyAlgoX25519, packet.PubKeyAlgoEd448, packet.PubKeyAlgoX448:
		return "EdDSA/ECDH", accepted
	}
	return fmt.Sprintf("public-key algorithm %d (not in the standard policy)", pk.PubKeyAlgo), refusedAlways
}

// key judges a public key's algorithm and size at t.
func (p pgpPolicy) key(pk *packet.PublicKey, t time.Time) error {
	name, cut := asymmetric(pk)
	if refusedAt(cut, t) {
		return because(ErrWeakAlgorithm, "%s (%s)", name, since(cut))
	}
	return nil
}
