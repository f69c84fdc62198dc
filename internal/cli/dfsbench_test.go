package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/dal/daltest"
	"github.com/kura-dev/kura/dfs/dfstest"
	"github.com/kura-dev/kura/dfs/hdfs"
	"github.com/kura-dev/kura/dfs/namenode"
	"github.com/kura-dev/kura/internal/mountinfo"
)

// TestMain gives the package's tests a PostgreSQL server (daltest.Main
// starts one with scripts/pg.sh unless KURA_TEST_POSTGRES_URL names one),
// for TestDFSBenchPostgres.
func TestMain(m *testing.M) { os.Exit(daltest.Main(m)) }

// The smallest run that still has every phase do something.
var dfsBenchTiny = []string{"--clients", "2", "--files", "20", "--size", "2MiB", "--data-files", "2", "--datanodes", "3"}

// syncBuffer is a bytes.Buffer safe for a writer and a concurrent reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runDFSBenchCmd runs 'kura dfs bench args...' in-process with ctx.
func runDFSBenchCmd(ctx context.Context, args ...string) (stdout, stderr string, code int) {
	var out, errOut syncBuffer
	code = Run(ctx, append([]string{"dfs", "bench"}, args...), strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), code
}

// isolateTmp points $TMPDIR at a new directory, so that the test can check
// that bench leaves nothing behind there.
func isolateTmp(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	return dir
}

// checkTmpEmpty fails unless dir is empty.
func checkTmpEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("left in $TMPDIR: %s", e.Name())
	}
}

// rootEntries opens the metadata database at meta with a namenode of its
// own (nothing else may use a SQLite file meanwhile) and lists "/".
func rootEntries(t *testing.T, meta string) []string {
	t.Helper()
	n, err := namenode.Start(context.Background(), namenode.Config{MetaURL: meta, HTTPAddr: "127.0.0.1:0", RPCAddr: "off", MaintenanceInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	return listRoot(t, n)
}

func listRoot(t *testing.T, n *namenode.Namenode) []string {
	t.Helper()
	l, err := n.Namespace().List(context.Background(), hdfs.User{Name: "root"}, "/", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range l.Entries {
		names = append(names, e.Name)
	}
	return names
}

// benchRows parses the text tables: the figure in column col (0: the
// phase) of each row, by phase.
func benchRows(t *testing.T, out string, phases []string, col int) map[string]float64 {
	t.Helper()
	got := map[string]float64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) <= col || !slices.Contains(phases, f[0]) {
			continue
		}
		v, err := strconv.ParseFloat(strings.ReplaceAll(f[col], ",", ""), 64)
		if err != nil {
			t.Fatalf("row %q: column %d: %v", line, col, err)
		}
		got[f[0]] = v
	}
	return got
}

// TestDFSBenchEmbedded runs every phase on embedded servers (a namenode on
// a given SQLite file, 3 datanodes): every phase is in the table with a
// positive rate, and the run leaves neither its benchmark directory in the
// database nor anything in $TMPDIR.
func TestDFSBenchEmbedded(t *testing.T) {
	tmp := isolateTmp(t)
	meta := "sqlite://" + filepath.Join(t.TempDir(), "meta.db")
	out, errOut, code := runDFSBenchCmd(context.Background(), append([]string{"--meta", meta}, dfsBenchTiny...)...)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	metaPhases := []string{"create", "stat", "list", "rename", "delete"}
	rates := benchRows(t, out, metaPhases, 3) // phase ops seconds ops/s ...
	for _, ph := range metaPhases {
		if rates[ph] <= 0 {
			t.Errorf("%s: ops/s %v, want > 0\n%s", ph, rates[ph], out)
		}
	}
	mbs := benchRows(t, out, []string{"write", "read"}, 2) // phase seconds MB/s local ...
	ceil := benchRows(t, out, []string{"write", "read"}, 3)
	for _, ph := range []string{"write", "read"} {
		if mbs[ph] <= 0 || ceil[ph] <= 0 {
			t.Errorf("%s: kura %v MB/s, local %v MB/s, want both > 0\n%s", ph, mbs[ph], ceil[ph], out)
		}
	}
	for _, want := range []string{"2 clients", "x 20 files", "replication 3", "local/3", "page cache", "(sqlite)"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	checkTmpEmpty(t, tmp)
	if names := rootEntries(t, meta); len(names) != 0 {
		t.Errorf("after the run / holds %v, want nothing", names)
	}
}

// startTestCluster starts a namenode on SQLite and n datanodes in-process
// and waits until the namenode sees them live.
func startTestCluster(t *testing.T, n int) *namenode.Namenode {
	t.Helper()
	return dfstest.Start(t, dfstest.Options{Datanodes: n, Heartbeat: 3 * time.Second}).Namenode
}

// TestDFSBenchJSON benchmarks a running cluster (--namenode) with --json:
// the object parses, holds every phase with positive figures, and the
// cluster's namespace is as it was.
func TestDFSBenchJSON(t *testing.T) {
	tmp := isolateTmp(t)
	nn := startTestCluster(t, 3)
	args := []string{"--namenode", nn.RPCAddr(), "--json", "--clients", "2", "--files", "20", "--size", "2MiB", "--data-files", "2", "--replication", "2", "--block-size", "1MiB"}
	out, errOut, code := runDFSBenchCmd(context.Background(), args...)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var rep dfsBenchReport
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, out)
	}
	if rep.Embedded || !slices.Equal(rep.Namenodes, []string{nn.RPCAddr()}) || rep.Clients != 2 || rep.FilesPerClient != 20 || !strings.HasPrefix(rep.Dir, "/kura-bench-") {
		t.Errorf("report setup: %+v", rep)
	}
	var phases []string
	for _, m := range rep.Metadata {
		phases = append(phases, m.Phase)
		wantOps := int64(2 * 20)
		if m.Phase == "list" {
			wantOps = 2 * 2 // a listing per 10 files
			if m.Entries != wantOps*20 {
				t.Errorf("list: %d entries, want %d", m.Entries, wantOps*20)
			}
		}
		if m.Ops != wantOps || m.OpsPerSec <= 0 || m.Seconds <= 0 || m.MeanMs <= 0 || m.P50Ms <= 0 || m.P99Ms < m.P50Ms || m.CPUUsPerOp <= 0 {
			t.Errorf("metadata row %+v: want %d ops and positive figures", m, wantOps)
		}
	}
	if want := []string{"rpc", "create", "stat", "list", "rename", "delete"}; !slices.Equal(phases, want) {
		t.Errorf("metadata phases %v, want %v", phases, want)
	}
	d := rep.Data
	if d == nil {
		t.Fatalf("no data in the report:\n%s", out)
	}
	if d.Bytes != 2<<20 || d.Files != 2 || d.Replication != 2 || d.BlockSize != 1<<20 || len(d.Rows) != 2 {
		t.Fatalf("data %+v", d)
	}
	for i, ph := range []string{"write", "read"} {
		row := d.Rows[i]
		if row.Phase != ph || row.MBPerSec <= 0 || row.CeilingMBPerSec <= 0 || row.Ratio <= 0 {
			t.Errorf("data row %+v: want %s with positive figures", row, ph)
		}
	}
	if w := d.Rows[0]; w.CeilingPerReplicaMBPerSec <= 0 || w.CeilingPerReplicaMBPerSec*2 > w.CeilingMBPerSec*1.0001 {
		t.Errorf("write: ceiling per replica %v with ceiling %v and replication 2", w.CeilingPerReplicaMBPerSec, w.CeilingMBPerSec)
	}
	if len(rep.Unmeasured) != 0 {
		t.Errorf("unmeasured %v", rep.Unmeasured)
	}
	if names := listRoot(t, nn); len(names) != 0 {
		t.Errorf("after the run / holds %v, want nothing", names)
	}
	checkTmpEmpty(t, tmp)
}

// TestDFSBenchPhasesSubset measures only some phases: those they need run
// first, unmeasured, and only the measured ones are in the report.
func TestDFSBenchPhasesSubset(t *testing.T) {
	isolateTmp(t)
	args := append([]string{"--phases", "read, stat", "--json"}, dfsBenchTiny...)
	out, errOut, code := runDFSBenchCmd(context.Background(), args...)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var rep dfsBenchReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rep.Metadata) != 1 || rep.Metadata[0].Phase != "stat" || rep.Metadata[0].OpsPerSec <= 0 {
		t.Errorf("metadata %+v, want stat alone", rep.Metadata)
	}
	if rep.Data == nil || len(rep.Data.Rows) != 1 || rep.Data.Rows[0].Phase != "read" || rep.Data.Rows[0].MBPerSec <= 0 {
		t.Errorf("data %+v, want read alone", rep.Data)
	}
	if !slices.Equal(rep.Unmeasured, []string{"create", "write"}) {
		t.Errorf("unmeasured %v, want [create write]", rep.Unmeasured)
	}
	if !strings.Contains(errOut, "create (not measured") {
		t.Errorf("stderr does not say create is not measured:\n%s", errOut)
	}
}

// TestDFSBenchPostgres runs the benchmark with the metadata on PostgreSQL.
func TestDFSBenchPostgres(t *testing.T) {
	tmp := isolateTmp(t)
	meta := daltest.PostgresURL(t)
	out, errOut, code := runDFSBenchCmd(context.Background(), append([]string{"--meta", meta}, dfsBenchTiny...)...)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "(postgres)") {
		t.Errorf("stdout does not name the backend:\n%s", out)
	}
	rates := benchRows(t, out, []string{"create", "stat", "list", "rename", "delete"}, 3)
	if len(rates) != 5 {
		t.Errorf("metadata rows %v, want 5\n%s", rates, out)
	}
	for ph, v := range rates {
		if v <= 0 {
			t.Errorf("%s: ops/s %v", ph, v)
		}
	}
	if mbs := benchRows(t, out, []string{"write", "read"}, 2); len(mbs) != 2 || mbs["write"] <= 0 || mbs["read"] <= 0 {
		t.Errorf("data rows %v\n%s", mbs, out)
	}
	checkTmpEmpty(t, tmp)
	if names := rootEntries(t, meta); len(names) != 0 {
		t.Errorf("after the run / holds %v, want nothing", names)
	}
}

// TestDFSBenchRefusesUsedNamespace: a database that holds files is
// benchmarked only under a new --dir, and only that directory (with the
// parents bench made) is removed.
func TestDFSBenchRefusesUsedNamespace(t *testing.T) {
	isolateTmp(t)
	meta := "sqlite://" + filepath.Join(t.TempDir(), "meta.db")
	n, err := namenode.Start(context.Background(), namenode.Config{MetaURL: meta, HTTPAddr: "127.0.0.1:0", RPCAddr: "off", MaintenanceInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Namespace().Mkdirs(context.Background(), hdfs.User{Name: "root"}, "/keep/me", 0o755, true); err != nil {
		t.Fatal(err)
	}
	n.Close()

	metaOnly := []string{"--meta", meta, "--phases", "create,stat", "--clients", "2", "--files", "5"}
	_, errOut, code := runDFSBenchCmd(context.Background(), metaOnly...)
	if code != 2 || !strings.Contains(errOut, "/keep") || !strings.Contains(errOut, "--dir") {
		t.Errorf("a database holding /keep: exit %d, stderr %q; want 2 naming /keep and --dir", code, errOut)
	}
	_, errOut, code = runDFSBenchCmd(context.Background(), append(metaOnly, "--dir", "/keep/me")...)
	if code != 2 || !strings.Contains(errOut, `--dir "/keep/me" already exists`) {
		t.Errorf("--dir of an existing directory: exit %d, stderr %q; want 2, already exists", code, errOut)
	}
	out, errOut, code := runDFSBenchCmd(context.Background(), append(metaOnly, "--dir", "/bench/run1/")...)
	if code != 0 || !strings.Contains(out, "directory /bench/run1\n") {
		t.Fatalf("--dir /bench/run1/: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if names := rootEntries(t, meta); !slices.Equal(names, []string{"keep"}) {
		t.Errorf("after the run / holds %v, want [keep]", names)
	}
}

// TestDFSBenchInterrupt cancels a run (Ctrl-C) in its first phase: it
// stops promptly, says so, and still removes its directory and temporary
// files.
func TestDFSBenchInterrupt(t *testing.T) {
	tmp := isolateTmp(t)
	meta := "sqlite://" + filepath.Join(t.TempDir(), "meta.db")
	interruptBench(t, []string{"dfs", "bench", "--meta", meta, "--clients", "2", "--files", "1000000"}, "working in", 200*time.Millisecond, "rpc")
	checkTmpEmpty(t, tmp)
	if names := rootEntries(t, meta); len(names) != 0 {
		t.Errorf("after the run / holds %v, want nothing", names)
	}
}

// TestDFSBenchUsage: bad flags are usage errors (exit 2) naming the flag
// and its value, before anything starts.
func TestDFSBenchUsage(t *testing.T) {
	tmp := isolateTmp(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--clients", "0"}, "--clients 0"},
		{[]string{"--files", "-3"}, "--files -3"},
		{[]string{"--size", "12XB"}, `--size "12XB": unknown unit`},
		{[]string{"--size", "0"}, `--size "0"`},
		{[]string{"--size", "1.5"}, `--size "1.5": not a whole number`},
		{[]string{"--size", "3", "--data-files", "4"}, `--size "3": fewer bytes than --data-files 4`},
		{[]string{"--data-files", "0"}, "--data-files 0"},
		{[]string{"--block-size", "big"}, `--block-size "big"`},
		{[]string{"--phases", "create,copy"}, `--phases "create,copy": unknown phase "copy"`},
		{[]string{"--phases", " , "}, `--phases " , ": no phase`},
		{[]string{"--replication", "-1"}, "--replication -1"},
		{[]string{"--replication", "4"}, "--replication 4: more than the 3 --datanodes"},
		{[]string{"--datanodes", "0"}, "--datanodes 0"},
		{[]string{"--datanodes", "-1", "--phases", "stat"}, "--datanodes -1"},
		{[]string{"--meta", "mysql://db/x"}, `--meta: bad metadata URL "mysql://db/x"`},
		{[]string{"--namenode", "nn1"}, `--namenode "nn1": "nn1" is not HOST:PORT`},
		{[]string{"--namenode", " , "}, `--namenode " , ": no address`},
		{[]string{"--namenode", "127.0.0.1:1", "--meta", "sqlite:///x.db"}, `--meta "sqlite:///x.db" with --namenode "127.0.0.1:1"`},
		{[]string{"--namenode", "127.0.0.1:1", "--datanodes", "2"}, `--datanodes 2 with --namenode`},
		{[]string{"--dir", "rel/dir"}, `--dir "rel/dir"`},
		{[]string{"--dir", "/"}, `--dir "/"`},
		{[]string{"--dir", "/a/../b"}, `--dir "/a/../b"`},
		{[]string{"--user", ""}, `--user ""`},
		{[]string{"--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"--clients", "many"}, `invalid argument "many" for "--clients"`},
		{[]string{"--via", "bogus"}, `--via "bogus": want client or fuse`},
		{[]string{"--via", "fuse", "--mounts", "0"}, "--mounts 0: must be >= 1"},
		{[]string{"--via", "fuse", "--fuse-cache", "-1s"}, "--fuse-cache -1s"},
		{[]string{"--via", "fuse", "--phases", "rpc,stat"}, `--phases "rpc,stat" with --via fuse: rpc has no file-system call`},
		{[]string{"--mounts", "2"}, "--mounts 2 with --via client"},
		{[]string{"--via", "client", "--fuse-cache", "0"}, "--fuse-cache 0s with --via client"},
		{[]string{"extra"}, "takes no arguments"},
	} {
		out, errOut, code := runDFSBenchCmd(context.Background(), c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", c.args, code, errOut, c.want)
		}
		if out != "" {
			t.Errorf("%q: stdout %q", c.args, out)
		}
	}
	checkTmpEmpty(t, tmp)
}

func TestDFSBenchParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"4096", 4096}, {"10B", 10}, {"64MiB", 64 << 20}, {"1GiB", 1 << 30}, {"1gib", 1 << 30},
		{"2M", 2 << 20}, {"1.5GiB", 3 << 29}, {"256 MiB", 256 << 20}, {"1MB", 1e6}, {"3kB", 3000}, {"1TiB", 1 << 40},
	} {
		if got, err := dfsBenchParseSize(c.in); err != nil || got != c.want {
			t.Errorf("dfsBenchParseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "MiB", "1..2MiB", "1XB", "-1", "0.3B", "9999999TiB"} {
		if got, err := dfsBenchParseSize(in); err == nil {
			t.Errorf("dfsBenchParseSize(%q) = %d, want an error", in, got)
		}
	}
	for n, want := range map[int64]string{100: "100 B", 2 << 20: "2 MiB", 3 << 29: "1.5 GiB", 128 << 20: "128 MiB"} {
		if got := dfsBenchFormatBytes(n); got != want {
			t.Errorf("dfsBenchFormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.6: "1,234,568", -4700: "-4,700"} {
		if got := dfsBenchThousands(v); got != want {
			t.Errorf("dfsBenchThousands(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestDFSBenchRunOrder(t *testing.T) {
	for _, c := range []struct {
		measured []string
		want     []string
	}{
		{dfsBenchPhases(), dfsBenchPhases()},
		{[]string{"stat"}, []string{"create", "stat"}},
		{[]string{"delete", "create"}, []string{"create", "delete"}},
		{[]string{"read"}, []string{"write", "read"}},
		{[]string{"write"}, []string{"write"}},
		{[]string{"read", "list"}, []string{"create", "list", "write", "read"}},
	} {
		m := map[string]bool{}
		for _, ph := range c.measured {
			m[ph] = true
		}
		if got := dfsBenchRunOrder(m); !slices.Equal(got, c.want) {
			t.Errorf("dfsBenchRunOrder(%v) = %v, want %v", c.measured, got, c.want)
		}
	}
}

func TestDFSBenchLatencies(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	mean, p50, p99 := dfsBenchLatencies(d)
	if mean != 50.5 || p50 != 50 || p99 != 99 {
		t.Errorf("latencies of 1..100 ms: mean %v p50 %v p99 %v; want 50.5, 50, 99", mean, p50, p99)
	}
	if mean, p50, p99 := dfsBenchLatencies(nil); mean != 0 || p50 != 0 || p99 != 0 {
		t.Errorf("no latencies: %v %v %v", mean, p50, p99)
	}
}

// TestDFSBenchStream: the data streams are deterministic, differ between
// files, and the check finds a changed byte, a short file and a long one.
func TestDFSBenchStream(t *testing.T) {
	ctx := context.Background()
	var n atomic.Int64
	var a, b bytes.Buffer
	size := int64(dfsBenchChunk + 13)
	if err := dfsBenchStreamTo(ctx, 1, size, &a, &n); err != nil {
		t.Fatal(err)
	}
	if err := dfsBenchStreamTo(ctx, 2, size, &b, &n); err != nil {
		t.Fatal(err)
	}
	if int64(a.Len()) != size || bytes.Equal(a.Bytes(), b.Bytes()) || n.Load() != 2*size {
		t.Fatalf("streams: %d bytes, equal %v, counted %d", a.Len(), bytes.Equal(a.Bytes(), b.Bytes()), n.Load())
	}
	if err := dfsBenchCheck(ctx, 1, size, bytes.NewReader(a.Bytes()), &n); err != nil {
		t.Errorf("check of the same stream: %v", err)
	}
	bad := bytes.Clone(a.Bytes())
	bad[dfsBenchChunk+5] ^= 1
	if err := dfsBenchCheck(ctx, 1, size, bytes.NewReader(bad), &n); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("byte %d", dfsBenchChunk+5)) {
		t.Errorf("check of a changed byte: %v", err)
	}
	if err := dfsBenchCheck(ctx, 1, size, bytes.NewReader(a.Bytes()[:size-1]), &n); err == nil {
		t.Error("check of a short file passed")
	}
	if err := dfsBenchCheck(ctx, 1, size, bytes.NewReader(append(bytes.Clone(a.Bytes()), 0)), &n); err == nil {
		t.Error("check of a long file passed")
	}
}

// needFUSE skips a test that mounts FUSE file systems unless it runs as
// root (no fusermount needed) with /dev/fuse.
func needFUSE(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("FUSE mounts need root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no /dev/fuse: %v", err)
	}
}

// checkNoMounts fails if anything is mounted at or below dir.
func checkNoMounts(t *testing.T, dir string) {
	t.Helper()
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(mountinfo.Unescape(f[1]), dir) {
			t.Errorf("still mounted after the run: %s", line)
		}
	}
}

// TestDFSBenchFUSE runs every phase through real FUSE mounts of embedded
// servers (--via fuse, 3 clients on 2 mounts): every metadata phase has
// its kura row and both ceilings with clients x files operations, the
// data phases went through, the JSON names the mounts and the cache, and
// the run leaves no mount, no file in $TMPDIR and nothing in the database.
func TestDFSBenchFUSE(t *testing.T) {
	needFUSE(t)
	tmp := isolateTmp(t)
	meta := "sqlite://" + filepath.Join(t.TempDir(), "meta.db")
	args := []string{"--via", "fuse", "--mounts", "2", "--meta", meta, "--json",
		"--clients", "3", "--files", "12", "--size", "2MiB", "--data-files", "2", "--datanodes", "3"}
	out, errOut, code := runDFSBenchCmd(context.Background(), args...)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	checkNoMounts(t, tmp)
	var rep dfsBenchReport
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, out)
	}
	if rep.Via != "fuse" || rep.Clients != 3 || rep.FilesPerClient != 12 || !rep.Embedded {
		t.Errorf("report setup: %+v", rep)
	}
	f := rep.Fuse
	if f == nil || f.Mounts != 2 || f.Cache != "1s" || f.CacheMs != 1000 || !slices.Equal(f.Skipped, []string{"rpc"}) ||
		!strings.HasPrefix(f.LocalDir, tmp) || !strings.HasPrefix(f.NullFuseDir, tmp) {
		t.Errorf("fuse setup %+v", f)
	}
	var phases []string
	for _, m := range rep.Metadata {
		phases = append(phases, m.Phase)
		wantOps := int64(3 * 12)
		if m.Phase == "list" {
			wantOps = 3 * 2 // a listing per 10 files
			if m.Entries != wantOps*12 {
				t.Errorf("list: %d entries, want %d", m.Entries, wantOps*12)
			}
		}
		if m.Ops != wantOps || m.OpsPerSec <= 0 || m.Seconds <= 0 || m.P99Ms < m.P50Ms {
			t.Errorf("metadata row %+v: want %d ops and positive figures", m, wantOps)
		}
		for name, c := range map[string]*dfsBenchCeilingRow{"null_fuse": m.NullFuse, "local": m.Local} {
			if c == nil {
				t.Errorf("%s: no %s ceiling", m.Phase, name)
				continue
			}
			if c.Ops != wantOps || c.OpsPerSec <= 0 || c.Ratio <= 0 || math.Abs(c.Ratio-m.OpsPerSec/c.OpsPerSec) > 1e-9 {
				t.Errorf("%s: %s ceiling %+v with kura at %v ops/s", m.Phase, name, c, m.OpsPerSec)
			}
			if m.Phase == "list" && c.Entries != m.Entries {
				t.Errorf("list: %s listed %d entries, kura %d", name, c.Entries, m.Entries)
			}
		}
	}
	if want := []string{"create", "stat", "list", "rename", "delete"}; !slices.Equal(phases, want) {
		t.Errorf("metadata phases %v, want %v", phases, want)
	}
	if d := rep.Data; d == nil || d.Bytes != 2<<20 || d.Files != 2 || d.Replication != 3 || len(d.Rows) != 2 ||
		d.Rows[0].Phase != "write" || d.Rows[0].MBPerSec <= 0 || d.Rows[1].Phase != "read" || d.Rows[1].MBPerSec <= 0 {
		t.Errorf("data %+v", d)
	}
	if !strings.Contains(errOut, "2 FUSE mounts of the namespace") || !strings.Contains(errOut, "kernel entry/attr cache 1s") {
		t.Errorf("stderr does not tell the mounts:\n%s", errOut)
	}
	checkTmpEmpty(t, tmp)
	if names := rootEntries(t, meta); len(names) != 0 {
		t.Errorf("after the run / holds %v, want nothing", names)
	}
}

// TestDFSBenchFUSETable: the text report of --via fuse says which figures
// went through FUSE and with which cache, and gives each phase's three
// rows.
func TestDFSBenchFUSETable(t *testing.T) {
	needFUSE(t)
	tmp := isolateTmp(t)
	out, errOut, code := runDFSBenchCmd(context.Background(), "--via", "fuse", "--mounts", "1", "--fuse-cache", "0",
		"--phases", "stat", "--clients", "2", "--files", "5")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	checkNoMounts(t, tmp)
	for _, want := range []string{"via FUSE (mdtest's way): 1 mount of the namespace", "kernel entry/attr cache 0s", "metadata through FUSE: 2 processes",
		"kernel cache 0: every lookup and stat reaches kura", "not measured (run to prepare the measured phases): create"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	rows := map[string]string{} // path -> ops column
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 8 && f[0] == "stat" {
			rows[f[1]] = f[2]
		}
		if f := strings.Fields(line); len(f) > 0 && f[0] == "create" {
			t.Errorf("unmeasured create has a row: %q", line)
		}
	}
	if want := map[string]string{"kura-fuse": "10", "null-fuse": "10", "local": "10"}; !maps.Equal(rows, want) {
		t.Errorf("stat rows (path: ops) %v, want %v\n%s", rows, want, out)
	}
	checkTmpEmpty(t, tmp)
}

// TestDFSBenchFUSEInterrupt cancels a --via fuse run (Ctrl-C) during its
// creates through the mounts: it stops promptly, and leaves no mount, no
// temporary file and no benchmark directory.
func TestDFSBenchFUSEInterrupt(t *testing.T) {
	needFUSE(t)
	tmp := isolateTmp(t)
	meta := "sqlite://" + filepath.Join(t.TempDir(), "meta.db")
	interruptBench(t, []string{"dfs", "bench", "--via", "fuse", "--meta", meta, "--clients", "2", "--files", "1000000", "--phases", "create"},
		"FUSE mounts of the namespace", 300*time.Millisecond, "create")
	checkNoMounts(t, tmp)
	checkTmpEmpty(t, tmp)
	if names := rootEntries(t, meta); len(names) != 0 {
		t.Errorf("after the run / holds %v, want nothing", names)
	}
}

func TestDFSBenchFUSEHelpers(t *testing.T) {
	for v, want := range map[float64]string{0.0042: "0.0042", 0.31: "0.31", 1.234: "1.23", 0.05: "0.05"} {
		if got := dfsBenchRatio(v); got != want {
			t.Errorf("dfsBenchRatio(%v) = %q, want %q", v, got, want)
		}
	}
}

// interruptBench runs kura with args, cancels it wait after its stderr
// shows ready, and checks that it ends within 30s with exit 1 and "interrupted
// during phase".
func interruptBench(t *testing.T, args []string, ready string, wait time.Duration, phase string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int)
	go func() { done <- Run(ctx, args, strings.NewReader(""), &out, &errOut) }()
	for !strings.Contains(errOut.String(), ready) {
		select {
		case code := <-done:
			t.Fatalf("exit %d before the interrupt\nstderr:\n%s", code, errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	time.Sleep(wait)
	cancel()
	select {
	case code := <-done:
		if want := "interrupted during " + phase; code != 1 || !strings.Contains(errOut.String(), want) {
			t.Errorf("exit %d, stderr:\n%s\nwant 1 and %q", code, errOut.String(), want)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("bench still running 30s after the interrupt")
	}
}
