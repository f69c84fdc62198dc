package dnmanager

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/datanode"
	"github.com/kura-dev/kura/dfs/namespace"
)

func TestReplicationRetried(t *testing.T) {
	forEachBackend(t, testReplicationRetried)
}

// testReplicationRetried: a block on datanodes a, b and c loses c; the
// leader copies it to d, the only other datanode, but d stops just
// before (the namenode still counts it live): the copy fails. The
// replication check does not queue the block again at once (the copy had
// ReplicationRetry to show up), but once that passed and d is back (on a
// new port), it queues it again, and the block is on three datanodes
// again. Without the check the copy, queued once at c's death, is never
// retried.
func testReplicationRetried(t *testing.T, url string) {
	ctx := context.Background()
	const retry = 1500 * time.Millisecond
	c := startCluster(t, url, func(cfg *Config) {
		cfg.ReplicationInterval = hb
		cfg.ReplicationRetry = retry
	})
	m, ns := c.m, c.ns
	a, b, cc := startDatanode(t, t.TempDir(), c.addr), startDatanode(t, t.TempDir(), c.addr), startDatanode(t, t.TempDir(), c.addr)
	dDir := t.TempDir()
	d := startDatanode(t, dDir, c.addr)
	waitFor(t, "four live datanodes", func() bool { return m.LiveCount() == 4 })

	// A block on a, b and c.
	if _, err := ns.Create(ctx, super, "/f", namespace.CreateOptions{ClientName: "w", Replication: 3, Perm: 0o644}); err != nil {
		t.Fatal(err)
	}
	lb, err := ns.AddBlock(ctx, "/f", "w", 0, []string{d.StorageID()})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("replicate"), 20000)
	client := datanode.NewClient("test")
	defer client.Close()
	blk := writeAndComplete(t, ns, client, lb, data)
	finalized := func() []string { return finalizedReplicas(t, ns, lb.Block.InodeID, lb.Block.BlockID) }
	waitFor(t, "three finalized replicas", func() bool { return slices.Equal(finalized(), ids(a, b, cc)) })

	// c dies while this namenode does not lead; d stops too, but is still
	// live when the leader (this namenode, again) copies c's block to it.
	c.leader.Store(false)
	if err := cc.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c's death", func() bool { _, live := m.Addr(cc.StorageID()); return !live })
	dAddr := d.Addr()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// Keep d's old address refusing transfers, so that the restarted d
	// cannot get that port back and let the first copy through.
	holdAddr(t, dAddr)
	if _, live := m.Addr(d.StorageID()); !live {
		t.Fatal("d counted dead at once")
	}
	// A scan that ran while the third replica was still being finalized
	// may have queued a copy already: count from here.
	before := m.Replication().Queued
	t.Logf("copies queued before the leader saw c's death: %d", before)
	c.leader.Store(true)
	waitFor(t, "a copy queued", func() bool { return m.Replication().Queued >= before+1 })
	queuedAt := time.Now()

	// The copy fails (d is gone); the check waits for it, rather than
	// queueing the block every round.
	// (Polled rather than read once after a sleep: on a loaded machine a
	// sleep can overrun the retry time.)
	for time.Since(queuedAt) < retry*2/3 {
		if r := m.Replication(); r.Queued != before+1 {
			t.Fatalf("%v after the copy was queued (retry time %v): %+v, want %d queued", time.Since(queuedAt), retry, r, before+1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := finalized(); slices.Contains(got, d.StorageID()) {
		t.Fatalf("finalized replicas after the failed copy: %v, with d's", got)
	}

	// d comes back on a new port; the block is queued again once the
	// retry time passed, and the copy reaches d.
	d = startDatanode(t, dDir, c.addr)
	// (c's row stays: a dead datanode's replicas are kept in case it
	// comes back.)
	waitFor(t, "the block copied to d", func() bool { return slices.Equal(finalized(), ids(a, b, cc, d)) })
	if took := time.Since(queuedAt); took < retry*9/10 {
		t.Errorf("the block was queued again %v after the first copy, before the retry time %v", took, retry)
	}
	if r := m.Replication(); r.Queued < before+2 {
		t.Errorf("after the retried copy: %+v, want at least %d copies queued", r, before+2)
	}
	var buf bytes.Buffer
	if _, err := client.ReadBlock(ctx, d.Addr(), blk, 0, 0, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("read of the copy on d: %v (%d bytes)", err, buf.Len())
	}
	waitFor(t, "a scan that finds nothing under-replicated", func() bool {
		r := m.Replication()
		return r.Scans > 0 && r.UnderReplicated == 0 && r.Pending == 0
	})
}

// TestReplicationCheckScans: files whose replication is raised from 2 to
// 3 (no datanode died, so only the replication check can notice) get
// their third replica, in rounds that read a few rows and queue two
// copies at most; the check reports them under-replicated until then.
func TestReplicationCheckScans(t *testing.T) {
	ctx := context.Background()
	c := startCluster(t, "sqlite://"+filepath.Join(t.TempDir(), "meta.db"), func(cfg *Config) {
		cfg.ReplicationInterval = 2 * hb
		cfg.ReplicationScanBatch = 3
		cfg.ReplicationsPerRound = 2
	})
	m, ns := c.m, c.ns
	a, b, d := startDatanode(t, t.TempDir(), c.addr), startDatanode(t, t.TempDir(), c.addr), startDatanode(t, t.TempDir(), c.addr)
	waitFor(t, "three live datanodes", func() bool { return m.LiveCount() == 3 })
	client := datanode.NewClient("test")
	defer client.Close()
	const files = 5
	var blocks []*namespace.LocatedBlock
	for i := range files {
		path := "/f" + string(rune('0'+i))
		if _, err := ns.Create(ctx, super, path, namespace.CreateOptions{ClientName: "w", Replication: 2, Perm: 0o644}); err != nil {
			t.Fatal(err)
		}
		lb, err := ns.AddBlock(ctx, path, "w", 0, []string{d.StorageID()})
		if err != nil {
			t.Fatal(err)
		}
		writeAndCompletePath(t, ns, client, path, lb, bytes.Repeat([]byte{byte(i)}, 3000+i))
		blocks = append(blocks, lb)
	}
	replicas := func(lb *namespace.LocatedBlock) []string {
		var out []string
		err := ns.Store().ReadTx(ctx, func(tx dal.Tx) error {
			reps, err := tx.ListReplicas(ctx, lb.Block.InodeID, lb.Block.BlockID)
			for _, r := range reps {
				if r.State == dal.ReplicaFinalized {
					out = append(out, r.StorageID)
				}
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(out)
		return out
	}
	for _, lb := range blocks {
		waitFor(t, "two finalized replicas", func() bool { return slices.Equal(replicas(lb), ids(a, b)) })
	}
	time.Sleep(10 * hb)
	if r := m.Replication(); r.Scans == 0 || r.UnderReplicated != 0 || r.Queued != 0 {
		t.Fatalf("with every file at its replication: %+v", r)
	}

	for i := range files {
		if ok, err := ns.SetReplication(ctx, super, "/f"+string(rune('0'+i)), 3); err != nil || !ok {
			t.Fatalf("setReplication: %v %v", ok, err)
		}
	}
	waitFor(t, "the under-replicated files counted", func() bool { return m.Replication().UnderReplicated > 0 })
	for _, lb := range blocks {
		waitFor(t, "the third replica", func() bool { return slices.Equal(replicas(lb), ids(a, b, d)) })
	}
	waitFor(t, "a scan with nothing under-replicated", func() bool {
		r := m.Replication()
		return r.UnderReplicated == 0 && r.Pending == 0
	})
	if r := m.Replication(); r.Queued != files {
		t.Errorf("copies queued: %+v, want one per file (%d)", r, files)
	}
}

func TestMissingBlocks(t *testing.T) {
	forEachBackend(t, testMissingBlocks)
}

// testMissingBlocks: a block of replication 2 on datanodes a and b, with
// c and d idle. a and b die together: the block has no live replica left,
// so it is counted missing (not under-replicated, and nothing is copied).
// a comes back (same data directory, a new port): it registers and
// reports, the block is no longer missing, and the replication check
// copies it from a to c or d, back to its replication. Before missing
// blocks were tracked, Replication had no count for such a block.
func testMissingBlocks(t *testing.T, url string) {
	ctx := context.Background()
	c := startCluster(t, url, func(cfg *Config) {
		cfg.ReplicationInterval = hb
		cfg.ReplicationRetry = time.Second
	})
	m, ns := c.m, c.ns
	aDir, bDir := t.TempDir(), t.TempDir()
	a, b := startDatanode(t, aDir, c.addr), startDatanode(t, bDir, c.addr)
	waitFor(t, "two live datanodes", func() bool { return m.LiveCount() == 2 })

	if _, err := ns.Create(ctx, super, "/f", namespace.CreateOptions{ClientName: "w", Replication: 2, Perm: 0o644}); err != nil {
		t.Fatal(err)
	}
	lb, err := ns.AddBlock(ctx, "/f", "w", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := storages(lb.Targets); !slices.Equal(got, ids(a, b)) {
		t.Fatalf("pipeline %v, want a and b", got)
	}
	data := bytes.Repeat([]byte("missing"), 30000)
	client := datanode.NewClient("test")
	defer client.Close()
	blk := writeAndComplete(t, ns, client, lb, data)
	finalized := func() []string { return finalizedReplicas(t, ns, lb.Block.InodeID, lb.Block.BlockID) }
	waitFor(t, "two finalized replicas", func() bool { return slices.Equal(finalized(), ids(a, b)) })
	// The idle datanodes start now, so that the block went to a and b.
	cc, d := startDatanode(t, t.TempDir(), c.addr), startDatanode(t, t.TempDir(), c.addr)
	waitFor(t, "four live datanodes", func() bool { return m.LiveCount() == 4 })
	waitFor(t, "a scan with nothing missing or under-replicated", func() bool {
		r := m.Replication()
		return r.Scans > 0 && r.Missing == 0 && r.UnderReplicated == 0
	})

	// a and b die while this namenode does not lead, so that the leader
	// sees both dead at once (one at a time, the second would get the copy).
	c.leader.Store(false)
	aID := a.StorageID()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a's and b's death", func() bool { return m.LiveCount() == 2 })
	c.leader.Store(true)
	waitFor(t, "the block counted missing", func() bool { return m.Replication().Missing == 1 })
	// Missing stays (the rounds read it again and find no live replica),
	// it is not under-replicated, and nothing is copied: there is no source.
	deadline := time.Now().Add(10 * hb)
	for time.Now().Before(deadline) {
		r := m.Replication()
		if r.Missing != 1 || r.UnderReplicated != 0 || r.Queued != 0 {
			t.Fatalf("with every replica on dead datanodes: %+v, want 1 missing, none under-replicated or queued", r)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// a comes back: the block is no longer missing and gets its second
	// replica on c or d.
	a = startDatanode(t, aDir, c.addr)
	if a.StorageID() != aID {
		t.Fatalf("a came back as %s, was %s", a.StorageID(), aID)
	}
	waitFor(t, "the block no longer missing", func() bool { return m.Replication().Missing == 0 })
	waitFor(t, "the block copied to c or d", func() bool {
		got := finalized()
		return slices.Contains(got, aID) && (slices.Contains(got, cc.StorageID()) || slices.Contains(got, d.StorageID()))
	})
	var buf bytes.Buffer
	for _, dn := range []*datanode.Datanode{cc, d} {
		if slices.Contains(finalized(), dn.StorageID()) {
			if _, err := client.ReadBlock(ctx, dn.Addr(), blk, 0, 0, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
				t.Fatalf("read of the copy: %v (%d bytes)", err, buf.Len())
			}
		}
	}
	if r := m.Replication(); r.Queued < 1 || r.Missing != 0 {
		t.Errorf("after a came back: %+v, want a copy queued and nothing missing", r)
	}
}

// holdAddr listens on addr until the test ends, closing every connection
// at once: a datanode started later cannot take the port, and transfers
// to it fail fast.
func holdAddr(t *testing.T, addr string) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Logf("cannot hold %s (%v): a datanode may get the port back", addr, err)
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
	})
}

// writeAndComplete writes data as block lb of /f (writer "w") through
// lb's pipeline with client, then completes /f; it returns the block.
func writeAndComplete(t *testing.T, ns *namespace.Namespace, client *datanode.Client, lb *namespace.LocatedBlock, data []byte) datanode.Block {
	t.Helper()
	return writeAndCompletePath(t, ns, client, "/f", lb, data)
}

// writeAndCompletePath is writeAndComplete for the file at path.
func writeAndCompletePath(t *testing.T, ns *namespace.Namespace, client *datanode.Client, path string, lb *namespace.LocatedBlock, data []byte) datanode.Block {
	t.Helper()
	ctx := context.Background()
	var pipeline []string
	for _, tg := range lb.Targets {
		pipeline = append(pipeline, tg.Addr)
	}
	blk := datanode.Block{ID: uint64(lb.Block.BlockID), GenStamp: uint64(lb.Block.GenerationStamp)}
	if _, err := client.WriteBlock(ctx, pipeline, blk, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Complete", func() bool {
		done, err := ns.Complete(ctx, path, "w", int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		return done
	})
	return blk
}

// TestReplacedStorage: the only replica of a block is on datanode a,
// whose data directory is then wiped: a comes back at the same address
// with a new storage id. The old storage is gone, so the block is
// missing, and the leader counts it. Before, the registration forgot the
// old storage without walking its replicas, and nothing counted the
// block until the next change of leader.
func TestReplacedStorage(t *testing.T) {
	forEachBackend(t, testReplacedStorage)
}

func testReplacedStorage(t *testing.T, url string) {
	ctx := context.Background()
	c := startCluster(t, url, func(cfg *Config) { cfg.ReplicationInterval = hb })
	m, ns := c.m, c.ns
	a, b := startDatanode(t, t.TempDir(), c.addr), startDatanode(t, t.TempDir(), c.addr)
	waitFor(t, "two live datanodes", func() bool { return m.LiveCount() == 2 })
	if _, err := ns.Create(ctx, super, "/f", namespace.CreateOptions{ClientName: "w", Replication: 1, Perm: 0o644}); err != nil {
		t.Fatal(err)
	}
	lb, err := ns.AddBlock(ctx, "/f", "w", 0, []string{b.StorageID()})
	if err != nil {
		t.Fatal(err)
	}
	client := datanode.NewClient("test")
	defer client.Close()
	writeAndComplete(t, ns, client, lb, bytes.Repeat([]byte("replaced"), 10000))
	waitFor(t, "the replica on a", func() bool {
		return slices.Equal(finalizedReplicas(t, ns, lb.Block.InodeID, lb.Block.BlockID), ids(a))
	})
	// The term's sweep (which would walk the old storage too, as one
	// never registered) has ended: only the registration can tell now.
	waitFor(t, "the sweep ended, a scan with nothing missing", func() bool {
		r := m.Replication()
		return r.Swept && r.Scans > 0 && r.Missing == 0
	})

	oldID, addr := a.StorageID(), a.Addr()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a2 := startDatanodeAt(t, t.TempDir(), addr, c.addr) // a wiped directory: a new storage id
	if a2.StorageID() == oldID {
		t.Fatalf("the wiped datanode kept storage id %s", oldID)
	}
	waitFor(t, "a's new storage registered", func() bool { _, live := m.Addr(a2.StorageID()); return live })
	if _, live := m.Addr(oldID); live {
		t.Fatal("the replaced storage still counts as live")
	}
	waitFor(t, "the block counted missing", func() bool { return m.Replication().Missing == 1 })
}
