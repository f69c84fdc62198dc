package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Get returns the value of key. A missing or expired key is ErrNotFound.
func (s *Store) Get(ctx context.Context, key []byte) ([]byte, error) {
	v, _, err := s.GetWithAttrs(ctx, key)
	return v, err
}

// GetWithAttrs returns the value of key and its attributes.
func (s *Store) GetWithAttrs(ctx context.Context, key []byte) ([]byte, Attrs, error) {
	if err := checkKey("key", key, s.opts.MaxKeySize); err != nil {
		return nil, Attrs{}, err
	}
	lk, err := s.lockRead()
	if err != nil {
		return nil, Attrs{}, err
	}
	defer lk.release()
	kb := s.keyBufs.get(nsKey, key)
	defer s.keyBufs.put(kb)
	raw, closer, err := s.db.Get(*kb)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, Attrs{}, fmt.Errorf("key %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, Attrs{}, fmt.Errorf("get %q: %w", key, pebbleErr(err))
	}
	defer closer.Close()
	r, err := decodeRecord(raw)
	if err != nil {
		return nil, Attrs{}, fmt.Errorf("key %q: %w", key, err)
	}
	if r.expired(s.nowCtx(ctx)) {
		return nil, Attrs{}, fmt.Errorf("key %q: %w", key, ErrNotFound)
	}
	var plain []byte
	if r.flags&flagEncrypted == 0 {
		plain = bytes.Clone(r.payload) // raw is only valid until closer.Close
		if plain == nil {
			plain = []byte{}
		}
	} else if plain, err = s.openRecord(r, dataKey(key)); err != nil {
		return nil, Attrs{}, fmt.Errorf("get %q: %w", key, err)
	}
	return plain, s.attrsOf(r, len(plain)), nil
}

// Attributes returns the attributes of key without opening its value (so
// it works on encrypted values without a passphrase).
func (s *Store) Attributes(ctx context.Context, key []byte) (Attrs, error) {
	if err := checkKey("key", key, s.opts.MaxKeySize); err != nil {
		return Attrs{}, err
	}
	lk, err := s.lockRead()
	if err != nil {
		return Attrs{}, err
	}
	defer lk.release()
	r, err := s.getRecord(key, s.nowCtx(ctx))
	if err != nil {
		return Attrs{}, err
	}
	size := len(r.payload)
	if r.flags&flagEncrypted != 0 {
		size -= r.sealedOverhead()
	}
	return s.attrsOf(r, size), nil
}

// getRecord reads the record of key, live as of now; its payload is a
// private copy.
func (s *Store) getRecord(key []byte, now int64) (record, error) {
	raw, err := s.get(dataKey(key))
	if err != nil {
		return record{}, fmt.Errorf("get %q: %w", key, err)
	}
	if raw == nil {
		return record{}, fmt.Errorf("key %q: %w", key, ErrNotFound)
	}
	r, err := decodeRecord(raw)
	if err != nil {
		return record{}, fmt.Errorf("key %q: %w", key, err)
	}
	if r.expired(now) {
		return record{}, fmt.Errorf("key %q: %w", key, ErrNotFound)
	}
	return r, nil
}

// Set stores value under key. ttl 0 uses the store's default TTL; a
// negative ttl means the value never expires.
func (s *Store) Set(ctx context.Context, key, value []byte, ttl time.Duration) error {
	if err := checkKey("key", key, s.opts.MaxKeySize); err != nil {
		return err
	}
	if err := s.checkValue(value); err != nil {
		return err
	}
	lk, err := s.lockKeys(nsKeyPair{nsKey, key})
	if err != nil {
		return err
	}
	defer lk.release()
	b := s.db.NewBatch()
	defer b.Close()
	c, err := s.putValue(b, s.nowCtx(ctx), OpSet, key, nil, TypeBytes, value, ttl)
	if err != nil {
		return err
	}
	if err := s.commit(b, c); err != nil {
		return fmt.Errorf("set %q: %w", key, err)
	}
	return nil
}

// putValue adds the writes that store value under key to b, as written at
// now, and returns the change that describes them. The record is encoded
// straight into the batch; the change's rec aliases it.
func (s *Store) putValue(b *pebble.Batch, now int64, op Op, key, subkey []byte, typ ValueType, value []byte, ttl time.Duration) (change, error) {
	target := key
	if op == OpSubkeyAdd || (op == OpQueuePush && subkey != nil) {
		target = subkey
	}
	r := record{typ: typ, mtime: now, expiry: s.expiryFor(now, ttl), payload: value}
	if s.keys != nil {
		var err error
		if r, err = s.sealRecord(typ, value, now, r.expiry, dataKey(target)); err != nil {
			return change{}, fmt.Errorf("seal %q: %w", target, err)
		}
	}
	d := b.SetDeferred(1+len(target), recordHeader+len(r.payload))
	d.Key[0] = nsKey
	copy(d.Key[1:], target)
	r.encodeTo(d.Value)
	// d points into the batch and is reused by its next operation.
	rec := d.Value
	if err := d.Finish(); err != nil {
		return change{}, err
	}
	if r.expiry != 0 {
		b.Set(expiryKey(r.expiry, target), nil, nil)
	}
	return change{op: op, time: now, key: key, subkey: subkey, rec: rec}, nil
}

// Delete removes key. Its subkeys stay (use DeleteAll to remove them too),
// but key no longer lists them. A key with neither a value nor subkeys is
// ErrNotFound.
func (s *Store) Delete(ctx context.Context, key []byte) error {
	if err := checkKey("key", key, s.opts.MaxKeySize); err != nil {
		return err
	}
	lk, err := s.lockKeys(nsKeyPair{nsKey, key})
	if err != nil {
		return err
	}
	defer lk.release()
	now := s.nowCtx(ctx)
	if err := s.checkExists(key, now); err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	b.Delete(dataKey(key), nil)
	b.DeleteRange(subkeyPrefix(key), prefixEnd(subkeyPrefix(key)), nil)
	if err := s.commit(b, change{op: OpDelete, time: now, key: key}); err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	return nil
}

// Take returns the value of key and deletes it, in one atomic step: of
// concurrent Takes of a key, one gets the value. A missing or expired key
// is ErrNotFound, and a value that cannot be opened (encrypted, with no or
// the wrong passphrase) is an error; neither deletes anything. Only the
// value goes: the subkeys key lists stay listed (Delete drops the list too).
// The change feed reports an OpDelete.
func (s *Store) Take(ctx context.Context, key []byte) ([]byte, error) {
	if err := checkKey("key", key, s.opts.MaxKeySize); err != nil {
		return nil, err
	}
	lk, err := s.lockKeys(nsKeyPair{nsKey, key})
	if err != nil {
		return nil, err
	}
	defer lk.release()
	now := s.nowCtx(ctx)
	r, err := s.getRecord(key, now)
	if err != nil {
		return nil, err
	}
	plain, err := s.openRecord(r, dataKey(key))
	if err != nil {
		return nil, fmt.Errorf("take %q: %w", key, err)
	}
	if plain == nil {
		plain = []byte{}
	}
	b := s.db.NewBatch()
	defer b.Close()
	b.Delete(dataKey(key), nil)
	if err := s.commit(b, change{op: OpDelete, time: now, key: key}); err != nil {
		return nil, fmt.Errorf("take %q: %w", key, err)
	}
	return plain, nil // getRecord's payload is a private copy
}

// checkExists reports ErrNotFound for a key that has neither a live value
// nor subkeys (a parent may exist only through its subkey list).
func (s *Store) checkExists(key []byte, now int64) error {
	_, err := s.getRecord(key, now)
	if !IsNotFound(err) {
		return err
	}
	subs, serr := s.rawSubkeys(key)
	if serr != nil {
		return serr
	}
	if len(subs) == 0 {
		return err
	}
	return nil
}

// DeleteAll removes key and, recursively, every subkey it lists, in one
// atomic batch. Cycles among subkeys are followed once. A missing key is
// ErrNotFound.
func (s *Store) DeleteAll(ctx context.Context, key []byte) error {
	if err := checkKey("key", key, s.opts.MaxKeySize); err != nil {
		return err
	}
	lk, err := s.lockAll()
	if err != nil {
		return err
	}
	defer lk.release()
	if err := s.checkExists(key, s.nowCtx(ctx)); err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	changes, err := s.deleteTree(ctx, b, OpDeleteAll, key)
	if err != nil {
		return err
	}
	if err := s.commit(b, changes...); err != nil {
		return fmt.Errorf("delete %q with subkeys: %w", key, err)
	}
	return nil
}

// deleteTree adds to b the deletion of root and everything reachable from
// it through subkey lists, visiting each key once. Caller holds lockAll.
func (s *Store) deleteTree(ctx context.Context, b *pebble.Batch, op Op, root []byte) ([]change, error) {
	now := s.nowCtx(ctx)
	seen := map[string]bool{string(root): true}
	todo := [][]byte{root}
	var changes []change
	for len(todo) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		k := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		subs, err := s.rawSubkeys(k)
		if err != nil {
			return nil, err
		}
		for _, sub := range subs {
			if !seen[string(sub)] {
				seen[string(sub)] = true
				todo = append(todo, sub)
			}
		}
		b.Delete(dataKey(k), nil)
		b.DeleteRange(subkeyPrefix(k), prefixEnd(subkeyPrefix(k)), nil)
		changes = append(changes, change{op: op, time: now, key: k})
		op = OpDelete // the root carries the op; what it pulled along is a plain delete
	}
	return changes, nil
}

// KV is one key and value returned by Scan.
type KV struct {
	Key   []byte
	Value []byte
	Attrs Attrs
}

// Scan returns up to limit live keys that start with prefix and sort after
// the key after (nil: from the start), in key order, and whether more
// follow. Pass the last key returned as after to read the next page.
func (s *Store) Scan(ctx context.Context, prefix, after []byte, limit int) ([]KV, bool, error) {
	var out []KV
	more, err := s.scanLive(ctx, prefix, after, limit, func(key []byte, r record) error {
		plain, err := s.openRecord(r, dataKey(key))
		if err != nil {
			return err
		}
		out = append(out, KV{Key: key, Value: bytes.Clone(plain), Attrs: s.attrsOf(r, len(plain))})
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return out, more, nil
}

// scanLive calls fn, in key order, for up to limit live (unexpired) keys
// that start with prefix and sort after the key after (nil: from the
// start), and tells whether more follow. An error of fn is reported as the
// scan's, naming the key.
func (s *Store) scanLive(ctx context.Context, prefix, after []byte, limit int, fn func(key []byte, r record) error) (bool, error) {
	if limit <= 0 {
		return false, fmt.Errorf("%w: scan limit %d must be positive", ErrInvalid, limit)
	}
	lk, err := s.lockRead()
	if err != nil {
		return false, err
	}
	defer lk.release()
	lower := dataKey(prefix)
	upper := prefixEnd(lower)
	if after != nil {
		if !bytes.HasPrefix(after, prefix) {
			return false, fmt.Errorf("%w: scan cursor %q does not start with prefix %q", ErrInvalid, after, prefix)
		}
		lower = append(dataKey(after), 0)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return false, fmt.Errorf("scan %q: %w", prefix, err)
	}
	defer it.Close()
	now := s.nowCtx(ctx)
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		key := bytes.Clone(it.Key()[1:])
		r, err := decodeRecord(it.Value())
		if err != nil {
			return false, fmt.Errorf("scan: key %q: %w", key, err)
		}
		if r.expired(now) {
			continue
		}
		if n == limit {
			return true, nil
		}
		if err := fn(key, r); err != nil {
			return false, fmt.Errorf("scan: key %q: %w", key, err)
		}
		n++
	}
	return false, pebbleErr(it.Error())
}

// Batch collects sets and deletes that Apply commits atomically.
type Batch struct {
	ops []batchOp
}

type batchOp struct {
	del   bool
	key   []byte
	value []byte
	ttl   time.Duration
}

// Set adds a set of key to value (ttl as in Store.Set).
func (b *Batch) Set(key, value []byte, ttl time.Duration) {
	b.ops = append(b.ops, batchOp{key: bytes.Clone(key), value: bytes.Clone(value), ttl: ttl})
}

// Delete adds a plain delete of key; a missing key is not an error here.
func (b *Batch) Delete(key []byte) {
	b.ops = append(b.ops, batchOp{del: true, key: bytes.Clone(key)})
}

// Len returns the number of operations in the batch.
func (b *Batch) Len() int { return len(b.ops) }

// Apply commits every operation of b, or none.
func (s *Store) Apply(ctx context.Context, batch *Batch) error {
	for _, op := range batch.ops {
		if err := checkKey("key", op.key, s.opts.MaxKeySize); err != nil {
			return err
		}
		if err := s.checkValue(op.value); err != nil {
			return fmt.Errorf("key %q: %w", op.key, err)
		}
	}
	lk, err := s.lockAll()
	if err != nil {
		return err
	}
	defer lk.release()
	b := s.db.NewBatch()
	defer b.Close()
	changes := make([]change, 0, len(batch.ops))
	now := s.nowCtx(ctx)
	for _, op := range batch.ops {
		if op.del {
			b.Delete(dataKey(op.key), nil)
			b.DeleteRange(subkeyPrefix(op.key), prefixEnd(subkeyPrefix(op.key)), nil)
			changes = append(changes, change{op: OpDelete, time: now, key: op.key})
			continue
		}
		c, err := s.putValue(b, now, OpSet, op.key, nil, TypeBytes, op.value, op.ttl)
		if err != nil {
			return err
		}
		changes = append(changes, c)
	}
	if err := s.commit(b, changes...); err != nil {
		return fmt.Errorf("apply batch of %d: %w", len(batch.ops), err)
	}
	return nil
}

// IsNotFound reports whether err means a missing key, subkey or item.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
