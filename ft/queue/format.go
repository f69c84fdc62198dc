package queue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kura-dev/kura/internal/dirlock"
)

// On disk. A queue directory holds:
//
//	LOCK                      flock'ed by the process that has the queue open
//	ack                       acknowledged and dropped positions, last seq
//	00000000000000000001.seg  segments, named by the first seq they hold
//
// A segment starts with a 16-byte header: the magic "KURAQ001" and its first
// seq (8 LE, the same as its name). Frames follow:
//
//	len(4 LE, of the rest) crc32c(4 LE, over firstSeq|count|payload)
//	firstSeq(8 LE) count(4 LE) payload
const (
	segMagic       = "KURAQ001"
	segHeaderLen   = 16
	segSuffix      = ".seg"
	segNameDigits  = 20
	frameHeaderLen = 20 // len, crc, firstSeq, count
	frameFixed     = 16 // what len counts besides the payload: crc, firstSeq, count
	maxPayload     = 1<<32 - 1 - frameFixed

	ackFileName  = "ack"
	ackTmpName   = "ack.tmp"
	lockFileName = "LOCK"

	scanBufSize = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segName is the file name of the segment whose first seq is first.
func segName(first uint64) string {
	return fmt.Sprintf("%0*d%s", segNameDigits, first, segSuffix)
}

// parseSegName returns the first seq a segment file name declares.
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(digits) != segNameDigits {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n == 0 {
		return 0, false
	}
	return n, true
}

// segHeader returns the header of the segment whose first seq is first.
func segHeader(first uint64) []byte {
	h := make([]byte, segHeaderLen)
	copy(h, segMagic)
	binary.LittleEndian.PutUint64(h[len(segMagic):], first)
	return h
}

// putFrame encodes one frame into buf, which must be frameHeaderLen +
// len(payload) long.
func putFrame(buf []byte, first uint64, count uint32, payload []byte) {
	binary.LittleEndian.PutUint32(buf[0:], uint32(len(buf)-4))
	binary.LittleEndian.PutUint64(buf[8:], first)
	binary.LittleEndian.PutUint32(buf[16:], count)
	copy(buf[frameHeaderLen:], payload)
	binary.LittleEndian.PutUint32(buf[4:], crc32.Checksum(buf[8:], castagnoli))
}

// frameInfo is what a frame header says.
type frameInfo struct {
	size  int64 // the whole frame, len field included
	first uint64
	count uint32
}

func (fi frameInfo) last() uint64 { return fi.first + uint64(fi.count) - 1 }

// parseFrameHeader checks the header at the start of h (at least
// frameHeaderLen bytes) of a frame that must end within avail bytes.
func parseFrameHeader(h []byte, avail int64) (frameInfo, error) {
	l := binary.LittleEndian.Uint32(h[0:])
	fi := frameInfo{
		size:  4 + int64(l),
		first: binary.LittleEndian.Uint64(h[8:]),
		count: binary.LittleEndian.Uint32(h[16:]),
	}
	switch {
	case l <= frameFixed:
		return fi, fmt.Errorf("bad frame length %d", l)
	case fi.size > avail:
		return fi, fmt.Errorf("frame of %d bytes runs past the end of the data (%d bytes left)", fi.size, avail)
	case fi.count == 0:
		return fi, errors.New("frame of zero records")
	case fi.first == 0 || fi.first+uint64(fi.count)-1 < fi.first:
		return fi, fmt.Errorf("bad sequence number %d (+%d)", fi.first, fi.count)
	}
	return fi, nil
}

// checkFrame verifies the checksum of a whole frame.
func checkFrame(frame []byte) error {
	want := binary.LittleEndian.Uint32(frame[4:])
	if got := crc32.Checksum(frame[8:], castagnoli); got != want {
		return fmt.Errorf("checksum mismatch (%08x, want %08x)", got, want)
	}
	return nil
}

// errOpen wraps a failure to open a segment file (as opposed to a damaged
// frame in it).
type errOpen struct{ err error }

func (e errOpen) Error() string { return e.err.Error() }
func (e errOpen) Unwrap() error { return e.err }

// segSnap is a segment and the size it had when the snapshot was taken
// (only the active segment grows).
type segSnap struct {
	seg  *segment
	size int64
}

// scanner walks frame headers (without checking checksums) through a
// segment file of its own, reading 64 KiB at a time.
type scanner struct {
	log    *slog.Logger
	seg    *segment
	f      *os.File
	buf    []byte
	bufOff int64
	bufLen int
}

// release closes the scanner's file (keeping its buffer).
func (s *scanner) release() {
	if s.f != nil {
		s.f.Close()
	}
	s.f, s.seg, s.bufLen = nil, nil, 0
}

// header returns the frame header at off in seg, whose data ends at end.
func (s *scanner) header(seg *segment, off, end int64) (frameInfo, error) {
	if s.seg != seg {
		s.release()
		f, err := os.Open(seg.path)
		if err != nil {
			return frameInfo{}, errOpen{err}
		}
		s.f, s.seg = f, seg
	}
	if off < s.bufOff || off+frameHeaderLen > s.bufOff+int64(s.bufLen) {
		if end-off < frameHeaderLen {
			return frameInfo{}, fmt.Errorf("torn frame header (%d bytes)", end-off)
		}
		if s.buf == nil {
			s.buf = make([]byte, scanBufSize)
		}
		n := min(int64(len(s.buf)), end-off)
		m, err := s.f.ReadAt(s.buf[:n], off)
		s.bufOff, s.bufLen = off, m
		if m < frameHeaderLen {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return frameInfo{}, fmt.Errorf("read frame header: %w", err)
		}
	}
	return parseFrameHeader(s.buf[off-s.bufOff:], end-off)
}

// walk moves forward from start (in segs[0]) over whole frames as long as
// pass says so, and over the rest of a segment when skipSeg (may be nil)
// says so given the next segment's first seq. A damaged frame is logged and
// the rest of its segment skipped, unless it is in the last segment of segs,
// where the walk stops. It returns where it stopped; an error only when a
// segment file could not be opened. freed, given to pass, counts the bytes
// walked over so far.
func (s *scanner) walk(start pos, segs []segSnap, pass func(fi frameInfo, freed int64) bool, skipSeg func(nextFirst uint64) bool) (pos, error) {
	p := start
	var freed int64
	i := 0
	for {
		sn := segs[i]
		hasNext := i+1 < len(segs)
		if hasNext && (p.off >= sn.size || (skipSeg != nil && skipSeg(segs[i+1].seg.first))) {
			freed += max(0, sn.size-p.off)
			i++
			p = startOf(segs[i].seg)
			continue
		}
		if p.off >= sn.size {
			return p, nil
		}
		fi, err := s.header(sn.seg, p.off, sn.size)
		if err == nil && fi.first != p.seq {
			err = fmt.Errorf("sequence number %d, want %d", fi.first, p.seq)
		}
		if err != nil {
			var oe errOpen
			if errors.As(err, &oe) {
				return p, err
			}
			if !hasNext {
				return p, nil
			}
			s.log.Warn("ft queue: damaged frame, skipping the rest of the segment", "file", sn.seg.path, "offset", p.off, "err", err)
			freed += sn.size - p.off
			i++
			p = startOf(segs[i].seg)
			continue
		}
		if !pass(fi, freed) {
			return p, nil
		}
		p.off += fi.size
		p.seq = fi.first + uint64(fi.count)
		freed += fi.size
	}
}

// recoverSegment checks every frame of f (the last segment, whose data ends
// at size) and returns the end of the valid frames and the seq after the
// last of them.
func recoverSegment(f *os.File, first uint64, size int64) (end int64, next uint64, why error) {
	buf := make([]byte, scanBufSize)
	var bufOff int64
	var bufLen int
	off, next := int64(segHeaderLen), first
	fill := func(want int64) error {
		n := min(max(want, int64(scanBufSize)), size-off)
		if int64(len(buf)) < n {
			buf = make([]byte, n)
		}
		m, err := f.ReadAt(buf[:n], off)
		bufOff, bufLen = off, m
		if int64(m) < want {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		return nil
	}
	has := func(n int64) bool { return off >= bufOff && off+n <= bufOff+int64(bufLen) }
	for off < size {
		if size-off < frameHeaderLen {
			return off, next, fmt.Errorf("torn frame header (%d bytes)", size-off)
		}
		if !has(frameHeaderLen) {
			if err := fill(frameHeaderLen); err != nil {
				return off, next, fmt.Errorf("read: %w", err)
			}
		}
		fi, err := parseFrameHeader(buf[off-bufOff:], size-off)
		if err != nil {
			return off, next, err
		}
		if fi.first != next {
			return off, next, fmt.Errorf("sequence number %d, want %d", fi.first, next)
		}
		if !has(fi.size) {
			if err := fill(fi.size); err != nil {
				return off, next, fmt.Errorf("read: %w", err)
			}
		}
		if err := checkFrame(buf[off-bufOff : off-bufOff+fi.size]); err != nil {
			return off, next, err
		}
		off += fi.size
		next = fi.first + uint64(fi.count)
	}
	return off, next, nil
}

// checkHeader reads a segment's header. torn reports a file too short to
// hold one whose bytes could be the start of its header (or zeros): the
// remains of a crash while the segment was being created.
func checkHeader(f *os.File, first uint64, size int64) (torn bool, err error) {
	want := segHeader(first)
	got := make([]byte, min(size, segHeaderLen))
	if _, err := f.ReadAt(got, 0); err != nil && err != io.EOF {
		return false, err
	}
	if size < segHeaderLen {
		if bytes.HasPrefix(want, got) || bytes.Count(got, []byte{0}) == len(got) {
			return true, nil
		}
		return false, errors.New("not a kura queue segment (bad header)")
	}
	if string(got[:len(segMagic)]) != segMagic {
		return false, errors.New("not a kura queue segment (bad magic)")
	}
	if !bytes.Equal(got, want) {
		return false, fmt.Errorf("header says first sequence number %d, the name says %d",
			binary.LittleEndian.Uint64(got[len(segMagic):]), first)
	}
	return false, nil
}

// ackState is what the ack file holds.
type ackState struct {
	acked uint64 // highest acknowledged seq
	floor uint64 // every record <= floor is acknowledged or dropped
	last  uint64 // highest assigned seq (a lower bound: the segments may hold more)
}

const ackFileMagic = "kura-queue-ack 1"

func (st ackState) encode() []byte {
	return fmt.Appendf(nil, "%s\nacked %d\nfloor %d\nlast %d\n", ackFileMagic, st.acked, st.floor, st.last)
}

func parseAck(b []byte) (ackState, error) {
	var st ackState
	lines := strings.Split(string(b), "\n")
	if len(lines) != 5 || lines[0] != ackFileMagic || lines[4] != "" {
		return st, errors.New("not a kura queue ack file")
	}
	for i, p := range []*uint64{&st.acked, &st.floor, &st.last} {
		key := [...]string{"acked ", "floor ", "last "}[i]
		v, ok := strings.CutPrefix(lines[i+1], key)
		if !ok {
			return st, fmt.Errorf("line %d: want %q", i+2, key)
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return st, fmt.Errorf("line %d: %w", i+2, err)
		}
		*p = n
	}
	return st, nil
}

// readAck reads dir's ack file; a missing one is all zeros.
func readAck(dir string) (ackState, error) {
	path := filepath.Join(dir, ackFileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return ackState{}, nil
	}
	if err != nil {
		return ackState{}, fmt.Errorf("ft queue: %w", err)
	}
	st, err := parseAck(b)
	if err != nil {
		return st, fmt.Errorf("ft queue: %s: %w", path, err)
	}
	return st, nil
}

// writeAck replaces dir's ack file atomically (write a temporary file, then
// rename it); durable also fsyncs the file and the directory.
func writeAck(dir string, st ackState, durable bool) error {
	tmp := filepath.Join(dir, ackTmpName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("ft queue: write ack file: %w", err)
	}
	_, err = f.Write(st.encode())
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, ackFileName))
	}
	if err == nil && durable {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("ft queue: write ack file: %w", err)
	}
	return nil
}

// syncDir fsyncs a directory, making the creation, renaming and removal of
// its entries durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// lockDir takes the queue directory's lock (dir/LOCK, naming our pid).
func lockDir(dir string) (*dirlock.Lock, error) {
	path := filepath.Join(dir, lockFileName)
	l, err := dirlock.Acquire(path)
	var held *dirlock.HeldError
	if errors.As(err, &held) {
		return nil, fmt.Errorf("ft queue %s: %w (pid %s holds %s)", dir, ErrLocked, held.PID, path)
	}
	if err != nil {
		return nil, fmt.Errorf("ft queue %s: %w", dir, err)
	}
	return l, nil
}
