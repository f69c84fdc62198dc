package cli

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	dfsclient "github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/datanode"
	"github.com/kura-dev/kura/dfs/hdfs"
	"github.com/kura-dev/kura/dfs/namenode"
)

// The phases of 'kura dfs bench', in the order they run.
const (
	dfsBenchRPC    = "rpc"
	dfsBenchCreate = "create"
	dfsBenchStat   = "stat"
	dfsBenchList   = "list"
	dfsBenchRename = "rename"
	dfsBenchDelete = "delete"
	dfsBenchWrite  = "write"
	dfsBenchRead   = "read"
)

// dfsBenchPhases returns every phase in running order.
func dfsBenchPhases() []string {
	return []string{dfsBenchRPC, dfsBenchCreate, dfsBenchStat, dfsBenchList, dfsBenchRename, dfsBenchDelete, dfsBenchWrite, dfsBenchRead}
}

const (
	// dfsBenchChunk is the size of the writes and reads of the data phases
	// (and of the pieces of the files' pseudo-random streams).
	dfsBenchChunk = 1 << 20
	// dfsBenchReadyWait bounds the wait for the embedded datanodes to
	// register.
	dfsBenchReadyWait = 30 * time.Second
	// dfsBenchCleanupWait bounds the removal of the benchmark directory.
	dfsBenchCleanupWait = 2 * time.Minute
	// dfsBenchListEvery: the list phase lists a client's directory once per
	// this many files of it.
	dfsBenchListEvery = 10
	// dfsBenchMB is the unit of the MB/s figures.
	dfsBenchMB = 1e6
)

// dfsBenchOpts are the flags of 'kura dfs bench'.
type dfsBenchOpts struct {
	meta        string
	metaDelay   time.Duration
	namenodes   string
	datanodes   int
	dir         string
	user        string
	clients     int
	files       int
	size        string
	dataFiles   int
	replication int
	blockSize   string
	phases      string
	json        bool
	logLevel    string
	cpuProfile  string
	via         string
	mounts      int
	fuseCache   time.Duration
}

// dfsBenchPlan is a validated run of 'kura dfs bench'.
type dfsBenchPlan struct {
	o         dfsBenchOpts
	addrs     []string // --namenode; nil: embedded servers
	size      int64
	blockSize int64 // 0: the namenode's default
	repl      int   // 0: the namenode's default
	measured  map[string]bool
	run       []string // phases to run, measured or not, in order
	logLevel  slog.Level
	fuse      bool     // --via fuse
	skipped   []string // phases of the default --phases not run through FUSE
}

func dfsBench(e *env) *cobra.Command {
	o := &dfsBenchOpts{}
	c := &cobra.Command{
		Use:   "bench",
		Short: "Benchmark dfs: metadata ops/s and data MB/s, beside a local-disk ceiling",
		Long: `bench measures a dfs through the real client path (dfs/client over the
namenode's RPC and the datanodes' DataTransfer) and prints one row per phase.

Metadata phases: --clients goroutines, each with its own client (its own
connection), work in their own directory, DIR/c<k>, on --files files each:
  rpc      GetServerDefaults, a namenode call that reads no metadata: the
           ceiling of every metadata operation over the same connections
           (the RPC alone, no database)
  create   Create + Close of an empty file (two namenode calls: create, complete)
  stat     Stat of each file
  list     a listing of the client's whole directory (--files entries), once
           per 10 files (at least once)
  rename   Rename of each file within its directory (f -> f.r)
  delete   Delete of each file
Each row gives ops/s over the phase's wall time, the mean, p50 and p99
latency of one operation, and the CPU time (user + system) this process
spent per operation: clients and embedded namenode together, or the
clients alone with --namenode; never a PostgreSQL server's. On a busy
machine it varies much less than ops/s.

Data phases: --size bytes in --data-files files, written by as many
concurrent writers (each its own client) with --replication and
--block-size, then read back by as many readers, which check every byte
(each file is a deterministic pseudo-random stream). Beside kura's MB/s
(10^6 bytes/s) stands the local-disk ceiling: the same streams written by
the same number of goroutines to plain files in the same temporary directory
(the datanodes' file system), each fsynced at its end (as the datanodes
finalize blocks), then read back and checked the same way. Replication R
writes R copies on this machine, so the write row also gives ceiling/R, the
best a disk-bound write could do. Nothing is dropped from the page cache
before the reads: both read figures are page-cache reads.

A phase that needs files of a phase left out of --phases runs it first,
unmeasured (stat alone creates the files; read alone writes them).

--via fuse measures the way mdtest does, through FUSE: bench mounts the
namespace with dfs/fuse (as 'kura dfs mount') at --mounts temporary mount
points, each mount its own dfs client (its own connection and lease holder),
with the kernel's entry and attribute caches at --fuse-cache (1s, JuiceFS's
default; 0 for none), and spreads the --clients goroutines over the mounts
round-robin (--clients 12 --mounts 3: 3 clients x 4 processes). Each
metadata phase is then plain system calls on the mount: create
open(O_CREAT|O_EXCL|O_WRONLY, 0644) + close, stat lstat, list a readdir of
the client's directory, rename rename, delete unlink. Within the cache time
of the kernel's last look at a name, a stat is answered by the kernel
without reaching kura (as with JuiceFS's published figures). Beside each
row, in the same run, two ceilings on this machine with the same clients and
files: null-fuse, the same calls on --mounts go-fuse loopback mounts of a
local directory with the same caches (the FUSE cost alone), and local, the
same calls on a plain directory in the temporary directory; kura/this is
kura's ops/s over the ceiling's. rpc has no file-system call: with --via
fuse it is left out of the default --phases and refused in an explicit one.
The data phases write and read the files through the mounts with 1 MiB
write(2)s and read(2)s (file i through mount i mod --mounts). Mounting needs
/dev/fuse, and root (other users: fuse3's fusermount3). Every mount is
unmounted at the end, also after a failure or Ctrl-C.

Servers: by default bench starts, in this process and in a temporary
directory (under $TMPDIR, removed at the end), a namenode (RPC on a free
127.0.0.1 port) on a temporary SQLite database, or on --meta, and --datanodes
datanodes. --namenode HOST:PORT[,...] benchmarks a running cluster through
those namenodes' --rpc addresses instead (then --user must be allowed to
create the benchmark directory; the data ceiling is this machine's disk).

Everything happens under one directory, --dir (default /kura-bench-<random>),
which must not exist: bench creates it (with its missing parents) and
removes what it created, recursively, at the end, also after a failure or
Ctrl-C. A database or cluster that already holds files is refused
unless --dir names the (new) benchmark directory: bench never touches
anything else.

Progress goes to stderr (a line a second in long phases), the results to
stdout, as a table or, with --json, as one JSON object.

For reference, JuiceFS publishes ~4,700 file creates/s and ~233,000 stats/s
with its metadata on PostgreSQL (3 clients x 4 processes, larger machines):
--clients 12 is that concurrency. scripts/pg.sh's PostgreSQL runs with fsync
off (a test cluster): say so beside figures taken on it.`,
		Example: `  # Embedded namenode on a temporary SQLite database and 3 datanodes:
  kura dfs bench
  kura dfs bench --clients 12 --files 1000 --phases create,stat
  kura dfs bench --phases write,read --size 1GiB --data-files 8 --replication 1 --json

  # The metadata on PostgreSQL: a throwaway server (fsync off) from scripts/pg.sh.
  URL=$(bash scripts/pg.sh start /tmp/kura-pg)
  kura dfs bench --meta "$URL" --clients 12
  bash scripts/pg.sh stop /tmp/kura-pg && rm -rf /tmp/kura-pg

  # A running cluster, through its namenodes (the database holds files: name a new --dir).
  kura dfs bench --namenode 127.0.0.1:8020,127.0.0.1:8021 --dir /tmp/bench1 --user hdfs

  # mdtest's way, as JuiceFS's published figures: 3 FUSE mounts x 4 processes,
  # 1 s kernel caches, beside a null FUSE (loopback) and a local-directory ceiling.
  kura dfs bench --via fuse --mounts 3 --clients 12 --files 500 --phases create,stat,delete`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return runDFSBench(c.Context(), e, c.Flags(), o)
		},
	}
	fl := c.Flags()
	fl.StringVar(&o.meta, "meta", "", "metadata database of the embedded namenode: sqlite:///path/meta.db or postgres://... (default: a temporary SQLite database)")
	fl.DurationVar(&o.metaDelay, "meta-delay", 0, "with a postgres:// --meta: reach the database through a proxy that holds every packet this long each way (a database on another machine: round trip 2x this)")
	fl.StringVar(&o.namenodes, "namenode", "", "benchmark the running cluster at these namenode RPC addresses, HOST:PORT[,HOST:PORT...], instead of embedded servers")
	fl.IntVar(&o.datanodes, "datanodes", 3, "embedded datanodes to start")
	fl.StringVar(&o.dir, "dir", "", "benchmark directory, must not exist; created (with missing parents) and removed at the end (default /kura-bench-<random>)")
	fl.StringVar(&o.user, "user", namenodeSuperuser, "user the clients call as")
	fl.IntVar(&o.clients, "clients", 16, "concurrent metadata clients, each with its own connection")
	fl.IntVar(&o.files, "files", 500, "files per metadata client")
	fl.StringVar(&o.size, "size", "256MiB", "total bytes of the data phases (units: B, KiB, MiB, GiB, TiB; kB, MB, GB, TB)")
	fl.IntVar(&o.dataFiles, "data-files", 4, "files of the data phases, written and read concurrently")
	fl.IntVar(&o.replication, "replication", 0, "replication of the data files (default min(3, --datanodes); with --namenode the namenode's default)")
	fl.StringVar(&o.blockSize, "block-size", "", "block size of the data files, e.g. 64MiB, at least the namenode's minimum (1 MiB unless configured) (default the namenode's)")
	fl.StringVar(&o.phases, "phases", strings.Join(dfsBenchPhases(), ","), "phases to measure, comma-separated")
	fl.BoolVar(&o.json, "json", false, "print the results as one JSON object")
	fl.StringVar(&o.logLevel, "log-level", "warn", "log level of the embedded namenode and datanodes (to stderr): debug, info, warn or error")
	fl.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run (servers and clients) to this file")
	fl.StringVar(&o.via, "via", dfsBenchViaClient, "how the phases reach dfs: client (the Go client, one call per op) or fuse (system calls on FUSE mounts of the namespace, as mdtest)")
	fl.IntVar(&o.mounts, "mounts", 3, "with --via fuse: FUSE mounts of the namespace, one dfs client each; the --clients goroutines are spread over them")
	fl.DurationVar(&o.fuseCache, "fuse-cache", time.Second, "with --via fuse: the kernel's entry and attribute cache time of the mounts (0: none)")
	return c
}

// namenodeSuperuser is the embedded namenode's superuser.
const namenodeSuperuser = "root"

// The values of --via.
const (
	dfsBenchViaClient = "client"
	dfsBenchViaFUSE   = "fuse"
)

// plan validates the flags, naming the flag and its value when one is bad.
func (o *dfsBenchOpts) plan(fl *pflag.FlagSet) (*dfsBenchPlan, error) {
	p := &dfsBenchPlan{o: *o, measured: map[string]bool{}}
	for _, ph := range strings.Split(o.phases, ",") {
		ph = strings.TrimSpace(ph)
		if ph == "" {
			continue
		}
		if !slices.Contains(dfsBenchPhases(), ph) {
			return nil, usagef("dfs bench: --phases %q: unknown phase %q (want some of %s)", o.phases, ph, strings.Join(dfsBenchPhases(), ","))
		}
		p.measured[ph] = true
	}
	if len(p.measured) == 0 {
		return nil, usagef("dfs bench: --phases %q: no phase given (want some of %s)", o.phases, strings.Join(dfsBenchPhases(), ","))
	}
	switch o.via {
	case dfsBenchViaClient:
		if fl.Changed("mounts") {
			return nil, usagef("dfs bench: --mounts %d with --via %s: mounts are for --via fuse", o.mounts, o.via)
		}
		if fl.Changed("fuse-cache") {
			return nil, usagef("dfs bench: --fuse-cache %v with --via %s: the cache is the FUSE mounts' (--via fuse)", o.fuseCache, o.via)
		}
	case dfsBenchViaFUSE:
		p.fuse = true
		if o.mounts < 1 {
			return nil, usagef("dfs bench: --mounts %d: must be >= 1", o.mounts)
		}
		if o.fuseCache < 0 {
			return nil, usagef("dfs bench: --fuse-cache %v: want a duration >= 0 (0: no cache)", o.fuseCache)
		}
		if p.measured[dfsBenchRPC] {
			if fl.Changed("phases") {
				return nil, usagef("dfs bench: --phases %q with --via fuse: rpc has no file-system call (measure it with --via client)", o.phases)
			}
			delete(p.measured, dfsBenchRPC)
			p.skipped = append(p.skipped, dfsBenchRPC)
		}
	default:
		return nil, usagef("dfs bench: --via %q: want client or fuse", o.via)
	}
	p.run = dfsBenchRunOrder(p.measured)
	data := p.needsData()

	switch {
	case o.clients < 1:
		return nil, usagef("dfs bench: --clients %d: must be >= 1", o.clients)
	case o.files < 1:
		return nil, usagef("dfs bench: --files %d: must be >= 1", o.files)
	case o.dataFiles < 1:
		return nil, usagef("dfs bench: --data-files %d: must be >= 1", o.dataFiles)
	case o.replication < 0:
		return nil, usagef("dfs bench: --replication %d: must be >= 1 (or 0 for the default)", o.replication)
	case o.datanodes < 0:
		return nil, usagef("dfs bench: --datanodes %d: must be >= 0", o.datanodes)
	case o.user == "":
		return nil, usagef("dfs bench: --user %q: name a user", o.user)
	}
	var err error
	if p.size, err = dfsBenchParseSize(o.size); err != nil || p.size < 1 {
		if err == nil {
			err = errors.New("must be at least 1 byte")
		}
		return nil, usagef("dfs bench: --size %q: %v", o.size, err)
	}
	if p.size < int64(o.dataFiles) {
		return nil, usagef("dfs bench: --size %q: fewer bytes than --data-files %d", o.size, o.dataFiles)
	}
	if o.blockSize != "" {
		if p.blockSize, err = dfsBenchParseSize(o.blockSize); err != nil || p.blockSize < 1 {
			if err == nil {
				err = errors.New("must be at least 1 byte")
			}
			return nil, usagef("dfs bench: --block-size %q: %v", o.blockSize, err)
		}
	}
	if l := o.logLevel; l != "" {
		if err := p.logLevel.UnmarshalText([]byte(l)); err != nil {
			return nil, usagef("dfs bench: --log-level %q: want debug, info, warn or error", l)
		}
	}
	if o.dir != "" {
		d, err := hdfs.Clean(hdfs.Normalize(o.dir))
		if err != nil || d == hdfs.Root {
			return nil, usagef("dfs bench: --dir %q: want an absolute path below /, without . or .. components", o.dir)
		}
		p.o.dir = d
	}

	if o.namenodes != "" {
		if fl.Changed("meta") {
			return nil, usagef("dfs bench: --meta %q with --namenode %q: --meta is the embedded namenode's database; give one or the other", namenode.RedactURL(o.meta), o.namenodes)
		}
		if fl.Changed("datanodes") {
			return nil, usagef("dfs bench: --datanodes %d with --namenode %q: a running cluster has its own datanodes", o.datanodes, o.namenodes)
		}
		for _, a := range strings.Split(o.namenodes, ",") {
			a = strings.TrimSpace(a)
			if a == "" {
				continue
			}
			if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" {
				return nil, usagef("dfs bench: --namenode %q: %q is not HOST:PORT", o.namenodes, a)
			}
			p.addrs = append(p.addrs, a)
		}
		if len(p.addrs) == 0 {
			return nil, usagef("dfs bench: --namenode %q: no address given", o.namenodes)
		}
		p.repl = o.replication
		return p, nil
	}

	if o.meta != "" {
		if err := namenode.CheckMetaURL(o.meta); err != nil {
			return nil, usagef("dfs bench: --meta: %v", err)
		}
	}
	if o.metaDelay < 0 || o.metaDelay > 0 && !strings.HasPrefix(o.meta, "postgres") {
		return nil, usagef("dfs bench: --meta-delay %v: want a positive delay and a postgres:// --meta", o.metaDelay)
	}
	if data && o.datanodes < 1 {
		return nil, usagef("dfs bench: --datanodes %d: the data phases need at least 1 (or leave write and read out of --phases)", o.datanodes)
	}
	p.repl = o.replication
	if p.repl == 0 {
		p.repl = min(3, max(o.datanodes, 1))
	}
	if data && p.repl > o.datanodes {
		return nil, usagef("dfs bench: --replication %d: more than the %d --datanodes", p.repl, o.datanodes)
	}
	return p, nil
}

// dfsBenchRunOrder returns the phases to run for the measured ones: each
// in running order, preceded by the unmeasured ones it needs (create
// before stat, list, rename and delete; write before read).
func dfsBenchRunOrder(measured map[string]bool) []string {
	need := map[string]bool{}
	for ph := range measured {
		need[ph] = true
		switch ph {
		case dfsBenchStat, dfsBenchList, dfsBenchRename, dfsBenchDelete:
			need[dfsBenchCreate] = true
		case dfsBenchRead:
			need[dfsBenchWrite] = true
		}
	}
	var out []string
	for _, ph := range dfsBenchPhases() {
		if need[ph] {
			out = append(out, ph)
		}
	}
	return out
}

// needsMeta tells whether a metadata phase runs.
func (p *dfsBenchPlan) needsMeta() bool {
	return slices.ContainsFunc(p.run, func(ph string) bool { return ph != dfsBenchWrite && ph != dfsBenchRead })
}

// needsData tells whether a data phase runs.
func (p *dfsBenchPlan) needsData() bool {
	return slices.Contains(p.run, dfsBenchWrite)
}

// dfsBenchParseSize reads a byte count: a number (decimals allowed) with
// an optional unit, binary (KiB, MiB, GiB, TiB, or K, M, G, T) or decimal
// (kB, MB, GB, TB), B or none for bytes; units are case-insensitive.
func dfsBenchParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, errors.New("want a number with an optional unit, e.g. 256MiB")
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", num)
	}
	units := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40,
		"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	}
	mult, ok := units[unit]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q (want B, KiB, MiB, GiB, TiB, kB, MB, GB or TB)", t[i:])
	}
	n := v * mult
	if n >= math.MaxInt64 {
		return 0, errors.New("too large")
	}
	if n != math.Trunc(n) {
		return 0, errors.New("not a whole number of bytes")
	}
	return int64(n), nil
}

// dfsBenchFormatBytes formats n in the largest binary unit that keeps it
// at least 1 ("256 MiB", "1.5 GiB", "100 B").
func dfsBenchFormatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v, u := float64(n), 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
	return s + " " + units[u]
}

// dfsBenchThousands formats v rounded, with thousands separators.
func dfsBenchThousands(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// dfsBenchSyncWriter serializes writes to a stream shared by goroutines
// (progress lines and the embedded servers' logs).
type dfsBenchSyncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *dfsBenchSyncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// dfsBenchReport is the outcome of a run (the --json object).
type dfsBenchReport struct {
	// Meta describes the metadata database ("" for a running cluster).
	Meta string `json:"meta,omitempty"`
	// Backend is the embedded namenode's ("sqlite", "postgres"; "" for a
	// running cluster).
	Backend string `json:"backend,omitempty"`
	// MetaDelayMs is --meta-delay in milliseconds (0: none).
	MetaDelayMs float64  `json:"meta_delay_ms,omitempty"`
	Embedded    bool     `json:"embedded"`
	Namenodes   []string `json:"namenodes"`
	// Datanodes is the number of embedded datanodes (0 for a running
	// cluster).
	Datanodes      int               `json:"datanodes,omitempty"`
	Dir            string            `json:"dir"`
	Clients        int               `json:"clients,omitempty"`
	FilesPerClient int               `json:"files_per_client,omitempty"`
	Metadata       []dfsBenchMetaRow `json:"metadata,omitempty"`
	Data           *dfsBenchData     `json:"data,omitempty"`
	// Unmeasured are the phases run only to prepare measured ones.
	Unmeasured []string `json:"unmeasured,omitempty"`
	// Via is how the phases reached dfs: "client" (the Go client) or
	// "fuse" (system calls on FUSE mounts, see Fuse).
	Via string `json:"via"`
	// Fuse describes the mounts of --via fuse.
	Fuse *dfsBenchFuseSetup `json:"fuse,omitempty"`
}

// dfsBenchFuseSetup is the setup of a --via fuse run.
type dfsBenchFuseSetup struct {
	// Mounts is the number of FUSE mounts of the namespace (one dfs
	// client each); the clients are spread over them round-robin.
	Mounts int `json:"mounts"`
	// Cache is the kernel's entry and attribute cache time of every mount
	// (kura's and null FUSE's), as a Go duration, and CacheMs the same in
	// milliseconds (0: none).
	Cache   string  `json:"cache"`
	CacheMs float64 `json:"cache_ms"`
	// LocalDir is the local ceiling's directory, NullFuseDir the local
	// directory the null FUSE mounts serve.
	LocalDir    string `json:"local_dir"`
	NullFuseDir string `json:"null_fuse_dir"`
	// Skipped are the phases of the default --phases not run through
	// FUSE (rpc).
	Skipped []string `json:"skipped,omitempty"`
}

// dfsBenchMetaRow is one metadata phase's figures.
type dfsBenchMetaRow struct {
	Phase     string  `json:"phase"`
	Ops       int64   `json:"ops"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_sec"`
	MeanMs    float64 `json:"mean_ms"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	// Entries is the number of entries the list phase returned.
	Entries int64 `json:"entries,omitempty"`
	// CPUUsPerOp is the bench process's CPU time (user + system) over the
	// phase per operation, in microseconds: with embedded servers the
	// clients' and the namenode's (not a PostgreSQL server's), with
	// --namenode the clients' alone. Less sensitive to a busy machine than
	// ops/s.
	CPUUsPerOp float64 `json:"cpu_us_per_op"`
	// With --via fuse, the same phase on the ceilings: NullFuse through
	// go-fuse loopback mounts of a local directory, Local on a plain
	// local directory.
	NullFuse *dfsBenchCeilingRow `json:"null_fuse,omitempty"`
	Local    *dfsBenchCeilingRow `json:"local,omitempty"`
}

// dfsBenchCeilingRow is a metadata phase's figures on a ceiling.
type dfsBenchCeilingRow struct {
	Ops       int64   `json:"ops"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_sec"`
	MeanMs    float64 `json:"mean_ms"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	Entries   int64   `json:"entries,omitempty"`
	// Ratio is kura's ops/s over this ceiling's.
	Ratio float64 `json:"ratio"`
}

// dfsBenchData is the data phases' setup and figures.
type dfsBenchData struct {
	Bytes       int64 `json:"bytes"`
	Files       int   `json:"files"`
	Replication int   `json:"replication"`
	BlockSize   int64 `json:"block_size"`
	// CeilingDir is where the local-disk ceiling's files were written.
	CeilingDir string            `json:"ceiling_dir"`
	Rows       []dfsBenchDataRow `json:"rows"`
}

// dfsBenchDataRow is one data phase's figures beside its ceiling.
type dfsBenchDataRow struct {
	Phase           string  `json:"phase"`
	Seconds         float64 `json:"seconds"`
	MBPerSec        float64 `json:"mb_per_sec"`
	CeilingSeconds  float64 `json:"ceiling_seconds"`
	CeilingMBPerSec float64 `json:"ceiling_mb_per_sec"`
	// Ratio is MBPerSec / CeilingMBPerSec.
	Ratio float64 `json:"ratio"`
	// CeilingPerReplicaMBPerSec is CeilingMBPerSec / replication, for
	// writes: the R copies share one disk.
	CeilingPerReplicaMBPerSec float64 `json:"ceiling_per_replica_mb_per_sec,omitempty"`
	RatioPerReplica           float64 `json:"ratio_per_replica,omitempty"`
}

// dfsBenchRun is one run's state.
type dfsBenchRun struct {
	p      *dfsBenchPlan
	e      *env
	errw   io.Writer // e.stderr, serialized
	tmp    string    // the temporary directory
	addrs  []string  // namenode RPC addresses
	dir    string    // the benchmark directory
	top    string    // its highest ancestor bench created (dir or above)
	meta   []*dfsclient.Client
	data   []*dfsclient.Client
	rep    dfsBenchReport
	rename bool             // the files were renamed
	fuse   *dfsBenchFuseRun // --via fuse: the mounts
}

func runDFSBench(ctx context.Context, e *env, fl *pflag.FlagSet, o *dfsBenchOpts) (err error) {
	p, err := o.plan(fl)
	if err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	r := &dfsBenchRun{p: p, e: e, errw: &dfsBenchSyncWriter{w: e.stderr}}
	r.rep.Via = o.via
	// Everything set up is undone on the way out, in reverse order, even
	// after a failure or Ctrl-C (ctx cancelled).
	var cleanups []func() error
	during := "" // the phase running
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			if cerr := cleanups[i](); cerr != nil {
				fmt.Fprintf(r.errw, "dfs bench: %v\n", cerr)
				if err == nil {
					err = cerr
				}
			}
		}
		if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
			err = fmt.Errorf("dfs bench: interrupted%s; the benchmark directory and temporary files are removed: %w", during, context.Canceled)
		}
	}()

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("dfs bench: --cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("dfs bench: --cpuprofile: %w", err)
		}
		cleanups = append(cleanups, func() error {
			pprof.StopCPUProfile()
			return f.Close()
		})
	}

	if r.tmp, err = os.MkdirTemp("", "kura-dfs-bench-"); err != nil {
		return fmt.Errorf("dfs bench: temporary directory: %w", err)
	}
	cleanups = append(cleanups, func() error {
		// Never remove through a mount: the namespace is below it.
		if err := dfsBenchNoMountsUnder(r.tmp); err != nil {
			return err
		}
		if err := os.RemoveAll(r.tmp); err != nil {
			return fmt.Errorf("removing the temporary directory: %w", err)
		}
		return nil
	})

	if p.addrs != nil {
		r.addrs = p.addrs
		r.rep.Namenodes = p.addrs
		fmt.Fprintf(r.errw, "dfs bench: benchmarking the cluster at %s\n", strings.Join(p.addrs, ","))
	} else {
		stop, err := r.startServers(ctx)
		cleanups = append(cleanups, stop)
		if err != nil {
			return err
		}
	}

	closeClients, err := r.newClients()
	cleanups = append(cleanups, closeClients)
	if err != nil {
		return err
	}
	err = r.makeDir(ctx)
	if r.rep.Dir != "" {
		cleanups = append(cleanups, r.removeDir)
	}
	if err != nil {
		return err
	}
	if p.fuse {
		unmount, err := r.mountAll(ctx)
		cleanups = append(cleanups, unmount)
		if err != nil {
			return err
		}
	}

	lastMeta := -1 // the last metadata phase: the ceilings of --via fuse run after it
	for i, ph := range p.run {
		if ph != dfsBenchWrite && ph != dfsBenchRead {
			lastMeta = i
		}
	}
	for i, ph := range p.run {
		measured := p.measured[ph]
		during = " during " + ph
		if !measured {
			r.rep.Unmeasured = append(r.rep.Unmeasured, ph)
			fmt.Fprintf(r.errw, "dfs bench: %s (not measured: the measured phases need it)\n", ph)
		}
		var perr error
		switch ph {
		case dfsBenchWrite:
			perr = r.writePhase(ctx, measured)
		case dfsBenchRead:
			perr = r.readPhase(ctx)
		default:
			var row dfsBenchMetaRow
			row, perr = r.metaPhase(ctx, ph)
			if perr == nil && measured {
				r.rep.Metadata = append(r.rep.Metadata, row)
			}
		}
		if perr != nil {
			r.print()
			return fmt.Errorf("dfs bench: %s: %w", ph, perr)
		}
		if p.fuse && i == lastMeta {
			if perr := r.fuseCeilings(ctx, &during); perr != nil {
				r.print()
				return fmt.Errorf("dfs bench:%s: %w", strings.TrimPrefix(during, " during"), perr)
			}
		}
	}
	r.print()
	return nil
}

// startServers starts the embedded namenode and datanodes; stop stops
// whatever was started (also when err is set).
func (r *dfsBenchRun) startServers(ctx context.Context) (stop func() error, err error) {
	p := r.p
	log := slog.New(slog.NewTextHandler(r.errw, &slog.HandlerOptions{Level: p.logLevel}))
	meta := p.o.meta
	r.rep.Embedded = true
	r.rep.Meta = namenode.RedactURL(meta)
	if meta == "" {
		meta = "sqlite://" + filepath.Join(r.tmp, "meta.db")
		r.rep.Meta = "a temporary SQLite database"
	}
	var nn *namenode.Namenode
	var dns []*datanode.Datanode
	var proxy *delayProxy
	stop = func() error {
		var errs []error
		for _, d := range dns {
			if err := d.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if nn != nil {
			if err := nn.Close(); err != nil {
				errs = append(errs, fmt.Errorf("namenode: %w", err))
			}
		}
		if proxy != nil {
			if err := proxy.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	if p.o.metaDelay > 0 {
		u, err := url.Parse(meta)
		if err != nil || u.Port() == "" {
			return stop, usagef("dfs bench: --meta-delay needs a --meta URL with HOST:PORT, not %q", namenode.RedactURL(meta))
		}
		if proxy, err = startDelayProxy(u.Host, p.o.metaDelay); err != nil {
			return stop, fmt.Errorf("dfs bench: %w", err)
		}
		u.Host = proxy.Addr()
		meta = u.String()
		r.rep.MetaDelayMs = float64(p.o.metaDelay) / float64(time.Millisecond)
	}
	nn, err = namenode.Start(ctx, namenode.Config{
		MetaURL:  meta,
		HTTPAddr: "127.0.0.1:0",
		RPCAddr:  "127.0.0.1:0",
		Logger:   log,
	})
	if err != nil {
		if errors.Is(err, namenode.ErrBadMetaURL) {
			return stop, usagef("dfs bench: --meta: %v", err)
		}
		return stop, fmt.Errorf("dfs bench: starting the namenode: %w", err)
	}
	r.addrs = []string{nn.RPCAddr()}
	r.rep.Namenodes = r.addrs
	r.rep.Backend = nn.Backend()
	if !p.needsData() {
		fmt.Fprintf(r.errw, "dfs bench: namenode on %s (%s), no datanodes (no data phase)\n", nn.RPCAddr(), r.rep.Meta)
		return stop, nil
	}
	for i := range p.o.datanodes {
		d, err := datanode.Start(ctx, datanode.Config{
			DataDir:   filepath.Join(r.tmp, fmt.Sprintf("dn%d", i+1)),
			DataAddr:  "127.0.0.1:0",
			Namenodes: r.addrs,
			Logger:    log,
		})
		if err != nil {
			return stop, fmt.Errorf("dfs bench: starting datanode %d: %w", i+1, err)
		}
		dns = append(dns, d)
	}
	r.rep.Datanodes = len(dns)
	// Wait until the namenode knows them all: placement takes live ones.
	wctx, cancel := context.WithTimeout(ctx, dfsBenchReadyWait)
	defer cancel()
	for {
		live := 0
		for _, d := range nn.Datanodes() {
			if d.Live {
				live++
			}
		}
		if live >= len(dns) {
			break
		}
		if err := waitCtx(wctx, 20*time.Millisecond); err != nil {
			if ctx.Err() != nil {
				return stop, ctx.Err()
			}
			return stop, fmt.Errorf("dfs bench: %d of %d datanodes registered after %v", live, len(dns), dfsBenchReadyWait)
		}
	}
	fmt.Fprintf(r.errw, "dfs bench: namenode on %s (%s), %d datanodes, in %s\n", nn.RPCAddr(), r.rep.Meta, len(dns), r.tmp)
	return stop, nil
}

// newClients makes the metadata clients and the data clients, one
// connection each (with --via fuse, only the one of the setup and cleanup:
// the mounts have their own).
func (r *dfsBenchRun) newClients() (closeAll func() error, err error) {
	closeAll = func() error {
		var errs []error
		for _, c := range slices.Concat(r.meta, r.data) {
			errs = append(errs, c.Close())
		}
		return errors.Join(errs...)
	}
	newClient := func() (*dfsclient.Client, error) {
		c, err := dfsclient.New(dfsclient.Config{Namenodes: r.addrs, User: r.p.o.user})
		if err != nil {
			return nil, fmt.Errorf("dfs bench: %w", err)
		}
		return c, nil
	}
	// One client for the setup and cleanup at least.
	n := 1
	if r.p.needsMeta() {
		r.rep.Clients, r.rep.FilesPerClient = r.p.o.clients, r.p.o.files
		if !r.p.fuse {
			n = r.p.o.clients
		}
	}
	for range n {
		c, err := newClient()
		if err != nil {
			return closeAll, err
		}
		r.meta = append(r.meta, c)
	}
	if r.p.needsData() && !r.p.fuse {
		for range r.p.o.dataFiles {
			c, err := newClient()
			if err != nil {
				return closeAll, err
			}
			r.data = append(r.data, c)
		}
	}
	return closeAll, nil
}

// makeDir checks that the benchmark may run (a namespace holding files
// only with a new --dir) and creates its directories; every client makes
// its first call here, so connections are up before the timing.
func (r *dfsBenchRun) makeDir(ctx context.Context) error {
	c := r.meta[0]
	root, err := c.List(ctx, hdfs.Root)
	if err != nil {
		return fmt.Errorf("dfs bench: listing / on %s: %w", strings.Join(r.addrs, ","), err)
	}
	if r.p.o.dir == "" {
		if len(root) > 0 {
			var names []string
			for _, st := range root[:min(len(root), 5)] {
				names = append(names, "/"+st.Name)
			}
			if len(root) > 5 {
				names = append(names, "...")
			}
			return usagef("dfs bench: the file system already holds files (%s): benchmark an empty database, or name a new benchmark directory with --dir (bench creates it and removes it at the end)",
				strings.Join(names, ", "))
		}
		r.dir = fmt.Sprintf("/kura-bench-%08x", rand.Uint32())
	} else {
		r.dir = r.p.o.dir
		// Find the highest missing ancestor: bench creates it (and
		// what is below) and removes it at the end.
		parts, _ := hdfs.Split(r.dir)
		for i := range parts {
			p := hdfs.JoinComponents(parts[:i+1])
			_, err := c.Stat(ctx, p)
			if err == nil {
				continue
			}
			if !errors.Is(err, hdfs.ErrFileNotFound) {
				return fmt.Errorf("dfs bench: stat %s: %w", p, err)
			}
			r.top = p
			break
		}
		if r.top == "" {
			return usagef("dfs bench: --dir %q already exists: name a new directory (bench creates it and removes it at the end)", r.dir)
		}
	}
	if r.top == "" {
		r.top = r.dir
	}
	if err := c.Mkdirs(ctx, r.dir, 0o755, true); err != nil {
		return fmt.Errorf("dfs bench: mkdir %s: %w", r.dir, err)
	}
	r.rep.Dir = r.dir // from now on, r.top is removed at the end
	dirs := 0         // the clients' directories
	if r.p.needsMeta() {
		dirs = r.p.o.clients
	}
	err = dfsBenchParallel(ctx, max(len(r.meta), dirs), func(ctx context.Context, k int) error {
		c := r.meta[k%len(r.meta)]
		if k >= dirs {
			_, err := c.Stat(ctx, r.dir)
			return err
		}
		return c.Mkdirs(ctx, r.clientDir(k), 0o755, false)
	})
	if err == nil && r.p.needsData() {
		err = r.meta[0].Mkdirs(ctx, hdfs.Join(r.dir, "data"), 0o755, false)
		if err == nil {
			err = dfsBenchParallel(ctx, len(r.data), func(ctx context.Context, i int) error {
				_, err := r.data[i].Stat(ctx, r.dir)
				return err
			})
		}
	}
	if err != nil {
		return fmt.Errorf("dfs bench: setting up %s: %w", r.dir, err)
	}
	fmt.Fprintf(r.errw, "dfs bench: working in %s\n", r.dir)
	return nil
}

// removeDir removes the benchmark directory, whatever happened to the
// run's context.
func (r *dfsBenchRun) removeDir() error {
	ctx, cancel := context.WithTimeout(context.Background(), dfsBenchCleanupWait)
	defer cancel()
	if _, err := r.meta[0].Delete(ctx, r.top, true); err != nil {
		return fmt.Errorf("removing the benchmark directory %s: %w", r.top, err)
	}
	return nil
}

func (r *dfsBenchRun) clientDir(k int) string { return hdfs.Join(r.dir, "c"+strconv.Itoa(k)) }

func (r *dfsBenchRun) fileName(k, i int) string {
	return hdfs.Join(r.clientDir(k), fmt.Sprintf("f%07d", i))
}

func (r *dfsBenchRun) dataName(i int) string {
	return hdfs.Join(hdfs.Join(r.dir, "data"), "d"+strconv.Itoa(i))
}

// metaPhase runs one metadata phase over every client's files: through
// the clients, or with --via fuse through the mounts.
func (r *dfsBenchRun) metaPhase(ctx context.Context, ph string) (dfsBenchMetaRow, error) {
	if r.fuse != nil {
		return r.fsPhase(ctx, r.fuse.kura, ph+" (through FUSE)", ph)
	}
	row, err := r.timeMeta(ctx, ph, ph, func(ctx context.Context, k, i int) (int, error) {
		return r.metaOp(ctx, r.meta[k], ph, k, i)
	})
	if err == nil && ph == dfsBenchRename {
		r.rename = true
	}
	return row, err
}

// timeMeta times --clients goroutines, k in [0, --clients), each doing
// op(ctx, k, i) for each of its operations i of metadata phase ph (op
// returns the number of entries listed); what names it in the progress
// lines.
func (r *dfsBenchRun) timeMeta(ctx context.Context, what, ph string, op func(ctx context.Context, k, i int) (int, error)) (dfsBenchMetaRow, error) {
	files, clients := r.p.o.files, r.p.o.clients
	ops := files
	if ph == dfsBenchList {
		ops = max(1, (files+dfsBenchListEvery-1)/dfsBenchListEvery)
	}
	lat := make([][]time.Duration, clients)
	var done, entries atomic.Int64
	stop := r.progress(ctx, what, int64(ops*clients), &done, "ops", 1, nil)
	cpu0 := processCPU()
	start := time.Now()
	err := dfsBenchParallel(ctx, clients, func(ctx context.Context, k int) error {
		l := make([]time.Duration, 0, ops)
		defer func() { lat[k] = l }()
		for i := range ops {
			if err := ctx.Err(); err != nil {
				return err
			}
			t0 := time.Now()
			n, err := op(ctx, k, i)
			if err != nil {
				return fmt.Errorf("client %d, op %d: %w", k, i, err)
			}
			l = append(l, time.Since(t0))
			entries.Add(int64(n))
			done.Add(1)
		}
		return nil
	})
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	stop()
	if err != nil {
		return dfsBenchMetaRow{}, err
	}
	all := slices.Concat(lat...)
	row := dfsBenchMetaRow{Phase: ph, Ops: int64(len(all)), Seconds: elapsed.Seconds()}
	if elapsed > 0 {
		row.OpsPerSec = float64(row.Ops) / elapsed.Seconds()
	}
	if row.Ops > 0 {
		row.CPUUsPerOp = float64(cpu) / float64(time.Microsecond) / float64(row.Ops)
	}
	row.MeanMs, row.P50Ms, row.P99Ms = dfsBenchLatencies(all)
	if ph == dfsBenchList {
		row.Entries = entries.Load()
	}
	return row, nil
}

// processCPU returns the CPU time (user + system) this process has used
// so far; 0 where getrusage fails.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// dfsBenchLatencies returns the mean, median and 99th percentile of d in
// milliseconds (sorting d).
func dfsBenchLatencies(d []time.Duration) (mean, p50, p99 float64) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	slices.Sort(d)
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	ms := func(x time.Duration) float64 { return float64(x) / float64(time.Millisecond) }
	at := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(d)))) - 1
		return d[min(max(i, 0), len(d)-1)]
	}
	return ms(sum) / float64(len(d)), ms(at(0.50)), ms(at(0.99))
}

// metaOp performs operation i of client k in phase ph; it returns the
// number of entries listed.
func (r *dfsBenchRun) metaOp(ctx context.Context, c *dfsclient.Client, ph string, k, i int) (int, error) {
	name := r.fileName(k, i)
	switch ph {
	case dfsBenchRPC:
		_, err := c.ServerDefaults(ctx)
		return 0, err
	case dfsBenchCreate:
		w, err := c.Create(ctx, name, dfsclient.CreateOptions{})
		if err != nil {
			return 0, err
		}
		return 0, w.Close()
	case dfsBenchStat:
		st, err := c.Stat(ctx, name)
		if err == nil && (st == nil || st.IsDir) {
			err = fmt.Errorf("stat %s: not a file", name)
		}
		return 0, err
	case dfsBenchList:
		l, err := c.List(ctx, r.clientDir(k))
		if err == nil && len(l) != r.p.o.files {
			err = fmt.Errorf("list %s: %d entries, want %d", r.clientDir(k), len(l), r.p.o.files)
		}
		return len(l), err
	case dfsBenchRename:
		ok, err := c.Rename(ctx, name, name+".r")
		if err == nil && !ok {
			err = fmt.Errorf("rename %s: the namenode returned false", name)
		}
		return 0, err
	case dfsBenchDelete:
		if r.rename {
			name += ".r"
		}
		ok, err := c.Delete(ctx, name, false)
		if err == nil && !ok {
			err = fmt.Errorf("delete %s: the namenode found nothing to delete", name)
		}
		return 0, err
	}
	return 0, fmt.Errorf("unknown phase %q", ph)
}

// fileSizes splits the data phases' bytes over their files.
func (r *dfsBenchRun) fileSizes() []int64 {
	n := int64(r.p.o.dataFiles)
	sizes := make([]int64, n)
	for i := range sizes {
		sizes[i] = r.p.size / n
		if int64(i) < r.p.size%n {
			sizes[i]++
		}
	}
	return sizes
}

// writePhase writes the data files through kura and, when measured, the
// same streams to local files (the ceiling).
func (r *dfsBenchRun) writePhase(ctx context.Context, measured bool) error {
	sizes := r.fileSizes()
	var done atomic.Int64
	var repl, block, closed atomic.Int64
	// The client holds a block in memory until it is full or the file is
	// closed: bytes handed to it are not yet sent.
	stop := r.progress(ctx, dfsBenchWrite, r.p.size, &done, "MB", dfsBenchMB, func() string {
		return fmt.Sprintf(" handed to the writers (a block goes out when full or at close), %d of %d files closed", closed.Load(), len(sizes))
	})
	start := time.Now()
	err := dfsBenchParallel(ctx, len(sizes), func(ctx context.Context, i int) error {
		if r.fuse != nil {
			err := r.fuseWrite(ctx, i, sizes[i], &done)
			if err == nil {
				closed.Add(1)
			}
			return err
		}
		name := r.dataName(i)
		w, err := r.data[i].Create(ctx, name, dfsclient.CreateOptions{Replication: r.p.repl, BlockSize: r.p.blockSize})
		if err != nil {
			return err
		}
		repl.Store(int64(w.Status().Replication))
		block.Store(w.Status().BlockSize)
		err = dfsBenchStreamTo(ctx, i, sizes[i], w, &done)
		if cerr := w.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close %s: %w", name, cerr)
		}
		if err == nil {
			closed.Add(1)
		}
		return err
	})
	elapsed := time.Since(start)
	stop()
	if err == nil && r.fuse != nil {
		// The files' replication and block size, as the namenode has them.
		var st *dfsclient.FileStatus
		if st, err = r.meta[0].Stat(ctx, r.dataName(0)); err == nil {
			repl.Store(int64(st.Replication))
			block.Store(st.BlockSize)
		}
	}
	if err != nil {
		return err
	}
	r.rep.Data = &dfsBenchData{Bytes: r.p.size, Files: len(sizes), Replication: int(repl.Load()), BlockSize: block.Load(), CeilingDir: r.tmp}
	if !measured {
		return nil
	}

	dir := filepath.Join(r.tmp, "ceiling")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	r.rep.Data.CeilingDir = dir
	done.Store(0)
	stop = r.progress(ctx, "write ceiling", r.p.size, &done, "MB", dfsBenchMB, nil)
	start = time.Now()
	err = dfsBenchParallel(ctx, len(sizes), func(ctx context.Context, i int) error {
		f, err := os.Create(filepath.Join(dir, "d"+strconv.Itoa(i)))
		if err != nil {
			return err
		}
		err = dfsBenchStreamTo(ctx, i, sizes[i], f, &done)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
	ceil := time.Since(start)
	stop()
	if err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	row := dfsBenchDataRow{Phase: dfsBenchWrite}
	row.fill(r.p.size, elapsed, ceil)
	if rr := r.rep.Data.Replication; rr > 1 {
		row.CeilingPerReplicaMBPerSec = row.CeilingMBPerSec / float64(rr)
		row.RatioPerReplica = row.MBPerSec / row.CeilingPerReplicaMBPerSec
	}
	r.rep.Data.Rows = append(r.rep.Data.Rows, row)
	return nil
}

// readPhase reads the data files back through kura, checking every byte,
// then the ceiling's local files (written when write was measured; else
// now, untimed).
func (r *dfsBenchRun) readPhase(ctx context.Context) error {
	sizes := r.fileSizes()
	var done atomic.Int64
	stop := r.progress(ctx, dfsBenchRead, r.p.size, &done, "MB", dfsBenchMB, nil)
	start := time.Now()
	err := dfsBenchParallel(ctx, len(sizes), func(ctx context.Context, i int) error {
		if r.fuse != nil {
			return r.fuseRead(ctx, i, sizes[i], &done)
		}
		name := r.dataName(i)
		f, err := r.data[i].Open(ctx, name)
		if err != nil {
			return err
		}
		defer f.Close()
		if f.Size() != sizes[i] {
			return fmt.Errorf("%s holds %d bytes, want %d", name, f.Size(), sizes[i])
		}
		if err := dfsBenchCheck(ctx, i, sizes[i], f, &done); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	})
	elapsed := time.Since(start)
	stop()
	if err != nil {
		return err
	}

	dir := filepath.Join(r.tmp, "ceiling")
	if r.rep.Data.CeilingDir != dir {
		// write was not measured: write the ceiling's files now.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("ceiling: %w", err)
		}
		r.rep.Data.CeilingDir = dir
		var ignored atomic.Int64
		err := dfsBenchParallel(ctx, len(sizes), func(ctx context.Context, i int) error {
			f, err := os.Create(filepath.Join(dir, "d"+strconv.Itoa(i)))
			if err != nil {
				return err
			}
			err = dfsBenchStreamTo(ctx, i, sizes[i], f, &ignored)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("ceiling: %w", err)
		}
	}
	done.Store(0)
	stop = r.progress(ctx, "read ceiling", r.p.size, &done, "MB", dfsBenchMB, nil)
	start = time.Now()
	err = dfsBenchParallel(ctx, len(sizes), func(ctx context.Context, i int) error {
		f, err := os.Open(filepath.Join(dir, "d"+strconv.Itoa(i)))
		if err != nil {
			return err
		}
		defer f.Close()
		return dfsBenchCheck(ctx, i, sizes[i], f, &done)
	})
	ceil := time.Since(start)
	stop()
	if err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	row := dfsBenchDataRow{Phase: dfsBenchRead}
	row.fill(r.p.size, elapsed, ceil)
	r.rep.Data.Rows = append(r.rep.Data.Rows, row)
	return nil
}

// fill sets the row's figures for size bytes in d (kura) and ceil (the
// ceiling).
func (row *dfsBenchDataRow) fill(size int64, d, ceil time.Duration) {
	row.Seconds, row.CeilingSeconds = d.Seconds(), ceil.Seconds()
	if d > 0 {
		row.MBPerSec = float64(size) / dfsBenchMB / d.Seconds()
	}
	if ceil > 0 {
		row.CeilingMBPerSec = float64(size) / dfsBenchMB / ceil.Seconds()
	}
	if row.CeilingMBPerSec > 0 {
		row.Ratio = row.MBPerSec / row.CeilingMBPerSec
	}
}

// dfsBenchStream is data file i's content: a pseudo-random stream, made
// in dfsBenchChunk pieces from the file's start.
type dfsBenchStream struct{ rng *rand.PCG }

func newDFSBenchStream(i int) *dfsBenchStream {
	return &dfsBenchStream{rng: rand.NewPCG(uint64(i)+1, 0x6b7572612d646673)}
}

// fill fills p with the next bytes of the stream; only the last piece
// of a stream may have a length that is not a multiple of 8.
func (s *dfsBenchStream) fill(p []byte) {
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, s.rng.Uint64())
		p = p[8:]
	}
	if len(p) > 0 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], s.rng.Uint64())
		copy(p, w[:])
	}
}

// dfsBenchStreamTo writes size bytes of stream i to w, counting them in
// done.
func dfsBenchStreamTo(ctx context.Context, i int, size int64, w io.Writer, done *atomic.Int64) error {
	s := newDFSBenchStream(i)
	buf := make([]byte, dfsBenchChunk)
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(int64(len(buf)), size-off)
		s.fill(buf[:n])
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
		off += n
		done.Add(n)
	}
	return nil
}

// dfsBenchCheck reads size bytes from rd and compares them with stream
// i, counting them in done; it fails on the first difference and when rd
// holds more.
func dfsBenchCheck(ctx context.Context, i int, size int64, rd io.Reader, done *atomic.Int64) error {
	s := newDFSBenchStream(i)
	got := make([]byte, dfsBenchChunk)
	want := make([]byte, dfsBenchChunk)
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(int64(len(got)), size-off)
		if _, err := io.ReadFull(rd, got[:n]); err != nil {
			return fmt.Errorf("reading at offset %d: %w", off, err)
		}
		s.fill(want[:n])
		if !bytes.Equal(got[:n], want[:n]) {
			j := 0
			for j < int(n) && got[j] == want[j] {
				j++
			}
			return fmt.Errorf("byte %d differs from what was written", off+int64(j))
		}
		off += n
		done.Add(n)
	}
	var one [1]byte
	if k, _ := rd.Read(one[:]); k > 0 {
		return fmt.Errorf("more than the %d bytes written", size)
	}
	return nil
}

// dfsBenchParallel runs fn(ctx, i) for i in [0, n) in n goroutines and
// waits for them; the first error cancels the others' ctx and is returned.
func dfsBenchParallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		once     sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	for i := range n {
		wg.Go(func() {
			if err := fn(ctx, i); err != nil {
				once.Do(func() { firstErr = err })
				cancel()
			}
		})
	}
	wg.Wait()
	return firstErr
}

// progress prints a line on stderr every second until stop is called (or
// ctx ends): how much of total is done and the rate over the last second,
// in unit (counts divided by scale: 1 for ops, dfsBenchMB for MB), with
// what extra says (when not nil) after the amount.
func (r *dfsBenchRun) progress(ctx context.Context, what string, total int64, done *atomic.Int64, unit string, scale float64, extra func() string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last, lastT := int64(0), time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				d := done.Load()
				rate := float64(d-last) / now.Sub(lastT).Seconds() / scale
				last, lastT = d, now
				more := ""
				if extra != nil {
					more = extra()
				}
				fmt.Fprintf(r.errw, "dfs bench: %s: %s of %s %s%s, %s %s/s\n", what,
					dfsBenchThousands(float64(d)/scale), dfsBenchThousands(float64(total)/scale), unit, more, dfsBenchThousands(rate), unit)
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}

// print writes the report to stdout: JSON with --json, else tables.
func (r *dfsBenchRun) print() {
	rep := &r.rep
	out := r.e.stdout
	if r.p.o.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
		return
	}
	where := "a running cluster at " + strings.Join(rep.Namenodes, ",")
	if rep.Embedded {
		where = fmt.Sprintf("embedded namenode on %s (%s), %d datanodes", rep.Meta, rep.Backend, rep.Datanodes)
		if r.p.o.meta == "" {
			where = fmt.Sprintf("embedded namenode on %s, %d datanodes", rep.Meta, rep.Datanodes)
		}
		if rep.MetaDelayMs > 0 {
			where = fmt.Sprintf("embedded namenode on %s (%s, through a proxy holding packets %g ms each way), %d datanodes",
				rep.Meta, rep.Backend, rep.MetaDelayMs, rep.Datanodes)
		}
	}
	fmt.Fprintf(out, "kura dfs bench: %s; directory %s\n", where, rep.Dir)
	if f := rep.Fuse; f != nil {
		fmt.Fprintf(out, "via FUSE (mdtest's way): %s of the namespace (dfs/fuse, one dfs client each), kernel entry/attr cache %s\n", dfsBenchCount(f.Mounts, "mount"), f.Cache)
		if len(f.Skipped) > 0 {
			fmt.Fprintf(out, "not run through FUSE (no file-system call; --via client measures it): %s\n", strings.Join(f.Skipped, ", "))
		}
	}
	if len(rep.Metadata) > 0 && rep.Fuse != nil {
		r.printFuseMeta(out)
	} else if len(rep.Metadata) > 0 {
		fmt.Fprintf(out, "\nmetadata: %d clients (one connection each) x %d files\n", r.p.o.clients, r.p.o.files)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "phase   \tops\tseconds\tops/s\tmean ms\tp50 ms\tp99 ms\tcpu µs/op\t")
		for _, m := range rep.Metadata {
			fmt.Fprintf(tw, "%-8s\t%d\t%.3f\t%s\t%.3f\t%.3f\t%.3f\t%.0f\t\n", m.Phase, m.Ops, m.Seconds, dfsBenchThousands(m.OpsPerSec), m.MeanMs, m.P50Ms, m.P99Ms, m.CPUUsPerOp)
		}
		tw.Flush()
		if rep.Embedded {
			fmt.Fprintln(out, "cpu µs/op: this process's CPU (user+system) per op, clients and namenode together (a PostgreSQL server's not included)")
		} else {
			fmt.Fprintln(out, "cpu µs/op: this process's CPU (user+system) per op: the clients' alone")
		}
		for _, m := range rep.Metadata {
			if m.Phase == dfsBenchList && m.Seconds > 0 {
				fmt.Fprintf(out, "list: each op lists a client's whole directory (%d entries): %s entries/s\n",
					r.p.o.files, dfsBenchThousands(float64(m.Entries)/m.Seconds))
			}
		}
	}
	if d := rep.Data; d != nil && len(d.Rows) > 0 {
		how := "one client each"
		if f := rep.Fuse; f != nil {
			how = fmt.Sprintf("through FUSE: 1 MiB write(2)s and read(2)s, file i on mount i mod %d; the kernel drops a file's cached data at each open", f.Mounts)
		}
		fmt.Fprintf(out, "\ndata: %s in %d files, %d concurrent writers then readers (%s), replication %d, block size %s\n",
			dfsBenchFormatBytes(d.Bytes), d.Files, d.Files, how, d.Replication, dfsBenchFormatBytes(d.BlockSize))
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "phase   \tseconds\tkura MB/s\tlocal MB/s\tkura/local\tlocal/%d MB/s\tkura/(local/%d)\t\n", d.Replication, d.Replication)
		for _, row := range d.Rows {
			perR, ratioR := "", ""
			if row.CeilingPerReplicaMBPerSec > 0 {
				perR, ratioR = dfsBenchThousands(row.CeilingPerReplicaMBPerSec), fmt.Sprintf("%.2f", row.RatioPerReplica)
			}
			fmt.Fprintf(tw, "%-8s\t%.3f\t%s\t%s\t%.2f\t%s\t%s\t\n", row.Phase, row.Seconds, dfsBenchThousands(row.MBPerSec),
				dfsBenchThousands(row.CeilingMBPerSec), row.Ratio, perR, ratioR)
		}
		tw.Flush()
		disk := "the datanodes' file system"
		if !rep.Embedded {
			disk = "this machine's disk, not necessarily the datanodes'"
		}
		fmt.Fprintf(out, "MB = 10^6 bytes. local: the same bytes by %d goroutines to plain files in %s (%s), fsynced at the end of each file, then read back; every byte checked on both sides.\n",
			d.Files, d.CeilingDir, disk)
		if d.Replication > 1 {
			fmt.Fprintf(out, "replication %d writes %d copies: local/%d is the ceiling of a disk-bound kura write.\n", d.Replication, d.Replication, d.Replication)
		}
		fmt.Fprintf(out, "reads, kura's and local, come from the page cache (nothing dropped before them).\n")
	}
	if len(rep.Unmeasured) > 0 {
		fmt.Fprintf(out, "not measured (run to prepare the measured phases): %s\n", strings.Join(rep.Unmeasured, ", "))
	}
}
