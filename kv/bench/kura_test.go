package bench

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kura-dev/kura/kv/server"
)

func TestNewKuraNoEndpoints(t *testing.T) {
	for _, eps := range [][]string{nil, {}, {"", "  "}} {
		d, err := NewKura(eps, false)
		if err == nil {
			d.Close()
			t.Fatalf("NewKura(%q) succeeded, want an error", eps)
		}
		if !strings.Contains(err.Error(), "no endpoints") {
			t.Errorf("NewKura(%q): %v, want it to say 'no endpoints'", eps, err)
		}
	}
}

// TestNewKuraUnreachable: a cluster that does not answer is reported by
// NewKura (after its 5 s probe), not as a run full of errors.
func TestNewKuraUnreachable(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 5 s probe")
	}
	// An address nothing listens on: a port just released.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	start := time.Now()
	d, err := NewKura([]string{addr}, true)
	if err == nil {
		d.Close()
		t.Fatalf("NewKura(%s) succeeded with nothing listening", addr)
	}
	if !strings.Contains(err.Error(), "probe read") || !strings.Contains(err.Error(), addr) {
		t.Errorf("NewKura(%s): %v, want a probe read error naming the address", addr, err)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Errorf("NewKura took %v to fail", el)
	}
}

// TestKuraDriver runs the driver against a one-node cluster served in this
// process: the ErrNotFound contract, the names, and a short Run.
func TestKuraDriver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := server.Start(ctx, server.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Shards: 2, Replicas: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()

	for _, serializable := range []bool{false, true} {
		d, err := NewKura([]string{n.Addr()}, serializable)
		if err != nil {
			t.Fatal(err)
		}
		want := map[bool]string{false: "kura", true: "kura-serializable"}[serializable]
		if d.Name() != want {
			t.Errorf("Name() = %q, want %q", d.Name(), want)
		}
		if v, err := d.Get(ctx, "kura-bench/absent"); !errors.Is(err, ErrNotFound) || v != nil {
			t.Errorf("%s: Get of a missing key = %q, %v; want nil, ErrNotFound", d.Name(), v, err)
		}
		buf := []byte("v1")
		if err := d.Put(ctx, "kura-bench/x", buf); err != nil {
			t.Fatalf("%s: Put: %v", d.Name(), err)
		}
		copy(buf, "zz") // Put must not retain the buffer
		if v, err := d.Get(ctx, "kura-bench/x"); err != nil || string(v) != "v1" {
			t.Errorf("%s: Get = %q, %v; want v1", d.Name(), v, err)
		}
		w := Workload{Ops: 400, ReadFraction: 0.5, ValueSize: 64, Concurrency: 4, Keys: 50, Preload: true}
		res, err := Run(ctx, d, w, nil)
		if err != nil {
			t.Fatalf("%s: Run: %v", d.Name(), err)
		}
		if res.Ops != int64(w.Ops) || res.Errors != 0 || res.Misses != 0 {
			t.Errorf("%s: Ops = %d, Errors = %d (%s), Misses = %d; want %d, 0, 0", d.Name(), res.Ops, res.Errors, res.FirstErr, res.Misses, w.Ops)
		}
		if err := d.Close(); err != nil {
			t.Errorf("%s: Close: %v", d.Name(), err)
		}
	}
}
