package store

import (
	"context"
	"encoding/binary"
	"fmt"
)

// CAS values are unsigned integers of 8, 16, 32 or 64 bits, stored
// little-endian with their type in the value's attributes. Arithmetic wraps
// modulo 2^bits as Go's unsigned integers do: incrementing a uint8 holding
// 255 gives 0, decrementing 0 gives 255. A CAS operation on a value of
// another type (plain bytes, or another width) is ErrTypeMismatch; a value
// that does not fit the width is ErrInvalid.

// Bits is the width of a CAS integer.
type Bits int

// TypeForBits returns the value type of a width, or an error for a width
// other than 8, 16, 32 and 64.
func TypeForBits(bits Bits) (ValueType, error) {
	switch bits {
	case 8:
		return TypeUint8, nil
	case 16:
		return TypeUint16, nil
	case 32:
		return TypeUint32, nil
	case 64:
		return TypeUint64, nil
	}
	return 0, fmt.Errorf("%w: integer width %d: must be 8, 16, 32 or 64", ErrInvalid, bits)
}

func maxOf(bits Bits) uint64 {
	if bits == 64 {
		return ^uint64(0)
	}
	return 1<<uint(bits) - 1
}

func encodeUint(bits Bits, v uint64) []byte {
	b := binary.LittleEndian.AppendUint64(nil, v)
	return b[:bits/8]
}

func decodeUint(b []byte) uint64 {
	var full [8]byte
	copy(full[:], b)
	return binary.LittleEndian.Uint64(full[:])
}

func checkFits(bits Bits, v uint64, what string) error {
	if v > maxOf(bits) {
		return fmt.Errorf("%w: %s %d does not fit in %d bits (max %d)", ErrInvalid, what, v, bits, maxOf(bits))
	}
	return nil
}

// CASInit sets key to the integer v of the given width, whatever it held.
func (s *Store) CASInit(ctx context.Context, key []byte, bits Bits, v uint64) error {
	typ, err := TypeForBits(bits)
	if err != nil {
		return err
	}
	if err := checkFits(bits, v, "value"); err != nil {
		return err
	}
	if err := checkKey("key", key, s.opts.MaxKeySize); err != nil {
		return err
	}
	lk, err := s.lockKeys(nsKeyPair{nsKey, key})
	if err != nil {
		return err
	}
	defer lk.release()
	return s.writeUint(key, typ, bits, v, s.nowCtx(ctx))
}

// CASGet returns the integer value of key.
func (s *Store) CASGet(ctx context.Context, key []byte, bits Bits) (uint64, error) {
	typ, err := TypeForBits(bits)
	if err != nil {
		return 0, err
	}
	if err := checkKey("key", key, s.opts.MaxKeySize); err != nil {
		return 0, err
	}
	lk, err := s.lockRead()
	if err != nil {
		return 0, err
	}
	defer lk.release()
	return s.readUint(key, typ, bits, s.nowCtx(ctx))
}

// CASSet sets key to new if it holds old, and reports whether it did and
// the value key holds afterwards.
func (s *Store) CASSet(ctx context.Context, key []byte, bits Bits, old, new uint64) (bool, uint64, error) {
	typ, err := TypeForBits(bits)
	if err != nil {
		return false, 0, err
	}
	if err := checkFits(bits, old, "old value"); err != nil {
		return false, 0, err
	}
	if err := checkFits(bits, new, "new value"); err != nil {
		return false, 0, err
	}
	if err := checkKey("key", key, s.opts.MaxKeySize); err != nil {
		return false, 0, err
	}
	lk, err := s.lockKeys(nsKeyPair{nsKey, key})
	if err != nil {
		return false, 0, err
	}
	defer lk.release()
	now := s.nowCtx(ctx)
	cur, err := s.readUint(key, typ, bits, now)
	if err != nil {
		return false, 0, err
	}
	if cur != old {
		return false, cur, nil
	}
	if err := s.writeUint(key, typ, bits, new, now); err != nil {
		return false, cur, err
	}
	return true, new, nil
}

// CASAdd adds delta (negative to decrement) to the integer in key, wrapping
// at the width, and returns the new value. The key must exist.
func (s *Store) CASAdd(ctx context.Context, key []byte, bits Bits, delta int64) (uint64, error) {
	typ, err := TypeForBits(bits)
	if err != nil {
		return 0, err
	}
	if err := checkKey("key", key, s.opts.MaxKeySize); err != nil {
		return 0, err
	}
	lk, err := s.lockKeys(nsKeyPair{nsKey, key})
	if err != nil {
		return 0, err
	}
	defer lk.release()
	now := s.nowCtx(ctx)
	cur, err := s.readUint(key, typ, bits, now)
	if err != nil {
		return 0, err
	}
	next := (cur + uint64(delta)) & maxOf(bits)
	if err := s.writeUint(key, typ, bits, next, now); err != nil {
		return 0, err
	}
	return next, nil
}

// readUint reads key as an integer of type typ, live as of now; the caller
// holds a lock.
func (s *Store) readUint(key []byte, typ ValueType, bits Bits, now int64) (uint64, error) {
	r, err := s.getRecord(key, now)
	if err != nil {
		return 0, err
	}
	if r.typ != typ {
		return 0, fmt.Errorf("%w: key %q holds a %s value, not a %d-bit integer", ErrTypeMismatch, key, r.typ, bits)
	}
	plain, err := s.openRecord(r, dataKey(key))
	if err != nil {
		return 0, fmt.Errorf("key %q: %w", key, err)
	}
	if len(plain) != int(bits)/8 {
		return 0, fmt.Errorf("%w: key %q: %d-bit integer stored in %d bytes", ErrCorrupt, key, bits, len(plain))
	}
	return decodeUint(plain), nil
}

// writeUint stores v in key as written at now, without expiry (CAS integers
// do not expire); the caller holds the key's lock.
func (s *Store) writeUint(key []byte, typ ValueType, bits Bits, v uint64, now int64) error {
	b := s.db.NewBatch()
	defer b.Close()
	c, err := s.putValue(b, now, OpSet, key, nil, typ, encodeUint(bits, v), -1)
	if err != nil {
		return err
	}
	if err := s.commit(b, c); err != nil {
		return fmt.Errorf("write integer %q: %w", key, err)
	}
	return nil
}
