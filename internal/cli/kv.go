package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-dev/kura/plugin"
	"github.com/kura-dev/kura/store"
)

// kvBackend is what the kv commands need from a store. The local engine
// (*store.Store, with --local) implements it; the cluster client will too
// (with --endpoints), so every op is written once for both modes.
type kvBackend interface {
	Get(ctx context.Context, key []byte) ([]byte, error)
	Set(ctx context.Context, key, value []byte, ttl time.Duration) error
	Delete(ctx context.Context, key []byte) error
	DeleteAll(ctx context.Context, key []byte) error
	Scan(ctx context.Context, prefix, after []byte, limit int) ([]store.KV, bool, error)
	Attributes(ctx context.Context, key []byte) (store.Attrs, error)

	SetSubkey(ctx context.Context, parent, subkey, value []byte, ttl time.Duration) error
	Subkeys(ctx context.Context, parent []byte) ([][]byte, error)
	DeleteSubkey(ctx context.Context, parent, subkey []byte, all bool) error

	Push(ctx context.Context, name, value []byte) error
	PushKeyed(ctx context.Context, name, key, value []byte) error
	Pop(ctx context.Context, name []byte, end store.End) (store.QueueItem, error)
	Peek(ctx context.Context, name []byte, end store.End) (store.QueueItem, error)
	RemoveItems(ctx context.Context, name []byte, end store.End, n int) (int, error)
	QueueLen(ctx context.Context, name []byte) (uint64, store.QueueKind, error)

	CASInit(ctx context.Context, key []byte, bits store.Bits, v uint64) error
	CASGet(ctx context.Context, key []byte, bits store.Bits) (uint64, error)
	CASSet(ctx context.Context, key []byte, bits store.Bits, old, new uint64) (bool, uint64, error)
	CASAdd(ctx context.Context, key []byte, bits store.Bits, delta int64) (uint64, error)

	ChangeLogOn() bool
	SetChangeLog(ctx context.Context, on bool) error
	NextChange(ctx context.Context, after uint64) (store.Change, error)
	LastSeq() uint64
	Cursor(ctx context.Context, name string) (uint64, error)
	SetCursor(ctx context.Context, name string, seq uint64) error

	Close() error
}

// kvFlags are the flags every kv op shares.
type kvFlags struct {
	local          string
	passphraseFile string
	maxValueSize   int
	defaultTTL     time.Duration
	noSync         bool
	endpoints      string
	serializable   bool
	timeout        time.Duration
}

func (f *kvFlags) open() (kvBackend, error) {
	if f.local != "" && f.endpoints != "" {
		return nil, usagef("kv: --local and --endpoints exclude each other: say either where the data is or which cluster to use")
	}
	if f.endpoints != "" {
		c, err := f.openCluster()
		if err != nil {
			return nil, err
		}
		return clusterBackend{c}, nil
	}
	if f.local == "" {
		return nil, usagef("kv: say where the data is: --local DIR, or --endpoints HOST:PORT,... for a cluster")
	}
	opts := store.Options{MaxValueSize: f.maxValueSize, DefaultTTL: f.defaultTTL, NoSync: f.noSync}
	if f.passphraseFile != "" {
		p, err := store.ReadPassphraseFile(f.passphraseFile)
		if err != nil {
			return nil, usageError{err}
		}
		opts.Passphrases = p
	}
	return store.Open(f.local, opts)
}

// withKV opens the backend, runs fn and closes it, keeping fn's error first.
func (f *kvFlags) withKV(ctx context.Context, fn func(kv kvBackend) error) error {
	kv, err := f.open()
	if err != nil {
		return err
	}
	err = fn(kv)
	if cerr := kv.Close(); err == nil {
		err = cerr
	}
	return err
}

func newKVCommand(e *env) *cobra.Command {
	f := &kvFlags{}
	c := &cobra.Command{
		Use:   "kv",
		Short: "Keys, subkeys, queues, CAS counters, TTL and encryption (K2HDKC's data model)",
		Long: `kv reads and writes kura's key-value store. With --local DIR it works on a
local engine directory (created on first use; one process at a time). With
--endpoints HOST:PORT,... it works on a cluster of 'kura kv serve' nodes, with
exactly the same operations; reads are linearizable unless --serializable.

Keys and values are given as command-line strings; 'set KEY -' reads the value
from standard input (binary safe). A missing key exits 1, a usage error 2.`,
		Example: `  kura kv --local /tmp/kv set greeting hello
  kura kv --local /tmp/kv get greeting
  kura kv --local /tmp/kv set session42 token --ttl 30m
  kura kv --local /tmp/kv queue push jobs job-1
  kura kv --local /tmp/kv cas incr visits --bits 32
  kura kv --local /tmp/kv --passphrase-file /etc/kura/pass set secret s3cr3t
  kura kv --endpoints 127.0.0.1:7401,127.0.0.1:7402 set greeting hello
  kura kv --endpoints 127.0.0.1:7401 --serializable get greeting
  kura kv --endpoints 127.0.0.1:7401 status`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	pf := c.PersistentFlags()
	pf.StringVar(&f.local, "local", "", "local engine directory")
	pf.StringVar(&f.endpoints, "endpoints", "", "comma-separated nodes of a cluster (HOST:PORT,...)")
	pf.BoolVar(&f.serializable, "serializable", false, "cluster: read from the nearest replica (faster, possibly stale)")
	pf.DurationVar(&f.timeout, "timeout", 15*time.Second, "cluster: give up on an operation after this long")
	pf.StringVar(&f.passphraseFile, "passphrase-file", "", "file of passphrases, one per line: the first encrypts, all decrypt")
	pf.IntVar(&f.maxValueSize, "max-value-size", 16<<20, "largest value accepted, in bytes")
	pf.DurationVar(&f.defaultTTL, "default-ttl", 0, "expiry for values written without --ttl (0: none)")
	pf.BoolVar(&f.noSync, "no-sync", false, "do not fsync each write (faster; a machine crash may lose the last writes)")

	c.AddCommand(
		kvGet(e, f), kvSet(e, f), kvDel(e, f), kvScan(e, f), kvAttrs(e, f),
		kvSubkey(e, f), kvQueue(e, f), kvCAS(e, f), kvChangeLog(e, f), kvWatch(e, f),
		kvServe(e), kvStatus(e, f), kvRemoveNode(e, f), kvBench(e, f),
	)
	return c
}

func kvGet(e *env, f *kvFlags) *cobra.Command {
	var raw bool
	c := &cobra.Command{
		Use:     "get KEY",
		Short:   "Print the value of KEY",
		Example: "  kura kv --local /tmp/kv get greeting\n  kura kv --local /tmp/kv get image --raw > image.png",
		Args:    exactArgs(1, "KEY"),
		RunE: func(c *cobra.Command, args []string) error {
			return f.withKV(c.Context(), func(kv kvBackend) error {
				v, err := kv.Get(c.Context(), []byte(args[0]))
				if err != nil {
					return err
				}
				return writeValue(e.stdout, v, raw)
			})
		},
	}
	c.Flags().BoolVar(&raw, "raw", false, "print the value's bytes only, without a newline")
	return c
}

func writeValue(w io.Writer, v []byte, raw bool) error {
	if !raw {
		v = append(v, '\n')
	}
	_, err := w.Write(v)
	return err
}

// valueArg returns the value argument; "-" reads standard input.
func valueArg(e *env, arg string) ([]byte, error) {
	if arg != "-" {
		return []byte(arg), nil
	}
	v, err := io.ReadAll(e.stdin)
	if err != nil {
		return nil, fmt.Errorf("read value from stdin: %w", err)
	}
	return v, nil
}

func kvSet(e *env, f *kvFlags) *cobra.Command {
	var ttl time.Duration
	c := &cobra.Command{
		Use:   "set KEY VALUE",
		Short: "Set KEY to VALUE ('-' reads the value from stdin)",
		Example: `  kura kv --local /tmp/kv set greeting hello
  kura kv --local /tmp/kv set session42 token --ttl 30m
  kura kv --local /tmp/kv set image - < image.png`,
		Args: exactArgs(2, "KEY VALUE"),
		RunE: func(c *cobra.Command, args []string) error {
			v, err := valueArg(e, args[1])
			if err != nil {
				return err
			}
			return f.withKV(c.Context(), func(kv kvBackend) error {
				return kv.Set(c.Context(), []byte(args[0]), v, ttl)
			})
		},
	}
	c.Flags().DurationVar(&ttl, "ttl", 0, "expire the value after this long (e.g. 90s, 2h; default: --default-ttl)")
	return c
}

func kvDel(e *env, f *kvFlags) *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:   "del KEY",
		Short: "Delete KEY (with --all, its subkeys too, recursively)",
		Long: `del deletes KEY. Its subkeys stay as keys of their own but are no longer
listed; with --all they are deleted too, recursively (cycles are followed once),
in one atomic step.`,
		Example: "  kura kv --local /tmp/kv del greeting\n  kura kv --local /tmp/kv del users --all",
		Args:    exactArgs(1, "KEY"),
		RunE: func(c *cobra.Command, args []string) error {
			return f.withKV(c.Context(), func(kv kvBackend) error {
				if all {
					return kv.DeleteAll(c.Context(), []byte(args[0]))
				}
				return kv.Delete(c.Context(), []byte(args[0]))
			})
		},
	}
	c.Flags().BoolVar(&all, "all", false, "delete the subkeys too, recursively")
	return c
}

func kvScan(e *env, f *kvFlags) *cobra.Command {
	var prefix, after string
	var limit int
	var keysOnly bool
	c := &cobra.Command{
		Use:   "scan",
		Short: "List keys (and values) in key order",
		Long: `scan prints "KEY<TAB>VALUE" lines for live keys in key order, or only keys
with --keys-only. --limit bounds the output; when more keys follow, the last
line on stderr says how to continue with --after.`,
		Example: "  kura kv --local /tmp/kv scan --prefix user/\n  kura kv --local /tmp/kv scan --prefix user/ --limit 100 --after user/0099",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if limit < 0 {
				return usagef("scan: --limit %d must not be negative", limit)
			}
			return f.withKV(c.Context(), func(kv kvBackend) error {
				w := bufio.NewWriter(e.stdout)
				var cursor []byte
				if after != "" {
					cursor = []byte(after)
				}
				printed := 0
				for {
					page := 1000
					if limit > 0 && limit-printed < page {
						page = limit - printed
					}
					kvs, more, err := kv.Scan(c.Context(), []byte(prefix), cursor, page)
					if err != nil {
						return err
					}
					for _, it := range kvs {
						if keysOnly {
							fmt.Fprintf(w, "%s\n", it.Key)
						} else {
							fmt.Fprintf(w, "%s\t%s\n", it.Key, it.Value)
						}
						cursor = it.Key
					}
					printed += len(kvs)
					if !more {
						return w.Flush()
					}
					if limit > 0 && printed >= limit {
						if err := w.Flush(); err != nil {
							return err
						}
						fmt.Fprintf(e.stderr, "more keys follow: continue with --after %q\n", cursor)
						return nil
					}
				}
			})
		},
	}
	c.Flags().StringVar(&prefix, "prefix", "", "only keys that start with this")
	c.Flags().StringVar(&after, "after", "", "start after this key (to continue a limited scan)")
	c.Flags().IntVar(&limit, "limit", 0, "print at most this many keys (0: all)")
	c.Flags().BoolVar(&keysOnly, "keys-only", false, "print keys without values")
	return c
}

func kvAttrs(e *env, f *kvFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "attrs KEY",
		Short:   "Print the attributes of KEY: type, size, modification time, expiry, encryption, subkeys",
		Example: "  kura kv --local /tmp/kv attrs session42",
		Args:    exactArgs(1, "KEY"),
		RunE: func(c *cobra.Command, args []string) error {
			return f.withKV(c.Context(), func(kv kvBackend) error {
				key := []byte(args[0])
				a, err := kv.Attributes(c.Context(), key)
				if err != nil {
					return err
				}
				subs, err := kv.Subkeys(c.Context(), key)
				if err != nil {
					return err
				}
				expires := "never"
				if !a.Expires.IsZero() {
					expires = a.Expires.UTC().Format(time.RFC3339Nano)
				}
				fmt.Fprintf(e.stdout, "type: %s\nsize: %d\nmodified: %s\nexpires: %s\nencrypted: %t\nsubkeys: %d\n",
					a.Type, a.Size, a.Modified.UTC().Format(time.RFC3339Nano), expires, a.Encrypted, len(subs))
				return nil
			})
		},
	}
}

func kvSubkey(e *env, f *kvFlags) *cobra.Command {
	c := &cobra.Command{
		Use:   "subkey",
		Short: "Set, list and delete the subkeys of a key",
		Long: `A key owns an ordered set of subkeys; each subkey is a key of its own with its
own value, readable with 'get'.`,
		Example: `  kura kv --local /tmp/kv subkey set users alice '{"uid":1001}'
  kura kv --local /tmp/kv subkey list users
  kura kv --local /tmp/kv subkey del users alice`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	var ttl time.Duration
	set := &cobra.Command{
		Use:   "set PARENT SUBKEY VALUE",
		Short: "Set SUBKEY to VALUE and list it under PARENT ('-' reads the value from stdin)",
		Args:  exactArgs(3, "PARENT SUBKEY VALUE"),
		RunE: func(c *cobra.Command, args []string) error {
			v, err := valueArg(e, args[2])
			if err != nil {
				return err
			}
			return f.withKV(c.Context(), func(kv kvBackend) error {
				return kv.SetSubkey(c.Context(), []byte(args[0]), []byte(args[1]), v, ttl)
			})
		},
	}
	set.Flags().DurationVar(&ttl, "ttl", 0, "expire the subkey's value after this long")
	list := &cobra.Command{
		Use:   "list PARENT",
		Short: "List the subkeys of PARENT, one per line",
		Args:  exactArgs(1, "PARENT"),
		RunE: func(c *cobra.Command, args []string) error {
			return f.withKV(c.Context(), func(kv kvBackend) error {
				subs, err := kv.Subkeys(c.Context(), []byte(args[0]))
				if err != nil {
					return err
				}
				w := bufio.NewWriter(e.stdout)
				for _, s := range subs {
					fmt.Fprintf(w, "%s\n", s)
				}
				return w.Flush()
			})
		},
	}
	var all bool
	del := &cobra.Command{
		Use:   "del PARENT SUBKEY",
		Short: "Remove SUBKEY from PARENT and delete it (with --all, its own subkeys too)",
		Args:  exactArgs(2, "PARENT SUBKEY"),
		RunE: func(c *cobra.Command, args []string) error {
			return f.withKV(c.Context(), func(kv kvBackend) error {
				return kv.DeleteSubkey(c.Context(), []byte(args[0]), []byte(args[1]), all)
			})
		},
	}
	del.Flags().BoolVar(&all, "all", false, "delete the subkey's own subkeys too, recursively")
	c.AddCommand(set, list, del)
	return c
}

func kvQueue(e *env, f *kvFlags) *cobra.Command {
	var lifo, keyed bool
	c := &cobra.Command{
		Use:   "queue",
		Short: "FIFO/LIFO queues of values, and keyed queues of key/value pairs",
		Long: `A queue is a named sequence of items. push appends at the back; pop, peek and
remove take from the front (FIFO) or, with --lifo, from the back (LIFO).

With --keyed, items are key/value pairs: push sets KEY to VALUE and queues KEY;
pop prints "KEY<TAB>VALUE" and deletes both the item and KEY. A queue is plain
or keyed from its first push until it is empty. Popping an empty queue exits 1.`,
		Example: `  kura kv --local /tmp/kv queue push jobs job-1
  kura kv --local /tmp/kv queue pop jobs
  kura kv --local /tmp/kv queue pop jobs --lifo
  kura kv --local /tmp/kv queue push mail --keyed msg-17 'hello'
  kura kv --local /tmp/kv queue pop mail --keyed
  kura kv --local /tmp/kv queue len jobs
  kura kv --local /tmp/kv queue remove jobs 10`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	c.PersistentFlags().BoolVar(&lifo, "lifo", false, "pop/peek/remove at the back (last in, first out)")
	c.PersistentFlags().BoolVar(&keyed, "keyed", false, "a keyed queue: items are KEY VALUE pairs")
	end := func() store.End {
		if lifo {
			return store.Back
		}
		return store.Front
	}
	printItem := func(it store.QueueItem) {
		if keyed || it.Key != nil {
			fmt.Fprintf(e.stdout, "%s\t%s\n", it.Key, it.Value)
			return
		}
		fmt.Fprintf(e.stdout, "%s\n", it.Value)
	}
	push := &cobra.Command{
		Use:   "push NAME VALUE | push --keyed NAME KEY VALUE",
		Short: "Append an item ('-' as VALUE reads it from stdin)",
		Args:  rangeArgs(2, 3, "NAME VALUE, or NAME KEY VALUE with --keyed"),
		RunE: func(c *cobra.Command, args []string) error {
			if keyed != (len(args) == 3) {
				if keyed {
					return usagef("queue push --keyed: expected NAME KEY VALUE, got %d arguments", len(args))
				}
				return usagef("queue push: expected NAME VALUE (NAME KEY VALUE needs --keyed), got %d arguments", len(args))
			}
			v, err := valueArg(e, args[len(args)-1])
			if err != nil {
				return err
			}
			return f.withKV(c.Context(), func(kv kvBackend) error {
				if keyed {
					return kv.PushKeyed(c.Context(), []byte(args[0]), []byte(args[1]), v)
				}
				return kv.Push(c.Context(), []byte(args[0]), v)
			})
		},
	}
	pop := &cobra.Command{
		Use:   "pop NAME",
		Short: "Remove and print one item",
		Args:  exactArgs(1, "NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			return f.withKV(c.Context(), func(kv kvBackend) error {
				it, err := kv.Pop(c.Context(), []byte(args[0]), end())
				if err != nil {
					return err
				}
				printItem(it)
				return nil
			})
		},
	}
	peek := &cobra.Command{
		Use:   "peek NAME",
		Short: "Print one item without removing it",
		Args:  exactArgs(1, "NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			return f.withKV(c.Context(), func(kv kvBackend) error {
				it, err := kv.Peek(c.Context(), []byte(args[0]), end())
				if err != nil {
					return err
				}
				printItem(it)
				return nil
			})
		},
	}
	length := &cobra.Command{
		Use:   "len NAME",
		Short: "Print the number of items (0 for a queue that does not exist)",
		Args:  exactArgs(1, "NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			return f.withKV(c.Context(), func(kv kvBackend) error {
				n, _, err := kv.QueueLen(c.Context(), []byte(args[0]))
				if err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, n)
				return nil
			})
		},
	}
	remove := &cobra.Command{
		Use:   "remove NAME N",
		Short: "Remove up to N items and print how many were removed",
		Args:  exactArgs(2, "NAME N"),
		RunE: func(c *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[1])
			if err != nil || n <= 0 {
				return usagef("queue remove: N %q must be a positive integer", args[1])
			}
			return f.withKV(c.Context(), func(kv kvBackend) error {
				got, err := kv.RemoveItems(c.Context(), []byte(args[0]), end(), n)
				if err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, got)
				return nil
			})
		},
	}
	c.AddCommand(push, pop, peek, length, remove)
	return c
}

func kvCAS(e *env, f *kvFlags) *cobra.Command {
	var bits int
	c := &cobra.Command{
		Use:   "cas",
		Short: "Typed unsigned integers with compare-and-swap, increment and decrement",
		Long: `cas keeps unsigned integers of 8, 16, 32 or 64 bits (--bits, default 64).
Arithmetic wraps as the type does: a uint8 at 255 incremented is 0. An op on a
key holding another type (plain bytes, another width) fails with exit 1.
'cas set KEY OLD NEW' stores NEW only if KEY holds OLD; otherwise it exits 1
and prints the current value on stderr.`,
		Example: `  kura kv --local /tmp/kv cas init visits 0 --bits 32
  kura kv --local /tmp/kv cas incr visits --bits 32
  kura kv --local /tmp/kv cas decr visits --bits 32 --by 5
  kura kv --local /tmp/kv cas set visits 7 100 --bits 32
  kura kv --local /tmp/kv cas get visits --bits 32`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	c.PersistentFlags().IntVar(&bits, "bits", 64, "integer width: 8, 16, 32 or 64")
	width := func() (store.Bits, error) {
		if _, err := store.TypeForBits(store.Bits(bits)); err != nil {
			return 0, usagef("cas: --bits %d: must be 8, 16, 32 or 64", bits)
		}
		return store.Bits(bits), nil
	}
	parse := func(name, s string) (uint64, error) {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			return 0, usagef("cas: %s %q is not an unsigned integer", name, s)
		}
		return v, nil
	}
	init := &cobra.Command{
		Use:   "init KEY VALUE",
		Short: "Set KEY to the integer VALUE",
		Args:  exactArgs(2, "KEY VALUE"),
		RunE: func(c *cobra.Command, args []string) error {
			w, err := width()
			if err != nil {
				return err
			}
			v, err := parse("VALUE", args[1])
			if err != nil {
				return err
			}
			return f.withKV(c.Context(), func(kv kvBackend) error {
				return kv.CASInit(c.Context(), []byte(args[0]), w, v)
			})
		},
	}
	get := &cobra.Command{
		Use:   "get KEY",
		Short: "Print the integer in KEY",
		Args:  exactArgs(1, "KEY"),
		RunE: func(c *cobra.Command, args []string) error {
			w, err := width()
			if err != nil {
				return err
			}
			return f.withKV(c.Context(), func(kv kvBackend) error {
				v, err := kv.CASGet(c.Context(), []byte(args[0]), w)
				if err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, v)
				return nil
			})
		},
	}
	set := &cobra.Command{
		Use:   "set KEY OLD NEW",
		Short: "Set KEY to NEW if it holds OLD",
		Args:  exactArgs(3, "KEY OLD NEW"),
		RunE: func(c *cobra.Command, args []string) error {
			w, err := width()
			if err != nil {
				return err
			}
			old, err := parse("OLD", args[1])
			if err != nil {
				return err
			}
			nv, err := parse("NEW", args[2])
			if err != nil {
				return err
			}
			return f.withKV(c.Context(), func(kv kvBackend) error {
				ok, cur, err := kv.CASSet(c.Context(), []byte(args[0]), w, old, nv)
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("cas set %q: compare failed: it holds %d, not %d", args[0], cur, old)
				}
				return nil
			})
		},
	}
	var by uint64
	addCmd := func(use string, sign int64) *cobra.Command {
		cmd := &cobra.Command{
			Use:   use + " KEY",
			Short: "Add (incr) or subtract (decr) --by (default 1) and print the new value",
			Args:  exactArgs(1, "KEY"),
			RunE: func(c *cobra.Command, args []string) error {
				w, err := width()
				if err != nil {
					return err
				}
				return f.withKV(c.Context(), func(kv kvBackend) error {
					v, err := kv.CASAdd(c.Context(), []byte(args[0]), w, sign*int64(by))
					if err != nil {
						return err
					}
					fmt.Fprintln(e.stdout, v)
					return nil
				})
			},
		}
		cmd.Flags().Uint64Var(&by, "by", 1, "amount")
		return cmd
	}
	c.AddCommand(init, get, set, addCmd("incr", 1), addCmd("decr", -1))
	return c
}

func kvChangeLog(e *env, f *kvFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "changelog on|off|status",
		Short: "Turn the change log (the feed behind watch and plugins) on or off",
		Long: `The change log records every mutation, in order, for 'watch' and plugins. It
is off for a new store (each write then costs one record, not two) and stays
as set: 'changelog on' records every later mutation until 'changelog off'.`,
		Example: "  kura kv --local /tmp/kv changelog on\n  kura kv --local /tmp/kv changelog status",
		Args:    exactArgs(1, "on|off|status"),
		RunE: func(c *cobra.Command, args []string) error {
			if args[0] != "on" && args[0] != "off" && args[0] != "status" {
				return usagef("kv changelog: %q is not on, off or status", args[0])
			}
			return f.withKV(c.Context(), func(kv kvBackend) error {
				if args[0] != "status" {
					if err := kv.SetChangeLog(c.Context(), args[0] == "on"); err != nil {
						return err
					}
				}
				state := "off"
				if kv.ChangeLogOn() {
					state = "on"
				}
				fmt.Fprintf(e.stdout, "change log %s, last sequence %d\n", state, kv.LastSeq())
				return nil
			})
		},
	}
}

func kvWatch(e *env, f *kvFlags) *cobra.Command {
	var from uint64
	var follow bool
	var cursor, pluginCmd, prefix, after, cursorFile string
	var oldest bool
	c := &cobra.Command{
		Use:   "watch",
		Short: "Print the change feed as JSON lines, or feed it to a plugin program",
		Long: `watch prints every committed mutation recorded in the change log (turn it on
first: 'kura kv --local DIR changelog on'), one JSON object per line, in order:
{"seq":12,"op":"set","time":"...","key":"k","value":"v","type":"bytes"}
Ops: set, delete, delete.all, subkey.add, subkey.del, queue.push, queue.pop,
expire. Keys and values that are not UTF-8 appear base64-encoded in
key_b64/value_b64.

--from SEQ starts after SEQ. --cursor NAME resumes where the last watch with
that name stopped and records progress durably (the change log keeps what a
cursor still needs). Without --follow, watch stops at the newest change.

--plugin CMD runs CMD (with /bin/sh -c) and writes the JSON lines to its
stdin; CMD's stdout is copied to ours. A plugin that dies is restarted and
resumes with the first change it had not read; progress is kept under the
cursor (default name "plugin"), so nothing is lost between runs.

In a cluster (--endpoints), watch follows every shard: each line carries its
"shard" and that shard's "seq", in order per shard. When the node serving the
stream dies, watch reopens it on another endpoint and resumes after the last
line it printed. --after SHARD:SEQ,... resumes a previous watch; --from-oldest
starts at the oldest retained change of every shard.

With --plugin in a cluster, the last seq of each shard that the plugin took
is kept in --cursor-file (default ./` + defaultCursorFile + `; one watch
at a time per file), written atomically. A restarted watch resumes after
those cursors (shards missing from the file start at their oldest change),
so nothing is lost across restarts of the plugin, the watch or cluster
nodes: delivery is at least once and in order per shard; a line is fed
again only when the watch itself died before recording that the plugin had
taken it.`,
		Example: `  kura kv --local /tmp/kv changelog on
  kura kv --local /tmp/kv watch
  kura kv --local /tmp/kv watch --from 120
  kura kv --local /tmp/kv watch --cursor audit
  kura kv --local /tmp/kv watch --plugin 'jq -c . >> /var/log/kv-changes.log'
  kura kv --endpoints 127.0.0.1:7401 watch --prefix user/
  kura kv --endpoints 127.0.0.1:7401 watch --after 1:120,2:98
  kura kv --endpoints 127.0.0.1:7401,127.0.0.1:7402,127.0.0.1:7403 watch \
      --plugin 'jq -c . >> /var/log/kv-changes.log' --cursor-file /var/lib/kura/audit.cursor`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if f.endpoints != "" {
				if cursor != "" {
					return usagef("kv watch: --cursor names a cursor of a local engine; in a cluster, keep a plugin's progress with --cursor-file PATH, or resume printing with --after SHARD:SEQ,...")
				}
				if c.Flags().Changed("from") {
					return usagef("kv watch: in a cluster each shard has its own sequence: resume with --after SHARD:SEQ,... (--from is for --local)")
				}
				return clusterWatch(c.Context(), e, f, clusterWatchArgs{prefix: prefix, after: after, fromOldest: oldest, plugin: pluginCmd, cursorFile: cursorFile})
			}
			if cursorFile != "" {
				return usagef("kv watch: --cursor-file is for a cluster (--endpoints); with --local, use --cursor NAME")
			}
			if pluginCmd != "" && cursor == "" {
				cursor = "plugin"
			}
			return f.withKV(c.Context(), func(kv kvBackend) error {
				if !kv.ChangeLogOn() {
					return store.ErrNoChangeLog
				}
				start := from
				if cursor != "" && !c.Flags().Changed("from") {
					var err error
					if start, err = kv.Cursor(c.Context(), cursor); err != nil {
						return err
					}
				}
				if pluginCmd != "" {
					return watchPlugin(c.Context(), e, kv, pluginCmd, cursor, start, follow)
				}
				return watchPrint(c.Context(), e, kv, cursor, start, follow)
			})
		},
	}
	c.Flags().Uint64Var(&from, "from", 0, "start after this sequence number")
	c.Flags().BoolVar(&follow, "follow", false, "keep waiting for new changes (until interrupted)")
	c.Flags().StringVar(&cursor, "cursor", "", "durable cursor name to resume from and record progress in")
	c.Flags().StringVar(&pluginCmd, "plugin", "", "program to feed the changes to, as JSON lines on its stdin")
	c.Flags().StringVar(&prefix, "prefix", "", "cluster: only changes of keys with this prefix")
	c.Flags().StringVar(&after, "after", "", "cluster: resume after these per-shard sequences, SHARD:SEQ,...")
	c.Flags().BoolVar(&oldest, "from-oldest", false, "cluster: start at the oldest retained change of each shard")
	c.Flags().StringVar(&cursorFile, "cursor-file", "", "cluster: file keeping the plugin's per-shard progress (default ./"+defaultCursorFile+")")
	return c
}

// watchPrint prints changes after start as JSON lines: up to the newest one
// at the time it starts, or, with follow, until ctx ends.
func watchPrint(ctx context.Context, e *env, kv kvBackend, cursor string, start uint64, follow bool) error {
	w := bufio.NewWriter(e.stdout)
	stopAt := kv.LastSeq()
	seq := start
	for follow || seq < stopAt {
		// Flush before blocking so a follower sees lines as they come.
		if err := w.Flush(); err != nil {
			return err
		}
		ch, err := kv.NextChange(ctx, seq)
		if err != nil {
			if follow && errors.Is(err, context.Canceled) {
				break
			}
			return err
		}
		line, err := json.Marshal(ch)
		if err != nil {
			return err
		}
		w.Write(line)
		w.WriteByte('\n')
		seq = ch.Seq
		if cursor != "" {
			if err := w.Flush(); err != nil {
				return err
			}
			if err := kv.SetCursor(ctx, cursor, seq); err != nil {
				return err
			}
		}
	}
	return w.Flush()
}

// storeFeed adapts the change feed to the plugin runner.
type storeFeed struct{ kv kvBackend }

func (s storeFeed) Next(ctx context.Context, after uint64) (plugin.Record, error) {
	ch, err := s.kv.NextChange(ctx, after)
	if err != nil {
		return plugin.Record{}, err
	}
	line, err := json.Marshal(ch)
	if err != nil {
		return plugin.Record{}, err
	}
	return plugin.Record{Seq: ch.Seq, Line: line}, nil
}

func watchPlugin(ctx context.Context, e *env, kv kvBackend, cmd, cursor string, start uint64, follow bool) error {
	r, err := plugin.New(plugin.Config{Command: cmd, Stdout: e.stdout, Stderr: e.stderr})
	if err != nil {
		return usageError{err}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopAt := kv.LastSeq()
	if !follow && start >= stopAt {
		return nil
	}
	err = r.Run(ctx, storeFeed{kv}, start, func(seq uint64) error {
		if err := kv.SetCursor(ctx, cursor, seq); err != nil {
			return err
		}
		if !follow && seq >= stopAt {
			cancel()
		}
		return nil
	})
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	if err == nil && !follow {
		st := r.Stats()
		fmt.Fprintf(e.stderr, "plugin took changes up to %d (%d written, %d restarts)\n", stopAt, st.Written, st.Restarts)
	}
	return err
}

var _ kvBackend = (*store.Store)(nil)
