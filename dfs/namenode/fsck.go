package namenode

// GET /fsck: HDFS's fsck servlet (NamenodeFsck), the check behind
// `kura dfs fsck` (and `hdfs fsck`): a walk of a subtree that judges every
// block of every file against this namenode's live-datanode view, which
// only namenodes have.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/dnmanager"
	"github.com/kura-dev/kura/dfs/hdfs"
	"github.com/kura-dev/kura/dfs/namespace"
	"github.com/kura-dev/kura/dfs/webhdfs"
)

// FsckPath is the HTTP path of fsck on the namenode's HTTP port (HDFS's
// /fsck servlet).
const FsckPath = "/fsck"

// Fsck's last lines, as HDFS's NamenodeFsck writes them: the report's
// last line ends with one of them (DFSck, and `kura dfs fsck`, read the
// verdict from it).
const (
	// FsckHealthy ends the report of a subtree without missing or corrupt
	// blocks.
	FsckHealthy = "is HEALTHY"
	// FsckCorrupt ends the report of a subtree with missing or corrupt
	// blocks.
	FsckCorrupt = "is CORRUPT"
	// FsckFailed ends the report of a check that could not finish.
	FsckFailed = "FAILED"
)

// FsckRecord is one line of GET /fsck?format=json (JSON lines, for
// clients that show progress apart from the report): a piece of the
// report's text, or the walk's progress.
type FsckRecord struct {
	// Text is the next piece of the report, exactly as format=text sends
	// it.
	Text string `json:"text,omitempty"`
	// Progress is how far the walk got (sent about once a second).
	Progress *FsckProgress `json:"progress,omitempty"`
}

// FsckProgress counts what the walk checked so far.
type FsckProgress struct {
	Dirs   int64 `json:"dirs"`
	Files  int64 `json:"files"`
	Blocks int64 `json:"blocks"`
}

// fsckUserPattern is Hadoop's user name domain (as WebHDFS's user.name).
var fsckUserPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9._-]*[$]?$`)

// fsckEvery is how often the walk flushes its output and reports progress.
const fsckEvery = time.Second

// fsckOptions are the request's parameters.
type fsckOptions struct {
	path                                   string
	files, blocks, locations, openForWrite bool
	json                                   bool
}

// fsckFlag reads a present-means-on parameter as HDFS's servlet does
// (files=1, or files alone); "0" and "false" turn it off.
func fsckFlag(q map[string][]string, name string) bool {
	v, ok := q[name]
	if !ok {
		return false
	}
	return len(v) == 0 || (v[0] != "0" && !strings.EqualFold(v[0], "false"))
}

// serveFsck serves GET /fsck?path=P&files=1&blocks=1&locations=1
// &openforwrite=1&user.name=U[&format=json] (ugi=U as HDFS's DFSck sends
// it is accepted too). The report streams as text (format=json: JSON
// lines of FsckRecord). A path that does not exist, cannot be read by the
// user, or is not a valid path (or a query string that does not parse, or
// a bad parameter) is answered before anything streams, with a WebHDFS
// RemoteException (404, 403, 400).
//
// Permissions are HDFS's for fsck: the walk runs as the caller, who needs
// what listing and reading need (READ_EXECUTE on each directory, READ on
// each file, traverse on the way); the superuser and the supergroup pass.
// A directory or file it may not read ends the check with the namenode's
// AccessControlException message and "Fsck on path '/p' FAILED", as HDFS.
func (n *Namenode) serveFsck(w http.ResponseWriter, r *http.Request) {
	o, u, err := parseFsckRequest(r.URL.RawQuery, n.cfg.DefaultUser, n.cfg.Groups)
	if err != nil {
		fsckError(w, err)
		return
	}
	ctx := r.Context()
	// The root of the walk is checked before anything streams, so that a
	// bad path or a refusal is an HTTP error.
	st, err := n.ns.Stat(ctx, u, o.path)
	if err == nil {
		if st.IsDir {
			_, err = n.ns.List(ctx, u, o.path, "", 1)
		} else if st.Symlink == "" {
			err = n.ns.Checker().CheckAccess(u, o.path, fileAttrs(st), hdfs.ActionRead)
		}
	}
	if err != nil {
		fsckError(w, err)
		return
	}
	if o.json {
		w.Header().Set("Content-Type", "application/x-ndjson")
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	f := &fsck{
		n: n, u: u, o: o, start: time.Now(),
		out: &fsckWriter{w: bufio.NewWriterSize(w, 32<<10), rc: http.NewResponseController(w), json: o.json, last: time.Now()},
	}
	if n.dnm != nil {
		f.live = &liveView{dnm: n.dnm}
	}
	host := r.RemoteAddr
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	n.log.Info("fsck started", "user", u.Name, "from", host, "path", o.path)
	f.run(ctx, host, st)
	f.out.flush()
	n.log.Info("fsck ended", "user", u.Name, "path", o.path, "healthy", f.res.healthy(), "failed", f.failed,
		"files", f.res.totalFiles, "blocks", f.res.totalBlocks, "missing", f.res.missingBlocks, "took", time.Since(f.start))
}

// parseFsckRequest reads the query string of GET /fsck: the options,
// with the path validated and cleaned ("/" when absent), and the caller:
// user.name (or ugi, DFSck's parameter), else defaultUser (else the
// WebHDFS default user), with its groups from groups; impersonation is
// refused. A query string that does not parse is refused as a whole
// rather than read without its bad pairs (which could drop path= and
// check "/" instead). Its errors are RemoteExceptions that answer with a
// 4xx status.
func parseFsckRequest(rawQuery, defaultUser string, groups map[string][]string) (fsckOptions, hdfs.User, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return fsckOptions{}, hdfs.User{}, hdfs.ErrIllegalArgument.New("Invalid query string: " + err.Error())
	}
	o := fsckOptions{
		path:         q.Get("path"),
		files:        fsckFlag(q, "files"),
		blocks:       fsckFlag(q, "blocks"),
		locations:    fsckFlag(q, "locations"),
		openForWrite: fsckFlag(q, "openforwrite"),
		json:         q.Get("format") == "json",
	}
	if o.path == "" {
		o.path = hdfs.Root
	}
	if f := q.Get("format"); f != "" && f != "json" && f != "text" {
		return fsckOptions{}, hdfs.User{}, hdfs.ErrIllegalArgument.New(`Invalid value for format: "` + f + `" (text or json)`)
	}
	u, err := fsckUser(q, defaultUser, groups)
	if err != nil {
		return fsckOptions{}, hdfs.User{}, err
	}
	if o.path, err = hdfs.Clean(o.path); err != nil {
		return fsckOptions{}, hdfs.User{}, err
	}
	return o, u, nil
}

// fsckUser is the caller: user.name (or ugi, DFSck's parameter), else
// defaultUser, else the WebHDFS default user, with its groups;
// impersonation is refused.
func fsckUser(q url.Values, defaultUser string, groups map[string][]string) (hdfs.User, error) {
	name := q.Get("user.name")
	if name == "" {
		name = q.Get("ugi")
	}
	if name == "" {
		if name = defaultUser; name == "" {
			name = webhdfs.DefaultUser
		}
	} else if !fsckUserPattern.MatchString(name) {
		return hdfs.User{}, hdfs.ErrIllegalArgument.New(`Invalid value for webhdfs parameter "user.name": Invalid value: "` + name + `" does not belong to the domain ` + fsckUserPattern.String())
	}
	if doas := q.Get("doas"); doas != "" && doas != name {
		return hdfs.User{}, hdfs.ErrAccessControl.New("User: " + name + " is not allowed to impersonate " + doas)
	}
	return hdfs.User{Name: name, Groups: groups[name]}, nil
}

// fsckError answers err as WebHDFS does: a RemoteException with its status.
func fsckError(w http.ResponseWriter, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	re := hdfs.ToRemote(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(re.HTTPStatus())
	w.Write(re.JSON())
}

func fileAttrs(st *namespace.FileStatus) hdfs.Attrs {
	return hdfs.Attrs{Owner: st.Owner, Group: st.Group, Perm: st.Permission, Dir: st.IsDir}
}

// fsckWriter streams the report: text as is, or as JSON lines of
// FsckRecord. It flushes to the client at least every fsckEvery.
type fsckWriter struct {
	w    *bufio.Writer
	rc   *http.ResponseController
	json bool
	text strings.Builder // JSON mode: text not yet sent
	last time.Time       // of the last flush
	err  error           // the first write error (the client went away)
}

func (o *fsckWriter) print(s string) {
	if o.json {
		o.text.WriteString(s)
		if o.text.Len() >= 16<<10 {
			o.sendText()
		}
		return
	}
	if _, err := o.w.WriteString(s); err != nil && o.err == nil {
		o.err = err
	}
}

func (o *fsckWriter) printf(format string, args ...any) { o.print(fmt.Sprintf(format, args...)) }

// record writes one JSON line.
func (o *fsckWriter) record(r FsckRecord) {
	b, err := json.Marshal(r)
	if err != nil {
		return // cannot happen: plain strings and numbers
	}
	if _, err := o.w.Write(append(b, '\n')); err != nil && o.err == nil {
		o.err = err
	}
}

func (o *fsckWriter) sendText() {
	if o.text.Len() > 0 {
		o.record(FsckRecord{Text: o.text.String()})
		o.text.Reset()
	}
}

// tick flushes and, in JSON mode, reports progress, once per fsckEvery.
func (o *fsckWriter) tick(p FsckProgress) {
	if time.Since(o.last) < fsckEvery {
		return
	}
	if o.json {
		o.sendText()
		o.record(FsckRecord{Progress: &p})
	}
	o.flush()
}

func (o *fsckWriter) flush() {
	if o.json {
		o.sendText()
	}
	if err := o.w.Flush(); err != nil && o.err == nil {
		o.err = err
	}
	o.rc.Flush()
	o.last = time.Now()
}

// liveView is the datanode manager's view of the datanodes, taken again
// at most once per fsckEvery during a walk.
type liveView struct {
	dnm   *dnmanager.Manager
	at    time.Time
	nodes map[string]dnmanager.DatanodeStatus // live ones, by storage id
}

func (v *liveView) get() map[string]dnmanager.DatanodeStatus {
	if v == nil {
		return nil
	}
	if now := time.Now(); v.nodes == nil || now.Sub(v.at) >= fsckEvery {
		v.nodes = map[string]dnmanager.DatanodeStatus{}
		for _, d := range v.dnm.Datanodes() {
			if d.Live {
				v.nodes[d.StorageID] = d
			}
		}
		v.at = now
	}
	return v.nodes
}

// fsckResult is HDFS's NamenodeFsck.ReplicationResult: the counts of the
// summary.
type fsckResult struct {
	totalSize, totalFiles, totalBlocks      int64
	openSize, openFiles, openBlocks         int64
	dirs, symlinks                          int64
	minReplicated, overReplicated           int64
	underReplicated, underMinReplicated     int64
	missingBlocks, missingSize              int64
	corruptBlocks, corruptSize              int64
	corruptFiles, blocksWithCorruptReplicas int64
	totalReplicas, expectedReplicas         int64
	missingReplicas                         int64
}

// healthy is HDFS's isHealthy: no missing and no corrupt block.
func (r *fsckResult) healthy() bool { return r.missingBlocks == 0 && r.corruptBlocks == 0 }

// fsck is one run.
type fsck struct {
	n      *Namenode
	u      hdfs.User
	o      fsckOptions
	out    *fsckWriter
	live   *liveView // nil without the datanode protocol: no datanodes
	res    fsckResult
	start  time.Time
	failed bool
}

// javaDate formats t as Java's Date.toString, as HDFS's report does.
func javaDate(t time.Time) string { return t.Format("Mon Jan 02 15:04:05 MST 2006") }

// run walks the subtree whose root is st and writes the report.
func (f *fsck) run(ctx context.Context, from string, st *namespace.FileStatus) {
	f.out.printf("FSCK started by %s (auth:SIMPLE) from /%s for path %s at %s\n", f.u.Name, from, f.o.path, javaDate(f.start))
	err := f.check(ctx, f.o.path, st)
	if err == nil && f.out.err != nil {
		err = f.out.err
	}
	if err != nil {
		f.failed = true
		if ctx.Err() != nil {
			return // the client went away or the namenode stops: nobody reads on
		}
		f.out.printf("FSCK ended at %s in %d milliseconds\n", javaDate(time.Now()), time.Since(f.start).Milliseconds())
		f.out.printf("%s\n\n\nFsck on path '%s' %s\n", hdfs.ToRemote(err).Message, f.o.path, FsckFailed)
		return
	}
	f.summary()
}

// progress is how far the walk got.
func (f *fsck) progress() FsckProgress {
	return FsckProgress{Dirs: f.res.dirs, Files: f.res.totalFiles + f.res.openFiles, Blocks: f.res.totalBlocks + f.res.openBlocks}
}

// check checks the inode at path (HDFS's NamenodeFsck.check): a
// directory's entries a page at a time, depth first, in name order.
func (f *fsck) check(ctx context.Context, path string, st *namespace.FileStatus) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if f.out.err != nil {
		return f.out.err // the client went away
	}
	f.out.tick(f.progress())
	switch {
	case st.Symlink != "":
		if f.o.files {
			f.out.printf("%s <symlink>\n", path)
		}
		f.res.symlinks++
		return nil
	case st.IsDir:
		if f.o.files {
			f.out.printf("%s <dir>\n", path)
		}
		f.res.dirs++
		after := ""
		for {
			l, err := f.n.ns.List(ctx, f.u, path, after, 0)
			if err != nil {
				if path != f.o.path && (errors.Is(err, hdfs.ErrFileNotFound) || errors.Is(err, hdfs.ErrParentNotDirectory)) {
					return nil // deleted or replaced while the walk went on: gone from the subtree
				}
				return err
			}
			for _, e := range l.Entries {
				if err := f.check(ctx, hdfs.Join(path, e.Name), e); err != nil {
					return err
				}
			}
			if !l.HasMore || len(l.Entries) == 0 {
				return nil
			}
			after = l.Entries[len(l.Entries)-1].Name
		}
	}
	if err := f.n.ns.Checker().CheckAccess(f.u, path, fileAttrs(st), hdfs.ActionRead); err != nil {
		return err
	}
	return f.checkFile(ctx, path, st)
}

// blockName is a block as HDFS names it in fsck (without a block pool:
// kura has one namespace).
func blockName(b *dal.Block) string {
	return "blk_" + strconv.FormatInt(b.BlockID, 10) + "_" + strconv.FormatInt(b.GenerationStamp, 10)
}

// checkFile checks the blocks of one file (HDFS's collectFileSummary and
// collectBlocksSummary): for each complete (or committed) block, its
// finalized replicas on live datanodes against the file's replication;
// a block being written (the last one of an open file) is not judged.
// An open file is only counted unless openforwrite was asked for.
func (f *fsck) checkFile(ctx context.Context, path string, st *namespace.FileStatus) error {
	var blocks []*dal.Block
	var reps []*dal.Replica
	err := f.n.store.ReadTx(ctx, func(tx dal.Tx) error {
		var err error
		if blocks, err = tx.ListBlocks(ctx, st.ID); err != nil {
			return err
		}
		reps, err = tx.ListFileReplicas(ctx, st.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("read the blocks of %s: %w", path, err)
	}
	res := &f.res
	open := st.UnderConstruction
	if open && !f.o.openForWrite {
		res.openSize += st.Length
		res.openFiles++
		res.openBlocks += int64(len(blocks))
		return nil
	}
	res.totalFiles++
	res.totalSize += st.Length
	want := int64(st.Replication)
	switch {
	case open:
		f.out.printf("%s %d bytes, replicated: replication=%d, %d block(s), OPENFORWRITE: ", path, st.Length, st.Replication, len(blocks))
	case f.o.files:
		f.out.printf("%s %d bytes, replicated: replication=%d, %d block(s): ", path, st.Length, st.Replication, len(blocks))
	}
	lineOpen := open || f.o.files // the file's line waits for its verdict
	byBlock := map[int64][]*dal.Replica{}
	for _, r := range reps {
		byBlock[r.BlockID] = append(byBlock[r.BlockID], r)
	}
	live := f.live.get()
	var report strings.Builder
	var missing, corrupt, under int
	var missingSize, corruptSize int64
	var building []*dal.Block
	for i, b := range blocks {
		if b.State != dal.BlockComplete && b.State != dal.BlockCommitted {
			building = append(building, b) // being written or recovered: not judged
			continue
		}
		res.totalBlocks++
		var locs []string
		var nLive, nCorrupt int64
		for _, r := range byBlock[b.BlockID] {
			d, ok := live[r.StorageID]
			if !ok {
				continue
			}
			switch r.State {
			case dal.ReplicaFinalized:
				nLive++
				locs = append(locs, "DatanodeInfoWithStorage["+d.DataAddr+","+r.StorageID+",DISK]")
			case dal.ReplicaCorrupt:
				nCorrupt++
				locs = append(locs, "DatanodeInfoWithStorage["+d.DataAddr+","+r.StorageID+",DISK](CORRUPT)")
			}
		}
		name := blockName(b)
		res.totalReplicas += nLive
		res.expectedReplicas += want
		if nLive < 1 {
			res.underMinReplicated++
		}
		if nLive > want {
			res.overReplicated++
		}
		if nCorrupt > 0 {
			res.blocksWithCorruptReplicas++
		}
		isCorrupt := nLive == 0 && nCorrupt > 0
		if isCorrupt {
			// Every live replica is corrupt (HDFS's corrupt block).
			res.corruptBlocks++
			res.corruptSize += b.NumBytes
			corrupt++
			corruptSize += b.NumBytes
			f.newLine(&lineOpen)
			f.out.printf("%s: CORRUPT block blk_%d\n", path, b.BlockID)
		}
		if nLive >= 1 {
			res.minReplicated++
		}
		if nLive > 0 && nLive < want {
			res.missingReplicas += want - nLive
			res.underReplicated++
			under++
			if !lineOpen {
				f.out.printf("%s: ", path)
			}
			extra := ""
			if nCorrupt > 0 {
				extra = fmt.Sprintf(", %d corrupt replica(s)", nCorrupt)
			}
			f.out.printf(" Under replicated %s. Target Replicas is %d but found %d live replica(s)%s.\n", name, want, nLive, extra)
			lineOpen = false
		}
		fmt.Fprintf(&report, "%d. %s len=%d", i, name, b.NumBytes)
		if nLive == 0 && !isCorrupt {
			report.WriteString(" MISSING!")
			res.missingBlocks++
			res.missingSize += b.NumBytes
			missing++
			missingSize += b.NumBytes
		} else {
			fmt.Fprintf(&report, " Live_repl=%d", nLive)
			if nCorrupt > 0 {
				fmt.Fprintf(&report, " Corrupt_repl=%d", nCorrupt)
			}
			if f.o.locations {
				report.WriteString(" [" + strings.Join(locs, ", ") + "]")
			}
		}
		report.WriteByte('\n')
	}
	for _, b := range building {
		expected := 0
		for _, r := range byBlock[b.BlockID] {
			if r.State == dal.ReplicaBeingWritten || r.State == dal.ReplicaFinalized {
				expected++
			}
		}
		fmt.Fprintf(&report, "\nUnder Construction Block:\n%d. %s len=%d Expected_repl=%d\n", b.Index, blockName(b), b.NumBytes, expected)
	}
	if missing > 0 || corrupt > 0 {
		res.corruptFiles++
		if !f.o.files && !open {
			f.newLine(&lineOpen)
			if missing > 0 {
				f.out.printf("%s: MISSING %d blocks of total size %d B.\n", path, missing, missingSize)
			}
			if corrupt > 0 {
				f.out.printf("%s: CORRUPT %d blocks of total size %d B.\n", path, corrupt, corruptSize)
			}
		}
	}
	if f.o.files || open {
		switch {
		case missing > 0 || corrupt > 0:
			if !lineOpen {
				f.out.print(path + ":")
			}
			if missing > 0 {
				f.out.printf(" MISSING %d blocks of total size %d B", missing, missingSize)
			}
			if corrupt > 0 {
				f.out.printf(" CORRUPT %d blocks of total size %d B", corrupt, corruptSize)
			}
			f.out.print("\n")
		case under == 0:
			if !lineOpen {
				f.out.print(path + ":")
			}
			f.out.print(" OK\n")
		}
		if f.o.blocks {
			f.out.print(report.String() + "\n")
		}
	}
	return nil
}

// newLine ends a file's line left open for its verdict, before a line of
// its own.
func (f *fsck) newLine(open *bool) {
	if *open {
		f.out.print("\n")
		*open = false
	}
}

// percent formats 100*n/total as Java prints a float ("100.0", "33.333332").
func percent(n, total int64) string {
	v := float32(n*100) / float32(total)
	s := strconv.FormatFloat(float64(v), 'f', -1, 32)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// summary writes the report's end (HDFS's fsck() after check(), with
// ReplicationResult.toString; no racks, no erasure coding, plus the blocks
// with a corrupt replica) and the verdict line.
func (f *fsck) summary() {
	r := &f.res
	o := f.out
	status, verdict := "HEALTHY", FsckHealthy
	if !r.healthy() {
		status, verdict = "CORRUPT", FsckCorrupt
	}
	datanodes := len(f.live.get())
	var queued int
	if f.n.dnm != nil {
		queued = f.n.dnm.Replication().Pending
	}
	pct := func(n int64) string {
		if r.totalBlocks == 0 {
			return ""
		}
		return " (" + percent(n, r.totalBlocks) + " %)"
	}
	o.printf("\nStatus: %s\n", status)
	o.printf(" Number of data-nodes:\t%d\n", datanodes)
	o.printf(" Total dirs:\t\t\t%d\n", r.dirs)
	o.printf(" Total symlinks:\t\t%d\n", r.symlinks)
	o.print("\nReplicated Blocks:\n")
	o.printf(" Total size:\t%d B", r.totalSize)
	if r.openSize != 0 {
		o.printf(" (Total open files size: %d B)", r.openSize)
	}
	o.printf("\n Total files:\t%d", r.totalFiles)
	if r.openFiles != 0 {
		o.printf(" (Files currently being written: %d)", r.openFiles)
	}
	o.printf("\n Total blocks (validated):\t%d", r.totalBlocks)
	if r.totalBlocks > 0 {
		o.printf(" (avg. block size %d B)", r.totalSize/r.totalBlocks)
	}
	if r.openBlocks != 0 {
		o.printf(" (Total open file blocks (not validated): %d)", r.openBlocks)
	}
	if r.corruptFiles > 0 || r.underMinReplicated > 0 {
		o.print("\n  ********************************")
		if r.underMinReplicated > 0 {
			o.printf("\n  UNDER MIN REPL'D BLOCKS:\t%d%s", r.underMinReplicated, pct(r.underMinReplicated))
			o.print("\n  MINIMAL BLOCK REPLICATION:\t1")
		}
		if r.corruptFiles > 0 {
			o.printf("\n  CORRUPT FILES:\t%d", r.corruptFiles)
			if r.missingBlocks > 0 {
				o.printf("\n  MISSING BLOCKS:\t%d\n  MISSING SIZE:\t\t%d B", r.missingBlocks, r.missingSize)
			}
			if r.corruptBlocks > 0 {
				o.printf("\n  CORRUPT BLOCKS: \t%d\n  CORRUPT SIZE:\t\t%d B", r.corruptBlocks, r.corruptSize)
			}
		}
		o.print("\n  ********************************")
	}
	o.printf("\n Minimally replicated blocks:\t%d%s", r.minReplicated, pct(r.minReplicated))
	o.printf("\n Over-replicated blocks:\t%d%s", r.overReplicated, pct(r.overReplicated))
	o.printf("\n Under-replicated blocks:\t%d%s", r.underReplicated, pct(r.underReplicated))
	o.printf("\n Default replication factor:\t%d", f.n.ns.ServerDefaults().Replication)
	o.print("\n Average block replication:\t")
	if r.totalBlocks == 0 {
		o.print("0.0")
	} else {
		v := strconv.FormatFloat(float64(float32(r.totalReplicas)/float32(r.totalBlocks)), 'f', -1, 32)
		if !strings.Contains(v, ".") {
			v += ".0"
		}
		o.print(v)
	}
	o.printf("\n Missing blocks:\t\t%d", r.missingBlocks)
	o.printf("\n Corrupt blocks:\t\t%d", r.corruptBlocks)
	o.printf("\n Blocks with corrupt replicas:\t%d", r.blocksWithCorruptReplicas)
	o.printf("\n Missing replicas:\t\t%d", r.missingReplicas)
	if r.totalReplicas > 0 && r.expectedReplicas > 0 {
		o.printf(" (%s %%)", percent(r.missingReplicas, r.expectedReplicas))
	}
	o.printf("\n Blocks queued for replication:\t%d\n", queued)
	o.printf("FSCK ended at %s in %d milliseconds\n", javaDate(time.Now()), time.Since(f.start).Milliseconds())
	o.printf("\n\nThe filesystem under path '%s' %s\n", f.o.path, verdict)
}
