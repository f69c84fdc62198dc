package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-dev/kura/dfs/blockstore"
	"github.com/kura-dev/kura/dfs/datanode"
	"github.com/kura-dev/kura/dfs/dnmanager"
	"github.com/kura-dev/kura/dfs/election"
	"github.com/kura-dev/kura/dfs/namenode"
	"github.com/kura-dev/kura/dfs/webhdfs"
)

func newDFSCommand(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "dfs",
		Short: "A distributed file system with HDFS semantics (HopsFS)",
		Long: `dfs is a distributed file system with HDFS's semantics, built as HopsFS:
stateless namenodes keep all metadata in a transactional SQL database
(embedded SQLite, or PostgreSQL for several namenodes at once).

'kura dfs namenode' serves WebHDFS on --http and the client and datanode
protocols on --rpc; 'kura dfs datanode' stores blocks, registers with the
namenodes and serves WebHDFS's file data (CREATE, APPEND and OPEN are
redirected there); the file commands ('kura dfs ls', put, get, cat, ... as
'hdfs dfs -ls' and the others) work through the namenodes' --rpc ports
(--namenode, default $KURA_DFS_NAMENODE or 127.0.0.1:8020); 'kura dfs mount'
serves the namespace as a local file system (FUSE); 'kura dfs fsck'
checks the blocks of a subtree against the live datanodes (as 'hdfs
fsck', through a namenode's --http port); 'kura dfs bench' measures
metadata ops/s and MB/s. See docs/dfs.md.`,
		Args: noArgs,
		RunE: groupRun,
	}
	c.AddCommand(dfsNamenode(e), dfsDatanode(e))
	addDFSShellCommands(c, e)
	c.AddCommand(dfsBench(e))
	c.AddCommand(dfsMount(e))
	c.AddCommand(dfsFsck(e))
	return c
}

func dfsNamenode(e *env) *cobra.Command {
	var cfg namenode.Config
	var groups []string
	var newLogger func() (*slog.Logger, error)
	var deadAfter time.Duration
	c := &cobra.Command{
		Use:   "namenode",
		Short: "Run a stateless dfs namenode serving WebHDFS",
		Long: `namenode serves the dfs namespace kept in the metadata database --meta over
WebHDFS on --http (/webhdfs/v1/<path>?op=...). It keeps no state of its own:
start several namenodes on one PostgreSQL database and each serves the same
namespace, at once; any of them may stop or die without affecting the others.

--meta is sqlite:///abs/path/meta.db (sqlite://rel/meta.db is relative to the
working directory; the file is created when missing) or
postgres://user[:password]@host:port/db?sslmode=disable. The schema is created
or migrated on start; a database of a newer schema than this binary knows is
refused.

Users: WebHDFS's user.name parameter names the caller, trusted as given
(Hadoop's simple authentication); without it the caller is "dr.who", who may
only do what "other" permissions allow. --superuser (the owner of "/" in a new
database, "root" by default) and members of --supergroup pass every permission
check. Groups come from --group USER=G1,G2 (repeatable); other users have none.

WebHDFS: MKDIRS, RENAME, DELETE, GETFILESTATUS, LISTSTATUS,
LISTSTATUS_BATCH, GETCONTENTSUMMARY, SETPERMISSION, SETOWNER, SETREPLICATION,
SETTIMES, GETHOMEDIRECTORY here; CREATE, APPEND and OPEN answer 307 to a live
datanode's --http (or, with noredirect=true, 200 with the Location), which
moves the bytes.

Datanodes ('kura dfs datanode --namenode HOST:PORT') register and heartbeat
on --rpc (default 127.0.0.1:8020; "off" for none). GET /status on --http
lists them, live and dead, as JSON.

Several namenodes on one database elect a leader through it (HopsFS's leader
election: every --election-period each advances a counter in its row of
le_descriptors; one whose counter stood still for --election-dead-after is
dead; the live one with the smallest id leads). Only the leader recovers
expired leases, finishes interrupted deletes and re-replicates blocks: those
of datanodes it sees die at once, and every --replication-interval it checks
a batch of the live datanodes' replicas for blocks with fewer than their
replication (a copy that did not show up within --replication-retry,
doubling per attempt, is made again); every namenode serves clients. GET
/status shows the election and the under-replicated and missing blocks;
GET /fsck checks a subtree's blocks (what 'kura dfs fsck' prints).`,
		Example: `  kura dfs namenode --meta sqlite:///var/lib/kura/meta.db --http 127.0.0.1:9870 --rpc 127.0.0.1:8020
  curl http://127.0.0.1:9870/status
  kura dfs namenode --meta 'postgres://kura@db:5432/kura?sslmode=disable' --http 0.0.0.0:9870 \
      --supergroup hadoop --group alice=hadoop,staff --group bob=staff
  curl -X PUT 'http://127.0.0.1:9870/webhdfs/v1/user/alice?op=MKDIRS&user.name=root'
  curl 'http://127.0.0.1:9870/webhdfs/v1/user?op=LISTSTATUS&user.name=alice'`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := namenode.CheckMetaURL(cfg.MetaURL); err != nil {
				return usagef("dfs namenode: --meta: %v", err)
			}
			var err error
			if cfg.Groups, err = parseGroups(groups); err != nil {
				return err
			}
			if cfg.Logger, err = newLogger(); err != nil {
				return err
			}
			if deadAfter < 0 {
				return usagef("dfs namenode: --datanode-dead-after %v: want a positive duration", deadAfter)
			}
			if deadAfter > 0 {
				// The monitor checks every half heartbeat interval.
				cfg.Datanodes.DeadIntervals = dnmanager.DefaultDeadIntervals
				cfg.Datanodes.HeartbeatInterval = max(deadAfter/time.Duration(dnmanager.DefaultDeadIntervals), time.Millisecond)
			}
			if cfg.Datanodes.ReplicationRetry < 0 {
				return usagef("dfs namenode: --replication-retry %v: want a positive duration", cfg.Datanodes.ReplicationRetry)
			}
			if cfg.Datanodes.ReplicationsPerRound <= 0 {
				return usagef("dfs namenode: --replications-per-round %d: want at least 1", cfg.Datanodes.ReplicationsPerRound)
			}
			if cfg.RecoveryTimeout <= 0 {
				return usagef("dfs namenode: --recovery-timeout %v: want a positive duration", cfg.RecoveryTimeout)
			}
			if p, d := cfg.Election.Period, cfg.Election.DeadAfter; p <= 0 || d < 2*p {
				return usagef("dfs namenode: --election-period %v, --election-dead-after %v: want a positive period and a dead-after at least twice as long", p, d)
			}
			if cfg.RPCAddr == "" {
				cfg.RPCAddr = "off"
			}
			if cfg.RPCAddr != "off" {
				if _, _, err := net.SplitHostPort(cfg.RPCAddr); err != nil {
					return usagef("dfs namenode: --rpc %q: want HOST:PORT or off", cfg.RPCAddr)
				}
			}
			n, err := namenode.Start(c.Context(), cfg)
			if err != nil {
				if errors.Is(err, namenode.ErrBadMetaURL) {
					return usagef("dfs namenode: --meta: %v", err)
				}
				return fmt.Errorf("dfs namenode: %w", err)
			}
			rpc := "datanode RPC off"
			if a := n.RPCAddr(); a != "" {
				rpc = "datanode RPC on " + a
			}
			fmt.Fprintf(e.stdout, "dfs namenode serving WebHDFS on %s (meta %s, %s), %s\n", n.HTTPAddr(), namenode.RedactURL(cfg.MetaURL), n.Backend(), rpc)
			<-c.Context().Done()
			return n.Close()
		},
	}
	fl := c.Flags()
	fl.StringVar(&cfg.MetaURL, "meta", "", "metadata database: sqlite:///path/meta.db or postgres://user@host:port/db (required)")
	fl.StringVar(&cfg.HTTPAddr, "http", namenode.DefaultHTTPAddr, "address to serve WebHDFS and /status on")
	fl.StringVar(&cfg.RPCAddr, "rpc", namenode.DefaultRPCAddr, `address to serve the client and datanode protocols on ("off": none)`)
	// --listen names the same address, as the datanode's --listen names its
	// service address.
	fl.StringVar(&cfg.RPCAddr, "listen", namenode.DefaultRPCAddr, "the same as --rpc")
	fl.StringVar(&cfg.Superuser, "superuser", "root", "the namenode's user: passes every permission check")
	fl.StringVar(&cfg.Supergroup, "supergroup", "supergroup", "members of this group pass every permission check")
	fl.StringVar(&cfg.DefaultUser, "default-user", "dr.who", "WebHDFS caller when a request has no user.name")
	fl.StringArrayVar(&groups, "group", nil, "USER=GROUP1,GROUP2: a user's groups (repeatable; unlisted users have none)")
	fl.DurationVar(&cfg.MaintenanceInterval, "maintenance-interval", namenode.DefaultMaintenanceInterval, "how often to recover expired leases and finish interrupted deletes")
	fl.DurationVar(&cfg.Election.Period, "election-period", election.DefaultPeriod, "how often this namenode takes part in a leader-election round")
	fl.DurationVar(&cfg.Election.DeadAfter, "election-dead-after", election.DefaultDeadAfter,
		"time after which a namenode that stopped taking part in the election counts as dead (at least twice --election-period)")
	fl.DurationVar(&cfg.RecoveryTimeout, "recovery-timeout", namenode.DefaultRecoveryTimeout,
		"how long one block recovery (lease recovery of a file whose writer died or was taken over) waits for the datanodes before closing the file with the lengths recorded")
	fl.DurationVar(&cfg.Datanodes.ReplicationInterval, "replication-interval", dnmanager.DefaultReplicationInterval,
		"how often the leader checks a batch of replicas for under-replicated blocks (negative: never; copies are still made for datanodes that die)")
	fl.DurationVar(&cfg.Datanodes.ReplicationRetry, "replication-retry", 0,
		"how long a queued copy has to show up before it is queued again, doubling per attempt (default 10 heartbeat intervals, 30s)")
	fl.IntVar(&cfg.Datanodes.ReplicationsPerRound, "replications-per-round", dnmanager.DefaultReplicationsPerRound, "the most copies one round of the replication check queues")
	fl.DurationVar(&deadAfter, "datanode-dead-after", 0, "time without a heartbeat after which a datanode is dead (default 30s)")
	fl.MarkHidden("datanode-dead-after") // for tests
	newLogger = logFlags(c, e)
	return c
}

func dfsDatanode(e *env) *cobra.Command {
	var cfg datanode.Config
	var namenodes, httpAddr string
	var newLogger func() (*slog.Logger, error)
	c := &cobra.Command{
		Use:   "datanode",
		Short: "Run a dfs datanode storing blocks in a directory",
		Long: `datanode stores block replicas as files in --data (one data file and one
meta file of CRC32C checksums, one per 512-byte chunk, per replica), serves
block reads and pipelined writes on --listen, and registers, heartbeats and
reports its blocks to every namenode in --namenode (their --rpc addresses,
comma-separated). A namenode that is down, at start or later, is retried
with backoff; the datanode registers as soon as it comes up.

--http (default 127.0.0.1:9864, Hadoop's datanode HTTP port; "off" for none)
serves WebHDFS's data operations: a namenode answers CREATE, APPEND and OPEN
with a 307 redirect to a datanode's --http address, where the bytes are
written or read (through the namenodes in --namenode), as with Hadoop. Port 0
picks a free port; the address is given to the namenodes at registration
(with the host of --advertise, or the host name for a wildcard IP).

The data directory keeps the datanode's storage id across restarts and is
locked while a datanode runs: a second datanode on the same --data is
refused. It stops cleanly on SIGTERM or Ctrl-C; replicas being written then
stay on disk, unfinalized.

Usage and liveness are visible on the namenodes' GET /status.`,
		Example: `  kura dfs datanode --data /var/lib/kura/dn1 --namenode 127.0.0.1:8020 --listen 127.0.0.1:9866 --http 127.0.0.1:9864
  kura dfs datanode --data /var/lib/kura/dn2 --namenode nn1:8020,nn2:8020 --listen 0.0.0.0:9867 --http 0.0.0.0:9865
  curl http://127.0.0.1:9870/status
  # Through the namenode's WebHDFS, redirected (-L) to a datanode's --http:
  curl -L -X PUT -T file.csv 'http://127.0.0.1:9870/webhdfs/v1/tmp/file.csv?op=CREATE&user.name=alice'
  curl -L 'http://127.0.0.1:9870/webhdfs/v1/tmp/file.csv?op=OPEN&user.name=alice'`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if cfg.DataDir == "" {
				return usagef("dfs datanode: --data DIR is required")
			}
			nns, err := parseNamenodes(namenodes)
			if err != nil {
				return err
			}
			cfg.Namenodes = nns
			if _, _, err := net.SplitHostPort(cfg.DataAddr); err != nil {
				return usagef("dfs datanode: --listen %q: want HOST:PORT", cfg.DataAddr)
			}
			if httpAddr != "off" {
				if _, _, err := net.SplitHostPort(httpAddr); err != nil {
					return usagef("dfs datanode: --http %q: want HOST:PORT or off", httpAddr)
				}
			}
			if cfg.HeartbeatInterval <= 0 {
				return usagef("dfs datanode: --heartbeat %v: want a positive duration", cfg.HeartbeatInterval)
			}
			if cfg.Logger, err = newLogger(); err != nil {
				return err
			}
			// WebHDFS first, so that the address given to the namenodes at
			// registration is the one bound (port 0 included).
			var web *webhdfs.DataServer
			webOn := "WebHDFS off"
			if httpAddr != "off" {
				ln, err := net.Listen("tcp", httpAddr)
				if err != nil {
					return fmt.Errorf("dfs datanode: listen on --http %s: %w", httpAddr, err)
				}
				host, port, _ := net.SplitHostPort(ln.Addr().String())
				if ah, _, err := net.SplitHostPort(cfg.AdvertiseAddr); err == nil && ah != "" {
					host = ah
				} else if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
					if name, err := os.Hostname(); err == nil {
						host = name
					}
				}
				cfg.HTTPAddr = net.JoinHostPort(host, port)
				web, err = webhdfs.StartDataServer(ln, webhdfs.DataServerConfig{Namenodes: nns, Logger: cfg.Logger})
				if err != nil {
					return fmt.Errorf("dfs datanode: %w", err)
				}
				webOn = "WebHDFS on " + web.Addr()
			}
			d, err := datanode.Start(c.Context(), cfg)
			if err != nil {
				if web != nil {
					web.Close()
				}
				if errors.Is(err, blockstore.ErrLocked) {
					return fmt.Errorf("dfs datanode: another datanode is running on --data %s (%w)", cfg.DataDir, err)
				}
				return fmt.Errorf("dfs datanode: %w", err)
			}
			fmt.Fprintf(e.stdout, "dfs datanode %s serving blocks on %s, %s (data %s), namenodes %s\n",
				d.StorageID(), d.Addr(), webOn, cfg.DataDir, strings.Join(nns, ","))
			<-c.Context().Done()
			var webErr error
			if web != nil {
				webErr = web.Close()
			}
			return errors.Join(webErr, d.Close())
		},
	}
	fl := c.Flags()
	fl.StringVar(&cfg.DataDir, "data", "", "directory of the block store (required; created when missing)")
	fl.StringVar(&namenodes, "namenode", "", "the namenodes' --rpc addresses: HOST:PORT[,HOST:PORT...] (required)")
	fl.StringVar(&cfg.DataAddr, "listen", "127.0.0.1:9866", "address to serve block reads and writes on")
	fl.StringVar(&cfg.AdvertiseAddr, "advertise", "", "data address given to namenodes and clients (default: --listen, with the host name for a wildcard IP)")
	fl.StringVar(&httpAddr, "http", "127.0.0.1:9864", `address to serve WebHDFS's data operations on ("off": none)`)
	fl.DurationVar(&cfg.HeartbeatInterval, "heartbeat", 3*time.Second, "time between heartbeats to each namenode")
	newLogger = logFlags(c, e)
	return c
}

// parseNamenodes reads --namenode HOST:PORT[,HOST:PORT...].
func parseNamenodes(v string) ([]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, usagef("dfs datanode: --namenode HOST:PORT[,HOST:PORT...] is required")
	}
	var out []string
	seen := map[string]bool{}
	for _, a := range strings.Split(v, ",") {
		a = strings.TrimSpace(a)
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return nil, usagef("dfs datanode: --namenode %q: %q is not HOST:PORT", v, a)
		}
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out, nil
}

// parseGroups reads --group USER=G1,G2 values into a static user-to-groups
// mapping.
func parseGroups(vals []string) (map[string][]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	m := map[string][]string{}
	for _, v := range vals {
		user, list, ok := strings.Cut(v, "=")
		user = strings.TrimSpace(user)
		if !ok || user == "" {
			return nil, usagef("dfs namenode: --group %q: want USER=GROUP1,GROUP2", v)
		}
		for _, g := range strings.Split(list, ",") {
			if g = strings.TrimSpace(g); g != "" {
				m[user] = append(m[user], g)
			}
		}
	}
	return m, nil
}
