package store

import (
	"bytes"
	"reflect"
	"testing"
)

// The decoders below read bytes from disk; a damaged file must give an
// error, never a panic, and whatever decodes must re-encode to the same
// bytes.

func FuzzDecodeRecord(f *testing.F) {
	f.Add((&record{typ: TypeUint32, mtime: 5, expiry: 9, payload: []byte{1, 2, 3, 4}}).encode())
	f.Add((&record{flags: flagEncrypted, payload: bytes.Repeat([]byte{7}, sealedExtra+3)}).encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		if got := r.encode(); !bytes.Equal(got, b) {
			t.Fatalf("re-encode: got %x, want %x", got, b)
		}
	})
}

func FuzzDecodeChange(f *testing.F) {
	f.Add((&change{op: OpSubkeyAdd, time: 42, key: []byte("p"), subkey: []byte("s"), rec: []byte("r")}).encode())
	f.Add((&change{op: OpDelete, key: []byte("k")}).encode())
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeChange(1, b)
		if err != nil {
			return
		}
		// Varints may come non-canonical, so compare what the bytes mean.
		again, err := decodeChange(1, c.encode())
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("re-encoded change decodes as %+v, %v; want %+v", again, err, c)
		}
	})
}

func FuzzQueueMeta(f *testing.F) {
	f.Add(queueMeta{kind: KeyedQueue, head: queueStart, tail: queueStart + 3}.encode())
	f.Add([]byte{1})
	s, err := Open(f.TempDir(), Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := s.db.Set(queueMetaKey([]byte("q")), b, nil); err != nil {
			t.Fatal(err)
		}
		m, err := s.queueMeta([]byte("q"))
		if err == nil && m.kind != 0 && !bytes.Equal(m.encode(), b) {
			t.Fatalf("re-encode: got %x, want %x", m.encode(), b)
		}
		// Reading the queue through the API must not panic either.
		s.QueueLen(t.Context(), []byte("q"))
		s.Peek(t.Context(), []byte("q"), Front)
	})
}
