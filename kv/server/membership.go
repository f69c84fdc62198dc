package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kura-dev/kura/kv/meta"
	"github.com/kura-dev/kura/kv/replica"
	"github.com/kura-dev/kura/proto/kvpb"
)

// Removing a node is declarative, driven by the reconcile loops:
//
//  1. RemoveNode marks the node leaving in the cluster map.
//  2. The map's leader places a replacement replica of each of its shards
//     on an active node (Rebalance counts active holders only).
//  3. Each shard's leader, once every active holder is a voter that caught
//     up, removes the leaving node from the shard's group (handing the
//     leadership over first if it is the one leaving).
//  4. The map's leader drops the node from a shard's placement once the
//     shard's group no longer counts it; when it holds nothing, removes it
//     from the map's group and forgets it.
//  5. Every node stops (and deletes) the replicas no longer placed on it.
//
// Each step is idempotent and re-checked every round, so a crash or a
// leader change anywhere only delays the removal.

// RemoveNode starts or reports the removal of a node.
func (s *kvService) RemoveNode(ctx context.Context, req *kvpb.RemoveNodeRequest) (*kvpb.RemoveNodeResponse, error) {
	n := s.n
	if req.NodeId == 0 {
		return nil, status.Error(codes.InvalidArgument, "remove node: node id is required")
	}
	m := n.meta.Map()
	if _, ok := m.Nodes[req.NodeId]; !ok {
		return nil, status.Errorf(codes.NotFound, "remove node: node %x is not in cluster %s (already removed, or never joined)", req.NodeId, m.ClusterID)
	}
	if m.Leaving[req.NodeId] {
		return &kvpb.RemoveNodeResponse{Shards: m.ShardsOn(req.NodeId)}, nil
	}
	return onMapLeader(ctx, n, "remove node",
		func(*meta.Map) bool { return true },
		func() (*kvpb.RemoveNodeResponse, error) {
			if err := n.proposeMeta(ctx, meta.Command{Op: "remove-node", Node: req.NodeId}); err != nil {
				if isRetryable(err) {
					return nil, status.Errorf(codes.Unavailable, "remove node: %v", err)
				}
				return nil, status.Errorf(codes.FailedPrecondition, "remove node: %v", err)
			}
			n.log.Info("removing node", "node", fmt.Sprintf("%x", req.NodeId))
			return &kvpb.RemoveNodeResponse{Shards: n.meta.Map().ShardsOn(req.NodeId)}, nil
		},
		func(c kvpb.KVClient) (*kvpb.RemoveNodeResponse, error) { return c.RemoveNode(ctx, req) })
}

// isRetryable tells whether a proposal error leaves the map unchanged for
// reasons that pass (no leader, a timeout) rather than a refused command.
func isRetryable(err error) bool {
	return errors.Is(err, replica.ErrNotLeader) || errors.Is(err, replica.ErrUnknownOutcome) || errors.Is(err, replica.ErrStopped) ||
		errors.Is(err, context.DeadlineExceeded)
}

// drainShard, run by a shard's leader, removes leaving nodes from the
// shard's group once the replicas that stay are all voters and caught up.
func (n *Node) drainShard(ctx context.Context, m *meta.Map, g *replica.Group) {
	sh := g.ID()
	var leaving []uint64
	for _, id := range m.Placement[sh] {
		if m.Leaving[id] {
			leaving = append(leaving, id)
		}
	}
	if len(leaving) == 0 {
		return
	}
	st := g.Status()
	var caughtUp []uint64
	active := 0
	for _, id := range m.Placement[sh] {
		if m.Leaving[id] {
			continue
		}
		active++
		pr, ok := st.Progress[id]
		if !ok || pr.Match < st.Commit || pr.IsLearner {
			return // a replacement is not a caught-up voter yet
		}
		if id != n.id {
			caughtUp = append(caughtUp, id)
		}
	}
	if active < m.Want() {
		return
	}
	for _, id := range leaving {
		if _, voter := st.Progress[id]; !voter {
			continue
		}
		if id == n.id {
			if len(caughtUp) > 0 {
				n.log.Info("leaving node hands over a shard's leadership", "shard", sh, "to", fmt.Sprintf("%x", caughtUp[0]))
				g.TransferLeadership(ctx, caughtUp[0])
			}
			return
		}
		if err := g.ProposeConfChange(ctx, raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode, NodeID: id}); err != nil {
			n.log.Warn("remove replica of a leaving node", "shard", sh, "node", fmt.Sprintf("%x", id), "err", err)
			return
		}
		n.log.Info("removed replica of a leaving node", "shard", sh, "node", fmt.Sprintf("%x", id))
	}
}

// finishRemovals, run by the map's leader, drops leaving nodes from the
// placement of shards whose group no longer counts them, then removes a
// node that holds nothing from the map's group and forgets it.
func (n *Node) finishRemovals(ctx context.Context, m *meta.Map, mg *replica.Group) {
	for id := range m.Leaving {
		for _, sh := range m.ShardsOn(id) {
			voter, known := n.isShardVoter(ctx, m, sh, id)
			if !known || voter {
				continue
			}
			if err := n.proposeMeta(ctx, m.Drop(sh, id)); err != nil {
				n.log.Warn("drop a leaving node from a shard", "shard", sh, "err", err)
				return
			}
		}
		m = n.meta.Map()
		if len(m.ShardsOn(id)) > 0 {
			continue
		}
		if containsID(mg.ConfState().Voters, id) {
			if id == n.id {
				for _, other := range m.Active() {
					n.log.Info("leaving node hands over the cluster map's leadership", "to", fmt.Sprintf("%x", other))
					mg.TransferLeadership(ctx, other)
					return
				}
				return
			}
			if err := mg.ProposeConfChange(ctx, raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode, NodeID: id}); err != nil {
				n.log.Warn("remove a leaving node from the cluster map's group", "node", fmt.Sprintf("%x", id), "err", err)
				return
			}
		}
		if err := n.proposeMeta(ctx, meta.Command{Op: "forget-node", Node: id}); err != nil {
			n.log.Warn("forget a removed node", "node", fmt.Sprintf("%x", id), "err", err)
			return
		}
		n.log.Info("node removed from the cluster", "node", fmt.Sprintf("%x", id))
	}
}

// isShardVoter tells whether node is still a voter of shard sh, as this
// node's replica knows or, without one here, as an active holder reports.
// known is false when nobody could tell.
func (n *Node) isShardVoter(ctx context.Context, m *meta.Map, sh uint32, node uint64) (voter, known bool) {
	if g := n.host.Group(sh); g != nil {
		return containsID(g.ConfState().Voters, node), true
	}
	for _, h := range m.Placement[sh] {
		if m.Leaving[h] || h == n.id {
			continue
		}
		cl, err := n.tr.peerClient(h)
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		ns, err := cl.ShardStatus(cctx, &kvpb.StatusRequest{})
		cancel()
		if err != nil {
			continue
		}
		for _, ss := range ns.Shards {
			if ss.Shard == sh {
				return containsID(ss.Replicas, node), true
			}
		}
	}
	return false, false
}

// stopUnplaced stops the replicas of shards no longer placed on this node
// and deletes their data.
func (n *Node) stopUnplaced(m *meta.Map) {
	for _, g := range n.host.Groups() {
		sh := g.ID()
		if sh == meta.Group || m.Holds(sh, n.id) {
			continue
		}
		if err := n.host.StopGroup(sh, true); err != nil {
			n.log.Warn("stop a moved replica", "shard", sh, "err", err)
			continue
		}
		n.mu.Lock()
		s := n.shards[sh]
		delete(n.shards, sh)
		n.mu.Unlock()
		if s != nil {
			if err := s.Close(); err != nil {
				n.log.Warn("close a moved replica", "shard", sh, "err", err)
			}
		}
		if err := os.RemoveAll(n.shardDir(sh)); err != nil {
			n.log.Warn("delete a moved replica", "shard", sh, "err", err)
		}
		n.log.Info("replica moved off this node", "shard", sh)
	}
	if m.Leaving[n.id] && len(m.ShardsOn(n.id)) == 0 && !n.saidRemoved {
		n.saidRemoved = true
		n.log.Info("this node holds no replica any more and is leaving the cluster; it can be stopped")
	}
}

// balanceLeaders, every few seconds, hands the leadership of the shards
// this node leads beyond its share over to caught-up voters that lead
// fewer than theirs: so the work of leading spreads over the
// nodes instead of staying where the shards were created.
func (n *Node) balanceLeaders(ctx context.Context, m *meta.Map) {
	if time.Since(n.lastBalance) < 5*time.Second {
		return
	}
	n.lastBalance = time.Now()
	active := m.Active()
	if len(active) < 2 || m.Leaving[n.id] {
		return
	}
	leads := map[uint64]int{}
	var mine []*replica.Group
	for _, g := range n.host.Groups() {
		if g.ID() == meta.Group {
			continue
		}
		l := g.Leader()
		if l == 0 {
			return // an election is running: look again later
		}
		leads[l]++
		if l == n.id {
			mine = append(mine, g)
		}
	}
	share := (int(m.Shards) + len(active) - 1) / len(active)
	if len(mine) <= share {
		return
	}
	leading := len(mine)
	for _, g := range mine {
		if leading <= share {
			return
		}
		st := g.Status()
		for _, id := range active {
			pr, ok := st.Progress[id]
			if id == n.id || !ok || pr.IsLearner || pr.Match < st.Commit || pr.State != tracker.StateReplicate {
				continue
			}
			if leads[id]+1 <= share && leads[id]+1 < leading {
				n.log.Info("balancing shard leaders", "shard", g.ID(), "to", fmt.Sprintf("%x", id), "leading", leading, "share", share)
				g.TransferLeadership(ctx, id)
				leads[id]++
				leading--
				break
			}
		}
	}
}
