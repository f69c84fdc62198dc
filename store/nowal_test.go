package store

import (
	"context"
	"path/filepath"
	"testing"
)

// TestNoWAL: a store without a write-ahead log keeps writes across Close
// and reopen (Close flushes), its checkpoints hold writes that were only
// in memory, its Sync flushes, and its meta records survive without a log.
func TestNoWAL(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := Options{NoWAL: true, ChangeLog: true, NoReaper: true}
	s, err := Open(filepath.Join(dir, "s"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, b("a"), b("1"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatalf("Sync without a log: %v", err)
	}
	if err := s.Set(ctx, b("b"), b("2"), 0); err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(dir, "cp")
	if err := s.Checkpoint(cp); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(dir, "s"), cp} {
		r, err := Open(d, opts)
		if err != nil {
			t.Fatal(err)
		}
		for k, want := range map[string]string{"a": "1", "b": "2"} {
			v, err := r.Get(ctx, b(k))
			if err != nil || string(v) != want {
				t.Fatalf("%s: %s = %q, %v; want %q", d, k, v, err, want)
			}
		}
		if !r.ChangeLogOn() {
			t.Fatalf("%s: change log setting lost", d)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
