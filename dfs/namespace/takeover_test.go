package namespace

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/hdfs"
)

// gatedRecoverer is a BlockRecoverer for background recoveries: each call
// is announced on started and answers what release sends it.
type gatedRecoverer struct {
	mu      sync.Mutex
	got     []BlockRecovery
	started chan BlockRecovery
	release chan recoverAnswer
}

type recoverAnswer struct {
	res RecoveredBlock
	err error
}

func newGatedRecoverer() *gatedRecoverer {
	return &gatedRecoverer{started: make(chan BlockRecovery, 16), release: make(chan recoverAnswer)}
}

func (g *gatedRecoverer) RecoverBlock(ctx context.Context, r BlockRecovery) (RecoveredBlock, error) {
	g.mu.Lock()
	g.got = append(g.got, r)
	g.mu.Unlock()
	g.started <- r
	select {
	case a := <-g.release:
		return a.res, a.err
	case <-ctx.Done():
		return RecoveredBlock{}, ctx.Err()
	}
}

func (g *gatedRecoverer) calls() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.got)
}

// nextRecovery waits for the recoverer's next call.
func (g *gatedRecoverer) nextRecovery(t *testing.T) BlockRecovery {
	t.Helper()
	select {
	case r := <-g.started:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no block recovery started")
		return BlockRecovery{}
	}
}

// blockRow reads block id's row.
func blockRow(t *testing.T, ns *Namespace, id int64) *dal.Block {
	t.Helper()
	var b *dal.Block
	ok(t, ns.Store().ReadTx(context.Background(), func(tx dal.Tx) error {
		var err error
		b, err = tx.GetBlock(context.Background(), id)
		return err
	}))
	return b
}

// waitClosed waits until path is no longer under construction.
func waitClosed(t *testing.T, ns *Namespace, path string) *FileStatus {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := ns.Stat(context.Background(), super, path)
		ok(t, err)
		if !st.UnderConstruction {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still open: %+v", path, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func wantMessage(t *testing.T, err error, part string) {
	t.Helper()
	if err == nil || !strings.Contains(hdfs.ToRemote(err).Message, part) {
		t.Fatalf("error %v, want one saying %q", err, part)
	}
}

// TestTakeoverRecovery: a second writer taking over a file whose writer
// passed the soft limit (Append; Create without overwrite) starts block
// recovery instead of closing the file with the recorded lengths, and is
// answered RecoveryInProgressException until the recovery has closed the
// file; meanwhile the block keeps its stamp (the recovery id is apart),
// the old writer is fenced off, and a retry does not start a second
// recovery. The file then holds the agreed length and the append goes on
// after it. Create with overwrite replaces the file at once; a file with
// no block to recover is taken over at once.
func TestTakeoverRecovery(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	cfg := Config{
		Clock:          clock.Now,
		Placement:      fakePlacement{storages: []string{"s1", "s2", "s3"}},
		LeaseSoftLimit: time.Minute,
		LeaseHardLimit: time.Hour,
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	forEachBackend(t, cfg, func(t *testing.T, ns *Namespace) {
		rec := newGatedRecoverer()
		ns.SetBlockRecoverer(ctx, rec, quiet)
		open := func(path, holder string, flushed int64) *LocatedBlock {
			t.Helper()
			_, err := ns.Create(ctx, super, path, CreateOptions{ClientName: holder, ClientMachine: holder + "-host", Replication: 3, BlockSize: 1 << 20})
			ok(t, err)
			lb, err := ns.AddBlock(ctx, path, holder, 0, nil)
			ok(t, err)
			ok(t, ns.Fsync(ctx, path, holder, lb.Block.BlockID, flushed))
			return lb
		}

		// Within the soft limit: AlreadyBeingCreated, no recovery.
		lb := open("/a", "A", 1000)
		wantClass(t, errOf(ns.Append(ctx, super, "/a", "B", "B-host")), hdfs.ErrAlreadyBeingCreated)

		// Past it: B's append starts the recovery and is told to retry.
		clock.Advance(2 * time.Minute)
		err := errOf(ns.Append(ctx, super, "/a", "B", "B-host"))
		wantClass(t, err, hdfs.ErrRecoveryInProgress)
		wantMessage(t, err, "Failed to APPEND_FILE /a for B on B-host because lease recovery is in progress. Try again later.")
		r := rec.nextRecovery(t)
		if r.Block.BlockID != lb.Block.BlockID || r.Block.GenerationStamp != lb.Block.GenerationStamp || r.Block.NumBytes != 1000 ||
			r.RecoveryID <= lb.Block.GenerationStamp || len(r.Targets) != 3 {
			t.Fatalf("recovery asked: %+v (block before: %+v)", r, lb.Block)
		}
		if b := blockRow(t, ns, lb.Block.BlockID); b.State != dal.BlockUnderRecovery || b.GenerationStamp != lb.Block.GenerationStamp || b.RecoveryID != r.RecoveryID {
			t.Fatalf("block during the recovery: %+v, want under recovery %d with its stamp %d", b, r.RecoveryID, lb.Block.GenerationStamp)
		}
		// The retry while it runs: no second recovery.
		err = errOf(ns.Append(ctx, super, "/a", "B", "B-host"))
		wantClass(t, err, hdfs.ErrRecoveryInProgress)
		wantMessage(t, err, "another recovery is in progress by A on A-host")
		wantClass(t, errOf(ns.Create(ctx, super, "/a", CreateOptions{ClientName: "C"})), hdfs.ErrRecoveryInProgress)
		// The old writer is fenced off.
		wantClass(t, ns.Fsync(ctx, "/a", "A", lb.Block.BlockID, 1500), hdfs.ErrRecoveryInProgress)
		wantClass(t, errOf(ns.Complete(ctx, "/a", "A", 1500)), hdfs.ErrRecoveryInProgress)
		wantClass(t, errOf(ns.AddBlock(ctx, "/a", "A", 1500, nil)), hdfs.ErrRecoveryInProgress)
		wantClass(t, errOf(ns.UpdatePipeline(ctx, "/a", "A", lb.Block.BlockID, nil)), hdfs.ErrIO)
		if n := rec.calls(); n != 1 {
			t.Fatalf("%d recoveries started, want 1", n)
		}

		rec.release <- recoverAnswer{res: RecoveredBlock{Length: 1500, Storages: []string{"s1", "s2"}}}
		st := waitClosed(t, ns, "/a")
		if st.Length != 1500 {
			t.Fatalf("after the recovery: %+v, want length 1500", st)
		}
		if b := blockRow(t, ns, lb.Block.BlockID); b.State != dal.BlockComplete || b.GenerationStamp != r.RecoveryID || b.RecoveryID != 0 || b.NumBytes != 1500 {
			t.Fatalf("block after the recovery: %+v, want complete at 1500 with stamp %d", b, r.RecoveryID)
		}
		res, err := ns.Append(ctx, super, "/a", "B", "B-host")
		ok(t, err)
		if res.LastBlock == nil || res.LastLength != 1500 || res.LastBlock.Block.GenerationStamp <= r.RecoveryID ||
			!res.Status.UnderConstruction || res.Status.ClientName != "B" || len(res.LastBlock.Targets) != 2 {
			t.Fatalf("append after the recovery: %+v, last %+v", res, res.LastBlock)
		}

		// Create without overwrite recovers too, then the file exists.
		lb = open("/b", "D", 700)
		clock.Advance(2 * time.Minute)
		err = errOf(ns.Create(ctx, super, "/b", CreateOptions{ClientName: "E", ClientMachine: "E-host"}))
		wantClass(t, err, hdfs.ErrRecoveryInProgress)
		wantMessage(t, err, "Failed to CREATE_FILE /b for E on E-host because lease recovery is in progress")
		r = rec.nextRecovery(t)
		// No datanode answers: the file is closed with the recorded
		// length, the block keeps its stamp.
		rec.release <- recoverAnswer{err: errors.New("no datanode")}
		if st := waitClosed(t, ns, "/b"); st.Length != 700 {
			t.Fatalf("after a failed recovery: %+v, want length 700", st)
		}
		if b := blockRow(t, ns, lb.Block.BlockID); b.State != dal.BlockComplete || b.GenerationStamp != lb.Block.GenerationStamp || b.RecoveryID != 0 {
			t.Fatalf("block after a failed recovery %d: %+v, want complete with its stamp %d", r.RecoveryID, b, lb.Block.GenerationStamp)
		}
		wantClass(t, errOf(ns.Create(ctx, super, "/b", CreateOptions{ClientName: "E"})), hdfs.ErrFileAlreadyExists)

		// Create with overwrite replaces the file at once.
		open("/c", "F", 10)
		clock.Advance(2 * time.Minute)
		_, err = ns.Create(ctx, super, "/c", CreateOptions{ClientName: "G", Overwrite: true})
		ok(t, err)
		// A file without blocks is taken over at once.
		_, err = ns.Create(ctx, super, "/d", CreateOptions{ClientName: "H"})
		ok(t, err)
		clock.Advance(2 * time.Minute)
		_, err = ns.Append(ctx, super, "/d", "I", "I-host")
		ok(t, err)
		if n := rec.calls(); n != 2 {
			t.Fatalf("%d recoveries started, want 2", n)
		}
		ok(t, errOf(ns.Complete(ctx, "/a", "B", 1500)))
		ok(t, errOf(ns.Complete(ctx, "/c", "G", 0)))
		ok(t, errOf(ns.Complete(ctx, "/d", "I", 0)))
	})
}

// TestInterruptedRecoveryKeepsStamp: a namenode dies in the middle of a
// block recovery (the block under recovery, the recovery never committed
// nor given up), twice; the next lease recovery finds no datanode and
// closes the file with the recorded length: the block keeps the stamp its
// replicas have, not an interrupted recovery's id, so that their block
// reports find them current.
func TestInterruptedRecoveryKeepsStamp(t *testing.T) {
	ctx := context.Background()
	cfg := Config{
		Placement:      fakePlacement{storages: []string{"s1", "s2", "s3"}},
		LeaseSoftLimit: time.Minute,
		LeaseHardLimit: time.Hour,
	}
	forEachBackend(t, cfg, func(t *testing.T, ns *Namespace) {
		_, err := ns.Create(ctx, super, "/f", CreateOptions{ClientName: "A", Replication: 3, BlockSize: 1 << 20})
		ok(t, err)
		lb, err := ns.AddBlock(ctx, "/f", "A", 0, nil)
		ok(t, err)
		ok(t, ns.Fsync(ctx, "/f", "A", lb.Block.BlockID, 4321))
		lp := &dal.LeasePath{InodeID: lb.Block.InodeID, Holder: "A", Path: "/f"}
		var ids []int64
		for range 2 {
			br, err := ns.startBlockRecovery(ctx, "A", lp, ns.now()+1)
			ok(t, err)
			if br == nil || br.Block.GenerationStamp != lb.Block.GenerationStamp {
				t.Fatalf("recovery %+v, want one of a block with stamp %d", br, lb.Block.GenerationStamp)
			}
			ids = append(ids, br.RecoveryID)
		}
		if b := blockRow(t, ns, lb.Block.BlockID); ids[1] <= ids[0] || b.RecoveryID != ids[1] || b.GenerationStamp != lb.Block.GenerationStamp {
			t.Fatalf("after two interrupted recoveries %v: %+v", ids, b)
		}
		failing := &fakeRecoverer{fn: func(r BlockRecovery) (RecoveredBlock, error) {
			if r.Block.GenerationStamp != lb.Block.GenerationStamp || r.RecoveryID <= ids[1] {
				t.Errorf("the retried recovery: %+v, want the block's stamp %d and an id past %d", r, lb.Block.GenerationStamp, ids[1])
			}
			return RecoveredBlock{}, errors.New("no datanode")
		}}
		closed, err := ns.RecoverLeaseWith(ctx, super, "/f", failing)
		ok(t, err)
		b := blockRow(t, ns, lb.Block.BlockID)
		if !closed || len(failing.got) != 1 || b.State != dal.BlockComplete || b.GenerationStamp != lb.Block.GenerationStamp || b.RecoveryID != 0 || b.NumBytes != 4321 {
			t.Fatalf("closed %v after %d recoveries; block %+v, want complete at 4321 with stamp %d", closed, len(failing.got), b, lb.Block.GenerationStamp)
		}
	})
}
