package webhdfs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/datanode"
	"github.com/kura-dev/kura/dfs/dnmanager"
	"github.com/kura-dev/kura/dfs/hdfs"
	"github.com/kura-dev/kura/dfs/namenode"
	"github.com/kura-dev/kura/dfs/webhdfs"
)

// cluster is an in-process namenode on SQLite with three datanodes, each
// serving WebHDFS's data operations.
type cluster struct {
	t     *testing.T
	nn    *namenode.Namenode
	base  string   // http://namenode/webhdfs/v1
	https []string // the datanodes' HTTP addresses
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	nn, err := namenode.Start(ctx, namenode.Config{
		MetaURL:             "sqlite://" + filepath.Join(t.TempDir(), "meta.db"),
		HTTPAddr:            "127.0.0.1:0",
		RPCAddr:             "127.0.0.1:0",
		Datanodes:           dnmanager.Config{HeartbeatInterval: 100 * time.Millisecond},
		MaintenanceInterval: -1,
		Logger:              quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nn.Close() })
	c := &cluster{t: t, nn: nn, base: "http://" + nn.HTTPAddr() + webhdfs.Prefix}
	for i := range 3 {
		var httpAddr string
		if i == 0 {
			// A DataHandler of our own on an httptest server.
			dc, err := client.New(client.Config{Namenodes: []string{nn.RPCAddr()}, User: "nobody"})
			if err != nil {
				t.Fatal(err)
			}
			h := webhdfs.NewDataHandler(dc, webhdfs.DataConfig{Logger: quiet})
			srv := httptest.NewServer(h)
			t.Cleanup(func() { srv.Close(); h.Close(); dc.Close() })
			httpAddr = strings.TrimPrefix(srv.URL, "http://")
		} else {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ds, err := webhdfs.StartDataServer(ln, webhdfs.DataServerConfig{Namenodes: []string{nn.RPCAddr()}, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ds.Close() })
			httpAddr = ds.Addr()
		}
		d, err := datanode.Start(ctx, datanode.Config{
			DataDir: t.TempDir(), DataAddr: "127.0.0.1:0", HTTPAddr: httpAddr,
			Namenodes: []string{nn.RPCAddr()}, HeartbeatInterval: 100 * time.Millisecond, Logger: quiet,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		c.https = append(c.https, httpAddr)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ready := 0
		for _, d := range nn.Datanodes() {
			if d.Live && d.HTTPAddr != "" && d.Remaining > 0 {
				ready++
			}
		}
		if ready == 3 {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("datanodes not ready: %+v", nn.Datanodes())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// noFollow is an HTTP client that does not follow redirects, as curl
// without -L.
var noFollow = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       60 * time.Second,
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func send(t *testing.T, hc *http.Client, method, u string, body []byte) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, u, err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

// step1 sends a data operation to the namenode and returns the redirect's
// Location, checking its shape.
func (c *cluster) step1(method, target, op string) *url.URL {
	c.t.Helper()
	r := send(c.t, noFollow, method, c.base+target, nil)
	if r.code != http.StatusTemporaryRedirect || len(r.body) != 0 {
		c.t.Fatalf("%s %s: %d %s, want an empty 307", method, target, r.code, r.body)
	}
	loc, err := url.Parse(r.header.Get("Location"))
	if err != nil {
		c.t.Fatal(err)
	}
	q := loc.Query()
	if loc.Scheme != "http" || !slices.Contains(c.https, loc.Host) || !strings.HasPrefix(loc.Path, webhdfs.Prefix+"/") ||
		!strings.EqualFold(q.Get("op"), op) || q.Get("namenoderpcaddress") != c.nn.RPCAddr() || q.Get("user.name") == "" {
		c.t.Fatalf("%s %s: Location %s", method, target, loc)
	}
	return loc
}

// failsWith checks a RemoteException answer.
func failsWith(t *testing.T, what string, r response, code int, class *hdfs.Class, msg string) {
	t.Helper()
	re, err := hdfs.ParseRemoteException(r.body)
	if err != nil {
		t.Fatalf("%s: %d %s: %v", what, r.code, r.body, err)
	}
	if r.code != code || re.JavaClassName != class.JavaClassName() || !strings.Contains(re.Message, msg) {
		t.Fatalf("%s: %d %s, want %d %s containing %q", what, r.code, r.body, code, class.Name(), msg)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
}

func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// TestDataOps drives CREATE, OPEN and APPEND through the namenode's
// redirect and the datanodes' handlers with plain HTTP, as curl does.
func TestDataOps(t *testing.T) {
	c := startCluster(t)
	mustOK := func(method, target string) {
		t.Helper()
		if r := send(t, noFollow, method, c.base+target, nil); r.code != 200 {
			t.Fatalf("%s %s: %d %s", method, target, r.code, r.body)
		}
	}
	mustOK("PUT", "/user/alice?op=MKDIRS&user.name=root")
	mustOK("PUT", "/user/alice?op=SETOWNER&owner=alice&user.name=root")

	// CREATE: 307 to a datanode with every parameter; nothing created yet.
	const f = "/user/alice/f"
	data := randomBytes(3<<20+1<<19+123, 1) // 3.5 MiB and a bit: 4 blocks of 1 MiB
	loc := c.step1("PUT", f+"?op=CREATE&user.name=alice&blocksize=1048576&replication=3&permission=640&overwrite=false&buffersize=4096", "CREATE")
	q := loc.Query()
	if loc.Path != webhdfs.Prefix+f || q.Get("user.name") != "alice" || q.Get("blocksize") != "1048576" ||
		q.Get("replication") != "3" || q.Get("permission") != "640" || q.Get("overwrite") != "false" || q.Get("buffersize") != "4096" {
		t.Fatalf("CREATE Location %s", loc)
	}
	if r := send(t, noFollow, "GET", c.base+f+"?op=GETFILESTATUS&user.name=alice", nil); r.code != 404 {
		t.Fatalf("the namenode's CREATE step made the file: %d %s", r.code, r.body)
	}
	// The bytes go to the Location: 201 with the file's hdfs:// URI, as Hadoop.
	r := send(t, noFollow, "PUT", loc.String(), data)
	if r.code != http.StatusCreated || len(r.body) != 0 || r.header.Get("Location") != "hdfs://"+c.nn.RPCAddr()+f {
		t.Fatalf("CREATE at the datanode: %d %v %s", r.code, r.header, r.body)
	}
	var st hdfs.FileStatusResponse
	r = send(t, noFollow, "GET", c.base+f+"?op=GETFILESTATUS&user.name=alice", nil)
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Fatal(err)
	}
	if fs := st.FileStatus; fs.Length != int64(len(data)) || fs.BlockSize != 1<<20 || fs.Replication != 3 ||
		fs.Permission != "640" || fs.Owner != "alice" || fs.Type != "FILE" {
		t.Fatalf("status after CREATE: %s", r.body)
	}

	// OPEN, whole and in parts: the namenode redirects, the datanode
	// streams.
	open := func(params string) []byte {
		t.Helper()
		loc := c.step1("GET", f+"?op=OPEN&user.name=alice"+params, "OPEN")
		r := send(t, noFollow, "GET", loc.String(), nil)
		if r.code != 200 || r.header.Get("Content-Type") != "application/octet-stream" ||
			r.header.Get("Content-Length") != fmt.Sprint(len(r.body)) {
			t.Fatalf("OPEN%s at the datanode: %d %v %.200s", params, r.code, r.header, r.body)
		}
		return r.body
	}
	if got := open(""); !bytes.Equal(got, data) {
		t.Fatalf("OPEN: %d bytes differing from the %d written", len(got), len(data))
	}
	for _, c := range []struct {
		params   string
		from, to int
	}{
		{"&offset=1048566&length=20", 1<<20 - 10, 1<<20 + 10}, // across a block boundary
		{"&offset=3000000", 3000000, len(data)},
		{"&length=5", 0, 5},
		{"&offset=10&length=0", 10, 10},
		{fmt.Sprintf("&offset=%d&length=1000", len(data)-7), len(data) - 7, len(data)},
	} {
		if got := open(c.params); !bytes.Equal(got, data[c.from:c.to]) {
			t.Fatalf("OPEN%s: %d bytes, want bytes %d..%d", c.params, len(got), c.from, c.to)
		}
	}

	// noredirect=true: 200 {"Location":"..."} instead of the 307.
	for _, target := range []string{f + "?op=OPEN&noredirect=true&user.name=alice", "/user/alice/g?op=CREATE&noredirect=true&user.name=alice"} {
		method := map[bool]string{true: "GET", false: "PUT"}[strings.Contains(target, "OPEN")]
		r := send(t, noFollow, method, c.base+target, nil)
		var lr hdfs.LocationResponse
		dec := json.NewDecoder(bytes.NewReader(r.body))
		dec.DisallowUnknownFields()
		if r.code != 200 || r.header.Get("Content-Type") != "application/json" || dec.Decode(&lr) != nil {
			t.Fatalf("%s %s: %d %s", method, target, r.code, r.body)
		}
		again, _ := hdfs.Marshal(lr)
		u, err := url.Parse(lr.Location)
		if err != nil || !bytes.Equal(again, r.body) || !strings.HasPrefix(string(r.body), `{"Location":"http://`) ||
			!slices.Contains(c.https, u.Host) || u.Query().Has("noredirect") {
			t.Fatalf("%s %s: body %s", method, target, r.body)
		}
	}

	// Go's default client follows the 307s itself (a PUT with a body it
	// can send again, then a GET).
	small := randomBytes(100_000, 2)
	req, _ := http.NewRequest("PUT", c.base+"/user/alice/small?op=CREATE&user.name=alice", bytes.NewReader(small))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("CREATE through http.DefaultClient: %d", resp.StatusCode)
	}
	resp, err = http.Get(c.base + "/user/alice/small?op=OPEN&user.name=alice")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, small) {
		t.Fatalf("OPEN through http.DefaultClient: %d, %d bytes, %v", resp.StatusCode, len(got), err)
	}
	resp, err = http.Get(c.base + "/user/alice/f?op=OPEN&user.name=alice&offset=1048576&length=1048576")
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, data[1<<20:2<<20]) {
		t.Fatalf("OPEN of block 1 through http.DefaultClient: %d, %d bytes, %v", resp.StatusCode, len(got), err)
	}

	// Errors, at the namenode's step or the datanode's, as Hadoop reports
	// them.
	loc = c.step1("PUT", f+"?op=CREATE&user.name=alice", "CREATE")
	failsWith(t, "CREATE over a file without overwrite", send(t, noFollow, "PUT", loc.String(), []byte("x")),
		403, hdfs.ErrFileAlreadyExists, f)
	failsWith(t, "OPEN of a missing file", send(t, noFollow, "GET", c.base+"/user/alice/nope?op=OPEN&user.name=alice", nil),
		404, hdfs.ErrFileNotFound, "File does not exist: /user/alice/nope")
	failsWith(t, "OPEN by another user", send(t, noFollow, "GET", c.base+f+"?op=OPEN&user.name=bob", nil),
		403, hdfs.ErrAccessControl, "Permission denied: user=bob, access=READ")
	failsWith(t, "APPEND by another user", send(t, noFollow, "POST", "http://"+c.https[1]+webhdfs.Prefix+f+"?op=APPEND&user.name=bob", []byte("x")),
		403, hdfs.ErrAccessControl, "Permission denied: user=bob, access=WRITE")
	loc = c.step1("PUT", "/user/alice/bobs?op=CREATE&user.name=bob", "CREATE")
	failsWith(t, "CREATE by another user", send(t, noFollow, "PUT", loc.String(), []byte("x")),
		403, hdfs.ErrAccessControl, "Permission denied: user=bob, access=WRITE")
	failsWith(t, "OPEN with a negative offset", send(t, noFollow, "GET", c.base+f+"?op=OPEN&offset=-1&user.name=alice", nil),
		400, hdfs.ErrIllegalArgument, `Invalid value for webhdfs parameter "offset": Invalid parameter range: offset = -1 < 0`)
	beyond := fmt.Sprintf("%s?op=OPEN&offset=%d&user.name=alice", f, len(data))
	outOfRange := fmt.Sprintf("Offset=%d out of the range [0, %d); OPEN, path=%s", len(data), len(data), f)
	failsWith(t, "OPEN at the end", send(t, noFollow, "GET", c.base+beyond, nil), 403, hdfs.ErrIO, outOfRange)
	// Straight to a datanode (a client keeping an old Location).
	dn := "http://" + c.https[2] + webhdfs.Prefix
	failsWith(t, "OPEN at the end, at the datanode", send(t, noFollow, "GET", dn+beyond, nil), 403, hdfs.ErrIO, outOfRange)
	failsWith(t, "OPEN of a missing file, at the datanode", send(t, noFollow, "GET", dn+"/nope?op=OPEN", nil), 404, hdfs.ErrFileNotFound, "/nope")
	failsWith(t, "OPEN by another user, at the datanode", send(t, noFollow, "GET", dn+f+"?op=OPEN&user.name=bob", nil), 403, hdfs.ErrAccessControl, "user=bob")
	failsWith(t, "a bad length, at the datanode", send(t, noFollow, "GET", dn+f+"?op=OPEN&length=x&user.name=alice", nil), 400, hdfs.ErrIllegalArgument, `"length"`)
	failsWith(t, "replication 0, at the datanode", send(t, noFollow, "PUT", dn+"/user/alice/r0?op=CREATE&replication=0&user.name=alice", []byte("x")),
		403, hdfs.ErrIO, "Requested replication factor of 0 is less than the required minimum of 1")
	failsWith(t, "a metadata operation at the datanode", send(t, noFollow, "GET", dn+f+"?op=GETFILESTATUS", nil), 400, hdfs.ErrIllegalArgument, "Invalid operation GETFILESTATUS")
	failsWith(t, "a bad user name, at the datanode", send(t, noFollow, "GET", dn+f+"?op=OPEN&user.name=a%20b", nil), 400, hdfs.ErrIllegalArgument, `"user.name"`)

	// CREATE with overwrite replaces the file.
	loc = c.step1("PUT", "/user/alice/small?op=CREATE&overwrite=true&user.name=alice", "CREATE")
	if r := send(t, noFollow, "PUT", loc.String(), []byte("new")); r.code != 201 {
		t.Fatalf("CREATE with overwrite: %d %s", r.code, r.body)
	}
	loc = c.step1("GET", "/user/alice/small?op=OPEN&user.name=alice", "OPEN")
	if r := send(t, noFollow, "GET", loc.String(), nil); r.code != 200 || string(r.body) != "new" {
		t.Fatalf("OPEN after an overwrite: %d %q", r.code, r.body)
	}
	// An empty file: created from an empty body, opened empty.
	loc = c.step1("PUT", "/user/alice/empty?op=CREATE&user.name=alice", "CREATE")
	if r := send(t, noFollow, "PUT", loc.String(), []byte{}); r.code != 201 {
		t.Fatalf("CREATE of an empty file: %d %s", r.code, r.body)
	}
	loc = c.step1("GET", "/user/alice/empty?op=OPEN&user.name=alice", "OPEN")
	if r := send(t, noFollow, "GET", loc.String(), nil); r.code != 200 || len(r.body) != 0 || r.header.Get("Content-Length") != "0" {
		t.Fatalf("OPEN of an empty file: %d %v %q", r.code, r.header, r.body)
	}

	// APPEND: to the partial last block, then across a block boundary.
	want := data
	for i, n := range []int{1000, 1 << 20} {
		more := randomBytes(n, uint64(10+i))
		loc := c.step1("POST", f+"?op=APPEND&user.name=alice", "APPEND")
		if r := send(t, noFollow, "POST", loc.String(), more); r.code != 200 || len(r.body) != 0 {
			t.Fatalf("APPEND %d at the datanode: %d %s", i, r.code, r.body)
		}
		want = append(want, more...)
		if got := open(""); !bytes.Equal(got, want) {
			t.Fatalf("OPEN after APPEND %d: %d bytes, want the %d written", i, len(got), len(want))
		}
	}
	if got := open(fmt.Sprintf("&offset=%d", len(data)-3)); !bytes.Equal(got, want[len(data)-3:]) {
		t.Fatalf("OPEN of the appended bytes: %d bytes", len(got))
	}
	failsWith(t, "APPEND to a missing file", send(t, noFollow, "POST", c.base+"/user/alice/nope?op=APPEND&user.name=alice", nil),
		404, hdfs.ErrFileNotFound, "/user/alice/nope")
}

// failingBody sends n bytes, then fails once before() returns.
type failingBody struct {
	n      int
	before func()
}

func (b *failingBody) Read(p []byte) (int, error) {
	if b.n == 0 {
		b.before()
		return 0, errors.New("the client gave up")
	}
	k := min(len(p), b.n)
	clear(p[:k])
	b.n -= k
	return k, nil
}

// TestCreateInterrupted sends a CREATE whose client goes away mid-body:
// the datanode does not keep the half-written file open (or at all), so
// the next CREATE of the path succeeds.
func TestCreateInterrupted(t *testing.T) {
	c := startCluster(t)
	const f = "/tmp/half"
	if r := send(t, noFollow, "PUT", c.base+"/tmp?op=MKDIRS&permission=1777&user.name=root", nil); r.code != 200 {
		t.Fatalf("MKDIRS: %d %s", r.code, r.body)
	}
	loc := c.step1("PUT", f+"?op=CREATE&blocksize=1048576&user.name=alice", "CREATE")
	// The body fails once the datanode has created the file (and written
	// its first block).
	created := func() {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			// Not send: this runs on the transport's goroutine.
			if resp, err := http.Get(c.base + f + "?op=GETFILESTATUS&user.name=alice"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Error("the datanode did not create the file")
	}
	req, err := http.NewRequest("PUT", loc.String(), &failingBody{n: 1<<20 + 1<<19, before: created})
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 2 << 20 // the rest never comes
	if resp, err := noFollow.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the interrupted upload succeeded: %d", resp.StatusCode)
	}
	// The datanode notices, closes the writer and deletes the file.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := send(t, noFollow, "GET", c.base+f+"?op=GETFILESTATUS&user.name=alice", nil)
		if r.code == 404 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the interrupted file is still there: %d %s", r.code, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	loc = c.step1("PUT", f+"?op=CREATE&user.name=alice", "CREATE")
	if r := send(t, noFollow, "PUT", loc.String(), []byte("whole")); r.code != 201 {
		t.Fatalf("CREATE after the interrupted one: %d %s", r.code, r.body)
	}
}
