package dnmanager

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/proto/dfspb"
)

// reportResult counts what a full block report changed.
type reportResult struct {
	added, updated, removed int
	deletes                 []*dfspb.BlockRef
	// finalize are the replicas left being written of complete blocks,
	// for the datanode to finalize.
	finalize []*dfspb.FinalizeBlock
}

// reconcile brings storage sid's replicas rows in line with its full report
// (see the package documentation), in transactions of at most batch rows
// and batch reported blocks each: both sides are walked in block id order
// and each transaction covers the block ids up to the smaller of the two
// batches' last ids.
func reconcile(ctx context.Context, store dal.Store, sid string, blocks []*dfspb.ReportedBlock, batch int) (*reportResult, error) {
	res := &reportResult{}
	// Sort the report; ids no namenode hands out are deleted at once.
	rep := make([]*dfspb.ReportedBlock, 0, len(blocks))
	for _, b := range blocks {
		if b == nil {
			continue
		}
		if _, ok := blockID(b.Id); !ok {
			res.deletes = append(res.deletes, &dfspb.BlockRef{Id: b.Id, Genstamp: b.Genstamp})
			continue
		}
		rep = append(rep, b)
	}
	slices.SortFunc(rep, func(a, b *dfspb.ReportedBlock) int {
		switch {
		case a.Id < b.Id:
			return -1
		case a.Id > b.Id:
			return 1
		}
		return 0
	})
	rep = slices.CompactFunc(rep, func(a, b *dfspb.ReportedBlock) bool { return a.Id == b.Id })

	var after int64 // block ids <= after are done
	i := 0          // rep[:i] are done
	for {
		var chunk reportResult
		var end int64
		var moreRows bool
		err := store.Tx(ctx, func(tx dal.Tx) error {
			chunk = reportResult{}
			rows, err := tx.ListStorageReplicas(ctx, sid, after, batch)
			if err != nil {
				return fmt.Errorf("list replicas: %w", err)
			}
			moreRows = len(rows) == batch
			end = math.MaxInt64
			if moreRows {
				end = rows[len(rows)-1].BlockID
			}
			if j := i + batch - 1; j < len(rep) {
				end = min(end, int64(rep[j].Id))
			}
			k := i
			for k < len(rep) && int64(rep[k].Id) <= end {
				k++
			}
			var mine []*dal.Replica
			for _, r := range rows {
				if r.BlockID <= end {
					mine = append(mine, r)
				}
			}
			return reconcileChunk(ctx, tx, sid, mine, rep[i:k], &chunk)
		})
		if err != nil {
			return nil, fmt.Errorf("reconcile block report of %s after block %d: %w", sid, after, err)
		}
		res.added += chunk.added
		res.updated += chunk.updated
		res.removed += chunk.removed
		res.deletes = append(res.deletes, chunk.deletes...)
		res.finalize = append(res.finalize, chunk.finalize...)
		for i < len(rep) && int64(rep[i].Id) <= end {
			i++
		}
		after = end
		if end == math.MaxInt64 {
			return res, nil
		}
	}
}

// reconcileChunk reconciles the rows and reported blocks of one id range,
// both sorted by block id, inside tx.
func reconcileChunk(ctx context.Context, tx dal.Tx, sid string, rows []*dal.Replica, rep []*dfspb.ReportedBlock, res *reportResult) error {
	byID := make(map[int64]*dal.Replica, len(rows))
	for _, r := range rows {
		byID[r.BlockID] = r
	}
	del := func(b *dfspb.ReportedBlock) {
		res.deletes = append(res.deletes, &dfspb.BlockRef{Id: b.Id, Genstamp: b.Genstamp})
	}
	for _, b := range rep {
		id := int64(b.Id)
		row := byID[id]
		delete(byID, id)
		blk, err := tx.GetBlock(ctx, id)
		if errors.Is(err, dal.ErrNotFound) {
			del(b) // no file has the block (a replica row without a block cannot exist)
			continue
		}
		if err != nil {
			return fmt.Errorf("read block %d: %w", id, err)
		}
		if blk.State == dal.BlockUnderRecovery && b.Genstamp < uint64(max(blk.GenerationStamp, 0)) {
			// While a block is under recovery its stamp stays its
			// replicas' (the recovery id is apart, in RecoveryID, until the
			// recovery commits): a replica older than that takes no part
			// in the recovery, but the recovery decides what becomes of
			// the block's replicas, not this report; the first report
			// after it deletes this one if still stale. Replicas at the
			// block's stamp or newer (an earlier recovery's id) are
			// recorded as for any block.
			continue
		}
		if b.Genstamp < uint64(max(blk.GenerationStamp, 0)) {
			// A replica older than the block (a failed pipeline's): stale.
			if row != nil {
				if err := removeReplica(ctx, tx, blk.InodeID, id, sid); err != nil {
					return err
				}
				res.removed++
			}
			del(b)
			continue
		}
		if leftBeingWritten(b, blk) {
			// A replica a writer left being written, of a block the
			// namenode holds complete at its stamp (lease recovery closed
			// the file with the recorded lengths while this datanode was
			// away, or its report was late): the datanode is to finalize
			// it at the block's length, or mark it corrupt if it is
			// shorter; its row follows its incremental report.
			res.finalize = append(res.finalize, &dfspb.FinalizeBlock{
				Block: &dfspb.BlockRef{Id: b.Id, Genstamp: b.Genstamp}, Length: blk.NumBytes})
			continue
		}
		want, ok := wantedState(b, blk)
		if !ok {
			continue // see wantedState
		}
		if row == nil {
			err := tx.AddReplica(ctx, &dal.Replica{InodeID: blk.InodeID, BlockID: id, StorageID: sid, State: want})
			if errors.Is(err, dal.ErrNotFound) {
				return dal.MarkTransient(fmt.Errorf("block %d deleted while adding its replica: %w", id, err))
			}
			if err != nil {
				return fmt.Errorf("add replica of block %d: %w", id, err)
			}
			res.added++
			continue
		}
		if row.State != want && (want != dal.ReplicaBeingWritten) {
			if err := tx.UpdateReplicaState(ctx, blk.InodeID, id, sid, want); err != nil {
				return fmt.Errorf("update replica of block %d: %w", id, err)
			}
			res.updated++
		}
	}
	// Rows the datanode did not report, in block id order.
	for _, r := range rows {
		if _, left := byID[r.BlockID]; !left || r.State == dal.ReplicaBeingWritten {
			continue
		}
		if err := removeReplica(ctx, tx, r.InodeID, r.BlockID, sid); err != nil {
			return err
		}
		res.removed++
	}
	return nil
}

// leftBeingWritten reports whether b, a healthy replica reported being
// written, is of the complete block blk at blk's generation stamp: a
// replica to finalize (HDFS ignores these and relies on the pipeline's
// finalization; kura's datanodes finalize them on the namenode's word,
// since a writer that died leaves them being written for good).
func leftBeingWritten(b *dfspb.ReportedBlock, blk *dal.Block) bool {
	return b.Corrupt == "" && b.State != dfspb.ReplicaState_FINALIZED &&
		blk.State == dal.BlockComplete && b.Genstamp == uint64(max(blk.GenerationStamp, 0))
}

// wantedState is the replicas row state for a reported replica of blk
// (not older than blk); false for a replica being written of a block no
// longer under construction that is not one to finalize (of a committed
// block, whose pipeline finalizes it, or with a newer stamp than the
// complete block's, which no pipeline or recovery leaves): neither
// recorded nor deleted.
func wantedState(b *dfspb.ReportedBlock, blk *dal.Block) (dal.ReplicaState, bool) {
	switch {
	case b.Corrupt != "":
		return dal.ReplicaCorrupt, true
	case b.State == dfspb.ReplicaState_FINALIZED:
		return dal.ReplicaFinalized, true
	case blk.State == dal.BlockUnderConstruction:
		return dal.ReplicaBeingWritten, true
	}
	return 0, false
}

func removeReplica(ctx context.Context, tx dal.Tx, inodeID, blockID int64, sid string) error {
	if err := tx.RemoveReplica(ctx, inodeID, blockID, sid); err != nil && !errors.Is(err, dal.ErrNotFound) {
		return fmt.Errorf("remove replica of block %d: %w", blockID, err)
	}
	return nil
}
