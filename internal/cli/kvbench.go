package cli

import "github.com/spf13/cobra"

func kvBench(e *env, f *kvFlags) *cobra.Command {
	return &cobra.Command{Use: "bench", Short: "Benchmark a kv cluster against etcd and Redis", Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error { return usagef("kv bench: not yet") }}
}
