package hdfs

import (
	"bytes"
	"encoding/json"
)

// The WebHDFS JSON shapes, as the "JSON Schemas" section of
// https://hadoop.apache.org/docs/stable/hadoop-project-dist/hadoop-hdfs/WebHDFS.html
// documents them. Hadoop builds its bodies in TreeMaps (JsonUtil), so keys
// come out sorted; the fields below are declared in that order so that
// encoding/json produces the same bytes.

// FileType is a FileStatus's type.
type FileType string

// The three file types.
const (
	TypeFile      FileType = "FILE"
	TypeDirectory FileType = "DIRECTORY"
	TypeSymlink   FileType = "SYMLINK"
)

// FileStatus is one inode's status: the object GETFILESTATUS wraps in
// {"FileStatus": ...} and LISTSTATUS lists.
type FileStatus struct {
	// AccessTime is the access time, in milliseconds since the epoch (0 for
	// directories).
	AccessTime int64 `json:"accessTime"`
	// AclBit is true when the inode has an ACL (omitted otherwise).
	AclBit bool `json:"aclBit,omitempty"`
	// BlockSize is the file's block size (0 for directories).
	BlockSize int64 `json:"blockSize"`
	// ChildrenNum is the number of children of a directory (0 for files).
	ChildrenNum int64 `json:"childrenNum"`
	// EcBit is true for an erasure-coded file (omitted otherwise).
	EcBit bool `json:"ecBit,omitempty"`
	// EcPolicy names the erasure-coding policy (omitted when none).
	EcPolicy string `json:"ecPolicy,omitempty"`
	// EncBit is true for an encrypted file (omitted otherwise).
	EncBit bool `json:"encBit,omitempty"`
	// FileID is the inode id.
	FileID int64 `json:"fileId"`
	// Group is the owning group.
	Group string `json:"group"`
	// Length is the file's length in bytes (0 for directories).
	Length int64 `json:"length"`
	// ModificationTime is the modification time in milliseconds since the
	// epoch.
	ModificationTime int64 `json:"modificationTime"`
	// Owner is the owning user.
	Owner string `json:"owner"`
	// PathSuffix is the name relative to the listed directory; "" for
	// GETFILESTATUS and for LISTSTATUS of a file.
	PathSuffix string `json:"pathSuffix"`
	// Permission is the permission in octal ("755", "1777"): see
	// FsPermission.Octal.
	Permission string `json:"permission"`
	// Replication is the file's replication (0 for directories).
	Replication int `json:"replication"`
	// SnapshotEnabled is true for a snapshottable directory (omitted
	// otherwise).
	SnapshotEnabled bool `json:"snapshotEnabled,omitempty"`
	// StoragePolicy is the storage policy id (0: unspecified).
	StoragePolicy int `json:"storagePolicy"`
	// Symlink is a symlink's target (omitted for other types).
	Symlink string `json:"symlink,omitempty"`
	// Type is FILE, DIRECTORY or SYMLINK.
	Type FileType `json:"type"`
}

// FileStatusResponse is GETFILESTATUS's body: {"FileStatus":{...}}.
type FileStatusResponse struct {
	// FileStatus is the inode's status.
	FileStatus FileStatus `json:"FileStatus"`
}

// FileStatuses is a list of statuses: {"FileStatus":[...]}. An empty list
// is encoded as [] (never null).
type FileStatuses struct {
	// FileStatus are the entries.
	FileStatus []FileStatus `json:"FileStatus"`
}

// MarshalJSON encodes a nil list as [].
func (f FileStatuses) MarshalJSON() ([]byte, error) {
	type plain FileStatuses
	if f.FileStatus == nil {
		f.FileStatus = []FileStatus{}
	}
	return Marshal(plain(f))
}

// FileStatusesResponse is LISTSTATUS's body: {"FileStatuses":{"FileStatus":[...]}}.
type FileStatusesResponse struct {
	// FileStatuses is the listing.
	FileStatuses FileStatuses `json:"FileStatuses"`
}

// PartialListing is a DirectoryListing's page: {"FileStatuses":{...}}.
type PartialListing struct {
	// FileStatuses are the page's entries.
	FileStatuses FileStatuses `json:"FileStatuses"`
}

// DirectoryListing is one page of LISTSTATUS_BATCH. The next page starts
// after the PathSuffix of this page's last entry (the startAfter parameter).
type DirectoryListing struct {
	// PartialListing holds the page's entries.
	PartialListing PartialListing `json:"partialListing"`
	// RemainingEntries is the number of entries after this page; 0 on the
	// last page.
	RemainingEntries int64 `json:"remainingEntries"`
}

// DirectoryListingResponse is LISTSTATUS_BATCH's body:
// {"DirectoryListing":{...}}.
type DirectoryListingResponse struct {
	// DirectoryListing is the page.
	DirectoryListing DirectoryListing `json:"DirectoryListing"`
}

// TypeQuota is the quota and usage of one storage type.
type TypeQuota struct {
	// Consumed is the space of the type in use.
	Consumed int64 `json:"consumed"`
	// Quota is the type's quota.
	Quota int64 `json:"quota"`
}

// TypeQuotas maps storage types ("ARCHIVE", "DISK", "SSD") to their quota;
// Hadoop lists only the types that have a quota and always writes the
// object, so nil is encoded as {}.
type TypeQuotas map[string]TypeQuota

// MarshalJSON encodes nil as {}.
func (t TypeQuotas) MarshalJSON() ([]byte, error) {
	if t == nil {
		return []byte("{}"), nil
	}
	return Marshal(map[string]TypeQuota(t))
}

// ContentSummary is GETCONTENTSUMMARY's summary of a subtree.
type ContentSummary struct {
	// DirectoryCount counts the directories, the root of the subtree
	// included.
	DirectoryCount int64 `json:"directoryCount"`
	// EcPolicy names the erasure-coding policy (omitted when empty).
	EcPolicy string `json:"ecPolicy,omitempty"`
	// FileCount counts the files.
	FileCount int64 `json:"fileCount"`
	// Length is the sum of the files' lengths.
	Length int64 `json:"length"`
	// Quota is the namespace quota, -1 when none.
	Quota int64 `json:"quota"`
	// SpaceConsumed is the space used counting replicas.
	SpaceConsumed int64 `json:"spaceConsumed"`
	// SpaceQuota is the space quota, -1 when none.
	SpaceQuota int64 `json:"spaceQuota"`
	// TypeQuota holds the per-storage-type quotas.
	TypeQuota TypeQuotas `json:"typeQuota"`
}

// ContentSummaryResponse is GETCONTENTSUMMARY's body: {"ContentSummary":{...}}.
type ContentSummaryResponse struct {
	// ContentSummary is the summary.
	ContentSummary ContentSummary `json:"ContentSummary"`
}

// QuotaUsage is GETQUOTAUSAGE's object.
type QuotaUsage struct {
	// FileAndDirectoryCount counts the inodes of the subtree.
	FileAndDirectoryCount int64 `json:"fileAndDirectoryCount"`
	// Quota is the namespace quota, -1 when none.
	Quota int64 `json:"quota"`
	// SpaceConsumed is the space used counting replicas.
	SpaceConsumed int64 `json:"spaceConsumed"`
	// SpaceQuota is the space quota, -1 when none.
	SpaceQuota int64 `json:"spaceQuota"`
	// TypeQuota holds the per-storage-type quotas.
	TypeQuota TypeQuotas `json:"typeQuota"`
}

// QuotaUsageResponse is GETQUOTAUSAGE's body: {"QuotaUsage":{...}}.
type QuotaUsageResponse struct {
	// QuotaUsage is the usage.
	QuotaUsage QuotaUsage `json:"QuotaUsage"`
}

// BooleanResponse is the body of MKDIRS, RENAME, DELETE, SETREPLICATION and
// TRUNCATE: {"boolean":true}.
type BooleanResponse struct {
	// Boolean is the operation's result.
	Boolean bool `json:"boolean"`
}

// PathResponse is GETHOMEDIRECTORY's (and GETTRASHROOT's) body:
// {"Path":"/user/x"}.
type PathResponse struct {
	// Path is the path.
	Path string `json:"Path"`
}

// LocationResponse is the body of CREATE, APPEND and OPEN with
// noredirect=true: {"Location":"http://datanode:port/webhdfs/v1/...?op=..."}.
type LocationResponse struct {
	// Location is the datanode URL to send the request to.
	Location string `json:"Location"`
}

// LongResponse is a {"long": n} body (RENEWDELEGATIONTOKEN).
type LongResponse struct {
	// Long is the value.
	Long int64 `json:"long"`
}

// FsStatus is GETSTATUS's object (the file system's capacity).
type FsStatus struct {
	// Capacity is the raw capacity in bytes.
	Capacity int64 `json:"capacity"`
	// Remaining is the free space.
	Remaining int64 `json:"remaining"`
	// Used is the used space.
	Used int64 `json:"used"`
}

// FsStatusResponse is GETSTATUS's body: {"FsStatus":{...}}.
type FsStatusResponse struct {
	// FsStatus is the status.
	FsStatus FsStatus `json:"FsStatus"`
}

// RemoteExceptionJSON is the inside of a RemoteException body.
type RemoteExceptionJSON struct {
	// Exception is the simple class name.
	Exception string `json:"exception"`
	// JavaClassName is the fully qualified class name.
	JavaClassName string `json:"javaClassName"`
	// Message is the message.
	Message string `json:"message"`
}

// RemoteExceptionResponse is a WebHDFS error body:
// {"RemoteException":{"exception":...,"javaClassName":...,"message":...}}.
type RemoteExceptionResponse struct {
	// RemoteException is the exception.
	RemoteException RemoteExceptionJSON `json:"RemoteException"`
}

// Marshal encodes a WebHDFS body as Hadoop writes it: compact, keys in the
// declared (sorted) order, and without escaping '<', '>' and '&' (which
// encoding/json would turn into \u003c...; Jackson does not).
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
