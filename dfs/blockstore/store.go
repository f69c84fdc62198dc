package blockstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/kura-dev/kura/internal/dirlock"
)

// Options configure a Store. The zero value is usable: 128 MiB blocks,
// CRC32C per 512 bytes, durable finalize.
type Options struct {
	// BlockSize bounds a replica's length (HDFS's dfs.blocksize; default
	// 128 MiB). A write past it fails with ErrBlockFull.
	BlockSize int64
	// BytesPerChecksum is the chunk size of the replicas this store writes
	// (default 512). Replicas already on disk keep the one their meta
	// header names.
	BytesPerChecksum int
	// WriteBufferSize is how much a Writer gathers before it writes to its
	// files (default 1 MiB). Larger writes go straight to the file.
	WriteBufferSize int
	// Reserved is space on the file system kept for other uses (HDFS's
	// dfs.datanode.du.reserved): it is taken off the capacity and the
	// remaining space Usage reports.
	Reserved int64
	// NoSync skips the fsyncs of Sync, Finalize and the directory updates:
	// a crash of the machine (not of the process) may then lose or shorten
	// replicas. For tests and benchmarks.
	NoSync bool
	// Logger receives what Open recovers or finds corrupt (default
	// slog.Default()).
	Logger *slog.Logger
}

// EnsureDefaults fills in the defaults of unset fields.
func (o *Options) EnsureDefaults() {
	if o.BlockSize == 0 {
		o.BlockSize = 128 << 20
	}
	if o.BytesPerChecksum == 0 {
		o.BytesPerChecksum = DefaultBytesPerChecksum
	}
	if o.WriteBufferSize == 0 {
		o.WriteBufferSize = 1 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate reports the first option that is out of range.
func (o *Options) Validate() error {
	switch {
	case o.BlockSize <= 0:
		return fmt.Errorf("%w: BlockSize %d is not positive", ErrInvalid, o.BlockSize)
	case o.BytesPerChecksum <= 0 || o.BytesPerChecksum > MaxBytesPerChecksum:
		return fmt.Errorf("%w: BytesPerChecksum %d is outside 1..%d", ErrInvalid, o.BytesPerChecksum, MaxBytesPerChecksum)
	case o.WriteBufferSize <= 0:
		return fmt.Errorf("%w: WriteBufferSize %d is not positive", ErrInvalid, o.WriteBufferSize)
	case o.Reserved < 0:
		return fmt.Errorf("%w: Reserved %d is negative", ErrInvalid, o.Reserved)
	}
	return nil
}

// State is where a replica is in its life.
type State uint8

// Replica states, named as HDFS names them.
const (
	// Finalized: complete and immutable (until an Append); in current/.
	Finalized State = 1
	// BeingWritten: HDFS's RBW, a replica being written, or left by a
	// writer that closed without finalizing or by a crash; in rbw/.
	BeingWritten State = 2
)

// String returns "finalized" or "rbw".
func (s State) String() string {
	switch s {
	case Finalized:
		return "finalized"
	case BeingWritten:
		return "rbw"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// BlockInfo is one line of a block report.
type BlockInfo struct {
	// ID and GenStamp name the replica (GenStamp is 0 when its meta file,
	// which carries it, is missing).
	ID, GenStamp uint64
	// Length is the number of data bytes: for a replica being written, the
	// bytes written out so far.
	Length int64
	// State is Finalized or BeingWritten.
	State State
	// Corrupt is empty for a healthy replica, else why it is not.
	Corrupt string
	// Writing says a Writer holds the replica.
	Writing bool
	// RecoveryID is the newest block recovery that initialized the replica
	// (InitRecovery; HDFS's ReplicaUnderRecovery) and has not yet
	// re-stamped it; 0 when none.
	RecoveryID uint64
}

// Usage is what a heartbeat reports about the store's disk.
type Usage struct {
	// Capacity is the file system's size less Options.Reserved.
	Capacity int64
	// Used is the bytes of replica data and meta files (HDFS's dfsUsed).
	Used int64
	// NonDFSUsed is what else uses the file system.
	NonDFSUsed int64
	// Remaining is the space free for new replicas, less Options.Reserved.
	Remaining int64
	// Blocks is the number of replicas.
	Blocks int
}

// Store is an open block store. Its methods are safe for concurrent use.
type Store struct {
	dir, currentDir, rbwDir string
	recoveryDir             string
	opts                    Options
	ck                      Checksum // of new replicas
	lock                    *dirlock.Lock
	storageID               string
	log                     *slog.Logger
	scratch                 sync.Pool // *readBuf

	mu     sync.Mutex
	reps   map[uint64]*replica
	closed bool
}

// replica is the store's record of one block. Fields other than id are
// guarded by mu.
type replica struct {
	id uint64

	mu      sync.Mutex
	gs      uint64
	state   State
	dir     string // holds the data and meta files
	length  int64
	ck      Checksum // zero if the meta header is unreadable
	writer  *Writer  // non-nil while held by a Writer
	lastCRC uint32   // with a writer: the CRC of the partial last chunk
	corrupt string
	noData  bool     // the data file is missing
	noMeta  bool     // the meta file is missing
	extra   []string // other files of the block (several meta files)
	deleted bool
	// recoveryID is the newest block recovery that initialized the
	// replica and has not re-stamped it (0: none), kept in
	// recovery/blk_<id> so that it outlives a restart.
	recoveryID uint64
}

func (r *replica) dataPath() string { return filepath.Join(r.dir, dataName(r.id)) }
func (r *replica) metaPath() string { return filepath.Join(r.dir, metaName(r.id, r.gs)) }

func (r *replica) info() BlockInfo {
	return BlockInfo{ID: r.id, GenStamp: r.gs, Length: r.length, State: r.state, Corrupt: r.corrupt, Writing: r.writer != nil,
		RecoveryID: r.recoveryID}
}

func dataName(id uint64) string     { return "blk_" + strconv.FormatUint(id, 10) }
func metaName(id, gs uint64) string { return fmt.Sprintf("blk_%d_%d.meta", id, gs) }

// subdir is the directory under current/ of a finalized block (HDFS's
// DatanodeUtil.idToBlockDir).
func subdir(id uint64) string {
	return filepath.Join(fmt.Sprintf("subdir%d", (id>>16)&0x1f), fmt.Sprintf("subdir%d", (id>>8)&0x1f))
}

// parseName parses blk_<id> (meta false) or blk_<id>_<gs>.meta.
func parseName(name string) (id, gs uint64, meta, ok bool) {
	rest, found := strings.CutPrefix(name, "blk_")
	if !found {
		return 0, 0, false, false
	}
	if m, isMeta := strings.CutSuffix(rest, ".meta"); isMeta {
		i := strings.LastIndexByte(m, '_')
		if i < 0 {
			return 0, 0, false, false
		}
		id, err1 := strconv.ParseUint(m[:i], 10, 64)
		gs, err2 := strconv.ParseUint(m[i+1:], 10, 64)
		return id, gs, true, err1 == nil && err2 == nil
	}
	id, err := strconv.ParseUint(rest, 10, 64)
	return id, 0, false, err == nil
}

func blockErr(op string, id uint64, path string, err error) error {
	if path == "" {
		return fmt.Errorf("blockstore: %s blk_%d: %w", op, id, err)
	}
	return fmt.Errorf("blockstore: %s blk_%d (%s): %w", op, id, path, err)
}

// Open opens (creating if needed) the block store in dir, takes its lock
// (a second Open of the same directory, here or in another process, fails
// with ErrLocked), and rebuilds the replica map, recovering replicas left
// being written (see the package doc).
func Open(dir string, opts Options) (*Store, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Store{
		dir:         dir,
		currentDir:  filepath.Join(dir, "current"),
		rbwDir:      filepath.Join(dir, "rbw"),
		recoveryDir: filepath.Join(dir, "recovery"),
		opts:        opts,
		ck:          Checksum{Type: ChecksumCRC32C, BytesPerChecksum: opts.BytesPerChecksum},
		log:         opts.Logger.With("blockstore", dir),
		reps:        make(map[uint64]*replica),
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("blockstore: open %s: %w", dir, err)
	}
	lock, err := dirlock.Acquire(filepath.Join(dir, "kura.lock"))
	if err != nil {
		var he *dirlock.HeldError
		if errors.As(err, &he) {
			return nil, fmt.Errorf("blockstore: open %s: %w: %v", dir, ErrLocked, err)
		}
		return nil, fmt.Errorf("blockstore: open %s: %w", dir, err)
	}
	s.lock = lock
	if err := s.init(); err != nil {
		lock.Release()
		return nil, err
	}
	return s, nil
}

func (s *Store) init() error {
	for _, d := range []string{s.currentDir, s.rbwDir, s.recoveryDir} {
		if err := mkdirSynced(d, !s.opts.NoSync); err != nil {
			return fmt.Errorf("blockstore: open %s: %w", s.dir, err)
		}
	}
	id, err := s.readVersion()
	if err != nil {
		return fmt.Errorf("blockstore: open %s: %w", s.dir, err)
	}
	s.storageID = id
	if err := s.scan(); err != nil {
		return err
	}
	return s.loadRecoveries()
}

// readVersion reads DIR/VERSION, writing it with a new storage id first
// if there is none.
func (s *Store) readVersion() (string, error) {
	path := filepath.Join(s.dir, "VERSION")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		var u [16]byte
		rand.Read(u[:])
		u[6] = u[6]&0x0f | 0x40
		u[8] = u[8]&0x3f | 0x80
		id := fmt.Sprintf("DS-%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
		content := "layoutVersion=1\nstorageID=" + id + "\n"
		tmp := path + ".tmp"
		if err := writeFileSynced(tmp, []byte(content), !s.opts.NoSync); err != nil {
			return "", err
		}
		if err := os.Rename(tmp, path); err != nil {
			return "", err
		}
		if !s.opts.NoSync {
			if err := syncDir(s.dir); err != nil {
				return "", err
			}
		}
		return id, nil
	}
	if err != nil {
		return "", err
	}
	var version, id string
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch k {
		case "layoutVersion":
			version = v
		case "storageID":
			id = v
		}
	}
	if version != "1" || id == "" {
		return "", fmt.Errorf("%s: want layoutVersion=1 and a storageID, found %q", path, b)
	}
	return id, nil
}

// StorageID is the store's identity (HDFS's DatanodeStorage id), made
// once and kept in DIR/VERSION.
func (s *Store) StorageID() string { return s.storageID }

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Close releases the directory lock. Writers and readers still open keep
// working on their files, but the store's methods fail with ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.lock.Release()
}

// get returns the replica of id, or an error naming op.
func (s *Store) get(op string, id uint64) (*replica, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, blockErr(op, id, "", ErrClosed)
	}
	rep, ok := s.reps[id]
	if !ok {
		return nil, blockErr(op, id, "", ErrNotFound)
	}
	return rep, nil
}

// Stat describes the replica of id.
func (s *Store) Stat(id uint64) (BlockInfo, error) {
	rep, err := s.get("stat", id)
	if err != nil {
		return BlockInfo{}, err
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if rep.deleted {
		return BlockInfo{}, blockErr("stat", id, "", ErrNotFound)
	}
	return rep.info(), nil
}

// List is a block report: every replica, finalized, being written and
// corrupt ones, in block id order.
func (s *Store) List() []BlockInfo {
	s.mu.Lock()
	reps := make([]*replica, 0, len(s.reps))
	for _, r := range s.reps {
		reps = append(reps, r)
	}
	s.mu.Unlock()
	out := make([]BlockInfo, 0, len(reps))
	for _, r := range reps {
		r.mu.Lock()
		if !r.deleted {
			out = append(out, r.info())
		}
		r.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b BlockInfo) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Usage reports the disk's capacity and use, for heartbeats.
func (s *Store) Usage() (Usage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(s.dir, &st); err != nil {
		return Usage{}, fmt.Errorf("blockstore: statfs %s: %w", s.dir, err)
	}
	var u Usage
	s.mu.Lock()
	reps := make([]*replica, 0, len(s.reps))
	for _, r := range s.reps {
		reps = append(reps, r)
	}
	s.mu.Unlock()
	for _, r := range reps {
		r.mu.Lock()
		if !r.deleted {
			u.Blocks++
			ck := r.ck
			if ck.BytesPerChecksum == 0 {
				ck = s.ck
			}
			u.Used += r.length + ck.MetaSize(r.length)
		}
		r.mu.Unlock()
	}
	bsize := int64(st.Bsize)
	total := int64(st.Blocks) * bsize
	free := int64(st.Bfree) * bsize
	avail := int64(st.Bavail) * bsize
	u.Capacity = max(0, total-s.opts.Reserved)
	u.Remaining = max(0, avail-s.opts.Reserved)
	u.NonDFSUsed = max(0, total-free-u.Used)
	return u, nil
}

// Delete removes the replica of id, whatever its state. A Writer that
// still holds it fails at Finalize; readers already open keep reading.
func (s *Store) Delete(ctx context.Context, id uint64) error {
	if err := ctx.Err(); err != nil {
		return blockErr("delete", id, "", err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return blockErr("delete", id, "", ErrClosed)
	}
	rep, ok := s.reps[id]
	if ok {
		delete(s.reps, id)
	}
	s.mu.Unlock()
	if !ok {
		return blockErr("delete", id, "", ErrNotFound)
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	rep.deleted = true
	return s.removeFiles(rep)
}

// removeFiles deletes rep's files; rep.mu is held.
func (s *Store) removeFiles(rep *replica) error {
	paths := append([]string{rep.dataPath(), rep.metaPath()}, rep.extra...)
	if rep.recoveryID != 0 {
		paths = append(paths, s.recoveryPath(rep.id))
		rep.recoveryID = 0
	}
	var first error
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) && first == nil {
			first = blockErr("delete", rep.id, p, err)
		}
	}
	if !s.opts.NoSync {
		if err := syncDir(rep.dir); err != nil && first == nil {
			first = blockErr("delete", rep.id, rep.dir, err)
		}
	}
	return first
}

// MarkCorrupt records why the replica of id at generation stamp gs is
// corrupt (when it is still at that stamp and not already corrupt): List
// and Stat report it so, and it is no longer read, appended to or
// recovered. A datanode marks a replica corrupt that is shorter than the
// complete block the namenode holds.
func (s *Store) MarkCorrupt(id, gs uint64, reason string) { s.markCorrupt(id, gs, reason) }

// markCorrupt records why the replica (id, gs) is corrupt, for List.
func (s *Store) markCorrupt(id, gs uint64, reason string) {
	s.mu.Lock()
	rep := s.reps[id]
	s.mu.Unlock()
	if rep == nil {
		return
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if rep.gs == gs && rep.corrupt == "" && !rep.deleted {
		rep.corrupt = reason
		s.log.Warn("replica is corrupt", "block", id, "genstamp", gs, "reason", reason)
	}
}

// Verify reads the whole replica of id and checks every chunk (HDFS's
// block scanner). A mismatch is a *ChecksumError wrapping ErrCorrupt, and
// the replica is then reported corrupt by List.
func (s *Store) Verify(ctx context.Context, id uint64) error {
	r, err := s.NewReader(ctx, id)
	if err != nil {
		return err
	}
	defer r.Close()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < r.Size(); {
		if err := ctx.Err(); err != nil {
			return blockErr("verify", id, r.dataPath, err)
		}
		n, err := r.ReadAt(buf, off)
		off += int64(n)
		if err != nil && !(errors.Is(err, io.EOF) && off == r.Size()) {
			return err
		}
	}
	return nil
}

// --- opening: the scan and the recovery ---

type found struct {
	dataDir string // directory of the data file, "" if none
	metas   []foundMeta
}

type foundMeta struct {
	gs  uint64
	dir string
}

func (f *found) add(dir, name string, gs uint64, meta bool) bool {
	if meta {
		f.metas = append(f.metas, foundMeta{gs, dir})
		return true
	}
	if f.dataDir != "" {
		return false
	}
	f.dataDir = dir
	return true
}

func (f *found) empty() bool { return f.dataDir == "" && len(f.metas) == 0 }

// scan rebuilds the replica map from current/ and rbw/.
func (s *Store) scan() error {
	cur := map[uint64]*found{}
	rbw := map[uint64]*found{}
	note := func(m map[uint64]*found, dir, name string) {
		id, gs, meta, ok := parseName(name)
		if !ok {
			s.log.Warn("ignoring a file that is not a block", "file", filepath.Join(dir, name))
			return
		}
		f := m[id]
		if f == nil {
			f = &found{}
			m[id] = f
		}
		if !f.add(dir, name, gs, meta) {
			s.log.Warn("ignoring a second data file of a block", "file", filepath.Join(dir, name), "first", filepath.Join(f.dataDir, name))
		}
	}
	err := filepath.WalkDir(s.currentDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			note(cur, filepath.Dir(path), d.Name())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("blockstore: scan %s: %w", s.currentDir, err)
	}
	ents, err := os.ReadDir(s.rbwDir)
	if err != nil {
		return fmt.Errorf("blockstore: scan %s: %w", s.rbwDir, err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			note(rbw, s.rbwDir, e.Name())
		}
	}

	// A block split between rbw/ and current/: a crash between the two
	// renames of Finalize or Append. Complete it in current/.
	for id, r := range rbw {
		c := cur[id]
		if c == nil {
			continue
		}
		if err := s.join(id, c, r); err != nil {
			return err
		}
		if !r.empty() {
			s.log.Warn("a block is both finalized and being written; keeping the finalized replica and leaving the other's files", "block", id, "dir", s.rbwDir)
		}
		delete(rbw, id)
	}
	for id, f := range cur {
		s.reps[id] = s.loadFinalized(id, f)
	}
	for id, f := range rbw {
		rep, err := s.recoverRBW(id, f)
		if err != nil {
			return err
		}
		s.reps[id] = rep
	}
	return nil
}

// join moves into current/ the half of a block that sits in rbw/ when the
// other half is in current/.
func (s *Store) join(id uint64, c, r *found) error {
	var from, to string
	switch {
	case c.dataDir != "" && len(c.metas) == 0 && r.dataDir == "" && len(r.metas) == 1:
		from = filepath.Join(r.metas[0].dir, metaName(id, r.metas[0].gs))
		to = filepath.Join(c.dataDir, metaName(id, r.metas[0].gs))
		c.metas, r.metas = []foundMeta{{r.metas[0].gs, c.dataDir}}, nil
	case c.dataDir == "" && len(c.metas) == 1 && r.dataDir != "" && len(r.metas) == 0:
		from = filepath.Join(r.dataDir, dataName(id))
		to = filepath.Join(c.metas[0].dir, dataName(id))
		c.dataDir, r.dataDir = c.metas[0].dir, ""
	default:
		return nil
	}
	s.log.Info("completing an interrupted move of a replica", "block", id, "from", from, "to", to)
	if err := os.Rename(from, to); err != nil {
		return blockErr("recover", id, from, err)
	}
	if !s.opts.NoSync {
		if err := syncDir(filepath.Dir(to)); err != nil {
			return blockErr("recover", id, to, err)
		}
		if err := syncDir(filepath.Dir(from)); err != nil {
			return blockErr("recover", id, from, err)
		}
	}
	return nil
}

// loadFinalized checks a finalized replica's files cheaply (header, sizes);
// what is wrong is kept in the replica's corrupt reason.
func (s *Store) loadFinalized(id uint64, f *found) *replica {
	rep := &replica{id: id, state: Finalized, dir: f.dataDir}
	bad := func(reason string) *replica {
		rep.corrupt = reason
		s.log.Warn("corrupt replica", "block", id, "dir", rep.dir, "reason", reason)
		return rep
	}
	if len(f.metas) > 0 {
		slices.SortFunc(f.metas, func(a, b foundMeta) int { return -cmpU64(a.gs, b.gs) })
		rep.gs = f.metas[0].gs
		for _, m := range f.metas[1:] {
			rep.extra = append(rep.extra, filepath.Join(m.dir, metaName(id, m.gs)))
		}
		if rep.dir == "" {
			rep.dir = f.metas[0].dir
		}
	}
	if f.dataDir == "" {
		rep.noData = true
		return bad("data file is missing")
	}
	st, err := os.Stat(rep.dataPath())
	if err != nil {
		return bad(err.Error())
	}
	rep.length = st.Size()
	if len(f.metas) == 0 {
		rep.noMeta = true
		return bad("meta file is missing")
	}
	if f.metas[0].dir != f.dataDir {
		return bad(fmt.Sprintf("meta file is in %s, data file in %s", f.metas[0].dir, f.dataDir))
	}
	if len(f.metas) > 1 {
		return bad(fmt.Sprintf("%d meta files", len(f.metas)))
	}
	h, msize, err := readHeader(rep.metaPath())
	if err != nil {
		return bad(err.Error())
	}
	rep.ck = h.Checksum
	if want := rep.ck.MetaSize(rep.length); msize != want {
		return bad(fmt.Sprintf("meta file is %d bytes, want %d for %d data bytes", msize, want, rep.length))
	}
	return rep
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readHeader reads the meta header of path and the file's size.
func readHeader(path string) (MetaHeader, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return MetaHeader{}, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return MetaHeader{}, 0, err
	}
	var b [MetaHeaderSize]byte
	n, err := f.ReadAt(b[:], 0)
	if err != nil && n < len(b) && !errors.Is(err, io.EOF) {
		return MetaHeader{}, 0, err
	}
	h, err := DecodeMetaHeader(b[:n])
	return h, st.Size(), err
}

// recoverRBW recovers a replica found in rbw/: its length becomes that of
// the longest prefix whose last chunk matches its checksum (HDFS's
// BlockPoolSlice.validateIntegrityAndSetLength, going further back while
// chunks fail), and its files are truncated to that length.
func (s *Store) recoverRBW(id uint64, f *found) (*replica, error) {
	rep := &replica{id: id, state: BeingWritten, dir: s.rbwDir}
	if len(f.metas) == 0 {
		rep.noMeta = true
		rep.corrupt = "meta file is missing"
		if st, err := os.Stat(rep.dataPath()); err == nil {
			rep.length = st.Size()
		}
		s.log.Warn("corrupt replica", "block", id, "dir", rep.dir, "reason", rep.corrupt)
		return rep, nil
	}
	slices.SortFunc(f.metas, func(a, b foundMeta) int { return -cmpU64(a.gs, b.gs) })
	rep.gs = f.metas[0].gs
	for _, m := range f.metas[1:] {
		rep.extra = append(rep.extra, filepath.Join(m.dir, metaName(id, m.gs)))
	}
	if len(f.metas) > 1 {
		rep.corrupt = fmt.Sprintf("%d meta files", len(f.metas))
		s.log.Warn("corrupt replica", "block", id, "dir", rep.dir, "reason", rep.corrupt)
	}
	dpath, mpath := rep.dataPath(), rep.metaPath()
	data, err := os.OpenFile(dpath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, blockErr("recover", id, dpath, err)
	}
	defer data.Close()
	meta, err := os.OpenFile(mpath, os.O_RDWR, 0o644)
	if err != nil {
		return nil, blockErr("recover", id, mpath, err)
	}
	defer meta.Close()
	dst, err := data.Stat()
	if err != nil {
		return nil, blockErr("recover", id, dpath, err)
	}
	mst, err := meta.Stat()
	if err != nil {
		return nil, blockErr("recover", id, mpath, err)
	}
	var hb [MetaHeaderSize]byte
	n, _ := meta.ReadAt(hb[:], 0)
	h, herr := DecodeMetaHeader(hb[:n])
	length := int64(0)
	if herr != nil {
		// The header never reached the disk (or is damaged): nothing can
		// be verified, so the replica starts over empty.
		h = MetaHeader{Version: MetaVersion, Checksum: s.ck}
		if _, err := meta.WriteAt(h.AppendEncode(nil), 0); err != nil {
			return nil, blockErr("recover", id, mpath, err)
		}
		s.log.Warn("rbw replica had no readable meta header; recovered as empty", "block", id, "file", mpath, "data_bytes", dst.Size(), "error", herr)
	} else {
		length, err = lastGoodLength(data, meta, h.Checksum, dst.Size(), mst.Size())
		if err != nil {
			return nil, blockErr("recover", id, dpath, err)
		}
	}
	rep.ck = h.Checksum
	rep.length = length
	if length != dst.Size() || h.Checksum.MetaSize(length) != mst.Size() {
		s.log.Info("recovered a replica being written", "block", id, "genstamp", rep.gs,
			"data_bytes", dst.Size(), "meta_bytes", mst.Size(), "length", length)
	}
	if err := data.Truncate(length); err != nil {
		return nil, blockErr("recover", id, dpath, err)
	}
	if err := meta.Truncate(h.Checksum.MetaSize(length)); err != nil {
		return nil, blockErr("recover", id, mpath, err)
	}
	if !s.opts.NoSync {
		if err := data.Sync(); err != nil {
			return nil, blockErr("recover", id, dpath, err)
		}
		if err := meta.Sync(); err != nil {
			return nil, blockErr("recover", id, mpath, err)
		}
	}
	return rep, nil
}

// lastGoodLength walks back from the last chunk both files have until a
// chunk matches its checksum, and returns where that chunk ends.
func lastGoodLength(data, meta *os.File, ck Checksum, dsize, msize int64) (int64, error) {
	bpc := int64(ck.BytesPerChecksum)
	tab := ck.table()
	chunks := min(ck.NumChunks(dsize), (msize-MetaHeaderSize)/crcSize)
	buf := make([]byte, bpc)
	var cb [crcSize]byte
	for i := chunks - 1; i >= 0; i-- {
		start := i * bpc
		end := min(start+bpc, dsize)
		if _, err := data.ReadAt(buf[:end-start], start); err != nil {
			return 0, err
		}
		if _, err := meta.ReadAt(cb[:], MetaHeaderSize+i*crcSize); err != nil {
			return 0, err
		}
		if binary.BigEndian.Uint32(cb[:]) == crc32.Checksum(buf[:end-start], tab) {
			return end, nil
		}
	}
	return 0, nil
}

// --- file helpers ---

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// mkdirSynced creates dir and its missing parents, syncing the parent of
// each one it creates.
func mkdirSynced(dir string, sync bool) error {
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirSynced(parent, sync); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if sync {
		return syncDir(parent)
	}
	return nil
}

func writeFileSynced(path string, b []byte, sync bool) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
