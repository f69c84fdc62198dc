package datanode

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/kura-dev/kura/dfs/blockstore"
	"github.com/kura-dev/kura/proto/dfspb"
)

// fakeNamenode records what datanodes tell it and hands out commands.
type fakeNamenode struct {
	dfspb.UnimplementedDatanodeProtocolServer
	addr string
	srv  *grpc.Server

	mu         sync.Mutex
	registered map[string]*dfspb.DatanodeInfo
	heartbeats map[string]int
	reports    map[string][]*dfspb.ReportedBlock // the latest full report
	events     map[string][]*dfspb.BlockEvent
	commands   map[string][]*dfspb.DatanodeCommand // for the next heartbeat
}

// startFakeNamenode serves on addr ("" for a free port).
func startFakeNamenode(t *testing.T, addr string) *fakeNamenode {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nn := &fakeNamenode{
		addr:       lis.Addr().String(),
		srv:        grpc.NewServer(),
		registered: map[string]*dfspb.DatanodeInfo{},
		heartbeats: map[string]int{},
		reports:    map[string][]*dfspb.ReportedBlock{},
		events:     map[string][]*dfspb.BlockEvent{},
		commands:   map[string][]*dfspb.DatanodeCommand{},
	}
	dfspb.RegisterDatanodeProtocolServer(nn.srv, nn)
	go nn.srv.Serve(lis)
	t.Cleanup(nn.srv.Stop)
	return nn
}

func (nn *fakeNamenode) Register(_ context.Context, req *dfspb.RegisterRequest) (*dfspb.RegisterResponse, error) {
	nn.mu.Lock()
	defer nn.mu.Unlock()
	nn.registered[req.Datanode.StorageId] = req.Datanode
	return &dfspb.RegisterResponse{NamenodeId: nn.addr}, nil
}

func (nn *fakeNamenode) Heartbeat(_ context.Context, req *dfspb.HeartbeatRequest) (*dfspb.HeartbeatResponse, error) {
	nn.mu.Lock()
	defer nn.mu.Unlock()
	if nn.registered[req.StorageId] == nil {
		return &dfspb.HeartbeatResponse{Reregister: true}, nil
	}
	nn.heartbeats[req.StorageId]++
	cmds := nn.commands[req.StorageId]
	delete(nn.commands, req.StorageId)
	return &dfspb.HeartbeatResponse{Commands: cmds}, nil
}

func (nn *fakeNamenode) BlockReport(_ context.Context, req *dfspb.BlockReportRequest) (*dfspb.BlockReportResponse, error) {
	nn.mu.Lock()
	defer nn.mu.Unlock()
	nn.reports[req.StorageId] = req.Blocks
	return &dfspb.BlockReportResponse{}, nil
}

func (nn *fakeNamenode) BlockReceived(_ context.Context, req *dfspb.BlockReceivedRequest) (*dfspb.BlockReceivedResponse, error) {
	nn.mu.Lock()
	defer nn.mu.Unlock()
	nn.events[req.StorageId] = append(nn.events[req.StorageId], req.Events...)
	return &dfspb.BlockReceivedResponse{}, nil
}

// hasEvent reports whether storage reported kind for block id.
func (nn *fakeNamenode) hasEvent(storage string, kind dfspb.BlockEventKind, id uint64, length int64) bool {
	nn.mu.Lock()
	defer nn.mu.Unlock()
	return slices.ContainsFunc(nn.events[storage], func(e *dfspb.BlockEvent) bool {
		return e.Kind == kind && e.Block.Id == id && (length < 0 || e.Block.Length == length)
	})
}

func (nn *fakeNamenode) reported(storage string, id uint64) bool {
	nn.mu.Lock()
	defer nn.mu.Unlock()
	return slices.ContainsFunc(nn.reports[storage], func(b *dfspb.ReportedBlock) bool { return b.Id == id })
}

func (nn *fakeNamenode) isRegistered(storage string) bool {
	nn.mu.Lock()
	defer nn.mu.Unlock()
	return nn.registered[storage] != nil
}

func (nn *fakeNamenode) heartbeatCount(storage string) int {
	nn.mu.Lock()
	defer nn.mu.Unlock()
	return nn.heartbeats[storage]
}

// waitFor polls cond until it holds or 15s pass.
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

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startDatanode starts a datanode on a free port of 127.0.0.1.
func startDatanode(t *testing.T, namenodes ...string) *Datanode {
	t.Helper()
	d, err := Start(context.Background(), Config{
		DataDir:             t.TempDir(),
		DataAddr:            "127.0.0.1:0",
		Namenodes:           namenodes,
		HeartbeatInterval:   50 * time.Millisecond,
		BlockReportInterval: 300 * time.Millisecond,
		RetryMin:            20 * time.Millisecond,
		RetryMax:            200 * time.Millisecond,
		RPCTimeout:          5 * time.Second,
		Store:               blockstore.Options{NoSync: true},
		Logger:              testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return d
}

func randomData(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 42))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func addrs(dns ...*Datanode) []string {
	var out []string
	for _, d := range dns {
		out = append(out, d.Addr())
	}
	return out
}

func readAll(t *testing.T, c *Client, addr string, b Block, off, length int64) ([]byte, error) {
	t.Helper()
	var buf bytes.Buffer
	n, err := c.ReadBlock(context.Background(), addr, b, off, length, &buf)
	if int64(buf.Len()) != n {
		t.Fatalf("ReadBlock returned %d, wrote %d", n, buf.Len())
	}
	return buf.Bytes(), err
}

func TestPipelineWrite(t *testing.T) {
	nn := startFakeNamenode(t, "")
	dns := []*Datanode{startDatanode(t, nn.addr), startDatanode(t, nn.addr), startDatanode(t, nn.addr)}
	c := NewClient("test")
	defer c.Close()

	data := randomData(5<<20 + 1000) // 81 packets, a partial last chunk
	b := Block{ID: 1073741825, GenStamp: 1001}
	n, err := c.WriteBlock(context.Background(), addrs(dns...), b, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(data)) {
		t.Fatalf("wrote %d bytes, want %d", n, len(data))
	}
	for i, d := range dns {
		bi, err := d.Store().Stat(b.ID)
		if err != nil {
			t.Fatalf("datanode %d: %v", i, err)
		}
		if bi.State != blockstore.Finalized || bi.Length != n || bi.GenStamp != b.GenStamp {
			t.Errorf("datanode %d: replica %+v, want finalized, %d bytes, genstamp %d", i, bi, n, b.GenStamp)
		}
		if err := d.Store().Verify(context.Background(), b.ID); err != nil {
			t.Errorf("datanode %d: %v", i, err)
		}
		got, err := readAll(t, c, d.Addr(), b, 0, 0)
		if err != nil {
			t.Fatalf("read from datanode %d: %v", i, err)
		}
		if !bytes.Equal(got, data) {
			t.Errorf("datanode %d: read %d bytes that differ from the %d written", i, len(got), len(data))
		}
		waitFor(t, "BlockReceived from each datanode", func() bool {
			return nn.hasEvent(d.StorageID(), dfspb.BlockEventKind_RECEIVED, b.ID, n)
		})
	}
	// Ranges that start and end inside chunks and packets.
	for _, r := range [][2]int64{{1, 10}, {511, 2}, {70000, 200000}, {n - 7, 7}, {n - 1000, 0}, {n, 0}} {
		got, err := readAll(t, c, dns[1].Addr(), b, r[0], r[1])
		if err != nil {
			t.Fatalf("read [%d,+%d): %v", r[0], r[1], err)
		}
		end := int64(len(data))
		if r[1] > 0 {
			end = r[0] + r[1]
		}
		if !bytes.Equal(got, data[r[0]:end]) {
			t.Errorf("read [%d,+%d): wrong data (%d bytes)", r[0], r[1], len(got))
		}
	}
	// The package-level helpers and an empty block.
	empty := Block{ID: 7, GenStamp: 1}
	if n, err := WriteBlock(context.Background(), addrs(dns[2], dns[0]), empty, bytes.NewReader(nil)); err != nil || n != 0 {
		t.Fatalf("empty block: %d, %v", n, err)
	}
	var buf bytes.Buffer
	if n, err := ReadBlock(context.Background(), dns[0].Addr(), empty, 0, 0, &buf); err != nil || n != 0 {
		t.Fatalf("read empty block: %d, %v", n, err)
	}
	// A second write of the same block is refused by the first node.
	_, err = c.WriteBlock(context.Background(), addrs(dns...), b, bytes.NewReader(data))
	var pe *PipelineError
	if !errors.As(err, &pe) || pe.Index != 0 {
		t.Fatalf("rewrite: %v, want a PipelineError at node 0", err)
	}
}

func TestBadPacketChecksum(t *testing.T) {
	dns := []*Datanode{startDatanode(t), startDatanode(t), startDatanode(t)}
	c := NewClient("test")
	defer c.Close()
	c.corrupt = func(p *dfspb.Packet) {
		if p.Seqno == 3 {
			p.Data[100] ^= 1
		}
	}
	b := Block{ID: 42, GenStamp: 1}
	_, err := c.WriteBlock(context.Background(), addrs(dns...), b, bytes.NewReader(randomData(1<<20)))
	var pe *PipelineError
	if !errors.As(err, &pe) {
		t.Fatalf("write with a bad packet: %v, want a PipelineError", err)
	}
	if pe.Index != 0 || pe.Node != dns[0].Addr() || pe.Status != dfspb.AckStatus_ERROR_CHECKSUM || !errors.Is(err, blockstore.ErrPacketChecksum) {
		t.Fatalf("write with a bad packet: %v (index %d, status %v), want a checksum error at node 0", err, pe.Index, pe.Status)
	}
	t.Log(err)
	for i, d := range dns {
		if bi, err := d.Store().Stat(b.ID); err == nil && bi.State == blockstore.Finalized {
			t.Errorf("datanode %d finalized the replica: %+v", i, bi)
		}
	}
	if _, err := dns[0].Store().Stat(b.ID); !errors.Is(err, blockstore.ErrNotFound) {
		t.Errorf("datanode 0 kept the replica that received a bad packet: %v", err)
	}
}

func TestCorruptReplica(t *testing.T) {
	dns := []*Datanode{startDatanode(t), startDatanode(t)}
	c := NewClient("test")
	defer c.Close()
	data := randomData(1<<20 + 300)
	b := Block{ID: 0x12345, GenStamp: 5}
	if _, err := c.WriteBlock(context.Background(), addrs(dns...), b, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	// Flip a byte of the first replica's data file.
	var path string
	filepath.WalkDir(filepath.Join(dns[0].Store().Dir(), "current"), func(p string, e os.DirEntry, err error) error {
		if err == nil && e.Name() == "blk_74565" {
			path = p
		}
		return nil
	})
	if path == "" {
		t.Fatal("no data file of the block on datanode 0")
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var one [1]byte
	f.ReadAt(one[:], 700000)
	one[0] ^= 0x80
	f.WriteAt(one[:], 700000)
	f.Close()

	got, err := readAll(t, c, dns[0].Addr(), b, 0, 0)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of the corrupt replica: %v, want ErrCorrupt", err)
	}
	t.Log(err)
	if len(got) > 700000 || !bytes.Equal(got, data[:len(got)]) {
		t.Fatalf("read of the corrupt replica gave %d bytes, some past or wrong before the damage", len(got))
	}
	// A caller goes on at the other replica from where it stopped.
	rest, err := readAll(t, c, dns[1].Addr(), b, int64(len(got)), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(got, rest...), data) {
		t.Fatal("the data read from the two replicas differs from what was written")
	}
	// A range before the damage still reads from the damaged replica.
	if _, err := readAll(t, c, dns[0].Addr(), b, 0, 4096); err != nil {
		t.Fatalf("read before the damage: %v", err)
	}
	if bi, _ := dns[0].Store().Stat(b.ID); bi.Corrupt == "" {
		t.Error("the store does not report the replica corrupt")
	}
}

// stopAfter is a reader that runs stop once n bytes were read.
type stopAfter struct {
	r    io.Reader
	n    int
	stop func()
}

func (s *stopAfter) Read(p []byte) (int, error) {
	if s.n <= 0 && s.stop != nil {
		s.stop()
		s.stop = nil
	}
	n, err := s.r.Read(p)
	s.n -= n
	return n, err
}

func TestDownstreamFailure(t *testing.T) {
	dns := []*Datanode{startDatanode(t), startDatanode(t), startDatanode(t)}
	c := NewClient("test")
	defer c.Close()
	b := Block{ID: 99, GenStamp: 3}
	r := &stopAfter{r: bytes.NewReader(randomData(8 << 20)), n: 1 << 20, stop: func() { dns[2].Close() }}
	_, err := c.WriteBlock(context.Background(), addrs(dns...), b, r)
	var pe *PipelineError
	if !errors.As(err, &pe) {
		t.Fatalf("write with a dead downstream: %v, want a PipelineError", err)
	}
	if pe.Index != 2 || pe.Node != dns[2].Addr() {
		t.Fatalf("write with a dead downstream: %v names node %d (%s), want node 2 (%s)", err, pe.Index, pe.Node, dns[2].Addr())
	}
	t.Log(err)
	for _, d := range dns[:2] {
		waitFor(t, "the replica left being written", func() bool {
			bi, err := d.Store().Stat(b.ID)
			return err == nil && bi.State == blockstore.BeingWritten && !bi.Writing
		})
	}
	// A pipeline whose second node is down fails at setup, naming it.
	_, err = c.WriteBlock(context.Background(), addrs(dns...), Block{ID: 100, GenStamp: 1}, bytes.NewReader([]byte("x")))
	if !errors.As(err, &pe) || pe.Index != 2 {
		t.Fatalf("write to a pipeline with a dead node: %v, want a PipelineError at node 2", err)
	}
	if _, err := dns[0].Store().Stat(100); !errors.Is(err, blockstore.ErrNotFound) {
		t.Errorf("a failed setup left a replica: %v", err)
	}
}

func TestNamenodeProtocol(t *testing.T) {
	nn1 := startFakeNamenode(t, "")
	// A namenode that is not up yet: take a free port and let it go.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	late := l.Addr().String()
	l.Close()

	d := startDatanode(t, nn1.addr, late)
	sid := d.StorageID()
	waitFor(t, "registration", func() bool { return nn1.isRegistered(sid) })
	waitFor(t, "heartbeats", func() bool { return nn1.heartbeatCount(sid) >= 3 })

	b := Block{ID: 5, GenStamp: 2}
	if _, err := WriteBlock(context.Background(), []string{d.Addr()}, b, bytes.NewReader(randomData(3000))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "BlockReceived", func() bool { return nn1.hasEvent(sid, dfspb.BlockEventKind_RECEIVED, b.ID, 3000) })
	waitFor(t, "a periodic block report with the block", func() bool { return nn1.reported(sid, b.ID) })
	if d.Registered(late) {
		t.Fatal("registered with a namenode that is not up")
	}

	nn2 := startFakeNamenode(t, late)
	waitFor(t, "registration with the late namenode", func() bool { return nn2.isRegistered(sid) && d.Registered(late) })
	waitFor(t, "a block report to the late namenode", func() bool { return nn2.reported(sid, b.ID) })
	nn2.mu.Lock()
	info := nn2.registered[sid]
	nn2.mu.Unlock()
	if info.DataAddr != d.Addr() {
		t.Errorf("registered data address %q, want %q", info.DataAddr, d.Addr())
	}

	// A namenode that forgot the datanode gets a new registration.
	nn2.mu.Lock()
	delete(nn2.registered, sid)
	nn2.mu.Unlock()
	waitFor(t, "re-registration", func() bool { return nn2.isRegistered(sid) })

	// A delete command in a heartbeat's answer.
	nn1.mu.Lock()
	nn1.commands[sid] = []*dfspb.DatanodeCommand{{Command: &dfspb.DatanodeCommand_Delete{
		Delete: &dfspb.DeleteBlocksCommand{Blocks: []*dfspb.BlockRef{{Id: b.ID, Genstamp: b.GenStamp}}}}}}
	nn1.mu.Unlock()
	waitFor(t, "the block deleted", func() bool {
		_, err := d.Store().Stat(b.ID)
		return errors.Is(err, blockstore.ErrNotFound)
	})
	waitFor(t, "the deletion reported", func() bool {
		return nn2.hasEvent(sid, dfspb.BlockEventKind_DELETED, b.ID, -1) || !nn2.reported(sid, b.ID)
	})
	waitFor(t, "the deletion reported to the commanding namenode", func() bool {
		return nn1.hasEvent(sid, dfspb.BlockEventKind_DELETED, b.ID, -1) || !nn1.reported(sid, b.ID)
	})
}

func TestReplicateCommand(t *testing.T) {
	nn := startFakeNamenode(t, "")
	src, dst := startDatanode(t, nn.addr), startDatanode(t, nn.addr)
	data := randomData(200000)
	b := Block{ID: 77, GenStamp: 4}
	if _, err := WriteBlock(context.Background(), []string{src.Addr()}, b, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "registration", func() bool { return nn.isRegistered(src.StorageID()) })
	nn.mu.Lock()
	nn.commands[src.StorageID()] = []*dfspb.DatanodeCommand{{Command: &dfspb.DatanodeCommand_Replicate{
		Replicate: &dfspb.ReplicateBlockCommand{Block: &dfspb.BlockRef{Id: b.ID, Genstamp: b.GenStamp}, Targets: []string{dst.Addr()}}}}}
	nn.mu.Unlock()
	waitFor(t, "the copy received", func() bool {
		return nn.hasEvent(dst.StorageID(), dfspb.BlockEventKind_RECEIVED, b.ID, int64(len(data)))
	})
	var buf bytes.Buffer
	if _, err := ReadBlock(context.Background(), dst.Addr(), b, 0, 0, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("read of the copy: %v (%d bytes)", err, buf.Len())
	}
}
