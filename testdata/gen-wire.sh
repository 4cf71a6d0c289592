#!/usr/bin/env bash
# Regenerates the fixtures of the rules that speak the release formats (testdata/wire/),
# with the real tools:
#   wire/install.sh.asc        gpg --armor --detach-sign over ../release/install.sh
#                              (release.signed: file), by a TEST-ONLY key made here;
#   wire/install.sh.sig        ssh-keygen -Y sign -n file over the same file, TEST-ONLY key;
#   wire/install.sh.sigstore.json
#                              cosign v3 sign-blob --bundle over it, with the TEST-ONLY
#                              cosign key of testdata/keys (no transparency log: offline);
#   wire/SHA512SUMS(.asc)      sha512sum lines only (no SHA-256), and a detached signature;
#   wire/codecov-layout/       Codecov's layout (codecov.SHA256SUM without a final newline,
#                              codecov.SHA256SUM.sig armored) over ../release/codecov, signed
#                              by the TEST-ONLY key, for the ok → tampered → restored path
#                              (the real signed pairs in ../codecov list Codecov's real
#                              binaries, which are not in this repository);
#   sigstore/sigstore-2.0.0.tgz
#                              the npm package the real attestation in sigstore/ is about,
#                              fetched with `npm pack` and checked against the attested
#                              SHA-512;
#   sigstore/sigstore-js-2.0.0.provenance.sigstore.json.sn
#                              that attestation snappy-compressed, as GitHub serves bundles
#                              from bundle_url (github.com/golang/snappy, from the Go proxy).
#
# ALL KEYS MADE HERE ARE TEST-ONLY. Never trust them for anything.
#
# Needs: bash, gpg 2.2+, ssh-keygen, sha256sum, sha512sum, npm, go (the cosign v3 binary is
# the one gen-formats.sh builds, cached in $TAMPERGUARD_TOOLS; set COSIGN3 to use another).
# gen.sh runs this at its end; it can also run alone.
set -euo pipefail

COSIGN3_VERSION=v3.1.3
COSIGN_PASSWORD_TEST=test-only-password
SNAPPY_VERSION=v1.0.0
# The attested subject of sigstore-js-2.0.0.provenance.sigstore.json (its in-toto statement).
SIGSTORE_JS_SHA512=46d4e2f74c4877316640000a6fdf8a8b59f1e0847667973e9859f774dd31b8f1e0937813b777fb66a2ac67d50540fe34640966eee9fc2ccca387082b4c85cd3c

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$here/wire
sigstore=$here/sigstore

for tool in gpg gpgconf ssh-keygen sha256sum sha512sum awk npm go; do
	command -v "$tool" >/dev/null || { echo "gen-wire.sh: missing tool: $tool" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tg-genwire.XXXXXX")
export GNUPGHOME=$tmp/gnupg
mkdir -m 700 "$GNUPGHOME"
cleanup() {
	gpgconf --homedir "$GNUPGHOME" --kill all >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

cosign_bin=${COSIGN3:-${TAMPERGUARD_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/tamperguard}/cosign-$COSIGN3_VERSION}
[[ -x $cosign_bin ]] || { echo "gen-wire.sh: no cosign v3 at $cosign_bin: run gen-formats.sh first (it builds it), or set COSIGN3" >&2; exit 1; }
gocache=$(go env GOMODCACHE)

export TZ=UTC LC_ALL=C
realhome=$HOME
export HOME=$tmp/home TUF_ROOT=$tmp/tuf
mkdir -p "$HOME"
printf 'batch\nno-tty\npinentry-mode loopback\n' >"$GNUPGHOME/gpg.conf"

rm -rf "$out"
mkdir -p "$out/codecov-layout"

# ---------------------------------------------------------------- the TEST-ONLY signer
cat >"$tmp/key.params" <<'EOF'
%no-protection
Key-Type: eddsa
Key-Curve: ed25519
Key-Usage: sign
Name-Real: File Signer
Name-Comment: TEST ONLY
Name-Email: files@example.org
Expire-Date: 0
%commit
EOF
gpg --faked-system-time '20250101T000000!' --gen-key "$tmp/key.params" 2>/dev/null
fpr=$(gpg --with-colons --fingerprint '<files@example.org>' 2>/dev/null | awk -F: '/^fpr:/{print $10; exit}')
gpg --armor --export-options export-minimal --export "$fpr" >"$out/filesigner-ed25519.asc"
ssh-keygen -q -t ed25519 -N '' -C 'files@example.org TEST-ONLY' -f "$tmp/filesigner_ed25519"
cp "$tmp/filesigner_ed25519.pub" "$out/filesigner_ed25519.pub"
{
	printf 'filesigner-ed25519.asc\topenpgp\t%s\n' "$fpr"
	printf 'filesigner_ed25519.pub\tssh\t%s\n' "$(ssh-keygen -l -f "$out/filesigner_ed25519.pub" | awk '{print $2}')"
} >"$out/FINGERPRINTS"

detach() { # IN OUT
	gpg --faked-system-time '20250601T120000!' --yes --armor --local-user "$fpr" --detach-sign --output "$2" "$1" 2>/dev/null
	gpg --verify "$2" "$1" 2>/dev/null
}

# ---------------------------------------------------------------- a signature over each file
cp "$here/release/install.sh" "$tmp/install.sh"
detach "$tmp/install.sh" "$out/install.sh.asc"
ssh-keygen -q -Y sign -n file -f "$tmp/filesigner_ed25519" "$tmp/install.sh"
mv "$tmp/install.sh.sig" "$out/install.sh.sig"
printf 'files@example.org %s\n' "$(cat "$out/filesigner_ed25519.pub")" >"$tmp/allowed"
ssh-keygen -q -Y verify -f "$tmp/allowed" -I files@example.org -n file -s "$out/install.sh.sig" <"$tmp/install.sh" >/dev/null
(
	cd "$tmp"
	export COSIGN_PASSWORD=$COSIGN_PASSWORD_TEST
	cp "$here/keys/cosign.secret.key" cosign.key
	"$cosign_bin" sign-blob --yes --key cosign.key --tlog-upload=false --use-signing-config=false \
		--bundle "$out/install.sh.sigstore.json" "$tmp/install.sh" >/dev/null 2>"$tmp/cosign.log" ||
		{ cat "$tmp/cosign.log" >&2; exit 1; }
	"$cosign_bin" verify-blob --key "$here/keys/cosign.pub" --insecure-ignore-tlog=true \
		--bundle "$out/install.sh.sigstore.json" "$tmp/install.sh" >/dev/null 2>"$tmp/cosign.log" ||
		{ cat "$tmp/cosign.log" >&2; exit 1; }
)

# ---------------------------------------------------------------- SHA-512 only
(cd "$here/release" && sha512sum install.sh && sha512sum -b codecov) >"$out/SHA512SUMS"
detach "$out/SHA512SUMS" "$out/SHA512SUMS.asc"

# ---------------------------------------------------------------- Codecov's layout
(cd "$here/release" && sha256sum codecov) | tr -d '\n' >"$out/codecov-layout/codecov.SHA256SUM"
detach "$out/codecov-layout/codecov.SHA256SUM" "$out/codecov-layout/codecov.SHA256SUM.sig"

# ---------------------------------------------------------------- the attested npm package
(cd "$tmp" && HOME=$realhome npm pack --silent sigstore@2.0.0 >/dev/null)
got=$(sha512sum "$tmp/sigstore-2.0.0.tgz" | awk '{print $1}')
[[ $got == "$SIGSTORE_JS_SHA512" ]] || { echo "gen-wire.sh: sigstore-2.0.0.tgz has SHA-512 $got, not the attested one" >&2; exit 1; }
cp "$tmp/sigstore-2.0.0.tgz" "$sigstore/sigstore-2.0.0.tgz"

# ---------------------------------------------------------------- a snappy-compressed bundle
mkdir -p "$tmp/snap"
cat >"$tmp/snap/main.go" <<'EOF'
// Writes stdin as one snappy block to stdout.
package main

import (
	"io"
	"os"

	"github.com/golang/snappy"
)

func main() {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		panic(err)
	}
	if _, err := os.Stdout.Write(snappy.Encode(nil, in)); err != nil {
		panic(err)
	}
}
EOF
(
	cd "$tmp/snap"
	export GOPATH=$tmp/gopath GOMODCACHE=$gocache GOFLAGS=-mod=mod
	go mod init snap >/dev/null 2>&1
	go get "github.com/golang/snappy@$SNAPPY_VERSION" >/dev/null 2>&1
	go run . <"$sigstore/sigstore-js-2.0.0.provenance.sigstore.json" >"$sigstore/sigstore-js-2.0.0.provenance.sigstore.json.sn"
)

chmod 644 "$out"/* "$out"/codecov-layout/* "$sigstore"/sigstore-2.0.0.tgz "$sigstore"/*.sn 2>/dev/null || true
chmod 755 "$out/codecov-layout"

echo "gen-wire.sh: fixtures regenerated ($(gpg --version | head -1), cosign $("$cosign_bin" version 2>&1 | awk '/^GitVersion:/{print $2}'), snappy $SNAPPY_VERSION)" >&2
