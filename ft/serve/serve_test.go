package serve

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kura-dev/kura/ft/record"
	"github.com/kura-dev/kura/ft/wire"
)

// ---- helpers ----

var (
	senderA = record.SenderID{0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf, 0xa0}
	senderB = record.SenderID{0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf, 0xb0}
	when    = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// startServer runs a Server on 127.0.0.1 until the test ends.
// Each setup function runs after New, before Serve.
func startServer(t testing.TB, opts Options, setup ...func(*Server)) (*Server, string) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range setup {
		f(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, ln.Addr().String()
}

// client is a minimal sender: Hello, batches, acks.
type client struct {
	t  testing.TB
	nc net.Conn
	w  *wire.Writer
	r  *wire.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return handshake(t, nc)
}

func handshake(t testing.TB, nc net.Conn) *client {
	t.Helper()
	c, err := tryHandshake(t, nc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tryHandshake is handshake for a receiver that may be killed meanwhile.
func tryHandshake(t testing.TB, nc net.Conn) (*client, error) {
	c := &client{t: t, nc: nc, w: wire.NewWriter(nc), r: wire.NewReader(nc)}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(time.Minute))
	if err := c.w.WriteHello(wire.Hello{Version: wire.Version, Sender: senderA, Host: "client"}); err != nil {
		return nil, err
	}
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	typ, body, err := c.r.Next()
	if err != nil || typ != wire.TypeWelcome {
		return nil, fmt.Errorf("handshake: type %d, err %v", typ, err)
	}
	if _, err := wire.ParseWelcome(body); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *client) send(id uint64, chunks ...record.Chunk) {
	c.t.Helper()
	if err := c.w.WriteBatch(id, chunks); err != nil {
		c.t.Fatal(err)
	}
	if err := c.w.Flush(); err != nil {
		c.t.Fatal(err)
	}
}

// frame sends a raw frame body (type byte included), with a bad checksum if
// corrupt.
func (c *client) frame(body []byte, corrupt bool) {
	c.t.Helper()
	var hdr [8]byte
	binary.LittleEndian.PutUint32(hdr[0:], uint32(len(body)))
	sum := crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli))
	if corrupt {
		sum ^= 1
	}
	binary.LittleEndian.PutUint32(hdr[4:], sum)
	if _, err := c.nc.Write(append(hdr[:], body...)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) ack(id uint64) {
	c.t.Helper()
	typ, body, err := c.r.Next()
	if err != nil {
		c.t.Fatalf("waiting for ack %d: %v", id, err)
	}
	switch typ {
	case wire.TypeAck:
		a, err := wire.ParseAck(body)
		if err != nil || a.ID != id {
			c.t.Fatalf("ack %d: got %+v, %v", id, a, err)
		}
	case wire.TypeError:
		e, _ := wire.ParseError(body)
		c.t.Fatalf("waiting for ack %d: %v", id, e)
	default:
		c.t.Fatalf("waiting for ack %d: frame type %d", id, typ)
	}
}

// refused reads the receiver's Error and then the end of the connection.
func (c *client) refused() string {
	c.t.Helper()
	typ, body, err := c.r.Next()
	if err != nil {
		c.t.Fatalf("waiting for error: %v", err)
	}
	if typ != wire.TypeError {
		c.t.Fatalf("waiting for error: frame type %d", typ)
	}
	e, err := wire.ParseError(body)
	if err != nil {
		c.t.Fatal(err)
	}
	if typ, _, err := c.r.Next(); err == nil {
		c.t.Fatalf("connection still open after Error (frame type %d)", typ)
	}
	return e.Message
}

func chunk(sender record.SenderID, first uint64, path string, lines ...string) record.Chunk {
	c := record.Chunk{Sender: sender, FirstSeq: first, Time: when.UnixNano(), PID: 10, TID: 11, Host: "h1", Path: path}
	for _, l := range lines {
		c.Records = append(c.Records, []byte(l))
	}
	return c
}

func withHost(c record.Chunk, host string) record.Chunk { c.Host = host; return c }

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func wantFile(t testing.TB, p, want string) {
	t.Helper()
	if got := readFile(t, p); got != want {
		t.Errorf("%s:\n got %q\nwant %q", p, got, want)
	}
}

// ---- layouts and formats ----

func TestLayoutsAndFormats(t *testing.T) {
	t.Run("raw per path", func(t *testing.T) {
		out := t.TempDir()
		_, addr := startServer(t, Options{OutDir: out})
		c := dial(t, addr)
		c.send(1, chunk(senderA, 1, "app/log.txt", "a1", "a2"), withHost(chunk(senderB, 1, "app/log.txt", "b1"), "h2"))
		c.send(2, chunk(senderA, 3, "other.log", "", "a4 "))
		c.ack(1)
		c.ack(2)
		wantFile(t, filepath.Join(out, "app/log.txt"), "a1\na2\nb1\n")
		wantFile(t, filepath.Join(out, "other.log"), "\na4 \n")
	})
	t.Run("raw binary", func(t *testing.T) {
		out := t.TempDir()
		_, addr := startServer(t, Options{OutDir: out, Format: "raw"})
		c := dial(t, addr)
		bc := chunk(senderA, 1, "bin.dat", "\x00\x01\xff", "ab\n")
		bc.Binary = true
		c.send(1, bc)
		c.ack(1)
		wantFile(t, filepath.Join(out, "bin.dat"), "\x00\x01\xffab\n")
	})
	t.Run("json", func(t *testing.T) {
		out := t.TempDir()
		_, addr := startServer(t, Options{OutDir: out, Format: "json"})
		c := dial(t, addr)
		bc := chunk(senderB, 7, "d/bin", "\xff\x00a")
		bc.Binary = true
		c.send(1, chunk(senderA, 1, "j.log", "say \"hi\"\t\\ é", "x\x01"), bc)
		c.ack(1)
		a, b := senderA.String(), senderB.String()
		wantFile(t, filepath.Join(out, "j.log"),
			`{"sender":"`+a+`","seq":1,"time":"2024-05-06T07:08:09.123456789Z","host":"h1","pid":10,"tid":11,"path":"j.log","binary":false,"data":"say \"hi\"\t\\ é"}`+"\n"+
				`{"sender":"`+a+`","seq":2,"time":"2024-05-06T07:08:09.123456789Z","host":"h1","pid":10,"tid":11,"path":"j.log","binary":false,"data":"x\u0001"}`+"\n")
		wantFile(t, filepath.Join(out, "d/bin"),
			`{"sender":"`+b+`","seq":7,"time":"2024-05-06T07:08:09.123456789Z","host":"h1","pid":10,"tid":11,"path":"d/bin","binary":true,"data_b64":"/wBh"}`+"\n")
		// And it is JSON that decodes to the record.
		var m map[string]any
		line, _, _ := strings.Cut(readFile(t, filepath.Join(out, "j.log")), "\n")
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		if m["data"] != "say \"hi\"\t\\ é" || m["seq"] != 1.0 || m["sender"] != a {
			t.Errorf("decoded %v", m)
		}
	})
	t.Run("template with every directive", func(t *testing.T) {
		out := t.TempDir()
		_, addr := startServer(t, Options{OutDir: out, Format: `[%T] %H %P/%p %F %f <%L> <%l> 100%%\t\\\n`,
			TimeLayout: "2006-01-02 15:04:05.000", Location: time.UTC})
		c := dial(t, addr)
		c.send(1, chunk(senderA, 1, "dir/t.log", "  padded \t", "x"))
		c.ack(1)
		wantFile(t, filepath.Join(out, "dir/t.log"),
			"[2024-05-06 07:08:09.123] h1 10/11 dir/t.log t.log <  padded \t> <padded> 100%\t\\\n"+
				"[2024-05-06 07:08:09.123] h1 10/11 dir/t.log t.log <x> <x> 100%\t\\\n")
	})
	t.Run("template without newline", func(t *testing.T) {
		out := t.TempDir()
		_, addr := startServer(t, Options{OutDir: out, Format: "%L;"})
		c := dial(t, addr)
		c.send(1, chunk(senderA, 1, "n.log", "a", "b"))
		c.ack(1)
		wantFile(t, filepath.Join(out, "n.log"), "a;b;")
	})
	t.Run("per host", func(t *testing.T) {
		out := t.TempDir()
		_, addr := startServer(t, Options{OutDir: out, Layout: PerHost})
		c := dial(t, addr)
		c.send(1,
			withHost(chunk(senderA, 1, "x/y.log", "web1"), "web1"),
			withHost(chunk(senderA, 2, "x/y.log", "dotdot"), ".."),
			withHost(chunk(senderA, 3, "x/y.log", "slash"), "a/b"),
			withHost(chunk(senderA, 4, "x/y.log", "empty"), ""),
			withHost(chunk(senderA, 5, "y.log", "state"), ".kura-serve"),
			withHost(chunk(senderB, 1, "x/y.log", "web1 again"), "web1"),
		)
		c.ack(1)
		wantFile(t, filepath.Join(out, "web1/x/y.log"), "web1\nweb1 again\n")
		wantFile(t, filepath.Join(out, "_../x/y.log"), "dotdot\n")
		wantFile(t, filepath.Join(out, "a_b/x/y.log"), "slash\n")
		wantFile(t, filepath.Join(out, "_/x/y.log"), "empty\n")
		wantFile(t, filepath.Join(out, "_.kura-serve/y.log"), "state\n")
	})
	t.Run("unified", func(t *testing.T) {
		out := t.TempDir()
		_, addr := startServer(t, Options{OutDir: out, Layout: Unified, UnifiedName: "all/everything.log", Format: "%H:%F:%L\n"})
		c := dial(t, addr)
		c.send(1, chunk(senderA, 1, "a.log", "1"), withHost(chunk(senderB, 1, "b/c.log", "2"), "h2"))
		c.ack(1)
		wantFile(t, filepath.Join(out, "all/everything.log"), "h1:a.log:1\nh2:b/c.log:2\n")
		entries, _ := os.ReadDir(out)
		if len(entries) != 2 { // all/ and .kura-serve/
			t.Errorf("OutDir holds %d entries, want 2", len(entries))
		}
	})
	t.Run("tls", func(t *testing.T) {
		out := t.TempDir()
		srvCfg, cliCfg := testTLS(t)
		_, addr := startServer(t, Options{OutDir: out, TLS: srvCfg})
		nc, err := tls.Dial("tcp", addr, cliCfg)
		if err != nil {
			t.Fatal(err)
		}
		c := handshake(t, nc)
		c.send(1, chunk(senderA, 1, "tls.log", "secret"))
		c.ack(1)
		wantFile(t, filepath.Join(out, "tls.log"), "secret\n")
	})
}

func testTLS(t *testing.T) (*tls.Config, *tls.Config) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kura test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool}
}

// ---- dedupe and acks ----

func TestDedupe(t *testing.T) {
	out := t.TempDir()
	s, addr := startServer(t, Options{OutDir: out})
	batch1 := []record.Chunk{chunk(senderA, 1, "d.log", "1", "2", "3"), chunk(senderB, 1, "d.log", "b1")}

	c1 := dial(t, addr)
	c1.send(1, batch1...)
	c1.ack(1)
	// The sender reconnects and resends the batch it believes unacknowledged.
	c2 := dial(t, addr)
	c2.send(1, batch1...)
	c2.ack(1)
	wantFile(t, filepath.Join(out, "d.log"), "1\n2\n3\nb1\n")
	if st := s.Stats(); st.Duplicates != 4 || st.Records != 4 {
		t.Errorf("stats %+v, want 4 duplicates and 4 records", st)
	}
	// A chunk overlapping what was written: only its new tail is written.
	// Sender B's chunk has a gap (2 is missing): it is written as it is.
	c2.send(2, chunk(senderA, 2, "d.log", "2", "3", "4", "5"), chunk(senderB, 3, "d.log", "b3"))
	c2.ack(2)
	// Within one batch, a record repeated is dropped too.
	c2.send(3, chunk(senderA, 5, "d.log", "5", "6"), chunk(senderA, 6, "d.log", "6", "7"))
	c2.ack(3)
	wantFile(t, filepath.Join(out, "d.log"), "1\n2\n3\nb1\n4\n5\nb3\n6\n7\n")
	if st := s.Stats(); st.Duplicates != 4+2+2 || st.Records != 9 || st.Batches != 4 {
		t.Errorf("stats %+v", st)
	}

}

func TestDedupeSurvivesRestart(t *testing.T) {
	out := t.TempDir()
	b := []record.Chunk{chunk(senderA, 1, "r.log", "1", "2")}
	func() {
		s, err := New(Options{OutDir: out, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Serve(ctx, ln) }()
		c := dial(t, ln.Addr().String())
		c.send(1, b...)
		c.ack(1)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}()
	s, addr := startServer(t, Options{OutDir: out})
	c := dial(t, addr)
	c.send(1, b...)
	c.ack(1)
	c.send(2, chunk(senderA, 2, "r.log", "2", "3"))
	c.ack(2)
	wantFile(t, filepath.Join(out, "r.log"), "1\n2\n3\n")
	if st := s.Stats(); st.Duplicates != 3 {
		t.Errorf("duplicates %d, want 3", st.Duplicates)
	}
}

// Many connections stream batches without waiting; each gets its acks in
// order, and each file holds its sender's lines in order.
func TestPipelinedConnections(t *testing.T) {
	out := t.TempDir()
	s, addr := startServer(t, Options{OutDir: out, MaxOpenFiles: 3})
	const conns, batches, per = 4, 150, 5
	var wg sync.WaitGroup
	for ci := range conns {
		wg.Go(func() {
			c := dial(t, addr)
			var id record.SenderID
			id[0] = byte(ci + 1)
			go func() {
				for b := range batches {
					var chunks []record.Chunk
					for f := range 2 {
						var lines []string
						for r := range per {
							lines = append(lines, fmt.Sprintf("c%d b%d r%d", ci, b, r))
						}
						// Two files per connection, more than MaxOpenFiles in all.
						chunks = append(chunks, chunk(id, uint64(b*2*per+f*per+1), fmt.Sprintf("c%d/f%d.log", ci, f), lines...))
					}
					if err := c.w.WriteBatch(uint64(b+1), chunks); err != nil {
						return
					}
					if b%7 == 0 {
						c.w.Flush()
					}
				}
				c.w.Flush()
			}()
			for b := range batches {
				c.ack(uint64(b + 1))
			}
		})
	}
	wg.Wait()
	for ci := range conns {
		for f := range 2 {
			var want strings.Builder
			for b := range batches {
				for r := range per {
					fmt.Fprintf(&want, "c%d b%d r%d\n", ci, b, r)
				}
			}
			wantFile(t, filepath.Join(out, fmt.Sprintf("c%d/f%d.log", ci, f)), want.String())
		}
	}
	st := s.Stats()
	if st.Batches != conns*batches || st.Records != conns*batches*2*per || st.OpenFiles > 3+2 {
		t.Errorf("stats %+v", st)
	}
}

// ---- bad input ----

func TestBadInput(t *testing.T) {
	out := t.TempDir()
	s, addr := startServer(t, Options{OutDir: out})
	for _, p := range []string{"../x", "a/../../x", "/etc/passwd", "a//b", "a/", "./a", "a/./b", "a\x00b", "", ".kura-serve/state", ".kura-serve", strings.Repeat("n", 256)} {
		c := dial(t, addr)
		c.send(1, chunk(senderA, 1, "fine.log", "ok"))
		c.send(2, chunk(senderA, 2, p, "evil"))
		c.ack(1) // the batches before the bad one are answered first
		msg := c.refused()
		if !strings.Contains(msg, fmt.Sprintf("%q", p)) {
			t.Errorf("path %q: error %q does not name it", p, msg)
		}
	}
	// Nothing escaped, nothing landed in the state directory.
	if _, err := os.Stat(filepath.Join(filepath.Dir(out), "x")); err == nil {
		t.Error("../x was written")
	}
	entries, _ := os.ReadDir(filepath.Join(out, stateDirName))
	for _, e := range entries {
		if e.Name() != stateFileName && e.Name() != lockFileName {
			t.Errorf("unexpected %s in the state directory", e.Name())
		}
	}

	t.Run("corrupt frame", func(t *testing.T) {
		c := dial(t, addr)
		var body []byte
		body = append(body, wire.TypeBatch)
		body = binary.LittleEndian.AppendUint64(body, 1)
		body = append(body, 0)
		c.frame(body, true)
		if msg := c.refused(); !strings.Contains(msg, "checksum") {
			t.Errorf("error %q", msg)
		}
	})
	t.Run("undecodable batch", func(t *testing.T) {
		c := dial(t, addr)
		c.frame([]byte{wire.TypeBatch, 1, 0, 0, 0, 0, 0, 0, 0, 1, 5, 1, 2, 3, 4, 5}, false)
		if msg := c.refused(); !strings.Contains(msg, "corrupt") {
			t.Errorf("error %q", msg)
		}
	})
	t.Run("unexpected frame", func(t *testing.T) {
		c := dial(t, addr)
		c.w.WriteAck(3)
		c.w.Flush()
		if msg := c.refused(); !strings.Contains(msg, "unexpected frame type") {
			t.Errorf("error %q", msg)
		}
	})
	t.Run("no hello", func(t *testing.T) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c := &client{t: t, nc: nc, w: wire.NewWriter(nc), r: wire.NewReader(nc)}
		defer nc.Close()
		c.send(1, chunk(senderA, 1, "x.log", "x"))
		if msg := c.refused(); !strings.Contains(msg, "expected hello") {
			t.Errorf("error %q", msg)
		}
	})
	t.Run("bad version", func(t *testing.T) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c := &client{t: t, nc: nc, w: wire.NewWriter(nc), r: wire.NewReader(nc)}
		defer nc.Close()
		c.w.WriteHello(wire.Hello{Version: 99})
		c.w.Flush()
		if msg := c.refused(); !strings.Contains(msg, "version 99") {
			t.Errorf("error %q", msg)
		}
	})
	// The server kept serving.
	c := dial(t, addr)
	c.send(5, chunk(senderB, 1, "fine.log", "still here"))
	c.ack(5)
	wantFile(t, filepath.Join(out, "fine.log"), "ok\nstill here\n")
	if st := s.Stats(); st.Rejected != 12+5 {
		t.Errorf("rejected %d, want 17", st.Rejected)
	}
}

func TestValidateFormat(t *testing.T) {
	for _, f := range []string{"", "json", "%L", "%T %H %P/%p %F %f %L %l %%\\n\\t\\r\\\\", "plain"} {
		if err := ValidateFormat(f); err != nil {
			t.Errorf("ValidateFormat(%q): %v", f, err)
		}
	}
	for _, tc := range []struct{ f, want string }{
		{"%X", `"%X" at byte offset 0`},
		{"abc %L %q", `"%q" at byte offset 7`},
		{"%é", `"%é" at byte offset 0`},
		{"50%", "lone % at the end (byte offset 2)"},
		{`a\q`, `"\\q" at byte offset 1`},
		{`a\`, "lone backslash at the end (byte offset 1)"},
	} {
		err := ValidateFormat(tc.f)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ValidateFormat(%q) = %v, want it to say %s", tc.f, err, tc.want)
		}
	}
}

func TestOptions(t *testing.T) {
	for s, want := range map[string]Layout{"path": PerPath, "host": PerHost, "unified": Unified} {
		if l, err := ParseLayout(s); err != nil || l != want || l.String() != s {
			t.Errorf("ParseLayout(%q) = %v, %v", s, l, err)
		}
	}
	for _, s := range []string{"", "Path", "hosts", "file"} {
		if _, err := ParseLayout(s); err == nil {
			t.Errorf("ParseLayout(%q) succeeded", s)
		}
	}
	dir := t.TempDir()
	for _, o := range []Options{
		{},
		{OutDir: dir, Format: "%Q"},
		{OutDir: dir, Layout: Unified, UnifiedName: "../x"},
		{OutDir: dir, Layout: Unified, UnifiedName: ".kura-serve/x"},
		{OutDir: dir, Layout: 7},
	} {
		if s, err := New(o); err == nil {
			s.Close()
			t.Errorf("New(%+v) succeeded", o)
		}
	}
	// One receiver per directory.
	s1, err := New(Options{OutDir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if s2, err := New(Options{OutDir: dir, Logger: testLogger(t)}); err == nil {
		s2.Close()
		t.Error("second receiver on the same directory")
	}
	s1.Close()
	// Serve after Close.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := s1.Serve(context.Background(), ln); !errors.Is(err, ErrClosed) {
		t.Errorf("Serve after Close: %v", err)
	}
	// A corrupt state refuses to start rather than forget what it wrote.
	os.WriteFile(filepath.Join(dir, stateDirName, stateFileName), []byte("KURASRV\x01garbage"), 0o644)
	if s, err := New(Options{OutDir: dir}); err == nil {
		s.Close()
		t.Error("New with a corrupt state succeeded")
	}
}

// Close while Serve runs makes Serve return ErrClosed.
func TestCloseStopsServe(t *testing.T) {
	s, err := New(Options{OutDir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan error)
	go func() { done <- s.Serve(context.Background(), ln) }()
	c := dial(t, ln.Addr().String())
	c.send(1, chunk(senderA, 1, "c.log", "x"))
	c.ack(1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("Serve: %v", err)
	}
	if _, _, err := c.r.Next(); err == nil {
		t.Error("connection open after Close")
	}
}

// ---- recovery and rotation ----

func TestRecovery(t *testing.T) {
	out := t.TempDir()
	run := func(f func(c *client)) {
		s, err := New(Options{OutDir: out, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Serve(ctx, ln) }()
		f(dial(t, ln.Addr().String()))
		cancel()
		<-done
		s.Close()
	}
	os.WriteFile(filepath.Join(out, "foreign.log"), []byte("not ours\n"), 0o644)
	run(func(c *client) {
		c.send(1, chunk(senderA, 1, "tail.log", "t1"), chunk(senderA, 2, "short.log", "s1", "s2"),
			chunk(senderA, 4, "gone.log", "g1"), chunk(senderA, 5, "foreign.log", "f1"))
		c.ack(1)
	})
	// What a crash leaves: an unacknowledged tail; the operator rotates others.
	appendFile(t, filepath.Join(out, "tail.log"), "unacked\n")
	os.Truncate(filepath.Join(out, "short.log"), 3)
	os.Remove(filepath.Join(out, "gone.log"))
	run(func(c *client) {
		// New cut the tail; the rest are written from where they are.
		wantFile(t, filepath.Join(out, "tail.log"), "t1\n")
		wantFile(t, filepath.Join(out, "short.log"), "s1\n")
		c.send(2, chunk(senderA, 1, "tail.log", "t1", "t2"), chunk(senderA, 7, "short.log", "s3"),
			chunk(senderA, 8, "gone.log", "g2"), chunk(senderA, 9, "foreign.log", "f2"))
		c.ack(2)
	})
	wantFile(t, filepath.Join(out, "tail.log"), "t1\n")
	wantFile(t, filepath.Join(out, "short.log"), "s1\ns3\n")
	wantFile(t, filepath.Join(out, "gone.log"), "g2\n")
	wantFile(t, filepath.Join(out, "foreign.log"), "not ours\nf1\nf2\n")
}

func appendFile(t testing.TB, p, s string) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(s)
	f.Close()
}

func TestRotation(t *testing.T) {
	out := t.TempDir()
	_, addr := startServer(t, Options{OutDir: out})
	p := filepath.Join(out, "app.log")
	c := dial(t, addr)
	c.send(1, chunk(senderA, 1, "app.log", "1"))
	c.ack(1)
	// logrotate "create": move the file away.
	os.Rename(p, p+".1")
	c.send(2, chunk(senderA, 2, "app.log", "2"))
	c.ack(2)
	wantFile(t, p+".1", "1\n")
	wantFile(t, p, "2\n")
	// logrotate "copytruncate".
	os.Truncate(p, 0)
	c.send(3, chunk(senderA, 3, "app.log", "3"))
	c.ack(3)
	wantFile(t, p, "3\n")
	// Removed, directory and all.
	c.send(4, chunk(senderA, 4, "d/x.log", "4"))
	c.ack(4)
	os.RemoveAll(filepath.Join(out, "d"))
	c.send(5, chunk(senderA, 5, "d/x.log", "5"))
	c.ack(5)
	wantFile(t, filepath.Join(out, "d/x.log"), "5\n")
}

// A failed commit (here: injected ENOSPC) acknowledges nothing and leaves
// the files as committed; a resend writes everything once.
func TestCommitFailureRollsBack(t *testing.T) {
	out := t.TempDir()
	var mu sync.Mutex
	failing := false
	setHook := func(on bool) { mu.Lock(); failing = on; mu.Unlock() }
	s, addr := startServer(t, Options{OutDir: out}, func(s *Server) {
		s.failCommit = func() error {
			mu.Lock()
			defer mu.Unlock()
			if failing {
				return fmt.Errorf("injected: %w", syscall.ENOSPC)
			}
			return nil
		}
	})
	c := dial(t, addr)
	c.send(1, chunk(senderA, 1, "a.log", "1"))
	c.ack(1)
	setHook(true)
	c.send(2, chunk(senderA, 2, "a.log", "2"), chunk(senderB, 1, "new/b.log", "b"))
	if msg := c.refused(); !strings.HasPrefix(msg, "disk full: ") {
		t.Errorf("error %q", msg)
	}
	wantFile(t, filepath.Join(out, "a.log"), "1\n")
	if st := s.Stats(); st.WriteErrors == 0 {
		t.Error("no write error counted")
	}
	setHook(false)
	c = dial(t, addr)
	c.send(2, chunk(senderA, 2, "a.log", "2"), chunk(senderB, 1, "new/b.log", "b"))
	c.ack(2)
	wantFile(t, filepath.Join(out, "a.log"), "1\n2\n")
	wantFile(t, filepath.Join(out, "new/b.log"), "b\n")
}

// A path the file system refuses (a file where a directory must be) fails
// only the connection that sent it; others in the same group are written.
func TestPathConflictFailsOnlyItsConnection(t *testing.T) {
	out := t.TempDir()
	_, addr := startServer(t, Options{OutDir: out})
	c := dial(t, addr)
	c.send(1, chunk(senderA, 1, "f", "file"))
	c.ack(1)
	bad, good := dial(t, addr), dial(t, addr)
	bad.send(1, chunk(senderA, 2, "f/under-a-file.log", "x"))
	good.send(1, chunk(senderB, 1, "g.log", "y"))
	if msg := bad.refused(); !strings.HasPrefix(msg, "write error: ") {
		t.Errorf("error %q", msg)
	}
	good.ack(1)
	wantFile(t, filepath.Join(out, "g.log"), "y\n")
	wantFile(t, filepath.Join(out, "f"), "file\n")
}

// ---- disk full, for real ----

func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	})
	out := filepath.Join(mnt, "out")
	s, addr := startServer(t, Options{OutDir: out})

	lines := func(first, n int) []string {
		var l []string
		for i := range n {
			l = append(l, fmt.Sprintf("line %06d %s", first+i, strings.Repeat("x", 100)))
		}
		return l
	}
	b1 := chunk(senderA, 1, "app.log", lines(1, 10)...)
	b2 := chunk(senderA, 11, "app.log", lines(11, 2000)...) // ~230 KB
	b3 := chunk(senderA, 2011, "app.log", lines(2011, 10)...)
	want := func(chunks ...record.Chunk) string {
		var b strings.Builder
		for _, c := range chunks {
			for _, r := range c.Records {
				b.Write(r)
				b.WriteByte('\n')
			}
		}
		return b.String()
	}

	c := dial(t, addr)
	c.send(1, b1)
	c.ack(1)

	// Fill the file system, then leave 16 KiB: the big batch half fits.
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	block := make([]byte, 4096)
	for {
		if _, err := f.Write(block); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	fi, _ := f.Stat()
	f.Truncate(fi.Size() - 16<<10)
	f.Close()

	c.send(2, b2)
	c.send(3, b3)
	if msg := c.refused(); !strings.HasPrefix(msg, "disk full: ") {
		t.Fatalf("error %q, want disk full", msg)
	}
	// Rolled back to what was acknowledged.
	wantFile(t, filepath.Join(out, "app.log"), want(b1))
	// Still full: a new connection is refused the same way.
	c = dial(t, addr)
	c.send(2, b2)
	if msg := c.refused(); !strings.HasPrefix(msg, "disk full: ") {
		t.Fatalf("error %q, want disk full", msg)
	}
	if st := s.Stats(); st.WriteErrors < 2 || st.Batches != 1 {
		t.Errorf("stats %+v", st)
	}

	// Space comes back; the sender resends what was not acknowledged.
	os.Remove(filler)
	c = dial(t, addr)
	c.send(2, b2)
	c.send(3, b3)
	c.ack(2)
	c.ack(3)
	wantFile(t, filepath.Join(out, "app.log"), want(b1, b2, b3))
}

// ---- crash consistency with a real process ----

const crashEnv = "KURA_SERVE_CRASH_DIR"

// TestCrashChild is the receiver process TestCrashConsistency kills.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashConsistency")
	}
	s, err := New(Options{OutDir: dir, Format: "%H %L\n", Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, "New:", err)
		os.Exit(3)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	fmt.Printf("KURA_SERVE_ADDR %s\n", ln.Addr())
	s.Serve(context.Background(), ln)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func startChild(t *testing.T, dir string, logs *syncBuffer) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // a test that stops early leaves no receiver behind
		cmd.Process.Kill()
		cmd.Wait()
	})
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "KURA_SERVE_ADDR "); ok {
			go io.Copy(io.Discard, stdout)
			return cmd, addr
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatalf("child did not start:\n%s", logs)
	return nil, ""
}

// stream sends batches[from:] over a new connection with up to 32 in
// flight, like a sender: it returns how many batches (from the start) are
// acknowledged when the connection ends. After the killAt-th batch is
// acknowledged (counting from the start; -1: never) it calls kill.
func stream(t *testing.T, addr string, batches [][]record.Chunk, from, killAt int, kill func()) int {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c, err := tryHandshake(t, nc)
	if err != nil {
		if kill == nil {
			t.Fatal(err)
		}
		return from // killed before the handshake: nothing more acknowledged
	}
	nc.SetDeadline(time.Time{})
	window := make(chan struct{}, 32)
	stop := make(chan struct{})
	go func() {
		for i := from; i < len(batches); i++ {
			select {
			case window <- struct{}{}:
			case <-stop:
				return
			}
			if c.w.WriteBatch(uint64(i+1), batches[i]) != nil {
				return
			}
			if len(window) == cap(window) || i == len(batches)-1 || mrand.IntN(4) == 0 {
				if c.w.Flush() != nil {
					return
				}
			}
		}
	}()
	defer close(stop)
	acked := from
	for acked < len(batches) {
		typ, body, err := c.r.Next()
		if err != nil {
			return acked
		}
		if typ != wire.TypeAck {
			e, _ := wire.ParseError(body)
			t.Fatalf("frame type %d (%v) while waiting for ack %d", typ, e, acked+1)
		}
		a, _ := wire.ParseAck(body)
		if a.ID != uint64(acked+1) {
			t.Fatalf("ack %d, want %d", a.ID, acked+1)
		}
		acked++
		<-window
		if acked == killAt {
			kill()
		}
	}
	return acked
}

func TestCrashConsistency(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, seed))

	// Two senders through one connection (a relay), three files, one shared.
	const nBatches = 600
	var batches [][]record.Chunk
	want := map[string]*strings.Builder{}
	next := map[record.SenderID]uint64{senderA: 1, senderB: 1}
	paths := map[record.SenderID][]string{senderA: {"a.log", "shared.log"}, senderB: {"dir/b.log", "shared.log"}}
	for b := range nBatches {
		var chunks []record.Chunk
		for range 1 + rng.IntN(4) {
			id := senderA
			host := "hostA"
			if rng.IntN(2) == 0 {
				id, host = senderB, "hostB"
			}
			p := paths[id][rng.IntN(2)]
			var lines []string
			for range 1 + rng.IntN(80) {
				lines = append(lines, fmt.Sprintf("seq %d batch %d %s", next[id], b, strings.Repeat("z", rng.IntN(120))))
				next[id]++
			}
			c := withHost(chunk(id, next[id]-uint64(len(lines)), p, lines...), host)
			chunks = append(chunks, c)
			if want[p] == nil {
				want[p] = &strings.Builder{}
			}
			for _, l := range lines {
				fmt.Fprintf(want[p], "%s %s\n", host, l)
			}
		}
		batches = append(batches, chunks)
	}

	dir := t.TempDir()
	logs := &syncBuffer{}
	acked := 0
	for kill := 0; kill < 8 && acked < nBatches; kill++ {
		cmd, addr := startChild(t, dir, logs)
		var once sync.Once
		doKill := func() { once.Do(func() { cmd.Process.Signal(syscall.SIGKILL) }) }
		killAt := -1
		if kill%2 == 0 {
			// After a random acknowledgement, with more batches in flight.
			killAt = acked + 1 + rng.IntN(max(1, (nBatches-acked)/5))
		} else {
			// After a random time, wherever the receiver is.
			time.AfterFunc(time.Duration(rng.IntN(100000))*time.Microsecond, doKill)
		}
		acked = stream(t, addr, batches, acked, killAt, doKill)
		doKill()
		cmd.Wait()
		t.Logf("kill %d: killAt %d, acked %d", kill+1, killAt, acked)
	}
	cmd, addr := startChild(t, dir, logs)
	acked = stream(t, addr, batches, acked, -1, nil)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if acked != nBatches {
		t.Fatalf("acked %d of %d", acked, nBatches)
	}
	// Once more through recovery: a complete output stays as it is.
	cmd, _ = startChild(t, dir, logs)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	for p, w := range want {
		got := readFile(t, filepath.Join(dir, p))
		if got != w.String() {
			t.Errorf("%s: %d bytes, want %d; first difference at line %d", p, len(got), w.Len(), firstDiffLine(got, w.String()))
		}
	}
	t.Logf("tails cut on restart: %d", strings.Count(logs.String(), "cut unacknowledged tail"))
	if t.Failed() {
		t.Logf("child logs:\n%s", logs)
	}
}

func firstDiffLine(a, b string) int {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] != lb[i] {
			return i + 1
		}
	}
	return min(len(la), len(lb)) + 1
}

// ---- fuzz ----

func FuzzFormat(f *testing.F) {
	for _, s := range []string{"%T %H %P/%p %F %f <%L> <%l> %%\\n", "%", "\\", "%L\\t%l\\r\\\\", "%%%", "plain", "%é\\é"} {
		f.Add(s, []byte("  data  "), "dir/file.log", "host", false)
	}
	f.Fuzz(func(t *testing.T, tmpl string, data []byte, p, host string, bin bool) {
		for _, form := range []string{tmpl, "json", ""} {
			fm, err := newFormatter(form, "2006-01-02 15:04:05.000000000", time.UTC)
			if err != nil {
				if ValidateFormat(form) == nil {
					t.Fatalf("ValidateFormat accepts %q, newFormatter refuses it: %v", form, err)
				}
				continue
			}
			c := record.Chunk{Sender: senderA, FirstSeq: 1, Time: when.UnixNano(), Host: host, Path: p, Binary: bin, Records: [][]byte{data}}
			var ct chunkText
			fm.prepare(&c, &ct)
			out := fm.appendRecord(nil, &c, &ct, 1, data)
			switch form {
			case "json":
				var m map[string]any
				if err := json.Unmarshal(out, &m); err != nil {
					t.Fatalf("json output %q: %v", out, err)
				}
			case "":
			default:
				if !strings.Contains(form, "%") && !strings.Contains(form, "\\") && string(out) != form {
					t.Fatalf("literal template %q rendered %q", form, out)
				}
			}
		}
	})
}

func FuzzDecodeState(f *testing.F) {
	s := &Server{seqs: map[record.SenderID]uint64{senderA: 5}, files: map[string]*outFile{"a/b.log": {known: true, committed: 10}}}
	f.Add(s.encodeState(nil, map[record.SenderID]uint64{senderB: 2}, false))
	f.Add([]byte(stateMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeState(b)
		if err != nil {
			return
		}
		for p := range st.files {
			if checkRelPath(p) != nil || inStateDir(p) {
				t.Fatalf("decoded unsafe path %q", p)
			}
		}
	})
}

// FuzzBatch feeds arbitrary batch frames to a running receiver: it answers
// Ack or Error, never crashes, and never writes outside OutDir.
func FuzzBatch(f *testing.F) {
	var seed []byte
	seed = append(seed, wire.TypeBatch)
	seed = binary.LittleEndian.AppendUint64(seed, 1)
	seed = binary.AppendUvarint(seed, 1)
	c := chunk(senderA, 1, "fuzz.log", "a", "b")
	seed = binary.AppendUvarint(seed, uint64(c.EncodedLen()))
	seed = c.AppendEncode(seed)
	f.Add(seed[1:])
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0})
	parent := f.TempDir()
	out := filepath.Join(parent, "out")
	_, addr := startServer(f, Options{OutDir: out, Logger: slog.New(slog.DiscardHandler), NoSync: true})
	f.Fuzz(func(t *testing.T, body []byte) {
		c := dial(t, addr)
		c.frame(append([]byte{wire.TypeBatch}, body...), false)
		typ, _, err := c.r.Next()
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		if typ != wire.TypeAck && typ != wire.TypeError {
			t.Fatalf("answer type %d", typ)
		}
		entries, _ := os.ReadDir(parent)
		if len(entries) != 1 {
			t.Fatalf("%d entries beside OutDir", len(entries)-1)
		}
	})
}

// ---- benchmarks ----

// BenchmarkServe streams batches of 500 lines of 100 bytes over one
// connection, 32 in flight, and reports the output rate.
func BenchmarkServe(b *testing.B) {
	for _, nosync := range []bool{false, true} {
		b.Run(fmt.Sprintf("nosync=%v", nosync), func(b *testing.B) {
			_, addr := startServer(b, Options{OutDir: b.TempDir(), NoSync: nosync, Logger: slog.New(slog.DiscardHandler)})
			c := dial(b, addr)
			c.nc.SetDeadline(time.Time{})
			line := strings.Repeat("x", 99)
			const per = 500
			b.SetBytes(per * 100)
			window := make(chan struct{}, 32)
			go func() {
				seq := uint64(1)
				lines := make([]string, per)
				for i := range lines {
					lines[i] = line
				}
				for i := range b.N {
					window <- struct{}{}
					if c.w.WriteBatch(uint64(i+1), []record.Chunk{chunk(senderA, seq, "bench.log", lines...)}) != nil {
						return
					}
					seq += per
					if len(window) == cap(window) || i == b.N-1 {
						c.w.Flush()
					}
				}
			}()
			for i := range b.N {
				c.ack(uint64(i + 1))
				<-window
			}
		})
	}
}
