package bench

import (
	"net"
	"strings"
	"testing"
	"time"
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
