package client

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/kura-dev/kura/kv/keyspace"
	"github.com/kura-dev/kura/proto/kvpb"
)

// mapRefreshGap is the least time between two fetches of the cluster map.
const mapRefreshGap = 500 * time.Millisecond

// router caches the cluster map: which shard a key is in, which node leads
// it, which nodes hold it, and where each node listens. It learns leaders
// from responses (Response.Leader) and refetches the map, at most every
// mapRefreshGap, when a node it does not know shows up or a routed call
// fails. Everything it knows is a hint: a wrong guess costs one forward
// inside the cluster, never a wrong answer.
type router struct {
	fetch func(ctx context.Context) (*kvpb.MapResponse, error)
	ctx   context.Context // ends when the client closes: stops a fetch
	stop  context.CancelFunc

	mu       sync.Mutex
	shards   uint32
	leaders  map[uint32]uint64
	replicas map[uint32][]uint64
	addrs    map[uint64]string
	conns    map[string]kvpb.KVClient // by address, shared with the configured endpoints
	closers  []*grpc.ClientConn       // connections the router opened itself
	fetching bool
	fetched  time.Time
	spread   uint64
}

func newRouter(fetch func(context.Context) (*kvpb.MapResponse, error), known map[string]kvpb.KVClient) *router {
	ctx, stop := context.WithCancel(context.Background())
	r := &router{fetch: fetch, ctx: ctx, stop: stop, leaders: map[uint32]uint64{}, replicas: map[uint32][]uint64{},
		addrs: map[uint64]string{}, conns: map[string]kvpb.KVClient{}}
	for addr, kv := range known {
		r.conns[addr] = kv
	}
	return r
}

// shardOf returns the shard of a routed request, 0 when the request is not
// routed by key (a scan) or the map is not known yet.
func (r *router) shardOf(req *kvpb.Request) uint32 {
	if req.Op == kvpb.Op_SCAN {
		return 0
	}
	r.mu.Lock()
	n := r.shards
	r.mu.Unlock()
	return keyspace.ShardOf(req.Key, n)
}

// target returns the node to send a request for shard sh to (its leader,
// or for a serializable read any of its replicas), or nil when unknown.
func (r *router) target(sh uint32, serializableRead bool) (kvpb.KVClient, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var node uint64
	if serializableRead {
		if reps := r.replicas[sh]; len(reps) > 0 {
			r.spread++
			node = reps[r.spread%uint64(len(reps))]
		}
	} else {
		node = r.leaders[sh]
	}
	addr := r.addrs[node]
	if node == 0 || addr == "" {
		return nil, ""
	}
	kv, ok := r.conns[addr]
	if !ok {
		conn, err := dial(addr)
		if err != nil {
			return nil, ""
		}
		kv = kvpb.NewKVClient(conn)
		r.conns[addr] = kv
		r.closers = append(r.closers, conn)
	}
	return kv, addr
}

// learn records the leader that served a request for shard sh.
func (r *router) learn(sh uint32, leader uint64) {
	if sh == 0 || leader == 0 {
		return
	}
	r.mu.Lock()
	r.leaders[sh] = leader
	_, known := r.addrs[leader]
	r.mu.Unlock()
	if !known {
		r.refresh()
	}
}

// forget drops the leader of shard sh after a routed call failed, and
// refetches the map.
func (r *router) forget(sh uint32) {
	r.mu.Lock()
	delete(r.leaders, sh)
	r.mu.Unlock()
	r.refresh()
}

// refresh refetches the map in the background unless a fetch is running
// or one finished less than mapRefreshGap ago.
func (r *router) refresh() {
	r.mu.Lock()
	if r.fetching || time.Since(r.fetched) < mapRefreshGap {
		r.mu.Unlock()
		return
	}
	r.fetching = true
	r.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
		m, err := r.fetch(ctx)
		cancel()
		r.mu.Lock()
		defer r.mu.Unlock()
		r.fetching = false
		r.fetched = time.Now()
		if err != nil {
			return // an older server without Map, or none reachable: keep spreading calls
		}
		r.shards = m.Shards
		r.addrs = map[uint64]string{}
		for _, n := range m.Nodes {
			r.addrs[n.Id] = n.Addr
		}
		for _, rt := range m.Routes {
			r.replicas[rt.Shard] = rt.Replicas
			if rt.Leader != 0 {
				r.leaders[rt.Shard] = rt.Leader
			}
		}
	}()
}

// isRead tells whether an operation only reads.
func isRead(op kvpb.Op) bool {
	switch op {
	case kvpb.Op_GET, kvpb.Op_SCAN, kvpb.Op_ATTRS, kvpb.Op_SUBKEYS, kvpb.Op_PEEK, kvpb.Op_QUEUE_LEN, kvpb.Op_CAS_GET:
		return true
	}
	return false
}

// close closes the connections the router opened.
func (r *router) close() error {
	r.stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	var first error
	for _, c := range r.closers {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	r.closers = nil
	return first
}
