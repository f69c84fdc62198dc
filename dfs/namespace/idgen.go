package namespace

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/kura-dev/kura/dfs/dal"
)

// DefaultIDBatch is the number of ids an IDGen reserves at a time.
const DefaultIDBatch = 1000

// IDGen hands out ids of one counter of the variables table (dal.VarInodeID,
// dal.VarBlockID, dal.VarGenerationStamp), HopsFS-style: it reserves a range
// of Batch ids with dal.Tx.ReserveIDs in a short transaction of its own and
// hands them out from memory; when fewer than half of the range remain it
// reserves the next range in the background. Ids are unique across every
// IDGen of every process on the database, increasing per IDGen, but not
// dense: ranges left unused when a process stops are skipped.
//
// It is safe for concurrent use. Close stops a background reservation.
type IDGen struct {
	store     dal.Store
	name      string
	batch     int64
	threshold int64

	ctx    context.Context // for background reservations; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	cur      dal.IDRange   // ids still to hand out: cur.First..cur.Last (empty when First > Last)
	next     *dal.IDRange  // a prefetched range
	fetching chan struct{} // non-nil while a reservation runs; closed when it ends
	fetchErr error         // the last failed reservation's error, for a waiting Next
}

// NewIDGen returns a generator for counter name reserving batch ids at a time
// (batch <= 0: DefaultIDBatch). It reserves nothing until first used.
func NewIDGen(store dal.Store, name string, batch int64) *IDGen {
	if batch <= 0 {
		batch = DefaultIDBatch
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &IDGen{
		store: store, name: name, batch: batch, threshold: (batch + 1) / 2,
		ctx: ctx, cancel: cancel,
		cur: dal.IDRange{First: 1, Last: 0},
	}
}

// Next returns the next id, reserving a range first when none is in memory.
func (g *IDGen) Next(ctx context.Context) (int64, error) {
	for {
		g.mu.Lock()
		if id, ok := g.takeLocked(); ok {
			g.mu.Unlock()
			return id, nil
		}
		if err := g.fetchErr; err != nil {
			g.fetchErr = nil
			g.mu.Unlock()
			return 0, err
		}
		ch := g.startFetchLocked()
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, fmt.Errorf("next %s id: %w", g.name, ctx.Err())
		}
	}
}

// TryNext returns the next id if one is in memory, without I/O; it is what
// a namespace transaction calls (a reservation inside another transaction
// could wait for that very transaction on SQLite's single writer). When it
// returns false, call Fill outside the transaction and try again.
func (g *IDGen) TryNext() (int64, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.takeLocked()
}

// Fill waits until ids are in memory, reserving a range when needed.
func (g *IDGen) Fill(ctx context.Context) error {
	for {
		g.mu.Lock()
		if g.cur.First <= g.cur.Last || g.next != nil {
			g.mu.Unlock()
			return nil
		}
		if err := g.fetchErr; err != nil {
			g.fetchErr = nil
			g.mu.Unlock()
			return err
		}
		ch := g.startFetchLocked()
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("reserve %s ids: %w", g.name, ctx.Err())
		}
	}
}

// Close cancels a background reservation and waits for it to end. Ids
// already reserved but not handed out are lost (the counter has moved past
// them); that is harmless.
func (g *IDGen) Close() {
	g.cancel()
	g.wg.Wait()
}

// takeLocked hands out an id from memory and starts a prefetch when the
// current range runs below the threshold.
func (g *IDGen) takeLocked() (int64, bool) {
	if g.cur.First > g.cur.Last && g.next != nil {
		g.cur, g.next = *g.next, nil
	}
	if g.cur.First > g.cur.Last {
		return 0, false
	}
	id := g.cur.First
	g.cur.First++
	if g.cur.Len() < g.threshold && g.next == nil && g.fetching == nil && g.ctx.Err() == nil {
		g.startFetchLocked()
	}
	return id, true
}

// startFetchLocked starts a background reservation unless one runs, and
// returns the channel closed when it ends.
func (g *IDGen) startFetchLocked() chan struct{} {
	if g.fetching != nil {
		return g.fetching
	}
	ch := make(chan struct{})
	g.fetching = ch
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		var r dal.IDRange
		err := g.store.Tx(g.ctx, func(tx dal.Tx) error {
			var err error
			r, err = tx.ReserveIDs(g.ctx, g.name, g.batch)
			return err
		})
		g.mu.Lock()
		if err != nil {
			if errors.Is(err, context.Canceled) && g.ctx.Err() != nil {
				err = fmt.Errorf("reserve %s ids: id generator closed", g.name)
			}
			g.fetchErr = fmt.Errorf("reserve %d %s ids: %w", g.batch, g.name, err)
		} else {
			g.next = &r
		}
		g.fetching = nil
		close(ch)
		g.mu.Unlock()
	}()
	return ch
}

// needIDsError is returned from inside a transaction when an IDGen has no
// ids in memory; the transaction wrapper fills the generator and runs the
// transaction again.
type needIDsError struct{ g *IDGen }

func (e *needIDsError) Error() string { return "no " + e.g.name + " ids in memory" }

// take returns the next id of g from memory, or a *needIDsError.
func take(g *IDGen) (int64, error) {
	if id, ok := g.TryNext(); ok {
		return id, nil
	}
	return 0, &needIDsError{g: g}
}
