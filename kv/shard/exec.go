package shard

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kura-dev/kura/proto/kvpb"
	"github.com/kura-dev/kura/store"
)

// IsRead tells whether op only reads one shard (served after a ReadIndex,
// or from any replica when serializable) rather than going through the log.
func IsRead(op kvpb.Op) bool {
	switch op {
	case kvpb.Op_GET, kvpb.Op_SCAN, kvpb.Op_ATTRS, kvpb.Op_SUBKEY_INDEX, kvpb.Op_PEEK,
		kvpb.Op_QUEUE_LEN, kvpb.Op_CAS_GET:
		return true
	}
	return false
}

// IsShardWrite tells whether op is a single-shard mutation a shard's log
// accepts.
func IsShardWrite(op kvpb.Op) bool {
	switch op {
	case kvpb.Op_SET, kvpb.Op_DELETE, kvpb.Op_PUSH, kvpb.Op_POP, kvpb.Op_REMOVE_ITEMS,
		kvpb.Op_CAS_INIT, kvpb.Op_CAS_SET, kvpb.Op_CAS_ADD, kvpb.Op_SUBKEY_LINK,
		kvpb.Op_SUBKEY_UNLINK, kvpb.Op_PUSH_KEY_REF, kvpb.Op_TAKE, kvpb.Op_REAP, kvpb.Op_NOOP:
		return true
	}
	return false
}

func end(back bool) store.End {
	if back {
		return store.Back
	}
	return store.Front
}

// ErrorResponse turns an error into an in-band response.
func ErrorResponse(err error) *kvpb.Response {
	return &kvpb.Response{Code: CodeOf(err), Error: err.Error()}
}

// CodeOf classifies an error of the storage engine.
func CodeOf(err error) kvpb.Code {
	switch {
	case err == nil:
		return kvpb.Code_OK
	case errors.Is(err, store.ErrNotFound):
		return kvpb.Code_NOT_FOUND
	case errors.Is(err, store.ErrTypeMismatch):
		return kvpb.Code_TYPE_MISMATCH
	case errors.Is(err, store.ErrNeedPassphrase):
		return kvpb.Code_NEED_PASSPHRASE
	case errors.Is(err, store.ErrWrongPassphrase):
		return kvpb.Code_WRONG_PASSPHRASE
	case errors.Is(err, store.ErrInvalid):
		return kvpb.Code_INVALID
	case errors.Is(err, store.ErrCorrupt):
		return kvpb.Code_CORRUPT
	}
	return kvpb.Code_INTERNAL
}

// AttrsPB converts attributes to their wire form.
func AttrsPB(a store.Attrs) *kvpb.Attrs {
	out := &kvpb.Attrs{Type: uint32(a.Type), MtimeNanos: a.Modified.UnixNano(), Encrypted: a.Encrypted, Size: uint32(a.Size)}
	if !a.Expires.IsZero() {
		out.ExpiryNanos = a.Expires.UnixNano()
	}
	return out
}

// Exec runs one single-shard operation against st and returns its outcome
// (errors in-band). It is the state machine's transition function for
// writes and the read path for reads.
func Exec(ctx context.Context, st *store.Store, req *kvpb.Request) *kvpb.Response {
	resp, err := exec(ctx, st, req)
	if err != nil {
		return ErrorResponse(err)
	}
	return resp
}

func exec(ctx context.Context, st *store.Store, req *kvpb.Request) (*kvpb.Response, error) {
	if isSealedReq(req) {
		return execSealed(ctx, st, req) // see sealed.go
	}
	ok := &kvpb.Response{}
	ttl := time.Duration(req.TtlNanos)
	bits := store.Bits(req.Bits)
	switch req.Op {
	case kvpb.Op_GET:
		v, err := st.Get(ctx, req.Key)
		if err != nil {
			return nil, err
		}
		return &kvpb.Response{Value: v, Found: true}, nil
	case kvpb.Op_SET:
		return ok, st.Set(ctx, req.Key, req.Value, ttl)
	case kvpb.Op_DELETE:
		return ok, st.Delete(ctx, req.Key)
	case kvpb.Op_SCAN:
		kvs, more, err := st.Scan(ctx, req.Key, req.Subkey, int(req.Limit))
		if err != nil {
			return nil, err
		}
		out := &kvpb.Response{More: more, Kvs: make([]*kvpb.KeyValue, len(kvs))}
		for i, kv := range kvs {
			out.Kvs[i] = &kvpb.KeyValue{Key: kv.Key, Value: kv.Value}
		}
		return out, nil
	case kvpb.Op_ATTRS:
		a, err := st.Attributes(ctx, req.Key)
		if err != nil {
			return nil, err
		}
		return &kvpb.Response{Attrs: AttrsPB(a), Found: true}, nil
	case kvpb.Op_SUBKEY_INDEX:
		keys, err := st.SubkeyIndex(ctx, req.Key)
		if err != nil {
			return nil, err
		}
		return &kvpb.Response{Keys: keys}, nil
	case kvpb.Op_SUBKEY_LINK:
		return ok, st.LinkSubkey(ctx, req.Key, req.Subkey)
	case kvpb.Op_SUBKEY_UNLINK:
		return ok, st.UnlinkSubkey(ctx, req.Key, req.Subkey)
	case kvpb.Op_PUSH:
		return ok, st.Push(ctx, req.Key, req.Value)
	case kvpb.Op_PUSH_KEY_REF:
		return ok, st.PushKeyRef(ctx, req.Key, req.Subkey)
	case kvpb.Op_POP, kvpb.Op_PEEK:
		f := st.Pop
		if req.Op == kvpb.Op_PEEK {
			f = st.Peek
		}
		it, err := f(ctx, req.Key, end(req.Back))
		if err != nil {
			return nil, err
		}
		_, kind, err := st.QueueLen(ctx, req.Key)
		if err != nil && !store.IsNotFound(err) {
			return nil, err
		}
		return &kvpb.Response{Value: it.Value, ItemKey: it.Key, Found: it.Value != nil, Kind: uint32(kind)}, nil
	case kvpb.Op_REMOVE_ITEMS:
		if req.Limit <= 0 {
			return nil, fmt.Errorf("%w: remove count %d must be positive", store.ErrInvalid, req.Limit)
		}
		// Items one by one, so that keyed items' keys can be returned for
		// deletion on their own shards.
		out := &kvpb.Response{}
		for i := 0; i < int(req.Limit); i++ {
			it, err := st.Pop(ctx, req.Key, end(req.Back))
			if store.IsNotFound(err) {
				break
			}
			if err != nil {
				return nil, err
			}
			out.N++
			if it.Key != nil {
				out.Keys = append(out.Keys, it.Key)
			}
		}
		return out, nil
	case kvpb.Op_QUEUE_LEN:
		n, kind, err := st.QueueLen(ctx, req.Key)
		if err != nil {
			return nil, err
		}
		return &kvpb.Response{N: n, Kind: uint32(kind)}, nil
	case kvpb.Op_CAS_INIT:
		return ok, st.CASInit(ctx, req.Key, bits, req.New)
	case kvpb.Op_CAS_GET:
		v, err := st.CASGet(ctx, req.Key, bits)
		if err != nil {
			return nil, err
		}
		return &kvpb.Response{N: v, Found: true}, nil
	case kvpb.Op_CAS_SET:
		swapped, cur, err := st.CASSet(ctx, req.Key, bits, req.Old, req.New)
		if err != nil {
			return nil, err
		}
		return &kvpb.Response{Swapped: swapped, N: cur}, nil
	case kvpb.Op_CAS_ADD:
		v, err := st.CASAdd(ctx, req.Key, bits, req.Delta)
		if err != nil {
			return nil, err
		}
		return &kvpb.Response{N: v}, nil
	case kvpb.Op_TAKE:
		v, err := st.Take(ctx, req.Key)
		if store.IsNotFound(err) {
			return &kvpb.Response{}, nil
		}
		if err != nil {
			return nil, err
		}
		return &kvpb.Response{Value: v, Found: true}, nil
	case kvpb.Op_REAP:
		n, err := st.ReapExpired(ctx)
		return &kvpb.Response{N: uint64(n)}, err
	case kvpb.Op_NOOP:
		return ok, nil
	}
	return nil, fmt.Errorf("%w: operation %v is not a single-shard operation", store.ErrInvalid, req.Op)
}
