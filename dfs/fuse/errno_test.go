package dfsfuse

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/kura-dev/kura/dfs/hdfs"
)

// TestErrnoOf checks the exception-to-errno table, for exceptions as the
// client returns them (hdfs.Class.New, possibly wrapped with context) and
// for the other errors a call can end with.
func TestErrnoOf(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("client: write /f: %w", err) }
	cases := []struct {
		name  string
		err   error
		want  syscall.Errno
		usual bool
	}{
		{"nil", nil, 0, true},
		{"own errno", syscall.EOPNOTSUPP, syscall.EOPNOTSUPP, true},
		{"wrapped errno is not passed on", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), syscall.EIO, false},
		{"FileNotFound", hdfs.ErrFileNotFound.New("File does not exist: /a"), syscall.ENOENT, true},
		{"FileNotFound wrapped", wrap(hdfs.ErrFileNotFound.New("x")), syscall.ENOENT, true},
		{"AccessControl", hdfs.ErrAccessControl.New("Permission denied: user=bob"), syscall.EACCES, true},
		{"Security", hdfs.ErrSecurity.New("x"), syscall.EACCES, true},
		{"FileAlreadyExists", hdfs.ErrFileAlreadyExists.New("x"), syscall.EEXIST, true},
		{"PathIsNotEmptyDirectory", hdfs.NotEmptyDirectory("/d"), syscall.ENOTEMPTY, true},
		{"ParentNotDirectory", hdfs.ErrParentNotDirectory.New("x"), syscall.ENOTDIR, true},
		{"PathIsNotDirectory", hdfs.ErrPathIsNotDirectory.New("x"), syscall.ENOTDIR, true},
		{"AlreadyBeingCreated", wrap(hdfs.ErrAlreadyBeingCreated.New("x")), syscall.EBUSY, true},
		{"RecoveryInProgress", hdfs.ErrRecoveryInProgress.New("x"), syscall.EAGAIN, true},
		{"Retriable", hdfs.ErrRetriable.New("x"), syscall.EAGAIN, true},
		{"Standby", hdfs.ErrStandby.New("x"), syscall.EAGAIN, true},
		{"NotReplicatedYet", hdfs.ErrNotReplicatedYet.New("x"), syscall.EAGAIN, true},
		{"SafeMode", hdfs.ErrSafeMode.New("x"), syscall.EROFS, true},
		{"PathComponentTooLong", hdfs.ErrPathComponentTooLong.New("x"), syscall.ENAMETOOLONG, true},
		{"MaxDirectoryItemsExceeded", hdfs.ErrMaxDirectoryItemsExceeded.New("x"), syscall.ENOSPC, true},
		{"QuotaExceeded", hdfs.ErrQuotaExceeded.New("x"), syscall.EDQUOT, true},
		{"NSQuotaExceeded", hdfs.ErrNSQuotaExceeded.New("x"), syscall.EDQUOT, true},
		{"DSQuotaExceeded", wrap(hdfs.ErrDSQuotaExceeded.New("x")), syscall.EDQUOT, true},
		{"InvalidPath", hdfs.ErrInvalidPath.New("x"), syscall.EINVAL, true},
		{"IllegalArgument", hdfs.ErrIllegalArgument.New("x"), syscall.EINVAL, true},
		{"HadoopIllegalArgument", hdfs.ErrHadoopIllegalArgument.New("x"), syscall.EINVAL, true},
		{"UnsupportedOperation", hdfs.ErrUnsupportedOperation.New("x"), syscall.EOPNOTSUPP, true},
		{"IOException", hdfs.ErrIO.New("disk on fire"), syscall.EIO, false},
		{"Checksum", hdfs.ErrChecksum.New("x"), syscall.EIO, false},
		{"LeaseExpired", hdfs.ErrLeaseExpired.New("x"), syscall.EIO, false},
		{"RuntimeException", hdfs.ErrRuntime.New("x"), syscall.EIO, false},
		{"deadline", fmt.Errorf("%w: rpc", context.DeadlineExceeded), syscall.ETIMEDOUT, false},
		{"canceled", fmt.Errorf("%w: rpc", context.Canceled), syscall.ECANCELED, true},
		{"unknown", errors.New("something else"), syscall.EIO, false},
		// An exception parsed from elsewhere, known only by its class name.
		{"by name", &hdfs.RemoteException{Exception: "FileNotFoundException", JavaClassName: "java.io.FileNotFoundException"}, syscall.ENOENT, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, usual := errnoOf(c.err)
			if got != c.want || usual != c.usual {
				t.Fatalf("errnoOf(%v) = %v (usual %v), want %v (usual %v)", c.err, got, usual, c.want, c.usual)
			}
		})
	}
}

// TestRenameErrnoOf checks what rename2's IOExceptions (FSDirRenameOp's
// messages) become.
func TestRenameErrnoOf(t *testing.T) {
	cases := []struct {
		name     string
		err      error
		srcIsDir bool
		want     syscall.Errno
	}{
		{"not empty", hdfs.ErrIO.New("rename destination directory is not empty: /b"), true, syscall.ENOTEMPTY},
		{"file onto directory", hdfs.ErrIO.New("Source /a and destination /b must both be directories"), false, syscall.EISDIR},
		{"directory onto file", hdfs.ErrIO.New("Source /a and destination /b must both be directories"), true, syscall.ENOTDIR},
		{"under itself", hdfs.RenameUnderSource("/a", "/a/b"), true, syscall.EINVAL},
		{"root", hdfs.ErrIO.New("rename source cannot be the root"), true, syscall.EBUSY},
		{"exists", hdfs.ErrFileAlreadyExists.New("rename destination /b already exists"), false, syscall.EEXIST},
		{"missing", hdfs.ErrFileNotFound.New("rename source /a is not found."), false, syscall.ENOENT},
		// The message test applies to plain IOExceptions only.
		{"subclass with the words", hdfs.ErrChecksum.New("directory is not empty"), false, syscall.EIO},
		{"other IOException", hdfs.ErrIO.New("something"), false, syscall.EIO},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got, _ := renameErrnoOf(fmt.Errorf("wrapped: %w", c.err), c.srcIsDir); got != c.want {
				t.Fatalf("renameErrnoOf(%v, dir=%v) = %v, want %v", c.err, c.srcIsDir, got, c.want)
			}
		})
	}
}

// TestSetattrErrnoOf checks that a refusal to change what only the owner
// may is EPERM while a failed permission check stays EACCES.
func TestSetattrErrnoOf(t *testing.T) {
	cases := []struct {
		err  error
		want syscall.Errno
	}{
		{hdfs.ErrAccessControl.New("Permission denied. user=bob is not the owner of inode=/a"), syscall.EPERM},
		{hdfs.ErrAccessControl.New("User bob is not a super user (Non-super user cannot change owner)."), syscall.EPERM},
		{hdfs.ErrAccessControl.New(`Permission denied: user=bob, access=EXECUTE, inode="/d":root:supergroup:drwx------`), syscall.EACCES},
		{hdfs.ErrFileNotFound.New("x"), syscall.ENOENT},
	}
	for _, c := range cases {
		if got, _ := setattrErrnoOf(c.err); got != c.want {
			t.Errorf("setattrErrnoOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
