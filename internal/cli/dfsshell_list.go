package cli

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/hdfs"
)

// lsFlags are ls's options, named as Hadoop's Ls.
type lsFlags struct {
	pathOnly, dirAsFile, human, recursive, reverse, byTime, bySize, atime bool
}

// lister prints ls lines. Like Hadoop's Ls, its column widths only grow
// during a run.
type lister struct {
	sh                                  *dfsShell
	o                                   lsFlags
	maxRepl, maxLen, maxOwner, maxGroup int
}

func dfsLs(e *env) *cobra.Command {
	var o lsFlags
	c := &cobra.Command{
		Use:   "ls [-C] [-d] [-h] [-R] [-t] [-S] [-r] [-u] [PATH...]",
		Short: "List directories and files (hdfs dfs -ls)",
		Long: `ls lists the entries of each directory PATH ("Found N items" first) and each
file PATH itself; without PATH, the home directory /user/<user>. A line is

  permissions replication owner group size modification-time path

with "-" as the replication of a directory and the time as yyyy-MM-dd HH:mm
in local time, columns aligned as hdfs aligns them.`,
		Example: `  kura dfs ls /
  kura dfs ls -R -h /user/alice
  kura dfs ls -d /data
  kura dfs ls -t -r '/logs/*.log'`,
	}
	fl := c.Flags()
	fl.BoolVarP(&o.pathOnly, "path-only", "C", false, "print the paths only")
	fl.BoolVarP(&o.dirAsFile, "directory", "d", false, "list directories as plain files")
	fl.BoolVarP(&o.human, "human-readable", "h", false, "sizes as 1.5 K, 128 M")
	fl.BoolVarP(&o.recursive, "recursive", "R", false, "list the contents of directories recursively")
	fl.BoolVarP(&o.byTime, "sort-time", "t", false, "sort by modification time, newest first")
	fl.BoolVarP(&o.bySize, "sort-size", "S", false, "sort by size, largest first")
	fl.BoolVarP(&o.reverse, "reverse", "r", false, "reverse the sort order")
	fl.BoolVarP(&o.atime, "atime", "u", false, "show and sort by the access time instead")
	addHelpFlag(c)
	return shellCommand(e, c, func(sh *dfsShell, args []string) error {
		if len(args) == 0 {
			args = []string{"."}
		}
		l := &lister{sh: sh, o: o, maxRepl: 3, maxLen: 10}
		if o.dirAsFile {
			l.o.recursive = false
		}
		sh.forEach(args, func(it *item) {
			if !sh.existing(it) {
				return
			}
			if !l.o.dirAsFile && it.st.IsDir {
				l.recurse(it)
				return
			}
			l.paths(nil, []*item{it})
		})
		return nil
	})
}

func (l *lister) recurse(it *item) {
	kids, err := l.sh.children(it)
	if err != nil {
		l.sh.fail(err)
		return
	}
	l.paths(it, kids)
}

// paths is Ls.processPaths: the header and sort for a directory's entries
// (not with -R, as in Hadoop), the column widths, then each line.
func (l *lister) paths(parent *item, items []*item) {
	if parent != nil && !l.o.recursive && len(items) > 0 {
		if !l.o.pathOnly {
			fmt.Fprintf(l.sh.out, "Found %d items\n", len(items))
		}
		l.sort(items)
	}
	if !l.o.pathOnly {
		for _, it := range items {
			l.maxRepl = max(l.maxRepl, len(strconv.Itoa(it.st.Replication)))
			l.maxLen = max(l.maxLen, len(strconv.FormatInt(it.st.Length, 10)))
			l.maxOwner = max(l.maxOwner, len(it.st.Owner))
			l.maxGroup = max(l.maxGroup, len(it.st.Group))
		}
	}
	for _, it := range items {
		if l.sh.interrupted() {
			return
		}
		l.line(it)
		if l.o.recursive && it.st.IsDir {
			l.recurse(it)
		}
	}
}

func (l *lister) sort(items []*item) {
	sign := 1
	if l.o.reverse {
		sign = -1
	}
	when := func(it *item) time.Time {
		if l.o.atime {
			return it.st.AccessTime
		}
		return it.st.ModTime
	}
	slices.SortStableFunc(items, func(a, b *item) int {
		switch {
		case l.o.byTime:
			return sign * when(b).Compare(when(a))
		case l.o.bySize:
			return sign * cmpInt64(b.st.Length, a.st.Length)
		}
		return sign * strings.Compare(a.abs, b.abs)
	})
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// line prints one entry in Hadoop's Ls format.
func (l *lister) line(it *item) {
	if l.o.pathOnly {
		fmt.Fprintln(l.sh.out, it.disp)
		return
	}
	st := it.st
	typ, repl := "-", strconv.Itoa(st.Replication)
	if st.IsDir {
		typ, repl = "d", "-"
	}
	t := st.ModTime
	if l.o.atime {
		t = st.AccessTime
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s%s %*s ", typ, st.Permission, l.maxRepl, repl)
	if l.maxOwner > 0 {
		fmt.Fprintf(&b, "%-*s ", l.maxOwner, st.Owner)
	} else {
		b.WriteString(st.Owner)
	}
	if l.maxGroup > 0 {
		fmt.Fprintf(&b, "%-*s ", l.maxGroup, st.Group)
	} else {
		b.WriteString(st.Group)
	}
	fmt.Fprintf(&b, "%*s %s %s\n", l.maxLen, formatSize(st.Length, l.o.human), t.Local().Format("2006-01-02 15:04"), it.disp)
	l.sh.out.WriteString(b.String())
}

// formatSize is FsShell's size: bytes, or with -h Hadoop's
// TraditionalBinaryPrefix with one decimal ("1.5 K", "128 M").
func formatSize(n int64, human bool) string {
	if human {
		return hdfs.BinaryPrefix(n, "", 1)
	}
	return strconv.FormatInt(n, 10)
}

// table is Hadoop's FsUsage.TableBuilder: columns two spaces apart, as
// wide as their widest cell, left-aligned unless listed in right (the last
// left-aligned column is not padded).
type table struct {
	rows  [][]string
	right map[int]bool
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) print(sh *dfsShell) {
	if len(t.rows) == 0 {
		return
	}
	widths := make([]int, len(t.rows[0]))
	for _, r := range t.rows {
		for i, c := range r {
			widths[i] = max(widths[i], len(c))
		}
	}
	for _, r := range t.rows {
		var b strings.Builder
		for i, c := range r {
			if i > 0 {
				b.WriteString("  ")
			}
			switch {
			case t.right[i]:
				fmt.Fprintf(&b, "%*s", widths[i], c)
			case i < len(r)-1:
				fmt.Fprintf(&b, "%-*s", widths[i], c)
			default:
				b.WriteString(c)
			}
		}
		b.WriteByte('\n')
		sh.out.WriteString(b.String())
	}
}

func dfsDu(e *env) *cobra.Command {
	var summary, human, header, noSnapshots bool
	c := &cobra.Command{
		Use:   "du [-s] [-h] [-v] [PATH...]",
		Short: "Show the space used by files and directories (hdfs dfs -du)",
		Long: `du shows, for each entry of a directory PATH (for PATH itself with -s, and
for a file PATH), its size and the disk space it takes with all its
replicas, in Hadoop 3's columns:

  SIZE  DISK_SPACE_CONSUMED_WITH_ALL_REPLICAS  FULL_PATH_NAME

Without PATH, the home directory. -v prints that header line, -h sizes as
"1.5 M"; -x (exclude snapshots) is accepted: dfs has no snapshots.`,
		Example: `  kura dfs du /user/alice
  kura dfs du -s -h /data`,
	}
	fl := c.Flags()
	fl.BoolVarP(&summary, "summary", "s", false, "one line for each PATH, not for its entries")
	fl.BoolVarP(&human, "human-readable", "h", false, "sizes as 1.5 K, 128 M")
	fl.BoolVarP(&header, "header", "v", false, "print a header line")
	fl.BoolVarP(&noSnapshots, "exclude-snapshots", "x", false, "exclude snapshots (dfs has none)")
	addHelpFlag(c)
	return shellCommand(e, c, func(sh *dfsShell, args []string) error {
		if len(args) == 0 {
			args = []string{"."}
		}
		var t table
		if header {
			t.add("SIZE", "DISK_SPACE_CONSUMED_WITH_ALL_REPLICAS", "FULL_PATH_NAME")
		}
		row := func(it *item) {
			cs, err := sh.c.ContentSummary(sh.ctx, it.abs)
			if err != nil {
				sh.fail(pathError(it.disp, err))
				return
			}
			t.add(formatSize(cs.Length, human), formatSize(cs.SpaceConsumed, human), it.disp)
		}
		sh.forEach(args, func(it *item) {
			if !sh.existing(it) {
				return
			}
			if summary || !it.st.IsDir {
				row(it)
				return
			}
			kids, err := sh.children(it)
			if err != nil {
				sh.fail(err)
				return
			}
			for _, k := range kids {
				row(k)
			}
		})
		if len(t.rows) > 0 && (!header || len(t.rows) > 1) {
			t.print(sh)
		}
		return nil
	})
}

// fsURI names the file system in df's first column.
func (sh *dfsShell) fsURI() string { return "kura://" + strings.Join(sh.namenodes, ",") }

func dfsDf(e *env) *cobra.Command {
	var human bool
	c := &cobra.Command{
		Use:   "df [-h] [PATH...]",
		Short: "Show the file system's capacity and use (hdfs dfs -df)",
		Long: `df shows the capacity of the live datanodes, the space dfs uses on them, what
remains, and the use in percent:

  Filesystem  Size  Used  Available  Use%

one line for each PATH (default /): dfs is one partition. Sizes are raw bytes
(replicas included) from the datanodes' last heartbeats; -h formats them
as "1.5 G".`,
		Example: `  kura dfs df -h`,
	}
	c.Flags().BoolVarP(&human, "human-readable", "h", false, "sizes as 1.5 G")
	addHelpFlag(c)
	return shellCommand(e, c, func(sh *dfsShell, args []string) error {
		if len(args) == 0 {
			args = []string{"/"}
		}
		t := table{right: map[int]bool{1: true, 2: true, 3: true, 4: true}}
		t.add("Filesystem", "Size", "Used", "Available", "Use%")
		var stats *client.FsStats
		sh.forEach(args, func(it *item) {
			if !sh.existing(it) {
				return
			}
			if stats == nil {
				s, err := sh.c.FsStats(sh.ctx)
				if err != nil {
					sh.fail(pathError(it.disp, err))
					return
				}
				stats = s
			}
			pct := 0.0
			if stats.Capacity > 0 {
				pct = float64(stats.Used) / float64(stats.Capacity) * 100
			}
			t.add(sh.fsURI(), formatSize(stats.Capacity, human), formatSize(stats.Used, human),
				formatSize(stats.Remaining, human), strconv.FormatFloat(math.Round(pct), 'f', 0, 64)+"%")
		})
		if len(t.rows) > 1 {
			t.print(sh)
		}
		return nil
	})
}

func dfsCount(e *env) *cobra.Command {
	var quotas, human, header bool
	c := &cobra.Command{
		Use:   "count [-q] [-h] [-v] PATH...",
		Short: "Count the directories, files and bytes under paths (hdfs dfs -count)",
		Long: `count prints, for each PATH, the number of directories (PATH included) and
files under it and their total size, then the path:

  DIR_COUNT FILE_COUNT CONTENT_SIZE PATHNAME

-q adds the quotas first (QUOTA REM_QUOTA SPACE_QUOTA REM_SPACE_QUOTA; dfs
has no quotas yet, so "none" and "inf"), -h formats sizes, -v prints the
header line.`,
		Example: `  kura dfs count /user/alice
  kura dfs count -q -h -v /data`,
		Args: minArgs(1, "PATH..."),
	}
	fl := c.Flags()
	fl.BoolVarP(&quotas, "quotas", "q", false, "show the quotas too")
	fl.BoolVarP(&human, "human-readable", "h", false, "sizes as 1.5 K, 128 M")
	fl.BoolVarP(&header, "header", "v", false, "print a header line")
	addHelpFlag(c)
	return shellCommand(e, c, func(sh *dfsShell, args []string) error {
		if header {
			h := ""
			if quotas {
				h = fmt.Sprintf("%12s %15s %15s %15s ", "QUOTA", "REM_QUOTA", "SPACE_QUOTA", "REM_SPACE_QUOTA")
			}
			fmt.Fprintf(sh.out, "%s%12s %12s %18s PATHNAME\n", h, "DIR_COUNT", "FILE_COUNT", "CONTENT_SIZE")
		}
		sh.forEach(args, func(it *item) {
			if !sh.existing(it) {
				return
			}
			cs, err := sh.c.ContentSummary(sh.ctx, it.abs)
			if err != nil {
				sh.fail(pathError(it.disp, err))
				return
			}
			q := ""
			if quotas {
				qs, qr, ss, sr := "none", "inf", "none", "inf"
				if cs.Quota > 0 {
					qs, qr = formatSize(cs.Quota, human), formatSize(cs.Quota-cs.DirectoryCount-cs.FileCount, human)
				}
				if cs.SpaceQuota >= 0 {
					ss, sr = formatSize(cs.SpaceQuota, human), formatSize(cs.SpaceQuota-cs.SpaceConsumed, human)
				}
				q = fmt.Sprintf("%12s %15s %15s %15s ", qs, qr, ss, sr)
			}
			fmt.Fprintf(sh.out, "%s%12s %12s %18s %s\n", q, formatSize(cs.DirectoryCount, human),
				formatSize(cs.FileCount, human), formatSize(cs.Length, human), it.disp)
		})
		return nil
	})
}

func dfsStat(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "stat [FORMAT] PATH...",
		Short: "Print facts about files and directories in a format (hdfs dfs -stat)",
		Long: `stat prints one line for each PATH in FORMAT (default "%y"), a first
argument that contains '%', with hdfs's sequences:

  %a permission in octal        %A permission as rwxr-xr-x
  %b size in bytes              %F type: "regular file" or "directory"
  %g group                      %u owner
  %n name                       %o block size
  %r replication                %y %Y modification time: UTC
  %x %X access time: UTC        "yyyy-MM-dd HH:mm:ss", and milliseconds

Any other character after '%' stands for itself ("%%" is "%").`,
		Example: `  kura dfs stat /data/big.bin
  kura dfs stat "%n %b bytes, %r replicas, %o block size" /data/big.bin
  kura dfs stat "%F %a %u:%g" /data`,
		Args: minArgs(1, "[FORMAT] PATH..."),
	}
	return shellCommand(e, c, func(sh *dfsShell, args []string) error {
		format := "%y"
		if strings.Contains(args[0], "%") {
			format, args = args[0], args[1:]
		}
		if len(args) == 0 {
			return usagef("%s: expected arguments [FORMAT] PATH..., got no PATH (see '%s --help')", sh.prefix, sh.prefix)
		}
		sh.forEach(args, func(it *item) {
			if sh.existing(it) {
				fmt.Fprintln(sh.out, statLine(format, it))
			}
		})
		return nil
	})
}

// statLine formats it's status as Hadoop's Stat.
func statLine(format string, it *item) string {
	st := it.st
	utc := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			b.WriteByte(format[i])
			continue
		}
		if i+1 == len(format) {
			break // Hadoop drops a trailing '%'
		}
		i++
		switch format[i] {
		case 'a':
			b.WriteString(st.Permission.Octal())
		case 'A':
			b.WriteString(st.Permission.String())
		case 'b':
			b.WriteString(strconv.FormatInt(st.Length, 10))
		case 'F':
			if st.IsDir {
				b.WriteString("directory")
			} else {
				b.WriteString("regular file")
			}
		case 'g':
			b.WriteString(st.Group)
		case 'n':
			b.WriteString(hdfs.Base(it.abs))
		case 'o':
			b.WriteString(strconv.FormatInt(st.BlockSize, 10))
		case 'r':
			b.WriteString(strconv.Itoa(st.Replication))
		case 'u':
			b.WriteString(st.Owner)
		case 'x':
			b.WriteString(utc(st.AccessTime))
		case 'X':
			b.WriteString(strconv.FormatInt(st.AccessTime.UnixMilli(), 10))
		case 'y':
			b.WriteString(utc(st.ModTime))
		case 'Y':
			b.WriteString(strconv.FormatInt(st.ModTime.UnixMilli(), 10))
		default:
			b.WriteByte(format[i])
		}
	}
	return b.String()
}

func dfsTest(e *env) *cobra.Command {
	var d, ex, f, s, z, w, r bool
	c := &cobra.Command{
		Use:   "test -d|-e|-f|-s|-z|-w|-r PATH",
		Short: "Test a path, answering with the exit status (hdfs dfs -test)",
		Long: `test answers one question about PATH with its exit status: 0 for yes, 1 for
no (or when PATH cannot be checked).

  -d  PATH is a directory        -e  PATH exists
  -f  PATH is a file             -s  PATH is not empty (size > 0)
  -z  PATH is empty (size 0)     -w  PATH exists and the user may write it
  -r  PATH exists and the user may read it

hdfs prints nothing; kura prints one line on stderr for a "no" (kura's
error handling prints every failing command's reason).`,
		Example: `  kura dfs test -e /data/_SUCCESS && echo done
  if kura dfs test -d /user/alice 2>/dev/null; then ...; fi`,
		Args: exactArgs(1, "PATH"),
	}
	fl := c.Flags()
	fl.BoolVarP(&d, "dir", "d", false, "is a directory")
	fl.BoolVarP(&ex, "exists", "e", false, "exists")
	fl.BoolVarP(&f, "file", "f", false, "is a file")
	fl.BoolVarP(&s, "non-empty", "s", false, "is larger than zero bytes")
	fl.BoolVarP(&z, "empty", "z", false, "is zero bytes")
	fl.BoolVarP(&w, "writable", "w", false, "exists and may be written by the user")
	fl.BoolVarP(&r, "readable", "r", false, "exists and may be read by the user")
	return shellCommand(e, c, func(sh *dfsShell, args []string) error {
		var flag byte
		n := 0
		for _, o := range []struct {
			set bool
			c   byte
		}{{d, 'd'}, {ex, 'e'}, {f, 'f'}, {s, 's'}, {z, 'z'}, {w, 'w'}, {r, 'r'}} {
			if o.set {
				flag, n = o.c, n+1
			}
		}
		switch {
		case n == 0:
			return usagef("%s: no test flag given (one of -d -e -f -s -z -w -r)", sh.prefix)
		case n > 1:
			return usagef("%s: only one test flag is allowed", sh.prefix)
		}
		if args[0] == "" {
			return usagef("%s: Can not create a Path from an empty string", sh.prefix)
		}
		var items []*item
		if hasGlob(args[0]) {
			items, _ = sh.expand(args[0])
		} else {
			items = []*item{sh.literal(args[0])}
		}
		answer := len(items) > 0
		for _, it := range items {
			ok, err := sh.test(flag, it)
			if err != nil {
				sh.fail(err)
				return nil
			}
			answer = answer && ok
		}
		if !answer && sh.fails == 0 {
			return quietFailure{why: fmt.Sprintf("%s: -%c `%s': false", sh.prefix, flag, args[0])}
		}
		return nil
	})
}

// test answers test's question flag about it.
func (sh *dfsShell) test(flag byte, it *item) (bool, error) {
	st, err := sh.stat(it)
	if err != nil || st == nil {
		return false, err
	}
	switch flag {
	case 'd':
		return st.IsDir, nil
	case 'f':
		return !st.IsDir, nil
	case 's':
		return st.Length > 0, nil
	case 'z':
		return st.Length == 0, nil
	case 'w':
		// SetTimes checks WRITE on the path and, with both times unset,
		// changes nothing: the client has no access() call.
		err = sh.c.SetTimes(sh.ctx, it.abs, time.Time{}, time.Time{})
	case 'r':
		if st.IsDir {
			_, err = sh.c.List(sh.ctx, it.abs)
		} else {
			_, err = sh.c.Open(sh.ctx, it.abs)
		}
	}
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, hdfs.ErrAccessControl), errors.Is(err, hdfs.ErrFileNotFound):
		return false, nil
	}
	return false, pathError(it.disp, err)
}
