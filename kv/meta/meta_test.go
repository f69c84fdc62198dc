package meta

import "testing"

func TestRebalanceAddsOnlyAndSpreads(t *testing.T) {
	m := &Map{Shards: 6, Replicas: 3, Nodes: map[uint64]string{1: "a"}, Placement: map[uint32][]uint64{}}
	for sh := uint32(1); sh <= 6; sh++ {
		m.Placement[sh] = []uint64{1}
	}
	if cmds := m.Rebalance(); len(cmds) != 0 {
		t.Fatalf("one node: %v", cmds)
	}
	for _, id := range []uint64{2, 3, 4, 5} {
		m.Nodes[id] = "x"
	}
	for _, c := range m.Rebalance() {
		if err := m.apply(c); err != nil {
			t.Fatal(err)
		}
	}
	load := map[uint64]int{}
	for sh := uint32(1); sh <= 6; sh++ {
		hs := m.Placement[sh]
		if len(hs) != 3 || hs[0] != 1 {
			t.Fatalf("shard %d: holders %v (want 3, keeping node 1 first)", sh, hs)
		}
		seen := map[uint64]bool{}
		for _, h := range hs {
			if seen[h] {
				t.Fatalf("shard %d: %d twice", sh, h)
			}
			seen[h] = true
			load[h]++
		}
	}
	for id := uint64(2); id <= 5; id++ {
		if load[id] < 2 || load[id] > 4 {
			t.Fatalf("uneven placement: %v", load)
		}
	}
	if cmds := m.Rebalance(); len(cmds) != 0 {
		t.Fatalf("placement not stable: %v", cmds)
	}
}

func TestApplyRejectsBadCommands(t *testing.T) {
	m := &Map{Nodes: map[uint64]string{}, Placement: map[uint32][]uint64{}}
	if err := m.apply(Command{Op: "init", Cluster: "c", Shards: 2, Replicas: 3, Node: 1, Addr: "a"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Command{{Op: "init", Cluster: "d"}, {Op: "place", Shard: 3}, {Op: "bogus"}} {
		if err := m.apply(c); err == nil {
			t.Fatalf("%+v accepted", c)
		}
	}
}
