#!/usr/bin/env bash
# TEST FIXTURE ONLY: the install script of release 1.1.0.
set -euo pipefail
VERSION=1.1.0
curl -fsSLo tool.tar.gz "https://downloads.example.org/v${VERSION}/tool-${VERSION}-linux-amd64.tar.gz"
