package hdfs

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Class is a Java exception class of Hadoop's, with its place in the class
// hierarchy (so that errors.Is(err, ErrIO) holds for every IOException, as
// Java's instanceof does). The exported Err* values are the sentinels: test
// an error with errors.Is(err, hdfs.ErrFileNotFound) and make one with
// hdfs.ErrFileNotFound.New(message).
type Class struct {
	name   string
	java   string
	parent *Class
}

func newClass(java string, parent *Class) *Class {
	name := java[strings.LastIndexAny(java, ".$")+1:]
	return &Class{name: name, java: java, parent: parent}
}

// Hadoop's exception classes. Their WebHDFS status codes follow from the
// hierarchy (see Class.HTTPStatus).
var (
	// ErrRuntime is java.lang.RuntimeException: a server bug (500).
	ErrRuntime = newClass("java.lang.RuntimeException", nil)
	// ErrIllegalArgument is java.lang.IllegalArgumentException (400).
	ErrIllegalArgument = newClass("java.lang.IllegalArgumentException", ErrRuntime)
	// ErrHadoopIllegalArgument is org.apache.hadoop.HadoopIllegalArgumentException (400).
	ErrHadoopIllegalArgument = newClass("org.apache.hadoop.HadoopIllegalArgumentException", ErrIllegalArgument)
	// ErrInvalidPath is org.apache.hadoop.fs.InvalidPathException, a path
	// that breaks the path rules (400).
	ErrInvalidPath = newClass("org.apache.hadoop.fs.InvalidPathException", ErrHadoopIllegalArgument)
	// ErrUnsupportedOperation is java.lang.UnsupportedOperationException (400).
	ErrUnsupportedOperation = newClass("java.lang.UnsupportedOperationException", ErrRuntime)
	// ErrSecurity is java.lang.SecurityException, a failed authentication
	// (403 from Hadoop 3's ExceptionHandler; the documentation's table still
	// says 401).
	ErrSecurity = newClass("java.lang.SecurityException", ErrRuntime)

	// ErrIO is java.io.IOException, the parent of the file-system errors
	// (403, as Hadoop maps every IOException without a more specific rule).
	ErrIO = newClass("java.io.IOException", nil)
	// ErrFileNotFound is java.io.FileNotFoundException (404).
	ErrFileNotFound = newClass("java.io.FileNotFoundException", ErrIO)
	// ErrAccessControl is org.apache.hadoop.security.AccessControlException,
	// a permission denied (403).
	ErrAccessControl = newClass("org.apache.hadoop.security.AccessControlException", ErrIO)
	// ErrFileAlreadyExists is org.apache.hadoop.fs.FileAlreadyExistsException (403).
	ErrFileAlreadyExists = newClass("org.apache.hadoop.fs.FileAlreadyExistsException", ErrIO)
	// ErrParentNotDirectory is org.apache.hadoop.fs.ParentNotDirectoryException:
	// a file where a path needs a directory (403).
	ErrParentNotDirectory = newClass("org.apache.hadoop.fs.ParentNotDirectoryException", ErrIO)
	// ErrPathIsNotDirectory is org.apache.hadoop.fs.PathIsNotDirectoryException (403).
	ErrPathIsNotDirectory = newClass("org.apache.hadoop.fs.PathIsNotDirectoryException", ErrIO)
	// ErrPathIsNotEmptyDirectory is
	// org.apache.hadoop.fs.PathIsNotEmptyDirectoryException: a
	// non-recursive delete of a non-empty directory (403).
	ErrPathIsNotEmptyDirectory = newClass("org.apache.hadoop.fs.PathIsNotEmptyDirectoryException", ErrIO)
	// ErrSafeMode is org.apache.hadoop.hdfs.server.namenode.SafeModeException (403).
	ErrSafeMode = newClass("org.apache.hadoop.hdfs.server.namenode.SafeModeException", ErrIO)
	// ErrAlreadyBeingCreated is
	// org.apache.hadoop.hdfs.protocol.AlreadyBeingCreatedException: another
	// writer holds the file's lease (403).
	ErrAlreadyBeingCreated = newClass("org.apache.hadoop.hdfs.protocol.AlreadyBeingCreatedException", ErrIO)
	// ErrLeaseExpired is
	// org.apache.hadoop.hdfs.server.namenode.LeaseExpiredException: the
	// writer no longer holds the lease it writes under (403).
	ErrLeaseExpired = newClass("org.apache.hadoop.hdfs.server.namenode.LeaseExpiredException", ErrIO)
	// ErrRecoveryInProgress is
	// org.apache.hadoop.hdfs.protocol.RecoveryInProgressException: lease
	// recovery of the file is under way (403).
	ErrRecoveryInProgress = newClass("org.apache.hadoop.hdfs.protocol.RecoveryInProgressException", ErrIO)
	// ErrNotReplicatedYet is
	// org.apache.hadoop.hdfs.server.namenode.NotReplicatedYetException:
	// addBlock before the previous block reached its minimum replication;
	// clients retry (403).
	ErrNotReplicatedYet = newClass("org.apache.hadoop.hdfs.server.namenode.NotReplicatedYetException", ErrIO)
	// ErrQuotaExceeded is org.apache.hadoop.hdfs.protocol.QuotaExceededException (403).
	ErrQuotaExceeded = newClass("org.apache.hadoop.hdfs.protocol.QuotaExceededException", ErrIO)
	// ErrNSQuotaExceeded is org.apache.hadoop.hdfs.protocol.NSQuotaExceededException (403).
	ErrNSQuotaExceeded = newClass("org.apache.hadoop.hdfs.protocol.NSQuotaExceededException", ErrQuotaExceeded)
	// ErrDSQuotaExceeded is org.apache.hadoop.hdfs.protocol.DSQuotaExceededException (403).
	ErrDSQuotaExceeded = newClass("org.apache.hadoop.hdfs.protocol.DSQuotaExceededException", ErrQuotaExceeded)
	// ErrPathComponentTooLong is
	// org.apache.hadoop.hdfs.protocol.FSLimitException$PathComponentTooLongException (403).
	ErrPathComponentTooLong = newClass("org.apache.hadoop.hdfs.protocol.FSLimitException$PathComponentTooLongException", ErrQuotaExceeded)
	// ErrMaxDirectoryItemsExceeded is
	// org.apache.hadoop.hdfs.protocol.FSLimitException$MaxDirectoryItemsExceededException (403).
	ErrMaxDirectoryItemsExceeded = newClass("org.apache.hadoop.hdfs.protocol.FSLimitException$MaxDirectoryItemsExceededException", ErrQuotaExceeded)
	// ErrRetriable is org.apache.hadoop.ipc.RetriableException: try again
	// (for example after a database deadlock that outlived its retries) (403).
	ErrRetriable = newClass("org.apache.hadoop.ipc.RetriableException", ErrIO)
	// ErrStandby is org.apache.hadoop.ipc.StandbyException (403).
	ErrStandby = newClass("org.apache.hadoop.ipc.StandbyException", ErrIO)
	// ErrChecksum is org.apache.hadoop.fs.ChecksumException, a replica whose
	// data does not match its checksums (403).
	ErrChecksum = newClass("org.apache.hadoop.fs.ChecksumException", ErrIO)
)

// Classes returns every class this package knows, parents before children.
func Classes() []*Class {
	return []*Class{
		ErrRuntime, ErrIllegalArgument, ErrHadoopIllegalArgument, ErrInvalidPath,
		ErrUnsupportedOperation, ErrSecurity,
		ErrIO, ErrFileNotFound, ErrAccessControl, ErrFileAlreadyExists,
		ErrParentNotDirectory, ErrPathIsNotDirectory, ErrPathIsNotEmptyDirectory,
		ErrSafeMode, ErrAlreadyBeingCreated, ErrLeaseExpired, ErrRecoveryInProgress,
		ErrNotReplicatedYet, ErrQuotaExceeded, ErrNSQuotaExceeded, ErrDSQuotaExceeded,
		ErrPathComponentTooLong, ErrMaxDirectoryItemsExceeded, ErrRetriable,
		ErrStandby, ErrChecksum,
	}
}

// ClassByName finds a class by its Java name
// ("java.io.FileNotFoundException") or its simple name
// ("FileNotFoundException"); nil when unknown.
func ClassByName(name string) *Class {
	for _, c := range Classes() {
		if c.java == name || c.name == name {
			return c
		}
	}
	return nil
}

// Name returns the simple class name, the "exception" of a RemoteException.
func (c *Class) Name() string { return c.name }

// JavaClassName returns the fully qualified class name.
func (c *Class) JavaClassName() string { return c.java }

// Parent returns the superclass, nil for RuntimeException and IOException.
func (c *Class) Parent() *Class { return c.parent }

// Error returns the Java class name, so that a Class is itself an error.
func (c *Class) Error() string { return c.java }

// IsA reports whether c is ancestor or a subclass of it (Java's
// instanceof).
func (c *Class) IsA(ancestor *Class) bool {
	for k := c; k != nil; k = k.parent {
		if k == ancestor {
			return true
		}
	}
	return false
}

// Is lets errors.Is(ErrNSQuotaExceeded, ErrQuotaExceeded) hold.
func (c *Class) Is(target error) bool {
	t, ok := target.(*Class)
	return ok && c.IsA(t)
}

// HTTPStatus is the status WebHDFS answers with, as Hadoop's
// org.apache.hadoop.hdfs.web.resources.ExceptionHandler maps it: security
// and authorization failures 403, FileNotFoundException 404, any other
// IOException 403, UnsupportedOperationException and IllegalArgumentException
// 400, anything else 500. (The WebHDFS documentation's "HTTP Response Codes"
// table agrees except that it lists SecurityException as 401.)
func (c *Class) HTTPStatus() int {
	switch {
	case c == nil:
		return http.StatusInternalServerError
	case c.IsA(ErrSecurity):
		return http.StatusForbidden
	case c.IsA(ErrFileNotFound):
		return http.StatusNotFound
	case c.IsA(ErrIO):
		return http.StatusForbidden
	case c.IsA(ErrUnsupportedOperation), c.IsA(ErrIllegalArgument):
		return http.StatusBadRequest
	default:
		return http.StatusInternalServerError
	}
}

// New returns an exception of class c with message msg.
func (c *Class) New(msg string) *RemoteException {
	return &RemoteException{Exception: c.name, JavaClassName: c.java, Message: msg, class: c}
}

// Errorf returns an exception of class c with a formatted message.
func (c *Class) Errorf(format string, args ...any) *RemoteException {
	return c.New(fmt.Sprintf(format, args...))
}

// RemoteException is an exception as the namenode reports it: over WebHDFS
// as {"RemoteException":{...}}, over Hadoop RPC as the response header's
// exceptionClassName and errorMsg.
type RemoteException struct {
	// Exception is the simple class name ("FileNotFoundException").
	Exception string
	// JavaClassName is the fully qualified class name.
	JavaClassName string
	// Message is the exception's message.
	Message string

	class *Class
}

// Class returns the exception's class, nil when this package does not know
// it (an exception parsed from a foreign server).
func (e *RemoteException) Class() *Class {
	if e.class != nil {
		return e.class
	}
	if c := ClassByName(e.JavaClassName); c != nil {
		return c
	}
	if e.JavaClassName == "" {
		return ClassByName(e.Exception)
	}
	return nil
}

// Error returns "Exception: message", as Java's Throwable.toString with the
// simple name.
func (e *RemoteException) Error() string {
	name := e.Exception
	if name == "" {
		name = e.JavaClassName
	}
	if e.Message == "" {
		return name
	}
	return name + ": " + e.Message
}

// Is makes errors.Is(err, hdfs.ErrIO) true for every IOException, and
// errors.Is(err, hdfs.ErrFileNotFound) for a FileNotFoundException.
func (e *RemoteException) Is(target error) bool {
	t, ok := target.(*Class)
	if !ok {
		return false
	}
	if c := e.Class(); c != nil {
		return c.IsA(t)
	}
	return e.JavaClassName == t.java
}

// HTTPStatus is the WebHDFS status of the exception (see Class.HTTPStatus);
// 500 for a class this package does not know.
func (e *RemoteException) HTTPStatus() int { return e.Class().HTTPStatus() }

// Response returns the WebHDFS body.
func (e *RemoteException) Response() RemoteExceptionResponse {
	return RemoteExceptionResponse{RemoteException: RemoteExceptionJSON{
		Exception: e.Exception, JavaClassName: e.JavaClassName, Message: e.Message,
	}}
}

// JSON returns the WebHDFS body:
// {"RemoteException":{"exception":"...","javaClassName":"...","message":"..."}}.
func (e *RemoteException) JSON() []byte {
	b, err := Marshal(e.Response())
	if err != nil { // strings only: cannot happen
		panic(err)
	}
	return b
}

// ParseRemoteException reads a WebHDFS error body.
func ParseRemoteException(body []byte) (*RemoteException, error) {
	var r RemoteExceptionResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	if r.RemoteException.Exception == "" && r.RemoteException.JavaClassName == "" {
		return nil, errors.New("hdfs: not a RemoteException body")
	}
	e := &RemoteException{
		Exception:     r.RemoteException.Exception,
		JavaClassName: r.RemoteException.JavaClassName,
		Message:       r.RemoteException.Message,
	}
	if e.Exception == "" {
		e.Exception = e.JavaClassName[strings.LastIndexAny(e.JavaClassName, ".$")+1:]
	}
	return e, nil
}

// ToRemote turns any error into the exception to report: a RemoteException
// found in err's chain as it is; a bare Class sentinel as that class with its
// name as message; a ShellError as its class; anything else as an
// IOException with err's text (what a namenode reports for an internal
// failure such as a lost database connection).
func ToRemote(err error) *RemoteException {
	if err == nil {
		return nil
	}
	var re *RemoteException
	if errors.As(err, &re) {
		return re
	}
	var se *ShellError
	if errors.As(err, &se) {
		return se.Kind.class().New(se.Error())
	}
	var c *Class
	if errors.As(err, &c) {
		return c.New(err.Error())
	}
	return ErrIO.New(err.Error())
}

// Constructors for the exceptions the namespace raises, with Hadoop's
// messages.

// InvalidPath is DFSUtil's rejection: "Invalid path name /a/../b".
func InvalidPath(p string) *RemoteException {
	return ErrInvalidPath.New("Invalid path name " + p)
}

// FileNotFound is "File does not exist: /a" (getFileInfo, open, delete...).
func FileNotFound(p string) *RemoteException {
	return ErrFileNotFound.New("File does not exist: " + p)
}

// ParentNotFound is create's "Parent directory doesn't exist: /a" when the
// parent is missing and createParent is false.
func ParentNotFound(parent string) *RemoteException {
	return ErrFileNotFound.New("Parent directory doesn't exist: " + parent)
}

// FileExists is create's refusal without overwrite: "/a/f for client
// 127.0.0.1 already exists".
func FileExists(p, clientMachine string) *RemoteException {
	return ErrFileAlreadyExists.New(p + " for client " + clientMachine + " already exists")
}

// PathNotDirectory is mkdirs over a file: a FileAlreadyExistsException
// "Path is not a directory: /a/f".
func PathNotDirectory(p string) *RemoteException {
	return ErrFileAlreadyExists.New("Path is not a directory: " + p)
}

// ParentNotDirectory is a file met where a directory was needed:
// "/a/f (is not a directory)".
func ParentNotDirectory(p string) *RemoteException {
	return ErrParentNotDirectory.New(p + " (is not a directory)")
}

// NotEmptyDirectory is delete without recursive of a non-empty directory,
// with the message PathIOException formats: "`/a is non empty': Directory is
// not empty".
func NotEmptyDirectory(p string) *RemoteException {
	return ErrPathIsNotEmptyDirectory.New("`" + p + " is non empty': Directory is not empty")
}

// RenameUnderSource refuses moving a directory under itself: "Rename
// destination /a/b/c is a directory or file under source /a/b".
func RenameUnderSource(src, dst string) *RemoteException {
	return ErrIO.New("Rename destination " + dst + " is a directory or file under source " + src)
}

// LeaseOp names the operation a lease conflict interrupted, as
// FSNamesystem's RecoverLeaseOp enum.
type LeaseOp string

// The operations that take a file's lease.
const (
	LeaseOpCreate   LeaseOp = "CREATE_FILE"
	LeaseOpAppend   LeaseOp = "APPEND_FILE"
	LeaseOpTruncate LeaseOp = "TRUNCATE_FILE"
	LeaseOpRecover  LeaseOp = "RECOVER_LEASE"
)

// AlreadyBeingCreated refuses a second writer: "Failed to APPEND_FILE /f for
// DFSClient_b on 10.0.0.2 because this file lease is currently owned by
// DFSClient_a on 10.0.0.1".
func AlreadyBeingCreated(op LeaseOp, p, holder, clientMachine, owner, ownerMachine string) *RemoteException {
	return ErrAlreadyBeingCreated.New("Failed to " + string(op) + " " + p + " for " + holder + " on " +
		clientMachine + " because this file lease is currently owned by " + owner + " on " + ownerMachine)
}

// RecoveryInProgress refuses a writer while the file's lease recovery
// runs (FSNamesystem.recoverLeaseInternal): "Failed to APPEND_FILE /f for
// DFSClient_b on 10.0.0.2 because lease recovery is in progress. Try again
// later." (the call started it) or "... because another recovery is in
// progress by DFSClient_a on 10.0.0.1". Clients retry it.
func RecoveryInProgress(op LeaseOp, p, holder, clientMachine, reason string) *RemoteException {
	return ErrRecoveryInProgress.New("Failed to " + string(op) + " " + p + " for " + holder + " on " +
		clientMachine + " because " + reason)
}

// NoLease is a write by a client without the file's lease: "No lease on /f
// (inode 16388): File is not open for writing. Holder DFSClient_a does not
// have any open files." reason is "File does not exist." or "File is not
// open for writing."
func NoLease(p string, inode int64, reason, holder string) *RemoteException {
	return ErrLeaseExpired.New("No lease on " + p + " (inode " + strconv.FormatInt(inode, 10) + "): " +
		reason + " Holder " + holder + " does not have any open files.")
}

// SafeMode refuses a change while the namenode is in safe mode: "Cannot
// create directory /a. Name node is in safe mode."
func SafeMode(what string) *RemoteException {
	return ErrSafeMode.New("Cannot " + what + ". Name node is in safe mode.")
}

// NSQuotaExceeded is "The NameSpace quota (directories and files) of
// directory /a is exceeded: quota=10 file count=11".
func NSQuotaExceeded(dir string, quota, count int64) *RemoteException {
	return ErrNSQuotaExceeded.New("The NameSpace quota (directories and files) of directory " + dir +
		" is exceeded: quota=" + strconv.FormatInt(quota, 10) + " file count=" + strconv.FormatInt(count, 10))
}

// DSQuotaExceeded is "The DiskSpace quota of /a is exceeded: quota = 1024 B
// = 1 KB but diskspace consumed = 402653184 B = 384 MB".
func DSQuotaExceeded(dir string, quota, consumed int64) *RemoteException {
	return ErrDSQuotaExceeded.New("The DiskSpace quota of " + dir + " is exceeded: quota = " +
		strconv.FormatInt(quota, 10) + " B = " + BinaryPrefix(quota, "B", 2) + " but diskspace consumed = " +
		strconv.FormatInt(consumed, 10) + " B = " + BinaryPrefix(consumed, "B", 2))
}

// BinaryPrefix formats n with a binary prefix as Hadoop's
// StringUtils.TraditionalBinaryPrefix.long2String: "1023 B", "1 KB",
// "1.50 KB", "384 MB".
func BinaryPrefix(n int64, unit string, decimals int) string {
	const symbols = "KMGTPE"
	var b strings.Builder
	if n == -1<<63 {
		return "-8 E" + unit
	}
	if n < 0 {
		b.WriteByte('-')
		n = -n
	}
	if n < 1024 {
		b.WriteString(strconv.FormatInt(n, 10))
		if unit != "" {
			b.WriteString(" " + unit)
		}
		return b.String()
	}
	i := 0
	for i < len(symbols) && n >= int64(1)<<(10*(i+1)) {
		i++
	}
	shift := uint(10 * i)
	var s string
	if n&(int64(1)<<shift-1) == 0 {
		s = strconv.FormatInt(n>>shift, 10)
	} else {
		s = strconv.FormatFloat(float64(n)/float64(int64(1)<<shift), 'f', decimals, 64)
		if strings.HasPrefix(s, "1024") && i < len(symbols) {
			i++
			shift += 10
			s = strconv.FormatFloat(float64(n)/float64(int64(1)<<shift), 'f', decimals, 64)
		}
	}
	b.WriteString(s + " " + symbols[i-1:i] + unit)
	return b.String()
}

// ShellKind is the kind of a path error the hdfs CLI reports itself (the
// PathIOException subclasses of org.apache.hadoop.fs.shell).
type ShellKind int

// The kinds, with the text FsShell prints.
const (
	// ShellIOError is PathIOException: "Input/output error".
	ShellIOError ShellKind = iota
	// ShellNotFound is PathNotFoundException: "No such file or directory".
	ShellNotFound
	// ShellExists is PathExistsException: "File exists".
	ShellExists
	// ShellIsDirectory is PathIsDirectoryException: "Is a directory".
	ShellIsDirectory
	// ShellNotDirectory is PathIsNotDirectoryException: "Is not a directory".
	ShellNotDirectory
	// ShellNotEmpty is PathIsNotEmptyDirectoryException: "Directory is not empty".
	ShellNotEmpty
	// ShellAccessDenied is PathAccessDeniedException: "Permission denied".
	ShellAccessDenied
	// ShellNotPermitted is PathPermissionException: "Operation not permitted".
	ShellNotPermitted
)

// String returns the text FsShell prints for the kind.
func (k ShellKind) String() string {
	switch k {
	case ShellNotFound:
		return "No such file or directory"
	case ShellExists:
		return "File exists"
	case ShellIsDirectory:
		return "Is a directory"
	case ShellNotDirectory:
		return "Is not a directory"
	case ShellNotEmpty:
		return "Directory is not empty"
	case ShellAccessDenied:
		return "Permission denied"
	case ShellNotPermitted:
		return "Operation not permitted"
	default:
		return "Input/output error"
	}
}

func (k ShellKind) class() *Class {
	switch k {
	case ShellNotFound:
		return ErrFileNotFound
	case ShellExists:
		return ErrFileAlreadyExists
	case ShellNotDirectory:
		return ErrPathIsNotDirectory
	case ShellNotEmpty:
		return ErrPathIsNotEmptyDirectory
	case ShellAccessDenied, ShellNotPermitted:
		return ErrAccessControl
	default:
		return ErrIO
	}
}

// ShellError is a path error as the hdfs CLI prints it: "`/a/b': No such
// file or directory". errors.Is matches the corresponding Class
// (ShellNotFound is an ErrFileNotFound).
type ShellError struct {
	// Path is the path as the user gave it.
	Path string
	// Kind is what is wrong with it.
	Kind ShellKind
}

// Error returns "`path': text".
func (e *ShellError) Error() string { return "`" + e.Path + "': " + e.Kind.String() }

// Is matches the Class of the kind and its ancestors.
func (e *ShellError) Is(target error) bool {
	t, ok := target.(*Class)
	return ok && e.Kind.class().IsA(t)
}

// ShellErrorFor turns a namespace error about path into what the CLI
// reports: a FileNotFoundException becomes "`path': No such file or
// directory", a FileAlreadyExistsException "`path': File exists", a
// ParentNotDirectoryException or PathIsNotDirectoryException "`path': Is not
// a directory"; other errors (such as AccessControlException, which FsShell
// prints with the namenode's message) are returned unchanged.
func ShellErrorFor(path string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrFileNotFound):
		return &ShellError{Path: path, Kind: ShellNotFound}
	case errors.Is(err, ErrFileAlreadyExists):
		return &ShellError{Path: path, Kind: ShellExists}
	case errors.Is(err, ErrParentNotDirectory), errors.Is(err, ErrPathIsNotDirectory):
		return &ShellError{Path: path, Kind: ShellNotDirectory}
	}
	return err
}

// CLIMessage formats an error as `hdfs dfs -cmd` prints it on stderr:
// "mkdir: `/a/b': No such file or directory" for a ShellError, "mkdir:
// Permission denied: user=bob, ..." for an exception from the namenode (the
// first line of its message, as FsShell.displayError prints it).
func CLIMessage(cmd string, err error) string {
	var msg string
	var se *ShellError
	var re *RemoteException
	switch {
	case errors.As(err, &se):
		msg = se.Error()
	case errors.As(err, &re):
		msg = re.Message
		if msg == "" {
			msg = re.Exception
		}
	default:
		msg = err.Error()
	}
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return cmd + ": " + msg
}
