package daltest

import (
	"context"
	"errors"
	"fmt"
	"maps"
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

	t.Run("ChildrenBackfill", func(t *testing.T) { testChildrenBackfill(t, h) })

	t.Run("BadMigrations", func(t *testing.T) {
		bad := []dal.Migration{{Version: 2, Name: "gap", Statements: func(dal.Dialect) []string { return nil }}}
		if s, err := h.Open(ctx, h.NewLocation(t), bad); err == nil {
			s.Close()
			t.Fatal("migrations starting at version 2 were accepted")
		}
	})
}

// backfillTree is the tree testChildrenBackfill writes into a version-1
// database: id, parent id, name, directory. Inode 13 is the root of a
// detached subtree (parent -1), as a half-done large delete leaves it.
var backfillTree = []struct {
	id, parent int64
	name       string
	dir        bool
}{
	{2, dal.RootID, "user", true},
	{3, 2, "alice", true},
	{4, 2, "bob", true},
	{5, 2, "readme", false},
	{6, 3, "data", false},
	{7, 3, "logs", true},
	{8, dal.RootID, "tmp", true},
	{9, 8, "f1", false},
	{10, 8, "f2", false},
	{11, 8, "f3", false},
	{12, dal.RootID, "top.txt", false},
	{13, -1, "13", true},
	{14, 13, "gone", false},
}

// testChildrenBackfill builds a version-1 database holding a tree (the
// first migration with the tree's rows appended: version 1 has no children
// column, which the store's inserts now write), opens it with every
// migration and checks that migration 2 stored every directory's number of
// entries: the root's (hashed partitions), top-level and deeper ones. A
// database already migrated is then reopened: its counts are left as they
// are.
func testChildrenBackfill(t *testing.T, h MigrationHarness) {
	ctx := context.Background()
	v1 := dal.Migrations()[0]
	base := v1.Statements
	v1.Statements = func(d dal.Dialect) []string {
		stmts := base(d)
		for _, n := range backfillTree {
			stmts = append(stmts, fmt.Sprintf(`INSERT INTO inodes (partition_id, parent_id, name, id, is_dir, permission, owner, group_name, mtime, atime)
				VALUES (%d, %d, '%s', %d, %t, 493, 'alice', 'staff', 1000, 1000)`,
				dal.PartitionID(n.parent, n.name), n.parent, n.name, n.id, n.dir))
		}
		return append(stmts, fmt.Sprintf(`UPDATE variables SET value = %d WHERE name = 'inode_id'`, len(backfillTree)+1))
	}
	loc := h.NewLocation(t)
	s, err := h.Open(ctx, loc, []dal.Migration{v1})
	if err != nil {
		t.Fatalf("open at version 1: %v", err)
	}
	v, err := s.SchemaVersion(ctx)
	s.Close()
	if err != nil || v != 1 {
		t.Fatalf("version %d, %v; want 1", v, err)
	}

	// The directories' real numbers of entries (files have none).
	entries := map[int64]int64{dal.RootID: 3, 2: 3, 3: 2, 4: 0, 7: 0, 8: 3, 13: 1}
	ids := []int64{dal.RootID}
	for _, n := range backfillTree {
		ids = append(ids, n.id)
	}
	// check compares every inode's stored count with stored and every
	// directory's CountChildren with entries (the real numbers).
	check := func(s dal.Store, stored map[int64]int64) {
		t.Helper()
		err := s.ReadTx(ctx, func(tx dal.Tx) error {
			ins, err := tx.GetInodesByIDs(ctx, ids, dal.LockNone)
			if err != nil {
				return err
			}
			if len(ins) != len(ids) {
				return fmt.Errorf("%d inodes after migration, want %d", len(ins), len(ids))
			}
			for _, in := range ins {
				if in.Children != stored[in.ID] {
					t.Errorf("inode %d %q: children %d, want %d", in.ID, in.Name, in.Children, stored[in.ID])
				}
				if !in.IsDir {
					continue
				}
				n, err := tx.CountChildren(ctx, in.ID)
				if err != nil {
					return err
				}
				if n != entries[in.ID] {
					t.Errorf("inode %d %q: CountChildren %d, want %d", in.ID, in.Name, n, entries[in.ID])
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	s, err = h.Open(ctx, loc, nil)
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v != dal.LatestSchemaVersion() {
		t.Fatalf("after migration: version %d, %v; want %d", v, err, dal.LatestSchemaVersion())
	}
	check(s, entries)
	// A stored count is the database's own from now on: reopening at the
	// latest version runs no backfill again.
	err = s.Tx(ctx, func(tx dal.Tx) error {
		in, err := tx.GetInodeByID(ctx, 8, dal.LockWrite)
		if err != nil {
			return err
		}
		in.Children = 99
		return tx.UpdateInode(ctx, in)
	})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, err = h.Open(ctx, loc, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	stored := maps.Clone(entries)
	stored[8] = 99
	check(s, stored)
}
