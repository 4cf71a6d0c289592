package release

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Pack entry kinds besides the object types.
const (
	packOfsDelta = 6
	packRefDelta = 7
)

// packLimitError says a pack (or one object in it) is over a limit. The object is not
// identified: its id is only known once its bytes are read, and they were not.
type packLimitError struct {
	what  string // "a tag object", "the response", ...
	size  int64
	limit int64
}

func (e *packLimitError) Error() string {
	if e.size > 0 {
		return fmt.Sprintf("%s of %d bytes is over the limit of %d", e.what, e.size, e.limit)
	}
	return fmt.Sprintf("%s is over the limit of %d bytes", e.what, e.limit)
}

// packEntry is the header of one pack entry.
type packEntry struct {
	kind    int8  // objCommit..objTag, packOfsDelta or packRefDelta
	size    int64 // declared size of the object, or of the delta data
	baseRel int64 // ofs delta: how far back the base entry starts
	baseID  oid   // ref delta: the base's id
}

// readEntryHeader reads an entry header: type and size, then the delta base.
func readEntryHeader(r io.ByteReader) (packEntry, error) {
	var e packEntry
	c, err := r.ReadByte()
	if err != nil {
		return e, err
	}
	e.kind = int8(c>>4) & 7
	e.size = int64(c & 15)
	for shift := uint(4); c&0x80 != 0; shift += 7 {
		if shift > 56 {
			return e, errors.New("pack entry size does not fit in 63 bits")
		}
		if c, err = r.ReadByte(); err != nil {
			return e, err
		}
		e.size |= int64(c&0x7f) << shift
	}
	switch e.kind {
	case int8(objCommit), int8(objTree), int8(objBlob), int8(objTag):
	case packOfsDelta:
		if c, err = r.ReadByte(); err != nil {
			return e, err
		}
		n := int64(c & 0x7f)
		for c&0x80 != 0 {
			if n >= 1<<55 {
				return e, errors.New("pack delta offset does not fit in 63 bits")
			}
			if c, err = r.ReadByte(); err != nil {
				return e, err
			}
			n = (n+1)<<7 | int64(c&0x7f)
		}
		if n == 0 {
			return e, errors.New("pack delta names itself as its base")
		}
		e.baseRel = n
	case packRefDelta:
		for i := range e.baseID {
			if e.baseID[i], err = r.ReadByte(); err != nil {
				return e, err
			}
		}
	default:
		return e, fmt.Errorf("pack entry has unknown type %d", e.kind)
	}
	return e, nil
}

// deltaHeader reads a delta's base and result sizes.
func deltaHeader(delta []byte) (src, dst int64, rest []byte, err error) {
	src, delta, err = deltaVarint(delta)
	if err != nil {
		return 0, 0, nil, err
	}
	dst, delta, err = deltaVarint(delta)
	return src, dst, delta, err
}

func deltaVarint(b []byte) (int64, []byte, error) {
	var v int64
	for i, shift := 0, uint(0); i < len(b); i, shift = i+1, shift+7 {
		if shift > 56 {
			return 0, nil, errors.New("delta size does not fit in 63 bits")
		}
		v |= int64(b[i]&0x7f) << shift
		if b[i]&0x80 == 0 {
			return v, b[i+1:], nil
		}
	}
	return 0, nil, errors.New("delta header is truncated")
}

// applyDelta rebuilds an object from its base and a delta, refusing a result over limit.
func applyDelta(base, delta []byte, limit int64) ([]byte, error) {
	src, dst, ins, err := deltaHeader(delta)
	if err != nil {
		return nil, err
	}
	if src != int64(len(base)) {
		return nil, fmt.Errorf("delta expects a base of %d bytes, the base has %d", src, len(base))
	}
	if dst > limit {
		return nil, &packLimitError{what: "an object rebuilt from a delta", size: dst, limit: limit}
	}
	out := make([]byte, 0, dst)
	for len(ins) > 0 {
		cmd := ins[0]
		ins = ins[1:]
		switch {
		case cmd&0x80 != 0:
			var off, n uint64
			for i := uint(0); i < 4; i++ {
				if cmd&(1<<i) != 0 {
					if len(ins) == 0 {
						return nil, errors.New("delta copy instruction is truncated")
					}
					off |= uint64(ins[0]) << (8 * i)
					ins = ins[1:]
				}
			}
			for i := uint(0); i < 3; i++ {
				if cmd&(0x10<<i) != 0 {
					if len(ins) == 0 {
						return nil, errors.New("delta copy instruction is truncated")
					}
					n |= uint64(ins[0]) << (8 * i)
					ins = ins[1:]
				}
			}
			if n == 0 {
				n = 0x10000
			}
			if off+n > uint64(len(base)) || int64(len(out))+int64(n) > dst {
				return nil, errors.New("delta copies outside its base or past its result")
			}
			out = append(out, base[off:off+n]...)
		case cmd != 0:
			n := int(cmd)
			if n > len(ins) || int64(len(out)+n) > dst {
				return nil, errors.New("delta insert instruction is truncated or too long")
			}
			out = append(out, ins[:n]...)
			ins = ins[n:]
		default:
			return nil, errors.New("delta has the reserved instruction 0")
		}
	}
	if int64(len(out)) != dst {
		return nil, fmt.Errorf("delta builds %d bytes, its header says %d", len(out), dst)
	}
	return out, nil
}

// maxDeltaData bounds the delta data for a result of at most limit bytes: a delta that only
// inserts costs one instruction byte per 127 bytes, plus its header.
func maxDeltaData(limit int64) int64 { return limit + limit/127 + 64 }

// countingReader counts the bytes read through it; it is a flate.Reader, so zlib reads
// exactly one stream from it and no byte further.
type countingReader struct {
	r flate.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

// inflater reads zlib streams of a declared size, one after the other, from one reader.
type inflater struct {
	zr io.ReadCloser
}

// reader starts the next stream of exactly size bytes at r. The returned reader fails if
// the stream is longer or shorter than size, or its checksum does not match.
func (z *inflater) reader(r flate.Reader, size int64) (io.Reader, error) {
	var err error
	if z.zr == nil {
		z.zr, err = zlib.NewReader(r)
	} else {
		err = z.zr.(zlib.Resetter).Reset(r, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("object data is not a zlib stream: %w", err)
	}
	return &exactReader{r: z.zr, left: size}, nil
}

// exactReader yields exactly left bytes of a zlib stream, then checks that the stream ends.
type exactReader struct {
	r    io.Reader
	left int64
	err  error
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		var one [1]byte
		n, err := io.ReadFull(e.r, one[:])
		switch {
		case n > 0:
			e.err = errors.New("object data is longer than its declared size")
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			e.err = io.EOF // the stream ended and its checksum verified
		default:
			e.err = fmt.Errorf("object data: %w", err)
		}
		return 0, e.err
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF {
		if e.left > 0 {
			e.err = errors.New("object data is shorter than its declared size")
			return n, e.err
		}
		err = nil
	}
	if err != nil {
		e.err = fmt.Errorf("object data: %w", err)
		return n, e.err
	}
	return n, nil
}

// readAllExact reads one whole stream of size bytes into memory and checks that it ends.
func readAllExact(r io.Reader, size int64) ([]byte, error) {
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	var one [1]byte
	if _, err := r.Read(one[:]); err != io.EOF {
		if err == nil {
			err = errors.New("object data is longer than its declared size")
		}
		return nil, err
	}
	return buf, nil
}

// packStream reads a pack sequentially, as it arrives from a server.
type packStream struct {
	r        *countingReader
	z        inflater
	count    uint32 // objects the header announces
	seen     uint32
	inflated int64
	lim      packStreamLimits
}

type packStreamLimits struct {
	objects uint32 // objects the pack may hold
	inflate int64  // bytes inflated over the whole pack, including discarded ones
}

func newPackStream(r flate.Reader, lim packStreamLimits) (*packStream, error) {
	p := &packStream{r: &countingReader{r: r}, lim: lim}
	var hdr [12]byte
	if _, err := io.ReadFull(p.r, hdr[:]); err != nil {
		return nil, fmt.Errorf("pack header: %w", err)
	}
	if !bytes.Equal(hdr[:4], []byte("PACK")) {
		return nil, errors.New("response is not a pack")
	}
	if v := binary.BigEndian.Uint32(hdr[4:8]); v != 2 && v != 3 {
		return nil, fmt.Errorf("pack version %d is not supported", v)
	}
	p.count = binary.BigEndian.Uint32(hdr[8:12])
	if p.count > lim.objects {
		return nil, &packLimitError{what: fmt.Sprintf("a pack of %d objects", p.count), limit: int64(lim.objects)}
	}
	return p, nil
}

// next reads the next entry header and its offset in the pack; io.EOF after the last one
// (the trailer read). The previous entry's data must have been consumed.
func (p *packStream) next() (packEntry, int64, error) {
	if p.seen == p.count {
		var trailer [20]byte
		if _, err := io.ReadFull(p.r, trailer[:]); err != nil {
			return packEntry{}, 0, fmt.Errorf("pack trailer: %w", err)
		}
		return packEntry{}, 0, io.EOF
	}
	p.seen++
	off := p.r.n
	e, err := readEntryHeader(p.r)
	if err != nil {
		return e, off, fmt.Errorf("pack entry %d: %w", p.seen, noEOF(err))
	}
	return e, off, nil
}

// data streams the current entry's data (e.size bytes), counted against the inflate budget.
func (p *packStream) data(e packEntry) (io.Reader, error) {
	if p.inflated+e.size > p.lim.inflate {
		return nil, &packLimitError{what: "the pack's inflated data", size: p.inflated + e.size, limit: p.lim.inflate}
	}
	p.inflated += e.size
	r, err := p.z.reader(p.r, e.size)
	if err != nil {
		return nil, fmt.Errorf("pack entry %d: %w", p.seen, err)
	}
	return r, nil
}

func (p *packStream) readData(e packEntry) ([]byte, error) {
	r, err := p.data(e)
	if err != nil {
		return nil, err
	}
	b, err := readAllExact(r, e.size)
	if err != nil {
		return nil, fmt.Errorf("pack entry %d: %w", p.seen, noEOF(err))
	}
	return b, nil
}

func (p *packStream) discardData(e packEntry) error {
	r, err := p.data(e)
	if err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("pack entry %d: %w", p.seen, noEOF(err))
	}
	return nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// packObject is a whole object out of a pack, its id computed from its bytes.
type packObject struct {
	typ  objType
	data []byte
	id   oid
}

// collectPolicy says which objects of a pack are kept, and how many bytes in all.
type collectPolicy struct {
	// limit is the largest object of each type that is kept; negative: objects of that
	// type are skipped (read and dropped, counted against the inflate budget).
	limit func(objType) int64
	// strict: an object over its limit, or over the keep budget, fails the whole pack.
	// Otherwise it is dropped, as are deltas against it.
	strict bool
	keep   int64
	stream packStreamLimits
}

// collectPack reads a whole pack, rebuilding deltas against bases in the same pack, and
// returns the kept objects by id. Every id is computed from the object's bytes.
func collectPack(r flate.Reader, pol collectPolicy) (map[oid]*packObject, error) {
	ps, err := newPackStream(r, pol.stream)
	if err != nil {
		return nil, err
	}
	byOff := make(map[int64]*packObject)
	byID := make(map[oid]*packObject)
	// Offsets of entries read through, in a strict pack (small: its object count is
	// bounded by what was asked for); a non-strict pack drops any delta whose base it lacks.
	dropped := make(map[int64]bool)
	drop := func(off int64) {
		if pol.strict {
			dropped[off] = true
		}
	}
	var kept int64
	keep := func(off int64, t objType, data []byte) error {
		id, collision := hashObject(t, data)
		if collision {
			return fmt.Errorf("%w: %s %s in the pack carries a SHA-1 collision attack", ErrGitIntegrity, t, id)
		}
		o := &packObject{typ: t, data: data, id: id}
		byOff[off] = o
		byID[id] = o
		kept += int64(len(data))
		return nil
	}
	over := func(what string, size, limit int64) error {
		return &packLimitError{what: what, size: size, limit: limit}
	}
	for {
		e, off, err := ps.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if e.kind == packOfsDelta || e.kind == packRefDelta {
			var base *packObject
			if e.kind == packOfsDelta {
				base = byOff[off-e.baseRel]
			} else {
				base = byID[e.baseID]
			}
			var lim int64 = -1
			if base != nil {
				lim = pol.limit(base.typ)
			}
			if base == nil && pol.strict {
				// A delta against a dropped object is dropped with it; one against
				// nothing at all is a broken pack.
				if (e.kind == packOfsDelta && !dropped[off-e.baseRel]) || (e.kind == packRefDelta && len(dropped) == 0) {
					return nil, fmt.Errorf("pack entry %d is a delta against an object not in the pack", ps.seen)
				}
			}
			if lim < 0 {
				drop(off)
				if err := ps.discardData(e); err != nil {
					return nil, err
				}
				continue
			}
			if e.size > maxDeltaData(lim) {
				if pol.strict {
					return nil, over("a "+base.typ.String()+" delta", e.size, maxDeltaData(lim))
				}
				drop(off)
				if err := ps.discardData(e); err != nil {
					return nil, err
				}
				continue
			}
			delta, err := ps.readData(e)
			if err != nil {
				return nil, err
			}
			_, dst, _, err := deltaHeader(delta)
			if err != nil {
				return nil, fmt.Errorf("pack entry %d: %w", ps.seen, err)
			}
			if dst > lim || kept+dst > pol.keep {
				if pol.strict {
					if dst > lim {
						return nil, over("a "+base.typ.String()+" object", dst, lim)
					}
					return nil, over("the objects kept from the pack", kept+dst, pol.keep)
				}
				drop(off)
				continue
			}
			data, err := applyDelta(base.data, delta, lim)
			if err != nil {
				return nil, fmt.Errorf("pack entry %d: %w", ps.seen, err)
			}
			if err := keep(off, base.typ, data); err != nil {
				return nil, err
			}
			continue
		}
		t := objType(e.kind)
		lim := pol.limit(t)
		switch {
		case lim < 0:
		case e.size > lim || kept+e.size > pol.keep:
			if pol.strict {
				if e.size > lim {
					return nil, over("a "+t.String()+" object", e.size, lim)
				}
				return nil, over("the objects kept from the pack", kept+e.size, pol.keep)
			}
			lim = -1
		}
		if lim < 0 {
			drop(off)
			if err := ps.discardData(e); err != nil {
				return nil, err
			}
			continue
		}
		data, err := ps.readData(e)
		if err != nil {
			return nil, err
		}
		if err := keep(off, t, data); err != nil {
			return nil, err
		}
	}
	return byID, nil
}
