package dfsfuse

import (
	"context"
	"path"
	"slices"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/hdfs"
)

// node is a file or directory of the mount. It holds no state of its own:
// every operation resolves the node's current path in go-fuse's inode tree
// (which follows the renames made through the mount) and asks the
// namenodes.
type node struct {
	fs.Inode
	m *Mount
}

var (
	_ fs.NodeLookuper       = (*node)(nil)
	_ fs.NodeGetattrer      = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeRmdirer        = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.NodeStatfser       = (*node)(nil)
	_ fs.NodeAccesser       = (*node)(nil)
	_ fs.NodeCopyFileRanger = (*node)(nil)
)

// path returns the node's dfs path. A node no longer in the tree (deleted
// or replaced while a descriptor kept it) has none: ENOENT.
func (n *node) path() (string, syscall.Errno) {
	in := n.EmbeddedInode()
	root := in.Root()
	var names []string
	for p := in; p != root; {
		name, parent := p.Parent()
		if parent == nil {
			return "", syscall.ENOENT
		}
		names = append(names, name)
		p = parent
	}
	slices.Reverse(names)
	return "/" + path.Join(names...), 0
}

// childPath returns the dfs path of the entry name of directory n.
func (n *node) childPath(name string) (string, syscall.Errno) {
	p, errno := n.path()
	if errno != 0 {
		return "", errno
	}
	return path.Join(p, name), 0
}

// typeBits is the file type of a status.
func typeBits(st *client.FileStatus) uint32 {
	if st.IsDir {
		return syscall.S_IFDIR
	}
	return syscall.S_IFREG
}

// perm turns a POSIX mode into an HDFS permission: the rwx bits and the
// sticky bit (HDFS has no setuid and setgid).
func perm(mode uint32) hdfs.FsPermission { return hdfs.FsPermission(mode & 0o1777) }

// fillAttr sets a's attributes from st (see the package documentation).
func (m *Mount) fillAttr(a *fuse.Attr, st *client.FileStatus) {
	a.Ino = uint64(st.FileID)
	a.Mode = typeBits(st) | uint32(st.Permission)&0o7777
	size := st.Length
	if !st.IsDir {
		if w, ok := m.writtenSize(st.FileID); ok && w > size {
			size = w
		}
	}
	a.Size = uint64(max(size, 0))
	a.Blocks = (a.Size + 511) / 512
	a.Blksize = ioBlockSize
	a.Nlink = 1
	a.Owner = fuse.Owner{Uid: m.ids.uid(st.Owner), Gid: m.ids.gid(st.Group)}
	mtime, atime := st.ModTime, st.AccessTime
	if atime.UnixMilli() == 0 {
		atime = mtime
	}
	a.SetTimes(&atime, &mtime, &mtime)
}

// newChild returns the inode for the entry st of directory parent, with
// its attributes in attr.
func (m *Mount) newChild(ctx context.Context, parent *node, st *client.FileStatus, attr *fuse.Attr) *fs.Inode {
	m.fillAttr(attr, st)
	return parent.NewInode(ctx, &node{m: m}, fs.StableAttr{Mode: typeBits(st), Ino: uint64(st.FileID)})
}

// Lookup finds the entry name: client.Stat.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	p, errno := n.childPath(name)
	if errno != 0 {
		return nil, errno
	}
	octx, done := n.m.opContext(ctx)
	defer done()
	st, err := n.m.clientFor(ctx).Stat(octx, p)
	if err != nil {
		return nil, n.m.errno("lookup", p, err)
	}
	return n.m.newChild(ctx, n, st, &out.Attr), 0
}

// Getattr answers stat: client.Stat.
func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	p, errno := n.path()
	if errno != 0 {
		return errno
	}
	octx, done := n.m.opContext(ctx)
	defer done()
	return n.getattr(octx, n.m.clientFor(ctx), p, out)
}

// getattr fills out with p's attributes.
func (n *node) getattr(ctx context.Context, c *client.Client, p string, out *fuse.AttrOut) syscall.Errno {
	st, err := c.Stat(ctx, p)
	if err != nil {
		return n.m.errno("getattr", p, err)
	}
	n.m.fillAttr(&out.Attr, st)
	out.Ino = 0 // go-fuse answers with the node's own inode number
	return 0
}

// Setattr answers chmod (SetPermission), chown (SetOwner), truncate and
// utimens (SetTimes), in that order, and then the new attributes.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	p, errno := n.path()
	if errno != 0 {
		return errno
	}
	c := n.m.clientFor(ctx)
	octx, done := n.m.opContext(ctx)
	defer done()
	fail := func(op string, err error) syscall.Errno {
		errno, usual := setattrErrnoOf(err)
		if !usual {
			n.m.logFailure(op, p, errno, err)
		}
		return errno
	}
	if mode, ok := in.GetMode(); ok {
		if err := c.SetPermission(octx, p, perm(mode)); err != nil {
			return fail("chmod", err)
		}
	}
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	if uok || gok {
		var owner, group string
		if uok {
			owner = n.m.ids.userName(uid)
		}
		if gok {
			group = n.m.ids.groupName(gid)
		}
		if err := c.SetOwner(octx, p, owner, group); err != nil {
			return fail("chown", err)
		}
	}
	if size, ok := in.GetSize(); ok {
		if errno := n.truncate(octx, c, f, p, int64(size)); errno != 0 {
			return errno
		}
	}
	mtime, mok := in.GetMTime()
	atime, aok := in.GetATime()
	if mok || aok {
		// A zero time leaves that one as it is.
		if err := c.SetTimes(octx, p, mtime, atime); err != nil {
			return fail("utimens", err)
		}
	}
	return n.getattr(octx, c, p, out)
}

// truncate answers truncate(2) and ftruncate(2): to the current size it
// does nothing, to 0 it re-creates the file, else EOPNOTSUPP.
func (n *node) truncate(ctx context.Context, c *client.Client, f fs.FileHandle, p string, size int64) syscall.Errno {
	if h, ok := f.(*fileHandle); ok && h.write {
		return h.truncate(size)
	}
	st, err := c.Stat(ctx, p)
	if err != nil {
		return n.m.errno("truncate", p, err)
	}
	if st.IsDir {
		return syscall.EISDIR
	}
	if end, ok := n.m.writtenSize(st.FileID); ok {
		if size == end {
			return 0
		}
		n.m.log.Warn("dfs mount: truncate refused: the file is being written through another descriptor", "path", p, "size", size)
		return syscall.EBUSY
	}
	switch {
	case size == st.Length:
		return 0
	case size != 0:
		n.m.log.Warn("dfs mount: truncate refused: dfs files can only be truncated to 0 (re-created) or to their size",
			"path", p, "size", size, "length", st.Length)
		return syscall.EOPNOTSUPP
	}
	o := n.m.createOpts
	o.Perm, o.Overwrite = st.Permission, true
	w, err := c.Create(ctx, p, o)
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		return n.m.errno("truncate", p, err)
	}
	return n.keepNullPerm(ctx, c, p, st.Permission)
}

// keepNullPerm sets permission 000 when it was asked for: the client
// takes 0 for "the default".
func (n *node) keepNullPerm(ctx context.Context, c *client.Client, p string, want hdfs.FsPermission) syscall.Errno {
	if want != 0 {
		return 0
	}
	if err := c.SetPermission(ctx, p, 0); err != nil {
		return n.m.errno("chmod", p, err)
	}
	return 0
}

// Mkdir creates the directory name (its parent must exist): Mkdirs
// without parents.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	p, errno := n.childPath(name)
	if errno != 0 {
		return nil, errno
	}
	c := n.m.clientFor(ctx)
	octx, done := n.m.opContext(ctx)
	defer done()
	if err := c.Mkdirs(octx, p, perm(mode), false); err != nil {
		return nil, n.m.errno("mkdir", p, err)
	}
	if errno := n.keepNullPerm(octx, c, p, perm(mode)); errno != 0 {
		return nil, errno
	}
	st, err := c.Stat(octx, p)
	if err != nil {
		return nil, n.m.errno("mkdir", p, err)
	}
	return n.m.newChild(ctx, n, st, &out.Attr), 0
}

// Rmdir removes the empty directory name: a non-recursive Delete.
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	return n.remove(ctx, "rmdir", name)
}

// Unlink removes the file name: a non-recursive Delete.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	return n.remove(ctx, "unlink", name)
}

func (n *node) remove(ctx context.Context, op, name string) syscall.Errno {
	p, errno := n.childPath(name)
	if errno != 0 {
		return errno
	}
	octx, done := n.m.opContext(ctx)
	defer done()
	deleted, err := n.m.clientFor(ctx).Delete(octx, p, false)
	if err != nil {
		return n.m.errno(op, p, err)
	}
	if !deleted {
		return syscall.ENOENT
	}
	return 0
}

// Rename moves name to newName in newParent: Rename2, replacing an
// existing destination unless RENAME_NOREPLACE. RENAME_EXCHANGE has no
// HDFS counterpart: EINVAL.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if flags&fs.RENAME_EXCHANGE != 0 || flags&^(fs.RENAME_EXCHANGE|renameNoReplace) != 0 {
		return syscall.EINVAL
	}
	src, errno := n.childPath(name)
	if errno != 0 {
		return errno
	}
	np, ok := newParent.(*node)
	if !ok { // every directory of the mount is a node
		return syscall.EINVAL
	}
	dst, errno := np.childPath(newName)
	if errno != 0 {
		return errno
	}
	octx, done := n.m.opContext(ctx)
	defer done()
	err := n.m.clientFor(ctx).Rename2(octx, src, dst, flags&renameNoReplace == 0)
	if err == nil {
		return 0
	}
	srcIsDir := false
	if ch := n.GetChild(name); ch != nil {
		srcIsDir = ch.IsDir()
	}
	errno, usual := renameErrnoOf(err, srcIsDir)
	if !usual {
		n.m.logFailure("rename", src+" -> "+dst, errno, err)
	}
	return errno
}

// readWhileWriting is why a handle that writes refuses reads.
const readWhileWriting = "opened O_RDWR to write: a dfs file being written cannot be read through the same descriptor " +
	"(open it again to read what was written before)"

// renameNoReplace is renameat2's RENAME_NOREPLACE.
const renameNoReplace = 0x1

// Create creates and opens the file name: client.Create (overwriting with
// O_TRUNC).
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	p, errno := n.childPath(name)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	c := n.m.clientFor(ctx)
	h := n.m.newFileHandle(c, p, nil)
	h.write, h.appendMode = true, flags&syscall.O_APPEND != 0
	if flags&syscall.O_ACCMODE == syscall.O_RDWR {
		h.noRead = readWhileWriting
	}
	o := n.m.createOpts
	o.Perm, o.Overwrite = perm(mode), flags&syscall.O_TRUNC != 0
	st, errno := h.create(o)
	if errno == syscall.EEXIST && flags&syscall.O_EXCL == 0 {
		// Another client created it since the kernel's lookup: open it,
		// as open(2) without O_EXCL does.
		h.release()
		return n.openCreated(ctx, c, p, flags, out)
	}
	if errno != 0 {
		h.release()
		return nil, nil, 0, errno
	}
	if o.Perm == 0 {
		octx, done := n.m.opContext(ctx)
		errno := n.keepNullPerm(octx, c, p, 0)
		done()
		if errno != 0 {
			h.release()
			return nil, nil, 0, errno
		}
		st.Permission = 0
	}
	ch := n.m.newChild(ctx, n, st, &out.Attr)
	h.setNode(ch)
	return ch, h, 0, 0
}

// openCreated answers a create whose file appeared meanwhile: the
// existing file, opened with flags.
func (n *node) openCreated(ctx context.Context, c *client.Client, p string, flags uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	octx, done := n.m.opContext(ctx)
	st, err := c.Stat(octx, p)
	done()
	switch {
	case err != nil:
		return nil, nil, 0, n.m.errno("create", p, err)
	case st.IsDir:
		return nil, nil, 0, syscall.EISDIR
	}
	h, errno := n.m.openFile(ctx, c, p, nil, flags)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	ch := n.m.newChild(ctx, n, st, &out.Attr)
	h.setNode(ch)
	return ch, h, 0, 0
}

// Open opens the file for reading or writing (see "Writing" in the
// package documentation).
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	p, errno := n.path()
	if errno != 0 {
		return nil, 0, errno
	}
	h, errno := n.m.openFile(ctx, n.m.clientFor(ctx), p, n, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return h, 0, 0
}

// openFile returns a handle of the existing file p (of node nd, nil when
// not known yet) opened with flags.
func (m *Mount) openFile(ctx context.Context, c *client.Client, p string, nd *node, flags uint32) (*fileHandle, syscall.Errno) {
	h := m.newFileHandle(c, p, nd)
	acc := flags & syscall.O_ACCMODE
	trunc, app := flags&syscall.O_TRUNC != 0, flags&syscall.O_APPEND != 0
	switch {
	case acc == syscall.O_RDONLY:
		h.read = true
	case acc == syscall.O_RDWR && !trunc && !app:
		h.read = true
		h.noWrite = "opened O_RDWR without O_TRUNC or O_APPEND: an existing dfs file cannot be changed in place " +
			"(open it O_WRONLY|O_APPEND to append, or with O_TRUNC to rewrite it)"
	default:
		h.write, h.appendMode = true, app
		if acc == syscall.O_RDWR {
			h.noRead = readWhileWriting
		}
		if errno := h.openForWrite(ctx, trunc, app); errno != 0 {
			h.release()
			return nil, errno
		}
	}
	return h, 0
}

// OpendirHandle opens the directory for listing: the first page is asked
// for at once, so that opendir(3) reports a missing directory or a denied
// listing.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	p, errno := n.path()
	if errno != 0 {
		return nil, 0, errno
	}
	d := n.m.newDirHandle(n, n.m.clientFor(ctx), p)
	if errno := d.open(); errno != 0 {
		d.Releasedir(ctx, 0)
		return nil, 0, errno
	}
	return d, 0, 0
}

// Statfs answers statfs from client.FsStats: the live datanodes' capacity
// and free space in 4 KiB blocks, the files and directories as used
// inodes.
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	octx, done := n.m.opContext(ctx)
	defer done()
	st, err := n.m.statfs(octx, n.m.clientFor(ctx))
	if err != nil {
		return n.m.errno("statfs", "/", err)
	}
	out.Bsize, out.Frsize = statBlockSize, statBlockSize
	out.Blocks = uint64(max(st.Capacity, 0)) / statBlockSize
	out.Bfree = uint64(max(st.Remaining, 0)) / statBlockSize
	out.Bavail = out.Bfree
	out.Files = uint64(max(st.Files+st.Dirs, 0)) + freeInodes
	out.Ffree = freeInodes
	out.NameLen = maxNameLen
	return 0
}

// Access always allows: the namenode checks each operation as the caller,
// with HDFS's groups, which the local system does not know (fuse_dfs does
// the same).
func (n *node) Access(ctx context.Context, mask uint32) syscall.Errno { return 0 }

// CopyFileRange is not supported: ENOSYS makes the kernel (and cp) fall
// back to reads and writes, which follow the writing rules.
func (n *node) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle,
	offOut uint64, length uint64, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOSYS
}
