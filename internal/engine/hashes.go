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
// the signed one (the restored generation is still read back and hashed). Nothing read from
// the watched bucket (its MD5, CRC32C or custom metadata) ever lands here. Bounded: the
// oldest entries go first.
type knownHashes struct {
	mu    sync.Mutex
	m     map[genKey]checksum.Digest
	order []genKey // ring of insertion order
	next  int
}

type genKey struct {
	bucket, object string
	gen            int64
}

func (k *knownHashes) put(bucket, object string, gen int64, d checksum.Digest) {
	if gen <= 0 {
		return
	}
	key := genKey{bucket, object, gen}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = make(map[genKey]checksum.Digest)
		k.order = make([]genKey, 0, maxKnownHashes)
	}
	if _, ok := k.m[key]; ok {
		k.m[key] = d
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

func (k *knownHashes) get(bucket, object string, gen int64) (checksum.Digest, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	d, ok := k.m[genKey{bucket, object, gen}]
	return d, ok
}
