package server

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/kura-dev/kura/kv/shard"
	"github.com/kura-dev/kura/proto/kvpb"
	"github.com/kura-dev/kura/store"
)

// Per-request passphrases (Request.passphrases). The node that receives
// such a request (the coordinator) seals the values it writes with the
// first passphrase before proposing them, and opens the values it reads
// with any of them after the shards answer, so a passphrase never leaves
// this node: not in a Raft log entry, a snapshot, a forwarded request or a
// log line. The shards store and return sealed bytes (kv/shard/sealed.go);
// the sealed format (store.SealValue) carries its own salt, so any node
// opens what any other sealed.
//
// Precedence: a request's passphrases replace the node's own
// (--passphrase-file) for that request. The values it writes are sealed
// with its first passphrase only (not sealed again with the node's); the
// values it reads that were sealed with passphrases are opened with its
// passphrases only. A request without passphrases works as before: the
// values it writes are sealed with the node's first passphrase if the node
// has any, and values sealed either way are opened with the node's
// passphrases (none: NEED_PASSPHRASE). Values the node sealed with its own
// passphrases (encryption at rest) are opened by the shards for every
// request.
//
// Operations that read before they write (pop, CAS) read the value as
// stored, open it here, and then write only if the value is still the one
// they read (Request.expect), retrying otherwise: so, as in the local
// engine, an item or value is never removed or replaced by a request whose
// passphrases do not open it.

// maxRequestPassphrases bounds the passphrases of one request (each costs
// a key derivation per salt met).
const maxRequestPassphrases = 16

// doSealed is the first step of Do. It refuses a client request that sets
// the internal fields, runs a request with passphrases that reads or
// writes values (returning its response), and returns every other request
// to Do without its passphrases.
func (n *Node) doSealed(ctx context.Context, req *kvpb.Request) (*kvpb.Request, *kvpb.Response) {
	if req.SealedValue || req.RawValues || req.Expect != nil {
		return nil, &kvpb.Response{Code: kvpb.Code_INVALID, Error: "invalid argument: sealed_value, raw_values and expect are internal fields"}
	}
	if len(req.Passphrases) == 0 {
		return req, nil
	}
	if len(req.Passphrases) > maxRequestPassphrases {
		return nil, &kvpb.Response{Code: kvpb.Code_INVALID, Error: fmt.Sprintf("invalid argument: %d passphrases: at most %d", len(req.Passphrases), maxRequestPassphrases)}
	}
	if err := store.CheckPassphrases(req.Passphrases); err != nil {
		return nil, shard.ErrorResponse(err)
	}
	r := proto.Clone(req).(*kvpb.Request)
	r.Passphrases = nil
	c := &sealer{n: n, ps: req.Passphrases}
	switch r.Op {
	case kvpb.Op_SET, kvpb.Op_SUBKEY_SET, kvpb.Op_PUSH, kvpb.Op_PUSH_KEYED, kvpb.Op_GET, kvpb.Op_SCAN,
		kvpb.Op_PEEK, kvpb.Op_POP, kvpb.Op_REMOVE_ITEMS, kvpb.Op_CAS_INIT, kvpb.Op_CAS_GET, kvpb.Op_CAS_SET, kvpb.Op_CAS_ADD:
		ctx, cancel := context.WithTimeout(ctx, n.cfg.OpTimeout)
		defer cancel()
		c.ctx = ctx
		return nil, c.do(r)
	}
	// Attributes, subkey lists, deletes, queue lengths: no value is opened.
	return r, nil
}

// sealer runs one request with passphrases.
type sealer struct {
	n      *Node
	ctx    context.Context
	ps     []string
	leader uint64 // of the request key's shard, as the last read of it said
}

func (c *sealer) one(key []byte, r *kvpb.Request) *kvpb.Response {
	return c.n.doShard(c.ctx, c.n.shardOf(key), r)
}

func (c *sealer) seal(plain, aad []byte) ([]byte, *kvpb.Response) {
	sealed, err := store.SealValue(c.ps[0], plain, aad)
	if err != nil {
		return nil, shard.ErrorResponse(err)
	}
	return sealed, nil
}

// open returns the plaintext of an encoded store.RawValue.
func (c *sealer) open(enc, aad []byte) ([]byte, error) {
	v, err := store.DecodeRawValue(enc)
	if err != nil {
		return nil, err
	}
	return v.Open(c.ps, aad)
}

// conflict waits before another attempt of an operation whose guarded
// write found the value changed; nil, or the response when time is up.
func (c *sealer) conflict(attempt int, what string) *kvpb.Response {
	select {
	case <-c.ctx.Done():
		return &kvpb.Response{Code: kvpb.Code_UNAVAILABLE, Error: fmt.Sprintf("%s: changed concurrently %d times: %v", what, attempt, c.ctx.Err())}
	case <-time.After(time.Duration(min(attempt, 20)) * 5 * time.Millisecond):
		return nil
	}
}

func (c *sealer) do(r *kvpb.Request) *kvpb.Response {
	switch r.Op {
	case kvpb.Op_SET:
		sealed, resp := c.seal(r.Value, store.KeyAAD(r.Key))
		if resp != nil {
			return resp
		}
		return c.one(r.Key, &kvpb.Request{Op: kvpb.Op_SET, Key: r.Key, Value: sealed, TtlNanos: r.TtlNanos, SealedValue: true})
	case kvpb.Op_SUBKEY_SET:
		// As in Do: the subkey's value, then the parent's index entry.
		sealed, resp := c.seal(r.Value, store.KeyAAD(r.Subkey))
		if resp != nil {
			return resp
		}
		if resp := c.one(r.Subkey, &kvpb.Request{Op: kvpb.Op_SET, Key: r.Subkey, Value: sealed, TtlNanos: r.TtlNanos, SealedValue: true}); resp.Code != kvpb.Code_OK {
			return resp
		}
		return c.one(r.Key, &kvpb.Request{Op: kvpb.Op_SUBKEY_LINK, Key: r.Key, Subkey: r.Subkey})
	case kvpb.Op_PUSH:
		sealed, resp := c.seal(r.Value, store.QueueItemAAD(r.Key))
		if resp != nil {
			return resp
		}
		return c.one(r.Key, &kvpb.Request{Op: kvpb.Op_PUSH, Key: r.Key, Value: sealed, SealedValue: true})
	case kvpb.Op_PUSH_KEYED:
		// As in Do: the item's key, then the queue's reference to it.
		sealed, resp := c.seal(r.Value, store.KeyAAD(r.Subkey))
		if resp != nil {
			return resp
		}
		if resp := c.one(r.Subkey, &kvpb.Request{Op: kvpb.Op_SET, Key: r.Subkey, Value: sealed, SealedValue: true}); resp.Code != kvpb.Code_OK {
			return resp
		}
		return c.one(r.Key, &kvpb.Request{Op: kvpb.Op_PUSH_KEY_REF, Key: r.Key, Subkey: r.Subkey})
	case kvpb.Op_GET:
		resp := c.one(r.Key, &kvpb.Request{Op: kvpb.Op_GET, Key: r.Key, Serializable: r.Serializable, RawValues: true})
		if resp.Code != kvpb.Code_OK {
			return resp
		}
		plain, err := c.open(resp.Value, store.KeyAAD(r.Key))
		if err != nil {
			return shard.ErrorResponse(fmt.Errorf("get %q: %w", r.Key, err))
		}
		resp.Value = plain
		return resp
	case kvpb.Op_SCAN:
		r.RawValues = true
		resp := c.n.scan(c.ctx, r)
		if resp.Code != kvpb.Code_OK {
			return resp
		}
		for _, kv := range resp.Kvs {
			plain, err := c.open(kv.Value, store.KeyAAD(kv.Key))
			if err != nil {
				return shard.ErrorResponse(fmt.Errorf("scan: key %q: %w", kv.Key, err))
			}
			kv.Value = plain
		}
		return resp
	case kvpb.Op_PEEK:
		h, resp := c.head(r.Key, r.Back, r.Serializable)
		if resp != nil {
			return resp
		}
		plain, err := c.openItem(r.Key, h)
		if err != nil {
			return shard.ErrorResponse(err)
		}
		return &kvpb.Response{Value: plain, ItemKey: h.peek.ItemKey, Found: plain != nil, Kind: h.peek.Kind, Leader: h.peek.Leader}
	case kvpb.Op_POP:
		return c.pop(r.Key, r.Back)
	case kvpb.Op_REMOVE_ITEMS:
		if r.Limit <= 0 {
			return shard.ErrorResponse(fmt.Errorf("%w: remove count %d must be positive", store.ErrInvalid, r.Limit))
		}
		// One verified pop at a time (in the local engine the items go
		// in one batch; here a failure leaves the earlier ones removed).
		out := &kvpb.Response{}
		for out.N < uint64(r.Limit) {
			p := c.pop(r.Key, r.Back)
			if p.Code == kvpb.Code_NOT_FOUND {
				break
			}
			if p.Code != kvpb.Code_OK {
				if out.N > 0 {
					p.Error = fmt.Sprintf("%s (after removing %d items)", p.Error, out.N)
				}
				return p
			}
			out.N++
		}
		return out
	case kvpb.Op_CAS_INIT:
		_, plain, err := store.CASEncode(store.Bits(r.Bits), r.New)
		if err != nil {
			return shard.ErrorResponse(err)
		}
		sealed, resp := c.seal(plain, store.KeyAAD(r.Key))
		if resp != nil {
			return resp
		}
		resp = c.one(r.Key, &kvpb.Request{Op: kvpb.Op_CAS_INIT, Key: r.Key, Bits: r.Bits, Value: sealed, SealedValue: true})
		resp.Swapped = false
		return resp
	case kvpb.Op_CAS_GET:
		cur, _, resp := c.casRead(r.Key, r.Bits, r.Serializable)
		if resp != nil {
			return resp
		}
		return &kvpb.Response{N: cur, Found: true, Leader: c.leader}
	case kvpb.Op_CAS_SET, kvpb.Op_CAS_ADD:
		bits := store.Bits(r.Bits)
		if r.Op == kvpb.Op_CAS_SET {
			if err := store.CASCheck(bits, r.Old, "old value"); err != nil {
				return shard.ErrorResponse(err)
			}
			if err := store.CASCheck(bits, r.New, "new value"); err != nil {
				return shard.ErrorResponse(err)
			}
		}
		for attempt := 1; ; attempt++ {
			cur, enc, resp := c.casRead(r.Key, r.Bits, false)
			if resp != nil {
				return resp
			}
			next := r.New
			if r.Op == kvpb.Op_CAS_ADD {
				next = store.CASSum(bits, cur, r.Delta)
			} else if cur != r.Old {
				return &kvpb.Response{Swapped: false, N: cur, Leader: c.leader}
			}
			_, plain, err := store.CASEncode(bits, next)
			if err != nil {
				return shard.ErrorResponse(err)
			}
			sealed, resp := c.seal(plain, store.KeyAAD(r.Key))
			if resp != nil {
				return resp
			}
			w := c.one(r.Key, &kvpb.Request{Op: kvpb.Op_CAS_INIT, Key: r.Key, Bits: r.Bits, Value: sealed, SealedValue: true, Expect: store.Guard(nil, enc)})
			if w.Code != kvpb.Code_OK {
				return w
			}
			if w.Swapped {
				if r.Op == kvpb.Op_CAS_SET {
					return &kvpb.Response{Swapped: true, N: next, Leader: w.Leader}
				}
				return &kvpb.Response{N: next, Leader: w.Leader}
			}
			if resp := c.conflict(attempt, fmt.Sprintf("cas %q", r.Key)); resp != nil {
				return resp
			}
		}
	}
	return &kvpb.Response{Code: kvpb.Code_INVALID, Error: fmt.Sprintf("invalid argument: operation %v takes no passphrases", r.Op)}
}

// casRead reads key as a CAS integer: its value, and its encoded
// store.RawValue for a guarded write.
func (c *sealer) casRead(key []byte, bits uint32, serializable bool) (uint64, []byte, *kvpb.Response) {
	want, err := store.TypeForBits(store.Bits(bits))
	if err != nil {
		return 0, nil, shard.ErrorResponse(err)
	}
	g := c.one(key, &kvpb.Request{Op: kvpb.Op_GET, Key: key, Serializable: serializable, RawValues: true})
	if g.Code != kvpb.Code_OK {
		return 0, nil, g
	}
	c.leader = g.Leader
	v, err := store.DecodeRawValue(g.Value)
	if err != nil {
		return 0, nil, shard.ErrorResponse(fmt.Errorf("key %q: %w", key, err))
	}
	var plain []byte
	if v.Type == want { // a type mismatch is told before opening, as locally
		if plain, err = v.Open(c.ps, store.KeyAAD(key)); err != nil {
			return 0, nil, shard.ErrorResponse(fmt.Errorf("key %q: %w", key, err))
		}
	}
	cur, err := store.CASDecode(key, store.Bits(bits), v.Type, plain)
	if err != nil {
		return 0, nil, shard.ErrorResponse(err)
	}
	return cur, g.Value, nil
}

// headItem is the item at one end of a queue, as stored.
type headItem struct {
	peek   *kvpb.Response // the queue's shard's answer (raw)
	value  []byte         // encoded store.RawValue of the item's value; nil: none
	remote bool           // a keyed item whose value was read from its key's shard
}

// head reads the item at one end of queue name and its value as stored.
func (c *sealer) head(name []byte, back, serializable bool) (headItem, *kvpb.Response) {
	p := c.one(name, &kvpb.Request{Op: kvpb.Op_PEEK, Key: name, Back: back, Serializable: serializable, RawValues: true})
	if p.Code != kvpb.Code_OK {
		return headItem{}, p
	}
	h := headItem{peek: p, value: p.Value}
	if p.ItemKey != nil && p.Value == nil {
		h.remote = true
		g := c.one(p.ItemKey, &kvpb.Request{Op: kvpb.Op_GET, Key: p.ItemKey, Serializable: serializable, RawValues: true})
		switch g.Code {
		case kvpb.Code_OK:
			h.value = g.Value
		case kvpb.Code_NOT_FOUND:
		default:
			return headItem{}, g
		}
	}
	return h, nil
}

// openItem returns the plaintext of an item's value (nil: none), with the
// local engine's errors.
func (c *sealer) openItem(name []byte, h headItem) ([]byte, error) {
	if h.value == nil {
		return nil, nil
	}
	if key := h.peek.ItemKey; key != nil {
		plain, err := c.open(h.value, store.KeyAAD(key))
		if err != nil {
			return nil, fmt.Errorf("queue %q: item key %q: %w", name, key, err)
		}
		return plain, nil
	}
	plain, err := c.open(h.value, store.QueueItemAAD(name))
	if err != nil {
		return nil, fmt.Errorf("queue %q: %w", name, err)
	}
	return plain, nil
}

// pop removes the item at one end of queue name once its value is known
// to open: read it, open it, pop it if it is still the item read, and
// take a keyed item's value from its key's shard the same way.
func (c *sealer) pop(name []byte, back bool) *kvpb.Response {
	for attempt := 1; ; attempt++ {
		h, resp := c.head(name, back, false)
		if resp != nil {
			return resp
		}
		plain, err := c.openItem(name, h)
		if err != nil {
			return shard.ErrorResponse(err)
		}
		p := c.one(name, &kvpb.Request{Op: kvpb.Op_POP, Key: name, Back: back, RawValues: true,
			Expect: store.Guard(h.peek.ItemKey, h.peek.Value)})
		if p.Code != kvpb.Code_OK {
			return p
		}
		if !p.Swapped {
			if resp := c.conflict(attempt, fmt.Sprintf("pop from queue %q", name)); resp != nil {
				return resp
			}
			continue
		}
		out := &kvpb.Response{ItemKey: h.peek.ItemKey, Kind: h.peek.Kind, Value: plain, Found: plain != nil, Leader: p.Leader}
		if h.remote {
			v, resp := c.take(name, h.peek.ItemKey, h.value, plain)
			if resp != nil {
				return resp
			}
			out.Value, out.Found = v, v != nil
		}
		return out
	}
}

// take removes key's value (read as enc, opening to plain) from its shard
// once it is known to open. The queue item that referred to it is already
// gone: an error leaves the value where it is, an orphan key.
func (c *sealer) take(name, key, enc, plain []byte) ([]byte, *kvpb.Response) {
	for attempt := 1; ; attempt++ {
		t := c.one(key, &kvpb.Request{Op: kvpb.Op_TAKE, Key: key, RawValues: true, Expect: store.Guard(nil, enc)})
		if t.Code != kvpb.Code_OK {
			return nil, t
		}
		if t.Swapped {
			return plain, nil
		}
		// Written again since it was read: check the new value.
		if bytes.Equal(t.Value, enc) {
			return nil, shard.ErrorResponse(fmt.Errorf("%w: take %q: guard mismatch on an unchanged value", store.ErrCorrupt, key))
		}
		enc, plain = t.Value, nil
		if enc != nil {
			var err error
			if plain, err = c.open(enc, store.KeyAAD(key)); err != nil {
				return nil, shard.ErrorResponse(fmt.Errorf("queue %q: item key %q: %w", name, key, err))
			}
		}
		if resp := c.conflict(attempt, fmt.Sprintf("take %q", key)); resp != nil {
			return nil, resp
		}
	}
}
