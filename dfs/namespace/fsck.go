package namespace

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/hdfs"
)

// FsckReport is the result of Fsck.
type FsckReport struct {
	// Dirs, Files, Blocks and Replicas count what is reachable from "/".
	Dirs, Files, Blocks, Replicas int64
	// OpenFiles counts files under construction.
	OpenFiles int64
	// Leases counts leases that cover files, LeasePaths the files they
	// cover; IdleLeases counts leases without files (their holder closed
	// its last file; lease recovery deletes them once they expire).
	Leases, LeasePaths, IdleLeases int64
	// PendingDeletes counts inodes of detached subtrees awaiting
	// PurgeDetached (not a problem).
	PendingDeletes int64
	// Problems describes every inconsistency found; empty when healthy.
	Problems []string
}

// OK reports whether no problem was found.
func (r *FsckReport) OK() bool { return len(r.Problems) == 0 }

// Err returns an error listing the problems, nil when OK.
func (r *FsckReport) Err() error {
	if r.OK() {
		return nil
	}
	return fmt.Errorf("fsck: %d problem(s):\n  %s", len(r.Problems), strings.Join(r.Problems, "\n  "))
}

func (r *FsckReport) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// maxFsckProblems bounds the report.
const maxFsckProblems = 1000

// Fsck checks the metadata's consistency in one read-only transaction (run
// it when the namespace is quiet: on PostgreSQL the reads are read-committed
// statement by statement):
//
//   - every inode is reachable from "/" exactly once (no cycles, no inode
//     listed twice), its parent id matches the directory it is listed in,
//     its name is a valid path component, and directories carry no file
//     attributes;
//   - every reachable directory's stored number of entries (Children) is
//     the number of entries it has (dal.Tx.CountChildren), and files and
//     symlinks store none;
//   - no orphan inodes: every inode with an id up to the inode counter is
//     reachable from "/" or lies in a detached subtree awaiting
//     PurgeDetached;
//   - every reachable file's blocks are numbered 0..n-1, found by block id
//     (the block lookup row) under that file, and, for a closed file,
//     complete with lengths summing to the file's length; a block has a
//     recovery id (newer than its stamp) exactly when it is under
//     recovery; every replica belongs to one of its file's blocks;
//   - a file is under construction exactly when it has a lease path, whose
//     holder is the file's client and has a lease; every lease path of every
//     lease names such a file.
//
// Detached subtrees awaiting PurgeDetached are not checked for counts (their
// entries go with them). Blocks, replicas and lease paths cannot be
// orphaned at the database level (foreign keys with cascades); the checks above catch them
// being attached to unreachable inodes.
func (ns *Namespace) Fsck(ctx context.Context) (*FsckReport, error) {
	var r *FsckReport
	err := ns.store.ReadTx(ctx, func(tx dal.Tx) error {
		r = &FsckReport{}
		return fsck(ctx, tx, r)
	})
	if err != nil {
		return nil, fmt.Errorf("fsck: %w", err)
	}
	return r, nil
}

func fsck(ctx context.Context, tx dal.Tx, r *FsckReport) error {
	seen := map[int64]bool{}
	pending := map[int64]bool{}
	var files []*dal.Inode
	filePath := map[int64]string{}

	root, err := tx.GetInodeByID(ctx, dal.RootID, dal.LockNone)
	if err != nil {
		return fmt.Errorf("read root: %w", err)
	}
	if !root.IsDir || root.ParentID != dal.RootParentID || root.Name != "" {
		r.problem("root inode is malformed: dir=%v parent=%d name=%q", root.IsDir, root.ParentID, root.Name)
	}
	type item struct {
		path string
		in   *dal.Inode
	}
	queue := []item{{"/", root}}
	seen[root.ID] = true
	for len(queue) > 0 && len(r.Problems) < maxFsckProblems {
		it := queue[0]
		queue = queue[1:]
		in := it.in
		if !in.IsDir {
			r.Files++
			files = append(files, in)
			filePath[in.ID] = it.path
			if in.Children != 0 {
				r.problem("file %s (inode %d) has a children count of %d", it.path, in.ID, in.Children)
			}
			continue
		}
		r.Dirs++
		if in.Size != 0 || in.Replication != 0 || in.BlockSize != 0 || in.UnderConstruction {
			r.problem("directory %s (inode %d) has file attributes", it.path, in.ID)
		}
		count, err := tx.CountChildren(ctx, in.ID)
		if err != nil {
			return err
		}
		if count != in.Children {
			r.problem("directory %s (inode %d) stores %d children but has %d", it.path, in.ID, in.Children, count)
		}
		children, err := listAll(ctx, tx, in.ID)
		if err != nil {
			return err
		}
		for _, c := range children {
			cp := hdfs.Join(it.path, c.Name)
			if c.ParentID != in.ID {
				r.problem("%s (inode %d) is listed under inode %d but has parent %d", cp, c.ID, in.ID, c.ParentID)
			}
			if !hdfs.IsValidName(cp) || strings.Contains(c.Name, "/") {
				r.problem("inode %d has an invalid name %q", c.ID, c.Name)
			}
			if seen[c.ID] {
				r.problem("inode %d is reachable twice (again as %s): a cycle or a duplicate", c.ID, cp)
				continue
			}
			seen[c.ID] = true
			queue = append(queue, item{cp, c})
		}
	}

	// Detached subtrees awaiting purge.
	detached, err := listAll(ctx, tx, DetachedParentID)
	if err != nil {
		return err
	}
	for _, d := range detached {
		err := walk(ctx, tx, "", d, func(_ string, in *dal.Inode, _ []*dal.Inode) error {
			if seen[in.ID] || pending[in.ID] {
				r.problem("inode %d of detached subtree %d is also reachable elsewhere", in.ID, d.ID)
				return nil
			}
			pending[in.ID] = true
			r.PendingDeletes++
			return nil
		})
		if err != nil {
			return err
		}
	}

	// Orphans: scan the inode id space.
	maxID, err := tx.GetVariable(ctx, dal.VarInodeID)
	if err != nil {
		return err
	}
	const batch = 1000
	for lo := int64(1); lo <= maxID && len(r.Problems) < maxFsckProblems; lo += batch {
		hi := min(lo+batch-1, maxID)
		ids := make([]int64, 0, hi-lo+1)
		for id := lo; id <= hi; id++ {
			ids = append(ids, id)
		}
		ins, err := tx.GetInodesByIDs(ctx, ids, dal.LockNone)
		if err != nil {
			return err
		}
		for _, in := range ins {
			if !seen[in.ID] && !pending[in.ID] {
				r.problem("orphan inode %d %q (parent %d) is not reachable from /", in.ID, in.Name, in.ParentID)
			}
		}
	}
	for id := range seen {
		if id > maxID {
			r.problem("inode %d is above the inode counter %d", id, maxID)
		}
	}

	// Files: blocks, replicas, lease paths.
	for _, f := range files {
		if len(r.Problems) >= maxFsckProblems {
			break
		}
		path := filePath[f.ID]
		blocks, err := tx.ListBlocks(ctx, f.ID)
		if err != nil {
			return err
		}
		blockIDs := map[int64]bool{}
		var length int64
		for i, b := range blocks {
			r.Blocks++
			blockIDs[b.BlockID] = true
			length += b.NumBytes
			if int(b.Index) != i {
				r.problem("%s: block %d has index %d, want %d", path, b.BlockID, b.Index, i)
			}
			lb, err := tx.GetBlock(ctx, b.BlockID)
			switch {
			case errors.Is(err, dal.ErrNotFound):
				r.problem("%s: block %d has no lookup row", path, b.BlockID)
			case err != nil:
				return err
			case lb.InodeID != f.ID:
				r.problem("%s: block %d is looked up under inode %d", path, b.BlockID, lb.InodeID)
			}
			if (b.RecoveryID != 0) != (b.State == dal.BlockUnderRecovery) || (b.RecoveryID != 0 && b.RecoveryID <= b.GenerationStamp) {
				r.problem("%s: block %d in state %d has recovery id %d (stamp %d)", path, b.BlockID, b.State, b.RecoveryID, b.GenerationStamp)
			}
			if !f.UnderConstruction && b.State != dal.BlockComplete {
				r.problem("%s: closed file has block %d in state %d", path, b.BlockID, b.State)
			}
		}
		if !f.UnderConstruction && length != f.Size {
			r.problem("%s: length %d but its blocks hold %d bytes", path, f.Size, length)
		}
		reps, err := tx.ListFileReplicas(ctx, f.ID)
		if err != nil {
			return err
		}
		for _, rep := range reps {
			r.Replicas++
			if !blockIDs[rep.BlockID] {
				r.problem("%s: replica of unknown block %d on %s", path, rep.BlockID, rep.StorageID)
			}
		}
		lp, err := tx.GetLeasePath(ctx, f.ID)
		if err != nil && !errors.Is(err, dal.ErrNotFound) {
			return err
		}
		if f.UnderConstruction {
			r.OpenFiles++
			if lp == nil {
				r.problem("%s: open for writing by %q without a lease path", path, f.ClientName)
			} else if lp.Holder != f.ClientName {
				r.problem("%s: written by %q but its lease path is %q's", path, f.ClientName, lp.Holder)
			}
			if f.ClientName == "" {
				r.problem("%s: open for writing by no client", path)
			}
		} else if lp != nil {
			r.problem("%s: closed file has a lease path of %q", path, lp.Holder)
		}
	}

	// Leases and their paths.
	leases, err := tx.ListExpiredLeases(ctx, math.MaxInt64, 0)
	if err != nil {
		return err
	}
	for _, l := range leases {
		paths, err := tx.ListLeasePaths(ctx, l.Holder)
		if err != nil {
			return err
		}
		if len(paths) == 0 {
			r.IdleLeases++
		} else {
			r.Leases++
		}
		for _, lp := range paths {
			r.LeasePaths++
			if pending[lp.InodeID] {
				continue
			}
			if !seen[lp.InodeID] {
				r.problem("lease path of %q names unreachable inode %d (%s)", l.Holder, lp.InodeID, lp.Path)
			}
		}
	}
	return nil
}
