# kura: one binary. `make test` is the whole test suite (the README's and CI's).
GO ?= go

.PHONY: build test unit lint bench fuzz dev clean proto

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

# Regenerates the committed protobuf/gRPC code: protoc from Debian's
# protobuf-compiler, the Go plugins from the Go module proxy.
PROTOC_GEN_GO = google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC = google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
proto:
	command -v protoc >/dev/null || apt-get install -y protobuf-compiler
	GOBIN=$(CURDIR)/.bin $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(CURDIR)/.bin $(GO) install $(PROTOC_GEN_GO_GRPC)
	PATH=$(CURDIR)/.bin:$$PATH protoc -I proto --go_out=proto --go_opt=paths=source_relative \
		--go-grpc_out=proto --go-grpc_opt=paths=source_relative proto/kvpb/kv.proto
	PATH=$(CURDIR)/.bin:$$PATH protoc -I proto --go_out=proto --go_opt=paths=source_relative \
		--go-grpc_out=proto --go-grpc_opt=paths=source_relative proto/dfspb/dfs.proto
