package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-dev/kura/kv/client"
	"github.com/kura-dev/kura/kv/server"
	"github.com/kura-dev/kura/proto/kvpb"
	"github.com/kura-dev/kura/store"
)

// errClusterFeed: the single-sequence change feed ops have no meaning in a
// cluster, where each shard has its own sequence.
var errClusterFeed = fmt.Errorf("%w: in a cluster the change log is always on and each shard has its own sequence: use 'kura kv --endpoints ... watch'", store.ErrInvalid)

// clusterBackend adapts the cluster client to kvBackend.
type clusterBackend struct{ *client.Client }

func (clusterBackend) ChangeLogOn() bool                        { return true }
func (clusterBackend) SetChangeLog(context.Context, bool) error { return errClusterFeed }
func (clusterBackend) NextChange(context.Context, uint64) (store.Change, error) {
	return store.Change{}, errClusterFeed
}
func (clusterBackend) LastSeq() uint64                                 { return 0 }
func (clusterBackend) Cursor(context.Context, string) (uint64, error)  { return 0, errClusterFeed }
func (clusterBackend) SetCursor(context.Context, string, uint64) error { return errClusterFeed }

func splitEndpoints(s string) ([]string, error) {
	var out []string
	for _, ep := range strings.Split(s, ",") {
		ep = strings.TrimSpace(ep)
		if ep == "" {
			continue
		}
		if !strings.Contains(ep, ":") {
			return nil, usagef("endpoint %q: want HOST:PORT", ep)
		}
		out = append(out, ep)
	}
	if len(out) == 0 {
		return nil, usagef("--endpoints: no HOST:PORT given")
	}
	return out, nil
}

func (f *kvFlags) openCluster() (*client.Client, error) {
	eps, err := splitEndpoints(f.endpoints)
	if err != nil {
		return nil, err
	}
	cfg := client.Config{Endpoints: eps, Serializable: f.serializable, Timeout: f.timeout}
	if f.passphraseFile != "" {
		// Sent with every request: the node that receives it seals and
		// opens values with them, and never stores them.
		if cfg.Passphrases, err = store.ReadPassphraseFile(f.passphraseFile); err != nil {
			return nil, usageError{err}
		}
	}
	return client.New(cfg)
}

func kvServe(e *env) *cobra.Command {
	var cfg server.Config
	var join, passFile, debugAddr string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run a node of a replicated, sharded kv cluster",
		Long: `serve runs one node of a kv cluster. The first node, started on an empty
--data directory without --join, creates a new cluster; every other node names
one or more running nodes with --join. Keys map by hash to --shards shards,
each a Raft group replicated on --replicas nodes (a majority must be up for a
shard to serve). Any node answers any client: it forwards each operation to
the leader of the key's shard. A restarted node catches up by itself.

Encryption: --passphrase-file is read by every node (the same file on each);
values are sealed at rest with the first passphrase, all of them open. A
client's own passphrases ('kura kv --endpoints ... --passphrase-file F') are
sent with each request and replace the nodes' for it: the node that receives
the request seals and opens the values, and never stores the passphrases.`,
		Example: `  kura kv serve --data /var/lib/kura/kv1 --listen 127.0.0.1:7401
  kura kv serve --data /var/lib/kura/kv2 --listen 127.0.0.1:7402 --join 127.0.0.1:7401
  kura kv serve --data /var/lib/kura/kv3 --listen 127.0.0.1:7403 --join 127.0.0.1:7401
  kura kv --endpoints 127.0.0.1:7401,127.0.0.1:7402 set greeting hello
  kura kv --endpoints 127.0.0.1:7401 status`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if cfg.DataDir == "" {
				return usagef("kv serve: --data DIR is required")
			}
			if join != "" {
				eps, err := splitEndpoints(join)
				if err != nil {
					return err
				}
				cfg.Join = eps
			}
			if passFile != "" {
				p, err := store.ReadPassphraseFile(passFile)
				if err != nil {
					return usageError{err}
				}
				cfg.Store.Passphrases = p
			}
			cfg.Logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			if debugAddr != "" {
				if err := startDebugServer(c.Context(), debugAddr, e.stderr); err != nil {
					return err
				}
			}
			n, err := server.Start(c.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "kv node %x serving on %s (data %s)\n", n.ID(), n.Addr(), cfg.DataDir)
			<-c.Context().Done()
			return n.Close()
		},
	}
	fl := c.Flags()
	fl.StringVar(&cfg.DataDir, "data", "", "data directory of this node")
	fl.StringVar(&cfg.Listen, "listen", "127.0.0.1:7400", "address to serve clients and peers on")
	fl.StringVar(&cfg.Advertise, "advertise", "", "address other nodes reach this one at (default: the listen address)")
	fl.StringVar(&join, "join", "", "comma-separated nodes of the cluster to join")
	fl.DurationVar(&cfg.JoinTimeout, "join-timeout", 60*time.Second, "give up joining when no --join node answers for this long")
	fl.Uint32Var(&cfg.Shards, "shards", 8, "number of shards of a new cluster")
	fl.IntVar(&cfg.Replicas, "replicas", 3, "replicas of each shard in a new cluster")
	fl.StringVar(&passFile, "passphrase-file", "", "file of passphrases, one per line: the first encrypts, all decrypt")
	fl.IntVar(&cfg.Store.MaxValueSize, "max-value-size", 16<<20, "largest value accepted, in bytes")
	fl.DurationVar(&cfg.Store.DefaultTTL, "default-ttl", 0, "expiry for values written without a TTL (0: none)")
	fl.BoolVar(&cfg.QuorumReads, "quorum-reads", false, "confirm every linearizable read with a quorum round instead of within the leader's read lease")
	fl.StringVar(&debugAddr, "debug-addr", "", "serve Go's profiler (/debug/pprof/) on this address, e.g. 127.0.0.1:6060")
	fl.BoolVar(&cfg.FaultInjection, "fault-injection", false, "accept fault-injection requests (tests only)")
	_ = fl.MarkHidden("fault-injection")
	fl.BoolVar(&cfg.UnsafeLocalReads, "unsafe-local-reads", false, "serve reads from the local replica without a quorum check (breaks linearizability; tests only)")
	_ = fl.MarkHidden("unsafe-local-reads")
	return c
}

func kvStatus(e *env, f *kvFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "status",
		Short:   "Show a cluster's nodes, shards, leaders and replica lag",
		Example: "  kura kv --endpoints 127.0.0.1:7401 status",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if f.endpoints == "" {
				return usagef("kv status: needs --endpoints HOST:PORT,... (a cluster)")
			}
			cl, err := f.openCluster()
			if err != nil {
				return err
			}
			defer cl.Close()
			st, err := cl.Status(c.Context())
			if err != nil {
				return err
			}
			printStatus(e, st)
			return nil
		},
	}
}

func kvRemoveNode(e *env, f *kvFlags) *cobra.Command {
	var noWait bool
	c := &cobra.Command{
		Use:   "remove-node NODE-ID",
		Short: "Remove a node from a cluster, moving its replicas to the other nodes",
		Long: `remove-node takes a node (its id, as 'kv status' shows it) out of the
cluster while the cluster serves: no new replica goes to it, each of its
shards gets a replica on another node (when there is one to spare), and once
that replica caught up the node's replica leaves the shard's Raft group (a
leader hands its leadership over first). When it holds nothing the node
leaves the cluster map and can be stopped; its data directory cannot rejoin.

The node may be down (a machine that died for good): the shards keep
serving as long as a majority of each one's replicas is up. The command
prints the shards still on the node as they move and returns when the node
is gone (--no-wait returns at once; run it again to see progress).`,
		Example: `  kura kv --endpoints 127.0.0.1:7401 remove-node 4ea973796a11d885
  kura kv --endpoints 127.0.0.1:7401 remove-node --no-wait 4ea973796a11d885`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if f.endpoints == "" {
				return usagef("kv remove-node: needs --endpoints HOST:PORT,... (a cluster)")
			}
			id, err := strconv.ParseUint(args[0], 16, 64)
			if err != nil || id == 0 {
				return usagef("kv remove-node: %q is not a node id (16 hex digits, as 'kv status' shows)", args[0])
			}
			cl, err := f.openCluster()
			if err != nil {
				return err
			}
			defer cl.Close()
			shs, err := cl.RemoveNode(c.Context(), id)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "node %x is leaving; shards still on it: %v\n", id, shs)
			if noWait {
				return nil
			}
			err = cl.WaitRemoved(c.Context(), id, func(shs []uint32) {
				fmt.Fprintf(e.stdout, "shards still on node %x: %v\n", id, shs)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "node %x removed from the cluster; it can be stopped\n", id)
			return nil
		},
	}
	c.Flags().BoolVar(&noWait, "no-wait", false, "start the removal and return without waiting for it to finish")
	return c
}

func printStatus(e *env, st *kvpb.StatusResponse) {
	fmt.Fprintf(e.stdout, "cluster %s: %d shards, %d replicas each\n\nnodes:\n", st.ClusterId, st.Shards, st.Replicas)
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tADDRESS\tFORWARDED\tSTATE")
	leaders := map[uint32]*kvpb.ShardStatus{}
	holders := map[uint32][]string{}
	for _, n := range st.Nodes {
		state := "up"
		if n.Error != "" {
			state = "unreachable: " + n.Error
		}
		if n.Leaving {
			state += " (leaving)"
		}
		fmt.Fprintf(tw, "  %x\t%s\t%d\t%s\n", n.Id, n.Addr, n.Forwarded, state)
		for _, s := range n.Shards {
			if s.Shard == 0 {
				continue
			}
			holders[s.Shard] = append(holders[s.Shard], fmt.Sprintf("%x", n.Id))
			if s.State == "StateLeader" {
				leaders[s.Shard] = s
			}
		}
	}
	tw.Flush()
	fmt.Fprintln(e.stdout, "\nshards:")
	tw = tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  SHARD\tLEADER\tTERM\tCOMMIT\tREPLICAS\tLAG")
	for sh := uint32(1); sh <= st.Shards; sh++ {
		l := leaders[sh]
		if l == nil {
			fmt.Fprintf(tw, "  %d\t(none)\t-\t-\t%s\t-\n", sh, strings.Join(holders[sh], ","))
			continue
		}
		var lag []string
		ids := make([]uint64, 0, len(l.Lag))
		for id := range l.Lag {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		for _, id := range ids {
			lag = append(lag, fmt.Sprintf("%x:%d", id, l.Lag[id]))
		}
		reps := make([]string, len(l.Replicas))
		for i, r := range l.Replicas {
			reps[i] = fmt.Sprintf("%x", r)
		}
		fmt.Fprintf(tw, "  %d\t%x\t%d\t%d\t%s\t%s\n", sh, l.Leader, l.Term, l.Commit, strings.Join(reps, ","), strings.Join(lag, " "))
	}
	tw.Flush()
}

// waitCtx is a helper for commands that poll.
func waitCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

var _ = os.Stderr
