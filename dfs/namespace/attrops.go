package namespace

import (
	"context"
	"strconv"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/hdfs"
)

// modify is the transaction of the single-inode attribute operations:
// resolve path, check traverse, require the inode, lock it (write), check
// need, then apply fn and write the inode back unless fn reports no change.
func (ns *Namespace) modify(ctx context.Context, op string, u hdfs.User, path string, need hdfs.Need, fn func(p *iip, in *dal.Inode) (bool, error)) error {
	return ns.update(ctx, op, path, func(tx dal.Tx) error {
		p, _, err := ns.resolveExisting(ctx, tx, u, path, hdfs.Need{})
		if err != nil {
			return err
		}
		if err := ns.lockInodes(ctx, tx, lockRef{p, len(p.nodes) - 1, dal.LockWrite}); err != nil {
			return err
		}
		if err := ns.check(u, p, need); err != nil {
			return err
		}
		in := p.last()
		changed, err := fn(p, in)
		if err != nil || !changed {
			return err
		}
		return tx.UpdateInode(ctx, in)
	})
}

// SetPermission sets the permission of path (chmod; the sticky bit is kept
// as given). Missing is a FileNotFoundException. Checks: traverse,
// ownership (or superuser).
func (ns *Namespace) SetPermission(ctx context.Context, u hdfs.User, path string, perm hdfs.FsPermission) error {
	return ns.modify(ctx, "set permission", u, path, hdfs.OpSetPermission.Need(), func(_ *iip, in *dal.Inode) (bool, error) {
		in.Permission = uint16(perm & hdfs.PermMask)
		return true, nil
	})
}

// SetOwner sets the owner and/or group of path (chown; "" leaves one
// unchanged, both "" is a HadoopIllegalArgumentException). Checks:
// traverse, ownership; only the superuser may change the owner, and an owner
// may change the group only to one it belongs to.
func (ns *Namespace) SetOwner(ctx context.Context, u hdfs.User, path, owner, group string) error {
	if owner == "" && group == "" {
		return wrapErr("set owner", path, hdfs.ErrHadoopIllegalArgument.New("User and group cannot both be null"))
	}
	return ns.modify(ctx, "set owner", u, path, hdfs.OpSetOwner.Need(), func(_ *iip, in *dal.Inode) (bool, error) {
		// HDFS lets the owner "change" the owner to itself.
		newOwner := owner
		if newOwner == in.Owner {
			newOwner = ""
		}
		if err := ns.checker.CheckSetOwner(u, newOwner, group); err != nil {
			return false, err
		}
		if owner != "" {
			in.Owner = owner
		}
		if group != "" {
			in.Group = group
		}
		return true, nil
	})
}

// SetTimes sets the modification and access times of path in milliseconds
// (setTimes, SETTIMES); -1 leaves a time unchanged. Checks: traverse, WRITE
// on the inode.
func (ns *Namespace) SetTimes(ctx context.Context, u hdfs.User, path string, mtime, atime int64) error {
	return ns.modify(ctx, "set times", u, path, hdfs.OpSetTimes.Need(), func(_ *iip, in *dal.Inode) (bool, error) {
		if mtime != -1 {
			in.MTime = mtime
		}
		if atime != -1 {
			in.ATime = atime
		}
		return mtime != -1 || atime != -1, nil
	})
}

// SetReplication sets the replication of the file path (setReplication,
// SETREPLICATION) and reports whether it did: false for a directory, as
// HDFS. A replication outside 1..MaxReplication is an IOException with
// HDFS's message. Checks: traverse, WRITE on the file. (The namenode's
// replication monitor is what then adds or removes replicas.)
func (ns *Namespace) SetReplication(ctx context.Context, u hdfs.User, path string, replication int16) (bool, error) {
	if err := ns.checkReplication(path, replication); err != nil {
		return false, wrapErr("set replication", path, err)
	}
	var ok bool
	err := ns.modify(ctx, "set replication", u, path, hdfs.OpSetReplication.Need(), func(_ *iip, in *dal.Inode) (bool, error) {
		ok = !in.IsDir && in.Symlink == ""
		if !ok {
			return false, nil
		}
		in.Replication = replication
		return true, nil
	})
	return ok, err
}

// checkReplication applies BlockManager.verifyReplication's bounds.
func (ns *Namespace) checkReplication(path string, r int16) error {
	if r < 1 {
		return hdfs.ErrIO.New("Requested replication factor of " + strconv.Itoa(int(r)) +
			" is less than the required minimum of 1 for " + path)
	}
	if r > ns.cfg.MaxReplication {
		return hdfs.ErrIO.New("Requested replication factor of " + strconv.Itoa(int(r)) +
			" exceeds maximum of " + strconv.Itoa(int(ns.cfg.MaxReplication)) + " for " + path)
	}
	return nil
}
