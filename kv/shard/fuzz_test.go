package shard

import (
	"path/filepath"
	"testing"

	"github.com/kura-dev/kura/proto/kvpb"
	"github.com/kura-dev/kura/store"
)

// FuzzApply: any log entry, however malformed, is applied without a panic
// and with an in-band outcome, the same on every replica.
func FuzzApply(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x08\x01\x10\x02\x1a\x06\x08\x02\x12\x01k"))
	for _, op := range []kvpb.Op{kvpb.Op_SET, kvpb.Op_POP, kvpb.Op_CAS_ADD, kvpb.Op_REMOVE_ITEMS, kvpb.Op_SUBKEY_LINK} {
		f.Add(cmd(f, 1, f2time(), &kvpb.Request{Op: op, Key: []byte("k"), Value: []byte("v"), Bits: 32, Limit: 2}))
	}
	dir := f.TempDir()
	s, err := Open(filepath.Join(dir, "s"), 1, store.Options{})
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
