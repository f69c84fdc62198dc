package postgres

import "github.com/jackc/pgx/v5/pgxpool"

// ReadPool returns the read-only pool of ReadTx (for tests).
func (s *Store) ReadPool() *pgxpool.Pool { return s.read }
