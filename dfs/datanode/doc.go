// Package datanode is kura dfs's datanode: it keeps block replicas in a
// blockstore, serves the DataTransfer gRPC service (proto/dfspb) to clients
// and to other datanodes, and keeps itself known to every namenode through
// DatanodeProtocol: Register, then a full block report, then heartbeats
// (every 3s by default) whose answers carry commands (delete blocks,
// replicate a block, finalize replicas left being written, report now),
// incremental reports (BlockReceived)
// after each finalized or deleted replica, and a periodic full report. A
// namenode that is down, at start or later, is retried with exponential
// backoff; every reconnection registers again and sends a full report.
//
// # The write pipeline
//
// A client writes a block through a pipeline of datanodes, as HDFS does.
// It opens WriteBlock on the first one with a header naming the block, its
// generation stamp and the rest of the pipeline (the targets). Each
// datanode creates its replica, opens WriteBlock on the next target with
// the targets after it, waits for that one's setup ack and only then sends
// its own setup ack (seqno -1) upstream, so a client learns of an
// unreachable node before it sends data.
//
// Packets follow: seqno, offset, data (64 KiB by default) and a CRC32C per
// 512-byte chunk of the block. Every datanode verifies a packet's checksums
// and writes it to its store (Writer.WritePacket) before forwarding it
// downstream; the last packet (last set, usually empty) finalizes the
// replica, and each datanode then reports it to the namenodes as received.
//
// Ack rules (HDFS's PipelineAck): a datanode acks packet n upstream only
// after it wrote packet n and its downstream acked packet n; the ack's
// replies hold one status per node from the acking one to the end of the
// pipeline, so the client's ack for a packet says every replica has it. On
// a failure the ack's replies stop at the first node that failed, with its
// status (ERROR, or ERROR_CHECKSUM for a packet whose data does not match
// its checksums) and a message; a node that cannot reach its downstream
// reports the downstream as failed. The failing ack ends the stream, and
// the client's error is a *PipelineError naming the failed node.
//
// On a failure the replicas stay unfinalized: a datanode whose stream ends
// before the last packet keeps its replica being written (rbw), for the
// pipeline recovery to come (blockstore's Append and Recover with a new
// generation stamp); a replica that received a bad packet is discarded.
// Pipeline recovery itself — rebuilding the pipeline without the failed
// node and continuing from the acknowledged length — is the client's
// (dfs/client), with append pipelines (WriteHeader.append) on the
// surviving replicas.
//
// A packet with flush set (a writer's hflush, BlockWriter.Flush) is
// written out of the block store's buffer before it is acknowledged, so
// that readers of the replica being written see it.
//
// # Block recovery
//
// When a writer dies, a namenode recovers its file's last block (lease
// recovery) with two calls to each datanode holding a replica:
// InitReplicaRecovery stops the write of the replica still in progress, if
// any (its stream is cut, and the replica stays being written as far as it
// got), and reports the replica's length, stamp and state;
// UpdateReplicaUnderRecovery cuts it to the length the namenode agreed,
// gives it the recovery id as its stamp and finalizes it (reported to the
// namenodes as received).
//
// As HDFS's ReplicaUnderRecovery, the replica keeps the id of the newest
// recovery that initialized it (in the block store, on disk, so a restart
// keeps it) until it is re-stamped: InitReplicaRecovery with an older id,
// and UpdateReplicaUnderRecovery with any id but that one, are refused
// (FAILED_PRECONDITION wrapping blockstore.ErrStaleRecovery). So of two
// recoveries that overlap (two namenodes), only the newer changes the
// replica: the older can no longer cut it shorter than the newer agreed.
//
// A replica left being written when the namenode closed its file without
// it (lease recovery that reached no datanode) is finalized later on the
// namenode's word: a block report naming it being written of a complete
// block is answered with a finalize command (at the block's stamp and
// length), which finalizes it at that length if it has that much and
// marks it corrupt if it is shorter.
//
// # Reads
//
// ReadBlock streams a header (length, checksum type and chunk size) and
// then packets of whole chunks with the checksums stored on disk, starting
// at the chunk boundary at or before the offset asked for. The datanode
// verifies what it reads (a mismatch ends the stream with DATA_LOSS and the
// replica is reported corrupt in the next block report) and the client
// verifies what arrives; either way Client.ReadBlock's error wraps
// ErrCorrupt, and the caller reads from another replica.
package datanode
