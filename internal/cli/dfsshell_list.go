package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
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

// sorts reports whether a directory's entries are sorted other than by
// name, the namenode's order: ls then holds the directory whole, as hdfs
// does (without -R, the only time ls sorts).
func (l *lister) sorts() bool {
	return !l.o.recursive && (l.o.byTime || l.o.bySize || l.o.reverse)
}

// recurse lists the directory it. A directory of up to dirHold entries is
// held and printed as Hadoop's Ls does (paths). A larger one is read twice,
// a page at a time: once for the "Found N items" count and the column
// widths, which hdfs computes over the whole directory before printing its
// first line, then for the lines (and with -R the directories below). So
// the output is the same, and memory is the namenode's page times the
// depth; an entry created between the two readings may widen the columns
// part way, as they widen from one directory to the next. With -C (no
// header, no widths) and no sort, the directory is read once.
func (l *lister) recurse(it *item) {
	sh := l.sh
	if l.o.pathOnly && !l.sorts() {
		sh.eachEntry(it, func(k *item) {
			l.line(k)
			if l.o.recursive && k.st.IsDir {
				l.recurse(k)
			}
		})
		return
	}
	var (
		held     []*item
		streamed bool
		n        int
		w        colWidths
	)
	counted := sh.eachEntry(it, func(k *item) {
		n++
		w.add(k.st)
		if !streamed {
			held = append(held, k)
			if len(held) > dirHold && !l.sorts() {
				held, streamed = nil, true
			}
		}
	})
	if !counted {
		return
	}
	if !streamed {
		l.paths(it, held)
		return
	}
	if !l.o.recursive {
		fmt.Fprintf(sh.out, "Found %d items\n", n)
	}
	l.widen(w)
	sh.eachEntry(it, func(k *item) {
		l.widen(widthsOf(k.st))
		l.line(k)
		if l.o.recursive && k.st.IsDir {
			l.recurse(k)
		}
	})
}

// colWidths are the widths ls's columns need for some entries.
type colWidths struct{ repl, length, owner, group int }

// widthsOf is what st needs.
func widthsOf(st *client.FileStatus) colWidths {
	return colWidths{
		repl: len(strconv.Itoa(st.Replication)), length: len(strconv.FormatInt(st.Length, 10)),
		owner: len(st.Owner), group: len(st.Group),
	}
}

// add widens w for st.
func (w *colWidths) add(st *client.FileStatus) {
	o := widthsOf(st)
	w.repl, w.length = max(w.repl, o.repl), max(w.length, o.length)
	w.owner, w.group = max(w.owner, o.owner), max(w.group, o.group)
}

// widen is Hadoop's adjustColumnWidths: the columns only grow.
func (l *lister) widen(w colWidths) {
	l.maxRepl = max(l.maxRepl, w.repl)
	l.maxLen = max(l.maxLen, w.length)
	l.maxOwner = max(l.maxOwner, w.owner)
	l.maxGroup = max(l.maxGroup, w.group)
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
		var w colWidths
		for _, it := range items {
			w.add(it.st)
		}
		l.widen(w)
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
// left-aligned column is not padded). Since no row can be printed before
// the widest cell is known, rows past dirHold go to a temporary file (see
// spill) rather than memory; close removes it.
type table struct {
	rows   [][]string
	right  map[int]bool
	widths []int
	n      int // rows added

	spilled *os.File // the rows after the first dirHold, once spilled
	w       *bufio.Writer
	noSpill bool // creating the temporary file failed: rows stay in memory
}

func (t *table) add(cells ...string) {
	for i, c := range cells {
		if i == len(t.widths) {
			t.widths = append(t.widths, 0)
		}
		t.widths[i] = max(t.widths[i], len(c))
	}
	t.n++
	if t.spilled == nil && (len(t.rows) < dirHold || t.noSpill || !t.spill()) {
		t.rows = append(t.rows, cells)
		return
	}
	t.w.WriteString(strconv.Itoa(len(cells)) + "\n")
	for _, c := range cells {
		t.w.WriteString(strconv.Itoa(len(c)) + "\n" + c)
	}
}

// spill opens the temporary file the rows after the held ones go to:
// false when it cannot be created (the rows stay in memory then).
func (t *table) spill() bool {
	f, err := os.CreateTemp("", "kura-dfs-table-*")
	if err != nil {
		t.noSpill = true
		return false
	}
	t.spilled, t.w = f, bufio.NewWriterSize(f, 64<<10)
	return true
}

// close removes the temporary file, if any.
func (t *table) close() {
	if t.spilled != nil {
		t.spilled.Close()
		os.Remove(t.spilled.Name())
		t.spilled = nil
	}
}

// print prints the rows: those held, then those spilled.
func (t *table) print(sh *dfsShell) {
	for _, r := range t.rows {
		t.printRow(sh, r)
	}
	if t.spilled == nil {
		return
	}
	err := t.w.Flush()
	if err == nil {
		_, err = t.spilled.Seek(0, io.SeekStart)
	}
	if err == nil {
		err = readRows(bufio.NewReaderSize(t.spilled, 64<<10), func(r []string) { t.printRow(sh, r) })
	}
	if err != nil {
		sh.fail(&shellMsg{msg: "temporary file " + t.spilled.Name() + ": " + err.Error(), err: err})
	}
}

// readRows reads back the rows add wrote: each a line with its number of
// cells, then each cell as a line with its length and the bytes.
func readRows(r *bufio.Reader, fn func([]string)) error {
	num := func() (int, error) {
		l, err := r.ReadString('\n')
		if err != nil {
			return 0, err
		}
		return strconv.Atoi(strings.TrimSuffix(l, "\n"))
	}
	for {
		n, err := num()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		row := make([]string, n)
		for i := range row {
			size, err := num()
			if err != nil {
				return err
			}
			b := make([]byte, size)
			if _, err := io.ReadFull(r, b); err != nil {
				return err
			}
			row[i] = string(b)
		}
		fn(row)
	}
}

func (t *table) printRow(sh *dfsShell, r []string) {
	var b strings.Builder
	for i, c := range r {
		if i > 0 {
			b.WriteString("  ")
		}
		switch {
		case t.right[i]:
			fmt.Fprintf(&b, "%*s", t.widths[i], c)
		case i < len(r)-1:
			fmt.Fprintf(&b, "%-*s", t.widths[i], c)
		default:
			b.WriteString(c)
		}
	}
	b.WriteByte('\n')
	sh.out.WriteString(b.String())
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
		defer t.close()
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
			for k, err := range sh.entries(it) {
				if err != nil {
					sh.fail(err)
					return
				}
				row(k)
			}
		})
		if t.n > 0 && (!header || t.n > 1) {
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
		if t.n > 1 {
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
			err = sh.listable(it.abs)
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

// listable checks that the user may list the directory p, reading one
// entry of it at most.
func (sh *dfsShell) listable(p string) error {
	for _, err := range sh.c.ListIter(sh.ctx, p, client.WithPageSize(1)) {
		return err
	}
	return nil
}
