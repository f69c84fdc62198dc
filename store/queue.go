package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Queues. A queue is a named sequence of items, stored as a deque: push
// always appends at the back; pop, peek and remove take from the front
// (FIFO, the default) or from the back (LIFO). A plain queue's items are
// values. A keyed queue's items are key/value pairs: push sets the key like
// Set does and queues the key; pop returns the pair and deletes both the
// item and the key. A queue's kind is fixed by its first push and forgotten
// when it becomes empty.

// End says which end of a queue pop, peek and remove work on.
type End int

// Queue ends.
const (
	Front End = iota // FIFO
	Back             // LIFO
)

// QueueKind tells a plain queue from a keyed one.
type QueueKind byte

// Queue kinds.
const (
	PlainQueue QueueKind = 1
	KeyedQueue QueueKind = 2
)

// String returns "plain" or "keyed".
func (k QueueKind) String() string {
	if k == KeyedQueue {
		return "keyed"
	}
	return "plain"
}

// QueueItem is one item taken from or read in a queue.
type QueueItem struct {
	Key   []byte // the item's key (keyed queues only)
	Value []byte
}

// queueMeta is kind(1) head(8) tail(8): items occupy positions [head, tail).
type queueMeta struct {
	kind       QueueKind
	head, tail uint64
}

const queueStart = 1 << 63

func (m queueMeta) len() uint64 { return m.tail - m.head }

func (m queueMeta) encode() []byte {
	b := make([]byte, 17)
	b[0] = byte(m.kind)
	binary.BigEndian.PutUint64(b[1:], m.head)
	binary.BigEndian.PutUint64(b[9:], m.tail)
	return b
}

func (s *Store) queueMeta(name []byte) (queueMeta, error) {
	raw, err := s.get(queueMetaKey(name))
	if err != nil {
		return queueMeta{}, fmt.Errorf("queue %q: %w", name, err)
	}
	if raw == nil {
		return queueMeta{head: queueStart, tail: queueStart}, nil
	}
	if len(raw) != 17 || (raw[0] != byte(PlainQueue) && raw[0] != byte(KeyedQueue)) {
		return queueMeta{}, fmt.Errorf("queue %q: %w: bad queue header", name, ErrCorrupt)
	}
	m := queueMeta{kind: QueueKind(raw[0]), head: binary.BigEndian.Uint64(raw[1:]), tail: binary.BigEndian.Uint64(raw[9:])}
	if m.tail < m.head {
		return queueMeta{}, fmt.Errorf("queue %q: %w: tail before head", name, ErrCorrupt)
	}
	return m, nil
}

func (s *Store) checkKind(name []byte, m queueMeta, want QueueKind) error {
	if m.kind != 0 && m.kind != want {
		return fmt.Errorf("%w: queue %q is a %s queue, not a %s one", ErrTypeMismatch, name, m.kind, want)
	}
	return nil
}

// Push appends value to the plain queue name.
func (s *Store) Push(ctx context.Context, name, value []byte) error {
	return s.push(ctx, name, nil, value, false)
}

// PushKeyed sets key to value and appends key to the keyed queue name.
func (s *Store) PushKeyed(ctx context.Context, name, key, value []byte) error {
	if err := checkKey("item key", key, s.opts.MaxKeySize); err != nil {
		return err
	}
	return s.push(ctx, name, key, value, false)
}

// PushKeyRef appends key to the keyed queue name without setting key: its
// value, if any, lives elsewhere (in a cluster, on the shard that owns key).
// The checks and kind rules are those of PushKeyed. Pop and Peek of such an
// item return it with a nil Value when key has no value in this store; when
// it has one, it is returned, and Pop deletes it, as for any keyed item.
// The change feed reports an OpQueuePush with Subkey key and no Value.
func (s *Store) PushKeyRef(ctx context.Context, name, key []byte) error {
	if err := checkKey("item key", key, s.opts.MaxKeySize); err != nil {
		return err
	}
	return s.push(ctx, name, key, nil, true)
}

// push appends an item to queue name: value to a plain queue (key nil), or
// key to a keyed queue, setting key to value unless ref.
func (s *Store) push(ctx context.Context, name, key, value []byte, ref bool) error {
	if err := checkKey("queue name", name, s.opts.MaxKeySize); err != nil {
		return err
	}
	if err := s.checkValue(value); err != nil {
		return err
	}
	kind := PlainQueue
	locks := []nsKeyPair{{nsQueue, name}}
	if key != nil {
		kind = KeyedQueue
		if !ref {
			locks = append(locks, nsKeyPair{nsKey, key})
		}
	}
	lk, err := s.lockKeys(locks...)
	if err != nil {
		return err
	}
	defer lk.release()
	m, err := s.queueMeta(name)
	if err != nil {
		return err
	}
	if err := s.checkKind(name, m, kind); err != nil {
		return err
	}
	m.kind = kind
	b := s.db.NewBatch()
	defer b.Close()
	now := s.nowCtx(ctx)
	var c change
	switch {
	case ref:
		b.Set(itemKey(name, m.tail), key, nil)
		c = change{op: OpQueuePush, time: now, key: name, subkey: key}
	case key != nil:
		if c, err = s.putValue(b, now, OpQueuePush, name, key, TypeBytes, value, -1); err != nil {
			return err
		}
		b.Set(itemKey(name, m.tail), key, nil)
	default:
		r, err := s.sealRecord(TypeBytes, value, now, 0, queueMetaKey(name))
		if err != nil {
			return fmt.Errorf("seal item of queue %q: %w", name, err)
		}
		enc := r.encode()
		b.Set(itemKey(name, m.tail), enc, nil)
		c = change{op: OpQueuePush, time: r.mtime, key: name, rec: enc}
	}
	m.tail++
	b.Set(queueMetaKey(name), m.encode(), nil)
	if err := s.commit(b, c); err != nil {
		return fmt.Errorf("push to queue %q: %w", name, err)
	}
	return nil
}

// Pop removes and returns the item at end of queue name. An empty queue is
// ErrNotFound. For a keyed queue the item's key is deleted too; if the key
// was deleted or expired since the push, Value is nil.
func (s *Store) Pop(ctx context.Context, name []byte, end End) (QueueItem, error) {
	items, err := s.take(ctx, name, end, 1, true)
	if err != nil {
		return QueueItem{}, err
	}
	return items[0], nil
}

// Peek returns the item at end of queue name without removing it.
func (s *Store) Peek(ctx context.Context, name []byte, end End) (QueueItem, error) {
	items, err := s.take(ctx, name, end, 1, false)
	if err != nil {
		return QueueItem{}, err
	}
	return items[0], nil
}

// RemoveItems removes up to n items from end of queue name (deleting the
// keys of a keyed queue's items) and returns how many it removed.
func (s *Store) RemoveItems(ctx context.Context, name []byte, end End, n int) (int, error) {
	if n <= 0 {
		return 0, fmt.Errorf("%w: remove count %d must be positive", ErrInvalid, n)
	}
	items, err := s.take(ctx, name, end, n, true)
	if IsNotFound(err) {
		return 0, nil
	}
	return len(items), err
}

// QueueLen returns the number of items in queue name (0 if there is none).
func (s *Store) QueueLen(ctx context.Context, name []byte) (uint64, QueueKind, error) {
	if err := checkKey("queue name", name, s.opts.MaxKeySize); err != nil {
		return 0, 0, err
	}
	lk, err := s.lockRead()
	if err != nil {
		return 0, 0, err
	}
	defer lk.release()
	m, err := s.queueMeta(name)
	if err != nil {
		return 0, 0, err
	}
	return m.len(), m.kind, nil
}

// take reads (and with remove, removes) up to n items from one end.
func (s *Store) take(ctx context.Context, name []byte, end End, n int, remove bool) ([]QueueItem, error) {
	if err := checkKey("queue name", name, s.opts.MaxKeySize); err != nil {
		return nil, err
	}
	lk, err := s.lockKeys(nsKeyPair{nsQueue, name})
	if err != nil {
		return nil, err
	}
	m, err := s.queueMeta(name)
	if err == nil && remove && m.kind == KeyedQueue {
		// Removing a keyed item deletes a key we cannot name before reading
		// the item, so its stripe cannot be taken in order: lock everything.
		lk.release()
		if lk, err = s.lockAll(); err != nil {
			return nil, err
		}
		m, err = s.queueMeta(name)
	}
	defer lk.release()
	if err != nil {
		return nil, err
	}
	if m.len() == 0 {
		return nil, fmt.Errorf("queue %q is empty: %w", name, ErrNotFound)
	}
	if uint64(n) > m.len() {
		n = int(m.len())
	}
	b := s.db.NewBatch()
	defer b.Close()
	items := make([]QueueItem, 0, n)
	changes := make([]change, 0, n)
	now := s.nowCtx(ctx)
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var pos uint64
		if end == Front {
			pos = m.head
			m.head++
		} else {
			m.tail--
			pos = m.tail
		}
		item, c, err := s.readItem(b, name, m.kind, pos, now, remove)
		if err != nil {
			return nil, err
		}
		items = append(items, item)
		changes = append(changes, c)
	}
	if !remove {
		return items, nil
	}
	if m.len() == 0 {
		b.Delete(queueMetaKey(name), nil)
	} else {
		b.Set(queueMetaKey(name), m.encode(), nil)
	}
	if err := s.commit(b, changes...); err != nil {
		return nil, fmt.Errorf("pop from queue %q: %w", name, err)
	}
	return items, nil
}

// readItem reads the item at pos and, with remove, adds its deletion to b.
func (s *Store) readItem(b *pebble.Batch, name []byte, kind QueueKind, pos uint64, now int64, remove bool) (QueueItem, change, error) {
	ik := itemKey(name, pos)
	raw, err := s.get(ik)
	if err != nil {
		return QueueItem{}, change{}, fmt.Errorf("queue %q: %w", name, err)
	}
	if raw == nil {
		return QueueItem{}, change{}, fmt.Errorf("queue %q: %w: item %d is missing", name, ErrCorrupt, pos)
	}
	if remove {
		b.Delete(ik, nil)
	}
	c := change{op: OpQueuePop, time: now, key: name}
	if kind == KeyedQueue {
		key := raw
		item := QueueItem{Key: key}
		c.subkey = key
		rec, err := s.get(dataKey(key))
		if err != nil {
			return QueueItem{}, change{}, fmt.Errorf("queue %q: item key %q: %w", name, key, err)
		}
		if rec != nil {
			r, err := decodeRecord(rec)
			if err != nil {
				return QueueItem{}, change{}, fmt.Errorf("queue %q: item key %q: %w", name, key, err)
			}
			if !r.expired(now) {
				if item.Value, err = s.openRecord(r, dataKey(key)); err != nil {
					return QueueItem{}, change{}, fmt.Errorf("queue %q: item key %q: %w", name, key, err)
				}
				item.Value = bytes.Clone(item.Value)
				c.rec = rec
			}
			if remove {
				b.Delete(dataKey(key), nil)
			}
		}
		return item, c, nil
	}
	r, err := decodeRecord(raw)
	if err != nil {
		return QueueItem{}, change{}, fmt.Errorf("queue %q: item %d: %w", name, pos, err)
	}
	v, err := s.openRecord(r, queueMetaKey(name))
	if err != nil {
		return QueueItem{}, change{}, fmt.Errorf("queue %q: %w", name, err)
	}
	c.rec = raw
	return QueueItem{Value: bytes.Clone(v)}, c, nil
}
