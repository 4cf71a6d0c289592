package signing

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// maxSignaturePackets bounds the signatures in one detached OpenPGP input
// (one per signer; real files hold one or two).
const maxSignaturePackets = 16

// pgpKey is one pinned OpenPGP key (primary key, its uids and subkeys).
type pgpKey struct {
	entity *openpgp.Entity
	signer Signer
}

// loadOpenPGP reads every key in one configured item, strictly: a key that
// go-crypto would silently skip in a keyring is an error here, because a
// pinned key that quietly disappears is a misconfiguration nobody sees.
func (k *Keys) loadOpenPGP(item []byte) ([]*pgpKey, error) {
	if len(bytes.TrimSpace(item)) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if len(item) > maxKeySize {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d accepted", ErrInvalidKey, len(item), maxKeySize)
	}
	var bodies []io.Reader
	head := bytes.TrimLeft(item, " \t\r\n")
	if bytes.HasPrefix(head, armorHeader) {
		blocks, err := splitArmor(head)
		if err != nil {
			return nil, err
		}
		bodies = blocks
	} else {
		bodies = []io.Reader{bytes.NewReader(item)}
	}

	var entities []*openpgp.Entity
	for _, body := range bodies {
		packets := packet.NewReader(body)
		for {
			e, err := openpgp.ReadEntity(packets)
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%w: not a readable OpenPGP public key (%s)", ErrInvalidKey, libErr(err))
			}
			entities = append(entities, e)
		}
	}
	if len(entities) == 0 {
		return nil, fmt.Errorf("%w: no OpenPGP key found", ErrInvalidKey)
	}

	keys := make([]*pgpKey, 0, len(entities))
	for i, e := range entities {
		fp := strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))
		if err := k.checkEntity(e, fp); err != nil {
			if len(entities) > 1 {
				return nil, fmt.Errorf("key %d of %d (%s): %w", i+1, len(entities), fp, err)
			}
			return nil, fmt.Errorf("%s: %w", fp, err)
		}
		identity := ""
		if id := e.PrimaryIdentity(); id != nil {
			identity = cleanIdentity(id.Name)
		}
		keys = append(keys, &pgpKey{entity: e, signer: Signer{Scheme: "openpgp", Fingerprint: fp, Identity: identity}})
	}
	return keys, nil
}

// splitArmor decodes each armored block of an item; a private key block is
// refused by its header alone, so a broken one is refused too.
func splitArmor(text []byte) ([]io.Reader, error) {
	var bodies []io.Reader
	for len(bytes.TrimSpace(text)) > 0 {
		if !bytes.HasPrefix(text, armorHeader) {
			return nil, fmt.Errorf("%w: unexpected text between armored blocks", ErrInvalidKey)
		}
		next := bytes.Index(text[1:], []byte("\n"+string(armorHeader)))
		var chunk []byte
		if next < 0 {
			chunk, text = text, nil
		} else {
			chunk, text = text[:next+2], text[next+2:]
		}
		firstLine := chunk
		if i := bytes.IndexByte(firstLine, '\n'); i >= 0 {
			firstLine = firstLine[:i]
		}
		if bytes.Contains(firstLine, []byte("PRIVATE KEY")) {
			return nil, fmt.Errorf("%w: this is a PRIVATE key; pin only the public key (gpg --armor --export FINGERPRINT) and keep the private key off this system", ErrPrivateKey)
		}
		block, err := armor.Decode(bytes.NewReader(chunk))
		if err != nil {
			return nil, fmt.Errorf("%w: unreadable OpenPGP armor (%s)", ErrInvalidKey, libErr(err))
		}
		if block.Type != openpgp.PublicKeyType {
			return nil, fmt.Errorf("%w: armored block is %s, not %q", ErrInvalidKey, quote(block.Type, 40), openpgp.PublicKeyType)
		}
		bodies = append(bodies, block.Body)
		text = bytes.TrimLeft(text, " \t\r\n")
	}
	return bodies, nil
}

// checkEntity applies the load-time policy to one key, as of now: could it vouch
// for a release signed now?
func (k *Keys) checkEntity(e *openpgp.Entity, fp string) error {
	if e.PrivateKey != nil {
		return fmt.Errorf("%w: holds PRIVATE key material; pin only the public key (gpg --armor --export)", ErrPrivateKey)
	}
	for _, sk := range e.Subkeys {
		if sk.PrivateKey != nil {
			return fmt.Errorf("%w: holds PRIVATE subkey material; pin only the public key (gpg --armor --export)", ErrPrivateKey)
		}
	}
	if len(e.Revocations) > 0 {
		return because(ErrKeyRevoked, "the primary key is revoked (a revocation certificate is merged in)")
	}
	now := k.now()
	if err := k.policy.key(e.PrimaryKey, now); err != nil {
		return err
	}
	selfSig, _ := e.PrimarySelfSignature()
	if selfSig == nil {
		return fmt.Errorf("%w: no valid self-signature on the primary key", ErrInvalidKey)
	}
	relaxed, err := k.policy.bindingHash("the primary key's self-signature", selfSig.Hash, now)
	if err != nil {
		return err
	}
	signing := 0
	if selfSig.FlagsValid && selfSig.FlagSign && e.PrimaryKey.PubKeyAlgo.CanSign() {
		signing++
	}
	for _, sk := range e.Subkeys {
		if sk.Sig == nil || !sk.Sig.FlagsValid || !sk.Sig.FlagSign || !sk.PublicKey.PubKeyAlgo.CanSign() || len(sk.Revocations) > 0 {
			continue
		}
		if err := k.policy.key(sk.PublicKey, now); err != nil {
			return fmt.Errorf("signing subkey %X: %w", sk.PublicKey.KeyId, err)
		}
		for _, b := range []*packet.Signature{sk.Sig, sk.Sig.EmbeddedSignature} {
			if b == nil {
				continue
			}
			r, err := k.policy.bindingHash(fmt.Sprintf("the binding of signing subkey %X", sk.PublicKey.KeyId), b.Hash, now)
			if err != nil {
				return err
			}
			relaxed = relaxed || r
		}
		signing++
	}
	if signing == 0 {
		return fmt.Errorf("%w: no primary key or subkey may sign (only certify or encrypt)", ErrInvalidKey)
	}
	if relaxed {
		k.log.Warn("UNSAFE: OpenPGP key pinned although its self-signatures use SHA-1, past the standard policy's cut-off, because openpgp_allow_sha1_self_signatures_unsafe is set",
			"fingerprint", fp)
	}
	return nil
}

// verifyOpenPGP checks a detached OpenPGP signature (armored or binary).
// With several signature packets, one good signature by a pinned key is
// enough; otherwise the most telling refusal is returned.
func (k *Keys) verifyOpenPGP(message, data []byte, armored bool) (Signer, error) {
	v, err := k.verifyOpenPGPTimed(message, data, armored)
	return v.Signer, err
}

// verifyOpenPGPTimed is verifyOpenPGP with the good signature's creation time.
func (k *Keys) verifyOpenPGPTimed(message, data []byte, armored bool) (Verified, error) {
	var body io.Reader = bytes.NewReader(data)
	if armored {
		block, err := armor.Decode(body)
		if err != nil {
			return Verified{}, refuse(ErrMalformed, "unreadable OpenPGP armor (%s)", libErr(err))
		}
		if block.Type != openpgp.SignatureType {
			return Verified{}, refuse(ErrMalformed, "armored block is %s, not a PGP SIGNATURE", quote(block.Type, 40))
		}
		body = block.Body
	}
	return k.verifySignaturePackets(message, body, nil)
}

// verifySignaturePackets checks the signature packets read from body over message.
// accept, when set, vets each signature packet first (a clearsigned message
// requires text signatures with a hash its Hash header lists).
func (k *Keys) verifySignaturePackets(message []byte, body io.Reader, accept func(*packet.Signature) error) (Verified, error) {
	packets := packet.NewReader(body)
	var best error
	n := 0
	for {
		p, err := packets.NextWithUnsupported()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Verified{}, refuse(ErrMalformed, "unreadable OpenPGP packet (%s)", libErr(err))
		}
		n++
		if n > maxSignaturePackets {
			return Verified{}, refuse(ErrMalformed, "more than %d OpenPGP packets", maxSignaturePackets)
		}
		var sigErr error
		switch p := p.(type) {
		case *packet.Signature:
			var signer Signer
			if accept != nil {
				if sigErr = accept(p); sigErr != nil {
					break
				}
			}
			signer, sigErr = k.checkOpenPGPSignature(message, p)
			if sigErr == nil {
				return Verified{Signer: signer, Time: p.CreationTime.UTC(), TimeSource: "openpgp"}, nil
			}
		case *packet.UnsupportedPacket:
			sigErr = refuse(ErrWeakAlgorithm, "OpenPGP packet with an unsupported algorithm or version (%s)", libErr(p.Error))
		default:
			return Verified{}, refuse(ErrMalformed, "OpenPGP data holds a packet that is not a signature")
		}
		if best == nil || rank(sigErr) > rank(best) {
			best = sigErr
		}
	}
	if best == nil {
		return Verified{}, refuse(ErrMalformed, "OpenPGP data holds no signature")
	}
	return Verified{}, best
}

// rank orders refusals from several signature packets: a problem with a
// pinned key's signature says more than "someone else signed this too".
func rank(err error) int {
	switch {
	case errors.Is(err, ErrUnknownKey):
		return 0
	case errors.Is(err, ErrMalformed):
		return 1
	default:
		return 2
	}
}

// checkOpenPGPSignature verifies one signature packet against the pinned
// keys and applies the policy explicitly, in this order: document signature,
// known issuer, strong hash, strong key allowed to sign, valid crypto, then
// revocation, dates and expiry as of now.
func (k *Keys) checkOpenPGPSignature(message []byte, sig *packet.Signature) (Signer, error) {
	p, err := k.prepareOpenPGP(sig)
	if err != nil {
		return Signer{}, err
	}
	p.hashed.Write(message)
	return k.finishOpenPGP(p)
}

// pgpPrepared is a signature packet whose issuer is pinned and whose algorithms pass
// the policy, with the hash the signed data is written to (streamed, for a file).
type pgpPrepared struct {
	sig    *packet.Signature
	pk     *pgpKey
	key    openpgp.Key
	h      hash.Hash // the signature's hash
	hashed io.Writer // where the data goes: h, through canonical line endings for a text signature
}

// prepareOpenPGP runs every check that does not need the signed data.
func (k *Keys) prepareOpenPGP(sig *packet.Signature) (*pgpPrepared, error) {
	if sig.SigType != packet.SigTypeBinary && sig.SigType != packet.SigTypeText {
		return nil, refuse(ErrMalformed, "OpenPGP signature of type 0x%02x is not a signature over a file", uint8(sig.SigType))
	}
	pk, key, err := k.findOpenPGPKey(sig)
	if err != nil {
		return nil, err
	}
	now := k.now()
	if err := k.policy.dataHash(sig.Hash, now); err != nil {
		return nil, refuse(ErrWeakAlgorithm, "OpenPGP signature by %s %v", pk.signer.Fingerprint, err)
	}
	if err := k.policy.key(key.PublicKey, now); err != nil {
		return nil, refuse(ErrWeakAlgorithm, "key %s: %v", pk.signer.Fingerprint, err)
	}
	if key.SelfSignature == nil || !key.SelfSignature.FlagsValid || !key.SelfSignature.FlagSign || !key.PublicKey.PubKeyAlgo.CanSign() {
		return nil, refuse(ErrBadSignature, "key %X of %s is not allowed to sign data", key.PublicKey.KeyId, pk.signer.Fingerprint)
	}
	h, err := sig.PrepareVerify()
	if err != nil {
		return nil, refuse(ErrWeakAlgorithm, "OpenPGP signature hash not available (%s)", libErr(err))
	}
	var hashed io.Writer = h
	if sig.SigType == packet.SigTypeText {
		hashed = openpgp.NewCanonicalTextHash(h)
	}
	return &pgpPrepared{sig: sig, pk: pk, key: key, h: h, hashed: hashed}, nil
}

// finishOpenPGP verifies a prepared signature once all the signed data was written.
func (k *Keys) finishOpenPGP(p *pgpPrepared) (Signer, error) {
	if err := p.key.PublicKey.VerifySignature(p.h, p.sig); err != nil {
		return Signer{}, refuse(ErrBadSignature, "OpenPGP signature by %s does not match the content", p.pk.signer.Fingerprint)
	}
	if err := k.checkOpenPGPValidity(p.pk, p.key, p.sig); err != nil {
		return Signer{}, err
	}
	signer := p.pk.signer
	signer.SignedAt = p.sig.CreationTime.UTC()
	return signer, nil
}

// checkOpenPGPValidity checks what makes a cryptographically good signature
// unacceptable: revocation (any, whatever its date or reason), expiry of the
// key or of its binding signatures as of now, weak binding hashes, critical
// notations we do not understand, and impossible dates.
func (k *Keys) checkOpenPGPValidity(pk *pgpKey, key openpgp.Key, sig *packet.Signature) error {
	e := pk.entity
	now := k.now()
	fp := pk.signer.Fingerprint
	bySubkey := key.PublicKey != e.PrimaryKey

	if len(e.Revocations) > 0 {
		return refuse(ErrKeyRevoked, "key %s is revoked", fp)
	}
	if bySubkey && len(key.Revocations) > 0 {
		return refuse(ErrKeyRevoked, "signing subkey %X of %s is revoked", key.PublicKey.KeyId, fp)
	}
	selfSig, identity := e.PrimarySelfSignature()
	if selfSig == nil {
		return refuse(ErrBadSignature, "key %s has no valid self-signature", fp)
	}
	if identity != nil && len(identity.Revocations) > 0 {
		return refuse(ErrKeyRevoked, "the primary user ID of %s is revoked", fp)
	}
	bindings := []*packet.Signature{sig, selfSig}
	if bySubkey {
		bindings = append(bindings, key.SelfSignature)
		if key.SelfSignature.EmbeddedSignature != nil {
			bindings = append(bindings, key.SelfSignature.EmbeddedSignature)
		}
	}
	if sig.CreationTime.After(now.Add(maxClockSkew)) {
		return refuse(ErrBadSignature, "signature by %s is dated %s, in the future", fp, sig.CreationTime.UTC().Format(time.RFC3339))
	}
	if sig.CreationTime.Before(key.PublicKey.CreationTime) {
		return refuse(ErrBadSignature, "signature by %s predates its key", fp)
	}
	// The bindings are judged as of when the data was signed (the data signature's
	// hash already passed the policy as of now, so its date is covered by a strong hash).
	relaxed := false
	for i, b := range bindings[1:] {
		what := "the primary key's self-signature"
		if i > 0 {
			what = fmt.Sprintf("the binding of signing subkey %X", key.PublicKey.KeyId)
		}
		r, err := k.policy.bindingHash(what, b.Hash, sig.CreationTime)
		if err != nil {
			return refuse(ErrWeakAlgorithm, "key %s, signature made %s: %v", fp, sig.CreationTime.UTC().Format("2006-01-02"), err)
		}
		relaxed = relaxed || r
	}
	for _, b := range bindings {
		for _, n := range b.Notations {
			if n.IsCritical {
				return refuse(ErrMalformed, "critical notation %s is not understood", quote(n.Name, 40))
			}
		}
	}

	if e.PrimaryKey.KeyExpired(selfSig, now) {
		return refuse(ErrKeyExpired, "key %s expired%s", fp, expiryText(e.PrimaryKey, selfSig))
	}
	if bySubkey && key.PublicKey.KeyExpired(key.SelfSignature, now) {
		return refuse(ErrKeyExpired, "signing subkey %X of %s expired%s", key.PublicKey.KeyId, fp, expiryText(key.PublicKey, key.SelfSignature))
	}
	for _, b := range bindings[1:] {
		if b.SigExpired(now) {
			return refuse(ErrKeyExpired, "a self-signature of %s expired", fp)
		}
	}
	if sig.SigExpired(now) {
		return refuse(ErrSignatureExpired, "signature by %s expired", fp)
	}
	if relaxed {
		k.log.Warn("UNSAFE: OpenPGP signature accepted although the key's self-signatures use SHA-1, past the standard policy's cut-off, because openpgp_allow_sha1_self_signatures_unsafe is set",
			"fingerprint", fp, "signed", sig.CreationTime.UTC().Format(time.RFC3339))
	}
	return nil
}

func expiryText(pk *packet.PublicKey, sig *packet.Signature) string {
	if sig.KeyLifetimeSecs == nil || *sig.KeyLifetimeSecs == 0 {
		return ""
	}
	at := pk.CreationTime.Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second)
	return " on " + at.UTC().Format(time.RFC3339)
}

// findOpenPGPKey finds the pinned (sub)key that issued sig, by issuer
// fingerprint when the signature carries one, else by key ID. A key carried
// in the signature itself is never used.
func (k *Keys) findOpenPGPKey(sig *packet.Signature) (*pgpKey, openpgp.Key, error) {
	if sig.IssuerFingerprint == nil && sig.IssuerKeyId == nil {
		return nil, openpgp.Key{}, refuse(ErrMalformed, "OpenPGP signature names no issuer")
	}
	match := func(pub *packet.PublicKey) bool {
		if sig.IssuerFingerprint != nil {
			if !bytes.Equal(sig.IssuerFingerprint, pub.Fingerprint) {
				return false
			}
			return sig.IssuerKeyId == nil || *sig.IssuerKeyId == pub.KeyId
		}
		return *sig.IssuerKeyId == pub.KeyId
	}
	for _, pk := range k.pgp {
		e := pk.entity
		if match(e.PrimaryKey) {
			selfSig, _ := e.PrimarySelfSignature()
			return pk, openpgp.Key{Entity: e, PublicKey: e.PrimaryKey, SelfSignature: selfSig, Revocations: e.Revocations}, nil
		}
		for _, sk := range e.Subkeys {
			if match(sk.PublicKey) {
				return pk, openpgp.Key{Entity: e, PublicKey: sk.PublicKey, SelfSignature: sk.Sig, Revocations: sk.Revocations}, nil
			}
		}
	}
	issuer := "unknown"
	switch {
	case sig.IssuerFingerprint != nil:
		issuer = strings.ToUpper(hex.EncodeToString(sig.IssuerFingerprint))
		if len(issuer) > 64 {
			issuer = issuer[:64] + "…"
		}
	case sig.IssuerKeyId != nil:
		issuer = fmt.Sprintf("key ID %016X", *sig.IssuerKeyId)
	}
	return nil, openpgp.Key{}, refuse(ErrUnknownKey, "OpenPGP signature by %s", issuer)
}
