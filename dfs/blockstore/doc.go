// Package blockstore is a datanode's block store: the replicas of dfs blocks
// kept as plain files in one data directory, each with a CRC32C checksum per
// 512-byte chunk that is verified on every read, laid out the way an HDFS
// datanode lays out a block pool.
//
// # On-disk format
//
//	DIR/kura.lock                          dirlock: one process per directory
//	DIR/VERSION                            "layoutVersion=1" and "storageID=DS-<uuid>"
//	DIR/rbw/blk_<id>                       data of a replica being written
//	DIR/rbw/blk_<id>_<genstamp>.meta       its checksums
//	DIR/current/subdir<a>/subdir<b>/blk_<id>
//	DIR/current/subdir<a>/subdir<b>/blk_<id>_<genstamp>.meta
//	DIR/recovery/blk_<id>                  the recovery id a replica is under
//
// Block ids and generation stamps are unsigned decimal numbers. A finalized
// replica lives in current/ under two levels of subdirectories chosen from
// its id as HDFS's DatanodeUtil.idToBlockDir chooses them:
// a = (id>>16) & 31 and b = (id>>8) & 31, so no directory holds more than a
// few thousand files. A replica being written (HDFS's "rbw") lives flat in
// rbw/ and is moved to current/ by Writer.Finalize: the data file is renamed
// first and the meta file second, each rename followed by an fsync of the
// directories involved.
//
// A file in recovery/ holds, in decimal, the id of the newest block
// recovery that initialized the replica (InitRecovery, HDFS's
// ReplicaUnderRecovery) and has not yet re-stamped it: while it is there
// the replica refuses older recoveries (their InitRecovery and Recover are
// ErrStaleRecovery), after a restart too. It is written to a temporary
// file renamed over the old one, and removed once the replica's stamp
// reaches the recovery id (Recover, Append) or the namenode has the
// replica finalized as it is (FinalizeAt).
//
// The data file holds the block's bytes and nothing else. The meta file is
// HDFS's block metadata file: a 7-byte header, then one checksum per chunk.
//
//	offset  size  field
//	0       2     version, big-endian; always 1
//	2       1     checksum type: 0 NULL, 1 CRC32 (IEEE), 2 CRC32C (Castagnoli)
//	3       4     bytes per checksum, big-endian; 512 unless Options say otherwise
//	7       4*n   the checksum of chunk i at 7+4*i, big-endian, for
//	              n = ceil(length / bytes-per-checksum) chunks
//
// Chunk i covers data bytes [i*bpc, (i+1)*bpc); the last chunk may be shorter
// and its checksum covers only the bytes it has. The store writes CRC32C and
// reads CRC32 and CRC32C (HDFS's older default); a NULL checksum is refused.
// The bytes of a chunk and of its checksum are exactly those an HDFS data
// transfer packet carries, so a replica is served without recomputing.
//
// # Crash safety
//
// Open rebuilds the replica map from the directory. A replica found in
// rbw/ (a writer that never finalized, or a crash) is recovered as HDFS does:
// its length becomes that of the longest prefix whose last chunk agrees with
// its checksum, and the data and meta files are truncated to it. A replica
// split between rbw/ and current/ (a crash between the two renames of
// Finalize or of Append) is completed in current/: both moves rename files
// whose contents were already synced. A finalized replica whose meta file
// is missing, has a bad header or the wrong number of checksums, or whose
// data file is missing, is kept and reported by List with its Corrupt reason
// rather than dropped, so that the namenode hears of it in the next block
// report; reads that meet a checksum mismatch mark the replica the same way.
// Recovery files of replicas that are gone, or whose stamp reached the
// recovery id (a crash between the re-stamp and the file's removal), are
// removed.
//
// # Concurrency
//
// A Store is safe for concurrent use. A Writer belongs to one goroutine. A
// Reader's ReadAt and ReadPacket may be called concurrently; Read and Seek
// share an offset and belong to one goroutine. Locks: Store.mu guards the
// replica map, each replica's own mutex its state and file moves. A
// replica's mutex may be held while Store.mu is taken (to drop the replica
// from the map), never the other way round: Store.mu is only ever held
// while locking a replica that is not yet in the map.
package blockstore
