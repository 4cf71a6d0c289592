# Alerting that does not depend on Slack: the function logs every tampered or missing object
# (and a configuration that stops it from starting) at CRITICAL; events that keep failing end
# up on the dead-letter topic; a watcher that stopped finishing audits is itself an incident.

locals {
  function_logs = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${google_cloudfunctions2_function.this.name}\"",
  ])
}

resource "google_logging_metric" "critical" {
  project     = var.project_id
  name        = "${local.name}-critical"
  description = "tamperguard's CRITICAL log lines: a tampered or missing object, or an instance that cannot start."
  filter      = "${local.function_logs} AND severity>=CRITICAL"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key         = "verdict"
      value_type  = "STRING"
      description = "tampered, missing, or empty for a start failure."
    }
  }
  label_extractors = {
    verdict = "EXTRACT(jsonPayload.verdict)"
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "audits" {
  project     = var.project_id
  name        = "${local.name}-audits"
  description = "Audits that tamperguard finished (every rule's objects judged)."
  filter      = "${local.function_logs} AND jsonPayload.message=~\"^audit finished\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "tampering" {
  project               = var.project_id
  display_name          = "tamperguard: tampered or missing object in gs://${local.watched_bucket}"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "tamperguard logged a CRITICAL line"
    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.critical.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.verdict"]
      }
      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "tamperguard: CRITICAL in gs://${local.watched_bucket}"
    content   = <<-EOT
      tamperguard found an object in gs://${local.watched_bucket} that is not what the signed
      release says (or is gone), or an instance could not start with its configuration.
      Read the CRITICAL lines: `${local.function_logs} AND severity>=CRITICAL`. They say which
      generation, the expected and actual SHA-256, the action taken (restored, quarantined,
      alerted) and where the evidence copy is (gs://${local.state_bucket}).
      Then: who could write the bucket? (`gcloud storage buckets get-iam-policy`, HMAC keys,
      service account keys.)
    EOT
  }
}

resource "google_monitoring_alert_policy" "undeliverable" {
  project               = var.project_id
  display_name          = "tamperguard: events the function could not handle"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "messages on the dead-letter subscription"
    condition_threshold {
      filter          = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${google_pubsub_subscription.dead_letter.name}\" AND metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "tamperguard: undeliverable events"
    content   = <<-EOT
      Events or audit requests failed ${var.max_delivery_attempts} times and were moved to
      ${google_pubsub_topic.dead_letter.id}; they are kept for 7 days on the subscription
      ${google_pubsub_subscription.dead_letter.id}. The function's ERROR lines say why
      (an unreachable release host, the state bucket). The scheduled audit still judges the
      objects; pull the messages once the cause is fixed.
    EOT
  }
}

resource "google_monitoring_alert_policy" "silent" {
  project               = var.project_id
  display_name          = "tamperguard: no finished audit for an hour"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "no \"audit finished\" line"
    condition_absent {
      filter   = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.audits.name}\""
      duration = "3600s"
      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "tamperguard: the watcher is silent"
    content   = <<-EOT
      tamperguard has not finished an audit of gs://${local.watched_bucket} for an hour
      (schedule: `${var.audit_schedule}`). A watcher that does not run protects nothing: check
      the scheduler job ${google_cloud_scheduler_job.audit.id}, the function's logs, and the
      dead-letter subscription.
    EOT
  }
}
