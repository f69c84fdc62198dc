package namespace

// ServerDefaults are the namespace's defaults for new files (HDFS's
// FsServerDefaults, the part a namespace decides).
type ServerDefaults struct {
	// BlockSize is the block size of a file created without one.
	BlockSize int64
	// Replication is the replication of a file created without one.
	Replication int16
}

// ServerDefaults returns the defaults Create applies. It reads no
// metadata.
func (ns *Namespace) ServerDefaults() ServerDefaults {
	return ServerDefaults{BlockSize: ns.cfg.DefaultBlockSize, Replication: ns.cfg.DefaultReplication}
}
