package namespace

import (
	"context"
	"slices"
	"strconv"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/hdfs"
)

// lastBlockUC returns the last of the file's blocks, which must be
// blockID and still under construction: HDFS's checks before abandoning or
// re-stamping a block.
func lastBlockUC(op, path string, blocks []*dal.Block, blockID int64) (*dal.Block, bool, error) {
	if len(blocks) == 0 || blocks[len(blocks)-1].BlockID != blockID {
		for _, b := range blocks {
			if b.BlockID == blockID {
				return nil, false, hdfs.ErrIO.Errorf("%s blk_%d of %s: not the last block", op, blockID, path)
			}
		}
		return nil, false, nil
	}
	last := blocks[len(blocks)-1]
	if last.State != dal.BlockUnderConstruction {
		return nil, false, hdfs.ErrIO.Errorf("%s blk_%d of %s: no longer under construction", op, blockID, path)
	}
	return last, true, nil
}

// AbandonBlock drops blockID, the last block of the file path that
// clientName is writing, when it is still under construction, with its
// replica rows (ClientProtocol.abandonBlock, after a failed pipeline; the
// datanodes' partial replicas then become unknown blocks, deleted after
// their next block report). Abandoning a block the file no longer has is
// not an error: the call may be a retry. Errors as AddBlock's (no lease, a
// missing file), and an IOException for a block that is not the last or no
// longer under construction.
func (ns *Namespace) AbandonBlock(ctx context.Context, path, clientName string, blockID int64) error {
	return ns.AbandonBlockFile(ctx, FileRef{Path: path}, clientName, blockID)
}

// AbandonBlockFile is AbandonBlock for the file f: with f.ID set, the file
// with that inode id wherever it is now (HDFS's abandonBlock with a
// fileId; errors as AddBlockFile's).
func (ns *Namespace) AbandonBlockFile(ctx context.Context, f FileRef, clientName string, blockID int64) error {
	return ns.update(ctx, "abandon block", f.Path, func(tx dal.Tx) error {
		path, in, blocks, err := ns.checkLease(ctx, tx, f, clientName)
		if err != nil {
			return err
		}
		last, ok, err := lastBlockUC("abandon block", path, blocks, blockID)
		if err != nil || !ok {
			return err
		}
		reps, err := tx.ListReplicas(ctx, in.ID, blockID)
		if err != nil {
			return err
		}
		for _, r := range reps {
			if err := tx.RemoveReplica(ctx, in.ID, blockID, r.StorageID); err != nil {
				return err
			}
		}
		return tx.DeleteBlock(ctx, in.ID, last.BlockID)
	})
}

// UpdatePipeline gives blockID, the last block of the file path that
// clientName is writing (under construction, as Append leaves it), a new
// generation stamp and drops the replicas whose storage id is in exclude
// (HDFS's updateBlockForPipeline and updatePipeline in one call). The
// client resumes writing on the returned block's targets, the surviving
// replicas; the dropped ones keep the old stamp and are deleted as stale
// when reported. No survivor is an IOException. Errors otherwise as
// AbandonBlock's; a block the file no longer has is a
// ReplicaNotFoundException-like IOException.
func (ns *Namespace) UpdatePipeline(ctx context.Context, path, clientName string, blockID int64, exclude []string) (*LocatedBlock, error) {
	return ns.UpdatePipelineFile(ctx, FileRef{Path: path}, clientName, blockID, exclude)
}

// UpdatePipelineFile is UpdatePipeline for the file f: with f.ID set, the
// file with that inode id wherever it is now (HDFS's updatePipeline with
// a fileId; errors as AddBlockFile's).
func (ns *Namespace) UpdatePipelineFile(ctx context.Context, f FileRef, clientName string, blockID int64, exclude []string) (*LocatedBlock, error) {
	var lb *LocatedBlock
	err := ns.update(ctx, "update pipeline", f.Path, func(tx dal.Tx) error {
		path, in, blocks, err := ns.checkLease(ctx, tx, f, clientName)
		if err != nil {
			return err
		}
		last, ok, err := lastBlockUC("update pipeline", path, blocks, blockID)
		if err != nil {
			return err
		}
		if !ok {
			return hdfs.ErrIO.Errorf("update pipeline blk_%d of %s: the file has no such block", blockID, path)
		}
		reps, err := tx.ListReplicas(ctx, in.ID, blockID)
		if err != nil {
			return err
		}
		var kept []*dal.Replica
		for _, r := range reps {
			if slices.Contains(exclude, r.StorageID) {
				if err := tx.RemoveReplica(ctx, in.ID, blockID, r.StorageID); err != nil {
					return err
				}
				continue
			}
			kept = append(kept, r)
		}
		targets := targetsOf(kept)
		if len(targets) == 0 {
			return hdfs.ErrIO.New("update pipeline blk_" + strconv.FormatInt(blockID, 10) + " of " + path +
				": no replica left after excluding " + strconv.Itoa(len(exclude)) + " node(s)")
		}
		gs, err := take(ns.genStamps)
		if err != nil {
			return err
		}
		last.GenerationStamp = gs
		if err := tx.UpdateBlock(ctx, last); err != nil {
			return err
		}
		lb = &LocatedBlock{Block: *last, Offset: in.Size - last.NumBytes, Targets: targets}
		return nil
	})
	return lb, err
}
