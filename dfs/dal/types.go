package dal

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
)

// RootID is the inode id of the root directory "/".
const RootID int64 = 1

// RootParentID is the parent id recorded for the root directory; no inode
// has this id.
const RootParentID int64 = 0

// Names of the counters in the variables table.
const (
	// VarInodeID is the last inode id handed out (1 after creation: root).
	VarInodeID = "inode_id"
	// VarBlockID is the last block id handed out.
	VarBlockID = "block_id"
	// VarGenerationStamp is the last block generation stamp handed out.
	VarGenerationStamp = "generation_stamp"
	// VarSchemaVersion is the version of the applied schema (see Migrations).
	VarSchemaVersion = "schema_version"
	// VarNamenodeID is the last namenode id handed out (leader election).
	VarNamenodeID = "namenode_id"
	// VarElectionRound is the last leader-election round: each round
	// advances it, which serialises rounds on its row (schema 3).
	VarElectionRound = "election_round"
)

// LockMode is the row lock a read takes; see the package documentation for
// how each backend maps it.
type LockMode int

const (
	// LockNone reads the latest committed row without locking it.
	LockNone LockMode = iota
	// LockRead takes a shared lock: others may read-lock, none may write.
	LockRead
	// LockWrite takes an exclusive lock until the transaction ends.
	LockWrite
)

// String returns "none", "read" or "write".
func (m LockMode) String() string {
	switch m {
	case LockNone:
		return "none"
	case LockRead:
		return "read"
	case LockWrite:
		return "write"
	}
	return fmt.Sprintf("LockMode(%d)", int(m))
}

// Inode is one row of the inodes table: a file, a directory or a symbolic
// link. Times are milliseconds since the Unix epoch, as in HDFS.
type Inode struct {
	// ID is the inode id, unique; the root is RootID.
	ID int64
	// ParentID is the id of the containing directory (RootParentID for root).
	ParentID int64
	// Name is the last path component ("" for root).
	Name string
	// PartitionID is HopsFS's partition key, computed by PartitionID from
	// ParentID and Name; stores fill it in on insert and update.
	PartitionID int64
	// IsDir tells a directory from a file or symlink.
	IsDir bool
	// Permission holds the POSIX permission bits (e.g. 0o755).
	Permission uint16
	// Owner is the owning user name.
	Owner string
	// Group is the owning group name.
	Group string
	// MTime is the modification time in milliseconds.
	MTime int64
	// ATime is the access time in milliseconds.
	ATime int64
	// Size is a file's length in bytes (0 for directories).
	Size int64
	// Replication is a file's wanted replica count (0 for directories).
	Replication int16
	// BlockSize is a file's block size in bytes (0 for directories).
	BlockSize int64
	// UnderConstruction is true while a writer holds the file open.
	UnderConstruction bool
	// ClientName is the lease holder writing the file ("" when closed).
	ClientName string
	// ClientMachine is the writer's host ("" when closed).
	ClientMachine string
	// Symlink is the target of a symbolic link ("" for other inodes).
	Symlink string
	// Children is a directory's number of entries (0 for files and
	// symlinks), maintained by the namespace in the transaction that adds
	// or removes an entry; Tx.CountChildren counts them (Fsck compares).
	Children int64
}

// IsSymlink reports whether the inode is a symbolic link.
func (in *Inode) IsSymlink() bool { return in.Symlink != "" }

// PartitionID returns HopsFS's partition key of the inode named name in
// directory parentID. Below the top level (depth >= 2) it is parentID, so
// that a directory's children share a partition and a listing is one
// partition-pruned range read. At depth 1 (children of the root) it is a hash
// of (name, parent), spreading the hot top-level directories. The root itself
// (parent RootParentID) has partition 0. The hash is the low 63 bits of
// FNV-1a-64 over the parent id as 8 big-endian bytes followed by the name's
// bytes; it is part of the on-disk format and must never change.
func PartitionID(parentID int64, name string) int64 {
	if parentID != RootID {
		return parentID
	}
	h := fnv.New64a()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(parentID))
	h.Write(b[:])
	h.Write([]byte(name))
	return int64(h.Sum64() & (1<<63 - 1))
}

// BlockState is the life-cycle state of a block, as in HDFS.
type BlockState int

const (
	// BlockUnderConstruction is being written by a pipeline.
	BlockUnderConstruction BlockState = 0
	// BlockCommitted has its final length and stamp from the client but not
	// yet the minimum number of reported replicas.
	BlockCommitted BlockState = 1
	// BlockComplete is committed and has enough reported replicas.
	BlockComplete BlockState = 2
	// BlockUnderRecovery is being recovered after its writer died.
	BlockUnderRecovery BlockState = 3
)

// Block is one row of the blocks table: a block of a file.
type Block struct {
	// InodeID is the file the block belongs to.
	InodeID int64
	// BlockID is the block id, unique across the file system.
	BlockID int64
	// Index is the block's position in the file, from 0.
	Index int32
	// NumBytes is the block's length in bytes.
	NumBytes int64
	// GenerationStamp is bumped on pipeline recovery and append: the stamp
	// of the block's current replicas. Block recovery changes it only when
	// it commits (to RecoveryID).
	GenerationStamp int64
	// State is the block's life-cycle state.
	State BlockState
	// RecoveryID is the generation stamp block recovery is giving the
	// block's replicas while it is BlockUnderRecovery (HDFS's
	// BlockUnderConstructionFeature.blockRecoveryId); 0 when no recovery
	// runs. Since schema version 3.
	RecoveryID int64
}

// ReplicaState is the state of one replica of a block on a datanode.
type ReplicaState int

const (
	// ReplicaBeingWritten is in an open write pipeline.
	ReplicaBeingWritten ReplicaState = 0
	// ReplicaFinalized is complete and readable.
	ReplicaFinalized ReplicaState = 1
	// ReplicaCorrupt failed a checksum or length check.
	ReplicaCorrupt ReplicaState = 2
	// ReplicaExcess is surplus to the file's replication and to be removed.
	ReplicaExcess ReplicaState = 3
)

// Replica is one row of the replicas table: a copy of a block on a storage
// of a datanode.
type Replica struct {
	// InodeID is the file the block belongs to (the partition key).
	InodeID int64
	// BlockID is the block.
	BlockID int64
	// StorageID identifies the datanode storage holding the copy.
	StorageID string
	// State is the replica's state.
	State ReplicaState
}

// Lease is one row of the leases table: a writer (HDFS client name) and the
// last time it renewed its lease, in milliseconds.
type Lease struct {
	// Holder is the client name holding the lease.
	Holder string
	// LastRenewal is the time of the last renewal in milliseconds.
	LastRenewal int64
}

// LeasePath is one row of the lease_paths table: a file held open for
// writing under a holder's lease.
type LeasePath struct {
	// InodeID is the file being written.
	InodeID int64
	// Holder is the lease holder.
	Holder string
	// Path is the file's path when the lease was taken (for messages and
	// lease recovery; the inode id is authoritative).
	Path string
}

// Namenode is one row of the le_descriptors table: a namenode taking part
// in leader election (HopsFS's leader-election descriptor). A namenode
// advances its Counter every election round; the others judge it alive
// while they see the counter move.
type Namenode struct {
	// ID is the namenode's id, from VarNamenodeID; the live namenode with
	// the smallest id leads.
	ID int64
	// Counter is advanced by the namenode every round.
	Counter int64
	// RPCAddress is the namenode's RPC (client and datanode protocol)
	// address, "" when it serves none.
	RPCAddress string
	// HTTPAddress is the namenode's HTTP (WebHDFS) address.
	HTTPAddress string
}

// IDRange is an inclusive range of reserved ids, First <= Last.
type IDRange struct {
	// First is the first id of the range.
	First int64
	// Last is the last id of the range.
	Last int64
}

// Len returns the number of ids in the range.
func (r IDRange) Len() int64 { return r.Last - r.First + 1 }

// InodeKey names an inode by its directory and its name.
type InodeKey struct {
	ParentID int64
	Name     string
}
