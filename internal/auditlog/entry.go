package auditlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// auditLogType is the @type of a Cloud Audit Logs payload.
const auditLogType = "type.googleapis.com/google.cloud.audit.AuditLog"

// Bounds on the text kept from an entry.
const (
	maxShort      = 256  // principals, IPs, methods, key names
	maxUserAgent  = 512  // callerSuppliedUserAgent
	maxResource   = 1200 // resourceName (an object name is up to 1024 bytes)
	maxDelegation = 10   // hops of serviceAccountDelegationInfo kept
	maxEntryBytes = 256 << 10
)

// entry is one LogEntry as read: only the fields attribution uses.
type entry struct {
	LogName   string
	InsertID  string
	Timestamp time.Time
	Resource  struct {
		Type   string
		Bucket string
	}
	Payload payload
}

type payload struct {
	Type         string `json:"@type"`
	ServiceName  string `json:"serviceName"`
	MethodName   string `json:"methodName"`
	ResourceName string `json:"resourceName"`
	Status       *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"status"`
	AuthenticationInfo json.RawMessage `json:"authenticationInfo"`
	RequestMetadata    struct {
		CallerIP                string `json:"callerIp"`
		CallerSuppliedUserAgent string `json:"callerSuppliedUserAgent"`
		RequestAttributes       struct {
			Auth json.RawMessage `json:"auth"`
		} `json:"requestAttributes"`
	} `json:"requestMetadata"`
}

type authInfo struct {
	PrincipalEmail               string `json:"principalEmail"`
	PrincipalSubject             string `json:"principalSubject"`
	ServiceAccountKeyName        string `json:"serviceAccountKeyName"`
	ServiceAccountDelegationInfo []struct {
		FirstPartyPrincipal *struct {
			PrincipalEmail string `json:"principalEmail"`
		} `json:"firstPartyPrincipal"`
		ThirdPartyPrincipal json.RawMessage `json:"thirdPartyPrincipal"`
		PrincipalSubject    string          `json:"principalSubject"`
	} `json:"serviceAccountDelegationInfo"`
}

// wireEntry is the LogEntry's JSON shape (https://cloud.google.com/logging/docs/reference/v2/rest/v2/LogEntry).
type wireEntry struct {
	LogName   string `json:"logName"`
	InsertID  string `json:"insertId"`
	Timestamp string `json:"timestamp"`
	Resource  struct {
		Type   string            `json:"type"`
		Labels map[string]string `json:"labels"`
	} `json:"resource"`
	ProtoPayload *payload `json:"protoPayload"`
}

var errNotAudit = errors.New("not a Cloud Audit Logs entry")

func decodeEntry(raw []byte) (entry, error) {
	if len(raw) > maxEntryBytes {
		return entry{}, fmt.Errorf("%w: entry of %d bytes", ErrResponse, len(raw))
	}
	var w wireEntry
	if err := json.Unmarshal(raw, &w); err != nil {
		return entry{}, fmt.Errorf("%w: %v", ErrResponse, err)
	}
	if w.ProtoPayload == nil {
		return entry{}, errNotAudit
	}
	ts, err := time.Parse(time.RFC3339Nano, w.Timestamp)
	if err != nil {
		return entry{}, fmt.Errorf("%w: timestamp %q", ErrResponse, bound(w.Timestamp, 40))
	}
	e := entry{LogName: w.LogName, InsertID: w.InsertID, Timestamp: ts, Payload: *w.ProtoPayload}
	e.Resource.Type = w.Resource.Type
	e.Resource.Bucket = w.Resource.Labels["bucket_name"]
	return e, nil
}

// isAudit: a Cloud Storage Data Access audit entry.
func (e *entry) isAudit() bool {
	return e.Payload.Type == auditLogType && e.Payload.ServiceName == "storage.googleapis.com" &&
		strings.HasSuffix(e.LogName, "/logs/cloudaudit.googleapis.com%2Fdata_access")
}

// ok: the audited request succeeded (a denied attempt is logged too, and wrote nothing).
func (e *entry) ok() bool { return e.Payload.Status == nil || e.Payload.Status.Code == 0 }

func (e *entry) writtenBy() WrittenBy {
	var ai authInfo
	_ = json.Unmarshal(e.Payload.AuthenticationInfo, &ai) // absent or odd: fields stay empty
	wb := WrittenBy{
		Principal:         bound(ai.PrincipalEmail, maxShort),
		PrincipalSubject:  bound(ai.PrincipalSubject, maxShort),
		CallerIP:          bound(e.Payload.RequestMetadata.CallerIP, maxShort),
		UserAgent:         bound(e.Payload.RequestMetadata.CallerSuppliedUserAgent, maxUserAgent),
		ServiceAccountKey: bound(ai.ServiceAccountKeyName, maxShort),
		Method:            bound(e.Payload.MethodName, maxShort),
		Time:              e.Timestamp,
		InsertID:          bound(e.InsertID, maxShort),
	}
	if wb.Principal == "" {
		wb.Principal = wb.PrincipalSubject
	}
	for i, d := range ai.ServiceAccountDelegationInfo {
		if i == maxDelegation {
			wb.Delegation = append(wb.Delegation, fmt.Sprintf("(%d more hops)", len(ai.ServiceAccountDelegationInfo)-maxDelegation))
			break
		}
		switch {
		case d.FirstPartyPrincipal != nil && d.FirstPartyPrincipal.PrincipalEmail != "":
			wb.Delegation = append(wb.Delegation, bound(d.FirstPartyPrincipal.PrincipalEmail, maxShort))
		case d.PrincipalSubject != "":
			wb.Delegation = append(wb.Delegation, bound(d.PrincipalSubject, maxShort))
		case len(d.ThirdPartyPrincipal) > 0:
			wb.Delegation = append(wb.Delegation, "(third-party principal)")
		default:
			wb.Delegation = append(wb.Delegation, "(unnamed principal)")
		}
	}
	wb.HMACAccessID, wb.HMACAccessIDField = hmacAccessID(ai.ServiceAccountKeyName, e.Payload.AuthenticationInfo, e.Payload.RequestMetadata.RequestAttributes.Auth)
	return wb
}

// accessIDRE matches Cloud Storage HMAC access IDs: "GOOG" and 20 characters for user
// account keys, "GOOG1" and 56 more for service account keys (61 in all).
var accessIDRE = regexp.MustCompile(`^GOOG[0-9A-Z]{20,57}$`)

// hmacAccessID finds the access ID of the HMAC key that signed a request. Google does not
// document where a Cloud Storage audit entry records it, so it is looked for only in the
// fields Google fills in about the credential: authenticationInfo.serviceAccountKeyName
// (an ".../hmacKeys/ID" name, or a name ending in an access ID), then any string of
// authenticationInfo or requestMetadata.requestAttributes.auth that is exactly an access
// ID. Never in request fields a client chooses (the user agent, custom audit headers), so a
// writer cannot make the alert name someone else's key.
func hmacAccessID(keyName string, authInfo, reqAuth json.RawMessage) (id, field string) {
	if keyName != "" {
		last := keyName
		if i := strings.Index(keyName, "/hmacKeys/"); i >= 0 {
			last = keyName[i+len("/hmacKeys/"):]
			if j := strings.IndexByte(last, '/'); j >= 0 {
				last = last[:j]
			}
		} else if j := strings.LastIndexByte(keyName, '/'); j >= 0 {
			last = keyName[j+1:]
		}
		if accessIDRE.MatchString(last) {
			return last, "protoPayload.authenticationInfo.serviceAccountKeyName"
		}
	}
	for _, src := range []struct {
		path string
		raw  json.RawMessage
	}{
		{"protoPayload.authenticationInfo", authInfo},
		{"protoPayload.requestMetadata.requestAttributes.auth", reqAuth},
	} {
		if len(src.raw) == 0 {
			continue
		}
		var v any
		if json.Unmarshal(src.raw, &v) != nil {
			continue
		}
		budget := 500
		if id, p := scanAccessID(v, src.path, 0, &budget); id != "" {
			return id, p
		}
	}
	return "", ""
}

// scanAccessID walks a decoded JSON value (bounded in depth and nodes, keys in sorted order
// so the answer is stable) for a string that is exactly an HMAC access ID.
func scanAccessID(v any, path string, depth int, budget *int) (string, string) {
	*budget--
	if *budget < 0 || depth > 6 {
		return "", ""
	}
	switch x := v.(type) {
	case string:
		if accessIDRE.MatchString(x) {
			return x, path
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k == "principalEmail" || k == "principalSubject" {
				continue
			}
			if id, p := scanAccessID(x[k], path+"."+k, depth+1, budget); id != "" {
				return id, p
			}
		}
	case []any:
		for i, el := range x {
			if id, p := scanAccessID(el, path+"["+strconv.Itoa(i)+"]", depth+1, budget); id != "" {
				return id, p
			}
		}
	}
	return "", ""
}

// Entry is one audit log entry as delivered by a log sink (the Pub/Sub message data of an
// Admin Activity route), parsed and bounded.
type Entry struct {
	LogName      string    `json:"log_name"`
	InsertID     string    `json:"insert_id"`
	Time         time.Time `json:"time"`
	ResourceType string    `json:"resource_type"`
	Bucket       string    `json:"bucket"` // resource.labels.bucket_name
	Service      string    `json:"service"`
	Method       string    `json:"method"`
	ResourceName string    `json:"resource_name"`
	// OK is false when the audited request failed (status.code set).
	OK        bool      `json:"ok"`
	WrittenBy WrittenBy `json:"written_by"`
}

// AdminActivity reports whether the entry is from an Admin Activity audit log (bucket
// settings, IAM, notification and HMAC key changes).
func (e Entry) AdminActivity() bool {
	return strings.HasSuffix(e.LogName, "/logs/cloudaudit.googleapis.com%2Factivity")
}

// ParseEntry parses one LogEntry JSON (as a log sink publishes it to Pub/Sub) that carries
// a Cloud Audit Logs payload. Everything in it is bounded text kept as data; a caller must
// still treat the entry as a hint (a reason to re-check), not as proof of anything.
func ParseEntry(data []byte) (Entry, error) {
	e, err := decodeEntry(data)
	if err != nil {
		return Entry{}, fmt.Errorf("auditlog: parse log entry: %w", err)
	}
	if e.Payload.Type != auditLogType {
		return Entry{}, fmt.Errorf("auditlog: parse log entry: %w (payload type %q)", errNotAudit, bound(e.Payload.Type, 80))
	}
	wb := e.writtenBy()
	return Entry{
		LogName:      bound(e.LogName, maxShort),
		InsertID:     bound(e.InsertID, maxShort),
		Time:         e.Timestamp,
		ResourceType: bound(e.Resource.Type, maxShort),
		Bucket:       bound(e.Resource.Bucket, maxShort),
		Service:      bound(e.Payload.ServiceName, maxShort),
		Method:       bound(e.Payload.MethodName, maxShort),
		ResourceName: bound(e.Payload.ResourceName, maxResource),
		OK:           e.ok(),
		WrittenBy:    wb,
	}, nil
}
