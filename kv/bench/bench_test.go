package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memDriver is an in-memory Driver: a map behind a mutex.
type memDriver struct {
	mu sync.Mutex
	m  map[string][]byte

	// failEvery, when > 0, makes every failEvery-th Put fail.
	failEvery int64
	puts      atomic.Int64
}

func newMem() *memDriver { return &memDriver{m: map[string][]byte{}} }

func (d *memDriver) Name() string { return "mem" }

func (d *memDriver) Put(ctx context.Context, key string, value []byte) error {
	if n := d.puts.Add(1); d.failEvery > 0 && n%d.failEvery == 0 {
		return fmt.Errorf("mem: injected failure on put %d", n)
	}
	v := bytes.Clone(value)
	d.mu.Lock()
	d.m[key] = v
	d.mu.Unlock()
	return nil
}

func (d *memDriver) Get(ctx context.Context, key string) ([]byte, error) {
	d.mu.Lock()
	v, ok := d.m[key]
	d.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("mem get %s: %w", key, ErrNotFound)
	}
	return v, nil
}

func (d *memDriver) Close() error { return nil }

func goodWorkload() Workload {
	return Workload{Ops: 100, ReadFraction: 0.5, ValueSize: 16, Concurrency: 4, Keys: 10}
}

func TestWorkloadValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Workload)
		want   []string // substrings of the error; none means valid
	}{
		{"valid", func(w *Workload) {}, nil},
		{"duration instead of ops", func(w *Workload) { w.Ops, w.Duration = 0, time.Second }, nil},
		{"all reads", func(w *Workload) { w.ReadFraction = 1 }, nil},
		{"all writes", func(w *Workload) { w.ReadFraction = 0 }, nil},
		{"negative ops", func(w *Workload) { w.Ops = -1 }, []string{"Workload.Ops = -1"}},
		{"negative duration", func(w *Workload) { w.Duration = -time.Second }, []string{"Workload.Duration = -1s"}},
		{"no stop condition", func(w *Workload) { w.Ops = 0 }, []string{"Workload.Ops = 0 and Workload.Duration = 0"}},
		{"read fraction above 1", func(w *Workload) { w.ReadFraction = 1.5 }, []string{"Workload.ReadFraction = 1.5"}},
		{"read fraction negative", func(w *Workload) { w.ReadFraction = -0.1 }, []string{"Workload.ReadFraction = -0.1"}},
		{"read fraction NaN", func(w *Workload) { w.ReadFraction = math.NaN() }, []string{"Workload.ReadFraction = NaN"}},
		{"zero value size", func(w *Workload) { w.ValueSize = 0 }, []string{"Workload.ValueSize = 0"}},
		{"zero concurrency", func(w *Workload) { w.Concurrency = 0 }, []string{"Workload.Concurrency = 0"}},
		{"zero keys", func(w *Workload) { w.Keys = 0 }, []string{"Workload.Keys = 0"}},
		{"several at once", func(w *Workload) { w.Keys, w.Concurrency = -3, -2 },
			[]string{"Workload.Keys = -3", "Workload.Concurrency = -2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := goodWorkload()
			tt.modify(&w)
			err := w.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate(%+v) = %v, want nil", w, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%+v) = nil, want error mentioning %q", w, tt.want)
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Validate(%+v) = %q, want it to mention %q", w, err, s)
				}
			}
		})
	}
}

func TestRunCounts(t *testing.T) {
	d := newMem()
	w := Workload{Ops: 20000, ReadFraction: 0.8, ValueSize: 64, Concurrency: 7, Keys: 500, Preload: true}
	var progress bytes.Buffer
	res, err := Run(context.Background(), d, w, &progress)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Driver != "mem" {
		t.Errorf("Driver = %q, want mem", res.Driver)
	}
	if res.Ops != int64(w.Ops) || res.Reads+res.Writes != res.Ops {
		t.Errorf("Ops = %d, Reads+Writes = %d+%d, want %d", res.Ops, res.Reads, res.Writes, w.Ops)
	}
	if frac := float64(res.Reads) / float64(res.Ops); math.Abs(frac-w.ReadFraction) > 0.02 {
		t.Errorf("read fraction = %.3f, want about %.2f", frac, w.ReadFraction)
	}
	if res.Errors != 0 || res.FirstErr != "" || res.Misses != 0 {
		t.Errorf("Errors = %d, FirstErr = %q, Misses = %d, want none (keys were preloaded)", res.Errors, res.FirstErr, res.Misses)
	}
	if len(d.m) != w.Keys {
		t.Errorf("driver holds %d keys, want %d after preload", len(d.m), w.Keys)
	}
	if res.Elapsed <= 0 || res.OpsPerSec <= 0 {
		t.Errorf("Elapsed = %v, OpsPerSec = %v, want > 0", res.Elapsed, res.OpsPerSec)
	}
	if res.ReadP50 <= 0 || res.ReadP99 < res.ReadP50 || res.WriteP50 <= 0 || res.WriteP99 < res.WriteP50 {
		t.Errorf("percentiles read %v/%v write %v/%v, want 0 < p50 <= p99", res.ReadP50, res.ReadP99, res.WriteP50, res.WriteP99)
	}
	if !strings.Contains(progress.String(), "preloading 500 keys") || !strings.Contains(progress.String(), "mem: 20000 ops in") {
		t.Errorf("progress output lacks preload or summary line:\n%s", progress.String())
	}

	// The same workload issues the same operations every time.
	res2, err := Run(context.Background(), newMem(), w, nil)
	if err != nil {
		t.Fatalf("second Run: %v", err)
	}
	if res2.Reads != res.Reads || res2.Writes != res.Writes {
		t.Errorf("second run: reads/writes %d/%d, first %d/%d: want deterministic", res2.Reads, res2.Writes, res.Reads, res.Writes)
	}
}

func TestRunMissesWithoutPreload(t *testing.T) {
	res, err := Run(context.Background(), newMem(), Workload{Ops: 1000, ReadFraction: 1, ValueSize: 8, Concurrency: 3, Keys: 10}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Reads != 1000 || res.Misses != 1000 || res.Errors != 0 {
		t.Errorf("Reads = %d, Misses = %d, Errors = %d, want 1000, 1000, 0", res.Reads, res.Misses, res.Errors)
	}
}

func TestRunReportsErrors(t *testing.T) {
	d := newMem()
	d.failEvery = 10
	w := Workload{Ops: 1000, ReadFraction: 0, ValueSize: 8, Concurrency: 4, Keys: 50}
	res, err := Run(context.Background(), d, w, nil)
	if err != nil {
		t.Fatalf("Run: %v (operation errors belong in the Result)", err)
	}
	if res.Ops != 1000 || res.Errors != 100 {
		t.Errorf("Ops = %d, Errors = %d, want 1000, 100", res.Ops, res.Errors)
	}
	if !strings.Contains(res.FirstErr, "injected failure") || !strings.HasPrefix(res.FirstErr, "put kura-bench/") {
		t.Errorf("FirstErr = %q, want the put key and the injected failure", res.FirstErr)
	}
	if want := float64(res.Ops-res.Errors) / res.Elapsed.Seconds(); math.Abs(res.OpsPerSec-want) > 1e-6*want {
		t.Errorf("OpsPerSec = %v, want successful ops per second %v", res.OpsPerSec, want)
	}
	var table bytes.Buffer
	FormatTable(&table, []Result{res})
	if !strings.Contains(table.String(), "mem: first error: put kura-bench/") {
		t.Errorf("table does not report the error:\n%s", table.String())
	}

	// A failing preload aborts Run with an error.
	d = newMem()
	d.failEvery = 1
	w.Preload = true
	if _, err := Run(context.Background(), d, w, nil); err == nil || !strings.Contains(err.Error(), "preload") {
		t.Errorf("Run with failing preload = %v, want a preload error", err)
	}
}

// slowDriver sleeps on every operation, honouring ctx.
type slowDriver struct{ memDriver }

func (d *slowDriver) Put(ctx context.Context, key string, value []byte) error {
	select {
	case <-time.After(time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestRunDurationAndCancel(t *testing.T) {
	w := Workload{Duration: 100 * time.Millisecond, ReadFraction: 0, ValueSize: 8, Concurrency: 4, Keys: 10}
	start := time.Now()
	res, err := Run(context.Background(), &slowDriver{}, w, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if el := time.Since(start); el < w.Duration || el > 5*time.Second {
		t.Errorf("Duration run took %v, want about %v", el, w.Duration)
	}
	if res.Ops == 0 || res.Errors != 0 {
		t.Errorf("Ops = %d, Errors = %d, want some ops and no errors", res.Ops, res.Errors)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	w.Duration, w.Ops = 0, 1<<40
	res, err = Run(ctx, &slowDriver{}, w, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled Run: err = %v, want DeadlineExceeded", err)
	}
	if res.Ops == 0 || res.Errors != 0 {
		t.Errorf("cancelled Run: Ops = %d, Errors = %d, want partial ops and no errors from the cancellation", res.Ops, res.Errors)
	}
}

func TestRunProgress(t *testing.T) {
	old := progressInterval
	progressInterval = 10 * time.Millisecond
	defer func() { progressInterval = old }()
	var progress bytes.Buffer
	w := Workload{Duration: 60 * time.Millisecond, ValueSize: 8, Concurrency: 2, Keys: 10}
	if _, err := Run(context.Background(), &slowDriver{}, w, &progress); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !strings.Contains(progress.String(), " ops/s\n") {
		t.Errorf("no progress line:\n%s", progress.String())
	}
}

func TestRunInvalid(t *testing.T) {
	if _, err := Run(context.Background(), newMem(), Workload{}, nil); err == nil {
		t.Error("Run with zero Workload succeeded")
	}
	if _, err := Run(context.Background(), nil, goodWorkload(), nil); err == nil {
		t.Error("Run with nil Driver succeeded")
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	if got := h.percentile(50); got != 0 {
		t.Errorf("empty p50 = %v, want 0", got)
	}
	// 1µs .. 10000µs, one each.
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{
		{50, 5000 * time.Microsecond},
		{99, 9900 * time.Microsecond},
		{99.9, 9990 * time.Microsecond},
		{10, 1000 * time.Microsecond},
	} {
		got := h.percentile(c.p)
		if got < c.want || float64(got) > float64(c.want)*(1+1.0/histSub) {
			t.Errorf("p%v = %v, want within %.2f%% above %v", c.p, got, 100.0/histSub, c.want)
		}
	}
	if got := h.percentile(100); got != 10000*time.Microsecond {
		t.Errorf("p100 = %v, want the exact max 10ms", got)
	}
	if got := h.percentile(0); got != time.Microsecond {
		t.Errorf("p0 = %v, want the exact min 1µs", got)
	}

	// Small values are exact; merging adds counts.
	var a, b histogram
	for i := 0; i < 90; i++ {
		a.record(100)
	}
	for i := 0; i < 10; i++ {
		b.record(time.Second)
	}
	a.merge(&b)
	if a.total != 100 {
		t.Fatalf("merged total = %d, want 100", a.total)
	}
	if got := a.percentile(50); got != 100 {
		t.Errorf("merged p50 = %v, want 100ns", got)
	}
	if got := a.percentile(99); got != time.Second {
		t.Errorf("merged p99 = %v, want 1s", got)
	}
}

func TestHistogramBuckets(t *testing.T) {
	// Buckets are contiguous and monotonic, and each holds its values.
	prev := -1
	for v := uint64(0); v < 1<<20; v++ {
		i := histIndex(v)
		if i != prev && i != prev+1 {
			t.Fatalf("histIndex(%d) = %d after %d: not contiguous", v, i, prev)
		}
		if up := histUpper(i); up < v || (i > 0 && histUpper(i-1) >= v) {
			t.Fatalf("value %d in bucket %d with upper %d, previous upper %d", v, i, up, histUpper(i-1))
		}
		prev = i
	}
	for _, v := range []uint64{1 << 40, 1<<62 + 12345, math.MaxInt64} {
		i := histIndex(v)
		up := histUpper(i)
		if up < v || float64(up-v) > float64(v)/histSub {
			t.Errorf("histUpper(histIndex(%d)) = %d: not within 1/%d above", v, up, histSub)
		}
	}
}

func TestFormat(t *testing.T) {
	results := []Result{
		{Driver: "etcd", Ops: 2000, Reads: 1000, Writes: 1000, Elapsed: 1500 * time.Millisecond, OpsPerSec: 1333.3,
			ReadP50: 1200 * time.Microsecond, ReadP99: 5 * time.Millisecond, WriteP50: 2 * time.Millisecond, WriteP99: 9 * time.Millisecond},
		{Driver: "redis-long-name", Ops: 10, Writes: 10, Errors: 1, Elapsed: 900 * time.Microsecond, OpsPerSec: 10000,
			WriteP50: 800 * time.Nanosecond, WriteP99: 900 * time.Nanosecond, FirstErr: "put k: a|b"},
	}
	var tb bytes.Buffer
	FormatTable(&tb, results)
	lines := strings.Split(strings.TrimRight(tb.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("table has %d lines, want header, 2 rows, 1 error line:\n%s", len(lines), tb.String())
	}
	// Aligned in characters (runes), not bytes: µ is two bytes.
	col := strings.Index(lines[0], "OPS/S")
	for _, line := range lines[1:3] {
		l := []rune(line)
		if col < 0 || len(l) <= col || l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("column OPS/S (at %d) not aligned in %q", col, l)
		}
	}
	for _, s := range []string{"1.20ms", "5.00ms", "1.50s", "900.0µs", "800ns", "1333"} {
		if !strings.Contains(tb.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, tb.String())
		}
	}
	if !strings.Contains(lines[2], " - ") {
		t.Errorf("row without reads should show - for read latencies: %q", lines[2])
	}

	var md bytes.Buffer
	FormatMarkdown(&md, results)
	want := "| Driver | Ops | Reads | Writes | Misses | Errors | Elapsed | Ops/s | Read p50 | Read p99 | Write p50 | Write p99 |\n" +
		"| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n" +
		"| etcd | 2000 | 1000 | 1000 | 0 | 0 | 1.50s | 1333 | 1.20ms | 5.00ms | 2.00ms | 9.00ms |\n" +
		"| redis-long-name | 10 | 0 | 10 | 0 | 1 | 900.0µs | 10000 | - | - | 800ns | 900ns |\n" +
		"\n- redis-long-name: 1 errors, first: `put k: a|b`\n"
	if md.String() != want {
		t.Errorf("markdown:\n%s\nwant:\n%s", md.String(), want)
	}
}

// TestPeers benchmarks the real etcd and Redis started by
// scripts/kv-peers.sh. It is an opt-in smoke test of the script and the
// drivers, not part of the regular suite.
func TestPeers(t *testing.T) {
	if os.Getenv("KURA_BENCH_PEERS") != "1" {
		t.Skip("opt-in benchmark smoke test: set KURA_BENCH_PEERS=1 to start etcd and redis-server with scripts/kv-peers.sh and benchmark them")
	}
	script, err := filepath.Abs("../../scripts/kv-peers.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	start := exec.CommandContext(ctx, "bash", script, "start", dir)
	var stderr bytes.Buffer
	start.Stderr = &stderr
	out, err := start.Output()
	// Registered before checking err: start may have left some running.
	t.Cleanup(func() {
		stop := exec.Command("bash", script, "stop", dir)
		if b, err := stop.CombinedOutput(); err != nil {
			t.Errorf("kv-peers.sh stop: %v\n%s", err, b)
		}
	})
	if err != nil {
		t.Fatalf("kv-peers.sh start: %v\n%s", err, stderr.String())
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	if env["ETCD"] == "" || env["REDIS"] == "" {
		t.Fatalf("kv-peers.sh start printed %q, want ETCD= and REDIS= lines", out)
	}

	etcd, err := NewEtcd(strings.Split(env["ETCD"], ","))
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	redis, err := NewRedis(env["REDIS"])
	if err != nil {
		t.Fatal(err)
	}
	defer redis.Close()

	// The drivers agree on the ErrNotFound contract.
	for _, d := range []Driver{etcd, redis} {
		if _, err := d.Get(ctx, "kura-bench/absent"); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: Get of a missing key: %v, want ErrNotFound", d.Name(), err)
		}
		if err := d.Put(ctx, "kura-bench/x", []byte("v1")); err != nil {
			t.Fatalf("%s: Put: %v", d.Name(), err)
		}
		if v, err := d.Get(ctx, "kura-bench/x"); err != nil || string(v) != "v1" {
			t.Errorf("%s: Get = %q, %v, want v1", d.Name(), v, err)
		}
	}

	w := Workload{Ops: 2000, ReadFraction: 0.5, ValueSize: 256, Concurrency: 16, Keys: 1000, Preload: true}
	var results []Result
	var progress bytes.Buffer
	for _, d := range []Driver{etcd, redis} {
		res, err := Run(ctx, d, w, &progress)
		if err != nil {
			t.Fatalf("Run %s: %v", d.Name(), err)
		}
		if res.Ops != int64(w.Ops) || res.Errors != 0 || res.Misses != 0 {
			t.Errorf("%s: Ops = %d, Errors = %d (%s), Misses = %d; want %d, 0, 0", d.Name(), res.Ops, res.Errors, res.FirstErr, res.Misses, w.Ops)
		}
		results = append(results, res)
	}
	var table bytes.Buffer
	fmt.Fprintf(&table, "workload: %+v\n", w)
	FormatTable(&table, results)
	table.WriteString("\n")
	FormatMarkdown(&table, results)
	t.Logf("progress:\n%s\n%s", progress.String(), table.String())
}
