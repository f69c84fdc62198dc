// Package sqlite is dfs's embedded metadata store: the dal.Store
// implementation on SQLite (modernc.org/sqlite, pure Go, no cgo), the default
// for a single namenode.
//
// The database runs in WAL mode with foreign keys enforced and a busy
// timeout. The store keeps two connection pools on the file:
//
//   - one writer connection (SetMaxOpenConns(1)) whose transactions begin
//     with BEGIN IMMEDIATE. SQLite admits one writer at a time whatever the
//     number of connections; with several, concurrent writers would each
//     take the write lock in turn by polling (the busy handler sleeps and
//     retries, unfairly, and fails with SQLITE_BUSY after the timeout), and a
//     deferred transaction that reads before it writes could fail to upgrade
//     its lock at all. One connection queues writers in Go instead, in
//     order and without polling, and BEGIN IMMEDIATE takes the write lock
//     before the first read, so everything a write transaction reads is
//     already as good as write-locked: dal.LockMode needs no SQL here.
//   - a pool of read-only connections (query_only) for Store.ReadTx: in WAL
//     mode readers see a consistent snapshot and neither block the writer
//     nor are blocked by it.
//
// # Group commit
//
// A commit is an fsync (synchronous=FULL), and with one writer connection
// commits are strictly serial, so one transaction per Store.Tx would cap
// writes at one operation per fsync. The writer therefore commits in
// groups: the Tx calls queued while a transaction runs (up to
// Options.MaxGroup) run next in one transaction, each function inside its
// own savepoint, one after the other, and share one COMMIT. A function that
// fails is rolled back to its savepoint alone and its caller gets its error
// (a transient one runs the function again, in a later group); the others
// are unaffected. A lone caller waits for no one: a group is whatever is
// queued when the writer becomes free. Functions of a group run serially,
// each seeing its predecessors' writes, so the outcome is that of the same
// transactions committed one by one in group order. MaxGroup 1 turns
// grouping off (one transaction per Tx, as before). With grouping, the
// writer's statements are prepared once and reused, as the readers' are.
//
// Durability is unchanged by grouping: Tx returns nil only after the COMMIT
// that contains the function's writes has completed, with Synchronous FULL
// after it reached stable storage (with NORMAL, a commit survives a crash
// of the process but the last ones may be lost on power loss); it never
// returns nil for writes that were not committed, nor an error for writes
// that were (if the COMMIT fails, every function of the group is retried or
// fails, as the one transaction they were would).
//
// The busy timeout still matters for other processes on the same file (a
// user's sqlite3 shell, a second namenode); SQLITE_BUSY that outlasts it is
// retried by Tx as a transient error.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/dal/internal/sqlcore"
)

// Options tune a SQLite store; the zero value is the default.
type Options struct {
	// BusyTimeout is how long a statement waits for another process's lock
	// before failing with SQLITE_BUSY (default 5 s).
	BusyTimeout time.Duration
	// Readers caps concurrent ReadTx (default max(4, GOMAXPROCS)); the
	// read-only pool holds one connection more, for preparing statements.
	Readers int
	// Synchronous is SQLite's synchronous pragma: "FULL" (default: a commit
	// survives power loss) or "NORMAL" (in WAL mode, the last commits may be
	// lost on power loss but not on a crash of the process).
	Synchronous string
	// Retry bounds retries of transient failures (zero: dal.DefaultRetryPolicy).
	Retry dal.RetryPolicy
	// Migrations replaces the schema's migrations (nil: dal.Migrations());
	// for tests of the migration machinery.
	Migrations []dal.Migration
	// MaxGroup caps how many concurrent Tx calls share one write
	// transaction and its commit (group commit; 0: DefaultMaxGroup). 1
	// turns grouping off: each Tx is a transaction of its own.
	MaxGroup int
}

// Stats counts a store's write transactions since it was opened.
type Stats struct {
	// Commits is the number of write transactions committed (one per
	// group).
	Commits uint64
	// Committed is the number of Tx functions those commits made durable;
	// Committed/Commits is the average group size.
	Committed uint64
}

// Store is a dal.Store on one SQLite database file.
type Store struct {
	path    string
	writer  *sql.DB
	readers *sql.DB
	// stmts caches statements prepared on the readers (query text ->
	// *sql.Stmt): database/sql prepares each once per reader connection and
	// reuses it, so ReadTx's statements skip SQLite's parse and plan.
	stmts  sync.Map
	nstmts atomic.Int32
	// readSlots bounds concurrent ReadTx to one connection less than the
	// readers pool holds.
	readSlots chan struct{}
	retry     dal.RetryPolicy
	d         *sqlcore.Dialect
	// gc runs Tx with group commit; nil when Options.MaxGroup is 1, and
	// then Tx runs transactions itself, counted in commits.
	gc      *committer
	commits atomic.Uint64
}

var _ dal.Store = (*Store)(nil)

// dialect is SQLite's sqlcore.Dialect.
func dialect() *sqlcore.Dialect {
	return &sqlcore.Dialect{
		Name:              dal.DialectSQLite,
		LockSuffix:        func(dal.LockMode) string { return "" },
		IDList:            idList,
		Classify:          classify,
		IsNoRows:          func(err error) bool { return errors.Is(err, sql.ErrNoRows) },
		HasVariablesTable: `SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'variables'`,
	}
}

// maxListedIDs is the most ids idList binds one by one: paths are rarely
// deeper, and each count is a statement of its own, prepared once.
const maxListedIDs = 16

// idList is SQLite's sqlcore.Dialect.IDList: col IN ($n, ...) for up to
// maxListedIDs ids (no JSON to build and parse, and a plan using the
// primary key), else col IN (SELECT value FROM json_each($n)).
func idList(col string, n int, ids []int64) (string, []any) {
	if len(ids) <= maxListedIDs {
		b := make([]byte, 0, len(col)+6+5*len(ids))
		b = append(b, col...)
		b = append(b, " IN ("...)
		args := make([]any, len(ids))
		for i, id := range ids {
			if i > 0 {
				b = append(b, ',')
			}
			b = fmt.Appendf(b, "$%d", n+i)
			args[i] = id
		}
		return string(append(b, ')')), args
	}
	b := make([]byte, 0, len(ids)*8+2)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Append(b, id)
	}
	b = append(b, ']')
	return fmt.Sprintf("%s IN (SELECT value FROM json_each($%d))", col, n), []any{string(b)}
}

// classify sorts a modernc.org/sqlite error by its (extended) result code.
func classify(err error) sqlcore.ErrorKind {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return sqlcore.KindOther
	}
	switch code := se.Code(); code {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return sqlcore.KindUniqueViolation
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return sqlcore.KindForeignKeyViolation
	default:
		if primary := code & 0xff; primary == sqlite3.SQLITE_BUSY || primary == sqlite3.SQLITE_LOCKED {
			return sqlcore.KindTransient
		}
	}
	return sqlcore.KindOther
}

// IsTransient reports whether err is a SQLite error worth retrying a
// transaction for (SQLITE_BUSY, SQLITE_LOCKED and their extended codes).
func IsTransient(err error) bool { return classify(err) == sqlcore.KindTransient }

// dsn builds a modernc.org/sqlite connection string for path.
func dsn(path string, o Options, writer bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", o.BusyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous("+o.Synchronous+")")
	if writer {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Set("_txlock", "immediate")
	} else {
		q.Add("_pragma", "query_only(1)")
	}
	return "file:" + path + "?" + q.Encode()
}

// Open opens (creating it when missing) the SQLite database at path and
// brings its schema up to date; a database with a newer schema than this
// binary knows is refused with an error wrapping dal.ErrSchemaTooNew.
func Open(ctx context.Context, path string, o Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: open: empty database path")
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.Readers <= 0 {
		o.Readers = max(4, runtime.GOMAXPROCS(0))
	}
	if o.MaxGroup <= 0 {
		o.MaxGroup = DefaultMaxGroup
	}
	switch o.Synchronous {
	case "":
		o.Synchronous = "FULL"
	case "FULL", "NORMAL":
	default:
		return nil, fmt.Errorf("sqlite: open %s: synchronous must be FULL or NORMAL, not %q", path, o.Synchronous)
	}
	ms := o.Migrations
	if ms == nil {
		ms = dal.Migrations()
	}
	writer, err := sql.Open("sqlite", dsn(path, o, true))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)
	s := &Store{path: path, writer: writer, retry: o.Retry, d: dialect()}
	if err := s.migrate(ctx, ms); err != nil {
		writer.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	readers, err := sql.Open("sqlite", dsn(path, o, false))
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("sqlite: open %s for reading: %w", path, err)
	}
	// One connection more than ReadTx may hold at once (readSlots): a
	// ReadTx that prepares a statement for the cache (Store.stmt) needs a
	// second connection for a moment, and must not wait for one forever.
	readers.SetMaxOpenConns(o.Readers + 1)
	readers.SetMaxIdleConns(o.Readers + 1)
	s.readSlots = make(chan struct{}, o.Readers)
	s.readers = readers
	if o.MaxGroup > 1 {
		s.gc = newCommitter(s, o.MaxGroup)
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context, ms []dal.Migration) error {
	return dal.Retry(ctx, s.retry, IsTransient, func() error {
		return s.run(ctx, s.writer, nil, func(c sqlcore.Conn) error {
			_, _, err := sqlcore.Migrate(ctx, c, s.d, ms)
			return err
		})
	})
}

// Backend implements dal.Store.
func (s *Store) Backend() string { return "sqlite" }

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Stats reports the store's write transactions so far.
func (s *Store) Stats() Stats {
	if s.gc != nil {
		return Stats{Commits: s.gc.commits.Load(), Committed: s.gc.committed.Load()}
	}
	n := s.commits.Load()
	return Stats{Commits: n, Committed: n}
}

// Close implements dal.Store. Tx calls still queued fail with an error;
// Close waits for a group transaction in progress to commit (and so for
// the function running in it to return).
func (s *Store) Close() error {
	if s.gc != nil {
		s.gc.close()
	}
	var errR error
	s.stmts.Range(func(_, v any) bool {
		_ = v.(*sql.Stmt).Close()
		return true
	})
	if s.readers != nil {
		errR = s.readers.Close()
	}
	errW := s.writer.Close()
	if err := errors.Join(errW, errR); err != nil {
		return fmt.Errorf("sqlite: close %s: %w", s.path, err)
	}
	return nil
}

// Tx implements dal.Store: fn runs in a BEGIN IMMEDIATE transaction on the
// writer connection, shared with concurrent calls (group commit, see the
// package documentation) unless Options.MaxGroup is 1.
//
// fn runs in the calling goroutine. A call whose ctx is done before fn
// runs returns ctx.Err() without running it; once fn has run, Tx waits for
// the group's commit whatever ctx does, and reports the outcome. A panic in
// fn rolls back fn's writes (its savepoint; the other functions of the
// group go on) and propagates in the calling goroutine, unrecovered.
func (s *Store) Tx(ctx context.Context, fn func(dal.Tx) error) error {
	if s.gc != nil {
		return dal.Retry(ctx, s.retry, IsTransient, func() error { return s.gc.do(ctx, fn) })
	}
	return dal.Retry(ctx, s.retry, IsTransient, func() error {
		err := s.run(ctx, s.writer, nil, func(c sqlcore.Conn) error { return fn(sqlcore.NewTx(c, s.d)) })
		if err == nil {
			s.commits.Add(1)
		}
		return err
	})
}

// ReadTx implements dal.Store: a deferred read-only transaction on a reader
// connection, reading one WAL snapshot.
func (s *Store) ReadTx(ctx context.Context, fn func(dal.Tx) error) error {
	select {
	case s.readSlots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.readSlots }()
	return dal.Retry(ctx, s.retry, IsTransient, func() error {
		return s.run(ctx, s.readers, &sql.TxOptions{ReadOnly: true}, func(c sqlcore.Conn) error {
			return fn(sqlcore.NewTx(conn{tx: c.(conn).tx, s: s}, s.d))
		})
	})
}

// maxStmts bounds the reader statement cache (batched reads by id vary in
// their number of placeholders).
const maxStmts = 256

// stmt returns q prepared on the readers, or nil when it cannot be cached.
func (s *Store) stmt(ctx context.Context, q string) *sql.Stmt {
	if v, ok := s.stmts.Load(q); ok {
		return v.(*sql.Stmt)
	}
	if s.nstmts.Load() >= maxStmts {
		return nil
	}
	st, err := s.readers.PrepareContext(ctx, q)
	if err != nil {
		return nil // the unprepared query reports the error
	}
	if v, loaded := s.stmts.LoadOrStore(q, st); loaded {
		_ = st.Close()
		return v.(*sql.Stmt)
	}
	s.nstmts.Add(1)
	return st
}

// SchemaVersion implements dal.Store.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.run(ctx, s.readers, &sql.TxOptions{ReadOnly: true}, func(c sqlcore.Conn) error {
		var err error
		v, err = sqlcore.SchemaVersion(ctx, c, s.d)
		return err
	})
	return v, err
}

// run is one attempt: begin on db, fn, commit (rollback on any error, and
// when fn panics, before the panic goes on).
func (s *Store) run(ctx context.Context, db *sql.DB, opts *sql.TxOptions, fn func(sqlcore.Conn) error) error {
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("sqlite: begin transaction: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // no-op after Commit
	if err := fn(conn{tx: tx}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

// conn adapts *sql.Tx to sqlcore.Conn; s is set in ReadTx, whose queries
// use the store's prepared statements.
type conn struct {
	tx *sql.Tx
	s  *Store
}

func (c conn) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	r, err := c.tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return r.RowsAffected()
}

func (c conn) Query(ctx context.Context, q string, args ...any) (sqlcore.Rows, error) {
	var r *sql.Rows
	var err error
	if st := c.prepared(ctx, q); st != nil {
		r, err = st.QueryContext(ctx, args...)
	} else {
		r, err = c.tx.QueryContext(ctx, q, args...)
	}
	if err != nil {
		return nil, err
	}
	return rows{r}, nil
}

func (c conn) QueryRow(ctx context.Context, q string, args ...any) sqlcore.Row {
	if st := c.prepared(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.tx.QueryRowContext(ctx, q, args...)
}

// prepared returns q's cached statement bound to the transaction (nil
// outside ReadTx). The bound statement closes with the transaction; the
// connection keeps the prepared one.
func (c conn) prepared(ctx context.Context, q string) *sql.Stmt {
	if c.s == nil {
		return nil
	}
	st := c.s.stmt(ctx, q)
	if st == nil {
		return nil
	}
	return c.tx.StmtContext(ctx, st)
}

// rows adapts *sql.Rows to sqlcore.Rows.
type rows struct{ *sql.Rows }

func (r rows) Close() { _ = r.Rows.Close() }
