package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/tamperguard/tamperguard/internal/release"
)

// maxMarkRecord bounds a mark record read back: it carries the floor's evidence,
// base64-encoded: a checksum file (at most 4 MiB) and its signature, or a git release's
// objects (at most 5 MiB in all, see the git source's evidence limit).
const maxMarkRecord = 8 << 20

// stateMarks keeps each rule's rollback mark and floor in the state bucket, so every instance
// and every restart refuses a rollback once any of them saw the newer release, and still has
// the last verified release (with what is needed to verify it again) when the source breaks.
type stateMarks struct {
	store  Store
	bucket string

	// The bytes of the last generation read of each record: a generation never changes, so
	// a lookup whose attributes name the same generation needs no second request.
	mu    sync.Mutex
	bytes map[string]cachedMark
}

type cachedMark struct {
	gen  int64
	data []byte
}

var _ release.MarkStore = (*stateMarks)(nil)

// NewStateMarks keeps marks and floors in bucket (the state bucket) through store.
func NewStateMarks(store Store, bucket string) release.MarkStore {
	return &stateMarks{store: store, bucket: bucket}
}

// cached returns the bytes of generation gen of record name, if they were read before.
func (s *stateMarks) cached(name string, gen int64) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.bytes[name]
	return c.data, ok && c.gen == gen
}

func (s *stateMarks) keep(name string, gen int64, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bytes == nil {
		s.bytes = map[string]cachedMark{}
	}
	s.bytes[name] = cachedMark{gen: gen, data: data}
}

// markName names the record of a source. "v2": records written before marks were raised from
// signed data only may carry an order taken from unsigned API fields, so they are not read.
func markName(source string) string {
	sum := sha256.Sum256([]byte(source))
	return "marks/v2/" + hex.EncodeToString(sum[:16]) + ".json"
}

type markRecord struct {
	Source string       `json:"source"`
	Mark   release.Mark `json:"mark"`
}

// LoadMark reads the mark for source.
func (s *stateMarks) LoadMark(ctx context.Context, source string) (release.Mark, bool, error) {
	var rec markRecord
	_, err := s.read(ctx, markName(source), &rec)
	if errors.Is(err, ErrObjectNotFound) || errors.Is(err, errBadMarkRecord) {
		// A garbled record counts as none (the next save replaces it) rather than failing
		// every resolution of the rule for good.
		return release.Mark{}, false, nil
	}
	if err != nil {
		return release.Mark{}, false, err
	}
	if rec.Source != source {
		return release.Mark{}, false, fmt.Errorf("mark record %s belongs to %q, not %q", markName(source), rec.Source, source)
	}
	return rec.Mark, true, nil
}

// SaveMark stores m for source unless the stored mark supersedes it (another instance raised
// it further), with a precondition so that two instances never overwrite each other blindly.
func (s *stateMarks) SaveMark(ctx context.Context, source string, m release.Mark) error {
	name := markName(source)
	for range 3 {
		var rec markRecord
		gen, err := s.read(ctx, name, &rec)
		cond := Condition{GenerationMatch: gen}
		switch {
		case errors.Is(err, ErrObjectNotFound):
			cond = Condition{DoesNotExist: true}
		case err != nil && !errors.Is(err, errBadMarkRecord):
			return err
		case err == nil && !m.Supersedes(rec.Mark):
			return nil
		}
		b, err := json.Marshal(markRecord{Source: source, Mark: m})
		if err != nil {
			return err
		}
		a, err := s.store.Write(ctx, s.bucket, name, cond, Metadata{ContentType: "application/json", CacheControl: "no-store"}, strings.NewReader(string(b)))
		if err == nil {
			s.keep(name, a.Generation, b)
		}
		if !errors.Is(err, ErrPrecondition) {
			return err
		}
	}
	return fmt.Errorf("saving rollback mark %s: lost the race three times", name)
}

// errBadMarkRecord: the record is there but unreadable as a mark; the next save replaces it.
var errBadMarkRecord = errors.New("unreadable mark record")

// read reads a mark record and returns its generation. A generation read before is not read
// again: one request (its attributes) says it is still the one.
func (s *stateMarks) read(ctx context.Context, name string, rec *markRecord) (int64, error) {
	attrs, err := s.store.Attrs(ctx, s.bucket, name, 0)
	if err != nil {
		return 0, err
	}
	b, ok := s.cached(name, attrs.Generation)
	if !ok {
		if b, err = readRecordBytes(ctx, s.store, s.bucket, name, attrs.Generation, maxMarkRecord); err != nil {
			if errors.Is(err, errBadRecord) {
				err = fmt.Errorf("%w: %w", errBadMarkRecord, err)
			}
			return attrs.Generation, err
		}
	}
	if err := unmarshalRecord(s.bucket, name, b, rec); err != nil {
		return attrs.Generation, fmt.Errorf("%w: %w", errBadMarkRecord, err)
	}
	if !ok {
		s.keep(name, attrs.Generation, b)
	}
	return attrs.Generation, nil
}
