package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/policy"
)

const postureRule = `"rules":
- "bucket": "my-downloads"
  "objects":
  - "install.sh"
  "release":
    "git": "git/uploader.git"
  "keys":
    "openpgp":
    - "keys/maintainer-ed25519.asc"
"state":
  "bucket": "my-state"
`

// The posture: section as the Terraform module writes it (yamlencode quotes every key and
// string) becomes the plain values the runtime gets.
func TestPostureSectionAsTheModuleWritesIt(t *testing.T) {
	cfg, err := parseString(t, postureRule+`"posture":
  "allowed_hmac_access_ids":
  - "GOOG1EXAMPLEACCESSIDFORSERVICEACCOUNTKEYS0123456789ABCDEFGHI"
  "bucket": "my-downloads"
  "notification":
    "event_types":
    - "OBJECT_FINALIZE"
    - "OBJECT_METADATA_UPDATE"
    - "OBJECT_DELETE"
    - "OBJECT_ARCHIVE"
    "object_name_prefix": "releases/"
    "payload_format": "JSON_API_V1"
    "topic": "projects/my-project/topics/tamperguard-events"
  "project": "my-project"
  "repair": true
`)
	require.NoError(t, err)
	assert.Equal(t, &policy.Posture{
		Project: "my-project", Bucket: "my-downloads", Repair: true,
		AllowedHMACAccessIDs: []string{"GOOG1EXAMPLEACCESSIDFORSERVICEACCOUNTKEYS0123456789ABCDEFGHI"},
		Notification: &policy.PostureNotification{TopicProject: "my-project", Topic: "tamperguard-events",
			EventTypes:    []string{"OBJECT_FINALIZE", "OBJECT_METADATA_UPDATE", "OBJECT_DELETE", "OBJECT_ARCHIVE"},
			PayloadFormat: "JSON_API_V1", ObjectNamePrefix: "releases/"},
	}, cfg.Policy.Posture)

	// The least the section needs; the payload format defaults to the module's.
	cfg, err = parseString(t, postureRule+`posture:
  project: my-project
  bucket: my-downloads
  notification: {topic: projects/my-project/topics/t-events}
  allowed_hmac_access_ids: []
`)
	require.NoError(t, err)
	require.NotNil(t, cfg.Policy.Posture)
	assert.False(t, cfg.Policy.Posture.Repair)
	assert.Equal(t, "JSON_API_V1", cfg.Policy.Posture.Notification.PayloadFormat)
	assert.Empty(t, cfg.Policy.Posture.Notification.EventTypes)

	// Without the section there are no posture checks.
	cfg, err = parseString(t, postureRule)
	require.NoError(t, err)
	assert.Nil(t, cfg.Policy.Posture)
}

func TestPostureSectionErrors(t *testing.T) {
	for _, tc := range []struct{ name, section, want string }{
		{"no project", "posture:\n  bucket: my-downloads\n", "line 12: posture: project is required"},
		{"bad project", "posture:\n  project: My_Project\n  bucket: my-downloads\n", `line 13: posture.project: "My_Project" is not a project ID`},
		{"no bucket", "posture:\n  project: my-project\n", "line 12: posture: bucket is required"},
		{"gs:// bucket", "posture:\n  project: my-project\n  bucket: gs://my-downloads\n", `line 14: posture.bucket: "gs://my-downloads" is not a Cloud Storage bucket name`},
		{"state bucket", "posture:\n  project: my-project\n  bucket: my-state\n", `line 14: posture.bucket: "my-state" is the state bucket`},
		{"unwatched bucket", "posture:\n  project: my-project\n  bucket: other-bucket\n", `line 14: posture.bucket: no rule watches "other-bucket"`},
		{"topic ID only", "posture:\n  project: my-project\n  bucket: my-downloads\n  notification:\n    topic: tamperguard-events\n", `line 16: posture.notification.topic: "tamperguard-events" is not a topic name like projects/PROJECT/topics/TOPIC`},
		{"goog topic", "posture:\n  project: my-project\n  bucket: my-downloads\n  notification:\n    topic: projects/my-project/topics/goog-x\n", `line 16: posture.notification.topic: "projects/my-project/topics/goog-x" is not a topic name`},
		{"event type", "posture:\n  project: my-project\n  bucket: my-downloads\n  notification:\n    topic: projects/my-project/topics/t-events\n    event_types: [OBJECT_FINALIZE, finalize]\n", `line 17: posture.notification.event_types[1]: "finalize" is not one of OBJECT_FINALIZE, OBJECT_METADATA_UPDATE, OBJECT_DELETE, OBJECT_ARCHIVE`},
		{"payload format", "posture:\n  project: my-project\n  bucket: my-downloads\n  notification:\n    topic: projects/my-project/topics/t-events\n    payload_format: JSON\n", `line 17: posture.notification.payload_format: "JSON" is not JSON_API_V1 or NONE`},
		{"hmac id", "posture:\n  project: my-project\n  bucket: my-downloads\n  allowed_hmac_access_ids:\n    - GOOG1EXAMPLE\n", `line 16: posture.allowed_hmac_access_ids[0]: "GOOG1EXAMPLE" is not an HMAC access ID`},
		{"unknown field", "posture:\n  project: my-project\n  bucket: my-downloads\n  repair_unsafe: true\n", `line 15: posture: unknown field "repair_unsafe" (known fields: allowed_hmac_access_ids, bucket, notification, project, repair)`},
		{"unknown notification field", "posture:\n  project: my-project\n  bucket: my-downloads\n  notification: {topic: projects/p-1234/topics/t-events, events: []}\n", `posture.notification: unknown field "events" (known fields: event_types, object_name_prefix, payload_format, topic)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseString(t, postureRule+tc.section)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), "configuration test.yaml: "), err.Error())
		})
	}
}
