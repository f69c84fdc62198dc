package namespace

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/hdfs"
)

// fakeRecoverer answers RecoverBlock with fn, recording the requests.
type fakeRecoverer struct {
	got []BlockRecovery
	fn  func(r BlockRecovery) (RecoveredBlock, error)
}

func (f *fakeRecoverer) RecoverBlock(_ context.Context, r BlockRecovery) (RecoveredBlock, error) {
	f.got = append(f.got, r)
	return f.fn(r)
}

// lastBlock returns the file's last block and its replicas.
func lastBlock(t *testing.T, ns *Namespace, path string) (*LocatedBlock, *FileStatus) {
	t.Helper()
	fb, err := ns.BlockLocations(context.Background(), super, path)
	ok(t, err)
	if len(fb.Blocks) == 0 {
		return nil, fb.Status
	}
	return fb.Blocks[len(fb.Blocks)-1], fb.Status
}

func storages(lb *LocatedBlock) []string {
	var out []string
	for _, t := range lb.Targets {
		out = append(out, t.StorageID)
	}
	slices.Sort(out)
	return out
}

// TestBlockRecovery runs lease recovery's block recovery against a fake
// recoverer: Fsync's recorded length and stamp reach the recoverer, the
// agreed length is committed (block complete under the recovery id, only
// the recovered replicas kept, file closed, lease path gone), the writer's
// calls during the recovery are refused, a failed recovery falls back to
// the recorded length with the block's old stamp, an agreed length of 0
// drops the block, and a file that moves on during the recovery is left
// alone.
func TestBlockRecovery(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	cfg := Config{
		Clock:          clock.Now,
		Placement:      fakePlacement{storages: []string{"s1", "s2", "s3"}},
		LeaseSoftLimit: time.Minute,
		LeaseHardLimit: time.Hour,
	}
	forEachBackend(t, cfg, func(t *testing.T, ns *Namespace) {
		open := func(path, holder string, full int) *LocatedBlock {
			t.Helper()
			_, err := ns.Create(ctx, super, path, CreateOptions{ClientName: holder, Replication: 3, BlockSize: 1 << 20})
			ok(t, err)
			var lb *LocatedBlock
			for i := 0; i <= full; i++ {
				prev := int64(0)
				if i > 0 {
					prev = 1 << 20
				}
				lb, err = ns.AddBlock(ctx, path, holder, prev, nil)
				ok(t, err)
			}
			return lb
		}

		// Fsync records a hflushed length; shorter ones change nothing.
		lb := open("/a", "A", 1)
		ok(t, ns.Fsync(ctx, "/a", "A", lb.Block.BlockID, 1000))
		ok(t, ns.Fsync(ctx, "/a", "A", lb.Block.BlockID, 10))
		if got, st := lastBlock(t, ns, "/a"); got.Block.NumBytes != 1000 || st.Length != 1<<20+1000 || !st.UnderConstruction {
			t.Fatalf("after fsync: block %+v, file %+v", got.Block, st)
		}
		wantClass(t, ns.Fsync(ctx, "/a", "B", lb.Block.BlockID, 2000), hdfs.ErrLeaseExpired)
		wantClass(t, ns.Fsync(ctx, "/a", "A", lb.Block.BlockID+1, 2000), hdfs.ErrIO)

		// Recovery commits what the datanodes agreed; during it the
		// writer's calls are refused.
		rec := &fakeRecoverer{fn: func(r BlockRecovery) (RecoveredBlock, error) {
			wantClass(t, errOf(ns.AddBlock(ctx, "/a", "A", 1500, nil)), hdfs.ErrRecoveryInProgress)
			wantClass(t, errOf(ns.Complete(ctx, "/a", "A", 1500)), hdfs.ErrRecoveryInProgress)
			wantClass(t, ns.Fsync(ctx, "/a", "A", r.Block.BlockID, 1500), hdfs.ErrRecoveryInProgress)
			wantClass(t, errOf(ns.UpdatePipeline(ctx, "/a", "A", r.Block.BlockID, nil)), hdfs.ErrIO)
			return RecoveredBlock{Length: 1500, Storages: []string{"s1", "s3"}}, nil
		}}
		closed, err := ns.RecoverLeaseWith(ctx, super, "/a", rec)
		ok(t, err)
		if !closed || len(rec.got) != 1 {
			t.Fatalf("recoverLease: closed %v after %d recoveries", closed, len(rec.got))
		}
		r := rec.got[0]
		if r.Block.BlockID != lb.Block.BlockID || r.Block.GenerationStamp != lb.Block.GenerationStamp || r.Block.NumBytes != 1000 ||
			r.RecoveryID <= lb.Block.GenerationStamp || len(r.Targets) != 3 {
			t.Errorf("recovery asked: %+v (block before: %+v)", r, lb.Block)
		}
		got, st := lastBlock(t, ns, "/a")
		if got.Block.NumBytes != 1500 || got.Block.GenerationStamp != r.RecoveryID || got.Block.State != dal.BlockComplete ||
			!slices.Equal(storages(got), []string{"s1", "s3"}) {
			t.Errorf("recovered block: %+v on %v", got.Block, storages(got))
		}
		if st.UnderConstruction || st.Length != 1<<20+1500 {
			t.Errorf("recovered file: %+v", st)
		}
		checkFsck(t, ns)

		// No datanode answers: closed with the recorded length and the
		// stamp the replicas have.
		lb = open("/b", "B", 0)
		ok(t, ns.Fsync(ctx, "/b", "B", lb.Block.BlockID, 700))
		failing := &fakeRecoverer{fn: func(BlockRecovery) (RecoveredBlock, error) { return RecoveredBlock{}, errors.New("no datanode") }}
		closed, err = ns.RecoverLeaseWith(ctx, super, "/b", failing)
		ok(t, err)
		got, st = lastBlock(t, ns, "/b")
		if !closed || st.UnderConstruction || st.Length != 700 || got.Block.GenerationStamp != lb.Block.GenerationStamp || got.Block.State != dal.BlockComplete {
			t.Errorf("after a failed recovery: closed %v, file %+v, block %+v (before %+v)", closed, st, got.Block, lb.Block)
		}
		// ... and an unflushed last block is dropped.
		open("/c", "C", 1)
		closed, err = ns.RecoverLeaseWith(ctx, super, "/c", failing)
		ok(t, err)
		if got, st = lastBlock(t, ns, "/c"); !closed || st.UnderConstruction || st.Length != 1<<20 || got.Block.NumBytes != 1<<20 {
			t.Errorf("after a failed recovery of an unflushed block: closed %v, file %+v", closed, st)
		}

		// Agreed empty: the block goes.
		open("/d", "D", 1)
		empty := &fakeRecoverer{fn: func(BlockRecovery) (RecoveredBlock, error) {
			return RecoveredBlock{Length: 0, Storages: []string{"s1"}}, nil
		}}
		closed, err = ns.RecoverLeaseWith(ctx, super, "/d", empty)
		ok(t, err)
		if fb, err := ns.BlockLocations(ctx, super, "/d"); err != nil || !closed || len(fb.Blocks) != 1 || fb.Status.Length != 1<<20 {
			t.Errorf("after recovering an empty block: closed %v, %+v %v", closed, fb, err)
		}

		// The file is deleted during the recovery: the commit gives up.
		open("/e", "E", 0)
		deleting := &fakeRecoverer{fn: func(BlockRecovery) (RecoveredBlock, error) {
			ok(t, errOf(ns.Delete(ctx, super, "/e", false)))
			return RecoveredBlock{Length: 5, Storages: []string{"s1"}}, nil
		}}
		closed, err = ns.RecoverLeaseWith(ctx, super, "/e", deleting)
		ok(t, err)
		if !closed {
			t.Error("recoverLease of a file deleted during recovery: not closed")
		}

		// The hard limit: RecoverLeasesWith recovers a silent writer's
		// file, not a renewing one's.
		lb = open("/f", "F", 0)
		ok(t, ns.Fsync(ctx, "/f", "F", lb.Block.BlockID, 42))
		open("/g", "G", 0)
		clock.Advance(59 * time.Minute)
		ok(t, ns.RenewLease(ctx, "G"))
		clock.Advance(2 * time.Minute)
		agreeing := &fakeRecoverer{fn: func(r BlockRecovery) (RecoveredBlock, error) {
			return RecoveredBlock{Length: r.Block.NumBytes + 8, Storages: []string{"s2"}}, nil
		}}
		n, err := ns.RecoverLeasesWith(ctx, clock.Now(), agreeing)
		ok(t, err)
		if got, st = lastBlock(t, ns, "/f"); n != 1 || st.UnderConstruction || st.Length != 50 || !slices.Equal(storages(got), []string{"s2"}) {
			t.Errorf("hard limit: %d files closed; /f %+v on %v", n, st, storages(got))
		}
		if _, st = lastBlock(t, ns, "/g"); !st.UnderConstruction {
			t.Errorf("the renewing writer's file was closed: %+v", st)
		}
	})
}
