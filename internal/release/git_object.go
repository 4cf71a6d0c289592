package release

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"time"

	"github.com/pjbgf/sha1cd"
)

// ErrGitIntegrity: a git object's bytes do not hash to the id it was asked for (a swapped
// loose object, a corrupt pack, a lying server), or they carry a SHA-1 collision attack.
// It always comes wrapped with ErrInvalid: such bytes are refused, never used.
var ErrGitIntegrity = errors.New("git object does not match its id")

// oid is a SHA-1 git object id.
type oid [20]byte

func (o oid) String() string { return hex.EncodeToString(o[:]) }

// short is the first 12 hex digits, for messages.
func (o oid) short() string { return o.String()[:12] }

func (o oid) isZero() bool { return o == oid{} }

// parseOID reads 40 hex digits.
func parseOID(s []byte) (oid, bool) {
	var o oid
	if len(s) != 40 {
		return o, false
	}
	if _, err := hex.Decode(o[:], s); err != nil {
		return o, false
	}
	return o, true
}

// objType is a git object type, numbered as in pack files.
type objType int8

const (
	objCommit objType = 1
	objTree   objType = 2
	objBlob   objType = 3
	objTag    objType = 4
)

func (t objType) String() string {
	switch t {
	case objCommit:
		return "commit"
	case objTree:
		return "tree"
	case objBlob:
		return "blob"
	case objTag:
		return "tag"
	}
	return "object type " + strconv.Itoa(int(t))
}

func parseObjType(s []byte) (objType, bool) {
	switch string(s) {
	case "commit":
		return objCommit, true
	case "tree":
		return objTree, true
	case "blob":
		return objBlob, true
	case "tag":
		return objTag, true
	}
	return 0, false
}

// objectHasher computes a git object id the way git does: SHA-1 over "<type> <size>\0"
// and the content, with SHA-1 collision detection (the counter-cryptanalysis git itself
// uses), so a crafted colliding object is refused rather than taken for the signed one.
type objectHasher struct {
	h hash.Hash
}

func newObjectHasher(t objType, size int64) *objectHasher {
	h := sha1cd.New()
	fmt.Fprintf(h, "%s %d\x00", t, size)
	return &objectHasher{h: h}
}

func (o *objectHasher) Write(p []byte) (int, error) { return o.h.Write(p) }

// sum returns the id and whether a collision attack was detected.
func (o *objectHasher) sum() (oid, bool) {
	var id oid
	cr, ok := o.h.(interface {
		CollisionResistantSum([]byte) ([]byte, bool)
	})
	if !ok { // sha1cd always has it; refuse rather than trust a hash we cannot check
		return id, true
	}
	b, collision := cr.CollisionResistantSum(nil)
	copy(id[:], b)
	return id, collision
}

// hashObject is the id of an object held in memory.
func hashObject(t objType, data []byte) (oid, bool) {
	h := newObjectHasher(t, int64(len(data)))
	h.Write(data)
	return h.sum()
}

// checkObject refuses data whose id is not want.
func checkObject(want oid, t objType, data []byte) error {
	got, collision := hashObject(t, data)
	if collision {
		return fmt.Errorf("%w: %w: %s %s carries a SHA-1 collision attack", ErrInvalid, ErrGitIntegrity, t, want)
	}
	if got != want {
		return fmt.Errorf("%w: %w: %s %s hashes to %s", ErrInvalid, ErrGitIntegrity, t, want, got)
	}
	return nil
}

// gitTag is a parsed annotated tag object. Payload and Signature are slices of the raw
// object: Payload is exactly what git signed (the object up to the signature block), so
// nothing is re-encoded before verification.
type gitTag struct {
	Object     oid
	TargetType objType
	Name       string
	Tagger     string // the raw ident line ("" when absent)
	Time       time.Time
	Payload    []byte
	Signature  []byte // "" for an unsigned tag
}

// maxTagName bounds a tag name taken from a tag object or a ref.
const maxTagName = 1024

// signatureStarts are the armor lines git recognizes as the start of a tag's signature
// (gpg-interface.c: OpenPGP, X.509, SSH).
var signatureStarts = [][]byte{
	[]byte("-----BEGIN PGP SIGNATURE-----"),
	[]byte("-----BEGIN PGP MESSAGE-----"),
	[]byte("-----BEGIN SIGNED MESSAGE-----"),
	[]byte("-----BEGIN SSH SIGNATURE-----"),
}

// parseTag parses a tag object's content. The header is held to git's layout: object,
// type and tag lines, in that order, an optional tagger line, then any other headers up to
// the blank line that starts the message. The signature is the message's tail from the
// last line that starts a signature block, as git finds it (parse_signed_buffer).
func parseTag(data []byte) (*gitTag, error) {
	t := &gitTag{}
	rest := data
	seen := map[string]bool{}
	for i := 0; ; i++ {
		if len(rest) == 0 {
			break // headers only, no message
		}
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("tag header line %d is not terminated", i+1)
		}
		line := rest[:nl]
		rest = rest[nl+1:]
		if len(line) == 0 {
			break // the message follows
		}
		key, val, ok := bytes.Cut(line, []byte(" "))
		if !ok || len(key) == 0 {
			return nil, fmt.Errorf("tag header line %d has no field name", i+1)
		}
		k := string(key)
		switch {
		case i == 0 && k != "object", i == 1 && k != "type", i == 2 && k != "tag":
			return nil, fmt.Errorf("tag header line %d is %s, want object, type and tag first", i+1, quoteBytes(key, 40))
		}
		switch k {
		case "object", "type", "tag", "tagger":
			if seen[k] {
				return nil, fmt.Errorf("tag header has two %s lines", k)
			}
			seen[k] = true
		}
		switch k {
		case "object":
			id, ok := parseOID(val)
			if !ok {
				return nil, fmt.Errorf("tag object line %s is not a SHA-1 object id", quoteBytes(val, 60))
			}
			t.Object = id
		case "type":
			typ, ok := parseObjType(val)
			if !ok {
				return nil, fmt.Errorf("tag type %s is not an object type", quoteBytes(val, 40))
			}
			t.TargetType = typ
		case "tag":
			if len(val) == 0 || len(val) > maxTagName || bytes.IndexByte(val, 0) >= 0 {
				return nil, fmt.Errorf("tag name %s is empty, too long or has a NUL", quoteBytes(val, 60))
			}
			t.Name = string(val)
		case "tagger":
			if i != 3 {
				return nil, errors.New("tag tagger line is not the fourth header line")
			}
			t.Tagger = string(val)
			t.Time = identTime(val)
		}
	}
	if !seen["tag"] {
		return nil, errors.New("tag header lacks object, type or tag")
	}
	sig := signatureStart(data)
	t.Payload, t.Signature = data[:sig], data[sig:]
	return t, nil
}

// signatureStart is the offset of the last line that starts a signature block; len(data)
// when there is none.
func signatureStart(data []byte) int {
	match := len(data)
	for off := 0; off < len(data); {
		line := data[off:]
		for _, s := range signatureStarts {
			if bytes.HasPrefix(line, s) {
				match = off
				break
			}
		}
		nl := bytes.IndexByte(line, '\n')
		if nl < 0 {
			break
		}
		off += nl + 1
	}
	return match
}

// identTime reads the "<seconds> <+hhmm>" tail of a git ident line; zero if it does not parse.
func identTime(ident []byte) time.Time {
	gt := bytes.LastIndexByte(ident, '>')
	if gt < 0 {
		return time.Time{}
	}
	f := bytes.Fields(ident[gt+1:])
	if len(f) != 2 || len(f[1]) != 5 || (f[1][0] != '+' && f[1][0] != '-') {
		return time.Time{}
	}
	sec, err := strconv.ParseInt(string(f[0]), 10, 64)
	if err != nil {
		return time.Time{}
	}
	hh, err1 := strconv.Atoi(string(f[1][1:3]))
	mm, err2 := strconv.Atoi(string(f[1][3:5]))
	if err1 != nil || err2 != nil || mm > 59 {
		return time.Time{}
	}
	off := hh*3600 + mm*60
	if f[1][0] == '-' {
		off = -off
	}
	return time.Unix(sec, 0).In(time.FixedZone(string(f[1]), off))
}

// commitTree reads the tree id from a commit's first line.
func commitTree(data []byte) (oid, error) {
	line, _, ok := bytes.Cut(data, []byte("\n"))
	if !ok || !bytes.HasPrefix(line, []byte("tree ")) {
		return oid{}, errors.New("commit does not start with a tree line")
	}
	id, ok := parseOID(line[len("tree "):])
	if !ok {
		return oid{}, errors.New("commit tree line is not a SHA-1 object id")
	}
	return id, nil
}

// treeEntry is one entry of a tree object.
type treeEntry struct {
	mode uint32
	id   oid
}

func (e treeEntry) isDir() bool { return e.mode == 0o40000 }
func (e treeEntry) isFile() bool {
	return e.mode == 0o100644 || e.mode == 0o100755 || e.mode == 0o100664
}

// lookupTree finds name in a tree object, checking the format of every entry it passes.
func lookupTree(data []byte, name string) (treeEntry, bool, error) {
	for len(data) > 0 {
		sp := bytes.IndexByte(data, ' ')
		if sp <= 0 || sp > 7 {
			return treeEntry{}, false, errors.New("tree entry has no mode")
		}
		var mode uint32
		for _, c := range data[:sp] {
			if c < '0' || c > '7' {
				return treeEntry{}, false, errors.New("tree entry mode is not octal")
			}
			mode = mode<<3 | uint32(c-'0')
		}
		data = data[sp+1:]
		nul := bytes.IndexByte(data, 0)
		if nul <= 0 || len(data) < nul+1+20 {
			return treeEntry{}, false, errors.New("tree entry is truncated")
		}
		entryName := data[:nul]
		var id oid
		copy(id[:], data[nul+1:nul+21])
		data = data[nul+21:]
		if string(entryName) == name {
			return treeEntry{mode: mode, id: id}, true, nil
		}
	}
	return treeEntry{}, false, nil
}

// quoteBytes renders untrusted bytes for a message: quoted, escaped, bounded.
func quoteBytes(b []byte, max int) string {
	if len(b) > max {
		return strconv.QuoteToASCII(string(b[:max])) + "…"
	}
	return strconv.QuoteToASCII(string(b))
}
