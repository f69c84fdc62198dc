package dnmanager

import (
	"context"
	"fmt"
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
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if m.cfg.Leader != nil && !m.cfg.Leader() {
			continue
		}
		for _, sid := range m.newlyDead() {
			if err := m.reReplicate(ctx, st, sid); err != nil && ctx.Err() == nil {
				m.log.Warn("re-replication of a dead datanode's blocks failed", "storage", sid, "error", err)
			}
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
		var rows []*dal.Replica
		var plans []*replPlan
		err := store.ReadTx(ctx, func(tx dal.Tx) error {
			plans = plans[:0]
			var err error
			rows, err = tx.ListStorageReplicas(ctx, sid, after, m.cfg.ReportBatch)
			if err != nil {
				return err
			}
			inodes := map[int64]*dal.Inode{}
			for _, r := range rows {
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
			return fmt.Errorf("scan replicas of %s after block %d: %w", sid, after, err)
		}
		now := m.cfg.Clock()
		for _, p := range plans {
			if p.missing() {
				missing++
			}
			if m.checkBlock(st, p, now, checkDeath) {
				queued++
			}
		}
		if len(rows) < m.cfg.ReportBatch {
			break
		}
		after = rows[len(rows)-1].BlockID
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
