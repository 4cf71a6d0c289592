#!/usr/bin/env bash
# Regenerates the signed-release fixtures under testdata/ with the real tools
# (gpg, git, ssh-keygen, cosign), so tests check signatures those tools made.
#
# ALL KEYS MADE HERE ARE TEST-ONLY. Never trust them for anything.
#
# Idempotent: it deletes and rewrites everything it owns (testdata/keys,
# testdata/release, testdata/git, the generated block of testdata/README.md,
# through gen-signing.sh testdata/ssh and testdata/openpgp-policy, and through
# gen-formats.sh testdata/clearsigned, testdata/threshold and the generated files
# of testdata/sigstore).
# Key material is random, so fingerprints change on every run; the tests read
# them from testdata/keys/FINGERPRINTS, which this script writes from the
# tools' own output. The default test suite never runs this script.
#
# Needs: bash, gpg 2.2+, git 2.34+ (SSH tag signing), ssh-keygen, sha256sum,
# base64, go (to build cosign once from the Go module proxy; the binary is
# cached in $TAMPERGUARD_TOOLS, default ~/.cache/tamperguard). Set COSIGN to
# use an existing cosign binary instead.
set -euo pipefail

COSIGN_VERSION=v2.6.5
COSIGN_PASSWORD_TEST=test-only-password

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
keys=$here/keys
release=$here/release
gitdir=$here/git

for tool in gpg gpgconf git ssh-keygen sha256sum base64 awk; do
	command -v "$tool" >/dev/null || { echo "gen.sh: missing tool: $tool" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tg-gen.XXXXXX")
export GNUPGHOME=$tmp/gnupg
mkdir -m 700 "$GNUPGHOME"
cleanup() {
	local rc=$?
	if ((rc != 0)) && [[ -s $tmp/gpg.log ]]; then
		echo "gen.sh: failed; last gpg messages:" >&2
		tail -n 20 "$tmp/gpg.log" >&2
	fi
	gpgconf --homedir "$GNUPGHOME" --kill all >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

# cosign: built before HOME is replaced below, so the cache is the real one.
cosign_bin=${COSIGN:-}
if [[ -z $cosign_bin ]]; then
	tools=${TAMPERGUARD_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/tamperguard}
	cosign_bin=$tools/cosign-$COSIGN_VERSION
	if [[ ! -x $cosign_bin ]]; then
		command -v go >/dev/null || { echo "gen.sh: need go to build cosign (or set COSIGN)" >&2; exit 1; }
		echo "gen.sh: building cosign $COSIGN_VERSION from the Go module proxy (takes minutes once)" >&2
		mkdir -p "$tools"
		(cd "$tmp" && GOBIN=$tmp/gobin GOFLAGS=-buildvcs=false go install "github.com/sigstore/cosign/v2/cmd/cosign@$COSIGN_VERSION")
		mv "$tmp/gobin/cosign" "$cosign_bin"
	fi
fi
cosign_version=$("$cosign_bin" version 2>&1 | awk '/^GitVersion:/{print $2}')

# Keep the environment of the person running this out of the fixtures.
export TZ=UTC LC_ALL=C
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export HOME=$tmp/home TUF_ROOT=$tmp/tuf
mkdir -p "$HOME"
printf 'batch\nno-tty\npinentry-mode loopback\n' >"$GNUPGHOME/gpg.conf"

# Every gpg call goes through this so its clock can be faked per call:
#   FAKETIME=20250101T000000 gpgt ...   (frozen at that UTC instant)
gpgt() {
	if [[ -n ${FAKETIME:-} ]]; then
		gpg --faked-system-time "${FAKETIME}!" "$@" 2>>"$tmp/gpg.log"
	else
		gpg "$@" 2>>"$tmp/gpg.log"
	fi
}

# ---------------------------------------------------------------- outputs
rm -rf "$keys" "$release" "$gitdir"
mkdir -p "$keys" "$release" "$gitdir"

# ---------------------------------------------------------------- OpenPGP keys
# genkey NAME FAKETIME PARAMS... : batch-generates one key, prints its fingerprint.
genkey() {
	local name=$1 when=$2
	shift 2
	{
		echo '%no-protection'
		printf '%s\n' "$@"
		echo '%commit'
	} >"$tmp/$name.params"
	FAKETIME=$when gpgt --gen-key "$tmp/$name.params"
}
fpr_of() { # EMAIL -> primary fingerprint
	gpg --with-colons --fingerprint "<$1>" 2>/dev/null | awk -F: '/^fpr:/{print $10; exit}'
}
KEYS_CREATED=20250101T000000

genkey maintainer-ed25519 $KEYS_CREATED \
	'Key-Type: eddsa' 'Key-Curve: ed25519' 'Key-Usage: sign' \
	'Subkey-Type: ecdh' 'Subkey-Curve: cv25519' 'Subkey-Usage: encrypt' \
	'Name-Real: Test Maintainer' 'Name-Comment: TEST ONLY' 'Name-Email: maintainer@example.org' \
	'Expire-Date: 0'
# RSA: a certify-only primary and a separate signing subkey, as many real
# maintainers have, so the "signed by a subkey" path is exercised.
genkey maintainer-rsa3072 $KEYS_CREATED \
	'Key-Type: RSA' 'Key-Length: 3072' 'Key-Usage: cert' \
	'Subkey-Type: RSA' 'Subkey-Length: 3072' 'Subkey-Usage: sign' \
	'Name-Real: Test Maintainer RSA' 'Name-Comment: TEST ONLY' 'Name-Email: maintainer-rsa@example.org' \
	'Expire-Date: 0'
genkey other-ed25519 $KEYS_CREATED \
	'Key-Type: eddsa' 'Key-Curve: ed25519' 'Key-Usage: sign' \
	'Name-Real: Other Person' 'Name-Comment: TEST ONLY, not pinned' 'Name-Email: other@example.org' \
	'Expire-Date: 0'
genkey rsa1024 $KEYS_CREATED \
	'Key-Type: RSA' 'Key-Length: 1024' 'Key-Usage: sign' \
	'Name-Real: Weak RSA1024' 'Name-Comment: TEST ONLY' 'Name-Email: rsa1024@example.org' \
	'Expire-Date: 0'
# Valid for one day at the start of 2024, long expired since.
genkey expired-ed25519 20240101T000000 \
	'Key-Type: eddsa' 'Key-Curve: ed25519' 'Key-Usage: sign' \
	'Name-Real: Expired Key' 'Name-Comment: TEST ONLY' 'Name-Email: expired@example.org' \
	'Expire-Date: 1d'
genkey revoked-ed25519 $KEYS_CREATED \
	'Key-Type: eddsa' 'Key-Curve: ed25519' 'Key-Usage: sign' \
	'Name-Real: Revoked Key' 'Name-Comment: TEST ONLY' 'Name-Email: revoked@example.org' \
	'Expire-Date: 0'
# Certify-only primary plus an encryption subkey: nothing may sign data.
genkey nosign-ed25519 $KEYS_CREATED \
	'Key-Type: eddsa' 'Key-Curve: ed25519' 'Key-Usage: cert' \
	'Subkey-Type: ecdh' 'Subkey-Curve: cv25519' 'Subkey-Usage: encrypt' \
	'Name-Real: No Signing Capability' 'Name-Comment: TEST ONLY' 'Name-Email: nosign@example.org' \
	'Expire-Date: 0'

FPR_MAINT=$(fpr_of maintainer@example.org)
FPR_RSA=$(fpr_of maintainer-rsa@example.org)
FPR_OTHER=$(fpr_of other@example.org)
FPR_WEAK=$(fpr_of rsa1024@example.org)
FPR_EXPIRED=$(fpr_of expired@example.org)
FPR_REVOKED=$(fpr_of revoked@example.org)
FPR_NOSIGN=$(fpr_of nosign@example.org)
# An encryption subkey too, so the RSA key looks like a real one.
FAKETIME=$KEYS_CREATED gpgt --passphrase "" --quick-add-key "$FPR_RSA" rsa3072 encr 0

# ---------------------------------------------------------------- release files
cat >"$release/install.sh" <<'EOF'
#!/usr/bin/env bash
# TEST FIXTURE ONLY: a small install script in the shape of a real one.
set -euo pipefail
VERSION=1.0.0
url="https://uploader.example.org/v${VERSION}/linux/codecov"
curl -fsSLo codecov "$url"
curl -fsSLo SHA256SUMS "https://uploader.example.org/v${VERSION}/SHA256SUMS"
grep ' \*\?codecov$' SHA256SUMS | sha256sum -c -
chmod +x codecov
EOF
chmod 755 "$release/install.sh"

# fakebin TAG: deterministic binary-looking bytes (all 256 byte values).
fakebin() {
	local i
	printf '\177ELF\002\001\001\000TEST-ONLY fake uploader %s\n' "$1"
	for ((i = 0; i < 512; i++)); do
		printf "\\$(printf '%03o' $(((i * 37 + 11) % 256)))"
	done
}
fakebin release >"$release/codecov"

(cd "$release" && { sha256sum install.sh; sha256sum -b codecov; } >SHA256SUMS)

SIGNED_AT=20250601T120000
sign() { # FPR OUT [gpg options...]: detached signature over SHA256SUMS
	local fpr=$1 out=$2
	shift 2
	FAKETIME=${SIGN_TIME:-$SIGNED_AT} gpgt --yes --local-user "$fpr" "$@" \
		--detach-sign --output "$release/$out" "$release/SHA256SUMS"
}
sign "$FPR_MAINT" SHA256SUMS.asc --armor
sign "$FPR_MAINT" SHA256SUMS.textmode.asc --armor --textmode
sign "$FPR_RSA" SHA256SUMS.rsa.sig
sign "$FPR_OTHER" SHA256SUMS.other.asc --armor
sign "$FPR_MAINT" SHA256SUMS.sha1.asc --armor --digest-algo SHA1 --allow-weak-digest-algos
sign "$FPR_WEAK" SHA256SUMS.rsa1024.asc --armor
SIGN_TIME=20240101T120000 sign "$FPR_EXPIRED" SHA256SUMS.expired.asc --armor
sign "$FPR_REVOKED" SHA256SUMS.revoked.asc --armor

# Revoke after signing (reason: key compromised), then export the public key
# with the revocation merged in.
printf 'y\n1\nTEST ONLY revocation\n\ny\n' |
	FAKETIME=20250701T000000 gpgt --command-fd 0 --no-batch --armor \
		--output "$tmp/revoked.rev" --gen-revoke "$FPR_REVOKED"
gpgt --import "$tmp/revoked.rev"

# One digest changed (the first hex digit of install.sh's line).
awk 'NR==1{c=substr($0,1,1); $0=(c=="0"?"1":"0") substr($0,2)} {print}' \
	"$release/SHA256SUMS" >"$release/SHA256SUMS.tampered"

export_pub() { gpgt --armor --export-options export-minimal --export "$1" >"$keys/$2"; }
export_pub "$FPR_MAINT" maintainer-ed25519.asc
export_pub "$FPR_RSA" maintainer-rsa3072.asc
export_pub "$FPR_OTHER" other-ed25519.asc
export_pub "$FPR_WEAK" rsa1024.asc
export_pub "$FPR_EXPIRED" expired-ed25519.asc
export_pub "$FPR_REVOKED" revoked-ed25519.asc
export_pub "$FPR_NOSIGN" nosign-ed25519.asc

# ---------------------------------------------------------------- SSH
ssh-keygen -q -t ed25519 -N '' -C 'release@example.org TEST-ONLY' -f "$tmp/release_ed25519"
ssh-keygen -q -t ed25519 -N '' -C 'other@example.org TEST-ONLY' -f "$tmp/other_ssh_ed25519"
ssh-keygen -q -t rsa -b 3072 -N '' -C 'release-rsa@example.org TEST-ONLY' -f "$tmp/ssh_rsa3072"
ssh-keygen -q -t rsa -b 1024 -N '' -C 'weak@example.org TEST-ONLY' -f "$tmp/ssh_rsa1024"
for k in release_ed25519 other_ssh_ed25519 ssh_rsa3072 ssh_rsa1024; do
	cp "$tmp/$k.pub" "$keys/$k.pub"
done

sshsign() { # KEY NAMESPACE OUT
	rm -f "$release/SHA256SUMS.sig"
	ssh-keygen -q -Y sign -n "$2" -f "$tmp/$1" "$release/SHA256SUMS"
	mv "$release/SHA256SUMS.sig" "$release/$3"
}
sshsign release_ed25519 file SHA256SUMS.ssh.sig
sshsign release_ed25519 git SHA256SUMS.ssh-wrongns.sig
sshsign other_ssh_ed25519 file SHA256SUMS.ssh-other.sig
sshsign ssh_rsa3072 file SHA256SUMS.ssh-rsa.sig

# ---------------------------------------------------------------- cosign
(
	cd "$tmp"
	export COSIGN_PASSWORD=$COSIGN_PASSWORD_TEST
	"$cosign_bin" generate-key-pair >/dev/null 2>&1
	"$cosign_bin" sign-blob --yes --key cosign.key --tlog-upload=false \
		--output-signature "$release/SHA256SUMS.cosign.sig" "$release/SHA256SUMS" >/dev/null 2>&1
	"$cosign_bin" verify-blob --key cosign.pub --insecure-ignore-tlog=true \
		--signature "$release/SHA256SUMS.cosign.sig" "$release/SHA256SUMS" >/dev/null 2>&1
)
cp "$tmp/cosign.pub" "$keys/cosign.pub"
cp "$tmp/cosign.key" "$keys/cosign.secret.key"

# ---------------------------------------------------------------- git
# A gpg wrapper so git's signing runs with a faked clock and extra options.
cat >"$tmp/gpg-for-git" <<EOF
#!/usr/bin/env bash
exec gpg --faked-system-time "\${FAKETIME}!" \${GEN_GPG_EXTRA:-} "\$@"
EOF
chmod +x "$tmp/gpg-for-git"

work=$tmp/uploader
git init -q -b main "$work"
g() { git -C "$work" -c user.name='Test Maintainer' -c user.email=maintainer@example.org \
	-c commit.gpgSign=false -c tag.gpgSign=false -c gpg.program="$tmp/gpg-for-git" "$@"; }

# release VERSION DATE: one commit whose tree holds install.sh, codecov and a
# SHA256SUMS that matches them.
release_commit() {
	local version=$1 date=$2
	sed "s/^VERSION=.*/VERSION=$version/" "$release/install.sh" >"$work/install.sh"
	chmod 755 "$work/install.sh"
	fakebin "$version" >"$work/codecov"
	(cd "$work" && { sha256sum install.sh; sha256sum -b codecov; } >SHA256SUMS)
	g add install.sh codecov SHA256SUMS
	GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date g commit -q -m "Release $version"
}
# tag NAME DATE FAKETIME [git tag options...]
tag() {
	local name=$1 date=$2 when=$3
	shift 3
	GIT_COMMITTER_DATE=$date FAKETIME=$when g tag "$@" -m "Release $name" "$name"
}

release_commit 0.9.0 2024-01-01T11:00:00Z
tag expired-signed 2024-01-01T12:00:00Z 20240101T120000 -s -u "$FPR_EXPIRED"
release_commit 1.0.0 2025-03-01T12:00:00Z
tag v1.0.0 2025-03-01T12:00:00Z 20250301T120000 -s -u "$FPR_MAINT"
release_commit 1.1.0 2025-03-08T12:00:00Z
GIT_COMMITTER_DATE=2025-03-08T12:00:00Z g -c gpg.format=ssh -c user.signingKey="$tmp/release_ed25519" \
	tag -s -m 'Release v1.1.0' v1.1.0
release_commit 1.2.0 2025-03-15T12:00:00Z
tag v1.2.0 2025-03-15T12:00:00Z 20250315T120000 -s -u "$FPR_RSA"
release_commit 1.3.0 2025-03-22T12:00:00Z
tag v1.3.0 2025-03-22T12:00:00Z 20250322T120000 -a
release_commit 1.4.0 2025-03-29T12:00:00Z
tag v1.4.0 2025-03-29T12:00:00Z 20250329T120000 -s -u "$FPR_OTHER"
release_commit 1.5.0 2025-04-05T12:00:00Z
g tag v1.5.0
release_commit 1.6.0 2025-04-12T12:00:00Z
GEN_GPG_EXTRA='--digest-algo SHA1 --allow-weak-digest-algos' \
	tag sha1-signed 2025-04-12T12:00:00Z 20250412T120000 -s -u "$FPR_MAINT"

bare=$gitdir/uploader.git
git init -q --bare -b main "$bare"
git -C "$work" push -q "$bare" main 'refs/tags/*:refs/tags/*'
# Few, plain files: one pack, packed tags, the branch as one loose ref (so
# refs/ exists in a checkout, where git keeps no empty directories).
git -C "$bare" -c repack.writeBitmaps=false repack -q -a -d
git -C "$bare" prune-packed
git -C "$bare" pack-refs
rm -rf "$bare/hooks" "$bare/info" "$bare/description" "$bare/logs" "$bare/objects/info/packs"
find "$bare" -type d -empty -delete
git --git-dir="$bare" fsck --strict --no-dangling >/dev/null
# Check the chain is intact in the copy that goes into the tree.
git --git-dir="$bare" verify-tag v1.0.0 >/dev/null 2>&1

# ---------------------------------------------------------------- documents
fp_ssh() { ssh-keygen -lf "$1" | awk '{print $2}'; }
fp_cosign() {
	printf 'SHA256:%s\n' "$(sed '/^-----/d' "$1" | base64 -d | sha256sum | cut -d' ' -f1)"
}
{
	echo '# name	scheme	fingerprint (printed by gpg / ssh-keygen / sha256sum of the DER SPKI). TEST-ONLY keys. Generated by gen.sh.'
	printf '%s\topenpgp\t%s\n' \
		maintainer-ed25519.asc "$FPR_MAINT" maintainer-rsa3072.asc "$FPR_RSA" \
		other-ed25519.asc "$FPR_OTHER" rsa1024.asc "$FPR_WEAK" expired-ed25519.asc "$FPR_EXPIRED" \
		revoked-ed25519.asc "$FPR_REVOKED" nosign-ed25519.asc "$FPR_NOSIGN"
	for k in release_ed25519 other_ssh_ed25519 ssh_rsa3072 ssh_rsa1024; do
		printf '%s\tssh\t%s\n' "$k.pub" "$(fp_ssh "$keys/$k.pub")"
	done
	printf '%s\tcosign\t%s\n' cosign.pub "$(fp_cosign "$keys/cosign.pub")"
} >"$keys/FINGERPRINTS"

tag_row() { # NAME KIND SIGNER
	local commit sum
	commit=$(git --git-dir="$bare" rev-parse "$1^{commit}")
	sum=$(git --git-dir="$bare" cat-file blob "$1:install.sh" | sha256sum | cut -d' ' -f1)
	printf '| `%s` | %s | %s | `%s` | `%s` |\n' "$1" "$2" "$3" "${commit:0:12}" "$sum"
}
{
	cat <<EOF
# testdata/git/uploader.git

**TEST-ONLY keys signed these tags. Never trust them.** Generated by \`testdata/gen.sh\`;
do not edit by hand (regenerating changes every key, signature and hash below).

A bare repository. Every tagged commit's tree holds \`install.sh\` (with its own
\`VERSION=\` line), \`codecov\` (fake binary bytes) and a \`SHA256SUMS\` that matches
both (\`sha256sum install.sh\` and \`sha256sum -b codecov\`). Branch \`main\` is the
newest commit (\`sha1-signed\`'s).

| tag | kind | signer (see ../keys/FINGERPRINTS) | commit | sha256 of install.sh |
| --- | --- | --- | --- | --- |
EOF
	tag_row expired-signed 'annotated, OpenPGP signed 2024-01-01 while the key was valid' 'expired-ed25519 (expired 2024-01-02)'
	tag_row v1.0.0 'annotated, OpenPGP signed' "maintainer-ed25519 $FPR_MAINT"
	tag_row v1.1.0 'annotated, SSH signed (namespace git)' "release_ed25519 $(fp_ssh "$keys/release_ed25519.pub")"
	tag_row v1.2.0 'annotated, OpenPGP signed by the signing subkey' "maintainer-rsa3072 $FPR_RSA"
	tag_row v1.3.0 'annotated, UNSIGNED' '-'
	tag_row v1.4.0 'annotated, OpenPGP signed by a key that is not pinned' "other-ed25519 $FPR_OTHER"
	tag_row v1.5.0 'lightweight (no tag object)' '-'
	tag_row sha1-signed 'annotated, OpenPGP signed with a SHA-1 digest' "maintainer-ed25519 $FPR_MAINT"
} >"$gitdir/TAGS.md"

# The generated block of README.md: only the text between the markers changes.
block=$tmp/readme-block
{
	echo '<!-- BEGIN gen.sh: generated, do not edit by hand -->'
	echo '| key file | scheme | fingerprint |'
	echo '| --- | --- | --- |'
	grep -v '^#' "$keys/FINGERPRINTS" | awk -F'\t' '{printf "| `%s` | %s | `%s` |\n", $1, $2, $3}'
	echo
	echo "Made with $(gpg --version | head -1), $(git --version), $(ssh -V 2>&1 | cut -d, -f1), cosign $cosign_version."
	echo '<!-- END gen.sh -->'
} >"$block"
readme=$here/README.md
if [[ -f $readme ]] && grep -q '^<!-- BEGIN gen.sh' "$readme"; then
	awk -v blockfile="$block" '
		/^<!-- BEGIN gen.sh/ { while ((getline line < blockfile) > 0) print line; skip = 1; next }
		/^<!-- END gen.sh/ { skip = 0; next }
		!skip { print }' "$readme" >"$tmp/readme" && cat "$tmp/readme" >"$readme"
else
	{ [[ -f $readme ]] && cat "$readme" && echo; cat "$block"; } >"$tmp/readme" && cat "$tmp/readme" >"$readme"
fi

# The signature-policy fixtures (testdata/ssh, testdata/openpgp-policy) have a
# script of their own, so they can be remade without touching the ones above.
"$here/gen-signing.sh"
# The release-format fixtures (clearsigned files, k-of-n, cosign v3 bundles) too.
"$here/gen-formats.sh"
# The fixtures of the rules that use those formats (a signature over each file, SHA-512
# checksums, Codecov's layout, the attested npm package); after gen-formats.sh, whose cosign
# v3 it uses.
"$here/gen-wire.sh"

echo "gen.sh: fixtures regenerated (cosign $cosign_version)" >&2
