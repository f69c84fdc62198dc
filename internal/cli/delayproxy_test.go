package cli

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// TestDelayProxy: bytes pass unchanged, each way held for the delay, and
// pipelined writes pay it once.
func TestDelayProxy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // an echo server
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	const delay = 50 * time.Millisecond
	p, err := startDelayProxy(ln.Addr().String(), delay)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	msg := bytes.Repeat([]byte("kura"), 10000) // several chunks
	start := time.Now()
	go func() {
		for i := 0; i < len(msg); i += 1000 { // ten pipelined writes
			c.Write(msg[i:min(i+1000, len(msg))])
		}
	}()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if !bytes.Equal(got, msg) {
		t.Fatal("bytes changed through the proxy")
	}
	if took < 2*delay {
		t.Errorf("round trip %v, want at least 2x the delay %v", took, delay)
	}
	if took > 6*delay { // held one after another, ten writes would take 10x
		t.Errorf("round trip %v for pipelined writes: the delay was paid per write, not once (delay %v)", took, delay)
	}
}

func TestDFSBenchMetaDelayNeedsPostgres(t *testing.T) {
	var out, errOut bytes.Buffer
	code := Run(t.Context(), []string{"dfs", "bench", "--meta-delay", "1ms"}, bytes.NewReader(nil), &out, &errOut)
	if code != 2 || !bytes.Contains(errOut.Bytes(), []byte("--meta-delay 1ms: want a positive delay and a postgres:// --meta")) {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
}
