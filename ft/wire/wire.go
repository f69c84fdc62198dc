// Package wire is ft's transport protocol between a sender (or a relay) and
// a receiver, over one TCP (optionally TLS) connection.
//
// Every message is a frame:
//
//	length(4 LE, of body) crc32c(4 LE, of body) body
//	body = type(1) payload
//
// The sender opens with Hello; the receiver answers Welcome (or Error and
// closes). The sender then streams Batch frames, each with an id one greater
// than the last, without waiting; the receiver answers each batch, in order,
// with Ack once every chunk in it is written to its output (or dropped as a
// duplicate), or with Error and closes the connection (for example when its
// disk is full). The sender forgets a batch only when it is acknowledged and
// sends unacknowledged batches again on a new connection; the receiver drops
// records it already wrote by (sender id, sequence number).
package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/kura-dev/kura/ft/record"
)

// Frame types.
const (
	TypeHello   byte = 1
	TypeWelcome byte = 2
	TypeBatch   byte = 3
	TypeAck     byte = 4
	TypeError   byte = 5
)

// Version is the protocol version a Hello carries.
const Version = 1

// MaxFrame bounds a frame body (64 MiB).
const MaxFrame = 64 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is returned for a frame that fails its checksum or does not
// parse.
var ErrCorrupt = errors.New("corrupt frame")

// Hello opens a connection.
type Hello struct {
	Version uint16
	Sender  record.SenderID // the connecting sender (a relay uses its own id)
	Host    string
}

// Welcome accepts a connection.
type Welcome struct {
	Version  uint16
	Receiver string // the receiver's host name, for logs
}

// Batch carries chunks.
type Batch struct {
	ID     uint64
	Chunks []record.Chunk
}

// Ack acknowledges a batch.
type Ack struct{ ID uint64 }

// Error refuses a connection or a batch; the connection closes after it.
type Error struct{ Message string }

// Error returns the receiver's message.
func (e *Error) Error() string { return "receiver: " + e.Message }

// Writer writes frames to a buffered stream; call Flush to send them.
type Writer struct {
	w   *bufio.Writer
	buf []byte
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriterSize(w, 256<<10)} }

// Flush sends buffered frames.
func (w *Writer) Flush() error { return w.w.Flush() }

func (w *Writer) frame(body []byte) error {
	if len(body) > MaxFrame {
		return fmt.Errorf("frame of %d bytes exceeds the %d-byte limit", len(body), MaxFrame)
	}
	var hdr [8]byte
	binary.LittleEndian.PutUint32(hdr[0:], uint32(len(body)))
	binary.LittleEndian.PutUint32(hdr[4:], crc32.Checksum(body, castagnoli))
	if _, err := w.w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.w.Write(body)
	return err
}

// WriteHello writes a Hello frame.
func (w *Writer) WriteHello(h Hello) error {
	b := append(w.buf[:0], TypeHello)
	b = binary.LittleEndian.AppendUint16(b, h.Version)
	b = append(b, h.Sender[:]...)
	b = appendString(b, h.Host)
	w.buf = b
	return w.frame(b)
}

// WriteWelcome writes a Welcome frame.
func (w *Writer) WriteWelcome(m Welcome) error {
	b := append(w.buf[:0], TypeWelcome)
	b = binary.LittleEndian.AppendUint16(b, m.Version)
	b = appendString(b, m.Receiver)
	w.buf = b
	return w.frame(b)
}

// WriteBatch writes a Batch frame.
func (w *Writer) WriteBatch(id uint64, chunks []record.Chunk) error {
	b := append(w.buf[:0], TypeBatch)
	b = binary.LittleEndian.AppendUint64(b, id)
	b = binary.AppendUvarint(b, uint64(len(chunks)))
	for i := range chunks {
		b = binary.AppendUvarint(b, uint64(chunks[i].EncodedLen()))
		b = chunks[i].AppendEncode(b)
	}
	w.buf = b
	return w.frame(b)
}

// WriteEncodedBatch writes a Batch frame from chunks already encoded with
// record.Chunk.AppendEncode (as the sender's queue stores them).
//
// The chunks are not gathered into one buffer first: the checksum is
// computed over the pieces and they go to the stream as they are.
func (w *Writer) WriteEncodedBatch(id uint64, encoded [][]byte) error {
	// The small pieces (type, id and count, then each chunk's length
	// prefix) go in w.buf, one after another; the chunks stay where they are.
	b := append(w.buf[:0], TypeBatch)
	b = binary.LittleEndian.AppendUint64(b, id)
	b = binary.AppendUvarint(b, uint64(len(encoded)))
	head := len(b)
	size := head
	for _, e := range encoded {
		b = binary.AppendUvarint(b, uint64(len(e)))
		size += len(e)
	}
	w.buf = b
	size += len(b) - head
	if size > MaxFrame {
		return fmt.Errorf("frame of %d bytes exceeds the %d-byte limit", size, MaxFrame)
	}
	crc := crc32.Update(0, castagnoli, b[:head])
	off := head
	for _, e := range encoded {
		_, k := binary.Uvarint(b[off:])
		crc = crc32.Update(crc, castagnoli, b[off:off+k])
		crc = crc32.Update(crc, castagnoli, e)
		off += k
	}
	var hdr [8]byte
	binary.LittleEndian.PutUint32(hdr[0:], uint32(size))
	binary.LittleEndian.PutUint32(hdr[4:], crc)
	if _, err := w.w.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := w.w.Write(b[:head]); err != nil {
		return err
	}
	off = head
	for _, e := range encoded {
		_, k := binary.Uvarint(b[off:])
		if _, err := w.w.Write(b[off : off+k]); err != nil {
			return err
		}
		if _, err := w.w.Write(e); err != nil {
			return err
		}
		off += k
	}
	return nil
}

// WriteAck writes an Ack frame.
func (w *Writer) WriteAck(id uint64) error {
	b := append(w.buf[:0], TypeAck)
	b = binary.LittleEndian.AppendUint64(b, id)
	w.buf = b
	return w.frame(b)
}

// WriteError writes an Error frame.
func (w *Writer) WriteError(msg string) error {
	b := append(w.buf[:0], TypeError)
	b = appendString(b, msg)
	w.buf = b
	return w.frame(b)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Reader reads frames from a stream.
type Reader struct {
	r   *bufio.Reader
	buf []byte
}

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReaderSize(r, 256<<10)} }

// Next reads one frame and returns its type and body (without the type
// byte). The body is valid until the next call.
func (r *Reader) Next() (byte, []byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[0:])
	if n == 0 || n > MaxFrame {
		return 0, nil, fmt.Errorf("%w: frame length %d", ErrCorrupt, n)
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	body := r.buf[:n]
	if _, err := io.ReadFull(r.r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
		return 0, nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	return body[0], body[1:], nil
}

// ParseHello parses a Hello body.
func ParseHello(b []byte) (Hello, error) {
	var h Hello
	if len(b) < 2+16 {
		return h, fmt.Errorf("%w: short hello", ErrCorrupt)
	}
	h.Version = binary.LittleEndian.Uint16(b)
	copy(h.Sender[:], b[2:18])
	host, rest, err := readString(b[18:])
	if err != nil || len(rest) != 0 {
		return h, fmt.Errorf("%w: hello host", ErrCorrupt)
	}
	h.Host = host
	return h, nil
}

// ParseWelcome parses a Welcome body.
func ParseWelcome(b []byte) (Welcome, error) {
	var m Welcome
	if len(b) < 2 {
		return m, fmt.Errorf("%w: short welcome", ErrCorrupt)
	}
	m.Version = binary.LittleEndian.Uint16(b)
	s, rest, err := readString(b[2:])
	if err != nil || len(rest) != 0 {
		return m, fmt.Errorf("%w: welcome receiver", ErrCorrupt)
	}
	m.Receiver = s
	return m, nil
}

// ParseBatch parses a Batch body. The chunks' records alias b.
func ParseBatch(b []byte) (Batch, error) {
	var bt Batch
	if len(b) < 8 {
		return bt, fmt.Errorf("%w: short batch", ErrCorrupt)
	}
	bt.ID = binary.LittleEndian.Uint64(b)
	rest := b[8:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > uint64(len(rest)) {
		return bt, fmt.Errorf("%w: batch chunk count", ErrCorrupt)
	}
	rest = rest[k:]
	bt.Chunks = make([]record.Chunk, 0, n)
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(rest)
		if k <= 0 || l > uint64(len(rest)-k) {
			return bt, fmt.Errorf("%w: batch %d chunk %d length", ErrCorrupt, bt.ID, i)
		}
		c, err := record.Decode(rest[k : k+int(l)])
		if err != nil {
			return bt, fmt.Errorf("batch %d chunk %d: %w", bt.ID, i, err)
		}
		bt.Chunks = append(bt.Chunks, c)
		rest = rest[k+int(l):]
	}
	if len(rest) != 0 {
		return bt, fmt.Errorf("%w: batch %d has %d trailing bytes", ErrCorrupt, bt.ID, len(rest))
	}
	return bt, nil
}

// ParseAck parses an Ack body.
func ParseAck(b []byte) (Ack, error) {
	if len(b) != 8 {
		return Ack{}, fmt.Errorf("%w: ack of %d bytes", ErrCorrupt, len(b))
	}
	return Ack{ID: binary.LittleEndian.Uint64(b)}, nil
}

// ParseError parses an Error body.
func ParseError(b []byte) (*Error, error) {
	s, rest, err := readString(b)
	if err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("%w: error message", ErrCorrupt)
	}
	return &Error{Message: s}, nil
}

func readString(b []byte) (string, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return "", nil, ErrCorrupt
	}
	return string(b[k : k+int(n)]), b[k+int(n):], nil
}
