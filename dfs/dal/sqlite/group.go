package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/dal/internal/sqlcore"
)

// DefaultMaxGroup is Options.MaxGroup's default: the most Tx functions that
// share one SQLite transaction and its commit.
const DefaultMaxGroup = 64

// errClosed is returned by Tx calls that the store's Close stopped before
// their function ran.
var errClosed = errors.New("sqlite: store is closed")

// committer runs the store's write transactions with group commit.
//
// Every Tx call queues a request. One goroutine, started by Open and stopped
// by Close, takes whatever is queued when it is free (at most max requests;
// it never waits for more to arrive, so a lone caller gets no added
// latency), begins one transaction (BEGIN IMMEDIATE) and hands the
// connection to the requests one at a time: SAVEPOINT, the request's
// function, then RELEASE, or ROLLBACK TO and RELEASE when the function
// failed. One COMMIT (one fsync) then makes the group's work durable, and
// only then does each caller learn its outcome.
//
// The function runs in its caller's goroutine, not the committer's: the
// committer grants the turn through a channel and waits until the caller
// reports that the function has ended. So a panic (or runtime.Goexit, as
// t.Fatal calls) unwinds the caller's goroutine as it did before grouping,
// with its own stack, while a deferred report tells the committer to roll
// the savepoint back and go on with the rest of the group. A long-lived
// committer rather than a leader-follower scheme keeps the queue, the group
// transaction and shutdown in one place: no caller has to hand leadership
// over on its way out, and Close stops exactly one goroutine.
//
// The committer also caches the writer's prepared statements (parsing and
// planning SQL is most of a small transaction's CPU time, and the writer's
// time is what bounds a group): a query a group runs unprepared is prepared
// on the writer pool's one connection after the group, while that
// connection is idle, and later groups run it through Tx.StmtContext, which
// reuses the statement prepared on that connection.
//
// Locking: mu guards queue and closed only; it is never held while waiting
// on a channel or running SQL, and no other lock is taken under it. stmts
// and unprepared need no lock: they are used by the committer between
// groups and by the one function holding the turn, and the channel
// operations that pass the turn order those uses.
type committer struct {
	s   *Store
	max int

	mu     sync.Mutex
	queue  []*request
	closed bool

	closing atomic.Bool   // set by Close: requests not yet run are refused
	wake    chan struct{} // capacity 1: something was queued
	quit    chan struct{} // closed by Close
	stopped chan struct{} // closed when the goroutine has ended
	once    sync.Once

	commits   atomic.Uint64
	committed atomic.Uint64

	stmts      map[string]*sql.Stmt // prepared on the writer; nil: not preparable
	unprepared map[string]bool      // queries to prepare after the group
}

// Request states: a queued request is either granted its turn by the
// committer or settled without running (refused by the committer, or
// abandoned by its caller); the compare-and-swap from reqQueued decides
// which side wins.
const (
	reqQueued int32 = iota
	reqGranted
	reqSettled
)

// request is one Tx call's current attempt.
type request struct {
	ctx   context.Context
	state atomic.Int32
	turn  chan dal.Tx  // capacity 1: the committer grants the turn
	ran   chan ranInfo // capacity 1: the caller reports its function's end
	done  chan error   // capacity 1: the outcome
}

// ranInfo is how a granted turn ended.
type ranInfo struct {
	run     bool  // false: the caller's context was done, the function did not run
	aborted bool  // the function panicked or exited its goroutine
	err     error // the function's error
}

// newCommitter starts the committer of s, grouping up to maxGroup requests.
func newCommitter(s *Store, maxGroup int) *committer {
	c := &committer{
		s: s, max: maxGroup,
		stmts:      map[string]*sql.Stmt{},
		unprepared: map[string]bool{},
		wake:       make(chan struct{}, 1),
		quit:       make(chan struct{}),
		stopped:    make(chan struct{}),
	}
	go c.loop()
	return c
}

// do runs one attempt of fn in the next group and returns its outcome.
func (c *committer) do(ctx context.Context, fn func(dal.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{ctx: ctx, turn: make(chan dal.Tx, 1), ran: make(chan ranInfo, 1), done: make(chan error, 1)}
	if err := c.enqueue(r); err != nil {
		return err
	}
	var tx dal.Tx
	select {
	case tx = <-r.turn:
	case err := <-r.done:
		return err
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqQueued, reqSettled) {
			return ctx.Err()
		}
		// The committer got there first and is about to grant or refuse.
		select {
		case tx = <-r.turn:
		case err := <-r.done:
			return err
		}
	}
	// The committer now waits on r.ran, whatever happens here.
	if err := ctx.Err(); err != nil {
		r.ran <- ranInfo{}
		return err
	}
	finished := false
	defer func() {
		if !finished { // fn panicked or called runtime.Goexit: let that go on
			r.ran <- ranInfo{run: true, aborted: true}
		}
	}()
	err := fn(tx)
	finished = true
	r.ran <- ranInfo{run: true, err: err}
	// Once run, the function shares the group's fate: wait for the commit
	// whatever ctx does, so that a committed function never reports failure.
	return <-r.done
}

func (c *committer) enqueue(r *request) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	c.queue = append(c.queue, r)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// take removes up to c.max requests from the front of the queue.
func (c *committer) take() []*request {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(c.queue), c.max)
	if n == 0 {
		return nil
	}
	group := make([]*request, n)
	copy(group, c.queue)
	rest := copy(c.queue, c.queue[n:])
	clear(c.queue[rest:])
	c.queue = c.queue[:rest]
	return group
}

// refuse settles a request that has not run with err, unless its caller
// has abandoned it.
func refuse(r *request, err error) {
	if r.state.CompareAndSwap(reqQueued, reqSettled) {
		r.done <- err
	}
}

func (c *committer) loop() {
	defer close(c.stopped)
	for {
		select {
		case <-c.wake:
		case <-c.quit:
			return
		}
		for group := c.take(); len(group) > 0; group = c.take() {
			c.runGroup(group)
			c.prepare()
		}
	}
}

// close refuses the queued requests, lets the group in progress finish,
// stops the goroutine and closes the writer's statements. Safe to call more
// than once (a later call waits for the first to end).
func (c *committer) close() {
	c.once.Do(func() {
		c.closing.Store(true)
		c.mu.Lock()
		c.closed = true
		pending := c.queue
		c.queue = nil
		c.mu.Unlock()
		for _, r := range pending {
			refuse(r, errClosed)
		}
		close(c.quit)
		<-c.stopped
		for q, st := range c.stmts {
			if st != nil {
				_ = st.Close()
			}
			delete(c.stmts, q)
		}
	})
}

// prepare prepares the queries the last group ran unprepared; the writer's
// connection is idle between groups.
func (c *committer) prepare() {
	for q := range c.unprepared {
		delete(c.unprepared, q)
		st, err := c.s.writer.PrepareContext(context.Background(), q)
		if err != nil {
			st = nil // keep running it unprepared (its error shows there)
		}
		c.stmts[q] = st
	}
}

// stmt returns q's prepared statement bound to tx, or nil (then noting q
// for preparation) when there is none.
func (c *committer) stmt(ctx context.Context, tx *sql.Tx, q string) *sql.Stmt {
	st, ok := c.stmts[q]
	if !ok && len(c.stmts)+len(c.unprepared) < maxStmts {
		c.unprepared[q] = true
	}
	if st == nil {
		return nil
	}
	return tx.StmtContext(ctx, st)
}

// member is a request of the group in progress whose function ran to its
// end (not panicked), with its error.
type member struct {
	r   *request
	err error
}

// Savepoint statements around each function of a group.
const (
	spBegin    = "SAVEPOINT kura_op"
	spRelease  = "RELEASE kura_op"
	spRollback = "ROLLBACK TO kura_op"
)

// runGroup runs the functions of group in one transaction and commits it.
func (c *committer) runGroup(group []*request) {
	// The group's own statements run without a deadline: a caller's context
	// must not interrupt them (SQLite rolls a whole transaction back when an
	// interrupted statement writes), and Close waits for the group anyway.
	bg := context.Background()
	tx, err := c.s.writer.BeginTx(bg, nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		err = fmt.Errorf("sqlite: begin transaction: %w", err)
		for _, r := range group {
			refuse(r, err)
		}
		return
	}
	var ran []member
	succeeded := 0
	for i, r := range group {
		if c.closing.Load() {
			refuse(r, errClosed)
			continue
		}
		if err := r.ctx.Err(); err != nil {
			refuse(r, err)
			continue
		}
		if !r.state.CompareAndSwap(reqQueued, reqGranted) {
			continue // abandoned by its caller
		}
		if _, err := tx.ExecContext(bg, spBegin); err != nil {
			// r's caller waits for its turn or its outcome: give it the latter.
			c.abort(tx, append(ran, member{r: r}), group[i+1:], fmt.Errorf("sqlite: savepoint: %w", err))
			return
		}
		gc := &groupConn{tx: tx, c: c}
		r.turn <- sqlcore.NewTx(gc, c.s.d)
		info := <-r.ran
		if gc.broken != nil {
			// A statement failed in a way that may have rolled the whole
			// transaction back: the group is lost. The culprit gets its
			// error; the others run again.
			if info.run && !info.aborted {
				r.done <- cmp.Or(info.err, gc.broken)
			}
			c.abort(tx, ran, group[i+1:], gc.broken)
			return
		}
		if !info.run || (info.err == nil && !info.aborted) {
			_, err = tx.ExecContext(bg, spRelease)
		} else if _, err = tx.ExecContext(bg, spRollback); err == nil {
			_, err = tx.ExecContext(bg, spRelease)
		}
		if err != nil {
			// The transaction is gone: the function's own error (which
			// SQLite answered by rolling it back) is its caller's outcome;
			// a function that succeeded runs again with the others.
			err = fmt.Errorf("sqlite: end savepoint: %w", err)
			switch {
			case info.run && !info.aborted && info.err != nil:
				r.done <- info.err
			case info.run && !info.aborted:
				ran = append(ran, member{r: r})
			}
			c.abort(tx, ran, group[i+1:], err)
			return
		}
		if info.run && !info.aborted {
			ran = append(ran, member{r: r, err: info.err})
			if info.err == nil {
				succeeded++
			}
		}
	}
	if succeeded == 0 {
		// Nothing to keep: every failed function saw only committed data
		// (its predecessors' writes were rolled back), so its error stands.
		_ = tx.Rollback()
		for _, m := range ran {
			m.r.done <- m.err
		}
		return
	}
	if err := tx.Commit(); err != nil {
		// As one transaction would: everyone retries (transient) or fails.
		// That includes the functions that failed: they may have seen
		// writes that were never committed.
		err = fmt.Errorf("sqlite: commit: %w", err)
		for _, m := range ran {
			m.r.done <- err
		}
		return
	}
	c.commits.Add(1)
	c.committed.Add(uint64(succeeded))
	for _, m := range ran {
		m.r.done <- m.err
	}
}

// abort rolls the group transaction back after cause broke it: the
// functions that ran and the requests still waiting are told to run again
// (a transient error, retried by Tx's policy).
func (c *committer) abort(tx *sql.Tx, ran []member, waiting []*request, cause error) {
	_ = tx.Rollback()
	err := dal.MarkTransient(fmt.Errorf("sqlite: group transaction aborted: %w", cause))
	for _, m := range ran {
		m.r.done <- err
	}
	for _, r := range waiting {
		refuse(r, err)
	}
}

// groupConn is the sqlcore.Conn of one function of a group. Its statements
// ignore the caller's cancellation once started (an interrupted write would
// roll back the whole group; the context is checked before each statement
// instead), and an error after which SQLite may have rolled the transaction
// back marks the group broken: later statements of the function fail
// rather than run outside any transaction.
type groupConn struct {
	tx     *sql.Tx
	c      *committer
	broken error
}

// breaksTx reports whether err may have ended the transaction it happened
// in (SQLite rolls back on these, see "Response To Errors Within A
// Transaction" in its documentation) or left the connection unusable.
func breaksTx(err error) bool {
	if errors.Is(err, sql.ErrTxDone) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, driver.ErrBadConn) {
		return true
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
		sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_INTERRUPT, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return true
	}
	return false
}

// before checks the connection and the context before a statement.
func (c *groupConn) before(ctx context.Context) error {
	if c.broken != nil {
		return fmt.Errorf("sqlite: transaction aborted by an earlier error: %w", c.broken)
	}
	return ctx.Err()
}

// note records a statement's error.
func (c *groupConn) note(err error) error {
	if err != nil && c.broken == nil && breaksTx(err) {
		c.broken = err
	}
	return err
}

func (c *groupConn) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	if err := c.before(ctx); err != nil {
		return 0, err
	}
	ctx = context.WithoutCancel(ctx)
	var r sql.Result
	var err error
	if st := c.c.stmt(ctx, c.tx, q); st != nil {
		r, err = st.ExecContext(ctx, args...)
	} else {
		r, err = c.tx.ExecContext(ctx, q, args...)
	}
	if err != nil {
		return 0, c.note(err)
	}
	n, err := r.RowsAffected()
	return n, c.note(err)
}

func (c *groupConn) Query(ctx context.Context, q string, args ...any) (sqlcore.Rows, error) {
	if err := c.before(ctx); err != nil {
		return nil, err
	}
	ctx = context.WithoutCancel(ctx)
	var r *sql.Rows
	var err error
	if st := c.c.stmt(ctx, c.tx, q); st != nil {
		r, err = st.QueryContext(ctx, args...)
	} else {
		r, err = c.tx.QueryContext(ctx, q, args...)
	}
	if err != nil {
		return nil, c.note(err)
	}
	return groupRows{rows: rows{r}, c: c}, nil
}

func (c *groupConn) QueryRow(ctx context.Context, q string, args ...any) sqlcore.Row {
	if err := c.before(ctx); err != nil {
		return errRow{err}
	}
	ctx = context.WithoutCancel(ctx)
	if st := c.c.stmt(ctx, c.tx, q); st != nil {
		return groupRow{row: st.QueryRowContext(ctx, args...), c: c}
	}
	return groupRow{row: c.tx.QueryRowContext(ctx, q, args...), c: c}
}

// groupRows notes the errors of a group function's result set.
type groupRows struct {
	rows
	c *groupConn
}

func (r groupRows) Scan(dest ...any) error { return r.c.note(r.rows.Scan(dest...)) }
func (r groupRows) Err() error             { return r.c.note(r.rows.Err()) }

// groupRow notes the error of a group function's single-row query.
type groupRow struct {
	row *sql.Row
	c   *groupConn
}

func (r groupRow) Scan(dest ...any) error { return r.c.note(r.row.Scan(dest...)) }

// errRow is a row whose query could not run.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
