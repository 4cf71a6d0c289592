#!/usr/bin/env bash
# Regenerates testdata/rollback: two releases of one project whose checksum
# files are signed at known times by the real tools, for the rollback and
# replay tests (an older signed checksum file served as the newer one).
#
# ALL KEYS MADE HERE ARE TEST-ONLY. Only the public keys are kept; the private
# keys live in a throw-away directory and are deleted when the script ends.
#
# Needs: bash, gpg 2.2+, ssh-keygen, sha256sum. Idempotent: it rewrites every
# file under testdata/rollback except this script and README.md. Key material
# is random, so the keys and signatures change on every run (the tests only
# rely on what this script fixes: file contents, versions and signing times).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for tool in gpg gpgconf ssh-keygen sha256sum; do
	command -v "$tool" >/dev/null || { echo "rollback/gen.sh: missing tool: $tool" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tg-rollback.XXXXXX")
export GNUPGHOME=$tmp/gnupg TZ=UTC LC_ALL=C
mkdir -m 700 "$GNUPGHOME"
trap 'gpgconf --homedir "$GNUPGHOME" --kill all >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
printf 'batch\nno-tty\npinentry-mode loopback\n' >"$GNUPGHOME/gpg.conf"

gpgt() { # FAKETIME GPG-ARGS...: gpg with its clock frozen at that UTC instant
	local when=$1
	shift
	gpg --faked-system-time "${when}!" "$@" 2>>"$tmp/gpg.log"
}

rm -rf "$here/v1.0.0" "$here/v1.1.0" "$here/rollback-ed25519.asc" "$here/rollback_ed25519.pub"

cat >"$tmp/key.params" <<'PARAMS'
%no-protection
Key-Type: eddsa
Key-Curve: ed25519
Key-Usage: sign
Name-Real: Rollback Fixture Maintainer
Name-Comment: TEST ONLY
Name-Email: rollback@example.org
Expire-Date: 0
%commit
PARAMS
gpgt 20250101T000000 --gen-key "$tmp/key.params"
fpr=$(gpg --with-colons --fingerprint '<rollback@example.org>' 2>/dev/null | awk -F: '/^fpr:/{print $10; exit}')
gpgt 20250101T000000 --armor --export-options export-minimal --export "$fpr" >"$here/rollback-ed25519.asc"

ssh-keygen -q -t ed25519 -N '' -C 'rollback@example.org TEST-ONLY' -f "$tmp/rollback_ed25519"
cp "$tmp/rollback_ed25519.pub" "$here/rollback_ed25519.pub"

# release VERSION SIGNED-AT: the files of one release and signatures over its
# two checksum files, OpenPGP (made at SIGNED-AT) and SSH (which carries no time).
release() {
	local version=$1 when=$2 dir=$here/v$1
	mkdir -p "$dir"
	cat >"$dir/install.sh" <<SCRIPT
#!/usr/bin/env bash
# TEST FIXTURE ONLY: the install script of release $version.
set -euo pipefail
VERSION=$version
curl -fsSLo tool.tar.gz "https://downloads.example.org/v\${VERSION}/tool-\${VERSION}-linux-amd64.tar.gz"
SCRIPT
	printf 'TEST-ONLY fake archive of tool %s\n' "$version" >"$dir/tool-$version-linux-amd64.tar.gz"
	(cd "$dir" && sha256sum install.sh >SHA256SUMS)
	(cd "$dir" && { sha256sum install.sh; sha256sum -b "tool-$version-linux-amd64.tar.gz"; } >SHA256SUMS.versioned)
	for sums in SHA256SUMS SHA256SUMS.versioned; do
		gpgt "$when" --yes --local-user "$fpr" --armor --detach-sign --output "$dir/$sums.asc" "$dir/$sums"
		ssh-keygen -q -Y sign -n file -f "$tmp/rollback_ed25519" "$dir/$sums"
		gpg --verify "$dir/$sums.asc" "$dir/$sums" 2>/dev/null
	done
}
release 1.0.0 20250301T120000
release 1.1.0 20250308T120000

echo "rollback/gen.sh: fixtures regenerated ($(gpg --version | head -1), $(ssh -V 2>&1 | cut -d, -f1))" >&2
