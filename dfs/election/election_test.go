package election

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/dal/daltest"
	"github.com/kura-dev/kura/dfs/dal/open"
)

func TestMain(m *testing.M) { os.Exit(daltest.Main(m)) }

// forEachBackend runs fn on a fresh SQLite and a fresh PostgreSQL database.
func forEachBackend(t *testing.T, fn func(t *testing.T, store func() dal.Store)) {
	backends := []struct {
		name string
		url  func(t testing.TB) string
	}{
		{"sqlite", func(t testing.TB) string { return "sqlite://" + filepath.Join(t.TempDir(), "meta.db") }},
		{"postgres", daltest.PostgresURL},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			url := b.url(t)
			// Each elector gets its own store, as each namenode has.
			fn(t, func() dal.Store {
				s, err := open.Open(context.Background(), url)
				if err != nil {
					t.Fatalf("open %s: %v", url, err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			})
		})
	}
}

// fast is a configuration with short rounds for tests.
func fast(name string) Config {
	return Config{Period: 40 * time.Millisecond, DeadAfter: 600 * time.Millisecond, RPCAddress: name + ":8020", HTTPAddress: name + ":9870"}
}

func start(t *testing.T, s dal.Store, cfg Config) *Elector {
	t.Helper()
	e, err := Start(context.Background(), s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leaders returns the ids of the electors that say they lead.
func leaders(es ...*Elector) []int64 {
	var out []int64
	for _, e := range es {
		if e.IsLeader() {
			out = append(out, e.ID())
		}
	}
	return out
}

// agreeOn reports whether every elector's last round names leader.
func agreeOn(leader int64, es ...*Elector) bool {
	for _, e := range es {
		if e.State().Leader != leader {
			return false
		}
	}
	return true
}

func TestOneLeaderAndHandover(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store func() dal.Store) {
		a := start(t, store(), fast("a"))
		b := start(t, store(), fast("b"))
		c := start(t, store(), fast("c"))
		if !(a.ID() < b.ID() && b.ID() < c.ID()) {
			t.Fatalf("ids %d, %d, %d: want increasing in start order", a.ID(), b.ID(), c.ID())
		}
		// The first namenode leads from its first round; the others agree
		// once they ran one.
		waitFor(t, "a to lead and b and c to agree", func() bool { return a.IsLeader() && agreeOn(a.ID(), a, b, c) })
		if l := leaders(a, b, c); len(l) != 1 || l[0] != a.ID() {
			t.Fatalf("leaders %v, want [%d]", l, a.ID())
		}
		waitFor(t, "b to see a, b and c", func() bool { return len(b.State().Members) == 3 })
		st := b.State()
		if st.Members[0].RPCAddress != "a:8020" || st.Members[2].HTTPAddress != "c:9870" || !st.Members[2].Alive {
			t.Errorf("b's members %+v: want a, b, c alive with their addresses", st.Members)
		}

		// A graceful stop deletes the row: b takes over at its next round.
		if err := a.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "b to lead after a closed", func() bool { return b.IsLeader() && agreeOn(b.ID(), b, c) })
		if c.IsLeader() {
			t.Fatal("c leads beside b")
		}

		// A crash leaves the row: b's counter stands still, c takes over
		// after DeadAfter and deletes b's row after twice that.
		crashed := time.Now()
		b.crash()
		waitFor(t, "c to lead after b crashed", c.IsLeader)
		// c times b's silence from when it saw b's last round, which may
		// have come up to a period before the crash was recorded here.
		if d, cfg := time.Since(crashed), fast(""); d < cfg.DeadAfter-cfg.Period {
			t.Errorf("c took over %v after the crash, before DeadAfter %v (less a period, %v)", d, cfg.DeadAfter, cfg.Period)
		}
		waitFor(t, "b's row to be deleted", func() bool { return len(c.State().Members) == 1 })
	})
}

// TestRejoinAfterEviction: a namenode taken for dead (its rounds stalled
// past 2×DeadAfter) finds its row deleted, joins again under a new id and
// does not take the lead from the live leader.
func TestRejoinAfterEviction(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store func() dal.Store) {
		a := start(t, store(), fast("a"))
		s := store()
		b := start(t, s, fast("b"))
		waitFor(t, "agreement on a", func() bool { return agreeOn(a.ID(), a, b) })
		// b's row is deleted behind its back, as a's round deletes a dead
		// namenode's: b must notice and join again.
		old := b.ID()
		if err := s.Tx(context.Background(), func(tx dal.Tx) error { return tx.DeleteNamenode(context.Background(), old) }); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "b to rejoin", func() bool { return b.ID() > old && len(a.State().Members) == 2 })
		waitFor(t, "agreement on a after b rejoined", func() bool { return agreeOn(a.ID(), a, b) })
		if b.IsLeader() {
			t.Fatalf("b leads after rejoining: %+v", b.State())
		}
	})
}

// TestNeverTwoLeaders runs rounds of four electors while leaders crash one
// by one and checks at every poll that at most one claims the lead.
func TestNeverTwoLeaders(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store func() dal.Store) {
		var es []*Elector
		for i := range 4 {
			es = append(es, start(t, store(), fast(fmt.Sprint("n", i))))
		}
		var mu sync.Mutex
		var violation string
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
				if l := leaders(es...); len(l) > 1 {
					mu.Lock()
					violation = fmt.Sprintf("leaders %v at once", l)
					mu.Unlock()
				}
			}
		}()
		for i := range 3 {
			waitFor(t, fmt.Sprintf("n%d to lead", i), es[i].IsLeader)
			es[i].crash()
		}
		waitFor(t, "n3 to lead", es[3].IsLeader)
		close(stop)
		wg.Wait()
		if violation != "" {
			t.Fatal(violation)
		}
	})
}

func TestBadConfig(t *testing.T) {
	s, err := open.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = Start(context.Background(), s, Config{Period: time.Second, DeadAfter: time.Second})
	if err == nil {
		t.Fatal("dead-after below twice the period accepted")
	}
}
