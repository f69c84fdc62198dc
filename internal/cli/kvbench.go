package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-dev/kura/kv/bench"
	"github.com/kura-dev/kura/kv/client"
	"github.com/kura-dev/kura/proto/kvpb"
)

// benchOpts are the flags of 'kura kv bench'.
type benchOpts struct {
	w               bench.Workload
	etcd            string
	redis           string
	peers           bool
	peersScript     string
	serializableToo bool
	markdown        bool
}

// The cluster 'kv bench' starts when no --endpoints are given.
const (
	benchNodes     = 3
	benchShards    = 8
	benchReplicas  = 3
	benchReadyWait = 90 * time.Second
	benchStopWait  = 15 * time.Second
)

func kvBench(e *env, f *kvFlags) *cobra.Command {
	o := &benchOpts{}
	c := &cobra.Command{
		Use:   "bench",
		Short: "Benchmark a kv cluster against etcd and Redis",
		Long: `bench runs the same key-value workload (kv/bench) against a kura kv cluster
and, to compare, against etcd and Redis, then prints one row per system:
throughput and p50/p99 latencies of reads and writes.

The kura cluster is the one at --endpoints; without --endpoints, bench starts
its own: 3 nodes of this binary ('kura kv serve', --shards 8 --replicas 3) on
free 127.0.0.1 ports in a temporary directory, waits until every shard has a
leader and 3 replicas and the leaderships are spread (each node leads its
share), and stops them at the end. Reads go through each
shard's leader (linearizable); --serializable-too adds a run with reads from
the nearest replica.

--etcd and --redis add running servers to the comparison; --peers instead
starts a 3-member etcd cluster and a Redis server (AOF fsynced every second)
with scripts/kv-peers.sh, found next to the binary or in the working
directory (or give --peers-script), and stops them at the end.

Each system is preloaded with every key (--preload) and then gets --ops
operations (or runs for --duration) from --concurrency goroutines, each
operation a read with probability --read-fraction, else a write of a
--value-size value, on keys drawn uniformly from --keys. Progress goes to
stderr, the table to stdout (--markdown for docs/benchmarks.md). A run with
failed operations still prints its table, then exits 1.`,
		Example: `  kura kv bench --peers
  kura kv bench --peers --read-fraction 0.95 --markdown
  kura kv bench --peers --read-fraction 0 --concurrency 64 --serializable-too
  kura kv bench --duration 30s --value-size 1024
  kura kv bench --etcd 127.0.0.1:2379 --redis 127.0.0.1:6379
  kura kv --endpoints 127.0.0.1:7401,127.0.0.1:7402 bench --ops 100000`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return runKVBench(c.Context(), e, f, o)
		},
	}
	fl := c.Flags()
	fl.IntVar(&o.w.Ops, "ops", 20000, "operations per system (ignored with --duration)")
	fl.DurationVar(&o.w.Duration, "duration", 0, "run each system for this long instead of --ops operations")
	fl.Float64Var(&o.w.ReadFraction, "read-fraction", 0.5, "fraction of operations that are reads (0 to 1)")
	fl.IntVar(&o.w.ValueSize, "value-size", 256, "bytes of every value written")
	fl.IntVar(&o.w.Concurrency, "concurrency", 32, "goroutines issuing operations")
	fl.IntVar(&o.w.Keys, "keys", 1000, "size of the key space")
	fl.BoolVar(&o.w.Preload, "preload", true, "write every key once before measuring, so reads hit")
	fl.StringVar(&o.etcd, "etcd", "", "also benchmark the etcd cluster at these comma-separated endpoints")
	fl.StringVar(&o.redis, "redis", "", "also benchmark the Redis server at HOST:PORT")
	fl.BoolVar(&o.peers, "peers", false, "start etcd and Redis with scripts/kv-peers.sh, benchmark them too, stop them at the end")
	fl.StringVar(&o.peersScript, "peers-script", "", "path of kv-peers.sh for --peers (default: found next to the binary or in the working directory)")
	fl.BoolVar(&o.serializableToo, "serializable-too", false, "also benchmark kura with serializable reads (nearest replica)")
	fl.BoolVar(&o.markdown, "markdown", false, "print a Markdown table instead of the plain one")
	return c
}

// validate checks the flags, naming the flag and its value.
func (o *benchOpts) validate(f *kvFlags) error {
	w := o.w
	switch {
	case w.Ops < 0:
		return usagef("kv bench: --ops %d: must be >= 0", w.Ops)
	case w.Duration < 0:
		return usagef("kv bench: --duration %v: must be >= 0", w.Duration)
	case w.Ops == 0 && w.Duration == 0:
		return usagef("kv bench: --ops 0 without --duration: say when to stop")
	case math.IsNaN(w.ReadFraction) || w.ReadFraction < 0 || w.ReadFraction > 1:
		return usagef("kv bench: --read-fraction %v: must be between 0 and 1", w.ReadFraction)
	case w.ValueSize < 1:
		return usagef("kv bench: --value-size %d: must be >= 1", w.ValueSize)
	case w.Concurrency < 1:
		return usagef("kv bench: --concurrency %d: must be >= 1", w.Concurrency)
	case w.Keys < 1:
		return usagef("kv bench: --keys %d: must be >= 1", w.Keys)
	case f.local != "":
		return usagef("kv bench: --local %q: bench measures a cluster: give --endpoints, or neither to let bench start one", f.local)
	case o.peers && (o.etcd != "" || o.redis != ""):
		return usagef("kv bench: --peers starts its own etcd and Redis: drop --etcd/--redis, or --peers")
	case o.peersScript != "" && !o.peers:
		return usagef("kv bench: --peers-script %q without --peers", o.peersScript)
	}
	if o.redis != "" {
		if _, _, err := net.SplitHostPort(o.redis); err != nil {
			return usagef("kv bench: --redis %q: want HOST:PORT", o.redis)
		}
	}
	if o.etcd != "" {
		if _, err := benchEndpoints("--etcd", o.etcd); err != nil {
			return err
		}
	}
	if f.endpoints != "" {
		if _, err := splitEndpoints(f.endpoints); err != nil {
			return err
		}
	}
	return nil
}

// benchEndpoints splits a comma-separated list of endpoints given to flag.
func benchEndpoints(flag, s string) ([]string, error) {
	var out []string
	for _, ep := range strings.Split(s, ",") {
		if ep = strings.TrimSpace(ep); ep == "" {
			continue
		}
		if !strings.Contains(ep, ":") {
			return nil, usagef("kv bench: %s %q: endpoint %q: want HOST:PORT or a URL", flag, s, ep)
		}
		out = append(out, ep)
	}
	if len(out) == 0 {
		return nil, usagef("kv bench: %s %q: no endpoint given", flag, s)
	}
	return out, nil
}

func runKVBench(ctx context.Context, e *env, f *kvFlags, o *benchOpts) (err error) {
	if err := o.validate(f); err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	fmt.Fprintf(e.stderr, "kv bench: workload: %s\n", describeWorkload(o.w))

	// Everything started here is stopped on the way out, even when ctx
	// was cancelled (Ctrl-C).
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()

	// Find the peers script before starting anything.
	var script string
	if o.peers {
		if script, err = findPeersScript(o.peersScript); err != nil {
			return err
		}
	}

	var kuraEPs []string
	if f.endpoints != "" {
		kuraEPs, _ = splitEndpoints(f.endpoints)
	} else {
		cl, cerr := startBenchCluster(ctx, e)
		if cl != nil {
			// err is the result of runKVBench: keep the logs of a failed run.
			cleanups = append(cleanups, func() { cl.stop(e, err != nil) })
		}
		if cerr != nil {
			return cerr
		}
		kuraEPs = cl.addrs
	}
	etcdEPs, redisAddr := []string(nil), o.redis
	if o.etcd != "" {
		etcdEPs, _ = benchEndpoints("--etcd", o.etcd)
	}
	if o.peers {
		p, err := startPeers(ctx, e, script)
		if p != nil {
			cleanups = append(cleanups, func() { p.stop(e) })
		}
		if err != nil {
			return err
		}
		etcdEPs, redisAddr = p.etcd, p.redis
	}

	type system struct {
		what string
		open func() (bench.Driver, error)
	}
	var systems []system
	if !f.serializable {
		systems = append(systems, system{"kura", func() (bench.Driver, error) { return bench.NewKura(kuraEPs, false) }})
	}
	if f.serializable || o.serializableToo {
		systems = append(systems, system{"kura-serializable", func() (bench.Driver, error) { return bench.NewKura(kuraEPs, true) }})
	}
	if len(etcdEPs) > 0 {
		systems = append(systems, system{"etcd", func() (bench.Driver, error) { return bench.NewEtcd(etcdEPs) }})
	}
	if redisAddr != "" {
		systems = append(systems, system{"redis", func() (bench.Driver, error) { return bench.NewRedis(redisAddr) }})
	}

	var results []bench.Result
	printResults := func() {
		if len(results) == 0 {
			return
		}
		if o.markdown {
			bench.FormatMarkdown(e.stdout, results)
		} else {
			bench.FormatTable(e.stdout, results)
		}
	}
	for _, s := range systems {
		d, err := s.open()
		if err != nil {
			printResults()
			return fmt.Errorf("kv bench: %s: %w", s.what, err)
		}
		res, err := bench.Run(ctx, d, o.w, e.stderr)
		d.Close()
		if err != nil {
			if res.Ops > 0 {
				results = append(results, res)
			}
			printResults()
			return fmt.Errorf("kv bench: %w", err)
		}
		results = append(results, res)
	}
	printResults()
	var failed []string
	for _, r := range results {
		if r.Errors > 0 {
			failed = append(failed, fmt.Sprintf("%s %d", r.Driver, r.Errors))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("kv bench: failed operations: %s (first errors under the table)", strings.Join(failed, ", "))
	}
	return nil
}

func describeWorkload(w bench.Workload) string {
	stop := fmt.Sprintf("%d ops", w.Ops)
	if w.Duration > 0 {
		stop = w.Duration.String()
	}
	return fmt.Sprintf("%s per system, read fraction %g, %d-byte values, %d goroutines, %d keys, preload %v",
		stop, w.ReadFraction, w.ValueSize, w.Concurrency, w.Keys, w.Preload)
}

// benchCluster is the kura cluster 'kv bench' runs as child processes.
type benchCluster struct {
	dir    string
	addrs  []string
	nodes  []*benchNode
	status *kvpb.StatusResponse // when it became ready
}

type benchNode struct {
	cmd    *exec.Cmd
	log    string
	exited chan struct{} // closed when the process has exited
	err    error         // its exit status, once exited is closed
}

// startBenchCluster starts benchNodes nodes of this binary on free ports,
// one after the other (each node waits for the previous one to be in the
// cluster: a node that joins while the first is still creating the cluster
// can be left out of it), and waits until every shard has a leader and
// benchReplicas replicas. It returns the cluster (to stop) even when it
// fails after starting processes.
func startBenchCluster(ctx context.Context, e *env) (*benchCluster, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("kv bench: locating this binary to start cluster nodes: %w", err)
	}
	addrs, err := freeAddrs(benchNodes)
	if err != nil {
		return nil, fmt.Errorf("kv bench: finding free ports: %w", err)
	}
	dir, err := os.MkdirTemp("", "kura-bench-cluster-")
	if err != nil {
		return nil, fmt.Errorf("kv bench: %w", err)
	}
	cl := &benchCluster{dir: dir, addrs: addrs}
	fmt.Fprintf(e.stderr, "kv bench: starting a %d-node kura cluster (%d shards, %d replicas) on %s in %s\n",
		benchNodes, benchShards, benchReplicas, strings.Join(addrs, ","), dir)
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, benchReadyWait)
	defer cancel()
	for i, addr := range addrs {
		name := fmt.Sprintf("node%d", i+1)
		args := []string{"kv", "serve", "--data", filepath.Join(dir, name), "--listen", addr,
			"--shards", fmt.Sprint(benchShards), "--replicas", fmt.Sprint(benchReplicas)}
		if i > 0 {
			args = append(args, "--join", addrs[0])
		}
		logPath := filepath.Join(dir, name+".log")
		lf, err := os.Create(logPath)
		if err != nil {
			return cl, fmt.Errorf("kv bench: %w", err)
		}
		cmd := exec.Command(exe, args...)
		cmd.Stdout, cmd.Stderr = lf, lf
		if err := cmd.Start(); err != nil {
			lf.Close()
			return cl, fmt.Errorf("kv bench: starting %s: %w", name, err)
		}
		lf.Close() // the child has its own descriptor
		n := &benchNode{cmd: cmd, log: logPath, exited: make(chan struct{})}
		go func() { n.err = cmd.Wait(); close(n.exited) }()
		cl.nodes = append(cl.nodes, n)

		want := i + 1
		ready := func(st *kvpb.StatusResponse) (bool, string) { return clusterHas(st, want) }
		if want == benchNodes {
			ready = clusterReady
		}
		if err := cl.waitFor(ctx, ready); err != nil {
			return cl, err
		}
	}
	fmt.Fprintf(e.stderr, "kv bench: cluster ready in %v; %s\n", time.Since(start).Round(time.Millisecond), leaderSpread(cl.status))
	return cl, nil
}

// freeAddrs returns n distinct 127.0.0.1 addresses nothing listens on now.
func freeAddrs(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// waitFor polls the status of the nodes started so far until ready holds,
// a node exits or ctx ends.
func (cl *benchCluster) waitFor(ctx context.Context, ready func(*kvpb.StatusResponse) (bool, string)) error {
	c, err := client.New(client.Config{Endpoints: cl.addrs[:len(cl.nodes)], Timeout: 3 * time.Second})
	if err != nil {
		return fmt.Errorf("kv bench: %w", err)
	}
	defer c.Close()
	last := "no status yet"
	for {
		for i, n := range cl.nodes {
			select {
			case <-n.exited:
				return fmt.Errorf("kv bench: cluster node%d exited (%v) before the cluster was ready:\n%s", i+1, n.err, tail(n.log, 20))
			default:
			}
		}
		st, err := c.Status(ctx)
		if err == nil {
			var ok bool
			if ok, last = ready(st); ok {
				cl.status = st
				return nil
			}
		} else {
			last = err.Error()
		}
		if err := waitCtx(ctx, 200*time.Millisecond); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("kv bench: the cluster was not ready after %v: %s (logs in %s)", benchReadyWait, last, cl.dir)
			}
			return fmt.Errorf("kv bench: waiting for the cluster: %w", err)
		}
	}
}

// clusterHas tells whether the cluster exists (every data shard has a
// leader) and has n reachable nodes; when not, it says what is missing.
func clusterHas(st *kvpb.StatusResponse, n int) (bool, string) {
	if st.ClusterId == "" || st.Shards == 0 {
		return false, "the cluster is not created yet"
	}
	if len(st.Nodes) < n {
		return false, fmt.Sprintf("%d of %d nodes joined", len(st.Nodes), n)
	}
	for _, n := range st.Nodes {
		if n.Error != "" {
			return false, fmt.Sprintf("node %x (%s): %s", n.Id, n.Addr, n.Error)
		}
	}
	leaders := shardLeaders(st)
	for sh := uint32(1); sh <= st.Shards; sh++ {
		if leaders[sh] == nil {
			return false, fmt.Sprintf("shard %d has no leader", sh)
		}
	}
	return true, ""
}

// clusterReady tells whether all benchNodes nodes are reachable and every
// data shard has a leader whose configuration has benchReplicas voters;
// when not, it says what is missing.
func clusterReady(st *kvpb.StatusResponse) (bool, string) {
	if ok, why := clusterHas(st, benchNodes); !ok {
		return false, why
	}
	leaders := shardLeaders(st)
	for sh := uint32(1); sh <= st.Shards; sh++ {
		if got := len(leaders[sh].Replicas); got != benchReplicas {
			return false, fmt.Sprintf("shard %d has %d of %d replicas", sh, got, benchReplicas)
		}
	}
	// The nodes spread the leaderships a few seconds after the start
	// (each leads its share): measure the steady state, not the moves.
	share := (int(st.Shards) + benchNodes - 1) / benchNodes
	leads := map[uint64]int{}
	for _, n := range st.Nodes {
		for _, s := range n.Shards {
			if s.Shard != 0 && s.State == "StateLeader" {
				leads[n.Id]++
			}
		}
	}
	for id, k := range leads {
		if k > share {
			return false, fmt.Sprintf("node %x leads %d shards, more than its share %d (leaders are being balanced)", id, k, share)
		}
	}
	return true, ""
}

// shardLeaders maps each data shard to its leader's view of it.
func shardLeaders(st *kvpb.StatusResponse) map[uint32]*kvpb.ShardStatus {
	leaders := map[uint32]*kvpb.ShardStatus{}
	for _, n := range st.Nodes {
		for _, s := range n.Shards {
			if s.Shard != 0 && s.State == "StateLeader" {
				leaders[s.Shard] = s
			}
		}
	}
	return leaders
}

// leaderSpread says how many shard leaders each node holds.
func leaderSpread(st *kvpb.StatusResponse) string {
	var parts []string
	for _, n := range st.Nodes {
		k := 0
		for _, s := range n.Shards {
			if s.Shard != 0 && s.State == "StateLeader" {
				k++
			}
		}
		parts = append(parts, fmt.Sprintf("%s %d", n.Addr, k))
	}
	sort.Strings(parts)
	return "shard leaders per node: " + strings.Join(parts, ", ")
}

// stop terminates the nodes (SIGTERM, then SIGKILL after benchStopWait)
// and removes the cluster's directory, unless keep (then it says where the
// logs are).
func (cl *benchCluster) stop(e *env, keep bool) {
	for _, n := range cl.nodes {
		if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			n.cmd.Process.Kill()
		}
	}
	for i, n := range cl.nodes {
		select {
		case <-n.exited:
		case <-time.After(benchStopWait):
			fmt.Fprintf(e.stderr, "kv bench: node%d still running %v after SIGTERM; killing it\n", i+1, benchStopWait)
			n.cmd.Process.Kill()
			<-n.exited
		}
	}
	if keep {
		fmt.Fprintf(e.stderr, "kv bench: cluster stopped; its data and logs are in %s\n", cl.dir)
		return
	}
	os.RemoveAll(cl.dir)
	fmt.Fprintf(e.stderr, "kv bench: cluster stopped\n")
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// findPeersScript returns the path of kv-peers.sh: the given one, else
// scripts/kv-peers.sh in the binary's directory or one of its parents (bin/
// of a checkout), else in the working directory or one of its parents.
func findPeersScript(given string) (string, error) {
	if given != "" {
		if fi, err := os.Stat(given); err != nil || fi.IsDir() {
			return "", usagef("kv bench: --peers-script %q: not a file", given)
		}
		return given, nil
	}
	var roots []string
	if exe, err := os.Executable(); err == nil {
		if r, err := filepath.EvalSymlinks(exe); err == nil {
			exe = r
		}
		roots = append(roots, filepath.Dir(exe))
	}
	if wd, err := os.Getwd(); err == nil {
		roots = append(roots, wd)
	}
	var tried []string
	for _, root := range roots {
		for dir, up := root, 0; up < 4; up++ {
			p := filepath.Join(dir, "scripts", "kv-peers.sh")
			tried = append(tried, p)
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				return p, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", usagef("kv bench: --peers: scripts/kv-peers.sh not found (tried %s): give its path with --peers-script PATH", strings.Join(tried, ", "))
}

// benchPeers are the etcd and Redis that kv-peers.sh started.
type benchPeers struct {
	script string
	dir    string
	etcd   []string
	redis  string
}

// startPeers runs 'kv-peers.sh start DIR' in a new temporary directory. It
// returns the peers (to stop) even when start fails: the script may have
// left something running.
func startPeers(ctx context.Context, e *env, script string) (*benchPeers, error) {
	dir, err := os.MkdirTemp("", "kura-bench-peers-")
	if err != nil {
		return nil, fmt.Errorf("kv bench: %w", err)
	}
	p := &benchPeers{script: script, dir: dir}
	fmt.Fprintf(e.stderr, "kv bench: starting etcd and Redis: bash %s start %s\n", script, dir)
	cmd := exec.CommandContext(ctx, "bash", script, "start", dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, e.stderr
	if err := cmd.Run(); err != nil {
		return p, fmt.Errorf("kv bench: %s start: %w", script, err)
	}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "ETCD":
			for _, ep := range strings.Split(v, ",") {
				if ep = strings.TrimSpace(ep); ep != "" {
					p.etcd = append(p.etcd, ep)
				}
			}
		case "REDIS":
			p.redis = strings.TrimSpace(v)
		}
	}
	if len(p.etcd) == 0 || p.redis == "" {
		return p, fmt.Errorf("kv bench: %s start printed %q, want ETCD=... and REDIS=... lines", script, out.String())
	}
	return p, nil
}

// stop runs 'kv-peers.sh stop DIR' (whatever happened to the bench's
// context) and removes DIR.
func (p *benchPeers) stop(e *env) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", p.script, "stop", p.dir)
	cmd.Stdout, cmd.Stderr = e.stderr, e.stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(e.stderr, "kv bench: %s stop %s: %v; etcd or Redis may still be running\n", p.script, p.dir, err)
		return
	}
	os.RemoveAll(p.dir)
}
