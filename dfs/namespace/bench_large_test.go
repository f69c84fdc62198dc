package namespace

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/kura-dev/kura/dfs/hdfs"
)

// BenchmarkCreateLargeDir measures creates in a directory that already holds
// many entries (KURA_BENCH_LARGE_DIR, default 20000), where a create's cost
// must not grow with the directory's size:
//
//	go test -run '^$' -bench BenchmarkCreateLargeDir -benchtime 2000x ./dfs/namespace
//
// The directory is filled with empty directories by four goroutines before
// the timer starts; one client then creates b.N files in it.
func BenchmarkCreateLargeDir(b *testing.B) {
	entries := 20000
	if s := os.Getenv("KURA_BENCH_LARGE_DIR"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			b.Fatalf("KURA_BENCH_LARGE_DIR=%q: want a non-negative number", s)
		}
		entries = n
	}
	ctx := context.Background()
	for _, be := range backends() {
		b.Run(fmt.Sprintf("%s/entries=%d", be.name, entries), func(b *testing.B) {
			ns := newNS(b, openStore(b, be.newURL(b)), Config{MinReplication: -1})
			const dir = "/large"
			if err := ns.Mkdirs(ctx, super, dir, 0o755, true); err != nil {
				b.Fatal(err)
			}
			const fillers = 4
			var wg sync.WaitGroup
			errs := make(chan error, fillers)
			for g := range fillers {
				wg.Go(func() {
					for i := g; i < entries; i += fillers {
						if err := ns.Mkdirs(ctx, super, hdfs.Join(dir, fmt.Sprintf("d%07d", i)), 0o755, false); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				name := hdfs.Join(dir, fmt.Sprintf("f%07d", i))
				if _, err := ns.Create(ctx, super, name, CreateOptions{Perm: 0o644, ClientName: "bench", Replication: 1}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}
