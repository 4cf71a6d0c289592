package posture

import (
	"context"
	"strconv"
	"sync"
)

// MemoryStore is a Store in memory: one process, or tests. Without the state bucket a
// change is reported once per process, not once per deployment.
type MemoryStore struct {
	mu      sync.Mutex
	records map[string]memRecord
}

type memRecord struct {
	rec     Record
	version int
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{records: map[string]memRecord{}} }

// Load returns a copy of the bucket's record and its version ("" when there is none).
func (m *MemoryStore) Load(_ context.Context, bucket string) (Record, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.records[bucket]
	if !ok {
		return Record{}, "", nil
	}
	return copyRecord(r.rec), strconv.Itoa(r.version), nil
}

// Save stores a copy of rec if the bucket's record is still at ifVersion.
func (m *MemoryStore) Save(_ context.Context, bucket string, rec Record, ifVersion string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.records[bucket]
	cur := ""
	if ok {
		cur = strconv.Itoa(r.version)
	}
	if cur != ifVersion {
		return "", ErrConflict
	}
	r = memRecord{rec: copyRecord(rec), version: r.version + 1}
	m.records[bucket] = r
	return strconv.Itoa(r.version), nil
}

func copyRecord(r Record) Record {
	out := Record{Checks: make(map[string]CheckRecord, len(r.Checks))}
	for k, v := range r.Checks {
		out.Checks[k] = v
	}
	return out
}
