package dnmanager

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/kura-dev/kura/dfs/blockstore"
	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/dal/daltest"
	"github.com/kura-dev/kura/dfs/dal/open"
	"github.com/kura-dev/kura/dfs/datanode"
	"github.com/kura-dev/kura/dfs/hdfs"
	"github.com/kura-dev/kura/dfs/namespace"
	"github.com/kura-dev/kura/proto/dfspb"
)

func TestMain(m *testing.M) { os.Exit(daltest.Main(m)) }

var super = hdfs.User{Name: "root"}

const hb = 100 * time.Millisecond

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

// cluster is a manager served over gRPC on 127.0.0.1 with a namespace.
type cluster struct {
	m    *Manager
	ns   *namespace.Namespace
	addr string
	// leader is what the manager's Config.Leader reports (true at start).
	leader *atomic.Bool
}

// startCluster starts a manager on the database at url; tweaks change
// its configuration.
func startCluster(t *testing.T, url string, tweaks ...func(*Config)) *cluster {
	t.Helper()
	store, err := open.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	leader := &atomic.Bool{}
	leader.Store(true)
	cfg := Config{HeartbeatInterval: hb, DeadIntervals: 20, ReportBatch: 2, Logger: testLogger(), Leader: leader.Load}
	for _, tweak := range tweaks {
		tweak(&cfg)
	}
	m := New(cfg)
	t.Cleanup(func() { m.Close() })
	ns, err := namespace.New(store, namespace.Config{Placement: m, Capacity: m, MinBlockSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	m.Bind(ns)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	m.RegisterService(srv)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return &cluster{m: m, ns: ns, addr: lis.Addr().String(), leader: leader}
}

func startDatanode(t *testing.T, dir string, namenodes ...string) *datanode.Datanode {
	t.Helper()
	return startDatanodeAt(t, dir, "127.0.0.1:0", namenodes...)
}

// startDatanodeAt is startDatanode serving DataTransfer on dataAddr.
func startDatanodeAt(t *testing.T, dir, dataAddr string, namenodes ...string) *datanode.Datanode {
	t.Helper()
	d, err := datanode.Start(context.Background(), datanode.Config{
		DataDir:             dir,
		DataAddr:            dataAddr,
		Namenodes:           namenodes,
		HeartbeatInterval:   hb,
		BlockReportInterval: time.Hour,
		RetryMin:            20 * time.Millisecond,
		RetryMax:            200 * time.Millisecond,
		RPCTimeout:          5 * time.Second,
		Store:               blockstore.Options{NoSync: true},
		Logger:              testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func storages(ts []namespace.Target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.StorageID)
	}
	slices.Sort(out)
	return out
}

func ids(dns ...*datanode.Datanode) []string {
	var out []string
	for _, d := range dns {
		out = append(out, d.StorageID())
	}
	slices.Sort(out)
	return out
}

func TestCluster(t *testing.T) {
	forEachBackend(t, testCluster)
}

func testCluster(t *testing.T, url string) {
	ctx := context.Background()
	c := startCluster(t, url)
	m, ns := c.m, c.ns
	dns := []*datanode.Datanode{
		startDatanode(t, t.TempDir(), c.addr), startDatanode(t, t.TempDir(), c.addr), startDatanode(t, t.TempDir(), c.addr),
	}
	waitFor(t, "three live datanodes", func() bool { return m.LiveCount() == 3 })

	// Placement and capacity.
	ts, err := m.ChooseTargets(ctx, namespace.PlacementRequest{Replication: 3, BlockSize: 1 << 20})
	if err != nil || !slices.Equal(storages(ts), ids(dns...)) {
		t.Fatalf("ChooseTargets = %v, %v; want the three datanodes", ts, err)
	}
	ts, _ = m.ChooseTargets(ctx, namespace.PlacementRequest{Replication: 5, Exclude: []string{dns[0].StorageID()}})
	if !slices.Equal(storages(ts), ids(dns[1], dns[2])) {
		t.Fatalf("ChooseTargets excluding one = %v", storages(ts))
	}
	if capacity, _, remaining, _ := m.Capacity(ctx); capacity <= 0 || remaining <= 0 {
		t.Fatalf("Capacity = %d, remaining %d", capacity, remaining)
	}

	// Write a block through the three datanodes.
	if _, err := ns.Create(ctx, super, "/f", namespace.CreateOptions{ClientName: "w", Replication: 3, Perm: 0o644}); err != nil {
		t.Fatal(err)
	}
	lb, err := ns.AddBlock(ctx, "/f", "w", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var pipeline []string
	for _, tg := range lb.Targets {
		pipeline = append(pipeline, tg.Addr)
	}
	data := bytes.Repeat([]byte("kura"), 10000)
	client := datanode.NewClient("test")
	defer client.Close()
	blk := datanode.Block{ID: uint64(lb.Block.BlockID), GenStamp: uint64(lb.Block.GenerationStamp)}
	if n, err := client.WriteBlock(ctx, pipeline, blk, bytes.NewReader(data)); err != nil || n != int64(len(data)) {
		t.Fatalf("WriteBlock = %d, %v", n, err)
	}
	waitFor(t, "Complete", func() bool {
		done, err := ns.Complete(ctx, "/f", "w", int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		return done
	})
	finalized := func() []string { return finalizedReplicas(t, ns, lb.Block.InodeID, lb.Block.BlockID) }
	// Complete needs one finalized replica; the others' reports follow.
	waitFor(t, "three finalized replicas", func() bool { return slices.Equal(finalized(), ids(dns...)) })
	locations := func() []namespace.Target {
		fb, err := ns.BlockLocations(ctx, super, "/f")
		if err != nil {
			t.Fatal(err)
		}
		if len(fb.Blocks) != 1 {
			t.Fatalf("blocks of /f: %d", len(fb.Blocks))
		}
		m.ResolveBlocks(fb)
		return fb.Blocks[0].Targets
	}
	waitFor(t, "three located replicas", func() bool {
		got := locations()
		return len(got) == 3 && got[0].Addr != ""
	})

	// Full report reconciliation: a lost row comes back, an unreported
	// replica's row goes.
	sid1 := dns[1].StorageID()
	if err := ns.Store().Tx(ctx, func(tx dal.Tx) error {
		return tx.RemoveReplica(ctx, lb.Block.InodeID, lb.Block.BlockID, sid1)
	}); err != nil {
		t.Fatal(err)
	}
	report := func(d *datanode.Datanode) *dfspb.BlockReportRequest {
		req := &dfspb.BlockReportRequest{StorageId: d.StorageID()}
		for _, bi := range d.Store().List() {
			req.Blocks = append(req.Blocks, &dfspb.ReportedBlock{Id: bi.ID, Genstamp: bi.GenStamp, Length: bi.Length, State: dfspb.ReplicaState_FINALIZED})
		}
		return req
	}
	if _, err := m.BlockReport(ctx, report(dns[1])); err != nil {
		t.Fatal(err)
	}
	if got := finalized(); !slices.Contains(got, sid1) {
		t.Fatalf("after a report, finalized replicas = %v lack %s", got, sid1)
	}
	if _, err := m.BlockReport(ctx, &dfspb.BlockReportRequest{StorageId: sid1}); err != nil {
		t.Fatal(err)
	}
	if got := finalized(); slices.Contains(got, sid1) {
		t.Fatalf("after an empty report, finalized replicas = %v still have %s", got, sid1)
	}
	if _, err := m.BlockReport(ctx, report(dns[1])); err != nil {
		t.Fatal(err)
	}
	if got := finalized(); !slices.Equal(got, ids(dns...)) {
		t.Fatalf("finalized replicas = %v, want %v", got, ids(dns...))
	}

	// An incremental report of a block no file has: deleted on a heartbeat.
	stray := datanode.Block{ID: 1 << 40, GenStamp: 1}
	if _, err := client.WriteBlock(ctx, []string{dns[0].Addr()}, stray, bytes.NewReader(data[:1000])); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stray block's deletion", func() bool {
		_, err := dns[0].Store().Stat(stray.ID)
		return err != nil
	})

	// A datanode started after the manager, with a block nobody knows:
	// it registers on its own and its full report gets the block deleted.
	dir := t.TempDir()
	pre := startDatanode(t, dir)
	if _, err := client.WriteBlock(ctx, []string{pre.Addr()}, stray, bytes.NewReader(data[:1000])); err != nil {
		t.Fatal(err)
	}
	if err := pre.Close(); err != nil {
		t.Fatal(err)
	}
	late := startDatanode(t, dir, c.addr)
	if _, err := late.Store().Stat(stray.ID); err != nil {
		t.Fatalf("the late datanode lost its block before reporting: %v", err)
	}
	waitFor(t, "the late datanode", func() bool { return m.LiveCount() == 4 })
	waitFor(t, "the late datanode's stray block's deletion", func() bool {
		_, err := late.Store().Stat(stray.ID)
		return err != nil
	})

	// A datanode stops: after the dead interval it is out of placement and
	// locations, and its block is copied to the late datanode, but only by
	// the leader: while this namenode is not the leader nothing is copied;
	// once it leads, the blocks of the datanodes dead by then are.
	c.leader.Store(false)
	dead := dns[2].StorageID()
	if err := dns[2].Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stopped datanode's death", func() bool { return m.LiveCount() == 3 })
	if _, ok := m.Addr(dead); ok {
		t.Fatal("Addr of a dead datanode")
	}
	for range 20 {
		ts, _ := m.ChooseTargets(ctx, namespace.PlacementRequest{Replication: 3})
		if len(ts) != 3 || slices.Contains(storages(ts), dead) {
			t.Fatalf("ChooseTargets after a death = %v", storages(ts))
		}
	}
	if got := storages(locations()); slices.Contains(got, dead) {
		t.Fatalf("locations after a death = %v", got)
	}
	time.Sleep(10 * hb) // twenty monitor rounds
	if slices.Contains(finalized(), late.StorageID()) {
		t.Fatal("a namenode that is not the leader re-replicated the dead datanode's block")
	}
	c.leader.Store(true)
	waitFor(t, "re-replication to the late datanode", func() bool {
		return slices.Contains(finalized(), late.StorageID())
	})
	if got := storages(locations()); !slices.Equal(got, ids(dns[0], dns[1], late)) {
		t.Fatalf("locations after re-replication = %v", got)
	}
	var buf bytes.Buffer
	if _, err := client.ReadBlock(ctx, late.Addr(), blk, 0, int64(len(data)), &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("read of the re-replicated block: %v", err)
	}
}

func TestPlacementSpreads(t *testing.T) {
	m := New(Config{Logger: testLogger()})
	defer m.Close()
	ctx := context.Background()
	for i, rem := range []int64{100 << 30, 100 << 30, 1 << 30, 0} {
		id := string(rune('a' + i))
		if _, err := m.Register(ctx, &dfspb.RegisterRequest{Datanode: &dfspb.DatanodeInfo{StorageId: id, DataAddr: "h" + id + ":1", Hostname: "h" + id, Capacity: 200 << 30}}); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Heartbeat(ctx, &dfspb.HeartbeatRequest{StorageId: id, Usage: &dfspb.StorageUsage{Capacity: 200 << 30, Remaining: rem}}); err != nil {
			t.Fatal(err)
		}
	}
	counts := map[string]int{}
	for range 2000 {
		ts, _ := m.ChooseTargets(ctx, namespace.PlacementRequest{Replication: 1, BlockSize: 1 << 20})
		if len(ts) != 1 {
			t.Fatalf("targets = %v", ts)
		}
		counts[ts[0].StorageID]++
	}
	if counts["d"] != 0 || counts["c"] > 100 || counts["a"] < 800 || counts["b"] < 800 {
		t.Fatalf("placement counts = %v", counts)
	}
	// The writer's own datanode comes first.
	ts, _ := m.ChooseTargets(ctx, namespace.PlacementRequest{Replication: 3, BlockSize: 1 << 20, ClientMachine: "hc"})
	if len(ts) != 3 || ts[0].StorageID != "c" {
		t.Fatalf("writer-local targets = %v", ts)
	}
	// An unknown datanode is asked to register.
	if resp, _ := m.Heartbeat(ctx, &dfspb.HeartbeatRequest{StorageId: "zz"}); !resp.Reregister {
		t.Fatal("unknown datanode not asked to register")
	}
}

// finalizedReplicas returns the sorted storage ids holding a finalized
// replica of block blockID of inode inodeID, as ns's database records.
func finalizedReplicas(t *testing.T, ns *namespace.Namespace, inodeID, blockID int64) []string {
	t.Helper()
	var out []string
	err := ns.Store().ReadTx(context.Background(), func(tx dal.Tx) error {
		reps, err := tx.ListReplicas(context.Background(), inodeID, blockID)
		for _, r := range reps {
			if r.State == dal.ReplicaFinalized {
				out = append(out, r.StorageID)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// forEachBackend runs fn as a subtest on a fresh SQLite database and on a
// fresh PostgreSQL database.
func forEachBackend(t *testing.T, fn func(t *testing.T, url string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, "sqlite://"+filepath.Join(t.TempDir(), "meta.db")) })
	t.Run("postgres", func(t *testing.T) { fn(t, daltest.PostgresURL(t)) })
}
