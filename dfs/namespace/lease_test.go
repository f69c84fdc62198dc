package namespace

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/hdfs"
)

func TestLeases(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	cfg := Config{
		Clock:          clock.Now,
		Placement:      fakePlacement{storages: []string{"s1"}},
		LeaseSoftLimit: time.Minute,
		LeaseHardLimit: time.Hour,
	}
	forEachBackend(t, cfg, func(t *testing.T, ns *Namespace) {
		ok(t, ns.Mkdirs(ctx, super, "/d", 0o777, false))
		_, err := ns.Create(ctx, alice, "/d/f", CreateOptions{Perm: 0o666, ClientName: "A", ClientMachine: "ha"})
		ok(t, err)

		// A second writer is refused, with or without overwrite, and so is
		// the same writer creating again, and an append.
		for _, o := range []CreateOptions{{ClientName: "B", ClientMachine: "hb"}, {ClientName: "B", ClientMachine: "hb", Overwrite: true}, {ClientName: "A", Overwrite: true}} {
			_, err := ns.Create(ctx, bob, "/d/f", o)
			wantClass(t, err, hdfs.ErrAlreadyBeingCreated)
		}
		_, err = ns.Create(ctx, bob, "/d/f", CreateOptions{ClientName: "B", ClientMachine: "hb"})
		if !strings.Contains(err.Error(), "Failed to CREATE_FILE /d/f for B on hb because this file lease is currently owned by A on ha") {
			t.Errorf("message: %v", err)
		}
		wantClass(t, errOf(ns.Append(ctx, bob, "/d/f", "B", "hb")), hdfs.ErrAlreadyBeingCreated)

		// Renewal keeps the lease past the soft limit.
		clock.Advance(50 * time.Second)
		ok(t, ns.RenewLease(ctx, "A"))
		ok(t, ns.RenewLease(ctx, "nobody"))
		clock.Advance(50 * time.Second)
		wantClass(t, errOf(ns.Create(ctx, bob, "/d/f", CreateOptions{ClientName: "B", Overwrite: true})), hdfs.ErrAlreadyBeingCreated)

		// Past the soft limit another writer takes over.
		_, err = ns.AddBlock(ctx, "/d/f", "A", 0, nil)
		ok(t, err)
		ok(t, ns.RenewLease(ctx, "A"))
		clock.Advance(2 * time.Minute)
		ar, err := ns.Append(ctx, bob, "/d/f", "B", "hb")
		ok(t, err)
		if ar.Status.ClientName != "B" || ar.LastBlock != nil {
			t.Errorf("takeover: %+v %+v", ar.Status, ar.LastBlock)
		}
		wantClass(t, errOf(ns.AddBlock(ctx, "/d/f", "A", 0, nil)), hdfs.ErrLeaseExpired)
		checkFsck(t, ns)

		// RecoverLeases closes files whose writer passed the hard limit.
		_, err = ns.Create(ctx, alice, "/d/g", CreateOptions{ClientName: "C"})
		ok(t, err)
		b, err := ns.AddBlock(ctx, "/d/g", "C", 0, nil)
		ok(t, err)
		_, err = ns.AddBlock(ctx, "/d/g", "C", 3000, nil) // commits 3000 bytes of b
		ok(t, err)
		_, err = ns.Create(ctx, alice, "/d/h", CreateOptions{ClientName: "C"})
		ok(t, err)
		n, err := ns.RecoverLeases(ctx, clock.Now())
		ok(t, err)
		if n != 0 {
			t.Errorf("recovered %d files of fresh leases", n)
		}
		clock.Advance(30 * time.Minute)
		ok(t, ns.RenewLease(ctx, "B")) // B stays; A and C expire
		clock.Advance(31 * time.Minute)
		n, err = ns.RecoverLeases(ctx, clock.Now())
		ok(t, err)
		if n != 2 {
			t.Errorf("recovered %d files, want 2 (/d/g, /d/h)", n)
		}
		st, err := ns.Stat(ctx, super, "/d/g")
		ok(t, err)
		if st.UnderConstruction || st.Length != 3000 {
			t.Errorf("recovered file: %+v, want closed with length 3000", st)
		}
		fb, err := ns.BlockLocations(ctx, super, "/d/g")
		ok(t, err)
		if len(fb.Blocks) != 1 || fb.Blocks[0].Block.BlockID != b.Block.BlockID {
			t.Errorf("recovered blocks: %+v (the empty last block should be gone)", fb.Blocks)
		}
		st, err = ns.Stat(ctx, super, "/d/f")
		ok(t, err)
		if !st.UnderConstruction || st.ClientName != "B" {
			t.Errorf("B's file: %+v", st)
		}
		r := checkFsck(t, ns)
		if r.Leases != 1 || r.LeasePaths != 1 || r.OpenFiles != 1 {
			t.Errorf("leases after recovery: %+v", r)
		}
		// B finishes: its lease stays, idle, until it expires.
		_, err = ns.AddBlock(ctx, "/d/f", "B", 0, nil)
		ok(t, err)
		done, err := ns.Complete(ctx, "/d/f", "B", 10)
		ok(t, err)
		if done {
			t.Error("complete without replicas: done")
		}
		fb, err = ns.BlockLocations(ctx, super, "/d/f")
		ok(t, err)
		for _, b := range fb.Blocks {
			ok(t, ns.BlockReceived(ctx, b.Block.BlockID, "s1"))
		}
		done, err = ns.Complete(ctx, "/d/f", "B", 10)
		ok(t, err)
		if !done {
			t.Error("complete: not done")
		}
		if r := checkFsck(t, ns); r.Leases != 0 || r.IdleLeases != 1 || r.OpenFiles != 0 {
			t.Errorf("after complete: %+v", r)
		}
		ok(t, ns.RenewLease(ctx, "B")) // an idle lease is still renewed
		n, err = ns.RecoverLeases(ctx, clock.Now().Add(ns.cfg.LeaseHardLimit-time.Second))
		ok(t, err)
		if r := checkFsck(t, ns); n != 0 || r.IdleLeases != 1 {
			t.Errorf("recovery before the idle lease expired: %d files, %+v", n, r)
		}
		n, err = ns.RecoverLeases(ctx, clock.Now().Add(ns.cfg.LeaseHardLimit+time.Second))
		ok(t, err)
		if r := checkFsck(t, ns); n != 0 || r.Leases != 0 || r.IdleLeases != 0 {
			t.Errorf("recovery after the idle lease expired: %d files, %+v", n, r)
		}
	})
}

// TestLeaseWrittenOncePerWindow checks that a writer creating files in
// quick succession has its lease written once per renewals window, and that
// a create right after lease recovery deleted its idle lease writes it
// again (its lease path references the lease).
func TestLeaseWrittenOncePerWindow(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	cfg := Config{Clock: clock.Now, LeaseSoftLimit: time.Minute, LeaseHardLimit: time.Hour}
	forEachBackend(t, cfg, func(t *testing.T, ns *Namespace) {
		ok(t, ns.Mkdirs(ctx, super, "/d", 0o777, false))
		renewal := func() int64 {
			t.Helper()
			var at int64
			ok(t, ns.Store().ReadTx(ctx, func(tx dal.Tx) error {
				l, err := tx.GetLease(ctx, "A")
				if err == nil {
					at = l.LastRenewal
				}
				return err
			}))
			return at
		}
		create := func(name string) {
			t.Helper()
			_, err := ns.Create(ctx, alice, "/d/"+name, CreateOptions{ClientName: "A"})
			ok(t, err)
			_, err = ns.Complete(ctx, "/d/"+name, "A", 0)
			ok(t, err)
		}
		t0 := clock.Now().UnixMilli()
		create("f1")
		clock.Advance(500 * time.Millisecond)
		create("f2")
		if got := renewal(); got != t0 {
			t.Errorf("lease written at %d by the create 500ms later, want it left at %d", got, t0)
		}
		clock.Advance(600 * time.Millisecond)
		create("f3")
		if got, want := renewal(), clock.Now().UnixMilli(); got != want {
			t.Errorf("lease renewal %d after the window, want %d", got, want)
		}
		// Recovery deletes the idle lease (from an hour on); a create at
		// once must write it again.
		n, err := ns.RecoverLeases(ctx, clock.Now().Add(time.Hour+time.Second))
		ok(t, err)
		if r := checkFsck(t, ns); n != 0 || r.Leases+r.IdleLeases != 0 {
			t.Fatalf("after recovery: %d files, %+v", n, r)
		}
		create("f4")
		if got, want := renewal(), clock.Now().UnixMilli(); got != want {
			t.Errorf("lease renewal %d after recovery deleted it, want %d", got, want)
		}
		checkFsck(t, ns)
	})
}
