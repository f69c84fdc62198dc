package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// delayProxy forwards TCP connections from a local listener to a target,
// holding every chunk of bytes, in each direction, for delay before passing
// it on: a network hop of round-trip time 2×delay on loopback, for
// 'kura dfs bench --meta-delay' (the database "on another machine"). Chunks
// are timed from their arrival and passed on in order, several in flight,
// so that pipelined requests pay the delay once, as on a real link.
type delayProxy struct {
	ln     net.Listener
	target string
	delay  time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startDelayProxy listens on 127.0.0.1 and forwards to target with delay.
func startDelayProxy(target string, delay time.Duration) (*delayProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("delay proxy: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &delayProxy{ln: ln, target: target, delay: delay, ctx: ctx, cancel: cancel}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's address.
func (p *delayProxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting, cuts the connections and waits for the proxy's
// goroutines.
func (p *delayProxy) Close() error {
	p.cancel()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *delayProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
		}()
	}
}

// serve forwards one connection both ways until either side ends it or
// the proxy closes.
func (p *delayProxy) serve(c net.Conn) {
	defer c.Close()
	var d net.Dialer
	up, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	go func() { <-ctx.Done(); c.Close(); up.Close() }()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); defer cancel(); p.pipe(ctx, up, c) }()
	go func() { defer wg.Done(); defer cancel(); p.pipe(ctx, c, up) }()
	wg.Wait()
}

// chunk is bytes read at a time.
type chunk struct {
	b  []byte
	at time.Time
}

// pipe copies src to dst, each chunk delayed by p.delay from its arrival.
func (p *delayProxy) pipe(ctx context.Context, dst io.Writer, src io.Reader) {
	q := make(chan chunk, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ch := range q {
			if wait := time.Until(ch.at.Add(p.delay)); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			if _, err := dst.Write(ch.b); err != nil {
				return
			}
		}
	}()
	defer func() { close(q); <-done }()
	for {
		buf := make([]byte, 32<<10)
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case q <- chunk{b: buf[:n], at: time.Now()}:
			case <-ctx.Done():
				return
			case <-done: // the writer stopped
				return
			}
		}
		if err != nil { // io.EOF or a cut connection: either way, done
			return
		}
	}
}
