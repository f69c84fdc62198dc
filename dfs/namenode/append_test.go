package namenode_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/datanode"
	"github.com/kura-dev/kura/dfs/dfstest"
	"github.com/kura-dev/kura/dfs/hdfs"
	"github.com/kura-dev/kura/proto/dfspb"
)

func appendTo(t *testing.T, ctx context.Context, c *client.Client, path string, data []byte) {
	t.Helper()
	w, err := c.Append(ctx, path)
	if err != nil {
		t.Fatalf("append to %s: %v", path, err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatalf("append to %s: write: %v", path, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("append to %s: close: %v", path, err)
	}
}

// checkStamps checks that every replica of path's blocks that one of dns
// holds carries the block's generation stamp and length.
func checkStamps(t *testing.T, ctx context.Context, c *client.Client, dns []*datanode.Datanode, path string) {
	t.Helper()
	locs, err := c.BlockLocations(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range locs.Blocks {
		for _, d := range dns {
			bi, err := d.Store().Stat(b.Block.Id)
			if err != nil {
				continue
			}
			if bi.GenStamp != b.Block.Genstamp || bi.Length != b.Length {
				t.Errorf("%s: blk_%d on %s: stamp %d length %d, the namenode has %d and %d",
					path, b.Block.Id, d.Addr(), bi.GenStamp, bi.Length, b.Block.Genstamp, b.Length)
			}
		}
	}
}

// TestAppend appends to files in place: to a partial last block at an
// offset inside a checksum chunk, across a block boundary, to a full last
// block, to an empty file, with nothing written (the replicas still take
// the new generation stamp), and with a datanode of the append pipeline
// gone (the append goes on on the others under a new stamp).
func TestAppend(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := dfstest.Start(t, dfstest.Options{Datanodes: 3})
	c := cl.Client(t, "root")
	rnd := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return b
	}
	const bs = 1 << 20
	create := func(path string, data []byte) {
		w, err := c.Create(ctx, path, client.CreateOptions{Replication: 3, BlockSize: bs})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}

	want := random(bs + bs/2 + 7)
	create("/f", want)
	for _, n := range []int{1000, 0, bs/2 - 1000 - 7, 10, bs + 3} {
		more := random(n)
		appendTo(t, ctx, c, "/f", more)
		want = append(want, more...)
		if got := dfstest.ReadFile(t, ctx, c, "/f"); !bytes.Equal(got, want) {
			t.Fatalf("after appending %d bytes: read %d bytes, want %d equal ones", n, len(got), len(want))
		}
		checkStamps(t, ctx, c, cl.Datanodes, "/f")
	}
	st, err := c.Stat(ctx, "/f")
	if err != nil || st.Length != int64(len(want)) || st.UnderConstruction {
		t.Fatalf("stat after appends: %+v %v, want length %d, closed", st, err, len(want))
	}

	// An empty file.
	create("/empty", nil)
	appendTo(t, ctx, c, "/empty", []byte("hello"))
	if got := dfstest.ReadFile(t, ctx, c, "/empty"); string(got) != "hello" {
		t.Fatalf("append to an empty file: %q", got)
	}

	// A datanode of the append pipeline is gone.
	want2 := random(bs / 3)
	create("/g", want2)
	cl.Datanodes[1].Close()
	more := random(bs / 2)
	appendTo(t, ctx, c, "/g", more)
	want2 = append(want2, more...)
	if got := dfstest.ReadFile(t, ctx, c, "/g"); !bytes.Equal(got, want2) {
		t.Fatalf("append with a dead datanode: read %d bytes, want %d equal ones", len(got), len(want2))
	}
	locs, err := c.BlockLocations(ctx, "/g")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range locs.Blocks[0].Locations {
		if l.DataAddr == cl.Datanodes[1].Addr() {
			t.Errorf("the dead datanode %s still holds the appended block", l.DataAddr)
		}
	}
	checkStamps(t, ctx, c, cl.Datanodes, "/g")

	// Errors.
	if _, err := c.Append(ctx, "/missing"); !errors.Is(err, hdfs.ErrFileNotFound) {
		t.Errorf("append to /missing: %v", err)
	}
	w, err := c.Append(ctx, "/g")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Append(ctx, "/g"); !errors.Is(err, hdfs.ErrAlreadyBeingCreated) {
		t.Errorf("second append while one is open: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestClientCalls covers the metadata calls beyond reads and writes, a
// view acting as another user, and a create retried after a lost answer.
func TestClientCalls(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := dfstest.Start(t, dfstest.Options{Datanodes: 1})
	c := cl.Client(t, "root")
	if err := c.Mkdirs(ctx, "/home/alice", 0o755, true); err != nil {
		t.Fatal(err)
	}
	if err := c.SetOwner(ctx, "/home/alice", "alice", "staff"); err != nil {
		t.Fatal(err)
	}
	alice := c.As("alice")
	if alice.User() != "alice" || alice.ClientName() != c.ClientName() {
		t.Errorf("view: user %q client %q", alice.User(), alice.ClientName())
	}
	w, err := alice.Create(ctx, "/home/alice/f", client.CreateOptions{Replication: 1})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("abc"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := c.Stat(ctx, "/home/alice/f")
	if err != nil || st.Owner != "alice" || st.Group != "staff" || st.Length != 3 {
		t.Fatalf("file created through the view: %+v %v", st, err)
	}
	if _, err := alice.Create(ctx, "/x", client.CreateOptions{}); !errors.Is(err, hdfs.ErrAccessControl) {
		t.Errorf("alice's create in /: %v", err)
	}

	if err := alice.SetPermission(ctx, "/home/alice/f", 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := time.UnixMilli(1_700_000_000_000)
	if err := alice.SetTimes(ctx, "/home/alice/f", mtime, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.SetReplication(ctx, "/home/alice/f", 2); err != nil || !ok {
		t.Fatalf("set replication: %v %v", ok, err)
	}
	if ok, err := c.SetReplication(ctx, "/home/alice", 2); err != nil || ok {
		t.Fatalf("set replication of a directory: %v %v, want false", ok, err)
	}
	st, err = c.Stat(ctx, "/home/alice/f")
	if err != nil || st.Permission != 0o600 || !st.ModTime.Equal(mtime) || st.Replication != 2 {
		t.Fatalf("after chmod, touch, setrep: %+v %v", st, err)
	}
	if err := c.As("bob").SetPermission(ctx, "/home/alice/f", 0o777); !errors.Is(err, hdfs.ErrAccessControl) {
		t.Errorf("bob's chmod: %v", err)
	}
	cs, err := c.ContentSummary(ctx, "/home")
	if err != nil || cs.DirectoryCount != 2 || cs.FileCount != 1 || cs.Length != 3 || cs.SpaceConsumed != 6 {
		t.Fatalf("content summary: %+v %v", cs, err)
	}
	fs, err := c.FsStats(ctx)
	if err != nil || fs.Files != 1 || fs.Dirs != 3 || fs.Capacity <= 0 || fs.Remaining <= 0 {
		t.Fatalf("fs stats: %+v %v", fs, err)
	}

	// Rename2: exact destination, reasons, atomic overwrite.
	for _, f := range []string{"/r1", "/r2"} {
		w, err := c.Create(ctx, f, client.CreateOptions{Replication: 1})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(f))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Rename2(ctx, "/r1", "/r2", false); !errors.Is(err, hdfs.ErrFileAlreadyExists) {
		t.Errorf("rename2 onto an existing file without overwrite: %v", err)
	}
	if err := c.Rename2(ctx, "/nope", "/r3", false); !errors.Is(err, hdfs.ErrFileNotFound) {
		t.Errorf("rename2 of a missing file: %v", err)
	}
	if err := c.Rename2(ctx, "/r1", "/r2", true); err != nil {
		t.Fatal(err)
	}
	if got := dfstest.ReadFile(t, ctx, c, "/r2"); string(got) != "/r1" {
		t.Errorf("after rename2 with overwrite /r2 holds %q", got)
	}

	// Abort: the file stays open, nothing more is sent; Close reports the
	// abort.
	w, err = c.Create(ctx, "/aborted", client.CreateOptions{Replication: 1})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(make([]byte, 100_000))
	w.Abort()
	if err := w.Close(); err == nil {
		t.Error("Close after Abort succeeded")
	}
	if st, err := c.Stat(ctx, "/aborted"); err != nil || !st.UnderConstruction {
		t.Errorf("aborted file: %+v %v, want it still open", st, err)
	}
	// RecoverLease closes it at once, with what of the unfinished block
	// reached the datanode (block recovery): the first 64 KiB packet was
	// sent before the abort, the rest was not; whether the packet arrived
	// is a race.
	if _, err := c.As("bob").RecoverLease(ctx, "/aborted"); !errors.Is(err, hdfs.ErrAccessControl) {
		t.Errorf("bob's recoverLease: %v", err)
	}
	if closed, err := c.RecoverLease(ctx, "/aborted"); err != nil || !closed {
		t.Fatalf("recoverLease: %v %v", closed, err)
	}
	if st, err := c.Stat(ctx, "/aborted"); err != nil || st.UnderConstruction || (st.Length != 0 && st.Length != datanode.PacketSize) {
		t.Errorf("after recoverLease: %+v %v, want closed with 0 or %d bytes", st, err, datanode.PacketSize)
	} else if got := dfstest.ReadFile(t, ctx, c, "/aborted"); !bytes.Equal(got, make([]byte, st.Length)) {
		t.Errorf("after recoverLease /aborted holds %d bytes, not the %d zeros written", len(got), st.Length)
	}
	if closed, err := c.RecoverLease(ctx, "/aborted"); err != nil || !closed {
		t.Errorf("recoverLease of a closed file: %v %v", closed, err)
	}
	if _, err := c.RecoverLease(ctx, "/nope"); !errors.Is(err, hdfs.ErrFileNotFound) {
		t.Errorf("recoverLease of a missing file: %v", err)
	}
	if _, err := c.RecoverLease(ctx, "/home"); !errors.Is(err, hdfs.ErrFileNotFound) {
		t.Errorf("recoverLease of a directory: %v", err)
	}
	if ok, err := c.Delete(ctx, "/aborted", false); err != nil || !ok {
		t.Errorf("delete the aborted file: %v %v", ok, err)
	}

	// A create sent again (its first answer lost) returns the file the
	// first attempt created; a plain second create is refused.
	cc, err := grpc.NewClient(cl.Namenode.RPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	pc := dfspb.NewClientProtocolClient(cc)
	req := &dfspb.CreateRequest{Path: "/r", Permission: 0o644, ClientName: "retrier", User: "root"}
	first, err := pc.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Create(ctx, req); err == nil {
		t.Error("a second create by the same client succeeded")
	}
	req.Retry = true
	again, err := pc.Create(ctx, req)
	if err != nil || again.Status.FileId != first.Status.FileId {
		t.Fatalf("retried create: %v %v, want file %d", again, err, first.Status.FileId)
	}
	req.ClientName = "other"
	if _, err := pc.Create(ctx, req); err == nil {
		t.Error("another client's retried create succeeded")
	}
}

// TestPipelineRecovery stops datanodes of a block's pipeline after part of
// the block was acknowledged: the writer goes on with the surviving
// replicas under a new generation stamp (nothing rewritten from the
// block's start, nothing lost), and the file reads back whole. With two of
// the three stopped, the first recovery's pipeline still holds the second
// (the namenode has not noticed yet), so the writer recovers twice.
func TestPipelineRecovery(t *testing.T) {
	for _, stop := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d of 3 stopped", stop), func(t *testing.T) { pipelineRecovery(t, stop) })
	}
}

func pipelineRecovery(t *testing.T, stop int) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := dfstest.Start(t, dfstest.Options{Datanodes: 3})
	c := cl.Client(t, "root")
	rnd := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 6<<20+123)
	for i := range data {
		data[i] = byte(rnd.Uint32())
	}
	const bs = 4 << 20
	w, err := c.Create(ctx, "/p", client.CreateOptions{Replication: 3, BlockSize: bs})
	if err != nil {
		t.Fatal(err)
	}
	half := 2<<20 + 77
	if _, err := w.Write(data[:half]); err != nil {
		t.Fatal(err)
	}
	// Wait until the first block's replicas hold what was sent, then stop
	// datanodes.
	var first datanode.Block
	waitFor(t, "the first block's replicas", func() bool {
		for _, d := range cl.Datanodes {
			bis := d.Store().List()
			// Replicas being written show what reached the disk, in 1 MiB
			// steps of the block store's buffer.
			if len(bis) != 1 || bis[0].Length < 1<<20 {
				return false
			}
			first = datanode.Block{ID: bis[0].ID, GenStamp: bis[0].GenStamp}
		}
		return true
	})
	live, stopped := cl.Datanodes[:3-stop], cl.Datanodes[3-stop:]
	for _, d := range stopped {
		d.Close()
	}
	if _, err := w.Write(data[half:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := dfstest.ReadFile(t, ctx, c, "/p"); !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, want the %d written", len(got), len(data))
	}
	locs, err := c.BlockLocations(ctx, "/p")
	if err != nil {
		t.Fatal(err)
	}
	b0 := locs.Blocks[0]
	if b0.Block.Id != first.ID || b0.Block.Genstamp <= first.GenStamp {
		t.Errorf("first block after recovery: blk_%d stamp %d; before: %s (want the same block, re-stamped)",
			b0.Block.Id, b0.Block.Genstamp, first)
	}
	for _, l := range b0.Locations {
		for _, d := range stopped {
			if l.DataAddr == d.Addr() {
				t.Errorf("the stopped datanode %s still holds the recovered block", l.DataAddr)
			}
		}
	}
	if len(b0.Locations) != len(live) {
		t.Errorf("recovered block on %d datanodes, want the %d survivors", len(b0.Locations), len(live))
	}
	checkStamps(t, ctx, c, live, "/p")
}
