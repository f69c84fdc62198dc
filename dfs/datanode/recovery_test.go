package datanode

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kura-dev/kura/dfs/blockstore"
	"github.com/kura-dev/kura/proto/dfspb"
)

// startDatanodeIn starts a datanode on dir (so that it can be restarted on
// it) without namenodes; Close is the caller's (and the test's cleanup).
func startDatanodeIn(t *testing.T, dir string, namenodes ...string) *Datanode {
	t.Helper()
	d, err := Start(context.Background(), Config{
		DataDir:             dir,
		DataAddr:            "127.0.0.1:0",
		Namenodes:           namenodes,
		HeartbeatInterval:   50 * time.Millisecond,
		BlockReportInterval: time.Hour,
		RetryMin:            20 * time.Millisecond,
		RetryMax:            200 * time.Millisecond,
		RPCTimeout:          5 * time.Second,
		Logger:              testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// leaveBeingWritten writes data as block b to the datanode at addr,
// hflushes it and abandons the write: the replica stays being written,
// with every byte.
func leaveBeingWritten(t *testing.T, c *Client, d *Datanode, b Block, data []byte) {
	t.Helper()
	ctx := context.Background()
	w, err := c.OpenBlock(ctx, []string{d.Addr()}, b, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Flush(ctx); err != nil || n != int64(len(data)) {
		t.Fatalf("flush: %d %v", n, err)
	}
	w.Abort()
	waitFor(t, "the abandoned replica let go", func() bool {
		bi, err := d.Store().Stat(b.ID)
		return err == nil && !bi.Writing && bi.Length == int64(len(data)) && bi.State == blockstore.BeingWritten
	})
}

// TestOverlappingRecoveries: two namenodes recover the same block at
// once, with different views of its replicas. Recovery A (id 10) sees
// dn1 and dn3, whose replica is short, and agrees on dn3's length;
// recovery B (id 11, newer) sees dn1 and dn2 and agrees on their longer
// length. A's InitReplicaRecovery reaches dn1 first, then B's; dn1 is
// restarted; then A's UpdateReplicaUnderRecovery reaches dn1. dn1
// remembers (on disk) that it is under recovery 11 and refuses A's update
// (and a new init from A), so B finalizes both its replicas at its
// length. A datanode that forgot the recovery id would let A cut dn1 to
// dn3's length, and B would then be left with dn2 alone.
func TestOverlappingRecoveries(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir1 := t.TempDir()
	dn1, dn2, dn3 := startDatanodeIn(t, dir1), startDatanodeIn(t, t.TempDir()), startDatanodeIn(t, t.TempDir())
	c := NewClient("test")
	defer c.Close()
	b := Block{ID: 42, GenStamp: 3}
	data := randomData(100_000)
	short := int64(60_001)
	leaveBeingWritten(t, c, dn1, b, data)
	leaveBeingWritten(t, c, dn2, b, data)
	leaveBeingWritten(t, c, dn3, b, data[:short])
	const ridA, ridB = 10, 11

	// A: init on dn1 and dn3; it agrees on the shortest, dn3's.
	for _, d := range []*Datanode{dn1, dn3} {
		if _, err := c.InitReplicaRecovery(ctx, d.Addr(), b, ridA); err != nil {
			t.Fatalf("A's init on %s: %v", d.Addr(), err)
		}
	}
	// B: init on dn1 and dn2; it agrees on their full length.
	for _, d := range []*Datanode{dn1, dn2} {
		ri, err := c.InitReplicaRecovery(ctx, d.Addr(), b, ridB)
		if err != nil || ri.Length != int64(len(data)) || ri.GenStamp != b.GenStamp || ri.Finalized {
			t.Fatalf("B's init on %s: %+v %v", d.Addr(), ri, err)
		}
	}

	// dn1 restarts: it still knows it is under recovery 11.
	if err := dn1.Close(); err != nil {
		t.Fatal(err)
	}
	dn1 = startDatanodeIn(t, dir1)
	if bi, err := dn1.Store().Stat(b.ID); err != nil || bi.RecoveryID != ridB {
		t.Errorf("dn1's replica after a restart: %+v %v, want under recovery %d", bi, err, ridB)
	}

	// A's update of dn1 (and a new init) is refused; of dn3, done.
	refused := func(what string, err error) {
		t.Helper()
		if !isFailedPrecondition(err) || !strings.Contains(err.Error(), blockstore.ErrStaleRecovery.Error()) {
			t.Errorf("%s: %v, want FAILED_PRECONDITION: %v", what, err, blockstore.ErrStaleRecovery)
		}
	}
	_, err := c.UpdateReplicaUnderRecovery(ctx, dn1.Addr(), b, ridA, short)
	refused("A's update of dn1 under B's recovery", err)
	_, err = c.InitReplicaRecovery(ctx, dn1.Addr(), b, ridA)
	refused("A's init of dn1 under B's recovery", err)
	if n, err := c.UpdateReplicaUnderRecovery(ctx, dn3.Addr(), b, ridA, short); err != nil || n != short {
		t.Fatalf("A's update of dn3: %d %v", n, err)
	}
	if bi, err := dn1.Store().Stat(b.ID); err != nil || bi.Length != int64(len(data)) || bi.GenStamp != b.GenStamp || bi.State != blockstore.BeingWritten {
		t.Errorf("dn1's replica after A's update was refused: %+v %v", bi, err)
	}

	// B finalizes both its replicas at its length, under its id.
	for _, d := range []*Datanode{dn1, dn2} {
		if n, err := c.UpdateReplicaUnderRecovery(ctx, d.Addr(), b, ridB, int64(len(data))); err != nil || n != int64(len(data)) {
			t.Fatalf("B's update of %s: %d %v", d.Addr(), n, err)
		}
		bi, err := d.Store().Stat(b.ID)
		if err != nil || bi.State != blockstore.Finalized || bi.GenStamp != ridB || bi.Length != int64(len(data)) || bi.RecoveryID != 0 {
			t.Fatalf("%s's replica after B: %+v %v", d.Addr(), bi, err)
		}
		got, err := readAll(t, c, d.Addr(), Block{ID: b.ID, GenStamp: ridB}, 0, 0)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read of %s's recovered replica: %d bytes, %v", d.Addr(), len(got), err)
		}
	}
	// A retry of B's update is answered as the first.
	if n, err := c.UpdateReplicaUnderRecovery(ctx, dn1.Addr(), b, ridB, int64(len(data))); err != nil || n != int64(len(data)) {
		t.Fatalf("a retry of B's update: %d %v", n, err)
	}
	// An update without an init is refused.
	b2 := Block{ID: 43, GenStamp: 3}
	leaveBeingWritten(t, c, dn2, b2, data[:5000])
	_, err = c.UpdateReplicaUnderRecovery(ctx, dn2.Addr(), b2, 12, 5000)
	refused("an update without an init", err)
}

// isFailedPrecondition reports whether err carries a FAILED_PRECONDITION
// gRPC status somewhere in its chain.
func isFailedPrecondition(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if st, ok := status.FromError(err); ok && st.Code() == codes.FailedPrecondition {
			return true
		}
	}
	return false
}

// TestFinalizeCommand: a namenode's finalize command finalizes a replica
// left being written at the block's stamp and length (cutting it), marks
// a shorter one corrupt, leaves one of another stamp alone, and the
// namenode hears of the first two in incremental reports.
func TestFinalizeCommand(t *testing.T) {
	nn := startFakeNamenode(t, "")
	d := startDatanodeIn(t, t.TempDir(), nn.addr)
	sid := d.StorageID()
	c := NewClient("test")
	defer c.Close()
	data := randomData(50_000)
	long, short, other := Block{ID: 1, GenStamp: 3}, Block{ID: 2, GenStamp: 3}, Block{ID: 3, GenStamp: 4}
	leaveBeingWritten(t, c, d, long, data)
	leaveBeingWritten(t, c, d, short, data[:20_000])
	leaveBeingWritten(t, c, d, other, data)
	waitFor(t, "registration", func() bool { return nn.isRegistered(sid) })
	nn.mu.Lock()
	nn.commands[sid] = []*dfspb.DatanodeCommand{{Command: &dfspb.DatanodeCommand_Finalize{Finalize: &dfspb.FinalizeBlocksCommand{
		Blocks: []*dfspb.FinalizeBlock{
			{Block: long.ref(), Length: 40_001},
			{Block: short.ref(), Length: 40_001},
			{Block: &dfspb.BlockRef{Id: other.ID, Genstamp: 3}, Length: 40_001},
		}}}}}
	nn.mu.Unlock()
	waitFor(t, "the finalized replica reported", func() bool { return nn.hasEvent(sid, dfspb.BlockEventKind_RECEIVED, long.ID, 40_001) })
	bi, err := d.Store().Stat(long.ID)
	if err != nil || bi.State != blockstore.Finalized || bi.GenStamp != long.GenStamp || bi.Length != 40_001 {
		t.Fatalf("the finalized replica: %+v %v", bi, err)
	}
	if got, err := readAll(t, c, d.Addr(), long, 0, 0); err != nil || !bytes.Equal(got, data[:40_001]) {
		t.Fatalf("read of the finalized replica: %d bytes, %v", len(got), err)
	}
	waitFor(t, "the short replica reported corrupt", func() bool {
		nn.mu.Lock()
		defer nn.mu.Unlock()
		for _, e := range nn.events[sid] {
			if e.Kind == dfspb.BlockEventKind_RECEIVED && e.Block.Id == short.ID && e.Block.Corrupt != "" {
				return true
			}
		}
		return false
	})
	if bi, err := d.Store().Stat(short.ID); err != nil || bi.Corrupt == "" || bi.State != blockstore.BeingWritten {
		t.Fatalf("the short replica: %+v %v, want corrupt", bi, err)
	}
	if bi, err := d.Store().Stat(other.ID); err != nil || bi.Corrupt != "" || bi.State != blockstore.BeingWritten || bi.Length != int64(len(data)) {
		t.Fatalf("the replica of another stamp: %+v %v, want left alone", bi, err)
	}
}
