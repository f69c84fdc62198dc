package datanode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kura-dev/kura/dfs/blockstore"
	"github.com/kura-dev/kura/proto/dfspb"
)

// Config configures a datanode. Zero fields take the defaults named.
type Config struct {
	// DataDir is the block store's directory (required).
	DataDir string
	// DataAddr is where DataTransfer listens (default "127.0.0.1:9866";
	// port 0 picks a free one, see Datanode.Addr).
	DataAddr string
	// AdvertiseAddr is the data address given to namenodes (default the
	// listener's address, with the machine's host name for a wildcard IP).
	AdvertiseAddr string
	// HTTPAddr is the datanode's HTTP address, passed on to namenodes
	// ("" for none).
	HTTPAddr string
	// Namenodes are the host:port addresses of the namenodes'
	// DatanodeProtocol service; the datanode registers with every one.
	Namenodes []string
	// HeartbeatInterval is the time between heartbeats (default 3s, HDFS's
	// dfs.heartbeat.interval).
	HeartbeatInterval time.Duration
	// BlockReportInterval is the time between full block reports (default
	// 6h, HDFS's dfs.blockreport.intervalMsec); one is also sent after each
	// registration.
	BlockReportInterval time.Duration
	// RetryMin and RetryMax bound the exponential backoff between attempts
	// to reach a namenode that is down (defaults 100ms and 10s).
	RetryMin, RetryMax time.Duration
	// RPCTimeout bounds each call to a namenode (default 30s).
	RPCTimeout time.Duration
	// Store configures the block store.
	Store blockstore.Options
	// Logger receives the datanode's logs (default slog.Default()).
	Logger *slog.Logger
	// ServerOptions are added to the DataTransfer gRPC server's (TLS).
	ServerOptions []grpc.ServerOption
	// DialOptions are used for connections to namenodes and to other
	// datanodes (default: no TLS).
	DialOptions []grpc.DialOption
}

// withDefaults fills in the defaults and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.DataDir == "" {
		return c, errors.New("datanode: no data directory")
	}
	if c.DataAddr == "" {
		c.DataAddr = "127.0.0.1:9866"
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 3 * time.Second
	}
	if c.BlockReportInterval <= 0 {
		c.BlockReportInterval = 6 * time.Hour
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 100 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 10 * time.Second
	}
	c.RetryMax = max(c.RetryMax, c.RetryMin)
	if c.RPCTimeout <= 0 {
		c.RPCTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Store.Logger == nil {
		c.Store.Logger = c.Logger
	}
	if len(c.DialOptions) == 0 {
		c.DialOptions = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	return c, nil
}

// Datanode is a running datanode: its block store, its DataTransfer
// server and one actor per namenode.
type Datanode struct {
	cfg    Config
	log    *slog.Logger
	store  *blockstore.Store
	bpc    int
	lis    net.Listener
	srv    *grpc.Server
	client *Client
	addr   string
	actors []*actor

	xceivers atomic.Int32

	writesMu sync.Mutex
	writes   map[uint64]*activeWrite // pipelines writing a replica, by block id
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup // receivers, actors, replications
	serveErr chan error
	once     sync.Once
	closeErr error
}

// Start opens the block store in cfg.DataDir, serves DataTransfer on
// cfg.DataAddr and starts registering with, heartbeating to and reporting
// blocks to every namenode in cfg.Namenodes. A namenode that cannot be
// reached is retried with backoff, not an error. ctx bounds the start
// only; Close stops the datanode.
func Start(ctx context.Context, cfg Config) (*Datanode, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("datanode: start: %w", err)
	}
	store, err := blockstore.Open(cfg.DataDir, cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("datanode: %w", err)
	}
	lis, err := net.Listen("tcp", cfg.DataAddr)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("datanode: listen on %s: %w", cfg.DataAddr, err)
	}
	addr := cfg.AdvertiseAddr
	if addr == "" {
		addr = advertised(lis.Addr())
	}
	opts := cfg.Store
	opts.EnsureDefaults()
	d := &Datanode{
		cfg:      cfg,
		log:      cfg.Logger.With("datanode", addr, "storage", store.StorageID()),
		store:    store,
		bpc:      opts.BytesPerChecksum,
		lis:      lis,
		srv:      grpc.NewServer(append([]grpc.ServerOption{grpc.WaitForHandlers(true)}, cfg.ServerOptions...)...),
		client:   NewClient("datanode "+addr, cfg.DialOptions...),
		addr:     addr,
		serveErr: make(chan error, 1),
		writes:   map[uint64]*activeWrite{},
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	dfspb.RegisterDataTransferServer(d.srv, &transfer{d: d})
	go func() { d.serveErr <- d.srv.Serve(lis) }()
	for _, nn := range cfg.Namenodes {
		a, err := newActor(d, nn)
		if err != nil {
			d.Close()
			return nil, err
		}
		d.actors = append(d.actors, a)
	}
	for _, a := range d.actors {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			a.run(d.ctx)
		}()
	}
	d.log.Info("datanode started", "dir", cfg.DataDir, "listen", lis.Addr().String(), "namenodes", cfg.Namenodes)
	return d, nil
}

// advertised is the address to give others for a listener's address.
func advertised(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	return net.JoinHostPort(host, fmt.Sprint(tcp.Port))
}

// Addr is the data address the datanode gives to namenodes and clients.
func (d *Datanode) Addr() string { return d.addr }

// StorageID is the identity of the datanode's storage.
func (d *Datanode) StorageID() string { return d.store.StorageID() }

// Store is the datanode's block store.
func (d *Datanode) Store() *blockstore.Store { return d.store }

// Registered reports whether the datanode is registered with the namenode
// at addr (one of Config.Namenodes).
func (d *Datanode) Registered(addr string) bool {
	for _, a := range d.actors {
		if a.addr == addr {
			return a.registered.Load()
		}
	}
	return false
}

// Close stops the datanode: the data transfers in progress are cut off
// (their replicas stay being written), the namenode actors stop, and the
// block store is closed. Close may be called more than once.
func (d *Datanode) Close() error {
	d.once.Do(func() {
		d.cancel()
		d.srv.Stop() // waits for the handlers: no receiver starts after it
		d.wg.Wait()
		for _, a := range d.actors {
			a.conn.Close()
		}
		d.client.Close()
		if err := <-d.serveErr; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			d.closeErr = fmt.Errorf("datanode %s: serve: %w", d.addr, err)
		}
		if err := d.store.Close(); err != nil && d.closeErr == nil {
			d.closeErr = fmt.Errorf("datanode %s: %w", d.addr, err)
		}
		d.log.Info("datanode stopped")
	})
	return d.closeErr
}

// blockEvent queues an incremental block report to every namenode.
func (d *Datanode) blockEvent(kind dfspb.BlockEventKind, bi blockstore.BlockInfo) {
	ev := &dfspb.BlockEvent{Kind: kind, Block: reported(bi)}
	for _, a := range d.actors {
		a.add(ev)
	}
}

// reported converts a block store report line.
func reported(bi blockstore.BlockInfo) *dfspb.ReportedBlock {
	st := dfspb.ReplicaState_RBW
	if bi.State == blockstore.Finalized {
		st = dfspb.ReplicaState_FINALIZED
	}
	return &dfspb.ReportedBlock{Id: bi.ID, Genstamp: bi.GenStamp, Length: bi.Length, State: st, Corrupt: bi.Corrupt}
}

// execute carries out a namenode's commands.
func (d *Datanode) execute(ctx context.Context, from *actor, cmds []*dfspb.DatanodeCommand) {
	for _, c := range cmds {
		switch {
		case c.GetDelete() != nil:
			for _, b := range c.GetDelete().Blocks {
				d.deleteBlock(ctx, Block{ID: b.Id, GenStamp: b.Genstamp}, from.addr)
			}
		case c.GetReplicate() != nil:
			r := c.GetReplicate()
			if r.Block == nil || len(r.Targets) == 0 {
				d.log.Warn("ignoring a replicate command without block or targets", "namenode", from.addr)
				continue
			}
			b := Block{ID: r.Block.Id, GenStamp: r.Block.Genstamp}
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				d.replicate(ctx, b, r.Targets)
			}()
		case c.GetBlockReport() != nil:
			from.requestReport()
		case c.GetFinalize() != nil:
			for _, fb := range c.GetFinalize().Blocks {
				if fb.GetBlock() == nil {
					continue
				}
				d.finalizeBlock(ctx, Block{ID: fb.Block.Id, GenStamp: fb.Block.Genstamp}, fb.Length, from.addr)
			}
		}
	}
}

// deleteBlock deletes a replica on a namenode's command. A replica with a
// newer generation stamp than the command's is kept.
func (d *Datanode) deleteBlock(ctx context.Context, b Block, nn string) {
	bi, err := d.store.Stat(b.ID)
	if err != nil {
		d.log.Info("delete command for a block not stored here", "block", b, "namenode", nn, "error", err)
		return
	}
	if b.GenStamp != 0 && bi.GenStamp > b.GenStamp {
		d.log.Info("not deleting a replica newer than the delete command", "block", b, "genstamp", bi.GenStamp, "namenode", nn)
		return
	}
	if err := d.store.Delete(ctx, b.ID); err != nil {
		d.log.Warn("delete failed", "block", b, "namenode", nn, "error", err)
		return
	}
	d.log.Debug("deleted block", "block", b, "namenode", nn)
	d.blockEvent(dfspb.BlockEventKind_DELETED, bi)
}

// replicate copies a replica through a write pipeline over targets (the
// namenode's re-replication).
func (d *Datanode) replicate(ctx context.Context, b Block, targets []string) {
	r, err := d.store.NewReader(ctx, b.ID)
	if err != nil {
		d.log.Warn("replicate: cannot read the replica", "block", b, "targets", targets, "error", err)
		return
	}
	defer r.Close()
	if r.GenStamp() < b.GenStamp {
		d.log.Warn("replicate: the replica is older than the command's", "block", b, "genstamp", r.GenStamp())
		return
	}
	n, err := d.client.WriteBlock(ctx, targets, Block{ID: b.ID, GenStamp: r.GenStamp()}, io.NewSectionReader(r, 0, r.Size()))
	if err != nil {
		d.log.Warn("replicate failed", "block", b, "targets", targets, "error", err)
		return
	}
	d.log.Info("replicated block", "block", b, "targets", targets, "length", n)
}
