// Package agent is ft's sender process: it mounts the FUSE front over a
// directory, turns each write() into a chunk in the durable queue, and runs
// the shipper that delivers the queue to the receiver. It also ships plain
// files by hand (SendFiles), for what was written while nothing was mounted.
package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kura-dev/kura/ft/config"
	"github.com/kura-dev/kura/ft/mount"
	"github.com/kura-dev/kura/ft/queue"
	"github.com/kura-dev/kura/ft/record"
	"github.com/kura-dev/kura/ft/ship"
)

// Options configure an Agent.
type Options struct {
	Dir          string         // the directory to mount over
	To           string         // receiver host:port
	TLS          *tls.Config    // nil: plain TCP
	StateDir     string         // holds the sender id and the queue (default: DefaultStateDir(Dir))
	Queue        queue.Options  // Dir is set from StateDir
	Config       *config.Config // rules; nil: every file transfers as text and stays local
	Host         string         // default: os.Hostname()
	DrainTimeout time.Duration  // on Stop, how long to wait for the queue to drain (0: don't wait)
	AllowOther   bool           // let other users' processes use the mount
	Logger       *slog.Logger
}

// DefaultStateDir returns where a mount of dir keeps its queue unless told
// otherwise: /var/lib/kura/ft/<dir with / as ->  for root, else under
// $HOME/.local/state/kura/ft/.
func DefaultStateDir(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	name := strings.ReplaceAll(strings.Trim(abs, "/"), "/", "-")
	if name == "" {
		name = "root"
	}
	base := "/var/lib/kura/ft"
	if os.Geteuid() != 0 {
		if home, err := os.UserHomeDir(); err == nil {
			base = filepath.Join(home, ".local", "state", "kura", "ft")
		}
	}
	return filepath.Join(base, name)
}

// Agent is a running sender.
type Agent struct {
	opts    Options
	q       *queue.Queue
	m       *mount.Mount
	shipper *ship.Shipper
	sink    *QueueSink
	cancel  context.CancelFunc
	done    chan struct{}

	stopOnce sync.Once
	stopErr  error
}

// Start opens the queue, mounts and starts shipping. The mount works (and
// queues) even when the receiver is unreachable.
func Start(opts Options) (*Agent, error) {
	if opts.To == "" {
		return nil, errors.New("ft mount: no receiver address (--to HOST:PORT or mount.to in the config)")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Host == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("host name: %w", err)
		}
		opts.Host = h
	}
	if opts.StateDir == "" {
		opts.StateDir = DefaultStateDir(opts.Dir)
	}
	if opts.Config == nil {
		opts.Config = &config.Config{}
	}
	sender, err := LoadSenderID(opts.StateDir)
	if err != nil {
		return nil, err
	}
	opts.Queue.Dir = filepath.Join(opts.StateDir, "queue")
	opts.Queue.Logger = opts.Logger
	q, err := queue.Open(opts.Queue)
	if err != nil {
		return nil, fmt.Errorf("ft mount: %w", err)
	}
	sh, err := ship.New(ship.Options{Addr: opts.To, TLS: opts.TLS, Sender: sender, Host: opts.Host, Queue: q, Logger: opts.Logger})
	if err != nil {
		q.Close()
		return nil, err
	}
	sink := &QueueSink{Queue: q, Sender: sender, Host: opts.Host}
	m, err := mount.New(mount.Options{
		Dir:        opts.Dir,
		Rules:      rulesFor(opts.Config),
		Sink:       sink,
		Logger:     opts.Logger,
		AllowOther: opts.AllowOther,
	})
	if err != nil {
		q.Close()
		return nil, fmt.Errorf("ft mount %s: %w", opts.Dir, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &Agent{opts: opts, q: q, m: m, shipper: sh, sink: sink, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		sh.Run(ctx)
	}()
	opts.Logger.Info("ft: mounted", "dir", opts.Dir, "to", opts.To, "queue", opts.Queue.Dir, "sender", sender.String())
	return a, nil
}

func rulesFor(c *config.Config) func(string) mount.Rule {
	return func(rel string) mount.Rule {
		d := c.Decide(rel)
		r := mount.Rule{Transfer: d.Transfer, Binary: d.Binary, KeepLocal: d.KeepLocal, MaxLine: d.MaxLine}
		if d.DropLong {
			r.OverLong = record.DropOverLong
		}
		return r
	}
}

// Wait returns when ctx is done or the mount went away (an external
// `umount` or `kura ft unmount`).
func (a *Agent) Wait(ctx context.Context) {
	unmounted := make(chan struct{})
	go func() {
		a.m.Wait()
		close(unmounted)
	}()
	select {
	case <-ctx.Done():
	case <-unmounted:
	}
}

// Stop unmounts (emitting partial lines of open files), waits up to
// DrainTimeout for the receiver to acknowledge everything queued, stops the
// shipper and closes the queue. What is not delivered stays queued for the
// next mount.
func (a *Agent) Stop() error {
	a.stopOnce.Do(func() {
		err := a.m.Unmount()
		if a.opts.DrainTimeout > 0 {
			deadline := time.Now().Add(a.opts.DrainTimeout)
			for time.Now().Before(deadline) {
				st := a.q.Stats()
				if st.AckedSeq >= st.LastSeq {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		a.cancel()
		<-a.done
		st := a.q.Stats()
		if st.AckedSeq < st.LastSeq {
			a.opts.Logger.Info("ft: records stay queued for the next mount", "queued", st.LastSeq-st.AckedSeq, "queue", a.opts.Queue.Dir)
		}
		a.stopErr = errors.Join(err, a.q.Close())
	})
	return a.stopErr
}

// Stats is a snapshot of the agent's counters.
type Stats struct {
	Mount mount.Stats
	Queue queue.Stats
	Ship  ship.Stats
}

// Stats returns the agent's counters.
func (a *Agent) Stats() Stats {
	return Stats{Mount: a.m.Stats(), Queue: a.q.Stats(), Ship: a.shipper.Stats()}
}

// LoadSenderID returns the sender id kept in dir/sender-id, creating it (and
// dir) on first use.
func LoadSenderID(dir string) (record.SenderID, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return record.SenderID{}, fmt.Errorf("state dir: %w", err)
	}
	p := filepath.Join(dir, "sender-id")
	b, err := os.ReadFile(p)
	if err == nil {
		id, err := record.ParseSenderID(strings.TrimSpace(string(b)))
		if err != nil {
			return id, fmt.Errorf("%s: %w", p, err)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return record.SenderID{}, fmt.Errorf("sender id: %w", err)
	}
	id, err := record.NewSenderID()
	if err != nil {
		return id, err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(id.String()+"\n"), 0o644); err != nil {
		return id, fmt.Errorf("sender id: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return id, err
	}
	if err := os.Rename(tmp, p); err != nil {
		return id, fmt.Errorf("sender id: %w", err)
	}
	return id, syncFile(dir)
}

func syncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("sync %s: %w", p, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", p, err)
	}
	return nil
}

// QueueSink turns the mount's writes into chunks in the queue.
type QueueSink struct {
	Queue  *queue.Queue
	Sender record.SenderID
	Host   string

	bufs sync.Pool
}

// Emit encodes the write as one chunk and appends it to the queue; it
// returns once the queue has it (durable per the queue's sync policy).
func (s *QueueSink) Emit(ctx context.Context, w mount.Write) error {
	if len(w.Records) == 0 {
		return nil
	}
	c := record.Chunk{
		Sender: s.Sender, FirstSeq: 1, // the queue assigns the real one
		Time: w.Time, PID: w.PID, TID: w.TID, Host: s.Host, Path: w.Path, Binary: w.Binary, Records: w.Records,
	}
	bp, _ := s.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	*bp = c.AppendEncode((*bp)[:0])
	_, err := s.Queue.Append(ctx, uint32(len(w.Records)), *bp)
	if cap(*bp) <= 4<<20 {
		s.bufs.Put(bp)
	}
	if err != nil {
		return fmt.Errorf("queue %d records of %s: %w", len(w.Records), w.Path, err)
	}
	return nil
}
