package datanode

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kura-dev/kura/dfs/blockstore"
	"github.com/kura-dev/kura/proto/dfspb"
)

// fenceWait bounds how long block recovery waits for a fenced-off write to
// let its replica go.
const fenceWait = 10 * time.Second

// activeWrite is a WriteBlock in progress on this datanode: block recovery
// stops it with fence and waits for done, closed once its receiver has let
// the replica go (finalized, closed being written, or dropped).
type activeWrite struct {
	fence context.CancelFunc
	done  chan struct{}
}

// startWrite registers a write of block id.
func (d *Datanode) startWrite(id uint64, fence context.CancelFunc) *activeWrite {
	aw := &activeWrite{fence: fence, done: make(chan struct{})}
	d.writesMu.Lock()
	d.writes[id] = aw
	d.writesMu.Unlock()
	return aw
}

// endWrite unregisters aw, the write of block id, once its replica is let
// go.
func (d *Datanode) endWrite(id uint64, aw *activeWrite) {
	d.writesMu.Lock()
	if d.writes[id] == aw {
		delete(d.writes, id)
	}
	d.writesMu.Unlock()
	close(aw.done)
}

// stopWriter stops the write of block id in progress here, if any (HDFS's
// ReplicaInPipeline.stopWriter), and waits until its replica is let go:
// the old writer's stream ends, and the replica stays as far as it got.
// A replica still held after that (a writer that does not stop) is waited
// for until fenceWait, then ErrBusy.
func (d *Datanode) stopWriter(ctx context.Context, id uint64) error {
	d.writesMu.Lock()
	aw := d.writes[id]
	d.writesMu.Unlock()
	if aw != nil {
		aw.fence()
		select {
		case <-aw.done:
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(fenceWait):
			return fmt.Errorf("block %d: %w: its writer did not stop within %v", id, blockstore.ErrBusy, fenceWait)
		}
	}
	deadline := time.Now().Add(fenceWait)
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		bi, err := d.store.Stat(id)
		if err != nil || !bi.Writing {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("block %d: %w: held by a writer", id, blockstore.ErrBusy)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// recoveryReplica stops the replica's writer and checks the replica
// against a recovery of req.Block to recoveryID.
func (d *Datanode) recoveryReplica(ctx context.Context, op string, b Block, recoveryID uint64) (blockstore.BlockInfo, error) {
	if recoveryID <= b.GenStamp {
		return blockstore.BlockInfo{}, status.Errorf(codes.InvalidArgument, "datanode %s: %s %s: recovery id %d is not newer than the block", d.addr, op, b, recoveryID)
	}
	if err := d.stopWriter(ctx, b.ID); err != nil {
		return blockstore.BlockInfo{}, toStatus(fmt.Errorf("datanode %s: %s %s: %w", d.addr, op, b, err))
	}
	bi, err := d.store.Stat(b.ID)
	if err != nil {
		return bi, toStatus(fmt.Errorf("datanode %s: %s %s: %w", d.addr, op, b, err))
	}
	switch {
	case bi.Corrupt != "":
		return bi, status.Errorf(codes.FailedPrecondition, "datanode %s: %s %s: the replica is corrupt: %s", d.addr, op, b, bi.Corrupt)
	case bi.GenStamp < b.GenStamp:
		return bi, status.Errorf(codes.FailedPrecondition, "datanode %s: %s %s: the replica has the older generation stamp %d", d.addr, op, b, bi.GenStamp)
	}
	return bi, nil
}

// InitReplicaRecovery stops any write of the replica and reports it (see
// dfs.proto).
func (t *transfer) InitReplicaRecovery(ctx context.Context, req *dfspb.InitReplicaRecoveryRequest) (*dfspb.InitReplicaRecoveryResponse, error) {
	d := t.d
	if req.Block == nil {
		return nil, status.Error(codes.InvalidArgument, "datanode: init replica recovery: no block")
	}
	b := Block{ID: req.Block.Id, GenStamp: req.Block.Genstamp}
	bi, err := d.recoveryReplica(ctx, "init replica recovery of", b, req.RecoveryId)
	if err != nil {
		return nil, err
	}
	if bi.GenStamp >= req.RecoveryId {
		return nil, status.Errorf(codes.FailedPrecondition, "datanode %s: init replica recovery of %s: the replica already has the stamp %d, at or past recovery %d",
			d.addr, b, bi.GenStamp, req.RecoveryId)
	}
	d.log.Info("block recovery: replica reported", "block", b, "recovery", req.RecoveryId, "genstamp", bi.GenStamp, "length", bi.Length, "state", bi.State)
	return &dfspb.InitReplicaRecoveryResponse{Length: bi.Length, Genstamp: bi.GenStamp, State: reported(bi).State}, nil
}

// UpdateReplicaUnderRecovery cuts the replica back, re-stamps and
// finalizes it (see dfs.proto), and reports it to the namenodes.
func (t *transfer) UpdateReplicaUnderRecovery(ctx context.Context, req *dfspb.UpdateReplicaUnderRecoveryRequest) (*dfspb.UpdateReplicaUnderRecoveryResponse, error) {
	d := t.d
	if req.Block == nil || req.NewLength < 0 {
		return nil, status.Error(codes.InvalidArgument, "datanode: update replica under recovery: no block, or a negative length")
	}
	b := Block{ID: req.Block.Id, GenStamp: req.Block.Genstamp}
	op := fmt.Sprintf("update replica under recovery %d of", req.RecoveryId)
	bi, err := d.recoveryReplica(ctx, op, b, req.RecoveryId)
	if err != nil {
		return nil, err
	}
	if bi.GenStamp == req.RecoveryId && bi.State == blockstore.Finalized && bi.Length == req.NewLength {
		return &dfspb.UpdateReplicaUnderRecoveryResponse{Length: bi.Length}, nil // done before: a retry
	}
	if bi.Length < req.NewLength {
		return nil, status.Errorf(codes.FailedPrecondition, "datanode %s: %s %s: the replica has %d bytes, fewer than %d", d.addr, op, b, bi.Length, req.NewLength)
	}
	info, err := d.store.Recover(ctx, b.ID, req.RecoveryId, req.NewLength)
	if errors.Is(err, blockstore.ErrBusy) {
		err = fmt.Errorf("%w (a new writer took the replica)", err)
	}
	if err != nil {
		return nil, toStatus(fmt.Errorf("datanode %s: %s %s: %w", d.addr, op, b, err))
	}
	d.log.Info("block recovery: replica finalized", "block", b, "recovery", req.RecoveryId, "length", info.Length, "was", bi.Length)
	d.blockEvent(dfspb.BlockEventKind_RECEIVED, info)
	return &dfspb.UpdateReplicaUnderRecoveryResponse{Length: info.Length}, nil
}
