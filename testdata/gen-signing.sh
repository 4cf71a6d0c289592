#!/usr/bin/env bash
# Regenerates the signature-policy fixtures with the real tools: testdata/ssh
# (ssh-keygen -Y sign, a CA and certificates made with ssh-keygen -s,
# allowed_signers lines with options, git tags signed with gpg.format=ssh) and
# testdata/openpgp-policy (gpg keys whose self-signatures use SHA-1, signatures
# made before and after the standard policy's cut-off).
#
# ALL KEYS MADE HERE ARE TEST-ONLY. Never trust them for anything.
#
# Every allowed_signers case is also judged by "ssh-keygen -Y verify" (detached
# signatures, with -Overify-time) or "git verify-tag" (tags, which pass the
# tagger date as verify-time); the script stops if a tool disagrees with the
# verdict written here, and records the tools' answers in ssh/CASES.tsv, which
# the tests replay against tamperguard.
#
# gen.sh runs this at its end; it can also run alone, and then rewrites only
# testdata/ssh and testdata/openpgp-policy (every key and signature changes).
#
# Needs: bash, ssh-keygen (OpenSSH 8.9+), git 2.35+, gpg 2.2+, awk.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
sshdir=$here/ssh
pgpdir=$here/openpgp-policy

for tool in ssh-keygen git gpg gpgconf awk; do
	command -v "$tool" >/dev/null || { echo "gen-signing.sh: missing tool: $tool" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tg-gensig.XXXXXX")
export GNUPGHOME=$tmp/gnupg
mkdir -m 700 "$GNUPGHOME"
cleanup() {
	gpgconf --homedir "$GNUPGHOME" --kill all >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

# Keep the environment of the person running this out of the fixtures. TZ=UTC
# matters: ssh-keygen reads times without a Z suffix in the local zone.
export TZ=UTC LC_ALL=C
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export HOME=$tmp/home
mkdir -p "$HOME"
printf 'batch\nno-tty\npinentry-mode loopback\n' >"$GNUPGHOME/gpg.conf"

rm -rf "$sshdir" "$pgpdir"
mkdir -p "$sshdir/allowed_signers" "$sshdir/tags" "$pgpdir"

message() {
	cat <<'EOF'
8a2321b527ef400e7b7f54474fab13debac48414868ccf3ffdc26a202d44733d  install.sh
278d6df4bca2aaa0de5271d74b1b0d538335400c9b508b6d1cace086525b9f5f *codecov
EOF
}
message >"$sshdir/SHA256SUMS"
message >"$pgpdir/SHA256SUMS"

# ---------------------------------------------------------------- SSH keys
k=$tmp/k
mkdir "$k"
newkey() { ssh-keygen -q -t "$1" ${3:+-b "$3"} -N '' -C "$2" -f "$k/$4"; }
newkey ed25519 'release@example.org TEST-ONLY' '' signer_ed25519
newkey ecdsa 'release-ecdsa@example.org TEST-ONLY' 256 signer_ecdsa
newkey ed25519 'TEST-ONLY SSH CA' '' ca_ed25519
newkey ed25519 'certified@example.org TEST-ONLY' '' certified_ed25519
# The same certified key, once more for each other certificate (ssh-keygen
# signs with KEY-cert.pub next to the private key KEY).
for v in host noprincipals; do
	cp "$k/certified_ed25519" "$k/certified_$v"
	cp "$k/certified_ed25519.pub" "$k/certified_$v.pub"
done
# user certificate for release@example.org, valid for the first half of 2025 (UTC)
ssh-keygen -q -s "$k/ca_ed25519" -I release-2025H1 -n release@example.org -z 1 \
	-V 20250101Z:20250701Z "$k/certified_ed25519.pub"
# a host certificate: never valid for signing
ssh-keygen -q -s "$k/ca_ed25519" -I host-2025 -h -n host.example.org -z 2 \
	-V 20250101Z:20250701Z "$k/certified_host.pub"
# a user certificate without principals: refused by OpenSSH
ssh-keygen -q -s "$k/ca_ed25519" -I noprincipals-2025 -z 3 \
	-V 20250101Z:20250701Z "$k/certified_noprincipals.pub"

for f in signer_ed25519 signer_ecdsa ca_ed25519 certified_ed25519; do
	cp "$k/$f.pub" "$sshdir/$f.pub"
done
cp "$k/certified_ed25519-cert.pub" "$sshdir/certified_ed25519-cert.pub"

# ---------------------------------------------------------------- SSH signatures
sshsign() { # KEYFILE NAMESPACE OUT
	rm -f "$sshdir/SHA256SUMS.sig"
	ssh-keygen -q -Y sign -n "$2" -f "$k/$1" "$sshdir/SHA256SUMS"
	mv "$sshdir/SHA256SUMS.sig" "$sshdir/$3"
}
sshsign signer_ed25519 file SHA256SUMS.ed25519.sig
sshsign signer_ecdsa file SHA256SUMS.ecdsa.sig
sshsign signer_ed25519 'bdd.fi/x/runitor release' SHA256SUMS.runitor.sig
sshsign certified_ed25519-cert.pub file SHA256SUMS.cert.sig
sshsign certified_host-cert.pub file SHA256SUMS.cert-host.sig
sshsign certified_noprincipals-cert.pub file SHA256SUMS.cert-noprincipals.sig

# ---------------------------------------------------------------- git tags signed with SSH
work=$tmp/repo
git init -q -b main "$work"
g() { git -C "$work" -c user.name='Test Maintainer' -c user.email=release@example.org -c gpg.format=ssh "$@"; }
commit_tag() { # TAG DATE SIGNING-KEY-FILE
	printf 'release %s\n' "$1" >"$work/VERSION"
	g add VERSION
	GIT_AUTHOR_DATE=$2 GIT_COMMITTER_DATE=$2 g commit -q -m "Release $1"
	GIT_COMMITTER_DATE=$2 g -c user.signingKey="$3" tag -s -m "Release $1" "$1"
	git -C "$work" cat-file tag "$1" >"$sshdir/tags/$1.tag"
}
commit_tag v2.0.0 2025-03-01T12:00:00Z "$k/signer_ed25519"
commit_tag v2.1.0 2025-03-15T12:00:00Z "$k/certified_ed25519-cert.pub"

# ---------------------------------------------------------------- allowed_signers cases
pub() { awk '{print $1, $2}' "$k/$1.pub"; }
SIGNER=$(pub signer_ed25519)
ECDSA=$(pub signer_ecdsa)
CA=$(pub ca_ed25519)
CERTIFIED=$(pub certified_ed25519)

{
	echo '# TEST-ONLY allowed signers file (every form tamperguard reads). Generated by gen-signing.sh.'
	echo "release@example.org namespaces=\"file,git\" $SIGNER release@example.org TEST-ONLY"
	echo
	echo "# the ECDSA key, retired at the end of 2025"
	echo "release-ecdsa@example.org valid-before=\"20251231Z\" $ECDSA"
	echo "\"Runitor release\" namespaces=\"bdd.fi/x/runitor release\" $SIGNER"
	echo "*@example.org,!evil@example.org cert-authority,namespaces=\"file\" $CA TEST-ONLY CA"
} >"$sshdir/allowed_signers/all"

{
	printf '# Generated by gen-signing.sh with %s and %s. Each row: a case, the verdict\n' "$(ssh -V 2>&1 | cut -d, -f1)" "$(git --version)"
	printf '# of the real tool (ssh-keygen -Y verify for detached signatures, git verify-tag for\n'
	printf '# tags), and the reason tamperguard must give when it refuses (an error name).\n'
	printf '# case\tkind\tsignature\tallowed_signers\tnamespace\tverify_time\ttool_verdict\treason\n'
} >"$sshdir/CASES.tsv"

# detached NAME SIGFILE NAMESPACE VERIFY-TIME EXPECT(good|refused) REASON LINE
detached() {
	local name=$1 sig=$2 ns=$3 at=$4 want=$5 reason=$6 line=$7 got
	printf '%s\n' "$line" >"$sshdir/allowed_signers/$name"
	if ssh-keygen -Y verify -f "$sshdir/allowed_signers/$name" -I release@example.org -n "$ns" \
		-s "$sshdir/$sig" "-Overify-time=$at" <"$sshdir/SHA256SUMS" >/dev/null 2>&1; then
		got=good
	else
		got=refused
	fi
	[[ $got == "$want" ]] || { echo "gen-signing.sh: ssh-keygen says $got for $name, expected $want" >&2; exit 1; }
	printf '%s\tdetached\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$sig" "$name" "$ns" "$at" "$got" "$reason" >>"$sshdir/CASES.tsv"
}
# tag NAME TAG EXPECT REASON LINE: git verify-tag with that allowed signers file
tagcase() {
	local name=$1 tag=$2 want=$3 reason=$4 line=$5 got
	printf '%s\n' "$line" >"$sshdir/allowed_signers/$name"
	if git -C "$work" -c gpg.ssh.allowedSignersFile="$sshdir/allowed_signers/$name" verify-tag "$tag" >/dev/null 2>&1; then
		got=good
	else
		got=refused
	fi
	[[ $got == "$want" ]] || { echo "gen-signing.sh: git verify-tag says $got for $name, expected $want" >&2; exit 1; }
	printf '%s\ttag\t%s\t%s\tgit\t-\t%s\t%s\n' "$name" "tags/$tag.tag" "$name" "$got" "$reason" >>"$sshdir/CASES.tsv"
}

R=release@example.org
detached plain SHA256SUMS.ed25519.sig file 20260101Z good - "$R $SIGNER"
detached ecdsa SHA256SUMS.ecdsa.sig file 20260101Z good - "$R $ECDSA"
detached namespaces-file SHA256SUMS.ed25519.sig file 20260101Z good - "$R namespaces=\"file\" $SIGNER"
detached namespaces-git-only SHA256SUMS.ed25519.sig file 20260101Z refused ErrWrongNamespace "$R namespaces=\"git\" $SIGNER"
detached valid-before-past SHA256SUMS.ed25519.sig file 20260101Z refused ErrKeyExpired "$R valid-before=\"20241206\" $SIGNER"
detached valid-before-future SHA256SUMS.ed25519.sig file 20260101Z good - "$R valid-before=\"20270101\" $SIGNER"
detached valid-after-future SHA256SUMS.ed25519.sig file 20260101Z refused ErrKeyNotYetValid "$R valid-after=\"20270101\" $SIGNER"
detached valid-window SHA256SUMS.ed25519.sig file 20260101Z good - "$R valid-after=\"20250101\",valid-before=\"20270101Z\" $SIGNER"
detached custom-namespace SHA256SUMS.runitor.sig 'bdd.fi/x/runitor release' 20260101Z good - "$R namespaces=\"bdd.fi/x/runitor release\" $SIGNER"
detached custom-namespace-pattern SHA256SUMS.runitor.sig 'bdd.fi/x/runitor release' 20260101Z good - "$R namespaces=\"bdd.fi/x/*\" $SIGNER"
detached custom-namespace-not-pinned SHA256SUMS.runitor.sig file 20260101Z refused ErrWrongNamespace "$R $SIGNER"
detached other-key SHA256SUMS.ed25519.sig file 20260101Z refused ErrUnknownKey "$R $ECDSA"
detached ca SHA256SUMS.cert.sig file 20250301Z good - "*@example.org cert-authority $CA"
detached ca-expired-cert SHA256SUMS.cert.sig file 20260101Z refused ErrKeyExpired "*@example.org cert-authority $CA"
detached ca-cert-not-yet-valid SHA256SUMS.cert.sig file 20241201Z refused ErrKeyNotYetValid "*@example.org cert-authority $CA"
detached ca-principal-mismatch SHA256SUMS.cert.sig file 20250301Z refused ErrPrincipalMismatch "*@other.example.org cert-authority $CA"
detached ca-principal-negated SHA256SUMS.cert.sig file 20250301Z refused ErrPrincipalMismatch "*@example.org,!release@example.org cert-authority $CA"
detached ca-valid-before SHA256SUMS.cert.sig file 20250301Z refused ErrKeyExpired "*@example.org cert-authority,valid-before=\"20250201\" $CA"
detached ca-namespaces-git SHA256SUMS.cert.sig file 20250301Z refused ErrWrongNamespace "*@example.org cert-authority,namespaces=\"git\" $CA"
detached ca-host-cert SHA256SUMS.cert-host.sig file 20250301Z refused ErrCertificate "*@example.org cert-authority $CA"
detached ca-cert-without-principals SHA256SUMS.cert-noprincipals.sig file 20250301Z refused ErrCertificate "*@example.org cert-authority $CA"
detached ca-key-not-ca SHA256SUMS.cert.sig file 20250301Z refused ErrUnknownKey "$R $CA"
# A plain line for the certified key does not match a signature by its certificate.
detached certified-key-plain SHA256SUMS.cert.sig file 20250301Z refused ErrUnknownKey "$R $CERTIFIED"

tagcase tag-plain v2.0.0 good - "$R $SIGNER"
tagcase tag-valid-before-tag-date v2.0.0 refused ErrKeyExpired "$R valid-before=\"20250201\" $SIGNER"
tagcase tag-valid-before-after-tag-date v2.0.0 good - "$R valid-before=\"20250401\" $SIGNER"
tagcase tag-valid-after-tag-date v2.0.0 refused ErrKeyNotYetValid "$R valid-after=\"20250401\" $SIGNER"
tagcase tag-namespaces-file v2.0.0 refused ErrWrongNamespace "$R namespaces=\"file\" $SIGNER"
tagcase tag-ca v2.1.0 good - "*@example.org cert-authority $CA"
tagcase tag-ca-principal-mismatch v2.1.0 refused ErrPrincipalMismatch "*@other.example.org cert-authority $CA"
tagcase tag-ca-valid-after v2.1.0 refused ErrKeyNotYetValid "*@example.org cert-authority,valid-after=\"20250401\" $CA"

fp_ssh() { ssh-keygen -lf "$1" | awk '{print $2}'; }
{
	echo '# name	scheme	fingerprint (ssh-keygen -l). TEST-ONLY keys. Generated by gen-signing.sh.'
	for f in signer_ed25519 signer_ecdsa ca_ed25519 certified_ed25519; do
		printf '%s\tssh\t%s\n' "$f.pub" "$(fp_ssh "$sshdir/$f.pub")"
	done
} >"$sshdir/FINGERPRINTS"

# ---------------------------------------------------------------- OpenPGP: SHA-1 self-signatures
gpgt() { gpg --faked-system-time "$1!" "${@:2}" 2>>"$tmp/gpg.log"; }
cat >"$tmp/sha1.params" <<'EOF'
%no-protection
Key-Type: eddsa
Key-Curve: ed25519
Key-Usage: sign
Name-Real: SHA-1 Self-Signed
Name-Comment: TEST ONLY
Name-Email: sha1-selfsig@example.org
Expire-Date: 0
%commit
EOF
# Made in 2022 with SHA-1 for the self-signature, as old gpg versions did.
gpgt 20220601T000000 --cert-digest-algo SHA1 --gen-key "$tmp/sha1.params"
FPR_SHA1=$(gpg --with-colons --fingerprint '<sha1-selfsig@example.org>' 2>/dev/null | awk -F: '/^fpr:/{print $10; exit}')
gpg --list-packets < <(gpg --export "$FPR_SHA1" 2>/dev/null) 2>/dev/null | grep -q 'digest algo 2,' ||
	{ echo "gen-signing.sh: gpg did not make a SHA-1 self-signature" >&2; exit 1; }
gpg --armor --export-options export-minimal --export "$FPR_SHA1" >"$pgpdir/sha1-selfsig-ed25519.asc" 2>/dev/null
pgpsign() { # FAKETIME OUT
	gpgt "$1" --yes --local-user "$FPR_SHA1" --armor --digest-algo SHA256 \
		--detach-sign --output "$pgpdir/$2" "$pgpdir/SHA256SUMS"
}
pgpsign 20221201T120000 SHA256SUMS.signed-2022.asc # before the 2023-02-01 cut-off
pgpsign 20250601T120000 SHA256SUMS.signed-2025.asc # after it
{
	echo '# name	scheme	fingerprint (gpg). TEST-ONLY keys. Generated by gen-signing.sh.'
	printf 'sha1-selfsig-ed25519.asc\topenpgp\t%s\n' "$FPR_SHA1"
} >"$pgpdir/FINGERPRINTS"

echo "gen-signing.sh: testdata/ssh and testdata/openpgp-policy regenerated" >&2
