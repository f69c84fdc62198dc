package namespace

import (
	"context"
	"testing"

	"github.com/kura-dev/kura/dfs/hdfs"
)

// TestRetriedCalls sends create, addBlock and complete again as a client
// does after a namenode died before answering: each gets what the first
// call did, never a second block or a spurious error; a wrong previous
// block is refused. Also AbandonBlock and UpdatePipeline.
func TestRetriedCalls(t *testing.T) {
	ctx := context.Background()
	cfg := Config{Placement: fakePlacement{storages: []string{"s1", "s2", "s3"}}, DefaultBlockSize: 1 << 20}
	forEachBackend(t, cfg, func(t *testing.T, ns *Namespace) {
		ok(t, ns.Mkdirs(ctx, super, "/d", 0o755, true))
		o := CreateOptions{Perm: 0o644, ClientName: "w", Replication: 2}
		first, err := ns.Create(ctx, super, "/d/f", o)
		ok(t, err)
		wantClass(t, errOf(ns.Create(ctx, super, "/d/f", o)), hdfs.ErrAlreadyBeingCreated)
		o.Retry = true
		again, err := ns.Create(ctx, super, "/d/f", o)
		ok(t, err)
		if again.ID != first.ID {
			t.Fatalf("retried create: inode %d, first %d", again.ID, first.ID)
		}
		other := o
		other.ClientName = "x"
		wantClass(t, errOf(ns.Create(ctx, super, "/d/f", other)), hdfs.ErrAlreadyBeingCreated)

		b1, err := ns.AddBlockAfter(ctx, "/d/f", "w", 0, 0, nil)
		ok(t, err)
		r1, err := ns.AddBlockAfter(ctx, "/d/f", "w", 0, 0, nil)
		ok(t, err)
		if r1.Block.BlockID != b1.Block.BlockID || len(r1.Targets) != 2 || r1.Offset != 0 {
			t.Fatalf("retried first addBlock: %+v, first %+v", r1, b1)
		}
		b2, err := ns.AddBlockAfter(ctx, "/d/f", "w", b1.Block.BlockID, 1<<20, nil)
		ok(t, err)
		r2, err := ns.AddBlockAfter(ctx, "/d/f", "w", b1.Block.BlockID, 1<<20, nil)
		ok(t, err)
		if r2.Block.BlockID != b2.Block.BlockID || r2.Offset != 1<<20 {
			t.Fatalf("retried second addBlock: %+v, first %+v", r2, b2)
		}
		wantClass(t, errOf(ns.AddBlockAfter(ctx, "/d/f", "w", 12345, 0, nil)), hdfs.ErrIO)
		// Once a retry has become a newer call, the first block is stale.
		wantClass(t, errOf(ns.AddBlockAfter(ctx, "/d/f", "w", 0, 0, nil)), hdfs.ErrIO)

		// A pipeline failure: the block goes, the next addBlock follows b2.
		ok(t, ns.AbandonBlock(ctx, "/d/f", "w", b2.Block.BlockID))
		ok(t, ns.AbandonBlock(ctx, "/d/f", "w", b2.Block.BlockID)) // a retry
		wantClass(t, ns.AbandonBlock(ctx, "/d/f", "w", b1.Block.BlockID), hdfs.ErrIO)
		wantClass(t, ns.AbandonBlock(ctx, "/d/f", "x", b1.Block.BlockID), hdfs.ErrLeaseExpired)
		b3, err := ns.AddBlockAfter(ctx, "/d/f", "w", b1.Block.BlockID, 1<<20, []string{"s1"})
		ok(t, err)

		// UpdatePipeline re-stamps the block and drops the excluded replica.
		up, err := ns.UpdatePipeline(ctx, "/d/f", "w", b3.Block.BlockID, []string{b3.Targets[0].StorageID})
		ok(t, err)
		if up.Block.GenerationStamp <= b3.Block.GenerationStamp || len(up.Targets) != 1 || up.Targets[0] == b3.Targets[0] {
			t.Fatalf("update pipeline: %+v, block was %+v", up, b3)
		}
		wantClass(t, errOf(ns.UpdatePipeline(ctx, "/d/f", "w", b3.Block.BlockID, []string{up.Targets[0].StorageID})), hdfs.ErrIO)

		for _, b := range []*LocatedBlock{b1, up} {
			ok(t, ns.BlockReceived(ctx, b.Block.BlockID, b.Targets[len(b.Targets)-1].StorageID))
		}
		done, err := ns.CompleteAfter(ctx, "/d/f", "w", b3.Block.BlockID, 10)
		ok(t, err)
		if !done {
			t.Fatal("complete: not done")
		}
		done, err = ns.CompleteAfter(ctx, "/d/f", "w", b3.Block.BlockID, 10)
		ok(t, err)
		if !done {
			t.Fatal("retried complete: not done")
		}
		wantClass(t, errOf(ns.CompleteAfter(ctx, "/d/f", "w", b3.Block.BlockID, 11)), hdfs.ErrLeaseExpired)
		wantClass(t, errOf(ns.Complete(ctx, "/d/f", "w", 10)), hdfs.ErrLeaseExpired)
		st, err := ns.Stat(ctx, super, "/d/f")
		ok(t, err)
		if st.Length != 1<<20+10 || st.UnderConstruction {
			t.Errorf("after complete: %+v", st)
		}
		checkFsck(t, ns)
	})
}
