package open_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kura-dev/kura/dfs/dal/daltest"
	"github.com/kura-dev/kura/dfs/dal/open"
)

func TestMain(m *testing.M) { os.Exit(daltest.Main(m)) }

func TestOpen(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct{ url, backend string }{
		{"sqlite://" + filepath.Join(t.TempDir(), "meta.db"), "sqlite"},
		{daltest.PostgresURL(t), "postgres"},
	} {
		s, err := open.Open(ctx, c.url)
		if err != nil {
			t.Fatalf("open %s: %v", c.url, err)
		}
		if s.Backend() != c.backend {
			t.Errorf("open %s: backend %s", c.url, s.Backend())
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}
	// A relative SQLite path is relative to the working directory.
	t.Chdir(t.TempDir())
	s, err := open.Open(ctx, "sqlite://rel.db")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat("rel.db"); err != nil {
		t.Fatal(err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	for url, want := range map[string]string{
		"mysql://x":    `unknown scheme "mysql"`,
		"meta.db":      "not a URL",
		"sqlite://":    "no database path",
		"postgres://%": "postgres",
	} {
		_, err := open.Open(ctx, url)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want an error containing %q", url, err, want)
		}
	}
}
