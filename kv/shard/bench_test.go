package shard

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kura-dev/kura/proto/kvpb"
	"github.com/kura-dev/kura/store"
)

// BenchmarkApplySet measures applying one SET of a 256-byte value to 1,000
// keys (what every replica does per write), with the shard's defaults and
// with the local engine's write-ahead log and memtable for comparison.
func BenchmarkApplySet(b *testing.B) {
	for _, c := range []struct {
		name string
		opts store.Options
	}{
		{"shard-defaults", store.Options{}},
		{"memtable-64MiB", store.Options{MemTableSize: 64 << 20}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "s"), 1, c.opts)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			val := make([]byte, 256)
			now := time.Now()
			cmds := make([][]byte, 1000)
			for i := range cmds {
				cmds[i] = cmd(b, uint64(i+1), now, &kvpb.Request{Op: kvpb.Op_SET, Key: []byte(fmt.Sprintf("key-%04d", i)), Value: val})
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, res := s.Apply(uint64(i+1), cmds[i%len(cmds)]); res.(*kvpb.Response).Code != kvpb.Code_OK {
					b.Fatal(res)
				}
			}
		})
	}
}
