package keyspace

import "testing"

func TestShardOfSpreadsAndIsStable(t *testing.T) {
	if got := ShardOf([]byte("k"), 0); got != 0 {
		t.Fatalf("ShardOf with no shards = %d, want 0", got)
	}
	counts := map[uint32]int{}
	for i := 0; i < 8000; i++ {
		k := []byte{byte(i), byte(i >> 8), 'k'}
		sh := ShardOf(k, 8)
		if sh < 1 || sh > 8 {
			t.Fatalf("shard %d out of 1..8", sh)
		}
		if ShardOf(k, 8) != sh {
			t.Fatal("ShardOf is not deterministic")
		}
		counts[sh]++
	}
	for sh := uint32(1); sh <= 8; sh++ {
		if counts[sh] < 800 || counts[sh] > 1200 {
			t.Fatalf("shard %d got %d of 8000 keys: badly spread (%v)", sh, counts[sh], counts)
		}
	}
	// The mapping is part of the on-disk format: a change would move keys.
	if got := ShardOf([]byte("greeting"), 8); got != 8 {
		t.Fatalf("ShardOf(greeting, 8) = %d, want 8: the key-to-shard mapping changed", got)
	}
}
