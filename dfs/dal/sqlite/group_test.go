package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/dal/daltest"
	"github.com/kura-dev/kura/dfs/dal/sqlite"
)

// TestConformanceNoGroup runs the conformance suite with grouping off.
func TestConformanceNoGroup(t *testing.T) {
	daltest.RunConformance(t, func(t testing.TB) dal.Store { return openTemp(t, sqlite.Options{MaxGroup: 1}) })
}

// waitFor polls cond until it holds, failing the test after a while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitDone waits for wg, failing the test (a deadlock) after a while.
func waitDone(t *testing.T, what string, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s: deadlock?", what)
	}
}

// txCall is one Tx call of runGrouped.
type txCall struct {
	ctx context.Context // nil: context.Background()
	fn  func(dal.Tx) error
}

// outcome is how a Tx call ended: its error, or the value it panicked with.
type outcome struct {
	err      error
	panicked any
}

// blocker is a Tx call that holds the writer: its function waits for
// release, then sets variable "blocker".
type blocker struct {
	entered, release chan struct{}
	once             sync.Once
	done             chan outcome
}

func startBlocker(t *testing.T, s *sqlite.Store) *blocker {
	t.Helper()
	b := &blocker{entered: make(chan struct{}), release: make(chan struct{}), done: make(chan outcome, 1)}
	go func() {
		ctx := context.Background()
		b.done <- call(s, txCall{fn: func(tx dal.Tx) error {
			b.once.Do(func() { close(b.entered) })
			<-b.release
			return tx.SetVariable(ctx, "blocker", 1)
		}})
	}()
	select {
	case <-b.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the first transaction never started")
	}
	return b
}

// call runs c, recovering a panic.
func call(s *sqlite.Store, c txCall) (o outcome) {
	defer func() {
		if p := recover(); p != nil {
			o.panicked = p
		}
	}()
	ctx := c.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	o.err = s.Tx(ctx, c.fn)
	return o
}

// runGrouped makes calls one group: a first Tx call holds the writer until
// the calls are queued behind it, in order; beforeRelease (if not nil) runs
// then. It returns the calls' outcomes, the blocker's first.
func runGrouped(t *testing.T, s *sqlite.Store, beforeRelease func(), calls ...txCall) []outcome {
	t.Helper()
	b := startBlocker(t, s)
	outs := make([]outcome, len(calls)+1)
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i+1] = call(s, c)
		}()
		waitFor(t, fmt.Sprintf("call %d to queue", i), func() bool { return sqlite.QueueLen(s) == i+1 })
	}
	if beforeRelease != nil {
		beforeRelease()
	}
	close(b.release)
	waitDone(t, "the grouped calls", &wg)
	select {
	case outs[0] = <-b.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the first transaction never ended")
	}
	return outs
}

// setVar is a Tx function setting variable name to 1.
func setVar(name string) func(dal.Tx) error {
	return func(tx dal.Tx) error { return tx.SetVariable(context.Background(), name, 1) }
}

// vars reads the variables names, reporting which exist.
func vars(t *testing.T, s dal.Store, names ...string) map[string]bool {
	t.Helper()
	ctx := context.Background()
	got := map[string]bool{}
	err := s.ReadTx(ctx, func(tx dal.Tx) error {
		for _, n := range names {
			_, err := tx.GetVariable(ctx, n)
			switch {
			case err == nil:
				got[n] = true
			case !errors.Is(err, dal.ErrNotFound):
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// wantVars checks which of the variables exist.
func wantVars(t *testing.T, s dal.Store, present []string, absent []string) {
	t.Helper()
	got := vars(t, s, append(append([]string{}, present...), absent...)...)
	for _, n := range present {
		if !got[n] {
			t.Errorf("variable %q missing", n)
		}
	}
	for _, n := range absent {
		if got[n] {
			t.Errorf("variable %q present, want it rolled back", n)
		}
	}
}

// TestGroupCommitConcurrent has many goroutines write through Tx at once:
// every write lands, and (grouping on) in fewer commits than calls.
func TestGroupCommitConcurrent(t *testing.T) {
	const workers, rounds = 64, 8
	for _, maxGroup := range []int{0, 1} {
		t.Run(fmt.Sprintf("MaxGroup=%d", maxGroup), func(t *testing.T) {
			s := openTemp(t, sqlite.Options{MaxGroup: maxGroup})
			defer s.Close()
			var wg sync.WaitGroup
			errs := make(chan error, workers*rounds)
			var names []string
			for w := range workers {
				for i := range rounds {
					names = append(names, fmt.Sprintf("w%d.%d", w, i))
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range rounds {
						errs <- s.Tx(context.Background(), setVar(fmt.Sprintf("w%d.%d", w, i)))
					}
				}()
			}
			waitDone(t, "the writers", &wg)
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			wantVars(t, s, names, nil)
			st := s.Stats()
			t.Logf("%d calls in %d commits", st.Committed, st.Commits)
			if st.Committed != workers*rounds {
				t.Errorf("Stats().Committed = %d, want %d", st.Committed, workers*rounds)
			}
			if maxGroup == 1 && st.Commits != st.Committed {
				t.Errorf("without grouping, %d commits for %d calls", st.Commits, st.Committed)
			}
			if maxGroup != 1 && st.Commits >= st.Committed {
				t.Errorf("%d commits for %d concurrent calls: no grouping", st.Commits, st.Committed)
			}
			if maxGroup != 1 && sqlite.WriterStmts(s) == 0 {
				t.Error("no statement prepared on the writer")
			}
		})
	}
}

// TestGroupCommitGroups queues calls behind a transaction that holds the
// writer: they commit in groups of at most MaxGroup.
func TestGroupCommitGroups(t *testing.T) {
	const queued = 63
	for _, tc := range []struct {
		maxGroup    int
		wantCommits uint64
	}{
		{0, 2},                // the blocker, then all of the queued in one group
		{8, 1 + (queued+7)/8}, // the blocker, then groups of 8
		{100, 2},              // bounded by what is queued
		{queued + 1, 1 + 1},   // exactly fits
		{2, 1 + (queued+1)/2}, // small groups
		{7, 1 + (queued+6)/7}, // uneven
		{sqlite.DefaultMaxGroup, 2},
	} {
		t.Run(fmt.Sprintf("MaxGroup=%d", tc.maxGroup), func(t *testing.T) {
			s := openTemp(t, sqlite.Options{MaxGroup: tc.maxGroup})
			defer s.Close()
			var calls []txCall
			names := []string{"blocker"}
			for i := range queued {
				name := fmt.Sprintf("v%d", i)
				names = append(names, name)
				calls = append(calls, txCall{fn: setVar(name)})
			}
			for i, o := range runGrouped(t, s, nil, calls...) {
				if o.err != nil || o.panicked != nil {
					t.Fatalf("call %d: %v, panic %v", i, o.err, o.panicked)
				}
			}
			wantVars(t, s, names, nil)
			st := s.Stats()
			if st.Commits != tc.wantCommits || st.Committed != queued+1 {
				t.Errorf("Stats() = %+v, want %d commits of %d calls", st, tc.wantCommits, queued+1)
			}
		})
	}
}

// TestGroupFunctionErrors has one function of a group fail in each way
// Tx distinguishes; only that function's writes are undone and only its
// caller sees the failure.
func TestGroupFunctionErrors(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		fn   func(tx dal.Tx, attempt int) error
		// check checks the failing call's outcome and attempts.
		check func(t *testing.T, o outcome, attempts int)
		// committed tells whether the failing function's writes end up
		// committed.
		committed bool
	}{
		{
			name: "Error",
			fn: func(tx dal.Tx, _ int) error {
				if err := tx.SetVariable(ctx, "bad", 1); err != nil {
					return err
				}
				return fmt.Errorf("the operation failed: %w", boom)
			},
			check: func(t *testing.T, o outcome, attempts int) {
				if !errors.Is(o.err, boom) || attempts != 1 {
					t.Errorf("failing call: %v after %d attempts, want boom after 1", o.err, attempts)
				}
			},
		},
		{
			name: "Transient",
			fn: func(tx dal.Tx, attempt int) error {
				if err := tx.SetVariable(ctx, "bad", int64(attempt)); err != nil {
					return err
				}
				if attempt < 3 {
					return dal.MarkTransient(fmt.Errorf("injected transient failure %d", attempt))
				}
				return nil
			},
			check: func(t *testing.T, o outcome, attempts int) {
				if o.err != nil || attempts != 3 {
					t.Errorf("transiently failing call: %v after %d attempts, want success after 3", o.err, attempts)
				}
			},
			committed: true,
		},
		{
			name: "UniqueViolation",
			fn: func(tx dal.Tx, _ int) error {
				if err := tx.SetVariable(ctx, "bad", 1); err != nil {
					return err
				}
				// "taken" was inserted by the call before this one, in the
				// same group.
				return tx.InsertInode(ctx, &dal.Inode{ID: 11, ParentID: dal.RootID, Name: "taken", IsDir: true, Permission: 0o755})
			},
			check: func(t *testing.T, o outcome, attempts int) {
				if !errors.Is(o.err, dal.ErrExists) || attempts != 1 {
					t.Errorf("duplicate insert: %v after %d attempts, want ErrExists after 1", o.err, attempts)
				}
			},
		},
		{
			name: "Panic",
			fn: func(tx dal.Tx, _ int) error {
				if err := tx.SetVariable(ctx, "bad", 1); err != nil {
					return err
				}
				panic("kaboom")
			},
			check: func(t *testing.T, o outcome, attempts int) {
				if o.panicked != "kaboom" || attempts != 1 {
					t.Errorf("panicking call: err %v, panic %v after %d attempts; want panic kaboom after 1", o.err, o.panicked, attempts)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTemp(t, sqlite.Options{})
			defer s.Close()
			var attempts int
			outs := runGrouped(t, s, nil,
				txCall{fn: setVar("before")},
				txCall{fn: func(tx dal.Tx) error {
					return tx.InsertInode(ctx, &dal.Inode{ID: 10, ParentID: dal.RootID, Name: "taken", IsDir: true, Permission: 0o755})
				}},
				txCall{fn: func(tx dal.Tx) error { attempts++; return tc.fn(tx, attempts) }},
				txCall{fn: setVar("after")},
			)
			for _, i := range []int{0, 1, 2, 4} {
				if outs[i].err != nil || outs[i].panicked != nil {
					t.Errorf("call %d of the group: %v, panic %v", i, outs[i].err, outs[i].panicked)
				}
			}
			tc.check(t, outs[3], attempts)
			if tc.committed {
				wantVars(t, s, []string{"blocker", "before", "bad", "after"}, nil)
			} else {
				wantVars(t, s, []string{"blocker", "before", "after"}, []string{"bad"})
			}
			err := s.ReadTx(ctx, func(tx dal.Tx) error {
				in, err := tx.GetInode(ctx, dal.RootID, "taken", dal.LockNone)
				if err != nil {
					return err
				}
				if in.ID != 10 {
					return fmt.Errorf("taken is inode %d, want 10", in.ID)
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
			// The writer is usable afterwards (not left in a transaction).
			if err := s.Tx(ctx, setVar("later")); err != nil {
				t.Fatal(err)
			}
			wantVars(t, s, []string{"later"}, nil)
		})
	}
}

// TestGroupBrokenTransaction has a function hit an error after which SQLite
// may have rolled the whole transaction back (SQLITE_FULL): that call fails,
// the group is rolled back, and the other functions run again.
func TestGroupBrokenTransaction(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, sqlite.Options{})
	defer s.Close()
	if err := sqlite.SetMaxPageCount(s, 50); err != nil {
		t.Fatal(err)
	}
	var before, after, big atomic.Int32
	huge := strings.Repeat("x", 1<<20)
	var laterErr error
	outs := runGrouped(t, s, nil,
		txCall{fn: func(tx dal.Tx) error { before.Add(1); return tx.SetVariable(ctx, "before", 1) }},
		txCall{fn: func(tx dal.Tx) error {
			big.Add(1)
			if err := tx.SetVariable(ctx, "bad", 1); err != nil {
				return err
			}
			err := tx.InsertInode(ctx, &dal.Inode{ID: 10, ParentID: dal.RootID, Name: "big", Symlink: huge})
			if err == nil {
				return errors.New("a 1 MiB row fit in 50 pages")
			}
			// Ignore the error and write on: this must not run outside the
			// (rolled back) transaction.
			laterErr = tx.SetVariable(ctx, "sneaky", 1)
			return err
		}},
		txCall{fn: func(tx dal.Tx) error { after.Add(1); return tx.SetVariable(ctx, "after", 1) }},
	)
	if outs[0].err != nil || outs[1].err != nil || outs[3].err != nil {
		t.Fatalf("other calls of the group: %v, %v, %v", outs[0].err, outs[1].err, outs[3].err)
	}
	if err := outs[2].err; err == nil || !strings.Contains(err.Error(), "full") {
		t.Fatalf("oversized write: %v, want SQLITE_FULL", err)
	}
	if laterErr == nil {
		t.Error("a statement after SQLITE_FULL ran")
	}
	if before.Load() != 2 || big.Load() != 1 || after.Load() != 1 {
		// "before" ran in the lost group and again; "after" ran only once:
		// it had not run when the group broke.
		t.Errorf("runs: before %d, big %d, after %d; want 2, 1, 1", before.Load(), big.Load(), after.Load())
	}
	wantVars(t, s, []string{"blocker", "before", "after"}, []string{"bad", "sneaky"})
}

// TestGroupCancelQueued cancels a call while it waits in the queue: it
// returns the context's error and its function never runs.
func TestGroupCancelQueued(t *testing.T) {
	s := openTemp(t, sqlite.Options{})
	defer s.Close()
	cctx, cancel := context.WithCancel(context.Background())
	var ran atomic.Bool
	outs := runGrouped(t, s, cancel,
		txCall{fn: setVar("before")},
		txCall{ctx: cctx, fn: func(tx dal.Tx) error { ran.Store(true); return setVar("cancelled")(tx) }},
		txCall{fn: setVar("after")},
	)
	if !errors.Is(outs[2].err, context.Canceled) {
		t.Errorf("cancelled call: %v, want context.Canceled", outs[2].err)
	}
	if ran.Load() {
		t.Error("the cancelled call's function ran")
	}
	for _, i := range []int{0, 1, 3} {
		if outs[i].err != nil {
			t.Errorf("call %d: %v", i, outs[i].err)
		}
	}
	wantVars(t, s, []string{"blocker", "before", "after"}, []string{"cancelled"})
}

// TestGroupCancelAfterRun cancels a call's context while its function runs:
// the function's writes commit with the group and the call reports success.
func TestGroupCancelAfterRun(t *testing.T) {
	s := openTemp(t, sqlite.Options{})
	defer s.Close()
	cctx, cancel := context.WithCancel(context.Background())
	outs := runGrouped(t, s, nil,
		txCall{ctx: cctx, fn: func(tx dal.Tx) error {
			if err := tx.SetVariable(cctx, "mine", 1); err != nil {
				return err
			}
			cancel()
			return nil
		}},
		txCall{fn: setVar("after")},
	)
	for i, o := range outs {
		if o.err != nil {
			t.Errorf("call %d: %v", i, o.err)
		}
	}
	wantVars(t, s, []string{"blocker", "mine", "after"}, nil)
}

// TestGroupClose closes the store while one call runs and others are
// queued: the queued calls fail at once without running, the running one
// commits, Close returns and the committer goroutine ends.
func TestGroupClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	s := openTempAt(t, path, sqlite.Options{})
	b := startBlocker(t, s)
	const queued = 10
	var ran atomic.Int32
	errs := make(chan error, queued)
	var wg sync.WaitGroup
	for i := range queued {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Tx(context.Background(), func(tx dal.Tx) error { ran.Add(1); return setVar(fmt.Sprint("q", i))(tx) })
		}()
	}
	waitFor(t, "the calls to queue", func() bool { return sqlite.QueueLen(s) == queued })
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	waitDone(t, "the queued calls to fail", &wg)
	close(errs)
	for err := range errs {
		if !errors.Is(err, sqlite.ErrClosed) {
			t.Errorf("queued call during Close: %v, want ErrClosed", err)
		}
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a transaction ran", err)
	default:
	}
	close(b.release)
	select {
	case o := <-b.done:
		if o.err != nil {
			t.Errorf("the running call: %v, want its commit", o.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the running call never ended")
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close never returned")
	}
	select {
	case <-sqlite.CommitterStopped(s):
	default:
		t.Error("the committer goroutine still runs after Close")
	}
	if ran.Load() != 0 {
		t.Errorf("%d queued functions ran", ran.Load())
	}
	if err := s.Tx(context.Background(), setVar("late")); !errors.Is(err, sqlite.ErrClosed) {
		t.Errorf("Tx after Close: %v, want ErrClosed", err)
	}
	s2 := openTempAt(t, path, sqlite.Options{})
	defer s2.Close()
	wantVars(t, s2, []string{"blocker"}, []string{"q0", "late"})
}

// TestGroupCloseMidGroup closes the store while a group runs its first
// function: the functions of the group that have not run fail with
// ErrClosed without running, the running one commits.
func TestGroupCloseMidGroup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	s := openTempAt(t, path, sqlite.Options{})
	b := startBlocker(t, s)
	entered, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- s.Tx(context.Background(), func(tx dal.Tx) error {
			close(entered)
			<-release
			return setVar("first")(tx)
		})
	}()
	waitFor(t, "the first call to queue", func() bool { return sqlite.QueueLen(s) == 1 })
	const others = 5
	var ran atomic.Int32
	errs := make(chan error, others)
	var wg sync.WaitGroup
	for i := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Tx(context.Background(), func(tx dal.Tx) error { ran.Add(1); return setVar(fmt.Sprint("o", i))(tx) })
		}()
		waitFor(t, "the calls to queue", func() bool { return sqlite.QueueLen(s) == i+2 })
	}
	close(b.release) // the next group: first, then the others
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the group never started")
	}
	if n := sqlite.QueueLen(s); n != 0 {
		t.Fatalf("%d calls still queued, want all in the running group", n)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	// Close waits for the running function; once it has marked the store
	// closing, let the group go on.
	waitFor(t, "Close to begin", func() bool { return sqlite.Closing(s) })
	close(release)
	waitDone(t, "the group's other calls", &wg)
	close(errs)
	for err := range errs {
		if !errors.Is(err, sqlite.ErrClosed) {
			t.Errorf("a call of the group not yet run at Close: %v, want ErrClosed", err)
		}
	}
	if err := <-first; err != nil {
		t.Errorf("the running call: %v, want its commit", err)
	}
	if o := <-b.done; o.err != nil {
		t.Errorf("the blocker: %v", o.err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close never returned")
	}
	if ran.Load() != 0 {
		t.Errorf("%d functions ran after Close", ran.Load())
	}
	s2 := openTempAt(t, path, sqlite.Options{})
	defer s2.Close()
	wantVars(t, s2, []string{"blocker", "first"}, []string{"o0"})
}

// BenchmarkTxConcurrent measures small write transactions (one variable
// set) from 32 goroutines per CPU, without and with group commit; it
// reports the average group size.
func BenchmarkTxConcurrent(b *testing.B) {
	for _, g := range []int{1, 0} {
		b.Run(fmt.Sprintf("MaxGroup=%d", g), func(b *testing.B) {
			s := openTemp(b, sqlite.Options{MaxGroup: g})
			defer s.Close()
			var n atomic.Int64
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					i := n.Add(1)
					err := s.Tx(ctx, func(tx dal.Tx) error { return tx.SetVariable(ctx, fmt.Sprint("v", i), i) })
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			st := s.Stats()
			b.ReportMetric(float64(st.Committed)/float64(max(st.Commits, 1)), "calls/commit")
		})
	}
}
