// Package gcs is the Cloud Storage adapter of the engine: it implements engine.Store
// with the Go SDK (cloud.google.com/go/storage) over the JSON API, reading object bytes
// through the XML API.
//
// Everything read from the bucket is treated as hostile: object names are validated
// against the rules of Cloud Storage before a request is made, attributes that come back
// are checked to be those of the object and generation asked for, objects are read as
// stored (never gzip-decoded) and never buffered whole, listings are bounded, and errors
// name the bucket, object (quoted) and generation concerned.
//
// Every write is conditional: Write and Copy need GenerationMatch or DoesNotExist, Delete needs
// GenerationMatch, UpdateMetadata needs GenerationMatch and MetagenerationMatch. This
// adapter never writes blindly.
//
// # Reading the stored bytes
//
// Open reads with ReadCompressed(true) (Accept-Encoding: gzip), so an object stored with
// Content-Encoding: gzip comes back as the gzip bytes it was stored as, not decompressed
// by the server (decompressive transcoding) or by Go's HTTP transport. The SDK (v1.65)
// supports that only for XML reads: with storage.WithJSONReads it refuses the request
// ("custom Accept-Encoding headers not allowed", googleapis/google-cloud-go#7786). So
// NewClient forces XML reads. Against the fake-gcs-server emulator, XML reads are
// path-style requests (http://HOST:PORT/BUCKET/OBJECT) that the emulator routes only if
// it was started with -public-host HOST:PORT, the same host:port as
// STORAGE_EMULATOR_HOST. When a whole object is read, the SDK checks the CRC32C the
// server reports for the stored bytes, so bytes altered on the way cannot be hashed
// silently.
package gcs

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/gsref"
)

const (
	// WriteChunkSize is the size of the chunks of a resumable upload (and of the
	// buffer each Write holds). Each chunk is retried on its own on transient failures.
	WriteChunkSize = 8 << 20
	// MaxVersions bounds Versions: an object with more stored generations is refused.
	MaxVersions = 1000
)

// Errors of this adapter that are not the store's (see also Error).
var (
	// ErrUnconditional: a write, delete or metadata update without the precondition
	// this adapter requires.
	ErrUnconditional = errors.New("refusing an unconditional write")
	// ErrInvalidArgument: a bucket or object name that Cloud Storage cannot hold, or a
	// generation that cannot be one.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrTooManyVersions: more than MaxVersions generations of one object.
	ErrTooManyVersions = fmt.Errorf("more than %d stored generations", MaxVersions)
	// ErrIntegrity: the store reported something other than what was sent or asked
	// for (size, checksum, name, generation).
	ErrIntegrity = errors.New("integrity check failed")
)

// attrFields are the object fields listings ask for.
var attrFields = []string{
	"Bucket", "Name", "Generation", "Metageneration", "Size", "Created", "Updated", "Deleted",
	"MD5", "CRC32C", "ContentType", "ContentEncoding", "CacheControl", "ContentDisposition", "Metadata",
}

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// Store implements engine.Store on Cloud Storage.
type Store struct{ c *storage.Client }

var _ engine.Store = (*Store)(nil)

// New returns a Store that uses c. c must read through the XML API (the SDK's default;
// see NewClient), or Open fails.
func New(c *storage.Client) *Store { return &Store{c: c} }

// NewClient makes a client for production or for the emulator: the SDK itself honours
// STORAGE_EMULATOR_HOST (endpoint http://HOST/storage/v1/, no authentication). Reads use
// the XML API whatever opts say (see the package documentation); everything else uses the
// JSON API. Retries are the SDK's (idempotent calls, which all conditional ones are, are
// retried until the context ends): give it contexts with deadlines.
func NewClient(ctx context.Context, opts ...option.ClientOption) (*storage.Client, error) {
	all := append(slices.Clone(opts), storage.WithXMLReads())
	c, err := storage.NewClient(ctx, all...)
	if err != nil {
		return nil, fmt.Errorf("gcs: storage client: %w", err)
	}
	return c, nil
}

// Attrs returns the attributes of generation gen of an object (0 = the live one).
//
// Live: a generation read without a number is live by definition. For a numbered
// generation the live object is read first: when it is that generation, that one answer
// (about the live object, not about a numbered generation) says both, in one request,
// the common case of an event about the write that is live. Otherwise the numbered
// generation is read as well, and it is not live (a generation never becomes live again).
func (s *Store) Attrs(ctx context.Context, bucket, object string, gen int64) (engine.ObjectAttrs, error) {
	fail := func(err error) (engine.ObjectAttrs, error) {
		return engine.ObjectAttrs{}, s.fail("attrs", bucket, object, gen, "", err)
	}
	if err := validate(bucket, object); err != nil {
		return fail(err)
	}
	if gen < 0 {
		return fail(fmt.Errorf("%w: negative generation %d", ErrInvalidArgument, gen))
	}
	o := s.c.Bucket(bucket).Object(object)
	live, err := o.Attrs(ctx)
	switch {
	case err != nil && (gen == 0 || !errors.Is(err, storage.ErrObjectNotExist)):
		if gen > 0 {
			err = fmt.Errorf("reading the live generation to tell whether %d is live: %w", gen, err)
		}
		return fail(err)
	case err == nil && (gen == 0 || live.Generation == gen):
		got, err := convert(live, bucket, object, gen)
		if err != nil {
			return fail(err)
		}
		got.Live = true
		return got, nil
	}
	a, err := o.Generation(gen).Attrs(ctx)
	if err != nil {
		return fail(err)
	}
	got, err := convert(a, bucket, object, gen)
	if err != nil {
		return fail(err)
	}
	got.Live = false
	return got, nil
}

// Open reads exactly generation gen of an object, as stored (see the package
// documentation). The bytes are streamed; read errors name the object and generation.
func (s *Store) Open(ctx context.Context, bucket, object string, gen int64) (io.ReadCloser, error) {
	if err := validate(bucket, object); err != nil {
		return nil, s.fail("open", bucket, object, gen, "", err)
	}
	if gen <= 0 {
		return nil, s.fail("open", bucket, object, gen, "", fmt.Errorf("%w: Open needs a generation, never whatever is live", ErrInvalidArgument))
	}
	r, err := s.c.Bucket(bucket).Object(object).Generation(gen).ReadCompressed(true).NewReader(ctx)
	if err != nil {
		if strings.Contains(err.Error(), "custom Accept-Encoding headers not allowed") {
			err = fmt.Errorf("the client reads through the JSON API, which cannot return stored (gzip) bytes; make it with gcs.NewClient: %w", err)
		}
		return nil, s.fail("open", bucket, object, gen, "", err)
	}
	if r.Attrs.Decompressed {
		_ = r.Close()
		return nil, s.fail("open", bucket, object, gen, "", fmt.Errorf("%w: the object was served decompressed, not as stored", ErrIntegrity))
	}
	return &reader{s: s, r: r, bucket: bucket, object: object, gen: gen, size: r.Attrs.Size}, nil
}

// reader wraps the SDK's reader so that errors name the object.
type reader struct {
	s              *Store
	r              *storage.Reader
	bucket, object string
	gen            int64
	size           int64 // as announced; -1 if unknown
	n              int64
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	switch {
	case err == io.EOF:
		if r.size >= 0 && r.n != r.size {
			return n, r.s.fail("read", r.bucket, r.object, r.gen, "", fmt.Errorf("%w: %d bytes read, %d announced", ErrIntegrity, r.n, r.size))
		}
		return n, io.EOF
	case err != nil:
		return n, r.s.fail("read", r.bucket, r.object, r.gen, "", err)
	}
	return n, nil
}

func (r *reader) Close() error { return r.r.Close() }

// Versions lists every stored generation of object, newest first, live and noncurrent;
// at most MaxVersions. Live is set on the newest generation without a Deleted time.
func (s *Store) Versions(ctx context.Context, bucket, object string) ([]engine.ObjectAttrs, error) {
	fail := func(err error) ([]engine.ObjectAttrs, error) {
		return nil, s.fail("versions", bucket, object, 0, "", err)
	}
	if err := validate(bucket, object); err != nil {
		return fail(err)
	}
	q := &storage.Query{Prefix: object, Versions: true}
	if err := q.SetAttrSelection(attrFields); err != nil {
		return fail(err)
	}
	var out []engine.ObjectAttrs
	it := s.c.Bucket(bucket).Objects(ctx, q)
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return fail(err)
		}
		if a.Name != object {
			// A prefix listing also returns "bash2" for "bash". Listings are in name
			// order and object is the smallest name with its own prefix, so once
			// another name shows up no generation of object can follow.
			if a.Name > object {
				break
			}
			continue
		}
		if len(out) == MaxVersions {
			return fail(ErrTooManyVersions)
		}
		v, err := convert(a, bucket, object, 0)
		if err != nil {
			return fail(err)
		}
		v.Live = a.Deleted.IsZero()
		out = append(out, v)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Generation > out[j].Generation })
	live := false
	for i := range out {
		if out[i].Live {
			out[i].Live = !live
			live = true
		}
	}
	return out, nil
}

// ListPageSize is how many objects one listing request asks for (Cloud Storage's most).
const ListPageSize = 1000

// List calls fn for the live generation of every object whose name has prefix, in name
// order, ListPageSize objects per request. An error from fn stops the listing and is
// returned as it is.
func (s *Store) List(ctx context.Context, bucket, prefix string, fn func(engine.ObjectAttrs) error) error {
	return s.ListFrom(ctx, bucket, prefix, "", fn)
}

// ListFrom is List from the name from on (inclusive; "" for the first name).
func (s *Store) ListFrom(ctx context.Context, bucket, prefix, from string, fn func(engine.ObjectAttrs) error) error {
	if err := validateBucket(bucket); err != nil {
		return s.fail("list", bucket, prefix, 0, "", err)
	}
	for _, p := range []string{prefix, from} {
		if !utf8.ValidString(p) || len(p) > gsref.MaxObjectName || strings.ContainsAny(p, "\r\n") {
			return s.fail("list", bucket, prefix, 0, "", fmt.Errorf("%w: prefix or start", ErrInvalidArgument))
		}
	}
	q := &storage.Query{Prefix: prefix, StartOffset: from}
	if err := q.SetAttrSelection(attrFields); err != nil {
		return s.fail("list", bucket, prefix, 0, "", err)
	}
	it := s.c.Bucket(bucket).Objects(ctx, q)
	it.PageInfo().MaxSize = ListPageSize
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return s.fail("list", bucket, prefix, 0, "", err)
		}
		if !strings.HasPrefix(a.Name, prefix) {
			continue
		}
		v, err := convert(a, bucket, a.Name, 0)
		if err != nil {
			return s.fail("list", bucket, a.Name, a.Generation, "", err)
		}
		v.Live = true
		if err := fn(v); err != nil {
			return err
		}
	}
}

// Write stores r as a new generation of object if cond holds (GenerationMatch: that
// generation is live; DoesNotExist: nothing is live) and returns its attributes. The
// SDK sends the CRC32C of the whole upload with its last chunk, so the server rejects
// bytes damaged on the way; Write also checks the size and CRC32C the server reports
// against those of the bytes it read from r. If r fails, the upload is abandoned and no
// generation is created. If the server reports other bytes than were sent, Write returns
// the new generation's attributes with an ErrIntegrity error.
func (s *Store) Write(ctx context.Context, bucket, object string, cond engine.Condition, meta engine.Metadata, r io.Reader) (engine.ObjectAttrs, error) {
	sc, condStr, err := writeCondition(cond)
	if err != nil {
		return engine.ObjectAttrs{}, s.fail("write", bucket, object, 0, condStr, err)
	}
	fail := func(err error) (engine.ObjectAttrs, error) {
		return engine.ObjectAttrs{}, s.fail("write", bucket, object, 0, condStr, err)
	}
	if err := validate(bucket, object); err != nil {
		return fail(err)
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := s.c.Bucket(bucket).Object(object).If(sc).NewWriter(wctx)
	w.ChunkSize = WriteChunkSize
	w.ContentType = meta.ContentType
	w.ForceEmptyContentType = meta.ContentType == "" // never let the SDK sniff one
	w.ContentEncoding = meta.ContentEncoding
	w.CacheControl = meta.CacheControl
	w.ContentDisposition = meta.ContentDisposition
	w.Metadata = maps.Clone(meta.Custom)

	src := &sourceReader{r: r}
	sum := crc32.New(crc32c)
	n, err := io.Copy(w, io.TeeReader(src, sum))
	if err != nil {
		// Abandon the upload: with the context cancelled the last chunk is never
		// sent, so no generation is created.
		cancel()
		_ = w.Close()
		if src.err != nil {
			return fail(fmt.Errorf("reading the bytes to write: %w", src.err))
		}
		return fail(err)
	}
	if err := w.Close(); err != nil {
		return fail(err)
	}
	a := w.Attrs()
	got, err := convert(a, bucket, object, 0)
	if err != nil {
		return fail(err)
	}
	got.Live = true
	if a.Size != n || a.CRC32C != sum.Sum32() {
		return got, s.fail("write", bucket, object, a.Generation, condStr,
			fmt.Errorf("%w: sent %d bytes with CRC32C %08x, the store reports %d bytes with CRC32C %08x", ErrIntegrity, n, sum.Sum32(), a.Size, a.CRC32C))
	}
	return got, nil
}

// sourceReader remembers the error of the reader it wraps, to tell a failing source from
// a failing upload.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

func writeCondition(cond engine.Condition) (storage.Conditions, string, error) {
	switch {
	case cond.MetagenerationMatch != 0:
		return storage.Conditions{}, "", fmt.Errorf("%w: a metageneration condition applies to metadata updates, not to writes", ErrUnconditional)
	case cond.DoesNotExist && cond.GenerationMatch != 0:
		return storage.Conditions{}, "", fmt.Errorf("%w: both DoesNotExist and GenerationMatch", ErrUnconditional)
	case cond.DoesNotExist:
		return storage.Conditions{DoesNotExist: true}, "ifGenerationMatch=0", nil
	case cond.GenerationMatch > 0:
		return storage.Conditions{GenerationMatch: cond.GenerationMatch}, fmt.Sprintf("ifGenerationMatch=%d", cond.GenerationMatch), nil
	default:
		return storage.Conditions{}, "", fmt.Errorf("%w: Write needs GenerationMatch or DoesNotExist", ErrUnconditional)
	}
}

// Copy writes generation src.Generation of src.Bucket/src.Object as a new generation of
// dst.Bucket/dst.Object with a server-side rewrite (objects.rewrite with sourceGeneration),
// if cond holds on the destination (GenerationMatch: that generation is live;
// DoesNotExist: nothing is), with exactly meta, and returns the new generation's attributes.
// No object byte passes through this process; the SDK repeats the rewrite call until the
// store reports it done (one call within a location and storage class).
//
// The destination's metadata must be meta and nothing else: Cloud Storage takes a request
// body's resource as the destination's metadata, but fake-gcs-server (v1.56) keeps every
// field the body leaves empty from the source. So the answer is compared with meta and,
// if it differs, the new generation is patched to meta, conditionally on that generation
// and metageneration, before Copy returns.
//
// Errors: engine.ErrPrecondition when cond does not hold, engine.ErrObjectNotFound when the
// source generation does not exist (or a bucket does not), ErrIntegrity when the store
// answers for another object or with another size than the source's.
func (s *Store) Copy(ctx context.Context, src, dst gsref.ObjectRef, cond engine.Condition, meta engine.Metadata) (engine.ObjectAttrs, error) {
	sc, condStr, err := writeCondition(cond)
	if condStr != "" {
		condStr += fmt.Sprintf(" sourceGeneration=%d", src.Generation)
	}
	fail := func(err error) (engine.ObjectAttrs, error) {
		return engine.ObjectAttrs{}, s.fail("copy", dst.Bucket, dst.Object, 0, condStr, fmt.Errorf("from %s: %w", Location(src.Bucket, src.Object, src.Generation), err))
	}
	switch {
	case err != nil:
		return fail(err)
	case src.Generation <= 0:
		return fail(fmt.Errorf("%w: Copy needs the source's generation, never whatever is live", ErrInvalidArgument))
	case dst.Generation != 0:
		return fail(fmt.Errorf("%w: the destination's generation is the store's to choose", ErrInvalidArgument))
	}
	if err := validate(src.Bucket, src.Object); err != nil {
		return fail(err)
	}
	if err := validate(dst.Bucket, dst.Object); err != nil {
		return fail(err)
	}
	c := s.c.Bucket(dst.Bucket).Object(dst.Object).If(sc).
		CopierFrom(s.c.Bucket(src.Bucket).Object(src.Object).Generation(src.Generation))
	c.ContentType = meta.ContentType
	c.ContentEncoding = meta.ContentEncoding
	c.CacheControl = meta.CacheControl
	c.ContentDisposition = meta.ContentDisposition
	c.Metadata = maps.Clone(meta.Custom)
	srcSize := int64(-1)
	c.ProgressFunc = func(_, total uint64) { srcSize = int64(total) }
	a, err := c.Run(ctx)
	if err != nil {
		return fail(err)
	}
	got, err := convert(a, dst.Bucket, dst.Object, 0)
	if err != nil {
		return fail(err)
	}
	got.Live = true
	if srcSize >= 0 && got.Size != srcSize {
		return got, s.fail("copy", dst.Bucket, dst.Object, got.Generation, condStr,
			fmt.Errorf("%w: the source is %d bytes, the copy %d", ErrIntegrity, srcSize, got.Size))
	}
	if !sameMetadata(got.Meta, meta) {
		fixed, err := s.UpdateMetadata(ctx, dst.Bucket, dst.Object,
			engine.Condition{GenerationMatch: got.Generation, MetagenerationMatch: got.Metageneration}, meta)
		if err != nil {
			return got, s.fail("copy", dst.Bucket, dst.Object, got.Generation, condStr,
				fmt.Errorf("putting the requested metadata on the copy (the store kept the source's): %w", err))
		}
		got = fixed
	}
	return got, nil
}

// sameMetadata reports whether a is exactly m: the protected headers and the custom
// metadata (nil and empty alike).
func sameMetadata(a, m engine.Metadata) bool {
	return a.ContentType == m.ContentType && a.ContentEncoding == m.ContentEncoding &&
		a.CacheControl == m.CacheControl && a.ContentDisposition == m.ContentDisposition &&
		maps.Equal(a.Custom, m.Custom)
}

// Delete deletes the live generation of an object if it is cond.GenerationMatch (and,
// if cond.MetagenerationMatch is set, has that metageneration). In a versioned bucket
// the generation becomes noncurrent.
func (s *Store) Delete(ctx context.Context, bucket, object string, cond engine.Condition) error {
	if cond.DoesNotExist || cond.GenerationMatch <= 0 || cond.MetagenerationMatch < 0 {
		return s.fail("delete", bucket, object, cond.GenerationMatch, "", fmt.Errorf("%w: Delete needs GenerationMatch", ErrUnconditional))
	}
	sc := storage.Conditions{GenerationMatch: cond.GenerationMatch, MetagenerationMatch: cond.MetagenerationMatch}
	condStr := fmt.Sprintf("ifGenerationMatch=%d", cond.GenerationMatch)
	if cond.MetagenerationMatch > 0 {
		condStr += fmt.Sprintf(" ifMetagenerationMatch=%d", cond.MetagenerationMatch)
	}
	if err := validate(bucket, object); err != nil {
		return s.fail("delete", bucket, object, cond.GenerationMatch, condStr, err)
	}
	if err := s.c.Bucket(bucket).Object(object).If(sc).Delete(ctx); err != nil {
		return s.fail("delete", bucket, object, cond.GenerationMatch, condStr, err)
	}
	return nil
}

// UpdateMetadata makes the protected metadata of the live generation exactly meta
// (an empty header is cleared; custom metadata is replaced, keys not in meta.Custom are
// removed) if it is generation cond.GenerationMatch at metageneration
// cond.MetagenerationMatch, and returns the new attributes.
//
// It reads the live attributes first: if they do not match cond it returns
// ErrPrecondition without writing, and if nothing differs it returns them without
// writing. Otherwise it sends one conditional patch of the fields that differ. Removing
// some custom keys while keeping others takes two conditional patches (the JSON API
// removes a single key only when it is sent as null, which the Go SDK cannot express):
// the first clears the custom metadata along with the header changes, the second, on
// the metageneration the first produced, sets meta.Custom. If something else changes the
// object in between, the second fails with ErrPrecondition.
func (s *Store) UpdateMetadata(ctx context.Context, bucket, object string, cond engine.Condition, meta engine.Metadata) (engine.ObjectAttrs, error) {
	condStr := fmt.Sprintf("ifGenerationMatch=%d ifMetagenerationMatch=%d", cond.GenerationMatch, cond.MetagenerationMatch)
	fail := func(err error) (engine.ObjectAttrs, error) {
		return engine.ObjectAttrs{}, s.fail("update metadata", bucket, object, cond.GenerationMatch, condStr, err)
	}
	if cond.DoesNotExist || cond.GenerationMatch <= 0 || cond.MetagenerationMatch <= 0 {
		return fail(fmt.Errorf("%w: UpdateMetadata needs GenerationMatch and MetagenerationMatch", ErrUnconditional))
	}
	if err := validate(bucket, object); err != nil {
		return fail(err)
	}
	o := s.c.Bucket(bucket).Object(object)
	cur, err := o.Attrs(ctx)
	if err != nil {
		return fail(err)
	}
	if cur.Generation != cond.GenerationMatch || cur.Metageneration != cond.MetagenerationMatch {
		return engine.ObjectAttrs{}, &Error{
			Op: "update metadata", Bucket: bucket, Object: object, Generation: cond.GenerationMatch, Cond: condStr,
			Kind: engine.ErrPrecondition,
			Err:  fmt.Errorf("the live generation is %d at metageneration %d", cur.Generation, cur.Metageneration),
		}
	}

	var upd storage.ObjectAttrsToUpdate
	changed := false
	set := func(dst *any, have, want string) {
		if have != want {
			*dst = want // "" clears the field
			changed = true
		}
	}
	var ct, ce, cc, cd any
	set(&ct, cur.ContentType, meta.ContentType)
	set(&ce, cur.ContentEncoding, meta.ContentEncoding)
	set(&cc, cur.CacheControl, meta.CacheControl)
	set(&cd, cur.ContentDisposition, meta.ContentDisposition)
	upd.ContentType, upd.ContentEncoding, upd.CacheControl, upd.ContentDisposition = ct, ce, cc, cd

	var second map[string]string // custom metadata to set in a second patch
	if !maps.Equal(cur.Metadata, meta.Custom) && (len(cur.Metadata) > 0 || len(meta.Custom) > 0) {
		changed = true
		removed := false
		for k := range cur.Metadata {
			if _, ok := meta.Custom[k]; !ok {
				removed = true
				break
			}
		}
		switch {
		case len(meta.Custom) == 0:
			upd.Metadata = map[string]string{} // sent as null: clears all
		case removed:
			upd.Metadata = map[string]string{}
			second = maps.Clone(meta.Custom)
		default:
			upd.Metadata = maps.Clone(meta.Custom) // merged key by key
		}
	}
	if !changed {
		got, err := convert(cur, bucket, object, cond.GenerationMatch)
		if err != nil {
			return fail(err)
		}
		got.Live = true
		return got, nil
	}

	a, err := o.If(storage.Conditions{GenerationMatch: cond.GenerationMatch, MetagenerationMatch: cond.MetagenerationMatch}).Update(ctx, upd)
	if err != nil {
		return fail(err)
	}
	if second != nil {
		condStr = fmt.Sprintf("ifGenerationMatch=%d ifMetagenerationMatch=%d", cond.GenerationMatch, a.Metageneration)
		a, err = o.If(storage.Conditions{GenerationMatch: cond.GenerationMatch, MetagenerationMatch: a.Metageneration}).
			Update(ctx, storage.ObjectAttrsToUpdate{Metadata: second})
		if err != nil {
			return fail(fmt.Errorf("setting custom metadata after clearing it: %w", err))
		}
	}
	got, err := convert(a, bucket, object, cond.GenerationMatch)
	if err != nil {
		return fail(err)
	}
	got.Live = true
	return got, nil
}

// convert maps the SDK's attributes, checking they are those of the object (and
// generation, if gen > 0) that were asked for.
func convert(a *storage.ObjectAttrs, bucket, object string, gen int64) (engine.ObjectAttrs, error) {
	switch {
	case a == nil:
		return engine.ObjectAttrs{}, fmt.Errorf("%w: no attributes in the answer", ErrIntegrity)
	case a.Name != object:
		return engine.ObjectAttrs{}, fmt.Errorf("%w: the store answered for object %q", ErrIntegrity, a.Name)
	case a.Bucket != "" && a.Bucket != bucket:
		return engine.ObjectAttrs{}, fmt.Errorf("%w: the store answered for bucket %q", ErrIntegrity, a.Bucket)
	case a.Generation <= 0:
		return engine.ObjectAttrs{}, fmt.Errorf("%w: the store answered without a generation", ErrIntegrity)
	case gen > 0 && a.Generation != gen:
		return engine.ObjectAttrs{}, fmt.Errorf("%w: the store answered for generation %d", ErrIntegrity, a.Generation)
	}
	custom := maps.Clone(a.Metadata)
	if len(custom) == 0 {
		custom = nil
	}
	return engine.ObjectAttrs{
		Bucket:         bucket,
		Name:           a.Name,
		Generation:     a.Generation,
		Metageneration: a.Metageneration,
		Size:           a.Size,
		Created:        a.Created,
		Updated:        a.Updated,
		Deleted:        a.Deleted,
		MD5:            slices.Clone(a.MD5),
		CRC32C:         a.CRC32C,
		HasCRC32C:      true,
		Meta: engine.Metadata{
			ContentType:        a.ContentType,
			ContentEncoding:    a.ContentEncoding,
			CacheControl:       a.CacheControl,
			ContentDisposition: a.ContentDisposition,
			Custom:             custom,
		},
	}, nil
}

// validate checks a bucket and an object name against the rules of Cloud Storage
// (gsref.CheckBucket, gsref.CheckObject). A name that breaks them cannot exist, so it is
// refused before any request (it can only come from a forged event or a bug).
func validate(bucket, object string) error {
	if err := validateBucket(bucket); err != nil {
		return err
	}
	if err := gsref.CheckObject(object); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return nil
}

// validateBucket checks a bucket name against the rules of Cloud Storage.
func validateBucket(bucket string) error {
	if err := gsref.CheckBucket(bucket); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return nil
}

// fail wraps err as an *Error for op on bucket/object#gen.
func (s *Store) fail(op, bucket, object string, gen int64, cond string, err error) error {
	var e *Error
	if errors.As(err, &e) && e.Op == op && e.Bucket == bucket && e.Object == object {
		return err
	}
	return &Error{Op: op, Bucket: bucket, Object: object, Generation: gen, Cond: cond, Kind: kindOf(err), Err: err}
}
