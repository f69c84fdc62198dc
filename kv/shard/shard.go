// Package shard is a data shard's replicated state machine: one local
// storage engine (store.Store) per shard, changed only by commands applied
// in Raft log order, each stamped with its log index and the leader's clock
// so every replica reaches the same state.
package shard

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/kura-dev/kura/proto/kvpb"
	"github.com/kura-dev/kura/store"
)

// Shard is one shard's state machine. It implements replica.StateMachine.
//
// Lock ordering: Shard.mu (held for reading by every operation, for writing
// only while a snapshot replaces the store) is the only lock.
type Shard struct {
	id   uint32
	dir  string
	opts store.Options

	mu sync.RWMutex
	st *store.Store

	applied  atomic.Uint64
	lastTime int64 // apply loop only
}

// Open opens (or creates) the shard's store in dir. The store runs without
// a write-ahead log (the Raft log is the durable record: after a crash the
// entries after the store's last flushed stamp are applied again, and the
// log is compacted only after Sync flushed the store), without its own
// reaper (expiry is a replicated command) and with its change log on (the
// watch stream).
func Open(dir string, id uint32, opts store.Options) (*Shard, error) {
	opts.NoSync = true
	opts.NoWAL = true
	if opts.MemTableSize == 0 {
		// A node holds many shards: small memtables keep memory bounded,
		// inserts into a shallower skiplist cheaper, and the log replay
		// after a crash short.
		opts.MemTableSize = 8 << 20
	}
	opts.NoReaper = true
	opts.ChangeLog = true
	s := &Shard{id: id, dir: dir, opts: opts}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Shard) open() error {
	st, err := store.Open(s.dir, s.opts)
	if err != nil {
		return fmt.Errorf("shard %d: %w", s.id, err)
	}
	stamp, err := st.Stamp()
	if err != nil {
		st.Close()
		return fmt.Errorf("shard %d: read applied index: %w", s.id, err)
	}
	var applied uint64
	if len(stamp) == 16 {
		applied = binary.BigEndian.Uint64(stamp)
		s.lastTime = int64(binary.BigEndian.Uint64(stamp[8:]))
	}
	s.st = st
	s.applied.Store(applied)
	return nil
}

// ID returns the shard's number.
func (s *Shard) ID() uint32 { return s.id }

// Applied implements replica.StateMachine.
func (s *Shard) Applied() uint64 { return s.applied.Load() }

// Apply implements replica.StateMachine: data is a kvpb.Command.
func (s *Shard) Apply(index uint64, data []byte) (uint64, any) {
	var cmd kvpb.Command
	if err := proto.Unmarshal(data, &cmd); err != nil {
		// Every replica fails the same way on the same entry.
		return 0, ErrorResponse(fmt.Errorf("%w: undecodable command at index %d: %v", store.ErrCorrupt, index, err))
	}
	t := cmd.TimeNanos
	if t < s.lastTime {
		t = s.lastTime // the clock of a new leader may lag the old one's
	}
	s.lastTime = t
	var stamp [16]byte
	binary.BigEndian.PutUint64(stamp[:], index)
	binary.BigEndian.PutUint64(stamp[8:], uint64(t))
	s.mu.RLock()
	s.st.SetStamp(stamp[:])
	ctx := store.WithTime(context.Background(), time.Unix(0, t))
	var resp *kvpb.Response
	if cmd.Req == nil || !IsShardWrite(cmd.Req.Op) {
		resp = ErrorResponse(fmt.Errorf("%w: not a replicated operation", store.ErrInvalid))
	} else {
		resp = Exec(ctx, s.st, cmd.Req)
	}
	s.mu.RUnlock()
	s.applied.Store(index)
	return cmd.Id, resp
}

// Read runs a read-only operation on this replica's state.
func (s *Shard) Read(ctx context.Context, req *kvpb.Request) *kvpb.Response {
	if !IsRead(req.Op) {
		return ErrorResponse(fmt.Errorf("%w: %v is not a read", store.ErrInvalid, req.Op))
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return Exec(store.WithTime(ctx, time.Now()), s.st, req)
}

// Store runs f with the shard's store (for the watch stream and status).
func (s *Shard) Store(f func(*store.Store) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return f(s.st)
}

// Sync implements replica.StateMachine.
func (s *Shard) Sync() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.Sync()
}

// SnapshotData implements replica.StateMachine: a tar of a checkpoint of
// the store (which carries its applied index in the stamp).
func (s *Shard) SnapshotData() ([]byte, error) {
	tmp, err := os.MkdirTemp(filepath.Dir(s.dir), filepath.Base(s.dir)+".snap-")
	if err != nil {
		return nil, fmt.Errorf("shard %d: snapshot: %w", s.id, err)
	}
	defer os.RemoveAll(tmp)
	cp := filepath.Join(tmp, "cp")
	s.mu.RLock()
	err = s.st.Checkpoint(cp)
	s.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("shard %d: snapshot: %w", s.id, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err = filepath.Walk(cp, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(cp, path)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: rel, Mode: 0o600, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("shard %d: snapshot: %w", s.id, err)
	}
	return buf.Bytes(), nil
}

// Restore implements replica.StateMachine: the store is replaced by the
// snapshot's checkpoint.
func (s *Shard) Restore(data []byte, index uint64) error {
	next := s.dir + ".restore"
	if err := os.RemoveAll(next); err != nil {
		return err
	}
	if err := untar(data, next); err != nil {
		return fmt.Errorf("shard %d: unpack snapshot: %w", s.id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.st.Close(); err != nil {
		return fmt.Errorf("shard %d: close before restore: %w", s.id, err)
	}
	old := s.dir + ".old"
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	if err := os.Rename(s.dir, old); err != nil {
		return err
	}
	if err := os.Rename(next, s.dir); err != nil {
		return err
	}
	if err := s.open(); err != nil {
		return err
	}
	os.RemoveAll(old)
	if s.applied.Load() < index {
		s.applied.Store(index)
	}
	return nil
}

func untar(data []byte, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(h.Name)
		if filepath.IsAbs(name) || name == ".." || len(name) > 2 && name[:3] == "../" {
			return fmt.Errorf("snapshot entry %q escapes the directory", h.Name)
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, tr); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
}

// Close closes the store.
func (s *Shard) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Close()
}

// Current returns the shard's store as it is now; a snapshot may replace
// it later (the old one then answers store.ErrClosed).
func (s *Shard) Current() *store.Store {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st
}
