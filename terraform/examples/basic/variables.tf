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

variable "bucket_name" {
  type        = string
  description = "The bucket whose objects are published."
}

variable "create_bucket" {
  type        = bool
  description = "Create the bucket (true) or watch an existing, versioned one (false)."
  default     = true
}

variable "public_read" {
  type        = bool
  description = "Let anyone download the bucket's objects."
  default     = true
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

variable "slack_bot_token_secret" {
  type        = string
  description = "Secret Manager secret ID holding the Slack bot token (null: no Slack)."
  default     = null
}

variable "slack_secret_version" {
  type        = string
  description = "The pinned version of that secret."
  default     = "1"
}

variable "slack_channel" {
  type        = string
  description = "Slack channel ID for the alerts."
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
