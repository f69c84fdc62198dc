package namespace

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/hdfs"
)

func TestIDGen(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			url := b.newURL(t)
			s1, s2 := openStore(t, url), openStore(t, url)
			gens := []*IDGen{NewIDGen(s1, dal.VarBlockID, 7), NewIDGen(s2, dal.VarBlockID, 7), NewIDGen(s1, dal.VarBlockID, 7)}
			var mu sync.Mutex
			seen := map[int64]bool{}
			var wg sync.WaitGroup
			for g := range 6 {
				wg.Go(func() {
					gen := gens[g%len(gens)]
					prev := int64(0)
					for range 200 {
						id, err := gen.Next(ctx)
						if err != nil {
							t.Error(err)
							return
						}
						if g < len(gens) && id <= prev { // the only user of gen: increasing
							t.Errorf("ids not increasing: %d after %d", id, prev)
						}
						prev = id
						mu.Lock()
						if seen[id] {
							t.Errorf("id %d handed out twice", id)
						}
						seen[id] = true
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			for _, g := range gens {
				g.Close()
			}
			if len(seen) != 1200 {
				t.Errorf("%d distinct ids, want 1200", len(seen))
			}
			if _, err := gens[0].Next(ctx); err == nil {
				// A closed generator may still hand out ids it holds; once
				// empty, it must fail rather than hang.
				for range 20 {
					if _, err = gens[0].Next(ctx); err != nil {
						break
					}
				}
				if err == nil {
					t.Error("closed generator keeps handing out ids")
				}
			}
		})
	}
}

// TestConcurrency runs two namespaces (two namenodes) on one database with
// goroutines creating, renaming and deleting in the same few directories,
// and moving directories around each other; then checks the metadata with
// Fsck and the survivors against what the operations imply.
func TestConcurrency(t *testing.T) {
	const workers = 8
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			url := b.newURL(t)
			cfg := Config{MinReplication: -1, IDBatch: 20}
			nss := []*Namespace{newNS(t, openStore(t, url), cfg), newNS(t, openStore(t, url), cfg)}
			for i := range 3 {
				ok(t, nss[0].Mkdirs(ctx, super, fmt.Sprintf("/s/d%d", i), 0o777, true))
			}
			for i := range 4 {
				ok(t, nss[1].Mkdirs(ctx, super, fmt.Sprintf("/m/x%d", i), 0o777, true))
			}
			for g := range workers {
				ok(t, nss[g%2].Mkdirs(ctx, super, fmt.Sprintf("/own/g%d", g), 0o777, true))
			}

			duration := 2 * time.Second
			deadline := time.Now().Add(duration)
			var counts [6]atomic.Int64 // successes per op kind
			var retriable atomic.Int64
			models := make([]map[string]bool, workers)
			var wg sync.WaitGroup
			for g := range workers {
				models[g] = map[string]bool{}
				wg.Go(func() {
					ns := nss[g%2]
					rng := rand.New(rand.NewPCG(uint64(g), 42))
					client := fmt.Sprintf("client-%d", g)
					own := models[g]
					bad := 0
					fail := func(format string, args ...any) {
						if bad++; bad <= 5 {
							t.Errorf("worker %d: "+format, append([]any{g}, args...)...)
						}
					}
					// allowed reports whether err is nil or of one of the
					// classes; a RetriableException (contention outliving
					// the retries) is counted, not failed.
					allowed := func(err error, cs ...*hdfs.Class) bool {
						if err == nil {
							return true
						}
						if errors.Is(err, hdfs.ErrRetriable) {
							retriable.Add(1)
							return true
						}
						for _, c := range cs {
							if errors.Is(err, c) {
								return true
							}
						}
						return false
					}
					shared := func() string { return fmt.Sprintf("/s/d%d/n%d", rng.IntN(3), rng.IntN(8)) }
					for time.Now().Before(deadline) {
						switch k := rng.IntN(12); {
						case k < 3: // shared create + complete
							p := shared()
							_, err := ns.Create(ctx, super, p, CreateOptions{Perm: 0o644, ClientName: client, Overwrite: rng.IntN(2) == 0})
							if !allowed(err, hdfs.ErrFileAlreadyExists, hdfs.ErrAlreadyBeingCreated) {
								fail("create %s: %v", p, err)
							}
							if err != nil {
								continue
							}
							counts[0].Add(1)
							_, err = ns.Complete(ctx, p, client, 0)
							// Renamed, deleted or overwritten meanwhile.
							if !allowed(err, hdfs.ErrFileNotFound, hdfs.ErrLeaseExpired) {
								fail("complete %s: %v", p, err)
							}
						case k < 5: // shared rename
							src, dst := shared(), shared()
							err := ns.Rename2(ctx, super, src, dst, RenameOptions{Overwrite: rng.IntN(2) == 0})
							if !allowed(err, hdfs.ErrFileNotFound, hdfs.ErrFileAlreadyExists) {
								fail("rename %s %s: %v", src, dst, err)
							}
							if err == nil {
								counts[1].Add(1)
							}
						case k < 6: // shared delete
							p := shared()
							del, err := ns.Delete(ctx, super, p, false)
							if !allowed(err) {
								fail("delete %s: %v", p, err)
							}
							if del {
								counts[2].Add(1)
							}
						case k < 7: // move a directory under another (cycles refused)
							i, j := rng.IntN(4), rng.IntN(4)
							src, dst := findDir(ctx, ns, fmt.Sprintf("x%d", i)), findDir(ctx, ns, fmt.Sprintf("x%d", j))
							if src == "" || dst == "" || i == j {
								continue
							}
							if rng.IntN(3) == 0 {
								dst = "/m" // back to the top
							}
							err := ns.Rename2(ctx, super, src, hdfs.Join(dst, fmt.Sprintf("x%d", i)), RenameOptions{})
							if !allowed(err, hdfs.ErrFileNotFound, hdfs.ErrFileAlreadyExists, hdfs.ErrIO) {
								fail("move %s under %s: %v", src, dst, err)
							}
							if err == nil {
								counts[3].Add(1)
							}
						case k < 9: // files in subdirectories vs. recursive deletes of them
							dir := fmt.Sprintf("/s/d%d/t", rng.IntN(3))
							if rng.IntN(3) > 0 {
								p := fmt.Sprintf("%s/u%d/n%d", dir, rng.IntN(2), rng.IntN(4))
								_, err := ns.Create(ctx, super, p, CreateOptions{Perm: 0o644, ClientName: client, CreateParent: true})
								if !allowed(err, hdfs.ErrFileAlreadyExists, hdfs.ErrAlreadyBeingCreated) {
									fail("create %s: %v", p, err)
								}
								if err == nil {
									_, err = ns.Complete(ctx, p, client, 0)
									if !allowed(err, hdfs.ErrFileNotFound, hdfs.ErrLeaseExpired) {
										fail("complete %s: %v", p, err)
									}
								}
							} else {
								_, err := ns.Delete(ctx, super, dir, true)
								if !allowed(err) {
									fail("delete -r %s: %v", dir, err)
								}
								if err == nil {
									counts[2].Add(1)
								}
							}
						default: // own files: the outcome is known
							dir := fmt.Sprintf("/own/g%d", g)
							a, b := fmt.Sprintf("o%d", rng.IntN(5)), fmt.Sprintf("o%d", rng.IntN(5))
							switch rng.IntN(3) {
							case 0:
								_, err := ns.Create(ctx, super, dir+"/"+a, CreateOptions{Perm: 0o644, ClientName: client})
								if own[a] {
									if !errors.Is(err, hdfs.ErrFileAlreadyExists) {
										fail("create of existing %s: %v", a, err)
									}
									continue
								}
								if err != nil {
									fail("create %s: %v", a, err)
									continue
								}
								own[a] = true
								if done, err := ns.Complete(ctx, dir+"/"+a, client, 0); err != nil || !done {
									fail("complete %s: %v %v", a, done, err)
								}
							case 1:
								err := ns.Rename2(ctx, super, dir+"/"+a, dir+"/"+b, RenameOptions{})
								switch {
								case a == b && own[a]:
									if !errors.Is(err, hdfs.ErrFileAlreadyExists) {
										fail("rename %s onto itself: %v", a, err)
									}
								case !own[a]:
									if !errors.Is(err, hdfs.ErrFileNotFound) {
										fail("rename of missing %s: %v", a, err)
									}
								case own[b]:
									if !errors.Is(err, hdfs.ErrFileAlreadyExists) {
										fail("rename %s onto existing %s: %v", a, b, err)
									}
								default:
									if err != nil {
										fail("rename %s %s: %v", a, b, err)
									}
									own[a], own[b] = false, true
									counts[4].Add(1)
								}
							case 2:
								del, err := ns.Delete(ctx, super, dir+"/"+a, false)
								if err != nil || del != own[a] {
									fail("delete %s: %v %v, want %v", a, del, err, own[a])
								}
								own[a] = false
								counts[5].Add(1)
							}
						}
					}
				})
			}
			wg.Wait()
			t.Logf("%s: creates %d, renames %d, deletes %d, directory moves %d, own renames %d, own deletes %d, retriable %d",
				b.name, counts[0].Load(), counts[1].Load(), counts[2].Load(), counts[3].Load(), counts[4].Load(), counts[5].Load(), retriable.Load())

			r := checkFsck(t, nss[0])
			t.Logf("fsck: %d dirs, %d files, %d open", r.Dirs, r.Files, r.OpenFiles)
			// Every directory: no duplicate names, every entry stat-able.
			for _, d := range []string{"/s/d0", "/s/d1", "/s/d2"} {
				l, err := nss[1].List(ctx, super, d, "", 0)
				ok(t, err)
				var ns []string
				for _, e := range l.Entries {
					ns = append(ns, e.Name)
					if _, err := nss[0].Stat(ctx, super, hdfs.Join(d, e.Name)); err != nil {
						t.Errorf("listed %s/%s but: %v", d, e.Name, err)
					}
				}
				if !slices.IsSorted(ns) || len(slices.Compact(slices.Clone(ns))) != len(ns) {
					t.Errorf("%s: names %v not unique and sorted", d, ns)
				}
				// The stored count (Fsck checked every directory's too).
				st, err := nss[0].Stat(ctx, super, d)
				ok(t, err)
				if st.ChildrenNum != int64(len(ns)) {
					t.Errorf("%s: childrenNum %d, want %d", d, st.ChildrenNum, len(ns))
				}
			}
			// The x directories: all four still there, exactly once.
			for i := range 4 {
				if findDir(ctx, nss[0], fmt.Sprintf("x%d", i)) == "" {
					t.Errorf("x%d is lost", i)
				}
			}
			// Own directories hold exactly what their worker's operations imply.
			for g := range workers {
				var want []string
				for name, exists := range models[g] {
					if exists {
						want = append(want, name)
					}
				}
				slices.Sort(want)
				got := names(t, nss[g%2], fmt.Sprintf("/own/g%d", g))
				if !slices.Equal(got, want) {
					t.Errorf("/own/g%d holds %v, want %v", g, got, want)
				}
			}
		})
	}
}

// findDir returns the path of the directory named name under /m (at any
// depth), "" when not found (it may be moving).
func findDir(ctx context.Context, ns *Namespace, name string) string {
	queue := []string{"/m"}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		l, err := ns.List(ctx, super, d, "", 0)
		if err != nil {
			continue
		}
		for _, e := range l.Entries {
			p := hdfs.Join(d, e.Name)
			if e.Name == name {
				return p
			}
			if e.IsDir {
				queue = append(queue, p)
			}
		}
	}
	return ""
}
