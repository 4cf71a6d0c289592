// Package terraform_test checks the Terraform module's least-privilege shape by reading its
// source with HCL: which resources exist, who is granted what, how the function, buckets and
// event delivery are configured. No provider, no network; terraform/check.sh runs the
// module's own `terraform test` and tfsec on top of this.
package terraform_test

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/zclconf/go-cty/cty"

	"github.com/tamperguard/tamperguard/alerting"
	"github.com/tamperguard/tamperguard/internal/config"
	"github.com/tamperguard/tamperguard/internal/posture"
)

// module is one directory of .tf files, parsed.
type module struct {
	src       map[string][]byte // file name → bytes, for expressions' source text
	resources map[string]*hclsyntax.Block
	data      map[string]*hclsyntax.Block
	variables map[string]*hclsyntax.Block
	outputs   map[string]*hclsyntax.Block
	locals    map[string]*hclsyntax.Attribute
	terraform []*hclsyntax.Block
	comments  []string // every comment line, for the tfsec ignores
}

func load(t *testing.T, dir string) *module {
	t.Helper()
	m := &module{src: map[string][]byte{}, resources: map[string]*hclsyntax.Block{}, data: map[string]*hclsyntax.Block{},
		variables: map[string]*hclsyntax.Block{}, outputs: map[string]*hclsyntax.Block{}, locals: map[string]*hclsyntax.Attribute{}}
	names, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	require.NoError(t, err)
	require.NotEmpty(t, names, "no .tf files in %s", dir)
	for _, name := range names {
		data, err := os.ReadFile(name)
		require.NoError(t, err)
		f, diags := hclsyntax.ParseConfig(data, name, hcl.InitialPos)
		require.False(t, diags.HasErrors(), "%s: %s", name, diags)
		m.src[name] = data
		for _, line := range strings.Split(string(data), "\n") {
			if l := strings.TrimSpace(line); strings.HasPrefix(l, "#") || strings.HasPrefix(l, "//") {
				m.comments = append(m.comments, l)
			}
		}
		for _, b := range f.Body.(*hclsyntax.Body).Blocks {
			key := strings.Join(b.Labels, ".")
			var into map[string]*hclsyntax.Block
			switch b.Type {
			case "resource":
				into = m.resources
			case "data":
				into = m.data
			case "variable":
				into = m.variables
			case "output":
				into = m.outputs
			case "locals":
				for n, a := range b.Body.Attributes {
					_, dup := m.locals[n]
					require.False(t, dup, "local %s defined twice", n)
					m.locals[n] = a
				}
				continue
			case "terraform":
				m.terraform = append(m.terraform, b)
				continue
			default:
				continue
			}
			_, dup := into[key]
			require.False(t, dup, "%s %s defined twice", b.Type, key)
			into[key] = b
		}
	}
	return m
}

// text is an expression's source text.
func (m *module) text(e hclsyntax.Expression) string {
	r := e.Range()
	return string(r.SliceBytes(m.src[r.Filename]))
}

// attr is the source text of a block's attribute ("" when absent).
func (m *module) attr(b *hclsyntax.Block, name string) string {
	if a, ok := b.Body.Attributes[name]; ok {
		return m.text(a.Expr)
	}
	return ""
}

// value evaluates a literal attribute (no references).
func value(t *testing.T, b *hclsyntax.Block, name string) cty.Value {
	t.Helper()
	a, ok := b.Body.Attributes[name]
	require.True(t, ok, "attribute %s missing in %s %v", name, b.Type, b.Labels)
	v, diags := a.Expr.Value(nil)
	require.False(t, diags.HasErrors(), "%s %v: %s is not a literal: %s", b.Type, b.Labels, name, diags)
	return v
}

// blocks returns the nested blocks of a type (dynamic blocks under their generated name).
func blocks(b *hclsyntax.Block, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, nb := range b.Body.Blocks {
		if nb.Type == typ || (nb.Type == "dynamic" && len(nb.Labels) == 1 && nb.Labels[0] == typ) {
			out = append(out, nb)
		}
	}
	return out
}

func block(t *testing.T, b *hclsyntax.Block, path ...string) *hclsyntax.Block {
	t.Helper()
	for _, p := range path {
		bs := blocks(b, p)
		require.Len(t, bs, 1, "%s %v: want one %s block", b.Type, b.Labels, p)
		b = bs[0]
	}
	return b
}

// localItem is one item of a local whose value is an object literal.
func (m *module) localItem(t *testing.T, local, key string) hclsyntax.Expression {
	t.Helper()
	a, ok := m.locals[local]
	require.True(t, ok, "local %s missing", local)
	cons, ok := a.Expr.(*hclsyntax.ObjectConsExpr)
	require.True(t, ok, "local %s is not an object literal", local)
	for _, item := range cons.Items {
		if hcl.ExprAsKeyword(item.KeyExpr) == key {
			return item.ValueExpr
		}
	}
	t.Fatalf("local %s has no item %s", local, key)
	return nil
}

func (m *module) resource(t *testing.T, key string) *hclsyntax.Block {
	t.Helper()
	r, ok := m.resources[key]
	require.True(t, ok, "resource %s missing", key)
	return r
}

func TestRequiredResources(t *testing.T) {
	m := load(t, ".")
	for _, key := range []string{
		"google_cloudfunctions2_function.this",
		"google_service_account.runtime",
		"google_service_account.push",
		"google_service_account.build",
		"google_project_iam_custom_role.object_guard",
		"google_storage_bucket.watched",
		"google_storage_bucket.state",
		"google_storage_bucket.source",
		"google_storage_bucket_object.source",
		"google_storage_notification.watched",
		"google_pubsub_topic.events",
		"google_pubsub_topic.audit",
		"google_pubsub_topic.dead_letter",
		"google_pubsub_subscription.events",
		"google_pubsub_subscription.audit",
		"google_pubsub_subscription.dead_letter",
		"google_cloud_scheduler_job.audit",
		"google_logging_metric.critical",
		"google_monitoring_alert_policy.tampering",
		"google_monitoring_alert_policy.undeliverable",
		"google_monitoring_alert_policy.silent",
		"google_org_policy_policy.deny_hmac",
		"google_artifact_registry_repository.functions",
		"google_project_iam_audit_config.storage",
		"google_logging_project_bucket_config.audit",
		"google_logging_project_sink.audit",
		"google_logging_log_view.watched_writes",
		"google_logging_log_view_iam_member.runtime_audit_view",
		"google_project_iam_custom_role.posture_reader",
		"google_project_iam_custom_role.hmac_key_lister",
		"google_project_iam_custom_role.posture_repair",
		"google_storage_bucket_iam_member.runtime_posture",
		"google_storage_bucket_iam_member.runtime_posture_repair",
		"google_project_iam_member.runtime_hmac_keys",
		"google_pubsub_topic.posture",
		"google_logging_project_sink.posture",
		"google_pubsub_topic_iam_member.posture_sink_publishes",
		"google_pubsub_subscription.posture",
	} {
		m.resource(t, key)
	}
	assert.Contains(t, m.data, "google_storage_bucket.watched", "an existing watched bucket must be referenceable")
}

// TestForbidden: no long-lived credentials, no authoritative or ACL-based access control,
// and allUsers only on the published objects' read, when asked for.
func TestForbidden(t *testing.T) {
	for _, dir := range []string{".", filepath.Join("examples", "basic")} {
		m := load(t, dir)
		for key, r := range m.resources {
			typ := r.Labels[0]
			switch {
			case typ == "google_service_account_key", typ == "google_storage_hmac_key", typ == "google_apikeys_key":
				t.Errorf("%s/%s: a long-lived credential", dir, key)
			case strings.HasSuffix(typ, "_iam_policy"), strings.HasSuffix(typ, "_iam_binding"):
				t.Errorf("%s/%s: authoritative IAM would remove other grants", dir, key)
			case strings.Contains(typ, "_acl") || strings.Contains(typ, "access_control"):
				t.Errorf("%s/%s: ACLs (uniform bucket-level access only)", dir, key)
			}
		}
		for name, src := range m.src {
			assert.NotContains(t, string(src), "allAuthenticatedUsers", name)
			assert.NotContains(t, string(src), "archive_file", "%s: the module uses the google provider alone", name)
		}
	}

	m := load(t, ".")
	var public []string
	for key, r := range m.resources {
		if m.attr(r, "member") == `"allUsers"` || m.attr(r, "members") != "" && strings.Contains(m.attr(r, "members"), "allUsers") {
			public = append(public, key)
		}
	}
	require.Equal(t, []string{"google_storage_bucket_iam_member.public_read"}, public, "allUsers appears only in the public read grant")
	r := m.resources["google_storage_bucket_iam_member.public_read"]
	assert.Equal(t, `"roles/storage.legacyObjectReader"`, m.attr(r, "role"), "objects.get only: no listing")
	assert.Equal(t, "google_storage_bucket.watched[0].name", m.attr(r, "bucket"))
	assert.Contains(t, m.attr(r, "count"), "var.public_read")

	var ignores []string
	for _, c := range m.comments {
		if strings.Contains(c, "tfsec:ignore") {
			ignores = append(ignores, c)
		}
	}
	require.Len(t, ignores, 1, "the only tfsec ignore is the public read of published objects")
	assert.Contains(t, ignores[0], "tfsec:ignore:google-storage-no-public-access ")
}

// grant is one IAM grant, as written: resource type, role, the resource it is on.
type grant struct {
	key, role, on, condition string
}

func (g grant) String() string {
	s := g.key + ": " + g.role + " on " + g.on
	if g.condition != "" {
		s += " if " + g.condition
	}
	return s
}

// grantTargets name the attribute that says what an IAM resource type grants on.
var grantTargets = map[string]string{
	"google_storage_bucket_iam_member":               "bucket",
	"google_project_iam_member":                      "project",
	"google_secret_manager_secret_iam_member":        "secret_id",
	"google_cloud_run_v2_service_iam_member":         "name",
	"google_artifact_registry_repository_iam_member": "repository",
	"google_service_account_iam_member":              "service_account_id",
	"google_pubsub_topic_iam_member":                 "topic",
	"google_pubsub_subscription_iam_member":          "subscription",
	"google_logging_log_view_iam_member":             "name",
}

// grants groups every IAM grant of the module by member expression.
func grants(t *testing.T, m *module) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for key, r := range m.resources {
		typ := r.Labels[0]
		if !strings.HasSuffix(typ, "_iam_member") {
			continue
		}
		target, ok := grantTargets[typ]
		require.True(t, ok, "%s: an IAM resource type this test does not know; add it to grantTargets", key)
		g := grant{key: key, role: m.attr(r, "role"), on: m.attr(r, target)}
		if cs := blocks(r, "condition"); len(cs) > 0 {
			g.condition = m.attr(cs[0], "expression")
		}
		member := m.attr(r, "member")
		require.NotEmpty(t, member, "%s: grants go to one member", key)
		out[member] = append(out[member], g.String())
	}
	for k := range out {
		sort.Strings(out[k])
	}
	return out
}

// TestServiceAccountRoles: each identity holds exactly the grants listed here, each on one
// resource; nothing else in the module grants anything to anyone.
func TestServiceAccountRoles(t *testing.T) {
	m := load(t, ".")
	got := grants(t, m)
	staging := `"resource.name == \"projects/_/buckets/${local.gcf_sources_bucket}\" || resource.name.startsWith(\"projects/_/buckets/${local.gcf_sources_bucket}/\")"`
	want := map[string][]string{
		"google_service_account.runtime.member": {
			"google_logging_log_view_iam_member.runtime_audit_view: \"roles/logging.viewAccessor\" on google_logging_log_view.watched_writes.name",
			"google_project_iam_member.runtime_hmac_keys: google_project_iam_custom_role.hmac_key_lister.id on var.project_id",
			"google_secret_manager_secret_iam_member.runtime_slack: \"roles/secretmanager.secretAccessor\" on local.slack_secret.secret",
			"google_storage_bucket_iam_member.runtime_posture: google_project_iam_custom_role.posture_reader.id on local.watched_bucket",
			"google_storage_bucket_iam_member.runtime_posture_repair: google_project_iam_custom_role.posture_repair[0].id on local.watched_bucket",
			"google_storage_bucket_iam_member.runtime_state: google_project_iam_custom_role.object_guard.id on google_storage_bucket.state.name",
			"google_storage_bucket_iam_member.runtime_watched: google_project_iam_custom_role.object_guard.id on local.watched_bucket",
		},
		// The Admin Activity route's sink publishes to its one topic.
		"google_logging_project_sink.posture[0].writer_identity": {
			"google_pubsub_topic_iam_member.posture_sink_publishes: \"roles/pubsub.publisher\" on google_pubsub_topic.posture[0].name",
		},
		"google_service_account.push.member": {
			"google_cloud_run_v2_service_iam_member.push_invoker: \"roles/run.invoker\" on google_cloudfunctions2_function.this.service_config[0].service",
		},
		"google_service_account.build.member": {
			"google_artifact_registry_repository_iam_member.build_images: \"roles/artifactregistry.writer\" on google_artifact_registry_repository.functions.name",
			"google_project_iam_member.build_logs: \"roles/logging.logWriter\" on var.project_id",
			"google_project_iam_member.build_staged_source: \"roles/storage.objectViewer\" on var.project_id if " + staging,
			"google_storage_bucket_iam_member.build_source: \"roles/storage.objectViewer\" on google_storage_bucket.source.name",
		},
		// Service agents: Cloud Storage publishes notifications; Pub/Sub signs pushes as the
		// push account and moves dead letters.
		"local.gcs_agent": {
			"google_pubsub_topic_iam_member.gcs_publishes_events: \"roles/pubsub.publisher\" on google_pubsub_topic.events.name",
		},
		"local.pubsub_agent": {
			"google_pubsub_subscription_iam_member.pubsub_forwards_dead_letters: \"roles/pubsub.subscriber\" on each.value",
			"google_pubsub_topic_iam_member.pubsub_publishes_dead_letters: \"roles/pubsub.publisher\" on google_pubsub_topic.dead_letter.name",
			"google_service_account_iam_member.pubsub_mints_push_tokens: \"roles/iam.serviceAccountTokenCreator\" on google_service_account.push.name",
		},
		`"allUsers"`: {
			"google_storage_bucket_iam_member.public_read: \"roles/storage.legacyObjectReader\" on google_storage_bucket.watched[0].name",
		},
	}
	assert.Equal(t, want, got)

	// The custom roles, exactly: the runtime's five object permissions (nothing on buckets
	// or IAM); the posture reads; listing HMAC key metadata; the repair's bucket update.
	for role, want := range map[string][]string{
		"object_guard":    {"storage.objects.create", "storage.objects.delete", "storage.objects.get", "storage.objects.list", "storage.objects.update"},
		"posture_reader":  {"storage.buckets.get", "storage.buckets.getIamPolicy"},
		"hmac_key_lister": {"storage.hmacKeys.list"},
		"posture_repair":  {"storage.buckets.update"},
	} {
		r := m.resource(t, "google_project_iam_custom_role."+role)
		var perms []string
		for _, v := range value(t, r, "permissions").AsValueSlice() {
			perms = append(perms, v.AsString())
		}
		slices.Sort(perms)
		assert.Equal(t, want, perms, role)
	}
	assert.Equal(t, "var.posture_repair ? 1 : 0", m.attr(m.resource(t, "google_project_iam_custom_role.posture_repair"), "count"))
	assert.Equal(t, "var.posture_repair ? 1 : 0", m.attr(m.resource(t, "google_storage_bucket_iam_member.runtime_posture_repair"), "count"))
	assert.Equal(t, cty.False, value(t, m.variables["posture_repair"], "default"), "bucket updates only when asked for")

	// Project-wide grants: only logs, a storage read limited by its condition, and the HMAC
	// key listing (HMAC keys belong to the project; the role lists metadata only).
	var projectWide []string
	for key, r := range m.resources {
		if r.Labels[0] != "google_project_iam_member" {
			continue
		}
		projectWide = append(projectWide, key)
		if strings.Contains(m.attr(r, "role"), "storage") {
			assert.NotEmpty(t, blocks(r, "condition"), "%s: a project-wide storage role without a condition", key)
		}
	}
	assert.ElementsMatch(t, []string{"google_project_iam_member.build_logs", "google_project_iam_member.build_staged_source", "google_project_iam_member.runtime_hmac_keys"}, projectWide)

	// Who is each identity.
	fn := m.resource(t, "google_cloudfunctions2_function.this")
	assert.Equal(t, "google_service_account.runtime.email", m.attr(block(t, fn, "service_config"), "service_account_email"))
	assert.Equal(t, "google_service_account.build.id", m.attr(block(t, fn, "build_config"), "service_account"))
	for _, s := range []string{"events", "audit"} {
		sub := m.resource(t, "google_pubsub_subscription."+s)
		assert.Equal(t, "google_service_account.push.email", m.attr(block(t, sub, "push_config", "oidc_token"), "service_account_email"))
	}
	for _, sa := range []string{"runtime", "push", "build"} {
		assert.Equal(t, `"${local.name}-`+sa+`"`, m.attr(m.resource(t, "google_service_account."+sa), "account_id"), "a dedicated account per role")
	}
}

func TestFunction(t *testing.T) {
	m := load(t, ".")
	fn := m.resource(t, "google_cloudfunctions2_function.this")
	build := block(t, fn, "build_config")
	assert.Equal(t, cty.StringVal("go126"), value(t, build, "runtime"))
	assert.Equal(t, cty.StringVal("VerifyObject"), value(t, build, "entry_point"))
	src := block(t, build, "source", "storage_source")
	assert.Equal(t, "google_storage_bucket_object.source.name", m.attr(src, "object"))
	obj := m.resource(t, "google_storage_bucket_object.source")
	assert.Equal(t, `"tamperguard-${filesha256(var.function_source_zip)}.zip"`, m.attr(obj, "name"), "the archive's name carries its hash, so new code redeploys")

	svc := block(t, fn, "service_config")
	assert.Equal(t, cty.StringVal("ALLOW_INTERNAL_ONLY"), value(t, svc, "ingress_settings"))
	assert.Equal(t, "local.function_env", m.attr(svc, "environment_variables"))
	assert.Empty(t, blocks(fn, "event_trigger"), "events arrive through the module's push subscriptions (dead letters need them)")

	// Scale: several requests per instance need a whole vCPU; the settings are the
	// variables, whose defaults fit together.
	for attr, v := range map[string]string{
		"available_memory":                 "var.function_memory",
		"available_cpu":                    "var.function_cpu",
		"timeout_seconds":                  "var.function_timeout_seconds",
		"max_instance_request_concurrency": "var.max_instance_request_concurrency",
		"max_instance_count":               "var.max_instance_count",
		"min_instance_count":               "var.min_instance_count",
	} {
		assert.Equal(t, v, m.attr(svc, attr), attr)
	}
	assert.True(t, value(t, m.variables["max_instance_request_concurrency"], "default").Equals(cty.NumberIntVal(8)).True(), "8 requests per instance by default")
	assert.Equal(t, cty.StringVal("1"), value(t, m.variables["function_cpu"], "default"), "concurrency above 1 needs a whole vCPU")
	assert.True(t, value(t, m.variables["min_instance_count"], "default").Equals(cty.NumberIntVal(0)).True(), "nothing billed while idle by default")
	var cpuChecked bool
	for _, v := range blocks(m.variables["max_instance_request_concurrency"], "validation") {
		cpuChecked = cpuChecked || strings.Contains(m.attr(v, "condition"), "var.function_cpu")
	}
	assert.True(t, cpuChecked, "max_instance_request_concurrency must be validated against function_cpu")

	// The plain environment: configuration and settings, no secret.
	env := m.text(m.locals["function_env"].Expr)
	for _, k := range []string{"TAMPERGUARD_CONFIG", "TAMPERGUARD_LOG_LEVEL", "TAMPERGUARD_MAX_EVENT_AGE", "TAMPERGUARD_DEPLOYMENT", "TAMPERGUARD_AUDIT_LOGS", "SLACK_CHANNEL"} {
		assert.Contains(t, env, k+" ")
	}
	assert.Contains(t, env, "TAMPERGUARD_DEPLOYMENT    = local.name", "alerts name the deployment by its name prefix")
	assert.Contains(t, env, "var.storage_data_write_audit_logs ? { TAMPERGUARD_AUDIT_LOGS = local.audit_log_view } : {}",
		"the audit log view only when the module turns Data Access logs on")
	for _, k := range regexp.MustCompile(`\b[A-Z][A-Z0-9_]+\b`).FindAllString(env, -1) {
		assert.NotRegexp(t, `TOKEN|WEBHOOK|SECRET|PASSWORD|KEY`, k, "a secret in the plain environment")
	}
	assert.Contains(t, m.text(m.locals["config_yaml"].Expr), "yamlencode(local.config)")

	// The Slack credential: Secret Manager, pinned.
	secrets := blocks(svc, "secret_environment_variables")
	require.Len(t, secrets, 1)
	content := block(t, secrets[0], "content")
	assert.Equal(t, "var.slack.secret_version", m.attr(content, "version"))
	assert.Contains(t, m.text(m.locals["slack_secret"].Expr), `"SLACK_BOT_TOKEN"`)
	assert.Contains(t, m.text(m.locals["slack_secret"].Expr), `"SLACK_WEBHOOK_URL"`)
	slack := m.variables["slack"]
	require.NotNil(t, slack)
	var pinned bool
	for _, v := range blocks(slack, "validation") {
		pinned = pinned || strings.Contains(m.attr(v, "condition"), "secret_version") && strings.Contains(m.attr(v, "error_message"), "latest")
	}
	assert.True(t, pinned, "slack.secret_version must be validated as a pinned version")
}

func TestBuckets(t *testing.T) {
	m := load(t, ".")
	for _, name := range []string{"watched", "state", "source"} {
		b := m.resource(t, "google_storage_bucket."+name)
		assert.Equal(t, cty.True, value(t, b, "uniform_bucket_level_access"), name)
		assert.Equal(t, cty.True, value(t, block(t, b, "versioning"), "enabled"), name)
	}
	watched := m.resource(t, "google_storage_bucket.watched")
	assert.Equal(t, "var.public_access_prevention", m.attr(watched, "public_access_prevention"))
	assert.Equal(t, cty.StringVal("enforced"), value(t, m.resource(t, "google_storage_bucket.state"), "public_access_prevention"))
	assert.Equal(t, cty.StringVal("enforced"), value(t, m.resource(t, "google_storage_bucket.source"), "public_access_prevention"))
	for _, name := range []string{"watched", "state"} {
		b := m.resource(t, "google_storage_bucket."+name)
		assert.Equal(t, "var.soft_delete_retention_days * 86400", m.attr(block(t, b, "soft_delete_policy"), "retention_duration_seconds"), name)
		assert.Equal(t, cty.False, value(t, b, "force_destroy"), name)
	}
	// Pruning only noncurrent generations, and never the newest noncurrent_versions_to_keep.
	rules := blocks(watched, "lifecycle_rule")
	require.Len(t, rules, 1)
	cond := block(t, rules[0], "condition")
	assert.Equal(t, cty.StringVal("ARCHIVED"), value(t, cond, "with_state"))
	assert.Equal(t, "var.noncurrent_versions_to_keep", m.attr(cond, "num_newer_versions"))
	assert.Equal(t, cty.StringVal("Delete"), value(t, block(t, rules[0], "action"), "type"))

	v := m.variables["soft_delete_retention_days"]
	require.NotNil(t, v)
	assert.Contains(t, m.attr(block(t, v, "validation"), "condition"), ">= 7", "soft delete cannot be turned off")
}

func TestDelivery(t *testing.T) {
	m := load(t, ".")
	n := m.resource(t, "google_storage_notification.watched")
	// The notification's settings come from local.notification, which the configuration's
	// posture section also carries: the posture check expects what the module creates.
	assert.Equal(t, "local.notification.event_types", m.attr(n, "event_types"))
	assert.Equal(t, "local.notification.payload_format", m.attr(n, "payload_format"))
	kindsV, diags := m.localItem(t, "notification", "event_types").Value(nil)
	require.False(t, diags.HasErrors(), "local.notification.event_types is not a literal: %s", diags)
	var kinds []string
	for _, v := range kindsV.AsValueSlice() {
		kinds = append(kinds, v.AsString())
	}
	assert.ElementsMatch(t, []string{"OBJECT_FINALIZE", "OBJECT_METADATA_UPDATE", "OBJECT_DELETE", "OBJECT_ARCHIVE"}, kinds,
		"all four kinds: in a versioned bucket a deletion is an archive")
	payload, diags := m.localItem(t, "notification", "payload_format").Value(nil)
	require.False(t, diags.HasErrors())
	assert.Equal(t, cty.StringVal("JSON_API_V1"), payload)
	assert.Equal(t, `"projects/${var.project_id}/topics/${google_pubsub_topic.events.name}"`, m.text(m.localItem(t, "notification", "topic")))
	assert.Equal(t, "google_pubsub_topic.events.id", m.attr(n, "topic"))
	assert.Equal(t, "var.watched_object_prefix", m.attr(n, "object_name_prefix"), "event filtering at the source")

	for _, s := range []string{"events", "audit"} {
		sub := m.resource(t, "google_pubsub_subscription."+s)
		assert.Equal(t, "google_pubsub_topic."+s+".id", m.attr(sub, "topic"))
		assert.Contains(t, m.attr(block(t, sub, "push_config"), "push_endpoint"), "/topics/${google_pubsub_topic."+s+".name}")
		assert.Equal(t, "local.push_base", m.attr(block(t, sub, "push_config", "oidc_token"), "audience"))
		assert.Equal(t, "google_pubsub_topic.dead_letter.id", m.attr(block(t, sub, "dead_letter_policy"), "dead_letter_topic"), s)
		assert.Equal(t, "var.max_delivery_attempts", m.attr(block(t, sub, "dead_letter_policy"), "max_delivery_attempts"), s)
		rp := block(t, sub, "retry_policy")
		assert.Equal(t, cty.StringVal("10s"), value(t, rp, "minimum_backoff"), s)
		assert.Equal(t, cty.StringVal(""), value(t, block(t, sub, "expiration_policy"), "ttl"), "%s must never expire", s)
		assert.True(t, value(t, sub, "ack_deadline_seconds").Equals(cty.NumberIntVal(600)).True(), "%s: ack deadline 600 s", s)
	}
	assert.Equal(t, cty.StringVal(""), value(t, block(t, m.resource(t, "google_pubsub_subscription.dead_letter"), "expiration_policy"), "ttl"))

	job := m.resource(t, "google_cloud_scheduler_job.audit")
	target := block(t, job, "pubsub_target")
	assert.Equal(t, "google_pubsub_topic.audit.id", m.attr(target, "topic_name"))
	attrs, ok := target.Body.Attributes["attributes"]
	require.True(t, ok)
	v, diags := attrs.Expr.Value(nil)
	require.False(t, diags.HasErrors())
	assert.Equal(t, cty.ObjectVal(map[string]cty.Value{"tamperguard": cty.StringVal("audit")}), v)
	assert.Equal(t, "var.audit_schedule", m.attr(job, "schedule"))
	assert.Equal(t, cty.StringVal("*/15 * * * *"), value(t, m.variables["audit_schedule"], "default"))

	metric := m.resource(t, "google_logging_metric.critical")
	assert.Contains(t, m.attr(metric, "filter"), "severity>=CRITICAL")
	assert.Equal(t, "var.notification_channels", m.attr(m.resource(t, "google_monitoring_alert_policy.tampering"), "notification_channels"))

	hmac := m.resource(t, "google_org_policy_policy.deny_hmac")
	assert.Equal(t, "var.deny_hmac_keys ? 1 : 0", m.attr(hmac, "count"))
	assert.Equal(t, cty.False, value(t, m.variables["deny_hmac_keys"], "default"), "off by default: it needs org-policy rights")
	assert.Contains(t, m.attr(hmac, "name"), "storage.restrictAuthTypes")
	assert.Equal(t, `["in:ALL_HMAC_SIGNED_REQUESTS"]`, m.attr(block(t, hmac, "spec", "rules", "values"), "denied_values"))
}

// TestAuditLogs: storage DATA_WRITE audit logs on by default; the watched bucket's Data
// Access entries alone copied into the module's log bucket; the runtime reads them through
// one view, granted on that view.
func TestAuditLogs(t *testing.T) {
	m := load(t, ".")
	ac := m.resource(t, "google_project_iam_audit_config.storage")
	assert.Equal(t, "var.storage_data_write_audit_logs ? 1 : 0", m.attr(ac, "count"))
	assert.Equal(t, cty.True, value(t, m.variables["storage_data_write_audit_logs"], "default"), "on by default")
	assert.Equal(t, cty.StringVal("storage.googleapis.com"), value(t, ac, "service"))
	cfgs := blocks(ac, "audit_log_config")
	require.Len(t, cfgs, 1, "DATA_WRITE only: reads are not needed to name a writer")
	assert.Equal(t, cty.StringVal("DATA_WRITE"), value(t, cfgs[0], "log_type"))
	assert.Empty(t, blocks(cfgs[0], "exempted_members"), "nobody is exempted")

	lb := m.resource(t, "google_logging_project_bucket_config.audit")
	assert.Equal(t, `"${local.name}-audit"`, m.attr(lb, "bucket_id"))
	assert.Equal(t, "var.audit_log_retention_days", m.attr(lb, "retention_days"))

	sink := m.resource(t, "google_logging_project_sink.audit")
	assert.Equal(t, `"logging.googleapis.com/${google_logging_project_bucket_config.audit.id}"`, m.attr(sink, "destination"))
	assert.Equal(t, "local.audit_sink_filter", m.attr(sink, "filter"))
	filter := m.text(m.locals["audit_sink_filter"].Expr)
	for _, part := range []string{
		`log_id(\"cloudaudit.googleapis.com/data_access\")`,
		`protoPayload.serviceName=\"storage.googleapis.com\"`,
		`resource.type=\"gcs_bucket\"`,
		`resource.labels.bucket_name=\"${local.watched_bucket}\"`,
	} {
		assert.Contains(t, filter, part)
	}

	view := m.resource(t, "google_logging_log_view.watched_writes")
	assert.Equal(t, "google_logging_project_bucket_config.audit.id", m.attr(view, "bucket"))
	assert.Contains(t, m.attr(view, "filter"), `resource.type = \"gcs_bucket\"`)
	assert.Contains(t, m.attr(view, "filter"), `LOG_ID(\"cloudaudit.googleapis.com/data_access\")`)

	grant := m.resource(t, "google_logging_log_view_iam_member.runtime_audit_view")
	assert.Equal(t, `"projects/${var.project_id}"`, m.attr(grant, "parent"))
	assert.Equal(t, "google_logging_project_bucket_config.audit.bucket_id", m.attr(grant, "bucket"))
	assert.Equal(t, "google_logging_project_bucket_config.audit.location", m.attr(grant, "location"))
	assert.Empty(t, blocks(grant, "condition"), "a grant on the view itself needs no condition")

	// No project-wide Logging read for anyone but the build's log writer.
	for key, r := range m.resources {
		if r.Labels[0] == "google_project_iam_member" && strings.Contains(m.attr(r, "role"), "logging") {
			assert.Equal(t, "google_project_iam_member.build_logs", key)
		}
	}
	assert.Equal(t, "local.audit_log_view", m.attr(m.outputs["audit_log_view"], "value"))
	assert.Equal(t, `"projects/${var.project_id}/locations/${google_logging_project_bucket_config.audit.location}/buckets/${google_logging_project_bucket_config.audit.bucket_id}/views/${google_logging_log_view.watched_writes.name}"`,
		m.text(m.locals["audit_log_view"].Expr), "the view's full resource name, as entries:list takes it")
}

// TestPostureRoute: the optional Admin Activity route: off by default; the bucket's (and HMAC
// keys') Admin Activity entries to a topic of their own, published by the sink's identity,
// pushed to the function like the other topics.
func TestPostureRoute(t *testing.T) {
	m := load(t, ".")
	assert.Equal(t, cty.False, value(t, m.variables["posture_admin_route"], "default"))
	for _, key := range []string{"google_pubsub_topic.posture", "google_logging_project_sink.posture", "google_pubsub_topic_iam_member.posture_sink_publishes", "google_pubsub_subscription.posture"} {
		assert.Equal(t, "var.posture_admin_route ? 1 : 0", m.attr(m.resource(t, key), "count"), key)
	}
	sink := m.resource(t, "google_logging_project_sink.posture")
	assert.Equal(t, `"pubsub.googleapis.com/${google_pubsub_topic.posture[0].id}"`, m.attr(sink, "destination"))
	filter := m.text(m.locals["posture_route_filter"].Expr)
	assert.Contains(t, filter, `log_id(\"cloudaudit.googleapis.com/activity\")`)
	assert.Contains(t, filter, `resource.labels.bucket_name=\"${local.watched_bucket}\"`)
	assert.Contains(t, filter, `protoPayload.methodName:\"storage.hmacKeys.\"`)

	sub := m.resource(t, "google_pubsub_subscription.posture")
	assert.Equal(t, "google_pubsub_topic.posture[0].id", m.attr(sub, "topic"))
	assert.Contains(t, m.attr(block(t, sub, "push_config"), "push_endpoint"), "/topics/${google_pubsub_topic.posture[0].name}")
	assert.Equal(t, "google_service_account.push.email", m.attr(block(t, sub, "push_config", "oidc_token"), "service_account_email"))
	assert.Equal(t, "local.push_base", m.attr(block(t, sub, "push_config", "oidc_token"), "audience"))
	assert.Equal(t, "google_pubsub_topic.dead_letter.id", m.attr(block(t, sub, "dead_letter_policy"), "dead_letter_topic"))
	assert.Equal(t, cty.StringVal(""), value(t, block(t, sub, "expiration_policy"), "ttl"))
	assert.Contains(t, m.attr(m.resource(t, "google_pubsub_subscription_iam_member.pubsub_forwards_dead_letters"), "for_each"),
		"posture = google_pubsub_subscription.posture[0].name", "dead letters of the posture route are moved too")
}

// TestVariablesAndOutputs: every input has a type and a description, every output a
// description, in the module and in the example.
func TestVariablesAndOutputs(t *testing.T) {
	for _, dir := range []string{".", filepath.Join("examples", "basic")} {
		m := load(t, dir)
		require.NotEmpty(t, m.variables, dir)
		for name, v := range m.variables {
			assert.NotEmpty(t, m.attr(v, "type"), "%s: variable %s has no type", dir, name)
			assert.NotEmpty(t, strings.Trim(m.attr(v, "description"), `" `), "%s: variable %s has no description", dir, name)
		}
		for name, o := range m.outputs {
			assert.NotEmpty(t, strings.Trim(m.attr(o, "description"), `" `), "%s: output %s has no description", dir, name)
		}
	}
	m := load(t, ".")
	assert.NotEmpty(t, m.outputs)
	for _, name := range []string{"rules", "slack", "public_access_prevention", "name_prefix", "function_source_zip"} {
		assert.NotEmpty(t, blocks(m.variables[name], "validation"), "variable %s has no validation", name)
	}
}

func TestVersions(t *testing.T) {
	for _, dir := range []string{".", filepath.Join("examples", "basic")} {
		m := load(t, dir)
		require.Len(t, m.terraform, 1, dir)
		tf := m.terraform[0]
		assert.NotEmpty(t, m.attr(tf, "required_version"), dir)
		rp := block(t, tf, "required_providers")
		require.Len(t, rp.Body.Attributes, 1, "%s: the google provider alone", dir)
		v, diags := rp.Body.Attributes["google"].Expr.Value(nil)
		require.False(t, diags.HasErrors())
		assert.Equal(t, "hashicorp/google", v.GetAttr("source").AsString(), dir)
		assert.Regexp(t, `^~> [0-9]+\.[0-9]+$`, v.GetAttr("version").AsString(), "%s: pin the provider's major version", dir)
	}
}

func TestCheckScript(t *testing.T) {
	fi, err := os.Stat("check.sh")
	require.NoError(t, err)
	assert.NotZero(t, fi.Mode()&0o111, "check.sh must be executable")
	data, err := os.ReadFile("check.sh")
	require.NoError(t, err)
	for _, step := range []string{"fmt -check", "validate", "test", "--minimum-severity HIGH"} {
		assert.Contains(t, string(data), step)
	}
}

// TestFormat runs terraform fmt -check when a terraform or tofu binary is there.
func TestFormat(t *testing.T) {
	bin := ""
	for _, name := range []string{"terraform", "tofu"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Skip("no terraform or tofu binary on PATH: terraform fmt -check skipped (terraform/check.sh runs it where terraform is installed)")
	}
	cfg := filepath.Join(t.TempDir(), "cli.tfrc")
	require.NoError(t, os.WriteFile(cfg, nil, 0o644))
	cmd := exec.Command(bin, "fmt", "-check", "-recursive", "-diff", ".")
	cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1", "TF_CLI_CONFIG_FILE="+cfg)
	out, err := cmd.CombinedOutput()
	assert.NoError(t, err, "terraform fmt would change:\n%s", out)
}

// TestReadme: the README's inputs and outputs tables are variables.tf and outputs.tf in
// words: the same names in the same order, each input with its type, default and
// description, each output with its description. A failure shows the rows the tables
// should hold.
func TestReadme(t *testing.T) {
	data, err := os.ReadFile("README.md")
	require.NoError(t, err)
	readme := string(data)
	m := load(t, ".")

	var inputs []string
	for _, name := range inFileOrder(m.variables) {
		v := m.variables[name]
		def := "required"
		if a, ok := v.Body.Attributes["default"]; ok {
			def = "`" + strings.Join(strings.Fields(m.text(a.Expr)), " ") + "`"
		}
		inputs = append(inputs, row("`"+name+"`", "`"+typeName(t, v.Body.Attributes["type"].Expr)+"`", def, description(t, v)))
	}
	assert.Equal(t, inputs, tableRows(t, readme, "## Inputs", "| name | type | default | description |"),
		"README.md's inputs table must list variables.tf's inputs, in its order, with their types, defaults and descriptions")

	var outputs []string
	for _, name := range inFileOrder(m.outputs) {
		outputs = append(outputs, row("`"+name+"`", description(t, m.outputs[name])))
	}
	assert.Equal(t, outputs, tableRows(t, readme, "## Outputs", "| name | description |"),
		"README.md's outputs table must list outputs.tf's outputs, in its order, with their descriptions")

	assert.Contains(t, readme, "tamperguard package -o")
	assert.Contains(t, readme, "terraform apply")
}

// TestReadmeRunbook: the alert's "Runbook" button points at terraform/README.md#runbook;
// that section covers every state an alert can lead with and every posture check.
func TestReadmeRunbook(t *testing.T) {
	data, err := os.ReadFile("README.md")
	require.NoError(t, err)
	readme := string(data)
	i := strings.Index(readme, "\n## Runbook\n")
	require.GreaterOrEqual(t, i, 0, "README.md has no \"## Runbook\" section (the alert's Runbook button links to it)")
	runbook := readme[i+1:]
	if j := strings.Index(runbook[3:], "\n## "); j >= 0 {
		runbook = runbook[:j+3]
	}
	assert.True(t, strings.HasSuffix(alerting.DefaultRunbookURL, "/terraform/README.md#runbook"), alerting.DefaultRunbookURL)
	for _, state := range []string{"✅ Restored", "🚨 STILL SERVED", "🚨 STILL MISSING", "⛔ Quarantined", "⚠️ Served until replaced", "⚠️ Could not verify"} {
		assert.Contains(t, runbook, "### "+state, "the runbook has no section for the alert state %q", state)
	}
	for _, check := range posture.Checks {
		assert.Contains(t, runbook, "`"+check+"`", "the runbook does not cover the posture check %q", check)
	}
}

// TestChecksFile: checks.tf holds check blocks and nothing else, because check.sh's tfsec
// scan (tfsec cannot parse check blocks) reads the module without that file.
func TestChecksFile(t *testing.T) {
	data, err := os.ReadFile("checks.tf")
	require.NoError(t, err)
	f, diags := hclsyntax.ParseConfig(data, "checks.tf", hcl.InitialPos)
	require.False(t, diags.HasErrors(), "%s", diags)
	body := f.Body.(*hclsyntax.Body)
	assert.Empty(t, body.Attributes)
	require.NotEmpty(t, body.Blocks)
	for _, b := range body.Blocks {
		assert.Equal(t, "check", b.Type, "checks.tf: a %s block %v would escape the tfsec scan", b.Type, b.Labels)
	}
	script, err := os.ReadFile("check.sh")
	require.NoError(t, err)
	assert.Contains(t, string(script), "--exclude=./checks.tf", "check.sh leaves out checks.tf, and only that file, from the scan")
}

// TestExample: the example speaks the module's language (a variable passed straight to the
// module has the module's name, and the module's default and type when it has them), its
// tfvars file names only its variables, and its README walks a first deployment through.
func TestExample(t *testing.T) {
	mod := load(t, ".")
	dir := filepath.Join("examples", "basic")
	ex := load(t, dir)

	src, err := os.ReadFile(filepath.Join(dir, "main.tf"))
	require.NoError(t, err)
	f, diags := hclsyntax.ParseConfig(src, "main.tf", hcl.InitialPos)
	require.False(t, diags.HasErrors(), "%s", diags)
	var call *hclsyntax.Block
	for _, b := range f.Body.(*hclsyntax.Body).Blocks {
		if b.Type == "module" && len(b.Labels) == 1 && b.Labels[0] == "tamperguard" {
			call = b
		}
	}
	require.NotNil(t, call, "examples/basic/main.tf has no module \"tamperguard\"")
	passed := 0
	for name, a := range call.Body.Attributes {
		if name == "source" {
			continue
		}
		_, known := mod.variables[name]
		assert.True(t, known, "the example passes %s, which the module does not have", name)
		if tr, ok := a.Expr.(*hclsyntax.ScopeTraversalExpr); ok && len(tr.Traversal) == 2 && tr.Traversal.RootName() == "var" {
			passed++
			assert.Equal(t, name, tr.Traversal[1].(hcl.TraverseAttr).Name, "the example's variable for the module's %s must be named like it", name)
		}
	}
	assert.GreaterOrEqual(t, passed, 8)

	compact := func(m *module, b *hclsyntax.Block, attr string) string {
		return strings.Join(strings.Fields(m.attr(b, attr)), "")
	}
	for name, v := range ex.variables {
		mv, ok := mod.variables[name]
		if !ok {
			continue
		}
		assert.Equal(t, compact(mod, mv, "type"), compact(ex, v, "type"), "variable %s: the example's type differs from the module's", name)
		if _, has := mv.Body.Attributes["default"]; has {
			assert.Equal(t, compact(mod, mv, "default"), compact(ex, v, "default"), "variable %s: the example's default differs from the module's", name)
		}
	}
	assert.Equal(t, cty.False, value(t, ex.variables["public_read"], "default"), "private unless asked for, like the module")

	// terraform.tfvars.example: what is set, and what is offered commented out, names the
	// example's variables.
	tfvars, err := os.ReadFile(filepath.Join(dir, "terraform.tfvars.example"))
	require.NoError(t, err)
	vf, diags := hclsyntax.ParseConfig(tfvars, "terraform.tfvars.example", hcl.InitialPos)
	require.False(t, diags.HasErrors(), "%s", diags)
	names := keysOf(ex.variables)
	for name := range vf.Body.(*hclsyntax.Body).Attributes {
		assert.Contains(t, names, name, "terraform.tfvars.example sets %s, which the example does not have", name)
	}
	// Top-level settings offered commented out ("# name = …"; nested lines are indented).
	offered := regexp.MustCompile(`(?m)^# ?([a-z_]+)\s*=`).FindAllStringSubmatch(string(tfvars), -1)
	require.NotEmpty(t, offered)
	for _, m := range offered {
		assert.Contains(t, names, m[1], "terraform.tfvars.example offers %s, which the example does not have", m[1])
	}
	assert.Contains(t, string(tfvars), "webhook_url_secret", "the incoming webhook is offered")
	assert.Contains(t, string(tfvars), "bot_token_secret", "the bot token is offered")

	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	require.NoError(t, err)
	for _, want := range []string{"tamperguard package -o", "terraform init", "terraform apply", "## Test it right after apply", "## Public downloads", "## Tear it down", "terraform destroy"} {
		assert.Contains(t, string(readme), want, "examples/basic/README.md")
	}
}

// inFileOrder returns the blocks' names in the order they are written.
func inFileOrder(blocks map[string]*hclsyntax.Block) []string {
	names := slices.Collect(maps.Keys(blocks))
	sort.Slice(names, func(i, j int) bool {
		a, b := blocks[names[i]].Range(), blocks[names[j]].Range()
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
	return names
}

// typeName is how the README writes a variable's type: object types as "object".
func typeName(t *testing.T, e hclsyntax.Expression) string {
	t.Helper()
	switch e := e.(type) {
	case *hclsyntax.ScopeTraversalExpr:
		return e.Traversal.RootName()
	case *hclsyntax.FunctionCallExpr:
		switch e.Name {
		case "object", "tuple":
			return e.Name
		case "optional":
			return typeName(t, e.Args[0])
		}
		return e.Name + "(" + typeName(t, e.Args[0]) + ")"
	}
	t.Fatalf("unexpected type expression %T", e)
	return ""
}

// description is a block's description on one line.
func description(t *testing.T, b *hclsyntax.Block) string {
	t.Helper()
	v := value(t, b, "description")
	return strings.Join(strings.Fields(v.AsString()), " ")
}

// row is a Markdown table row; "|" in a cell is escaped.
func row(cells ...string) string {
	for i, c := range cells {
		cells[i] = strings.ReplaceAll(c, "|", `\|`)
	}
	return "| " + strings.Join(cells, " | ") + " |"
}

// tableRows are the rows of the first table with that header after the heading.
func tableRows(t *testing.T, doc, heading, header string) []string {
	t.Helper()
	i := strings.Index(doc, "\n"+heading+"\n")
	require.GreaterOrEqual(t, i, 0, "README.md has no %q section", heading)
	lines := strings.Split(doc[i+1:], "\n")
	h := slices.Index(lines, header)
	require.GreaterOrEqual(t, h, 0, "README.md's %q section has no table with the header %q", heading, header)
	var rows []string
	for _, l := range lines[h+2:] {
		if !strings.HasPrefix(l, "|") {
			break
		}
		rows = append(rows, l)
	}
	return rows
}

// objectFields returns the attributes of an object type expression: object({...}), possibly
// wrapped in optional(...) or list(...).
func objectFields(t *testing.T, e hclsyntax.Expression) map[string]hclsyntax.Expression {
	t.Helper()
	call, ok := e.(*hclsyntax.FunctionCallExpr)
	require.True(t, ok, "not a type constructor: %T", e)
	switch call.Name {
	case "optional", "list":
		return objectFields(t, call.Args[0])
	case "object":
		cons, ok := call.Args[0].(*hclsyntax.ObjectConsExpr)
		require.True(t, ok)
		out := map[string]hclsyntax.Expression{}
		for _, item := range cons.Items {
			out[hcl.ExprAsKeyword(item.KeyExpr)] = item.ValueExpr
		}
		return out
	}
	t.Fatalf("unexpected type constructor %s", call.Name)
	return nil
}

// yamlFields are the YAML keys of a configuration struct.
func yamlFields(v any) []string {
	var out []string
	typ := reflect.TypeOf(v)
	for i := range typ.NumField() {
		tag, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
		if tag != "" && tag != "-" {
			out = append(out, tag)
		}
	}
	sort.Strings(out)
	return out
}

// yamlField is the field of a struct type with that YAML key.
func yamlField(typ reflect.Type, key string) (reflect.StructField, bool) {
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if typ.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for i := range typ.NumField() {
		if tag, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ","); tag == key {
			return typ.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

// zeroStruct is the zero value of a struct type, or of the struct a pointer type points to.
func zeroStruct(typ reflect.Type) any {
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	return reflect.New(typ).Elem().Interface()
}

// localItemsExpr is a local's object literal.
func (m *module) localItemsExpr(t *testing.T, local string) *hclsyntax.ObjectConsExpr {
	t.Helper()
	a, ok := m.locals[local]
	require.True(t, ok, "local %s missing", local)
	cons, ok := a.Expr.(*hclsyntax.ObjectConsExpr)
	require.True(t, ok, "local %s is not an object literal", local)
	return cons
}

func objectConsKeys(t *testing.T, cons *hclsyntax.ObjectConsExpr) map[string]hclsyntax.Expression {
	t.Helper()
	out := map[string]hclsyntax.Expression{}
	for _, item := range cons.Items {
		out[hcl.ExprAsKeyword(item.KeyExpr)] = item.ValueExpr
	}
	return out
}

func keysOf[V any](m map[string]V) []string {
	out := slices.Collect(maps.Keys(m))
	sort.Strings(out)
	return out
}

// TestRulesMatchTheConfigurationFormat: the typed rules variable and the rendered
// configuration use exactly the field names internal/config reads, so yamlencode produces
// a configuration the function accepts (it refuses unknown fields).
func TestRulesMatchTheConfigurationFormat(t *testing.T) {
	m := load(t, ".")
	rules := objectFields(t, m.variables["rules"].Body.Attributes["type"].Expr)
	assert.Equal(t, yamlFields(config.Rule{}), keysOf(merge(rules, "bucket")), "a rule's fields (bucket is filled in by the module)")
	assert.Equal(t, yamlFields(config.ReleaseSpec{}), keysOf(objectFields(t, rules["release"])))
	assert.Equal(t, yamlFields(config.KeySpec{}), keysOf(objectFields(t, rules["keys"])))
	assert.Equal(t, yamlFields(config.SigstoreIdentitySpec{}), keysOf(objectFields(t, objectFields(t, rules["keys"])["sigstore"])))
	assert.Equal(t, yamlFields(config.SigstoreSpec{}), keysOf(objectFields(t, rules["sigstore"])))
	assert.Equal(t, yamlFields(config.MetadataSpec{}), keysOf(objectFields(t, rules["metadata"])))

	cons, ok := m.locals["config"].Expr.(*hclsyntax.ObjectConsExpr)
	require.True(t, ok)
	top := map[string]bool{}
	for _, item := range cons.Items {
		top[hcl.ExprAsKeyword(item.KeyExpr)] = true
	}
	// posture: the section is being added to internal/config (issue 13); until it lands there,
	// the module's one extra top-level key is tolerated, and its keys are checked against
	// the struct as soon as the struct has it.
	want := yamlFields(config.Config{})
	if !slices.Contains(want, "posture") {
		want = append(want, "posture")
		sort.Strings(want)
	}
	assert.Equal(t, want, keysOf(top))
	postureCons, ok := cons.Items[slices.IndexFunc(cons.Items, func(i hclsyntax.ObjectConsItem) bool { return hcl.ExprAsKeyword(i.KeyExpr) == "posture" })].ValueExpr.(*hclsyntax.ObjectConsExpr)
	require.True(t, ok, "posture is an object literal")
	postureKeys := map[string]hclsyntax.Expression{}
	for _, item := range postureCons.Items {
		postureKeys[hcl.ExprAsKeyword(item.KeyExpr)] = item.ValueExpr
	}
	assert.Equal(t, []string{"allowed_hmac_access_ids", "bucket", "notification", "project", "repair"}, keysOf(postureKeys))
	notificationKeys := keysOf(merge(objectConsKeys(t, m.localItemsExpr(t, "notification")), "object_name_prefix"))
	assert.Equal(t, []string{"event_types", "object_name_prefix", "payload_format", "topic"}, notificationKeys)
	if f, ok := yamlField(reflect.TypeOf(config.Config{}), "posture"); ok {
		assert.Equal(t, yamlFields(zeroStruct(f.Type)), keysOf(postureKeys), "posture keys as internal/config reads them")
		if nf, ok := yamlField(f.Type, "notification"); ok {
			assert.Equal(t, yamlFields(zeroStruct(nf.Type)), notificationKeys, "posture.notification keys as internal/config reads them")
		}
	}
	// state: the module sets the bucket; every key it sets is one the configuration reads
	// (lease keeps its default).
	state, ok := cons.Items[slices.IndexFunc(cons.Items, func(i hclsyntax.ObjectConsItem) bool { return hcl.ExprAsKeyword(i.KeyExpr) == "state" })].ValueExpr.(*hclsyntax.ObjectConsExpr)
	require.True(t, ok)
	var stateKeys []string
	for _, item := range state.Items {
		stateKeys = append(stateKeys, hcl.ExprAsKeyword(item.KeyExpr))
	}
	assert.Contains(t, stateKeys, "bucket")
	assert.Subset(t, yamlFields(config.State{}), stateKeys)
}

func merge(m map[string]hclsyntax.Expression, extra ...string) map[string]hclsyntax.Expression {
	out := maps.Clone(m)
	for _, k := range extra {
		out[k] = nil
	}
	return out
}
