package namenode_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/blockstore"
	"github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/datanode"
	"github.com/kura-dev/kura/dfs/dnmanager"
	"github.com/kura-dev/kura/dfs/hdfs"
	"github.com/kura-dev/kura/dfs/namenode"
	"github.com/kura-dev/kura/dfs/namespace"
	"github.com/kura-dev/kura/proto/dfspb"
)

// recCluster is a namenode with datanodes on directories that outlive
// them, so that a datanode can be stopped and started again.
type recCluster struct {
	t    *testing.T
	nn   *namenode.Namenode
	dirs []string
	dns  []*datanode.Datanode
	log  *slog.Logger
}

// startRecCluster starts a namenode (no housekeeping) with nsCfg and n
// datanodes.
func startRecCluster(t *testing.T, ctx context.Context, nsCfg namespace.Config, n int) *recCluster {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	nn, err := namenode.Start(ctx, namenode.Config{
		MetaURL: "sqlite://" + filepath.Join(t.TempDir(), "meta.db"), HTTPAddr: "127.0.0.1:0", RPCAddr: "127.0.0.1:0",
		Datanodes:           dnmanager.Config{HeartbeatInterval: 50 * time.Millisecond, DeadIntervals: 200},
		MaintenanceInterval: -1,
		RecoveryTimeout:     5 * time.Second,
		Namespace:           nsCfg,
		Logger:              quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nn.Close() })
	c := &recCluster{t: t, nn: nn, log: quiet}
	for range n {
		c.dirs = append(c.dirs, t.TempDir())
		c.dns = append(c.dns, nil)
		c.startDatanode(ctx, len(c.dirs)-1)
	}
	waitFor(t, "live datanodes", func() bool { return nn.Manager().LiveCount() == n })
	return c
}

// startDatanode starts datanode i on its directory and waits until the
// namenode knows its (new) address.
func (c *recCluster) startDatanode(ctx context.Context, i int) {
	c.t.Helper()
	d, err := datanode.Start(ctx, datanode.Config{DataDir: c.dirs[i], DataAddr: "127.0.0.1:0", Namenodes: []string{c.nn.RPCAddr()},
		HeartbeatInterval: 50 * time.Millisecond, Logger: c.log})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { d.Close() })
	c.dns[i] = d
	waitFor(c.t, "the datanode's registration", func() bool {
		for _, st := range c.nn.Datanodes() {
			if st.StorageID == d.StorageID() && st.DataAddr == d.Addr() && st.Live {
				return true
			}
		}
		return false
	})
}

// recovererFunc is a namespace.BlockRecoverer.
type recovererFunc func(ctx context.Context, r namespace.BlockRecovery) (namespace.RecoveredBlock, error)

func (f recovererFunc) RecoverBlock(ctx context.Context, r namespace.BlockRecovery) (namespace.RecoveredBlock, error) {
	return f(ctx, r)
}

// lastBlockRow reads the row of path's last block.
func lastBlockRow(t *testing.T, ctx context.Context, c *client.Client, nn *namenode.Namenode, path string) *dal.Block {
	t.Helper()
	locs, err := c.BlockLocations(ctx, path)
	if err != nil || len(locs.Blocks) == 0 {
		t.Fatalf("block locations of %s: %v %v", path, locs, err)
	}
	id := int64(locs.Blocks[len(locs.Blocks)-1].Block.Id)
	var b *dal.Block
	err = nn.Namespace().Store().ReadTx(ctx, func(tx dal.Tx) error {
		var err error
		b, err = tx.GetBlock(ctx, id)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestInterruptedRecoveryThenNoDatanode: a namenode dies in the middle of
// a block recovery (it marked the block under recovery, and did no more);
// the lease is recovered again while every datanode is down, so the file
// is closed with the recorded (hflushed) length. The datanodes then come
// back and report their replicas, still at the writer's stamp: the block
// kept that stamp (the interrupted recovery's id was only a recovery id),
// so the reports keep them, no replica is deleted, and the file reads back
// whole.
func TestInterruptedRecoveryThenNoDatanode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := startRecCluster(t, ctx, namespace.Config{}, 3)
	c := newWriterClient(t, cl.nn.RPCAddr())
	wc := newWriterClient(t, cl.nn.RPCAddr())
	data := randomBytes(recFlushed, 5)
	writeFlushed(t, ctx, wc, c, "/f", data)
	wc.Close() // the writer vanishes
	before := lastBlockRow(t, ctx, c, cl.nn, "/f")

	// Phase 1 of a recovery whose namenode dies right after it.
	dctx, die := context.WithCancel(ctx)
	dying := recovererFunc(func(ctx context.Context, r namespace.BlockRecovery) (namespace.RecoveredBlock, error) {
		die()
		return namespace.RecoveredBlock{}, ctx.Err()
	})
	if _, err := cl.nn.Namespace().RecoverLeaseWith(dctx, hdfs.User{Name: "root"}, "/f", dying); !errors.Is(err, context.Canceled) {
		t.Fatalf("the interrupted recovery: %v, want it cancelled", err)
	}
	mid := lastBlockRow(t, ctx, c, cl.nn, "/f")
	if mid.State != dal.BlockUnderRecovery || mid.RecoveryID <= before.GenerationStamp || mid.GenerationStamp != before.GenerationStamp {
		t.Fatalf("block after the interrupted recovery: %+v (before %+v)", mid, before)
	}

	// The retry finds no datanode: the file is closed with what was
	// recorded.
	for _, d := range cl.dns {
		d.Close()
	}
	if closed, err := c.RecoverLease(ctx, "/f"); err != nil || !closed {
		t.Fatalf("recoverLease without datanodes: %v %v", closed, err)
	}
	after := lastBlockRow(t, ctx, c, cl.nn, "/f")
	if after.State != dal.BlockComplete || after.GenerationStamp != before.GenerationStamp || after.RecoveryID != 0 ||
		after.NumBytes != recFlushed-2*recBlockSize {
		t.Fatalf("block after the fallback: %+v, want complete with the writer's stamp %d", after, before.GenerationStamp)
	}

	// The datanodes come back; each one's full block report (sent again
	// here, synchronously) keeps its replica and deletes nothing.
	for i := range cl.dns {
		cl.startDatanode(ctx, i)
	}
	for _, d := range cl.dns {
		req := &dfspb.BlockReportRequest{StorageId: d.StorageID()}
		for _, bi := range d.Store().List() {
			st := dfspb.ReplicaState_RBW
			if bi.State == blockstore.Finalized {
				st = dfspb.ReplicaState_FINALIZED
			}
			req.Blocks = append(req.Blocks, &dfspb.ReportedBlock{Id: bi.ID, Genstamp: bi.GenStamp, Length: bi.Length, State: st, Corrupt: bi.Corrupt})
		}
		resp, err := cl.nn.Manager().BlockReport(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, cmd := range resp.Commands {
			for _, b := range cmd.GetDelete().GetBlocks() {
				if int64(b.Id) == before.BlockID {
					t.Errorf("the block report of %s deletes the replica of blk_%d_%d", d.Addr(), b.Id, b.Genstamp)
				}
			}
		}
		bi, err := d.Store().Stat(uint64(before.BlockID))
		if err != nil || bi.GenStamp != uint64(before.GenerationStamp) || bi.Length < after.NumBytes {
			t.Errorf("replica on %s: %+v %v, want stamp %d and at least %d bytes", d.Addr(), bi, err, before.GenerationStamp, after.NumBytes)
		}
	}
	locs, err := c.BlockLocations(ctx, "/f")
	if err != nil {
		t.Fatal(err)
	}
	if last := locs.Blocks[len(locs.Blocks)-1]; len(last.Locations) != 3 || last.Block.Genstamp != uint64(before.GenerationStamp) {
		t.Errorf("the last block after the reports: stamp %d on %d datanodes, want %d on 3", last.Block.Genstamp, len(last.Locations), before.GenerationStamp)
	}
	checkClosed(t, ctx, c, "/f", data)
}

// TestTakeoverAfterSoftLimit: writer A hflushes, writes a few bytes more
// that stay in its memory, and vanishes without closing (its lease no
// longer renewed, its streams to the datanodes still open). Once A's
// lease passed the (short) soft limit, client B appends: the namenode
// starts block recovery (fencing A's streams off) and answers
// RecoveryInProgressException, which B's client retries until the
// recovery closed the file; B's append then goes on after A's hflushed
// bytes. A can no longer finish.
func TestTakeoverAfterSoftLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const soft = 300 * time.Millisecond
	cl := startRecCluster(t, ctx, namespace.Config{LeaseSoftLimit: soft, LeaseHardLimit: time.Hour}, 3)
	a, err := client.New(client.Config{Namenodes: []string{cl.nn.RPCAddr()}, User: "root", LeaseRenewInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b := newWriterClient(t, cl.nn.RPCAddr())
	flushed := randomBytes(recFlushed, 6)
	w := writeFlushed(t, ctx, a, b, "/t", flushed)
	if _, err := w.Write(randomBytes(700, 7)); err != nil {
		t.Fatal(err)
	}
	before := lastBlockRow(t, ctx, b, cl.nn, "/t")

	// Within the soft limit B is refused; past it, its append starts the
	// recovery and is told to try again later (the namespace's answer,
	// seen directly here)...
	start := time.Now()
	for {
		_, err = cl.nn.Namespace().Append(ctx, hdfs.User{Name: "root"}, "/t", b.ClientName(), "b-host")
		if !errors.Is(err, hdfs.ErrAlreadyBeingCreated) {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("append still refused %v after A's soft limit: %v", time.Since(start), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !errors.Is(err, hdfs.ErrRecoveryInProgress) {
		t.Fatalf("the first append past A's soft limit: %v, want a RecoveryInProgressException", err)
	}
	// ... which B's client retries until the recovery closed the file.
	bw, err := b.Append(ctx, "/t")
	if err != nil {
		t.Fatalf("B's append: %v", err)
	}
	recovered := lastBlockRow(t, ctx, b, cl.nn, "/t")
	if recovered.GenerationStamp <= before.GenerationStamp || recovered.RecoveryID != 0 {
		t.Errorf("the last block after the takeover: %+v, want a stamp past the writer's %d", recovered, before.GenerationStamp)
	}
	more := randomBytes(1<<20+12_345, 8)
	if _, err := bw.Write(more); err != nil {
		t.Fatal(err)
	}
	if err := bw.Close(); err != nil {
		t.Fatalf("B's close: %v", err)
	}
	checkClosed(t, ctx, b, "/t", append(bytes.Clone(flushed), more...))
	checkStamps(t, ctx, b, cl.dns, "/t")

	// A is fenced off: its close fails and changes nothing.
	if err := w.Close(); err == nil {
		t.Error("A's close succeeded after B took the file over")
	}
	checkClosed(t, ctx, b, "/t", append(bytes.Clone(flushed), more...))
}
