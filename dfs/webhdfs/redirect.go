package webhdfs

// The namenode's step of the data operations: CREATE, APPEND and OPEN are
// answered with a redirect to a datanode's DataHandler (data.go), as
// Hadoop's NamenodeWebHdfsMethods does.

import (
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kura-dev/kura/dfs/hdfs"
	"github.com/kura-dev/kura/dfs/namespace"
)

// DefaultStaleAfter is Config.StaleAfter's default: three of the
// datanodes' default heartbeat intervals (3 s).
const DefaultStaleAfter = 9 * time.Second

// DatanodeHTTP is a live datanode that serves WebHDFS's data operations
// (a DataHandler), as Config.Datanodes lists it.
type DatanodeHTTP struct {
	// StorageID identifies the datanode's storage, as block locations
	// name their replicas.
	StorageID string
	// DataAddr is its block transfer address (host:port); the
	// excludedatanodes parameter may name a datanode by it.
	DataAddr string
	// HTTPAddr is where its DataHandler serves (host:port).
	HTTPAddr string
	// LastSeen is the time of its last heartbeat (or registration).
	LastSeen time.Time
}

// noMin is intParam's lower bound for a parameter without a lower bound.
const noMin = math.MinInt64

// redirect is the answer of the namenode's step: a 307 to location, or a
// 200 {"Location": location} with noredirect=true.
type redirect struct {
	location   string
	noredirect bool
}

// writeRedirect answers a data operation's first step as Hadoop's
// namenode: 307 Temporary Redirect with an empty body, or with
// noredirect=true a 200 {"Location":"..."}.
func writeRedirect(w http.ResponseWriter, rd redirect) {
	if rd.noredirect {
		writeJSON(w, hdfs.LocationResponse{Location: rd.location})
		return
	}
	w.Header().Set("Location", rd.location)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusTemporaryRedirect)
}

// createParams are CREATE's parameters, checked as Hadoop's parameter
// classes check them.
type createParams struct {
	overwrite    bool
	createParent bool
	blockSize    int64 // 0: the namenode's default
	replication  int64 // 0: the namenode's default
	replSet      bool  // the replication parameter was given
	perm         hdfs.FsPermission
}

// parseCreateParams reads overwrite, createparent, blocksize, replication,
// permission and buffersize (checked, otherwise unused).
func parseCreateParams(req *request) (createParams, error) {
	var (
		p   createParams
		err error
	)
	if p.overwrite, err = boolParam(req, "overwrite", false); err != nil {
		return p, err
	}
	if p.createParent, err = boolParam(req, "createparent", true); err != nil {
		return p, err
	}
	if p.blockSize, err = intParam(req, "blocksize", 0, 64, 1); err != nil {
		return p, err
	}
	if p.replication, err = intParam(req, "replication", 0, 16, noMin); err != nil {
		return p, err
	}
	if s, ok := req.param("replication"); ok && s != "" {
		p.replSet = true
	}
	if p.perm, err = permParam(req, hdfs.WebHDFSFileDefault); err != nil {
		return p, err
	}
	if _, err = intParam(req, "buffersize", 0, 32, 1); err != nil {
		return p, err
	}
	return p, nil
}

// openParams are OPEN's offset and length (-1: to the end of the file).
func openParams(req *request) (offset, length int64, err error) {
	if offset, err = intParam(req, "offset", 0, 64, 0); err != nil {
		return 0, 0, err
	}
	if length, err = intParam(req, "length", -1, 64, 0); err != nil {
		return 0, 0, err
	}
	if _, err = intParam(req, "buffersize", 0, 32, 1); err != nil {
		return 0, 0, err
	}
	return offset, length, nil
}

// offsetError is Hadoop's refusal of an OPEN offset beyond the file.
func offsetError(offset, length int64, path string) error {
	return hdfs.ErrIO.Errorf("Offset=%d out of the range [0, %d); OPEN, path=%s", offset, length, path)
}

// redirectCreate is CREATE's first step. As Hadoop's namenode, it creates
// nothing: it checks the parameters and sends the client to a datanode.
func (h *Handler) redirectCreate(req *request) (any, error) {
	if _, err := hdfs.Clean(req.path); err != nil {
		return nil, err
	}
	if _, err := parseCreateParams(req); err != nil {
		return nil, err
	}
	return h.redirect(req, nil)
}

// redirectAppend is APPEND's first step: the file must exist; the
// datanode is one holding the file's last block when there is one.
func (h *Handler) redirectAppend(req *request) (any, error) {
	if _, err := intParam(req, "buffersize", 0, 32, 1); err != nil {
		return nil, err
	}
	st, err := h.ns.Stat(req.ctx, req.user, req.path)
	if err != nil {
		return nil, err
	}
	var holders []namespace.Target
	if !st.IsDir && st.Length > 0 {
		// Only to choose the datanode: a caller who may write but not read
		// (BlockLocations checks READ) gets a random one, and the
		// datanode's append checks WRITE.
		if fb, err := h.ns.BlockLocations(req.ctx, req.user, req.path); err == nil && len(fb.Blocks) > 0 {
			holders = fb.Blocks[len(fb.Blocks)-1].Targets
		}
	}
	return h.redirect(req, holders)
}

// redirectOpen is OPEN's first step: the file must exist and be readable
// by the caller (404 and 403 come from here, as with Hadoop), the offset
// within it; the datanode is one holding the block at the offset.
func (h *Handler) redirectOpen(req *request) (any, error) {
	offset, _, err := openParams(req)
	if err != nil {
		return nil, err
	}
	fb, err := h.ns.BlockLocations(req.ctx, req.user, req.path)
	if err != nil {
		return nil, err
	}
	if n := fb.Status.Length; offset >= n && n > 0 {
		return nil, offsetError(offset, n, req.path)
	}
	var holders []namespace.Target
	for _, b := range fb.Blocks {
		if offset >= b.Offset && offset < b.Offset+b.Block.NumBytes {
			holders = b.Targets
			break
		}
	}
	return h.redirect(req, holders)
}

// redirect chooses a datanode (preferring holders) and returns the
// redirect to it, with the request's parameters, the caller's user.name
// and the namenode's RPC address.
func (h *Handler) redirect(req *request, holders []namespace.Target) (any, error) {
	noredirect, err := boolParam(req, "noredirect", false)
	if err != nil {
		return nil, err
	}
	var dns []DatanodeHTTP
	if h.cfg.Datanodes != nil {
		dns = h.cfg.Datanodes()
	}
	held := map[string]bool{}
	for _, t := range holders {
		held[t.StorageID] = true
	}
	excl, _ := req.param("excludedatanodes")
	dn, ok := chooseDatanode(dns, held, splitList(excl), time.Now(), h.cfg.StaleAfter, rand.IntN)
	if !ok {
		if excl == "" {
			excl = "null"
		}
		return nil, hdfs.ErrIO.New("Failed to find datanode, suggest to check cluster health. excludeDatanodes=" + excl)
	}
	q := url.Values{}
	for k, vs := range req.query {
		switch strings.ToLower(k) {
		case "noredirect", "namenoderpcaddress", "user.name":
			continue
		}
		q[k] = vs
	}
	q.Set("user.name", req.user.Name)
	if h.cfg.RPCAddr != "" {
		q.Set("namenoderpcaddress", h.cfg.RPCAddr)
	}
	u := url.URL{Scheme: "http", Host: dn.HTTPAddr, Path: Prefix + req.path, RawQuery: q.Encode()}
	return redirect{location: u.String(), noredirect: noredirect}, nil
}

// splitList splits a comma-separated parameter, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// chooseDatanode picks the datanode to redirect to among dns (those with
// an HTTP address and not named in exclude, by HTTP or data address): a
// random one of the best rank, the ranks being, best first, a fresh holder
// (a datanode in held whose last heartbeat is at most staleAfter old), any
// fresh datanode (it reads the block from a holder), a stale holder, any
// stale datanode. Hadoop's namenode likewise prefers a replica's holder
// for OPEN and APPEND and takes a random datanode for CREATE, and HDFS
// moves stale datanodes to the end of block locations; unlike Hadoop, a
// block with no live holder still gets a datanode, whose read then reports
// the missing block. pick(n) returns a random index below n.
func chooseDatanode(dns []DatanodeHTTP, held map[string]bool, exclude []string, now time.Time, staleAfter time.Duration, pick func(n int) int) (DatanodeHTTP, bool) {
	var ranked [4][]DatanodeHTTP
	for _, d := range dns {
		if d.HTTPAddr == "" || excluded(d, exclude) {
			continue
		}
		rank := 1
		if held[d.StorageID] {
			rank = 0
		}
		if now.Sub(d.LastSeen) > staleAfter {
			rank += 2
		}
		ranked[rank] = append(ranked[rank], d)
	}
	for _, c := range ranked {
		if len(c) > 0 {
			return c[pick(len(c))], true
		}
	}
	return DatanodeHTTP{}, false
}

func excluded(d DatanodeHTTP, exclude []string) bool {
	for _, e := range exclude {
		if e == d.HTTPAddr || e == d.DataAddr {
			return true
		}
	}
	return false
}
