package serve

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kura-dev/kura/ft/record"
	"github.com/kura-dev/kura/ft/wire"
	"github.com/kura-dev/kura/internal/dirlock"
)

// Layout says which output file a record goes to.
type Layout int

// Layouts.
const (
	// PerPath appends to OUT/path: every host writing the same relative
	// path appends to the same file.
	PerPath Layout = iota
	// PerHost appends to OUT/HOST/path.
	PerHost
	// Unified appends every record to OUT/UnifiedName.
	Unified
)

// String returns the name ParseLayout accepts.
func (l Layout) String() string {
	switch l {
	case PerPath:
		return "path"
	case PerHost:
		return "host"
	case Unified:
		return "unified"
	}
	return fmt.Sprintf("Layout(%d)", int(l))
}

// ParseLayout parses "path", "host" or "unified".
func ParseLayout(s string) (Layout, error) {
	switch s {
	case "path":
		return PerPath, nil
	case "host":
		return PerHost, nil
	case "unified":
		return Unified, nil
	}
	return 0, fmt.Errorf("layout %q: want path, host or unified", s)
}

// Options configure a Server.
type Options struct {
	// OutDir is the output directory (K2HFTFUSESVR's FILE_BASEDIR); it is
	// created if missing. The receiver keeps its state in OutDir/.kura-serve.
	OutDir string
	// Layout chooses the output file of a record (default PerPath).
	Layout Layout
	// UnifiedName is the output file, relative to OutDir, in Unified
	// layout (default "unified.log").
	UnifiedName string
	// Format is "" or "raw" (a text record and "\n", a binary record as it
	// is), "json" (one JSON object per record: sender, seq, time in
	// RFC 3339 UTC, host, pid, tid, path, binary, and data if the record is
	// valid UTF-8, else data_b64) or a template (see ValidateFormat).
	Format string
	// TimeLayout is the Go time layout of %T (default time.RFC3339Nano).
	TimeLayout string
	// Location is the time zone of %T (default time.Local).
	Location *time.Location
	// NoSync skips fsync of output files, directories and state before
	// acknowledging: faster, and still exactly once if the receiver process
	// dies, but acknowledged records can be lost if the machine does.
	NoSync bool
	// TLS, if set, serves TLS; nil serves plain TCP.
	TLS *tls.Config
	// Logger receives the receiver's logs (default slog.Default()).
	Logger *slog.Logger
	// MaxOpenFiles bounds the output files kept open (default 256).
	MaxOpenFiles int
}

// Stats are counters since New.
type Stats struct {
	Connections    int64  // connections open now
	Accepted       uint64 // connections accepted
	Rejected       uint64 // connections closed with Error for bad input
	Batches        uint64 // batches acknowledged-ready (written and committed)
	Records        uint64 // records written and committed
	Duplicates     uint64 // records dropped as already written
	Bytes          uint64 // output bytes written and committed
	WriteErrors    uint64 // groups that failed to write or commit (and were rolled back)
	Commits        uint64 // state commits
	OpenFiles      int64  // output files open now
	TrackedFiles   int64  // output files in the state
	TrackedSenders int64  // sender ids in the state
}

type counters struct {
	conns, openFiles, trackedFiles, trackedSenders          atomic.Int64
	accepted, rejected, batches, records, dups, bytes, errs atomic.Uint64
	commits                                                 atomic.Uint64
}

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("serve: server closed")

// Tuning.
const (
	handshakeTimeout  = 30 * time.Second
	maxInflight       = 64       // unacknowledged batches per connection
	maxInflightBytes  = 32 << 20 // unacknowledged batch bytes per connection
	maxGroupBatches   = 1024
	maxGroupBytes     = 64 << 20
	flushThreshold    = 256 << 10
	defaultMaxOpen    = 256
	maxKnownFiles     = 4096
	defaultUnified    = "unified.log"
	inputQueueBatches = 4096
)

// Server is a receiver. Create it with New, run Serve, then Close.
type Server struct {
	opts     Options
	log      *slog.Logger
	fm       *formatter
	hostname string
	outDir   string
	stateDir string

	stateDirF *os.File
	lock      *dirlock.Lock

	in         chan *item
	stop       chan struct{}
	writerDone chan struct{}

	mu       sync.Mutex
	closed   chan struct{}
	isClosed bool
	serveWG  sync.WaitGroup

	stats counters

	// Owned by the writer goroutine (and New, before it starts).
	seqs      map[record.SenderID]uint64
	files     map[string]*outFile
	open      map[*outFile]struct{}
	maxOpen   int
	cycleNo   uint64
	attemptNo uint64
	tick      uint64
	stateBuf  []byte

	failCommit func() error // test hook: fail state commits
}

// item is one queued batch, or a reader error to answer in its place.
type item struct {
	c     *conn
	batch wire.Batch
	size  int
	err   error      // set by the reader: answer Error with it instead
	done  chan error // the writer's verdict, buffered
}

type conn struct {
	remote   string
	log      *slog.Logger
	failed   atomic.Bool // no further batch of this connection may be written
	inflight atomic.Int64
	released chan struct{}
}

// New validates opts, creates OutDir, takes its lock and recovers the state:
// every output file the state names is cut back to its committed length.
func New(opts Options) (*Server, error) {
	if opts.OutDir == "" {
		return nil, errors.New("serve: no output directory")
	}
	if opts.Layout < PerPath || opts.Layout > Unified {
		return nil, fmt.Errorf("serve: unknown layout %d", int(opts.Layout))
	}
	if opts.UnifiedName == "" {
		opts.UnifiedName = defaultUnified
	}
	if opts.Layout == Unified {
		if err := checkRelPath(opts.UnifiedName); err != nil || inStateDir(opts.UnifiedName) {
			if err == nil {
				err = errors.New("in the state directory")
			}
			return nil, fmt.Errorf("serve: unified file name %q: %v", opts.UnifiedName, err)
		}
	}
	if opts.TimeLayout == "" {
		opts.TimeLayout = time.RFC3339Nano
	}
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxOpenFiles <= 0 {
		opts.MaxOpenFiles = defaultMaxOpen
	}
	fm, err := newFormatter(opts.Format, opts.TimeLayout, opts.Location)
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	outDir, err := filepath.Abs(opts.OutDir)
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	host, _ := os.Hostname()
	s := &Server{
		opts:       opts,
		log:        opts.Logger,
		fm:         fm,
		hostname:   host,
		outDir:     outDir,
		stateDir:   filepath.Join(outDir, stateDirName),
		in:         make(chan *item, inputQueueBatches),
		stop:       make(chan struct{}),
		writerDone: make(chan struct{}),
		closed:     make(chan struct{}),
		files:      map[string]*outFile{},
		open:       map[*outFile]struct{}{},
		maxOpen:    opts.MaxOpenFiles,
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	if err := os.Mkdir(s.stateDir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("serve: %w", err)
	} else if err == nil && !opts.NoSync {
		if err := syncDir(outDir); err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
	}
	if s.lock, err = dirlock.Acquire(filepath.Join(s.stateDir, lockFileName)); err != nil {
		var held *dirlock.HeldError
		if errors.As(err, &held) {
			return nil, fmt.Errorf("serve: another receiver (pid %s) uses %s", held.PID, outDir)
		}
		return nil, fmt.Errorf("serve: %w", err)
	}
	if s.stateDirF, err = os.Open(s.stateDir); err != nil {
		s.lock.Release()
		return nil, fmt.Errorf("serve: %w", err)
	}
	if err := s.recover(); err != nil {
		s.stateDirF.Close()
		s.lock.Release()
		return nil, fmt.Errorf("serve: %w", err)
	}
	go s.writer()
	return s, nil
}

// recover loads the state and cuts every file it names back to its
// committed length.
func (s *Server) recover() error {
	os.Remove(filepath.Join(s.stateDir, stateTmpName))
	st, err := loadState(s.stateDir)
	if err != nil {
		return err
	}
	s.seqs = st.seqs
	changed := false
	for rel, length := range st.files {
		abs := filepath.Join(s.outDir, filepath.FromSlash(rel))
		fi, err := os.Stat(abs)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			s.log.Info("serve: output file gone since the last commit (rotated?); forgetting its length", "file", rel, "committed", length)
			changed = true
			continue
		case err != nil:
			return err
		case !fi.Mode().IsRegular():
			s.log.Warn("serve: output path is no longer a regular file; forgetting it", "file", rel)
			changed = true
			continue
		case fi.Size() < length:
			s.log.Warn("serve: output file shorter than its committed length (rotated or truncated by someone else); forgetting its length", "file", rel, "size", fi.Size(), "committed", length)
			changed = true
			continue
		case fi.Size() > length:
			if err := os.Truncate(abs, length); err != nil {
				return fmt.Errorf("cut %s back to its committed length %d: %w", rel, length, err)
			}
			s.log.Info("serve: cut unacknowledged tail from output file (its records will be resent)", "file", rel, "bytes", fi.Size()-length)
		}
		s.files[rel] = &outFile{rel: rel, abs: abs, known: true, committed: length, written: length}
	}
	if changed {
		s.attemptNo++
		if _, err := s.writeState(s.encodeState(nil, nil, false)); err != nil {
			return err
		}
	}
	s.updateGauges()
	return nil
}

func (s *Server) updateGauges() {
	n := 0
	for _, of := range s.files {
		if of.known {
			n++
		}
	}
	s.stats.trackedFiles.Store(int64(n))
	s.stats.trackedSenders.Store(int64(len(s.seqs)))
	s.stats.openFiles.Store(int64(len(s.open)))
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		Connections:    c.conns.Load(),
		Accepted:       c.accepted.Load(),
		Rejected:       c.rejected.Load(),
		Batches:        c.batches.Load(),
		Records:        c.records.Load(),
		Duplicates:     c.dups.Load(),
		Bytes:          c.bytes.Load(),
		WriteErrors:    c.errs.Load(),
		Commits:        c.commits.Load(),
		OpenFiles:      c.openFiles.Load(),
		TrackedFiles:   c.trackedFiles.Load(),
		TrackedSenders: c.trackedSenders.Load(),
	}
}

// Close stops every Serve (closing their connections), waits for them,
// stops the writer after its current group, and closes the output files.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.isClosed {
		s.mu.Unlock()
		return nil
	}
	s.isClosed = true
	close(s.closed)
	s.mu.Unlock()
	s.serveWG.Wait()
	close(s.stop)
	<-s.writerDone
	var errs []error
	for of := range s.open {
		if err := of.f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, s.stateDirF.Close(), s.lock.Release())
	return errors.Join(errs...)
}

// Serve accepts connections on ln until ctx is done (then it returns nil)
// or Close is called (ErrClosed), closing ln and the connections it
// accepted. Several Serve calls (listeners) may share a Server.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.isClosed {
		s.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	s.serveWG.Add(1)
	s.mu.Unlock()
	defer s.serveWG.Done()

	ctx, cancel := context.WithCancel(ctx)
	var closedByServer atomic.Bool
	watch := make(chan struct{})
	go func() {
		defer close(watch)
		select {
		case <-ctx.Done():
		case <-s.closed:
			closedByServer.Store(true)
			cancel()
		}
		ln.Close()
	}()
	var wg sync.WaitGroup
	finish := func(err error) error {
		cancel()
		<-watch
		wg.Wait()
		if closedByServer.Load() {
			return ErrClosed
		}
		return err
	}
	backoff := time.Duration(0)
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return finish(nil)
			}
			if errors.Is(err, net.ErrClosed) {
				return finish(err)
			}
			// Out of descriptors and the like: wait and try again.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("serve: accept", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			continue
		}
		backoff = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.handle(ctx, nc)
		}()
	}
}

// batchError is the Error message a connection gets for a batch.
type batchError struct{ msg string }

func (e *batchError) Error() string { return e.msg }

var errSkipped = &batchError{"connection failed"}

// handle runs one connection: handshake, then a reader (this goroutine)
// queueing batches to the writer and an acknowledger answering them in
// order.
func (s *Server) handle(ctx context.Context, nc net.Conn) {
	s.stats.accepted.Add(1)
	s.stats.conns.Add(1)
	defer s.stats.conns.Add(-1)
	if s.opts.TLS != nil {
		nc = tls.Server(nc, s.opts.TLS)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopClose := context.AfterFunc(ctx, func() { nc.Close() })
	defer func() {
		if stopClose() {
			nc.Close()
		}
	}()
	c := &conn{
		remote:   nc.RemoteAddr().String(),
		released: make(chan struct{}, 1),
	}
	c.log = s.log.With("remote", c.remote)
	r, w := wire.NewReader(nc), wire.NewWriter(nc)
	reject := func(msg string) {
		s.stats.rejected.Add(1)
		c.log.Warn("serve: rejecting connection", "reason", msg)
		if w.WriteError(msg) == nil {
			w.Flush()
		}
	}

	nc.SetDeadline(time.Now().Add(handshakeTimeout))
	typ, body, err := r.Next()
	if err != nil {
		if errors.Is(err, wire.ErrCorrupt) {
			reject(err.Error())
		} else {
			c.log.Debug("serve: handshake", "err", err)
		}
		return
	}
	if typ != wire.TypeHello {
		reject(fmt.Sprintf("expected hello, got frame type %d", typ))
		return
	}
	h, err := wire.ParseHello(body)
	if err != nil {
		reject(err.Error())
		return
	}
	if h.Version != wire.Version {
		reject(fmt.Sprintf("unsupported protocol version %d, this receiver speaks %d", h.Version, wire.Version))
		return
	}
	if err := w.WriteWelcome(wire.Welcome{Version: wire.Version, Receiver: s.hostname}); err != nil {
		return
	}
	if err := w.Flush(); err != nil {
		return
	}
	nc.SetDeadline(time.Time{})
	c.log = c.log.With("sender", h.Sender.String(), "host", h.Host)
	c.log.Debug("serve: connection")

	order := make(chan *item, maxInflight)
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		s.acknowledge(ctx, cancel, c, w, order)
	}()
	s.read(ctx, c, r, order)
	<-acked
}

// read queues the connection's batches, in order, to order and to the
// writer, until the connection ends or sends something bad (queued as an
// error item, answered after the batches before it).
func (s *Server) read(ctx context.Context, c *conn, r *wire.Reader, order chan<- *item) {
	defer close(order)
	fail := func(err error) {
		s.stats.rejected.Add(1)
		c.log.Warn("serve: bad input, closing connection", "err", err)
		select {
		case order <- &item{c: c, err: err}:
		case <-ctx.Done():
		}
	}
	for {
		for c.inflight.Load() >= maxInflightBytes {
			select {
			case <-c.released:
			case <-ctx.Done():
				return
			}
		}
		typ, body, err := r.Next()
		if err != nil {
			switch {
			case ctx.Err() != nil:
			case errors.Is(err, wire.ErrCorrupt):
				fail(err)
			case errors.Is(err, io.EOF):
				c.log.Debug("serve: connection closed by peer")
			default:
				c.log.Debug("serve: read", "err", err)
			}
			return
		}
		if typ != wire.TypeBatch {
			fail(fmt.Errorf("unexpected frame type %d", typ))
			return
		}
		buf := bytes.Clone(body)
		b, err := wire.ParseBatch(buf)
		if err != nil {
			fail(err)
			return
		}
		if err := s.checkBatch(&b); err != nil {
			fail(err)
			return
		}
		it := &item{c: c, batch: b, size: len(buf), done: make(chan error, 1)}
		c.inflight.Add(int64(it.size))
		select {
		case order <- it:
		case <-ctx.Done():
			return
		}
		select {
		case s.in <- it:
		case <-ctx.Done():
			return
		}
	}
}

// checkBatch refuses a batch with a path that is unsafe to write.
func (s *Server) checkBatch(b *wire.Batch) error {
	for i := range b.Chunks {
		p := b.Chunks[i].Path
		if err := checkRelPath(p); err != nil {
			return fmt.Errorf("batch %d: bad path %q: %v", b.ID, p, err)
		}
		if s.opts.Layout == PerPath && inStateDir(p) {
			return fmt.Errorf("batch %d: bad path %q: the receiver's state directory", b.ID, p)
		}
	}
	return nil
}

// acknowledge answers the connection's batches in order: Ack for each the
// writer wrote, or Error (then the connection closes).
func (s *Server) acknowledge(ctx context.Context, cancel context.CancelFunc, c *conn, w *wire.Writer, order <-chan *item) {
	defer func() {
		c.failed.Store(true)
		cancel()
	}()
	for {
		var it *item
		var ok bool
		select {
		case it, ok = <-order:
		default:
			// Nothing more to answer right now: send what is buffered.
			if w.Flush() != nil {
				return
			}
			it, ok = <-order
		}
		if !ok {
			break
		}
		err := it.err
		if err == nil {
			select {
			case err = <-it.done:
			default:
				if w.Flush() != nil {
					return
				}
				select {
				case err = <-it.done:
				case <-ctx.Done():
					return
				}
			}
			c.inflight.Add(-int64(it.size))
			select {
			case c.released <- struct{}{}:
			default:
			}
		}
		if err != nil {
			if w.WriteError(err.Error()) == nil {
				w.Flush()
			}
			return
		}
		if w.WriteAck(it.batch.ID) != nil {
			return
		}
	}
	w.Flush()
}

// outRel returns the output file of a chunk, relative to OutDir.
func (s *Server) outRel(c *record.Chunk) string {
	switch s.opts.Layout {
	case PerHost:
		return sanitizeHost(c.Host) + "/" + c.Path
	case Unified:
		return s.opts.UnifiedName
	}
	return c.Path
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// errMessage is the Error message senders get for a write error.
func errMessage(err error) string {
	if isDiskFull(err) {
		return "disk full: " + err.Error()
	}
	return "write error: " + err.Error()
}
