package client

import (
	"context"
	"time"

	"github.com/kura-dev/kura/dfs/hdfs"
	"github.com/kura-dev/kura/proto/dfspb"
)

// SetPermission sets path's permission bits (chmod).
func (c *Client) SetPermission(ctx context.Context, path string, perm hdfs.FsPermission) error {
	_, err := call(ctx, c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.SetPermissionResponse, error) {
		return nn.SetPermission(ctx, &dfspb.SetPermissionRequest{Path: path, Permission: uint32(perm), User: c.cfg.User})
	})
	return err
}

// SetOwner sets path's owner and group (chown; "" leaves one unchanged).
// Changing the owner takes the superuser, as with HDFS.
func (c *Client) SetOwner(ctx context.Context, path, owner, group string) error {
	_, err := call(ctx, c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.SetOwnerResponse, error) {
		return nn.SetOwner(ctx, &dfspb.SetOwnerRequest{Path: path, Owner: owner, Group: group, User: c.cfg.User})
	})
	return err
}

// SetReplication sets the file path's replication; false when path is a
// directory (HDFS's setReplication returns false for one).
func (c *Client) SetReplication(ctx context.Context, path string, replication int) (bool, error) {
	resp, err := call(ctx, c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.SetReplicationResponse, error) {
		return nn.SetReplication(ctx, &dfspb.SetReplicationRequest{Path: path, Replication: int32(replication), User: c.cfg.User})
	})
	if err != nil {
		return false, err
	}
	return resp.Changed, nil
}

// SetTimes sets path's modification and access times; a zero time leaves
// that one unchanged.
func (c *Client) SetTimes(ctx context.Context, path string, mtime, atime time.Time) error {
	ms := func(t time.Time) int64 {
		if t.IsZero() {
			return -1
		}
		return t.UnixMilli()
	}
	_, err := call(ctx, c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.SetTimesResponse, error) {
		return nn.SetTimes(ctx, &dfspb.SetTimesRequest{Path: path, Mtime: ms(mtime), Atime: ms(atime), User: c.cfg.User})
	})
	return err
}

// ContentSummary is what ContentSummary returns: the counts of a subtree.
type ContentSummary struct {
	// DirectoryCount counts directories, the subtree's root included.
	DirectoryCount int64
	// FileCount counts files.
	FileCount int64
	// Length is the sum of the files' lengths.
	Length int64
	// SpaceConsumed is the sum of length x replication.
	SpaceConsumed int64
	// Quota and SpaceQuota are the quotas (-1: none).
	Quota, SpaceQuota int64
}

// ContentSummary counts the directories, files and bytes under path (du,
// count).
func (c *Client) ContentSummary(ctx context.Context, path string) (*ContentSummary, error) {
	resp, err := call(ctx, c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.GetContentSummaryResponse, error) {
		return nn.GetContentSummary(ctx, &dfspb.GetContentSummaryRequest{Path: path, User: c.cfg.User})
	})
	if err != nil {
		return nil, err
	}
	return &ContentSummary{
		DirectoryCount: resp.DirectoryCount, FileCount: resp.FileCount, Length: resp.Length,
		SpaceConsumed: resp.SpaceConsumed, Quota: resp.Quota, SpaceQuota: resp.SpaceQuota,
	}, nil
}

// FsStats is what FsStats returns: the file system's size and counts.
type FsStats struct {
	// Capacity, Used and Remaining are the live datanodes' raw bytes.
	Capacity, Used, Remaining int64
	// Files and Dirs count files and directories (the root included).
	Files, Dirs int64
	// Blocks counts blocks; UnderConstruction files open for writing.
	Blocks, UnderConstruction int64
	// Length is the sum of the files' lengths.
	Length int64
}

// FsStats returns the file system's capacity and counts (df). The
// namenode walks the namespace for the counts: an operator's call.
func (c *Client) FsStats(ctx context.Context) (*FsStats, error) {
	resp, err := call(ctx, c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.GetFsStatsResponse, error) {
		return nn.GetFsStats(ctx, &dfspb.GetFsStatsRequest{})
	})
	if err != nil {
		return nil, err
	}
	return &FsStats{
		Capacity: resp.Capacity, Used: resp.Used, Remaining: resp.Remaining, Files: resp.Files, Dirs: resp.Dirs,
		Blocks: resp.Blocks, UnderConstruction: resp.UnderConstruction, Length: resp.Length,
	}, nil
}

// ServerDefaults are the namenode's defaults for new files and the data
// transfer's parameters (HDFS's FsServerDefaults).
type ServerDefaults struct {
	// BlockSize and Replication apply to a file created without them.
	BlockSize   int64
	Replication int
	// BytesPerChecksum is the data covered by one CRC; WritePacketSize the
	// data carried by one packet.
	BytesPerChecksum, WritePacketSize int
	// ChecksumType is the checksum: 1 CRC32, 2 CRC32C (as HDFS numbers
	// them).
	ChecksumType int
	// HTTPAddr is where the namenode that answered serves WebHDFS, /status
	// and /fsck, as it listens (a wildcard host such as 0.0.0.0 stands for
	// the host it was reached at); empty from a namenode that does not say.
	HTTPAddr string
}

// ServerDefaults asks a namenode for its defaults (HDFS's
// getServerDefaults); the namenode reads no metadata to answer.
func (c *Client) ServerDefaults(ctx context.Context) (*ServerDefaults, error) {
	resp, err := call(ctx, c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.GetServerDefaultsResponse, error) {
		return nn.GetServerDefaults(ctx, &dfspb.GetServerDefaultsRequest{})
	})
	if err != nil {
		return nil, err
	}
	return &ServerDefaults{
		BlockSize: resp.BlockSize, Replication: int(resp.Replication), BytesPerChecksum: int(resp.BytesPerChecksum),
		WritePacketSize: int(resp.WritePacketSize), ChecksumType: int(resp.ChecksumType),
		HTTPAddr: resp.HttpAddress,
	}, nil
}

// RecoverLease closes the file path now if it is open for writing, as the
// expiry of its writer's lease would (HDFS's recoverLease): for a file whose
// writer is gone or gave up (Writer.Abort). A last block still being
// written goes through block recovery first: it keeps what every reachable
// replica holds (at least what the writer's Hflush got acknowledged). It
// returns true once the file is closed.
func (c *Client) RecoverLease(ctx context.Context, path string) (bool, error) {
	resp, err := call(ctx, c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.RecoverLeaseResponse, error) {
		return nn.RecoverLease(ctx, &dfspb.RecoverLeaseRequest{Path: path, User: c.cfg.User})
	})
	if err != nil {
		return false, err
	}
	return resp.Closed, nil
}
