# The module's security properties, checked by `terraform test` against a mocked google
# provider: no credentials, no network (terraform/check.sh runs it). Mocked runs use
# command = apply, because the function's URL and other computed values are unknown in a
# plan.

mock_provider "google" {}

# The provider validates what flows into IAM resources, so the mocked service accounts get
# well-formed identities.
override_resource {
  target = google_service_account.runtime
  values = {
    email  = "tamperguard-runtime@tg-test-project.iam.gserviceaccount.com"
    member = "serviceAccount:tamperguard-runtime@tg-test-project.iam.gserviceaccount.com"
    name   = "projects/tg-test-project/serviceAccounts/tamperguard-runtime@tg-test-project.iam.gserviceaccount.com"
    id     = "projects/tg-test-project/serviceAccounts/tamperguard-runtime@tg-test-project.iam.gserviceaccount.com"
  }
}

override_resource {
  target = google_service_account.push
  values = {
    email  = "tamperguard-push@tg-test-project.iam.gserviceaccount.com"
    member = "serviceAccount:tamperguard-push@tg-test-project.iam.gserviceaccount.com"
    name   = "projects/tg-test-project/serviceAccounts/tamperguard-push@tg-test-project.iam.gserviceaccount.com"
    id     = "projects/tg-test-project/serviceAccounts/tamperguard-push@tg-test-project.iam.gserviceaccount.com"
  }
}

override_resource {
  target = google_service_account.build
  values = {
    email  = "tamperguard-build@tg-test-project.iam.gserviceaccount.com"
    member = "serviceAccount:tamperguard-build@tg-test-project.iam.gserviceaccount.com"
    name   = "projects/tg-test-project/serviceAccounts/tamperguard-build@tg-test-project.iam.gserviceaccount.com"
    id     = "projects/tg-test-project/serviceAccounts/tamperguard-build@tg-test-project.iam.gserviceaccount.com"
  }
}

override_data {
  target = data.google_project.this
  values = {
    number = "123456789012"
  }
}

override_data {
  target = data.google_storage_project_service_account.gcs
  values = {
    email_address = "service-123456789012@gs-project-accounts.iam.gserviceaccount.com"
  }
}

variables {
  project_id          = "tg-test-project"
  region              = "us-central1"
  watched_bucket_name = "uploader-prod"
  function_source_zip = "tests/empty.zip"
  rules = [{
    objects = ["bash", "v*/linux/codecov"]
    release = {
      git       = "https://github.com/example/uploader.git"
      checksums = "SHA256SUMS"
    }
    keys = {
      ssh = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBpTb9ItestOnlyNotARealKeyAAAAAAAAAAAAAAAAAA release@example.org"]
    }
    metadata = {
      content_type = "text/x-shellscript"
    }
  }]
}

run "defaults" {
  command = apply

  # The function.
  assert {
    condition     = google_cloudfunctions2_function.this.build_config[0].runtime == "go126" && google_cloudfunctions2_function.this.build_config[0].entry_point == "VerifyObject"
    error_message = "The function must be built with runtime go126 and entry point VerifyObject."
  }
  assert {
    condition     = google_cloudfunctions2_function.this.service_config[0].ingress_settings == "ALLOW_INTERNAL_ONLY"
    error_message = "The function must accept internal traffic only."
  }
  assert {
    condition     = google_cloudfunctions2_function.this.service_config[0].service_account_email == google_service_account.runtime.email
    error_message = "The function must run as the dedicated runtime service account."
  }
  assert {
    condition     = google_cloudfunctions2_function.this.build_config[0].service_account == google_service_account.build.id && google_cloudfunctions2_function.this.build_config[0].docker_repository == google_artifact_registry_repository.functions.id
    error_message = "The function must be built by the dedicated build service account into the module's repository."
  }
  assert {
    condition     = google_cloudfunctions2_function.this.build_config[0].source[0].storage_source[0].object == "tamperguard-${filesha256("tests/empty.zip")}.zip"
    error_message = "The source object must be named after the archive's SHA-256."
  }
  assert {
    condition     = length(google_cloudfunctions2_function.this.service_config[0].secret_environment_variables) == 0 && length([for k in keys(google_cloudfunctions2_function.this.service_config[0].environment_variables) : k if startswith(k, "SLACK")]) == 0
    error_message = "Without slack, no Slack setting may reach the function."
  }

  # Scale: I/O-bound work, several requests per instance on one vCPU.
  assert {
    condition     = google_cloudfunctions2_function.this.service_config[0].max_instance_request_concurrency == 8 && google_cloudfunctions2_function.this.service_config[0].available_cpu == "1" && google_cloudfunctions2_function.this.service_config[0].available_memory == "1Gi" && google_cloudfunctions2_function.this.service_config[0].max_instance_count == 10 && google_cloudfunctions2_function.this.service_config[0].min_instance_count == 0
    error_message = "The function must default to 8 requests per instance on 1 vCPU and 1Gi, at most 10 instances, none kept idle."
  }

  # What the new alert and audit features read.
  assert {
    condition     = google_cloudfunctions2_function.this.service_config[0].environment_variables["TAMPERGUARD_DEPLOYMENT"] == "tamperguard"
    error_message = "The function must get the deployment's name (name_prefix) for the alerts' context."
  }
  assert {
    condition     = google_cloudfunctions2_function.this.service_config[0].environment_variables["GOOGLE_CLOUD_PROJECT"] == "tg-test-project"
    error_message = "The function must get its project, so that its log lines carry the request's trace."
  }
  assert {
    condition     = google_cloudfunctions2_function.this.service_config[0].environment_variables["TAMPERGUARD_AUDIT_LOGS"] == "projects/tg-test-project/locations/global/buckets/tamperguard-audit/views/tamperguard-watched-writes" && output.audit_log_view == google_cloudfunctions2_function.this.service_config[0].environment_variables["TAMPERGUARD_AUDIT_LOGS"]
    error_message = "The function must get the audit log view's full resource name, the audit_log_view output."
  }
  assert {
    condition = yamldecode(google_cloudfunctions2_function.this.service_config[0].environment_variables["TAMPERGUARD_CONFIG"]).posture == {
      project = "tg-test-project"
      bucket  = "uploader-prod"
      notification = {
        topic          = "projects/tg-test-project/topics/tamperguard-events"
        event_types    = ["OBJECT_FINALIZE", "OBJECT_METADATA_UPDATE", "OBJECT_DELETE", "OBJECT_ARCHIVE"]
        payload_format = "JSON_API_V1"
      }
      repair                  = false
      allowed_hmac_access_ids = []
    }
    error_message = "The configuration's posture section must describe the watched bucket and its notification config, repair off, no HMAC key allowed."
  }
  assert {
    condition     = toset(yamldecode(google_cloudfunctions2_function.this.service_config[0].environment_variables["TAMPERGUARD_CONFIG"]).posture.notification.event_types) == google_storage_notification.watched.event_types && yamldecode(google_cloudfunctions2_function.this.service_config[0].environment_variables["TAMPERGUARD_CONFIG"]).posture.notification.payload_format == google_storage_notification.watched.payload_format && yamldecode(google_cloudfunctions2_function.this.service_config[0].environment_variables["TAMPERGUARD_CONFIG"]).posture.notification.topic == "projects/tg-test-project/topics/${google_pubsub_topic.events.name}"
    error_message = "The posture check must expect the notification config the module creates."
  }

  # The configuration.
  assert {
    condition     = yamldecode(google_cloudfunctions2_function.this.service_config[0].environment_variables["TAMPERGUARD_CONFIG"]).rules[0].bucket == "uploader-prod"
    error_message = "Every rule must name the watched bucket."
  }
  assert {
    condition     = yamldecode(google_cloudfunctions2_function.this.service_config[0].environment_variables["TAMPERGUARD_CONFIG"]).state.bucket == "tg-test-project-tamperguard-state"
    error_message = "The configuration must name the module's state bucket."
  }
  assert {
    condition     = keys(yamldecode(google_cloudfunctions2_function.this.service_config[0].environment_variables["TAMPERGUARD_CONFIG"]).rules[0].release) == ["checksums", "git", "tag"]
    error_message = "Unset release fields must be left out of the configuration, and tag must default to latest."
  }
  assert {
    condition     = keys(yamldecode(google_cloudfunctions2_function.this.service_config[0].environment_variables["TAMPERGUARD_CONFIG"]).rules[0].keys) == ["ssh"] && yamldecode(google_cloudfunctions2_function.this.service_config[0].environment_variables["TAMPERGUARD_CONFIG"]).rules[0].metadata == { content_type = "text/x-shellscript" }
    error_message = "Empty key lists and unset metadata must be left out of the configuration."
  }

  # The watched bucket.
  assert {
    condition     = google_storage_bucket.watched[0].versioning[0].enabled && google_storage_bucket.watched[0].uniform_bucket_level_access && google_storage_bucket.watched[0].public_access_prevention == "enforced"
    error_message = "The watched bucket must be versioned, with uniform access, and not public by default."
  }
  assert {
    condition     = google_storage_bucket.watched[0].soft_delete_policy[0].retention_duration_seconds == 604800
    error_message = "Soft delete must stay on (7 days by default)."
  }
  assert {
    condition     = one(google_storage_bucket.watched[0].lifecycle_rule[0].condition).num_newer_versions == 10 && one(google_storage_bucket.watched[0].lifecycle_rule[0].condition).with_state == "ARCHIVED" && one(google_storage_bucket.watched[0].lifecycle_rule[0].action).type == "Delete"
    error_message = "The lifecycle rule must delete only noncurrent generations beyond the newest 10."
  }
  assert {
    condition     = length(google_storage_bucket_iam_member.public_read) == 0
    error_message = "Nothing may be public unless public_read is set."
  }
  assert {
    condition     = google_storage_bucket.state.versioning[0].enabled && google_storage_bucket.state.uniform_bucket_level_access && google_storage_bucket.state.public_access_prevention == "enforced"
    error_message = "The state bucket must be versioned, uniform, never public."
  }

  # Events: all four kinds, pushed with OIDC, retried, dead-lettered, never expiring.
  assert {
    condition     = google_storage_notification.watched.event_types == toset(["OBJECT_FINALIZE", "OBJECT_METADATA_UPDATE", "OBJECT_DELETE", "OBJECT_ARCHIVE"]) && google_storage_notification.watched.bucket == "uploader-prod" && google_storage_notification.watched.payload_format == "JSON_API_V1"
    error_message = "The notification must carry finalize, metadata update, delete and archive events of the watched bucket."
  }
  assert {
    condition = alltrue([for s in [google_pubsub_subscription.events, google_pubsub_subscription.audit] :
      s.push_config[0].oidc_token[0].service_account_email == google_service_account.push.email &&
      s.dead_letter_policy[0].dead_letter_topic == google_pubsub_topic.dead_letter.id &&
      s.dead_letter_policy[0].max_delivery_attempts == 15 &&
      s.retry_policy[0].minimum_backoff == "10s" &&
      s.expiration_policy[0].ttl == "" &&
      s.ack_deadline_seconds == 600
    ])
    error_message = "Both push subscriptions must authenticate as the push account, retry with backoff, dead-letter, and never expire."
  }
  assert {
    condition     = endswith(google_pubsub_subscription.events.push_config[0].push_endpoint, "/projects/tg-test-project/topics/tamperguard-events") && endswith(google_pubsub_subscription.audit.push_config[0].push_endpoint, "/projects/tg-test-project/topics/tamperguard-audit")
    error_message = "Push endpoints must carry the topic's path for the Functions Framework."
  }
  assert {
    condition     = google_cloud_scheduler_job.audit.schedule == "*/15 * * * *" && google_cloud_scheduler_job.audit.pubsub_target[0].attributes == tomap({ tamperguard = "audit" }) && google_cloud_scheduler_job.audit.pubsub_target[0].topic_name == google_pubsub_topic.audit.id
    error_message = "The audit must be requested every 15 minutes with the attribute tamperguard=audit."
  }

  # Who may do what.
  assert {
    condition     = google_project_iam_custom_role.object_guard.permissions == toset(["storage.objects.create", "storage.objects.delete", "storage.objects.get", "storage.objects.list", "storage.objects.update"])
    error_message = "The runtime's role must hold exactly the five object permissions."
  }
  assert {
    condition = alltrue([for m in [google_storage_bucket_iam_member.runtime_watched, google_storage_bucket_iam_member.runtime_state] :
    m.role == google_project_iam_custom_role.object_guard.id && m.member == google_service_account.runtime.member])
    error_message = "The runtime account must hold the object role on the two buckets."
  }
  assert {
    condition     = google_storage_bucket_iam_member.runtime_watched.bucket == "uploader-prod" && google_storage_bucket_iam_member.runtime_state.bucket == "tg-test-project-tamperguard-state"
    error_message = "The runtime's grants must be on the watched and state buckets."
  }
  assert {
    condition     = google_cloud_run_v2_service_iam_member.push_invoker.role == "roles/run.invoker" && google_cloud_run_v2_service_iam_member.push_invoker.member == google_service_account.push.member && google_cloud_run_v2_service_iam_member.push_invoker.name == google_cloudfunctions2_function.this.service_config[0].service
    error_message = "The push account must be able to invoke the function's service, and only that."
  }
  assert {
    condition     = google_pubsub_topic_iam_member.gcs_publishes_events.role == "roles/pubsub.publisher" && google_pubsub_topic_iam_member.gcs_publishes_events.member == "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
    error_message = "The Cloud Storage service agent must be able to publish the notifications."
  }
  assert {
    condition     = strcontains(google_project_iam_member.build_staged_source.condition[0].expression, "projects/_/buckets/gcf-v2-sources-") && google_project_iam_member.build_staged_source.role == "roles/storage.objectViewer"
    error_message = "The build account's project-level storage grant must be read-only and limited to the staging bucket."
  }
  assert {
    condition     = length(google_org_policy_policy.deny_hmac) == 0 && length(google_org_policy_policy.deny_service_account_keys) == 0
    error_message = "Organization policies are opt-in."
  }

  # Who wrote it: storage DATA_WRITE audit logs, the watched bucket's entries alone in the
  # module's log bucket, read by the runtime through one view.
  assert {
    condition     = google_project_iam_audit_config.storage[0].service == "storage.googleapis.com" && [for c in google_project_iam_audit_config.storage[0].audit_log_config : c.log_type] == ["DATA_WRITE"]
    error_message = "Storage DATA_WRITE audit logs must be on by default."
  }
  assert {
    condition     = google_logging_project_sink.audit.destination == "logging.googleapis.com/${google_logging_project_bucket_config.audit.id}" && strcontains(google_logging_project_sink.audit.filter, "resource.labels.bucket_name=\"uploader-prod\"") && strcontains(google_logging_project_sink.audit.filter, "log_id(\"cloudaudit.googleapis.com/data_access\")")
    error_message = "The audit sink must copy the watched bucket's Data Access entries, and only those, into the module's log bucket."
  }
  assert {
    condition     = google_logging_project_bucket_config.audit.bucket_id == "tamperguard-audit" && google_logging_project_bucket_config.audit.retention_days == 30
    error_message = "The audit log bucket must keep 30 days by default."
  }
  assert {
    condition = (google_logging_log_view_iam_member.runtime_audit_view.role == "roles/logging.viewAccessor" &&
      google_logging_log_view_iam_member.runtime_audit_view.member == google_service_account.runtime.member &&
      google_logging_log_view_iam_member.runtime_audit_view.parent == "projects/tg-test-project" &&
      google_logging_log_view_iam_member.runtime_audit_view.bucket == "tamperguard-audit" &&
    google_logging_log_view_iam_member.runtime_audit_view.name == "tamperguard-watched-writes")
    error_message = "The runtime must read the audit entries through the one view, granted on the view."
  }

  # Is it still guarded: the posture reads, on the watched bucket and (HMAC keys) the project.
  assert {
    condition     = google_project_iam_custom_role.posture_reader.permissions == toset(["storage.buckets.get", "storage.buckets.getIamPolicy"]) && google_storage_bucket_iam_member.runtime_posture.bucket == "uploader-prod" && google_storage_bucket_iam_member.runtime_posture.role == google_project_iam_custom_role.posture_reader.id && google_storage_bucket_iam_member.runtime_posture.member == google_service_account.runtime.member
    error_message = "The posture reads must be the bucket's settings and IAM policy, on the watched bucket only."
  }
  assert {
    condition     = google_project_iam_custom_role.hmac_key_lister.permissions == toset(["storage.hmacKeys.list"]) && google_project_iam_member.runtime_hmac_keys.role == google_project_iam_custom_role.hmac_key_lister.id && google_project_iam_member.runtime_hmac_keys.member == google_service_account.runtime.member
    error_message = "The runtime may list HMAC key metadata and nothing else project-wide."
  }
  assert {
    condition     = length(google_project_iam_custom_role.posture_repair) == 0 && length(google_storage_bucket_iam_member.runtime_posture_repair) == 0 && length(google_pubsub_topic.posture) == 0 && length(google_logging_project_sink.posture) == 0
    error_message = "Posture repair and the Admin Activity route are opt-in."
  }
}

run "posture_repair_and_route" {
  command = apply

  variables {
    posture_repair      = true
    posture_admin_route = true
  }

  override_resource {
    target = google_logging_project_sink.posture
    values = {
      writer_identity = "serviceAccount:service-123456789012@gcp-sa-logging.iam.gserviceaccount.com"
    }
  }

  assert {
    condition     = yamldecode(google_cloudfunctions2_function.this.service_config[0].environment_variables["TAMPERGUARD_CONFIG"]).posture.repair == true
    error_message = "posture_repair must reach the configuration's posture.repair."
  }
  assert {
    condition     = google_project_iam_custom_role.posture_repair[0].permissions == toset(["storage.buckets.update"]) && google_storage_bucket_iam_member.runtime_posture_repair[0].bucket == "uploader-prod" && google_storage_bucket_iam_member.runtime_posture_repair[0].member == google_service_account.runtime.member
    error_message = "posture_repair must grant bucket updates on the watched bucket only."
  }
  assert {
    condition     = google_logging_project_sink.posture[0].destination == "pubsub.googleapis.com/${google_pubsub_topic.posture[0].id}" && strcontains(google_logging_project_sink.posture[0].filter, "log_id(\"cloudaudit.googleapis.com/activity\")") && strcontains(google_logging_project_sink.posture[0].filter, "resource.labels.bucket_name=\"uploader-prod\"")
    error_message = "The Admin Activity route must send the watched bucket's Admin Activity entries to the posture topic."
  }
  assert {
    condition     = google_pubsub_topic_iam_member.posture_sink_publishes[0].member == google_logging_project_sink.posture[0].writer_identity && google_pubsub_topic_iam_member.posture_sink_publishes[0].role == "roles/pubsub.publisher" && google_pubsub_topic_iam_member.posture_sink_publishes[0].topic == google_pubsub_topic.posture[0].name
    error_message = "The sink's writer identity must publish to the posture topic only."
  }
  assert {
    condition = (endswith(google_pubsub_subscription.posture[0].push_config[0].push_endpoint, "/projects/tg-test-project/topics/tamperguard-posture") &&
      google_pubsub_subscription.posture[0].push_config[0].oidc_token[0].service_account_email == google_service_account.push.email &&
      google_pubsub_subscription.posture[0].dead_letter_policy[0].dead_letter_topic == google_pubsub_topic.dead_letter.id &&
    google_pubsub_subscription_iam_member.pubsub_forwards_dead_letters["posture"].role == "roles/pubsub.subscriber")
    error_message = "The posture subscription must push to the function like the other topics, with dead letters."
  }
}

run "audit_logs_managed_elsewhere" {
  command = apply

  variables {
    storage_data_write_audit_logs = false
  }

  assert {
    condition     = length(google_project_iam_audit_config.storage) == 0 && google_logging_log_view_iam_member.runtime_audit_view.role == "roles/logging.viewAccessor"
    error_message = "Without the audit config, the log bucket, view and grant stay."
  }
  assert {
    condition     = !contains(keys(google_cloudfunctions2_function.this.service_config[0].environment_variables), "TAMPERGUARD_AUDIT_LOGS")
    error_message = "Without the module's audit config, the function must not be told to read audit logs."
  }
}

# Event filtering at the source: the notification and the posture check both carry the
# prefix; a guarded object outside it is warned about (the audit alone judges it).
run "object_prefix" {
  command = apply

  variables {
    watched_object_prefix = "v"
  }

  expect_failures = [check.guarded_objects_inside_prefix]

  assert {
    condition     = google_storage_notification.watched.object_name_prefix == "v" && yamldecode(google_cloudfunctions2_function.this.service_config[0].environment_variables["TAMPERGUARD_CONFIG"]).posture.notification.object_name_prefix == "v"
    error_message = "The prefix must reach the notification config and the posture check's expectation."
  }
}

run "object_prefix_covers_every_rule" {
  command = apply

  variables {
    watched_object_prefix = "releases/"
    rules = [{
      objects = ["releases/bash", "releases/v*/linux/codecov", "releases/{tag}/codecov.sha256"]
      release = { git = "https://github.com/example/uploader.git" }
      keys    = { ssh = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBpTb9ItestOnlyNotARealKeyAAAAAAAAAAAAAAAAAA release@example.org"] }
    }]
    allowed_hmac_access_ids = ["GOOG1EEXAMPLEACCESSID0123456789"]
  }

  assert {
    condition     = length(local.objects_outside_prefix) == 0
    error_message = "Patterns whose fixed part starts with the prefix are inside it."
  }
  assert {
    condition     = yamldecode(google_cloudfunctions2_function.this.service_config[0].environment_variables["TAMPERGUARD_CONFIG"]).posture.allowed_hmac_access_ids == ["GOOG1EEXAMPLEACCESSID0123456789"]
    error_message = "Allowed HMAC access IDs must reach the configuration."
  }
}

run "object_prefix_glob_before_prefix" {
  command = plan

  variables {
    watched_object_prefix = "releases/"
    rules = [{
      objects = ["releases/bash", "rel*/codecov"]
      release = { git = "https://github.com/example/uploader.git" }
      keys    = { ssh = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBpTb9ItestOnlyNotARealKeyAAAAAAAAAAAAAAAAAA release@example.org"] }
    }]
  }

  expect_failures = [check.guarded_objects_inside_prefix]
}

run "openpgp_sha1_unsafe" {
  command = apply

  variables {
    rules = [{
      objects = ["bash"]
      release = { git = "https://github.com/example/uploader.git" }
      keys = {
        ssh                                       = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBpTb9ItestOnlyNotARealKeyAAAAAAAAAAAAAAAAAA release@example.org"]
        openpgp_allow_sha1_self_signatures_unsafe = true
      }
    }]
  }

  assert {
    condition     = yamldecode(google_cloudfunctions2_function.this.service_config[0].environment_variables["TAMPERGUARD_CONFIG"]).rules[0].keys == { ssh = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBpTb9ItestOnlyNotARealKeyAAAAAAAAAAAAAAAAAA release@example.org"], openpgp_allow_sha1_self_signatures_unsafe = true }
    error_message = "The unsafe SHA-1 self-signature switch must reach the configuration only when set."
  }
}

run "slack_bot_token" {
  command = apply

  variables {
    slack = {
      bot_token_secret = "tamperguard-slack-bot-token"
      secret_version   = "3"
      channel          = "C0123456789"
    }
  }

  assert {
    condition     = google_cloudfunctions2_function.this.service_config[0].secret_environment_variables[0].key == "SLACK_BOT_TOKEN" && google_cloudfunctions2_function.this.service_config[0].secret_environment_variables[0].secret == "tamperguard-slack-bot-token" && google_cloudfunctions2_function.this.service_config[0].secret_environment_variables[0].version == "3"
    error_message = "The bot token must come from Secret Manager, pinned to its version."
  }
  assert {
    condition     = google_cloudfunctions2_function.this.service_config[0].environment_variables["SLACK_CHANNEL"] == "C0123456789" && !contains(keys(google_cloudfunctions2_function.this.service_config[0].environment_variables), "SLACK_BOT_TOKEN")
    error_message = "Only the channel ID may be in the plain environment."
  }
  assert {
    condition     = google_secret_manager_secret_iam_member.runtime_slack[0].secret_id == "tamperguard-slack-bot-token" && google_secret_manager_secret_iam_member.runtime_slack[0].role == "roles/secretmanager.secretAccessor" && google_secret_manager_secret_iam_member.runtime_slack[0].member == google_service_account.runtime.member
    error_message = "The runtime account must be able to read that one secret."
  }
}

run "slack_webhook" {
  command = apply

  variables {
    slack = {
      webhook_url_secret = "tamperguard-slack-webhook"
      secret_version     = "1"
    }
  }

  assert {
    condition     = google_cloudfunctions2_function.this.service_config[0].secret_environment_variables[0].key == "SLACK_WEBHOOK_URL" && length([for k in keys(google_cloudfunctions2_function.this.service_config[0].environment_variables) : k if startswith(k, "SLACK")]) == 0
    error_message = "The webhook URL must come from Secret Manager only."
  }
}

run "public_read" {
  command = apply

  variables {
    public_read              = true
    public_access_prevention = "inherited"
  }

  assert {
    condition     = google_storage_bucket_iam_member.public_read[0].member == "allUsers" && google_storage_bucket_iam_member.public_read[0].role == "roles/storage.legacyObjectReader" && google_storage_bucket_iam_member.public_read[0].bucket == "uploader-prod"
    error_message = "Public read must be object reads of the watched bucket, without listing."
  }
}

run "existing_bucket" {
  command = apply

  variables {
    create_watched_bucket = false
  }

  override_data {
    target = data.google_storage_bucket.watched[0]
    values = {
      name                        = "uploader-prod"
      versioning                  = [{ enabled = true }]
      uniform_bucket_level_access = true
    }
  }

  assert {
    condition     = length(google_storage_bucket.watched) == 0 && google_storage_notification.watched.bucket == "uploader-prod" && google_storage_bucket_iam_member.runtime_watched.bucket == "uploader-prod"
    error_message = "An existing bucket must be watched and granted, not managed."
  }
}

run "existing_bucket_without_versioning" {
  command = plan

  variables {
    create_watched_bucket = false
  }

  override_data {
    target = data.google_storage_bucket.watched[0]
    values = {
      name                        = "uploader-prod"
      versioning                  = [{ enabled = false }]
      uniform_bucket_level_access = true
    }
  }

  expect_failures = [google_storage_notification.watched]
}

run "org_policies" {
  command = apply

  variables {
    deny_hmac_keys            = true
    deny_service_account_keys = true
  }

  assert {
    condition     = google_org_policy_policy.deny_hmac[0].name == "projects/tg-test-project/policies/storage.restrictAuthTypes" && google_org_policy_policy.deny_hmac[0].spec[0].rules[0].values[0].denied_values == tolist(["in:ALL_HMAC_SIGNED_REQUESTS"])
    error_message = "deny_hmac_keys must refuse HMAC-signed requests on the project."
  }
  assert {
    condition     = google_org_policy_policy.deny_service_account_keys[0].spec[0].rules[0].enforce == "TRUE"
    error_message = "deny_service_account_keys must enforce iam.disableServiceAccountKeyCreation."
  }
}

# Inputs that must be refused.

run "refuses_private_keys" {
  command = plan
  variables {
    rules = [{
      objects = ["bash"]
      release = { git = "https://github.com/example/uploader.git" }
      keys    = { openpgp = ["-----BEGIN PGP PRIVATE KEY BLOCK-----\n...\n-----END PGP PRIVATE KEY BLOCK-----\n"] }
    }]
  }
  expect_failures = [var.rules]
}

run "refuses_rules_without_keys" {
  command = plan
  variables {
    rules = [{
      objects = ["bash"]
      release = { git = "https://github.com/example/uploader.git" }
      keys    = {}
    }]
  }
  expect_failures = [var.rules]
}

run "refuses_key_paths" {
  command = plan
  variables {
    rules = [{
      objects = ["bash"]
      release = { git = "https://github.com/example/uploader.git" }
      keys    = { openpgp = ["keys/maintainers.asc"] }
    }]
  }
  expect_failures = [var.rules]
}

run "refuses_two_release_sources" {
  command = plan
  variables {
    rules = [{
      objects = ["bash"]
      release = { git = "https://github.com/example/uploader.git", url = "https://example.com/{tag}/SHA256SUMS" }
      keys    = { ssh = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBpTb9ItestOnlyNotARealKeyAAAAAAAAAAAAAAAAAA release@example.org"] }
    }]
  }
  expect_failures = [var.rules]
}

run "refuses_plain_http" {
  command = plan
  variables {
    rules = [{
      objects = ["bash"]
      release = { url = "http://example.com/{tag}/SHA256SUMS", tag = "v1.0.0" }
      keys    = { ssh = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBpTb9ItestOnlyNotARealKeyAAAAAAAAAAAAAAAAAA release@example.org"] }
    }]
  }
  expect_failures = [var.rules]
}

run "refuses_unpinned_secret" {
  command = plan
  variables {
    slack = {
      bot_token_secret = "tamperguard-slack-bot-token"
      secret_version   = "latest"
      channel          = "C0123456789"
    }
  }
  expect_failures = [var.slack]
}

run "refuses_public_enforced_bucket" {
  command = plan
  variables {
    public_read = true
  }
  expect_failures = [var.public_access_prevention]
}

run "refuses_state_bucket_equal_to_watched" {
  command = plan
  variables {
    state_bucket_name = "uploader-prod"
  }
  expect_failures = [var.state_bucket_name]
}

run "refuses_concurrency_below_one_cpu" {
  command = plan
  variables {
    function_cpu = "0.583"
  }
  expect_failures = [var.max_instance_request_concurrency]
}

run "refuses_min_instances_above_max" {
  command = plan
  variables {
    min_instance_count = 3
    max_instance_count = 2
  }
  expect_failures = [var.min_instance_count]
}

run "refuses_hmac_secret_as_access_id" {
  command = plan
  variables {
    allowed_hmac_access_ids = ["bGoa+V7g/yqDXvKRqq+JTFn4uQZbPiQJo4pf9RzJ"]
  }
  expect_failures = [var.allowed_hmac_access_ids]
}
