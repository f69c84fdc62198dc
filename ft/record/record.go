// Package record defines what ft moves: chunks of records, one chunk per
// write() into the mount, each record a line (text mode) or a message
// (binary mode), with the attributes every record carries (sender id and
// sequence number, host, pid/tid, time, path). The same encoding is used in
// the sender's queue and on the wire.
package record

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// SenderID identifies a sender (one queue directory) for ever; with a
// record's sequence number it identifies the record for ever.
type SenderID [16]byte

// NewSenderID returns a random sender id.
func NewSenderID() (SenderID, error) {
	var id SenderID
	if _, err := rand.Read(id[:]); err != nil {
		return id, fmt.Errorf("new sender id: %w", err)
	}
	return id, nil
}

// String returns the id in hex.
func (id SenderID) String() string { return hex.EncodeToString(id[:]) }

// ParseSenderID parses the hex form String returns.
func ParseSenderID(s string) (SenderID, error) {
	var id SenderID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("sender id %q: want %d hex digits", s, 2*len(id))
	}
	copy(id[:], b)
	return id, nil
}

// Chunk is the records of one write(), sharing their attributes. Record i
// has sequence number FirstSeq+i.
type Chunk struct {
	Sender   SenderID
	FirstSeq uint64
	Time     int64  // write time, Unix nanoseconds
	PID      uint32 // writer's process id
	TID      uint32 // writer's thread id
	Host     string // writer's host name
	Path     string // slash-separated, relative to the mount point, no leading slash
	Binary   bool   // records are binary messages, not lines
	Records  [][]byte
}

// LastSeq returns the sequence number of the chunk's last record.
func (c *Chunk) LastSeq() uint64 { return c.FirstSeq + uint64(len(c.Records)) - 1 }

// DataBytes returns the total size of the records' data.
func (c *Chunk) DataBytes() int {
	n := 0
	for _, r := range c.Records {
		n += len(r)
	}
	return n
}

const (
	version    = 1
	flagBinary = 1 << 0
	fixedLen   = 1 + 1 + 16 + 8 + 8 + 4 + 4
	// MaxRecords bounds the records of one chunk a decoder accepts.
	MaxRecords = 1 << 24
)

// ErrCorrupt is returned for bytes that are not a valid chunk.
var ErrCorrupt = errors.New("corrupt chunk")

// EncodedLen returns the exact size AppendEncode will add.
func (c *Chunk) EncodedLen() int {
	n := fixedLen + uvarintLen(uint64(len(c.Host))) + len(c.Host) + uvarintLen(uint64(len(c.Path))) + len(c.Path) + uvarintLen(uint64(len(c.Records)))
	for _, r := range c.Records {
		n += uvarintLen(uint64(len(r))) + len(r)
	}
	return n
}

// AppendEncode appends the chunk's encoding to dst:
//
//	version(1) flags(1) sender(16) firstSeq(8 LE) time(8 LE) pid(4 LE) tid(4 LE)
//	uvarint(len host) host uvarint(len path) path
//	uvarint(count) { uvarint(len rec) rec }
func (c *Chunk) AppendEncode(dst []byte) []byte {
	var flags byte
	if c.Binary {
		flags |= flagBinary
	}
	dst = append(dst, version, flags)
	dst = append(dst, c.Sender[:]...)
	dst = binary.LittleEndian.AppendUint64(dst, c.FirstSeq)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(c.Time))
	dst = binary.LittleEndian.AppendUint32(dst, c.PID)
	dst = binary.LittleEndian.AppendUint32(dst, c.TID)
	dst = binary.AppendUvarint(dst, uint64(len(c.Host)))
	dst = append(dst, c.Host...)
	dst = binary.AppendUvarint(dst, uint64(len(c.Path)))
	dst = append(dst, c.Path...)
	dst = binary.AppendUvarint(dst, uint64(len(c.Records)))
	for _, r := range c.Records {
		dst = binary.AppendUvarint(dst, uint64(len(r)))
		dst = append(dst, r...)
	}
	return dst
}

// Decode parses one encoded chunk that fills b exactly. The records alias
// b: copy them to keep them past b's lifetime.
func Decode(b []byte) (Chunk, error) {
	var c Chunk
	if len(b) < fixedLen {
		return c, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrCorrupt, len(b), fixedLen)
	}
	if b[0] != version {
		return c, fmt.Errorf("%w: version %d, want %d", ErrCorrupt, b[0], version)
	}
	if b[1]&^flagBinary != 0 {
		return c, fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, b[1])
	}
	c.Binary = b[1]&flagBinary != 0
	copy(c.Sender[:], b[2:18])
	c.FirstSeq = binary.LittleEndian.Uint64(b[18:])
	c.Time = int64(binary.LittleEndian.Uint64(b[26:]))
	c.PID = binary.LittleEndian.Uint32(b[34:])
	c.TID = binary.LittleEndian.Uint32(b[38:])
	rest := b[fixedLen:]
	host, rest, err := field(rest, "host")
	if err != nil {
		return c, err
	}
	path, rest, err := field(rest, "path")
	if err != nil {
		return c, err
	}
	c.Host, c.Path = string(host), string(path)
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > MaxRecords || n > uint64(len(rest)-k) {
		return c, fmt.Errorf("%w: bad record count", ErrCorrupt)
	}
	if n == 0 {
		return c, fmt.Errorf("%w: no records", ErrCorrupt)
	}
	rest = rest[k:]
	c.Records = make([][]byte, n)
	for i := range c.Records {
		if c.Records[i], rest, err = field(rest, "record"); err != nil {
			return c, err
		}
	}
	if len(rest) != 0 {
		return c, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(rest))
	}
	if c.FirstSeq == 0 || c.FirstSeq+n-1 < c.FirstSeq {
		return c, fmt.Errorf("%w: sequence %d+%d out of range", ErrCorrupt, c.FirstSeq, n)
	}
	return c, nil
}

func field(b []byte, what string) ([]byte, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, fmt.Errorf("%w: truncated %s", ErrCorrupt, what)
	}
	end := k + int(n)
	return b[k:end:end], b[end:], nil
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// firstSeqOffset is where FirstSeq sits in an encoded chunk.
const firstSeqOffset = 18

// PatchFirstSeq sets the FirstSeq of an encoded chunk in place. The sender's
// queue assigns sequence numbers as it appends, after the chunk was encoded.
func PatchFirstSeq(encoded []byte, seq uint64) error {
	if len(encoded) < fixedLen || encoded[0] != version {
		return fmt.Errorf("%w: cannot set the sequence of %d bytes", ErrCorrupt, len(encoded))
	}
	binary.LittleEndian.PutUint64(encoded[firstSeqOffset:], seq)
	return nil
}
