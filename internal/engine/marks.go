package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/tamperguard/tamperguard/internal/release"
)

// stateMarks keeps rollback high-water marks in the state bucket, so every instance and
// every restart refuses a rollback once any of them saw the newer release.
type stateMarks struct {
	store  Store
	bucket string
}

var _ release.MarkStore = (*stateMarks)(nil)

func markName(source string) string {
	sum := sha256.Sum256([]byte(source))
	return "marks/" + hex.EncodeToString(sum[:16]) + ".json"
}

type markRecord struct {
	Source string       `json:"source"`
	Mark   release.Mark `json:"mark"`
}

func (s *stateMarks) engine() *Engine { return &Engine{store: s.store, state: s.bucket} }

// LoadMark reads the mark for source.
func (s *stateMarks) LoadMark(ctx context.Context, source string) (release.Mark, bool, error) {
	var rec markRecord
	_, err := s.engine().readRecord(ctx, markName(source), &rec)
	if errors.Is(err, ErrObjectNotFound) {
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

// SaveMark raises the mark for source to m, never lowering one another instance raised.
func (s *stateMarks) SaveMark(ctx context.Context, source string, m release.Mark) error {
	e := s.engine()
	name := markName(source)
	for range 3 {
		var rec markRecord
		gen, err := e.readRecord(ctx, name, &rec)
		cond := Condition{GenerationMatch: gen}
		switch {
		case errors.Is(err, ErrObjectNotFound):
			cond = Condition{DoesNotExist: true}
		case err != nil:
			return err
		case !m.NewerThan(rec.Mark):
			return nil
		}
		_, err = e.writeRecord(ctx, name, cond, markRecord{Source: source, Mark: m})
		if !errors.Is(err, ErrPrecondition) {
			return err
		}
	}
	return fmt.Errorf("saving rollback mark %s: lost the race three times", name)
}
