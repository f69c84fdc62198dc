package namespace

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/dal/sqlite"
)

// BenchmarkOps measures metadata operations per second through BenchPhase,
// the driver `kura dfs bench` shares, on SQLite and PostgreSQL with N
// concurrent clients (KURA_BENCH_CLIENTS, default 4), the default
// resolving cache (KURA_BENCH_RESOLVE_CACHE entries, negative: none) and
// SQLite's default group commit (KURA_BENCH_SQLITE_GROUP sets
// sqlite.Options.MaxGroup; 1: no grouping):
//
//	go test -run '^$' -bench BenchmarkOps -benchtime 2000x ./dfs/namespace
//
// Each sub-benchmark reports ops/s over b.N operations in all (split among
// the clients) on a fresh database; what an operation needs (files to stat,
// rename or delete) is made before the timer starts.
func BenchmarkOps(b *testing.B) {
	clients := 4
	if s := os.Getenv("KURA_BENCH_CLIENTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("KURA_BENCH_CLIENTS=%q: want a positive number", s)
		}
		clients = n
	}
	cacheSize := 0 // the default
	if s := os.Getenv("KURA_BENCH_RESOLVE_CACHE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("KURA_BENCH_RESOLVE_CACHE=%q: want a number (negative: no cache)", s)
		}
		cacheSize = n
	}
	sqliteGroup := 0 // the default
	if s := os.Getenv("KURA_BENCH_SQLITE_GROUP"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("KURA_BENCH_SQLITE_GROUP=%q: want a positive number (1: no group commit)", s)
		}
		sqliteGroup = n
	}
	ctx := context.Background()
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			for _, op := range BenchOps() {
				b.Run(fmt.Sprintf("%s/clients=%d", op, clients), func(b *testing.B) {
					var store dal.Store
					if be.name == "sqlite" && sqliteGroup > 0 {
						s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "meta.db"), sqlite.Options{MaxGroup: sqliteGroup})
						if err != nil {
							b.Fatal(err)
						}
						b.Cleanup(func() { s.Close() })
						store = s
					} else {
						store = openStore(b, be.newURL(b))
					}
					ns := newNS(b, store, Config{MinReplication: -1, ResolveCacheSize: cacheSize})
					perClient := (b.N + clients - 1) / clients
					cfg := BenchConfig{Dir: "/bench", Clients: clients, Files: perClient}
					if op == BenchStat || op == BenchList {
						cfg.Files, cfg.Ops = min(perClient, 100), perClient
					}
					if err := BenchSetup(ctx, ns, cfg); err != nil {
						b.Fatal(err)
					}
					for _, prep := range BenchOps() {
						if prep == op {
							break
						}
						if prep == BenchCreate || (op == BenchDelete && prep == BenchRename) {
							if _, err := BenchPhase(ctx, ns, prep, cfg); err != nil {
								b.Fatal(err)
							}
						}
					}
					b.ResetTimer()
					res, err := BenchPhase(ctx, ns, op, cfg)
					b.StopTimer()
					if err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(res.PerSecond(), "ops/s")
				})
			}
		})
	}
}
