package replica

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Errors of the runtime; test them with errors.Is.
var (
	// ErrNotLeader: this replica is not the group's leader (the proposal was
	// not made, so retrying elsewhere is safe).
	ErrNotLeader = errors.New("not the leader")
	// ErrUnknownOutcome: the proposal was made but its fate is unknown (the
	// leader changed or the wait timed out): it may yet be applied.
	ErrUnknownOutcome = errors.New("outcome unknown")
	// ErrStopped: the group or host was stopped.
	ErrStopped = errors.New("replica stopped")
)

// StateMachine is what a group replicates. Apply is called from the host's Raft
// loop only, in log order; the other methods may run concurrently with it
// and must synchronise themselves.
type StateMachine interface {
	// Applied returns the index of the last entry whose effect the state
	// machine holds (durably or in a way a replay from the log restores).
	Applied() uint64
	// Apply applies the normal entry at index; it returns the id the
	// proposer gave the command (0 for none) and the result to hand back.
	// Entries at or below Applied() are not passed.
	Apply(index uint64, data []byte) (id uint64, result any)
	// SnapshotData captures the whole state for a replica that fell behind
	// the log. The data must carry the index it reflects (at least the
	// index of the snapshot it goes with).
	SnapshotData() ([]byte, error)
	// Restore replaces the whole state with snapshot data; index is the
	// snapshot's log index. Afterwards Applied() >= index.
	Restore(data []byte, index uint64) error
	// Sync makes the effect of every applied entry durable.
	Sync() error
}

// Transport delivers Raft messages to other nodes. Send must not block for
// long; it may drop messages (Raft retries).
type Transport interface {
	Send(group uint32, msgs []raftpb.Message)
	// SendSnapshot delivers one MsgSnap (with its data filled in) and
	// reports whether it arrived.
	SendSnapshot(ctx context.Context, group uint32, msg raftpb.Message) error
}

// GroupConfig configures one group.
type GroupConfig struct {
	// Group is the group's id on every node.
	Group uint32
	// Peers bootstraps a new group with these voters (including this
	// node). Empty: the group either exists in the log store already or
	// waits to be contacted by the leader of an existing group.
	Peers []uint64
	// SnapshotEvery compacts the log after this many applied entries
	// (default 10,000); KeepEntries stay behind for slow followers
	// (default 1,000).
	SnapshotEvery uint64
	KeepEntries   uint64
}

// Group is one Raft group on this node.
type Group struct {
	host    *Host
	id      uint32
	storage *raft.MemoryStorage
	sm      StateMachine
	log     *slog.Logger
	cfg     GroupConfig

	// mu guards rn (etcd raft's RawNode is not safe for concurrent use)
	// and stopped. Callers step, propose and tick under it; the host's
	// Raft loop takes a Ready and advances under it. Held briefly: never
	// across disk or network I/O.
	mu      sync.Mutex
	rn      *raft.RawNode
	stopped bool

	// Owned by the host's Raft loop.
	confState raftpb.ConfState
	lastIndex uint64
	snapIndex uint64

	applied atomic.Uint64
	leader  atomic.Uint64
	term    atomic.Uint64

	waitMu  sync.Mutex
	waiters map[uint64]chan any
	signal  chan struct{} // replaced with appliedC under waitMu

	// The read lease (see leaseIndex): guarded by leaseMu, a leaf.
	leaseMu    sync.Mutex
	leaseTerm  uint64
	leaseUntil time.Time
	leaseFloor time.Time // rounds issued before this give no lease (a transfer started)

	readMu   sync.Mutex
	nextRead *readBatch
	readKick chan struct{}
	reads    map[uint64]*readBatch
	readSeq  uint64

	stop chan struct{} // closed when the group stops
}

type readBatch struct {
	done  chan struct{}
	index uint64
	err   error
	// issued and term: when and in which term the round was asked for
	// (set by readLoop before it asks; a success renews the lease).
	issued time.Time
	term   uint64
}

func newGroup(h *Host, cfg GroupConfig, sm StateMachine) (*Group, error) {
	if cfg.SnapshotEvery == 0 {
		cfg.SnapshotEvery = 10000
	}
	if cfg.KeepEntries == 0 {
		cfg.KeepEntries = 1000
	}
	st, err := h.logs.load(cfg.Group)
	if err != nil {
		return nil, err
	}
	g := &Group{
		host:     h,
		id:       cfg.Group,
		storage:  raft.NewMemoryStorage(),
		sm:       sm,
		cfg:      cfg,
		log:      h.log.With("group", cfg.Group),
		waiters:  make(map[uint64]chan any),
		signal:   make(chan struct{}),
		readKick: make(chan struct{}, 1),
		reads:    make(map[uint64]*readBatch),
		stop:     make(chan struct{}),
	}
	rc := &raft.Config{
		ID:              h.id,
		ElectionTick:    electionTick,
		HeartbeatTick:   1,
		Storage:         g.storage,
		MaxSizePerMsg:   1 << 20,
		MaxInflightMsgs: 256,
		CheckQuorum:     true,
		PreVote:         true,
		Logger:          raftLogger{g.log},
		ReadOnlyOption:  raft.ReadOnlySafe,
		// A follower refuses proposals (Propose reports ErrNotLeader, a
		// safe retry) instead of forwarding them to a leader it may not
		// reach.
		DisableProposalForwarding: true,
	}
	var peers []raft.Peer
	if st.exists {
		if st.snap.Index > 0 {
			if err := g.storage.ApplySnapshot(raftpb.Snapshot{Metadata: st.snap}); err != nil {
				return nil, fmt.Errorf("group %d: restore snapshot metadata: %w", cfg.Group, err)
			}
			g.confState = st.snap.ConfState
			g.snapIndex = st.snap.Index
		}
		if err := g.storage.Append(st.entries); err != nil {
			return nil, fmt.Errorf("group %d: restore log: %w", cfg.Group, err)
		}
		if err := g.storage.SetHardState(st.hard); err != nil {
			return nil, fmt.Errorf("group %d: restore hard state: %w", cfg.Group, err)
		}
		g.lastIndex, _ = g.storage.LastIndex()
		rc.Applied = st.snap.Index
	} else if len(cfg.Peers) > 0 {
		peers = make([]raft.Peer, len(cfg.Peers))
		for i, p := range cfg.Peers {
			peers[i] = raft.Peer{ID: p}
		}
	}
	rn, err := raft.NewRawNode(rc)
	if err != nil {
		return nil, fmt.Errorf("group %d: %w", cfg.Group, err)
	}
	if len(peers) > 0 {
		// As raft.StartNode does: a new group's first entries are the
		// membership changes that add its initial voters.
		if err := rn.Bootstrap(peers); err != nil {
			return nil, fmt.Errorf("group %d: bootstrap: %w", cfg.Group, err)
		}
	}
	g.rn = rn
	g.applied.Store(st.snap.Index)
	return g, nil
}

// withNode runs fn on the RawNode under the group's lock and wakes the
// host's Raft loop, which collects whatever fn made ready. It reports
// ErrStopped for a stopped group.
func (g *Group) withNode(fn func(rn *raft.RawNode) error) error {
	g.mu.Lock()
	if g.stopped {
		g.mu.Unlock()
		return ErrStopped
	}
	err := fn(g.rn)
	g.mu.Unlock()
	g.host.wake(g)
	return err
}

// ID returns the group's id.
func (g *Group) ID() uint32 { return g.id }

// Leader returns the node id of the group's leader as this replica knows it
// (0: none known).
func (g *Group) Leader() uint64 { return g.leader.Load() }

// IsLeader tells whether this replica leads the group.
func (g *Group) IsLeader() bool { return g.leader.Load() == g.host.id }

// AppliedIndex returns the index of the last entry this replica applied.
func (g *Group) AppliedIndex() uint64 { return g.applied.Load() }

// Status returns Raft's view of the group.
func (g *Group) Status() raft.Status {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.rn.Status()
}

// Propose replicates data (a command the state machine understands, which
// carries id) and waits for it to be applied here, returning the state
// machine's result. ErrNotLeader: nothing was proposed. ErrUnknownOutcome:
// the command may or may not be applied.
func (g *Group) Propose(ctx context.Context, id uint64, data []byte) (any, error) {
	if !g.IsLeader() {
		return nil, ErrNotLeader
	}
	ch := make(chan any, 1)
	g.waitMu.Lock()
	g.waiters[id] = ch
	g.waitMu.Unlock()
	defer func() {
		g.waitMu.Lock()
		delete(g.waiters, id)
		g.waitMu.Unlock()
	}()
	if err := g.withNode(func(rn *raft.RawNode) error { return rn.Propose(data) }); err != nil {
		if errors.Is(err, raft.ErrProposalDropped) {
			return nil, ErrNotLeader
		}
		if errors.Is(err, ErrStopped) {
			return nil, ErrStopped
		}
		return nil, fmt.Errorf("%w: %v", ErrUnknownOutcome, err)
	}
	select {
	case res := <-ch:
		if err, ok := res.(leaderLost); ok {
			return nil, fmt.Errorf("%w: %v", ErrUnknownOutcome, err.error)
		}
		return res, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrUnknownOutcome, ctx.Err())
	case <-g.stop:
		return nil, fmt.Errorf("%w: %v", ErrUnknownOutcome, ErrStopped)
	}
}

type leaderLost struct{ error }

// ProposeConfChange adds or removes a voter and waits until the change is
// applied here.
func (g *Group) ProposeConfChange(ctx context.Context, cc raftpb.ConfChange) error {
	if !g.IsLeader() {
		return ErrNotLeader
	}
	if err := g.withNode(func(rn *raft.RawNode) error { return rn.ProposeConfChange(cc) }); err != nil {
		return fmt.Errorf("group %d: propose membership change: %w", g.id, err)
	}
	for {
		cs := g.ConfState()
		has := false
		for _, v := range cs.Voters {
			has = has || v == cc.NodeID
		}
		if has == (cc.Type == raftpb.ConfChangeAddNode) {
			return nil
		}
		if err := g.waitSignal(ctx); err != nil {
			return err
		}
	}
}

// ConfState returns the group's current voters (as of the last applied
// membership change).
func (g *Group) ConfState() raftpb.ConfState {
	st := g.Status()
	cs := raftpb.ConfState{}
	for id := range st.Config.Voters.IDs() {
		cs.Voters = append(cs.Voters, id)
	}
	return cs
}

// WaitApplied waits until this replica applied index.
func (g *Group) WaitApplied(ctx context.Context, index uint64) error {
	for g.applied.Load() < index {
		if err := g.waitSignal(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (g *Group) waitSignal(ctx context.Context) error {
	g.waitMu.Lock()
	sig := g.signal
	g.waitMu.Unlock()
	select {
	case <-sig:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-g.stop:
		return ErrStopped
	case <-time.After(100 * time.Millisecond):
		return nil // re-check (membership changes are not signalled)
	}
}

// ReadIndex waits until this replica has applied everything committed when
// the call was made, so a read of the state machine that follows is
// linearizable. The leader's commit index is confirmed either by a quorum
// round (Raft's ReadIndex; concurrent callers share one) or, within a read
// lease that such a round established, at once (see leaseIndex).
func (g *Group) ReadIndex(ctx context.Context) error {
	if idx, ok := g.leaseIndex(); ok {
		return g.WaitApplied(ctx, idx)
	}
	g.readMu.Lock()
	b := g.nextRead
	if b == nil {
		b = &readBatch{done: make(chan struct{})}
		g.nextRead = b
	}
	g.readMu.Unlock()
	select {
	case g.readKick <- struct{}{}:
	default:
	}
	select {
	case <-b.done:
	case <-ctx.Done():
		return fmt.Errorf("group %d: read index: %w", g.id, ctx.Err())
	case <-g.stop:
		return ErrStopped
	}
	if b.err != nil {
		return b.err
	}
	return g.WaitApplied(ctx, b.index)
}

// leaseIndex returns the leader's commit index when a read lease is held:
// a ReadIndex round issued at t0 in term T proved that a quorum still
// followed this leader at t0. A follower that heard from its leader refuses
// to vote (PreVote and CheckQuorum) until it has not heard from it for an
// election timeout, measured on its own clock in whole ticks, so at least
// (ElectionTick-1) ticks; no other leader can exist before
// t0 + (ElectionTick-1) ticks. The lease ends well before: at t0 +
// ElectionTick/2 ticks (500 ms by default), leaving half the window to clock
// rate differences and scheduling delays. Until it ends, this node is the
// only leader of term T, its commit index covers every write acknowledged
// before the read arrived, and a read at that index is linearizable.
// Leadership transfers void the lease (the transferee campaigns at once,
// skipping the election timeout): TransferLeadership clears it and only
// rounds issued afterwards renew it. A lease with less than half its
// length left is renewed in the background, so a steady stream of reads
// costs a quorum round per quarter second, not per batch.
func (g *Group) leaseIndex() (uint64, bool) {
	if g.host.quorumReads {
		return 0, false
	}
	g.leaseMu.Lock()
	term, until := g.leaseTerm, g.leaseUntil
	g.leaseMu.Unlock()
	now := time.Now()
	if !now.Before(until) {
		return 0, false
	}
	g.mu.Lock()
	st := g.rn.BasicStatus()
	g.mu.Unlock()
	if st.RaftState != raft.StateLeader || st.Term != term || st.LeadTransferee != 0 {
		return 0, false
	}
	if until.Sub(now) < g.host.lease/2 {
		g.kickRead()
	}
	return st.Commit, true
}

// extendLease records a quorum round issued at t0 in term.
func (g *Group) extendLease(t0 time.Time, term uint64) {
	g.leaseMu.Lock()
	defer g.leaseMu.Unlock()
	if t0.Before(g.leaseFloor) {
		return
	}
	if until := t0.Add(g.host.lease); term != g.leaseTerm || until.After(g.leaseUntil) {
		g.leaseTerm, g.leaseUntil = term, until
	}
}

// voidLease ends the read lease and refuses renewals from rounds issued
// before now.
func (g *Group) voidLease() {
	g.leaseMu.Lock()
	g.leaseUntil = time.Time{}
	g.leaseFloor = time.Now()
	g.leaseMu.Unlock()
}

// kickRead makes sure a ReadIndex round is coming (one that nobody waits
// for renews the lease).
func (g *Group) kickRead() {
	g.readMu.Lock()
	if g.nextRead == nil {
		g.nextRead = &readBatch{done: make(chan struct{})}
	}
	g.readMu.Unlock()
	select {
	case g.readKick <- struct{}{}:
	default:
	}
}

// readLoop issues one ReadIndex request at a time for every reader that
// arrived while the previous one was in flight.
func (g *Group) readLoop() {
	for {
		select {
		case <-g.stop:
			return
		case <-g.readKick:
		}
		g.readMu.Lock()
		b := g.nextRead
		g.nextRead = nil
		g.readSeq++
		seq := g.readSeq
		if b != nil {
			g.reads[seq] = b
		}
		g.readMu.Unlock()
		if b == nil {
			continue
		}
		if !g.IsLeader() {
			g.finishRead(seq, 0, ErrNotLeader)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		var rctx [8]byte
		binary.BigEndian.PutUint64(rctx[:], seq)
		err := g.withNode(func(rn *raft.RawNode) error {
			g.readMu.Lock()
			b.issued, b.term = time.Now(), rn.BasicStatus().Term
			g.readMu.Unlock()
			rn.ReadIndex(rctx[:])
			return nil
		})
		if err == nil {
			select {
			case <-b.done:
			case <-ctx.Done():
				err = fmt.Errorf("%w: no quorum confirmed the read in time", ErrNotLeader)
			case <-g.stop:
				err = ErrStopped
			}
		}
		cancel()
		if err != nil {
			g.finishRead(seq, 0, err)
		}
	}
}

func (g *Group) finishRead(seq, index uint64, err error) {
	g.readMu.Lock()
	b := g.reads[seq]
	delete(g.reads, seq)
	var issued time.Time
	var term uint64
	if b != nil {
		issued, term = b.issued, b.term
	}
	g.readMu.Unlock()
	if b != nil {
		if err == nil && !issued.IsZero() {
			g.extendLease(issued, term)
		}
		b.index, b.err = index, err
		close(b.done)
	}
}

// ready takes the group's next Ready, if it has one and runs. Called by the
// host's Raft loop only.
func (g *Group) ready() (raft.Ready, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped || !g.rn.HasReady() {
		return raft.Ready{}, false
	}
	return g.rn.Ready(), true
}

// advance tells Raft that a Ready was handled, and reports whether the
// group has more work (then the loop goes round again for it).
func (g *Group) advance(rd raft.Ready) (more bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return false
	}
	g.rn.Advance(rd)
	return g.rn.HasReady()
}

// sendsEarly tells whether a Ready's messages may go out before its
// entries are on disk: a leader's appends and heartbeats may (Raft thesis
// 10.2.1: the leader counts its own vote only once the next Ready is
// produced, which waits for this one to be persisted), anything answering
// another node (votes, append acknowledgements) may not.
func (g *Group) sendsEarly(rd *raft.Ready) bool {
	if g.leader.Load() != g.host.id || len(rd.Messages) == 0 {
		return false
	}
	for _, m := range rd.Messages {
		switch m.Type {
		case raftpb.MsgApp, raftpb.MsgHeartbeat:
		default:
			return false
		}
	}
	return true
}

// beforePersist handles the parts of a Ready that come before its entries
// are written: leadership news, a snapshot to install, the log writes
// (added to the host's shared batch b), a leader's early messages.
func (g *Group) beforePersist(rd *raft.Ready, b *pebble.Batch) (sync bool, err error) {
	if rd.SoftState != nil {
		was := g.leader.Swap(rd.SoftState.Lead)
		if was == g.host.id && rd.SoftState.Lead != g.host.id {
			g.failWaiters()
		}
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		g.term.Store(rd.HardState.Term)
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := g.sm.Restore(rd.Snapshot.Data, rd.Snapshot.Metadata.Index); err != nil {
			return false, fmt.Errorf("install snapshot at %d: %w", rd.Snapshot.Metadata.Index, err)
		}
		// The snapshot replaces the whole log.
		if err := b.DeleteRange(groupPrefix('e', g.id), groupPrefix('e', g.id+1), nil); err != nil {
			return false, err
		}
		if err := setSnapshot(b, g.id, rd.Snapshot.Metadata, 0); err != nil {
			return false, err
		}
		sync = true
	}
	if err := appendEntries(b, g.id, rd.Entries, rd.HardState, g.lastIndex); err != nil {
		return false, err
	}
	if g.sendsEarly(rd) {
		g.send(rd.Messages)
		rd.Messages = nil
	}
	return sync || rd.MustSync, nil
}

// takeDurableCommitted removes from rd and returns the leading committed
// entries that this node's log already held durably before this round
// (index <= the last index persisted by earlier rounds), which may be
// applied before the round's own writes are synced. The others (a
// single-voter group commits an entry in the round that appends it) stay
// for afterPersist. Nothing is taken when the Ready installs a snapshot.
func (g *Group) takeDurableCommitted(rd *raft.Ready) []raftpb.Entry {
	if !raft.IsEmptySnap(rd.Snapshot) {
		return nil
	}
	n := 0
	for n < len(rd.CommittedEntries) && rd.CommittedEntries[n].Index <= g.lastIndex {
		n++
	}
	early := rd.CommittedEntries[:n:n]
	rd.CommittedEntries = rd.CommittedEntries[n:]
	return early
}

// afterPersist handles the rest of a Ready once its entries are durable:
// the in-memory log, the remaining messages, finished reads, committed
// entries.
func (g *Group) afterPersist(rd *raft.Ready) error {
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := g.storage.ApplySnapshot(rd.Snapshot); err != nil {
			return err
		}
		g.confState = rd.Snapshot.Metadata.ConfState
		g.snapIndex = rd.Snapshot.Metadata.Index
		g.lastIndex = rd.Snapshot.Metadata.Index
		g.applied.Store(rd.Snapshot.Metadata.Index)
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		if err := g.storage.SetHardState(rd.HardState); err != nil {
			return err
		}
	}
	if len(rd.Entries) > 0 {
		if err := g.storage.Append(rd.Entries); err != nil {
			return err
		}
		g.lastIndex = rd.Entries[len(rd.Entries)-1].Index
	}
	g.send(rd.Messages)
	for _, rs := range rd.ReadStates {
		if len(rs.RequestCtx) == 8 {
			g.finishRead(binary.BigEndian.Uint64(rs.RequestCtx), rs.Index, nil)
		}
	}
	return g.applyEntries(rd.CommittedEntries)
}

func (g *Group) send(msgs []raftpb.Message) {
	if len(msgs) == 0 {
		return
	}
	out := msgs[:0] // the Ready's slice is ours: filter it in place
	for _, m := range msgs {
		if m.Type == raftpb.MsgSnap {
			go g.sendSnapshot(m)
			continue
		}
		out = append(out, m)
	}
	if len(out) > 0 {
		g.host.transport.Send(g.id, out)
	}
}

// sendSnapshot fills in the state machine's data and ships one snapshot.
func (g *Group) sendSnapshot(m raftpb.Message) {
	status := raft.SnapshotFinish
	data, err := g.sm.SnapshotData()
	if err == nil {
		m.Snapshot.Data = data
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		err = g.host.transport.SendSnapshot(ctx, g.id, m)
		cancel()
	}
	if err != nil {
		g.log.Warn("snapshot to a follower failed", "to", m.To, "err", err)
		status = raft.SnapshotFailure
	}
	_ = g.withNode(func(rn *raft.RawNode) error { rn.ReportSnapshot(m.To, status); return nil })
}

func (g *Group) applyEntries(entries []raftpb.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	for _, e := range entries {
		switch e.Type {
		case raftpb.EntryNormal:
			if len(e.Data) == 0 || e.Index <= g.sm.Applied() {
				break
			}
			id, res := g.sm.Apply(e.Index, e.Data)
			if id != 0 {
				g.waitMu.Lock()
				ch := g.waiters[id]
				g.waitMu.Unlock()
				if ch != nil {
					ch <- res
				}
			}
		case raftpb.EntryConfChange:
			var cc raftpb.ConfChange
			if err := cc.Unmarshal(e.Data); err != nil {
				return fmt.Errorf("decode membership change at %d: %w", e.Index, err)
			}
			g.confState = *g.applyConfChange(cc)
			g.host.confChanged(g.id, cc)
		case raftpb.EntryConfChangeV2:
			var cc raftpb.ConfChangeV2
			if err := cc.Unmarshal(e.Data); err != nil {
				return fmt.Errorf("decode membership change at %d: %w", e.Index, err)
			}
			g.confState = *g.applyConfChange(cc)
		}
		g.applied.Store(e.Index)
	}
	g.waitMu.Lock()
	close(g.signal)
	g.signal = make(chan struct{})
	g.waitMu.Unlock()
	return nil
}

// failWaiters tells every waiting proposer that leadership was lost.
func (g *Group) failWaiters() {
	g.waitMu.Lock()
	defer g.waitMu.Unlock()
	for id, ch := range g.waiters {
		select {
		case ch <- leaderLost{errors.New("leadership lost")}:
		default:
		}
		delete(g.waiters, id)
	}
}

// maybeCompact snapshots and truncates the log once enough entries were
// applied since the last compaction point.
func (g *Group) maybeCompact() {
	applied := g.applied.Load()
	if applied < g.snapIndex+g.cfg.SnapshotEvery {
		return
	}
	if err := g.sm.Sync(); err != nil {
		g.log.Warn("sync state machine before compaction", "err", err)
		return
	}
	snap, err := g.storage.CreateSnapshot(applied, &g.confState, nil)
	if err != nil {
		g.log.Warn("create snapshot", "err", err)
		return
	}
	compact := uint64(0)
	if applied > g.cfg.KeepEntries {
		compact = applied - g.cfg.KeepEntries
	}
	b := g.host.logs.db.NewBatch()
	defer b.Close()
	if err := setSnapshot(b, g.id, snap.Metadata, compact); err != nil {
		g.log.Warn("record compaction", "err", err)
		return
	}
	if err := b.Commit(pebble.Sync); err != nil {
		g.log.Warn("record compaction", "err", err)
		return
	}
	if compact > 0 {
		if err := g.storage.Compact(compact); err != nil && !errors.Is(err, raft.ErrCompacted) {
			g.log.Warn("compact log", "err", err)
		}
	}
	g.snapIndex = applied
}

func (g *Group) applyConfChange(cc raftpb.ConfChangeI) *raftpb.ConfState {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.rn.ApplyConfChange(cc)
}

// Campaign asks this replica to stand for election now (used when a
// single-node group starts, to skip the election timeout).
func (g *Group) Campaign(ctx context.Context) error {
	return g.withNode(func(rn *raft.RawNode) error { return rn.Campaign() })
}

// TransferLeadership asks the leader to hand over to node to.
func (g *Group) TransferLeadership(ctx context.Context, to uint64) {
	g.voidLease()
	_ = g.withNode(func(rn *raft.RawNode) error { rn.TransferLeader(to); return nil })
}

// step hands Raft a message from another node. Local message types and
// answers from nodes no longer in the group are dropped, as raft.Node does.
func (g *Group) step(m raftpb.Message) error {
	err := g.withNode(func(rn *raft.RawNode) error { return rn.Step(m) })
	if errors.Is(err, raft.ErrStepLocalMsg) || errors.Is(err, raft.ErrStepPeerNotFound) {
		return nil
	}
	return err
}

// tick advances the group's logical clock by one tick.
func (g *Group) tick() {
	_ = g.withNode(func(rn *raft.RawNode) error { rn.Tick(); return nil })
}

// reportUnreachable tells Raft a message to node could not be sent.
func (g *Group) reportUnreachable(node uint64) {
	_ = g.withNode(func(rn *raft.RawNode) error { rn.ReportUnreachable(node); return nil })
}
