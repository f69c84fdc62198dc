package dnmanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/proto/dfspb"
)

// maxRetryDoublings bounds the backoff of a block whose copies keep
// failing: ReplicationRetry times 2^5 = 32 at most.
const maxRetryDoublings = 5

// ReplicationStatus is what the leader's replication check knows
// (Manager.Replication).
type ReplicationStatus struct {
	// UnderReplicated is the number of blocks that had fewer finalized
	// replicas on live datanodes than their file's replication, and at
	// least one, when the last complete scan saw them (HDFS's
	// under-replicated blocks). A block with no live finalized replica at
	// all is not under-replicated but missing (see Missing).
	UnderReplicated int
	// Missing is the number of complete (or committed) blocks known to
	// have no finalized replica on a live datanode (HDFS's MissingBlocks:
	// nothing to copy from; every replica is on dead datanodes, or the
	// live ones are corrupt). It is kept up to date as datanodes die (the
	// blocks of a dead datanode without another live finalized holder are
	// added), as the scan meets blocks whose only live replicas are
	// corrupt, and as each round checks the known missing blocks again by
	// id (a block with a live finalized replica again, because one of its
	// datanodes came back, is no longer missing and is queued for copies;
	// a deleted one is forgotten). Blocks whose every replica is on
	// datanodes that died before this namenode's term began, or that it
	// never heard from (dead before it started), are added by the term's
	// sweep of the storages that are not live (see the package
	// documentation), which the leader runs in bounded steps once it has
	// been up for a dead interval: until that sweep has ended, Missing
	// may be short of what `kura dfs fsck` finds (see Swept).
	Missing int
	// Swept reports whether this term's sweep of the storages that are not
	// live has ended: from then on Missing counts every missing block.
	Swept bool
	// Pending is the number of blocks with a copy queued whose time to
	// show up has not run out.
	Pending int
	// Queued counts the copies queued since the manager started (by the
	// replication check and on datanode deaths).
	Queued int64
	// Scans counts the complete scans; LastScan is when the last ended.
	Scans    int64
	LastScan time.Time
}

// Replication returns the replication check's status. It is only kept
// up to date while this namenode leads (the zero value until then).
func (m *Manager) Replication() ReplicationStatus {
	m.statsMu.Lock()
	defer m.statsMu.Unlock()
	return m.repl
}

// pendingCopy is a block with a copy queued: it is not queued again
// before next, which backs off with each attempt.
type pendingCopy struct {
	attempts int
	next     time.Time
	seen     int64 // the last scan that saw the block under-replicated
}

// replicaKey names a replica: a block on a storage.
type replicaKey struct {
	block int64
	sid   string
}

// replState is the replication check's state. It belongs to the monitor
// goroutine (no lock): the copies queued per block, the corrupt replicas
// being deleted, the blocks known missing, and the scan's cursor, a
// storage and a block id in it.
type replState struct {
	pending   map[int64]*pendingCopy
	deleting  map[replicaKey]time.Time // not asked again before
	missing   map[int64]struct{}       // blocks with no live finalized replica
	missAfter int64                    // the recheck of missing resumes after this id
	sid       string                   // storage being walked; "" before a scan's first
	after     int64                    // block ids <= after of sid are done
	scan      int64                    // the scan in progress, from 1
	under     int                      // under-replicated blocks seen by this scan
	queued    int64
	lastRound time.Time
	sweep     *sweep // the term's walk of storages not live; nil when done or not leading
}

func newReplState() *replState {
	return &replState{pending: map[int64]*pendingCopy{}, deleting: map[replicaKey]time.Time{}, missing: map[int64]struct{}{}, scan: 1}
}

// replPlan is one block as the replication check sees it.
type replPlan struct {
	blk     *dal.Block
	want    int      // the file's replication
	holders []string // storages with a finalized replica on a live datanode, sorted
	all     []string // storages with a replicas row, whatever its state
	corrupt []string // live storages with a corrupt replica
}

// underReplicated reports whether the block needs copies and can get
// them.
func (p *replPlan) underReplicated() bool { return len(p.holders) > 0 && len(p.holders) < p.want }

// missing reports whether the block has no finalized replica on a live
// datanode (nothing to copy it from).
func (p *replPlan) missing() bool { return len(p.holders) == 0 }

// planBlock reads (in tx) what the replication check needs of block
// blockID; nil when the block is gone or still being written (its
// pipeline's business). live is the set of live storages.
func planBlock(ctx context.Context, tx dal.Tx, blockID int64, live map[string]bool, inodes map[int64]*dal.Inode) (*replPlan, error) {
	blk, err := tx.GetBlock(ctx, blockID)
	if errors.Is(err, dal.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if blk.State != dal.BlockComplete && blk.State != dal.BlockCommitted {
		return nil, nil
	}
	in := inodes[blk.InodeID]
	if in == nil {
		in, err = tx.GetInodeByID(ctx, blk.InodeID, dal.LockNone)
		if errors.Is(err, dal.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		inodes[blk.InodeID] = in
	}
	reps, err := tx.ListReplicas(ctx, blk.InodeID, blk.BlockID)
	if err != nil {
		return nil, err
	}
	p := &replPlan{blk: blk, want: int(in.Replication)}
	for _, r := range reps {
		p.all = append(p.all, r.StorageID)
		switch {
		case !live[r.StorageID]:
		case r.State == dal.ReplicaFinalized:
			p.holders = append(p.holders, r.StorageID)
		case r.State == dal.ReplicaCorrupt:
			p.corrupt = append(p.corrupt, r.StorageID)
		}
	}
	slices.Sort(p.holders)
	slices.Sort(p.corrupt)
	return p, nil
}

// liveStorages returns the live storages, sorted, and as a set.
func (m *Manager) liveStorages() ([]string, map[string]bool) {
	now := m.cfg.Clock()
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []string
	set := map[string]bool{}
	for id, n := range m.nodes {
		if m.liveLocked(n, now) {
			ids = append(ids, id)
			set[id] = true
		}
	}
	slices.Sort(ids)
	return ids, set
}

// replicationRound is one round of the leader's replication check (HDFS's
// ReplicationMonitor, with its neededReplications found by scanning):
// first it checks again the blocks whose queued copy had its time (see
// retryDue), then it walks the replicas rows of the live storages, one
// storage after the other in id order, from where the last round
// stopped, reading at most Config.ReplicationScanBatch rows and queueing
// at most Config.ReplicationsPerRound copies in all. Each block is judged on the walk of
// its first live finalized holder (so once per scan): fewer live
// finalized replicas than its file's replication (and at least one)
// queues a copy, unless one queued before still has time to show up (see
// queueCopy); a corrupt replica on a live datanode is deleted once the
// block has a good one. When the walk passes the last storage the scan is
// complete: its count of under-replicated blocks is published, and the
// next round starts a new scan.
func (m *Manager) replicationRound(ctx context.Context, st *replState) error {
	ns := m.ns.Load()
	if ns == nil {
		return nil
	}
	store := ns.Store()
	now := m.cfg.Clock()
	live, liveSet := m.liveStorages()
	nextStorage := func(after string) string {
		i, found := slices.BinarySearch(live, after)
		if found {
			i++
		}
		if i < len(live) {
			return live[i]
		}
		return ""
	}
	rows, copies := m.cfg.ReplicationScanBatch, m.cfg.ReplicationsPerRound
	defer m.publish(st, now)
	// First the blocks whose copy had its time: checked again at once,
	// not when the scan comes round to them.
	retried, err := m.retryDue(ctx, store, st, liveSet, now, min(copies, rows))
	if err != nil {
		return err
	}
	copies -= retried
	// Then the blocks known missing, by id: at most half the round's rows,
	// so that the scan below goes on however many there are.
	checked, requeued, err := m.recheckMissing(ctx, store, st, liveSet, now, max(rows/2, 1), copies)
	if err != nil {
		return err
	}
	rows, copies = rows-checked, copies-requeued
	for rows > 0 && copies > 0 {
		if st.sid == "" || !liveSet[st.sid] {
			// The scan's first storage, or the one walked died: the next.
			st.sid, st.after = nextStorage(st.sid), 0
			if st.sid == "" {
				m.endScan(st, now)
				return nil
			}
		}
		sid, limit := st.sid, min(rows, m.cfg.ReportBatch)
		var plans []*replPlan
		var n int
		var last int64
		err := store.ReadTx(ctx, func(tx dal.Tx) error {
			plans, n, last = plans[:0], 0, 0
			reps, err := tx.ListStorageReplicas(ctx, sid, st.after, limit)
			if err != nil {
				return err
			}
			n = len(reps)
			inodes := map[int64]*dal.Inode{}
			for _, r := range reps {
				last = r.BlockID
				if r.State != dal.ReplicaFinalized && r.State != dal.ReplicaCorrupt {
					continue // judged on the walk of a finalized holder
				}
				p, err := planBlock(ctx, tx, r.BlockID, liveSet, inodes)
				if err != nil {
					return err
				}
				switch {
				case p == nil:
				case len(p.holders) > 0 && p.holders[0] == sid:
					plans = append(plans, p)
				case p.missing() && r.State == dal.ReplicaCorrupt && len(p.corrupt) > 0 && p.corrupt[0] == sid:
					// Only corrupt replicas on live datanodes: missing
					// (judged on the walk of its first corrupt holder).
					plans = append(plans, p)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("replication check: scan replicas of %s after block %d: %w", sid, st.after, err)
		}
		rows -= n
		done := true
		for _, p := range plans {
			if p.underReplicated() && copies == 0 {
				// Out of copies this round: the next one starts here.
				st.after, done = p.blk.BlockID-1, false
				break
			}
			if m.checkBlock(st, p, now, checkScan) {
				copies--
			}
		}
		if !done {
			return nil
		}
		if n < limit {
			// This storage is done: the next, or the scan is complete.
			st.sid, st.after = nextStorage(sid), 0
			if st.sid == "" {
				m.endScan(st, now)
				return nil
			}
			continue
		}
		st.after = last
	}
	return nil
}

// retryDue checks again up to limit blocks whose queued copy had its
// time to show up (oldest attempt first), and returns how many copies it
// queued.
func (m *Manager) retryDue(ctx context.Context, store dal.Store, st *replState, live map[string]bool, now time.Time, limit int) (int, error) {
	var due []int64
	for id, e := range st.pending {
		if e.attempts > 0 && !now.Before(e.next) {
			due = append(due, id)
		}
	}
	if len(due) == 0 || limit <= 0 {
		return 0, nil
	}
	slices.SortFunc(due, func(a, b int64) int { return st.pending[a].next.Compare(st.pending[b].next) })
	due = due[:min(len(due), limit)]
	plans := make([]*replPlan, len(due))
	err := store.ReadTx(ctx, func(tx dal.Tx) error {
		inodes := map[int64]*dal.Inode{}
		for i, id := range due {
			p, err := planBlock(ctx, tx, id, live, inodes)
			if err != nil {
				return err
			}
			plans[i] = p
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("replication check: read blocks to copy again: %w", err)
	}
	queued := 0
	for i, p := range plans {
		if p == nil || p.missing() {
			// Gone, still being written, or no live replica left to copy
			// from: forgotten (the scan finds it again if it can); a
			// missing one is kept among the missing blocks.
			delete(st.pending, due[i])
			if p == nil {
				delete(st.missing, due[i])
				continue
			}
		}
		if m.checkBlock(st, p, now, checkRetry) {
			queued++
		}
	}
	return queued, nil
}

// recheckMissing checks again, by id, up to limit of the blocks known
// missing, in block id order from where the last round stopped (wrapping
// around at the end), so that each one is read again every
// ceil(missing/limit) rounds: a block gone (its file deleted) or no
// longer complete is forgotten; one with a finalized replica on a live
// datanode again (one of its datanodes came back: its replicas rows were
// kept while it was dead) is no longer missing and is checked as any
// block, which queues the copies it lacks (at most copies of them; the
// scan queues the rest). It returns how many blocks it read and how many
// copies it queued.
//
// Cost per round: picking the ids sorts the in-memory set (O(m log m) for
// m missing blocks, no database access; HDFS too holds its missing blocks
// in memory, in its UnderReplicatedBlocks queue), then one read
// transaction of limit point reads (block, inode, replicas).
func (m *Manager) recheckMissing(ctx context.Context, store dal.Store, st *replState, live map[string]bool, now time.Time, limit, copies int) (checked, queued int, err error) {
	if len(st.missing) == 0 || limit <= 0 {
		return 0, 0, nil
	}
	ids := make([]int64, 0, len(st.missing))
	for id := range st.missing {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	i, _ := slices.BinarySearch(ids, st.missAfter+1)
	if i == len(ids) {
		i = 0 // wrap around
	}
	batch := ids[i:min(i+limit, len(ids))]
	st.missAfter = batch[len(batch)-1]
	if i+len(batch) == len(ids) {
		st.missAfter = 0 // the next round starts again at the smallest
	}
	plans := make([]*replPlan, len(batch))
	err = store.ReadTx(ctx, func(tx dal.Tx) error {
		inodes := map[int64]*dal.Inode{}
		for j, id := range batch {
			p, err := planBlock(ctx, tx, id, live, inodes)
			if err != nil {
				return err
			}
			plans[j] = p
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("replication check: read missing blocks again: %w", err)
	}
	found := 0
	for j, p := range plans {
		switch {
		case p == nil:
			delete(st.missing, batch[j])
		case p.missing():
		case queued >= copies:
			// Out of copies this round: no longer missing; the scan
			// queues its copy.
			delete(st.missing, batch[j])
			found++
		default:
			found++
			if m.checkBlock(st, p, now, checkRetry) {
				queued++
			}
		}
	}
	if found > 0 {
		m.log.Info("replication check: missing blocks have a live replica again", "blocks", found, "still_missing", len(st.missing))
	}
	return len(batch), queued, nil
}

// checkMode says who checks a block: the scan (which counts it), the
// retry of a block whose copy had its time, or a datanode's death (which
// does not wait for a copy queued before).
type checkMode int

const (
	checkScan checkMode = iota
	checkRetry
	checkDeath
)

// checkBlock acts on one block of the replication check: it records a
// block without a live finalized replica as missing (and any other as
// not), deletes the corrupt replicas of a block that has a good one,
// forgets a block with
// enough replicas and queues a copy of one without (see queueCopy),
// unless a copy queued before still has time to show up (but on a
// death). It returns whether a copy was queued.
func (m *Manager) checkBlock(st *replState, p *replPlan, now time.Time, mode checkMode) bool {
	id := p.blk.BlockID
	if p.missing() {
		// Nothing to copy from: missing until a finalized replica on a
		// live datanode shows up (see recheckMissing). Only tracked while
		// the check runs, which keeps the set true.
		if m.cfg.ReplicationInterval > 0 {
			if _, known := st.missing[id]; !known {
				st.missing[id] = struct{}{}
				m.log.Debug("block is missing: no finalized replica on a live datanode", "block", id, "inode", p.blk.InodeID,
					"replicas_on_dead_or_corrupt", len(p.all))
			}
		}
		return false
	}
	delete(st.missing, id)
	if len(p.corrupt) > 0 && len(p.holders) > 0 {
		// HDFS invalidates corrupt replicas once the block has enough good
		// ones; kura once it has one, so that the copy the block then
		// lacks can go to that datanode (block placement leaves out every
		// datanode with a replica, corrupt or not).
		// A delete is asked for once per ReplicationRetry, so that a late
		// one cannot reach a good copy made since.
		ref := &dfspb.BlockRef{Id: uint64(id), Genstamp: uint64(max(p.blk.GenerationStamp, 0))}
		for _, sid := range p.corrupt {
			k := replicaKey{id, sid}
			if t, ok := st.deleting[k]; ok && now.Before(t) {
				continue
			}
			if m.queueDeleteOnce(sid, ref) {
				st.deleting[k] = now.Add(m.cfg.ReplicationRetry)
				m.log.Info("deleting a corrupt replica", "block", id, "storage", sid, "good_replicas", len(p.holders))
			}
		}
	}
	if !p.underReplicated() {
		if len(p.holders) >= p.want {
			delete(st.pending, id)
		}
		return false
	}
	if mode == checkScan {
		st.under++
	}
	e := st.pending[id]
	if e == nil {
		e = &pendingCopy{}
		st.pending[id] = e
	}
	e.seen = st.scan
	if mode != checkDeath && now.Before(e.next) {
		return false // a copy queued before may still show up
	}
	if !m.queueCopy(p) {
		return false
	}
	e.attempts++
	e.next = now.Add(m.cfg.ReplicationRetry << min(e.attempts-1, maxRetryDoublings))
	st.queued++
	if e.attempts > 1 {
		m.log.Info("queued another copy of an under-replicated block", "block", id, "attempt", e.attempts,
			"replicas", len(p.holders), "replication", p.want, "next_check_after", e.next.Sub(now))
	}
	return true
}

// queueCopy queues on a random live holder of p's block a replicate
// command to as many live datanodes without a replica of it as it lacks,
// chosen by the placement policy. It returns false when there is no
// target or the holder is gone.
func (m *Manager) queueCopy(p *replPlan) bool {
	targets := m.choose(p.want-len(p.holders), 0, "", p.all)
	if len(targets) == 0 {
		return false
	}
	addrs := make([]string, len(targets))
	for i, t := range targets {
		addrs[i] = t.Addr
	}
	src := p.holders[rand.IntN(len(p.holders))]
	cmd := &dfspb.DatanodeCommand{Command: &dfspb.DatanodeCommand_Replicate{Replicate: &dfspb.ReplicateBlockCommand{
		Block:   &dfspb.BlockRef{Id: uint64(p.blk.BlockID), Genstamp: uint64(max(p.blk.GenerationStamp, 0))},
		Targets: addrs,
	}}}
	return m.queueCommand(src, cmd)
}

// queueDeleteOnce queues a delete of ref for storageID unless one of the
// same block is already queued; false when it queued nothing.
func (m *Manager) queueDeleteOnce(storageID string, ref *dfspb.BlockRef) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nodes[storageID]
	if n == nil || slices.ContainsFunc(n.deletes, func(r *dfspb.BlockRef) bool { return r.Id == ref.Id }) {
		return false
	}
	n.deletes = append(n.deletes, ref)
	return true
}

// endScan completes a scan: blocks it did not see under-replicated are
// forgotten (copied, or gone), and its count is published.
func (m *Manager) endScan(st *replState, now time.Time) {
	for id, e := range st.pending {
		if e.seen < st.scan {
			delete(st.pending, id)
		}
	}
	for k, t := range st.deleting {
		if !now.Before(t) {
			delete(st.deleting, k)
		}
	}
	m.statsMu.Lock()
	before := m.repl.UnderReplicated
	m.repl.UnderReplicated = st.under
	m.repl.Scans++
	m.repl.LastScan = now
	m.statsMu.Unlock()
	level := slog.LevelDebug
	if st.under != before {
		level = slog.LevelInfo
	}
	m.log.Log(context.Background(), level, "replication check: scan complete", "under_replicated", st.under, "pending", len(st.pending))
	st.scan++
	st.under = 0
	st.sid, st.after = "", 0
}

// publish updates the published counts of pending and queued copies.
func (m *Manager) publish(st *replState, now time.Time) {
	pending := 0
	for _, e := range st.pending {
		if now.Before(e.next) {
			pending++
		}
	}
	m.statsMu.Lock()
	m.repl.Pending = pending
	m.repl.Queued = st.queued
	m.repl.Missing = len(st.missing)
	m.statsMu.Unlock()
}
