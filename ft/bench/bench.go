// Package bench measures ft end to end on one machine: a receiver and a
// mount in this process, a writer writing lines into the mount, and the time
// until the receiver's file holds every byte. Beside each figure it measures
// the ceilings: the same writes to a plain local file and to a null FUSE
// file system that discards them.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/kura-dev/kura/ft/agent"
	"github.com/kura-dev/kura/ft/queue"
	"github.com/kura-dev/kura/ft/serve"
)

// Mode is how the writer writes.
type Mode string

// Writer modes.
const (
	Bulk    Mode = "bulk"     // many lines per write(), like cat (128 KiB writes)
	PerLine Mode = "per-line" // one write() per line
)

// Case is one measurement.
type Case struct {
	LineSize int // bytes per line, newline included
	Mode     Mode
	Lines    int
}

// Result is one case's figures, each in lines/s and MB/s.
type Result struct {
	Case
	Kura, Local, Null Rate
}

// Rate is a throughput.
type Rate struct {
	Seconds float64
	LinesPS float64
	MBPS    float64
}

func rate(c Case, d time.Duration) Rate {
	s := d.Seconds()
	return Rate{Seconds: s, LinesPS: float64(c.Lines) / s, MBPS: float64(c.Lines*c.LineSize) / s / 1e6}
}

// Options configure Run.
type Options struct {
	Dir  string // scratch directory (default: a temp dir)
	Sync queue.SyncPolicy
	// ReceiverNoSync acknowledges before fsyncing the receiver's output.
	ReceiverNoSync bool
	Logger         *slog.Logger
	Out            io.Writer // progress lines
	// Repeat runs every measurement this many times, interleaved, and keeps
	// the best of each (default 1): the machine is shared and noisy, and
	// the best run is the one least disturbed.
	Repeat int
}

// writeBlock is the write size in bulk mode, like cat's.
const writeBlock = 128 << 10

// Run measures each case.
func Run(ctx context.Context, cases []Case, opts Options) ([]Result, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.Dir == "" {
		tmp, err := os.MkdirTemp("", "kura-ft-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		opts.Dir = tmp
	}
	var out []Result
	for i, c := range cases {
		dir := filepath.Join(opts.Dir, fmt.Sprintf("case%d", i))
		r := Result{Case: c}
		for rep := 0; rep < max(1, opts.Repeat); rep++ {
			local, err := measureLocal(c, filepath.Join(dir, "local"))
			if err != nil {
				return out, err
			}
			null, err := measureNull(c, filepath.Join(dir, "null"))
			if err != nil {
				return out, err
			}
			kura, err := measureKura(ctx, c, filepath.Join(dir, fmt.Sprint(rep)), opts)
			if err != nil {
				return out, err
			}
			r.Local, r.Null, r.Kura = best(r.Local, local), best(r.Null, null), best(r.Kura, kura)
		}
		fmt.Fprintf(opts.Out, "%5d B %-8s kura %10.0f lines/s %7.1f MB/s | null FUSE %10.0f lines/s | local %10.0f lines/s\n",
			c.LineSize, c.Mode, r.Kura.LinesPS, r.Kura.MBPS, r.Null.LinesPS, r.Local.LinesPS)
		out = append(out, r)
		os.RemoveAll(dir)
	}
	return out, nil
}

func best(a, b Rate) Rate {
	if a.LinesPS >= b.LinesPS {
		return a
	}
	return b
}

// writeLines writes the case's lines to f and returns how long it took.
func writeLines(f *os.File, c Case) (time.Duration, error) {
	line := []byte(strings.Repeat("x", c.LineSize-1) + "\n")
	start := time.Now()
	if c.Mode == PerLine {
		for i := 0; i < c.Lines; i++ {
			if _, err := f.Write(line); err != nil {
				return 0, err
			}
		}
		return time.Since(start), nil
	}
	perBlock := max(1, writeBlock/c.LineSize)
	block := []byte(strings.Repeat(string(line), perBlock))
	for left := c.Lines; left > 0; left -= perBlock {
		n := min(left, perBlock)
		if _, err := f.Write(block[:n*c.LineSize]); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

func measureLocal(c Case, dir string) (Rate, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Rate{}, err
	}
	f, err := os.Create(filepath.Join(dir, "bench.log"))
	if err != nil {
		return Rate{}, err
	}
	defer f.Close()
	d, err := writeLines(f, c)
	return rate(c, d), err
}

// nullFile is a file that accepts and discards every write.
type nullFile struct{ fs.Inode }

var _ = (fs.NodeWriter)((*nullFile)(nil))
var _ = (fs.NodeOpener)((*nullFile)(nil))
var _ = (fs.NodeSetattrer)((*nullFile)(nil))

func (n *nullFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, 0, 0
}

func (n *nullFile) Write(ctx context.Context, f fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	return uint32(len(data)), 0
}

func (n *nullFile) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o644
	return 0
}

type nullRoot struct{ fs.Inode }

func (r *nullRoot) OnAdd(ctx context.Context) {
	ch := r.NewPersistentInode(ctx, &nullFile{}, fs.StableAttr{Mode: syscall.S_IFREG})
	r.AddChild("bench.log", ch, false)
}

// measureNull writes to a file system that discards every write: the FUSE
// round trip with no work behind it.
func measureNull(c Case, dir string) (Rate, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Rate{}, err
	}
	srv, err := fs.Mount(dir, &nullRoot{}, &fs.Options{MountOptions: fuse.MountOptions{
		// The kura mount's options (ft/mount), so the ceiling is comparable.
		DirectMount: true, DirectMountStrict: true, MaxWrite: 1 << 20, MaxBackground: 64,
		DisableXAttrs: true, FsName: "kura-null", Name: "kura-null",
	}})
	if err != nil {
		return Rate{}, fmt.Errorf("mount null fs: %w", err)
	}
	defer srv.Unmount()
	f, err := os.OpenFile(filepath.Join(dir, "bench.log"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return Rate{}, err
	}
	defer f.Close()
	d, err := writeLines(f, c)
	return rate(c, d), err
}

func measureKura(ctx context.Context, c Case, dir string, opts Options) (Rate, error) {
	out := filepath.Join(dir, "out")
	mnt := filepath.Join(dir, "mnt")
	for _, d := range []string{out, mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return Rate{}, err
		}
	}
	srv, err := serve.New(serve.Options{OutDir: out, Logger: opts.Logger, NoSync: opts.ReceiverNoSync})
	if err != nil {
		return Rate{}, err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Rate{}, err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go srv.Serve(sctx, ln)

	a, err := agent.Start(agent.Options{
		Dir: mnt, To: ln.Addr().String(), StateDir: filepath.Join(dir, "state"),
		Queue: queue.Options{Sync: opts.Sync}, Logger: opts.Logger,
	})
	if err != nil {
		return Rate{}, err
	}
	defer a.Stop()
	f, err := os.OpenFile(filepath.Join(mnt, "bench.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return Rate{}, err
	}
	start := time.Now()
	if _, err := writeLines(f, c); err != nil {
		f.Close()
		return Rate{}, err
	}
	if err := f.Close(); err != nil {
		return Rate{}, err
	}
	want := int64(c.Lines * c.LineSize)
	target := filepath.Join(out, "bench.log")
	for {
		if st, err := os.Stat(target); err == nil && st.Size() >= want {
			break
		}
		if err := ctx.Err(); err != nil {
			return Rate{}, err
		}
		time.Sleep(2 * time.Millisecond)
	}
	return rate(c, time.Since(start)), nil
}
