package daltest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kura-dev/kura/dfs/dal"
)

// MigrationHarness lets RunMigrations open one backend's databases.
type MigrationHarness struct {
	// NewLocation returns where a new, empty database lives (a file path, a
	// URL), for the test's duration.
	NewLocation func(t testing.TB) string
	// Open opens the database at loc with the given migrations (nil: the
	// schema's own, dal.Migrations()).
	Open func(ctx context.Context, loc string, ms []dal.Migration) (dal.Store, error)
}

// RunMigrations checks the migration machinery of a backend: an empty
// database gets the whole schema, an older one is migrated, a newer one is
// refused with an error naming both versions, and reopening is harmless.
func RunMigrations(t *testing.T, h MigrationHarness) {
	ctx := context.Background()
	open := func(t *testing.T, loc string, ms []dal.Migration) dal.Store {
		t.Helper()
		s, err := h.Open(ctx, loc, ms)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return s
	}
	version := func(t *testing.T, s dal.Store) int {
		t.Helper()
		v, err := s.SchemaVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// A second version of the schema, as a later binary would have it.
	v2 := append(dal.Migrations(), dal.Migration{
		Version: dal.LatestSchemaVersion() + 1,
		Name:    "test: a later migration",
		Statements: func(dal.Dialect) []string {
			return []string{
				`CREATE TABLE test_later (id BIGINT PRIMARY KEY)`,
				`INSERT INTO variables (name, value) VALUES ('test_later', 42)`,
			}
		},
	})

	t.Run("EmptyDatabase", func(t *testing.T) {
		s := open(t, h.NewLocation(t), nil)
		defer s.Close()
		if v := version(t, s); v != dal.LatestSchemaVersion() {
			t.Fatalf("version %d, want %d", v, dal.LatestSchemaVersion())
		}
		err := s.Tx(ctx, func(tx dal.Tx) error {
			if _, err := tx.GetInodeByID(ctx, dal.RootID, dal.LockNone); err != nil {
				return err
			}
			_, err := tx.GetVariable(ctx, dal.VarInodeID)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("OlderMigratedNewerRefused", func(t *testing.T) {
		loc := h.NewLocation(t)
		s := open(t, loc, nil)
		err := s.Tx(ctx, func(tx dal.Tx) error { return tx.SetVariable(ctx, "kept", 7) })
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		// A newer binary migrates the database, keeping its data.
		s = open(t, loc, v2)
		if v := version(t, s); v != len(v2) {
			t.Fatalf("after migration: version %d, want %d", v, len(v2))
		}
		err = s.Tx(ctx, func(tx dal.Tx) error {
			for name, want := range map[string]int64{"kept": 7, "test_later": 42} {
				got, err := tx.GetVariable(ctx, name)
				if err != nil {
					return err
				}
				if got != want {
					return fmt.Errorf("variable %s = %d, want %d", name, got, want)
				}
			}
			return nil
		})
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		// Reopening at the same version changes nothing.
		s = open(t, loc, v2)
		if v := version(t, s); v != len(v2) {
			t.Fatalf("after reopening: version %d", v)
		}
		s.Close()
		// The older binary refuses the newer database, naming both versions.
		s, err = h.Open(ctx, loc, nil)
		if err == nil {
			s.Close()
			t.Fatal("an older binary opened a newer database")
		}
		var sv *dal.SchemaVersionError
		if !errors.Is(err, dal.ErrSchemaTooNew) || !errors.As(err, &sv) || sv.Found != len(v2) || sv.Known != dal.LatestSchemaVersion() {
			t.Fatalf("error %v, want a SchemaVersionError{%d, %d}", err, len(v2), dal.LatestSchemaVersion())
		}
		msg := err.Error()
		if !strings.Contains(msg, fmt.Sprintf("version %d", len(v2))) || !strings.Contains(msg, fmt.Sprintf("(%d)", dal.LatestSchemaVersion())) {
			t.Fatalf("error %q does not name both versions", msg)
		}
	})

	t.Run("BadMigrations", func(t *testing.T) {
		bad := []dal.Migration{{Version: 2, Name: "gap", Statements: func(dal.Dialect) []string { return nil }}}
		if s, err := h.Open(ctx, h.NewLocation(t), bad); err == nil {
			s.Close()
			t.Fatal("migrations starting at version 2 were accepted")
		}
	})
}
