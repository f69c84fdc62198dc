package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	dfsclient "github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/datanode"
	"github.com/kura-dev/kura/dfs/namenode"
)

// devDFS runs a dfs namenode on SQLite and three datanodes in this
// process, writes a file through the client, reads it back and shows its
// status over WebHDFS.
func devDFS(ctx context.Context, e *env, dir string) error {
	out := e.stdout
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := os.MkdirAll(filepath.Join(dir, "dfs"), 0o755); err != nil {
		return err
	}
	meta := "sqlite://" + filepath.Join(dir, "dfs", "meta.db")
	nn, err := namenode.Start(ctx, namenode.Config{MetaURL: meta, HTTPAddr: "127.0.0.1:0", RPCAddr: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		return fmt.Errorf("dev: start a dfs namenode: %w", err)
	}
	defer nn.Close()
	fmt.Fprintf(out, "\nA dfs namenode with its metadata in SQLite, and three datanodes:\n$ kura dfs namenode --meta %s --http %s --rpc %s &\n",
		meta, nn.HTTPAddr(), nn.RPCAddr())
	for i := range 3 {
		data := filepath.Join(dir, "dfs", fmt.Sprintf("dn%d", i+1))
		d, err := datanode.Start(ctx, datanode.Config{DataDir: data, DataAddr: "127.0.0.1:0", Namenodes: []string{nn.RPCAddr()},
			HeartbeatInterval: 100 * time.Millisecond, Logger: quiet})
		if err != nil {
			return fmt.Errorf("dev: start a dfs datanode: %w", err)
		}
		defer d.Close()
		fmt.Fprintf(out, "$ kura dfs datanode --data %s --namenode %s --listen %s &\n", data, nn.RPCAddr(), d.Addr())
	}
	deadline := time.Now().Add(10 * time.Second)
	for nn.Manager().LiveCount() < 3 {
		if time.Now().After(deadline) {
			return fmt.Errorf("dev: the datanodes did not register with the namenode")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c, err := dfsclient.New(dfsclient.Config{Namenodes: []string{nn.RPCAddr()}, User: "root"})
	if err != nil {
		return err
	}
	defer c.Close()
	text := []byte("hello, dfs\n")
	w, err := c.Create(ctx, "/user/root/hello.txt", dfsclient.CreateOptions{CreateParent: true})
	if err != nil {
		return err
	}
	if _, err := w.Write(text); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	r, err := c.Open(ctx, "/user/root/hello.txt")
	if err != nil {
		return err
	}
	got, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, text) {
		return fmt.Errorf("dev: read back %q, wrote %q", got, text)
	}
	nnFlag := "--namenode " + nn.RPCAddr()
	fmt.Fprintf(out, "$ echo 'hello, dfs' | kura dfs put %s - /user/root/hello.txt\n$ kura dfs cat %s /user/root/hello.txt\n%s", nnFlag, nnFlag, got)
	locs, err := c.BlockLocations(ctx, "/user/root/hello.txt")
	if err != nil {
		return err
	}
	if len(locs.Blocks) == 1 {
		fmt.Fprintf(out, "(one block, %d replicas)\n", len(locs.Blocks[0].Locations))
	}
	url := "http://" + nn.HTTPAddr() + "/webhdfs/v1/user/root/hello.txt?op=GETFILESTATUS&user.name=root"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("dev: WebHDFS: %w", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "$ curl '%s'\n%s\n", url, bytes.TrimSpace(body))
	return nil
}
