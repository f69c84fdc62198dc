package dfsfuse

import (
	"context"
	"errors"
	"strings"
	"syscall"

	"github.com/kura-dev/kura/dfs/hdfs"
)

// errnoOf maps an error of the dfs client to the errno a FUSE operation
// answers with (see the package documentation's table). usual is false
// for the errors worth a log line: an unknown failure (EIO) or a timeout.
// A syscall.Errno itself (the mount's own refusals) is returned as it is;
// errnos wrapped deeper in an error (a datanode's connection refused) are
// not, as they describe the mount's connections, not the caller's file.
func errnoOf(err error) (errno syscall.Errno, usual bool) {
	if err == nil {
		return 0, true
	}
	if en, ok := err.(syscall.Errno); ok {
		return en, true
	}
	switch {
	case errors.Is(err, hdfs.ErrFileNotFound):
		return syscall.ENOENT, true
	case errors.Is(err, hdfs.ErrAccessControl), errors.Is(err, hdfs.ErrSecurity):
		return syscall.EACCES, true
	case errors.Is(err, hdfs.ErrFileAlreadyExists):
		return syscall.EEXIST, true
	case errors.Is(err, hdfs.ErrPathIsNotEmptyDirectory):
		return syscall.ENOTEMPTY, true
	case errors.Is(err, hdfs.ErrParentNotDirectory), errors.Is(err, hdfs.ErrPathIsNotDirectory):
		return syscall.ENOTDIR, true
	case errors.Is(err, hdfs.ErrAlreadyBeingCreated):
		return syscall.EBUSY, true
	case errors.Is(err, hdfs.ErrRecoveryInProgress), errors.Is(err, hdfs.ErrRetriable),
		errors.Is(err, hdfs.ErrStandby), errors.Is(err, hdfs.ErrNotReplicatedYet):
		return syscall.EAGAIN, true
	case errors.Is(err, hdfs.ErrSafeMode):
		return syscall.EROFS, true
	// The limits are QuotaExceededExceptions in Hadoop's hierarchy: the
	// specific ones first.
	case errors.Is(err, hdfs.ErrPathComponentTooLong):
		return syscall.ENAMETOOLONG, true
	case errors.Is(err, hdfs.ErrMaxDirectoryItemsExceeded):
		return syscall.ENOSPC, true
	case errors.Is(err, hdfs.ErrQuotaExceeded):
		return syscall.EDQUOT, true
	case errors.Is(err, hdfs.ErrInvalidPath), errors.Is(err, hdfs.ErrIllegalArgument):
		return syscall.EINVAL, true
	case errors.Is(err, hdfs.ErrUnsupportedOperation):
		return syscall.EOPNOTSUPP, true
	case errors.Is(err, context.DeadlineExceeded):
		return syscall.ETIMEDOUT, false
	case errors.Is(err, context.Canceled):
		return syscall.ECANCELED, true
	}
	return syscall.EIO, false
}

// renameErrnoOf is errnoOf for rename, where HDFS's rename2 reports as
// plain IOExceptions what POSIX tells apart (FSDirRenameOp's messages):
// srcIsDir says what is renamed.
func renameErrnoOf(err error, srcIsDir bool) (syscall.Errno, bool) {
	var re *hdfs.RemoteException
	if errors.As(err, &re) && re.Class() == hdfs.ErrIO {
		switch msg := re.Message; {
		case strings.Contains(msg, "directory is not empty"):
			return syscall.ENOTEMPTY, true
		case strings.Contains(msg, "must both be directories"):
			if srcIsDir {
				return syscall.ENOTDIR, true
			}
			return syscall.EISDIR, true
		case strings.Contains(msg, "is a directory or file under source"):
			return syscall.EINVAL, true
		case strings.Contains(msg, "cannot be the root"):
			return syscall.EBUSY, true
		}
	}
	return errnoOf(err)
}

// setattrErrnoOf is errnoOf for chmod, chown and utimens: POSIX refuses
// the change itself to a caller who is not the file's owner (or, for
// chown, not privileged) with EPERM, and keeps EACCES for a failed search
// or write permission check, which HDFS words "Permission denied: user=".
func setattrErrnoOf(err error) (syscall.Errno, bool) {
	errno, usual := errnoOf(err)
	var re *hdfs.RemoteException
	if errno == syscall.EACCES && errors.As(err, &re) && !strings.HasPrefix(re.Message, "Permission denied: user=") {
		return syscall.EPERM, true
	}
	return errno, usual
}
