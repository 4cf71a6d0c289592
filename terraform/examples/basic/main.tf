# A tamperguard for one published bucket: the install script and uploader binaries of a
# project, vouched for by the project's signed git tags.
#
#   tamperguard package -o function.zip        # in tamperguard's source tree
#   cp terraform.tfvars.example terraform.tfvars && $EDITOR terraform.tfvars
#   terraform init && terraform apply

provider "google" {
  project = var.project_id
  region  = var.region
}

module "tamperguard" {
  source = "../.."

  project_id          = var.project_id
  region              = var.region
  function_source_zip = var.function_source_zip

  watched_bucket_name   = var.bucket_name
  create_watched_bucket = var.create_bucket
  # Published buckets are public: anyone may download (not list) the objects.
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

  slack = var.slack_bot_token_secret == null ? null : {
    bot_token_secret = var.slack_bot_token_secret
    secret_version   = var.slack_secret_version
    channel          = var.slack_channel
  }
  notification_channels = var.notification_channels

  deny_hmac_keys = var.deny_hmac_keys
}
