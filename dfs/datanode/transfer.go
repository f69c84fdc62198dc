package datanode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kura-dev/kura/dfs/blockstore"
	"github.com/kura-dev/kura/proto/dfspb"
)

// appendBusyWait bounds how long an append pipeline's setup waits for the
// previous writer of its replica to go.
const appendBusyWait = 5 * time.Second

// transfer serves DataTransfer for a Datanode.
type transfer struct {
	dfspb.UnimplementedDataTransferServer
	d *Datanode
}

// received is the outcome of one packet on this node, passed from the
// receiver to the responder.
type received struct {
	seqno  int64
	status dfspb.AckStatus
	msg    string
	length int64
	last   bool
}

// WriteBlock receives a replica, writes it to the store and forwards it
// downstream (see the package doc for the ack rules).
func (t *transfer) WriteBlock(stream grpc.BidiStreamingServer[dfspb.WriteBlockRequest, dfspb.PipelineAck]) error {
	d := t.d
	d.xceivers.Add(1)
	defer d.xceivers.Add(-1)
	// ctx ends with the stream, or earlier when block recovery fences the
	// write off (see fence).
	ctx, fence := context.WithCancel(stream.Context())
	defer fence()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil || h.Block == nil {
		return status.Error(codes.InvalidArgument, "datanode: write: the first message is not a header with a block")
	}
	b := Block{ID: h.Block.Id, GenStamp: h.Block.Genstamp}
	fail := func(replies []dfspb.AckStatus, code codes.Code, msg string) error {
		stream.Send(&dfspb.PipelineAck{Seqno: -1, Replies: replies, Message: msg})
		return status.Error(code, msg)
	}
	self := []dfspb.AckStatus{dfspb.AckStatus_ERROR}
	if bpc := h.BytesPerChecksum; bpc != 0 && int(bpc) != d.bpc {
		return fail(self, codes.InvalidArgument, fmt.Sprintf("datanode %s: write %s: %d bytes per checksum asked, this datanode writes %d", d.addr, b, bpc, d.bpc))
	}
	var w *blockstore.Writer
	if h.Append {
		w, err = d.appendAt(ctx, b, h.AppendAt)
	} else {
		w, err = d.store.Create(ctx, b.ID, b.GenStamp)
	}
	if err != nil {
		return fail(self, status.Code(toStatus(err)), fmt.Sprintf("datanode %s: %v", d.addr, err))
	}
	// The write is registered until its replica is let go (finalized,
	// closed or dropped), so that block recovery can stop it.
	aw := d.startWrite(b.ID, fence)
	d.log.Debug("receiving block", "block", b, "client", h.ClientName, "targets", h.Targets)

	var down writeStream
	dctx, dcancel := context.WithCancel(ctx)
	defer dcancel()
	replies := []dfspb.AckStatus{dfspb.AckStatus_SUCCESS}
	if len(h.Targets) > 0 {
		dh := &dfspb.WriteHeader{Block: h.Block, Targets: h.Targets[1:], ClientName: h.ClientName, BytesPerChecksum: h.BytesPerChecksum,
			Append: h.Append, AppendAt: h.AppendAt}
		var ack *dfspb.PipelineAck
		down, ack, err = d.client.openWrite(dctx, h.Targets[0], dh)
		if err != nil {
			drop(w, h.Append)
			d.endWrite(b.ID, aw)
			if ack != nil {
				return fail(append(replies, ack.Replies...), codes.Unavailable, ack.Message)
			}
			return fail(append(replies, dfspb.AckStatus_ERROR), codes.Unavailable,
				fmt.Sprintf("datanode %s: write %s: downstream %s: %v", d.addr, b, h.Targets[0], err))
		}
		replies = append(replies, ack.Replies...)
	}
	if err := stream.Send(&dfspb.PipelineAck{Seqno: -1, Replies: replies}); err != nil {
		drop(w, h.Append)
		d.endWrite(b.ID, aw)
		return err
	}

	pending := make(chan received, maxInFlight)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer d.endWrite(b.ID, aw)
		defer close(pending)
		d.receive(ctx, stream, w, b, h.Append, down, pending)
	}()
	return d.respond(ctx, stream, b, h.Targets, down, pending)
}

// appendAt reopens the replica of b at offset at for an append pipeline.
// A replica still held by the writer of a pipeline that just failed (its
// stream not yet torn down here) is waited for, briefly, as HDFS's
// recoverRbw stops the old writer first.
func (d *Datanode) appendAt(ctx context.Context, b Block, at int64) (*blockstore.Writer, error) {
	deadline := time.Now().Add(appendBusyWait)
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		w, err := d.store.AppendAt(ctx, b.ID, b.GenStamp, at)
		if !errors.Is(err, blockstore.ErrBusy) || time.Now().After(deadline) {
			return w, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(delay):
		}
	}
}

// drop ends a write that failed: a new replica is discarded (its block is
// abandoned or recovered elsewhere), an appended one is closed as it is,
// being written, so that the bytes it had before stay and a recovery can
// cut it back to what every node acknowledged.
func drop(w *blockstore.Writer, appending bool) {
	if appending {
		w.Close()
		return
	}
	w.Abort()
}

// receive reads packets, writes them to w and forwards them to down,
// passing each outcome to the responder. It owns w: on the last packet it
// finalizes it; on a checksum error it drops it (see drop); when the
// stream ends early it closes it, leaving a replica being written for
// recovery.
func (d *Datanode) receive(ctx context.Context, stream grpc.BidiStreamingServer[dfspb.WriteBlockRequest, dfspb.PipelineAck],
	w *blockstore.Writer, b Block, appending bool, down writeStream, pending chan<- received) {
	push := func(r received) {
		select {
		case pending <- r:
		case <-ctx.Done():
		}
	}
	forward := down != nil
	for {
		msg, err := stream.Recv()
		if err != nil {
			if cerr := w.Close(); cerr != nil {
				d.log.Warn("closing an unfinished replica", "block", b, "error", cerr)
			}
			d.log.Info("write ended before the last packet; the replica stays being written", "block", b, "length", w.Len(), "error", err)
			return
		}
		pkt := msg.GetPacket()
		if pkt == nil || pkt.Offset != w.Len() {
			push(received{seqno: pkt.GetSeqno(), status: dfspb.AckStatus_ERROR,
				msg: fmt.Sprintf("datanode %s: write %s: packet %d at offset %d, want one at offset %d", d.addr, b, pkt.GetSeqno(), pkt.GetOffset(), w.Len())})
			drop(w, appending)
			return
		}
		if err := w.WritePacket(pkt.Data, pkt.Crcs); err != nil {
			st := dfspb.AckStatus_ERROR
			if errors.Is(err, blockstore.ErrPacketChecksum) {
				st = dfspb.AckStatus_ERROR_CHECKSUM
			}
			push(received{seqno: pkt.Seqno, status: st, msg: fmt.Sprintf("datanode %s: packet %d: %v", d.addr, pkt.Seqno, err)})
			drop(w, appending)
			return
		}
		if pkt.Flush && !pkt.Last {
			// hflush: readers of the replica see the packet once acked.
			if err := w.Flush(); err != nil {
				push(received{seqno: pkt.Seqno, status: dfspb.AckStatus_ERROR, msg: fmt.Sprintf("datanode %s: flush at packet %d: %v", d.addr, pkt.Seqno, err)})
				drop(w, appending)
				return
			}
		}
		if forward {
			if err := down.Send(msg); err != nil {
				// The responder hears why from the downstream's acks.
				forward = false
			}
		}
		if !pkt.Last {
			push(received{seqno: pkt.Seqno, status: dfspb.AckStatus_SUCCESS, length: w.Len()})
			continue
		}
		if forward {
			down.CloseSend()
		}
		// Not cut short by a fence: a replica that got its last packet is
		// finalized (block recovery then finds it so).
		n, err := w.Finalize(context.WithoutCancel(ctx))
		if err != nil {
			push(received{seqno: pkt.Seqno, status: dfspb.AckStatus_ERROR, msg: fmt.Sprintf("datanode %s: %v", d.addr, err)})
			drop(w, appending)
			return
		}
		d.log.Debug("finalized block", "block", b, "length", n)
		d.blockEvent(dfspb.BlockEventKind_RECEIVED, blockstore.BlockInfo{ID: b.ID, GenStamp: b.GenStamp, Length: n, State: blockstore.Finalized})
		push(received{seqno: pkt.Seqno, status: dfspb.AckStatus_SUCCESS, length: n, last: true})
		return
	}
}

// respond sends an ack upstream for each packet once this node wrote it
// and its downstream acknowledged it; the first failure ends the write.
func (d *Datanode) respond(ctx context.Context, stream grpc.BidiStreamingServer[dfspb.WriteBlockRequest, dfspb.PipelineAck],
	b Block, targets []string, down writeStream, pending <-chan received) error {
	for {
		var r received
		var ok bool
		select {
		case r, ok = <-pending:
		case <-ctx.Done():
			// Fenced off by block recovery (or the stream ended): returning
			// ends the stream, and with it the receiver's reads.
			return status.Errorf(codes.Aborted, "datanode %s: write %s stopped: %v", d.addr, b, context.Cause(ctx))
		}
		if !ok {
			break
		}
		ack := &dfspb.PipelineAck{Seqno: r.seqno, Length: r.length}
		if r.status != dfspb.AckStatus_SUCCESS {
			ack.Replies, ack.Message = []dfspb.AckStatus{r.status}, r.msg
			stream.Send(ack)
			return status.Error(codes.Aborted, r.msg)
		}
		ack.Replies = []dfspb.AckStatus{dfspb.AckStatus_SUCCESS}
		if down != nil {
			dack, err := down.Recv()
			switch {
			case err != nil:
				ack.Replies = append(ack.Replies, dfspb.AckStatus_ERROR)
				ack.Message = fmt.Sprintf("datanode %s: write %s: downstream %s failed at packet %d: %v", d.addr, b, targets[0], r.seqno, err)
			case failed(dack) >= 0:
				ack.Replies = append(ack.Replies, dack.Replies...)
				ack.Message = dack.Message
			case dack.Seqno != r.seqno:
				ack.Replies = append(ack.Replies, dfspb.AckStatus_ERROR)
				ack.Message = fmt.Sprintf("datanode %s: write %s: downstream %s acked packet %d, want %d", d.addr, b, targets[0], dack.Seqno, r.seqno)
			default:
				ack.Replies = append(ack.Replies, dack.Replies...)
			}
			if ack.Message != "" {
				stream.Send(ack)
				return status.Error(codes.Unavailable, ack.Message)
			}
		}
		if err := stream.Send(ack); err != nil {
			return err
		}
		if r.last {
			return nil
		}
	}
	return status.Errorf(codes.Aborted, "datanode %s: write %s ended before its last packet", d.addr, b)
}

// ReadBlock streams a replica: a header, then packets of whole chunks
// with their stored checksums, from the chunk boundary at or before
// req.Offset.
func (t *transfer) ReadBlock(req *dfspb.ReadBlockRequest, stream grpc.ServerStreamingServer[dfspb.ReadBlockResponse]) error {
	d := t.d
	d.xceivers.Add(1)
	defer d.xceivers.Add(-1)
	ctx := stream.Context()
	if req.Block == nil || req.Offset < 0 || req.Length < 0 {
		return status.Error(codes.InvalidArgument, "datanode: read: no block, or a negative offset or length")
	}
	b := Block{ID: req.Block.Id, GenStamp: req.Block.Genstamp}
	r, err := d.store.NewReader(ctx, b.ID)
	if err != nil {
		return toStatus(fmt.Errorf("datanode %s: %w", d.addr, err))
	}
	defer r.Close()
	if r.GenStamp() < b.GenStamp {
		return status.Errorf(codes.FailedPrecondition, "datanode %s: read %s: the replica has the older generation stamp %d", d.addr, b, r.GenStamp())
	}
	ck := r.Checksum()
	if req.Offset > r.Size() {
		return status.Errorf(codes.OutOfRange, "datanode %s: read %s: offset %d is past the replica's %d bytes", d.addr, b, req.Offset, r.Size())
	}
	err = stream.Send(&dfspb.ReadBlockResponse{Msg: &dfspb.ReadBlockResponse_Header{Header: &dfspb.ReadHeader{
		Genstamp: r.GenStamp(), Length: r.Size(), ChecksumType: uint32(ck.Type), BytesPerChecksum: uint32(ck.BytesPerChecksum)}}})
	if err != nil {
		return err
	}
	end := r.Size()
	if req.Length > 0 {
		end = min(end, req.Offset+req.Length)
	}
	bpc := int64(ck.BytesPerChecksum)
	size := max(bpc, PacketSize/bpc*bpc)
	data := make([]byte, size)
	crcs := make([]byte, 4*(size/bpc))
	for off := req.Offset - req.Offset%bpc; off < end; {
		want := min(size, (end-off+bpc-1)/bpc*bpc)
		n, err := r.ReadPacket(off, data[:want], crcs)
		if err == io.EOF {
			break
		}
		if err != nil {
			d.log.Warn("read of a replica failed", "block", b, "offset", off, "error", err)
			return toStatus(fmt.Errorf("datanode %s: %w", d.addr, err))
		}
		pkt := &dfspb.Packet{Offset: off, Data: data[:n], Crcs: crcs[:ck.NumChunks(int64(n))*4], Last: off+int64(n) >= end}
		if err := stream.Send(&dfspb.ReadBlockResponse{Msg: &dfspb.ReadBlockResponse_Packet{Packet: pkt}}); err != nil {
			return err
		}
		off += int64(n)
	}
	return nil
}
