package signing

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/sigstore/sigstore/pkg/signature/options"

	"github.com/tamperguard/tamperguard/internal/checksum"
)

// maxFileChecks bounds the signatures by pinned keys that one FileCheck verifies: each
// one hashes the whole file, so a signature file that names a pinned key many times must
// not make a large object cost many passes.
const maxFileChecks = 8

// FileCheck checks detached signatures over a file while the file streams through it,
// so that an object of any size is verified in constant memory: what the signatures say
// is read first (NewFileCheck), the file is written to it, and Result verifies. It reads
// the formats Verify reads (armored or binary OpenPGP, each signature packet counted; SSH
// signatures, hashed with the signature's own sha256 or sha512 as sshsig defines; base64
// cosign signatures by ECDSA or RSA keys; Sigstore message-signature bundles, checked
// against the streamed digest) and counts distinct pinned keys as VerifyThreshold does.
// A FileCheck is used once, by one goroutine.
type FileCheck struct {
	k         *Keys
	threshold int
	checks    []*fileSig
	refused   []error
	digests   map[crypto.Hash]hash.Hash // shared plain digests of the file (SSH, cosign, bundles)
	writers   []io.Writer
	size      int64
}

// fileSig is one signature prepared for a file.
type fileSig struct {
	input  int // 1-based position among the signature inputs
	pgp    *pgpPrepared
	ssh    *sshPrepared
	cosign []byte // a decoded raw cosign signature
	bundle []byte // a Sigstore bundle
	alg    checksum.Algorithm
}

// NewFileCheck reads the signatures (each one input, as VerifyThreshold takes them) and
// prepares to check them over a file. It refuses, before any byte of the file is read,
// signatures that can never count: not one of the formats, by a key that is not pinned,
// with a weak algorithm. When fewer than threshold signatures are left, the error matches
// ErrThresholdNotMet (and ErrRefused) and names the first refusal.
func (k *Keys) NewFileCheck(sigs [][]byte, threshold int) (*FileCheck, error) {
	if threshold < 1 {
		threshold = 1
	}
	if len(sigs) > MaxThresholdSignatures {
		return nil, refuse(ErrMalformed, "%d signatures offered, more than the %d accepted", len(sigs), MaxThresholdSignatures)
	}
	if k == nil {
		k = &Keys{now: time.Now, log: slog.Default()}
	}
	c := &FileCheck{k: k, threshold: threshold, digests: map[crypto.Hash]hash.Hash{}}
	for i, sig := range sigs {
		found, err := k.prepareInput(i+1, sig)
		if err != nil {
			c.refused = append(c.refused, fmt.Errorf("signature #%d: %w", i+1, err))
		}
		c.checks = append(c.checks, found...)
	}
	if len(c.checks) > maxFileChecks {
		return nil, refuse(ErrMalformed, "%d signatures by pinned keys offered, more than the %d checked over one file", len(c.checks), maxFileChecks)
	}
	if len(c.checks) < threshold {
		msg := fmt.Sprintf("%d signatures by pinned keys offered, %d distinct pinned keys required", len(c.checks), threshold)
		var first error
		if len(c.refused) > 0 {
			first = c.refused[0]
			msg += "; first refusal: " + first.Error()
		}
		return nil, thresholdRefusal(msg, first)
	}
	for _, s := range c.checks {
		switch {
		case s.pgp != nil:
			c.writers = append(c.writers, s.pgp.hashed)
		case s.ssh != nil:
			c.digest(s.ssh.sig.hashAlg)
		case s.cosign != nil:
			for _, key := range k.cosign {
				for _, h := range key.hashes {
					if h != 0 {
						c.digestOf(h)
					}
				}
			}
		case s.bundle != nil:
			c.digestOf(cryptoHash(s.alg))
		}
	}
	return c, nil
}

// digest makes sure the file's digest with sshsig's hash name is computed.
func (c *FileCheck) digest(name string) {
	switch name {
	case "sha256":
		c.digestOf(crypto.SHA256)
	case "sha512":
		c.digestOf(crypto.SHA512)
	}
}

func (c *FileCheck) digestOf(h crypto.Hash) {
	if _, ok := c.digests[h]; ok {
		return
	}
	var d hash.Hash
	switch h {
	case crypto.SHA256:
		d = sha256.New()
	case crypto.SHA384:
		d = sha512.New384()
	case crypto.SHA512:
		d = sha512.New()
	default:
		return
	}
	c.digests[h] = d
	c.writers = append(c.writers, d)
}

func cryptoHash(a checksum.Algorithm) crypto.Hash {
	if a == checksum.SHA512 {
		return crypto.SHA512
	}
	return crypto.SHA256
}

// prepareInput reads one signature input: every signature packet of an OpenPGP input,
// else its one signature. err is the most telling refusal of what did not count.
func (k *Keys) prepareInput(n int, sig []byte) (found []*fileSig, err error) {
	defer recoverParser(&err)
	if IsSigstoreBundle(sig) {
		alg, err := k.bundleForFile(sig)
		if err != nil {
			return nil, err
		}
		return []*fileSig{{input: n, bundle: sig, alg: alg}}, nil
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
	case bytes.HasPrefix(head, sshSignatureHeader):
		p, err := k.prepareSSH(head)
		if err != nil {
			return nil, err
		}
		if _, err := p.sig.newHash(); err != nil {
			return nil, refuse(ErrWeakAlgorithm, "SSH signature by %s: %v", p.signedBy, err)
		}
		return []*fileSig{{input: n, ssh: p}}, nil
	case bytes.HasPrefix(head, clearsignedHeader):
		return nil, refuse(ErrMalformed, "a clearsigned message is not a detached signature over a file")
	case bytes.HasPrefix(head, armorHeader):
		return nil, refuse(ErrMalformed, "unsupported armored block %s", armorType(head))
	case head[0]&0x80 != 0:
		body = bytes.NewReader(sig)
	default:
		raw, err := k.cosignForFile(sig)
		if err != nil {
			return nil, err
		}
		return []*fileSig{{input: n, cosign: raw}}, nil
	}
	packets := packet.NewReader(body)
	var best error
	for i := 1; ; i++ {
		p, err := packets.NextWithUnsupported()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return found, refuse(ErrMalformed, "unreadable OpenPGP packet (%s)", libErr(err))
		}
		if i > maxSignaturePackets {
			return found, refuse(ErrMalformed, "more than %d OpenPGP packets", maxSignaturePackets)
		}
		var sigErr error
		switch p := p.(type) {
		case *packet.Signature:
			prep, err := k.prepareOpenPGP(p)
			if err == nil {
				found = append(found, &fileSig{input: n, pgp: prep})
				continue
			}
			sigErr = err
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

// cosignForFile decodes a raw cosign signature that can be checked from the file's
// digest: some pinned cosign key is ECDSA or RSA (pure Ed25519 signs the file itself).
func (k *Keys) cosignForFile(sig []byte) ([]byte, error) {
	text := bytes.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, bytes.TrimSpace(sig))
	raw, err := base64.StdEncoding.DecodeString(string(text))
	if err != nil || len(raw) == 0 {
		return nil, refuse(ErrMalformed, "not a recognised signature (armored OpenPGP, binary OpenPGP, armored SSH, base64 cosign or a Sigstore bundle)")
	}
	if len(raw) > maxCosignSignature {
		return nil, refuse(ErrMalformed, "cosign signature of %d bytes is too large", len(raw))
	}
	if len(k.cosign) == 0 {
		return nil, refuse(ErrUnknownKey, "cosign signature, but no cosign key is pinned")
	}
	for _, key := range k.cosign {
		for _, h := range key.hashes {
			if h != 0 {
				return raw, nil
			}
		}
	}
	return nil, refuse(ErrWeakAlgorithm, "cosign signature over a file, but every pinned cosign key is Ed25519, whose signatures cover the whole file and cannot be checked while it streams")
}

// bundleForFile reads what a message-signature bundle signs (a SHA-256 digest unless the
// bundle says SHA2_512) and refuses, before the file is read, a bundle that nothing pinned
// could verify: signed with a key while no cosign key is pinned, keyless while no identity is.
func (k *Keys) bundleForFile(data []byte) (checksum.Algorithm, error) {
	if len(data) > MaxBundleSize {
		return 0, refuse(ErrMalformed, "Sigstore bundle is %d bytes, more than the %d accepted", len(data), MaxBundleSize)
	}
	if !isProtoBundle(data) {
		// cosign's pre-v3 format: a certificate makes it keyless; it signs SHA-256 digests.
		var probe struct {
			Cert string `json:"cert"`
		}
		keyless := json.Unmarshal(data, &probe) == nil && probe.Cert != ""
		return checksum.SHA256, k.bundleSignerPinned(keyless)
	}
	b, err := parseBundle(data, nil)
	if err != nil {
		return 0, err
	}
	vc, err := b.VerificationContent()
	if err != nil {
		return 0, refuse(ErrMalformed, "Sigstore bundle without usable verification material (%s)", libErr(err))
	}
	if err := k.bundleSignerPinned(vc.Certificate() != nil); err != nil {
		return 0, err
	}
	sc, err := b.SignatureContent()
	if err != nil {
		return 0, refuse(ErrMalformed, "Sigstore bundle without signature content (%s)", libErr(err))
	}
	m := sc.MessageSignatureContent()
	if m == nil {
		return 0, refuse(ErrMalformed, "Sigstore bundle is an attestation (DSSE envelope), not a signature over the file")
	}
	switch m.DigestAlgorithm() {
	case "SHA2_512":
		return checksum.SHA512, nil
	case "SHA2_256", "":
		return checksum.SHA256, nil
	}
	return 0, refuse(ErrWeakAlgorithm, "Sigstore bundle signs a %s digest (SHA2_256 or SHA2_512 accepted)", quote(m.DigestAlgorithm(), 20))
}

// bundleSignerPinned refuses a bundle whose kind of signer nothing pinned can vouch for.
func (k *Keys) bundleSignerPinned(keyless bool) error {
	switch {
	case keyless && (k.sigstore == nil || len(k.sigstore.identities) == 0):
		return refuse(ErrUnknownKey, "keyless Sigstore bundle, but no Sigstore identity is pinned (keys.sigstore)")
	case !keyless && len(k.cosign) == 0:
		return refuse(ErrUnknownKey, "Sigstore bundle signed with a key, but no cosign key is pinned")
	}
	return nil
}

// Write hashes the next bytes of the file. It never fails.
func (c *FileCheck) Write(p []byte) (int, error) {
	for _, w := range c.writers {
		_, _ = w.Write(p)
	}
	c.size += int64(len(p))
	return len(p), nil
}

// Size is how many bytes were written.
func (c *FileCheck) Size() int64 { return c.size }

// Result verifies every prepared signature over the bytes written and succeeds when at
// least the threshold of distinct pinned keys signed them; below it the error matches
// ErrThresholdNotMet and ErrRefused. Signatures refused by NewFileCheck are in
// Result's Refused list too.
func (c *FileCheck) Result() (ThresholdResult, error) {
	res := ThresholdResult{Refused: append([]error(nil), c.refused...)}
	var found []Verified
	var inputs []int
	for _, s := range c.checks {
		v, err := c.finish(s)
		if err != nil {
			res.Refused = append(res.Refused, fmt.Errorf("signature #%d: %w", s.input, err))
			continue
		}
		found = append(found, v)
		inputs = append(inputs, s.input)
	}
	return tally(res, found, inputs, c.threshold)
}

// finish verifies one prepared signature over the streamed file.
func (c *FileCheck) finish(s *fileSig) (v Verified, err error) {
	defer recoverParser(&err)
	k := c.k
	switch {
	case s.pgp != nil:
		signer, err := k.finishOpenPGP(s.pgp)
		if err != nil {
			return Verified{}, err
		}
		return Verified{Signer: signer, Time: s.pgp.sig.CreationTime.UTC(), TimeSource: "openpgp"}, nil
	case s.ssh != nil:
		h, err := s.ssh.sig.newHash()
		if err != nil {
			return Verified{}, refuse(ErrWeakAlgorithm, "SSH signature by %s: %v", s.ssh.signedBy, err)
		}
		d := c.digests[cryptoHashOf(h.Size())]
		now := k.now().UTC()
		signer, err := k.finishSSH(s.ssh, d.Sum(nil), sshContext{at: now,
			atText: "verified " + now.Format(time.RFC3339) + "; a detached signature is judged at the current time"})
		return Verified{Signer: signer}, err
	case s.cosign != nil:
		for _, key := range k.cosign {
			for i, sv := range key.verifiers {
				h := key.hashes[i]
				if h == 0 {
					continue
				}
				if sv.VerifySignature(bytes.NewReader(s.cosign), nil, options.WithDigest(c.digests[h].Sum(nil))) == nil {
					return Verified{Signer: key.signer}, nil
				}
			}
		}
		return Verified{}, refuse(ErrBadSignature, "cosign signature does not verify with any pinned cosign key (other key, or altered content)")
	default:
		sum := checksum.SumOf(s.alg, c.digests[cryptoHash(s.alg)])
		return k.VerifyBundleDigest(sum, s.bundle)
	}
}

func cryptoHashOf(size int) crypto.Hash {
	if size == sha512.Size {
		return crypto.SHA512
	}
	return crypto.SHA256
}
