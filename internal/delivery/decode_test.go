package delivery_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/delivery"
	"github.com/tamperguard/tamperguard/internal/engine"
)

var when = time.Date(2021, 1, 31, 23, 20, 0, 0, time.UTC)

func event(typ, source, subject, contentType string, data []byte) cloudevents.Event {
	e := cloudevents.NewEvent()
	e.SetID("evt-1")
	e.SetType(typ)
	e.SetSource(source)
	e.SetSubject(subject)
	e.SetTime(when)
	if contentType != "" || data != nil {
		_ = e.SetData(contentType, data)
	}
	return e
}

func storageCE(fields map[string]any) cloudevents.Event {
	obj := map[string]any{"kind": "storage#object", "bucket": "uploader-prod", "name": "install.sh", "generation": "1612135200123456", "metageneration": "3", "size": "9610"}
	for k, v := range fields {
		if v == nil {
			delete(obj, k)
		} else {
			obj[k] = v
		}
	}
	b, _ := json.Marshal(obj)
	name, _ := obj["name"].(string)
	return event(delivery.TypeFinalized, "//storage.googleapis.com/projects/_/buckets/uploader-prod", "objects/"+name, "application/json", b)
}

func pubsubCE(attrs map[string]string, payload []byte, extra map[string]any) cloudevents.Event {
	msg := map[string]any{"attributes": attrs, "messageId": "m-1", "publishTime": "2021-01-31T23:20:00.456Z"}
	if payload != nil {
		msg["data"] = base64.StdEncoding.EncodeToString(payload)
	}
	for k, v := range extra {
		msg[k] = v
	}
	b, _ := json.Marshal(map[string]any{"message": msg, "subscription": "projects/p/subscriptions/s"})
	return event(delivery.TypeMessagePublished, "//pubsub.googleapis.com/projects/p/topics/t", "", "application/json", b)
}

func notificationAttrs(extra map[string]string) map[string]string {
	a := map[string]string{"eventType": "OBJECT_FINALIZE", "payloadFormat": "NONE", "bucketId": "uploader-prod", "objectId": "install.sh", "objectGeneration": "1612135200123456", "eventTime": "2021-01-31T23:20:00.123456Z"}
	for k, v := range extra {
		if v == "" {
			delete(a, k)
		} else {
			a[k] = v
		}
	}
	return a
}

func TestDecodeStorageEvent(t *testing.T) {
	for typ, kind := range map[string]engine.Kind{
		delivery.TypeFinalized: engine.KindFinalize, delivery.TypeDeleted: engine.KindDelete,
		delivery.TypeArchived: engine.KindArchive, delivery.TypeMetadataUpdated: engine.KindMetadata,
	} {
		e := storageCE(nil)
		e.SetType(typ)
		req, err := delivery.DecodeCloudEvent(e)
		require.NoError(t, err, typ)
		assert.Equal(t, engine.Event{ID: "evt-1", Kind: kind, Bucket: "uploader-prod", Object: "install.sh",
			Generation: 1612135200123456, Metageneration: 3, Time: when}, req.Event, typ)
		assert.Empty(t, req.Warnings)
		assert.False(t, req.Audit)
	}
}

func TestDecodeStorageEventRejects(t *testing.T) {
	long := strings.Repeat("é", 512) + "x" // 1025 bytes
	for name, c := range map[string]struct {
		fields  map[string]any
		problem string
	}{
		"generation with a sign":        {map[string]any{"generation": "+5"}, `data.generation: "+5" is not a decimal number`},
		"negative generation":           {map[string]any{"generation": "-1"}, `data.generation: "-1" is not a decimal number`},
		"generation zero":               {map[string]any{"generation": "0"}, "data.generation: 0 is not a generation"},
		"generation out of range":       {map[string]any{"generation": "99999999999999999999"}, `data.generation: "99999999999999999999" is out of range`},
		"generation with a space":       {map[string]any{"generation": " 5"}, "is not a decimal number"},
		"generation as a number":        {map[string]any{"generation": 5}, "data.generation: a JSON number where a string belongs"},
		"generation null":               {map[string]any{"generation": nil}, "data.generation: missing"},
		"metageneration not a number":   {map[string]any{"metageneration": "x"}, `data.metageneration: "x" is not a decimal number`},
		"negative size":                 {map[string]any{"size": "-3"}, `data.size: "-3" is not a decimal number`},
		"not an object resource":        {map[string]any{"kind": "storage#bucket"}, `data.kind: "storage#bucket" is not storage#object`},
		"no bucket":                     {map[string]any{"bucket": ""}, "data.bucket: missing"},
		"bucket too short":              {map[string]any{"bucket": "ab"}, "is not a bucket name"},
		"bucket in capitals":            {map[string]any{"bucket": "Uploader"}, "is not a bucket name"},
		"bucket starting with a dash":   {map[string]any{"bucket": "-uploader"}, "must start and end with a letter or digit"},
		"bucket part over 63":           {map[string]any{"bucket": strings.Repeat("a", 64)}, "over 63 characters"},
		"bucket with two dots in a row": {map[string]any{"bucket": "a..b"}, "two dots in a row"},
		"bucket that is an IP address":  {map[string]any{"bucket": "192.168.5.4"}, "an IP address"},
		"bucket named goog":             {map[string]any{"bucket": "goog-uploads"}, `starts with "goog"`},
		"name Cloud Storage reserves":   {map[string]any{"name": ".well-known/acme-challenge/x"}, "which Cloud Storage reserves"},
		"no name":                       {map[string]any{"name": ""}, "data.name: missing"},
		"name over 1024 bytes":          {map[string]any{"name": long}, "data.name: 1025 bytes, over Cloud Storage's 1024-byte limit"},
		"name with a line feed":         {map[string]any{"name": "a\nb"}, "contains a carriage return or line feed"},
		"name with a carriage return":   {map[string]any{"name": "a\rb"}, "contains a carriage return or line feed"},
		"name dot":                      {map[string]any{"name": "."}, "is not an object name"},
		"name dot dot":                  {map[string]any{"name": ".."}, "is not an object name"},
		"name of the wrong JSON type":   {map[string]any{"name": []int{1}}, "data.name: a JSON array where a string belongs"},
		"bucket of the wrong JSON type": {map[string]any{"bucket": map[string]int{}}, "data.bucket: a JSON object where a string belongs"},
	} {
		t.Run(name, func(t *testing.T) {
			e := storageCE(c.fields)
			if s, ok := c.fields["bucket"].(string); ok && s != "" {
				e.SetSource("//storage.googleapis.com/projects/_/buckets/" + s)
			}
			_, err := delivery.DecodeCloudEvent(e)
			var de *delivery.DecodeError
			require.True(t, errors.As(err, &de), "%v", err)
			assert.False(t, de.Unsupported)
			assert.Contains(t, err.Error(), c.problem)
			assert.True(t, utf8.ValidString(err.Error()), "messages never carry invalid UTF-8")
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestDecodeStorageEnvelope(t *testing.T) {
	t.Run("data not UTF-8", func(t *testing.T) {
		e := storageCE(nil)
		_ = e.SetData("application/json", []byte(`{"bucket":"uploader-prod","name":"a`+"\xff"+`b","generation":"1"}`))
		_, err := delivery.DecodeCloudEvent(e)
		assert.ErrorContains(t, err, "data: not valid UTF-8")
	})
	t.Run("a 1024-byte name is fine", func(t *testing.T) {
		name := strings.Repeat("é", 512)
		req, err := delivery.DecodeCloudEvent(storageCE(map[string]any{"name": name}))
		require.NoError(t, err)
		assert.Equal(t, name, req.Event.Object)
	})
	t.Run("content type with parameters", func(t *testing.T) {
		e := storageCE(nil)
		e.SetDataContentType("application/json; charset=utf-8")
		_, err := delivery.DecodeCloudEvent(e)
		assert.NoError(t, err)
	})
	t.Run("no content type: JSON", func(t *testing.T) {
		e := storageCE(nil)
		e.SetDataContentType("")
		_, err := delivery.DecodeCloudEvent(e)
		assert.NoError(t, err)
	})
	for _, ct := range []string{"text/plain", "application/cloudevents+json", "application/octet-stream", "application/json;;"} {
		t.Run("content type "+ct, func(t *testing.T) {
			e := storageCE(nil)
			e.SetDataContentType(ct)
			_, err := delivery.DecodeCloudEvent(e)
			assert.ErrorContains(t, err, "datacontenttype:")
		})
	}
	for body, problem := range map[string]string{
		"":                  "data: empty",
		"null":              "data: not a JSON object",
		"[1]":               "data: not a JSON object",
		`"install.sh"`:      "data: not a JSON object",
		`{"bucket":`:        "data: not valid JSON",
		`{"bucket":"b"} {}`: "data: not valid JSON",
	} {
		t.Run("data "+body, func(t *testing.T) {
			e := storageCE(nil)
			_ = e.SetData("application/json", []byte(body))
			_, err := delivery.DecodeCloudEvent(e)
			assert.ErrorContains(t, err, problem)
		})
	}
	t.Run("source of another service", func(t *testing.T) {
		e := storageCE(nil)
		e.SetSource("//pubsub.googleapis.com/projects/p/topics/t")
		_, err := delivery.DecodeCloudEvent(e)
		assert.ErrorContains(t, err, "source: ")
	})
	t.Run("subject naming another object is only a warning", func(t *testing.T) {
		e := storageCE(nil)
		e.SetSubject("objects/other.sh")
		req, err := delivery.DecodeCloudEvent(e)
		require.NoError(t, err)
		assert.Equal(t, "install.sh", req.Event.Object)
		require.Len(t, req.Warnings, 1)
		assert.Contains(t, req.Warnings[0], `"objects/other.sh"`)
	})
	t.Run("percent-encoded subject", func(t *testing.T) {
		e := storageCE(map[string]any{"name": "dl/a b.sh"})
		e.SetSubject("objects/dl%2Fa%20b.sh")
		req, err := delivery.DecodeCloudEvent(e)
		require.NoError(t, err)
		assert.Empty(t, req.Warnings)
	})
	t.Run("unknown type", func(t *testing.T) {
		e := storageCE(nil)
		e.SetType("google.cloud.storage.object.v1.rewritten")
		_, err := delivery.DecodeCloudEvent(e)
		var de *delivery.DecodeError
		require.ErrorAs(t, err, &de)
		assert.True(t, de.Unsupported)
		assert.Equal(t, "type", de.Field)
	})
}

func TestDecodePubSubNotification(t *testing.T) {
	t.Run("finalize that overwrote, JSON_API_V1", func(t *testing.T) {
		payload := []byte(`{"kind":"storage#object","bucket":"uploader-prod","name":"install.sh","generation":"1612135200123456","metageneration":"2","size":"9610"}`)
		req, err := delivery.DecodeCloudEvent(pubsubCE(notificationAttrs(map[string]string{"payloadFormat": "JSON_API_V1", "overwroteGeneration": "1611072000000000"}), payload, nil))
		require.NoError(t, err)
		assert.Equal(t, engine.Event{ID: "evt-1", Kind: engine.KindFinalize, Bucket: "uploader-prod", Object: "install.sh",
			Generation: 1612135200123456, Metageneration: 2, Time: time.Date(2021, 1, 31, 23, 20, 0, 123456000, time.UTC)}, req.Event)
		assert.Equal(t, int64(1611072000000000), req.Overwrote)
		assert.Equal(t, "m-1", req.MessageID)
		assert.Equal(t, time.Date(2021, 1, 31, 23, 20, 0, 456000000, time.UTC), req.PublishTime)
	})
	t.Run("archive of an overwrite", func(t *testing.T) {
		req, err := delivery.DecodeCloudEvent(pubsubCE(notificationAttrs(map[string]string{"eventType": "OBJECT_ARCHIVE", "overwrittenByGeneration": "1612135200999999"}), nil, nil))
		require.NoError(t, err)
		assert.Equal(t, engine.KindArchive, req.Event.Kind)
		assert.Equal(t, int64(1612135200999999), req.Event.OverwrittenBy)
	})
	t.Run("kinds", func(t *testing.T) {
		for et, kind := range map[string]engine.Kind{"OBJECT_FINALIZE": engine.KindFinalize, "OBJECT_DELETE": engine.KindDelete, "OBJECT_ARCHIVE": engine.KindArchive, "OBJECT_METADATA_UPDATE": engine.KindMetadata} {
			req, err := delivery.DecodeCloudEvent(pubsubCE(notificationAttrs(map[string]string{"eventType": et}), nil, nil))
			require.NoError(t, err, et)
			assert.Equal(t, kind, req.Event.Kind, et)
		}
	})
	t.Run("no eventTime: the publish time", func(t *testing.T) {
		req, err := delivery.DecodeCloudEvent(pubsubCE(notificationAttrs(map[string]string{"eventTime": ""}), nil, nil))
		require.NoError(t, err)
		assert.Equal(t, time.Date(2021, 1, 31, 23, 20, 0, 456000000, time.UTC), req.Event.Time)
	})
	t.Run("audit", func(t *testing.T) {
		req, err := delivery.DecodeCloudEvent(pubsubCE(map[string]string{"tamperguard": "audit"}, []byte("{}"), nil))
		require.NoError(t, err)
		assert.True(t, req.Audit)
	})

	payloadFor := func(gen string) []byte {
		return []byte(`{"kind":"storage#object","bucket":"uploader-prod","name":"install.sh","generation":"` + gen + `"}`)
	}
	for name, c := range map[string]struct {
		ev          cloudevents.Event
		problem     string
		unsupported bool
	}{
		"no message":                 {event(delivery.TypeMessagePublished, "//pubsub.googleapis.com/projects/p/topics/t", "", "application/json", []byte(`{"subscription":"s"}`)), "data.message: missing", false},
		"tamperguard attribute":      {pubsubCE(map[string]string{"tamperguard": "restore-everything"}, nil, nil), `data.message.attributes.tamperguard: "restore-everything" is not "audit"`, false},
		"no eventType":               {pubsubCE(map[string]string{"hello": "world"}, []byte("hi"), nil), "data.message.attributes.eventType: missing", false},
		"unknown eventType":          {pubsubCE(notificationAttrs(map[string]string{"eventType": "OBJECT_RESTORE"}), nil, nil), `unsupported notification type "OBJECT_RESTORE"`, true},
		"no payloadFormat":           {pubsubCE(notificationAttrs(map[string]string{"payloadFormat": ""}), nil, nil), `data.message.attributes.payloadFormat: "" is not JSON_API_V1 or NONE`, false},
		"bad bucketId":               {pubsubCE(notificationAttrs(map[string]string{"bucketId": "Bad Bucket"}), nil, nil), "data.message.attributes.bucketId:", false},
		"no objectId":                {pubsubCE(notificationAttrs(map[string]string{"objectId": ""}), nil, nil), "data.message.attributes.objectId: missing", false},
		"objectGeneration missing":   {pubsubCE(notificationAttrs(map[string]string{"objectGeneration": ""}), nil, nil), "data.message.attributes.objectGeneration: missing", false},
		"overwrittenBy not a number": {pubsubCE(notificationAttrs(map[string]string{"overwrittenByGeneration": "soon"}), nil, nil), "data.message.attributes.overwrittenByGeneration:", false},
		"overwrote not a number":     {pubsubCE(notificationAttrs(map[string]string{"overwroteGeneration": "0x10"}), nil, nil), "data.message.attributes.overwroteGeneration:", false},
		"eventTime not a time":       {pubsubCE(notificationAttrs(map[string]string{"eventTime": "yesterday"}), nil, nil), `data.message.attributes.eventTime: "yesterday" is not an RFC 3339 time`, false},
		"publishTime not a time":     {pubsubCE(notificationAttrs(nil), nil, map[string]any{"publishTime": "noon"}), `data.message.publishTime: "noon" is not an RFC 3339 time`, false},
		"data not base64":            {pubsubCE(notificationAttrs(nil), nil, map[string]any{"data": "%%%"}), "data.message.data: not base64", false},
		"attributes not strings":     {pubsubCE(nil, nil, map[string]any{"attributes": map[string]int{"eventType": 1}}), "a JSON number where a string belongs", false},
		"JSON_API_V1 without data":   {pubsubCE(notificationAttrs(map[string]string{"payloadFormat": "JSON_API_V1"}), nil, nil), "data.message.data: not a JSON object", false},
		"JSON_API_V1 truncated":      {pubsubCE(notificationAttrs(map[string]string{"payloadFormat": "JSON_API_V1"}), []byte(`{"bucket":"upl`), nil), "data.message.data: not valid JSON", false},
		"payload names another generation": {pubsubCE(notificationAttrs(map[string]string{"payloadFormat": "JSON_API_V1"}), payloadFor("1"), nil),
			`data.message.data: names gs://uploader-prod/"install.sh"#1 but the attributes name gs://uploader-prod/"install.sh"#1612135200123456`, false},
		"payload with a bad generation": {pubsubCE(notificationAttrs(map[string]string{"payloadFormat": "JSON_API_V1"}), payloadFor("x"), nil), `data.message.data.generation: "x" is not a decimal number`, false},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := delivery.DecodeCloudEvent(c.ev)
			var de *delivery.DecodeError
			require.True(t, errors.As(err, &de), "%v", err)
			assert.Equal(t, c.unsupported, de.Unsupported)
			assert.Contains(t, err.Error(), c.problem)
		})
	}
}

// FuzzDecode: no input makes Decode panic, and whatever it accepts obeys Cloud Storage's
// naming rules.
func FuzzDecode(f *testing.F) {
	f.Add(uint8(0), []byte(`{"bucket":"uploader-prod","name":"install.sh","generation":"1"}`), "uploader-prod")
	f.Add(uint8(4), []byte(`{"message":{"attributes":{"eventType":"OBJECT_FINALIZE","payloadFormat":"NONE","bucketId":"abc","objectId":"x","objectGeneration":"9"}}}`), "abc")
	f.Add(uint8(4), []byte(`{"message":{"attributes":{"tamperguard":"audit"}}}`), "")
	f.Add(uint8(4), []byte(`{"message":{"attributes":{"eventType":"OBJECT_FINALIZE","payloadFormat":"JSON_API_V1","bucketId":"abc","objectId":"x","objectGeneration":"9"},"data":"e30="}}`), "abc")
	types := []string{delivery.TypeFinalized, delivery.TypeDeleted, delivery.TypeArchived, delivery.TypeMetadataUpdated, delivery.TypeMessagePublished, "x"}
	f.Fuzz(func(t *testing.T, typ uint8, data []byte, bucket string) {
		e := event(types[int(typ)%len(types)], "//storage.googleapis.com/projects/_/buckets/"+bucket, "", "application/json", data)
		req, err := delivery.DecodeCloudEvent(e)
		if err != nil {
			var de *delivery.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if req.Audit {
			return
		}
		ev := req.Event
		if ev.Generation <= 0 || ev.Bucket == "" || ev.Object == "" || len(ev.Object) > 1024 || !utf8.ValidString(ev.Object) || strings.ContainsAny(ev.Object, "\r\n") {
			t.Fatalf("accepted %+v", ev)
		}
	})
}
