package store

import (
	"encoding/binary"
	"fmt"
	"time"
)

// ValueType says how a stored value is to be read.
type ValueType uint8

// Value types. Integer types are written by the CAS operations and hold an
// unsigned little-endian integer of that width.
const (
	TypeBytes ValueType = iota
	TypeUint8
	TypeUint16
	TypeUint32
	TypeUint64
)

// String names the type as the CLI prints it.
func (t ValueType) String() string {
	switch t {
	case TypeBytes:
		return "bytes"
	case TypeUint8:
		return "uint8"
	case TypeUint16:
		return "uint16"
	case TypeUint32:
		return "uint32"
	case TypeUint64:
		return "uint64"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Attrs are the attributes the engine keeps with every value.
type Attrs struct {
	Modified  time.Time // when the value was last written
	Expires   time.Time // zero when the value does not expire
	Encrypted bool      // sealed at rest with a passphrase-derived key
	Type      ValueType // bytes, or the integer type a CAS operation wrote
	Size      int       // length of the plaintext value in bytes
}

// A value record is
//
//	flags(1) type(1) mtime(8, unix ns) expiry(8, unix ns, 0 = never) payload
//
// and the payload is the value itself or, when flagEncrypted is set,
// keyID(4) nonce(12) ciphertext-with-tag (see crypt.go), or, when
// flagSealed is set too, a self-contained sealed value (see sealed.go).
const (
	recordHeader  = 18
	flagEncrypted = 1 << 0
)

type record struct {
	flags   byte
	typ     ValueType
	mtime   int64
	expiry  int64
	payload []byte
}

func (r *record) expired(now int64) bool { return r.expiry != 0 && r.expiry <= now }

func (r *record) encode() []byte {
	b := make([]byte, recordHeader+len(r.payload))
	r.encodeTo(b)
	return b
}

// encodeTo writes the record into b, which has exactly its length.
func (r *record) encodeTo(b []byte) {
	b[0] = r.flags
	b[1] = byte(r.typ)
	binary.BigEndian.PutUint64(b[2:], uint64(r.mtime))
	binary.BigEndian.PutUint64(b[10:], uint64(r.expiry))
	copy(b[recordHeader:], r.payload)
}

// decodeRecord parses a stored value record. The payload aliases b.
func decodeRecord(b []byte) (record, error) {
	if len(b) < recordHeader {
		return record{}, fmt.Errorf("%w: value record of %d bytes is shorter than its %d-byte header", ErrCorrupt, len(b), recordHeader)
	}
	r := record{
		flags:   b[0],
		typ:     ValueType(b[1]),
		mtime:   int64(binary.BigEndian.Uint64(b[2:])),
		expiry:  int64(binary.BigEndian.Uint64(b[10:])),
		payload: b[recordHeader:],
	}
	if r.flags&^(flagEncrypted|flagSealed) != 0 || r.flags == flagSealed || r.typ > TypeUint64 {
		return record{}, fmt.Errorf("%w: value record has unknown flags %#x or type %d", ErrCorrupt, r.flags, r.typ)
	}
	return r, nil
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// sealRecord builds the record for a new value, encrypting it when the store
// has a keyring. aad binds the ciphertext to where it is stored.
func (s *Store) sealRecord(typ ValueType, value []byte, mtime, expiry int64, aad []byte) (record, error) {
	r := record{typ: typ, mtime: mtime, expiry: expiry, payload: value}
	if s.keys != nil {
		sealed, err := s.keys.seal(value, aad)
		if err != nil {
			return record{}, err
		}
		r.flags |= flagEncrypted
		r.payload = sealed
	}
	return r, nil
}

// openRecord returns the plaintext of a record. The result may alias the
// record's payload.
func (s *Store) openRecord(r record, aad []byte) ([]byte, error) {
	if r.flags&flagEncrypted == 0 {
		return r.payload, nil
	}
	if r.flags&flagSealed != 0 {
		return s.openSealed(r.payload, aad)
	}
	if s.keys == nil {
		return nil, ErrNeedPassphrase
	}
	return s.keys.open(r.payload, aad)
}

func (s *Store) attrsOf(r record, plainSize int) Attrs {
	return Attrs{
		Modified:  unixTime(r.mtime),
		Expires:   unixTime(r.expiry),
		Encrypted: r.flags&flagEncrypted != 0,
		Type:      r.typ,
		Size:      plainSize,
	}
}
