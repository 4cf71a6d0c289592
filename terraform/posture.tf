# Is the bucket still guarded: what the posture checks read (the watched bucket's settings,
# IAM policy and notification configs; the project's HMAC keys), what posture.repair may
# change, and the optional real-time route of the bucket's Admin Activity audit entries to
# the function (see README.md, "Is the bucket still guarded: posture").

# Bucket attributes (versioning, soft delete, uniform access, public access prevention,
# retention) and notification configs need storage.buckets.get; the IAM policy needs
# storage.buckets.getIamPolicy. Granted on the watched bucket only.
resource "google_project_iam_custom_role" "posture_reader" {
  project     = var.project_id
  role_id     = "${replace(local.name, "-", "_")}_postureReader"
  title       = "tamperguard posture reader"
  description = "Read a bucket's settings, notification configs and IAM policy; granted on single buckets only."
  permissions = [
    "storage.buckets.get",
    "storage.buckets.getIamPolicy",
  ]

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_iam_member" "runtime_posture" {
  bucket = local.watched_bucket
  role   = google_project_iam_custom_role.posture_reader.id
  member = google_service_account.runtime.member
}

# HMAC keys belong to the project, not to a bucket: listing them (their access IDs, service
# accounts and states; never a secret) can only be granted on the project.
resource "google_project_iam_custom_role" "hmac_key_lister" {
  project     = var.project_id
  role_id     = "${replace(local.name, "-", "_")}_hmacKeyLister"
  title       = "tamperguard HMAC key lister"
  description = "List the metadata of the project's HMAC keys (no secrets, no changes)."
  permissions = ["storage.hmacKeys.list"]

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "runtime_hmac_keys" {
  project = var.project_id
  role    = google_project_iam_custom_role.hmac_key_lister.id
  member  = google_service_account.runtime.member
}

# posture.repair: turning versioning back on and creating a notification config both need
# storage.buckets.update, which also allows every other bucket setting to be changed
# (lifecycle rules included). Off by default; on the watched bucket only when asked for.
resource "google_project_iam_custom_role" "posture_repair" {
  count = var.posture_repair ? 1 : 0

  project     = var.project_id
  role_id     = "${replace(local.name, "-", "_")}_postureRepair"
  title       = "tamperguard posture repair"
  description = "Update a bucket's settings (re-enable versioning, re-create a notification config); granted on single buckets only."
  permissions = ["storage.buckets.update"]

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_iam_member" "runtime_posture_repair" {
  count = var.posture_repair ? 1 : 0

  bucket = local.watched_bucket
  role   = google_project_iam_custom_role.posture_repair[0].id
  member = google_service_account.runtime.member
}

# --- the Admin Activity route (optional) -------------------------------------------------

locals {
  # Admin Activity entries are always written: bucket settings, IAM policy and notification
  # changes of the watched bucket, and HMAC key changes in the project.
  posture_route_filter = join(" AND ", [
    "log_id(\"cloudaudit.googleapis.com/activity\")",
    "protoPayload.serviceName=\"storage.googleapis.com\"",
    "((resource.type=\"gcs_bucket\" AND resource.labels.bucket_name=\"${local.watched_bucket}\") OR protoPayload.methodName:\"storage.hmacKeys.\")",
  ])
}

resource "google_pubsub_topic" "posture" {
  count = var.posture_admin_route ? 1 : 0

  project = var.project_id
  name    = "${local.name}-posture"
  labels  = local.labels

  depends_on = [google_project_service.apis]
}

resource "google_logging_project_sink" "posture" {
  count = var.posture_admin_route ? 1 : 0

  project                = var.project_id
  name                   = "${local.name}-posture"
  description            = "Admin Activity audit entries of gs://${local.watched_bucket} (and HMAC key changes) for tamperguard's posture checks."
  destination            = "pubsub.googleapis.com/${google_pubsub_topic.posture[0].id}"
  filter                 = local.posture_route_filter
  unique_writer_identity = true
}

# The sink's own identity publishes to that one topic.
resource "google_pubsub_topic_iam_member" "posture_sink_publishes" {
  count = var.posture_admin_route ? 1 : 0

  project = var.project_id
  topic   = google_pubsub_topic.posture[0].name
  role    = "roles/pubsub.publisher"
  member  = google_logging_project_sink.posture[0].writer_identity
}

resource "google_pubsub_subscription" "posture" {
  count = var.posture_admin_route ? 1 : 0

  project = var.project_id
  name    = "${local.name}-posture-push"
  topic   = google_pubsub_topic.posture[0].id
  labels  = local.labels

  ack_deadline_seconds = 600
  # A stale posture hint is worthless once the next audit has run.
  message_retention_duration = "3600s"

  push_config {
    push_endpoint = "${local.push_base}/projects/${var.project_id}/topics/${google_pubsub_topic.posture[0].name}"
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
