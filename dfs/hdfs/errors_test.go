package hdfs

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestClassStatus(t *testing.T) {
	tests := []struct {
		class  *Class
		simple string
		status int
	}{
		{ErrFileNotFound, "FileNotFoundException", http.StatusNotFound},
		{ErrAccessControl, "AccessControlException", http.StatusForbidden},
		{ErrFileAlreadyExists, "FileAlreadyExistsException", http.StatusForbidden},
		{ErrParentNotDirectory, "ParentNotDirectoryException", http.StatusForbidden},
		{ErrPathIsNotDirectory, "PathIsNotDirectoryException", http.StatusForbidden},
		{ErrPathIsNotEmptyDirectory, "PathIsNotEmptyDirectoryException", http.StatusForbidden},
		{ErrInvalidPath, "InvalidPathException", http.StatusBadRequest},
		{ErrIllegalArgument, "IllegalArgumentException", http.StatusBadRequest},
		{ErrHadoopIllegalArgument, "HadoopIllegalArgumentException", http.StatusBadRequest},
		{ErrUnsupportedOperation, "UnsupportedOperationException", http.StatusBadRequest},
		{ErrSafeMode, "SafeModeException", http.StatusForbidden},
		{ErrAlreadyBeingCreated, "AlreadyBeingCreatedException", http.StatusForbidden},
		{ErrLeaseExpired, "LeaseExpiredException", http.StatusForbidden},
		{ErrRecoveryInProgress, "RecoveryInProgressException", http.StatusForbidden},
		{ErrNotReplicatedYet, "NotReplicatedYetException", http.StatusForbidden},
		{ErrQuotaExceeded, "QuotaExceededException", http.StatusForbidden},
		{ErrNSQuotaExceeded, "NSQuotaExceededException", http.StatusForbidden},
		{ErrDSQuotaExceeded, "DSQuotaExceededException", http.StatusForbidden},
		{ErrPathComponentTooLong, "PathComponentTooLongException", http.StatusForbidden},
		{ErrMaxDirectoryItemsExceeded, "MaxDirectoryItemsExceededException", http.StatusForbidden},
		{ErrRetriable, "RetriableException", http.StatusForbidden},
		{ErrStandby, "StandbyException", http.StatusForbidden},
		{ErrChecksum, "ChecksumException", http.StatusForbidden},
		{ErrIO, "IOException", http.StatusForbidden},
		{ErrSecurity, "SecurityException", http.StatusForbidden},
		{ErrRuntime, "RuntimeException", http.StatusInternalServerError},
	}
	if len(tests) != len(Classes()) {
		t.Errorf("%d classes tested, %d known", len(tests), len(Classes()))
	}
	for _, tt := range tests {
		if tt.class.Name() != tt.simple || tt.class.HTTPStatus() != tt.status {
			t.Errorf("%s: name %s status %d, want %s %d", tt.class.JavaClassName(), tt.class.Name(), tt.class.HTTPStatus(), tt.simple, tt.status)
		}
		if ClassByName(tt.class.JavaClassName()) != tt.class || ClassByName(tt.simple) != tt.class {
			t.Errorf("ClassByName(%s)", tt.simple)
		}
		e := tt.class.New("m")
		if e.HTTPStatus() != tt.status || !errors.Is(e, tt.class) || e.Error() != tt.simple+": m" {
			t.Errorf("%s.New: %v status %d", tt.simple, e, e.HTTPStatus())
		}
	}
	if ClassByName("com.example.Nope") != nil {
		t.Error("unknown class found")
	}
	var nilClass *Class
	if nilClass.HTTPStatus() != 500 {
		t.Error("unknown class status")
	}
}

func TestErrorsIs(t *testing.T) {
	err := fmt.Errorf("mkdirs /a: %w", FileNotFound("/a"))
	for _, target := range []error{ErrFileNotFound, ErrIO} {
		if !errors.Is(err, target) {
			t.Errorf("not %v", target)
		}
	}
	for _, target := range []error{ErrAccessControl, ErrIllegalArgument, ErrRuntime, errors.New("x")} {
		if errors.Is(err, target) {
			t.Errorf("is %v", target)
		}
	}
	if !errors.Is(ErrNSQuotaExceeded, ErrQuotaExceeded) || errors.Is(ErrQuotaExceeded, ErrNSQuotaExceeded) {
		t.Error("class hierarchy")
	}
	if !errors.Is(InvalidPath("x"), ErrIllegalArgument) || errors.Is(InvalidPath("x"), ErrIO) {
		t.Error("InvalidPathException is an IllegalArgumentException, not an IOException")
	}
	var re *RemoteException
	if !errors.As(err, &re) || re.Message != "File does not exist: /a" {
		t.Errorf("As: %v", re)
	}
}

func TestConstructors(t *testing.T) {
	tests := []struct {
		err   *RemoteException
		class *Class
		msg   string
	}{
		{InvalidPath("/a/../b"), ErrInvalidPath, "Invalid path name /a/../b"},
		{FileNotFound("/foo/a.patch"), ErrFileNotFound, "File does not exist: /foo/a.patch"},
		{ParentNotFound("/a"), ErrFileNotFound, "Parent directory doesn't exist: /a"},
		{FileExists("/a/f", "127.0.0.1"), ErrFileAlreadyExists, "/a/f for client 127.0.0.1 already exists"},
		{PathNotDirectory("/a/f"), ErrFileAlreadyExists, "Path is not a directory: /a/f"},
		{ParentNotDirectory("/a/f"), ErrParentNotDirectory, "/a/f (is not a directory)"},
		{NotEmptyDirectory("/a"), ErrPathIsNotEmptyDirectory, "`/a is non empty': Directory is not empty"},
		{AlreadyBeingCreated(LeaseOpAppend, "/f", "DFSClient_b", "10.0.0.2", "DFSClient_a", "10.0.0.1"), ErrAlreadyBeingCreated,
			"Failed to APPEND_FILE /f for DFSClient_b on 10.0.0.2 because this file lease is currently owned by DFSClient_a on 10.0.0.1"},
		{RecoveryInProgress(LeaseOpAppend, "/f", "DFSClient_b", "10.0.0.2", "lease recovery is in progress. Try again later."), ErrRecoveryInProgress,
			"Failed to APPEND_FILE /f for DFSClient_b on 10.0.0.2 because lease recovery is in progress. Try again later."},
		{NoLease("/f", 16388, "File is not open for writing.", "DFSClient_a"), ErrLeaseExpired,
			"No lease on /f (inode 16388): File is not open for writing. Holder DFSClient_a does not have any open files."},
		{SafeMode("create directory /a"), ErrSafeMode, "Cannot create directory /a. Name node is in safe mode."},
		{NSQuotaExceeded("/q", 10, 11), ErrNSQuotaExceeded, "The NameSpace quota (directories and files) of directory /q is exceeded: quota=10 file count=11"},
		{DSQuotaExceeded("/q", 1024, 402653184), ErrDSQuotaExceeded, "The DiskSpace quota of /q is exceeded: quota = 1024 B = 1 KB but diskspace consumed = 402653184 B = 384 MB"},
	}
	for _, tt := range tests {
		if tt.err.Class() != tt.class || tt.err.Message != tt.msg {
			t.Errorf("%v\nwant %s: %s", tt.err, tt.class.Name(), tt.msg)
		}
	}
}

func TestBinaryPrefix(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1 KB"},
		{1536, "1.50 KB"},
		{1<<20 - 1, "1.00 MB"}, // 1023.999 KB rounds up to the next prefix
		{3 << 30, "3 GB"},
		{-2048, "-2 KB"},
		{1 << 62, "4 EB"},
	}
	for _, tt := range tests {
		if got := BinaryPrefix(tt.n, "B", 2); got != tt.want {
			t.Errorf("BinaryPrefix(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestRemoteExceptionJSON(t *testing.T) {
	e := ErrAccessControl.New(`Permission denied: user=bob, access=WRITE, inode="/":hdfs:supergroup:drwxr-xr-x`)
	want := `{"RemoteException":{"exception":"AccessControlException","javaClassName":"org.apache.hadoop.security.AccessControlException","message":"Permission denied: user=bob, access=WRITE, inode=\"/\":hdfs:supergroup:drwxr-xr-x"}}`
	if string(e.JSON()) != want {
		t.Fatalf("got  %s\nwant %s", e.JSON(), want)
	}
	back, err := ParseRemoteException(e.JSON())
	if err != nil || *back != (RemoteException{Exception: e.Exception, JavaClassName: e.JavaClassName, Message: e.Message}) {
		t.Fatalf("parse: %+v %v", back, err)
	}
	if !errors.Is(back, ErrAccessControl) || back.HTTPStatus() != 403 {
		t.Error("parsed exception lost its class")
	}

	// javaClassName is optional in the schema
	back, err = ParseRemoteException([]byte(`{"RemoteException":{"exception":"FileNotFoundException","message":"x"}}`))
	if err != nil || !errors.Is(back, ErrFileNotFound) {
		t.Errorf("without javaClassName: %v %v", back, err)
	}
	// an unknown class keeps its names, is nothing of ours, and is a 500
	back, err = ParseRemoteException([]byte(`{"RemoteException":{"javaClassName":"com.example.Boom","message":"x"}}`))
	if err != nil || back.Exception != "Boom" || errors.Is(back, ErrIO) || back.HTTPStatus() != 500 || back.Class() != nil {
		t.Errorf("unknown class: %+v %v", back, err)
	}
	for _, bad := range []string{`{}`, `[]`, `{"RemoteException":{}}`, `nope`} {
		if _, err := ParseRemoteException([]byte(bad)); err == nil {
			t.Errorf("ParseRemoteException(%s) accepted", bad)
		}
	}
}

func TestToRemote(t *testing.T) {
	if ToRemote(nil) != nil {
		t.Error("nil")
	}
	fnf := FileNotFound("/a")
	if ToRemote(fmt.Errorf("wrapped: %w", fnf)) != fnf {
		t.Error("wrapped RemoteException")
	}
	if r := ToRemote(ErrSafeMode); r.Class() != ErrSafeMode || r.HTTPStatus() != 403 {
		t.Errorf("bare class: %+v", r)
	}
	if r := ToRemote(errors.New("database is locked")); r.Class() != ErrIO || r.Message != "database is locked" {
		t.Errorf("plain error: %+v", r)
	}
	if r := ToRemote(&ShellError{Path: "/a", Kind: ShellNotFound}); r.Class() != ErrFileNotFound || r.Message != "`/a': No such file or directory" {
		t.Errorf("shell error: %+v", r)
	}
}

func TestCLIMessages(t *testing.T) {
	tests := []struct {
		cmd  string
		err  error
		want string
	}{
		{"mkdir", ShellErrorFor("/a/b", FileNotFound("/a")), "mkdir: `/a/b': No such file or directory"},
		{"mkdir", ShellErrorFor("/a", FileExists("/a", "x")), "mkdir: `/a': File exists"},
		{"put", ShellErrorFor("/f/x", ParentNotDirectory("/f")), "put: `/f/x': Is not a directory"},
		{"rm", &ShellError{Path: "/d", Kind: ShellIsDirectory}, "rm: `/d': Is a directory"},
		{"rmdir", &ShellError{Path: "/d", Kind: ShellNotEmpty}, "rmdir: `/d': Directory is not empty"},
		{"ls", &ShellError{Path: "/x", Kind: ShellAccessDenied}, "ls: `/x': Permission denied"},
		{"chown", &ShellError{Path: "/x", Kind: ShellNotPermitted}, "chown: `/x': Operation not permitted"},
		{"cat", &ShellError{Path: "/x", Kind: ShellIOError}, "cat: `/x': Input/output error"},
		{"mkdir", ShellErrorFor("/x", ErrAccessControl.New("Permission denied: user=bob, access=WRITE, inode=\"/\":hdfs:supergroup:drwxr-xr-x")),
			`mkdir: Permission denied: user=bob, access=WRITE, inode="/":hdfs:supergroup:drwxr-xr-x`},
		{"rm", NotEmptyDirectory("/a"), "rm: `/a is non empty': Directory is not empty"},
		{"put", ErrIO.New("first line\n\tat org.apache..."), "put: first line"},
		{"get", errors.New("connection refused"), "get: connection refused"},
	}
	for _, tt := range tests {
		if got := CLIMessage(tt.cmd, tt.err); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
	}
	se := &ShellError{Path: "/a", Kind: ShellNotEmpty}
	if !errors.Is(se, ErrPathIsNotEmptyDirectory) || !errors.Is(se, ErrIO) || errors.Is(se, ErrFileNotFound) {
		t.Error("ShellError.Is")
	}
	if ShellErrorFor("/a", nil) != nil {
		t.Error("nil")
	}
}
