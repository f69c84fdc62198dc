package dal_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/dal"
)

func TestPartitionID(t *testing.T) {
	if got := dal.PartitionID(dal.RootParentID, ""); got != 0 {
		t.Errorf("root partition = %d, want 0", got)
	}
	if got := dal.PartitionID(42, "x"); got != 42 {
		t.Errorf("depth >= 2 partition = %d, want the parent id 42", got)
	}
	a, b := dal.PartitionID(dal.RootID, "user"), dal.PartitionID(dal.RootID, "tmp")
	if a == b || a < 0 || b < 0 || a != dal.PartitionID(dal.RootID, "user") {
		t.Errorf("top-level partitions %d, %d: want distinct, stable, non-negative hashes", a, b)
	}
	// The hash is part of the on-disk format (docs/dfs-schema.md gives the
	// formula): these values must never change.
	if a != 4186913299384000693 || b != 9216435034541310567 {
		t.Errorf("top-level partitions of user, tmp = %d, %d: the on-disk hash changed", a, b)
	}
}

func TestCheckSchemaVersion(t *testing.T) {
	if err := dal.CheckSchemaVersion(1, 1); err != nil {
		t.Error(err)
	}
	if err := dal.CheckSchemaVersion(0, 3); err != nil {
		t.Error(err)
	}
	err := dal.CheckSchemaVersion(5, 3)
	if !errors.Is(err, dal.ErrSchemaTooNew) || err.Error() != "metadata schema version 5 is newer than this binary knows (3): upgrade kura, or use a database created by this version" {
		t.Errorf("err = %v", err)
	}
}

func TestMigrationsValid(t *testing.T) {
	ms := dal.Migrations()
	if err := dal.ValidateMigrations(ms); err != nil {
		t.Fatal(err)
	}
	if dal.LatestSchemaVersion() != len(ms) {
		t.Fatalf("latest %d, %d migrations", dal.LatestSchemaVersion(), len(ms))
	}
	for _, d := range []dal.Dialect{dal.DialectSQLite, dal.DialectPostgres} {
		for _, m := range ms {
			for _, s := range m.Statements(d) {
				if s == "" || s[len(s)-1] == ';' {
					t.Errorf("%s migration %d: bad statement %q", d, m.Version, s)
				}
			}
		}
	}
	if err := dal.ValidateMigrations(nil); err == nil {
		t.Error("no migrations accepted")
	}
	if err := dal.ValidateMigrations([]dal.Migration{{Version: 1}}); err == nil {
		t.Error("a migration without statements accepted")
	}
}

func TestRetry(t *testing.T) {
	ctx := context.Background()
	p := dal.RetryPolicy{MaxAttempts: 4, BaseDelay: time.Microsecond, MaxDelay: 10 * time.Microsecond}
	errBusy := errors.New("busy")
	transient := func(err error) bool { return errors.Is(err, errBusy) }

	n := 0
	err := dal.Retry(ctx, p, transient, func() error {
		n++
		if n < 3 {
			return fmt.Errorf("attempt %d: %w", n, errBusy)
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("err %v after %d attempts; want success after 3", err, n)
	}

	n = 0
	err = dal.Retry(ctx, p, transient, func() error { n++; return errBusy })
	if !errors.Is(err, errBusy) || n != 4 {
		t.Fatalf("exhausted: err %v after %d attempts; want errBusy after 4", err, n)
	}

	n = 0
	permanent := errors.New("permanent")
	err = dal.Retry(ctx, p, transient, func() error { n++; return permanent })
	if !errors.Is(err, permanent) || n != 1 {
		t.Fatalf("permanent: err %v after %d attempts", err, n)
	}

	n = 0
	err = dal.Retry(ctx, p, nil, func() error {
		n++
		if n == 1 {
			return dal.MarkTransient(permanent)
		}
		return nil
	})
	if err != nil || n != 2 {
		t.Fatalf("marked transient: err %v after %d attempts", err, n)
	}
	if dal.MarkTransient(nil) != nil || !errors.Is(dal.MarkTransient(permanent), permanent) {
		t.Fatal("MarkTransient wrapping wrong")
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	slow := dal.RetryPolicy{MaxAttempts: 5, BaseDelay: time.Hour, MaxDelay: time.Hour}
	err = dal.Retry(cctx, slow, transient, func() error { return errBusy })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestBackoffBounds(t *testing.T) {
	p := dal.RetryPolicy{MaxAttempts: 10, BaseDelay: time.Millisecond, MaxDelay: 8 * time.Millisecond}
	for attempt := 1; attempt <= 10; attempt++ {
		ceiling := min(time.Millisecond<<(attempt-1), 8*time.Millisecond)
		for i := 0; i < 50; i++ {
			if d := p.Backoff(attempt); d < 0 || d > ceiling {
				t.Fatalf("Backoff(%d) = %v, outside [0, %v]", attempt, d, ceiling)
			}
		}
	}
}
