package cli

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kura-dev/kura/dfs/dfstest"
)

// TestDFSMountRefuses: bad flags are usage errors (exit 2); a missing mount
// point and namenodes that do not answer fail (exit 1) naming the problem.
func TestDFSMountRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no mount point", []string{"dfs", "mount"}, 2, "expected arguments MOUNTPOINT"},
		{"bad namenode", []string{"dfs", "mount", "--namenode", "nohost", dir}, 2, `--namenode "nohost"`},
		{"negative cache", []string{"dfs", "mount", "--attr-cache", "-1s", dir}, 2, "--attr-cache -1s"},
		{"zero op timeout", []string{"dfs", "mount", "--op-timeout", "0", dir}, 2, "--op-timeout 0s"},
		{"bad block size", []string{"dfs", "mount", "--block-size", "huge", dir}, 2, `block size "huge"`},
		{"missing mount point", []string{"dfs", "mount", "--namenode", "127.0.0.1:1", filepath.Join(dir, "nope")}, 1,
			"kura: dfs mount: mount point " + filepath.Join(dir, "nope") + " does not exist"},
		{"namenode down", []string{"dfs", "mount", "--namenode", "127.0.0.1:1", dir}, 1,
			"kura: dfs mount: the namenodes do not answer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, code := kura(t, "", c.args...)
			if code != c.code || !strings.Contains(errOut, c.msg) {
				t.Fatalf("exit %d, stderr %q (stdout %q); want exit %d and %q", code, errOut, out, c.code, c.msg)
			}
		})
	}
}

// TestDFSMountServes runs `kura dfs mount` as the binary would: it mounts,
// serves, and on the signal (its context ending) completes the file still
// open for writing, unmounts and exits 0.
func TestDFSMountServes(t *testing.T) {
	cl := dfstest.Start(t, dfstest.Options{Datanodes: 1})
	c := cl.Client(t, "root")
	dir := t.TempDir()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var out, errOut syncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- Run(ctx, []string{"dfs", "mount", "--namenode", cl.Namenode.RPCAddr(), "--replication", "1",
			"--log-level", "warn", dir}, strings.NewReader(""), &out, &errOut)
	}()
	defer func() {
		// Whatever happened, leave no mount behind.
		stop()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Errorf("kura dfs mount still running 30 s after its signal")
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "serving dfs") {
		select {
		case code := <-exited:
			t.Fatalf("exited %d before serving: stdout %q stderr %q", code, out.String(), errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving after 20 s: stdout %q stderr %q", out.String(), errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if want := "on " + dir + ", each caller as its own user"; !strings.Contains(out.String(), want) {
		t.Fatalf("stdout %q, want %q", out.String(), want)
	}

	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "d", "done"), []byte("closed"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "d", "open"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("still open")); err != nil {
		t.Fatal(err)
	}

	stop() // SIGINT
	select {
	case code := <-exited:
		exited <- code // for the deferred wait
		if code != 0 {
			t.Fatalf("exit %d after the signal: stdout %q stderr %q", code, out.String(), errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("still running 30 s after the signal")
	}
	if !strings.Contains(out.String(), "dfs mount: unmounted "+dir) {
		t.Fatalf("stdout %q, want the unmount reported", out.String())
	}
	for name, want := range map[string]string{"/d/done": "closed", "/d/open": "still open"} {
		st, err := c.Stat(context.Background(), name)
		if err != nil || st.UnderConstruction {
			t.Fatalf("%s after the mount ended: %+v, %v; want a closed file", name, st, err)
		}
		r, err := c.Open(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		if err != nil || string(b) != want {
			t.Fatalf("%s: %q, %v; want %q", name, b, err, want)
		}
	}
	// The mount point is the plain directory again (lazily detached: a
	// file was open).
	var s unix.Statfs_t
	if err := unix.Statfs(dir, &s); err != nil || s.Type == 0x65735546 {
		t.Fatalf("mount point after exit: statfs type %#x, %v; want no FUSE mount", s.Type, err)
	}
}
