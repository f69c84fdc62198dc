package namespace

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/kura-dev/kura/dfs/hdfs"
)

// fileIDConfig is the configuration of the file id tests: three storages,
// blocks of 1 MiB.
func fileIDConfig() Config {
	return Config{Placement: fakePlacement{storages: []string{"s1", "s2", "s3"}}, DefaultBlockSize: 1 << 20}
}

// received reports every target of b as holding a finalized replica.
func received(t *testing.T, ns *Namespace, b *LocatedBlock) {
	t.Helper()
	for _, tg := range b.Targets {
		ok(t, ns.BlockReceived(context.Background(), b.Block.BlockID, tg.StorageID))
	}
}

// wantClosedWith fails unless path is a closed file of length bytes whose
// blocks are want, in order.
func wantClosedWith(t *testing.T, ns *Namespace, path string, length int64, want ...*LocatedBlock) {
	t.Helper()
	fb, err := ns.BlockLocations(context.Background(), super, path)
	ok(t, err)
	if fb.Status.UnderConstruction || fb.Status.Length != length {
		t.Fatalf("%s: under construction %v, length %d; want closed, %d", path, fb.Status.UnderConstruction, fb.Status.Length, length)
	}
	if len(fb.Blocks) != len(want) {
		t.Fatalf("%s: %d blocks, want %d", path, len(fb.Blocks), len(want))
	}
	for i, b := range fb.Blocks {
		if b.Block.BlockID != want[i].Block.BlockID {
			t.Fatalf("%s: block %d is blk_%d, want blk_%d", path, i, b.Block.BlockID, want[i].Block.BlockID)
		}
	}
}

// openWithBlock creates /d/f for writer "w" (replication 2) and gives it
// one block, received by its datanodes; it returns the file by id and the
// block.
func openWithBlock(t *testing.T, ns *Namespace) (FileRef, *LocatedBlock) {
	t.Helper()
	ctx := context.Background()
	ok(t, ns.Mkdirs(ctx, super, "/d", 0o755, true))
	st, err := ns.Create(ctx, super, "/d/f", CreateOptions{Perm: 0o644, ClientName: "w", Replication: 2})
	ok(t, err)
	f := FileRef{Path: "/d/f", ID: st.ID}
	b1, err := ns.AddBlockFile(ctx, f, "w", 0, 0, nil)
	ok(t, err)
	received(t, ns, b1)
	return f, b1
}

// TestWriterByIDAfterRename renames a file while its writer has it open:
// the writer's calls by file id (addBlock, fsync, updatePipeline,
// complete, and their retries) go on with the file at its new path, which
// ends up closed with the writer's blocks; calls by the old path fail, as
// before file ids.
func TestWriterByIDAfterRename(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, fileIDConfig(), func(t *testing.T, ns *Namespace) {
		f, b1 := openWithBlock(t, ns)

		ok(t, ns.Rename2(ctx, super, "/d/f", "/d/g", RenameOptions{}))

		// By path the writer has lost its file.
		wantClass(t, errOf(ns.AddBlockAfter(ctx, "/d/f", "w", b1.Block.BlockID, 1<<20, nil)), hdfs.ErrFileNotFound)
		// By id it has not.
		b2, err := ns.AddBlockFile(ctx, f, "w", b1.Block.BlockID, 1<<20, nil)
		ok(t, err)
		if b2.Offset != 1<<20 {
			t.Fatalf("second block at offset %d, want %d", b2.Offset, 1<<20)
		}
		retried, err := ns.AddBlockFile(ctx, f, "w", b1.Block.BlockID, 1<<20, nil)
		ok(t, err)
		if retried.Block.BlockID != b2.Block.BlockID {
			t.Fatalf("retried addBlock by id: blk_%d, first blk_%d", retried.Block.BlockID, b2.Block.BlockID)
		}
		ok(t, ns.FsyncFile(ctx, f, "w", b2.Block.BlockID, 100))
		if st, err := ns.Stat(ctx, super, "/d/g"); err != nil || st.Length != 1<<20+100 || !st.UnderConstruction {
			t.Fatalf("stat /d/g after fsync: %+v, %v", st, err)
		}
		up, err := ns.UpdatePipelineFile(ctx, f, "w", b2.Block.BlockID, []string{b2.Targets[0].StorageID})
		ok(t, err)
		received(t, ns, up)
		done, err := ns.CompleteFile(ctx, f, "w", b2.Block.BlockID, 300)
		ok(t, err)
		if !done {
			t.Fatal("complete by id: not done")
		}
		wantClosedWith(t, ns, "/d/g", 1<<20+300, b1, b2)

		// A retried complete is recognized by id too, even after another
		// rename.
		ok(t, ns.Rename2(ctx, super, "/d/g", "/d/h", RenameOptions{}))
		done, err = ns.CompleteFile(ctx, f, "w", b2.Block.BlockID, 300)
		ok(t, err)
		if !done {
			t.Fatal("retried complete by id: not done")
		}
		wantClass(t, errOf(ns.CompleteFile(ctx, f, "w", b2.Block.BlockID, 301)), hdfs.ErrLeaseExpired)
	})
}

// TestWriterByIDAfterParentRename renames a directory above an open file
// (and moves it under another one): the writer's calls by id, abandonBlock
// included, still reach the file, which ends up closed at its new path.
func TestWriterByIDAfterParentRename(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, fileIDConfig(), func(t *testing.T, ns *Namespace) {
		ok(t, ns.Mkdirs(ctx, super, "/a/b", 0o755, true))
		ok(t, ns.Mkdirs(ctx, super, "/x", 0o755, true))
		st, err := ns.Create(ctx, super, "/a/b/f", CreateOptions{Perm: 0o644, ClientName: "w", Replication: 2})
		ok(t, err)
		f := FileRef{Path: "/a/b/f", ID: st.ID}
		b1, err := ns.AddBlockFile(ctx, f, "w", 0, 0, nil)
		ok(t, err)
		received(t, ns, b1)

		ok(t, ns.Rename2(ctx, super, "/a", "/x/y", RenameOptions{}))

		b2, err := ns.AddBlockFile(ctx, f, "w", b1.Block.BlockID, 1<<20, nil)
		ok(t, err)
		// Its pipeline failed: abandoned, and another one asked for.
		ok(t, ns.AbandonBlockFile(ctx, f, "w", b2.Block.BlockID))
		b3, err := ns.AddBlockFile(ctx, f, "w", b1.Block.BlockID, 1<<20, []string{"s1"})
		ok(t, err)
		received(t, ns, b3)
		done, err := ns.CompleteFile(ctx, f, "w", b3.Block.BlockID, 7)
		ok(t, err)
		if !done {
			t.Fatal("complete by id: not done")
		}
		wantClosedWith(t, ns, "/x/y/b/f", 1<<20+7, b1, b3)
		if _, err := ns.Stat(ctx, super, "/a/b/f"); err == nil {
			t.Fatal("/a/b/f still exists")
		}
	})
}

// TestWriterByIDAfterDeleteAndRecreate deletes an open file and has
// another client create a file at its path: the first writer's calls by
// id fail with FileNotFoundException naming the path and the id (HDFS's
// "File does not exist: /d/f (inode N) ..."), and the new file is left
// untouched for its own writer.
func TestWriterByIDAfterDeleteAndRecreate(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, fileIDConfig(), func(t *testing.T, ns *Namespace) {
		f, b1 := openWithBlock(t, ns)

		deleted, err := ns.Delete(ctx, super, "/d/f", false)
		ok(t, err)
		if !deleted {
			t.Fatal("delete: not deleted")
		}
		st2, err := ns.Create(ctx, super, "/d/f", CreateOptions{Perm: 0o644, ClientName: "v", Replication: 2})
		ok(t, err)
		if st2.ID == f.ID {
			t.Fatalf("the new file has the old one's id %d", f.ID)
		}

		err = errOf(ns.AddBlockFile(ctx, f, "w", b1.Block.BlockID, 1<<20, nil))
		wantClass(t, err, hdfs.ErrFileNotFound)
		if msg := err.Error(); !strings.Contains(msg, "/d/f") || !strings.Contains(msg, "inode "+strconv.FormatInt(f.ID, 10)) {
			t.Fatalf("addBlock of a deleted file: %q names neither the path nor the inode", msg)
		}
		wantClass(t, errOf(ns.CompleteFile(ctx, f, "w", b1.Block.BlockID, 1<<20)), hdfs.ErrFileNotFound)
		wantClass(t, ns.FsyncFile(ctx, f, "w", b1.Block.BlockID, 10), hdfs.ErrFileNotFound)
		wantClass(t, ns.AbandonBlockFile(ctx, f, "w", b1.Block.BlockID), hdfs.ErrFileNotFound)
		wantClass(t, errOf(ns.UpdatePipelineFile(ctx, f, "w", b1.Block.BlockID, nil)), hdfs.ErrFileNotFound)

		// The new file is v's, as created: no block, open, empty.
		now, err := ns.BlockLocations(ctx, super, "/d/f")
		ok(t, err)
		if now.Status.ID != st2.ID || !now.Status.UnderConstruction || now.Status.ClientName != "v" ||
			now.Status.Length != 0 || len(now.Blocks) != 0 {
			t.Fatalf("the new file changed: %+v, %d blocks", now.Status, len(now.Blocks))
		}
		v := FileRef{Path: "/d/f", ID: st2.ID}
		b, err := ns.AddBlockFile(ctx, v, "v", 0, 0, nil)
		ok(t, err)
		received(t, ns, b)
		done, err := ns.CompleteFile(ctx, v, "v", b.Block.BlockID, 5)
		ok(t, err)
		if !done {
			t.Fatal("complete of the new file: not done")
		}
		wantClosedWith(t, ns, "/d/f", 5, b)
	})
}

// TestWriterByIDErrors: the id of a directory, of another client's file
// and of a closed file are LeaseExpiredExceptions naming the file where
// it is now (HDFS's checkLease), an unknown id a FileNotFoundException;
// and when the id is given, what the path names does not matter (here,
// another file of the same writer).
func TestWriterByIDErrors(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, fileIDConfig(), func(t *testing.T, ns *Namespace) {
		ok(t, ns.Mkdirs(ctx, super, "/d/sub", 0o755, true))
		dir, err := ns.Stat(ctx, super, "/d/sub")
		ok(t, err)
		err = errOf(ns.AddBlockFile(ctx, FileRef{Path: "/d/f", ID: dir.ID}, "w", 0, 0, nil))
		wantClass(t, err, hdfs.ErrLeaseExpired)
		if !strings.Contains(err.Error(), "not a regular file: /d/sub") {
			t.Fatalf("addBlock to a directory's id: %v", err)
		}

		theirs, err := ns.Create(ctx, super, "/d/theirs", CreateOptions{Perm: 0o644, ClientName: "x"})
		ok(t, err)
		ok(t, ns.Rename2(ctx, super, "/d/theirs", "/d/sub/moved", RenameOptions{}))
		err = errOf(ns.AddBlockFile(ctx, FileRef{Path: "/d/theirs", ID: theirs.ID}, "w", 0, 0, nil))
		wantClass(t, err, hdfs.ErrLeaseExpired)
		if !strings.Contains(err.Error(), "is not the lease owner (=x: /d/sub/moved (inode "+strconv.FormatInt(theirs.ID, 10)) {
			t.Fatalf("addBlock to another client's file: %v", err)
		}
		wantClass(t, errOf(ns.CompleteFile(ctx, FileRef{Path: "/d/theirs", ID: theirs.ID}, "w", 0, 0)), hdfs.ErrLeaseExpired)

		mkfile(t, ns, super, "/d/closed", 0o644)
		closed, err := ns.Stat(ctx, super, "/d/closed")
		ok(t, err)
		wantClass(t, errOf(ns.AddBlockFile(ctx, FileRef{Path: "/d/closed", ID: closed.ID}, "w", 0, 0, nil)), hdfs.ErrLeaseExpired)
		wantClass(t, errOf(ns.AddBlockFile(ctx, FileRef{Path: "/d/none", ID: 1 << 40}, "w", 0, 0, nil)), hdfs.ErrFileNotFound)

		// w writes /d/f, which is renamed to /d/g; w then creates a new
		// /d/f. Each id reaches its own file, whatever the path says.
		first, err := ns.Create(ctx, super, "/d/f", CreateOptions{Perm: 0o644, ClientName: "w", Replication: 1})
		ok(t, err)
		ok(t, ns.Rename2(ctx, super, "/d/f", "/d/g", RenameOptions{}))
		second, err := ns.Create(ctx, super, "/d/f", CreateOptions{Perm: 0o644, ClientName: "w", Replication: 1})
		ok(t, err)
		b1, err := ns.AddBlockFile(ctx, FileRef{Path: "/d/f", ID: first.ID}, "w", 0, 0, nil)
		ok(t, err)
		received(t, ns, b1)
		done, err := ns.CompleteFile(ctx, FileRef{Path: "/d/f", ID: first.ID}, "w", b1.Block.BlockID, 9)
		ok(t, err)
		if !done {
			t.Fatal("complete of the first file: not done")
		}
		wantClosedWith(t, ns, "/d/g", 9, b1)
		if st, err := ns.Stat(ctx, super, "/d/f"); err != nil || st.ID != second.ID || !st.UnderConstruction || st.Length != 0 {
			t.Fatalf("the second file: %+v, %v", st, err)
		}
		done, err = ns.CompleteFile(ctx, FileRef{Path: "/d/f", ID: second.ID}, "w", 0, 0)
		ok(t, err)
		if !done {
			t.Fatal("complete of the second file: not done")
		}
		// The other client's file is left for lease recovery: close it so
		// that fsck sees only closed files with their lease paths gone.
		closedNow, err := ns.RecoverLease(ctx, super, "/d/sub/moved")
		ok(t, err)
		if !closedNow {
			t.Fatal("recover lease of /d/sub/moved: still open")
		}
	})
}
