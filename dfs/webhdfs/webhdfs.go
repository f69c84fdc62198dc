// Package webhdfs serves Hadoop's WebHDFS REST API
// (https://hadoop.apache.org/docs/stable/hadoop-project-dist/hadoop-hdfs/WebHDFS.html)
// over a dfs namespace: `/webhdfs/v1/<path>?op=...&user.name=...`, with
// Hadoop's JSON bodies (dfs/hdfs's types, byte for byte) and its
// RemoteException errors and status codes, so that curl and existing
// WebHDFS clients work unchanged.
//
// # Operations
//
// Metadata operations are served: GETFILESTATUS, LISTSTATUS,
// LISTSTATUS_BATCH, GETCONTENTSUMMARY, GETHOMEDIRECTORY (GET); MKDIRS,
// RENAME, SETPERMISSION, SETOWNER, SETREPLICATION, SETTIMES (PUT); DELETE
// (DELETE). The data operations CREATE (PUT), APPEND (POST) and OPEN (GET)
// are served in two steps, as Hadoop's: the namenode's Handler answers them
// with a 307 Temporary Redirect to a datanode's WebHDFS (or, with
// noredirect=true, a 200 {"Location": ...}), and the datanode's DataHandler
// moves the bytes (see redirect.go and data.go). Every other
// operation Hadoop knows is an UnsupportedOperationException ("GETACLSTATUS is
// not supported"), and an operation Hadoop does not know for the request's
// HTTP method is Hadoop's IllegalArgumentException ("Invalid value for
// webhdfs parameter "op": No enum constant
// org.apache.hadoop.hdfs.web.resources.PutOpParam.Op.GETFILESTATUS"): Hadoop
// has one operation enum per HTTP method, so a GET operation sent with PUT is
// reported exactly like an unknown one.
//
// Parameter names and the op value are case-insensitive, as Hadoop's. Bad
// values are 400 IllegalArgumentExceptions with Hadoop's messages ("Invalid
// value for webhdfs parameter "permission": Failed to parse "9" as a radix-8
// short integer.").
//
// # Users and groups
//
// Authentication is Hadoop's "simple" kind: the caller is the user.name
// parameter, trusted as given. Without it the caller is Config.DefaultUser
// ("dr.who", hadoop.http.staticuser.user's default), an ordinary user that
// owns nothing: it can read what others may read, and its writes fail
// permission checks (403 AccessControlException) wherever "other" lacks the
// right. Groups come from Config.Groups, a static mapping of user names to
// groups (Hadoop's static mapping, hadoop.user.group.static.mapping.overrides);
// a user not in it has no groups. The superuser (the namenode's user) and the
// members of the supergroup pass every check; both are the namespace's
// configuration. Impersonation (doas) is refused: there are no proxy users.
package webhdfs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kura-dev/kura/dfs/hdfs"
	"github.com/kura-dev/kura/dfs/namespace"
)

// Prefix is the URL path prefix of WebHDFS; the rest of the path is the HDFS
// path ("/webhdfs/v1" alone is "/").
const Prefix = "/webhdfs/v1"

// DefaultUser is the caller of a request without user.name, Hadoop's
// hadoop.http.staticuser.user default.
const DefaultUser = "dr.who"

// DefaultBatchListing is the most entries of a LISTSTATUS_BATCH page
// (dfs.ls.limit's default).
const DefaultBatchListing = namespace.DefaultListLimit

// maxCountedRemaining bounds how many entries after a LISTSTATUS_BATCH page
// are counted for remainingEntries; beyond it the count is a lower bound.
const maxCountedRemaining = 10 * namespace.DefaultListLimit

// Config configures a Handler.
type Config struct {
	// DefaultUser is the caller of requests without user.name (DefaultUser
	// when empty).
	DefaultUser string
	// Groups maps user names to their groups; users not in it have none.
	Groups map[string][]string
	// BatchListing is the most entries of a LISTSTATUS_BATCH page
	// (DefaultBatchListing when <= 0).
	BatchListing int
	// DefaultReplication is SETREPLICATION's replication when the
	// replication parameter is missing (namespace.DefaultReplication when 0).
	DefaultReplication int16
	// Datanodes returns the live datanodes that serve WebHDFS over HTTP,
	// where CREATE, APPEND and OPEN are redirected (nil, or an empty
	// result: the data operations fail with Hadoop's IOException "Failed to
	// find datanode, suggest to check cluster health."). It is called once
	// per data operation.
	Datanodes func() []DatanodeHTTP
	// RPCAddr is the namenode's RPC address, passed to the datanode as the
	// redirect's namenoderpcaddress parameter (omitted when empty).
	RPCAddr string
	// StaleAfter is the age of a datanode's last heartbeat beyond which it
	// is chosen for a redirect only when no fresher datanode fits, as HDFS
	// avoids stale datanodes (DefaultStaleAfter when <= 0).
	StaleAfter time.Duration
}

// Handler is an http.Handler serving WebHDFS over a namespace. It holds no
// state of its own: any number of handlers, in any number of namenodes, may
// serve one metadata database.
type Handler struct {
	ns  *namespace.Namespace
	cfg Config
}

// New returns a handler for ns.
func New(ns *namespace.Namespace, cfg Config) *Handler {
	if cfg.DefaultUser == "" {
		cfg.DefaultUser = DefaultUser
	}
	if cfg.BatchListing <= 0 {
		cfg.BatchListing = DefaultBatchListing
	}
	if cfg.DefaultReplication == 0 {
		cfg.DefaultReplication = namespace.DefaultReplication
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = DefaultStaleAfter
	}
	return &Handler{ns: ns, cfg: cfg}
}

// opsByMethod lists every operation of Hadoop's GetOpParam, PutOpParam,
// PostOpParam and DeleteOpParam enums.
var opsByMethod = map[string]struct {
	enum string
	ops  []string
}{
	http.MethodGet: {"GetOpParam", []string{"OPEN", "GETFILESTATUS", "LISTSTATUS", "GETCONTENTSUMMARY",
		"GETQUOTAUSAGE", "GETFILECHECKSUM", "GETHOMEDIRECTORY", "GETDELEGATIONTOKEN", "GETTRASHROOT",
		"GETXATTRS", "GETACLSTATUS", "LISTXATTRS", "CHECKACCESS", "LISTSTATUS_BATCH", "GETSNAPSHOTDIFF",
		"GETSNAPSHOTDIFFLISTING", "GETSNAPSHOTTABLEDIRECTORYLIST", "GETSNAPSHOTLIST", "GETSTORAGEPOLICY",
		"GETALLSTORAGEPOLICY", "GETSERVERDEFAULTS", "GETSTATUS", "GETECPOLICY", "GETFILEBLOCKLOCATIONS",
		"GETBLOCKLOCATIONS", "GETTRASHROOTS", "GETLINKTARGET", "GETFILELINKSTATUS", "NULL"}},
	http.MethodPut: {"PutOpParam", []string{"CREATE", "MKDIRS", "CREATESYMLINK", "RENAME", "SETREPLICATION",
		"SETOWNER", "SETPERMISSION", "SETTIMES", "RENEWDELEGATIONTOKEN", "CANCELDELEGATIONTOKEN",
		"MODIFYACLENTRIES", "REMOVEACLENTRIES", "REMOVEDEFAULTACL", "REMOVEACL", "SETACL", "SETXATTR",
		"REMOVEXATTR", "ENABLEECPOLICY", "DISABLEECPOLICY", "SETECPOLICY", "ALLOWSNAPSHOT",
		"DISALLOWSNAPSHOT", "CREATESNAPSHOT", "RENAMESNAPSHOT", "SETSTORAGEPOLICY", "SATISFYSTORAGEPOLICY",
		"SETQUOTA", "SETQUOTABYSTORAGETYPE", "NULL"}},
	http.MethodPost: {"PostOpParam", []string{"APPEND", "CONCAT", "TRUNCATE", "UNSETECPOLICY",
		"UNSETSTORAGEPOLICY", "NULL"}},
	http.MethodDelete: {"DeleteOpParam", []string{"DELETE", "DELETESNAPSHOT", "NULL"}},
}

// userPattern is Hadoop's UserParam domain (dfs.webhdfs.user.provider.user.pattern).
var userPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9._-]*[$]?$`)

// request is one parsed request.
type request struct {
	ctx    context.Context
	op     string
	path   string
	params map[string]string // lower-cased names, first value
	query  url.Values        // the parameters as sent
	user   hdfs.User
}

func (r *request) param(name string) (string, bool) {
	v, ok := r.params[name]
	return v, ok
}

// parseRequest reads a WebHDFS request's path and parameters; ok is false
// when it is not a WebHDFS path (the error is then written).
func parseRequest(w http.ResponseWriter, r *http.Request) (req *request, ok bool) {
	rest, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok || (rest != "" && rest[0] != '/') {
		writeError(w, http.StatusNotFound, hdfs.ErrFileNotFound.New("Not a WebHDFS path: "+r.URL.Path+" (want "+Prefix+"/<path>?op=...)"))
		return nil, false
	}
	if rest == "" {
		rest = "/"
	}
	// url.Values.Query would drop a pair it cannot parse and carry on
	// without it (an op on "/" for a path=... it lost): refuse instead.
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, hdfs.ErrIllegalArgument.New("Invalid query string: "+err.Error()))
		return nil, false
	}
	req = &request{ctx: r.Context(), path: rest, params: map[string]string{}, query: query}
	for k, vs := range req.query {
		k = strings.ToLower(k)
		if _, dup := req.params[k]; !dup && len(vs) > 0 {
			req.params[k] = vs[0]
		}
	}
	req.op = strings.ToUpper(req.params["op"])
	if req.op == "" {
		req.op = "NULL"
	}
	return req, true
}

// ServeHTTP serves one WebHDFS request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, ok := parseRequest(w, r)
	if !ok {
		return
	}
	enum, known := opsByMethod[r.Method]
	if !known {
		w.Header().Set("Allow", "GET, PUT, POST, DELETE")
		writeError(w, http.StatusMethodNotAllowed, hdfs.ErrUnsupportedOperation.New("HTTP method "+r.Method+" is not supported by WebHDFS"))
		return
	}
	if !slices.Contains(enum.ops, req.op) {
		fail(w, paramError("op", "No enum constant org.apache.hadoop.hdfs.web.resources."+enum.enum+".Op."+req.op))
		return
	}
	user, err := resolveUser(req, h.cfg.DefaultUser, h.cfg.Groups)
	if err != nil {
		fail(w, err)
		return
	}
	req.user = user
	body, err := h.serve(req)
	if err != nil {
		fail(w, err)
		return
	}
	if rd, ok := body.(redirect); ok {
		writeRedirect(w, rd)
		return
	}
	if body == nil {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		return
	}
	writeJSON(w, body)
}

// writeJSON writes body as a 200 JSON response.
func writeJSON(w http.ResponseWriter, body any) {
	b, err := hdfs.Marshal(body)
	if err != nil {
		fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// resolveUser returns the caller from user.name (or defaultUser) with its
// groups, and refuses impersonation.
func resolveUser(req *request, defaultUser string, groups map[string][]string) (hdfs.User, error) {
	name, ok := req.param("user.name")
	if !ok || name == "" {
		name = defaultUser
	} else if !userPattern.MatchString(name) {
		return hdfs.User{}, paramError("user.name", `Invalid value: "`+name+`" does not belong to the domain `+userPattern.String())
	}
	if doas, ok := req.param("doas"); ok && doas != "" && doas != name {
		return hdfs.User{}, hdfs.ErrAccessControl.New("User: " + name + " is not allowed to impersonate " + doas)
	}
	return hdfs.User{Name: name, Groups: groups[name]}, nil
}

// serve runs the operation and returns the body to encode (nil: an empty 200).
func (h *Handler) serve(req *request) (any, error) {
	ns, ctx, u, p := h.ns, req.ctx, req.user, req.path
	switch req.op {
	case "GETFILESTATUS":
		st, err := ns.Stat(ctx, u, p)
		if err != nil {
			return nil, err
		}
		return hdfs.FileStatusResponse{FileStatus: st.WebHDFS("")}, nil
	case "LISTSTATUS":
		return h.listStatus(req)
	case "LISTSTATUS_BATCH":
		return h.listStatusBatch(req)
	case "GETCONTENTSUMMARY":
		cs, err := ns.ContentSummary(ctx, u, p)
		if err != nil {
			return nil, err
		}
		return hdfs.ContentSummaryResponse{ContentSummary: cs.WebHDFS()}, nil
	case "GETHOMEDIRECTORY":
		return hdfs.PathResponse{Path: hdfs.HomeDirectory(u.Name)}, nil
	case "MKDIRS":
		perm, err := permParam(req, hdfs.WebHDFSDirDefault)
		if err != nil {
			return nil, err
		}
		if err := ns.Mkdirs(ctx, u, p, perm, true); err != nil {
			return nil, err
		}
		return hdfs.BooleanResponse{Boolean: true}, nil
	case "RENAME":
		return h.rename(req)
	case "DELETE":
		recursive, err := boolParam(req, "recursive", false)
		if err != nil {
			return nil, err
		}
		ok, err := ns.Delete(ctx, u, p, recursive)
		if err != nil {
			return nil, err
		}
		return hdfs.BooleanResponse{Boolean: ok}, nil
	case "SETPERMISSION":
		perm, err := permParam(req, hdfs.WebHDFSDirDefault)
		if err != nil {
			return nil, err
		}
		return nil, ns.SetPermission(ctx, u, p, perm)
	case "SETOWNER":
		owner, _ := req.param("owner")
		group, _ := req.param("group")
		if owner == "" && group == "" {
			return nil, hdfs.ErrIllegalArgument.New("Both owner and group are empty.")
		}
		return nil, ns.SetOwner(ctx, u, p, owner, group)
	case "SETREPLICATION":
		repl := h.cfg.DefaultReplication
		if s, ok := req.param("replication"); ok && s != "" {
			v, err := strconv.ParseInt(s, 10, 16)
			if err != nil {
				return nil, paramError("replication", `Failed to parse "`+s+`" as a radix-10 short integer.`)
			}
			repl = int16(v)
		}
		ok, err := ns.SetReplication(ctx, u, p, repl)
		if err != nil {
			return nil, err
		}
		return hdfs.BooleanResponse{Boolean: ok}, nil
	case "SETTIMES":
		mtime, err := longParam(req, "modificationtime", -1)
		if err != nil {
			return nil, err
		}
		atime, err := longParam(req, "accesstime", -1)
		if err != nil {
			return nil, err
		}
		return nil, ns.SetTimes(ctx, u, p, mtime, atime)
	case "CREATE":
		return h.redirectCreate(req)
	case "APPEND":
		return h.redirectAppend(req)
	case "OPEN":
		return h.redirectOpen(req)
	}
	return nil, hdfs.ErrUnsupportedOperation.New(req.op + " is not supported")
}

// listStatus lists a whole directory, page by page (as Hadoop's namenode
// does: the listing is not one atomic snapshot of a directory that changes
// meanwhile).
func (h *Handler) listStatus(req *request) (any, error) {
	var out []hdfs.FileStatus
	after := ""
	for {
		l, err := h.ns.List(req.ctx, req.user, req.path, after, 0)
		if err != nil {
			return nil, err
		}
		if out, err = h.appendEntries(req, out, l); err != nil {
			return nil, err
		}
		if !l.HasMore || len(l.Entries) == 0 {
			break
		}
		after = l.Entries[len(l.Entries)-1].Name
	}
	return hdfs.FileStatusesResponse{FileStatuses: hdfs.FileStatuses{FileStatus: out}}, nil
}

// appendEntries converts a listing page. Listing a file gives the file
// itself, with an empty pathSuffix as Hadoop's LISTSTATUS of a file.
func (h *Handler) appendEntries(req *request, out []hdfs.FileStatus, l *namespace.Listing) ([]hdfs.FileStatus, error) {
	if len(l.Entries) == 1 && !l.HasMore && !l.Entries[0].IsDir {
		self, err := h.isSelf(req, l.Entries[0])
		if err != nil {
			return nil, err
		}
		if self {
			return append(out, l.Entries[0].WebHDFS("")), nil
		}
	}
	for _, e := range l.Entries {
		out = append(out, e.WebHDFS(e.Name))
	}
	return out, nil
}

// isSelf reports whether the only entry e of the listing of req.path is
// req.path itself (the listing of a file), not a child of the same name.
func (h *Handler) isSelf(req *request, e *namespace.FileStatus) (bool, error) {
	clean, err := hdfs.Clean(req.path)
	if err != nil || clean == "/" || hdfs.Base(clean) != e.Name {
		return false, nil
	}
	st, err := h.ns.Stat(req.ctx, req.user, clean)
	if err != nil {
		if errors.Is(err, hdfs.ErrFileNotFound) {
			return false, nil
		}
		return false, err
	}
	return st.ID == e.ID, nil
}

// listStatusBatch serves one page after startAfter. remainingEntries is
// exact up to maxCountedRemaining entries after the page and a lower bound
// beyond (Hadoop's clients only compare it with 0).
func (h *Handler) listStatusBatch(req *request) (any, error) {
	after, _ := req.param("startafter")
	l, err := h.ns.List(req.ctx, req.user, req.path, after, h.cfg.BatchListing)
	if err != nil {
		return nil, err
	}
	var remaining int64
	if l.HasMore && len(l.Entries) > 0 {
		next := l.Entries[len(l.Entries)-1].Name
		for remaining < maxCountedRemaining {
			m, err := h.ns.List(req.ctx, req.user, req.path, next, 0)
			if err != nil {
				return nil, err
			}
			remaining += int64(len(m.Entries))
			if !m.HasMore || len(m.Entries) == 0 {
				break
			}
			next = m.Entries[len(m.Entries)-1].Name
		}
		if remaining == 0 {
			// Emptied meanwhile; still tell the client to ask again.
			remaining = 1
		}
	}
	entries, err := h.appendEntries(req, nil, l)
	if err != nil {
		return nil, err
	}
	return hdfs.DirectoryListingResponse{DirectoryListing: hdfs.DirectoryListing{
		PartialListing:   hdfs.PartialListing{FileStatuses: hdfs.FileStatuses{FileStatus: entries}},
		RemainingEntries: remaining,
	}}, nil
}

// rename is RENAME: the old rename (boolean result) without renameoptions,
// rename2 (an empty 200, errors as exceptions) with renameoptions NONE or
// OVERWRITE, as Hadoop's namenode.
func (h *Handler) rename(req *request) (any, error) {
	dst, ok := req.param("destination")
	if !ok || dst == "" {
		return nil, hdfs.ErrIllegalArgument.New("Required param destination for op: RENAME is null or empty")
	}
	if !strings.HasPrefix(dst, "/") {
		return nil, paramError("destination", `Invalid parameter value: destination = "`+dst+`" is not an absolute path.`)
	}
	if opts, ok := req.param("renameoptions"); ok && opts != "" {
		var ro namespace.RenameOptions
		for _, o := range strings.Split(opts, ",") {
			switch strings.ToUpper(strings.TrimSpace(o)) {
			case "NONE":
			case "OVERWRITE":
				ro.Overwrite = true
			default:
				return nil, paramError("renameoptions", "No enum constant org.apache.hadoop.fs.Options.Rename."+strings.ToUpper(strings.TrimSpace(o)))
			}
		}
		return nil, h.ns.Rename2(req.ctx, req.user, req.path, dst, ro)
	}
	ok, err := h.ns.Rename(req.ctx, req.user, req.path, dst)
	if err != nil {
		return nil, err
	}
	return hdfs.BooleanResponse{Boolean: ok}, nil
}

// paramError is Hadoop's report of a bad parameter value (ExceptionHandler
// turning a ParamException into an IllegalArgumentException).
func paramError(name, cause string) error {
	return hdfs.ErrIllegalArgument.New(`Invalid value for webhdfs parameter "` + name + `": ` + cause)
}

func permParam(req *request, def hdfs.FsPermission) (hdfs.FsPermission, error) {
	s, ok := req.param("permission")
	if !ok || s == "" {
		return def, nil
	}
	p, err := hdfs.ParseOctal(s)
	if err != nil {
		return 0, paramError("permission", hdfs.ToRemote(err).Message)
	}
	return p, nil
}

func boolParam(req *request, name string, def bool) (bool, error) {
	s, ok := req.param(name)
	if !ok || s == "" {
		return def, nil
	}
	switch strings.ToLower(s) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, paramError(name, `Failed to parse "`+s+`" to Boolean.`)
}

func longParam(req *request, name string, def int64) (int64, error) {
	return intParam(req, name, def, 64, noMin)
}

// intParam parses the radix-10 integer parameter name as Hadoop's
// ShortParam (bits 16), IntegerParam (32) or LongParam (64) does, with its
// lower bound lo (noMin: none).
func intParam(req *request, name string, def int64, bits int, lo int64) (int64, error) {
	s, ok := req.param(name)
	if !ok || s == "" {
		return def, nil
	}
	v, err := strconv.ParseInt(s, 10, bits)
	if err != nil {
		kind := map[int]string{16: "short integer", 32: "integer", 64: "long integer"}[bits]
		return 0, paramError(name, `Failed to parse "`+s+`" as a radix-10 `+kind+`.`)
	}
	if v < lo {
		return 0, paramError(name, "Invalid parameter range: "+name+" = "+strconv.FormatInt(v, 10)+" < "+strconv.FormatInt(lo, 10))
	}
	return v, nil
}

// fail writes err as a RemoteException with its WebHDFS status.
func fail(w http.ResponseWriter, err error) {
	if errors.Is(err, context.Canceled) {
		// The client went away; nobody reads the answer.
		return
	}
	re := hdfs.ToRemote(err)
	writeError(w, re.HTTPStatus(), re)
}

func writeError(w http.ResponseWriter, status int, re *hdfs.RemoteException) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(re.JSON())
}

// String describes the handler for logs.
func (h *Handler) String() string {
	return fmt.Sprintf("webhdfs(default user %s, %d mapped users)", h.cfg.DefaultUser, len(h.cfg.Groups))
}
