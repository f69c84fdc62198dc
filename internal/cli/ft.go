package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/kura-dev/kura/ft/agent"
	"github.com/kura-dev/kura/ft/bench"
	"github.com/kura-dev/kura/ft/config"
	"github.com/kura-dev/kura/ft/queue"
	"github.com/kura-dev/kura/ft/serve"
	"github.com/kura-dev/kura/internal/metrics"
)

func newFTCommand(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "ft",
		Short: "Ship every line written under a directory to receiver hosts (K2HFTFUSE)",
		Long: `ft mounts kura over a directory; applications keep writing their logs there,
unchanged, and every line (or binary message) is queued durably on local disk
and delivered to a receiver ('kura ft serve'), exactly once, tagged with the
writer's host, pid/tid, time and path.

The mount is a full passthrough: the directory's files stay readable and the
written bytes also stay in the local files (per rule), so tail -f and
logrotate keep working.`,
		Example: `  # on the receiver host
  kura ft serve --listen 0.0.0.0:8470 --out /srv/logs
  # on each application host
  kura ft mount /var/log/app --to receiver:8470
  # ship what was written while nothing was mounted
  kura ft send --to receiver:8470 /var/log/app/old.log`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	c.AddCommand(ftServe(e), ftMount(e), ftUnmount(e), ftSend(e), ftBench(e))
	return c
}

// logFlags adds --log-level and returns a constructor for the logger.
func logFlags(c *cobra.Command, e *env) func() (*slog.Logger, error) {
	var level string
	c.Flags().StringVar(&level, "log-level", "info", "debug, info, warn or error")
	return func() (*slog.Logger, error) {
		var l slog.Level
		if err := l.UnmarshalText([]byte(level)); err != nil {
			return nil, usagef("--log-level %q: want debug, info, warn or error", level)
		}
		return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: l})), nil
	}
}

func loadFTConfig(file string) (*config.Config, error) {
	if file == "" {
		return &config.Config{}, nil
	}
	c, err := config.Load(file)
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

// pick returns the flag's value when it was set on the command line, else
// the config's value when set, else the flag's default.
func pick[T comparable](c *cobra.Command, flag string, flagVal, confVal T) T {
	var zero T
	if c.Flags().Changed(flag) || confVal == zero {
		return flagVal
	}
	return confVal
}

func ftServe(e *env) *cobra.Command {
	var listen, out, layout, unified, format, timeLayout, confFile, certFile, keyFile string
	var noSync, check bool
	var metricsAddr string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Receive records and append them to files that mirror the senders' paths",
		Long: `serve listens for senders and appends every record to a file under --out that
mirrors the record's path relative to the sender's mount point. Records are
acknowledged only once written (and fsynced, unless --no-sync); a record that
arrives twice (after a sender or receiver crash) is written once.

Layouts: path (default; all hosts writing the same path share OUT/path), host
(OUT/HOST/path), unified (everything in OUT/<unified-name>).

Formats: raw (default: the line and a newline; binary messages as they are),
json (one object per record with every attribute), or a template:
  %H host  %P pid  %p tid  %T time (--time-layout)  %F path  %f file name
  %L data  %l data trimmed  %%  and \n \t \\ escapes, e.g. '%T %H[%P] %L\n'`,
		Example: `  kura ft serve --listen 127.0.0.1:8470 --out /srv/logs
  kura ft serve --listen :8470 --out /srv/logs --layout host --format '%T %H %L\n'
  kura ft serve --config /etc/kura/ft.yaml --check-config`,
		Args: noArgs,
	}
	logger := logFlags(c, e)
	c.RunE = func(c *cobra.Command, args []string) error {
		conf, err := loadFTConfig(confFile)
		if err != nil {
			return err
		}
		s := conf.Serve
		opts := serve.Options{
			OutDir:      pick(c, "out", out, s.Out),
			UnifiedName: pick(c, "unified-name", unified, s.UnifiedName),
			Format:      pick(c, "format", format, s.Format),
			TimeLayout:  pick(c, "time-layout", timeLayout, s.TimeLayout),
			NoSync:      noSync || s.NoSync,
		}
		if opts.Format == "raw" {
			opts.Format = ""
		}
		if opts.Layout, err = serve.ParseLayout(pick(c, "layout", layout, s.Layout)); err != nil {
			return usageError{err}
		}
		if err := serve.ValidateFormat(opts.Format); err != nil {
			return usageError{fmt.Errorf("--format: %w", err)}
		}
		addr := pick(c, "listen", listen, s.Listen)
		if opts.OutDir == "" {
			return usagef("ft serve: say where to write: --out DIR")
		}
		if check {
			fmt.Fprintln(e.stdout, "configuration OK")
			return nil
		}
		if opts.Logger, err = logger(); err != nil {
			return err
		}
		if certFile != "" || keyFile != "" {
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return usageError{fmt.Errorf("--tls-cert/--tls-key: %w", err)}
			}
			opts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}
		srv, err := serve.New(opts)
		if err != nil {
			return err
		}
		defer srv.Close()
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("ft serve: %w", err)
		}
		if metricsAddr != "" {
			maddr, err := metrics.Serve(c.Context(), metricsAddr, opts.Logger, ftServeMetrics(srv))
			if err != nil {
				ln.Close()
				return err
			}
			fmt.Fprintf(e.stdout, "metrics on http://%s/metrics\n", maddr)
		}
		opts.Logger.Info("ft serve: listening", "addr", ln.Addr().String(), "out", opts.OutDir)
		fmt.Fprintf(e.stdout, "listening on %s, writing to %s\n", ln.Addr(), opts.OutDir)
		return srv.Serve(c.Context(), ln)
	}
	f := c.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:8470", "address to listen on")
	f.StringVar(&out, "out", "", "directory to write the records under")
	f.StringVar(&layout, "layout", "path", "path, host or unified")
	f.StringVar(&unified, "unified-name", "unified.log", "file name with --layout unified")
	f.StringVar(&format, "format", "raw", "raw, json or a template such as '%T %H %L\\n'")
	f.StringVar(&timeLayout, "time-layout", time.RFC3339Nano, "Go time layout for %T")
	f.BoolVar(&noSync, "no-sync", false, "acknowledge before fsyncing the output (a machine crash may lose acknowledged records)")
	f.StringVar(&confFile, "config", "", "YAML configuration file (its serve: section)")
	f.BoolVar(&check, "check-config", false, "validate the configuration and exit")
	f.StringVar(&certFile, "tls-cert", "", "serve TLS with this certificate (PEM)")
	f.StringVar(&keyFile, "tls-key", "", "and this private key (PEM)")
	f.StringVar(&metricsAddr, "metrics", "", "serve Prometheus metrics on this address (HOST:PORT)")
	return c
}

func clientTLS(caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, usageError{fmt.Errorf("--tls-ca: %w", err)}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, usagef("--tls-ca %s: no PEM certificate in it", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

func ftMount(e *env) *cobra.Command {
	var to, stateDir, confFile, syncPolicy, queueMax, queueFull, caFile, metricsAddr string
	var syncInterval, drain time.Duration
	var check, noAllowOther bool
	c := &cobra.Command{
		Use:   "mount MOUNTPOINT",
		Short: "Mount kura over a directory and ship what is written there",
		Long: `mount mounts kura over MOUNTPOINT (an existing directory, which stays usable
through the mount) and runs in the foreground until it is unmounted
('kura ft unmount MOUNTPOINT', umount, SIGTERM or SIGINT), then flushes
partial lines and exits.

A write() returns once its records are in the local queue (--queue, by default
under /var/lib/kura/ft/). --sync says when the queue is fsynced: interval (the
default: every --sync-interval, so a crash of kura loses nothing and a crash
of the machine at most that interval), always (before write() returns; writers
share fsyncs) or never. When the queue reaches --queue-max, writers block
(--queue-full block, the default) or the oldest records are dropped and
counted (drop-oldest). The receiver may be down at start: records wait.`,
		Example: `  kura ft mount /var/log/app --to receiver:8470
  kura ft mount /var/log/app --to receiver:8470 --sync always --queue /data/kura-queue
  kura ft mount /var/log/app --config /etc/kura/ft.yaml`,
		Args: exactArgs(1, "MOUNTPOINT"),
	}
	logger := logFlags(c, e)
	c.RunE = func(c *cobra.Command, args []string) error {
		conf, err := loadFTConfig(confFile)
		if err != nil {
			return err
		}
		m := conf.Mount
		opts := agent.Options{
			Dir:          args[0],
			To:           pick(c, "to", to, m.To),
			StateDir:     pick(c, "queue", stateDir, m.Queue),
			Config:       conf,
			DrainTimeout: drain,
			AllowOther:   !noAllowOther,
		}
		if opts.Queue.Sync, err = queue.ParseSyncPolicy(pick(c, "sync", syncPolicy, m.Sync)); err != nil {
			return usageError{fmt.Errorf("--sync: %w", err)}
		}
		if opts.Queue.Full, err = queue.ParseFullPolicy(pick(c, "queue-full", queueFull, m.QueueFull)); err != nil {
			return usageError{fmt.Errorf("--queue-full: %w", err)}
		}
		opts.Queue.SyncInterval = pick(c, "sync-interval", syncInterval, time.Duration(m.SyncInterval))
		if c.Flags().Changed("queue-max") || m.QueueMax == 0 {
			n, err := config.ParseSize(queueMax)
			if err != nil {
				return usageError{fmt.Errorf("--queue-max: %w", err)}
			}
			opts.Queue.MaxBytes = n
		} else {
			opts.Queue.MaxBytes = int64(m.QueueMax)
		}
		if opts.To == "" {
			return usagef("ft mount: say where to ship: --to HOST:PORT")
		}
		if check {
			fmt.Fprintln(e.stdout, "configuration OK")
			return nil
		}
		if opts.TLS, err = clientTLS(caFile); err != nil {
			return err
		}
		if opts.Logger, err = logger(); err != nil {
			return err
		}
		a, err := agent.Start(opts)
		if err != nil {
			return err
		}
		if metricsAddr != "" {
			mctx, stopMetrics := context.WithCancel(c.Context())
			defer stopMetrics()
			maddr, err := metrics.Serve(mctx, metricsAddr, opts.Logger, ftMountMetrics(a))
			if err != nil {
				a.Stop()
				return err
			}
			fmt.Fprintf(e.stdout, "metrics on http://%s/metrics\n", maddr)
		}
		fmt.Fprintf(e.stdout, "mounted %s, shipping to %s\n", opts.Dir, opts.To)
		a.Wait(c.Context())
		err = a.Stop()
		st := a.Stats()
		fmt.Fprintf(e.stdout, "unmounted %s: %d records written, %d delivered, %d queued\n",
			opts.Dir, st.Queue.AppendedRecords, st.Ship.RecordsAcked, st.Queue.LastSeq-st.Queue.AckedSeq)
		return err
	}
	f := c.Flags()
	f.StringVar(&to, "to", "", "receiver address HOST:PORT")
	f.StringVar(&stateDir, "queue", "", "state directory for the queue and sender id (default /var/lib/kura/ft/<mountpoint>)")
	f.StringVar(&confFile, "config", "", "YAML configuration file (mount: section and rules)")
	f.BoolVar(&check, "check-config", false, "validate the configuration and exit")
	f.StringVar(&syncPolicy, "sync", "interval", "queue fsync policy: interval, always or never")
	f.DurationVar(&syncInterval, "sync-interval", 200*time.Millisecond, "fsync period with --sync interval")
	f.StringVar(&queueMax, "queue-max", "1GiB", "most bytes queued on disk")
	f.StringVar(&queueFull, "queue-full", "block", "when the queue is full: block or drop-oldest")
	f.DurationVar(&drain, "drain-timeout", 5*time.Second, "at unmount, wait this long for queued records to be delivered")
	f.BoolVar(&noAllowOther, "no-allow-other", false, "only the mounting user may use the mount")
	f.StringVar(&caFile, "tls-ca", "", "connect with TLS, trusting this CA certificate (PEM)")
	f.StringVar(&metricsAddr, "metrics", "", "serve Prometheus metrics on this address (HOST:PORT)")
	return c
}

func ftUnmount(e *env) *cobra.Command {
	var lazy bool
	c := &cobra.Command{
		Use:   "unmount MOUNTPOINT",
		Short: "Unmount a kura ft mount; its process flushes and exits",
		Long: `unmount detaches the mount; the 'kura ft mount' process then emits partial
lines, waits briefly for delivery and exits. Files still open keep the mount
busy: close them first, or use --lazy to detach now and finish when they close.
Afterwards applications write into the plain directory again.`,
		Example: "  kura ft unmount /var/log/app\n  kura ft unmount /var/log/app --lazy",
		Args:    exactArgs(1, "MOUNTPOINT"),
		RunE: func(c *cobra.Command, args []string) error {
			flags := 0
			if lazy {
				flags = unix.MNT_DETACH
			}
			if err := unix.Unmount(args[0], flags); err != nil {
				if errors.Is(err, unix.EBUSY) {
					return fmt.Errorf("ft unmount %s: files are open under it (close them, or use --lazy)", args[0])
				}
				if errors.Is(err, unix.EINVAL) {
					return fmt.Errorf("ft unmount %s: not a mount point", args[0])
				}
				return fmt.Errorf("ft unmount %s: %w", args[0], err)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&lazy, "lazy", false, "detach now even if files are open (MNT_DETACH)")
	return c
}

func ftSend(e *env) *cobra.Command {
	var to, base, caFile string
	var binary bool
	c := &cobra.Command{
		Use:   "send --to HOST:PORT FILE...",
		Short: "Ship local files as records, like the mount would have",
		Long: `send ships files by hand: what applications wrote into the plain directory
while nothing was mounted. Text files go line by line, binary ones (--binary)
in 80 KiB messages; each record's path is the file's name, or its path
relative to --base. send returns when the receiver acknowledged everything.`,
		Example: `  kura ft send --to receiver:8470 /var/log/app/app.log
  kura ft send --to receiver:8470 --base /var/log/app /var/log/app/sub/*.log`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("ft send: name the files to send")
			}
			return nil
		},
	}
	logger := logFlags(c, e)
	c.RunE = func(c *cobra.Command, args []string) error {
		if to == "" {
			return usagef("ft send: say where to send: --to HOST:PORT")
		}
		for _, f := range args {
			st, err := os.Stat(f)
			if err != nil {
				return usageError{fmt.Errorf("ft send: %w", err)}
			}
			if !st.Mode().IsRegular() {
				return usagef("ft send: %s is not a regular file", f)
			}
		}
		tlsConf, err := clientTLS(caFile)
		if err != nil {
			return err
		}
		log, err := logger()
		if err != nil {
			return err
		}
		res, err := agent.SendFiles(c.Context(), args, agent.SendOptions{To: to, TLS: tlsConf, Base: base, Binary: binary, Progress: e.stderr, Logger: log})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "sent %d files: %d records, %d bytes\n", res.Files, res.Records, res.Bytes)
		return nil
	}
	f := c.Flags()
	f.StringVar(&to, "to", "", "receiver address HOST:PORT")
	f.StringVar(&base, "base", "", "send paths relative to this directory (default: file names)")
	f.BoolVar(&binary, "binary", false, "send binary messages instead of lines")
	f.StringVar(&caFile, "tls-ca", "", "connect with TLS, trusting this CA certificate (PEM)")
	return c
}

func ftBench(e *env) *cobra.Command {
	var sizes []int
	var modes []string
	var bulkLines, perLineLines int
	var syncPolicy, dir string
	var rxNoSync bool
	var cpuProfile string
	var repeat int
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure end-to-end throughput, write() to the receiver's file, beside its ceilings",
		Long: `bench runs a receiver and a mount in this process, writes lines into the
mount and times until the receiver's file holds them all. Beside each figure
it prints the ceilings: the same writes to a plain local file, and to a null
FUSE file system that discards them. Modes: bulk (128 KiB writes, like cat)
and per-line (one write() per line). Needs root (FUSE).`,
		Example: `  kura ft bench
  kura ft bench --sizes 10,4096 --modes bulk --bulk-lines 4000000`,
		Args: noArgs,
	}
	logger := logFlags(c, e)
	c.RunE = func(c *cobra.Command, args []string) error {
		sp, err := queue.ParseSyncPolicy(syncPolicy)
		if err != nil {
			return usageError{fmt.Errorf("--sync: %w", err)}
		}
		var cases []bench.Case
		for _, m := range modes {
			for _, s := range sizes {
				if s < 2 {
					return usagef("--sizes: a line of %d bytes has no room for its newline", s)
				}
				switch bench.Mode(m) {
				case bench.Bulk:
					cases = append(cases, bench.Case{LineSize: s, Mode: bench.Bulk, Lines: min(bulkLines, (256<<20)/s)})
				case bench.PerLine:
					cases = append(cases, bench.Case{LineSize: s, Mode: bench.PerLine, Lines: perLineLines})
				default:
					return usagef("--modes: %q is not bulk or per-line", m)
				}
			}
		}
		log, err := logger()
		if err != nil {
			return err
		}
		if !c.Flags().Changed("log-level") {
			log = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}
		if cpuProfile != "" {
			f, err := os.Create(cpuProfile)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			defer pprof.StopCPUProfile()
		}
		fmt.Fprintf(e.stdout, "kura ft bench: sender and receiver on this machine, queue sync %s, best of %d\n", sp, repeat)
		res, err := bench.Run(c.Context(), cases, bench.Options{Dir: dir, Sync: sp, ReceiverNoSync: rxNoSync, Logger: log, Out: e.stdout, Repeat: repeat})
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, "\n| line | mode | kura lines/s | kura MB/s | null FUSE lines/s | kura/null | local file lines/s |")
		fmt.Fprintln(e.stdout, "|---|---|---|---|---|---|---|")
		for _, r := range res {
			fmt.Fprintf(e.stdout, "| %d B | %s | %.0f | %.1f | %.0f | %.2f | %.0f |\n", r.LineSize, r.Mode,
				r.Kura.LinesPS, r.Kura.MBPS, r.Null.LinesPS, r.Kura.LinesPS/r.Null.LinesPS, r.Local.LinesPS)
		}
		return nil
	}
	f := c.Flags()
	f.IntSliceVar(&sizes, "sizes", []int{10, 128, 1024, 4096}, "line sizes in bytes, newline included")
	f.StringSliceVar(&modes, "modes", []string{"bulk", "per-line"}, "bulk and/or per-line")
	f.IntVar(&bulkLines, "bulk-lines", 2_000_000, "lines per bulk case (capped at 256 MiB of data)")
	f.IntVar(&perLineLines, "per-line-lines", 100_000, "lines per per-line case")
	f.StringVar(&syncPolicy, "sync", "interval", "queue fsync policy: interval, always or never")
	f.StringVar(&dir, "dir", "", "scratch directory (default: a temporary one)")
	f.IntVar(&repeat, "repeat", 3, "run each measurement this many times, interleaved, and keep the best")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	f.BoolVar(&rxNoSync, "receiver-no-sync", false, "the receiver acknowledges before fsyncing its output")
	return c
}
