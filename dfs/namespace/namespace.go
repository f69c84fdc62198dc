package namespace

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/hdfs"
)

// DetachedParentID is the parent id of the root of a subtree being deleted
// in several transactions (see the package documentation): no inode has
// this id, so the subtree is unreachable from "/".
const DetachedParentID int64 = -1

// Defaults of Config.
const (
	// DefaultSuperuser is the superuser when Config.Superuser is empty: the
	// owner of the root directory in a new database.
	DefaultSuperuser = "root"
	// DefaultReplication is dfs.replication's default.
	DefaultReplication = 3
	// DefaultMaxReplication is dfs.replication.max's default.
	DefaultMaxReplication = 512
	// DefaultMinReplication is dfs.namenode.replication.min's default.
	DefaultMinReplication = 1
	// DefaultBlockSize is dfs.blocksize's default, 128 MiB.
	DefaultBlockSize = 128 << 20
	// DefaultMinBlockSize is dfs.namenode.fs-limits.min-block-size's
	// default, 1 MiB.
	DefaultMinBlockSize = 1 << 20
	// DefaultListLimit is dfs.ls.limit's default: the most entries of one
	// List page.
	DefaultListLimit = 1000
	// DefaultDeleteBatch is the most inodes one transaction of a large
	// recursive delete removes.
	DefaultDeleteBatch = 1000
	// DefaultLeaseSoftLimit is HDFS's lease soft limit: after it another
	// client may take over (recover) the file.
	DefaultLeaseSoftLimit = 60 * time.Second
	// DefaultLeaseHardLimit is dfs.namenode.lease-hard-limit-sec's default:
	// after it RecoverLeases closes the holder's files.
	DefaultLeaseHardLimit = 20 * time.Minute
)

// Placement chooses the datanodes that are to store a new block; the
// namenode implements it over its live datanodes. The namespace calls it
// inside a transaction that may run more than once, so it must be quick and
// free of side effects.
type Placement interface {
	// ChooseTargets returns up to req.Replication targets (fewer when fewer
	// datanodes live; none makes AddBlock fail).
	ChooseTargets(ctx context.Context, req PlacementRequest) ([]Target, error)
}

// PlacementRequest describes the block to place.
type PlacementRequest struct {
	// Path is the file's path.
	Path string
	// Replication is the file's replication.
	Replication int
	// BlockSize is the file's block size.
	BlockSize int64
	// ClientMachine is the writer's host ("" when unknown), for
	// writer-local placement.
	ClientMachine string
	// Exclude lists storage ids the client could not write to.
	Exclude []string
}

// Target is one datanode storage chosen for a block.
type Target struct {
	// StorageID identifies the storage; replicas are recorded under it.
	StorageID string
	// Addr is the datanode's data-transfer address (host:port).
	Addr string
}

// CapacityProvider reports the datanodes' raw capacity for FsStats; the
// namenode implements it from heartbeats.
type CapacityProvider interface {
	// Capacity returns total, used and remaining bytes.
	Capacity(ctx context.Context) (capacity, used, remaining int64, err error)
}

// Config configures a Namespace. The zero value is usable: defaults are
// HDFS's.
type Config struct {
	// Superuser is the namenode's user (HDFS's fsOwner), who passes every
	// permission check (DefaultSuperuser when empty).
	Superuser string
	// Supergroup is dfs.permissions.superusergroup: its members pass every
	// check too (hdfs.DefaultSupergroup when empty).
	Supergroup string
	// PermissionsDisabled turns permission checks off
	// (dfs.permissions.enabled = false).
	PermissionsDisabled bool
	// Limits are the file-system limits (nil: hdfs.DefaultLimits()).
	Limits *hdfs.Limits
	// DefaultReplication is used by Create when the caller passes 0.
	DefaultReplication int16
	// MaxReplication bounds a file's replication (dfs.replication.max).
	MaxReplication int16
	// MinReplication is how many finalized replicas each block needs before
	// Complete closes a file (dfs.namenode.replication.min); a negative
	// value means none (for tests without datanodes). It is capped by the
	// file's replication.
	MinReplication int
	// DefaultBlockSize is used by Create when the caller passes 0.
	DefaultBlockSize int64
	// MinBlockSize is the smallest block size Create accepts
	// (dfs.namenode.fs-limits.min-block-size); a negative value means none.
	MinBlockSize int64
	// ListLimit caps the entries of one List page.
	ListLimit int
	// DeleteBatch is the most inodes one transaction of a recursive delete
	// removes.
	DeleteBatch int
	// IDBatch is the size of the id ranges IDGen reserves.
	IDBatch int64
	// ResolveCacheSize is the number of entries of the resolving cache
	// (HopsFS's (parent id, name) -> inode id hint, per Namespace):
	// DefaultResolveCacheSize when 0, disabled when negative.
	ResolveCacheSize int
	// LeaseSoftLimit is how long a writer's lease keeps other writers away
	// without renewal.
	LeaseSoftLimit time.Duration
	// LeaseHardLimit is how long a lease lasts without renewal before
	// RecoverLeases closes its files.
	LeaseHardLimit time.Duration
	// Placement chooses datanodes for AddBlock (nil: AddBlock fails).
	Placement Placement
	// Capacity reports raw capacity for FsStats (nil: zeros).
	Capacity CapacityProvider
	// Clock returns the current time (nil: time.Now); tests use a fake.
	Clock func() time.Time
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	if c.Superuser == "" {
		c.Superuser = DefaultSuperuser
	}
	if c.Supergroup == "" {
		c.Supergroup = hdfs.DefaultSupergroup
	}
	if c.Limits == nil {
		l := hdfs.DefaultLimits()
		c.Limits = &l
	}
	if c.DefaultReplication == 0 {
		c.DefaultReplication = DefaultReplication
	}
	if c.MaxReplication == 0 {
		c.MaxReplication = DefaultMaxReplication
	}
	if c.MinReplication == 0 {
		c.MinReplication = DefaultMinReplication
	}
	if c.DefaultBlockSize == 0 {
		c.DefaultBlockSize = DefaultBlockSize
	}
	if c.MinBlockSize == 0 {
		c.MinBlockSize = DefaultMinBlockSize
	}
	if c.ListLimit <= 0 {
		c.ListLimit = DefaultListLimit
	}
	if c.DeleteBatch <= 0 {
		c.DeleteBatch = DefaultDeleteBatch
	}
	if c.IDBatch <= 0 {
		c.IDBatch = DefaultIDBatch
	}
	if c.ResolveCacheSize == 0 {
		c.ResolveCacheSize = DefaultResolveCacheSize
	}
	if c.LeaseSoftLimit <= 0 {
		c.LeaseSoftLimit = DefaultLeaseSoftLimit
	}
	if c.LeaseHardLimit <= 0 {
		c.LeaseHardLimit = DefaultLeaseHardLimit
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return c
}

// validate checks a defaulted configuration.
func (c Config) validate() error {
	if err := c.Limits.Validate(); err != nil {
		return err
	}
	switch {
	case c.DefaultReplication < 1 || c.DefaultReplication > c.MaxReplication:
		return fmt.Errorf("default replication %d is outside 1..%d", c.DefaultReplication, c.MaxReplication)
	case c.MinBlockSize > 0 && c.DefaultBlockSize < c.MinBlockSize:
		return fmt.Errorf("default block size %d is below the minimum block size %d", c.DefaultBlockSize, c.MinBlockSize)
	case c.LeaseSoftLimit > c.LeaseHardLimit:
		return fmt.Errorf("lease soft limit %v exceeds the hard limit %v", c.LeaseSoftLimit, c.LeaseHardLimit)
	}
	return nil
}

// Namespace is the file-system namespace over one metadata store. It is safe
// for concurrent use, and several Namespaces (in one process or in several)
// may share a database.
type Namespace struct {
	store   dal.Store
	cfg     Config
	checker hdfs.Checker
	limits  hdfs.Limits
	// serial is true when the store serialises write transactions (SQLite),
	// so that locking re-reads can be skipped.
	serial bool
	// rcache is the resolving cache (nil when disabled).
	rcache *resolveCache

	inodeIDs  *IDGen
	blockIDs  *IDGen
	genStamps *IDGen

	// takeovers runs the block recoveries that writers taking over a
	// file start (see SetBlockRecoverer).
	takeovers takeovers

	// renewals lets a writer's creates skip rewriting its lease (see
	// renewals).
	renewals *renewals
}

// New returns a Namespace over store, which must be open with the current
// schema. Close it to stop its id generators; the store stays open.
func New(store dal.Store, cfg Config) (*Namespace, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("namespace: bad configuration: %w", err)
	}
	return &Namespace{
		store: store,
		cfg:   cfg,
		checker: hdfs.Checker{
			Superuser:  cfg.Superuser,
			Supergroup: cfg.Supergroup,
			Disabled:   cfg.PermissionsDisabled,
		},
		limits:    *cfg.Limits,
		serial:    store.Backend() == "sqlite",
		rcache:    newResolveCache(cfg.ResolveCacheSize),
		renewals:  newRenewals(cfg.LeaseSoftLimit),
		inodeIDs:  NewIDGen(store, dal.VarInodeID, cfg.IDBatch),
		blockIDs:  NewIDGen(store, dal.VarBlockID, cfg.IDBatch),
		genStamps: NewIDGen(store, dal.VarGenerationStamp, cfg.IDBatch),
	}, nil
}

// Close stops the block recoveries started in the background (see
// SetBlockRecoverer), waiting for them, and the id generators' background
// work.
func (ns *Namespace) Close() error {
	ns.takeovers.close()
	ns.inodeIDs.Close()
	ns.blockIDs.Close()
	ns.genStamps.Close()
	return nil
}

// Store returns the metadata store.
func (ns *Namespace) Store() dal.Store { return ns.store }

// Checker returns the permission checker the namespace uses.
func (ns *Namespace) Checker() hdfs.Checker { return ns.checker }

// now returns the current time in milliseconds.
func (ns *Namespace) now() int64 { return ns.cfg.Clock().UnixMilli() }

// errStale is wrapped by the transient error an operation returns when a row
// it locked changed since it resolved its path.
var errStale = errors.New("path changed by a concurrent operation")

// stale returns a transient error: the transaction is run again.
func stale(format string, args ...any) error {
	return dal.MarkTransient(fmt.Errorf("%w: %s", errStale, fmt.Sprintf(format, args...)))
}

// update runs fn in one write transaction, refilling id generators that
// ran dry inside it, and wraps the error with op and path.
func (ns *Namespace) update(ctx context.Context, op, path string, fn func(tx dal.Tx) error) error {
	for range 100 {
		err := ns.store.Tx(ctx, fn)
		var need *needIDsError
		if errors.As(err, &need) {
			if err := need.g.Fill(ctx); err != nil {
				return wrapErr(op, path, err)
			}
			continue
		}
		return wrapErr(op, path, err)
	}
	return wrapErr(op, path, errors.New("id generator keeps running dry"))
}

// view runs fn in one read-only transaction and wraps its error.
func (ns *Namespace) view(ctx context.Context, op, path string, fn func(tx dal.Tx) error) error {
	return wrapErr(op, path, ns.store.ReadTx(ctx, fn))
}

// wrapErr adds the operation and path to err; a stale resolution that
// outlived its retries becomes a RetriableException.
func wrapErr(op, path string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, errStale) {
		err = fmt.Errorf("%w (%w)", hdfs.ErrRetriable.New("concurrent modification of "+path+", try again"), err)
	}
	return fmt.Errorf("%s %s: %w", op, path, err)
}

// FileStatus is the status of one inode, as getFileInfo returns it.
type FileStatus struct {
	// ID is the inode id (WebHDFS fileId).
	ID int64
	// Name is the inode's name ("" for the root).
	Name string
	// IsDir tells a directory.
	IsDir bool
	// Symlink is a symbolic link's target ("" otherwise).
	Symlink string
	// Length is a file's length in bytes.
	Length int64
	// Replication is a file's replication (0 for directories).
	Replication int16
	// BlockSize is a file's block size (0 for directories).
	BlockSize int64
	// MTime is the modification time in milliseconds.
	MTime int64
	// ATime is the access time in milliseconds (0 for directories).
	ATime int64
	// Permission is the permission.
	Permission hdfs.FsPermission
	// Owner is the owning user.
	Owner string
	// Group is the owning group.
	Group string
	// ChildrenNum is a directory's number of children.
	ChildrenNum int64
	// UnderConstruction is true while a writer holds the file open.
	UnderConstruction bool
	// ClientName is the writer holding the file's lease ("" when closed).
	ClientName string
}

// WebHDFS returns the status in WebHDFS's shape with the given pathSuffix
// ("" for GETFILESTATUS, the entry's name in a listing).
func (s *FileStatus) WebHDFS(pathSuffix string) hdfs.FileStatus {
	t := hdfs.TypeFile
	switch {
	case s.IsDir:
		t = hdfs.TypeDirectory
	case s.Symlink != "":
		t = hdfs.TypeSymlink
	}
	return hdfs.FileStatus{
		AccessTime:       s.ATime,
		BlockSize:        s.BlockSize,
		ChildrenNum:      s.ChildrenNum,
		FileID:           s.ID,
		Group:            s.Group,
		Length:           s.Length,
		ModificationTime: s.MTime,
		Owner:            s.Owner,
		PathSuffix:       pathSuffix,
		Permission:       s.Permission.Octal(),
		Replication:      int(s.Replication),
		Symlink:          s.Symlink,
		Type:             t,
	}
}

// statusOf builds the status of in, with a directory's stored number of
// entries as ChildrenNum.
func statusOf(in *dal.Inode) *FileStatus {
	var children int64
	if in.IsDir {
		children = in.Children
	}
	return &FileStatus{
		ID: in.ID, Name: in.Name, IsDir: in.IsDir, Symlink: in.Symlink,
		Length: in.Size, Replication: in.Replication, BlockSize: in.BlockSize,
		MTime: in.MTime, ATime: in.ATime, Permission: hdfs.FsPermission(in.Permission),
		Owner: in.Owner, Group: in.Group, ChildrenNum: children,
		UnderConstruction: in.UnderConstruction, ClientName: in.ClientName,
	}
}

// attrsOf returns what the permission checker reads of in.
func attrsOf(in *dal.Inode) *hdfs.Attrs {
	if in == nil {
		return nil
	}
	return &hdfs.Attrs{Owner: in.Owner, Group: in.Group, Perm: hdfs.FsPermission(in.Permission), Dir: in.IsDir}
}

// iip is a resolved path, HDFS's INodesInPath: nodes[0] is the root and
// nodes[i] is comps[i-1]; missing inodes (a suffix) are nil.
type iip struct {
	path  string
	comps []string
	nodes []*dal.Inode
	// locked is the inode the resolution read with a lock (lockHint; 0:
	// none) and lockedMode that lock's mode.
	locked     int64
	lockedMode dal.LockMode
}

// last returns the inode the path names (nil when missing).
func (p *iip) last() *dal.Inode { return p.nodes[len(p.nodes)-1] }

// parent returns the parent of the last inode (nil for the root or when
// missing).
func (p *iip) parent() *dal.Inode {
	if len(p.nodes) < 2 {
		return nil
	}
	return p.nodes[len(p.nodes)-2]
}

// isRoot reports whether the path is "/".
func (p *iip) isRoot() bool { return len(p.comps) == 0 }

// name returns the last component.
func (p *iip) name() string { return p.comps[len(p.comps)-1] }

// parentPath returns the path of the parent.
func (p *iip) parentPath() string { return hdfs.Parent(p.path) }

// existing returns the index of the deepest existing inode.
func (p *iip) existing() int {
	i := len(p.nodes) - 1
	for p.nodes[i] == nil {
		i--
	}
	return i
}

// resolved returns the path in the permission checker's terms.
func (p *iip) resolved() hdfs.Resolved {
	r := hdfs.Resolved{Components: p.comps, Inodes: make([]*hdfs.Attrs, len(p.nodes))}
	for i, in := range p.nodes {
		r.Inodes[i] = attrsOf(in)
	}
	return r
}

// check runs the permission checker on the path for need.
func (ns *Namespace) check(u hdfs.User, p *iip, need hdfs.Need) error {
	return ns.checker.Check(u, p.resolved(), need)
}

// resolve validates path and resolves it root to leaf with unlocked reads.
// Resolution stops at the first missing component or at a non-directory
// (the permission check then reports a ParentNotDirectoryException).
//
// With the resolving cache, the root and the longest prefix of components
// the cache knows are read in one batched primary-key read
// (dal.Tx.GetInodesByIDs, LockNone like the step-by-step reads), and each
// row is checked to be a directory's child of the expected parent id and
// name; from the first cached component that fails the check (missing row,
// moved, renamed: the entry is evicted) or is not cached, resolution goes on
// step by step. The result is the same rows step-by-step resolution would
// read, since (parent id, name) is a unique key; the locking that follows
// re-validates them as before. The components found are put in the cache.
// resolveExisting resolves path, checks need (traverse at least) and
// requires the path to exist: a missing one is a FileNotFoundException.
func (ns *Namespace) resolveExisting(ctx context.Context, tx dal.Tx, u hdfs.User, path string, need hdfs.Need) (*iip, *dal.Inode, error) {
	p, err := ns.resolve(ctx, tx, path)
	if err != nil {
		return nil, nil, err
	}
	if err := ns.check(u, p, need); err != nil {
		return nil, nil, err
	}
	last := p.last()
	if last == nil {
		return nil, nil, hdfs.FileNotFound(p.path)
	}
	return p, last, nil
}

func (ns *Namespace) resolve(ctx context.Context, tx dal.Tx, path string) (*iip, error) {
	return ns.resolveLocking(ctx, tx, path, lockHint{})
}

// lockHint asks resolveLocking to take, in its read of the cached path, the
// row lock that the operation's lockInodes would take next, saving that
// statement: the inode fromEnd components from the end (0: the last, 1: its
// parent), in mode. With newChild, only when the last component is not in
// the resolving cache (a create: the parent is what gets locked). The zero
// lockHint (mode dal.LockNone) takes no lock.
type lockHint struct {
	fromEnd  int
	mode     dal.LockMode
	newChild bool
}

// lockLast locks the inode the path names.
func lockLast() lockHint { return lockHint{mode: dal.LockWrite} }

// lockNewChildParent locks the parent of a child being created.
func lockNewChildParent() lockHint { return lockHint{fromEnd: 1, mode: dal.LockWrite, newChild: true} }

// resolveLocking is resolve taking the lock h asks for in the same read,
// when the resolving cache knows the inode to lock (else lockInodes takes
// it as usual). A serial store takes no locks.
func (ns *Namespace) resolveLocking(ctx context.Context, tx dal.Tx, path string, h lockHint) (*iip, error) {
	comps, err := hdfs.Split(path)
	if err != nil {
		return nil, err
	}
	p := &iip{path: hdfs.JoinComponents(comps), comps: comps, nodes: make([]*dal.Inode, len(comps)+1)}
	start := 0 // components before start are resolved (nodes[start] set)
	// absent: comps[start] is known not to exist in nodes[start].
	absent := false
	if c := ns.rcache; c != nil && len(comps) > 0 {
		ids := []int64{dal.RootID}
		parent := dal.RootID
		for _, name := range comps {
			id, ok := c.get(parent, name)
			if !ok {
				break
			}
			ids = append(ids, id)
			parent = id
		}
		// A component missing from the cache (typically the file being
		// created) is read by name in the same statement.
		missing := len(ids) <= len(comps)
		var child *dal.InodeKey
		if missing {
			child = &dal.InodeKey{ParentID: parent, Name: comps[len(ids)-1]}
		}
		var lockID int64
		lockMode := dal.LockNone
		if h.mode != dal.LockNone && !ns.serial {
			if target := len(comps) - h.fromEnd; target >= 0 && target < len(ids) && (!h.newChild || missing && target == len(ids)-1) {
				lockID, lockMode = ids[target], h.mode
			}
		}
		rows, err := tx.ReadPath(ctx, ids, lockID, lockMode, child)
		if err != nil {
			return nil, err
		}
		if lockID != 0 {
			p.locked, p.lockedMode = lockID, lockMode
		}
		byID := make(map[int64]*dal.Inode, len(rows))
		var found *dal.Inode // the child, when it exists
		for _, in := range rows {
			if missing && in.ParentID == parent && in.Name == comps[len(ids)-1] && in.ID != dal.RootID {
				found = in
				continue
			}
			byID[in.ID] = in
		}
		root := byID[dal.RootID]
		if root == nil {
			return nil, fmt.Errorf("read root directory: %w", dal.ErrNotFound)
		}
		p.nodes[0] = root
		valid := true
		for i := 1; i < len(ids); i++ {
			prev, in := p.nodes[i-1], byID[ids[i]]
			if !prev.IsDir || in == nil || in.ParentID != prev.ID || in.Name != comps[i-1] {
				if prev.IsDir { // a non-directory ends the resolution anyway
					c.evictKey(prev.ID, comps[i-1])
					c.stale.Add(1)
				}
				valid = false
				break
			}
			p.nodes[i] = in
			start = i
		}
		c.hits.Add(int64(start))
		if missing && valid && p.nodes[start].IsDir {
			// The cached prefix holds: the child read with it is the
			// answer for comps[start], found or not.
			c.misses.Add(1)
			if found == nil {
				absent = true
			} else {
				c.put(parent, found.Name, found.ID)
				p.nodes[start+1] = found
				start++
			}
		}
	}
	if p.nodes[0] == nil {
		root, err := tx.GetInodeByID(ctx, dal.RootID, dal.LockNone)
		if err != nil {
			return nil, fmt.Errorf("read root directory: %w", err)
		}
		p.nodes[0] = root
	}
	cur := p.nodes[start]
	for i := start; i < len(comps) && !absent; i++ {
		if !cur.IsDir {
			break
		}
		c := comps[i]
		in, err := tx.GetInode(ctx, cur.ID, c, dal.LockNone)
		if errors.Is(err, dal.ErrNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		if ns.rcache != nil {
			ns.rcache.misses.Add(1)
			ns.rcache.put(cur.ID, c, in.ID)
		}
		p.nodes[i+1] = in
		cur = in
	}
	return p, nil
}

// forget evicts inode id from the resolving cache: it is being deleted or
// renamed. (Only a hint: a rolled-back transaction leaves a harmless miss.)
func (ns *Namespace) forget(id int64) { ns.rcache.evictID(id) }

// lockRef asks lockInodes to lock the inode at position pos of p.
type lockRef struct {
	p    *iip
	pos  int
	mode dal.LockMode
}

// lockInodes locks the (existing) inodes refs name in ascending id order,
// each with the strongest mode asked for it, checks that each still has the
// parent and name the resolution saw, and replaces the resolved inodes with
// the locked (fresh) rows. A mismatch is a transient error (errStale).
//
// An inode resolveLocking already locked is not locked again. That lock
// came first, so when it is a create's parent and the file turns out to
// exist with a smaller id than its parent's, the two are locked out of
// ascending order. Only a concurrent delete or rename of that same file
// (which locks file then parent) can then deadlock with it; PostgreSQL
// detects the deadlock and the transaction that loses is retried (40P01 is
// transient). The resolution caches the file, so the retry of the create
// does not lock its parent early again.
func (ns *Namespace) lockInodes(ctx context.Context, tx dal.Tx, refs ...lockRef) error {
	if ns.serial {
		return nil
	}
	type entry struct {
		mode dal.LockMode
		refs []lockRef
	}
	byID := map[int64]*entry{}
	var ids []int64
	for _, r := range refs {
		in := r.p.nodes[r.pos]
		if in == nil {
			continue
		}
		e := byID[in.ID]
		if e == nil {
			e = &entry{}
			byID[in.ID] = e
			ids = append(ids, in.ID)
		}
		e.mode = max(e.mode, r.mode)
		e.refs = append(e.refs, r)
	}
	slices.Sort(ids)
	for _, id := range ids {
		e := byID[id]
		if e.mode == dal.LockNone {
			continue
		}
		if p := e.refs[0].p; p.locked == id && p.lockedMode >= e.mode {
			continue // locked (and read fresh) by resolveLocking
		}
		in, err := tx.GetInodeByID(ctx, id, e.mode)
		if errors.Is(err, dal.ErrNotFound) {
			return stale("inode %d was deleted", id)
		}
		if err != nil {
			return err
		}
		for _, r := range e.refs {
			old := r.p.nodes[r.pos]
			if old.ParentID != in.ParentID || old.Name != in.Name {
				return stale("inode %d moved", id)
			}
			r.p.nodes[r.pos] = in
		}
	}
	return nil
}

// insertChild inserts in (a new child) mapping a key collision to a stale
// resolution, which the operation retries: a child the resolution found
// missing was created concurrently, before the parent's lock was taken.
// The (parent, name) key is the check, so nobody re-reads a missing child
// after locking its parent (mkdirs, create; rename's move collides the same
// way).
func insertChild(ctx context.Context, tx dal.Tx, in *dal.Inode) error {
	err := tx.InsertInode(ctx, in)
	if errors.Is(err, dal.ErrExists) {
		return stale("%q created concurrently in directory %d", in.Name, in.ParentID)
	}
	return err
}

// checkNewChild applies the limits to a new child name under parent (at
// parentPath, holding count children: the parent's stored Children).
func (ns *Namespace) checkNewChild(parentPath, name string, count int64) error {
	if err := hdfs.CheckNewName(parentPath, name); err != nil {
		return err
	}
	if err := ns.limits.CheckComponent(parentPath, name); err != nil {
		return err
	}
	return ns.limits.CheckDirectoryItems(parentPath, int(count))
}

// touch sets a directory's modification time to now and writes it, with
// any change the caller made to its Children. dir must be the row read in
// this transaction under a write lock (lockInodes re-reads it on a store
// that is not serial), so that the count it writes is current: two
// namenodes adding entries to one directory serialise on its row.
func (ns *Namespace) touch(ctx context.Context, tx dal.Tx, dir *dal.Inode, now int64) error {
	dir.MTime = now
	return tx.Deferred().UpdateInode(ctx, dir) // dir is write-locked
}
