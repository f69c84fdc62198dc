package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kura-dev/kura/proto/kvpb"
)

func forwardedTotal(t *testing.T, c *cluster) uint64 {
	t.Helper()
	st, err := c.status()
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, ns := range st.Nodes {
		sum += ns.Forwarded
	}
	return sum
}

func leadsPerNode(st *kvpb.StatusResponse) map[uint64]int {
	out := map[uint64]int{}
	for _, ns := range st.Nodes {
		for _, ss := range ns.Shards {
			if ss.Shard != 0 && ss.State == "StateLeader" {
				out[ns.Id]++
			}
		}
	}
	return out
}

// TestClientRoutesAndLeadersSpread: the shard leaderships, all on node 1
// when the cluster is created, spread over the nodes (each leads its
// share), and a client given a single endpoint learns the map and sends
// each operation straight to its shard's leader, so the nodes forward
// (almost) nothing, also after the leaders moved.
func TestClientRoutesAndLeadersSpread(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 3, shards: 6, replicas: 3})
	deadline := time.Now().Add(45 * time.Second)
	for {
		st, err := c.status()
		if err == nil {
			leads := leadsPerNode(st)
			if len(leads) == 3 && leads[c.nodes[0].id] == 2 && leads[c.nodes[1].id] == 2 && leads[c.nodes[2].id] == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("shard leaders not spread after 45s: %v\n%s", leads, describe(st))
			}
		}
		time.Sleep(500 * time.Millisecond)
	}

	cl := c.client(10*time.Second, false, c.nodes[2])
	ctx := context.Background()
	// The first operations may go to the endpoint before the map arrives.
	for i := 0; i < 20; i++ {
		if err := cl.Set(ctx, []byte(fmt.Sprintf("warm/%d", i)), []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	before := forwardedTotal(t, c)
	const ops = 300
	for i := 0; i < ops; i++ {
		k := []byte(fmt.Sprintf("route/%d", i))
		if err := cl.Set(ctx, k, []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Get(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if fw := forwardedTotal(t, c) - before; fw > ops/50 {
		t.Fatalf("%d of %d operations were forwarded between nodes: the client does not route to leaders", fw, 2*ops)
	}
}
