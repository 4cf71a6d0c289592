package auditlog

import (
	"strings"
	"time"
)

// dataAccessLog is the log ID of Data Access audit logs.
const dataAccessLog = "cloudaudit.googleapis.com/data_access"

// quote renders s as a string literal of the Logging query language. Callers have refused
// control characters already.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if r == '"' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

func stamp(t time.Time) string { return quote(t.UTC().Format(time.RFC3339Nano)) }

// writeFilter selects the Data Access entries of one object's writes of w's kind in the
// window around w.Time.
func writeFilter(w Write, before, after time.Duration) string {
	methods := make([]string, 0, len(Methods[w.Kind]))
	for _, m := range Methods[w.Kind] {
		methods = append(methods, quote(m))
	}
	return strings.Join([]string{
		"log_id(" + quote(dataAccessLog) + ")",
		"resource.type=\"gcs_bucket\"",
		"resource.labels.bucket_name=" + quote(w.Bucket),
		"protoPayload.serviceName=\"storage.googleapis.com\"",
		"protoPayload.resourceName=" + quote(ResourceName(w.Bucket, w.Object)),
		"protoPayload.methodName=(" + strings.Join(methods, " OR ") + ")",
		"timestamp>=" + stamp(w.Time.Add(-before)),
		"timestamp<=" + stamp(w.Time.Add(after)),
	}, " AND ")
}

// bucketFilter selects the Data Access entries of any object write in bucket within
// [from, to].
func bucketFilter(bucket string, from, to time.Time) string {
	var methods []string
	for _, k := range []Kind{KindCreate, KindDelete, KindMetadata} {
		for _, m := range Methods[k] {
			methods = append(methods, quote(m))
		}
	}
	return strings.Join([]string{
		"log_id(" + quote(dataAccessLog) + ")",
		"resource.type=\"gcs_bucket\"",
		"resource.labels.bucket_name=" + quote(bucket),
		"protoPayload.serviceName=\"storage.googleapis.com\"",
		"protoPayload.methodName=(" + strings.Join(methods, " OR ") + ")",
		"timestamp>=" + stamp(from),
		"timestamp<=" + stamp(to),
	}, " AND ")
}
