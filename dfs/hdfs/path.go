package hdfs

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Separator is the HDFS path separator.
const Separator = "/"

// Root is the path of the root directory.
const Root = "/"

// Reserved names (HdfsConstants.DOT_SNAPSHOT_DIR and DOT_RESERVED_STRING).
const (
	// SnapshotDirName may not be the name of any inode: HDFS reserves it for
	// snapshots (FSDirectory.verifyINodeName).
	SnapshotDirName = ".snapshot"
	// ReservedDirName may not be created at the top level: HDFS serves
	// /.reserved/.inodes/<id> and /.reserved/raw from it.
	ReservedDirName = ".reserved"
)

// Defaults of the file-system limits (hdfs-default.xml and
// HdfsServerConstants).
const (
	// DefaultMaxComponentLength is dfs.namenode.fs-limits.max-component-length:
	// the longest name, in UTF-8 bytes, of one path component.
	DefaultMaxComponentLength = 255
	// DefaultMaxDirectoryItems is dfs.namenode.fs-limits.max-directory-items:
	// the most children one directory may hold.
	DefaultMaxDirectoryItems = 1024 * 1024
	// MaxDirectoryItemsCeiling is the largest value HDFS accepts for
	// dfs.namenode.fs-limits.max-directory-items.
	MaxDirectoryItemsCeiling = 6400000
	// DefaultMaxPathLength is HdfsServerConstants.MAX_PATH_LENGTH, in
	// characters, checked on create and mkdirs.
	DefaultMaxPathLength = 8000
	// DefaultMaxPathDepth is HdfsServerConstants.MAX_PATH_DEPTH, the most
	// components a created path may have.
	DefaultMaxPathDepth = 1000
)

// Limits are the namenode's file-system limits. The zero value disables every
// limit; DefaultLimits gives HDFS's defaults.
type Limits struct {
	// MaxComponentLength is the longest component name in UTF-8 bytes
	// (dfs.namenode.fs-limits.max-component-length); 0 means no limit.
	MaxComponentLength int
	// MaxDirectoryItems is the most children of one directory
	// (dfs.namenode.fs-limits.max-directory-items); 0 means no limit (HDFS
	// itself requires 1..6,400,000, see Validate).
	MaxDirectoryItems int
	// MaxPathLength is the longest path, in characters, that create and
	// mkdirs accept; 0 means no limit.
	MaxPathLength int
	// MaxPathDepth is the most components of a path that create and mkdirs
	// accept; 0 means no limit.
	MaxPathDepth int
}

// DefaultLimits returns HDFS's default limits.
func DefaultLimits() Limits {
	return Limits{
		MaxComponentLength: DefaultMaxComponentLength,
		MaxDirectoryItems:  DefaultMaxDirectoryItems,
		MaxPathLength:      DefaultMaxPathLength,
		MaxPathDepth:       DefaultMaxPathDepth,
	}
}

// Validate reports limits HDFS would refuse to start with, as an
// IllegalArgumentException.
func (l Limits) Validate() error {
	switch {
	case l.MaxComponentLength < 0:
		return ErrIllegalArgument.New("dfs.namenode.fs-limits.max-component-length must not be negative")
	case l.MaxDirectoryItems < 0 || l.MaxDirectoryItems > MaxDirectoryItemsCeiling:
		// FSDirectory's constructor: Preconditions.checkArgument(maxDirItems > 0 && maxDirItems <= MAX_DIR_ITEMS, ...)
		return ErrIllegalArgument.New("Cannot set dfs.namenode.fs-limits.max-directory-items to a value less than 1 or greater than " + strconv.Itoa(MaxDirectoryItemsCeiling))
	case l.MaxPathLength < 0 || l.MaxPathDepth < 0:
		return ErrIllegalArgument.New("path length and depth limits must not be negative")
	}
	return nil
}

// CheckComponent checks a new child name against MaxComponentLength, as
// FSDirectory.verifyMaxComponentLength does when an inode is added under
// parentPath. It returns a PathComponentTooLongException.
func (l Limits) CheckComponent(parentPath, name string) error {
	if l.MaxComponentLength > 0 && len(name) > l.MaxComponentLength {
		return ErrPathComponentTooLong.New("The maximum path component name limit of " + name +
			" in directory " + parentPath + " is exceeded: limit=" + strconv.Itoa(l.MaxComponentLength) +
			" length=" + strconv.Itoa(len(name)))
	}
	return nil
}

// CheckDirectoryItems checks that a directory at parentPath that already
// holds count children may take one more, as FSDirectory.verifyMaxDirItems
// does. It returns a MaxDirectoryItemsExceededException.
func (l Limits) CheckDirectoryItems(parentPath string, count int) error {
	if l.MaxDirectoryItems > 0 && count >= l.MaxDirectoryItems {
		return ErrMaxDirectoryItemsExceeded.New("The directory item limit of " + parentPath +
			" is exceeded: limit=" + strconv.Itoa(l.MaxDirectoryItems) + " items=" + strconv.Itoa(count))
	}
	return nil
}

// CheckPathLength checks a path that op ("create", "mkdirs") is about to
// create against MaxPathLength and MaxPathDepth, as
// NameNodeRpcServer.checkPathLength does. The error is an IOException.
func (l Limits) CheckPathLength(op, p string) error {
	tooLong := l.MaxPathLength > 0 && utf8.RuneCountInString(p) > l.MaxPathLength
	tooDeep := l.MaxPathDepth > 0 && Depth(p) > l.MaxPathDepth
	if tooLong || tooDeep {
		return ErrIO.New(op + ": Pathname too long.  Limit " + strconv.Itoa(l.MaxPathLength) +
			" characters, " + strconv.Itoa(l.MaxPathDepth) + " levels.")
	}
	return nil
}

// IsValidName reports whether p is a path the namenode accepts, with the
// rules of Hadoop's DFSUtilClient.isValidName: absolute; no "." or ".."
// component; no ':' in a component; no empty component ("//") except at the
// end: trailing slashes are tolerated ("/a/" and "/a//" name /a). kura adds two rules of its own: p must be valid
// UTF-8 and must not contain NUL (the metadata database stores names as
// text). Hadoop's exception for /.reserved/.inodes/<id>/.. paths is not
// carried over: kura has no /.reserved namespace yet.
func IsValidName(p string) bool {
	if !strings.HasPrefix(p, Separator) || !utf8.ValidString(p) || strings.IndexByte(p, 0) >= 0 {
		return false
	}
	// Trailing slashes are allowed, any number of them: Hadoop's
	// StringUtils.split drops trailing empty strings before the check.
	rest := strings.TrimRight(p, Separator)
	if rest == "" {
		return true // "/", "//", ...
	}
	for c := range strings.SplitSeq(rest[1:], Separator) {
		if c == "" || c == "." || c == ".." || strings.IndexByte(c, ':') >= 0 {
			return false
		}
	}
	return true
}

// Validate returns an InvalidPathException ("Invalid path name p") unless
// IsValidName(p).
func Validate(p string) error {
	if !IsValidName(p) {
		return InvalidPath(p)
	}
	return nil
}

// Clean validates p and returns its canonical form: without the trailing
// slashes HDFS tolerates ("/a/b/" is "/a/b"; "/" and "//" are "/").
func Clean(p string) (string, error) {
	if err := Validate(p); err != nil {
		return "", err
	}
	if p = strings.TrimRight(p, Separator); p == "" {
		return Root, nil
	}
	return p, nil
}

// Split validates p and returns its components below the root: "/" gives
// none, "/a/b/" gives ["a", "b"].
func Split(p string) ([]string, error) {
	c, err := Clean(p)
	if err != nil {
		return nil, err
	}
	if c == Root {
		return nil, nil
	}
	return strings.Split(c[1:], Separator), nil
}

// Normalize is what Hadoop's client-side Path does to a path before it is
// sent to the namenode: repeated slashes collapse into one and a trailing
// slash is dropped (except for "/"). It does not validate; a relative result
// stays relative. Use it on paths a user typed (the CLI), not on paths a
// server received.
func Normalize(p string) string {
	if p == "" {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	prevSlash := false
	for i := 0; i < len(p); i++ {
		ch := p[i]
		if ch == '/' {
			if prevSlash {
				continue
			}
			prevSlash = true
		} else {
			prevSlash = false
		}
		b.WriteByte(ch)
	}
	s := b.String()
	if len(s) > 1 {
		s = strings.TrimSuffix(s, Separator)
	}
	return s
}

// Join returns the path of the child name of the directory parent (a clean
// path): Join("/", "a") is "/a", Join("/a", "b") is "/a/b".
func Join(parent, name string) string {
	if parent == Root || parent == "" {
		return Root + name
	}
	return parent + Separator + name
}

// JoinComponents builds the clean path of components below the root;
// no components give "/".
func JoinComponents(components []string) string {
	return Root + strings.Join(components, Separator)
}

// Parent returns the parent of the clean path p: "/a/b" gives "/a", "/a"
// gives "/", and "/" (which has no parent) gives "".
func Parent(p string) string {
	if p == Root || p == "" {
		return ""
	}
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return Root
	}
	return p[:i]
}

// Base returns the last component of the clean path p: "/a/b" gives "b" and
// "/" gives "" (the pathSuffix WebHDFS shows for the root).
func Base(p string) string {
	if p == Root {
		return ""
	}
	return p[strings.LastIndexByte(p, '/')+1:]
}

// Depth returns the number of components of the clean path p, as Hadoop's
// Path.depth: "/" is 0, "/a/b" is 2.
func Depth(p string) int {
	c := strings.TrimSuffix(strings.TrimPrefix(p, Separator), Separator)
	if c == "" {
		return 0
	}
	return strings.Count(c, Separator) + 1
}

// IsAncestor reports whether the clean path a is a proper ancestor of the
// clean path b: "/a" is an ancestor of "/a/b" but not of "/a" nor of "/ab".
// A rename whose destination lies under its source is refused (see
// RenameUnderSource).
func IsAncestor(a, b string) bool {
	if a == b || len(a) >= len(b) {
		return false
	}
	if a == Root {
		return true
	}
	return strings.HasPrefix(b, a) && b[len(a)] == '/'
}

// CheckNewName checks the name of an inode about to be created under the
// clean path parent against HDFS's reserved names: ".snapshot" anywhere
// (FSDirectory.verifyINodeName: a HadoopIllegalArgumentException) and
// ".reserved" directly under the root (an InvalidPathException). Validity of
// the characters is Validate's job and the length is Limits'.
func CheckNewName(parent, name string) error {
	if name == SnapshotDirName {
		return ErrHadoopIllegalArgument.New(`"` + SnapshotDirName + `" is a reserved name.`)
	}
	if name == ReservedDirName && parent == Root {
		return InvalidPath(Join(parent, name))
	}
	return nil
}
