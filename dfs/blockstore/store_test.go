package blockstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var ctx = context.Background()

func open(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// writeBlock writes data in random-sized writes and finalizes.
func writeBlock(t testing.TB, s *Store, id, gs uint64, data []byte) {
	t.Helper()
	w, err := s.Create(ctx, id, gs)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(id, gs))
	for p := data; len(p) > 0; {
		n := min(len(p), 1+r.IntN(3000))
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	n, err := w.Finalize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(data)) {
		t.Fatalf("Finalize: length %d, want %d", n, len(data))
	}
}

func readAll(t testing.TB, s *Store, id uint64) []byte {
	t.Helper()
	r, err := s.NewReader(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func finalPaths(s *Store, id, gs uint64) (data, meta string) {
	dir := filepath.Join(s.Dir(), "current", subdir(id))
	return filepath.Join(dir, dataName(id)), filepath.Join(dir, metaName(id, gs))
}

// checkMeta checks the meta file of a finalized replica byte by byte.
func checkMeta(t *testing.T, s *Store, id, gs uint64, data []byte) {
	t.Helper()
	dpath, mpath := finalPaths(s, id, gs)
	onDisk, err := os.ReadFile(dpath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, data) {
		t.Fatalf("data file differs from what was written")
	}
	meta, err := os.ReadFile(mpath)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 1, 2, 0, 0, 2, 0} // version 1, CRC32C, 512
	tab := crc32.MakeTable(crc32.Castagnoli)
	for p := data; len(p) > 0; {
		n := min(len(p), 512)
		want = binary.BigEndian.AppendUint32(want, crc32.Checksum(p[:n], tab))
		p = p[n:]
	}
	if !bytes.Equal(meta, want) {
		t.Fatalf("meta file of %d data bytes:\n got %x\nwant %x", len(data), meta, want)
	}
}

func TestRoundTrip(t *testing.T) {
	const blockSize = 64 << 10
	s := open(t, t.TempDir(), Options{BlockSize: blockSize, WriteBufferSize: 4096})
	sizes := []int{0, 1, 511, 512, 513, 1023, 1024, 100*512 + 17, blockSize}
	for i, size := range sizes {
		id, gs := uint64(1000+i*70000), uint64(7)
		data := randBytes(id, size)
		writeBlock(t, s, id, gs, data)
		if got := readAll(t, s, id); !bytes.Equal(got, data) {
			t.Fatalf("size %d: read back differs", size)
		}
		checkMeta(t, s, id, gs, data)
		st, err := s.Stat(id)
		if err != nil || st != (BlockInfo{ID: id, GenStamp: gs, Length: int64(size), State: Finalized}) {
			t.Fatalf("Stat: %+v, %v", st, err)
		}
		// ReadAt at every awkward offset and length.
		r, err := s.NewReader(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, off := range []int{0, 1, 511, 512, 513, size / 2, size - 1, size} {
			for _, n := range []int{0, 1, 511, 512, 513, 5000, size} {
				if off < 0 || off > size || n < 0 {
					continue
				}
				buf := make([]byte, n)
				m, err := r.ReadAt(buf, int64(off))
				want := data[off:min(off+n, size)]
				if m != len(want) || !bytes.Equal(buf[:m], want) {
					t.Fatalf("size %d ReadAt(%d, %d) = %d, %v", size, n, off, m, err)
				}
				if (m < n) != errors.Is(err, io.EOF) || (err != nil && !errors.Is(err, io.EOF)) {
					t.Fatalf("size %d ReadAt(%d, %d) = %d, %v", size, n, off, m, err)
				}
			}
		}
		// Packets: data and the stored checksums.
		var got, crcs []byte
		pdata, pcrc := make([]byte, 4096), make([]byte, 32)
		for off := int64(0); ; {
			n, err := r.ReadPacket(off, pdata, pcrc)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Checksum().VerifyPacket(off, pdata[:n], pcrc[:r.Checksum().NumChunks(int64(n))*4]); err != nil {
				t.Fatal(err)
			}
			got = append(got, pdata[:n]...)
			crcs = append(crcs, pcrc[:r.Checksum().NumChunks(int64(n))*4]...)
			off += int64(n)
		}
		_, mpath := finalPaths(s, id, gs)
		meta, _ := os.ReadFile(mpath)
		if !bytes.Equal(got, data) || !bytes.Equal(crcs, meta[MetaHeaderSize:]) {
			t.Fatalf("size %d: packets differ from the block", size)
		}
		r.Close()
	}
	// The block size is a limit.
	w, err := s.Create(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, blockSize+1)); !errors.Is(err, ErrBlockFull) {
		t.Fatalf("write past the block size: %v", err)
	}
	if _, err := w.Write(make([]byte, blockSize)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte{1}); !errors.Is(err, ErrBlockFull) {
		t.Fatalf("write past the block size: %v", err)
	}
	w.Abort()

	// Everything survives a reopen.
	list := s.List()
	s.Close()
	s2 := open(t, s.Dir(), Options{BlockSize: blockSize})
	if got := s2.List(); fmt.Sprint(got) != fmt.Sprint(list) || len(got) != len(sizes) {
		t.Fatalf("after reopen List = %v, want %v", got, list)
	}
	if _, err := s2.Stat(1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("aborted block: %v", err)
	}
	for _, b := range list {
		if got := readAll(t, s2, b.ID); !bytes.Equal(got, randBytes(b.ID, int(b.Length))) {
			t.Fatalf("block %d differs after reopen", b.ID)
		}
	}
}

func TestCreateExisting(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	writeBlock(t, s, 5, 1, []byte("x"))
	if _, err := s.Create(ctx, 5, 2); !errors.Is(err, ErrExists) {
		t.Fatalf("Create of a finalized block: %v", err)
	}
	w, err := s.Create(ctx, 6, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, 6, 1); !errors.Is(err, ErrExists) {
		t.Fatalf("Create of a block being written: %v", err)
	}
	if _, err := s.Append(ctx, 6, 2); !errors.Is(err, ErrBusy) {
		t.Fatalf("Append of a block being written: %v", err)
	}
	w.Abort()
}

func TestAppend(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	data := randBytes(1, 1000)
	writeBlock(t, s, 42, 1, data)

	if _, err := s.Append(ctx, 42, 1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Append with the same genstamp: %v", err)
	}
	if _, err := s.Append(ctx, 43, 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Append of a missing block: %v", err)
	}
	// A reader opened before the append keeps seeing a consistent block
	// although the append rewrites the last chunk's checksum.
	old, err := s.NewReader(ctx, 42)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()

	for i, more := range [][]byte{randBytes(2, 700), randBytes(3, 24), randBytes(4, 1), randBytes(5, 3000)} {
		gs := uint64(2 + i)
		w, err := s.Append(ctx, 42, gs)
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := s.Stat(42); st.State != BeingWritten || !st.Writing || st.GenStamp != gs {
			t.Fatalf("Stat during append: %+v", st)
		}
		if w.Len() != int64(len(data)) {
			t.Fatalf("Len after Append = %d, want %d", w.Len(), len(data))
		}
		if _, err := w.Write(more); err != nil {
			t.Fatal(err)
		}
		data = append(data, more...)
		if _, err := w.Finalize(ctx); err != nil {
			t.Fatal(err)
		}
		checkMeta(t, s, 42, gs, data)
		if got := readAll(t, s, 42); !bytes.Equal(got, data) {
			t.Fatalf("append %d: read back differs", i)
		}
	}
	got, err := io.ReadAll(old)
	if err != nil || !bytes.Equal(got, data[:1000]) {
		t.Fatalf("reader opened before the append: %d bytes, %v", len(got), err)
	}
	// The old meta file is gone; only the last one is left.
	metas, _ := filepath.Glob(filepath.Join(s.Dir(), "*", "*", "*", "blk_42_*.meta"))
	rbw, _ := filepath.Glob(filepath.Join(s.Dir(), "rbw", "*"))
	if len(metas) != 1 || len(rbw) != 0 {
		t.Fatalf("files left: %v %v", metas, rbw)
	}
}

// packetize cuts data written at offset into packets of about size bytes,
// chunked along the block's chunk boundaries, with their checksums.
func packetize(offset int64, data []byte, size int) (packets, crcs [][]byte) {
	tab := crc32.MakeTable(crc32.Castagnoli)
	for len(data) > 0 {
		n := min(size, len(data))
		if rem := int(offset % 512); rem != 0 {
			n = min(512-rem, len(data)) // first packet after an append realigns
		}
		p := data[:n]
		var c []byte
		for q, o := p, offset; len(q) > 0; {
			k := min(int(512-o%512), len(q))
			c = binary.BigEndian.AppendUint32(c, crc32.Checksum(q[:k], tab))
			q, o = q[k:], o+int64(k)
		}
		packets, crcs = append(packets, p), append(crcs, c)
		data, offset = data[n:], offset+int64(n)
	}
	return packets, crcs
}

func TestWritePacket(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	data := randBytes(9, 200_000+77)
	w, err := s.Create(ctx, 9, 1)
	if err != nil {
		t.Fatal(err)
	}
	packets, crcs := packetize(0, data, 64<<10)
	for i := range packets {
		if err := w.WritePacket(packets[i], crcs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Finalize(ctx); err != nil {
		t.Fatal(err)
	}
	checkMeta(t, s, 9, 1, data)

	// Append through packets: the first one ends at the chunk boundary.
	w, err = s.Append(ctx, 9, 2)
	if err != nil {
		t.Fatal(err)
	}
	more := randBytes(10, 5000)
	packets, crcs = packetize(int64(len(data)), more, 4096)
	if len(packets[0]) != 512-len(data)%512 {
		t.Fatalf("first packet %d bytes", len(packets[0]))
	}
	// A bad checksum is refused, and nothing of that packet is written.
	bad := bytes.Clone(crcs[1])
	bad[len(bad)-1] ^= 1
	if err := w.WritePacket(packets[0], crcs[0]); err != nil {
		t.Fatal(err)
	}
	before := w.Len()
	err = w.WritePacket(packets[1], bad)
	var ce *ChecksumError
	if !errors.Is(err, ErrPacketChecksum) || !errors.As(err, &ce) || ce.BlockID != 9 || ce.Offset != before+int64(len(packets[1])/512-1)*512 {
		t.Fatalf("bad packet: %v (%+v)", err, ce)
	}
	if w.Len() != before {
		t.Fatalf("a refused packet changed the length: %d, want %d", w.Len(), before)
	}
	// A wrong number of checksums is refused too.
	if err := w.WritePacket(packets[1], crcs[1][4:]); !errors.Is(err, ErrInvalid) {
		t.Fatalf("short checksums: %v", err)
	}
	for i := 1; i < len(packets); i++ {
		if err := w.WritePacket(packets[i], crcs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Finalize(ctx); err != nil {
		t.Fatal(err)
	}
	data = append(data, more...)
	checkMeta(t, s, 9, 2, data)

	// After an append to a partial chunk, a packet whose one checksum
	// covers bytes past the chunk boundary is refused.
	w, err = s.Append(ctx, 9, 3)
	if err != nil {
		t.Fatal(err)
	}
	tab := crc32.MakeTable(crc32.Castagnoli)
	p := randBytes(11, 600)
	if err := w.WritePacket(p, binary.BigEndian.AppendUint32(nil, crc32.Checksum(p, tab))); !errors.Is(err, ErrInvalid) {
		t.Fatalf("one checksum over a chunk boundary: %v", err)
	}
	w.Abort()
	if _, err := s.Stat(9); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after Abort: %v", err)
	}
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x20
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptData(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	data := randBytes(3, 10_000)
	writeBlock(t, s, 3, 1, data)
	dpath, _ := finalPaths(s, 3, 1)
	flip(t, dpath, 5000) // chunk 9: [4608, 5120)

	r, err := s.NewReader(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Reads that do not touch the chunk are fine.
	buf := make([]byte, 4608)
	if n, err := r.ReadAt(buf, 0); n != 4608 || err != nil || !bytes.Equal(buf, data[:4608]) {
		t.Fatalf("read before the bad chunk: %d, %v", n, err)
	}
	if n, err := r.ReadAt(buf[:100], 5120); n != 100 || err != nil {
		t.Fatalf("read after the bad chunk: %d, %v", n, err)
	}
	for _, c := range []struct{ off, n int64 }{{0, 10_000}, {4700, 10}, {4608, 512}, {1, 6000}} {
		buf := make([]byte, c.n)
		n, err := r.ReadAt(buf, c.off)
		var ce *ChecksumError
		if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) || ce.BlockID != 3 || ce.Offset != 4608 || ce.File != dpath {
			t.Fatalf("ReadAt(%d, %d): %v", c.n, c.off, err)
		}
		if wantN := max(0, 4608-c.off); int64(n) != wantN || !bytes.Equal(buf[:n], data[c.off:c.off+int64(n)]) {
			t.Fatalf("ReadAt(%d, %d) returned %d good bytes, want %d", c.n, c.off, n, wantN)
		}
	}
	if _, err := r.ReadPacket(4096, make([]byte, 4096), make([]byte, 32)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ReadPacket over the bad chunk: %v", err)
	}
	if err := s.Verify(ctx, 3); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify: %v", err)
	}
	if st, _ := s.Stat(3); st.Corrupt == "" {
		t.Fatalf("Stat after a failed read: %+v", st)
	}
}

func TestCorruptMeta(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	for id := uint64(1); id <= 5; id++ {
		writeBlock(t, s, id, 1, randBytes(id, 3000))
	}
	// Block 1: a checksum byte flipped (chunk 3).
	_, m1 := finalPaths(s, 1, 1)
	flip(t, m1, MetaHeaderSize+3*4+2)
	r, err := s.NewReader(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(r)
	var ce *ChecksumError
	if !errors.As(err, &ce) || ce.Offset != 1536 {
		t.Fatalf("flipped checksum: %v", err)
	}
	r.Close()
	if err := s.Verify(ctx, 2); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Block 2: meta missing. Block 3: header damaged. Block 4: meta cut
	// short. Block 5: data missing.
	_, m2 := finalPaths(s, 2, 1)
	os.Remove(m2)
	_, m3 := finalPaths(s, 3, 1)
	flip(t, m3, 2)
	_, m4 := finalPaths(s, 4, 1)
	os.Truncate(m4, 20)
	d5, _ := finalPaths(s, 5, 1)
	os.Remove(d5)

	s = open(t, dir, Options{})
	list := s.List()
	if len(list) != 5 {
		t.Fatalf("List after damage: %v", list)
	}
	for _, b := range list[1:] {
		if b.Corrupt == "" || b.State != Finalized {
			t.Fatalf("damaged block not reported corrupt: %+v", b)
		}
		if _, err := s.NewReader(ctx, b.ID); b.ID != 4 && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("NewReader of block %d: %v", b.ID, err)
		}
	}
	if list[1].GenStamp != 0 || list[4].GenStamp != 1 {
		t.Fatalf("genstamps: %v", list)
	}
	// Block 4 still reads where its checksums are, and fails where not.
	r, err = s.NewReader(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3000)
	if n, err := r.ReadAt(buf, 0); n != 0 || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of a block with a short meta: %d, %v", n, err)
	}
	r.Close()
	if _, err := s.Append(ctx, 3, 2); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Append of a corrupt replica: %v", err)
	}
	// A corrupt replica can be deleted.
	for _, b := range list {
		if err := s.Delete(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, "current", "*", "*", "*"))
	if len(left) != 0 || len(s.List()) != 0 {
		t.Fatalf("left after deleting everything: %v %v", left, s.List())
	}
}

// crash drops a Writer as a killed process would: files closed, nothing
// finalized, the store's lock released.
func crash(s *Store, ws ...*Writer) {
	for _, w := range ws {
		w.flush(false) // what reached the page cache
		w.closeFiles()
	}
	s.Close()
}

func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{WriteBufferSize: 512})
	data := randBytes(1, 5000)
	tab := crc32.MakeTable(crc32.Castagnoli)
	mk := func(id uint64, n int) *Writer {
		w, err := s.Create(ctx, id, 3)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data[:n]); err != nil {
			t.Fatal(err)
		}
		if err := w.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		return w
	}
	w1 := mk(1, 5000) // clean: synced, every checksum there
	w2 := mk(2, 5000) // data ahead of meta: checksums of the last 3 chunks lost
	w3 := mk(3, 5000) // a torn last chunk: garbage after 4000
	w4 := mk(4, 4096) // meta ahead of data: data cut at 3000
	w5 := mk(5, 100)  // the meta header never reached the disk
	w6 := mk(6, 1000)
	w6.Write(data[1000:1700]) // not synced: only the whole chunks are recovered
	crash(s, w1, w2, w3, w4, w5, w6)

	rbw := filepath.Join(dir, "rbw")
	os.Truncate(filepath.Join(rbw, metaName(2, 3)), MetaHeaderSize+7*4)
	f, _ := os.OpenFile(filepath.Join(rbw, dataName(3)), os.O_RDWR, 0)
	f.WriteAt(make([]byte, 1000), 4000) // zeros, as after a crash with delayed allocation
	f.Close()
	os.Truncate(filepath.Join(rbw, dataName(4)), 3000)
	os.Truncate(filepath.Join(rbw, metaName(5, 3)), 3)

	s = open(t, dir, Options{})
	// Block 4's last chunk is cut short of its checksum, and block 6's
	// partial chunk never had its checksum written: both lose the chunk.
	want := map[uint64]int64{1: 5000, 2: 7 * 512, 3: 3584, 4: 2560, 5: 0, 6: 1536}
	list := s.List()
	if len(list) != len(want) {
		t.Fatalf("List after the crash: %v", list)
	}
	for _, b := range list {
		if b.State != BeingWritten || b.Corrupt != "" || b.Writing || b.GenStamp != 3 || b.Length != want[b.ID] {
			t.Fatalf("block %d after recovery: %+v, want length %d", b.ID, b, want[b.ID])
		}
		got := readAll(t, s, b.ID)
		if !bytes.Equal(got, data[:b.Length]) {
			t.Fatalf("block %d: recovered data differs", b.ID)
		}
		// The files were truncated to the recovered length.
		st, _ := os.Stat(filepath.Join(rbw, dataName(b.ID)))
		mst, _ := os.Stat(filepath.Join(rbw, metaName(b.ID, 3)))
		if st.Size() != b.Length || mst.Size() != MetaHeaderSize+4*((b.Length+511)/512) {
			t.Fatalf("block %d: files of %d and %d bytes for length %d", b.ID, st.Size(), mst.Size(), b.Length)
		}
	}
	_ = tab
	// A recovered replica goes on: appended to, or finalized by recovery at
	// an agreed (shorter) length.
	w, err := s.Append(ctx, 2, 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data[7*512:]); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Finalize(ctx); err != nil {
		t.Fatal(err)
	}
	checkMeta(t, s, 2, 4, data)
	info, err := s.Recover(ctx, 6, 4, 1234)
	if err != nil || info.Length != 1234 || info.State != Finalized || info.GenStamp != 4 {
		t.Fatalf("Recover: %+v, %v", info, err)
	}
	checkMeta(t, s, 6, 4, data[:1234])
	if _, err := s.Recover(ctx, 1, 4, 6000); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Recover past the end: %v", err)
	}
}

func TestInterruptedMoves(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	data := randBytes(1, 3000)
	writeBlock(t, s, 1, 1, data)
	writeBlock(t, s, 2, 1, data)
	s.Close()
	rbw := filepath.Join(dir, "rbw")
	// Block 1: Finalize moved the data and then crashed.
	d1, m1 := finalPaths(s, 1, 1)
	os.Rename(m1, filepath.Join(rbw, metaName(1, 1)))
	// Block 2: Append moved the data to rbw/ and then crashed.
	d2, _ := finalPaths(s, 2, 1)
	os.Rename(d2, filepath.Join(rbw, dataName(2)))

	s = open(t, dir, Options{})
	for _, b := range s.List() {
		if b.State != Finalized || b.Corrupt != "" || b.Length != 3000 {
			t.Fatalf("after an interrupted move: %+v", b)
		}
		checkMeta(t, s, b.ID, 1, data)
	}
	if _, err := os.Stat(d1); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(rbw, "*")); len(left) != 0 {
		t.Fatalf("left in rbw: %v", left)
	}
}

func TestWriterClose(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	data := randBytes(1, 2000)
	w, err := s.Create(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data[:1100])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Stat(1); st.State != BeingWritten || st.Writing || st.Length != 1100 {
		t.Fatalf("after Close: %+v", st)
	}
	if _, err := w.Write(data); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	w, err = s.Append(ctx, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data[1100:])
	if _, err := w.Finalize(ctx); err != nil {
		t.Fatal(err)
	}
	checkMeta(t, s, 1, 2, data)
}

func TestDeleteWhileWriting(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	w, err := s.Create(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("hello"))
	if err := s.Delete(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// A new replica of the same block while the old writer lingers.
	writeBlock(t, s, 1, 2, []byte("world"))
	if _, err := w.Finalize(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Finalize of a deleted replica: %v", err)
	}
	w.Abort()
	if got := readAll(t, s, 1); string(got) != "world" {
		t.Fatalf("the new replica: %q", got)
	}
	if err := s.Delete(ctx, 7); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete of a missing block: %v", err)
	}
}

func TestReadWhileWriting(t *testing.T) {
	s := open(t, t.TempDir(), Options{WriteBufferSize: 1000})
	data := randBytes(1, 20_000)
	w, err := s.Create(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); off += 333 {
		w.Write(data[off:min(off+333, len(data))])
		r, err := s.NewReader(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, data[:len(got)]) || int64(len(got)) > w.Len() {
			t.Fatalf("reading a replica being written at %d: %d bytes, %v", off, len(got), err)
		}
	}
	w.Finalize(ctx)
}

func TestConcurrentReaders(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	data := randBytes(1, 300_000)
	writeBlock(t, s, 1, 1, data)
	r, err := s.NewReader(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			own, err := s.NewReader(ctx, 1)
			if err != nil {
				errs <- err
				return
			}
			defer own.Close()
			rnd := rand.New(rand.NewPCG(uint64(g), 0))
			for range 200 {
				off, n := rnd.IntN(len(data)), rnd.IntN(20_000)
				buf := make([]byte, n)
				src := r
				if rnd.IntN(2) == 0 {
					src = own
				}
				m, err := src.ReadAt(buf, int64(off))
				if m != min(n, len(data)-off) || !bytes.Equal(buf[:m], data[off:off+m]) || (err != nil && err != io.EOF) {
					errs <- fmt.Errorf("ReadAt(%d, %d) = %d, %v", n, off, m, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v", err)
	}
	id := s.StorageID()
	s.Close()
	s = open(t, dir, Options{})
	if s.StorageID() != id || len(id) != len("DS-")+36 {
		t.Fatalf("storage id %q, then %q", id, s.StorageID())
	}
	if _, err := s.Create(ctx, 1, 1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.Create(ctx, 2, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Create after Close: %v", err)
	}
}

func TestUsage(t *testing.T) {
	s := open(t, t.TempDir(), Options{Reserved: 1 << 20})
	writeBlock(t, s, 1, 1, make([]byte, 10_000))
	u, err := s.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if u.Blocks != 1 || u.Used != 10_000+MetaHeaderSize+20*4 || u.Capacity <= 0 || u.Remaining <= 0 || u.Remaining > u.Capacity {
		t.Fatalf("Usage: %+v", u)
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{{BlockSize: -1}, {BytesPerChecksum: MaxBytesPerChecksum + 1}, {Reserved: -1}, {WriteBufferSize: -5}} {
		if _, err := Open(t.TempDir(), o); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Open with %+v: %v", o, err)
		}
	}
	// Another chunk size is written in the header and followed on read.
	s := open(t, t.TempDir(), Options{BytesPerChecksum: 100})
	data := randBytes(1, 1234)
	writeBlock(t, s, 1, 1, data)
	if got := readAll(t, s, 1); !bytes.Equal(got, data) {
		t.Fatal("bpc 100: read back differs")
	}
	_, mpath := finalPaths(s, 1, 1)
	meta, _ := os.ReadFile(mpath)
	if h, err := DecodeMetaHeader(meta); err != nil || h.Checksum.BytesPerChecksum != 100 || len(meta) != 7+13*4 {
		t.Fatalf("bpc 100 header: %+v, %v, %d bytes", h, err, len(meta))
	}
}
