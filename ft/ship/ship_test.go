package ship

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/kura-dev/kura/ft/queue"
	"github.com/kura-dev/kura/ft/record"
	"github.com/kura-dev/kura/ft/wire"
)

// fakeReceiver speaks the receiver's side of the protocol and records the
// sequence numbers it acknowledged. Its behaviour per connection is set by
// the test: drop the connection after some batches without acking them,
// or answer with a wrong ack id.
type fakeReceiver struct {
	ln net.Listener

	mu       sync.Mutex
	conns    int
	seen     map[uint64]int // seq -> times received in an acked batch
	dropAt   map[int]int    // connection number -> close after this many batches, unacked
	wrongAck map[int]bool   // connection number -> ack with a wrong id
}

func newFakeReceiver(t *testing.T) *fakeReceiver {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &fakeReceiver{ln: ln, seen: map[uint64]int{}, dropAt: map[int]int{}, wrongAck: map[int]bool{}}
	go r.serve()
	t.Cleanup(func() { ln.Close() })
	return r
}

func (r *fakeReceiver) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		r.conns++
		n := r.conns
		r.mu.Unlock()
		go r.handle(c, n)
	}
}

func (r *fakeReceiver) handle(c net.Conn, n int) {
	defer c.Close()
	rd, w := wire.NewReader(c), wire.NewWriter(c)
	if typ, _, err := rd.Next(); err != nil || typ != wire.TypeHello {
		return
	}
	w.WriteWelcome(wire.Welcome{Version: wire.Version, Receiver: "fake"})
	w.Flush()
	for batches := 0; ; batches++ {
		typ, body, err := rd.Next()
		if err != nil || typ != wire.TypeBatch {
			return
		}
		b, err := wire.ParseBatch(body)
		if err != nil {
			return
		}
		r.mu.Lock()
		drop, wrong := r.dropAt[n], r.wrongAck[n]
		r.mu.Unlock()
		if drop > 0 && batches >= drop {
			return // as if the receiver died before writing this batch
		}
		if wrong {
			w.WriteAck(b.ID + 100)
			w.Flush()
			continue
		}
		r.mu.Lock()
		for _, ch := range b.Chunks {
			for i := range ch.Records {
				r.seen[ch.FirstSeq+uint64(i)]++
			}
		}
		r.mu.Unlock()
		w.WriteAck(b.ID)
		w.Flush()
	}
}

func fill(t *testing.T, q *queue.Queue, entries, perEntry int) uint64 {
	t.Helper()
	var last uint64
	for i := 0; i < entries; i++ {
		recs := make([][]byte, perEntry)
		for j := range recs {
			recs[j] = []byte("line")
		}
		c := record.Chunk{FirstSeq: 1, Path: "a.log", Records: recs}
		first, err := q.Append(context.Background(), uint32(perEntry), c.AppendEncode(nil))
		if err != nil {
			t.Fatal(err)
		}
		last = first + uint64(perEntry) - 1
	}
	return last
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func runShipper(t *testing.T, opts Options) (*Shipper, func()) {
	t.Helper()
	opts.Logger = quiet()
	opts.MinBackoff, opts.MaxBackoff = 5*time.Millisecond, 20*time.Millisecond
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	return s, func() { cancel(); <-done }
}

func waitAcked(t *testing.T, q *queue.Queue, last uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for q.Stats().AckedSeq < last {
		if time.Now().After(deadline) {
			t.Fatalf("acked %d of %d", q.Stats().AckedSeq, last)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDeliversEverythingAcrossDroppedConnections(t *testing.T) {
	rx := newFakeReceiver(t)
	// The first two connections die after a few batches without acking.
	rx.dropAt[1], rx.dropAt[2] = 3, 5
	q, err := queue.Open(queue.Options{Dir: t.TempDir(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	last := fill(t, q, 400, 10)
	s, stop := runShipper(t, Options{Addr: rx.ln.Addr().String(), Queue: q, MaxBatchBytes: 1024, Window: 4})
	waitAcked(t, q, last)
	stop()
	rx.mu.Lock()
	defer rx.mu.Unlock()
	for seq := uint64(1); seq <= last; seq++ {
		if rx.seen[seq] == 0 {
			t.Fatalf("record %d never acknowledged", seq)
		}
	}
	st := s.Stats()
	if rx.conns < 3 || st.Failures < 2 || st.RecordsAcked != last {
		t.Fatalf("connections %d, stats %+v; want >= 3 connections, >= 2 failures, %d records acked", rx.conns, st, last)
	}
}

func TestWrongAckBreaksTheSession(t *testing.T) {
	rx := newFakeReceiver(t)
	rx.wrongAck[1] = true
	q, err := queue.Open(queue.Options{Dir: t.TempDir(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	last := fill(t, q, 10, 1)
	s, stop := runShipper(t, Options{Addr: rx.ln.Addr().String(), Queue: q})
	waitAcked(t, q, last)
	stop()
	if st := s.Stats(); st.Failures == 0 || st.LastError == "" {
		t.Fatalf("a wrong ack id was not treated as a broken session: %+v", st)
	}
}

func TestQueuesWhileReceiverIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens
	q, err := queue.Open(queue.Options{Dir: t.TempDir(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	last := fill(t, q, 20, 1)
	s, stop := runShipper(t, Options{Addr: addr, Queue: q})
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Failures < 3 {
		if time.Now().After(deadline) {
			t.Fatal("no reconnect attempts")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if q.Stats().AckedSeq != 0 {
		t.Fatal("records acknowledged with no receiver")
	}
	// The receiver appears on the same address: everything goes.
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	rx := &fakeReceiver{ln: ln2, seen: map[uint64]int{}, dropAt: map[int]int{}, wrongAck: map[int]bool{}}
	go rx.serve()
	defer ln2.Close()
	waitAcked(t, q, last)
	stop()
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without an address succeeded")
	}
	if _, err := New(Options{Addr: "127.0.0.1:1"}); err == nil {
		t.Fatal("New without a queue succeeded")
	}
}
