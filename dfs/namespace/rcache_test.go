package namespace

import (
	"context"
	"errors"
	"testing"

	"github.com/kura-dev/kura/dfs/hdfs"
)

func TestResolveCacheLRU(t *testing.T) {
	c := newResolveCache(2)
	c.put(1, "a", 10)
	c.put(1, "b", 11)
	if _, ok := c.get(1, "a"); !ok { // a is now the most recent
		t.Fatal("a missing")
	}
	c.put(1, "c", 12) // evicts b, the least recently used
	if _, ok := c.get(1, "b"); ok {
		t.Error("b survived eviction")
	}
	if id, ok := c.get(1, "a"); !ok || id != 10 {
		t.Errorf("a = %d, %v; want 10", id, ok)
	}
	if id, ok := c.get(1, "c"); !ok || id != 12 {
		t.Errorf("c = %d, %v; want 12", id, ok)
	}
	// The same inode under a new name replaces its old entry.
	c.put(2, "x", 10)
	if _, ok := c.get(1, "a"); ok {
		t.Error("old name of inode 10 still cached")
	}
	if c.len() != 2 {
		t.Errorf("len %d, want 2", c.len())
	}
	c.evictID(10)
	if _, ok := c.get(2, "x"); ok || c.len() != 1 {
		t.Errorf("evictID left the entry (len %d)", c.len())
	}
	c.evictKey(1, "c")
	if c.len() != 0 {
		t.Errorf("evictKey left %d entries", c.len())
	}
	var off *resolveCache // disabled
	off.put(1, "a", 1)
	if _, ok := off.get(1, "a"); ok || off.len() != 0 || newResolveCache(0) != nil {
		t.Error("disabled cache caches")
	}
}

func TestResolveCacheCounters(t *testing.T) {
	forEachBackend(t, Config{MinReplication: -1}, func(t *testing.T, ns *Namespace) {
		ctx := context.Background()
		ok(t, ns.Mkdirs(ctx, super, "/a/b/c", 0o755, true))
		mkfile(t, ns, super, "/a/b/c/f", 0o644)
		before := ns.ResolveCacheStats()
		_, err := ns.Stat(ctx, super, "/a/b/c/f")
		ok(t, err)
		after := ns.ResolveCacheStats()
		if hits := after.Hits - before.Hits; hits != 4 {
			t.Errorf("stat of a cached path: %d hits, want 4 (%+v -> %+v)", hits, before, after)
		}
		if after.Misses != before.Misses {
			t.Errorf("stat of a cached path missed: %+v -> %+v", before, after)
		}
		// A disabled cache resolves the same and counts nothing.
		off := newNS(t, ns.Store(), Config{MinReplication: -1, ResolveCacheSize: -1})
		st, err := off.Stat(ctx, super, "/a/b/c/f")
		ok(t, err)
		if st.Name != "f" || off.ResolveCacheStats() != (ResolveCacheStats{}) {
			t.Errorf("disabled cache: %+v, %+v", st, off.ResolveCacheStats())
		}
		// A small cache evicts: only the last 2 components stay.
		small := newNS(t, ns.Store(), Config{MinReplication: -1, ResolveCacheSize: 2})
		_, err = small.Stat(ctx, super, "/a/b/c/f")
		ok(t, err)
		if s := small.ResolveCacheStats(); s.Entries != 2 || s.Misses != 4 {
			t.Errorf("small cache: %+v, want 2 entries after 4 misses", s)
		}
	})
}

// TestResolveCacheStaleAcrossNamespaces changes the tree through one
// namespace (namenode) while another holds cache entries for the old tree:
// validation against the rows makes the stale entries harmless, without any
// invalidation between the two.
func TestResolveCacheStaleAcrossNamespaces(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			url := b.newURL(t)
			cfg := Config{MinReplication: -1}
			nn1 := newNS(t, openStore(t, url), cfg)
			nn2 := newNS(t, openStore(t, url), cfg)
			ok(t, nn1.Mkdirs(ctx, super, "/d/sub", 0o755, true))
			mkfile(t, nn1, super, "/d/sub/f", 0o644)
			mkfile(t, nn1, super, "/d/g", 0o644)
			stat := func(ns *Namespace, path string) (*FileStatus, error) { return ns.Stat(ctx, super, path) }
			// Warm nn2's cache.
			for _, p := range []string{"/d/sub/f", "/d/g"} {
				_, err := stat(nn2, p)
				ok(t, err)
			}
			oldF, _ := stat(nn2, "/d/sub/f")

			// Rename a directory through nn1: nn2's entry (root, "d") is stale.
			ok(t, nn1.Rename2(ctx, super, "/d", "/e", RenameOptions{}))
			if _, err := stat(nn2, "/d/sub/f"); !errors.Is(err, hdfs.ErrFileNotFound) {
				t.Fatalf("stat old path through nn2: %v, want FileNotFound", err)
			}
			st, err := stat(nn2, "/e/sub/f")
			ok(t, err)
			if st.ID != oldF.ID {
				t.Errorf("/e/sub/f is inode %d, want %d", st.ID, oldF.ID)
			}
			// Delete and recreate a name through nn1: nn2's cached id is gone.
			_, err = nn1.Delete(ctx, super, "/e/g", false)
			ok(t, err)
			if _, err := stat(nn2, "/e/g"); !errors.Is(err, hdfs.ErrFileNotFound) {
				t.Fatalf("stat deleted file through nn2: %v, want FileNotFound", err)
			}
			ok(t, nn2.Mkdirs(ctx, super, "/e/g2", 0o755, false)) // warm /e/g2 in nn2
			_, err = nn1.Delete(ctx, super, "/e/g2", false)
			ok(t, err)
			mkfile(t, nn1, super, "/e/g2", 0o600)
			st, err = stat(nn2, "/e/g2")
			ok(t, err)
			if st.IsDir || st.Permission != 0o600 {
				t.Errorf("/e/g2 through nn2: %+v, want the new file", st)
			}
			// Move a directory back under another name, and a file into a
			// name nn2 knew as something else.
			ok(t, nn1.Mkdirs(ctx, super, "/d", 0o755, false))
			ok(t, nn1.Rename2(ctx, super, "/e/sub", "/d/sub", RenameOptions{}))
			ok(t, nn1.Rename2(ctx, super, "/d/sub/f", "/e/g2", RenameOptions{Overwrite: true}))
			if _, err := stat(nn2, "/e/sub/f"); !errors.Is(err, hdfs.ErrFileNotFound) {
				t.Fatalf("stat /e/sub/f through nn2: %v, want FileNotFound", err)
			}
			st, err = stat(nn2, "/e/g2")
			ok(t, err)
			if st.ID != oldF.ID {
				t.Errorf("/e/g2 is inode %d, want %d", st.ID, oldF.ID)
			}
			if got := names(t, nn2, "/d/sub"); len(got) != 0 {
				t.Errorf("/d/sub through nn2 lists %v, want nothing", got)
			}
			// Writes through nn2 on paths it cached before the changes.
			mkfile(t, nn2, super, "/d/sub/h", 0o644)
			ok(t, nn2.Rename2(ctx, super, "/d/sub/h", "/e/h", RenameOptions{}))
			st, err = stat(nn1, "/e/h")
			ok(t, err)
			if st.Name != "h" {
				t.Errorf("/e/h through nn1: %+v", st)
			}
			if s := nn2.ResolveCacheStats(); s.Stale == 0 || s.Hits == 0 {
				t.Errorf("nn2's cache saw no stale entries or no hits: %+v", s)
			}
			checkFsck(t, nn1)
		})
	}
}
