package e2e

import (
	"context"
	"testing"
	"time"
)

// TestJoinDuringBootstrap launches three nodes at the same instant, so the
// joiners call node 1 while it is still creating the cluster. Node 1 must
// hold them off until its map has a cluster id: before the fix they joined
// with an empty id and the map group lost its quorum.
func TestJoinDuringBootstrap(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 3, shards: 2, replicas: 3, together: true})
	var id string
	for _, n := range c.nodes {
		cl := c.client(10*time.Second, false, n)
		st, err := cl.Status(context.Background())
		if err != nil {
			t.Fatalf("%s: status: %v", n.name, err)
		}
		if st.ClusterId == "" {
			t.Fatalf("%s reports an empty cluster id", n.name)
		}
		if id == "" {
			id = st.ClusterId
		} else if st.ClusterId != id {
			t.Fatalf("%s is in cluster %s, node1 in %s", n.name, st.ClusterId, id)
		}
		key := []byte("boot/" + n.name)
		if err := cl.Set(context.Background(), key, []byte("v"), 0); err != nil {
			t.Fatalf("set via %s: %v", n.name, err)
		}
	}
}
