package client

import (
	"context"
	"time"

	"github.com/kura-dev/kura/proto/kvpb"
	"github.com/kura-dev/kura/store"
)

// The typed operations mirror *store.Store's methods of the same names.

// Get returns key's value.
func (c *Client) Get(ctx context.Context, key []byte) ([]byte, error) {
	r, err := c.Do(ctx, &kvpb.Request{Op: kvpb.Op_GET, Key: key})
	if err != nil {
		return nil, err
	}
	return r.Value, nil
}

// Set sets key to value; a zero ttl means the cluster's default.
func (c *Client) Set(ctx context.Context, key, value []byte, ttl time.Duration) error {
	_, err := c.Do(ctx, &kvpb.Request{Op: kvpb.Op_SET, Key: key, Value: value, TtlNanos: int64(ttl)})
	return err
}

// Delete deletes key's value (its subkeys stay).
func (c *Client) Delete(ctx context.Context, key []byte) error {
	_, err := c.Do(ctx, &kvpb.Request{Op: kvpb.Op_DELETE, Key: key})
	return err
}

// DeleteAll deletes key and its subkeys, recursively.
func (c *Client) DeleteAll(ctx context.Context, key []byte) error {
	_, err := c.Do(ctx, &kvpb.Request{Op: kvpb.Op_DELETE_ALL, Key: key})
	return err
}

// Scan returns up to limit keys with prefix after the key after, in order,
// and whether more follow.
func (c *Client) Scan(ctx context.Context, prefix, after []byte, limit int) ([]store.KV, bool, error) {
	r, err := c.Do(ctx, &kvpb.Request{Op: kvpb.Op_SCAN, Key: prefix, Subkey: after, Limit: int32(limit)})
	if err != nil {
		return nil, false, err
	}
	out := make([]store.KV, len(r.Kvs))
	for i, kv := range r.Kvs {
		out[i] = store.KV{Key: kv.Key, Value: kv.Value}
	}
	return out, r.More, nil
}

// Attributes returns key's attributes.
func (c *Client) Attributes(ctx context.Context, key []byte) (store.Attrs, error) {
	r, err := c.Do(ctx, &kvpb.Request{Op: kvpb.Op_ATTRS, Key: key})
	if err != nil {
		return store.Attrs{}, err
	}
	a := store.Attrs{Modified: time.Unix(0, r.Attrs.GetMtimeNanos()), Encrypted: r.Attrs.GetEncrypted(),
		Type: store.ValueType(r.Attrs.GetType()), Size: int(r.Attrs.GetSize())}
	if e := r.Attrs.GetExpiryNanos(); e != 0 {
		a.Expires = time.Unix(0, e)
	}
	return a, nil
}

// SetSubkey sets subkey to value and lists it under parent.
func (c *Client) SetSubkey(ctx context.Context, parent, subkey, value []byte, ttl time.Duration) error {
	_, err := c.Do(ctx, &kvpb.Request{Op: kvpb.Op_SUBKEY_SET, Key: parent, Subkey: subkey, Value: value, TtlNanos: int64(ttl)})
	return err
}

// Subkeys lists parent's live subkeys.
func (c *Client) Subkeys(ctx context.Context, parent []byte) ([][]byte, error) {
	r, err := c.Do(ctx, &kvpb.Request{Op: kvpb.Op_SUBKEYS, Key: parent})
	if err != nil {
		return nil, err
	}
	return r.Keys, nil
}

// DeleteSubkey removes subkey from parent's list and deletes it (with all,
// its own subkeys too).
func (c *Client) DeleteSubkey(ctx context.Context, parent, subkey []byte, all bool) error {
	_, err := c.Do(ctx, &kvpb.Request{Op: kvpb.Op_SUBKEY_DELETE, Key: parent, Subkey: subkey, All: all})
	return err
}

// Push appends value to queue name.
func (c *Client) Push(ctx context.Context, name, value []byte) error {
	_, err := c.Do(ctx, &kvpb.Request{Op: kvpb.Op_PUSH, Key: name, Value: value})
	return err
}

// PushKeyed sets key to value and appends key to keyed queue name.
func (c *Client) PushKeyed(ctx context.Context, name, key, value []byte) error {
	_, err := c.Do(ctx, &kvpb.Request{Op: kvpb.Op_PUSH_KEYED, Key: name, Subkey: key, Value: value})
	return err
}

func item(r *kvpb.Response) store.QueueItem { return store.QueueItem{Key: r.ItemKey, Value: r.Value} }

// Pop removes and returns the item at end of queue name.
func (c *Client) Pop(ctx context.Context, name []byte, end store.End) (store.QueueItem, error) {
	r, err := c.Do(ctx, &kvpb.Request{Op: kvpb.Op_POP, Key: name, Back: end == store.Back})
	if err != nil {
		return store.QueueItem{}, err
	}
	return item(r), nil
}

// Peek returns the item at end of queue name without removing it.
func (c *Client) Peek(ctx context.Context, name []byte, end store.End) (store.QueueItem, error) {
	r, err := c.Do(ctx, &kvpb.Request{Op: kvpb.Op_PEEK, Key: name, Back: end == store.Back})
	if err != nil {
		return store.QueueItem{}, err
	}
	return item(r), nil
}

// RemoveItems removes up to n items from end of queue name.
func (c *Client) RemoveItems(ctx context.Context, name []byte, end store.End, n int) (int, error) {
	r, err := c.Do(ctx, &kvpb.Request{Op: kvpb.Op_REMOVE_ITEMS, Key: name, Back: end == store.Back, Limit: int32(n)})
	if err != nil {
		return 0, err
	}
	return int(r.N), nil
}

// QueueLen returns the number of items in queue name and its kind.
func (c *Client) QueueLen(ctx context.Context, name []byte) (uint64, store.QueueKind, error) {
	r, err := c.Do(ctx, &kvpb.Request{Op: kvpb.Op_QUEUE_LEN, Key: name})
	if err != nil {
		return 0, 0, err
	}
	return r.N, store.QueueKind(r.Kind), nil
}

// CASInit sets the counter key of the given width to v.
func (c *Client) CASInit(ctx context.Context, key []byte, bits store.Bits, v uint64) error {
	_, err := c.Do(ctx, &kvpb.Request{Op: kvpb.Op_CAS_INIT, Key: key, Bits: uint32(bits), New: v})
	return err
}

// CASGet reads the counter key.
func (c *Client) CASGet(ctx context.Context, key []byte, bits store.Bits) (uint64, error) {
	r, err := c.Do(ctx, &kvpb.Request{Op: kvpb.Op_CAS_GET, Key: key, Bits: uint32(bits)})
	if err != nil {
		return 0, err
	}
	return r.N, nil
}

// CASSet sets the counter to new if it holds old; it returns whether it
// swapped and the value it holds now.
func (c *Client) CASSet(ctx context.Context, key []byte, bits store.Bits, old, new uint64) (bool, uint64, error) {
	r, err := c.Do(ctx, &kvpb.Request{Op: kvpb.Op_CAS_SET, Key: key, Bits: uint32(bits), Old: old, New: new})
	if err != nil {
		return false, 0, err
	}
	return r.Swapped, r.N, nil
}

// CASAdd adds delta to the counter and returns the new value.
func (c *Client) CASAdd(ctx context.Context, key []byte, bits store.Bits, delta int64) (uint64, error) {
	r, err := c.Do(ctx, &kvpb.Request{Op: kvpb.Op_CAS_ADD, Key: key, Bits: uint32(bits), Delta: delta})
	if err != nil {
		return 0, err
	}
	return r.N, nil
}
