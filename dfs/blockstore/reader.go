package blockstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync/atomic"
)

// readBatch is how many data bytes ReadAt reads with one pread.
const readBatch = 512 << 10

// Reader reads one replica and verifies every chunk it returns against its
// stored checksum. It sees the replica as it was when opened: for one being
// written, the bytes written out by then. ReadAt and ReadPacket may be
// called concurrently; Read and Seek share an offset.
type Reader struct {
	s        *Store
	id, gs   uint64
	length   int64
	ck       Checksum
	tab      *crc32.Table
	data     *os.File
	meta     *os.File
	dataPath string
	metaPath string
	last     int64  // the chunk whose checksum is lastCRC; -1: none
	lastCRC  uint32 // taken when opened: a writer may rewrite it on disk

	off    int64
	closed atomic.Bool
}

// readBuf is scratch space of a ReadAt call.
type readBuf struct {
	chunk []byte
	crcs  []byte
}

// NewReader opens the replica of id for reading. A replica whose meta file
// is missing or unreadable is ErrCorrupt.
func (s *Store) NewReader(ctx context.Context, id uint64) (*Reader, error) {
	if err := ctx.Err(); err != nil {
		return nil, blockErr("read", id, "", err)
	}
	rep, err := s.get("read", id)
	if err != nil {
		return nil, err
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	switch {
	case rep.deleted:
		return nil, blockErr("read", id, "", ErrNotFound)
	case rep.noData || rep.noMeta || rep.ck.BytesPerChecksum == 0:
		return nil, blockErr("read", id, rep.dataPath(), fmt.Errorf("%w: %s", ErrCorrupt, rep.corrupt))
	}
	r := &Reader{
		s: s, id: id, gs: rep.gs, length: rep.length, ck: rep.ck, tab: rep.ck.table(),
		dataPath: rep.dataPath(), metaPath: rep.metaPath(), last: -1,
	}
	if r.data, err = os.Open(r.dataPath); err != nil {
		return nil, blockErr("read", id, r.dataPath, err)
	}
	if r.meta, err = os.Open(r.metaPath); err != nil {
		r.data.Close()
		return nil, blockErr("read", id, r.metaPath, err)
	}
	if bpc := int64(r.ck.BytesPerChecksum); r.length%bpc != 0 {
		// The partial last chunk's checksum changes on disk as a writer
		// (now or after an Append) adds to the chunk: take it now.
		last := r.length / bpc
		if rep.writer != nil {
			r.last, r.lastCRC = last, rep.lastCRC
		} else {
			var cb [crcSize]byte
			if _, err := r.meta.ReadAt(cb[:], MetaHeaderSize+last*crcSize); err == nil {
				r.last, r.lastCRC = last, binary.BigEndian.Uint32(cb[:])
			}
		}
	}
	return r, nil
}

// ID is the block read.
func (r *Reader) ID() uint64 { return r.id }

// GenStamp is the replica's generation stamp when it was opened.
func (r *Reader) GenStamp() uint64 { return r.gs }

// Size is the replica's length as the Reader sees it.
func (r *Reader) Size() int64 { return r.length }

// Checksum is the replica's checksum type and chunk size.
func (r *Reader) Checksum() Checksum { return r.ck }

// Close closes the files.
func (r *Reader) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	err := r.data.Close()
	if merr := r.meta.Close(); err == nil {
		err = merr
	}
	return err
}

func (r *Reader) corrupt(off int64, format string, args ...any) error {
	err := blockErr("read", r.id, r.dataPath, fmt.Errorf("%w at offset %d: %s", ErrCorrupt, off, fmt.Sprintf(format, args...)))
	r.s.markCorrupt(r.id, r.gs, err.Error())
	return err
}

// readChunks fills dst with the data from start (a chunk boundary) and crcs
// with the stored checksums of its chunks, verifies every chunk, and
// returns how many bytes of dst are verified.
func (r *Reader) readChunks(dst, crcs []byte, start int64) (int, error) {
	bpc := int64(r.ck.BytesPerChecksum)
	first := start / bpc
	n := r.ck.NumChunks(int64(len(dst)))
	if m, err := r.data.ReadAt(dst, start); m < len(dst) {
		return 0, r.corrupt(start+int64(m), "data file ends before the replica's length %d: %v", r.length, err)
	}
	fromMeta := n
	if r.last >= first && r.last < first+n {
		fromMeta = r.last - first
		binary.BigEndian.PutUint32(crcs[fromMeta*crcSize:], r.lastCRC)
	}
	if fromMeta > 0 {
		if m, err := r.meta.ReadAt(crcs[:fromMeta*crcSize], MetaHeaderSize+first*crcSize); int64(m) < fromMeta*crcSize {
			return 0, r.corrupt(start+int64(m/crcSize)*bpc, "meta file %s ends before the checksum of the chunk: %v", r.metaPath, err)
		}
	}
	for i := int64(0); i < n; i++ {
		lo := i * bpc
		hi := min(lo+bpc, int64(len(dst)))
		stored := binary.BigEndian.Uint32(crcs[i*crcSize:])
		if got := crc32.Checksum(dst[lo:hi], r.tab); got != stored {
			cerr := &ChecksumError{Err: ErrCorrupt, BlockID: r.id, File: r.dataPath, Offset: start + lo, Length: int(hi - lo), Stored: stored, Computed: got}
			r.s.markCorrupt(r.id, r.gs, cerr.Error())
			return int(lo), cerr
		}
	}
	return len(dst), nil
}

func (r *Reader) getBuf() *readBuf {
	b, _ := r.s.scratch.Get().(*readBuf)
	if b == nil {
		b = &readBuf{}
	}
	bpc := r.ck.BytesPerChecksum
	if cap(b.chunk) < bpc {
		b.chunk = make([]byte, bpc)
	}
	if n := (max(readBatch/bpc, 1) + 1) * crcSize; cap(b.crcs) < n {
		b.crcs = make([]byte, n)
	}
	return b
}

// ReadAt reads len(p) bytes from off, verifying every chunk they touch
// (io.ReaderAt). A chunk that fails is a *ChecksumError wrapping
// ErrCorrupt, with the block id and the chunk's offset; n counts the good
// bytes before it. The replica is then reported corrupt by List.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if r.closed.Load() {
		return 0, blockErr("read", r.id, r.dataPath, ErrClosed)
	}
	if off < 0 {
		return 0, blockErr("read", r.id, r.dataPath, fmt.Errorf("%w: offset %d", ErrInvalid, off))
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off >= r.length {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), r.length)
	bpc := int64(r.ck.BytesPerChecksum)
	batch := max(readBatch/bpc, 1) * bpc
	buf := r.getBuf()
	defer r.s.scratch.Put(buf)
	n := 0
	for off < end {
		cstart := off - off%bpc
		if off == cstart {
			// Whole chunks (and the replica's last chunk) go straight
			// into p.
			span := (end - off) / bpc * bpc
			if end == r.length {
				span = end - off
			}
			if span > 0 {
				span = min(span, batch)
				m, err := r.readChunks(p[n:n+int(span)], buf.crcs, off)
				n += m
				if err != nil {
					return n, err
				}
				off += span
				continue
			}
		}
		cend := min(cstart+bpc, r.length)
		chunk := buf.chunk[:cend-cstart]
		if _, err := r.readChunks(chunk, buf.crcs, cstart); err != nil {
			return n, err
		}
		m := copy(p[n:], chunk[off-cstart:min(cend, end)-cstart])
		n += m
		off += int64(m)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Read reads from the Reader's offset (io.Reader), verifying as ReadAt.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := r.ReadAt(p, r.off)
	r.off += int64(n)
	if n > 0 && errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

// Seek sets the offset of the next Read (io.Seeker).
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.length
	default:
		return 0, blockErr("seek", r.id, r.dataPath, fmt.Errorf("%w: whence %d", ErrInvalid, whence))
	}
	if offset < 0 {
		return 0, blockErr("seek", r.id, r.dataPath, fmt.Errorf("%w: offset %d", ErrInvalid, offset))
	}
	r.off = offset
	return offset, nil
}

// ReadPacket reads the data of a packet to send (HDFS's BlockSender): from
// off, which must be on a chunk boundary, as many whole chunks as fit in
// data and crcs (4 bytes a chunk), or up to the end of the replica. It
// returns the data bytes read, n, and fills crcs[:4*NumChunks(n)] with the
// stored checksums, which are verified but not recomputed, so the packet
// goes out with the checksums written when the block was received. At the
// end of the replica it returns 0, io.EOF. A mismatch is as in ReadAt.
func (r *Reader) ReadPacket(off int64, data, crcs []byte) (int, error) {
	if r.closed.Load() {
		return 0, blockErr("read", r.id, r.dataPath, ErrClosed)
	}
	bpc := int64(r.ck.BytesPerChecksum)
	if off >= r.length && off >= 0 {
		return 0, io.EOF
	}
	if off < 0 || off%bpc != 0 {
		return 0, blockErr("read packet", r.id, r.dataPath, fmt.Errorf("%w: offset %d is not on a %d-byte chunk boundary", ErrInvalid, off, bpc))
	}
	chunks := min(int64(len(data))/bpc, int64(len(crcs)/crcSize))
	n := min(chunks*bpc, r.length-off)
	if rest := r.length - off; rest < bpc && int64(len(data)) >= rest && len(crcs) >= crcSize {
		n = rest
	}
	if n <= 0 {
		return 0, blockErr("read packet", r.id, r.dataPath, fmt.Errorf("%w: buffers of %d data and %d checksum bytes hold no chunk of %d bytes", ErrInvalid, len(data), len(crcs), bpc))
	}
	return r.readChunks(data[:n], crcs[:r.ck.NumChunks(n)*crcSize], off)
}

var (
	_ io.ReaderAt   = (*Reader)(nil)
	_ io.ReadSeeker = (*Reader)(nil)
)
