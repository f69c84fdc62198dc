package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dfsclient "github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/dal/daltest"
)

// TestWritesSurviveNamenodeKill writes files through two namenodes on one
// PostgreSQL database with clients that spread their calls over both, and
// SIGKILLs one namenode mid-run: the clients carry on with the other
// (creates, addBlocks and completes whose answers were lost are retried and
// recognized), every file whose Close succeeded reads back identical,
// none fails, and fsck finds the metadata consistent.
func TestWritesSurviveNamenodeKill(t *testing.T) {
	meta := daltest.PostgresURL(t)
	rpc1, rpc2 := freeAddr(t), freeAddr(t)
	nn1 := launch(t, "nn1", "dfs", "namenode", "--meta", meta, "--http", "127.0.0.1:0", "--rpc", rpc1, "--maintenance-interval", "200ms")
	waitLine(t, nn1, nnReadyRE)
	nn2 := launch(t, "nn2", "dfs", "namenode", "--meta", meta, "--http", "127.0.0.1:0", "--listen", rpc2, "--maintenance-interval", "200ms") // --listen: --rpc by the name
	http2 := waitLine(t, nn2, nnReadyRE)[1]
	nns := rpc1 + "," + rpc2
	for i := range 3 {
		startDatanodeProc(t, fmt.Sprintf("dn%d", i), t.TempDir(), nns)
	}
	waitStatus(t, http2, "3 live datanodes on nn2", func(st nnStatus) bool { return st.Live == 3 })

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const writers, files = 4, 12
	type written struct {
		path string
		data []byte
	}
	var (
		mu      sync.Mutex
		done    []written
		failed  []string
		closed  atomic.Int64
		killed  = make(chan struct{})
		afterKi atomic.Int64
	)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dfsclient.New(dfsclient.Config{Namenodes: []string{rpc1, rpc2}, User: "root"})
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range files {
				path := fmt.Sprintf("/w%d/f%02d", w, i)
				data := make([]byte, rng.IntN(5<<19)) // up to 2.5 blocks
				for j := range data {
					data[j] = byte(rng.Uint32())
				}
				err := func() error {
					wr, err := c.Create(ctx, path, dfsclient.CreateOptions{CreateParent: true, Replication: 2, BlockSize: 1 << 20})
					if err != nil {
						return err
					}
					for rest := data; len(rest) > 0; {
						n := min(len(rest), 64<<10)
						if _, err := wr.Write(rest[:n]); err != nil {
							wr.Close()
							return err
						}
						rest = rest[n:]
					}
					return wr.Close()
				}()
				mu.Lock()
				if err != nil {
					failed = append(failed, fmt.Sprintf("%s: %v", path, err))
				} else {
					done = append(done, written{path, data})
				}
				mu.Unlock()
				if err == nil {
					closed.Add(1)
					select {
					case <-killed:
						afterKi.Add(1)
					default:
					}
				}
			}
		}()
	}
	// Kill nn1 once the writers are well under way.
	deadline := time.Now().Add(60 * time.Second)
	for closed.Load() < writers*files/4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	nn1.cmd.Process.Signal(syscall.SIGKILL)
	<-nn1.done
	close(killed)
	t.Logf("nn1 killed after %d files closed", closed.Load())
	wg.Wait()

	if len(failed) > 0 {
		t.Errorf("%d of %d writes failed:\n%s", len(failed), writers*files, strings.Join(failed, "\n"))
	}
	if afterKi.Load() == 0 {
		t.Error("no file was closed after nn1 was killed")
	}
	c, err := dfsclient.New(dfsclient.Config{Namenodes: []string{rpc2}, User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, f := range done {
		r, err := c.Open(ctx, f.path)
		if err != nil {
			t.Errorf("open %s: %v", f.path, err)
			continue
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, f.data) {
			t.Errorf("%s: read %d bytes (%v), wrote %d", f.path, len(got), err, len(f.data))
		}
	}
	t.Logf("%d files written and read back, %d after the kill", len(done), afterKi.Load())

	r := fsck(t, openNamespace(t, meta))
	if r.Files != int64(writers*files) {
		t.Errorf("fsck counts %d files, want %d", r.Files, writers*files)
	}
}
