package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kura-dev/kura/dfs/datanode"
	"github.com/kura-dev/kura/dfs/hdfs"
	"github.com/kura-dev/kura/proto/dfspb"
)

// CreateOptions are Create's options.
type CreateOptions struct {
	// Perm is the file's permission (0: 0644).
	Perm hdfs.FsPermission
	// Overwrite replaces an existing file.
	Overwrite bool
	// CreateParent creates missing parent directories.
	CreateParent bool
	// Replication is the file's replication (0: the namenode's default).
	Replication int
	// BlockSize is the file's block size (0: the namenode's default).
	BlockSize int64
}

// Writer writes a file created by Client.Create; see the package
// documentation. It is not safe for concurrent use. Close completes the
// file: until then it is under construction, and readers see its bytes up
// to the last Hflush (the namenode's recorded length: the blocks the
// writer moved past, and the last block up to the hflushed length). The
// writer addresses its file by the file id Create or Append returned
// (HDFS's fileId), not by path: a file renamed while open (or a directory
// above it) is still written and completed where it is now; a file
// deleted while open fails its writer's next call with a
// FileNotFoundException, even when a new file was created at its path.
type Writer struct {
	c      *Client
	ctx    context.Context
	path   string
	status *FileStatus
	prev   int64 // length of the block written before, 0 before the first
	// prevID is the block written before (0 before the first): named in
	// AddBlock and Complete so that their retries are recognized.
	prevID uint64
	closed bool
	err    error // sticky

	// reopened is the partial last block Append reopened, until the
	// first write (or Close) opens its append pipeline; its replicas hold
	// base bytes.
	reopened *dfspb.LocatedBlock
	base     int64

	// The block being written: its stream, its location, its length so
	// far (written, acknowledged or not), and the bytes from unackedFrom
	// on that not every datanode has acknowledged yet, kept to resend on
	// the surviving datanodes if one fails.
	cur         *datanode.BlockWriter
	curLB       *dfspb.LocatedBlock
	curLen      int64
	unacked     []byte
	unackedFrom int64
	appended    bool // cur appends to replicas (reopened, or recovered)
	exclude     []string
	attempts    int // pipelines opened for the current block

	// syncedID is the block whose length Hflush last recorded at the
	// namenode (Fsync), synced that length.
	syncedID uint64
	synced   int64
}

// Create creates path for writing and returns its Writer. ctx bounds
// every call the writer makes (its writes and Close included). A file
// another client is writing is an AlreadyBeingCreatedException, an
// existing file without Overwrite a FileAlreadyExistsException.
func (c *Client) Create(ctx context.Context, path string, o CreateOptions) (*Writer, error) {
	if o.Perm == 0 {
		o.Perm = 0o644
	}
	attempts := 0
	resp, err := call(ctx, c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.CreateResponse, error) {
		attempts++
		return nn.Create(ctx, &dfspb.CreateRequest{
			Path: path, Permission: uint32(o.Perm), Overwrite: o.Overwrite, CreateParent: o.CreateParent,
			Replication: int32(o.Replication), BlockSize: o.BlockSize, ClientName: c.cfg.ClientName, User: c.cfg.User,
			// A namenode that failed may have created the file before it
			// could answer: the next one then returns it.
			Retry: attempts > 1,
		})
	})
	if err != nil {
		return nil, err
	}
	st := statusOf(resp.Status)
	if st == nil || st.BlockSize <= 0 {
		return nil, fmt.Errorf("client: create %s: namenode returned no block size", path)
	}
	c.writerOpened()
	return &Writer{c: c, ctx: ctx, path: path, status: st}, nil
}

// Append opens the closed file path to write more at its end
// (ClientProtocol.append). A partial last block is continued in place:
// its replicas are reopened under a new generation stamp and the first
// bytes written go after theirs, through an append pipeline that, when a
// datanode fails, goes on with the surviving replicas under yet another
// stamp (HDFS's pipeline recovery). Errors: a missing file is a
// FileNotFoundException, a file being written an
// AlreadyBeingCreatedException.
func (c *Client) Append(ctx context.Context, path string) (*Writer, error) {
	resp, err := call(ctx, c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.AppendResponse, error) {
		return nn.Append(ctx, &dfspb.AppendRequest{Path: path, ClientName: c.cfg.ClientName, User: c.cfg.User})
	})
	if err != nil {
		return nil, err
	}
	st := statusOf(resp.Status)
	if st == nil || st.BlockSize <= 0 {
		return nil, fmt.Errorf("client: append %s: namenode returned no block size", path)
	}
	w := &Writer{c: c, ctx: ctx, path: path, status: st, prev: resp.LastBlockLength, prevID: resp.LastBlockId, reopened: resp.LastBlock,
		syncedID: resp.LastBlockId, synced: resp.LastBlockLength}
	if lb := resp.LastBlock; lb != nil {
		w.base = lb.Length
		if w.base >= st.BlockSize {
			return nil, fmt.Errorf("client: append %s: reopened block %d holds %d bytes, block size %d", path, lb.Block.GetId(), w.base, st.BlockSize)
		}
	}
	c.writerOpened()
	return w, nil
}

// Status returns the file's status as Create returned it.
func (w *Writer) Status() *FileStatus { return w.status }

// Write streams p to the datanodes, block by block: a block is allocated
// (AddBlock) when the first byte for it comes, and finished once full.
// Only the bytes the pipeline has not acknowledged yet stay in memory.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, fmt.Errorf("client: write %s: writer closed", w.path)
	}
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		if w.cur == nil {
			if err := w.openBlock(); err != nil {
				w.err = err
				return n, err
			}
		}
		k := min(int64(len(p)), w.status.BlockSize-w.curLen)
		if err := w.writeCur(p[:k]); err != nil {
			w.err = err
			return n, err
		}
		p, n = p[k:], n+int(k)
		if w.curLen == w.status.BlockSize {
			if err := w.finishBlock(); err != nil {
				w.err = err
				return n, err
			}
		}
	}
	return n, nil
}

// openBlock opens the next block's pipeline: the reopened block's append
// pipeline after Append, else a new block from AddBlock.
func (w *Writer) openBlock() error {
	w.exclude, w.attempts = nil, 0
	if lb := w.reopened; lb != nil {
		w.reopened = nil
		w.curLB, w.curLen, w.unackedFrom, w.unacked, w.appended = lb, w.base, w.base, w.unacked[:0], true
		return w.resume(nil)
	}
	w.curLen, w.unackedFrom, w.unacked, w.appended = 0, 0, w.unacked[:0], false
	return w.newBlock()
}

// newBlock asks AddBlock for a block (excluding the datanodes that failed
// for this block so far) and opens its pipeline.
func (w *Writer) newBlock() error {
	for {
		w.attempts++
		resp, err := call(w.ctx, w.c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.AddBlockResponse, error) {
			return nn.AddBlock(ctx, &dfspb.AddBlockRequest{
				Path: w.path, FileId: w.status.FileID, ClientName: w.c.cfg.ClientName, PreviousLength: w.prev, Exclude: w.exclude,
				User: w.c.cfg.User, Previous: &dfspb.BlockRef{Id: w.prevID},
			})
		})
		if err != nil {
			return fmt.Errorf("client: write %s: %w", w.path, err)
		}
		w.curLB = resp.Block
		bw, err := w.c.sh.dn.OpenBlock(w.ctx, addrs(w.curLB), blockOf(w.curLB), false, 0)
		if err == nil {
			w.cur = bw
			return nil
		}
		if err := w.abandon(err); err != nil {
			return err
		}
	}
}

// abandon gives up the current block after its pipeline failed with
// cause before any byte was acknowledged, excluding the failed datanode
// from the next AddBlock.
func (w *Writer) abandon(cause error) error {
	var pe *datanode.PipelineError
	if !errors.As(cause, &pe) || w.ctx.Err() != nil || w.attempts >= w.maxAttempts() {
		return fmt.Errorf("client: write %s: %w", w.path, cause)
	}
	w.excludeNode(pe.Node)
	_, err := call(w.ctx, w.c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.AbandonBlockResponse, error) {
		return nn.AbandonBlock(ctx, &dfspb.AbandonBlockRequest{Path: w.path, FileId: w.status.FileID, ClientName: w.c.cfg.ClientName,
			Block: w.curLB.Block, User: w.c.cfg.User})
	})
	if err != nil {
		return fmt.Errorf("client: write %s: abandon blk_%d after %v: %w", w.path, w.curLB.Block.GetId(), cause, err)
	}
	return nil
}

// maxAttempts bounds the pipelines opened for one block.
func (w *Writer) maxAttempts() int { return max(w.status.Replication, 1) + 2 }

// excludeNode adds a failed datanode (data address and storage id) to the
// current block's exclusions.
func (w *Writer) excludeNode(addr string) {
	w.exclude = append(w.exclude, addr)
	for _, l := range w.curLB.GetLocations() {
		if l.DataAddr == addr {
			w.exclude = append(w.exclude, l.StorageId)
		}
	}
}

// writeCur writes p to the current block, keeping it until acknowledged
// and recovering the pipeline when a datanode fails.
func (w *Writer) writeCur(p []byte) error {
	w.unacked = append(w.unacked, p...)
	w.curLen += int64(len(p))
	_, err := w.cur.Write(p)
	w.trimAcked()
	if err != nil {
		return w.recoverPipeline(err)
	}
	return nil
}

// trimAcked drops the bytes every datanode has acknowledged.
func (w *Writer) trimAcked() {
	if w.cur == nil {
		return
	}
	if a := w.cur.Acked(); a > w.unackedFrom {
		w.unacked = w.unacked[a-w.unackedFrom:]
		w.unackedFrom = a
	}
}

// recoverPipeline goes on after the current pipeline failed with cause:
// with nothing acknowledged on a new block, the block is abandoned and
// written again elsewhere; otherwise (HDFS's pipeline recovery) the
// namenode re-stamps the block for the surviving datanodes, which cut their
// replicas back to the acknowledged length, and the rest is sent again.
func (w *Writer) recoverPipeline(cause error) error {
	w.cur.Abort()
	w.trimAcked()
	w.cur = nil
	if !w.appended && w.unackedFrom == 0 {
		if err := w.abandon(cause); err != nil {
			return err
		}
		if err := w.newBlock(); err != nil {
			return err
		}
		if err := w.replay(); err != nil {
			return w.recoverPipeline(err)
		}
		return nil
	}
	return w.resume(cause)
}

// resume opens an append pipeline for the current block at the
// acknowledged length (after cause, when a datanode failed: re-stamped
// without it) and sends the unacknowledged bytes again.
func (w *Writer) resume(cause error) error {
	for {
		if cause != nil {
			var pe *datanode.PipelineError
			if !errors.As(cause, &pe) || w.ctx.Err() != nil || w.attempts >= w.maxAttempts() {
				return fmt.Errorf("client: write %s: %w", w.path, cause)
			}
			w.excludeNode(pe.Node)
			resp, err := call(w.ctx, w.c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.UpdatePipelineResponse, error) {
				return nn.UpdatePipeline(ctx, &dfspb.UpdatePipelineRequest{Path: w.path, FileId: w.status.FileID, ClientName: w.c.cfg.ClientName,
					Block: w.curLB.Block, Exclude: w.exclude, User: w.c.cfg.User})
			})
			if err != nil {
				return fmt.Errorf("client: write %s: recover the pipeline after %v: %w", w.path, cause, err)
			}
			w.curLB = resp.Block
		}
		w.attempts++
		w.appended = true
		if len(w.curLB.Locations) == 0 {
			return fmt.Errorf("client: write %s: no live replica of blk_%d left", w.path, w.curLB.Block.GetId())
		}
		bw, err := w.c.sh.dn.OpenBlock(w.ctx, addrs(w.curLB), blockOf(w.curLB), true, w.unackedFrom)
		if err != nil {
			cause = err
			continue
		}
		w.cur = bw
		if err := w.replay(); err != nil {
			var pe *datanode.PipelineError
			if errors.As(err, &pe) {
				w.cur.Abort()
				w.trimAcked()
				w.cur, cause = nil, err
				continue
			}
			return err
		}
		return nil
	}
}

// replay sends the unacknowledged bytes on the newly opened pipeline; a
// failure is the caller's to recover from.
func (w *Writer) replay() error {
	if len(w.unacked) == 0 {
		return nil
	}
	_, err := w.cur.Write(w.unacked)
	w.trimAcked()
	return err
}

// finishBlock sends the current block's last packet and waits until every
// datanode of the pipeline has finalized its replica.
func (w *Writer) finishBlock() error {
	for {
		n, err := w.cur.Close()
		if err == nil {
			w.prev, w.prevID = n, w.curLB.Block.Id
			w.cur, w.curLB, w.unacked = nil, nil, w.unacked[:0]
			return nil
		}
		w.trimAcked()
		if err := w.recoverPipeline(err); err != nil {
			return err
		}
	}
}

// Hflush is HDFS's hflush: it returns once every byte written so far has
// been sent down the pipeline (a partial packet too) and acknowledged by
// every datanode of it, which have written it out of their buffers (not
// fsynced: a datanode process that dies keeps it, a machine that crashes
// may not). A datanode that fails meanwhile is recovered from as for a
// write (the pipeline goes on without it). Then the namenode records the
// last block's length (ClientProtocol.Fsync), when it grew since the last
// Hflush: from there on readers that open the file read up to here, and
// if the writer dies, lease recovery keeps at least these bytes (its block
// recovery keeps what every surviving replica holds, at least the
// recorded length). ctx bounds the wait and the namenode call; a failure
// of the pipeline that cannot be recovered is sticky, as for Write.
func (w *Writer) Hflush(ctx context.Context) error {
	if w.closed {
		return fmt.Errorf("client: hflush %s: writer closed", w.path)
	}
	if w.err != nil {
		return w.err
	}
	if err := w.openReopened(); err != nil {
		return err
	}
	var id uint64
	var length int64
	switch {
	case w.cur != nil:
		for {
			_, err := w.cur.Flush(ctx)
			if err == nil {
				break
			}
			var pe *datanode.PipelineError
			if ctx.Err() != nil || !errors.As(err, &pe) {
				if ctx.Err() == nil {
					w.err = fmt.Errorf("client: hflush %s: %w", w.path, err)
					return w.err
				}
				return fmt.Errorf("client: hflush %s: %w", w.path, err)
			}
			w.trimAcked()
			if err := w.recoverPipeline(err); err != nil {
				w.err = err
				return err
			}
		}
		w.trimAcked()
		id, length = w.curLB.Block.Id, w.curLen
	case w.prevID != 0:
		// At a block boundary: the finished block's replicas are
		// finalized, but the namenode learns its length only with the
		// next AddBlock or Complete.
		id, length = w.prevID, w.prev
	}
	if id == 0 || (id == w.syncedID && length <= w.synced) {
		return nil
	}
	_, err := call(ctx, w.c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.FsyncResponse, error) {
		return nn.Fsync(ctx, &dfspb.FsyncRequest{Path: w.path, FileId: w.status.FileID, ClientName: w.c.cfg.ClientName, Block: &dfspb.BlockRef{Id: id},
			LastBlockLength: length, User: w.c.cfg.User})
	})
	if err != nil {
		return fmt.Errorf("client: hflush %s: record the length of blk_%d: %w", w.path, id, err)
	}
	w.syncedID, w.synced = id, length
	return nil
}

// addrs lists a located block's datanode data addresses, in order.
func addrs(lb *dfspb.LocatedBlock) []string {
	out := make([]string, 0, len(lb.Locations))
	for _, l := range lb.Locations {
		out = append(out, l.DataAddr)
	}
	return out
}

// blockOf is a located block's datanode.Block.
func blockOf(lb *dfspb.LocatedBlock) datanode.Block {
	return datanode.Block{ID: lb.Block.Id, GenStamp: lb.Block.Genstamp}
}

// openReopened opens the pipeline of an appended file's reopened last
// block when nothing opened it yet: its replicas must take the new
// generation stamp the namenode gave it even when nothing is written
// (Hflush, Close). A failure is sticky.
func (w *Writer) openReopened() error {
	if w.cur != nil || w.reopened == nil {
		return nil
	}
	if err := w.openBlock(); err != nil {
		w.err = err
		return err
	}
	return nil
}

// Abort stops writing without completing the file: the current block's
// pipeline is torn down and the lease is no longer renewed, so the file
// stays open (under construction, its finished blocks readable) until
// lease recovery closes it, or until the caller deletes it. Close after
// Abort returns the abort's error.
func (w *Writer) Abort() {
	if w.closed {
		return
	}
	w.closed = true
	if w.cur != nil {
		w.cur.Abort()
		w.cur = nil
	}
	if w.err == nil {
		w.err = fmt.Errorf("client: write %s: aborted", w.path)
	}
	w.c.writerClosed()
}

// Close sends the last block and completes the file, retrying Complete
// (with backoff, up to Config.CompleteTimeout) while the namenode waits for
// the datanodes to report the replicas.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	defer w.c.writerClosed()
	if w.err != nil {
		return w.err
	}
	if err := w.openReopened(); err != nil {
		return err
	}
	if w.cur != nil {
		if err := w.finishBlock(); err != nil {
			w.err = err
			return err
		}
	}
	deadline := time.Now().Add(w.c.cfg.CompleteTimeout)
	delay := 20 * time.Millisecond
	for {
		resp, err := call(w.ctx, w.c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.CompleteResponse, error) {
			return nn.Complete(ctx, &dfspb.CompleteRequest{Path: w.path, FileId: w.status.FileID, ClientName: w.c.cfg.ClientName,
				LastLength: w.prev, User: w.c.cfg.User, Last: &dfspb.BlockRef{Id: w.prevID}})
		})
		if err != nil {
			w.err = fmt.Errorf("client: complete %s: %w", w.path, err)
			return w.err
		}
		if resp.Completed {
			return nil
		}
		if time.Now().After(deadline) {
			w.err = hdfs.ErrIO.Errorf("Unable to close file %s because the last block does not have enough number of replicas", w.path)
			return w.err
		}
		select {
		case <-w.ctx.Done():
			w.err = w.ctx.Err()
			return w.err
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}
