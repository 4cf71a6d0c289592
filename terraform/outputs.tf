output "function_name" {
  description = "Name of the Cloud Function (and of its Cloud Run service)."
  value       = google_cloudfunctions2_function.this.name
}

output "function_uri" {
  description = "URL of the function; it accepts only internal traffic with run.invoker (the push subscriptions)."
  value       = google_cloudfunctions2_function.this.service_config[0].uri
}

output "source_object" {
  description = "The uploaded source archive, gs://BUCKET/tamperguard-SHA256.zip."
  value       = "gs://${google_storage_bucket_object.source.bucket}/${google_storage_bucket_object.source.name}"
}

output "watched_bucket" {
  description = "Name of the watched bucket."
  value       = local.watched_bucket
}

output "state_bucket" {
  description = "Name of the bucket that holds tamperguard's incidents and evidence copies."
  value       = google_storage_bucket.state.name
}

output "runtime_service_account" {
  description = "Email of the function's runtime service account."
  value       = google_service_account.runtime.email
}

output "push_service_account" {
  description = "Email of the service account that signs the push deliveries to the function."
  value       = google_service_account.push.email
}

output "build_service_account" {
  description = "Email of the service account Cloud Build uses to build the function."
  value       = google_service_account.build.email
}

output "events_topic" {
  description = "Pub/Sub topic that receives the watched bucket's notifications."
  value       = google_pubsub_topic.events.id
}

output "audit_topic" {
  description = "Pub/Sub topic of the audit requests; publish a message with attribute tamperguard=audit to run an audit now."
  value       = google_pubsub_topic.audit.id
}

output "dead_letter_subscription" {
  description = "Subscription that keeps undeliverable events and audit requests for 7 days."
  value       = google_pubsub_subscription.dead_letter.id
}

output "config_yaml" {
  description = "The configuration given to the function as TAMPERGUARD_CONFIG (public keys and URLs; nothing secret)."
  value       = local.config_yaml
}

output "audit_log_view" {
  description = "The log view the runtime account may read, projects/P/locations/L/buckets/B/views/V: the watched bucket's Data Access audit entries (the resource name for the Logging API's entries:list; the function's TAMPERGUARD_AUDIT_LOGS when storage_data_write_audit_logs is on)."
  value       = local.audit_log_view
}

output "posture_topic" {
  description = "Pub/Sub topic of the watched bucket's Admin Activity audit entries (null unless posture_admin_route)."
  value       = var.posture_admin_route ? google_pubsub_topic.posture[0].id : null
}
