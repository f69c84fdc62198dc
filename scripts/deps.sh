#!/usr/bin/env bash
# Checks and installs, when missing, what kura's tests need. ft's tests mount
# real FUSE file systems (go-fuse mounts directly as root, no fusermount) and
# a small tmpfs, so they need root and /dev/fuse. dfs's tests run against a
# real PostgreSQL (scripts/pg.sh starts a throwaway server per test binary),
# so Debian's postgresql is installed when missing.
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
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "deps: PostgreSQL is missing and apt-get is not available: install PostgreSQL 13 or newer (initdb, pg_ctl)" >&2
    exit 1
  fi
  echo "deps: installing postgresql (dfs's metadata tests run against it)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
fi
if ! id postgres >/dev/null 2>&1; then
  echo "deps: PostgreSQL is installed but the postgres user is missing; scripts/pg.sh runs the test server as that user" >&2
  exit 1
fi
go version
go mod download
