// Package plugin runs an external program (a "plugin") and feeds it records
// as JSON lines on its standard input, restarting the program whenever it
// exits, without ever losing a record.
//
// The records live durably with the caller; the runner reads them through a
// Feed and reports through a commit callback how far the plugin has taken
// them. A record counts as taken once the plugin has read it out of its stdin
// pipe, not merely once it was written into the pipe buffer: the runner asks
// the kernel (FIONREAD) how many bytes are still unread in the pipe. Records
// that were written but not taken when the plugin exits are written again to
// the next instance. A record that the plugin took but did not act on before
// dying is the plugin's own loss; a plugin that wants none should read only
// what it is ready to handle.
//
// The package works on Linux; on other systems New returns an error.
package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Record is one JSON line to feed to a plugin.
type Record struct {
	Seq  uint64 // strictly increasing; gaps allowed
	Line []byte // one JSON document, no trailing newline (runner adds "\n")
}

// Feed is where the records come from.
type Feed interface {
	// Next returns the first record whose Seq is greater than after, waiting
	// until one exists or ctx is done (then it returns ctx.Err()).
	Next(ctx context.Context, after uint64) (Record, error)
}

// Config describes the program.
type Config struct {
	Command string   // run with /bin/sh -c, like K2HFTFUSE's "ENV=v prog args"
	Dir     string   // working directory ("" = current)
	Env     []string // extra environment, appended to os.Environ()
	// Stdout is where the plugin's stdout goes (nil = discard).
	Stdout io.Writer
	// Stderr is where the plugin's stderr goes (nil = the Logger at warn
	// level, line by line; pass io.Discard to drop it).
	Stderr io.Writer
	Logger *slog.Logger // nil = slog.Default()
	// MinBackoff and MaxBackoff bound the wait before a restart (defaults
	// 100ms and 10s). The wait starts at MinBackoff, doubles after each
	// death that followed a short run, up to MaxBackoff, and goes back to
	// MinBackoff after a run of more than 10s.
	MinBackoff, MaxBackoff time.Duration
}

// Stats are a Runner's counters, accumulated over all calls to Run.
type Stats struct {
	Written  uint64 // records completely written into a plugin's stdin (rewrites after a restart count again)
	Taken    uint64 // records taken by a plugin and committed
	Restarts uint64 // times the program was started again after it exited
}

const (
	defaultMinBackoff = 100 * time.Millisecond
	defaultMaxBackoff = 10 * time.Second
	stableRun         = 10 * time.Second      // a run this long resets the backoff
	stopTimeout       = 5 * time.Second       // how long a stopping plugin gets after its stdin is closed
	waitDelay         = 2 * time.Second       // bound on draining the plugin's output after it exits
	pollInterval      = 20 * time.Millisecond // how often progress is measured while records are untaken
	maxUntakenBytes   = 1 << 20               // stop pulling from the feed with this many bytes untaken
	maxUntakenRecords = 10000                 // or with this many records untaken
	maxBatchBytes     = 64 << 10              // records gathered into one write
)

// Runner feeds one plugin. Create it with New; its methods are safe for
// concurrent use, but only one Run may be in progress at a time.
type Runner struct {
	cfg     Config
	log     *slog.Logger
	running atomic.Bool

	written, taken, restarts atomic.Uint64
}

// New returns a Runner for the program cfg describes. It checks cfg: an
// empty Command, negative backoffs or MaxBackoff below MinBackoff are errors.
func New(cfg Config) (*Runner, error) {
	if !supported {
		return nil, fmt.Errorf("plugin: not supported on %s", runtime.GOOS)
	}
	if strings.TrimSpace(cfg.Command) == "" {
		return nil, errors.New("plugin: Config.Command is empty")
	}
	if cfg.MinBackoff < 0 || cfg.MaxBackoff < 0 {
		return nil, fmt.Errorf("plugin: negative Config.MinBackoff (%v) or Config.MaxBackoff (%v)", cfg.MinBackoff, cfg.MaxBackoff)
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = defaultMinBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = max(defaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		return nil, fmt.Errorf("plugin: Config.MaxBackoff (%v) is below Config.MinBackoff (%v)", cfg.MaxBackoff, cfg.MinBackoff)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Env = append([]string(nil), cfg.Env...)
	return &Runner{cfg: cfg, log: cfg.Logger.With("plugin", cfg.Command)}, nil
}

// Stats returns counters: records written, records taken (committed),
// restarts.
func (r *Runner) Stats() Stats {
	return Stats{Written: r.written.Load(), Taken: r.taken.Load(), Restarts: r.restarts.Load()}
}

// Run feeds records with Seq > start to the plugin until ctx is done,
// restarting the program whenever it exits. commit is called (from Run's
// goroutine, never concurrently) with the highest Seq the plugin has taken so
// far; the caller persists it and passes it as start next time. Run returns
// ctx.Err() (or nil) on cancellation after stopping the program (close stdin,
// wait up to 5s, then SIGKILL its process group), or a commit error, or an
// error from feed.Next other than the cancellation of the context Run passed
// it. A program that cannot be started is retried like one that exited.
func (r *Runner) Run(ctx context.Context, feed Feed, start uint64, commit func(seq uint64) error) error {
	if feed == nil || commit == nil {
		return errors.New("plugin: Run needs a feed and a commit function")
	}
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("plugin: Run is already in progress")
	}
	defer r.running.Store(false)

	st := &runState{feed: feed, commit: commit, committed: start}
	backoff := r.cfg.MinBackoff
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if attempt > 0 {
			r.restarts.Add(1)
		}
		began := time.Now()
		if err := r.runOnce(ctx, st); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Since(began) > stableRun {
			backoff = r.cfg.MinBackoff
		}
		r.log.Info("plugin restarting", "backoff", backoff, "committed", st.committed)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(backoff*2, r.cfg.MaxBackoff)
	}
}

// runState is what outlives one instance of the plugin within Run.
type runState struct {
	feed      Feed
	commit    func(seq uint64) error
	committed uint64 // last seq passed to commit successfully (or start)
	failed    bool   // commit returned an error: do not call it again
}

// mark is a record written (or being written) and not yet taken.
type mark struct {
	seq uint64
	end uint64 // byte offset in the pipe stream just past the record's newline
}

// fetched is what the feed goroutine hands to the writer.
type fetched struct {
	rec Record
	err error
}

// commitError marks an error returned by the caller's commit function.
type commitError struct{ err error }

func (e *commitError) Error() string { return e.err.Error() }
func (e *commitError) Unwrap() error { return e.err }

// session is one instance of the plugin.
type session struct {
	r      *Runner
	st     *runState
	cmd    *exec.Cmd
	pw     *os.File     // write end of the plugin's stdin
	done   chan error   // receives cmd.Wait's result
	stderr *lineLogger  // nil when Config.Stderr is set
	log    *slog.Logger // r.log with the pid
	began  time.Time

	written    uint64 // bytes written into the pipe
	takenBytes uint64 // bytes the plugin has read
	pending    []mark // untaken records, in order
	wdone      int    // leading entries of pending that are completely written
	buf        []byte // lines being written
	off        int    // buf[:off] is written
}

// runOnce starts the plugin, feeds it until it exits or ctx is done, and
// stops it. It returns an error only when Run must give up.
func (r *Runner) runOnce(ctx context.Context, st *runState) error {
	pr, pw, err := os.Pipe()
	if err != nil {
		r.log.Error("plugin not started", "err", fmt.Errorf("start plugin %q: stdin pipe: %w", r.cfg.Command, err))
		return nil
	}
	cmd := exec.Command("/bin/sh", "-c", r.cfg.Command)
	cmd.Dir = r.cfg.Dir
	cmd.Env = append(os.Environ(), r.cfg.Env...)
	cmd.Stdin = pr
	if r.cfg.Stdout != nil {
		cmd.Stdout = r.cfg.Stdout
	}
	var lw *lineLogger
	if r.cfg.Stderr != nil {
		cmd.Stderr = r.cfg.Stderr
	} else {
		lw = &lineLogger{log: r.log}
		cmd.Stderr = lw
	}
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = waitDelay
	err = cmd.Start()
	pr.Close()
	if err != nil {
		pw.Close()
		if r.cfg.Dir != "" {
			err = fmt.Errorf("in dir %q: %w", r.cfg.Dir, err)
		}
		r.log.Error("plugin not started", "err", fmt.Errorf("start plugin %q: %w", r.cfg.Command, err))
		return nil
	}
	s := &session{
		r:      r,
		st:     st,
		cmd:    cmd,
		pw:     pw,
		done:   make(chan error, 1),
		stderr: lw,
		log:    r.log.With("pid", cmd.Process.Pid),
		began:  time.Now(),
	}
	go func() { s.done <- cmd.Wait() }()
	s.log.Info("plugin started", "after", st.committed)
	return s.run(ctx)
}

// run is the writer loop of one instance.
func (s *session) run(ctx context.Context) error {
	fctx, cancel := context.WithCancel(ctx)
	recs := make(chan fetched)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		fetch(fctx, s.st.feed, s.st.committed, recs)
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()

	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()

	var (
		fail    error // ends Run
		exited  bool
		exitErr error
		why     string
	)
loop:
	for {
		if s.off < len(s.buf) {
			if err := s.write(); err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					// EPIPE: every reader is gone, the plugin died or
					// closed its stdin.
					why = "stdin write failed: " + err.Error()
					s.log.Debug("plugin stdin write failed", "err", err)
					break loop
				}
			}
		}
		if err := s.poll(); err != nil {
			fail, why = err, "error"
			break loop
		}
		if s.off < len(s.buf) {
			// The pipe is full: try again at once (write waits up to
			// pollInterval), unless something ended.
			select {
			case <-ctx.Done():
				why = "stopping"
				break loop
			case exitErr = <-s.done:
				exited = true
				break loop
			default:
				continue
			}
		}
		var recC <-chan fetched
		if s.room() {
			recC = recs
		}
		var tick <-chan time.Time
		if len(s.pending) > 0 {
			tick = ticker.C
		}
		select {
		case <-ctx.Done():
			why = "stopping"
			break loop
		case exitErr = <-s.done:
			exited = true
			break loop
		case <-tick:
		case f := <-recC:
			s.buf, s.off = s.buf[:0], 0
			if cap(s.buf) > 2*maxBatchBytes {
				s.buf = nil
			}
			for {
				if f.err != nil {
					fail, why = f.err, "error"
					break loop
				}
				s.add(f.rec)
				if len(s.buf) >= maxBatchBytes || !s.room() {
					break
				}
				var ok bool
				select {
				case f, ok = <-recs:
				default:
				}
				if !ok {
					break
				}
			}
		}
	}
	if err := s.stop(exited, exitErr, why, fail); err != nil && fail == nil {
		fail = err
	}
	return fail
}

// fetch pulls records after after from feed and hands them to out, one at a
// time, until ctx is done or the feed fails.
func fetch(ctx context.Context, feed Feed, after uint64, out chan<- fetched) {
	for {
		rec, err := feed.Next(ctx, after)
		if err == nil && rec.Seq <= after {
			err = fmt.Errorf("returned seq %d, want more than %d", rec.Seq, after)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			err = fmt.Errorf("plugin: feed next after %d: %w", after, err)
		}
		select {
		case out <- fetched{rec: rec, err: err}:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
		after = rec.Seq
	}
}

// room reports whether another record may be pulled from the feed.
func (s *session) room() bool {
	return s.off == len(s.buf) && len(s.pending) < maxUntakenRecords &&
		s.written+uint64(len(s.buf)-s.off)-s.takenBytes < maxUntakenBytes
}

// add queues rec's line for writing. Raw CR and LF, which valid JSON can
// only hold as whitespace between tokens, become spaces so that the record
// stays one line.
func (s *session) add(rec Record) {
	n := len(s.buf)
	s.buf = append(s.buf, rec.Line...)
	for i := n; i < len(s.buf); i++ {
		if s.buf[i] == '\n' || s.buf[i] == '\r' {
			s.buf[i] = ' '
		}
	}
	s.buf = append(s.buf, '\n')
	s.pending = append(s.pending, mark{seq: rec.Seq, end: s.written + uint64(len(s.buf)-s.off)})
}

// write writes as much of buf as the pipe accepts within pollInterval.
func (s *session) write() error {
	if err := s.pw.SetWriteDeadline(time.Now().Add(pollInterval)); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	n, err := s.pw.Write(s.buf[s.off:])
	s.off += n
	s.written += uint64(n)
	for s.wdone < len(s.pending) && s.pending[s.wdone].end <= s.written {
		s.wdone++
		s.r.written.Add(1)
	}
	return err
}

// poll measures how much the plugin has read and commits the records it
// took.
func (s *session) poll() error {
	if len(s.pending) == 0 || s.st.failed {
		return nil
	}
	unread, err := unreadBytes(s.pw)
	if err != nil {
		return fmt.Errorf("plugin: measure unread stdin of %q: %w", s.r.cfg.Command, err)
	}
	return s.advance(unread)
}

// advance commits the records that end within the bytes taken, given the
// number of bytes still unread in the pipe.
func (s *session) advance(unread int) error {
	if unread < 0 || uint64(unread) > s.written {
		return nil
	}
	taken := s.written - uint64(unread)
	if taken <= s.takenBytes {
		return nil
	}
	s.takenBytes = taken
	k := 0
	for k < len(s.pending) && s.pending[k].end <= taken {
		k++
	}
	if k == 0 {
		return nil
	}
	seq := s.pending[k-1].seq
	s.pending = s.pending[k:]
	s.wdone -= k
	if err := s.st.commit(seq); err != nil {
		s.st.failed = true
		return &commitError{fmt.Errorf("plugin: commit seq %d: %w", seq, err)}
	}
	s.st.committed = seq
	s.r.taken.Add(uint64(k))
	return nil
}

// stop ends the instance: it takes a last measure of progress, closes the
// plugin's stdin, gives it stopTimeout to exit, then kills its process group,
// and finally counts what the plugin read before it went. why is empty when
// the plugin exited by itself (exitErr is then Wait's result), "stopping" on
// cancellation, "error" when fail ends Run, or the reason the plugin was
// deemed dead.
func (s *session) stop(exited bool, exitErr error, why string, fail error) error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	keep(s.poll())
	// A second read end lets us measure the pipe after our write end is
	// closed (which is what tells the plugin to stop).
	var reader *os.File
	if !exited && len(s.pending) > 0 && !s.st.failed {
		var err error
		if reader, err = reopenReader(s.pw); err != nil {
			s.log.Debug("plugin stdin not reopened; records read while stopping will be sent again", "err", err)
			reader = nil
		}
	}
	s.pw.Close()
	if !exited {
		t := time.NewTimer(stopTimeout)
		select {
		case exitErr = <-s.done:
		case <-t.C:
			s.log.Warn("plugin did not exit after its stdin was closed; killing it", "timeout", stopTimeout)
			killGroup(s.cmd.Process)
			exitErr = <-s.done
		}
		t.Stop()
	}
	if reader != nil {
		if !s.st.failed {
			unread, err := unreadBytes(reader)
			if err == nil {
				keep(s.advance(unread))
			} else {
				s.log.Debug("plugin stdin not measured after stop", "err", err)
			}
		}
		reader.Close()
	}
	if s.stderr != nil {
		s.stderr.flush()
	}

	attrs := []any{"ran", time.Since(s.began).Round(time.Millisecond), "committed", s.st.committed}
	if ps := s.cmd.ProcessState; ps != nil {
		attrs = append(attrs, "status", ps.String(), "code", ps.ExitCode())
	}
	var ee *exec.ExitError
	if exitErr != nil && !errors.As(exitErr, &ee) {
		attrs = append(attrs, "err", exitErr)
	}
	switch why {
	case "stopping":
		s.log.Info("plugin stopped", attrs...)
	case "error":
		s.log.Info("plugin stopped", append(attrs, "reason", fail)...)
	default:
		if why != "" {
			attrs = append(attrs, "reason", why)
		}
		s.log.Warn("plugin exited", attrs...)
	}
	return first
}

// lineLogger logs what a plugin writes, one line per record at warn level.
type lineLogger struct {
	mu  sync.Mutex
	log *slog.Logger
	buf []byte
}

const maxLogLine = 64 << 10 // longer stderr lines are logged in pieces

// Write implements io.Writer.
func (w *lineLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			if len(w.buf) >= maxLogLine {
				w.emit()
			}
			break
		}
		w.buf = append(w.buf, p[:i]...)
		w.emit()
		p = p[i+1:]
	}
	return n, nil
}

func (w *lineLogger) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit()
	}
}

func (w *lineLogger) emit() {
	w.log.Warn("plugin stderr", "line", strings.TrimRight(string(w.buf), "\r"))
	w.buf = w.buf[:0]
}
