output "function_name" {
  description = "The deployed function."
  value       = module.tamperguard.function_name
}

output "source_object" {
  description = "The uploaded archive, named by its SHA-256."
  value       = module.tamperguard.source_object
}

output "state_bucket" {
  description = "Where incidents and evidence copies go."
  value       = module.tamperguard.state_bucket
}

output "audit_topic" {
  description = "Publish {tamperguard=audit} here to audit now."
  value       = module.tamperguard.audit_topic
}

output "watched_bucket" {
  description = "The guarded bucket."
  value       = module.tamperguard.watched_bucket
}

output "config_yaml" {
  description = "The function's configuration, for the CLI: TAMPERGUARD_CONFIG=\"$(terraform output -raw config_yaml)\" tamperguard check gs://BUCKET/OBJECT."
  value       = module.tamperguard.config_yaml
}
