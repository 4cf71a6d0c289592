package delivery_test

import (
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tamperguard/tamperguard/internal/delivery"
	"github.com/tamperguard/tamperguard/internal/gsref"
)

// FuzzDecodeMessage: whatever a pulled Pub/Sub message carries in its attributes and data,
// decoding never panics, and a message that decodes names an object Cloud Storage could hold
// (the engine is never asked about a name no bucket can have).
func FuzzDecodeMessage(f *testing.F) {
	f.Add("OBJECT_FINALIZE", "uploader-prod", "install.sh", "1612135200123456", "NONE", []byte(nil))
	f.Add("OBJECT_ARCHIVE", "b", "a/../b", "1", "JSON_API_V1", []byte(`{"name":"x","bucket":"b","generation":"1"}`))
	f.Add("", "", "", "", "", []byte(`{"kind":`))
	f.Add("OBJECT_METADATA_UPDATE", "-ab", "\x00", "-5", "JSON_API_V1", []byte{0xff})
	f.Fuzz(func(t *testing.T, eventType, bucket, object, gen, format string, data []byte) {
		attrs := map[string]string{"eventType": eventType, "bucketId": bucket, "objectId": object,
			"objectGeneration": gen, "payloadFormat": format}
		req, err := delivery.DecodeMessage("m1", attrs, data, time.Unix(1700000000, 0))
		if err != nil {
			if !utf8.ValidString(err.Error()) {
				t.Fatalf("error is not valid UTF-8: %q", err.Error())
			}
			return
		}
		if req.Audit {
			return
		}
		if gsref.CheckBucket(req.Event.Bucket) != nil || gsref.CheckObject(req.Event.Object) != nil || req.Event.Generation < 0 {
			t.Fatalf("decoded an impossible object: %+v", req.Event)
		}
	})
}
