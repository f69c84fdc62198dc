package mount

import (
	"context"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/kura-dev/kura/ft/record"
)

// handle is a regular file open with write access whose writes kura
// intercepts. Everything but writing, flushing and releasing is the
// loopback file's. It deliberately does not implement
// fs.FilePassthroughFder: a passthrough handle's writes would bypass it.
type handle struct {
	lf   *fs.LoopbackFile
	fd   int // lf's descriptor, valid until Release
	m    *Mount
	path string // relative path at open
	rule Rule

	mu       sync.Mutex // serializes the splitter and keeps records in order
	split    record.Splitter
	recs     [][]byte // reused record slice
	pid, tid uint32   // writer of the pending partial line
	gather   []byte   // binary writev buffer
}

var (
	_ fs.FileReader    = (*handle)(nil)
	_ fs.FileWriter    = (*handle)(nil)
	_ fs.FileWritever  = (*handle)(nil)
	_ fs.FileFlusher   = (*handle)(nil)
	_ fs.FileFsyncer   = (*handle)(nil)
	_ fs.FileReleaser  = (*handle)(nil)
	_ fs.FileGetattrer = (*handle)(nil)
	_ fs.FileSetattrer = (*handle)(nil)
	_ fs.FileStatxer   = (*handle)(nil)
	_ fs.FileLseeker   = (*handle)(nil)
	_ fs.FileAllocater = (*handle)(nil)
	_ fs.FileGetlker   = (*handle)(nil)
	_ fs.FileSetlker   = (*handle)(nil)
	_ fs.FileSetlkwer  = (*handle)(nil)
	_ fs.FileIoctler   = (*handle)(nil)
)

// newHandle looks up the rule for rel and wraps lf accordingly. With
// setAppend, O_APPEND is put back on the descriptor (the loopback's Open
// strips it).
func (m *Mount) newHandle(lf *fs.LoopbackFile, rel string, setAppend bool) (fs.FileHandle, syscall.Errno) {
	fd, ok := lf.PassthroughFd()
	if !ok {
		return nil, syscall.EBADF
	}
	if setAppend {
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err == nil {
			_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl|unix.O_APPEND)
		}
		if err != nil {
			return nil, fs.ToErrno(err)
		}
	}
	rule := m.rules(rel)
	if !rule.Transfer && rule.KeepLocal {
		return lf, 0
	}
	h := &handle{
		lf:    lf,
		fd:    fd,
		m:     m,
		path:  rel,
		rule:  rule,
		split: record.Splitter{Binary: rule.Binary, MaxLine: rule.MaxLine, OverLong: rule.OverLong},
	}
	if h.partials() {
		m.register(h)
	}
	return h, 0
}

// partials says whether the handle can hold a partial line.
func (h *handle) partials() bool { return h.rule.Transfer && !h.rule.Binary }

// callerTid is the FUSE request's pid field: the writer's thread id.
func callerTid(ctx context.Context) uint32 {
	if c, ok := ctx.(*fuse.Context); ok {
		return c.Caller.Pid
	}
	if c, ok := fuse.FromContext(ctx); ok {
		return c.Pid
	}
	return 0
}

// Write writes data to the real file (KeepLocal), then ships its records
// (Transfer). The local write's result or error goes back as it is; a
// failed Emit fails the write with EIO.
func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	now := time.Now().UnixNano()
	n := len(data)
	if h.rule.KeepLocal {
		var err error
		for {
			n, err = unix.Pwrite(h.fd, data, off)
			if err != unix.EINTR {
				break
			}
		}
		if err != nil {
			return 0, fs.ToErrno(err)
		}
	}
	if h.rule.Transfer && n > 0 {
		if errno := h.ship(ctx, now, data[:n], nil, n); errno != 0 {
			return 0, errno
		}
	}
	return uint32(n), 0
}

// Writev is Write for data in several pieces.
func (h *handle) Writev(ctx context.Context, data [][]byte, off int64) (uint32, syscall.Errno) {
	now := time.Now().UnixNano()
	n := 0
	for _, d := range data {
		n += len(d)
	}
	if h.rule.KeepLocal {
		var err error
		for {
			n, err = unix.Pwritev(h.fd, data, off)
			if err != unix.EINTR {
				break
			}
		}
		if err != nil {
			return 0, fs.ToErrno(err)
		}
	}
	if h.rule.Transfer && n > 0 {
		if errno := h.ship(ctx, now, nil, data, n); errno != 0 {
			return 0, errno
		}
	}
	return uint32(n), 0
}

// ship feeds the first n written bytes (data, or the pieces iov) to the
// splitter and emits the records they complete. now is when the write came.
func (h *handle) ship(ctx context.Context, now int64, data []byte, iov [][]byte, n int) syscall.Errno {
	m := h.m
	tid := callerTid(ctx)
	pid := m.tgids.get(tid, now)

	h.mu.Lock()
	split, dropped := h.split.Split, h.split.Dropped
	recs := h.recs[:0]
	switch {
	case iov == nil:
		recs = h.split.Write(data, recs)
	case h.rule.Binary: // one write, one message
		g := h.gather[:0]
		for _, d := range iov {
			g = append(g, d[:min(len(d), n-len(g))]...)
		}
		h.gather = g
		recs = h.split.Write(g, recs)
	default:
		left := n
		for _, d := range iov {
			d = d[:min(len(d), left)]
			recs = h.split.Write(d, recs)
			if left -= len(d); left == 0 {
				break
			}
		}
	}
	if h.split.Pending() > 0 {
		h.pid, h.tid = pid, tid
	}
	m.writes.Add(1)
	m.bytes.Add(uint64(n))
	if d := h.split.Split - split; d != 0 {
		m.split.Add(d)
	}
	if d := h.split.Dropped - dropped; d != 0 {
		m.dropped.Add(d)
	}
	var err error
	if len(recs) > 0 {
		err = m.emit(Write{Path: h.path, PID: pid, TID: tid, Time: now, Binary: h.rule.Binary, Records: recs})
	}
	clear(recs)
	h.recs = recs[:0]
	h.mu.Unlock()
	if err != nil {
		return syscall.EIO
	}
	return 0
}

// flushPartial emits the pending partial line, if any, as the record of
// the writer who wrote it.
func (h *handle) flushPartial() syscall.Errno {
	if !h.partials() {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	recs := h.split.Flush(h.recs[:0])
	if len(recs) == 0 {
		return 0
	}
	err := h.m.emit(Write{Path: h.path, PID: h.pid, TID: h.tid, Time: time.Now().UnixNano(), Records: recs})
	clear(recs)
	h.recs = recs[:0]
	if err != nil {
		return syscall.EIO
	}
	return 0
}

// Flush (every close(2) of a descriptor) emits the partial line.
func (h *handle) Flush(ctx context.Context) syscall.Errno {
	errno := h.flushPartial()
	if e := h.lf.Flush(ctx); errno == 0 {
		errno = e
	}
	return errno
}

// Fsync emits the partial line and syncs the file.
func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	errno := h.flushPartial()
	if e := h.lf.Fsync(ctx, flags); errno == 0 {
		errno = e
	}
	return errno
}

// Release emits what is left of a partial line and closes the file.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.flushPartial()
	if h.partials() {
		h.m.unregister(h)
	}
	return h.lf.Release(ctx)
}

// The rest is the loopback file's.

func (h *handle) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return h.lf.Read(ctx, buf, off)
}

func (h *handle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return h.lf.Getattr(ctx, out)
}

func (h *handle) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return h.lf.Setattr(ctx, in, out)
}

func (h *handle) Statx(ctx context.Context, flags uint32, mask uint32, out *fuse.StatxOut) syscall.Errno {
	return h.lf.Statx(ctx, flags, mask, out)
}

func (h *handle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	return h.lf.Lseek(ctx, off, whence)
}

func (h *handle) Allocate(ctx context.Context, off uint64, size uint64, mode uint32) syscall.Errno {
	return h.lf.Allocate(ctx, off, size, mode)
}

func (h *handle) Getlk(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32, out *fuse.FileLock) syscall.Errno {
	return h.lf.Getlk(ctx, owner, lk, flags, out)
}

func (h *handle) Setlk(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	return h.lf.Setlk(ctx, owner, lk, flags)
}

func (h *handle) Setlkw(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	return h.lf.Setlkw(ctx, owner, lk, flags)
}

func (h *handle) Ioctl(ctx context.Context, cmd uint32, arg uint64, input []byte, output []byte) (int32, syscall.Errno) {
	return h.lf.Ioctl(ctx, cmd, arg, input, output)
}
