# Plan-time warnings (check blocks, Terraform 1.5): nothing else goes in this file, because
# check.sh's tfsec scan (tfsec cannot parse check blocks) reads the module without it.

# Not an error: the scheduled audit still judges such objects, every audit_schedule. But
# tampering with them is then found only at the next audit, so say it at plan time.
check "guarded_objects_inside_prefix" {
  assert {
    condition     = length(local.objects_outside_prefix) == 0
    error_message = "watched_object_prefix = ${jsonencode(var.watched_object_prefix)} leaves guarded objects without events: ${join(", ", local.objects_outside_prefix)}. They are judged only by the scheduled audit (${var.audit_schedule}), so tampering with them is served until then. Widen the prefix (or set it to null) unless that is what you want."
  }
}
