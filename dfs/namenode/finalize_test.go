package namenode_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/blockstore"
	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/datanode"
	"github.com/kura-dev/kura/dfs/dnmanager"
	"github.com/kura-dev/kura/dfs/namenode"
)

// TestFallbackCloseFinalizesReturningReplicas: a writer hflushes a file
// and vanishes while every datanode is down, so lease recovery closes the
// file with the recorded lengths, its last block's replicas still being
// written on the datanodes. When the datanodes come back, their block
// reports name those replicas: the namenode has the two whole ones
// finalized at the recorded length (keeping their stamp), and the third,
// which lost bytes while away, marked corrupt, deleted and copied again
// from a good one; the file ends on three finalized replicas, reads back,
// and nothing is left under-replicated. Before, the replicas stayed being
// written for good (readable, never finalized, never re-replicated).
func TestFallbackCloseFinalizesReturningReplicas(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		quiet = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	hb := 50 * time.Millisecond
	n, err := namenode.Start(ctx, namenode.Config{
		MetaURL: "sqlite://" + filepath.Join(t.TempDir(), "meta.db"), HTTPAddr: "127.0.0.1:0", RPCAddr: "127.0.0.1:0",
		Datanodes: dnmanager.Config{HeartbeatInterval: hb, DeadIntervals: 200,
			ReplicationInterval: 100 * time.Millisecond, ReplicationRetry: 500 * time.Millisecond},
		MaintenanceInterval: -1,
		Logger:              quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	start := func(dir string) *datanode.Datanode {
		d, err := datanode.Start(ctx, datanode.Config{DataDir: dir, DataAddr: "127.0.0.1:0", Namenodes: []string{n.RPCAddr()},
			HeartbeatInterval: hb, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	var dns []*datanode.Datanode
	for _, dir := range dirs {
		dns = append(dns, start(dir))
	}
	waitFor(t, "three live datanodes", func() bool { return n.Manager().LiveCount() == 3 })

	c := newWriterClient(t, n.RPCAddr())
	wc := newWriterClient(t, n.RPCAddr())
	data := randomBytes(recFlushed, 5)
	writeFlushed(t, ctx, wc, c, "/f", data)
	locs, err := c.BlockLocations(ctx, "/f")
	if err != nil || len(locs.Blocks) != 3 {
		t.Fatalf("block locations: %v %v", locs, err)
	}
	last := locs.Blocks[2]
	lastLen := int64(recFlushed - 2*recBlockSize)
	for _, d := range dns {
		d.Close()
	}
	wc.Close()

	// No datanode answers: the file is closed with the recorded lengths.
	if closed, err := c.RecoverLease(ctx, "/f"); err != nil || !closed {
		t.Fatalf("recoverLease: %v %v", closed, err)
	}
	if st, err := c.Stat(ctx, "/f"); err != nil || st.UnderConstruction || st.Length != recFlushed {
		t.Fatalf("after recovery without datanodes: %+v %v", st, err)
	}
	// The third datanode's replica lost its tail while it was away (to a
	// chunk boundary, so that it opens as a valid, shorter replica).
	lost := filepath.Join(dirs[2], "rbw", "blk_"+strconv.FormatUint(last.Block.Id, 10))
	if err := os.Truncate(lost, lastLen/2/512*512); err != nil {
		t.Fatal(err)
	}

	// The datanodes come back.
	dns = dns[:0]
	var sids []string
	for _, dir := range dirs {
		d := start(dir)
		dns = append(dns, d)
		sids = append(sids, d.StorageID())
		if bi, err := d.Store().Stat(last.Block.Id); err != nil || bi.State != blockstore.BeingWritten {
			t.Fatalf("the last block's replica on %s before its report: %+v %v, want being written", dir, bi, err)
		}
	}
	slices.Sort(sids)
	finalized := func() []string {
		var out []string
		err := n.Namespace().Store().ReadTx(ctx, func(tx dal.Tx) error {
			blk, err := tx.GetBlock(ctx, int64(last.Block.Id))
			if err != nil {
				return err
			}
			reps, err := tx.ListReplicas(ctx, blk.InodeID, blk.BlockID)
			if err != nil {
				return err
			}
			for _, r := range reps {
				if r.State == dal.ReplicaFinalized {
					out = append(out, r.StorageID)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(out)
		return out
	}
	waitFor(t, "three finalized replicas of the last block", func() bool {
		if !slices.Equal(finalized(), sids) {
			return false
		}
		for _, d := range dns {
			bi, err := d.Store().Stat(last.Block.Id)
			if err != nil || bi.State != blockstore.Finalized || bi.Length != lastLen || bi.GenStamp != last.Block.Genstamp {
				return false
			}
		}
		return true
	})
	checkClosed(t, ctx, c, "/f", data)
	for _, d := range dns {
		var buf bytes.Buffer
		b := datanode.Block{ID: last.Block.Id, GenStamp: last.Block.Genstamp}
		if _, err := datanode.ReadBlock(ctx, d.Addr(), b, 0, 0, &buf); err != nil || !bytes.Equal(buf.Bytes(), data[2*recBlockSize:]) {
			t.Fatalf("read of the last block on %s: %v (%d bytes)", d.Addr(), err, buf.Len())
		}
	}
	waitFor(t, "a replication check with nothing under-replicated", func() bool {
		r := n.Status().Replication // as GET /status shows it
		return r.Scans > 0 && r.LastScan != nil && r.UnderReplicated == 0 && r.Queued >= 1
	})
}
