package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kura-dev/kura/kv/replica"
	"github.com/kura-dev/kura/kv/shard"
	"github.com/kura-dev/kura/proto/kvpb"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// notLeader is the routing error a node answers a forwarded request with
// when it does not lead the shard; the message carries the leader it knows.
func notLeader(sh uint32, leader uint64) error {
	return status.Errorf(codes.FailedPrecondition, "shard %d: not the leader; leader=%x", sh, leader)
}

func leaderHint(err error) uint64 {
	msg := status.Convert(err).Message()
	i := strings.LastIndex(msg, "leader=")
	if i < 0 {
		return 0
	}
	id, _ := strconv.ParseUint(msg[i+len("leader="):], 16, 64)
	return id
}

func unknown(err error) *kvpb.Response {
	return &kvpb.Response{Code: kvpb.Code_UNKNOWN_OUTCOME, Error: err.Error()}
}

// execLocal runs a single-shard operation on this node's replica: reads
// after a ReadIndex (or at once when serializable), writes through the log.
// A routing error (the shard is not here, this replica does not lead it)
// is returned as a gRPC status error; everything else is in the response.
func (n *Node) execLocal(ctx context.Context, sh uint32, req *kvpb.Request) (*kvpb.Response, error) {
	g := n.host.Group(sh)
	s := n.shard(sh)
	if g == nil || s == nil {
		return nil, status.Errorf(codes.Unavailable, "shard %d has no replica on node %x", sh, n.id)
	}
	if shard.IsRead(req.Op) {
		if req.Serializable || n.cfg.UnsafeLocalReads {
			return s.Read(ctx, req), nil
		}
		if !g.IsLeader() {
			return nil, notLeader(sh, g.Leader())
		}
		if err := g.ReadIndex(ctx); err != nil {
			if errors.Is(err, replica.ErrNotLeader) {
				return nil, notLeader(sh, g.Leader())
			}
			return nil, status.Errorf(codes.Unavailable, "shard %d: %v", sh, err)
		}
		return s.Read(ctx, req), nil
	}
	if !shard.IsShardWrite(req.Op) {
		return &kvpb.Response{Code: kvpb.Code_INVALID, Error: fmt.Sprintf("operation %v is not a single-shard operation", req.Op)}, nil
	}
	if !g.IsLeader() {
		return nil, notLeader(sh, g.Leader())
	}
	cmd := &kvpb.Command{Id: n.nextID(), TimeNanos: time.Now().UnixNano(), Req: req}
	data, err := proto.Marshal(cmd)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encode command: %v", err)
	}
	res, err := g.Propose(ctx, cmd.Id, data)
	switch {
	case errors.Is(err, replica.ErrNotLeader):
		return nil, notLeader(sh, g.Leader())
	case err != nil:
		return unknown(fmt.Errorf("shard %d: %w", sh, err)), nil
	}
	resp, ok := res.(*kvpb.Response)
	if !ok {
		return nil, status.Errorf(codes.Internal, "shard %d: unexpected result %T", sh, res)
	}
	return resp, nil
}

// doShard runs a single-shard operation wherever the shard's leader (or,
// for a serializable read, a replica) is, retrying while leadership moves.
func (n *Node) doShard(ctx context.Context, sh uint32, req *kvpb.Request) *kvpb.Response {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.OpTimeout)
	defer cancel()
	write := !shard.IsRead(req.Op)
	var hint uint64
	attempt := 0
	var last error
	for {
		attempt++
		target := n.id
		g := n.host.Group(sh)
		switch {
		case hint != 0:
			target = hint
		case g != nil && (g.IsLeader() || ((req.Serializable || n.cfg.UnsafeLocalReads) && !write)):
			target = n.id
		case g != nil && g.Leader() != 0:
			target = g.Leader()
		default:
			holders := n.meta.Map().Placement[sh]
			if len(holders) > 0 {
				target = holders[attempt%len(holders)]
			}
		}
		hint = 0
		var resp *kvpb.Response
		var err error
		if target == n.id {
			resp, err = n.execLocal(ctx, sh, req)
		} else {
			var sent bool
			n.forwarded.Add(1)
			resp, sent, err = n.forward(ctx, target, sh, req)
			if err != nil && write && sent && status.Code(err) != codes.FailedPrecondition && !sentNothing(err) {
				// The request may have reached the leader.
				return unknown(fmt.Errorf("shard %d: forward to node %x: %v", sh, target, err))
			}
		}
		if err == nil {
			if write || !(req.Serializable || n.cfg.UnsafeLocalReads) {
				resp.Leader = target // served by the shard's leader
			}
			return resp
		}
		last = err
		if status.Code(err) == codes.FailedPrecondition {
			hint = leaderHint(err)
			if hint == target {
				hint = 0
			}
		}
		select {
		case <-ctx.Done():
			if write {
				return unknown(fmt.Errorf("shard %d: %v (last: %v)", sh, ctx.Err(), last))
			}
			return &kvpb.Response{Code: kvpb.Code_UNAVAILABLE, Error: fmt.Sprintf("shard %d: %v (last: %v)", sh, ctx.Err(), last)}
		case <-time.After(backoff(attempt, hint != 0)):
		}
	}
}

func backoff(attempt int, hinted bool) time.Duration {
	if hinted {
		return 0
	}
	d := time.Duration(attempt) * 20 * time.Millisecond
	if d > 300*time.Millisecond {
		d = 300 * time.Millisecond
	}
	return d
}

// sentNothing tells whether a forwarding error proves the request never
// reached the other node.
func sentNothing(err error) bool {
	s := status.Convert(err)
	if s.Code() != codes.Unavailable {
		return false
	}
	m := s.Message()
	return strings.Contains(m, "connection refused") || strings.Contains(m, "no replica") ||
		strings.Contains(m, "address unknown") || strings.Contains(m, "isolated")
}

// forward sends a single-shard request to another node. sent is false when
// the call provably never left this node: grpc-go fills the grpc.Peer
// option only once the call got a transport stream, so a failed handshake
// or a connection in reconnect backoff leaves it empty.
func (n *Node) forward(ctx context.Context, node uint64, sh uint32, req *kvpb.Request) (resp *kvpb.Response, sent bool, err error) {
	if n.faults.blocked(node) {
		return nil, false, status.Errorf(codes.Unavailable, "node %x isolated by fault injection", node)
	}
	cl, err := n.tr.peerClient(node)
	if err != nil {
		return nil, false, status.Errorf(codes.Unavailable, "%v", err)
	}
	var p grpcpeer.Peer
	resp, err = cl.Forward(ctx, &kvpb.ShardRequest{Shard: sh, Req: req, ClusterId: n.clusterID()}, grpc.Peer(&p))
	return resp, p.Addr != nil, err
}

// Do runs one client operation, composing the operations that span shards.
func (n *Node) Do(ctx context.Context, req *kvpb.Request) *kvpb.Response {
	if err := n.validate(req); err != nil {
		return &kvpb.Response{Code: kvpb.Code_INVALID, Error: err.Error()}
	}
	req, sealed := n.doSealed(ctx, req) // per-request passphrases: crypt.go
	if sealed != nil {
		return sealed
	}
	one := func(key []byte, r *kvpb.Request) *kvpb.Response { return n.doShard(ctx, n.shardOf(key), r) }
	switch req.Op {
	case kvpb.Op_SCAN:
		return n.scan(ctx, req)
	case kvpb.Op_SUBKEY_SET:
		// The subkey's value first, then the parent's index entry: the
		// parent never lists a subkey that was not written.
		r := one(req.Subkey, &kvpb.Request{Op: kvpb.Op_SET, Key: req.Subkey, Value: req.Value, TtlNanos: req.TtlNanos})
		if r.Code != kvpb.Code_OK {
			return r
		}
		return one(req.Key, &kvpb.Request{Op: kvpb.Op_SUBKEY_LINK, Key: req.Key, Subkey: req.Subkey})
	case kvpb.Op_SUBKEYS:
		return n.subkeys(ctx, req.Key, req.Serializable)
	case kvpb.Op_SUBKEY_DELETE:
		idx := n.subkeys(ctx, req.Key, false)
		if idx.Code != kvpb.Code_OK {
			return idx
		}
		if !containsKey(idx.Keys, req.Subkey) {
			return &kvpb.Response{Code: kvpb.Code_NOT_FOUND, Error: fmt.Sprintf("%q is not a subkey of %q: not found", req.Subkey, req.Key)}
		}
		// Unlink first, then delete: a crash in between leaves an
		// unlisted key (harmless), never a listed key that is gone.
		if r := one(req.Key, &kvpb.Request{Op: kvpb.Op_SUBKEY_UNLINK, Key: req.Key, Subkey: req.Subkey}); r.Code != kvpb.Code_OK {
			return r
		}
		if req.All {
			return n.deleteTree(ctx, req.Subkey, map[string]bool{string(req.Key): true}, true)
		}
		if r := one(req.Subkey, &kvpb.Request{Op: kvpb.Op_DELETE, Key: req.Subkey}); r.Code != kvpb.Code_OK && r.Code != kvpb.Code_NOT_FOUND {
			return r
		}
		return &kvpb.Response{}
	case kvpb.Op_DELETE_ALL:
		return n.deleteTree(ctx, req.Key, map[string]bool{}, false)
	case kvpb.Op_PUSH_KEYED:
		if r := one(req.Subkey, &kvpb.Request{Op: kvpb.Op_SET, Key: req.Subkey, Value: req.Value}); r.Code != kvpb.Code_OK {
			return r
		}
		return one(req.Key, &kvpb.Request{Op: kvpb.Op_PUSH_KEY_REF, Key: req.Key, Subkey: req.Subkey})
	case kvpb.Op_POP, kvpb.Op_PEEK:
		r := one(req.Key, req)
		if r.Code == kvpb.Code_OK && r.ItemKey != nil && r.Value == nil {
			op := kvpb.Op_TAKE
			if req.Op == kvpb.Op_PEEK {
				op = kvpb.Op_GET
			}
			v := one(r.ItemKey, &kvpb.Request{Op: op, Key: r.ItemKey})
			if v.Code == kvpb.Code_OK {
				r.Value, r.Found = v.Value, v.Found
			}
		}
		return r
	case kvpb.Op_REMOVE_ITEMS:
		r := one(req.Key, req)
		for _, k := range r.Keys {
			one(k, &kvpb.Request{Op: kvpb.Op_DELETE, Key: k})
		}
		r.Keys = nil
		return r
	}
	return one(req.Key, req)
}

func (n *Node) validate(req *kvpb.Request) error {
	switch req.Op {
	case kvpb.Op_OP_UNSPECIFIED, kvpb.Op_SUBKEY_LINK, kvpb.Op_SUBKEY_UNLINK, kvpb.Op_SUBKEY_INDEX,
		kvpb.Op_PUSH_KEY_REF, kvpb.Op_TAKE, kvpb.Op_REAP, kvpb.Op_NOOP:
		return fmt.Errorf("invalid argument: unknown operation %v", req.Op)
	}
	if _, ok := kvpb.Op_name[int32(req.Op)]; !ok {
		return fmt.Errorf("invalid argument: unknown operation %d", req.Op)
	}
	if len(req.Key) == 0 && req.Op != kvpb.Op_SCAN {
		return errors.New("invalid argument: empty key")
	}
	mk := n.cfg.Store.MaxKeySize
	if mk == 0 {
		mk = 64 << 10
	}
	if l := max(len(req.Key), len(req.Subkey)); l > mk {
		return fmt.Errorf("invalid argument: key of %d bytes exceeds the limit of %d bytes", l, mk)
	}
	mv := n.cfg.Store.MaxValueSize
	if mv == 0 {
		mv = 16 << 20
	}
	if len(req.Value) > mv {
		return fmt.Errorf("invalid argument: value of %d bytes exceeds the limit of %d bytes", len(req.Value), mv)
	}
	return nil
}

func containsKey(keys [][]byte, k []byte) bool {
	for _, x := range keys {
		if bytes.Equal(x, k) {
			return true
		}
	}
	return false
}

// subkeys lists the parent's index entries whose keys exist.
func (n *Node) subkeys(ctx context.Context, parent []byte, serializable bool) *kvpb.Response {
	idx := n.doShard(ctx, n.shardOf(parent), &kvpb.Request{Op: kvpb.Op_SUBKEY_INDEX, Key: parent, Serializable: serializable})
	if idx.Code != kvpb.Code_OK {
		return idx
	}
	out := &kvpb.Response{}
	for _, k := range idx.Keys {
		a := n.doShard(ctx, n.shardOf(k), &kvpb.Request{Op: kvpb.Op_ATTRS, Key: k, Serializable: serializable})
		switch a.Code {
		case kvpb.Code_OK:
			out.Keys = append(out.Keys, k)
		case kvpb.Code_NOT_FOUND:
		default:
			return a
		}
	}
	return out
}

// deleteTree deletes key, its subkeys and theirs (each once).
func (n *Node) deleteTree(ctx context.Context, key []byte, seen map[string]bool, quiet bool) *kvpb.Response {
	seen[string(key)] = true
	idx := n.doShard(ctx, n.shardOf(key), &kvpb.Request{Op: kvpb.Op_SUBKEY_INDEX, Key: key})
	if idx.Code != kvpb.Code_OK {
		return idx
	}
	for _, sub := range idx.Keys {
		if r := n.doShard(ctx, n.shardOf(key), &kvpb.Request{Op: kvpb.Op_SUBKEY_UNLINK, Key: key, Subkey: sub}); r.Code != kvpb.Code_OK {
			return r
		}
		if seen[string(sub)] {
			continue
		}
		if r := n.deleteTree(ctx, sub, seen, true); r.Code != kvpb.Code_OK {
			return r
		}
	}
	r := n.doShard(ctx, n.shardOf(key), &kvpb.Request{Op: kvpb.Op_DELETE, Key: key})
	if r.Code == kvpb.Code_NOT_FOUND && (quiet || len(idx.Keys) > 0) {
		return &kvpb.Response{}
	}
	return r
}

// scan merges one page of every shard's scan.
func (n *Node) scan(ctx context.Context, req *kvpb.Request) *kvpb.Response {
	limit := int(req.Limit)
	if limit <= 0 {
		limit = 1000
	}
	shards := n.meta.Map().Shards
	type part struct{ r *kvpb.Response }
	parts := make([]part, shards)
	done := make(chan struct{}, shards)
	for i := uint32(0); i < shards; i++ {
		go func(i uint32) {
			r := proto.Clone(req).(*kvpb.Request)
			r.Limit = int32(limit)
			parts[i] = part{n.doShard(ctx, i+1, r)}
			done <- struct{}{}
		}(i)
	}
	for i := uint32(0); i < shards; i++ {
		<-done
	}
	// A shard with more to give is complete only up to the last key of
	// its page: the merged page stops at the smallest such key.
	out := &kvpb.Response{}
	var cutoff []byte
	for _, p := range parts {
		if p.r.Code != kvpb.Code_OK {
			return p.r
		}
		out.Kvs = append(out.Kvs, p.r.Kvs...)
		if p.r.More && len(p.r.Kvs) > 0 {
			last := p.r.Kvs[len(p.r.Kvs)-1].Key
			if cutoff == nil || bytes.Compare(last, cutoff) < 0 {
				cutoff = last
			}
		}
	}
	sort.Slice(out.Kvs, func(i, j int) bool { return bytes.Compare(out.Kvs[i].Key, out.Kvs[j].Key) < 0 })
	if cutoff != nil {
		out.More = true
		i := sort.Search(len(out.Kvs), func(i int) bool { return bytes.Compare(out.Kvs[i].Key, cutoff) > 0 })
		out.Kvs = out.Kvs[:i]
	}
	if len(out.Kvs) > limit {
		out.Kvs = out.Kvs[:limit]
		out.More = true
	}
	return out
}
