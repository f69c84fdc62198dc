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

func TestRemoveNodeMovesReplicasThenForgets(t *testing.T) {
	m := &Map{Shards: 4, Replicas: 3, Nodes: map[uint64]string{1: "a", 2: "b", 3: "c", 4: "d"}, Placement: map[uint32][]uint64{}}
	for sh := uint32(1); sh <= 4; sh++ {
		m.Placement[sh] = []uint64{1, 2, 3}
	}
	if err := m.apply(Command{Op: "remove-node", Node: 9}); err == nil {
		t.Fatal("removing an unknown node was accepted")
	}
	if err := m.apply(Command{Op: "forget-node", Node: 2}); err == nil {
		t.Fatal("forgetting a node that is not leaving was accepted")
	}
	if err := m.apply(Command{Op: "remove-node", Node: 2}); err != nil {
		t.Fatal(err)
	}
	if got := m.Want(); got != 3 {
		t.Fatalf("want %d replicas with 3 active nodes, got %d", 3, got)
	}
	// Replacements go to node 4 (the only active non-holder); node 2
	// stays listed until its shard's group dropped it.
	for _, c := range m.Rebalance() {
		if err := m.apply(c); err != nil {
			t.Fatal(err)
		}
	}
	for sh := uint32(1); sh <= 4; sh++ {
		if !m.Holds(sh, 4) || !m.Holds(sh, 2) {
			t.Fatalf("shard %d: holders %v, want node 4 added and node 2 kept for now", sh, m.Placement[sh])
		}
	}
	if err := m.apply(Command{Op: "forget-node", Node: 2}); err == nil {
		t.Fatal("forgetting a node that still holds shards was accepted")
	}
	if err := m.apply(Command{Op: "add-node", Node: 2, Addr: "b"}); err == nil {
		t.Fatal("a leaving node was re-added")
	}
	for sh := uint32(1); sh <= 4; sh++ {
		if err := m.apply(m.Drop(sh, 2)); err != nil {
			t.Fatal(err)
		}
	}
	if cmds := m.Rebalance(); len(cmds) != 0 {
		t.Fatalf("placement not stable after the drain: %v", cmds)
	}
	if err := m.apply(Command{Op: "forget-node", Node: 2}); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Nodes[2]; ok || m.Leaving[2] {
		t.Fatalf("node 2 still in the map: %v %v", m.Nodes, m.Leaving)
	}
	// The last active nodes cannot all go.
	for _, id := range []uint64{1, 3} {
		if err := m.apply(Command{Op: "remove-node", Node: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.apply(Command{Op: "remove-node", Node: 4}); err == nil {
		t.Fatal("removing the last active node was accepted")
	}
}
