package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/dal/daltest"
)

// waitLine waits until the process's stdout matches re and returns the
// submatches.
func waitLine(t *testing.T, p *namenode, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := re.FindStringSubmatch(p.stdout.String()); m != nil {
			return m
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before it was ready (%v):\n%s", p.name, p.cmd.ProcessState, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 30s:\n%s", p.name, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	nnReadyRE = regexp.MustCompile(`dfs namenode serving WebHDFS on (\S+) .*datanode RPC on (\S+)\n`)
	dnReadyRE = regexp.MustCompile(`dfs datanode (\S+) serving blocks on (\S+), WebHDFS (?:on (\S+)|off) \(data (.+)\), namenodes (\S+)\n`)
)

// freeAddr returns a local address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// datanodeProc is one `kura dfs datanode` process.
type datanodeProc struct {
	*namenode
	storageID, addr string
	httpAddr        string // its WebHDFS address
}

// startDatanodeProc starts a datanode with its block transfer and its
// WebHDFS (--http) on free ports, and waits until it serves.
func startDatanodeProc(t *testing.T, name, dir, nn string) *datanodeProc {
	t.Helper()
	p := launch(t, name, "dfs", "datanode", "--data", dir, "--namenode", nn, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--heartbeat", "100ms")
	m := waitLine(t, p, dnReadyRE)
	if m[3] == "" || m[4] != dir || m[5] != nn {
		t.Fatalf("%s ready line %q", name, m[0])
	}
	return &datanodeProc{namenode: p, storageID: m[1], addr: m[2], httpAddr: m[3]}
}

type dnStatus struct {
	StorageID            string  `json:"storageId"`
	DataAddr             string  `json:"dataAddr"`
	HTTPAddr             string  `json:"httpAddr"`
	Live                 bool    `json:"live"`
	Capacity             int64   `json:"capacity"`
	Remaining            int64   `json:"remaining"`
	LastHeartbeatSeconds float64 `json:"lastHeartbeatSeconds"`
}

type nnStatus struct {
	RPCAddr   string     `json:"rpcAddr"`
	Backend   string     `json:"backend"`
	Live      int        `json:"live"`
	Dead      int        `json:"dead"`
	Datanodes []dnStatus `json:"datanodes"`
}

func getStatus(t *testing.T, httpAddr string) nnStatus {
	t.Helper()
	code, body, err := call("GET", "http://"+httpAddr+"/status")
	if err != nil || code != 200 {
		t.Fatalf("GET /status: %d %v %s", code, err, body)
	}
	var st nnStatus
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("GET /status: %v: %s", err, body)
	}
	return st
}

func waitStatus(t *testing.T, httpAddr, what string, cond func(nnStatus) bool) nnStatus {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := getStatus(t, httpAddr)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %+v", what, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNamenodeWithDatanodes runs a namenode on PostgreSQL and three
// datanode processes: one started before the namenode (it registers once
// the namenode is up), one killed with SIGKILL (reported dead), and a
// second datanode on a running one's data directory (refused).
func TestNamenodeWithDatanodes(t *testing.T) {
	meta := daltest.PostgresURL(t)
	rpc := freeAddr(t)
	tmp := t.TempDir()
	dir := func(i int) string { return filepath.Join(tmp, fmt.Sprintf("dn%d", i)) }

	// dn0 starts first; its namenode is not up yet.
	dn0 := startDatanodeProc(t, "dn0", dir(0), rpc)

	nn := launch(t, "nn", "dfs", "namenode", "--meta", meta, "--http", "127.0.0.1:0", "--rpc", rpc,
		"--datanode-dead-after", "1s", "--maintenance-interval", "200ms")
	m := waitLine(t, nn, nnReadyRE)
	httpAddr := m[1]
	if m[2] != rpc {
		t.Fatalf("namenode RPC on %s, want %s", m[2], rpc)
	}
	dn1 := startDatanodeProc(t, "dn1", dir(1), rpc)
	dn2 := startDatanodeProc(t, "dn2", dir(2), rpc)

	st := waitStatus(t, httpAddr, "3 live datanodes", func(st nnStatus) bool {
		if st.Live != 3 || st.Dead != 0 || len(st.Datanodes) != 3 {
			return false
		}
		for _, d := range st.Datanodes {
			if d.Capacity <= 0 || d.Remaining <= 0 { // after the first heartbeat
				return false
			}
		}
		return true
	})
	if st.Backend != "postgres" || st.RPCAddr != rpc {
		t.Errorf("status %+v", st)
	}
	want := map[string]string{dn0.storageID: dn0.addr, dn1.storageID: dn1.addr, dn2.storageID: dn2.addr}
	for _, d := range st.Datanodes {
		if want[d.StorageID] != d.DataAddr || !d.Live || d.LastHeartbeatSeconds > 1 {
			t.Errorf("datanode %+v, want one of %v, live, recent", d, want)
		}
	}

	// A second datanode on dn1's data directory is refused.
	dup := launch(t, "dup", "dfs", "datanode", "--data", dir(1), "--namenode", rpc, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	select {
	case <-dup.done:
	case <-time.After(20 * time.Second):
		t.Fatal("a second datanode on dn1's --data still running")
	}
	if code := dup.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(dup.stderr.String(), "another datanode is running on --data") {
		t.Errorf("second datanode on dn1's --data: exit %d: %s", code, dup.stderr.String())
	}

	// dn2 killed: dead after --datanode-dead-after; the others stay live.
	dn2.cmd.Process.Signal(syscall.SIGKILL)
	<-dn2.done
	st = waitStatus(t, httpAddr, "dn2 dead", func(st nnStatus) bool { return st.Live == 2 && st.Dead == 1 })
	for _, d := range st.Datanodes {
		if d.Live == (d.StorageID == dn2.storageID) {
			t.Errorf("after killing dn2 (%s): %+v", dn2.storageID, d)
		}
	}

	// dn1 stops cleanly on SIGTERM.
	dn1.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-dn1.done:
	case <-time.After(20 * time.Second):
		t.Fatal("dn1 did not stop on SIGTERM")
	}
	if code := dn1.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("dn1 exit %d after SIGTERM: %s", code, dn1.stderr.String())
	}
}

func TestDatanodeUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--namenode", "127.0.0.1:8020"}, "--data DIR is required"},
		{[]string{"--data", t.TempDir()}, "--namenode HOST:PORT"},
		{[]string{"--data", t.TempDir(), "--namenode", " "}, "--namenode HOST:PORT"},
		{[]string{"--data", t.TempDir(), "--namenode", "127.0.0.1:8020,nn2"}, `"nn2" is not HOST:PORT`},
		{[]string{"--data", t.TempDir(), "--namenode", "127.0.0.1:8020", "--listen", "nowhere"}, "--listen"},
		{[]string{"--data", t.TempDir(), "--namenode", "127.0.0.1:8020", "--listen", "127.0.0.1:0", "--http", "nowhere"}, `--http "nowhere": want HOST:PORT or off`},
	} {
		p := launch(t, "usage", append([]string{"dfs", "datanode"}, c.args...)...)
		<-p.done
		if code := p.cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(p.stderr.String(), c.msg) {
			t.Errorf("%q: exit %d: %s, want 2 and %q", c.args, code, p.stderr.String(), c.msg)
		}
	}
}
