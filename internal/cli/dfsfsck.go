package cli

// `kura dfs fsck`: HDFS's `hdfs fsck` (DFSck). The check runs on a
// namenode, which alone knows which datanodes are live: the command asks a
// namenode's HTTP port (GET /fsck, dfs/namenode/fsck.go) and prints the
// report it streams, with the walk's progress on stderr.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"path"
	"strings"
	"time"

	"github.com/spf13/cobra"

	dfsclient "github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/hdfs"
	"github.com/kura-dev/kura/dfs/namenode"
)

// envDFSNamenodeHTTP is fsck's --http default: the namenodes' HTTP
// addresses (fsck is served there, as HDFS's /fsck servlet).
const envDFSNamenodeHTTP = "KURA_DFS_NAMENODE_HTTP"

func dfsFsck(e *env) *cobra.Command {
	var httpAddrs, rpcAddrs, userName string
	var files, blocks, locations, openForWrite bool
	var pf progressFlags
	c := &cobra.Command{
		Use:   "fsck [PATH] [-files [-blocks [-locations]]] [-openforwrite]",
		Short: "Check the blocks under a path against the live datanodes (hdfs fsck)",
		Long: `fsck checks every file under PATH (default /) as 'hdfs fsck' does: for each
block, its finalized replicas on the datanodes the namenode counts live,
against the file's replication. A block is under-replicated with fewer live
replicas than that (and at least one), missing with none (its replicas are
all on dead datanodes), corrupt when its only live replicas are corrupt.
Under-replicated blocks are reported but healthy (the leader namenode copies
them); missing and corrupt blocks make the path CORRUPT.

The check runs on a namenode (only namenodes know which datanodes are live):
fsck calls GET /fsck on a namenode's HTTP port, as --user (default
$` + envHadoopUser + `, else the OS user), who needs what listing and reading
need (the superuser and the supergroup pass), and prints the report it
streams. The HTTP addresses are --http, else $` + envDFSNamenodeHTTP + `, else
the ones the namenodes at --namenode (the file commands' RPC addresses:
default $` + envDFSNamenode + `, else 127.0.0.1:8020) say they serve; a list is
tried in order until one answers.

Without options it prints the files with problems and a summary ending
"The filesystem under path '/x' is HEALTHY" (exit 0) or "... is CORRUPT"
(exit 1). -files prints a line per file and directory ("OK", "Under
replicated ...", "MISSING n blocks ..."), -blocks (with -files) each block
("0. blk_1073741825_1001 len=1048576 Live_repl=3", "... MISSING!"),
-locations (with -blocks) the datanodes holding it. Files open for writing
are counted apart and not checked, as HDFS does; -openforwrite checks them
too, all but the block being written. A path that does not exist or cannot
be read, or a namenode that cannot be reached, is an error (exit 1).

Directories are read a page at a time on the namenode, so a huge tree is
walked in bounded memory; on a terminal a progress line (directories, files
and blocks checked) shows on stderr once the check runs for a second
(--progress forces it, as lines when stderr is not a terminal;
--no-progress hides it).`,
		Example: `  kura dfs fsck /
  kura dfs fsck /data -files -blocks -locations
  kura dfs fsck /logs -openforwrite --namenode nn1:8020,nn2:8020 --user hdfs
  kura dfs fsck / --http nn1:9870
  kura dfs fsck / > report.txt || echo "missing or corrupt blocks"
  curl 'http://127.0.0.1:9870/fsck?path=/data&files=1&blocks=1&user.name=root'`,
		Args: rangeArgs(0, 1, "[PATH]"),
		RunE: func(c *cobra.Command, args []string) error {
			const prefix = "kura dfs fsck"
			if pf.force && pf.disable {
				return usagef("%s: --progress and --no-progress exclude each other", prefix)
			}
			u, err := dfsUser(userName, prefix)
			if err != nil {
				return err
			}
			nns, err := fsckHTTPAddrs(c, httpAddrs, rpcAddrs, u, prefix)
			if err != nil {
				return err
			}
			p := "/"
			if len(args) == 1 {
				if p = args[0]; p == "" {
					return usagef("%s: Can not create a Path from an empty string", prefix)
				}
				if !strings.HasPrefix(p, "/") {
					p = "/user/" + u + "/" + p
				}
				p = path.Clean(p)
			}
			q := url.Values{"path": {p}, "user.name": {u}, "format": {"json"}}
			for name, on := range map[string]bool{"files": files, "blocks": blocks, "locations": locations, "openforwrite": openForWrite} {
				if on {
					q.Set(name, "1")
				}
			}
			f := &fsckRun{
				ctx: c.Context(), prefix: prefix, query: q.Encode(), path: p,
				stdout: bufio.NewWriterSize(e.stdout, 64<<10), stderr: e.stderr,
				progress: newProgressConfig(e.stderr, pf.force, pf.disable),
			}
			return f.run(nns)
		},
	}
	fl := c.Flags()
	fl.StringVar(&httpAddrs, "http", "", "the namenodes' --http addresses, HOST:PORT[,HOST:PORT...] (default $"+envDFSNamenodeHTTP+", else asked of --namenode)")
	fl.StringVar(&rpcAddrs, "namenode", "", "without --http: the namenodes' --rpc addresses to ask for their HTTP addresses, HOST:PORT[,HOST:PORT...] (default $"+envDFSNamenode+", else "+namenode.DefaultRPCAddr+")")
	fl.StringVar(&userName, "user", "", "the user to check as (default $"+envHadoopUser+", else the OS user)")
	fl.BoolVar(&files, "files", false, "print a line per file and directory (hdfs's -files)")
	fl.BoolVar(&blocks, "blocks", false, "with -files, print each block (hdfs's -blocks)")
	fl.BoolVar(&locations, "locations", false, "with -blocks, print the datanodes of each block (hdfs's -locations)")
	fl.BoolVar(&openForWrite, "openforwrite", false, "check files open for writing too (hdfs's -openforwrite)")
	addWordFlag(fl, &files, "files")
	addWordFlag(fl, &blocks, "blocks")
	addWordFlag(fl, &locations, "locations")
	addWordFlag(fl, &openForWrite, "openforwrite")
	pf.register(fl)
	return c
}

// dfsUser is the user a dfs command acts as: flag, else $HADOOP_USER_NAME,
// else the OS user.
func dfsUser(flag, prefix string) (string, error) {
	u := flag
	if u == "" {
		u = os.Getenv(envHadoopUser)
	}
	if u == "" {
		if cur, err := user.Current(); err == nil {
			u = cur.Username
		}
	}
	if u == "" {
		return "", usagef("%s: no user: set --user or $%s", prefix, envHadoopUser)
	}
	return u, nil
}

// fsckRun is one run of the command.
type fsckRun struct {
	ctx      context.Context
	prefix   string
	query    string
	path     string
	stdout   *bufio.Writer
	stderr   io.Writer
	progress progressConfig
	tail     string // the end of the report so far: its last line decides
}

// fsckConnectTimeout is how long a namenode is given to start its answer;
// the report itself has no time limit (a big tree takes long).
const fsckConnectTimeout = 15 * time.Second

// run asks the namenodes in order until one answers, and prints its
// report.
func (f *fsckRun) run(nns []string) error {
	defer f.stdout.Flush()
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		ResponseHeaderTimeout: fsckConnectTimeout,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	var errs []string
	for _, nn := range nns {
		u := "http://" + nn + namenode.FsckPath + "?" + f.query
		fmt.Fprintf(f.stderr, "Connecting to namenode via %s\n", u)
		req, err := http.NewRequestWithContext(f.ctx, http.MethodGet, u, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", f.prefix, err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			if f.ctx.Err() != nil {
				return fmt.Errorf("%s: Interrupted", f.prefix)
			}
			errs = append(errs, err.Error())
			continue
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return f.refused(nn, resp)
		}
		return f.report(nn, resp.Body)
	}
	return fmt.Errorf("%s: cannot reach a namenode (--http %s): %s", f.prefix, strings.Join(nns, ","), strings.Join(errs, "; "))
}

// refused turns a namenode's error answer into hdfs's message.
func (f *fsckRun) refused(nn string, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	re, err := hdfs.ParseRemoteException(body)
	if err != nil {
		return fmt.Errorf("%s: namenode %s answered %s: %s", f.prefix, nn, resp.Status, strings.TrimSpace(string(body)))
	}
	return fmt.Errorf("%s: %s", f.prefix, remoteText(pathError(f.path, re)))
}

// fsckVerdictLine is the namenode's last line for a check of p that ends
// with verdict (namenode.FsckHealthy or namenode.FsckCorrupt), with its
// newline.
func fsckVerdictLine(p, verdict string) string {
	return "The filesystem under path '" + p + "' " + verdict + "\n"
}

// report prints the JSON lines of a report: text to stdout, progress to
// stderr; the verdict is the report's last line. Only a stream that
// decodes to its end and whose text ends with the line "The filesystem
// under path 'P' is HEALTHY", P the path asked for, is healthy (nil): a
// last line that merely ends with "is HEALTHY" (a report cut short after
// a line naming a file, a report on another path) is not.
func (f *fsckRun) report(nn string, body io.Reader) error {
	pr := f.progress.start("fsck", -1)
	var shown fsckShown
	healthy := "\n" + fsckVerdictLine(f.path, namenode.FsckHealthy)
	keep := max(4096, len(healthy)) // the tail kept: the verdict line fits (a path can be long)
	dec := json.NewDecoder(body)
	var err error
	for {
		var rec namenode.FsckRecord
		if err = dec.Decode(&rec); err != nil {
			break
		}
		if rec.Text != "" {
			shown.clear(f)
			f.stdout.WriteString(rec.Text)
			f.tail += rec.Text
			if len(f.tail) > keep {
				f.tail = f.tail[len(f.tail)-keep:]
			}
		}
		if p := rec.Progress; p != nil {
			f.stdout.Flush()
			shown.show(f, pr, *p)
		}
	}
	shown.clear(f)
	if err := f.stdout.Flush(); err != nil {
		return fmt.Errorf("%s: write the report: %w", f.prefix, err)
	}
	if !errors.Is(err, io.EOF) {
		if f.ctx.Err() != nil {
			return fmt.Errorf("%s: Interrupted", f.prefix)
		}
		return fmt.Errorf("%s: the report from namenode %s broke off: %w", f.prefix, nn, err)
	}
	if strings.HasSuffix(f.tail, healthy) {
		return nil
	}
	last := strings.TrimRight(f.tail, "\n")
	last = last[strings.LastIndexByte(last, '\n')+1:]
	switch {
	case strings.HasSuffix(last, namenode.FsckCorrupt):
		return quietFailure{why: last}
	case strings.HasSuffix(last, namenode.FsckFailed):
		return fmt.Errorf("%s: %s", f.prefix, last)
	}
	return fmt.Errorf("%s: the report from namenode %s ended without a verdict", f.prefix, nn)
}

// fsckShown is the progress line on stderr: the walk's counts, shown as
// the progress configuration says (a bar redrawn in place on a terminal,
// plain lines when forced elsewhere), after its delay.
type fsckShown struct {
	bar bool // a bar line is on the terminal
}

func (s *fsckShown) show(f *fsckRun, pr *progress, p namenode.FsckProgress) {
	cfg := pr.cfg
	if cfg.style == progressOff {
		return
	}
	now := cfg.now()
	if now.Sub(pr.start) < cfg.delay {
		return
	}
	line := fmt.Sprintf("fsck: %d dirs, %d files, %d blocks checked in %s", p.Dirs, p.Files, p.Blocks, formatClock(now.Sub(pr.start)))
	if cfg.style == progressBar {
		fmt.Fprint(cfg.w, "\r"+line+"\x1b[K")
		s.bar = true
		return
	}
	fmt.Fprintln(cfg.w, line)
}

// clear ends a bar line before the report goes on (stdout and stderr
// may be the same terminal).
func (s *fsckShown) clear(f *fsckRun) {
	if s.bar {
		fmt.Fprint(f.stderr, "\r\x1b[K")
		s.bar = false
	}
}

// fsckAskTimeout bounds the question to one namenode for its HTTP address.
const fsckAskTimeout = 10 * time.Second

// fsckHTTPAddrs returns the namenodes' HTTP addresses fsck tries, in
// order: --http, else $KURA_DFS_NAMENODE_HTTP, else what the namenodes at
// the RPC addresses (--namenode, $KURA_DFS_NAMENODE, the default) answer
// to GetServerDefaults. A wildcard host in an answer (a namenode listening
// on 0.0.0.0) is replaced with the host the namenode was reached at.
func fsckHTTPAddrs(c *cobra.Command, httpFlag, rpcFlag, user, prefix string) ([]string, error) {
	v, from := httpFlag, "--http"
	if !c.Flags().Changed("http") {
		v, from = os.Getenv(envDFSNamenodeHTTP), "$"+envDFSNamenodeHTTP
	}
	if v != "" {
		nns, err := parseNamenodes(v)
		if err != nil {
			return nil, usagef("%s: %s %q: want HOST:PORT[,HOST:PORT...]", prefix, from, v)
		}
		return nns, nil
	}
	rpcs, err := clientNamenodes(c, rpcFlag, prefix)
	if err != nil {
		return nil, err
	}
	var out, errs []string
	for _, rpc := range rpcs {
		addr, err := askHTTPAddr(c.Context(), rpc, user)
		if err != nil {
			errs = append(errs, rpc+": "+err.Error())
			continue
		}
		out = append(out, addr)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: cannot learn a namenode's HTTP address from --namenode %s (give --http HOST:PORT): %s",
			prefix, strings.Join(rpcs, ","), strings.Join(errs, "; "))
	}
	return out, nil
}

// askHTTPAddr asks the namenode at rpcAddr where it serves HTTP.
func askHTTPAddr(ctx context.Context, rpcAddr, user string) (string, error) {
	cl, err := dfsclient.New(dfsclient.Config{Namenodes: []string{rpcAddr}, User: user})
	if err != nil {
		return "", err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, fsckAskTimeout)
	defer cancel()
	d, err := cl.ServerDefaults(ctx)
	if err != nil {
		return "", err
	}
	return reachableHTTPAddr(rpcAddr, d.HTTPAddr)
}

// reachableHTTPAddr is the address to reach the HTTP port served at
// (as the namenode listens on it) of the namenode reached at rpcAddr: a
// wildcard or missing host is replaced with rpcAddr's.
func reachableHTTPAddr(rpcAddr, served string) (string, error) {
	if served == "" {
		return "", errors.New("the namenode does not tell its HTTP address")
	}
	host, port, err := net.SplitHostPort(served)
	if err != nil {
		return "", fmt.Errorf("the namenode's HTTP address %q: %w", served, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if host, _, err = net.SplitHostPort(rpcAddr); err != nil {
			return "", fmt.Errorf("namenode address %q: %w", rpcAddr, err)
		}
	}
	return net.JoinHostPort(host, port), nil
}
