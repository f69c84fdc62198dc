package namenode_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/datanode"
	"github.com/kura-dev/kura/dfs/dfstest"
	"github.com/kura-dev/kura/dfs/dnmanager"
	"github.com/kura-dev/kura/dfs/namenode"
	"github.com/kura-dev/kura/dfs/namespace"
)

// The files of these tests: 1 MiB blocks, two full ones and a partial
// third, whose length is not a multiple of the 512-byte checksum chunk.
const (
	recBlockSize = 1 << 20
	recFlushed   = 2*recBlockSize + 300_001
)

// randomBytes returns n reproducible random bytes.
func randomBytes(n int, seed uint64) []byte {
	rnd := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rnd.Uint32())
	}
	return b
}

// newWriterClient returns a client of the namenode at addr whose Close is
// the caller's (the writer that vanishes).
func newWriterClient(t *testing.T, addr string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Namenodes: []string{addr}, User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// writeFlushed creates path with wc, writes data in odd pieces and
// hflushes; a reader (rc) then sees exactly data, the file still open.
func writeFlushed(t *testing.T, ctx context.Context, wc, rc *client.Client, path string, data []byte) *client.Writer {
	t.Helper()
	w, err := wc.Create(ctx, path, client.CreateOptions{Replication: 3, BlockSize: recBlockSize})
	if err != nil {
		t.Fatal(err)
	}
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 70_001)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
		rest = rest[n:]
	}
	if err := w.Hflush(ctx); err != nil {
		t.Fatalf("hflush %s: %v", path, err)
	}
	st, err := rc.Stat(ctx, path)
	if err != nil || !st.UnderConstruction || st.Length != int64(len(data)) {
		t.Fatalf("after hflush: %+v %v, want open with length %d", st, err, len(data))
	}
	if got := dfstest.ReadFile(t, ctx, rc, path); !bytes.Equal(got, data) {
		t.Fatalf("a reader after hflush read %d bytes, want the %d flushed", len(got), len(data))
	}
	return w
}

// checkClosed checks that path is closed and holds exactly want.
func checkClosed(t *testing.T, ctx context.Context, c *client.Client, path string, want []byte) {
	t.Helper()
	st, err := c.Stat(ctx, path)
	if err != nil || st.UnderConstruction || st.Length != int64(len(want)) {
		t.Fatalf("after recovery: %+v %v, want closed with length %d", st, err, len(want))
	}
	if got := dfstest.ReadFile(t, ctx, c, path); !bytes.Equal(got, want) {
		t.Fatalf("after recovery %s holds %d bytes, want the %d flushed", path, len(got), len(want))
	}
}

// TestHflushThenRecoverLease: a writer hflushes a file ending in a partial
// block, writes a few bytes more (less than a packet, so they never leave
// it) and vanishes without closing, its streams to the datanodes still
// open; another client's recoverLease runs block recovery (the datanodes
// stop the old pipeline) and closes the file with exactly the flushed
// bytes, every replica of the last block finalized at that length under
// the recovery's new stamp. The old writer's Close then fails, and changes
// nothing.
func TestHflushThenRecoverLease(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := dfstest.Start(t, dfstest.Options{Datanodes: 3})
	c := cl.Client(t, "root")
	wc := newWriterClient(t, cl.Namenode.RPCAddr())
	data := randomBytes(recFlushed, 1)
	w := writeFlushed(t, ctx, wc, c, "/f", data)
	if _, err := w.Write(randomBytes(1000, 9)); err != nil {
		t.Fatal(err)
	}
	before, err := c.BlockLocations(ctx, "/f")
	if err != nil {
		t.Fatal(err)
	}
	lastBefore := before.Blocks[len(before.Blocks)-1]

	closed, err := c.RecoverLease(ctx, "/f")
	if err != nil || !closed {
		t.Fatalf("recoverLease: %v %v", closed, err)
	}
	checkClosed(t, ctx, c, "/f", data)
	checkStamps(t, ctx, c, cl.Datanodes, "/f")
	after, err := c.BlockLocations(ctx, "/f")
	if err != nil {
		t.Fatal(err)
	}
	last := after.Blocks[len(after.Blocks)-1]
	if len(after.Blocks) != 3 || last.Block.Id != lastBefore.Block.Id || last.Block.Genstamp <= lastBefore.Block.Genstamp ||
		last.Length != recFlushed-2*recBlockSize || len(last.Locations) != 3 {
		t.Errorf("last block after recovery: %d blocks, blk_%d stamp %d length %d on %d datanodes; before blk_%d stamp %d",
			len(after.Blocks), last.Block.Id, last.Block.Genstamp, last.Length, len(last.Locations), lastBefore.Block.Id, lastBefore.Block.Genstamp)
	}
	for _, d := range cl.Datanodes {
		bi, err := d.Store().Stat(last.Block.Id)
		if err != nil || bi.State.String() != "finalized" {
			t.Errorf("replica on %s: %+v %v, want finalized", d.Addr(), bi, err)
		}
	}

	// The fenced-off writer can neither finish nor add anything.
	if err := w.Close(); err == nil {
		t.Error("the old writer's Close succeeded after its lease was recovered")
	}
	checkClosed(t, ctx, c, "/f", data)
	if closed, err := c.RecoverLease(ctx, "/f"); err != nil || !closed {
		t.Errorf("recoverLease of the closed file: %v %v", closed, err)
	}
}

// TestRecoverLeaseDatanodeStopped: a datanode of the pipeline stops after
// the first hflush; the next write and hflush recover the pipeline onto
// the other two; then a second one stops and the writer vanishes (its
// connections closed): recovery goes on with the one replica left, and
// the file holds every flushed byte.
func TestRecoverLeaseDatanodeStopped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := dfstest.Start(t, dfstest.Options{Datanodes: 3})
	c := cl.Client(t, "root")
	wc := newWriterClient(t, cl.Namenode.RPCAddr())
	data := randomBytes(recFlushed+5000, 2)
	w := writeFlushed(t, ctx, wc, c, "/g", data[:recFlushed])
	cl.Datanodes[0].Close()
	if _, err := w.Write(data[recFlushed:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Hflush(ctx); err != nil {
		t.Fatalf("hflush after a datanode stopped: %v", err)
	}
	if got := dfstest.ReadFile(t, ctx, c, "/g"); !bytes.Equal(got, data) {
		t.Fatalf("after the second hflush a reader read %d bytes, want %d", len(got), len(data))
	}
	cl.Datanodes[1].Close()
	wc.Close() // the writer vanishes: its streams end, its lease is no longer renewed

	if closed, err := c.RecoverLease(ctx, "/g"); err != nil || !closed {
		t.Fatalf("recoverLease: %v %v", closed, err)
	}
	checkClosed(t, ctx, c, "/g", data)
	locs, err := c.BlockLocations(ctx, "/g")
	if err != nil {
		t.Fatal(err)
	}
	last := locs.Blocks[len(locs.Blocks)-1]
	if len(last.Locations) != 1 || last.Locations[0].DataAddr != cl.Datanodes[2].Addr() {
		t.Errorf("the recovered block's replicas: %v, want only the one on %s", last.Locations, cl.Datanodes[2].Addr())
	}
	checkStamps(t, ctx, c, cl.Datanodes[2:], "/g")
}

// TestRecoverLeaseNoDatanode: every datanode is gone when the lease is
// recovered, so block recovery cannot run: the file is closed anyway, with
// the lengths the namenode recorded: the hflushed length of the last
// block for a file hflushed, nothing of it for a file never hflushed (its
// unfinished last block dropped, the finished ones kept).
func TestRecoverLeaseNoDatanode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := dfstest.Start(t, dfstest.Options{Datanodes: 3})
	c := cl.Client(t, "root")
	wc := newWriterClient(t, cl.Namenode.RPCAddr())
	data := randomBytes(recFlushed, 3)
	writeFlushed(t, ctx, wc, c, "/flushed", data)
	w, err := wc.Create(ctx, "/unflushed", client.CreateOptions{Replication: 3, BlockSize: recBlockSize})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	for _, d := range cl.Datanodes {
		d.Close()
	}
	wc.Close()
	for path, want := range map[string]int64{"/flushed": recFlushed, "/unflushed": 2 * recBlockSize} {
		if closed, err := c.RecoverLease(ctx, path); err != nil || !closed {
			t.Fatalf("recoverLease %s: %v %v", path, closed, err)
		}
		st, err := c.Stat(ctx, path)
		if err != nil || st.UnderConstruction || st.Length != want {
			t.Errorf("%s after recovery without datanodes: %+v %v, want closed with length %d", path, st, err, want)
		}
	}
}

// TestHardLimitRecovery: the namenode's housekeeping recovers the lease of
// a writer that vanished after hflush once the (short) hard limit passed,
// with block recovery: the file is closed with exactly the flushed bytes.
func TestHardLimitRecovery(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := namenode.Start(ctx, namenode.Config{
		MetaURL: "sqlite://" + filepath.Join(t.TempDir(), "meta.db"), HTTPAddr: "127.0.0.1:0", RPCAddr: "127.0.0.1:0",
		Datanodes:           dnmanager.Config{HeartbeatInterval: 50 * time.Millisecond, DeadIntervals: 200},
		MaintenanceInterval: 100 * time.Millisecond,
		Namespace:           namespace.Config{LeaseSoftLimit: 200 * time.Millisecond, LeaseHardLimit: time.Second},
		Logger:              quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	for range 3 {
		d, err := datanode.Start(ctx, datanode.Config{DataDir: t.TempDir(), DataAddr: "127.0.0.1:0", Namenodes: []string{n.RPCAddr()},
			HeartbeatInterval: 50 * time.Millisecond, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
	}
	waitFor(t, "three live datanodes", func() bool { return n.Manager().LiveCount() == 3 })
	c := newWriterClient(t, n.RPCAddr())
	wc, err := client.New(client.Config{Namenodes: []string{n.RPCAddr()}, User: "root", LeaseRenewInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wc.Close() })
	data := randomBytes(recFlushed, 4)
	writeFlushed(t, ctx, wc, c, "/h", data)
	wc.Close()
	waitFor(t, "the housekeeping's lease recovery", func() bool {
		st, err := c.Stat(ctx, "/h")
		return err == nil && !st.UnderConstruction
	})
	checkClosed(t, ctx, c, "/h", data)
}
