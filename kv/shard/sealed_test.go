package shard

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/kura-dev/kura/proto/kvpb"
	"github.com/kura-dev/kura/store"
)

// TestApplySealed: two replicas applying the same sealed writes and guarded
// pops hold the same bytes, and a guard that does not match changes
// nothing.
func TestApplySealed(t *testing.T) {
	dir := t.TempDir()
	var reps []*Shard
	for _, name := range []string{"a", "b"} {
		s, err := Open(filepath.Join(dir, name), 1, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		reps = append(reps, s)
	}
	sealed, err := store.SealValue("P", []byte("secret"), store.QueueItemAAD([]byte("q")))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := store.SealValue("P", []byte("v"), store.KeyAAD([]byte("k")))
	if err != nil {
		t.Fatal(err)
	}
	log := [][]byte{
		cmd(t, 1, f2time(), &kvpb.Request{Op: kvpb.Op_PUSH, Key: []byte("q"), Value: sealed, SealedValue: true}),
		cmd(t, 2, f2time(), &kvpb.Request{Op: kvpb.Op_SET, Key: []byte("k"), Value: kv, SealedValue: true}),
		cmd(t, 3, f2time(), &kvpb.Request{Op: kvpb.Op_POP, Key: []byte("q"), RawValues: true, Expect: store.Guard(nil, nil)}),
		cmd(t, 4, f2time(), &kvpb.Request{Op: kvpb.Op_SET, Key: []byte("x"), Value: []byte("not sealed"), SealedValue: true}),
		cmd(t, 5, f2time(), &kvpb.Request{Op: kvpb.Op_TAKE, Key: []byte("k"), RawValues: true}),
	}
	want := []kvpb.Code{kvpb.Code_OK, kvpb.Code_OK, kvpb.Code_OK, kvpb.Code_INVALID, kvpb.Code_INVALID}
	for _, s := range reps {
		for i, c := range log {
			_, res := s.Apply(uint64(i+1), c)
			r := res.(*kvpb.Response)
			if r.Code != want[i] || r.Swapped {
				t.Fatalf("entry %d: %v %s swapped=%v", i+1, r.Code, r.Error, r.Swapped)
			}
		}
	}
	var peeks [][]byte
	for _, s := range reps {
		r := s.Read(t.Context(), &kvpb.Request{Op: kvpb.Op_PEEK, Key: []byte("q"), RawValues: true})
		if r.Code != kvpb.Code_OK {
			t.Fatalf("peek: %v %s", r.Code, r.Error)
		}
		v, err := store.DecodeRawValue(r.Value)
		if err != nil || !v.Sealed || !bytes.Equal(v.Value, sealed) {
			t.Fatalf("peek: %+v, %v", v, err)
		}
		if r := s.Read(t.Context(), &kvpb.Request{Op: kvpb.Op_GET, Key: []byte("k")}); r.Code != kvpb.Code_NEED_PASSPHRASE {
			t.Fatalf("get without raw values: %v %s", r.Code, r.Error)
		}
		peeks = append(peeks, r.Value)
	}
	for _, s := range reps {
		_, res := s.Apply(6, cmd(t, 6, f2time(), &kvpb.Request{Op: kvpb.Op_POP, Key: []byte("q"), RawValues: true, Expect: store.Guard(nil, peeks[0])}))
		if r := res.(*kvpb.Response); r.Code != kvpb.Code_OK || !r.Swapped {
			t.Fatalf("guarded pop: %v %s swapped=%v", r.Code, r.Error, r.Swapped)
		}
	}
}

// FuzzApplySealed is FuzzApply seeded with the internal fields.
func FuzzApplySealed(f *testing.F) {
	sealed, err := store.SealValue("P", []byte("v"), store.KeyAAD([]byte("k")))
	if err != nil {
		f.Fatal(err)
	}
	for _, req := range []*kvpb.Request{
		{Op: kvpb.Op_SET, Key: []byte("k"), Value: sealed, SealedValue: true},
		{Op: kvpb.Op_PUSH, Key: []byte("k"), Value: sealed, SealedValue: true},
		{Op: kvpb.Op_CAS_INIT, Key: []byte("k"), Value: sealed, SealedValue: true, Bits: 8, Expect: []byte{1}},
		{Op: kvpb.Op_POP, Key: []byte("k"), RawValues: true, Expect: []byte{1}},
		{Op: kvpb.Op_TAKE, Key: []byte("k"), RawValues: true, Expect: store.Guard(nil, nil)},
	} {
		f.Add(cmd(f, 1, f2time(), req))
	}
	s, err := Open(filepath.Join(f.TempDir(), "s"), 1, store.Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	var index uint64
	f.Fuzz(func(t *testing.T, data []byte) {
		index++
		_, res := s.Apply(index, data)
		if _, ok := res.(*kvpb.Response); !ok {
			t.Fatalf("result %T", res)
		}
	})
}
