package release

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// gitLocal reads a repository on this machine's disk. go-git finds the repository and its
// refs; objects are read here, loose or packed, and every object read is hashed again and
// compared with the id it was asked for (git itself does not do that on read), so a
// swapped loose object or an edited pack is refused, not verified. Sizes are checked from
// the object headers before any content is inflated.
type gitLocal struct {
	path string
	lim  *gitLimits
}

// errObjectMissing: the repository does not hold the object.
var errObjectMissing = errors.New("object not in the repository")

// wrongTypeError: the object is not of the type asked for.
type wrongTypeError struct{ got objType }

func (e *wrongTypeError) Error() string { return "the object is a " + e.got.String() }

// localSession is one open of the repository: its refs and pack indexes are read once.
type localSession struct {
	l      *gitLocal
	repo   *git.Repository
	fs     billy.Filesystem
	packs  []*localPack
	listed bool // packs listed
}

func (l *gitLocal) open() (*localSession, error) {
	repo, err := git.PlainOpenWithOptions(l.path, &git.PlainOpenOptions{EnableDotGitCommonDir: true})
	if err != nil {
		if errors.Is(err, git.ErrRepositoryNotExists) {
			return nil, fmt.Errorf("%w: no git repository at %s", ErrNotFound, l.path)
		}
		return nil, fmt.Errorf("%w: opening %s: %w", ErrUnreachable, l.path, err)
	}
	st, ok := repo.Storer.(*filesystem.Storage)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not a repository on disk", ErrUnreachable, l.path)
	}
	return &localSession{l: l, repo: repo, fs: st.Filesystem()}, nil
}

func (s *localSession) close() {
	for _, p := range s.packs {
		p.close()
	}
	s.packs = nil
}

// listTags lists refs/tags/* (only the one tag when exact is set). Whether a tag is
// annotated is read from its object's header.
func (l *gitLocal) listTags(_ context.Context, exact string) ([]tagRef, error) {
	s, err := l.open()
	if err != nil {
		return nil, err
	}
	defer s.close()
	var refs []*plumbing.Reference
	if exact != "" {
		ref, err := s.repo.Storer.Reference(plumbing.NewTagReferenceName(exact))
		switch {
		case errors.Is(err, plumbing.ErrReferenceNotFound):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("%w: reading tag %q of %s: %w", ErrUnreachable, exact, l.path, err)
		}
		refs = append(refs, ref)
	} else {
		iter, err := s.repo.Storer.IterReferences()
		if err != nil {
			return nil, fmt.Errorf("%w: listing tags of %s: %w", ErrUnreachable, l.path, err)
		}
		err = iter.ForEach(func(ref *plumbing.Reference) error {
			if ref.Name().IsTag() {
				if len(refs) >= l.lim.maxTags {
					return fmt.Errorf("%w: %s has more than %d tags", ErrInvalid, l.path, l.lim.maxTags)
				}
				refs = append(refs, ref)
			}
			return nil
		})
		if err != nil {
			if errors.Is(err, ErrInvalid) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: listing tags of %s: %w", ErrUnreachable, l.path, err)
		}
	}
	out := make([]tagRef, 0, len(refs))
	for _, ref := range refs {
		tr := tagRef{name: ref.Name().Short()}
		if ref.Type() != plumbing.HashReference {
			tr.problem = fmt.Errorf("%w: the ref is symbolic, not a tag", ErrInvalid)
			out = append(out, tr)
			continue
		}
		tr.id = oid(ref.Hash())
		t, _, err := s.header(tr.id)
		switch {
		case errors.Is(err, errObjectMissing):
			tr.problem = fmt.Errorf("%w: its object %s is not in the repository", ErrNotFound, tr.id.short())
		case err != nil && (errors.Is(err, ErrInvalid) || errors.Is(err, ErrGitIntegrity)):
			tr.problem = err
		case err != nil:
			return nil, fmt.Errorf("%w: reading tag %q of %s: %w", ErrUnreachable, tr.name, l.path, err)
		default:
			tr.annotated = t == objTag
		}
		out = append(out, tr)
	}
	return out, nil
}

// tagObjects reads each tag object, at most lim.tagObject bytes each.
func (l *gitLocal) tagObjects(_ context.Context, refs []tagRef) (map[oid][]byte, map[oid]error, int64, error) {
	s, err := l.open()
	if err != nil {
		return nil, nil, 0, err
	}
	defer s.close()
	found, refused := map[oid][]byte{}, map[oid]error{}
	var n int64
	for _, ref := range refs {
		data, err := s.read(ref.id, objTag, l.lim.tagObject)
		var le *packLimitError
		var wt *wrongTypeError
		switch {
		case err == nil:
			found[ref.id] = data
			n += int64(len(data))
		case errors.As(err, &le):
			refused[ref.id] = fmt.Errorf("%w: its tag object could not be read within the limits that apply before a signature is checked: %v", ErrInvalid, le)
		case errors.As(err, &wt):
			refused[ref.id] = fmt.Errorf("%w: %v, not a tag", ErrInvalid, wt)
		case errors.Is(err, errObjectMissing):
			refused[ref.id] = fmt.Errorf("%w: its object %s is not in the repository", ErrNotFound, ref.id.short())
		case errors.Is(err, ErrInvalid):
			refused[ref.id] = err
		default:
			return nil, nil, n, fmt.Errorf("%w: reading tag %q of %s: %w", ErrUnreachable, ref.name, l.path, err)
		}
	}
	return found, refused, n, nil
}

// object reads one object of type t, at most limit bytes.
func (l *gitLocal) object(_ context.Context, id oid, t objType, limit int64) (map[oid]*packObject, error) {
	s, err := l.open()
	if err != nil {
		return nil, err
	}
	defer s.close()
	data, err := s.read(id, t, limit)
	if err != nil {
		return nil, l.objectError(id, t, err)
	}
	return map[oid]*packObject{id: {typ: t, data: data, id: id}}, nil
}

func (l *gitLocal) objectError(id oid, t objType, err error) error {
	var le *packLimitError
	var wt *wrongTypeError
	switch {
	case errors.As(err, &le):
		return fmt.Errorf("%w: %s %s in %s: %v", ErrInvalid, t, id.short(), l.path, le)
	case errors.As(err, &wt):
		return fmt.Errorf("%w: %s %s in %s: %v", ErrInvalid, t, id.short(), l.path, wt)
	case errors.Is(err, errObjectMissing):
		return fmt.Errorf("%w: %s %s is not in %s", ErrNotFound, t, id.short(), l.path)
	case errors.Is(err, ErrInvalid):
		return fmt.Errorf("%s %s in %s: %w", t, id.short(), l.path, err)
	}
	return fmt.Errorf("%w: reading %s %s in %s: %w", ErrUnreachable, t, id.short(), l.path, err)
}

// openBlob streams a blob, checking its id at the end. A blob stored as a delta is rebuilt
// in memory, up to lim.deltaInMemory bytes.
func (l *gitLocal) openBlob(_ context.Context, id oid, limit int64) (io.ReadCloser, error) {
	s, err := l.open()
	if err != nil {
		return nil, err
	}
	rc, err := s.openBlob(id, limit)
	if err != nil {
		s.close()
		return nil, l.objectError(id, objBlob, err)
	}
	return rc, nil
}

func looseName(id oid) string {
	h := id.String()
	return "objects/" + h[:2] + "/" + h[2:]
}

// header returns an object's type and size without inflating its content.
func (s *localSession) header(id oid) (objType, int64, error) {
	f, err := s.fs.Open(looseName(id))
	if err == nil {
		defer f.Close()
		t, size, _, err := looseHeader(f)
		return t, size, err
	}
	if !os.IsNotExist(err) {
		return 0, 0, err
	}
	p, off, err := s.find(id)
	if err != nil {
		return 0, 0, err
	}
	return s.packedHeader(p, off, 0)
}

// read returns an object's content, checked against its id.
func (s *localSession) read(id oid, want objType, limit int64) ([]byte, error) {
	f, err := s.fs.Open(looseName(id))
	if err == nil {
		defer f.Close()
		t, size, r, err := looseHeader(f)
		if err != nil {
			return nil, err
		}
		if t != want {
			return nil, &wrongTypeError{got: t}
		}
		if size > limit {
			return nil, &packLimitError{what: "a " + t.String() + " object", size: size, limit: limit}
		}
		data, err := readAllExact(r, size)
		if err != nil {
			return nil, fmt.Errorf("%w: loose object %s: %v", ErrInvalid, id.short(), err)
		}
		return data, checkObject(id, t, data)
	}
	if !os.IsNotExist(err) {
		return nil, err
	}
	p, off, err := s.find(id)
	if err != nil {
		return nil, err
	}
	t, _, err := s.packedHeader(p, off, 0)
	if err != nil {
		return nil, err
	}
	if t != want {
		return nil, &wrongTypeError{got: t}
	}
	t, data, err := s.packedRead(p, off, limit, 0)
	if err != nil {
		return nil, err
	}
	return data, checkObject(id, t, data)
}

func (s *localSession) openBlob(id oid, limit int64) (io.ReadCloser, error) {
	f, err := s.fs.Open(looseName(id))
	if err == nil {
		t, size, r, err := looseHeader(f)
		if err == nil && t != objBlob {
			err = &wrongTypeError{got: t}
		}
		if err == nil && size > limit {
			err = &packLimitError{what: "a blob", size: size, limit: limit}
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		return &verifyingReader{r: r, h: newObjectHasher(objBlob, size), want: id, t: objBlob, close: func() error { s.close(); return f.Close() }}, nil
	}
	if !os.IsNotExist(err) {
		return nil, err
	}
	p, off, err := s.find(id)
	if err != nil {
		return nil, err
	}
	e, br, err := p.entryAt(off)
	if err != nil {
		return nil, err
	}
	if e.kind == int8(objBlob) {
		if e.size > limit {
			return nil, &packLimitError{what: "a blob", size: e.size, limit: limit}
		}
		var z inflater
		r, err := z.reader(br, e.size)
		if err != nil {
			return nil, fmt.Errorf("%w: pack %s at %d: %v", ErrInvalid, p.name, off, err)
		}
		return &verifyingReader{r: r, h: newObjectHasher(objBlob, e.size), want: id, t: objBlob, close: func() error { s.close(); return nil }}, nil
	}
	t, _, err := s.packedHeader(p, off, 0)
	if err != nil {
		return nil, err
	}
	if t != objBlob {
		return nil, &wrongTypeError{got: t}
	}
	_, data, err := s.packedRead(p, off, min(limit, s.l.lim.deltaInMemory), 0)
	if err != nil {
		return nil, err
	}
	if err := checkObject(id, objBlob, data); err != nil {
		return nil, err
	}
	s.close()
	return io.NopCloser(bytes.NewReader(data)), nil
}

// looseHeader opens a loose object's zlib stream and reads its "<type> <size>\0" header.
// The returned reader yields exactly size content bytes, then checks the stream's end.
func looseHeader(f io.Reader) (objType, int64, io.Reader, error) {
	zr, err := zlib.NewReader(bufio.NewReader(f))
	if err != nil {
		return 0, 0, nil, fmt.Errorf("%w: loose object is not a zlib stream: %v", ErrInvalid, err)
	}
	var hdr [32]byte
	n := 0
	for {
		if n == len(hdr) {
			return 0, 0, nil, fmt.Errorf("%w: loose object header is too long", ErrInvalid)
		}
		if _, err := io.ReadFull(zr, hdr[n:n+1]); err != nil {
			return 0, 0, nil, fmt.Errorf("%w: loose object header: %v", ErrInvalid, noEOF(err))
		}
		if hdr[n] == 0 {
			break
		}
		n++
	}
	typ, size, ok := bytes.Cut(hdr[:n], []byte(" "))
	t, tok := parseObjType(typ)
	sz, err := strconv.ParseInt(string(size), 10, 64)
	if !ok || !tok || err != nil || sz < 0 || (len(size) > 1 && size[0] == '0') {
		return 0, 0, nil, fmt.Errorf("%w: loose object header %s does not parse", ErrInvalid, quoteBytes(hdr[:n], 32))
	}
	return t, sz, &exactReader{r: zr, left: sz}, nil
}

// find locates a packed object.
func (s *localSession) find(id oid) (*localPack, int64, error) {
	if !s.listed {
		s.listed = true
		entries, err := s.fs.ReadDir("objects/pack")
		if err != nil && !os.IsNotExist(err) {
			return nil, 0, err
		}
		var names []string
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".idx") && !e.IsDir() {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, n := range names {
			p, err := openLocalPack(s.fs, "objects/pack/"+strings.TrimSuffix(n, ".idx"))
			if err != nil {
				return nil, 0, err
			}
			s.packs = append(s.packs, p)
		}
	}
	for _, p := range s.packs {
		off, ok, err := p.find(id)
		if err != nil {
			return nil, 0, err
		}
		if ok {
			return p, off, nil
		}
	}
	if _, err := s.fs.Stat("objects/info/alternates"); err == nil {
		return nil, 0, fmt.Errorf("%w (%s; objects borrowed through objects/info/alternates are not read)", errObjectMissing, id)
	}
	return nil, 0, fmt.Errorf("%w (%s)", errObjectMissing, id)
}

// packedHeader follows a delta chain's headers to the object's type, and returns the
// declared size of the entry at off.
func (s *localSession) packedHeader(p *localPack, off int64, depth int) (objType, int64, error) {
	for {
		if depth > s.l.lim.deltaDepth {
			return 0, 0, fmt.Errorf("%w: pack %s: delta chain longer than %d", ErrInvalid, p.name, s.l.lim.deltaDepth)
		}
		e, _, err := p.entryAt(off)
		if err != nil {
			return 0, 0, err
		}
		switch e.kind {
		case packOfsDelta:
			if e.baseRel > off-12 {
				return 0, 0, fmt.Errorf("%w: pack %s: delta at %d points before the pack", ErrInvalid, p.name, off)
			}
			off -= e.baseRel
		case packRefDelta:
			bp, boff, err := s.find(e.baseID)
			if err != nil {
				return 0, 0, err
			}
			p, off = bp, boff
		default:
			return objType(e.kind), e.size, nil
		}
		depth++
	}
}

// packedRead rebuilds the object at off, refusing one over limit. Delta bases may be
// larger than the result (up to lim.deltaInMemory, and at least 16 MiB).
func (s *localSession) packedRead(p *localPack, off, limit int64, depth int) (objType, []byte, error) {
	if depth > s.l.lim.deltaDepth {
		return 0, nil, fmt.Errorf("%w: pack %s: delta chain longer than %d", ErrInvalid, p.name, s.l.lim.deltaDepth)
	}
	e, br, err := p.entryAt(off)
	if err != nil {
		return 0, nil, err
	}
	var z inflater
	inflate := func(size int64) ([]byte, error) {
		r, err := z.reader(br, size)
		if err != nil {
			return nil, fmt.Errorf("%w: pack %s at %d: %v", ErrInvalid, p.name, off, err)
		}
		b, err := readAllExact(r, size)
		if err != nil {
			return nil, fmt.Errorf("%w: pack %s at %d: %v", ErrInvalid, p.name, off, noEOF(err))
		}
		return b, nil
	}
	if e.kind != packOfsDelta && e.kind != packRefDelta {
		t := objType(e.kind)
		if e.size > limit {
			return 0, nil, &packLimitError{what: "a " + t.String() + " object", size: e.size, limit: limit}
		}
		data, err := inflate(e.size)
		return t, data, err
	}
	if e.size > maxDeltaData(limit) {
		return 0, nil, &packLimitError{what: "a delta", size: e.size, limit: maxDeltaData(limit)}
	}
	delta, err := inflate(e.size)
	if err != nil {
		return 0, nil, err
	}
	if _, dst, _, err := deltaHeader(delta); err != nil {
		return 0, nil, fmt.Errorf("%w: pack %s at %d: %v", ErrInvalid, p.name, off, err)
	} else if dst > limit {
		return 0, nil, &packLimitError{what: "an object rebuilt from a delta", size: dst, limit: limit}
	}
	baseLimit := min(max(limit, 16<<20), max(limit, s.l.lim.deltaInMemory))
	var bt objType
	var base []byte
	if e.kind == packOfsDelta {
		if e.baseRel > off-12 {
			return 0, nil, fmt.Errorf("%w: pack %s: delta at %d points before the pack", ErrInvalid, p.name, off)
		}
		bt, base, err = s.packedRead(p, off-e.baseRel, baseLimit, depth+1)
	} else {
		var bp *localPack
		var boff int64
		if bp, boff, err = s.find(e.baseID); err == nil {
			bt, base, err = s.packedRead(bp, boff, baseLimit, depth+1)
		}
	}
	if err != nil {
		return 0, nil, err
	}
	data, err := applyDelta(base, delta, limit)
	if err != nil {
		var le *packLimitError
		if errors.As(err, &le) {
			return 0, nil, err
		}
		return 0, nil, fmt.Errorf("%w: pack %s at %d: %v", ErrInvalid, p.name, off, err)
	}
	return bt, data, nil
}

// localPack is a pack file and its version 2 index, read in place.
type localPack struct {
	name     string
	idx      billy.File
	pack     billy.File
	n        uint32
	fanout   [256]uint32
	packSize int64
	idxSize  int64
}

func openLocalPack(fs billy.Filesystem, base string) (*localPack, error) {
	p := &localPack{name: base[strings.LastIndexByte(base, '/')+1:]}
	var err error
	if p.idx, err = fs.Open(base + ".idx"); err != nil {
		return nil, err
	}
	if p.pack, err = fs.Open(base + ".pack"); err != nil {
		p.idx.Close()
		return nil, err
	}
	fail := func(msg string) (*localPack, error) {
		p.close()
		return nil, fmt.Errorf("%w: pack index %s: %s", ErrInvalid, p.name, msg)
	}
	ist, err := fs.Stat(base + ".idx")
	if err != nil {
		p.close()
		return nil, err
	}
	pst, err := fs.Stat(base + ".pack")
	if err != nil {
		p.close()
		return nil, err
	}
	p.idxSize, p.packSize = ist.Size(), pst.Size()
	var hdr [8 + 256*4]byte
	if _, err := p.idx.ReadAt(hdr[:], 0); err != nil {
		return fail("too short")
	}
	if !bytes.Equal(hdr[:8], []byte{0xff, 't', 'O', 'c', 0, 0, 0, 2}) {
		return fail("not a version 2 index")
	}
	for i := range p.fanout {
		p.fanout[i] = binary.BigEndian.Uint32(hdr[8+4*i:])
		if i > 0 && p.fanout[i] < p.fanout[i-1] {
			return fail("fan-out table is not sorted")
		}
	}
	p.n = p.fanout[255]
	if min := int64(8+256*4) + int64(p.n)*28 + 40; p.idxSize < min {
		return fail("shorter than its object count needs")
	}
	if p.packSize < 32 {
		return fail("its pack is too short")
	}
	return p, nil
}

func (p *localPack) close() {
	if p.idx != nil {
		p.idx.Close()
	}
	if p.pack != nil {
		p.pack.Close()
	}
}

// find looks id up in the index.
func (p *localPack) find(id oid) (int64, bool, error) {
	lo := uint32(0)
	if id[0] > 0 {
		lo = p.fanout[id[0]-1]
	}
	hi := p.fanout[id[0]]
	names := int64(8 + 256*4)
	var name oid
	for lo < hi {
		mid := lo + (hi-lo)/2
		if _, err := p.idx.ReadAt(name[:], names+int64(mid)*20); err != nil {
			return 0, false, err
		}
		switch c := bytes.Compare(name[:], id[:]); {
		case c == 0:
			return p.offset(mid)
		case c < 0:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return 0, false, nil
}

func (p *localPack) offset(i uint32) (int64, bool, error) {
	offs := int64(8+256*4) + int64(p.n)*24
	var b [8]byte
	if _, err := p.idx.ReadAt(b[:4], offs+int64(i)*4); err != nil {
		return 0, false, err
	}
	o := binary.BigEndian.Uint32(b[:4])
	off := int64(o)
	if o&0x80000000 != 0 {
		large := offs + int64(p.n)*4 + int64(o&0x7fffffff)*8
		if large+8 > p.idxSize-40 {
			return 0, false, fmt.Errorf("%w: pack index %s: large offset out of range", ErrInvalid, p.name)
		}
		if _, err := p.idx.ReadAt(b[:], large); err != nil {
			return 0, false, err
		}
		off = int64(binary.BigEndian.Uint64(b[:]))
	}
	if off < 12 || off >= p.packSize-20 {
		return 0, false, fmt.Errorf("%w: pack index %s: offset %d out of range", ErrInvalid, p.name, off)
	}
	return off, true, nil
}

// entryAt reads the entry header at off and returns a reader at its data.
func (p *localPack) entryAt(off int64) (packEntry, *bufio.Reader, error) {
	if off < 12 || off >= p.packSize-20 {
		return packEntry{}, nil, fmt.Errorf("%w: pack %s: offset %d out of range", ErrInvalid, p.name, off)
	}
	br := bufio.NewReaderSize(io.NewSectionReader(p.pack, off, p.packSize-20-off), 4096)
	e, err := readEntryHeader(br)
	if err != nil {
		return e, nil, fmt.Errorf("%w: pack %s at %d: %v", ErrInvalid, p.name, off, noEOF(err))
	}
	return e, br, nil
}
