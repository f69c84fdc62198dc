package store

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Subkeys: a key owns an ordered set of subkeys, each a full key with its
// own value. The parent keeps only the list (an index under the parent);
// the subkey's value lives under the subkey itself, so `get` reads it like
// any key. The parent need not have a value of its own.
//
// Invariant: Subkeys lists only subkeys that exist; an index entry whose
// key was deleted on its own, or expired, is skipped. Such stale entries are
// removed when the parent is deleted.

// SetSubkey sets subkey to value and lists it under parent, atomically.
// ttl is as in Set and applies to the subkey's value.
func (s *Store) SetSubkey(ctx context.Context, parent, subkey, value []byte, ttl time.Duration) error {
	if err := checkKey("parent key", parent, s.opts.MaxKeySize); err != nil {
		return err
	}
	if err := checkKey("subkey", subkey, s.opts.MaxKeySize); err != nil {
		return err
	}
	if err := s.checkValue(value); err != nil {
		return err
	}
	lk, err := s.lockKeys(nsKeyPair{nsKey, parent}, nsKeyPair{nsKey, subkey})
	if err != nil {
		return err
	}
	defer lk.release()
	b := s.db.NewBatch()
	defer b.Close()
	c, err := s.putValue(b, s.nowCtx(ctx), OpSubkeyAdd, parent, subkey, TypeBytes, value, ttl)
	if err != nil {
		return err
	}
	b.Set(subkeyKey(parent, subkey), nil, nil)
	if err := s.commit(b, c); err != nil {
		return fmt.Errorf("set subkey %q of %q: %w", subkey, parent, err)
	}
	return nil
}

// Subkeys lists the live subkeys of parent in order. A parent with no
// subkeys (or none at all) gives an empty list.
func (s *Store) Subkeys(ctx context.Context, parent []byte) ([][]byte, error) {
	if err := checkKey("parent key", parent, s.opts.MaxKeySize); err != nil {
		return nil, err
	}
	lk, err := s.lockRead()
	if err != nil {
		return nil, err
	}
	defer lk.release()
	subs, err := s.rawSubkeys(parent)
	if err != nil {
		return nil, err
	}
	now := s.nowCtx(ctx)
	out := subs[:0]
	for _, sub := range subs {
		if _, err := s.getRecord(sub, now); err == nil {
			out = append(out, sub)
		} else if !IsNotFound(err) {
			return nil, err
		}
	}
	return out, nil
}

// rawSubkeys returns every index entry of parent, live or not.
func (s *Store) rawSubkeys(parent []byte) ([][]byte, error) {
	prefix := subkeyPrefix(parent)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("list subkeys of %q: %w", parent, err)
	}
	defer it.Close()
	var out [][]byte
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, bytes.Clone(it.Key()[len(prefix):]))
	}
	return out, it.Error()
}

// DeleteSubkey removes subkey from parent's list and deletes the subkey's
// value; with all, the subkey's own subkeys go too, recursively. A subkey
// that parent does not list is ErrNotFound.
func (s *Store) DeleteSubkey(ctx context.Context, parent, subkey []byte, all bool) error {
	if err := checkKey("parent key", parent, s.opts.MaxKeySize); err != nil {
		return err
	}
	if err := checkKey("subkey", subkey, s.opts.MaxKeySize); err != nil {
		return err
	}
	lk, err := s.lockAll()
	if err != nil {
		return err
	}
	defer lk.release()
	listed, err := s.get(subkeyKey(parent, subkey))
	if err != nil {
		return err
	}
	if listed == nil {
		return fmt.Errorf("subkey %q of %q: %w", subkey, parent, ErrNotFound)
	}
	b := s.db.NewBatch()
	defer b.Close()
	b.Delete(subkeyKey(parent, subkey), nil)
	now := s.nowCtx(ctx)
	changes := []change{{op: OpSubkeyDel, time: now, key: parent, subkey: subkey}}
	if all {
		more, err := s.deleteTree(ctx, b, OpDeleteAll, subkey)
		if err != nil {
			return err
		}
		changes = append(changes, more...)
	} else {
		b.Delete(dataKey(subkey), nil)
		b.DeleteRange(subkeyPrefix(subkey), prefixEnd(subkeyPrefix(subkey)), nil)
		changes = append(changes, change{op: OpDelete, time: now, key: subkey})
	}
	if err := s.commit(b, changes...); err != nil {
		return fmt.Errorf("delete subkey %q of %q: %w", subkey, parent, err)
	}
	return nil
}

// LinkSubkey lists subkey under parent without writing a value: the
// subkey's value, if any, lives elsewhere (in a cluster, on the shard that
// owns subkey). Listing a subkey twice is not an error. The change feed
// reports an OpSubkeyAdd with no Value.
func (s *Store) LinkSubkey(ctx context.Context, parent, subkey []byte) error {
	if err := checkKey("parent key", parent, s.opts.MaxKeySize); err != nil {
		return err
	}
	if err := checkKey("subkey", subkey, s.opts.MaxKeySize); err != nil {
		return err
	}
	lk, err := s.lockKeys(nsKeyPair{nsKey, parent})
	if err != nil {
		return err
	}
	defer lk.release()
	b := s.db.NewBatch()
	defer b.Close()
	b.Set(subkeyKey(parent, subkey), nil, nil)
	if err := s.commit(b, change{op: OpSubkeyAdd, time: s.nowCtx(ctx), key: parent, subkey: subkey}); err != nil {
		return fmt.Errorf("link subkey %q of %q: %w", subkey, parent, err)
	}
	return nil
}

// UnlinkSubkey removes subkey from parent's list without deleting the
// subkey's value. A subkey that parent does not list is not an error: the
// call then writes nothing (no commit, no stamp, no change).
func (s *Store) UnlinkSubkey(ctx context.Context, parent, subkey []byte) error {
	if err := checkKey("parent key", parent, s.opts.MaxKeySize); err != nil {
		return err
	}
	if err := checkKey("subkey", subkey, s.opts.MaxKeySize); err != nil {
		return err
	}
	lk, err := s.lockKeys(nsKeyPair{nsKey, parent})
	if err != nil {
		return err
	}
	defer lk.release()
	sk := subkeyKey(parent, subkey)
	listed, err := s.get(sk)
	if err != nil {
		return fmt.Errorf("unlink subkey %q of %q: %w", subkey, parent, err)
	}
	if listed == nil {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	b.Delete(sk, nil)
	if err := s.commit(b, change{op: OpSubkeyDel, time: s.nowCtx(ctx), key: parent, subkey: subkey}); err != nil {
		return fmt.Errorf("unlink subkey %q of %q: %w", subkey, parent, err)
	}
	return nil
}

// SubkeyIndex returns every subkey listed under parent, in order, whether
// or not it has a value in this store (Subkeys, in contrast, lists only the
// live ones). A parent with no subkeys gives an empty list.
func (s *Store) SubkeyIndex(ctx context.Context, parent []byte) ([][]byte, error) {
	if err := checkKey("parent key", parent, s.opts.MaxKeySize); err != nil {
		return nil, err
	}
	lk, err := s.lockRead()
	if err != nil {
		return nil, err
	}
	defer lk.release()
	return s.rawSubkeys(parent)
}
