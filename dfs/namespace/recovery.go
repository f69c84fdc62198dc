package namespace

import (
	"context"
	"errors"
	"slices"
	"strconv"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/hdfs"
)

// BlockRecoverer runs the datanodes' side of block recovery (HDFS's
// BlockRecoveryWorker) for lease recovery: the namenode implements it over
// its live datanodes. The namespace calls it between two transactions,
// never inside one.
type BlockRecoverer interface {
	// RecoverBlock asks the datanodes holding r.Targets for their replicas
	// of r.Block (stopping any writer still writing them), agrees on a
	// length all of them can provide (a finalized replica's, else the
	// shortest being written, never less than r.Block.NumBytes, the length
	// the writer's hflush recorded), has them cut back to it, stamped
	// r.RecoveryID and finalized, and returns it with the storages that
	// did so. It fails when no replica could be recovered; it bounds its
	// own calls with a timeout.
	RecoverBlock(ctx context.Context, r BlockRecovery) (RecoveredBlock, error)
}

// BlockRecovery is the recovery of a file's last block, under
// construction when its writer's lease was recovered.
type BlockRecovery struct {
	// Path is the file's path (for messages).
	Path string
	// Block is the block as recorded when the recovery started: its
	// generation stamp is the one the writer's replicas have (a recovery
	// changes it only when it commits; replicas an earlier, interrupted
	// recovery reached have that recovery's newer id), its NumBytes the
	// length the writer's hflush recorded.
	Block dal.Block
	// RecoveryID is the generation stamp the recovery gives the block's
	// replicas, and the block once it commits (dal.Block.RecoveryID while
	// it runs).
	RecoveryID int64
	// Targets are the storages with a replica recorded (being written or
	// finalized).
	Targets []Target
}

// RecoveredBlock is what RecoverBlock agreed.
type RecoveredBlock struct {
	// Length is the block's length.
	Length int64
	// Storages hold the block at Length under the recovery id, finalized.
	Storages []string
}

// recoveryInProgress is the error of a writer's call on a file whose last
// block is under recovery (its lease was recovered meanwhile): HDFS's
// RecoveryInProgressException.
func recoveryInProgress(op, path string, b *dal.Block) error {
	return hdfs.ErrRecoveryInProgress.Errorf("%s %s: blk_%d is being recovered (the writer's lease was recovered)", op, path, b.BlockID)
}

// unfinished reports whether b is a last block whose length is not final:
// under construction, or under a recovery that did not finish.
func unfinished(b *dal.Block) bool {
	return b.State == dal.BlockUnderConstruction || b.State == dal.BlockUnderRecovery
}

// Fsync records length as the length of blockID, the last block of the
// file path that clientName is writing, still under construction, after
// the writer's hflush made every datanode of the pipeline acknowledge that
// much (ClientProtocol.fsync with the last block's length). The file's
// length grows accordingly, so readers see the flushed bytes, and lease
// recovery keeps at least them. A shorter length than recorded changes
// nothing. Errors as AddBlock's; a block that is not the file's last block
// under construction is an IOException.
func (ns *Namespace) Fsync(ctx context.Context, path, clientName string, blockID, length int64) error {
	return ns.FsyncFile(ctx, FileRef{Path: path}, clientName, blockID, length)
}

// FsyncFile is Fsync for the file f: with f.ID set, the file with that
// inode id wherever it is now (HDFS's fsync with a fileId; errors as
// AddBlockFile's).
func (ns *Namespace) FsyncFile(ctx context.Context, f FileRef, clientName string, blockID, length int64) error {
	if length < 0 {
		return wrapErr("fsync", f.Path, hdfs.ErrIllegalArgument.New("fsync "+f.Path+": negative length "+strconv.FormatInt(length, 10)))
	}
	return ns.update(ctx, "fsync", f.Path, func(tx dal.Tx) error {
		path, in, blocks, err := ns.checkLease(ctx, tx, f, clientName)
		if err != nil {
			return err
		}
		n := len(blocks)
		if n == 0 || blocks[n-1].BlockID != blockID {
			return hdfs.ErrIO.Errorf("fsync blk_%d of %s: not the file's last block", blockID, path)
		}
		last := blocks[n-1]
		if last.State == dal.BlockUnderRecovery {
			return recoveryInProgress("fsync", path, last)
		}
		if last.State != dal.BlockUnderConstruction {
			return hdfs.ErrIO.Errorf("fsync blk_%d of %s: no longer under construction", blockID, path)
		}
		if length > in.BlockSize {
			return hdfs.ErrIO.Errorf("fsync blk_%d of %s: length %d exceeds the block size %d", blockID, path, length, in.BlockSize)
		}
		if length <= last.NumBytes {
			return nil
		}
		last.NumBytes = length
		// inode (its length is the blocks' total)
		in.Size = keptLength(blocks)
		if err := tx.UpdateInode(ctx, in); err != nil {
			return err
		}
		// block
		return tx.UpdateBlock(ctx, last)
	})
}

// startBlockRecovery is block recovery's first transaction for one file
// of an expired lease: when the file is still written by holder (whose
// lease is older than cutoff), markUnderRecovery. It returns the recovery
// to run, or nil when there is none (the caller then closes the file as
// it is).
func (ns *Namespace) startBlockRecovery(ctx context.Context, holder string, lp *dal.LeasePath, cutoff int64) (*BlockRecovery, error) {
	var br *BlockRecovery
	err := ns.update(ctx, "start block recovery of", lp.Path, func(tx dal.Tx) error {
		br = nil
		in, blocks, err := ns.expiredFile(ctx, tx, holder, lp, cutoff)
		if err != nil || in == nil {
			return err
		}
		br, err = ns.markUnderRecovery(ctx, tx, in, blocks, lp.Path)
		return err
	})
	return br, err
}

// markUnderRecovery starts block recovery inside tx for the file in
// (write-locked) with blocks: when its last block is unfinished with
// replicas recorded, the block gets a new recovery id (a new generation
// stamp, for its replicas; the block keeps the stamp they have until the
// recovery commits, as HDFS's blockRecoveryId) and the state under
// recovery, which fences the writer off. A block already under an earlier
// recovery (interrupted, or superseded) gets a new id too. It returns the
// recovery to run, or nil when there is nothing to recover (no blocks, a
// finished last block, no replicas recorded).
func (ns *Namespace) markUnderRecovery(ctx context.Context, tx dal.Tx, in *dal.Inode, blocks []*dal.Block, path string) (*BlockRecovery, error) {
	if len(blocks) == 0 {
		return nil, nil
	}
	last := blocks[len(blocks)-1]
	if !unfinished(last) {
		return nil, nil
	}
	reps, err := tx.ListReplicas(ctx, in.ID, last.BlockID)
	if err != nil {
		return nil, err
	}
	targets := targetsOf(reps)
	if len(targets) == 0 {
		return nil, nil
	}
	rid, err := take(ns.genStamps)
	if err != nil {
		return nil, err
	}
	// block
	last.State, last.RecoveryID = dal.BlockUnderRecovery, rid
	if err := tx.UpdateBlock(ctx, last); err != nil {
		return nil, err
	}
	before := *last
	before.RecoveryID = 0
	return &BlockRecovery{Path: path, Block: before, RecoveryID: rid, Targets: targets}, nil
}

// expiredFile reads (locked) the file of lp and its blocks when holder
// still writes it and holder's lease was last renewed before cutoff; nil
// otherwise.
func (ns *Namespace) expiredFile(ctx context.Context, tx dal.Tx, holder string, lp *dal.LeasePath, cutoff int64) (*dal.Inode, []*dal.Block, error) {
	in, err := tx.GetInodeByID(ctx, lp.InodeID, dal.LockWrite)
	if errors.Is(err, dal.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if !in.UnderConstruction || in.ClientName != holder {
		return nil, nil, nil
	}
	l, err := tx.GetLease(ctx, holder)
	if err != nil && !errors.Is(err, dal.ErrNotFound) {
		return nil, nil, err
	}
	if l != nil && l.LastRenewal >= cutoff {
		return nil, nil, nil
	}
	blocks, err := tx.ListBlocks(ctx, in.ID)
	if err != nil {
		return nil, nil, err
	}
	return in, blocks, nil
}

// commitBlockRecovery is block recovery's second transaction (HDFS's
// commitBlockSynchronization): when the file is still written by holder
// (lease older than cutoff) and its last block is the one under br's
// recovery, the block takes the agreed length and the recovery id as its
// generation stamp and becomes complete (or, agreed empty, is dropped),
// its replicas rows become the recovered storages' (finalized), and the
// file is closed and its lease path released. It returns false, changing nothing, when the file moved on
// meanwhile (another recovery, a new writer, a delete).
func (ns *Namespace) commitBlockRecovery(ctx context.Context, holder string, lp *dal.LeasePath, cutoff, now int64, br *BlockRecovery, res RecoveredBlock) (bool, error) {
	var ok bool
	err := ns.update(ctx, "commit block recovery of", lp.Path, func(tx dal.Tx) error {
		ok = false
		in, blocks, err := ns.expiredFile(ctx, tx, holder, lp, cutoff)
		if err != nil || in == nil || len(blocks) == 0 {
			return err
		}
		last := blocks[len(blocks)-1]
		if last.BlockID != br.Block.BlockID || last.State != dal.BlockUnderRecovery || last.RecoveryID != br.RecoveryID {
			return nil
		}
		reps, err := tx.ListReplicas(ctx, in.ID, last.BlockID)
		if err != nil {
			return err
		}
		last.NumBytes = res.Length
		kept := blocks
		if res.Length == 0 {
			kept = blocks[:len(blocks)-1]
		}
		// inode
		in.UnderConstruction, in.ClientName, in.ClientMachine = false, "", ""
		in.MTime = now
		in.Size = keptLength(kept)
		if err := tx.UpdateInode(ctx, in); err != nil {
			return err
		}
		// lease path (the lease goes with the holder's last file, in
		// RecoverLeases)
		if err := tx.DeleteLeasePath(ctx, in.ID); err != nil && !errors.Is(err, dal.ErrNotFound) {
			return err
		}
		// blocks
		if res.Length == 0 {
			// Nothing reached the datanodes: the block goes, as HDFS
			// drops an empty last block in recovery.
			if err := tx.DeleteBlock(ctx, in.ID, last.BlockID); err != nil {
				return err
			}
		} else {
			// The replicas took the recovery id: so does the block.
			last.State, last.GenerationStamp, last.RecoveryID = dal.BlockComplete, br.RecoveryID, 0
			if err := tx.UpdateBlock(ctx, last); err != nil {
				return err
			}
		}
		if _, err := closeBlocks(ctx, tx, kept); err != nil {
			return err
		}
		if res.Length == 0 {
			ok = true
			return nil
		}
		// replicas: the recovered ones are finalized; the others, left
		// with an older stamp, are stale and go.
		for _, r := range reps {
			if slices.Contains(res.Storages, r.StorageID) {
				continue
			}
			if err := tx.RemoveReplica(ctx, in.ID, last.BlockID, r.StorageID); err != nil && !errors.Is(err, dal.ErrNotFound) {
				return err
			}
		}
		for _, sid := range res.Storages {
			i := slices.IndexFunc(reps, func(r *dal.Replica) bool { return r.StorageID == sid })
			switch {
			case i < 0:
				err = tx.AddReplica(ctx, &dal.Replica{InodeID: in.ID, BlockID: last.BlockID, StorageID: sid, State: dal.ReplicaFinalized})
			case reps[i].State != dal.ReplicaFinalized:
				err = tx.UpdateReplicaState(ctx, in.ID, last.BlockID, sid, dal.ReplicaFinalized)
			}
			if err != nil {
				return err
			}
		}
		ok = true
		return nil
	})
	return ok, err
}
