package store

import (
	"encoding/binary"
	"fmt"
)

// The engine keeps everything in one Pebble keyspace, split by a one-byte
// namespace prefix. Keys inside a namespace are ordered so that the scans the
// engine needs (a key's subkeys, a queue's items, the change log from a
// sequence number, expiries up to now) are single range scans.
//
//	'k' key                          -> value record (see value.go)
//	's' uvarint(len(parent)) parent sub -> empty (subkey index)
//	'x' be64(expiry) key             -> empty (expiry index; entries may be stale)
//	'Q' name                         -> queue meta (kind, head, tail)
//	'q' uvarint(len(name)) name be64(pos) -> item record
//	'c' be64(seq)                    -> change record (see feed.go)
//	'm' name                         -> engine metadata (salt, cursors, stamp)
const (
	nsKey     = 'k'
	nsSubkey  = 's'
	nsExpiry  = 'x'
	nsQueue   = 'Q'
	nsItem    = 'q'
	nsChange  = 'c'
	nsMeta    = 'm'
	metaSalt  = "salt"
	metaCurso = "cursor/"
	// metaChangeLog holds 1 while the change log is on.
	metaChangeLog = "changelog"
	// metaStamp holds the value of SetStamp as of the last commit.
	metaStamp = "stamp"
)

func dataKey(key []byte) []byte {
	k := make([]byte, 1+len(key))
	k[0] = nsKey
	copy(k[1:], key)
	return k
}

// lenPrefixed returns ns + uvarint(len(name)) + name, leaving room for extra
// bytes at the end.
func lenPrefixed(ns byte, name []byte, extra int) []byte {
	k := make([]byte, 0, 1+binary.MaxVarintLen64+len(name)+extra)
	k = append(k, ns)
	k = binary.AppendUvarint(k, uint64(len(name)))
	return append(k, name...)
}

func subkeyPrefix(parent []byte) []byte { return lenPrefixed(nsSubkey, parent, 0) }

func subkeyKey(parent, sub []byte) []byte {
	return append(lenPrefixed(nsSubkey, parent, len(sub)), sub...)
}

func expiryKey(expiry int64, key []byte) []byte {
	k := make([]byte, 9+len(key))
	k[0] = nsExpiry
	binary.BigEndian.PutUint64(k[1:], uint64(expiry))
	copy(k[9:], key)
	return k
}

func queueMetaKey(name []byte) []byte {
	k := make([]byte, 1+len(name))
	k[0] = nsQueue
	copy(k[1:], name)
	return k
}

func itemPrefix(name []byte) []byte { return lenPrefixed(nsItem, name, 8) }

func itemKey(name []byte, pos uint64) []byte {
	return binary.BigEndian.AppendUint64(itemPrefix(name), pos)
}

func changeKey(seq uint64) []byte {
	k := make([]byte, 9)
	k[0] = nsChange
	binary.BigEndian.PutUint64(k[1:], seq)
	return k
}

func metaKey(name string) []byte { return append([]byte{nsMeta}, name...) }

// prefixEnd returns the smallest key greater than every key with the given
// prefix, or nil when there is none (a prefix of 0xff bytes).
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func checkKey(what string, key []byte, limit int) error {
	if len(key) == 0 {
		return fmt.Errorf("%w: empty %s", ErrInvalid, what)
	}
	if len(key) > limit {
		return fmt.Errorf("%w: %s of %d bytes exceeds the limit of %d bytes", ErrInvalid, what, len(key), limit)
	}
	return nil
}
