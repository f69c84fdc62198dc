#!/usr/bin/env bash
# Checks and installs, when missing, what kura's tests need. ft's tests mount
# real FUSE file systems (go-fuse mounts directly as root, no fusermount) and
# a small tmpfs, so they need root and /dev/fuse. (dfs's tests will add
# PostgreSQL from Debian's packages here.)
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "deps: the test suite mounts FUSE and tmpfs file systems: run it as root (sudo make test)" >&2
  exit 1
fi
if [ ! -c /dev/fuse ]; then
  if command -v modprobe >/dev/null 2>&1; then modprobe fuse 2>/dev/null || true; fi
  if [ ! -c /dev/fuse ]; then
    echo "deps: /dev/fuse is missing: load the fuse module (modprobe fuse) or run where FUSE is available" >&2
    exit 1
  fi
fi
if ! command -v go >/dev/null 2>&1; then
  echo "deps: Go is not on PATH; install Go 1.26 or newer (https://go.dev/dl/)" >&2
  exit 1
fi
go version
go mod download
