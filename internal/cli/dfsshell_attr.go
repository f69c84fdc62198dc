package cli

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-dev/kura/dfs/hdfs"
)

func dfsMkdir(e *env) *cobra.Command {
	var parents bool
	c := &cobra.Command{
		Use:   "mkdir [-p] PATH...",
		Short: "Create directories (hdfs dfs -mkdir)",
		Long: `mkdir creates each directory PATH (permission 755). Without -p its parent
must exist and PATH must not ("File exists"); with -p missing parents are
created and an existing directory is fine.`,
		Example: `  kura dfs mkdir /data
  kura dfs mkdir -p /user/alice/in /user/alice/out`,
		Args: minArgs(1, "PATH..."),
	}
	c.Flags().BoolVarP(&parents, "parents", "p", false, "create missing parents; no error when PATH exists")
	return shellCommand(e, c, func(sh *dfsShell, args []string) error {
		for _, a := range args {
			if sh.interrupted() {
				return nil
			}
			if a == "" {
				sh.fail(&shellMsg{msg: "Can not create a Path from an empty string"})
				continue
			}
			it := sh.literal(a)
			st, err := sh.stat(it)
			switch {
			case err != nil:
				sh.fail(err)
				continue
			case st != nil && !st.IsDir:
				sh.fail(notADir(it.disp))
				continue
			case st != nil && !parents:
				sh.fail(exists(it.disp))
				continue
			case st != nil:
				continue
			}
			if !parents {
				pd := path.Dir(strings.TrimRight(a, "/"))
				parent := &item{disp: pd, abs: hdfs.Parent(it.abs)}
				ps, err := sh.stat(parent)
				if err != nil {
					sh.fail(err)
					continue
				}
				if ps == nil {
					sh.fail(notFound(pd))
					continue
				}
			}
			if err := sh.c.Mkdirs(sh.ctx, it.abs, 0, parents); err != nil {
				sh.fail(pathError(it.disp, err))
			}
		}
		return nil
	})
}

func dfsRm(e *env) *cobra.Command {
	var force, recursive, skipTrash bool
	c := &cobra.Command{
		Use:   "rm [-f] [-r|-R] [-skipTrash] PATH...",
		Short: "Delete files and directories (hdfs dfs -rm)",
		Long: `rm deletes each PATH and prints "Deleted PATH". A directory needs -r (or -R),
which deletes everything in it. -f ignores a PATH that does not exist (no
message, no error). dfs has no trash: deletes are immediate, as with hdfs's
-skipTrash (accepted).`,
		Example: `  kura dfs rm /data/old.csv
  kura dfs rm -r -f /tmp/job-42
  kura dfs rm -r -skipTrash '/logs/2025-*'`,
		Args: minArgs(1, "PATH..."),
	}
	fl := c.Flags()
	fl.BoolVarP(&force, "force", "f", false, "ignore missing paths")
	fl.BoolVarP(&recursive, "recursive", "r", false, "delete directories and their contents")
	addAliasFlag(fl, &recursive, "R")
	fl.BoolVar(&skipTrash, "skip-trash", false, "bypass the trash (dfs has none: always)")
	addWordFlag(fl, &skipTrash, "skipTrash")
	return shellCommand(e, c, func(sh *dfsShell, args []string) error {
		for _, a := range args {
			if sh.interrupted() {
				return nil
			}
			items, err := sh.expand(a)
			if err != nil {
				if !(force && hasGlob(a)) {
					sh.fail(err)
				}
				continue
			}
			for _, it := range items {
				st, err := sh.stat(it)
				switch {
				case err != nil:
					sh.fail(err)
					continue
				case st == nil:
					if !force {
						sh.fail(notFound(it.disp))
					}
					continue
				case st.IsDir && !recursive:
					sh.fail(isADir(it.disp))
					continue
				}
				ok, err := sh.c.Delete(sh.ctx, it.abs, recursive)
				switch {
				case err != nil:
					sh.fail(pathError(it.disp, err))
				case !ok:
					sh.fail(ioFailed(it.disp))
				default:
					fmt.Fprintln(sh.out, "Deleted "+it.disp)
				}
			}
		}
		return nil
	})
}

func dfsChmod(e *env) *cobra.Command {
	var recursive bool
	c := &cobra.Command{
		Use:   "chmod [-R] MODE[,MODE]...|OCTALMODE PATH...",
		Short: "Change permissions (hdfs dfs -chmod)",
		Long: `chmod sets the permission of each PATH (and with -R of everything below it).
MODE is symbolic as for the shell's chmod, with the letters rwxXt
("u+x,go-w", "a=rX", "+t"; without u/g/o/a, a), or octal with 3 digits, or 4
with a leading 1 for the sticky bit ("755", "1777"). No umask is applied.
Only the owner (or the superuser) may change a permission.`,
		Example: `  kura dfs chmod 750 /user/alice
  kura dfs chmod -R go-w /data
  kura dfs chmod +t /tmp`,
		Args: minArgs(2, "MODE PATH..."),
	}
	c.Flags().BoolVarP(&recursive, "recursive", "R", false, "change everything below directories too")
	return shellCommand(e, c, func(sh *dfsShell, args []string) error {
		mode := args[0]
		if _, err := hdfs.Chmod(mode, 0, false); err != nil {
			return usagef("%s: chmod : mode '%s' does not match the expected pattern.", sh.prefix, mode)
		}
		sh.forEach(args[1:], func(it *item) {
			if !sh.existing(it) {
				return
			}
			sh.walk(it, recursive, func(it *item) bool {
				perm, err := hdfs.Chmod(mode, it.st.Permission, it.st.IsDir)
				if err != nil {
					sh.fail(err)
					return false
				}
				if perm != it.st.Permission&hdfs.PermMask {
					if err := sh.c.SetPermission(sh.ctx, it.abs, perm); err != nil {
						sh.fail(&shellMsg{msg: "changing permissions of '" + it.disp + "': " + remoteText(err), err: err})
					}
				}
				return true
			})
		})
		return nil
	})
}

// ownerPattern and groupPattern are FsShellPermissions' patterns for
// chown's [OWNER][:[GROUP]] and chgrp's GROUP.
var (
	ownerPattern = regexp.MustCompile(`^\s*([-_./@a-zA-Z0-9]+)?(:([-_./@a-zA-Z0-9]*))?\s*$`)
	groupPattern = regexp.MustCompile(`^\s*([-_./@a-zA-Z0-9]+)\s*$`)
)

func dfsChown(e *env) *cobra.Command {
	var recursive bool
	c := &cobra.Command{
		Use:   "chown [-R] [OWNER][:[GROUP]] PATH...",
		Short: "Change owner and group (hdfs dfs -chown)",
		Long: `chown sets the owner and/or the group of each PATH (and with -R of everything
below it): "alice", "alice:staff", ":staff". Names are letters, digits and
-_./@. Only the superuser changes owners; an owner may change the group to
one of its own.`,
		Example: `  kura dfs chown alice:staff /user/alice --user root
  kura dfs chown -R :analysts /data/shared`,
		Args: minArgs(2, "OWNER[:GROUP] PATH..."),
	}
	c.Flags().BoolVarP(&recursive, "recursive", "R", false, "change everything below directories too")
	return shellCommand(e, c, func(sh *dfsShell, args []string) error {
		m := ownerPattern.FindStringSubmatch(args[0])
		if m == nil {
			return usagef("%s: '%s' does not match expected pattern for [owner][:group].", sh.prefix, args[0])
		}
		owner, group := m[1], m[3]
		if owner == "" && group == "" {
			return usagef("%s: '%s' does not specify owner or group.", sh.prefix, args[0])
		}
		sh.chown(args[1:], owner, group, recursive)
		return nil
	})
}

func dfsChgrp(e *env) *cobra.Command {
	var recursive bool
	c := &cobra.Command{
		Use:   "chgrp [-R] GROUP PATH...",
		Short: "Change the group (hdfs dfs -chgrp)",
		Long: `chgrp sets the group of each PATH (and with -R of everything below it), as
'chown :GROUP'. The owner may choose one of its groups; the superuser any.`,
		Example: `  kura dfs chgrp -R analysts /data/shared`,
		Args:    minArgs(2, "GROUP PATH..."),
	}
	c.Flags().BoolVarP(&recursive, "recursive", "R", false, "change everything below directories too")
	return shellCommand(e, c, func(sh *dfsShell, args []string) error {
		m := groupPattern.FindStringSubmatch(args[0])
		if m == nil {
			return usagef("%s: '%s' does not match expected pattern for group", sh.prefix, args[0])
		}
		sh.chown(args[1:], "", m[1], recursive)
		return nil
	})
}

// chown sets owner and group ("" leaves one alone) on the paths, skipping
// what would not change, as Hadoop's Chown.
func (sh *dfsShell) chown(args []string, owner, group string, recursive bool) {
	sh.forEach(args, func(it *item) {
		if !sh.existing(it) {
			return
		}
		sh.walk(it, recursive, func(it *item) bool {
			o, g := owner, group
			if o == it.st.Owner {
				o = ""
			}
			if g == it.st.Group {
				g = ""
			}
			if o != "" || g != "" {
				if err := sh.c.SetOwner(sh.ctx, it.abs, o, g); err != nil {
					sh.fail(&shellMsg{msg: "changing ownership of '" + it.disp + "': " + remoteText(err), err: err})
				}
			}
			return true
		})
	})
}

// setrepPoll is how often setrep -w checks the replicas.
const setrepPoll = time.Second

func dfsSetrep(e *env) *cobra.Command {
	var wait, compat bool
	c := &cobra.Command{
		Use:   "setrep [-w] REPLICATION PATH...",
		Short: "Change the replication of files (hdfs dfs -setrep)",
		Long: `setrep sets the replication of each file PATH and of every file below each
directory PATH, printing "Replication N set: PATH" for each. The namenode
then adds or removes replicas in the background; -w waits until every block
of the files has exactly N live replicas (this can take long, especially
when lowering the replication). -R is accepted (hdfs's old flag; directories
are always processed recursively).`,
		Example: `  kura dfs setrep 2 /data/big.bin
  kura dfs setrep -w 3 /data`,
		Args: minArgs(2, "REPLICATION PATH..."),
	}
	c.Flags().BoolVarP(&wait, "wait", "w", false, "wait until the replicas match")
	c.Flags().BoolVarP(&compat, "recursive", "R", false, "accepted for compatibility; no effect")
	c.Flags().MarkHidden("recursive")
	return shellCommand(e, c, func(sh *dfsShell, args []string) error {
		rep, err := strconv.ParseInt(args[0], 10, 16)
		if err != nil {
			return usagef("%s: Illegal replication, a positive integer expected: %q", sh.prefix, args[0])
		}
		if rep < 1 {
			return usagef("%s: replication must be >= 1", sh.prefix)
		}
		var waitFor []*item
		sh.forEach(args[1:], func(it *item) {
			if !sh.existing(it) {
				return
			}
			sh.walk(it, true, func(it *item) bool {
				if it.st.IsDir {
					return true
				}
				ok, err := sh.c.SetReplication(sh.ctx, it.abs, int(rep))
				switch {
				case err != nil:
					sh.fail(pathError(it.disp, err))
				case !ok:
					sh.fail(&shellMsg{msg: "Could not set replication for: " + it.disp})
				default:
					fmt.Fprintf(sh.out, "Replication %d set: %s\n", rep, it.disp)
					if wait {
						waitFor = append(waitFor, it)
					}
				}
				return true
			})
		})
		for _, it := range waitFor {
			sh.waitReplication(it, int(rep))
		}
		return nil
	})
}

// waitReplication is setrep -w for one file: "Waiting for PATH ...", a dot
// for each check that found a block with another number of replicas, and
// " done".
func (sh *dfsShell) waitReplication(it *item, rep int) {
	fmt.Fprintf(sh.out, "Waiting for %s ...", it.disp)
	sh.out.Flush()
	warned := false
	for {
		locs, err := sh.c.BlockLocations(sh.ctx, it.abs)
		if err != nil {
			fmt.Fprintln(sh.out)
			sh.fail(pathError(it.disp, err))
			return
		}
		done := true
		for _, b := range locs.Blocks {
			if n := len(b.Locations); n != rep {
				if n > rep && !warned {
					fmt.Fprint(sh.out, "\nWARNING: the waiting time may be long for DECREASING the number of replications.\n")
					warned = true
				}
				done = false
				break
			}
		}
		if done {
			fmt.Fprintln(sh.out, " done")
			return
		}
		fmt.Fprint(sh.out, ".")
		sh.out.Flush()
		select {
		case <-sh.ctx.Done():
			fmt.Fprintln(sh.out)
			sh.interrupted()
			return
		case <-time.After(setrepPoll):
		}
	}
}
