# kura: one binary. `make test` is the whole test suite (the README's and CI's).
GO ?= go

.PHONY: build test unit lint bench fuzz dev clean

build:
	$(GO) build -o bin/kura ./cmd/kura

test:
	bash scripts/test.sh

# Unit and integration tests only, without lint and fuzzing.
unit:
	$(GO) test -count=1 ./...

lint:
	gofmt -l . | (! grep .)
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

# Benchmarks whose figures go into docs/benchmarks.md (ft needs root).
bench: build
	$(GO) test ./store/ -run '^$$' -bench . -benchtime 100000x
	$(GO) test ./ft/queue/ ./ft/mount/ -run '^$$' -bench . -benchtime 20000x
	./bin/kura ft bench

fuzz:
	FUZZTIME=60s bash scripts/fuzz.sh

dev:
	$(GO) run ./cmd/kura dev

clean:
	rm -rf bin
