package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	dfsclient "github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/datanode"
	"github.com/kura-dev/kura/dfs/hdfs"
)

// writeFile writes data to path with c in pieces of odd sizes.
func writeFile(t *testing.T, ctx context.Context, c *dfsclient.Client, path string, data []byte) {
	t.Helper()
	w, err := c.Create(ctx, path, dfsclient.CreateOptions{CreateParent: true, Replication: 3, BlockSize: 1 << 20})
	if err != nil {
		t.Fatalf("create %s: %v", path, err)
	}
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 100_003)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close %s: %v", path, err)
	}
}

// checkFile reads path back with c and compares it with want.
func checkFile(t *testing.T, ctx context.Context, c *dfsclient.Client, path string, want []byte) {
	t.Helper()
	r, err := c.Open(ctx, path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %s: %d bytes differing from the %d written", path, len(got), len(want))
	}
	// ReadAt across a block boundary.
	if len(want) > 1<<20+10 {
		p := make([]byte, 20)
		if _, err := r.ReadAt(p, 1<<20-10); err != nil || !bytes.Equal(p, want[1<<20-10:1<<20+10]) {
			t.Fatalf("ReadAt %s across a block boundary: %v", path, err)
		}
	}
}

// findBlockFile returns the path of block id's data file under dir.
func findBlockFile(t *testing.T, dir string, id uint64) string {
	t.Helper()
	want := "blk_" + strconv.FormatUint(id, 10)
	var found string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == want {
			found = p
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no %s under %s", want, dir)
	}
	return found
}

// TestClientReadWrite writes and reads files through dfs/client against a
// namenode on SQLite and three datanode processes: replication, a second
// writer refused, corrupt replicas skipped, a datanode killed with SIGKILL
// (reads go on from the other replicas; a write recovers its pipeline).
func TestClientReadWrite(t *testing.T) {
	tmp := t.TempDir()
	rpc := freeAddr(t)
	nn := launch(t, "nn", "dfs", "namenode", "--meta", "sqlite://"+filepath.Join(tmp, "meta.db"), "--http", "127.0.0.1:0",
		"--rpc", rpc, "--datanode-dead-after", "1s", "--maintenance-interval", "200ms")
	httpAddr := waitLine(t, nn, nnReadyRE)[1]
	dir := func(i int) string { return filepath.Join(tmp, fmt.Sprintf("dn%d", i)) }
	var dns []*datanodeProc
	for i := range 3 {
		dns = append(dns, startDatanodeProc(t, fmt.Sprintf("dn%d", i), dir(i), rpc))
	}
	waitStatus(t, httpAddr, "3 live datanodes", func(st nnStatus) bool {
		if st.Live != 3 {
			return false
		}
		for _, d := range st.Datanodes {
			if d.Remaining <= 0 {
				return false
			}
		}
		return true
	})
	byAddr := map[string]int{}
	for i, d := range dns {
		byAddr[d.addr] = i
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := dfsclient.New(dfsclient.Config{Namenodes: []string{rpc}, User: "root", LeaseRenewInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// A file of 5.5 blocks, replication 3.
	rng := rand.New(rand.NewPCG(1, 2))
	data1 := make([]byte, 5<<20+1<<19)
	for i := range data1 {
		data1[i] = byte(rng.Uint32())
	}
	writeFile(t, ctx, c, "/data/f1", data1)
	checkFile(t, ctx, c, "/data/f1", data1)
	st, err := c.Stat(ctx, "/data/f1")
	if err != nil || st.Length != int64(len(data1)) || st.UnderConstruction || st.BlockSize != 1<<20 || st.Replication != 3 {
		t.Fatalf("stat /data/f1: %+v %v", st, err)
	}
	locs, err := c.BlockLocations(ctx, "/data/f1")
	if err != nil {
		t.Fatal(err)
	}
	if locs.FileLength != int64(len(data1)) || len(locs.Blocks) != 6 {
		t.Fatalf("locations: length %d, %d blocks", locs.FileLength, len(locs.Blocks))
	}
	for i, b := range locs.Blocks {
		seen := map[string]bool{}
		for _, l := range b.Locations {
			if _, ok := byAddr[l.DataAddr]; !ok {
				t.Errorf("block %d on unknown datanode %s", i, l.DataAddr)
			}
			seen[l.DataAddr] = true
		}
		if len(seen) != 3 || b.Offset != int64(i)<<20 {
			t.Errorf("block %d: offset %d, %d distinct replicas (%v)", i, b.Offset, len(seen), b.Locations)
		}
	}

	// Metadata wrappers and errors.
	if _, err := c.Stat(ctx, "/data/missing"); !errors.Is(err, hdfs.ErrFileNotFound) {
		t.Errorf("stat of a missing file: %v, want a FileNotFoundException", err)
	}
	if err := c.Mkdirs(ctx, "/data/sub", 0, false); err != nil {
		t.Fatal(err)
	}
	if ls, err := c.List(ctx, "/data"); err != nil || len(ls) != 2 || ls[0].Name != "f1" || ls[1].Name != "sub" || !ls[1].IsDir {
		t.Errorf("list /data: %v %v", ls, err)
	}
	if ok, err := c.Rename(ctx, "/data/sub", "/data/sub2"); !ok || err != nil {
		t.Errorf("rename: %v %v", ok, err)
	}
	if ok, err := c.Delete(ctx, "/data/sub2", false); !ok || err != nil {
		t.Errorf("delete: %v %v", ok, err)
	}

	// A second writer on a file being written.
	c2, err := dfsclient.New(dfsclient.Config{Namenodes: []string{rpc}, User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	w, err := c.Create(ctx, "/data/busy", dfsclient.CreateOptions{BlockSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Create(ctx, "/data/busy", dfsclient.CreateOptions{Overwrite: true}); !errors.Is(err, hdfs.ErrAlreadyBeingCreated) {
		t.Errorf("second writer: %v, want an AlreadyBeingCreatedException", err)
	}
	if _, err := w.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkFile(t, ctx, c2, "/data/busy", []byte("hello"))

	// Corrupt block 1's replica on dn0 and block 2's on dn1: the datanode
	// reports the mismatch, the reader goes on at another replica.
	for i, blk := range []int{1, 2} {
		b := locs.Blocks[blk].Block
		p := findBlockFile(t, dir(i), b.Id)
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		one := make([]byte, 1)
		f.ReadAt(one, 1000)
		one[0] ^= 0xff
		if _, err := f.WriteAt(one, 1000); err != nil {
			t.Fatal(err)
		}
		f.Close()
		_, err = datanode.ReadBlock(ctx, dns[i].addr, datanode.Block{ID: b.Id, GenStamp: b.Genstamp}, 0, 0, io.Discard)
		if !errors.Is(err, datanode.ErrCorrupt) {
			t.Fatalf("reading the corrupted replica of block %d on dn%d: %v, want ErrCorrupt", blk, i, err)
		}
	}
	for range 3 { // replicas are tried in random order
		checkFile(t, ctx, c, "/data/f1", data1)
	}

	// dn2 killed: reads go on from the other replicas (at first the
	// namenode still lists dn2: the reader skips the dead connection).
	dns[2].cmd.Process.Signal(syscall.SIGKILL)
	<-dns[2].done
	checkFile(t, ctx, c, "/data/f1", data1)

	// A write while dn2 is dead (and maybe still chosen: the pipeline
	// recovery excludes it).
	data2 := data1[:2<<20+12345]
	writeFile(t, ctx, c, "/data/f2", data2)
	checkFile(t, ctx, c, "/data/f2", data2)
	waitStatus(t, httpAddr, "dn2 dead", func(st nnStatus) bool { return st.Live == 2 && st.Dead == 1 })
	checkFile(t, ctx, c, "/data/f1", data1)
	locs2, err := c.BlockLocations(ctx, "/data/f2")
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range locs2.Blocks {
		for _, l := range b.Locations {
			if l.DataAddr == dns[2].addr {
				t.Errorf("block %d of f2 listed on the dead dn2", i)
			}
		}
		if len(b.Locations) == 0 {
			t.Errorf("block %d of f2 has no live replica", i)
		}
	}
	data3 := data1[:1<<20+7]
	writeFile(t, ctx, c, "/data/f3", data3)
	checkFile(t, ctx, c, "/data/f3", data3)
}
