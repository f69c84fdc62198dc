package store

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Tests of what a replicated store (one Store per shard, driven by a Raft
// apply loop) needs: WithTime, the commit stamp, key references in queues,
// subkey links, Take, Checkpoint, Sync and Options.NoReaper.

// ---------------------------------------------------------------------------
// WithTime

func TestWithTime(t *testing.T) {
	base := t.Context()
	clock := newTestClock()
	t0 := clock.Now()
	later := t0.Add(time.Hour)
	at := func(tm time.Time) context.Context { return WithTime(base, tm) }

	t.Run("set stamps mtime and expiry from the context", func(t *testing.T) {
		s := newStore(t, Options{Clock: clock.Now})
		must(t, s.Set(at(later), b("k"), b("v"), 10*time.Second))
		a, err := s.Attributes(base, b("k"))
		must(t, err)
		if !a.Modified.Equal(later) || !a.Expires.Equal(later.Add(10*time.Second)) {
			t.Fatalf("attrs %+v, want modified %v, expires %v", a, later, later.Add(10*time.Second))
		}
		// The store's clock is an hour behind: the value is live for it, and
		// for a context just before the expiry, but not at the expiry.
		wantGet(t, s, "k", "v")
		v, err := s.Get(at(later.Add(10*time.Second-1)), b("k"))
		must(t, err)
		if string(v) != "v" {
			t.Fatalf("Get = %q", v)
		}
		_, err = s.Get(at(later.Add(10*time.Second)), b("k"))
		wantErr(t, err, ErrNotFound)
		_, _, err = s.GetWithAttrs(at(later.Add(10*time.Second)), b("k"))
		wantErr(t, err, ErrNotFound)
		_, err = s.Attributes(at(later.Add(10*time.Second)), b("k"))
		wantErr(t, err, ErrNotFound)
	})

	t.Run("every operation reads the context's time", func(t *testing.T) {
		s := newStore(t, Options{Clock: clock.Now, DefaultTTL: time.Minute})
		gone := at(t0.Add(time.Minute)) // everything written at t0 has expired
		must(t, s.Set(base, b("k"), b("v"), 0))
		must(t, s.SetSubkey(base, b("p"), b("sub"), b("v"), 0))
		must(t, s.PushKeyed(base, b("q"), b("item"), b("v"))) // keyed items never expire
		var bt Batch
		bt.Set(b("a"), b("v"), 0)
		must(t, s.Apply(base, &bt))
		must(t, s.CASInit(base, b("n"), 8, 1)) // CAS integers never expire
		must(t, s.Set(base, b("item2"), b("v"), 0))
		must(t, s.PushKeyRef(base, b("q"), b("item2")))

		kvs, _, err := s.Scan(gone, nil, nil, 10)
		must(t, err)
		var keys []string
		for _, kv := range kvs {
			keys = append(keys, string(kv.Key))
		}
		if !slices.Equal(keys, []string{"item", "n"}) {
			t.Fatalf("Scan at expiry = %q, want [item n]", keys)
		}
		subs, err := s.Subkeys(gone, b("p"))
		must(t, err)
		if len(subs) != 0 {
			t.Fatalf("Subkeys at expiry = %q", subs)
		}
		wantErr(t, s.Delete(gone, b("k")), ErrNotFound)
		wantErr(t, s.DeleteAll(gone, b("a")), ErrNotFound)
		_, err = s.Take(gone, b("k"))
		wantErr(t, err, ErrNotFound)
		// The store's own clock still sees them.
		wantGet(t, s, "k", "v")
		wantGet(t, s, "a", "v")
		wantSubkeys(t, s, "p", "sub")

		// CAS writes take their mtime from the context.
		_, err = s.CASAdd(at(later), b("n"), 8, 1)
		must(t, err)
		a, err := s.Attributes(base, b("n"))
		must(t, err)
		if !a.Modified.Equal(later) {
			t.Fatalf("CAS modified %v, want %v", a.Modified, later)
		}
		ok, _, err := s.CASSet(at(later.Add(time.Second)), b("n"), 8, 2, 3)
		must(t, err)
		a, err = s.Attributes(base, b("n"))
		must(t, err)
		if !ok || !a.Modified.Equal(later.Add(time.Second)) {
			t.Fatalf("CASSet ok %v, modified %v", ok, a.Modified)
		}

		// A keyed item whose key expired as of the context pops without value.
		it, err := s.Pop(gone, b("q"), Back)
		must(t, err)
		if string(it.Key) != "item2" || it.Value != nil {
			t.Fatalf("Pop at expiry = %q/%q, want item2 with no value", it.Key, it.Value)
		}
		it, err = s.Pop(gone, b("q"), Back)
		must(t, err)
		if string(it.Key) != "item" || string(it.Value) != "v" {
			t.Fatalf("Pop = %q/%q, want item/v", it.Key, it.Value)
		}
	})

	t.Run("change feed times", func(t *testing.T) {
		s := newStore(t, Options{Clock: clock.Now})
		must(t, s.Set(at(later), b("k"), b("v"), -1))
		must(t, s.Push(at(later.Add(1)), b("q"), b("v")))
		_, err := s.Pop(at(later.Add(2)), b("q"), Front)
		must(t, err)
		must(t, s.SetSubkey(at(later.Add(3)), b("p"), b("c"), b("v"), -1))
		must(t, s.DeleteSubkey(at(later.Add(4)), b("p"), b("c"), false))
		must(t, s.Delete(at(later.Add(5)), b("k")))
		cs := readChanges(t, s, 0)
		want := []time.Duration{0, 1, 2, 3, 4, 4, 5}
		if len(cs) != len(want) {
			t.Fatalf("%d changes, want %d", len(cs), len(want))
		}
		for i, c := range cs {
			if !c.Time.Equal(later.Add(want[i])) {
				t.Fatalf("change %d (%s) at %v, want %v", i, c.Op, c.Time, later.Add(want[i]))
			}
		}
	})

	t.Run("plain queue items carry the context's time", func(t *testing.T) {
		s := newStore(t, Options{Clock: clock.Now})
		must(t, s.Push(at(later), b("q"), b("v")))
		raw, err := s.get(itemKey(b("q"), queueStart))
		must(t, err)
		r, err := decodeRecord(raw)
		must(t, err)
		if r.mtime != later.UnixNano() {
			t.Fatalf("item mtime %v, want %v", unixTime(r.mtime), later)
		}
	})

	t.Run("nested contexts: the innermost time wins", func(t *testing.T) {
		s := newStore(t, Options{Clock: clock.Now})
		ctx, cancel := context.WithCancel(WithTime(at(t0.Add(time.Minute)), later))
		defer cancel()
		must(t, s.Set(ctx, b("k"), b("v"), -1))
		a, err := s.Attributes(base, b("k"))
		must(t, err)
		if !a.Modified.Equal(later) {
			t.Fatalf("modified %v, want %v", a.Modified, later)
		}
	})
}

func TestReapExpiredWithTime(t *testing.T) {
	ctx := t.Context()
	clock := newTestClock()
	t0 := clock.Now()
	s := newStore(t, Options{Clock: clock.Now})
	must(t, s.Set(ctx, b("short"), b("v"), 10*time.Second))
	must(t, s.Set(ctx, b("long"), b("v"), time.Hour))
	n, err := s.ReapExpired(ctx)
	must(t, err)
	if n != 0 {
		t.Fatalf("reaped %d by the store's clock, want 0", n)
	}
	n, err = s.ReapExpired(WithTime(ctx, t0.Add(10*time.Second)))
	must(t, err)
	if n != 1 {
		t.Fatalf("reaped %d at +10s, want 1", n)
	}
	// Deleted for good: not there even for a reader at t0.
	_, err = s.getRecord(b("short"), t0.UnixNano())
	wantErr(t, err, ErrNotFound)
	wantGet(t, s, "long", "v")
	cs := readChanges(t, s, 0)
	if last := cs[len(cs)-1]; last.Op != OpExpire || string(last.Key) != "short" || !last.Time.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("last change %+v, want expire of short at +10s", last)
	}
}

func TestNoReaper(t *testing.T) {
	ctx := t.Context()
	for _, noReaper := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoReaper=%v", noReaper), func(t *testing.T) {
			clock := newTestClock()
			t0 := clock.Now()
			s := newStore(t, Options{Clock: clock.Now, NoReaper: noReaper, ReapInterval: 5 * time.Millisecond})
			must(t, s.Set(ctx, b("k"), b("v"), time.Second))
			clock.Advance(time.Second)
			wantMissing(t, s, "k") // invisible either way
			present := func() bool {
				t.Helper()
				_, err := s.getRecord(b("k"), t0.UnixNano())
				if err != nil && !IsNotFound(err) {
					t.Fatal(err)
				}
				return err == nil
			}
			if !noReaper {
				// The control: the background reaper deletes the value.
				for end := time.Now().Add(10 * time.Second); present(); time.Sleep(5 * time.Millisecond) {
					if time.Now().After(end) {
						t.Fatal("the background reaper did not delete the expired value")
					}
				}
				return
			}
			time.Sleep(100 * time.Millisecond) // twenty reap intervals
			if !present() {
				t.Fatal("the expired value was reaped in the background despite NoReaper")
			}
			n, err := s.ReapExpired(ctx)
			must(t, err)
			if n != 1 || present() {
				t.Fatalf("ReapExpired deleted %d, value present %v", n, present())
			}
		})
	}
}

func TestNoReaperStillTrimsChangeLog(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, Options{NoReaper: true, ReapInterval: 5 * time.Millisecond, ChangeLogRetention: 3})
	for i := range 10 {
		must(t, s.Set(ctx, b("k"), []byte(strconv.Itoa(i)), -1))
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		first, err := s.FirstSeq()
		must(t, err)
		if first == s.LastSeq()-2 {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("change log not trimmed: first %d, last %d", first, s.LastSeq())
		}
	}
}

// ---------------------------------------------------------------------------
// commit stamp

func wantStamp(t testing.TB, s *Store, want []byte) {
	t.Helper()
	got, err := s.Stamp()
	must(t, err)
	if (got == nil) != (want == nil) || !bytes.Equal(got, want) {
		t.Fatalf("Stamp() = %q (nil %v), want %q (nil %v)", got, got == nil, want, want == nil)
	}
}

func TestStamp(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	wantStamp(t, s, nil)
	must(t, s.Set(ctx, b("k"), b("v"), -1)) // no stamp set: none written
	wantStamp(t, s, nil)

	stamp := b("1")
	s.SetStamp(stamp)
	stamp[0] = 'X' // SetStamp copied it
	must(t, s.Set(ctx, b("k"), b("v"), -1))
	wantStamp(t, s, b("1"))

	// Mutations that fail, and no-ops, write nothing.
	s.SetStamp(b("2"))
	wantErr(t, s.Delete(ctx, b("missing")), ErrNotFound)
	wantErr(t, s.DeleteAll(ctx, b("missing")), ErrNotFound)
	wantErr(t, s.DeleteSubkey(ctx, b("k"), b("missing"), false), ErrNotFound)
	_, err := s.Pop(ctx, b("empty"), Front)
	wantErr(t, err, ErrNotFound)
	_, err = s.CASAdd(ctx, b("missing"), 8, 1)
	wantErr(t, err, ErrNotFound)
	_, err = s.CASAdd(ctx, b("k"), 8, 1)
	wantErr(t, err, ErrTypeMismatch)
	_, err = s.Take(ctx, b("missing"))
	wantErr(t, err, ErrNotFound)
	must(t, s.UnlinkSubkey(ctx, b("k"), b("missing")))
	wantErr(t, s.Set(ctx, nil, b("v"), -1), ErrInvalid)
	wantStamp(t, s, b("1"))
	must(t, s.Push(ctx, b("plain"), b("v")))
	wantStamp(t, s, b("2"))
	s.SetStamp(b("3"))
	wantErr(t, s.PushKeyRef(ctx, b("plain"), b("k")), ErrTypeMismatch)
	_, err = s.Peek(ctx, b("plain"), Front) // a read
	must(t, err)
	wantStamp(t, s, b("2"))

	// Every kind of mutation writes it.
	muts := []struct {
		name string
		f    func() error
	}{
		{"Set", func() error { return s.Set(ctx, b("a"), b("v"), -1) }},
		{"Apply", func() error { var bt Batch; bt.Set(b("b"), b("v"), -1); return s.Apply(ctx, &bt) }},
		{"SetSubkey", func() error { return s.SetSubkey(ctx, b("p"), b("c"), b("v"), -1) }},
		{"LinkSubkey", func() error { return s.LinkSubkey(ctx, b("p"), b("d")) }},
		{"UnlinkSubkey", func() error { return s.UnlinkSubkey(ctx, b("p"), b("d")) }},
		{"DeleteSubkey", func() error { return s.DeleteSubkey(ctx, b("p"), b("c"), true) }},
		{"Push", func() error { return s.Push(ctx, b("plain"), b("v")) }},
		{"PushKeyed", func() error { return s.PushKeyed(ctx, b("keyed"), b("e"), b("v")) }},
		{"PushKeyRef", func() error { return s.PushKeyRef(ctx, b("keyed"), b("f")) }},
		{"Pop", func() error { _, err := s.Pop(ctx, b("keyed"), Front); return err }},
		{"RemoveItems", func() error { _, err := s.RemoveItems(ctx, b("plain"), Back, 5); return err }},
		{"CASInit", func() error { return s.CASInit(ctx, b("n"), 16, 7) }},
		{"CASAdd", func() error { _, err := s.CASAdd(ctx, b("n"), 16, 1); return err }},
		{"CASSet", func() error { _, _, err := s.CASSet(ctx, b("n"), 16, 8, 9); return err }},
		{"Take", func() error { _, err := s.Take(ctx, b("a")); return err }},
		{"Delete", func() error { return s.Delete(ctx, b("b")) }},
		{"DeleteAll", func() error { return s.DeleteAll(ctx, b("k")) }},
	}
	for i, m := range muts {
		st := []byte(fmt.Sprintf("m%d", i))
		s.SetStamp(st)
		if err := m.f(); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		got, err := s.Stamp()
		must(t, err)
		if !bytes.Equal(got, st) {
			t.Fatalf("after %s: Stamp() = %q, want %q", m.name, got, st)
		}
	}

	// The reaper's commits too.
	clockNow := time.Now()
	must(t, s.Set(WithTime(ctx, clockNow.Add(-time.Hour)), b("old"), b("v"), time.Second))
	s.SetStamp(b("reap"))
	n, err := s.ReapExpired(ctx)
	must(t, err)
	if n != 1 {
		t.Fatalf("reaped %d, want 1", n)
	}
	wantStamp(t, s, b("reap"))

	// An empty stamp is a stamp; nil stops stamping and keeps the last one.
	s.SetStamp([]byte{})
	must(t, s.Set(ctx, b("k"), b("v"), -1))
	wantStamp(t, s, []byte{})
	s.SetStamp(b("last"))
	must(t, s.Set(ctx, b("k"), b("v"), -1))
	s.SetStamp(nil)
	must(t, s.Set(ctx, b("k"), b("v2"), -1))
	wantStamp(t, s, b("last"))

	// It survives a restart, without being set again.
	closeT(t, s)
	_, err = s.Stamp()
	wantErr(t, err, ErrClosed)
	s = openT(t, dir, Options{})
	wantStamp(t, s, b("last"))
	wantGet(t, s, "k", "v2")
}

func TestStampChangeLogOff(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s, err := Open(dir, Options{Logger: quietLogger(), NoSync: true})
	must(t, err)
	t.Cleanup(func() { s.Close() }) // whichever s is open at the end
	if s.ChangeLogOn() {
		t.Fatal("change log on by default")
	}
	s.SetStamp(b("7"))
	must(t, s.Set(ctx, b("k"), b("v"), -1))
	wantStamp(t, s, b("7"))
	must(t, s.Close())
	s, err = Open(dir, Options{Logger: quietLogger()})
	must(t, err)
	wantStamp(t, s, b("7"))
}

func TestStampConcurrent(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, Options{NoSync: true})
	var wg sync.WaitGroup
	var stop atomic.Bool
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				key := []byte(fmt.Sprintf("w%d-%d", w, i%50))
				if err := s.Set(ctx, key, key, -1); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.Stamp(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for i := range 500 {
		s.SetStamp([]byte(strconv.Itoa(i)))
		if i%100 == 0 {
			s.SetStamp(nil)
		}
	}
	stop.Store(true)
	wg.Wait()
	s.SetStamp(b("final"))
	must(t, s.Set(ctx, b("k"), b("v"), -1))
	wantStamp(t, s, b("final"))
}

// ---------------------------------------------------------------------------
// keyed queues of key references

func TestPushKeyRef(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, Options{})
	must(t, s.PushKeyRef(ctx, b("q"), b("a")))
	must(t, s.Set(ctx, b("b"), b("vb"), -1))
	must(t, s.PushKeyRef(ctx, b("q"), b("b")))
	must(t, s.PushKeyed(ctx, b("q"), b("c"), b("vc"))) // kinds mix: both keyed
	must(t, s.PushKeyRef(ctx, b("q"), b("d")))
	wantMissing(t, s, "a") // not set by the push
	wantMissing(t, s, "d")
	n, kind, err := s.QueueLen(ctx, b("q"))
	must(t, err)
	if n != 4 || kind != KeyedQueue {
		t.Fatalf("QueueLen = %d %s, want 4 keyed", n, kind)
	}
	check := func(it QueueItem, err error, key string, value []byte) {
		t.Helper()
		must(t, err)
		if string(it.Key) != key || !bytes.Equal(it.Value, value) || (it.Value == nil) != (value == nil) {
			t.Fatalf("item %q/%q, want %q/%q", it.Key, it.Value, key, value)
		}
	}
	it, err := s.Peek(ctx, b("q"), Front)
	check(it, err, "a", nil)
	it, err = s.Peek(ctx, b("q"), Back)
	check(it, err, "d", nil)
	it, err = s.Pop(ctx, b("q"), Front)
	check(it, err, "a", nil)
	it, err = s.Pop(ctx, b("q"), Front) // a reference to a key that has a value here: as for any keyed item
	check(it, err, "b", b("vb"))
	wantMissing(t, s, "b")
	it, err = s.Pop(ctx, b("q"), Back)
	check(it, err, "d", nil)
	it, err = s.Pop(ctx, b("q"), Back)
	check(it, err, "c", b("vc"))
	_, err = s.Pop(ctx, b("q"), Back)
	wantErr(t, err, ErrNotFound)

	// Kind rules and checks are PushKeyed's.
	must(t, s.Push(ctx, b("plain"), b("v")))
	wantErr(t, s.PushKeyRef(ctx, b("plain"), b("k")), ErrTypeMismatch)
	must(t, s.PushKeyRef(ctx, b("keyed"), b("k")))
	wantErr(t, s.Push(ctx, b("keyed"), b("v")), ErrTypeMismatch)
	wantErr(t, s.PushKeyRef(ctx, nil, b("k")), ErrInvalid)
	wantErr(t, s.PushKeyRef(ctx, b("keyed"), nil), ErrInvalid)
	long := bytes.Repeat(b("x"), 65<<10)
	wantErr(t, s.PushKeyRef(ctx, b("keyed"), long), ErrInvalid)
	wantErr(t, s.PushKeyRef(ctx, long, b("k")), ErrInvalid)
	// Once empty, the queue forgets its kind.
	_, err = s.RemoveItems(ctx, b("plain"), Front, 10)
	must(t, err)
	must(t, s.PushKeyRef(ctx, b("plain"), b("k")))

	// The change feed reports the push, with the key and no value.
	cs := readChanges(t, s, 0)
	if c := cs[0]; c.Op != OpQueuePush || string(c.Key) != "q" || string(c.Subkey) != "a" || c.Value != nil {
		t.Fatalf("first change %+v, want a push of a on q with no value", c)
	}
}

func TestPushKeyRefEncrypted(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, Options{Passphrases: []string{"pw"}})
	must(t, s.PushKeyRef(ctx, b("q"), b("a")))
	must(t, s.PushKeyed(ctx, b("q"), b("b"), b("secret")))
	it, err := s.Pop(ctx, b("q"), Front)
	must(t, err)
	if string(it.Key) != "a" || it.Value != nil {
		t.Fatalf("Pop = %q/%q", it.Key, it.Value)
	}
	it, err = s.Pop(ctx, b("q"), Front)
	must(t, err)
	if string(it.Key) != "b" || string(it.Value) != "secret" {
		t.Fatalf("Pop = %q/%q", it.Key, it.Value)
	}
}

// ---------------------------------------------------------------------------
// subkey links

func wantIndex(t testing.TB, s *Store, parent string, want ...string) {
	t.Helper()
	got, err := s.SubkeyIndex(t.Context(), b(parent))
	must(t, err)
	if g := strs(got); !slices.Equal(g, append([]string{}, want...)) {
		t.Fatalf("SubkeyIndex(%q) = %q, want %q", parent, g, want)
	}
}

func TestLinkSubkey(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, Options{})
	wantIndex(t, s, "p")
	must(t, s.LinkSubkey(ctx, b("p"), b("y")))
	must(t, s.LinkSubkey(ctx, b("p"), b("x")))
	must(t, s.LinkSubkey(ctx, b("p"), b("x"))) // twice: still once
	must(t, s.SetSubkey(ctx, b("p"), b("z"), b("vz"), -1))
	wantIndex(t, s, "p", "x", "y", "z")
	wantSubkeys(t, s, "p", "z") // only z has a value here
	wantMissing(t, s, "x")      // linking writes no value
	must(t, s.Set(ctx, b("x"), b("vx"), -1))
	wantSubkeys(t, s, "p", "x", "z")

	// Unlinking keeps the value; a missing entry is no error.
	must(t, s.UnlinkSubkey(ctx, b("p"), b("x")))
	wantGet(t, s, "x", "vx")
	wantIndex(t, s, "p", "y", "z")
	wantSubkeys(t, s, "p", "z")
	must(t, s.UnlinkSubkey(ctx, b("p"), b("x")))
	must(t, s.UnlinkSubkey(ctx, b("nobody"), b("x")))

	// A parent listed only through links exists for Delete, which drops the
	// whole index.
	must(t, s.LinkSubkey(ctx, b("q"), b("x")))
	must(t, s.Delete(ctx, b("q")))
	wantIndex(t, s, "q")
	wantGet(t, s, "x", "vx")

	for _, err := range []error{
		s.LinkSubkey(ctx, nil, b("x")),
		s.LinkSubkey(ctx, b("p"), nil),
		s.UnlinkSubkey(ctx, nil, b("x")),
		s.UnlinkSubkey(ctx, b("p"), nil),
		s.LinkSubkey(ctx, bytes.Repeat(b("x"), 65<<10), b("x")),
	} {
		wantErr(t, err, ErrInvalid)
	}
	_, err := s.SubkeyIndex(ctx, nil)
	wantErr(t, err, ErrInvalid)

	// The feed: a link is a subkey.add without value, an unlink a
	// subkey.del; the no-op unlinks logged nothing.
	var got []string
	for _, c := range readChanges(t, s, 0) {
		if c.Op == OpSubkeyAdd || c.Op == OpSubkeyDel {
			got = append(got, fmt.Sprintf("%s %s/%s %q", c.Op, c.Key, c.Subkey, c.Value))
		}
	}
	want := []string{
		`subkey.add p/y ""`,
		`subkey.add p/x ""`,
		`subkey.add p/x ""`,
		`subkey.add p/z "vz"`,
		`subkey.del p/x ""`,
		`subkey.add q/x ""`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("subkey changes:\n%q\nwant\n%q", got, want)
	}
}

// ---------------------------------------------------------------------------
// Take

func TestTake(t *testing.T) {
	ctx := t.Context()
	clock := newTestClock()
	s := newStore(t, Options{Clock: clock.Now})
	must(t, s.Set(ctx, b("k"), b("v"), -1))
	v, err := s.Take(ctx, b("k"))
	must(t, err)
	if string(v) != "v" {
		t.Fatalf("Take = %q", v)
	}
	wantMissing(t, s, "k")
	_, err = s.Take(ctx, b("k"))
	wantErr(t, err, ErrNotFound)
	_, err = s.Take(ctx, nil)
	wantErr(t, err, ErrInvalid)

	// An empty value is an empty value, not nil.
	must(t, s.Set(ctx, b("e"), nil, -1))
	v, err = s.Take(ctx, b("e"))
	must(t, err)
	if v == nil || len(v) != 0 {
		t.Fatalf("Take of empty value = %#v", v)
	}

	// An expired value is not found, and stays until reaped.
	must(t, s.Set(ctx, b("t"), b("v"), time.Second))
	_, err = s.Take(WithTime(ctx, clock.Now().Add(time.Second)), b("t"))
	wantErr(t, err, ErrNotFound)
	wantGet(t, s, "t", "v")

	// Only the value goes: the key's subkey list stays.
	must(t, s.SetSubkey(ctx, b("p"), b("c"), b("vc"), -1))
	must(t, s.Set(ctx, b("p"), b("vp"), -1))
	v, err = s.Take(ctx, b("p"))
	must(t, err)
	if string(v) != "vp" {
		t.Fatalf("Take = %q", v)
	}
	wantSubkeys(t, s, "p", "c")

	cs := readChanges(t, s, 0)
	if c := cs[1]; c.Op != OpDelete || string(c.Key) != "k" {
		t.Fatalf("change of Take %+v, want delete of k", c)
	}
}

func TestTakeConcurrent(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, Options{NoSync: true})
	for round := range 20 {
		key := []byte(fmt.Sprintf("k%d", round))
		must(t, s.Set(ctx, key, key, -1))
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				v, err := s.Take(ctx, key)
				switch {
				case err == nil:
					if !bytes.Equal(v, key) {
						t.Errorf("Take = %q, want %q", v, key)
					}
					wins.Add(1)
				case !IsNotFound(err):
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("round %d: %d Takes got the value, want 1", round, n)
		}
	}
}

func TestTakeEncrypted(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := openT(t, dir, Options{Passphrases: []string{"pw"}})
	must(t, s.Set(ctx, b("a"), b("secret a"), -1))
	must(t, s.Set(ctx, b("b"), b("secret b"), -1))
	v, err := s.Take(ctx, b("a"))
	must(t, err)
	if string(v) != "secret a" {
		t.Fatalf("Take = %q", v)
	}
	closeT(t, s)
	s = openT(t, dir, Options{})
	_, err = s.Take(ctx, b("b"))
	wantErr(t, err, ErrNeedPassphrase)
	if _, err := s.Attributes(ctx, b("b")); err != nil { // still there
		t.Fatal(err)
	}
	closeT(t, s)
	s = openT(t, dir, Options{Passphrases: []string{"other"}})
	_, err = s.Take(ctx, b("b"))
	wantErr(t, err, ErrWrongPassphrase)
	if _, err := s.Attributes(ctx, b("b")); err != nil {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------------------
// Checkpoint and Sync

func TestCheckpoint(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"plain", Options{}},
		{"nosync", Options{NoSync: true}},
		{"encrypted", Options{Passphrases: []string{"pw"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, tc.opts)
			s.SetStamp(b("41"))
			must(t, s.SetSubkey(ctx, b("p"), b("c"), b("vc"), -1))
			must(t, s.LinkSubkey(ctx, b("p"), b("remote")))
			must(t, s.Push(ctx, b("q"), b("item")))
			must(t, s.CASInit(ctx, b("n"), 32, 12345))
			must(t, s.SetCursor(ctx, "plugin", 2))
			s.SetStamp(b("42"))
			must(t, s.Set(ctx, b("k"), b("v"), -1))
			lastSeq := s.LastSeq()

			dir := filepath.Join(t.TempDir(), "snapshots", "1") // parents are created
			must(t, s.Checkpoint(dir))
			s.SetStamp(b("43"))
			must(t, s.Set(ctx, b("after"), b("v"), -1)) // not in the copy
			wantErr(t, s.Checkpoint(dir), ErrInvalid)   // dir exists

			c := openT(t, dir, tc.opts)
			wantStamp(t, c, b("42"))
			wantGet(t, c, "k", "v")
			wantGet(t, c, "c", "vc")
			wantMissing(t, c, "after")
			wantIndex(t, c, "p", "c", "remote")
			n, err := c.CASGet(ctx, b("n"), 32)
			must(t, err)
			if n != 12345 {
				t.Fatalf("CASGet = %d", n)
			}
			it, err := c.Pop(ctx, b("q"), Front)
			must(t, err)
			if string(it.Value) != "item" {
				t.Fatalf("Pop = %q", it.Value)
			}
			cur, err := c.Cursor(ctx, "plugin")
			must(t, err)
			if cur != 2 {
				t.Fatalf("Cursor = %d", cur)
			}
			if got := c.LastSeq(); got != lastSeq+1 { // the Pop above
				t.Fatalf("copy's LastSeq = %d, want %d", got, lastSeq+1)
			}
			// The copy is a store of its own; the original is unaffected.
			wantGet(t, s, "after", "v")
			n2, _, err := s.QueueLen(ctx, b("q"))
			must(t, err)
			if n2 != 1 {
				t.Fatalf("original queue length %d after popping the copy's", n2)
			}
			wantStamp(t, s, b("43"))
		})
	}
}

func TestCheckpointOfCheckpointAndClosed(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, Options{})
	s.SetStamp(b("1"))
	must(t, s.Set(ctx, b("k"), b("v"), -1))
	d1 := filepath.Join(t.TempDir(), "c1")
	must(t, s.Checkpoint(d1))
	c1 := openT(t, d1, Options{})
	d2 := filepath.Join(t.TempDir(), "c2")
	must(t, c1.Checkpoint(d2))
	c2 := openT(t, d2, Options{})
	wantGet(t, c2, "k", "v")
	wantStamp(t, c2, b("1"))

	closeT(t, s)
	wantErr(t, s.Checkpoint(filepath.Join(t.TempDir(), "c3")), ErrClosed)
	wantErr(t, s.Sync(), ErrClosed)
}

func TestCheckpointConcurrentWrites(t *testing.T) {
	// Every checkpoint is taken between commits: its stamp names the last
	// write it holds, and it holds every write before.
	ctx := t.Context()
	s := newStore(t, Options{NoSync: true})
	var wg sync.WaitGroup
	var stop atomic.Bool
	t.Cleanup(func() { stop.Store(true); wg.Wait() }) // before the store closes, on failure too
	wg.Go(func() {
		for i := 1; !stop.Load(); i++ {
			s.SetStamp([]byte(strconv.Itoa(i)))
			if err := s.Set(ctx, []byte(fmt.Sprintf("k%08d", i)), nil, -1); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for round := range 5 {
		time.Sleep(10 * time.Millisecond)
		dir := filepath.Join(t.TempDir(), "c")
		must(t, s.Checkpoint(dir))
		c := openT(t, dir, Options{NoSync: true})
		st, err := c.Stamp()
		must(t, err)
		last := 0
		if st != nil {
			last, err = strconv.Atoi(string(st))
			must(t, err)
		}
		kvs, _, err := c.Scan(ctx, b("k"), nil, 1<<20)
		must(t, err)
		if len(kvs) != last {
			t.Fatalf("round %d: checkpoint holds %d writes, stamp says %d", round, len(kvs), last)
		}
		closeT(t, c)
	}
	stop.Store(true)
	wg.Wait()
}

func TestSync(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, Options{NoSync: true})
	must(t, s.Sync()) // nothing to sync: fine
	must(t, s.Set(ctx, b("k"), b("v"), -1))
	must(t, s.Sync())
}

// Crash test of the stamp's atomicity and of Sync, with a child process
// killed mid-write (see crash_test.go for the pattern).
const (
	envReplicaCrashDir = "KURA_REPLICA_CRASH_DIR"
	replicaSyncEvery   = 16
)

// TestReplicaCrashHelper is the child side of TestStampCrash. Run directly
// (no KURA_REPLICA_CRASH_DIR), it skips.
func TestReplicaCrashHelper(t *testing.T) {
	dir := os.Getenv(envReplicaCrashDir)
	if dir == "" {
		t.Skip("child process of TestStampCrash; runs only when re-executed by it")
	}
	s, err := Open(dir, Options{Logger: quietLogger(), NoSync: true, NoReaper: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	ctx := context.Background()
	giveUp := time.Now().Add(2 * time.Minute) // a guard in case the parent is gone
	for n := 1; time.Now().Before(giveUp); n++ {
		// An apply loop: the stamp is the index of the command applied.
		s.SetStamp([]byte(strconv.Itoa(n)))
		if err := s.Set(ctx, []byte(fmt.Sprintf("k%08d", n)), []byte(strconv.Itoa(n)), -1); err != nil {
			fmt.Fprintln(os.Stderr, "set:", err)
			os.Exit(4)
		}
		if n%replicaSyncEvery == 0 {
			if err := s.Sync(); err != nil {
				fmt.Fprintln(os.Stderr, "sync:", err)
				os.Exit(4)
			}
			if _, err := os.Stdout.WriteString(strconv.Itoa(n) + "\n"); err != nil {
				os.Exit(5)
			}
		}
	}
	os.Exit(0)
}

func TestStampCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test")
	}
	ctx := t.Context()
	for round := range 3 {
		dir := filepath.Join(t.TempDir(), strconv.Itoa(round))
		cmd := exec.Command(os.Args[0], "-test.run=^TestReplicaCrashHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), envReplicaCrashDir+"="+dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		must(t, err)
		must(t, cmd.Start())
		synced := 0
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			n, err := strconv.Atoi(sc.Text())
			must(t, err)
			synced = n
			if n >= 20*replicaSyncEvery*(round+1) {
				break
			}
		}
		time.Sleep(time.Duration(round) * time.Millisecond) // let unsynced writes pile up
		must(t, cmd.Process.Signal(syscall.SIGKILL))
		werr := cmd.Wait()
		if synced == 0 {
			t.Fatalf("round %d: child reported nothing: %v, stderr %s", round, werr, stderr.String())
		}

		s, err := Open(dir, Options{Logger: quietLogger(), NoReaper: true})
		must(t, err)
		st, err := s.Stamp()
		must(t, err)
		stamp := 0 // none survived
		if st != nil {
			stamp, err = strconv.Atoi(string(st))
			must(t, err)
		}
		kvs, _, err := s.Scan(ctx, b("k"), nil, 1<<30)
		must(t, err)
		if stamp < synced {
			t.Fatalf("round %d: stamp %d behind the synced %d", round, stamp, synced)
		}
		var lastValue []byte
		if len(kvs) > 0 {
			lastValue = kvs[len(kvs)-1].Value
		}
		if len(kvs) != stamp || string(lastValue) != string(st) {
			t.Fatalf("round %d: %d writes survived, the last %q, but the stamp is %d", round, len(kvs), lastValue, stamp)
		}
		must(t, s.Close())
	}
}
