package datanode

import (
	"context"
	"fmt"

	"github.com/kura-dev/kura/dfs/blockstore"
	"github.com/kura-dev/kura/proto/dfspb"
)

// finalizeBlock carries out one block of a namenode's finalize command:
// the namenode holds block b complete at length bytes, and this datanode
// reported a replica of it being written (left so by a writer that never
// finished, as when lease recovery closed the file without reaching this
// datanode). A replica being written at b's stamp, held by no writer, is
// finalized at length when it has that much (its recovery id, if any, is
// forgotten: the namenode decided the block), and marked corrupt when it
// is shorter; either way the namenodes hear of it in an incremental
// report. Any other replica (finalized, another stamp, held by a writer,
// already corrupt) is left alone: a later block report tells the
// namenode what it is.
func (d *Datanode) finalizeBlock(ctx context.Context, b Block, length int64, nn string) {
	log := d.log.With("block", b, "length", length, "namenode", nn)
	bi, err := d.store.Stat(b.ID)
	switch {
	case err != nil:
		log.Info("finalize command for a block not stored here", "error", err)
		return
	case bi.State == blockstore.Finalized && bi.GenStamp == b.GenStamp, bi.Writing:
		// Finalized meanwhile (or by another namenode's command), or
		// still in a pipeline that will finalize it: nothing to do.
		log.Debug("finalize command for a replica finalized or being finalized", "state", bi.State, "writing", bi.Writing)
		return
	case bi.State != blockstore.BeingWritten || bi.GenStamp != b.GenStamp || bi.Corrupt != "":
		log.Info("finalize command for a replica not left being written at its stamp; leaving it alone",
			"state", bi.State, "genstamp", bi.GenStamp, "replica_length", bi.Length, "corrupt", bi.Corrupt)
		return
	case bi.Length < length:
		d.store.MarkCorrupt(b.ID, b.GenStamp, fmt.Sprintf("being written with %d bytes, fewer than the %d of the complete block", bi.Length, length))
		if bi, err = d.store.Stat(b.ID); err != nil || bi.Corrupt == "" {
			return // changed meanwhile
		}
		log.Warn("a replica left being written is shorter than its complete block; marked corrupt", "replica_length", bi.Length)
		d.blockEvent(dfspb.BlockEventKind_RECEIVED, bi)
		return
	}
	info, err := d.store.FinalizeAt(ctx, b.ID, b.GenStamp, length)
	if err != nil {
		log.Warn("finalizing a replica left being written failed", "error", err)
		return
	}
	log.Info("finalized a replica left being written", "was", bi.Length)
	d.blockEvent(dfspb.BlockEventKind_RECEIVED, info)
}
