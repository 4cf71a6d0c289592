package config

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/tamperguard/tamperguard/internal/gsref"
	"github.com/tamperguard/tamperguard/internal/policy"
)

// PostureSpec is the posture: section: which bucket's guard the posture checks watch and
// what they compare it with. The Terraform module writes it from its own resources.
//
//	posture:
//	  project: P
//	  bucket: B
//	  notification: {topic: projects/P/topics/T, event_types: [...], payload_format: JSON_API_V1, object_name_prefix: ""}
//	  repair: false
//	  allowed_hmac_access_ids: []
type PostureSpec struct {
	// Project is the watched bucket's project, whose HMAC keys are listed.
	Project string `yaml:"project"`
	// Bucket is the watched bucket; a rule must watch it.
	Bucket string `yaml:"bucket"`
	// Notification is the notification config that feeds tamperguard (optional: without it
	// the configs first observed are the expected ones, and none can be re-created).
	Notification *NotificationSpec `yaml:"notification"`
	// Repair re-enables versioning and re-creates the notification config when their
	// checks fail (needs storage.buckets.update on the bucket).
	Repair bool `yaml:"repair"`
	// AllowedHMACAccessIDs are HMAC keys of the project's service accounts that are known and
	// accepted; any other active one fails the hmac_keys check.
	AllowedHMACAccessIDs []string `yaml:"allowed_hmac_access_ids"`
}

// NotificationSpec is a Cloud Storage notification config as the JSON API writes it.
type NotificationSpec struct {
	// Topic is the full topic name, projects/PROJECT/topics/TOPIC.
	Topic string `yaml:"topic"`
	// EventTypes are OBJECT_FINALIZE, OBJECT_METADATA_UPDATE, OBJECT_DELETE, OBJECT_ARCHIVE
	// (empty: all).
	EventTypes []string `yaml:"event_types"`
	// PayloadFormat is JSON_API_V1 (default) or NONE.
	PayloadFormat    string `yaml:"payload_format"`
	ObjectNamePrefix string `yaml:"object_name_prefix"`
}

var (
	// projectIDRE: a project ID, or a domain-scoped one (example.com:project).
	projectIDRE = regexp.MustCompile(`^(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	// topicIDRE: a Pub/Sub topic ID.
	topicIDRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$`)
	// hmacAccessIDRE: Cloud Storage HMAC access IDs, "GOOG" and 20 characters for user
	// account keys, "GOOG1" and 56 more for service account keys.
	hmacAccessIDRE = regexp.MustCompile(`^GOOG[0-9A-Z]{20,57}$`)
)

// notificationEventTypes are the Cloud Storage notification event types.
var notificationEventTypes = []string{"OBJECT_FINALIZE", "OBJECT_METADATA_UPDATE", "OBJECT_DELETE", "OBJECT_ARCHIVE"}

// validatePosture checks the posture: section against the rest of the configuration.
func (c *Config) validatePosture(root *yaml.Node) error {
	p := c.Posture
	if p == nil {
		return nil
	}
	at := func(path ...string) string {
		full := []any{"posture"}
		names := "posture"
		for _, s := range path {
			full = append(full, s)
			names += "." + s
		}
		return fmt.Sprintf("line %d: %s", lineOf(root, full...), names)
	}
	switch {
	case p.Project == "":
		return fmt.Errorf("%s: project is required (the watched bucket's project, whose HMAC keys are listed)", at())
	case !projectIDRE.MatchString(p.Project):
		return fmt.Errorf("%s: %q is not a project ID", at("project"), p.Project)
	case p.Bucket == "":
		return fmt.Errorf("%s: bucket is required (the watched bucket)", at())
	}
	if err := gsref.CheckBucket(p.Bucket); err != nil {
		return fmt.Errorf("%s: %q is not a Cloud Storage bucket name (give the name only, no gs://): %s", at("bucket"), p.Bucket, problem(err))
	}
	if p.Bucket == c.State.Bucket {
		return fmt.Errorf("%s: %q is the state bucket; posture watches the bucket the rules watch", at("bucket"), p.Bucket)
	}
	watched := false
	for _, r := range c.Rules {
		watched = watched || r.Bucket == p.Bucket
	}
	if !watched {
		return fmt.Errorf("%s: no rule watches %q: posture checks the bucket whose objects the rules guard", at("bucket"), p.Bucket)
	}
	if n := p.Notification; n != nil {
		project, topic, ok := splitTopic(n.Topic)
		if !ok {
			return fmt.Errorf("%s: %q is not a topic name like projects/PROJECT/topics/TOPIC", at("notification", "topic"), n.Topic)
		}
		if !projectIDRE.MatchString(project) || !topicIDRE.MatchString(topic) || strings.HasPrefix(topic, "goog") {
			return fmt.Errorf("%s: %q is not a topic name like projects/PROJECT/topics/TOPIC (a project ID, and a topic ID of 3 to 255 letters, digits and ._~+%%-, starting with a letter and not with goog)", at("notification", "topic"), n.Topic)
		}
		for i, e := range n.EventTypes {
			known := false
			for _, k := range notificationEventTypes {
				known = known || e == k
			}
			if !known {
				return fmt.Errorf("line %d: posture.notification.event_types[%d]: %q is not one of %s", lineOf(root, "posture", "notification", "event_types", i), i, e, strings.Join(notificationEventTypes, ", "))
			}
		}
		switch n.PayloadFormat {
		case "":
			n.PayloadFormat = "JSON_API_V1"
		case "JSON_API_V1", "NONE":
		default:
			return fmt.Errorf("%s: %q is not JSON_API_V1 or NONE", at("notification", "payload_format"), n.PayloadFormat)
		}
		if len(n.ObjectNamePrefix) > 1024 || !utf8.ValidString(n.ObjectNamePrefix) {
			return fmt.Errorf("%s: not an object name prefix (valid UTF-8, at most 1024 bytes)", at("notification", "object_name_prefix"))
		}
	}
	for i, id := range p.AllowedHMACAccessIDs {
		if !hmacAccessIDRE.MatchString(id) {
			return fmt.Errorf("line %d: posture.allowed_hmac_access_ids[%d]: %q is not an HMAC access ID (GOOG and 20 to 57 upper-case letters and digits, as gcloud storage hmac list shows it)", lineOf(root, "posture", "allowed_hmac_access_ids", i), i, id)
		}
	}
	return nil
}

// splitTopic splits projects/P/topics/T.
func splitTopic(s string) (project, topic string, ok bool) {
	rest, ok := strings.CutPrefix(s, "projects/")
	if !ok {
		return "", "", false
	}
	project, topic, ok = strings.Cut(rest, "/topics/")
	if !ok || project == "" || topic == "" || strings.Contains(topic, "/") {
		return "", "", false
	}
	return project, topic, true
}

// posturePolicy is the validated posture: section as plain values (nil without one).
func (c *Config) posturePolicy() *policy.Posture {
	p := c.Posture
	if p == nil {
		return nil
	}
	out := &policy.Posture{Project: p.Project, Bucket: p.Bucket, Repair: p.Repair,
		AllowedHMACAccessIDs: append([]string(nil), p.AllowedHMACAccessIDs...)}
	if n := p.Notification; n != nil {
		project, topic, _ := splitTopic(n.Topic)
		out.Notification = &policy.PostureNotification{TopicProject: project, Topic: topic,
			EventTypes: append([]string(nil), n.EventTypes...), PayloadFormat: n.PayloadFormat, ObjectNamePrefix: n.ObjectNamePrefix}
	}
	return out
}
