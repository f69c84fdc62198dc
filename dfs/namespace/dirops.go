package namespace

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/hdfs"
)

// implicitUWX is what HDFS adds to the permission of directories that
// mkdirs -p and create (createParent) make on the way: the owner may always
// write and traverse them (FSDirMkdirOp.addImplicitUwx).
const implicitUWX hdfs.FsPermission = 0o300

// Mkdirs creates the directory path with permission perm (applied as given:
// the caller applies any umask), like `hdfs dfs -mkdir [-p]` and ClientProtocol
// .mkdirs. With createParents, missing ancestors are created too, with perm
// plus owner write and execute; without, a missing parent is a
// FileNotFoundException ("Parent directory doesn't exist: /a"). An existing
// directory is success; an existing file is a FileAlreadyExistsException
// ("Path is not a directory: /a/f"), a file above the path a
// ParentNotDirectoryException. Checks: traverse on every existing ancestor,
// WRITE on the deepest existing ancestor; path length and depth, component
// length, reserved names, directory items. New directories belong to the
// caller and take their parent's group.
func (ns *Namespace) Mkdirs(ctx context.Context, u hdfs.User, path string, perm hdfs.FsPermission, createParents bool) error {
	return ns.update(ctx, "mkdirs", path, func(tx dal.Tx) error {
		p, err := ns.resolveLocking(ctx, tx, path, lockNewChildParent())
		if err != nil {
			return err
		}
		if err := ns.check(u, p, hdfs.Need{}); err != nil {
			return err
		}
		if last := p.last(); last != nil {
			if !last.IsDir {
				return hdfs.PathNotDirectory(p.path)
			}
			return nil
		}
		if err := ns.check(u, p, hdfs.OpMkdirs.Need()); err != nil {
			return err
		}
		k := p.existing()
		if !createParents && k != len(p.comps)-1 {
			return hdfs.ParentNotFound(p.parentPath())
		}
		if err := ns.limits.CheckPathLength("mkdirs", p.path); err != nil {
			return err
		}
		return ns.createAncestors(ctx, tx, u, p, k, len(p.comps), perm&hdfs.PermMask, perm&hdfs.PermMask)
	})
}

// createAncestors locks p.nodes[k] and creates the directories at positions
// k+1..upto of p (upto = len(p.comps) includes the last component, which
// then gets perm; the others get parentPerm|implicitUWX).
func (ns *Namespace) createAncestors(ctx context.Context, tx dal.Tx, u hdfs.User, p *iip, k, upto int, perm, parentPerm hdfs.FsPermission) error {
	if err := ns.lockInodes(ctx, tx, lockRef{p, k, dal.LockWrite}); err != nil {
		return err
	}
	anc := p.nodes[k]
	if !anc.IsDir {
		return hdfs.ParentNotDirectory(hdfs.JoinComponents(p.comps[:k]))
	}
	count := anc.Children
	now := ns.now()
	parent := anc
	for i := k + 1; i <= upto; i++ {
		name := p.comps[i-1]
		parentPath := hdfs.JoinComponents(p.comps[:i-1])
		if err := ns.checkNewChild(parentPath, name, count); err != nil {
			return err
		}
		count = 0
		id, err := take(ns.inodeIDs)
		if err != nil {
			return err
		}
		mode := perm
		if i < len(p.comps) {
			mode = parentPerm | implicitUWX
		}
		in := &dal.Inode{
			ID: id, ParentID: parent.ID, Name: name, IsDir: true, Permission: uint16(mode),
			Owner: u.Name, Group: parent.Group, MTime: now,
		}
		if i < upto {
			in.Children = 1 // the next directory created, inside it
		}
		if err := insertChild(ctx, tx, in); err != nil {
			return err
		}
		p.nodes[i] = in
		parent = in
	}
	anc.Children++
	return ns.touch(ctx, tx, anc, now)
}

// Stat returns the status of path (getFileInfo, GETFILESTATUS): a
// FileNotFoundException ("File does not exist: /a") when missing. Checks:
// traverse.
func (ns *Namespace) Stat(ctx context.Context, u hdfs.User, path string) (*FileStatus, error) {
	var st *FileStatus
	err := ns.view(ctx, "stat", path, func(tx dal.Tx) error {
		_, last, err := ns.resolveExisting(ctx, tx, u, path, hdfs.OpStat.Need())
		if err != nil {
			return err
		}
		st = statusOf(last)
		return nil
	})
	return st, err
}

// Listing is one page of a directory listing.
type Listing struct {
	// Entries are the page's entries in name order; each Name is the
	// pathSuffix.
	Entries []*FileStatus
	// HasMore is true when entries follow this page: the next page starts
	// after the last entry's name.
	HasMore bool
}

// List returns up to limit entries of the directory path whose names sort
// after after ("" from the start), in byte order (getListing,
// LISTSTATUS_BATCH); limit <= 0 or above Config.ListLimit means ListLimit.
// Listing a file returns the file itself (with its name). Missing is a
// FileNotFoundException. Checks: traverse, and READ_EXECUTE on a directory.
func (ns *Namespace) List(ctx context.Context, u hdfs.User, path, after string, limit int) (*Listing, error) {
	if limit <= 0 || limit > ns.cfg.ListLimit {
		limit = ns.cfg.ListLimit
	}
	var l *Listing
	err := ns.view(ctx, "list", path, func(tx dal.Tx) error {
		p, last, err := ns.resolveExisting(ctx, tx, u, path, hdfs.Need{})
		if err != nil {
			return err
		}
		if !last.IsDir {
			l = &Listing{Entries: []*FileStatus{statusOf(last)}}
			return nil
		}
		if err := ns.check(u, p, hdfs.OpList.Need()); err != nil {
			return err
		}
		children, err := tx.ListChildren(ctx, last.ID, after, limit+1)
		if err != nil {
			return err
		}
		l = &Listing{}
		if len(children) > limit {
			children, l.HasMore = children[:limit], true
		}
		for _, c := range children {
			l.Entries = append(l.Entries, statusOf(c))
		}
		return nil
	})
	return l, err
}

// Delete deletes path (ClientProtocol.delete, DELETE). It returns false
// without error when path does not exist, and for "/" (which HDFS never
// deletes). A non-empty directory needs recursive, else it is a
// PathIsNotEmptyDirectoryException. Checks: traverse, WRITE on the parent
// with the sticky-bit rule, and for a non-empty directory ALL on every
// non-empty directory of the subtree (with the sticky-bit rule inside).
// Files being written lose their lease paths with them. See the package
// documentation for how large subtrees are deleted.
func (ns *Namespace) Delete(ctx context.Context, u hdfs.User, path string, recursive bool) (bool, error) {
	var deleted bool
	var detached int64
	err := ns.update(ctx, "delete", path, func(tx dal.Tx) error {
		deleted, detached = false, 0
		p, err := ns.resolve(ctx, tx, path)
		if err != nil {
			return err
		}
		if err := ns.check(u, p, hdfs.Need{}); err != nil {
			return err
		}
		last := p.last()
		if last == nil || p.isRoot() {
			return nil
		}
		n := len(p.nodes) - 1
		if err := ns.lockInodes(ctx, tx, lockRef{p, n - 1, dal.LockWrite}, lockRef{p, n, dal.LockWrite}); err != nil {
			return err
		}
		last, parent := p.last(), p.parent()
		if err := ns.check(u, p, hdfs.OpDelete.Need()); err != nil {
			return err
		}
		ids := []int64{last.ID}
		if last.IsDir {
			count, err := tx.CountChildren(ctx, last.ID)
			if err != nil {
				return err
			}
			if count > 0 {
				if !recursive {
					return hdfs.NotEmptyDirectory(p.path)
				}
				var kids map[int64]int64
				if ids, kids, err = ns.walkForDelete(ctx, tx, u, p.path, last); err != nil {
					return err
				}
				if len(ids) <= ns.cfg.DeleteBatch {
					if err := ns.lockSubtree(ctx, tx, ids, kids); err != nil {
						return err
					}
				}
			}
		}
		if len(ids) <= ns.cfg.DeleteBatch {
			// ids are in breadth-first order: delete from the end, leaves first.
			for i := len(ids) - 1; i >= 0; i-- {
				ns.forget(ids[i])
				// Read under the subtree's locks: the delete can wait for
				// the commit.
				if err := tx.Deferred().DeleteInode(ctx, ids[i]); err != nil {
					return err
				}
			}
		} else {
			ns.forget(last.ID)
			last.ParentID, last.Name = DetachedParentID, strconv.FormatInt(last.ID, 10)
			if err := tx.UpdateInode(ctx, last); err != nil {
				return err
			}
			detached = last.ID
		}
		deleted = true
		// The parent loses the entry (a detached subtree's root at once; the
		// subtree's own counts go with it).
		parent.Children--
		return ns.touch(ctx, tx, parent, ns.now())
	})
	if err != nil {
		return false, err
	}
	if detached != 0 {
		if err := ns.purge(ctx, detached); err != nil {
			return true, fmt.Errorf("delete %s: deleted, but removing its detached subtree failed (PurgeDetached will finish it): %w", path, err)
		}
	}
	return deleted, nil
}

// walkForDelete walks the subtree of dir (at dirPath) breadth first,
// checking the delete permission on every directory, and returns the ids of
// the subtree, dir first, and the number of children of each directory.
func (ns *Namespace) walkForDelete(ctx context.Context, tx dal.Tx, u hdfs.User, dirPath string, dir *dal.Inode) ([]int64, map[int64]int64, error) {
	need := hdfs.OpDelete.Need()
	var ids []int64
	kids := map[int64]int64{}
	err := walk(ctx, tx, dirPath, dir, func(path string, in *dal.Inode, children []*dal.Inode) error {
		ids = append(ids, in.ID)
		if !in.IsDir {
			return nil
		}
		kids[in.ID] = int64(len(children))
		cs := make([]hdfs.Child, len(children))
		for i, c := range children {
			cs[i] = hdfs.Child{Name: c.Name, Attrs: *attrsOf(c)}
		}
		return ns.checker.CheckSubtreeDir(u, need, path, *attrsOf(in), cs)
	})
	return ids, kids, err
}

// lockSubtree write-locks the inodes of a subtree about to be deleted in
// one transaction (in id order, one statement) and checks that no
// directory gained or lost a child since the unlocked walk: a create in a
// subdirectory locks only that subdirectory, so without this a child added
// after the walk would be left orphaned.
func (ns *Namespace) lockSubtree(ctx context.Context, tx dal.Tx, ids []int64, kids map[int64]int64) error {
	if ns.serial {
		return nil
	}
	locked, err := tx.GetInodesByIDs(ctx, ids, dal.LockWrite)
	if err != nil {
		return err
	}
	if len(locked) != len(ids) {
		return stale("the subtree lost inodes while being deleted")
	}
	for id, want := range kids {
		n, err := tx.CountChildren(ctx, id)
		if err != nil {
			return err
		}
		if n != want {
			return stale("directory %d changed while being deleted", id)
		}
	}
	return nil
}

// walk visits the subtree of root (at rootPath) breadth first: fn gets each
// inode with its path and, for a directory, all its children.
func walk(ctx context.Context, tx dal.Tx, rootPath string, root *dal.Inode, fn func(path string, in *dal.Inode, children []*dal.Inode) error) error {
	type item struct {
		path string
		in   *dal.Inode
	}
	queue := []item{{rootPath, root}}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		var children []*dal.Inode
		if it.in.IsDir {
			var err error
			if children, err = listAll(ctx, tx, it.in.ID); err != nil {
				return err
			}
		}
		if err := fn(it.path, it.in, children); err != nil {
			return err
		}
		for _, c := range children {
			queue = append(queue, item{hdfs.Join(it.path, c.Name), c})
		}
	}
	return nil
}

// listAll returns every child of directory id, reading pages of 1000.
func listAll(ctx context.Context, tx dal.Tx, id int64) ([]*dal.Inode, error) {
	var all []*dal.Inode
	after := ""
	for {
		page, err := tx.ListChildren(ctx, id, after, 1000)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) < 1000 {
			return all, nil
		}
		after = page[len(page)-1].Name
	}
}

// purge deletes the detached subtree rooted at inode root in transactions of
// at most Config.DeleteBatch inodes, leaves first.
func (ns *Namespace) purge(ctx context.Context, root int64) error {
	for {
		// Collect the remaining subtree, breadth first.
		var ids []int64
		var dirs map[int64]bool
		err := ns.store.ReadTx(ctx, func(tx dal.Tx) error {
			ids, dirs = nil, map[int64]bool{}
			in, err := tx.GetInodeByID(ctx, root, dal.LockNone)
			if errors.Is(err, dal.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			if in.ParentID != DetachedParentID {
				return fmt.Errorf("inode %d is not a detached subtree root (parent %d)", root, in.ParentID)
			}
			return walk(ctx, tx, "", in, func(_ string, in *dal.Inode, _ []*dal.Inode) error {
				ids = append(ids, in.ID)
				dirs[in.ID] = in.IsDir
				return nil
			})
		})
		if err != nil {
			return fmt.Errorf("purge detached subtree %d: %w", root, err)
		}
		if len(ids) == 0 {
			return nil
		}
		rewalk := false
		// Delete from the end of the breadth-first order: leaves first.
		for end := len(ids); end > 0 && !rewalk; {
			start := max(0, end-ns.cfg.DeleteBatch)
			batch := ids[start:end]
			err := ns.store.Tx(ctx, func(tx dal.Tx) error {
				rewalk = false
				// Lock the batch in id order, then delete in leaves-first order.
				locked, err := tx.GetInodesByIDs(ctx, batch, dal.LockWrite)
				if err != nil {
					return err
				}
				present := make(map[int64]bool, len(locked))
				for _, in := range locked {
					present[in.ID] = true
				}
				for i := len(batch) - 1; i >= 0; i-- {
					id := batch[i]
					if !present[id] {
						continue
					}
					if dirs[id] {
						n, err := tx.CountChildren(ctx, id)
						if err != nil {
							return err
						}
						if n > 0 { // something was added late: walk again
							rewalk = true
							return nil
						}
					}
					ns.forget(id)
					if err := tx.DeleteInode(ctx, id); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("purge detached subtree %d: %w", root, err)
			}
			end = start
		}
	}
}

// PurgeDetached finishes every delete left half-done (by a namenode that
// died after detaching a large subtree, see the package documentation) and
// returns how many subtrees it removed. The namenode's housekeeping runs it;
// it is safe to run concurrently with anything, including another
// PurgeDetached.
func (ns *Namespace) PurgeDetached(ctx context.Context) (int, error) {
	var roots []*dal.Inode
	err := ns.store.ReadTx(ctx, func(tx dal.Tx) error {
		var err error
		roots, err = listAll(ctx, tx, DetachedParentID)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("purge detached subtrees: %w", err)
	}
	for i, r := range roots {
		if err := ns.purge(ctx, r.ID); err != nil {
			return i, err
		}
	}
	return len(roots), nil
}

// RenameOptions are the options of Rename2 (HDFS's Options.Rename).
type RenameOptions struct {
	// Overwrite replaces an existing destination: a file, or an empty
	// directory when the source is a directory (OVERWRITE).
	Overwrite bool
}

// Rename2 moves src to exactly dst with the semantics of HDFS's rename2
// (FileContext.rename, ClientProtocol.rename2): dst names the result, never
// a directory to move into. Errors: a missing src is a
// FileNotFoundException ("rename source /a is not found."); src "/" and dst
// "/" are IOExceptions; src == dst a FileAlreadyExistsException; a directory
// moved under itself an IOException ("Rename destination ... is a directory
// or file under source ..."); an existing dst without Overwrite a
// FileAlreadyExistsException ("rename destination /b already exists"), of
// another type (file vs directory) an IOException ("Source ... and
// destination ... must both be directories"), a non-empty directory an
// IOException ("rename destination directory is not empty: /b"); a missing
// destination parent a FileNotFoundException, a file there a
// ParentNotDirectoryException. Checks: traverse on both paths, WRITE on the
// source's parent (sticky-bit rule), WRITE on the destination's deepest
// existing ancestor; component length, reserved names and directory items
// for the new name.
func (ns *Namespace) Rename2(ctx context.Context, u hdfs.User, src, dst string, opts RenameOptions) error {
	return ns.update(ctx, "rename", src+" to "+dst, func(tx dal.Tx) error {
		return ns.rename(ctx, tx, u, src, dst, opts.Overwrite, false)
	})
}

// Rename moves src with the semantics of HDFS's original rename
// (FileSystem.rename, ClientProtocol.rename, WebHDFS RENAME): when dst is an
// existing directory, src moves into it (as dst/<name of src>); an existing
// destination is never overwritten. Failures the old rename reports as
// false rather than as an exception (src or the destination parent missing,
// the destination existing, a file where a directory is needed) return
// false and no error; permission errors, moving a directory under itself
// and database failures are errors. src == dst is true.
func (ns *Namespace) Rename(ctx context.Context, u hdfs.User, src, dst string) (bool, error) {
	err := ns.update(ctx, "rename", src+" to "+dst, func(tx dal.Tx) error {
		return ns.rename(ctx, tx, u, src, dst, false, true)
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, errSameRename):
		return true, nil
	case errors.Is(err, hdfs.ErrFileNotFound), errors.Is(err, hdfs.ErrFileAlreadyExists),
		errors.Is(err, hdfs.ErrParentNotDirectory), errors.Is(err, errRenameRoot):
		return false, nil
	}
	return false, err
}

// errSameRename and errRenameRoot tell Rename's boolean results.
var (
	errSameRename = errors.New("source and destination are the same")
	errRenameRoot = errors.New("rename of or onto the root")
)

// rename is Rename2's and Rename's transaction.
func (ns *Namespace) rename(ctx context.Context, tx dal.Tx, u hdfs.User, src, dst string, overwrite, legacy bool) error {
	sp, err := ns.resolve(ctx, tx, src)
	if err != nil {
		return err
	}
	dp, err := ns.resolve(ctx, tx, dst)
	if err != nil {
		return err
	}
	if legacy {
		if d := dp.last(); d != nil && d.IsDir && !sp.isRoot() && sp.path != dp.path {
			if dp, err = ns.resolve(ctx, tx, hdfs.Join(dp.path, sp.name())); err != nil {
				return err
			}
		}
	}
	if err := ns.check(u, sp, hdfs.OpRenameSource.Need()); err != nil {
		return err
	}
	if err := ns.check(u, dp, hdfs.OpRenameDest.Need()); err != nil {
		return err
	}
	srcIn := sp.last()
	if srcIn == nil {
		return hdfs.ErrFileNotFound.New("rename source " + sp.path + " is not found.")
	}
	if sp.isRoot() {
		return fmt.Errorf("%w: %w", errRenameRoot, hdfs.ErrIO.New("rename source cannot be the root"))
	}
	if sp.path == dp.path {
		if legacy {
			return errSameRename
		}
		return hdfs.ErrFileAlreadyExists.New("The source " + sp.path + " and destination " + dp.path + " are the same")
	}
	if hdfs.IsAncestor(sp.path, dp.path) {
		return hdfs.RenameUnderSource(sp.path, dp.path)
	}
	if dp.isRoot() {
		return fmt.Errorf("%w: %w", errRenameRoot, hdfs.ErrIO.New("rename destination cannot be the root"))
	}
	dstParent := dp.parent()
	if dstParent == nil {
		return hdfs.ErrFileNotFound.New("rename destination parent " + dp.path + " not found.")
	}
	if !dstParent.IsDir {
		return hdfs.ErrParentNotDirectory.New("rename destination parent " + dp.path + " is a file.")
	}

	// Lock: source and its parent, destination parent and an existing
	// destination (write); for a directory, the destination's ancestors
	// (read), so that no concurrent rename can move them under the source.
	ns1, nd := len(sp.nodes)-1, len(dp.nodes)-1
	refs := []lockRef{{sp, ns1, dal.LockWrite}, {sp, ns1 - 1, dal.LockWrite}, {dp, nd - 1, dal.LockWrite}, {dp, nd, dal.LockWrite}}
	if srcIn.IsDir {
		for i := 0; i < nd-1; i++ {
			refs = append(refs, lockRef{dp, i, dal.LockRead})
		}
	}
	if err := ns.lockInodes(ctx, tx, refs...); err != nil {
		return err
	}
	srcIn, srcParent, dstParent, dstIn := sp.last(), sp.parent(), dp.parent(), dp.last()
	// A destination that appeared since the resolution makes the move
	// below collide with it on the (parent, name) key: a stale resolution,
	// retried (see insertChild).
	if srcIn.IsDir {
		// The real under-itself check, by id: the destination's ancestors
		// (now locked) must not include the source.
		for _, a := range dp.nodes[:nd] {
			if a.ID == srcIn.ID {
				return hdfs.RenameUnderSource(sp.path, dp.path)
			}
		}
	}
	if dstIn != nil {
		if dstIn.IsDir != srcIn.IsDir {
			return hdfs.ErrIO.New("Source " + sp.path + " and destination " + dp.path + " must both be directories")
		}
		if !overwrite {
			return hdfs.ErrFileAlreadyExists.New("rename destination " + dp.path + " already exists")
		}
		if dstIn.IsDir {
			n, err := tx.CountChildren(ctx, dstIn.ID)
			if err != nil {
				return err
			}
			if n > 0 {
				return hdfs.ErrIO.New("rename destination directory is not empty: " + dp.path)
			}
		}
	}
	// The destination parent gains a child only when nothing is replaced
	// and the parent changes.
	var count int64
	if dstIn == nil && dstParent.ID != srcParent.ID {
		count = dstParent.Children
	}
	if err := ns.checkNewChild(dp.parentPath(), dp.name(), count); err != nil {
		return err
	}
	if dstIn != nil {
		ns.forget(dstIn.ID)
		if err := tx.DeleteInode(ctx, dstIn.ID); err != nil {
			return err
		}
	}
	ns.forget(srcIn.ID)
	srcIn.ParentID, srcIn.Name = dstParent.ID, dp.name()
	if err := tx.UpdateInode(ctx, srcIn); err != nil {
		if errors.Is(err, dal.ErrExists) {
			return stale("%q created concurrently", dp.path)
		}
		return err
	}
	// Children counts: the source's parent loses srcIn, the destination's
	// parent gains it and loses a replaced dstIn. On a serial store the two
	// parents may be distinct reads of one row: only srcParent is written
	// then.
	if dstParent.ID == srcParent.ID {
		if dstIn != nil {
			srcParent.Children--
		}
	} else {
		srcParent.Children--
		if dstIn == nil {
			dstParent.Children++
		}
	}
	now := ns.now()
	if err := ns.touch(ctx, tx, srcParent, now); err != nil {
		return err
	}
	if dstParent.ID != srcParent.ID {
		return ns.touch(ctx, tx, dstParent, now)
	}
	return nil
}

// ContentSummary is the summary of a subtree (getContentSummary,
// GETCONTENTSUMMARY).
type ContentSummary struct {
	// DirectoryCount counts directories, the subtree's root included.
	DirectoryCount int64
	// FileCount counts files (and symlinks).
	FileCount int64
	// Length is the sum of the files' lengths.
	Length int64
	// SpaceConsumed is the sum of length x replication.
	SpaceConsumed int64
	// Quota is the namespace quota (-1: none; quotas are not kept yet).
	Quota int64
	// SpaceQuota is the space quota (-1: none).
	SpaceQuota int64
}

// WebHDFS returns the summary in WebHDFS's shape.
func (c *ContentSummary) WebHDFS() hdfs.ContentSummary {
	return hdfs.ContentSummary{
		DirectoryCount: c.DirectoryCount, FileCount: c.FileCount, Length: c.Length,
		Quota: c.Quota, SpaceConsumed: c.SpaceConsumed, SpaceQuota: c.SpaceQuota,
	}
}

// ContentSummary sums the subtree at path. Missing is a
// FileNotFoundException. Checks: traverse, and READ_EXECUTE on every
// directory of the subtree (with the sticky-bit rule). It reads in one
// read-only transaction (a snapshot on SQLite; on PostgreSQL each page of a
// directory is read-committed, so a summary taken during changes may mix
// moments, as HDFS's own, which releases its lock while counting).
func (ns *Namespace) ContentSummary(ctx context.Context, u hdfs.User, path string) (*ContentSummary, error) {
	var cs *ContentSummary
	err := ns.view(ctx, "content summary", path, func(tx dal.Tx) error {
		cs = &ContentSummary{Quota: -1, SpaceQuota: -1}
		p, last, err := ns.resolveExisting(ctx, tx, u, path, hdfs.Need{})
		if err != nil {
			return err
		}
		need := hdfs.OpContentSummary.Need()
		return walk(ctx, tx, p.path, last, func(path string, in *dal.Inode, children []*dal.Inode) error {
			if !in.IsDir {
				cs.FileCount++
				cs.Length += in.Size
				cs.SpaceConsumed += in.Size * int64(in.Replication)
				return nil
			}
			cs.DirectoryCount++
			chs := make([]hdfs.Child, len(children))
			for i, c := range children {
				chs[i] = hdfs.Child{Name: c.Name, Attrs: *attrsOf(c)}
			}
			return ns.checker.CheckSubtreeDir(u, need, path, *attrsOf(in), chs)
		})
	})
	return cs, err
}

// FsStats are file-system-wide figures (getStats, `hdfs dfs -df`).
type FsStats struct {
	// Capacity, Used and Remaining are the datanodes' raw bytes, from
	// Config.Capacity (zeros without one).
	Capacity, Used, Remaining int64
	// Files counts files, Dirs directories (the root included).
	Files, Dirs int64
	// Blocks counts blocks.
	Blocks int64
	// UnderConstruction counts files open for writing.
	UnderConstruction int64
	// Length is the sum of the files' lengths.
	Length int64
}

// FsStats counts files, directories and blocks and asks Config.Capacity
// for the raw capacity. It walks the whole namespace in one read-only
// transaction (the DAL has no aggregate queries yet), so it costs a read per
// inode: for operators and tests, not for every request.
func (ns *Namespace) FsStats(ctx context.Context) (*FsStats, error) {
	st := &FsStats{}
	err := ns.view(ctx, "fs stats", "/", func(tx dal.Tx) error {
		*st = FsStats{}
		root, err := tx.GetInodeByID(ctx, dal.RootID, dal.LockNone)
		if err != nil {
			return err
		}
		return walk(ctx, tx, "/", root, func(_ string, in *dal.Inode, _ []*dal.Inode) error {
			if in.IsDir {
				st.Dirs++
				return nil
			}
			st.Files++
			st.Length += in.Size
			if in.UnderConstruction {
				st.UnderConstruction++
			}
			blocks, err := tx.ListBlocks(ctx, in.ID)
			st.Blocks += int64(len(blocks))
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	if ns.cfg.Capacity != nil {
		if st.Capacity, st.Used, st.Remaining, err = ns.cfg.Capacity.Capacity(ctx); err != nil {
			return nil, fmt.Errorf("fs stats: capacity: %w", err)
		}
	}
	return st, nil
}
