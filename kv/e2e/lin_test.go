package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/kura-dev/kura/kv/client"
	"github.com/kura-dev/kura/kv/lincheck"
	"github.com/kura-dev/kura/store"
)

const checkTimeout = 90 * time.Second

// do runs one operation of in on cl and records it in rec as client id.
// Errors that leave the outcome open (ErrUnknownOutcome, timeouts, an
// unavailable cluster) are recorded as unknown; ErrNotFound of Get and Pop
// is an answer (Found false). It returns the output (Unknown set when the
// outcome is unknown) and the error.
func do(ctx context.Context, rec *lincheck.Recorder, id int, cl *client.Client, in lincheck.Input) (lincheck.Output, error) {
	call := rec.Begin(id, in)
	var out lincheck.Output
	var err error
	switch in.Op {
	case lincheck.Get:
		var v []byte
		if v, err = cl.Get(ctx, []byte(in.Key)); err == nil {
			out = lincheck.Output{Value: string(v), Found: true}
		}
	case lincheck.Set:
		err = cl.Set(ctx, []byte(in.Key), []byte(in.Value), 0)
	case lincheck.CASInit:
		err = cl.CASInit(ctx, []byte(in.Key), 64, in.New)
	case lincheck.CASGet:
		var n uint64
		if n, err = cl.CASGet(ctx, []byte(in.Key), 64); err == nil {
			out = lincheck.Output{Found: true, N: n}
		}
	case lincheck.CASSet:
		var swapped bool
		var n uint64
		if swapped, n, err = cl.CASSet(ctx, []byte(in.Key), 64, in.Old, in.New); err == nil {
			out = lincheck.Output{Found: true, Swapped: swapped, N: n}
		}
	case lincheck.CASAdd:
		var n uint64
		if n, err = cl.CASAdd(ctx, []byte(in.Key), 64, in.Delta); err == nil {
			out = lincheck.Output{Found: true, N: n}
		}
	case lincheck.Push:
		err = cl.Push(ctx, []byte(in.Key), []byte(in.Value))
	case lincheck.Pop:
		var it store.QueueItem
		if it, err = cl.Pop(ctx, []byte(in.Key), store.Front); err == nil {
			out = lincheck.Output{Value: string(it.Value), Found: true}
		}
	default:
		panic("unsupported op " + in.Op.String())
	}
	switch {
	case err == nil:
	case errors.Is(err, store.ErrNotFound) && (in.Op == lincheck.Get || in.Op == lincheck.Pop || in.Op == lincheck.CASGet):
		out, err = lincheck.Output{Found: false}, nil
	default:
		call.Unknown()
		return lincheck.Output{Unknown: true}, err
	}
	call.End(out)
	return out, nil
}

// check runs the checker and, unless the history is linearizable, writes
// the visualization under the test's temporary directory.
// With keep, the visualization is also copied to a directory that outlives
// the test.
func check(t *testing.T, rec *lincheck.Recorder, keep bool) (porcupine.CheckResult, error) {
	t.Helper()
	start := time.Now()
	res, err := rec.Check(checkTimeout)
	t.Logf("lincheck: %d operations checked in %v: result %v", len(rec.Operations()), time.Since(start).Round(time.Millisecond), res)
	if res != porcupine.Ok {
		path := filepath.Join(t.TempDir(), "history.html")
		if verr := rec.Visualize(path); verr != nil {
			t.Logf("visualize: %v", verr)
		} else {
			t.Logf("visualization of the history: %s", path)
			if keep {
				// t.TempDir goes away with the test: keep a copy.
				if dir, err := os.MkdirTemp("", "kura-lincheck-"); err == nil {
					if b, err := os.ReadFile(path); err == nil && os.WriteFile(filepath.Join(dir, "history.html"), b, 0o644) == nil {
						t.Logf("kept a copy: %s", filepath.Join(dir, "history.html"))
					}
				}
			}
		}
	}
	return res, err
}

// logKeys logs how many operations, and how many of unknown outcome, the
// history holds for each key.
func logKeys(t *testing.T, rec *lincheck.Recorder) {
	type count struct{ ops, unknown int }
	per := map[string]*count{}
	var keys []string
	for _, op := range rec.Operations() {
		k := op.Input.(lincheck.Input).Key
		if per[k] == nil {
			per[k] = &count{}
			keys = append(keys, k)
		}
		per[k].ops++
		if op.Output.(lincheck.Output).Unknown {
			per[k].unknown++
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("key %s: %d operations, %d of unknown outcome", k, per[k].ops, per[k].unknown)
	}
}

// TestLinearizable: six clients run random reads, writes, compare-and-sets,
// increments, pushes and pops on a few keys while nodes are killed and
// restarted and cut off and healed; porcupine must find the history
// linearizable.
func TestLinearizable(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 3, shards: 4, replicas: 3, extra: []string{"--fault-injection"}})
	ctx := context.Background()
	rec := lincheck.NewRecorder()
	keys := []string{"lin/k0", "lin/k1", "lin/k2"}
	// Several counters and queues keep each one's history small enough to
	// check: every write of unknown outcome stays pending to the end, and
	// the checker's work grows exponentially with the number of them on
	// one key.
	counters := []string{"lin/c0", "lin/c1", "lin/c2"}
	queues := []string{"lin/q0", "lin/q1", "lin/q2", "lin/q3", "lin/q4", "lin/q5"}
	init := c.client(20*time.Second, false)
	for _, k := range counters {
		if _, err := do(ctx, rec, 0, init, lincheck.Input{Op: lincheck.CASInit, Key: k, New: 0}); err != nil {
			t.Fatalf("cas init %s: %v", k, err)
		}
	}

	const clients = 6
	const runFor = 8 * time.Second
	deadline := time.Now().Add(runFor)
	lastN := make([]atomic.Uint64, len(counters)) // recent values, so that CASSet sometimes swaps
	var ops, unknown atomic.Int64
	var wg sync.WaitGroup
	for id := 0; id < clients; id++ {
		cl := c.client(3*time.Second, false)
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
			for seq := 0; time.Now().Before(deadline); seq++ {
				var in lincheck.Input
				val := fmt.Sprintf("c%d-%d", id, seq)
				switch r := rng.IntN(100); {
				case r < 30:
					in = lincheck.Input{Op: lincheck.Get, Key: keys[rng.IntN(len(keys))]}
				case r < 50:
					in = lincheck.Input{Op: lincheck.Set, Key: keys[rng.IntN(len(keys))], Value: val}
				case r < 60:
					ci := rng.IntN(len(counters))
					old := lastN[ci].Load()
					if rng.IntN(4) == 0 {
						old = uint64(rng.IntN(10))
					}
					in = lincheck.Input{Op: lincheck.CASSet, Key: counters[ci], Old: old, New: uint64(1000*(id+1) + seq)}
				case r < 75:
					in = lincheck.Input{Op: lincheck.CASAdd, Key: counters[rng.IntN(len(counters))], Delta: int64(1 + rng.IntN(3))}
				case r < 88:
					in = lincheck.Input{Op: lincheck.Push, Key: queues[rng.IntN(len(queues))], Value: val}
				default:
					in = lincheck.Input{Op: lincheck.Pop, Key: queues[rng.IntN(len(queues))]}
				}
				out, err := do(ctx, rec, id, cl, in)
				ops.Add(1)
				if err != nil {
					if unknown.Add(1) < 400 {
						t.Logf("client %d: %s %s: %v", id, in.Op, time.Now().Format("15:04:05.000"), err)
					}
					if !errors.Is(err, client.ErrUnknownOutcome) && !errors.Is(err, client.ErrUnavailable) {
						t.Errorf("client %d: %s: unexpected error %v", id, in.Op, err)
					}
					// Back off like a real client would. This also
					// bounds the operations of unknown outcome (see
					// TestDeadNodeIsNotUnknownOutcome: for a while after a
					// node dies, every write the client sends its way
					// fails as unknown).
					time.Sleep(time.Duration(200+rng.IntN(200)) * time.Millisecond)
				} else if out.Found && (in.Op == lincheck.CASAdd || in.Op == lincheck.CASSet) {
					for ci, k := range counters {
						if k == in.Key {
							lastN[ci].Store(out.N)
						}
					}
				}
				time.Sleep(time.Duration(rng.IntN(8)) * time.Millisecond)
			}
		}(id)
	}

	// Faults, from the test goroutine: alternately kill and restart a
	// random node, and cut off and heal a random node.
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	sleep := func(d time.Duration) {
		if rest := time.Until(deadline); rest < d {
			d = max(rest, 0)
		}
		time.Sleep(d)
	}
	for round := 0; time.Now().Before(deadline); round++ {
		n := c.nodes[rng.IntN(len(c.nodes))]
		t.Logf("fault round %d at %s", round, time.Now().Format("15:04:05.000"))
		if round%2 == 0 {
			n.kill()
			sleep(time.Duration(1000+rng.IntN(1500)) * time.Millisecond)
			n.start()
		} else {
			c.partition(n)
			sleep(time.Duration(1500+rng.IntN(2000)) * time.Millisecond)
			c.heal()
		}
		sleep(time.Duration(500+rng.IntN(1000)) * time.Millisecond)
	}
	wg.Wait()
	t.Logf("%d operations, %d of unknown outcome", ops.Load(), unknown.Load())
	c.heal()
	c.waitHealthy(60 * time.Second)

	if res, err := check(t, rec, true); res != porcupine.Ok {
		logKeys(t, rec)
		t.Fatalf("history is not linearizable (%v): %v", res, err)
	}
}

// staleReadScenario: the node leading key's shard is cut off; client A
// sets key through the other two nodes; then client B reads it through the
// cut-off node only. It returns B's answer and the recorder of the three
// operations (the initial set, A's set, B's get).
func staleReadScenario(t *testing.T, unsafe bool) (lincheck.Output, *lincheck.Recorder, error) {
	extra := []string{"--fault-injection"}
	if unsafe {
		extra = append(extra, "--unsafe-local-reads")
	}
	c := newCluster(t, clusterOpts{nodes: 3, shards: 4, replicas: 3, extra: extra})
	ctx := context.Background()
	rec := lincheck.NewRecorder()
	const key = "stale/key"
	sh := shardOf(key, c.shards)
	if _, err := do(ctx, rec, 0, c.client(20*time.Second, false), lincheck.Input{Op: lincheck.Set, Key: key, Value: "old"}); err != nil {
		t.Fatalf("set old: %v", err)
	}
	c.waitHealthy(30 * time.Second) // every replica applied "old"
	l := c.waitLeader(sh, nil, 30*time.Second)
	t.Logf("shard %d of %q is led by %s", sh, key, l.name)
	c.partition(l)
	a := c.client(30*time.Second, false, c.others(l)...)
	if _, err := do(ctx, rec, 1, a, lincheck.Input{Op: lincheck.Set, Key: key, Value: "new"}); err != nil {
		t.Fatalf("client A: set new through the majority: %v", err)
	}
	b := c.client(5*time.Second, false, l)
	out, err := do(ctx, rec, 2, b, lincheck.Input{Op: lincheck.Get, Key: key})
	t.Logf("client B, through the cut-off node only: %+v, err %v", out, err)
	c.heal()
	return out, rec, err
}

// TestLinearizabilityCatchesStaleReads proves the checker has teeth: with
// --unsafe-local-reads a cut-off former leader answers a read with the
// value it holds, older than an acknowledged write, and lincheck must say
// so. Without the flag the same read must not return the stale value.
func TestLinearizabilityCatchesStaleReads(t *testing.T) {
	t.Run("unsafe-local-reads", func(t *testing.T) {
		out, rec, err := staleReadScenario(t, true)
		if err != nil || !out.Found || out.Value != "old" {
			t.Fatalf("client B should have read the stale value \"old\" from the cut-off node, got %+v, %v", out, err)
		}
		res, cerr := check(t, rec, false)
		if res != porcupine.Illegal {
			t.Fatalf("lincheck accepted a stale read: %v, %v", res, cerr)
		}
		t.Logf("lincheck: %v", cerr)
	})
	t.Run("safe-reads", func(t *testing.T) {
		out, rec, err := staleReadScenario(t, false)
		if err == nil && out.Found && out.Value == "old" {
			t.Fatalf("a linearizable read through a cut-off node returned the stale value %q", out.Value)
		}
		if err != nil && !errors.Is(err, client.ErrUnavailable) {
			t.Errorf("client B: unexpected error %v (want the value \"new\" or ErrUnavailable)", err)
		}
		if res, cerr := check(t, rec, true); res != porcupine.Ok {
			t.Fatalf("lincheck: %v, %v", res, cerr)
		}
	})
}
