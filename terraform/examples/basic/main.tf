# A tamperguard for one published bucket: the install script (and uploader binaries) of a
# project, vouched for by the project's signed git tags. README.md next to this file has the
# steps, a test right after apply, and how to tear it down.

provider "google" {
  project = var.project_id
  region  = var.region
}

module "tamperguard" {
  source = "../.."

  project_id          = var.project_id
  region              = var.region
  function_source_zip = var.function_source_zip

  watched_bucket_name   = var.watched_bucket_name
  create_watched_bucket = var.create_watched_bucket
  # Private unless asked for; public downloads need public access prevention "inherited".
  public_read              = var.public_read
  public_access_prevention = var.public_read ? "inherited" : "enforced"

  rules = [{
    objects = var.objects
    release = {
      git       = var.release_git
      tag       = "latest"
      checksums = var.release_checksums
    }
    # The maintainers' public keys, read here and passed inline: the function has no files.
    keys = {
      openpgp = [for f in var.openpgp_key_files : file(f)]
      ssh     = var.ssh_keys
    }
    on_mismatch = "restore"
    fallback    = "quarantine"
  }]

  slack                 = var.slack
  notification_channels = var.notification_channels

  deny_hmac_keys = var.deny_hmac_keys
}
