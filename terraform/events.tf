# How events reach the function: the watched bucket's notifications and the scheduled audit
# requests go through Pub/Sub topics, and push subscriptions deliver them to the function,
# retrying with backoff while it answers with an error, and moving what keeps failing to the
# dead-letter topic.

resource "google_pubsub_topic" "events" {
  project = var.project_id
  name    = "${local.name}-events"
  labels  = local.labels

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "audit" {
  project = var.project_id
  name    = "${local.name}-audit"
  labels  = local.labels

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "dead_letter" {
  project = var.project_id
  name    = "${local.name}-dead-letter"
  labels  = local.labels

  depends_on = [google_project_service.apis]
}

# All four kinds (local.notification, which the posture check also expects): in a versioned
# bucket, deleting the live object is an OBJECT_ARCHIVE, and an overwrite is a finalize of
# the new generation (overwroteGeneration) plus an archive of the old one
# (overwrittenByGeneration). With watched_object_prefix, objects outside the prefix send
# nothing: only the scheduled audit judges them.
resource "google_storage_notification" "watched" {
  bucket             = local.watched_bucket
  topic              = google_pubsub_topic.events.id
  payload_format     = local.notification.payload_format
  event_types        = local.notification.event_types
  object_name_prefix = var.watched_object_prefix

  lifecycle {
    precondition {
      condition     = var.create_watched_bucket || try(data.google_storage_bucket.watched[0].versioning[0].enabled, false)
      error_message = "The existing watched bucket has no object versioning: tamperguard restores from noncurrent generations and keeps bad ones as evidence. Turn it on (gcloud storage buckets update gs://BUCKET --versioning) and apply again."
    }
    precondition {
      condition     = var.create_watched_bucket || try(data.google_storage_bucket.watched[0].uniform_bucket_level_access, false)
      error_message = "The existing watched bucket has fine-grained (ACL) access: turn on uniform bucket-level access so that IAM alone says who can write it."
    }
  }

  depends_on = [google_pubsub_topic_iam_member.gcs_publishes_events]
}

locals {
  # The function's URL: the OIDC audience. The push endpoints append the topic's path, from
  # which the Functions Framework names the source of the CloudEvent.
  push_base = google_cloudfunctions2_function.this.service_config[0].uri
}

resource "google_pubsub_subscription" "events" {
  project = var.project_id
  name    = "${local.name}-events-push"
  topic   = google_pubsub_topic.events.id
  labels  = local.labels

  ack_deadline_seconds = 600
  # Events are acted on for max_event_age (24h by default); kept as long.
  message_retention_duration = "86400s"

  push_config {
    push_endpoint = "${local.push_base}/projects/${var.project_id}/topics/${google_pubsub_topic.events.name}"
    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = local.push_base
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  # Never expire: a quiet bucket must not lose its subscription after 31 idle days.
  expiration_policy {
    ttl = ""
  }

  depends_on = [google_cloud_run_v2_service_iam_member.push_invoker, google_service_account_iam_member.pubsub_mints_push_tokens]
}

resource "google_pubsub_subscription" "audit" {
  project = var.project_id
  name    = "${local.name}-audit-push"
  topic   = google_pubsub_topic.audit.id
  labels  = local.labels

  ack_deadline_seconds = 600
  # An audit request is stale once the next one is sent.
  message_retention_duration = "3600s"

  push_config {
    push_endpoint = "${local.push_base}/projects/${var.project_id}/topics/${google_pubsub_topic.audit.name}"
    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = local.push_base
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [google_cloud_run_v2_service_iam_member.push_invoker, google_service_account_iam_member.pubsub_mints_push_tokens]
}

# What lands on the dead-letter topic is kept here for a week (a topic alone keeps nothing),
# and the "undeliverable events" alert policy watches it.
resource "google_pubsub_subscription" "dead_letter" {
  project = var.project_id
  name    = "${local.name}-dead-letter"
  topic   = google_pubsub_topic.dead_letter.id
  labels  = local.labels

  message_retention_duration = "604800s"
  retain_acked_messages      = true
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = ""
  }
}

# The safety net: a full audit of every rule every 15 minutes by default.
resource "google_cloud_scheduler_job" "audit" {
  project     = var.project_id
  region      = var.region
  name        = "${local.name}-audit"
  description = "Asks tamperguard for a full audit of gs://${local.watched_bucket}."
  schedule    = var.audit_schedule
  time_zone   = var.audit_time_zone

  pubsub_target {
    topic_name = google_pubsub_topic.audit.id
    data       = base64encode("audit")
    attributes = {
      tamperguard = "audit"
    }
  }

  depends_on = [google_project_service.apis]
}

locals {
  # Guarded object patterns whose fixed beginning (up to the first glob character or {tag})
  # does not start with watched_object_prefix: some of their objects send no event.
  objects_outside_prefix = var.watched_object_prefix == null ? [] : distinct(flatten([
    for r in var.rules : [for o in r.objects : o if !startswith(regex("^[^*?\\[\\\\{]*", o), var.watched_object_prefix)]
  ]))
}
