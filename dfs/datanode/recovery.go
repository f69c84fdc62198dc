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

// staleRecovery refuses a recovery call older than the recovery the
// replica is under, or than the replica's stamp (a newer writer or
// recovery has it; the stamp itself is refused for an init, and left to
// the update's retry check), before it stops any writer: an older
// recovery fences nothing off (HDFS's RecoveryInProgressException).
func (d *Datanode) staleRecovery(op string, b Block, recoveryID uint64, update bool) error {
	if recoveryID <= b.GenStamp {
		return status.Errorf(codes.InvalidArgument, "datanode %s: %s %s: recovery id %d is not newer than the block", d.addr, op, b, recoveryID)
	}
	bi, err := d.store.Stat(b.ID)
	switch {
	case err != nil:
	case bi.RecoveryID > recoveryID:
		return status.Errorf(codes.FailedPrecondition, "datanode %s: %s %s: %v: the replica is under the newer recovery %d",
			d.addr, op, b, blockstore.ErrStaleRecovery, bi.RecoveryID)
	case bi.GenStamp > recoveryID || (!update && bi.GenStamp == recoveryID):
		return status.Errorf(codes.FailedPrecondition, "datanode %s: %s %s: %v: the replica already has the stamp %d",
			d.addr, op, b, blockstore.ErrStaleRecovery, bi.GenStamp)
	}
	return nil
}

// checkReplica refuses a replica block recovery cannot use.
func (d *Datanode) checkReplica(op string, b Block, bi blockstore.BlockInfo) error {
	switch {
	case bi.Corrupt != "":
		return status.Errorf(codes.FailedPrecondition, "datanode %s: %s %s: the replica is corrupt: %s", d.addr, op, b, bi.Corrupt)
	case bi.GenStamp < b.GenStamp:
		return status.Errorf(codes.FailedPrecondition, "datanode %s: %s %s: the replica has the older generation stamp %d", d.addr, op, b, bi.GenStamp)
	}
	return nil
}

// InitReplicaRecovery stops any write of the replica, puts it under the
// recovery (the datanode keeps the recovery id, on disk, and refuses older
// recoveries from then on) and reports it (see dfs.proto).
func (t *transfer) InitReplicaRecovery(ctx context.Context, req *dfspb.InitReplicaRecoveryRequest) (*dfspb.InitReplicaRecoveryResponse, error) {
	d := t.d
	if req.Block == nil {
		return nil, status.Error(codes.InvalidArgument, "datanode: init replica recovery: no block")
	}
	b := Block{ID: req.Block.Id, GenStamp: req.Block.Genstamp}
	const op = "init replica recovery of"
	if err := d.staleRecovery(op, b, req.RecoveryId, false); err != nil {
		return nil, err
	}
	if err := d.stopWriter(ctx, b.ID); err != nil {
		return nil, toStatus(fmt.Errorf("datanode %s: %s %s: %w", d.addr, op, b, err))
	}
	if bi, err := d.store.Stat(b.ID); err == nil {
		if err := d.checkReplica(op, b, bi); err != nil {
			return nil, err
		}
	}
	bi, err := d.store.InitRecovery(ctx, b.ID, req.RecoveryId)
	if err != nil {
		return nil, toStatus(fmt.Errorf("datanode %s: %s %s: %w", d.addr, op, b, err))
	}
	if err := d.checkReplica(op, b, bi); err != nil {
		return nil, err
	}
	d.log.Info("block recovery: replica reported", "block", b, "recovery", req.RecoveryId, "genstamp", bi.GenStamp, "length", bi.Length, "state", bi.State)
	return &dfspb.InitReplicaRecoveryResponse{Length: bi.Length, Genstamp: bi.GenStamp, State: reported(bi).State}, nil
}

// UpdateReplicaUnderRecovery cuts the replica back, re-stamps and
// finalizes it (see dfs.proto), and reports it to the namenodes. Only the
// recovery the replica is under (the last InitReplicaRecovery) may: an
// older one, overlapping a newer one, is refused, so that it cannot cut a
// replica the newer one agreed on.
func (t *transfer) UpdateReplicaUnderRecovery(ctx context.Context, req *dfspb.UpdateReplicaUnderRecoveryRequest) (*dfspb.UpdateReplicaUnderRecoveryResponse, error) {
	d := t.d
	if req.Block == nil || req.NewLength < 0 {
		return nil, status.Error(codes.InvalidArgument, "datanode: update replica under recovery: no block, or a negative length")
	}
	b := Block{ID: req.Block.Id, GenStamp: req.Block.Genstamp}
	op := fmt.Sprintf("update replica under recovery %d of", req.RecoveryId)
	if err := d.staleRecovery(op, b, req.RecoveryId, true); err != nil {
		return nil, err
	}
	if err := d.stopWriter(ctx, b.ID); err != nil {
		return nil, toStatus(fmt.Errorf("datanode %s: %s %s: %w", d.addr, op, b, err))
	}
	bi, err := d.store.Stat(b.ID)
	if err != nil {
		return nil, toStatus(fmt.Errorf("datanode %s: %s %s: %w", d.addr, op, b, err))
	}
	if err := d.checkReplica(op, b, bi); err != nil {
		return nil, err
	}
	if bi.GenStamp == req.RecoveryId && bi.State == blockstore.Finalized && bi.Length == req.NewLength {
		return &dfspb.UpdateReplicaUnderRecoveryResponse{Length: bi.Length}, nil // done before: a retry
	}
	if bi.RecoveryID != req.RecoveryId {
		if bi.RecoveryID == 0 {
			return nil, status.Errorf(codes.FailedPrecondition, "datanode %s: %s %s: %v: the replica is under no recovery (InitReplicaRecovery first)",
				d.addr, op, b, blockstore.ErrStaleRecovery)
		}
		return nil, status.Errorf(codes.FailedPrecondition, "datanode %s: %s %s: %v: the replica is under recovery %d",
			d.addr, op, b, blockstore.ErrStaleRecovery, bi.RecoveryID)
	}
	if bi.Length < req.NewLength {
		return nil, status.Errorf(codes.FailedPrecondition, "datanode %s: %s %s: the replica has %d bytes, fewer than %d", d.addr, op, b, bi.Length, req.NewLength)
	}
	// Recover checks the recovery id again, under the replica's lock: a
	// newer InitReplicaRecovery since the Stat above wins.
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
