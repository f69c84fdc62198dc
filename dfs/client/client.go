// Package client is kura dfs's Go client: files written and read through
// the namenodes' ClientProtocol (proto/dfspb, on their --rpc ports) and the
// datanodes' DataTransfer.
//
//	c, err := client.New(client.Config{Namenodes: []string{"127.0.0.1:8020"}, User: "alice"})
//	w, err := c.Create(ctx, "/data/f", client.CreateOptions{CreateParent: true})
//	io.Copy(w, src); w.Close()
//	r, err := c.Open(ctx, "/data/f")
//	io.Copy(dst, r)
//
// Calls go to the namenodes round-robin; a namenode that answers
// UNAVAILABLE (unreachable, or a RetriableException) is skipped for the
// next one. Create and Append that meet a lease recovery (the file's
// writer passed its soft limit and the namenode recovers its last block,
// RecoveryInProgressException) are retried with backoff until it ends, for
// up to 90 s. Errors carry the namenode's Hadoop exception: errors.Is(err,
// hdfs.ErrFileNotFound), hdfs.ErrAlreadyBeingCreated and the other dfs/hdfs
// sentinels hold.
//
// # Writing
//
// A Writer streams: AddBlock allocates a block and a pipeline of datanodes
// when the first byte for it comes, the bytes go down the pipeline in
// 64 KiB packets as they are written, and the block is finished when full
// or on Close. Only the bytes not yet acknowledged by every datanode stay
// in memory (at most the pipeline's window, 4 MiB). When a datanode of the
// pipeline fails, the writer recovers as HDFS's DataStreamer does: with
// nothing acknowledged on a new block, it abandons the block (AbandonBlock)
// and asks AddBlock again without the failed datanode; otherwise the
// namenode gives the block a new generation stamp for the surviving
// replicas (UpdatePipeline), they cut their replicas back to the
// acknowledged length, and the unacknowledged bytes are sent again on
// them. Append continues a partial last block in place the same way.
// Close then calls Complete until the namenode has seen enough finalized
// replicas. While a Writer is open the client renews its lease in the
// background. Calls whose answer was lost when a namenode died are sent
// to the next namenode and recognized there (see ClientProtocol's retry
// fields), so a writer carries on across a namenode failure. Every call
// a Writer makes about its file carries the file id Create or Append
// returned (HDFS's fileId), so the namenode finds the file by id: a file
// renamed while open is written and completed where it is now, and a file
// deleted while open fails its writer (FileNotFoundException) even when
// another file took its path.
//
// # Reading
//
// A Reader (io.Reader, io.Seeker, io.ReaderAt) asks GetBlockLocations for
// the blocks and their live replicas and reads each block from one
// replica; on a checksum mismatch (datanode.ErrCorrupt) or a failed
// connection it goes on from the offset reached at the next replica.
package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os/user"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/kura-dev/kura/dfs/datanode"
	"github.com/kura-dev/kura/dfs/hdfs"
	"github.com/kura-dev/kura/proto/dfspb"
)

// DefaultLeaseRenewInterval is how often an open Writer's lease is renewed
// (HDFS renews at half the 60 s soft limit).
const DefaultLeaseRenewInterval = 30 * time.Second

// Config configures a Client.
type Config struct {
	// Namenodes are the namenodes' RPC addresses (host:port); at least one.
	Namenodes []string
	// User is the caller's user name (the OS user when empty).
	User string
	// ClientName names the client as a lease holder (a random
	// "kura_client_<hex>" when empty). Two Clients must not share one.
	ClientName string
	// DialOptions are the gRPC options for namenodes and datanodes (no TLS
	// when empty).
	DialOptions []grpc.DialOption
	// LeaseRenewInterval is how often open writers' lease is renewed
	// (DefaultLeaseRenewInterval when 0).
	LeaseRenewInterval time.Duration
	// CompleteTimeout bounds Close's wait for Complete to succeed (1 minute
	// when 0).
	CompleteTimeout time.Duration
}

// Client talks to the namenodes and datanodes of one file system. It is
// safe for concurrent use. Close it when done.
type Client struct {
	cfg Config
	sh  *shared
	// view marks a Client made by As: Close leaves the shared state alone.
	view bool
}

// shared is what a Client and the views As makes of it share: the
// connections and the lease renewer.
type shared struct {
	conns []*grpc.ClientConn
	nns   []dfspb.ClientProtocolClient
	next  atomic.Uint32
	dn    *datanode.Client

	mu      sync.Mutex
	writers int                // open writers
	stop    context.CancelFunc // stops the lease renewer; nil when none runs
	wg      sync.WaitGroup
}

// As returns a view of c that calls as user: it shares c's connections,
// client name (lease holder) and lease renewal, so it is cheap to make per
// request (a gateway serving many users, such as a datanode's WebHDFS).
// Closing the view does nothing; close c.
func (c *Client) As(user string) *Client {
	cfg := c.cfg
	cfg.User = user
	return &Client{cfg: cfg, sh: c.sh, view: true}
}

// New returns a Client for the namenodes of cfg. It does not connect
// until the first call.
func New(cfg Config) (*Client, error) {
	if len(cfg.Namenodes) == 0 {
		return nil, errors.New("client: no namenodes")
	}
	if cfg.User == "" {
		if u, err := user.Current(); err == nil {
			cfg.User = u.Username
		}
	}
	if cfg.ClientName == "" {
		var b [8]byte
		rand.Read(b[:])
		cfg.ClientName = "kura_client_" + hex.EncodeToString(b[:])
	}
	if cfg.LeaseRenewInterval <= 0 {
		cfg.LeaseRenewInterval = DefaultLeaseRenewInterval
	}
	if cfg.CompleteTimeout <= 0 {
		cfg.CompleteTimeout = time.Minute
	}
	if len(cfg.DialOptions) == 0 {
		cfg.DialOptions = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	c := &Client{cfg: cfg, sh: &shared{dn: datanode.NewClient(cfg.ClientName, cfg.DialOptions...)}}
	for _, addr := range cfg.Namenodes {
		cc, err := grpc.NewClient(addr, cfg.DialOptions...)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("client: namenode %s: %w", addr, err)
		}
		c.sh.conns = append(c.sh.conns, cc)
		c.sh.nns = append(c.sh.nns, dfspb.NewClientProtocolClient(cc))
	}
	return c, nil
}

// ClientName returns the client's lease-holder name.
func (c *Client) ClientName() string { return c.cfg.ClientName }

// User returns the user the client calls as.
func (c *Client) User() string { return c.cfg.User }

// Close stops the lease renewer and closes the connections. Writers still
// open are not completed. Closing a view made by As does nothing.
func (c *Client) Close() error {
	if c.view {
		return nil
	}
	c.sh.mu.Lock()
	if c.sh.stop != nil {
		c.sh.stop()
		c.sh.stop = nil
	}
	c.sh.mu.Unlock()
	c.sh.wg.Wait()
	errs := []error{c.sh.dn.Close()}
	for _, cc := range c.sh.conns {
		errs = append(errs, cc.Close())
	}
	return errors.Join(errs...)
}

// How Create and Append wait for a lease recovery they ran into: the file
// they want was being written by a client whose lease passed the soft
// limit, and the namenode recovers its last block before handing it over
// (RecoveryInProgressException). The calls are sent again after a backoff
// from recoveryRetryFirst doubling up to recoveryRetryMax, for up to
// recoveryRetryFor (a block recovery's datanode calls take up to the
// namenode's recovery timeout, 30 s by default), or until ctx ends.
const (
	recoveryRetryFirst = 100 * time.Millisecond
	recoveryRetryMax   = 2 * time.Second
	recoveryRetryFor   = 90 * time.Second
)

// waitsForRecovery reports whether the call answered with T is retried on
// a RecoveryInProgressException: Create and Append, which a lease
// recovery holds up until it closes the file. (A writer's own calls on a
// file whose lease was recovered get it too, and must not wait: the file
// is no longer theirs.)
func waitsForRecovery[T any]() bool {
	var zero T
	switch any(zero).(type) {
	case *dfspb.CreateResponse, *dfspb.AppendResponse:
		return true
	}
	return false
}

// call runs fn against the namenodes, starting at the next in round-robin
// order and moving on while they answer UNAVAILABLE; the error is mapped
// back to a dfs/hdfs exception. Create and Append answered with a
// RecoveryInProgressException are sent again with backoff (see
// recoveryRetryFor).
func call[T any](ctx context.Context, c *Client, fn func(ctx context.Context, nn dfspb.ClientProtocolClient) (T, error)) (T, error) {
	res, err := callOnce(ctx, c, fn)
	if err == nil || !waitsForRecovery[T]() || !errors.Is(err, hdfs.ErrRecoveryInProgress) {
		return res, err
	}
	deadline := time.Now().Add(recoveryRetryFor)
	for delay := recoveryRetryFirst; time.Now().Add(delay).Before(deadline); delay = min(2*delay, recoveryRetryMax) {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, fmt.Errorf("client: waiting for a lease recovery: %w (last answer: %w)", ctx.Err(), err)
		case <-t.C:
		}
		res, err = callOnce(ctx, c, fn)
		if err == nil || !errors.Is(err, hdfs.ErrRecoveryInProgress) {
			return res, err
		}
	}
	return res, err
}

// callOnce is one round of call: fn against the namenodes, moving on while
// they answer UNAVAILABLE.
func callOnce[T any](ctx context.Context, c *Client, fn func(ctx context.Context, nn dfspb.ClientProtocolClient) (T, error)) (T, error) {
	start := int(c.sh.next.Add(1) - 1)
	var (
		res T
		err error
	)
	for i := range c.sh.nns {
		res, err = fn(ctx, c.sh.nns[(start+i)%len(c.sh.nns)])
		if err == nil || status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			break
		}
	}
	return res, fromStatus(err)
}

// fromStatus turns a ClientProtocol status back into the namenode's
// exception ("SimpleClassName: message" in the status message).
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Canceled:
		return fmt.Errorf("%w: %s", context.Canceled, st.Message())
	case codes.DeadlineExceeded:
		return fmt.Errorf("%w: %s", context.DeadlineExceeded, st.Message())
	}
	name, msg, _ := strings.Cut(st.Message(), ": ")
	if cl := hdfs.ClassByName(name); cl != nil {
		return cl.New(msg)
	}
	if st.Code() == codes.Unavailable {
		return hdfs.ErrIO.Errorf("no namenode available: %s", st.Message())
	}
	return err
}

// FileStatus is a file's or directory's status.
type FileStatus struct {
	// Name is the last path component (the full path for Stat).
	Name        string
	IsDir       bool
	Length      int64
	Replication int
	BlockSize   int64
	// ModTime and AccessTime are the modification and access times.
	ModTime, AccessTime time.Time
	Permission          hdfs.FsPermission
	Owner, Group        string
	// Children is a directory's number of entries.
	Children int64
	// UnderConstruction is a file being written.
	UnderConstruction bool
	FileID            int64
}

func statusOf(s *dfspb.FileStatus) *FileStatus {
	if s == nil {
		return nil
	}
	return &FileStatus{
		Name: s.Name, IsDir: s.IsDir, Length: s.Length, Replication: int(s.Replication), BlockSize: s.BlockSize,
		ModTime: time.UnixMilli(s.Mtime), AccessTime: time.UnixMilli(s.Atime), Permission: hdfs.FsPermission(s.Permission),
		Owner: s.Owner, Group: s.Group, Children: s.ChildrenNum, UnderConstruction: s.UnderConstruction, FileID: s.FileId,
	}
}

// Stat returns path's status (a FileNotFoundException when missing).
func (c *Client) Stat(ctx context.Context, path string) (*FileStatus, error) {
	resp, err := call(ctx, c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.GetFileInfoResponse, error) {
		return nn.GetFileInfo(ctx, &dfspb.GetFileInfoRequest{Path: path, User: c.cfg.User})
	})
	if err != nil {
		return nil, err
	}
	return statusOf(resp.Status), nil
}

// Mkdirs creates the directory path with permission perm (0: 0755), and
// its missing parents when parents is set.
func (c *Client) Mkdirs(ctx context.Context, path string, perm hdfs.FsPermission, parents bool) error {
	if perm == 0 {
		perm = 0o755
	}
	_, err := call(ctx, c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.MkdirsResponse, error) {
		return nn.Mkdirs(ctx, &dfspb.MkdirsRequest{Path: path, Permission: uint32(perm), CreateParent: parents, User: c.cfg.User})
	})
	return err
}

// List returns the entries of directory path (all pages), or the file
// itself when path is a file. It holds the whole directory: ListIter
// walks a large one a page at a time.
func (c *Client) List(ctx context.Context, path string) ([]*FileStatus, error) {
	var out []*FileStatus
	for st, err := range c.ListIter(ctx, path) {
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// Delete deletes path (a non-empty directory only with recursive); false
// when there was nothing to delete.
func (c *Client) Delete(ctx context.Context, path string, recursive bool) (bool, error) {
	resp, err := call(ctx, c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.DeleteResponse, error) {
		return nn.Delete(ctx, &dfspb.DeleteRequest{Path: path, Recursive: recursive, User: c.cfg.User})
	})
	if err != nil {
		return false, err
	}
	return resp.Deleted, nil
}

// Rename moves src to dst with HDFS's rename semantics (into dst when dst
// is a directory); false when HDFS's rename returns false.
func (c *Client) Rename(ctx context.Context, src, dst string) (bool, error) {
	resp, err := call(ctx, c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.RenameResponse, error) {
		return nn.Rename(ctx, &dfspb.RenameRequest{Src: src, Dst: dst, User: c.cfg.User})
	})
	if err != nil {
		return false, err
	}
	return resp.Renamed, nil
}

// Rename2 moves src to exactly dst with HDFS's rename2 semantics: dst
// names the result, every failure is an exception saying why (a missing
// source, an existing destination without overwrite, a directory moved
// under itself), and with overwrite an existing file (or empty directory)
// at dst is replaced atomically.
func (c *Client) Rename2(ctx context.Context, src, dst string, overwrite bool) error {
	_, err := call(ctx, c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.RenameResponse, error) {
		return nn.Rename(ctx, &dfspb.RenameRequest{Src: src, Dst: dst, User: c.cfg.User, Rename2: true, Overwrite: overwrite})
	})
	return err
}

// BlockLocations returns path's length and blocks with their live
// replicas.
func (c *Client) BlockLocations(ctx context.Context, path string) (*dfspb.GetBlockLocationsResponse, error) {
	return call(ctx, c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.GetBlockLocationsResponse, error) {
		return nn.GetBlockLocations(ctx, &dfspb.GetBlockLocationsRequest{Path: path, User: c.cfg.User})
	})
}

// writerOpened starts the lease renewer with the first open writer.
func (c *Client) writerOpened() {
	c.sh.mu.Lock()
	defer c.sh.mu.Unlock()
	c.sh.writers++
	if c.sh.stop != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.sh.stop = cancel
	c.sh.wg.Add(1)
	go func() {
		defer c.sh.wg.Done()
		t := time.NewTicker(c.cfg.LeaseRenewInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rctx, rcancel := context.WithTimeout(ctx, c.cfg.LeaseRenewInterval)
			call(rctx, c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.RenewLeaseResponse, error) {
				return nn.RenewLease(ctx, &dfspb.RenewLeaseRequest{ClientName: c.cfg.ClientName})
			})
			rcancel()
		}
	}()
}

// writerClosed stops the lease renewer with the last open writer.
func (c *Client) writerClosed() {
	c.sh.mu.Lock()
	defer c.sh.mu.Unlock()
	c.sh.writers--
	if c.sh.writers == 0 && c.sh.stop != nil {
		c.sh.stop()
		c.sh.stop = nil
	}
}
