package cli

// The dfs file commands: `kura dfs ls /`, `kura dfs put f /dir`, ... as
// `hdfs dfs -ls /` and the other commands of Hadoop's FsShell
// (org.apache.hadoop.fs.shell), with their options, output and messages.
//
// Each command processes its path arguments one by one: a path that fails
// prints "kura dfs <cmd>: <hdfs's message>" on stderr and the command goes
// on with the next; the exit status is 1 when any failed. Run prints the
// error a command returns, so the last failure's line is returned rather
// than printed (see dfsShell.fail). Usage errors exit 2.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/hdfs"
	"github.com/kura-dev/kura/dfs/namenode"
)

// Environment variables of the file commands.
const (
	// envDFSNamenode is --namenode's default.
	envDFSNamenode = "KURA_DFS_NAMENODE"
	// envHadoopUser is --user's default, as for hdfs (simple authentication).
	envHadoopUser = "HADOOP_USER_NAME"
)

// dfsFilesGroup is the help group of the file commands under `kura dfs`.
const dfsFilesGroup = "files"

// addDFSShellCommands adds the file commands to `kura dfs` (c), in their own
// group of its help.
func addDFSShellCommands(c *cobra.Command, e *env) {
	c.AddGroup(&cobra.Group{ID: dfsFilesGroup, Title: "File commands (as 'hdfs dfs -<cmd>'):"})
	c.AddCommand(
		dfsLs(e), dfsMkdir(e), dfsPut(e), dfsGet(e), dfsCat(e), dfsAppendToFile(e),
		dfsRm(e), dfsMv(e), dfsCp(e), dfsChmod(e), dfsChown(e), dfsChgrp(e),
		dfsDu(e), dfsDf(e), dfsCount(e), dfsStat(e), dfsTest(e), dfsTouchz(e), dfsSetrep(e),
	)
}

// shellConnHelp is the help text shared by the file commands.
const shellConnHelp = `
Paths are dfs paths: absolute, or relative to the user's home directory
/user/<user> (as hdfs's); '*', '?', '[...]' and '{a,b}' are expanded as
hdfs's globs (quote them for the local shell). --namenode lists the
namenodes' --rpc addresses (default $KURA_DFS_NAMENODE, else
127.0.0.1:8020); --user is the user to act as (default $HADOOP_USER_NAME,
else the OS user). A path that fails prints "kura dfs <cmd>: <message>" with
hdfs's message and the command goes on with the next; the exit status is 1
when any failed, 2 for a usage error.`

// shellCommand turns c into a file command: it adds the connection flags
// and runs run with a connected dfsShell. run reports path failures with
// sh.fail and returns only errors that end the command (usage errors).
func shellCommand(e *env, c *cobra.Command, run func(sh *dfsShell, args []string) error) *cobra.Command {
	var namenodes, userName string
	pf := c.PersistentFlags()
	pf.StringVar(&namenodes, "namenode", "", "the namenodes' --rpc addresses, HOST:PORT[,HOST:PORT...] (default $"+envDFSNamenode+", else "+namenode.DefaultRPCAddr+")")
	pf.StringVar(&userName, "user", "", "the user to act as (default $"+envHadoopUser+", else the OS user)")
	c.GroupID = dfsFilesGroup
	c.Long += "\n" + shellConnHelp
	c.RunE = func(c *cobra.Command, args []string) error {
		prefix := c.CommandPath() // "kura dfs ls", or the alias used
		if as := c.CalledAs(); as != "" && as != c.Name() {
			prefix = strings.TrimSuffix(prefix, c.Name()) + as
		}
		nns, err := clientNamenodes(c, namenodes, prefix)
		if err != nil {
			return err
		}
		u, err := dfsUser(userName, prefix)
		if err != nil {
			return err
		}
		cl, err := client.New(client.Config{Namenodes: nns, User: u})
		if err != nil {
			return fmt.Errorf("%s: %w", prefix, err)
		}
		sh := &dfsShell{
			ctx: c.Context(), prefix: prefix, c: cl, user: u, home: "/user/" + u,
			namenodes: nns, out: bufio.NewWriterSize(e.stdout, 64<<10), stderr: e.stderr, stdin: e.stdin,
		}
		defer sh.close()
		if err := run(sh, args); err != nil {
			return err
		}
		return sh.result()
	}
	return c
}

// dfsShell is one run of a file command.
type dfsShell struct {
	ctx       context.Context
	prefix    string // "kura dfs ls": what error lines start with
	c         *client.Client
	user      string
	home      string // /user/<user>, where relative paths start
	namenodes []string
	out       *bufio.Writer
	stderr    io.Writer
	stdin     io.Reader
	progress  progressConfig

	fails   int
	pending string // the last failure's line, not printed yet
	stopped bool   // the context is done and was reported
}

func (sh *dfsShell) close() {
	sh.out.Flush()
	sh.c.Close()
}

// fail reports a failed path: its line is printed when the next failure
// comes, or returned by result as the command's error (which Run prints as
// it is, since it starts with "kura "). An interruption (Ctrl-C) is
// reported once.
func (sh *dfsShell) fail(err error) {
	if sh.ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		if sh.stopped {
			return
		}
		sh.stopped = true
	}
	sh.fails++
	if sh.pending != "" {
		sh.out.Flush()
		fmt.Fprintln(sh.stderr, sh.pending)
	}
	sh.pending = sh.prefix + ": " + remoteText(err)
}

// result is the command's error: nil when no path failed.
func (sh *dfsShell) result() error {
	if sh.fails == 0 {
		return nil
	}
	return shellFailed{line: sh.pending}
}

// interrupted reports whether the command's context is done (Ctrl-C), as
// a failure the first time.
func (sh *dfsShell) interrupted() bool {
	if sh.ctx.Err() == nil {
		return false
	}
	sh.fail(sh.ctx.Err())
	return true
}

// shellFailed is the error of a file command some paths of which failed:
// the last failure's line (the earlier ones were printed).
type shellFailed struct{ line string }

// Error returns the line to print.
func (e shellFailed) Error() string { return e.line }

// shellMsg is an error whose text is already hdfs's message.
type shellMsg struct {
	msg string
	err error
}

// Error returns the message.
func (e *shellMsg) Error() string { return e.msg }

// Unwrap returns the error the message is about, if any.
func (e *shellMsg) Unwrap() error { return e.err }

// pathIOError is Hadoop's PathIOException message: "[op ]`path'[ to
// `target']: msg".
func pathIOError(op, p, target, msg string) error {
	s := "`" + p + "'"
	if op != "" {
		s = op + " " + s
	}
	if target != "" {
		s += " to `" + target + "'"
	}
	return &shellMsg{msg: s + ": " + msg}
}

func notFound(p string) error { return &hdfs.ShellError{Path: p, Kind: hdfs.ShellNotFound} }
func isADir(p string) error   { return &hdfs.ShellError{Path: p, Kind: hdfs.ShellIsDirectory} }
func notADir(p string) error  { return &hdfs.ShellError{Path: p, Kind: hdfs.ShellNotDirectory} }
func exists(p string) error   { return &hdfs.ShellError{Path: p, Kind: hdfs.ShellExists} }
func ioFailed(p string) error { return &hdfs.ShellError{Path: p, Kind: hdfs.ShellIOError} }

// remoteText is an error's message as hdfs prints it: a namenode
// exception's message (without the class), a shell error's text, the
// first line of anything else.
func remoteText(err error) string {
	var sm *shellMsg
	var se *hdfs.ShellError
	var re *hdfs.RemoteException
	var msg string
	switch {
	case errors.As(err, &sm):
		msg = sm.msg
	case errors.As(err, &se):
		msg = se.Error()
	case errors.As(err, &re):
		if msg = re.Message; msg == "" {
			msg = re.Exception
		}
	case errors.Is(err, context.Canceled):
		msg = "Interrupted"
	default:
		msg = err.Error()
	}
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return msg
}

// pathError turns a namenode error about the path shown as p into what
// hdfs prints ("`p': No such file or directory", ...).
func pathError(p string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return hdfs.ShellErrorFor(p, err)
}

// localError turns a local file-system error about p into hdfs's words.
func localError(p string, err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return notFound(p)
	case errors.Is(err, os.ErrPermission):
		return &hdfs.ShellError{Path: p, Kind: hdfs.ShellAccessDenied}
	case errors.Is(err, os.ErrExist):
		return exists(p)
	}
	return &shellMsg{msg: err.Error(), err: err}
}

// item is a dfs path being processed: as shown (the argument as typed, or
// a child of one) and absolute, with its status once fetched.
type item struct {
	disp    string
	abs     string
	st      *client.FileStatus // nil: missing (once statted)
	statted bool
}

// abs resolves a path argument as Hadoop's Path does: relative to the home
// directory, with "." and ".." resolved and repeated slashes dropped.
func (sh *dfsShell) abs(p string) string {
	if !strings.HasPrefix(p, "/") {
		p = sh.home + "/" + p
	}
	return path.Clean(p)
}

// literal is the item of a path argument taken as it is (no glob).
func (sh *dfsShell) literal(arg string) *item {
	return &item{disp: arg, abs: sh.abs(arg)}
}

// stat fetches it's status: nil (and no error) when it does not exist.
func (sh *dfsShell) stat(it *item) (*client.FileStatus, error) {
	if it.statted {
		return it.st, nil
	}
	st, err := sh.c.Stat(sh.ctx, it.abs)
	switch {
	case errors.Is(err, hdfs.ErrFileNotFound), errors.Is(err, hdfs.ErrParentNotDirectory):
		st = nil
	case err != nil:
		return nil, pathError(it.disp, err)
	}
	it.st, it.statted = st, true
	return st, nil
}

// existing stats it and fails it when missing: false when it cannot be
// processed (the failure is reported).
func (sh *dfsShell) existing(it *item) bool {
	st, err := sh.stat(it)
	if err != nil {
		sh.fail(err)
		return false
	}
	if st == nil {
		sh.fail(notFound(it.disp))
		return false
	}
	return true
}

// childDisp is how Hadoop shows the child name of the path shown as parent.
func childDisp(parent, name string) string {
	switch {
	case parent == ".":
		return name
	case strings.HasSuffix(parent, "/"):
		return parent + name
	}
	return parent + "/" + name
}

// dirHold is how many entries of one directory a command holds in memory:
// ls sorts and sizes the columns of a directory up to that size from
// memory, as hdfs does, and lists a larger one twice, a page at a time (see
// lister.recurse); du's table goes to a temporary file past that many rows.
// Everything else streams directories a page at a time (client.ListIter),
// so that memory is bounded by the namenode's page times the depth, not by
// the size of a directory. A variable for tests.
var dirHold = 1000

// entries lists the directory it a page at a time: its entries as items,
// or an error (about it.disp) that ends the sequence.
func (sh *dfsShell) entries(it *item) iter.Seq2[*item, error] {
	return func(yield func(*item, error) bool) {
		for st, err := range sh.c.ListIter(sh.ctx, it.abs) {
			if err != nil {
				yield(nil, pathError(it.disp, err))
				return
			}
			k := &item{disp: childDisp(it.disp, st.Name), abs: hdfs.Join(it.abs, st.Name), st: st, statted: true}
			if !yield(k, nil) {
				return
			}
		}
	}
}

// representsDir is Hadoop's PathData.representsDirectory: a path typed as
// a directory ("d/", ".", "..").
func representsDir(p string) bool {
	b := p[strings.LastIndexByte(p, '/')+1:]
	return strings.HasSuffix(p, "/") || b == "." || b == ".."
}

// hasGlob reports whether p has glob characters.
func hasGlob(p string) bool {
	return strings.ContainsAny(p, "*?[") || (strings.Contains(p, "{") && strings.Contains(p, "}"))
}

// expand resolves a path argument: a plain path is itself (existing or
// not); a glob is the existing paths matching it, sorted, and a glob
// matching nothing is a failure ("`arg': No such file or directory"), as
// Hadoop's expandAsGlob.
func (sh *dfsShell) expand(arg string) ([]*item, error) {
	if arg == "" {
		return nil, &shellMsg{msg: "Can not create a Path from an empty string"}
	}
	if !hasGlob(arg) {
		return []*item{sh.literal(arg)}, nil
	}
	var out []*item
	seen := map[string]bool{}
	pats, ok := expandBraces(arg, maxBraceAlternatives)
	if !ok {
		return nil, &shellMsg{msg: fmt.Sprintf("`%s': more than %d alternatives in its {...} groups", arg, maxBraceAlternatives)}
	}
	for _, pat := range pats {
		matches, err := sh.glob(pat)
		if err != nil {
			return nil, err
		}
		for _, m := range matches {
			if !seen[m.abs] {
				seen[m.abs] = true
				out = append(out, m)
			}
		}
	}
	if len(out) == 0 {
		return nil, notFound(arg)
	}
	slices.SortFunc(out, func(a, b *item) int { return strings.Compare(a.abs, b.abs) })
	return out, nil
}

// glob matches one brace-free pattern component by component, listing the
// directories a component with glob characters applies to.
func (sh *dfsShell) glob(pat string) ([]*item, error) {
	relative := !strings.HasPrefix(pat, "/")
	abs := sh.abs(pat)
	cur := []*item{{disp: "/", abs: "/"}}
	comps := strings.Split(strings.TrimPrefix(abs, "/"), "/")
	for i, comp := range comps {
		if comp == "" {
			continue
		}
		last := i == len(comps)-1
		var next []*item
		if !hasGlob(comp) {
			name := unescapeGlob(comp)
			for _, it := range cur {
				next = append(next, &item{abs: hdfs.Join(it.abs, name)})
			}
		} else {
			if _, err := path.Match(comp, ""); err != nil {
				return nil, &shellMsg{msg: "Illegal file pattern: " + err.Error() + " for glob " + pat, err: err}
			}
			for _, it := range cur {
				// Only the matches are kept: the directory is read a
				// page at a time.
				for st, err := range sh.c.ListIter(sh.ctx, it.abs) {
					if err != nil {
						if errors.Is(err, hdfs.ErrFileNotFound) || errors.Is(err, hdfs.ErrParentNotDirectory) {
							break
						}
						return nil, pathError(pat, err)
					}
					if ok, _ := path.Match(comp, st.Name); ok && (last || st.IsDir) {
						next = append(next, &item{abs: hdfs.Join(it.abs, st.Name), st: st, statted: last})
					}
				}
			}
		}
		cur = next
	}
	var out []*item
	for _, it := range cur {
		if st, err := sh.stat(it); err != nil {
			return nil, err
		} else if st == nil {
			continue
		}
		it.disp = it.abs
		if relative {
			if rest, ok := strings.CutPrefix(it.abs, sh.home+"/"); ok {
				it.disp = rest
			}
		}
		out = append(out, it)
	}
	return out, nil
}

// unescapeGlob drops the backslashes of a glob component without glob
// characters.
func unescapeGlob(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// maxBraceAlternatives bounds the patterns one argument's {a,b} groups
// expand to: "{a,b}" twenty times over would be a million.
const maxBraceAlternatives = 10_000

// expandBraces expands the first {a,b,...} group of p (recursively, for
// the others and nested ones): "/d/{a,b}.csv" gives "/d/a.csv", "/d/b.csv".
// It gives up (false) past limit patterns.
func expandBraces(p string, limit int) ([]string, bool) {
	start := -1
	depth := 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '{':
			if depth == 0 {
				start = i
			}
			depth++
		case '}':
			if depth == 0 {
				continue
			}
			depth--
			if depth == 0 {
				var out []string
				for _, alt := range splitTopLevel(p[start+1 : i]) {
					more, ok := expandBraces(p[:start]+alt+p[i+1:], limit-len(out))
					if !ok {
						return nil, false
					}
					out = append(out, more...)
				}
				return out, true
			}
		}
	}
	if limit < 1 {
		return nil, false
	}
	return []string{p}, true
}

// splitTopLevel splits s at the commas outside nested braces.
func splitTopLevel(s string) []string {
	var out []string
	depth, from := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '{':
			depth++
		case '}':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[from:i])
				from = i + 1
			}
		}
	}
	return append(out, s[from:])
}

// remoteDest resolves a destination argument: a glob must match exactly
// one path (Hadoop's getRemoteDestination).
func (sh *dfsShell) remoteDest(arg string) (*item, error) {
	if !hasGlob(arg) {
		if arg == "" {
			return nil, &shellMsg{msg: "Can not create a Path from an empty string"}
		}
		return sh.literal(arg), nil
	}
	items, err := sh.expand(arg)
	if err != nil {
		return nil, err
	}
	if len(items) > 1 {
		return nil, pathIOError("", arg, "", "Too many matches")
	}
	return items[0], nil
}

// forEach expands every argument and calls fn with each item, reporting
// expansion failures and stopping on Ctrl-C.
func (sh *dfsShell) forEach(args []string, fn func(it *item)) {
	for _, arg := range args {
		if sh.interrupted() {
			return
		}
		items, err := sh.expand(arg)
		if err != nil {
			sh.fail(err)
			continue
		}
		for _, it := range items {
			if sh.interrupted() {
				return
			}
			fn(it)
		}
	}
}

// walk calls fn on it and, when it is a directory and recursive is set, on
// everything below it (depth first, each directory before its entries).
// fn returns false to skip the entries of a directory. Directories are
// read a page at a time: a listing that fails part way (the directory
// deleted meanwhile) is reported after the entries before it were walked.
func (sh *dfsShell) walk(it *item, recursive bool, fn func(it *item) bool) {
	if !fn(it) || !recursive || it.st == nil || !it.st.IsDir {
		return
	}
	sh.eachEntry(it, func(k *item) { sh.walk(k, recursive, fn) })
}

// eachEntry calls fn with each entry of directory it, page by page; a
// listing error is reported (sh.fail) and ends it, as an interruption
// does. It reports whether every entry was seen.
func (sh *dfsShell) eachEntry(it *item, fn func(k *item)) bool {
	for k, err := range sh.entries(it) {
		if err != nil {
			sh.fail(err)
			return false
		}
		if sh.interrupted() {
			return false
		}
		fn(k)
	}
	return true
}

// wordFlag accepts one of hdfs's single-dash words ("-skipTrash"): pflag
// reads "-skipTrash" as the shorthand -s with the value "kipTrash", so a
// hidden flag with that shorthand takes exactly the rest of the word.
type wordFlag struct {
	word string
	set  *bool
}

// Set accepts the rest of the word after its first letter.
func (w *wordFlag) Set(v string) error {
	if v != w.word[1:] {
		return fmt.Errorf("unknown option -%c%s (hdfs's option here is -%s)", w.word[0], v, w.word)
	}
	*w.set = true
	return nil
}

// String is the (empty) default shown in help.
func (w *wordFlag) String() string { return "" }

// Type is the (empty) value name shown in help.
func (w *wordFlag) Type() string { return "" }

// addWordFlag lets -word (hdfs's spelling) set p, as --long does.
func addWordFlag(fl *pflag.FlagSet, p *bool, word string) {
	name := "hdfs-" + word
	fl.VarP(&wordFlag{word: word, set: p}, name, word[:1], "")
	fl.MarkHidden(name)
}

// addAliasFlag adds a hidden -short that sets p too (hdfs's -R beside -r).
func addAliasFlag(fl *pflag.FlagSet, p *bool, short string) {
	name := "alias-" + short
	fl.BoolVarP(p, name, short, false, "")
	fl.MarkHidden(name)
}

// addHelpFlag defines --help without the -h shorthand, for commands whose
// -h is hdfs's "human-readable" (cobra would otherwise claim -h).
func addHelpFlag(c *cobra.Command) {
	c.Flags().Bool("help", false, "help for "+c.Name())
}

// minArgs accepts at least min arguments.
func minArgs(min int, names string) cobra.PositionalArgs {
	return rangeArgs(min, math.MaxInt, names)
}

// writeOptions are the settings of files a command creates: --block-size,
// --replication and hdfs's -D dfs.blocksize=N / -D dfs.replication=N.
type writeOptions struct {
	blockSize   string
	replication int
	defines     []string
}

func (w *writeOptions) register(fl *pflag.FlagSet) {
	fl.StringVar(&w.blockSize, "block-size", "", "block size of new files, bytes or with a k/m/g suffix (default: the namenode's, 128m)")
	fl.IntVar(&w.replication, "replication", 0, "replication of new files (default: the namenode's, 3)")
	fl.StringArrayVarP(&w.defines, "define", "D", nil, "hdfs's KEY=VALUE: dfs.blocksize or dfs.replication")
}

// create turns the flags into client.CreateOptions.
func (w *writeOptions) create(prefix string) (client.CreateOptions, error) {
	var o client.CreateOptions
	bs, repl := w.blockSize, ""
	if w.replication != 0 {
		repl = strconv.Itoa(w.replication)
	}
	for _, d := range w.defines {
		k, v, ok := strings.Cut(d, "=")
		switch k = strings.TrimSpace(k); {
		case !ok:
			return o, usagef("%s: -D %q: want KEY=VALUE", prefix, d)
		case k == "dfs.blocksize" || k == "dfs.block.size":
			bs = v
		case k == "dfs.replication":
			repl = v
		default:
			return o, usagef("%s: -D %s: unknown setting (known: dfs.blocksize, dfs.replication)", prefix, k)
		}
	}
	if bs != "" {
		n, err := parseBytes(bs)
		if err != nil || n <= 0 {
			return o, usagef("%s: block size %q: want a positive size such as 1048576, 1m or 128m", prefix, bs)
		}
		o.BlockSize = n
	}
	if repl != "" {
		n, err := strconv.Atoi(repl)
		if err != nil || n < 1 || n > math.MaxInt16 {
			return o, usagef("%s: replication %q: want an integer from 1 to %d", prefix, repl, math.MaxInt16)
		}
		o.Replication = n
	}
	return o, nil
}

// parseBytes reads a size as Hadoop's Configuration.getLongBytes: digits
// with an optional binary suffix k, m, g, t, p or e (any case; "kb", "kib"
// and "MiB" are accepted too).
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	low := strings.ToLower(s)
	low = strings.TrimSuffix(strings.TrimSuffix(low, "b"), "i")
	shift := 0
	if n := len(low); n > 0 {
		if i := strings.IndexByte("kmgtpe", low[n-1]); i >= 0 {
			shift = 10 * (i + 1)
			low = low[:n-1]
		}
	}
	v, err := strconv.ParseInt(strings.TrimSpace(low), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	if shift > 0 && (v > math.MaxInt64>>shift || v < math.MinInt64>>shift) {
		return 0, fmt.Errorf("size %q: out of range", s)
	}
	return v << shift, nil
}

// progressFlags are --progress and --no-progress.
type progressFlags struct{ force, disable bool }

func (p *progressFlags) register(fl *pflag.FlagSet) {
	fl.BoolVar(&p.force, "progress", false, "show progress even for short copies and when stderr is not a terminal (then as lines)")
	fl.BoolVar(&p.disable, "no-progress", false, "never show progress (default: a bar on a terminal after a second)")
}

// setup decides sh's progress style.
func (p *progressFlags) setup(sh *dfsShell) error {
	if p.force && p.disable {
		return usagef("%s: --progress and --no-progress exclude each other", sh.prefix)
	}
	sh.progress = newProgressConfig(sh.stderr, p.force, p.disable)
	return nil
}

// ctxReader stops a copy when ctx is done (Ctrl-C); a read that fails
// because of it fails with ctx's error.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

// Read reads from r unless ctx is done.
func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := r.r.Read(p)
	if err != nil && r.ctx.Err() != nil {
		err = r.ctx.Err()
	}
	return n, err
}

// stdinReader returns the command's stdin read by a goroutine, so that a
// read blocked on a pipe or a terminal ends when the context is done
// (Ctrl-C). Call the returned stop when done reading.
func (sh *dfsShell) stdinReader() (io.Reader, func()) {
	pr, pw := io.Pipe()
	go func() {
		_, err := io.Copy(pw, sh.stdin)
		pw.CloseWithError(err)
	}()
	stop := context.AfterFunc(sh.ctx, func() { pr.Close() })
	return ctxReader{ctx: sh.ctx, r: pr}, func() {
		stop()
		pr.Close()
	}
}

// copyBufSize is the copy loops' buffer: the client reads ahead 1 MiB.
const copyBufSize = 1 << 20

// copyData copies src to dst, reporting progress as label (total bytes,
// negative when unknown) and stopping when the command's context is done.
func (sh *dfsShell) copyData(dst io.Writer, src io.Reader, label string, total int64) (int64, error) {
	p := sh.progress.start(label, total)
	n, err := io.CopyBuffer(progressWriter{w: dst, p: p}, ctxReader{ctx: sh.ctx, r: src}, make([]byte, copyBufSize))
	if err == nil {
		err = sh.ctx.Err()
	}
	p.Finish(err == nil)
	return n, err
}

// clientNamenodes returns the namenodes a client command talks to: its
// --namenode value (flag) when given, else $KURA_DFS_NAMENODE, else the
// namenode's default RPC address; a bad list is a usage error naming
// prefix.
func clientNamenodes(c *cobra.Command, flag, prefix string) ([]string, error) {
	v := flag
	if !c.Flags().Changed("namenode") {
		if v = os.Getenv(envDFSNamenode); v == "" {
			v = namenode.DefaultRPCAddr
		}
	}
	nns, err := parseNamenodes(v)
	if err != nil {
		return nil, usagef("%s: --namenode %q: want HOST:PORT[,HOST:PORT...]", prefix, v)
	}
	return nns, nil
}
