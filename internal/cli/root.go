// Package cli is kura's command layer: one file per command group, each
// command with worked examples in its help. Run maps errors to exit codes:
// 0 success, 1 a failure or a missing key, 2 a usage error (bad flags,
// arguments or input values).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kura-dev/kura/store"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// usageError marks an error as the caller's mistake (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// quietFailure is a failure whose exit status is the whole answer (exit 1,
// nothing printed): `kura dfs test`'s "no", as hdfs dfs -test.
type quietFailure struct{ why string }

// Error says why, for callers that do print it.
func (e quietFailure) Error() string { return e.why }

// env carries the process's streams to the commands.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// Run executes the kura command line args and returns the exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(e)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	if errors.As(err, new(quietFailure)) {
		return exitFail
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "kura ") {
		msg = "kura: " + msg
	}
	fmt.Fprintln(stderr, msg)
	return exitCode(err)
}

func exitCode(err error) int {
	var ue usageError
	switch {
	case errors.As(err, &ue), errors.Is(err, store.ErrInvalid):
		return exitUsage
	case isCobraUsage(err):
		return exitUsage
	}
	return exitFail
}

// isCobraUsage recognises the errors cobra itself returns for bad command
// lines, which it does not type.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "required flag", "accepts ", "requires at least", "invalid argument", "flag needs an argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "kura",
		Short: "kura moves and stores data reliably across many hosts",
		Long: `kura is one binary for three systems:

  kura ft    ship every line written under a directory to receiver hosts (K2HFTFUSE)
  kura kv    a key-value store with subkeys, queues, CAS counters, TTL and
             encryption; on one machine or a Raft-replicated cluster (K2HDKC)
  kura dfs   a distributed file system with HDFS semantics (HopsFS): today
             stateless namenodes serving the metadata over WebHDFS
  kura dev   try kura on this machine with embedded defaults

Exit codes: 0 success, 1 failure (or a missing key), 2 usage error.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          noArgs,
		RunE:          groupRun,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%s: %w (see '%s --help')", c.CommandPath(), err, c.CommandPath())}
	})
	root.AddCommand(newFTCommand(e), newKVCommand(e), newDFSCommand(e), newDevCommand(e))
	return root
}

// groupRun is the RunE of commands that only group others: without a
// subcommand they print help and fail with a usage error.
func groupRun(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s: unknown command %q (see '%s --help')", c.CommandPath(), args[0], c.CommandPath())
	}
	c.Help()
	return usagef("%s: a subcommand is required", c.CommandPath())
}

func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 && !c.HasSubCommands() {
		return usagef("%s takes no arguments, got %q", c.CommandPath(), args)
	}
	return nil
}

// exactArgs is cobra.ExactArgs with a usage error that names the command.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return rangeArgs(n, n, names)
}

func rangeArgs(min, max int, names string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) < min || len(args) > max {
			return usagef("%s: expected arguments %s, got %d (see '%s --help')", c.CommandPath(), names, len(args), c.CommandPath())
		}
		return nil
	}
}
