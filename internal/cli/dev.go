package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-dev/kura/ft/agent"
	"github.com/kura-dev/kura/ft/serve"
	"github.com/kura-dev/kura/kv/client"
	"github.com/kura-dev/kura/kv/server"
	"github.com/kura-dev/kura/store"
)

// newDevCommand returns `kura dev`, which runs kura on this machine with
// embedded defaults: a guided tour of the local storage engine, a one-node
// kv cluster, a dfs namenode with three datanodes and, as root, an ft
// receiver and mount.
func newDevCommand(e *env) *cobra.Command {
	var dir string
	var keep bool
	c := &cobra.Command{
		Use:   "dev",
		Short: "Try kura on this machine with embedded defaults",
		Long: `dev runs kura locally with no configuration. Today it walks through the local
storage engine (keys, subkeys, queues, CAS, TTL, encryption, the change feed),
a one-node kv cluster, a dfs namenode on SQLite with three datanodes (a file
written, read back and seen over WebHDFS) and, as root, ft (a receiver and a
mount, lines written and arriving) in a
fresh directory, and prints each step with the CLI command that does the same,
so you can carry on by hand.`,
		Example: "  kura dev\n  kura dev --dir /tmp/kura-dev --keep",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if dir == "" {
				tmp, err := os.MkdirTemp("", "kura-dev-")
				if err != nil {
					return err
				}
				dir = tmp
				if !keep {
					defer os.RemoveAll(tmp)
				}
			}
			return runDevTour(c.Context(), e, dir)
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "directory for the demo data (default: a temporary one)")
	c.Flags().BoolVar(&keep, "keep", false, "keep the temporary directory afterwards")
	return c
}

func runDevTour(ctx context.Context, e *env, dir string) error {
	kvDir := filepath.Join(dir, "kv")
	s, err := store.Open(kvDir, store.Options{ReapInterval: 50 * time.Millisecond, ChangeLog: true})
	if err != nil {
		return err
	}
	defer s.Close()
	out := e.stdout
	step := func(cmd, result string) {
		fmt.Fprintf(out, "$ kura kv --local %s %s\n%s\n", kvDir, cmd, result)
	}
	fmt.Fprintf(out, "kura dev: a tour of the local storage engine in %s\n\n", kvDir)

	if err := s.Set(ctx, []byte("greeting"), []byte("hello, kura"), 0); err != nil {
		return err
	}
	v, err := s.Get(ctx, []byte("greeting"))
	if err != nil {
		return err
	}
	step("set greeting 'hello, kura' && kura kv ... get greeting", string(v))

	for _, u := range []string{"alice", "bob"} {
		if err := s.SetSubkey(ctx, []byte("users"), []byte("user/"+u), []byte(u+"@example.com"), 0); err != nil {
			return err
		}
	}
	subs, err := s.Subkeys(ctx, []byte("users"))
	if err != nil {
		return err
	}
	step("subkey set users user/alice alice@example.com (and bob) && ... subkey list users", fmt.Sprintf("%s", subs))

	for _, j := range []string{"job-1", "job-2", "job-3"} {
		if err := s.Push(ctx, []byte("jobs"), []byte(j)); err != nil {
			return err
		}
	}
	first, err := s.Pop(ctx, []byte("jobs"), store.Front)
	if err != nil {
		return err
	}
	last, err := s.Pop(ctx, []byte("jobs"), store.Back)
	if err != nil {
		return err
	}
	step("queue push jobs job-1 job-2 job-3 && ... queue pop jobs && ... queue pop jobs --lifo",
		fmt.Sprintf("FIFO pop: %s, LIFO pop: %s", first.Value, last.Value))

	if err := s.CASInit(ctx, []byte("visits"), 8, 254); err != nil {
		return err
	}
	a, _ := s.CASAdd(ctx, []byte("visits"), 8, 1)
	b, _ := s.CASAdd(ctx, []byte("visits"), 8, 1)
	step("cas init visits 254 --bits 8 && ... cas incr visits --bits 8 (twice)",
		fmt.Sprintf("%d, then %d (uint8 wraps)", a, b))

	if err := s.Set(ctx, []byte("session"), []byte("token"), 200*time.Millisecond); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond)
	_, err = s.Get(ctx, []byte("session"))
	step("set session token --ttl 200ms; sleep 0.3; kura kv ... get session", fmt.Sprintf("after expiry: %v", err))

	fmt.Fprintf(out, "\nThe change feed (kura kv --local %s changelog on, before the writes; then ... watch):\n", kvDir)
	for seq := uint64(0); seq < s.LastSeq(); {
		ch, err := s.NextChange(ctx, seq)
		if err != nil {
			return err
		}
		line, _ := ch.MarshalJSON()
		fmt.Fprintf(out, "%s\n", line)
		seq = ch.Seq
	}
	if err := s.Close(); err != nil {
		return err
	}

	encDir := filepath.Join(dir, "kv-encrypted")
	pass := filepath.Join(dir, "passphrases")
	if err := os.WriteFile(pass, []byte("correct horse battery staple\n"), 0o600); err != nil {
		return err
	}
	enc, err := store.Open(encDir, store.Options{Passphrases: []string{"correct horse battery staple"}})
	if err != nil {
		return err
	}
	if err := enc.Set(ctx, []byte("secret"), []byte("s3cr3t"), 0); err != nil {
		enc.Close()
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	plain, err := store.Open(encDir, store.Options{})
	if err != nil {
		return err
	}
	_, err = plain.Get(ctx, []byte("secret"))
	plain.Close()
	fmt.Fprintf(out, "\n$ kura kv --local %s --passphrase-file %s set secret s3cr3t\n$ kura kv --local %s get secret\n%v\n", encDir, pass, encDir, err)
	if err := devCluster(ctx, e, dir); err != nil {
		return err
	}
	if err := devDFS(ctx, e, dir); err != nil {
		return err
	}
	if err := devFT(ctx, e, dir); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nDone. Every step above is a kura command; see `kura kv --help`, `kura dfs --help` and `kura ft --help`.\n")
	return nil
}

// devCluster starts a one-node kv cluster in this process and uses it
// through the cluster client, as `kura kv --endpoints` does.
func devCluster(ctx context.Context, e *env, dir string) error {
	out := e.stdout
	data := filepath.Join(dir, "kv-node")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := server.Start(ctx, server.Config{DataDir: data, Listen: "127.0.0.1:0", Replicas: 1, Logger: logger})
	if err != nil {
		return fmt.Errorf("dev: start a kv node: %w", err)
	}
	defer n.Close()
	cl, err := client.New(client.Config{Endpoints: []string{n.Addr()}})
	if err != nil {
		return err
	}
	defer cl.Close()
	fmt.Fprintf(out, "\nA kv cluster node (one node; add more with --join):\n$ kura kv serve --data %s --listen %s --replicas 1\n", data, n.Addr())
	if err := cl.Set(ctx, []byte("greeting"), []byte("hello, cluster"), 0); err != nil {
		return err
	}
	v, err := cl.Get(ctx, []byte("greeting"))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "$ kura kv --endpoints %s set greeting 'hello, cluster' && kura kv --endpoints %s get greeting\n%s\n", n.Addr(), n.Addr(), v)
	if err := cl.Push(ctx, []byte("jobs"), []byte("job-1")); err != nil {
		return err
	}
	it, err := cl.Pop(ctx, []byte("jobs"), store.Front)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "$ kura kv --endpoints %s queue push jobs job-1 && ... queue pop jobs\n%s\n", n.Addr(), it.Value)
	st, err := cl.Status(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "$ kura kv --endpoints %s status\n", n.Addr())
	printStatus(e, st)
	return nil
}

// devFT runs a receiver and a mount in this process, writes a few lines
// under the mount and shows them arriving.
func devFT(ctx context.Context, e *env, dir string) error {
	out := e.stdout
	if os.Geteuid() != 0 {
		fmt.Fprintf(out, "\nft needs root for its FUSE mount; run `sudo kura dev` to see it too.\n")
		return nil
	}
	logs, recv := filepath.Join(dir, "logs"), filepath.Join(dir, "received")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := serve.New(serve.Options{OutDir: recv, Logger: quiet})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go srv.Serve(sctx, ln)
	fmt.Fprintf(out, "\n$ kura ft serve --listen %s --out %s &\n", ln.Addr(), recv)
	a, err := agent.Start(agent.Options{Dir: logs, To: ln.Addr().String(), StateDir: filepath.Join(dir, "ft-state"), Logger: quiet})
	if err != nil {
		return fmt.Errorf("ft mount: %w", err)
	}
	defer a.Stop()
	fmt.Fprintf(out, "$ kura ft mount %s --to %s &\n", logs, ln.Addr())
	f, err := os.OpenFile(filepath.Join(logs, "app.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	for _, l := range []string{"hello from kura dev", "a second line", "and a third"} {
		fmt.Fprintf(out, "$ echo %q >> %s/app.log\n", l, logs)
		if _, err := fmt.Fprintln(f, l); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	got := filepath.Join(recv, "app.log")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(got)
		if strings.Count(string(b), "\n") >= 3 {
			fmt.Fprintf(out, "$ cat %s\n%s", got, b)
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ft: the lines did not reach %s", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return a.Stop()
}
