package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kura-dev/kura/dfs/namenode"
)

func newDFSCommand(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "dfs",
		Short: "A distributed file system with HDFS semantics (HopsFS)",
		Long: `dfs is a distributed file system with HDFS's semantics, built as HopsFS:
stateless namenodes keep all metadata in a transactional SQL database
(embedded SQLite, or PostgreSQL for several namenodes at once).

Today: 'kura dfs namenode' serves the metadata operations over WebHDFS.
Datanodes, file data and the 'kura dfs <cmd>' file commands come next.
See docs/dfs.md.`,
		Args: noArgs,
		RunE: groupRun,
	}
	c.AddCommand(dfsNamenode(e))
	return c
}

func dfsNamenode(e *env) *cobra.Command {
	var cfg namenode.Config
	var groups []string
	var newLogger func() (*slog.Logger, error)
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

Serving WebHDFS today: MKDIRS, RENAME, DELETE, GETFILESTATUS, LISTSTATUS,
LISTSTATUS_BATCH, GETCONTENTSUMMARY, SETPERMISSION, SETOWNER, SETREPLICATION,
SETTIMES, GETHOMEDIRECTORY. CREATE, APPEND and OPEN need datanodes and answer
UnsupportedOperationException until they are wired.`,
		Example: `  kura dfs namenode --meta sqlite:///var/lib/kura/meta.db --http 127.0.0.1:9870
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
			n, err := namenode.Start(c.Context(), cfg)
			if err != nil {
				if errors.Is(err, namenode.ErrBadMetaURL) {
					return usagef("dfs namenode: --meta: %v", err)
				}
				return fmt.Errorf("dfs namenode: %w", err)
			}
			fmt.Fprintf(e.stdout, "dfs namenode serving WebHDFS on %s (meta %s, %s)\n", n.HTTPAddr(), namenode.RedactURL(cfg.MetaURL), n.Backend())
			<-c.Context().Done()
			return n.Close()
		},
	}
	fl := c.Flags()
	fl.StringVar(&cfg.MetaURL, "meta", "", "metadata database: sqlite:///path/meta.db or postgres://user@host:port/db (required)")
	fl.StringVar(&cfg.HTTPAddr, "http", namenode.DefaultHTTPAddr, "address to serve WebHDFS on")
	fl.StringVar(&cfg.Superuser, "superuser", "root", "the namenode's user: passes every permission check")
	fl.StringVar(&cfg.Supergroup, "supergroup", "supergroup", "members of this group pass every permission check")
	fl.StringVar(&cfg.DefaultUser, "default-user", "dr.who", "WebHDFS caller when a request has no user.name")
	fl.StringArrayVar(&groups, "group", nil, "USER=GROUP1,GROUP2: a user's groups (repeatable; unlisted users have none)")
	fl.DurationVar(&cfg.MaintenanceInterval, "maintenance-interval", namenode.DefaultMaintenanceInterval, "how often to recover expired leases and finish interrupted deletes")
	newLogger = logFlags(c, e)
	return c
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
