package dfsfuse

import (
	"context"
	"iter"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/kura-dev/kura/dfs/client"
)

// dirHandle is an open directory: a client.ListIter pulled an entry at a
// time, so that a directory of any size is listed a page at a time. With
// READDIRPLUS the kernel also gets each entry's attributes, taken from the
// listing (FileLookuper), not from a Stat per entry.
type dirHandle struct {
	m    *Mount
	n    *node
	c    *client.Client
	path string

	mu     sync.Mutex
	ctx    context.Context // the listing's: ListIter keeps it for every page
	cancel context.CancelFunc
	next   func() (*client.FileStatus, error, bool)
	stop   func()
	peeked bool // the entry below was pulled and not handed out yet
	peek   *client.FileStatus
	pos    uint64             // entries handed out, "." and ".." included
	last   *client.FileStatus // the last entry handed out, for Lookup
	shut   bool
}

var (
	_ fs.FileReaddirenter = (*dirHandle)(nil)
	_ fs.FileLookuper     = (*dirHandle)(nil)
	_ fs.FileSeekdirer    = (*dirHandle)(nil)
	_ fs.FileReleasedirer = (*dirHandle)(nil)
	_ fs.FileFsyncdirer   = (*dirHandle)(nil)
)

// newDirHandle returns a listing of directory n at path, tracked for
// Unmount.
func (m *Mount) newDirHandle(n *node, c *client.Client, path string) *dirHandle {
	d := &dirHandle{m: m, n: n, c: c, path: path}
	m.track(d)
	return d
}

// open starts the listing and pulls its first entry, so that errors of
// the directory itself come at opendir.
func (d *dirHandle) open() syscall.Errno {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.restart()
	st, errno, ok := d.pull()
	if errno != 0 {
		return errno
	}
	d.peeked, d.peek = ok, st
	return 0
}

// restart starts the listing afresh. Called with d.mu held.
func (d *dirHandle) restart() {
	d.end()
	d.ctx, d.cancel = d.m.handleContext()
	var opts []client.ListOption
	if d.m.pageSize > 0 {
		opts = append(opts, client.WithPageSize(d.m.pageSize))
	}
	d.next, d.stop = iter.Pull2(d.c.ListIter(d.ctx, d.path, opts...))
	d.peeked, d.peek, d.pos, d.last = false, nil, 0, nil
}

// end stops the listing's iterator. Called with d.mu held.
func (d *dirHandle) end() {
	if d.stop != nil {
		d.stop()
		d.cancel()
		d.next, d.stop = nil, nil
	}
}

// pull returns the listing's next entry (ok false at the end), fetching a
// page when needed under the operation timeout. Called with d.mu held.
func (d *dirHandle) pull() (*client.FileStatus, syscall.Errno, bool) {
	if d.peeked {
		d.peeked = false
		return d.peek, 0, true
	}
	if d.next == nil {
		return nil, 0, false
	}
	stop := watch(d.m.opTimeout, d.cancel)
	st, err, ok := d.next()
	inTime := stop()
	if !ok {
		d.end()
		return nil, 0, false
	}
	if err != nil {
		d.end()
		if !inTime {
			d.m.logFailure("readdir", d.path, syscall.ETIMEDOUT, err)
			return nil, syscall.ETIMEDOUT, false
		}
		return nil, d.m.errno("readdir", d.path, err), false
	}
	return st, 0, true
}

// advance returns the next directory entry: ".", "..", then the listing.
// Called with d.mu held.
func (d *dirHandle) advance() (*fuse.DirEntry, syscall.Errno) {
	if d.shut {
		return nil, syscall.EBADF
	}
	var e fuse.DirEntry
	switch d.pos {
	case 0:
		e = fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: d.n.StableAttr().Ino}
	case 1:
		e = fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: d.n.StableAttr().Ino}
		if _, parent := d.n.Parent(); parent != nil {
			e.Ino = parent.StableAttr().Ino
		}
	default:
		st, errno, ok := d.pull()
		if errno != 0 || !ok {
			return nil, errno
		}
		d.last = st
		e = fuse.DirEntry{Name: st.Name, Mode: typeBits(st), Ino: uint64(st.FileID)}
	}
	d.pos++
	e.Off = d.pos
	return &e, 0
}

// Readdirent returns the next entry (nil at the end).
func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.advance()
}

// Seekdir moves to the entry after offset off: rewinddir(3) (0) starts
// the listing again; another offset lists again and skips to it.
func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.shut {
		return syscall.EBADF
	}
	if off == d.pos {
		return 0
	}
	d.restart()
	for d.pos < off {
		e, errno := d.advance()
		if errno != 0 {
			return errno
		}
		if e == nil {
			break
		}
	}
	return 0
}

// Lookup gives READDIRPLUS the entry just listed, with the attributes of
// the listing; for another name it looks up as usual.
func (d *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	d.mu.Lock()
	st := d.last
	d.mu.Unlock()
	if st != nil && st.Name == name {
		return d.m.newChild(ctx, d.n, st, &out.Attr), 0
	}
	return d.n.Lookup(ctx, name, out)
}

// Fsyncdir succeeds: every namespace change is durable at the namenode
// once its call returned.
func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno { return 0 }

// Releasedir stops the listing.
func (d *dirHandle) Releasedir(ctx context.Context, releaseFlags uint32) {
	d.shutdown()
}

// shutdown stops the listing for good (Releasedir, Unmount).
func (d *dirHandle) shutdown() error {
	d.mu.Lock()
	d.end()
	d.shut = true
	d.mu.Unlock()
	d.m.untrack(d)
	return nil
}
