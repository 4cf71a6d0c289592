# Identities and what each may do. No keys are created for any of them: the function, the
# push subscriptions and the build get short-lived tokens from the platform.
#
#   runtime  the function itself: read, write, delete and re-metadata objects in the watched
#            bucket and the state bucket (a custom role, on those two buckets only); read the
#            one Slack secret; read the watched bucket's audit entries through one log view
#            (audit_logs.tf); read the watched bucket's settings and list the project's HMAC
#            keys, and with posture_repair update the watched bucket's settings (posture.tf).
#   push     the identity of the push subscriptions' OIDC tokens: invoke the function's
#            Cloud Run service, nothing else.
#   build    Cloud Build's identity when it builds the function: write build logs, push to
#            the module's image repository, read the staged source.

resource "google_service_account" "runtime" {
  project      = var.project_id
  account_id   = "${local.name}-runtime"
  display_name = "tamperguard function (runtime)"
  description  = "Runs the tamperguard function: objects of the watched and state buckets only."

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "push" {
  project      = var.project_id
  account_id   = "${local.name}-push"
  display_name = "tamperguard event delivery"
  description  = "Signs the Pub/Sub push requests to the tamperguard function: run.invoker on it only."

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${local.name}-build"
  display_name = "tamperguard function build"
  description  = "Cloud Build identity for the tamperguard function: logs, its image repository, the staged source."

  depends_on = [google_project_service.apis]
}

# --- runtime ----------------------------------------------------------------------------------

# Exactly what the engine does to objects: read a generation and its attributes (get), list
# generations (list), write a restored or evidence copy (create; replacing a live object also
# needs delete), quarantine (delete), put protected metadata back (update). Not the
# storage.objectAdmin extras: no IAM, retention or hold changes, no restoring soft-deleted
# objects, no bucket access.
resource "google_project_iam_custom_role" "object_guard" {
  project     = var.project_id
  role_id     = "${replace(local.name, "-", "_")}_objectGuard"
  title       = "tamperguard object guard"
  description = "Read, write, delete and update objects; granted on single buckets only."
  permissions = [
    "storage.objects.create",
    "storage.objects.delete",
    "storage.objects.get",
    "storage.objects.list",
    "storage.objects.update",
  ]

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_iam_member" "runtime_watched" {
  bucket = local.watched_bucket
  role   = google_project_iam_custom_role.object_guard.id
  member = google_service_account.runtime.member
}

resource "google_storage_bucket_iam_member" "runtime_state" {
  bucket = google_storage_bucket.state.name
  role   = google_project_iam_custom_role.object_guard.id
  member = google_service_account.runtime.member
}

resource "google_secret_manager_secret_iam_member" "runtime_slack" {
  count = local.slack_secret != null ? 1 : 0

  project   = var.project_id
  secret_id = local.slack_secret.secret
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.runtime.member

  depends_on = [google_project_service.apis]
}

# --- push -------------------------------------------------------------------------------------

resource "google_cloud_run_v2_service_iam_member" "push_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this.service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.push.member
}

# Pub/Sub mints the push requests' OIDC tokens as the push account (needed explicitly in
# projects created before April 2021); granted on that one account.
resource "google_service_account_iam_member" "pubsub_mints_push_tokens" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent

  depends_on = [google_pubsub_topic.events]
}

# --- build ------------------------------------------------------------------------------------

resource "google_project_iam_member" "build_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.build.member
}

resource "google_artifact_registry_repository_iam_member" "build_images" {
  project    = var.project_id
  location   = var.region
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}

# Cloud Functions copies the archive to its staging bucket, which the build then reads. That
# bucket is created on the first deployment in the region, so the grant is made on the
# project with a condition naming the bucket: read-only, that bucket alone.
resource "google_project_iam_member" "build_staged_source" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = google_service_account.build.member

  condition {
    title       = "gcf-v2-sources-only"
    description = "Only the Cloud Functions source staging bucket of the region."
    expression  = "resource.name == \"projects/_/buckets/${local.gcf_sources_bucket}\" || resource.name.startsWith(\"projects/_/buckets/${local.gcf_sources_bucket}/\")"
  }
}

resource "google_storage_bucket_iam_member" "build_source" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

# --- service agents ---------------------------------------------------------------------------

# The Cloud Storage service agent publishes the watched bucket's notifications.
resource "google_pubsub_topic_iam_member" "gcs_publishes_events" {
  project = var.project_id
  topic   = google_pubsub_topic.events.name
  role    = "roles/pubsub.publisher"
  member  = local.gcs_agent
}

# The Pub/Sub service agent moves undeliverable messages to the dead-letter topic: it must
# publish there and acknowledge them on the subscriptions they came from.
resource "google_pubsub_topic_iam_member" "pubsub_publishes_dead_letters" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "pubsub_forwards_dead_letters" {
  for_each = merge(
    {
      events = google_pubsub_subscription.events.name
      audit  = google_pubsub_subscription.audit.name
    },
    var.posture_admin_route ? { posture = google_pubsub_subscription.posture[0].name } : {},
  )

  project      = var.project_id
  subscription = each.value
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}
