package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// helpers

// testClock is an Options.Clock the test advances by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openT opens a store in dir and closes it when the test ends. Unless the
// test sets one, the reap loop runs hourly so it never races the test.
// openT opens a store for a test, with the change log on (most tests read
// the feed; those about the log being off open their store with Open).
func openT(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	opts.ChangeLog = true
	if opts.ReapInterval == 0 {
		opts.ReapInterval = time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newStore(t testing.TB, opts Options) *Store {
	t.Helper()
	return openT(t, t.TempDir(), opts)
}

func closeT(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func b(s string) []byte { return []byte(s) }

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}

func wantGet(t testing.TB, s *Store, key, want string) {
	t.Helper()
	v, err := s.Get(t.Context(), b(key))
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if string(v) != want {
		t.Fatalf("Get(%q) = %q, want %q", key, v, want)
	}
}

func wantMissing(t testing.TB, s *Store, key string) {
	t.Helper()
	v, err := s.Get(t.Context(), b(key))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(%q) = %q, %v; want ErrNotFound", key, v, err)
	}
}

func strs(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, x := range bs {
		out[i] = string(x)
	}
	return out
}

func wantSubkeys(t testing.TB, s *Store, parent string, want ...string) {
	t.Helper()
	got, err := s.Subkeys(t.Context(), b(parent))
	must(t, err)
	if want == nil {
		want = []string{}
	}
	if g := strs(got); !slices.Equal(g, want) {
		t.Fatalf("Subkeys(%q) = %q, want %q", parent, g, want)
	}
}

// deadline returns a context that only guards against a hang.
func deadline(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// readChanges reads every change after `after` up to the store's LastSeq.
func readChanges(t testing.TB, s *Store, after uint64) []Change {
	t.Helper()
	ctx := deadline(t)
	last := s.LastSeq()
	var out []Change
	for after < last {
		c, err := s.NextChange(ctx, after)
		if err != nil {
			t.Fatalf("NextChange(%d): %v", after, err)
		}
		if c.Seq <= after {
			t.Fatalf("NextChange(%d) returned seq %d", after, c.Seq)
		}
		out = append(out, c)
		after = c.Seq
	}
	return out
}

// ---------------------------------------------------------------------------
// keys and values

func TestGetSetDelete(t *testing.T) {
	s := newStore(t, Options{})
	ctx := t.Context()
	tests := []struct {
		name  string
		key   []byte
		value []byte
	}{
		{"simple", b("k"), b("v")},
		{"empty value", b("empty"), []byte{}},
		{"binary key", []byte{0, 0xff, 1, 'k'}, []byte{0, 1, 2, 0xff}},
		{"all 0xff key", []byte{0xff, 0xff}, b("ff")},
		{"large value", b("large"), bytes.Repeat(b("x"), 1<<20)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Get(ctx, tc.key); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get before Set: %v, want ErrNotFound", err)
			}
			must(t, s.Set(ctx, tc.key, tc.value, 0))
			v, err := s.Get(ctx, tc.key)
			must(t, err)
			if !bytes.Equal(v, tc.value) {
				t.Fatalf("Get = %q, want %q", v, tc.value)
			}
			// Overwrite.
			must(t, s.Set(ctx, tc.key, append(tc.value, '2'), 0))
			v, err = s.Get(ctx, tc.key)
			must(t, err)
			if !bytes.Equal(v, append(tc.value, '2')) {
				t.Fatalf("Get after overwrite = %q", v)
			}
			must(t, s.Delete(ctx, tc.key))
			if _, err := s.Get(ctx, tc.key); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
			}
			wantErr(t, s.Delete(ctx, tc.key), ErrNotFound)
			if !IsNotFound(s.Delete(ctx, tc.key)) {
				t.Fatal("IsNotFound(Delete of a missing key) = false")
			}
		})
	}
	t.Run("returned value is a copy", func(t *testing.T) {
		must(t, s.Set(ctx, b("copy"), b("abc"), 0))
		v, err := s.Get(ctx, b("copy"))
		must(t, err)
		v[0] = 'X'
		wantGet(t, s, "copy", "abc")
	})
	t.Run("set does not alias caller's slice", func(t *testing.T) {
		val := b("before")
		must(t, s.Set(ctx, b("alias"), val, 0))
		copy(val, "AFTER!")
		wantGet(t, s, "alias", "before")
	})
}

func TestScan(t *testing.T) {
	clock := newTestClock()
	s := newStore(t, Options{Clock: clock.Now})
	ctx := t.Context()
	keys := []string{"a1", "a2", "a3", "a4", "a5", "a6", "a7", "ab", "b1", "c", "\xff", "\xff\xff"}
	// Write out of order: Scan must sort.
	for _, i := range []int{5, 0, 11, 3, 7, 1, 9, 2, 10, 4, 8, 6} {
		must(t, s.Set(ctx, b(keys[i]), b("v-"+keys[i]), -1))
	}
	scanAll := func(t *testing.T, prefix string, limit int) (pages [][]string, mores []bool) {
		t.Helper()
		var after []byte
		for n := 0; ; n++ {
			if n > 100 {
				t.Fatal("scan does not end")
			}
			kvs, more, err := s.Scan(ctx, b(prefix), after, limit)
			must(t, err)
			if len(kvs) > limit {
				t.Fatalf("page of %d > limit %d", len(kvs), limit)
			}
			var page []string
			for _, kv := range kvs {
				if string(kv.Value) != "v-"+string(kv.Key) {
					t.Fatalf("Scan: %q = %q", kv.Key, kv.Value)
				}
				if kv.Attrs.Size != len(kv.Value) || kv.Attrs.Type != TypeBytes {
					t.Fatalf("Scan: %q attrs %+v", kv.Key, kv.Attrs)
				}
				page = append(page, string(kv.Key))
			}
			pages = append(pages, page)
			mores = append(mores, more)
			if !more {
				return
			}
			if len(kvs) == 0 {
				t.Fatal("more=true with an empty page")
			}
			after = kvs[len(kvs)-1].Key
		}
	}
	tests := []struct {
		name      string
		prefix    string
		limit     int
		wantPages [][]string
	}{
		{"prefix a all", "a", 100, [][]string{{"a1", "a2", "a3", "a4", "a5", "a6", "a7", "ab"}}},
		{"prefix a pages of 3", "a", 3, [][]string{{"a1", "a2", "a3"}, {"a4", "a5", "a6"}, {"a7", "ab"}}},
		// An exact multiple: the last full page says more=false.
		{"prefix a pages of 4", "a", 4, [][]string{{"a1", "a2", "a3", "a4"}, {"a5", "a6", "a7", "ab"}}},
		{"prefix a pages of 8", "a", 8, [][]string{{"a1", "a2", "a3", "a4", "a5", "a6", "a7", "ab"}}},
		{"prefix a pages of 1", "a", 1, [][]string{{"a1"}, {"a2"}, {"a3"}, {"a4"}, {"a5"}, {"a6"}, {"a7"}, {"ab"}}},
		{"prefix b", "b", 10, [][]string{{"b1"}}},
		{"prefix none", "zz", 10, [][]string{nil}},
		{"prefix 0xff", "\xff", 10, [][]string{{"\xff", "\xff\xff"}}},
		{"empty prefix", "", 5, [][]string{{"a1", "a2", "a3", "a4", "a5"}, {"a6", "a7", "ab", "b1", "c"}, {"\xff", "\xff\xff"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pages, mores := scanAll(t, tc.prefix, tc.limit)
			if !reflect.DeepEqual(pages, tc.wantPages) {
				t.Fatalf("pages = %q, want %q", pages, tc.wantPages)
			}
			for i, m := range mores {
				if m != (i < len(mores)-1) {
					t.Fatalf("more flags = %v", mores)
				}
			}
		})
	}
	t.Run("expired keys are skipped", func(t *testing.T) {
		must(t, s.Set(ctx, b("e1"), b("v-e1"), time.Second))
		must(t, s.Set(ctx, b("e2"), b("v-e2"), -1))
		must(t, s.Set(ctx, b("e3"), b("v-e3"), time.Second))
		must(t, s.Set(ctx, b("e4"), b("v-e4"), time.Second))
		pages, _ := scanAll(t, "e", 10)
		if !reflect.DeepEqual(pages, [][]string{{"e1", "e2", "e3", "e4"}}) {
			t.Fatalf("before expiry: %q", pages)
		}
		clock.Advance(time.Second)
		pages, _ = scanAll(t, "e", 10)
		if !reflect.DeepEqual(pages, [][]string{{"e2"}}) {
			t.Fatalf("after expiry: %q", pages)
		}
		// Only expired keys follow the page: more must be false.
		kvs, more, err := s.Scan(ctx, b("e"), nil, 1)
		must(t, err)
		if len(kvs) != 1 || string(kvs[0].Key) != "e2" || more {
			t.Fatalf("Scan(e, limit 1) = %d items, more=%v; want [e2], false", len(kvs), more)
		}
	})
	t.Run("bad arguments", func(t *testing.T) {
		_, _, err := s.Scan(ctx, b("a"), nil, 0)
		wantErr(t, err, ErrInvalid)
		_, _, err = s.Scan(ctx, b("a"), nil, -1)
		wantErr(t, err, ErrInvalid)
		_, _, err = s.Scan(ctx, b("a"), b("b1"), 10)
		wantErr(t, err, ErrInvalid)
	})
	t.Run("after a key that does not exist", func(t *testing.T) {
		kvs, _, err := s.Scan(ctx, b("a"), b("a35"), 2)
		must(t, err)
		if got := []string{string(kvs[0].Key), string(kvs[1].Key)}; !slices.Equal(got, []string{"a4", "a5"}) {
			t.Fatalf("got %q", got)
		}
	})
}

func TestBatchApply(t *testing.T) {
	ctx := t.Context()
	t.Run("all applied", func(t *testing.T) {
		s := newStore(t, Options{})
		must(t, s.Set(ctx, b("old"), b("x"), 0))
		must(t, s.SetSubkey(ctx, b("old"), b("child"), b("c"), 0))
		var bt Batch
		bt.Set(b("k1"), b("v1"), 0)
		bt.Set(b("k2"), b("v2"), 0)
		bt.Delete(b("old"))
		bt.Delete(b("never-existed")) // not an error in a batch
		bt.Set(b("k1"), b("v1b"), 0)  // later op wins
		if bt.Len() != 5 {
			t.Fatalf("Len = %d", bt.Len())
		}
		must(t, s.Apply(ctx, &bt))
		wantGet(t, s, "k1", "v1b")
		wantGet(t, s, "k2", "v2")
		wantMissing(t, s, "old")
		wantGet(t, s, "child", "c") // a batch delete is a plain Delete
		wantSubkeys(t, s, "old")
	})
	t.Run("batch copies its arguments", func(t *testing.T) {
		s := newStore(t, Options{})
		var bt Batch
		k, v := b("key"), b("val")
		bt.Set(k, v, 0)
		copy(k, "KEY")
		copy(v, "VAL")
		must(t, s.Apply(ctx, &bt))
		wantGet(t, s, "key", "val")
	})
	t.Run("empty batch", func(t *testing.T) {
		s := newStore(t, Options{})
		must(t, s.Apply(ctx, &Batch{}))
	})
	invalid := []struct {
		name string
		add  func(*Batch)
	}{
		{"empty key", func(bt *Batch) { bt.Set(nil, b("v"), 0) }},
		{"empty delete key", func(bt *Batch) { bt.Delete(nil) }},
		{"key too long", func(bt *Batch) { bt.Set(bytes.Repeat(b("k"), 33), b("v"), 0) }},
		{"value too long", func(bt *Batch) { bt.Set(b("big"), bytes.Repeat(b("v"), 65), 0) }},
	}
	for _, tc := range invalid {
		t.Run("invalid op applies nothing/"+tc.name, func(t *testing.T) {
			s := newStore(t, Options{MaxKeySize: 32, MaxValueSize: 64})
			must(t, s.Set(ctx, b("keep"), b("original"), 0))
			last := s.LastSeq()
			var bt Batch
			bt.Set(b("a"), b("1"), 0)
			bt.Delete(b("keep"))
			tc.add(&bt)
			bt.Set(b("z"), b("2"), 0)
			wantErr(t, s.Apply(ctx, &bt), ErrInvalid)
			wantMissing(t, s, "a")
			wantMissing(t, s, "z")
			wantGet(t, s, "keep", "original")
			if s.LastSeq() != last {
				t.Fatalf("a failed batch wrote change records: LastSeq %d -> %d", last, s.LastSeq())
			}
		})
	}
}

// ---------------------------------------------------------------------------
// subkeys

func TestSubkeys(t *testing.T) {
	ctx := t.Context()
	t.Run("set list delete", func(t *testing.T) {
		s := newStore(t, Options{})
		must(t, s.Set(ctx, b("p"), b("parent"), 0))
		must(t, s.SetSubkey(ctx, b("p"), b("c2"), b("v2"), 0))
		must(t, s.SetSubkey(ctx, b("p"), b("c1"), b("v1"), 0))
		must(t, s.SetSubkey(ctx, b("p"), b("c3"), b("v3"), 0))
		must(t, s.SetSubkey(ctx, b("p"), b("c1"), b("v1b"), 0)) // again: listed once, value updated
		wantSubkeys(t, s, "p", "c1", "c2", "c3")
		wantGet(t, s, "c1", "v1b")
		wantGet(t, s, "c2", "v2")
		wantGet(t, s, "p", "parent")
		wantSubkeys(t, s, "c1")
		wantSubkeys(t, s, "nobody")

		must(t, s.DeleteSubkey(ctx, b("p"), b("c2"), false))
		wantSubkeys(t, s, "p", "c1", "c3")
		wantMissing(t, s, "c2")
		wantErr(t, s.DeleteSubkey(ctx, b("p"), b("c2"), false), ErrNotFound)
		wantErr(t, s.DeleteSubkey(ctx, b("p"), b("unlisted"), false), ErrNotFound)
		// A key that exists but is not listed under p is not p's subkey.
		must(t, s.Set(ctx, b("other"), b("o"), 0))
		wantErr(t, s.DeleteSubkey(ctx, b("p"), b("other"), true), ErrNotFound)
		wantGet(t, s, "other", "o")
	})
	t.Run("parent without a value", func(t *testing.T) {
		s := newStore(t, Options{})
		must(t, s.SetSubkey(ctx, b("p"), b("c"), b("v"), 0))
		wantMissing(t, s, "p")
		wantSubkeys(t, s, "p", "c")
	})
	t.Run("prefix parents are distinct", func(t *testing.T) {
		s := newStore(t, Options{})
		must(t, s.Set(ctx, b("a"), b("1"), 0))
		must(t, s.Set(ctx, b("ab"), b("2"), 0))
		must(t, s.SetSubkey(ctx, b("a"), b("x"), b("x"), 0))
		must(t, s.SetSubkey(ctx, b("ab"), b("y"), b("y"), 0))
		wantSubkeys(t, s, "a", "x")
		wantSubkeys(t, s, "ab", "y")
		must(t, s.Delete(ctx, b("a")))
		wantSubkeys(t, s, "a")
		wantSubkeys(t, s, "ab", "y")
	})
	t.Run("delete leaves subkeys alive but unlisted", func(t *testing.T) {
		s := newStore(t, Options{})
		must(t, s.Set(ctx, b("p"), b("parent"), 0))
		must(t, s.SetSubkey(ctx, b("p"), b("c1"), b("v1"), 0))
		must(t, s.SetSubkey(ctx, b("c1"), b("g1"), b("w1"), 0))
		must(t, s.Delete(ctx, b("p")))
		wantMissing(t, s, "p")
		wantGet(t, s, "c1", "v1")
		wantGet(t, s, "g1", "w1")
		wantSubkeys(t, s, "c1", "g1")
		// Recreating p does not bring the old list back.
		must(t, s.Set(ctx, b("p"), b("again"), 0))
		wantSubkeys(t, s, "p")
	})
	t.Run("delete all removes recursively", func(t *testing.T) {
		s := newStore(t, Options{})
		must(t, s.Set(ctx, b("p"), b("parent"), 0))
		must(t, s.Set(ctx, b("bystander"), b("b"), 0))
		must(t, s.SetSubkey(ctx, b("p"), b("c1"), b("v1"), 0))
		must(t, s.SetSubkey(ctx, b("p"), b("c2"), b("v2"), 0))
		must(t, s.SetSubkey(ctx, b("c1"), b("g1"), b("w1"), 0))
		must(t, s.SetSubkey(ctx, b("g1"), b("gg1"), b("x1"), 0))
		must(t, s.SetSubkey(ctx, b("bystander"), b("bc"), b("y"), 0))
		must(t, s.DeleteAll(ctx, b("p")))
		for _, k := range []string{"p", "c1", "c2", "g1", "gg1"} {
			wantMissing(t, s, k)
			wantSubkeys(t, s, k)
		}
		wantGet(t, s, "bystander", "b")
		wantGet(t, s, "bc", "y")
		wantSubkeys(t, s, "bystander", "bc")
		wantErr(t, s.DeleteAll(ctx, b("p")), ErrNotFound)
	})
	t.Run("delete subkey all removes recursively", func(t *testing.T) {
		s := newStore(t, Options{})
		must(t, s.SetSubkey(ctx, b("p"), b("c1"), b("v1"), 0))
		must(t, s.SetSubkey(ctx, b("p"), b("c2"), b("v2"), 0))
		must(t, s.SetSubkey(ctx, b("c1"), b("g1"), b("w1"), 0))
		must(t, s.SetSubkey(ctx, b("c2"), b("g2"), b("w2"), 0))
		must(t, s.DeleteSubkey(ctx, b("p"), b("c1"), true))
		wantMissing(t, s, "c1")
		wantMissing(t, s, "g1")
		wantSubkeys(t, s, "p", "c2")
		// Without all, the subkey's own subkeys stay alive, unlisted.
		must(t, s.DeleteSubkey(ctx, b("p"), b("c2"), false))
		wantMissing(t, s, "c2")
		wantGet(t, s, "g2", "w2")
		wantSubkeys(t, s, "c2")
		wantSubkeys(t, s, "p")
	})
	cycles := []struct {
		name  string
		edges [][2]string
		keys  []string
	}{
		{"self loop a->a", [][2]string{{"a", "a"}}, []string{"a"}},
		{"a->b->a", [][2]string{{"a", "b"}, {"b", "a"}}, []string{"a", "b"}},
		{"a->b->a and a->a", [][2]string{{"a", "b"}, {"b", "a"}, {"a", "a"}}, []string{"a", "b"}},
		{"a->b->c->a, b->b, c->b", [][2]string{{"a", "b"}, {"b", "c"}, {"c", "a"}, {"b", "b"}, {"c", "b"}}, []string{"a", "b", "c"}},
		{"diamond", [][2]string{{"a", "b"}, {"a", "c"}, {"b", "d"}, {"c", "d"}}, []string{"a", "b", "c", "d"}},
	}
	for _, tc := range cycles {
		t.Run("cycle/"+tc.name, func(t *testing.T) {
			s := newStore(t, Options{})
			for _, k := range tc.keys {
				must(t, s.Set(ctx, b(k), b("v"+k), 0))
			}
			for _, e := range tc.edges {
				must(t, s.SetSubkey(ctx, b(e[0]), b(e[1]), b("v"+e[1]), 0))
			}
			must(t, s.DeleteAll(deadline(t), b("a")))
			for _, k := range tc.keys {
				wantMissing(t, s, k)
				wantSubkeys(t, s, k)
			}
		})
	}
	t.Run("skips subkeys deleted or expired on their own", func(t *testing.T) {
		clock := newTestClock()
		s := newStore(t, Options{Clock: clock.Now})
		must(t, s.SetSubkey(ctx, b("p"), b("c1"), b("v1"), 0))
		must(t, s.SetSubkey(ctx, b("p"), b("c2"), b("v2"), 0))
		must(t, s.SetSubkey(ctx, b("p"), b("c3"), b("v3"), time.Minute))
		must(t, s.SetSubkey(ctx, b("p"), b("c4"), b("v4"), 0))
		must(t, s.Delete(ctx, b("c2")))
		wantSubkeys(t, s, "p", "c1", "c3", "c4")
		clock.Advance(time.Minute)
		wantSubkeys(t, s, "p", "c1", "c4")
		// A subkey removed by DeleteAll on its own is skipped as well.
		must(t, s.DeleteAll(ctx, b("c1")))
		wantSubkeys(t, s, "p", "c4")
	})
}

// ---------------------------------------------------------------------------
// queues

func popAll(t testing.TB, s *Store, q string, end End) []string {
	t.Helper()
	var out []string
	for {
		it, err := s.Pop(t.Context(), b(q), end)
		if errors.Is(err, ErrNotFound) {
			return out
		}
		must(t, err)
		if it.Key != nil {
			t.Fatalf("plain queue item with key %q", it.Key)
		}
		out = append(out, string(it.Value))
	}
}

func TestQueues(t *testing.T) {
	ctx := t.Context()
	five := []string{"1", "2", "3", "4", "5"}
	pushAll := func(t *testing.T, s *Store, q string, vals []string) {
		t.Helper()
		for _, v := range vals {
			must(t, s.Push(ctx, b(q), b(v)))
		}
	}
	orders := []struct {
		name string
		end  End
		want []string
	}{
		{"FIFO front", Front, five},
		{"LIFO back", Back, []string{"5", "4", "3", "2", "1"}},
	}
	for _, tc := range orders {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, Options{})
			pushAll(t, s, "q", five)
			if got := popAll(t, s, "q", tc.end); !slices.Equal(got, tc.want) {
				t.Fatalf("popped %q, want %q", got, tc.want)
			}
			_, err := s.Pop(ctx, b("q"), tc.end)
			wantErr(t, err, ErrNotFound)
			n, kind, err := s.QueueLen(ctx, b("q"))
			must(t, err)
			if n != 0 || kind != 0 {
				t.Fatalf("QueueLen after draining = %d %v", n, kind)
			}
		})
	}
	t.Run("interleaved push and pop", func(t *testing.T) {
		s := newStore(t, Options{})
		pushAll(t, s, "q", []string{"a", "b"})
		it, err := s.Pop(ctx, b("q"), Front)
		must(t, err)
		pushAll(t, s, "q", []string{"c"})
		got := []string{string(it.Value)}
		got = append(got, popAll(t, s, "q", Front)...)
		if !slices.Equal(got, []string{"a", "b", "c"}) {
			t.Fatalf("got %q", got)
		}
		pushAll(t, s, "q", []string{"d", "e"}) // a drained queue starts over
		if got := popAll(t, s, "q", Back); !slices.Equal(got, []string{"e", "d"}) {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("queues are independent", func(t *testing.T) {
		s := newStore(t, Options{})
		pushAll(t, s, "q", []string{"q1", "q2"})
		pushAll(t, s, "qq", []string{"qq1"})
		must(t, s.Set(ctx, b("q"), b("a plain key named like the queue"), 0))
		if got := popAll(t, s, "qq", Front); !slices.Equal(got, []string{"qq1"}) {
			t.Fatalf("got %q", got)
		}
		if got := popAll(t, s, "q", Front); !slices.Equal(got, []string{"q1", "q2"}) {
			t.Fatalf("got %q", got)
		}
		wantGet(t, s, "q", "a plain key named like the queue")
	})
	t.Run("peek and len", func(t *testing.T) {
		s := newStore(t, Options{})
		_, err := s.Peek(ctx, b("q"), Front)
		wantErr(t, err, ErrNotFound)
		pushAll(t, s, "q", five)
		for range 3 {
			it, err := s.Peek(ctx, b("q"), Front)
			must(t, err)
			if string(it.Value) != "1" {
				t.Fatalf("Peek(Front) = %q", it.Value)
			}
			it, err = s.Peek(ctx, b("q"), Back)
			must(t, err)
			if string(it.Value) != "5" {
				t.Fatalf("Peek(Back) = %q", it.Value)
			}
		}
		n, kind, err := s.QueueLen(ctx, b("q"))
		must(t, err)
		if n != 5 || kind != PlainQueue {
			t.Fatalf("QueueLen = %d %v, want 5 plain", n, kind)
		}
		if kind.String() != "plain" || KeyedQueue.String() != "keyed" {
			t.Fatalf("kind names %q %q", kind, KeyedQueue)
		}
	})
	t.Run("remove items", func(t *testing.T) {
		s := newStore(t, Options{})
		pushAll(t, s, "q", five)
		n, err := s.RemoveItems(ctx, b("q"), Front, 2)
		must(t, err)
		if n != 2 {
			t.Fatalf("RemoveItems(2) = %d", n)
		}
		n, err = s.RemoveItems(ctx, b("q"), Back, 1)
		must(t, err)
		if n != 1 {
			t.Fatalf("RemoveItems(Back, 1) = %d", n)
		}
		if l, _, _ := s.QueueLen(ctx, b("q")); l != 2 {
			t.Fatalf("QueueLen = %d, want 2", l)
		}
		it, err := s.Peek(ctx, b("q"), Front)
		must(t, err)
		if string(it.Value) != "3" {
			t.Fatalf("front after remove = %q", it.Value)
		}
		n, err = s.RemoveItems(ctx, b("q"), Front, 10)
		must(t, err)
		if n != 2 {
			t.Fatalf("RemoveItems(10) of 2 = %d", n)
		}
		n, err = s.RemoveItems(ctx, b("q"), Front, 1)
		must(t, err)
		if n != 0 {
			t.Fatalf("RemoveItems on empty = %d", n)
		}
		_, err = s.RemoveItems(ctx, b("q"), Front, 0)
		wantErr(t, err, ErrInvalid)
		_, err = s.RemoveItems(ctx, b("q"), Front, -1)
		wantErr(t, err, ErrInvalid)
	})
	t.Run("keyed", func(t *testing.T) {
		s := newStore(t, Options{})
		must(t, s.PushKeyed(ctx, b("kq"), b("k1"), b("v1")))
		must(t, s.PushKeyed(ctx, b("kq"), b("k2"), b("v2")))
		must(t, s.PushKeyed(ctx, b("kq"), b("k3"), b("v3")))
		wantGet(t, s, "k1", "v1") // push sets the key
		n, kind, err := s.QueueLen(ctx, b("kq"))
		must(t, err)
		if n != 3 || kind != KeyedQueue {
			t.Fatalf("QueueLen = %d %v", n, kind)
		}
		it, err := s.Peek(ctx, b("kq"), Back)
		must(t, err)
		if string(it.Key) != "k3" || string(it.Value) != "v3" {
			t.Fatalf("Peek(Back) = %q=%q", it.Key, it.Value)
		}
		wantGet(t, s, "k3", "v3") // peek keeps the key

		it, err = s.Pop(ctx, b("kq"), Front)
		must(t, err)
		if string(it.Key) != "k1" || string(it.Value) != "v1" {
			t.Fatalf("Pop = %q=%q, want k1=v1", it.Key, it.Value)
		}
		wantMissing(t, s, "k1")
		it, err = s.Pop(ctx, b("kq"), Back)
		must(t, err)
		if string(it.Key) != "k3" || string(it.Value) != "v3" {
			t.Fatalf("Pop(Back) = %q=%q, want k3=v3", it.Key, it.Value)
		}
		wantMissing(t, s, "k3")

		// Mixing kinds is refused both ways.
		wantErr(t, s.Push(ctx, b("kq"), b("plain")), ErrTypeMismatch)
		must(t, s.Push(ctx, b("pq"), b("plain")))
		wantErr(t, s.PushKeyed(ctx, b("pq"), b("kx"), b("vx")), ErrTypeMismatch)
		wantMissing(t, s, "kx") // a refused keyed push sets nothing

		// A key deleted after its push pops with a nil value.
		must(t, s.PushKeyed(ctx, b("kq"), b("k4"), b("v4")))
		must(t, s.Delete(ctx, b("k4")))
		if n, err := s.RemoveItems(ctx, b("kq"), Front, 1); err != nil || n != 1 {
			t.Fatalf("RemoveItems = %d, %v", n, err)
		}
		wantMissing(t, s, "k2") // RemoveItems deletes the keys too
		it, err = s.Pop(ctx, b("kq"), Front)
		must(t, err)
		if string(it.Key) != "k4" || it.Value != nil {
			t.Fatalf("Pop of deleted key = %q=%q, want k4=nil", it.Key, it.Value)
		}
		// Once empty, the kind is forgotten.
		must(t, s.Push(ctx, b("kq"), b("plain now")))
		if got := popAll(t, s, "kq", Front); !slices.Equal(got, []string{"plain now"}) {
			t.Fatalf("got %q", got)
		}
		wantErr(t, s.PushKeyed(ctx, b("kq"), nil, b("v")), ErrInvalid)
	})
}

// ---------------------------------------------------------------------------
// CAS

func TestCAS(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, Options{})
	widths := []struct {
		bits Bits
		typ  ValueType
		max  uint64
	}{
		{8, TypeUint8, 255},
		{16, TypeUint16, 65535},
		{32, TypeUint32, 1<<32 - 1},
		{64, TypeUint64, 1<<64 - 1},
	}
	for _, w := range widths {
		t.Run(fmt.Sprintf("uint%d", w.bits), func(t *testing.T) {
			key := b(fmt.Sprintf("cas%d", w.bits))
			_, err := s.CASGet(ctx, key, w.bits)
			wantErr(t, err, ErrNotFound)
			_, err = s.CASAdd(ctx, key, w.bits, 1)
			wantErr(t, err, ErrNotFound)
			_, _, err = s.CASSet(ctx, key, w.bits, 0, 1)
			wantErr(t, err, ErrNotFound)

			must(t, s.CASInit(ctx, key, w.bits, 5))
			v, err := s.CASGet(ctx, key, w.bits)
			must(t, err)
			if v != 5 {
				t.Fatalf("CASGet = %d", v)
			}
			// Stored little-endian in bits/8 bytes, typed.
			raw, attrs, err := s.GetWithAttrs(ctx, key)
			must(t, err)
			if len(raw) != int(w.bits)/8 || raw[0] != 5 || attrs.Type != w.typ || attrs.Size != int(w.bits)/8 {
				t.Fatalf("raw %x attrs %+v", raw, attrs)
			}

			ok, cur, err := s.CASSet(ctx, key, w.bits, 5, 7)
			must(t, err)
			if !ok || cur != 7 {
				t.Fatalf("CASSet(5->7) = %v %d, want true 7", ok, cur)
			}
			ok, cur, err = s.CASSet(ctx, key, w.bits, 5, 9)
			must(t, err)
			if ok || cur != 7 {
				t.Fatalf("CASSet(5->9) on 7 = %v %d, want false 7", ok, cur)
			}
			if v, _ := s.CASGet(ctx, key, w.bits); v != 7 {
				t.Fatalf("failed CASSet changed the value to %d", v)
			}

			adds := []struct {
				init  uint64
				delta int64
				want  uint64
			}{
				{w.max, 1, 0},
				{0, -1, w.max},
				{w.max - 1, 3, 1},
				{1, -3, w.max - 1},
				{10, 5, 15},
				{10, -10, 0},
				{0, 0, 0},
				{w.max, 0, w.max},
			}
			for _, a := range adds {
				must(t, s.CASInit(ctx, key, w.bits, a.init))
				got, err := s.CASAdd(ctx, key, w.bits, a.delta)
				must(t, err)
				if got != a.want {
					t.Fatalf("%d %+d = %d, want %d", a.init, a.delta, got, a.want)
				}
				if v, _ := s.CASGet(ctx, key, w.bits); v != a.want {
					t.Fatalf("after add, CASGet = %d, want %d", v, a.want)
				}
			}
			// CASInit overwrites whatever was there, even a plain value.
			must(t, s.Set(ctx, key, b("plain"), 0))
			_, err = s.CASGet(ctx, key, w.bits)
			wantErr(t, err, ErrTypeMismatch)
			_, err = s.CASAdd(ctx, key, w.bits, 1)
			wantErr(t, err, ErrTypeMismatch)
			_, _, err = s.CASSet(ctx, key, w.bits, 0, 1)
			wantErr(t, err, ErrTypeMismatch)
			wantGet(t, s, string(key), "plain")
			must(t, s.CASInit(ctx, key, w.bits, w.max))
			if v, _ := s.CASGet(ctx, key, w.bits); v != w.max {
				t.Fatalf("CASGet = %d, want max", v)
			}

			// Another width is a type mismatch.
			for _, o := range widths {
				if o.bits == w.bits {
					continue
				}
				_, err := s.CASGet(ctx, key, o.bits)
				wantErr(t, err, ErrTypeMismatch)
				_, err = s.CASAdd(ctx, key, o.bits, 1)
				wantErr(t, err, ErrTypeMismatch)
			}

			if w.bits < 64 {
				wantErr(t, s.CASInit(ctx, key, w.bits, w.max+1), ErrInvalid)
				_, _, err = s.CASSet(ctx, key, w.bits, w.max, w.max+1)
				wantErr(t, err, ErrInvalid)
				_, _, err = s.CASSet(ctx, key, w.bits, w.max+1, 0)
				wantErr(t, err, ErrInvalid)
				if v, _ := s.CASGet(ctx, key, w.bits); v != w.max {
					t.Fatalf("refused write changed value to %d", v)
				}
			}
		})
	}
	t.Run("bad width", func(t *testing.T) {
		for _, bits := range []Bits{0, 1, 7, 12, 24, 128, -8} {
			wantErr(t, s.CASInit(ctx, b("w"), bits, 1), ErrInvalid)
			_, err := s.CASGet(ctx, b("w"), bits)
			wantErr(t, err, ErrInvalid)
			_, err = s.CASAdd(ctx, b("w"), bits, 1)
			wantErr(t, err, ErrInvalid)
			_, _, err = s.CASSet(ctx, b("w"), bits, 0, 1)
			wantErr(t, err, ErrInvalid)
			_, err = TypeForBits(bits)
			wantErr(t, err, ErrInvalid)
		}
	})
	t.Run("empty key", func(t *testing.T) {
		wantErr(t, s.CASInit(ctx, nil, 8, 1), ErrInvalid)
	})
	t.Run("concurrent adds are atomic", func(t *testing.T) {
		must(t, s.CASInit(ctx, b("ctr"), 64, 0))
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 50 {
					if _, err := s.CASAdd(ctx, b("ctr"), 64, 1); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if v, _ := s.CASGet(ctx, b("ctr"), 64); v != 200 {
			t.Fatalf("counter = %d, want 200", v)
		}
	})
	t.Run("type names", func(t *testing.T) {
		for typ, name := range map[ValueType]string{TypeBytes: "bytes", TypeUint8: "uint8", TypeUint16: "uint16", TypeUint32: "uint32", TypeUint64: "uint64", 9: "type(9)"} {
			if typ.String() != name {
				t.Errorf("%d.String() = %q, want %q", typ, typ.String(), name)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// expiry

func TestTTL(t *testing.T) {
	ctx := t.Context()
	t.Run("invisible at once after expiry", func(t *testing.T) {
		clock := newTestClock()
		s := newStore(t, Options{Clock: clock.Now})
		t0 := clock.Now()
		must(t, s.Set(ctx, b("k"), b("v"), 10*time.Second))
		a, err := s.Attributes(ctx, b("k"))
		must(t, err)
		if !a.Expires.Equal(t0.Add(10*time.Second)) || !a.Modified.Equal(t0) {
			t.Fatalf("attrs %+v, want expires %v", a, t0.Add(10*time.Second))
		}
		clock.Advance(10*time.Second - 1)
		wantGet(t, s, "k", "v")
		clock.Advance(1) // exactly at the expiry: gone
		wantMissing(t, s, "k")
		_, err = s.Attributes(ctx, b("k"))
		wantErr(t, err, ErrNotFound)
		_, _, err = s.GetWithAttrs(ctx, b("k"))
		wantErr(t, err, ErrNotFound)
		wantErr(t, s.Delete(ctx, b("k")), ErrNotFound)
		wantErr(t, s.DeleteAll(ctx, b("k")), ErrNotFound)
		// Setting it again revives it with a new expiry.
		must(t, s.Set(ctx, b("k"), b("v2"), -1))
		wantGet(t, s, "k", "v2")
	})
	defaults := []struct {
		name    string
		def     time.Duration
		ttl     time.Duration
		advance time.Duration
		alive   bool
	}{
		{"no default, ttl 0 never expires", 0, 0, 100 * 365 * 24 * time.Hour, true},
		{"default applies to ttl 0", time.Minute, 0, time.Minute, false},
		{"default, ttl 0, before expiry", time.Minute, 0, time.Minute - 1, true},
		{"explicit ttl beats default", time.Minute, time.Hour, time.Minute, true},
		{"explicit short ttl beats default", time.Hour, time.Second, time.Second, false},
		{"negative ttl never expires despite default", time.Minute, -1, 100 * 365 * 24 * time.Hour, true},
		{"negative ttl never expires without default", 0, -time.Hour, 100 * 365 * 24 * time.Hour, true},
	}
	for _, tc := range defaults {
		t.Run(tc.name, func(t *testing.T) {
			clock := newTestClock()
			s := newStore(t, Options{Clock: clock.Now, DefaultTTL: tc.def})
			must(t, s.Set(ctx, b("k"), b("v"), tc.ttl))
			must(t, s.SetSubkey(ctx, b("p"), b("sub"), b("v"), tc.ttl))
			clock.Advance(tc.advance)
			_, err := s.Get(ctx, b("k"))
			_, serr := s.Get(ctx, b("sub"))
			subs, lerr := s.Subkeys(ctx, b("p"))
			must(t, lerr)
			if tc.alive {
				must(t, err)
				must(t, serr)
				if len(subs) != 1 {
					t.Fatalf("Subkeys = %q", subs)
				}
			} else {
				wantErr(t, err, ErrNotFound)
				wantErr(t, serr, ErrNotFound)
				if len(subs) != 0 {
					t.Fatalf("Subkeys lists an expired subkey: %q", subs)
				}
			}
		})
	}
	t.Run("huge ttl does not wrap around", func(t *testing.T) {
		// now + ttl overflows int64 for TTLs beyond ~240 years; the value
		// must then live (practically) forever, not vanish at once.
		for _, tc := range []struct {
			name     string
			def, ttl time.Duration
		}{
			{"max ttl", 0, math.MaxInt64},
			{"250 years", 0, 250 * 365 * 24 * time.Hour},
			{"max default ttl", math.MaxInt64, 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				clock := newTestClock()
				s := newStore(t, Options{Clock: clock.Now, DefaultTTL: tc.def})
				must(t, s.Set(ctx, b("k"), b("v"), tc.ttl))
				wantGet(t, s, "k", "v")
				a, err := s.Attributes(ctx, b("k"))
				must(t, err)
				if !a.Expires.IsZero() && a.Expires.Before(clock.Now().Add(200*365*24*time.Hour)) {
					t.Fatalf("Expires = %v", a.Expires)
				}
				clock.Advance(100 * 365 * 24 * time.Hour)
				wantGet(t, s, "k", "v")
				if n, err := s.ReapExpired(ctx); err != nil || n != 0 {
					t.Fatalf("ReapExpired = %d, %v", n, err)
				}
			})
		}
	})
	t.Run("CAS integers and queue items do not expire", func(t *testing.T) {
		clock := newTestClock()
		s := newStore(t, Options{Clock: clock.Now, DefaultTTL: time.Second})
		must(t, s.CASInit(ctx, b("n"), 32, 7))
		must(t, s.Push(ctx, b("q"), b("item")))
		must(t, s.PushKeyed(ctx, b("kq"), b("ik"), b("iv")))
		clock.Advance(time.Hour)
		if v, err := s.CASGet(ctx, b("n"), 32); err != nil || v != 7 {
			t.Fatalf("CASGet = %d, %v", v, err)
		}
		it, err := s.Pop(ctx, b("kq"), Front)
		must(t, err)
		if string(it.Value) != "iv" {
			t.Fatalf("keyed pop = %q", it.Value)
		}
		if got := popAll(t, s, "q", Front); !slices.Equal(got, []string{"item"}) {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("keyed item whose key expired pops nil", func(t *testing.T) {
		clock := newTestClock()
		s := newStore(t, Options{Clock: clock.Now})
		must(t, s.PushKeyed(ctx, b("kq"), b("ik"), b("iv")))
		must(t, s.Set(ctx, b("ik"), b("short"), time.Second))
		clock.Advance(time.Second)
		it, err := s.Pop(ctx, b("kq"), Front)
		must(t, err)
		if string(it.Key) != "ik" || it.Value != nil {
			t.Fatalf("Pop = %q=%q", it.Key, it.Value)
		}
	})
	t.Run("reap expired", func(t *testing.T) {
		clock := newTestClock()
		s := newStore(t, Options{Clock: clock.Now})
		must(t, s.Set(ctx, b("e1"), b("v"), time.Second))
		must(t, s.Set(ctx, b("e2"), b("v"), 2*time.Second))
		must(t, s.SetSubkey(ctx, b("p"), b("e3"), b("v"), time.Second))
		must(t, s.Set(ctx, b("later"), b("v"), time.Hour))
		must(t, s.Set(ctx, b("forever"), b("v"), -1))
		// Overwritten without expiry: its index entry is stale, not reaped.
		must(t, s.Set(ctx, b("rewritten"), b("v"), time.Second))
		must(t, s.Set(ctx, b("rewritten"), b("v2"), -1))
		// Overwritten with a later expiry: not reaped at the first expiry.
		must(t, s.Set(ctx, b("extended"), b("v"), time.Second))
		must(t, s.Set(ctx, b("extended"), b("v2"), time.Hour))

		n, err := s.ReapExpired(ctx)
		must(t, err)
		if n != 0 {
			t.Fatalf("ReapExpired before any expiry = %d", n)
		}
		clock.Advance(2 * time.Second)
		n, err = s.ReapExpired(ctx)
		must(t, err)
		if n != 3 {
			t.Fatalf("ReapExpired = %d, want 3 (e1 e2 e3)", n)
		}
		n, err = s.ReapExpired(ctx)
		must(t, err)
		if n != 0 {
			t.Fatalf("second ReapExpired = %d, want 0", n)
		}
		wantGet(t, s, "rewritten", "v2")
		wantGet(t, s, "extended", "v2")
		wantGet(t, s, "later", "v")
		wantGet(t, s, "forever", "v")
		// The values are gone from Pebble, not only hidden.
		for _, k := range []string{"e1", "e2", "e3"} {
			raw, err := s.get(dataKey(b(k)))
			must(t, err)
			if raw != nil {
				t.Fatalf("%s still stored after reaping", k)
			}
		}
		clock.Advance(time.Hour)
		n, err = s.ReapExpired(ctx)
		must(t, err)
		if n != 2 {
			t.Fatalf("ReapExpired after an hour = %d, want 2 (later, extended)", n)
		}
		wantGet(t, s, "forever", "v")
	})
	t.Run("reap many (more than one batch)", func(t *testing.T) {
		clock := newTestClock()
		s := newStore(t, Options{Clock: clock.Now, NoSync: true})
		const n = reapBatch + 300
		var bt Batch
		for i := range n {
			bt.Set(b(fmt.Sprintf("k%05d", i)), b("v"), time.Duration(1+i%7)*time.Second)
		}
		must(t, s.Apply(ctx, &bt))
		clock.Advance(8 * time.Second)
		got, err := s.ReapExpired(ctx)
		must(t, err)
		if got != n {
			t.Fatalf("ReapExpired = %d, want %d", got, n)
		}
		kvs, _, err := s.Scan(ctx, nil, nil, 10)
		must(t, err)
		if len(kvs) != 0 {
			t.Fatalf("%d keys left", len(kvs))
		}
	})
	t.Run("background reap loop", func(t *testing.T) {
		clock := newTestClock()
		s := newStore(t, Options{Clock: clock.Now, ReapInterval: 5 * time.Millisecond})
		must(t, s.Set(ctx, b("e"), b("v"), time.Second))
		clock.Advance(time.Second)
		// The loop reports the reclaim in the change feed.
		c, err := s.NextChange(deadline(t), 1)
		must(t, err)
		if c.Op != OpExpire || string(c.Key) != "e" {
			t.Fatalf("change %+v, want expire e", c)
		}
		raw, err := s.get(dataKey(b("e")))
		must(t, err)
		if raw != nil {
			t.Fatal("value still stored after the reap loop reported it")
		}
	})
}

// ---------------------------------------------------------------------------
// attributes

func TestAttributes(t *testing.T) {
	ctx := t.Context()
	clock := newTestClock()
	s := newStore(t, Options{Clock: clock.Now})
	t0 := clock.Now()
	must(t, s.Set(ctx, b("k"), b("hello"), -1))
	must(t, s.Set(ctx, b("e"), b(""), time.Minute))
	must(t, s.CASInit(ctx, b("c8"), 8, 1))
	must(t, s.CASInit(ctx, b("c16"), 16, 1))
	must(t, s.CASInit(ctx, b("c32"), 32, 1))
	must(t, s.CASInit(ctx, b("c64"), 64, 1))
	tests := []struct {
		key  string
		want Attrs
	}{
		{"k", Attrs{Modified: t0, Type: TypeBytes, Size: 5}},
		{"e", Attrs{Modified: t0, Expires: t0.Add(time.Minute), Type: TypeBytes, Size: 0}},
		{"c8", Attrs{Modified: t0, Type: TypeUint8, Size: 1}},
		{"c16", Attrs{Modified: t0, Type: TypeUint16, Size: 2}},
		{"c32", Attrs{Modified: t0, Type: TypeUint32, Size: 4}},
		{"c64", Attrs{Modified: t0, Type: TypeUint64, Size: 8}},
	}
	eq := func(a, b Attrs) bool {
		return a.Modified.Equal(b.Modified) && a.Expires.Equal(b.Expires) && a.Encrypted == b.Encrypted && a.Type == b.Type && a.Size == b.Size
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			a, err := s.Attributes(ctx, b(tc.key))
			must(t, err)
			if !eq(a, tc.want) {
				t.Fatalf("Attributes = %+v, want %+v", a, tc.want)
			}
			if tc.want.Expires.IsZero() && !a.Expires.IsZero() {
				t.Fatalf("Expires = %v, want zero", a.Expires)
			}
			_, a2, err := s.GetWithAttrs(ctx, b(tc.key))
			must(t, err)
			if !eq(a2, tc.want) {
				t.Fatalf("GetWithAttrs attrs = %+v, want %+v", a2, tc.want)
			}
		})
	}
	t.Run("modified follows writes", func(t *testing.T) {
		clock.Advance(time.Hour)
		must(t, s.Set(ctx, b("k"), b("hello world"), -1))
		if _, err := s.CASAdd(ctx, b("c8"), 8, 1); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"k", "c8"} {
			a, err := s.Attributes(ctx, b(k))
			must(t, err)
			if !a.Modified.Equal(t0.Add(time.Hour)) {
				t.Fatalf("%s Modified = %v", k, a.Modified)
			}
		}
		a, _ := s.Attributes(ctx, b("k"))
		if a.Size != 11 {
			t.Fatalf("Size = %d", a.Size)
		}
	})
	t.Run("missing", func(t *testing.T) {
		_, err := s.Attributes(ctx, b("missing"))
		wantErr(t, err, ErrNotFound)
		_, err = s.Attributes(ctx, nil)
		wantErr(t, err, ErrInvalid)
	})
}

// ---------------------------------------------------------------------------
// encryption

// marker returns a random-looking string that compression cannot shrink,
// so finding it (or not) in the raw files means something.
func marker(t testing.TB) string {
	var r [20]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(r[:])
}

// dirContains reports whether any file under dir contains needle.
func dirContains(t testing.TB, dir string, needle []byte) (bool, []string) {
	t.Helper()
	found := false
	var names []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		names = append(names, fmt.Sprintf("%s(%d)", d.Name(), len(data)))
		if bytes.Contains(data, needle) {
			found = true
		}
		return nil
	})
	must(t, err)
	return found, names
}

func TestEncryption(t *testing.T) {
	ctx := t.Context()
	t.Run("round trip and attributes", func(t *testing.T) {
		s := newStore(t, Options{Passphrases: []string{"secret"}})
		must(t, s.Set(ctx, b("k"), b("value"), -1))
		must(t, s.Set(ctx, b("empty"), nil, -1))
		must(t, s.SetSubkey(ctx, b("p"), b("sub"), b("subvalue"), 0))
		must(t, s.Push(ctx, b("q"), b("item")))
		must(t, s.PushKeyed(ctx, b("kq"), b("ik"), b("iv")))
		must(t, s.CASInit(ctx, b("n"), 16, 300))
		wantGet(t, s, "k", "value")
		wantGet(t, s, "empty", "")
		wantGet(t, s, "sub", "subvalue")
		if v, err := s.CASAdd(ctx, b("n"), 16, 1); err != nil || v != 301 {
			t.Fatalf("CASAdd = %d, %v", v, err)
		}
		kvs, _, err := s.Scan(ctx, b("k"), nil, 10)
		must(t, err)
		if len(kvs) != 1 || string(kvs[0].Value) != "value" || !kvs[0].Attrs.Encrypted {
			t.Fatalf("Scan = %+v", kvs)
		}
		for key, size := range map[string]int{"k": 5, "empty": 0, "sub": 8, "n": 2} {
			a, err := s.Attributes(ctx, b(key))
			must(t, err)
			if !a.Encrypted || a.Size != size {
				t.Fatalf("Attributes(%s) = %+v, want encrypted size %d", key, a, size)
			}
		}
		if got := popAll(t, s, "q", Front); !slices.Equal(got, []string{"item"}) {
			t.Fatalf("queue: %q", got)
		}
		it, err := s.Pop(ctx, b("kq"), Front)
		must(t, err)
		if string(it.Value) != "iv" {
			t.Fatalf("keyed pop = %q", it.Value)
		}
	})
	t.Run("values are bound to their key", func(t *testing.T) {
		s := newStore(t, Options{Passphrases: []string{"secret"}})
		must(t, s.Set(ctx, b("k1"), b("value"), -1))
		raw, err := s.get(dataKey(b("k1")))
		must(t, err)
		must(t, s.db.Set(dataKey(b("k2")), raw, nil))
		_, err = s.Get(ctx, b("k2"))
		wantErr(t, err, ErrCorrupt)
		// Flip one ciphertext bit: authentication fails.
		raw[len(raw)-1] ^= 1
		must(t, s.db.Set(dataKey(b("k1")), raw, nil))
		_, err = s.Get(ctx, b("k1"))
		wantErr(t, err, ErrCorrupt)
	})
	t.Run("plaintext is not on disk", func(t *testing.T) {
		for _, encrypted := range []bool{false, true} {
			dir := t.TempDir()
			var opts Options
			if encrypted {
				opts.Passphrases = []string{"secret"}
			}
			s := openT(t, dir, opts)
			m := marker(t)
			must(t, s.Set(ctx, b("k"), b("value:"+m), -1))
			must(t, s.Push(ctx, b("q"), b("item:"+m)))
			must(t, s.SetSubkey(ctx, b("p"), b("sub"), b("subkey:"+m), -1))
			must(t, s.PushKeyed(ctx, b("kq"), b("ik"), b("keyed:"+m)))
			var bt Batch
			bt.Set(b("bk"), b("batch:"+m), -1)
			must(t, s.Apply(ctx, &bt))
			closeT(t, s)
			found, files := dirContains(t, dir, b(m))
			if encrypted && found {
				t.Fatalf("encrypted store: plaintext marker found on disk in %v", files)
			}
			if !encrypted && !found {
				t.Fatalf("plain store: marker not found on disk in %v; the check cannot work", files)
			}
			// Also check the prefix form, in case the marker were split.
			if encrypted {
				if f, _ := dirContains(t, dir, b(m[:16])); f {
					t.Fatal("encrypted store: part of the plaintext marker found on disk")
				}
			}
		}
	})
	t.Run("reopen without, with wrong, with rotated passphrases", func(t *testing.T) {
		dir := t.TempDir()
		s := openT(t, dir, Options{Passphrases: []string{"old"}})
		must(t, s.Set(ctx, b("k-old"), b("sealed with old"), -1))
		must(t, s.Push(ctx, b("q"), b("queued with old")))
		must(t, s.CASInit(ctx, b("n"), 8, 42))
		closeT(t, s)

		// No passphrase.
		s = openT(t, dir, Options{})
		_, err := s.Get(ctx, b("k-old"))
		wantErr(t, err, ErrNeedPassphrase)
		_, err = s.CASGet(ctx, b("n"), 8)
		wantErr(t, err, ErrNeedPassphrase)
		_, err = s.Peek(ctx, b("q"), Front)
		wantErr(t, err, ErrNeedPassphrase)
		_, err = s.Pop(ctx, b("q"), Front)
		wantErr(t, err, ErrNeedPassphrase)
		_, _, err = s.Scan(ctx, b("k"), nil, 10)
		wantErr(t, err, ErrNeedPassphrase)
		a, err := s.Attributes(ctx, b("k-old"))
		must(t, err)
		if !a.Encrypted || a.Size != len("sealed with old") {
			t.Fatalf("Attributes without passphrase = %+v", a)
		}
		closeT(t, s)

		// Wrong passphrase.
		s = openT(t, dir, Options{Passphrases: []string{"wrong"}})
		_, err = s.Get(ctx, b("k-old"))
		wantErr(t, err, ErrWrongPassphrase)
		_, err = s.Pop(ctx, b("q"), Front)
		wantErr(t, err, ErrWrongPassphrase)
		closeT(t, s)

		// Rotation: new first, old after it.
		s = openT(t, dir, Options{Passphrases: []string{"new", "old"}})
		wantGet(t, s, "k-old", "sealed with old")
		must(t, s.Set(ctx, b("k-new"), b("sealed with new"), -1))
		if v, err := s.CASAdd(ctx, b("n"), 8, 1); err != nil || v != 43 {
			t.Fatalf("CASAdd = %d, %v", v, err) // rewritten: sealed with new now
		}
		closeT(t, s)

		s = openT(t, dir, Options{Passphrases: []string{"new"}})
		wantGet(t, s, "k-new", "sealed with new")
		if v, err := s.CASGet(ctx, b("n"), 8); err != nil || v != 43 {
			t.Fatalf("CASGet = %d, %v", v, err)
		}
		_, err = s.Get(ctx, b("k-old"))
		wantErr(t, err, ErrWrongPassphrase)
		closeT(t, s)

		s = openT(t, dir, Options{Passphrases: []string{"old"}})
		wantGet(t, s, "k-old", "sealed with old")
		_, err = s.Get(ctx, b("k-new"))
		wantErr(t, err, ErrWrongPassphrase)
		it, err := s.Pop(ctx, b("q"), Front)
		must(t, err)
		if string(it.Value) != "queued with old" {
			t.Fatalf("Pop = %q", it.Value)
		}
		closeT(t, s)
	})
	t.Run("empty passphrase is refused", func(t *testing.T) {
		_, err := Open(t.TempDir(), Options{Passphrases: []string{"ok", ""}, Logger: quietLogger()})
		wantErr(t, err, ErrInvalid)
	})
}

func TestReadPassphraseFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		want    []string
		wantErr string
	}{
		{"simple", "one\n", []string{"one"}, ""},
		{"no trailing newline", "one\ntwo", []string{"one", "two"}, ""},
		{"comments and blanks", "# header\n\nnew\n   \n\t\n# old ones:\nold\n#old2\n", []string{"new", "old"}, ""},
		{"crlf", "a\r\nb\r\n", []string{"a", "b"}, ""},
		{"spaces kept", "  spaced pass  \n", []string{"  spaced pass  "}, ""},
		{"indented hash is a passphrase", " #notcomment\n", []string{" #notcomment"}, ""},
		{"only comments", "# nothing\n\n#\n", nil, "no passphrase"},
		{"empty file", "", nil, "no passphrase"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			must(t, os.WriteFile(path, []byte(tc.content), 0o600))
			got, err := ReadPassphraseFile(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			must(t, err)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		if _, err := ReadPassphraseFile(filepath.Join(dir, "nope")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v", err)
		}
	})
}

// ---------------------------------------------------------------------------
// change feed

type wantChange struct {
	op     Op
	key    string
	subkey string
	value  string // "" means no value (nil)
}

func gotChange(c Change) wantChange {
	return wantChange{c.Op, string(c.Key), string(c.Subkey), string(c.Value)}
}

func TestChangeFeed(t *testing.T) {
	ctx := t.Context()
	clock := newTestClock()
	s := newStore(t, Options{Clock: clock.Now})

	type step struct {
		name string
		do   func(t *testing.T)
		want []wantChange
		// unordered: the trailing changes of a step whose relative order is
		// unspecified (the plain deletes of a delete.all's subtree).
		unordered int
	}
	steps := []step{
		{"set", func(t *testing.T) { must(t, s.Set(ctx, b("k1"), b("v1"), 0)) },
			[]wantChange{{OpSet, "k1", "", "v1"}}, 0},
		{"overwrite", func(t *testing.T) { must(t, s.Set(ctx, b("k1"), b("v1b"), 0)) },
			[]wantChange{{OpSet, "k1", "", "v1b"}}, 0},
		{"delete", func(t *testing.T) { must(t, s.Delete(ctx, b("k1"))) },
			[]wantChange{{OpDelete, "k1", "", ""}}, 0},
		{"failed delete logs nothing", func(t *testing.T) { wantErr(t, s.Delete(ctx, b("k1")), ErrNotFound) },
			nil, 0},
		{"subkey add", func(t *testing.T) { must(t, s.SetSubkey(ctx, b("p"), b("c"), b("cv"), 0)) },
			[]wantChange{{OpSubkeyAdd, "p", "c", "cv"}}, 0},
		{"subkey del", func(t *testing.T) { must(t, s.DeleteSubkey(ctx, b("p"), b("c"), false)) },
			[]wantChange{{OpSubkeyDel, "p", "c", ""}, {OpDelete, "c", "", ""}}, 0},
		{"delete all", func(t *testing.T) {
			must(t, s.Set(ctx, b("r"), b("rv"), 0))
			must(t, s.SetSubkey(ctx, b("r"), b("c1"), b("x1"), 0))
			must(t, s.SetSubkey(ctx, b("r"), b("c2"), b("x2"), 0))
			must(t, s.SetSubkey(ctx, b("c1"), b("g1"), b("y1"), 0))
			must(t, s.DeleteAll(ctx, b("r")))
		}, []wantChange{
			{OpSet, "r", "", "rv"},
			{OpSubkeyAdd, "r", "c1", "x1"},
			{OpSubkeyAdd, "r", "c2", "x2"},
			{OpSubkeyAdd, "c1", "g1", "y1"},
			{OpDeleteAll, "r", "", ""},
			{OpDelete, "c1", "", ""}, {OpDelete, "c2", "", ""}, {OpDelete, "g1", "", ""},
		}, 3},
		{"subkey del all", func(t *testing.T) {
			must(t, s.SetSubkey(ctx, b("p2"), b("s1"), b("a"), 0))
			must(t, s.SetSubkey(ctx, b("s1"), b("s2"), b("b"), 0))
			must(t, s.DeleteSubkey(ctx, b("p2"), b("s1"), true))
		}, []wantChange{
			{OpSubkeyAdd, "p2", "s1", "a"},
			{OpSubkeyAdd, "s1", "s2", "b"},
			{OpSubkeyDel, "p2", "s1", ""},
			{OpDeleteAll, "s1", "", ""},
			{OpDelete, "s2", "", ""},
		}, 0},
		{"queue push pop", func(t *testing.T) {
			must(t, s.Push(ctx, b("q"), b("i1")))
			must(t, s.Push(ctx, b("q"), b("i2")))
			must(t, s.Push(ctx, b("q"), b("i3")))
			if _, err := s.Pop(ctx, b("q"), Back); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Peek(ctx, b("q"), Front); err != nil { // no change
				t.Fatal(err)
			}
			if n, err := s.RemoveItems(ctx, b("q"), Front, 5); err != nil || n != 2 {
				t.Fatalf("RemoveItems = %d, %v", n, err)
			}
		}, []wantChange{
			{OpQueuePush, "q", "", "i1"},
			{OpQueuePush, "q", "", "i2"},
			{OpQueuePush, "q", "", "i3"},
			{OpQueuePop, "q", "", "i3"},
			{OpQueuePop, "q", "", "i1"},
			{OpQueuePop, "q", "", "i2"},
		}, 0},
		{"keyed queue", func(t *testing.T) {
			must(t, s.PushKeyed(ctx, b("kq"), b("ik"), b("iv")))
			if _, err := s.Pop(ctx, b("kq"), Front); err != nil {
				t.Fatal(err)
			}
		}, []wantChange{
			{OpQueuePush, "kq", "ik", "iv"},
			{OpQueuePop, "kq", "ik", "iv"},
		}, 0},
		{"expire", func(t *testing.T) {
			must(t, s.Set(ctx, b("e"), b("ev"), time.Second))
			clock.Advance(time.Second)
			if n, err := s.ReapExpired(ctx); err != nil || n != 1 {
				t.Fatalf("ReapExpired = %d, %v", n, err)
			}
		}, []wantChange{
			{OpSet, "e", "", "ev"},
			{OpExpire, "e", "", ""},
		}, 0},
		{"CAS", func(t *testing.T) {
			must(t, s.CASInit(ctx, b("n"), 8, 5))
			if _, err := s.CASAdd(ctx, b("n"), 8, 1); err != nil {
				t.Fatal(err)
			}
			if ok, _, err := s.CASSet(ctx, b("n"), 8, 6, 9); err != nil || !ok {
				t.Fatalf("CASSet = %v, %v", ok, err)
			}
			if ok, _, err := s.CASSet(ctx, b("n"), 8, 6, 10); err != nil || ok { // fails: no change
				t.Fatalf("CASSet = %v, %v", ok, err)
			}
		}, []wantChange{
			{OpSet, "n", "", "\x05"},
			{OpSet, "n", "", "\x06"},
			{OpSet, "n", "", "\x09"},
		}, 0},
		{"batch", func(t *testing.T) {
			var bt Batch
			bt.Set(b("b1"), b("bv"), 0)
			bt.Delete(b("b2"))
			must(t, s.Apply(ctx, &bt))
		}, []wantChange{
			{OpSet, "b1", "", "bv"},
			{OpDelete, "b2", "", ""},
		}, 0},
	}

	var after uint64
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			clock.Advance(time.Minute)
			stepTime := clock.Now()
			st.do(t)
			got := readChanges(t, s, after)
			var gw []wantChange
			for i, c := range got {
				if c.Seq != after+uint64(i)+1 {
					t.Fatalf("change %d has seq %d, want %d (no gaps in a clean run)", i, c.Seq, after+uint64(i)+1)
				}
				if c.Time.Before(stepTime) || c.Time.After(clock.Now()) {
					t.Fatalf("change %d time %v, want in [%v, %v]", c.Seq, c.Time, stepTime, clock.Now())
				}
				if c.Sealed {
					t.Fatalf("change %d sealed in a store without encryption", c.Seq)
				}
				if (c.Value == nil) != (st.want != nil && i < len(st.want) && st.want[i].value == "") {
					t.Fatalf("change %d value %q", c.Seq, c.Value)
				}
				if c.Value != nil && c.Attrs.Size != len(c.Value) {
					t.Fatalf("change %d attrs %+v", c.Seq, c.Attrs)
				}
				gw = append(gw, gotChange(c))
			}
			if len(gw) != len(st.want) {
				t.Fatalf("changes = %+v, want %+v", gw, st.want)
			}
			n := len(st.want) - st.unordered
			if !slices.Equal(gw[:n], st.want[:n]) {
				t.Fatalf("changes = %+v, want %+v", gw, st.want)
			}
			cmp := func(a, b wantChange) int { return strings.Compare(a.key, b.key) }
			if !slices.Equal(slices.SortedFunc(slices.Values(gw[n:]), cmp), slices.SortedFunc(slices.Values(st.want[n:]), cmp)) {
				t.Fatalf("changes = %+v, want %+v", gw, st.want)
			}
			if len(got) > 0 {
				after = got[len(got)-1].Seq
			}
		})
	}
	t.Run("CAS changes carry the integer type", func(t *testing.T) {
		must(t, s.CASInit(ctx, b("n32"), 32, 1))
		c, err := s.NextChange(deadline(t), s.LastSeq()-1)
		must(t, err)
		if c.Attrs.Type != TypeUint32 || !bytes.Equal(c.Value, []byte{1, 0, 0, 0}) {
			t.Fatalf("change %+v", c)
		}
	})
	t.Run("expiry in attrs", func(t *testing.T) {
		must(t, s.Set(ctx, b("t"), b("v"), time.Hour))
		c, err := s.NextChange(deadline(t), s.LastSeq()-1)
		must(t, err)
		if !c.Attrs.Expires.Equal(clock.Now().Add(time.Hour)) {
			t.Fatalf("change attrs %+v", c.Attrs)
		}
	})
}

func TestNextChangeBlocks(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, Options{})
	must(t, s.Set(ctx, b("a"), b("1"), 0))
	last := s.LastSeq()
	if last != 1 {
		t.Fatalf("LastSeq = %d", last)
	}
	type result struct {
		c   Change
		err error
	}
	ch := make(chan result, 1)
	wctx := deadline(t)
	go func() {
		c, err := s.NextChange(wctx, last)
		ch <- result{c, err}
	}()
	time.Sleep(20 * time.Millisecond) // let it reach the wait; not an assertion
	select {
	case r := <-ch:
		t.Fatalf("NextChange returned before any new commit: %+v, %v", r.c, r.err)
	default:
	}
	must(t, s.Set(ctx, b("b"), b("2"), 0))
	r := <-ch
	must(t, r.err)
	if r.c.Seq != last+1 || r.c.Op != OpSet || string(r.c.Key) != "b" || string(r.c.Value) != "2" {
		t.Fatalf("NextChange = %+v", r.c)
	}

	t.Run("context ends the wait", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := s.NextChange(cctx, s.LastSeq())
		wantErr(t, err, context.Canceled)
		// With a live context, an existing change is returned at once.
		c, err := s.NextChange(deadline(t), 0)
		must(t, err)
		if c.Seq != 1 {
			t.Fatalf("NextChange(0).Seq = %d", c.Seq)
		}
	})
	t.Run("close ends the wait", func(t *testing.T) {
		s2 := newStore(t, Options{})
		ch := make(chan error, 1)
		wctx := deadline(t)
		go func() {
			_, err := s2.NextChange(wctx, 0)
			ch <- err
		}()
		time.Sleep(10 * time.Millisecond) // not an assertion
		closeT(t, s2)
		wantErr(t, <-ch, ErrClosed)
	})
}

// TestChangeFeedConcurrent checks that a reader following the feed while
// several writers commit sees every sequence number once, in order, and
// each key's writes in the order they were made.
func TestChangeFeedConcurrent(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, Options{NoSync: true})
	const writers, each = 4, 100
	done := make(chan []Change, 1)
	rctx := deadline(t)
	go func() {
		var got []Change
		var after uint64
		for len(got) < writers*each {
			c, err := s.NextChange(rctx, after)
			if err != nil {
				t.Errorf("NextChange(%d): %v", after, err)
				break
			}
			got = append(got, c)
			after = c.Seq
		}
		done <- got
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := s.Set(ctx, b(fmt.Sprintf("w%d", w)), b(strconv.Itoa(i)), 0); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	got := <-done
	if len(got) != writers*each {
		t.Fatalf("read %d changes, want %d", len(got), writers*each)
	}
	next := map[string]int{}
	for i, c := range got {
		if c.Seq != uint64(i)+1 {
			t.Fatalf("change %d has seq %d", i, c.Seq)
		}
		v, _ := strconv.Atoi(string(c.Value))
		if v != next[string(c.Key)] {
			t.Fatalf("key %s: change %d carries %d, want %d", c.Key, c.Seq, v, next[string(c.Key)])
		}
		next[string(c.Key)]++
	}
	for w := range writers {
		wantGet(t, s, fmt.Sprintf("w%d", w), strconv.Itoa(each-1))
	}
}

func TestChangeSeqSurvivesReopen(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	for i := range 3 {
		must(t, s.Set(ctx, b(fmt.Sprint("k", i)), b("v"), 0))
	}
	if s.LastSeq() != 3 {
		t.Fatalf("LastSeq = %d", s.LastSeq())
	}
	closeT(t, s)
	s = openT(t, dir, Options{})
	if s.LastSeq() != 3 {
		t.Fatalf("LastSeq after reopen = %d, want 3", s.LastSeq())
	}
	if first, err := s.FirstSeq(); err != nil || first != 1 {
		t.Fatalf("FirstSeq = %d, %v", first, err)
	}
	must(t, s.Set(ctx, b("k3"), b("v"), 0))
	got := readChanges(t, s, 0)
	if len(got) != 4 {
		t.Fatalf("%d changes after reopen", len(got))
	}
	for i, c := range got {
		if c.Seq != uint64(i+1) || string(c.Key) != fmt.Sprint("k", i) {
			t.Fatalf("change %d = seq %d key %q", i, c.Seq, c.Key)
		}
	}
	// Trimmed down to the newest record, the numbering still continues.
	s2 := openT(t, t.TempDir(), Options{ChangeLogRetention: 1})
	for range 5 {
		must(t, s2.Set(ctx, b("x"), b("v"), 0))
	}
	must(t, s2.withRead(s2.trimChanges))
	if first, _ := s2.FirstSeq(); first != 5 {
		t.Fatalf("FirstSeq after trim = %d, want 5", first)
	}
	dir2 := s2.Dir()
	closeT(t, s2)
	s2 = openT(t, dir2, Options{ChangeLogRetention: 1})
	must(t, s2.Set(ctx, b("x"), b("v"), 0))
	if s2.LastSeq() != 6 {
		t.Fatalf("LastSeq = %d, want 6", s2.LastSeq())
	}
}

func TestCursors(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	if c, err := s.Cursor(ctx, "nobody"); err != nil || c != 0 {
		t.Fatalf("Cursor(nobody) = %d, %v", c, err)
	}
	wantErr(t, s.SetCursor(ctx, "", 1), ErrInvalid)
	must(t, s.SetCursor(ctx, "a", 5))
	must(t, s.SetCursor(ctx, "b", 7))
	must(t, s.SetCursor(ctx, "a", 6))
	must(t, s.SetCursor(ctx, "gone", 1))
	must(t, s.DropCursor(ctx, "gone"))
	must(t, s.DropCursor(ctx, "never-set"))
	closeT(t, s)
	s = openT(t, dir, Options{})
	for name, want := range map[string]uint64{"a": 6, "b": 7, "gone": 0} {
		if c, err := s.Cursor(ctx, name); err != nil || c != want {
			t.Fatalf("Cursor(%s) after reopen = %d, %v; want %d", name, c, err, want)
		}
	}
	must(t, s.DropCursor(ctx, "a"))
	closeT(t, s)
	s = openT(t, dir, Options{})
	if c, _ := s.Cursor(ctx, "a"); c != 0 {
		t.Fatalf("dropped cursor = %d after reopen", c)
	}
}

func TestChangeLogTrim(t *testing.T) {
	ctx := t.Context()
	trim := func(t *testing.T, s *Store) {
		t.Helper()
		must(t, s.withRead(s.trimChanges))
	}
	firstSeq := func(t *testing.T, s *Store) uint64 {
		t.Helper()
		f, err := s.FirstSeq()
		must(t, err)
		return f
	}
	t.Run("within retention nothing is trimmed", func(t *testing.T) {
		s := newStore(t, Options{ChangeLogRetention: 100})
		for range 50 {
			must(t, s.Set(ctx, b("k"), b("v"), 0))
		}
		trim(t, s)
		if f := firstSeq(t, s); f != 1 {
			t.Fatalf("FirstSeq = %d, want 1", f)
		}
	})
	t.Run("cursors hold records back", func(t *testing.T) {
		s := newStore(t, Options{ChangeLogRetention: 10})
		for i := range 50 {
			must(t, s.Set(ctx, b("k"), b(strconv.Itoa(i+1)), 0))
		}
		must(t, s.SetCursor(ctx, "slow", 20))
		must(t, s.SetCursor(ctx, "fast", 45))
		must(t, s.SetCursor(ctx, "ahead", 1000))
		trim(t, s)
		if f := firstSeq(t, s); f != 21 {
			t.Fatalf("FirstSeq = %d, want 21 (slow cursor at 20)", f)
		}
		c, err := s.NextChange(deadline(t), 20)
		must(t, err)
		if c.Seq != 21 || string(c.Value) != "21" {
			t.Fatalf("NextChange(20) = seq %d value %q", c.Seq, c.Value)
		}
		c, err = s.NextChange(deadline(t), 0)
		must(t, err)
		if c.Seq != 21 {
			t.Fatalf("NextChange(0) after trim = seq %d, want the oldest kept, 21", c.Seq)
		}
		must(t, s.DropCursor(ctx, "slow"))
		trim(t, s)
		if f := firstSeq(t, s); f != 41 {
			t.Fatalf("FirstSeq = %d, want 41 (retention 10 of 50)", f)
		}
		must(t, s.SetCursor(ctx, "fast", 49))
		trim(t, s)
		if f := firstSeq(t, s); f != 41 {
			t.Fatalf("FirstSeq = %d, want 41", f)
		}
		if s.LastSeq() != 50 {
			t.Fatalf("LastSeq = %d", s.LastSeq())
		}
		got := readChanges(t, s, 0)
		if len(got) != 10 || got[0].Seq != 41 || got[9].Seq != 50 {
			t.Fatalf("read %d changes after trim", len(got))
		}
	})
	t.Run("reap loop trims", func(t *testing.T) {
		s := newStore(t, Options{ChangeLogRetention: 5, ReapInterval: 5 * time.Millisecond})
		for range 20 {
			must(t, s.Set(ctx, b("k"), b("v"), 0))
		}
		ctx := deadline(t)
		for firstSeq(t, s) != 16 {
			if ctx.Err() != nil {
				t.Fatalf("reap loop did not trim: FirstSeq = %d, want 16", firstSeq(t, s))
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

func TestChangeLogOffByDefault(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s, err := Open(dir, Options{Logger: quietLogger()})
	must(t, err)
	must(t, s.Set(ctx, b("k"), b("v"), 0))
	must(t, s.Push(ctx, b("q"), b("v")))
	_, err = s.NextChange(deadline(t), 0)
	wantErr(t, err, ErrNoChangeLog)
	wantErr(t, err, ErrInvalid)
	if s.LastSeq() != 0 || s.ChangeLogOn() {
		t.Fatalf("LastSeq = %d, on %v", s.LastSeq(), s.ChangeLogOn())
	}
	if f, err := s.FirstSeq(); err != nil || f != 0 {
		t.Fatalf("FirstSeq = %d, %v", f, err)
	}
	wantGet(t, s, "k", "v")

	// Turned on, it logs from then on, and the store remembers it.
	must(t, s.SetChangeLog(ctx, true))
	must(t, s.Set(ctx, b("k2"), b("v2"), 0))
	must(t, s.Close())
	s, err = Open(dir, Options{Logger: quietLogger()})
	must(t, err)
	if !s.ChangeLogOn() {
		t.Fatal("the change log did not stay on across a reopen")
	}
	c, err := s.NextChange(deadline(t), 0)
	must(t, err)
	if c.Seq != 1 || string(c.Key) != "k2" {
		t.Fatalf("first change %+v, want seq 1 for k2", c)
	}
	must(t, s.Set(ctx, b("k3"), b("v3"), 0))
	// Turned off, it stops logging, for good too.
	must(t, s.SetChangeLog(ctx, false))
	must(t, s.Set(ctx, b("k4"), b("v4"), 0))
	must(t, s.Close())
	s, err = Open(dir, Options{Logger: quietLogger()})
	must(t, err)
	defer s.Close()
	if s.ChangeLogOn() || s.LastSeq() != 2 {
		t.Fatalf("after turning it off: on %v, LastSeq %d (want off, 2)", s.ChangeLogOn(), s.LastSeq())
	}
}
func TestChangeFeedEncrypted(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := openT(t, dir, Options{Passphrases: []string{"pw"}})
	must(t, s.Set(ctx, b("k"), b("secret"), 0))
	must(t, s.Push(ctx, b("q"), b("queued")))
	must(t, s.PushKeyed(ctx, b("kq"), b("ik"), b("keyed")))
	must(t, s.SetSubkey(ctx, b("p"), b("sub"), b("subval"), 0))
	must(t, s.CASInit(ctx, b("n"), 8, 3))
	if _, err := s.Pop(ctx, b("q"), Front); err != nil {
		t.Fatal(err)
	}
	must(t, s.Delete(ctx, b("k")))
	want := []wantChange{
		{OpSet, "k", "", "secret"},
		{OpQueuePush, "q", "", "queued"},
		{OpQueuePush, "kq", "ik", "keyed"},
		{OpSubkeyAdd, "p", "sub", "subval"},
		{OpSet, "n", "", "\x03"},
		{OpQueuePop, "q", "", "queued"},
		{OpDelete, "k", "", ""},
	}
	check := func(t *testing.T, s *Store, open bool) {
		t.Helper()
		got := readChanges(t, s, 0)
		if len(got) != len(want) {
			t.Fatalf("%d changes, want %d", len(got), len(want))
		}
		for i, c := range got {
			w := want[i]
			if c.Op != w.op || string(c.Key) != w.key || string(c.Subkey) != w.subkey {
				t.Fatalf("change %d = %+v, want %+v", i, c, w)
			}
			switch {
			case w.value == "":
				if c.Value != nil || c.Sealed {
					t.Fatalf("change %d: value %q sealed %v", i, c.Value, c.Sealed)
				}
			case open:
				if c.Sealed || string(c.Value) != w.value || !c.Attrs.Encrypted {
					t.Fatalf("change %d: value %q sealed %v attrs %+v", i, c.Value, c.Sealed, c.Attrs)
				}
			default:
				if !c.Sealed || c.Value != nil || !c.Attrs.Encrypted || c.Attrs.Size != len(w.value) {
					t.Fatalf("change %d: value %q sealed %v attrs %+v, want sealed nil", i, c.Value, c.Sealed, c.Attrs)
				}
			}
		}
	}
	t.Run("with passphrase", func(t *testing.T) { check(t, s, true) })
	closeT(t, s)
	t.Run("without passphrase", func(t *testing.T) {
		s := openT(t, dir, Options{})
		check(t, s, false)
		closeT(t, s)
	})
	t.Run("wrong passphrase", func(t *testing.T) {
		s := openT(t, dir, Options{Passphrases: []string{"nope"}})
		check(t, s, false)
		closeT(t, s)
	})
}

// ---------------------------------------------------------------------------
// bad input and limits

func TestLimits(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, Options{MaxKeySize: 16, MaxValueSize: 32})
	long := bytes.Repeat(b("k"), 17)
	okKey := bytes.Repeat(b("k"), 16)
	big := bytes.Repeat(b("v"), 33)
	okVal := bytes.Repeat(b("v"), 32)
	v := b("v")
	ops := []struct {
		name string
		call func(key, val []byte) error
	}{
		{"Set", func(k, val []byte) error { return s.Set(ctx, k, val, 0) }},
		{"Get", func(k, _ []byte) error { _, err := s.Get(ctx, k); return err }},
		{"GetWithAttrs", func(k, _ []byte) error { _, _, err := s.GetWithAttrs(ctx, k); return err }},
		{"Attributes", func(k, _ []byte) error { _, err := s.Attributes(ctx, k); return err }},
		{"Delete", func(k, _ []byte) error { return s.Delete(ctx, k) }},
		{"DeleteAll", func(k, _ []byte) error { return s.DeleteAll(ctx, k) }},
		{"SetSubkey parent", func(k, val []byte) error { return s.SetSubkey(ctx, k, b("sub"), val, 0) }},
		{"SetSubkey subkey", func(k, val []byte) error { return s.SetSubkey(ctx, b("parent"), k, val, 0) }},
		{"Subkeys", func(k, _ []byte) error { _, err := s.Subkeys(ctx, k); return err }},
		{"DeleteSubkey parent", func(k, _ []byte) error { return s.DeleteSubkey(ctx, k, b("sub"), false) }},
		{"DeleteSubkey subkey", func(k, _ []byte) error { return s.DeleteSubkey(ctx, b("parent"), k, false) }},
		{"Push", func(k, val []byte) error { return s.Push(ctx, k, val) }},
		{"PushKeyed name", func(k, val []byte) error { return s.PushKeyed(ctx, k, b("ik"), val) }},
		{"PushKeyed key", func(k, val []byte) error { return s.PushKeyed(ctx, b("kq"), k, val) }},
		{"Pop", func(k, _ []byte) error { _, err := s.Pop(ctx, k, Front); return err }},
		{"Peek", func(k, _ []byte) error { _, err := s.Peek(ctx, k, Front); return err }},
		{"RemoveItems", func(k, _ []byte) error { _, err := s.RemoveItems(ctx, k, Front, 1); return err }},
		{"QueueLen", func(k, _ []byte) error { _, _, err := s.QueueLen(ctx, k); return err }},
		{"CASInit", func(k, _ []byte) error { return s.CASInit(ctx, k, 8, 1) }},
		{"CASGet", func(k, _ []byte) error { _, err := s.CASGet(ctx, k, 8); return err }},
		{"CASSet", func(k, _ []byte) error { _, _, err := s.CASSet(ctx, k, 8, 0, 1); return err }},
		{"CASAdd", func(k, _ []byte) error { _, err := s.CASAdd(ctx, k, 8, 1); return err }},
		{"Apply", func(k, val []byte) error {
			var bt Batch
			bt.Set(k, val, 0)
			return s.Apply(ctx, &bt)
		}},
	}
	valueOps := map[string]bool{"Set": true, "SetSubkey parent": true, "SetSubkey subkey": true, "Push": true, "PushKeyed name": true, "PushKeyed key": true, "Apply": true}
	for i, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			err := op.call(nil, v)
			wantErr(t, err, ErrInvalid)
			if !strings.Contains(err.Error(), "empty") {
				t.Fatalf("empty key: message %q does not say empty", err)
			}
			err = op.call([]byte{}, v)
			wantErr(t, err, ErrInvalid)
			err = op.call(long, v)
			wantErr(t, err, ErrInvalid)
			if !strings.Contains(err.Error(), "17 bytes") || !strings.Contains(err.Error(), "16 bytes") {
				t.Fatalf("long key: message %q does not name the sizes", err)
			}
			// At the limit: not ErrInvalid.
			if err := op.call(okKey, v); errors.Is(err, ErrInvalid) {
				t.Fatalf("16-byte key refused: %v", err)
			}
			if valueOps[op.name] {
				key := b(fmt.Sprint("value-op-", i)) // a name of its own per op
				err = op.call(key, big)
				wantErr(t, err, ErrInvalid)
				if !strings.Contains(err.Error(), "33 bytes") || !strings.Contains(err.Error(), "32 bytes") {
					t.Fatalf("big value: message %q does not name the sizes", err)
				}
				if err := op.call(key, okVal); err != nil {
					t.Fatalf("32-byte value refused: %v", err)
				}
			}
		})
	}
	t.Run("default limits", func(t *testing.T) {
		s := newStore(t, Options{})
		err := s.Set(ctx, bytes.Repeat(b("k"), 64<<10+1), v, 0)
		wantErr(t, err, ErrInvalid)
		if !strings.Contains(err.Error(), "65537 bytes") || !strings.Contains(err.Error(), "65536 bytes") {
			t.Fatalf("message %q", err)
		}
		must(t, s.Set(ctx, bytes.Repeat(b("k"), 64<<10), v, 0))
		err = s.Set(ctx, b("k"), make([]byte, 16<<20+1), 0)
		wantErr(t, err, ErrInvalid)
		if !strings.Contains(err.Error(), "16777217 bytes") || !strings.Contains(err.Error(), "16777216 bytes") {
			t.Fatalf("message %q", err)
		}
	})
	t.Run("bad options", func(t *testing.T) {
		for name, o := range map[string]Options{
			"MaxKeySize":   {MaxKeySize: -1},
			"MaxValueSize": {MaxValueSize: -1},
			"DefaultTTL":   {DefaultTTL: -time.Second},
			"ReapInterval": {ReapInterval: -time.Second},
		} {
			dir := filepath.Join(t.TempDir(), "store")
			o.Logger = quietLogger()
			_, err := Open(dir, o)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), name) {
				t.Fatalf("%s: err = %v", name, err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s: Open with bad options created the directory", name)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// opening, locking, damage, closing

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	must(t, s.Set(t.Context(), b("k"), b("v"), 0))
	_, err := Open(dir, Options{Logger: quietLogger()})
	wantErr(t, err, ErrLocked)
	if !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("ErrLocked message %q does not name our pid %d", err, os.Getpid())
	}
	// The refused Open did not disturb the open store.
	wantGet(t, s, "k", "v")
	closeT(t, s)
	s = openT(t, dir, Options{})
	wantGet(t, s, "k", "v")
}

func TestOpenForeignDirectory(t *testing.T) {
	t.Run("non-empty without marker", func(t *testing.T) {
		dir := t.TempDir()
		must(t, os.WriteFile(filepath.Join(dir, "notes.txt"), b("mine"), 0o644))
		_, err := Open(dir, Options{Logger: quietLogger()})
		if err == nil || !strings.Contains(err.Error(), "not a kura store") {
			t.Fatalf("err = %v, want one saying it is not a kura store", err)
		}
		if _, err := os.Stat(filepath.Join(dir, markerFile)); !errors.Is(err, os.ErrNotExist) {
			t.Fatal("Open wrote a marker into a foreign directory")
		}
		got, _ := os.ReadFile(filepath.Join(dir, "notes.txt"))
		if string(got) != "mine" {
			t.Fatal("foreign file changed")
		}
	})
	t.Run("subdirectory only", func(t *testing.T) {
		dir := t.TempDir()
		must(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
		_, err := Open(dir, Options{Logger: quietLogger()})
		if err == nil || !strings.Contains(err.Error(), "not a kura store") {
			t.Fatalf("err = %v", err)
		}
	})
	formats := []string{"kura store format 2\n", "kura store format 1", "something else\n", ""}
	for _, f := range formats {
		t.Run(fmt.Sprintf("marker %q", f), func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{})
			closeT(t, s)
			must(t, os.WriteFile(filepath.Join(dir, markerFile), b(f), 0o644))
			_, err := Open(dir, Options{Logger: quietLogger()})
			if err == nil || !strings.Contains(err.Error(), "format") {
				t.Fatalf("err = %v, want a format error", err)
			}
		})
	}
	t.Run("new directory is created and marked", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "b")
		s := openT(t, dir, Options{})
		if s.Dir() != dir {
			t.Fatalf("Dir = %q", s.Dir())
		}
		got, err := os.ReadFile(filepath.Join(dir, markerFile))
		must(t, err)
		if string(got) != formatLine {
			t.Fatalf("marker = %q", got)
		}
	})
}

func TestOpenDamaged(t *testing.T) {
	manifests := func(t *testing.T, dir string) []string {
		t.Helper()
		m, err := filepath.Glob(filepath.Join(dir, "MANIFEST-*"))
		must(t, err)
		if len(m) == 0 {
			t.Fatal("no MANIFEST file in the store")
		}
		return m
	}
	garbage := func(n int) []byte {
		g := make([]byte, n)
		rand.Read(g)
		return g
	}
	damages := []struct {
		name   string
		damage func(t *testing.T, dir string)
	}{
		{"manifest overwritten with garbage", func(t *testing.T, dir string) {
			for _, m := range manifests(t, dir) {
				fi, err := os.Stat(m)
				must(t, err)
				must(t, os.WriteFile(m, garbage(int(fi.Size())), 0o644))
			}
		}},
		{"manifest replaced by 4 KiB of garbage", func(t *testing.T, dir string) {
			for _, m := range manifests(t, dir) {
				must(t, os.WriteFile(m, garbage(4096), 0o644))
			}
		}},
		{"manifest truncated to 0 bytes", func(t *testing.T, dir string) {
			for _, m := range manifests(t, dir) {
				must(t, os.Truncate(m, 0))
			}
		}},
		{"manifest deleted", func(t *testing.T, dir string) {
			for _, m := range manifests(t, dir) {
				must(t, os.Remove(m))
			}
		}},
	}
	for _, tc := range damages {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{})
			for i := range 100 {
				must(t, s.Set(t.Context(), b(fmt.Sprint("k", i)), b("v"), 0))
			}
			closeT(t, s)
			tc.damage(t, dir)
			for attempt := range 2 { // the second attempt must not find the directory locked
				var err error
				func() {
					defer func() {
						if r := recover(); r != nil {
							t.Fatalf("Open panicked: %v", r)
						}
					}()
					var s *Store
					s, err = Open(dir, Options{Logger: quietLogger()})
					if err == nil {
						s.Close()
					}
				}()
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("attempt %d: Open of a damaged store: err = %v, want ErrCorrupt", attempt, err)
				}
			}
		})
	}
}

func TestClosed(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, Options{})
	must(t, s.Set(ctx, b("k"), b("v"), 0))
	must(t, s.Push(ctx, b("q"), b("v")))
	must(t, s.CASInit(ctx, b("n"), 8, 1))
	closeT(t, s)
	must(t, s.Close()) // twice is fine
	ops := map[string]func() error{
		"Get":          func() error { _, err := s.Get(ctx, b("k")); return err },
		"GetWithAttrs": func() error { _, _, err := s.GetWithAttrs(ctx, b("k")); return err },
		"Attributes":   func() error { _, err := s.Attributes(ctx, b("k")); return err },
		"Set":          func() error { return s.Set(ctx, b("k"), b("v"), 0) },
		"Delete":       func() error { return s.Delete(ctx, b("k")) },
		"DeleteAll":    func() error { return s.DeleteAll(ctx, b("k")) },
		"Scan":         func() error { _, _, err := s.Scan(ctx, nil, nil, 10); return err },
		"Apply": func() error {
			var bt Batch
			bt.Set(b("k"), b("v"), 0)
			return s.Apply(ctx, &bt)
		},
		"SetSubkey":    func() error { return s.SetSubkey(ctx, b("k"), b("s"), b("v"), 0) },
		"Subkeys":      func() error { _, err := s.Subkeys(ctx, b("k")); return err },
		"DeleteSubkey": func() error { return s.DeleteSubkey(ctx, b("k"), b("s"), true) },
		"Push":         func() error { return s.Push(ctx, b("q"), b("v")) },
		"PushKeyed":    func() error { return s.PushKeyed(ctx, b("kq"), b("k2"), b("v")) },
		"Pop":          func() error { _, err := s.Pop(ctx, b("q"), Front); return err },
		"Peek":         func() error { _, err := s.Peek(ctx, b("q"), Back); return err },
		"RemoveItems":  func() error { _, err := s.RemoveItems(ctx, b("q"), Front, 1); return err },
		"QueueLen":     func() error { _, _, err := s.QueueLen(ctx, b("q")); return err },
		"CASInit":      func() error { return s.CASInit(ctx, b("n"), 8, 1) },
		"CASGet":       func() error { _, err := s.CASGet(ctx, b("n"), 8); return err },
		"CASSet":       func() error { _, _, err := s.CASSet(ctx, b("n"), 8, 1, 2); return err },
		"CASAdd":       func() error { _, err := s.CASAdd(ctx, b("n"), 8, 1); return err },
		"ReapExpired":  func() error { _, err := s.ReapExpired(ctx); return err },
		"NextChange":   func() error { _, err := s.NextChange(deadline(t), 0); return err },
		"SetCursor":    func() error { return s.SetCursor(ctx, "c", 1) },
		"Cursor":       func() error { _, err := s.Cursor(ctx, "c"); return err },
		"DropCursor":   func() error { return s.DropCursor(ctx, "c") },
		"FirstSeq":     func() error { _, err := s.FirstSeq(); return err },
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range ops {
			if !yield(k) {
				return
			}
		}
	}) {
		t.Run(name, func(t *testing.T) {
			wantErr(t, ops[name](), ErrClosed)
		})
	}
}

// TestCloseWhileBusy closes the store under concurrent writers and readers:
// each operation either succeeds or reports ErrClosed, nothing panics, and
// what was acknowledged is there after reopening.
func TestCloseWhileBusy(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{NoSync: true})
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[string]bool{}
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				k := fmt.Sprintf("w%d-%d", w, i)
				var err error
				switch i % 4 {
				case 0, 1:
					err = s.Set(ctx, b(k), b("v"), 0)
					if err == nil {
						mu.Lock()
						acked[k] = true
						mu.Unlock()
					}
				case 2:
					_, err = s.Get(ctx, b(fmt.Sprintf("w%d-%d", w, i-2)))
				case 3:
					err = s.Push(ctx, b("q"), b(k))
				}
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("%s: %v", k, err)
					return
				}
			}
		})
	}
	time.Sleep(20 * time.Millisecond) // let them run a little; not an assertion
	closeT(t, s)
	wg.Wait()
	s = openT(t, dir, Options{})
	mu.Lock()
	defer mu.Unlock()
	if len(acked) == 0 {
		t.Log("no write was acknowledged before Close")
	}
	for k := range acked {
		wantGet(t, s, k, "v")
	}
}

func TestDeleteParentWithoutValue(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, Options{})
	must(t, s.SetSubkey(ctx, b("p"), b("c1"), b("v1"), 0))
	must(t, s.SetSubkey(ctx, b("c1"), b("g"), b("v2"), 0))
	must(t, s.DeleteAll(ctx, b("p")))
	for _, k := range []string{"c1", "g"} {
		if _, err := s.Get(ctx, b(k)); !IsNotFound(err) {
			t.Fatalf("%s after DeleteAll of its value-less parent: %v", k, err)
		}
	}
	must(t, s.SetSubkey(ctx, b("q"), b("d"), b("v"), 0))
	must(t, s.Delete(ctx, b("q")))
	if subs, err := s.Subkeys(ctx, b("q")); err != nil || len(subs) != 0 {
		t.Fatalf("subkeys after Delete: %q %v", subs, err)
	}
	wantGet(t, s, "d", "v")
	wantErr(t, s.Delete(ctx, b("q")), ErrNotFound)
}
