package sqlite

import "fmt"

// ErrClosed is errClosed, for tests.
var ErrClosed = errClosed

// QueueLen returns the number of Tx calls queued for the next group.
func QueueLen(s *Store) int {
	s.gc.mu.Lock()
	defer s.gc.mu.Unlock()
	return len(s.gc.queue)
}

// CommitterStopped returns a channel closed when the store's committer
// goroutine has ended.
func CommitterStopped(s *Store) <-chan struct{} { return s.gc.stopped }

// SetMaxPageCount caps the database's size on the writer connection (the
// store must be idle), so that a large write fails with SQLITE_FULL.
func SetMaxPageCount(s *Store, extra int) error {
	var n int
	if err := s.writer.QueryRow("PRAGMA page_count").Scan(&n); err != nil {
		return err
	}
	if _, err := s.writer.Exec(fmt.Sprintf("PRAGMA max_page_count = %d", n+extra)); err != nil {
		return err
	}
	return nil
}

// Closing reports whether Close has begun.
func Closing(s *Store) bool { return s.gc.closing.Load() }

// WriterStmts returns the number of statements prepared on the writer.
func WriterStmts(s *Store) int {
	n := 0
	for _, st := range s.gc.stmts {
		if st != nil {
			n++
		}
	}
	return n
}
