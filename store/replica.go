package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
)

// Support for running a Store as the state machine of a replicated log: a
// commit stamp persisted atomically with every mutation (the log index the
// mutation applies), on-disk checkpoints to ship as snapshots, and an
// explicit sync for stores opened with NoSync. See also WithTime, which
// makes an operation's notion of "now" part of its input, and
// Options.NoReaper, which leaves expiry to the owner of the store.

// SetStamp sets the stamp that every later commit of the store writes in
// the same atomic batch as its data, under one fixed metadata key: every
// mutation (Set, Delete, Push, Pop, CAS, Apply... and the reaper's
// deletions), but not the bookkeeping of cursors and of the change log. A
// nil value stops stamping; the stamp last written stays on disk. Stamp
// reads it back, after a restart too.
//
// A replicated store calls SetStamp(index) before applying the command at
// that index, so that the data and the index it reflects are persisted
// together. The stamp is store-wide: any commit made after SetStamp writes
// it, including a concurrent one by another goroutine (or the background
// reaper, unless Options.NoReaper is set), which could then persist the
// stamp before the mutation it belongs to. Give the store a single writer
// while stamping.
//
// SetStamp copies value and is safe to call concurrently with commits;
// each commit writes the stamp current at the moment it commits.
func (s *Store) SetStamp(value []byte) {
	if value == nil {
		s.stamp.Store(nil)
		return
	}
	v := bytes.Clone(value)
	s.stamp.Store(&v)
}

// Stamp returns the stamp persisted by the last commit that wrote one (see
// SetStamp), or nil if none ever did.
func (s *Store) Stamp() ([]byte, error) {
	lk, err := s.lockRead()
	if err != nil {
		return nil, err
	}
	defer lk.release()
	v, err := s.get(s.stampKey)
	if err != nil {
		return nil, fmt.Errorf("read stamp of store %s: %w", s.dir, err)
	}
	return v, nil
}

// Sync makes every commit made so far durable, even on a store opened with
// Options.NoSync: it writes an empty record to the write-ahead log and
// waits for the log to reach the disk.
func (s *Store) Sync() error {
	lk, err := s.lockRead()
	if err != nil {
		return err
	}
	defer lk.release()
	if s.opts.NoWAL {
		if err := s.db.Flush(); err != nil {
			return fmt.Errorf("sync store %s: flush: %w", s.dir, pebbleErr(err))
		}
		return nil
	}
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("sync store %s: %w", s.dir, pebbleErr(err))
	}
	return nil
}

// Checkpoint writes a consistent copy of the whole store, as of one point
// between commits, into dir, which must not exist yet (its parents are
// created as needed). Open(dir, opts) opens the copy with the same options
// (the same passphrases for an encrypted store); the copy holds the data,
// the change log, the cursors and the stamp. Tables are hard-linked when dir
// is on the same file system, so a checkpoint is cheap to take; the write-
// ahead log is synced first and copied, so that commits made with NoSync
// are in the copy too. The store stays usable meanwhile. On error, dir is
// removed.
func (s *Store) Checkpoint(dir string) error {
	lk, err := s.lockRead()
	if err != nil {
		return err
	}
	defer lk.release()
	if _, err := os.Lstat(dir); err == nil {
		return fmt.Errorf("checkpoint store %s: %w: %s already exists", s.dir, ErrInvalid, dir)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("checkpoint store %s: %w", s.dir, err)
	}
	if s.opts.NoWAL {
		// The checkpoint copies files: what is only in memory must be in one.
		if err := s.db.Flush(); err != nil {
			return fmt.Errorf("checkpoint store %s: flush: %w", s.dir, pebbleErr(err))
		}
	}
	if err := s.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("checkpoint store %s to %s: %w", s.dir, dir, pebbleErr(err))
	}
	if err := writeMarker(dir); err != nil {
		os.RemoveAll(dir) // ours: Pebble created it, and it is no store without its marker
		return fmt.Errorf("checkpoint store %s to %s: %w", s.dir, dir, err)
	}
	return nil
}

// writeMarker writes the format marker of a store into dir, durably.
func writeMarker(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, markerFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(formatLine)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
