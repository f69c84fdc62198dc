package dal

import (
	"errors"
	"fmt"
)

// ErrNotFound is wrapped by errors for a missing row, and for a write that
// references a missing row (a foreign-key violation, e.g. a block of a
// missing inode).
var ErrNotFound = errors.New("not found")

// ErrExists is wrapped by errors for an insert or update that collides with
// an existing key (a unique violation).
var ErrExists = errors.New("already exists")

// ErrSchemaTooNew is wrapped by the error returned when opening a database
// whose schema version is newer than this binary knows.
var ErrSchemaTooNew = errors.New("metadata schema is newer than this binary")

// SchemaVersionError reports a database schema newer than the binary's.
type SchemaVersionError struct {
	// Found is the schema version recorded in the database.
	Found int
	// Known is the newest schema version this binary knows.
	Known int
}

// Error names both versions and what to do.
func (e *SchemaVersionError) Error() string {
	return fmt.Sprintf("metadata schema version %d is newer than this binary knows (%d): upgrade kura, or use a database created by this version", e.Found, e.Known)
}

// Unwrap returns ErrSchemaTooNew.
func (e *SchemaVersionError) Unwrap() error { return ErrSchemaTooNew }

// transientError marks an error as worth retrying.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// MarkTransient wraps err so that Store.Tx treats it as transient: a
// transaction function returning it is rolled back and run again (subject to
// the retry policy), as for a database deadlock. It returns nil for nil.
func MarkTransient(err error) error {
	if err == nil {
		return nil
	}
	return &transientError{err: err}
}

// IsMarkedTransient reports whether err (or an error it wraps) was marked
// with MarkTransient.
func IsMarkedTransient(err error) bool {
	var t *transientError
	return errors.As(err, &t)
}
