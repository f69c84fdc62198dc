// Package e2e tests the replicated kv cluster end to end with real
// processes: `kura kv serve` nodes built from this tree, driven through the
// kura CLI and the Go client (kv/client), with faults injected by SIGKILL
// and by the nodes' test-only fault injection (--fault-injection). Every
// test checks that acknowledged writes survive; TestLinearizable checks a
// whole concurrent history with porcupine (kv/lincheck).
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kura-dev/kura/internal/testbin"
	"github.com/kura-dev/kura/kv/client"
	"github.com/kura-dev/kura/proto/kvpb"
)

var kuraBin string

func TestMain(m *testing.M) { testbin.Main(m, &kuraBin) }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is one run of a kura process.
type proc struct {
	cmd  *exec.Cmd
	out  *lockedBuffer // stdout
	log  *os.File      // stderr (the node's log), appended across runs
	done chan struct{}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// node is one `kura kv serve` of a test cluster, restartable on the same
// data directory and address.
type node struct {
	t     *testing.T
	name  string
	dir   string
	addr  string
	flags []string // serve flags besides --data and --listen
	logf  string
	id    uint64
	p     *proc
}

var readyRE = regexp.MustCompile(`kv node ([0-9a-f]+) serving on`)

// launch starts the node's process without waiting for it.
func (n *node) launch() *proc {
	n.t.Helper()
	args := append([]string{"kv", "serve", "--data", n.dir, "--listen", n.addr}, n.flags...)
	lf, err := os.OpenFile(n.logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	fmt.Fprintf(lf, "==== %s: kura %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	p := &proc{cmd: exec.Command(kuraBin, args...), out: &lockedBuffer{}, log: lf, done: make(chan struct{})}
	p.cmd.Stdout = p.out
	p.cmd.Stderr = lf
	// Should the test binary die without running its cleanups (a test
	// timeout), take the node with it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		lf.Close()
		n.t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	n.t.Cleanup(p.kill)
	n.p = p
	return p
}

// start starts the node and waits until it serves.
func (n *node) start() {
	n.t.Helper()
	n.launch()
	n.waitServing()
}

// waitServing waits until the launched node serves.
func (n *node) waitServing() {
	n.t.Helper()
	p := n.p
	deadline := time.Now().Add(90 * time.Second)
	for {
		if m := readyRE.FindStringSubmatch(p.out.String()); m != nil {
			id, err := strconv.ParseUint(m[1], 16, 64)
			if err != nil {
				n.t.Fatalf("%s: bad node id in %q", n.name, m[0])
			}
			if n.id != 0 && n.id != id {
				n.t.Fatalf("%s: restarted with id %x, was %x", n.name, id, n.id)
			}
			n.id = id
			return
		}
		if p.exited() {
			n.t.Fatalf("%s exited before serving (%v):\n%s\n%s", n.name, p.cmd.ProcessState, p.out.String(), n.logTail(40))
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s not serving after 90s:\n%s", n.name, n.logTail(40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *node) running() bool { return n.p != nil && !n.p.exited() }

// kill SIGKILLs the node.
func (n *node) kill() {
	n.t.Logf("SIGKILL %s (%x)", n.name, n.id)
	n.p.kill()
}

// stop SIGTERMs the node and waits for a clean exit.
func (n *node) stop() {
	n.t.Helper()
	n.p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.p.done:
	case <-time.After(30 * time.Second):
		n.t.Fatalf("%s did not stop on SIGTERM:\n%s", n.name, n.logTail(40))
	}
	if code := n.p.cmd.ProcessState.ExitCode(); code != 0 {
		n.t.Fatalf("%s exited %d on SIGTERM:\n%s", n.name, code, n.logTail(40))
	}
}

func (n *node) logTail(lines int) string {
	b, _ := os.ReadFile(n.logf)
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return fmt.Sprintf("--- last %d lines of %s's log (%s):\n%s", len(all), n.name, n.logf, strings.Join(all, "\n"))
}

// cluster is a test cluster of nodes on this machine.
type cluster struct {
	t        *testing.T
	shards   int
	replicas int
	nodes    []*node
}

type clusterOpts struct {
	nodes, shards, replicas int
	extra                   []string // flags for every node
	// together launches every node at once (joiners race the bootstrap)
	// instead of one after the other.
	together bool
}

// newCluster starts o.nodes nodes (the first creates the cluster, the
// others join it) and waits until every shard is fully replicated.
func newCluster(t *testing.T, o clusterOpts) *cluster {
	t.Helper()
	c := &cluster{t: t, shards: o.shards, replicas: min(o.replicas, o.nodes)}
	base := t.TempDir()
	for i := 0; i < o.nodes; i++ {
		n := &node{t: t, name: fmt.Sprintf("node%d", i+1), dir: filepath.Join(base, fmt.Sprintf("n%d", i+1)),
			addr: freeAddr(t), logf: filepath.Join(base, fmt.Sprintf("n%d.log", i+1))}
		n.flags = append(n.flags, o.extra...)
		if i == 0 {
			n.flags = append(n.flags, "--shards", strconv.Itoa(o.shards), "--replicas", strconv.Itoa(o.replicas))
		} else {
			n.flags = append(n.flags, "--join", c.nodes[0].addr)
		}
		c.nodes = append(c.nodes, n)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range c.nodes {
				t.Log(n.logTail(30))
			}
		}
	})
	if o.together {
		for _, n := range c.nodes {
			n.launch()
		}
	}
	for _, n := range c.nodes {
		if o.together {
			n.waitServing()
		} else {
			n.start()
		}
	}
	c.waitHealthy(120 * time.Second)
	return c
}

func (c *cluster) addrs(nodes ...*node) []string {
	if len(nodes) == 0 {
		nodes = c.nodes
	}
	var out []string
	for _, n := range nodes {
		out = append(out, n.addr)
	}
	return out
}

func (c *cluster) byID(id uint64) *node {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

func (c *cluster) others(x *node) []*node {
	var out []*node
	for _, n := range c.nodes {
		if n != x {
			out = append(out, n)
		}
	}
	return out
}

func (c *cluster) running() []*node {
	var out []*node
	for _, n := range c.nodes {
		if n.running() {
			out = append(out, n)
		}
	}
	return out
}

// client returns a Go client of the given nodes (default: all), closed
// when the test ends.
func (c *cluster) client(timeout time.Duration, serializable bool, nodes ...*node) *client.Client {
	c.t.Helper()
	return newClient(c.t, c.addrs(nodes...), timeout, serializable)
}

func newClient(t *testing.T, eps []string, timeout time.Duration, serializable bool) *client.Client {
	t.Helper()
	cl, err := client.New(client.Config{Endpoints: eps, Timeout: timeout, Serializable: serializable})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// status asks the running nodes for the cluster's status.
func (c *cluster) status() (*kvpb.StatusResponse, error) {
	run := c.running()
	if len(run) == 0 {
		return nil, errors.New("no node running")
	}
	cl, err := client.New(client.Config{Endpoints: c.addrs(run...), Timeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	return cl.Status(context.Background())
}

// leaderOf returns the node that leads shard sh, as its own status says.
func (c *cluster) leaderOf(sh uint32) (*node, error) {
	st, err := c.status()
	if err != nil {
		return nil, err
	}
	for _, ns := range st.Nodes {
		if ns.Error != "" {
			continue
		}
		for _, ss := range ns.Shards {
			if ss.Shard == sh && ss.State == "StateLeader" {
				if n := c.byID(ns.Id); n != nil {
					return n, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("shard %d has no leader:\n%s", sh, describe(st))
}

// waitLeader waits for shard sh to have a leader (other than not, if set).
func (c *cluster) waitLeader(sh uint32, not *node, timeout time.Duration) *node {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		l, err := c.leaderOf(sh)
		if err == nil && l != not {
			return l
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("shard %d: no new leader after %v: %v", sh, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// healthy tells whether every node answers, every shard (and the cluster
// map, group 0) has a leader with the full set of replicas, no replica
// lags behind the leader's commit, and every replica applied it.
func (c *cluster) healthy(st *kvpb.StatusResponse) error {
	if len(st.Nodes) != len(c.nodes) {
		return fmt.Errorf("%d nodes in the map, want %d", len(st.Nodes), len(c.nodes))
	}
	byShard := map[uint32]map[uint64]*kvpb.ShardStatus{}
	for _, ns := range st.Nodes {
		if ns.Error != "" {
			return fmt.Errorf("node %x: %s", ns.Id, ns.Error)
		}
		for _, ss := range ns.Shards {
			if byShard[ss.Shard] == nil {
				byShard[ss.Shard] = map[uint64]*kvpb.ShardStatus{}
			}
			byShard[ss.Shard][ns.Id] = ss
		}
	}
	for sh := uint32(0); sh <= uint32(c.shards); sh++ {
		want := c.replicas
		if sh == 0 {
			want = len(c.nodes)
		}
		var lead *kvpb.ShardStatus
		var leadID uint64
		for id, ss := range byShard[sh] {
			if ss.State == "StateLeader" {
				if lead != nil {
					return fmt.Errorf("shard %d: two leaders", sh)
				}
				lead, leadID = ss, id
			}
		}
		if lead == nil {
			return fmt.Errorf("shard %d: no leader", sh)
		}
		if len(lead.Replicas) != want {
			return fmt.Errorf("shard %d: %d replicas, want %d", sh, len(lead.Replicas), want)
		}
		if len(lead.Lag) != want-1 {
			return fmt.Errorf("shard %d: leader tracks %d followers, want %d", sh, len(lead.Lag), want-1)
		}
		for id, lag := range lead.Lag {
			if lag != 0 {
				return fmt.Errorf("shard %d: replica %x lags %d", sh, id, lag)
			}
		}
		for _, id := range lead.Replicas {
			ss := byShard[sh][id]
			if ss == nil {
				return fmt.Errorf("shard %d: replica %x does not run it", sh, id)
			}
			if ss.Leader != leadID {
				return fmt.Errorf("shard %d: replica %x follows %x, not %x", sh, id, ss.Leader, leadID)
			}
			if ss.Applied < lead.Commit {
				return fmt.Errorf("shard %d: replica %x applied %d < commit %d", sh, id, ss.Applied, lead.Commit)
			}
		}
	}
	return nil
}

// waitHealthy waits (bounded) until the cluster is healthy.
func (c *cluster) waitHealthy(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := c.status()
		if err == nil {
			if err = c.healthy(st); err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("cluster not healthy after %v: %v\n%s", timeout, err, describe(st))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func describe(st *kvpb.StatusResponse) string {
	if st == nil {
		return "(no status)"
	}
	var b strings.Builder
	for _, ns := range st.Nodes {
		fmt.Fprintf(&b, "node %x %s", ns.Id, ns.Addr)
		if ns.Error != "" {
			fmt.Fprintf(&b, " ERROR %s\n", ns.Error)
			continue
		}
		b.WriteString("\n")
		sort.Slice(ns.Shards, func(i, j int) bool { return ns.Shards[i].Shard < ns.Shards[j].Shard })
		for _, ss := range ns.Shards {
			fmt.Fprintf(&b, "  shard %d %s leader=%x term=%d commit=%d applied=%d replicas=%x lag=%v\n",
				ss.Shard, ss.State, ss.Leader, ss.Term, ss.Commit, ss.Applied, ss.Replicas, ss.Lag)
		}
	}
	return b.String()
}

// shardOf is the shard a key maps to: the same hash as the server's
// (kv/server Node.shardOf). TestThreeNodeFailover checks it against the
// cluster's own commit indexes.
func shardOf(key string, shards int) uint32 {
	return uint32(xxhash.Sum64String(key)%uint64(shards)) + 1
}

// keysOnShard returns n keys with prefix that map to shard sh.
func keysOnShard(prefix string, sh uint32, shards, n int) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		k := fmt.Sprintf("%s%d", prefix, i)
		if shardOf(k, shards) == sh {
			out = append(out, k)
		}
	}
	return out
}

// fault injection

func injectFault(t *testing.T, n *node, isolate []uint64) {
	t.Helper()
	conn, err := grpc.NewClient(n.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var last error
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, last = kvpb.NewPeerClient(conn).InjectFault(ctx, &kvpb.FaultRequest{Isolate: isolate})
		cancel()
		if last == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("inject fault on %s: %v", n.name, last)
}

// partition cuts x off from every other node (both directions).
func (c *cluster) partition(x *node) {
	c.t.Helper()
	c.t.Logf("partition %s (%x) from the others", x.name, x.id)
	var ids []uint64
	for _, o := range c.others(x) {
		ids = append(ids, o.id)
	}
	injectFault(c.t, x, ids)
	for _, o := range c.others(x) {
		if o.running() {
			injectFault(c.t, o, []uint64{x.id})
		}
	}
}

// heal removes every injected fault on the running nodes.
func (c *cluster) heal() {
	c.t.Helper()
	c.t.Log("heal all partitions")
	for _, n := range c.running() {
		injectFault(c.t, n, nil)
	}
}

// run runs the kura CLI and returns its stdout, stderr and exit code.
func run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(kuraBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Stdin = strings.NewReader(stdin)
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("kura %s: still running after 60s", strings.Join(args, " "))
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}
