// Package postgres is dfs's scale-out metadata store: the dal.Store
// implementation on PostgreSQL through github.com/jackc/pgx/v5's pgxpool,
// which also serves PostgreSQL-wire distributed databases.
//
// Transactions run at READ COMMITTED, the isolation HopsFS asks of its
// database; row locks are explicit: dal.LockRead is SELECT ... FOR SHARE and
// dal.LockWrite is SELECT ... FOR UPDATE, held to the end of the transaction.
// Serialization failures (SQLSTATE 40001, which databases running only
// SERIALIZABLE, such as CockroachDB, report for conflicts) and detected
// deadlocks (40P01) are transient: Tx rolls back and runs the function again.
//
// # Read-only work without BEGIN/COMMIT
//
// Store.ReadTx does not open a transaction: it pins one connection of a
// second pool, whose sessions have default_transaction_read_only = on, and
// runs each statement on its own (autocommit), saving the BEGIN and COMMIT
// round trips, two of the three or four a stat or list costs. This is safe
// because a READ COMMITTED transaction, what ReadTx was before, gives every
// statement its own snapshot of the committed data anyway: a function run
// in ReadTx sees exactly what it saw inside BEGIN ... COMMIT, statement by
// statement, and no ReadTx caller on this backend could count on one
// snapshot across statements (callers that need one must use Tx and lock,
// or, like Fsck and content summaries, accept a view that concurrent
// operations change as they read, as HDFS's do). Each autocommit statement
// is a read-only implicit transaction, so writes and row locks inside
// ReadTx still fail as dal.Store documents.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/dal/internal/sqlcore"
)

// migrationLockKey is the pg_advisory_xact_lock key that serialises
// namenodes migrating the same database at once ("kuradfs" in ASCII).
const migrationLockKey = 0x6b75726164667300

// DefaultMaxConns is the pool size when neither Options.MaxConns nor the
// URL's pool_max_conns sets one. A namenode's transactions spend most of
// their time waiting for round trips to the database, so with the database
// on another machine it takes several connections per core to keep it
// busy: measured with 12 clients and 0.5 ms between namenode and database
// ('kura dfs bench --meta-delay 250us'), 16 connections create files 2.7x
// as fast as pgxpool's default of max(4, cores) on 2 cores. With the
// database on the same small machine fewer do better (about 20% on
// 2 cores): set pool_max_conns=4 in the URL there.
const DefaultMaxConns = 16

// Options tune a PostgreSQL store; the zero value is the default.
type Options struct {
	// MaxConns caps the pool's connections (0: pool_max_conns in the URL,
	// else DefaultMaxConns); ReadTx's read-only pool has as many more.
	MaxConns int32
	// Retry bounds retries of transient failures (zero: dal.DefaultRetryPolicy).
	Retry dal.RetryPolicy
	// Migrations replaces the schema's migrations (nil: dal.Migrations());
	// for tests of the migration machinery.
	Migrations []dal.Migration
}

// Store is a dal.Store on one PostgreSQL database.
type Store struct {
	pool  *pgxpool.Pool
	read  *pgxpool.Pool // sessions with default_transaction_read_only, for ReadTx
	name  string        // the URL without password, for messages
	retry dal.RetryPolicy
	d     *sqlcore.Dialect
}

var _ dal.Store = (*Store)(nil)

// dialect is PostgreSQL's sqlcore.Dialect.
func dialect() *sqlcore.Dialect {
	return &sqlcore.Dialect{
		Name: dal.DialectPostgres,
		LockSuffix: func(m dal.LockMode) string {
			switch m {
			case dal.LockRead:
				return " FOR SHARE"
			case dal.LockWrite:
				return " FOR UPDATE"
			}
			return ""
		},
		IDList: func(col string, n int, ids []int64) (string, []any) {
			return fmt.Sprintf("%s = ANY($%d)", col, n), []any{ids}
		},
		Classify:          classify,
		IsNoRows:          func(err error) bool { return errors.Is(err, pgx.ErrNoRows) },
		HasVariablesTable: `SELECT to_regclass('variables') IS NOT NULL`,
		MigrationLock:     fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", int64(migrationLockKey)),
	}
}

// classify sorts a PostgreSQL error by SQLSTATE.
func classify(err error) sqlcore.ErrorKind {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return sqlcore.KindOther
	}
	switch pe.Code {
	case "23505": // unique_violation
		return sqlcore.KindUniqueViolation
	case "23503": // foreign_key_violation
		return sqlcore.KindForeignKeyViolation
	case "40001", "40P01": // serialization_failure, deadlock_detected
		return sqlcore.KindTransient
	}
	return sqlcore.KindOther
}

// IsTransient reports whether err is a PostgreSQL error worth retrying a
// transaction for: serialization failure (40001) or deadlock (40P01).
func IsTransient(err error) bool { return classify(err) == sqlcore.KindTransient }

// redact returns the URL with any password removed, for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "postgres database"
	}
	return u.Redacted()
}

// Open connects to the PostgreSQL database at connURL
// ("postgres://user@host:port/db?sslmode=disable", or any form pgx accepts)
// and brings its schema up to date; a database with a newer schema than this
// binary knows is refused with an error wrapping dal.ErrSchemaTooNew.
func Open(ctx context.Context, connURL string, o Options) (*Store, error) {
	name := redact(connURL)
	cfg, err := pgxpool.ParseConfig(connURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: open %s: %w", name, err)
	}
	switch {
	case o.MaxConns > 0:
		cfg.MaxConns = o.MaxConns
	case !strings.Contains(connURL, "pool_max_conns"):
		cfg.MaxConns = DefaultMaxConns
	}
	cfg.AfterConnect = configureSession
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open %s: %w", name, err)
	}
	rcfg := cfg.Copy()
	rcfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	read, err := pgxpool.NewWithConfig(ctx, rcfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", name, err)
	}
	s := &Store{pool: pool, read: read, name: name, retry: o.Retry, d: dialect()}
	ms := o.Migrations
	if ms == nil {
		ms = dal.Migrations()
	}
	err = dal.Retry(ctx, s.retry, IsTransient, func() error {
		return s.run(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(c sqlcore.Conn) error {
			_, _, err := sqlcore.Migrate(ctx, c, s.d, ms)
			return err
		})
	})
	if err != nil {
		pool.Close()
		read.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", name, err)
	}
	return s, nil
}

// sessionSettings returns the planner settings of every session of the store's
// pools (set by configureSession).
//
// enable_bitmapscan = off: the namespace's hottest rows are directories,
// updated by every create or delete in them (mtime, children). Between two
// vacuums each update that does not fit its page as a HOT update leaves
// the row's old versions behind with an index entry each. A plain index
// scan marks the entries of dead versions it visits (kill_prior_tuple), so
// the next lookup skips them; a bitmap scan never marks them and visits
// every dead version again. PostgreSQL's planner picks bitmap scans for
// "id = ANY($1)" (the resolving cache's one read per path): measured with
// 12 clients creating files in 12 directories, that read took 830 us per
// call, most of the database's time, against tens of microseconds as an
// index scan.
//
// plan_cache_mode = force_generic_plan: the DAL's statements are prepared
// once per connection, but PostgreSQL plans a prepared statement again on
// every execution while its custom plans look cheaper than the generic
// one, which they do for "id = ANY($1)" and the path reads built on it;
// planning was a quarter of the database's CPU time in a create run (1.8
// -> 1.2-1.4 ms of its CPU per create + complete without it). Every query
// of the DAL is a key lookup or a key range, whose generic plan is the
// same index scan; a cached generic plan is planned again when ANALYZE
// (autovacuum's too) changes a table's statistics.
func sessionSettings() []string {
	return []string{
		"SET enable_bitmapscan = off",
		"SET plan_cache_mode = force_generic_plan",
	}
}

// configureSession applies sessionSettings to a new connection. A database
// that speaks PostgreSQL's protocol without one of them (SQLSTATE 42704,
// undefined object) keeps its default for that one.
func configureSession(ctx context.Context, c *pgx.Conn) error {
	for _, set := range sessionSettings() {
		_, err := c.Exec(ctx, set)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42704" {
			continue
		}
		if err != nil {
			return fmt.Errorf("postgres: %s: %w", set, err)
		}
	}
	return nil
}

// Backend implements dal.Store.
func (s *Store) Backend() string { return "postgres" }

// Pool returns the store's connection pool (for tests and diagnostics).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close implements dal.Store.
func (s *Store) Close() error {
	s.pool.Close()
	s.read.Close()
	return nil
}

// Tx implements dal.Store: a READ COMMITTED read-write transaction, its
// statements pipelined (pipeTx: the BEGIN goes with the first statement,
// deferred writes with the next statement or the COMMIT).
func (s *Store) Tx(ctx context.Context, fn func(dal.Tx) error) error {
	return dal.Retry(ctx, s.retry, IsTransient, func() error {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("postgres: acquire connection on %s: %w", s.name, err)
		}
		defer c.Release()
		t := &pipeTx{c: c, name: s.name}
		if err := fn(sqlcore.NewTx(t, s.d)); err != nil {
			t.rollback(ctx)
			return err
		}
		if err := t.commit(ctx); err != nil {
			t.rollback(ctx)
			return err
		}
		return nil
	})
}

// ReadTx implements dal.Store: read-only autocommit statements on one pinned
// connection, each with its own snapshot as in a READ COMMITTED transaction
// (see the package documentation).
func (s *Store) ReadTx(ctx context.Context, fn func(dal.Tx) error) error {
	return dal.Retry(ctx, s.retry, IsTransient, func() error {
		c, err := s.read.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("postgres: acquire connection on %s: %w", s.name, err)
		}
		defer c.Release()
		return fn(sqlcore.NewTx(conn{c}, s.d))
	})
}

// SchemaVersion implements dal.Store.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.run(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(c sqlcore.Conn) error {
		var err error
		v, err = sqlcore.SchemaVersion(ctx, c, s.d)
		return err
	})
	return v, err
}

// run is one attempt: begin, fn, commit (rollback on any error).
func (s *Store) run(ctx context.Context, opts pgx.TxOptions, fn func(sqlcore.Conn) error) error {
	tx, err := s.pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("postgres: begin transaction on %s: %w", s.name, err)
	}
	if err := fn(conn{tx}); err != nil {
		// Rollback needs a live context even when ctx was cancelled.
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit on %s: %w", s.name, err)
	}
	return nil
}

// querier is what pgx.Tx and a pinned *pgxpool.Conn have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// conn adapts pgx.Tx (or a pinned connection) to sqlcore.Conn.
type conn struct{ tx querier }

func (c conn) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := c.tx.Exec(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (c conn) Query(ctx context.Context, q string, args ...any) (sqlcore.Rows, error) {
	r, err := c.tx.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (c conn) QueryRow(ctx context.Context, q string, args ...any) sqlcore.Row {
	return c.tx.QueryRow(ctx, q, args...)
}
