package e2e

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kura-dev/kura/store"
)

// TestSingleNodeCLI drives every op family of the kura CLI against a
// one-node cluster (--endpoints), checks outputs and exit codes, rejects an
// oversized value, and finds everything again after a restart.
func TestSingleNodeCLI(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 1, shards: 4, replicas: 1})
	n := c.nodes[0]
	ep := "--endpoints=" + n.addr

	// kv runs `kura kv --endpoints ADDR args...` and wants exit code want.
	kv := func(want int, args ...string) (string, string) {
		t.Helper()
		out, errOut, code := run(t, "", append([]string{"kv", ep}, args...)...)
		if code != want {
			t.Fatalf("kura kv %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errOut)
		}
		return out, errOut
	}
	expect := func(want string, args ...string) {
		t.Helper()
		if out, _ := kv(0, args...); out != want {
			t.Fatalf("kura kv %s: got %q, want %q", strings.Join(args, " "), out, want)
		}
	}

	// plain values
	kv(0, "set", "greeting", "hello")
	expect("hello\n", "get", "greeting")
	expect("hello", "get", "greeting", "--raw")
	out, _, code := run(t, "from stdin\x00binary", "kv", ep, "set", "blob", "-")
	if code != 0 {
		t.Fatalf("set blob -: exit %d: %s", code, out)
	}
	expect("from stdin\x00binary", "get", "blob", "--raw")
	if _, errOut := kv(1, "get", "nosuchkey"); !strings.Contains(errOut, "not found") {
		t.Fatalf("get of a missing key: stderr %q does not say not found", errOut)
	}
	kv(0, "set", "doomed", "x")
	kv(0, "del", "doomed")
	kv(1, "get", "doomed")
	kv(1, "del", "doomed")

	// scan
	for _, k := range []string{"user/c", "user/a", "user/b"} {
		kv(0, "set", k, "v-"+k)
	}
	expect("user/a\tv-user/a\nuser/b\tv-user/b\nuser/c\tv-user/c\n", "scan", "--prefix", "user/")
	expect("user/a\nuser/b\nuser/c\n", "scan", "--prefix", "user/", "--keys-only")
	if out, errOut := kv(0, "scan", "--prefix", "user/", "--keys-only", "--limit", "2"); out != "user/a\nuser/b\n" || !strings.Contains(errOut, "--after") {
		t.Fatalf("scan --limit 2: stdout %q stderr %q", out, errOut)
	}
	expect("user/c\n", "scan", "--prefix", "user/", "--keys-only", "--after", "user/b")

	// attrs
	out, _ = kv(0, "attrs", "greeting")
	for _, re := range []string{`(?m)^size: 5$`, `(?m)^expires: never$`, `(?m)^encrypted: false$`, `(?m)^subkeys: 0$`, `(?m)^modified: \d{4}-`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Fatalf("attrs greeting: %q does not match %s", out, re)
		}
	}
	kv(1, "attrs", "nosuchkey")

	// subkeys
	kv(0, "set", "users", "the users")
	kv(0, "subkey", "set", "users", "alice", `{"uid":1001}`)
	kv(0, "subkey", "set", "users", "bob", `{"uid":1002}`)
	expect("alice\nbob\n", "subkey", "list", "users")
	expect("{\"uid\":1001}\n", "get", "alice")
	out, _ = kv(0, "attrs", "users")
	if !strings.Contains(out, "subkeys: 2\n") {
		t.Fatalf("attrs users: %q, want 2 subkeys", out)
	}
	kv(0, "subkey", "del", "users", "alice")
	expect("bob\n", "subkey", "list", "users")
	kv(1, "get", "alice")
	kv(1, "subkey", "del", "users", "alice")

	// plain queue
	expect("0\n", "queue", "len", "jobs")
	for _, j := range []string{"job-1", "job-2", "job-3", "job-4", "job-5"} {
		kv(0, "queue", "push", "jobs", j)
	}
	expect("5\n", "queue", "len", "jobs")
	expect("job-1\n", "queue", "peek", "jobs")
	expect("job-5\n", "queue", "peek", "jobs", "--lifo")
	expect("job-1\n", "queue", "pop", "jobs")
	expect("job-5\n", "queue", "pop", "jobs", "--lifo")
	expect("1\n", "queue", "remove", "jobs", "1")
	expect("2\n", "queue", "len", "jobs")
	expect("job-3\n", "queue", "pop", "jobs")
	kv(0, "queue", "push", "jobs", "job-6")
	// keyed queue
	kv(0, "queue", "push", "--keyed", "mail", "msg-17", "hello")
	kv(0, "queue", "push", "--keyed", "mail", "msg-18", "world")
	expect("2\n", "queue", "len", "mail")
	expect("msg-17\thello\n", "queue", "peek", "mail", "--keyed")
	expect("hello\n", "get", "msg-17")
	expect("msg-17\thello\n", "queue", "pop", "mail", "--keyed")
	kv(1, "get", "msg-17") // popping a keyed item deletes its key
	expect("1\n", "queue", "len", "mail")
	// empty queue
	kv(0, "queue", "push", "empty", "only")
	expect("only\n", "queue", "pop", "empty")
	kv(1, "queue", "pop", "empty")
	kv(1, "queue", "peek", "empty")

	// counters
	kv(0, "cas", "init", "visits", "5")
	expect("5\n", "cas", "get", "visits")
	expect("6\n", "cas", "incr", "visits")
	expect("9\n", "cas", "incr", "visits", "--by", "3")
	expect("8\n", "cas", "decr", "visits")
	kv(0, "cas", "set", "visits", "8", "100")
	expect("100\n", "cas", "get", "visits")
	if _, errOut := kv(1, "cas", "set", "visits", "8", "1"); !strings.Contains(errOut, "holds 100") {
		t.Fatalf("failed cas set: stderr %q does not give the current value", errOut)
	}
	kv(0, "cas", "init", "tiny", "255", "--bits", "8")
	expect("0\n", "cas", "incr", "tiny", "--bits", "8")
	kv(1, "cas", "get", "greeting") // not a counter
	kv(1, "cas", "get", "nosuchcounter")

	// status
	if out, _ := kv(0, "status"); !strings.Contains(out, "cluster ") || !strings.Contains(out, n.addr) {
		t.Fatalf("status: %q", out)
	}

	// usage errors exit 2
	kv(2, "get")
	kv(2, "set", "onlykey")
	kv(2, "get", "a", "b")
	kv(2, "cas", "init", "k", "notanumber")
	kv(2, "cas", "get", "visits", "--bits", "12")
	kv(2, "queue", "push", "jobs", "k", "v") // NAME KEY VALUE needs --keyed
	kv(2, "queue", "remove", "jobs", "0")
	kv(2, "get", "greeting", "--no-such-flag")
	kv(2, "scan", "--limit", "-1")
	if _, errOut, code := run(t, "", "kv", "--endpoints", "nocolon", "get", "x"); code != 2 {
		t.Fatalf("--endpoints without a port: exit %d (%s), want 2", code, errOut)
	}

	// An oversized value is rejected as invalid and nothing is stored.
	cl := c.client(60*time.Second, false)
	ctx := context.Background()
	big := bytes.Repeat([]byte("x"), 17<<20)
	err := cl.Set(ctx, []byte("big"), big, 0)
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("set of a 17MiB value: %v, want store.ErrInvalid", err)
	}
	if _, err := cl.Get(ctx, []byte("big")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get after a rejected oversized set: %v, want store.ErrNotFound", err)
	}
	if err := cl.Push(ctx, []byte("bigq"), big); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("push of a 17MiB value: %v, want store.ErrInvalid", err)
	}
	if l, _, err := cl.QueueLen(ctx, []byte("bigq")); err != nil || l != 0 {
		t.Fatalf("queue len after a rejected push: %d, %v", l, err)
	}
	// A value just under the limit is fine.
	justUnder := bytes.Repeat([]byte("y"), 16<<20-1024)
	if err := cl.Set(ctx, []byte("big"), justUnder, 0); err != nil {
		t.Fatalf("set of a value just under the limit: %v", err)
	}
	if v, err := cl.Get(ctx, []byte("big")); err != nil || !bytes.Equal(v, justUnder) {
		t.Fatalf("get of the value just under the limit: %d bytes, %v", len(v), err)
	}

	// Restart: everything is still there.
	n.stop()
	n.start()
	c.waitHealthy(60 * time.Second)
	expect("hello\n", "get", "greeting")
	expect("from stdin\x00binary", "get", "blob", "--raw")
	kv(1, "get", "doomed")
	expect("user/a\nuser/b\nuser/c\n", "scan", "--prefix", "user/", "--keys-only")
	expect("bob\n", "subkey", "list", "users")
	expect("2\n", "queue", "len", "jobs")
	expect("job-4\n", "queue", "pop", "jobs")
	expect("job-6\n", "queue", "pop", "jobs")
	kv(1, "queue", "pop", "jobs")
	expect("msg-18\tworld\n", "queue", "pop", "mail", "--keyed")
	expect("100\n", "cas", "get", "visits")
	expect("0\n", "cas", "get", "tiny", "--bits", "8")
	if v, err := cl.Get(ctx, []byte("big")); err != nil || !bytes.Equal(v, justUnder) {
		t.Fatalf("after restart, get of the big value: %d bytes, %v", len(v), err)
	}
}

// TestOtherClusterDataDir: a data directory of one cluster cannot be used
// to join another, and a join that reaches no node gives up in time and
// says which address it tried.
func TestOtherClusterDataDir(t *testing.T) {
	a := newCluster(t, clusterOpts{nodes: 1, shards: 2, replicas: 1})
	b := newCluster(t, clusterOpts{nodes: 1, shards: 2, replicas: 1})
	na, nb := a.nodes[0], b.nodes[0]
	cl := a.client(10*time.Second, false)
	if err := cl.Set(context.Background(), []byte("k"), []byte("a"), 0); err != nil {
		t.Fatal(err)
	}
	na.stop()

	out, errOut, code := run(t, "", "kv", "serve", "--data", na.dir, "--listen", na.addr, "--join", nb.addr)
	if code == 0 {
		t.Fatalf("serving A's data directory with --join B exited 0:\n%s\n%s", out, errOut)
	}
	if !strings.Contains(errOut, "another cluster") {
		t.Fatalf("serving A's data directory with --join B: exit %d, stderr does not mention another cluster:\n%s", code, errOut)
	}
	if strings.Contains(out, "serving on") {
		t.Fatalf("it said it was serving: %s", out)
	}
	// B is unharmed, and A's directory still works on its own.
	clb := b.client(10*time.Second, false)
	if _, err := clb.Get(context.Background(), []byte("k")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("B has A's key, or fails: %v", err)
	}
	na.start()
	a.waitHealthy(60 * time.Second)
	if v, err := cl.Get(context.Background(), []byte("k")); err != nil || string(v) != "a" {
		t.Fatalf("A after the refused join: %q, %v", v, err)
	}

	closed := freeAddr(t)
	start := time.Now()
	out, errOut, code = run(t, "", "kv", "serve", "--data", filepath.Join(t.TempDir(), "fresh"), "--listen", freeAddr(t),
		"--join", closed, "--join-timeout", "2s")
	if code == 0 {
		t.Fatalf("join of a closed port exited 0:\n%s\n%s", out, errOut)
	}
	if !strings.Contains(errOut, closed) {
		t.Fatalf("join of a closed port: exit %d, stderr does not name %s:\n%s", code, closed, errOut)
	}
	t.Logf("join of a closed port gave up after %v: %s", time.Since(start).Round(time.Millisecond), lastLine(errOut))
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}
