package release

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The fixture was compressed by github.com/golang/snappy (testdata/gen-wire.sh), as GitHub
// serves bundles from bundle_url.
func TestUnsnappyRealBlock(t *testing.T) {
	want := webFixture(t, "sigstore", "sigstore-js-2.0.0.provenance.sigstore.json")
	sn := webFixture(t, "sigstore", "sigstore-js-2.0.0.provenance.sigstore.json.sn")
	require.Less(t, len(sn), len(want), "compressed")
	got, err := unsnappy(sn, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	_, err = unsnappy(sn, len(want)-1)
	assert.ErrorIs(t, err, errSnappy, "over the bound: refused before it is expanded")
	assert.ErrorContains(t, err, "more than")

	// Truncated or altered blocks are refused, never half-decoded.
	for _, bad := range [][]byte{sn[:len(sn)/2], sn[:1], nil, append(bytes.Clone(sn), 0x00)} {
		_, err := unsnappy(bad, 1<<20)
		assert.ErrorIs(t, err, errSnappy)
	}
}

// The framing format: the stream identifier, then chunks with their masked CRC-32C.
func TestUnsnappyFramed(t *testing.T) {
	want := webFixture(t, "sigstore", "sigstore-js-2.0.0.provenance.sigstore.json")
	sn := webFixture(t, "sigstore", "sigstore-js-2.0.0.provenance.sigstore.json.sn")
	chunk := func(kind byte, body []byte) []byte {
		h := []byte{kind, byte(len(body)), byte(len(body) >> 8), byte(len(body) >> 16)}
		return append(h, body...)
	}
	crc := binary.LittleEndian.AppendUint32(nil, snappyCRC(want))
	stream := append(bytes.Clone(snappyFrameMagic), chunk(0x00, append(bytes.Clone(crc), sn...))...)
	stream = append(stream, chunk(0xfe, []byte("padding"))...)
	got, err := unsnappy(stream, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	stream[len(snappyFrameMagic)+4] ^= 1 // the checksum
	_, err = unsnappy(stream, 1<<20)
	assert.ErrorIs(t, err, errSnappy)

	raw := append(bytes.Clone(snappyFrameMagic), chunk(0x01, append(binary.LittleEndian.AppendUint32(nil, snappyCRC([]byte("x"))), 'x'))...)
	got, err = unsnappy(raw, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, []byte("x"), got)
	_, err = unsnappy(append(bytes.Clone(snappyFrameMagic), chunk(0x02, nil)...), 1<<20)
	assert.ErrorIs(t, err, errSnappy, "reserved chunk")
	assert.NotZero(t, crc32.Checksum(want, castagnoli))
}

// FuzzUnsnappy: hostile compressed bundles never panic and never expand past the bound.
func FuzzUnsnappy(f *testing.F) {
	f.Add(webFixture(&testing.T{}, "sigstore", "sigstore-js-2.0.0.provenance.sigstore.json.sn"))
	f.Add([]byte("\x05\x10hello"))
	f.Add([]byte("\x0a\x04a\x05\x01"))
	f.Add(append(bytes.Clone(snappyFrameMagic), 0x00, 0x05, 0x00, 0x00, 0, 0, 0, 0, 0))
	const limit = 64 << 10
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := unsnappy(data, limit)
		if err != nil {
			if out != nil {
				t.Fatal("output with an error")
			}
			return
		}
		if len(out) > limit {
			t.Fatalf("%d bytes, over the bound", len(out))
		}
	})
}
