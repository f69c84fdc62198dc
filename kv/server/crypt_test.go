package server

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kura-dev/kura/kv/client"
	"github.com/kura-dev/kura/proto/kvpb"
	"github.com/kura-dev/kura/store"
)

// startNode starts an in-process node on a free port (a new cluster unless
// cfg.Join is set), closed when the test ends.
func startNode(t *testing.T, dir string, cfg Config) *Node {
	t.Helper()
	cfg.DataDir = dir
	cfg.Listen = "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if cfg.Shards == 0 {
		cfg.Shards = 4
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	n, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("start node in %s: %v", dir, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func newTestClient(t *testing.T, n *Node, passphrases ...string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Endpoints: []string{n.Addr()}, Timeout: 20 * time.Second, Passphrases: passphrases})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func randMarker(t *testing.T, prefix string) string {
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(r[:])
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantIs(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

// grepDir returns the files under dir that contain needle.
func grepDir(t *testing.T, dir string, needle string) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte(needle)) {
			hits = append(hits, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// TestRequestPassphrases: values written with a request's passphrases are
// sealed by the node and read back only with one of them, with the local
// engine's errors, for every op that carries values; and neither the
// passphrase nor the plaintext reaches the node's disk.
func TestRequestPassphrases(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	n := startNode(t, dir, Config{})
	pass := randMarker(t, "pass-")
	plain := randMarker(t, "plain-")
	control := randMarker(t, "control-")
	withP := newTestClient(t, n, pass)
	none := newTestClient(t, n)
	wrong := newTestClient(t, n, "wrong")
	rotated := newTestClient(t, n, "new", pass)
	k := []byte("secret")

	// set / get
	check(t, withP.Set(ctx, k, []byte(plain), 0))
	for _, c := range []*client.Client{withP, rotated} {
		if v, err := c.Get(ctx, k); err != nil || string(v) != plain {
			t.Fatalf("get with the passphrase: %q, %v", v, err)
		}
	}
	_, err := none.Get(ctx, k)
	wantIs(t, "get without a passphrase", err, store.ErrNeedPassphrase)
	_, err = wrong.Get(ctx, k)
	wantIs(t, "get with a wrong passphrase", err, store.ErrWrongPassphrase)
	a, err := none.Attributes(ctx, k)
	check(t, err)
	if !a.Encrypted || a.Size != len(plain) {
		t.Fatalf("attributes %+v: want encrypted, size %d", a, len(plain))
	}
	// Rotation: written with the new passphrase, the old one no longer opens it.
	check(t, rotated.Set(ctx, []byte("rotated"), []byte("r-"+plain), 0))
	_, err = withP.Get(ctx, []byte("rotated"))
	wantIs(t, "old passphrase on a value sealed with the new one", err, store.ErrWrongPassphrase)
	if v, err := client.New(client.Config{Endpoints: []string{n.Addr()}}); err == nil {
		got, err := v.Get(client.WithPassphrases(ctx, "new"), []byte("rotated"))
		v.Close()
		if err != nil || string(got) != "r-"+plain {
			t.Fatalf("WithPassphrases: %q, %v", got, err)
		}
	}
	// A value written without passphrases reads with or without them.
	check(t, none.Set(ctx, []byte("clear"), []byte(control), 0))
	if v, err := withP.Get(ctx, []byte("clear")); err != nil || string(v) != control {
		t.Fatalf("plain value read with a passphrase: %q, %v", v, err)
	}
	check(t, withP.Set(ctx, []byte("empty"), nil, 0))
	if v, err := withP.Get(ctx, []byte("empty")); err != nil || len(v) != 0 {
		t.Fatalf("empty value: %q, %v", v, err)
	}

	// scan: opened with the passphrase, refused without
	kvs, _, err := rotated.Scan(ctx, nil, nil, 100)
	check(t, err)
	got := map[string]string{}
	for _, kv := range kvs {
		got[string(kv.Key)] = string(kv.Value)
	}
	if got["secret"] != plain || got["rotated"] != "r-"+plain || got["clear"] != control || len(kvs) != 4 {
		t.Fatalf("scan with the passphrases: %q", got)
	}
	_, _, err = none.Scan(ctx, nil, nil, 100)
	wantIs(t, "scan without a passphrase", err, store.ErrNeedPassphrase)
	_, _, err = withP.Scan(ctx, nil, nil, 100)
	wantIs(t, "scan meeting a value sealed with another passphrase", err, store.ErrWrongPassphrase)

	// subkeys
	check(t, withP.SetSubkey(ctx, []byte("parent"), []byte("child"), []byte("sub-"+plain), 0))
	subs, err := none.Subkeys(ctx, []byte("parent"))
	check(t, err)
	if len(subs) != 1 || string(subs[0]) != "child" {
		t.Fatalf("subkeys: %q", subs)
	}
	if v, err := withP.Get(ctx, []byte("child")); err != nil || string(v) != "sub-"+plain {
		t.Fatalf("subkey: %q, %v", v, err)
	}
	_, err = wrong.Get(ctx, []byte("child"))
	wantIs(t, "subkey with a wrong passphrase", err, store.ErrWrongPassphrase)

	// plain queue: a pop that cannot open its item leaves it
	q := []byte("jobs")
	check(t, withP.Push(ctx, q, []byte("item1-"+plain)))
	check(t, withP.Push(ctx, q, []byte("item2")))
	_, err = none.Pop(ctx, q, store.Front)
	wantIs(t, "pop without a passphrase", err, store.ErrNeedPassphrase)
	_, err = wrong.Pop(ctx, q, store.Front)
	wantIs(t, "pop with a wrong passphrase", err, store.ErrWrongPassphrase)
	_, err = wrong.RemoveItems(ctx, q, store.Front, 5)
	wantIs(t, "remove with a wrong passphrase", err, store.ErrWrongPassphrase)
	if l, _, err := none.QueueLen(ctx, q); err != nil || l != 2 {
		t.Fatalf("queue length %d, %v after failed pops, want 2", l, err)
	}
	if it, err := withP.Peek(ctx, q, store.Back); err != nil || string(it.Value) != "item2" {
		t.Fatalf("peek: %q, %v", it.Value, err)
	}
	if it, err := withP.Pop(ctx, q, store.Front); err != nil || string(it.Value) != "item1-"+plain {
		t.Fatalf("pop: %q, %v", it.Value, err)
	}
	if n, err := withP.RemoveItems(ctx, q, store.Front, 5); err != nil || n != 1 {
		t.Fatalf("remove items: %d, %v", n, err)
	}
	_, err = withP.Pop(ctx, q, store.Front)
	wantIs(t, "pop of an empty queue", err, store.ErrNotFound)

	// keyed queue: the item's value lives on its key's shard
	kq := []byte("keyed")
	for _, key := range []string{"ik1", "ik2", "ik3", "ik4"} {
		check(t, withP.PushKeyed(ctx, kq, []byte(key), []byte(key+"-"+plain)))
	}
	_, err = wrong.Pop(ctx, kq, store.Front)
	wantIs(t, "keyed pop with a wrong passphrase", err, store.ErrWrongPassphrase)
	if it, err := withP.Peek(ctx, kq, store.Front); err != nil || string(it.Key) != "ik1" || string(it.Value) != "ik1-"+plain {
		t.Fatalf("keyed peek: %+v, %v", it, err)
	}
	for _, key := range []string{"ik1", "ik2", "ik3"} {
		it, err := withP.Pop(ctx, kq, store.Front)
		if err != nil || string(it.Key) != key || string(it.Value) != key+"-"+plain {
			t.Fatalf("keyed pop: %+v, %v; want %s", it, err, key)
		}
		_, err = withP.Get(ctx, []byte(key))
		wantIs(t, "popped item's key", err, store.ErrNotFound)
	}
	if l, kind, err := none.QueueLen(ctx, kq); err != nil || l != 1 || kind != store.KeyedQueue {
		t.Fatalf("keyed queue: %d %v %v", l, kind, err)
	}

	// CAS counters
	ck := []byte("visits")
	check(t, withP.CASInit(ctx, ck, 32, 7))
	_, err = none.CASGet(ctx, ck, 32)
	wantIs(t, "cas get without a passphrase", err, store.ErrNeedPassphrase)
	_, err = wrong.CASAdd(ctx, ck, 32, 1)
	wantIs(t, "cas add with a wrong passphrase", err, store.ErrWrongPassphrase)
	_, err = withP.CASGet(ctx, ck, 16)
	wantIs(t, "cas get of another width", err, store.ErrTypeMismatch)
	if v, err := withP.CASAdd(ctx, ck, 32, 3); err != nil || v != 10 {
		t.Fatalf("cas add: %d, %v", v, err)
	}
	if ok, v, err := withP.CASSet(ctx, ck, 32, 9, 100); err != nil || ok || v != 10 {
		t.Fatalf("cas set with a stale old value: %v %d %v", ok, v, err)
	}
	if ok, v, err := rotated.CASSet(ctx, ck, 32, 10, 100); err != nil || !ok || v != 100 {
		t.Fatalf("cas set: %v %d %v", ok, v, err)
	}
	if v, err := rotated.CASGet(ctx, ck, 32); err != nil || v != 100 {
		t.Fatalf("cas get: %d, %v", v, err)
	}
	_, err = withP.CASGet(ctx, ck, 32)
	wantIs(t, "cas value rewritten with the new passphrase", err, store.ErrWrongPassphrase)
	if a, err := none.Attributes(ctx, ck); err != nil || !a.Encrypted || a.Type != store.TypeUint32 || a.Size != 4 {
		t.Fatalf("cas attributes: %+v, %v", a, err)
	}

	// Concurrent guarded writes: every increment counts once.
	ctr := []byte("counter")
	check(t, withP.CASInit(ctx, ctr, 64, 0))
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for range 5 {
				if _, err := withP.CASAdd(ctx, ctr, 64, 1); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		check(t, <-errs)
	}
	if v, err := withP.CASGet(ctx, ctr, 64); err != nil || v != 20 {
		t.Fatalf("counter after 20 concurrent increments: %d, %v", v, err)
	}

	// The internal fields are not for clients; bad passphrases are refused.
	for _, req := range []*kvpb.Request{
		{Op: kvpb.Op_SET, Key: k, Value: []byte("x"), SealedValue: true},
		{Op: kvpb.Op_GET, Key: k, RawValues: true},
		{Op: kvpb.Op_POP, Key: q, Expect: []byte("x")},
		{Op: kvpb.Op_GET, Key: k, Passphrases: []string{pass, ""}},
	} {
		if r := n.Do(ctx, req); r.Code != kvpb.Code_INVALID {
			t.Fatalf("%v: code %v, want INVALID", req, r.Code)
		}
	}

	check(t, n.Close())
	if hits := grepDir(t, dir, control); len(hits) == 0 {
		t.Fatal("the plaintext control value is nowhere on disk: the search below proves nothing")
	}
	for _, needle := range []string{pass, plain} {
		if hits := grepDir(t, dir, needle); len(hits) > 0 {
			t.Fatalf("%q found on disk in %v", needle, hits)
		}
	}
}

// TestRequestPassphrasesPrecedence: with passphrases on the node too, a
// request's own replace them for that request.
func TestRequestPassphrasesPrecedence(t *testing.T) {
	ctx := t.Context()
	n := startNode(t, t.TempDir(), Config{Store: store.Options{Passphrases: []string{"server"}}})
	withP := newTestClient(t, n, "client")
	none := newTestClient(t, n)
	withServer := newTestClient(t, n, "server")

	// Sealed by the node (encryption at rest): every request reads it.
	check(t, none.Set(ctx, []byte("atrest"), []byte("v1"), 0))
	for _, c := range []*client.Client{none, withP} {
		if v, err := c.Get(ctx, []byte("atrest")); err != nil || string(v) != "v1" {
			t.Fatalf("node-sealed value: %q, %v", v, err)
		}
	}
	// Sealed with the request's passphrase: the node's does not open it.
	check(t, withP.Set(ctx, []byte("mine"), []byte("v2"), 0))
	_, err := none.Get(ctx, []byte("mine"))
	wantIs(t, "request-sealed value, no request passphrase", err, store.ErrWrongPassphrase)
	_, err = withServer.Get(ctx, []byte("mine"))
	wantIs(t, "request-sealed value, the node's passphrase", err, store.ErrWrongPassphrase)
	if v, err := withP.Get(ctx, []byte("mine")); err != nil || string(v) != "v2" {
		t.Fatalf("request-sealed value: %q, %v", v, err)
	}
	// Sealed by a request with the node's passphrase: requests without
	// passphrases get the node's.
	check(t, withServer.Set(ctx, []byte("shared"), []byte("v3"), 0))
	if v, err := none.Get(ctx, []byte("shared")); err != nil || string(v) != "v3" {
		t.Fatalf("value sealed with the node's passphrase by a request: %q, %v", v, err)
	}
	check(t, withServer.Push(ctx, []byte("q"), []byte("item")))
	if it, err := none.Pop(ctx, []byte("q"), store.Front); err != nil || string(it.Value) != "item" {
		t.Fatalf("pop: %q, %v", it.Value, err)
	}
}

// TestRequestPassphrasesReplicated: a value sealed by one node is stored
// as the same bytes on every replica, and any node opens it.
func TestRequestPassphrasesReplicated(t *testing.T) {
	ctx := t.Context()
	base := t.TempDir()
	n1 := startNode(t, filepath.Join(base, "n1"), Config{Shards: 2, Replicas: 3})
	n2 := startNode(t, filepath.Join(base, "n2"), Config{Join: []string{n1.Addr()}})
	n3 := startNode(t, filepath.Join(base, "n3"), Config{Join: []string{n1.Addr()}})
	pass := randMarker(t, "pass-")
	plain := randMarker(t, "plain-")
	req := func(op kvpb.Op, key string, ps ...string) *kvpb.Request {
		return &kvpb.Request{Op: op, Key: []byte(key), Value: []byte(plain), Passphrases: ps}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := n2.Do(ctx, req(kvpb.Op_SET, "k", pass))
		if r.Code == kvpb.Code_OK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("set: %v %s", r.Code, r.Error)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Every replica holds the same sealed bytes.
	sh := n1.shardOf([]byte("k"))
	var stored []byte
	for _, n := range []*Node{n1, n2, n3} {
		for {
			var v store.RawValue
			err := errors.New("no replica yet")
			if s := n.shard(sh); s != nil {
				v, err = s.Current().GetRaw(ctx, []byte("k"))
			}
			if err == nil {
				if !v.Sealed || bytes.Contains(v.Value, []byte(plain)) {
					t.Fatalf("node %x stores %+v", n.ID(), v)
				}
				if stored == nil {
					stored = v.Value
				} else if !bytes.Equal(stored, v.Value) {
					t.Fatalf("replicas differ: %x and %x", stored, v.Value)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %x: %v", n.ID(), err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, n := range []*Node{n1, n2, n3} {
		// Through any node, and from each node's own replica.
		if r := n.Do(ctx, req(kvpb.Op_GET, "k", pass)); r.Code != kvpb.Code_OK || string(r.Value) != plain {
			t.Fatalf("get via node %x: %v %s %q", n.ID(), r.Code, r.Error, r.Value)
		}
		if r := n.Do(ctx, req(kvpb.Op_GET, "k")); r.Code != kvpb.Code_NEED_PASSPHRASE {
			t.Fatalf("get via node %x without passphrase: %v %s", n.ID(), r.Code, r.Error)
		}
		for {
			r := n.Do(ctx, &kvpb.Request{Op: kvpb.Op_GET, Key: []byte("k"), Serializable: true, Passphrases: []string{pass}})
			if r.Code == kvpb.Code_OK && string(r.Value) == plain {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("serializable get via node %x: %v %s", n.ID(), r.Code, r.Error)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, n := range []*Node{n3, n2, n1} {
		check(t, n.Close())
	}
	for _, needle := range []string{pass, plain} {
		if hits := grepDir(t, base, needle); len(hits) > 0 {
			t.Fatalf("%q found on disk in %v", needle, hits)
		}
	}
}
