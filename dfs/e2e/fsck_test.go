package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	dfsclient "github.com/kura-dev/kura/dfs/client"
)

// runFsck runs `kura dfs fsck args... --http httpAddr --user root` as a
// process and returns its stdout, stderr and exit code.
func runFsck(t *testing.T, httpAddr string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kuraBin, append(append([]string{"dfs", "fsck"}, args...), "--http", httpAddr, "--user", "root")...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("kura dfs fsck: %v", err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// TestFsckMissingBlocks runs a namenode (SQLite) and three datanode
// processes: `kura dfs fsck /` says HEALTHY (exit 0) with the counts;
// then both datanodes holding the replicas of a file of replication 2 are
// killed with SIGKILL, and fsck says CORRUPT (exit 1), naming the file and
// its missing block, while the namenode's /status counts the block
// missing and the file of replication 3 is only under-replicated.
func TestFsckMissingBlocks(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	meta := "sqlite://" + filepath.Join(tmp, "meta.db")
	nn := launch(t, "nn", "dfs", "namenode", "--meta", meta, "--http", "127.0.0.1:0", "--rpc", "127.0.0.1:0",
		"--datanode-dead-after", "2s", "--maintenance-interval", "200ms", "--replication-interval", "200ms")
	m := waitLine(t, nn, nnReadyRE)
	httpAddr, rpc := m[1], m[2]
	nn.base = "http://" + httpAddr + "/webhdfs/v1"
	var dns []*datanodeProc
	for i := range 3 {
		dns = append(dns, startDatanodeProc(t, fmt.Sprintf("dn%d", i), filepath.Join(tmp, fmt.Sprintf("dn%d", i)), rpc))
	}
	waitStatus(t, httpAddr, "3 live datanodes", func(st nnStatus) bool { return st.Live == 3 })

	c, err := dfsclient.New(dfsclient.Config{Namenodes: []string{rpc}, User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	three := bytes.Repeat([]byte("three replicas "), 100_000) // 1.5 MB: two blocks
	writeFile(t, ctx, c, "/data/three.bin", three)
	two := []byte("two replicas only\n")
	w, err := c.Create(ctx, "/data/two.txt", dfsclient.CreateOptions{CreateParent: true, Replication: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(two); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	// Healthy once every replica is reported.
	var out, errOut string
	var code int
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, errOut, code = runFsck(t, httpAddr, "/")
		if code == 0 && strings.Contains(out, " Under-replicated blocks:\t0 (") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fsck / never healthy with every replica: exit %d, stderr %q\n%s", code, errOut, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []string{
		"\nStatus: HEALTHY\n", " Number of data-nodes:\t3\n", " Total dirs:\t\t\t2\n",
		fmt.Sprintf(" Total size:\t%d B\n", len(three)+len(two)), " Total files:\t2\n",
		" Total blocks (validated):\t3 (", " Missing blocks:\t\t0\n", " Corrupt blocks:\t\t0\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("healthy fsck lacks %q:\n%s", want, out)
		}
	}
	if !strings.HasSuffix(out, "\n\nThe filesystem under path '/' is HEALTHY\n") {
		t.Errorf("healthy fsck's last line:\n%s", out)
	}

	// SIGKILL the two datanodes holding /data/two.txt.
	loc, err := c.BlockLocations(ctx, "/data/two.txt")
	if err != nil || len(loc.Blocks) != 1 || len(loc.Blocks[0].Locations) != 2 {
		t.Fatalf("locations of /data/two.txt: %v %v", err, loc)
	}
	blockID := loc.Blocks[0].Block.Id
	holders := map[string]bool{}
	for _, l := range loc.Blocks[0].Locations {
		holders[l.StorageId] = true
	}
	killed := 0
	for _, d := range dns {
		if holders[d.storageID] {
			d.cmd.Process.Signal(syscall.SIGKILL)
			<-d.done
			killed++
		}
	}
	if killed != 2 {
		t.Fatalf("killed %d datanodes, want the two holders %v", killed, holders)
	}
	waitStatus(t, httpAddr, "the two holders dead", func(st nnStatus) bool { return st.Live == 1 && st.Dead == 2 })

	out, errOut, code = runFsck(t, httpAddr, "/")
	if code != 1 {
		t.Fatalf("fsck / with a missing block: exit %d, stderr %q\n%s", code, errOut, out)
	}
	for _, want := range []string{
		fmt.Sprintf("/data/two.txt: MISSING 1 blocks of total size %d B.\n", len(two)),
		"\nStatus: CORRUPT\n", " Number of data-nodes:\t1\n", "  CORRUPT FILES:\t1\n", "  MISSING BLOCKS:\t1\n",
		" Missing blocks:\t\t1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("fsck with a missing block lacks %q:\n%s", want, out)
		}
	}
	if !strings.HasSuffix(out, "\n\nThe filesystem under path '/' is CORRUPT\n") {
		t.Errorf("corrupt fsck's last line:\n%s", out)
	}
	out, _, code = runFsck(t, httpAddr, "/data", "-files", "-blocks", "-locations")
	blockLine := regexp.MustCompile(fmt.Sprintf(`(?m)^0\. blk_%d_\d+ len=%d MISSING!$`, blockID, len(two)))
	if code != 1 || !blockLine.MatchString(out) ||
		!strings.Contains(out, fmt.Sprintf("/data/two.txt %d bytes, replicated: replication=2, 1 block(s):  MISSING 1 blocks of total size %d B\n", len(two), len(two))) {
		t.Errorf("fsck -files -blocks of the missing block: exit %d\n%s", code, out)
	}
	// The file of replication 3 kept one live replica per block: under-
	// replicated (no datanode to copy to), healthy.
	out, _, code = runFsck(t, httpAddr, "/data/three.bin", "-files")
	if code != 0 || !strings.Contains(out, "Target Replicas is 3 but found 1 live replica(s).") {
		t.Errorf("fsck of the file of replication 3: exit %d\n%s", code, out)
	}
	// The leader counts the block missing.
	deadline = time.Now().Add(30 * time.Second)
	for {
		st, err := status(t, nn)
		if err == nil && st.Replication.Missing == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/status never counted the missing block: %+v %v", st.Replication, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A bad path.
	_, errOut, code = runFsck(t, httpAddr, "/nope")
	if code != 1 || !strings.Contains(errOut, "kura dfs fsck: `/nope': No such file or directory") {
		t.Errorf("fsck /nope: exit %d, stderr %q", code, errOut)
	}
}
