// Package store is kura's local storage engine, the role K2HASH plays under
// K2HFTFUSE and K2HDKC: keys and values, subkeys, FIFO/LIFO and keyed queues,
// typed compare-and-swap integers, expiry, encryption at rest and a durable
// change feed, all on one Pebble database in one directory.
//
// Every mutation is one atomic Pebble batch. Mutations that read before they
// write (queues, CAS, deletes) hold a lock stripe for the key they touch, so
// they are isolated from each other; plain sets take the same stripe so that
// the change feed's order agrees with the order in which a key's writes were
// applied.
//
// Lock ordering: Store.bulk (RW) before the stripe locks; several stripes in
// ascending index order; feed.mu and Store.metaMu are leaves taken last.
package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/kura-dev/kura/internal/dirlock"
)

// Errors returned by the engine; test them with errors.Is.
var (
	// ErrNotFound: the key, subkey or queue item does not exist (or expired).
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the request is malformed (empty key, value over the limit...).
	ErrInvalid = errors.New("invalid argument")
	// ErrTypeMismatch: a CAS operation met a value of another type.
	ErrTypeMismatch = errors.New("type mismatch")
	// ErrNeedPassphrase: the value is encrypted and no passphrase was given.
	ErrNeedPassphrase = errors.New("value is encrypted and no passphrase was given")
	// ErrWrongPassphrase: none of the passphrases given sealed this value.
	ErrWrongPassphrase = errors.New("value was encrypted with a passphrase that is not among those given")
	// ErrCorrupt: stored data failed a consistency check.
	ErrCorrupt = errors.New("corrupt data")
	// ErrLocked: another process has the data directory open.
	ErrLocked = errors.New("data directory is in use by another process")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store is closed")
	// ErrNoChangeLog: the change feed was asked for on a store whose change
	// log is off (see Options.ChangeLog and SetChangeLog).
	ErrNoChangeLog = fmt.Errorf("%w: the change log is off for this store (turn it on with Options.ChangeLog, or `kura kv --local DIR changelog on`)", ErrInvalid)
)

// Options configure a Store. The zero value is usable: durable writes, no
// expiry, no encryption, change log on.
type Options struct {
	// NoSync skips the fsync at each commit: a crash of the machine (not of
	// the process) may lose the last writes. Off by default.
	NoSync bool
	// NoWAL keeps no write-ahead log at all: writes live in memory until
	// Pebble flushes them, so a crash of the process loses the unflushed
	// ones. Only for an owner that can redo them: a Raft state machine
	// replays its log from the index the store last stamped (SetStamp),
	// and calls Sync (which then flushes) before it drops log entries.
	// Sync, Checkpoint and Close flush. Off by default.
	NoWAL bool
	// DefaultTTL applies to values written with a zero TTL. Zero: no expiry.
	DefaultTTL time.Duration
	// MaxKeySize bounds keys, subkeys and queue names (default 64 KiB).
	MaxKeySize int
	// MaxValueSize bounds values (default 16 MiB).
	MaxValueSize int
	// Passphrases enable encryption at rest: the first seals new values,
	// every one of them can open old ones.
	Passphrases []string
	// ChangeLog turns on the durable change log (and with it the change
	// feed and plugins) for this store, for good: the store remembers it,
	// and later opens log changes whatever they say, until SetChangeLog
	// turns it off. Off by default: each mutation then writes only its
	// data, not a second record that carries the value again.
	ChangeLog bool
	// ChangeLogRetention is how many change records are kept behind the
	// newest when no cursor needs older ones (default 100,000). Records a
	// named cursor has not passed are always kept.
	ChangeLogRetention uint64
	// ReapInterval is how often expired values and old change records are
	// deleted in the background (default 1s).
	ReapInterval time.Duration
	// NoReaper stops the background deletion of expired values: the owner
	// of the store calls ReapExpired itself (a replicated store reaps as a
	// command of its log, so that every replica deletes the same values at
	// the same point). Expired values stay invisible to reads either way,
	// and old change records are still trimmed in the background.
	NoReaper bool
	// CacheSize is Pebble's block cache in bytes (default 32 MiB).
	CacheSize int64
	// MemTableSize is the size of Pebble's memtable in bytes (default 64
	// MiB): writes gather there before they are flushed to a sorted file.
	MemTableSize int64
	// Clock returns the current time (default time.Now); for tests. An
	// operation whose context carries a time (see WithTime) uses that
	// instead.
	Clock func() time.Time
	// Logger receives the engine's log lines (default slog.Default()).
	Logger *slog.Logger
}

// EnsureDefaults fills in the defaults of unset fields.
func (o *Options) EnsureDefaults() {
	if o.MaxKeySize == 0 {
		o.MaxKeySize = 64 << 10
	}
	if o.MaxValueSize == 0 {
		o.MaxValueSize = 16 << 20
	}
	if o.ChangeLogRetention == 0 {
		o.ChangeLogRetention = 100_000
	}
	if o.ReapInterval == 0 {
		o.ReapInterval = time.Second
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = 64 << 20
	}
	if o.CacheSize == 0 {
		o.CacheSize = 32 << 20
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate reports the first option that is out of range.
func (o *Options) Validate() error {
	switch {
	case o.MaxKeySize < 0:
		return fmt.Errorf("%w: MaxKeySize %d is negative", ErrInvalid, o.MaxKeySize)
	case o.MaxValueSize < 0:
		return fmt.Errorf("%w: MaxValueSize %d is negative", ErrInvalid, o.MaxValueSize)
	case o.DefaultTTL < 0:
		return fmt.Errorf("%w: DefaultTTL %s is negative", ErrInvalid, o.DefaultTTL)
	case o.ReapInterval < 0:
		return fmt.Errorf("%w: ReapInterval %s is negative", ErrInvalid, o.ReapInterval)
	}
	return nil
}

const (
	markerFile  = "KURA"
	lockFile    = "kura.lock"
	formatLine  = "kura store format 1\n"
	stripeCount = 256
)

// Store is an open storage engine. Its methods are safe for concurrent use.
type Store struct {
	dir  string
	opts Options
	db   *pebble.DB
	lock *dirlock.Lock
	keys *keyring
	wo   *pebble.WriteOptions
	seed maphash.Seed

	stampKey []byte                 // metaKey(metaStamp)
	stamp    atomic.Pointer[[]byte] // written by every commit; nil: none (see SetStamp)

	bulk    sync.RWMutex // exclusive for operations touching unknown sets of keys
	stripes [stripeCount]sync.Mutex
	metaMu  sync.Mutex // cursors

	keyBufs keyBufPool
	logging atomic.Bool // the change log is on

	feed   *feed
	cancel context.CancelFunc
	done   chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the store in dir. A directory that holds
// something else than a kura store, one in use by another process, and a
// damaged one are refused with an error that says which.
func Open(dir string, opts Options) (s *Store, err error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	if err := checkMarker(dir); err != nil {
		return nil, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lock.Release()
		}
	}()
	db, err := openPebble(dir, &opts)
	if err != nil {
		return nil, err
	}
	s = &Store{
		dir:  dir,
		opts: opts,
		db:   db,
		lock: lock,
		wo:   pebble.Sync,
		seed: maphash.MakeSeed(),
		done: make(chan struct{}),

		stampKey: metaKey(metaStamp),
	}
	if opts.NoSync || opts.NoWAL {
		s.wo = pebble.NoSync
	}
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.reapLoop(ctx)
	return s, nil
}

func (s *Store) init() error {
	if len(s.opts.Passphrases) > 0 {
		salt, err := s.getOrCreateMeta(metaSalt, newSalt)
		if err != nil {
			return fmt.Errorf("open store %s: %w", s.dir, err)
		}
		if s.keys, err = newKeyring(s.opts.Passphrases, salt); err != nil {
			return fmt.Errorf("open store %s: %w", s.dir, err)
		}
	}
	on, err := s.get(metaKey(metaChangeLog))
	if err != nil {
		return fmt.Errorf("open store %s: %w", s.dir, err)
	}
	s.logging.Store(len(on) == 1 && on[0] == 1)
	if s.opts.ChangeLog && !s.logging.Load() {
		if err := s.setDurable(metaKey(metaChangeLog), []byte{1}); err != nil {
			return fmt.Errorf("open store %s: %w", s.dir, err)
		}
		s.logging.Store(true)
	}
	last, err := s.lastChangeSeq()
	if err != nil {
		return fmt.Errorf("open store %s: %w", s.dir, pebbleErr(err))
	}
	s.feed = newFeed(last)
	return nil
}

// checkMarker makes sure dir is empty or a kura store, and marks a new one.
func checkMarker(dir string) error {
	path := filepath.Join(dir, markerFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if string(b) != formatLine {
			return fmt.Errorf("open store %s: %s says %q, not %q: a newer or foreign format", dir, path, strings.TrimSpace(string(b)), strings.TrimSpace(formatLine))
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("open store %s: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("open store %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.Name() != lockFile {
			return fmt.Errorf("open store %s: the directory is not empty and is not a kura store (no %s file); refusing to write into it", dir, markerFile)
		}
	}
	if err := os.WriteFile(path, []byte(formatLine), 0o644); err != nil {
		return fmt.Errorf("open store %s: %w", dir, err)
	}
	return nil
}

// lockDir takes the directory's lock (dir/kura.lock, naming our pid).
func lockDir(dir string) (*dirlock.Lock, error) {
	l, err := dirlock.Acquire(filepath.Join(dir, lockFile))
	var held *dirlock.HeldError
	if errors.As(err, &held) {
		return nil, fmt.Errorf("open store %s: %w (pid %s)", dir, ErrLocked, held.PID)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	return l, nil
}

// openPebble opens the database, turning Pebble's corruption reports (and
// any panic on a damaged directory) into an error that says so.
func openPebble(dir string, opts *Options) (db *pebble.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("open store %s: %w: the data directory is damaged: %v", dir, ErrCorrupt, r)
		}
	}()
	cache := pebble.NewCache(opts.CacheSize)
	defer cache.Unref()
	po := pebbleOptions(dir, opts, cache)
	db, err = pebble.Open(dir, po)
	switch {
	case err == nil:
		return db, nil
	case pebble.IsCorruptionError(err), errors.Is(err, os.ErrNotExist):
		// A missing MANIFEST or table is damage too.
		return nil, fmt.Errorf("open store %s: %w: the data directory is damaged: %v", dir, ErrCorrupt, err)
	}
	return nil, fmt.Errorf("open store %s: %w", dir, err)
}

// pebbleOptions are the Pebble settings of a store (the benchmarks' raw
// Pebble baseline uses them too, so that it measures the same engine).
// Memtables grow to 64 MiB, as in CockroachDB, so that a burst of small
// writes is flushed in few large tables rather than many small ones.
func pebbleOptions(dir string, opts *Options, cache *pebble.Cache) *pebble.Options {
	po := &pebble.Options{
		Cache:        cache,
		MemTableSize: uint64(opts.MemTableSize),
		Logger:       pebbleLogger{opts.Logger},
		DisableWAL:   opts.NoWAL,
		EventListener: &pebble.EventListener{
			// Reported here, returned as errors to the reads that meet it.
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				opts.Logger.Error("on-disk corruption", "component", "pebble", "dir", dir, "info", info.String())
			},
		},
	}
	return po
}

// pebbleLogger routes Pebble's log lines to slog; its Fatalf panics, which
// Open turns into an error.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// Dir returns the data directory.
func (s *Store) Dir() string { return s.dir }

// Close stops the background work, flushes and closes the database and
// releases the directory lock. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		<-s.done
		s.bulk.Lock()
		defer s.bulk.Unlock()
		s.feed.close() // under bulk: no commit is in flight to settle after it
		if s.opts.NoWAL {
			// Without a log, what is only in memory is gone after Close.
			if err := s.db.Flush(); err != nil {
				s.closeErr = fmt.Errorf("close store %s: flush: %w", s.dir, err)
			}
		}
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("close store %s: %w", s.dir, err)
		}
		s.db = nil
		s.lock.Release()
	})
	return s.closeErr
}

// stripe returns the lock index of a key in a namespace.
func (s *Store) stripe(ns byte, key []byte) int {
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteByte(ns)
	h.Write(key)
	return int(h.Sum64() % stripeCount)
}

// lockHandle is a held set of locks; release frees them. It is a value,
// so taking and releasing locks allocates nothing.
type lockHandle struct {
	s    *Store
	mode uint8 // lockModeRead, lockModeKeys or lockModeAll
	n    uint8
	ids  [4]uint16
}

const (
	lockModeRead = iota
	lockModeKeys
	lockModeAll
)

func (l lockHandle) release() {
	switch l.mode {
	case lockModeAll:
		l.s.bulk.Unlock()
		return
	case lockModeKeys:
		for j := int(l.n) - 1; j >= 0; j-- {
			l.s.stripes[l.ids[j]].Unlock()
		}
	}
	l.s.bulk.RUnlock()
}

// lockRead takes the shared bulk lock for a read; it fails once the store
// is closed.
func (s *Store) lockRead() (lockHandle, error) {
	s.bulk.RLock()
	if s.db == nil {
		s.bulk.RUnlock()
		return lockHandle{}, ErrClosed
	}
	return lockHandle{s: s, mode: lockModeRead}, nil
}

// lockKeys takes the shared bulk lock and the stripes of the given
// (namespace, key) pairs (at most 4) in ascending order.
func (s *Store) lockKeys(pairs ...nsKeyPair) (lockHandle, error) {
	l, err := s.lockRead()
	if err != nil {
		return l, err
	}
	l.mode = lockModeKeys
	for _, p := range pairs[:min(len(pairs), len(l.ids))] {
		id := uint16(s.stripe(p.ns, p.key))
		// Insert in order, skipping duplicates.
		i := 0
		for i < int(l.n) && l.ids[i] < id {
			i++
		}
		if i < int(l.n) && l.ids[i] == id {
			continue
		}
		copy(l.ids[i+1:l.n+1], l.ids[i:l.n])
		l.ids[i] = id
		l.n++
	}
	for _, id := range l.ids[:l.n] {
		s.stripes[id].Lock()
	}
	return l, nil
}

// lockAll takes the bulk lock exclusively, for operations whose key set is
// only known while they run (recursive deletes, batches).
func (s *Store) lockAll() (lockHandle, error) {
	s.bulk.Lock()
	if s.db == nil {
		s.bulk.Unlock()
		return lockHandle{}, ErrClosed
	}
	return lockHandle{s: s, mode: lockModeAll}, nil
}

type nsKeyPair struct {
	ns  byte
	key []byte
}

// now is the store's clock in unix nanoseconds; the background reaper uses
// it. Operations called with a context use nowCtx.
func (s *Store) now() int64 { return s.opts.Clock().UnixNano() }

// nowKey is the context key under which WithTime stores its time.
type nowKey struct{}

// WithTime returns a context under which every operation of a Store takes t
// as the current time, instead of asking Options.Clock: to decide whether a
// value has expired, to stamp a value's modification time and to compute
// its expiry from a TTL. A replicated store applies each command of its log
// with the time the log carries, so that every replica, and a replay after
// a restart, reach the same state whatever their clocks say.
func WithTime(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, nowKey{}, t.UnixNano())
}

// nowCtx is the current time of an operation in unix nanoseconds: the time
// ctx carries (see WithTime), or else the store's clock.
func (s *Store) nowCtx(ctx context.Context) int64 {
	if ctx != nil {
		if t, ok := ctx.Value(nowKey{}).(int64); ok {
			return t
		}
	}
	return s.now()
}

// expiryFor turns a per-call TTL into an absolute expiry: 0 means the
// store's default, a negative TTL means never.
func (s *Store) expiryFor(now int64, ttl time.Duration) int64 {
	if ttl == 0 {
		ttl = s.opts.DefaultTTL
	}
	if ttl <= 0 {
		return 0
	}
	return now + min(int64(ttl), 1<<63-1-max(now, 0)) // saturate: no wrap-around into the past
}

func (s *Store) checkValue(value []byte) error {
	if len(value) > s.opts.MaxValueSize {
		return fmt.Errorf("%w: value of %d bytes exceeds the limit of %d bytes", ErrInvalid, len(value), s.opts.MaxValueSize)
	}
	return nil
}

// keyBufPool recycles the buffers that hold namespaced keys on read paths.
type keyBufPool struct{ p sync.Pool }

func (kp *keyBufPool) get(ns byte, key []byte) *[]byte {
	b, _ := kp.p.Get().(*[]byte)
	if b == nil {
		b = new([]byte)
	}
	*b = append(append((*b)[:0], ns), key...)
	return b
}

func (kp *keyBufPool) put(b *[]byte) {
	if cap(*b) <= 4096 {
		kp.p.Put(b)
	}
}

// pebbleErr marks Pebble's corruption errors as ErrCorrupt.
func pebbleErr(err error) error {
	if err != nil && pebble.IsCorruptionError(err) {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return err
}

// get returns a copy of the raw value stored under k, or nil if absent.
func (s *Store) get(k []byte) ([]byte, error) {
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, pebbleErr(err)
	}
	out := bytes.Clone(v)
	closer.Close()
	if out == nil {
		out = []byte{}
	}
	return out, nil
}

// getOrCreateMeta returns the metadata value name, creating it with mk.
func (s *Store) getOrCreateMeta(name string, mk func() ([]byte, error)) ([]byte, error) {
	v, err := s.get(metaKey(name))
	if err != nil || v != nil {
		return v, err
	}
	v, err = mk()
	if err != nil {
		return nil, err
	}
	if err := s.setDurable(metaKey(name), v); err != nil {
		return nil, err
	}
	return v, nil
}

// setDurable writes one record and makes it durable: a synced write, or
// without a write-ahead log (Options.NoWAL) a write and a flush.
func (s *Store) setDurable(key, value []byte) error {
	if !s.opts.NoWAL {
		return s.db.Set(key, value, pebble.Sync)
	}
	if err := s.db.Set(key, value, pebble.NoSync); err != nil {
		return err
	}
	return s.db.Flush()
}

// commit applies b, recording the changes in the change log in the same
// batch unless the log is off, and the stamp (see SetStamp) if there is
// one. It must be called with the keys' locks held.
func (s *Store) commit(b *pebble.Batch, changes ...change) error {
	if p := s.stamp.Load(); p != nil {
		if err := b.Set(s.stampKey, *p, nil); err != nil {
			return err
		}
	}
	if len(changes) == 0 || !s.logging.Load() {
		return b.Commit(s.wo)
	}
	first := s.feed.reserve(len(changes))
	for i := range changes {
		c := &changes[i]
		c.seq = first + uint64(i)
		d := b.SetDeferred(9, c.encodedLen())
		d.Key[0] = nsChange
		binary.BigEndian.PutUint64(d.Key[1:], c.seq)
		c.appendTo(d.Value[:0])
		if err := d.Finish(); err != nil {
			s.feed.settle(first, len(changes))
			return err
		}
	}
	err := b.Commit(s.wo)
	s.feed.settle(first, len(changes))
	return err
}
