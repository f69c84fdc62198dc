package e2e

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kura-dev/kura/kv/client"
	"github.com/kura-dev/kura/store"
)

// checkShardHash makes sure the test's shardOf agrees with the cluster:
// writes to a key advance the commit index of the shard shardOf names and
// of no other data shard.
func checkShardHash(t *testing.T, c *cluster, cl *client.Client, key string) {
	t.Helper()
	commits := func() map[uint32]uint64 {
		st, err := c.status()
		if err != nil {
			t.Fatal(err)
		}
		out := map[uint32]uint64{}
		for _, ns := range st.Nodes {
			for _, ss := range ns.Shards {
				if ss.State == "StateLeader" && ss.Shard != 0 {
					out[ss.Shard] = ss.Commit
				}
			}
		}
		return out
	}
	before := commits()
	for i := 0; i < 5; i++ {
		if err := cl.Set(context.Background(), []byte(key), []byte("probe"), 0); err != nil {
			t.Fatal(err)
		}
	}
	after := commits()
	want := shardOf(key, c.shards)
	for sh := uint32(1); sh <= uint32(c.shards); sh++ {
		d := after[sh] - before[sh]
		if sh == want && d < 5 {
			t.Fatalf("5 sets of %q advanced shard %d's commit by %d: the test's shardOf disagrees with the cluster", key, sh, d)
		}
		if sh != want && d != 0 {
			t.Fatalf("5 sets of %q advanced shard %d's commit by %d (shardOf says shard %d)", key, sh, d, want)
		}
	}
}

// TestThreeNodeFailover: writers keep setting keys and pushing to a queue
// through all three nodes while the leader of the queue's shard is killed
// and restarted, then a follower. Every acknowledged write survives, the
// queue holds every acknowledged push exactly once, and the restarted
// nodes catch up.
func TestThreeNodeFailover(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 3, shards: 4, replicas: 3})
	ctx := context.Background()
	const queue = "failover-queue"
	qs := shardOf(queue, c.shards)
	checkShardHash(t, c, c.client(10*time.Second, false), queue)

	const writers, perWriter, maxPerWriter = 4, 300, 3000
	type result struct {
		sets    map[string]string // acknowledged
		pushes  map[string]bool   // acknowledged
		maybe   map[string]bool   // pushes of unknown outcome
		failed  map[string]bool   // pushes that failed without ErrUnknownOutcome
		setErrs int
	}
	results := make([]result, writers)
	var acked atomic.Int64
	var faultsDone atomic.Bool
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		cl := c.client(20*time.Second, false)
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := result{sets: map[string]string{}, pushes: map[string]bool{}, maybe: map[string]bool{}, failed: map[string]bool{}}
			defer func() { results[w] = r }()
			for i := 0; i < maxPerWriter && (i < perWriter || !faultsDone.Load()); i++ {
				k, v := fmt.Sprintf("fo/w%d/k%04d", w, i), fmt.Sprintf("v%d-%d", w, i)
				if err := cl.Set(ctx, []byte(k), []byte(v), 0); err != nil {
					r.setErrs++
					t.Logf("writer %d: set %s: %v", w, k, err)
				} else {
					r.sets[k] = v
					acked.Add(1)
				}
				item := fmt.Sprintf("item-%d-%d", w, i)
				switch err := cl.Push(ctx, []byte(queue), []byte(item)); {
				case err == nil:
					r.pushes[item] = true
					acked.Add(1)
				case errors.Is(err, client.ErrUnknownOutcome):
					r.maybe[item] = true
					t.Logf("writer %d: push %s: %v", w, item, err)
				default:
					r.failed[item] = true
					t.Logf("writer %d: push %s failed: %v", w, item, err)
				}
			}
		}(w)
	}

	// waitProgress waits until n more writes were acknowledged.
	waitProgress := func(what string, n int64) {
		start, deadline := acked.Load(), time.Now().Add(60*time.Second)
		for acked.Load() < start+n {
			if time.Now().After(deadline) {
				t.Errorf("%s: only %d writes acknowledged in 60s", what, acked.Load()-start)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	func() {
		defer faultsDone.Store(true)
		waitProgress("before the faults", 150)
		leader := c.waitLeader(qs, nil, 30*time.Second)
		leader.kill()
		newLeader := c.waitLeader(qs, leader, 30*time.Second)
		t.Logf("shard %d: %s took over from %s", qs, newLeader.name, leader.name)
		waitProgress("with the queue's leader down", 100)
		leader.start()
		waitProgress("after restarting the old leader", 100)
		cur := c.waitLeader(qs, nil, 30*time.Second)
		// A follower of the queue's shard, preferably not the node just
		// restarted.
		var follower *node
		for _, n := range c.nodes {
			if n != cur && (follower == nil || follower == leader) {
				follower = n
			}
		}
		follower.kill()
		waitProgress("with a follower down", 100)
		follower.start()
		waitProgress("after restarting the follower", 100)
	}()
	wg.Wait()
	if t.Failed() {
		return
	}

	c.waitHealthy(90 * time.Second)
	cl := c.client(20*time.Second, false)
	pushed, maybe, failed := map[string]bool{}, map[string]bool{}, map[string]bool{}
	nSets, setErrs := 0, 0
	var lastKeys []string
	for _, r := range results {
		nSets += len(r.sets)
		setErrs += r.setErrs
		for k, v := range r.sets {
			got, err := cl.Get(ctx, []byte(k))
			if err != nil || string(got) != v {
				t.Errorf("acknowledged set %s=%s: read %q, %v", k, v, got, err)
			}
		}
		for it := range r.pushes {
			pushed[it] = true
		}
		for it := range r.maybe {
			maybe[it] = true
		}
		for it := range r.failed {
			failed[it] = true
		}
		keys := make([]string, 0, len(r.sets))
		for k := range r.sets {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if len(keys) > 0 {
			lastKeys = append(lastKeys, keys[len(keys)-1])
		}
	}
	t.Logf("%d sets acknowledged (%d failed), %d pushes acknowledged, %d unknown, %d failed",
		nSets, setErrs, len(pushed), len(maybe), len(failed))

	// Pop the queue empty.
	n, _, err := cl.QueueLen(ctx, []byte(queue))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for i := 0; ; i++ {
		if i > int(n)+10 {
			t.Fatalf("queue not empty after %d pops (length was %d)", i, n)
		}
		it, err := cl.Pop(ctx, []byte(queue), store.Front)
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			t.Fatalf("pop %d: %v", i, err)
		}
		seen[string(it.Value)]++
	}
	var dup, missing, bogus, fromFailed []string
	for it, cnt := range seen {
		switch {
		case cnt > 1:
			dup = append(dup, fmt.Sprintf("%s x%d", it, cnt))
		case failed[it]:
			fromFailed = append(fromFailed, it)
		case !pushed[it] && !maybe[it]:
			bogus = append(bogus, it)
		}
	}
	for it := range pushed {
		if seen[it] == 0 {
			missing = append(missing, it)
		}
	}
	if len(dup)+len(missing)+len(bogus)+len(fromFailed) > 0 {
		sort.Strings(dup)
		sort.Strings(missing)
		t.Errorf("queue: %d items popped; duplicated: %v; acknowledged but missing: %v; never pushed: %v; push failed (not unknown) yet present: %v",
			len(seen), dup, missing, bogus, fromFailed)
	}

	// The restarted nodes serve the latest values from their own replicas.
	if err := cl.Set(ctx, []byte("fo/final"), []byte("last"), 0); err != nil {
		t.Fatal(err)
	}
	c.waitHealthy(60 * time.Second)
	for _, n := range c.nodes {
		local := c.client(10*time.Second, true, n)
		for _, k := range append(lastKeys, "fo/final") {
			want := "last"
			for _, r := range results {
				if v, ok := r.sets[k]; ok {
					want = v
				}
			}
			waitSerializable(t, local, n, k, want)
		}
	}
}

// waitSerializable polls a serializable read on one node (bounded) until it
// returns want.
func waitSerializable(t *testing.T, cl *client.Client, n *node, key, want string) {
	t.Helper()
	var got []byte
	var err error
	for i := 0; i < 100; i++ {
		got, err = cl.Get(context.Background(), []byte(key))
		if err == nil && string(got) == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("serializable read of %s on %s: %q, %v; want %q", key, n.name, got, err, want)
}

// TestFiveNodesTwoDown: with five replicas per shard, two nodes down
// (one of them a shard leader) leave a majority: writes and linearizable
// reads go on through the other three, and the two catch up on restart.
func TestFiveNodesTwoDown(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 5, shards: 3, replicas: 5})
	ctx := context.Background()
	cl := c.client(20*time.Second, false)
	for i := 0; i < 30; i++ {
		if err := cl.Set(ctx, []byte(fmt.Sprintf("five/%d", i)), []byte("before"), 0); err != nil {
			t.Fatal(err)
		}
	}
	leader := c.waitLeader(1, nil, 30*time.Second)
	down := []*node{leader}
	for _, n := range c.nodes {
		if n != leader {
			down = append(down, n)
			break
		}
	}
	for _, n := range down {
		n.kill()
	}
	var up []*node
	for _, n := range c.nodes {
		if n.running() {
			up = append(up, n)
		}
	}
	cl3 := c.client(20*time.Second, false, up...)
	if err := cl3.CASInit(ctx, []byte("five/counter"), 64, 0); err != nil {
		t.Fatalf("cas init with two nodes down: %v", err)
	}
	adds := uint64(0)
	want := map[string]string{}
	for i := 0; i < 60; i++ {
		k, v := fmt.Sprintf("five/%d", i), fmt.Sprintf("during-%d", i)
		if err := cl3.Set(ctx, []byte(k), []byte(v), 0); err != nil {
			t.Fatalf("set %s with two nodes down: %v", k, err)
		}
		want[k] = v
		got, err := cl3.Get(ctx, []byte(k))
		if err != nil || string(got) != v {
			t.Fatalf("linearizable get %s with two nodes down: %q, %v; want %q", k, got, err, v)
		}
		if i%10 == 0 {
			n, err := cl3.CASAdd(ctx, []byte("five/counter"), 64, 1)
			if err != nil {
				t.Fatalf("cas add with two nodes down: %v", err)
			}
			if adds++; n != adds {
				t.Fatalf("cas add with two nodes down: %d, want %d", n, adds)
			}
		}
	}
	for _, n := range down {
		n.start()
	}
	c.waitHealthy(90 * time.Second)
	for k, v := range want {
		got, err := cl.Get(ctx, []byte(k))
		if err != nil || string(got) != v {
			t.Errorf("after restart: %s = %q, %v; want %q", k, got, err, v)
		}
	}
	for _, n := range down {
		local := c.client(10*time.Second, true, n)
		waitSerializable(t, local, n, "five/59", want["five/59"])
		if v, err := local.CASGet(ctx, []byte("five/counter"), 64); err != nil || v != adds {
			t.Errorf("serializable cas get on restarted %s: %d, %v", n.name, v, err)
		}
	}
}

// TestPartitionHeals: the node leading shard 1 is cut off; writes through
// the other two go on once they elect a new leader; after healing, the cut
// off node catches up and nothing acknowledged is lost.
func TestPartitionHeals(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 3, shards: 4, replicas: 3, extra: []string{"--fault-injection"}})
	ctx := context.Background()
	cl := c.client(20*time.Second, false)
	keys := append(keysOnShard("part/s1/", 1, c.shards, 10), "part/a", "part/b", "part/c", "part/d")
	want := map[string]string{}
	for _, k := range keys {
		if err := cl.Set(ctx, []byte(k), []byte("before"), 0); err != nil {
			t.Fatal(err)
		}
		want[k] = "before"
	}
	c.waitHealthy(30 * time.Second)
	x := c.waitLeader(1, nil, 30*time.Second)
	c.partition(x)
	rest := c.others(x)
	cl2 := c.client(30*time.Second, false, rest...)
	for round := 0; round < 3; round++ {
		for _, k := range keys {
			v := fmt.Sprintf("during-%d", round)
			if err := cl2.Set(ctx, []byte(k), []byte(v), 0); err != nil {
				t.Fatalf("set %s through the majority side: %v", k, err)
			}
			want[k] = v
		}
	}
	for _, k := range keys {
		if got, err := cl2.Get(ctx, []byte(k)); err != nil || string(got) != want[k] {
			t.Fatalf("read %s on the majority side: %q, %v; want %q", k, got, err, want[k])
		}
	}
	if l := c.waitLeader(1, x, 30*time.Second); l == x {
		t.Fatalf("the partitioned node still leads shard 1")
	}
	// The cut-off node's replica of shard 1 has not seen the new values.
	local := c.client(5*time.Second, true, x)
	if got, err := local.Get(ctx, []byte(keys[0])); err != nil || string(got) != "before" {
		t.Logf("serializable read on the cut-off node during the partition: %q, %v", got, err)
	}
	c.heal()
	c.waitHealthy(60 * time.Second)
	for _, k := range keys {
		waitSerializable(t, local, x, k, want[k])
		if got, err := cl.Get(ctx, []byte(k)); err != nil || string(got) != want[k] {
			t.Errorf("after healing: %s = %q, %v; want %q", k, got, err, want[k])
		}
	}
	if t.Failed() {
		st, _ := c.status()
		t.Log(describe(st))
	}
}
