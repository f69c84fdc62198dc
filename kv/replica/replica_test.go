package replica

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// counter is a state machine that sums 8-byte big-endian commands; the id
// is the command itself.
type counter struct {
	mu      sync.Mutex
	applied uint64
	sum     uint64
	seen    []uint64
}

func (c *counter) Applied() uint64 { c.mu.Lock(); defer c.mu.Unlock(); return c.applied }
func (c *counter) Apply(index uint64, data []byte) (uint64, any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := binary.BigEndian.Uint64(data)
	c.sum += v
	c.seen = append(c.seen, v)
	c.applied = index
	return v, c.sum
}
func (c *counter) SnapshotData() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := binary.BigEndian.AppendUint64(nil, c.applied)
	return binary.BigEndian.AppendUint64(b, c.sum), nil
}
func (c *counter) Restore(data []byte, index uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.applied = binary.BigEndian.Uint64(data)
	c.sum = binary.BigEndian.Uint64(data[8:])
	if c.applied < index {
		c.applied = index
	}
	return nil
}
func (c *counter) Sync() error { return nil }

// memNet connects hosts in one process; down nodes drop everything.
type memNet struct {
	mu    sync.Mutex
	hosts map[uint64]*Host
	down  map[uint64]bool
}

type memTransport struct {
	net  *memNet
	self uint64
}

func (t memTransport) Send(group uint32, msgs []raftpb.Message) {
	for _, m := range msgs {
		t.net.mu.Lock()
		h := t.net.hosts[m.To]
		dead := t.net.down[m.To] || t.net.down[t.self]
		t.net.mu.Unlock()
		if h != nil && !dead {
			go h.Step(context.Background(), group, m) //nolint:errcheck
		}
	}
}

func (t memTransport) SendSnapshot(ctx context.Context, group uint32, m raftpb.Message) error {
	t.Send(group, []raftpb.Message{m})
	return nil
}

func startHost(t *testing.T, net *memNet, dir string, id uint64, peers []uint64, sm StateMachine) (*Host, *Group) {
	t.Helper()
	logs, err := OpenLogStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHost(HostConfig{NodeID: id, Logs: logs, Transport: memTransport{net, id}, TickInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	net.mu.Lock()
	net.hosts[id] = h
	net.down[id] = false
	net.mu.Unlock()
	g, err := h.StartGroup(GroupConfig{Group: 1, Peers: peers, SnapshotEvery: 50, KeepEntries: 5}, sm)
	if err != nil {
		t.Fatal(err)
	}
	return h, g
}

func leaderOf(t *testing.T, groups map[uint64]*Group) *Group {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, g := range groups {
			if g.IsLeader() {
				return g
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no leader elected")
	return nil
}

func propose(ctx context.Context, g *Group, v uint64) error {
	_, err := g.Propose(ctx, v, binary.BigEndian.AppendUint64(nil, v))
	return err
}

// TestReplicateRestartCatchUp: three replicas agree; a replica that was
// down while the log was compacted catches up from a snapshot; a restarted
// replica replays its own log without applying anything twice.
func TestReplicateRestartCatchUp(t *testing.T) {
	net := &memNet{hosts: map[uint64]*Host{}, down: map[uint64]bool{}}
	base := t.TempDir()
	peers := []uint64{1, 2, 3}
	hosts := map[uint64]*Host{}
	groups := map[uint64]*Group{}
	sms := map[uint64]*counter{}
	for _, id := range peers {
		sms[id] = &counter{}
		hosts[id], groups[id] = startHost(t, net, filepath.Join(base, fmt.Sprint(id)), id, peers, sms[id])
	}
	defer func() {
		for _, h := range hosts {
			h.Close()
			h.logs.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	want := uint64(0)
	next := uint64(1)
	write := func(n int) {
		for i := 0; i < n; i++ {
			for {
				l := leaderOf(t, groups)
				if err := propose(ctx, l, next); err == nil {
					break
				} else if ctx.Err() != nil {
					t.Fatal(err)
				}
			}
			want += next
			next++
		}
	}
	write(20)
	// Node 3 goes down; enough entries for a compaction past its log.
	net.mu.Lock()
	net.down[3] = true
	net.mu.Unlock()
	hosts[3].Close()
	hosts[3].logs.Close()
	delete(groups, 3)
	write(120)
	// Node 3 comes back on its data directory.
	sms[3] = &counter{}
	hosts[3], groups[3] = startHost(t, net, filepath.Join(base, "3"), 3, nil, sms[3])
	write(5)
	for _, id := range peers {
		deadline := time.Now().Add(30 * time.Second)
		for {
			sms[id].mu.Lock()
			sum := sms[id].sum
			sms[id].mu.Unlock()
			if sum == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d: sum %d, want %d", id, sum, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// A linearizable read on the leader sees every acknowledged write.
	l := leaderOf(t, groups)
	if err := l.ReadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	// No replica applied a value twice (the restarted node may have been
	// restored from a snapshot, so it saw a suffix only).
	for id, sm := range sms {
		seen := map[uint64]bool{}
		for _, v := range sm.seen {
			if seen[v] {
				t.Fatalf("node %d applied %d twice", id, v)
			}
			seen[v] = true
		}
	}
}

// TestProposeNotLeader: a follower refuses proposals without making them.
func TestProposeNotLeader(t *testing.T) {
	net := &memNet{hosts: map[uint64]*Host{}, down: map[uint64]bool{}}
	base := t.TempDir()
	groups := map[uint64]*Group{}
	var hs []*Host
	for _, id := range []uint64{1, 2, 3} {
		h, g := startHost(t, net, filepath.Join(base, fmt.Sprint(id)), id, []uint64{1, 2, 3}, &counter{})
		groups[id] = g
		hs = append(hs, h)
	}
	defer func() {
		for _, h := range hs {
			h.Close()
			h.logs.Close()
		}
	}()
	l := leaderOf(t, groups)
	for id, g := range groups {
		if g == l {
			continue
		}
		if err := propose(context.Background(), g, 7); err != ErrNotLeader {
			t.Fatalf("follower %d: Propose = %v, want ErrNotLeader", id, err)
		}
		if err := g.ReadIndex(context.Background()); err == nil {
			t.Fatalf("follower %d: ReadIndex succeeded", id)
		}
	}
}
