// Package dal is dfs's data-access layer, the role of HopsFS's DAL: the one
// interface through which the namespace reads and writes metadata (inodes,
// blocks, replicas, leases, counters) in a transactional SQL database.
//
// Every namespace operation runs as one call to Store.Tx: the function given
// to Tx receives a Tx and performs its reads and writes through it; Tx commits
// when the function returns nil and rolls back otherwise. Transient database
// failures (a PostgreSQL serialization failure or deadlock, SQLITE_BUSY) make
// Tx roll back and run the function again, with exponential backoff and jitter,
// a bounded number of times; the function must therefore have no side effects
// outside the transaction that it cannot repeat.
//
// The package holds the interface and the shared types, the versioned schema
// (Migrations) and the retry policy. Implementations live in
// dfs/dal/sqlite (embedded, the default) and dfs/dal/postgres (PostgreSQL and
// PostgreSQL-wire databases); dfs/dal/open opens either from a URL.
//
// # Locking
//
// Reads of inodes take a LockMode, HopsFS's three lock levels:
//
//   - LockNone: a read-committed read, no row lock (ancestors of a path).
//   - LockRead: a shared row lock, held until the transaction ends.
//   - LockWrite: an exclusive row lock, held until the transaction ends
//     (the target of an operation, and its parent when the parent changes).
//
// On PostgreSQL these map to plain SELECT, SELECT ... FOR SHARE and
// SELECT ... FOR UPDATE inside a READ COMMITTED transaction. On SQLite a
// write transaction (Store.Tx) is BEGIN IMMEDIATE: it holds the database's
// single write lock from its first statement to its end, so every row it reads
// is already protected as if locked for writing, and LockMode changes nothing;
// read-only transactions (Store.ReadTx) read a WAL snapshot and never block a
// writer. To avoid deadlocks on PostgreSQL, callers take row locks in one fixed
// order: by entity type (inode, lease, lease path, block, replica, as HopsFS),
// and inodes of several paths in sorted order.
package dal

import "context"

// Store is an open metadata database.
type Store interface {
	// Tx runs fn in one read-write transaction and commits it when fn returns
	// nil. A transient failure (in fn's statements or at commit) rolls back
	// and runs fn again, up to the store's retry policy; fn's own error is
	// returned as is (after rollback) unless it is transient (see
	// MarkTransient). fn must not start another transaction on the same
	// store: on SQLite, with its single writer connection, that deadlocks.
	Tx(ctx context.Context, fn func(Tx) error) error
	// ReadTx runs fn in one read-only transaction: a consistent snapshot on
	// SQLite (never blocked by a writer); on PostgreSQL read-committed
	// semantics (each statement sees the data committed when it starts),
	// run as read-only autocommit statements on one connection. Writes inside it fail. Its reads should use LockNone:
	// PostgreSQL refuses row locks in a read-only transaction (SQLite
	// ignores lock modes).
	ReadTx(ctx context.Context, fn func(Tx) error) error
	// SchemaVersion reports the schema version of the open database.
	SchemaVersion(ctx context.Context) (int, error)
	// Backend names the implementation: "sqlite" or "postgres".
	Backend() string
	// Close releases the store's connections. Transactions must have ended.
	Close() error
}

// Tx is one transaction. Its methods must be called only from within the
// function given to Store.Tx or Store.ReadTx, and not concurrently. Lookups of
// a missing row return an error wrapping ErrNotFound; inserts that collide
// with an existing key return an error wrapping ErrExists.
type Tx interface {
	// Deferred returns a view of the transaction whose writes may be held
	// back and sent with its next statement or its commit (one round trip
	// for several on a networked database; the same as the transaction on
	// an embedded one). A held-back write's error, ErrNotFound for no row
	// included, comes out of that later call and fails the transaction, so
	// it is for writes whose errors the caller does not tell apart: a row
	// the transaction holds locked, a lease, a lease path. Reads on the view
	// send what is held first, so they see every earlier write.
	Deferred() Tx

	// GetInode reads the inode named name in directory parentID, taking lock.
	GetInode(ctx context.Context, parentID int64, name string, lock LockMode) (*Inode, error)
	// GetInodeByID reads the inode with the given id, taking lock.
	GetInodeByID(ctx context.Context, id int64, lock LockMode) (*Inode, error)
	// GetInodesByIDs reads the inodes with the given ids in one batched
	// primary-key read (HopsFS's resolving cache validates a cached path this
	// way), taking lock on each in ascending id order. Missing ids are left
	// out; the result is in ascending id order.
	GetInodesByIDs(ctx context.Context, ids []int64, lock LockMode) ([]*Inode, error)
	// ReadPath reads what resolving a path through the resolving cache
	// needs, in one statement: the inodes with the given ids, without a lock
	// except lockID (0: none), which is read with lock (waiting for it and
	// returning its latest committed version); and, when child is not nil,
	// the inode child names, if it exists (the first component the cache
	// did not know, typically a file being created). Missing ids are left
	// out; the result is in no particular order.
	ReadPath(ctx context.Context, ids []int64, lockID int64, lock LockMode, child *InodeKey) ([]*Inode, error)
	// ListChildren returns up to limit children of directory parentID whose
	// names sort after after (byte order), in name order; after "" starts at
	// the beginning. limit <= 0 means no limit.
	ListChildren(ctx context.Context, parentID int64, after string, limit int) ([]*Inode, error)
	// CountChildren returns the number of children of directory parentID,
	// counting them (O(entries)); the stored count is Inode.Children.
	CountChildren(ctx context.Context, parentID int64) (int64, error)
	// InsertInode inserts in; in.PartitionID is computed by the store.
	InsertInode(ctx context.Context, in *Inode) error
	// UpdateInode rewrites every column of the inode with id in.ID, including
	// its parent and name (a rename) and its children count; in.PartitionID
	// is recomputed. Callers write rows they read under a write lock in the
	// same transaction, so that a concurrent change (another entry's
	// children count) is not overwritten.
	UpdateInode(ctx context.Context, in *Inode) error
	// DeleteInode deletes the inode with the given id together with its
	// blocks, their replicas and its lease path (foreign-key cascades). It
	// does not delete children: the namespace deletes a subtree leaves first.
	DeleteInode(ctx context.Context, id int64) error

	// GetFileByID reads the inode with the given id, taking lock, and its
	// blocks in index order: what GetInodeByID followed by ListBlocks
	// returns (a missing inode is ErrNotFound), in one round trip. The
	// blocks are read once the lock is granted, so a writer that held the
	// lock and changed the blocks is seen to the end (on PostgreSQL the
	// locking read and the blocks' read are two statements sent together,
	// the second run, with its own snapshot, after the first has its lock:
	// one statement would read the blocks as of a snapshot taken before its
	// lock wait). For a writer's call on its open file (HDFS's fileId).
	GetFileByID(ctx context.Context, id int64, lock LockMode) (*Inode, []*Block, error)
	// ListBlocks returns the blocks of file inodeID in index order.
	ListBlocks(ctx context.Context, inodeID int64) ([]*Block, error)
	// GetBlock reads one block by id (through the block lookup table).
	GetBlock(ctx context.Context, blockID int64) (*Block, error)
	// AddBlock inserts b and its block-lookup row.
	AddBlock(ctx context.Context, b *Block) error
	// UpdateBlock rewrites index, length, generation stamp, state and
	// recovery id of the block (b.InodeID, b.BlockID).
	UpdateBlock(ctx context.Context, b *Block) error
	// DeleteBlock deletes a block, its lookup row and its replicas.
	DeleteBlock(ctx context.Context, inodeID, blockID int64) error

	// AddReplica records a replica; an existing (block, storage) pair is
	// ErrExists.
	AddReplica(ctx context.Context, r *Replica) error
	// UpdateReplicaState sets the state of one replica.
	UpdateReplicaState(ctx context.Context, inodeID, blockID int64, storageID string, state ReplicaState) error
	// RemoveReplica deletes one replica.
	RemoveReplica(ctx context.Context, inodeID, blockID int64, storageID string) error
	// ListReplicas returns the replicas of one block, by storage id.
	ListReplicas(ctx context.Context, inodeID, blockID int64) ([]*Replica, error)
	// ListFileReplicas returns the replicas of every block of file inodeID,
	// by block id then storage id (one read for getBlockLocations).
	ListFileReplicas(ctx context.Context, inodeID int64) ([]*Replica, error)
	// ListStorageReplicas returns up to limit replicas on storage storageID
	// with block id greater than afterBlockID, by block id (block reports,
	// dead-datanode handling). limit <= 0 means no limit.
	ListStorageReplicas(ctx context.Context, storageID string, afterBlockID int64, limit int) ([]*Replica, error)
	// ListReplicaStorages returns up to limit distinct storage ids greater
	// than after (byte order) that have at least one replicas row, in
	// ascending order; after "" starts at the beginning. limit <= 0 means no
	// limit. Its cost is one probe of the replicas_storage index per id
	// returned, however many replicas each storage has (a loose index
	// scan), so a leader can page through every storage the table names,
	// dead or never heard from, without reading the replicas.
	ListReplicaStorages(ctx context.Context, after string, limit int) ([]string, error)

	// GetLease reads the lease of holder.
	GetLease(ctx context.Context, holder string) (*Lease, error)
	// PutLease inserts or replaces the lease of l.Holder (renewal).
	PutLease(ctx context.Context, l *Lease) error
	// DeleteLease deletes the lease of holder and its lease paths.
	DeleteLease(ctx context.Context, holder string) error
	// DeleteIdleLease deletes the lease of holder if, in one atomic step,
	// it was last renewed before beforeMillis and holds no lease path; it
	// reports whether it did. A concurrent renewal or create by the holder
	// either waits for it (and then writes a new lease) or makes it a
	// no-op: the holder never loses a lease path to it.
	DeleteIdleLease(ctx context.Context, holder string, beforeMillis int64) (bool, error)
	// ListExpiredLeases returns up to limit leases last renewed before
	// beforeMillis, oldest first. limit <= 0 means no limit.
	ListExpiredLeases(ctx context.Context, beforeMillis int64, limit int) ([]*Lease, error)
	// AddLeasePath records that p.Holder writes file p.InodeID; the holder's
	// lease must exist, and a file has at most one lease path (ErrExists).
	AddLeasePath(ctx context.Context, p *LeasePath) error
	// GetLeasePath reads the lease path of file inodeID.
	GetLeasePath(ctx context.Context, inodeID int64) (*LeasePath, error)
	// ListLeasePaths returns the lease paths of holder by inode id.
	ListLeasePaths(ctx context.Context, holder string) ([]*LeasePath, error)
	// HasLeasePaths reports whether holder has a lease path for another
	// file than except (0: any file): one index probe, however many files
	// the holder writes.
	HasLeasePaths(ctx context.Context, holder string, except int64) (bool, error)
	// DeleteLeasePath deletes the lease path of file inodeID.
	DeleteLeasePath(ctx context.Context, inodeID int64) error

	// ListNamenodes returns the le_descriptors rows in id order.
	ListNamenodes(ctx context.Context) ([]*Namenode, error)
	// PutNamenode inserts or rewrites the le_descriptors row of n.ID.
	PutNamenode(ctx context.Context, n *Namenode) error
	// DeleteNamenode deletes the le_descriptors row of namenode id.
	DeleteNamenode(ctx context.Context, id int64) error

	// GetVariable reads counter name.
	GetVariable(ctx context.Context, name string) (int64, error)
	// SetVariable sets counter name, creating it when missing.
	SetVariable(ctx context.Context, name string, value int64) error
	// ReserveIDs advances counter name by n (n >= 1) in one locked update and
	// returns the n values reserved, the basis of HopsFS's batched id
	// generator. The counter holds the last value handed out. Reservations
	// by concurrent transactions never overlap. A reservation is undone when
	// its transaction rolls back (the values may then be handed out again),
	// so an id generator reserves in a short transaction of its own.
	ReserveIDs(ctx context.Context, name string, n int64) (IDRange, error)
}
