package namespace

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/dal"
)

// TestResolveLocking checks that the lock a resolution takes in its read
// (lockHint) is a real row lock on PostgreSQL: a second writer waits for
// it. It also checks which inode each hint locks, and that a serial store
// (SQLite) takes none.
func TestResolveLocking(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, Config{}, func(t *testing.T, ns *Namespace) {
		ok(t, ns.Mkdirs(ctx, super, "/d", 0o777, false))
		_, err := ns.Create(ctx, alice, "/d/f", CreateOptions{ClientName: "A"})
		ok(t, err)
		ids := map[string]int64{}
		for _, path := range []string{"/d", "/d/f"} {
			st, err := ns.Stat(ctx, super, path)
			ok(t, err)
			ids[path] = st.ID
		}
		for _, c := range []struct {
			path string
			h    lockHint
			want int64
		}{
			{"/d/f", lockLast(), ids["/d/f"]},
			{"/d/new", lockNewChildParent(), ids["/d"]},
			{"/d/f", lockNewChildParent(), 0}, // cached: not a new child
			{"/d/f", lockHint{}, 0},
		} {
			want := c.want
			if ns.serial {
				want = 0
			}
			ok(t, ns.store.Tx(ctx, func(tx dal.Tx) error {
				p, err := ns.resolveLocking(ctx, tx, c.path, c.h)
				if err != nil {
					return err
				}
				if p.locked != want {
					t.Errorf("resolve %s with %+v locked inode %d, want %d", c.path, c.h, p.locked, want)
				}
				return nil
			}))
		}
		if ns.serial {
			return
		}

		// A second writer locking /d/f waits for the first's commit.
		var mu sync.Mutex
		var events []string
		record := func(e string) { mu.Lock(); events = append(events, e); mu.Unlock() }
		locked := make(chan struct{})
		second := make(chan error, 1)
		go func() {
			<-locked
			second <- ns.store.Tx(ctx, func(tx dal.Tx) error {
				if _, err := tx.GetInodeByID(ctx, ids["/d/f"], dal.LockWrite); err != nil {
					return err
				}
				record("second locked")
				return nil
			})
		}()
		ok(t, ns.store.Tx(ctx, func(tx dal.Tx) error {
			if _, err := ns.resolveLocking(ctx, tx, "/d/f", lockLast()); err != nil {
				return err
			}
			close(locked)
			time.Sleep(100 * time.Millisecond)
			record("first commits")
			return nil
		}))
		ok(t, <-second)
		if !slices.Equal(events, []string{"first commits", "second locked"}) {
			t.Errorf("events %v: the second writer did not wait for the resolution's lock", events)
		}
	})
}
