package queue

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// guard is the deadline of every wait in these tests: a failure guard, not
// a timing assertion.
const guard = 20 * time.Second

// logBuf collects a queue's log lines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testLogger(t testing.TB) (*slog.Logger, *logBuf) {
	lb := &logBuf{}
	return slog.New(slog.NewTextHandler(lb, nil)), lb
}

func mustOpen(t testing.TB, opts Options) *Queue {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger, _ = testLogger(t)
	}
	q, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return q
}

func ctxGuard(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	t.Cleanup(cancel)
	return ctx
}

// payloadFor is the payload of the i-th test entry.
func payloadFor(i int) []byte {
	return []byte(fmt.Sprintf("entry-%d-%s", i, strings.Repeat("x", i%37)))
}

func countFor(i int) uint32 { return uint32(i%3 + 1) }

// appendN appends entries i = from..from+n-1 and returns them as a reader
// should see them.
func appendN(t testing.TB, q *Queue, from, n int) []Entry {
	t.Helper()
	ctx := ctxGuard(t)
	var out []Entry
	for i := from; i < from+n; i++ {
		seq, err := q.Append(ctx, countFor(i), payloadFor(i))
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		out = append(out, Entry{FirstSeq: seq, Count: countFor(i), Payload: payloadFor(i)})
	}
	return out
}

// readN reads n entries.
func readN(t testing.TB, r *Reader, n int) []Entry {
	t.Helper()
	ctx := ctxGuard(t)
	var out []Entry
	for len(out) < n {
		e, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("Next after %d entries: %v", len(out), err)
		}
		out = append(out, e)
	}
	return out
}

// readAll reads every entry after after, up to the queue's last seq.
func readAll(t testing.TB, q *Queue, after uint64) []Entry {
	t.Helper()
	last := q.Stats().LastSeq
	r := q.NewReader(after)
	defer r.Close()
	ctx := ctxGuard(t)
	var out []Entry
	q.mu.Lock()
	floor := q.floor
	q.mu.Unlock()
	if last <= max(after, floor) {
		return nil
	}
	for {
		e, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("Next after %d entries: %v", len(out), err)
		}
		out = append(out, e)
		if e.FirstSeq+uint64(e.Count)-1 >= last {
			return out
		}
	}
}

func sameEntries(t testing.TB, got, want []Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.FirstSeq != w.FirstSeq || g.Count != w.Count || !bytes.Equal(g.Payload, w.Payload) {
			t.Fatalf("entry %d: got seq %d count %d %q, want seq %d count %d %q",
				i, g.FirstSeq, g.Count, g.Payload, w.FirstSeq, w.Count, w.Payload)
		}
	}
}

// checkSeqs checks that entries' seqs start at first and are consecutive.
func checkSeqs(t testing.TB, es []Entry, first uint64) {
	t.Helper()
	next := first
	for i, e := range es {
		if e.FirstSeq != next {
			t.Fatalf("entry %d: seq %d, want %d", i, e.FirstSeq, next)
		}
		next += uint64(e.Count)
	}
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func lastSegFile(t testing.TB, dir string) string {
	t.Helper()
	segs := segFiles(t, dir)
	if len(segs) == 0 {
		t.Fatal("no segment files")
	}
	return segs[len(segs)-1]
}

func TestParsePolicies(t *testing.T) {
	for _, p := range []SyncPolicy{SyncInterval, SyncAlways, SyncNever} {
		got, err := ParseSyncPolicy(p.String())
		if err != nil || got != p {
			t.Errorf("ParseSyncPolicy(%q) = %v, %v", p.String(), got, err)
		}
	}
	for _, p := range []FullPolicy{FullBlock, FullDropOldest} {
		got, err := ParseFullPolicy(p.String())
		if err != nil || got != p {
			t.Errorf("ParseFullPolicy(%q) = %v, %v", p.String(), got, err)
		}
	}
	if _, err := ParseSyncPolicy("sometimes"); err == nil || !strings.Contains(err.Error(), `"sometimes"`) {
		t.Errorf("ParseSyncPolicy(sometimes): %v", err)
	}
	if _, err := ParseFullPolicy("explode"); err == nil || !strings.Contains(err.Error(), `"explode"`) {
		t.Errorf("ParseFullPolicy(explode): %v", err)
	}
}

func TestAppendReadAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	q := mustOpen(t, Options{Dir: dir, SegmentSize: 512})
	defer q.Close()
	want := appendN(t, q, 0, 200)
	checkSeqs(t, want, 1)
	st := q.Stats()
	if st.Segments < 5 || len(segFiles(t, dir)) != st.Segments {
		t.Fatalf("Segments = %d, files %d: want several", st.Segments, len(segFiles(t, dir)))
	}
	if st.AppendedEntries != 200 || st.LastSeq != want[199].FirstSeq+uint64(want[199].Count)-1 || st.AppendedRecords != st.LastSeq {
		t.Fatalf("stats %+v", st)
	}
	sameEntries(t, readAll(t, q, 0), want)

	// A reader after a given seq starts at the entry holding the next one,
	// even mid-entry.
	for _, k := range []int{0, 1, 57, 120, 199} {
		e := want[k]
		for _, after := range []uint64{e.FirstSeq - 1, e.FirstSeq + uint64(e.Count) - 2} {
			sameEntries(t, readAll(t, q, after), want[k:])
		}
	}
	if got := readAll(t, q, st.LastSeq); len(got) != 0 {
		t.Fatalf("reader after the last seq got %d entries", len(got))
	}

	// A reader at the end waits for the next append.
	r := q.NewReader(st.LastSeq)
	defer r.Close()
	got := make(chan Entry, 1)
	go func() {
		e, err := r.Next(ctxGuard(t))
		if err != nil {
			t.Error(err)
		}
		got <- e
	}()
	more := appendN(t, q, 200, 1)
	sameEntries(t, []Entry{<-got}, more)

	// And after a reopen everything is still there.
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = mustOpen(t, Options{Dir: dir, SegmentSize: 512})
	defer q.Close()
	sameEntries(t, readAll(t, q, 0), append(want, more...))
	next := appendN(t, q, 201, 1)
	checkSeqs(t, next, st.LastSeq+uint64(more[0].Count)+1)
}

func TestPayloadIsCopied(t *testing.T) {
	q := mustOpen(t, Options{Dir: t.TempDir()})
	defer q.Close()
	p := []byte("hello")
	if _, err := q.Append(ctxGuard(t), 1, p); err != nil {
		t.Fatal(err)
	}
	p[0] = 'j'
	r := q.NewReader(0)
	defer r.Close()
	e := readN(t, r, 1)[0]
	if string(e.Payload) != "hello" {
		t.Fatalf("payload %q", e.Payload)
	}
	if _, err := q.Append(ctxGuard(t), 0, p); err == nil {
		t.Fatal("Append of zero records succeeded")
	}
	if _, err := q.Append(ctxGuard(t), 1, nil); err == nil {
		t.Fatal("Append of no bytes succeeded")
	}
}

func TestAckDeletesSegmentsAndPersists(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, SegmentSize: 512}
	q := mustOpen(t, opts)
	want := appendN(t, q, 0, 200)
	files := len(segFiles(t, dir))
	before := q.Stats()

	// Ack mid-entry: that entry stays.
	mid := want[100]
	ackSeq := mid.FirstSeq + uint64(mid.Count) - 1
	if mid.Count > 1 {
		ackSeq--
	} else {
		mid = want[101]
		ackSeq = mid.FirstSeq - 1
	}
	if err := q.Ack(ackSeq); err != nil {
		t.Fatal(err)
	}
	if err := q.Ack(ackSeq - 5); err != nil { // older acks are ignored
		t.Fatal(err)
	}
	st := q.Stats()
	if st.AckedSeq != ackSeq {
		t.Fatalf("AckedSeq %d, want %d", st.AckedSeq, ackSeq)
	}
	if n := len(segFiles(t, dir)); n >= files || n != st.Segments {
		t.Fatalf("%d segment files after the ack (%d before, Stats says %d)", n, files, st.Segments)
	}
	if st.PendingBytes >= before.PendingBytes || st.PendingRecords != st.LastSeq-ackSeq {
		t.Fatalf("pending %d bytes %d records, before %d bytes", st.PendingBytes, st.PendingRecords, before.PendingBytes)
	}
	// A reader from the start skips what is acknowledged.
	k := 0
	for want[k].FirstSeq+uint64(want[k].Count)-1 <= ackSeq {
		k++
	}
	sameEntries(t, readAll(t, q, 0), want[k:])
	if err := q.Ack(st.LastSeq + 1); err == nil {
		t.Fatal("ack beyond the last seq succeeded")
	}

	// Persisted: a reopen (even without Close: the ack file is written at
	// once) keeps the ack.
	b, err := os.ReadFile(filepath.Join(dir, ackFileName))
	if err != nil {
		t.Fatal(err)
	}
	if a, err := parseAck(b); err != nil || a.acked != ackSeq {
		t.Fatalf("ack file %q: %+v %v", b, a, err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = mustOpen(t, opts)
	defer q.Close()
	st = q.Stats()
	if st.AckedSeq != ackSeq || st.LastSeq != before.LastSeq {
		t.Fatalf("after reopen: %+v", st)
	}
	sameEntries(t, readAll(t, q, 0), want[k:])
	sameEntries(t, readAll(t, q, ackSeq), want[k:])

	// Ack everything: all but the active segment go; pending is nothing.
	if err := q.Ack(st.LastSeq); err != nil {
		t.Fatal(err)
	}
	st = q.Stats()
	if st.PendingBytes != 0 || st.PendingRecords != 0 || st.Segments > 1 {
		t.Fatalf("after acking everything: %+v", st)
	}
	if got := readAll(t, q, 0); len(got) != 0 {
		t.Fatalf("read %d entries after acking everything", len(got))
	}
}

func TestSeqsContinueAfterDrain(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, SegmentSize: 512}
	q := mustOpen(t, opts)
	want := appendN(t, q, 0, 50)
	last := q.Stats().LastSeq
	if err := q.Ack(last); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if f := segFiles(t, dir); len(f) != 0 {
		t.Fatalf("segments left after draining: %v", f)
	}
	for round := range 3 {
		q = mustOpen(t, opts)
		st := q.Stats()
		if st.LastSeq != last || st.AckedSeq != last || st.Segments != 0 || st.PendingBytes != 0 {
			t.Fatalf("round %d: reopened drained queue: %+v", round, st)
		}
		more := appendN(t, q, 50+round, 1)
		checkSeqs(t, more, last+1)
		sameEntries(t, readAll(t, q, 0), more)
		last = q.Stats().LastSeq
		if round < 2 {
			if err := q.Ack(last); err != nil {
				t.Fatal(err)
			}
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// The last round left its entry unacknowledged.
	q = mustOpen(t, opts)
	defer q.Close()
	if got := readAll(t, q, 0); len(got) != 1 || got[0].FirstSeq != last-uint64(got[0].Count)+1 {
		t.Fatalf("got %+v", got)
	}
	_ = want
}

func TestGroupCommit(t *testing.T) {
	const goroutines, each = 8, 200
	run := func(t *testing.T) Stats {
		dir := t.TempDir()
		q := mustOpen(t, Options{Dir: dir, Sync: SyncAlways, SegmentSize: 64 << 10})
		var wg sync.WaitGroup
		seqs := make([][]uint64, goroutines)
		for g := range goroutines {
			wg.Go(func() {
				for i := range each {
					seq, err := q.Append(context.Background(), 1, []byte(fmt.Sprintf("g%d-%d", g, i)))
					if err != nil {
						t.Error(err)
						return
					}
					seqs[g] = append(seqs[g], seq)
				}
			})
		}
		wg.Wait()
		st := q.Stats()
		// Correctness: every seq once, each goroutine's in order, every
		// entry readable with its payload.
		seen := map[uint64]bool{}
		for g := range goroutines {
			for i, s := range seqs[g] {
				if seen[s] || (i > 0 && s <= seqs[g][i-1]) {
					t.Fatalf("goroutine %d: seq %d repeated or out of order", g, s)
				}
				seen[s] = true
			}
		}
		es := readAll(t, q, 0)
		if len(es) != goroutines*each {
			t.Fatalf("read %d entries", len(es))
		}
		checkSeqs(t, es, 1)
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		return st
	}
	t.Run("natural", func(t *testing.T) {
		st := run(t)
		t.Logf("%d appends, %d fsync rounds (%.1f appends per fsync)", goroutines*each, st.Syncs, float64(goroutines*each)/float64(st.Syncs))
	})
	t.Run("held", func(t *testing.T) {
		// The first fsync round waits until every goroutine has written its
		// first entry, so it covers at least 8 appends: deterministically
		// fewer fsyncs than appends.
		var once sync.Once
		var q *Queue
		var qmu sync.Mutex
		testHookSync = func() {
			once.Do(func() {
				deadline := time.Now().Add(guard)
				for time.Now().Before(deadline) {
					qmu.Lock()
					qq := q
					qmu.Unlock()
					if qq != nil && qq.Stats().AppendedEntries >= goroutines {
						return
					}
					time.Sleep(time.Millisecond)
				}
			})
		}
		defer func() { testHookSync = nil }()
		dir := t.TempDir()
		qq := mustOpen(t, Options{Dir: dir, Sync: SyncAlways})
		qmu.Lock()
		q = qq
		qmu.Unlock()
		defer qq.Close()
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for i := range each {
					if _, err := qq.Append(context.Background(), 1, []byte(fmt.Sprintf("g%d-%d", g, i))); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		st := qq.Stats()
		if st.Syncs >= goroutines*each {
			t.Fatalf("%d fsync rounds for %d appends: no group commit", st.Syncs, goroutines*each)
		}
		t.Logf("%d appends, %d fsync rounds", goroutines*each, st.Syncs)
	})
}

func (q *Queue) blockedAppends() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.blocked
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFullBlock(t *testing.T) {
	const size = 100
	frame := int64(frameHeaderLen + size)
	payload := bytes.Repeat([]byte("p"), size)
	q := mustOpen(t, Options{Dir: t.TempDir(), MaxBytes: 5 * frame, SegmentSize: 2 * frame})
	defer q.Close()
	ctx := ctxGuard(t)
	for i := range 5 {
		if _, err := q.Append(ctx, 1, payload); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if st := q.Stats(); st.PendingBytes != 5*frame {
		t.Fatalf("PendingBytes %d, want %d", st.PendingBytes, 5*frame)
	}
	type result struct {
		seq uint64
		err error
	}
	done := make(chan result, 1)
	go func() {
		seq, err := q.Append(ctx, 1, payload)
		done <- result{seq, err}
	}()
	waitFor(t, "the append to block", func() bool { return q.blockedAppends() == 1 })
	select {
	case r := <-done:
		t.Fatalf("Append returned while the queue was full: %+v", r)
	default:
	}
	if err := q.Ack(1); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || r.seq != 6 {
			t.Fatalf("unblocked append: %+v", r)
		}
	case <-time.After(guard):
		t.Fatal("Append still blocked after the ack")
	}

	// ctx cancel unblocks with the ctx error.
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		seq, err := q.Append(cctx, 1, payload)
		done <- result{seq, err}
	}()
	waitFor(t, "the append to block", func() bool { return q.blockedAppends() == 1 })
	cancel()
	if r := <-done; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled append: %+v", r)
	}
	// Close unblocks with ErrClosed.
	go func() {
		seq, err := q.Append(ctx, 1, payload)
		done <- result{seq, err}
	}()
	waitFor(t, "the append to block", func() bool { return q.blockedAppends() == 1 })
	q.Close()
	if r := <-done; !errors.Is(r.err, ErrClosed) {
		t.Fatalf("append blocked at Close: %+v", r)
	}
	// An entry that can never fit fails at once.
	q2 := mustOpen(t, Options{Dir: t.TempDir(), MaxBytes: frame - 1})
	defer q2.Close()
	if _, err := q2.Append(ctx, 1, payload); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized append: %v", err)
	}
}

func TestFullDropOldest(t *testing.T) {
	const size = 100
	frame := int64(frameHeaderLen + size)
	dir := t.TempDir()
	logger, logs := testLogger(t)
	q := mustOpen(t, Options{Dir: dir, MaxBytes: 10 * frame, SegmentSize: segHeaderLen + 3*frame, Full: FullDropOldest, Logger: logger})
	defer q.Close()
	payload := func(i int) []byte { return fmt.Appendf(nil, "%-*d", size, i) }
	ctx := ctxGuard(t)
	early := q.NewReader(0) // positioned at the start before the drops
	defer early.Close()
	var want []Entry
	for i := range 35 {
		count := uint32(i%3 + 1)
		seq, err := q.Append(ctx, count, payload(i))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, Entry{seq, count, payload(i)})
	}
	checkSeqs(t, want, 1)
	st := q.Stats()
	var droppedRecords uint64
	for _, e := range want[:25] {
		droppedRecords += uint64(e.Count)
	}
	if st.DroppedEntries != 25 || st.DroppedRecords != droppedRecords || st.PendingBytes != 10*frame ||
		st.PendingRecords != st.LastSeq-droppedRecords {
		t.Fatalf("stats %+v, want 25 entries %d records dropped", st, droppedRecords)
	}
	if n := len(segFiles(t, dir)); n > 5 {
		t.Fatalf("%d segment files: dropped segments not deleted", n)
	}
	sameEntries(t, readAll(t, q, 0), want[25:])
	sameEntries(t, readN(t, early, 10), want[25:])
	if !strings.Contains(logs.String(), "dropped the oldest entries") {
		t.Fatalf("no warning logged:\n%s", logs)
	}
	// The drop survives a reopen, acks keep working.
	if err := q.Ack(want[30].FirstSeq - 1); err != nil {
		t.Fatal(err)
	}
	q.Close()
	q = mustOpen(t, Options{Dir: dir, MaxBytes: 10 * frame, SegmentSize: segHeaderLen + 3*frame, Full: FullDropOldest})
	defer q.Close()
	sameEntries(t, readAll(t, q, 0), want[30:])
	if st := q.Stats(); st.PendingBytes != 5*frame {
		t.Fatalf("after reopen PendingBytes %d, want %d", st.PendingBytes, 5*frame)
	}
}

// TestShipperLike runs an appender against a reader that acknowledges what
// it reads, as the shipper does, through segment rolls, deletions and a full
// queue (FullBlock): every entry arrives once, in order.
func TestShipperLike(t *testing.T) {
	const n = 3000
	dir := t.TempDir()
	q := mustOpen(t, Options{Dir: dir, SegmentSize: 1024, MaxBytes: 4096})
	defer q.Close()
	ctx := ctxGuard(t)
	errc := make(chan error, 1)
	go func() {
		for i := range n {
			if _, err := q.Append(ctx, countFor(i), payloadFor(i)); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	var got []Entry
	r := q.NewReader(0)
	reads := 0
	for len(got) < n {
		if reads++; reads%50 == 0 {
			// A reconnect: a new reader after the last ack, which reads
			// again what was not acknowledged.
			r.Close()
			acked := q.Stats().AckedSeq
			r = q.NewReader(acked)
			for len(got) > 0 && got[len(got)-1].FirstSeq > acked {
				got = got[:len(got)-1]
			}
		}
		e, err := r.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
		if len(got)%7 == 0 {
			if err := q.Ack(e.FirstSeq + uint64(e.Count) - 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	r.Close()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	checkSeqs(t, got, 1)
	for i, e := range got {
		if !bytes.Equal(e.Payload, payloadFor(i)) {
			t.Fatalf("entry %d: %q", i, e.Payload)
		}
	}
	if err := q.Ack(q.Stats().LastSeq); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.PendingBytes != 0 || st.Segments > 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestDropWhileReading drops under a reader that keeps up only partly:
// what it reads is in order and intact, and nothing is lost that was not
// dropped.
func TestDropWhileReading(t *testing.T) {
	const n = 3000
	q := mustOpen(t, Options{Dir: t.TempDir(), SegmentSize: 512, MaxBytes: 2048, Full: FullDropOldest})
	defer q.Close()
	ctx := ctxGuard(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			if _, err := q.Append(ctx, countFor(i), payloadFor(i)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	r := q.NewReader(0)
	defer r.Close()
	var got []Entry
	var last uint64
	for {
		e, err := r.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if e.FirstSeq <= last {
			t.Fatalf("seq %d after %d", e.FirstSeq, last)
		}
		last = e.FirstSeq + uint64(e.Count) - 1
		got = append(got, e)
		if len(got)%10 == 0 {
			q.Ack(last)
		}
		select {
		case <-done:
			if last == q.Stats().LastSeq {
				goto end
			}
		default:
		}
	}
end:
	st := q.Stats()
	for _, e := range got {
		var i int
		if _, err := fmt.Sscanf(string(e.Payload), "entry-%d-", &i); err != nil || !bytes.Equal(e.Payload, payloadFor(i)) {
			t.Fatalf("entry %d: %q", e.FirstSeq, e.Payload)
		}
	}
	if uint64(len(got))+st.DroppedEntries < n {
		t.Fatalf("read %d + dropped %d < %d appended", len(got), st.DroppedEntries, n)
	}
	t.Logf("read %d, dropped %d entries (%d records)", len(got), st.DroppedEntries, st.DroppedRecords)
}

// tornSetup writes 20 entries, closes, and returns them.
func tornSetup(t *testing.T, dir string) []Entry {
	q := mustOpen(t, Options{Dir: dir, SegmentSize: 1024})
	want := appendN(t, q, 0, 20)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	return want
}

// lastFrameOffset returns the offset of the last frame in a segment file.
func lastFrameOffset(t *testing.T, path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off, last := int64(segHeaderLen), int64(-1)
	for off < int64(len(b)) {
		last = off
		off += 4 + int64(binary.LittleEndian.Uint32(b[off:]))
	}
	if last < 0 {
		t.Fatalf("%s has no frames", path)
	}
	return last
}

func TestTornTail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string, last int64)
	}{
		{"truncated", func(t *testing.T, path string, last int64) {
			if err := os.Truncate(path, last+frameHeaderLen+3); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated-header", func(t *testing.T, path string, last int64) {
			if err := os.Truncate(path, last+7); err != nil {
				t.Fatal(err)
			}
		}},
		{"flipped", func(t *testing.T, path string, last int64) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := make([]byte, 1)
			f.ReadAt(b, last+frameHeaderLen+2)
			b[0] ^= 0x40
			f.WriteAt(b, last+frameHeaderLen+2)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			want := tornSetup(t, dir)
			path := lastSegFile(t, dir)
			last := lastFrameOffset(t, path)
			tc.damage(t, path, last)
			logger, logs := testLogger(t)
			q := mustOpen(t, Options{Dir: dir, SegmentSize: 1024, Logger: logger})
			defer q.Close()
			st := q.Stats()
			if st.RecoveredBytes <= 0 {
				t.Fatalf("RecoveredBytes %d", st.RecoveredBytes)
			}
			if l := logs.String(); !strings.Contains(l, filepath.Base(path)) || !strings.Contains(l, fmt.Sprintf("offset=%d", last)) {
				t.Fatalf("warning does not name the file and offset %d:\n%s", last, l)
			}
			intact := want[:len(want)-1]
			r := q.NewReader(0)
			defer r.Close()
			sameEntries(t, readN(t, r, len(intact)), intact)
			// The lost entry's seqs were handed out (Close recorded them in
			// the ack file): they are not used again.
			lost := want[len(want)-1]
			if st.LastSeq != lost.FirstSeq+uint64(lost.Count)-1 {
				t.Fatalf("LastSeq %d, want %d", st.LastSeq, lost.FirstSeq+uint64(lost.Count)-1)
			}
			more := appendN(t, q, 100, 3)
			checkSeqs(t, more, lost.FirstSeq+uint64(lost.Count))
			sameEntries(t, readN(t, r, 3), more)
			sameEntries(t, readAll(t, q, 0), append(intact, more...))
		})
	}
}

func TestTornSegmentHeader(t *testing.T) {
	dir := t.TempDir()
	want := tornSetup(t, dir)
	last := want[len(want)-1]
	next := last.FirstSeq + uint64(last.Count)
	// A crash while creating the next segment leaves a part of its header.
	path := filepath.Join(dir, segName(next))
	if err := os.WriteFile(path, []byte(segMagic[:5]), 0o600); err != nil {
		t.Fatal(err)
	}
	q := mustOpen(t, Options{Dir: dir, SegmentSize: 1024})
	defer q.Close()
	if st := q.Stats(); st.RecoveredBytes != 5 || st.LastSeq != next-1 {
		t.Fatalf("stats %+v", st)
	}
	more := appendN(t, q, 100, 2)
	checkSeqs(t, more, next)
	sameEntries(t, readAll(t, q, 0), append(want, more...))
}

func TestCorruptEarlierSegment(t *testing.T) {
	dir := t.TempDir()
	q0 := mustOpen(t, Options{Dir: dir, SegmentSize: 256})
	want := appendN(t, q0, 0, 40)
	if err := q0.Close(); err != nil {
		t.Fatal(err)
	}
	files := segFiles(t, dir)
	if len(files) < 3 {
		t.Fatalf("want at least 3 segments, have %d", len(files))
	}
	// Damage the second frame of the second segment.
	path := files[1]
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	second := segHeaderLen + 4 + int64(binary.LittleEndian.Uint32(b[segHeaderLen:]))
	b[second+frameHeaderLen] ^= 1
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	first2, _ := parseSegName(filepath.Base(files[1]))
	first3, _ := parseSegName(filepath.Base(files[2]))
	var expect []Entry
	skipped := false
	for _, e := range want {
		if e.FirstSeq >= first2 && e.FirstSeq < first3 && e.FirstSeq != first2 {
			skipped = true
			continue
		}
		expect = append(expect, e)
	}
	if !skipped {
		t.Fatal("test setup: nothing to skip")
	}
	logger, logs := testLogger(t)
	q := mustOpen(t, Options{Dir: dir, SegmentSize: 256, Logger: logger})
	defer q.Close()
	sameEntries(t, readAll(t, q, 0), expect)
	if st := q.Stats(); st.Corrupt != 1 || st.RecoveredBytes != 0 {
		t.Fatalf("stats %+v", st)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), filepath.Base(path)) {
		t.Fatalf("no error naming %s:\n%s", path, logs)
	}
	// Acks walk past the damage too.
	if err := q.Ack(first3); err != nil {
		t.Fatal(err)
	}
	if got := len(segFiles(t, dir)); got != len(files)-2 {
		t.Fatalf("%d segments after acking past the damaged one, want %d", got, len(files)-2)
	}
}

func TestForeignFiles(t *testing.T) {
	t.Run("unknown-name", func(t *testing.T) {
		dir := t.TempDir()
		tornSetup(t, dir)
		os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hi"), 0o600)
		_, err := Open(Options{Dir: dir})
		if err == nil || !strings.Contains(err.Error(), "notes.txt") {
			t.Fatalf("Open: %v", err)
		}
	})
	t.Run("bad-magic", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, segName(1)), []byte("this is not a segment at all"), 0o600)
		_, err := Open(Options{Dir: dir})
		if err == nil || !strings.Contains(err.Error(), segName(1)) {
			t.Fatalf("Open: %v", err)
		}
	})
	t.Run("bad-ack-file", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, ackFileName), []byte("acked lots\n"), 0o600)
		_, err := Open(Options{Dir: dir})
		if err == nil || !strings.Contains(err.Error(), ackFileName) {
			t.Fatalf("Open: %v", err)
		}
	})
}

func TestSecondOpenFails(t *testing.T) {
	dir := t.TempDir()
	q := mustOpen(t, Options{Dir: dir})
	_, err := Open(Options{Dir: dir})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second Open: %v", err)
	}
	q.Close()
	q = mustOpen(t, Options{Dir: dir})
	q.Close()
}

func TestCloseWakes(t *testing.T) {
	q := mustOpen(t, Options{Dir: t.TempDir()})
	r := q.NewReader(0)
	errc := make(chan error, 2)
	go func() {
		_, err := r.Next(context.Background())
		errc <- err
	}()
	r2 := q.NewReader(0)
	go func() {
		_, err := r2.Next(context.Background())
		errc <- err
	}()
	r2.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Next on a closed reader: %v", err)
	}
	q.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Next at Close: %v", err)
	}
	if _, err := q.Append(context.Background(), 1, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, err := q.NewReader(0).Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	if err := q.Ack(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ack after Close: %v", err)
	}
}

func TestSyncPolicies(t *testing.T) {
	for _, p := range []SyncPolicy{SyncInterval, SyncAlways, SyncNever} {
		t.Run(p.String(), func(t *testing.T) {
			dir := t.TempDir()
			q := mustOpen(t, Options{Dir: dir, Sync: p, SyncInterval: time.Millisecond, SegmentSize: 300})
			want := appendN(t, q, 0, 30)
			if p == SyncInterval {
				waitFor(t, "an interval fsync", func() bool { return q.Stats().Syncs > 0 })
			}
			if err := q.Sync(); err != nil {
				t.Fatal(err)
			}
			q.Close()
			q = mustOpen(t, Options{Dir: dir, Sync: p})
			defer q.Close()
			sameEntries(t, readAll(t, q, 0), want)
		})
	}
}

// The SIGKILL test re-executes the test binary; this is the child.
const childEnv = "KURA_QUEUE_CHILD_DIR"

func TestQueueChild(t *testing.T) {
	dir := os.Getenv(childEnv)
	if dir == "" {
		t.Skip("helper for TestSIGKILL")
	}
	sync, err := ParseSyncPolicy(os.Getenv("KURA_QUEUE_CHILD_SYNC"))
	if err != nil {
		t.Fatal(err)
	}
	q, err := Open(Options{Dir: dir, Sync: sync, SegmentSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		seq, err := q.Append(context.Background(), countFor(i), payloadFor(i))
		if err != nil {
			t.Fatal(err)
		}
		os.Stdout.WriteString("SEQ " + strconv.FormatUint(seq, 10) + " " + strconv.Itoa(i) + "\n")
	}
}

func TestSIGKILL(t *testing.T) {
	for _, tc := range []struct {
		sync  SyncPolicy
		lines int
	}{{SyncInterval, 3000}, {SyncAlways, 300}} {
		t.Run(tc.sync.String(), func(t *testing.T) {
			dir := t.TempDir()
			var printed []Entry
			for round := range 2 { // the second round continues the queue
				cmd := exec.Command(os.Args[0], "-test.run=^TestQueueChild$", "-test.count=1")
				cmd.Env = append(os.Environ(), childEnv+"="+dir, "KURA_QUEUE_CHILD_SYNC="+tc.sync.String())
				cmd.Stderr = os.Stderr
				out, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				// Kill the child after tc.lines lines, then take the lines it
				// printed before it died too: all of them are "printed".
				sc := bufio.NewScanner(out)
				n := 0
				for sc.Scan() {
					f := strings.Fields(sc.Text())
					if len(f) != 3 || f[0] != "SEQ" {
						continue
					}
					seq, _ := strconv.ParseUint(f[1], 10, 64)
					i, _ := strconv.Atoi(f[2])
					printed = append(printed, Entry{seq, countFor(i), payloadFor(i)})
					if n++; n == tc.lines {
						cmd.Process.Signal(syscall.SIGKILL)
					}
				}
				cmd.Wait()
				if n < tc.lines {
					t.Fatalf("round %d: child printed only %d lines", round, n)
				}
			}
			// Both rounds' printed seqs are consecutive: the second child's
			// first entry follows the first child's last entry on disk, which
			// may be after its last printed one.
			q := mustOpen(t, Options{Dir: dir})
			defer q.Close()
			got := readAll(t, q, 0)
			checkSeqs(t, got, 1)
			// Every printed entry is there, in order, with its payload;
			// between and after them only entries appended after a child's
			// last printed line (which payloadFor(i) continues).
			k := 0
			for _, p := range printed {
				for k < len(got) && got[k].FirstSeq < p.FirstSeq {
					k++
				}
				if k == len(got) {
					t.Fatalf("printed seq %d missing", p.FirstSeq)
				}
				sameEntries(t, got[k:k+1], []Entry{p})
			}
			for _, e := range got {
				var i int
				if _, err := fmt.Sscanf(string(e.Payload), "entry-%d-", &i); err != nil || !bytes.Equal(e.Payload, payloadFor(i)) || e.Count != countFor(i) {
					t.Fatalf("unexpected entry %d %q", e.FirstSeq, e.Payload)
				}
			}
			extra := len(got) - len(printed)
			if extra < 0 || extra > 2 {
				t.Fatalf("%d entries on disk for %d printed", len(got), len(printed))
			}
			t.Logf("%d entries printed, %d unprinted ones found", len(printed), extra)
		})
	}
}

func FuzzRecover(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3})
	f.Add(bytes.Repeat([]byte{0}, 40))
	f.Add(bytes.Repeat([]byte{0xff}, 40))
	valid := make([]byte, frameHeaderLen+3)
	putFrame(valid, 100, 1, []byte("abc"))
	f.Add(valid) // a valid frame with the wrong seq
	valid2 := make([]byte, frameHeaderLen+3)
	putFrame(valid2, 6, 2, []byte("abc"))
	f.Add(valid2) // a valid frame that continues: accepted
	f.Add(append(append([]byte{}, valid2...), 1, 2, 3, 4, 5))
	f.Add(valid2[:10])
	// The queue before the fuzzed bytes, built once: seqs 1..5 in one
	// segment.
	tmpl := f.TempDir()
	q := mustOpen(f, Options{Dir: tmpl, Sync: SyncNever})
	want := appendN(f, q, 0, 3)
	if err := q.Close(); err != nil {
		f.Fatal(err)
	}
	files := map[string][]byte{}
	des, _ := os.ReadDir(tmpl)
	for _, de := range des {
		if de.Name() != lockFileName {
			files[de.Name()], _ = os.ReadFile(filepath.Join(tmpl, de.Name()))
		}
	}
	seg := segName(1)
	if files[seg] == nil || len(files) != 2 {
		f.Fatalf("template files: %v", des)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		for name, b := range files {
			if name == seg {
				b = append(append([]byte{}, b...), data...)
			}
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		q, err := Open(Options{Dir: dir, Sync: SyncNever, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatalf("Open after appending %x: %v", data, err)
		}
		defer q.Close()
		got := readAll(t, q, 0)
		if len(got) < len(want) {
			t.Fatalf("%d entries survive, want %d", len(got), len(want))
		}
		sameEntries(t, got[:len(want)], want)
		checkSeqs(t, got, 1)
		st := q.Stats()
		if st.RecoveredBytes < 0 || st.RecoveredBytes > int64(len(data)) {
			t.Fatalf("RecoveredBytes %d for %d bytes", st.RecoveredBytes, len(data))
		}
		if st.LastSeq < 1<<63 { // a fuzzed frame may claim huge seqs
			seq, err := q.Append(context.Background(), 1, []byte("after"))
			if err != nil || seq != st.LastSeq+1 {
				t.Fatalf("Append after recovery: %d %v, want %d", seq, err, st.LastSeq+1)
			}
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	payload := bytes.Repeat([]byte("x"), 100)
	for _, p := range []SyncPolicy{SyncInterval, SyncAlways, SyncNever} {
		b.Run(p.String(), func(b *testing.B) {
			q := mustOpen(b, Options{Dir: b.TempDir(), Sync: p})
			defer q.Close()
			ctx := context.Background()
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := q.Append(ctx, 1, payload); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(q.Stats().Syncs)/float64(b.N), "fsyncs/op")
		})
		b.Run(p.String()+"-parallel", func(b *testing.B) {
			q := mustOpen(b, Options{Dir: b.TempDir(), Sync: p})
			defer q.Close()
			ctx := context.Background()
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := q.Append(ctx, 1, payload); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(q.Stats().Syncs)/float64(b.N), "fsyncs/op")
		})
	}
}

func BenchmarkRead(b *testing.B) {
	payload := bytes.Repeat([]byte("x"), 100)
	q := mustOpen(b, Options{Dir: b.TempDir(), Sync: SyncNever})
	defer q.Close()
	ctx := context.Background()
	for range b.N {
		if _, err := q.Append(ctx, 1, payload); err != nil {
			b.Fatal(err)
		}
	}
	r := q.NewReader(0)
	defer r.Close()
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := r.Next(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
