package shard

import (
	"context"
	"fmt"
	"time"

	"github.com/kura-dev/kura/proto/kvpb"
	"github.com/kura-dev/kura/store"
)

// Values written with per-request passphrases are sealed by the node that
// received the request, before it proposes the write, and opened by it
// after a read (kv/server/crypt.go): the state machine stores and returns
// the sealed bytes, never a passphrase. Its requests carry internal fields:
//
//   - sealed_value: SET, PUSH and CAS_INIT store Value, a sealed value
//     (store.SealValue's format), as it is: store.SetSealed, PushSealed.
//   - raw_values: GET, SCAN, PEEK, POP and TAKE return each value as
//     stored, a store.RawValue's encoding (sealed values unopened; nil
//     Value when there is none).
//   - expect: POP and TAKE (with raw_values) and CAS_INIT (with
//     sealed_value) apply only if the item or value they remove or replace
//     still has this store.Guard, that is, is the one the node read and
//     opened; Response.Swapped says whether they did. So a value is removed
//     only by a request whose passphrases open it, as in the local engine.

// isSealedReq tells whether req uses the internal fields.
func isSealedReq(req *kvpb.Request) bool {
	return req.SealedValue || req.RawValues || req.Expect != nil
}

func encodeRaw(v *store.RawValue) []byte {
	if v == nil {
		return nil
	}
	return v.Encode()
}

func execSealed(ctx context.Context, st *store.Store, req *kvpb.Request) (*kvpb.Response, error) {
	guarded := req.Expect != nil
	switch {
	case req.SealedValue && req.RawValues:
	case req.SealedValue:
		switch req.Op {
		case kvpb.Op_SET:
			if guarded {
				break
			}
			_, err := st.SetSealed(ctx, req.Key, req.Value, store.TypeBytes, time.Duration(req.TtlNanos), nil)
			return &kvpb.Response{}, err
		case kvpb.Op_PUSH:
			if guarded {
				break
			}
			return &kvpb.Response{}, st.PushSealed(ctx, req.Key, req.Value)
		case kvpb.Op_CAS_INIT:
			typ, err := store.TypeForBits(store.Bits(req.Bits))
			if err != nil {
				return nil, err
			}
			ok, err := st.SetSealed(ctx, req.Key, req.Value, typ, -1, req.Expect)
			return &kvpb.Response{Swapped: ok}, err
		}
	case req.RawValues:
		switch req.Op {
		case kvpb.Op_GET:
			if guarded {
				break
			}
			v, err := st.GetRaw(ctx, req.Key)
			if err != nil {
				return nil, err
			}
			return &kvpb.Response{Value: v.Encode(), Found: true}, nil
		case kvpb.Op_SCAN:
			if guarded {
				break
			}
			kvs, more, err := st.ScanRaw(ctx, req.Key, req.Subkey, int(req.Limit))
			if err != nil {
				return nil, err
			}
			out := &kvpb.Response{More: more, Kvs: make([]*kvpb.KeyValue, len(kvs))}
			for i, kv := range kvs {
				out.Kvs[i] = &kvpb.KeyValue{Key: kv.Key, Value: kv.Value.Encode()}
			}
			return out, nil
		case kvpb.Op_PEEK:
			if guarded {
				break
			}
			it, err := st.PeekRaw(ctx, req.Key, end(req.Back))
			if err != nil {
				return nil, err
			}
			_, kind, err := st.QueueLen(ctx, req.Key)
			if err != nil {
				return nil, err
			}
			return &kvpb.Response{Value: encodeRaw(it.Value), ItemKey: it.Key, Found: it.Value != nil, Kind: uint32(kind)}, nil
		case kvpb.Op_POP:
			if !guarded {
				break
			}
			_, kind, err := st.QueueLen(ctx, req.Key)
			if err != nil {
				return nil, err
			}
			it, ok, err := st.PopRaw(ctx, req.Key, end(req.Back), req.Expect)
			if err != nil {
				return nil, err
			}
			return &kvpb.Response{Value: encodeRaw(it.Value), ItemKey: it.Key, Found: it.Value != nil, Kind: uint32(kind), Swapped: ok}, nil
		case kvpb.Op_TAKE:
			if !guarded {
				break
			}
			v, ok, err := st.TakeRaw(ctx, req.Key, req.Expect)
			if err != nil {
				return nil, err
			}
			return &kvpb.Response{Value: encodeRaw(v), Found: v != nil, Swapped: ok}, nil
		}
	}
	return nil, fmt.Errorf("%w: operation %v with sealed_value=%v raw_values=%v expect=%v", store.ErrInvalid, req.Op, req.SealedValue, req.RawValues, guarded)
}
