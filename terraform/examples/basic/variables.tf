# The example's inputs. Those that the module also has carry the module's name and default;
# the others describe the one rule this example deploys.

variable "project_id" {
  type        = string
  description = "Project that holds the bucket and runs tamperguard."
}

variable "region" {
  type        = string
  description = "Region of the function (inside or next to the bucket's location)."
  default     = "us-central1"
}

variable "function_source_zip" {
  type        = string
  description = "The archive written by `tamperguard package -o function.zip`."
  default     = "function.zip"
}

variable "watched_bucket_name" {
  type        = string
  description = "The bucket whose objects are published."
}

variable "create_watched_bucket" {
  type        = bool
  description = "Create the bucket (true) or watch an existing one, which must have versioning and uniform bucket-level access on (false)."
  default     = true
}

variable "public_read" {
  type        = bool
  description = "Let anyone download (not list) the bucket's objects, when the module creates the bucket. Off by default, like the module."
  default     = false
}

variable "objects" {
  type        = list(string)
  description = "Guarded object names or globs."
  default     = ["install.sh"]
}

variable "release_git" {
  type        = string
  description = "HTTPS URL of the repository whose signed annotated tags are the releases."
}

variable "release_checksums" {
  type        = string
  description = "Checksum file (sha256sum format) in each tagged tree."
  default     = "SHA256SUMS"
}

variable "openpgp_key_files" {
  type        = list(string)
  description = "Files holding the maintainers' armored OpenPGP public keys."
  default     = []
}

variable "ssh_keys" {
  type        = list(string)
  description = "The maintainers' SSH signing public keys, as authorized_keys lines."
  default     = []
}

variable "slack" {
  type = object({
    bot_token_secret   = optional(string)
    webhook_url_secret = optional(string)
    secret_version     = string
    channel            = optional(string)
  })
  description = "Slack alerting, as the module takes it: an incoming webhook (webhook_url_secret) or a bot token (bot_token_secret and channel, a channel ID), each a Secret Manager secret ID pinned to secret_version. null: alerts go to the log and Cloud Monitoring only."
  default     = null
}

variable "notification_channels" {
  type        = list(string)
  description = "Cloud Monitoring notification channels for the alert policies."
  default     = []
}

variable "deny_hmac_keys" {
  type        = bool
  description = "Refuse HMAC-signed Cloud Storage requests in the project (needs org-policy rights; recommended)."
  default     = false
}
