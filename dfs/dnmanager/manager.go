package dnmanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/namespace"
	"github.com/kura-dev/kura/proto/dfspb"
)

// Defaults of Config.
const (
	// DefaultHeartbeatInterval is the datanodes' heartbeat interval (HDFS's
	// dfs.heartbeat.interval, and the datanode package's default).
	DefaultHeartbeatInterval = 3 * time.Second
	// DefaultDeadIntervals is how many heartbeat intervals without news make
	// a datanode dead.
	DefaultDeadIntervals = 10
	// DefaultReportBatch is the most replicas rows (and reported blocks)
	// one transaction of a block report's reconciliation handles.
	DefaultReportBatch = 1000
	// DefaultDeletesPerHeartbeat is the most replicas one heartbeat's
	// answer asks to delete (HDFS's dfs.block.invalidate.limit).
	DefaultDeletesPerHeartbeat = 1000
	// DefaultReplicationInterval is the time between two rounds of the
	// leader's replication check (HDFS's replication monitor runs every
	// dfs.namenode.replication.interval, 3 s; a round here reads the
	// database, so less often).
	DefaultReplicationInterval = 10 * time.Second
	// DefaultReplicationScanBatch is the most replicas rows one round of
	// the replication check reads.
	DefaultReplicationScanBatch = 1000
	// DefaultReplicationsPerRound is the most copies one round of the
	// replication check queues.
	DefaultReplicationsPerRound = 100
	// DefaultReplicationRetryIntervals is how many heartbeat intervals a
	// queued copy of a block is given before the block is queued again
	// (Config.ReplicationRetry).
	DefaultReplicationRetryIntervals = 10
)

// Config configures a Manager. The zero value is usable.
type Config struct {
	// NamenodeID names this namenode in Register's answer (default "namenode").
	NamenodeID string
	// HeartbeatInterval is the datanodes' heartbeat interval
	// (DefaultHeartbeatInterval).
	HeartbeatInterval time.Duration
	// DeadIntervals is how many heartbeat intervals without a heartbeat make
	// a datanode dead (DefaultDeadIntervals).
	DeadIntervals int
	// ReportBatch bounds the transactions of block report reconciliation
	// (DefaultReportBatch).
	ReportBatch int
	// DeletesPerHeartbeat bounds the deletes sent with one heartbeat
	// (DefaultDeletesPerHeartbeat).
	DeletesPerHeartbeat int
	// ReplicationInterval is the time between two rounds of the leader's
	// replication check, which re-queues copies of the blocks that have
	// fewer finalized replicas on live datanodes than their file's
	// replication (DefaultReplicationInterval; negative: no check, only
	// the copies queued when a datanode dies).
	ReplicationInterval time.Duration
	// ReplicationScanBatch bounds the replicas rows one round reads
	// (DefaultReplicationScanBatch); a scan of every live datanode's
	// replicas takes as many rounds as it needs. The known missing blocks
	// read again by id in a round count against it too (at most half).
	ReplicationScanBatch int
	// ReplicationsPerRound bounds the copies one round queues
	// (DefaultReplicationsPerRound).
	ReplicationsPerRound int
	// ReplicationRetry is how long a queued copy of a block is given to
	// show up before the block may be queued again; it doubles with each
	// attempt, up to 32 times (default DefaultReplicationRetryIntervals
	// heartbeat intervals).
	ReplicationRetry time.Duration
	// Leader reports whether this namenode is the elected leader: only the
	// leader marks datanodes dead and re-replicates their blocks, so that
	// several namenodes do not each copy them (nil: always, as for a single
	// namenode). A namenode that becomes leader re-replicates the blocks of
	// every datanode dead by then, and walks the replicas of the storages
	// it does not see live, known to it or not, to count their missing
	// blocks (the term's sweep, in bounded steps).
	Leader func() bool
	// Logger receives the manager's logs (default slog.Default()).
	Logger *slog.Logger
	// Clock returns the current time (default time.Now).
	Clock func() time.Time
}

func (c Config) withDefaults() Config {
	if c.NamenodeID == "" {
		c.NamenodeID = "namenode"
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.DeadIntervals <= 0 {
		c.DeadIntervals = DefaultDeadIntervals
	}
	if c.ReportBatch <= 0 {
		c.ReportBatch = DefaultReportBatch
	}
	if c.DeletesPerHeartbeat <= 0 {
		c.DeletesPerHeartbeat = DefaultDeletesPerHeartbeat
	}
	if c.ReplicationInterval == 0 {
		c.ReplicationInterval = DefaultReplicationInterval
	}
	if c.ReplicationScanBatch <= 0 {
		c.ReplicationScanBatch = DefaultReplicationScanBatch
	}
	if c.ReplicationsPerRound <= 0 {
		c.ReplicationsPerRound = DefaultReplicationsPerRound
	}
	if c.ReplicationRetry <= 0 {
		c.ReplicationRetry = DefaultReplicationRetryIntervals * c.HeartbeatInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return c
}

// DatanodeStatus is what the manager knows of one datanode.
type DatanodeStatus struct {
	// StorageID identifies the datanode's storage.
	StorageID string
	// DataAddr is its DataTransfer address (host:port).
	DataAddr string
	// HTTPAddr is its HTTP address ("" when none).
	HTTPAddr string
	// Hostname is its machine's name.
	Hostname string
	// SoftwareVersion is the kura version it runs.
	SoftwareVersion string
	// Capacity, Used, NonDFSUsed and Remaining are its space in bytes, from
	// the last heartbeat (Capacity and Remaining from the registration
	// before the first one).
	Capacity, Used, NonDFSUsed, Remaining int64
	// Blocks is the number of replicas it stores, from the last heartbeat.
	Blocks int64
	// Xceivers is its number of data transfers in progress.
	Xceivers int32
	// LastSeen is the time of its last registration or heartbeat.
	LastSeen time.Time
	// Live is false for a dead datanode.
	Live bool
}

// node is the manager's record of one datanode; guarded by Manager.mu.
type node struct {
	st         DatanodeStatus
	usageKnown bool                     // a heartbeat reported usage
	dead       bool                     // the monitor saw it dead
	replaced   bool                     // its address registered another storage: dead from then on
	deletes    []*dfspb.BlockRef        // queued deletes
	commands   []*dfspb.DatanodeCommand // queued other commands
}

// Manager is the namenode's side of DatanodeProtocol: see the package
// documentation. It is safe for concurrent use.
type Manager struct {
	dfspb.UnimplementedDatanodeProtocolServer

	cfg     Config
	log     *slog.Logger
	dead    time.Duration
	started time.Time // when New ran (Config.Clock)
	ns      atomic.Pointer[namespace.Namespace]

	mu    sync.Mutex
	nodes map[string]*node // by storage id

	// statsMu guards repl, the replication check's published status (a
	// leaf lock: never held with mu).
	statsMu sync.Mutex
	repl    ReplicationStatus

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// New returns a Manager and starts its liveness monitor; Close stops it.
// Bind must be called before datanodes' reports can be processed.
func New(cfg Config) *Manager {
	cfg = cfg.withDefaults()
	m := &Manager{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "dnmanager"),
		dead:    time.Duration(cfg.DeadIntervals) * cfg.HeartbeatInterval,
		started: cfg.Clock(),
		nodes:   map[string]*node{},
		done:    make(chan struct{}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go m.monitor(ctx)
	return m
}

// Bind gives the manager the namespace whose replicas it maintains (the
// namespace is created with the manager as its Placement, hence the two
// steps). Until it is called, reports are refused with UNAVAILABLE.
func (m *Manager) Bind(ns *namespace.Namespace) { m.ns.Store(ns) }

// Close stops the liveness monitor. The gRPC server serving the manager is
// the caller's to stop.
func (m *Manager) Close() error {
	m.once.Do(func() {
		m.cancel()
		<-m.done
	})
	return nil
}

// RegisterService registers the DatanodeProtocol service on s (the
// namenode's RPC server).
func (m *Manager) RegisterService(s grpc.ServiceRegistrar) {
	dfspb.RegisterDatanodeProtocolServer(s, m)
}

// Serve serves DatanodeProtocol alone on lis until ctx is done (then it
// stops the server and returns nil) or serving fails.
func (m *Manager) Serve(ctx context.Context, lis net.Listener, opts ...grpc.ServerOption) error {
	srv := grpc.NewServer(opts...)
	m.RegisterService(srv)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case <-ctx.Done():
		srv.Stop()
		<-errc
		return nil
	case err := <-errc:
		return fmt.Errorf("dnmanager: serve on %s: %w", lis.Addr(), err)
	}
}

// DeadInterval is how long without a heartbeat makes a datanode dead.
func (m *Manager) DeadInterval() time.Duration { return m.dead }

// liveLocked reports whether n is live at now.
func (m *Manager) liveLocked(n *node, now time.Time) bool {
	return !n.dead && !n.replaced && now.Sub(n.st.LastSeen) <= m.dead
}

// Datanodes returns the known datanodes (live and dead), by data address.
func (m *Manager) Datanodes() []DatanodeStatus {
	now := m.cfg.Clock()
	m.mu.Lock()
	out := make([]DatanodeStatus, 0, len(m.nodes))
	for _, n := range m.nodes {
		st := n.st
		st.Live = m.liveLocked(n, now)
		out = append(out, st)
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b DatanodeStatus) int {
		if a.DataAddr != b.DataAddr {
			if a.DataAddr < b.DataAddr {
				return -1
			}
			return 1
		}
		if a.StorageID < b.StorageID {
			return -1
		}
		return 1
	})
	return out
}

// LiveCount returns the number of live datanodes.
func (m *Manager) LiveCount() int {
	now := m.cfg.Clock()
	m.mu.Lock()
	defer m.mu.Unlock()
	c := 0
	for _, n := range m.nodes {
		if m.liveLocked(n, now) {
			c++
		}
	}
	return c
}

// Addr returns the data address of the live datanode with storage
// storageID.
func (m *Manager) Addr(storageID string) (string, bool) {
	now := m.cfg.Clock()
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nodes[storageID]
	if n == nil || !m.liveLocked(n, now) {
		return "", false
	}
	return n.st.DataAddr, true
}

// Resolve returns the targets (a block's replicas, from
// namespace.BlockLocations) that are on live datanodes, with their data
// addresses filled in, in random order (spreading reads, as HDFS shuffles
// replicas at the same distance). Replicas on dead or unknown datanodes
// are left out.
func (m *Manager) Resolve(ts []namespace.Target) []namespace.Target {
	now := m.cfg.Clock()
	out := make([]namespace.Target, 0, len(ts))
	m.mu.Lock()
	for _, t := range ts {
		if n := m.nodes[t.StorageID]; n != nil && m.liveLocked(n, now) {
			out = append(out, namespace.Target{StorageID: t.StorageID, Addr: n.st.DataAddr})
		}
	}
	m.mu.Unlock()
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// ResolveBlocks applies Resolve to the targets of every block of fb.
func (m *Manager) ResolveBlocks(fb *namespace.FileBlocks) {
	if fb == nil {
		return
	}
	for _, b := range fb.Blocks {
		b.Targets = m.Resolve(b.Targets)
	}
}

// Capacity sums the live datanodes' space (namespace.CapacityProvider).
func (m *Manager) Capacity(context.Context) (capacity, used, remaining int64, err error) {
	now := m.cfg.Clock()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.nodes {
		if m.liveLocked(n, now) {
			capacity += n.st.Capacity
			used += n.st.Used
			remaining += n.st.Remaining
		}
	}
	return capacity, used, remaining, nil
}

// namespace returns the bound namespace or an UNAVAILABLE status.
func (m *Manager) namespace() (*namespace.Namespace, error) {
	ns := m.ns.Load()
	if ns == nil {
		return nil, status.Error(codes.Unavailable, "dnmanager: the namenode is starting (no namespace yet)")
	}
	return ns, nil
}

// register records a datanode.
func (m *Manager) register(info *dfspb.DatanodeInfo) error {
	if info == nil || info.StorageId == "" || info.DataAddr == "" {
		return status.Error(codes.InvalidArgument, "dnmanager: register: a storage id and a data address are required")
	}
	now := m.cfg.Clock()
	m.mu.Lock()
	defer m.mu.Unlock()
	// A datanode whose storage was replaced (a wiped data directory)
	// registers a new storage id from the same address: the old storage is
	// gone. It is kept as dead, so that the leader's monitor walks its
	// replicas as a dead datanode's (copies of its blocks, its last
	// replicas counted missing) rather than forgetting them; one already
	// dead was walked at its death and is dropped.
	for id, n := range m.nodes {
		if id == info.StorageId || n.st.DataAddr != info.DataAddr || n.replaced {
			continue
		}
		if n.dead {
			delete(m.nodes, id)
		} else {
			n.replaced = true
			n.deletes, n.commands = nil, nil
		}
		m.log.Info("datanode storage replaced", "addr", info.DataAddr, "old_storage", id, "storage", info.StorageId)
	}
	_, known := m.nodes[info.StorageId]
	m.nodes[info.StorageId] = &node{st: DatanodeStatus{
		StorageID: info.StorageId, DataAddr: info.DataAddr, HTTPAddr: info.HttpAddr,
		Hostname: info.Hostname, SoftwareVersion: info.SoftwareVersion,
		Capacity: info.Capacity, Remaining: info.Capacity, LastSeen: now,
	}}
	m.log.Info("datanode registered", "storage", info.StorageId, "addr", info.DataAddr, "again", known)
	return nil
}

// Register records a datanode (DatanodeProtocol.Register); a registration
// of a known storage id replaces the old record and its queued commands.
func (m *Manager) Register(_ context.Context, req *dfspb.RegisterRequest) (*dfspb.RegisterResponse, error) {
	if err := m.register(req.GetDatanode()); err != nil {
		return nil, err
	}
	return &dfspb.RegisterResponse{NamenodeId: m.cfg.NamenodeID}, nil
}

// Heartbeat records a datanode's usage and answers with its queued
// commands (DatanodeProtocol.Heartbeat); an unknown or dead datanode is
// told to register again.
func (m *Manager) Heartbeat(_ context.Context, req *dfspb.HeartbeatRequest) (*dfspb.HeartbeatResponse, error) {
	now := m.cfg.Clock()
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nodes[req.GetStorageId()]
	if n == nil {
		return &dfspb.HeartbeatResponse{Reregister: true}, nil
	}
	if !m.liveLocked(n, now) {
		delete(m.nodes, req.GetStorageId())
		m.log.Info("dead datanode heard from again; asking it to register", "storage", n.st.StorageID, "addr", n.st.DataAddr)
		return &dfspb.HeartbeatResponse{Reregister: true}, nil
	}
	n.st.LastSeen = now
	if u := req.GetUsage(); u != nil {
		n.st.Capacity, n.st.Used, n.st.NonDFSUsed, n.st.Remaining = u.Capacity, u.Used, u.NonDfsUsed, u.Remaining
		n.usageKnown = true
	}
	n.st.Blocks, n.st.Xceivers = req.GetBlockCount(), req.GetXceiverCount()
	return &dfspb.HeartbeatResponse{Commands: m.takeCommandsLocked(n, m.cfg.DeletesPerHeartbeat)}, nil
}

// takeCommandsLocked dequeues n's commands, with at most maxDeletes
// deletes (<= 0: all).
func (m *Manager) takeCommandsLocked(n *node, maxDeletes int) []*dfspb.DatanodeCommand {
	cmds := n.commands
	n.commands = nil
	if len(n.deletes) > 0 {
		k := len(n.deletes)
		if maxDeletes > 0 {
			k = min(k, maxDeletes)
		}
		del := &dfspb.DeleteBlocksCommand{Blocks: n.deletes[:k:k]}
		n.deletes = n.deletes[k:]
		if len(n.deletes) == 0 {
			n.deletes = nil
		}
		cmds = append(cmds, &dfspb.DatanodeCommand{Command: &dfspb.DatanodeCommand_Delete{Delete: del}})
	}
	return cmds
}

// queueDeletes queues deletes for storageID (dropped when it is unknown:
// its next registration's full report finds them again).
func (m *Manager) queueDeletes(storageID string, refs []*dfspb.BlockRef) {
	if len(refs) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := m.nodes[storageID]; n != nil {
		n.deletes = append(n.deletes, refs...)
	}
}

// queueCommand queues cmd for storageID; false when it is unknown.
func (m *Manager) queueCommand(storageID string, cmd *dfspb.DatanodeCommand) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nodes[storageID]
	if n == nil {
		return false
	}
	n.commands = append(n.commands, cmd)
	return true
}

// PendingDeletes returns the number of deletes queued for storageID.
func (m *Manager) PendingDeletes(storageID string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := m.nodes[storageID]; n != nil {
		return len(n.deletes)
	}
	return 0
}

// known checks that storageID is registered, else NOT_FOUND (the datanode
// registers again).
func (m *Manager) known(storageID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.nodes[storageID] == nil {
		return status.Errorf(codes.NotFound, "dnmanager: unknown datanode storage %q: register first", storageID)
	}
	return nil
}

// BlockReport reconciles a full block report with the replicas table (see
// the package documentation) and answers with the datanode's queued
// commands, the deletes it caused included (DatanodeProtocol.BlockReport).
func (m *Manager) BlockReport(ctx context.Context, req *dfspb.BlockReportRequest) (*dfspb.BlockReportResponse, error) {
	ns, err := m.namespace()
	if err != nil {
		return nil, err
	}
	sid := req.GetStorageId()
	if err := m.known(sid); err != nil {
		return nil, err
	}
	start := time.Now()
	res, err := reconcile(ctx, ns.Store(), sid, req.GetBlocks(), m.cfg.ReportBatch)
	if err != nil {
		m.log.Warn("block report failed", "storage", sid, "blocks", len(req.GetBlocks()), "error", err)
		return nil, status.Errorf(codes.Unavailable, "dnmanager: block report of %s: %v", sid, err)
	}
	m.queueDeletes(sid, res.deletes)
	if len(res.finalize) > 0 {
		m.queueCommand(sid, &dfspb.DatanodeCommand{Command: &dfspb.DatanodeCommand_Finalize{
			Finalize: &dfspb.FinalizeBlocksCommand{Blocks: res.finalize}}})
		m.log.Info("asking a datanode to finalize replicas left being written of complete blocks", "storage", sid, "blocks", len(res.finalize))
	}
	m.log.Debug("block report processed", "storage", sid, "blocks", len(req.GetBlocks()),
		"added", res.added, "updated", res.updated, "removed", res.removed, "deletes", len(res.deletes),
		"finalize", len(res.finalize), "took", time.Since(start))
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nodes[sid]
	if n == nil {
		return &dfspb.BlockReportResponse{}, nil
	}
	return &dfspb.BlockReportResponse{Commands: m.takeCommandsLocked(n, 0)}, nil
}

// BlockReceived applies an incremental block report
// (DatanodeProtocol.BlockReceived): finalized replicas are recorded,
// corrupt ones recorded as such, deleted ones removed; a replica of a
// block no file has, or older than its block, is queued for deletion.
func (m *Manager) BlockReceived(ctx context.Context, req *dfspb.BlockReceivedRequest) (*dfspb.BlockReceivedResponse, error) {
	ns, err := m.namespace()
	if err != nil {
		return nil, err
	}
	sid := req.GetStorageId()
	if err := m.known(sid); err != nil {
		return nil, err
	}
	var deletes []*dfspb.BlockRef
	var firstErr error
	for _, ev := range req.GetEvents() {
		b := ev.GetBlock()
		if b == nil {
			continue
		}
		err := m.applyEvent(ctx, ns, sid, ev.GetKind(), b)
		if errors.Is(err, namespace.ErrUnknownBlock) || errors.Is(err, errStaleReplica) {
			deletes = append(deletes, &dfspb.BlockRef{Id: b.Id, Genstamp: b.Genstamp})
			continue
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	m.queueDeletes(sid, deletes)
	if firstErr != nil {
		// The datanode sends the events again: applying them is idempotent.
		m.log.Warn("incremental block report failed", "storage", sid, "error", firstErr)
		return nil, status.Errorf(codes.Unavailable, "dnmanager: incremental block report of %s: %v", sid, firstErr)
	}
	return &dfspb.BlockReceivedResponse{}, nil
}

// applyEvent applies one incremental report event.
func (m *Manager) applyEvent(ctx context.Context, ns *namespace.Namespace, sid string, kind dfspb.BlockEventKind, b *dfspb.ReportedBlock) error {
	id, ok := blockID(b.Id)
	switch kind {
	case dfspb.BlockEventKind_RECEIVED:
		if !ok {
			return fmt.Errorf("%w %d", namespace.ErrUnknownBlock, b.Id)
		}
		if b.Corrupt != "" {
			return recordCorrupt(ctx, ns.Store(), id, sid, b.Genstamp)
		}
		return ns.BlockReceived(ctx, id, sid)
	case dfspb.BlockEventKind_DELETED:
		if !ok {
			return nil
		}
		err := ns.Store().Tx(ctx, func(tx dal.Tx) error {
			blk, err := tx.GetBlock(ctx, id)
			if errors.Is(err, dal.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := tx.RemoveReplica(ctx, blk.InodeID, id, sid); err != nil && !errors.Is(err, dal.ErrNotFound) {
				return err
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("remove replica of block %d on %s: %w", id, sid, err)
		}
	}
	return nil
}

// errStaleReplica is a reported replica older than its block: to delete.
var errStaleReplica = errors.New("replica older than its block")

// recordCorrupt records that storage sid holds a corrupt replica of block
// id at stamp gs (a datanode's incremental report: a replica it found
// corrupt, or one left being written shorter than its complete block). A
// replica older than its block is errStaleReplica (deleted instead).
func recordCorrupt(ctx context.Context, store dal.Store, id int64, sid string, gs uint64) error {
	err := store.Tx(ctx, func(tx dal.Tx) error {
		blk, err := tx.GetBlock(ctx, id)
		if errors.Is(err, dal.ErrNotFound) {
			return fmt.Errorf("%w %d", namespace.ErrUnknownBlock, id)
		}
		if err != nil {
			return err
		}
		if gs < uint64(max(blk.GenerationStamp, 0)) {
			if blk.State == dal.BlockUnderRecovery {
				return nil // the recovery decides (as for full reports)
			}
			return errStaleReplica
		}
		// inode (locked first, in the namespace's order), then replicas.
		if _, err := tx.GetInodeByID(ctx, blk.InodeID, dal.LockWrite); err != nil {
			if errors.Is(err, dal.ErrNotFound) {
				return fmt.Errorf("%w %d", namespace.ErrUnknownBlock, id)
			}
			return err
		}
		reps, err := tx.ListReplicas(ctx, blk.InodeID, id)
		if err != nil {
			return err
		}
		for _, r := range reps {
			if r.StorageID == sid {
				if r.State == dal.ReplicaCorrupt {
					return nil
				}
				return tx.UpdateReplicaState(ctx, blk.InodeID, id, sid, dal.ReplicaCorrupt)
			}
		}
		return tx.AddReplica(ctx, &dal.Replica{InodeID: blk.InodeID, BlockID: id, StorageID: sid, State: dal.ReplicaCorrupt})
	})
	if err != nil && !errors.Is(err, namespace.ErrUnknownBlock) && !errors.Is(err, errStaleReplica) {
		return fmt.Errorf("record corrupt replica of block %d on %s: %w", id, sid, err)
	}
	return err
}

// blockID converts a datanode's block id; ids above the int64 range are
// no namenode's.
func blockID(id uint64) (int64, bool) {
	if id == 0 || id > 1<<63-1 {
		return 0, false
	}
	return int64(id), true
}

// The interfaces the Manager implements.
var (
	_ dfspb.DatanodeProtocolServer = (*Manager)(nil)
	_ namespace.Placement          = (*Manager)(nil)
	_ namespace.CapacityProvider   = (*Manager)(nil)
)
