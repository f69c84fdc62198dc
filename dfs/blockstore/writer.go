package blockstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// Writer writes one replica being written: data in writes of any size or in
// packets that carry their checksums, then Finalize, Close or Abort. A
// Writer belongs to one goroutine. After an error the Writer is failed:
// every later call returns that error, and Abort (or a later Append, after
// the store is reopened) is the way on.
type Writer struct {
	s    *Store
	rep  *replica
	id   uint64
	ck   Checksum
	tab  *crc32.Table
	bpc  int
	data *os.File
	meta *os.File

	dataPath, metaPath string

	length  int64 // bytes accepted
	flushed int64 // bytes written to the data file
	metaOff int64 // where the checksum of the first unwritten whole chunk goes
	curCRC  uint32
	curLen  int    // bytes in the partial last chunk
	dbuf    []byte // data not yet written
	cbuf    []byte // checksums of whole chunks not yet written

	dirSynced bool
	err       error
	done      bool
}

// Create starts a new replica of block id with generation stamp gs, in
// rbw/. A replica of the block already here is ErrExists.
func (s *Store) Create(ctx context.Context, id, gs uint64) (*Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, blockErr("create", id, "", err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, blockErr("create", id, "", ErrClosed)
	}
	if old, ok := s.reps[id]; ok {
		s.mu.Unlock()
		old.mu.Lock()
		defer old.mu.Unlock()
		return nil, blockErr("create", id, "", fmt.Errorf("%w (%s, genstamp %d)", ErrExists, old.state, old.gs))
	}
	rep := &replica{id: id, gs: gs, state: BeingWritten, dir: s.rbwDir, ck: s.ck}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	s.reps[id] = rep
	s.mu.Unlock()

	w, err := s.createFiles(rep)
	if err != nil {
		rep.deleted = true
		s.forget(rep)
		return nil, err
	}
	rep.writer = w
	return w, nil
}

// forget drops rep from the map if it is still there.
func (s *Store) forget(rep *replica) {
	s.mu.Lock()
	if s.reps[rep.id] == rep {
		delete(s.reps, rep.id)
	}
	s.mu.Unlock()
}

func (s *Store) createFiles(rep *replica) (*Writer, error) {
	mpath, dpath := rep.metaPath(), rep.dataPath()
	meta, err := os.OpenFile(mpath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, blockErr("create", rep.id, mpath, err)
	}
	hdr := MetaHeader{Version: MetaVersion, Checksum: rep.ck}.AppendEncode(nil)
	if _, err := meta.WriteAt(hdr, 0); err != nil {
		meta.Close()
		os.Remove(mpath)
		return nil, blockErr("create", rep.id, mpath, err)
	}
	data, err := os.OpenFile(dpath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		meta.Close()
		os.Remove(mpath)
		return nil, blockErr("create", rep.id, dpath, err)
	}
	w := s.newWriter(rep, data, meta)
	w.metaOff = MetaHeaderSize
	return w, nil
}

func (s *Store) newWriter(rep *replica, data, meta *os.File) *Writer {
	bpc := rep.ck.BytesPerChecksum
	size := max(s.opts.WriteBufferSize, bpc)
	size = (size + bpc - 1) / bpc * bpc
	return &Writer{
		s: s, rep: rep, id: rep.id, ck: rep.ck, tab: rep.ck.table(), bpc: bpc,
		data: data, meta: meta, dataPath: rep.dataPath(), metaPath: rep.metaPath(),
		dbuf: make([]byte, 0, size),
	}
}

// Append reopens the replica of id, finalized or left being written by a
// writer that is gone, to write more data at its end under a new
// generation stamp (which must be greater than the replica's, as the
// namenode's append and pipeline recovery make it). A finalized replica
// moves back to rbw/. The last partial chunk is verified against its
// stored checksum (a mismatch is ErrCorrupt) and its checksum is carried
// on as data is added.
//
// A replica under a block recovery (InitRecovery) is reopened only under
// a stamp newer than the recovery id (else ErrStaleRecovery: the writer
// the recovery fenced off), and is then no longer under it.
func (s *Store) Append(ctx context.Context, id, newGS uint64) (*Writer, error) {
	return s.reopen(ctx, "append", id, newGS, -1, reopenAppend)
}

// AppendAt is Append after cutting the replica back to at bytes (no more
// than it has): an append pipeline's setup, which is then the same on a
// replica that already got part of a failed attempt's data.
func (s *Store) AppendAt(ctx context.Context, id, newGS uint64, at int64) (*Writer, error) {
	if at < 0 {
		return nil, blockErr("append", id, "", fmt.Errorf("%w: offset %d is negative", ErrInvalid, at))
	}
	return s.reopen(ctx, "append", id, newGS, at, reopenAppend)
}

// Recover finalizes the replica of id at length bytes (no more than it
// has) under the new generation stamp newGS: HDFS's
// updateReplicaUnderRecovery, which a datanode runs when the namenode
// recovers a block whose writer died and has agreed a length with the
// other replicas. The last partial chunk's checksum is recomputed after
// the old chunk has been verified. A replica under a block recovery
// (InitRecovery) is recovered only to that recovery's id: another newGS
// is ErrStaleRecovery (an older recovery overlapping a newer one must not
// cut the replica the newer one agreed on).
func (s *Store) Recover(ctx context.Context, id, newGS uint64, length int64) (BlockInfo, error) {
	if length < 0 {
		return BlockInfo{}, blockErr("recover", id, "", fmt.Errorf("%w: length %d is negative", ErrInvalid, length))
	}
	return s.reopenFinalized(ctx, "recover", id, newGS, length, reopenRecover)
}

// FinalizeAt finalizes the replica of id, being written at generation
// stamp gs and held by no Writer, at length bytes (no more than it has),
// keeping its stamp: what a datanode does when the namenode holds the
// block complete at that stamp and length while the replica was left
// being written (a lease recovery that closed the file without reaching
// this datanode). The last partial chunk is verified and its checksum
// recomputed as for Recover. The replica is then no longer under a block
// recovery (the namenode decided the block). A finalized replica, another
// stamp or a longer length is ErrInvalid; a held replica ErrBusy.
func (s *Store) FinalizeAt(ctx context.Context, id, gs uint64, length int64) (BlockInfo, error) {
	if length < 0 {
		return BlockInfo{}, blockErr("finalize", id, "", fmt.Errorf("%w: length %d is negative", ErrInvalid, length))
	}
	return s.reopenFinalized(ctx, "finalize", id, gs, length, reopenFinalize)
}

// reopenFinalized reopens the replica of id as reopen does for kind and
// finalizes it at once (Recover, FinalizeAt).
func (s *Store) reopenFinalized(ctx context.Context, op string, id, gs uint64, length int64, kind reopenKind) (BlockInfo, error) {
	w, err := s.reopen(ctx, op, id, gs, length, kind)
	if err != nil {
		return BlockInfo{}, err
	}
	if _, err := w.Finalize(ctx); err != nil {
		w.Close()
		return BlockInfo{}, err
	}
	return s.Stat(id)
}

// reopenKind says what a reopen is for, which decides the stamps allowed.
type reopenKind int

const (
	// reopenAppend: a new stamp, greater than the replica's and than the
	// recovery id it is under.
	reopenAppend reopenKind = iota
	// reopenRecover: a new stamp, the recovery id the replica is under
	// when it is under one.
	reopenRecover
	// reopenFinalize: the replica's own stamp; a replica being written.
	reopenFinalize
)

// reopen opens a Writer on an existing replica, truncating it to truncate
// bytes first unless truncate is negative.
func (s *Store) reopen(ctx context.Context, op string, id, newGS uint64, truncate int64, kind reopenKind) (*Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, blockErr(op, id, "", err)
	}
	rep, err := s.get(op, id)
	if err != nil {
		return nil, err
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	switch {
	case rep.deleted:
		return nil, blockErr(op, id, "", ErrNotFound)
	case rep.writer != nil:
		return nil, blockErr(op, id, rep.dataPath(), ErrBusy)
	case rep.corrupt != "":
		return nil, blockErr(op, id, rep.dataPath(), fmt.Errorf("%w: %s", ErrCorrupt, rep.corrupt))
	case kind == reopenFinalize && (rep.state != BeingWritten || newGS != rep.gs):
		return nil, blockErr(op, id, rep.metaPath(), fmt.Errorf("%w: the replica is %s at generation stamp %d, not being written at %d", ErrInvalid, rep.state, rep.gs, newGS))
	case kind != reopenFinalize && newGS <= rep.gs:
		return nil, blockErr(op, id, rep.metaPath(), fmt.Errorf("%w: new generation stamp %d is not greater than the replica's %d", ErrInvalid, newGS, rep.gs))
	case kind == reopenRecover && rep.recoveryID != 0 && newGS != rep.recoveryID:
		return nil, blockErr(op, id, s.recoveryPath(id), fmt.Errorf("%w: recovery %d is not the recovery %d the replica is under", ErrStaleRecovery, newGS, rep.recoveryID))
	case kind == reopenAppend && rep.recoveryID != 0 && newGS <= rep.recoveryID:
		return nil, blockErr(op, id, s.recoveryPath(id), fmt.Errorf("%w: generation stamp %d is not newer than the recovery %d the replica is under", ErrStaleRecovery, newGS, rep.recoveryID))
	case truncate > rep.length:
		return nil, blockErr(op, id, rep.dataPath(), fmt.Errorf("%w: length %d is more than the replica's %d", ErrInvalid, truncate, rep.length))
	}
	dpath, mpath := rep.dataPath(), rep.metaPath()
	data, err := os.OpenFile(dpath, os.O_RDWR, 0)
	if err != nil {
		return nil, blockErr(op, id, dpath, err)
	}
	meta, err := os.OpenFile(mpath, os.O_RDWR, 0)
	if err != nil {
		data.Close()
		return nil, blockErr(op, id, mpath, err)
	}
	w := s.newWriter(rep, data, meta)
	fail := func(path string, err error) (*Writer, error) {
		data.Close()
		meta.Close()
		return nil, blockErr(op, id, path, err)
	}
	if kind == reopenFinalize {
		// Forgotten first: a crash before the finalize leaves a replica
		// being written that the namenode asks to finalize again, never a
		// finalized one that an old recovery could still cut.
		if err := s.clearRecovery(rep); err != nil {
			data.Close()
			meta.Close()
			return nil, err
		}
	}

	// Verify the chunk that will be the partial last one, and compute the
	// checksum of what of it stays.
	old, length := rep.length, rep.length
	if truncate >= 0 {
		length = truncate
	}
	bpc := int64(w.bpc)
	w.length, w.flushed = length, length
	w.metaOff = MetaHeaderSize + length/bpc*crcSize
	if part := length % bpc; part != 0 {
		start := length - part
		end := min(start+bpc, old)
		buf := make([]byte, end-start)
		if _, err := data.ReadAt(buf, start); err != nil {
			return fail(dpath, fmt.Errorf("%w: reading the last chunk: %v", ErrCorrupt, err))
		}
		var cb [crcSize]byte
		if _, err := meta.ReadAt(cb[:], w.metaOff); err != nil {
			return fail(mpath, fmt.Errorf("%w: reading the last chunk's checksum: %v", ErrCorrupt, err))
		}
		stored, got := binary.BigEndian.Uint32(cb[:]), crc32.Checksum(buf, w.tab)
		if stored != got {
			cerr := &ChecksumError{Err: ErrCorrupt, BlockID: id, File: dpath, Offset: start, Length: len(buf), Stored: stored, Computed: got}
			rep.corrupt = cerr.Error()
			s.log.Warn("replica is corrupt", "block", id, "genstamp", rep.gs, "reason", rep.corrupt)
			data.Close()
			meta.Close()
			return nil, blockErr(op, id, dpath, cerr)
		}
		w.curLen = int(part)
		w.curCRC = crc32.Checksum(buf[:part], w.tab)
	}

	// Move to rbw/ under the new generation stamp: data first, then meta
	// (a crash between the two is completed back into current/ by Open).
	ndpath, nmpath := filepath.Join(s.rbwDir, dataName(id)), filepath.Join(s.rbwDir, metaName(id, newGS))
	if rep.state == Finalized {
		if err := os.Rename(dpath, ndpath); err != nil {
			return fail(dpath, err)
		}
	}
	if err := os.Rename(mpath, nmpath); err != nil {
		if rep.state == Finalized {
			os.Rename(ndpath, dpath)
		}
		return fail(mpath, err)
	}
	if !s.opts.NoSync {
		if err := syncDir(s.rbwDir); err != nil {
			return fail(s.rbwDir, err)
		}
		if rep.dir != s.rbwDir {
			if err := syncDir(rep.dir); err != nil {
				return fail(rep.dir, err)
			}
		}
	}
	rep.dir, rep.gs, rep.state = s.rbwDir, newGS, BeingWritten
	w.dataPath, w.metaPath = ndpath, nmpath
	// Re-stamped at or past the recovery id: no longer under it (a crash
	// before the file goes is cleaned up by Open, which drops recovery
	// ids the stamp reached).
	if err := s.clearRecovery(rep); err != nil {
		data.Close()
		meta.Close()
		return nil, err
	}

	if length != old {
		if err := data.Truncate(length); err != nil {
			return fail(ndpath, err)
		}
		if err := meta.Truncate(w.ck.MetaSize(length)); err != nil {
			return fail(nmpath, err)
		}
		if w.curLen > 0 {
			if _, err := meta.WriteAt(binary.BigEndian.AppendUint32(nil, w.curCRC), w.metaOff); err != nil {
				return fail(nmpath, err)
			}
		}
		rep.length = length
	}
	rep.lastCRC = w.curCRC
	rep.writer = w
	return w, nil
}

// ID is the block the Writer writes.
func (w *Writer) ID() uint64 { return w.id }

// Len is the replica's length so far: the bytes accepted by Write and
// WritePacket, after those that were there before an Append.
func (w *Writer) Len() int64 { return w.length }

// Checksum is the replica's checksum type and chunk size: what packets
// for WritePacket must carry.
func (w *Writer) Checksum() Checksum { return w.ck }

func (w *Writer) check() error {
	if w.done {
		return blockErr("write", w.id, w.dataPath, ErrClosed)
	}
	return w.err
}

func (w *Writer) fail(op, path string, err error) error {
	if w.err == nil {
		w.err = blockErr(op, w.id, path, err)
	}
	return w.err
}

func (w *Writer) room(n int) error {
	if w.length+int64(n) > w.s.opts.BlockSize {
		return blockErr("write", w.id, w.dataPath, fmt.Errorf("%w: %d bytes at offset %d, block size %d", ErrBlockFull, n, w.length, w.s.opts.BlockSize))
	}
	return nil
}

// Write appends p to the replica, computing a checksum per chunk. A write
// that would take the replica past the block size writes nothing and is
// ErrBlockFull.
func (w *Writer) Write(p []byte) (int, error) {
	if err := w.check(); err != nil {
		return 0, err
	}
	if err := w.room(len(p)); err != nil {
		return 0, err
	}
	for q := p; len(q) > 0; {
		n := min(w.bpc-w.curLen, len(q))
		w.add(q[:n], crc32.Update(w.curCRC, w.tab, q[:n]))
		q = q[n:]
		if w.err != nil {
			return 0, w.err
		}
	}
	return len(p), nil
}

// WritePacket appends data received with the sender's checksums (4 bytes
// big-endian per chunk, as an HDFS packet carries them; chunked along the
// block's chunk boundaries, see Checksum.PacketChunks). Every checksum is
// verified first: on a mismatch nothing is written and the error is a
// *ChecksumError wrapping ErrPacketChecksum (the sender, or the network,
// damaged the data). Whole chunks keep the sender's checksums; the
// checksum of a partial chunk is carried on.
func (w *Writer) WritePacket(data, crcs []byte) error {
	if err := w.check(); err != nil {
		return err
	}
	if err := w.room(len(data)); err != nil {
		return err
	}
	if err := w.ck.VerifyPacket(w.length, data, crcs); err != nil {
		var ce *ChecksumError
		if errors.As(err, &ce) {
			ce.BlockID = w.id
		}
		return blockErr("write packet", w.id, w.dataPath, err)
	}
	for i := 0; len(data) > 0; i++ {
		n := min(w.bpc-w.curLen, len(data))
		crc := binary.BigEndian.Uint32(crcs[i*crcSize:])
		if w.curLen != 0 {
			crc = crc32.Update(w.curCRC, w.tab, data[:n])
		}
		w.add(data[:n], crc)
		data = data[n:]
		if w.err != nil {
			return w.err
		}
	}
	return nil
}

// add appends seg, which ends at or before the end of the current chunk,
// whose checksum up to the end of seg is crc.
func (w *Writer) add(seg []byte, crc uint32) {
	if len(w.dbuf)+len(seg) > cap(w.dbuf) {
		w.flush(false)
	}
	w.dbuf = append(w.dbuf, seg...)
	w.length += int64(len(seg))
	w.curCRC, w.curLen = crc, w.curLen+len(seg)
	if w.curLen == w.bpc {
		w.cbuf = binary.BigEndian.AppendUint32(w.cbuf, w.curCRC)
		w.curCRC, w.curLen = 0, 0
	}
}

// flush writes out the buffered data and whole-chunk checksums (and the
// partial chunk's checksum if partial), then lets readers see them.
func (w *Writer) flush(partial bool) {
	if w.err != nil {
		return
	}
	if len(w.dbuf) > 0 {
		if _, err := w.data.WriteAt(w.dbuf, w.flushed); err != nil {
			w.fail("write", w.dataPath, err)
			return
		}
		w.flushed += int64(len(w.dbuf))
		w.dbuf = w.dbuf[:0]
	}
	if len(w.cbuf) > 0 {
		if _, err := w.meta.WriteAt(w.cbuf, w.metaOff); err != nil {
			w.fail("write", w.metaPath, err)
			return
		}
		w.metaOff += int64(len(w.cbuf))
		w.cbuf = w.cbuf[:0]
	}
	if partial && w.curLen > 0 {
		if _, err := w.meta.WriteAt(binary.BigEndian.AppendUint32(nil, w.curCRC), w.metaOff); err != nil {
			w.fail("write", w.metaPath, err)
			return
		}
	}
	w.rep.mu.Lock()
	w.rep.length, w.rep.lastCRC = w.flushed, w.curCRC
	w.rep.mu.Unlock()
}

// sync writes out everything and fsyncs the files (and, once, rbw/).
func (w *Writer) sync() error {
	w.flush(true)
	if w.err != nil || w.s.opts.NoSync {
		return w.err
	}
	if err := w.data.Sync(); err != nil {
		return w.fail("sync", w.dataPath, err)
	}
	if err := w.meta.Sync(); err != nil {
		return w.fail("sync", w.metaPath, err)
	}
	if !w.dirSynced {
		if err := syncDir(w.s.rbwDir); err != nil {
			return w.fail("sync", w.s.rbwDir, err)
		}
		w.dirSynced = true
	}
	return nil
}

// Flush writes what was written so far out of the Writer's buffer to the
// files (the partial last chunk's checksum too), without an fsync, and
// lets readers see it: a Reader opened afterwards reads up to here. A
// crash of the process keeps these bytes, a crash of the machine may not
// (Sync). It is what a datanode does for a writer's hflush.
func (w *Writer) Flush() error {
	if err := w.check(); err != nil {
		return err
	}
	w.flush(true)
	return w.err
}

// Sync makes what was written so far durable (HDFS's hsync): after a
// crash, Open recovers the replica with at least these bytes.
func (w *Writer) Sync(ctx context.Context) error {
	if err := w.check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return blockErr("sync", w.id, w.dataPath, err)
	}
	return w.sync()
}

// Finalize makes the replica durable and complete: its files are synced
// and moved to current/ (data, then meta, then the directories synced).
// It returns the replica's length. The Writer is done afterwards.
func (w *Writer) Finalize(ctx context.Context) (int64, error) {
	if err := w.check(); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, blockErr("finalize", w.id, w.dataPath, err)
	}
	if err := w.sync(); err != nil {
		return 0, err
	}
	rep, s := w.rep, w.s
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if rep.deleted {
		return 0, w.fail("finalize", w.dataPath, fmt.Errorf("%w: deleted while being written", ErrNotFound))
	}
	dst := filepath.Join(s.currentDir, subdir(w.id))
	if err := mkdirSynced(dst, !s.opts.NoSync); err != nil {
		return 0, w.fail("finalize", dst, err)
	}
	ndpath, nmpath := filepath.Join(dst, dataName(w.id)), filepath.Join(dst, metaName(w.id, rep.gs))
	if err := os.Rename(w.dataPath, ndpath); err != nil {
		return 0, w.fail("finalize", w.dataPath, err)
	}
	if err := os.Rename(w.metaPath, nmpath); err != nil {
		os.Rename(ndpath, w.dataPath)
		return 0, w.fail("finalize", w.metaPath, err)
	}
	if !s.opts.NoSync {
		if err := syncDir(dst); err != nil {
			return 0, w.fail("finalize", dst, err)
		}
		if err := syncDir(s.rbwDir); err != nil {
			return 0, w.fail("finalize", s.rbwDir, err)
		}
	}
	rep.dir, rep.state, rep.length, rep.writer = dst, Finalized, w.length, nil
	w.done = true
	w.closeFiles()
	return w.length, nil
}

func (w *Writer) closeFiles() error {
	err := w.data.Close()
	if merr := w.meta.Close(); err == nil {
		err = merr
	}
	return err
}

// Close writes out and syncs what was written and lets the replica go
// without finalizing it: it stays in rbw/ for a later Append or Recover
// (a pipeline that lost a node goes on this way). Close after Finalize or
// Abort does nothing.
func (w *Writer) Close() error {
	if w.done {
		return nil
	}
	err := w.err
	if err == nil {
		err = w.sync()
	}
	w.done = true
	w.rep.mu.Lock()
	if w.rep.writer == w {
		w.rep.writer = nil
	}
	w.rep.mu.Unlock()
	if cerr := w.closeFiles(); err == nil && cerr != nil {
		err = blockErr("close", w.id, w.dataPath, cerr)
	}
	return err
}

// Abort discards the replica, files and all (the namenode re-replicates
// the block from other datanodes). Abort after Finalize or Close does
// nothing.
func (w *Writer) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.closeFiles()
	rep := w.rep
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if rep.deleted {
		return nil
	}
	rep.deleted = true
	rep.writer = nil
	w.s.forget(rep)
	return w.s.removeFiles(rep)
}

var _ io.Writer = (*Writer)(nil)
