package dnmanager

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/kura-dev/kura/dfs/dal"
)

// monitor marks datanodes dead once their heartbeats stop and starts the
// re-replication of their blocks, and runs the replication check every
// Config.ReplicationInterval, until ctx is done. Only the leader does
// either.
func (m *Manager) monitor(ctx context.Context) {
	defer close(m.done)
	t := time.NewTicker(max(m.cfg.HeartbeatInterval/2, time.Millisecond))
	defer t.Stop()
	st := newReplState()
	leading := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if m.cfg.Leader != nil && !m.cfg.Leader() {
			if leading {
				leading, st.sweep = false, nil
				m.statsMu.Lock()
				m.repl.Swept = false
				m.statsMu.Unlock()
			}
			continue
		}
		if !leading {
			// A new term: the datanodes that died before it, or that this
			// namenode never heard from, are found by a sweep (see
			// sweepStep), from the top.
			leading = true
			st.sweep = m.newSweep()
		}
		for _, sid := range m.newlyDead() {
			err := m.reReplicate(ctx, st, sid)
			if err != nil && ctx.Err() == nil {
				m.log.Warn("re-replication of a dead datanode's blocks failed", "storage", sid, "error", err)
			}
			if err == nil && st.sweep != nil {
				// Walked: the sweep leaves it (one that failed, it walks).
				st.sweep.walked[sid] = true
			}
		}
		if sw := st.sweep; sw != nil {
			if err := m.sweepStep(ctx, st); err != nil && ctx.Err() == nil {
				m.log.Warn("walk of the replicas of datanodes not live failed; trying again", "storage", sw.sid, "error", err)
			}
			m.statsMu.Lock()
			m.repl.Swept = st.sweep == nil
			m.statsMu.Unlock()
		}
		if now := m.cfg.Clock(); m.cfg.ReplicationInterval > 0 && now.Sub(st.lastRound) >= m.cfg.ReplicationInterval {
			st.lastRound = now
			if err := m.replicationRound(ctx, st); err != nil && ctx.Err() == nil {
				m.log.Warn("replication check failed", "error", err)
			}
		}
	}
}

// newlyDead marks and returns the datanodes that turned dead since the
// last call.
func (m *Manager) newlyDead() []string {
	now := m.cfg.Clock()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for id, n := range m.nodes {
		if !n.dead && !m.liveLocked(n, now) {
			n.dead = true
			n.deletes, n.commands = nil, nil
			out = append(out, id)
			m.log.Warn("datanode is dead", "storage", id, "addr", n.st.DataAddr, "last_seen", n.st.LastSeen)
		}
	}
	return out
}

// reReplicate queues copies of the blocks of dead storage sid that have
// fewer finalized replicas on live datanodes than their file's
// replication (and at least one), at once (the replication check's
// backoff does not hold them back; the copies count as attempts for it),
// and records as missing those left with no finalized replica on a live
// datanode. Its cost is the dead storage's replicas: batches of
// Config.ReportBatch rows, each with a point read of their blocks, inodes
// and replicas; the rest of the namespace is not read.
func (m *Manager) reReplicate(ctx context.Context, st *replState, sid string) error {
	ns := m.ns.Load()
	if ns == nil {
		return nil
	}
	store := ns.Store()
	_, live := m.liveStorages()
	var after int64
	queued, missing := 0, 0
	for {
		w, err := m.walkStorage(ctx, store, st, sid, after, m.cfg.ReportBatch, live, checkDeath)
		if err != nil {
			return err
		}
		queued, missing = queued+w.queued, missing+w.missing
		if w.rows < m.cfg.ReportBatch {
			break
		}
		after = w.last
	}
	m.publish(st, m.cfg.Clock())
	if queued > 0 {
		m.log.Info("queued re-replication of a dead datanode's blocks", "storage", sid, "blocks", queued)
	}
	if missing > 0 && m.cfg.ReplicationInterval > 0 {
		m.log.Warn("blocks missing: a dead datanode held their last live replica", "storage", sid, "blocks", missing, "missing", len(st.missing))
	}
	return nil
}

// walkResult is what one walkStorage call did.
type walkResult struct {
	rows    int   // replicas rows read
	last    int64 // the block id of the last one
	queued  int   // copies queued
	missing int   // blocks seen without a live finalized replica
}

// walkStorage is one batch of the walk of a storage that is not live:
// in one read transaction, up to limit of sid's replicas rows with block
// ids above after, each block with a point read of its block, inode and
// replicas (planBlock); then each block short of its replication is
// checked (checkBlock, in mode), which queues its copy or records it as
// missing.
func (m *Manager) walkStorage(ctx context.Context, store dal.Store, st *replState, sid string, after int64, limit int, live map[string]bool, mode checkMode) (walkResult, error) {
	var w walkResult
	var plans []*replPlan
	err := store.ReadTx(ctx, func(tx dal.Tx) error {
		plans, w = plans[:0], walkResult{}
		rows, err := tx.ListStorageReplicas(ctx, sid, after, limit)
		if err != nil {
			return err
		}
		w.rows = len(rows)
		inodes := map[int64]*dal.Inode{}
		for _, r := range rows {
			w.last = r.BlockID
			p, err := planBlock(ctx, tx, r.BlockID, live, inodes)
			if err != nil {
				return err
			}
			if p != nil && (p.underReplicated() || p.missing()) {
				plans = append(plans, p)
			}
		}
		return nil
	})
	if err != nil {
		return walkResult{}, fmt.Errorf("scan replicas of %s after block %d: %w", sid, after, err)
	}
	now := m.cfg.Clock()
	for _, p := range plans {
		if p.missing() {
			w.missing++
		}
		if m.checkBlock(st, p, now, mode) {
			w.queued++
		}
	}
	return w, nil
}

// sweepStoragePage is how many storage ids one read of the sweep lists
// (a variable for tests).
var sweepStoragePage = 100

// sweep is a leader's walk, at the start of its term, of the replicas of
// every storage that has replicas rows and is not live: datanodes that
// died before the term (while another namenode led, or before this one
// started) or that never registered with this namenode, whose deaths
// newlyDead never reports. It belongs to the monitor goroutine.
type sweep struct {
	notBefore time.Time       // when it may start (see newSweep)
	walked    map[string]bool // storages walked this term: skipped
	page      []string        // storage ids listed and not yet taken
	listed    string          // the last storage id listed
	listedAll bool            // the listing reached the last storage
	sid       string          // the storage being walked ("": take the next)
	after     int64           // its block ids <= after are done
	storages  int             // storages walked so far
	queued    int             // copies it queued
	missing   int             // blocks it saw without a live finalized replica
	started   bool            // its first step ran
}

// newSweep returns the sweep of a new term. It starts once this manager
// has run for a dead interval (Manager.DeadInterval), whatever the term's
// start: a datanode that is up registers within a heartbeat of hearing
// from this namenode (a restarted namenode asks each one to), so until
// then a storage not registered is not yet known dead; one that has not
// registered after a dead interval is dead by the liveness rule. Without
// that wait, a restarted namenode leading at once would walk every
// storage and count every block missing until its datanodes registered.
func (m *Manager) newSweep() *sweep {
	return &sweep{notBefore: m.started.Add(m.dead), walked: map[string]bool{}}
}

// sweepStep does one bounded step of the term's sweep (st.sweep), one
// per monitor tick, and ends it (st.sweep = nil) when every storage has
// been seen. A step reads at most one page of storage ids
// (dal.Tx.ListReplicaStorages: an index probe per id, whatever the
// replicas table's size) and at most Config.ReplicationScanBatch replicas
// rows of storages that are not live now, in transactions of at most
// Config.ReportBatch rows, each walked as a newly dead storage's
// (walkStorage: a point read of block, inode and replicas per row). The
// storages the manager watches are skipped (see watchedStorages: the live
// ones, which the replication check's scan walks, and those about to be
// reported by newlyDead), and so are those newlyDead walked this term;
// the others, dead before the term or never registered, are walked. The
// sweep
// thus costs one walk of the replicas rows of the storages not live,
// spread over ticks: with the defaults, 1000 rows every 1.5 s, so a
// dead storage of a million replicas takes some 25 minutes to be counted
// in full. Copies are queued in checkRetry's mode: a block with a copy
// queued whose time to show up has not passed (this term, by the death
// walk of another of its holders) is not queued again.
func (m *Manager) sweepStep(ctx context.Context, st *replState) error {
	sw := st.sweep
	ns := m.ns.Load()
	if ns == nil || m.cfg.Clock().Before(sw.notBefore) {
		return nil
	}
	if !sw.started {
		sw.started = true
		m.log.Info("leader: walking the replicas of the datanodes that are not live, to count their missing blocks")
	}
	store := ns.Store()
	_, live := m.liveStorages()
	watched := m.watchedStorages()
	listedThisStep := false
	budget := m.cfg.ReplicationScanBatch
	for budget > 0 {
		if sw.sid == "" {
			for len(sw.page) > 0 && sw.sid == "" {
				sid := sw.page[0]
				sw.page = sw.page[1:]
				if !watched[sid] && !sw.walked[sid] {
					sw.sid, sw.after = sid, 0
				}
			}
			if sw.sid == "" {
				if sw.listedAll {
					m.endSweep(st)
					return nil
				}
				if listedThisStep {
					return nil // one listing per step: the next step goes on
				}
				listedThisStep = true
				var page []string
				err := store.ReadTx(ctx, func(tx dal.Tx) error {
					var err error
					page, err = tx.ListReplicaStorages(ctx, sw.listed, sweepStoragePage)
					return err
				})
				if err != nil {
					return fmt.Errorf("list the storages with replicas after %q: %w", sw.listed, err)
				}
				sw.page, sw.listedAll = page, len(page) < sweepStoragePage
				if len(page) > 0 {
					sw.listed = page[len(page)-1]
				}
				continue
			}
		}
		if watched[sw.sid] || sw.walked[sw.sid] {
			// Registered, or walked as newly dead, since: not ours.
			sw.sid = ""
			continue
		}
		limit := min(budget, m.cfg.ReportBatch)
		w, err := m.walkStorage(ctx, store, st, sw.sid, sw.after, limit, live, checkRetry)
		if err != nil {
			return err
		}
		budget -= max(w.rows, 1)
		sw.queued, sw.missing = sw.queued+w.queued, sw.missing+w.missing
		if w.rows < limit {
			sw.walked[sw.sid] = true
			sw.storages++
			sw.sid = ""
			continue
		}
		sw.after = w.last
	}
	m.publish(st, m.cfg.Clock())
	return nil
}

// watchedStorages returns the storages the manager has a record of that
// the monitor has not marked dead: the live ones, and those that newlyDead
// will report (and reReplicate walk) once they turn dead. The sweep leaves
// them alone, so that no storage is walked by both (a death walk queues
// copies without waiting for the ones queued before).
func (m *Manager) watchedStorages() map[string]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	set := make(map[string]bool, len(m.nodes))
	for id, n := range m.nodes {
		if !n.dead {
			set[id] = true
		}
	}
	return set
}

// endSweep ends the term's sweep and reports what it found.
func (m *Manager) endSweep(st *replState) {
	sw := st.sweep
	st.sweep = nil
	m.publish(st, m.cfg.Clock())
	level := slog.LevelInfo
	if sw.missing > 0 && m.cfg.ReplicationInterval > 0 {
		level = slog.LevelWarn
	}
	m.log.Log(context.Background(), level, "leader: walked the replicas of the datanodes that are not live",
		"storages", sw.storages, "copies_queued", sw.queued, "blocks_without_live_replica", sw.missing, "missing", len(st.missing))
}
