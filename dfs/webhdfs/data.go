package webhdfs

// The datanode's step of the data operations, as Hadoop's datanode
// WebHdfsHandler: the namenode redirected the client here (redirect.go);
// the bytes go through dfs/client to the namenodes and the datanodes'
// pipelines.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/hdfs"
)

// DataConfig configures a DataHandler.
type DataConfig struct {
	// DefaultUser is the caller of requests without user.name (DefaultUser
	// when empty). The namenode's redirects always name the user.
	DefaultUser string
	// Logger receives the handler's logs (nil: discarded).
	Logger *slog.Logger
}

// DataHandler is an http.Handler serving the datanode's step of WebHDFS's
// data operations, as Hadoop's datanode does on its HTTP port (9864):
//
//   - PUT ?op=CREATE with the file's bytes as the body: creates the file
//     (overwrite, createparent (default true), blocksize, replication and
//     permission (default 644) honoured) and writes it; 201 Created with
//     Location: hdfs://<namenoderpcaddress or Host>/<path>, as Hadoop.
//   - POST ?op=APPEND with the bytes to add: 200, empty.
//   - GET ?op=OPEN[&offset=][&length=]: 200 application/octet-stream, the
//     bytes from offset (default 0), length of them (default: to the end).
//
// Bodies are streamed both ways (an upload holds at most the pipeline's
// unacknowledged window, 4 MiB, in the client's Writer). The caller is user.name, trusted as the
// namenode is; errors are RemoteExceptions with the namenode's status
// codes. Any other operation is a 400 IllegalArgumentException ("Invalid
// operation GETFILESTATUS"), as Hadoop's datanode answers.
//
// An upload whose body fails (the client went away) or whose write fails
// is not left open: the writer is closed, and a file this CREATE made is
// deleted again (Hadoop's datanode would keep the bytes received as a
// complete file); an APPEND keeps the bytes it could write and, when its
// write failed, has the file closed by lease recovery.
type DataHandler struct {
	c        *client.Client
	cfg      DataConfig
	log      *slog.Logger
	ctx      context.Context // ends with Close: bounds every request's work
	cancel   context.CancelFunc
	inflight sync.WaitGroup
}

// NewDataHandler returns a handler doing the work with c (whose Namenodes
// are the namenodes' RPC addresses); c.As(user) acts for each request's
// caller. Close the handler, then c, when done.
func NewDataHandler(c *client.Client, cfg DataConfig) *DataHandler {
	if cfg.DefaultUser == "" {
		cfg.DefaultUser = DefaultUser
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &DataHandler{c: c, cfg: cfg, log: log, ctx: ctx, cancel: cancel}
}

// Close cancels the requests in flight (their calls to namenodes and
// datanodes end) and waits for their handlers to return. Call it once the
// server no longer accepts requests (after http.Server.Shutdown or Close);
// it does not close the client.
func (h *DataHandler) Close() error {
	h.cancel()
	h.inflight.Wait()
	return nil
}

// ServeHTTP serves one request of a data operation's second step.
func (h *DataHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.inflight.Add(1)
	defer h.inflight.Done()
	req, ok := parseRequest(w, r)
	if !ok {
		return
	}
	var serve func(http.ResponseWriter, *http.Request, *request) error
	switch {
	case r.Method == http.MethodPut && req.op == "CREATE":
		serve = h.create
	case r.Method == http.MethodPost && req.op == "APPEND":
		serve = h.append
	case r.Method == http.MethodGet && req.op == "OPEN":
		serve = h.open
	default:
		fail(w, hdfs.ErrIllegalArgument.New("Invalid operation "+req.op))
		return
	}
	user, err := resolveUser(req, h.cfg.DefaultUser, nil)
	if err != nil {
		fail(w, err)
		return
	}
	req.user = user
	if err := serve(w, r, req); err != nil {
		if !errors.Is(err, context.Canceled) {
			h.log.Info("webhdfs data operation failed", "op", req.op, "path", req.path, "user", user.Name, "err", err)
		}
		fail(w, err)
	}
}

// uploadContext returns the context of an upload's writer: the request's
// values, but not its cancellation (a client that goes away mid-upload
// must not keep the writer from closing), ended by Close instead.
func (h *DataHandler) uploadContext(r *http.Request) (context.Context, context.CancelFunc) {
	return h.bound(context.WithoutCancel(r.Context()))
}

// bound returns ctx, also cancelled by Close.
func (h *DataHandler) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(h.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// bodyReader records the error of reading a request body, to tell it from
// the writer's.
type bodyReader struct {
	r   io.Reader
	n   int64
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// upload copies the request body into fw and closes fw. On an error the
// writer is closed all the same (completing what was written, or, after a
// failed write, giving the file up to lease recovery) and the error tells
// whether the body or the write failed.
func upload(fw *client.Writer, path string, body io.Reader) error {
	br := &bodyReader{r: body}
	_, err := io.Copy(fw, br)
	cerr := fw.Close()
	switch {
	case br.err != nil:
		return hdfs.ErrIO.Errorf("upload to %s failed after %d bytes: reading the request body: %v", path, br.n, br.err)
	case err != nil:
		return fmt.Errorf("upload to %s failed after %d bytes: %w", path, br.n, err)
	case cerr != nil:
		return fmt.Errorf("upload to %s: %w", path, cerr)
	}
	return nil
}

// create is CREATE's second step.
func (h *DataHandler) create(w http.ResponseWriter, r *http.Request, req *request) error {
	p, err := parseCreateParams(req)
	if err != nil {
		return err
	}
	if p.replSet && p.replication < 1 {
		// The client's 0 means "the default": refuse it here as the
		// namenode refuses any replication below 1.
		return hdfs.ErrIO.Errorf("Requested replication factor of %d is less than the required minimum of 1 for %s", p.replication, req.path)
	}
	ctx, done := h.uploadContext(r)
	defer done()
	c := h.c.As(req.user.Name)
	fw, err := c.Create(ctx, req.path, client.CreateOptions{
		Perm: p.perm, Overwrite: p.overwrite, CreateParent: p.createParent,
		Replication: int(p.replication), BlockSize: p.blockSize,
	})
	if err != nil {
		return err
	}
	if err := upload(fw, req.path, r.Body); err != nil {
		h.discard(ctx, c, req.path, fw.Status().FileID)
		return err
	}
	nn := req.params["namenoderpcaddress"]
	if nn == "" {
		nn = r.Host
	}
	loc := url.URL{Scheme: "hdfs", Host: nn, Path: req.path} // as Hadoop's DatanodeWebHdfsMethods
	w.Header().Set("Location", loc.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// discard deletes the file id a failed CREATE made at path, unless path is
// another file by now.
func (h *DataHandler) discard(ctx context.Context, c *client.Client, path string, id int64) {
	st, err := c.Stat(ctx, path)
	if err != nil || st.FileID != id {
		return
	}
	if _, err := c.Delete(ctx, path, false); err != nil {
		h.log.Warn("webhdfs: deleting the file of a failed CREATE", "path", path, "err", err)
	}
}

// append is APPEND's second step.
func (h *DataHandler) append(w http.ResponseWriter, r *http.Request, req *request) error {
	if _, err := intParam(req, "buffersize", 0, 32, 1); err != nil {
		return err
	}
	ctx, done := h.uploadContext(r)
	defer done()
	c := h.c.As(req.user.Name)
	fw, err := c.Append(ctx, req.path)
	if err != nil {
		return err
	}
	if err := upload(fw, req.path, r.Body); err != nil {
		// A write that failed left the file open: close it now (lease
		// recovery) rather than when its lease expires, unless its path
		// names another file by now (the writer follows its file by id
		// through renames; lease recovery goes by path).
		if st, serr := c.Stat(ctx, req.path); serr == nil && st.FileID == fw.Status().FileID {
			if _, rerr := c.RecoverLease(ctx, req.path); rerr != nil {
				h.log.Warn("webhdfs: closing the file of a failed APPEND", "path", req.path, "err", rerr)
			}
		}
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	return nil
}

// firstChunk is how much of an OPEN is read before the response starts, so
// that a file whose first block cannot be read gets a RemoteException.
const firstChunk = 64 << 10

// open is OPEN's second step.
func (h *DataHandler) open(w http.ResponseWriter, r *http.Request, req *request) error {
	offset, length, err := openParams(req)
	if err != nil {
		return err
	}
	ctx, done := h.bound(r.Context())
	defer done()
	fr, err := h.c.As(req.user.Name).Open(ctx, req.path)
	if err != nil {
		return err
	}
	size := fr.Size()
	if offset > size || (offset == size && size > 0) {
		return offsetError(offset, size, req.path)
	}
	n := size - offset
	if length >= 0 {
		n = min(n, length)
	}
	if _, err := fr.Seek(offset, io.SeekStart); err != nil {
		return err
	}
	body := io.LimitReader(fr, n)
	buf := make([]byte, min(n, firstChunk))
	k, err := io.ReadFull(body, buf)
	if err != nil {
		return fmt.Errorf("open %s at %d: %w", req.path, offset, err)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(buf[:k]); err != nil || int64(k) == n {
		return nil // done, or the client went away
	}
	if _, err := io.CopyBuffer(w, body, buf); err != nil {
		if ctx.Err() == nil {
			h.log.Warn("webhdfs: OPEN failed after the response started", "path", req.path, "offset", offset, "err", err)
		}
		// The status is sent: cut the response short so that the client
		// sees a truncated body, not a complete one.
		panic(http.ErrAbortHandler)
	}
	return nil
}

// DataServerConfig configures StartDataServer.
type DataServerConfig struct {
	// Namenodes are the namenodes' RPC addresses (ClientProtocol), at least
	// one.
	Namenodes []string
	// DefaultUser is the caller of requests without user.name.
	DefaultUser string
	// Logger receives the server's logs (nil: discarded).
	Logger *slog.Logger
}

// DataServer is a datanode's WebHDFS server: a DataHandler, over a
// dfs/client of its own, served on a listener. Close stops it.
type DataServer struct {
	ln   net.Listener
	srv  *http.Server
	h    *DataHandler
	c    *client.Client
	done chan struct{}
	once sync.Once
	err  error
}

// StartDataServer serves a DataHandler on ln (which it then owns) until
// Close.
func StartDataServer(ln net.Listener, cfg DataServerConfig) (*DataServer, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	user := cfg.DefaultUser
	if user == "" {
		user = DefaultUser
	}
	c, err := client.New(client.Config{Namenodes: cfg.Namenodes, User: user})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("webhdfs: data server: %w", err)
	}
	h := NewDataHandler(c, DataConfig{DefaultUser: user, Logger: log})
	s := &DataServer{ln: ln, h: h, c: c, done: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("webhdfs data server stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr returns the address the server listens on.
func (s *DataServer) Addr() string { return s.ln.Addr().String() }

// Close stops serving: requests in flight get up to 10 seconds to finish,
// then their connections are closed and their work cancelled; the client
// is closed last.
func (s *DataServer) Close() error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.srv.Close()
		}
		<-s.done
		s.h.Close()
		s.err = s.c.Close()
	})
	return s.err
}
