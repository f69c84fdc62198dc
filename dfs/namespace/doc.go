// Package namespace is dfs's file-system namespace: HDFS's semantics (the
// FSNamesystem / FSDir*Op layer of a namenode) over the metadata database
// behind dfs/dal, in the manner of HopsFS. A Namespace holds no metadata of
// its own: every operation is one database transaction, so any number of
// Namespace instances (namenodes) may serve the same database at once.
//
// Operations take the caller (hdfs.User) and check permissions as HDFS's
// FSPermissionChecker does (dfs/hdfs.Checker, with a configured superuser and
// supergroup); paths are validated and limited by dfs/hdfs (no "..", no empty
// components, component length, path length and depth, directory items).
// Errors are Hadoop's exception classes (*hdfs.RemoteException) wrapped with
// the operation and path: errors.Is(err, hdfs.ErrFileNotFound) holds and
// hdfs.ToRemote(err) recovers the exception to report.
//
// # Transactions and locking
//
// An operation resolves its path(s) from the root to the leaf with plain
// read-committed reads (dal.LockNone), then takes row locks on the inodes it
// changes: the target (dal.LockWrite) and, when the operation changes the
// parent (create, mkdirs, delete, rename: a child added or removed, the
// parent's modification time), the parent (dal.LockWrite). After locking it
// checks that every locked inode still has the parent and name the
// resolution saw (and that a child the resolution found missing is still
// missing); if not, a concurrent operation moved something, and the
// transaction is rolled back and run again from the resolution (a transient
// error, retried by dal.Store.Tx with backoff; if retries run out the caller
// gets a RetriableException). Read-only operations (Stat, List,
// ContentSummary, Fsck) run in dal.Store.ReadTx without locks.
//
// A directory's number of entries is stored in its row (dal.Inode.Children,
// as HDFS keeps it in memory) and changed in the transaction that adds or
// removes an entry, on the parent row that transaction already locks and
// writes for the modification time; the max-directory-items limit and a
// status's childrenNum read it, so neither costs a count over the
// directory. Because the parent is write-locked and re-read after locking,
// concurrent creates in one directory from several namenodes serialise on
// its row and no update is lost. Fsck compares every stored count with the
// directory's real number of entries.
//
// Resolution may start from the resolving cache, HopsFS's hint of (parent
// id, name) -> inode id per Namespace (Config.ResolveCacheSize): the cached
// prefix of the path is read in one batched primary-key read, still
// unlocked, and each row is checked against the path's parent ids and names;
// a mismatch evicts the entry and resolution goes on step by step. The rows
// it yields are those step-by-step resolution reads, so locking and
// re-validation below are unchanged, and a stale entry (a rename or delete
// through another namenode) costs a fallback, never a wrong answer: no
// invalidation between namenodes is needed.
//
// Lock order, to avoid deadlocks between namenodes:
//
//  1. Entity types in HopsFS's fixed order: inodes, then leases, then lease
//     paths, then blocks, then replicas. An operation never locks or writes
//     an inode after it has written a lease, lease path, block or replica.
//  2. Inodes of one operation, which may come from several paths (rename's
//     source and destination), are locked in ascending inode id, not in path
//     order: ids identify rows stably even while concurrent renames change
//     paths, and a batch of them can be locked with one ordered query. A
//     lease row is "locked" by writing it (dal.Tx.PutLease), before the
//     operation reads that holder's lease paths.
//
// A rename of a directory also takes shared locks (dal.LockRead) on every
// ancestor of the destination, in the same id order. Two directory renames
// that could each move one directory under the other (and so cut a cycle
// out of the tree) therefore conflict on a row: one waits for the other and
// then finds its resolution stale. Renames of files do not need this, and
// creates and deletes lock only a parent and a child.
//
// On SQLite a write transaction holds the database's write lock from its
// start (BEGIN IMMEDIATE), so every read inside it is as stable as a locked
// one; the namespace then skips the re-reads that locking needs on
// PostgreSQL.
//
// A child the resolution found missing is not read again after its parent
// is locked: the insert (or a rename's move) collides on the (parent, name)
// key with one created meanwhile, and the collision is a stale resolution,
// retried. Writes to rows the transaction already holds (the parent's
// modification time and count, the file at complete, its blocks, the
// holder's lease and lease path) go through dal.Tx.Deferred: on PostgreSQL
// they travel with the next statement or the COMMIT (and the BEGIN with the
// first statement), so a create costs five round trips to the database
// instead of ten, and the complete closing it five instead of nine.
//
// # Large deletes
//
// A recursive delete whose subtree has at most Config.DeleteBatch inodes
// runs in one transaction, leaves first. A larger subtree is first detached
// in one transaction: its root is moved out of the tree, under the reserved
// parent id DetachedParentID (named by its inode id), which makes the delete
// atomic for every other operation (its old parent loses the entry then; the
// counts inside the subtree go with it). The subtree is then deleted in
// transactions of at most DeleteBatch inodes each, leaves first (each
// directory only once it is empty). If the namenode dies in between, the
// detached subtree stays in the database, unreachable from "/", and
// PurgeDetached (run by the namenode's housekeeping, and by anyone after a
// crash) finishes the job; Fsck reports such subtrees as pending deletes, not
// as orphans.
//
// # Ids
//
// Inode ids, block ids and generation stamps come from IDGen, HopsFS's
// batched id generator: ranges reserved with dal.Tx.ReserveIDs in short
// transactions of their own and handed out from memory, with the next range
// fetched in the background when half of the current one is used.
package namespace
