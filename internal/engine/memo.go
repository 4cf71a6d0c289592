package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/release"
)

// The audit's memory, kept in the state bucket (in memory without one), per scope: a rule's
// objects under one listing prefix of one bucket.
//
//	audit/B/SCOPE/cursor.json     where the current pass of the scope stands
//	audit/B/SCOPE/memo-H.json     memo entries for the names from a lower bound (H is a digest
//	                              of it; the bound is in the record and in its custom metadata)
//
// A memo entry says one thing: generation G of B/O, at metageneration MG, hashed to D, which
// is what release R (named by what signed it: the tag object's id, or a digest of the checksum
// file and its signature) lists for it, at time T. An audit reuses it instead of reading the
// object again only if the listing shows the same generation, metageneration and size (and,
// where both are known, the same CRC32C and MD5: a difference proves a change), the release
// resolved now is the same signed release listing the same digest, and the entry is younger
// than memoMaxAge. Anything else, and any record that cannot be read, means the object is read
// and hashed. Nothing from the watched bucket can make an object skip its hash: its listing
// can only make the memo not apply. Entries are facts (generations never change), so records
// written by concurrent audits are merged, never trusted over a hash.

const (
	// memoChunkMax is how many entries a memo record holds before it is split in two: about
	// 200 bytes each, so a record stays far under maxMemoRecord.
	memoChunkMax = 2000
	// maxMemoRecord bounds a memo or cursor record read back.
	maxMemoRecord = 4 << 20
	// memoMaxAge is how long an entry is reused; a per-name spread of up to a day keeps the
	// objects verified in one run from all being read again in the same later run.
	memoMaxAge = 7 * 24 * time.Hour
	memoSpread = 24 * time.Hour
)

// auditPrefix starts every record of the audit in the state bucket.
const auditPrefix = "audit/"

// memoEntry is one verified generation.
type memoEntry struct {
	Name     string `json:"n"`
	Gen      int64  `json:"g"`
	Metagen  int64  `json:"mg"`
	Size     int64  `json:"s"`
	CRC32C   string `json:"c,omitempty"` // hex, as the listing reported it when verified
	MD5      string `json:"m,omitempty"` // base64
	Digest   string `json:"d"`           // hex SHA-256 of the bytes
	Release  int    `json:"r"`           // index into the record's Releases
	Verified int64  `json:"t"`           // unix seconds
}

// memoRecord is one record of entries: names from From (inclusive), sorted.
type memoRecord struct {
	V        int         `json:"v"`
	Scope    string      `json:"scope"`
	From     string      `json:"from"`
	Releases []string    `json:"releases"`
	Entries  []memoEntry `json:"entries"`
}

// cursorRecord says where a scope's current pass stands.
type cursorRecord struct {
	V      int    `json:"v"`
	Scope  string `json:"scope"`
	Bucket string `json:"bucket"`
	Prefix string `json:"prefix"`
	// Pass counts the scope's passes; a pass is complete when an audit listed its last name.
	Pass        int64     `json:"pass"`
	PassStarted time.Time `json:"pass_started"`
	// After is the last name of the current pass that is done (with every name before it);
	// "" when the pass has not begun.
	After   string    `json:"after"`
	Updated time.Time `json:"updated"`
}

// releaseID names the signed release an expectation rests on, for the memo; "" when it has
// no stable name (the memo is then not used).
func releaseID(rel *release.Release) string {
	if rel == nil {
		return ""
	}
	id := rel.ID()
	if id == "" {
		return ""
	}
	h := sha256.New()
	for _, part := range []string{rel.Source, rel.Tag, rel.Signer.ID(), id} {
		fmt.Fprintf(h, "%d:%s", len(part), part)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// ---- records -------------------------------------------------------------------------

// blobStore keeps the audit's records: the state bucket, or memory.
type blobStore interface {
	// list calls fn for every record under prefix, with its generation and custom metadata.
	list(ctx context.Context, prefix string, fn func(name string, gen int64, custom map[string]string) error) error
	// read returns generation gen of record name (ErrObjectNotFound if it is gone).
	read(ctx context.Context, name string, gen int64) ([]byte, error)
	// write stores data as name if cond holds and returns the new generation.
	write(ctx context.Context, name string, cond Condition, custom map[string]string, data []byte) (int64, error)
}

type bucketBlobs struct {
	store  Store
	bucket string
}

func (b *bucketBlobs) list(ctx context.Context, prefix string, fn func(string, int64, map[string]string) error) error {
	return b.store.List(ctx, b.bucket, prefix, func(a ObjectAttrs) error { return fn(a.Name, a.Generation, a.Meta.Custom) })
}

func (b *bucketBlobs) read(ctx context.Context, name string, gen int64) ([]byte, error) {
	r, err := b.store.Open(ctx, b.bucket, name, gen)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxMemoRecord+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxMemoRecord {
		return nil, fmt.Errorf("%s is over %d bytes", ref(b.bucket, name, gen), maxMemoRecord)
	}
	return data, nil
}

func (b *bucketBlobs) write(ctx context.Context, name string, cond Condition, custom map[string]string, data []byte) (int64, error) {
	a, err := b.store.Write(ctx, b.bucket, name, cond,
		Metadata{ContentType: "application/json", CacheControl: "no-store", Custom: custom}, bytes.NewReader(data))
	return a.Generation, err
}

// memoryBlobs keeps the records in this process (no state bucket): the memo and the cursor
// then last as long as the process.
type memoryBlobs struct {
	mu   sync.Mutex
	gen  int64
	recs map[string]memoryBlob
}

type memoryBlob struct {
	gen    int64
	custom map[string]string
	data   []byte
}

func (m *memoryBlobs) list(_ context.Context, prefix string, fn func(string, int64, map[string]string) error) error {
	m.mu.Lock()
	var names []string
	for n := range m.recs {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	recs := make([]memoryBlob, len(names))
	for i, n := range names {
		recs[i] = m.recs[n]
	}
	m.mu.Unlock()
	for i, n := range names {
		if err := fn(n, recs[i].gen, recs[i].custom); err != nil {
			return err
		}
	}
	return nil
}

func (m *memoryBlobs) read(_ context.Context, name string, gen int64) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[name]
	if !ok || r.gen != gen {
		return nil, ErrObjectNotFound
	}
	return r.data, nil
}

func (m *memoryBlobs) write(_ context.Context, name string, cond Condition, custom map[string]string, data []byte) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.recs == nil {
		m.recs = map[string]memoryBlob{}
	}
	cur, ok := m.recs[name]
	switch {
	case cond.DoesNotExist && ok, cond.GenerationMatch != 0 && (!ok || cur.gen != cond.GenerationMatch):
		return 0, ErrPrecondition
	case !cond.DoesNotExist && cond.GenerationMatch == 0:
		return 0, errors.New("memory records: an unconditional write")
	}
	m.gen++
	m.recs[name] = memoryBlob{gen: m.gen, custom: maps.Clone(custom), data: slices.Clone(data)}
	return m.gen, nil
}

// ---- one scope's memo ------------------------------------------------------------------

// scopeMemo is the memo and cursor of one scope during one audit run. Chunks are loaded as
// the listing reaches their names and written back once every name in them is judged.
type scopeMemo struct {
	blobs  blobStore
	dir    string // audit/B/SCOPE/
	id     string
	bucket string
	prefix string
	now    func() time.Time

	cursor    cursorRecord
	cursorGen int64 // 0: none stored

	bounds []chunkRef // every memo record of the scope, by lower bound
	loaded map[string]*memoChunk
}

// chunkRef is a memo record as its listing shows it.
type chunkRef struct {
	from string
	name string
	gen  int64
}

// memoChunk is a memo record loaded in memory.
type memoChunk struct {
	ref     chunkRef
	rec     memoRecord
	entries map[string]memoEntry // by name; Release is an index into releases
	rels    []string
	top     string // the greatest name with an entry (not lowered when one is removed)
	dirty   bool
	// walked: the listing went past this record's range in this run; seenFrom is the first
	// name of the range this run listed (so names below it are not pruned as gone).
	walked   bool
	seenFrom string
	seen     map[string]bool
}

const memoFromKey = "tamperguard-memo-from"

func scopeID(bucket, prefix, rule string) string {
	h := sha256.New()
	for _, part := range []string{bucket, prefix, rule} {
		fmt.Fprintf(h, "%d:%s", len(part), part)
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

func chunkName(dir, from string) string {
	sum := sha256.Sum256([]byte(from))
	return dir + "memo-" + hex.EncodeToString(sum[:8]) + ".json"
}

// openScope reads a scope's cursor and the list of its memo records (one listing).
func openScope(ctx context.Context, blobs blobStore, bucket, prefix, rule string, now func() time.Time) (*scopeMemo, error) {
	id := scopeID(bucket, prefix, rule)
	s := &scopeMemo{blobs: blobs, dir: auditPrefix + bucket + "/" + id + "/", id: id, bucket: bucket, prefix: prefix,
		now: now, loaded: map[string]*memoChunk{}}
	var cursorGen int64
	err := blobs.list(ctx, s.dir, func(name string, gen int64, custom map[string]string) error {
		switch {
		case name == s.dir+"cursor.json":
			cursorGen = gen
		case strings.HasPrefix(name, s.dir+"memo-"):
			from, err := base64.RawURLEncoding.DecodeString(custom[memoFromKey])
			if err != nil || chunkName(s.dir, string(from)) != name {
				return nil // not one of ours as it should be: ignored (and replaced when written)
			}
			s.bounds = append(s.bounds, chunkRef{from: string(from), name: name, gen: gen})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the audit records of %s: %w", ref(bucket, prefix, 0), err)
	}
	sort.Slice(s.bounds, func(i, j int) bool { return s.bounds[i].from < s.bounds[j].from })
	s.cursor = cursorRecord{V: 1, Scope: id, Bucket: bucket, Prefix: prefix, Pass: 1, PassStarted: now()}
	if cursorGen != 0 {
		data, err := blobs.read(ctx, s.dir+"cursor.json", cursorGen)
		var c cursorRecord
		switch {
		case errors.Is(err, ErrObjectNotFound):
			// Replaced since the listing: the next write meets a precondition and merges.
		case err != nil:
			return nil, fmt.Errorf("reading the audit cursor of %s: %w", ref(bucket, prefix, 0), err)
		case json.Unmarshal(data, &c) != nil || c.Scope != id:
			// Unreadable: start the pass again (the record is replaced at the next checkpoint).
		default:
			s.cursor = c
		}
		s.cursorGen = cursorGen
	}
	return s, nil
}

// chunkFor returns the memo record whose range holds name, loading it if needed; nil when the
// scope has none yet (the first entry creates it).
func (s *scopeMemo) chunkFor(ctx context.Context, name string) *memoChunk {
	i := sort.Search(len(s.bounds), func(i int) bool { return s.bounds[i].from > name }) - 1
	if i < 0 {
		return nil
	}
	b := s.bounds[i]
	if c, ok := s.loaded[b.from]; ok {
		return c
	}
	c := &memoChunk{ref: b, entries: map[string]memoEntry{}, seen: map[string]bool{}, seenFrom: name}
	c.rec = memoRecord{V: 1, Scope: s.id, From: b.from}
	if b.gen != 0 {
		if data, err := s.blobs.read(ctx, b.name, b.gen); err == nil {
			var rec memoRecord
			if json.Unmarshal(data, &rec) == nil && rec.Scope == s.id && rec.From == b.from {
				c.rels = rec.Releases
				for _, e := range rec.Entries {
					if e.Release >= 0 && e.Release < len(rec.Releases) {
						c.entries[e.Name] = e
						c.top = max(c.top, e.Name)
					}
				}
			}
		}
		// An unreadable record is an empty one: its objects are read again.
	}
	s.loaded[b.from] = c
	return c
}

// grow starts a new record at name when the listing has walked past every entry of the last
// record and it holds half the most a record may: a first audit of a big bucket writes its
// memo as it goes, in records of memoChunkMax/2, instead of holding it all until the end.
func (s *scopeMemo) grow(ctx context.Context, name string) {
	if len(s.bounds) == 0 || s.bounds[len(s.bounds)-1].from > name {
		return
	}
	c := s.chunkFor(ctx, name)
	if c == nil || len(c.entries) < memoChunkMax/2 {
		return
	}
	if c.top >= name {
		return // entries of an earlier run lie ahead: the record is split when written
	}
	b := chunkRef{from: name, name: chunkName(s.dir, name)}
	s.bounds = append(s.bounds, b)
	s.loaded[name] = &memoChunk{ref: b, rec: memoRecord{V: 1, Scope: s.id, From: name}, entries: map[string]memoEntry{},
		seen: map[string]bool{}, seenFrom: name}
}

// lookup returns name's entry, if the scope's memo has one.
func (s *scopeMemo) lookup(ctx context.Context, name string) (memoEntry, string, bool) {
	s.grow(ctx, name)
	c := s.chunkFor(ctx, name)
	if c == nil {
		return memoEntry{}, "", false
	}
	c.seen[name] = true
	e, ok := c.entries[name]
	if !ok {
		return memoEntry{}, "", false
	}
	return e, c.rels[e.Release], true
}

// see notes that the listing showed name (so that it is not pruned as gone).
func (s *scopeMemo) see(ctx context.Context, name string) {
	if c := s.chunkFor(ctx, name); c != nil {
		c.seen[name] = true
	}
}

// record remembers a verified generation (or, with ok false, forgets name).
func (s *scopeMemo) record(ctx context.Context, a ObjectAttrs, digest checksum.Digest, rel string, ok bool) {
	c := s.chunkFor(ctx, a.Name)
	if c == nil {
		if !ok {
			return
		}
		// The scope's first record covers every name.
		b := chunkRef{from: "", name: chunkName(s.dir, "")}
		s.bounds = append([]chunkRef{b}, s.bounds...)
		c = &memoChunk{ref: b, rec: memoRecord{V: 1, Scope: s.id}, entries: map[string]memoEntry{}, seen: map[string]bool{}, seenFrom: a.Name}
		s.loaded[""] = c
	}
	c.seen[a.Name] = true
	if !ok {
		if _, had := c.entries[a.Name]; had {
			delete(c.entries, a.Name)
			c.dirty = true
		}
		return
	}
	ri := slices.Index(c.rels, rel)
	if ri < 0 {
		c.rels = append(c.rels, rel)
		ri = len(c.rels) - 1
	}
	e := memoEntry{Name: a.Name, Gen: a.Generation, Metagen: a.Metageneration, Size: a.Size, Digest: digest.String(),
		Release: ri, Verified: s.now().Unix()}
	if a.HasCRC32C {
		e.CRC32C = fmt.Sprintf("%08x", a.CRC32C)
	}
	if len(a.MD5) > 0 {
		e.MD5 = base64.StdEncoding.EncodeToString(a.MD5)
	}
	c.entries[a.Name] = e
	c.top = max(c.top, a.Name)
	c.dirty = true
}

// valid reports whether e vouches for the listed generation a under the expectation exp.
func (e memoEntry) valid(a ObjectAttrs, rel string, exp Expectation, now time.Time) bool {
	if e.Gen != a.Generation || e.Metagen != a.Metageneration || e.Size != a.Size {
		return false
	}
	if e.CRC32C != "" && a.HasCRC32C && e.CRC32C != fmt.Sprintf("%08x", a.CRC32C) {
		return false // the listing proves other bytes
	}
	if e.MD5 != "" && len(a.MD5) > 0 && e.MD5 != base64.StdEncoding.EncodeToString(a.MD5) {
		return false
	}
	id := releaseID(exp.Release)
	if id == "" || rel != id || exp.Entry.Digest.String() != e.Digest {
		return false
	}
	h := fnv.New32a()
	h.Write([]byte(e.Name))
	spread := time.Duration(h.Sum32()%uint32(memoSpread/time.Minute)) * time.Minute
	age := now.Sub(time.Unix(e.Verified, 0))
	return age >= -time.Minute && age < memoMaxAge-spread
}

// digest of an entry (valid entries only).
func (e memoEntry) sum() (checksum.Digest, bool) {
	var d checksum.Digest
	b, err := hex.DecodeString(e.Digest)
	if err != nil || len(b) != len(d) {
		return d, false
	}
	copy(d[:], b)
	return d, true
}

// walkedPast marks the records whose range ends at or before name as walked (the listing is
// past them); with end, every loaded record.
func (s *scopeMemo) walkedPast(name string, end bool) {
	for i, b := range s.bounds {
		c, ok := s.loaded[b.from]
		if !ok || c.walked {
			continue
		}
		if end || (i+1 < len(s.bounds) && s.bounds[i+1].from <= name) {
			c.walked = true
		}
	}
}

// flush writes back the loaded records that changed once the listing is past their range
// and every name it gave in their range is judged (doneThrough: every name up to it is), or
// every loaded record with all (the run is over); written records are dropped from memory. A record whose
// range was walked whole loses the entries of names this run did not see (deleted objects).
// Failures are logged by the caller: the memo only saves reads.
func (s *scopeMemo) flush(ctx context.Context, doneThrough string, all bool) error {
	var errs []error
	for i := 0; i < len(s.bounds); i++ {
		b := s.bounds[i]
		c, ok := s.loaded[b.from]
		if !ok {
			continue
		}
		upper := ""
		if i+1 < len(s.bounds) {
			upper = s.bounds[i+1].from
		}
		if !all && !(c.walked && doneThrough >= lastName(c)) {
			continue // names of its range are still being judged
		}
		if c.walked {
			for name := range c.entries {
				if name >= c.seenFrom && !c.seen[name] {
					delete(c.entries, name)
					c.dirty = true
				}
			}
		}
		if c.dirty {
			if err := s.writeChunk(ctx, c, upper); err != nil {
				errs = append(errs, err)
			}
		}
		if c.walked {
			delete(s.loaded, b.from)
		}
	}
	return errors.Join(errs...)
}

func lastName(c *memoChunk) string {
	last := ""
	for n := range c.seen {
		last = max(last, n)
	}
	return last
}

// writeChunk writes a record (split in two when it is too big), merging with what another
// audit wrote meanwhile.
func (s *scopeMemo) writeChunk(ctx context.Context, c *memoChunk, upper string) error {
	names := make([]string, 0, len(c.entries))
	for n := range c.entries {
		if n >= c.ref.from && (upper == "" || n < upper) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) > memoChunkMax {
		// Split into records of half the most, so each has room to grow; the upper ones are
		// written first, each up to the lower bound of the one above it.
		half := memoChunkMax / 2
		for hiStart := half * ((len(names) - 1) / half); hiStart > 0; hiStart -= half {
			from := names[hiStart]
			hi := &memoChunk{ref: chunkRef{from: from, name: chunkName(s.dir, from)}, entries: map[string]memoEntry{}, rels: c.rels}
			for _, n := range names[hiStart:min(hiStart+half, len(names))] {
				hi.entries[n] = c.entries[n]
				delete(c.entries, n)
			}
			if err := s.put(ctx, hi, upper); err != nil {
				return err
			}
			s.bounds = append(s.bounds, hi.ref)
			upper = from
		}
		sort.Slice(s.bounds, func(i, j int) bool { return s.bounds[i].from < s.bounds[j].from })
	}
	if err := s.put(ctx, c, upper); err != nil {
		return err
	}
	c.dirty = false
	return nil
}

// put writes one record conditionally; on a lost race it merges the stored entries (newer
// verification wins) and tries again.
func (s *scopeMemo) put(ctx context.Context, c *memoChunk, upper string) error {
	for range 3 {
		rec := memoRecord{V: 1, Scope: s.id, From: c.ref.from}
		used := map[int]int{}
		names := make([]string, 0, len(c.entries))
		for n := range c.entries {
			if n >= c.ref.from && (upper == "" || n < upper) {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			e := c.entries[n]
			ri, ok := used[e.Release]
			if !ok {
				ri = len(rec.Releases)
				rec.Releases = append(rec.Releases, c.rels[e.Release])
				used[e.Release] = ri
			}
			e.Release = ri
			rec.Entries = append(rec.Entries, e)
		}
		data, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		cond := Condition{GenerationMatch: c.ref.gen}
		if c.ref.gen == 0 {
			cond = Condition{DoesNotExist: true}
		}
		gen, err := s.blobs.write(ctx, c.ref.name, cond, map[string]string{
			memoFromKey: base64.RawURLEncoding.EncodeToString([]byte(c.ref.from)),
		}, data)
		if err == nil {
			c.ref.gen = gen
			for i := range s.bounds {
				if s.bounds[i].from == c.ref.from {
					s.bounds[i].gen = gen
				}
			}
			return nil
		}
		if !errors.Is(err, ErrPrecondition) {
			return fmt.Errorf("writing audit memo %s: %w", c.ref.name, err)
		}
		// Another audit wrote it: merge its entries and write on its generation.
		if !s.mergeStored(ctx, c) {
			return fmt.Errorf("writing audit memo %s: %w", c.ref.name, err)
		}
	}
	return fmt.Errorf("writing audit memo %s: lost the race three times", c.ref.name)
}

// mergeStored reads the stored record of c (its current generation) and merges its entries
// into c; it reports whether c.ref.gen now names the stored generation.
func (s *scopeMemo) mergeStored(ctx context.Context, c *memoChunk) bool {
	var gen int64
	err := s.blobs.list(ctx, c.ref.name, func(name string, g int64, _ map[string]string) error {
		if name == c.ref.name {
			gen = g
		}
		return nil
	})
	if err != nil || gen == 0 {
		return false
	}
	c.ref.gen = gen
	data, err := s.blobs.read(ctx, c.ref.name, gen)
	if err != nil {
		return true // write over it on its generation
	}
	var rec memoRecord
	if json.Unmarshal(data, &rec) != nil || rec.Scope != s.id {
		return true
	}
	for _, e := range rec.Entries {
		if e.Release < 0 || e.Release >= len(rec.Releases) {
			continue
		}
		c.top = max(c.top, e.Name)
		mine, ok := c.entries[e.Name]
		if ok && mine.Verified >= e.Verified {
			continue
		}
		if c.seen[e.Name] && !ok {
			continue // this run judged it and found no good entry to keep
		}
		rel := rec.Releases[e.Release]
		ri := slices.Index(c.rels, rel)
		if ri < 0 {
			c.rels = append(c.rels, rel)
			ri = len(c.rels) - 1
		}
		e.Release = ri
		c.entries[e.Name] = e
	}
	return true
}

// checkpoint records that every name of the current pass up to after is done (complete: the
// pass is over and the next one starts from the first name). A concurrent audit of the same
// scope is merged: the furthest position of the same pass wins; a newer pass means this run's
// pass was completed by another, and stale is true.
func (s *scopeMemo) checkpoint(ctx context.Context, after string, complete bool) (stale bool, err error) {
	for range 3 {
		next := s.cursor
		next.Updated = s.now()
		if complete {
			next.Pass, next.PassStarted, next.After = s.cursor.Pass+1, s.now(), ""
		} else {
			next.After = max(after, s.cursor.After)
		}
		data, err := json.Marshal(next)
		if err != nil {
			return false, err
		}
		cond := Condition{GenerationMatch: s.cursorGen}
		if s.cursorGen == 0 {
			cond = Condition{DoesNotExist: true}
		}
		gen, err := s.blobs.write(ctx, s.dir+"cursor.json", cond, nil, data)
		if err == nil {
			s.cursor, s.cursorGen = next, gen
			return false, nil
		}
		if !errors.Is(err, ErrPrecondition) {
			return false, fmt.Errorf("writing the audit cursor of %s: %w", ref(s.bucket, s.prefix, 0), err)
		}
		// Another audit moved it: read where it stands.
		var stored cursorRecord
		var sgen int64
		lerr := s.blobs.list(ctx, s.dir+"cursor.json", func(name string, g int64, _ map[string]string) error {
			if name == s.dir+"cursor.json" {
				sgen = g
			}
			return nil
		})
		if lerr != nil || sgen == 0 {
			return false, fmt.Errorf("writing the audit cursor of %s: %w", ref(s.bucket, s.prefix, 0), err)
		}
		data, rerr := s.blobs.read(ctx, s.dir+"cursor.json", sgen)
		if rerr == nil && json.Unmarshal(data, &stored) == nil && stored.Scope == s.id {
			if stored.Pass > s.cursor.Pass {
				s.cursor, s.cursorGen = stored, sgen
				return true, nil
			}
			s.cursor = stored
		}
		s.cursorGen = sgen
	}
	return false, fmt.Errorf("writing the audit cursor of %s: lost the race three times", ref(s.bucket, s.prefix, 0))
}
