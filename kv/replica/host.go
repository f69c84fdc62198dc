package replica

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// electionTick is the election timeout in ticks (a follower that heard
// nothing from its leader for this long campaigns).
const electionTick = 10

// HostConfig configures a Host.
type HostConfig struct {
	// NodeID is this node's Raft id (never 0), the same in every group.
	NodeID uint64
	// Logs is the node's log store.
	Logs *LogStore
	// Transport sends messages to the other nodes.
	Transport Transport
	// TickInterval is one Raft tick (default 100ms; elections after 10
	// ticks without a leader).
	TickInterval time.Duration
	// OnConfChange is called (from the host's Raft loop) after a membership
	// change of a group was applied.
	OnConfChange func(group uint32, cc raftpb.ConfChange)
	// Logger receives the runtime's logs.
	Logger *slog.Logger
	// QuorumReads makes every linearizable read confirm the leadership
	// with a quorum round, instead of within a read lease (see
	// Group.ReadIndex): for clocks whose rates may differ a lot.
	QuorumReads bool
}

// Host runs the Raft groups of one node.
type Host struct {
	id        uint64
	logs      *LogStore
	transport Transport
	log       *slog.Logger
	tick      time.Duration
	onConf    func(uint32, raftpb.ConfChange)
	// lease is the length of a read lease (electionTick/2 ticks);
	// quorumReads turns leases off.
	lease       time.Duration
	quorumReads bool

	mu     sync.RWMutex
	groups map[uint32]*Group
	err    error

	// readyMu guards woken: the groups the Raft loop must look at next.
	readyMu sync.Mutex
	woken   map[*Group]struct{}
	kick    chan struct{} // (cap 1) wakes the Raft loop

	// roundMu is held by the Raft loop while it handles a round, so
	// StopGroup can wait until a stopping group is out of it.
	roundMu sync.Mutex

	stop chan struct{}
	wg   sync.WaitGroup
}

// NewHost starts the tick loop of a host with no groups.
func NewHost(cfg HostConfig) (*Host, error) {
	if cfg.NodeID == 0 {
		return nil, fmt.Errorf("replica: node id 0 is reserved")
	}
	if cfg.TickInterval == 0 {
		cfg.TickInterval = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Host{
		id:          cfg.NodeID,
		logs:        cfg.Logs,
		transport:   cfg.Transport,
		log:         cfg.Logger,
		tick:        cfg.TickInterval,
		onConf:      cfg.OnConfChange,
		lease:       electionTick / 2 * cfg.TickInterval,
		quorumReads: cfg.QuorumReads,
		groups:      make(map[uint32]*Group),
		woken:       make(map[*Group]struct{}),
		kick:        make(chan struct{}, 1),
		stop:        make(chan struct{}),
	}
	h.wg.Add(2)
	go h.tickLoop()
	go h.raftLoop()
	return h, nil
}

// ID returns this node's id.
func (h *Host) ID() uint64 { return h.id }

// HasState tells whether the log store holds a group (it ran here before).
func (h *Host) HasState(group uint32) (bool, error) {
	st, err := h.logs.load(group)
	return st.exists, err
}

// StartGroup starts (or restarts from the log store) a group.
func (h *Host) StartGroup(cfg GroupConfig, sm StateMachine) (*Group, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if g, ok := h.groups[cfg.Group]; ok {
		return g, nil
	}
	g, err := newGroup(h, cfg, sm)
	if err != nil {
		return nil, err
	}
	h.groups[cfg.Group] = g
	h.wg.Add(1)
	go func() { defer h.wg.Done(); g.readLoop() }()
	h.wake(g)
	return g, nil
}

// StopGroup stops a group and, with drop, deletes its log.
func (h *Host) StopGroup(group uint32, drop bool) error {
	h.mu.Lock()
	g := h.groups[group]
	delete(h.groups, group)
	h.mu.Unlock()
	if g != nil {
		h.halt(g)
	}
	if drop {
		return h.logs.dropGroup(group)
	}
	return nil
}

// Group returns a running group (nil if not running here).
func (h *Host) Group(group uint32) *Group {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.groups[group]
}

// Groups returns the running groups in id order.
func (h *Host) Groups() []*Group {
	h.mu.RLock()
	out := make([]*Group, 0, len(h.groups))
	for _, g := range h.groups {
		out = append(out, g)
	}
	h.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// Step hands a message received from another node to its group. Messages
// for groups not running here are dropped (the sender retries).
func (h *Host) Step(ctx context.Context, group uint32, m raftpb.Message) error {
	g := h.Group(group)
	if g == nil {
		return nil
	}
	return g.step(m)
}

// ReportUnreachable tells every group that node is unreachable.
func (h *Host) ReportUnreachable(group uint32, node uint64) {
	if g := h.Group(group); g != nil {
		g.reportUnreachable(node)
	}
}

// Err returns the error that stopped a group, if any.
func (h *Host) Err() error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.err
}

func (h *Host) fail(err error) {
	h.mu.Lock()
	if h.err == nil {
		h.err = err
	}
	h.mu.Unlock()
}

func (h *Host) confChanged(group uint32, cc raftpb.ConfChange) {
	if h.onConf != nil {
		h.onConf(group, cc)
	}
}

func (h *Host) tickLoop() {
	defer h.wg.Done()
	t := time.NewTicker(h.tick)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			for _, g := range h.Groups() {
				g.tick()
			}
		}
	}
}

// Close stops every group and the tick loop (the log store stays open).
func (h *Host) Close() {
	select {
	case <-h.stop:
		return
	default:
	}
	close(h.stop)
	h.mu.Lock()
	groups := h.groups
	h.groups = map[uint32]*Group{}
	h.mu.Unlock()
	for _, g := range groups {
		h.halt(g)
	}
	h.wg.Wait()
}

// halt stops a group removed from h.groups: no more Raft calls, waiters
// released, and once it returns the Raft loop no longer touches it.
func (h *Host) halt(g *Group) {
	g.mu.Lock()
	already := g.stopped
	g.stopped = true
	g.mu.Unlock()
	// Wait for a round that may hold the group, and drop a pending wake.
	h.roundMu.Lock()
	h.readyMu.Lock()
	delete(h.woken, g)
	h.readyMu.Unlock()
	h.roundMu.Unlock()
	if !already {
		close(g.stop)
	}
}

// wake asks the Raft loop to look at g.
func (h *Host) wake(g *Group) {
	h.readyMu.Lock()
	h.woken[g] = struct{}{}
	h.readyMu.Unlock()
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// takeWoken returns and forgets the woken groups.
func (h *Host) takeWoken() []*Group {
	h.readyMu.Lock()
	defer h.readyMu.Unlock()
	if len(h.woken) == 0 {
		return nil
	}
	out := make([]*Group, 0, len(h.woken))
	for g := range h.woken {
		out = append(out, g)
	}
	clear(h.woken)
	return out
}

// raftLoop handles the Raft work of every group of the node in rounds: it
// takes the Ready of each group with work, writes all their entries and
// hard states in one Pebble batch with at most one sync, sends their
// messages (the transport batches them per peer), then applies the
// committed entries and advances each group. So the shards of a node share
// one disk sync and one network write per peer per round, however many
// there are.
func (h *Host) raftLoop() {
	defer h.wg.Done()
	for {
		select {
		case <-h.stop:
			return
		case <-h.kick:
		}
		for {
			groups := h.takeWoken()
			if len(groups) == 0 {
				break
			}
			h.round(groups)
		}
	}
}

type readyWork struct {
	g  *Group
	rd raft.Ready
}

func (h *Host) round(groups []*Group) {
	h.roundMu.Lock()
	defer h.roundMu.Unlock()
	work := make([]readyWork, 0, len(groups))
	for _, g := range groups {
		if rd, ok := g.ready(); ok {
			work = append(work, readyWork{g: g, rd: rd})
		}
	}
	if len(work) == 0 {
		return
	}
	b := h.logs.db.NewBatch()
	defer b.Close()
	sync := false
	for i := 0; i < len(work); i++ {
		w := &work[i]
		s, err := w.g.beforePersist(&w.rd, b)
		if err != nil {
			h.failGroup(w.g, err)
			work = append(work[:i], work[i+1:]...)
			i--
			continue
		}
		sync = sync || s
	}
	// The round's log writes go to disk while the entries committed in
	// earlier rounds (already in this node's durable log) are applied and
	// their callers answered: a write's answer does not wait for the sync
	// of the writes proposed after it.
	committed := make(chan error, 1)
	if b.Empty() {
		committed <- nil
	} else {
		opt := pebble.NoSync
		if sync {
			opt = pebble.Sync
		}
		go func() { committed <- b.Commit(opt) }()
	}
	failed := map[*Group]bool{}
	for i := range work {
		w := &work[i]
		if err := w.g.applyEntries(w.g.takeDurableCommitted(&w.rd)); err != nil {
			h.failGroup(w.g, err)
			failed[w.g] = true
		}
	}
	if err := <-committed; err != nil {
		for _, w := range work {
			h.failGroup(w.g, fmt.Errorf("persist raft log: %w", err))
		}
		return
	}
	for _, w := range work {
		if failed[w.g] {
			continue
		}
		if err := w.g.afterPersist(&w.rd); err != nil {
			h.failGroup(w.g, err)
			continue
		}
		if w.g.advance(w.rd) {
			h.wake(w.g)
		}
		w.g.maybeCompact()
	}
}

// failGroup stops a group that hit an error it cannot go on from (a disk
// error, a snapshot that does not install) and records the error.
func (h *Host) failGroup(g *Group, err error) {
	err = fmt.Errorf("group %d: %w", g.id, err)
	g.log.Error("raft group failed; stopping it", "err", err)
	h.fail(err)
	h.mu.Lock()
	if h.groups[g.id] == g {
		delete(h.groups, g.id)
	}
	h.mu.Unlock()
	g.mu.Lock()
	already := g.stopped
	g.stopped = true
	g.mu.Unlock()
	if !already {
		close(g.stop) // the loop holds roundMu: halt's wait would deadlock
	}
}

// raftLogger sends etcd raft's log lines to slog (debug and info lines at
// debug level: elections are reported by the server itself).
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)                 { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Debugf(format string, v ...any) { r.l.Debug(fmt.Sprintf(format, v...)) }
func (r raftLogger) Info(v ...any)                  { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Infof(format string, v ...any)  { r.l.Debug(fmt.Sprintf(format, v...)) }
func (r raftLogger) Warning(v ...any)               { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(format string, v ...any) {
	r.l.Warn(fmt.Sprintf(format, v...))
}
func (r raftLogger) Error(v ...any)                 { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(format string, v ...any) { r.l.Error(fmt.Sprintf(format, v...)) }
func (r raftLogger) Fatal(v ...any)                 { panic(fmt.Sprint(v...)) }
func (r raftLogger) Fatalf(format string, v ...any) { panic(fmt.Sprintf(format, v...)) }
func (r raftLogger) Panic(v ...any)                 { panic(fmt.Sprint(v...)) }
func (r raftLogger) Panicf(format string, v ...any) { panic(fmt.Sprintf(format, v...)) }

var _ raft.Logger = raftLogger{}
