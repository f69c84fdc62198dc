package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/dfstest"
	"github.com/kura-dev/kura/dfs/hdfs"
)

// listCounter counts the ClientProtocol List calls of a client.
type listCounter struct{ n atomic.Int64 }

func (lc *listCounter) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if strings.HasSuffix(method, "/List") {
		lc.n.Add(1)
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// since returns the calls counted since the last call to since.
func (lc *listCounter) since() int64 { return lc.n.Swap(0) }

// listCluster starts a namenode (no datanodes) and returns a root client
// whose List calls are counted.
func listCluster(t *testing.T) (*client.Client, *listCounter) {
	t.Helper()
	cl := dfstest.Start(t, dfstest.Options{})
	lc := &listCounter{}
	c, err := client.New(client.Config{
		Namenodes: []string{cl.Namenode.RPCAddr()}, User: "root",
		DialOptions: []grpc.DialOption{
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithUnaryInterceptor(lc.intercept),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, lc
}

// fill creates n entries in dir ("e0" ... : every tenth an empty file,
// the rest directories) and returns their names in byte order, which is
// not the order they were created in ("e10" < "e2").
func fill(t *testing.T, c *client.Client, dir string, n int) []string {
	t.Helper()
	ctx := context.Background()
	if err := c.Mkdirs(ctx, dir, 0, true); err != nil {
		t.Fatal(err)
	}
	names := make([]string, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := range n {
		name := fmt.Sprintf("e%d", i)
		names[i] = name
		p := dir + "/" + name
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if i%10 != 0 {
				errs <- c.Mkdirs(ctx, p, 0, false)
				return
			}
			w, err := c.Create(ctx, p, client.CreateOptions{})
			if err == nil {
				err = w.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(names)
	return names
}

// collect ranges over seq, returning the names seen and the error that
// ended it.
func collect(seq func(func(*client.FileStatus, error) bool)) ([]string, error) {
	var names []string
	for st, err := range seq {
		if err != nil {
			if st != nil {
				return names, fmt.Errorf("status %v yielded with error %w", st, err)
			}
			return names, err
		}
		names = append(names, st.Name)
	}
	return names, nil
}

// TestListIter lists a directory of 1,000 entries in pages, counting the
// List calls made.
func TestListIter(t *testing.T) {
	c, lc := listCluster(t)
	ctx := context.Background()
	const n = 1000
	want := fill(t, c, "/big", n)

	t.Run("pages", func(t *testing.T) {
		lc.since()
		got, err := collect(c.ListIter(ctx, "/big", client.WithPageSize(7)))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("ListIter gave %d names (first %q), want the %d in byte order", len(got), got[:min(5, len(got))], len(want))
		}
		if calls, pages := lc.since(), int64((n+6)/7); calls != pages {
			t.Errorf("ListIter with pages of 7 made %d List calls, want %d", calls, pages)
		}

		// The default page is the namenode's (1000): one call.
		got, err = collect(c.ListIter(ctx, "/big"))
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("ListIter with the default page: %d names, %v", len(got), err)
		}
		if calls := lc.since(); calls != 1 {
			t.Errorf("ListIter with the namenode's page made %d List calls, want 1", calls)
		}

		// List is the same listing, held.
		sts, err := c.List(ctx, "/big")
		if err != nil {
			t.Fatal(err)
		}
		var listed []string
		for _, st := range sts {
			listed = append(listed, st.Name)
			if st.IsDir == strings.HasSuffix(st.Name, "0") {
				t.Errorf("%s: IsDir %v", st.Name, st.IsDir)
			}
		}
		if !slices.Equal(listed, want) {
			t.Errorf("List gave %d names, want %d", len(listed), len(want))
		}

		// Nothing is fetched before the range; each range lists anew.
		lc.since()
		seq := c.ListIter(ctx, "/big", client.WithPageSize(400))
		if calls := lc.since(); calls != 0 {
			t.Errorf("ListIter made %d List calls before being ranged over", calls)
		}
		for range 2 {
			got, err := collect(seq)
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("ranging again: %d names, %v", len(got), err)
			}
		}
		if calls := lc.since(); calls != 6 {
			t.Errorf("two ranges with pages of 400: %d List calls, want 6", calls)
		}

		// An empty directory yields nothing, with one call.
		if err := c.Mkdirs(ctx, "/empty", 0, false); err != nil {
			t.Fatal(err)
		}
		if got, err := collect(c.ListIter(ctx, "/empty", client.WithPageSize(3))); err != nil || len(got) != 0 {
			t.Errorf("empty directory: %q, %v", got, err)
		}
		if sts, err := c.List(ctx, "/empty"); err != nil || sts != nil {
			t.Errorf("List of an empty directory: %v, %v", sts, err)
		}
	})

	t.Run("early break", func(t *testing.T) {
		for _, tc := range []struct {
			take  int
			calls int64
		}{
			{take: 3, calls: 1},  // within the first page of 10
			{take: 10, calls: 1}, // the first page exactly: the next is not asked for
			{take: 25, calls: 3},
		} {
			lc.since()
			var got []string
			for st, err := range c.ListIter(ctx, "/big", client.WithPageSize(10)) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, st.Name)
				if len(got) == tc.take {
					break
				}
			}
			if !slices.Equal(got, want[:tc.take]) {
				t.Errorf("take %d: got %q", tc.take, got)
			}
			if calls := lc.since(); calls != tc.calls {
				t.Errorf("take %d with pages of 10: %d List calls, want %d (of 100 for the whole directory)", tc.take, calls, tc.calls)
			}
		}
	})
}

func TestListIterErrors(t *testing.T) {
	c, _ := listCluster(t)
	ctx := context.Background()

	// A missing path: the namenode's exception, as List gives it.
	_, listErr := c.List(ctx, "/nope")
	names, err := collect(c.ListIter(ctx, "/nope"))
	if len(names) != 0 || !errors.Is(err, hdfs.ErrFileNotFound) {
		t.Fatalf("missing path: %q, %v", names, err)
	}
	if listErr == nil || err.Error() != listErr.Error() || !errors.Is(listErr, hdfs.ErrFileNotFound) {
		t.Errorf("ListIter's error %q, List's %v", err, listErr)
	}
	var re *hdfs.RemoteException
	if !errors.As(err, &re) || re.Message != "File does not exist: /nope" {
		t.Errorf("missing path: %#v", err)
	}

	// A file yields itself.
	w, err := c.Create(ctx, "/dir/f", client.CreateOptions{CreateParent: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var files []*client.FileStatus
	for st, err := range c.ListIter(ctx, "/dir/f", client.WithPageSize(1)) {
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, st)
	}
	if len(files) != 1 || files[0].Name != "f" || files[0].IsDir {
		t.Errorf("ListIter of a file: %+v", files)
	}

	// A user without READ_EXECUTE.
	if err := c.Mkdirs(ctx, "/private", 0o700, false); err != nil {
		t.Fatal(err)
	}
	if _, err := collect(c.As("bob").ListIter(ctx, "/private")); !errors.Is(err, hdfs.ErrAccessControl) {
		t.Errorf("listing /private as bob: %v", err)
	}

	// A cancelled context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := collect(c.ListIter(cctx, "/dir")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestListIterConcurrentChange changes the directory between two pages.
func TestListIterConcurrentChange(t *testing.T) {
	c, _ := listCluster(t)
	ctx := context.Background()
	mk := func(dir string) []string { return fill(t, c, dir, 7) } // e0 e1 ... e6, pages of 2

	// change runs after the second entry (the end of the first page).
	run := func(dir string, change func()) ([]string, error) {
		var names []string
		for st, err := range c.ListIter(ctx, dir, client.WithPageSize(2)) {
			if err != nil {
				return names, err
			}
			names = append(names, st.Name)
			if len(names) == 2 {
				change()
			}
		}
		return names, nil
	}

	t.Run("deleted", func(t *testing.T) {
		mk("/del")
		names, err := run("/del", func() {
			_, err := c.Delete(ctx, "/del", true)
			must(t, err)
		})
		if !slices.Equal(names, []string{"e0", "e1"}) || !errors.Is(err, hdfs.ErrFileNotFound) {
			t.Fatalf("got %q, %v; want e0 e1 then FileNotFoundException", names, err)
		}
		if !strings.Contains(err.Error(), `list /del: page after "e1": `) {
			t.Errorf("error without context: %v", err)
		}
	})

	t.Run("renamed away", func(t *testing.T) {
		mk("/ren")
		names, err := run("/ren", func() {
			ok, err := c.Rename(ctx, "/ren", "/ren2")
			must(t, err)
			if !ok {
				t.Fatal("rename failed")
			}
		})
		if len(names) != 2 || !errors.Is(err, hdfs.ErrFileNotFound) {
			t.Fatalf("got %q, %v; want FileNotFoundException after the first page", names, err)
		}
	})

	t.Run("replaced by a file", func(t *testing.T) {
		mk("/rep")
		names, err := run("/rep", func() {
			_, err := c.Delete(ctx, "/rep", true)
			must(t, err)
			w, err := c.Create(ctx, "/rep", client.CreateOptions{})
			must(t, err)
			must(t, w.Close())
		})
		if len(names) != 2 || !errors.Is(err, hdfs.ErrPathIsNotDirectory) {
			t.Fatalf("got %q, %v; want PathIsNotDirectoryException after the first page", names, err)
		}
	})

	t.Run("resume entry deleted", func(t *testing.T) {
		mk("/gone")
		// e1, the name the next page starts after, and e2 go; e10 comes.
		names, err := run("/gone", func() {
			for _, p := range []string{"/gone/e1", "/gone/e2"} {
				_, err := c.Delete(ctx, p, true)
				must(t, err)
			}
			must(t, c.Mkdirs(ctx, "/gone/e10", 0, false))
		})
		if err != nil || !slices.Equal(names, []string{"e0", "e1", "e10", "e3", "e4", "e5", "e6"}) {
			t.Fatalf("got %q, %v", names, err)
		}
	})

	t.Run("file named as its directory", func(t *testing.T) {
		// /same/same is a file listed alone on the last page: an entry,
		// not the path turned into a file.
		must(t, c.Mkdirs(ctx, "/same/a", 0, true))
		must(t, c.Mkdirs(ctx, "/same/b", 0, false))
		w, err := c.Create(ctx, "/same/same", client.CreateOptions{})
		must(t, err)
		must(t, w.Close())
		names, err := run("/same", func() {})
		if err != nil || !slices.Equal(names, []string{"a", "b", "same"}) {
			t.Fatalf("got %q, %v", names, err)
		}
	})
}
