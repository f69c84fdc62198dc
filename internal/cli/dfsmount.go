package cli

import (
	"fmt"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-dev/kura/dfs/client"
	dfsfuse "github.com/kura-dev/kura/dfs/fuse"
	"github.com/kura-dev/kura/dfs/namenode"
)

// dfsMount is `kura dfs mount`: the dfs namespace as a FUSE file system.
func dfsMount(e *env) *cobra.Command {
	var namenodes, userName string
	var entryCache, attrCache, opTimeout time.Duration
	var noAllowOther, debug bool
	var wopts writeOptions
	c := &cobra.Command{
		Use:   "mount MOUNTPOINT",
		Short: "Mount the dfs namespace with FUSE",
		Long: `mount serves the whole dfs namespace on MOUNTPOINT (an existing directory)
with FUSE and runs in the foreground until it is unmounted (umount MOUNTPOINT,
SIGTERM or Ctrl-C); files still open for writing are then completed.

HDFS's semantics translated to POSIX, as Hadoop's fuse_dfs does:
  - files are written once, sequentially, then appended to: create, open with
    O_TRUNC (rewrite) or O_APPEND, and write at the end; a write anywhere else
    fails with EOPNOTSUPP ("Operation not supported") and changes nothing;
  - close(2) completes the file; fsync(2) makes what was written readable by
    every client while the file stays open;
  - truncate works to 0 (re-creates the file) and to the current size only;
  - a file has one writer at a time: a second one gets EBUSY;
  - rename replaces an existing file or empty directory atomically;
  - no symbolic or hard links, no extended attributes.
HDFS's exceptions become errnos: FileNotFound ENOENT, AccessControl EACCES,
FileAlreadyExists EEXIST, PathIsNotEmptyDirectory ENOTEMPTY, ParentNotDirectory
ENOTDIR, AlreadyBeingCreated EBUSY, RecoveryInProgress EAGAIN, quotas EDQUOT,
InvalidPath EINVAL; anything else EIO, logged.

Identity: every request runs as the local user of the process that makes it
(its uid's name), and the namenodes check HDFS's permissions for that user;
--user NAME makes every request run as NAME instead. Owners and groups show as
the local users and groups of the same names (nobody/nogroup when there is
none). Other local users may use the mount unless --no-allow-other.

Caching: the kernel keeps names for --entry-cache and attributes for
--attr-cache (1s each, as JuiceFS); changes made through the mount show at
once, changes by other clients after those times; a name that did not exist
is asked for again every time. Every request's calls give up after
--op-timeout (ETIMEDOUT).

--namenode lists the namenodes' --rpc addresses (default $` + envDFSNamenode + `,
else ` + namenode.DefaultRPCAddr + `). --block-size and --replication apply to files created
through the mount. See docs/dfs.md, "FUSE mount".`,
		Example: `  mkdir -p /mnt/dfs
  kura dfs mount --namenode 127.0.0.1:8020 /mnt/dfs &
  mkdir -p /mnt/dfs/tmp && echo hello > /mnt/dfs/tmp/hello.txt && cat /mnt/dfs/tmp/hello.txt
  ls -l /mnt/dfs/user
  umount /mnt/dfs
  # Every caller as alice; shorter caches for a namespace others change often:
  kura dfs mount --namenode nn1:8020,nn2:8020 --user alice --attr-cache 200ms --entry-cache 200ms /mnt/dfs
  # New files with 64 MiB blocks, 2 replicas:
  kura dfs mount --block-size 64m --replication 2 /mnt/dfs`,
		Args: exactArgs(1, "MOUNTPOINT"),
	}
	newLogger := logFlags(c, e)
	c.RunE = func(c *cobra.Command, args []string) error {
		const prefix = "dfs mount"
		nns, err := clientNamenodes(c, namenodes, prefix)
		if err != nil {
			return err
		}
		for _, d := range []struct {
			flag string
			v    time.Duration
		}{{"--entry-cache", entryCache}, {"--attr-cache", attrCache}, {"--op-timeout", opTimeout}} {
			if d.v < 0 || d.flag == "--op-timeout" && d.v == 0 {
				return usagef("%s: %s %v: want a positive duration", prefix, d.flag, d.v)
			}
		}
		co, err := wopts.create(prefix)
		if err != nil {
			return err
		}
		log, err := newLogger()
		if err != nil {
			return err
		}
		// The client's own user: --user, else the mounting user (each
		// request calls as its caller through a view of it).
		base := userName
		if base == "" {
			if cur, err := user.Current(); err == nil {
				base = cur.Username
			}
		}
		cl, err := client.New(client.Config{Namenodes: nns, User: base})
		if err != nil {
			return fmt.Errorf("%s: %w", prefix, err)
		}
		defer cl.Close()
		m, err := dfsfuse.New(c.Context(), dfsfuse.Options{
			Client: cl, Mountpoint: args[0], User: userName,
			EntryTimeout: entryCache, AttrTimeout: attrCache, OpTimeout: opTimeout,
			BlockSize: co.BlockSize, Replication: co.Replication,
			AllowOther: !noAllowOther, Logger: log, Debug: debug,
		})
		if err != nil {
			return err // "dfs mount: ..." says what was wrong
		}
		who := "each caller as its own user"
		if userName != "" {
			who = "every caller as " + userName
		}
		fmt.Fprintf(e.stdout, "dfs mount: serving dfs (namenodes %s) on %s, %s\n", strings.Join(nns, ","), m.Dir(), who)
		select {
		case <-c.Context().Done():
		case <-m.Done(): // umount
		}
		err = m.Unmount()
		fmt.Fprintf(e.stdout, "dfs mount: unmounted %s\n", m.Dir())
		return err
	}
	fl := c.Flags()
	fl.StringVar(&namenodes, "namenode", "", "the namenodes' --rpc addresses, HOST:PORT[,HOST:PORT...] (default $"+envDFSNamenode+", else "+namenode.DefaultRPCAddr+")")
	fl.StringVar(&userName, "user", "", "run every request as this user (default: each as the calling process's user)")
	fl.DurationVar(&entryCache, "entry-cache", dfsfuse.DefaultEntryTimeout, "how long the kernel caches names (0: not at all)")
	fl.DurationVar(&attrCache, "attr-cache", dfsfuse.DefaultAttrTimeout, "how long the kernel caches attributes (0: not at all)")
	fl.DurationVar(&opTimeout, "op-timeout", dfsfuse.DefaultOpTimeout, "how long one request's namenode and datanode calls may take")
	fl.BoolVar(&noAllowOther, "no-allow-other", false, "only the mounting user may use the mount")
	fl.BoolVar(&debug, "debug", false, "log every FUSE request")
	wopts.register(fl)
	return c
}
