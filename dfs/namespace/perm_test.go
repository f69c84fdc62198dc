package namespace

import (
	"context"
	"strings"
	"testing"

	"github.com/kura-dev/kura/dfs/hdfs"
)

func TestPermissions(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, Config{MinReplication: -1}, func(t *testing.T, ns *Namespace) {
		// /home/alice: alice's, 755, group staff.
		ok(t, ns.Mkdirs(ctx, super, "/home/alice", 0o755, true))
		ok(t, ns.SetOwner(ctx, super, "/home/alice", "alice", "staff"))
		mkfile(t, ns, alice, "/home/alice/f", 0o640)

		// Owner may write; others may not (other class r-x).
		_, err := ns.Create(ctx, bob, "/home/alice/b", CreateOptions{ClientName: "b"})
		wantClass(t, err, hdfs.ErrAccessControl)
		if !strings.Contains(err.Error(), `user=bob, access=WRITE, inode="/home/alice":alice:staff:drwxr-xr-x`) {
			t.Errorf("message: %v", err)
		}
		wantClass(t, ns.Mkdirs(ctx, carol, "/home/alice/c", 0o755, true), hdfs.ErrAccessControl)
		// The superuser and the supergroup pass.
		mkfile(t, ns, super, "/home/alice/s", 0o644)
		mkfile(t, ns, admin, "/home/alice/a", 0o644)

		// Group class: staff may read f (640), guests may not.
		if _, err := ns.BlockLocations(ctx, bob, "/home/alice/f"); err != nil {
			t.Errorf("group read: %v", err)
		}
		wantClass(t, errOf(ns.BlockLocations(ctx, carol, "/home/alice/f")), hdfs.ErrAccessControl)
		wantClass(t, errOf(ns.Append(ctx, bob, "/home/alice/f", "b", "h")), hdfs.ErrAccessControl)
		// Group write on the directory lets staff create.
		ok(t, ns.SetPermission(ctx, alice, "/home/alice", 0o775))
		mkfile(t, ns, bob, "/home/alice/b", 0o644)
		wantClass(t, errOf(ns.Create(ctx, carol, "/home/alice/c", CreateOptions{ClientName: "c"})), hdfs.ErrAccessControl)

		// Traverse: a 700 directory hides its contents from everyone else.
		ok(t, ns.Mkdirs(ctx, alice, "/home/alice/private", 0o700, false))
		mkfile(t, ns, alice, "/home/alice/private/p", 0o644)
		for _, u := range []hdfs.User{bob, carol} {
			wantClass(t, errOf(ns.Stat(ctx, u, "/home/alice/private/p")), hdfs.ErrAccessControl)
		}
		if _, err := ns.Stat(ctx, bob, "/home/alice/private"); err != nil {
			t.Errorf("stat of the directory itself needs no access: %v", err)
		}
		// Listing needs READ_EXECUTE on the directory.
		wantClass(t, errOf(ns.List(ctx, bob, "/home/alice/private", "", 0)), hdfs.ErrAccessControl)
		if _, err := ns.List(ctx, bob, "/home/alice", "", 0); err != nil {
			t.Errorf("list: %v", err)
		}
		// Content summary needs READ_EXECUTE on every directory below.
		wantClass(t, errOf(ns.ContentSummary(ctx, bob, "/home/alice")), hdfs.ErrAccessControl)
		if _, err := ns.ContentSummary(ctx, alice, "/home/alice"); err != nil {
			t.Errorf("summary by the owner: %v", err)
		}
		// Recursive delete needs ALL on every non-empty directory below.
		ok(t, ns.Mkdirs(ctx, super, "/shared", 0o777, false))
		ok(t, ns.Mkdirs(ctx, alice, "/shared/tree/locked", 0o755, true))
		mkfile(t, ns, alice, "/shared/tree/locked/x", 0o644)
		ok(t, ns.SetPermission(ctx, alice, "/shared/tree", 0o777))
		wantClass(t, errOf(ns.Delete(ctx, bob, "/shared/tree", true)), hdfs.ErrAccessControl)
		if del, err := ns.Delete(ctx, alice, "/shared/tree", true); err != nil || !del {
			t.Errorf("owner's recursive delete: %v %v", del, err)
		}

		// setPermission and setOwner.
		wantClass(t, ns.SetPermission(ctx, bob, "/home/alice/f", 0o777), hdfs.ErrAccessControl)
		wantClass(t, ns.SetOwner(ctx, alice, "/home/alice/f", "bob", ""), hdfs.ErrAccessControl)
		ok(t, ns.SetOwner(ctx, alice, "/home/alice/f", "alice", "staff"))
		wantClass(t, ns.SetOwner(ctx, alice, "/home/alice/f", "", "guests"), hdfs.ErrAccessControl)
		wantClass(t, ns.SetOwner(ctx, bob, "/home/alice/f", "", "staff"), hdfs.ErrAccessControl)
		ok(t, ns.SetOwner(ctx, super, "/home/alice/f", "carol", "guests"))
		ok(t, ns.SetOwner(ctx, admin, "/home/alice/f", "alice", "staff"))
		// setTimes and setReplication need WRITE on the file.
		wantClass(t, ns.SetTimes(ctx, bob, "/home/alice/f", 1, 1), hdfs.ErrAccessControl)
		wantClass(t, errOf(ns.SetReplication(ctx, carol, "/home/alice/f", 2)), hdfs.ErrAccessControl)
		ok(t, ns.SetTimes(ctx, alice, "/home/alice/f", 1, 1))

		// Sticky bit: /tmp 1777.
		ok(t, ns.Mkdirs(ctx, super, "/tmp", 0o1777, false))
		st, err := ns.Stat(ctx, super, "/tmp")
		ok(t, err)
		if st.Permission != 0o1777 || st.WebHDFS("").Permission != "1777" {
			t.Errorf("/tmp permission %o", st.Permission)
		}
		mkfile(t, ns, alice, "/tmp/a", 0o666)
		mkfile(t, ns, bob, "/tmp/b", 0o666)
		_, err = ns.Delete(ctx, bob, "/tmp/a", false)
		wantClass(t, err, hdfs.ErrAccessControl)
		if !strings.Contains(err.Error(), "sticky bit") {
			t.Errorf("message: %v", err)
		}
		wantClass(t, ns.Rename2(ctx, bob, "/tmp/a", "/tmp/a2", RenameOptions{}), hdfs.ErrAccessControl)
		if del, err := ns.Delete(ctx, bob, "/tmp/b", false); err != nil || !del {
			t.Errorf("delete of one's own file in /tmp: %v %v", del, err)
		}
		if del, err := ns.Delete(ctx, super, "/tmp/a", false); err != nil || !del {
			t.Errorf("superuser delete in /tmp: %v %v", del, err)
		}

		// Rename needs WRITE on both parents.
		wantClass(t, ns.Rename2(ctx, bob, "/home/alice/b", "/b", RenameOptions{}), hdfs.ErrAccessControl)
		ok(t, ns.Rename2(ctx, bob, "/home/alice/b", "/shared/b", RenameOptions{}))
	})
}

func TestPermissionsDisabled(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, Config{MinReplication: -1, PermissionsDisabled: true}, func(t *testing.T, ns *Namespace) {
		ok(t, ns.Mkdirs(ctx, super, "/locked", 0o700, false))
		mkfile(t, ns, carol, "/locked/c", 0o600)
		ok(t, ns.SetOwner(ctx, carol, "/locked/c", "bob", "x"))
		wantClass(t, ns.Mkdirs(ctx, carol, "/locked/c/d", 0o755, true), hdfs.ErrParentNotDirectory)
	})
}
