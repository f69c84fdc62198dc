// Package open opens a dfs metadata store from a URL, choosing the backend
// by scheme. It is separate from dfs/dal so that dal does not import its
// implementations (which import dal), and so that no registry of drivers is
// needed.
package open

import (
	"context"
	"fmt"
	"strings"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/dal/postgres"
	"github.com/kura-dev/kura/dfs/dal/sqlite"
)

// Open opens the metadata store named by rawURL:
//
//   - "sqlite://PATH": the SQLite database file PATH, created when missing
//     ("sqlite:///var/lib/kura/meta.db" is absolute, "sqlite://meta.db"
//     relative to the working directory);
//   - "postgres://user[:password]@host:port/db?sslmode=disable" (or
//     "postgresql://..."): a PostgreSQL database, with any parameter pgx
//     accepts.
//
// The schema is created or migrated on open; see dal.Migrations.
func Open(ctx context.Context, rawURL string) (dal.Store, error) {
	switch {
	case strings.HasPrefix(rawURL, "sqlite://"):
		path := strings.TrimPrefix(rawURL, "sqlite://")
		if path == "" {
			return nil, fmt.Errorf("open metadata store %q: no database path (want sqlite:///path/meta.db)", rawURL)
		}
		return sqlite.Open(ctx, path, sqlite.Options{})
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		return postgres.Open(ctx, rawURL, postgres.Options{})
	}
	scheme, _, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, fmt.Errorf("open metadata store %q: not a URL: want sqlite:///path/meta.db or postgres://user@host:port/db", rawURL)
	}
	return nil, fmt.Errorf("open metadata store: unknown scheme %q: want sqlite:// or postgres://", scheme)
}
