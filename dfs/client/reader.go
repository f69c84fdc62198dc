package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/kura-dev/kura/dfs/datanode"
	"github.com/kura-dev/kura/dfs/hdfs"
	"github.com/kura-dev/kura/proto/dfspb"
)

// readAhead is how much a Reader's Read fetches at once (within a block).
const readAhead = 1 << 20

// Reader reads a file opened with Client.Open; see the package
// documentation. ReadAt is safe for concurrent use; Read and Seek are not.
type Reader struct {
	c      *Client
	ctx    context.Context
	path   string
	length int64
	blocks []*dfspb.LocatedBlock

	off    int64  // Read's position
	buf    []byte // read-ahead, the file's bytes at bufOff
	bufOff int64
}

// Open opens path for reading; ctx bounds every read. A missing path or a
// directory is a FileNotFoundException.
func (c *Client) Open(ctx context.Context, path string) (*Reader, error) {
	resp, err := c.BlockLocations(ctx, path)
	if err != nil {
		return nil, err
	}
	return &Reader{c: c, ctx: ctx, path: path, length: resp.FileLength, blocks: resp.Blocks}, nil
}

// Size returns the file's length when it was opened.
func (r *Reader) Size() int64 { return r.length }

// Close releases nothing (the Client holds the connections); it exists to
// make a Reader an io.ReadCloser.
func (r *Reader) Close() error { return nil }

// Read reads from the current position.
func (r *Reader) Read(p []byte) (int, error) {
	if r.off >= r.length {
		return 0, io.EOF
	}
	if r.off < r.bufOff || r.off >= r.bufOff+int64(len(r.buf)) {
		// Fill the read-ahead up to the end of the block holding off.
		end := r.length
		for _, b := range r.blocks {
			if r.off >= b.Offset && r.off < b.Offset+b.Length {
				end = b.Offset + b.Length
				break
			}
		}
		n := min(end-r.off, readAhead)
		if cap(r.buf) < int(n) {
			r.buf = make([]byte, n)
		}
		r.buf = r.buf[:n]
		k, err := r.ReadAt(r.buf, r.off)
		r.buf, r.bufOff = r.buf[:k], r.off
		if k == 0 {
			if err == nil {
				err = io.ErrNoProgress
			}
			return 0, err
		}
	}
	n := copy(p, r.buf[r.off-r.bufOff:])
	r.off += int64(n)
	return n, nil
}

// Seek sets the position of Read.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.length
	default:
		return 0, fmt.Errorf("client: seek %s: bad whence %d", r.path, whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("client: seek %s: negative position %d", r.path, offset)
	}
	r.off = offset
	return offset, nil
}

// sliceWriter writes into a fixed slice.
type sliceWriter struct {
	p []byte
	n int
}

func (s *sliceWriter) Write(b []byte) (int, error) {
	k := copy(s.p[s.n:], b)
	s.n += k
	if k < len(b) {
		return k, io.ErrShortWrite
	}
	return k, nil
}

// ReadAt reads len(p) bytes at off (fewer, with io.EOF, at the end of the
// file). Each block is read from its replicas in turn: after a checksum
// mismatch or a failed datanode the next replica goes on from the offset
// reached. When every replica failed the error wraps the last failure and
// is a ChecksumException (errors.Is(err, hdfs.ErrChecksum)) when a replica
// was corrupt, else an IOException.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("client: read %s: negative offset %d", r.path, off)
	}
	if off >= r.length {
		return 0, io.EOF
	}
	want := min(int64(len(p)), r.length-off)
	done := int64(0)
	for _, b := range r.blocks {
		if done == want {
			break
		}
		pos := off + done
		if pos < b.Offset || pos >= b.Offset+b.Length {
			continue
		}
		n := min(want-done, b.Offset+b.Length-pos)
		if err := r.readBlock(b, pos-b.Offset, p[done:done+n]); err != nil {
			return int(done), err
		}
		done += n
	}
	if done < want {
		return int(done), hdfs.ErrIO.Errorf("read %s: no block holds offset %d", r.path, off+done)
	}
	if done < int64(len(p)) {
		return int(done), io.EOF
	}
	return int(done), nil
}

// readBlock fills p with block b's bytes from offset off, trying its
// replicas in turn.
func (r *Reader) readBlock(b *dfspb.LocatedBlock, off int64, p []byte) error {
	blk := datanode.Block{ID: b.Block.Id, GenStamp: b.Block.Genstamp}
	w := &sliceWriter{p: p}
	var errs []error
	corrupt := false
	for _, loc := range b.Locations {
		for w.n < len(p) {
			n, err := r.c.sh.dn.ReadBlock(r.ctx, loc.DataAddr, blk, off+int64(w.n), int64(len(p)-w.n), w)
			if err == nil && n == 0 && w.n < len(p) {
				err = fmt.Errorf("replica on %s ended early", loc.DataAddr)
			}
			if err != nil {
				if r.ctx.Err() != nil {
					return r.ctx.Err()
				}
				corrupt = corrupt || errors.Is(err, datanode.ErrCorrupt)
				errs = append(errs, fmt.Errorf("%s on %s: %w", blk, loc.DataAddr, err))
				break
			}
		}
		if w.n == len(p) {
			return nil
		}
	}
	cls := hdfs.ErrIO
	if corrupt {
		cls = hdfs.ErrChecksum
	}
	if len(b.Locations) == 0 {
		return cls.Errorf("Could not obtain block %s of %s: no live replica", blk, r.path)
	}
	return fmt.Errorf("%w: %w", cls.Errorf("Could not obtain block %s of %s from any of %d replicas", blk, r.path, len(b.Locations)), errors.Join(errs...))
}
