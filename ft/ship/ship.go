// Package ship delivers a sender's queued chunks to a receiver: batches over
// one persistent connection, many batches in flight, each forgotten only once
// the receiver acknowledged it; reconnects with exponential backoff and
// jitter, and after a reconnect sends again everything not acknowledged (the
// receiver drops what it already has by sender id and sequence number).
package ship

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kura-dev/kura/ft/queue"
	"github.com/kura-dev/kura/ft/record"
	"github.com/kura-dev/kura/ft/wire"
)

// Options configure a Shipper.
type Options struct {
	Addr          string          // receiver host:port
	TLS           *tls.Config     // nil: plain TCP
	Sender        record.SenderID // this sender's id, sent in Hello
	Host          string          // this host's name, sent in Hello
	Queue         *queue.Queue    // where the chunks wait
	MaxBatchBytes int             // close a batch at this size (default 1 MiB)
	Window        int             // batches in flight (default 16)
	// Linger is how long a batch waits for more entries while earlier
	// batches are still unacknowledged (default 25ms; K2HFTFUSE's
	// TRANSTIMEUP). When nothing is in flight a batch goes at once, so an
	// idle sender adds no latency, and a busy one sends fewer, larger
	// batches.
	Linger      time.Duration
	DialTimeout time.Duration // default 5s
	MinBackoff  time.Duration // first wait before a reconnect (default 100ms)
	MaxBackoff  time.Duration // longest wait (default 5s)
	Logger      *slog.Logger
}

func (o *Options) ensureDefaults() {
	if o.MaxBatchBytes == 0 {
		o.MaxBatchBytes = 1 << 20
	}
	if o.Window == 0 {
		o.Window = 16
	}
	if o.Linger == 0 {
		o.Linger = 25 * time.Millisecond
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Stats are a Shipper's counters.
type Stats struct {
	Connected      bool
	Connects       uint64 // successful connections
	Failures       uint64 // failed connection attempts and broken sessions
	BatchesSent    uint64
	BatchesAcked   uint64
	RecordsAcked   uint64
	AckedSeq       uint64 // highest sequence number acknowledged
	LastError      string
	LastErrorAt    time.Time
	ReceiverHost   string
	ConnectedSince time.Time
}

// Shipper sends one queue to one receiver.
type Shipper struct {
	opts Options

	connected                          atomic.Bool
	connects, failures                 atomic.Uint64
	batchesSent, batchesAcked, records atomic.Uint64
	ackedSeq                           atomic.Uint64

	mu        sync.Mutex // guards the fields below
	lastErr   string
	lastErrAt time.Time
	receiver  string
	since     time.Time
}

// New returns a Shipper; Run starts it.
func New(opts Options) (*Shipper, error) {
	if opts.Addr == "" {
		return nil, errors.New("ship: no receiver address")
	}
	if opts.Queue == nil {
		return nil, errors.New("ship: no queue")
	}
	opts.ensureDefaults()
	s := &Shipper{opts: opts}
	s.ackedSeq.Store(opts.Queue.Stats().AckedSeq)
	return s, nil
}

// Stats returns a snapshot of the counters.
func (s *Shipper) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Connected:      s.connected.Load(),
		Connects:       s.connects.Load(),
		Failures:       s.failures.Load(),
		BatchesSent:    s.batchesSent.Load(),
		BatchesAcked:   s.batchesAcked.Load(),
		RecordsAcked:   s.records.Load(),
		AckedSeq:       s.ackedSeq.Load(),
		LastError:      s.lastErr,
		LastErrorAt:    s.lastErrAt,
		ReceiverHost:   s.receiver,
		ConnectedSince: s.since,
	}
}

// Run delivers until ctx is done, reconnecting as needed. It returns nil
// when ctx ends.
func (s *Shipper) Run(ctx context.Context) error {
	backoff := s.opts.MinBackoff
	for ctx.Err() == nil {
		start := time.Now()
		err := s.session(ctx)
		s.connected.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		s.failures.Add(1)
		s.mu.Lock()
		s.lastErr, s.lastErrAt = err.Error(), time.Now()
		s.mu.Unlock()
		if time.Since(start) > 10*time.Second {
			backoff = s.opts.MinBackoff
		}
		// Full jitter: wait a random time up to the backoff.
		wait := time.Duration(rand.Int64N(int64(backoff))) + s.opts.MinBackoff/2
		s.opts.Logger.Warn("ft: receiver unavailable, retrying", "addr", s.opts.Addr, "err", err, "retry_in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, s.opts.MaxBackoff)
	}
	return nil
}

type inflight struct {
	id      uint64
	lastSeq uint64
	records uint64
}

// session runs one connection until it fails or ctx ends.
func (s *Shipper) session(ctx context.Context) error {
	d := net.Dialer{Timeout: s.opts.DialTimeout, KeepAlive: 15 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("connect %s: %w", s.opts.Addr, err)
	}
	if s.opts.TLS != nil {
		conf := s.opts.TLS
		if conf.ServerName == "" && !conf.InsecureSkipVerify {
			// Verify the certificate against the host we dialed.
			conf = conf.Clone()
			if host, _, err := net.SplitHostPort(s.opts.Addr); err == nil {
				conf.ServerName = host
			}
		}
		tc := tls.Client(conn, conf)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return fmt.Errorf("tls handshake with %s: %w", s.opts.Addr, err)
		}
		conn = tc
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	w := wire.NewWriter(conn)
	r := wire.NewReader(conn)
	if err := w.WriteHello(wire.Hello{Version: wire.Version, Sender: s.opts.Sender, Host: s.opts.Host}); err != nil {
		return fmt.Errorf("hello to %s: %w", s.opts.Addr, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("hello to %s: %w", s.opts.Addr, err)
	}
	conn.SetReadDeadline(time.Now().Add(s.opts.DialTimeout))
	typ, body, err := r.Next()
	if err != nil {
		return fmt.Errorf("welcome from %s: %w", s.opts.Addr, err)
	}
	conn.SetReadDeadline(time.Time{})
	switch typ {
	case wire.TypeWelcome:
		m, err := wire.ParseWelcome(body)
		if err != nil {
			return fmt.Errorf("welcome from %s: %w", s.opts.Addr, err)
		}
		s.mu.Lock()
		s.receiver, s.since = m.Receiver, time.Now()
		s.mu.Unlock()
	case wire.TypeError:
		e, err := wire.ParseError(body)
		if err != nil {
			return fmt.Errorf("welcome from %s: %w", s.opts.Addr, err)
		}
		return e
	default:
		return fmt.Errorf("welcome from %s: unexpected frame type %d", s.opts.Addr, typ)
	}
	s.connected.Store(true)
	s.connects.Add(1)
	s.opts.Logger.Info("ft: connected to receiver", "addr", s.opts.Addr)

	window := make(chan inflight, s.opts.Window)
	errc := make(chan error, 2)
	go func() { errc <- s.sendLoop(ctx, w, window) }()
	go func() { errc <- s.ackLoop(r, window) }()
	err = <-errc
	cancel()
	<-errc
	return err
}

// sendLoop reads entries after the acknowledged position and sends them in
// batches, each registered in window (which bounds those in flight). It
// blocks in the queue only for the first entry of a batch; the rest of a
// batch is what is already there, plus, while earlier batches are in
// flight, what arrives within Linger.
func (s *Shipper) sendLoop(ctx context.Context, w *wire.Writer, window chan<- inflight) error {
	rd := s.opts.Queue.NewReader(s.ackedSeq.Load())
	defer rd.Close()
	var id uint64
	var batch [][]byte
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	for {
		e, err := rd.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read queue: %w", err)
		}
		batch = batch[:0]
		size := 0
		var last, recs uint64
		lingered := false
		for {
			if err := record.PatchFirstSeq(e.Payload, e.FirstSeq); err != nil {
				return fmt.Errorf("queue entry %d: %w", e.FirstSeq, err)
			}
			batch = append(batch, e.Payload)
			size += len(e.Payload)
			last = e.FirstSeq + uint64(e.Count) - 1
			recs += uint64(e.Count)
			if size >= s.opts.MaxBatchBytes {
				break
			}
			var ok bool
			e, ok, err = rd.TryNext()
			if err != nil {
				return fmt.Errorf("read queue: %w", err)
			}
			if ok {
				continue
			}
			if lingered || len(window) == 0 {
				break // nothing in flight, or waited enough: send now
			}
			lingered = true
			linger.Reset(s.opts.Linger)
			select {
			case <-linger.C:
			case <-ctx.Done():
				return ctx.Err()
			}
			if e, ok, err = rd.TryNext(); err != nil {
				return fmt.Errorf("read queue: %w", err)
			} else if !ok {
				break
			}
		}
		id++
		select {
		case window <- inflight{id: id, lastSeq: last, records: recs}:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := w.WriteEncodedBatch(id, batch); err != nil {
			return fmt.Errorf("send batch to %s: %w", s.opts.Addr, err)
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("send batch to %s: %w", s.opts.Addr, err)
		}
		s.batchesSent.Add(1)
	}
}

// ackLoop reads acknowledgements, which come in batch order, and releases
// the acknowledged records from the queue.
func (s *Shipper) ackLoop(r *wire.Reader, window <-chan inflight) error {
	for {
		typ, body, err := r.Next()
		if err != nil {
			return fmt.Errorf("read from %s: %w", s.opts.Addr, err)
		}
		switch typ {
		case wire.TypeAck:
			a, err := wire.ParseAck(body)
			if err != nil {
				return err
			}
			var f inflight
			select {
			case f = <-window:
			default:
				return fmt.Errorf("receiver %s acknowledged batch %d, which is not in flight", s.opts.Addr, a.ID)
			}
			if f.id != a.ID {
				return fmt.Errorf("receiver %s acknowledged batch %d, expected %d", s.opts.Addr, a.ID, f.id)
			}
			if err := s.opts.Queue.Ack(f.lastSeq); err != nil {
				return fmt.Errorf("ack queue to %d: %w", f.lastSeq, err)
			}
			s.ackedSeq.Store(f.lastSeq)
			s.batchesAcked.Add(1)
			s.records.Add(f.records)
		case wire.TypeError:
			e, err := wire.ParseError(body)
			if err != nil {
				return err
			}
			return e
		default:
			return fmt.Errorf("receiver %s sent unexpected frame type %d", s.opts.Addr, typ)
		}
	}
}
