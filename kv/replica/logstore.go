// Package replica is kv's multi-group Raft runtime: it drives many Raft
// groups (one per shard, plus the cluster map) on one node with etcd's raft
// library, keeps every group's log and hard state in one Pebble database,
// and hands committed entries to each group's state machine.
//
// Rounds: each group is an etcd raft RawNode; callers step, propose and
// tick it under the group's lock, and one goroutine per node (the host's
// Raft loop) handles the Ready of every group with work in rounds: all
// their new entries and hard states go into one Pebble batch committed with
// at most one sync, a leader's appends go out before that sync (the Raft
// thesis allows the leader to write its log in parallel), everything else
// after it, then committed entries are applied and each group advanced. So
// however many shards a node holds, a round costs one disk sync and, per
// peer, one network write (the transport batches). State machines need not sync:
// each one persists the index of the last entry it applied atomically with
// the entry's effect, and after a crash the runtime replays the log from the
// last compaction point; the state machine skips what it already holds.
//
// Lock ordering: Host.roundMu (held by the Raft loop for a round) before
// Host.mu before Group.mu; Host.readyMu, Group.readMu and Group.waitMu are
// leaves (wake takes readyMu only after releasing Group.mu).
package replica

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3/raftpb"
)

// LogStore keeps the Raft logs, hard states and snapshot metadata of every
// group of a node in one Pebble database.
//
//	'e' be32(group) be64(index) -> raftpb.Entry
//	'h' be32(group)             -> raftpb.HardState
//	'n' be32(group)             -> raftpb.SnapshotMetadata (last compaction point)
//	'v' name                    -> node variables (see Var/SetVar)
//	'g' be32(group) name        -> group state machine data (see GroupKey)
type LogStore struct {
	db *pebble.DB
}

// OpenLogStore opens (creating if needed) the log database in dir.
func OpenLogStore(dir string) (*LogStore, error) {
	opts := &pebble.Options{
		MemTableSize: 16 << 20,
		Logger:       quietLogger{},
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open raft log store %s: %w", dir, err)
	}
	return &LogStore{db: db}, nil
}

// Close closes the database.
func (l *LogStore) Close() error { return l.db.Close() }

// DB exposes the database for state machines that keep their (small) state
// beside the logs, in the 'g' keyspace.
func (l *LogStore) DB() *pebble.DB { return l.db }

func groupPrefix(ns byte, group uint32) []byte {
	k := make([]byte, 5, 13)
	k[0] = ns
	binary.BigEndian.PutUint32(k[1:], group)
	return k
}

func entryKey(group uint32, index uint64) []byte {
	return binary.BigEndian.AppendUint64(groupPrefix('e', group), index)
}

// GroupKey returns the key under which a group's state machine may keep
// data named name in the log store.
func GroupKey(group uint32, name string) []byte {
	return append(groupPrefix('g', group), name...)
}

func varKey(name string) []byte { return append([]byte{'v'}, name...) }

// Var reads a node variable (nil if unset).
func (l *LogStore) Var(name string) ([]byte, error) {
	return l.get(varKey(name))
}

// SetVar durably writes a node variable.
func (l *LogStore) SetVar(name string, value []byte) error {
	if err := l.db.Set(varKey(name), value, pebble.Sync); err != nil {
		return fmt.Errorf("set node variable %s: %w", name, err)
	}
	return nil
}

func (l *LogStore) get(k []byte) ([]byte, error) {
	v, closer, err := l.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, nil
}

// groupState is what a group finds in the log store when it starts.
type groupState struct {
	hard    raftpb.HardState
	snap    raftpb.SnapshotMetadata
	entries []raftpb.Entry
	exists  bool
}

func (l *LogStore) load(group uint32) (groupState, error) {
	var st groupState
	hb, err := l.get(groupPrefix('h', group))
	if err != nil {
		return st, fmt.Errorf("group %d: read hard state: %w", group, err)
	}
	if hb != nil {
		st.exists = true
		if err := st.hard.Unmarshal(hb); err != nil {
			return st, fmt.Errorf("group %d: decode hard state: %w", group, err)
		}
	}
	sb, err := l.get(groupPrefix('n', group))
	if err != nil {
		return st, fmt.Errorf("group %d: read snapshot metadata: %w", group, err)
	}
	if sb != nil {
		st.exists = true
		if err := st.snap.Unmarshal(sb); err != nil {
			return st, fmt.Errorf("group %d: decode snapshot metadata: %w", group, err)
		}
	}
	it, err := l.db.NewIter(&pebble.IterOptions{
		LowerBound: entryKey(group, st.snap.Index+1),
		UpperBound: groupPrefix('e', group+1),
	})
	if err != nil {
		return st, err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		var e raftpb.Entry
		if err := e.Unmarshal(it.Value()); err != nil {
			return st, fmt.Errorf("group %d: decode log entry: %w", group, err)
		}
		st.exists = true
		st.entries = append(st.entries, e)
	}
	return st, it.Error()
}

// appendEntries adds the entries (replacing any conflicting suffix) and the
// hard state to b.
func appendEntries(b *pebble.Batch, group uint32, entries []raftpb.Entry, hs raftpb.HardState, lastIndex uint64) error {
	if len(entries) > 0 {
		first := entries[0].Index
		if first <= lastIndex {
			// A new leader overwrote our uncommitted tail.
			if err := b.DeleteRange(entryKey(group, first), groupPrefix('e', group+1), nil); err != nil {
				return err
			}
		}
		for i := range entries {
			data, err := entries[i].Marshal()
			if err != nil {
				return err
			}
			if err := b.Set(entryKey(group, entries[i].Index), data, nil); err != nil {
				return err
			}
		}
	}
	if !isEmptyHardState(hs) {
		data, err := hs.Marshal()
		if err != nil {
			return err
		}
		if err := b.Set(groupPrefix('h', group), data, nil); err != nil {
			return err
		}
	}
	return nil
}

func isEmptyHardState(hs raftpb.HardState) bool {
	return hs.Term == 0 && hs.Vote == 0 && hs.Commit == 0
}

// setSnapshot records a compaction point (or an installed snapshot) and
// deletes the entries it covers.
func setSnapshot(b *pebble.Batch, group uint32, meta raftpb.SnapshotMetadata, deleteThrough uint64) error {
	data, err := meta.Marshal()
	if err != nil {
		return err
	}
	if err := b.Set(groupPrefix('n', group), data, nil); err != nil {
		return err
	}
	return b.DeleteRange(entryKey(group, 0), entryKey(group, deleteThrough+1), nil)
}

// dropGroup deletes everything of a group.
func (l *LogStore) dropGroup(group uint32) error {
	b := l.db.NewBatch()
	defer b.Close()
	for _, ns := range []byte{'e', 'h', 'n', 'g'} {
		if err := b.DeleteRange(groupPrefix(ns, group), groupPrefix(ns, group+1), nil); err != nil {
			return err
		}
	}
	return b.Commit(pebble.Sync)
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)           {}
func (quietLogger) Errorf(f string, a ...any)      {}
func (quietLogger) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }
