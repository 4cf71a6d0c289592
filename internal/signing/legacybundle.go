package signing

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strconv"
)

// cosign before v3 wrote "sign-blob --bundle" output in a format of its own (the
// "legacy" or "cosign" bundle): the base64 signature, the base64 PEM certificate
// (keyless) and the Rekor entry with its signed entry timestamp. GoReleaser
// published checksums.txt.sigstore.json in that format for years. Such a file is
// rewritten here, field for field, as the Sigstore bundle v0.1 it is equivalent to
// (a certificate, one hashedrekord log entry with its inclusion promise, a message
// signature), and then verified by sigstore-go like any other bundle: nothing in it
// is trusted before that verification.
type legacyBundle struct {
	Base64Signature string `json:"base64Signature"`
	Cert            string `json:"cert"`
	RekorBundle     *struct {
		SignedEntryTimestamp string `json:"SignedEntryTimestamp"`
		Payload              struct {
			Body           string `json:"body"`
			IntegratedTime int64  `json:"integratedTime"`
			LogIndex       int64  `json:"logIndex"`
			LogID          string `json:"logID"`
		} `json:"Payload"`
	} `json:"rekorBundle"`
}

// isLegacyBundle reports whether data looks like a cosign legacy bundle: a JSON
// object with base64Signature (a key-pair bundle made without the transparency log
// has nothing else).
func isLegacyBundle(data []byte) bool {
	head := bytes.TrimLeft(data, " \t\r\n")
	if len(head) == 0 || head[0] != '{' || len(data) > MaxBundleSize {
		return false
	}
	var probe struct {
		Sig *string `json:"base64Signature"`
	}
	return json.Unmarshal(head, &probe) == nil && probe.Sig != nil
}

// hashedRekordBody is the part of a Rekor hashedrekord entry the conversion reads.
type hashedRekordBody struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       struct {
		Data struct {
			Hash struct {
				Algorithm string `json:"algorithm"`
				Value     string `json:"value"`
			} `json:"hash"`
		} `json:"data"`
	} `json:"spec"`
}

// legacyToBundle rewrites a cosign legacy bundle as a Sigstore bundle v0.1 (JSON).
// The message digest of a Sigstore bundle is an unauthenticated hint (the
// signature is verified over the artifact itself); it is taken from the Rekor
// entry, or, for a bundle without one, from artifactSHA256, the caller's SHA-256
// of the artifact (nil when unknown: such a bundle is then refused).
func legacyToBundle(data, artifactSHA256 []byte) ([]byte, error) {
	var lb legacyBundle
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&lb); err != nil {
		return nil, refuse(ErrMalformed, "unreadable cosign bundle (%s)", libErr(err))
	}
	if lb.Base64Signature == "" {
		return nil, refuse(ErrMalformed, "cosign bundle without a signature")
	}
	if _, err := base64.StdEncoding.DecodeString(lb.Base64Signature); err != nil {
		return nil, refuse(ErrMalformed, "cosign bundle signature is not base64")
	}
	digest := artifactSHA256
	var entries []any
	if lb.RekorBundle != nil {
		p := lb.RekorBundle.Payload
		rawBody, err := base64.StdEncoding.DecodeString(p.Body)
		if err != nil {
			return nil, refuse(ErrMalformed, "cosign bundle Rekor body is not base64")
		}
		var body hashedRekordBody
		if err := json.Unmarshal(rawBody, &body); err != nil {
			return nil, refuse(ErrMalformed, "cosign bundle Rekor body is not JSON (%s)", libErr(err))
		}
		if body.Kind != "hashedrekord" {
			return nil, refuse(ErrMalformed, "cosign bundle Rekor entry of kind %s, not hashedrekord (a signature over a file)", quote(body.Kind, 40))
		}
		if body.Spec.Data.Hash.Algorithm != "sha256" {
			return nil, refuse(ErrMalformed, "cosign bundle Rekor entry hashes with %s, not sha256", quote(body.Spec.Data.Hash.Algorithm, 20))
		}
		digest, err = hex.DecodeString(body.Spec.Data.Hash.Value)
		if err != nil || len(digest) != 32 {
			return nil, refuse(ErrMalformed, "cosign bundle Rekor entry has no SHA-256 digest")
		}
		logID, err := hex.DecodeString(p.LogID)
		if err != nil || len(logID) == 0 {
			return nil, refuse(ErrMalformed, "cosign bundle Rekor log ID is not hex")
		}
		if _, err := base64.StdEncoding.DecodeString(lb.RekorBundle.SignedEntryTimestamp); err != nil || lb.RekorBundle.SignedEntryTimestamp == "" {
			return nil, refuse(ErrMalformed, "cosign bundle without a readable signed entry timestamp")
		}
		entries = append(entries, map[string]any{
			"logIndex":          strconv.FormatInt(p.LogIndex, 10),
			"logId":             map[string]string{"keyId": base64.StdEncoding.EncodeToString(logID)},
			"kindVersion":       map[string]string{"kind": body.Kind, "version": body.APIVersion},
			"integratedTime":    strconv.FormatInt(p.IntegratedTime, 10),
			"inclusionPromise":  map[string]string{"signedEntryTimestamp": lb.RekorBundle.SignedEntryTimestamp},
			"canonicalizedBody": p.Body,
		})
	}
	if len(digest) != 32 {
		return nil, refuse(ErrMalformed, "cosign bundle without a Rekor entry can only be checked against the file's SHA-256")
	}

	material := map[string]any{}
	if lb.Cert != "" {
		pemBytes, err := base64.StdEncoding.DecodeString(lb.Cert)
		if err != nil {
			return nil, refuse(ErrMalformed, "cosign bundle certificate is not base64")
		}
		var ders []map[string]string
		for rest := pemBytes; len(bytes.TrimSpace(rest)) > 0; {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil || block.Type != "CERTIFICATE" {
				return nil, refuse(ErrMalformed, "cosign bundle certificate is not a PEM certificate")
			}
			ders = append(ders, map[string]string{"rawBytes": base64.StdEncoding.EncodeToString(block.Bytes)})
		}
		material["x509CertificateChain"] = map[string]any{"certificates": ders}
	} else {
		material["publicKey"] = map[string]string{"hint": ""}
	}
	if len(entries) > 0 {
		material["tlogEntries"] = entries
	}
	out, err := json.Marshal(map[string]any{
		"mediaType":            bundleMediaPrefix + "+json;version=0.1",
		"verificationMaterial": material,
		"messageSignature": map[string]any{
			"messageDigest": map[string]string{"algorithm": "SHA2_256", "digest": base64.StdEncoding.EncodeToString(digest)},
			"signature":     lb.Base64Signature,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("re-encoding a cosign bundle: %w", err)
	}
	return out, nil
}
