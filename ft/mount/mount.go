// Package mount is kura ft's FUSE front: a passthrough (loopback) file
// system mounted over an existing log directory. Every byte written to a
// regular file through the mount is, depending on the file's Rule, written
// to the real file underneath and/or cut into records (record.Splitter) that
// are queued durably through a Sink before the write(2) is acknowledged.
//
// # Mounting over the directory itself
//
// New opens the directory (O_RDONLY|O_DIRECTORY) before mounting and serves
// the loopback from "/proc/self/fd/N". Resolving that magic link jumps
// straight to the directory's own dentry in the file system below, without
// crossing the mount that later covers it, so every operation of the
// loopback reaches the real directory rather than recursing into the mount.
// Processes that had their working directory (or files) open in the
// directory before the mount keep using the underlying directory directly;
// their writes are not seen by kura.
//
// # What is intercepted
//
// Everything except the write path is go-fuse's loopback (fs.LoopbackNode,
// fs.LoopbackFile). kura's node type embeds fs.LoopbackNode and overrides:
//
//   - Open and Create of regular files with write access: the Rule for the
//     path is looked up once, and the file handle is wrapped so that writes
//     are shipped. O_APPEND is kept on the underlying descriptor (the
//     loopback strips it, which is only needed with a writeback cache; kura
//     never enables one), so appends land at the real end of file.
//   - Create and Mkdir set owner and permission bits as the caller asked (the
//     loopback applies the server's umask a second time and ignores setgid
//     directories).
//   - CopyFileRange returns ENOSYS, so that the kernel falls back to plain
//     writes, which are intercepted; Tmpfile (O_TMPFILE) returns EOPNOTSUPP,
//     so that a file can not be filled unseen and linked in later.
//   - A few operations on the root, whose loopback path is the magic link
//     itself (the l*-variants of the loopback would act on the link).
//
// Kernel FUSE passthrough is disabled: a passthrough handle's writes would
// bypass the file system, and the kernel does not allow passthrough and
// cached handles on one inode at the same time.
//
// # Caching and performance
//
// No writeback cache: every write(2) is one synchronous FUSE WRITE (up to
// max_write, 1 MiB), acknowledged only after the local write and the Emit.
// Entries and attributes are cached for 1s; renames and creates made
// through the mount update the kernel's cache at once, so logrotate's
// rename+create and tail -f/-F (inotify sees writes made through the
// mount) work. The write path makes no allocation of its own: the records
// alias the request buffer or the splitter's partial-line buffer, the
// record slice is reused per handle, and the writer's thread group id comes
// from a small cache over /proc/<tid>/status.
//
// # Paths of renamed files
//
// Write.Path is the path the handle was opened with, not the file's
// current path: after logrotate renames app.log to app.log.1, the lines an
// application still writes through its old handle are reported as
// "app.log", the file it is logging to, and the Rule chosen at open time
// stays consistent with the path. (The current path would cost a walk of
// go-fuse's inode tree and an allocation on every write.)
package mount

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

	"github.com/kura-dev/kura/ft/record"
)

// Rule says what happens to writes to one file.
type Rule struct {
	Transfer bool // ship its records
	// Binary: each write() is one message, not lines. (The kernel cuts a
	// write() larger than 1 MiB, the mount's max_write, into several.)
	Binary bool
	// KeepLocal also writes the bytes to the local file (default in the
	// CLI: true). Without it a write() reports its full length and leaves
	// the file alone; the size the kernel shows for the file through the
	// mount may then include the unwritten bytes for up to the attribute
	// timeout (1s).
	KeepLocal bool
	MaxLine   int // 0 = record's default
	OverLong  record.OverLongPolicy
}

// Write is the records of one write() (or of a flush of a partial line).
type Write struct {
	Path   string // slash-separated, relative to the mount point, as opened
	PID    uint32 // thread group id of the writer (0 if unknown)
	TID    uint32 // thread id of the writer (the FUSE request's pid field)
	Time   int64  // Unix ns when kura received the write
	Binary bool
	// Records may alias buffers that are reused after Emit returns: Emit
	// must copy or encode them before returning.
	Records [][]byte
}

// Sink queues records durably. Emit returns once they are queued; the
// write() is acknowledged to the application only then. An error makes
// the write() fail with EIO (and is logged).
//
// Emit is called with a context that is not cancelled by the writer's
// signals: by then the bytes are already in the local file, and an EINTR
// would make the application write them a second time.
type Sink interface {
	Emit(ctx context.Context, w Write) error
}

// Options configure a Mount.
type Options struct {
	Dir string // the directory to mount over
	// Rules is called once per open (with write access: read-only opens
	// need no rule) or create of a regular file, with its slash-separated
	// path relative to Dir. Nil means Rule{Transfer: true, KeepLocal: true}
	// for every file.
	Rules func(relPath string) Rule
	// Sink receives the records. It runs in the FUSE server: it must not
	// write into Dir through the mount.
	Sink   Sink
	Logger *slog.Logger // nil: slog.Default()
	Debug  bool         // go-fuse debug logging (to Logger, at info level)
	// AllowOther lets other users' processes use the mount. The kernel
	// checks permissions (default_permissions) by the mode bits; POSIX
	// ACLs of the underlying files are not applied through the mount.
	AllowOther bool
	// XAttrs passes extended attributes through. It is off by default
	// because with xattrs on, the kernel asks for security.capability
	// before every write(), a second round trip that doubles the cost of
	// a write; with xattrs off (ENOSYS) it stops asking.
	XAttrs bool
}

// Stats are a Mount's counters since New.
type Stats struct {
	Writes          uint64 // write() calls to files with Transfer
	Bytes           uint64 // bytes those writes carried
	Records         uint64 // records emitted
	Emits           uint64 // successful Emit calls
	EmitErrors      uint64 // failed Emit calls (each failed a write, close or fsync with EIO)
	OverLongSplit   uint64 // over-long lines split
	OverLongDropped uint64 // over-long lines dropped
}

// Mount is a mounted kura ft file system.
type Mount struct {
	dir      string // absolute, symlinks resolved
	dirFile  *os.File
	dirFd    int
	rootPath string // "/proc/self/fd/N"
	rootDev  uint64 // st_dev of the directory
	dev      uint64 // st_dev of the mount (the FUSE super block)
	server   *fuse.Server
	done     chan struct{}

	rules func(string) Rule
	sink  Sink
	log   *slog.Logger

	tgids tgidCache

	hmu     sync.Mutex
	handles map[*handle]struct{} // open handles that may hold a partial line

	umu       sync.Mutex
	unmounted bool

	writes, bytes, records, emits, emitErrors, split, dropped atomic.Uint64
	lastErrLog                                                atomic.Int64
}

// Mount parameters.
const (
	fsType        = "kura" // shows as "fuse.kura" in /proc/self/mountinfo
	maxWrite      = 1 << 20
	maxBackground = 64
	cacheTimeout  = time.Second
)

var defaultRule = Rule{Transfer: true, KeepLocal: true}

// ErrAlreadyMounted is wrapped by New's error when a kura file system is
// mounted on the directory already. If its server is gone (the message
// says "stale"), the directory stays unusable until it is unmounted.
var ErrAlreadyMounted = errors.New("already mounted")

// resolveDir makes dir absolute and resolves symlinks, checking for a
// kura mount on it before touching the directory itself: a stale FUSE
// mount (its server killed) answers every access with ENOTCONN.
func resolveDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	parent, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return "", err
	}
	dir = filepath.Join(parent, filepath.Base(abs))
	for {
		mounts, err := readMountinfo()
		if err != nil {
			return "", err
		}
		if top, ok := topMount(mounts, dir); ok && top.fstype == "fuse."+fsType {
			var st unix.Stat_t
			if err := unix.Stat(dir, &st); err == unix.ENOTCONN || err == unix.ECONNABORTED {
				return "", fmt.Errorf("%s is %w (%s, stale: its server is gone; umount it first)", dir, ErrAlreadyMounted, top.fstype)
			}
			return "", fmt.Errorf("%s is %w (%s)", dir, ErrAlreadyMounted, top.fstype)
		}
		fi, err := os.Lstat(dir)
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			return dir, nil
		}
		// A mount point is never a symlink: follow it and check again.
		if dir, err = filepath.EvalSymlinks(dir); err != nil {
			return "", err
		}
	}
}

// New mounts kura over opts.Dir and starts serving it.
func New(opts Options) (*Mount, error) {
	if opts.Sink == nil {
		return nil, errors.New("mount: no Sink")
	}
	if opts.Dir == "" {
		return nil, errors.New("mount: no directory")
	}
	dir, err := resolveDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("mount: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("mount: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("mount: %s is not a directory", dir)
	}

	dirFile, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("mount: %w", err)
	}
	m := &Mount{
		dir:      dir,
		dirFile:  dirFile,
		dirFd:    int(dirFile.Fd()),
		rootPath: fmt.Sprintf("/proc/self/fd/%d", dirFile.Fd()),
		done:     make(chan struct{}),
		rules:    opts.Rules,
		sink:     opts.Sink,
		log:      opts.Logger,
		handles:  make(map[*handle]struct{}),
	}
	if m.rules == nil {
		m.rules = func(string) Rule { return defaultRule }
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	m.tgids.m = make(map[uint32]tgidEntry)

	var st unix.Stat_t
	if err := unix.Stat(m.rootPath, &st); err != nil {
		dirFile.Close()
		return nil, fmt.Errorf("mount: %w", err)
	}
	m.rootDev = st.Dev
	lroot := &fs.LoopbackRoot{Path: m.rootPath, Dev: st.Dev}
	root := &node{LoopbackNode: &fs.LoopbackNode{RootData: lroot}, m: m}
	lroot.RootNode = root

	timeout := cacheTimeout
	fopts := &fs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther:        opts.AllowOther,
			Options:           []string{"default_permissions"},
			MaxBackground:     maxBackground,
			MaxWrite:          maxWrite,
			FsName:            "kura-ft",
			Name:              fsType,
			Debug:             opts.Debug,
			DisableXAttrs:     !opts.XAttrs,
			DirectMount:       true,
			DirectMountStrict: true,
			// Passthrough handles would bypass the write interception.
			DisabledCapabilities: fuse.CAP_PASSTHROUGH,
		},
		EntryTimeout: &timeout,
		AttrTimeout:  &timeout,
		Logger:       slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
	}
	if opts.Debug {
		fopts.MountOptions.Logger = slog.NewLogLogger(m.log.Handler(), slog.LevelInfo)
	} else {
		fopts.MountOptions.Logger = slog.NewLogLogger(m.log.Handler(), slog.LevelWarn)
	}
	server, err := fuse.NewServer(fs.NewNodeFS(root, fopts), dir, &fopts.MountOptions)
	if err != nil {
		dirFile.Close()
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	m.server = server
	go func() {
		server.Serve()
		m.dirFile.Close()
		close(m.done)
	}()
	if err := server.WaitMount(); err != nil {
		unix.Unmount(dir, unix.MNT_DETACH)
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	// The mount's device number identifies it in /proc/self/mountinfo.
	if err := unix.Stat(dir, &st); err != nil {
		unix.Unmount(dir, unix.MNT_DETACH)
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	m.dev = st.Dev
	return m, nil
}

// Dir returns the mounted directory (absolute, symlinks resolved).
func (m *Mount) Dir() string { return m.dir }

// Unmount emits the pending partial lines of all open files, then
// unmounts. It is idempotent.
//
// If the mount is busy (applications still hold files open in it, the
// normal case for a log directory), Unmount retries briefly and then
// detaches the mount lazily (MNT_DETACH): the directory at once shows the
// plain underlying directory to new lookups and opens, while the files
// already open stay served (and their lines shipped) until they are
// closed; Wait returns once the last one is. A process that exits before
// Wait returns makes those applications' writes fail with ENOTCONN.
//
// If the mount is gone already (an external umount), Unmount only flushes.
// It refuses to unmount if another file system was mounted over kura's.
func (m *Mount) Unmount() error {
	m.umu.Lock()
	defer m.umu.Unlock()
	if m.unmounted {
		return nil
	}
	m.flushAll()
	select {
	case <-m.done:
		m.unmounted = true
		return nil
	default:
	}
	mounts, err := readMountinfo()
	if err != nil {
		return fmt.Errorf("unmount %s: %w", m.dir, err)
	}
	ours, top := false, mountEntry{}
	for _, e := range mounts {
		if e.mountPoint == m.dir && e.dev == m.dev {
			ours = true
		}
	}
	if !ours { // detached by someone else: the connection ends when its files are closed
		m.unmounted = true
		return nil
	}
	if top, _ = topMount(mounts, m.dir); top.dev != m.dev {
		return fmt.Errorf("unmount %s: another file system (%s) is mounted over it", m.dir, top.fstype)
	}
	delay := 5 * time.Millisecond
	for try := 0; ; try++ {
		err = unix.Unmount(m.dir, 0)
		if err != unix.EBUSY || try == 4 {
			break
		}
		time.Sleep(delay)
		delay *= 2
	}
	if err == unix.EBUSY {
		if err := unix.Unmount(m.dir, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount %s: %w", m.dir, err)
		}
		m.unmounted = true
		m.log.Warn("kura ft: mount busy, detached lazily; open files are served until closed", "dir", m.dir)
		return nil
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", m.dir, err)
	}
	m.unmounted = true
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		m.log.Warn("kura ft: unmounted, but the FUSE connection did not end", "dir", m.dir)
	}
	return nil
}

// Wait returns when the file system is no longer served: after Unmount,
// or an external umount, once no file is open in it any more.
func (m *Mount) Wait() { <-m.done }

// Stats returns the counters.
func (m *Mount) Stats() Stats {
	return Stats{
		Writes:          m.writes.Load(),
		Bytes:           m.bytes.Load(),
		Records:         m.records.Load(),
		Emits:           m.emits.Load(),
		EmitErrors:      m.emitErrors.Load(),
		OverLongSplit:   m.split.Load(),
		OverLongDropped: m.dropped.Load(),
	}
}

// flushAll emits the partial lines of all open handles.
func (m *Mount) flushAll() {
	m.hmu.Lock()
	hs := make([]*handle, 0, len(m.handles))
	for h := range m.handles {
		hs = append(hs, h)
	}
	m.hmu.Unlock()
	for _, h := range hs {
		h.flushPartial()
	}
}

func (m *Mount) register(h *handle) {
	m.hmu.Lock()
	m.handles[h] = struct{}{}
	m.hmu.Unlock()
}

func (m *Mount) unregister(h *handle) {
	m.hmu.Lock()
	delete(m.handles, h)
	m.hmu.Unlock()
}

// emit hands records to the sink and counts them.
func (m *Mount) emit(w Write) error {
	err := m.sink.Emit(context.Background(), w)
	if err != nil {
		n := m.emitErrors.Add(1)
		now := time.Now().UnixNano()
		last := m.lastErrLog.Load()
		if now-last >= int64(time.Second) && m.lastErrLog.CompareAndSwap(last, now) {
			m.log.Error("kura ft: emit failed, write fails with EIO", "path", w.Path, "pid", w.PID,
				"records", len(w.Records), "err", err, "emit_errors", n)
		}
		return err
	}
	m.emits.Add(1)
	m.records.Add(uint64(len(w.Records)))
	return nil
}
