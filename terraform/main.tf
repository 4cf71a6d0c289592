# tamperguard: a Cloud Function that re-hashes every generation written to the watched
# bucket, compares it with the digest in the maintainers' signed release, and puts the
# signed bytes back when they differ.
#
# Event path (see README.md, "Why Pub/Sub push subscriptions"):
#
#   watched bucket ──notification (finalize, metadata update, delete, archive)──▶ events topic
#   Cloud Scheduler ──{tamperguard=audit}──▶ audit topic
#   each topic ──push subscription (OIDC as the push service account, retries,
#                 dead letter after max_delivery_attempts)──▶ the function (internal ingress)

data "google_project" "this" {
  project_id = var.project_id
}

# The Cloud Storage service agent publishes the bucket's notifications.
data "google_storage_project_service_account" "gcs" {
  project = var.project_id

  depends_on = [google_project_service.apis]
}

locals {
  name = var.name_prefix

  watched_bucket = var.create_watched_bucket ? google_storage_bucket.watched[0].name : data.google_storage_bucket.watched[0].name
  state_bucket   = coalesce(var.state_bucket_name, "${var.project_id}-${var.name_prefix}-state")
  source_bucket  = "${var.project_id}-${var.name_prefix}-source"

  # Service agents of this project.
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  gcs_agent    = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"

  # The bucket where Cloud Functions stages the uploaded source for Cloud Build, which the
  # build service account must read (and nothing else in the project).
  gcf_sources_bucket = "gcf-v2-sources-${data.google_project.this.number}-${var.region}"

  labels = merge(var.labels, { "managed-by" = "terraform", "app" = "tamperguard" })

  # The notification config that feeds the function (events.tf), and what the posture
  # check expects to find on the watched bucket: one definition for both.
  notification = {
    topic          = "projects/${var.project_id}/topics/${google_pubsub_topic.events.name}"
    event_types    = ["OBJECT_FINALIZE", "OBJECT_METADATA_UPDATE", "OBJECT_DELETE", "OBJECT_ARCHIVE"]
    payload_format = "JSON_API_V1"
  }

  # The log view through which the runtime reads the watched bucket's Data Access entries
  # (audit_logs.tf), by its full resource name: the Logging API's entries:list takes it.
  audit_log_view = "projects/${var.project_id}/locations/${google_logging_project_bucket_config.audit.location}/buckets/${google_logging_project_bucket_config.audit.bucket_id}/views/${google_logging_log_view.watched_writes.name}"

  # tamperguard's configuration (internal/config): the typed rules with the watched bucket
  # filled in and unset fields left out, the state bucket, the release cache TTL, and what
  # the posture checks compare the watched bucket with.
  config = {
    release_ttl = var.release_ttl
    state       = { bucket = local.state_bucket }
    posture = {
      project = var.project_id
      bucket  = local.watched_bucket
      notification = merge(local.notification,
        var.watched_object_prefix != null ? { object_name_prefix = var.watched_object_prefix } : {},
      )
      repair                  = var.posture_repair
      allowed_hmac_access_ids = var.allowed_hmac_access_ids
    }
    rules = [for r in var.rules : merge(
      {
        bucket  = local.watched_bucket
        objects = r.objects
        release = { for k, v in r.release : k => v if v != null }
        keys = merge(
          { for k in ["openpgp", "ssh", "cosign"] : k => r.keys[k] if length(r.keys[k]) > 0 },
          length(r.keys.sigstore) > 0 ? { sigstore = [for id in r.keys.sigstore : { for k, v in id : k => v if v != null }] } : {},
          r.keys.threshold != null ? { threshold = r.keys.threshold } : {},
          r.keys.openpgp_allow_sha1_self_signatures_unsafe ? { openpgp_allow_sha1_self_signatures_unsafe = true } : {},
        )
        on_mismatch   = r.on_mismatch
        fallback      = r.fallback
        cache_control = r.cache_control
      },
      { for k, v in {
        metadata = { for mk, mv in r.metadata : mk => mv if mv != null }
        sigstore = { for sk, sv in r.sigstore : sk => sv if sv != null }
      } : k => v if length(v) > 0 },
    )]
  }
  config_yaml = yamlencode(local.config)

  # Plain environment: nothing here is secret (public keys, URLs, names). The deployment's
  # name goes into every alert's context; the audit log view only when the module turns the
  # Data Access logs on (without it the function says that attribution is off).
  function_env = merge(
    {
      TAMPERGUARD_CONFIG        = local.config_yaml
      TAMPERGUARD_LOG_LEVEL     = var.log_level
      TAMPERGUARD_MAX_EVENT_AGE = var.max_event_age
      TAMPERGUARD_DEPLOYMENT    = local.name
      # The project the request traces belong to: log lines carry logging.googleapis.com/trace.
      GOOGLE_CLOUD_PROJECT = var.project_id
    },
    var.storage_data_write_audit_logs ? { TAMPERGUARD_AUDIT_LOGS = local.audit_log_view } : {},
    try(var.slack.bot_token_secret, null) != null ? { SLACK_CHANNEL = var.slack.channel } : {},
  )

  # The Slack credential: from Secret Manager, a pinned version, never in plain environment.
  slack_secret = var.slack == null ? null : {
    key    = var.slack.bot_token_secret != null ? "SLACK_BOT_TOKEN" : "SLACK_WEBHOOK_URL"
    secret = coalesce(var.slack.bot_token_secret, var.slack.webhook_url_secret)
  }

  apis = toset(concat(
    [
      "artifactregistry.googleapis.com",
      "cloudbuild.googleapis.com",
      "cloudfunctions.googleapis.com",
      "cloudresourcemanager.googleapis.com",
      "cloudscheduler.googleapis.com",
      "iam.googleapis.com",
      "logging.googleapis.com",
      "monitoring.googleapis.com",
      "pubsub.googleapis.com",
      "run.googleapis.com",
      "storage.googleapis.com",
    ],
    var.slack != null ? ["secretmanager.googleapis.com"] : [],
    var.deny_hmac_keys || var.deny_service_account_keys ? ["orgpolicy.googleapis.com"] : [],
  ))
}

resource "google_project_service" "apis" {
  for_each = var.enable_apis ? local.apis : toset([])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
