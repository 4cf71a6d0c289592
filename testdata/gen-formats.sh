#!/usr/bin/env bash
# Regenerates the release-format fixtures with the real tools:
#   testdata/clearsigned/  gpg --clearsign over a checksum file and a text with
#                          dash-escaped lines and trailing whitespace (a TEST-ONLY
#                          key made here);
#   testdata/threshold/    one detached signature file signed by two TEST-ONLY keys
#                          (the clearsign key and a second one);
#   testdata/sigstore/SHA256SUMS.cosign-key.sigstore.json (and .legacy.json)
#                          cosign v3 "sign-blob --bundle" with the TEST-ONLY cosign
#                          key pair of testdata/keys (no transparency log: the
#                          generator runs offline).
# The public fixtures in testdata/sigstore, testdata/codecov and
# testdata/clearsigned/node-* are copies of public files (see the READMEs there)
# and are not touched.
#
# ALL KEYS MADE HERE ARE TEST-ONLY. Never trust them for anything.
#
# gen.sh runs this at its end; it can also run alone. Needs: bash, gpg 2.2+,
# sha256sum, go (to build cosign v3 once from the Go module proxy; cached in
# $TAMPERGUARD_TOOLS, default ~/.cache/tamperguard; set COSIGN3 to use an
# existing cosign v3 binary).
set -euo pipefail

COSIGN3_VERSION=v3.1.3
COSIGN_PASSWORD_TEST=test-only-password

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
clear=$here/clearsigned
sigstore=$here/sigstore

for tool in gpg gpgconf sha256sum awk; do
	command -v "$tool" >/dev/null || { echo "gen-formats.sh: missing tool: $tool" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tg-genfmt.XXXXXX")
export GNUPGHOME=$tmp/gnupg
mkdir -m 700 "$GNUPGHOME"
cleanup() {
	gpgconf --homedir "$GNUPGHOME" --kill all >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

# cosign v3, built before HOME is replaced below so the cache is the real one.
cosign_bin=${COSIGN3:-}
if [[ -z $cosign_bin ]]; then
	tools=${TAMPERGUARD_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/tamperguard}
	cosign_bin=$tools/cosign-$COSIGN3_VERSION
	if [[ ! -x $cosign_bin ]]; then
		command -v go >/dev/null || { echo "gen-formats.sh: need go to build cosign (or set COSIGN3)" >&2; exit 1; }
		echo "gen-formats.sh: building cosign $COSIGN3_VERSION from the Go module proxy (takes minutes once)" >&2
		mkdir -p "$tools"
		(cd "$tmp" && GOBIN=$tmp/gobin GOFLAGS=-buildvcs=false go install "github.com/sigstore/cosign/v3/cmd/cosign@$COSIGN3_VERSION")
		mv "$tmp/gobin/cosign" "$cosign_bin"
	fi
fi
cosign_version=$("$cosign_bin" version 2>&1 | awk '/^GitVersion:/{print $2}')

export TZ=UTC LC_ALL=C
export HOME=$tmp/home TUF_ROOT=$tmp/tuf
mkdir -p "$HOME"
printf 'batch\nno-tty\npinentry-mode loopback\n' >"$GNUPGHOME/gpg.conf"

# ---------------------------------------------------------------- clearsigned
mkdir -p "$clear"
rm -f "$clear"/SHA256SUMS* "$clear"/notes.txt* "$clear"/oneline.txt* "$clear"/clearsign-ed25519.asc "$clear"/FINGERPRINT

cat >"$tmp/key.params" <<'EOF'
%no-protection
Key-Type: eddsa
Key-Curve: ed25519
Key-Usage: sign
Name-Real: Clearsign Maintainer
Name-Comment: TEST ONLY
Name-Email: clearsign@example.org
Expire-Date: 0
%commit
EOF
gpg --faked-system-time '20250101T000000!' --gen-key "$tmp/key.params" 2>/dev/null
fpr=$(gpg --with-colons --fingerprint '<clearsign@example.org>' 2>/dev/null | awk -F: '/^fpr:/{print $10; exit}')
gpg --armor --export-options export-minimal --export "$fpr" >"$clear/clearsign-ed25519.asc"
printf '%s\n' "$fpr" >"$clear/FINGERPRINT"

# The signed checksum file: the sha256sum lines of testdata/release.
cp "$here/release/SHA256SUMS" "$clear/SHA256SUMS"
# A text whose lines start with dashes (gpg dash-escapes them) and end in spaces
# (not covered by a clearsigned signature).
printf '%s\n' '- a line starting with a dash' '-----BEGIN PGP SIGNATURE----- (not really)' 'trailing spaces   ' 'plain' >"$clear/notes.txt"

clearsign() { # IN OUT [gpg options...]
	local in=$1 out=$2
	shift 2
	gpg --faked-system-time '20250601T120000!' --yes --local-user "$fpr" "$@" --clearsign --output "$clear/$out" "$clear/$in" 2>/dev/null
	gpg --verify "$clear/$out" 2>/dev/null
}
clearsign SHA256SUMS SHA256SUMS.asc
clearsign SHA256SUMS SHA256SUMS.sha512.asc --digest-algo SHA512
clearsign notes.txt notes.txt.asc
# A binary-mode (0x00) detached signature over one line without a newline: those
# bytes are also what a clearsigned frame around them would hash, so the tests can
# check that a non-text signature in a clearsigned frame is refused.
printf 'one line, no newline' >"$clear/oneline.txt"
gpg --faked-system-time '20250601T120000!' --yes --armor --local-user "$fpr" \
	--detach-sign --output "$clear/oneline.txt.binary.asc" "$clear/oneline.txt" 2>/dev/null
# What gpg says the signed text is (the reference the tests compare with).
gpg --output "$clear/notes.txt.gpg-output" --decrypt "$clear/notes.txt.asc" 2>/dev/null

# ---------------------------------------------------------------- threshold (k-of-n)
# One detached signature file carrying signatures by two keys, as
# "gpg --detach-sign -u A -u B" writes it.
threshold=$here/threshold
rm -rf "$threshold"
mkdir -p "$threshold"
sed -e 's/Clearsign Maintainer/Second Maintainer/' -e 's/clearsign@/second@/' "$tmp/key.params" >"$tmp/key2.params"
gpg --faked-system-time '20250101T000000!' --gen-key "$tmp/key2.params" 2>/dev/null
fpr2=$(gpg --with-colons --fingerprint '<second@example.org>' 2>/dev/null | awk -F: '/^fpr:/{print $10; exit}')
gpg --armor --export-options export-minimal --export "$fpr2" >"$threshold/second-ed25519.asc"
printf '%s\n' "$fpr2" >"$threshold/FINGERPRINT"
gpg --faked-system-time '20250601T120000!' --yes --armor --local-user "$fpr" --local-user "$fpr2" \
	--detach-sign --output "$threshold/SHA256SUMS.2of2.asc" "$here/release/SHA256SUMS" 2>/dev/null
gpg --verify "$threshold/SHA256SUMS.2of2.asc" "$here/release/SHA256SUMS" 2>/dev/null

# ---------------------------------------------------------------- cosign v3 bundle
mkdir -p "$sigstore"
(
	cd "$tmp"
	export COSIGN_PASSWORD=$COSIGN_PASSWORD_TEST
	cp "$here/keys/cosign.secret.key" cosign.key
	"$cosign_bin" sign-blob --yes --key cosign.key --tlog-upload=false --use-signing-config=false \
		--bundle "$sigstore/SHA256SUMS.cosign-key.sigstore.json" "$here/release/SHA256SUMS" >/dev/null 2>"$tmp/cosign.log" ||
		{ cat "$tmp/cosign.log" >&2; exit 1; }
	"$cosign_bin" verify-blob --key "$here/keys/cosign.pub" --insecure-ignore-tlog=true \
		--bundle "$sigstore/SHA256SUMS.cosign-key.sigstore.json" "$here/release/SHA256SUMS" >/dev/null 2>"$tmp/cosign.log" ||
		{ cat "$tmp/cosign.log" >&2; exit 1; }
	# The bundle format cosign wrote before v3 (still written with --new-bundle-format=false).
	"$cosign_bin" sign-blob --yes --key cosign.key --tlog-upload=false --use-signing-config=false --new-bundle-format=false \
		--bundle "$sigstore/SHA256SUMS.cosign-key.legacy.json" "$here/release/SHA256SUMS" >/dev/null 2>"$tmp/cosign.log" ||
		{ cat "$tmp/cosign.log" >&2; exit 1; }
	"$cosign_bin" verify-blob --key "$here/keys/cosign.pub" --insecure-ignore-tlog=true \
		--bundle "$sigstore/SHA256SUMS.cosign-key.legacy.json" "$here/release/SHA256SUMS" >/dev/null 2>"$tmp/cosign.log" ||
		{ cat "$tmp/cosign.log" >&2; exit 1; }
)
printf '%s\n' "$cosign_version" >"$sigstore/COSIGN_VERSION"

echo "gen-formats.sh: fixtures regenerated ($(gpg --version | head -1), cosign $cosign_version)" >&2
