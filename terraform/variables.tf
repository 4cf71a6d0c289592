# Inputs of the tamperguard module. Every variable has a type and a description; the
# README's inputs table is this file, in words.

variable "project_id" {
  type        = string
  description = "The Google Cloud project that holds the watched bucket and where tamperguard runs."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6 to 30 lowercase letters, digits and hyphens), not a project number or name."
  }
}

variable "region" {
  type        = string
  description = "Region of the function, its source and image repositories, and the scheduler job. Pick one inside (or next to) the watched bucket's location, e.g. us-central1 for a bucket in US."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as us-central1 or europe-west1."
  }
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name (function, service accounts, topics, buckets, metrics). Change it to run several tamperguards in one project."
  default     = "tamperguard"

  validation {
    # Service account IDs ("<prefix>-runtime") are at most 30 characters.
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3 to 20 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "function_source_zip" {
  type        = string
  description = "Path of the function's source archive, as written by `tamperguard package -o FILE`. It is uploaded under a name carrying its SHA-256, so a new archive redeploys the function."

  validation {
    condition     = fileexists(var.function_source_zip)
    error_message = "function_source_zip must name an existing file: run `tamperguard package -o function.zip` in tamperguard's source tree first."
  }
}

# --- The watched bucket -------------------------------------------------------------------

variable "watched_bucket_name" {
  type        = string
  description = "Name of the bucket whose published objects tamperguard guards."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", var.watched_bucket_name)) && !strcontains(var.watched_bucket_name, "goog")
    error_message = "watched_bucket_name must be a Cloud Storage bucket name (3 to 63 lowercase letters, digits, dots, hyphens and underscores)."
  }
}

variable "create_watched_bucket" {
  type        = bool
  description = "true: the module creates and manages the watched bucket (versioning, uniform access, public access prevention, soft delete, lifecycle). false: it references an existing bucket by name, manages none of its settings, and refuses to apply unless the bucket has versioning and uniform bucket-level access on."
  default     = true
}

variable "watched_bucket_location" {
  type        = string
  description = "Location of the watched bucket when the module creates it (a region, dual-region or multi-region such as US). Default: var.region."
  default     = null
}

variable "public_read" {
  type        = bool
  description = "When the module creates the watched bucket: let anyone download its objects (allUsers get storage.objects.get through roles/storage.legacyObjectReader; listing stays private). Needs public_access_prevention = \"inherited\"."
  default     = false
}

variable "public_access_prevention" {
  type        = string
  description = "Public access prevention of the created watched bucket: \"enforced\" (nothing in it can be made public) or \"inherited\" (needed for public_read; the organization policy still applies)."
  default     = "enforced"

  validation {
    condition     = contains(["enforced", "inherited"], var.public_access_prevention)
    error_message = "public_access_prevention must be \"enforced\" or \"inherited\"."
  }

  validation {
    condition     = !(var.public_read && var.public_access_prevention == "enforced")
    error_message = "public_read = true needs public_access_prevention = \"inherited\": an enforced bucket cannot be public."
  }
}

variable "noncurrent_versions_to_keep" {
  type        = number
  description = "Noncurrent generations of each object that the lifecycle rule always keeps (the restore source and the evidence trail). Older ones are deleted once they are also older than noncurrent_version_max_age_days."
  default     = 10

  validation {
    condition     = var.noncurrent_versions_to_keep >= 1 && floor(var.noncurrent_versions_to_keep) == var.noncurrent_versions_to_keep
    error_message = "noncurrent_versions_to_keep must be a whole number, at least 1: tamperguard restores from noncurrent generations."
  }
}

variable "noncurrent_version_max_age_days" {
  type        = number
  description = "Days a noncurrent generation is kept at least, even beyond noncurrent_versions_to_keep."
  default     = 30

  validation {
    condition     = var.noncurrent_version_max_age_days >= 1 && floor(var.noncurrent_version_max_age_days) == var.noncurrent_version_max_age_days
    error_message = "noncurrent_version_max_age_days must be a whole number, at least 1."
  }
}

variable "soft_delete_retention_days" {
  type        = number
  description = "Soft delete retention of the created buckets, in days (7 to 90). Soft delete cannot be turned off here: it is what brings back a bucket's objects after a destructive attacker."
  default     = 7

  validation {
    condition     = var.soft_delete_retention_days >= 7 && var.soft_delete_retention_days <= 90 && floor(var.soft_delete_retention_days) == var.soft_delete_retention_days
    error_message = "soft_delete_retention_days must be a whole number from 7 to 90."
  }
}

variable "watched_object_prefix" {
  type        = string
  description = "Filter events at the source: only objects whose names start with this prefix produce notifications (the notification config's object_name_prefix; null: every object). The rules still decide which objects are guarded; a guarded object outside the prefix is judged only by the scheduled audit."
  default     = null

  validation {
    condition     = var.watched_object_prefix == null || try(length(var.watched_object_prefix) > 0 && length(var.watched_object_prefix) <= 1024, false)
    error_message = "watched_object_prefix must be null (every object) or a non-empty object name prefix of at most 1024 bytes."
  }
}

# --- What is guarded, and by which signed release -----------------------------------------

variable "rules" {
  description = <<-EOT
    tamperguard's rules for the watched bucket (the configuration's `rules:`; the bucket is
    filled in). Each rule: `objects` (names or path.Match globs, `{tag}` captures a release
    tag), `release` (exactly one of `git`, `url` or `github`, plus `tag`, `checksums`,
    `entry`, `signature`, `signatures`, `files`, `github_api`, `tags`, `prereleases`,
    `github_token_env`, `signed`, `attestations`, `attestation_ref`), `keys` (the pinned public keys, inline:
    armored OpenPGP, `ssh-…` lines, cosign PEM; keyless `sigstore` identities; `threshold`
    for k-of-n; `openpgp_allow_sha1_self_signatures_unsafe`
    accepts SHA-1 self-signatures, unsafe), `sigstore` (`trusted_root`, inline JSON),
    `on_mismatch` (restore | quarantine | alert), `fallback` (quarantine | alert),
    `cache_control` and protected `metadata`. See the README's "Configuration".
  EOT
  type = list(object({
    objects = list(string)
    release = object({
      git        = optional(string)
      url        = optional(string)
      github     = optional(string)
      github_api = optional(string)
      tag        = optional(string, "latest")
      checksums  = optional(string)
      entry      = optional(string)
      signature  = optional(string)
      files      = optional(string)
      # tag: latest only: which tags count (a glob, or "regexp:…"), and whether
      # pre-releases may be the latest (default: no).
      tags        = optional(string)
      prereleases = optional(bool)
      # The environment variable holding a GitHub token for the API (default GITHUB_TOKEN);
      # pass the variable to the function yourself (e.g. from Secret Manager).
      github_token_env = optional(string)
      # More signature URLs / asset names (k-of-n: one per signer); all are read.
      signatures = optional(list(string))
      # What the signatures cover: "checksums" (default) or "file" (url names each released
      # file with {name}; each has a detached signature of its own).
      signed = optional(string)
      # github only: GitHub artifact attestations (SLSA provenance by a keys.sigstore
      # identity) vouch for the release's files instead of a checksum file; the source ref
      # they must be built from (default refs/tags/{tag}).
      attestations    = optional(bool)
      attestation_ref = optional(string)
    })
    keys = object({
      openpgp = optional(list(string), [])
      ssh     = optional(list(string), [])
      cosign  = optional(list(string), [])
      # Keyless signers (Sigstore bundles, attestations): issuer or issuer_regexp, identity
      # or identity_regexp (anchored with ^), optional source_repository. Need
      # sigstore.trusted_root.
      sigstore = optional(list(object({
        issuer            = optional(string)
        issuer_regexp     = optional(string)
        identity          = optional(string)
        identity_regexp   = optional(string)
        source_repository = optional(string)
      })), [])
      # k-of-n: how many distinct pinned keys (or keyless identities) must have signed.
      threshold = optional(number)
      # Unsafe: accepts OpenPGP keys whose self-signatures use SHA-1 (broken); refresh the
      # key instead. SHA-1 data signatures stay refused.
      openpgp_allow_sha1_self_signatures_unsafe = optional(bool, false)
    })
    # The Sigstore trusted root (trusted_root.json) keyless signatures chain to, inline.
    sigstore = optional(object({
      trusted_root = optional(string)
    }), {})
    on_mismatch   = optional(string, "restore")
    fallback      = optional(string, "quarantine")
    cache_control = optional(string, "no-cache")
    metadata = optional(object({
      content_type        = optional(string)
      content_encoding    = optional(string)
      cache_control       = optional(string)
      content_disposition = optional(string)
    }), {})
  }))

  validation {
    condition     = length(var.rules) > 0 && alltrue([for r in var.rules : length(r.objects) > 0 && alltrue([for o in r.objects : trimspace(o) != ""])])
    error_message = "rules must hold at least one rule, and every rule at least one object name or pattern."
  }

  validation {
    condition     = alltrue([for r in var.rules : length(compact([r.release.git, r.release.url, r.release.github])) == 1])
    error_message = "Each rule's release must set exactly one of git, url and github."
  }

  validation {
    condition = alltrue([for r in var.rules : alltrue([
      for u in compact([r.release.git, r.release.url, r.release.signature, r.release.files, r.release.github_api]) : startswith(u, "https://")
    ])])
    error_message = "Release locations (git, url, signature, files, github_api) must be https:// URLs: the function can reach nothing else, and nothing unauthenticated is fetched."
  }

  validation {
    condition     = alltrue([for r in var.rules : r.release.github == null || can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", r.release.github))])
    error_message = "release.github must be owner/name."
  }

  validation {
    condition     = alltrue([for r in var.rules : length(concat(r.keys.openpgp, r.keys.ssh, r.keys.cosign)) + length(r.keys.sigstore) > 0])
    error_message = "Each rule needs at least one pinned public key (keys.openpgp, keys.ssh or keys.cosign) or keyless identity (keys.sigstore): without one nothing can be verified."
  }

  validation {
    condition     = alltrue([for r in var.rules : alltrue([for k in concat(r.keys.openpgp, r.keys.ssh, r.keys.cosign) : !strcontains(upper(k), "PRIVATE KEY")])])
    error_message = "A key in rules[*].keys is a PRIVATE key. Pin only public keys; treat the private key as leaked and rotate it."
  }

  validation {
    condition = alltrue([for r in var.rules : alltrue(concat(
      [for k in r.keys.openpgp : strcontains(k, "-----BEGIN PGP PUBLIC KEY BLOCK-----")],
      [for k in r.keys.ssh : can(regex("^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\\.com) ", trimspace(k)))],
      [for k in r.keys.cosign : strcontains(k, "-----BEGIN PUBLIC KEY-----")],
    ))])
    error_message = "Keys must be given inline (the function has no files to read): armored OpenPGP public key blocks, authorized_keys lines (\"ssh-ed25519 AAAA…\"), cosign PEM public keys."
  }

  validation {
    condition     = alltrue([for r in var.rules : contains(["restore", "quarantine", "alert"], r.on_mismatch) && contains(["quarantine", "alert"], r.fallback)])
    error_message = "on_mismatch must be restore, quarantine or alert; fallback must be quarantine or alert."
  }
}

variable "release_ttl" {
  type        = string
  description = "How long a resolved \"latest\" release is cached by each instance (a Go duration)."
  default     = "60s"

  validation {
    condition     = can(regex("^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$", var.release_ttl))
    error_message = "release_ttl must be a Go duration such as 60s or 5m."
  }
}

variable "state_bucket_name" {
  type        = string
  description = "Name of the bucket the module creates for tamperguard's records (incidents, evidence copies of bad bytes, rollback marks). Default: <project_id>-<name_prefix>-state."
  default     = null

  validation {
    condition     = var.state_bucket_name == null || can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", coalesce(var.state_bucket_name, "x")))
    error_message = "state_bucket_name must be a Cloud Storage bucket name."
  }

  validation {
    condition     = var.state_bucket_name != var.watched_bucket_name
    error_message = "state_bucket_name must differ from watched_bucket_name: tamperguard keeps its records apart from what it watches."
  }
}

# --- Alerting -----------------------------------------------------------------------------

variable "slack" {
  description = <<-EOT
    Slack alerting (null: decisions are only logged, and the Cloud Monitoring alert policies
    still fire). Either a bot token (`bot_token_secret` plus `channel`, a channel ID) or an
    incoming webhook (`webhook_url_secret`). Both are Secret Manager secrets in project_id,
    named by their secret ID, and pinned to `secret_version` (a number, never "latest", so
    that a new secret version is a reviewed deployment).
  EOT
  type = object({
    bot_token_secret   = optional(string)
    webhook_url_secret = optional(string)
    secret_version     = string
    channel            = optional(string)
  })
  default = null

  validation {
    condition     = var.slack == null || try(length(compact([var.slack.bot_token_secret, var.slack.webhook_url_secret])) == 1, false)
    error_message = "slack must set exactly one of bot_token_secret and webhook_url_secret."
  }

  validation {
    condition     = var.slack == null || try(can(regex("^[1-9][0-9]*$", var.slack.secret_version)), false)
    error_message = "slack.secret_version must be a version number such as \"1\", not \"latest\": pin the secret."
  }

  validation {
    condition     = var.slack == null || try(alltrue([for s in compact([var.slack.bot_token_secret, var.slack.webhook_url_secret]) : can(regex("^[A-Za-z0-9_-]{1,255}$", s))]), false)
    error_message = "Secrets are named by their secret ID in project_id (letters, digits, hyphens, underscores), not by a path or a value."
  }

  validation {
    condition     = var.slack == null || try(var.slack.bot_token_secret == null || can(regex("^[A-Z0-9]{8,}$", var.slack.channel)), false)
    error_message = "With bot_token_secret, slack.channel must be the channel's ID (such as C0123456789), which survives renames."
  }
}

variable "notification_channels" {
  type        = list(string)
  description = "Cloud Monitoring notification channels (IDs like projects/P/notificationChannels/N) of the alert policies: tampering (CRITICAL log lines), undeliverable events, and a silent watcher."
  default     = []
}

# --- The function ---------------------------------------------------------------------------

variable "audit_schedule" {
  type        = string
  description = "Cron schedule of the full audit (Cloud Scheduler → Pub/Sub → the function), the safety net for missed events and for tampering that predates tamperguard."
  default     = "*/15 * * * *"
}

variable "audit_time_zone" {
  type        = string
  description = "Time zone of audit_schedule."
  default     = "Etc/UTC"
}

variable "function_memory" {
  type        = string
  description = "Memory of each function instance. Objects are hashed as streams, but each request in flight may hold a restore's 8 MiB write buffer and two 1 MiB samples, and each git release source keeps up to 32 MiB of verified objects plus a resolution's buffers: 1Gi leaves room for max_instance_request_concurrency = 8."
  default     = "1Gi"

  validation {
    condition     = can(regex("^[0-9]+(M|Mi|G|Gi)$", var.function_memory))
    error_message = "function_memory must look like 512M or 1Gi."
  }
}

variable "function_cpu" {
  type        = string
  description = "vCPUs of each function instance (available_cpu), such as \"1\" or \"2\", or a fraction below 1 such as \"0.583\". More than one request per instance (max_instance_request_concurrency > 1) needs at least 1."
  default     = "1"

  validation {
    condition     = can(tonumber(var.function_cpu)) && try(tonumber(var.function_cpu) >= 0.08 && tonumber(var.function_cpu) <= 8, false)
    error_message = "function_cpu must be a number of vCPUs from 0.08 to 8, written as a string such as \"1\"."
  }
}

variable "function_timeout_seconds" {
  type        = number
  description = "Function timeout, in seconds. At most 600, the Pub/Sub acknowledgement deadline: a longer run would be delivered again while it is still running. A full audit must finish within it."
  default     = 540

  validation {
    condition     = var.function_timeout_seconds >= 60 && var.function_timeout_seconds <= 600
    error_message = "function_timeout_seconds must be from 60 to 600."
  }
}

variable "max_instance_request_concurrency" {
  type        = number
  description = "Requests (events, audit requests) one function instance handles at once. The work is I/O-bound (streamed hashing, storage and release-host calls), so one instance serves several, sharing its release cache instead of each new instance resolving the release again. More than 1 needs function_cpu >= 1."
  default     = 8

  validation {
    condition     = var.max_instance_request_concurrency >= 1 && var.max_instance_request_concurrency <= 1000 && floor(var.max_instance_request_concurrency) == var.max_instance_request_concurrency
    error_message = "max_instance_request_concurrency must be a whole number from 1 to 1000."
  }

  validation {
    condition     = var.max_instance_request_concurrency == 1 || try(tonumber(var.function_cpu) >= 1, false)
    error_message = "max_instance_request_concurrency above 1 needs function_cpu of at least \"1\": Cloud Run gives instances with less than one vCPU one request at a time."
  }
}

variable "max_instance_count" {
  type        = number
  description = "Most function instances at once (formerly max_instances). With max_instance_request_concurrency, it bounds the events judged at once; beyond that, Pub/Sub gets 429 answers and delivers the events again with backoff (each attempt counts towards max_delivery_attempts)."
  default     = 10

  validation {
    condition     = var.max_instance_count >= 1 && var.max_instance_count <= 1000 && floor(var.max_instance_count) == var.max_instance_count
    error_message = "max_instance_count must be a whole number from 1 to 1000."
  }
}

variable "min_instance_count" {
  type        = number
  description = "Function instances kept running while idle (billed while idle). 0: the first event after a quiet spell waits for a cold start (a few seconds) and an empty release cache."
  default     = 0

  validation {
    condition     = var.min_instance_count >= 0 && floor(var.min_instance_count) == var.min_instance_count
    error_message = "min_instance_count must be a whole number, 0 or more."
  }

  validation {
    condition     = var.min_instance_count <= var.max_instance_count
    error_message = "min_instance_count must not exceed max_instance_count."
  }
}

variable "max_delivery_attempts" {
  type        = number
  description = "Deliveries of an event (or audit request) that keeps failing before it goes to the dead-letter topic. Pub/Sub backs off from 10 s to 10 min between attempts."
  default     = 15

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be from 5 to 100 (Pub/Sub's bounds)."
  }
}

variable "log_level" {
  type        = string
  description = "Lowest severity the function logs (TAMPERGUARD_LOG_LEVEL)."
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL."
  }
}

variable "max_event_age" {
  type        = string
  description = "Events older than this are acknowledged without action (TAMPERGUARD_MAX_EVENT_AGE, a Go duration; \"0\" turns the check off); the audit has judged their objects since."
  default     = "24h"

  validation {
    condition     = var.max_event_age == "0" || can(regex("^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$", var.max_event_age))
    error_message = "max_event_age must be a Go duration such as 24h, or \"0\"."
  }
}

# --- Who wrote it, and is the bucket still guarded ----------------------------------------

variable "storage_data_write_audit_logs" {
  type        = bool
  description = "Turn on Cloud Audit Logs Data Access (DATA_WRITE) logs for Cloud Storage in the project, so that a write can be traced to its principal, IP, user agent and key. Project-wide (the platform has no per-bucket switch) and authoritative for the project's storage.googleapis.com audit config. It also hands the function the audit log view (TAMPERGUARD_AUDIT_LOGS): with false the module leaves the audit config alone and the function reports attribution as off."
  default     = true
}

variable "audit_log_retention_days" {
  type        = number
  description = "Days the watched bucket's Data Access entries are kept in the module's log bucket (<prefix>-audit), from which tamperguard names who wrote an object."
  default     = 30

  validation {
    condition     = var.audit_log_retention_days >= 1 && var.audit_log_retention_days <= 3650 && floor(var.audit_log_retention_days) == var.audit_log_retention_days
    error_message = "audit_log_retention_days must be a whole number from 1 to 3650."
  }
}

variable "posture_repair" {
  type        = bool
  description = "Let the function put the watched bucket's guard back (re-enable versioning, re-create the notification config). Grants storage.buckets.update on the watched bucket, which also allows changing any other setting of it: off by default."
  default     = false
}

variable "allowed_hmac_access_ids" {
  type        = list(string)
  description = "Access IDs of HMAC keys of the project's service accounts that are known and accepted (posture.allowed_hmac_access_ids). Any other active one fails the hmac_keys posture check."
  default     = []

  validation {
    condition     = alltrue([for id in var.allowed_hmac_access_ids : can(regex("^GOOG[0-9A-Z]+$", id))])
    error_message = "allowed_hmac_access_ids must hold HMAC access IDs (GOOG followed by capital letters and digits), never a secret."
  }
}

variable "posture_admin_route" {
  type        = bool
  description = "Route the watched bucket's Admin Activity audit entries (settings, IAM and notification changes) and the project's HMAC key changes to the function through the <prefix>-posture topic, for posture checks in real time instead of at the next audit. Needs a function version that handles these messages."
  default     = false
}

# --- Project-wide hardening (off by default: they need organization-policy rights) --------

variable "deny_hmac_keys" {
  type        = bool
  description = "Set the organization policy constraint storage.restrictAuthTypes on the project to refuse every HMAC-signed Cloud Storage request: a leaked HMAC key, the Codecov attack's kind of credential, then opens nothing. Recommended; needs roles/orgpolicy.policyAdmin, and breaks anything in the project that still uses HMAC keys."
  default     = false
}

variable "deny_service_account_keys" {
  type        = bool
  description = "Enforce the organization policy constraint iam.disableServiceAccountKeyCreation on the project: no new long-lived service account keys. Recommended; needs roles/orgpolicy.policyAdmin."
  default     = false
}

variable "enable_apis" {
  type        = bool
  description = "Enable the Google APIs the module uses (they stay enabled on destroy)."
  default     = true
}

variable "labels" {
  type        = map(string)
  description = "Labels added to every resource that takes labels."
  default     = {}
}
