# The function: built by Cloud Build (as the build account) from the uploaded archive into
# the module's own image repository, run as the runtime account, reachable only from inside
# the project (the push subscriptions) and only with run.invoker.

resource "google_artifact_registry_repository" "functions" {
  project       = var.project_id
  location      = var.region
  repository_id = "${local.name}-images"
  description   = "Images of the tamperguard function."
  format        = "DOCKER"
  labels        = local.labels

  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 5
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_cloudfunctions2_function" "this" {
  project     = var.project_id
  location    = var.region
  name        = local.name
  description = "tamperguard: puts back the signed bytes of gs://${local.watched_bucket} objects that do not match their signed release."
  labels      = local.labels

  build_config {
    runtime           = "go126"
    entry_point       = "VerifyObject"
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket_object.source.bucket
        object = google_storage_bucket_object.source.name
      }
    }

    # Security patches of the base image are applied without a redeploy.
    automatic_update_policy {}
  }

  service_config {
    service_account_email            = google_service_account.runtime.email
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    available_memory                 = var.function_memory
    available_cpu                    = var.function_cpu
    timeout_seconds                  = var.function_timeout_seconds
    max_instance_request_concurrency = var.max_instance_request_concurrency
    max_instance_count               = var.max_instance_count
    min_instance_count               = var.min_instance_count

    environment_variables = local.function_env

    dynamic "secret_environment_variables" {
      for_each = local.slack_secret != null ? [local.slack_secret] : []
      content {
        key        = secret_environment_variables.value.key
        project_id = var.project_id
        secret     = secret_environment_variables.value.secret
        version    = var.slack.secret_version
      }
    }
  }

  lifecycle {
    precondition {
      condition     = length(local.config_yaml) <= 32768
      error_message = "The rendered configuration is longer than 32 KiB, the limit of one environment variable: pin fewer or smaller keys."
    }
  }

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.build_logs,
    google_project_iam_member.build_staged_source,
    google_artifact_registry_repository_iam_member.build_images,
    google_storage_bucket_iam_member.build_source,
    google_storage_bucket_iam_member.runtime_watched,
    google_storage_bucket_iam_member.runtime_state,
    google_secret_manager_secret_iam_member.runtime_slack,
    google_logging_log_view_iam_member.runtime_audit_view,
  ]
}
