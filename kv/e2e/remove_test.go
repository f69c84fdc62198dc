package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kura-dev/kura/kv/client"
)

// writer keeps setting distinct keys through cl until stopped and records
// the ones acknowledged.
type writer struct {
	mu    sync.Mutex
	acked []string
	fails atomic.Int64
	stop  chan struct{}
	done  chan struct{}
}

func startWriter(cl *client.Client, prefix string) *writer {
	w := &writer{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			k := fmt.Sprintf("%s/%05d", prefix, i)
			if err := cl.Set(context.Background(), []byte(k), []byte(k), 0); err != nil {
				w.fails.Add(1)
				continue
			}
			w.mu.Lock()
			w.acked = append(w.acked, k)
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *writer) finish() []string {
	close(w.stop)
	<-w.done
	return w.acked
}

// checkAll reads every acknowledged key back (linearizable reads).
func checkAll(t *testing.T, cl *client.Client, keys []string) {
	t.Helper()
	for _, k := range keys {
		v, err := cl.Get(context.Background(), []byte(k))
		if err != nil || string(v) != k {
			t.Fatalf("acknowledged key %s: got %q, %v", k, v, err)
		}
	}
}

// TestRemoveNodeWhileServing removes a live node that leads every shard and
// the cluster map (node 1, which created the cluster) from a 4-node
// cluster while a client writes: its replicas move to the spare node, the
// leaderships move first, no acknowledged write is lost, the node's shard
// data is deleted and the cluster stays healthy without it.
func TestRemoveNodeWhileServing(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 4, shards: 4, replicas: 3})
	gone := c.nodes[0]
	rest := c.nodes[1:]
	w := startWriter(c.client(20*time.Second, false, rest...), "rm")
	time.Sleep(500 * time.Millisecond)

	out, errOut, code := run(t, "", "kv", "--endpoints", strings.Join(c.addrs(rest...), ","), "remove-node", fmt.Sprintf("%x", gone.id))
	if code != 0 {
		t.Fatalf("remove-node exited %d:\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "removed from the cluster") {
		t.Fatalf("remove-node output: %s", out)
	}
	time.Sleep(500 * time.Millisecond)
	keys := w.finish()
	if len(keys) < 20 {
		t.Fatalf("only %d writes acknowledged during the removal (%d failed)", len(keys), w.fails.Load())
	}

	c.nodes = rest
	c.waitHealthy(60 * time.Second)
	st, err := c.status()
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range st.Nodes {
		if ns.Id == gone.id {
			t.Fatalf("removed node still in the status:\n%s", describe(st))
		}
	}
	// Its replicas are stopped and deleted (the process may linger: it
	// was told nothing more and can be stopped).
	deadline := time.Now().Add(20 * time.Second)
	for {
		left, _ := filepath.Glob(filepath.Join(gone.dir, "shards", "*"))
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("removed node still has shard data: %v", left)
		}
		time.Sleep(200 * time.Millisecond)
	}
	gone.kill()
	checkAll(t, c.client(20*time.Second, false), keys)
	t.Logf("%d writes acknowledged during the removal, %d failed and were not counted", len(keys), w.fails.Load())

	// A second removal of the same node says it is gone.
	_, errOut, code = run(t, "", "kv", "--endpoints", strings.Join(c.addrs(), ","), "remove-node", fmt.Sprintf("%x", gone.id))
	if code == 0 || !strings.Contains(errOut, "not in cluster") {
		t.Fatalf("removing a removed node: exit %d, %s", code, errOut)
	}
}

// TestRemoveDeadNode removes a node that was SIGKILLed (a machine lost for
// good) from a 3-node cluster: the shards shrink to the two live replicas
// and keep serving, and bad input to remove-node gets a clear error.
func TestRemoveDeadNode(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 3, shards: 2, replicas: 3})
	dead := c.nodes[2]
	cl := c.client(20*time.Second, false, c.nodes[:2]...)
	var keys []string
	for i := 0; i < 50; i++ {
		k := fmt.Sprintf("dead/%03d", i)
		if err := cl.Set(context.Background(), []byte(k), []byte(k), 0); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	dead.kill()
	eps := strings.Join(c.addrs(c.nodes[:2]...), ",")
	for _, bad := range []string{"xyz", "0"} {
		_, errOut, code := run(t, "", "kv", "--endpoints", eps, "remove-node", bad)
		if code != 2 || !strings.Contains(errOut, "not a node id") {
			t.Fatalf("remove-node %s: exit %d, %s", bad, code, errOut)
		}
	}
	if _, errOut, code := run(t, "", "kv", "--endpoints", eps, "remove-node", "123456789abcdef"); code == 0 || !strings.Contains(errOut, "not in cluster") {
		t.Fatalf("remove-node of an unknown id: exit %d, %s", code, errOut)
	}
	out, errOut, code := run(t, "", "kv", "--endpoints", eps, "remove-node", fmt.Sprintf("%x", dead.id))
	if code != 0 {
		t.Fatalf("remove-node exited %d:\n%s\n%s", code, out, errOut)
	}
	c.nodes = c.nodes[:2]
	c.replicas = 2
	c.waitHealthy(60 * time.Second)
	checkAll(t, cl, keys)
	if err := cl.Set(context.Background(), []byte("dead/after"), []byte("v"), 0); err != nil {
		t.Fatalf("write after the removal: %v", err)
	}
	if _, err := os.Stat(dead.dir); err != nil {
		t.Fatal(err) // the dead node's directory is untouched (nobody ran there)
	}
}
