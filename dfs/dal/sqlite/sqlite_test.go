package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/dal/daltest"
	"github.com/kura-dev/kura/dfs/dal/sqlite"
)

func openTemp(t testing.TB, o sqlite.Options) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "meta.db"), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	daltest.RunConformance(t, func(t testing.TB) dal.Store { return openTemp(t, sqlite.Options{}) })
}

func TestMigrations(t *testing.T) {
	daltest.RunMigrations(t, daltest.MigrationHarness{
		NewLocation: func(t testing.TB) string { return filepath.Join(t.TempDir(), "meta.db") },
		Open: func(ctx context.Context, loc string, ms []dal.Migration) (dal.Store, error) {
			return sqlite.Open(ctx, loc, sqlite.Options{Migrations: ms})
		},
	})
}

// TestBusyRetried holds the database's write lock from another connection
// (as another process would) longer than the busy timeout: the store's
// transaction fails with SQLITE_BUSY, which is transient and retried until
// the lock is released.
func TestBusyRetried(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	s, err := sqlite.Open(ctx, path, sqlite.Options{BusyTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	hold := func() *sql.Conn {
		c, err := other.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		return c
	}

	// With one attempt, the busy database is an error classified transient.
	one := openTempAt(t, path, sqlite.Options{BusyTimeout: 20 * time.Millisecond, Retry: dal.RetryPolicy{MaxAttempts: 1}})
	c := hold()
	err = one.Tx(ctx, func(tx dal.Tx) error { return tx.SetVariable(ctx, "x", 1) })
	if err == nil || !sqlite.IsTransient(err) {
		t.Fatalf("Tx on a locked database = %v, want a transient SQLITE_BUSY", err)
	}
	one.Close()

	// With retries, the transaction succeeds once the lock is released.
	released := make(chan struct{})
	go func() {
		time.Sleep(150 * time.Millisecond)
		if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
			t.Error(err)
		}
		c.Close()
		close(released)
	}()
	attempts := 0
	err = s.Tx(ctx, func(tx dal.Tx) error {
		attempts++
		select {
		case <-released:
		default:
			return errors.New("ran while another connection held the write lock")
		}
		return tx.SetVariable(ctx, "x", 2)
	})
	if err != nil {
		t.Fatal(err)
	}
	if attempts != 1 {
		t.Fatalf("function ran %d times, want once (BEGIN IMMEDIATE failed before it)", attempts)
	}
}

func openTempAt(t testing.TB, path string, o sqlite.Options) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPragmas(t *testing.T) {
	s := openTemp(t, sqlite.Options{})
	defer s.Close()
	db, err := sql.Open("sqlite", "file:"+s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := sqlite.Open(ctx, "", sqlite.Options{}); err == nil {
		t.Error("empty path accepted")
	}
	if _, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "x.db"), sqlite.Options{Synchronous: "OFF"}); err == nil {
		t.Error("synchronous OFF accepted")
	}
	if _, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "missing", "dir", "x.db"), sqlite.Options{}); err == nil {
		t.Error("a path in a missing directory opened")
	}
}

func BenchmarkPointRead(b *testing.B) {
	s := openTemp(b, sqlite.Options{})
	defer s.Close()
	daltest.BenchPointRead(b, s)
}

func BenchmarkInsert(b *testing.B) {
	s := openTemp(b, sqlite.Options{})
	defer s.Close()
	daltest.BenchInsert(b, s)
}
