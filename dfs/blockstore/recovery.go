package blockstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// InitRecovery puts the replica of id under the block recovery recoveryID,
// the generation stamp that recovery gives the block (HDFS's
// initReplicaRecovery, which turns the replica into a
// ReplicaUnderRecovery), and returns the replica as it is. The recovery id
// is kept on disk (recovery/blk_<id>) until the replica is re-stamped, so
// that, across restarts too, the replica refuses older recoveries: a
// recovery id at or below the replica's generation stamp, or below the
// recovery id it is under, is ErrStaleRecovery (the same id again is
// accepted: a retry). Recover then finalizes the replica only under the
// recovery id it is under, and Append only under a newer stamp. A replica
// a Writer holds is ErrBusy (stop the writer first); a corrupt one is
// ErrCorrupt.
func (s *Store) InitRecovery(ctx context.Context, id, recoveryID uint64) (BlockInfo, error) {
	const op = "init recovery"
	if err := ctx.Err(); err != nil {
		return BlockInfo{}, blockErr(op, id, "", err)
	}
	rep, err := s.get(op, id)
	if err != nil {
		return BlockInfo{}, err
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	switch {
	case rep.deleted:
		return BlockInfo{}, blockErr(op, id, "", ErrNotFound)
	case rep.writer != nil:
		return BlockInfo{}, blockErr(op, id, rep.dataPath(), ErrBusy)
	case rep.corrupt != "":
		return BlockInfo{}, blockErr(op, id, rep.dataPath(), fmt.Errorf("%w: %s", ErrCorrupt, rep.corrupt))
	case recoveryID <= rep.gs:
		return BlockInfo{}, blockErr(op, id, rep.metaPath(), fmt.Errorf("%w: recovery %d is not newer than the replica's generation stamp %d",
			ErrStaleRecovery, recoveryID, rep.gs))
	case recoveryID < rep.recoveryID:
		return BlockInfo{}, blockErr(op, id, s.recoveryPath(id), fmt.Errorf("%w: recovery %d is older than the recovery %d the replica is under",
			ErrStaleRecovery, recoveryID, rep.recoveryID))
	}
	if recoveryID != rep.recoveryID {
		if err := s.saveRecovery(id, recoveryID); err != nil {
			return BlockInfo{}, blockErr(op, id, s.recoveryPath(id), err)
		}
		rep.recoveryID = recoveryID
	}
	return rep.info(), nil
}

// recoveryPath is the file that keeps the recovery id of block id.
func (s *Store) recoveryPath(id uint64) string { return filepath.Join(s.recoveryDir, dataName(id)) }

// saveRecovery writes the recovery id of block id, atomically (a
// temporary file renamed over the old one).
func (s *Store) saveRecovery(id, recoveryID uint64) error {
	path := s.recoveryPath(id)
	tmp := path + ".tmp"
	if err := writeFileSynced(tmp, []byte(strconv.FormatUint(recoveryID, 10)+"\n"), !s.opts.NoSync); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	if !s.opts.NoSync {
		return syncDir(s.recoveryDir)
	}
	return nil
}

// clearRecovery forgets the recovery rep was under (rep.mu held): it was
// re-stamped, or finalized on the namenode's word.
func (s *Store) clearRecovery(rep *replica) error {
	if rep.recoveryID == 0 {
		return nil
	}
	path := s.recoveryPath(rep.id)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return blockErr("clear recovery", rep.id, path, err)
	}
	rep.recoveryID = 0
	if !s.opts.NoSync {
		if err := syncDir(s.recoveryDir); err != nil {
			return blockErr("clear recovery", rep.id, s.recoveryDir, err)
		}
	}
	return nil
}

// loadRecoveries reads recovery/ at Open, after the scan: each replica
// gets back the recovery id it was under. A file of a replica that is
// gone, or whose stamp has reached the recovery id (a crash after the
// re-stamp, before the file was removed), and a leftover temporary file,
// are removed.
func (s *Store) loadRecoveries() error {
	ents, err := os.ReadDir(s.recoveryDir)
	if err != nil {
		return fmt.Errorf("blockstore: scan %s: %w", s.recoveryDir, err)
	}
	removed := false
	drop := func(path, why string) error {
		s.log.Info("removing a block recovery file", "file", path, "reason", why)
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("blockstore: open %s: %w", s.dir, err)
		}
		removed = true
		return nil
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(s.recoveryDir, e.Name())
		id, _, meta, ok := parseName(e.Name())
		if !ok || meta {
			if err := drop(path, "not a block recovery file"); err != nil {
				return err
			}
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("blockstore: open %s: %w", s.dir, err)
		}
		rid, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		rep := s.reps[id]
		var why string
		switch {
		case perr != nil:
			why = "unreadable: " + perr.Error()
		case rep == nil:
			why = "no such replica"
		case rid <= rep.gs:
			why = fmt.Sprintf("the replica's generation stamp %d reached recovery %d", rep.gs, rid)
		}
		if why != "" {
			if err := drop(path, why); err != nil {
				return err
			}
			continue
		}
		rep.recoveryID = rid
	}
	if removed && !s.opts.NoSync {
		if err := syncDir(s.recoveryDir); err != nil {
			return fmt.Errorf("blockstore: open %s: %w", s.dir, err)
		}
	}
	return nil
}
