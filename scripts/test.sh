#!/usr/bin/env bash
# The whole test suite: formatting, vet, staticcheck, every test (with the race
# detector) and a short run of every fuzz target. `make test` runs this and
# .ci/run runs `make test`. It installs what the tests need when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "dependencies"
bash scripts/deps.sh

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

step "go vet"
go vet ./...

step "staticcheck"
go tool staticcheck ./...

step "go test -race"
go test -race -count=1 -timeout 15m ./...

step "fuzz"
bash scripts/fuzz.sh

step "build"
go build -o bin/kura ./cmd/kura
echo "all tests passed"
