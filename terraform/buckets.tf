# The watched bucket (created here, or referenced), tamperguard's state bucket, and the
# bucket that holds the function's source archive.

resource "google_storage_bucket" "watched" {
  count = var.create_watched_bucket ? 1 : 0

  project  = var.project_id
  name     = var.watched_bucket_name
  location = coalesce(var.watched_bucket_location, var.region)
  labels   = local.labels

  # tamperguard restores from noncurrent generations and keeps bad ones as evidence.
  versioning {
    enabled = true
  }
  uniform_bucket_level_access = true
  public_access_prevention    = var.public_access_prevention
  force_destroy               = false

  # Kept on: deleted objects can be brought back for this long.
  soft_delete_policy {
    retention_duration_seconds = var.soft_delete_retention_days * 86400
  }

  # Prune old noncurrent generations, but never below noncurrent_versions_to_keep per
  # object (both conditions must hold).
  lifecycle_rule {
    condition {
      with_state                 = "ARCHIVED"
      num_newer_versions         = var.noncurrent_versions_to_keep
      days_since_noncurrent_time = var.noncurrent_version_max_age_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

# An existing watched bucket: nothing of it is managed, but the module refuses to watch one
# without versioning or uniform bucket-level access (see the notification's preconditions).
data "google_storage_bucket" "watched" {
  count = var.create_watched_bucket ? 0 : 1

  project = var.project_id
  name    = var.watched_bucket_name
}

# Published objects are downloadable by anyone when public_read is set: storage.objects.get
# only (no listing). The single allUsers grant of the module.
#tfsec:ignore:google-storage-no-public-access The watched bucket publishes install scripts and binaries; only when public_read is set, and read-only without listing.
resource "google_storage_bucket_iam_member" "public_read" {
  count = var.create_watched_bucket && var.public_read ? 1 : 0

  bucket = google_storage_bucket.watched[0].name
  role   = "roles/storage.legacyObjectReader"
  member = "allUsers"
}

# tamperguard's own records: incidents (created with DoesNotExist: one alert per bad
# generation), evidence copies of bad bytes, rollback marks. Private, versioned.
resource "google_storage_bucket" "state" {
  project  = var.project_id
  name     = local.state_bucket
  location = coalesce(var.watched_bucket_location, var.region)
  labels   = local.labels

  versioning {
    enabled = true
  }
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  soft_delete_policy {
    retention_duration_seconds = var.soft_delete_retention_days * 86400
  }

  # Live records stay; superseded ones go after a year.
  lifecycle_rule {
    condition {
      with_state                 = "ARCHIVED"
      days_since_noncurrent_time = 365
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

# The function's source archives, named by their SHA-256.
resource "google_storage_bucket" "source" {
  project  = var.project_id
  name     = local.source_bucket
  location = var.region
  labels   = local.labels

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      with_state                 = "ARCHIVED"
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_object" "source" {
  bucket       = google_storage_bucket.source.name
  name         = "tamperguard-${filesha256(var.function_source_zip)}.zip"
  source       = var.function_source_zip
  content_type = "application/zip"

  # The function moves to the new archive before the old one is deleted.
  lifecycle {
    create_before_destroy = true
  }
}
