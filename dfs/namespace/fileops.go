package namespace

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/hdfs"
)

// ErrUnknownBlock is wrapped by BlockReceived's error for a block no file
// has (deleted meanwhile): the datanode should delete its replica.
var ErrUnknownBlock = errors.New("unknown block")

// CreateOptions are the arguments of Create besides the path.
type CreateOptions struct {
	// Perm is the new file's permission, applied as given (the caller
	// applies any umask).
	Perm hdfs.FsPermission
	// Overwrite replaces an existing file (not one another client is
	// writing).
	Overwrite bool
	// CreateParent creates missing ancestors (with Perm plus owner write and
	// execute), else a missing parent is a FileNotFoundException.
	CreateParent bool
	// Replication is the file's replication (0: Config.DefaultReplication).
	Replication int16
	// BlockSize is the file's block size (0: Config.DefaultBlockSize).
	BlockSize int64
	// ClientName is the writer, the holder of the lease (required).
	ClientName string
	// ClientMachine is the writer's host, for messages and placement.
	ClientMachine string
	// Retry marks a create sent again after the first attempt's outcome
	// was lost (its namenode died before answering): a file that
	// ClientName is writing and that has no block yet is then returned as
	// created, where a first attempt gets AlreadyBeingCreatedException.
	Retry bool
}

// LocatedBlock is a block with the datanode storages that hold (or are to
// hold) it.
type LocatedBlock struct {
	// Block is the block.
	Block dal.Block
	// Offset is the block's offset in the file.
	Offset int64
	// Targets are the storages: for a new block, Placement's choice; for an
	// existing block, its recorded replicas (Addr empty: the namenode knows
	// the datanodes' addresses).
	Targets []Target
}

// Create creates the file path open for writing by o.ClientName, who gets
// (or renews) a lease on it (ClientProtocol.create, WebHDFS CREATE's first
// step). Errors: a directory at path, or an existing file without
// Overwrite, is a FileAlreadyExistsException; a file being written by a
// client whose lease is current (or by the same client) is an
// AlreadyBeingCreatedException, with or without Overwrite; a missing parent
// without CreateParent is a FileNotFoundException ("Parent directory doesn't
// exist: /a"); a file above the path a ParentNotDirectoryException;
// replication and block size out of bounds IOExceptions. A file whose
// writer's lease passed the soft limit is overwritten at once (as HDFS's
// create does, its blocks and the old writer's unfinished bytes go with
// it); without Overwrite its lease is recovered first, as Append's
// takeover does (a RecoveryInProgressException while its last block is
// recovered), and then it is a FileAlreadyExistsException. A file whose
// last block is under recovery while its writer's lease is current is a
// RecoveryInProgressException. Checks:
// traverse, WRITE on the deepest existing ancestor, and WRITE on the file
// when overwriting; limits as Mkdirs. The new file belongs to the caller and
// takes its parent's group.
func (ns *Namespace) Create(ctx context.Context, u hdfs.User, path string, o CreateOptions) (*FileStatus, error) {
	if o.Replication == 0 {
		o.Replication = ns.cfg.DefaultReplication
	}
	if o.BlockSize == 0 {
		o.BlockSize = ns.cfg.DefaultBlockSize
	}
	if err := ns.checkCreateArgs(path, o); err != nil {
		return nil, wrapErr("create", path, err)
	}
	var st *FileStatus
	var created *dal.Inode
	var started *takeover
	var renewed int64 // when the lease was written; 0: not written
	err := ns.update(ctx, "create", path, func(tx dal.Tx) error {
		st, created, started, renewed = nil, nil, nil, 0
		p, err := ns.resolveLocking(ctx, tx, path, lockNewChildParent())
		if err != nil {
			return err
		}
		if err := ns.check(u, p, hdfs.Need{}); err != nil {
			return err
		}
		last := p.last()
		if p.isRoot() || (last != nil && last.IsDir) {
			return hdfs.ErrFileAlreadyExists.New(p.path + " already exists as a directory")
		}
		need := hdfs.OpCreate.Need()
		if last != nil && o.Overwrite {
			need = hdfs.OpCreateOverwrite.Need()
		}
		if err := ns.check(u, p, need); err != nil {
			return err
		}
		if err := ns.limits.CheckPathLength("create", p.path); err != nil {
			return err
		}
		n := len(p.comps)
		perm := o.Perm & hdfs.PermMask
		if k := p.existing(); last == nil && k < n-1 {
			if !o.CreateParent {
				return hdfs.ParentNotFound(p.parentPath())
			}
			if err := ns.createAncestors(ctx, tx, u, p, k, n-1, perm, perm); err != nil {
				return err
			}
		} else {
			if err := ns.lockInodes(ctx, tx, lockRef{p, n - 1, dal.LockWrite}, lockRef{p, n, dal.LockWrite}); err != nil {
				return err
			}
			// A file that appeared since the resolution collides with the
			// insert below: a stale resolution, retried (insertChild).
			last = p.last()
		}
		parent := p.parent()
		now := ns.now()
		if last != nil {
			if last.UnderConstruction && o.Retry && last.ClientName == o.ClientName {
				blocks, err := tx.ListBlocks(ctx, last.ID)
				if err != nil {
					return err
				}
				if len(blocks) == 0 {
					st = statusOf(last)
					return nil
				}
			}
			if last.UnderConstruction {
				ok, err := ns.leaseRecoverable(ctx, tx, last, o.ClientName, now)
				if err != nil {
					return err
				}
				if !ok || !o.Overwrite {
					blocks, err := tx.ListBlocks(ctx, last.ID)
					if err != nil {
						return err
					}
					if !ok {
						return ns.leaseHeld(hdfs.LeaseOpCreate, p.path, o.ClientName, o.ClientMachine, last, blocks)
					}
					// The file stays: recover its lease (and its last
					// block) before saying it exists, as HDFS does.
					tk, err := ns.takeoverRecovery(ctx, tx, hdfs.LeaseOpCreate, p.path, o.ClientName, o.ClientMachine, last, blocks)
					if err != nil || tk != nil {
						started = tk
						return err
					}
				}
			}
			if !o.Overwrite {
				return hdfs.FileExists(p.path, o.ClientMachine)
			}
			// Deleting the inode deletes its blocks, replicas and lease path.
			ns.forget(last.ID)
			if err := tx.DeleteInode(ctx, last.ID); err != nil {
				return err
			}
		} else {
			if err := ns.checkNewChild(p.parentPath(), p.name(), parent.Children); err != nil {
				return err
			}
			// A new entry; an overwritten file is replaced (net 0).
			parent.Children++
		}
		id, err := take(ns.inodeIDs)
		if err != nil {
			return err
		}
		in := &dal.Inode{
			ID: id, ParentID: parent.ID, Name: p.name(), Permission: uint16(perm),
			Owner: u.Name, Group: parent.Group, MTime: now, ATime: now,
			Replication: o.Replication, BlockSize: o.BlockSize,
			UnderConstruction: true, ClientName: o.ClientName, ClientMachine: o.ClientMachine,
		}
		if err := insertChild(ctx, tx, in); err != nil {
			return err
		}
		if err := ns.touch(ctx, tx, parent, now); err != nil {
			return err
		}
		w := tx.Deferred()
		if !ns.renewals.fresh(o.ClientName, now) {
			if err := w.PutLease(ctx, &dal.Lease{Holder: o.ClientName, LastRenewal: now}); err != nil {
				return err
			}
			renewed = now
		}
		if err := w.AddLeasePath(ctx, &dal.LeasePath{InodeID: in.ID, Holder: o.ClientName, Path: p.path}); err != nil {
			return err
		}
		st = statusOf(in)
		created = in
		return nil
	})
	if err == nil && renewed != 0 {
		ns.renewals.wrote(o.ClientName, renewed)
	}
	if err == nil && started != nil {
		ns.startTakeover(started)
		return nil, wrapErr("create", path, takeoverBusy(hdfs.LeaseOpCreate, started.br.Path, o.ClientName, o.ClientMachine))
	}
	if err == nil && created != nil && ns.rcache != nil {
		// Calls by path (an old client's addBlock and complete, anyone's
		// stat) resolve the path again: let them find the new file in the
		// cache (a hint, checked against the row it names like every
		// entry). A writer's calls by file id read the file by id.
		ns.rcache.put(created.ParentID, created.Name, created.ID)
	}
	return st, err
}

// checkCreateArgs checks Create's arguments with HDFS's messages.
func (ns *Namespace) checkCreateArgs(path string, o CreateOptions) error {
	if o.ClientName == "" {
		return hdfs.ErrIllegalArgument.New("create " + path + ": client name is empty")
	}
	if err := ns.checkReplication(path, o.Replication); err != nil {
		return err
	}
	if o.BlockSize < 0 || (ns.cfg.MinBlockSize > 0 && o.BlockSize < ns.cfg.MinBlockSize) {
		return hdfs.ErrIO.New("Specified block size is less than configured minimum value " +
			"(dfs.namenode.fs-limits.min-block-size): " + strconv.FormatInt(o.BlockSize, 10) +
			" < " + strconv.FormatInt(ns.cfg.MinBlockSize, 10))
	}
	return nil
}

// leaseRecoverable reports whether holder may take over the file in, which
// is being written: only another client, and only when the writer's lease
// is gone or past the soft limit.
func (ns *Namespace) leaseRecoverable(ctx context.Context, tx dal.Tx, in *dal.Inode, holder string, now int64) (bool, error) {
	if in.ClientName == holder {
		return false, nil
	}
	l, err := tx.GetLease(ctx, in.ClientName)
	if errors.Is(err, dal.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return l.LastRenewal < now-ns.cfg.LeaseSoftLimit.Milliseconds(), nil
}

// closeBlocks is lease recovery's block step: with the lengths known, an
// empty block still under construction (or under an unfinished recovery)
// at the end (allocated, never written, or never hflushed) is dropped and
// the others become complete, with their generation stamps (a recovery
// that did not commit leaves no trace: its id is cleared). It returns the
// kept blocks' total length. It writes blocks only: call it after the
// inode and lease writes.
func closeBlocks(ctx context.Context, tx dal.Tx, blocks []*dal.Block) (int64, error) {
	for len(blocks) > 0 {
		b := blocks[len(blocks)-1]
		if !unfinished(b) || b.NumBytes != 0 {
			break
		}
		if err := tx.DeleteBlock(ctx, b.InodeID, b.BlockID); err != nil {
			return 0, err
		}
		blocks = blocks[:len(blocks)-1]
	}
	var size int64
	for _, b := range blocks {
		size += b.NumBytes
		if b.State != dal.BlockComplete || b.RecoveryID != 0 {
			b.State, b.RecoveryID = dal.BlockComplete, 0
			if err := tx.UpdateBlock(ctx, b); err != nil {
				return 0, err
			}
		}
	}
	return size, nil
}

// keptLength is the length closeBlocks will leave.
func keptLength(blocks []*dal.Block) int64 {
	var size int64
	for _, b := range blocks {
		size += b.NumBytes
	}
	return size
}

// AppendResult is what Append returns.
type AppendResult struct {
	// Status is the file's status (now under construction).
	Status *FileStatus
	// LastBlock is the last block when it is not full, reopened under a new
	// generation stamp for the client to continue; nil when the file is
	// empty or its last block full (the client then calls AddBlock).
	LastBlock *LocatedBlock
	// LastLength is the length of the file's last block, full or not (0
	// for an empty file): what the client's first AddBlock passes as the
	// previous block's length.
	LastLength int64
	// LastBlockID is the id of the file's last block (0 for an empty file):
	// the previous block of the client's first AddBlockAfter.
	LastBlockID int64
}

// Append opens the closed file path for writing by clientName
// (ClientProtocol.append, WebHDFS APPEND). Errors: a missing path is a
// FileNotFoundException, a directory too ("Path is not a file: /a"); a file
// being written is an AlreadyBeingCreatedException (a
// RecoveryInProgressException while its last block is under recovery)
// unless its writer's lease passed the soft limit. The file is then taken
// over (HDFS's lease recovery on append): with a BlockRecoverer set (see
// SetBlockRecoverer) and its last block still being written with replicas
// recorded, block recovery starts and the call fails with a
// RecoveryInProgressException ("... lease recovery is in progress. Try
// again later."), which clients retry until the recovery has closed the
// file with what the replicas agree on (at least every byte the old
// writer hflushed); otherwise (nothing to recover, or no recoverer) the
// file is closed at once with the block lengths recorded and reopened.
// Checks: traverse, WRITE on the file.
func (ns *Namespace) Append(ctx context.Context, u hdfs.User, path, clientName, clientMachine string) (*AppendResult, error) {
	if clientName == "" {
		return nil, wrapErr("append", path, hdfs.ErrIllegalArgument.New("append "+path+": client name is empty"))
	}
	var res *AppendResult
	var started *takeover
	err := ns.update(ctx, "append", path, func(tx dal.Tx) error {
		res, started = nil, nil
		p, err := ns.resolveLocking(ctx, tx, path, lockLast())
		if err != nil {
			return err
		}
		if err := ns.check(u, p, hdfs.Need{}); err != nil {
			return err
		}
		if p.last() == nil {
			return hdfs.ErrFileNotFound.New("failed to append to non-existent file " + p.path + " for client " + clientMachine)
		}
		if err := ns.lockInodes(ctx, tx, lockRef{p, len(p.nodes) - 1, dal.LockWrite}); err != nil {
			return err
		}
		in := p.last()
		if in.IsDir {
			return hdfs.ErrFileNotFound.New("Path is not a file: " + p.path)
		}
		if err := ns.check(u, p, hdfs.OpAppend.Need()); err != nil {
			return err
		}
		now := ns.now()
		blocks, err := tx.ListBlocks(ctx, in.ID)
		if err != nil {
			return err
		}
		recovering := false
		if in.UnderConstruction {
			ok, err := ns.leaseRecoverable(ctx, tx, in, clientName, now)
			if err != nil {
				return err
			}
			if !ok {
				return ns.leaseHeld(hdfs.LeaseOpAppend, p.path, clientName, clientMachine, in, blocks)
			}
			tk, err := ns.takeoverRecovery(ctx, tx, hdfs.LeaseOpAppend, p.path, clientName, clientMachine, in, blocks)
			if err != nil || tk != nil {
				started = tk
				return err
			}
			recovering = true
		}
		// inode
		if recovering {
			in.Size = keptLength(blocks)
		}
		in.UnderConstruction, in.ClientName, in.ClientMachine = true, clientName, clientMachine
		if err := tx.UpdateInode(ctx, in); err != nil {
			return err
		}
		// lease, lease path
		if err := tx.PutLease(ctx, &dal.Lease{Holder: clientName, LastRenewal: now}); err != nil {
			return err
		}
		if recovering {
			if err := tx.DeleteLeasePath(ctx, in.ID); err != nil && !errors.Is(err, dal.ErrNotFound) {
				return err
			}
		}
		if err := tx.AddLeasePath(ctx, &dal.LeasePath{InodeID: in.ID, Holder: clientName, Path: p.path}); err != nil {
			return err
		}
		// blocks
		if recovering {
			if _, err := closeBlocks(ctx, tx, blocks); err != nil {
				return err
			}
			if blocks, err = tx.ListBlocks(ctx, in.ID); err != nil {
				return err
			}
		}
		res = &AppendResult{Status: statusOf(in)}
		if len(blocks) == 0 {
			return nil
		}
		lb := blocks[len(blocks)-1]
		res.LastLength, res.LastBlockID = lb.NumBytes, lb.BlockID
		if lb.NumBytes >= in.BlockSize {
			return nil
		}
		gs, err := take(ns.genStamps)
		if err != nil {
			return err
		}
		lb.GenerationStamp, lb.State = gs, dal.BlockUnderConstruction
		if err := tx.UpdateBlock(ctx, lb); err != nil {
			return err
		}
		reps, err := tx.ListReplicas(ctx, in.ID, lb.BlockID)
		if err != nil {
			return err
		}
		res.LastBlock = &LocatedBlock{Block: *lb, Offset: in.Size - lb.NumBytes, Targets: targetsOf(reps)}
		return nil
	})
	if err == nil && started != nil {
		ns.startTakeover(started)
		return nil, wrapErr("append", path, takeoverBusy(hdfs.LeaseOpAppend, started.br.Path, clientName, clientMachine))
	}
	return res, err
}

// leaseHeld is the error of a writer (holder on machine) that wants the
// file in while its writer's lease is current: a
// RecoveryInProgressException when another client's file has its last
// block under recovery (a lease recovery runs), else an
// AlreadyBeingCreatedException.
func (ns *Namespace) leaseHeld(op hdfs.LeaseOp, path, holder, machine string, in *dal.Inode, blocks []*dal.Block) error {
	if n := len(blocks); n > 0 && in.ClientName != holder && blocks[n-1].State == dal.BlockUnderRecovery {
		return recoveryRunning(op, path, holder, machine, in)
	}
	return hdfs.AlreadyBeingCreated(op, path, holder, machine, in.ClientName, in.ClientMachine)
}

// targetsOf lists the usable replicas' storages.
func targetsOf(reps []*dal.Replica) []Target {
	var ts []Target
	for _, r := range reps {
		if r.State == dal.ReplicaFinalized || r.State == dal.ReplicaBeingWritten {
			ts = append(ts, Target{StorageID: r.StorageID})
		}
	}
	return ts
}

// FileRef names the file a writer's call is about, as HDFS's (src,
// fileId) pair does: by its inode id when ID is set (HDFS's clients send
// the fileId their create or append returned), else by its path.
type FileRef struct {
	// Path is the path the writer opened the file at. With ID set it only
	// names the file in messages: the file may have been renamed since.
	Path string
	// ID is the file's inode id (FileStatus.ID from Create or Append); 0:
	// not known, the file is the one at Path (HDFS's GRANDFATHER_INODE_ID,
	// an old client's call).
	ID int64
}

// String names the file for messages: its path, and its inode id when
// known.
func (f FileRef) String() string {
	if f.ID == 0 {
		return f.Path
	}
	return f.Path + " (inode " + strconv.FormatInt(f.ID, 10) + ")"
}

// checkLease locks the file a writer addresses and checks that holder
// writes it, with HDFS's FSNamesystem.checkLease errors. It returns the
// path to name the file by in messages, the file and its blocks in index
// order, read under the file's lock (every caller needs them). A file
// addressed by id is locked by id and its blocks read with it (one round
// trip, dal.Tx.GetFileByID; no path resolved: a rename of the file or of a
// directory above it since it was opened does not matter, nor does what
// its old path names now); by path (id 0), the path is resolved and the
// file it names locked, as for any operation, and its blocks listed.
func (ns *Namespace) checkLease(ctx context.Context, tx dal.Tx, f FileRef, holder string) (string, *dal.Inode, []*dal.Block, error) {
	if f.ID != 0 {
		return ns.checkLeaseByID(ctx, tx, f, holder)
	}
	p, err := ns.resolveLocking(ctx, tx, f.Path, lockLast())
	if err != nil {
		return "", nil, nil, err
	}
	if p.last() == nil {
		return "", nil, nil, hdfs.ErrFileNotFound.New("File does not exist: " + p.path + " Holder " + holder + " does not have any open files.")
	}
	if err := ns.lockInodes(ctx, tx, lockRef{p, len(p.nodes) - 1, dal.LockWrite}); err != nil {
		return "", nil, nil, err
	}
	in := p.last()
	if in.IsDir {
		return "", nil, nil, hdfs.ErrFileNotFound.New("Path is not a file: " + p.path)
	}
	if err := leaseHolderCheck(p.path, in, holder); err != nil {
		return "", nil, nil, err
	}
	blocks, err := tx.ListBlocks(ctx, in.ID)
	if err != nil {
		return "", nil, nil, err
	}
	return p.path, in, blocks, nil
}

// checkLeaseByID is checkLease of a file addressed by id, HDFS's
// FSNamesystem.checkLease after FSDirectory.getInode(fileId): a missing
// inode is a FileNotFoundException naming the writer's path and the id
// (as is a file whose deletion is still being carried out: the root of a
// detached subtree, see Delete); a directory, a closed file or another
// client's file a LeaseExpiredException, naming the file's current path.
// A file below the root of a detached subtree is still found until the
// purge deletes it, which the Delete that detached it does before it
// returns (HDFS's isFileDeleted walks the parents in memory; here that
// would cost a statement per level on every call). The inode is
// write-locked by id, the operation's only inode lock, as the path's
// resolution would lock it: the lock order is unchanged. Its blocks come
// in the same round trip, read once the lock is granted.
func (ns *Namespace) checkLeaseByID(ctx context.Context, tx dal.Tx, f FileRef, holder string) (string, *dal.Inode, []*dal.Block, error) {
	in, blocks, err := tx.GetFileByID(ctx, f.ID, dal.LockWrite)
	if errors.Is(err, dal.ErrNotFound) {
		return "", nil, nil, hdfs.ErrFileNotFound.New("File does not exist: " + f.String() + " Holder " + holder + " does not have any open files.")
	}
	if err != nil {
		return "", nil, nil, err
	}
	if in.ParentID == DetachedParentID {
		return "", nil, nil, hdfs.ErrFileNotFound.New("File is deleted: " + f.String() + " Holder " + holder + " does not have any open files.")
	}
	if in.IsDir {
		return "", nil, nil, hdfs.ErrLeaseExpired.New("INode is not a regular file: " + ns.currentPath(ctx, tx, in, f.Path) +
			" (inode " + strconv.FormatInt(in.ID, 10) + ") Holder " + holder + " does not have any open files.")
	}
	if !in.UnderConstruction || in.ClientName != holder {
		return "", nil, nil, leaseHolderCheck(ns.currentPath(ctx, tx, in, f.Path), in, holder)
	}
	return f.Path, in, blocks, nil
}

// leaseHolderCheck checks that the file in (at path) is open for writing
// by holder.
func leaseHolderCheck(path string, in *dal.Inode, holder string) error {
	if !in.UnderConstruction {
		return hdfs.NoLease(path, in.ID, "File is not open for writing.", holder)
	}
	if in.ClientName != holder {
		return hdfs.ErrLeaseExpired.New("Client (=" + holder + ") is not the lease owner (=" + in.ClientName +
			": " + path + " (inode " + strconv.FormatInt(in.ID, 10) + ")")
	}
	return nil
}

// currentPath returns the path of inode in now, read parent by parent
// (for an error message only: it costs a statement per level), or
// fallback when it cannot be read or in is no longer reachable from "/".
func (ns *Namespace) currentPath(ctx context.Context, tx dal.Tx, in *dal.Inode, fallback string) string {
	var names []string
	maxDepth := max(ns.limits.MaxPathDepth, hdfs.DefaultMaxPathDepth)
	for cur, depth := in, 0; cur.ID != dal.RootID; depth++ {
		if cur.ParentID == DetachedParentID || depth > maxDepth {
			return fallback
		}
		names = append(names, cur.Name)
		parent, err := tx.GetInodeByID(ctx, cur.ParentID, dal.LockNone)
		if err != nil {
			return fallback
		}
		cur = parent
	}
	slices.Reverse(names)
	return hdfs.JoinComponents(names)
}

// AddBlock allocates the next block of the file path that clientName is
// writing (ClientProtocol.addBlock): the previous last block, if any, is
// committed with length previousLength; the new block gets an id, a
// generation stamp and targets from Config.Placement (excluding the storage
// ids in exclude), recorded as replicas being written. Errors: no lease
// (LeaseExpiredException), a missing file (FileNotFoundException), no
// targets (IOException "could only be written to 0 of the 1 minReplication
// nodes"). Not checked (unlike HDFS): that the previous blocks reached
// their minimum replication (NotReplicatedYetException); Complete checks
// all blocks.
func (ns *Namespace) AddBlock(ctx context.Context, path, clientName string, previousLength int64, exclude []string) (*LocatedBlock, error) {
	return ns.AddBlockAfter(ctx, path, clientName, -1, previousLength, exclude)
}

// AddBlockAfter is AddBlock for a client that names the block it wrote
// last, previous (0: none yet; -1: not known, which is AddBlock), so that a
// call sent again after its answer was lost is recognized as HDFS's
// FSNamesystem does: when the file's last block is still being allocated
// (under construction) right after previous, it is that call's block,
// returned again instead of a second one allocated after it. A previous
// block that is neither the file's last block nor the one before is an
// IOException.
func (ns *Namespace) AddBlockAfter(ctx context.Context, path, clientName string, previous, previousLength int64, exclude []string) (*LocatedBlock, error) {
	return ns.AddBlockFile(ctx, FileRef{Path: path}, clientName, previous, previousLength, exclude)
}

// AddBlockFile is AddBlockAfter for the file f: with f.ID set, the file
// with that inode id wherever it is now (HDFS's addBlock with a fileId),
// so that a writer whose file was renamed goes on writing it; a file id
// that no longer exists (the file was deleted, even if another file now
// has its path) is a FileNotFoundException, a directory's or another
// writer's a LeaseExpiredException (see checkLeaseByID).
func (ns *Namespace) AddBlockFile(ctx context.Context, f FileRef, clientName string, previous, previousLength int64, exclude []string) (*LocatedBlock, error) {
	if ns.cfg.Placement == nil {
		return nil, wrapErr("add block", f.Path, hdfs.ErrIO.New("no block placement: the namespace has no datanodes"))
	}
	var lb *LocatedBlock
	err := ns.update(ctx, "add block", f.Path, func(tx dal.Tx) error {
		path, in, blocks, err := ns.checkLease(ctx, tx, f, clientName)
		if err != nil {
			return err
		}
		if previous >= 0 {
			retried, err := ns.retriedAddBlock(ctx, tx, path, in, blocks, previous)
			if err != nil || retried != nil {
				lb = retried
				return err
			}
		}
		var prev *dal.Block
		if len(blocks) > 0 {
			prev = blocks[len(blocks)-1]
			if prev.State == dal.BlockUnderRecovery {
				return recoveryInProgress("add block to", path, prev)
			}
			prev.NumBytes = previousLength
			if prev.State == dal.BlockUnderConstruction {
				prev.State = dal.BlockCommitted
			}
		}
		targets, err := ns.cfg.Placement.ChooseTargets(ctx, PlacementRequest{
			Path: path, Replication: int(in.Replication), BlockSize: in.BlockSize,
			ClientMachine: in.ClientMachine, Exclude: exclude,
		})
		if err != nil {
			return fmt.Errorf("choose targets: %w", err)
		}
		if len(targets) == 0 {
			return hdfs.ErrIO.New("File " + path + " could only be written to 0 of the 1 minReplication nodes. " +
				"There are no datanode(s) available and " + strconv.Itoa(len(exclude)) + " node(s) are excluded in this operation.")
		}
		blockID, err := take(ns.blockIDs)
		if err != nil {
			return err
		}
		gs, err := take(ns.genStamps)
		if err != nil {
			return err
		}
		// inode
		in.Size = keptLength(blocks)
		if err := tx.UpdateInode(ctx, in); err != nil {
			return err
		}
		// blocks
		if prev != nil {
			if err := tx.UpdateBlock(ctx, prev); err != nil {
				return err
			}
		}
		b := &dal.Block{InodeID: in.ID, BlockID: blockID, Index: int32(len(blocks)), GenerationStamp: gs, State: dal.BlockUnderConstruction}
		if err := tx.AddBlock(ctx, b); err != nil {
			return err
		}
		// replicas
		for _, t := range targets {
			err := tx.AddReplica(ctx, &dal.Replica{InodeID: in.ID, BlockID: blockID, StorageID: t.StorageID, State: dal.ReplicaBeingWritten})
			if err != nil {
				return err
			}
		}
		lb = &LocatedBlock{Block: *b, Offset: in.Size, Targets: targets}
		return nil
	})
	return lb, err
}

// retriedAddBlock recognizes a retried AddBlockAfter (see there): it
// returns the block that call allocated, nil for a new call, or an error
// when previous is not where the file's blocks end.
func (ns *Namespace) retriedAddBlock(ctx context.Context, tx dal.Tx, path string, in *dal.Inode, blocks []*dal.Block, previous int64) (*LocatedBlock, error) {
	n := len(blocks)
	lastID := int64(0)
	if n > 0 {
		lastID = blocks[n-1].BlockID
	}
	if lastID == previous {
		return nil, nil
	}
	before := int64(0)
	if n > 1 {
		before = blocks[n-2].BlockID
	}
	if n == 0 || before != previous || blocks[n-1].State != dal.BlockUnderConstruction {
		return nil, hdfs.ErrIO.Errorf("add block to %s: the previous block blk_%d is not the file's last block (blk_%d)", path, previous, lastID)
	}
	last := blocks[n-1]
	reps, err := tx.ListReplicas(ctx, in.ID, last.BlockID)
	if err != nil {
		return nil, err
	}
	return &LocatedBlock{Block: *last, Offset: keptLength(blocks[:n-1]), Targets: targetsOf(reps)}, nil
}

// Complete finishes writing the file path (ClientProtocol.complete): the
// last block gets length lastLength and is committed. When every block has
// at least min(Config.MinReplication, replication) finalized replicas
// (reported with BlockReceived), the blocks become complete, the file is
// closed (length = the blocks' lengths, modification time = now) and
// clientName's lease on it released (the lease itself when it was the
// holder's last file), and Complete returns true. Otherwise it returns false
// with the lengths recorded, and the client retries, as with HDFS.
// Errors as AddBlock's (no lease, missing file).
func (ns *Namespace) Complete(ctx context.Context, path, clientName string, lastLength int64) (bool, error) {
	return ns.CompleteAfter(ctx, path, clientName, -1, lastLength)
}

// CompleteAfter is Complete for a client that names the file's last block,
// last (0: the file has none; -1: not known, which is Complete), so that a
// call sent again after its answer was lost gets true: a closed file whose
// last block is last (and length the one given) was closed by that call,
// as HDFS's completeFile recognizes its retries.
func (ns *Namespace) CompleteAfter(ctx context.Context, path, clientName string, last, lastLength int64) (bool, error) {
	return ns.CompleteFile(ctx, FileRef{Path: path}, clientName, last, lastLength)
}

// CompleteFile is CompleteAfter for the file f: with f.ID set, the file
// with that inode id wherever it is now (HDFS's complete with a fileId;
// errors as AddBlockFile's), and a retry is recognized by the file's id
// too.
func (ns *Namespace) CompleteFile(ctx context.Context, f FileRef, clientName string, last, lastLength int64) (bool, error) {
	var done bool
	err := ns.update(ctx, "complete", f.Path, func(tx dal.Tx) error {
		done = false
		path, in, blocks, err := ns.checkLease(ctx, tx, f, clientName)
		if err != nil {
			if last >= 0 {
				if closed, cerr := ns.completedBefore(ctx, tx, f, last, lastLength); cerr == nil && closed {
					done = true
					return nil
				}
			}
			return err
		}
		var last *dal.Block
		if len(blocks) > 0 {
			last = blocks[len(blocks)-1]
			if last.State == dal.BlockUnderRecovery {
				return recoveryInProgress("complete", path, last)
			}
			last.NumBytes = lastLength
			if last.State == dal.BlockUnderConstruction {
				last.State = dal.BlockCommitted
			}
		}
		need := min(ns.cfg.MinReplication, int(in.Replication))
		enough := true
		if need > 0 && len(blocks) > 0 {
			reps, err := tx.ListFileReplicas(ctx, in.ID)
			if err != nil {
				return err
			}
			finalized := map[int64]int{}
			for _, r := range reps {
				if r.State == dal.ReplicaFinalized {
					finalized[r.BlockID]++
				}
			}
			for _, b := range blocks {
				if finalized[b.BlockID] < need {
					enough = false
					break
				}
			}
		}
		if !enough {
			return tx.UpdateBlock(ctx, last)
		}
		now := ns.now()
		// inode
		in.UnderConstruction, in.ClientName, in.ClientMachine = false, "", ""
		in.Size, in.MTime = keptLength(blocks), now
		// The rows written from here are write-locked (the inode) or read
		// under its lock (its blocks): their writes can wait for the commit.
		w := tx.Deferred()
		if err := w.UpdateInode(ctx, in); err != nil {
			return err
		}
		// lease path
		if err := ns.releaseLeasePath(ctx, tx, in.ID); err != nil {
			return err
		}
		// blocks
		for _, b := range blocks {
			if b.State != dal.BlockComplete {
				b.State = dal.BlockComplete
				if err := w.UpdateBlock(ctx, b); err != nil {
					return err
				}
			}
		}
		done = true
		return nil
	})
	return done, err
}

// completedBefore reports whether the file f is closed with last as its
// last block of lastLength bytes (0: no blocks): a retried Complete.
func (ns *Namespace) completedBefore(ctx context.Context, tx dal.Tx, f FileRef, last, lastLength int64) (bool, error) {
	var in *dal.Inode
	if f.ID != 0 {
		var err error
		in, err = tx.GetInodeByID(ctx, f.ID, dal.LockNone)
		if errors.Is(err, dal.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if in.ParentID == DetachedParentID {
			return false, nil
		}
	} else {
		p, err := ns.resolve(ctx, tx, f.Path)
		if err != nil {
			return false, err
		}
		in = p.last()
	}
	if in == nil || in.IsDir || in.UnderConstruction {
		return false, nil
	}
	blocks, err := tx.ListBlocks(ctx, in.ID)
	if err != nil {
		return false, err
	}
	if len(blocks) == 0 {
		return last == 0, nil
	}
	b := blocks[len(blocks)-1]
	return b.BlockID == last && b.NumBytes == lastLength, nil
}

// releaseLeasePath removes holder's lease path of file id. The lease
// itself stays, even when that was its holder's last file: a path-less
// lease is deleted by lease recovery once it has expired, atomically with
// the check that it still has no paths (dal.Tx.DeleteIdleLease). Deleting
// it here instead cost a writer three more statements per file (a renewal
// that locks the lease row against the holder's concurrent creates, a look
// for its other paths, the delete), and on PostgreSQL the look and the
// delete scan every dead version the holder's earlier paths left in the
// holder index until the next vacuum. The lease path exists: a file under
// construction by holder has one (Fsck checks it), so the delete must
// affect a row and is sent with the commit.
func (ns *Namespace) releaseLeasePath(ctx context.Context, tx dal.Tx, id int64) error {
	return tx.Deferred().DeleteLeasePath(ctx, id)
}

// BlockReceived records that storage storageID holds a finalized replica of
// block blockID (a datanode's blockReceived and block reports). A block no
// file has is ErrUnknownBlock.
func (ns *Namespace) BlockReceived(ctx context.Context, blockID int64, storageID string) error {
	op := "block received"
	return ns.update(ctx, op, strconv.FormatInt(blockID, 10)+" on "+storageID, func(tx dal.Tx) error {
		b, err := tx.GetBlock(ctx, blockID)
		if errors.Is(err, dal.ErrNotFound) {
			return fmt.Errorf("%w %d", ErrUnknownBlock, blockID)
		}
		if err != nil {
			return err
		}
		if _, err := tx.GetInodeByID(ctx, b.InodeID, dal.LockWrite); err != nil {
			if errors.Is(err, dal.ErrNotFound) {
				return fmt.Errorf("%w %d", ErrUnknownBlock, blockID)
			}
			return err
		}
		// On PostgreSQL a failed insert aborts the transaction: look first.
		reps, err := tx.ListReplicas(ctx, b.InodeID, blockID)
		if err != nil {
			return err
		}
		for _, r := range reps {
			if r.StorageID == storageID {
				if r.State == dal.ReplicaFinalized {
					return nil
				}
				return tx.UpdateReplicaState(ctx, b.InodeID, blockID, storageID, dal.ReplicaFinalized)
			}
		}
		err = tx.AddReplica(ctx, &dal.Replica{InodeID: b.InodeID, BlockID: blockID, StorageID: storageID, State: dal.ReplicaFinalized})
		if errors.Is(err, dal.ErrNotFound) { // the block went while we waited for the lock
			return fmt.Errorf("%w %d", ErrUnknownBlock, blockID)
		}
		return err
	})
}

// FileBlocks is a file's status with its blocks and their locations.
type FileBlocks struct {
	// Status is the file's status.
	Status *FileStatus
	// Blocks are the file's blocks in order, with their replicas' storages.
	Blocks []*LocatedBlock
}

// BlockLocations returns the file path's blocks and where their replicas are
// (getBlockLocations, the start of OPEN). A missing path or a directory is a
// FileNotFoundException. Checks: traverse, READ on the file.
func (ns *Namespace) BlockLocations(ctx context.Context, u hdfs.User, path string) (*FileBlocks, error) {
	var fb *FileBlocks
	err := ns.view(ctx, "block locations", path, func(tx dal.Tx) error {
		p, in, err := ns.resolveExisting(ctx, tx, u, path, hdfs.Need{})
		if err != nil {
			return err
		}
		if in.IsDir {
			return hdfs.ErrFileNotFound.New("Path is not a file: " + p.path)
		}
		if err := ns.check(u, p, hdfs.OpRead.Need()); err != nil {
			return err
		}
		blocks, err := tx.ListBlocks(ctx, in.ID)
		if err != nil {
			return err
		}
		reps, err := tx.ListFileReplicas(ctx, in.ID)
		if err != nil {
			return err
		}
		byBlock := map[int64][]*dal.Replica{}
		for _, r := range reps {
			byBlock[r.BlockID] = append(byBlock[r.BlockID], r)
		}
		fb = &FileBlocks{Status: statusOf(in)}
		var off int64
		for _, b := range blocks {
			fb.Blocks = append(fb.Blocks, &LocatedBlock{Block: *b, Offset: off, Targets: targetsOf(byBlock[b.BlockID])})
			off += b.NumBytes
		}
		return nil
	})
	return fb, err
}

// RenewLease renews clientName's lease (ClientProtocol.renewLease); a client
// without a lease is not an error.
func (ns *Namespace) RenewLease(ctx context.Context, clientName string) error {
	return ns.update(ctx, "renew lease", clientName, func(tx dal.Tx) error {
		if _, err := tx.GetLease(ctx, clientName); err != nil {
			if errors.Is(err, dal.ErrNotFound) {
				return nil
			}
			return err
		}
		return tx.PutLease(ctx, &dal.Lease{Holder: clientName, LastRenewal: ns.now()})
	})
}

// RecoverLeases is RecoverLeasesWith without block recovery: files are
// closed with the block lengths the namenode recorded.
func (ns *Namespace) RecoverLeases(ctx context.Context, now time.Time) (int, error) {
	return ns.RecoverLeasesWith(ctx, now, nil)
}

// RecoverLeasesWith closes the files of writers whose leases were last
// renewed more than Config.LeaseHardLimit before now, and removes those
// leases. A file whose last block is still being written goes through
// block recovery with rec (see recoverFile): it keeps what every replica
// still reachable holds. It handles up to 1000 leases per call, one file at
// a time, and returns the number of files closed. The namenode's
// housekeeping calls it periodically. A lease left without files is
// deleted only if, atomically, it is still expired and still without files
// (dal.Tx.DeleteIdleLease), so a create by that very client racing with
// the deletion keeps its lease path.
func (ns *Namespace) RecoverLeasesWith(ctx context.Context, now time.Time, rec BlockRecoverer) (int, error) {
	cutoff := now.UnixMilli() - ns.cfg.LeaseHardLimit.Milliseconds()
	var leases []*dal.Lease
	err := ns.store.ReadTx(ctx, func(tx dal.Tx) error {
		var err error
		leases, err = tx.ListExpiredLeases(ctx, cutoff, 1000)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("recover leases: %w", err)
	}
	closed := 0
	for _, l := range leases {
		var paths []*dal.LeasePath
		err := ns.store.ReadTx(ctx, func(tx dal.Tx) error {
			var err error
			paths, err = tx.ListLeasePaths(ctx, l.Holder)
			return err
		})
		if err != nil {
			return closed, fmt.Errorf("recover leases of %s: %w", l.Holder, err)
		}
		for _, lp := range paths {
			ok, err := ns.recoverFile(ctx, l.Holder, lp, cutoff, now.UnixMilli(), rec)
			if err != nil {
				return closed, err
			}
			if ok {
				closed++
			}
		}
		err = ns.update(ctx, "recover lease", l.Holder, func(tx dal.Tx) error {
			deleted, err := tx.DeleteIdleLease(ctx, l.Holder, cutoff)
			if deleted {
				ns.renewals.forget(l.Holder) // before the commit: never too late
			}
			return err
		})
		if err != nil {
			return closed, err
		}
	}
	return closed, nil
}

// RecoverLease is RecoverLeaseWith without block recovery: the file is
// closed with the block lengths the namenode recorded.
func (ns *Namespace) RecoverLease(ctx context.Context, u hdfs.User, path string) (bool, error) {
	return ns.RecoverLeaseWith(ctx, u, path, nil)
}

// RecoverLeaseWith closes the file path now if it is open for writing, as
// the passing of its writer's hard limit would (ClientProtocol.recoverLease,
// `hdfs debug recoverLease`): for a writer known to be gone, or one that
// gave up (an interrupted upload), so that the file need not wait an hour.
// A last block still being written goes through block recovery with rec
// (see recoverFile), synchronously: unlike HDFS, which answers false while
// the recovery runs, the call returns true once the file is closed (it
// already was, or is now), false when it is still open (another writer
// took it over meanwhile). Errors: a missing path is a
// FileNotFoundException, a directory too. Checks: traverse, WRITE on the
// file.
func (ns *Namespace) RecoverLeaseWith(ctx context.Context, u hdfs.User, path string, rec BlockRecoverer) (bool, error) {
	var lp *dal.LeasePath
	err := ns.view(ctx, "recover lease", path, func(tx dal.Tx) error {
		lp = nil
		p, in, err := ns.resolveExisting(ctx, tx, u, path, hdfs.OpAppend.Need())
		if err != nil {
			return err
		}
		if in.IsDir {
			return hdfs.ErrFileNotFound.New("Path is not a file: " + p.path)
		}
		if in.UnderConstruction {
			lp = &dal.LeasePath{InodeID: in.ID, Holder: in.ClientName, Path: p.path}
		}
		return nil
	})
	if err != nil || lp == nil {
		return err == nil, err
	}
	now := ns.now()
	// A cutoff after now: the holder's lease counts as expired however
	// recently it was renewed.
	if _, err := ns.recoverFile(ctx, lp.Holder, lp, now+1, now, rec); err != nil {
		return false, err
	}
	var closed bool
	err = ns.view(ctx, "recover lease", path, func(tx dal.Tx) error {
		in, err := tx.GetInodeByID(ctx, lp.InodeID, dal.LockNone)
		if errors.Is(err, dal.ErrNotFound) {
			closed = true // deleted meanwhile: nothing left open
			return nil
		}
		closed = err == nil && !in.UnderConstruction
		return err
	})
	return closed, err
}

// recoverFile closes one file of an expired lease (holder's lease renewed
// before cutoff); false when the file changed hands or the lease was
// renewed meanwhile. With rec, a last block still being written with
// replicas recorded goes through block recovery first (HDFS's): a
// transaction gives it a recovery id, a new generation stamp for its
// replicas; outside any transaction rec has the datanodes agree on a
// length, cut their replicas to it and re-stamp them; a second
// transaction commits the block (its stamp now the recovery id) and
// closes the file, unless the file moved on meanwhile (see
// finishBlockRecovery).
func (ns *Namespace) recoverFile(ctx context.Context, holder string, lp *dal.LeasePath, cutoff, now int64, rec BlockRecoverer) (bool, error) {
	if rec != nil {
		br, err := ns.startBlockRecovery(ctx, holder, lp, cutoff)
		if err != nil {
			return false, err
		}
		if br != nil {
			// A takeover meanwhile waits for this recovery rather than
			// starting another.
			ns.takeovers.enter(lp.InodeID)
			defer ns.takeovers.leave(lp.InodeID)
			return ns.finishBlockRecovery(ctx, holder, lp, cutoff, now, rec, br)
		}
	}
	return ns.closeRecorded(ctx, holder, lp, cutoff, now, nil)
}

// finishBlockRecovery runs the recovery br, started for holder's file lp:
// rec has the datanodes recover the block, then commitBlockRecovery
// closes the file. When the recovery fails (no datanode answered) the file
// is closed with the lengths recorded (closeRecorded), so that no file
// stays open forever; when ctx ends first (the namenode stops) nothing
// more is done and the block stays under recovery, for the next recovery
// to take up with a new id.
func (ns *Namespace) finishBlockRecovery(ctx context.Context, holder string, lp *dal.LeasePath, cutoff, now int64, rec BlockRecoverer, br *BlockRecovery) (bool, error) {
	res, err := rec.RecoverBlock(ctx, *br)
	if err == nil {
		return ns.commitBlockRecovery(ctx, holder, lp, cutoff, now, br, res)
	}
	if ctx.Err() != nil {
		return false, wrapErr("recover block of", lp.Path, ctx.Err())
	}
	return ns.closeRecorded(ctx, holder, lp, cutoff, now, br)
}

// closeRecorded closes holder's file lp (lease older than cutoff) with the
// block lengths the namenode recorded (those of the writer's last hflush),
// an empty unfinished last block dropped. After failed, a block recovery
// that found no datanode, it does so only while the block is still under
// that recovery (else another recovery took over: false): the block keeps
// its generation stamp, the one its replicas have (they never took the
// recovery id, or took it and will be reported with it, newer than the
// block's), and loses the recovery id.
func (ns *Namespace) closeRecorded(ctx context.Context, holder string, lp *dal.LeasePath, cutoff, now int64, failed *BlockRecovery) (bool, error) {
	var ok bool
	err := ns.update(ctx, "recover lease of", lp.Path, func(tx dal.Tx) error {
		ok = false
		in, blocks, err := ns.expiredFile(ctx, tx, holder, lp, cutoff)
		if err != nil || in == nil {
			return err
		}
		if n := len(blocks); failed != nil && n > 0 {
			last := blocks[n-1]
			if last.BlockID != failed.Block.BlockID || last.State != dal.BlockUnderRecovery || last.RecoveryID != failed.RecoveryID {
				return nil // another recovery took over
			}
		}
		// inode
		in.UnderConstruction, in.ClientName, in.ClientMachine = false, "", ""
		in.MTime = now
		in.Size = keptLength(trimEmptyTail(blocks))
		if err := tx.UpdateInode(ctx, in); err != nil {
			return err
		}
		// lease path
		if err := tx.DeleteLeasePath(ctx, in.ID); err != nil && !errors.Is(err, dal.ErrNotFound) {
			return err
		}
		// blocks (closeBlocks clears the recovery id, keeping the stamp)
		if _, err := closeBlocks(ctx, tx, blocks); err != nil {
			return err
		}
		ok = true
		return nil
	})
	return ok, err
}

// trimEmptyTail drops the empty unfinished blocks at the end, as
// closeBlocks does.
func trimEmptyTail(blocks []*dal.Block) []*dal.Block {
	for len(blocks) > 0 {
		b := blocks[len(blocks)-1]
		if !unfinished(b) || b.NumBytes != 0 {
			break
		}
		blocks = blocks[:len(blocks)-1]
	}
	return blocks
}
