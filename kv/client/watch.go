package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kura-dev/kura/proto/kvpb"
)

// FollowConfig configures Follow.
type FollowConfig struct {
	// Prefix keeps only the changes of keys that start with it.
	Prefix []byte
	// After resumes each listed shard after that sequence number.
	After map[uint32]uint64
	// FromOldest starts the shards missing from After (and not yet heard
	// from after a reconnect) at their oldest retained change; otherwise
	// they start at their newest change when the stream (re)opens, so a
	// change made to such a shard while the stream was broken can be
	// missed. Give After for every shard, or FromOldest, to rule that out.
	FromOldest bool
	// MinBackoff and MaxBackoff bound the wait before reopening a broken
	// stream (defaults 100ms and 5s). The wait doubles after each stream
	// that broke without delivering an event, and goes back to MinBackoff
	// after one that delivered.
	MinBackoff, MaxBackoff time.Duration
	// OnOpen, if set, is called each time a stream is opened, with the
	// endpoint that serves it.
	OnOpen func(endpoint string)
	// OnBreak, if set, is called each time a stream fails, with its
	// endpoint, the error and the wait before the next attempt.
	OnBreak func(endpoint string, err error, wait time.Duration)
}

// Follow is Watch that survives failures: when the stream breaks (the node
// serving it died or a node it relays from did), it reopens it on the next
// endpoint, with backoff, resuming each shard after the last event handed
// to fn, and drops any event at or below that point, so fn sees every
// change of each shard once and in order. It returns only when ctx ends
// (ctx.Err()), when fn fails (fn's error), or on an error that retrying
// cannot cure (a request the nodes refuse as invalid or unimplemented).
func (c *Client) Follow(ctx context.Context, cfg FollowConfig, fn func(*kvpb.Event) error) error {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(5*time.Second, cfg.MinBackoff)
	}
	cur := make(map[uint32]uint64, len(cfg.After))
	for sh, seq := range cfg.After {
		cur[sh] = seq
	}
	backoff := cfg.MinBackoff
	i := int(c.next.Add(1))
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := i % len(c.kvs)
		ep := c.cfg.Endpoints[k]
		delivered, err := c.followOnce(ctx, k, &cfg, cur, fn)
		var fe fnError
		switch {
		case errors.As(err, &fe):
			return fe.err
		case ctx.Err() != nil:
			return ctx.Err()
		case permanent(err):
			return fmt.Errorf("watch via %s: %w", ep, err)
		}
		if delivered {
			backoff = cfg.MinBackoff
		}
		if cfg.OnBreak != nil {
			cfg.OnBreak(ep, err, backoff)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(backoff*2, cfg.MaxBackoff)
		i++
	}
}

// fnError carries an error of Follow's callback out of followOnce.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// followOnce runs one stream on endpoint k until it fails. It reports
// whether it handed any event to fn; cur is advanced past every one.
func (c *Client) followOnce(ctx context.Context, k int, cfg *FollowConfig, cur map[uint32]uint64, fn func(*kvpb.Event) error) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	after := make(map[uint32]uint64, len(cur))
	for sh, seq := range cur {
		after[sh] = seq
	}
	st, err := c.kvs[k].Watch(ctx, &kvpb.WatchRequest{Prefix: cfg.Prefix, After: after, FromOldest: cfg.FromOldest})
	if err != nil {
		return false, err
	}
	if cfg.OnOpen != nil {
		cfg.OnOpen(c.cfg.Endpoints[k])
	}
	delivered := false
	for {
		ev, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("stream ended by the node")
			}
			return delivered, err
		}
		if last, ok := cur[ev.Shard]; ok && ev.Seq <= last {
			continue // already handed over before a reconnect
		}
		if err := fn(ev); err != nil {
			return delivered, fnError{err}
		}
		cur[ev.Shard] = ev.Seq
		delivered = true
	}
}

// permanent tells whether a watch error will not go away by retrying.
func permanent(err error) bool {
	s, ok := status.FromError(err)
	if !ok {
		return false
	}
	switch s.Code() {
	case codes.InvalidArgument, codes.Unimplemented, codes.PermissionDenied, codes.Unauthenticated:
		return true
	}
	return false
}
