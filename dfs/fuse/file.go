package dfsfuse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/kura-dev/kura/dfs/client"
)

// fileHandle is an open file: a client.Reader for reading, or a
// client.Writer for writing (see "Writing" in the package documentation).
// Its operations are serialized.
type fileHandle struct {
	m    *Mount
	c    *client.Client // the opener's view
	path string         // the path it was opened with
	// node is the file's node (nil until known: a create's handle is made
	// before its node), whose place in go-fuse's inode tree follows the
	// renames made through the mount: see pathNow. Guarded by mu.
	node *node

	// What the handle may do, and why not when refused (logged once).
	read, write     bool
	appendMode      bool // O_APPEND: every write goes to the end
	noRead, noWrite string

	mu sync.Mutex
	// ctx is the context r and w were made with (the client keeps it for
	// all their calls); a watchdog that fires ends it and a new one is made.
	ctx    context.Context
	cancel context.CancelFunc
	r      *client.Reader
	w      *client.Writer
	id     int64 // the file id of the file w writes
	// end is where the next write must start: the file's length as this
	// handle knows it (read without mu by getattr, hence atomic).
	end    atomic.Int64
	broken error // a write that timed out: the writer was lost
	shut   bool  // released, or closed by Unmount
	warned bool  // a refusal was logged
}

var (
	_ fs.FileReader   = (*fileHandle)(nil)
	_ fs.FileWriter   = (*fileHandle)(nil)
	_ fs.FileFlusher  = (*fileHandle)(nil)
	_ fs.FileFsyncer  = (*fileHandle)(nil)
	_ fs.FileReleaser = (*fileHandle)(nil)
)

// newFileHandle returns a handle of path (the file of nd; nil: not known
// yet, see setNode) calling through c, tracked for Unmount.
func (m *Mount) newFileHandle(c *client.Client, path string, nd *node) *fileHandle {
	h := &fileHandle{m: m, c: c, path: path, node: nd}
	h.ctx, h.cancel = m.handleContext()
	m.track(h)
	return h
}

// setNode tells the handle its file's node, once made.
func (h *fileHandle) setNode(in *fs.Inode) {
	nd, isNode := in.Operations().(*node)
	if !isNode {
		return
	}
	h.mu.Lock()
	h.node = nd
	h.mu.Unlock()
}

// pathNow returns the file's path now: the handle's writer addresses the
// file by its id and follows any rename, but a reader, an append and a
// re-create go by path, which is the node's (following the renames made
// through the mount; the opening path until the node is known). A file
// deleted or replaced since it was opened has none: ENOENT. Called with
// mu held.
func (h *fileHandle) pathNow() (string, syscall.Errno) {
	if h.node == nil {
		return h.path, 0
	}
	return h.node.path()
}

// name is the file's path for messages: its path now, else the opening
// one. Called with mu held.
func (h *fileHandle) name() string {
	if p, errno := h.pathNow(); errno == 0 {
		return p
	}
	return h.path
}

// bounded runs fn, which calls through h.ctx, under a watchdog of d. When
// the watchdog fires, h.ctx is ended (so fn returns), the reader and
// writer made with it are dropped, and the error is a timeout.
// Called with h.mu held.
func (h *fileHandle) bounded(d time.Duration, fn func() error) error {
	stop := watch(d, h.cancel)
	err := fn()
	if stop() {
		return err
	}
	h.ctx, h.cancel = h.m.handleContext()
	h.r = nil
	if h.w != nil {
		h.w.Abort()
		h.dropWriter()
		h.broken = fmt.Errorf("%s: a write timed out after %v; the file was left open for lease recovery", h.name(), d)
	}
	return fmt.Errorf("%w after %v (%v)", context.DeadlineExceeded, d, err)
}

// fail maps the error of op to its errno, logging the unusual ones.
func (h *fileHandle) fail(op string, err error) syscall.Errno {
	return h.m.errno(op, h.name(), err)
}

// refuse logs, once per handle, why an operation gets EOPNOTSUPP.
func (h *fileHandle) refuse(why string) syscall.Errno {
	if !h.warned {
		h.warned = true
		h.m.log.Warn("dfs mount: operation refused (EOPNOTSUPP)", "path", h.name(), "why", why)
	}
	return syscall.EOPNOTSUPP
}

// setWriter makes w the handle's writer, of the file id, at end.
func (h *fileHandle) setWriter(w *client.Writer, id, end int64) {
	h.w, h.id = w, id
	h.end.Store(end)
	h.m.setWriter(id, h, true)
}

// dropWriter forgets the writer (closed or lost).
func (h *fileHandle) dropWriter() {
	h.m.setWriter(h.id, h, false)
	h.w = nil
}

// create creates the file with o and makes its writer the handle's.
func (h *fileHandle) create(o client.CreateOptions) (*client.FileStatus, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.createLocked(o)
}

func (h *fileHandle) createLocked(o client.CreateOptions) (*client.FileStatus, syscall.Errno) {
	p, errno := h.pathNow()
	if errno != 0 {
		return nil, errno
	}
	var w *client.Writer
	err := h.bounded(h.m.opTimeout, func() (err error) {
		w, err = h.c.Create(h.ctx, p, o)
		return err
	})
	if err != nil {
		return nil, h.fail("create", err)
	}
	st := w.Status()
	h.setWriter(w, st.FileID, 0)
	return st, 0
}

// appendLocked opens the file for appending; the handle's end becomes
// its length.
func (h *fileHandle) appendLocked() syscall.Errno {
	p, errno := h.pathNow()
	if errno != 0 {
		return errno
	}
	var w *client.Writer
	err := h.bounded(h.m.opTimeout, func() (err error) {
		w, err = h.c.Append(h.ctx, p)
		return err
	})
	if err != nil {
		return h.fail("append", err)
	}
	st := w.Status()
	h.setWriter(w, st.FileID, st.Length)
	return 0
}

// openForWrite prepares a handle opened for writing: O_TRUNC re-creates
// the file (keeping its permission), O_APPEND appends at once, else the
// first write will (the handle's end is the file's length).
func (h *fileHandle) openForWrite(ctx context.Context, trunc, app bool) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	if app && !trunc {
		return h.appendLocked()
	}
	p, errno := h.pathNow()
	if errno != 0 {
		return errno
	}
	octx, done := h.m.opContext(ctx)
	defer done()
	st, err := h.c.Stat(octx, p)
	if err != nil {
		return h.fail("open", err)
	}
	if st.IsDir {
		return syscall.EISDIR
	}
	if !trunc {
		h.id = st.FileID
		h.end.Store(st.Length)
		return 0
	}
	o := h.m.createOpts
	o.Perm, o.Overwrite = st.Permission, true
	if _, errno := h.createLocked(o); errno != 0 {
		return errno
	}
	if st.Permission == 0 {
		if err := h.c.SetPermission(octx, p, 0); err != nil {
			return h.fail("open", err)
		}
	}
	return 0
}

// Write writes data at off, which must be the handle's end (with
// O_APPEND, off is ignored: data goes to the end).
func (h *fileHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.shut:
		return 0, syscall.EIO
	case !h.write:
		return 0, h.refuse(h.noWrite)
	case h.broken != nil:
		return 0, h.fail("write", h.broken)
	}
	end := h.end.Load()
	if !h.appendMode && off != end {
		return 0, h.refuse(fmt.Sprintf("write at offset %d, but the handle's end is %d: dfs files are written sequentially, once, then appended to", off, end))
	}
	if h.w == nil {
		if errno := h.appendLocked(); errno != 0 {
			return 0, errno
		}
		if now := h.end.Load(); !h.appendMode && now != end {
			h.closeWriterLocked("write")
			h.end.Store(now)
			return 0, h.refuse(fmt.Sprintf("write at offset %d, but the file has grown to %d since it was opened", off, now))
		}
	}
	var n int
	err := h.bounded(h.m.opTimeout, func() (err error) {
		n, err = h.w.Write(data)
		return err
	})
	h.end.Add(int64(n))
	if err != nil {
		return uint32(n), h.fail("write", err)
	}
	return uint32(n), 0
}

// Read reads at off through a client.Reader opened at the first read (and
// again when off is past the length it saw: the file may have grown).
func (h *fileHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.shut:
		return nil, syscall.EIO
	case !h.read:
		return nil, h.refuse(h.noRead)
	}
	if h.r == nil || off >= h.r.Size() {
		p, errno := h.pathNow()
		if errno != 0 {
			return nil, errno
		}
		err := h.bounded(h.m.opTimeout, func() (err error) {
			h.r, err = h.c.Open(h.ctx, p)
			return err
		})
		if err != nil {
			h.r = nil
			return nil, h.fail("open", err)
		}
	}
	if _, err := h.r.Seek(off, io.SeekStart); err != nil {
		return nil, syscall.EINVAL
	}
	n := 0
	err := h.bounded(h.m.opTimeout, func() error {
		for n < len(dest) {
			k, err := h.r.Read(dest[n:])
			n += k
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		h.r = nil // the next read starts afresh
		return nil, h.fail("read", err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// truncate answers ftruncate(2) on a handle open for writing: to its end
// it does nothing, to 0 it re-creates the file (completing what the
// handle wrote first), else EOPNOTSUPP.
func (h *fileHandle) truncate(size int64) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shut {
		return syscall.EIO
	}
	if size == h.end.Load() {
		return 0
	}
	if size != 0 {
		return h.refuse(fmt.Sprintf("truncate to %d: dfs files can only be truncated to 0 (re-created) or to their size (%d)", size, h.end.Load()))
	}
	if h.w != nil {
		if errno := h.closeWriterLocked("truncate"); errno != 0 {
			return errno
		}
	}
	p, errno := h.pathNow()
	if errno != 0 {
		return errno
	}
	var st *client.FileStatus
	err := h.bounded(h.m.opTimeout, func() (err error) {
		st, err = h.c.Stat(h.ctx, p)
		return err
	})
	if err != nil {
		return h.fail("truncate", err)
	}
	o := h.m.createOpts
	o.Perm, o.Overwrite = st.Permission, true
	if _, errno := h.createLocked(o); errno != 0 {
		return errno
	}
	h.broken = nil
	return 0
}

// Flush completes the file written through the handle (every close(2)
// of a descriptor of it), so that close(2) reports a failure.
func (h *fileHandle) Flush(ctx context.Context) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.w == nil {
		return 0
	}
	return h.closeWriterLocked("close")
}

// closeWriterLocked completes the file (Writer.Close).
func (h *fileHandle) closeWriterLocked(op string) syscall.Errno {
	w := h.w
	h.dropWriter()
	if err := h.bounded(h.m.closeTimeout, w.Close); err != nil {
		return h.fail(op, err)
	}
	return 0
}

// Fsync makes what was written readable by others (Writer.Hflush).
func (h *fileHandle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.w == nil {
		return 0
	}
	octx, done := h.m.opContext(ctx)
	defer done()
	if err := h.w.Hflush(octx); err != nil {
		return h.fail("fsync", err)
	}
	return 0
}

// Release closes the handle, completing the file if a writer is still
// open.
func (h *fileHandle) Release(ctx context.Context) syscall.Errno {
	h.close("release")
	return 0
}

// shutdown closes the handle for Unmount.
func (h *fileHandle) shutdown() error {
	if errno := h.close("unmount"); errno != 0 {
		return fmt.Errorf("dfs mount: complete %s: %w", h.path, errno)
	}
	return nil
}

// release closes a handle that was never handed to the kernel.
func (h *fileHandle) release() { h.close("open") }

// close completes the file if a writer is still open and ends the
// handle; the errno is the completion's.
func (h *fileHandle) close(op string) syscall.Errno {
	h.mu.Lock()
	var errno syscall.Errno
	if h.w != nil {
		errno = h.closeWriterLocked(op)
	}
	h.r = nil
	h.shut = true
	h.cancel()
	h.mu.Unlock()
	h.m.untrack(h)
	return errno
}
