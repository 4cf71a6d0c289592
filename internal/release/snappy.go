package release

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// GitHub serves an attestation's Sigstore bundle from its bundle_url snappy-compressed
// (Content-Type application/x-snappy). The bundle is hostile input until it verifies, so it
// is decoded here with a bound on what it may expand to, in the block format of
// https://github.com/google/snappy/blob/main/format_description.txt (and the framing format
// of framing_format.txt, should a server use that).

var errSnappy = errors.New("not valid snappy data")

// snappyFrameMagic starts a snappy framed stream: the stream identifier chunk.
var snappyFrameMagic = []byte("\xff\x06\x00\x00sNaPpY")

// unsnappy decodes a snappy block or framed stream of at most limit decoded bytes.
func unsnappy(src []byte, limit int) ([]byte, error) {
	if bytes.HasPrefix(src, snappyFrameMagic) {
		return unsnappyFramed(src[len(snappyFrameMagic):], limit)
	}
	return unsnappyBlock(src, limit)
}

// unsnappyBlock decodes one snappy block: a varint length, then literals and copies.
func unsnappyBlock(src []byte, limit int) ([]byte, error) {
	n, k := binary.Uvarint(src)
	if k <= 0 || n > uint64(limit) || n > 1<<32-1 {
		if k > 0 {
			return nil, fmt.Errorf("%w: it expands to %d bytes, more than the %d accepted", errSnappy, n, limit)
		}
		return nil, fmt.Errorf("%w: no length", errSnappy)
	}
	dst := make([]byte, 0, int(n))
	src = src[k:]
	for len(src) > 0 {
		tag := src[0]
		src = src[1:]
		var length, offset int
		switch tag & 3 {
		case 0: // literal
			length = int(tag >> 2)
			if length >= 60 {
				size := length - 59 // 1 to 4 bytes of length
				if len(src) < size {
					return nil, fmt.Errorf("%w: truncated literal length", errSnappy)
				}
				var b [4]byte
				copy(b[:], src[:size])
				length = int(binary.LittleEndian.Uint32(b[:]))
				src = src[size:]
			}
			length++
			if length <= 0 || length > len(src) || length > int(n)-len(dst) {
				return nil, fmt.Errorf("%w: literal of %d bytes past the end", errSnappy, length)
			}
			dst = append(dst, src[:length]...)
			src = src[length:]
			continue
		case 1: // copy, 1-byte offset
			if len(src) < 1 {
				return nil, fmt.Errorf("%w: truncated copy", errSnappy)
			}
			length = 4 + int(tag>>2&7)
			offset = int(tag>>5)<<8 | int(src[0])
			src = src[1:]
		case 2: // copy, 2-byte offset
			if len(src) < 2 {
				return nil, fmt.Errorf("%w: truncated copy", errSnappy)
			}
			length = 1 + int(tag>>2)
			offset = int(binary.LittleEndian.Uint16(src))
			src = src[2:]
		case 3: // copy, 4-byte offset
			if len(src) < 4 {
				return nil, fmt.Errorf("%w: truncated copy", errSnappy)
			}
			length = 1 + int(tag>>2)
			offset = int(binary.LittleEndian.Uint32(src))
			src = src[4:]
		}
		if offset <= 0 || offset > len(dst) || length > int(n)-len(dst) {
			return nil, fmt.Errorf("%w: copy of %d bytes from offset %d at %d", errSnappy, length, offset, len(dst))
		}
		// Byte by byte: a copy may overlap what it writes (a run).
		for i := 0; i < length; i++ {
			dst = append(dst, dst[len(dst)-offset])
		}
	}
	if len(dst) != int(n) {
		return nil, fmt.Errorf("%w: %d bytes decoded, %d declared", errSnappy, len(dst), n)
	}
	return dst, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// snappyCRC is the framing format's masked CRC-32C.
func snappyCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return (c>>15 | c<<17) + 0xa282ead8
}

// unsnappyFramed decodes the chunks after a framed stream's identifier.
func unsnappyFramed(src []byte, limit int) ([]byte, error) {
	var out []byte
	for len(src) > 0 {
		if len(src) < 4 {
			return nil, fmt.Errorf("%w: truncated chunk header", errSnappy)
		}
		kind, size := src[0], int(src[1])|int(src[2])<<8|int(src[3])<<16
		src = src[4:]
		if size > len(src) {
			return nil, fmt.Errorf("%w: truncated chunk", errSnappy)
		}
		chunk := src[:size]
		src = src[size:]
		var data []byte
		switch {
		case kind == 0x00 || kind == 0x01:
			if size < 4 {
				return nil, fmt.Errorf("%w: chunk without a checksum", errSnappy)
			}
			data = chunk[4:]
			if kind == 0x00 {
				var err error
				if data, err = unsnappyBlock(data, limit-len(out)); err != nil {
					return nil, err
				}
			}
			if binary.LittleEndian.Uint32(chunk) != snappyCRC(data) {
				return nil, fmt.Errorf("%w: chunk checksum mismatch", errSnappy)
			}
		case kind == 0xff:
			if !bytes.Equal(chunk, snappyFrameMagic[4:]) {
				return nil, fmt.Errorf("%w: bad stream identifier", errSnappy)
			}
			continue
		case kind >= 0x80:
			continue // skippable
		default:
			return nil, fmt.Errorf("%w: reserved chunk type 0x%02x", errSnappy, kind)
		}
		if len(data) > limit-len(out) {
			return nil, fmt.Errorf("%w: it expands to more than the %d bytes accepted", errSnappy, limit)
		}
		out = append(out, data...)
	}
	return out, nil
}
