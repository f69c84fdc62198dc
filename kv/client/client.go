// Package client is the Go client of a kura kv cluster.
//
// A Client caches the cluster map (shard count, nodes, each shard's leader
// and replicas, fetched with the KV.Map call and corrected by the leader
// each response names) and sends each operation straight to the leader of
// its key's shard, or for a serializable read to one of its replicas. When
// the map is unknown or a routed call fails it falls back to any node
// (every node forwards an operation to the right leader), moves on to the
// next endpoint when one fails, and retries the operations that are safe to repeat (reads,
// Set, SetSubkey, CASInit). An operation that is not safe to repeat and
// whose fate is unknown (the connection broke after it was sent, or the
// shard's leader changed before it was applied) fails with
// ErrUnknownOutcome: it may or may not have taken effect.
//
// Errors map to the local engine's: errors.Is(err, store.ErrNotFound) holds
// for a missing key, store.ErrInvalid for bad input, and so on, so code
// written against *store.Store works unchanged against a cluster.
//
//	c, err := client.New(client.Config{Endpoints: []string{"127.0.0.1:7400"}})
//	if err != nil { ... }
//	defer c.Close()
//	if err := c.Set(ctx, []byte("greeting"), []byte("hello"), 0); err != nil { ... }
//	v, err := c.Get(ctx, []byte("greeting"))
package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/kura-dev/kura/proto/kvpb"
	"github.com/kura-dev/kura/store"
)

// Errors of the client; test them with errors.Is.
var (
	// ErrUnknownOutcome: the operation may or may not have been applied.
	ErrUnknownOutcome = errors.New("outcome unknown: the operation may or may not have been applied")
	// ErrUnavailable: no node could serve the operation in time.
	ErrUnavailable = errors.New("cluster unavailable")
)

// Config configures a Client.
type Config struct {
	// Endpoints are node addresses (host:port); at least one.
	Endpoints []string
	// Timeout bounds one operation including retries (default 15s).
	Timeout time.Duration
	// Serializable reads from the nearest replica instead of through the
	// shard's leader: faster, possibly stale.
	Serializable bool
	// Passphrases are sent with every request (see passphrase.go).
	Passphrases []string
}

// Client is a connection to a cluster; safe for concurrent use.
type Client struct {
	cfg   Config
	addrs []string // the endpoints, trimmed
	conns []*grpc.ClientConn
	kvs   []kvpb.KVClient
	next  atomic.Uint64
	route *router
}

// New connects (lazily) to the endpoints.
func New(cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("%w: no endpoints", store.ErrInvalid)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 15 * time.Second
	}
	c := &Client{cfg: cfg}
	for _, ep := range cfg.Endpoints {
		ep = strings.TrimSpace(ep)
		if ep == "" {
			continue
		}
		conn, err := dial(ep)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("endpoint %q: %w", ep, err)
		}
		c.addrs = append(c.addrs, ep)
		c.conns = append(c.conns, conn)
		c.kvs = append(c.kvs, kvpb.NewKVClient(conn))
	}
	if len(c.kvs) == 0 {
		return nil, fmt.Errorf("%w: no endpoints", store.ErrInvalid)
	}
	known := map[string]kvpb.KVClient{}
	for i, a := range c.addrs {
		known[a] = c.kvs[i]
	}
	c.route = newRouter(c.fetchMap, known)
	c.route.refresh()
	return c, nil
}

// fetchMap asks the endpoints in turn for the cluster map.
func (c *Client) fetchMap(ctx context.Context) (*kvpb.MapResponse, error) {
	var last error
	for i := range c.kvs {
		m, err := c.kvs[(int(c.next.Add(1))+i)%len(c.kvs)].Map(ctx, &kvpb.MapRequest{})
		if err == nil {
			return m, nil
		}
		last = err
	}
	return nil, fmt.Errorf("cluster map: %w", last)
}

// dial makes a lazily connecting client connection; keepalive pings
// notice a node that vanished without closing its connections.
func dial(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
}

// Close closes the connections.
func (c *Client) Close() error {
	first := c.route.close()
	for _, conn := range c.conns {
		if err := conn.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Idempotent tells whether an operation may be repeated safely.
func Idempotent(op kvpb.Op) bool {
	switch op {
	case kvpb.Op_GET, kvpb.Op_SCAN, kvpb.Op_ATTRS, kvpb.Op_SUBKEYS, kvpb.Op_PEEK, kvpb.Op_QUEUE_LEN,
		kvpb.Op_CAS_GET, kvpb.Op_SET, kvpb.Op_SUBKEY_SET, kvpb.Op_CAS_INIT:
		return true
	}
	return false
}

// Do sends one request and returns the response, or the error its code
// stands for.
func (c *Client) Do(ctx context.Context, req *kvpb.Request) (*kvpb.Response, error) {
	if c.cfg.Serializable {
		req.Serializable = true
	}
	if len(req.Passphrases) == 0 {
		req.Passphrases = c.passphrases(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	idem := Idempotent(req.Op)
	sh := c.route.shardOf(req)
	start := int(c.next.Add(1))
	var last error
	for attempt := 0; ; attempt++ {
		// The first attempt goes where the cached map says the shard's
		// leader (or, for a serializable read, a replica) is; retries
		// spread over the endpoints, which forward inside the cluster.
		var kv kvpb.KVClient
		var addr string
		if attempt == 0 && sh != 0 {
			kv, addr = c.route.target(sh, req.Serializable && isRead(req.Op))
		}
		routed := kv != nil
		if !routed {
			i := (start + attempt) % len(c.kvs)
			kv, addr = c.kvs[i], c.addrs[i]
		}
		var p peer.Peer
		resp, err := kv.Do(ctx, req, grpc.Peer(&p))
		if err != nil && routed {
			c.route.forget(sh)
		}
		if err == nil {
			c.route.learn(sh, resp.Leader)
			if (resp.Code == kvpb.Code_UNAVAILABLE || resp.Code == kvpb.Code_UNKNOWN_OUTCOME) && idem {
				last = codeError(resp)
			} else {
				return resp, codeError(resp)
			}
		} else {
			last = err
			if !idem && !neverSent(err, &p) {
				return nil, fmt.Errorf("%w: %s via %s: %v", ErrUnknownOutcome, req.Op, addr, err)
			}
		}
		select {
		case <-ctx.Done():
			if !idem && errors.Is(last, ErrUnknownOutcome) {
				return nil, last
			}
			return nil, fmt.Errorf("%w: %s: %v (last error: %v)", ErrUnavailable, req.Op, ctx.Err(), last)
		case <-time.After(retryDelay(attempt, len(c.kvs))):
		}
	}
}

func retryDelay(attempt, endpoints int) time.Duration {
	if attempt+1 < endpoints {
		return 0 // try the other endpoints at once
	}
	d := time.Duration(attempt) * 50 * time.Millisecond
	if d > time.Second {
		d = time.Second
	}
	return d
}

// neverSent tells whether a failed call proves the request did not reach a
// node (so any operation may be retried). grpc-go fills the grpc.Peer call
// option only once the call got a transport stream; a call that failed
// before that (no connection, a handshake that failed: "error reading
// server preface", a reconnect backoff) never left this process.
func neverSent(err error, p *peer.Peer) bool {
	if p.Addr == nil {
		return true
	}
	s, ok := status.FromError(err)
	if !ok || s.Code() != codes.Unavailable {
		return false
	}
	m := s.Message()
	return strings.Contains(m, "connection refused") || strings.Contains(m, "connection error") && strings.Contains(m, "dial")
}

// codeError turns an in-band error into the local engine's error values.
func codeError(r *kvpb.Response) error {
	var base error
	switch r.Code {
	case kvpb.Code_OK:
		return nil
	case kvpb.Code_NOT_FOUND:
		base = store.ErrNotFound
	case kvpb.Code_INVALID:
		base = store.ErrInvalid
	case kvpb.Code_TYPE_MISMATCH:
		base = store.ErrTypeMismatch
	case kvpb.Code_NEED_PASSPHRASE:
		base = store.ErrNeedPassphrase
	case kvpb.Code_WRONG_PASSPHRASE:
		base = store.ErrWrongPassphrase
	case kvpb.Code_CORRUPT:
		base = store.ErrCorrupt
	case kvpb.Code_UNAVAILABLE:
		base = ErrUnavailable
	case kvpb.Code_UNKNOWN_OUTCOME:
		base = ErrUnknownOutcome
	default:
		return errors.New(r.Error)
	}
	return &codedError{base: base, msg: r.Error}
}

type codedError struct {
	base error
	msg  string
}

func (e *codedError) Error() string {
	if strings.Contains(e.msg, e.base.Error()) {
		return e.msg
	}
	return e.msg + ": " + e.base.Error()
}
func (e *codedError) Unwrap() error { return e.base }

// Status describes the cluster: nodes, shards, leaders, replica lag.
func (c *Client) Status(ctx context.Context) (*kvpb.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var last error
	for i := range c.kvs {
		r, err := c.kvs[(int(c.next.Add(1))+i)%len(c.kvs)].Status(ctx, &kvpb.StatusRequest{})
		if err == nil {
			return r, nil
		}
		last = err
	}
	return nil, fmt.Errorf("%w: status: %v", ErrUnavailable, last)
}

// Watch streams committed changes whose key starts with prefix, in order
// per shard, resuming after the per-shard sequence numbers in after (nil:
// from now). It calls fn for each event until ctx ends or fn fails.
func (c *Client) Watch(ctx context.Context, prefix []byte, after map[uint32]uint64, fromOldest bool, fn func(*kvpb.Event) error) error {
	var last error
	for i := range c.kvs {
		st, err := c.kvs[(int(c.next.Add(1))+i)%len(c.kvs)].Watch(ctx, &kvpb.WatchRequest{Prefix: prefix, After: after, FromOldest: fromOldest})
		if err != nil {
			last = err
			continue
		}
		for {
			ev, err := st.Recv()
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("watch: %w", err)
			}
			if err := fn(ev); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("%w: watch: %v", ErrUnavailable, last)
}
