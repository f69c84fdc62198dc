package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/datanode"
	"github.com/kura-dev/kura/dfs/dfstest"
	"github.com/kura-dev/kura/dfs/hdfs"
	"github.com/kura-dev/kura/dfs/namenode"
)

// fsckAs runs `kura dfs fsck args... --http ADDR --user user`.
func fsckAs(t *testing.T, httpAddr, user string, args ...string) (string, string, int) {
	t.Helper()
	full := append([]string{"dfs", "fsck"}, args...)
	full = append(full, "--http", httpAddr, "--user", user)
	return kura(t, "", full...)
}

// wantLines fails unless out has a line matching each pattern.
func wantLines(t *testing.T, what, out string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(`(?m)` + p).MatchString(out) {
			t.Errorf("%s: no line matching %q in:\n%s", what, p, out)
		}
	}
}

func writeDFS(t *testing.T, cl *client.Client, p string, data []byte, o client.CreateOptions) {
	t.Helper()
	ctx := context.Background()
	o.CreateParent, o.Perm = true, 0o644
	w, err := cl.Create(ctx, p, o)
	if err != nil {
		t.Fatalf("create %s: %v", p, err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close %s: %v", p, err)
	}
}

// TestDFSFsck runs `kura dfs fsck` against an in-process namenode with
// three datanodes: a healthy tree (HEALTHY, exit 0, the counts), a file
// of replication 4 on three datanodes (reported under-replicated, still
// healthy), a file open for writing (counted apart; checked with
// -openforwrite), the per-file and per-block lines, a bad path, a path
// the user may not read and an unreachable namenode (errors, exit 1).
// Then the datanode holding the only replica of a file stops: fsck says
// CORRUPT, names the file and its missing block, exits 1, and the
// namenode's /status counts the block missing.
func TestDFSFsck(t *testing.T) {
	ctx := context.Background()
	c := dfstest.Start(t, dfstest.Options{Datanodes: 3, DeadIntervals: 20})
	nn := c.Namenode
	httpAddr := nn.HTTPAddr()
	cl := c.Client(t, "root")
	big := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB: three blocks of 1 MiB
	writeDFS(t, cl, "/data/big.bin", big, client.CreateOptions{BlockSize: 1 << 20, Replication: 3})
	writeDFS(t, cl, "/data/one.txt", []byte("only one replica\n"), client.CreateOptions{Replication: 1})
	writeDFS(t, cl, "/data/four.txt", []byte("wants four replicas\n"), client.CreateOptions{Replication: 4})
	if err := cl.Mkdirs(ctx, "/private", 0o700, true); err != nil {
		t.Fatal(err)
	}
	// A file being written: hflushed, not closed.
	ow, err := cl.Create(ctx, "/logs/open.log", client.CreateOptions{CreateParent: true, Perm: 0o644, Replication: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ow.Write([]byte("being written\n")); err != nil {
		t.Fatal(err)
	}
	if err := ow.Hflush(ctx); err != nil {
		t.Fatal(err)
	}
	defer ow.Abort()

	// Every replica reported: wait for the datanodes' incremental reports.
	waitRe := regexp.MustCompile(`Under-replicated blocks:\t1 \(`)
	var out string
	deadline := time.Now().Add(20 * time.Second)
	for {
		var code int
		out, _, code = fsckAs(t, httpAddr, "root", "/")
		if code == 0 && waitRe.MatchString(out) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fsck / never showed every replica: exit %d\n%s", code, out)
		}
		time.Sleep(50 * time.Millisecond)
	}

	t.Run("healthy", func(t *testing.T) {
		out, errOut, code := fsckAs(t, httpAddr, "root", "/")
		if code != 0 {
			t.Fatalf("fsck /: exit %d, stderr %q\n%s", code, errOut, out)
		}
		if !strings.Contains(errOut, "Connecting to namenode via http://"+httpAddr+"/fsck?") {
			t.Errorf("stderr %q lacks the namenode's URL", errOut)
		}
		wantLines(t, "fsck /", out,
			`^FSCK started by root \(auth:SIMPLE\) from /127\.0\.0\.1 for path / at `,
			`^/data/four\.txt:  Under replicated blk_\d+_\d+\. Target Replicas is 4 but found 3 live replica\(s\)\.$`,
			`^Status: HEALTHY$`,
			`^ Number of data-nodes:\t3$`,
			`^ Total dirs:\t\t\t4$`, // /, /data, /logs, /private
			`^ Total size:\t3145765 B \(Total open files size: 14 B\)$`,
			`^ Total files:\t3 \(Files currently being written: 1\)$`,
			`^ Total blocks \(validated\):\t5 \(avg\. block size 629153 B\) \(Total open file blocks \(not validated\): 1\)$`,
			`^ Minimally replicated blocks:\t5 \(100\.0 %\)$`,
			`^ Under-replicated blocks:\t1 \(20\.0 %\)$`,
			`^ Default replication factor:\t3$`,
			`^ Missing blocks:\t\t0$`,
			`^ Corrupt blocks:\t\t0$`,
			`^ Missing replicas:\t\t1 \(`,
			`^FSCK ended at .* in \d+ milliseconds$`,
		)
		if !strings.HasSuffix(out, "\n\nThe filesystem under path '/' is HEALTHY\n") {
			t.Errorf("fsck / does not end with the HEALTHY line:\n%s", out)
		}
		if strings.Contains(out, "open.log") {
			t.Errorf("an open file was checked without -openforwrite:\n%s", out)
		}
	})

	t.Run("http address from the namenode", func(t *testing.T) {
		// No --http, no $KURA_DFS_NAMENODE_HTTP: the namenode at
		// --namenode says where it serves HTTP.
		t.Setenv(envDFSNamenodeHTTP, "")
		out, errOut, code := kura(t, "", "dfs", "fsck", "/data", "--namenode", nn.RPCAddr(), "--user", "root")
		if code != 0 || !strings.Contains(out, "The filesystem under path '/data' is HEALTHY") {
			t.Fatalf("fsck --namenode %s: exit %d, stderr %q\n%s", nn.RPCAddr(), code, errOut, out)
		}
	})

	t.Run("files blocks locations", func(t *testing.T) {
		out, errOut, code := fsckAs(t, httpAddr, "root", "/data", "-files", "-blocks", "-locations")
		if code != 0 {
			t.Fatalf("exit %d, stderr %q\n%s", code, errOut, out)
		}
		wantLines(t, "fsck -files -blocks -locations", out,
			`^/data <dir>$`,
			`^/data/big\.bin 3145728 bytes, replicated: replication=3, 3 block\(s\):  OK$`,
			`^0\. blk_\d+_\d+ len=1048576 Live_repl=3 \[DatanodeInfoWithStorage\[127\.0\.0\.1:\d+,DS-[^,]+,DISK\], DatanodeInfoWithStorage\[.*\]\]$`,
			`^2\. blk_\d+_\d+ len=1048576 Live_repl=3 \[`,
			`^/data/one\.txt 17 bytes, replicated: replication=1, 1 block\(s\):  OK$`,
			`^/data/four\.txt 20 bytes, replicated: replication=4, 1 block\(s\):  Under replicated blk_\d+_\d+\. Target Replicas is 4 but found 3 live replica\(s\)\.$`,
			`^ Total dirs:\t\t\t1$`,
			`^ Total files:\t3$`,
		)
		if !strings.HasSuffix(out, "The filesystem under path '/data' is HEALTHY\n") {
			t.Errorf("no HEALTHY verdict for /data:\n%s", out)
		}
		// A file path checks that file; --files spelled the long way.
		out, _, code = fsckAs(t, httpAddr, "root", "/data/one.txt", "--files")
		if code != 0 || !strings.Contains(out, "/data/one.txt 17 bytes, replicated: replication=1, 1 block(s):  OK\n") {
			t.Errorf("fsck of a file: exit %d\n%s", code, out)
		}
	})

	t.Run("openforwrite", func(t *testing.T) {
		out, errOut, code := fsckAs(t, httpAddr, "root", "/logs", "-openforwrite", "-files", "-blocks")
		if code != 0 {
			t.Fatalf("exit %d, stderr %q\n%s", code, errOut, out)
		}
		wantLines(t, "fsck -openforwrite", out,
			`^/logs/open\.log 14 bytes, replicated: replication=3, 1 block\(s\), OPENFORWRITE:  OK$`,
			`^Under Construction Block:$`,
			`^0\. blk_\d+_\d+ len=14 Expected_repl=3$`,
			`^ Total files:\t1$`,
			`^ Total blocks \(validated\):\t0$`,
		)
	})

	t.Run("errors", func(t *testing.T) {
		out, errOut, code := fsckAs(t, httpAddr, "root", "/nope")
		if code != 1 || !strings.Contains(errOut, "kura dfs fsck: `/nope': No such file or directory") || out != "" {
			t.Errorf("fsck /nope: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		_, errOut, code = fsckAs(t, httpAddr, "bob", "/private")
		if code != 1 || !strings.Contains(errOut, "kura dfs fsck: Permission denied: user=bob, access=READ_EXECUTE") {
			t.Errorf("fsck /private as bob: exit %d, stderr %q", code, errOut)
		}
		// bob may walk / until /private: the check fails there, as HDFS's.
		out, _, code = fsckAs(t, httpAddr, "bob", "/")
		if code != 1 || !strings.HasSuffix(out, "Fsck on path '/' FAILED\n") || !strings.Contains(out, "Permission denied: user=bob") {
			t.Errorf("fsck / as bob: exit %d\n%s", code, out)
		}
		_, errOut, code = fsckAs(t, "127.0.0.1:1", "root", "/")
		if code != 1 || !strings.Contains(errOut, "kura dfs fsck: cannot reach a namenode (--http 127.0.0.1:1)") {
			t.Errorf("fsck of an unreachable namenode: exit %d, stderr %q", code, errOut)
		}
		_, errOut, code = fsckAs(t, "nonsense", "root", "/")
		if code != 2 || !strings.Contains(errOut, "--http") {
			t.Errorf("fsck --http nonsense: exit %d, stderr %q", code, errOut)
		}
		_, errOut, code = fsckAs(t, httpAddr, "root", "-fileZ")
		if code != 2 || !strings.Contains(errOut, "unknown option -fileZ") {
			t.Errorf("fsck -fileZ: exit %d, stderr %q", code, errOut)
		}
	})

	// The datanode holding /data/one.txt's only replica stops: the block
	// is missing.
	fb, err := nn.Namespace().BlockLocations(ctx, hdfs.User{Name: "root"}, "/data/one.txt")
	if err != nil || len(fb.Blocks) != 1 || len(fb.Blocks[0].Targets) != 1 {
		t.Fatalf("locations of /data/one.txt: %v %+v", err, fb)
	}
	holder := fb.Blocks[0].Targets[0].StorageID
	oneBlock := fb.Blocks[0].Block.BlockID
	i := slices.IndexFunc(c.Datanodes, func(d *datanode.Datanode) bool { return d.StorageID() == holder })
	if i < 0 {
		t.Fatalf("no datanode has storage %s", holder)
	}
	if err := c.Datanodes[i].Close(); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for nn.Manager().LiveCount() != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the stopped datanode never counted dead")
		}
		time.Sleep(20 * time.Millisecond)
	}

	t.Run("corrupt", func(t *testing.T) {
		out, errOut, code := fsckAs(t, httpAddr, "root", "/")
		if code != 1 {
			t.Fatalf("fsck / with a missing block: exit %d, stderr %q\n%s", code, errOut, out)
		}
		if strings.Contains(errOut, "kura dfs fsck:") {
			t.Errorf("a CORRUPT verdict printed an error: %q", errOut)
		}
		wantLines(t, "fsck / with a missing block", out,
			`^/data/one\.txt: MISSING 1 blocks of total size 17 B\.$`,
			`^Status: CORRUPT$`,
			`^ Number of data-nodes:\t2$`,
			`^  CORRUPT FILES:\t1$`,
			`^  MISSING BLOCKS:\t1$`,
			`^  MISSING SIZE:\t\t17 B$`,
			`^ Missing blocks:\t\t1$`,
		)
		if !strings.HasSuffix(out, "\n\nThe filesystem under path '/' is CORRUPT\n") {
			t.Errorf("no CORRUPT verdict:\n%s", out)
		}
		out, _, code = fsckAs(t, httpAddr, "root", "/data", "-files", "-blocks")
		wantLines(t, "fsck /data -files -blocks with a missing block", out,
			`^/data/one\.txt 17 bytes, replicated: replication=1, 1 block\(s\):  MISSING 1 blocks of total size 17 B$`,
			`^0\. blk_`+strconv.FormatInt(oneBlock, 10)+`_\d+ len=17 MISSING!$`,
		)
		if code != 1 {
			t.Errorf("fsck /data -files: exit %d", code)
		}
		// /data/big.bin lost a replica: under-replicated, not missing.
		out, _, code = fsckAs(t, httpAddr, "root", "/data/big.bin")
		if code != 0 || !strings.Contains(out, "Target Replicas is 3 but found 2 live replica(s).") {
			t.Errorf("fsck /data/big.bin after a death: exit %d\n%s", code, out)
		}
		// The leader counts the block missing in /status.
		deadline := time.Now().Add(20 * time.Second)
		for {
			st := getNamenodeStatus(t, httpAddr)
			if st.Replication.Missing == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("/status never counted the missing block: %+v", st.Replication)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func getNamenodeStatus(t *testing.T, httpAddr string) namenode.Status {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + namenode.StatusPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var st namenode.Status
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("GET /status: %v: %s", err, b)
	}
	return st
}

// TestFsckReportStream feeds the command's reader JSON lines as a
// namenode sends them: the text goes to stdout, progress to stderr
// (forced: as lines), and the last line decides (HEALTHY nil, CORRUPT a
// quiet exit 1, a report cut short an error).
func TestFsckReportStream(t *testing.T) {
	rec := func(r namenode.FsckRecord) string {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return string(b) + "\n"
	}
	run := func(body string) (string, string, error) {
		var out, errOut bytes.Buffer
		f := &fsckRun{
			ctx: context.Background(), prefix: "kura dfs fsck", path: "/",
			stdout: bufio.NewWriter(&out), stderr: &errOut,
			progress: newProgressConfig(&errOut, true, false),
		}
		err := f.report("nn:9870", strings.NewReader(body))
		return out.String(), errOut.String(), err
	}
	body := rec(namenode.FsckRecord{Text: "FSCK started by root\n/a: MISSING"}) +
		rec(namenode.FsckRecord{Progress: &namenode.FsckProgress{Dirs: 3, Files: 10, Blocks: 20}}) +
		rec(namenode.FsckRecord{Text: " 1 blocks\n\n\nThe filesystem under path '/' is "})
	out, errOut, err := run(body + rec(namenode.FsckRecord{Text: "HEALTHY\n"}))
	if err != nil || out != "FSCK started by root\n/a: MISSING 1 blocks\n\n\nThe filesystem under path '/' is HEALTHY\n" ||
		!strings.Contains(errOut, "fsck: 3 dirs, 10 files, 20 blocks checked in ") {
		t.Errorf("healthy stream: %v, stdout %q, stderr %q", err, out, errOut)
	}
	_, _, err = run(body + rec(namenode.FsckRecord{Text: "CORRUPT\n"}))
	if !errors.As(err, new(quietFailure)) {
		t.Errorf("corrupt stream: %v, want a quiet failure", err)
	}
	_, _, err = run(body)
	if err == nil || !strings.Contains(err.Error(), "ended without a verdict") {
		t.Errorf("stream without a verdict: %v", err)
	}
	_, _, err = run(body + `{"text": "trunc`)
	if err == nil || !strings.Contains(err.Error(), "broke off") {
		t.Errorf("broken stream: %v", err)
	}
}

// TestReachableHTTPAddr: a namenode listening on a wildcard address is
// reached at the host its RPC port was reached at.
func TestReachableHTTPAddr(t *testing.T) {
	for _, c := range []struct{ rpc, served, want string }{
		{"nn1:8020", "10.0.0.5:9870", "10.0.0.5:9870"},
		{"nn1:8020", "0.0.0.0:9870", "nn1:9870"},
		{"nn1:8020", "[::]:9870", "nn1:9870"},
		{"[fd00::1]:8020", ":9870", "[fd00::1]:9870"},
	} {
		got, err := reachableHTTPAddr(c.rpc, c.served)
		if err != nil || got != c.want {
			t.Errorf("reachableHTTPAddr(%q, %q) = %q, %v; want %q", c.rpc, c.served, got, err, c.want)
		}
	}
	for _, served := range []string{"", "no-port", "a:b:c"} {
		if got, err := reachableHTTPAddr("nn1:8020", served); err == nil {
			t.Errorf("reachableHTTPAddr(nn1:8020, %q) = %q, want an error", served, got)
		}
	}
}
