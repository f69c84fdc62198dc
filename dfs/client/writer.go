package client

import (
	"bytes"
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
// file: until then it is under construction and readers see only its
// finished blocks.
type Writer struct {
	c      *Client
	ctx    context.Context
	path   string
	status *FileStatus
	buf    []byte // the current block's bytes (after base)
	prev   int64  // length of the block written before, 0 before the first
	// prevID is the block written before (0 before the first): named in
	// AddBlock and Complete so that their retries are recognized.
	prevID uint64
	closed bool
	err    error // sticky

	// reopened is the partial last block Append reopened, nil otherwise;
	// its replicas hold base bytes and buf goes after them.
	reopened *dfspb.LocatedBlock
	base     int64
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
	w := &Writer{c: c, ctx: ctx, path: path, status: st, prev: resp.LastBlockLength, prevID: resp.LastBlockId, reopened: resp.LastBlock}
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

// Write buffers p, sending each block once full.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, fmt.Errorf("client: write %s: writer closed", w.path)
	}
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		room := w.status.BlockSize - w.base
		k := min(int64(len(p)), room-int64(len(w.buf)))
		w.buf = append(w.buf, p[:k]...)
		p, n = p[k:], n+int(k)
		if int64(len(w.buf)) == room {
			if err := w.flushBlock(); err != nil {
				w.err = err
				return n, err
			}
		}
	}
	return n, nil
}

// flushBlock sends the buffered block through a pipeline, recovering from
// failed datanodes by rewriting the block on a new pipeline without them.
func (w *Writer) flushBlock() error {
	if w.reopened != nil {
		return w.flushAppend()
	}
	var exclude []string
	attempts := max(w.status.Replication, 1) + 2
	var lastErr error
	for range attempts {
		resp, err := call(w.ctx, w.c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.AddBlockResponse, error) {
			return nn.AddBlock(ctx, &dfspb.AddBlockRequest{
				Path: w.path, ClientName: w.c.cfg.ClientName, PreviousLength: w.prev, Exclude: exclude, User: w.c.cfg.User,
				Previous: &dfspb.BlockRef{Id: w.prevID},
			})
		})
		if err != nil {
			if lastErr != nil {
				return fmt.Errorf("client: write %s: %w (after %v)", w.path, err, lastErr)
			}
			return fmt.Errorf("client: write %s: %w", w.path, err)
		}
		lb := resp.Block
		pipeline := make([]string, 0, len(lb.Locations))
		for _, l := range lb.Locations {
			pipeline = append(pipeline, l.DataAddr)
		}
		b := datanode.Block{ID: lb.Block.Id, GenStamp: lb.Block.Genstamp}
		_, err = w.c.sh.dn.WriteBlock(w.ctx, pipeline, b, bytes.NewReader(w.buf))
		if err == nil {
			w.prev, w.prevID = int64(len(w.buf)), lb.Block.Id
			w.buf = w.buf[:0]
			return nil
		}
		lastErr = err
		var pe *datanode.PipelineError
		if !errors.As(err, &pe) || w.ctx.Err() != nil {
			return fmt.Errorf("client: write %s: %w", w.path, err)
		}
		exclude = append(exclude, pe.Node)
		for _, l := range lb.Locations {
			if l.DataAddr == pe.Node {
				exclude = append(exclude, l.StorageId)
			}
		}
		// Drop the failed block; the next AddBlock allocates a new one.
		_, err = call(w.ctx, w.c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.AbandonBlockResponse, error) {
			return nn.AbandonBlock(ctx, &dfspb.AbandonBlockRequest{Path: w.path, ClientName: w.c.cfg.ClientName, Block: lb.Block, User: w.c.cfg.User})
		})
		if err != nil {
			return fmt.Errorf("client: write %s: abandon %s after %v: %w", w.path, b, lastErr, err)
		}
	}
	return fmt.Errorf("client: write %s: giving up after %d pipelines: %w", w.path, attempts, lastErr)
}

// flushAppend appends the buffer to the reopened block's replicas. When a
// datanode fails, the namenode re-stamps the block for the others
// (UpdatePipeline) and the append starts again on them from the replicas'
// old length: the datanodes cut back whatever the failed attempt left.
func (w *Writer) flushAppend() error {
	lb := w.reopened
	var lastErr error
	for attempt := 0; ; attempt++ {
		pipeline := make([]string, 0, len(lb.Locations))
		for _, l := range lb.Locations {
			pipeline = append(pipeline, l.DataAddr)
		}
		if len(pipeline) == 0 {
			return fmt.Errorf("client: append to %s: no live replica of its last block (blk_%d)", w.path, lb.Block.GetId())
		}
		b := datanode.Block{ID: lb.Block.Id, GenStamp: lb.Block.Genstamp}
		n, err := w.c.sh.dn.AppendBlock(w.ctx, pipeline, b, w.base, bytes.NewReader(w.buf))
		if err == nil {
			w.prev, w.prevID = n, lb.Block.Id
			w.buf, w.base, w.reopened = w.buf[:0], 0, nil
			return nil
		}
		lastErr = err
		var pe *datanode.PipelineError
		if !errors.As(err, &pe) || w.ctx.Err() != nil || attempt >= len(lb.Locations) {
			return fmt.Errorf("client: append to %s: %w", w.path, err)
		}
		exclude := []string{pe.Node}
		for _, l := range lb.Locations {
			if l.DataAddr == pe.Node {
				exclude = append(exclude, l.StorageId)
			}
		}
		resp, err := call(w.ctx, w.c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.UpdatePipelineResponse, error) {
			return nn.UpdatePipeline(ctx, &dfspb.UpdatePipelineRequest{Path: w.path, ClientName: w.c.cfg.ClientName, Block: lb.Block, Exclude: exclude, User: w.c.cfg.User})
		})
		if err != nil {
			return fmt.Errorf("client: append to %s: update the pipeline after %v: %w", w.path, lastErr, err)
		}
		lb = resp.Block
		w.reopened = lb
	}
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
	// A reopened block is appended to even when nothing was written: its
	// replicas must take the new generation stamp the namenode gave it.
	if len(w.buf) > 0 || w.reopened != nil {
		if err := w.flushBlock(); err != nil {
			w.err = err
			return err
		}
	}
	deadline := time.Now().Add(w.c.cfg.CompleteTimeout)
	delay := 20 * time.Millisecond
	for {
		resp, err := call(w.ctx, w.c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.CompleteResponse, error) {
			return nn.Complete(ctx, &dfspb.CompleteRequest{Path: w.path, ClientName: w.c.cfg.ClientName, LastLength: w.prev, User: w.c.cfg.User,
				Last: &dfspb.BlockRef{Id: w.prevID}})
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
