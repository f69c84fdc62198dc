#!/usr/bin/env bash
# Runs every fuzz target (func FuzzXxx in a _test.go file) for FUZZTIME each
# (default 10s). New crashers land in testdata/fuzz/ and fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${FUZZTIME:=10s}"
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "-- $pkg $target ($FUZZTIME)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
  done
done
