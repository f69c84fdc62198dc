package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/dfstest"
)

// shellCluster is an in-process namenode (SQLite) with three datanodes,
// driven through Run as `kura dfs <cmd> ... --namenode ADDR --user USER`.
type shellCluster struct {
	t    *testing.T
	addr string
}

func startShellCluster(t *testing.T) *shellCluster {
	t.Helper()
	n := dfstest.Start(t, dfstest.Options{Datanodes: 3}).Namenode
	return &shellCluster{t: t, addr: n.RPCAddr()}
}

// on returns c reporting to the (sub)test t.
func (c *shellCluster) on(t *testing.T) *shellCluster { return &shellCluster{t: t, addr: c.addr} }

// runAs runs `kura dfs args... --namenode ADDR --user user`.
func (c *shellCluster) runAs(user, stdin string, args ...string) (string, string, int) {
	c.t.Helper()
	full := append([]string{"dfs"}, args...)
	full = append(full, "--namenode", c.addr, "--user", user)
	return kura(c.t, stdin, full...)
}

// ok runs args as root and wants exit 0 and no stderr; it returns stdout.
func (c *shellCluster) ok(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.runAs("root", "", args...)
	if code != 0 || errOut != "" {
		c.t.Fatalf("%s: exit %d, stderr %q (stdout %q)", strings.Join(args, " "), code, errOut, out)
	}
	return out
}

// fails runs args as user and wants exit code and stderr containing msg.
func (c *shellCluster) failsAs(user string, code int, msg string, args ...string) string {
	c.t.Helper()
	out, errOut, got := c.runAs(user, "", args...)
	if got != code || !strings.Contains(errOut, msg) {
		c.t.Fatalf("%s: exit %d stderr %q, want exit %d and %q", strings.Join(args, " "), got, errOut, code, msg)
	}
	return out
}

func (c *shellCluster) fails(code int, msg string, args ...string) string {
	c.t.Helper()
	return c.failsAs("root", code, msg, args...)
}

// is runs args as root and wants stdout want.
func (c *shellCluster) is(want string, args ...string) {
	c.t.Helper()
	if got := c.ok(args...); got != want {
		c.t.Fatalf("%s: stdout %q, want %q", strings.Join(args, " "), got, want)
	}
}

// exit runs args as user and returns the exit code.
func (c *shellCluster) exit(user string, args ...string) int {
	c.t.Helper()
	_, _, code := c.runAs(user, "", args...)
	return code
}

func writeLocal(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readLocal(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const lsDate = `\d{4}-\d\d-\d\d \d\d:\d\d`

// TestDFSShell drives every file command against an in-process cluster:
// output formats, hdfs's messages and exit codes, data through put, get,
// cat, appendToFile and cp, and an interrupted put.
func TestDFSShell(t *testing.T) {
	c := startShellCluster(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 11))
	big := make([]byte, 3<<20+1<<19) // 3.5 blocks of 1 MiB
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	bigPath, smallPath, morePath := filepath.Join(dir, "big.bin"), filepath.Join(dir, "small.txt"), filepath.Join(dir, "more.txt")
	writeLocal(t, bigPath, big)
	writeLocal(t, smallPath, []byte("hello\n"))
	writeLocal(t, morePath, []byte("more\n"))

	t.Run("mkdir", func(t *testing.T) {
		c := c.on(t)
		c.ok("mkdir", "-p", "/user/root", "/data/sub")
		c.ok("mkdir", "-p", "/data")
		c.fails(1, "kura dfs mkdir: `/data': File exists", "mkdir", "/data")
		c.fails(1, "mkdir: `/nope': No such file or directory", "mkdir", "/nope/x")
		c.ok("mkdir", "/tmp")
	})

	t.Run("put multi-block", func(t *testing.T) {
		c := c.on(t)
		c.ok("put", "--block-size", "1m", bigPath, "/data/")
		c.is("1048576 3 3670016 regular file\n", "stat", "%o %r %b %F", "/data/big.bin")
		cl, err := client.New(client.Config{Namenodes: []string{c.addr}, User: "root"})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		locs, err := cl.BlockLocations(context.Background(), "/data/big.bin")
		if err != nil || len(locs.Blocks) != 4 {
			t.Fatalf("blocks of /data/big.bin: %v, err %v", locs, err)
		}
		c.fails(1, "kura dfs put: `/data/big.bin': File exists", "put", bigPath, "/data/big.bin")
		c.fails(1, "put: `/data/big.bin': File exists", "put", bigPath, "/data")
		c.ok("put", "-f", "-D", "dfs.blocksize=1048576", "-D", "dfs.replication=2", bigPath, "/data/big.bin")
		c.is("2 1048576\n", "stat", "%r %o", "/data/big.bin")
		_, errOut, code := c.runAs("root", "", "put", "-f", "--progress", "--replication", "3", "--block-size", "1m", bigPath, "/data/big.bin")
		if code != 0 || !strings.Contains(errOut, "/data/big.bin: 3.5 MiB / 3.5 MiB (100%), ") || !strings.Contains(errOut, "MiB/s, done in ") {
			t.Fatalf("put --progress: exit %d, stderr %q", code, errOut)
		}
		c.fails(1, "put: `/nope/f': No such file or directory", "put", smallPath, "/nope/f")
		c.fails(1, "put: `"+dir+"/missing': No such file or directory", "put", dir+"/missing", "/data/")
		c.fails(1, "put: `/data/big.bin': Is not a directory", "put", smallPath, morePath, "/data/big.bin")
		c.fails(2, "kura dfs put: expected arguments", "put")
		c.fails(2, "exclude each other", "put", "--progress", "--no-progress", smallPath, "/tmp/x")
		c.fails(2, "block size", "put", "--block-size", "lots", smallPath, "/tmp/x")
	})

	t.Run("ls", func(t *testing.T) {
		c := c.on(t)
		out := c.ok("ls", "/data")
		re := regexp.MustCompile(`^Found 2 items\n` +
			`-rw-r--r--   3 root supergroup    3670016 ` + lsDate + ` /data/big\.bin\n` +
			`drwxr-xr-x   - root supergroup          0 ` + lsDate + ` /data/sub\n$`)
		if !re.MatchString(out) {
			t.Fatalf("ls /data:\n%s", out)
		}
		if out := c.ok("ls", "-d", "/data"); !regexp.MustCompile(`^drwxr-xr-x   - root supergroup          0 ` + lsDate + ` /data\n$`).MatchString(out) {
			t.Fatalf("ls -d /data: %q", out)
		}
		if out := c.ok("ls", "-h", "/data/big.bin"); !regexp.MustCompile(`^-rw-r--r--   3 root supergroup      3\.5 M ` + lsDate + ` /data/big\.bin\n$`).MatchString(out) {
			t.Fatalf("ls -h: %q", out)
		}
		c.is("/data/big.bin\n/data/sub\n", "ls", "-C", "/data")
		c.is("/data/sub\n/data/big.bin\n", "ls", "-C", "-r", "/data")
		c.is("/\n", "ls", "-C", "-d", "/")
		c.is("/data\n/data/big.bin\n/data/sub\n/tmp\n/user\n/user/root\n", "ls", "-C", "-R", "/")
		c.is("", "ls", "/data/sub") // empty: no "Found 0 items"

		// Relative paths are under /user/<user> and shown relative.
		c.ok("put", smallPath, "rel.txt")
		if out := c.ok("ls"); !regexp.MustCompile(`^Found 1 items\n-rw-r--r--   3 root supergroup          6 ` + lsDate + ` rel\.txt\n$`).MatchString(out) {
			t.Fatalf("ls of the home directory: %q", out)
		}
		c.is("hello\n", "cat", "/user/root/rel.txt")
		c.is("hello\n", "cat", "../root/./rel.txt")

		c.fails(1, "kura dfs ls: `/missing': No such file or directory", "ls", "/missing")
		out, errOut, code := c.runAs("root", "", "ls", "/missing", "/data", "/missing2")
		if code != 1 || !strings.HasPrefix(out, "Found 2 items\n") ||
			errOut != "kura dfs ls: `/missing': No such file or directory\nkura dfs ls: `/missing2': No such file or directory\n" {
			t.Fatalf("ls with missing paths: exit %d stdout %q stderr %q", code, out, errOut)
		}
		// Globs.
		c.is("/data/big.bin\n", "ls", "-C", "/data/*.bin")
		c.is("/data/big.bin\n/data/sub\n", "ls", "-C", "-d", "/data/{big.bin,s?b}")
		c.is("", "ls", "-C", "/data/s?b") // a directory matched: its (no) entries
		c.fails(1, "ls: `/data/*.txt': No such file or directory", "ls", "/data/*.txt")
		c.fails(2, "unknown flag: --bogus", "ls", "--bogus", "/")
		if _, errOut, code := kura(t, "", "dfs", "ls", "--namenode", "nohostport", "/"); code != 2 || !strings.Contains(errOut, `kura dfs ls: --namenode "nohostport": want HOST:PORT`) {
			t.Fatalf("bad --namenode: exit %d %q", code, errOut)
		}
	})

	t.Run("cat get", func(t *testing.T) {
		c := c.on(t)
		if out := c.ok("cat", "/data/big.bin"); out != string(big) {
			t.Fatalf("cat: %d bytes differing from the %d put", len(out), len(big))
		}
		c.fails(1, "kura dfs cat: `/data': Is a directory", "cat", "/data")
		c.fails(1, "cat: `/missing': No such file or directory", "cat", "/missing")
		c.is("name rel.txt\n", "stat", "name %n", "rel.txt")

		out := filepath.Join(dir, "out")
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		c.ok("get", "/data/big.bin", out)
		if !bytes.Equal(readLocal(t, filepath.Join(out, "big.bin")), big) {
			t.Fatal("get: the copy differs")
		}
		c.fails(1, "kura dfs get: `"+out+"/big.bin': File exists", "get", "/data/big.bin", out)
		c.fails(1, "get: `"+out+"/big.bin': File exists", "get", "/data/big.bin", filepath.Join(out, "big.bin"))
		writeLocal(t, filepath.Join(out, "big.bin"), []byte("old"))
		c.ok("get", "-f", "/data/big.bin", filepath.Join(out, "big.bin"))
		if !bytes.Equal(readLocal(t, filepath.Join(out, "big.bin")), big) {
			t.Fatal("get -f: the copy differs")
		}
		c.fails(1, "get: `/missing': No such file or directory", "get", "/missing", out)
		// A directory tree, with -p.
		c.ok("get", "-p", "/data", filepath.Join(out, "tree"))
		if !bytes.Equal(readLocal(t, filepath.Join(out, "tree", "big.bin")), big) {
			t.Fatal("get of a directory: the copy differs")
		}
		if fi, err := os.Stat(filepath.Join(out, "tree", "big.bin")); err != nil || fi.Mode().Perm() != 0o644 {
			t.Fatalf("get -p: %v %v", fi, err)
		}
		if fi, err := os.Stat(filepath.Join(out, "tree", "sub")); err != nil || !fi.IsDir() {
			t.Fatalf("get of a directory: sub: %v %v", fi, err)
		}
		matches, _ := filepath.Glob(filepath.Join(out, "*"+copyingSuffix))
		if len(matches) > 0 {
			t.Fatalf("left over: %v", matches)
		}
	})

	t.Run("put directories and stdin", func(t *testing.T) {
		c := c.on(t)
		tree := filepath.Join(dir, "tree")
		writeLocal(t, filepath.Join(tree, "a.txt"), []byte("a\n"))
		writeLocal(t, filepath.Join(tree, "d", "b.txt"), []byte("b\n"))
		c.ok("put", tree, "/tmp")
		c.is("/tmp/tree\n/tmp/tree/a.txt\n/tmp/tree/d\n/tmp/tree/d/b.txt\n", "ls", "-C", "-R", "/tmp")
		c.ok("put", smallPath, morePath, "/tmp/tree/d")
		c.is("hello\nmore\n", "cat", "/tmp/tree/d/small.txt", "/tmp/tree/d/more.txt")
		if _, errOut, code := c.runAs("root", "from stdin\n", "put", "-", "/tmp/stdin.txt"); code != 0 || errOut != "" {
			t.Fatalf("put -: exit %d %q", code, errOut)
		}
		c.is("from stdin\n", "cat", "/tmp/stdin.txt")
		c.fails(1, "put: `/tmp/stdin.txt': File exists", "put", "-", "/tmp/stdin.txt")
		c.fails(2, "stdin (-) must be the only source", "put", "-", smallPath, "/tmp")
	})

	t.Run("appendToFile", func(t *testing.T) {
		c := c.on(t)
		c.ok("appendToFile", smallPath, morePath, "/data/log.txt")
		c.is("hello\nmore\n", "cat", "/data/log.txt")
		if _, errOut, code := c.runAs("root", "piped\n", "appendToFile", "-", "/data/log.txt"); code != 0 {
			t.Fatalf("appendToFile -: exit %d %q", code, errOut)
		}
		c.is("hello\nmore\npiped\n", "cat", "/data/log.txt")
		c.fails(1, "appendToFile: `/data': Is a directory", "appendToFile", smallPath, "/data")
		c.fails(1, "appendToFile: `"+dir+"/nope': No such file or directory", "appendToFile", dir+"/nope", "/data/log.txt")
		c.fails(2, "expected arguments", "appendToFile", "/data/log.txt")
		// To a multi-block file whose last block is partial.
		c.ok("appendToFile", bigPath, "/data/big.bin")
		if out := c.ok("cat", "/data/big.bin"); out != string(big)+string(big) {
			t.Fatalf("cat after appending: %d bytes", len(out))
		}
		c.is("7340032\n", "stat", "%b", "/data/big.bin")
	})

	t.Run("cp mv", func(t *testing.T) {
		c := c.on(t)
		c.ok("cp", "/data/log.txt", "/data/log2.txt")
		c.is("hello\nmore\npiped\n", "cat", "/data/log2.txt")
		c.fails(1, "kura dfs cp: `/data/log2.txt': File exists", "cp", "/data/log.txt", "/data/log2.txt")
		c.ok("cp", "-f", "/user/root/rel.txt", "/data/log2.txt")
		c.is("hello\n", "cat", "/data/log2.txt")
		c.fails(1, "cp: `/data' to `/data/sub/data': is a subdirectory of itself", "cp", "/data", "/data/sub")
		c.ok("cp", "/tmp/tree", "/tmp/tree2")
		c.is("b\n", "cat", "/tmp/tree2/d/b.txt")
		c.fails(1, "cp: `/missing': No such file or directory", "cp", "/missing", "/tmp")

		c.ok("mv", "/data/log2.txt", "/data/sub")
		c.is("/data/sub/log2.txt\n", "ls", "-C", "/data/sub")
		c.fails(1, "kura dfs mv: `/data/sub/log2.txt': File exists", "mv", "/data/log.txt", "/data/sub/log2.txt")
		c.fails(1, "mv: `/missing': No such file or directory", "mv", "/missing", "/data")
		c.fails(1, "mv: `/data' to `/data/sub/data': is a subdirectory of itself", "mv", "/data", "/data/sub")
		c.ok("mv", "/tmp/tree2", "/tmp/tree3")
		c.fails(1, "mv: `/tmp/nope': No such file or directory", "mv", "/tmp/tree3", "/tmp/stdin.txt", "/tmp/nope")
		c.fails(1, "mv: `/tmp/stdin.txt': Is not a directory", "mv", "/tmp/tree3", "/data/log.txt", "/tmp/stdin.txt")
	})

	t.Run("chmod chown", func(t *testing.T) {
		c := c.on(t)
		c.ok("chmod", "700", "/data/log.txt")
		c.is("700 rwx------\n", "stat", "%a %A", "/data/log.txt")
		c.ok("chmod", "u-w,g+r", "/data/log.txt")
		c.is("540 r-xr-----\n", "stat", "%a %A", "/data/log.txt")
		c.ok("chmod", "1777", "/tmp")
		c.is("1777 rwxrwxrwt\n", "stat", "%a %A", "/tmp")
		c.ok("chmod", "-R", "750", "/data/sub")
		c.is("750\n750\n", "stat", "%a", "/data/sub", "/data/sub/log2.txt")
		c.fails(2, "kura dfs chmod: chmod : mode 'xyz' does not match the expected pattern.", "chmod", "xyz", "/data")
		c.fails(1, "chmod: `/missing': No such file or directory", "chmod", "755", "/missing")

		c.ok("chown", "alice:staff", "/data/sub/log2.txt")
		c.is("alice:staff\n", "stat", "%u:%g", "/data/sub/log2.txt")
		c.ok("chown", "-R", "bob", "/data/sub")
		c.is("bob:supergroup\nbob:staff\n", "stat", "%u:%g", "/data/sub", "/data/sub/log2.txt")
		c.ok("chown", ":eng", "/data/sub")
		c.ok("chgrp", "-R", "ops", "/data/sub")
		c.is("bob:ops\nbob:ops\n", "stat", "%u:%g", "/data/sub", "/data/sub/log2.txt")
		// Only the superuser changes owners, with hdfs's message.
		c.ok("chown", "alice", "/data/log.txt")
		c.failsAs("alice", 1, "kura dfs chown: changing ownership of '/data/log.txt': Non-super user cannot change owner", "chown", "bob", "/data/log.txt")
		c.failsAs("alice", 1, "chmod: changing permissions of '/data/sub': Permission denied", "chmod", "777", "/data/sub")
		c.fails(2, "'a b' does not match expected pattern for [owner][:group].", "chown", "a b", "/data")
		c.fails(2, "':' does not specify owner or group.", "chown", ":", "/data")
	})

	t.Run("du df count", func(t *testing.T) {
		c := c.on(t)
		// /data: big.bin 7340032 x3, log.txt 17 x3, sub/log2.txt 6 x3.
		c.is("7340055  22020165  /data\n", "du", "-s", "/data")
		c.is("7340032  22020096  /data/big.bin\n17       51        /data/log.txt\n6        18        /data/sub\n", "du", "/data")
		c.is("SIZE   DISK_SPACE_CONSUMED_WITH_ALL_REPLICAS  FULL_PATH_NAME\n7.0 M  21.0 M                                 /data\n", "du", "-s", "-h", "-v", "/data")
		c.fails(1, "du: `/missing': No such file or directory", "du", "/missing")
		c.is(fmt.Sprintf("%12d %12d %18d %s\n", 2, 3, 7340055, "/data"), "count", "/data")
		c.is(fmt.Sprintf("%12s %15s %15s %15s %12s %12s %18s %s\n%12s %15s %15s %15s %12d %12d %18d %s\n",
			"QUOTA", "REM_QUOTA", "SPACE_QUOTA", "REM_SPACE_QUOTA", "DIR_COUNT", "FILE_COUNT", "CONTENT_SIZE", "PATHNAME",
			"none", "inf", "none", "inf", 2, 3, 7340055, "/data"), "count", "-q", "-v", "/data")

		// df: the datanodes' figures, once their heartbeats count the replicas.
		re := regexp.MustCompile(`^Filesystem +Size +Used +Available +Use%\nkura://` + regexp.QuoteMeta(c.addr) + ` +(\d+) +(\d+) +(\d+) +(\d+)%\n$`)
		deadline := time.Now().Add(5 * time.Second)
		for {
			out := c.ok("df")
			m := re.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("df: %q", out)
			}
			size, _ := strconv.ParseInt(m[1], 10, 64)
			used, _ := strconv.ParseInt(m[2], 10, 64)
			avail, _ := strconv.ParseInt(m[3], 10, 64)
			if size <= 0 || avail <= 0 || used+avail > size {
				t.Fatalf("df figures: %q", out)
			}
			if used >= 22020165 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("df: used %d, want at least the %d bytes of replicas written", used, 22020165)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if out := c.ok("df", "-h", "/data"); !regexp.MustCompile(`^Filesystem +Size +Used +Available +Use%\nkura://\S+ +[\d.]+ [KMGTPE] +[\d.]+ [KMGTPE] +[\d.]+ [KMGTPE] +\d+%\n$`).MatchString(out) {
			t.Fatalf("df -h: %q", out)
		}
	})

	t.Run("stat", func(t *testing.T) {
		c := c.on(t)
		out := c.ok("stat", "%n|%b|%o|%r|%u|%g|%F|%a|%A|%Y|%y|%%|%", "/data/log.txt", "/data/sub")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 2 {
			t.Fatalf("stat: %q", out)
		}
		f := strings.Split(lines[0], "|")
		// "%%" is "%", a trailing "%" is dropped.
		if len(f) != 13 || strings.Join(f[:9], "|") != "log.txt|17|134217728|3|alice|supergroup|regular file|540|r-xr-----" || f[11] != "%" || f[12] != "" {
			t.Fatalf("stat of a file: %q", lines[0])
		}
		ms, _ := strconv.ParseInt(f[9], 10, 64)
		if got := time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05"); got != f[10] {
			t.Fatalf("stat: %%y %q is not %%Y %s (%s)", f[10], f[9], got)
		}
		if d := strings.Split(lines[1], "|"); strings.Join(d[:9], "|") != "sub|0|0|0|bob|ops|directory|750|rwxr-x---" {
			t.Fatalf("stat of a directory: %q", lines[1])
		}
		if out := c.ok("stat", "/data"); !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\n$`).MatchString(out) {
			t.Fatalf("stat's default format: %q", out)
		}
		c.fails(1, "stat: `/missing': No such file or directory", "stat", "%n", "/missing")
		c.fails(2, "no PATH", "stat", "%n")
	})

	t.Run("test", func(t *testing.T) {
		c := c.on(t)
		for _, tc := range []struct {
			user string
			args []string
			code int
		}{
			{"root", []string{"-e", "/data/log.txt"}, 0},
			{"root", []string{"-e", "/missing"}, 1},
			{"root", []string{"-d", "/data"}, 0},
			{"root", []string{"-d", "/data/log.txt"}, 1},
			{"root", []string{"-f", "/data/log.txt"}, 0},
			{"root", []string{"-f", "/data"}, 1},
			{"root", []string{"-s", "/data/log.txt"}, 0},
			{"root", []string{"-z", "/data/log.txt"}, 1},
			{"root", []string{"-z", "/missing"}, 1},
			{"root", []string{"-e", "/data/*.bin"}, 0},
			{"root", []string{"-e", "/data/*.none"}, 1},
			{"root", []string{"-w", "/data/log.txt"}, 0},  // the superuser
			{"bob", []string{"-w", "/data/log.txt"}, 1},   // alice's, r-xr-----
			{"alice", []string{"-w", "/data/log.txt"}, 1}, // no w for the owner either
			{"alice", []string{"-r", "/data/log.txt"}, 0},
			{"bob", []string{"-r", "/data/log.txt"}, 1},
			{"bob", []string{"-r", "/data"}, 0},
			{"root", []string{"-e", "-d", "/data"}, 2},
			{"root", []string{"/data"}, 2},
			{"root", []string{"-e", "/a", "/b"}, 2},
		} {
			if got := c.exit(tc.user, append([]string{"test"}, tc.args...)...); got != tc.code {
				t.Errorf("test %v as %s: exit %d, want %d", tc.args, tc.user, got, tc.code)
			}
		}
		if out, errOut, code := c.runAs("root", "", "test", "-e", "/missing"); out != "" || errOut != "" || code != 1 {
			t.Errorf("test -e /missing: exit %d, stdout %q, stderr %q; want exit 1 and nothing printed, as hdfs", code, out, errOut)
		}
	})

	t.Run("touchz setrep", func(t *testing.T) {
		c := c.on(t)
		c.ok("touchz", "/tmp/empty")
		c.ok("touchz", "/tmp/empty")
		c.is("0 regular file\n", "stat", "%b %F", "/tmp/empty")
		c.fails(1, "kura dfs touchz: `/data/log.txt': Not a zero-length file", "touchz", "/data/log.txt")
		c.fails(1, "touchz: `/data': Is a directory", "touchz", "/data")
		c.fails(1, "touchz: `/nope/f': No such file or directory", "touchz", "/nope/f")

		c.is("Replication 2 set: /data/log.txt\n", "setrep", "2", "/data/log.txt")
		c.is("2\n", "stat", "%r", "/data/log.txt")
		c.is("Replication 3 set: /data/log.txt\n", "setrep", "3", "/data/log.txt")
		c.is("Replication 3 set: /data/sub/log2.txt\n", "setrep", "-R", "3", "/data/sub")
		c.is("Replication 3 set: /tmp/tree/d/b.txt\nWaiting for /tmp/tree/d/b.txt ... done\n", "setrep", "-w", "3", "/tmp/tree/d/b.txt")
		c.fails(2, "replication must be >= 1", "setrep", "0", "/data")
		c.fails(2, "Illegal replication, a positive integer expected", "setrep", "x", "/data")
		c.fails(1, "setrep: `/missing': No such file or directory", "setrep", "2", "/missing")
	})

	t.Run("rm", func(t *testing.T) {
		c := c.on(t)
		c.fails(1, "kura dfs rm: `/tmp/tree': Is a directory", "rm", "/tmp/tree")
		c.fails(1, "rm: `/missing': No such file or directory", "rm", "/missing")
		c.is("", "rm", "-f", "/missing", "/nomatch*")
		c.is("Deleted /tmp/tree\n", "rm", "-r", "/tmp/tree")
		c.is("Deleted /tmp/empty\nDeleted /tmp/stdin.txt\n", "rm", "-skipTrash", "/tmp/empty", "/tmp/stdin.txt")
		c.is("Deleted /tmp/tree3\n", "rm", "-R", "-f", "/tmp/tree3")
		c.is("", "ls", "/tmp")
		c.fails(2, "unknown option -skipTrashX", "rm", "-skipTrashX", "/tmp")
	})

	t.Run("environment defaults", func(t *testing.T) {
		c := c.on(t)
		t.Setenv(envDFSNamenode, c.addr)
		t.Setenv(envHadoopUser, "alice")
		if out, errOut, code := kura(t, "", "dfs", "stat", "%u", "/data/log.txt"); code != 0 || out != "alice\n" {
			t.Fatalf("with $%s: exit %d %q %q", envDFSNamenode, code, out, errOut)
		}
		// alice's home directory does not exist: "." is missing.
		if _, errOut, code := kura(t, "", "dfs", "ls"); code != 1 || !strings.Contains(errOut, "ls: `.': No such file or directory") {
			t.Fatalf("ls as alice: exit %d %q", code, errOut)
		}
	})

	t.Run("interrupted put", func(t *testing.T) {
		c := c.on(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		in := &cancellingReader{left: 3 << 20, cancelAt: 2 << 20, cancel: cancel}
		var out, errOut bytes.Buffer
		code := Run(ctx, []string{"dfs", "put", "--block-size", "1m", "-", "/data/cut.bin", "--namenode", c.addr, "--user", "root"}, in, &out, &errOut)
		if code != 1 || !strings.Contains(errOut.String(), "kura dfs put: Interrupted") {
			t.Fatalf("interrupted put: exit %d, stderr %q", code, errOut.String())
		}
		c.is("/data/big.bin\n/data/log.txt\n/data/sub\n", "ls", "-C", "/data")
	})

	t.Run("interrupted appendToFile", func(t *testing.T) {
		c := c.on(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// 2.5 MiB of 1 MiB blocks, cut after 2 MiB: the file is closed at
		// once (lease recovery), with what reached every datanode of the
		// pipeline (block recovery): at most what was read, all of it the
		// input's bytes.
		in := &cancellingReader{left: 5 << 19, cancelAt: 2 << 20, cancel: cancel}
		var out, errOut bytes.Buffer
		code := Run(ctx, []string{"dfs", "appendToFile", "--block-size", "1m", "-", "/data/cut.log", "--namenode", c.addr, "--user", "root"}, in, &out, &errOut)
		if code != 1 || !strings.Contains(errOut.String(), "kura dfs appendToFile:") {
			t.Fatalf("interrupted appendToFile: exit %d, stderr %q", code, errOut.String())
		}
		size, err := strconv.ParseInt(strings.TrimSpace(c.ok("stat", "%b", "/data/cut.log")), 10, 64)
		in.mu.Lock()
		read := in.read
		in.mu.Unlock()
		if err != nil || size > int64(read) {
			t.Fatalf("after the interrupted append /data/cut.log holds %d bytes (%v), want at most the %d read", size, err, read)
		}
		if data := c.ok("cat", "/data/cut.log"); int64(len(data)) != size || strings.Trim(data, "\x00") != "" {
			t.Fatalf("after the interrupted append /data/cut.log reads %d bytes, not %d zeros", len(data), size)
		}
		// Not left open: a new append goes through at once.
		c.ok("appendToFile", "-", "/data/cut.log")
		c.ok("rm", "/data/cut.log")
	})
}

// cancellingReader gives left bytes of zeros and calls cancel once
// cancelAt bytes were read, as Ctrl-C in the middle of `put -`.
type cancellingReader struct {
	mu       sync.Mutex
	left     int
	read     int
	cancelAt int
	cancel   context.CancelFunc
}

// Read gives zeros, cancelling once cancelAt bytes were read.
func (r *cancellingReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.left == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.left, 64<<10)
	clear(p[:n])
	r.left -= n
	r.read += n
	if r.read >= r.cancelAt && r.cancel != nil {
		r.cancel()
		r.cancel = nil
	}
	return n, nil
}
