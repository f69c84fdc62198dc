// Package server is a kv cluster node (`kura kv serve`): it runs the Raft
// groups of the cluster map and of the shards it holds, serves the client
// service (KV) and the node-to-node service (Peer) over gRPC, routes every
// operation to the shard owning its key (forwarding to the shard's leader),
// and composes the operations that span shards (subkeys, keyed queues,
// scans) from single-shard steps.
package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/kura-dev/kura/kv/keyspace"
	"github.com/kura-dev/kura/kv/meta"
	"github.com/kura-dev/kura/kv/replica"
	"github.com/kura-dev/kura/kv/shard"
	"github.com/kura-dev/kura/proto/kvpb"
	"github.com/kura-dev/kura/store"
)

// Config configures a node.
type Config struct {
	// DataDir holds the node's Raft logs and shard stores.
	DataDir string
	// Listen is the gRPC address (host:port) for clients and peers.
	Listen string
	// Advertise is the address other nodes use (default: Listen's address).
	Advertise string
	// Join lists nodes of an existing cluster; empty with an empty DataDir
	// starts a new cluster.
	Join []string
	// JoinTimeout bounds the wait for a --join node to answer (default 60s).
	JoinTimeout time.Duration
	// Shards is the number of shards of a new cluster (default 8).
	Shards uint32
	// Replicas is how many nodes hold each shard (default 3).
	Replicas int
	// Store configures every shard's storage engine (passphrases, limits).
	Store store.Options
	// OpTimeout bounds one operation inside the cluster (default 10s).
	OpTimeout time.Duration
	// FaultInjection enables the InjectFault RPC (tests only).
	FaultInjection bool
	// UnsafeLocalReads serves every read from the local replica without
	// asking a quorum: a deliberately broken read path that the
	// linearizability test must catch (tests only).
	UnsafeLocalReads bool
	// QuorumReads confirms every linearizable read with a quorum round
	// instead of serving it within the leader's read lease (see
	// replica.Group.ReadIndex).
	QuorumReads bool
	// Logger receives the node's logs.
	Logger *slog.Logger
}

// ErrOtherCluster: the data directory belongs to another cluster.
var ErrOtherCluster = errors.New("data directory belongs to another cluster")

// Node is a running cluster node.
type Node struct {
	cfg    Config
	log    *slog.Logger
	id     uint64
	logs   *replica.LogStore
	host   *replica.Host
	meta   *meta.State
	tr     *transport
	faults *faults
	lis    net.Listener
	gs     *grpc.Server

	cluster atomic.Value // string

	mu     sync.Mutex
	shards map[uint32]*shard.Shard
	known  map[uint64]string // addresses learnt before the map has them

	seq       atomic.Uint64
	forwarded atomic.Uint64 // requests passed to another node's leader
	stop      chan struct{}
	wg        sync.WaitGroup

	// Owned by the reconcile loop.
	lastBalance time.Time
	saidRemoved bool
}

// Start opens the data directory, starts or joins the cluster and serves.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Shards == 0 {
		cfg.Shards = 8
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 3
	}
	if cfg.OpTimeout == 0 {
		cfg.OpTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Shards > 4096 {
		return nil, fmt.Errorf("kv serve: --shards %d: at most 4096", cfg.Shards)
	}
	if cfg.Replicas < 1 || cfg.Replicas > 7 {
		return nil, fmt.Errorf("kv serve: --replicas %d: must be 1 to 7", cfg.Replicas)
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "shards"), 0o700); err != nil {
		return nil, fmt.Errorf("kv serve: data directory %s: %w", cfg.DataDir, err)
	}
	n := &Node{cfg: cfg, log: cfg.Logger, shards: map[uint32]*shard.Shard{}, known: map[uint64]string{},
		stop: make(chan struct{}), faults: &faults{enabled: cfg.FaultInjection}}
	ok := false
	defer func() {
		if !ok {
			n.Close()
		}
	}()
	logs, err := replica.OpenLogStore(filepath.Join(cfg.DataDir, "raft"))
	if err != nil {
		return nil, fmt.Errorf("kv serve: %w (is another kura kv serve using %s?)", err, cfg.DataDir)
	}
	n.logs = logs
	if err := n.loadIdentity(); err != nil {
		return nil, err
	}
	if n.meta, err = meta.Open(logs); err != nil {
		return nil, err
	}
	n.lis, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("kv serve: listen on %s: %w", cfg.Listen, err)
	}
	if n.cfg.Advertise == "" {
		n.cfg.Advertise = n.lis.Addr().String()
	}
	n.log = n.log.With("node", fmt.Sprintf("%x", n.id))
	n.tr = newTransport(n.id, n.clusterID, n.addrOf, n.faults, func() *replica.Host { return n.host }, n.log)
	n.host, err = replica.NewHost(replica.HostConfig{NodeID: n.id, Logs: logs, Transport: n.tr, Logger: n.log,
		OnConfChange: n.onConfChange, QuorumReads: cfg.QuorumReads})
	if err != nil {
		return nil, err
	}
	n.gs = grpc.NewServer(grpc.MaxRecvMsgSize(maxMessage), grpc.MaxSendMsgSize(maxMessage),
		// Clients and peers ping every 10s so a vanished node (power loss,
		// partition) is noticed on an idle stream; allow it.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}))
	kvpb.RegisterKVServer(n.gs, &kvService{n: n})
	kvpb.RegisterPeerServer(n.gs, &peerService{n: n})
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.gs.Serve(n.lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			n.log.Error("grpc server stopped", "err", err)
		}
	}()
	switch {
	case n.clusterID() != "":
		if len(cfg.Join) > 0 {
			if err := n.checkSameCluster(ctx); err != nil {
				return nil, err
			}
		}
		if err := n.restart(); err != nil {
			return nil, err
		}
	case len(cfg.Join) == 0:
		if err := n.bootstrap(ctx); err != nil {
			return nil, err
		}
	default:
		if err := n.join(ctx); err != nil {
			return nil, err
		}
	}
	n.wg.Add(1)
	go n.reconcileLoop()
	ok = true
	n.log.Info("kv node serving", "addr", n.cfg.Advertise, "cluster", n.clusterID())
	return n, nil
}

// ID returns the node's id.
func (n *Node) ID() uint64 { return n.id }

// Addr returns the address the node serves on.
func (n *Node) Addr() string { return n.cfg.Advertise }

func (n *Node) clusterID() string {
	s, _ := n.cluster.Load().(string)
	return s
}

func (n *Node) loadIdentity() error {
	v, err := n.logs.Var("node-id")
	if err != nil {
		return fmt.Errorf("kv serve: read node id: %w", err)
	}
	if len(v) == 8 {
		n.id = binary.BigEndian.Uint64(v)
	} else {
		for n.id == 0 {
			var b [8]byte
			if _, err := rand.Read(b[:]); err != nil {
				return err
			}
			n.id = binary.BigEndian.Uint64(b[:]) >> 1
		}
		if err := n.logs.SetVar("node-id", meta.EncodeID(n.id)); err != nil {
			return err
		}
	}
	c, err := n.logs.Var("cluster-id")
	if err != nil {
		return fmt.Errorf("kv serve: read cluster id: %w", err)
	}
	n.cluster.Store(string(c))
	return nil
}

func (n *Node) addrOf(id uint64) string {
	if a := n.meta.Map().Nodes[id]; a != "" {
		return a
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.known[id]
}

// bootstrap starts a new cluster of one node.
func (n *Node) bootstrap(ctx context.Context) error {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	cluster := hex.EncodeToString(b[:])
	peers := []uint64{n.id}
	g, err := n.host.StartGroup(replica.GroupConfig{Group: meta.Group, Peers: peers}, n.meta)
	if err != nil {
		return err
	}
	groups := []*replica.Group{g}
	for sh := uint32(1); sh <= n.cfg.Shards; sh++ {
		sg, err := n.startShard(sh, peers)
		if err != nil {
			return err
		}
		groups = append(groups, sg)
	}
	// One voter: stand for election at once rather than after a timeout.
	for _, g := range groups {
		if err := n.waitLeader(ctx, g); err != nil {
			return err
		}
	}
	if err := n.proposeMeta(ctx, meta.Command{Op: "init", Cluster: cluster, Shards: n.cfg.Shards,
		Replicas: n.cfg.Replicas, Node: n.id, Addr: n.cfg.Advertise}); err != nil {
		return fmt.Errorf("kv serve: initialise cluster: %w", err)
	}
	if err := n.logs.SetVar("cluster-id", []byte(cluster)); err != nil {
		return err
	}
	n.cluster.Store(cluster)
	n.log.Info("started a new cluster", "cluster", cluster, "shards", n.cfg.Shards, "replicas", n.cfg.Replicas)
	return nil
}

func (n *Node) waitLeader(ctx context.Context, g *replica.Group) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_ = g.Campaign(ctx)
	for !g.IsLeader() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("group %d elected no leader: %w", g.ID(), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// restart resumes the groups this node ran before.
func (n *Node) restart() error {
	if _, err := n.host.StartGroup(replica.GroupConfig{Group: meta.Group}, n.meta); err != nil {
		return err
	}
	m := n.meta.Map()
	for sh := uint32(1); sh <= m.Shards; sh++ {
		has, err := n.host.HasState(sh)
		if err != nil {
			return err
		}
		if has || m.Holds(sh, n.id) {
			if _, err := n.startShard(sh, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// join asks a node of an existing cluster to add this one.
func (n *Node) join(ctx context.Context) error {
	if n.cfg.JoinTimeout == 0 {
		n.cfg.JoinTimeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.JoinTimeout)
	defer cancel()
	var last error
	for {
		for _, addr := range n.cfg.Join {
			resp, err := n.callJoin(ctx, addr)
			if err != nil {
				last = err
				continue
			}
			if resp.ClusterId == "" {
				// An older or still-bootstrapping node answered: try again.
				last = fmt.Errorf("join via %s: the cluster has no id yet", addr)
				continue
			}
			n.mu.Lock()
			for _, ni := range resp.Nodes {
				n.known[ni.Id] = ni.Addr
			}
			n.mu.Unlock()
			if err := n.logs.SetVar("cluster-id", []byte(resp.ClusterId)); err != nil {
				return err
			}
			n.cluster.Store(resp.ClusterId)
			if _, err := n.host.StartGroup(replica.GroupConfig{Group: meta.Group}, n.meta); err != nil {
				return err
			}
			n.log.Info("joined cluster", "cluster", resp.ClusterId, "via", addr)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kv serve: join %v: no node answered (last error: %v)", n.cfg.Join, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// checkSameCluster refuses to restart a node whose data directory belongs
// to another cluster than the one --join names.
func (n *Node) checkSameCluster(ctx context.Context) error {
	var last error
	for _, addr := range n.cfg.Join {
		c, err := n.tr.conn(addr)
		if err != nil {
			last = err
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := kvpb.NewKVClient(c).Status(cctx, &kvpb.StatusRequest{Local: true})
		cancel()
		if err != nil {
			last = err
			continue
		}
		if st.ClusterId != "" && st.ClusterId != n.clusterID() {
			return fmt.Errorf("kv serve: %w: %s holds cluster %s, but --join %s is cluster %s; use an empty --data directory to join that cluster",
				ErrOtherCluster, n.cfg.DataDir, n.clusterID(), addr, st.ClusterId)
		}
		return nil
	}
	n.log.Warn("could not reach any --join node to check the cluster; resuming from the data directory", "err", last)
	return nil
}

func (n *Node) callJoin(ctx context.Context, addr string) (*kvpb.JoinResponse, error) {
	c, err := n.tr.conn(addr)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return kvpb.NewKVClient(c).Join(cctx, &kvpb.JoinRequest{NodeId: n.id, Addr: n.cfg.Advertise})
}

func (n *Node) shardDir(sh uint32) string {
	return filepath.Join(n.cfg.DataDir, "shards", fmt.Sprintf("%04d", sh))
}

// startShard opens a shard's store and starts its group.
func (n *Node) startShard(sh uint32, peers []uint64) (*replica.Group, error) {
	n.mu.Lock()
	s := n.shards[sh]
	n.mu.Unlock()
	if s == nil {
		var err error
		if s, err = shard.Open(n.shardDir(sh), sh, n.cfg.Store); err != nil {
			return nil, err
		}
		n.mu.Lock()
		n.shards[sh] = s
		n.mu.Unlock()
	}
	return n.host.StartGroup(replica.GroupConfig{Group: sh, Peers: peers}, s)
}

func (n *Node) shard(sh uint32) *shard.Shard {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.shards[sh]
}

// proposeMeta replicates a cluster map change (on the map's leader).
func (n *Node) proposeMeta(ctx context.Context, c meta.Command) error {
	g := n.host.Group(meta.Group)
	if g == nil {
		return replica.ErrNotLeader
	}
	c.ID = n.nextID()
	data, err := jsonMarshal(c)
	if err != nil {
		return err
	}
	res, err := g.Propose(ctx, c.ID, data)
	if err != nil {
		return err
	}
	if e, ok := res.(error); ok && e != nil {
		return e
	}
	return nil
}

func (n *Node) nextID() uint64 {
	return n.id ^ (n.seq.Add(1) * 0x9E3779B97F4A7C15)
}

func (n *Node) onConfChange(group uint32, cc raftpb.ConfChange) {
	n.log.Info("membership changed", "group", group, "type", cc.Type.String(), "node", fmt.Sprintf("%x", cc.NodeID))
}

// shardOf maps a key to its shard (1..Shards).
func (n *Node) shardOf(key []byte) uint32 {
	s := n.meta.Map().Shards
	if s == 0 {
		s = n.cfg.Shards
	}
	return keyspace.ShardOf(key, s)
}

// reconcileLoop brings this node in line with the cluster map: it starts
// the shards placed here; as the map's leader it places shards on new
// nodes; as a shard's leader it adds the placed nodes as voters.
func (n *Node) reconcileLoop() {
	defer n.wg.Done()
	t := time.NewTicker(300 * time.Millisecond)
	defer t.Stop()
	reap := time.NewTicker(5 * time.Second)
	defer reap.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		case <-n.meta.Changed():
		case <-reap.C:
			n.reapExpired()
			continue
		}
		n.reconcile()
	}
}

// reapExpired has every shard this node leads delete its expired values,
// as a replicated command (expired values are invisible before that).
func (n *Node) reapExpired() {
	for _, g := range n.host.Groups() {
		if g.ID() == meta.Group || !g.IsLeader() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := n.execLocal(ctx, g.ID(), &kvpb.Request{Op: kvpb.Op_REAP})
		cancel()
		if err == nil && r.Code != kvpb.Code_OK {
			n.log.Warn("reap expired values", "shard", g.ID(), "err", r.Error)
		}
	}
}

func (n *Node) reconcile() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m := n.meta.Map()
	if m.ClusterID == "" {
		return
	}
	for sh := uint32(1); sh <= m.Shards; sh++ {
		if m.Holds(sh, n.id) && n.host.Group(sh) == nil {
			if _, err := n.startShard(sh, nil); err != nil {
				n.log.Error("start shard", "shard", sh, "err", err)
			}
		}
	}
	if mg := n.host.Group(meta.Group); mg != nil && mg.IsLeader() {
		voters := mg.ConfState().Voters
		for _, id := range m.Active() {
			if !containsID(voters, id) {
				if err := mg.ProposeConfChange(ctx, raftpb.ConfChange{Type: raftpb.ConfChangeAddNode, NodeID: id}); err != nil {
					n.log.Warn("add node to the cluster map's group", "node", fmt.Sprintf("%x", id), "err", err)
				}
				return
			}
		}
		for _, c := range m.Rebalance() {
			if err := n.proposeMeta(ctx, c); err != nil {
				n.log.Warn("place shard", "shard", c.Shard, "err", err)
				return
			}
		}
		n.finishRemovals(ctx, m, mg)
	}
	for sh := uint32(1); sh <= m.Shards; sh++ {
		g := n.host.Group(sh)
		if g == nil || !g.IsLeader() {
			continue
		}
		voters := g.ConfState().Voters
		for _, id := range m.Placement[sh] {
			if !containsID(voters, id) && !m.Leaving[id] {
				if err := g.ProposeConfChange(ctx, raftpb.ConfChange{Type: raftpb.ConfChangeAddNode, NodeID: id}); err != nil {
					n.log.Warn("add replica", "shard", sh, "node", fmt.Sprintf("%x", id), "err", err)
				}
				break
			}
		}
		n.drainShard(ctx, m, g)
	}
	n.stopUnplaced(m)
	n.balanceLeaders(ctx, m)
}

func containsID(ids []uint64, id uint64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// Close stops serving and closes the data directory.
func (n *Node) Close() error {
	select {
	case <-n.stop:
		return nil
	default:
	}
	close(n.stop)
	if n.gs != nil {
		n.gs.Stop()
	}
	if n.lis != nil {
		n.lis.Close()
	}
	n.wg.Wait()
	if n.host != nil {
		n.host.Close()
	}
	if n.tr != nil {
		n.tr.close()
	}
	var first error
	n.mu.Lock()
	for _, s := range n.shards {
		if err := s.Close(); err != nil && first == nil {
			first = err
		}
	}
	n.mu.Unlock()
	if n.logs != nil {
		if err := n.logs.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
