// Package bench is a workload driver that runs the same key-value workload
// against several systems (etcd, Redis, and later kura itself) through the
// Driver interface and reports throughput and p50/p99 latencies.
//
// A typical use:
//
//	d, err := bench.NewEtcd([]string{"127.0.0.1:23791"})
//	...
//	defer d.Close()
//	res, err := bench.Run(ctx, d, bench.Workload{
//		Ops: 100000, ReadFraction: 0.9, ValueSize: 256,
//		Concurrency: 32, Keys: 10000, Preload: true,
//	}, os.Stderr)
//	...
//	bench.FormatTable(os.Stdout, []bench.Result{res})
//
// scripts/kv-peers.sh starts a local 3-member etcd cluster and a Redis
// server to benchmark against.
package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotFound is the sentinel a Driver's Get wraps when the key does not
// exist. Run counts such a read as a successful read and a miss
// (Result.Misses), not as an error.
var ErrNotFound = errors.New("key not found")

// Driver is one key-value system under test.
//
// Get of a missing key must return a nil value and an error wrapping
// ErrNotFound (errors.Is(err, ErrNotFound)); a nil error always means the
// key was found. Put must not retain value after it returns: Run reuses the
// buffer. Put and Get are called concurrently from Workload.Concurrency
// goroutines. Close is called by whoever created the Driver, not by Run.
type Driver interface {
	Name() string
	Put(ctx context.Context, key string, value []byte) error
	Get(ctx context.Context, key string) ([]byte, error)
	Close() error
}

// Workload describes what Run does.
type Workload struct {
	// Ops is the total number of operations, split evenly across the
	// goroutines. Ignored when Duration is set.
	Ops int
	// Duration, when positive, runs the workload for this long instead of
	// for Ops operations. 0 means use Ops.
	Duration time.Duration
	// ReadFraction is the probability (0..1) that an operation is a Get;
	// the rest are Puts.
	ReadFraction float64
	// ValueSize is the size in bytes of every value written (>= 1).
	ValueSize int
	// Concurrency is the number of goroutines issuing operations (>= 1).
	Concurrency int
	// Keys is the size of the key space (>= 1); keys are chosen uniformly.
	Keys int
	// Preload writes every key once before the measured run, so reads hit.
	Preload bool
}

// Validate reports every invalid field, naming the field and its value.
func (w Workload) Validate() error {
	var errs []error
	bad := func(field string, value any, want string) {
		errs = append(errs, fmt.Errorf("bench: Workload.%s = %v: %s", field, value, want))
	}
	if w.Ops < 0 {
		bad("Ops", w.Ops, "must be >= 0")
	}
	if w.Duration < 0 {
		bad("Duration", w.Duration, "must be >= 0")
	}
	if w.Ops == 0 && w.Duration == 0 {
		errs = append(errs, errors.New("bench: Workload.Ops = 0 and Workload.Duration = 0: set one of them to say when to stop"))
	}
	if math.IsNaN(w.ReadFraction) || w.ReadFraction < 0 || w.ReadFraction > 1 {
		bad("ReadFraction", w.ReadFraction, "must be between 0 and 1")
	}
	if w.ValueSize < 1 {
		bad("ValueSize", w.ValueSize, "must be >= 1")
	}
	if w.Concurrency < 1 {
		bad("Concurrency", w.Concurrency, "must be >= 1")
	}
	if w.Keys < 1 {
		bad("Keys", w.Keys, "must be >= 1")
	}
	return errors.Join(errs...)
}

// Result is the outcome of one Run.
type Result struct {
	Driver string
	// Ops is the number of operations completed, failed ones included
	// (Ops == Reads + Writes). Operations cut short by the cancellation of
	// Run's context are not counted.
	Ops int64
	// Reads and Writes split Ops by kind, failed ones included.
	Reads, Writes int64
	// Misses is the number of reads that found no key (ErrNotFound); they
	// are successful reads and are included in Reads and the read latencies.
	Misses int64
	// Errors is the number of failed operations.
	Errors int64
	// Elapsed is the wall time of the measured phase (preloading excluded).
	Elapsed time.Duration
	// OpsPerSec is successful operations (Ops - Errors) per second of
	// Elapsed.
	OpsPerSec float64
	// Latency percentiles of successful operations; 0 when there were none.
	ReadP50, ReadP99, WriteP50, WriteP99 time.Duration
	// FirstErr is the first operation error seen, "" when there was none.
	FirstErr string
}

// progressInterval is how often Run writes a progress line.
var progressInterval = time.Second

// benchKey returns the key numbered i: "kura-bench/" and i zero-padded to 10
// digits.
func benchKey(i int) string {
	var b [40]byte
	buf := append(b[:0], "kura-bench/"...)
	s := strconv.Itoa(i)
	for n := len(s); n < 10; n++ {
		buf = append(buf, '0')
	}
	return string(append(buf, s...))
}

// Run runs w against d and returns the measurements. It first writes every
// key when w.Preload is set (a failure there aborts Run with an error), then
// starts w.Concurrency goroutines; goroutine i draws keys and operation
// kinds from a generator seeded with i, so with Ops as the stop condition a
// run issues the same operations every time. Failed operations are counted
// in Result.Errors and the first one is kept in Result.FirstErr; they do not
// stop the run. Cancelling ctx stops the goroutines: Run then returns what
// was measured so far together with an error wrapping ctx.Err(). progress,
// when not nil, receives a line about once a second.
func Run(ctx context.Context, d Driver, w Workload, progress io.Writer) (Result, error) {
	if d == nil {
		return Result{}, errors.New("bench: Run: nil Driver")
	}
	res := Result{Driver: d.Name()}
	if err := w.Validate(); err != nil {
		return res, err
	}
	if progress == nil {
		progress = io.Discard
	}
	if w.Preload {
		if err := preload(ctx, d, w, progress); err != nil {
			return res, fmt.Errorf("bench: %s: preload: %w", res.Driver, err)
		}
	}

	stop := make(chan struct{})
	if w.Duration > 0 {
		t := time.AfterFunc(w.Duration, func() { close(stop) })
		defer t.Stop()
	}
	var (
		done     atomic.Int64 // operations finished, for progress lines
		errMu    sync.Mutex
		firstErr string
	)
	noteErr := func(err error) {
		errMu.Lock()
		if firstErr == "" {
			firstErr = err.Error()
		}
		errMu.Unlock()
	}

	workers := make([]*worker, w.Concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		quota := -1 // until stop
		if w.Duration == 0 {
			quota = w.Ops / w.Concurrency
			if i < w.Ops%w.Concurrency {
				quota++
			}
		}
		wk := &worker{
			id:    i,
			quota: quota,
			rng:   rand.New(rand.NewPCG(uint64(i), 0x6b757261)),
		}
		workers[i] = wk
		wg.Add(1)
		go func() {
			defer wg.Done()
			wk.run(ctx, d, w, stop, &done, noteErr)
		}()
	}

	progDone := make(chan struct{})
	progExited := make(chan struct{})
	go func() {
		defer close(progExited)
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		last, lastT := int64(0), start
		for {
			select {
			case <-progDone:
				return
			case now := <-t.C:
				n := done.Load()
				rate := float64(n-last) / now.Sub(lastT).Seconds()
				fmt.Fprintf(progress, "%s: %d ops, %.0f ops/s\n", res.Driver, n, rate)
				last, lastT = n, now
			}
		}
	}()
	wg.Wait()
	res.Elapsed = time.Since(start)
	close(progDone)
	<-progExited

	var rh, wh histogram
	for _, wk := range workers {
		res.Reads += wk.reads
		res.Writes += wk.writes
		res.Misses += wk.misses
		res.Errors += wk.errors
		rh.merge(&wk.readLat)
		wh.merge(&wk.writeLat)
	}
	res.Ops = res.Reads + res.Writes
	if s := res.Elapsed.Seconds(); s > 0 {
		res.OpsPerSec = float64(res.Ops-res.Errors) / s
	}
	res.ReadP50, res.ReadP99 = rh.percentile(50), rh.percentile(99)
	res.WriteP50, res.WriteP99 = wh.percentile(50), wh.percentile(99)
	res.FirstErr = firstErr
	fmt.Fprintf(progress, "%s: %d ops in %v, %.0f ops/s, %d errors\n",
		res.Driver, res.Ops, res.Elapsed.Round(time.Millisecond), res.OpsPerSec, res.Errors)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("bench: %s: run interrupted: %w", res.Driver, err)
	}
	return res, nil
}

// worker is one goroutine's state; its counters are read after it exits.
type worker struct {
	id    int
	quota int // operations to issue; -1 means until stop
	rng   *rand.Rand

	reads, writes, misses, errors int64
	readLat, writeLat             histogram
}

func (wk *worker) run(ctx context.Context, d Driver, w Workload, stop <-chan struct{}, done *atomic.Int64, noteErr func(error)) {
	value := make([]byte, w.ValueSize)
	for i := range value {
		value[i] = byte(wk.rng.Uint32())
	}
	for n := 0; wk.quota < 0 || n < wk.quota; n++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		key := benchKey(wk.rng.IntN(w.Keys))
		read := wk.rng.Float64() < w.ReadFraction
		var err error
		var lat time.Duration
		if read {
			t0 := time.Now()
			_, err = d.Get(ctx, key)
			lat = time.Since(t0)
			if errors.Is(err, ErrNotFound) {
				wk.misses++
				err = nil
			}
		} else {
			// Make every written value distinct: stamp it with the
			// worker and the operation number.
			var stamp [8]byte
			binary.LittleEndian.PutUint64(stamp[:], uint64(wk.id)<<40|uint64(n))
			copy(value, stamp[:])
			t0 := time.Now()
			err = d.Put(ctx, key, value)
			lat = time.Since(t0)
		}
		if err != nil && ctx.Err() != nil {
			return // cut short by cancellation: not the system's fault
		}
		if read {
			wk.reads++
		} else {
			wk.writes++
		}
		switch {
		case err != nil:
			wk.errors++
			noteErr(fmt.Errorf("%s: %w", opName(read, key), err))
		case read:
			wk.readLat.record(lat)
		default:
			wk.writeLat.record(lat)
		}
		done.Add(1)
	}
}

func opName(read bool, key string) string {
	if read {
		return "get " + key
	}
	return "put " + key
}

// preload writes every key once using w.Concurrency goroutines and stops at
// the first error.
func preload(ctx context.Context, d Driver, w Workload, progress io.Writer) error {
	fmt.Fprintf(progress, "%s: preloading %d keys of %d bytes\n", d.Name(), w.Keys, w.ValueSize)
	start := time.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < min(w.Concurrency, w.Keys); g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 0x707265))
			value := make([]byte, w.ValueSize)
			for i := range value {
				value[i] = byte(rng.Uint32())
			}
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= w.Keys {
					return
				}
				key := benchKey(i)
				if err := d.Put(ctx, key, value); err != nil {
					cancel(fmt.Errorf("put %s: %w", key, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	fmt.Fprintf(progress, "%s: preloaded %d keys in %v\n", d.Name(), w.Keys, time.Since(start).Round(time.Millisecond))
	return nil
}
