// Package namenode runs a dfs namenode: the namespace (dfs/namespace) over a
// metadata database (dfs/dal, opened from a URL with dfs/dal/open), served
// over WebHDFS (dfs/webhdfs) on an HTTP port, with the namespace's periodic
// housekeeping, and on a gRPC port (Config.RPCAddr) the datanode protocol
// (proto/dfspb DatanodeProtocol, through dfs/dnmanager) and the client
// protocol (ClientProtocol, clientrpc.go) that dfs/client speaks. The HTTP port also
// serves GET /status, a JSON view of the namenode and its datanodes (see
// Status), and GET /fsck, HDFS's fsck of a subtree against this namenode's
// live datanodes (fsck.go; `kura dfs fsck` calls it).
//
// A namenode is stateless, as HopsFS's: all metadata lives in the database,
// every operation is one transaction there, so several namenodes on one
// PostgreSQL database serve the same namespace at once, and any of them may
// die (even with SIGKILL) without the others noticing anything but its
// absence. On SQLite the database is a local file, so the namenodes sharing it
// must run on one machine (SQLite serialises their writes).
//
// # Housekeeping
//
// Every MaintenanceInterval (with jitter) a namenode runs
// namespace.RecoverLeases (closing files whose writer's lease passed the hard
// limit) and namespace.PurgeDetached (finishing large deletes a dead namenode
// left half-done), and the datanode manager re-replicates the blocks of
// datanodes that died. As in HopsFS, only the elected leader does this
// work (dfs/election: the namenodes elect one through the metadata
// database; GET /status shows the election). Both are safe even where two
// namenodes overlap (each file, each detached subtree is handled in its own
// transaction under row locks, and a namenode that finds the work already
// done does nothing): the election saves redundant work and duplicate
// replicas, it does not guard the namespace.
package namenode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/dal/open"
	"github.com/kura-dev/kura/dfs/datanode"
	"github.com/kura-dev/kura/dfs/dnmanager"
	"github.com/kura-dev/kura/dfs/election"
	"github.com/kura-dev/kura/dfs/namespace"
	"github.com/kura-dev/kura/dfs/webhdfs"
	"github.com/kura-dev/kura/proto/dfspb"
	"google.golang.org/grpc"
)

// DefaultHTTPAddr is the namenode's default HTTP (WebHDFS) address, Hadoop's
// dfs.namenode.http-address port.
const DefaultHTTPAddr = "127.0.0.1:9870"

// DefaultRPCAddr is the namenode's default RPC (DatanodeProtocol and
// ClientProtocol) address, Hadoop's fs.defaultFS port.
const DefaultRPCAddr = "127.0.0.1:8020"

// StatusPath is the HTTP path of the JSON status (see Status).
const StatusPath = "/status"

// DefaultMaintenanceInterval is how often the housekeeping runs.
const DefaultMaintenanceInterval = 5 * time.Second

// Config configures a namenode.
type Config struct {
	// MetaURL names the metadata database: sqlite:///path/meta.db or
	// postgres://user@host:port/db?sslmode=disable (see dfs/dal/open).
	MetaURL string
	// HTTPAddr is where WebHDFS is served (DefaultHTTPAddr when empty; port 0
	// picks a free port, see Namenode.HTTPAddr).
	HTTPAddr string
	// RPCAddr is where the datanode and client protocols are served over gRPC
	// (DefaultRPCAddr when empty; "off" serves none, and the namenode has
	// no datanodes; port 0 picks a free port, see Namenode.RPCAddr).
	RPCAddr string
	// Datanodes configures the datanode manager (dfs/dnmanager): heartbeat
	// interval and dead intervals, report batches. Its Logger defaults to
	// Logger.
	Datanodes dnmanager.Config
	// Superuser is the namenode's user, who passes every permission check
	// (namespace.DefaultSuperuser, "root", the owner of "/" in a new
	// database, when empty).
	Superuser string
	// Supergroup's members pass every permission check too ("supergroup"
	// when empty).
	Supergroup string
	// DefaultUser is the WebHDFS caller without user.name ("dr.who" when
	// empty).
	DefaultUser string
	// Groups maps user names to their groups (a static mapping); users not
	// in it belong to no group.
	Groups map[string][]string
	// MaintenanceInterval is how often the housekeeping runs
	// (DefaultMaintenanceInterval when 0; negative: never, for tests).
	MaintenanceInterval time.Duration
	// Election configures the namenode's part in leader election
	// (dfs/election): its period and dead-after time; the addresses are
	// the namenode's own.
	Election election.Config
	// RecoveryTimeout bounds the datanode calls of one block recovery, in
	// lease recovery (DefaultRecoveryTimeout when 0).
	RecoveryTimeout time.Duration
	// Namespace holds the namespace's other settings; its Superuser and
	// Supergroup are overridden by the fields above.
	Namespace namespace.Config
	// Logger receives the namenode's logs (nil: discarded).
	Logger *slog.Logger
}

// Namenode is a running namenode. Close stops it.
type Namenode struct {
	cfg    Config
	store  dal.Store
	ns     *namespace.Namespace
	ln     net.Listener
	srv    *http.Server
	rpcLn  net.Listener       // nil when RPCAddr is "off"
	rpc    *grpc.Server       // nil when RPCAddr is "off"
	dnm    *dnmanager.Manager // nil when RPCAddr is "off"
	rec    *blockRecoverer    // nil when RPCAddr is "off"
	el     *election.Elector
	start  time.Time
	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	err    error
}

// Start opens the metadata database (creating or migrating its schema; a
// database of a newer schema is refused with the DAL's error, which wraps
// dal.ErrSchemaTooNew), builds the namespace, and serves WebHDFS on
// cfg.HTTPAddr. It returns once the namenode serves. ctx bounds only the
// start; call Close to stop.
func Start(ctx context.Context, cfg Config) (*Namenode, error) {
	if err := CheckMetaURL(cfg.MetaURL); err != nil {
		return nil, err
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = DefaultHTTPAddr
	}
	if cfg.MaintenanceInterval == 0 {
		cfg.MaintenanceInterval = DefaultMaintenanceInterval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.RPCAddr == "" {
		cfg.RPCAddr = DefaultRPCAddr
	}
	nc := cfg.Namespace
	nc.Superuser, nc.Supergroup = cfg.Superuser, cfg.Supergroup

	store, err := open.Open(ctx, cfg.MetaURL)
	if err != nil {
		return nil, err
	}
	var (
		dnm   *dnmanager.Manager
		rpcLn net.Listener
		// lead is set once the election runs; until then nobody leads.
		lead atomic.Pointer[election.Elector]
	)
	isLeader := func() bool { e := lead.Load(); return e != nil && e.IsLeader() }
	if cfg.RPCAddr != "off" {
		if rpcLn, err = net.Listen("tcp", cfg.RPCAddr); err != nil {
			store.Close()
			return nil, fmt.Errorf("namenode: listen on --rpc %s: %w", cfg.RPCAddr, err)
		}
		dc := cfg.Datanodes
		if dc.Logger == nil {
			dc.Logger = log
		}
		if dc.NamenodeID == "" {
			dc.NamenodeID = "namenode " + rpcLn.Addr().String()
		}
		if dc.Leader == nil {
			dc.Leader = isLeader
		}
		dnm = dnmanager.New(dc)
		nc.Placement, nc.Capacity = dnm, dnm
	}
	fail := func(err error) (*Namenode, error) {
		if rpcLn != nil {
			rpcLn.Close()
			dnm.Close()
		}
		store.Close()
		return nil, err
	}
	ns, err := namespace.New(store, nc)
	if err != nil {
		return fail(err)
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		ns.Close()
		return fail(fmt.Errorf("namenode: listen on --http %s: %w", cfg.HTTPAddr, err))
	}
	ec := cfg.Election
	ec.HTTPAddress = ln.Addr().String()
	if rpcLn != nil {
		ec.RPCAddress = rpcLn.Addr().String()
	}
	if ec.Logger == nil {
		ec.Logger = log.With("component", "election")
	}
	el, err := election.Start(ctx, store, ec)
	if err != nil {
		ln.Close()
		ns.Close()
		return fail(fmt.Errorf("namenode: %w", err))
	}
	lead.Store(el)
	wc := webhdfs.Config{
		DefaultUser:        cfg.DefaultUser,
		Groups:             cfg.Groups,
		DefaultReplication: nc.DefaultReplication,
	}
	if dnm != nil {
		// CREATE, APPEND and OPEN redirect to the live datanodes that serve
		// HTTP; without the datanode protocol there are none, and they fail
		// with Hadoop's "Failed to find datanode".
		wc.RPCAddr = rpcLn.Addr().String()
		wc.Datanodes = func() []webhdfs.DatanodeHTTP { return datanodesHTTP(dnm) }
		hb := cfg.Datanodes.HeartbeatInterval
		if hb <= 0 {
			hb = dnmanager.DefaultHeartbeatInterval
		}
		wc.StaleAfter = 3 * hb
	}
	h := webhdfs.New(ns, wc)
	mux := http.NewServeMux()
	mux.Handle(webhdfs.Prefix, h)
	mux.Handle(webhdfs.Prefix+"/", h)
	runCtx, cancel := context.WithCancel(context.Background())
	n := &Namenode{cfg: cfg, store: store, ns: ns, ln: ln, rpcLn: rpcLn, dnm: dnm, el: el, log: log, cancel: cancel, start: time.Now()}
	mux.HandleFunc("GET "+StatusPath, n.serveStatus)
	mux.HandleFunc("GET "+FsckPath, n.serveFsck)
	if dnm != nil {
		dnm.Bind(ns)
		timeout := cfg.RecoveryTimeout
		if timeout <= 0 {
			timeout = DefaultRecoveryTimeout
		}
		n.rec = &blockRecoverer{dnm: dnm, dn: datanode.NewClient("namenode " + rpcLn.Addr().String()), timeout: timeout,
			log: log.With("component", "block recovery")}
		// A writer taking a file over past its writer's soft limit has its
		// last block recovered first, in the background until Close.
		ns.SetBlockRecoverer(runCtx, n.rec, n.rec.log)
		// A fixed pool of stream workers rather than a goroutine per call,
		// whose stack grows anew each time: metadata calls are small and
		// many.
		n.rpc = grpc.NewServer(grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))))
		dnm.RegisterService(n.rpc)
		crpc := newClientRPC(ns, dnm, cfg)
		crpc.rec = n.rec
		crpc.httpAddr = ln.Addr().String()
		dfspb.RegisterClientProtocolServer(n.rpc, crpc)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := n.rpc.Serve(rpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				log.Error("rpc server stopped", "err", err)
			}
		}()
	}
	n.srv = &http.Server{
		Handler:           rawPaths{mux: mux, webhdfs: h},
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return runCtx },
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("webhdfs server stopped", "err", err)
		}
	}()
	if cfg.MaintenanceInterval > 0 {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.housekeeping(runCtx)
		}()
	}
	log.Info("dfs namenode started", "http", n.HTTPAddr(), "rpc", n.RPCAddr(), "meta", RedactURL(cfg.MetaURL), "backend", store.Backend(),
		"superuser", ns.Checker().Superuser, "supergroup", ns.Checker().Supergroup)
	return n, nil
}

// datanodesHTTP lists the live datanodes of dnm that serve WebHDFS.
func datanodesHTTP(dnm *dnmanager.Manager) []webhdfs.DatanodeHTTP {
	var out []webhdfs.DatanodeHTTP
	for _, d := range dnm.Datanodes() {
		if d.Live && d.HTTPAddr != "" {
			out = append(out, webhdfs.DatanodeHTTP{StorageID: d.StorageID, DataAddr: d.DataAddr, HTTPAddr: d.HTTPAddr, LastSeen: d.LastSeen})
		}
	}
	return out
}

// rawPaths sends WebHDFS requests to the handler without ServeMux's path
// cleaning (which would redirect "/webhdfs/v1/a/../b" instead of letting the
// namespace refuse it with an InvalidPathException, as Hadoop does).
type rawPaths struct {
	mux     *http.ServeMux
	webhdfs http.Handler
}

func (r rawPaths) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == webhdfs.Prefix || strings.HasPrefix(req.URL.Path, webhdfs.Prefix+"/") {
		r.webhdfs.ServeHTTP(w, req)
		return
	}
	r.mux.ServeHTTP(w, req)
}

// housekeeping runs the namespace's periodic maintenance until ctx ends.
func (n *Namenode) housekeeping(ctx context.Context) {
	for {
		// Jitter spreads several namenodes' runs over the interval.
		d := n.cfg.MaintenanceInterval/2 + rand.N(n.cfg.MaintenanceInterval)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		if !n.el.IsLeader() {
			continue
		}
		if k, err := n.ns.RecoverLeasesWith(ctx, time.Now(), n.recoverer()); err != nil {
			if ctx.Err() == nil {
				n.log.Warn("lease recovery failed", "err", err)
			}
		} else if k > 0 {
			n.log.Info("recovered expired leases", "files", k)
		}
		if k, err := n.ns.PurgeDetached(ctx); err != nil {
			if ctx.Err() == nil {
				n.log.Warn("purging detached subtrees failed", "err", err)
			}
		} else if k > 0 {
			n.log.Info("finished interrupted deletes", "subtrees", k)
		}
	}
}

// HTTPAddr returns the address WebHDFS is served on.
func (n *Namenode) HTTPAddr() string { return n.ln.Addr().String() }

// RPCAddr returns the address the RPC protocols are served on ("" when
// Config.RPCAddr is "off").
func (n *Namenode) RPCAddr() string {
	if n.rpcLn == nil {
		return ""
	}
	return n.rpcLn.Addr().String()
}

// Datanodes returns what the namenode knows of its datanodes, live and
// dead, sorted by data address (nil when Config.RPCAddr is "off"). The
// slice is a copy.
func (n *Namenode) Datanodes() []dnmanager.DatanodeStatus {
	if n.dnm == nil {
		return nil
	}
	return n.dnm.Datanodes()
}

// Manager returns the namenode's datanode manager (nil when Config.RPCAddr
// is "off"), for block locations (ResolveBlocks) and liveness.
func (n *Namenode) Manager() *dnmanager.Manager { return n.dnm }

// Namespace returns the namenode's namespace.
func (n *Namenode) Namespace() *namespace.Namespace { return n.ns }

// Election returns the namenode's part in leader election.
func (n *Namenode) Election() *election.Elector { return n.el }

// Backend names the metadata database's backend ("sqlite", "postgres").
func (n *Namenode) Backend() string { return n.store.Backend() }

// Close stops serving (letting requests in flight finish for up to 10
// seconds, then cancelling them; datanode protocol calls in flight are cut
// off), stops the housekeeping and the datanode manager and closes the
// database.
func (n *Namenode) Close() error {
	n.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if n.rpc != nil {
			n.rpc.Stop()
		}
		err := n.srv.Shutdown(ctx)
		n.cancel()
		if err != nil {
			n.srv.Close()
		}
		n.wg.Wait()
		// Leaving the election hands the lead over at the others' next
		// round.
		elErr := n.el.Close(ctx)
		var dnErr error
		if n.dnm != nil {
			dnErr = n.dnm.Close()
		}
		if n.rec != nil {
			dnErr = errors.Join(dnErr, n.rec.dn.Close())
		}
		n.err = errors.Join(elErr, dnErr, n.ns.Close(), n.store.Close())
		n.log.Info("dfs namenode stopped")
	})
	return n.err
}

// ErrBadMetaURL is wrapped by CheckMetaURL's errors.
var ErrBadMetaURL = errors.New("bad metadata URL")

// CheckMetaURL checks the form of a metadata URL without opening it: the
// scheme must be sqlite:// (with a path) or postgres:// / postgresql://.
func CheckMetaURL(u string) error {
	switch {
	case u == "":
		return fmt.Errorf("%w: none given: want sqlite:///path/meta.db or postgres://user@host:port/db", ErrBadMetaURL)
	case strings.HasPrefix(u, "sqlite://"):
		if strings.TrimPrefix(u, "sqlite://") == "" {
			return fmt.Errorf("%w %q: no database path: want sqlite:///path/meta.db", ErrBadMetaURL, u)
		}
		return nil
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		return nil
	}
	scheme, _, ok := strings.Cut(u, "://")
	if !ok {
		return fmt.Errorf("%w %q: not a URL: want sqlite:///path/meta.db or postgres://user@host:port/db", ErrBadMetaURL, RedactURL(u))
	}
	return fmt.Errorf("%w %q: unknown scheme %q: want sqlite:// or postgres://", ErrBadMetaURL, RedactURL(u), scheme)
}

// RedactURL hides a password in a database URL, for logs and messages.
func RedactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	at := strings.LastIndex(rest, "@")
	slash := strings.Index(rest, "/")
	if at < 0 || (slash >= 0 && slash < at) {
		return u
	}
	userinfo := rest[:at]
	if name, _, hasPw := strings.Cut(userinfo, ":"); hasPw {
		return scheme + "://" + name + ":xxxxx" + rest[at:]
	}
	return u
}
