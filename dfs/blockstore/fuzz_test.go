package blockstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
)

// The meta header comes from disk and packets from the network: damaged
// bytes must give an error, never a panic.

func FuzzDecodeMetaHeader(f *testing.F) {
	f.Add(MetaHeader{Version: 1, Checksum: Checksum{ChecksumCRC32C, 512}}.AppendEncode(nil))
	f.Add(MetaHeader{Version: 1, Checksum: Checksum{ChecksumCRC32, 1}}.AppendEncode([]byte{}))
	f.Add([]byte{0, 1, 0, 0, 0, 2, 0})
	f.Add([]byte{0, 1, 2, 0xff, 0xff, 0xff, 0xff, 9})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeMetaHeader(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if err := h.Checksum.Validate(); err != nil {
			t.Fatalf("decoded header %+v does not validate: %v", h, err)
		}
		if got := h.AppendEncode(nil); !bytes.Equal(got, b[:MetaHeaderSize]) {
			t.Fatalf("re-encode: got %x, want %x", got, b[:MetaHeaderSize])
		}
	})
}

func FuzzVerifyPacket(f *testing.F) {
	tab := crc32.MakeTable(crc32.Castagnoli)
	good := func(offset int64, bpc int, data []byte) []byte {
		var c []byte
		for len(data) > 0 {
			n := min(bpc-int(offset%int64(bpc)), len(data))
			c = binary.BigEndian.AppendUint32(c, crc32.Checksum(data[:n], tab))
			data, offset = data[n:], offset+int64(n)
		}
		return c
	}
	d := bytes.Repeat([]byte("kura"), 300)
	f.Add(int64(0), 512, d, good(0, 512, d), false)
	f.Add(int64(100), 512, d, good(100, 512, d), false)
	f.Add(int64(7), 3, d[:10], good(7, 3, d[:10]), false)
	f.Add(int64(0), 512, []byte{}, []byte{}, false)
	f.Add(int64(-1), 0, d, []byte{1, 2, 3}, false)
	f.Add(int64(1<<62), 1<<20, d, good(1<<62, 1<<20, d), true)
	f.Fuzz(func(t *testing.T, offset int64, bpc int, data, crcs []byte, recompute bool) {
		ck := Checksum{Type: ChecksumCRC32C, BytesPerChecksum: bpc}
		if recompute && ck.Validate() == nil && offset >= 0 {
			crcs = good(offset, bpc, data)
			if err := ck.VerifyPacket(offset, data, crcs); err != nil {
				t.Fatalf("a packet with the right checksums is refused: %v", err)
			}
			if ck.PacketChunks(offset, len(data))*4 != len(crcs) {
				t.Fatalf("PacketChunks disagrees with the chunking")
			}
			if len(data) > 0 {
				crcs[len(crcs)-1] ^= 1
				if err := ck.VerifyPacket(offset, data, crcs); !errors.Is(err, ErrPacketChecksum) {
					t.Fatalf("a damaged checksum passes: %v", err)
				}
			}
			return
		}
		err := ck.VerifyPacket(offset, data, crcs)
		if err != nil && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrPacketChecksum) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}
