package namenode

import (
	"context"
	"errors"
	"net"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/kura-dev/kura/dfs/blockstore"
	"github.com/kura-dev/kura/dfs/datanode"
	"github.com/kura-dev/kura/dfs/dnmanager"
	"github.com/kura-dev/kura/dfs/hdfs"
	"github.com/kura-dev/kura/dfs/namespace"
	"github.com/kura-dev/kura/dfs/webhdfs"
	"github.com/kura-dev/kura/proto/dfspb"
)

// clientRPC serves ClientProtocol (proto/dfspb) over the namespace, with
// the datanode manager resolving storage ids to live data addresses.
type clientRPC struct {
	dfspb.UnimplementedClientProtocolServer
	ns          *namespace.Namespace
	dnm         *dnmanager.Manager
	rec         *blockRecoverer // lease recovery's block recovery
	defaultUser string
	groups      map[string][]string
	httpAddr    string // the HTTP listener's address, for GetServerDefaults
}

func newClientRPC(ns *namespace.Namespace, dnm *dnmanager.Manager, cfg Config) *clientRPC {
	du := cfg.DefaultUser
	if du == "" {
		du = webhdfs.DefaultUser
	}
	return &clientRPC{ns: ns, dnm: dnm, defaultUser: du, groups: cfg.Groups}
}

func (s *clientRPC) user(name string) hdfs.User {
	if name == "" {
		name = s.defaultUser
	}
	return hdfs.User{Name: name, Groups: s.groups[name]}
}

// StatusCode is the gRPC code ClientProtocol answers an exception of class
// c with (see the mapping in proto/dfspb/dfs.proto).
func StatusCode(c *hdfs.Class) codes.Code {
	switch {
	case c == nil:
		return codes.Internal
	case c.IsA(hdfs.ErrFileNotFound):
		return codes.NotFound
	case c.IsA(hdfs.ErrAccessControl), c.IsA(hdfs.ErrSecurity):
		return codes.PermissionDenied
	case c.IsA(hdfs.ErrFileAlreadyExists):
		return codes.AlreadyExists
	case c.IsA(hdfs.ErrRetriable), c.IsA(hdfs.ErrStandby):
		return codes.Unavailable
	case c.IsA(hdfs.ErrUnsupportedOperation):
		return codes.Unimplemented
	case c.IsA(hdfs.ErrIllegalArgument):
		return codes.InvalidArgument
	case c.IsA(hdfs.ErrIO):
		return codes.FailedPrecondition
	}
	return codes.Internal
}

// rpcError turns a namespace error into a gRPC status carrying the Hadoop
// exception as "SimpleClassName: message".
func rpcError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, err.Error())
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	re := hdfs.ToRemote(err)
	return status.Error(StatusCode(re.Class()), re.Error())
}

func fileStatusPB(st *namespace.FileStatus) *dfspb.FileStatus {
	if st == nil {
		return nil
	}
	return &dfspb.FileStatus{
		FileId: st.ID, Name: st.Name, IsDir: st.IsDir, Length: st.Length,
		Replication: int32(st.Replication), BlockSize: st.BlockSize,
		Mtime: st.MTime, Atime: st.ATime, Permission: uint32(st.Permission),
		Owner: st.Owner, Group: st.Group, ChildrenNum: st.ChildrenNum,
		UnderConstruction: st.UnderConstruction, Symlink: st.Symlink,
	}
}

// locatedPB converts lb, filling in missing data addresses (and dropping
// targets on datanodes not live) when resolve is set.
func (s *clientRPC) locatedPB(lb *namespace.LocatedBlock) *dfspb.LocatedBlock {
	out := &dfspb.LocatedBlock{
		Block:  &dfspb.BlockRef{Id: uint64(lb.Block.BlockID), Genstamp: uint64(lb.Block.GenerationStamp)},
		Offset: lb.Offset,
		Length: lb.Block.NumBytes,
	}
	for _, t := range lb.Targets {
		addr := t.Addr
		if addr == "" {
			a, ok := s.dnm.Addr(t.StorageID)
			if !ok {
				continue
			}
			addr = a
		}
		out.Locations = append(out.Locations, &dfspb.Location{StorageId: t.StorageID, DataAddr: addr})
	}
	return out
}

func (s *clientRPC) Create(ctx context.Context, req *dfspb.CreateRequest) (*dfspb.CreateResponse, error) {
	if req.ClientName == "" {
		return nil, rpcError(hdfs.ErrHadoopIllegalArgument.New("create " + req.Path + ": no client name"))
	}
	st, err := s.ns.Create(ctx, s.user(req.User), req.Path, namespace.CreateOptions{
		Perm: hdfs.FsPermission(req.Permission), Overwrite: req.Overwrite, CreateParent: req.CreateParent,
		Replication: int16(req.Replication), BlockSize: req.BlockSize, ClientName: req.ClientName,
		ClientMachine: peerHost(ctx), Retry: req.Retry,
	})
	if err != nil {
		return nil, rpcError(err)
	}
	return &dfspb.CreateResponse{Status: fileStatusPB(st)}, nil
}

// fileRef names the file of a writer's call: by its file id when the
// client sent one (HDFS's fileId), else by path (an older client).
func fileRef(path string, fileID int64) namespace.FileRef {
	return namespace.FileRef{Path: path, ID: fileID}
}

func (s *clientRPC) AddBlock(ctx context.Context, req *dfspb.AddBlockRequest) (*dfspb.AddBlockResponse, error) {
	previous := int64(-1)
	if req.Previous != nil {
		previous = int64(req.Previous.Id)
	}
	lb, err := s.ns.AddBlockFile(ctx, fileRef(req.Path, req.FileId), req.ClientName, previous, req.PreviousLength, s.storageIDs(req.Exclude))
	if err != nil {
		return nil, rpcError(err)
	}
	return &dfspb.AddBlockResponse{Block: s.locatedPB(lb)}, nil
}

func (s *clientRPC) Complete(ctx context.Context, req *dfspb.CompleteRequest) (*dfspb.CompleteResponse, error) {
	last := int64(-1)
	if req.Last != nil {
		last = int64(req.Last.Id)
	}
	done, err := s.ns.CompleteFile(ctx, fileRef(req.Path, req.FileId), req.ClientName, last, req.LastLength)
	if err != nil {
		return nil, rpcError(err)
	}
	return &dfspb.CompleteResponse{Completed: done}, nil
}

func (s *clientRPC) GetBlockLocations(ctx context.Context, req *dfspb.GetBlockLocationsRequest) (*dfspb.GetBlockLocationsResponse, error) {
	fb, err := s.ns.BlockLocations(ctx, s.user(req.User), req.Path)
	if err != nil {
		return nil, rpcError(err)
	}
	s.dnm.ResolveBlocks(fb)
	resp := &dfspb.GetBlockLocationsResponse{FileLength: fb.Status.Length, UnderConstruction: fb.Status.UnderConstruction}
	end := int64(-1)
	if req.Length > 0 {
		end = req.Offset + req.Length
	}
	for _, b := range fb.Blocks {
		if b.Offset+b.Block.NumBytes <= req.Offset && b.Block.NumBytes > 0 {
			continue
		}
		if end >= 0 && b.Offset >= end {
			break
		}
		resp.Blocks = append(resp.Blocks, s.locatedPB(b))
	}
	return resp, nil
}

func (s *clientRPC) RenewLease(ctx context.Context, req *dfspb.RenewLeaseRequest) (*dfspb.RenewLeaseResponse, error) {
	if err := s.ns.RenewLease(ctx, req.ClientName); err != nil {
		return nil, rpcError(err)
	}
	return &dfspb.RenewLeaseResponse{}, nil
}

func (s *clientRPC) GetFileInfo(ctx context.Context, req *dfspb.GetFileInfoRequest) (*dfspb.GetFileInfoResponse, error) {
	st, err := s.ns.Stat(ctx, s.user(req.User), req.Path)
	if err != nil {
		return nil, rpcError(err)
	}
	return &dfspb.GetFileInfoResponse{Status: fileStatusPB(st)}, nil
}

func (s *clientRPC) Mkdirs(ctx context.Context, req *dfspb.MkdirsRequest) (*dfspb.MkdirsResponse, error) {
	if err := s.ns.Mkdirs(ctx, s.user(req.User), req.Path, hdfs.FsPermission(req.Permission), req.CreateParent); err != nil {
		return nil, rpcError(err)
	}
	return &dfspb.MkdirsResponse{}, nil
}

func (s *clientRPC) Delete(ctx context.Context, req *dfspb.DeleteRequest) (*dfspb.DeleteResponse, error) {
	ok, err := s.ns.Delete(ctx, s.user(req.User), req.Path, req.Recursive)
	if err != nil {
		return nil, rpcError(err)
	}
	return &dfspb.DeleteResponse{Deleted: ok}, nil
}

func (s *clientRPC) Rename(ctx context.Context, req *dfspb.RenameRequest) (*dfspb.RenameResponse, error) {
	if req.Rename2 {
		err := s.ns.Rename2(ctx, s.user(req.User), req.Src, req.Dst, namespace.RenameOptions{Overwrite: req.Overwrite})
		if err != nil {
			return nil, rpcError(err)
		}
		return &dfspb.RenameResponse{Renamed: true}, nil
	}
	ok, err := s.ns.Rename(ctx, s.user(req.User), req.Src, req.Dst)
	if err != nil {
		return nil, rpcError(err)
	}
	return &dfspb.RenameResponse{Renamed: ok}, nil
}

func (s *clientRPC) List(ctx context.Context, req *dfspb.ListRequest) (*dfspb.ListResponse, error) {
	l, err := s.ns.List(ctx, s.user(req.User), req.Path, req.StartAfter, int(req.Limit))
	if err != nil {
		return nil, rpcError(err)
	}
	resp := &dfspb.ListResponse{HasMore: l.HasMore}
	for _, e := range l.Entries {
		resp.Entries = append(resp.Entries, fileStatusPB(e))
	}
	return resp, nil
}

func (s *clientRPC) SetPermission(ctx context.Context, req *dfspb.SetPermissionRequest) (*dfspb.SetPermissionResponse, error) {
	if err := s.ns.SetPermission(ctx, s.user(req.User), req.Path, hdfs.FsPermission(req.Permission)); err != nil {
		return nil, rpcError(err)
	}
	return &dfspb.SetPermissionResponse{}, nil
}

func (s *clientRPC) SetOwner(ctx context.Context, req *dfspb.SetOwnerRequest) (*dfspb.SetOwnerResponse, error) {
	if err := s.ns.SetOwner(ctx, s.user(req.User), req.Path, req.Owner, req.Group); err != nil {
		return nil, rpcError(err)
	}
	return &dfspb.SetOwnerResponse{}, nil
}

func (s *clientRPC) SetReplication(ctx context.Context, req *dfspb.SetReplicationRequest) (*dfspb.SetReplicationResponse, error) {
	if req.Replication <= 0 || req.Replication > 1<<15-1 {
		return nil, rpcError(hdfs.ErrHadoopIllegalArgument.Errorf("set replication %s: bad replication %d", req.Path, req.Replication))
	}
	ok, err := s.ns.SetReplication(ctx, s.user(req.User), req.Path, int16(req.Replication))
	if err != nil {
		return nil, rpcError(err)
	}
	return &dfspb.SetReplicationResponse{Changed: ok}, nil
}

func (s *clientRPC) GetContentSummary(ctx context.Context, req *dfspb.GetContentSummaryRequest) (*dfspb.GetContentSummaryResponse, error) {
	cs, err := s.ns.ContentSummary(ctx, s.user(req.User), req.Path)
	if err != nil {
		return nil, rpcError(err)
	}
	return &dfspb.GetContentSummaryResponse{
		DirectoryCount: cs.DirectoryCount, FileCount: cs.FileCount, Length: cs.Length,
		SpaceConsumed: cs.SpaceConsumed, Quota: cs.Quota, SpaceQuota: cs.SpaceQuota,
	}, nil
}

// peerHost is the caller's host, for placement and messages ("" unknown).
func peerHost(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(p.Addr.String())
	if err != nil {
		return ""
	}
	return host
}

// AbandonBlock drops the file's last block after a failed pipeline.
func (s *clientRPC) AbandonBlock(ctx context.Context, req *dfspb.AbandonBlockRequest) (*dfspb.AbandonBlockResponse, error) {
	if req.Block == nil {
		return nil, rpcError(hdfs.ErrHadoopIllegalArgument.New("abandon block " + req.Path + ": no block"))
	}
	if err := s.ns.AbandonBlockFile(ctx, fileRef(req.Path, req.FileId), req.ClientName, int64(req.Block.Id)); err != nil {
		return nil, rpcError(err)
	}
	return &dfspb.AbandonBlockResponse{}, nil
}

// Append reopens a closed file for its caller.
func (s *clientRPC) Append(ctx context.Context, req *dfspb.AppendRequest) (*dfspb.AppendResponse, error) {
	if req.ClientName == "" {
		return nil, rpcError(hdfs.ErrHadoopIllegalArgument.New("append " + req.Path + ": no client name"))
	}
	res, err := s.ns.Append(ctx, s.user(req.User), req.Path, req.ClientName, peerHost(ctx))
	if err != nil {
		return nil, rpcError(err)
	}
	resp := &dfspb.AppendResponse{Status: fileStatusPB(res.Status), LastBlockLength: res.LastLength, LastBlockId: uint64(res.LastBlockID)}
	if res.LastBlock != nil {
		resp.LastBlock = s.locatedPB(res.LastBlock)
	}
	return resp, nil
}

// UpdatePipeline re-stamps the last block for the surviving replicas.
func (s *clientRPC) UpdatePipeline(ctx context.Context, req *dfspb.UpdatePipelineRequest) (*dfspb.UpdatePipelineResponse, error) {
	if req.Block == nil {
		return nil, rpcError(hdfs.ErrHadoopIllegalArgument.New("update pipeline " + req.Path + ": no block"))
	}
	lb, err := s.ns.UpdatePipelineFile(ctx, fileRef(req.Path, req.FileId), req.ClientName, int64(req.Block.Id), s.storageIDs(req.Exclude))
	if err != nil {
		return nil, rpcError(err)
	}
	return &dfspb.UpdatePipelineResponse{Block: s.locatedPB(lb)}, nil
}

func (s *clientRPC) SetTimes(ctx context.Context, req *dfspb.SetTimesRequest) (*dfspb.SetTimesResponse, error) {
	if err := s.ns.SetTimes(ctx, s.user(req.User), req.Path, req.Mtime, req.Atime); err != nil {
		return nil, rpcError(err)
	}
	return &dfspb.SetTimesResponse{}, nil
}

func (s *clientRPC) GetFsStats(ctx context.Context, _ *dfspb.GetFsStatsRequest) (*dfspb.GetFsStatsResponse, error) {
	st, err := s.ns.FsStats(ctx)
	if err != nil {
		return nil, rpcError(err)
	}
	return &dfspb.GetFsStatsResponse{
		Capacity: st.Capacity, Used: st.Used, Remaining: st.Remaining, Files: st.Files, Dirs: st.Dirs,
		Blocks: st.Blocks, UnderConstruction: st.UnderConstruction, Length: st.Length,
	}, nil
}

// GetServerDefaults returns the defaults for new files, the data
// transfer's parameters and the namenode's HTTP address; it reads no
// metadata.
func (s *clientRPC) GetServerDefaults(context.Context, *dfspb.GetServerDefaultsRequest) (*dfspb.GetServerDefaultsResponse, error) {
	d := s.ns.ServerDefaults()
	return &dfspb.GetServerDefaultsResponse{
		BlockSize: d.BlockSize, Replication: int32(d.Replication),
		BytesPerChecksum: blockstore.DefaultBytesPerChecksum, WritePacketSize: datanode.PacketSize,
		ChecksumType: uint32(blockstore.ChecksumCRC32C), HttpAddress: s.httpAddr,
	}, nil
}

// RecoverLease closes a file whose writer is gone.
func (s *clientRPC) RecoverLease(ctx context.Context, req *dfspb.RecoverLeaseRequest) (*dfspb.RecoverLeaseResponse, error) {
	var rec namespace.BlockRecoverer
	if s.rec != nil {
		rec = s.rec
	}
	closed, err := s.ns.RecoverLeaseWith(ctx, s.user(req.User), req.Path, rec)
	if err != nil {
		return nil, rpcError(err)
	}
	return &dfspb.RecoverLeaseResponse{Closed: closed}, nil
}

// storageIDs maps the data addresses among exclude to their datanodes'
// storage ids, keeping the rest as they are.
func (s *clientRPC) storageIDs(exclude []string) []string {
	if len(exclude) == 0 {
		return nil
	}
	byAddr := map[string]string{}
	for _, d := range s.dnm.Datanodes() {
		byAddr[d.DataAddr] = d.StorageID
	}
	out := make([]string, 0, len(exclude))
	for _, e := range exclude {
		if sid, ok := byAddr[e]; ok {
			e = sid
		}
		out = append(out, e)
	}
	return out
}
