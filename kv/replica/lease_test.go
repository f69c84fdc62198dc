package replica

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// leaseCluster starts three replicas of group 1 with 50 ms ticks: read
// leases of 250 ms, elections after at least 450 ms without a leader.
func leaseCluster(t *testing.T, quorumReads bool) (*memNet, map[uint64]*Group) {
	t.Helper()
	net := &memNet{hosts: map[uint64]*Host{}, down: map[uint64]bool{}}
	base := t.TempDir()
	groups := map[uint64]*Group{}
	for _, id := range []uint64{1, 2, 3} {
		logs, err := OpenLogStore(filepath.Join(base, fmt.Sprint(id)))
		if err != nil {
			t.Fatal(err)
		}
		h, err := NewHost(HostConfig{NodeID: id, Logs: logs, Transport: memTransport{net, id},
			TickInterval: 50 * time.Millisecond, QuorumReads: quorumReads})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close(); logs.Close() })
		net.mu.Lock()
		net.hosts[id] = h
		net.mu.Unlock()
		if groups[id], err = h.StartGroup(GroupConfig{Group: 1, Peers: []uint64{1, 2, 3}}, &counter{}); err != nil {
			t.Fatal(err)
		}
	}
	return net, groups
}

// isolateLeader cuts the leader off, right after a read that renews its
// lease, and then reads on it until reads fail; it returns when the last
// read was served and when the other replicas had a new leader.
func isolateLeader(t *testing.T, net *memNet, groups map[uint64]*Group) (served int, lastServed, newLeader time.Time) {
	t.Helper()
	ctx := context.Background()
	old := leaderOf(t, groups)
	if err := propose(ctx, old, 1); err != nil {
		t.Fatal(err)
	}
	if err := old.ReadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	net.mu.Lock()
	net.down[old.host.id] = true
	net.mu.Unlock()
	cut := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for time.Since(cut) < 3*time.Second {
			rctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			err := old.ReadIndex(rctx)
			cancel()
			if err == nil {
				served++
				lastServed = time.Now()
			}
		}
	}()
	for newLeader.IsZero() {
		for id, g := range groups {
			if id != old.host.id && g.IsLeader() {
				newLeader = time.Now()
			}
		}
		if time.Since(cut) > 10*time.Second {
			t.Fatal("no new leader among the connected replicas")
		}
		time.Sleep(time.Millisecond)
	}
	<-done
	return served, lastServed, newLeader
}

// TestReadLeaseEndsBeforeANewLeader: a leader cut off from its followers
// keeps serving reads from its lease for a while, and never once the
// others could have elected a new leader.
func TestReadLeaseEndsBeforeANewLeader(t *testing.T) {
	net, groups := leaseCluster(t, false)
	served, last, elected := isolateLeader(t, net, groups)
	if served == 0 {
		t.Fatal("the isolated leader served no read from its lease")
	}
	if !last.Before(elected) {
		t.Fatalf("the isolated leader served a read %v after the new leader was elected", last.Sub(elected))
	}
	t.Logf("%d reads served from the lease; the last %v before the new leader", served, elected.Sub(last))
}

// TestQuorumReadsServeNothingIsolated: with QuorumReads every read needs
// the followers, so a cut-off leader serves none.
func TestQuorumReadsServeNothingIsolated(t *testing.T) {
	net, groups := leaseCluster(t, true)
	if served, _, _ := isolateLeader(t, net, groups); served != 0 {
		t.Fatalf("an isolated leader served %d reads without a lease", served)
	}
}

// TestTransferVoidsLease: a leadership transfer ends the lease at once
// (the new leader is elected without waiting for an election timeout).
func TestTransferVoidsLease(t *testing.T) {
	_, groups := leaseCluster(t, false)
	ctx := context.Background()
	l := leaderOf(t, groups)
	if err := propose(ctx, l, 1); err != nil {
		t.Fatal(err)
	}
	if err := l.ReadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.leaseIndex(); !ok {
		t.Fatal("no lease after a quorum read")
	}
	var to uint64
	for id := range groups {
		if id != l.host.id {
			to = id
			break
		}
	}
	l.TransferLeadership(ctx, to)
	if _, ok := l.leaseIndex(); ok {
		t.Fatal("lease still held after a transfer started")
	}
}
