package delivery_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/delivery"
	"github.com/tamperguard/tamperguard/internal/engine"
)

func messageAttrs(kv ...string) map[string]string {
	a := map[string]string{
		"eventType": "OBJECT_FINALIZE", "payloadFormat": "NONE", "bucketId": "uploader-prod",
		"objectId": "install.sh", "objectGeneration": "1612135200123456",
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(a, kv[i])
		} else {
			a[kv[i]] = kv[i+1]
		}
	}
	return a
}

// A pulled message decodes exactly as the same message wrapped in a CloudEvent.
func TestDecodeMessageAgreesWithDecode(t *testing.T) {
	payload := []byte(`{"kind":"storage#object","bucket":"uploader-prod","name":"install.sh","generation":"1612135200123456","metageneration":"2"}`)
	for name, c := range map[string]struct {
		attrs   map[string]string
		payload []byte
	}{
		"finalize NONE":    {messageAttrs("overwroteGeneration", "1611072000000000"), nil},
		"finalize JSON":    {messageAttrs("payloadFormat", "JSON_API_V1", "eventTime", "2021-01-31T23:20:00.123456Z"), payload},
		"archive":          {messageAttrs("eventType", "OBJECT_ARCHIVE", "overwrittenByGeneration", "1612135200999999"), nil},
		"audit":            {map[string]string{"tamperguard": "audit"}, []byte("ignored")},
		"bad bucket":       {messageAttrs("bucketId", "Not A Bucket"), nil},
		"unsupported":      {messageAttrs("eventType", "OBJECT_TELEPORTED"), nil},
		"payload mismatch": {messageAttrs("payloadFormat", "JSON_API_V1", "objectGeneration", "7"), payload},
	} {
		t.Run(name, func(t *testing.T) {
			ce := pubsubCE(c.attrs, c.payload, nil)
			fromCE, errCE := delivery.DecodeCloudEvent(ce)
			published, err := time.Parse(time.RFC3339Nano, "2021-01-31T23:20:00.456Z")
			require.NoError(t, err)
			got, err := delivery.DecodeMessage("m-1", c.attrs, c.payload, published)
			if errCE != nil {
				require.Error(t, err)
				var de, deCE *delivery.DecodeError
				require.True(t, errors.As(err, &de))
				require.True(t, errors.As(errCE, &deCE))
				assert.Equal(t, deCE.Unsupported, de.Unsupported)
				assert.Equal(t, strings.TrimPrefix(deCE.Field, "data."), de.Field, "fields are named from the message")
				assert.Equal(t, deCE.Problem, de.Problem)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, delivery.TypeMessagePublished, got.Type)
			assert.Equal(t, fromCE.Audit, got.Audit)
			assert.Equal(t, fromCE.Overwrote, got.Overwrote)
			assert.Equal(t, "m-1", got.MessageID)
			assert.True(t, fromCE.PublishTime.Equal(got.PublishTime))
			assert.True(t, fromCE.Event.Time.Equal(got.Event.Time))
			fromCE.Event.ID, got.Event.ID = "", ""
			fromCE.Event.Time, got.Event.Time = time.Time{}, time.Time{}
			assert.Equal(t, fromCE.Event, got.Event)
		})
	}
}

func TestDecodeMessage(t *testing.T) {
	got, err := delivery.DecodeMessage("42", messageAttrs("eventTime", "2021-01-31T23:20:00Z"), nil, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, engine.Event{ID: "42", Kind: engine.KindFinalize, Bucket: "uploader-prod", Object: "install.sh",
		Generation: 1612135200123456, Time: time.Date(2021, 1, 31, 23, 20, 0, 0, time.UTC)}, got.Event)

	_, err = delivery.DecodeMessage("42", messageAttrs(), make([]byte, 1<<20+1), time.Time{})
	var de *delivery.DecodeError
	require.True(t, errors.As(err, &de))
	assert.Equal(t, "message.data", de.Field)

	_, err = delivery.DecodeMessage("42", nil, nil, time.Time{})
	require.True(t, errors.As(err, &de))
	assert.Equal(t, "message.attributes.eventType", de.Field)
}
