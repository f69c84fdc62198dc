// Package sqlcore is the SQL shared by dfs's DAL backends: one
// implementation of dal.Tx and of the migration runner over a minimal
// connection interface, parameterised by a Dialect for what differs (row-lock
// clauses, batched id lists, error codes). The backends (dfs/dal/sqlite,
// dfs/dal/postgres) adapt their drivers to Conn and own connections,
// transactions and retries. Queries use $1, $2, ... placeholders, which
// both pgx and modernc.org/sqlite bind by position.
package sqlcore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/kura-dev/kura/dfs/dal"
)

// Rows is a result set being read.
type Rows interface {
	// Next advances to the next row.
	Next() bool
	// Scan copies the current row's columns into dest.
	Scan(dest ...any) error
	// Err returns the error that ended iteration, if any.
	Err() error
	// Close releases the result set.
	Close()
}

// Row is the single-row result of QueryRow; Scan reports a missing row with
// an error that Dialect.IsNoRows recognises.
type Row interface {
	// Scan copies the row's columns into dest.
	Scan(dest ...any) error
}

// Conn runs statements inside one database transaction.
type Conn interface {
	// Exec runs a statement and returns the number of rows it affected.
	Exec(ctx context.Context, sql string, args ...any) (int64, error)
	// Query runs a query returning rows.
	Query(ctx context.Context, sql string, args ...any) (Rows, error)
	// QueryRow runs a query returning at most one row.
	QueryRow(ctx context.Context, sql string, args ...any) Row
}

// Deferrer is a Conn that can hold a statement back and send it together
// with the next statement or the commit, so that several statements cost one
// round trip (PostgreSQL's pipelining). done receives the statement's rows
// affected or error when its result arrives and returns the error the
// transaction fails with (nil to go on); an error returned by done comes out
// of the later call that sent the statement, which ends the transaction.
// mustAffect marks a statement (an UPDATE or DELETE) that must affect a
// row: the Deferrer has the database fail it when it affects none (so that
// a COMMIT sent behind it cannot commit the transaction) and then passes
// done 0 rows and no error.
type Deferrer interface {
	Defer(sql string, args []any, mustAffect bool, done func(rowsAffected int64, err error) error)
}

// Query is one query of a batch run by Tx.queryEach: Read consumes its
// rows (it need not read them all).
type Query struct {
	SQL  string
	Args []any
	Read func(Rows) error
}

// Batcher is a Conn that can send several queries in one round trip
// (PostgreSQL's pipelining). The database runs them one after the other,
// each as a statement of its own, so at READ COMMITTED each one reads a
// snapshot taken when it starts, after the one before it has finished
// (row-lock waits included). The first error stops the batch: the queries
// after it have no effect.
type Batcher interface {
	QueryEach(ctx context.Context, qs ...Query) error
}

// ErrorKind is how a Dialect classifies a driver error.
type ErrorKind int

const (
	// KindOther is any other error.
	KindOther ErrorKind = iota
	// KindUniqueViolation is a primary-key or unique-constraint violation.
	KindUniqueViolation
	// KindForeignKeyViolation is a foreign-key violation.
	KindForeignKeyViolation
	// KindTransient is a failure worth retrying the transaction for
	// (serialization failure, deadlock, busy database).
	KindTransient
)

// Dialect is what differs between backends.
type Dialect struct {
	// Name is the schema dialect.
	Name dal.Dialect
	// LockSuffix returns the clause appended to a SELECT to take lock
	// ("" when the backend locks otherwise).
	LockSuffix func(lock dal.LockMode) string
	// IDList returns a condition testing column col against ids with
	// placeholders from $n, and the values to bind (PostgreSQL: col =
	// ANY($n) with an array; SQLite: col IN ($n, $n+1, ...) for a few ids,
	// a statement prepared once per count, else col IN (SELECT value FROM
	// json_each($n)) with a JSON array).
	IDList func(col string, n int, ids []int64) (cond string, args []any)
	// Classify sorts a driver error.
	Classify func(err error) ErrorKind
	// IsNoRows recognises the driver's "no rows" error from Row.Scan.
	IsNoRows func(err error) bool
	// HasVariablesTable is a query returning one boolean row: whether the
	// variables table exists (false in an empty database).
	HasVariablesTable string
	// MigrationLock is a statement run first in the migration
	// transaction to serialise migrating processes ("" for none).
	MigrationLock string
}

// IsTransient reports whether err, or an error it wraps, is transient for d.
func (d *Dialect) IsTransient(err error) bool {
	return err != nil && d.Classify(err) == KindTransient
}

// wrap adds context to a driver error and the dal sentinel it stands for.
func (d *Dialect) wrap(op string, err error) error {
	switch d.Classify(err) {
	case KindUniqueViolation:
		return fmt.Errorf("dal: %s: %w: %w", op, dal.ErrExists, err)
	case KindForeignKeyViolation:
		return fmt.Errorf("dal: %s: referenced row %w: %w", op, dal.ErrNotFound, err)
	}
	return fmt.Errorf("dal: %s: %w", op, err)
}

// notFound is the error for a missing row.
func notFound(op string) error {
	return fmt.Errorf("dal: %s: %w", op, dal.ErrNotFound)
}

// limitArg turns a "<= 0 means no limit" limit into a LIMIT value.
func limitArg(limit int) int64 {
	if limit <= 0 {
		return math.MaxInt64
	}
	return int64(limit)
}

// Tx implements dal.Tx over a Conn.
type Tx struct {
	c Conn
	d *Dialect
	// later: writes are handed to c's Deferrer when it has one (Deferred).
	later bool
}

// NewTx returns the dal.Tx running its statements on c.
func NewTx(c Conn, d *Dialect) *Tx { return &Tx{c: c, d: d} }

// Deferred implements dal.Tx: on a Conn that is a Deferrer, a view of the
// transaction whose writes are sent with its next statement or its commit;
// otherwise t itself.
func (t *Tx) Deferred() dal.Tx {
	if _, ok := t.c.(Deferrer); !ok || t.later {
		return t
	}
	return &Tx{c: t.c, d: t.d, later: true}
}

// exec runs a write now, or queues it on a Deferrer for a Deferred view;
// done turns its rows affected or error into the result; mustAffect: done
// fails the statement when it affects no row (see Deferrer).
func (t *Tx) exec(ctx context.Context, sql string, args []any, mustAffect bool, done func(n int64, err error) error) error {
	if t.later {
		if d, ok := t.c.(Deferrer); ok {
			d.Defer(sql, args, mustAffect, done)
			return nil
		}
	}
	n, err := t.c.Exec(ctx, sql, args...)
	return done(n, err)
}

// wrapped is a done for exec: the error wrapped with op, rows affected
// ignored.
func (t *Tx) wrapped(op string) func(int64, error) error {
	return func(_ int64, err error) error {
		if err != nil {
			return t.d.wrap(op, err)
		}
		return nil
	}
}

// one is a done for exec: the error wrapped with op, and ErrNotFound when
// no row was affected.
func (t *Tx) one(op string) func(int64, error) error {
	return func(n int64, err error) error {
		if err != nil {
			return t.d.wrap(op, err)
		}
		if n == 0 {
			return notFound(op)
		}
		return nil
	}
}

var _ dal.Tx = (*Tx)(nil)

const inodeCols = `id, parent_id, name, partition_id, is_dir, permission, owner, group_name, mtime, atime, size, replication, block_size, under_construction, client_name, client_machine, symlink, children`

// inodeScan holds the destinations of inodeCols' values.
type inodeScan struct {
	in         dal.Inode
	perm, repl int64
}

// dests returns the Scan destinations of inodeCols, in order.
func (s *inodeScan) dests() []any {
	in := &s.in
	return []any{&in.ID, &in.ParentID, &in.Name, &in.PartitionID, &in.IsDir, &s.perm, &in.Owner, &in.Group,
		&in.MTime, &in.ATime, &in.Size, &s.repl, &in.BlockSize, &in.UnderConstruction, &in.ClientName,
		&in.ClientMachine, &in.Symlink, &in.Children}
}

// inode returns the scanned inode.
func (s *inodeScan) inode() *dal.Inode {
	in := s.in
	in.Permission = uint16(s.perm)
	in.Replication = int16(s.repl)
	return &in
}

func scanInode(r Row) (*dal.Inode, error) {
	var s inodeScan
	if err := r.Scan(s.dests()...); err != nil {
		return nil, err
	}
	return s.inode(), nil
}

func (t *Tx) queryInodes(ctx context.Context, op, sql string, args ...any) ([]*dal.Inode, error) {
	rows, err := t.c.Query(ctx, sql, args...)
	if err != nil {
		return nil, t.d.wrap(op, err)
	}
	defer rows.Close()
	var out []*dal.Inode
	for rows.Next() {
		in, err := scanInode(rows)
		if err != nil {
			return nil, t.d.wrap(op, err)
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, t.d.wrap(op, err)
	}
	return out, nil
}

func (t *Tx) getInode(ctx context.Context, op, sql string, args ...any) (*dal.Inode, error) {
	in, err := scanInode(t.c.QueryRow(ctx, sql, args...))
	if err != nil {
		if t.d.IsNoRows(err) {
			return nil, notFound(op)
		}
		return nil, t.d.wrap(op, err)
	}
	return in, nil
}

// GetInode implements dal.Tx.
func (t *Tx) GetInode(ctx context.Context, parentID int64, name string, lock dal.LockMode) (*dal.Inode, error) {
	return t.getInode(ctx, fmt.Sprintf("get inode %q in %d (%s lock)", name, parentID, lock),
		`SELECT `+inodeCols+` FROM inodes WHERE partition_id = $1 AND parent_id = $2 AND name = $3`+t.d.LockSuffix(lock),
		dal.PartitionID(parentID, name), parentID, name)
}

// GetInodeByID implements dal.Tx.
func (t *Tx) GetInodeByID(ctx context.Context, id int64, lock dal.LockMode) (*dal.Inode, error) {
	return t.getInode(ctx, fmt.Sprintf("get inode %d (%s lock)", id, lock),
		`SELECT `+inodeCols+` FROM inodes WHERE id = $1`+t.d.LockSuffix(lock), id)
}

// GetInodesByIDs implements dal.Tx.
func (t *Tx) GetInodesByIDs(ctx context.Context, ids []int64, lock dal.LockMode) ([]*dal.Inode, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	cond, args := t.d.IDList("id", 1, ids)
	return t.queryInodes(ctx, fmt.Sprintf("get %d inodes by id (%s lock)", len(ids), lock),
		`SELECT `+inodeCols+` FROM inodes WHERE `+cond+` ORDER BY id`+t.d.LockSuffix(lock), args...)
}

// ReadPath implements dal.Tx. The locked row comes from a WITH query with
// the lock clause (on PostgreSQL, READ COMMITTED, the latest version of the
// row once its lock is granted); the other rows are read by the same
// statement without locks.
func (t *Tx) ReadPath(ctx context.Context, ids []int64, lockID int64, lock dal.LockMode, child *dal.InodeKey) ([]*dal.Inode, error) {
	op := fmt.Sprintf("read path of %d inodes by id", len(ids))
	var sb strings.Builder
	var args []any
	next := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	locked := lockID != 0 && t.d.LockSuffix(lock) != ""
	if lockID != 0 && !locked && !slices.Contains(ids, lockID) {
		ids = append(slices.Clip(ids), lockID) // a backend that locks otherwise
	}
	if locked {
		op += fmt.Sprintf(", %d with a %s lock", lockID, lock)
		sb.WriteString(`WITH l AS (SELECT ` + inodeCols + ` FROM inodes WHERE id = ` + next(lockID) + t.d.LockSuffix(lock) + `) `)
	}
	parts := 0
	union := func() {
		if parts > 0 {
			sb.WriteString(` UNION ALL `)
		}
		parts++
	}
	if len(ids) > 0 {
		union()
		cond, idArgs := t.d.IDList("id", len(args)+1, ids)
		args = append(args, idArgs...)
		sb.WriteString(`SELECT ` + inodeCols + ` FROM inodes WHERE ` + cond)
		if locked {
			sb.WriteString(` AND id <> ` + next(lockID))
		}
	}
	if locked {
		union()
		sb.WriteString(`SELECT ` + inodeCols + ` FROM l`)
	}
	if child != nil {
		op += fmt.Sprintf(", and %q in %d", child.Name, child.ParentID)
		union()
		sb.WriteString(`SELECT ` + inodeCols + ` FROM inodes WHERE partition_id = ` + next(dal.PartitionID(child.ParentID, child.Name)) +
			` AND parent_id = ` + next(child.ParentID) + ` AND name = ` + next(child.Name))
	}
	if parts == 0 {
		return nil, nil
	}
	return t.queryInodes(ctx, op, sb.String(), args...)
}

// ListChildren implements dal.Tx.
func (t *Tx) ListChildren(ctx context.Context, parentID int64, after string, limit int) ([]*dal.Inode, error) {
	op := fmt.Sprintf("list children of %d after %q", parentID, after)
	if parentID == dal.RootID {
		// Literal parent_id = 1 so the planner may use the partial index.
		return t.queryInodes(ctx, op,
			`SELECT `+inodeCols+` FROM inodes WHERE parent_id = 1 AND name > $1 ORDER BY name LIMIT $2`,
			after, limitArg(limit))
	}
	return t.queryInodes(ctx, op,
		`SELECT `+inodeCols+` FROM inodes WHERE partition_id = $1 AND parent_id = $1 AND name > $2 ORDER BY name LIMIT $3`,
		parentID, after, limitArg(limit))
}

// CountChildren implements dal.Tx.
func (t *Tx) CountChildren(ctx context.Context, parentID int64) (int64, error) {
	q, args := `SELECT count(*) FROM inodes WHERE partition_id = $1 AND parent_id = $1`, []any{parentID}
	if parentID == dal.RootID {
		q, args = `SELECT count(*) FROM inodes WHERE parent_id = 1`, nil
	}
	var n int64
	if err := t.c.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		return 0, t.d.wrap(fmt.Sprintf("count children of %d", parentID), err)
	}
	return n, nil
}

func inodeArgs(in *dal.Inode) []any {
	return []any{in.ID, in.ParentID, in.Name, dal.PartitionID(in.ParentID, in.Name), in.IsDir, int64(in.Permission),
		in.Owner, in.Group, in.MTime, in.ATime, in.Size, int64(in.Replication), in.BlockSize, in.UnderConstruction,
		in.ClientName, in.ClientMachine, in.Symlink, in.Children}
}

// InsertInode implements dal.Tx.
func (t *Tx) InsertInode(ctx context.Context, in *dal.Inode) error {
	err := t.exec(ctx, `INSERT INTO inodes (`+inodeCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
		inodeArgs(in), false, t.wrapped(fmt.Sprintf("insert inode %d %q in %d", in.ID, in.Name, in.ParentID)))
	if err != nil {
		return err
	}
	in.PartitionID = dal.PartitionID(in.ParentID, in.Name)
	return nil
}

// UpdateInode implements dal.Tx.
func (t *Tx) UpdateInode(ctx context.Context, in *dal.Inode) error {
	err := t.exec(ctx, `UPDATE inodes SET parent_id = $2, name = $3, partition_id = $4, is_dir = $5, permission = $6,
		owner = $7, group_name = $8, mtime = $9, atime = $10, size = $11, replication = $12, block_size = $13,
		under_construction = $14, client_name = $15, client_machine = $16, symlink = $17, children = $18 WHERE id = $1`,
		inodeArgs(in), true, t.one(fmt.Sprintf("update inode %d", in.ID)))
	if err != nil {
		return err
	}
	in.PartitionID = dal.PartitionID(in.ParentID, in.Name)
	return nil
}

// DeleteInode implements dal.Tx.
func (t *Tx) DeleteInode(ctx context.Context, id int64) error {
	return t.execOne(ctx, fmt.Sprintf("delete inode %d", id), `DELETE FROM inodes WHERE id = $1`, id)
}

// execOne runs a statement that must affect a row (else ErrNotFound).
func (t *Tx) execOne(ctx context.Context, op, sql string, args ...any) error {
	return t.exec(ctx, sql, args, true, t.one(op))
}

const blockCols = `inode_id, block_id, idx, num_bytes, generation_stamp, state, recovery_id`

func scanBlock(r Row) (*dal.Block, error) {
	var b dal.Block
	var idx, state int64
	if err := r.Scan(&b.InodeID, &b.BlockID, &idx, &b.NumBytes, &b.GenerationStamp, &state, &b.RecoveryID); err != nil {
		return nil, err
	}
	b.Index, b.State = int32(idx), dal.BlockState(state)
	return &b, nil
}

// listBlocksSQL lists a file's blocks ($1) in index order.
const listBlocksSQL = `SELECT ` + blockCols + ` FROM blocks WHERE inode_id = $1 ORDER BY idx, block_id`

// readBlocks reads the rows of listBlocksSQL.
func readBlocks(rows Rows) ([]*dal.Block, error) {
	var out []*dal.Block
	for rows.Next() {
		b, err := scanBlock(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// ListBlocks implements dal.Tx.
func (t *Tx) ListBlocks(ctx context.Context, inodeID int64) ([]*dal.Block, error) {
	op := fmt.Sprintf("list blocks of %d", inodeID)
	rows, err := t.c.Query(ctx, listBlocksSQL, inodeID)
	if err != nil {
		return nil, t.d.wrap(op, err)
	}
	defer rows.Close()
	out, err := readBlocks(rows)
	if err != nil {
		return nil, t.d.wrap(op, err)
	}
	return out, nil
}

// queryEach runs qs in order: in one round trip on a Batcher, else one
// after the other.
func (t *Tx) queryEach(ctx context.Context, qs ...Query) error {
	if b, ok := t.c.(Batcher); ok {
		return b.QueryEach(ctx, qs...)
	}
	for _, q := range qs {
		rows, err := t.c.Query(ctx, q.SQL, q.Args...)
		if err != nil {
			return err
		}
		err = q.Read(rows)
		if err == nil {
			err = rows.Err()
		}
		rows.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// GetFileByID implements dal.Tx. Without a lock clause (LockNone, or
// SQLite, whose write transaction holds the database's write lock from its
// start) it is one statement, the inode left-joined with its blocks: one
// snapshot, so the two agree. With one (PostgreSQL's FOR SHARE or FOR
// UPDATE) it is the locking read of the inode followed by the blocks' read,
// two statements sent in one round trip on a Batcher: a single statement
// would take its snapshot before waiting for the row lock, and READ
// COMMITTED re-reads after the wait only the locked row (its latest
// version), not the blocks, which it would return as they were before the
// lock holder's changes. The second statement's snapshot is taken when the
// first has finished, lock granted: every writer of the file's blocks holds
// the inode's lock until it commits (the namespace's lock order), so the
// blocks read are current.
func (t *Tx) GetFileByID(ctx context.Context, id int64, lock dal.LockMode) (*dal.Inode, []*dal.Block, error) {
	op := fmt.Sprintf("get file %d and its blocks (%s lock)", id, lock)
	var in *dal.Inode
	var blocks []*dal.Block
	if suffix := t.d.LockSuffix(lock); suffix != "" {
		err := t.queryEach(ctx, Query{
			SQL:  `SELECT ` + inodeCols + ` FROM inodes WHERE id = $1` + suffix,
			Args: []any{id},
			Read: func(rows Rows) error {
				if !rows.Next() {
					return rows.Err()
				}
				var err error
				in, err = scanInode(rows)
				return err
			},
		}, Query{
			SQL:  listBlocksSQL,
			Args: []any{id},
			Read: func(rows Rows) error {
				var err error
				blocks, err = readBlocks(rows)
				return err
			},
		})
		if err != nil {
			return nil, nil, t.d.wrap(op, err)
		}
		if in == nil {
			return nil, nil, notFound(op)
		}
		return in, blocks, nil
	}
	rows, err := t.c.Query(ctx, fileByIDSQL, id)
	if err != nil {
		return nil, nil, t.d.wrap(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var is inodeScan
		var inodeID, blockID, idx, numBytes, gs, state, recoveryID *int64
		if err := rows.Scan(append(is.dests(), &inodeID, &blockID, &idx, &numBytes, &gs, &state, &recoveryID)...); err != nil {
			return nil, nil, t.d.wrap(op, err)
		}
		if in == nil {
			in = is.inode()
		}
		if blockID == nil { // no blocks: the inode's row alone
			continue
		}
		blocks = append(blocks, &dal.Block{InodeID: *inodeID, BlockID: *blockID, Index: int32(*idx), NumBytes: *numBytes,
			GenerationStamp: *gs, State: dal.BlockState(*state), RecoveryID: *recoveryID})
	}
	if err := rows.Err(); err != nil {
		return nil, nil, t.d.wrap(op, err)
	}
	if in == nil {
		return nil, nil, notFound(op)
	}
	return in, blocks, nil
}

// fileByIDSQL reads inode $1 and its blocks in one statement: a row per
// block in index order, or one row with NULL block columns for no blocks.
var fileByIDSQL = `SELECT ` + prefixed("i.", inodeCols) + `, ` + prefixed("b.", blockCols) +
	` FROM inodes i LEFT JOIN blocks b ON b.inode_id = i.id WHERE i.id = $1 ORDER BY b.idx, b.block_id`

// prefixed qualifies each column of the comma-separated list cols with
// prefix ("i." for "i.id, i.name, ...").
func prefixed(prefix, cols string) string {
	parts := strings.Split(cols, ", ")
	for i, c := range parts {
		parts[i] = prefix + c
	}
	return strings.Join(parts, ", ")
}

// GetBlock implements dal.Tx.
func (t *Tx) GetBlock(ctx context.Context, blockID int64) (*dal.Block, error) {
	op := fmt.Sprintf("get block %d", blockID)
	b, err := scanBlock(t.c.QueryRow(ctx, `SELECT b.inode_id, b.block_id, b.idx, b.num_bytes, b.generation_stamp, b.state, b.recovery_id
		FROM block_lookup l JOIN blocks b ON b.inode_id = l.inode_id AND b.block_id = l.block_id WHERE l.block_id = $1`, blockID))
	if err != nil {
		if t.d.IsNoRows(err) {
			return nil, notFound(op)
		}
		return nil, t.d.wrap(op, err)
	}
	return b, nil
}

// AddBlock implements dal.Tx.
func (t *Tx) AddBlock(ctx context.Context, b *dal.Block) error {
	op := fmt.Sprintf("add block %d to inode %d", b.BlockID, b.InodeID)
	if err := t.exec(ctx, `INSERT INTO blocks (`+blockCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		[]any{b.InodeID, b.BlockID, int64(b.Index), b.NumBytes, b.GenerationStamp, int64(b.State), b.RecoveryID}, false, t.wrapped(op)); err != nil {
		return err
	}
	return t.exec(ctx, `INSERT INTO block_lookup (block_id, inode_id) VALUES ($1, $2)`, []any{b.BlockID, b.InodeID}, false, t.wrapped(op))
}

// UpdateBlock implements dal.Tx.
func (t *Tx) UpdateBlock(ctx context.Context, b *dal.Block) error {
	return t.execOne(ctx, fmt.Sprintf("update block %d of inode %d", b.BlockID, b.InodeID),
		`UPDATE blocks SET idx = $3, num_bytes = $4, generation_stamp = $5, state = $6, recovery_id = $7 WHERE inode_id = $1 AND block_id = $2`,
		b.InodeID, b.BlockID, int64(b.Index), b.NumBytes, b.GenerationStamp, int64(b.State), b.RecoveryID)
}

// DeleteBlock implements dal.Tx.
func (t *Tx) DeleteBlock(ctx context.Context, inodeID, blockID int64) error {
	return t.execOne(ctx, fmt.Sprintf("delete block %d of inode %d", blockID, inodeID),
		`DELETE FROM blocks WHERE inode_id = $1 AND block_id = $2`, inodeID, blockID)
}

const replicaCols = `inode_id, block_id, storage_id, state`

func (t *Tx) queryReplicas(ctx context.Context, op, sql string, args ...any) ([]*dal.Replica, error) {
	rows, err := t.c.Query(ctx, sql, args...)
	if err != nil {
		return nil, t.d.wrap(op, err)
	}
	defer rows.Close()
	var out []*dal.Replica
	for rows.Next() {
		var r dal.Replica
		var state int64
		if err := rows.Scan(&r.InodeID, &r.BlockID, &r.StorageID, &state); err != nil {
			return nil, t.d.wrap(op, err)
		}
		r.State = dal.ReplicaState(state)
		out = append(out, &r)
	}
	if err := rows.Err(); err != nil {
		return nil, t.d.wrap(op, err)
	}
	return out, nil
}

// AddReplica implements dal.Tx.
func (t *Tx) AddReplica(ctx context.Context, r *dal.Replica) error {
	return t.exec(ctx, `INSERT INTO replicas (`+replicaCols+`) VALUES ($1, $2, $3, $4)`,
		[]any{r.InodeID, r.BlockID, r.StorageID, int64(r.State)}, false,
		t.wrapped(fmt.Sprintf("add replica of block %d on %q", r.BlockID, r.StorageID)))
}

// UpdateReplicaState implements dal.Tx.
func (t *Tx) UpdateReplicaState(ctx context.Context, inodeID, blockID int64, storageID string, state dal.ReplicaState) error {
	return t.execOne(ctx, fmt.Sprintf("update replica of block %d on %q", blockID, storageID),
		`UPDATE replicas SET state = $4 WHERE inode_id = $1 AND block_id = $2 AND storage_id = $3`,
		inodeID, blockID, storageID, int64(state))
}

// RemoveReplica implements dal.Tx.
func (t *Tx) RemoveReplica(ctx context.Context, inodeID, blockID int64, storageID string) error {
	return t.execOne(ctx, fmt.Sprintf("remove replica of block %d on %q", blockID, storageID),
		`DELETE FROM replicas WHERE inode_id = $1 AND block_id = $2 AND storage_id = $3`, inodeID, blockID, storageID)
}

// ListReplicas implements dal.Tx.
func (t *Tx) ListReplicas(ctx context.Context, inodeID, blockID int64) ([]*dal.Replica, error) {
	return t.queryReplicas(ctx, fmt.Sprintf("list replicas of block %d", blockID),
		`SELECT `+replicaCols+` FROM replicas WHERE inode_id = $1 AND block_id = $2 ORDER BY storage_id`, inodeID, blockID)
}

// ListFileReplicas implements dal.Tx.
func (t *Tx) ListFileReplicas(ctx context.Context, inodeID int64) ([]*dal.Replica, error) {
	return t.queryReplicas(ctx, fmt.Sprintf("list replicas of inode %d", inodeID),
		`SELECT `+replicaCols+` FROM replicas WHERE inode_id = $1 ORDER BY block_id, storage_id`, inodeID)
}

// ListStorageReplicas implements dal.Tx.
func (t *Tx) ListStorageReplicas(ctx context.Context, storageID string, afterBlockID int64, limit int) ([]*dal.Replica, error) {
	return t.queryReplicas(ctx, fmt.Sprintf("list replicas on %q", storageID),
		`SELECT `+replicaCols+` FROM replicas WHERE storage_id = $1 AND block_id > $2 ORDER BY block_id LIMIT $3`,
		storageID, afterBlockID, limitArg(limit))
}

// listReplicaStoragesSQL is ListReplicaStorages's loose index scan: a
// recursive CTE whose every step is one probe of replicas_storage
// (storage_id, block_id) for the first storage id after the one before
// (ORDER BY storage_id LIMIT 1, served by the index on both backends:
// PostgreSQL has no skip scan, and a DISTINCT there, or on SQLite
// without statistics, reads every replicas row of the storages it passes).
// It stops after $2 ids or at the table's last storage. Scalar subqueries
// rather than a parenthesised first SELECT, which SQLite does not parse;
// the counter is BIGINT so that $2 binds as one.
const listReplicaStoragesSQL = `WITH RECURSIVE s (storage_id, n) AS (
	SELECT (SELECT storage_id FROM replicas WHERE storage_id > $1 ORDER BY storage_id LIMIT 1), CAST(1 AS BIGINT)
	UNION ALL
	SELECT (SELECT r.storage_id FROM replicas r WHERE r.storage_id > s.storage_id ORDER BY r.storage_id LIMIT 1), s.n + 1
	FROM s WHERE s.storage_id IS NOT NULL AND s.n < $2
)
SELECT storage_id FROM s WHERE storage_id IS NOT NULL ORDER BY n`

// ListReplicaStorages implements dal.Tx.
func (t *Tx) ListReplicaStorages(ctx context.Context, after string, limit int) ([]string, error) {
	op := fmt.Sprintf("list storages with replicas after %q", after)
	rows, err := t.c.Query(ctx, listReplicaStoragesSQL, after, limitArg(limit))
	if err != nil {
		return nil, t.d.wrap(op, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var sid string
		if err := rows.Scan(&sid); err != nil {
			return nil, t.d.wrap(op, err)
		}
		out = append(out, sid)
	}
	if err := rows.Err(); err != nil {
		return nil, t.d.wrap(op, err)
	}
	return out, nil
}

// GetLease implements dal.Tx.
func (t *Tx) GetLease(ctx context.Context, holder string) (*dal.Lease, error) {
	op := fmt.Sprintf("get lease of %q", holder)
	var l dal.Lease
	err := t.c.QueryRow(ctx, `SELECT holder, last_renewal FROM leases WHERE holder = $1`, holder).Scan(&l.Holder, &l.LastRenewal)
	if err != nil {
		if t.d.IsNoRows(err) {
			return nil, notFound(op)
		}
		return nil, t.d.wrap(op, err)
	}
	return &l, nil
}

// PutLease implements dal.Tx.
func (t *Tx) PutLease(ctx context.Context, l *dal.Lease) error {
	return t.exec(ctx, `INSERT INTO leases (holder, last_renewal) VALUES ($1, $2)
		ON CONFLICT (holder) DO UPDATE SET last_renewal = excluded.last_renewal`, []any{l.Holder, l.LastRenewal}, false,
		t.wrapped(fmt.Sprintf("put lease of %q", l.Holder)))
}

// DeleteLease implements dal.Tx.
func (t *Tx) DeleteLease(ctx context.Context, holder string) error {
	return t.execOne(ctx, fmt.Sprintf("delete lease of %q", holder), `DELETE FROM leases WHERE holder = $1`, holder)
}

// DeleteIdleLease implements dal.Tx. One statement: on PostgreSQL a
// renewal committed while it waited for the row's lock is seen by the
// re-check of its WHERE clause (READ COMMITTED), on SQLite the writer is
// alone.
func (t *Tx) DeleteIdleLease(ctx context.Context, holder string, beforeMillis int64) (bool, error) {
	n, err := t.c.Exec(ctx, `DELETE FROM leases WHERE holder = $1 AND last_renewal < $2
		AND NOT EXISTS (SELECT 1 FROM lease_paths WHERE lease_paths.holder = $1)`, holder, beforeMillis)
	if err != nil {
		return false, t.d.wrap(fmt.Sprintf("delete idle lease of %q", holder), err)
	}
	return n > 0, nil
}

// ListExpiredLeases implements dal.Tx.
func (t *Tx) ListExpiredLeases(ctx context.Context, beforeMillis int64, limit int) ([]*dal.Lease, error) {
	op := fmt.Sprintf("list leases renewed before %d", beforeMillis)
	rows, err := t.c.Query(ctx, `SELECT holder, last_renewal FROM leases WHERE last_renewal < $1 ORDER BY last_renewal, holder LIMIT $2`,
		beforeMillis, limitArg(limit))
	if err != nil {
		return nil, t.d.wrap(op, err)
	}
	defer rows.Close()
	var out []*dal.Lease
	for rows.Next() {
		var l dal.Lease
		if err := rows.Scan(&l.Holder, &l.LastRenewal); err != nil {
			return nil, t.d.wrap(op, err)
		}
		out = append(out, &l)
	}
	if err := rows.Err(); err != nil {
		return nil, t.d.wrap(op, err)
	}
	return out, nil
}

// AddLeasePath implements dal.Tx.
func (t *Tx) AddLeasePath(ctx context.Context, p *dal.LeasePath) error {
	return t.exec(ctx, `INSERT INTO lease_paths (inode_id, holder, path) VALUES ($1, $2, $3)`, []any{p.InodeID, p.Holder, p.Path}, false,
		t.wrapped(fmt.Sprintf("add lease path %d for %q", p.InodeID, p.Holder)))
}

// GetLeasePath implements dal.Tx.
func (t *Tx) GetLeasePath(ctx context.Context, inodeID int64) (*dal.LeasePath, error) {
	op := fmt.Sprintf("get lease path of inode %d", inodeID)
	var p dal.LeasePath
	err := t.c.QueryRow(ctx, `SELECT inode_id, holder, path FROM lease_paths WHERE inode_id = $1`, inodeID).Scan(&p.InodeID, &p.Holder, &p.Path)
	if err != nil {
		if t.d.IsNoRows(err) {
			return nil, notFound(op)
		}
		return nil, t.d.wrap(op, err)
	}
	return &p, nil
}

// ListLeasePaths implements dal.Tx.
// HasLeasePaths implements dal.Tx.
func (t *Tx) HasLeasePaths(ctx context.Context, holder string, except int64) (bool, error) {
	var one int
	err := t.c.QueryRow(ctx, `SELECT 1 FROM lease_paths WHERE holder = $1 AND inode_id <> $2 LIMIT 1`, holder, except).Scan(&one)
	switch {
	case err == nil:
		return true, nil
	case t.d.IsNoRows(err):
		return false, nil
	}
	return false, t.d.wrap(fmt.Sprintf("look for lease paths of %q", holder), err)
}

// ListLeasePaths implements dal.Tx.
func (t *Tx) ListLeasePaths(ctx context.Context, holder string) ([]*dal.LeasePath, error) {
	op := fmt.Sprintf("list lease paths of %q", holder)
	rows, err := t.c.Query(ctx, `SELECT inode_id, holder, path FROM lease_paths WHERE holder = $1 ORDER BY inode_id`, holder)
	if err != nil {
		return nil, t.d.wrap(op, err)
	}
	defer rows.Close()
	var out []*dal.LeasePath
	for rows.Next() {
		var p dal.LeasePath
		if err := rows.Scan(&p.InodeID, &p.Holder, &p.Path); err != nil {
			return nil, t.d.wrap(op, err)
		}
		out = append(out, &p)
	}
	if err := rows.Err(); err != nil {
		return nil, t.d.wrap(op, err)
	}
	return out, nil
}

// DeleteLeasePath implements dal.Tx.
func (t *Tx) DeleteLeasePath(ctx context.Context, inodeID int64) error {
	return t.execOne(ctx, fmt.Sprintf("delete lease path of inode %d", inodeID), `DELETE FROM lease_paths WHERE inode_id = $1`, inodeID)
}

// GetVariable implements dal.Tx.
func (t *Tx) GetVariable(ctx context.Context, name string) (int64, error) {
	op := fmt.Sprintf("get variable %q", name)
	var v int64
	if err := t.c.QueryRow(ctx, `SELECT value FROM variables WHERE name = $1`, name).Scan(&v); err != nil {
		if t.d.IsNoRows(err) {
			return 0, notFound(op)
		}
		return 0, t.d.wrap(op, err)
	}
	return v, nil
}

// SetVariable implements dal.Tx.
func (t *Tx) SetVariable(ctx context.Context, name string, value int64) error {
	return t.exec(ctx, `INSERT INTO variables (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, []any{name, value}, false, t.wrapped(fmt.Sprintf("set variable %q", name)))
}

// ReserveIDs implements dal.Tx. The UPDATE takes the row's write lock, so
// concurrent reservations of one counter serialise on it.
func (t *Tx) ReserveIDs(ctx context.Context, name string, n int64) (dal.IDRange, error) {
	op := fmt.Sprintf("reserve %d ids of %q", n, name)
	if n < 1 {
		return dal.IDRange{}, fmt.Errorf("dal: %s: count must be at least 1", op)
	}
	var last int64
	if err := t.c.QueryRow(ctx, `UPDATE variables SET value = value + $2 WHERE name = $1 RETURNING value`, name, n).Scan(&last); err != nil {
		if t.d.IsNoRows(err) {
			return dal.IDRange{}, notFound(op)
		}
		return dal.IDRange{}, t.d.wrap(op, err)
	}
	return dal.IDRange{First: last - n + 1, Last: last}, nil
}

// SchemaVersion reads the recorded schema version (0 for an empty database).
func SchemaVersion(ctx context.Context, c Conn, d *Dialect) (int, error) {
	var has bool
	if err := c.QueryRow(ctx, d.HasVariablesTable).Scan(&has); err != nil {
		return 0, d.wrap("read schema version", err)
	}
	if !has {
		return 0, nil
	}
	var v int64
	err := c.QueryRow(ctx, `SELECT value FROM variables WHERE name = $1`, dal.VarSchemaVersion).Scan(&v)
	if err != nil {
		if d.IsNoRows(err) {
			return 0, errors.New("dal: read schema version: the variables table has no schema_version row (not a kura metadata database?)")
		}
		return 0, d.wrap("read schema version", err)
	}
	return int(v), nil
}

// Migrate brings the database on c, inside the caller's transaction, to the
// last version of ms: it refuses a database newer than that, applies the
// missing migrations in order and records the new version. It returns the
// version the database had and the version it has now.
func Migrate(ctx context.Context, c Conn, d *Dialect, ms []dal.Migration) (from, to int, err error) {
	if err := dal.ValidateMigrations(ms); err != nil {
		return 0, 0, err
	}
	if d.MigrationLock != "" {
		if _, err := c.Exec(ctx, d.MigrationLock); err != nil {
			return 0, 0, d.wrap("lock schema for migration", err)
		}
	}
	from, err = SchemaVersion(ctx, c, d)
	if err != nil {
		return 0, 0, err
	}
	known := ms[len(ms)-1].Version
	if err := dal.CheckSchemaVersion(from, known); err != nil {
		return from, from, err
	}
	for _, m := range ms[from:] {
		for i, s := range m.Statements(d.Name) {
			if _, err := c.Exec(ctx, s); err != nil {
				return from, from, d.wrap(fmt.Sprintf("migration %d (%s), statement %d", m.Version, m.Name, i+1), err)
			}
		}
	}
	if from != known {
		if _, err := c.Exec(ctx, `INSERT INTO variables (name, value) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`, dal.VarSchemaVersion, int64(known)); err != nil {
			return from, from, d.wrap("record schema version", err)
		}
	}
	return from, known, nil
}
