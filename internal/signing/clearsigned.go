package signing

import (
	"bytes"
	"crypto"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// MaxClearsignedSize bounds a clearsigned file: it carries the signed text
// itself (a checksum file), so the bound is the checksum parser's, not
// MaxSignatureSize.
const MaxClearsignedSize = 4 << 20

var clearsignedHeader = []byte("-----BEGIN PGP SIGNED MESSAGE-----")

// IsClearsigned reports whether data is an OpenPGP clearsigned message (RFC 4880
// section 7): it starts, after optional whitespace, with the
// "-----BEGIN PGP SIGNED MESSAGE-----" line. Node.js's SHASUMS256.txt.asc is one.
func IsClearsigned(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), clearsignedHeader)
}

// hashHeaderNames maps a clearsigned "Hash:" header value to its hash.
var hashHeaderNames = map[string]crypto.Hash{
	"MD5": crypto.MD5, "SHA1": crypto.SHA1, "RIPEMD160": crypto.RIPEMD160, "SHA224": crypto.SHA224,
	"SHA256": crypto.SHA256, "SHA384": crypto.SHA384, "SHA512": crypto.SHA512,
	"SHA3-256": crypto.SHA3_256, "SHA3-512": crypto.SHA3_512,
}

// VerifyClearsigned checks a clearsigned message and returns the text that was
// signed: dash-escaping undone, line endings as "\n", trailing spaces and tabs
// removed from each line and no final newline, exactly the text the signature
// covers (RFC 4880 7.1). Anything outside the block is refused, not ignored: the
// file must be one clearsigned block, with only whitespace before or after it, so
// that unsigned text can never be read as if it were signed. The signature must
// be a text signature by a pinned OpenPGP key, made with a hash the "Hash:" header
// lists (when it has one), and passes the same policy as detached signatures.
func (k *Keys) VerifyClearsigned(data []byte) (text []byte, v Verified, err error) {
	defer recoverParser(&err)
	if len(data) > MaxClearsignedSize {
		return nil, Verified{}, refuse(ErrMalformed, "clearsigned file is %d bytes, more than the %d accepted", len(data), MaxClearsignedSize)
	}
	head := bytes.TrimLeft(data, " \t\r\n")
	if !bytes.HasPrefix(head, clearsignedHeader) {
		return nil, Verified{}, refuse(ErrMalformed, "not a clearsigned message (no %q line at the start)", string(clearsignedHeader))
	}
	if k == nil {
		k = &Keys{now: time.Now}
	}
	block, rest := clearsign.Decode(head)
	if block == nil {
		return nil, Verified{}, refuse(ErrMalformed, "unreadable clearsigned message (bad header, unterminated text or unreadable signature armor)")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, Verified{}, refuse(ErrMalformed, "text after the clearsigned block (%d bytes): a clearsigned file holds one block and nothing else", len(bytes.TrimSpace(rest)))
	}
	if block.ArmoredSignature.Type != openpgp.SignatureType {
		return nil, Verified{}, refuse(ErrMalformed, "clearsigned block ends in %s, not a PGP SIGNATURE", quote(block.ArmoredSignature.Type, 40))
	}
	var allowed []crypto.Hash
	for _, name := range block.Headers.Values("Hash") {
		h, ok := hashHeaderNames[strings.ToUpper(strings.TrimSpace(name))]
		if !ok {
			return nil, Verified{}, refuse(ErrMalformed, "clearsigned Hash header names unknown hash %s", quote(name, 20))
		}
		allowed = append(allowed, h)
	}
	accept := func(sig *packet.Signature) error {
		if sig.SigType != packet.SigTypeText {
			return refuse(ErrMalformed, "clearsigned message carries an OpenPGP signature of type 0x%02x, not a text signature", uint8(sig.SigType))
		}
		if len(allowed) > 0 && !containsHash(allowed, sig.Hash) {
			return refuse(ErrMalformed, "clearsigned message: the signature's hash %s is not one its Hash header lists", sig.Hash)
		}
		return nil
	}
	v, err = k.verifySignaturePackets(block.Bytes, block.ArmoredSignature.Body, accept)
	if err != nil {
		return nil, Verified{}, err
	}
	return block.Plaintext, v, nil
}

func containsHash(hs []crypto.Hash, h crypto.Hash) bool {
	for _, x := range hs {
		if x == h {
			return true
		}
	}
	return false
}
