// Package dnmanager is the namenode's side of the datanode protocol
// (proto/dfspb DatanodeProtocol): it keeps the live-datanode view of one
// namenode, reconciles the datanodes' block reports with the replicas table
// of the metadata database, hands out commands (delete, replicate) on
// heartbeats, and chooses datanodes for new blocks (namespace.Placement)
// and sums their space (namespace.CapacityProvider).
//
// A namenode is stateless, as in HopsFS: what must survive a restart (which
// storage holds which replica) is in the database; the view of the
// datanodes (addresses, usage, last heartbeat, queued commands) lives in
// memory, per namenode, and is rebuilt from registrations and heartbeats,
// since every datanode registers with and heartbeats to every namenode. A
// namenode that restarts answers the first heartbeat of each datanode with
// "reregister", and the registration is followed by a full block report.
//
// Wiring: create the Manager, pass it as the namespace's Placement and
// Capacity, then Bind the namespace to it and expose the service with
// RegisterService on the namenode's gRPC server (or Serve on a listener):
//
//	m := dnmanager.New(dnmanager.Config{})
//	ns, _ := namespace.New(store, namespace.Config{Placement: m, Capacity: m})
//	m.Bind(ns)
//	m.RegisterService(grpcServer)
//	defer m.Close()
//
// # Liveness
//
// A datanode is live while its last registration or heartbeat is at most
// Config.DeadIntervals heartbeat intervals old (default 10 x 3s = 30s).
// HDFS waits 10.5 minutes (2 x the recheck interval of 5 min + 10
// heartbeats) before it declares a datanode dead, because re-replicating a
// large datanode's blocks is expensive and a short network blip should not
// cause it; kura's default is shorter because its datanodes are few and a
// writer or reader should stop being sent to a stopped datanode quickly. A
// dead datanode is left out of placement, of Capacity and of Resolve (so
// block locations do not name it); its replicas rows stay in the database
// (another namenode may still hear from it, and it comes back with a full
// report). A dead datanode that heartbeats again is told to re-register,
// and its full report then brings the replicas table up to date.
//
// Re-replication: when the monitor (a goroutine stopped by Close) sees a
// datanode turn dead, it walks that storage's replicas in batches and, for
// each block whose finalized replicas on live datanodes are fewer than the
// file's replication (but at least one), queues on a live holder a
// replicate command whose targets Placement chooses among the other live
// datanodes; the copies are recorded when the targets report them.
//
// The replication check (HDFS's ReplicationMonitor) makes sure they were:
// every Config.ReplicationInterval the monitor walks the live storages'
// replicas rows, a bounded batch per round (Config.ReplicationScanBatch
// rows, at most Config.ReplicationsPerRound copies queued), resuming
// where the last round stopped, and judges each block once per scan (on
// the walk of its first live finalized holder): a block still short of
// its file's replication, with at least one live finalized replica, is
// queued again unless a copy queued before still has time to show up
// (Config.ReplicationRetry, doubled with each attempt up to 32 times, so
// a block whose copies keep failing is retried ever less often); a block
// whose copy had its time is checked again at the start of the next
// round, by its id, without waiting for the scan to come round to it; a
// block seen fully replicated, or gone, is forgotten. A corrupt replica on a
// live datanode is deleted once its block has a good one, which frees
// that datanode for the copy. Manager.Replication reports the count of
// under-replicated blocks of the last complete scan and the copies queued.
//
// Missing blocks (HDFS's MissingBlocks): a complete or committed block
// with no finalized replica on a live datanode has nothing to copy from,
// and the scan, which walks the live datanodes' replicas, cannot find it
// by its finalized replicas. The check keeps them in an in-memory set
// instead, fed where they show up: the walk of a dead datanode's replicas
// (above) adds each block left without a live finalized holder, the scan
// adds a block whose only live replicas are corrupt (judged on the walk of
// its first corrupt holder), and a copy retried for a block found without
// a holder adds it. Every round then reads again, by id, a bounded slice
// of the set (at most half of Config.ReplicationScanBatch, from a cursor,
// wrapping around): a deleted block leaves the set, and one with a live
// finalized replica again (a dead datanode came back: its replicas rows
// were kept, so the block counts as soon as it registers, and its full
// report confirms them) leaves it and is queued for the copies it lacks
// as any under-replicated block. The cost is thus bounded per round: no
// round walks the whole blocks or replicas tables; a datanode's death
// costs one walk of its own replicas. Manager.Replication reports the
// set's size as Missing.
//
// A leader sees die only the datanodes it has a record of when they
// turn dead: it never sees the death of one that died before this
// namenode started (it never registered here), nor walks again one that
// it saw die in an earlier term of its own. So at the start of each term
// (the first monitor tick at which Config.Leader is true, again after
// leadership was lost and regained) it sweeps them. It pages through the
// storage ids the replicas table names (dal.Tx.ListReplicaStorages, a
// loose index scan: one index probe per storage, whatever the table's
// size), skips the storages live at the time (the scan covers them),
// those about to be seen die and those walked as newly dead this term,
// and walks the replicas of each other one as a newly dead datanode's,
// recording its blocks without a live finalized replica as missing and
// queueing copies of the under-replicated ones, unless a copy queued
// before still has time to show up (so a block is not queued twice). Its
// cost is bounded per monitor tick (every HeartbeatInterval/2): one read
// of at most 100 storage ids and at most Config.ReplicationScanBatch
// replicas rows, in transactions of at most Config.ReportBatch rows, each
// row with point reads of its block, inode and replicas. In all it reads
// the replicas rows of the storages that are not live once, over as many
// ticks as that takes (1000 rows per 1.5 s tick with the defaults: some
// 25 minutes per million replicas on dead datanodes). It starts once the
// manager has run for a dead interval (Manager.DeadInterval), so that
// the datanodes that are up have registered with a namenode that just
// started (a storage not registered by then is dead by the liveness
// rule); until it has ended, Missing may be short. `kura dfs fsck` (GET
// /fsck on a namenode) walks the namespace and reports every missing
// block at once.
//
// Only the leader (Config.Leader) marks datanodes dead, copies their
// blocks and runs the check; the copies pending are kept in memory, so a
// new leader starts its own.
//
// # Placement
//
// ChooseTargets picks min(replication, eligible) datanodes: live, not
// excluded by the request, and with at least a block size of remaining
// space when their usage is known. The writer's own datanode (a live
// datanode whose host name, or data address host, is the request's client
// machine) comes first, as in HDFS; the others are drawn at random without
// replacement, with probability proportional to their remaining space, so
// emptier datanodes fill faster while no datanode is starved of new blocks
// (HDFS's AvailableSpaceBlockPlacementPolicy has the same aim). There is no
// rack awareness.
//
// # Block reports
//
// A full report is reconciled with the replicas table in batches, each one
// transaction of at most Config.ReportBatch replicas rows and reported
// blocks, walking both in block id order (a merge join):
//
//   - reported, not in the table: a replica of a block that exists, at the
//     block's generation stamp or newer, is added (finalized; corrupt when
//     the datanode says so; being written only for a block under
//     construction); a replica of a block no file has, or older than its
//     block, is to be deleted by the datanode (a delete command in the
//     report's answer).
//   - a replica being written of a complete block at the block's stamp
//     (left so by a writer that died, when lease recovery closed the file
//     with the recorded lengths without reaching this datanode): the
//     report's answer carries a finalize command with the block's length;
//     the datanode finalizes the replica at that length if it has as many
//     bytes and marks it corrupt if not, and reports it either way (its
//     row, left as it was until then, follows).
//   - in both: the row's state follows the report (finalized, corrupt); a
//     stale generation stamp removes the row and deletes the replica.
//   - in the table, not reported: the row is removed, unless it is a replica
//     being written (a pipeline's expected location, which the datanode
//     reports once the block is finalized).
//   - a replica older than a block under recovery: left alone, rows and
//     replica, until the recovery ends (the recovery id is kept apart from
//     the block's stamp, which stays its replicas'; the recovery decides,
//     and the first report after it deletes the replica if still stale).
//
// Incremental reports (BlockReceived): a finalized replica is recorded with
// namespace.BlockReceived (a block no file has is to be deleted: queued for
// the next heartbeat); a corrupt one is recorded corrupt (one older than
// its block is deleted); a deleted replica removes its row; replicas being
// received are ignored (AddBlock recorded them). A datanode unknown to the
// manager gets NOT_FOUND on reports, which makes it register again.
//
// Several namenodes process reports from the same datanode independently; a
// full report processed by one namenode while another records a newer
// incremental report can remove a row that the next incremental report to
// the first namenode restores. The table converges; block locations may
// briefly miss a replica.
//
// # Locks
//
// One mutex (Manager.mu) guards the datanode view; it is never held across
// a database transaction or an RPC. Manager.statsMu guards the replication
// check's published status; the two are never held together, so there is
// no lock order to keep. The replication check's own state (the copies
// pending per block, the scan's cursor) belongs to the monitor goroutine
// and takes no lock. Database
// transactions touch blocks then replicas, in block id order, following
// the namespace's entity order.
package dnmanager
