package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kura-dev/kura/dfs/dal/internal/sqlcore"
)

// beginSQL opens every read-write transaction (Store.Tx).
const beginSQL = "BEGIN ISOLATION LEVEL READ COMMITTED"

// pipeTx is one read-write transaction on a pinned pool connection that
// saves round trips by pipelining: the BEGIN is not sent on its own but
// with the transaction's first statement, and writes made through
// dal.Tx.Deferred are held until the next statement or the COMMIT and sent
// with it, all as one pgx batch (one network write, one wait). A create
// costs about half the round trips it would statement by statement. Reads
// that go together are batched too (sqlcore.Batcher: dal.Tx.GetFileByID's
// locking read of an inode and the read of its blocks), each still a
// statement of its own: the server runs a batch's statements in turn, and
// at READ COMMITTED each takes its snapshot when it starts, after the one
// before it finished, its row-lock wait included.
//
// A held statement's failure (its error, or its done callback's verdict on
// the rows it affected) is returned by the call that sent it; the statements
// queued behind it in the batch have no effect, since PostgreSQL aborts the
// transaction at the first error (and the caller rolls back).
type pipeTx struct {
	c       *pgxpool.Conn
	name    string // the database, for messages
	begun   bool   // BEGIN has been sent (and succeeded)
	pending []heldStmt
}

// heldStmt is a statement held back until the next round trip.
type heldStmt struct {
	sql  string
	args []any
	done func(int64, error) error
}

// queued is a statement to send in a batch.
type queued struct {
	sql  string
	args []any
}

var (
	_ sqlcore.Conn     = (*pipeTx)(nil)
	_ sqlcore.Deferrer = (*pipeTx)(nil)
	_ sqlcore.Batcher  = (*pipeTx)(nil)
)

// Defer implements sqlcore.Deferrer. A mustAffect statement is sent as
//
//	WITH w AS (<statement> RETURNING 1) SELECT 1 / count(*) FROM w
//
// which fails with division_by_zero when it affects no row: an error the
// server raises aborts the transaction, so a COMMIT in the same batch
// cannot commit it (a rows-affected count checked on the client would come
// too late). done then sees 0 rows and no error, as from a plain statement.
func (t *pipeTx) Defer(sql string, args []any, mustAffect bool, done func(int64, error) error) {
	if mustAffect {
		sql = "WITH w AS (" + sql + " RETURNING 1) SELECT 1 / count(*) FROM w"
		plain := done
		done = func(n int64, err error) error {
			if isDivisionByZero(err) {
				return plain(0, nil)
			}
			return plain(n, err)
		}
	}
	t.pending = append(t.pending, heldStmt{sql: sql, args: args, done: done})
}

// isDivisionByZero recognises the error of a mustAffect statement that
// affected no row.
func isDivisionByZero(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "22012"
}

// direct reports whether a statement can go alone: nothing is waiting to
// be sent before it.
func (t *pipeTx) direct() bool { return t.begun && len(t.pending) == 0 }

// send sends the BEGIN when not yet sent, the held statements and last in
// one batch and reads the results of all but last, leaving the batch
// positioned at last's first result for the caller (who must Close it). On
// an error the batch is closed and nil returned.
func (t *pipeTx) send(ctx context.Context, last ...queued) (pgx.BatchResults, error) {
	b := &pgx.Batch{}
	if !t.begun {
		b.Queue(beginSQL)
	}
	for _, p := range t.pending {
		b.Queue(p.sql, p.args...)
	}
	for _, q := range last {
		b.Queue(q.sql, q.args...)
	}
	pending := t.pending
	t.pending = nil
	br := t.c.SendBatch(ctx, b)
	if !t.begun {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return nil, fmt.Errorf("postgres: begin transaction on %s: %w", t.name, err)
		}
		t.begun = true
	}
	for _, p := range pending {
		tag, err := br.Exec()
		if err = p.done(tag.RowsAffected(), err); err != nil {
			_ = br.Close()
			return nil, err
		}
	}
	return br, nil
}

// Exec implements sqlcore.Conn.
func (t *pipeTx) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	if t.direct() {
		tag, err := t.c.Exec(ctx, sql, args...)
		return tag.RowsAffected(), err
	}
	br, err := t.send(ctx, queued{sql, args})
	if err != nil {
		return 0, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag.RowsAffected(), err
}

// Query implements sqlcore.Conn.
func (t *pipeTx) Query(ctx context.Context, sql string, args ...any) (sqlcore.Rows, error) {
	if t.direct() {
		r, err := t.c.Query(ctx, sql, args...)
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	br, err := t.send(ctx, queued{sql, args})
	if err != nil {
		return nil, err
	}
	r, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: r, br: br}, nil
}

// QueryRow implements sqlcore.Conn.
func (t *pipeTx) QueryRow(ctx context.Context, sql string, args ...any) sqlcore.Row {
	if t.direct() {
		return t.c.QueryRow(ctx, sql, args...)
	}
	br, err := t.send(ctx, queued{sql, args})
	if err != nil {
		return errRow{err}
	}
	return batchRow{row: br.QueryRow(), br: br}
}

// QueryEach implements sqlcore.Batcher: qs go in one batch, behind the
// BEGIN and the held statements when there are any. PostgreSQL executes a
// pipeline's statements in order, binding each (and taking its snapshot)
// only when the one before it has finished.
func (t *pipeTx) QueryEach(ctx context.Context, qs ...sqlcore.Query) error {
	stmts := make([]queued, len(qs))
	for i, q := range qs {
		stmts[i] = queued{q.SQL, q.Args}
	}
	br, err := t.send(ctx, stmts...)
	if err != nil {
		return err
	}
	for _, q := range qs {
		r, err := br.Query()
		if err == nil {
			err = q.Read(r)
			r.Close()
			if err == nil {
				err = r.Err()
			}
		}
		if err != nil {
			_ = br.Close()
			return err
		}
	}
	return br.Close()
}

// commit sends what is held and COMMIT in one round trip. A transaction
// that sent nothing has nothing to commit.
func (t *pipeTx) commit(ctx context.Context) error {
	if !t.begun && len(t.pending) == 0 {
		return nil
	}
	br, err := t.send(ctx, queued{sql: "COMMIT"})
	if err != nil {
		return err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("postgres: commit on %s: %w", t.name, err)
	}
	// COMMIT of a transaction PostgreSQL already aborted answers ROLLBACK.
	if tag.String() != "COMMIT" {
		return fmt.Errorf("postgres: commit on %s: transaction was rolled back (%s)", t.name, tag)
	}
	return nil
}

// rollback ends a transaction that failed. Held statements are dropped; a
// connection left inside a transaction (the ROLLBACK failed) is destroyed
// by the pool on release rather than reused.
func (t *pipeTx) rollback(ctx context.Context) {
	t.pending = nil
	if t.c.Conn().PgConn().TxStatus() == 'I' {
		return
	}
	_, _ = t.c.Exec(context.WithoutCancel(ctx), "ROLLBACK")
}

// batchRows is a result set read from a batch; closing it finishes the
// batch.
type batchRows struct {
	pgx.Rows
	br  pgx.BatchResults
	err error
}

// Err reports the error that ended iteration, or that finishing the batch
// after the last row met.
func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// Next advances to the next row; after the last one it finishes the batch,
// so that Err reports a failure there.
func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.finish()
	return false
}

// Close closes the rows and the batch.
func (r *batchRows) Close() { r.finish() }

func (r *batchRows) finish() {
	if r.br == nil {
		return
	}
	r.Rows.Close()
	if err := r.br.Close(); err != nil && r.Rows.Err() == nil {
		r.err = err
	}
	r.br = nil
}

// batchRow is a single-row result read from a batch.
type batchRow struct {
	row pgx.Row
	br  pgx.BatchResults
}

// Scan reads the row and finishes the batch.
func (r batchRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if cerr := r.br.Close(); cerr != nil && (err == nil || errors.Is(err, pgx.ErrNoRows)) {
		err = cerr
	}
	return err
}

// errRow is a Row that failed before it was read.
type errRow struct{ err error }

// Scan returns the error.
func (r errRow) Scan(...any) error { return r.err }
