package gcstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/tamperguard/tamperguard/internal/faultproxy"
)

// timestampFormat is the layout the fake's backend stores times in.
const timestampFormat = "2006-01-02T15:04:05.999999Z07:00"

// maxPatchBody bounds the JSON body of a metadata patch the layer reads.
const maxPatchBody = 1 << 20

// layer is the http.Handler in front of the fake; see the package documentation.
type layer struct {
	fake       *fakestorage.Server
	next       http.Handler
	publicHost string // host:port of the XML API (path-style downloads)

	// mu serializes every request that may change an object.
	mu sync.Mutex
	// genRead lets one read of a numbered generation reach the fake at a time (see
	// serveRead).
	genRead sync.Mutex

	mgMu sync.Mutex
	mg   map[objKey]int64

	faultMu sync.Mutex
	faults  []*fault
}

type objKey struct {
	bucket, object string
	generation     int64
}

type fault struct {
	method, sub string
	status      int
	left        int
}

func newLayer(fake *fakestorage.Server, publicHost string) *layer {
	return &layer{fake: fake, next: fake.HTTPHandler(), publicHost: publicHost, mg: map[objKey]int64{}}
}

// ---- routes -------------------------------------------------------------------------

type routeKind int

const (
	routeOther    routeKind = iota
	routeObject             // /storage/v1/b/B/o/O
	routeACL                // /storage/v1/b/B/o/O/acl[/entity]
	routeList               // /storage/v1/b/B/o
	routeRewrite            // /storage/v1/b/B/o/O/{rewriteTo|copyTo}/b/DB/o/DO
	routeCompose            // /storage/v1/b/B/o/O/compose
	routeUpload             // /upload/storage/v1/b/B/o
	routeDownload           // /download/storage/v1/b/B/o/O, or GET /B/O on the public host (XML API)
)

type route struct {
	kind                 routeKind
	bucket, object       string
	dstBucket, dstObject string
}

// parseRoute splits the percent-encoded path on "/" the way the fake's router does
// (object names arrive with "/" encoded as %2F).
func (l *layer) parseRoute(r *http.Request) route {
	raw := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	segs := make([]string, len(raw))
	for i, s := range raw {
		if u, err := url.PathUnescape(s); err == nil {
			segs[i] = u
		} else {
			segs[i] = s
		}
	}
	has := func(prefix ...string) bool {
		if len(segs) < len(prefix) {
			return false
		}
		for i, p := range prefix {
			if p != "" && segs[i] != p {
				return false
			}
		}
		return true
	}
	switch {
	case has("upload", "storage", "v1", "b", "", "o") && len(segs) <= 7:
		return route{kind: routeUpload, bucket: segs[4]}
	case has("download", "storage", "v1", "b", "", "o") && len(segs) >= 7:
		return route{kind: routeDownload, bucket: segs[4], object: strings.Join(segs[6:], "/")}
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.Host == l.publicHost &&
		len(segs) >= 2 && !reservedTop[segs[0]]:
		return route{kind: routeDownload, bucket: segs[0], object: strings.Join(segs[1:], "/")}
	case !has("storage", "v1", "b", "", "o"):
		return route{kind: routeOther}
	}
	bucket, rest := segs[3], segs[5:]
	if len(rest) == 0 || (len(rest) == 1 && rest[0] == "") {
		return route{kind: routeList, bucket: bucket}
	}
	if r.Method == http.MethodPost {
		for i := 1; i+4 < len(rest); i++ {
			if (rest[i] == "rewriteTo" || rest[i] == "copyTo") && rest[i+1] == "b" && rest[i+3] == "o" {
				return route{
					kind: routeRewrite, bucket: bucket, object: strings.Join(rest[:i], "/"),
					dstBucket: rest[i+2], dstObject: strings.Join(rest[i+4:], "/"),
				}
			}
		}
		if len(rest) >= 2 && rest[len(rest)-1] == "compose" {
			return route{kind: routeCompose, bucket: bucket, object: strings.Join(rest[:len(rest)-1], "/")}
		}
	}
	if r.Method != http.MethodPatch {
		if n := len(rest); n >= 2 && rest[n-1] == "acl" {
			return route{kind: routeACL, bucket: bucket, object: strings.Join(rest[:n-1], "/")}
		}
		if n := len(rest); n >= 3 && rest[n-2] == "acl" {
			return route{kind: routeACL, bucket: bucket, object: strings.Join(rest[:n-2], "/")}
		}
	}
	return route{kind: routeObject, bucket: bucket, object: strings.Join(rest, "/")}
}

// reservedTop are the first path segments that are not bucket names on the public host.
var reservedTop = map[string]bool{"storage": true, "upload": true, "download": true, "batch": true, "_internal": true}

// ---- dispatch -----------------------------------------------------------------------

func (l *layer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if l.injectFault(w, r) {
		return
	}
	rt := l.parseRoute(r)

	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		l.serveRead(w, r, rt)
		return
	}

	l.mu.Lock()
	defer l.mu.Unlock()

	switch rt.kind {
	case routeObject:
		switch {
		case r.Method == http.MethodPatch,
			r.Method == http.MethodPost && r.Header.Get("X-HTTP-Method-Override") == http.MethodPatch:
			l.patch(w, r, rt)
		case r.Method == http.MethodDelete:
			l.deleteObject(w, r, rt)
		case r.Method == http.MethodPut, r.Method == http.MethodPost:
			l.updateObject(w, r, rt)
		default:
			l.next.ServeHTTP(w, r)
		}
	case routeACL:
		l.changeACL(w, r, rt)
	case routeRewrite:
		l.rewrite(w, r, rt)
	case routeCompose:
		l.compose(w, r, rt)
	case routeUpload:
		l.upload(w, r, rt)
	default:
		l.next.ServeHTTP(w, r)
	}
}

// serveRead passes reads on, fixing the metageneration in what comes back.
//
// A read of a numbered generation goes to the fake alone: its memory backend (v1.56.1,
// GetObjectWithGeneration) appends the archived objects to the slice of live ones under a
// read lock, so two such reads at once write the same spare capacity (a data race). The read
// is let through once the one before it has started its answer (the lookup is done by then).
func (l *layer) serveRead(w http.ResponseWriter, r *http.Request, rt route) {
	if (rt.kind == routeObject || rt.kind == routeDownload) && r.URL.Query().Get("generation") != "" {
		l.genRead.Lock()
		rw := &unlockOnAnswer{ResponseWriter: w, unlock: l.genRead.Unlock}
		defer rw.done()
		w = rw
	}
	media := rt.kind == routeDownload || r.Method == http.MethodHead ||
		(rt.kind == routeObject && r.URL.Query().Get("alt") == "media")
	switch {
	case media && (rt.kind == routeObject || rt.kind == routeDownload):
		// Streamed: only a header is added, the body is never buffered.
		l.next.ServeHTTP(&metagenHeaderWriter{ResponseWriter: w, l: l, bucket: rt.bucket, object: rt.object}, r)
	case rt.kind == routeObject || rt.kind == routeList:
		rec := httptest.NewRecorder()
		l.next.ServeHTTP(rec, r)
		l.writeFixed(w, rec)
	default:
		l.next.ServeHTTP(w, r)
	}
}

// unlockOnAnswer runs unlock once, when the answer starts (or the handler returns without
// one).
type unlockOnAnswer struct {
	http.ResponseWriter
	once   sync.Once
	unlock func()
}

func (u *unlockOnAnswer) done() { u.once.Do(u.unlock) }

func (u *unlockOnAnswer) WriteHeader(code int) {
	u.done()
	u.ResponseWriter.WriteHeader(code)
}

func (u *unlockOnAnswer) Write(p []byte) (int, error) {
	u.done()
	return u.ResponseWriter.Write(p)
}

func (u *unlockOnAnswer) Unwrap() http.ResponseWriter { return u.ResponseWriter }

// ---- mutations ----------------------------------------------------------------------

func (l *layer) deleteObject(w http.ResponseWriter, r *http.Request, rt route) {
	q := r.URL.Query()
	pc, gen, ok := parseConds(w, q, "", "generation")
	if !ok {
		return
	}
	if pc.any() && l.exists(rt.bucket, rt.object, gen) && !l.holds(pc, rt.bucket, rt.object, gen) {
		writePreconditionFailed(w)
		return
	}
	l.next.ServeHTTP(w, r)
}

func (l *layer) updateObject(w http.ResponseWriter, r *http.Request, rt route) {
	q := r.URL.Query()
	pc, gen, ok := parseConds(w, q, "", "generation")
	if !ok {
		return
	}
	target := gen
	if target == 0 {
		target = l.liveGeneration(rt.bucket, rt.object)
	}
	if pc.any() && target != 0 && l.exists(rt.bucket, rt.object, gen) && !l.holds(pc, rt.bucket, rt.object, gen) {
		writePreconditionFailed(w)
		return
	}
	rec := httptest.NewRecorder()
	l.next.ServeHTTP(rec, r)
	if rec.Code/100 != 2 || target == 0 {
		copyRecorded(w, rec, rec.Body.Bytes())
		return
	}
	l.bump(rt.bucket, rt.object, target)
	l.respondObject(w, r, rt.bucket, rt.object, target)
}

func (l *layer) changeACL(w http.ResponseWriter, r *http.Request, rt route) {
	gen, err := parseGeneration(r.URL.Query().Get("generation"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	target := gen
	if target == 0 {
		target = l.liveGeneration(rt.bucket, rt.object)
	}
	rec := httptest.NewRecorder()
	l.next.ServeHTTP(rec, r)
	if rec.Code/100 == 2 && target != 0 {
		l.bump(rt.bucket, rt.object, target)
	}
	copyRecorded(w, rec, rec.Body.Bytes())
}

func (l *layer) rewrite(w http.ResponseWriter, r *http.Request, rt route) {
	q := r.URL.Query()
	dst, _, ok := parseConds(w, q, "", "")
	if !ok {
		return
	}
	src, srcGen, ok := parseConds(w, q, "Source", "sourceGeneration")
	if !ok {
		return
	}
	if src.any() && l.exists(rt.bucket, rt.object, srcGen) && !l.holds(src, rt.bucket, rt.object, srcGen) {
		writePreconditionFailed(w)
		return
	}
	if dst.any() && !l.holds(dst, rt.dstBucket, rt.dstObject, 0) {
		writePreconditionFailed(w)
		return
	}
	l.next.ServeHTTP(w, r)
}

func (l *layer) compose(w http.ResponseWriter, r *http.Request, rt route) {
	dst, _, ok := parseConds(w, r.URL.Query(), "", "")
	if !ok {
		return
	}
	if dst.any() && !l.holds(dst, rt.bucket, rt.object, 0) {
		writePreconditionFailed(w)
		return
	}
	l.next.ServeHTTP(w, r)
}

// upload adds the metageneration conditions the fake ignores; it enforces the generation
// conditions itself, when the upload is finalized.
func (l *layer) upload(w http.ResponseWriter, r *http.Request, rt route) {
	q := r.URL.Query()
	if name := q.Get("name"); name != "" && q.Get("upload_id") == "" {
		pc, _, ok := parseConds(w, q, "", "")
		if !ok {
			return
		}
		mgOnly := conds{mgMatch: pc.mgMatch, mgNotMatch: pc.mgNotMatch}
		if mgOnly.any() && !l.holds(mgOnly, rt.bucket, name, 0) {
			writePreconditionFailed(w)
			return
		}
	}
	l.next.ServeHTTP(w, r)
}

// patchable are the object fields whose patch the layer applies itself.
var patchable = map[string]bool{
	"contentType": true, "contentEncoding": true, "contentDisposition": true,
	"contentLanguage": true, "cacheControl": true, "metadata": true,
}

func (l *layer) patch(w http.ResponseWriter, r *http.Request, rt route) {
	pc, gen, ok := parseConds(w, r.URL.Query(), "", "generation")
	if !ok {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPatchBody+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
		return
	}
	if len(body) > maxPatchBody {
		writeError(w, http.StatusBadRequest, "request body too large")
		return
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		writeError(w, http.StatusBadRequest, "Metadata in the request couldn't decode")
		return
	}

	// The memory backend reads the live generation for generation 0.
	obj, err := l.fake.Backend().GetObjectWithGeneration(rt.bucket, rt.object, gen)
	if err != nil {
		writeError(w, http.StatusNotFound, "No such object: "+rt.bucket+"/"+rt.object)
		return
	}
	defer obj.Close()
	if pc.any() && !l.holds(pc, rt.bucket, rt.object, gen) {
		writePreconditionFailed(w)
		return
	}

	for _, k := range []string{"bucket", "name"} {
		// The Go SDK sends the bucket with every patch; GCS ignores what matches.
		raw, ok := fields[k]
		if !ok {
			continue
		}
		var v string
		want := map[string]string{"bucket": rt.bucket, "name": rt.object}[k]
		if err := json.Unmarshal(raw, &v); err != nil || (v != "" && v != want) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid value for %s", k))
			return
		}
		delete(fields, k)
	}
	for k := range fields {
		if !patchable[k] {
			// A field the layer does not model: the fake applies the whole patch.
			r.Body = io.NopCloser(bytes.NewReader(body))
			rec := httptest.NewRecorder()
			l.next.ServeHTTP(rec, r)
			if rec.Code/100 != 2 {
				copyRecorded(w, rec, rec.Body.Bytes())
				return
			}
			l.bump(rt.bucket, rt.object, obj.Generation)
			l.respondObject(w, r, rt.bucket, rt.object, obj.Generation)
			return
		}
	}

	for _, f := range []struct {
		key string
		dst *string
	}{
		{"contentType", &obj.ContentType},
		{"contentEncoding", &obj.ContentEncoding},
		{"contentDisposition", &obj.ContentDisposition},
		{"contentLanguage", &obj.ContentLanguage},
		{"cacheControl", &obj.CacheControl},
	} {
		raw, ok := fields[f.key]
		if !ok {
			continue
		}
		var v *string
		if err := json.Unmarshal(raw, &v); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid value for %s", f.key))
			return
		}
		if v == nil {
			*f.dst = ""
		} else {
			*f.dst = *v
		}
	}
	if raw, ok := fields["metadata"]; ok {
		var m map[string]*string
		if err := json.Unmarshal(raw, &m); err != nil {
			writeError(w, http.StatusBadRequest, "invalid value for metadata")
			return
		}
		if m == nil {
			obj.Metadata = nil
		} else {
			merged := make(map[string]string, len(obj.Metadata)+len(m))
			for k, v := range obj.Metadata {
				merged[k] = v
			}
			for k, v := range m {
				if v == nil {
					delete(merged, k)
				} else {
					merged[k] = *v
				}
			}
			if len(merged) == 0 {
				merged = nil
			}
			obj.Metadata = merged
		}
	}
	obj.Updated = time.Now().UTC().Format(timestampFormat)

	// Written back under its own generation, the backend replaces that generation in
	// place (live or noncurrent) instead of creating a new one.
	stored, err := l.fake.Backend().CreateObject(obj, always{})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "applying the patch: "+err.Error())
		return
	}
	_ = stored.Close()
	l.bump(rt.bucket, rt.object, obj.Generation)

	l.respondObject(w, r, rt.bucket, rt.object, obj.Generation)
}

// respondObject answers with generation gen of an object rendered as the fake renders an
// objects.get (the fake's own patch and update responses lack kind and metageneration).
func (l *layer) respondObject(w http.ResponseWriter, r *http.Request, bucket, object string, gen int64) {
	path := "/storage/v1/b/" + url.PathEscape(bucket) + "/o/" + url.PathEscape(object)
	get, err := http.NewRequestWithContext(r.Context(), http.MethodGet, path, nil)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	get.Host = r.Host
	get.URL.RawQuery = url.Values{
		"generation": {strconv.FormatInt(gen, 10)},
		"projection": {"full"},
	}.Encode()
	rec := httptest.NewRecorder()
	l.next.ServeHTTP(rec, get)
	l.writeFixed(w, rec)
}

// always is a backend condition that always holds (the layer has checked its own).
type always struct{}

func (always) ConditionsMet(int64) bool { return true }

// ---- preconditions ------------------------------------------------------------------

type conds struct {
	genMatch, genNotMatch, mgMatch, mgNotMatch *int64
}

func (c conds) any() bool {
	return c.genMatch != nil || c.genNotMatch != nil || c.mgMatch != nil || c.mgNotMatch != nil
}

// parseConds reads if<infix>GenerationMatch and friends, and the generation parameter
// genParam (if not ""); on a malformed value it answers 400 and reports !ok.
func parseConds(w http.ResponseWriter, q url.Values, infix, genParam string) (c conds, gen int64, ok bool) {
	for _, p := range []struct {
		name string
		dst  **int64
	}{
		{"if" + infix + "GenerationMatch", &c.genMatch},
		{"if" + infix + "GenerationNotMatch", &c.genNotMatch},
		{"if" + infix + "MetagenerationMatch", &c.mgMatch},
		{"if" + infix + "MetagenerationNotMatch", &c.mgNotMatch},
	} {
		s := q.Get(p.name)
		if s == "" {
			continue
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("Invalid argument for %s: %q", p.name, s))
			return conds{}, 0, false
		}
		*p.dst = &v
	}
	if genParam != "" {
		g, err := parseGeneration(q.Get(genParam))
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return conds{}, 0, false
		}
		gen = g
	}
	return c, gen, true
}

func parseGeneration(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	g, err := strconv.ParseInt(s, 10, 64)
	if err != nil || g < 0 {
		return 0, fmt.Errorf("invalid generation %q", s)
	}
	return g, nil
}

// holds evaluates c for bucket/object: generation conditions against the live generation
// (0 if none), metageneration conditions against generation gen (the live one if 0).
func (l *layer) holds(c conds, bucket, object string, gen int64) bool {
	live := l.liveGeneration(bucket, object)
	if c.genMatch != nil && *c.genMatch != live {
		return false
	}
	if c.genNotMatch != nil && *c.genNotMatch == live {
		return false
	}
	if c.mgMatch == nil && c.mgNotMatch == nil {
		return true
	}
	target := gen
	if target == 0 {
		target = live
	}
	if target == 0 || !l.exists(bucket, object, target) {
		// No such generation: it has no metageneration to match.
		return c.mgMatch == nil
	}
	mg := l.metageneration(bucket, object, target)
	if c.mgMatch != nil && *c.mgMatch != mg {
		return false
	}
	if c.mgNotMatch != nil && *c.mgNotMatch == mg {
		return false
	}
	return true
}

// ---- backend access -----------------------------------------------------------------

func (l *layer) liveGeneration(bucket, object string) int64 {
	obj, err := l.fake.Backend().GetObject(bucket, object)
	if err != nil {
		return 0
	}
	_ = obj.Close()
	return obj.Generation
}

func (l *layer) exists(bucket, object string, gen int64) bool {
	obj, err := l.fake.Backend().GetObjectWithGeneration(bucket, object, gen)
	if err != nil {
		return false
	}
	_ = obj.Close()
	return true
}

func (l *layer) metageneration(bucket, object string, gen int64) int64 {
	l.mgMu.Lock()
	defer l.mgMu.Unlock()
	if mg, ok := l.mg[objKey{bucket, object, gen}]; ok {
		return mg
	}
	return 1
}

func (l *layer) bump(bucket, object string, gen int64) {
	l.mgMu.Lock()
	defer l.mgMu.Unlock()
	k := objKey{bucket, object, gen}
	if _, ok := l.mg[k]; !ok {
		l.mg[k] = 1
	}
	l.mg[k]++
}

// ---- responses ----------------------------------------------------------------------

// writeFixed copies a recorded response, writing the tracked metageneration into the
// object resources of a JSON body.
func (l *layer) writeFixed(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	body := rec.Body.Bytes()
	if rec.Code/100 == 2 && strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		body = l.fixJSON(body)
	}
	copyRecorded(w, rec, body)
}

func copyRecorded(w http.ResponseWriter, rec *httptest.ResponseRecorder, body []byte) {
	for k, vs := range rec.Header() {
		if k == "Content-Length" {
			continue
		}
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body)
}

func (l *layer) fixJSON(body []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return body
	}
	switch doc["kind"] {
	case "storage#object":
		l.fixObject(doc)
	case "storage#objects":
		items, _ := doc["items"].([]any)
		for _, it := range items {
			if o, ok := it.(map[string]any); ok {
				l.fixObject(o)
			}
		}
	case "storage#rewriteResponse":
		if o, ok := doc["resource"].(map[string]any); ok {
			l.fixObject(o)
		}
	default:
		return body
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return body
	}
	return append(out, '\n')
}

func (l *layer) fixObject(o map[string]any) {
	bucket, _ := o["bucket"].(string)
	name, _ := o["name"].(string)
	var gen int64
	switch g := o["generation"].(type) {
	case string:
		gen, _ = strconv.ParseInt(g, 10, 64)
	case json.Number:
		gen, _ = g.Int64()
	}
	if bucket == "" || name == "" || gen == 0 {
		return
	}
	o["metageneration"] = strconv.FormatInt(l.metageneration(bucket, name, gen), 10)
}

// metagenHeaderWriter adds X-Goog-Metageneration to a download, using the generation the
// fake reports in X-Goog-Generation.
type metagenHeaderWriter struct {
	http.ResponseWriter
	l              *layer
	bucket, object string
	wroteHeader    bool
}

func (m *metagenHeaderWriter) WriteHeader(code int) {
	if !m.wroteHeader {
		m.wroteHeader = true
		if g, err := strconv.ParseInt(m.Header().Get("X-Goog-Generation"), 10, 64); err == nil && g > 0 {
			m.Header().Set("X-Goog-Metageneration", strconv.FormatInt(m.l.metageneration(m.bucket, m.object, g), 10))
		}
	}
	m.ResponseWriter.WriteHeader(code)
}

func (m *metagenHeaderWriter) Write(p []byte) (int, error) {
	if !m.wroteHeader {
		m.WriteHeader(http.StatusOK)
	}
	return m.ResponseWriter.Write(p)
}

func (m *metagenHeaderWriter) Unwrap() http.ResponseWriter { return m.ResponseWriter }

// ---- errors and faults --------------------------------------------------------------

// writeError answers in the JSON error shape of the GCS JSON API.
func writeError(w http.ResponseWriter, status int, message string) {
	body := faultproxy.StorageErrorBody(status, message)
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writePreconditionFailed(w http.ResponseWriter) {
	writeError(w, http.StatusPreconditionFailed, "At least one of the pre-conditions you specified did not hold.")
}

func (l *layer) addFault(method, sub string, status, n int) {
	if n <= 0 {
		return
	}
	if status != DropConnection && (status < 100 || status > 599) {
		panic(fmt.Sprintf("gcstest: FailNext: invalid status %d", status))
	}
	l.faultMu.Lock()
	defer l.faultMu.Unlock()
	l.faults = append(l.faults, &fault{method: method, sub: sub, status: status, left: n})
}

// injectFault answers r with the first matching fault, if any.
func (l *layer) injectFault(w http.ResponseWriter, r *http.Request) bool {
	status, ok := l.takeFault(r)
	if !ok {
		return false
	}
	// Consume (a bounded part of) the body so the client reads the answer rather than
	// failing to send the rest of its request.
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
	if status == DropConnection {
		panic(http.ErrAbortHandler)
	}
	writeError(w, status, fmt.Sprintf("injected by gcstest.FailNext (%d %s)", status, http.StatusText(status)))
	return true
}

func (l *layer) takeFault(r *http.Request) (int, bool) {
	l.faultMu.Lock()
	defer l.faultMu.Unlock()
	for i, f := range l.faults {
		if f.method != "" && !strings.EqualFold(f.method, r.Method) {
			continue
		}
		if f.sub != "" && !strings.Contains(r.URL.Path, f.sub) && !strings.Contains(r.URL.EscapedPath(), f.sub) {
			continue
		}
		f.left--
		if f.left == 0 {
			l.faults = append(l.faults[:i], l.faults[i+1:]...)
		}
		return f.status, true
	}
	return 0, false
}
