package dfsfuse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/dfstest"
	"github.com/kura-dev/kura/dfs/hdfs"
)

// The tests mount a real in-process cluster (a namenode on SQLite and a
// datanode) with real FUSE (as root, without fusermount) and check what
// the os package sees through the mount against what the dfs client sees.

const testBlockSize = 1 << 20 // the namenode's smallest

// env is a cluster with the namespace mounted.
type env struct {
	cl  *dfstest.Cluster
	c   *client.Client // as root, the superuser
	m   *Mount
	mnt string
}

// testLogger logs to t.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// mountT mounts cl's namespace on a new directory with o (Client and
// Mountpoint filled in); it is unmounted when t ends.
func mountT(t *testing.T, cl *dfstest.Cluster, o Options) *Mount {
	t.Helper()
	if o.Client == nil {
		o.Client = cl.Client(t, "root")
	}
	o.Mountpoint = t.TempDir()
	// Other users (testCallerIdentity) must reach the mount point.
	ok(t, os.Chmod(filepath.Dir(o.Mountpoint), 0o755))
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	m, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(); err != nil {
			t.Errorf("Unmount: %v", err)
			unix.Unmount(m.Dir(), unix.MNT_DETACH)
		}
		select {
		case <-m.Done():
		case <-time.After(20 * time.Second):
			t.Errorf("still served 20 s after Unmount")
		}
	})
	return m
}

// TestMount runs the mount's tests against one cluster and one mount;
// each subtest works in its own directory.
func TestMount(t *testing.T) {
	cl := dfstest.Start(t, dfstest.Options{Datanodes: 1})
	e := &env{cl: cl, c: cl.Client(t, "root")}
	e.m = mountT(t, cl, Options{
		EntryTimeout: DefaultEntryTimeout, AttrTimeout: DefaultAttrTimeout,
		BlockSize: testBlockSize, Replication: 1, ListPageSize: 100, AllowOther: true,
	})
	e.mnt = e.m.Dir()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"WriteRead", testWriteRead},
		{"MultiBlock", testMultiBlock},
		{"Readdir", testReaddir},
		{"MkdirRmdirUnlink", testMkdirRmdirUnlink},
		{"Rename", testRename},
		{"Attributes", testAttributes},
		{"Owners", testOwners},
		{"SequentialWrites", testSequentialWrites},
		{"OpenModes", testOpenModes},
		{"Truncate", testTruncate},
		{"Fsync", testFsync},
		{"RenameWhileWriting", testRenameWhileWriting},
		{"SecondWriter", testSecondWriter},
		{"CreateRace", testCreateRace},
		{"OtherClients", testOtherClients},
		{"Statfs", testStatfs},
		{"CallerIdentity", testCallerIdentity},
		{"ForcedUser", testForcedUser},
		{"UnmountCompletesWriters", testUnmountCompletesWriters},
		{"ExternalUmount", testExternalUmount},
	} {
		if !t.Run(tc.name, func(t *testing.T) { tc.fn(t, e) }) {
			return
		}
	}
}

// dir makes the directory /name in dfs (through the client) and returns
// its path under the mount point.
func (e *env) dir(t *testing.T, name string, perm hdfs.FsPermission) string {
	t.Helper()
	if err := e.c.Mkdirs(context.Background(), "/"+name, perm, true); err != nil {
		t.Fatal(err)
	}
	if err := e.c.SetPermission(context.Background(), "/"+name, perm); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(e.mnt, name)
}

// dfsPath returns the dfs path of a path under the mount point.
func (e *env) dfsPath(local string) string {
	return "/" + strings.TrimPrefix(strings.TrimPrefix(local, e.mnt), "/")
}

// stat returns the client's status of a path under the mount point.
func (e *env) stat(t *testing.T, local string) *client.FileStatus {
	t.Helper()
	st, err := e.c.Stat(context.Background(), e.dfsPath(local))
	if err != nil {
		t.Fatalf("client stat %s: %v", e.dfsPath(local), err)
	}
	return st
}

// read returns the content of a path under the mount point, read by the
// client.
func (e *env) read(t *testing.T, local string) []byte {
	t.Helper()
	r, err := e.c.Open(context.Background(), e.dfsPath(local))
	if err != nil {
		t.Fatalf("client open %s: %v", e.dfsPath(local), err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("client read %s: %v", e.dfsPath(local), err)
	}
	return b
}

// put writes a file through the client.
func (e *env) put(t *testing.T, c *client.Client, local string, data []byte) {
	t.Helper()
	w, err := c.Create(context.Background(), e.dfsPath(local), client.CreateOptions{Replication: 1, BlockSize: testBlockSize})
	if err != nil {
		t.Fatalf("client create %s: %v", e.dfsPath(local), err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// wantErrno fails unless err is errno.
func wantErrno(t *testing.T, what string, err error, errno syscall.Errno) {
	t.Helper()
	if !errors.Is(err, errno) {
		t.Fatalf("%s: got %v, want %v (%d)", what, err, errno, int(errno))
	}
}

func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantContent(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes %.40q..., want %d bytes %.40q...", what, len(got), got, len(want), want)
	}
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// testWriteRead writes small files through the mount and reads them back
// through the mount and the client; stat through the mount shows the
// client's status.
func testWriteRead(t *testing.T, e *env) {
	d := e.dir(t, "wr", 0o755)
	p := filepath.Join(d, "a.txt")
	ok(t, os.WriteFile(p, []byte("hello, dfs\n"), 0o640))
	wantContent(t, "client read", e.read(t, p), []byte("hello, dfs\n"))
	got, err := os.ReadFile(p)
	ok(t, err)
	wantContent(t, "mount read", got, []byte("hello, dfs\n"))

	st := e.stat(t, p)
	fi, err := os.Stat(p)
	ok(t, err)
	sys := fi.Sys().(*syscall.Stat_t)
	if fi.Size() != 11 || st.Length != 11 || st.UnderConstruction {
		t.Fatalf("size %d, client length %d (under construction %v), want 11", fi.Size(), st.Length, st.UnderConstruction)
	}
	if fi.Mode() != 0o640 || st.Permission != 0o640 {
		t.Fatalf("mode %v, client permission %o, want 0640", fi.Mode(), st.Permission)
	}
	if sys.Ino != uint64(st.FileID) {
		t.Fatalf("inode %d, want the file id %d", sys.Ino, st.FileID)
	}
	if sys.Uid != 0 || st.Owner != "root" {
		t.Fatalf("uid %d (client owner %q), want 0 (root)", sys.Uid, st.Owner)
	}
	if !fi.ModTime().Equal(st.ModTime) {
		t.Fatalf("mtime %v, client %v", fi.ModTime(), st.ModTime)
	}

	// An empty file, and one read in odd-sized pieces.
	empty := filepath.Join(d, "empty")
	ok(t, os.WriteFile(empty, nil, 0o644))
	if st := e.stat(t, empty); st.Length != 0 || st.UnderConstruction {
		t.Fatalf("empty file: %+v", st)
	}
	data := randomBytes(1, 300_000)
	odd := filepath.Join(d, "odd")
	ok(t, os.WriteFile(odd, data, 0o644))
	f, err := os.Open(odd)
	ok(t, err)
	defer f.Close()
	var back []byte
	buf := make([]byte, 7777)
	for {
		n, err := f.Read(buf)
		back = append(back, buf[:n]...)
		if err == io.EOF {
			break
		}
		ok(t, err)
	}
	wantContent(t, "odd-sized reads", back, data)
	part := make([]byte, 1000)
	_, err = f.ReadAt(part, 123_456)
	ok(t, err)
	wantContent(t, "ReadAt", part, data[123_456:124_456])
}

// testMultiBlock writes a file of several blocks through the mount and
// reads it back byte for byte through the mount and the client.
func testMultiBlock(t *testing.T, e *env) {
	d := e.dir(t, "mb", 0o755)
	p := filepath.Join(d, "big.bin")
	data := randomBytes(2, 2*testBlockSize+testBlockSize/2+123)
	f, err := os.Create(p)
	ok(t, err)
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 100_000)
		_, err := f.Write(rest[:n])
		ok(t, err)
		rest = rest[n:]
	}
	ok(t, f.Close())

	st := e.stat(t, p)
	if st.Length != int64(len(data)) || st.BlockSize != testBlockSize || st.UnderConstruction {
		t.Fatalf("client status: length %d block size %d under construction %v, want %d %d false",
			st.Length, st.BlockSize, st.UnderConstruction, len(data), testBlockSize)
	}
	locs, err := e.c.BlockLocations(context.Background(), e.dfsPath(p))
	ok(t, err)
	if len(locs.Blocks) != 3 {
		t.Fatalf("%d blocks, want 3", len(locs.Blocks))
	}
	wantContent(t, "client read", e.read(t, p), data)
	got, err := os.ReadFile(p)
	ok(t, err)
	wantContent(t, "mount read", got, data)
}

// testReaddir lists a directory of more entries than one listing page
// (the mount asks for 100 at a time).
func testReaddir(t *testing.T, e *env) {
	d := e.dir(t, "rd", 0o755)
	var want []string
	for i := range 250 {
		name := fmt.Sprintf("e%03d", i)
		want = append(want, name)
		if i%10 == 0 {
			e.put(t, e.c, filepath.Join(d, name), []byte(name))
			continue
		}
		ok(t, e.c.Mkdirs(context.Background(), e.dfsPath(filepath.Join(d, name)), 0o755, false))
	}
	ents, err := os.ReadDir(d)
	ok(t, err)
	var got []string
	for _, de := range ents {
		got = append(got, de.Name())
		info, err := de.Info()
		ok(t, err)
		isFile := de.Name()[len(de.Name())-1] == '0'
		if isFile && (!info.Mode().IsRegular() || info.Size() != 4) || !isFile && !info.IsDir() {
			t.Fatalf("%s: mode %v size %d", de.Name(), info.Mode(), info.Size())
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %d entries %v..., want %d", len(got), got[:min(len(got), 5)], len(want))
	}

	// The raw stream has "." and "..", and rewinding lists it all again.
	f, err := os.Open(d)
	ok(t, err)
	defer f.Close()
	names := func() []string {
		buf := make([]byte, 8192)
		var out []string
		for {
			n, err := unix.Getdents(int(f.Fd()), buf)
			ok(t, err)
			if n == 0 {
				return out
			}
			out = append(out, direntNames(buf[:n])...)
		}
	}
	first := names()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	second := names()
	if len(first) != 252 || first[0] != "." || first[1] != ".." || !slices.Equal(first[2:], want) || !slices.Equal(first, second) {
		t.Fatalf("getdents: %d names %v..., after rewind %d", len(first), first[:min(len(first), 4)], len(second))
	}

	// A missing directory fails at opendir; listing a file is ENOTDIR.
	_, err = os.ReadDir(filepath.Join(d, "missing"))
	wantErrno(t, "readdir of a missing directory", err, syscall.ENOENT)
	_, err = os.ReadDir(filepath.Join(d, "e000"))
	wantErrno(t, "readdir of a file", err, syscall.ENOTDIR)
}

// direntNames returns the names of the linux_dirent64 records in buf, "."
// and ".." included.
func direntNames(buf []byte) []string {
	var out []string
	for len(buf) >= 19 {
		reclen := int(buf[16]) | int(buf[17])<<8
		name := buf[19:reclen]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		out = append(out, string(name))
		buf = buf[reclen:]
	}
	return out
}

// testMkdirRmdirUnlink creates and removes directories and files.
func testMkdirRmdirUnlink(t *testing.T, e *env) {
	d := e.dir(t, "mk", 0o755)
	sub := filepath.Join(d, "sub")
	ok(t, os.Mkdir(sub, 0o750))
	if st := e.stat(t, sub); !st.IsDir || st.Permission != 0o750 {
		t.Fatalf("client: dir %v permission %o, want a directory 0750", st.IsDir, st.Permission)
	}
	wantErrno(t, "mkdir of an existing directory", os.Mkdir(sub, 0o755), syscall.EEXIST)
	wantErrno(t, "mkdir without its parent", os.Mkdir(filepath.Join(d, "no", "x"), 0o755), syscall.ENOENT)

	ok(t, os.WriteFile(filepath.Join(sub, "f"), []byte("x"), 0o644))
	wantErrno(t, "rmdir of a non-empty directory", unix.Rmdir(sub), syscall.ENOTEMPTY)
	if st := e.stat(t, filepath.Join(sub, "f")); st.Length != 1 {
		t.Fatalf("file after the refused rmdir: %+v", st)
	}
	wantErrno(t, "rmdir of a file", unix.Rmdir(filepath.Join(sub, "f")), syscall.ENOTDIR)
	wantErrno(t, "unlink of a directory", unix.Unlink(sub), syscall.EISDIR)
	ok(t, unix.Unlink(filepath.Join(sub, "f")))
	if _, err := e.c.Stat(context.Background(), e.dfsPath(filepath.Join(sub, "f"))); !errors.Is(err, hdfs.ErrFileNotFound) {
		t.Fatalf("client stat of the unlinked file: %v", err)
	}
	wantErrno(t, "unlink of a missing file", unix.Unlink(filepath.Join(sub, "f")), syscall.ENOENT)
	ok(t, unix.Rmdir(sub))
	if _, err := e.c.Stat(context.Background(), e.dfsPath(sub)); !errors.Is(err, hdfs.ErrFileNotFound) {
		t.Fatalf("client stat of the removed directory: %v", err)
	}
	if _, err := os.Stat(sub); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("stat through the mount of the removed directory: %v", err)
	}
	// Names HDFS refuses.
	wantErrno(t, "mkdir of a name with a colon", os.Mkdir(filepath.Join(d, "a:b"), 0o755), syscall.EINVAL)
}

// testRename renames files and directories, replacing existing ones as
// POSIX does.
func testRename(t *testing.T, e *env) {
	d := e.dir(t, "mv", 0o755)
	at := func(name string) string { return filepath.Join(d, name) }
	ok(t, os.WriteFile(at("a"), []byte("A"), 0o644))
	ok(t, os.Rename(at("a"), at("b")))
	wantContent(t, "renamed file", e.read(t, at("b")), []byte("A"))
	if _, err := os.Stat(at("a")); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("old name after rename: %v", err)
	}

	// Replace an existing file.
	ok(t, os.WriteFile(at("c"), []byte("CCC"), 0o644))
	ok(t, os.Rename(at("b"), at("c")))
	wantContent(t, "replaced file (client)", e.read(t, at("c")), []byte("A"))
	got, err := os.ReadFile(at("c"))
	ok(t, err)
	wantContent(t, "replaced file (mount)", got, []byte("A"))

	// A directory with content moves whole.
	ok(t, os.MkdirAll(at("dir/inner"), 0o755))
	ok(t, os.WriteFile(at("dir/inner/f"), []byte("deep"), 0o644))
	ok(t, os.Rename(at("dir"), at("moved")))
	got, err = os.ReadFile(at("moved/inner/f"))
	ok(t, err)
	wantContent(t, "file of a moved directory (mount)", got, []byte("deep"))
	wantContent(t, "file of a moved directory (client)", e.read(t, at("moved/inner/f")), []byte("deep"))

	// Onto an empty directory: replaced; onto a non-empty one: ENOTEMPTY.
	// (os.Rename refuses an existing directory itself: rename(2) here.)
	ok(t, os.Mkdir(at("empty"), 0o755))
	ok(t, unix.Rename(at("moved"), at("empty")))
	wantContent(t, "after replacing an empty directory", e.read(t, at("empty/inner/f")), []byte("deep"))
	ok(t, os.Mkdir(at("other"), 0o755))
	wantErrno(t, "rename onto a non-empty directory", unix.Rename(at("other"), at("empty")), syscall.ENOTEMPTY)
	if st := e.stat(t, at("other")); !st.IsDir {
		t.Fatal("source of the refused rename is gone")
	}

	// Type mismatches, RENAME_NOREPLACE, a directory into itself.
	wantErrno(t, "rename of a file onto a directory", unix.Rename(at("c"), at("other")), syscall.EISDIR)
	wantErrno(t, "rename of a directory onto a file", os.Rename(at("other"), at("c")), syscall.ENOTDIR)
	ok(t, os.WriteFile(at("x"), []byte("X"), 0o644))
	wantErrno(t, "RENAME_NOREPLACE onto a file",
		unix.Renameat2(unix.AT_FDCWD, at("x"), unix.AT_FDCWD, at("c"), unix.RENAME_NOREPLACE), syscall.EEXIST)
	wantContent(t, "target of the refused rename", e.read(t, at("c")), []byte("A"))
	ok(t, unix.Renameat2(unix.AT_FDCWD, at("x"), unix.AT_FDCWD, at("y"), unix.RENAME_NOREPLACE))
	wantErrno(t, "RENAME_EXCHANGE",
		unix.Renameat2(unix.AT_FDCWD, at("y"), unix.AT_FDCWD, at("c"), unix.RENAME_EXCHANGE), syscall.EINVAL)
	wantErrno(t, "rename of a directory into itself", os.Rename(at("empty"), at("empty/inner/sub")), syscall.EINVAL)
}

// testAttributes changes permission, owner and times through the mount
// and checks them through the client and the mount.
func testAttributes(t *testing.T, e *env) {
	d := e.dir(t, "attr", 0o755)
	p := filepath.Join(d, "f")
	ok(t, os.WriteFile(p, []byte("x"), 0o644))

	ok(t, os.Chmod(p, 0o604))
	if st := e.stat(t, p); st.Permission != 0o604 {
		t.Fatalf("client permission %o after chmod 0604", st.Permission)
	}
	fi, err := os.Stat(p)
	ok(t, err)
	if fi.Mode() != 0o604 {
		t.Fatalf("mode through the mount %v after chmod 0604", fi.Mode())
	}
	ok(t, unix.Chmod(d, 0o1777)) // os.Chmod spells the sticky bit os.ModeSticky
	if st := e.stat(t, d); st.Permission != 0o1777 {
		t.Fatalf("client permission %o after chmod 1777", st.Permission)
	}

	ok(t, os.Chown(p, 65534, 65534)) // nobody, nogroup
	if st := e.stat(t, p); st.Owner != "nobody" || st.Group != "nogroup" {
		t.Fatalf("client owner %s:%s after chown 65534:65534", st.Owner, st.Group)
	}
	ok(t, os.Chown(p, -1, 0)) // the group only
	if st := e.stat(t, p); st.Owner != "nobody" || st.Group != "root" {
		t.Fatalf("client owner %s:%s after chown -1:0", st.Owner, st.Group)
	}
	sys := func() *syscall.Stat_t {
		fi, err := os.Stat(p)
		ok(t, err)
		return fi.Sys().(*syscall.Stat_t)
	}
	if s := sys(); s.Uid != 65534 || s.Gid != 0 {
		t.Fatalf("uid:gid through the mount %d:%d, want 65534:0", s.Uid, s.Gid)
	}

	mtime := time.Date(2021, 3, 4, 5, 6, 7, 890_000_000, time.UTC)
	atime := time.Date(2022, 1, 2, 3, 4, 5, 0, time.UTC)
	ok(t, os.Chtimes(p, atime, mtime))
	st := e.stat(t, p)
	if !st.ModTime.Equal(mtime) || !st.AccessTime.Equal(atime) {
		t.Fatalf("client times m %v a %v, want %v %v", st.ModTime, st.AccessTime, mtime, atime)
	}
	fi, err = os.Stat(p)
	ok(t, err)
	if !fi.ModTime().Equal(mtime) {
		t.Fatalf("mtime through the mount %v, want %v", fi.ModTime(), mtime)
	}
	// touch: both times to now.
	before := time.Now().Add(-time.Second)
	ok(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{{Nsec: unix.UTIME_NOW}, {Nsec: unix.UTIME_NOW}}, 0))
	if st := e.stat(t, p); st.ModTime.Before(before) {
		t.Fatalf("mtime %v after utimensat(UTIME_NOW), want after %v", st.ModTime, before)
	}
}

// testOwners shows HDFS owners as local ids: a local name as its id, a
// number as itself, an unknown name as nobody.
func testOwners(t *testing.T, e *env) {
	d := e.dir(t, "own", 0o755)
	ctx := context.Background()
	for _, c := range []struct {
		owner, group string
		uid, gid     uint32
	}{
		{"root", "root", 0, 0},
		{"nobody", "nogroup", 65534, 65534},
		{"1234", "4321", 1234, 4321},
		{"alice", "supergroup", 65534, 65534},
	} {
		p := filepath.Join(d, c.owner)
		e.put(t, e.c, p, nil)
		ok(t, e.c.SetOwner(ctx, e.dfsPath(p), c.owner, c.group))
		fi, err := os.Stat(p)
		ok(t, err)
		s := fi.Sys().(*syscall.Stat_t)
		if s.Uid != c.uid || s.Gid != c.gid {
			t.Errorf("owner %s:%s shows as %d:%d, want %d:%d", c.owner, c.group, s.Uid, s.Gid, c.uid, c.gid)
		}
	}
	// chown to an id without a name gives the number as the name.
	p := filepath.Join(d, "root")
	ok(t, os.Chown(p, 4242, -1))
	if st := e.stat(t, p); st.Owner != "4242" {
		t.Fatalf("client owner %q after chown 4242", st.Owner)
	}
}

// testSequentialWrites: writes must continue at the end; others fail with
// EOPNOTSUPP and leave the file as it was.
func testSequentialWrites(t *testing.T, e *env) {
	d := e.dir(t, "seq", 0o755)
	p := filepath.Join(d, "f")
	f, err := os.Create(p)
	ok(t, err)
	_, err = f.Write([]byte("0123456789"))
	ok(t, err)
	_, err = f.WriteAt([]byte("x"), 3)
	wantErrno(t, "write before the end", err, syscall.EOPNOTSUPP)
	_, err = f.WriteAt([]byte("x"), 20)
	wantErrno(t, "write past the end", err, syscall.EOPNOTSUPP)
	_, err = f.Write([]byte("abc")) // at the end: fine
	ok(t, err)
	ok(t, f.Close())
	wantContent(t, "after refused writes", e.read(t, p), []byte("0123456789abc"))

	// An existing file opened O_WRONLY: a write at its end appends, any
	// other is refused.
	f, err = os.OpenFile(p, os.O_WRONLY, 0)
	ok(t, err)
	_, err = f.Write([]byte("zz")) // at offset 0
	wantErrno(t, "write at 0 of an existing file", err, syscall.EOPNOTSUPP)
	_, err = f.WriteAt([]byte("def"), 13)
	ok(t, err)
	ok(t, f.Close())
	wantContent(t, "after a write at the end", e.read(t, p), []byte("0123456789abcdef"))
	if st := e.stat(t, p); st.UnderConstruction {
		t.Fatal("file still open after close")
	}

	// A descriptor kept after another one's close (dup): the first close
	// completed the file; the next write appends to it again.
	f, err = os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	ok(t, err)
	dup, err := unix.Dup(int(f.Fd()))
	ok(t, err)
	_, err = f.Write([]byte("1"))
	ok(t, err)
	ok(t, unix.Close(dup)) // flush: completes
	if st := e.stat(t, p); st.UnderConstruction || st.Length != 17 {
		t.Fatalf("after the dup's close: length %d under construction %v", st.Length, st.UnderConstruction)
	}
	_, err = f.Write([]byte("2"))
	ok(t, err)
	ok(t, f.Close())
	wantContent(t, "after writes around a dup's close", e.read(t, p), []byte("0123456789abcdef12"))
}

// testOpenModes: O_TRUNC rewrites, O_APPEND appends, O_RDWR of an existing
// file reads but refuses writes, O_EXCL refuses an existing file.
func testOpenModes(t *testing.T, e *env) {
	d := e.dir(t, "modes", 0o755)
	p := filepath.Join(d, "f")
	ok(t, os.WriteFile(p, []byte("first version"), 0o600))
	id := e.stat(t, p).FileID
	ok(t, os.WriteFile(p, []byte("second"), 0o644)) // O_TRUNC
	st := e.stat(t, p)
	wantContent(t, "after O_TRUNC", e.read(t, p), []byte("second"))
	if st.Permission != 0o600 || st.FileID == id {
		t.Fatalf("after O_TRUNC: permission %o (want the old 0600), file id %d (old %d: want a new file)", st.Permission, st.FileID, id)
	}

	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	ok(t, err)
	_, err = f.Write([]byte(" and more"))
	ok(t, err)
	fi, err := f.Stat() // a file being written shows what was written
	ok(t, err)
	if fi.Size() != 15 {
		t.Fatalf("size while appending %d, want 15", fi.Size())
	}
	ok(t, f.Close())
	wantContent(t, "after O_APPEND", e.read(t, p), []byte("second and more"))

	f, err = os.OpenFile(p, os.O_RDWR, 0)
	ok(t, err)
	b := make([]byte, 6)
	_, err = io.ReadFull(f, b)
	ok(t, err)
	wantContent(t, "read through O_RDWR", b, []byte("second"))
	_, err = f.Write([]byte("x"))
	wantErrno(t, "write through O_RDWR of an existing file", err, syscall.EOPNOTSUPP)
	ok(t, f.Close())

	f, err = os.OpenFile(filepath.Join(d, "new"), os.O_RDWR|os.O_CREATE, 0o644)
	ok(t, err)
	_, err = f.Write([]byte("new"))
	ok(t, err)
	_, err = f.ReadAt(b, 0)
	wantErrno(t, "read through an O_RDWR writer", err, syscall.EOPNOTSUPP)
	ok(t, f.Close())
	wantContent(t, "O_RDWR|O_CREAT file", e.read(t, filepath.Join(d, "new")), []byte("new"))

	_, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	wantErrno(t, "O_EXCL of an existing file", err, syscall.EEXIST)
	f, err = os.OpenFile(filepath.Join(d, "locked"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0)
	ok(t, err)
	ok(t, f.Close())
	if st := e.stat(t, filepath.Join(d, "locked")); st.Permission != 0 {
		t.Fatalf("file created with mode 0: permission %o", st.Permission)
	}
}

// testTruncate: to the size is a no-op, to 0 re-creates, anything else is
// EOPNOTSUPP and leaves the file alone.
func testTruncate(t *testing.T, e *env) {
	d := e.dir(t, "trunc", 0o755)
	p := filepath.Join(d, "f")
	ok(t, os.WriteFile(p, []byte("0123456789"), 0o640))
	ok(t, os.Truncate(p, 10))
	wantContent(t, "after truncate to the size", e.read(t, p), []byte("0123456789"))
	wantErrno(t, "truncate to 3", os.Truncate(p, 3), syscall.EOPNOTSUPP)
	wantErrno(t, "truncate to 20", os.Truncate(p, 20), syscall.EOPNOTSUPP)
	wantContent(t, "after refused truncates", e.read(t, p), []byte("0123456789"))
	ok(t, os.Truncate(p, 0))
	if st := e.stat(t, p); st.Length != 0 || st.Permission != 0o640 || st.UnderConstruction {
		t.Fatalf("after truncate to 0: %+v", st)
	}
	fi, err := os.Stat(p)
	ok(t, err)
	if fi.Size() != 0 {
		t.Fatalf("size through the mount after truncate to 0: %d", fi.Size())
	}

	// ftruncate(0) on a descriptor open for writing, then writes.
	ok(t, os.WriteFile(p, []byte("old content"), 0o640))
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	ok(t, err)
	ok(t, f.Truncate(0))
	_, err = f.WriteAt([]byte("new"), 0)
	ok(t, err)
	wantErrno(t, "ftruncate to 1", f.Truncate(1), syscall.EOPNOTSUPP)
	ok(t, f.Truncate(3))
	ok(t, f.Close())
	wantContent(t, "after ftruncate(0) and a write", e.read(t, p), []byte("new"))
}

// testFsync: after fsync, a client reads what was written while the file
// is still open.
func testFsync(t *testing.T, e *env) {
	d := e.dir(t, "sync", 0o755)
	p := filepath.Join(d, "f")
	f, err := os.Create(p)
	ok(t, err)
	defer f.Close()
	_, err = f.Write([]byte("hello "))
	ok(t, err)
	ok(t, f.Sync())
	st := e.stat(t, p)
	if !st.UnderConstruction {
		t.Fatal("file closed by fsync")
	}
	wantContent(t, "client read after fsync", e.read(t, p), []byte("hello "))
	_, err = f.Write([]byte("world"))
	ok(t, err)
	ok(t, f.Sync())
	wantContent(t, "client read after the second fsync", e.read(t, p), []byte("hello world"))
	ok(t, f.Close())
	wantContent(t, "client read after close", e.read(t, p), []byte("hello world"))
}

// testRenameWhileWriting: a file renamed (then its directory) while a
// descriptor writes it goes on being written, fsynced and completed where
// it is now (the writer addresses it by file id); a write through a dup
// of a descriptor whose close completed the file appends at the file's
// new path.
func testRenameWhileWriting(t *testing.T, e *env) {
	d := e.dir(t, "mvopen", 0o755)
	p := filepath.Join(d, "f")
	f, err := os.Create(p)
	ok(t, err)
	defer f.Close()
	_, err = f.Write([]byte("one "))
	ok(t, err)
	ok(t, f.Sync())
	moved := filepath.Join(d, "g")
	ok(t, os.Rename(p, moved))
	_, err = f.Write([]byte("two "))
	ok(t, err)
	ok(t, f.Sync())
	wantContent(t, "client read of the renamed file after fsync", e.read(t, moved), []byte("one two "))
	dir2 := filepath.Join(e.mnt, "mvopen-moved")
	ok(t, os.Rename(d, dir2))
	moved = filepath.Join(dir2, "g")
	_, err = f.Write([]byte("three"))
	ok(t, err)
	ok(t, f.Close())
	if st := e.stat(t, moved); st.UnderConstruction || st.Length != int64(len("one two three")) {
		t.Fatalf("the renamed file after close: %+v", st)
	}
	wantContent(t, "client read of the renamed file after close", e.read(t, moved), []byte("one two three"))
	if _, err := os.Stat(p); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("stat of the old path: %v", err)
	}

	// close(2) of one descriptor completes the file; a write through a dup
	// then appends, at the path the file has now.
	a, err := os.OpenFile(moved, os.O_WRONLY|os.O_APPEND, 0)
	ok(t, err)
	_, err = a.Write([]byte(" four"))
	ok(t, err)
	fd, err := syscall.Dup(int(a.Fd()))
	ok(t, err)
	dup := os.NewFile(uintptr(fd), moved)
	defer dup.Close()
	last := filepath.Join(dir2, "h")
	ok(t, os.Rename(moved, last))
	ok(t, a.Close())
	wantContent(t, "client read after the first close", e.read(t, last), []byte("one two three four"))
	_, err = dup.Write([]byte(" five"))
	ok(t, err)
	ok(t, dup.Close())
	wantContent(t, "client read after the dup's write", e.read(t, last), []byte("one two three four five"))
}

// testSecondWriter: one writer per file, through the mount or any client.
func testSecondWriter(t *testing.T, e *env) {
	d := e.dir(t, "busy", 0o755)
	p := filepath.Join(d, "f")
	ctx := context.Background()
	f1, err := os.Create(p)
	ok(t, err)
	_, err = f1.Write([]byte("one"))
	ok(t, err)
	_, err = os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	wantErrno(t, "second O_APPEND writer through the mount", err, syscall.EBUSY)
	_, err = os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	wantErrno(t, "second O_TRUNC writer through the mount", err, syscall.EBUSY)
	other := e.cl.Client(t, "root")
	if _, err := other.Append(ctx, e.dfsPath(p)); !errors.Is(err, hdfs.ErrAlreadyBeingCreated) {
		t.Fatalf("client append while the mount writes: %v", err)
	}
	ok(t, f1.Close())
	wantContent(t, "first writer's file", e.read(t, p), []byte("one"))

	// The other way round: a client writes, the mount may not.
	w, err := other.Append(ctx, e.dfsPath(p))
	ok(t, err)
	_, err = os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	wantErrno(t, "O_APPEND through the mount while a client writes", err, syscall.EBUSY)
	f2, err := os.OpenFile(p, os.O_WRONLY, 0) // opens nothing yet
	ok(t, err)
	_, err = f2.WriteAt([]byte("x"), 3)
	wantErrno(t, "first write of a lazy writer while a client writes", err, syscall.EBUSY)
	ok(t, f2.Close())
	_, err = w.Write([]byte(" two"))
	ok(t, err)
	ok(t, w.Close())
	got, err := os.ReadFile(p)
	ok(t, err)
	wantContent(t, "after the client's append", got, []byte("one two"))
}

// testCreateRace: a create(O_CREAT without O_EXCL) of a name another
// client created after the kernel's lookup opens that file, as open(2)
// does. The kernel cannot be made to lose that race on purpose, so the
// node's Create is called directly.
func testCreateRace(t *testing.T, e *env) {
	d := e.dir(t, "race", 0o755)
	if _, err := os.Stat(d); err != nil { // the kernel looks it up: a node in the tree
		t.Fatal(err)
	}
	in := e.m.root.GetChild("race")
	if in == nil {
		t.Fatal("no node for /race after a lookup")
	}
	dir := in.Operations().(*node)
	ctx := fuse.NewContext(context.Background(), &fuse.Caller{Owner: fuse.Owner{Uid: 0, Gid: 0}})
	e.put(t, e.c, filepath.Join(d, "f"), []byte("theirs"))

	var out fuse.EntryOut
	ch, fh, _, errno := dir.Create(ctx, "f", syscall.O_WRONLY|syscall.O_CREAT|syscall.O_APPEND, 0o644, &out)
	if errno != 0 {
		t.Fatalf("create of a file that appeared: %v", errno)
	}
	if ch.StableAttr().Ino != uint64(e.stat(t, filepath.Join(d, "f")).FileID) || out.Attr.Size != 6 {
		t.Fatalf("create of a file that appeared: inode %d size %d", ch.StableAttr().Ino, out.Attr.Size)
	}
	h := fh.(*fileHandle)
	if n, errno := h.Write(ctx, []byte(" and mine"), 0); errno != 0 || n != 9 {
		t.Fatalf("append through the handle: %d, %v", n, errno)
	}
	if errno := h.Flush(ctx); errno != 0 {
		t.Fatalf("flush: %v", errno)
	}
	h.Release(ctx)
	wantContent(t, "file opened by the racing create", e.read(t, filepath.Join(d, "f")), []byte("theirs and mine"))

	// With O_EXCL the existing file is an error.
	if _, _, _, errno := dir.Create(ctx, "f", syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL, 0o644, &out); errno != syscall.EEXIST {
		t.Fatalf("O_EXCL create of a file that appeared: %v, want EEXIST", errno)
	}
}

// testOtherClients: what other clients do shows through the mount: a new
// file at once (failed lookups are not cached), a changed one once the
// attribute timeout has passed.
func testOtherClients(t *testing.T, e *env) {
	d := e.dir(t, "ext", 0o755)
	p := filepath.Join(d, "f")
	if _, err := os.Stat(p); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("stat before the client creates it: %v", err)
	}
	e.put(t, e.c, p, []byte("abc"))
	fi, err := os.Stat(p)
	ok(t, err)
	if fi.Size() != 3 {
		t.Fatalf("size of the client's new file: %d", fi.Size())
	}
	rf, err := os.Open(p) // a reader open before the append
	ok(t, err)
	defer rf.Close()
	b := make([]byte, 3)
	_, err = rf.ReadAt(b, 0)
	ok(t, err)
	w, err := e.c.Append(context.Background(), e.dfsPath(p))
	ok(t, err)
	_, err = w.Write([]byte("defg"))
	ok(t, err)
	ok(t, w.Close())
	eventually(t, "the appended size through the mount", func() bool {
		fi, err := os.Stat(p)
		return err == nil && fi.Size() == 7
	})
	got, err := os.ReadFile(p)
	ok(t, err)
	wantContent(t, "the appended file through the mount", got, []byte("abcdefg"))
	b = make([]byte, 4)
	_, err = rf.ReadAt(b, 3)
	ok(t, err)
	wantContent(t, "the appended bytes through a reader opened before", b, []byte("defg"))

	// Replaced by a client: a new inode once the entry timeout has passed.
	ino := fi.Sys().(*syscall.Stat_t).Ino
	_, err = e.c.Delete(context.Background(), e.dfsPath(p), false)
	ok(t, err)
	e.put(t, e.c, p, []byte("new"))
	id := e.stat(t, p).FileID
	eventually(t, "the replaced file's inode through the mount", func() bool {
		fi, err := os.Stat(p)
		return err == nil && fi.Sys().(*syscall.Stat_t).Ino == uint64(id)
	})
	if uint64(id) == ino {
		t.Fatal("the client's new file has the old file id")
	}
}

// eventually polls cond for up to 10 s (the mount's caches last 1 s).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen within 10 s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testStatfs: statfs reports the datanodes' capacity and the namespace's
// counts.
func testStatfs(t *testing.T, e *env) {
	var s unix.Statfs_t
	ok(t, unix.Statfs(e.mnt, &s))
	fss, err := e.c.FsStats(context.Background())
	ok(t, err)
	if s.Bsize != statBlockSize || s.Blocks != uint64(fss.Capacity)/statBlockSize || s.Blocks == 0 {
		t.Fatalf("statfs: bsize %d blocks %d, want %d and capacity %d / %d", s.Bsize, s.Blocks, statBlockSize, fss.Capacity, statBlockSize)
	}
	if s.Bfree > s.Blocks || s.Bavail != s.Bfree {
		t.Fatalf("statfs: free %d available %d of %d", s.Bfree, s.Bavail, s.Blocks)
	}
	if used := s.Files - s.Ffree; used < 10 || s.Namelen != maxNameLen {
		t.Fatalf("statfs: %d inodes used (want the namespace's files and directories), name length %d", used, s.Namelen)
	}
	if s.Type != 0x65735546 { // FUSE_SUPER_MAGIC
		t.Fatalf("statfs: type %#x, want FUSE's", s.Type)
	}
}

// testCallerIdentity runs commands through the mount as the local user
// nobody: the namenode checks and records that user.
func testCallerIdentity(t *testing.T, e *env) {
	d := e.dir(t, "who", 0o755)
	open := e.dir(t, "who/open", 0o777)
	asNobody := func(script string) (string, error) {
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		cmd.Dir = "/"
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := asNobody("mkdir " + filepath.Join(d, "denied"))
	if err == nil || !strings.Contains(out, "Permission denied") {
		t.Fatalf("mkdir as nobody in a 0755 root directory: %v, output %q; want Permission denied", err, out)
	}
	if _, err := e.c.Stat(context.Background(), e.dfsPath(filepath.Join(d, "denied"))); !errors.Is(err, hdfs.ErrFileNotFound) {
		t.Fatalf("the refused directory: %v", err)
	}
	out, err = asNobody("mkdir " + filepath.Join(open, "mine") + " && echo hi > " + filepath.Join(open, "mine", "f"))
	if err != nil {
		t.Fatalf("as nobody in a 0777 directory: %v, output %q", err, out)
	}
	for _, p := range []string{filepath.Join(open, "mine"), filepath.Join(open, "mine", "f")} {
		if st := e.stat(t, p); st.Owner != "nobody" {
			t.Fatalf("%s belongs to %q, want nobody", p, st.Owner)
		}
	}
	wantContent(t, "nobody's file", e.read(t, filepath.Join(open, "mine", "f")), []byte("hi\n"))
	// And root, through the same mount, is the superuser.
	ok(t, os.Mkdir(filepath.Join(d, "roots"), 0o755))
	if st := e.stat(t, filepath.Join(d, "roots")); st.Owner != "root" {
		t.Fatalf("root's directory belongs to %q", st.Owner)
	}
}

// testForcedUser mounts with Options.User: every caller is that user.
func testForcedUser(t *testing.T, e *env) {
	e.dir(t, "forced", 0o777)
	e.dir(t, "forced/closed", 0o755)
	m := mountT(t, e.cl, Options{User: "alice", EntryTimeout: time.Second, AttrTimeout: time.Second})
	ok(t, os.Mkdir(filepath.Join(m.Dir(), "forced", "hers"), 0o755))
	if st, err := e.c.Stat(context.Background(), "/forced/hers"); err != nil || st.Owner != "alice" {
		t.Fatalf("directory made through the alice mount: %+v, %v; want alice's", st, err)
	}
	wantErrno(t, "mkdir as alice in root's 0755 directory",
		os.Mkdir(filepath.Join(m.Dir(), "forced", "closed", "x"), 0o755), syscall.EACCES)
	wantErrno(t, "chmod of root's directory as alice",
		os.Chmod(filepath.Join(m.Dir(), "forced", "closed"), 0o777), syscall.EPERM)
}

// testUnmountCompletesWriters: Unmount completes a file still open for
// writing.
func testUnmountCompletesWriters(t *testing.T, e *env) {
	e.dir(t, "um", 0o755)
	m := mountT(t, e.cl, Options{Replication: 1})
	f, err := os.Create(filepath.Join(m.Dir(), "um", "f"))
	ok(t, err)
	defer f.Close()
	_, err = f.Write([]byte("kept"))
	ok(t, err)
	ok(t, m.Unmount())
	st, err := e.c.Stat(context.Background(), "/um/f")
	ok(t, err)
	if st.UnderConstruction || st.Length != 4 {
		t.Fatalf("after Unmount: length %d under construction %v", st.Length, st.UnderConstruction)
	}
	if _, err := f.Write([]byte("more")); err == nil {
		t.Fatal("write after Unmount succeeded")
	}
	r, err := e.c.Open(context.Background(), "/um/f")
	ok(t, err)
	b, err := io.ReadAll(r)
	ok(t, err)
	wantContent(t, "file completed by Unmount", b, []byte("kept"))
}

// testExternalUmount: umount(8) of the mount point ends the serving.
func testExternalUmount(t *testing.T, e *env) {
	m := mountT(t, e.cl, Options{})
	if _, err := os.Stat(filepath.Join(m.Dir(), "um")); err != nil {
		t.Fatal(err)
	}
	ok(t, unix.Unmount(m.Dir(), 0))
	select {
	case <-m.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("still served 20 s after umount")
	}
	ok(t, m.Unmount())
}

// TestNewFails: a missing or wrong mount point and namenodes that do not
// answer are refused before mounting, naming what was wrong.
func TestNewFails(t *testing.T) {
	c, err := client.New(client.Config{Namenodes: []string{"127.0.0.1:1"}, User: "root"})
	ok(t, err)
	defer c.Close()
	file := filepath.Join(t.TempDir(), "file")
	ok(t, os.WriteFile(file, nil, 0o644))
	for _, tc := range []struct {
		name, mountpoint, want string
	}{
		{"missing mount point", filepath.Join(t.TempDir(), "nope"), "does not exist"},
		{"file as mount point", file, "is not a directory"},
		{"no namenode", t.TempDir(), "the namenodes do not answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(context.Background(), Options{Client: c, Mountpoint: tc.mountpoint, Logger: testLogger(t)})
			if err == nil {
				m.Unmount()
				t.Fatal("mounted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
}
