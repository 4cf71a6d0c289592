# Who wrote an object: Cloud Audit Logs Data Access (DATA_WRITE) entries of the watched
# bucket, copied into a log bucket of their own and read by the runtime account through one
# log view (see README.md, "Who wrote it: audit logs").
#
#   storage DATA_WRITE audit logs (project-wide switch)
#        │  sink <prefix>-audit: the watched bucket's Data Access entries only
#        ▼
#   log bucket <prefix>-audit ── view <prefix>-watched-writes ── roles/logging.viewAccessor
#                                                                 for the runtime, on the view

# Data Access logs are switched on per service, never per bucket: this turns on DATA_WRITE
# for all of Cloud Storage in the project. The resource is authoritative for the
# storage.googleapis.com audit config of the project (an ADMIN_READ or DATA_READ set for
# storage on the project elsewhere is replaced); configs inherited from folders and the
# organization are added on top by the platform and are not touched.
resource "google_project_iam_audit_config" "storage" {
  count = var.storage_data_write_audit_logs ? 1 : 0

  project = var.project_id
  service = "storage.googleapis.com"

  audit_log_config {
    log_type = "DATA_WRITE"
  }
}

locals {
  # The watched bucket's Data Access entries (writes, and reads if DATA_READ is on). The
  # view's filter cannot name a bucket (views filter only on source, resource type and log
  # ID), so the sink is what keeps other buckets' entries out of the log bucket.
  audit_sink_filter = join(" AND ", [
    "log_id(\"cloudaudit.googleapis.com/data_access\")",
    "protoPayload.serviceName=\"storage.googleapis.com\"",
    "resource.type=\"gcs_bucket\"",
    "resource.labels.bucket_name=\"${local.watched_bucket}\"",
  ])
}

resource "google_logging_project_bucket_config" "audit" {
  project        = var.project_id
  location       = "global"
  bucket_id      = "${local.name}-audit"
  retention_days = var.audit_log_retention_days
  description    = "Cloud Audit Logs Data Access entries of gs://${local.watched_bucket}, read by tamperguard to name who wrote an object."

  depends_on = [google_project_service.apis]
}

# A sink into a log bucket of the same project needs no grant for its writer identity.
resource "google_logging_project_sink" "audit" {
  project                = var.project_id
  name                   = "${local.name}-audit"
  description            = "Data Access audit entries of gs://${local.watched_bucket} for tamperguard."
  destination            = "logging.googleapis.com/${google_logging_project_bucket_config.audit.id}"
  filter                 = local.audit_sink_filter
  unique_writer_identity = true
}

resource "google_logging_log_view" "watched_writes" {
  name        = "${local.name}-watched-writes"
  bucket      = google_logging_project_bucket_config.audit.id
  description = "Cloud Storage Data Access entries in the tamperguard audit log bucket."
  filter      = "SOURCE(\"projects/${var.project_id}\") AND resource.type = \"gcs_bucket\" AND LOG_ID(\"cloudaudit.googleapis.com/data_access\")"
}

# The runtime reads that view and nothing else of Cloud Logging: a grant on the view
# itself, not roles/logging.viewAccessor (or privateLogViewer) on the project, which would
# open every log bucket of the project, Data Access logs included.
resource "google_logging_log_view_iam_member" "runtime_audit_view" {
  parent   = "projects/${var.project_id}"
  location = google_logging_project_bucket_config.audit.location
  bucket   = google_logging_project_bucket_config.audit.bucket_id
  name     = google_logging_log_view.watched_writes.name
  role     = "roles/logging.viewAccessor"
  member   = google_service_account.runtime.member
}
