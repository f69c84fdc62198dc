// Package dfsfuse mounts the kura dfs namespace with FUSE (go-fuse's fs
// API), translating HDFS's semantics to POSIX as Hadoop's fuse_dfs and
// JuiceFS do. `kura dfs mount` is its command.
//
//	c, _ := client.New(client.Config{Namenodes: []string{"127.0.0.1:8020"}})
//	m, err := dfsfuse.New(ctx, dfsfuse.Options{Client: c, Mountpoint: "/mnt/dfs",
//		EntryTimeout: time.Second, AttrTimeout: time.Second})
//	...
//	m.Unmount()
//
// # Namespace
//
// Every node is found by its path: lookup and getattr are client.Stat,
// readdir is client.ListIter (a page at a time; READDIRPLUS takes each
// entry's attributes from the listing, so a directory costs one call per
// page), statfs is client.FsStats (an answer is reused for 2 s, as the
// namenode walks the namespace for it). The inode number is the
// file's HDFS file id, so a file replaced under the same name (by another
// client, or by an overwriting create) is a new inode. Owners and groups
// are names in HDFS: they are shown as the local user and group of that
// name (os/user, cached), a number when the name is a number, else
// nobody/nogroup (65534). Sizes are lengths; a file being written through
// this mount shows the bytes its writer has written. The access time is
// the modification time when the namenode has none; the change time is
// the modification time.
//
// Namespace changes map to one namenode call each: mkdir is Mkdirs without
// parents (as HDFS's mkdirs, it succeeds for a directory another client
// created after the kernel's lookup), rmdir and unlink are a
// non-recursive Delete (the kernel checks the type), rename is Rename2
// with overwrite (POSIX's replacing rename; RENAME_NOREPLACE without it,
// RENAME_EXCHANGE is EINVAL), chmod is SetPermission (the setuid and
// setgid bits are dropped: HDFS has none), chown is SetOwner with the
// names of the ids, utimens is SetTimes. truncate(2) to the current size
// does nothing and to 0 re-creates the file (overwrite, keeping its
// permission; the caller becomes its owner, as with HDFS's overwrite);
// any other size is EOPNOTSUPP. Symbolic links, hard links, device
// nodes, extended attributes, O_TMPFILE and locks across machines are not
// supported (EOPNOTSUPP; flock and fcntl locks are local to this kernel).
//
// # Writing: write once, then append
//
// HDFS files are written once, sequentially, and may then be appended to.
// A file handle therefore accepts a write only at the end of what it has
// written (the handle's end):
//
//   - create(2), or open with O_TRUNC: client.Create (overwriting with
//     O_TRUNC); the handle's end is 0.
//   - open with O_APPEND: client.Append at open; every write goes to the
//     end of the file whatever its offset, as POSIX's O_APPEND.
//   - open O_WRONLY without either: nothing happens until the first
//     write, which must be at the file's length and opens an Append.
//   - open O_RDWR of an existing file without O_TRUNC or O_APPEND: reads
//     work, writes are refused (as fuse_dfs opens such a file for reading).
//     A handle that writes (O_RDWR with O_CREAT, O_TRUNC or O_APPEND)
//     refuses reads.
//
// A write anywhere else (before or after the handle's end) fails with
// EOPNOTSUPP and leaves the file as it was; the mount logs why, once per
// handle. flush (every close(2) of a descriptor) completes the file
// (Writer.Close), so close(2) reports a failed write; a later write
// through another descriptor of the same open file reopens it with Append.
// release completes the file too, if it is still open. fsync is
// Writer.Hflush: once it returns, other clients (and later opens) read the
// bytes written so far while the file is still open. A second writer of a
// file, through this mount or any other client, gets EBUSY (HDFS's
// AlreadyBeingCreatedException: one lease holder per file; this mount is
// one holder). A writer addresses its file by file id (HDFS's fileId), not
// by path: a file renamed while open for writing (or a directory above
// it), through the mount or by any client, is written and completed where
// it is now; a file deleted (or replaced) while open makes its writer
// fail. What a handle does by path (a reader's open, a later write's
// append, a truncate's re-create) goes to the path the file has now as far
// as the mount knows (go-fuse's inode tree follows the renames made
// through the mount).
// A create(2) without O_EXCL of a name another client created after the
// kernel's lookup opens that file, as open(2) does.
//
// Reading opens a client.Reader at the first read (its 1 MiB read-ahead
// serves sequential reads); it sees the file as it was then, and a read
// past that length opens it again (the file may have grown).
//
// # Errors
//
// The client's HDFS exceptions become errnos (see errnoOf):
//
//	FileNotFoundException                 ENOENT
//	AccessControlException                EACCES (EPERM for chmod, chown, utimens)
//	FileAlreadyExistsException            EEXIST
//	PathIsNotEmptyDirectoryException      ENOTEMPTY
//	ParentNotDirectory, PathIsNotDirectory ENOTDIR
//	AlreadyBeingCreatedException          EBUSY
//	RecoveryInProgress, Retriable,
//	  Standby, NotReplicatedYet           EAGAIN
//	SafeModeException                     EROFS
//	PathComponentTooLongException         ENAMETOOLONG
//	MaxDirectoryItemsExceededException    ENOSPC
//	QuotaExceededException (NS and DS)    EDQUOT
//	InvalidPath, IllegalArgument          EINVAL
//	UnsupportedOperationException         EOPNOTSUPP
//	a call past Options.OpTimeout         ETIMEDOUT (logged)
//	a call ended by Unmount               ECANCELED
//	anything else                         EIO (logged, at most once a second)
//
// rename adds what rename2's IOExceptions mean in POSIX: a non-empty
// destination directory is ENOTEMPTY, a file onto a directory EISDIR, a
// directory onto a file ENOTDIR, a directory into itself EINVAL. EXDEV
// never happens: the whole namespace is one mount.
//
// # Identity
//
// Each request runs as the user of the calling process, as fuse_dfs does:
// the caller's uid is looked up as a local user name (os/user, cached; a
// uid without a name calls as its number), and the call goes through a
// client.As view of that name, so the namenode checks HDFS's permissions
// for that user (the kernel checks nothing: no default_permissions, and
// access(2) always succeeds). Options.User forces one user for every
// caller instead. With Options.AllowOther, other local users may use the
// mount (as themselves).
//
// # Caching and contexts
//
// The kernel keeps names for Options.EntryTimeout and attributes for
// Options.AttrTimeout; a failed lookup is not cached, so a file another
// client creates is visible at once, and a change another client makes is
// visible once the timeouts pass. Changes made through the mount update
// the kernel's caches at once (go-fuse's inode tree moves, adds and drops
// the names; setattr answers with the new attributes). Page-cache data is
// dropped at every open.
//
// Every namenode call of a request gets a context derived from the FUSE
// request's (its values, the caller) bounded by Options.OpTimeout and
// ended by Unmount. The kernel's interrupts are not honoured: the kernel
// sends one when the caller catches a signal, and a namespace change that
// reached the namenode must not fail its system call (the caller's retry
// would see EEXIST or ENOENT); fatal signals end the caller anyway. Open
// readers, writers and listings keep a context for their whole life (the
// client keeps the one it was opened with), ended by release or Unmount;
// each request on them is bounded by Options.OpTimeout by a watchdog that
// ends that context when it passes (the handle then reports ETIMEDOUT and
// a reader or listing starts afresh; a writer is lost).
//
// # Unmounting
//
// Unmount completes the files open for writing, then unmounts; a mount
// still in use is detached lazily (new lookups see the directory below;
// the files still open fail with EIO). Serving ends with the unmount, or
// with an external umount (Done).
package dfsfuse
