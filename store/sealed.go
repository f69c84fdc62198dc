package store

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"time"
)

// Sealed values: values sealed by a caller rather than by the store's own
// keyring, in a self-contained format, so that whoever holds one of the
// passphrases can open them wherever they are stored. A kv cluster seals the
// values of a request that carries passphrases on the node that received it
// (kv/server), and its shards store the sealed bytes as they are (SetSealed,
// PushSealed): any replica of any shard holds the same bytes, and any node
// opens them given the passphrase. The local engine opens them too, with
// its Options.Passphrases, so a shard's directory opened with `kura kv
// --local DIR --passphrase-file F` reads them as any encrypted value.
//
// Format (SealedOverhead = 49 bytes more than the plaintext):
//
//	version(1) = 1
//	salt(16)                  random per sealing process
//	keyID(4)                  HMAC-SHA256(key, "kura key id")[:4]
//	nonce(12)                 random per value
//	AES-256-GCM ciphertext with its 16-byte tag
//
// key = scrypt(passphrase, salt, N=2^15, r=8, p=1, 32 bytes), as for the
// store's own keyring (crypt.go). The additional data is version|salt
// followed by where the value is stored: KeyAAD(key) for a key's value,
// QueueItemAAD(name) for an item of a plain queue (the local engine binds
// its own sealed values to the same), so a sealed value cannot be moved
// elsewhere unnoticed. A stored sealed value is a value record with
// flagEncrypted|flagSealed and this format as its payload.
//
// Derived keys are cached in memory per (passphrase, salt), so a process
// that seals many values derives its key once, and opening costs one scrypt
// per passphrase and salt seen (salts are per sealing process, not per
// value). Passphrases and keys are never written anywhere.
const (
	sealedVersion  = 1
	sealedSaltLen  = 16
	sealedHeader   = 1 + sealedSaltLen
	SealedOverhead = sealedHeader + sealedExtra

	flagSealed = 1 << 1

	kdfCacheMax = 1024
)

// KeyAAD is the additional data of a sealed value stored as key's value
// (with Set, SetSubkey, PushKeyed, the CAS operations).
func KeyAAD(key []byte) []byte { return dataKey(key) }

// QueueItemAAD is the additional data of a sealed item of the plain queue
// name.
func QueueItemAAD(name []byte) []byte { return queueMetaKey(name) }

// CheckPassphrases reports an empty passphrase, which is never valid.
func CheckPassphrases(passphrases []string) error {
	for i, p := range passphrases {
		if p == "" {
			return fmt.Errorf("%w: passphrase %d is empty", ErrInvalid, i+1)
		}
	}
	return nil
}

// sealSalt is this process's sealing salt.
var sealSalt = sync.OnceValues(func() ([]byte, error) {
	salt := make([]byte, sealedSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("salt: %w", err)
	}
	return salt, nil
})

// kdf caches derived keys by an HMAC (under a random per-process secret)
// of the salt and passphrase; at most two derivations run at once (scrypt
// takes 32 MiB each).
var kdf = struct {
	once   sync.Once
	secret []byte
	mu     sync.Mutex
	m      map[[sha256.Size]byte]*kdfEntry
	slots  chan struct{}
}{m: map[[sha256.Size]byte]*kdfEntry{}, slots: make(chan struct{}, 2)}

type kdfEntry struct {
	done chan struct{}
	key  sealKey
	err  error
}

func deriveSealKey(passphrase string, salt []byte) (sealKey, error) {
	kdf.once.Do(func() {
		kdf.secret = make([]byte, 32)
		rand.Read(kdf.secret)
	})
	mac := hmac.New(sha256.New, kdf.secret)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(salt)))
	mac.Write(n[:])
	mac.Write(salt)
	mac.Write([]byte(passphrase))
	var id [sha256.Size]byte
	mac.Sum(id[:0])

	kdf.mu.Lock()
	e, ok := kdf.m[id]
	if !ok {
		if len(kdf.m) >= kdfCacheMax {
			for k, old := range kdf.m {
				select {
				case <-old.done:
					delete(kdf.m, k)
				default:
					continue
				}
				break
			}
		}
		e = &kdfEntry{done: make(chan struct{})}
		kdf.m[id] = e
	}
	kdf.mu.Unlock()
	if ok {
		<-e.done
		return e.key, e.err
	}
	kdf.slots <- struct{}{}
	kr, err := newKeyring([]string{passphrase}, salt)
	<-kdf.slots
	if err != nil {
		e.err = err
		kdf.mu.Lock()
		delete(kdf.m, id)
		kdf.mu.Unlock()
	} else {
		e.key = kr.keys[0]
	}
	close(e.done)
	return e.key, e.err
}

func sealedAAD(header, aad []byte) []byte {
	out := make([]byte, 0, len(header)+len(aad))
	return append(append(out, header...), aad...)
}

// SealValue seals plain with passphrase for storage where aad says (see
// KeyAAD and QueueItemAAD), in the self-contained format above.
func SealValue(passphrase string, plain, aad []byte) ([]byte, error) {
	if err := CheckPassphrases([]string{passphrase}); err != nil {
		return nil, err
	}
	salt, err := sealSalt()
	if err != nil {
		return nil, err
	}
	k, err := deriveSealKey(passphrase, salt)
	if err != nil {
		return nil, err
	}
	out := make([]byte, sealedHeader, SealedOverhead+len(plain))
	out[0] = sealedVersion
	copy(out[1:], salt)
	kr := keyring{keys: []sealKey{k}}
	body, err := kr.seal(plain, sealedAAD(out, aad))
	if err != nil {
		return nil, err
	}
	return append(out, body...), nil
}

// CheckSealed tells whether b has the shape of a sealed value (it does not
// authenticate it: that takes the passphrase).
func CheckSealed(b []byte) error {
	if len(b) < SealedOverhead {
		return fmt.Errorf("%w: sealed value of %d bytes is too short", ErrCorrupt, len(b))
	}
	if b[0] != sealedVersion {
		return fmt.Errorf("%w: sealed value of unknown format version %d", ErrCorrupt, b[0])
	}
	return nil
}

// OpenValue opens a value sealed by SealValue with any of passphrases. No
// passphrase is ErrNeedPassphrase, none that sealed it ErrWrongPassphrase,
// a damaged or moved value ErrCorrupt, as for the store's own values.
func OpenValue(passphrases []string, sealed, aad []byte) ([]byte, error) {
	if len(passphrases) == 0 {
		return nil, ErrNeedPassphrase
	}
	if err := CheckSealed(sealed); err != nil {
		return nil, err
	}
	if err := CheckPassphrases(passphrases); err != nil {
		return nil, err
	}
	header, body := sealed[:sealedHeader], sealed[sealedHeader:]
	full := sealedAAD(header, aad)
	var authErr error
	for _, p := range passphrases {
		k, err := deriveSealKey(p, header[1:])
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(k.id[:], body[:keyIDLen]) {
			continue
		}
		kr := keyring{keys: []sealKey{k}}
		plain, err := kr.open(body, full)
		if err == nil {
			if plain == nil {
				plain = []byte{}
			}
			return plain, nil
		}
		authErr = err // a key id shared by chance, or a damaged value
	}
	if authErr != nil {
		return nil, authErr
	}
	return nil, ErrWrongPassphrase
}

// sealedOverhead is how much longer than the plaintext an encrypted
// record's payload is.
func (r *record) sealedOverhead() int {
	if r.flags&flagSealed != 0 {
		return SealedOverhead
	}
	return sealedExtra
}

// openSealed opens a sealed record's payload with the store's passphrases.
func (s *Store) openSealed(payload, aad []byte) ([]byte, error) {
	return OpenValue(s.opts.Passphrases, payload, aad)
}

// RawValue is a value as stored, for a caller that opens sealed values
// itself (a kv cluster's coordinating node): a sealed value (SealValue's
// format) unopened, anything else as plaintext (a value the store sealed
// with its own passphrases is opened).
type RawValue struct {
	Type   ValueType
	Sealed bool
	Value  []byte
}

// Encode returns v as sealed(1: 0 or 1) type(1) value.
func (v RawValue) Encode() []byte {
	out := make([]byte, 2, 2+len(v.Value))
	if v.Sealed {
		out[0] = 1
	}
	out[1] = byte(v.Type)
	return append(out, v.Value...)
}

// DecodeRawValue parses what RawValue.Encode wrote.
func DecodeRawValue(b []byte) (RawValue, error) {
	if len(b) < 2 || b[0] > 1 || ValueType(b[1]) > TypeUint64 {
		return RawValue{}, fmt.Errorf("%w: malformed raw value", ErrCorrupt)
	}
	v := RawValue{Sealed: b[0] == 1, Type: ValueType(b[1]), Value: b[2:]}
	if v.Sealed {
		if err := CheckSealed(v.Value); err != nil {
			return RawValue{}, err
		}
	}
	return v, nil
}

// Open returns v's plaintext, opening a sealed value with passphrases.
func (v RawValue) Open(passphrases []string, aad []byte) ([]byte, error) {
	if !v.Sealed {
		if v.Value == nil {
			return []byte{}, nil
		}
		return v.Value, nil
	}
	return OpenValue(passphrases, v.Value, aad)
}

// Guard is what a guarded write (SetSealed, TakeRaw, PopRaw with expect)
// compares: a digest of an item's key (nil for a key's value) and of the
// encoded RawValue it holds (nil: no value).
func Guard(itemKey, encoded []byte) []byte {
	h := sha256.New()
	h.Write(binary.AppendUvarint(nil, uint64(len(itemKey))))
	h.Write(itemKey)
	if encoded == nil {
		h.Write([]byte{0})
	} else {
		h.Write([]byte{1})
		h.Write(encoded)
	}
	return h.Sum(nil)
}

func encodeRaw(v *RawValue) []byte {
	if v == nil {
		return nil
	}
	return v.Encode()
}

// rawOf returns a record's value as stored: a sealed payload as it is, the
// rest opened. The result does not alias the record.
func (s *Store) rawOf(r record, aad []byte) (RawValue, error) {
	if r.flags&flagSealed != 0 {
		return RawValue{Type: r.typ, Sealed: true, Value: bytes.Clone(r.payload)}, nil
	}
	plain, err := s.openRecord(r, aad)
	if err != nil {
		return RawValue{}, err
	}
	out := bytes.Clone(plain)
	if out == nil {
		out = []byte{}
	}
	return RawValue{Type: r.typ, Value: out}, nil
}

// checkSealedValue checks a sealed value about to be stored.
func (s *Store) checkSealedValue(sealed []byte) error {
	if err := CheckSealed(sealed); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return s.checkValue(sealed[SealedOverhead:])
}

// GetRaw returns key's value as stored (see RawValue).
func (s *Store) GetRaw(ctx context.Context, key []byte) (RawValue, error) {
	if err := checkKey("key", key, s.opts.MaxKeySize); err != nil {
		return RawValue{}, err
	}
	lk, err := s.lockRead()
	if err != nil {
		return RawValue{}, err
	}
	defer lk.release()
	r, err := s.getRecord(key, s.nowCtx(ctx))
	if err != nil {
		return RawValue{}, err
	}
	v, err := s.rawOf(r, dataKey(key))
	if err != nil {
		return RawValue{}, fmt.Errorf("get %q: %w", key, err)
	}
	return v, nil
}

// RawKV is one key and value returned by ScanRaw.
type RawKV struct {
	Key   []byte
	Value RawValue
}

// ScanRaw is Scan returning values as stored (see RawValue).
func (s *Store) ScanRaw(ctx context.Context, prefix, after []byte, limit int) ([]RawKV, bool, error) {
	var out []RawKV
	more, err := s.scanLive(ctx, prefix, after, limit, func(key []byte, r record) error {
		v, err := s.rawOf(r, dataKey(key))
		if err != nil {
			return err
		}
		out = append(out, RawKV{Key: key, Value: v})
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return out, more, nil
}

// SetSealed stores sealed (SealValue's format, sealed for KeyAAD(key)) as
// key's value of type typ, ttl as in Set. With expect non-nil it does so
// only if Guard(nil, the current value's RawValue encoding, nil if none)
// equals expect, and reports whether it did.
func (s *Store) SetSealed(ctx context.Context, key, sealed []byte, typ ValueType, ttl time.Duration, expect []byte) (bool, error) {
	if err := checkKey("key", key, s.opts.MaxKeySize); err != nil {
		return false, err
	}
	if err := s.checkSealedValue(sealed); err != nil {
		return false, err
	}
	if typ > TypeUint64 {
		return false, fmt.Errorf("%w: value type %d", ErrInvalid, typ)
	}
	lk, err := s.lockKeys(nsKeyPair{nsKey, key})
	if err != nil {
		return false, err
	}
	defer lk.release()
	now := s.nowCtx(ctx)
	if expect != nil {
		cur, err := s.currentRaw(key, now)
		if err != nil {
			return false, err
		}
		if !bytes.Equal(Guard(nil, encodeRaw(cur)), expect) {
			return false, nil
		}
	}
	r := record{flags: flagEncrypted | flagSealed, typ: typ, mtime: now, expiry: s.expiryFor(now, ttl), payload: sealed}
	rec := r.encode()
	b := s.db.NewBatch()
	defer b.Close()
	b.Set(dataKey(key), rec, nil)
	if r.expiry != 0 {
		b.Set(expiryKey(r.expiry, key), nil, nil)
	}
	if err := s.commit(b, change{op: OpSet, time: now, key: key, rec: rec}); err != nil {
		return false, fmt.Errorf("set %q: %w", key, err)
	}
	return true, nil
}

// currentRaw returns key's live value as stored, nil if none; the caller
// holds the key's lock.
func (s *Store) currentRaw(key []byte, now int64) (*RawValue, error) {
	r, err := s.getRecord(key, now)
	if IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v, err := s.rawOf(r, dataKey(key))
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", key, err)
	}
	return &v, nil
}

// TakeRaw is Take for a caller that opens sealed values itself: it
// returns key's value as stored (nil if none) and deletes it, only if
// Guard(nil, its RawValue encoding, nil if none) equals expect, and reports
// whether it did (with no value, nothing is deleted).
func (s *Store) TakeRaw(ctx context.Context, key, expect []byte) (*RawValue, bool, error) {
	if err := checkKey("key", key, s.opts.MaxKeySize); err != nil {
		return nil, false, err
	}
	lk, err := s.lockKeys(nsKeyPair{nsKey, key})
	if err != nil {
		return nil, false, err
	}
	defer lk.release()
	now := s.nowCtx(ctx)
	cur, err := s.currentRaw(key, now)
	if err != nil {
		return nil, false, fmt.Errorf("take %q: %w", key, err)
	}
	if !bytes.Equal(Guard(nil, encodeRaw(cur)), expect) {
		return cur, false, nil
	}
	if cur == nil {
		return nil, true, nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	b.Delete(dataKey(key), nil)
	if err := s.commit(b, change{op: OpDelete, time: now, key: key}); err != nil {
		return nil, false, fmt.Errorf("take %q: %w", key, err)
	}
	return cur, true, nil
}

// PushSealed appends sealed (SealValue's format, sealed for
// QueueItemAAD(name)) to the plain queue name.
func (s *Store) PushSealed(ctx context.Context, name, sealed []byte) error {
	if err := checkKey("queue name", name, s.opts.MaxKeySize); err != nil {
		return err
	}
	if err := s.checkSealedValue(sealed); err != nil {
		return err
	}
	lk, err := s.lockKeys(nsKeyPair{nsQueue, name})
	if err != nil {
		return err
	}
	defer lk.release()
	m, err := s.queueMeta(name)
	if err != nil {
		return err
	}
	if err := s.checkKind(name, m, PlainQueue); err != nil {
		return err
	}
	m.kind = PlainQueue
	now := s.nowCtx(ctx)
	rec := (&record{flags: flagEncrypted | flagSealed, typ: TypeBytes, mtime: now, payload: sealed}).encode()
	b := s.db.NewBatch()
	defer b.Close()
	b.Set(itemKey(name, m.tail), rec, nil)
	m.tail++
	b.Set(queueMetaKey(name), m.encode(), nil)
	if err := s.commit(b, change{op: OpQueuePush, time: now, key: name, rec: rec}); err != nil {
		return fmt.Errorf("push to queue %q: %w", name, err)
	}
	return nil
}

// RawItem is a queue item as stored: Key for a keyed queue's item, Value
// nil when there is none (a keyed item whose key has no value here).
type RawItem struct {
	Key   []byte
	Value *RawValue
}

// Guard returns the Guard of the item.
func (it RawItem) Guard() []byte { return Guard(it.Key, encodeRaw(it.Value)) }

// PeekRaw is Peek returning the item's value as stored.
func (s *Store) PeekRaw(ctx context.Context, name []byte, end End) (RawItem, error) {
	it, _, err := s.takeRaw(ctx, name, end, nil, false)
	return it, err
}

// PopRaw is Pop for a caller that opens sealed values itself: it removes
// the item at end of queue name (and, for a keyed queue, its key's value
// in this store) only if the item's Guard equals expect, and reports
// whether it did. The item is returned either way.
func (s *Store) PopRaw(ctx context.Context, name []byte, end End, expect []byte) (RawItem, bool, error) {
	return s.takeRaw(ctx, name, end, expect, true)
}

func (s *Store) takeRaw(ctx context.Context, name []byte, end End, expect []byte, remove bool) (RawItem, bool, error) {
	if err := checkKey("queue name", name, s.opts.MaxKeySize); err != nil {
		return RawItem{}, false, err
	}
	lk, err := s.lockKeys(nsKeyPair{nsQueue, name})
	if err != nil {
		return RawItem{}, false, err
	}
	m, err := s.queueMeta(name)
	if err == nil && remove && m.kind == KeyedQueue {
		// As in take: the item's key is only known once read.
		lk.release()
		if lk, err = s.lockAll(); err != nil {
			return RawItem{}, false, err
		}
		m, err = s.queueMeta(name)
	}
	defer lk.release()
	if err != nil {
		return RawItem{}, false, err
	}
	if m.len() == 0 {
		return RawItem{}, false, fmt.Errorf("queue %q is empty: %w", name, ErrNotFound)
	}
	pos := m.head
	if end == Back {
		pos = m.tail - 1
	}
	ik := itemKey(name, pos)
	raw, err := s.get(ik)
	if err != nil {
		return RawItem{}, false, fmt.Errorf("queue %q: %w", name, err)
	}
	if raw == nil {
		return RawItem{}, false, fmt.Errorf("queue %q: %w: item %d is missing", name, ErrCorrupt, pos)
	}
	now := s.nowCtx(ctx)
	var item RawItem
	c := change{op: OpQueuePop, time: now, key: name}
	keyStored := false
	if m.kind == KeyedQueue {
		item.Key = raw
		c.subkey = raw
		rec, err := s.get(dataKey(raw))
		if err != nil {
			return RawItem{}, false, fmt.Errorf("queue %q: item key %q: %w", name, raw, err)
		}
		if rec != nil {
			keyStored = true
			r, err := decodeRecord(rec)
			if err != nil {
				return RawItem{}, false, fmt.Errorf("queue %q: item key %q: %w", name, raw, err)
			}
			if !r.expired(now) {
				v, err := s.rawOf(r, dataKey(raw))
				if err != nil {
					return RawItem{}, false, fmt.Errorf("queue %q: item key %q: %w", name, raw, err)
				}
				item.Value = &v
				c.rec = rec
			}
		}
	} else {
		r, err := decodeRecord(raw)
		if err != nil {
			return RawItem{}, false, fmt.Errorf("queue %q: item %d: %w", name, pos, err)
		}
		v, err := s.rawOf(r, queueMetaKey(name))
		if err != nil {
			return RawItem{}, false, fmt.Errorf("queue %q: %w", name, err)
		}
		item.Value = &v
		c.rec = raw
	}
	if !remove {
		return item, false, nil
	}
	if !bytes.Equal(item.Guard(), expect) {
		return item, false, nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	b.Delete(ik, nil)
	if keyStored {
		b.Delete(dataKey(item.Key), nil)
	}
	if end == Back {
		m.tail--
	} else {
		m.head++
	}
	if m.len() == 0 {
		b.Delete(queueMetaKey(name), nil)
	} else {
		b.Set(queueMetaKey(name), m.encode(), nil)
	}
	if err := s.commit(b, c); err != nil {
		return RawItem{}, false, fmt.Errorf("pop from queue %q: %w", name, err)
	}
	return item, true, nil
}

// CASEncode returns the value type and bytes of the CAS integer v of the
// given width, or the error the CAS operations give for a bad width or a
// value that does not fit.
func CASEncode(bits Bits, v uint64) (ValueType, []byte, error) {
	typ, err := TypeForBits(bits)
	if err != nil {
		return 0, nil, err
	}
	if err := checkFits(bits, v, "value"); err != nil {
		return 0, nil, err
	}
	return typ, encodeUint(bits, v), nil
}

// CASCheck reports a value (what: "old value", "new value") that does not
// fit the width, as CASSet does.
func CASCheck(bits Bits, v uint64, what string) error {
	if _, err := TypeForBits(bits); err != nil {
		return err
	}
	return checkFits(bits, v, what)
}

// CASDecode reads the CAS integer of the given width that key holds, from
// its value type and plaintext, with the errors of CASGet.
func CASDecode(key []byte, bits Bits, typ ValueType, plain []byte) (uint64, error) {
	want, err := TypeForBits(bits)
	if err != nil {
		return 0, err
	}
	if typ != want {
		return 0, fmt.Errorf("%w: key %q holds a %s value, not a %d-bit integer", ErrTypeMismatch, key, typ, bits)
	}
	if len(plain) != int(bits)/8 {
		return 0, fmt.Errorf("%w: key %q: %d-bit integer stored in %d bytes", ErrCorrupt, key, bits, len(plain))
	}
	return decodeUint(plain), nil
}

// CASSum is cur+delta wrapped at the width, as CASAdd computes it.
func CASSum(bits Bits, cur uint64, delta int64) uint64 {
	return (cur + uint64(delta)) & maxOf(bits)
}
