package auditlog

import (
	"os"
	"testing"
	"unicode/utf8"
)

// FuzzParseEntry: no input makes ParseEntry panic, and whatever it accepts comes back as
// bounded, valid UTF-8 text.
func FuzzParseEntry(f *testing.F) {
	for _, name := range []string{"data-write-create.json", "admin-activity-bucket-update.json"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"timestamp":"2021-01-31T13:58:02Z","protoPayload":{"@type":"type.googleapis.com/google.cloud.audit.AuditLog","authenticationInfo":{"serviceAccountKeyName":"//x/hmacKeys/GOOGTS7C7FUP3AIRVJTE2BCD/y"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEntry(data)
		if err != nil {
			return
		}
		for _, s := range []string{e.LogName, e.Method, e.ResourceName, e.WrittenBy.Principal, e.WrittenBy.UserAgent, e.WrittenBy.CallerIP, e.WrittenBy.ServiceAccountKey} {
			if !utf8.ValidString(s) {
				t.Fatalf("invalid UTF-8 kept: %q", s)
			}
			if len(s) > maxResource+len("…") {
				t.Fatalf("unbounded text: %d bytes", len(s))
			}
		}
		if len(e.WrittenBy.Delegation) > maxDelegation+1 {
			t.Fatalf("%d delegation hops kept", len(e.WrittenBy.Delegation))
		}
		if e.WrittenBy.HMACAccessID != "" && !accessIDRE.MatchString(e.WrittenBy.HMACAccessID) {
			t.Fatalf("HMAC access ID %q is not one", e.WrittenBy.HMACAccessID)
		}
	})
}
