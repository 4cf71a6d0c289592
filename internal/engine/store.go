package engine

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/tamperguard/tamperguard/internal/gsref"
)

// Errors a Store returns, so the engine can tell "gone" and "someone else wrote first"
// from "could not read".
var (
	// ErrObjectNotFound: no such object, or no such generation of it.
	ErrObjectNotFound = errors.New("object not found")
	// ErrPrecondition: a conditional write, delete or update lost (HTTP 412).
	ErrPrecondition = errors.New("precondition failed")
	// ErrTransient: the store failed in a way worth retrying (5xx, 429, timeouts).
	ErrTransient = errors.New("storage temporarily unavailable")
)

// ObjectAttrs is what the engine needs of one generation of an object.
type ObjectAttrs struct {
	Bucket         string
	Name           string
	Generation     int64
	Metageneration int64
	Size           int64
	Created        time.Time // when this generation was written
	Updated        time.Time // last metadata change
	Deleted        time.Time // when it became noncurrent; zero if live
	Live           bool      // this generation is the object's current one
	MD5            []byte    // as reported by the store; never trusted as proof
	// CRC32C is the store's CRC32C of the bytes when HasCRC32C; like MD5 never proof that
	// bytes are the signed ones, only, when it differs from a remembered one, that they changed.
	CRC32C    uint32
	HasCRC32C bool
	Meta      Metadata
}

// Metadata is the protected metadata of an object: the headers that change what a client
// does with the bytes, and the custom metadata.
type Metadata struct {
	ContentType        string
	ContentEncoding    string
	CacheControl       string
	ContentDisposition string
	Custom             map[string]string
}

// Condition guards a write. Exactly one of its fields is meaningful.
type Condition struct {
	// GenerationMatch: the live generation must be this one.
	GenerationMatch int64
	// DoesNotExist: there must be no live generation.
	DoesNotExist bool
	// MetagenerationMatch: with GenerationMatch, for metadata updates.
	MetagenerationMatch int64
}

// Store is the object storage the engine judges and repairs. The Cloud Storage adapter
// implements it; every write is conditional so a newer legitimate upload is never
// clobbered.
type Store interface {
	// Attrs returns the attributes of generation gen (0 = the live generation).
	Attrs(ctx context.Context, bucket, object string, gen int64) (ObjectAttrs, error)
	// Open reads exactly generation gen (never "whatever is live"); gen must be > 0.
	Open(ctx context.Context, bucket, object string, gen int64) (io.ReadCloser, error)
	// Versions lists every stored generation of object, newest first, live and noncurrent.
	Versions(ctx context.Context, bucket, object string) ([]ObjectAttrs, error)
	// List calls fn for the live generation of every object whose name has prefix, in name
	// order.
	List(ctx context.Context, bucket, prefix string, fn func(ObjectAttrs) error) error
	// ListFrom is List from the name from on (inclusive): where an audit resumes.
	ListFrom(ctx context.Context, bucket, prefix, from string, fn func(ObjectAttrs) error) error
	// Write stores r as a new generation if cond holds, with meta, and returns it.
	Write(ctx context.Context, bucket, object string, cond Condition, meta Metadata, r io.Reader) (ObjectAttrs, error)
	// Copy writes generation src.Generation (> 0) of src.Bucket/src.Object as a new
	// generation of dst.Bucket/dst.Object (dst.Generation must be 0) if cond holds on the
	// destination, with exactly meta (nothing of the source's metadata is kept), and
	// returns it. The bytes are copied by the store itself (a rewrite): none pass through
	// tamperguard. ErrObjectNotFound: that source generation does not exist (any more).
	Copy(ctx context.Context, src, dst gsref.ObjectRef, cond Condition, meta Metadata) (ObjectAttrs, error)
	// Delete deletes the live generation if cond.GenerationMatch still is live.
	Delete(ctx context.Context, bucket, object string, cond Condition) error
	// UpdateMetadata replaces the protected metadata if cond (generation and
	// metageneration) holds, and returns the new attributes.
	UpdateMetadata(ctx context.Context, bucket, object string, cond Condition, meta Metadata) (ObjectAttrs, error)
}
