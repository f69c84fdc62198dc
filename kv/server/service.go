package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kura-dev/kura/kv/meta"
	"github.com/kura-dev/kura/proto/kvpb"
	"github.com/kura-dev/kura/store"
)

// kvService is the client service.
type kvService struct {
	kvpb.UnimplementedKVServer
	n *Node
}

func (s *kvService) Do(ctx context.Context, req *kvpb.Request) (*kvpb.Response, error) {
	return s.n.Do(ctx, req), nil
}

// Map returns the routing table: nodes, and for each shard its replicas
// and the leader this node knows (0 for a shard it does not hold).
func (s *kvService) Map(ctx context.Context, _ *kvpb.MapRequest) (*kvpb.MapResponse, error) {
	n := s.n
	m := n.meta.Map()
	if m.ClusterID == "" {
		return nil, status.Error(codes.Unavailable, "map: this node has not joined a cluster yet")
	}
	resp := &kvpb.MapResponse{ClusterId: m.ClusterID, Shards: m.Shards}
	for _, id := range m.NodeIDs() {
		resp.Nodes = append(resp.Nodes, &kvpb.NodeInfo{Id: id, Addr: m.Nodes[id]})
	}
	for sh := uint32(1); sh <= m.Shards; sh++ {
		r := &kvpb.ShardRoute{Shard: sh, Replicas: append([]uint64(nil), m.Placement[sh]...)}
		if g := n.host.Group(sh); g != nil {
			r.Leader = g.Leader()
		}
		resp.Routes = append(resp.Routes, r)
	}
	return resp, nil
}

func (s *kvService) Join(ctx context.Context, req *kvpb.JoinRequest) (*kvpb.JoinResponse, error) {
	n := s.n
	if req.NodeId == 0 || req.Addr == "" {
		return nil, status.Error(codes.InvalidArgument, "join: node id and address are required")
	}
	if n.host.Group(meta.Group) == nil {
		return nil, status.Error(codes.Unavailable, "join: this node is not part of a cluster yet")
	}
	return onMapLeader(ctx, n, "join",
		// A leader whose map has no cluster id yet is still bootstrapping:
		// wait for the init command to apply before recording anyone.
		func(m *meta.Map) bool { return m.ClusterID != "" },
		func() (*kvpb.JoinResponse, error) {
			m := n.meta.Map()
			if addr, ok := m.Nodes[req.NodeId]; !ok || addr != req.Addr {
				if err := n.proposeMeta(ctx, meta.Command{Op: "add-node", Node: req.NodeId, Addr: req.Addr}); err != nil {
					return nil, status.Errorf(codes.Unavailable, "join: record node: %v", err)
				}
			}
			m = n.meta.Map()
			resp := &kvpb.JoinResponse{ClusterId: m.ClusterID}
			for _, id := range m.NodeIDs() {
				resp.Nodes = append(resp.Nodes, &kvpb.NodeInfo{Id: id, Addr: m.Nodes[id]})
			}
			n.log.Info("node joined", "node", fmt.Sprintf("%x", req.NodeId), "addr", req.Addr)
			return resp, nil
		},
		func(c kvpb.KVClient) (*kvpb.JoinResponse, error) { return c.Join(ctx, req) })
}

// onMapLeader runs local when this node leads the cluster map and ready
// holds for its map, or passes the call to the map's leader with remote;
// while the map has no leader (an election) it waits, about 5 s at most.
func onMapLeader[T any](ctx context.Context, n *Node, what string, ready func(*meta.Map) bool,
	local func() (T, error), remote func(kvpb.KVClient) (T, error)) (T, error) {
	var zero T
	for attempt := 0; ; attempt++ {
		mg := n.host.Group(meta.Group)
		if mg != nil && mg.IsLeader() && ready(n.meta.Map()) {
			return local()
		}
		if mg != nil {
			if lead := mg.Leader(); lead != 0 && lead != n.id {
				c, err := n.tr.conn(n.addrOf(lead))
				if err != nil {
					return zero, status.Errorf(codes.Unavailable, "%s: %v", what, err)
				}
				return remote(kvpb.NewKVClient(c))
			}
		}
		if attempt > 100 {
			return zero, status.Errorf(codes.Unavailable, "%s: the cluster map has no leader", what)
		}
		select {
		case <-ctx.Done():
			return zero, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *kvService) Status(ctx context.Context, req *kvpb.StatusRequest) (*kvpb.StatusResponse, error) {
	n := s.n
	m := n.meta.Map()
	resp := &kvpb.StatusResponse{ClusterId: m.ClusterID, Shards: m.Shards, Replicas: uint32(m.Replicas)}
	if req.Local {
		resp.Nodes = []*kvpb.NodeStatus{n.localStatus()}
		return resp, nil
	}
	ids := m.NodeIDs()
	resp.Nodes = make([]*kvpb.NodeStatus, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		if id == n.id {
			resp.Nodes[i] = n.localStatus()
			continue
		}
		wg.Add(1)
		go func(i int, id uint64) {
			defer wg.Done()
			ns := &kvpb.NodeStatus{Id: id, Addr: m.Nodes[id]}
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			cl, err := n.tr.peerClient(id)
			if err == nil && n.faults.blocked(id) {
				err = errors.New("isolated by fault injection")
			}
			if err == nil {
				var got *kvpb.NodeStatus
				if got, err = cl.ShardStatus(cctx, &kvpb.StatusRequest{Local: true}); err == nil {
					ns = got
				}
			}
			if err != nil {
				ns.Error = status.Convert(err).Message()
			}
			resp.Nodes[i] = ns
		}(i, id)
	}
	wg.Wait()
	for _, ns := range resp.Nodes {
		ns.Leaving = m.Leaving[ns.Id]
	}
	return resp, nil
}

// localStatus describes this node's groups.
func (n *Node) localStatus() *kvpb.NodeStatus {
	ns := &kvpb.NodeStatus{Id: n.id, Addr: n.cfg.Advertise, Reachable: true, Leaving: n.meta.Map().Leaving[n.id],
		Forwarded: n.forwarded.Load()}
	for _, g := range n.host.Groups() {
		st := g.Status()
		ss := &kvpb.ShardStatus{Shard: g.ID(), Leader: st.Lead, Term: st.Term, Commit: st.Commit,
			Applied: g.AppliedIndex(), State: st.RaftState.String()}
		for id := range st.Config.Voters.IDs() {
			ss.Replicas = append(ss.Replicas, id)
		}
		sort.Slice(ss.Replicas, func(i, j int) bool { return ss.Replicas[i] < ss.Replicas[j] })
		if st.RaftState == raft.StateLeader {
			ss.Lag = map[uint64]uint64{}
			for id, pr := range st.Progress {
				if id != n.id {
					lag := uint64(0)
					if st.Commit > pr.Match {
						lag = st.Commit - pr.Match
					}
					ss.Lag[id] = lag
				}
			}
		}
		ns.Shards = append(ns.Shards, ss)
	}
	return ns
}

// Watch streams committed changes of every shard, in order per shard.
func (s *kvService) Watch(req *kvpb.WatchRequest, stream kvpb.KV_WatchServer) error {
	n := s.n
	m := n.meta.Map()
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	want := map[uint32]bool{}
	for _, sh := range req.Shards {
		want[sh] = true
	}
	var sendMu sync.Mutex
	send := func(ev *kvpb.Event) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(ev)
	}
	errc := make(chan error, m.Shards)
	var remote []uint32
	running := 0
	for sh := uint32(1); sh <= m.Shards; sh++ {
		if len(want) > 0 && !want[sh] {
			continue
		}
		if n.shard(sh) == nil {
			remote = append(remote, sh)
			continue
		}
		running++
		go func(sh uint32) { errc <- n.watchLocal(ctx, sh, req, send) }(sh)
	}
	if len(remote) > 0 {
		// Shards not held here: relay each from a node that holds it.
		for _, sh := range remote {
			hs := m.Placement[sh]
			if len(hs) == 0 {
				return status.Errorf(codes.Unavailable, "shard %d has no replica", sh)
			}
			running++
			go func(sh uint32, hs []uint64) { errc <- n.watchRemote(ctx, sh, hs, req, send) }(sh, hs)
		}
	}
	for i := 0; i < running; i++ {
		if err := <-errc; err != nil {
			return err
		}
	}
	return nil
}

func (n *Node) watchLocal(ctx context.Context, sh uint32, req *kvpb.WatchRequest, send func(*kvpb.Event) error) error {
	after, ok := req.After[sh]
	for {
		s := n.shard(sh)
		if s == nil {
			return status.Errorf(codes.Unavailable, "shard %d left this node", sh)
		}
		st := s.Current()
		if !ok {
			if req.FromOldest {
				first, err := st.FirstSeq()
				if err != nil {
					return status.Errorf(codes.Internal, "shard %d: %v", sh, err)
				}
				if first > 0 {
					after = first - 1
				}
			} else {
				after = st.LastSeq()
			}
			ok = true
		}
		c, err := st.NextChange(ctx, after)
		if errors.Is(err, store.ErrClosed) {
			if ctx.Err() != nil {
				return nil
			}
			continue // the store was replaced by a snapshot
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return status.Errorf(codes.OutOfRange, "shard %d: %v", sh, err)
		}
		after = c.Seq
		if !bytes.HasPrefix(c.Key, req.Prefix) {
			continue
		}
		js, _ := c.MarshalJSON()
		ev := &kvpb.Event{Shard: sh, Seq: c.Seq, Op: string(c.Op), TimeNanos: c.Time.UnixNano(), Key: c.Key,
			Subkey: c.Subkey, Value: c.Value, Json: js}
		if err := send(ev); err != nil {
			return err
		}
	}
}

// watchRemote relays one shard's changes from a node that holds it,
// trying the holders in turn (starting at one picked by shard, to spread
// relays) until one opens a stream. A relay that ends is an Unavailable
// error, so the client reconnects and resumes after its last event.
func (n *Node) watchRemote(ctx context.Context, sh uint32, holders []uint64, req *kvpb.WatchRequest, send func(*kvpb.Event) error) error {
	r := &kvpb.WatchRequest{Prefix: req.Prefix, After: req.After, FromOldest: req.FromOldest, Shards: []uint32{sh}}
	var last error
	for i := range holders {
		node := holders[(int(sh)+i)%len(holders)]
		if node == n.id || n.faults.blocked(node) {
			continue
		}
		c, err := n.tr.conn(n.addrOf(node))
		if err != nil {
			last = err
			continue
		}
		st, err := kvpb.NewKVClient(c).Watch(ctx, r)
		if err != nil {
			last = err
			continue
		}
		ev, err := st.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			last = err
			continue // a stream that failed before its first event: try another holder
		}
		for {
			if err := send(ev); err != nil {
				return err
			}
			if ev, err = st.Recv(); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return status.Errorf(codes.Unavailable, "watch: relay of shard %d from node %x ended: %v", sh, node, err)
			}
		}
	}
	return status.Errorf(codes.Unavailable, "watch: no holder of shard %d could relay it (last error: %v)", sh, last)
}

// peerService is the node-to-node service.
type peerService struct {
	kvpb.UnimplementedPeerServer
	n *Node
}

func (p *peerService) Raft(stream kvpb.Peer_RaftServer) error {
	n := p.n
	for {
		b, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&kvpb.Empty{})
		}
		if err != nil {
			return err
		}
		if c := n.clusterID(); c != "" && b.ClusterId != "" && b.ClusterId != c {
			n.log.Error("refusing raft messages from another cluster", "from", fmt.Sprintf("%x", b.From), "their_cluster", b.ClusterId, "ours", c)
			return status.Errorf(codes.PermissionDenied, "%v: node %x is in cluster %s, this node in %s", ErrOtherCluster, n.id, c, b.ClusterId)
		}
		if n.faults.blocked(b.From) {
			continue
		}
		for _, rm := range b.Msgs {
			var m raftpb.Message
			if err := m.Unmarshal(rm.Msg); err != nil {
				return status.Errorf(codes.InvalidArgument, "undecodable raft message: %v", err)
			}
			if err := n.host.Step(stream.Context(), rm.Group, m); err != nil && !errors.Is(err, raft.ErrStopped) {
				n.log.Debug("step", "group", rm.Group, "err", err)
			}
		}
	}
}

func (p *peerService) Forward(ctx context.Context, req *kvpb.ShardRequest) (*kvpb.Response, error) {
	n := p.n
	if c := n.clusterID(); req.ClusterId != "" && req.ClusterId != c {
		return nil, status.Errorf(codes.PermissionDenied, "%v", ErrOtherCluster)
	}
	if req.Req == nil {
		return nil, status.Error(codes.InvalidArgument, "forward: no request")
	}
	return n.execLocal(ctx, req.Shard, req.Req)
}

func (p *peerService) ShardStatus(ctx context.Context, _ *kvpb.StatusRequest) (*kvpb.NodeStatus, error) {
	return p.n.localStatus(), nil
}

func (p *peerService) InjectFault(ctx context.Context, req *kvpb.FaultRequest) (*kvpb.Empty, error) {
	if !p.n.faults.enabled {
		return nil, status.Error(codes.PermissionDenied, "fault injection is off (start the node with --fault-injection)")
	}
	p.n.faults.set(req.Isolate)
	p.n.log.Warn("fault injection: isolating nodes", "nodes", req.Isolate)
	return &kvpb.Empty{}, nil
}
