package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/kura-dev/kura/kv/replica"
	"github.com/kura-dev/kura/proto/kvpb"
)

// maxMessage bounds one gRPC message (a snapshot travels as one).
const maxMessage = 1 << 30

// transport sends Raft messages to other nodes, one stream and one sending
// goroutine per peer. It implements replica.Transport.
//
// Lock ordering: transport.mu before peer.mu... peers are never locked while
// mu is held by someone waiting on a peer.
type transport struct {
	self    uint64
	cluster func() string
	addrOf  func(uint64) string
	faults  *faults
	log     *slog.Logger
	host    func() *replica.Host

	mu    sync.Mutex
	peers map[uint64]*peer
	conns map[string]*grpc.ClientConn

	stop chan struct{}
	wg   sync.WaitGroup
}

type outMsg struct {
	group uint32
	data  []byte
	to    uint64
}

type peer struct {
	id uint64
	q  chan outMsg
}

func newTransport(self uint64, cluster func() string, addrOf func(uint64) string, f *faults, host func() *replica.Host, log *slog.Logger) *transport {
	return &transport{self: self, cluster: cluster, addrOf: addrOf, faults: f, host: host, log: log,
		peers: map[uint64]*peer{}, conns: map[string]*grpc.ClientConn{}, stop: make(chan struct{})}
}

// conn returns a (shared, lazily connecting) client connection to addr.
func (t *transport) conn(addr string) (*grpc.ClientConn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage), grpc.MaxCallSendMsgSize(maxMessage)))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	t.conns[addr] = c
	return c, nil
}

// peerClient returns the Peer service of a node.
func (t *transport) peerClient(node uint64) (kvpb.PeerClient, error) {
	addr := t.addrOf(node)
	if addr == "" {
		return nil, fmt.Errorf("node %x: address unknown", node)
	}
	c, err := t.conn(addr)
	if err != nil {
		return nil, err
	}
	return kvpb.NewPeerClient(c), nil
}

// Send implements replica.Transport.
func (t *transport) Send(group uint32, msgs []raftpb.Message) {
	for i := range msgs {
		m := &msgs[i]
		if t.faults.blocked(m.To) {
			continue
		}
		data, err := m.Marshal()
		if err != nil {
			t.log.Error("marshal raft message", "err", err)
			continue
		}
		p := t.peer(m.To)
		select {
		case p.q <- outMsg{group: group, data: data, to: m.To}:
		default:
			// The peer is slow or down: drop, Raft resends.
			if h := t.host(); h != nil {
				h.ReportUnreachable(group, m.To)
			}
		}
	}
}

func (t *transport) peer(id uint64) *peer {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[id]
	if p == nil {
		p = &peer{id: id, q: make(chan outMsg, 8192)}
		t.peers[id] = p
		t.wg.Add(1)
		go t.sendLoop(p)
	}
	return p
}

// sendLoop streams a peer's messages, batching whatever is queued.
func (t *transport) sendLoop(p *peer) {
	defer t.wg.Done()
	var stream kvpb.Peer_RaftClient
	var cancel context.CancelFunc = func() {}
	defer func() { cancel() }()
	backoff := 50 * time.Millisecond
	batch := &kvpb.RaftBatch{From: t.self}
	for {
		var first outMsg
		select {
		case <-t.stop:
			return
		case first = <-p.q:
		}
		batch.Msgs = append(batch.Msgs[:0], &kvpb.RaftMessage{Group: first.group, Msg: first.data})
	fill:
		for len(batch.Msgs) < 512 {
			select {
			case m := <-p.q:
				batch.Msgs = append(batch.Msgs, &kvpb.RaftMessage{Group: m.group, Msg: m.data})
			default:
				break fill
			}
		}
		if t.faults.blocked(p.id) {
			continue
		}
		if stream == nil {
			var err error
			stream, cancel, err = t.openStream(p.id)
			if err != nil {
				t.unreachable(p.id, batch)
				stream = nil
				select {
				case <-t.stop:
					return
				case <-time.After(backoff):
				}
				if backoff < time.Second {
					backoff *= 2
				}
				continue
			}
		}
		batch.ClusterId = t.cluster()
		if err := stream.Send(batch); err != nil {
			t.log.Debug("raft stream to peer broke", "peer", fmt.Sprintf("%x", p.id), "err", err)
			cancel()
			stream = nil
			t.unreachable(p.id, batch)
			continue
		}
		backoff = 50 * time.Millisecond
	}
}

func (t *transport) openStream(node uint64) (kvpb.Peer_RaftClient, context.CancelFunc, error) {
	cl, err := t.peerClient(node)
	if err != nil {
		return nil, func() {}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := cl.Raft(ctx)
	if err != nil {
		cancel()
		return nil, func() {}, err
	}
	return stream, cancel, nil
}

func (t *transport) unreachable(node uint64, b *kvpb.RaftBatch) {
	h := t.host()
	if h == nil {
		return
	}
	seen := map[uint32]bool{}
	for _, m := range b.Msgs {
		if !seen[m.Group] {
			seen[m.Group] = true
			h.ReportUnreachable(m.Group, node)
		}
	}
}

// SendSnapshot implements replica.Transport.
func (t *transport) SendSnapshot(ctx context.Context, group uint32, m raftpb.Message) error {
	if t.faults.blocked(m.To) {
		return errors.New("peer isolated by fault injection")
	}
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	cl, err := t.peerClient(m.To)
	if err != nil {
		return err
	}
	stream, err := cl.Raft(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&kvpb.RaftBatch{ClusterId: t.cluster(), From: t.self, Msgs: []*kvpb.RaftMessage{{Group: group, Msg: data}}}); err != nil {
		return err
	}
	_, err = stream.CloseAndRecv()
	return err
}

func (t *transport) close() {
	close(t.stop)
	t.wg.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.conns {
		c.Close()
	}
}

// faults is the test-only message filter (see kura kv serve
// --fault-injection).
type faults struct {
	enabled bool
	mu      sync.RWMutex
	isolate map[uint64]bool
}

func (f *faults) blocked(node uint64) bool {
	if f == nil || !f.enabled {
		return false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.isolate[node]
}

func (f *faults) set(nodes []uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.isolate = map[uint64]bool{}
	for _, n := range nodes {
		f.isolate[n] = true
	}
}
