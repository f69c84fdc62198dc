package blockstore

import (
	"bytes"
	"context"
	"io"
	"testing"
)

// TestFlush: bytes a Writer buffers are invisible to readers until Flush
// (hflush), which shows them all, a partial last chunk included; Recover
// then cuts the replica back and finalizes it under a new stamp.
func TestFlush(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir(), Options{NoSync: true})
	w, err := s.Create(ctx, 7, 1)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 1000) // 16,000 bytes: 31 chunks and a partial one
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if bi, err := s.Stat(7); err != nil || bi.Length != 0 {
		t.Fatalf("before Flush: %+v %v, want nothing visible", bi, err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r, err := s.NewReader(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after Flush read %d bytes (%v), want %d", len(got), err, len(data))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	bi, err := s.Recover(ctx, 7, 2, 10_001)
	if err != nil || bi.Length != 10_001 || bi.GenStamp != 2 || bi.State != Finalized {
		t.Fatalf("recover: %+v %v", bi, err)
	}
	if err := s.Verify(ctx, 7); err != nil {
		t.Fatal(err)
	}
}
