// Package e2e tests ft end to end with real processes: the kura binary as
// receiver (`kura ft serve`) and sender (`kura ft mount`, a real FUSE
// mount), writers that are shells, cat and a Go program writing one line
// per write(), and faults injected with SIGKILL. Every test counts: each
// line a writer saw acknowledged arrives exactly once, in its writer's
// order.
package e2e

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kura-dev/kura/internal/testbin"
)

var kuraBin string

func TestMain(m *testing.M) {
	if os.Getenv("KURA_E2E_WRITER") != "" {
		os.Exit(writerMain())
	}
	testbin.Main(m, &kuraBin)
}

// writerMain is the Go writer: it appends lines "PREFIX-i" to a file, one
// write() per line, and prints the number of each line whose write
// succeeded (so a test knows what was acknowledged). With KURA_E2E_REOPEN
// it reopens the file every N lines (like an application after logrotate).
func writerMain() int {
	path := os.Getenv("KURA_E2E_WRITER")
	prefix := os.Getenv("KURA_E2E_PREFIX")
	n, _ := strconv.Atoi(os.Getenv("KURA_E2E_LINES"))
	reopen, _ := strconv.Atoi(os.Getenv("KURA_E2E_REOPEN"))
	pause, _ := time.ParseDuration(os.Getenv("KURA_E2E_PAUSE"))
	open := func() (*os.File, error) {
		return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	}
	f, err := open()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for i := 1; i <= n; i++ {
		if reopen > 0 && i%reopen == 0 {
			f.Close()
			if f, err = open(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		if _, err := f.Write([]byte(fmt.Sprintf("%s-%d\n", prefix, i))); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			return 1
		}
		fmt.Fprintln(out, i)
		if i%100 == 0 {
			out.Flush()
		}
		if pause > 0 {
			time.Sleep(pause)
		}
	}
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close:", err)
		return 1
	}
	return 0
}

// proc is a kura process started by a test.
type proc struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
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

// start runs kura with args and waits until its stdout contains ready.
func start(t *testing.T, ready string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(kuraBin, args...), out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.out.String(), ready) {
		select {
		case <-p.done:
			t.Fatalf("kura %s exited before %q:\n%s", strings.Join(args, " "), ready, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("kura %s not ready:\n%s", strings.Join(args, " "), p.out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p
}

func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("kura did not stop:\n%s", p.out.String())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("kura exited %d:\n%s", code, p.out.String())
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type setup struct {
	addr, out, dir, state string
}

func newSetup(t *testing.T) *setup {
	base := t.TempDir()
	s := &setup{addr: freeAddr(t), out: filepath.Join(base, "out"), dir: filepath.Join(base, "logs"), state: filepath.Join(base, "state")}
	os.MkdirAll(s.dir, 0o755)
	return s
}

func (s *setup) serve(t *testing.T) *proc {
	return start(t, "listening on", "ft", "serve", "--listen", s.addr, "--out", s.out)
}

func (s *setup) mount(t *testing.T, extra ...string) *proc {
	p := start(t, "mounted", append([]string{"ft", "mount", s.dir, "--to", s.addr, "--queue", s.state}, extra...)...)
	t.Cleanup(func() { syscall.Unmount(s.dir, syscall.MNT_DETACH) })
	return p
}

// goWriter starts the Go writer on path.
func goWriter(t *testing.T, path, prefix string, lines int, env ...string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "KURA_E2E_WRITER="+path, "KURA_E2E_PREFIX="+prefix, fmt.Sprintf("KURA_E2E_LINES=%d", lines))
	cmd.Env = append(cmd.Env, env...)
	out := &lockedBuffer{}
	cmd.Stdout = out
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}

// acked returns how many lines the Go writer reported written.
func acked(out *lockedBuffer) int {
	f := strings.Fields(out.String())
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[len(f)-1])
	return n
}

// received reads every file under out and returns, per prefix, the line
// numbers in the order they appear (files in name order).
func received(t *testing.T, out string) map[string][]int {
	t.Helper()
	got := map[string][]int{}
	var files []string
	filepath.Walk(out, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && !strings.Contains(p, ".kura-serve") {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			i := strings.LastIndexByte(l, '-')
			if i < 0 {
				continue
			}
			n, err := strconv.Atoi(l[i+1:])
			if err != nil {
				t.Fatalf("%s: unexpected line %q", f, l)
			}
			got[l[:i]] = append(got[l[:i]], n)
		}
	}
	return got
}

// waitExactly waits until every prefix has exactly lines 1..want[prefix]
// (each once, in order), or fails with what is missing or duplicated.
func waitExactly(t *testing.T, out string, want map[string]int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := received(t, out)
		problem := ""
		for prefix, n := range want {
			if msg := checkSeq(got[prefix], n); msg != "" {
				problem += fmt.Sprintf("%s: %s; ", prefix, msg)
			}
		}
		if problem == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver output is not exact: %s", problem)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkSeq says what is wrong with seq as the sequence 1..n.
func checkSeq(seq []int, n int) string {
	seen := map[int]int{}
	dups := 0
	for _, v := range seq {
		seen[v]++
		if seen[v] == 2 {
			dups++
		}
	}
	if dups > 0 {
		return fmt.Sprintf("%d lines duplicated", dups)
	}
	missing := 0
	for i := 1; i <= n; i++ {
		if seen[i] == 0 {
			missing++
		}
	}
	if missing > 0 || len(seq) != n {
		return fmt.Sprintf("%d of %d lines, %d missing", len(seq), n, missing)
	}
	for i, v := range seq {
		if v != i+1 {
			return fmt.Sprintf("out of order at position %d: line %d", i, v)
		}
	}
	return ""
}

func TestEndToEnd(t *testing.T) {
	s := newSetup(t)
	os.WriteFile(filepath.Join(s.dir, "existing.log"), []byte("old content\n"), 0o644)
	s.serve(t)
	m := s.mount(t)

	// The directory's old file reads through the mount.
	if b, err := os.ReadFile(filepath.Join(s.dir, "existing.log")); err != nil || string(b) != "old content\n" {
		t.Fatalf("existing file through the mount: %q %v", b, err)
	}
	var big bytes.Buffer
	for i := 1; i <= 20000; i++ {
		fmt.Fprintf(&big, "cat-%d\n", i)
	}
	src := filepath.Join(t.TempDir(), "big")
	os.WriteFile(src, big.Bytes(), 0o644)

	var wg sync.WaitGroup
	run := func(name string, args ...string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
				t.Errorf("%s %v: %v\n%s", name, args, err, out)
			}
		}()
	}
	run("sh", "-c", fmt.Sprintf(`i=1; while [ $i -le 500 ]; do echo "sh-$i" >> %s/shell.log; i=$((i+1)); done`, s.dir))
	run("sh", "-c", fmt.Sprintf("cat %s > %s/cat.log", src, s.dir))
	if err := os.MkdirAll(filepath.Join(s.dir, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	gw, _ := goWriter(t, filepath.Join(s.dir, "app", "go.log"), "go", 3000)
	wg.Wait()
	if err := gw.Wait(); err != nil {
		t.Fatalf("go writer: %v", err)
	}
	waitExactly(t, s.out, map[string]int{"sh": 500, "cat": 20000, "go": 3000})
	for _, f := range []string{"shell.log", "cat.log", "app/go.log"} {
		if _, err := os.Stat(filepath.Join(s.out, f)); err != nil {
			t.Errorf("receiver file %s: %v", f, err)
		}
	}
	m.stop(t)
	// Kept locally too: the plain directory holds the same bytes.
	if b, _ := os.ReadFile(filepath.Join(s.dir, "cat.log")); !bytes.Equal(b, big.Bytes()) {
		t.Errorf("local cat.log has %d bytes, want %d", len(b), big.Len())
	}
}

func TestReceiverKilledMidStream(t *testing.T) {
	s := newSetup(t)
	rx := s.serve(t)
	s.mount(t)
	gw, out := goWriter(t, filepath.Join(s.dir, "app.log"), "w", 20000, "KURA_E2E_PAUSE=50us")
	for round := 0; round < 3; round++ {
		// Let some lines arrive, then kill the receiver while it writes.
		for before := acked(out); acked(out) < before+2000 && acked(out) < 20000; {
			time.Sleep(5 * time.Millisecond)
		}
		rx.kill()
		time.Sleep(300 * time.Millisecond)
		rx = s.serve(t)
	}
	if err := gw.Wait(); err != nil {
		t.Fatalf("writer: %v", err)
	}
	waitExactly(t, s.out, map[string]int{"w": 20000})
}

func TestSenderKilledAndRemounted(t *testing.T) {
	s := newSetup(t)
	s.serve(t)
	m := s.mount(t)
	gw, out := goWriter(t, filepath.Join(s.dir, "app.log"), "w", 1_000_000, "KURA_E2E_PAUSE=20us")
	for acked(out) < 3000 {
		time.Sleep(5 * time.Millisecond)
	}
	m.kill() // the writer's next write fails: the mount is gone
	gw.Wait()
	n := acked(out)
	if n >= 1_000_000 {
		t.Fatal("the writer finished before the kill")
	}
	// A dead FUSE mount must be detached before mounting again.
	if err := syscall.Unmount(s.dir, syscall.MNT_DETACH); err != nil {
		t.Fatalf("detach the dead mount: %v", err)
	}
	s.mount(t)
	// Every line whose write() returned arrives exactly once; the one
	// whose write failed with the kill may have been queued too.
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := received(t, s.out)["w"]
		if len(got) >= n {
			if len(got) > n+1 {
				t.Fatalf("after the sender's kill the receiver has %d lines, the writer wrote %d", len(got), n)
			}
			if msg := checkSeq(got, len(got)); msg != "" {
				t.Fatalf("after the sender's kill: %s", msg)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the sender's kill the receiver has %d lines, the writer wrote %d: %s", len(got), n, checkSeq(got, n))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// New writes after the remount flow too.
	gw2, _ := goWriter(t, filepath.Join(s.dir, "after.log"), "after", 500)
	if err := gw2.Wait(); err != nil {
		t.Fatal(err)
	}
	waitExactly(t, s.out, map[string]int{"after": 500})
}

func TestReceiverDownAtStartAndForAWhile(t *testing.T) {
	s := newSetup(t)
	s.mount(t) // nobody listens yet: the mount works and queues
	gw, _ := goWriter(t, filepath.Join(s.dir, "app.log"), "w", 3000)
	if err := gw.Wait(); err != nil {
		t.Fatalf("writes while the receiver is down: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.out, "app.log")); err == nil {
		t.Fatal("records arrived with no receiver")
	}
	rx := s.serve(t)
	waitExactly(t, s.out, map[string]int{"w": 3000})
	// Stop it again, keep writing, start it: the queue drains.
	rx.stop(t)
	gw, _ = goWriter(t, filepath.Join(s.dir, "more.log"), "more", 2000)
	if err := gw.Wait(); err != nil {
		t.Fatal(err)
	}
	s.serve(t)
	waitExactly(t, s.out, map[string]int{"w": 3000, "more": 2000})
}

func TestLogrotateWhileWriting(t *testing.T) {
	s := newSetup(t)
	s.serve(t)
	s.mount(t)
	log := filepath.Join(s.dir, "app.log")
	// The writer reopens its file every 500 lines, as an application does
	// after logrotate signals it.
	gw, out := goWriter(t, log, "w", 6000, "KURA_E2E_REOPEN=500", "KURA_E2E_PAUSE=20us")
	for i := 1; i <= 3; i++ {
		for acked(out) < i*1500 {
			time.Sleep(2 * time.Millisecond)
		}
		if err := os.Rename(log, fmt.Sprintf("%s.%d", log, i)); err != nil {
			t.Fatalf("rotate: %v", err)
		}
	}
	if err := gw.Wait(); err != nil {
		t.Fatalf("writer: %v", err)
	}
	// Every line exactly once across app.log and its rotations; each file's
	// lines in order.
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := received(t, s.out)["w"]
		sort.Ints(got)
		if checkSeq(got, 6000) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after rotation: %s", checkSeq(got, 6000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	entries, _ := os.ReadDir(s.out)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	t.Logf("receiver files after rotation: %v", names)
	// Rotated files stay readable through the mount.
	if _, err := os.ReadFile(log + ".1"); err != nil {
		t.Fatalf("read rotated file through the mount: %v", err)
	}
}

func TestSendFilesByHand(t *testing.T) {
	s := newSetup(t)
	s.serve(t)
	var b bytes.Buffer
	for i := 1; i <= 1000; i++ {
		fmt.Fprintf(&b, "hand-%d\n", i)
	}
	b.WriteString("hand-1001") // a last line without its newline goes too
	os.MkdirAll(filepath.Join(s.dir, "sub"), 0o755)
	f := filepath.Join(s.dir, "sub", "offline.log")
	os.WriteFile(f, b.Bytes(), 0o644)
	out, err := exec.Command(kuraBin, "ft", "send", "--to", s.addr, "--base", s.dir, f).CombinedOutput()
	if err != nil {
		t.Fatalf("ft send: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "sent 1 files: 1001 records") {
		t.Fatalf("ft send said %q", out)
	}
	waitExactly(t, s.out, map[string]int{"hand": 1001})
	if _, err := os.Stat(filepath.Join(s.out, "sub", "offline.log")); err != nil {
		t.Fatalf("the record path should be relative to --base: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "ft.yaml")
	os.WriteFile(conf, []byte("mount:\n  to: 127.0.0.1:1\n  sync: sometimes\n"), 0o644)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"ft", "mount", dir, "--config", conf, "--check-config"}, 2, conf + ":3: mount.sync"},
		{[]string{"ft", "mount", filepath.Join(dir, "missing"), "--to", "127.0.0.1:1", "--queue", filepath.Join(dir, "q")}, 1, "missing"},
		{[]string{"ft", "mount", dir}, 2, "--to"},
		{[]string{"ft", "mount", dir, "--to", "127.0.0.1:1", "--sync", "often"}, 2, "often"},
		{[]string{"ft", "serve", "--listen", "127.0.0.1:0"}, 2, "--out"},
		{[]string{"ft", "serve", "--out", dir, "--format", "%Q"}, 2, "%Q"},
		{[]string{"ft", "serve", "--out", dir, "--layout", "tree"}, 2, "tree"},
		{[]string{"ft", "send", "--to", "127.0.0.1:1", filepath.Join(dir, "nope.log")}, 2, "nope.log"},
		{[]string{"ft", "unmount", dir}, 1, "not a mount point"},
	}
	for _, tc := range cases {
		cmd := exec.Command(kuraBin, tc.args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.Stdout = io.Discard
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("kura %s: exit %d stderr %q; want exit %d and %q", strings.Join(tc.args, " "), code, stderr.String(), tc.code, tc.want)
		}
	}
}

func TestAlreadyMounted(t *testing.T) {
	s := newSetup(t)
	s.mount(t)
	cmd := exec.Command(kuraBin, "ft", "mount", s.dir, "--to", s.addr, "--queue", filepath.Join(t.TempDir(), "q2"))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already mounted") {
		t.Fatalf("second mount: %v\n%s", err, out)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, PEM-encoded.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kura test receiver"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

func TestTLS(t *testing.T) {
	s := newSetup(t)
	cert, key := selfSigned(t, t.TempDir())
	start(t, "listening on", "ft", "serve", "--listen", s.addr, "--out", s.out, "--tls-cert", cert, "--tls-key", key)
	s.mount(t, "--tls-ca", cert)
	gw, _ := goWriter(t, filepath.Join(s.dir, "tls.log"), "tls", 500)
	if err := gw.Wait(); err != nil {
		t.Fatal(err)
	}
	waitExactly(t, s.out, map[string]int{"tls": 500})

	// A sender that does not trust the receiver's certificate delivers
	// nothing (and keeps its records queued).
	other, _ := selfSigned(t, t.TempDir())
	f := filepath.Join(t.TempDir(), "x.log")
	os.WriteFile(f, []byte("untrusted-1\n"), 0o644)
	cmd := exec.Command(kuraBin, "ft", "send", "--to", s.addr, "--tls-ca", other, f)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "certificate") {
		if time.Now().After(deadline) {
			t.Fatalf("no certificate error from an untrusting sender:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if got := received(t, s.out)["untrusted"]; len(got) != 0 {
		t.Fatalf("an untrusting sender delivered %v", got)
	}
}

func TestUnmountCommandFlushes(t *testing.T) {
	s := newSetup(t)
	s.serve(t)
	m := s.mount(t)
	// A partial last line goes when its file is closed; then unmount.
	f, err := os.OpenFile(filepath.Join(s.dir, "u.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(f, "u-1\nu-2\nu-3")
	f.Close()
	out, err := exec.Command(kuraBin, "ft", "unmount", s.dir).CombinedOutput()
	if err != nil {
		t.Fatalf("ft unmount: %v\n%s", err, out)
	}
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the mount process did not exit after ft unmount")
	}
	if code := m.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("mount exited %d:\n%s", code, m.out.String())
	}
	if !strings.Contains(m.out.String(), "unmounted") {
		t.Fatalf("mount output:\n%s", m.out.String())
	}
	waitExactly(t, s.out, map[string]int{"u": 3})
	// The plain directory is back, with the bytes kept locally.
	if b, err := os.ReadFile(filepath.Join(s.dir, "u.log")); err != nil || string(b) != "u-1\nu-2\nu-3" {
		t.Fatalf("local file after unmount: %q %v", b, err)
	}
}

// metricValue fetches a Prometheus text page and returns the value of name.
func metricValue(t *testing.T, url, name string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return v
		}
	}
	t.Fatalf("%s has no %s", url, name)
	return ""
}

func TestMetrics(t *testing.T) {
	s := newSetup(t)
	rxMetrics, txMetrics := freeAddr(t), freeAddr(t)
	start(t, "listening on", "ft", "serve", "--listen", s.addr, "--out", s.out, "--metrics", rxMetrics)
	s.mount(t, "--metrics", txMetrics)
	gw, _ := goWriter(t, filepath.Join(s.dir, "m.log"), "m", 250)
	if err := gw.Wait(); err != nil {
		t.Fatal(err)
	}
	waitExactly(t, s.out, map[string]int{"m": 250})
	if v := metricValue(t, "http://"+rxMetrics+"/metrics", "kura_ft_serve_records_total"); v != "250" {
		t.Errorf("receiver records_total = %s, want 250", v)
	}
	if v := metricValue(t, "http://"+txMetrics+"/metrics", "kura_ft_mount_records_total"); v != "250" {
		t.Errorf("mount records_total = %s, want 250", v)
	}
	deadline := time.Now().Add(30 * time.Second)
	for metricValue(t, "http://"+txMetrics+"/metrics", "kura_ft_ship_records_acked_total") != "250" {
		if time.Now().After(deadline) {
			t.Fatal("ship_records_acked_total never reached 250")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v := metricValue(t, "http://"+txMetrics+"/metrics", "kura_ft_ship_connected"); v != "1" {
		t.Errorf("ship_connected = %s, want 1", v)
	}
}

// TestQueueFullBlocksWriters: with the receiver down and a small queue,
// writers block once the queue is full (the default policy), and resume,
// losing nothing, when the receiver comes.
func TestQueueFullBlocksWriters(t *testing.T) {
	s := newSetup(t)
	s.mount(t, "--queue-max", "64KiB")
	gw, out := goWriter(t, filepath.Join(s.dir, "full.log"), "full", 5000)
	// 5000 lines are far more than 64 KiB of queue: the writer must stall.
	deadline := time.Now().Add(30 * time.Second)
	for {
		before := acked(out)
		time.Sleep(500 * time.Millisecond)
		if after := acked(out); after == before && after > 0 && after < 5000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the writer did not stall on a full queue (acked %d)", acked(out))
		}
	}
	stalled := acked(out)
	s.serve(t)
	if err := gw.Wait(); err != nil {
		t.Fatalf("writer: %v", err)
	}
	waitExactly(t, s.out, map[string]int{"full": 5000})
	t.Logf("the writer stalled at %d lines until the receiver came", stalled)
}
