// Package dfstest starts in-process dfs clusters for tests: a namenode on
// SQLite (or a given database) and datanodes on temporary directories,
// all on 127.0.0.1 with ports picked by the system, stopped when the test
// ends.
package dfstest

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/datanode"
	"github.com/kura-dev/kura/dfs/dnmanager"
	"github.com/kura-dev/kura/dfs/namenode"
)

// Options configures Start; zero fields take the defaults named.
type Options struct {
	// Datanodes is the number of datanodes (0: none).
	Datanodes int
	// MetaURL is the namenode's database (a fresh SQLite file when empty).
	MetaURL string
	// Heartbeat is the datanodes' heartbeat interval (50 ms).
	Heartbeat time.Duration
	// DeadIntervals is the heartbeats after which the namenode calls a
	// silent datanode dead (200, 10 s at the default heartbeat).
	DeadIntervals int
}

// Cluster is a running namenode with its datanodes.
type Cluster struct {
	// Namenode is the namenode; its RPCAddr serves clients and datanodes.
	Namenode *namenode.Namenode
	// Datanodes are the datanodes, in start order.
	Datanodes []*datanode.Datanode
}

// Start starts a cluster and waits until the namenode counts every
// datanode live (failing the test after 20 s). Everything stops when the
// test ends.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	if o.MetaURL == "" {
		o.MetaURL = "sqlite://" + filepath.Join(t.TempDir(), "meta.db")
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 50 * time.Millisecond
	}
	if o.DeadIntervals <= 0 {
		o.DeadIntervals = 200
	}
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := namenode.Start(ctx, namenode.Config{
		MetaURL: o.MetaURL, HTTPAddr: "127.0.0.1:0", RPCAddr: "127.0.0.1:0",
		Datanodes:           dnmanager.Config{HeartbeatInterval: o.Heartbeat, DeadIntervals: o.DeadIntervals},
		MaintenanceInterval: -1,
		Logger:              quiet,
	})
	if err != nil {
		t.Fatalf("dfstest: start a namenode: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	c := &Cluster{Namenode: n}
	for range o.Datanodes {
		d, err := datanode.Start(ctx, datanode.Config{
			DataDir: t.TempDir(), DataAddr: "127.0.0.1:0", Namenodes: []string{n.RPCAddr()},
			HeartbeatInterval: o.Heartbeat, Logger: quiet,
		})
		if err != nil {
			t.Fatalf("dfstest: start a datanode: %v", err)
		}
		t.Cleanup(func() { d.Close() })
		c.Datanodes = append(c.Datanodes, d)
	}
	deadline := time.Now().Add(20 * time.Second)
	for n.Manager().LiveCount() < o.Datanodes {
		if time.Now().After(deadline) {
			t.Fatalf("dfstest: %d of %d datanodes live after 20 s", n.Manager().LiveCount(), o.Datanodes)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

// Client returns a client of the cluster calling as user, closed when the
// test ends.
func (c *Cluster) Client(t testing.TB, user string) *client.Client {
	t.Helper()
	cl, err := client.New(client.Config{Namenodes: []string{c.Namenode.RPCAddr()}, User: user})
	if err != nil {
		t.Fatalf("dfstest: %v", err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// ReadFile reads the whole file path with c, failing the test on an error.
func ReadFile(t testing.TB, ctx context.Context, c *client.Client, path string) []byte {
	t.Helper()
	r, err := c.Open(ctx, path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return got
}
