package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Crash safety is tested with a real child process: the test binary runs
// itself again with -test.run=^TestCrashHelper$ and KURA_CRASH_* in the
// environment; TestCrashHelper then does the child's work instead of
// skipping.
const (
	envCrashDir   = "KURA_CRASH_DIR"
	envCrashMode  = "KURA_CRASH_MODE"
	envCrashStart = "KURA_CRASH_START"
	envCrashNoLog = "KURA_CRASH_NOLOG"

	crashQueue = "crash-queue"
)

// crashValue is the value of push number n: about 100 bytes, with n in it.
func crashValue(n uint64) string {
	return fmt.Sprintf("item %012d %s", n, strings.Repeat("x", 82))
}

// TestCrashHelper is the child side of the crash tests. Run directly (no
// KURA_CRASH_DIR), it skips: that is the re-exec pattern, not a skipped test.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(envCrashDir)
	if dir == "" {
		t.Skip("child process of the crash tests; runs only when re-executed by them")
	}
	switch mode := os.Getenv(envCrashMode); mode {
	case "push":
		crashChildPush(dir)
	case "damaged":
		crashChildDamaged(dir)
	default:
		fmt.Fprintf(os.Stderr, "unknown %s %q\n", envCrashMode, mode)
		os.Exit(3)
	}
}

// crashChildPush opens the store durably and pushes numbered values until it
// is killed, writing each number to stdout (unbuffered) once Push returned.
func crashChildPush(dir string) {
	start, err := strconv.ParseUint(os.Getenv(envCrashStart), 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad start:", err)
		os.Exit(3)
	}
	s, err := Open(dir, Options{Logger: quietLogger()}) // NoSync false: durable
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	ctx := context.Background()
	giveUp := time.Now().Add(2 * time.Minute) // a guard in case the parent is gone
	for n := start; n < start+1_000_000 && time.Now().Before(giveUp); n++ {
		if err := s.Push(ctx, []byte(crashQueue), []byte(crashValue(n))); err != nil {
			fmt.Fprintln(os.Stderr, "push:", err)
			os.Exit(4)
		}
		// One write(2) per line: a pipe write this small is atomic.
		if _, err := os.Stdout.WriteString(strconv.FormatUint(n, 10) + "\n"); err != nil {
			os.Exit(5)
		}
	}
	fmt.Fprintln(os.Stderr, "never killed: giving up")
	os.Exit(6)
}

// crashChildDamaged opens a store whose table files are damaged and reads
// it, printing one RESULT line per step. A crash (panic) is the failure the
// parent looks for.
func crashChildDamaged(dir string) {
	noLog := os.Getenv(envCrashNoLog) == "true"
	s, err := Open(dir, Options{Logger: quietLogger(), ChangeLog: !noLog})
	if err != nil {
		fmt.Printf("RESULT open corrupt=%v err=%v\n", errors.Is(err, ErrCorrupt), err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = s.Get(ctx, []byte("k500"))
	fmt.Printf("RESULT get corrupt=%v err=%v\n", errors.Is(err, ErrCorrupt), err)
	_, _, err = s.Scan(ctx, nil, nil, 10_000)
	fmt.Printf("RESULT scan corrupt=%v err=%v\n", errors.Is(err, ErrCorrupt), err)
	// Give Pebble's background jobs (table stats) a moment on the damaged
	// tables; they must not bring the process down either.
	time.Sleep(200 * time.Millisecond)
	fmt.Printf("RESULT close err=%v\n", s.Close())
}

// startChild re-executes the test binary as a crash-test child.
func startChild(t *testing.T, mode, dir string, env ...string) (*exec.Cmd, io.Reader, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), envCrashDir+"="+dir, envCrashMode+"="+mode)
	cmd.Env = append(cmd.Env, env...)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	stderr := &bytes.Buffer{}
	cmd.Stderr = stderr
	must(t, cmd.Start())
	// A guard against a hung child, not a timing assertion.
	timer := time.AfterFunc(3*time.Minute, func() { cmd.Process.Kill() })
	t.Cleanup(func() { timer.Stop() })
	return cmd, stdout, stderr
}

// crashRound runs one child that pushes from start on, kills it with SIGKILL
// once it has reported killAfter pushes, and returns every number it
// reported. With checkLock, the parent also checks that it cannot open the
// directory while the child has it.
func crashRound(t *testing.T, dir string, start uint64, killAfter int, checkLock bool) []uint64 {
	t.Helper()
	cmd, stdout, stderr := startChild(t, "push", dir, envCrashStart+"="+strconv.FormatUint(start, 10))
	r := bufio.NewReader(stdout)
	var reported []uint64
	killed := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			// EOF: the child is gone. A fragment without its newline would
			// be a torn line; pipe writes this small are atomic, so none.
			if line != "" {
				t.Errorf("torn line %q from the child", line)
			}
			break
		}
		n, perr := strconv.ParseUint(strings.TrimSuffix(line, "\n"), 10, 64)
		if perr != nil {
			t.Logf("child: %s", strings.TrimSpace(line))
			continue
		}
		if want := start + uint64(len(reported)); n != want {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child reported %d, want %d", n, want)
		}
		reported = append(reported, n)
		if len(reported) == 1 && checkLock {
			s2, err := Open(dir, Options{Logger: quietLogger()})
			if err == nil {
				s2.Close()
			}
			if !errors.Is(err, ErrLocked) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("Open while the child has the store: err = %v, want ErrLocked", err)
			}
			if pid := strconv.Itoa(cmd.Process.Pid); !strings.Contains(err.Error(), "pid "+pid) {
				t.Errorf("ErrLocked message %q does not name the child's pid %s", err, pid)
			}
		}
		if len(reported) == killAfter && !killed {
			must(t, cmd.Process.Signal(syscall.SIGKILL))
			killed = true
			// Keep reading: lines already in the pipe were reported too.
		}
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child ended with %v (after %d pushes), want killed; stderr:\n%s", err, len(reported), stderr)
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v after %d pushes, not by SIGKILL; stderr:\n%s", err, len(reported), stderr)
	}
	if len(reported) < killAfter {
		t.Fatalf("child reported only %d pushes before dying", len(reported))
	}
	return reported
}

// TestCrashDurability kills a child that pushes durably at random points,
// three times on the same directory, and checks after each kill that the
// queue holds exactly the pushes the child reported, in order, plus at most
// the one push it committed but had not reported yet.
func TestCrashDurability(t *testing.T) {
	dir := t.TempDir()
	next := uint64(1)
	ctx := t.Context()
	for round := range 3 {
		killAfter := 200 + rand.IntN(1800)
		reported := crashRound(t, dir, next, killAfter, true)
		last := reported[len(reported)-1]

		s := openT(t, dir, Options{})
		n, kind, err := s.QueueLen(ctx, b(crashQueue))
		must(t, err)
		if kind != PlainQueue {
			t.Fatalf("round %d: queue kind %v", round, kind)
		}
		var popped []uint64
		for {
			it, err := s.Pop(ctx, b(crashQueue), Front)
			if errors.Is(err, ErrNotFound) {
				break
			}
			must(t, err)
			var got uint64
			if _, err := fmt.Sscanf(string(it.Value), "item %d", &got); err != nil || string(it.Value) != crashValue(got) {
				t.Fatalf("round %d: damaged item %q", round, it.Value)
			}
			popped = append(popped, got)
		}
		if uint64(len(popped)) != n {
			t.Fatalf("round %d: QueueLen said %d, popped %d", round, n, len(popped))
		}
		// Every reported push, in order...
		for i, want := range reported {
			if i >= len(popped) {
				t.Fatalf("round %d: reported push %d is missing after the crash (popped %d items, child reported %d..%d)", round, want, len(popped), next, last)
			}
			if popped[i] != want {
				t.Fatalf("round %d: item %d is %d, want %d", round, i, popped[i], want)
			}
		}
		// ...and nothing else but possibly the one push in flight.
		extra := popped[len(reported):]
		if len(extra) > 1 || (len(extra) == 1 && extra[0] != last+1) {
			t.Fatalf("round %d: after the last reported push %d the queue holds %v", round, last, extra)
		}
		t.Logf("round %d: killed after %d reported pushes (%d..%d), %d unreported committed", round, len(reported), next, last, len(extra))
		closeT(t, s)
		next = last + uint64(len(extra)) + 1
	}
}

// TestOpenLockedByChild checks the cross-process lock: while a child has the
// store open, Open fails with ErrLocked naming the child's pid; once the
// child is killed, the directory opens again (the flock dies with it).
func TestOpenLockedByChild(t *testing.T) {
	dir := t.TempDir()
	reported := crashRound(t, dir, 1, 10, true)
	s := openT(t, dir, Options{})
	n, _, err := s.QueueLen(t.Context(), b(crashQueue))
	must(t, err)
	if n < uint64(len(reported)) {
		t.Fatalf("queue holds %d items, child reported %d", n, len(reported))
	}
	pid, err := os.ReadFile(filepath.Join(dir, lockFile))
	must(t, err)
	if strings.TrimSpace(string(pid)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("lock file says %q, want our pid %d", pid, os.Getpid())
	}
}

// TestOpenDamagedTable damages the sstables of a store and opens and reads
// it in a child process: the engine must report ErrCorrupt (at Open or at
// the first read), never crash the process. With the change log on, Open
// itself reads the damaged table (it looks for the last change); with it
// off, Open succeeds and the reads meet the damage.
func TestOpenDamagedTable(t *testing.T) {
	for _, noLog := range []bool{false, true} {
		t.Run(fmt.Sprintf("ChangeLog=%v", !noLog), func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, Options{Logger: quietLogger(), ChangeLog: !noLog, ReapInterval: time.Hour})
			must(t, err)
			for i := range 1000 {
				must(t, s.Set(t.Context(), b(fmt.Sprint("k", i)), b(fmt.Sprint("value ", i)), 0))
			}
			must(t, s.db.Flush())
			closeT(t, s)
			tables, err := filepath.Glob(filepath.Join(dir, "*.sst"))
			must(t, err)
			if len(tables) == 0 {
				t.Fatal("no sstable after a flush")
			}
			for _, f := range tables {
				fi, err := os.Stat(f)
				must(t, err)
				must(t, os.WriteFile(f, make([]byte, fi.Size()), 0o644))
			}
			cmd, stdout, stderr := startChild(t, "damaged", dir, fmt.Sprintf("%s=%v", envCrashNoLog, noLog))
			out, _ := io.ReadAll(stdout)
			var results []string
			for line := range strings.Lines(string(out)) {
				if r, ok := strings.CutPrefix(line, "RESULT "); ok {
					results = append(results, strings.TrimSpace(r))
				}
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("a store with damaged tables crashed the process (%v) instead of reporting ErrCorrupt; results before the crash: %q\n%s", err, results, panicSummary(stderr.String()))
			}
			if len(results) == 0 {
				t.Fatalf("child printed no result:\n%s", out)
			}
			t.Logf("child: %q", results)
			if strings.HasPrefix(results[0], "open ") {
				if !strings.HasPrefix(results[0], "open corrupt=true") {
					t.Fatalf("Open: %s, want ErrCorrupt", results[0])
				}
				return
			}
			for _, r := range results {
				if (strings.HasPrefix(r, "get ") || strings.HasPrefix(r, "scan ")) && !strings.Contains(r, "corrupt=true") {
					t.Errorf("reading a damaged table: %s, want ErrCorrupt", r)
				}
			}
		})
	}
}

// panicSummary keeps the panic line and the top of the panicking
// goroutine's stack from a child's stderr.
func panicSummary(stderr string) string {
	lines := strings.Split(stderr, "\n")
	var out []string
	for i, l := range lines {
		if strings.HasPrefix(l, "panic:") {
			out = append(out, l)
		}
		if strings.HasPrefix(l, "goroutine ") && strings.Contains(l, "[running]") {
			out = append(out, lines[i:min(i+13, len(lines))]...)
			break
		}
	}
	if len(out) == 0 {
		return head(stderr, 20)
	}
	return strings.Join(out, "\n")
}

func head(s string, lines int) string {
	parts := strings.SplitN(s, "\n", lines+1)
	if len(parts) > lines {
		parts = parts[:lines]
	}
	return strings.Join(parts, "\n")
}
