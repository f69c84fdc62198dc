package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/hdfs"
)

// copyingSuffix is the temporary name a copy writes before renaming, as
// Hadoop's CommandWithDestination.
const copyingSuffix = "._COPYING_"

// cleanupTimeout bounds removing a temporary file after a failure (also
// after Ctrl-C, so without the command's context).
const cleanupTimeout = 30 * time.Second

// fileInfo is what a copy needs to know of a file or directory.
type fileInfo struct {
	isDir        bool
	size         int64 // negative: unknown (a pipe)
	mtime, atime time.Time
	perm         hdfs.FsPermission
}

// dirEntry is a directory entry with its info.
type dirEntry struct {
	name string
	info *fileInfo
}

// copyWriter is a file being written: Close keeps it, Abort gives up.
type copyWriter interface {
	io.Writer
	Close() error
	Abort()
}

// copyFS is one side of a copy: dfs or the local file system. Paths are
// the side's own (absolute for dfs, as typed for local files).
type copyFS interface {
	// stat returns nil and no error when p does not exist.
	stat(p string) (*fileInfo, error)
	// list reads the directory p; an error ends the sequence. dfs
	// directories are read a page at a time.
	list(p string) iter.Seq2[dirEntry, error]
	open(p string) (io.ReadCloser, error)
	create(p string) (copyWriter, error)
	// replace renames tmp to target, removing an existing target first
	// where the file system needs it.
	replace(tmp, target string, targetExists bool) error
	// remove removes the file p, also after Ctrl-C.
	remove(p string) error
	mkdir(p string) error
	child(dir, name string) string
	base(p string) string
	parent(p string) string
	setAttrs(p string, fi *fileInfo) error
}

// dfsFS is the dfs side of a copy.
type dfsFS struct {
	sh   *dfsShell
	opts client.CreateOptions
}

func infoOf(st *client.FileStatus) *fileInfo {
	return &fileInfo{isDir: st.IsDir, size: st.Length, mtime: st.ModTime, atime: st.AccessTime, perm: st.Permission}
}

func (d dfsFS) stat(p string) (*fileInfo, error) {
	st, err := d.sh.c.Stat(d.sh.ctx, p)
	switch {
	case errors.Is(err, hdfs.ErrFileNotFound), errors.Is(err, hdfs.ErrParentNotDirectory):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return infoOf(st), nil
}

func (d dfsFS) list(p string) iter.Seq2[dirEntry, error] {
	return func(yield func(dirEntry, error) bool) {
		for st, err := range d.sh.c.ListIter(d.sh.ctx, p) {
			if err != nil {
				yield(dirEntry{}, err)
				return
			}
			if !yield(dirEntry{name: st.Name, info: infoOf(st)}, nil) {
				return
			}
		}
	}
}

func (d dfsFS) open(p string) (io.ReadCloser, error) { return d.sh.c.Open(d.sh.ctx, p) }

// dfsWriter is a dfs file being written.
type dfsWriter struct{ *client.Writer }

// Abort gives the file up without completing it (the caller removes it).
func (w dfsWriter) Abort() { w.Writer.Abort() }

func (d dfsFS) create(p string) (copyWriter, error) {
	o := d.opts
	o.Overwrite = true
	w, err := d.sh.c.Create(d.sh.ctx, p, o)
	if err != nil {
		return nil, err
	}
	return dfsWriter{w}, nil
}

// replace moves the finished temporary file onto target in one rename2,
// replacing what was there atomically.
func (d dfsFS) replace(tmp, target string, targetExists bool) error {
	return d.sh.c.Rename2(d.sh.ctx, tmp, target, targetExists)
}

func (d dfsFS) remove(p string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(d.sh.ctx), cleanupTimeout)
	defer cancel()
	_, err := d.sh.c.Delete(ctx, p, false)
	return err
}

func (d dfsFS) mkdir(p string) error          { return d.sh.c.Mkdirs(d.sh.ctx, p, 0, true) }
func (d dfsFS) child(dir, name string) string { return hdfs.Join(dir, name) }
func (d dfsFS) base(p string) string          { return hdfs.Base(p) }
func (d dfsFS) parent(p string) string        { return hdfs.Parent(p) }
func (d dfsFS) setAttrs(p string, fi *fileInfo) error {
	if err := d.sh.c.SetTimes(d.sh.ctx, p, fi.mtime, fi.atime); err != nil {
		return err
	}
	return d.sh.c.SetPermission(d.sh.ctx, p, fi.perm&hdfs.PermMask)
}

// localFS is the local side of a copy.
type localFS struct{}

func localInfo(fi os.FileInfo) *fileInfo {
	size := fi.Size()
	if !fi.Mode().IsRegular() && !fi.IsDir() {
		size = -1
	}
	return &fileInfo{isDir: fi.IsDir(), size: size, mtime: fi.ModTime(), perm: hdfs.FsPermission(fi.Mode().Perm())}
}

func (localFS) stat(p string) (*fileInfo, error) {
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return localInfo(fi), nil
}

// list reads the local directory p whole (sorted by name, every entry
// statted before the first is yielded, as before).
func (l localFS) list(p string) iter.Seq2[dirEntry, error] {
	return func(yield func(dirEntry, error) bool) {
		des, err := os.ReadDir(p)
		if err != nil {
			yield(dirEntry{}, err)
			return
		}
		out := make([]dirEntry, 0, len(des))
		for _, de := range des {
			fi, err := os.Stat(filepath.Join(p, de.Name())) // follows symbolic links, as Hadoop's local file system
			if err != nil {
				yield(dirEntry{}, err)
				return
			}
			out = append(out, dirEntry{name: de.Name(), info: localInfo(fi)})
		}
		for _, e := range out {
			if !yield(e, nil) {
				return
			}
		}
	}
}

func (localFS) open(p string) (io.ReadCloser, error) { return os.Open(p) }

// localWriter is a local file being written.
type localWriter struct {
	*os.File
}

// Abort closes and removes the file.
func (w localWriter) Abort() {
	w.File.Close()
	os.Remove(w.Name())
}

func (localFS) create(p string) (copyWriter, error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o666)
	if err != nil {
		return nil, err
	}
	return localWriter{f}, nil
}

func (localFS) replace(tmp, target string, _ bool) error { return os.Rename(tmp, target) }
func (localFS) remove(p string) error                    { return os.Remove(p) }
func (localFS) mkdir(p string) error                     { return os.MkdirAll(p, 0o777) }
func (localFS) child(dir, name string) string            { return filepath.Join(dir, name) }
func (localFS) parent(p string) string                   { return filepath.Dir(p) }

func (localFS) base(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		p = a
	}
	return filepath.Base(p)
}

func (localFS) setAttrs(p string, fi *fileInfo) error {
	at := fi.atime
	if at.UnixMilli() <= 0 {
		at = fi.mtime
	}
	if err := os.Chtimes(p, at, fi.mtime); err != nil {
		return err
	}
	return os.Chmod(p, os.FileMode(fi.perm&0o777))
}

// citem is a path of a copy: as shown and on its side.
type citem struct {
	disp, p string
	info    *fileInfo
	statted bool
}

// copier copies files and directory trees with the rules of Hadoop's
// CommandWithDestination (put, get, cp).
type copier struct {
	sh        *dfsShell
	src, dst  copyFS
	overwrite bool // -f
	direct    bool // -d: no ._COPYING_ file
	preserve  bool // -p: times and permission
	sameFS    bool // cp: refuse copying a directory into itself
}

func (cp *copier) stat(fs copyFS, it *citem) (*fileInfo, error) {
	if !it.statted {
		fi, err := fs.stat(it.p)
		if err != nil {
			return nil, err
		}
		it.info, it.statted = fi, true
	}
	return it.info, nil
}

// checkDest applies the destination rules for n sources: several need an
// existing directory; one needs a directory, a new path in an existing
// directory, or (with -f) a file to replace.
func (cp *copier) checkDest(dst *citem, n int) error {
	di, err := cp.stat(cp.dst, dst)
	if err != nil {
		return cp.dstError(dst.disp, err)
	}
	switch {
	case n > 1 && di == nil:
		return notFound(dst.disp)
	case n > 1 && !di.isDir:
		return notADir(dst.disp)
	case di != nil:
		if !di.isDir && !cp.overwrite {
			return exists(dst.disp)
		}
	default:
		pi, err := cp.dst.stat(cp.dst.parent(dst.p))
		if err != nil {
			return cp.dstError(dst.disp, err)
		}
		if pi == nil || !pi.isDir {
			return notFound(dst.disp)
		}
	}
	return nil
}

func (cp *copier) srcError(disp string, err error) error {
	if _, ok := cp.src.(localFS); ok {
		return localError(disp, err)
	}
	return pathError(disp, err)
}

func (cp *copier) dstError(disp string, err error) error {
	if _, ok := cp.dst.(localFS); ok {
		return localError(disp, err)
	}
	return pathError(disp, err)
}

// checkAndRun checks dst for len(srcs) sources and copies them there,
// reporting a bad destination as the command's failure.
func (cp *copier) checkAndRun(srcs []*citem, dst *citem) {
	if err := cp.checkDest(dst, len(srcs)); err != nil {
		cp.sh.fail(err)
		return
	}
	cp.run(srcs, dst)
}

// run copies each source to dst (already checked with checkDest).
func (cp *copier) run(srcs []*citem, dst *citem) {
	for _, src := range srcs {
		if cp.sh.interrupted() {
			return
		}
		si, err := cp.stat(cp.src, src)
		if err != nil {
			cp.sh.fail(cp.srcError(src.disp, err))
			continue
		}
		if si == nil {
			cp.sh.fail(notFound(src.disp))
			continue
		}
		if si.isDir && cp.sameFS {
			t := cp.target(src, dst, 0)
			if t.p == src.p {
				cp.sh.fail(pathIOError("", src.disp, t.disp, "are identical"))
				continue
			}
			if hdfs.IsAncestor(src.p, t.p) {
				cp.sh.fail(pathIOError("", src.disp, t.disp, "is a subdirectory of itself"))
				continue
			}
		}
		cp.process(src, dst, 0)
	}
}

// target is where src goes: into dst when dst is a directory (or below
// the top level), else dst itself.
func (cp *copier) target(src, dst *citem, depth int) *citem {
	if depth > 0 || (dst.info != nil && dst.info.isDir) || representsDir(dst.disp) {
		name := cp.src.base(src.p)
		return &citem{disp: childDisp(dst.disp, name), p: cp.dst.child(dst.p, name)}
	}
	return dst
}

func (cp *copier) process(src, dst *citem, depth int) {
	t := cp.target(src, dst, depth)
	if !src.info.isDir {
		cp.copyFile(src, t)
		return
	}
	ti, err := cp.stat(cp.dst, t)
	if err != nil {
		cp.sh.fail(cp.dstError(t.disp, err))
		return
	}
	if ti != nil && !ti.isDir {
		cp.sh.fail(notADir(t.disp))
		return
	}
	if ti == nil {
		if err := cp.dst.mkdir(t.p); err != nil {
			cp.sh.fail(pathIOError("mkdir", t.disp, "", remoteText(err)))
			return
		}
		t.info, t.statted = &fileInfo{isDir: true}, true
	}
	for e, err := range cp.src.list(src.p) {
		if err != nil {
			cp.sh.fail(cp.srcError(src.disp, err))
			return
		}
		if cp.sh.interrupted() {
			return
		}
		kid := &citem{disp: childDisp(src.disp, e.name), p: cp.src.child(src.p, e.name), info: e.info, statted: true}
		cp.process(kid, t, depth+1)
	}
	if cp.preserve {
		if err := cp.dst.setAttrs(t.p, src.info); err != nil {
			cp.sh.fail(cp.dstError(t.disp, err))
		}
	}
}

// copyFile copies the file src to t.
func (cp *copier) copyFile(src, t *citem) {
	ti, err := cp.stat(cp.dst, t)
	if err != nil {
		cp.sh.fail(cp.dstError(t.disp, err))
		return
	}
	if ti != nil && (ti.isDir || !cp.overwrite) {
		cp.sh.fail(exists(t.disp))
		return
	}
	r, err := cp.src.open(src.p)
	if err != nil {
		cp.sh.fail(cp.srcError(src.disp, err))
		return
	}
	defer r.Close()
	cp.write(r, src.info, t, ti != nil)
}

// write writes r (of src's size; src's attributes with -p) to t through
// t._COPYING_ (unless -d), which is removed when the copy fails or is
// interrupted.
func (cp *copier) write(r io.Reader, src *fileInfo, t *citem, tExists bool) {
	tmp, tmpDisp := t.p+copyingSuffix, t.disp+copyingSuffix
	if cp.direct {
		tmp, tmpDisp = t.p, t.disp
	}
	w, err := cp.dst.create(tmp)
	if err != nil {
		cp.sh.fail(cp.dstError(tmpDisp, err))
		return
	}
	size := int64(-1)
	if src != nil {
		size = src.size
	}
	_, err = cp.sh.copyData(w, r, t.disp, size)
	if err == nil {
		err = w.Close()
	} else {
		w.Abort()
	}
	if err != nil {
		if !cp.direct {
			cp.dst.remove(tmp)
		}
		cp.sh.fail(cp.dstError(t.disp, err))
		return
	}
	if !cp.direct {
		if err := cp.dst.replace(tmp, t.p, tExists); err != nil {
			cp.dst.remove(tmp)
			cp.sh.fail(pathIOError("rename", tmpDisp, t.disp, remoteText(err)))
			return
		}
	}
	if cp.preserve && src != nil {
		if err := cp.dst.setAttrs(t.p, src); err != nil {
			cp.sh.fail(cp.dstError(t.disp, err))
		}
	}
}

// copyFlags are the flags put, get and cp share.
type copyFlags struct {
	force, preserve, direct bool
	progress                progressFlags
}

// register adds -f, -p, the progress flags and, for copies into dfs, -d.
func (f *copyFlags) register(fl *pflag.FlagSet, intoDFS bool) {
	fl.BoolVarP(&f.force, "force", "f", false, "overwrite existing files")
	fl.BoolVarP(&f.preserve, "preserve", "p", false, "keep modification times and permissions")
	if intoDFS {
		fl.BoolVarP(&f.direct, "direct", "d", false, "write the destination directly, without DST._COPYING_")
	}
	f.progress.register(fl)
}

func dfsPut(e *env) *cobra.Command {
	var f copyFlags
	var lazy bool
	var wo writeOptions
	c := &cobra.Command{
		Use:     "put [-f] [-p] [-d] [--block-size N] [--replication N] LOCALSRC... [DST]",
		Aliases: []string{"copyFromLocal"},
		Short:   "Copy local files and directories into dfs (hdfs dfs -put)",
		Long: `put copies local files, and directories with everything in them, into dfs:
to DST when it does not exist, into it when it is a directory (several
sources need a directory). Without DST the files go to the home directory.
LOCALSRC "-" reads stdin (the only source then; DST a file).

Each file is written as DST._COPYING_ and renamed when complete; a failed or
interrupted (Ctrl-C) copy removes it. An existing file is refused ("File
exists") unless -f. -p keeps the modification time and permission; -d
writes DST directly. --block-size and --replication (or hdfs's
-D dfs.blocksize=N, -D dfs.replication=N) set the new files' block size and
replication. On a terminal a progress bar shows (bytes, percent, rate, ETA)
once a copy takes more than a second; --progress forces it (as lines when
stderr is not a terminal), --no-progress hides it.`,
		Example: `  kura dfs put data.csv /user/alice/
  kura dfs put -f a.log b.log /logs
  kura dfs put --block-size 1m --replication 2 big.bin /data/big.bin
  tar c dir | kura dfs put - /backup/dir.tar
  kura dfs put -D dfs.replication=1 scratch/ /tmp/`,
		Args: minArgs(1, "LOCALSRC... [DST]"),
	}
	fl := c.Flags()
	f.register(fl, true)
	fl.BoolVarP(&lazy, "lazy-persist", "l", false, "hdfs's lazy persist (accepted; no effect)")
	fl.MarkHidden("lazy-persist")
	wo.register(fl)
	return shellCommand(e, c, func(sh *dfsShell, args []string) error {
		opts, err := wo.create(sh.prefix)
		if err != nil {
			return err
		}
		if err := f.progress.setup(sh); err != nil {
			return err
		}
		dstArg := "."
		if len(args) > 1 {
			dstArg, args = args[len(args)-1], args[:len(args)-1]
		}
		if len(args) > 1 && slicesContains(args, "-") {
			return usagef("%s: stdin (-) must be the only source", sh.prefix)
		}
		dsti, err := sh.remoteDest(dstArg)
		if err != nil {
			sh.fail(err)
			return nil
		}
		cp := &copier{sh: sh, src: localFS{}, dst: dfsFS{sh: sh, opts: opts}, overwrite: f.force, direct: f.direct, preserve: f.preserve}
		dst := &citem{disp: dsti.disp, p: dsti.abs}
		if len(args) == 1 && args[0] == "-" {
			cp.putStdin(dst)
			return nil
		}
		srcs := make([]*citem, 0, len(args))
		for _, a := range args {
			srcs = append(srcs, &citem{disp: a, p: a})
		}
		cp.checkAndRun(srcs, dst)
		return nil
	})
}

// putStdin writes stdin to dst.
func (cp *copier) putStdin(dst *citem) {
	di, err := cp.stat(cp.dst, dst)
	if err != nil {
		cp.sh.fail(cp.dstError(dst.disp, err))
		return
	}
	switch {
	case di != nil && di.isDir:
		cp.sh.fail(isADir(dst.disp))
		return
	case di != nil && !cp.overwrite:
		cp.sh.fail(exists(dst.disp))
		return
	case di == nil:
		if err := cp.checkDest(dst, 1); err != nil {
			cp.sh.fail(err)
			return
		}
	}
	in, stop := cp.sh.stdinReader()
	defer stop()
	cp.write(in, nil, dst, di != nil)
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// expandSources expands dfs source arguments into copy items, reporting
// the arguments that fail.
func (sh *dfsShell) expandSources(args []string) []*citem {
	var out []*citem
	for _, a := range args {
		items, err := sh.expand(a)
		if err != nil {
			sh.fail(err)
			continue
		}
		for _, it := range items {
			ci := &citem{disp: it.disp, p: it.abs}
			if it.statted {
				ci.statted = true
				if it.st != nil {
					ci.info = infoOf(it.st)
				}
			}
			out = append(out, ci)
		}
	}
	return out
}

func dfsGet(e *env) *cobra.Command {
	var f copyFlags
	var ignoreCrc bool
	c := &cobra.Command{
		Use:     "get [-f] [-p] SRC... [LOCALDST]",
		Aliases: []string{"copyToLocal"},
		Short:   "Copy dfs files and directories to the local file system (hdfs dfs -get)",
		Long: `get copies dfs files, and directories with everything in them, to the local
file system: to LOCALDST when it does not exist, into it when it is a
directory (several sources need a directory; without LOCALDST, the current
directory). Each file is written as LOCALDST._COPYING_ and renamed when
complete; a failed or interrupted copy removes it. An existing local file is
refused ("File exists") unless -f. -p keeps the modification and access
times and the permission. Every block is checked against its checksums
(-ignoreCrc is accepted and has no effect). Progress shows as for put.`,
		Example: `  kura dfs get /user/alice/data.csv .
  kura dfs get -f /logs/a.log /tmp/a.log
  kura dfs get '/logs/*.log' /tmp/logs/
  kura dfs get --progress /data/big.bin big.bin`,
		Args: minArgs(1, "SRC... [LOCALDST]"),
	}
	fl := c.Flags()
	f.register(fl, false)
	addWordFlag(fl, &ignoreCrc, "ignoreCrc")
	return shellCommand(e, c, func(sh *dfsShell, args []string) error {
		if err := f.progress.setup(sh); err != nil {
			return err
		}
		dstArg := "."
		if len(args) > 1 {
			dstArg, args = args[len(args)-1], args[:len(args)-1]
		}
		if dstArg == "" {
			return usagef("%s: LOCALDST is empty", sh.prefix)
		}
		srcs := sh.expandSources(args)
		if len(srcs) == 0 {
			return nil
		}
		cp := &copier{sh: sh, src: dfsFS{sh: sh}, dst: localFS{}, overwrite: f.force, preserve: f.preserve}
		dst := &citem{disp: dstArg, p: dstArg}
		cp.checkAndRun(srcs, dst)
		return nil
	})
}

func dfsCp(e *env) *cobra.Command {
	var f copyFlags
	var wo writeOptions
	c := &cobra.Command{
		Use:   "cp [-f] [-p] [-d] SRC... DST",
		Short: "Copy dfs files and directories within dfs (hdfs dfs -cp)",
		Long: `cp copies dfs files, and directories with everything in them, to DST: to DST
when it does not exist, into it when it is a directory (several sources need
a directory). The data goes through this client (read, then written as
DST._COPYING_ and renamed). An existing file is refused ("File exists")
unless -f; a directory is never copied into itself. -p keeps the
modification and access times and the permission; -d writes DST directly.
--block-size and --replication (or -D) set the new files'; progress shows as
for put.`,
		Example: `  kura dfs cp /data/a.csv /backup/
  kura dfs cp -f /data/a.csv /data/b.csv
  kura dfs cp -p /data /backup/data-2026`,
		Args: minArgs(2, "SRC... DST"),
	}
	fl := c.Flags()
	f.register(fl, true)
	wo.register(fl)
	return shellCommand(e, c, func(sh *dfsShell, args []string) error {
		opts, err := wo.create(sh.prefix)
		if err != nil {
			return err
		}
		if err := f.progress.setup(sh); err != nil {
			return err
		}
		dsti, err := sh.remoteDest(args[len(args)-1])
		if err != nil {
			sh.fail(err)
			return nil
		}
		srcs := sh.expandSources(args[:len(args)-1])
		if len(srcs) == 0 {
			return nil
		}
		cp := &copier{sh: sh, src: dfsFS{sh: sh}, dst: dfsFS{sh: sh, opts: opts}, overwrite: f.force, direct: f.direct, preserve: f.preserve, sameFS: true}
		dst := &citem{disp: dsti.disp, p: dsti.abs}
		cp.checkAndRun(srcs, dst)
		return nil
	})
}

func dfsAppendToFile(e *env) *cobra.Command {
	var pf progressFlags
	var wo writeOptions
	c := &cobra.Command{
		Use:   "appendToFile LOCALSRC... DST",
		Short: "Append local files (or stdin) to a dfs file (hdfs dfs -appendToFile)",
		Long: `appendToFile appends the local files, in order, to the dfs file DST, creating
it when it does not exist (with --block-size and --replication, or -D, if
given). LOCALSRC "-" reads stdin (the only source then). The sources are
checked before anything is written. An interrupted append closes the file
at once (lease recovery): it keeps the blocks the append finished, not the
bytes of a block still being written.`,
		Example: `  kura dfs appendToFile today.log /logs/all.log
  echo "one more line" | kura dfs appendToFile - /logs/all.log`,
		Args: minArgs(2, "LOCALSRC... DST"),
	}
	wo.register(c.Flags())
	pf.register(c.Flags())
	return shellCommand(e, c, func(sh *dfsShell, args []string) error {
		opts, err := wo.create(sh.prefix)
		if err != nil {
			return err
		}
		if err := pf.setup(sh); err != nil {
			return err
		}
		srcs := args[:len(args)-1]
		if len(srcs) > 1 && slicesContains(srcs, "-") {
			return usagef("%s: stdin (-) must be the sole input argument when present", sh.prefix)
		}
		dst, err := sh.remoteDest(args[len(args)-1])
		if err != nil {
			sh.fail(err)
			return nil
		}
		total := int64(0)
		for _, s := range srcs {
			if s == "-" {
				total = -1
				continue
			}
			fi, err := os.Stat(s)
			if err != nil {
				sh.fail(localError(s, err))
				return nil
			}
			if fi.IsDir() {
				sh.fail(isADir(s))
				return nil
			}
			if total >= 0 && fi.Mode().IsRegular() {
				total += fi.Size()
			} else {
				total = -1
			}
		}
		st, err := sh.stat(dst)
		if err != nil {
			sh.fail(err)
			return nil
		}
		if st != nil && st.IsDir {
			sh.fail(isADir(dst.disp))
			return nil
		}
		ctx, cancel := context.WithCancel(sh.ctx)
		defer cancel()
		var w *client.Writer
		if st == nil {
			w, err = sh.c.Create(ctx, dst.abs, opts)
		} else {
			w, err = sh.c.Append(ctx, dst.abs)
		}
		if err != nil {
			sh.fail(pathError(dst.disp, err))
			return nil
		}
		p := sh.progress.start(dst.disp, total)
		pw := progressWriter{w: w, p: p}
		for _, s := range srcs {
			err = appendOne(sh, pw, s)
			if err != nil {
				break
			}
		}
		if err == nil {
			err = w.Close()
		} else {
			// Give up the write and close the file at once rather than when
			// its lease expires: what reached finished blocks stays.
			cancel()
			w.Abort()
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(sh.ctx), cleanupTimeout)
			if _, rerr := sh.c.RecoverLease(rctx, dst.abs); rerr != nil {
				err = fmt.Errorf("%w (and closing the file: %v)", err, rerr)
			}
			rcancel()
		}
		p.Finish(err == nil)
		if err != nil {
			sh.fail(pathError(dst.disp, err))
		}
		return nil
	})
}

// appendOne copies the local file s ("-": stdin) into w.
func appendOne(sh *dfsShell, w io.Writer, s string) error {
	var r io.Reader
	if s == "-" {
		in, stop := sh.stdinReader()
		defer stop()
		r = in
	} else {
		f, err := os.Open(s)
		if err != nil {
			return localError(s, err)
		}
		defer f.Close()
		r = f
	}
	if _, err := io.CopyBuffer(w, ctxReader{ctx: sh.ctx, r: r}, make([]byte, copyBufSize)); err != nil {
		return err
	}
	return sh.ctx.Err()
}

func dfsCat(e *env) *cobra.Command {
	var ignoreCrc bool
	c := &cobra.Command{
		Use:   "cat SRC...",
		Short: "Print dfs files to stdout (hdfs dfs -cat)",
		Long: `cat writes the files to stdout, one after the other. Every block is checked
against its checksums (-ignoreCrc is accepted and has no effect); a
directory is an error ("Is a directory").`,
		Example: `  kura dfs cat /user/alice/notes.txt
  kura dfs cat '/logs/2026-*.log' | grep ERROR`,
		Args: minArgs(1, "SRC..."),
	}
	addWordFlag(c.Flags(), &ignoreCrc, "ignoreCrc")
	return shellCommand(e, c, func(sh *dfsShell, args []string) error {
		sh.forEach(args, func(it *item) {
			if !sh.existing(it) {
				return
			}
			if it.st.IsDir {
				sh.fail(isADir(it.disp))
				return
			}
			r, err := sh.c.Open(sh.ctx, it.abs)
			if err != nil {
				sh.fail(pathError(it.disp, err))
				return
			}
			if _, err := io.CopyBuffer(sh.out, ctxReader{ctx: sh.ctx, r: r}, make([]byte, copyBufSize)); err != nil {
				sh.fail(pathError(it.disp, err))
			}
		})
		return nil
	})
}

func dfsMv(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "mv SRC... DST",
		Short: "Move or rename dfs files and directories (hdfs dfs -mv)",
		Long: `mv renames SRC to DST, or moves it into DST when DST is a directory (several
sources need a directory). An existing file is never replaced ("File
exists"); a directory is never moved into itself. Each move is one atomic
rename on the namenode.`,
		Example: `  kura dfs mv /data/a.csv /data/b.csv
  kura dfs mv '/incoming/*.csv' /data/`,
		Args: minArgs(2, "SRC... DST"),
	}
	return shellCommand(e, c, func(sh *dfsShell, args []string) error {
		dst, err := sh.remoteDest(args[len(args)-1])
		if err != nil {
			sh.fail(err)
			return nil
		}
		var srcs []*item
		for _, a := range args[:len(args)-1] {
			items, err := sh.expand(a)
			if err != nil {
				sh.fail(err)
				continue
			}
			srcs = append(srcs, items...)
		}
		if len(srcs) == 0 {
			return nil
		}
		dst.statted = false
		cp := &copier{sh: sh, dst: dfsFS{sh: sh}}
		cd := &citem{disp: dst.disp, p: dst.abs}
		if err := cp.checkDest(cd, len(srcs)); err != nil {
			sh.fail(err)
			return nil
		}
		for _, src := range srcs {
			if sh.interrupted() {
				return nil
			}
			if !sh.existing(src) {
				continue
			}
			t := &item{disp: dst.disp, abs: dst.abs}
			if cd.info != nil && cd.info.isDir {
				name := hdfs.Base(src.abs)
				t = &item{disp: childDisp(dst.disp, name), abs: hdfs.Join(dst.abs, name)}
			}
			if src.st.IsDir {
				if t.abs == src.abs {
					sh.fail(pathIOError("", src.disp, t.disp, "are identical"))
					continue
				}
				if hdfs.IsAncestor(src.abs, t.abs) {
					sh.fail(pathIOError("", src.disp, t.disp, "is a subdirectory of itself"))
					continue
				}
			}
			if t != nil && t.abs != dst.abs {
				if ts, err := sh.stat(t); err != nil {
					sh.fail(err)
					continue
				} else if ts != nil {
					sh.fail(exists(t.disp))
					continue
				}
			}
			ok, err := sh.c.Rename(sh.ctx, src.abs, t.abs)
			switch {
			case err != nil:
				sh.fail(pathError(src.disp, err))
			case !ok:
				sh.fail(ioFailed(src.disp))
			}
		}
		return nil
	})
}

func dfsTouchz(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "touchz PATH...",
		Short: "Create empty dfs files (hdfs dfs -touchz)",
		Long: `touchz creates each PATH as an empty file with the current time. An existing
empty file is created anew; a file with data is an error ("Not a zero-length
file"), as is a directory.`,
		Example: `  kura dfs touchz /data/_SUCCESS`,
		Args:    minArgs(1, "PATH..."),
	}
	return shellCommand(e, c, func(sh *dfsShell, args []string) error {
		for _, a := range args {
			if sh.interrupted() {
				return nil
			}
			if a == "" {
				sh.fail(&shellMsg{msg: "Can not create a Path from an empty string"})
				continue
			}
			it := sh.literal(a)
			st, err := sh.stat(it)
			if err != nil {
				sh.fail(err)
				continue
			}
			switch {
			case st != nil && st.IsDir:
				sh.fail(isADir(it.disp))
				continue
			case st != nil && st.Length != 0:
				sh.fail(pathIOError("", it.disp, "", "Not a zero-length file"))
				continue
			case st == nil:
				parent := &item{disp: it.disp, abs: hdfs.Parent(it.abs)}
				if ps, err := sh.stat(parent); err != nil {
					sh.fail(err)
					continue
				} else if ps == nil || !ps.IsDir {
					sh.fail(notFound(it.disp))
					continue
				}
			}
			w, err := sh.c.Create(sh.ctx, it.abs, client.CreateOptions{Overwrite: st != nil})
			if err == nil {
				err = w.Close()
			}
			if err != nil {
				sh.fail(pathError(it.disp, err))
			}
		}
		return nil
	})
}
