package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/datanode"
	"github.com/kura-dev/kura/dfs/dnmanager"
	"github.com/kura-dev/kura/dfs/namenode"
	"github.com/kura-dev/kura/dfs/namespace"
)

// pagedListLimit is the namenode's page in TestDFSShellPaging: every
// directory of the test takes several List calls.
const pagedListLimit = 3

// startPagedCluster is startShellCluster with a namenode whose List pages
// hold pagedListLimit entries, one datanode and a replication of 1.
func startPagedCluster(t *testing.T) *shellCluster {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	hb := 50 * time.Millisecond
	n, err := namenode.Start(ctx, namenode.Config{
		MetaURL: "sqlite://" + filepath.Join(t.TempDir(), "meta.db"), HTTPAddr: "127.0.0.1:0", RPCAddr: "127.0.0.1:0",
		Datanodes:           dnmanager.Config{HeartbeatInterval: hb, DeadIntervals: 200},
		MaintenanceInterval: -1,
		Namespace:           namespace.Config{ListLimit: pagedListLimit, DefaultReplication: 1},
		Logger:              quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	d, err := datanode.Start(ctx, datanode.Config{
		DataDir: t.TempDir(), DataAddr: "127.0.0.1:0", Namenodes: []string{n.RPCAddr()},
		HeartbeatInterval: hb, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	for deadline := time.Now().Add(20 * time.Second); n.Manager().LiveCount() < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the datanode is not live after 20 s")
		}
	}
	return &shellCluster{t: t, addr: n.RPCAddr()}
}

// withDirHold sets dirHold to n until the test ends.
func withDirHold(t *testing.T, n int) {
	old := dirHold
	dirHold = n
	t.Cleanup(func() { dirHold = old })
}

// TestDFSShellPaging runs the commands that walk directories on
// directories larger than the namenode's page (3 entries), each twice:
// holding directories as before (dirHold 1000) and streaming them
// (dirHold 2). The outputs must be the same, and right.
func TestDFSShellPaging(t *testing.T) {
	c := startPagedCluster(t)
	cl, err := client.New(client.Config{Namenodes: []string{c.addr}, User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	put := func(p string, size int) {
		t.Helper()
		w, err := cl.Create(ctx, p, client.CreateOptions{CreateParent: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(bytes.Repeat([]byte{'x'}, size)); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// /p: f1..f10 (f10 the largest), d1 (x1..x5 and sub/y), d2 (empty),
	// and zz-long last, with an owner wider than the others: hdfs sizes
	// the columns over the whole directory before its first line.
	sizes := map[string]int{}
	for i := 1; i <= 10; i++ {
		sizes[fmt.Sprintf("f%d", i)] = i * 100
	}
	sizes["f10"] = 12345
	sizes["zz-long"] = 1
	for name, size := range sizes {
		put("/p/"+name, size)
	}
	for i := 1; i <= 5; i++ {
		put(fmt.Sprintf("/p/d1/x%d", i), 10)
	}
	put("/p/d1/sub/y", 7)
	c.ok("mkdir", "/p/d2")
	c.ok("chown", "a-much-longer-owner:g", "/p/zz-long")
	top := []string{"d1", "d2", "f1", "f10", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "zz-long"}

	// both runs args with directories held and streamed, wants the same
	// stdout from both, and returns it.
	both := func(t *testing.T, args ...string) string {
		t.Helper()
		c := c.on(t)
		withDirHold(t, 1000)
		held := c.ok(args...)
		dirHold = 2
		streamed := c.ok(args...)
		if held != streamed {
			t.Fatalf("%s: streamed output\n%s\ndiffers from the held one\n%s", strings.Join(args, " "), streamed, held)
		}
		return held
	}
	date := regexp.MustCompile(lsDate)
	// lsLines checks that the lines' columns are aligned and returns the
	// paths.
	lsLines := func(t *testing.T, lines []string) []string {
		t.Helper()
		var paths []string
		at := -1
		for _, l := range lines {
			loc := date.FindStringIndex(l)
			if loc == nil {
				t.Fatalf("not an ls line: %q", l)
			}
			if at >= 0 && loc[0] != at {
				t.Fatalf("columns not aligned: %q has its date at %d, not %d", l, loc[0], at)
			}
			at = loc[0]
			paths = append(paths, l[loc[1]+1:])
		}
		return paths
	}
	prefixed := func(dir string, names []string) []string {
		var out []string
		for _, n := range names {
			out = append(out, dir+"/"+n)
		}
		return out
	}

	t.Run("ls", func(t *testing.T) {
		out := both(t, "ls", "/p")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if lines[0] != fmt.Sprintf("Found %d items", len(top)) {
			t.Fatalf("first line %q", lines[0])
		}
		if got := lsLines(t, lines[1:]); !slices.Equal(got, prefixed("/p", top)) {
			t.Errorf("ls /p: paths %q", got)
		}
		if !strings.Contains(lines[1], fmt.Sprintf(" %-19s ", "root")) { // as wide as a-much-longer-owner
			t.Errorf("owner column not as wide as the last entry's owner: %q", lines[1])
		}
		both(t, "ls", "-h", "/p", "/p/d1", "/p/f1")
		both(t, "ls", "-C", "/p")
		both(t, "ls", "-d", "/p/f*")
		// Sorted: held whole, as hdfs does.
		if got := lsLines(t, strings.Split(strings.TrimSuffix(both(t, "ls", "-S", "/p"), "\n"), "\n")[1:]); got[0] != "/p/f10" || got[1] != "/p/f9" {
			t.Errorf("ls -S: %q", got)
		}
		rev := prefixed("/p", top)
		slices.Reverse(rev)
		if got := strings.Fields(both(t, "ls", "-C", "-r", "/p")); !slices.Equal(got, rev) {
			t.Errorf("ls -C -r: %q", got)
		}
	})

	t.Run("ls -R", func(t *testing.T) {
		out := both(t, "ls", "-R", "/p")
		want := []string{"/p/d1"}
		want = append(want, prefixed("/p/d1", []string{"sub"})...)
		want = append(want, "/p/d1/sub/y")
		want = append(want, prefixed("/p/d1", []string{"x1", "x2", "x3", "x4", "x5"})...)
		want = append(want, prefixed("/p", top[1:])...)
		got := lsLines(t, strings.Split(strings.TrimSuffix(out, "\n"), "\n"))
		if !slices.Equal(got, want) {
			t.Errorf("ls -R /p: paths\n%q\nwant\n%q", got, want)
		}
		if c := both(t, "ls", "-R", "-C", "/p"); c != strings.Join(want, "\n")+"\n" {
			t.Errorf("ls -R -C /p: %q", c)
		}
		both(t, "ls", "-R", "-h", "-u", "/p/d1", "/p")
	})

	t.Run("du", func(t *testing.T) {
		var rows [][2]string
		for _, name := range top {
			size := sizes[name]
			switch name {
			case "d1":
				size = 5*10 + 7
			case "d2":
				size = 0
			}
			rows = append(rows, [2]string{fmt.Sprint(size), "/p/" + name})
		}
		var want strings.Builder
		for _, r := range rows {
			fmt.Fprintf(&want, "%-5s  %-5s  %s\n", r[0], r[0], r[1]) // replication 1
		}
		if got := both(t, "du", "/p"); got != want.String() {
			t.Errorf("du /p:\n%s\nwant\n%s", got, want.String())
		}
		got := both(t, "du", "-v", "/p", "/p/d1")
		if !strings.HasPrefix(got, "SIZE   DISK_SPACE_CONSUMED_WITH_ALL_REPLICAS  FULL_PATH_NAME\n") ||
			!strings.HasSuffix(got, fmt.Sprintf("%-5s  %-37s  %s\n", "10", "10", "/p/d1/x5")) || strings.Count(got, "\n") != 1+13+6 {
			t.Errorf("du -v /p /p/d1:\n%s", got)
		}
		both(t, "du", "-s", "-h", "/p", "/p/d1")
	})

	t.Run("count", func(t *testing.T) {
		total := 5*10 + 7
		for _, s := range sizes {
			total += s
		}
		want := fmt.Sprintf("%12d %12d %18d /p\n", 4, len(sizes)+6, total)
		if got := both(t, "count", "/p"); got != want {
			t.Errorf("count /p: %q, want %q", got, want)
		}
		both(t, "count", "-q", "-h", "-v", "/p", "/p/d1")
	})

	t.Run("chmod chown chgrp -R", func(t *testing.T) {
		c := c.on(t)
		for i, hold := range []int{1000, 2} {
			withDirHold(t, hold)
			mode, owner := []string{"750", "700"}[i], []string{"alice", "bob"}[i]
			c.ok("chmod", "-R", mode, "/p")
			c.ok("chown", "-R", owner, "/p")
			c.ok("chgrp", "-R", "grp"+owner, "/p")
			perm := map[string]string{"750": "rwxr-x---", "700": "rwx------"}[mode]
			out := c.ok("ls", "-R", "/p")
			for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
				f := strings.Fields(l)
				if f[0][1:] != perm || f[2] != owner || f[3] != "grp"+owner {
					t.Fatalf("after chmod/chown/chgrp -R %s %s with dirHold %d: %q", mode, owner, hold, l)
				}
			}
			if n := strings.Count(out, "\n"); n != 20 {
				t.Fatalf("ls -R /p: %d lines", n)
			}
		}
	})

	t.Run("cp get", func(t *testing.T) {
		c := c.on(t)
		for i, hold := range []int{1000, 2} {
			withDirHold(t, hold)
			dst := fmt.Sprintf("/copy%d", i)
			c.ok("cp", "/p", dst)
			if a, b := strings.ReplaceAll(c.ok("ls", "-R", "-C", dst), dst+"/", "/p/"), c.ok("ls", "-R", "-C", "/p"); a != b {
				t.Errorf("cp /p %s with dirHold %d:\n%s\nwant\n%s", dst, hold, a, b)
			}
			local := filepath.Join(t.TempDir(), "p")
			c.ok("get", "/p", local)
			var files []string
			filepath.WalkDir(local, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(local, p)
					files = append(files, rel)
				}
				return err
			})
			if len(files) != len(sizes)+6 {
				t.Errorf("get /p with dirHold %d: %q", hold, files)
			}
			if b := readLocal(t, filepath.Join(local, "f10")); len(b) != 12345 {
				t.Errorf("get /p: f10 has %d bytes", len(b))
			}
		}
	})

	t.Run("test -r", func(t *testing.T) {
		c := c.on(t)
		c.ok("test", "-r", "/p")
		c.ok("chmod", "700", "/p")
		if code := c.exit("nobody", "test", "-r", "/p"); code != 1 {
			t.Errorf("test -r /p as nobody: exit %d", code)
		}
	})
}
