package namespace

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kura-dev/kura/dfs/hdfs"
)

// BenchOp names a metadata operation Bench measures.
type BenchOp string

// The operations, in the order a full benchmark runs them (each works on
// what the previous left).
const (
	// BenchCreate creates (and completes) empty files.
	BenchCreate BenchOp = "create"
	// BenchStat stats the files.
	BenchStat BenchOp = "stat"
	// BenchList lists the clients' directories, a page of up to 100
	// entries per operation.
	BenchList BenchOp = "list"
	// BenchRename renames every file within its directory.
	BenchRename BenchOp = "rename"
	// BenchDelete deletes the renamed files.
	BenchDelete BenchOp = "delete"
)

// BenchOps returns the operations in the order they must run.
func BenchOps() []BenchOp {
	return []BenchOp{BenchCreate, BenchStat, BenchList, BenchRename, BenchDelete}
}

// BenchConfig configures one benchmark phase.
type BenchConfig struct {
	// Dir is the benchmark's directory; client c works in Dir/c<c>.
	Dir string
	// Clients is the number of concurrent goroutines (>= 1).
	Clients int
	// Files is the number of files per client.
	Files int
	// Ops is the number of operations per client for the phases that can
	// repeat (stat, list); 0 means Files.
	Ops int
	// User performs the operations (the superuser when empty).
	User hdfs.User
}

// BenchResult is the outcome of one phase.
type BenchResult struct {
	// Op is the operation.
	Op BenchOp
	// Ops is the number of operations done.
	Ops int64
	// Elapsed is the wall time of the phase.
	Elapsed time.Duration
}

// PerSecond returns operations per second.
func (r BenchResult) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// String formats the result as "create: 12000 ops in 1.2s = 10000 ops/s".
func (r BenchResult) String() string {
	return fmt.Sprintf("%s: %d ops in %v = %.0f ops/s", r.Op, r.Ops, r.Elapsed.Round(time.Millisecond), r.PerSecond())
}

// BenchSetup creates the benchmark's directories (Dir and one per client).
func BenchSetup(ctx context.Context, ns *Namespace, cfg BenchConfig) error {
	u := cfg.user(ns)
	for c := range cfg.Clients {
		if err := ns.Mkdirs(ctx, u, cfg.clientDir(c), 0o755, true); err != nil {
			return err
		}
	}
	return nil
}

// BenchPhase runs one operation over the clients' files with cfg.Clients
// goroutines and measures it; it is the driver of `go test -bench` here and
// of `kura dfs bench`. Run BenchSetup first and the phases in BenchOps
// order: stat and list need the created files, rename needs them too, and
// delete deletes the renamed ones.
func BenchPhase(ctx context.Context, ns *Namespace, op BenchOp, cfg BenchConfig) (BenchResult, error) {
	if cfg.Clients < 1 {
		cfg.Clients = 1
	}
	ops := cfg.Files
	if (op == BenchStat || op == BenchList) && cfg.Ops > 0 {
		ops = cfg.Ops
	}
	u := cfg.user(ns)
	var done atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for c := range cfg.Clients {
		wg.Go(func() {
			dir := cfg.clientDir(c)
			client := fmt.Sprintf("bench-%d", c)
			for i := range ops {
				if ctx.Err() != nil {
					return
				}
				err := benchOne(ctx, ns, u, op, dir, client, i%max(cfg.Files, 1))
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("bench %s, client %d, op %d: %w", op, c, i, err) })
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	res := BenchResult{Op: op, Ops: done.Load(), Elapsed: time.Since(start)}
	return res, firstErr
}

// benchOne performs operation number i of op in dir.
func benchOne(ctx context.Context, ns *Namespace, u hdfs.User, op BenchOp, dir, client string, i int) error {
	name := hdfs.Join(dir, fmt.Sprintf("f%07d", i))
	switch op {
	case BenchCreate:
		if _, err := ns.Create(ctx, u, name, CreateOptions{Perm: 0o644, ClientName: client, Replication: 1}); err != nil {
			return err
		}
		_, err := ns.Complete(ctx, name, client, 0)
		return err
	case BenchStat:
		_, err := ns.Stat(ctx, u, name)
		return err
	case BenchList:
		_, err := ns.List(ctx, u, dir, "", 100)
		return err
	case BenchRename:
		return ns.Rename2(ctx, u, name, name+".r", RenameOptions{})
	case BenchDelete:
		_, err := ns.Delete(ctx, u, name+".r", false)
		return err
	}
	return fmt.Errorf("unknown benchmark operation %q", op)
}

func (cfg BenchConfig) user(ns *Namespace) hdfs.User {
	if cfg.User.Name == "" {
		return hdfs.User{Name: ns.cfg.Superuser}
	}
	return cfg.User
}

func (cfg BenchConfig) clientDir(c int) string {
	dir := cfg.Dir
	if dir == "" {
		dir = "/bench"
	}
	return hdfs.Join(dir, fmt.Sprintf("c%d", c))
}
