package namenode_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/datanode"
	"github.com/kura-dev/kura/dfs/dnmanager"
	"github.com/kura-dev/kura/dfs/namenode"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDatanodeProtocol starts a namenode with an RPC port and an
// in-process datanode that registers with it; /status shows it live, and
// dead once it stops.
func TestDatanodeProtocol(t *testing.T) {
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := namenode.Start(ctx, namenode.Config{
		MetaURL:   "sqlite://" + filepath.Join(t.TempDir(), "meta.db"),
		HTTPAddr:  "127.0.0.1:0",
		RPCAddr:   "127.0.0.1:0",
		Datanodes: dnmanager.Config{HeartbeatInterval: 50 * time.Millisecond, DeadIntervals: 6},
		Logger:    quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.RPCAddr() == "" || n.RPCAddr() == "127.0.0.1:0" {
		t.Fatalf("RPCAddr %q", n.RPCAddr())
	}
	d, err := datanode.Start(ctx, datanode.Config{
		DataDir:           t.TempDir(),
		DataAddr:          "127.0.0.1:0",
		Namenodes:         []string{n.RPCAddr()},
		HeartbeatInterval: 50 * time.Millisecond,
		Logger:            quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	waitFor(t, "registration", func() bool { return d.Registered(n.RPCAddr()) && len(n.Datanodes()) == 1 })
	if got := n.Datanodes()[0]; got.StorageID != d.StorageID() || got.DataAddr != d.Addr() || !got.Live {
		t.Fatalf("datanode %+v, want storage %s at %s, live", got, d.StorageID(), d.Addr())
	}
	waitFor(t, "a heartbeat with usage", func() bool { return n.Datanodes()[0].Capacity > 0 })

	status := func() namenode.Status {
		t.Helper()
		code, body := get(t, "GET", "http://"+n.HTTPAddr()+namenode.StatusPath)
		if code != 200 {
			t.Fatalf("GET /status: %d %s", code, body)
		}
		var st namenode.Status
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("GET /status: %v: %s", err, body)
		}
		return st
	}
	st := status()
	if st.RPCAddr != n.RPCAddr() || st.Backend != "sqlite" || st.Live != 1 || st.Dead != 0 || len(st.Datanodes) != 1 ||
		st.Datanodes[0].StorageID != d.StorageID() || st.Datanodes[0].Remaining <= 0 || st.DeadAfterSeconds != 0.3 {
		t.Fatalf("status %+v", st)
	}
	// The namespace's capacity comes from the datanodes.
	fs, err := n.Namespace().FsStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fs.Capacity <= 0 {
		t.Errorf("FsStats capacity %d with a datanode", fs.Capacity)
	}

	d.Close()
	waitFor(t, "the stopped datanode dead", func() bool { st := status(); return st.Live == 0 && st.Dead == 1 })
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRPCOff(t *testing.T) {
	n, err := namenode.Start(context.Background(), namenode.Config{
		MetaURL:  "sqlite://" + filepath.Join(t.TempDir(), "meta.db"),
		HTTPAddr: "127.0.0.1:0",
		RPCAddr:  "off",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.RPCAddr() != "" || n.Datanodes() != nil || n.Manager() != nil {
		t.Fatalf("RPC off: %q %v", n.RPCAddr(), n.Datanodes())
	}
	code, body := get(t, "GET", "http://"+n.HTTPAddr()+"/status")
	if code != 200 || !json.Valid([]byte(body)) {
		t.Fatalf("/status: %d %s", code, body)
	}
}
