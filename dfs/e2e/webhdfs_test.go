package e2e

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// noRedirect does not follow redirects: a request and its answer, as
// `curl -i` without -L.
var noRedirect = &http.Client{
	Timeout:       60 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// webClient drives WebHDFS's data operations the way a client does: the
// namenode's redirect, then the datanode; a datanode that does not answer
// is excluded from a new redirect (Hadoop's excludedatanodes), and counted.
type webClient struct {
	t       *testing.T
	base    string         // http://namenode/webhdfs/v1
	dns     map[string]int // datanode HTTP address -> index
	retries int            // redirects to a datanode that did not answer
}

type answer struct {
	code   int
	header http.Header
	body   []byte
}

func (c *webClient) send(method, u string, body []byte) (answer, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return answer{}, err
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}, err
}

// do runs a data operation: step 1 at the namenode (a 307 to one of the
// datanodes, with every parameter), step 2 at the datanode with body.
func (c *webClient) do(method, target, op string, body []byte) answer {
	c.t.Helper()
	var exclude []string
	for attempt := 0; ; attempt++ {
		u := c.base + target
		if len(exclude) > 0 {
			u += "&excludedatanodes=" + strings.Join(exclude, ",")
		}
		a, err := c.send(method, u, nil)
		if err != nil {
			c.t.Fatalf("%s %s: %v", method, u, err)
		}
		if a.code != http.StatusTemporaryRedirect {
			return a // an error at the namenode's step
		}
		loc, err := url.Parse(a.header.Get("Location"))
		if err != nil {
			c.t.Fatal(err)
		}
		if _, ok := c.dns[loc.Host]; !ok || loc.Query().Get("op") != op || loc.Query().Get("user.name") == "" {
			c.t.Fatalf("%s %s: redirected to %s", method, target, loc)
		}
		a, err = c.send(method, loc.String(), body)
		if err == nil {
			return a
		}
		// The datanode is gone (the namenode has not noticed yet): ask
		// again without it, as Hadoop's WebHdfsFileSystem does.
		c.retries++
		if attempt == 3 {
			c.t.Fatalf("%s %s: %d redirects to datanodes that failed, the last %s: %v", method, target, attempt+1, loc.Host, err)
		}
		exclude = append(exclude, loc.Host)
	}
}

func (c *webClient) mustDo(method, target, op string, body []byte, code int) answer {
	c.t.Helper()
	a := c.do(method, target, op, body)
	if a.code != code {
		c.t.Fatalf("%s %s: %d %.300s, want %d", method, target, a.code, a.body, code)
	}
	return a
}

func (c *webClient) open(target string, want []byte) {
	c.t.Helper()
	a := c.mustDo("GET", target, "OPEN", nil, 200)
	if !bytes.Equal(a.body, want) || a.header.Get("Content-Length") != fmt.Sprint(len(want)) {
		c.t.Fatalf("OPEN %s: %d bytes (Content-Length %s), want the %d written", target, len(a.body), a.header.Get("Content-Length"), len(want))
	}
}

// TestWebHDFSData runs a namenode on SQLite and three datanode processes
// with WebHDFS on --http, and drives CREATE, OPEN and APPEND through the
// namenode's redirects over plain HTTP (and curl itself, when installed);
// a datanode killed with SIGKILL does not stop reads or writes.
func TestWebHDFSData(t *testing.T) {
	tmp := t.TempDir()
	rpc := freeAddr(t)
	nn := launch(t, "nn", "dfs", "namenode", "--meta", "sqlite://"+filepath.Join(tmp, "meta.db"), "--http", "127.0.0.1:0",
		"--rpc", rpc, "--maintenance-interval", "200ms", "--datanode-dead-after", "10s")
	httpAddr := waitLine(t, nn, nnReadyRE)[1]
	c := &webClient{t: t, base: "http://" + httpAddr + "/webhdfs/v1", dns: map[string]int{}}
	var dns []*datanodeProc
	for i := range 3 {
		d := startDatanodeProc(t, fmt.Sprintf("dn%d", i), filepath.Join(tmp, fmt.Sprintf("dn%d", i)), rpc)
		dns = append(dns, d)
		c.dns[d.httpAddr] = i
	}
	waitStatus(t, httpAddr, "3 live datanodes with their HTTP addresses", func(st nnStatus) bool {
		n := 0
		for _, d := range st.Datanodes {
			if i, ok := c.dns[d.HTTPAddr]; ok && d.Live && d.Remaining > 0 && dns[i].storageID == d.StorageID {
				n++
			}
		}
		return n == 3
	})

	rng := rand.New(rand.NewPCG(3, 4))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}

	// CREATE: 307, then the bytes to the Location: 201.
	c.mustDo("PUT", "/data?op=MKDIRS&permission=777&user.name=root", "", nil, 200)
	data := random(2<<20 + 1<<19 + 17)
	a := c.mustDo("PUT", "/data/f?op=CREATE&blocksize=1048576&replication=3&user.name=alice", "CREATE", data, 201)
	if a.header.Get("Location") != "hdfs://"+rpc+"/data/f" || len(a.body) != 0 {
		t.Fatalf("CREATE: Location %q, body %q", a.header.Get("Location"), a.body)
	}
	if a := c.mustDo("GET", "/data/f?op=GETFILESTATUS", "", nil, 200); !strings.Contains(string(a.body), fmt.Sprintf(`"length":%d,`, len(data))) ||
		!strings.Contains(string(a.body), `"owner":"alice"`) {
		t.Fatalf("GETFILESTATUS: %s", a.body)
	}
	c.open("/data/f?op=OPEN&user.name=alice", data)
	c.open("/data/f?op=OPEN&offset=1048000&length=2000", data[1048000:1050000])

	// APPEND: 307, then the bytes: 200; OPEN shows old and new.
	more := random(1<<20 + 5)
	c.mustDo("POST", "/data/f?op=APPEND&user.name=alice", "APPEND", more, 200)
	data = append(data, more...)
	c.open("/data/f?op=OPEN&user.name=alice", data)

	// Errors come back as RemoteExceptions.
	if a := c.do("PUT", "/data/f?op=CREATE&user.name=alice", "CREATE", []byte("x")); a.code != 403 || !strings.Contains(string(a.body), "FileAlreadyExistsException") {
		t.Fatalf("CREATE over a file: %d %s", a.code, a.body)
	}
	if a := c.do("GET", "/data/nope?op=OPEN", "OPEN", nil); a.code != 404 || !strings.Contains(string(a.body), "FileNotFoundException") {
		t.Fatalf("OPEN of a missing file: %d %s", a.code, a.body)
	}

	// curl itself, as docs/dfs.md shows it.
	if curl, err := exec.LookPath("curl"); err == nil {
		file := filepath.Join(tmp, "upload")
		up := random(300_000)
		if err := os.WriteFile(file, up, 0o644); err != nil {
			t.Fatal(err)
		}
		run := func(args ...string) string {
			t.Helper()
			out, err := exec.Command(curl, append([]string{"-sS", "--noproxy", "*"}, args...)...).Output()
			if err != nil {
				t.Fatalf("curl %q: %v", args, err)
			}
			return string(out)
		}
		head := run("-i", "-X", "PUT", c.base+"/data/curl?op=CREATE&user.name=alice")
		var loc string
		for _, l := range strings.Split(head, "\r\n") {
			if v, ok := strings.CutPrefix(l, "Location: "); ok {
				loc = v
			}
		}
		if !strings.HasPrefix(head, "HTTP/1.1 307") || loc == "" {
			t.Fatalf("curl -i -X PUT ...?op=CREATE:\n%s", head)
		}
		if out := run("-i", "-X", "PUT", "-T", file, loc); !strings.Contains(out, "HTTP/1.1 201 Created\r\n") {
			t.Fatalf("curl -i -X PUT -T file Location:\n%s", out)
		}
		if out := run("-f", "-L", c.base+"/data/curl?op=OPEN&user.name=alice"); out != string(up) {
			t.Fatalf("curl -L ...?op=OPEN: %d bytes, want the %d uploaded", len(out), len(up))
		}
		// -L with a body: curl sends it again to the Location.
		more := random(5000)
		if err := os.WriteFile(file, more, 0o644); err != nil {
			t.Fatal(err)
		}
		run("-f", "-L", "-X", "POST", "-T", file, c.base+"/data/curl?op=APPEND&user.name=alice")
		if out := run("-f", "-L", c.base+"/data/curl?op=OPEN&offset=299000&user.name=alice"); out != string(up[299000:])+string(more) {
			t.Fatalf("curl -L ...?op=OPEN after curl -L -X POST -T: %d bytes", len(out))
		}
	} else {
		t.Log("no curl: its part is left out")
	}

	// dn0 killed with SIGKILL: the namenode lists it live for 10 s
	// (--datanode-dead-after), so a redirect may still name it; the client
	// then asks again without it. Reads go on from the other replicas, new
	// files are written without dn0, and an APPEND to a file whose last
	// block has a replica on dn0 recovers its pipeline without it.
	dns[0].cmd.Process.Signal(syscall.SIGKILL)
	<-dns[0].done
	for range 8 {
		c.open("/data/f?op=OPEN&user.name=alice", data)
	}
	more = random(300_000)
	c.mustDo("POST", "/data/f?op=APPEND&user.name=alice", "APPEND", more, 200)
	data = append(data, more...)
	c.open("/data/f?op=OPEN&user.name=alice", data)
	after := random(1<<20 + 1<<18)
	c.mustDo("PUT", "/data/g?op=CREATE&blocksize=1048576&user.name=alice", "CREATE", after, 201)
	c.open("/data/g?op=OPEN&user.name=alice", after)
	// APPEND to a file written after the kill (no replica on dn0).
	tail := random(70_000)
	c.mustDo("POST", "/data/g?op=APPEND&user.name=alice", "APPEND", tail, 200)
	c.open("/data/g?op=OPEN&user.name=alice", append(after, tail...))
	t.Logf("%d redirects to the killed datanode retried", c.retries)

	// Once dn0's last heartbeat is older than three heartbeat intervals (3 s
	// here: the interval is dead-after / 10), the namenode avoids it though
	// it still lists it live: no more redirects to it.
	waitStatus(t, httpAddr, "dn0 stale", func(st nnStatus) bool {
		for _, d := range st.Datanodes {
			if d.StorageID == dns[0].storageID {
				return d.LastHeartbeatSeconds > 3.5
			}
		}
		return false
	})
	before := c.retries
	for range 8 {
		c.open("/data/f?op=OPEN&user.name=alice", data)
	}
	c.mustDo("PUT", "/data/h?op=CREATE&user.name=alice", "CREATE", tail, 201)
	if c.retries != before {
		t.Errorf("%d redirects to dn0 after it went stale", c.retries-before)
	}

	// A datanode stops cleanly on SIGTERM, its WebHDFS too.
	dns[1].cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-dns[1].done:
	case <-time.After(20 * time.Second):
		t.Fatal("dn1 did not stop on SIGTERM")
	}
	if code := dns[1].cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("dn1 exit %d after SIGTERM: %s", code, dns[1].stderr.String())
	}
}
