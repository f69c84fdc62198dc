package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	dfsclient "github.com/kura-dev/kura/dfs/client"
)

// envWriterNamenode, set, makes TestHflushWriterProcess the writer process
// of TestHflushSurvivesWriterKill, writing through the namenode it names.
const envWriterNamenode = "KURA_E2E_HFLUSH_WRITER_NAMENODE"

// writerData is what the writer process writes: 2 MiB + 300,001 bytes
// (two full 1 MiB blocks and a partial third), all hflushed, then 1,000
// bytes more that stay in the writer (less than a packet).
func writerData() (flushed, more []byte) {
	rng := rand.New(rand.NewPCG(7, 8))
	b := make([]byte, 2<<20+300_001+1000)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b[:len(b)-1000], b[len(b)-1000:]
}

var flushedRE = regexp.MustCompile(`FLUSHED (\d+)\n`)

// TestHflushWriterProcess is not a test of its own: run by
// TestHflushSurvivesWriterKill as a separate process (with
// envWriterNamenode set), it writes /w, hflushes, prints "FLUSHED <n>",
// writes a little more and waits to be killed.
func TestHflushWriterProcess(t *testing.T) {
	nn := os.Getenv(envWriterNamenode)
	if nn == "" {
		t.Skip("the writer process of TestHflushSurvivesWriterKill")
	}
	ctx := context.Background()
	c, err := dfsclient.New(dfsclient.Config{Namenodes: []string{nn}, User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.Create(ctx, "/w", dfsclient.CreateOptions{Replication: 3, BlockSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	flushed, more := writerData()
	for rest := flushed; len(rest) > 0; {
		n := min(len(rest), 100_003)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if err := w.Hflush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(more); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("FLUSHED %d\n", len(flushed))
	select {} // until SIGKILL
}

// runWriterProc runs the writer process (this binary again, running
// TestHflushWriterProcess only) against the namenode at rpc, waits until
// it has hflushed /w, kills it with SIGKILL and returns what it flushed.
func runWriterProc(t *testing.T, rpc string) []byte {
	t.Helper()
	writer := &namenode{name: "writer", cmd: exec.Command(os.Args[0], "-test.run=^TestHflushWriterProcess$", "-test.count=1", "-test.timeout=5m"),
		stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan struct{})}
	writer.cmd.Env = append(os.Environ(), envWriterNamenode+"="+rpc)
	writer.cmd.Stdout, writer.cmd.Stderr = writer.stdout, writer.stderr
	writer.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := writer.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { writer.cmd.Wait(); close(writer.done) }()
	t.Cleanup(func() {
		writer.cmd.Process.Signal(syscall.SIGKILL)
		<-writer.done
		if t.Failed() {
			t.Logf("writer stdout:\n%s\nstderr:\n%s", writer.stdout.String(), writer.stderr.String())
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	var m []string
	for m == nil {
		m = flushedRE.FindStringSubmatch(writer.stdout.String())
		select {
		case <-writer.done:
			if m == nil {
				t.Fatalf("the writer exited (%v) before it hflushed", writer.cmd.ProcessState)
			}
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer did not hflush within 2 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	flushed, _ := writerData()
	if n, _ := strconv.Atoi(m[1]); n != len(flushed) {
		t.Fatalf("the writer flushed %d bytes, want %d", n, len(flushed))
	}
	writer.cmd.Process.Signal(syscall.SIGKILL)
	<-writer.done
	return flushed
}

// TestHflushSurvivesWriterKill: a writer process (this test binary, see
// TestHflushWriterProcess) writes a file through a namenode process with
// three datanode processes, hflushes, and is killed with SIGKILL before it
// closes the file. recoverLease (block recovery on the datanodes) closes
// the file, and `kura dfs cat` reads back exactly the hflushed bytes.
func TestHflushSurvivesWriterKill(t *testing.T) {
	if os.Getenv(envWriterNamenode) != "" {
		t.Skip("in the writer process")
	}
	tmp := t.TempDir()
	rpc := freeAddr(t)
	nn := launch(t, "nn", "dfs", "namenode", "--meta", "sqlite://"+filepath.Join(tmp, "meta.db"), "--http", "127.0.0.1:0",
		"--rpc", rpc, "--maintenance-interval", "200ms")
	httpAddr := waitLine(t, nn, nnReadyRE)[1]
	for i := range 3 {
		startDatanodeProc(t, fmt.Sprintf("dn%d", i), filepath.Join(tmp, fmt.Sprintf("dn%d", i)), rpc)
	}
	waitStatus(t, httpAddr, "3 live datanodes", func(st nnStatus) bool { return st.Live == 3 })

	flushed := runWriterProc(t, rpc)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := dfsclient.New(dfsclient.Config{Namenodes: []string{rpc}, User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if st, err := c.Stat(ctx, "/w"); err != nil || !st.UnderConstruction || st.Length != int64(len(flushed)) {
		t.Fatalf("the killed writer's file: %+v %v, want open with the %d bytes flushed", st, err, len(flushed))
	}
	before, err := c.BlockLocations(ctx, "/w")
	if err != nil || len(before.Blocks) != 3 {
		t.Fatalf("the killed writer's blocks: %v %v, want 3", before, err)
	}
	if closed, err := c.RecoverLease(ctx, "/w"); err != nil || !closed {
		t.Fatalf("recoverLease: %v %v", closed, err)
	}
	if st, err := c.Stat(ctx, "/w"); err != nil || st.UnderConstruction || st.Length != int64(len(flushed)) {
		t.Fatalf("after recoverLease: %+v %v, want closed with %d bytes", st, err, len(flushed))
	}
	// Block recovery re-stamped the last block on all three datanodes.
	after, err := c.BlockLocations(ctx, "/w")
	if err != nil || len(after.Blocks) != 3 {
		t.Fatalf("the recovered file's blocks: %v %v, want 3", after, err)
	}
	if b, a := before.Blocks[2], after.Blocks[2]; a.Block.Id != b.Block.Id || a.Block.Genstamp <= b.Block.Genstamp || len(a.Locations) != 3 {
		t.Errorf("the last block after recovery: blk_%d_%d on %d datanodes; before blk_%d_%d", a.Block.Id, a.Block.Genstamp, len(a.Locations), b.Block.Id, b.Block.Genstamp)
	}
	cat := exec.Command(kuraBin, "dfs", "cat", "--namenode", rpc, "--user", "root", "/w")
	var stderr bytes.Buffer
	cat.Stderr = &stderr
	got, err := cat.Output()
	if err != nil {
		t.Fatalf("kura dfs cat /w: %v\n%s", err, stderr.String())
	}
	if !bytes.Equal(got, flushed) {
		t.Fatalf("kura dfs cat /w: %d bytes, differing from the %d flushed", len(got), len(flushed))
	}
}

// TestFallbackRecoveryFinalizesReturningReplicas: a writer process
// hflushes /w through a namenode process and three datanode processes,
// and is killed with SIGKILL, and so are the three datanodes. recoverLease
// then finds no datanode to recover the last block with and closes the
// file with the recorded lengths, the last block's replicas left being
// written (in rbw/) on the dead datanodes' disks. When the datanodes are
// started again on their data directories, their block reports get those
// replicas finalized at the recorded length (moved to current/, on every
// datanode), and `kura dfs cat` reads the hflushed bytes back.
func TestFallbackRecoveryFinalizesReturningReplicas(t *testing.T) {
	if os.Getenv(envWriterNamenode) != "" {
		t.Skip("in the writer process")
	}
	tmp := t.TempDir()
	rpc := freeAddr(t)
	nn := launch(t, "nn", "dfs", "namenode", "--meta", "sqlite://"+filepath.Join(tmp, "meta.db"), "--http", "127.0.0.1:0",
		"--rpc", rpc, "--maintenance-interval", "200ms")
	httpAddr := waitLine(t, nn, nnReadyRE)[1]
	dirs := make([]string, 3)
	dns := make([]*datanodeProc, 3)
	for i := range dns {
		dirs[i] = filepath.Join(tmp, fmt.Sprintf("dn%d", i))
		dns[i] = startDatanodeProc(t, fmt.Sprintf("dn%d", i), dirs[i], rpc)
	}
	waitStatus(t, httpAddr, "3 live datanodes", func(st nnStatus) bool { return st.Live == 3 })
	flushed := runWriterProc(t, rpc)
	for _, d := range dns {
		d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.done
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := dfsclient.New(dfsclient.Config{Namenodes: []string{rpc}, User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	locs, err := c.BlockLocations(ctx, "/w")
	if err != nil || len(locs.Blocks) != 3 {
		t.Fatalf("the killed writer's blocks: %v %v, want 3", locs, err)
	}
	last := locs.Blocks[2]
	if closed, err := c.RecoverLease(ctx, "/w"); err != nil || !closed {
		t.Fatalf("recoverLease without datanodes: %v %v", closed, err)
	}
	if st, err := c.Stat(ctx, "/w"); err != nil || st.UnderConstruction || st.Length != int64(len(flushed)) {
		t.Fatalf("after recoverLease without datanodes: %+v %v, want closed with %d bytes", st, err, len(flushed))
	}
	name := "blk_" + strconv.FormatUint(last.Block.Id, 10)
	state := func(dir string) string {
		if _, err := os.Stat(filepath.Join(dir, "rbw", name)); err == nil {
			return "rbw"
		}
		if m, _ := filepath.Glob(filepath.Join(dir, "current", "subdir*", "subdir*", name)); len(m) == 1 {
			return "finalized"
		}
		return "missing"
	}
	for _, dir := range dirs {
		if s := state(dir); s != "rbw" {
			t.Fatalf("%s in %s after the fallback close: %s, want being written (rbw)", name, dir, s)
		}
	}

	for i := range dns {
		dns[i] = startDatanodeProc(t, fmt.Sprintf("dn%d-again", i), dirs[i], rpc)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var states []string
		done := true
		for _, dir := range dirs {
			s := state(dir)
			states = append(states, s)
			done = done && s == "finalized"
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on the restarted datanodes: %v, want finalized on all three", name, states)
		}
		time.Sleep(50 * time.Millisecond)
	}
	after, err := c.BlockLocations(ctx, "/w")
	if err != nil || len(after.Blocks) != 3 {
		t.Fatalf("the recovered file's blocks: %v %v, want 3", after, err)
	}
	if a := after.Blocks[2]; a.Block.Id != last.Block.Id || a.Block.Genstamp != last.Block.Genstamp || len(a.Locations) != 3 {
		t.Errorf("the last block after the datanodes came back: blk_%d_%d on %d datanodes; want blk_%d_%d on 3",
			a.Block.Id, a.Block.Genstamp, len(a.Locations), last.Block.Id, last.Block.Genstamp)
	}
	cat := exec.Command(kuraBin, "dfs", "cat", "--namenode", rpc, "--user", "root", "/w")
	var stderr bytes.Buffer
	cat.Stderr = &stderr
	got, err := cat.Output()
	if err != nil {
		t.Fatalf("kura dfs cat /w: %v\n%s", err, stderr.String())
	}
	if !bytes.Equal(got, flushed) {
		t.Fatalf("kura dfs cat /w: %d bytes, differing from the %d flushed", len(got), len(flushed))
	}
}
