package datanode

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/kura-dev/kura/dfs/blockstore"
	"github.com/kura-dev/kura/proto/dfspb"
)

// PacketSize is the data carried by one write or read packet (HDFS's
// dfs.client-write-packet-size): 128 chunks of 512 bytes.
const PacketSize = 64 << 10

// maxInFlight bounds the packets a writer sends ahead of their acks
// (HDFS's 80-packet data queue).
const maxInFlight = 64

// ErrCorrupt is blockstore.ErrCorrupt: a replica (or the packets carrying
// it) does not match its checksums. ReadBlock errors wrap it; read another
// replica.
var ErrCorrupt = blockstore.ErrCorrupt

// Block names a block at a generation stamp.
type Block struct {
	// ID is the block id.
	ID uint64
	// GenStamp is the generation stamp.
	GenStamp uint64
}

// String formats the block as HDFS does: blk_<id>_<genstamp>.
func (b Block) String() string { return fmt.Sprintf("blk_%d_%d", b.ID, b.GenStamp) }

func (b Block) ref() *dfspb.BlockRef { return &dfspb.BlockRef{Id: b.ID, Genstamp: b.GenStamp} }

// PipelineError is a write pipeline that failed at one of its nodes: the
// client rebuilds the pipeline without Node (pipeline recovery).
type PipelineError struct {
	// Block is the block being written.
	Block Block
	// Index is the failed node's position in the pipeline, Node its address.
	Index int
	Node  string
	// Status is what the node reported (dfspb.AckStatus_ERROR when it
	// could not be reached).
	Status dfspb.AckStatus
	// Err says what failed; for a checksum failure it wraps
	// blockstore.ErrPacketChecksum.
	Err error
}

// Error names the block, the node and the cause.
func (e *PipelineError) Error() string {
	return fmt.Sprintf("datanode: write %s: pipeline node %d (%s) failed: %v", e.Block, e.Index, e.Node, e.Err)
}

// Unwrap returns the cause.
func (e *PipelineError) Unwrap() error { return e.Err }

// Client talks DataTransfer to datanodes, keeping one gRPC connection per
// address. It is safe for concurrent use.
type Client struct {
	name string
	opts []grpc.DialOption

	// corrupt, when set (tests), may damage a packet before it is sent.
	corrupt func(*dfspb.Packet)

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

// NewClient returns a Client that names itself name in the requests it
// makes (for the datanodes' logs). Without dial options it connects
// without TLS.
func NewClient(name string, opts ...grpc.DialOption) *Client {
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	return &Client{name: name, opts: opts, conns: map[string]*grpc.ClientConn{}}
}

// Close closes the connections.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var first error
	for addr, cc := range c.conns {
		if err := cc.Close(); err != nil && first == nil {
			first = fmt.Errorf("datanode: close connection to %s: %w", addr, err)
		}
		delete(c.conns, addr)
	}
	return first
}

func (c *Client) conn(addr string) (dfspb.DataTransferClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("datanode: connect to %s: client closed", addr)
	}
	cc := c.conns[addr]
	if cc == nil {
		var err error
		cc, err = grpc.NewClient(addr, c.opts...)
		if err != nil {
			return nil, fmt.Errorf("datanode: connect to %s: %w", addr, err)
		}
		c.conns[addr] = cc
	}
	return dfspb.NewDataTransferClient(cc), nil
}

// writeStream is an open pipeline to its first node, after the setup ack.
type writeStream = grpc.BidiStreamingClient[dfspb.WriteBlockRequest, dfspb.PipelineAck]

// openWrite opens a WriteBlock stream to addr, sends h and waits for the
// setup ack. On a failure it returns the ack that reported it (nil when
// addr itself could not be reached) and an error.
func (c *Client) openWrite(ctx context.Context, addr string, h *dfspb.WriteHeader) (writeStream, *dfspb.PipelineAck, error) {
	dt, err := c.conn(addr)
	if err != nil {
		return nil, nil, err
	}
	stream, err := dt.WriteBlock(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("open write stream to %s: %w", addr, err)
	}
	if err := stream.Send(&dfspb.WriteBlockRequest{Msg: &dfspb.WriteBlockRequest_Header{Header: h}}); err != nil {
		_, rerr := stream.Recv()
		return nil, nil, fmt.Errorf("send header to %s: %w", addr, errors.Join(err, rerr))
	}
	ack, err := stream.Recv()
	if err != nil {
		return nil, nil, fmt.Errorf("setup of %s: %w", addr, err)
	}
	if ack.Seqno != -1 {
		return nil, nil, fmt.Errorf("setup of %s: got ack %d, want the setup ack -1", addr, ack.Seqno)
	}
	if failed(ack) >= 0 {
		return nil, ack, errors.New(ack.Message)
	}
	return stream, ack, nil
}

// failed returns the index in ack.Replies of the first node that did not
// succeed, or -1.
func failed(ack *dfspb.PipelineAck) int {
	for i, s := range ack.Replies {
		if s != dfspb.AckStatus_SUCCESS {
			return i
		}
	}
	if len(ack.Replies) == 0 {
		return 0
	}
	return -1
}

// ackError turns a failed ack of pipeline into a *PipelineError.
func ackError(b Block, pipeline []string, ack *dfspb.PipelineAck) *PipelineError {
	i := failed(ack)
	e := &PipelineError{Block: b, Index: i, Status: dfspb.AckStatus_ERROR, Err: errors.New(ack.Message)}
	if i < len(ack.Replies) {
		e.Status = ack.Replies[i]
	}
	if i < len(pipeline) {
		e.Node = pipeline[i]
	}
	if e.Status == dfspb.AckStatus_ERROR_CHECKSUM {
		e.Err = fmt.Errorf("%w: %s", blockstore.ErrPacketChecksum, ack.Message)
	}
	return e
}

// WriteBlock writes block b, read from r to its end, through pipeline
// (datanode data addresses, the first one receiving from this client and
// forwarding down the rest) as packets of PacketSize bytes with a CRC32C
// per 512-byte chunk, and returns the block's length once every node has
// acknowledged the last packet (and so finalized its replica). A node that
// fails is reported as a *PipelineError naming it; the replicas are then
// left unfinalized (being written) on the nodes that had them.
func (c *Client) WriteBlock(ctx context.Context, pipeline []string, b Block, r io.Reader) (int64, error) {
	return c.writeBlock(ctx, pipeline, b, false, 0, r)
}

// AppendBlock appends to existing replicas of block b through pipeline
// (their datanodes, in pipeline order): each datanode cuts its replica
// back to at bytes, takes b's generation stamp (newer than the replica's,
// from the namenode's Append or UpdatePipeline) and adds what r holds.
// It returns the block's new length; failures are as WriteBlock's. Being
// idempotent on the replicas' first at bytes, a failed append can be
// retried on the surviving replicas under a newer generation stamp.
func (c *Client) AppendBlock(ctx context.Context, pipeline []string, b Block, at int64, r io.Reader) (int64, error) {
	if at < 0 {
		return 0, fmt.Errorf("datanode: append to %s: %w: offset %d", b, blockstore.ErrInvalid, at)
	}
	return c.writeBlock(ctx, pipeline, b, true, at, r)
}

// writeBlock is WriteBlock and AppendBlock: packets start at offset at.
func (c *Client) writeBlock(ctx context.Context, pipeline []string, b Block, appending bool, at int64, r io.Reader) (int64, error) {
	w, err := c.OpenBlock(ctx, pipeline, b, appending, at)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, PacketSize)
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				w.Abort()
				return 0, err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			w.Abort()
			return 0, fmt.Errorf("datanode: write %s: read the data at offset %d: %w", b, w.off+int64(len(w.pending)), rerr)
		}
	}
	return w.Close()
}

// BlockWriter streams one block through a pipeline (see OpenBlock). It is
// not safe for concurrent use.
type BlockWriter struct {
	c        *Client
	b        Block
	pipeline []string
	stream   writeStream
	cancel   context.CancelFunc

	queue   chan sentPacket // packets sent, awaiting their acks
	ackDone chan struct{}   // closed when the ack reader stops
	ackErr  error           // the ack reader's failure; read after ackDone
	acked   atomic.Int64    // replica length every node acknowledged
	ackSig  chan struct{}   // poked (without blocking) after each ack

	tab     *crc32.Table
	pending []byte // data not yet sent (less than a packet)
	crcs    []byte
	off     int64 // block offset of pending[0]
	seqno   int64
	flushed int64 // block offset up to which a flush packet was sent
	err     error // sticky
	closed  bool
}

// sentPacket is a packet awaiting its ack.
type sentPacket struct {
	seqno int64
	last  bool
}

// OpenBlock opens a pipeline for block b, to stream it with Write and
// Close (WriteBlock and AppendBlock in pieces): a new replica, or with
// appending the existing replicas cut back to at bytes (see AppendBlock).
// Acked tells at any time how much every node has acknowledged, which is
// where a writer resumes after a failure (on the surviving nodes, under a
// newer generation stamp). Failures are *PipelineErrors naming the node.
func (c *Client) OpenBlock(ctx context.Context, pipeline []string, b Block, appending bool, at int64) (*BlockWriter, error) {
	if len(pipeline) == 0 {
		return nil, fmt.Errorf("datanode: write %s: empty pipeline", b)
	}
	if at < 0 || (!appending && at != 0) {
		return nil, fmt.Errorf("datanode: write %s: %w: start offset %d", b, blockstore.ErrInvalid, at)
	}
	ctx, cancel := context.WithCancel(ctx)
	h := &dfspb.WriteHeader{Block: b.ref(), Targets: pipeline[1:], ClientName: c.name, BytesPerChecksum: blockstore.DefaultBytesPerChecksum,
		Append: appending, AppendAt: at}
	stream, ack, err := c.openWrite(ctx, pipeline[0], h)
	if err != nil {
		cancel()
		if ack != nil {
			return nil, ackError(b, pipeline, ack)
		}
		return nil, &PipelineError{Block: b, Index: 0, Node: pipeline[0], Status: dfspb.AckStatus_ERROR, Err: err}
	}
	w := &BlockWriter{
		c: c, b: b, pipeline: pipeline, stream: stream, cancel: cancel,
		queue: make(chan sentPacket, maxInFlight), ackDone: make(chan struct{}), ackSig: make(chan struct{}, 1), flushed: at,
		tab: crc32.MakeTable(crc32.Castagnoli), pending: make([]byte, 0, PacketSize),
		crcs: make([]byte, 0, 4*(PacketSize/blockstore.DefaultBytesPerChecksum)), off: at,
	}
	w.acked.Store(at)
	go w.readAcks()
	return w, nil
}

// readAcks reads the acks, in packet order, until the last packet's or a
// failure.
func (w *BlockWriter) readAcks() {
	defer close(w.ackDone)
	for s := range w.queue {
		ack, err := w.stream.Recv()
		if err != nil {
			w.ackErr = &PipelineError{Block: w.b, Index: 0, Node: w.pipeline[0], Status: dfspb.AckStatus_ERROR,
				Err: fmt.Errorf("waiting for the ack of packet %d: %w", s.seqno, err)}
			return
		}
		if failed(ack) >= 0 {
			w.ackErr = ackError(w.b, w.pipeline, ack)
			return
		}
		if ack.Seqno != s.seqno || len(ack.Replies) != len(w.pipeline) {
			w.ackErr = &PipelineError{Block: w.b, Index: 0, Node: w.pipeline[0], Status: dfspb.AckStatus_ERROR,
				Err: fmt.Errorf("got ack %d with %d replies, want ack %d with %d", ack.Seqno, len(ack.Replies), s.seqno, len(w.pipeline))}
			return
		}
		w.acked.Store(ack.Length)
		select {
		case w.ackSig <- struct{}{}:
		default:
		}
	}
}

// Acked is the replica length every node of the pipeline has
// acknowledged: data up to it is on all of them.
func (w *BlockWriter) Acked() int64 { return w.acked.Load() }

// Write queues p for the pipeline, sending each full packet; it blocks
// while maxInFlight packets await their acks.
func (w *BlockWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, fmt.Errorf("datanode: write %s: writer closed", w.b)
	}
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), PacketSize-len(w.pending))
		w.pending = append(w.pending, p[:k]...)
		p = p[k:]
		if len(w.pending) == PacketSize {
			if err := w.send(false, false); err != nil {
				return n - len(p) - k, err
			}
		}
	}
	return n, nil
}

// send sends the pending data as one packet, marked for the datanodes to
// flush when flush is set.
func (w *BlockWriter) send(last, flush bool) error {
	data := w.pending
	w.crcs = w.crcs[:0]
	// Chunks follow the block's chunk boundaries: after an append at an
	// unaligned offset the first one is the rest of a chunk.
	for p, pos := data, w.off; len(p) > 0; {
		n := min(len(p), blockstore.DefaultBytesPerChecksum-int(pos%blockstore.DefaultBytesPerChecksum))
		pos += int64(n)
		w.crcs = binary.BigEndian.AppendUint32(w.crcs, crc32.Checksum(p[:n], w.tab))
		p = p[n:]
	}
	pkt := &dfspb.Packet{Seqno: w.seqno, Offset: w.off, Data: data, Crcs: w.crcs, Last: last, Flush: flush}
	if w.c.corrupt != nil {
		w.c.corrupt(pkt)
	}
	select {
	case w.queue <- sentPacket{w.seqno, last}:
	case <-w.ackDone:
		w.err = w.ackErr
		return w.err
	}
	if err := w.stream.Send(&dfspb.WriteBlockRequest{Msg: &dfspb.WriteBlockRequest_Packet{Packet: pkt}}); err != nil {
		// The stream ended: the ack reader has the reason.
		close(w.queue)
		w.closed = true
		<-w.ackDone
		if w.ackErr != nil {
			w.err = w.ackErr
		} else {
			w.err = &PipelineError{Block: w.b, Index: 0, Node: w.pipeline[0], Status: dfspb.AckStatus_ERROR, Err: fmt.Errorf("send packet %d: %w", w.seqno, err)}
		}
		return w.err
	}
	w.seqno++
	w.off += int64(len(data))
	w.pending = w.pending[:0]
	if flush {
		w.flushed = w.off
	}
	return nil
}

// Flush is the pipeline's part of HDFS's hflush: it sends what is pending
// (less than a packet) at once, in a packet that asks every datanode to
// write what it received out of its buffers (so that readers of the
// replica see it), and waits until every node has acknowledged every byte
// written so far. It returns that length. A failure is a *PipelineError,
// as for Write; ctx bounds the wait.
func (w *BlockWriter) Flush(ctx context.Context) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, fmt.Errorf("datanode: flush %s: writer closed", w.b)
	}
	if len(w.pending) > 0 || w.off > w.flushed {
		if err := w.send(false, true); err != nil {
			return 0, err
		}
	}
	for {
		if n := w.acked.Load(); n >= w.off {
			return n, nil
		}
		select {
		case <-w.ackSig:
		case <-w.ackDone:
			if n := w.acked.Load(); n >= w.off {
				return n, nil
			}
			w.err = w.ackErr
			if w.err == nil {
				w.err = &PipelineError{Block: w.b, Index: 0, Node: w.pipeline[0], Status: dfspb.AckStatus_ERROR,
					Err: fmt.Errorf("the pipeline ended with %d of %d bytes acknowledged", w.acked.Load(), w.off)}
			}
			return 0, w.err
		case <-ctx.Done():
			return 0, fmt.Errorf("datanode: flush %s: %w", w.b, ctx.Err())
		}
	}
}

// Close sends what is pending as the last packet, waits until every node
// acknowledged it (and so finalized its replica) and returns the block's
// length.
func (w *BlockWriter) Close() (int64, error) {
	defer w.cancel()
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, fmt.Errorf("datanode: write %s: writer closed", w.b)
	}
	if err := w.send(true, false); err != nil {
		return 0, err
	}
	w.closed = true
	close(w.queue)
	<-w.ackDone
	if w.ackErr != nil {
		w.err = w.ackErr
		return 0, w.err
	}
	w.stream.CloseSend()
	if n := w.acked.Load(); n != w.off {
		w.err = fmt.Errorf("datanode: write %s: pipeline acknowledged %d bytes, sent %d", w.b, n, w.off)
		return 0, w.err
	}
	return w.off, nil
}

// Abort ends the write without finishing the block: the replicas stay
// being written on the nodes, for a later append to resume or a block
// report to clean up.
func (w *BlockWriter) Abort() {
	w.cancel()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	<-w.ackDone
	if w.err == nil {
		w.err = fmt.Errorf("datanode: write %s: aborted", w.b)
	}
}

// ReadBlock copies length bytes of block b from offset (length 0: to the
// end of the replica) from the datanode at addr to w, verifying each
// packet's CRCs, and returns the bytes written to w. A checksum mismatch,
// found by the datanode on its disk or by this client in what arrived, is
// an error wrapping ErrCorrupt; the bytes before it were written to w, so a
// caller can go on from offset+n at another replica.
func (c *Client) ReadBlock(ctx context.Context, addr string, b Block, offset, length int64, w io.Writer) (int64, error) {
	wrap := func(err error) error {
		return fmt.Errorf("datanode: read %s from %s: %w", b, addr, err)
	}
	if offset < 0 || length < 0 {
		return 0, wrap(fmt.Errorf("%w: offset %d, length %d", blockstore.ErrInvalid, offset, length))
	}
	dt, err := c.conn(addr)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := dt.ReadBlock(ctx, &dfspb.ReadBlockRequest{Block: b.ref(), Offset: offset, Length: length, ClientName: c.name})
	if err != nil {
		return 0, wrap(fromStatus(err))
	}
	first, err := stream.Recv()
	if err != nil {
		return 0, wrap(fromStatus(err))
	}
	h := first.GetHeader()
	if h == nil {
		return 0, wrap(errors.New("the first message is not a header"))
	}
	ck := blockstore.Checksum{Type: blockstore.ChecksumType(h.ChecksumType), BytesPerChecksum: int(h.BytesPerChecksum)}
	if err := ck.Validate(); err != nil {
		return 0, wrap(err)
	}
	end := h.Length
	if length > 0 {
		end = min(end, offset+length)
	}
	if offset > h.Length {
		return 0, wrap(fmt.Errorf("%w: offset %d is past the replica's %d bytes", blockstore.ErrInvalid, offset, h.Length))
	}
	pos := offset - offset%int64(ck.BytesPerChecksum) // next offset expected
	var written int64
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return written, wrap(fromStatus(err))
		}
		p := resp.GetPacket()
		if p == nil || p.Offset != pos {
			return written, wrap(fmt.Errorf("got a packet at offset %d, want one at %d", p.GetOffset(), pos))
		}
		if err := ck.VerifyPacket(p.Offset, p.Data, p.Crcs); err != nil {
			var ce *blockstore.ChecksumError
			if errors.As(err, &ce) {
				ce.BlockID = b.ID
				return written, wrap(fmt.Errorf("%w: in transfer: %v", ErrCorrupt, ce))
			}
			return written, wrap(err)
		}
		pos += int64(len(p.Data))
		lo := max(offset+written, p.Offset) - p.Offset
		hi := min(end, pos) - p.Offset
		if hi > lo {
			n, err := w.Write(p.Data[lo:hi])
			written += int64(n)
			if err != nil {
				return written, wrap(err)
			}
		}
	}
	if want := end - offset; written != want {
		return written, wrap(fmt.Errorf("%w: got %d bytes, want %d", io.ErrUnexpectedEOF, written, want))
	}
	return written, nil
}

// ReplicaInfo is a replica's state as block recovery's first step found it.
type ReplicaInfo struct {
	// Length is the replica's length: every byte it received.
	Length int64
	// GenStamp is the replica's generation stamp.
	GenStamp uint64
	// Finalized tells a finalized replica from one being written.
	Finalized bool
}

// InitReplicaRecovery asks the datanode at addr for its replica of block b
// (b.GenStamp: the stamp the namenode recorded; 0 when not known) as the
// first step of the recovery that gives it the generation stamp
// recoveryID: the datanode stops any pipeline still writing the replica
// and reports it. A replica older than b, or one at or past recoveryID,
// is refused.
func (c *Client) InitReplicaRecovery(ctx context.Context, addr string, b Block, recoveryID uint64) (ReplicaInfo, error) {
	dt, err := c.conn(addr)
	if err != nil {
		return ReplicaInfo{}, err
	}
	resp, err := dt.InitReplicaRecovery(ctx, &dfspb.InitReplicaRecoveryRequest{Block: b.ref(), RecoveryId: recoveryID})
	if err != nil {
		return ReplicaInfo{}, fmt.Errorf("datanode: init recovery of %s on %s: %w", b, addr, fromStatus(err))
	}
	return ReplicaInfo{Length: resp.Length, GenStamp: resp.Genstamp, Finalized: resp.State == dfspb.ReplicaState_FINALIZED}, nil
}

// UpdateReplicaUnderRecovery has the datanode at addr cut its replica of
// block b back to newLength, stamp it recoveryID and finalize it (block
// recovery's second step). It returns the finalized replica's length.
func (c *Client) UpdateReplicaUnderRecovery(ctx context.Context, addr string, b Block, recoveryID uint64, newLength int64) (int64, error) {
	dt, err := c.conn(addr)
	if err != nil {
		return 0, err
	}
	resp, err := dt.UpdateReplicaUnderRecovery(ctx, &dfspb.UpdateReplicaUnderRecoveryRequest{Block: b.ref(), RecoveryId: recoveryID, NewLength: newLength})
	if err != nil {
		return 0, fmt.Errorf("datanode: update %s under recovery %d on %s: %w", b, recoveryID, addr, fromStatus(err))
	}
	return resp.Length, nil
}

// WriteBlock writes a block through pipeline with a Client of its own; see
// Client.WriteBlock.
func WriteBlock(ctx context.Context, pipeline []string, b Block, r io.Reader) (int64, error) {
	c := NewClient("kura")
	defer c.Close()
	return c.WriteBlock(ctx, pipeline, b, r)
}

// ReadBlock reads a block from the datanode at addr with a Client of its
// own; see Client.ReadBlock.
func ReadBlock(ctx context.Context, addr string, b Block, offset, length int64, w io.Writer) (int64, error) {
	c := NewClient("kura")
	defer c.Close()
	return c.ReadBlock(ctx, addr, b, offset, length, w)
}

// toStatus maps a blockstore error to a gRPC status error.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, blockstore.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, blockstore.ErrExists):
		code = codes.AlreadyExists
	case errors.Is(err, blockstore.ErrBusy), errors.Is(err, blockstore.ErrStaleRecovery):
		code = codes.FailedPrecondition
	case errors.Is(err, blockstore.ErrCorrupt), errors.Is(err, blockstore.ErrPacketChecksum):
		code = codes.DataLoss
	case errors.Is(err, blockstore.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, blockstore.ErrBlockFull):
		code = codes.OutOfRange
	case errors.Is(err, blockstore.ErrClosed):
		code = codes.Unavailable
	}
	return status.Error(code, err.Error())
}

// fromStatus maps a gRPC status error back to one that wraps the
// blockstore error of its code.
func fromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var base error
	switch st.Code() {
	case codes.NotFound:
		base = blockstore.ErrNotFound
	case codes.AlreadyExists:
		base = blockstore.ErrExists
	case codes.DataLoss:
		base = blockstore.ErrCorrupt
	case codes.InvalidArgument:
		base = blockstore.ErrInvalid
	case codes.Canceled:
		base = context.Canceled
	case codes.DeadlineExceeded:
		base = context.DeadlineExceeded
	default:
		return err
	}
	return &remoteError{base: base, msg: st.Message()}
}

// remoteError is an error a datanode returned: its message as the
// datanode wrote it, wrapping the local error of its gRPC code.
type remoteError struct {
	base error
	msg  string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.base }
