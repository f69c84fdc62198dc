// Command kura is the single binary of kura: ft (file transfer through a
// FUSE mount), kv (a key-value store, local or clustered) and dfs (a
// distributed file system). See `kura --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kura-dev/kura/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
