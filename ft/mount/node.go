package mount

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is go-fuse's loopback node with kura's write interception. The
// children the loopback creates (Lookup, Mknod, Symlink, Link) are wrapped
// into nodes by WrapChild; Create and Mkdir make nodes directly.
type node struct {
	*fs.LoopbackNode
	m *Mount
}

var (
	_ fs.NodeWrapChilder    = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeTmpfiler       = (*node)(nil)
	_ fs.NodeCopyFileRanger = (*node)(nil)
	_ fs.NodeStatxer        = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeGetxattrer     = (*node)(nil)
	_ fs.NodeSetxattrer     = (*node)(nil)
	_ fs.NodeRemovexattrer  = (*node)(nil)
	_ fs.NodeListxattrer    = (*node)(nil)
)

// WrapChild makes every child node a kura node.
func (n *node) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	if l, ok := ops.(*fs.LoopbackNode); ok {
		return &node{LoopbackNode: l, m: n.m}
	}
	return ops
}

func (n *node) newChild() *node {
	return &node{LoopbackNode: &fs.LoopbackNode{RootData: n.RootData}, m: n.m}
}

// relPath is the node's slash-separated path relative to the mount point.
func (n *node) relPath() string { return n.Path(n.Root()) }

// fullPath is the node's path in the underlying directory.
func (n *node) fullPath() string {
	if rel := n.relPath(); rel != "" {
		return n.m.rootPath + "/" + rel
	}
	return n.m.rootPath
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// Open opens a regular file. Opens with write access get a kura handle.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fuseFlags, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 || flags&syscall.O_ACCMODE == syscall.O_RDONLY {
		return fh, fuseFlags, errno
	}
	lf, ok := fh.(*fs.LoopbackFile)
	if !ok { // not go-fuse's loopback file any more: refuse rather than not ship
		n.m.log.Error("kura ft: unexpected loopback file type", "type", fmt.Sprintf("%T", fh))
		if r, ok := fh.(fs.FileReleaser); ok {
			r.Release(ctx)
		}
		return nil, 0, syscall.EIO
	}
	h, errno := n.m.newHandle(lf, n.relPath(), flags&syscall.O_APPEND != 0)
	if errno != 0 {
		lf.Release(ctx)
		return nil, 0, errno
	}
	return h, fuseFlags, 0
}

// Create creates and opens a regular file. Unlike the loopback's, it keeps
// O_APPEND, and gives the file the owner and permission bits the caller
// asked for.
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	dir := n.fullPath()
	p := dir + "/" + name
	oflags := int(flags)&^fuse.FMODE_EXEC | unix.O_CLOEXEC | unix.O_NOFOLLOW
	fd, err := unix.Open(p, oflags|unix.O_CREAT|unix.O_EXCL, mode)
	created := err == nil
	if err == unix.EEXIST && flags&syscall.O_EXCL == 0 {
		// Created meanwhile by someone else: open it as it is.
		fd, err = unix.Open(p, oflags&^unix.O_CREAT, 0)
	}
	if err != nil {
		return nil, nil, 0, fs.ToErrno(err)
	}
	var st syscall.Stat_t
	var gen uint64
	if created {
		err = n.m.fixNew(ctx, fd, dir, mode, false)
	}
	if err == nil {
		gen, err = fstatx(fd, "", unix.AT_EMPTY_PATH, &st)
	}
	if err != nil {
		unix.Close(fd)
		if created {
			unix.Unlink(p)
		}
		return nil, nil, 0, fs.ToErrno(err)
	}
	ch := n.NewInode(ctx, n.newChild(), n.m.stableAttr(&st, gen))
	out.FromStat(&st)

	lf := fs.NewLoopbackFile(fd).(*fs.LoopbackFile)
	if flags&syscall.O_ACCMODE == syscall.O_RDONLY {
		return ch, lf, 0, 0
	}
	h, errno := n.m.newHandle(lf, join(n.relPath(), name), false)
	if errno != 0 {
		lf.Release(ctx)
		return nil, nil, 0, errno
	}
	return ch, h, 0, 0
}

// Mkdir makes a directory with the owner and permission bits the caller
// asked for (keeping a setgid bit inherited from the parent).
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	dir := n.fullPath()
	p := dir + "/" + name
	if err := unix.Mkdir(p, mode); err != nil {
		return nil, fs.ToErrno(err)
	}
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == nil {
		defer unix.Close(fd)
		err = n.m.fixNew(ctx, fd, dir, mode, true)
	}
	var st syscall.Stat_t
	var gen uint64
	if err == nil {
		gen, err = fstatx(fd, "", unix.AT_EMPTY_PATH, &st)
	}
	if err != nil {
		unix.Rmdir(p)
		return nil, fs.ToErrno(err)
	}
	out.Attr.FromStat(&st)
	return n.NewInode(ctx, n.newChild(), n.m.stableAttr(&st, gen)), 0
}

// fixNew gives a file or directory just created by kura (as root) the
// caller's uid, the caller's gid unless the parent directory is setgid,
// and the permission bits the caller asked for: the kernel applied the
// caller's umask to mode already, the server's own umask must not apply.
func (m *Mount) fixNew(ctx context.Context, fd int, parent string, mode uint32, isDir bool) error {
	if caller, ok := fuse.FromContext(ctx); ok && os.Geteuid() == 0 {
		gid := int(caller.Gid)
		var pst unix.Stat_t
		if unix.Stat(parent, &pst) == nil && pst.Mode&unix.S_ISGID != 0 {
			gid = -1
		}
		if err := unix.Fchown(fd, int(caller.Uid), gid); err != nil {
			return err
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	want := mode & 07777
	if isDir {
		want |= st.Mode & unix.S_ISGID
	}
	if st.Mode&07777 != want {
		return unix.Fchmod(fd, want)
	}
	return nil
}

// stableAttr is the loopback's inode identity for st, so that nodes made
// here and by the loopback's Lookup agree.
func (m *Mount) stableAttr(st *syscall.Stat_t, gen uint64) fs.StableAttr {
	rootDev := m.rootDev
	swapped := (uint64(st.Dev) << 32) | (uint64(st.Dev) >> 32)
	swappedRootDev := (rootDev << 32) | (rootDev >> 32)
	return fs.StableAttr{
		Mode: uint32(st.Mode),
		Gen:  gen,
		Ino:  (swapped ^ swappedRootDev) ^ st.Ino,
	}
}

// fstatx stats like the loopback does: statx, with the birth time as the
// inode generation (1 when unknown).
func fstatx(dirfd int, path string, flags int, st *syscall.Stat_t) (gen uint64, err error) {
	var x unix.Statx_t
	if err := unix.Statx(dirfd, path, flags, unix.STATX_BASIC_STATS|unix.STATX_BTIME, &x); err != nil {
		return 0, err
	}
	setNum(&st.Dev, int64(unix.Mkdev(x.Dev_major, x.Dev_minor)))
	setNum(&st.Ino, int64(x.Ino))
	setNum(&st.Nlink, int64(x.Nlink))
	setNum(&st.Mode, int64(x.Mode))
	setNum(&st.Uid, int64(x.Uid))
	setNum(&st.Gid, int64(x.Gid))
	setNum(&st.Rdev, int64(unix.Mkdev(x.Rdev_major, x.Rdev_minor)))
	setNum(&st.Size, int64(x.Size))
	setNum(&st.Blksize, int64(x.Blksize))
	setNum(&st.Blocks, int64(x.Blocks))
	st.Atim = timespec(x.Atime)
	st.Mtim = timespec(x.Mtime)
	st.Ctim = timespec(x.Ctime)
	gen = 1
	if x.Mask&unix.STATX_BTIME != 0 && (x.Btime.Sec != 0 || x.Btime.Nsec != 0) {
		gen = uint64(x.Btime.Sec)*1e9 + uint64(x.Btime.Nsec)
	}
	return gen, nil
}

func setNum[T ~int16 | ~int32 | ~int64 | ~uint16 | ~uint32 | ~uint64](dst *T, v int64) { *dst = T(v) }

func timespec(t unix.StatxTimestamp) syscall.Timespec {
	return syscall.NsecToTimespec(t.Sec*1e9 + int64(t.Nsec))
}

// Tmpfile refuses O_TMPFILE: a file filled unseen and linked in later
// would escape the interception. Applications fall back to a named file.
func (n *node) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}

// CopyFileRange says ENOSYS: the kernel then copies with reads and writes,
// and the writes are intercepted.
func (n *node) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle, offOut uint64, len uint64, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOSYS
}

// Statx is the loopback's, except that it does not follow a symlink node
// (the kernel sends no AT_SYMLINK_NOFOLLOW) and does follow the root's
// magic link.
func (n *node) Statx(ctx context.Context, f fs.FileHandle, flags uint32, mask uint32, out *fuse.StatxOut) syscall.Errno {
	if fx, ok := f.(fs.FileStatxer); ok {
		return fx.Statx(ctx, flags, mask, out)
	}
	fl := int(flags) | unix.AT_SYMLINK_NOFOLLOW
	if n.IsRoot() {
		fl &^= unix.AT_SYMLINK_NOFOLLOW
	}
	var x unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, n.fullPath(), fl, int(mask), &x); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStatx(&x)
	return 0
}

// The root's loopback path is a magic link: operate on the directory fd.

// Setattr is the loopback's, except on the root.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if !n.IsRoot() {
		return n.LoopbackNode.Setattr(ctx, f, in, out)
	}
	fd := n.m.dirFd
	if mode, ok := in.GetMode(); ok {
		if err := unix.Fchmod(fd, mode); err != nil {
			return fs.ToErrno(err)
		}
	}
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	if uok || gok {
		u, g := -1, -1
		if uok {
			u = int(uid)
		}
		if gok {
			g = int(gid)
		}
		if err := unix.Fchown(fd, u, g); err != nil {
			return fs.ToErrno(err)
		}
	}
	if _, ok := in.GetSize(); ok {
		return syscall.EISDIR
	}
	mtime, mok := in.GetMTime()
	atime, aok := in.GetATime()
	if mok || aok {
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
		if aok {
			ts[0] = unix.NsecToTimespec(atime.UnixNano())
		}
		if mok {
			ts[1] = unix.NsecToTimespec(mtime.UnixNano())
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, n.m.rootPath, ts, 0); err != nil {
			return fs.ToErrno(err)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStat(&st)
	return 0
}

// Getxattr is the loopback's, except on the root.
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if !n.IsRoot() {
		return n.LoopbackNode.Getxattr(ctx, attr, dest)
	}
	sz, err := unix.Fgetxattr(n.m.dirFd, attr, dest)
	return uint32(sz), fs.ToErrno(err)
}

// Setxattr is the loopback's, except on the root.
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if !n.IsRoot() {
		return n.LoopbackNode.Setxattr(ctx, attr, data, flags)
	}
	return fs.ToErrno(unix.Fsetxattr(n.m.dirFd, attr, data, int(flags)))
}

// Removexattr is the loopback's, except on the root.
func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if !n.IsRoot() {
		return n.LoopbackNode.Removexattr(ctx, attr)
	}
	return fs.ToErrno(unix.Fremovexattr(n.m.dirFd, attr))
}

// Listxattr is the loopback's, except on the root.
func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	if !n.IsRoot() {
		return n.LoopbackNode.Listxattr(ctx, dest)
	}
	sz, err := unix.Flistxattr(n.m.dirFd, dest)
	return uint32(sz), fs.ToErrno(err)
}
