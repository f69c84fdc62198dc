package namespace

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/hdfs"
)

// checkChildren fails unless every directory under dir (dir included) has
// a stat childrenNum, and a childrenNum in its parent's listing, equal to
// its number of listed entries.
func checkChildren(t *testing.T, ns *Namespace, dir string) {
	t.Helper()
	ctx := context.Background()
	st, err := ns.Stat(ctx, super, dir)
	ok(t, err)
	l, err := ns.List(ctx, super, dir, "", 0)
	ok(t, err)
	if st.ChildrenNum != int64(len(l.Entries)) {
		t.Errorf("stat %s: childrenNum %d, but it lists %d entries", dir, st.ChildrenNum, len(l.Entries))
	}
	for _, e := range l.Entries {
		if !e.IsDir {
			if e.ChildrenNum != 0 {
				t.Errorf("list %s: file %s has childrenNum %d", dir, e.Name, e.ChildrenNum)
			}
			continue
		}
		sub := hdfs.Join(dir, e.Name)
		sl, err := ns.List(ctx, super, sub, "", 0)
		ok(t, err)
		if e.ChildrenNum != int64(len(sl.Entries)) {
			t.Errorf("list %s: %s has childrenNum %d, but it lists %d entries", dir, e.Name, e.ChildrenNum, len(sl.Entries))
		}
		checkChildren(t, ns, sub)
	}
}

// childrenNum returns stat's childrenNum of path.
func childrenNum(t *testing.T, ns *Namespace, path string) int64 {
	t.Helper()
	st, err := ns.Stat(context.Background(), super, path)
	ok(t, err)
	return st.ChildrenNum
}

// TestChildrenCount runs every operation that adds or removes entries and
// checks the directories' stored counts (inodes.children) after each step:
// stat and list report them, and Fsck compares them with real counts.
func TestChildrenCount(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, Config{MinReplication: -1, DeleteBatch: 10}, func(t *testing.T, ns *Namespace) {
		step := func(what string) {
			t.Helper()
			checkChildren(t, ns, "/")
			if r := checkFsck(t, ns); !r.OK() {
				t.Fatalf("after %s", what)
			}
		}
		want := func(path string, n int64) {
			t.Helper()
			if got := childrenNum(t, ns, path); got != n {
				t.Errorf("%s: childrenNum %d, want %d", path, got, n)
			}
		}
		step("nothing")
		want("/", 0)

		// mkdirs -p: every new directory counts in its parent.
		ok(t, ns.Mkdirs(ctx, super, "/a/b/c/d", 0o755, true))
		ok(t, ns.Mkdirs(ctx, super, "/a/b/e", 0o755, true))
		ok(t, ns.Mkdirs(ctx, super, "/a/b/e", 0o755, true)) // exists: no change
		ok(t, ns.Mkdirs(ctx, super, "/top", 0o755, false))
		step("mkdirs")
		want("/", 2)
		want("/a", 1)
		want("/a/b", 2)
		want("/a/b/c/d", 0)

		// create, with missing parents, and overwrite (net 0).
		for i := range 5 {
			mkfile(t, ns, super, fmt.Sprintf("/a/b/f%d", i), 0o644)
		}
		mkfile(t, ns, super, "/x/y/z/f", 0o644) // createParent
		mkfile(t, ns, super, "/topfile", 0o644)
		_, err := ns.Create(ctx, super, "/a/b/f0", CreateOptions{ClientName: "w", Overwrite: true})
		ok(t, err)
		_, err = ns.Create(ctx, super, "/a/b/f1", CreateOptions{ClientName: "w"}) // exists: refused
		wantClass(t, err, hdfs.ErrFileAlreadyExists)
		step("create")
		want("/", 4)
		want("/a/b", 7)
		want("/x", 1)
		want("/x/y/z", 1)

		// rename: same directory, across directories, overwrite (same and
		// other directory), a directory, the legacy move into a directory.
		ok(t, ns.Rename2(ctx, super, "/a/b/f1", "/a/b/g1", RenameOptions{}))
		want("/a/b", 7)
		ok(t, ns.Rename2(ctx, super, "/a/b/f2", "/x/f2", RenameOptions{}))
		want("/a/b", 6)
		want("/x", 2)
		ok(t, ns.Rename2(ctx, super, "/a/b/f3", "/a/b/g1", RenameOptions{Overwrite: true}))
		want("/a/b", 5)
		ok(t, ns.Rename2(ctx, super, "/a/b/f4", "/x/f2", RenameOptions{Overwrite: true}))
		want("/a/b", 4)
		want("/x", 2)
		ok(t, ns.Mkdirs(ctx, super, "/x/empty", 0o755, false))
		ok(t, ns.Rename2(ctx, super, "/a/b/c", "/x/empty", RenameOptions{Overwrite: true})) // empty directory replaced
		want("/a/b", 3)
		want("/x", 3)
		want("/x/empty", 1) // c's entry d came along
		moved, err := ns.Rename(ctx, super, "/topfile", "/a")
		ok(t, err)
		if !moved {
			t.Fatal("legacy rename into /a refused")
		}
		want("/", 3)
		want("/a", 2)
		ok(t, ns.Rename2(ctx, super, "/x/y", "/y", RenameOptions{})) // to the root
		want("/", 4)
		want("/x", 2)
		_, err = ns.Rename(ctx, super, "/a/b/g1", "/a/b/g1") // same path: no change
		ok(t, err)
		err = ns.Rename2(ctx, super, "/a/b/g1", "/a/b/f0", RenameOptions{}) // exists: refused
		wantClass(t, err, hdfs.ErrFileAlreadyExists)
		step("rename")

		// delete: a file, an empty directory, a small subtree in one
		// transaction, a large one detached and purged.
		del := func(path string, recursive bool) {
			t.Helper()
			d, err := ns.Delete(ctx, super, path, recursive)
			ok(t, err)
			if !d {
				t.Fatalf("delete %s: not deleted", path)
			}
		}
		del("/a/b/f0", false)
		want("/a/b", 2)
		del("/a/b/e", false)
		want("/a/b", 1)
		wantClass(t, errOf(ns.Delete(ctx, super, "/x", false)), hdfs.ErrPathIsNotEmptyDirectory)
		want("/", 4)
		del("/x", true)
		want("/", 3)
		for i := range 30 {
			mkfile(t, ns, super, fmt.Sprintf("/big/d%d/f%d", i%3, i), 0o644)
		}
		mkfile(t, ns, super, "/a/big/g", 0o644)
		for i := range 12 {
			mkfile(t, ns, super, fmt.Sprintf("/a/big/h/f%d", i), 0o644)
		}
		want("/", 4)
		want("/a", 3)
		del("/big", true) // over DeleteBatch: detached, then purged
		del("/a/big", true)
		want("/", 3)
		want("/a", 2)
		step("delete")

		// Lease recovery closes files; the count does not change.
		_, err = ns.Create(ctx, super, "/a/open", CreateOptions{ClientName: "gone"})
		ok(t, err)
		want("/a", 3)
		if _, err := ns.RecoverLeases(ctx, ns.cfg.Clock().Add(2*ns.cfg.LeaseHardLimit)); err != nil {
			t.Fatal(err)
		}
		want("/a", 3)
		step("lease recovery")
	})
}

// TestChildrenLimit checks that the max-directory-items limit reads the
// stored count: mkdir, create and rename into a full directory are refused,
// and a delete makes room again.
func TestChildrenLimit(t *testing.T) {
	ctx := context.Background()
	l := hdfs.DefaultLimits()
	l.MaxDirectoryItems = 3
	forEachBackend(t, Config{Limits: &l, MinReplication: -1}, func(t *testing.T, ns *Namespace) {
		ok(t, ns.Mkdirs(ctx, super, "/d/sub", 0o755, true))
		mkfile(t, ns, super, "/d/a", 0o644)
		mkfile(t, ns, super, "/d/b", 0o644)
		mkfile(t, ns, super, "/other", 0o644)
		wantClass(t, ns.Mkdirs(ctx, super, "/d/m", 0o755, false), hdfs.ErrMaxDirectoryItemsExceeded)
		wantClass(t, ns.Mkdirs(ctx, super, "/d/m/n", 0o755, true), hdfs.ErrMaxDirectoryItemsExceeded)
		_, err := ns.Create(ctx, super, "/d/c", CreateOptions{ClientName: "c"})
		wantClass(t, err, hdfs.ErrMaxDirectoryItemsExceeded)
		_, err = ns.Create(ctx, super, "/d/x/c", CreateOptions{ClientName: "c", CreateParent: true})
		wantClass(t, err, hdfs.ErrMaxDirectoryItemsExceeded)
		wantClass(t, ns.Rename2(ctx, super, "/other", "/d/other", RenameOptions{}), hdfs.ErrMaxDirectoryItemsExceeded)
		// Overwriting an entry of a full directory adds none.
		_, err = ns.Create(ctx, super, "/d/a", CreateOptions{ClientName: "c", Overwrite: true})
		ok(t, err)
		ok(t, ns.Rename2(ctx, super, "/d/b", "/d/b2", RenameOptions{}))
		// A new directory is empty, whatever its parent's count.
		mkfile(t, ns, super, "/d/sub/f", 0o644)
		if _, err := ns.Delete(ctx, super, "/d/b2", false); err != nil {
			t.Fatal(err)
		}
		ok(t, ns.Rename2(ctx, super, "/other", "/d/other", RenameOptions{}))
		wantClass(t, ns.Mkdirs(ctx, super, "/d/m", 0o755, false), hdfs.ErrMaxDirectoryItemsExceeded)
		if n := childrenNum(t, ns, "/d"); n != 3 {
			t.Errorf("/d: childrenNum %d, want 3", n)
		}
	})
}

// TestFsckChildrenMismatch corrupts a directory's stored count: Fsck
// reports the directory with both numbers.
func TestFsckChildrenMismatch(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ns := newNS(t, openStore(t, b.newURL(t)), Config{MinReplication: -1})
			mkfile(t, ns, super, "/d/e/f", 0o644)
			mkfile(t, ns, super, "/d/g", 0o644)
			st, err := ns.Stat(ctx, super, "/d")
			ok(t, err)
			err = ns.Store().Tx(ctx, func(tx dal.Tx) error {
				in, err := tx.GetInodeByID(ctx, st.ID, dal.LockWrite)
				if err != nil {
					return err
				}
				in.Children = 5
				return tx.UpdateInode(ctx, in)
			})
			ok(t, err)
			r, err := ns.Fsck(ctx)
			ok(t, err)
			if len(r.Problems) != 1 {
				t.Fatalf("problems %q, want one", r.Problems)
			}
			for _, s := range []string{"/d", "5", "2"} {
				if !strings.Contains(r.Problems[0], s) {
					t.Errorf("problem %q does not name %q", r.Problems[0], s)
				}
			}
		})
	}
}
