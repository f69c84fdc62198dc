#!/usr/bin/env bash
# Installs, when missing, what kura's tests need from Debian's packages.
# Today: nothing beyond Go itself. (ft's tests will add fuse3, dfs's PostgreSQL.)
set -euo pipefail
if ! command -v go >/dev/null 2>&1; then
  echo "deps: Go is not on PATH; install Go 1.26 or newer (https://go.dev/dl/)" >&2
  exit 1
fi
go version
go mod download
