package client_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/dfstest"
	"github.com/kura-dev/kura/dfs/hdfs"
)

// write writes p with w, failing the test on an error.
func write(t *testing.T, w *client.Writer, p []byte) {
	t.Helper()
	if _, err := w.Write(p); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// TestWriterFollowsRenames renames a file (then a directory above it)
// while a writer has it open, against a namenode and three datanodes: the
// writer addresses the file by its id, so it goes on writing (new blocks,
// hflush) and closes the file where it is now, which reads back whole.
// Then a file is deleted while open and another client creates one at its
// path: the first writer's close fails with a FileNotFoundException and
// the new file keeps its own bytes.
func TestWriterFollowsRenames(t *testing.T) {
	cl := dfstest.Start(t, dfstest.Options{Datanodes: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := client.New(client.Config{Namenodes: []string{cl.Namenode.RPCAddr()}, User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 3<<20+12345)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}

	w, err := c.Create(ctx, "/a/f", client.CreateOptions{CreateParent: true, Replication: 3, BlockSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, data[:1<<20+100]) // a block and a bit
	if err := w.Hflush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename2(ctx, "/a/f", "/a/g", false); err != nil {
		t.Fatal(err)
	}
	write(t, w, data[1<<20+100:2<<20+500]) // across a block boundary: AddBlock
	if err := w.Hflush(ctx); err != nil {
		t.Fatalf("hflush after a rename: %v", err)
	}
	if st, err := c.Stat(ctx, "/a/g"); err != nil || st.Length != 2<<20+500 || !st.UnderConstruction {
		t.Fatalf("stat /a/g after hflush: %+v, %v", st, err)
	}
	if err := c.Mkdirs(ctx, "/z", 0, false); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename2(ctx, "/a", "/z/a2", false); err != nil {
		t.Fatal(err)
	}
	write(t, w, data[2<<20+500:])
	if err := w.Close(); err != nil {
		t.Fatalf("close after renames: %v", err)
	}
	st, err := c.Stat(ctx, "/z/a2/g")
	if err != nil || st.Length != int64(len(data)) || st.UnderConstruction || st.FileID != w.Status().FileID {
		t.Fatalf("stat /z/a2/g: %+v, %v", st, err)
	}
	if got := dfstest.ReadFile(t, ctx, c, "/z/a2/g"); !bytes.Equal(got, data) {
		t.Fatalf("read /z/a2/g: %d bytes differing from the %d written", len(got), len(data))
	}

	// Deleted while open, and another file created at the path.
	w2, err := c.Create(ctx, "/d/h", client.CreateOptions{CreateParent: true, Replication: 3, BlockSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	write(t, w2, data[:1000])
	if err := w2.Hflush(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.Delete(ctx, "/d/h", false); !ok || err != nil {
		t.Fatalf("delete /d/h: %v, %v", ok, err)
	}
	other, err := client.New(client.Config{Namenodes: []string{cl.Namenode.RPCAddr()}, User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	w3, err := other.Create(ctx, "/d/h", client.CreateOptions{Replication: 3, BlockSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	write(t, w3, []byte("the new file"))
	if err := w3.Close(); err != nil {
		t.Fatal(err)
	}
	write(t, w2, data[1000:2000]) // still the old block's pipeline
	if err := w2.Close(); !errors.Is(err, hdfs.ErrFileNotFound) {
		t.Fatalf("close of a deleted file: %v, want a FileNotFoundException", err)
	}
	if got := dfstest.ReadFile(t, ctx, c, "/d/h"); string(got) != "the new file" {
		t.Fatalf("read /d/h: %q", got)
	}
}
