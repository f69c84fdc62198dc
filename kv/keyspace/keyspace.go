// Package keyspace maps keys to shards. Servers and clients share it so a
// client that caches the cluster map sends each request straight to the
// leader of its key's shard.
package keyspace

import "github.com/cespare/xxhash/v2"

// ShardOf returns the shard (1..shards) that owns key in a cluster of
// shards shards; 0 when shards is 0 (no map known yet).
func ShardOf(key []byte, shards uint32) uint32 {
	if shards == 0 {
		return 0
	}
	return uint32(xxhash.Sum64(key)%uint64(shards)) + 1
}
