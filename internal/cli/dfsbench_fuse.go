package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	dfsclient "github.com/kura-dev/kura/dfs/client"
	dfsfuse "github.com/kura-dev/kura/dfs/fuse"
	"github.com/kura-dev/kura/internal/mountinfo"
)

// 'kura dfs bench --via fuse': the phases as system calls on FUSE mounts
// of the namespace (mdtest's way), beside two ceilings measured in the
// same run with the same clients and files: go-fuse loopback mounts of a
// local directory with the same caches ("null FUSE": FUSE's own cost) and
// a plain local directory.

// The rows of a --via fuse table, in the order they are printed.
const (
	dfsBenchPathKura  = "kura-fuse"
	dfsBenchPathNull  = "null-fuse"
	dfsBenchPathLocal = "local"
)

// dfsBenchFS is a tree the metadata phases run on with os calls: the
// kura mounts, the null FUSE mounts or the local directory.
type dfsBenchFS struct {
	path    string   // its rows' name: dfsBenchPath*
	label   string   // in progress lines and errors: "", " (null FUSE)", ...
	dirs    []string // client k works in dirs[k]
	renamed bool     // the files were renamed (f -> f.r)
}

// dfsBenchFuseRun is the mounts of a --via fuse run.
type dfsBenchFuseRun struct {
	mounts  []*dfsfuse.Mount
	clients []*dfsclient.Client // the mounts' clients
	null    []*dfsBenchNullMount
	kura    *dfsBenchFS
	nullFS  *dfsBenchFS
	local   *dfsBenchFS
}

// dfsBenchNullMount is a go-fuse loopback mount of a local directory.
type dfsBenchNullMount struct {
	dir    string
	server *fuse.Server
	done   chan struct{} // closed when serving ends
}

// mountAll mounts the namespace --mounts times (each mount its own
// client) and the null FUSE loopbacks, and prepares the ceilings'
// directories; unmount unmounts whatever was mounted (also when err is
// set) and closes the mounts' clients.
func (r *dfsBenchRun) mountAll(ctx context.Context) (unmount func() error, err error) {
	p := r.p
	fr := &dfsBenchFuseRun{}
	r.fuse = fr
	unmount = func() error {
		var errs []error
		for _, m := range fr.mounts {
			if err := m.Unmount(); err != nil {
				errs = append(errs, err)
			}
		}
		for _, n := range fr.null {
			if err := n.unmount(); err != nil {
				errs = append(errs, err)
			}
		}
		for _, c := range fr.clients {
			errs = append(errs, c.Close())
		}
		return errors.Join(errs...)
	}
	log := slog.New(slog.NewTextHandler(r.errw, &slog.HandlerOptions{Level: p.logLevel}))
	cache := p.o.fuseCache
	clients := 0
	if p.needsMeta() {
		clients = p.o.clients
	}
	setup := &dfsBenchFuseSetup{
		Mounts:      p.o.mounts,
		Cache:       cache.String(),
		CacheMs:     float64(cache) / float64(time.Millisecond),
		LocalDir:    filepath.Join(r.tmp, "local"),
		NullFuseDir: filepath.Join(r.tmp, "null"),
		Skipped:     p.skipped,
	}
	r.rep.Fuse = setup

	// kura's mounts.
	var opts dfsfuse.Options
	if p.needsData() {
		opts.BlockSize, opts.Replication = p.blockSize, p.repl
	}
	for i := range p.o.mounts {
		dir := filepath.Join(r.tmp, "mnt"+strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			return unmount, fmt.Errorf("dfs bench: mount point: %w", err)
		}
		c, err := dfsclient.New(dfsclient.Config{Namenodes: r.addrs, User: p.o.user})
		if err != nil {
			return unmount, fmt.Errorf("dfs bench: %w", err)
		}
		fr.clients = append(fr.clients, c)
		o := opts
		o.Client, o.Mountpoint, o.User = c, dir, p.o.user
		o.EntryTimeout, o.AttrTimeout = cache, cache
		o.Logger = log
		m, err := dfsfuse.New(ctx, o)
		if err != nil {
			return unmount, fmt.Errorf("dfs bench: %w", err)
		}
		fr.mounts = append(fr.mounts, m)
	}
	fr.kura = &dfsBenchFS{path: dfsBenchPathKura}
	for k := range clients {
		fr.kura.dirs = append(fr.kura.dirs, filepath.Join(fr.mounts[k%len(fr.mounts)].Dir(), filepath.FromSlash(r.clientDir(k))))
	}

	// The ceilings: the local directory, and the null FUSE's, served by
	// as many loopback mounts.
	fr.local = &dfsBenchFS{path: dfsBenchPathLocal, label: " (local ceiling)"}
	fr.nullFS = &dfsBenchFS{path: dfsBenchPathNull, label: " (null FUSE ceiling)"}
	for k := range clients {
		for _, d := range []string{setup.LocalDir, setup.NullFuseDir} {
			if err := os.MkdirAll(filepath.Join(d, "c"+strconv.Itoa(k)), 0o755); err != nil {
				return unmount, fmt.Errorf("dfs bench: ceiling: %w", err)
			}
		}
		fr.local.dirs = append(fr.local.dirs, filepath.Join(setup.LocalDir, "c"+strconv.Itoa(k)))
	}
	if clients > 0 {
		for i := range p.o.mounts {
			dir := filepath.Join(r.tmp, "null-mnt"+strconv.Itoa(i))
			n, err := dfsBenchMountNull(setup.NullFuseDir, dir, cache, log)
			if err != nil {
				return unmount, err
			}
			fr.null = append(fr.null, n)
		}
		for k := range clients {
			fr.nullFS.dirs = append(fr.nullFS.dirs, filepath.Join(fr.null[k%len(fr.null)].dir, "c"+strconv.Itoa(k)))
		}
	}

	// Every mount answers before the timing (kura's made a stat of / at
	// its start): the clients' directories are there.
	for _, t := range []*dfsBenchFS{fr.kura, fr.nullFS} {
		for _, d := range t.dirs {
			if _, err := os.Stat(d); err != nil {
				return unmount, fmt.Errorf("dfs bench: through the mount: %w", err)
			}
		}
	}
	ceilings := ""
	if clients > 0 {
		ceilings = "; null FUSE and local ceilings there too"
	}
	fmt.Fprintf(r.errw, "dfs bench: %s of the namespace (kernel entry/attr cache %v) in %s%s\n",
		dfsBenchCount(len(fr.mounts), "FUSE mount"), cache, r.tmp, ceilings)
	return unmount, nil
}

// dfsBenchMountNull mounts a go-fuse loopback of src on dir (created),
// with the kernel caches of kura's mounts.
func dfsBenchMountNull(src, dir string, cache time.Duration, log *slog.Logger) (*dfsBenchNullMount, error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("dfs bench: null FUSE mount point: %w", err)
	}
	root, err := fs.NewLoopbackRoot(src)
	if err != nil {
		return nil, fmt.Errorf("dfs bench: null FUSE: %w", err)
	}
	entry, attr, negative := cache, cache, time.Duration(0)
	logger := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	opts := &fs.Options{
		MountOptions: fuse.MountOptions{
			MaxWrite:      1 << 20,
			FsName:        "kura-bench-null",
			Name:          "kura-bench-null",
			DisableXAttrs: true,
			DirectMount:   true,
			Logger:        logger,
		},
		EntryTimeout:    &entry,
		AttrTimeout:     &attr,
		NegativeTimeout: &negative,
		Logger:          logger,
	}
	server, err := fuse.NewServer(fs.NewNodeFS(root, opts), dir, &opts.MountOptions)
	if err != nil {
		return nil, fmt.Errorf("dfs bench: null FUSE: mount on %s: %w", dir, err)
	}
	n := &dfsBenchNullMount{dir: dir, server: server, done: make(chan struct{})}
	go func() {
		server.Serve()
		close(n.done)
	}()
	if err := server.WaitMount(); err != nil {
		n.unmount()
		return nil, fmt.Errorf("dfs bench: null FUSE: mount on %s: %w", dir, err)
	}
	return n, nil
}

// unmount unmounts the loopback: at once, else lazily.
func (n *dfsBenchNullMount) unmount() error {
	select {
	case <-n.done:
		return nil
	default:
	}
	err := n.server.Unmount()
	if err == nil {
		return nil
	}
	if derr := unix.Unmount(n.dir, unix.MNT_DETACH); derr != nil && derr != unix.EINVAL {
		return fmt.Errorf("null FUSE: unmount %s: %w (lazy unmount: %w)", n.dir, err, derr)
	}
	return nil
}

// fsPhase runs metadata phase ph on t (what names it in progress lines).
func (r *dfsBenchRun) fsPhase(ctx context.Context, t *dfsBenchFS, what, ph string) (dfsBenchMetaRow, error) {
	row, err := r.timeMeta(ctx, what, ph, func(_ context.Context, k, i int) (int, error) {
		return r.fsOp(t, ph, k, i)
	})
	if err == nil && ph == dfsBenchRename {
		t.renamed = true
	}
	return row, err
}

// fsOp performs operation i of client k in phase ph on t with plain os
// calls, as mdtest does; it returns the number of entries listed.
func (r *dfsBenchRun) fsOp(t *dfsBenchFS, ph string, k, i int) (int, error) {
	dir := t.dirs[k]
	name := filepath.Join(dir, fmt.Sprintf("f%07d", i))
	switch ph {
	case dfsBenchCreate:
		f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o644)
		if err != nil {
			return 0, err
		}
		return 0, f.Close()
	case dfsBenchStat:
		fi, err := os.Lstat(name)
		if err == nil && !fi.Mode().IsRegular() {
			err = fmt.Errorf("lstat %s: not a regular file (%v)", name, fi.Mode())
		}
		return 0, err
	case dfsBenchList:
		l, err := os.ReadDir(dir)
		if err == nil && len(l) != r.p.o.files {
			err = fmt.Errorf("readdir %s: %d entries, want %d", dir, len(l), r.p.o.files)
		}
		return len(l), err
	case dfsBenchRename:
		return 0, os.Rename(name, name+".r")
	case dfsBenchDelete:
		if t.renamed {
			name += ".r"
		}
		return 0, os.Remove(name)
	}
	return 0, fmt.Errorf("phase %q does not run through FUSE", ph)
}

// fuseCeilings runs the metadata phases that ran through kura's mounts on
// the null FUSE mounts, then on the local directory, each target's phases
// back to back as kura's, and puts the figures beside kura's rows; during
// names the phase running.
func (r *dfsBenchRun) fuseCeilings(ctx context.Context, during *string) error {
	for _, t := range []*dfsBenchFS{r.fuse.nullFS, r.fuse.local} {
		for _, ph := range r.p.run {
			if ph == dfsBenchWrite || ph == dfsBenchRead {
				continue
			}
			*during = " during " + ph + t.label
			row, err := r.fsPhase(ctx, t, ph+t.label, ph)
			if err != nil {
				return err
			}
			if !r.p.measured[ph] {
				continue
			}
			i := slices.IndexFunc(r.rep.Metadata, func(m dfsBenchMetaRow) bool { return m.Phase == ph })
			if i < 0 {
				continue
			}
			kura := &r.rep.Metadata[i]
			c := &dfsBenchCeilingRow{Ops: row.Ops, Seconds: row.Seconds, OpsPerSec: row.OpsPerSec,
				MeanMs: row.MeanMs, P50Ms: row.P50Ms, P99Ms: row.P99Ms, Entries: row.Entries}
			if c.OpsPerSec > 0 {
				c.Ratio = kura.OpsPerSec / c.OpsPerSec
			}
			if t == r.fuse.nullFS {
				kura.NullFuse = c
			} else {
				kura.Local = c
			}
		}
	}
	return nil
}

// fuseDataPath is data file i's path through its mount (i mod --mounts).
func (r *dfsBenchRun) fuseDataPath(i int) string {
	return filepath.Join(r.fuse.mounts[i%len(r.fuse.mounts)].Dir(), filepath.FromSlash(r.dataName(i)))
}

// fuseWrite writes data file i through its mount, 1 MiB a write(2).
func (r *dfsBenchRun) fuseWrite(ctx context.Context, i int, size int64, done *atomic.Int64) error {
	name := r.fuseDataPath(i)
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	err = dfsBenchStreamTo(ctx, i, size, f, done)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", name, cerr)
	}
	return err
}

// fuseRead reads data file i back through its mount, 1 MiB a read(2),
// checking every byte.
func (r *dfsBenchRun) fuseRead(ctx context.Context, i int, size int64, done *atomic.Int64) error {
	name := r.fuseDataPath(i)
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return err
	} else if fi.Size() != size {
		return fmt.Errorf("%s holds %d bytes, want %d", name, fi.Size(), size)
	}
	if err := dfsBenchCheck(ctx, i, size, f, done); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// printFuseMeta writes the metadata table of a --via fuse run: each
// phase's kura-fuse row, then its null-fuse and local rows with the ratio
// kura/ceiling.
func (r *dfsBenchRun) printFuseMeta(out io.Writer) {
	rep := &r.rep
	f := rep.Fuse
	spread := fmt.Sprintf("%d per mount", r.p.o.clients/f.Mounts)
	if r.p.o.clients%f.Mounts != 0 {
		var per []string
		for m := range f.Mounts {
			per = append(per, strconv.Itoa(r.p.o.clients/f.Mounts+dfsBenchBtoi(m < r.p.o.clients%f.Mounts)))
		}
		spread = "per mount " + strings.Join(per, ", ")
	}
	fmt.Fprintf(out, "\nmetadata through FUSE: %d processes (goroutines making system calls; %s) x %d files\n",
		r.p.o.clients, spread, r.p.o.files)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase   \tpath     \tops\tseconds\tops/s\tmean ms\tp50 ms\tp99 ms\tkura/this\t")
	for _, m := range rep.Metadata {
		fmt.Fprintf(tw, "%-8s\t%-9s\t%d\t%.3f\t%s\t%.3f\t%.3f\t%.3f\t\t\n", m.Phase, dfsBenchPathKura, m.Ops, m.Seconds,
			dfsBenchThousands(m.OpsPerSec), m.MeanMs, m.P50Ms, m.P99Ms)
		for _, c := range []struct {
			path string
			row  *dfsBenchCeilingRow
		}{{dfsBenchPathNull, m.NullFuse}, {dfsBenchPathLocal, m.Local}} {
			if c.row == nil {
				continue
			}
			fmt.Fprintf(tw, "%-8s\t%-9s\t%d\t%.3f\t%s\t%.3f\t%.3f\t%.3f\t%s\t\n", m.Phase, c.path, c.row.Ops, c.row.Seconds,
				dfsBenchThousands(c.row.OpsPerSec), c.row.MeanMs, c.row.P50Ms, c.row.P99Ms, dfsBenchRatio(c.row.Ratio))
		}
	}
	tw.Flush()
	for _, m := range rep.Metadata {
		if m.Phase == dfsBenchList && m.Seconds > 0 {
			fmt.Fprintf(out, "list: each op is a readdir of a client's whole directory (%d entries): %s entries/s\n",
				r.p.o.files, dfsBenchThousands(float64(m.Entries)/m.Seconds))
		}
	}
	fmt.Fprintf(out, "%s: system calls on %s of the namespace (dfs/fuse, as 'kura dfs mount', one dfs client each); create is open(O_CREAT|O_EXCL|O_WRONLY) + close, stat lstat, list readdir, rename rename, delete unlink.\n",
		dfsBenchPathKura, dfsBenchCount(f.Mounts, "FUSE mount"))
	fmt.Fprintf(out, "%s: the same calls on %s of %s with the same caches (FUSE's own cost); %s: the same calls on %s (no FUSE). kura/this = kura-fuse ops/s / this row's.\n",
		dfsBenchPathNull, dfsBenchCount(f.Mounts, "go-fuse loopback mount"), f.NullFuseDir, dfsBenchPathLocal, f.LocalDir)
	if f.CacheMs > 0 {
		fmt.Fprintf(out, "kernel cache %s: a name or its attributes looked up less than %s ago are answered by the kernel without reaching kura (or the loopback); a name that does not exist is asked for every time (no negative cache).\n",
			f.Cache, f.Cache)
	} else {
		fmt.Fprintf(out, "kernel cache 0: every lookup and stat reaches kura (or the loopback).\n")
	}
}

// dfsBenchCount says "1 thing" or "n things".
func dfsBenchCount(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return strconv.Itoa(n) + " " + thing + "s"
}

func dfsBenchBtoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// dfsBenchRatio formats a ratio: two significant digits below 1 (0.0042,
// 0.31), two decimals above.
func dfsBenchRatio(v float64) string {
	if v > 0 && v < 0.1 {
		return strconv.FormatFloat(v, 'g', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// dfsBenchNoMountsUnder makes sure nothing is mounted at or below dir
// before it is removed (a removal would go into the mounted file system):
// what is still mounted is detached lazily; an error says what stays.
func dfsBenchNoMountsUnder(dir string) error {
	left := dfsBenchMountsUnder(dir)
	if len(left) == 0 {
		return nil
	}
	for _, m := range slices.Backward(left) {
		unix.Unmount(m, unix.MNT_DETACH)
	}
	if left = dfsBenchMountsUnder(dir); len(left) > 0 {
		return fmt.Errorf("not removing the temporary directory %s: still mounted there: %s (umount them, then remove it)", dir, strings.Join(left, ", "))
	}
	return nil
}

// dfsBenchMountsUnder returns the mount points at or below dir (or the
// directory its symbolic links lead to), in the order of /proc/self/mounts.
func dfsBenchMountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return nil
	}
	defer f.Close()
	dirs := []string{filepath.Clean(dir)}
	if real, err := filepath.EvalSymlinks(dir); err == nil && real != dirs[0] {
		dirs = append(dirs, real)
	}
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		mp := mountinfo.Unescape(fields[1])
		for _, d := range dirs {
			if mp == d || strings.HasPrefix(mp, d+"/") {
				out = append(out, mp)
				break
			}
		}
	}
	return out
}
