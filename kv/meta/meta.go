// Package meta is the cluster map's replicated state machine (Raft group 0,
// on every node): the cluster's identity, its nodes and their addresses,
// the number of shards and which nodes hold each shard.
package meta

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/kura-dev/kura/kv/replica"
)

// Group is the Raft group id of the cluster map.
const Group uint32 = 0

// Map is the cluster map.
type Map struct {
	ClusterID string            `json:"cluster_id"`
	Shards    uint32            `json:"shards"`
	Replicas  int               `json:"replicas"`
	Nodes     map[uint64]string `json:"nodes"`
	// Placement lists, for each shard (1..Shards), the nodes that hold a
	// replica or are being given one.
	Placement map[uint32][]uint64 `json:"placement"`
	// Leaving marks the nodes being removed: no new replica goes there,
	// their replicas move to other nodes, then they leave the map.
	Leaving map[uint64]bool `json:"leaving,omitempty"`
}

// Clone returns a deep copy.
func (m *Map) Clone() *Map {
	out := &Map{ClusterID: m.ClusterID, Shards: m.Shards, Replicas: m.Replicas,
		Nodes: make(map[uint64]string, len(m.Nodes)), Placement: make(map[uint32][]uint64, len(m.Placement))}
	for k, v := range m.Nodes {
		out.Nodes[k] = v
	}
	for k, v := range m.Placement {
		out.Placement[k] = append([]uint64(nil), v...)
	}
	if len(m.Leaving) > 0 {
		out.Leaving = make(map[uint64]bool, len(m.Leaving))
		for k, v := range m.Leaving {
			out.Leaving[k] = v
		}
	}
	return out
}

// Active returns the ids, in order, of the nodes not being removed.
func (m *Map) Active() []uint64 {
	var out []uint64
	for _, id := range m.NodeIDs() {
		if !m.Leaving[id] {
			out = append(out, id)
		}
	}
	return out
}

// Want is the number of replicas every shard should have: Replicas, or
// fewer when there are fewer active nodes.
func (m *Map) Want() int {
	return min(m.Replicas, len(m.Active()))
}

// ShardsOn returns the shards placed on node, in order.
func (m *Map) ShardsOn(node uint64) []uint32 {
	var out []uint32
	for sh := uint32(1); sh <= m.Shards; sh++ {
		if m.Holds(sh, node) {
			out = append(out, sh)
		}
	}
	return out
}

// NodeIDs returns the node ids in order.
func (m *Map) NodeIDs() []uint64 {
	ids := make([]uint64, 0, len(m.Nodes))
	for id := range m.Nodes {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// Holds tells whether node holds a replica of shard.
func (m *Map) Holds(shard uint32, node uint64) bool {
	for _, n := range m.Placement[shard] {
		if n == node {
			return true
		}
	}
	return false
}

// Command is a change of the map (a log entry of group 0, as JSON).
type Command struct {
	ID uint64 `json:"id"`
	// Op is "init", "add-node", "place", "remove-node" (mark Node as
	// leaving) or "forget-node" (drop a leaving node that holds nothing).
	Op       string   `json:"op"`
	Cluster  string   `json:"cluster,omitempty"`
	Shards   uint32   `json:"shards,omitempty"`
	Replicas int      `json:"replicas,omitempty"`
	Node     uint64   `json:"node,omitempty"`
	Addr     string   `json:"addr,omitempty"`
	Shard    uint32   `json:"shard,omitempty"`
	Holders  []uint64 `json:"holders,omitempty"`
}

// State is the map's state machine; it keeps the map in the node's log
// store beside the Raft logs.
type State struct {
	logs    *replica.LogStore
	applied atomic.Uint64

	mu  sync.RWMutex
	m   *Map
	chg chan struct{}
}

var stateKey = replica.GroupKey(Group, "map")

type persisted struct {
	Applied uint64 `json:"applied"`
	Map     *Map   `json:"map"`
}

// Open loads the map from the log store.
func Open(logs *replica.LogStore) (*State, error) {
	s := &State{logs: logs, m: &Map{Nodes: map[uint64]string{}, Placement: map[uint32][]uint64{}}, chg: make(chan struct{})}
	v, closer, err := logs.DB().Get(stateKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read cluster map: %w", err)
	}
	defer closer.Close()
	var p persisted
	if err := json.Unmarshal(v, &p); err != nil {
		return nil, fmt.Errorf("decode cluster map: %w", err)
	}
	if p.Map != nil {
		s.m = p.Map
	}
	s.applied.Store(p.Applied)
	return s, nil
}

// Map returns the current map. The map is shared and must not be
// modified (Clone it to change it): every change of the state replaces the
// whole map, so a map once returned never changes. This keeps Map cheap
// enough for every request's routing.
func (s *State) Map() *Map {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m
}

// Changed returns a channel closed at the next change of the map.
func (s *State) Changed() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.chg
}

// Applied implements replica.StateMachine.
func (s *State) Applied() uint64 { return s.applied.Load() }

// Apply implements replica.StateMachine.
func (s *State) Apply(index uint64, data []byte) (uint64, any) {
	var c Command
	if err := json.Unmarshal(data, &c); err != nil {
		return 0, fmt.Errorf("undecodable cluster map command at %d: %w", index, err)
	}
	s.mu.Lock()
	next := s.m.Clone()
	err := next.apply(c)
	if err == nil {
		s.m = next
	}
	s.applied.Store(index)
	perr := s.persistLocked()
	close(s.chg)
	s.chg = make(chan struct{})
	s.mu.Unlock()
	if err == nil {
		err = perr
	}
	return c.ID, err
}

func (m *Map) apply(c Command) error {
	switch c.Op {
	case "init":
		if m.ClusterID != "" {
			return fmt.Errorf("cluster %s is already initialised", m.ClusterID)
		}
		m.ClusterID, m.Shards, m.Replicas = c.Cluster, c.Shards, c.Replicas
		m.Nodes[c.Node] = c.Addr
		for sh := uint32(1); sh <= c.Shards; sh++ {
			m.Placement[sh] = []uint64{c.Node}
		}
	case "add-node":
		if m.Leaving[c.Node] {
			return fmt.Errorf("node %x is being removed from the cluster; start the new node on an empty data directory", c.Node)
		}
		m.Nodes[c.Node] = c.Addr
	case "remove-node":
		if _, ok := m.Nodes[c.Node]; !ok {
			return fmt.Errorf("node %x is not in the cluster", c.Node)
		}
		if !m.Leaving[c.Node] && len(m.Active()) <= 1 {
			return fmt.Errorf("node %x is the last active node: a cluster cannot remove all its nodes", c.Node)
		}
		if m.Leaving == nil {
			m.Leaving = map[uint64]bool{}
		}
		m.Leaving[c.Node] = true
	case "forget-node":
		if !m.Leaving[c.Node] {
			return fmt.Errorf("node %x is not being removed", c.Node)
		}
		if shs := m.ShardsOn(c.Node); len(shs) > 0 {
			return fmt.Errorf("node %x still holds shards %v", c.Node, shs)
		}
		delete(m.Nodes, c.Node)
		delete(m.Leaving, c.Node)
	case "place":
		if c.Shard == 0 || c.Shard > m.Shards {
			return fmt.Errorf("no shard %d", c.Shard)
		}
		m.Placement[c.Shard] = append([]uint64(nil), c.Holders...)
	default:
		return fmt.Errorf("unknown cluster map command %q", c.Op)
	}
	return nil
}

func (s *State) persistLocked() error {
	data, err := json.Marshal(persisted{Applied: s.applied.Load(), Map: s.m})
	if err != nil {
		return err
	}
	return s.logs.DB().Set(stateKey, data, pebble.NoSync)
}

// SnapshotData implements replica.StateMachine.
func (s *State) SnapshotData() ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return json.Marshal(persisted{Applied: s.applied.Load(), Map: s.m})
}

// Restore implements replica.StateMachine.
func (s *State) Restore(data []byte, index uint64) error {
	var p persisted
	if err := json.Unmarshal(data, &p); err != nil {
		return fmt.Errorf("decode cluster map snapshot: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m = p.Map
	if p.Applied < index {
		p.Applied = index
	}
	s.applied.Store(p.Applied)
	close(s.chg)
	s.chg = make(chan struct{})
	return s.persistLocked()
}

// Sync implements replica.StateMachine.
func (s *State) Sync() error { return s.logs.DB().LogData(nil, pebble.Sync) }

// Rebalance returns the placement changes that give every shard Want()
// holders on active nodes, adding the active nodes that hold the fewest
// shards. Holders are only added here; a leaving node's replica is dropped
// from the placement once its shard's group no longer counts it as a voter
// (see Drop), after the replacement caught up.
func (m *Map) Rebalance() []Command {
	want := m.Want()
	load := map[uint64]int{}
	for id := range m.Nodes {
		load[id] = 0
	}
	for _, hs := range m.Placement {
		for _, h := range hs {
			load[h]++
		}
	}
	var out []Command
	for sh := uint32(1); sh <= m.Shards; sh++ {
		holders := append([]uint64(nil), m.Placement[sh]...)
		if m.activeHolders(sh) >= want {
			continue
		}
		for active := m.activeHolders(sh); active < want; active++ {
			best := uint64(0)
			for _, id := range m.Active() {
				if contains(holders, id) {
					continue
				}
				if best == 0 || load[id] < load[best] {
					best = id
				}
			}
			if best == 0 {
				break
			}
			holders = append(holders, best)
			load[best]++
		}
		out = append(out, Command{Op: "place", Shard: sh, Holders: holders})
	}
	return out
}

func (m *Map) activeHolders(sh uint32) int {
	n := 0
	for _, h := range m.Placement[sh] {
		if !m.Leaving[h] {
			n++
		}
	}
	return n
}

// Drop returns the placement change that removes node from shard sh.
func (m *Map) Drop(sh uint32, node uint64) Command {
	var holders []uint64
	for _, h := range m.Placement[sh] {
		if h != node {
			holders = append(holders, h)
		}
	}
	return Command{Op: "place", Shard: sh, Holders: holders}
}

func contains(ids []uint64, id uint64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// EncodeID turns a node id into the bytes kept in the log store.
func EncodeID(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }
