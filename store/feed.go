package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Op names a kind of mutation in the change feed.
type Op string

// The mutations the change feed reports.
const (
	OpSet         Op = "set"        // Key set to Value
	OpDelete      Op = "delete"     // Key deleted (Subkey set: deleted with its subkeys, see DeleteAll)
	OpSubkeyAdd   Op = "subkey.add" // Subkey listed under Key, and set to Value
	OpSubkeyDel   Op = "subkey.del" // Subkey removed from Key's list
	OpQueuePush   Op = "queue.push" // Value pushed on queue Key (Subkey: the item's key in a keyed queue)
	OpQueuePop    Op = "queue.pop"  // Value popped from queue Key (Subkey: the item's key, now deleted)
	OpExpire      Op = "expire"     // Key reached its expiry and was reclaimed
	OpDeleteAll   Op = "delete.all" // Key deleted together with its subkeys, recursively
	opUnknownName    = "unknown"
)

var opCodes = []Op{OpSet, OpDelete, OpSubkeyAdd, OpSubkeyDel, OpQueuePush, OpQueuePop, OpExpire, OpDeleteAll}

// Change is one committed mutation, as the change feed delivers it.
type Change struct {
	Seq    uint64    // position in the feed; increases, may skip numbers after a crash
	Op     Op        // what happened
	Time   time.Time // when it was committed
	Key    []byte    // the key, or the queue name for queue operations
	Subkey []byte    // the subkey, or a keyed queue item's key
	Value  []byte    // the value written, pushed or popped (nil if none or sealed)
	Attrs  Attrs     // attributes of Value
	// Sealed is set when Value is encrypted and the store has no passphrase
	// that opens it; Value is then nil.
	Sealed bool
}

// change is the stored form: the value record is kept as it is stored, so
// an encrypted value stays encrypted in the log too.
type change struct {
	seq    uint64
	op     Op
	time   int64
	key    []byte
	subkey []byte
	rec    []byte // encoded value record, or nil
}

func opCode(op Op) byte {
	for i, o := range opCodes {
		if o == op {
			return byte(i)
		}
	}
	panic("store: unknown op " + string(op))
}

func (c *change) encodedLen() int {
	return 1 + 8 + uvarintLen(len(c.key)) + len(c.key) + uvarintLen(len(c.subkey)) + len(c.subkey) + uvarintLen(len(c.rec)) + len(c.rec)
}

func uvarintLen(n int) int {
	l := 1
	for ; n >= 0x80; n >>= 7 {
		l++
	}
	return l
}

func (c *change) encode() []byte {
	return c.appendTo(make([]byte, 0, c.encodedLen()))
}

func (c *change) appendTo(b []byte) []byte {
	b = append(b, opCode(c.op))
	b = binary.BigEndian.AppendUint64(b, uint64(c.time))
	for _, f := range [][]byte{c.key, c.subkey, c.rec} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

func decodeChange(seq uint64, b []byte) (change, error) {
	bad := func(what string) (change, error) {
		return change{}, fmt.Errorf("%w: change record %d: %s", ErrCorrupt, seq, what)
	}
	if len(b) < 9 {
		return bad("too short")
	}
	if int(b[0]) >= len(opCodes) {
		return bad(fmt.Sprintf("unknown op code %d", b[0]))
	}
	c := change{seq: seq, op: opCodes[b[0]], time: int64(binary.BigEndian.Uint64(b[1:9]))}
	rest := b[9:]
	fields := [3]*[]byte{&c.key, &c.subkey, &c.rec}
	for _, f := range fields {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return bad("truncated field")
		}
		if n > 0 {
			*f = append([]byte(nil), rest[k:k+int(n)]...)
		}
		rest = rest[k+int(n):]
	}
	if len(rest) != 0 {
		return bad("trailing bytes")
	}
	return c, nil
}

// feed tracks which sequence numbers are committed so that readers never
// pass a number whose batch is still in flight, and wakes them on commits.
type feed struct {
	mu        sync.Mutex
	next      uint64          // next sequence number to hand out
	committed uint64          // every seq <= committed is settled
	settled   map[uint64]bool // settled seqs above committed
	wake      chan struct{}   // closed and replaced when committed advances and watched
	watched   bool            // a reader holds wake: replace it at the next settle
	closed    bool
}

func newFeed(last uint64) *feed {
	return &feed{next: last + 1, committed: last, settled: map[uint64]bool{}, wake: make(chan struct{})}
}

func (f *feed) reserve(n int) uint64 {
	f.mu.Lock()
	first := f.next
	f.next += uint64(n)
	f.mu.Unlock()
	return first
}

// settle marks seqs [first, first+n) as done, committed or failed alike; a
// failed batch leaves a gap in the log, which readers skip.
func (f *feed) settle(first uint64, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if first == f.committed+1 {
		f.committed += uint64(n)
	} else {
		for i := 0; i < n; i++ {
			f.settled[first+uint64(i)] = true
		}
	}
	for len(f.settled) > 0 && f.settled[f.committed+1] {
		delete(f.settled, f.committed+1)
		f.committed++
	}
	if f.watched {
		close(f.wake)
		f.wake = make(chan struct{})
		f.watched = false
	}
}

// state returns the committed watermark and a channel closed when it moves.
func (f *feed) state() (uint64, <-chan struct{}, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watched = true
	return f.committed, f.wake, f.closed
}

func (f *feed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.wake)
	}
}

func (s *Store) lastChangeSeq() (uint64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{nsChange}, UpperBound: []byte{nsChange + 1}})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	if !it.Last() {
		return 0, it.Error()
	}
	return binary.BigEndian.Uint64(it.Key()[1:]), nil
}

// LastSeq returns the sequence number of the newest committed change.
func (s *Store) LastSeq() uint64 {
	c, _, _ := s.feed.state()
	return c
}

// FirstSeq returns the oldest sequence number still in the change log, or 0
// when the log is empty.
func (s *Store) FirstSeq() (uint64, error) {
	lk, err := s.lockRead()
	if err != nil {
		return 0, err
	}
	defer lk.release()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{nsChange}, UpperBound: []byte{nsChange + 1}})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	if !it.First() {
		return 0, it.Error()
	}
	return binary.BigEndian.Uint64(it.Key()[1:]), nil
}

// NextChange returns the first change with a sequence number greater than
// after, waiting for one to be committed until ctx is done. Changes are
// delivered in sequence order; after a crash the sequence may skip numbers
// that were never committed.
func (s *Store) NextChange(ctx context.Context, after uint64) (Change, error) {
	if !s.logging.Load() {
		return Change{}, ErrNoChangeLog
	}
	for {
		committed, wake, closed := s.feed.state()
		if closed {
			return Change{}, ErrClosed
		}
		if after < committed {
			c, ok, err := s.readChange(after, committed)
			if err != nil {
				return Change{}, err
			}
			if ok {
				return c, nil
			}
			// Only gaps up to the watermark: wait for more.
			after = committed
		}
		select {
		case <-ctx.Done():
			return Change{}, ctx.Err()
		case <-wake:
		}
	}
}

func (s *Store) readChange(after, upTo uint64) (Change, bool, error) {
	lk, err := s.lockRead()
	if err != nil {
		return Change{}, false, err
	}
	defer lk.release()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: changeKey(after + 1), UpperBound: changeKey(upTo + 1)})
	if err != nil {
		return Change{}, false, err
	}
	defer it.Close()
	if !it.First() {
		return Change{}, false, it.Error()
	}
	seq := binary.BigEndian.Uint64(it.Key()[1:])
	raw, err := decodeChange(seq, it.Value())
	if err != nil {
		return Change{}, false, err
	}
	return s.toChange(raw), true, nil
}

func (s *Store) toChange(c change) Change {
	out := Change{Seq: c.seq, Op: c.op, Time: unixTime(c.time), Key: c.key, Subkey: c.subkey}
	if c.rec == nil {
		return out
	}
	r, err := decodeRecord(c.rec)
	if err != nil {
		out.Sealed = true
		return out
	}
	plain, err := s.openRecord(r, changeAAD(c))
	if err != nil {
		out.Sealed = true
		out.Attrs = s.attrsOf(r, len(r.payload)-r.sealedOverhead())
		return out
	}
	out.Value = append([]byte(nil), plain...)
	out.Attrs = s.attrsOf(r, len(plain))
	return out
}

// changeAAD is the additional data a value was sealed with, which depends on
// where the value is stored: under its key, or as a queue item.
func changeAAD(c change) []byte {
	switch c.op {
	case OpSubkeyAdd:
		return dataKey(c.subkey)
	case OpQueuePush, OpQueuePop:
		if c.subkey != nil {
			return dataKey(c.subkey)
		}
		return queueMetaKey(c.key)
	}
	return dataKey(c.key)
}

// ChangeLogOn reports whether the store records its changes.
func (s *Store) ChangeLogOn() bool { return s.logging.Load() }

// SetChangeLog turns the change log on or off, durably. Mutations made
// while it is off never appear in the feed, and NextChange refuses to read
// until it is on again.
func (s *Store) SetChangeLog(ctx context.Context, on bool) error {
	lk, err := s.lockAll()
	if err != nil {
		return err
	}
	defer lk.release()
	v := byte(0)
	if on {
		v = 1
	}
	if err := s.setDurable(metaKey(metaChangeLog), []byte{v}); err != nil {
		return fmt.Errorf("set change log: %w", err)
	}
	s.logging.Store(on)
	return nil
}

// SetCursor records, durably, that the named consumer has handled every
// change up to seq. The change log keeps what any cursor still needs.
func (s *Store) SetCursor(ctx context.Context, name string, seq uint64) error {
	if name == "" {
		return fmt.Errorf("%w: empty cursor name", ErrInvalid)
	}
	lk, err := s.lockRead()
	if err != nil {
		return err
	}
	defer lk.release()
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	if err := s.db.Set(metaKey(metaCurso+name), binary.BigEndian.AppendUint64(nil, seq), s.wo); err != nil {
		return fmt.Errorf("set cursor %s: %w", name, err)
	}
	return nil
}

// Cursor returns the named consumer's position (0 if it never set one).
func (s *Store) Cursor(ctx context.Context, name string) (uint64, error) {
	lk, err := s.lockRead()
	if err != nil {
		return 0, err
	}
	defer lk.release()
	v, err := s.get(metaKey(metaCurso + name))
	if err != nil {
		return 0, fmt.Errorf("read cursor %s: %w", name, err)
	}
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: cursor %s has %d bytes", ErrCorrupt, name, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// DropCursor forgets a consumer, letting the log be trimmed past it.
func (s *Store) DropCursor(ctx context.Context, name string) error {
	lk, err := s.lockRead()
	if err != nil {
		return err
	}
	defer lk.release()
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	return s.db.Delete(metaKey(metaCurso+name), s.wo)
}

// trimChanges deletes change records no cursor needs and that are older
// than the retention window.
func (s *Store) trimChanges() error {
	if !s.logging.Load() {
		return nil
	}
	last := s.LastSeq()
	if last <= s.opts.ChangeLogRetention {
		return nil
	}
	keep := last - s.opts.ChangeLogRetention + 1
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: metaKey(metaCurso), UpperBound: prefixEnd(metaKey(metaCurso))})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		if v := it.Value(); len(v) == 8 {
			if c := binary.BigEndian.Uint64(v) + 1; c < keep {
				keep = c
			}
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	return s.db.DeleteRange(changeKey(0), changeKey(keep), pebble.NoSync)
}
