// Package e2e tests dfs end to end with real processes: `kura dfs namenode`
// built from this tree, on a real PostgreSQL database (daltest), driven over
// plain HTTP (WebHDFS), with a namenode killed by SIGKILL mid-run.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/dal/daltest"
	"github.com/kura-dev/kura/dfs/dal/open"
	"github.com/kura-dev/kura/dfs/hdfs"
	"github.com/kura-dev/kura/dfs/namespace"
	"github.com/kura-dev/kura/internal/testbin"
)

var kuraBin string

func TestMain(m *testing.M) {
	testbin.Main(testbin.RunFunc(func() int { return daltest.Main(m) }), &kuraBin)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// namenode is one `kura dfs namenode` process.
type namenode struct {
	name   string
	cmd    *exec.Cmd
	stdout *lockedBuffer
	stderr *lockedBuffer
	done   chan struct{}
	base   string // http://addr/webhdfs/v1
}

var readyRE = regexp.MustCompile(`dfs namenode serving WebHDFS on (\S+) `)

func launch(t *testing.T, name string, args ...string) *namenode {
	t.Helper()
	n := &namenode{name: name, cmd: exec.Command(kuraBin, args...), stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan struct{})}
	n.cmd.Stdout, n.cmd.Stderr = n.stdout, n.stderr
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.done
		if t.Failed() {
			t.Logf("%s stderr:\n%s", n.name, n.stderr.String())
		}
	})
	return n
}

// startNamenode starts `kura dfs namenode` on meta with free ports and
// the flags in extra, and waits until it serves.
func startNamenode(t *testing.T, name, meta string, extra ...string) *namenode {
	t.Helper()
	args := append([]string{"dfs", "namenode", "--meta", meta, "--http", "127.0.0.1:0", "--rpc", "127.0.0.1:0", "--maintenance-interval", "200ms"}, extra...)
	n := launch(t, name, args...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := readyRE.FindStringSubmatch(n.stdout.String()); m != nil {
			n.base = "http://" + m[1] + "/webhdfs/v1"
			return n
		}
		select {
		case <-n.done:
			t.Fatalf("%s exited before serving (%v):\n%s", name, n.cmd.ProcessState, n.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not serving after 30s:\n%s", name, n.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var client = &http.Client{Timeout: 30 * time.Second}

// call sends one WebHDFS request and returns the status and body.
func call(method, url string) (int, string, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func mustCall(t *testing.T, method, url string, wantCode int) string {
	t.Helper()
	code, body, err := call(method, url)
	if err != nil {
		t.Fatal(err)
	}
	if code != wantCode {
		t.Fatalf("%s %s: %d %s, want %d", method, url, code, body, wantCode)
	}
	return body
}

// openNamespace opens the namespace in the database meta, as a namenode
// would, closed when the test ends.
func openNamespace(t *testing.T, meta string) *namespace.Namespace {
	t.Helper()
	store, err := open.Open(context.Background(), meta)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ns, err := namespace.New(store, namespace.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// fsck checks ns and reports what is wrong as test errors.
func fsck(t *testing.T, ns *namespace.Namespace) *namespace.FsckReport {
	t.Helper()
	r, err := ns.Fsck(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Err(); err != nil {
		t.Error(err)
	}
	return r
}

func TestTwoNamenodesOnePostgres(t *testing.T) {
	meta := daltest.PostgresURL(t)
	nn1 := startNamenode(t, "nn1", meta)
	nn2 := startNamenode(t, "nn2", meta)

	// What one namenode writes, the other serves.
	mustCall(t, "PUT", nn1.base+"/work/seed?op=MKDIRS&user.name=root", 200)
	mustCall(t, "PUT", nn1.base+"/work?op=SETPERMISSION&permission=777&user.name=root", 200)
	if body := mustCall(t, "GET", nn2.base+"/work?op=LISTSTATUS&user.name=alice", 200); !strings.Contains(body, `"pathSuffix":"seed"`) {
		t.Fatalf("nn2 LISTSTATUS: %s", body)
	}
	if body := mustCall(t, "GET", nn2.base+"/work?op=GETFILESTATUS", 200); !strings.Contains(body, `"permission":"777"`) {
		t.Fatalf("nn2 GETFILESTATUS: %s", body)
	}
	mustCall(t, "GET", nn1.base+"/nope?op=GETFILESTATUS", 404)

	// 8 clients through both namenodes in the same directories: mkdirs,
	// renames and deletes of d0..d15 (and their subdirectories) under
	// /work; nn1 is killed with SIGKILL half-way, after which the clients
	// use nn2 only.
	var killed atomic.Bool
	var ops, retriable, afterKill atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	stop := time.Now().Add(3 * time.Second)
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 42))
			user := fmt.Sprintf("u%d", c%3)
			for time.Now().Before(stop) {
				nn := nn1
				if killed.Load() || rng.IntN(2) == 0 {
					nn = nn2
				}
				d := fmt.Sprintf("/work/d%d", rng.IntN(16))
				var method, target string
				switch rng.IntN(4) {
				case 0:
					method, target = "PUT", d+"?op=MKDIRS"
				case 1:
					method, target = "PUT", fmt.Sprintf("%s/s%d?op=MKDIRS", d, rng.IntN(3))
				case 2:
					method, target = "PUT", fmt.Sprintf("%s?op=RENAME&destination=/work/d%d", d, rng.IntN(16))
				case 3:
					method, target = "DELETE", d+"?op=DELETE&recursive=true"
				}
				wasKilled := killed.Load()
				code, body, err := call(method, nn.base+target+"&user.name="+user)
				if err != nil {
					if nn == nn1 && killed.Load() {
						continue // nn1 died under this request
					}
					errc <- fmt.Errorf("%s %s via %s: %v", method, target, nn.name, err)
					return
				}
				switch {
				case code == 200:
				case code == 403 && strings.Contains(body, "RetriableException"):
					retriable.Add(1)
				case code == 403 && strings.Contains(body, "AccessControlException"):
					// Another user's directory: u0 may not write into u1's d3.
				default:
					errc <- fmt.Errorf("%s %s via %s: %d %s", method, target, nn.name, code, body)
					return
				}
				ops.Add(1)
				if wasKilled {
					afterKill.Add(1)
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	// From now on requests go to nn2; those in flight at nn1 may fail.
	killed.Store(true)
	nn1.cmd.Process.Signal(syscall.SIGKILL)
	<-nn1.done
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	t.Logf("%d operations (%d after nn1's SIGKILL, %d RetriableException)", ops.Load(), afterKill.Load(), retriable.Load())
	if afterKill.Load() == 0 {
		t.Error("no operation succeeded after nn1 was killed")
	}
	if _, _, err := call("GET", nn1.base+"/?op=GETFILESTATUS"); err == nil {
		t.Error("nn1 still answers after SIGKILL")
	}

	// nn2 still serves; a new namenode joins and sees the same namespace.
	list2 := mustCall(t, "GET", nn2.base+"/work?op=LISTSTATUS", 200)
	nn3 := startNamenode(t, "nn3", meta)
	if list3 := mustCall(t, "GET", nn3.base+"/work?op=LISTSTATUS", 200); list3 != list2 {
		t.Errorf("nn3 lists\n%s\nnn2 lists\n%s", list3, list2)
	}

	// The metadata is consistent.
	ctx := context.Background()
	ns := openNamespace(t, meta)
	// A delete nn1 had detached when it died is finished by any namenode's
	// housekeeping; run it here too so that Fsck sees a settled database.
	if _, err := ns.PurgeDetached(ctx); err != nil {
		t.Fatal(err)
	}
	r := fsck(t, ns)
	t.Logf("fsck: %d dirs, %d files", r.Dirs, r.Files)
	if _, err := ns.Stat(ctx, hdfs.User{Name: "root"}, "/work/seed"); err != nil && !strings.Contains(err.Error(), "does not exist") {
		t.Error(err)
	}

	// SIGTERM: a clean stop, exit 0.
	nn2.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-nn2.done:
	case <-time.After(20 * time.Second):
		t.Fatal("nn2 did not stop on SIGTERM")
	}
	if code := nn2.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("nn2 exit code %d after SIGTERM:\n%s", code, nn2.stderr.String())
	}
}

func TestBadMeta(t *testing.T) {
	for _, c := range []struct {
		meta string
		code int
		msg  string
	}{
		{"mysql://db/kura", 2, `--meta: bad metadata URL "mysql://db/kura": unknown scheme "mysql"`},
		{"/var/lib/kura/meta.db", 2, "not a URL"},
		{"sqlite://", 2, "no database path"},
		{"sqlite://" + filepath.Join(t.TempDir(), "no", "such", "dir", "meta.db"), 1, "dfs namenode:"},
	} {
		n := launch(t, "bad", "dfs", "namenode", "--meta", c.meta, "--http", "127.0.0.1:0", "--rpc", "127.0.0.1:0")
		select {
		case <-n.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("--meta %s: still running", c.meta)
		}
		if code := n.cmd.ProcessState.ExitCode(); code != c.code {
			t.Errorf("--meta %s: exit %d, want %d (%s)", c.meta, code, c.code, n.stderr.String())
		}
		if !strings.Contains(n.stderr.String(), c.msg) {
			t.Errorf("--meta %s: stderr %q, want %q", c.meta, n.stderr.String(), c.msg)
		}
	}
	// No --meta at all.
	n := launch(t, "none", "dfs", "namenode")
	<-n.done
	if code := n.cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(n.stderr.String(), "--meta") {
		t.Errorf("no --meta: exit %d: %s", code, n.stderr.String())
	}
}
