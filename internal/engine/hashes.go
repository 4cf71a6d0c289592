package engine

import (
	"sync"

	"github.com/tamperguard/tamperguard/internal/checksum"
)

// maxKnownHashes bounds the generations whose digest this process remembers.
const maxKnownHashes = 1 << 14

// knownHashes remembers the SHA-256 of generations this process hashed, or that the audit's
// memo (in the state bucket, which only tamperguard writes) recorded. A generation's bytes
// never change, so its digest is a fact for as long as the generation exists: a restore that
// looks for good bytes among older generations need not read one again to know whether it is
// the signed one. Which of the two said it is kept: a copy of a generation hashed here is
// verified by the store's checksums, one known from the memo alone is read back. Nothing
// read from the watched bucket (its MD5, CRC32C or custom metadata) ever lands here.
// Bounded: the oldest entries go first.
type knownHashes struct {
	mu    sync.Mutex
	m     map[genKey]knownHash
	order []genKey // ring of insertion order
	next  int
}

// knownHash is a generation's SHA-256, and whether this process verified it: hashed the
// bytes, or had the store copy bytes it hashed and found the copy's size and checksums equal
// to the source's (else the audit's memo recorded it).
type knownHash struct {
	sum    checksum.Digest
	hashed bool
}

type genKey struct {
	bucket, object string
	gen            int64
}

// put records the digest of a generation this process verified (see knownHash).
func (k *knownHashes) put(bucket, object string, gen int64, d checksum.Digest) {
	k.add(bucket, object, gen, knownHash{sum: d, hashed: true})
}

// remember records the digest the audit's memo gives for a generation, unless this process
// hashed it itself.
func (k *knownHashes) remember(bucket, object string, gen int64, d checksum.Digest) {
	k.add(bucket, object, gen, knownHash{sum: d})
}

func (k *knownHashes) add(bucket, object string, gen int64, d knownHash) {
	if gen <= 0 {
		return
	}
	key := genKey{bucket, object, gen}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = make(map[genKey]knownHash)
		k.order = make([]genKey, 0, maxKnownHashes)
	}
	if old, ok := k.m[key]; ok {
		if d.hashed || !old.hashed {
			k.m[key] = d
		}
		return
	}
	if len(k.order) < maxKnownHashes {
		k.order = append(k.order, key)
	} else {
		delete(k.m, k.order[k.next])
		k.order[k.next] = key
		k.next = (k.next + 1) % maxKnownHashes
	}
	k.m[key] = d
}

func (k *knownHashes) get(bucket, object string, gen int64) (knownHash, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	d, ok := k.m[genKey{bucket, object, gen}]
	return d, ok
}
