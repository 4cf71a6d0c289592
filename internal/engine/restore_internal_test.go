package engine

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// A copy counts as the source's bytes on the store's word only when the store reports the
// same size and at least one checksum both sides have, with none of them differing.
func TestSameStoredBytes(t *testing.T) {
	md5a, md5b := []byte{1, 2, 3}, []byte{1, 2, 4}
	src := ObjectAttrs{Generation: 1, Size: 10, CRC32C: 7, HasCRC32C: true, MD5: md5a}
	for _, c := range []struct {
		name string
		src  ObjectAttrs
		dst  ObjectAttrs
		same bool
	}{
		{"both checksums equal", src, ObjectAttrs{Generation: 2, Size: 10, CRC32C: 7, HasCRC32C: true, MD5: md5a}, true},
		{"CRC32C only (a composite object)", ObjectAttrs{Generation: 1, Size: 10, CRC32C: 7, HasCRC32C: true},
			ObjectAttrs{Generation: 2, Size: 10, CRC32C: 7, HasCRC32C: true}, true},
		{"MD5 only", ObjectAttrs{Generation: 1, Size: 10, MD5: md5a}, ObjectAttrs{Generation: 2, Size: 10, MD5: md5a}, true},
		{"other CRC32C", src, ObjectAttrs{Generation: 2, Size: 10, CRC32C: 8, HasCRC32C: true, MD5: md5a}, false},
		{"other MD5", src, ObjectAttrs{Generation: 2, Size: 10, CRC32C: 7, HasCRC32C: true, MD5: md5b}, false},
		{"other size", src, ObjectAttrs{Generation: 2, Size: 11, CRC32C: 7, HasCRC32C: true, MD5: md5a}, false},
		{"no checksum in common", ObjectAttrs{Generation: 1, Size: 10, MD5: md5a},
			ObjectAttrs{Generation: 2, Size: 10, CRC32C: 7, HasCRC32C: true}, false},
		{"no checksums at all", ObjectAttrs{Generation: 1, Size: 10}, ObjectAttrs{Generation: 2, Size: 10}, false},
		{"no generation in the answer", src, ObjectAttrs{Size: 10, CRC32C: 7, HasCRC32C: true, MD5: md5a}, false},
	} {
		assert.Equal(t, c.same, sameStoredBytes(c.src, c.dst), c.name)
	}
}
