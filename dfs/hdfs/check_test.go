package hdfs

import (
	"errors"
	"testing"
)

var (
	hdfsUser = User{Name: "hdfs"}
	admin    = User{Name: "admin", Groups: []string{"supergroup"}}
	alice    = User{Name: "alice", Groups: []string{"alice", "staff"}}
	bob      = User{Name: "bob", Groups: []string{"bob", "staff"}}
	carol    = User{Name: "carol", Groups: []string{"carol"}}
)

func dir(owner, group string, perm FsPermission) *Attrs {
	return &Attrs{Owner: owner, Group: group, Perm: perm, Dir: true}
}

func file(owner, group string, perm FsPermission) *Attrs {
	return &Attrs{Owner: owner, Group: group, Perm: perm}
}

func resolved(t *testing.T, path string, inodes ...*Attrs) Resolved {
	t.Helper()
	comps, err := Split(path)
	if err != nil {
		t.Fatal(err)
	}
	for len(inodes) < len(comps)+1 {
		inodes = append(inodes, nil)
	}
	return Resolved{Components: comps, Inodes: inodes}
}

func TestHasPermission(t *testing.T) {
	in := Attrs{Owner: "alice", Group: "staff", Perm: 0o640}
	tests := []struct {
		u      User
		access Action
		want   bool
	}{
		{alice, ActionReadWrite, true},
		{alice, ActionExecute, false},
		{bob, ActionRead, true}, // group
		{bob, ActionWrite, false},
		{carol, ActionRead, false}, // other
		{carol, ActionNone, true},
		{hdfsUser, ActionRead, false}, // HasPermission knows nothing of superusers
	}
	for _, tt := range tests {
		if got := HasPermission(tt.u, in, tt.access); got != tt.want {
			t.Errorf("HasPermission(%s, %s) = %v", tt.u.Name, tt.access, got)
		}
	}
	// owner class is final: an owner without rights is refused even when
	// the group or others would be allowed (POSIX and HDFS)
	if HasPermission(alice, Attrs{Owner: "alice", Group: "staff", Perm: 0o077}, ActionRead) {
		t.Error("owner fell through to the group class")
	}
	if HasPermission(bob, Attrs{Owner: "alice", Group: "staff", Perm: 0o707}, ActionRead) {
		t.Error("group member fell through to the other class")
	}
}

func TestSuperuser(t *testing.T) {
	c := NewChecker("hdfs")
	for _, u := range []User{hdfsUser, admin} {
		if !c.IsSuperuser(u) {
			t.Errorf("%s is not a superuser", u.Name)
		}
	}
	if c.IsSuperuser(alice) {
		t.Error("alice is a superuser")
	}
	if err := c.CheckSuperuser(alice); !errors.Is(err, ErrAccessControl) ||
		ToRemote(err).Message != "Access denied for user alice. Superuser privilege is required" {
		t.Errorf("CheckSuperuser: %v", err)
	}
	if err := (Checker{Superuser: "hdfs", Supergroup: "admins"}).CheckSuperuser(admin); err == nil {
		t.Error("supergroup setting ignored")
	}
	if err := c.CheckAccess(admin, "/x", *file("alice", "alice", 0), ActionAll); err != nil {
		t.Errorf("supergroup member refused: %v", err)
	}
}

func TestCheckAccessMessage(t *testing.T) {
	c := NewChecker("hdfs")
	err := c.CheckAccess(bob, "/user/alice", *dir("alice", "supergroup", 0o755), ActionWrite)
	want := `Permission denied: user=bob, access=WRITE, inode="/user/alice":alice:supergroup:drwxr-xr-x`
	if !errors.Is(err, ErrAccessControl) || ToRemote(err).Message != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if ToRemote(err).HTTPStatus() != 403 {
		t.Error("status")
	}
}

func TestCheckOperations(t *testing.T) {
	c := NewChecker("hdfs")
	root := dir("hdfs", "supergroup", 0o755)
	tmp := dir("hdfs", "supergroup", 0o1777)
	home := dir("alice", "staff", 0o750)
	private := dir("alice", "alice", 0o700)
	aliceFile := file("alice", "staff", 0o644)
	bobFile := file("bob", "staff", 0o644)

	tests := []struct {
		name string
		u    User
		r    Resolved
		op   Op
		want string // "" for allowed, else the exception's message
	}{
		{"stat through readable dirs", bob, resolved(t, "/home/f", root, home, aliceFile), OpStat, ""},
		{"stat needs EXECUTE on ancestors", carol, resolved(t, "/home/f", root, home, aliceFile), OpStat,
			`Permission denied: user=carol, access=EXECUTE, inode="/home":alice:staff:drwxr-x---`},
		{"stat of a missing path under a private dir", bob, resolved(t, "/p/x/y", root, private), OpStat,
			`Permission denied: user=bob, access=EXECUTE, inode="/p":alice:alice:drwx------`},
		{"list needs READ_EXECUTE", carol, resolved(t, "/", root), OpList, ""},
		{"list refused", bob, resolved(t, "/p", root, private), OpList,
			`Permission denied: user=bob, access=READ_EXECUTE, inode="/p":alice:alice:drwx------`},
		{"read", bob, resolved(t, "/home/f", root, home, aliceFile), OpRead, ""},
		{"read refused", bob, resolved(t, "/home/f", root, home, file("alice", "alice", 0o600)), OpRead,
			`Permission denied: user=bob, access=READ, inode="/home/f":alice:alice:-rw-------`},
		{"mkdir in own home", alice, resolved(t, "/home/x", root, home), OpMkdirs, ""},
		{"mkdir -p checks nearest existing ancestor", alice, resolved(t, "/home/x/y/z", root, home), OpMkdirs, ""},
		{"mkdir refused in group-readonly dir", bob, resolved(t, "/home/x", root, home), OpMkdirs,
			`Permission denied: user=bob, access=WRITE, inode="/home":alice:staff:drwxr-x---`},
		{"mkdir -p refused at nearest ancestor", bob, resolved(t, "/home/x/y", root, home), OpMkdirs,
			`Permission denied: user=bob, access=WRITE, inode="/home":alice:staff:drwxr-x---`},
		{"mkdir at top level", alice, resolved(t, "/x", root), OpMkdirs,
			`Permission denied: user=alice, access=WRITE, inode="/":hdfs:supergroup:drwxr-xr-x`},
		{"create in /tmp", bob, resolved(t, "/tmp/f", root, tmp), OpCreate, ""},
		{"overwrite needs WRITE on the file", bob, resolved(t, "/tmp/f", root, tmp, aliceFile), OpCreateOverwrite,
			`Permission denied: user=bob, access=WRITE, inode="/tmp/f":alice:staff:-rw-r--r--`},
		{"append", alice, resolved(t, "/home/f", root, home, aliceFile), OpAppend, ""},
		{"append refused", bob, resolved(t, "/tmp/f", root, tmp, aliceFile), OpAppend,
			`Permission denied: user=bob, access=WRITE, inode="/tmp/f":alice:staff:-rw-r--r--`},
		{"delete own file in /tmp", bob, resolved(t, "/tmp/f", root, tmp, bobFile), OpDelete, ""},
		{"sticky bit protects others' files", bob, resolved(t, "/tmp/f", root, tmp, aliceFile), OpDelete,
			`Permission denied by sticky bit: user=bob, path="/tmp/f":alice:staff:-rw-r--r--, parent="/tmp":hdfs:supergroup:drwxrwxrwt`},
		{"sticky bit: the dir owner may", alice, resolved(t, "/s/f", root, dir("alice", "staff", 0o1777), bobFile), OpDelete, ""},
		{"sticky bit applies to rename source", bob, resolved(t, "/tmp/f", root, tmp, aliceFile), OpRenameSource,
			`Permission denied by sticky bit: user=bob, path="/tmp/f":alice:staff:-rw-r--r--, parent="/tmp":hdfs:supergroup:drwxrwxrwt`},
		{"delete needs WRITE on parent", bob, resolved(t, "/home/f", root, home, bobFile), OpDelete,
			`Permission denied: user=bob, access=WRITE, inode="/home":alice:staff:drwxr-x---`},
		{"delete of a missing path: no sticky check", bob, resolved(t, "/tmp/nope", root, tmp), OpDelete, ""},
		{"rename dest: nearest ancestor", bob, resolved(t, "/tmp/a/b", root, tmp), OpRenameDest, ""},
		{"rename dest refused", bob, resolved(t, "/home/x", root, home), OpRenameDest,
			`Permission denied: user=bob, access=WRITE, inode="/home":alice:staff:drwxr-x---`},
		{"chmod by owner", alice, resolved(t, "/home/f", root, home, aliceFile), OpSetPermission, ""},
		{"chmod by other", bob, resolved(t, "/tmp/f", root, tmp, aliceFile), OpSetPermission,
			"Permission denied. user=bob is not the owner of inode=/tmp/f"},
		{"chown needs ownership", bob, resolved(t, "/tmp/f", root, tmp, aliceFile), OpSetOwner,
			"Permission denied. user=bob is not the owner of inode=/tmp/f"},
		{"setTimes needs WRITE", bob, resolved(t, "/tmp/f", root, tmp, aliceFile), OpSetTimes,
			`Permission denied: user=bob, access=WRITE, inode="/tmp/f":alice:staff:-rw-r--r--`},
		{"setReplication by writer", alice, resolved(t, "/tmp/f", root, tmp, aliceFile), OpSetReplication, ""},
		{"superuser passes everything", hdfsUser, resolved(t, "/p/f", root, private, file("alice", "alice", 0)), OpSetOwner, ""},
		{"supergroup passes sticky", admin, resolved(t, "/tmp/f", root, tmp, aliceFile), OpDelete, ""},
		{"content summary checks only traverse here", bob, resolved(t, "/home", root, home), OpContentSummary, ""},
		{"root", carol, resolved(t, "/", root), OpStat, ""},
		{"delete root: no parent", hdfsUser, resolved(t, "/", root), OpDelete, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Check(tt.u, tt.r, tt.op.Need())
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrAccessControl) {
				t.Fatalf("got %v, want an AccessControlException", err)
			}
			if got := ToRemote(err).Message; got != tt.want {
				t.Fatalf("message\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestCheckParentNotDirectory(t *testing.T) {
	root := dir("hdfs", "supergroup", 0o755)
	r := resolved(t, "/f/x", root, file("alice", "staff", 0o644))
	for _, c := range []Checker{NewChecker("hdfs"), {Superuser: "hdfs", Disabled: true}} {
		for _, u := range []User{alice, hdfsUser} {
			err := c.Check(u, r, OpCreate.Need())
			if !errors.Is(err, ErrParentNotDirectory) || ToRemote(err).Message != "/f (is not a directory)" {
				t.Errorf("%s disabled=%v: %v", u.Name, c.Disabled, err)
			}
		}
	}
	if err := NewChecker("hdfs").Check(alice, Resolved{Components: []string{"a"}}, Need{}); !errors.Is(err, ErrIllegalArgument) {
		t.Errorf("malformed Resolved: %v", err)
	}
}

func TestCheckDisabled(t *testing.T) {
	c := Checker{Superuser: "hdfs", Supergroup: DefaultSupergroup, Disabled: true}
	root := dir("hdfs", "supergroup", 0o700)
	r := resolved(t, "/x/f", root, dir("alice", "alice", 0o1700), file("alice", "alice", 0))
	for op := OpStat; op <= OpContentSummary; op++ {
		if err := c.Check(carol, r, op.Need()); err != nil {
			t.Errorf("op %d: %v", op, err)
		}
	}
	if c.CheckSuperuser(carol) != nil || c.CheckSetOwner(carol, "x", "y") != nil {
		t.Error("disabled checker refused")
	}
}

func TestCheckSetOwner(t *testing.T) {
	c := NewChecker("hdfs")
	tests := []struct {
		u            User
		owner, group string
		want         string
	}{
		{alice, "", "staff", ""},
		{alice, "alice", "", ""},
		{alice, "alice", "staff", ""},
		{alice, "bob", "", "Non-super user cannot change owner"},
		{alice, "", "wheel", "User does not belong to wheel"},
		{hdfsUser, "bob", "wheel", ""},
		{admin, "bob", "wheel", ""},
	}
	for _, tt := range tests {
		err := c.CheckSetOwner(tt.u, tt.owner, tt.group)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || ToRemote(err).Message != tt.want) {
			t.Errorf("CheckSetOwner(%s, %q, %q) = %v, want %q", tt.u.Name, tt.owner, tt.group, err, tt.want)
		}
	}
}

func TestCheckSubtreeDir(t *testing.T) {
	c := NewChecker("hdfs")
	del := OpDelete.Need()
	locked := *dir("alice", "staff", 0o555)
	if err := c.CheckSubtreeDir(alice, del, "/d", locked, nil); err != nil {
		t.Errorf("empty directory is ignored for delete: %v", err)
	}
	err := c.CheckSubtreeDir(alice, del, "/d", locked, []Child{{Name: "f", Attrs: *file("alice", "staff", 0o644)}})
	if want := `Permission denied: user=alice, access=ALL, inode="/d":alice:staff:dr-xr-xr-x`; err == nil || ToRemote(err).Message != want {
		t.Errorf("non-empty read-only dir: %v", err)
	}
	sticky := *dir("bob", "staff", 0o1777)
	err = c.CheckSubtreeDir(alice, del, "/s", sticky, []Child{
		{Name: "mine", Attrs: *file("alice", "staff", 0o644)},
		{Name: "theirs", Attrs: *file("carol", "carol", 0o644)},
	})
	if !errors.Is(err, ErrAccessControl) || ToRemote(err).Message !=
		`Permission denied by sticky bit: user=alice, path="/s/theirs":carol:carol:-rw-r--r--, parent="/s":bob:staff:drwxrwxrwt` {
		t.Errorf("sticky subtree: %v", err)
	}
	if err := c.CheckSubtreeDir(hdfsUser, del, "/d", locked, []Child{{Name: "f"}}); err != nil {
		t.Errorf("superuser: %v", err)
	}
	cs := OpContentSummary.Need()
	if err := c.CheckSubtreeDir(carol, cs, "/d", *dir("alice", "staff", 0o750), nil); err == nil {
		t.Error("content summary of an unreadable empty directory allowed")
	}
	if err := c.CheckSubtreeDir(carol, cs, "/f", *file("alice", "staff", 0), nil); err != nil {
		t.Errorf("files are not checked: %v", err)
	}
}

func TestHomeDirectory(t *testing.T) {
	if HomeDirectory("username") != "/user/username" {
		t.Error(HomeDirectory("username"))
	}
}
