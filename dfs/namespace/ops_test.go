package namespace

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/hdfs"
)

func TestMkdirs(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, Config{}, func(t *testing.T, ns *Namespace) {
		ok(t, ns.Mkdirs(ctx, super, "/a/b/c", 0o750, true))
		for path, want := range map[string]hdfs.FsPermission{"/a": 0o750 | 0o300, "/a/b": 0o750 | 0o300, "/a/b/c": 0o750} {
			st, err := ns.Stat(ctx, super, path)
			ok(t, err)
			if !st.IsDir || st.Permission != want || st.Owner != "root" || st.Group != "supergroup" || st.ATime != 0 {
				t.Errorf("%s: %+v, want a directory with permission %o owned by root:supergroup", path, st, want)
			}
		}
		// An existing directory is fine, with or without parents.
		ok(t, ns.Mkdirs(ctx, super, "/a/b", 0o755, false))
		ok(t, ns.Mkdirs(ctx, super, "/a/b/", 0o755, true))
		// Without createParents the parent must exist.
		wantClass(t, ns.Mkdirs(ctx, super, "/x/y", 0o755, false), hdfs.ErrFileNotFound)
		ok(t, ns.Mkdirs(ctx, super, "/a/d", 0o755, false))
		// A file in the way.
		mkfile(t, ns, super, "/a/f", 0o644)
		wantClass(t, ns.Mkdirs(ctx, super, "/a/f", 0o755, true), hdfs.ErrFileAlreadyExists)
		wantClass(t, ns.Mkdirs(ctx, super, "/a/f/g", 0o755, true), hdfs.ErrParentNotDirectory)
		// Bad paths and names.
		for _, p := range []string{"/a/../b", "a/b", "/a//b", "/a/./b", "/a:b", ""} {
			wantClass(t, ns.Mkdirs(ctx, super, p, 0o755, true), hdfs.ErrInvalidPath)
		}
		wantClass(t, ns.Mkdirs(ctx, super, "/a/"+strings.Repeat("n", 256), 0o755, true), hdfs.ErrPathComponentTooLong)
		wantClass(t, ns.Mkdirs(ctx, super, "/a/.snapshot", 0o755, true), hdfs.ErrHadoopIllegalArgument)
		wantClass(t, ns.Mkdirs(ctx, super, "/.reserved", 0o755, true), hdfs.ErrInvalidPath)
		// The root exists.
		ok(t, ns.Mkdirs(ctx, super, "/", 0o755, true))
		// Group is inherited from the parent.
		ok(t, ns.SetOwner(ctx, super, "/a", "", "staff"))
		ok(t, ns.Mkdirs(ctx, super, "/a/g", 0o755, true))
		st, err := ns.Stat(ctx, super, "/a/g")
		ok(t, err)
		if st.Group != "staff" {
			t.Errorf("group %q, want staff (the parent's)", st.Group)
		}
	})
}

func TestLimits(t *testing.T) {
	ctx := context.Background()
	l := hdfs.Limits{MaxComponentLength: 8, MaxDirectoryItems: 3, MaxPathLength: 20, MaxPathDepth: 3}
	forEachBackend(t, Config{Limits: &l, MinReplication: -1}, func(t *testing.T, ns *Namespace) {
		ok(t, ns.Mkdirs(ctx, super, "/d", 0o755, true))
		wantClass(t, ns.Mkdirs(ctx, super, "/d/123456789", 0o755, true), hdfs.ErrPathComponentTooLong)
		for _, p := range []string{"/d/a/b/c", "/d/aaaaaaaa/bbbbbbbbb"} { // too deep, too long
			err := ns.Mkdirs(ctx, super, p, 0o755, true)
			wantClass(t, err, hdfs.ErrIO)
			if !strings.Contains(err.Error(), "Pathname too long") {
				t.Errorf("mkdirs %s: %v", p, err)
			}
		}
		for _, n := range []string{"a", "b", "c"} {
			mkfile(t, ns, super, "/d/"+n, 0o644)
		}
		_, err := ns.Create(ctx, super, "/d/e", CreateOptions{ClientName: "c"})
		wantClass(t, err, hdfs.ErrMaxDirectoryItemsExceeded)
		wantClass(t, ns.Rename2(ctx, super, "/d/a", "/d/aaaaaaaaa", RenameOptions{}), hdfs.ErrPathComponentTooLong)
		ok(t, ns.Rename2(ctx, super, "/d/a", "/d/x", RenameOptions{})) // same directory: no new item
	})
}

func TestCreateStatList(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, Config{MinReplication: -1}, func(t *testing.T, ns *Namespace) {
		ok(t, ns.Mkdirs(ctx, super, "/d", 0o755, true))
		st, err := ns.Create(ctx, super, "/d/f", CreateOptions{Perm: 0o640, ClientName: "c1", ClientMachine: "h1", Replication: 2, BlockSize: 4 << 20})
		ok(t, err)
		if st.IsDir || !st.UnderConstruction || st.ClientName != "c1" || st.Replication != 2 || st.BlockSize != 4<<20 || st.Permission != 0o640 {
			t.Errorf("create: %+v", st)
		}
		got, err := ns.Stat(ctx, super, "/d/f")
		ok(t, err)
		if got.ID != st.ID || got.Name != "f" || got.Owner != "root" {
			t.Errorf("stat: %+v, want %+v", got, st)
		}
		j := got.WebHDFS("")
		if j.Type != hdfs.TypeFile || j.Permission != "640" || j.FileID != st.ID || j.Replication != 2 {
			t.Errorf("WebHDFS: %+v", j)
		}
		// Errors.
		_, err = ns.Stat(ctx, super, "/d/nope")
		wantClass(t, err, hdfs.ErrFileNotFound)
		_, err = ns.Create(ctx, super, "/d", CreateOptions{ClientName: "c1"})
		wantClass(t, err, hdfs.ErrFileAlreadyExists)
		_, err = ns.Create(ctx, super, "/", CreateOptions{ClientName: "c1"})
		wantClass(t, err, hdfs.ErrFileAlreadyExists)
		_, err = ns.Create(ctx, super, "/e/f", CreateOptions{ClientName: "c1"})
		wantClass(t, err, hdfs.ErrFileNotFound)
		_, err = ns.Create(ctx, super, "/d/f/g", CreateOptions{ClientName: "c1", CreateParent: true})
		wantClass(t, err, hdfs.ErrParentNotDirectory)
		_, err = ns.Create(ctx, super, "/d/g", CreateOptions{ClientName: "c1", Replication: 600})
		wantClass(t, err, hdfs.ErrIO)
		_, err = ns.Create(ctx, super, "/d/g", CreateOptions{ClientName: "c1", BlockSize: 512})
		wantClass(t, err, hdfs.ErrIO)
		_, err = ns.Create(ctx, super, "/d/g", CreateOptions{})
		wantClass(t, err, hdfs.ErrIllegalArgument)
		done, err := ns.Complete(ctx, "/d/f", "c1", 0)
		ok(t, err)
		if !done {
			t.Fatal("complete of an empty file: not done")
		}
		_, err = ns.Create(ctx, super, "/d/f", CreateOptions{ClientName: "c2"})
		wantClass(t, err, hdfs.ErrFileAlreadyExists)
		// Overwrite: a new inode.
		st2, err := ns.Create(ctx, super, "/d/f", CreateOptions{ClientName: "c2", Overwrite: true})
		ok(t, err)
		if st2.ID == st.ID {
			t.Error("overwrite kept the inode id")
		}
		ok(t, errOf(ns.Complete(ctx, "/d/f", "c2", 0)))
		// createParent.
		_, err = ns.Create(ctx, super, "/p/q/r", CreateOptions{Perm: 0o644, ClientName: "c1", CreateParent: true})
		ok(t, err)
		pst, err := ns.Stat(ctx, super, "/p/q")
		ok(t, err)
		if !pst.IsDir || pst.Permission != 0o744 {
			t.Errorf("implicit parent: %+v, want a directory 744", pst)
		}
		ok(t, errOf(ns.Complete(ctx, "/p/q/r", "c1", 0)))

		// Paged listing.
		for i := range 25 {
			mkfile(t, ns, super, "/l/"+string(rune('a'+i)), 0o644)
		}
		ok(t, ns.Mkdirs(ctx, super, "/l/zz/sub", 0o755, true))
		var all []string
		after := ""
		for pages := 0; ; pages++ {
			l, err := ns.List(ctx, super, "/l", after, 10)
			ok(t, err)
			for _, e := range l.Entries {
				all = append(all, e.Name)
			}
			if !l.HasMore {
				if pages != 2 {
					t.Errorf("%d pages, want 3", pages+1)
				}
				break
			}
			after = l.Entries[len(l.Entries)-1].Name
		}
		if len(all) != 26 || !slices.IsSorted(all) || all[25] != "zz" {
			t.Errorf("listing: %v", all)
		}
		st, err = ns.Stat(ctx, super, "/l")
		ok(t, err)
		if st.ChildrenNum != 26 {
			t.Errorf("childrenNum %d, want 26", st.ChildrenNum)
		}
		l, err := ns.List(ctx, super, "/l", "z", 0)
		ok(t, err)
		if len(l.Entries) != 1 || l.Entries[0].ChildrenNum != 1 || !l.Entries[0].IsDir {
			t.Errorf("list after z: %+v", l.Entries)
		}
		// Listing a file gives the file.
		l, err = ns.List(ctx, super, "/l/a", "", 0)
		ok(t, err)
		if len(l.Entries) != 1 || l.Entries[0].Name != "a" {
			t.Errorf("list of a file: %+v", l.Entries)
		}
		_, err = ns.List(ctx, super, "/nope", "", 0)
		wantClass(t, err, hdfs.ErrFileNotFound)
	})
}

func errOf[T any](_ T, err error) error { return err }

func TestRename(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, Config{MinReplication: -1}, func(t *testing.T, ns *Namespace) {
		ok(t, ns.Mkdirs(ctx, super, "/a/b/c", 0o755, true))
		ok(t, ns.Mkdirs(ctx, super, "/x/y", 0o755, true))
		mkfile(t, ns, super, "/a/f", 0o644)
		mkfile(t, ns, super, "/x/g", 0o644)

		// rename2: a file to a new name in another directory.
		ok(t, ns.Rename2(ctx, super, "/a/f", "/x/f2", RenameOptions{}))
		if _, err := ns.Stat(ctx, super, "/x/f2"); err != nil {
			t.Fatal(err)
		}
		wantClass(t, errOf(ns.Stat(ctx, super, "/a/f")), hdfs.ErrFileNotFound)
		// Existing destination.
		wantClass(t, ns.Rename2(ctx, super, "/x/f2", "/x/g", RenameOptions{}), hdfs.ErrFileAlreadyExists)
		gst, _ := ns.Stat(ctx, super, "/x/f2")
		ok(t, ns.Rename2(ctx, super, "/x/f2", "/x/g", RenameOptions{Overwrite: true}))
		st, err := ns.Stat(ctx, super, "/x/g")
		ok(t, err)
		if st.ID != gst.ID {
			t.Error("overwrite did not move the source")
		}
		// File over directory and back: IOException.
		err = ns.Rename2(ctx, super, "/x/g", "/x/y", RenameOptions{Overwrite: true})
		wantClass(t, err, hdfs.ErrIO)
		if !strings.Contains(err.Error(), "must both be directories") {
			t.Errorf("message: %v", err)
		}
		// Directory over a non-empty directory.
		ok(t, ns.Mkdirs(ctx, super, "/e", 0o755, true))
		err = ns.Rename2(ctx, super, "/e", "/a", RenameOptions{Overwrite: true})
		wantClass(t, err, hdfs.ErrIO)
		// Directory over an empty directory.
		ok(t, ns.Rename2(ctx, super, "/a/b", "/e", RenameOptions{Overwrite: true}))
		if got := names(t, ns, "/e"); !slices.Equal(got, []string{"c"}) {
			t.Errorf("/e holds %v", got)
		}
		// Under itself.
		err = ns.Rename2(ctx, super, "/e", "/e/c/e", RenameOptions{})
		wantClass(t, err, hdfs.ErrIO)
		if !strings.Contains(err.Error(), "under source") {
			t.Errorf("message: %v", err)
		}
		// Missing source, missing destination parent, file as parent.
		wantClass(t, ns.Rename2(ctx, super, "/nope", "/n2", RenameOptions{}), hdfs.ErrFileNotFound)
		wantClass(t, ns.Rename2(ctx, super, "/e", "/nope/e", RenameOptions{}), hdfs.ErrFileNotFound)
		wantClass(t, ns.Rename2(ctx, super, "/e", "/x/g/e", RenameOptions{}), hdfs.ErrParentNotDirectory)
		// Same path, root.
		wantClass(t, ns.Rename2(ctx, super, "/e", "/e", RenameOptions{}), hdfs.ErrFileAlreadyExists)
		wantClass(t, ns.Rename2(ctx, super, "/", "/r", RenameOptions{}), hdfs.ErrIO)
		wantClass(t, ns.Rename2(ctx, super, "/e", "/", RenameOptions{Overwrite: true}), hdfs.ErrIO)

		// Old rename: into an existing directory; false instead of errors.
		moved, err := ns.Rename(ctx, super, "/x/g", "/e")
		ok(t, err)
		if !moved {
			t.Fatal("rename into a directory: false")
		}
		if _, err := ns.Stat(ctx, super, "/e/g"); err != nil {
			t.Fatal(err)
		}
		mkfile(t, ns, super, "/x/g", 0o644)
		for _, c := range [][2]string{{"/nope", "/z"}, {"/x/g", "/e/g"}, {"/x/g", "/nope/z"}, {"/", "/z"}} {
			moved, err := ns.Rename(ctx, super, c[0], c[1])
			if err != nil || moved {
				t.Errorf("rename %s %s: %v %v, want false", c[0], c[1], moved, err)
			}
		}
		if moved, err := ns.Rename(ctx, super, "/x/g", "/x/g"); err != nil || !moved {
			t.Errorf("rename onto itself: %v %v, want true", moved, err)
		}
		_, err = ns.Rename(ctx, super, "/e", "/e/c")
		wantClass(t, err, hdfs.ErrIO)
		// Parent modification times change.
		before, _ := ns.Stat(ctx, super, "/x")
		ok(t, ns.Rename2(ctx, super, "/x/y", "/x/y2", RenameOptions{}))
		after, _ := ns.Stat(ctx, super, "/x")
		if after.MTime < before.MTime {
			t.Error("parent mtime went back")
		}
	})
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, Config{MinReplication: -1, DeleteBatch: 10}, func(t *testing.T, ns *Namespace) {
		mkfile(t, ns, super, "/d/f", 0o644)
		ok(t, ns.Mkdirs(ctx, super, "/d/e", 0o755, true))
		wantClass(t, errOf(ns.Delete(ctx, super, "/d", false)), hdfs.ErrPathIsNotEmptyDirectory)
		for _, p := range []string{"/d/f", "/d/e"} {
			del, err := ns.Delete(ctx, super, p, false)
			if err != nil || !del {
				t.Fatalf("delete %s: %v %v", p, del, err)
			}
		}
		if del, err := ns.Delete(ctx, super, "/d/f", false); err != nil || del {
			t.Errorf("delete of a missing file: %v %v, want false", del, err)
		}
		if del, err := ns.Delete(ctx, super, "/", true); err != nil || del {
			t.Errorf("delete of the root: %v %v, want false", del, err)
		}
		// A small subtree: one transaction.
		for i := range 3 {
			mkfile(t, ns, super, "/s/a/"+string(rune('a'+i)), 0o644)
		}
		if del, err := ns.Delete(ctx, super, "/s", true); err != nil || !del {
			t.Fatalf("recursive delete: %v %v", del, err)
		}
		// A large subtree (over DeleteBatch): detached, then purged in batches.
		for i := range 30 {
			mkfile(t, ns, super, "/big/"+string(rune('a'+i%3))+"/"+string(rune('a'+i)), 0o644)
		}
		_, err := ns.Create(ctx, super, "/big/open", CreateOptions{ClientName: "w"})
		ok(t, err)
		if del, err := ns.Delete(ctx, super, "/big", true); err != nil || !del {
			t.Fatalf("large recursive delete: %v %v", del, err)
		}
		wantClass(t, errOf(ns.Stat(ctx, super, "/big")), hdfs.ErrFileNotFound)
		r := checkFsck(t, ns)
		if r.PendingDeletes != 0 || r.Files != 0 || r.LeasePaths != 0 {
			t.Errorf("after delete: %+v", r)
		}
		// A crash after detaching: the subtree waits for PurgeDetached.
		for i := range 15 {
			mkfile(t, ns, super, "/crash/"+string(rune('a'+i)), 0o644)
		}
		st, err := ns.Stat(ctx, super, "/crash")
		ok(t, err)
		// (Delete's detaching transaction: the root loses the entry too.)
		err = ns.Store().Tx(ctx, func(tx dal.Tx) error {
			root, err := tx.GetInodeByID(ctx, dal.RootID, dal.LockWrite)
			if err != nil {
				return err
			}
			in, err := tx.GetInodeByID(ctx, st.ID, dal.LockWrite)
			if err != nil {
				return err
			}
			in.ParentID, in.Name = DetachedParentID, "x"
			if err := tx.UpdateInode(ctx, in); err != nil {
				return err
			}
			root.Children--
			return tx.UpdateInode(ctx, root)
		})
		ok(t, err)
		r = checkFsck(t, ns)
		if r.PendingDeletes != 16 {
			t.Errorf("pending deletes %d, want 16", r.PendingDeletes)
		}
		n, err := ns.PurgeDetached(ctx)
		ok(t, err)
		if n != 1 {
			t.Errorf("purged %d subtrees, want 1", n)
		}
		if r := checkFsck(t, ns); r.PendingDeletes != 0 || r.Dirs != 2 { // "/" and "/d"
			t.Errorf("after purge: %+v", r)
		}
	})
}

func TestAttributes(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, Config{MinReplication: -1}, func(t *testing.T, ns *Namespace) {
		mkfile(t, ns, super, "/d/f", 0o644)
		ok(t, ns.SetPermission(ctx, super, "/d/f", 0o600))
		ok(t, ns.SetOwner(ctx, super, "/d/f", "alice", "staff"))
		ok(t, ns.SetTimes(ctx, super, "/d/f", 1000, -1))
		st, err := ns.Stat(ctx, super, "/d/f")
		ok(t, err)
		if st.Permission != 0o600 || st.Owner != "alice" || st.Group != "staff" || st.MTime != 1000 || st.ATime == 1000 {
			t.Errorf("attributes: %+v", st)
		}
		ok(t, ns.SetTimes(ctx, super, "/d/f", -1, 2000))
		st, _ = ns.Stat(ctx, super, "/d/f")
		if st.MTime != 1000 || st.ATime != 2000 {
			t.Errorf("times: %+v", st)
		}
		wantClass(t, ns.SetOwner(ctx, super, "/d/f", "", ""), hdfs.ErrHadoopIllegalArgument)
		wantClass(t, ns.SetPermission(ctx, super, "/nope", 0o600), hdfs.ErrFileNotFound)
		// Replication.
		set, err := ns.SetReplication(ctx, super, "/d/f", 5)
		ok(t, err)
		if !set {
			t.Error("set replication of a file: false")
		}
		if set, err := ns.SetReplication(ctx, super, "/d", 5); err != nil || set {
			t.Errorf("set replication of a directory: %v %v, want false", set, err)
		}
		wantClass(t, errOf(ns.SetReplication(ctx, super, "/d/f", 0)), hdfs.ErrIO)
		wantClass(t, errOf(ns.SetReplication(ctx, super, "/d/f", 513)), hdfs.ErrIO)
		st, _ = ns.Stat(ctx, super, "/d/f")
		if st.Replication != 5 {
			t.Errorf("replication %d, want 5", st.Replication)
		}
	})
}

func TestBlocksAndSummary(t *testing.T) {
	ctx := context.Background()
	const mb = 1 << 20
	cfg := Config{Placement: fakePlacement{storages: []string{"s1", "s2", "s3"}}, DefaultBlockSize: 2 * mb}
	forEachBackend(t, cfg, func(t *testing.T, ns *Namespace) {
		ok(t, ns.Mkdirs(ctx, super, "/d", 0o755, true))
		_, err := ns.Create(ctx, super, "/d/f", CreateOptions{Perm: 0o644, ClientName: "w1", Replication: 2})
		ok(t, err)
		b1, err := ns.AddBlock(ctx, "/d/f", "w1", 0, nil)
		ok(t, err)
		if len(b1.Targets) != 2 || b1.Offset != 0 || b1.Block.Index != 0 {
			t.Errorf("first block: %+v", b1)
		}
		b2, err := ns.AddBlock(ctx, "/d/f", "w1", 2*mb, []string{"s1"})
		ok(t, err)
		if b2.Offset != 2*mb || b2.Block.Index != 1 || b2.Block.BlockID == b1.Block.BlockID || b2.Targets[0].StorageID != "s2" {
			t.Errorf("second block: %+v", b2)
		}
		// Only the writer may add blocks or complete.
		wantClass(t, errOf(ns.AddBlock(ctx, "/d/f", "w2", 0, nil)), hdfs.ErrLeaseExpired)
		wantClass(t, errOf(ns.Complete(ctx, "/d/f", "w2", 0)), hdfs.ErrLeaseExpired)
		wantClass(t, errOf(ns.AddBlock(ctx, "/d/nope", "w1", 0, nil)), hdfs.ErrFileNotFound)
		// Not complete until every block has a finalized replica.
		done, err := ns.Complete(ctx, "/d/f", "w1", 1000)
		ok(t, err)
		if done {
			t.Fatal("complete without replicas: done")
		}
		ok(t, ns.BlockReceived(ctx, b1.Block.BlockID, "s1"))
		ok(t, ns.BlockReceived(ctx, b2.Block.BlockID, "s2"))
		if err := ns.BlockReceived(ctx, 42, "s1"); !errors.Is(err, ErrUnknownBlock) {
			t.Errorf("unknown block: %v", err)
		}
		done, err = ns.Complete(ctx, "/d/f", "w1", 1000)
		ok(t, err)
		if !done {
			t.Fatal("complete with replicas: not done")
		}
		st, err := ns.Stat(ctx, super, "/d/f")
		ok(t, err)
		if st.Length != 2*mb+1000 || st.UnderConstruction {
			t.Errorf("after complete: %+v", st)
		}
		wantClass(t, errOf(ns.Complete(ctx, "/d/f", "w1", 0)), hdfs.ErrLeaseExpired)
		fb, err := ns.BlockLocations(ctx, super, "/d/f")
		ok(t, err)
		if len(fb.Blocks) != 2 || fb.Blocks[1].Offset != 2*mb || fb.Blocks[1].Block.NumBytes != 1000 || len(fb.Blocks[0].Targets) != 2 {
			t.Errorf("locations: %+v", fb.Blocks)
		}
		// Append reopens the partial last block under a new stamp.
		ar, err := ns.Append(ctx, super, "/d/f", "w3", "h3")
		ok(t, err)
		if ar.LastBlock == nil || ar.LastBlock.Block.BlockID != b2.Block.BlockID ||
			ar.LastBlock.Block.GenerationStamp <= b2.Block.GenerationStamp || ar.LastBlock.Offset != 2*mb {
			t.Errorf("append: %+v", ar.LastBlock)
		}
		ok(t, ns.BlockReceived(ctx, b2.Block.BlockID, "s2"))
		done, err = ns.Complete(ctx, "/d/f", "w3", 2000)
		ok(t, err)
		if !done {
			t.Fatal("complete after append: not done")
		}
		wantClass(t, errOf(ns.Append(ctx, super, "/d", "w3", "h3")), hdfs.ErrFileNotFound)
		wantClass(t, errOf(ns.Append(ctx, super, "/d/nope", "w3", "h3")), hdfs.ErrFileNotFound)

		// Summary and stats.
		mkfileRepl(t, ns, "/d/e/g", 3)
		cs, err := ns.ContentSummary(ctx, super, "/d")
		ok(t, err)
		want := ContentSummary{DirectoryCount: 2, FileCount: 2, Length: 2*mb + 2000, SpaceConsumed: 2 * (2*mb + 2000), Quota: -1, SpaceQuota: -1}
		if *cs != want {
			t.Errorf("summary %+v, want %+v", *cs, want)
		}
		cs, err = ns.ContentSummary(ctx, super, "/d/f")
		ok(t, err)
		if cs.FileCount != 1 || cs.DirectoryCount != 0 {
			t.Errorf("summary of a file: %+v", cs)
		}
		fs, err := ns.FsStats(ctx)
		ok(t, err)
		if fs.Files != 2 || fs.Dirs != 3 || fs.Blocks != 2 || fs.Length != 2*mb+2000 {
			t.Errorf("fs stats: %+v", fs)
		}
	})
}

// mkfileRepl creates an empty file with replication r (no blocks, so it
// completes at once).
func mkfileRepl(t *testing.T, ns *Namespace, path string, r int16) {
	t.Helper()
	ctx := context.Background()
	_, err := ns.Create(ctx, super, path, CreateOptions{Perm: 0o644, ClientName: "mk", Replication: r, CreateParent: true})
	ok(t, err)
	done, err := ns.Complete(ctx, path, "mk", 0)
	ok(t, err)
	if !done {
		t.Fatal("not done")
	}
}
