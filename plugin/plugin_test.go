package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// deadline bounds every wait in these tests. It is a limit for declaring a
// failure, not a speed expectation.
const deadline = 30 * time.Second

// memFeed is an in-memory Feed: records sorted by Seq, and a channel that is
// closed (and replaced) whenever records are added.
type memFeed struct {
	mu      sync.Mutex
	recs    []Record
	changed chan struct{}
}

func newMemFeed() *memFeed { return &memFeed{changed: make(chan struct{})} }

func (f *memFeed) add(seq uint64, line string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.recs); n > 0 && f.recs[n-1].Seq >= seq {
		panic("memFeed: seq not increasing")
	}
	f.recs = append(f.recs, Record{Seq: seq, Line: []byte(line)})
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *memFeed) Next(ctx context.Context, after uint64) (Record, error) {
	for {
		f.mu.Lock()
		i := sort.Search(len(f.recs), func(i int) bool { return f.recs[i].Seq > after })
		if i < len(f.recs) {
			r := f.recs[i]
			f.mu.Unlock()
			return r, nil
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Record{}, ctx.Err()
		}
	}
}

func line(seq uint64) string {
	return fmt.Sprintf(`{"seq":%d,"pad":"%s"}`, seq, strings.Repeat("x", int(seq%37)))
}

// commits records the seqs passed to commit and checks they increase.
type commits struct {
	mu   sync.Mutex
	seqs []uint64
	bad  []string
	fail error // returned by commit when set
}

func (c *commits) commit(seq uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.seqs); n > 0 && seq <= c.seqs[n-1] {
		c.bad = append(c.bad, fmt.Sprintf("commit %d after %d", seq, c.seqs[n-1]))
	}
	c.seqs = append(c.seqs, seq)
	return c.fail
}

func (c *commits) last() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.seqs) == 0 {
		return 0
	}
	return c.seqs[len(c.seqs)-1]
}

func (c *commits) all() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]uint64(nil), c.seqs...)
}

func (c *commits) check(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.bad {
		t.Error(b)
	}
}

// tWriter sends log output to t.Log until the test is over.
type tWriter struct {
	t      *testing.T
	mu     sync.Mutex
	closed bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// logRec is one captured log record.
type logRec struct {
	msg   string
	attrs map[string]slog.Value
}

// recHandler captures log records and passes them on.
type recHandler struct {
	mu    *sync.Mutex
	recs  *[]logRec
	attrs []slog.Attr
	next  slog.Handler
}

func (h *recHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recHandler) Handle(ctx context.Context, r slog.Record) error {
	lr := logRec{msg: r.Message, attrs: map[string]slog.Value{}}
	for _, a := range h.attrs {
		lr.attrs[a.Key] = a.Value
	}
	r.Attrs(func(a slog.Attr) bool {
		lr.attrs[a.Key] = a.Value
		return true
	})
	h.mu.Lock()
	*h.recs = append(*h.recs, lr)
	h.mu.Unlock()
	return h.next.Handle(ctx, r)
}

func (h *recHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &recHandler{mu: h.mu, recs: h.recs, attrs: append(append([]slog.Attr(nil), h.attrs...), as...), next: h.next.WithAttrs(as)}
}

func (h *recHandler) WithGroup(name string) slog.Handler {
	return &recHandler{mu: h.mu, recs: h.recs, attrs: h.attrs, next: h.next.WithGroup(name)}
}

func (h *recHandler) records() []logRec {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]logRec(nil), *h.recs...)
}

// testLogger returns a logger writing to t.Log and a handle on what it got.
func testLogger(t *testing.T) (*slog.Logger, *recHandler) {
	w := &tWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
	})
	h := &recHandler{mu: new(sync.Mutex), recs: new([]logRec), next: slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})}
	return slog.New(h), h
}

// running is a Run in progress.
type running struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func startRun(t *testing.T, r *Runner, feed Feed, start uint64, c *commits) *running {
	ctx, cancel := context.WithCancel(context.Background())
	rr := &running{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(rr.done)
		rr.err = r.Run(ctx, feed, start, c.commit)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-rr.done:
		case <-time.After(deadline):
			t.Error("Run did not return after cancel")
		}
	})
	return rr
}

// stop cancels the Run and returns its result.
func (rr *running) stop(t *testing.T) error {
	t.Helper()
	rr.cancel()
	select {
	case <-rr.done:
		return rr.err
	case <-time.After(deadline):
		t.Fatal("Run did not return after cancel")
		return nil
	}
}

// waitFor polls cond until it holds, failing the test after deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readLines returns the complete lines of a file (a trailing partial line is
// returned too, flagged by partial).
func readLines(t *testing.T, path string) (lines []string, partial bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	s := string(b)
	if s == "" {
		return nil, false
	}
	partial = !strings.HasSuffix(s, "\n")
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n"), partial
}

func seqOf(t *testing.T, l string) uint64 {
	t.Helper()
	var seq uint64
	if _, err := fmt.Sscanf(l, `{"seq":%d,`, &seq); err != nil {
		t.Fatalf("bad line %q: %v", l, err)
	}
	if l != line(seq) {
		t.Fatalf("line %q is not record %d's", l, seq)
	}
	return seq
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	waitFor(t, "pid file "+path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil || !strings.HasSuffix(string(b), "\n") {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	return pid
}

// processGone reports whether pid no longer runs (absent, or a zombie left
// for someone else to reap).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] == 'Z'
}

func newRunner(t *testing.T, cfg Config) *Runner {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger, _ = testLogger(t)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func expectRange(t *testing.T, got []string, from, to uint64) {
	t.Helper()
	if want := int(to - from + 1); len(got) != want {
		t.Errorf("got %d lines, want %d", len(got), want)
	}
	for i, l := range got {
		if want := line(from + uint64(i)); l != want {
			t.Fatalf("line %d = %q, want %q", i, l, want)
		}
	}
}

// 1. All records arrive, in order, exactly once, and commit reaches the end.
func TestBasic(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	feed := newMemFeed()
	for i := uint64(1); i <= 500; i++ {
		feed.add(i, line(i))
	}
	r := newRunner(t, Config{Command: `cat >> "$OUT"`, Env: []string{"OUT=" + out}})
	c := &commits{}
	rr := startRun(t, r, feed, 0, c)
	for i := uint64(501); i <= 1000; i++ { // these arrive while Run waits in Next
		feed.add(i, line(i))
	}
	waitFor(t, "commit of 1000", func() bool { return c.last() == 1000 })
	if err := rr.stop(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	c.check(t)
	got, partial := readLines(t, out)
	if partial {
		t.Error("output ends with a partial line")
	}
	expectRange(t, got, 1, 1000)
	st := r.Stats()
	if st.Written != 1000 || st.Taken != 1000 || st.Restarts != 0 {
		t.Errorf("Stats = %+v, want 1000 written, 1000 taken, 0 restarts", st)
	}
}

// 2. A plugin that reads 7 lines and exits: every record reaches the output
// exactly once and in order, over many restarts.
func TestRestartLosesNothing(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	feed := newMemFeed()
	for i := uint64(1); i <= 100; i++ {
		feed.add(i, line(i))
	}
	r := newRunner(t, Config{
		Command:    `i=0; while [ $i -lt 7 ] && IFS= read -r l; do printf '%s\n' "$l" >> "$OUT"; i=$((i+1)); done`,
		Env:        []string{"OUT=" + out},
		MinBackoff: 5 * time.Millisecond,
		MaxBackoff: 20 * time.Millisecond,
	})
	c := &commits{}
	rr := startRun(t, r, feed, 0, c)
	waitFor(t, "commit of 100", func() bool { return c.last() == 100 })
	if err := rr.stop(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	c.check(t)
	got, _ := readLines(t, out)
	expectRange(t, got, 1, 100)
	st := r.Stats()
	if st.Restarts < 14 { // 14 instances of 7 records each before the one that got 99 and 100
		t.Errorf("Restarts = %d, want >= 14", st.Restarts)
	}
	if st.Taken != 100 {
		t.Errorf("Taken = %d, want 100", st.Taken)
	}
}

// 3. The plugin is killed with SIGKILL while records stream in. Everything
// committed before the kill was written by the first instance; the second
// instance starts right after the last commit and delivers the rest, in
// order. A record taken by the killed instance is never sent again; one it
// took but had not written yet is lost by that instance, which is reported.
func TestSIGKILLMidStream(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	pidfile := filepath.Join(dir, "pid")
	const n = 3000
	feed := newMemFeed()
	r := newRunner(t, Config{
		Command:    `echo $$ > "$PIDFILE"; echo "#start $$" >> "$OUT"; exec cat >> "$OUT"`,
		Env:        []string{"OUT=" + out, "PIDFILE=" + pidfile},
		MinBackoff: 10 * time.Millisecond,
	})
	c := &commits{}
	rr := startRun(t, r, feed, 0, c)

	// Records stream in; the second half only after the kill, so that the
	// second instance surely has work.
	killed := make(chan struct{})
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := uint64(1); i <= n; i++ {
			if i == n/3+1 {
				<-killed
			}
			feed.add(i, line(i))
			if i%20 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	killOnce := sync.OnceFunc(func() { close(killed) })
	defer killOnce()

	waitFor(t, "commit of 300", func() bool { return c.last() >= 300 })
	pid := readPid(t, pidfile)
	if st := r.Stats(); st.Restarts != 0 {
		t.Fatalf("restarted before the kill: %+v", st)
	}
	atKill := c.last()
	// Let cat write what it read up to atKill, so that only records taken
	// after this point can be lost by the kill.
	waitFor(t, "output of committed records", func() bool {
		got, partial := readLines(t, out)
		if partial {
			got = got[:len(got)-1]
		}
		return len(got) >= int(atKill)+1 // +1: the start marker
	})
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killOnce()
	waitFor(t, "commit of all records", func() bool { return c.last() == n })
	<-produced
	if err := rr.stop(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	c.check(t)

	// Split the output into incarnations.
	got, _ := readLines(t, out)
	var incs [][]uint64
	fragments := 0
	for _, l := range got {
		if i := strings.Index(l, "#start "); i >= 0 {
			if i > 0 { // the killed cat left a partial line
				fragments++
			}
			incs = append(incs, nil)
			continue
		}
		if len(incs) == 0 {
			t.Fatalf("output does not begin with a start marker: %q", l)
		}
		incs[len(incs)-1] = append(incs[len(incs)-1], seqOf(t, l))
	}
	if len(incs) != 2 {
		t.Fatalf("got %d plugin instances, want 2", len(incs))
	}
	if st := r.Stats(); st.Restarts != 1 {
		t.Errorf("Restarts = %d, want 1", st.Restarts)
	}
	for k, inc := range incs {
		for i := 1; i < len(inc); i++ {
			if inc[i] != inc[i-1]+1 {
				t.Fatalf("instance %d: record %d follows %d", k+1, inc[i], inc[i-1])
			}
		}
	}
	first, second := incs[0], incs[1]
	if len(first) == 0 || first[0] != 1 {
		t.Fatalf("first instance did not start at record 1: %v", first[:min(len(first), 3)])
	}
	lastFirst := first[len(first)-1]
	if len(second) == 0 {
		t.Fatalf("second instance wrote nothing (first ended at %d)", lastFirst)
	}
	resumedAfter := second[0] - 1
	if second[len(second)-1] != n {
		t.Errorf("second instance ended at %d, want %d", second[len(second)-1], n)
	}
	// The second instance starts right after a committed seq.
	found := false
	for _, s := range c.all() {
		found = found || s == resumedAfter
	}
	if !found {
		t.Errorf("second instance starts at %d, but %d was never committed", second[0], resumedAfter)
	}
	if resumedAfter < atKill {
		t.Errorf("second instance starts at %d, below the commit %d made before the kill", second[0], atKill)
	}
	if lastFirst < atKill {
		t.Errorf("first instance wrote up to %d, below the commit %d it had been waited for", lastFirst, atKill)
	}
	dups := 0
	if lastFirst > resumedAfter {
		dups = int(lastFirst - resumedAfter)
		t.Errorf("%d records sent to both instances (%d..%d)", dups, second[0], lastFirst)
	}
	lost := 0
	if resumedAfter > lastFirst {
		lost = int(resumedAfter - lastFirst)
	}
	t.Logf("killed at commit %d; first instance wrote 1..%d; second wrote %d..%d; duplicates %d; taken by the killed cat but not written: %d (partial line: %v)",
		atKill, lastFirst, second[0], n, dups, lost, fragments > 0)
}

// 4. Run with start=5000 feeds only the records after it (seqs with gaps).
func TestResume(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	feed := newMemFeed()
	for i := uint64(10); i <= 10000; i += 10 {
		feed.add(i, line(i))
	}
	r := newRunner(t, Config{Command: `exec cat >> "$OUT"`, Env: []string{"OUT=" + out}})
	c := &commits{}
	rr := startRun(t, r, feed, 5000, c)
	waitFor(t, "commit of 10000", func() bool { return c.last() == 10000 })
	if err := rr.stop(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	c.check(t)
	if cs := c.all(); cs[0] <= 5000 {
		t.Errorf("first commit %d, want > 5000", cs[0])
	}
	got, _ := readLines(t, out)
	if len(got) != 500 {
		t.Fatalf("got %d lines, want 500", len(got))
	}
	for i, l := range got {
		if want := line(5010 + uint64(i)*10); l != want {
			t.Fatalf("line %d = %q, want %q", i, l, want)
		}
	}
}

// 5a. New checks its Config.
func TestNewValidates(t *testing.T) {
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "Command") {
		t.Errorf("New with empty Command: %v, want an error naming Command", err)
	}
	if _, err := New(Config{Command: "  "}); err == nil {
		t.Error("New with blank Command: no error")
	}
	if _, err := New(Config{Command: "cat", MinBackoff: time.Second, MaxBackoff: time.Millisecond}); err == nil {
		t.Error("New with MaxBackoff < MinBackoff: no error")
	}
	if _, err := New(Config{Command: "cat", MinBackoff: -1}); err == nil {
		t.Error("New with negative MinBackoff: no error")
	}
	if _, err := New(Config{Command: "cat"}); err != nil {
		t.Errorf("New: %v", err)
	}
}

// 5b. Cancelling stops a plugin that exits on end of input, and Run returns.
func TestStopOnCancel(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "pid")
	feed := newMemFeed()
	for i := uint64(1); i <= 10; i++ {
		feed.add(i, line(i))
	}
	r := newRunner(t, Config{Command: `echo $$ > "$PIDFILE"; exec cat > /dev/null`, Env: []string{"PIDFILE=" + pidfile}})
	c := &commits{}
	rr := startRun(t, r, feed, 0, c)
	pid := readPid(t, pidfile)
	waitFor(t, "commit of 10", func() bool { return c.last() == 10 })
	if err := rr.stop(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if !processGone(pid) {
		t.Errorf("plugin %d still runs after Run returned", pid)
	}
}

// 5c. A plugin that ignores end of input is killed, with what it started,
// once the stop window is over, and Run returns.
func TestStopKillsStubbornPlugin(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "pid")
	childfile := filepath.Join(dir, "child")
	r := newRunner(t, Config{
		Command: `sleep 1000 & echo $! > "$CHILDFILE"; echo $$ > "$PIDFILE"; exec sleep 1000`,
		Env:     []string{"PIDFILE=" + pidfile, "CHILDFILE=" + childfile},
	})
	c := &commits{}
	rr := startRun(t, r, newMemFeed(), 0, c)
	pid := readPid(t, pidfile)
	child := readPid(t, childfile)
	if err := rr.stop(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if !processGone(pid) {
		t.Errorf("plugin %d still runs after Run returned", pid)
	}
	// The background child is reaped by whoever inherits it: wait for that.
	waitFor(t, "the plugin's child to go", func() bool { return processGone(child) })
}

// 6. A plugin that exits at once is restarted with a doubling backoff, capped,
// while Run waits for records; Run still stops on cancel.
func TestCrashLoopBackoff(t *testing.T) {
	logger, h := testLogger(t)
	r := newRunner(t, Config{
		Command:    "exit 3",
		Logger:     logger,
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 80 * time.Millisecond,
	})
	c := &commits{}
	rr := startRun(t, r, newMemFeed(), 0, c)
	waitFor(t, "6 restarts", func() bool { return r.Stats().Restarts >= 6 })
	if err := rr.stop(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	var backoffs []time.Duration
	codes := 0
	for _, lr := range h.records() {
		switch lr.msg {
		case "plugin restarting":
			backoffs = append(backoffs, lr.attrs["backoff"].Duration())
		case "plugin exited":
			if lr.attrs["code"].Int64() == 3 {
				codes++
			}
		}
	}
	if len(backoffs) < 6 {
		t.Fatalf("logged %d restarts, want >= 6", len(backoffs))
	}
	want := 10 * time.Millisecond
	for i, b := range backoffs {
		if b != want {
			t.Errorf("restart %d: backoff %v, want %v (all: %v)", i+1, b, want, backoffs)
		}
		want = min(2*want, 80*time.Millisecond)
	}
	if codes < 6 {
		t.Errorf("logged %d exits with status 3, want >= 6", codes)
	}
	if len(c.all()) != 0 {
		t.Errorf("commits %v with no records", c.all())
	}
}

// A plugin that stops reading with a full pipe and then dies does not block
// the runner: the next instance gets everything.
func TestPluginStopsReading(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	mark := filepath.Join(dir, "mark")
	feed := newMemFeed()
	const n = 3000 // ~100 KiB: more than a pipe holds
	for i := uint64(1); i <= n; i++ {
		feed.add(i, line(i))
	}
	r := newRunner(t, Config{
		Command:    `if [ -e "$MARK" ]; then exec cat >> "$OUT"; fi; touch "$MARK"; sleep 0.3`,
		Env:        []string{"OUT=" + out, "MARK=" + mark},
		MinBackoff: 10 * time.Millisecond,
	})
	c := &commits{}
	rr := startRun(t, r, feed, 0, c)
	waitFor(t, "commit of all records", func() bool { return c.last() == n })
	if err := rr.stop(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	c.check(t)
	got, _ := readLines(t, out)
	expectRange(t, got, 1, n)
	if st := r.Stats(); st.Restarts != 1 || st.Taken != n {
		t.Errorf("Stats = %+v, want 1 restart and %d taken", st, n)
	}
}

// A failing commit ends Run with that error, after stopping the plugin.
func TestCommitError(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "pid")
	feed := newMemFeed()
	feed.add(1, line(1))
	boom := errors.New("boom")
	r := newRunner(t, Config{Command: `echo $$ > "$PIDFILE"; exec cat > /dev/null`, Env: []string{"PIDFILE=" + pidfile}})
	c := &commits{fail: boom}
	rr := startRun(t, r, feed, 0, c)
	pid := readPid(t, pidfile)
	select {
	case <-rr.done:
	case <-time.After(deadline):
		t.Fatal("Run did not return after a commit error")
	}
	if !errors.Is(rr.err, boom) {
		t.Errorf("Run = %v, want boom", rr.err)
	}
	if got := c.all(); len(got) != 1 || got[0] != 1 {
		t.Errorf("commits = %v, want [1]", got)
	}
	if !processGone(pid) {
		t.Errorf("plugin %d still runs after Run returned", pid)
	}
}

// Lines with raw newlines stay one line; stderr goes to the logger line by
// line.
func TestLineSafetyAndStderr(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	logger, h := testLogger(t)
	feed := newMemFeed()
	feed.add(1, "{\n\"a\": 1\r\n}")
	feed.add(2, `{"b":2}`)
	r := newRunner(t, Config{
		Command: `printf 'oops one\ntwo' >&2; exec cat >> "$OUT"`,
		Env:     []string{"OUT=" + out},
		Logger:  logger,
	})
	c := &commits{}
	rr := startRun(t, r, feed, 0, c)
	waitFor(t, "commit of 2", func() bool { return c.last() == 2 })
	if err := rr.stop(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	got, _ := readLines(t, out)
	if want := []string{"{ \"a\": 1  }", `{"b":2}`}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("output %q, want %q", got, want)
	}
	var lines []string
	for _, lr := range h.records() {
		if lr.msg == "plugin stderr" {
			lines = append(lines, lr.attrs["line"].String())
		}
	}
	if strings.Join(lines, "|") != "oops one|two" {
		t.Errorf("stderr lines %q, want [oops one two]", lines)
	}
}

// Run refuses a second concurrent call.
func TestRunOnce(t *testing.T) {
	r := newRunner(t, Config{Command: "exec cat > /dev/null"})
	c := &commits{}
	rr := startRun(t, r, newMemFeed(), 0, c)
	waitFor(t, "Run to start", func() bool { return r.running.Load() })
	if err := r.Run(context.Background(), newMemFeed(), 0, c.commit); err == nil {
		t.Error("second Run: no error")
	}
	if err := rr.stop(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
}

// Records the plugin reads after its stdin was closed for stopping still
// count as taken: commit reaches them, so they will not be sent again.
func TestStopCountsLateReads(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	feed := newMemFeed()
	for i := uint64(1); i <= 100; i++ { // a few KiB: fits in the pipe
		feed.add(i, line(i))
	}
	r := newRunner(t, Config{Command: `sleep 0.5; exec cat >> "$OUT"`, Env: []string{"OUT=" + out}})
	c := &commits{}
	rr := startRun(t, r, feed, 0, c)
	waitFor(t, "all records written", func() bool { return r.Stats().Written == 100 })
	if err := rr.stop(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	c.check(t)
	if got := c.last(); got != 100 {
		t.Errorf("last commit %d, want 100", got)
	}
	got, _ := readLines(t, out)
	expectRange(t, got, 1, 100)
}

// A program that cannot start (its Dir is missing) is retried with backoff
// until Run is cancelled.
func TestStartFailureRetried(t *testing.T) {
	r := newRunner(t, Config{
		Command:    "cat",
		Dir:        filepath.Join(t.TempDir(), "missing"),
		MinBackoff: time.Millisecond,
		MaxBackoff: 5 * time.Millisecond,
	})
	rr := startRun(t, r, newMemFeed(), 0, &commits{})
	waitFor(t, "3 restarts", func() bool { return r.Stats().Restarts >= 3 })
	if err := rr.stop(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
}
