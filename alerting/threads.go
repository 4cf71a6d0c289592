package alerting

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/tamperguard/tamperguard/internal/engine"
)

// Thread is the state of the alerts about one object within the repeat window: the
// first alert's message (the thread's parent) and how many alerts went out.
type Thread struct {
	// Channel is the channel ID the parent was posted in, as Slack answered it.
	Channel string `json:"channel,omitempty"`
	// TS is the parent message's ts; "" for webhooks, which cannot thread.
	TS    string    `json:"ts,omitempty"`
	Count int       `json:"count"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	// Parent is the first alert's blocks, as posted: a repeat updates the parent with them
	// and a summary (count, first and last seen), so the parent keeps the first incident's
	// details. Bot tokens only; nil for records written before it existed.
	Parent json.RawMessage `json:"parent,omitempty"`
	// Version is the stored record's version when it was loaded (for a conditional save);
	// 0 means there was none.
	Version int64 `json:"-"`
}

// ThreadStore keeps Threads by key ("bucket/object").
type ThreadStore interface {
	// Load returns the thread for key, and false when there is none or it is unusable; then
	// the Thread's Version, if not 0, is that of the record a save must replace.
	Load(ctx context.Context, key string) (Thread, bool, error)
	// Save stores t if the stored record is still the one t was loaded from (t.Version),
	// and returns ErrThreadConflict otherwise.
	Save(ctx context.Context, key string, t Thread) error
}

// ErrThreadConflict: another alert saved the thread first.
var ErrThreadConflict = errors.New("thread state was saved concurrently")

// valid reports whether t, possibly read back from storage, is fit to use: a ts and a
// channel as Slack makes them, nothing that could be sent back to Slack as anything else.
func (t Thread) valid() bool {
	return (t.TS == "" || validTS(t.TS)) && (t.Channel == "" || validChannel(t.Channel)) && t.Count >= 0 && t.Count < 1<<30
}

// validTS: Slack message timestamps look like "1712345678.123456".
func validTS(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	dot := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
		case c == '.' && !dot && i > 0 && i < len(s)-1:
			dot = true
		default:
			return false
		}
	}
	return true
}

// validChannel: Slack conversation IDs are upper-case letters and digits.
func validChannel(s string) bool {
	if len(s) == 0 || len(s) > 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// MemoryThreads is a ThreadStore for one process.
type MemoryThreads struct {
	mu sync.Mutex
	m  map[string]Thread
}

// maxMemoryThreads bounds a MemoryThreads; the oldest thread goes first.
const maxMemoryThreads = 4096

// NewMemoryThreads returns an empty MemoryThreads.
func NewMemoryThreads() *MemoryThreads { return &MemoryThreads{m: map[string]Thread{}} }

// Load implements ThreadStore.
func (s *MemoryThreads) Load(_ context.Context, key string) (Thread, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.m[key]
	return t, ok, nil
}

// Save implements ThreadStore.
func (s *MemoryThreads) Save(_ context.Context, key string, t Thread) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.m[key]; ok && cur.Version != t.Version || !ok && t.Version != 0 {
		return ErrThreadConflict
	}
	if _, ok := s.m[key]; !ok && len(s.m) >= maxMemoryThreads {
		oldest := ""
		for k, v := range s.m {
			if oldest == "" || v.Last.Before(s.m[oldest].Last) {
				oldest = k
			}
		}
		delete(s.m, oldest)
	}
	t.Version++
	s.m[key] = t
	return nil
}

// stateThreads keeps threads in the state bucket, at threads/<bucket>/<object>.json.
type stateThreads struct {
	store  engine.Store
	bucket string
}

// maxThreadRecord bounds what is read back from the state bucket.
const maxThreadRecord = 256 << 10

// maxParentBlocks bounds the first alert's blocks kept in a thread record.
const maxParentBlocks = 192 << 10

// NewStateThreads returns a ThreadStore over the state bucket, so every instance threads
// repeats under the same parent. Records are created with DoesNotExist and replaced with
// GenerationMatch, so two instances never both believe they own a thread.
func NewStateThreads(store engine.Store, bucket string) ThreadStore {
	return &stateThreads{store: store, bucket: bucket}
}

type threadRecord struct {
	Key    string `json:"key"`
	Thread Thread `json:"thread"`
}

// threadObject names the record for key. Names too long for Cloud Storage (1024 bytes) or
// with characters it refuses are replaced by a digest of the key; the record carries the
// key, so a digest name is never mistaken for another object's.
func threadObject(key string) string {
	name := "threads/" + key + ".json"
	if len(name) <= 1024 && !strings.ContainsAny(name, "\r\n") && !strings.Contains(name, "/../") && !strings.HasSuffix(key, "/..") {
		return name
	}
	bucket, _, _ := strings.Cut(key, "/")
	sum := sha256.Sum256([]byte(key))
	return "threads/" + bucket[:min(len(bucket), 222)] + "/sha256-" + hex.EncodeToString(sum[:]) + ".json"
}

func (s *stateThreads) Load(ctx context.Context, key string) (Thread, bool, error) {
	name := threadObject(key)
	attrs, err := s.store.Attrs(ctx, s.bucket, name, 0)
	if errors.Is(err, engine.ErrObjectNotFound) {
		return Thread{}, false, nil
	}
	if err != nil {
		return Thread{}, false, fmt.Errorf("reading thread state gs://%s/%s: %w", s.bucket, name, err)
	}
	r, err := s.store.Open(ctx, s.bucket, name, attrs.Generation)
	if errors.Is(err, engine.ErrObjectNotFound) {
		return Thread{}, false, nil // replaced meanwhile: as good as none
	}
	if err != nil {
		return Thread{}, false, fmt.Errorf("reading thread state gs://%s/%s: %w", s.bucket, name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxThreadRecord+1))
	if err != nil {
		return Thread{}, false, fmt.Errorf("reading thread state gs://%s/%s: %w", s.bucket, name, err)
	}
	// A record that cannot be used is reported, and its version returned so that the next
	// save replaces it instead of failing on it forever.
	if len(b) > maxThreadRecord {
		return Thread{Version: attrs.Generation}, false, fmt.Errorf("thread state gs://%s/%s is over %d bytes", s.bucket, name, maxThreadRecord)
	}
	var rec threadRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return Thread{Version: attrs.Generation}, false, fmt.Errorf("thread state gs://%s/%s is not valid JSON", s.bucket, name)
	}
	if rec.Key != key || !rec.Thread.valid() {
		// Another key's record under a digest name, or one that was tampered with: start a
		// new thread, and let the save replace this record.
		return Thread{Version: attrs.Generation}, false, nil
	}
	t := rec.Thread
	t.Version = attrs.Generation
	return t, true, nil
}

func (s *stateThreads) Save(ctx context.Context, key string, t Thread) error {
	name := threadObject(key)
	b, err := json.Marshal(threadRecord{Key: key, Thread: t})
	if err != nil {
		return err
	}
	cond := engine.Condition{DoesNotExist: true}
	if t.Version != 0 {
		cond = engine.Condition{GenerationMatch: t.Version}
	}
	_, err = s.store.Write(ctx, s.bucket, name, cond, engine.Metadata{ContentType: "application/json", CacheControl: "no-store"}, strings.NewReader(string(b)))
	if errors.Is(err, engine.ErrPrecondition) {
		return ErrThreadConflict
	}
	if err != nil {
		return fmt.Errorf("saving thread state gs://%s/%s: %w", s.bucket, name, err)
	}
	return nil
}
