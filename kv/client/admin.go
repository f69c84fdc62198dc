package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kura-dev/kura/proto/kvpb"
)

// ErrNoSuchNode: the node is not in the cluster map (never joined, or its
// removal finished).
var ErrNoSuchNode = errors.New("no such node in the cluster")

// RemoveNode starts removing a node from the cluster (or, when its removal
// is under way, reports progress) and returns the shards that still hold a
// replica on it. The cluster moves those replicas to other nodes and then
// drops the node from its map; call RemoveNode again (or WaitRemoved) to
// follow. A removed node can be stopped; it cannot rejoin with its data.
func (c *Client) RemoveNode(ctx context.Context, node uint64) ([]uint32, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var last error
	for attempt := 0; ; attempt++ {
		r, err := c.kvs[(int(c.next.Add(1))+attempt)%len(c.kvs)].RemoveNode(ctx, &kvpb.RemoveNodeRequest{NodeId: node})
		if err == nil {
			return r.Shards, nil
		}
		switch status.Code(err) {
		case codes.NotFound:
			return nil, fmt.Errorf("%w: %s", ErrNoSuchNode, status.Convert(err).Message())
		case codes.InvalidArgument, codes.FailedPrecondition:
			return nil, errors.New(status.Convert(err).Message())
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: remove node %x: %v", ErrUnavailable, node, last)
		case <-time.After(retryDelay(attempt, len(c.kvs))):
		}
	}
}

// WaitRemoved follows the removal of a node until it left the map,
// calling progress (if not nil) with the shards still on it whenever that
// set changes.
func (c *Client) WaitRemoved(ctx context.Context, node uint64, progress func(shards []uint32)) error {
	var prev string
	for {
		shs, err := c.RemoveNode(ctx, node)
		if errors.Is(err, ErrNoSuchNode) {
			return nil
		}
		if err != nil && !errors.Is(err, ErrUnavailable) {
			return err
		}
		if err == nil && progress != nil {
			if s := fmt.Sprint(shs); s != prev {
				prev = s
				progress(shs)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove node %x: %w", node, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}
