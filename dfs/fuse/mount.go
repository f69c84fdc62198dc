package dfsfuse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/kura-dev/kura/dfs/client"
)

// Defaults of Options and of `kura dfs mount`.
const (
	// DefaultEntryTimeout and DefaultAttrTimeout are JuiceFS's (and
	// libfuse's) 1 s.
	DefaultEntryTimeout = time.Second
	DefaultAttrTimeout  = time.Second
	// DefaultOpTimeout bounds one request's namenode and datanode calls.
	DefaultOpTimeout = time.Minute
)

// Mount parameters.
const (
	fsName   = "kura-dfs" // the source column of /proc/mounts
	fsType   = "kura-dfs" // shows as "fuse.kura-dfs"
	maxWrite = 1 << 20
	// statBlockSize is the block size statfs and st_blocks count in.
	statBlockSize = 4096
	// ioBlockSize is st_blksize, the I/O size programs are advised to use.
	ioBlockSize = maxWrite
	// statfsCacheFor is how long a statfs answer is reused: the namenode
	// walks the whole namespace for the counts.
	statfsCacheFor = 2 * time.Second
	// freeInodes is what statfs reports as free inodes (HDFS has no
	// inode table to fill, only quotas).
	freeInodes = 1 << 32
	// maxNameLen is HDFS's default dfs.namenode.fs-limits.max-component-length.
	maxNameLen = 255
	// startupTimeout bounds New's first call to the namenodes.
	startupTimeout = 15 * time.Second
)

// Options configure a Mount.
type Options struct {
	// Client is the dfs client the mount calls through (required). The
	// mount makes per-user views of it (client.As) and does not close it.
	Client *client.Client
	// Mountpoint is the directory to mount on (required; it must exist).
	Mountpoint string
	// User, when set, is the user every request runs as; when empty each
	// request runs as the local user of the calling process.
	User string
	// EntryTimeout is how long the kernel caches a name's lookup, and
	// AttrTimeout its attributes (0: not cached; DefaultEntryTimeout and
	// DefaultAttrTimeout are the usual values). Failed lookups are never
	// cached.
	EntryTimeout, AttrTimeout time.Duration
	// OpTimeout bounds each request's calls (DefaultOpTimeout when 0).
	OpTimeout time.Duration
	// BlockSize and Replication apply to files created through the mount
	// (0: the namenode's defaults).
	BlockSize   int64
	Replication int
	// ListPageSize is how many entries a directory listing asks the
	// namenode for at a time (0: the namenode's limit, 1000 by default).
	ListPageSize int
	// AllowOther lets other local users use the mount (allow_other).
	AllowOther bool
	// Logger receives the mount's warnings (slog.Default() when nil).
	Logger *slog.Logger
	// Debug logs every FUSE request (go-fuse's debug output, at info level).
	Debug bool
}

// Mount is a mounted dfs namespace.
type Mount struct {
	dir          string // absolute mount point
	client       *client.Client
	fixed        *client.Client // the view for Options.User, nil without
	opTimeout    time.Duration
	closeTimeout time.Duration // a writer's Close: its last block and Complete
	createOpts   client.CreateOptions
	pageSize     int
	log          *slog.Logger
	ids          *idMapper
	root         *node

	server *fuse.Server
	done   chan struct{} // closed when serving ends

	// ctx ends with Unmount: every call the mount makes ends with it.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	open    map[handle]struct{}   // open file and directory handles
	writers map[int64]*fileHandle // handles writing, by file id

	statfsMu  sync.Mutex
	statfsAt  time.Time
	statfsVal *client.FsStats

	umu        sync.Mutex
	unmounted  bool
	unmountErr error

	lastErrLog atomic.Int64 // unix ns of the last logged failure
	suppressed atomic.Int64 // failures not logged since
}

// handle is an open file or directory handle, closed by Unmount.
type handle interface {
	// shutdown closes the handle for good; the error is a file that
	// could not be completed.
	shutdown() error
}

// New mounts the dfs namespace on opts.Mountpoint and starts serving it.
// It fails, naming what was wrong, when the mount point is missing or not
// a directory, when the namenodes do not answer a stat of "/" (within ctx
// and 15 s), or when the kernel refuses the mount.
func New(ctx context.Context, opts Options) (*Mount, error) {
	if opts.Client == nil {
		return nil, errors.New("dfs mount: no client")
	}
	if opts.Mountpoint == "" {
		return nil, errors.New("dfs mount: no mount point")
	}
	dir, err := filepath.Abs(opts.Mountpoint)
	if err != nil {
		return nil, fmt.Errorf("dfs mount: mount point %s: %w", opts.Mountpoint, err)
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("dfs mount: mount point %s does not exist (create the directory first)", dir)
	case err != nil:
		return nil, fmt.Errorf("dfs mount: mount point %s: %w", dir, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("dfs mount: mount point %s is not a directory", dir)
	}
	if opts.OpTimeout <= 0 {
		opts.OpTimeout = DefaultOpTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m := &Mount{
		dir:          dir,
		client:       opts.Client,
		opTimeout:    opts.OpTimeout,
		closeTimeout: 2*opts.OpTimeout + time.Minute,
		createOpts:   client.CreateOptions{BlockSize: opts.BlockSize, Replication: opts.Replication},
		pageSize:     opts.ListPageSize,
		log:          opts.Logger,
		ids:          newIDMapper(),
		done:         make(chan struct{}),
		open:         make(map[handle]struct{}),
		writers:      make(map[int64]*fileHandle),
	}
	if opts.User != "" {
		m.fixed = opts.Client.As(opts.User)
	}

	// The namenodes must answer before anything is mounted.
	sctx, scancel := context.WithTimeout(ctx, startupTimeout)
	c := m.fixed
	if c == nil {
		c = opts.Client
	}
	rootSt, err := c.Stat(sctx, "/")
	scancel()
	if err != nil {
		return nil, fmt.Errorf("dfs mount: the namenodes do not answer (stat / as %s): %w", c.User(), err)
	}

	m.ctx, m.cancel = context.WithCancel(context.Background())
	root := &node{m: m}
	m.root = root
	entry, attr, negative := opts.EntryTimeout, opts.AttrTimeout, time.Duration(0)
	fopts := &fs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther:    opts.AllowOther,
			MaxWrite:      maxWrite,
			FsName:        fsName,
			Name:          fsType,
			Debug:         opts.Debug,
			DisableXAttrs: true,
			DirectMount:   true,
			// open(O_TRUNC) arrives as one OPEN with O_TRUNC (an
			// overwriting create) rather than OPEN and a SETATTR.
			ExtraCapabilities: fuse.CAP_ATOMIC_O_TRUNC,
			Logger:            slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		},
		EntryTimeout:    &entry,
		AttrTimeout:     &attr,
		NegativeTimeout: &negative,
		NullPermissions: true, // HDFS's 000 is 000
		RootStableAttr:  &fs.StableAttr{Ino: uint64(rootSt.FileID)},
		Logger:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
	}
	if opts.Debug {
		fopts.MountOptions.Logger = slog.NewLogLogger(m.log.Handler(), slog.LevelInfo)
	}
	server, err := fuse.NewServer(fs.NewNodeFS(root, fopts), dir, &fopts.MountOptions)
	if err != nil {
		m.cancel()
		return nil, fmt.Errorf("dfs mount: mount on %s: %w", dir, err)
	}
	m.server = server
	go func() {
		server.Serve()
		close(m.done)
	}()
	if err := server.WaitMount(); err != nil {
		unix.Unmount(dir, unix.MNT_DETACH)
		m.cancel()
		return nil, fmt.Errorf("dfs mount: mount on %s: %w", dir, err)
	}
	return m, nil
}

// Dir returns the mount point (absolute).
func (m *Mount) Dir() string { return m.dir }

// Done is closed when the file system is no longer served: after Unmount,
// or after an external umount once no file is open in it any more.
func (m *Mount) Done() <-chan struct{} { return m.done }

// Unmount completes the files open for writing through the mount, then
// unmounts it (detaching it lazily when files are still open in it:
// they then fail with EIO) and ends every call still running. It is
// idempotent; the error reports files that could not be completed and a
// failed unmount.
func (m *Mount) Unmount() error {
	m.umu.Lock()
	defer m.umu.Unlock()
	if m.unmounted {
		return m.unmountErr
	}
	m.unmounted = true

	m.mu.Lock()
	hs := make([]handle, 0, len(m.open))
	for h := range m.open {
		hs = append(hs, h)
	}
	m.mu.Unlock()
	var errs []error
	for _, h := range hs {
		errs = append(errs, h.shutdown())
	}
	errs = append(errs, m.unmount())
	m.cancel()
	m.unmountErr = errors.Join(errs...)
	return m.unmountErr
}

// unmount takes the mount away: at once when nothing is open in it, else
// lazily (MNT_DETACH).
func (m *Mount) unmount() error {
	select {
	case <-m.done: // unmounted from outside
		return nil
	default:
	}
	err := m.server.Unmount() // retries while busy, then waits for the serving loops
	if err == nil {
		return nil
	}
	if derr := unix.Unmount(m.dir, unix.MNT_DETACH); derr != nil {
		if derr == unix.EINVAL { // not mounted (any more)
			return nil
		}
		return fmt.Errorf("dfs mount: unmount %s: %w (lazy unmount: %w)", m.dir, err, derr)
	}
	m.log.Warn("dfs mount: files are still open under the mount point; detached it lazily (they now fail)", "dir", m.dir)
	return nil
}

// track and untrack keep the set of open handles that Unmount closes.
func (m *Mount) track(h handle) {
	m.mu.Lock()
	m.open[h] = struct{}{}
	m.mu.Unlock()
}

func (m *Mount) untrack(h handle) {
	m.mu.Lock()
	delete(m.open, h)
	m.mu.Unlock()
}

// setWriter records (h non-nil) or forgets h as the handle writing the
// file id, whose size it then tells.
func (m *Mount) setWriter(id int64, h *fileHandle, writing bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if writing {
		m.writers[id] = h
	} else if m.writers[id] == h {
		delete(m.writers, id)
	}
}

// writtenSize returns how far a handle of this mount has written the file
// id, if one writes it.
func (m *Mount) writtenSize(id int64) (int64, bool) {
	m.mu.Lock()
	h := m.writers[id]
	m.mu.Unlock()
	if h == nil {
		return 0, false
	}
	return h.end.Load(), true
}

// clientFor returns the client view a request of ctx calls through: the
// forced user's, or the calling process's user's.
func (m *Mount) clientFor(ctx context.Context) *client.Client {
	if m.fixed != nil {
		return m.fixed
	}
	caller, ok := fuse.FromContext(ctx)
	if !ok {
		return m.client
	}
	return m.client.As(m.ids.userName(caller.Uid))
}

// opContext returns the context of one request's calls: the request's
// values, not its cancellation (see the package documentation), bounded
// by the operation timeout and ended by Unmount.
func (m *Mount) opContext(req context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(req), m.opTimeout)
	stop := context.AfterFunc(m.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// handleContext returns a context for an open handle's reader, writer or
// listing: it lives until cancel, or until Unmount.
func (m *Mount) handleContext() (context.Context, context.CancelFunc) {
	return context.WithCancel(m.ctx)
}

// watch cancels cancel unless the returned stop is called within d; stop
// reports whether it was in time.
func watch(d time.Duration, cancel context.CancelFunc) (stop func() bool) {
	return time.AfterFunc(d, cancel).Stop
}

// errno maps err to the errno of op on path, logging the failures that
// are not the caller's usual business (see errnoOf).
func (m *Mount) errno(op, path string, err error) syscall.Errno {
	errno, usual := errnoOf(err)
	if !usual {
		m.logFailure(op, path, errno, err)
	}
	return errno
}

// logFailure logs a failed operation, at most once a second (counting the
// others).
func (m *Mount) logFailure(op, path string, errno syscall.Errno, err error) {
	now := time.Now().UnixNano()
	last := m.lastErrLog.Load()
	if now-last < int64(time.Second) || !m.lastErrLog.CompareAndSwap(last, now) {
		m.suppressed.Add(1)
		return
	}
	m.log.Warn("dfs mount: operation failed", "op", op, "path", path, "errno", errno.Error(), "err", err,
		"suppressed", m.suppressed.Swap(0))
}

// statfs returns the file system's counts, reusing an answer younger than
// statfsCacheFor.
func (m *Mount) statfs(ctx context.Context, c *client.Client) (*client.FsStats, error) {
	m.statfsMu.Lock()
	defer m.statfsMu.Unlock()
	if m.statfsVal != nil && time.Since(m.statfsAt) < statfsCacheFor {
		return m.statfsVal, nil
	}
	st, err := c.FsStats(ctx)
	if err != nil {
		return nil, err
	}
	m.statfsVal, m.statfsAt = st, time.Now()
	return st, nil
}
