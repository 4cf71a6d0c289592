#!/usr/bin/env bash
# Offline validation of the Terraform module and its example:
#   terraform fmt -check, terraform validate (module and example), terraform test (the
#   module's security properties against a mocked provider), and tfsec with no HIGH or
#   CRITICAL finding.
#
# The registry is not needed: the hashicorp/google provider is built from the Go module proxy
# (once: 10 to 30 minutes cold on 2 cores, about 2 GB of RAM) and cached with tfsec under
# ${TAMPERGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tamperguard}; a CLI configuration
# with dev_overrides points terraform at it.
#
# Without a terraform (or tofu) binary the script says so loudly and exits 0: the Go tests
# still check the module's shape (go test ./terraform/). Everything else that goes wrong is
# a failure.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

# Pinned tools. The provider pseudo-version is the hashicorp/google 8.x source tree.
provider_module="github.com/hashicorp/terraform-provider-google"
provider_version="v1.20.1-0.20260828184646-f3721fb45fa3"
tfsec_module="github.com/aquasecurity/tfsec/cmd/tfsec"
tfsec_version="v1.26.0"

say() { printf '== %s\n' "$*"; }
die() { printf 'terraform/check.sh: %s\n' "$*" >&2; exit 1; }

tf="${TERRAFORM:-}"
if [ -z "$tf" ]; then
  tf="$(command -v terraform || command -v tofu || true)"
fi
if [ -z "$tf" ]; then
  cat >&2 <<'EOF'
##########################################################################################
#  SKIPPED: terraform/check.sh found no terraform or tofu binary, so the module was NOT   #
#  validated, tested or scanned. Install Terraform >= 1.9 and run terraform/check.sh.     #
##########################################################################################
EOF
  exit 0
fi
export CHECKPOINT_DISABLE=1 # no version check over the network
say "using $("$tf" version 2>/dev/null | head -n1) ($tf)"

cache="${TAMPERGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tamperguard}"
provider_dir="$cache/terraform-provider-google/$provider_version"
tfsec_dir="$cache/tfsec/$tfsec_version"

# install MODULE VERSION DIR BINARY: go install into DIR unless BINARY is already there.
# Built in a scratch directory and moved into place, so a half-built binary is never reused.
install() {
  local module="$1" version="$2" dir="$3" bin="$4"
  if [ -x "$dir/$bin" ]; then
    say "reusing $dir/$bin"
    return
  fi
  command -v go >/dev/null || die "go is needed to build $bin (nothing cached in $dir)"
  say "building $module@$version (once; cached in $dir)"
  mkdir -p "$(dirname "$dir")"
  local tmp
  tmp="$(mktemp -d "$(dirname "$dir")/.build-XXXXXX")"
  local start=$SECONDS
  if ! (cd "$tmp" && GOBIN="$tmp/bin" GOFLAGS=-buildvcs=false GOWORK=off go install "$module@$version"); then
    rm -rf "$tmp"
    die "go install $module@$version failed"
  fi
  rm -rf "$dir"
  mv "$tmp/bin" "$dir"
  rm -rf "$tmp"
  say "built $bin in $((SECONDS - start)) s"
}

install "$provider_module" "$provider_version" "$provider_dir" terraform-provider-google
if [ -n "${TFSEC:-}" ]; then
  tfsec="$TFSEC"
else
  install "$tfsec_module" "$tfsec_version" "$tfsec_dir" tfsec
  tfsec="$tfsec_dir/tfsec"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat >"$work/cli.tfrc" <<EOF
provider_installation {
  dev_overrides {
    "hashicorp/google" = "$provider_dir"
  }
  direct {}
}
EOF
export TF_CLI_CONFIG_FILE="$work/cli.tfrc"
export TF_IN_AUTOMATION=1
# Nothing is written next to the module: working directories go to the scratch directory.
export TF_DATA_DIR="$work/data-module"

# terraform warns about the development override on every command (and then says that
# there were warnings); the rest of its output is kept.
quiet() {
  local out status=0
  out="$("$@" -no-color 2>&1)" || status=$?
  printf '%s\n' "$out" | awk '
    /^Warning: Provider development overrides are in effect/ { skip = 1; next }
    skip && /^releases\.$/ { skip = 0; next }
    skip { next }
    /^Success! The configuration is valid, but there were some validation warnings$/ { print "Success! The configuration is valid."; drop = 1; next }
    drop && /^as shown above\.$/ { drop = 0; next }
    /^$/ { next }
    { drop = 0; print }'
  return $status
}

say "terraform fmt -check"
"$tf" fmt -check -recursive -diff . || die "terraform fmt would change the files above (run: terraform fmt -recursive terraform/)"

say "terraform validate (module)"
quiet "$tf" validate

say "terraform validate (examples/basic)"
(
  cd examples/basic
  export TF_DATA_DIR="$work/data-example"
  quiet "$tf" get >/dev/null
  quiet "$tf" validate
)

say "terraform test (the module's properties, mocked provider)"
quiet "$tf" test

say "tfsec (module and example; every finding shown, HIGH or CRITICAL fail)"
# tfsec cannot parse check blocks (Terraform 1.5): it scans a copy without checks.tf, which
# holds check blocks and nothing else (go test ./terraform/ makes sure of that).
scan="$work/scan"
mkdir -p "$scan"
tar -C "$here" --exclude=./checks.tf --exclude=./.terraform --exclude=./examples/basic/.terraform -cf - . | tar -C "$scan" -xf -
# The example is scanned as it comes (private) and with public downloads on, so that the
# public read grant, the one finding ignored with a justification, is scanned too.
printf 'public_read = true\n' >"$work/public.tfvars"
for target in .: examples/basic: "examples/basic:--tfvars-file=$work/public.tfvars"; do
  dir="${target%%:*}" extra="${target#*:}"
  (cd "$scan" && "$tfsec" --no-color --no-module-downloads --concise-output --include-ignored --soft-fail ${extra:+"$extra"} "$dir") ||
    die "tfsec could not scan terraform/$dir ${extra:+($extra) }(above)"
  (cd "$scan" && "$tfsec" --no-color --no-module-downloads --concise-output --minimum-severity HIGH ${extra:+"$extra"} "$dir" >/dev/null) ||
    die "tfsec: HIGH or CRITICAL findings in terraform/$dir ${extra:+($extra) }(above)"
done

say "terraform/check.sh: all checks passed"
