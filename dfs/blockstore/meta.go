package blockstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Errors returned by the store; test them with errors.Is. Every error a
// method returns names the operation, the block and, where one is involved,
// the file.
var (
	// ErrNotFound: no replica of the block is stored here.
	ErrNotFound = errors.New("replica not found")
	// ErrExists: a replica of the block is already stored here.
	ErrExists = errors.New("replica already exists")
	// ErrBusy: the replica is being written by another Writer.
	ErrBusy = errors.New("replica is being written")
	// ErrCorrupt: a replica's stored data does not match its checksums, or
	// its files are damaged; read another replica. The error is a
	// *ChecksumError when a chunk failed its checksum.
	ErrCorrupt = errors.New("corrupt replica")
	// ErrPacketChecksum: data received with checksums (Writer.WritePacket)
	// does not match them; nothing of the packet was written.
	ErrPacketChecksum = errors.New("packet checksum mismatch")
	// ErrInvalid: a malformed argument or packet.
	ErrInvalid = errors.New("invalid argument")
	// ErrBlockFull: a write would take the block past Options.BlockSize.
	ErrBlockFull = errors.New("write past the block size")
	// ErrLocked: another process (or another Open) has the directory.
	ErrLocked = errors.New("data directory is in use")
	// ErrClosed: the store, writer or reader was closed.
	ErrClosed = errors.New("closed")
	// ErrStaleRecovery: a block recovery older than the one the replica
	// is under (or than its generation stamp), or a recovery's update
	// whose recovery id is not the replica's current one (HDFS's
	// RecoveryInProgressException from initReplicaRecovery and
	// updateReplicaUnderRecovery).
	ErrStaleRecovery = errors.New("stale block recovery")
)

// ChecksumType is the checksum algorithm of a meta file, numbered as HDFS's
// DataChecksum.Type.
type ChecksumType uint8

// The checksum types of HDFS's meta header.
const (
	// ChecksumNull: no checksums (refused by this store).
	ChecksumNull ChecksumType = 0
	// ChecksumCRC32: CRC-32 with the IEEE polynomial (old HDFS default).
	ChecksumCRC32 ChecksumType = 1
	// ChecksumCRC32C: CRC-32C, the Castagnoli polynomial (HDFS's default and
	// the only type this store writes).
	ChecksumCRC32C ChecksumType = 2
)

// String names the type as HDFS does.
func (t ChecksumType) String() string {
	switch t {
	case ChecksumNull:
		return "NULL"
	case ChecksumCRC32:
		return "CRC32"
	case ChecksumCRC32C:
		return "CRC32C"
	}
	return fmt.Sprintf("ChecksumType(%d)", uint8(t))
}

const (
	// MetaVersion is the version a meta header carries (HDFS's
	// BlockMetadataHeader.VERSION).
	MetaVersion = 1
	// MetaHeaderSize is the size in bytes of the meta file's header.
	MetaHeaderSize = 7
	// DefaultBytesPerChecksum is the chunk size (HDFS's
	// dfs.bytes-per-checksum).
	DefaultBytesPerChecksum = 512
	// MaxBytesPerChecksum bounds the chunk size a header may declare.
	MaxBytesPerChecksum = 1 << 20
	// crcSize is the size of one stored checksum.
	crcSize = 4
)

// Checksum says how a replica's data is checksummed: the algorithm and the
// chunk size (HDFS's DataChecksum).
type Checksum struct {
	Type             ChecksumType
	BytesPerChecksum int
}

// table returns the CRC table of the type; nil for an unsupported one.
func (c Checksum) table() *crc32.Table {
	switch c.Type {
	case ChecksumCRC32C:
		return crc32.MakeTable(crc32.Castagnoli) // cached by hash/crc32
	case ChecksumCRC32:
		return crc32.IEEETable
	}
	return nil
}

// Validate reports a checksum this store cannot verify.
func (c Checksum) Validate() error {
	if c.Type != ChecksumCRC32C && c.Type != ChecksumCRC32 {
		return fmt.Errorf("%w: checksum type %s is not supported (CRC32C and CRC32 are)", ErrInvalid, c.Type)
	}
	if c.BytesPerChecksum <= 0 || c.BytesPerChecksum > MaxBytesPerChecksum {
		return fmt.Errorf("%w: bytes per checksum %d is outside 1..%d", ErrInvalid, c.BytesPerChecksum, MaxBytesPerChecksum)
	}
	return nil
}

// NumChunks is how many checksums cover length bytes of data.
func (c Checksum) NumChunks(length int64) int64 {
	bpc := int64(c.BytesPerChecksum)
	return (length + bpc - 1) / bpc
}

// MetaSize is the size of the meta file of a replica of length bytes.
func (c Checksum) MetaSize(length int64) int64 {
	return MetaHeaderSize + crcSize*c.NumChunks(length)
}

// PacketChunks is how many checksums a packet of n data bytes that starts
// at offset (in the block) carries: the first covers the bytes up to the
// next chunk boundary, each following one a whole chunk, the last what
// remains. A packet that starts on a chunk boundary (all but the first
// packet after an append to a partial chunk) has ceil(n/bpc) of them.
func (c Checksum) PacketChunks(offset int64, n int) int {
	if n <= 0 {
		return 0
	}
	bpc := int64(c.BytesPerChecksum)
	first := bpc - offset%bpc
	if int64(n) <= first {
		return 1
	}
	return 1 + int((int64(n)-first+bpc-1)/bpc)
}

// VerifyPacket checks the data of a packet against its checksums, 4 bytes
// big-endian each, as they come in an HDFS data transfer packet. offset is
// where the packet's data starts in the block: the chunking follows the
// block's chunk boundaries (see PacketChunks). A mismatch is a
// *ChecksumError wrapping ErrPacketChecksum, whose Offset is that of the
// first byte of the failing piece; a wrong number of checksums is
// ErrInvalid. Any input gives an error or nil, never a panic.
func (c Checksum) VerifyPacket(offset int64, data, crcs []byte) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if offset < 0 {
		return fmt.Errorf("%w: packet offset %d is negative", ErrInvalid, offset)
	}
	want := c.PacketChunks(offset, len(data))
	if len(crcs) != want*crcSize {
		return fmt.Errorf("%w: packet of %d bytes at offset %d carries %d bytes of checksums, want %d (%d chunks of %d)",
			ErrInvalid, len(data), offset, len(crcs), want*crcSize, want, c.BytesPerChecksum)
	}
	tab := c.table()
	bpc := int64(c.BytesPerChecksum)
	for i := 0; len(data) > 0; i++ {
		n := bpc - offset%bpc
		if n > int64(len(data)) {
			n = int64(len(data))
		}
		want := binary.BigEndian.Uint32(crcs[i*crcSize:])
		if got := crc32.Checksum(data[:n], tab); got != want {
			return &ChecksumError{Err: ErrPacketChecksum, Offset: offset, Length: int(n), Stored: want, Computed: got}
		}
		data = data[n:]
		offset += n
	}
	return nil
}

// ChecksumError is a chunk whose data does not match its checksum, on disk
// (Err is ErrCorrupt) or in a received packet (Err is ErrPacketChecksum).
type ChecksumError struct {
	// Err is ErrCorrupt or ErrPacketChecksum.
	Err error
	// BlockID is the block (0 for VerifyPacket, which knows no block).
	BlockID uint64
	// File is the data file read, empty for a packet.
	File string
	// Offset is the offset in the block of the first byte of the chunk.
	Offset int64
	// Length is the number of data bytes the checksum covers.
	Length int
	// Stored is the checksum that came with the data, Computed the one of
	// the data.
	Stored, Computed uint32
}

// Error names the block, the file and the offset.
func (e *ChecksumError) Error() string {
	where := "packet"
	if e.File != "" {
		where = e.File
	}
	return fmt.Sprintf("%v: blk_%d at offset %d (%d bytes, %s): checksum %08x, data has %08x",
		e.Err, e.BlockID, e.Offset, e.Length, where, e.Stored, e.Computed)
}

// Unwrap returns ErrCorrupt or ErrPacketChecksum.
func (e *ChecksumError) Unwrap() error { return e.Err }

// MetaHeader is the header of a meta file.
type MetaHeader struct {
	Version  uint16
	Checksum Checksum
}

// AppendEncode appends the 7-byte encoding of h to b.
func (h MetaHeader) AppendEncode(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, h.Version)
	b = append(b, byte(h.Checksum.Type))
	return binary.BigEndian.AppendUint32(b, uint32(h.Checksum.BytesPerChecksum))
}

// DecodeMetaHeader decodes the header at the start of b (the rest of b is
// not looked at) and checks that this store can use it: version 1, a CRC32C
// or CRC32 checksum, a chunk size within 1..MaxBytesPerChecksum. Any input
// gives an error or a header, never a panic.
func DecodeMetaHeader(b []byte) (MetaHeader, error) {
	if len(b) < MetaHeaderSize {
		return MetaHeader{}, fmt.Errorf("%w: meta header is %d bytes, want %d", ErrCorrupt, len(b), MetaHeaderSize)
	}
	h := MetaHeader{
		Version: binary.BigEndian.Uint16(b),
		Checksum: Checksum{
			Type: ChecksumType(b[2]),
		},
	}
	bpc := binary.BigEndian.Uint32(b[3:])
	if h.Version != MetaVersion {
		return MetaHeader{}, fmt.Errorf("%w: meta version %d, want %d", ErrCorrupt, h.Version, MetaVersion)
	}
	if bpc == 0 || bpc > MaxBytesPerChecksum {
		return MetaHeader{}, fmt.Errorf("%w: meta header says %d bytes per checksum, want 1..%d", ErrCorrupt, bpc, MaxBytesPerChecksum)
	}
	h.Checksum.BytesPerChecksum = int(bpc)
	if h.Checksum.table() == nil {
		return MetaHeader{}, fmt.Errorf("%w: meta checksum type %s is not supported", ErrCorrupt, h.Checksum.Type)
	}
	return h, nil
}
