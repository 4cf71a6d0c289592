# Optional project-wide hardening against the Codecov attack's kind of credential: a storage
# key that outlives the job it was made for. Both are off by default because they need
# organization-policy rights and apply to everything in the project; the README recommends
# them.

# Refuse every HMAC-signed Cloud Storage request in the project (the S3-compatible XML API
# with access key and secret): a leaked HMAC key then opens nothing.
resource "google_org_policy_policy" "deny_hmac" {
  count = var.deny_hmac_keys ? 1 : 0

  name   = "projects/${var.project_id}/policies/storage.restrictAuthTypes"
  parent = "projects/${var.project_id}"

  spec {
    rules {
      values {
        denied_values = ["in:ALL_HMAC_SIGNED_REQUESTS"]
      }
    }
  }

  depends_on = [google_project_service.apis]
}

# No new service account keys in the project: identities get short-lived tokens instead.
resource "google_org_policy_policy" "deny_service_account_keys" {
  count = var.deny_service_account_keys ? 1 : 0

  name   = "projects/${var.project_id}/policies/iam.disableServiceAccountKeyCreation"
  parent = "projects/${var.project_id}"

  spec {
    rules {
      enforce = "TRUE"
    }
  }

  depends_on = [google_project_service.apis]
}
