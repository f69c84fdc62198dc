// Package queue is the ft sender's durable local queue: every write() into
// the mount becomes one entry (an encoded chunk of records, opaque here)
// appended to a segment file before write() returns; a shipper reads the
// entries in order, sends them and acknowledges them once the receiver has
// them, which frees their room and eventually deletes their segments.
//
// The queue assigns sequence numbers: an entry of count records takes the
// next count of them, so an entry's FirstSeq is the previous entry's
// FirstSeq+Count and the very first entry gets 1. They never go backwards or
// repeat, across restarts too, even once the queue was drained and its files
// deleted (the ack file remembers the last one).
//
// An Append costs one write(2) under a mutex; whether and when it is fsynced
// is the SyncPolicy's business. A crashed process loses nothing that Append
// returned (the page cache has it); a crashed machine may lose what was not
// fsynced yet. At Open the last segment is checked frame by frame and cut
// after its last intact frame; earlier segments are checked as they are read.
package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/kura-dev/kura/internal/dirlock"
)

// ErrClosed is returned by the methods of a closed Queue (and of a closed
// Reader), and to the Appends and Nexts a Close wakes.
var ErrClosed = errors.New("queue closed")

// ErrLocked means another process (or another Open in this one) has the
// queue directory open.
var ErrLocked = errors.New("queue directory locked: another process holds it")

// ErrTooLarge is returned by Append for an entry that could never fit in
// Options.MaxBytes.
var ErrTooLarge = errors.New("queue entry larger than MaxBytes")

// SyncPolicy says when appended entries are fsynced.
type SyncPolicy int

// Sync policies.
const (
	// SyncInterval (the default) fsyncs every Options.SyncInterval when
	// anything was appended: an entry survives a crash of the process as soon
	// as Append returns (it is in the page cache), a crash of the machine may
	// lose the last interval.
	SyncInterval SyncPolicy = iota
	// SyncAlways makes Append return only once an fsync covers its entry;
	// concurrent Appends share one fsync (group commit).
	SyncAlways
	// SyncNever fsyncs only on Close and when a segment is rolled.
	SyncNever
)

// ParseSyncPolicy parses "interval", "always" or "never".
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	switch s {
	case "interval":
		return SyncInterval, nil
	case "always":
		return SyncAlways, nil
	case "never":
		return SyncNever, nil
	}
	return 0, fmt.Errorf("unknown sync policy %q (want interval, always or never)", s)
}

// String returns the name ParseSyncPolicy accepts.
func (p SyncPolicy) String() string {
	switch p {
	case SyncInterval:
		return "interval"
	case SyncAlways:
		return "always"
	case SyncNever:
		return "never"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// FullPolicy says what Append does when the unacknowledged entries fill
// Options.MaxBytes.
type FullPolicy int

// Full policies.
const (
	// FullBlock (the default) makes Append wait, until its context is done,
	// for acknowledgements to free room.
	FullBlock FullPolicy = iota
	// FullDropOldest drops the oldest unacknowledged entries to make room.
	// They are counted (Stats.DroppedEntries, Stats.DroppedRecords) and
	// logged as a warning, at most one line a second.
	FullDropOldest
)

// ParseFullPolicy parses "block" or "drop-oldest".
func ParseFullPolicy(s string) (FullPolicy, error) {
	switch s {
	case "block":
		return FullBlock, nil
	case "drop-oldest":
		return FullDropOldest, nil
	}
	return 0, fmt.Errorf("unknown full policy %q (want block or drop-oldest)", s)
}

// String returns the name ParseFullPolicy accepts.
func (p FullPolicy) String() string {
	switch p {
	case FullBlock:
		return "block"
	case FullDropOldest:
		return "drop-oldest"
	}
	return fmt.Sprintf("FullPolicy(%d)", int(p))
}

// Defaults for Options.
const (
	DefaultSyncInterval = 200 * time.Millisecond
	DefaultMaxBytes     = 1 << 30
	DefaultSegmentSize  = 64 << 20
)

// Options configure a Queue. Zero values take the defaults.
type Options struct {
	Dir          string        // the queue directory, created if missing
	Sync         SyncPolicy    // when to fsync (default SyncInterval)
	SyncInterval time.Duration // fsync period for SyncInterval (default 200ms)
	MaxBytes     int64         // bound on unacknowledged bytes on disk (default 1 GiB); acknowledged bytes wait for their segment to be deleted, so the directory may hold up to a segment more
	Full         FullPolicy    // what Append does when MaxBytes is reached (default FullBlock)
	SegmentSize  int64         // roll to a new segment file after this many bytes (default 64 MiB)
	Logger       *slog.Logger  // default slog.Default()
}

// Entry is one appended entry: count records starting at FirstSeq.
type Entry struct {
	FirstSeq uint64
	Count    uint32
	Payload  []byte // a private copy: the caller may keep and modify it
}

// Stats are a Queue's counters. Appended and dropped counts and Syncs are
// since Open; the rest describe the queue as it stands.
type Stats struct {
	AppendedEntries, AppendedRecords uint64
	AckedSeq                         uint64 // highest acknowledged seq
	LastSeq                          uint64 // highest assigned seq
	PendingBytes                     int64  // unacknowledged bytes on disk (frames, headers excluded)
	PendingRecords                   uint64 // records neither acknowledged nor dropped
	DroppedEntries, DroppedRecords   uint64 // by FullDropOldest
	RecoveredBytes                   int64  // torn or corrupt bytes discarded at Open
	Syncs                            uint64 // fsync rounds
	Segments                         int    // segment files
	Corrupt                          uint64 // damaged frames met in earlier segments (each loses the rest of its segment)
}

// segment is one segment file.
type segment struct {
	first   uint64
	path    string
	size    int64    // header and complete frames; grows while active
	f       *os.File // write handle: while active, and after until fsynced
	deleted bool     // removed (acknowledged or dropped)
	corrupt bool     // a damaged frame in it was reported
}

// pos is a position in the queue: the start of a frame, or the end of the
// data.
type pos struct {
	seg *segment // nil: there are no segments
	off int64
	seq uint64 // first seq of the frame at off, or the next seq to assign
}

func startOf(s *segment) pos { return pos{s, segHeaderLen, s.first} }

// Queue is a durable, bounded FIFO of entries in a directory. Its methods
// are safe for concurrent use.
type Queue struct {
	opts Options
	log  *slog.Logger
	lock *dirlock.Lock

	// ackMu serialises Ack, Close's last word and ack file writes.
	ackMu     sync.Mutex
	ackScan   scanner
	persisted ackState // what the ack file holds

	stop chan struct{}
	kick chan struct{} // a segment was rolled: fsync it soon
	wg   sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	closedCh chan struct{}
	segs     []*segment // ordered by first seq
	active   *segment   // the last segment, open for appending; nil: roll on the next Append
	lastSeq  uint64
	acked    uint64
	floor    uint64 // every record <= floor is acknowledged or dropped
	fc       pos    // first frame with a record > floor (or the end)
	pending  int64  // frame bytes from fc to the end
	wbuf     []byte
	dropScan scanner
	broken   error // a failed write or fsync: the queue is unusable
	dataCh   chan struct{}
	roomCh   chan struct{}
	blocked  int // Appends waiting for room

	// Group commit: endPos counts the frame bytes appended since Open;
	// every byte before syncedPos is durable.
	endPos, syncedPos uint64
	toSync            []*segment // rolled, not fsynced yet
	syncing           bool       // a sync round is running
	syncDone          chan struct{}
	filesClosed       bool

	appendedEntries, appendedRecords uint64
	droppedEntries, droppedRecords   uint64
	recoveredBytes                   int64
	syncs, corrupt                   uint64

	warnEntries, warnRecords uint64 // dropped since the last warning
	lastWarn                 time.Time
	warnTimer                *time.Timer
}

// testHookSync, when set, runs at the start of each group-commit round.
var testHookSync func()

// Open opens (creating if needed) the queue in opts.Dir. The last segment is
// checked and cut after its last intact frame; foreign files in the
// directory are an error, and so is a directory another process has open.
func Open(opts Options) (*Queue, error) {
	if opts.Dir == "" {
		return nil, errors.New("ft queue: no directory")
	}
	if opts.Sync < SyncInterval || opts.Sync > SyncNever {
		return nil, fmt.Errorf("ft queue: bad sync policy %d", opts.Sync)
	}
	if opts.Full < FullBlock || opts.Full > FullDropOldest {
		return nil, fmt.Errorf("ft queue: bad full policy %d", opts.Full)
	}
	if opts.SyncInterval < 0 || opts.MaxBytes < 0 || opts.SegmentSize < 0 {
		return nil, errors.New("ft queue: negative SyncInterval, MaxBytes or SegmentSize")
	}
	if opts.SyncInterval == 0 {
		opts.SyncInterval = DefaultSyncInterval
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.SegmentSize == 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("ft queue: %w", err)
	}
	lock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	q := &Queue{
		opts:     opts,
		log:      opts.Logger,
		lock:     lock,
		stop:     make(chan struct{}),
		kick:     make(chan struct{}, 1),
		closedCh: make(chan struct{}),
	}
	q.ackScan.log, q.dropScan.log = q.log, q.log
	if err := q.load(); err != nil {
		q.closeFiles()
		lock.Release()
		return nil, err
	}
	q.wg.Add(1)
	go q.background()
	return q, nil
}

// load reads the directory: segments, the ack file; recovers the last
// segment; finds the first unacknowledged frame; removes what is wholly
// acknowledged or empty.
func (q *Queue) load() error {
	dir := q.opts.Dir
	des, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("ft queue: %w", err)
	}
	for _, de := range des {
		name := de.Name()
		switch name {
		case lockFileName, ackFileName:
			continue
		case ackTmpName:
			os.Remove(filepath.Join(dir, name))
			continue
		}
		first, ok := parseSegName(name)
		if !ok || !de.Type().IsRegular() {
			return fmt.Errorf("ft queue: foreign file %s in the queue directory", filepath.Join(dir, name))
		}
		q.segs = append(q.segs, &segment{first: first, path: filepath.Join(dir, name)})
	}
	sort.Slice(q.segs, func(i, j int) bool { return q.segs[i].first < q.segs[j].first })
	st, err := readAck(dir)
	if err != nil {
		return err
	}
	q.acked, q.floor = st.acked, max(st.floor, st.acked)
	nextSeq := max(st.last, st.floor, st.acked) + 1

	// Headers. A segment with nothing but a header (or the torn beginning of
	// one, at the tail) goes, its name still telling the next seq.
	var remove []*segment
	var keep []*segment
	for i, s := range q.segs {
		fi, err := os.Stat(s.path)
		if err != nil {
			return fmt.Errorf("ft queue: %w", err)
		}
		s.size = fi.Size()
		f, err := os.Open(s.path)
		if err != nil {
			return fmt.Errorf("ft queue: %w", err)
		}
		torn, err := checkHeader(f, s.first, s.size)
		f.Close()
		if err != nil {
			return fmt.Errorf("ft queue: %s: %w", s.path, err)
		}
		if torn && i < len(q.segs)-1 {
			return fmt.Errorf("ft queue: %s: not a kura queue segment (%d bytes)", s.path, s.size)
		}
		if torn {
			q.recoveredBytes += s.size
			q.log.Warn("ft queue: discarding a torn segment header", "file", s.path, "offset", 0, "bytes", s.size)
		}
		if torn || s.size == segHeaderLen {
			nextSeq = max(nextSeq, s.first)
			remove = append(remove, s)
			continue
		}
		keep = append(keep, s)
	}
	q.segs = keep

	// Recover the last segment; if nothing intact remains, the one before
	// becomes the last.
	var lastNext uint64
	for len(q.segs) > 0 {
		s := q.segs[len(q.segs)-1]
		f, err := os.OpenFile(s.path, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("ft queue: %w", err)
		}
		end, next, why := recoverSegment(f, s.first, s.size)
		if end < s.size {
			if err := f.Truncate(end); err != nil {
				f.Close()
				return fmt.Errorf("ft queue: %s: cut the torn tail: %w", s.path, err)
			}
			q.recoveredBytes += s.size - end
			q.log.Warn("ft queue: discarding a torn or corrupt segment tail", "file", s.path, "offset", end, "bytes", s.size-end, "why", why)
			s.size = end
		}
		nextSeq = max(nextSeq, next)
		lastNext = next
		if end > segHeaderLen {
			s.f = f
			break
		}
		f.Close()
		remove = append(remove, s)
		q.segs = q.segs[:len(q.segs)-1]
	}
	q.lastSeq = nextSeq - 1

	// The last segment stays open for appending if the next entry follows on
	// (nothing after it was lost) and it has room.
	if n := len(q.segs); n > 0 {
		s := q.segs[n-1]
		if lastNext == nextSeq && s.size < q.opts.SegmentSize {
			q.active = s
		} else {
			s.f.Close()
			s.f = nil
		}
	}

	// The first frame with a record above the floor.
	if len(q.segs) == 0 {
		q.fc = pos{seq: nextSeq}
	} else {
		snap := q.snapLocked(0)
		floor := q.floor
		var sc scanner
		sc.log = q.log
		p, err := sc.walk(startOf(q.segs[0]), snap,
			func(fi frameInfo, _ int64) bool { return fi.last() <= floor },
			func(nextFirst uint64) bool { return nextFirst-1 <= floor })
		sc.release()
		if err != nil {
			return fmt.Errorf("ft queue: %w", err)
		}
		q.fc = p
		q.normFCLocked()
		q.pending = q.bytesToEndLocked(q.fc)
		remove = append(remove, q.gcLocked()...)
		if q.fc.off >= q.fc.seg.size {
			// Every entry is acknowledged (or dropped): drained.
			remove = append(remove, q.segs...)
			for _, s := range q.segs {
				s.deleted = true
			}
			q.segs, q.active, q.fc, q.pending = nil, nil, pos{seq: nextSeq}, 0
		}
	}
	// Persist the last seq before removing any segment that told it.
	fileSt := st
	st = q.ackStateLocked()
	if st != fileSt || len(remove) > 0 {
		if err := writeAck(dir, st, true); err != nil {
			return err
		}
	}
	q.persisted = st
	for _, s := range remove {
		if s.f != nil {
			s.f.Close()
			s.f = nil
		}
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("ft queue: %w", err)
		}
	}
	return nil
}

// closeFiles closes the write handles of every segment.
func (q *Queue) closeFiles() {
	for _, s := range append(q.toSync, q.segs...) {
		if s.f != nil {
			s.f.Close()
			s.f = nil
		}
	}
	q.toSync = nil
}

// segIndex returns s's index in q.segs, or -1.
func (q *Queue) segIndex(s *segment) int {
	i := sort.Search(len(q.segs), func(i int) bool { return q.segs[i].first >= s.first })
	if i < len(q.segs) && q.segs[i] == s {
		return i
	}
	return -1
}

// snapLocked returns the segments from index i on with their sizes.
func (q *Queue) snapLocked(i int) []segSnap {
	snap := make([]segSnap, 0, len(q.segs)-i)
	for _, s := range q.segs[i:] {
		snap = append(snap, segSnap{s, s.size})
	}
	return snap
}

// normFCLocked moves fc off the end of a segment that has a successor.
func (q *Queue) normFCLocked() {
	if q.fc.seg == nil {
		if len(q.segs) > 0 {
			q.fc = startOf(q.segs[0])
		}
		return
	}
	for q.fc.off >= q.fc.seg.size {
		i := q.segIndex(q.fc.seg)
		if i+1 >= len(q.segs) {
			return
		}
		q.fc = startOf(q.segs[i+1])
	}
}

// bytesBetweenLocked returns the frame bytes from a to b (a <= b).
func (q *Queue) bytesBetweenLocked(a, b pos) int64 {
	if a.seg == nil || b.seg == nil {
		return 0
	}
	if a.seg == b.seg {
		return b.off - a.off
	}
	i, j := q.segIndex(a.seg), q.segIndex(b.seg)
	n := a.seg.size - a.off
	for k := i + 1; k < j; k++ {
		n += q.segs[k].size - segHeaderLen
	}
	return n + b.off - segHeaderLen
}

// bytesToEndLocked returns the frame bytes from p to the end of the queue.
func (q *Queue) bytesToEndLocked(p pos) int64 {
	if p.seg == nil {
		return 0
	}
	last := q.segs[len(q.segs)-1]
	return q.bytesBetweenLocked(p, pos{last, last.size, q.lastSeq + 1})
}

// moveFCLocked moves fc forward to p (if p is ahead) and returns the
// segments that fell wholly behind it, already taken out of q.segs.
func (q *Queue) moveFCLocked(p pos) []*segment {
	if p.seg == nil || p.seq <= q.fc.seq {
		return nil
	}
	q.pending -= q.bytesBetweenLocked(q.fc, p)
	q.fc = p
	q.normFCLocked()
	if q.roomCh != nil {
		close(q.roomCh)
		q.roomCh = nil
	}
	return q.gcLocked()
}

// gcLocked takes the segments before fc's out of q.segs and marks them
// deleted; the caller removes their files.
func (q *Queue) gcLocked() []*segment {
	if q.fc.seg == nil {
		return nil
	}
	i := q.segIndex(q.fc.seg)
	if i <= 0 {
		return nil
	}
	gone := append([]*segment(nil), q.segs[:i]...)
	for _, s := range gone {
		s.deleted = true
	}
	q.segs = append(q.segs[:0:0], q.segs[i:]...)
	return gone
}

// removeFiles removes deleted segments' files, logging failures.
func (q *Queue) removeFiles(segs []*segment) {
	for _, s := range segs {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			q.log.Error("ft queue: cannot remove a segment", "file", s.path, "err", err)
		}
	}
}

func (q *Queue) ackStateLocked() ackState {
	return ackState{acked: q.acked, floor: q.floor, last: q.lastSeq}
}

// Append writes payload as one entry of count records (count >= 1,
// len(payload) >= 1) and returns its first sequence number once it is
// durable as the SyncPolicy says. When MaxBytes is reached it waits (until
// ctx is done) or drops the oldest entries, as the FullPolicy says. The
// queue keeps its own copy of payload. With SyncAlways, a failed fsync is
// returned as an error although the entry was written.
func (q *Queue) Append(ctx context.Context, count uint32, payload []byte) (uint64, error) {
	if count == 0 || len(payload) == 0 {
		return 0, errors.New("ft queue: an entry needs at least one record and one byte")
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := int64(frameHeaderLen + len(payload))
	if len(payload) > maxPayload || n > q.opts.MaxBytes {
		return 0, fmt.Errorf("ft queue: entry of %d bytes: %w (%d)", len(payload), ErrTooLarge, q.opts.MaxBytes)
	}
	var warn func() // a drop warning, logged once q.mu is released
	defer func() {
		if warn != nil {
			warn()
		}
	}()
	q.mu.Lock()
	for {
		if q.closed {
			q.mu.Unlock()
			return 0, ErrClosed
		}
		if q.broken != nil {
			err := q.broken
			q.mu.Unlock()
			return 0, err
		}
		if q.pending+n <= q.opts.MaxBytes {
			break
		}
		if q.opts.Full == FullDropOldest {
			if e, r := q.dropLocked(n); e+r > 0 {
				warn = q.noteDropLocked(e, r)
			}
			break
		}
		if q.roomCh == nil {
			q.roomCh = make(chan struct{})
		}
		ch := q.roomCh
		q.blocked++
		q.mu.Unlock()
		var err error
		select {
		case <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		case <-q.closedCh:
			err = ErrClosed
		}
		q.mu.Lock()
		q.blocked--
		if err != nil {
			q.mu.Unlock()
			return 0, err
		}
	}
	if q.lastSeq+uint64(count) < q.lastSeq {
		q.mu.Unlock()
		return 0, errors.New("ft queue: sequence numbers exhausted")
	}
	if q.active == nil || (q.active.size > segHeaderLen && q.active.size+n > q.opts.SegmentSize) {
		if err := q.rollLocked(); err != nil {
			q.mu.Unlock()
			return 0, err
		}
	}
	seq := q.lastSeq + 1
	if int64(cap(q.wbuf)) < n {
		q.wbuf = make([]byte, max(n, 4096))
	}
	buf := q.wbuf[:n]
	putFrame(buf, seq, count, payload)
	s := q.active
	if _, err := s.f.WriteAt(buf, s.size); err != nil {
		if terr := s.f.Truncate(s.size); terr != nil {
			q.broken = fmt.Errorf("ft queue: %s: write failed (%v) and could not be undone: %w", s.path, err, terr)
		}
		q.mu.Unlock()
		return 0, fmt.Errorf("ft queue: %s: %w", s.path, err)
	}
	if cap(q.wbuf) > 1<<20 {
		q.wbuf = nil
	}
	s.size += n
	q.lastSeq += uint64(count)
	q.pending += n
	q.endPos += uint64(n)
	q.appendedEntries++
	q.appendedRecords += uint64(count)
	if q.dataCh != nil {
		close(q.dataCh)
		q.dataCh = nil
	}
	wpos := q.endPos
	q.mu.Unlock()
	if q.opts.Sync == SyncAlways {
		if err := q.syncTo(wpos); err != nil {
			return 0, err
		}
	}
	return seq, nil
}

// rollLocked starts a new segment named by the next seq. Its header and
// directory entry are fsynced at once (the name records the next seq); the
// old segment is fsynced in the background, or by the next group commit.
func (q *Queue) rollLocked() error {
	first := q.lastSeq + 1
	path := filepath.Join(q.opts.Dir, segName(first))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("ft queue: new segment: %w", err)
	}
	_, err = f.Write(segHeader(first))
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = syncDir(q.opts.Dir)
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("ft queue: new segment %s: %w", path, err)
	}
	s := &segment{first: first, path: path, size: segHeaderLen, f: f}
	if old := q.active; old != nil {
		q.toSync = append(q.toSync, old)
		select {
		case q.kick <- struct{}{}:
		default:
		}
	}
	q.segs = append(q.segs, s)
	q.active = s
	q.normFCLocked()
	q.removeFiles(q.gcLocked())
	return nil
}

// dropLocked drops the oldest entries until need more bytes fit, and
// returns how many entries and records it dropped.
func (q *Queue) dropLocked(need int64) (entries, records uint64) {
	if q.fc.seg == nil {
		return 0, 0
	}
	floor0, pending, limit := q.floor, q.pending, q.opts.MaxBytes
	p, err := q.dropScan.walk(q.fc, q.snapLocked(q.segIndex(q.fc.seg)),
		func(fi frameInfo, freed int64) bool {
			if pending-freed+need <= limit {
				return false
			}
			if fi.last() > floor0 {
				entries++
			}
			return true
		}, nil)
	q.dropScan.release()
	if err != nil {
		q.log.Error("ft queue: cannot drop the oldest entries", "err", err)
	}
	if p.seq-1 > q.floor {
		records = p.seq - 1 - q.floor
		q.floor = p.seq - 1
	}
	q.removeFiles(q.moveFCLocked(p))
	q.droppedEntries += entries
	q.droppedRecords += records
	return entries, records
}

// noteDropLocked counts dropped entries for the warning, which goes out at
// most once a second; it returns the logging to do after unlocking.
func (q *Queue) noteDropLocked(entries, records uint64) func() {
	q.warnEntries += entries
	q.warnRecords += records
	now := time.Now()
	if wait := time.Second - now.Sub(q.lastWarn); wait > 0 {
		if q.warnTimer == nil {
			q.warnTimer = time.AfterFunc(wait, q.flushDropWarn)
		}
		return nil
	}
	return q.takeDropWarnLocked(now)
}

func (q *Queue) takeDropWarnLocked(now time.Time) func() {
	e, r := q.warnEntries, q.warnRecords
	q.warnEntries, q.warnRecords, q.lastWarn = 0, 0, now
	if e+r == 0 {
		return nil
	}
	total := q.droppedEntries
	return func() {
		q.log.Warn("ft queue full: dropped the oldest entries", "dir", q.opts.Dir,
			"entries", e, "records", r, "total_dropped_entries", total)
	}
}

func (q *Queue) flushDropWarn() {
	q.mu.Lock()
	q.warnTimer = nil
	warn := q.takeDropWarnLocked(time.Now())
	q.mu.Unlock()
	if warn != nil {
		warn()
	}
}

// syncTo returns once every frame byte appended before target is durable.
// Callers arriving while an fsync runs wait for it and then share the next
// one (group commit).
func (q *Queue) syncTo(target uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.syncedPos < target {
		if q.broken != nil {
			return q.broken
		}
		if q.syncing {
			q.waitSyncLocked()
			continue
		}
		if q.filesClosed {
			return ErrClosed
		}
		if err := q.syncRoundLocked(true); err != nil {
			return err
		}
	}
	return nil
}

func (q *Queue) waitSyncLocked() {
	ch := q.syncDone
	q.mu.Unlock()
	<-ch
	q.mu.Lock()
}

// syncRoundLocked runs one sync round: it fsyncs the rolled segments waiting
// for it and, if withActive, the active one. q.mu is held on entry and exit
// and released during the fsyncs; no other round runs meanwhile.
func (q *Queue) syncRoundLocked(withActive bool) error {
	q.syncing = true
	q.syncDone = make(chan struct{})
	if withActive && testHookSync != nil {
		q.mu.Unlock()
		testHookSync()
		q.mu.Lock()
	}
	target := q.endPos
	rolled := q.toSync
	q.toSync = nil
	var files []*os.File
	for _, s := range rolled {
		files = append(files, s.f)
		s.f = nil
	}
	var act *os.File
	if withActive && q.active != nil {
		act = q.active.f
	}
	q.mu.Unlock()
	var err error
	for _, f := range files {
		if e := f.Sync(); e != nil && err == nil {
			err = fmt.Errorf("ft queue: fsync %s: %w", f.Name(), e)
		}
		f.Close()
	}
	if act != nil {
		if e := act.Sync(); e != nil && err == nil {
			err = fmt.Errorf("ft queue: fsync %s: %w", act.Name(), e)
		}
	}
	q.mu.Lock()
	q.syncing = false
	close(q.syncDone)
	if len(files) > 0 || act != nil {
		q.syncs++
	}
	if err != nil {
		// After a failed fsync the state of the page cache is unknown.
		q.broken = err
		return err
	}
	if withActive {
		q.syncedPos = max(q.syncedPos, target)
	}
	return nil
}

// background fsyncs (SyncInterval), fsyncs rolled segments, and persists
// drops in the ack file.
func (q *Queue) background() {
	defer q.wg.Done()
	var tick <-chan time.Time
	if q.opts.Sync == SyncInterval {
		t := time.NewTicker(q.opts.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	house := time.NewTicker(time.Second)
	defer house.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-tick:
			q.mu.Lock()
			target, dirty := q.endPos, q.endPos > q.syncedPos && q.broken == nil
			q.mu.Unlock()
			if dirty {
				if err := q.syncTo(target); err != nil && !errors.Is(err, ErrClosed) {
					q.log.Error("ft queue: fsync failed", "dir", q.opts.Dir, "err", err)
				}
			}
		case <-q.kick:
			q.mu.Lock()
			for q.syncing {
				q.waitSyncLocked()
			}
			if len(q.toSync) > 0 && !q.filesClosed && q.broken == nil {
				if err := q.syncRoundLocked(q.opts.Sync == SyncInterval); err != nil {
					q.log.Error("ft queue: fsync failed", "dir", q.opts.Dir, "err", err)
				}
			}
			q.mu.Unlock()
		case <-house.C:
			q.ackMu.Lock()
			if err := q.persistAckLocked(false); err != nil {
				q.log.Error("ft queue: cannot persist the ack file", "err", err)
			}
			q.ackMu.Unlock()
		}
	}
}

// persistAckLocked writes the ack file if it is stale (q.ackMu held).
func (q *Queue) persistAckLocked(durable bool) error {
	q.mu.Lock()
	st := q.ackStateLocked()
	q.mu.Unlock()
	if st == q.persisted && !durable {
		return nil
	}
	if err := writeAck(q.opts.Dir, st, durable); err != nil {
		return err
	}
	q.persisted = st
	return nil
}

// Ack records that every record with seq <= seq has been delivered: the
// room of the entries wholly at or below it is freed (waking blocked
// Appends) and segments wholly at or below it are deleted. Smaller or equal
// acks than one already made are ignored. The acked seq is persisted in the
// ack file (written atomically, not fsynced, at the latest a second later:
// after a crash some acknowledged records may be sent again, which the
// receiver drops as duplicates). Acknowledging a seq that was never assigned is an error.
func (q *Queue) Ack(seq uint64) error {
	q.ackMu.Lock()
	defer q.ackMu.Unlock()
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	if seq <= q.acked {
		q.mu.Unlock()
		return nil
	}
	if seq > q.lastSeq {
		last := q.lastSeq
		q.mu.Unlock()
		return fmt.Errorf("ft queue: ack of %d, beyond the last sequence number %d", seq, last)
	}
	q.acked = seq
	q.floor = max(q.floor, seq)
	q.mu.Unlock()
	for {
		q.mu.Lock()
		if q.fc.seg == nil || q.fc.seq > seq {
			q.mu.Unlock()
			break
		}
		// Find the first frame with a record above seq, reading outside
		// the lock: the frames before the end of the snapshot do not change.
		start, snap := q.fc, q.snapLocked(q.segIndex(q.fc.seg))
		q.mu.Unlock()
		p, err := q.ackScan.walk(start, snap,
			func(fi frameInfo, _ int64) bool { return fi.last() <= seq },
			func(nextFirst uint64) bool { return nextFirst-1 <= seq })
		q.ackScan.release()
		q.mu.Lock()
		if err != nil {
			moved := q.fc.seq > start.seq
			q.mu.Unlock()
			if moved {
				// A segment went from under the scan (dropped): start again
				// from where the queue is now.
				continue
			}
			return fmt.Errorf("ft queue: ack %d: %w", seq, err)
		}
		gone := q.moveFCLocked(p)
		q.mu.Unlock()
		if len(gone) > 0 {
			// The ack file must hold the last sequence number before the
			// segments that held it go, so that no number is reused after a
			// restart. Otherwise the housekeeping tick persists it: a stale
			// ack file only makes the sender resend records the receiver
			// drops as duplicates.
			if err := q.persistAckLocked(false); err != nil {
				return err
			}
		}
		q.removeFiles(gone)
		break
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	var pendingRecords uint64
	if q.lastSeq > q.floor {
		pendingRecords = q.lastSeq - q.floor
	}
	return Stats{
		AppendedEntries: q.appendedEntries,
		AppendedRecords: q.appendedRecords,
		AckedSeq:        q.acked,
		LastSeq:         q.lastSeq,
		PendingBytes:    q.pending,
		PendingRecords:  pendingRecords,
		DroppedEntries:  q.droppedEntries,
		DroppedRecords:  q.droppedRecords,
		RecoveredBytes:  q.recoveredBytes,
		Syncs:           q.syncs,
		Segments:        len(q.segs),
		Corrupt:         q.corrupt,
	}
}

// Sync fsyncs every entry appended so far.
func (q *Queue) Sync() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	target := q.endPos
	q.mu.Unlock()
	return q.syncTo(target)
}

// Close fsyncs, stops the background syncer and closes the files; if every
// record was acknowledged or dropped, the segments are deleted (the ack file,
// fsynced first, keeps the last seq). Appends and Nexts waiting are woken with ErrClosed,
// and later calls return it.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	q.closed = true
	close(q.closedCh)
	if q.warnTimer != nil {
		q.warnTimer.Stop()
		q.warnTimer = nil
	}
	warn := q.takeDropWarnLocked(time.Now())
	q.mu.Unlock()
	if warn != nil {
		warn()
	}
	close(q.stop)
	q.wg.Wait()

	var errs []error
	q.ackMu.Lock()
	q.mu.Lock()
	for q.syncing {
		q.waitSyncLocked()
	}
	if q.broken == nil {
		if err := q.syncRoundLocked(true); err != nil {
			errs = append(errs, err)
		}
	}
	q.filesClosed = true
	q.closeFiles()
	q.active = nil
	var gone []*segment
	if q.floor >= q.lastSeq {
		gone = q.segs
		for _, s := range gone {
			s.deleted = true
		}
		q.segs, q.fc, q.pending = nil, pos{seq: q.lastSeq + 1}, 0
	}
	q.mu.Unlock()
	// Durably before deleting the segments that hold the last seq; else the
	// fsynced segments hold it.
	if err := q.persistAckLocked(len(gone) > 0); err != nil {
		errs = append(errs, err)
	}
	q.ackMu.Unlock()
	q.removeFiles(gone)
	if len(gone) > 0 {
		if err := syncDir(q.opts.Dir); err != nil {
			errs = append(errs, fmt.Errorf("ft queue: %w", err))
		}
	}
	q.ackScan.release()
	if err := q.lock.Release(); err != nil {
		errs = append(errs, fmt.Errorf("ft queue: %w", err))
	}
	return errors.Join(errs...)
}
