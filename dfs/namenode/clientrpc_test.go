package namenode_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/dfstest"
	"github.com/kura-dev/kura/dfs/hdfs"
	"github.com/kura-dev/kura/dfs/namenode"
	"github.com/kura-dev/kura/proto/dfspb"
)

func TestStatusCode(t *testing.T) {
	for _, c := range []struct {
		class *hdfs.Class
		code  codes.Code
	}{
		{hdfs.ErrFileNotFound, codes.NotFound},
		{hdfs.ErrAccessControl, codes.PermissionDenied},
		{hdfs.ErrFileAlreadyExists, codes.AlreadyExists},
		{hdfs.ErrInvalidPath, codes.InvalidArgument},
		{hdfs.ErrRetriable, codes.Unavailable},
		{hdfs.ErrAlreadyBeingCreated, codes.FailedPrecondition},
		{hdfs.ErrIO, codes.FailedPrecondition},
		{hdfs.ErrRuntime, codes.Internal},
		{nil, codes.Internal},
	} {
		if got := namenode.StatusCode(c.class); got != c.code {
			t.Errorf("StatusCode(%v) = %v, want %v", c.class, got, c.code)
		}
	}
}

// TestClientProtocol runs a namenode with two in-process datanodes, one of
// them closed while the namenode still counts it live: a write recovers by
// abandoning the block and excluding the dead datanode; errors keep their
// Hadoop classes over the wire; a dead namenode address is skipped.
func TestClientProtocol(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := dfstest.Start(t, dfstest.Options{Datanodes: 2})
	n, dns := cl.Namenode, cl.Datanodes

	// The first namenode address is dead: calls move on to the live one.
	c, err := client.New(client.Config{Namenodes: []string{"127.0.0.1:1", n.RPCAddr()}, User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	data := bytes.Repeat([]byte("0123456789abcdef"), (2<<20+100)/16)
	// dns[1] stops; the namenode still lists it live.
	dns[1].Close()
	w, err := c.Create(ctx, "/f", client.CreateOptions{Replication: 2, BlockSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	locs, err := c.BlockLocations(ctx, "/f")
	if err != nil {
		t.Fatal(err)
	}
	if locs.FileLength != int64(len(data)) || len(locs.Blocks) != 3 {
		t.Fatalf("locations: length %d, %d blocks, want %d, 3", locs.FileLength, len(locs.Blocks), len(data))
	}
	for i, b := range locs.Blocks {
		if b.Offset != int64(i)<<20 || len(b.Locations) != 1 || b.Locations[0].DataAddr != dns[0].Addr() {
			t.Errorf("block %d at %d on %v, want only %s", i, b.Offset, b.Locations, dns[0].Addr())
		}
	}
	r, err := c.Open(ctx, "/f")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes (%v), want the %d written", len(got), err, len(data))
	}
	if _, err := r.Seek(-10, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	if tail, err := io.ReadAll(r); err != nil || !bytes.Equal(tail, data[len(data)-10:]) {
		t.Errorf("tail %q %v", tail, err)
	}

	// Errors keep their classes.
	if _, err := c.Open(ctx, "/missing"); !errors.Is(err, hdfs.ErrFileNotFound) {
		t.Errorf("open /missing: %v", err)
	}
	if _, err := c.Create(ctx, "/f", client.CreateOptions{}); !errors.Is(err, hdfs.ErrFileAlreadyExists) {
		t.Errorf("create over /f: %v", err)
	}
	alice, err := client.New(client.Config{Namenodes: []string{n.RPCAddr()}, User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	if err := alice.Mkdirs(ctx, "/a", 0, false); !errors.Is(err, hdfs.ErrAccessControl) {
		t.Errorf("alice's mkdir /a: %v", err)
	}

	// Raw protocol: codes, and AbandonBlock without the lease.
	cc, err := grpc.NewClient(n.RPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	pc := dfspb.NewClientProtocolClient(cc)
	_, err = pc.GetFileInfo(ctx, &dfspb.GetFileInfoRequest{Path: "/missing", User: "root"})
	if st, _ := status.FromError(err); st.Code() != codes.NotFound || st.Message() != "FileNotFoundException: File does not exist: /missing" {
		t.Errorf("GetFileInfo /missing: %v", err)
	}
	_, err = pc.AbandonBlock(ctx, &dfspb.AbandonBlockRequest{Path: "/f", ClientName: "nobody", Block: locs.Blocks[0].Block, User: "root"})
	if st, _ := status.FromError(err); st.Code() != codes.FailedPrecondition {
		t.Errorf("AbandonBlock without the lease: %v", err)
	}
	cs, err := pc.GetContentSummary(ctx, &dfspb.GetContentSummaryRequest{Path: "/", User: "root"})
	if err != nil || cs.FileCount != 1 || cs.Length != int64(len(data)) {
		t.Errorf("content summary %v %v", cs, err)
	}
}

// TestWriterFileID drives the writer's calls over the raw protocol: with
// file_id the namenode finds the file by id, so the calls work after the
// file was renamed and fail with NOT_FOUND (a FileNotFoundException naming
// the inode) once it was deleted, though another file took its path;
// without file_id (an older client) the path is resolved, as before.
func TestWriterFileID(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := dfstest.Start(t, dfstest.Options{Datanodes: 1})
	cc, err := grpc.NewClient(cl.Namenode.RPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	pc := dfspb.NewClientProtocolClient(cc)
	create := func(path, client string) int64 {
		t.Helper()
		resp, err := pc.Create(ctx, &dfspb.CreateRequest{Path: path, Permission: 0o644, CreateParent: true, Replication: 1,
			ClientName: client, User: "root"})
		if err != nil {
			t.Fatalf("create %s: %v", path, err)
		}
		return resp.Status.FileId
	}
	code := func(err error) codes.Code { st, _ := status.FromError(err); return st.Code() }

	id := create("/d/f", "w")
	if _, err := pc.Rename(ctx, &dfspb.RenameRequest{Src: "/d/f", Dst: "/d/g", User: "root", Rename2: true}); err != nil {
		t.Fatal(err)
	}
	// By path, the old path: gone.
	_, err = pc.AddBlock(ctx, &dfspb.AddBlockRequest{Path: "/d/f", ClientName: "w", User: "root"})
	if code(err) != codes.NotFound {
		t.Fatalf("addBlock by the old path: %v, want NOT_FOUND", err)
	}
	// By id: the file, wherever it is.
	ab, err := pc.AddBlock(ctx, &dfspb.AddBlockRequest{Path: "/d/f", FileId: id, ClientName: "w", User: "root",
		Previous: &dfspb.BlockRef{}})
	if err != nil {
		t.Fatalf("addBlock by id after a rename: %v", err)
	}
	if _, err := pc.AbandonBlock(ctx, &dfspb.AbandonBlockRequest{Path: "/d/f", FileId: id, ClientName: "w", Block: ab.Block.Block, User: "root"}); err != nil {
		t.Fatalf("abandonBlock by id: %v", err)
	}
	done, err := pc.Complete(ctx, &dfspb.CompleteRequest{Path: "/d/f", FileId: id, ClientName: "w", User: "root", Last: &dfspb.BlockRef{}})
	if err != nil || !done.Completed {
		t.Fatalf("complete by id after a rename: %v, %v", done, err)
	}
	st, err := pc.GetFileInfo(ctx, &dfspb.GetFileInfoRequest{Path: "/d/g", User: "root"})
	if err != nil || st.Status.FileId != id || st.Status.UnderConstruction {
		t.Fatalf("/d/g after complete: %v, %v", st, err)
	}

	// An older client names the file by its (current) path alone.
	create("/d/old", "o")
	done, err = pc.Complete(ctx, &dfspb.CompleteRequest{Path: "/d/old", ClientName: "o", User: "root"})
	if err != nil || !done.Completed {
		t.Fatalf("complete by path: %v, %v", done, err)
	}

	// Deleted while open, another writer's file at its path: NOT_FOUND.
	gone := create("/d/h", "w")
	if _, err := pc.Delete(ctx, &dfspb.DeleteRequest{Path: "/d/h", User: "root"}); err != nil {
		t.Fatal(err)
	}
	create("/d/h", "v")
	_, err = pc.Complete(ctx, &dfspb.CompleteRequest{Path: "/d/h", FileId: gone, ClientName: "w", User: "root", Last: &dfspb.BlockRef{}})
	if st, _ := status.FromError(err); st.Code() != codes.NotFound ||
		!strings.Contains(st.Message(), "FileNotFoundException: File does not exist: /d/h (inode ") {
		t.Fatalf("complete of a deleted file by id: %v", err)
	}
	_, err = pc.Fsync(ctx, &dfspb.FsyncRequest{Path: "/d/h", FileId: gone, ClientName: "w", User: "root", Block: &dfspb.BlockRef{Id: 1}})
	if code(err) != codes.NotFound {
		t.Fatalf("fsync of a deleted file by id: %v", err)
	}
	_, err = pc.UpdatePipeline(ctx, &dfspb.UpdatePipelineRequest{Path: "/d/h", FileId: gone, ClientName: "w", User: "root", Block: &dfspb.BlockRef{Id: 1}})
	if code(err) != codes.NotFound {
		t.Fatalf("updatePipeline of a deleted file by id: %v", err)
	}
}
