#!/usr/bin/env bash
# TEST FIXTURE ONLY: a small install script in the shape of a real one.
set -euo pipefail
VERSION=1.0.0
url="https://uploader.example.org/v${VERSION}/linux/codecov"
curl -fsSLo codecov "$url"
curl -fsSLo SHA256SUMS "https://uploader.example.org/v${VERSION}/SHA256SUMS"
grep ' \*\?codecov$' SHA256SUMS | sha256sum -c -
chmod +x codecov
