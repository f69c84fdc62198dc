package namespace

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/dal/daltest"
	"github.com/kura-dev/kura/dfs/dal/open"
	"github.com/kura-dev/kura/dfs/hdfs"
)

func TestMain(m *testing.M) { os.Exit(daltest.Main(m)) }

// backend is a metadata database kind the suite runs on.
type backend struct {
	name string
	// newURL returns the URL of a fresh, empty database for the test.
	newURL func(t testing.TB) string
}

// backends returns SQLite and PostgreSQL: every test runs on both.
func backends() []backend {
	return []backend{
		{name: "sqlite", newURL: func(t testing.TB) string {
			return "sqlite://" + filepath.Join(t.TempDir(), "meta.db")
		}},
		{name: "postgres", newURL: func(t testing.TB) string { return daltest.PostgresURL(t) }},
	}
}

// openStore opens the database at url, closed when the test ends.
func openStore(t testing.TB, url string) dal.Store {
	t.Helper()
	s, err := open.Open(context.Background(), url)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newNS returns a Namespace on store, closed when the test ends.
func newNS(t testing.TB, store dal.Store, cfg Config) *Namespace {
	t.Helper()
	ns, err := New(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// forEachBackend runs fn as a subtest per backend with a fresh Namespace.
func forEachBackend(t *testing.T, cfg Config, fn func(t *testing.T, ns *Namespace)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ns := newNS(t, openStore(t, b.newURL(t)), cfg)
			fn(t, ns)
			checkFsck(t, ns)
		})
	}
}

// checkFsck fails the test unless Fsck finds no problem.
func checkFsck(t testing.TB, ns *Namespace) *FsckReport {
	t.Helper()
	r, err := ns.Fsck(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Err(); err != nil {
		t.Error(err)
	}
	return r
}

// Callers.
var (
	super = hdfs.User{Name: "root"}
	alice = hdfs.User{Name: "alice", Groups: []string{"staff"}}
	bob   = hdfs.User{Name: "bob", Groups: []string{"staff"}}
	carol = hdfs.User{Name: "carol", Groups: []string{"guests"}}
	admin = hdfs.User{Name: "admin", Groups: []string{"supergroup"}}
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.UnixMilli(1_700_000_000_000)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakePlacement places blocks on storages s1..sN.
type fakePlacement struct{ storages []string }

func (p fakePlacement) ChooseTargets(_ context.Context, req PlacementRequest) ([]Target, error) {
	var ts []Target
	for _, s := range p.storages {
		if len(ts) == req.Replication {
			break
		}
		excluded := false
		for _, e := range req.Exclude {
			excluded = excluded || e == s
		}
		if !excluded {
			ts = append(ts, Target{StorageID: s, Addr: s + ":9866"})
		}
	}
	return ts, nil
}

// wantClass fails unless err is an exception of class c (by errors.Is and
// by the class name hdfs.ToRemote reports).
func wantClass(t testing.TB, err error, c *hdfs.Class) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", c.Name())
	}
	if !errors.Is(err, c) {
		t.Fatalf("got %v, want %s", err, c.Name())
	}
	if re := hdfs.ToRemote(err); !re.Class().IsA(c) {
		t.Fatalf("ToRemote(%v) is %s, want %s", err, re.Exception, c.Name())
	}
}

// ok fails the test on err.
func ok(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// mkfile creates and closes an empty file as u.
func mkfile(t testing.TB, ns *Namespace, u hdfs.User, path string, perm hdfs.FsPermission) {
	t.Helper()
	ctx := context.Background()
	_, err := ns.Create(ctx, u, path, CreateOptions{Perm: perm, ClientName: "mk-" + u.Name, CreateParent: true})
	ok(t, err)
	done, err := ns.Complete(ctx, path, "mk-"+u.Name, 0)
	ok(t, err)
	if !done {
		t.Fatalf("complete %s: not done", path)
	}
}

// names lists the names in dir.
func names(t testing.TB, ns *Namespace, dir string) []string {
	t.Helper()
	l, err := ns.List(context.Background(), super, dir, "", 0)
	ok(t, err)
	var out []string
	for _, e := range l.Entries {
		out = append(out, e.Name)
	}
	return out
}
