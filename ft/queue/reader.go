package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Reader reads a queue's entries in order. Next is for one goroutine at a
// time; Close may be called from any goroutine, and wakes a waiting Next.
type Reader struct {
	q       *Queue
	after   uint64
	closeCh chan struct{}
	once    sync.Once

	mu     sync.Mutex // held by Next throughout; guards the fields below
	closed bool
	seg    *segment // nil: not positioned yet
	f      *os.File // the reader's own handle on seg
	off    int64    // the next frame
	seq    uint64   // its first seq
	buf    []byte   // read-ahead: file bytes from bufOff
	bufOff int64
	bufLen int
}

// NewReader returns a reader positioned at the first entry containing a
// record with seq > after (or the oldest entry still queued, if that is
// later). Several readers may exist at once; each reads all the entries.
func (q *Queue) NewReader(after uint64) *Reader {
	return &Reader{q: q, after: after, closeCh: make(chan struct{})}
}

// Close releases the reader; a Next waiting returns ErrClosed.
func (r *Reader) Close() error {
	r.once.Do(func() { close(r.closeCh) })
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	r.setFile(nil, nil)
	return nil
}

func (r *Reader) setFile(s *segment, f *os.File) {
	if r.f != nil {
		r.f.Close()
	}
	r.seg, r.f, r.bufLen = s, f, 0
}

// moveLocked positions r at p (q.mu held; p.seg not deleted, so its file is
// there to open).
func (r *Reader) moveLocked(p pos) error {
	if p.seg != r.seg {
		f, err := os.Open(p.seg.path)
		if err != nil {
			return fmt.Errorf("ft queue: %w", err)
		}
		r.setFile(p.seg, f)
	}
	r.off, r.seq = p.off, p.seq
	return nil
}

// Next returns the next entry, waiting until ctx is done for one to be
// appended. Entries acknowledged or dropped (FullDropOldest) meanwhile are
// skipped: the reader moves on to the oldest entry remaining. A damaged
// frame in a segment is logged and counted (Stats.Corrupt) and the rest of
// its segment skipped.
func (r *Reader) Next(ctx context.Context) (Entry, error) {
	return r.next(ctx, true)
}

// errEmpty is next's answer, without waiting, when no entry is there.
var errEmpty = errors.New("no entry")

// TryNext is Next without waiting: ok is false when no entry is there yet.
func (r *Reader) TryNext() (e Entry, ok bool, err error) {
	e, err = r.next(context.Background(), false)
	if err == errEmpty {
		return Entry{}, false, nil
	}
	return e, err == nil, err
}

func (r *Reader) next(ctx context.Context, wait bool) (Entry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.q
	for {
		if r.closed {
			return Entry{}, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return Entry{}, err
		}
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return Entry{}, ErrClosed
		}
		if r.seg == nil || r.seg.deleted || r.seq < q.fc.seq {
			if q.fc.seg == nil {
				if !wait {
					q.mu.Unlock()
					return Entry{}, errEmpty
				}
				if err := r.waitLocked(ctx); err != nil {
					return Entry{}, err
				}
				continue
			}
			if err := r.moveLocked(q.fc); err != nil {
				q.mu.Unlock()
				return Entry{}, err
			}
		}
		floor := max(r.after, q.floor)
		i := q.segIndex(r.seg)
		// Skip segments wholly at or below the floor, and ends of segments.
		for i+1 < len(q.segs) && (r.off >= r.seg.size || q.segs[i+1].first-1 <= floor) {
			i++
			if err := r.moveLocked(startOf(q.segs[i])); err != nil {
				q.mu.Unlock()
				return Entry{}, err
			}
		}
		end := r.seg.size
		if r.off >= end {
			if !wait {
				q.mu.Unlock()
				return Entry{}, errEmpty
			}
			if err := r.waitLocked(ctx); err != nil {
				return Entry{}, err
			}
			continue
		}
		endSeq := q.lastSeq + 1
		if i+1 < len(q.segs) {
			endSeq = q.segs[i+1].first
		}
		q.mu.Unlock()

		e, size, err := r.readFrame(end)
		if err == nil && e.FirstSeq != r.seq {
			err = fmt.Errorf("sequence number %d, want %d", e.FirstSeq, r.seq)
		}
		if err != nil {
			q.mu.Lock()
			if !r.seg.corrupt {
				r.seg.corrupt = true
				q.corrupt++
				q.log.Error("ft queue: damaged frame, skipping the rest of the segment",
					"file", r.seg.path, "offset", r.off, "err", err)
			}
			q.mu.Unlock()
			r.off, r.seq = end, endSeq
			continue
		}
		r.off += size
		r.seq = e.FirstSeq + uint64(e.Count)
		if r.seq-1 <= floor {
			continue
		}
		return e, nil
	}
}

// waitLocked waits, with q.mu held on entry (released on return), for an
// Append, the reader's or queue's Close or the end of ctx.
func (r *Reader) waitLocked(ctx context.Context) error {
	q := r.q
	if q.dataCh == nil {
		q.dataCh = make(chan struct{})
	}
	ch := q.dataCh
	q.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-q.closedCh:
		return ErrClosed
	case <-r.closeCh:
		return ErrClosed
	}
}

// has reports whether the buffer holds n bytes at off.
func (r *Reader) has(off, n int64) bool {
	return off >= r.bufOff && off+n <= r.bufOff+int64(r.bufLen)
}

// fill reads at least want bytes at off (more, up to 64 KiB, if the data,
// which ends at end, has them).
func (r *Reader) fill(off, end, want int64) error {
	n := min(max(want, scanBufSize), end-off)
	if int64(cap(r.buf)) < n {
		r.buf = make([]byte, max(n, scanBufSize))
	}
	m, err := r.f.ReadAt(r.buf[:n], off)
	r.bufOff, r.bufLen = off, m
	if int64(m) < want {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("read: %w", err)
	}
	return nil
}

// readFrame reads and checks the frame at r.off; the data ends at end.
func (r *Reader) readFrame(end int64) (Entry, int64, error) {
	off := r.off
	if end-off < frameHeaderLen {
		return Entry{}, 0, fmt.Errorf("torn frame header (%d bytes)", end-off)
	}
	if !r.has(off, frameHeaderLen) {
		if err := r.fill(off, end, frameHeaderLen); err != nil {
			return Entry{}, 0, err
		}
	}
	fi, err := parseFrameHeader(r.buf[off-r.bufOff:r.bufLen], end-off)
	if err != nil {
		return Entry{}, 0, err
	}
	if !r.has(off, fi.size) {
		if err := r.fill(off, end, fi.size); err != nil {
			return Entry{}, 0, err
		}
	}
	frame := r.buf[off-r.bufOff:][:fi.size]
	if err := checkFrame(frame); err != nil {
		return Entry{}, 0, err
	}
	payload := make([]byte, len(frame)-frameHeaderLen)
	copy(payload, frame[frameHeaderLen:])
	return Entry{FirstSeq: fi.first, Count: fi.count, Payload: payload}, fi.size, nil
}
