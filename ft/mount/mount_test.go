package mount

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/kura-dev/kura/ft/record"
)

// TestMain doubles as a writer child process (see runChild).
func TestMain(m *testing.M) {
	if os.Getenv("KURA_MOUNT_CHILD") == "write" {
		childWrite()
		return
	}
	os.Exit(m.Run())
}

// childWrite appends "<tag> <i>\n" for i < n to a file, one write(2) per
// line through one descriptor: args are path, tag, n.
func childWrite() {
	path, tag := os.Getenv("KURA_CHILD_PATH"), os.Getenv("KURA_CHILD_TAG")
	n, _ := strconv.Atoi(os.Getenv("KURA_CHILD_N"))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := range n {
		if _, err := fmt.Fprintf(f, "%s %d\n", tag, i); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
	}
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(4)
	}
}

// startChild starts a writer child process.
func startChild(t *testing.T, path, tag string, n int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KURA_MOUNT_CHILD=write", "KURA_CHILD_PATH="+path,
		"KURA_CHILD_TAG="+tag, "KURA_CHILD_N="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// fakeSink collects deep copies of the Writes.
type fakeSink struct {
	mu     sync.Mutex
	writes []Write
	fail   func(Write) error
}

func (s *fakeSink) Emit(ctx context.Context, w Write) error {
	cp := w
	cp.Records = make([][]byte, len(w.Records))
	for i, r := range w.Records {
		cp.Records[i] = bytes.Clone(r)
	}
	if s.fail != nil {
		if err := s.fail(cp); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.writes = append(s.writes, cp)
	s.mu.Unlock()
	return nil
}

func (s *fakeSink) all() []Write {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.writes)
}

// lines returns the records emitted for path, in order.
func (s *fakeSink) lines(path string) []string {
	var out []string
	for _, w := range s.all() {
		if w.Path != path {
			continue
		}
		for _, r := range w.Records {
			out = append(out, string(r))
		}
	}
	return out
}

func (s *fakeSink) reset() {
	s.mu.Lock()
	s.writes = nil
	s.mu.Unlock()
}

type fixture struct {
	dir   string // the mounted directory
	under string // the directory underneath, reachable while mounted
	m     *Mount
	sink  *fakeSink
}

// mountT mounts over a new temporary directory holding files; the mount is
// always unmounted at the end of the test.
func mountT(t *testing.T, files map[string]string, rules func(string) Rule) *fixture {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A descriptor of the directory itself shows what is underneath.
	uf, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { uf.Close() })
	f := &fixture{dir: dir, under: fmt.Sprintf("/proc/self/fd/%d", uf.Fd()), sink: &fakeSink{}}
	f.m = newMountT(t, Options{Dir: dir, Sink: f.sink, Rules: rules, Logger: testLogger(t)})
	return f
}

func newMountT(t *testing.T, opts Options) *Mount {
	t.Helper()
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(); err != nil {
			t.Errorf("Unmount: %v", err)
			unix.Unmount(m.Dir(), unix.MNT_DETACH)
		}
		select {
		case <-waitCh(m):
		case <-time.After(20 * time.Second):
			t.Errorf("Wait: still served 20s after Unmount")
		}
	})
	return m
}

func waitCh(m *Mount) chan struct{} {
	c := make(chan struct{})
	go func() { m.Wait(); close(c) }()
	return c
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (f *fixture) path(name string) string { return filepath.Join(f.dir, name) }

func (f *fixture) underFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.under, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func openT(t *testing.T, path string, flag int) *os.File {
	t.Helper()
	fl, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fl.Close() })
	return fl
}

func writeT(t *testing.T, f *os.File, s string) {
	t.Helper()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func wantLines(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("records:\n got %q\nwant %q", got, want)
	}
}

func mountedAt(t *testing.T, dir string) bool {
	t.Helper()
	ms, err := readMountinfo()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ms {
		if e.mountPoint == dir && e.fstype == "fuse.kura" {
			return true
		}
	}
	return false
}

func TestExistingFilesAndShellAppend(t *testing.T) {
	f := mountT(t, map[string]string{"old.log": "old line\n"}, nil)
	if !mountedAt(t, f.dir) {
		t.Fatal("not in mountinfo")
	}
	b, err := os.ReadFile(f.path("old.log"))
	if err != nil || string(b) != "old line\n" {
		t.Fatalf("read old file through the mount: %q %v", b, err)
	}
	ents, err := os.ReadDir(f.dir)
	if err != nil || len(ents) != 1 || ents[0].Name() != "old.log" {
		t.Fatalf("readdir: %v %v", ents, err)
	}

	cmd := exec.Command("/bin/sh", "-c", "echo line >> old.log")
	cmd.Dir = f.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sh: %v %s", err, out)
	}
	ws := f.sink.all()
	if len(ws) != 1 || len(ws[0].Records) != 1 || string(ws[0].Records[0]) != "line" {
		t.Fatalf("writes: %+v", ws)
	}
	w := ws[0]
	if w.Path != "old.log" || w.Binary || w.PID != uint32(cmd.Process.Pid) || w.TID != w.PID ||
		time.Since(time.Unix(0, w.Time)) > time.Minute {
		t.Fatalf("write: %+v (sh pid %d)", w, cmd.Process.Pid)
	}
	// The bytes are in the real file, even while mounted.
	if got := f.underFile(t, "old.log"); got != "old line\nline\n" {
		t.Fatalf("underlying file: %q", got)
	}
	if err := f.m.Unmount(); err != nil {
		t.Fatal(err)
	}
	f.m.Wait()
	if mountedAt(t, f.dir) {
		t.Fatal("still in mountinfo after Unmount")
	}
	if b, _ := os.ReadFile(f.path("old.log")); string(b) != "old line\nline\n" {
		t.Fatalf("after unmount: %q", b)
	}
	if err := f.m.Unmount(); err != nil {
		t.Fatalf("second Unmount: %v", err)
	}
}

func TestLines(t *testing.T) {
	f := mountT(t, nil, nil)

	// One write per line.
	fl := openT(t, f.path("a.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND)
	for i := range 5 {
		writeT(t, fl, fmt.Sprintf("line %d\n", i))
	}
	ws := f.sink.all()
	if len(ws) != 5 {
		t.Fatalf("%d writes, want 5", len(ws))
	}
	wantLines(t, f.sink.lines("a.log"), "line 0", "line 1", "line 2", "line 3", "line 4")

	// A partial last line waits for close.
	f.sink.reset()
	writeT(t, fl, "part")
	writeT(t, fl, "ial")
	wantLines(t, f.sink.lines("a.log"))
	if err := fl.Close(); err != nil {
		t.Fatal(err)
	}
	wantLines(t, f.sink.lines("a.log"), "partial")

	// \r\n and \r, also split over writes.
	f.sink.reset()
	fl = openT(t, f.path("a.log"), os.O_WRONLY|os.O_APPEND)
	writeT(t, fl, "x\r\ny\rz\n")
	writeT(t, fl, "p\r")
	writeT(t, fl, "\nq\n")
	writeT(t, fl, "\r\n")
	fl.Close()
	wantLines(t, f.sink.lines("a.log"), "x", "y", "z", "p", "q", "")

	// A big write of many lines, cut into several FUSE writes by the kernel.
	f.sink.reset()
	var big bytes.Buffer
	var want []string
	for i := range 60000 {
		l := fmt.Sprintf("big line %06d %s", i, strings.Repeat("x", i%50))
		want = append(want, l)
		big.WriteString(l + "\n")
	}
	fl = openT(t, f.path("big.log"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if n, err := fl.Write(big.Bytes()); err != nil || n != big.Len() {
		t.Fatal(n, err)
	}
	fl.Close()
	if len(f.sink.all()) < 2 {
		t.Errorf("a %d byte write came as %d FUSE writes", big.Len(), len(f.sink.all()))
	}
	wantLines(t, f.sink.lines("big.log"), want...)
	if got := f.underFile(t, "big.log"); got != big.String() {
		t.Fatalf("underlying big.log: %d bytes, want %d", len(got), big.Len())
	}
	st := f.m.Stats()
	if st.Records < 60000 || st.Bytes < uint64(big.Len()) || st.EmitErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPIDs(t *testing.T) {
	f := mountT(t, nil, nil)
	fl := openT(t, f.path("p.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND)

	done := make(chan int)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid := unix.Gettid()
		fl.WriteString("from thread\n")
		fl.WriteString("partial from thread")
		done <- tid
	}()
	tid := <-done
	fl.Close() // flushed by another thread: still the writer's ids
	ws := f.sink.all()
	if len(ws) != 2 {
		t.Fatalf("writes %+v", ws)
	}
	for _, w := range ws {
		if w.PID != uint32(os.Getpid()) || w.TID != uint32(tid) {
			t.Fatalf("write %q: pid %d tid %d, want %d %d", w.Records, w.PID, w.TID, os.Getpid(), tid)
		}
	}

	f.sink.reset()
	cmd := startChild(t, f.path("c.log"), "child", 3)
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	ws = f.sink.all()
	if len(ws) != 3 {
		t.Fatalf("child writes %+v", ws)
	}
	for _, w := range ws {
		if w.PID != uint32(cmd.Process.Pid) || w.TID == 0 {
			t.Fatalf("child write: pid %d tid %d, child is %d", w.PID, w.TID, cmd.Process.Pid)
		}
	}
}

// checkWriters checks that each tag's lines "<tag> <i>" came once each, in
// order, n per tag.
func checkWriters(t *testing.T, lines []string, tags []string, n int) {
	t.Helper()
	next := map[string]int{}
	for _, l := range lines {
		tag, num, ok := strings.Cut(l, " ")
		i, err := strconv.Atoi(num)
		if !ok || err != nil {
			t.Fatalf("garbled record %q", l)
		}
		if i != next[tag] {
			t.Fatalf("writer %s: record %d, want %d", tag, i, next[tag])
		}
		next[tag]++
	}
	for _, tag := range tags {
		if next[tag] != n {
			t.Fatalf("writer %s: %d records, want %d", tag, next[tag], n)
		}
	}
	if len(lines) != n*len(tags) {
		t.Fatalf("%d records, want %d", len(lines), n*len(tags))
	}
}

func TestConcurrentWriters(t *testing.T) {
	f := mountT(t, nil, nil)
	const n = 300
	var tags []string
	var wg sync.WaitGroup
	errc := make(chan error, 16)

	// Goroutines with their own descriptors.
	for g := range 4 {
		tag := fmt.Sprintf("g%d", g)
		tags = append(tags, tag)
		wg.Go(func() {
			fl, err := os.OpenFile(f.path("c.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
			if err != nil {
				errc <- err
				return
			}
			defer fl.Close()
			for i := range n {
				if _, err := fmt.Fprintf(fl, "%s %d\n", tag, i); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	// Goroutines sharing one descriptor.
	shared := openT(t, f.path("c.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND)
	for g := range 3 {
		tag := fmt.Sprintf("s%d", g)
		tags = append(tags, tag)
		wg.Go(func() {
			for i := range n {
				if _, err := fmt.Fprintf(shared, "%s %d\n", tag, i); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	// Processes.
	var cmds []*exec.Cmd
	for p := range 3 {
		tag := fmt.Sprintf("p%d", p)
		tags = append(tags, tag)
		cmds = append(cmds, startChild(t, f.path("c.log"), tag, n))
	}
	wg.Wait()
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	lines := f.sink.lines("c.log")
	checkWriters(t, lines, tags, n)
	// Each child's records carry its pid.
	for i, c := range cmds {
		tag := fmt.Sprintf("p%d ", i)
		for _, w := range f.sink.all() {
			if strings.HasPrefix(string(w.Records[0]), tag) && w.PID != uint32(c.Process.Pid) {
				t.Fatalf("%s: pid %d, want %d", tag, w.PID, c.Process.Pid)
			}
		}
	}
	// The local file has the same lines.
	local := strings.Split(strings.TrimSuffix(f.underFile(t, "c.log"), "\n"), "\n")
	checkWriters(t, local, tags, n)
}

func TestRules(t *testing.T) {
	rules := func(p string) Rule {
		switch p {
		case "local.log":
			return Rule{Transfer: true, KeepLocal: true}
		case "remote.log":
			return Rule{Transfer: true}
		case "plain.log":
			return Rule{KeepLocal: true}
		case "bin.dat":
			return Rule{Transfer: true, KeepLocal: true, Binary: true}
		case "short.log":
			return Rule{Transfer: true, KeepLocal: true, MaxLine: 4}
		case "drop.log":
			return Rule{Transfer: true, KeepLocal: true, MaxLine: 4, OverLong: record.DropOverLong}
		}
		t.Errorf("rule for unexpected path %q", p)
		return Rule{}
	}
	f := mountT(t, map[string]string{"remote.log": "orig\n"}, rules)
	for _, name := range []string{"local.log", "remote.log", "plain.log", "bin.dat", "short.log", "drop.log"} {
		fl := openT(t, f.path(name), os.O_WRONLY|os.O_CREATE|os.O_APPEND)
		writeT(t, fl, "one\ntwo\n")
		writeT(t, fl, "three")
		if name == "short.log" || name == "drop.log" {
			writeT(t, fl, "four\nlonger line\nok\n")
		}
		if err := fl.Close(); err != nil {
			t.Fatal(name, err)
		}
	}
	wantLines(t, f.sink.lines("local.log"), "one", "two", "three")
	wantLines(t, f.sink.lines("remote.log"), "one", "two", "three")
	wantLines(t, f.sink.lines("plain.log"))
	wantLines(t, f.sink.lines("bin.dat"), "one\ntwo\n", "three")
	wantLines(t, f.sink.lines("short.log"), "one", "two", "thre", "efou", "r", "long", "er l", "ine", "ok")
	wantLines(t, f.sink.lines("drop.log"), "one", "two", "ok")
	for _, w := range f.sink.all() {
		if w.Binary != (w.Path == "bin.dat") {
			t.Fatalf("Binary flag of %+v", w)
		}
	}
	st := f.m.Stats()
	if st.OverLongSplit != 3 || st.OverLongDropped != 2 {
		t.Fatalf("over-long stats %+v", st)
	}

	// The read-only open of a file does not ask for its rule.
	if b, err := os.ReadFile(f.path("remote.log")); err != nil || string(b) != "orig\n" {
		t.Fatalf("remote.log through the mount: %q %v", b, err)
	}

	if err := f.m.Unmount(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"local.log":  "one\ntwo\nthree",
		"remote.log": "orig\n",
		"plain.log":  "one\ntwo\nthree",
		"bin.dat":    "one\ntwo\nthree",
	} {
		if b, _ := os.ReadFile(f.path(name)); string(b) != want {
			t.Errorf("%s after unmount: %q, want %q", name, b, want)
		}
	}
}

func TestLogrotate(t *testing.T) {
	f := mountT(t, nil, nil)
	const n = 600
	rotateAt, reopenAt := n/3, n/2
	rotated := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- func() error {
			fl, err := os.OpenFile(f.path("app.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
			if err != nil {
				return err
			}
			for i := range n {
				if i == rotateAt {
					<-rotated // logrotate ran; keep writing to the old handle
				}
				if i == reopenAt { // the application's SIGHUP
					fl.Close()
					if fl, err = os.OpenFile(f.path("app.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
						return err
					}
				}
				if _, err := fmt.Fprintf(fl, "w %d\n", i); err != nil {
					return err
				}
			}
			return fl.Close()
		}()
	}()
	// Wait for the writer to reach the rotation point.
	for len(f.sink.lines("app.log")) < rotateAt {
		time.Sleep(time.Millisecond)
	}
	if err := os.Rename(f.path("app.log"), f.path("app.log.1")); err != nil {
		t.Fatal(err)
	}
	nf, err := os.OpenFile(f.path("app.log"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	nf.Close()
	close(rotated)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}

	lines := f.sink.lines("app.log")
	checkWriters(t, lines, []string{"w"}, n)
	for _, w := range f.sink.all() {
		if w.Path != "app.log" {
			t.Fatalf("record of %q", w.Path)
		}
	}
	var old, cur strings.Builder
	for i := range n {
		b := &old
		if i >= reopenAt {
			b = &cur
		}
		fmt.Fprintf(b, "w %d\n", i)
	}
	if got := f.underFile(t, "app.log.1"); got != old.String() {
		t.Fatalf("app.log.1: %q", got)
	}
	if got := f.underFile(t, "app.log"); got != cur.String() {
		t.Fatalf("app.log: %q", got)
	}
	if st, err := os.Stat(f.path("app.log")); err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("new app.log: %v %v", st, err)
	}
}

func TestTail(t *testing.T) {
	f := mountT(t, map[string]string{"t.log": "first\n"}, nil)

	// A reader at end of file sees a line appended through another handle.
	r := openT(t, f.path("t.log"), os.O_RDONLY)
	if b, err := io.ReadAll(r); err != nil || string(b) != "first\n" {
		t.Fatalf("%q %v", b, err)
	}
	w := openT(t, f.path("t.log"), os.O_WRONLY|os.O_APPEND)
	writeT(t, w, "second\n")
	if b, err := io.ReadAll(r); err != nil || string(b) != "second\n" {
		t.Fatalf("after append: %q %v", b, err)
	}

	// tail -F itself, across a rotation.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "tail", "-n", "+1", "-F", "-s", "0.1", f.path("t.log"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skip("no tail:", err)
	}
	defer func() { cancel(); cmd.Wait() }()
	sc := bufio.NewScanner(out)
	expect := func(want string) {
		t.Helper()
		if !sc.Scan() {
			t.Fatalf("tail ended waiting for %q: %v", want, sc.Err())
		}
		if sc.Text() != want {
			t.Fatalf("tail: %q, want %q", sc.Text(), want)
		}
	}
	expect("first")
	expect("second")
	writeT(t, w, "third\n")
	expect("third")
	w.Close()
	if err := os.Rename(f.path("t.log"), f.path("t.log.1")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.path("t.log"), []byte("fourth\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	expect("fourth")
}

func TestFileOps(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	f := mountT(t, map[string]string{"a.log": "abcdef\n"}, nil)

	if err := os.Mkdir(f.path("sub"), 0o775); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(f.under, "sub")); err != nil || !st.IsDir() {
		t.Fatalf("mkdir underneath: %v %v", st, err)
	}
	if err := os.WriteFile(f.path("sub/x.log"), []byte("in sub\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantLines(t, f.sink.lines("sub/x.log"), "in sub")
	if err := os.Rename(f.path("sub/x.log"), f.path("sub/y.log")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.path("sub/x.log")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("renamed file still there: %v", err)
	}
	if got := f.underFile(t, "sub/y.log"); got != "in sub\n" {
		t.Fatalf("renamed: %q", got)
	}
	ents, err := os.ReadDir(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"a.log", "sub"}) {
		t.Fatalf("readdir %v", names)
	}

	// stat, chmod, truncate.
	if err := os.Chmod(f.path("a.log"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(f.path("a.log"), 3); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(f.path("a.log"))
	if err != nil || st.Mode() != 0o600 || st.Size() != 3 {
		t.Fatalf("stat after chmod+truncate: %v %v", st, err)
	}
	if got := f.underFile(t, "a.log"); got != "abc" {
		t.Fatalf("truncated: %q", got)
	}
	var ust unix.Stat_t
	if err := unix.Stat(filepath.Join(f.under, "a.log"), &ust); err != nil || ust.Mode&0o777 != 0o600 {
		t.Fatalf("chmod underneath: %o %v", ust.Mode, err)
	}

	// symlink, readlink, writing through a symlink.
	if err := os.Symlink("sub/y.log", f.path("link")); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(f.path("link")); err != nil || target != "sub/y.log" {
		t.Fatalf("readlink %q %v", target, err)
	}
	if lst, err := os.Lstat(f.path("link")); err != nil || lst.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("lstat link: %v %v", lst, err)
	}
	if target, err := os.Readlink(filepath.Join(f.under, "link")); err != nil || target != "sub/y.log" {
		t.Fatalf("symlink underneath %q %v", target, err)
	}
	lf := openT(t, f.path("link"), os.O_WRONLY|os.O_APPEND)
	writeT(t, lf, "via link\n")
	lf.Close()
	wantLines(t, f.sink.lines("sub/y.log"), "via link") // "in sub" was written as sub/x.log
	// statx (stat(1) asks for the birth time) of a symlink and the root.
	out, err := exec.Command("stat", "-c", "%F %a", f.path("link"), f.dir).CombinedOutput()
	if err == nil && string(out) != "symbolic link 777\ndirectory 755\n" {
		t.Fatalf("stat(1): %q", out)
	}

	// unlink, rmdir.
	if err := os.Remove(f.path("link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(f.path("sub/y.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(f.path("sub")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(f.under, "sub")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("rmdir underneath: %v", err)
	}

	// Permission bits as the creator asked: umask 002 in a child, while
	// this process (the server) has 022.
	if out, err := exec.Command("/bin/sh", "-c", "umask 002; echo x > "+f.path("g.log")+"; mkdir "+f.path("gd")).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	for name, want := range map[string]os.FileMode{"g.log": 0o664, "gd": os.ModeDir | 0o775} {
		if st, err := os.Stat(filepath.Join(f.under, name)); err != nil || st.Mode() != want {
			t.Fatalf("%s: %v %v, want %v", name, st.Mode(), err, want)
		}
	}

	// The root's own attributes.
	if err := os.Chmod(f.dir, 0o750); err != nil {
		t.Fatal(err)
	}
	mt := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(f.dir, mt, mt); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(f.under); err != nil || st.Mode().Perm() != 0o750 || !st.ModTime().Equal(mt) {
		t.Fatalf("root chmod/chtimes: %v %v %v", st.Mode(), st.ModTime(), err)
	}
	// O_TMPFILE is refused (it would escape the interception).
	if fd, err := unix.Open(f.dir, unix.O_TMPFILE|unix.O_WRONLY, 0o600); err == nil {
		unix.Close(fd)
		t.Fatal("O_TMPFILE accepted")
	}
}

func TestSinkError(t *testing.T) {
	f := mountT(t, nil, nil)
	f.sink.fail = func(w Write) error {
		for _, r := range w.Records {
			if string(r) == "bad" {
				return errors.New("queue full")
			}
		}
		return nil
	}
	fl := openT(t, f.path("e.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND)
	writeT(t, fl, "good\n")
	if _, err := fl.WriteString("bad\n"); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write with failing sink: %v, want EIO", err)
	}
	writeT(t, fl, "good again\n")
	writeT(t, fl, "bad")
	if err := fl.Close(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("close with failing flush: %v, want EIO", err)
	}
	wantLines(t, f.sink.lines("e.log"), "good", "good again")
	if st := f.m.Stats(); st.EmitErrors != 2 || st.Emits != 2 || st.Writes != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNewErrors(t *testing.T) {
	sink := &fakeSink{}
	dir := t.TempDir()
	if _, err := New(Options{Dir: filepath.Join(dir, "missing"), Sink: sink}); err == nil {
		t.Fatal("missing dir: no error")
	}
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := New(Options{Dir: file, Sink: sink}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("not a dir: %v", err)
	}
	if _, err := New(Options{Dir: dir}); err == nil {
		t.Fatal("no sink: no error")
	}
	newMountT(t, Options{Dir: dir, Sink: sink, Logger: testLogger(t)})
	m, err := New(Options{Dir: dir, Sink: sink})
	if err == nil || !strings.Contains(err.Error(), "already mounted") {
		if err == nil {
			m.Unmount()
		}
		t.Fatalf("second mount: %v", err)
	}
	if err == nil || !errors.Is(err, ErrAlreadyMounted) {
		t.Fatalf("not ErrAlreadyMounted: %v", err)
	}
	// Also through a symlink to it.
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(dir, link)
	if m, err := New(Options{Dir: link, Sink: sink}); err == nil || !strings.Contains(err.Error(), "already mounted") {
		if err == nil {
			m.Unmount()
		}
		t.Fatalf("second mount via symlink: %v", err)
	}
}

// A kura mount whose server is gone (killed) is refused as stale.
func TestStaleMount(t *testing.T) {
	dir := t.TempDir()
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", fd)
	if err := unix.Mount("kura-ft", dir, "fuse.kura", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Error(err)
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	unix.Close(fd) // the "server" dies
	_, err = New(Options{Dir: dir, Sink: &fakeSink{}})
	if !errors.Is(err, ErrAlreadyMounted) || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("New over a stale mount: %v", err)
	}
}

func TestBusyUnmount(t *testing.T) {
	f := mountT(t, nil, nil)
	fl := openT(t, f.path("busy.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND)
	writeT(t, fl, "before\npartial")
	if err := f.m.Unmount(); err != nil {
		t.Fatal(err)
	}
	// The partial line was emitted by Unmount.
	wantLines(t, f.sink.lines("busy.log"), "before", "partial")
	if mountedAt(t, f.dir) {
		t.Fatal("still in mountinfo after a lazy Unmount")
	}
	// The plain directory is back for new opens...
	if b, err := os.ReadFile(f.path("busy.log")); err != nil || string(b) != "before\npartial" {
		t.Fatalf("plain file: %q %v", b, err)
	}
	// ...while the open file is still served and shipped.
	writeT(t, fl, " end\n")
	wantLines(t, f.sink.lines("busy.log"), "before", "partial", " end")
	select {
	case <-waitCh(f.m):
		t.Fatal("Wait returned with a file open")
	case <-time.After(50 * time.Millisecond):
	}
	fl.Close()
	select {
	case <-waitCh(f.m):
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after the last close")
	}
	if err := f.m.Unmount(); err != nil {
		t.Fatal(err)
	}
}

func TestExternalUnmount(t *testing.T) {
	f := mountT(t, nil, nil)
	if err := os.WriteFile(f.path("x.log"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(f.dir, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-waitCh(f.m):
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after umount")
	}
	if err := f.m.Unmount(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(f.path("x.log")); string(b) != "x\n" {
		t.Fatalf("after umount: %q", b)
	}
}

func TestMountinfoParse(t *testing.T) {
	data := []byte(`22 1 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 27 0:44 / /var/log/my\040app rw shared:5 - ext4 /dev/vdb rw
41 40 0:45 / /var/log/my\040app rw,nosuid,nodev - fuse.kura kura-ft rw,user_id=0
`)
	ms := parseMountinfo(data)
	if len(ms) != 4 {
		t.Fatalf("%+v", ms)
	}
	top, ok := topMount(ms, "/var/log/my app")
	if !ok || top.fstype != "fuse.kura" || top.dev != unix.Mkdev(0, 45) {
		t.Fatalf("top %+v %v", top, ok)
	}
	if _, ok := topMount(ms, "/var/log"); ok {
		t.Fatal("found a mount on /var/log")
	}
}

// A null go-fuse file system: one file whose Write just says yes.
type nullRoot struct{ fs.Inode }

func (r *nullRoot) OnAdd(ctx context.Context) {
	ch := r.NewPersistentInode(ctx, &nullFile{}, fs.StableAttr{Mode: syscall.S_IFREG})
	r.AddChild("null", ch, false)
}

type nullFile struct{ fs.Inode }

func (f *nullFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, 0, 0
}

func (f *nullFile) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	return uint32(len(data)), 0
}

func (f *nullFile) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o644
	return 0
}

func (f *nullFile) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o644
	return 0
}

type discardSink struct{}

func (discardSink) Emit(context.Context, Write) error { return nil }

// BenchmarkWrite: one write(2) of a 10-byte line per op.
func BenchmarkWrite(b *testing.B) {
	line := []byte("123456789\n")
	run := func(b *testing.B, path string) {
		fl, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		defer fl.Close()
		b.SetBytes(int64(len(line)))
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := fl.Write(line); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("plain", func(b *testing.B) {
		run(b, filepath.Join(b.TempDir(), "f.log"))
	})
	b.Run("nullfuse", func(b *testing.B) {
		dir := b.TempDir()
		timeout := time.Second
		server, err := fs.Mount(dir, &nullRoot{}, &fs.Options{
			MountOptions: fuse.MountOptions{
				DirectMount: true, DirectMountStrict: true, MaxWrite: maxWrite,
				MaxBackground: maxBackground, Name: "kura-null", DisableXAttrs: true,
			},
			EntryTimeout: &timeout, AttrTimeout: &timeout,
		})
		if err != nil {
			b.Fatal(err)
		}
		defer server.Unmount()
		run(b, filepath.Join(dir, "null"))
	})
	kura := func(b *testing.B, xattrs bool) {
		dir := b.TempDir()
		m, err := New(Options{Dir: dir, Sink: discardSink{}, XAttrs: xattrs})
		if err != nil {
			b.Fatal(err)
		}
		defer func() { m.Unmount(); m.Wait() }()
		run(b, filepath.Join(dir, "f.log"))
	}
	b.Run("kura", func(b *testing.B) { kura(b, false) })
	// With xattrs passed through, the kernel asks for security.capability
	// before every write.
	b.Run("kura-xattrs", func(b *testing.B) { kura(b, true) })
}

func TestAppendSemantics(t *testing.T) {
	f := mountT(t, map[string]string{"a.log": "1\n"}, nil)
	// Opened, and created, with O_APPEND through the mount.
	a := openT(t, f.path("a.log"), os.O_WRONLY|os.O_APPEND)
	c := openT(t, f.path("c.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL)
	writeT(t, a, "2\n")
	writeT(t, c, "2\n")
	// Someone writes underneath, unseen by the kernel's view of the size
	// (a process that opened the file before the mount).
	for _, name := range []string{"a.log", "c.log"} {
		u, err := os.OpenFile(filepath.Join(f.under, name), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		u.WriteString("under\n")
		u.Close()
	}
	writeT(t, a, "3\n")
	writeT(t, c, "3\n")
	if got := f.underFile(t, "a.log"); got != "1\n2\nunder\n3\n" {
		t.Fatalf("a.log: %q", got)
	}
	if got := f.underFile(t, "c.log"); got != "2\nunder\n3\n" {
		t.Fatalf("c.log: %q", got)
	}
	// Without O_APPEND, writes go where they are aimed.
	w := openT(t, f.path("a.log"), os.O_WRONLY)
	if _, err := w.WriteAt([]byte("X"), 2); err != nil {
		t.Fatal(err)
	}
	if got := f.underFile(t, "a.log"); got != "1\nX\nunder\n3\n" {
		t.Fatalf("a.log after pwrite: %q", got)
	}
	w.Close() // "X" is a partial line until then
	wantLines(t, f.sink.lines("a.log"), "2", "3", "X")
}

func TestXAttrs(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.log"), nil, 0o644)
	if err := unix.Setxattr(dir, "user.kura", []byte("root"), 0); err != nil {
		t.Skip("no user xattrs here:", err)
	}
	uf, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer uf.Close()
	under := fmt.Sprintf("/proc/self/fd/%d", uf.Fd())

	m := newMountT(t, Options{Dir: dir, Sink: &fakeSink{}, Logger: testLogger(t)})
	buf := make([]byte, 64)
	if _, err := unix.Getxattr(filepath.Join(dir, "a.log"), "user.kura", buf); err == nil {
		t.Fatal("xattrs work with XAttrs off")
	}
	m.Unmount()

	newMountT(t, Options{Dir: dir, Sink: &fakeSink{}, Logger: testLogger(t), XAttrs: true})
	if err := unix.Setxattr(filepath.Join(dir, "a.log"), "user.kura", []byte("file"), 0); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{{"a.log", "file"}, {"", "root"}} {
		n, err := unix.Getxattr(filepath.Join(dir, c.path), "user.kura", buf)
		if err != nil || string(buf[:n]) != c.want {
			t.Fatalf("getxattr %q through the mount: %q %v", c.path, buf[:max(n, 0)], err)
		}
		n, err = unix.Getxattr(filepath.Join(under, c.path), "user.kura", buf)
		if err != nil || string(buf[:n]) != c.want {
			t.Fatalf("getxattr %q underneath: %q %v", c.path, buf[:max(n, 0)], err)
		}
	}
	if err := unix.Setxattr(dir, "user.kura2", []byte("r2"), 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.Listxattr(dir, buf)
	if err != nil || !strings.Contains(string(buf[:n]), "user.kura2") {
		t.Fatalf("listxattr root: %q %v", buf[:max(n, 0)], err)
	}
	if err := unix.Removexattr(dir, "user.kura2"); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Getxattr(under, "user.kura2", buf); err == nil {
		t.Fatal("removexattr on the root did not reach the directory")
	}
	// Writes still work with xattrs on.
	if err := os.WriteFile(filepath.Join(dir, "a.log"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWritev drives a handle's Writev directly: /dev/fuse delivers a write
// in one piece, other transports in several.
func TestWritev(t *testing.T) {
	sink := &fakeSink{}
	m := &Mount{sink: sink, log: testLogger(t), handles: map[*handle]struct{}{}}
	m.tgids.m = map[uint32]tgidEntry{}
	ctx := &fuse.Context{Caller: fuse.Caller{Pid: uint32(unix.Gettid())}}
	for _, rule := range []Rule{
		{Transfer: true, KeepLocal: true},
		{Transfer: true, KeepLocal: true, Binary: true},
	} {
		sink.reset()
		path := filepath.Join(t.TempDir(), "v.log")
		fl, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Dup(int(fl.Fd()))
		fl.Close()
		if err != nil {
			t.Fatal(err)
		}
		m.rules = func(string) Rule { return rule }
		fh, errno := m.newHandle(fs.NewLoopbackFile(fd).(*fs.LoopbackFile), "v.log", true)
		if errno != 0 {
			t.Fatal(errno)
		}
		h := fh.(*handle)
		n, errno := h.Writev(ctx, [][]byte{[]byte("ab"), []byte("c\nd"), []byte("e\nf")}, 0)
		if errno != 0 || n != 8 {
			t.Fatal(n, errno)
		}
		if errno := h.Release(ctx); errno != 0 {
			t.Fatal(errno)
		}
		if b, _ := os.ReadFile(path); string(b) != "abc\nde\nf" {
			t.Fatalf("file %q", b)
		}
		if rule.Binary {
			wantLines(t, sink.lines("v.log"), "abc\nde\nf")
		} else {
			wantLines(t, sink.lines("v.log"), "abc", "de", "f")
		}
		for _, w := range sink.all() {
			if w.PID != uint32(os.Getpid()) {
				t.Fatalf("pid %d", w.PID)
			}
		}
		if len(m.handles) != 0 {
			t.Fatal("handle still registered after Release")
		}
	}
}
