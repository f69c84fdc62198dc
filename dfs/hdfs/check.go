package hdfs

import (
	"slices"
	"strings"
)

// DefaultSupergroup is dfs.permissions.superusergroup's default.
const DefaultSupergroup = "supergroup"

// User is the caller of an operation: the short user name and the groups it
// belongs to (with simple authentication, the user.name of a WebHDFS request
// or the user of a Hadoop RPC connection, and the groups the namenode maps
// it to).
type User struct {
	// Name is the short user name.
	Name string
	// Groups are the user's groups.
	Groups []string
}

// InGroup reports whether the user belongs to group.
func (u User) InGroup(group string) bool { return slices.Contains(u.Groups, group) }

// Attrs are the attributes of one inode that permission checks read.
type Attrs struct {
	// Owner is the owning user.
	Owner string
	// Group is the owning group.
	Group string
	// Perm is the permission.
	Perm FsPermission
	// Dir is true for a directory.
	Dir bool
}

// ModeString returns the inode's permission as `hdfs dfs -ls` and
// AccessControlException messages print it: "drwxr-xr-x", "-rw-r--r--".
func (a Attrs) ModeString() string {
	if a.Dir {
		return "d" + a.Perm.String()
	}
	return "-" + a.Perm.String()
}

// Checker is the namenode's permission checker (FSPermissionChecker) with
// the settings it needs. Its methods take the caller and the inodes of a
// resolved path, so that the namespace can check inside its transaction.
type Checker struct {
	// Superuser is the user the namenode runs as (HDFS's fsOwner); it
	// passes every check.
	Superuser string
	// Supergroup is dfs.permissions.superusergroup ("supergroup"); its
	// members pass every check too.
	Supergroup string
	// Disabled turns permission checking off (dfs.permissions.enabled =
	// false): every check passes; a file under a file is still a
	// ParentNotDirectoryException.
	Disabled bool
}

// NewChecker returns a checker with permissions enabled and the default
// supergroup.
func NewChecker(superuser string) Checker {
	return Checker{Superuser: superuser, Supergroup: DefaultSupergroup}
}

// IsSuperuser reports whether u bypasses permission checks: the namenode's
// user, or a member of the supergroup.
func (c Checker) IsSuperuser(u User) bool {
	return u.Name == c.Superuser || (c.Supergroup != "" && u.InGroup(c.Supergroup))
}

// HasPermission reports whether u may perform access on the inode by its
// permission bits alone: the owner class if u owns it, else the group class
// if u belongs to its group, else the other class (FSPermissionChecker
// .hasPermission without ACLs). The superuser is not special here.
func HasPermission(u User, in Attrs, access Action) bool {
	var granted Action
	switch {
	case u.Name == in.Owner:
		granted = in.Perm.User()
	case u.InGroup(in.Group):
		granted = in.Perm.Group()
	default:
		granted = in.Perm.Other()
	}
	return granted.Implies(access)
}

// CheckSuperuser refuses non-superusers with HDFS's message ("Access denied
// for user bob. Superuser privilege is required"); for setQuota and the
// other administrative operations.
func (c Checker) CheckSuperuser(u User) error {
	if c.Disabled || c.IsSuperuser(u) {
		return nil
	}
	return ErrAccessControl.New("Access denied for user " + u.Name + ". Superuser privilege is required")
}

// CheckAccess checks one inode at path (for the message) for access, with
// HDFS's message: Permission denied: user=bob, access=WRITE,
// inode="/a":alice:supergroup:drwxr-xr-x. The superuser passes.
func (c Checker) CheckAccess(u User, path string, in Attrs, access Action) error {
	if c.Disabled || c.IsSuperuser(u) || HasPermission(u, in, access) {
		return nil
	}
	return deniedError(u, path, in, access)
}

func deniedError(u User, path string, in Attrs, access Action) error {
	return ErrAccessControl.New("Permission denied: user=" + u.Name + ", access=" + access.String() +
		`, inode="` + path + `":` + in.Owner + ":" + in.Group + ":" + in.ModeString())
}

// CheckSticky applies the sticky-bit rule to removing or renaming the child
// (at childPath) of the directory parent (at parentPath): when the parent has
// the sticky bit, only the child's owner, the parent's owner and the
// superuser may. The message is HDFS's "Permission denied by sticky bit:
// user=..., path=...:...:...:..., parent=...".
func (c Checker) CheckSticky(u User, parentPath string, parent Attrs, childPath string, child Attrs) error {
	if c.Disabled || c.IsSuperuser(u) || !parent.Perm.Sticky() ||
		u.Name == parent.Owner || u.Name == child.Owner {
		return nil
	}
	return ErrAccessControl.New("Permission denied by sticky bit: user=" + u.Name +
		`, path="` + childPath + `":` + child.Owner + ":" + child.Group + ":" + child.ModeString() +
		`, parent="` + parentPath + `":` + parent.Owner + ":" + parent.Group + ":" + parent.ModeString())
}

// CheckOwner refuses anyone but the inode's owner and the superuser (for
// setPermission and setOwner): "Permission denied. user=bob is not the owner
// of inode=/a".
func (c Checker) CheckOwner(u User, path string, in Attrs) error {
	if c.Disabled || c.IsSuperuser(u) || u.Name == in.Owner {
		return nil
	}
	return ErrAccessControl.New("Permission denied. user=" + u.Name + " is not the owner of inode=" + path)
}

// CheckSetOwner applies setOwner's rules after CheckOwner passed
// (FSDirAttrOp.setOwner): a non-superuser may not give the inode to another
// user, and may only set a group it belongs to. Empty newOwner or newGroup
// mean "unchanged".
func (c Checker) CheckSetOwner(u User, newOwner, newGroup string) error {
	if c.Disabled || c.IsSuperuser(u) {
		return nil
	}
	if newOwner != "" && newOwner != u.Name {
		return ErrAccessControl.New("Non-super user cannot change owner")
	}
	if newGroup != "" && !u.InGroup(newGroup) {
		return ErrAccessControl.New("User does not belong to " + newGroup)
	}
	return nil
}

// Resolved is a path resolved into inodes, the input of Check: what HDFS
// calls INodesInPath.
type Resolved struct {
	// Components are the path's components below the root (Split's result).
	Components []string
	// Inodes has one entry per position: Inodes[0] is the root and
	// Inodes[i] is Components[i-1]; it has len(Components)+1 entries, nil
	// for those that do not exist (which can only be a suffix).
	Inodes []*Attrs
}

// Path returns the path of the first n+1 inodes (index 0 is "/").
func (r Resolved) Path(n int) string {
	return JoinComponents(r.Components[:n])
}

// Last returns the inode the path names, or nil when it does not exist.
func (r Resolved) Last() *Attrs {
	if len(r.Inodes) == 0 {
		return nil
	}
	return r.Inodes[len(r.Inodes)-1]
}

// Need is what an operation asks of a resolved path, the parameters of
// FSPermissionChecker.checkPermission. Traverse (EXECUTE on every existing
// directory above the last component) is always checked. A zero Action field
// means "not checked".
type Need struct {
	// Owner requires the caller to own the last inode.
	Owner bool
	// Ancestor is required on the nearest existing inode above the last
	// component (the parent when it exists).
	Ancestor Action
	// Parent is required on the parent of the last component; when it
	// includes WRITE and the last inode exists, the sticky-bit rule applies.
	Parent Action
	// Access is required on the last inode, when it exists.
	Access Action
	// SubAccess is required on the last inode, when it is a directory, and
	// on every directory below it: Check does not look at it; the caller
	// walks the subtree and calls CheckSubtreeDir for each directory,
	// starting with the last inode.
	SubAccess Action
	// IgnoreEmptyDir skips SubAccess on empty directories.
	IgnoreEmptyDir bool
}

// Op names a namespace operation for its permission checks (Need).
type Op int

// The operations, with the checks the FSDir*Op classes ask for.
const (
	// OpStat is getFileInfo / GETFILESTATUS, and LISTSTATUS of a file:
	// traverse only.
	OpStat Op = iota
	// OpList is getListing / LISTSTATUS of a directory: READ_EXECUTE on it.
	OpList
	// OpRead is open / getBlockLocations: READ on the file.
	OpRead
	// OpMkdirs needs WRITE on the nearest existing ancestor.
	OpMkdirs
	// OpCreate needs WRITE on the nearest existing ancestor.
	OpCreate
	// OpCreateOverwrite is create over an existing file: WRITE on the
	// nearest existing ancestor and on the file.
	OpCreateOverwrite
	// OpAppend is append (and truncate): WRITE on the file.
	OpAppend
	// OpDelete needs WRITE on the parent (with the sticky-bit rule), and ALL
	// on every non-empty directory of the deleted subtree (CheckSubtreeDir).
	OpDelete
	// OpRenameSource needs WRITE on the source's parent (sticky-bit rule).
	OpRenameSource
	// OpRenameDest needs WRITE on the destination's nearest existing
	// ancestor (Hadoop applies no sticky-bit rule to an overwritten
	// destination).
	OpRenameDest
	// OpSetPermission needs ownership.
	OpSetPermission
	// OpSetOwner needs ownership, then CheckSetOwner.
	OpSetOwner
	// OpSetTimes needs WRITE on the inode.
	OpSetTimes
	// OpSetReplication needs WRITE on the inode.
	OpSetReplication
	// OpContentSummary needs READ_EXECUTE on the directory and every
	// directory below it (CheckSubtreeDir).
	OpContentSummary
)

// Need returns the checks op asks of its resolved path.
func (o Op) Need() Need {
	switch o {
	case OpList:
		return Need{Access: ActionReadExecute}
	case OpRead:
		return Need{Access: ActionRead}
	case OpMkdirs, OpCreate, OpRenameDest:
		return Need{Ancestor: ActionWrite}
	case OpCreateOverwrite:
		return Need{Ancestor: ActionWrite, Access: ActionWrite}
	case OpAppend, OpSetTimes, OpSetReplication:
		return Need{Access: ActionWrite}
	case OpDelete:
		return Need{Parent: ActionWrite, SubAccess: ActionAll, IgnoreEmptyDir: true}
	case OpRenameSource:
		return Need{Parent: ActionWrite}
	case OpSetPermission, OpSetOwner:
		return Need{Owner: true}
	case OpContentSummary:
		return Need{SubAccess: ActionReadExecute}
	default:
		return Need{}
	}
}

// Check runs FSPermissionChecker.checkPermission on a resolved path: traverse,
// the sticky-bit rule, Ancestor, Parent, Access, Owner, in Hadoop's order
// (SubAccess is CheckSubtreeDir's). A non-directory above the last component is a
// ParentNotDirectoryException ("/a/f (is not a directory)") even for the
// superuser and with checking disabled.
func (c Checker) Check(u User, r Resolved, n Need) error {
	if len(r.Inodes) != len(r.Components)+1 || len(r.Inodes) == 0 {
		return ErrIllegalArgument.New("resolved path: inodes and components disagree")
	}
	last := len(r.Inodes) - 1
	// the nearest existing inode above the last component
	ancestor := last - 1
	for ancestor >= 0 && r.Inodes[ancestor] == nil {
		ancestor--
	}
	for i := 0; i <= ancestor; i++ {
		in := r.Inodes[i]
		if in == nil {
			continue
		}
		if !in.Dir {
			return ErrParentNotDirectory.New(r.Path(i) + " (is not a directory)")
		}
	}
	if c.Disabled || c.IsSuperuser(u) {
		return nil
	}
	for i := 0; i <= ancestor; i++ {
		if in := r.Inodes[i]; in != nil && !HasPermission(u, *in, ActionExecute) {
			return deniedError(u, r.Path(i), *in, ActionExecute)
		}
	}
	if n.Parent.Implies(ActionWrite) && last > 0 && r.Inodes[last] != nil && r.Inodes[last-1] != nil {
		if err := c.CheckSticky(u, r.Path(last-1), *r.Inodes[last-1], r.Path(last), *r.Inodes[last]); err != nil {
			return err
		}
	}
	if n.Ancestor != 0 && last > 0 && ancestor >= 0 {
		if err := c.CheckAccess(u, r.Path(ancestor), *r.Inodes[ancestor], n.Ancestor); err != nil {
			return err
		}
	}
	if n.Parent != 0 && last > 0 && r.Inodes[last-1] != nil {
		if err := c.CheckAccess(u, r.Path(last-1), *r.Inodes[last-1], n.Parent); err != nil {
			return err
		}
	}
	if n.Access != 0 && r.Inodes[last] != nil {
		if err := c.CheckAccess(u, r.Path(last), *r.Inodes[last], n.Access); err != nil {
			return err
		}
	}
	if n.Owner && r.Inodes[last] != nil {
		if err := c.CheckOwner(u, r.Path(last), *r.Inodes[last]); err != nil {
			return err
		}
	}
	return nil
}

// Child is one entry of a directory for CheckSubtreeDir.
type Child struct {
	// Name is the entry's name.
	Name string
	// Attrs are its attributes.
	Attrs Attrs
}

// CheckSubtreeDir is the per-directory step of FSPermissionChecker
// .checkSubAccess, for operations whose Need has SubAccess (recursive delete,
// content summary): the namespace calls it for the target directory and for
// every directory below it, with the directory's children. Unless the
// directory is empty and n.IgnoreEmptyDir, it needs n.SubAccess on the
// directory; and when the directory has the sticky bit, each child must pass
// the sticky-bit rule. The superuser passes.
func (c Checker) CheckSubtreeDir(u User, n Need, dirPath string, dir Attrs, children []Child) error {
	if c.Disabled || c.IsSuperuser(u) || n.SubAccess == 0 || !dir.Dir {
		return nil
	}
	if len(children) == 0 && n.IgnoreEmptyDir {
		return nil
	}
	if !HasPermission(u, dir, n.SubAccess) {
		return deniedError(u, dirPath, dir, n.SubAccess)
	}
	if dir.Perm.Sticky() {
		for _, ch := range children {
			if err := c.CheckSticky(u, dirPath, dir, Join(dirPath, ch.Name), ch.Attrs); err != nil {
				return err
			}
		}
	}
	return nil
}

// HomeDirectory returns a user's home directory, "/user/<name>"
// (dfs.user.home.dir.prefix's default), for GETHOMEDIRECTORY.
func HomeDirectory(user string) string {
	return "/user/" + strings.TrimSpace(user)
}
