package policy

// Posture says which bucket's guard the posture checks watch (is versioning still on, does
// the notification config that feeds tamperguard still exist, …) and what they may repair.
// It is the configuration's posture: section as plain values; internal/posture turns it
// into checks.
type Posture struct {
	// Project is the project of the watched bucket, whose HMAC keys are listed.
	Project string
	// Bucket is the watched bucket.
	Bucket string
	// Notification is the notification config that feeds tamperguard (nil: the configs first
	// observed are the expected ones, and none can be re-created).
	Notification *PostureNotification
	// Repair re-enables versioning and re-creates Notification when their checks fail.
	Repair bool
	// AllowedHMACAccessIDs are the HMAC keys of the project's service accounts that are
	// known and accepted; any other active one fails the hmac_keys check.
	AllowedHMACAccessIDs []string
}

// PostureNotification is the notification config the deployment expects on the watched
// bucket.
type PostureNotification struct {
	TopicProject string // project of the Pub/Sub topic
	Topic        string // topic ID
	// EventTypes are Cloud Storage notification event types (OBJECT_FINALIZE, …); empty
	// means all.
	EventTypes       []string
	PayloadFormat    string // JSON_API_V1 or NONE
	ObjectNamePrefix string
}
