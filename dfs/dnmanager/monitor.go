package dnmanager

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/proto/dfspb"
)

// monitor marks datanodes dead once their heartbeats stop and starts the
// re-replication of their blocks, until ctx is done.
func (m *Manager) monitor(ctx context.Context) {
	defer close(m.done)
	t := time.NewTicker(max(m.cfg.HeartbeatInterval/2, time.Millisecond))
	defer t.Stop()
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
			if err := m.reReplicate(ctx, sid); err != nil && ctx.Err() == nil {
				m.log.Warn("re-replication of a dead datanode's blocks failed", "storage", sid, "error", err)
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

// reReplicate queues replicate commands for the blocks of dead storage sid
// that have fewer finalized replicas on live datanodes than their file's
// replication (and at least one).
func (m *Manager) reReplicate(ctx context.Context, sid string) error {
	ns := m.ns.Load()
	if ns == nil {
		return nil
	}
	store := ns.Store()
	var after int64
	queued := 0
	for {
		var rows []*dal.Replica
		type plan struct {
			blk     *dal.Block
			holders []string // live, finalized
			all     []string // every storage with a row
			want    int
		}
		var plans []plan
		err := store.ReadTx(ctx, func(tx dal.Tx) error {
			plans = plans[:0]
			var err error
			rows, err = tx.ListStorageReplicas(ctx, sid, after, m.cfg.ReportBatch)
			if err != nil {
				return err
			}
			for _, r := range rows {
				blk, err := tx.GetBlock(ctx, r.BlockID)
				if errors.Is(err, dal.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if blk.State != dal.BlockComplete && blk.State != dal.BlockCommitted {
					continue // a pipeline's business
				}
				in, err := tx.GetInodeByID(ctx, blk.InodeID, dal.LockNone)
				if errors.Is(err, dal.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				reps, err := tx.ListReplicas(ctx, blk.InodeID, blk.BlockID)
				if err != nil {
					return err
				}
				p := plan{blk: blk, want: int(in.Replication)}
				for _, rr := range reps {
					p.all = append(p.all, rr.StorageID)
					if rr.State == dal.ReplicaFinalized {
						if _, ok := m.Addr(rr.StorageID); ok {
							p.holders = append(p.holders, rr.StorageID)
						}
					}
				}
				if len(p.holders) > 0 && len(p.holders) < p.want {
					plans = append(plans, p)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("scan replicas of %s after block %d: %w", sid, after, err)
		}
		for _, p := range plans {
			targets := m.choose(p.want-len(p.holders), 0, "", p.all)
			if len(targets) == 0 {
				continue
			}
			addrs := make([]string, len(targets))
			for i, t := range targets {
				addrs[i] = t.Addr
			}
			src := p.holders[rand.IntN(len(p.holders))]
			cmd := &dfspb.DatanodeCommand{Command: &dfspb.DatanodeCommand_Replicate{Replicate: &dfspb.ReplicateBlockCommand{
				Block:   &dfspb.BlockRef{Id: uint64(p.blk.BlockID), Genstamp: uint64(p.blk.GenerationStamp)},
				Targets: addrs,
			}}}
			if m.queueCommand(src, cmd) {
				queued++
			}
		}
		if len(rows) < m.cfg.ReportBatch {
			break
		}
		after = rows[len(rows)-1].BlockID
	}
	if queued > 0 {
		m.log.Info("queued re-replication of a dead datanode's blocks", "storage", sid, "blocks", queued)
	}
	return nil
}
