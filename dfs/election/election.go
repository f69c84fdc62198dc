// Package election elects one leader among the namenodes sharing a
// metadata database, as HopsFS does: through the database itself, with no
// coordination service and no clock shared between machines.
//
// Every namenode taking part has a row in le_descriptors (dal.Namenode): an
// id handed out once from the namenode_id counter, and a counter it
// advances every round (Config.Period). A round is one transaction that
// first advances the election_round counter (so rounds serialise on that
// row), reads every row and writes the namenode's own. Each namenode keeps,
// for every other row, the local (monotonic) time it last saw that row's
// counter move: a row whose counter has not moved for Config.DeadAfter is a
// dead namenode's, and after twice that it is deleted. The leader is the
// live namenode with the smallest id. Ids only grow, so a namenode that
// joins never takes the lead from a live one, and the lead moves only when
// the leader stops advancing its counter (it died, or stopped: Close
// deletes its row at once, handing over in one round).
//
// A namenode that cannot finish a round (the database is unreachable)
// does not count itself leader once DeadAfter/2 has passed since the start
// of its last finished round. The others see its counter move only after
// that start, and take it for dead only DeadAfter after they saw it move,
// so two namenodes never both count themselves leader (as long as their
// clocks run at roughly the same rate: no clock is compared across
// machines). What the leader runs (lease recovery,
// re-replication, purging detached subtrees) is, like every namespace
// change, done in row-locked transactions, so such an overlap costs
// duplicate work, never a wrong namespace. A namenode whose row was deleted
// by the others (it was taken for dead: paused for longer than 2×DeadAfter)
// registers again under a new id, behind every live namenode.
package election

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/kura-dev/kura/dfs/dal"
)

// DefaultPeriod is how often a namenode runs an election round.
const DefaultPeriod = time.Second

// DefaultDeadAfter is how long a namenode's counter may stand still before
// the others take it for dead.
const DefaultDeadAfter = 5 * time.Second

// Config configures an Elector.
type Config struct {
	// Period is the time between rounds (DefaultPeriod when 0).
	Period time.Duration
	// DeadAfter is how long another namenode's counter may stand still
	// before it is taken for dead (DefaultDeadAfter when 0); it must be at
	// least twice Period.
	DeadAfter time.Duration
	// RPCAddress and HTTPAddress are this namenode's addresses, recorded in
	// its row for the others (and for /status).
	RPCAddress, HTTPAddress string
	// OnChange, when set, is called (from the election goroutine) after a
	// round that changed the leader or this namenode's leadership.
	OnChange func(State)
	// Logger receives the elector's logs (nil: discarded).
	Logger *slog.Logger
}

// Member is a namenode as one round saw it.
type Member struct {
	// ID is the namenode's id.
	ID int64 `json:"id"`
	// RPCAddress and HTTPAddress are its addresses.
	RPCAddress  string `json:"rpcAddr"`
	HTTPAddress string `json:"httpAddr"`
	// Alive reports whether its counter moved within DeadAfter.
	Alive bool `json:"alive"`
}

// State is the outcome of the last finished round.
type State struct {
	// Self is this namenode's id (0 before the first round).
	Self int64 `json:"id"`
	// Leader is the leader's id (0 when none is known yet).
	Leader int64 `json:"leader"`
	// IsLeader reports whether this namenode leads (and its last round is
	// recent enough for it to say so).
	IsLeader bool `json:"isLeader"`
	// Members are the namenodes in id order, this one included.
	Members []Member `json:"namenodes"`
	// Round is the number of the last finished round (election_round).
	Round int64 `json:"round"`
}

// seen is what this namenode knows of another's row.
type seen struct {
	counter int64
	moved   time.Time // local time the counter was last seen to move
}

// Elector takes part in the election for one namenode. Its methods are
// safe for concurrent use.
type Elector struct {
	store dal.Store
	cfg   Config
	log   *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}

	// mu guards everything below (the election goroutine writes, readers
	// read); it is never held across a database call.
	mu       sync.Mutex
	self     int64
	counter  int64
	others   map[int64]*seen
	state    State
	lastDone time.Time // local time the last finished round started
	closed   bool
}

// Start registers this namenode (a new id and row), runs a first round and
// then one every cfg.Period until Close. ctx bounds only the start.
func Start(ctx context.Context, store dal.Store, cfg Config) (*Elector, error) {
	if cfg.Period <= 0 {
		cfg.Period = DefaultPeriod
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = DefaultDeadAfter
	}
	if cfg.DeadAfter < 2*cfg.Period {
		return nil, fmt.Errorf("election: dead-after %v must be at least twice the period %v", cfg.DeadAfter, cfg.Period)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Elector{store: store, cfg: cfg, log: log, others: map[int64]*seen{}, done: make(chan struct{})}
	if err := e.register(ctx); err != nil {
		return nil, err
	}
	if err := e.round(ctx); err != nil {
		return nil, err
	}
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.cancel = cancel
	go e.loop(loopCtx)
	return e, nil
}

// register takes a new id and writes this namenode's row.
func (e *Elector) register(ctx context.Context) error {
	var id int64
	err := e.store.Tx(ctx, func(tx dal.Tx) error {
		r, err := tx.ReserveIDs(ctx, dal.VarNamenodeID, 1)
		if err != nil {
			return err
		}
		id = r.First
		return tx.PutNamenode(ctx, &dal.Namenode{ID: id, Counter: 1, RPCAddress: e.cfg.RPCAddress, HTTPAddress: e.cfg.HTTPAddress})
	})
	if err != nil {
		return fmt.Errorf("election: register namenode: %w", err)
	}
	e.mu.Lock()
	e.self, e.counter = id, 1
	e.others = map[int64]*seen{}
	e.mu.Unlock()
	e.log.Info("joined leader election", "id", id)
	return nil
}

// loop runs rounds until ctx is done.
func (e *Elector) loop(ctx context.Context) {
	defer close(e.done)
	for {
		// A little jitter keeps namenodes started together from running
		// their rounds in lockstep.
		d := e.cfg.Period - e.cfg.Period/10 + rand.N(e.cfg.Period/5+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		if err := e.round(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("election round failed", "err", err)
		}
	}
}

// errEvicted is returned by a round that found this namenode's row gone.
var errEvicted = errors.New("this namenode's row was deleted: taken for dead")

// round runs one election round and updates the state.
func (e *Elector) round(ctx context.Context) error {
	err := e.roundOnce(ctx)
	if errors.Is(err, errEvicted) {
		e.log.Warn("taken for dead by the other namenodes: joining again under a new id", "old_id", e.ID())
		if err := e.register(ctx); err != nil {
			return err
		}
		err = e.roundOnce(ctx)
	}
	return err
}

// roundOnce is one round's transaction and the state it yields.
func (e *Elector) roundOnce(ctx context.Context) error {
	e.mu.Lock()
	self, counter := e.self, e.counter
	e.mu.Unlock()
	// The round's leadership is counted from before its transaction: the
	// counter it writes moves, for the others, only after this instant, so
	// their DeadAfter runs out after this namenode's DeadAfter/2.
	started := time.Now()
	var rows []*dal.Namenode
	var round int64
	var dead []int64
	err := e.store.Tx(ctx, func(tx dal.Tx) error {
		r, err := tx.ReserveIDs(ctx, dal.VarElectionRound, 1)
		if err != nil {
			return err
		}
		round = r.First
		rows, err = tx.ListNamenodes(ctx)
		if err != nil {
			return err
		}
		found := false
		for _, n := range rows {
			if n.ID == self {
				found = true
			}
		}
		if !found {
			return errEvicted
		}
		dead = e.evictable(rows, time.Now())
		for _, id := range dead {
			if err := tx.DeleteNamenode(ctx, id); err != nil && !errors.Is(err, dal.ErrNotFound) {
				return err
			}
		}
		return tx.PutNamenode(ctx, &dal.Namenode{ID: self, Counter: counter + 1,
			RPCAddress: e.cfg.RPCAddress, HTTPAddress: e.cfg.HTTPAddress})
	})
	if err != nil {
		if errors.Is(err, errEvicted) {
			return err
		}
		return fmt.Errorf("election: round: %w", err)
	}
	for _, id := range dead {
		e.log.Info("removed a dead namenode from the election", "id", id)
	}
	e.apply(self, counter+1, round, rows, dead, started, time.Now())
	return nil
}

// evictable returns the ids of rows whose counters stood still for
// 2×DeadAfter as of now.
func (e *Elector) evictable(rows []*dal.Namenode, now time.Time) []int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []int64
	for _, n := range rows {
		s := e.others[n.ID]
		if n.ID != e.self && s != nil && s.counter == n.Counter && now.Sub(s.moved) > 2*e.cfg.DeadAfter {
			out = append(out, n.ID)
		}
	}
	return out
}

// apply records a finished round: the counters seen, who is alive, who
// leads.
func (e *Elector) apply(self, counter, round int64, rows []*dal.Namenode, dead []int64, started, now time.Time) {
	e.mu.Lock()
	if e.self != self { // re-registered meanwhile (cannot happen: one goroutine runs rounds)
		e.mu.Unlock()
		return
	}
	e.counter = counter
	e.lastDone = started
	gone := map[int64]bool{}
	for _, id := range dead {
		gone[id] = true
	}
	present := map[int64]bool{}
	st := State{Self: self, Round: round}
	for _, n := range rows {
		if gone[n.ID] {
			continue
		}
		present[n.ID] = true
		alive := true
		if n.ID != self {
			s := e.others[n.ID]
			switch {
			case s == nil: // first sight: alive until its counter stands still
				e.others[n.ID] = &seen{counter: n.Counter, moved: now}
			case s.counter != n.Counter:
				s.counter, s.moved = n.Counter, now
			default:
				alive = now.Sub(s.moved) <= e.cfg.DeadAfter
			}
		}
		if alive && st.Leader == 0 {
			st.Leader = n.ID // rows are in id order
		}
		st.Members = append(st.Members, Member{ID: n.ID, RPCAddress: n.RPCAddress, HTTPAddress: n.HTTPAddress, Alive: alive})
	}
	for id := range e.others {
		if !present[id] {
			delete(e.others, id)
		}
	}
	st.IsLeader = st.Leader == self
	old := e.state
	e.state = st
	changed := old.Leader != st.Leader || old.IsLeader != st.IsLeader
	onChange := e.cfg.OnChange
	e.mu.Unlock()
	if changed {
		if st.IsLeader {
			e.log.Info("this namenode is the leader", "id", self, "round", round)
		} else {
			e.log.Info("leader elected", "leader", st.Leader, "id", self, "round", round)
		}
		if onChange != nil {
			onChange(st)
		}
	}
}

// ID returns this namenode's election id.
func (e *Elector) ID() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.self
}

// IsLeader reports whether this namenode leads: its last round chose it,
// and that round started less than DeadAfter/2 ago.
func (e *Elector) IsLeader() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.isLeaderLocked(time.Now())
}

func (e *Elector) isLeaderLocked(now time.Time) bool {
	return !e.closed && e.state.IsLeader && now.Sub(e.lastDone) < e.cfg.DeadAfter/2
}

// State returns the outcome of the last finished round (IsLeader as
// IsLeader reports it now).
func (e *Elector) State() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.state
	st.Members = append([]Member(nil), st.Members...)
	st.IsLeader = e.isLeaderLocked(time.Now())
	return st
}

// Close stops the rounds and deletes this namenode's row, so that the
// others hand the lead over at their next round instead of after DeadAfter.
// ctx bounds the deletion.
func (e *Elector) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	<-e.done
	id := e.ID()
	err := e.store.Tx(ctx, func(tx dal.Tx) error {
		err := tx.DeleteNamenode(ctx, id)
		if errors.Is(err, dal.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("election: leave (namenode %d): %w", id, err)
	}
	return nil
}
