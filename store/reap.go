package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Expiry: a value past its expiry is invisible at once (every read checks
// it). Its space is reclaimed by reapLoop, which walks the expiry index up
// to now and deletes values whose expiry still matches the index entry
// (an entry is stale when the key was overwritten since).

const reapBatch = 1024

func (s *Store) reapLoop(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.opts.ReapInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.opts.NoReaper {
			if _, err := s.ReapExpired(ctx); err != nil && ctx.Err() == nil {
				s.opts.Logger.Warn("reap expired values", "dir", s.dir, "err", err)
			}
		}
		if err := s.withRead(s.trimChanges); err != nil && ctx.Err() == nil {
			s.opts.Logger.Warn("trim change log", "dir", s.dir, "err", err)
		}
	}
}

func (s *Store) withRead(f func() error) error {
	lk, err := s.lockRead()
	if err != nil {
		return err
	}
	defer lk.release()
	return f()
}

// ReapExpired deletes values whose expiry has passed (as of the time ctx
// carries, see WithTime, or else the store's clock) and returns how many it
// deleted. The background loop calls it every ReapInterval unless
// Options.NoReaper is set. It commits in several batches: if it fails or is
// interrupted, some expired values are deleted and others are left for the
// next call.
func (s *Store) ReapExpired(ctx context.Context) (int, error) {
	now := s.nowCtx(ctx)
	total := 0
	for {
		n, more, err := s.reapSome(ctx, now)
		total += n
		if err != nil || !more {
			return total, err
		}
	}
}

type expiryEntry struct {
	expiry int64
	key    []byte
}

func (s *Store) reapSome(ctx context.Context, now int64) (int, bool, error) {
	var entries []expiryEntry
	err := s.withRead(func() error {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{nsExpiry}, UpperBound: expiryKey(now+1, nil)})
		if err != nil {
			return err
		}
		for ok := it.First(); ok && len(entries) < reapBatch; ok = it.Next() {
			k := it.Key()
			entries = append(entries, expiryEntry{int64(binary.BigEndian.Uint64(k[1:9])), bytes.Clone(k[9:])})
		}
		return it.Close()
	})
	if err != nil || len(entries) == 0 {
		return 0, false, err
	}
	deleted := 0
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return deleted, false, err
		}
		n, err := s.reapOne(e, now)
		if err != nil {
			return deleted, false, err
		}
		deleted += n
	}
	return deleted, len(entries) == reapBatch, nil
}

func (s *Store) reapOne(e expiryEntry, now int64) (int, error) {
	lk, err := s.lockKeys(nsKeyPair{nsKey, e.key})
	if err != nil {
		return 0, err
	}
	defer lk.release()
	b := s.db.NewBatch()
	defer b.Close()
	b.Delete(expiryKey(e.expiry, e.key), nil)
	raw, err := s.get(dataKey(e.key))
	if err != nil {
		return 0, err
	}
	var changes []change
	if raw != nil {
		if r, err := decodeRecord(raw); err == nil && r.expiry == e.expiry && r.expired(now) {
			b.Delete(dataKey(e.key), nil)
			b.DeleteRange(subkeyPrefix(e.key), prefixEnd(subkeyPrefix(e.key)), nil)
			changes = append(changes, change{op: OpExpire, time: now, key: e.key})
		}
	}
	if err := s.commit(b, changes...); err != nil {
		return 0, err
	}
	return len(changes), nil
}
