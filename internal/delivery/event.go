package delivery

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/tamperguard/tamperguard/internal/auditlog"
	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/gsref"
)

// CloudEvent types the function accepts.
const (
	// Eventarc's direct Cloud Storage events; data is a StorageObjectData (the JSON API
	// object resource).
	TypeFinalized       = "google.cloud.storage.object.v1.finalized"
	TypeDeleted         = "google.cloud.storage.object.v1.deleted"
	TypeArchived        = "google.cloud.storage.object.v1.archived"
	TypeMetadataUpdated = "google.cloud.storage.object.v1.metadataUpdated"
	// A Pub/Sub message (Eventarc Pub/Sub trigger, or a push subscription that the
	// Functions Framework turns into this type); it carries a classic Cloud Storage
	// notification, or tamperguard's own audit request.
	TypeMessagePublished = "google.cloud.pubsub.topic.v1.messagePublished"
)

// Attributes of a Pub/Sub message that tamperguard reads.
const (
	// AttrTamperguard = "audit" asks for a full audit of every rule (Cloud Scheduler sends it).
	AttrTamperguard = "tamperguard"
	AuditRequest    = "audit"
	// AttrAuditPrefix, on an audit request, limits it to object names under that prefix (one
	// shard of a big bucket; each shard its own request).
	AttrAuditPrefix = "prefix"
)

// storageSourcePrefix starts the source of every Eventarc Cloud Storage event; the bucket
// name follows.
const storageSourcePrefix = "//storage.googleapis.com/projects/_/buckets/"

// maxData bounds the event data decoded. An object resource is a few KiB (custom metadata
// is capped at 8 KiB); a Pub/Sub message at most 10 MB, most of it base64.
const maxData = 1 << 20

// Request is what one CloudEvent asks for: a storage event to judge, or an audit.
type Request struct {
	Type  string // the CloudEvent type
	ID    string // the CloudEvent id
	Audit bool   // run a full audit (Event is empty but for ID and Time)
	// AuditPrefix limits the audit to names under it ("" for all).
	AuditPrefix string
	Event       engine.Event // the storage event
	// Posture is an audit log entry from the posture route (an Admin Activity log sink): a
	// hint to check the watched bucket's posture now (Event is empty but for ID and Time).
	Posture *auditlog.Entry

	// From a Pub/Sub-wrapped notification, for the log line.
	MessageID   string
	Overwrote   int64 // overwroteGeneration: the finalize replaced this generation
	PublishTime time.Time
	// Warnings are oddities that did not stop the event (a subject that disagrees with the
	// object's name), for the log line.
	Warnings []string
}

// DecodeError says why an event was not used. Such an event is acknowledged, never
// retried: a redelivery would be just as wrong.
type DecodeError struct {
	// Unsupported: a type (or Pub/Sub eventType) the function does not handle, as
	// opposed to a supported one that is malformed.
	Unsupported bool
	Field       string // the field at fault ("data.generation", "attributes.eventType")
	Problem     string
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return e.Problem
	}
	return e.Field + ": " + e.Problem
}

func malformed(field, format string, args ...any) *DecodeError {
	return &DecodeError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// DecodeCloudEvent turns a CloudEvent into a Request. Nothing in it is trusted: every field the
// engine uses is checked against Cloud Storage's own rules, and the engine re-reads the
// object itself; the event only says where to look. Errors are *DecodeError.
func DecodeCloudEvent(ce cloudevents.Event) (Request, error) {
	req := Request{Type: ce.Type(), ID: ce.ID(), Event: engine.Event{ID: ce.ID(), Time: ce.Time()}}
	var err error
	switch ce.Type() {
	case TypeFinalized, TypeDeleted, TypeArchived, TypeMetadataUpdated:
		err = decodeStorage(ce, &req)
	case TypeMessagePublished:
		err = decodePubSub(ce, &req)
	default:
		return req, &DecodeError{Unsupported: true, Field: "type", Problem: fmt.Sprintf("unsupported event type %s", quote(ce.Type()))}
	}
	return req, err
}

var storageKinds = map[string]engine.Kind{
	TypeFinalized:       engine.KindFinalize,
	TypeDeleted:         engine.KindDelete,
	TypeArchived:        engine.KindArchive,
	TypeMetadataUpdated: engine.KindMetadata,
}

// storageObject is the part of the JSON API object resource (Eventarc's
// google.events.cloud.storage.v1.StorageObjectData, or a notification's JSON_API_V1
// payload) that tamperguard reads. int64 fields are JSON strings there.
type storageObject struct {
	Kind           string `json:"kind"`
	Bucket         string `json:"bucket"`
	Name           string `json:"name"`
	Generation     string `json:"generation"`
	Metageneration string `json:"metageneration"`
	Size           string `json:"size"`
}

func decodeStorage(ce cloudevents.Event, req *Request) error {
	data, err := jsonData(ce)
	if err != nil {
		return err
	}
	var o storageObject
	if err := unmarshalObject(data, &o, "data"); err != nil {
		return err
	}
	ev := &req.Event
	ev.Kind = storageKinds[ce.Type()]
	if err := o.validate("data", ev); err != nil {
		return err
	}

	// The envelope must agree with the payload about the bucket; the subject is only
	// compared (its encoding of unusual names is not documented), the payload wins.
	bucket, ok := strings.CutPrefix(ce.Source(), storageSourcePrefix)
	if !ok {
		return malformed("source", "%s is not a Cloud Storage bucket (want %s<bucket>)", quote(ce.Source()), storageSourcePrefix)
	}
	if bucket != ev.Bucket {
		return malformed("source", "names bucket %s but data.bucket is %s", quote(bucket), quote(ev.Bucket))
	}
	if s := ce.Subject(); s != "" && s != "objects/"+ev.Object {
		if u, err := url.PathUnescape(s); err != nil || u != "objects/"+ev.Object {
			req.Warnings = append(req.Warnings, fmt.Sprintf("subject %s disagrees with data.name; data.name is judged", quote(s)))
		}
	}
	// Eventarc's archived and deleted events do not say whether an overwrite caused them:
	// OverwrittenBy stays 0 and the engine reads the live object to find out.
	return nil
}

// validate checks the object resource and copies it into ev.
func (o *storageObject) validate(prefix string, ev *engine.Event) error {
	if o.Kind != "" && o.Kind != "storage#object" {
		return malformed(prefix+".kind", "%s is not storage#object", quote(o.Kind))
	}
	if err := checkBucket(prefix+".bucket", o.Bucket); err != nil {
		return err
	}
	if err := checkObject(prefix+".name", o.Name); err != nil {
		return err
	}
	gen, err := parseGeneration(prefix+".generation", o.Generation, true)
	if err != nil {
		return err
	}
	meta, err := parseGeneration(prefix+".metageneration", o.Metageneration, false)
	if err != nil {
		return err
	}
	if o.Size != "" {
		if _, err := parseCount(prefix+".size", o.Size); err != nil {
			return err
		}
	}
	ev.Bucket, ev.Object, ev.Generation, ev.Metageneration = o.Bucket, o.Name, gen, meta
	return nil
}

// pubsubData is the data of a messagePublished CloudEvent (Eventarc's
// google.events.cloud.pubsub.v1.MessagePublishedData). The Functions Framework gives a
// plain push subscription's envelope the same shape.
type pubsubData struct {
	Message *struct {
		Attributes  map[string]string `json:"attributes"`
		Data        []byte            `json:"data"` // base64 in JSON
		MessageID   string            `json:"messageId"`
		PublishTime string            `json:"publishTime"`
	} `json:"message"`
	Subscription string `json:"subscription"`
}

// Classic Cloud Storage notification event types (the eventType attribute).
var notificationKinds = map[string]engine.Kind{
	"OBJECT_FINALIZE":        engine.KindFinalize,
	"OBJECT_DELETE":          engine.KindDelete,
	"OBJECT_ARCHIVE":         engine.KindArchive,
	"OBJECT_METADATA_UPDATE": engine.KindMetadata,
}

func decodePubSub(ce cloudevents.Event, req *Request) error {
	data, err := jsonData(ce)
	if err != nil {
		return err
	}
	var d pubsubData
	if err := unmarshalObject(data, &d, "data"); err != nil {
		return err
	}
	m := d.Message
	if m == nil {
		return malformed("data.message", "missing")
	}
	req.MessageID = m.MessageID
	if m.PublishTime != "" {
		t, err := time.Parse(time.RFC3339Nano, m.PublishTime)
		if err != nil {
			return malformed("data.message.publishTime", "%s is not an RFC 3339 time", quote(m.PublishTime))
		}
		req.PublishTime = t
		req.Event.Time = t
	}
	return decodeNotification(req, "data.message.", m.Attributes, m.Data)
}

// DecodeMessage turns a message pulled from a Pub/Sub subscription (a classic Cloud
// Storage notification, or tamperguard's audit request) into a Request, exactly as
// Decode does for the same message wrapped in a messagePublished CloudEvent: id is the
// message ID, published its publish time (zero if unknown). Nothing in it is trusted.
// Errors are *DecodeError, with fields named "message.attributes.…" and "message.data".
func DecodeMessage(id string, attrs map[string]string, data []byte, published time.Time) (Request, error) {
	req := Request{Type: TypeMessagePublished, ID: id, MessageID: id, PublishTime: published,
		Event: engine.Event{ID: id, Time: published}}
	if len(data) > maxData {
		return req, malformed("message.data", "%d bytes, over the %d-byte limit", len(data), maxData)
	}
	return req, decodeNotification(&req, "message.", attrs, data)
}

// decodeNotification reads the attributes (and the JSON_API_V1 payload) of a classic
// Cloud Storage notification, or an audit request, into req. prefix starts every field
// name in errors.
func decodeNotification(req *Request, prefix string, attrs map[string]string, data []byte) error {
	var err error
	if v, ok := attrs[AttrTamperguard]; ok {
		if v != AuditRequest {
			return malformed(prefix+"attributes."+AttrTamperguard, "%s is not %q", quote(v), AuditRequest)
		}
		req.Audit = true
		if p, ok := attrs[AttrAuditPrefix]; ok {
			if err := checkObject(prefix+"attributes."+AttrAuditPrefix, p); err != nil {
				return err
			}
			req.AuditPrefix = p
		}
		return nil
	}

	et, ok := attrs["eventType"]
	if !ok {
		// A log sink publishes each LogEntry as the message's data, without attributes a
		// notification has: the posture route's Admin Activity entries.
		if e, err := auditlog.ParseEntry(data); err == nil {
			req.Posture = &e
			return nil
		}
		return malformed(prefix+"attributes.eventType", "missing: not a Cloud Storage notification (nor an audit log entry)")
	}
	kind, ok := notificationKinds[et]
	if !ok {
		return &DecodeError{Unsupported: true, Field: prefix + "attributes.eventType", Problem: fmt.Sprintf("unsupported notification type %s", quote(et))}
	}
	ev := &req.Event
	ev.Kind = kind
	ev.Bucket, ev.Object = attrs["bucketId"], attrs["objectId"]
	if err := checkBucket(prefix+"attributes.bucketId", ev.Bucket); err != nil {
		return err
	}
	if err := checkObject(prefix+"attributes.objectId", ev.Object); err != nil {
		return err
	}
	if ev.Generation, err = parseGeneration(prefix+"attributes.objectGeneration", attrs["objectGeneration"], true); err != nil {
		return err
	}
	if req.Overwrote, err = parseGeneration(prefix+"attributes.overwroteGeneration", attrs["overwroteGeneration"], false); err != nil {
		return err
	}
	if ev.OverwrittenBy, err = parseGeneration(prefix+"attributes.overwrittenByGeneration", attrs["overwrittenByGeneration"], false); err != nil {
		return err
	}
	if s, ok := attrs["eventTime"]; ok {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return malformed(prefix+"attributes.eventTime", "%s is not an RFC 3339 time", quote(s))
		}
		ev.Time = t
	}

	switch pf := attrs["payloadFormat"]; pf {
	case "NONE":
	case "JSON_API_V1":
		var o storageObject
		if err := unmarshalObject(data, &o, prefix+"data"); err != nil {
			return err
		}
		var fromPayload engine.Event
		if err := o.validate(prefix+"data", &fromPayload); err != nil {
			return err
		}
		if fromPayload.Ref() != ev.Ref() {
			return malformed(prefix+"data", "names %q but the attributes name %q", clipped(fromPayload.Ref()), clipped(ev.Ref()))
		}
		ev.Metageneration = fromPayload.Metageneration
	default:
		return malformed(prefix+"attributes.payloadFormat", "%s is not JSON_API_V1 or NONE", quote(pf))
	}
	return nil
}

// jsonData returns the event's data, which must be JSON.
func jsonData(ce cloudevents.Event) ([]byte, error) {
	if ct := ce.DataContentType(); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return nil, malformed("datacontenttype", "%s is not application/json", quote(ct))
		}
	}
	data := ce.Data()
	if len(data) == 0 {
		return nil, malformed("data", "empty")
	}
	if len(data) > maxData {
		return nil, malformed("data", "%d bytes, over the %d-byte limit", len(data), maxData)
	}
	return data, nil
}

// unmarshalObject decodes a JSON object; anything else (null, an array, a truncated
// object, trailing bytes) is malformed.
func unmarshalObject(data []byte, v any, field string) error {
	if !utf8.Valid(data) {
		// encoding/json would quietly turn the bad bytes into U+FFFD: a different name.
		return malformed(field, "not valid UTF-8")
	}
	trimmed := strings.TrimLeft(string(data), " \t\r\n")
	if !strings.HasPrefix(trimmed, "{") {
		return malformed(field, "not a JSON object")
	}
	if err := json.Unmarshal(data, v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		var be base64.CorruptInputError
		switch {
		case errors.As(err, &se):
			return malformed(field, "not valid JSON (at byte %d: %s)", se.Offset, se.Error())
		case errors.As(err, &te):
			return malformed(field+"."+te.Field, "a JSON %s where a %s belongs", te.Value, jsonKind(te.Type.Kind().String()))
		case errors.As(err, &be):
			return malformed(field+".message.data", "not base64 (%s)", be.Error())
		}
		return malformed(field, "%s", clip(err.Error()))
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "map", "struct":
		return "object"
	case "slice":
		return "base64 string"
	}
	return goKind
}

// checkBucket applies Cloud Storage's bucket naming rules (gsref.CheckBucket).
func checkBucket(field, b string) error {
	if b == "" {
		return malformed(field, "missing")
	}
	if err := gsref.CheckBucket(b); err != nil {
		return malformed(field, "%s", err.Error())
	}
	return nil
}

// checkObject applies Cloud Storage's object naming rules (gsref.CheckObject).
func checkObject(field, o string) error {
	if o == "" {
		return malformed(field, "missing")
	}
	if err := gsref.CheckObject(o); err != nil {
		return malformed(field, "%s", err.Error())
	}
	return nil
}

// parseGeneration reads a generation (or metageneration): a positive int64 written in
// decimal. Empty is 0, an error when required.
func parseGeneration(field, s string, required bool) (int64, error) {
	if s == "" {
		if required {
			return 0, malformed(field, "missing")
		}
		return 0, nil
	}
	n, err := parseCount(field, s)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, malformed(field, "0 is not a generation")
	}
	return n, nil
}

// parseCount reads a non-negative int64 written in decimal digits only (no sign, no
// spaces, no exponent).
func parseCount(field, s string) (int64, error) {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, malformed(field, "%s is not a decimal number", quote(s))
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, malformed(field, "%s is out of range", quote(s))
	}
	return n, nil
}

// maxQuoted bounds how much of a hostile value goes into a message.
const maxQuoted = 200

// clip shortens s for a message, on a rune boundary.
func clip(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// quote renders a hostile value for a message: clipped, Go-quoted (no control
// characters, no invalid UTF-8 survives).
func quote(s string) string { return strconv.Quote(clip(s)) }

// clipped is r with its names clipped, for a message.
func clipped(r gsref.ObjectRef) gsref.ObjectRef {
	r.Bucket, r.Object = clip(r.Bucket), clip(r.Object)
	return r
}
