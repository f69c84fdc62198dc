package client_test

import (
	"context"
	"testing"

	"github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/dfstest"
)

// TestServerDefaults: the namenode's defaults are the ones a file created
// without them gets, and it says where it serves HTTP.
func TestServerDefaults(t *testing.T) {
	cl := dfstest.Start(t, dfstest.Options{Datanodes: 1})
	c := cl.Client(t, "root")
	ctx := context.Background()
	d, err := c.ServerDefaults(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := client.ServerDefaults{BlockSize: 128 << 20, Replication: 3, BytesPerChecksum: 512, WritePacketSize: 64 << 10, ChecksumType: 2,
		HTTPAddr: cl.Namenode.HTTPAddr()}
	if *d != want {
		t.Fatalf("server defaults %+v, want %+v", *d, want)
	}
	w, err := c.Create(ctx, "/f", client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := c.Stat(ctx, "/f")
	if err != nil {
		t.Fatal(err)
	}
	if st.BlockSize != d.BlockSize || int(st.Replication) != d.Replication {
		t.Fatalf("file created with defaults: block size %d, replication %d; server defaults %+v", st.BlockSize, st.Replication, *d)
	}
}
