package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kura-dev/kura/kv/client"
	"github.com/kura-dev/kura/proto/kvpb"
)

// watcher is one run of `kura kv --endpoints ... watch --plugin ...`.
type watcher struct {
	p   *proc
	err *lockedBuffer // its stderr (the runner's and the watch's logs)
}

func startWatcher(t *testing.T, logf string, args ...string) *watcher {
	t.Helper()
	lf, err := os.OpenFile(logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(lf, "==== %s: kura %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	w := &watcher{err: &lockedBuffer{}}
	p := &proc{cmd: exec.Command(kuraBin, args...), out: &lockedBuffer{}, log: lf, done: make(chan struct{})}
	p.cmd.Stdout = p.out
	p.cmd.Stderr = teeWriter{w.err, lf}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		lf.Close()
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	w.p = p
	return w
}

type teeWriter struct{ a, b io.Writer }

func (t teeWriter) Write(p []byte) (int, error) {
	t.a.Write(p)
	return t.b.Write(p)
}

var streamRE = regexp.MustCompile(`msg="watch stream opened" endpoint=(\S+)`)

// endpoint waits until the watcher streams from a node and returns its
// address (the latest one, after reconnects).
func (w *watcher) endpoint(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := streamRE.FindAllStringSubmatch(w.err.String(), -1); m != nil {
			return m[len(m)-1][1]
		}
		if w.p.exited() || time.Now().After(deadline) {
			t.Fatalf("watcher never opened a stream:\n%s", w.err.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// outLine is one line the plugin wrote.
type outLine struct {
	start int // pid of a plugin instance starting (a segment marker), or 0
	shard uint32
	seq   uint64
	op    string
	key   string
	bad   string // a line that is not JSON (a partial line), or ""
}

// readOut parses the plugin's output file; a last line without its newline
// is left out (the plugin is still writing it).
func readOut(t *testing.T, path string) []outLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	s := string(b)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	} else {
		s = ""
	}
	var out []outLine
	for _, l := range strings.Split(s, "\n") {
		if l == "" {
			continue
		}
		var v struct {
			Start int    `json:"start"`
			Shard uint32 `json:"shard"`
			Seq   uint64 `json:"seq"`
			Op    string `json:"op"`
			Key   string `json:"key"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			out = append(out, outLine{bad: l})
			continue
		}
		out = append(out, outLine{start: v.Start, shard: v.Shard, seq: v.Seq, op: v.Op, key: v.Key})
	}
	return out
}

func keysIn(lines []outLine, prefix string) map[string]bool {
	keys := map[string]bool{}
	for _, l := range lines {
		if l.op == "set" && strings.HasPrefix(l.key, prefix) {
			keys[l.key] = true
		}
	}
	return keys
}

func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// A zombie (state Z) has exited.
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] == "Z"
}

// TestClusterWatchPlugin: `kura kv watch --plugin` on a 3-node cluster while
// keys are written across every shard; the watcher is SIGKILLed and
// restarted, then the node it streams from is SIGKILLed. The plugin's
// output holds every change (every key written), in order per shard within
// each plugin instance; the only duplicates are lines a killed instance had
// taken but not yet committed, replayed at the start of the next instance;
// and after a clean stop the cursor file holds the last seq of each shard.
func TestClusterWatchPlugin(t *testing.T) {
	const n = 300
	const prefix = "pk/"
	c := newCluster(t, clusterOpts{nodes: 3, shards: 4, replicas: 3})
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	cursor := filepath.Join(dir, "w.cursor")
	logf := filepath.Join(dir, "watch.log")
	// Each plugin instance first writes a marker with its pid (exec keeps
	// it), on a line of its own should a killed instance have left half a
	// line.
	script := fmt.Sprintf(`printf '\n{"start":%%d}\n' $$ >> %q; exec cat >> %q`, out, out)
	args := []string{"kv", "--endpoints", strings.Join(c.addrs(), ","), "watch", "--plugin", script, "--cursor-file", cursor}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logf)
			t.Logf("watcher log:\n%s", b)
		}
	})

	cl := c.client(20*time.Second, false)
	var acked atomic.Int64
	write := func(from, to int) chan error {
		done := make(chan error, 1)
		go func() {
			ctx := context.Background()
			for i := from; i < to; i++ {
				k := fmt.Sprintf("%s%03d", prefix, i)
				deadline := time.Now().Add(30 * time.Second)
				for {
					err := cl.Set(ctx, []byte(k), []byte(fmt.Sprintf("v%d", i)), 0)
					if err == nil {
						break
					}
					if time.Now().After(deadline) {
						done <- fmt.Errorf("set %s: %v", k, err)
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
				acked.Add(1)
				time.Sleep(3 * time.Millisecond)
			}
			done <- nil
		}()
		return done
	}
	waitKeys := func(atLeast int, what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for len(keysIn(readOut(t, out), prefix)) < atLeast {
			if time.Now().After(deadline) {
				t.Fatalf("%s: plugin output has %d keys after 20s, want %d (%d writes acknowledged)", what, len(keysIn(readOut(t, out), prefix)), atLeast, acked.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// Run 1, killed midway.
	w := startWatcher(t, logf, args...)
	first := w.endpoint(t)
	t.Logf("watcher 1 streams from %s", first)
	done := write(0, n/2)
	waitKeys(n/6, "run 1")
	t.Logf("SIGKILL watcher 1 (%d keys acknowledged)", acked.Load())
	w.p.kill()
	// Its plugin reads what is left in its stdin and exits: wait for it,
	// so that the next instance's lines follow its own.
	lines := readOut(t, out)
	pid := 0
	for _, l := range lines {
		if l.start != 0 {
			pid = l.start
		}
	}
	if pid == 0 {
		t.Fatal("no plugin start marker in the output")
	}
	for deadline := time.Now().Add(10 * time.Second); !processGone(pid); {
		if time.Now().After(deadline) {
			t.Fatalf("plugin %d still running 10s after its watcher was killed", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Run 2: the node it streams from is killed midway.
	w = startWatcher(t, logf, args...)
	ep := w.endpoint(t)
	var victim *node
	for _, nd := range c.nodes {
		if nd.addr == ep {
			victim = nd
		}
	}
	if victim == nil {
		t.Fatalf("watcher streams from %s, not a node of the cluster", ep)
	}
	done = write(n/2, n)
	waitKeys(n/2+n/6, "run 2")
	victim.kill()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The reconnect is logged before events flow again: wait for it.
	for deadline := time.Now().Add(20 * time.Second); w.endpoint(t) == ep; {
		if time.Now().After(deadline) {
			t.Fatalf("watcher 2 did not reopen its stream after %s died", ep)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("watcher 2 moved from %s to %s", ep, w.endpoint(t))

	// Every change of the test's keys, from the cluster itself.
	truth := map[uint32]map[uint64]string{}
	{
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		seen := map[string]bool{}
		rc := newClient(t, c.addrs(c.running()...), 10*time.Second, false)
		err := rc.Follow(ctx, client.FollowConfig{Prefix: []byte(prefix), FromOldest: true}, func(ev *kvpb.Event) error {
			if truth[ev.Shard] == nil {
				truth[ev.Shard] = map[uint64]string{}
			}
			truth[ev.Shard][ev.Seq] = string(ev.Key)
			if ev.Op == "set" {
				seen[string(ev.Key)] = true
			}
			if len(seen) == n {
				cancel()
			}
			return nil
		})
		cancel()
		if len(seen) != n {
			t.Fatalf("the cluster's own change stream has %d of %d keys: %v", len(seen), n, err)
		}
	}
	// Wait until the plugin has them all, then stop the watcher cleanly.
	deadline := time.Now().Add(20 * time.Second)
	for {
		lines = readOut(t, out)
		got := map[[2]uint64]bool{}
		for _, l := range lines {
			got[[2]uint64{uint64(l.shard), l.seq}] = true
		}
		var missing []string
		for sh, seqs := range truth {
			for seq, k := range seqs {
				if !got[[2]uint64{uint64(sh), seq}] {
					missing = append(missing, fmt.Sprintf("%d:%d(%s)", sh, seq, k))
				}
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			sort.Strings(missing)
			t.Fatalf("plugin output misses %d changes after 20s: %v", len(missing), missing[:min(len(missing), 20)])
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.p.done:
	case <-time.After(15 * time.Second):
		t.Fatal("watcher did not stop on SIGTERM")
	}
	if code := w.p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("watcher exited %d on SIGTERM", code)
	}
	lines = readOut(t, out)

	// Check the output: segments (one per plugin instance) are in order per
	// shard; a change seen in an earlier segment may only come again at the
	// start of a later one (per shard), before any new change of that shard.
	if k := keysIn(lines, prefix); len(k) != n {
		t.Fatalf("plugin output has %d distinct keys, want %d", len(k), n)
	}
	seen := map[[2]uint64]bool{}
	maxSeq := map[uint32]uint64{}
	segments, dups, partial := 0, 0, 0
	var last map[uint32]uint64 // per shard, last seq of this segment
	var fresh map[uint32]bool  // per shard: a new change came in this segment
	for i, l := range lines {
		switch {
		case l.start != 0:
			segments++
			last, fresh = map[uint32]uint64{}, map[uint32]bool{}
			continue
		case l.bad != "":
			if i+1 >= len(lines) || lines[i+1].start == 0 {
				t.Fatalf("line %d: not JSON and not cut short by a plugin's death: %q", i+1, l.bad)
			}
			partial++
			continue
		case last == nil:
			t.Fatalf("line %d: a change before the first start marker", i+1)
		}
		if s, ok := last[l.shard]; ok && l.seq <= s {
			t.Fatalf("line %d, segment %d: shard %d seq %d after %d", i+1, segments, l.shard, l.seq, s)
		}
		last[l.shard] = l.seq
		id := [2]uint64{uint64(l.shard), l.seq}
		if seen[id] {
			if fresh[l.shard] {
				t.Fatalf("line %d, segment %d: shard %d seq %d again after new changes", i+1, segments, l.shard, l.seq)
			}
			dups++
		} else {
			fresh[l.shard] = true
		}
		seen[id] = true
		maxSeq[l.shard] = max(maxSeq[l.shard], l.seq)
	}
	t.Logf("%d lines, %d plugin instances, %d duplicates, %d partial lines", len(lines), segments, dups, partial)
	if segments != 2 {
		t.Fatalf("%d plugin instances, want 2 (one per watcher run; the node's death must not restart the plugin)", segments)
	}
	if dups > n/4 {
		t.Fatalf("%d duplicates: more than the lines in flight when the watcher was killed could explain", dups)
	}

	// After a clean stop, the cursors are the last seq of each shard.
	b, err := os.ReadFile(cursor)
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint32]uint64{}
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		sh, seq, _ := strings.Cut(l, ":")
		a, _ := strconv.ParseUint(sh, 10, 32)
		s, _ := strconv.ParseUint(seq, 10, 64)
		got[uint32(a)] = s
	}
	if fmt.Sprint(got) != fmt.Sprint(maxSeq) {
		t.Fatalf("cursor file after a clean stop: %v, want the last seq of each shard %v\n%s", got, maxSeq, b)
	}
}

// TestClusterWatchPrintSurvivesNodeDeath: plain `kura kv watch` in a
// cluster keeps printing after the node it streams from is SIGKILLed,
// resuming after the last line printed: every change once, in order.
func TestClusterWatchPrintSurvivesNodeDeath(t *testing.T) {
	const n = 100
	c := newCluster(t, clusterOpts{nodes: 3, shards: 4, replicas: 3})
	dir := t.TempDir()
	w := startWatcher(t, filepath.Join(dir, "watch.log"), "kv", "--endpoints", strings.Join(c.addrs(), ","), "watch", "--prefix", "pp/", "--from-oldest")
	cl := c.client(20*time.Second, false)
	set := func(i int) {
		t.Helper()
		k := fmt.Sprintf("pp/%03d", i)
		if err := cl.Set(context.Background(), []byte(k), []byte("v"), 0); err != nil {
			t.Fatalf("set %s: %v", k, err)
		}
	}
	count := func() (int, []string) {
		ls := strings.Split(strings.TrimSuffix(w.p.out.String(), "\n"), "\n")
		if len(ls) == 1 && ls[0] == "" {
			return 0, nil
		}
		return len(ls), ls
	}
	waitLines := func(want int) []string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			got, ls := count()
			if got >= want {
				return ls
			}
			if w.p.exited() || time.Now().After(deadline) {
				t.Fatalf("watch printed %d lines, want %d:\n%s", got, want, w.err.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for i := 0; i < n/2; i++ {
		set(i)
	}
	waitLines(n / 2)
	ep := w.endpoint(t)
	for _, nd := range c.nodes {
		if nd.addr == ep {
			nd.kill()
		}
	}
	for i := n / 2; i < n; i++ {
		set(i)
	}
	// A set retried by the client may be applied twice: n lines or more.
	waitLines(n)
	time.Sleep(300 * time.Millisecond) // a duplicate would show up now
	_, ls := count()
	last := map[uint32]uint64{}
	keys := map[string]bool{}
	for _, l := range ls {
		var v struct {
			Shard uint32 `json:"shard"`
			Seq   uint64 `json:"seq"`
			Key   string `json:"key"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if v.Seq <= last[v.Shard] {
			t.Fatalf("shard %d: seq %d after %d (a duplicate or out of order)", v.Shard, v.Seq, last[v.Shard])
		}
		last[v.Shard] = v.Seq
		keys[v.Key] = true
	}
	if len(keys) != n {
		t.Fatalf("%d distinct keys printed, want %d", len(keys), n)
	}
	if !strings.Contains(w.err.String(), "watch resumed") {
		t.Fatalf("no reconnect logged:\n%s", w.err.String())
	}
}
