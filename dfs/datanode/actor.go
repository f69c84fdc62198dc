package datanode

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kura-dev/kura/proto/dfspb"
)

// errReregister is a namenode asking the datanode to register again.
var errReregister = errors.New("the namenode asks to register again")

// actor keeps a datanode known to one namenode (HDFS's BPServiceActor):
// register, full block report, then heartbeats, incremental reports and
// periodic full reports; any failure starts over from registration after
// a backoff.
type actor struct {
	d          *Datanode
	addr       string
	conn       *grpc.ClientConn
	nn         dfspb.DatanodeProtocolClient
	registered atomic.Bool

	mu     sync.Mutex
	events []*dfspb.BlockEvent // incremental report not yet sent
	kick   chan struct{}       // events were added
	report chan struct{}       // a full report is asked for
}

func newActor(d *Datanode, addr string) (*actor, error) {
	opts := append([]grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: d.cfg.RetryMin, Multiplier: 1.6, Jitter: 0.2, MaxDelay: d.cfg.RetryMax},
		MinConnectTimeout: min(20*time.Second, d.cfg.RPCTimeout),
	})}, d.cfg.DialOptions...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("datanode: namenode %s: %w", addr, err)
	}
	return &actor{d: d, addr: addr, conn: conn, nn: dfspb.NewDatanodeProtocolClient(conn),
		kick: make(chan struct{}, 1), report: make(chan struct{}, 1)}, nil
}

// add queues an incremental report event.
func (a *actor) add(ev *dfspb.BlockEvent) {
	a.mu.Lock()
	a.events = append(a.events, ev)
	a.mu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *actor) requestReport() {
	select {
	case a.report <- struct{}{}:
	default:
	}
}

// run keeps the datanode registered until ctx is done.
func (a *actor) run(ctx context.Context) {
	log := a.d.log.With("namenode", a.addr)
	delay := a.d.cfg.RetryMin
	fails := 0
	for ctx.Err() == nil {
		err := a.register(ctx)
		if err == nil {
			if fails > 0 {
				log.Info("registered with the namenode", "after_attempts", fails+1)
			}
			delay, fails = a.d.cfg.RetryMin, 0
			err = a.serve(ctx)
		}
		a.registered.Store(false)
		if ctx.Err() != nil {
			return
		}
		// Log the first failure and then every tenth, not every retry.
		if fails%10 == 0 {
			log.Warn("namenode unreachable; retrying", "error", err, "attempts", fails+1, "next_in", delay)
		}
		fails++
		t := time.NewTimer(delay + rand.N(delay/5+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(delay*2, a.d.cfg.RetryMax)
	}
}

func (a *actor) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, a.d.cfg.RPCTimeout)
}

func (a *actor) register(ctx context.Context) error {
	d := a.d
	u, err := d.store.Usage()
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	cctx, cancel := a.call(ctx)
	defer cancel()
	_, err = a.nn.Register(cctx, &dfspb.RegisterRequest{Datanode: &dfspb.DatanodeInfo{
		StorageId: d.StorageID(), DataAddr: d.addr, HttpAddr: d.cfg.HTTPAddr, Hostname: host, Capacity: u.Capacity,
	}})
	if err != nil {
		return fmt.Errorf("datanode %s: register with namenode %s: %w", d.addr, a.addr, err)
	}
	a.registered.Store(true)
	return nil
}

// serve runs a registration: a full report, then heartbeats and reports,
// until an error or ctx is done.
func (a *actor) serve(ctx context.Context) error {
	if err := a.fullReport(ctx); err != nil {
		return err
	}
	hb := time.NewTicker(a.d.cfg.HeartbeatInterval)
	defer hb.Stop()
	br := time.NewTicker(a.d.cfg.BlockReportInterval)
	defer br.Stop()
	if err := a.heartbeat(ctx); err != nil {
		return err
	}
	for {
		var err error
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-hb.C:
			err = a.heartbeat(ctx)
		case <-a.kick:
			err = a.incremental(ctx)
		case <-br.C:
			err = a.fullReport(ctx)
		case <-a.report:
			err = a.fullReport(ctx)
		}
		if err != nil {
			return err
		}
	}
}

func (a *actor) heartbeat(ctx context.Context) error {
	d := a.d
	u, err := d.store.Usage()
	if err != nil {
		return err
	}
	cctx, cancel := a.call(ctx)
	defer cancel()
	resp, err := a.nn.Heartbeat(cctx, &dfspb.HeartbeatRequest{
		StorageId:    d.StorageID(),
		Usage:        &dfspb.StorageUsage{Capacity: u.Capacity, Used: u.Used, NonDfsUsed: u.NonDFSUsed, Remaining: u.Remaining},
		BlockCount:   int64(u.Blocks),
		XceiverCount: d.xceivers.Load(),
	})
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("datanode %s: heartbeat to namenode %s: %w: %v", d.addr, a.addr, errReregister, err)
	}
	if err != nil {
		return fmt.Errorf("datanode %s: heartbeat to namenode %s: %w", d.addr, a.addr, err)
	}
	if resp.Reregister {
		return fmt.Errorf("datanode %s: heartbeat to namenode %s: %w", d.addr, a.addr, errReregister)
	}
	d.execute(ctx, a, resp.Commands)
	return nil
}

// fullReport sends every replica. Incremental events queued before it are
// covered by it and dropped.
func (a *actor) fullReport(ctx context.Context) error {
	a.mu.Lock()
	a.events = nil
	a.mu.Unlock()
	list := a.d.store.List()
	blocks := make([]*dfspb.ReportedBlock, len(list))
	for i, bi := range list {
		blocks[i] = reported(bi)
	}
	cctx, cancel := a.call(ctx)
	defer cancel()
	resp, err := a.nn.BlockReport(cctx, &dfspb.BlockReportRequest{StorageId: a.d.StorageID(), Blocks: blocks})
	if err != nil {
		return fmt.Errorf("datanode %s: block report (%d blocks) to namenode %s: %w", a.d.addr, len(blocks), a.addr, err)
	}
	a.d.execute(ctx, a, resp.Commands)
	return nil
}

// incremental sends the queued events; on a failure they are queued again
// in front of newer ones.
func (a *actor) incremental(ctx context.Context) error {
	a.mu.Lock()
	evs := a.events
	a.events = nil
	a.mu.Unlock()
	if len(evs) == 0 {
		return nil
	}
	cctx, cancel := a.call(ctx)
	defer cancel()
	_, err := a.nn.BlockReceived(cctx, &dfspb.BlockReceivedRequest{StorageId: a.d.StorageID(), Events: evs})
	if err != nil {
		a.mu.Lock()
		a.events = append(evs, a.events...)
		a.mu.Unlock()
		return fmt.Errorf("datanode %s: incremental block report (%d events) to namenode %s: %w", a.d.addr, len(evs), a.addr, err)
	}
	return nil
}
