package store

import (
	"bytes"
	"testing"
)

func sealT(t testing.TB, p string, plain, aad []byte) []byte {
	t.Helper()
	sealed, err := SealValue(p, plain, aad)
	must(t, err)
	return sealed
}

func TestSealedValues(t *testing.T) {
	aad := KeyAAD(b("k"))
	sealed := sealT(t, "new", b("value"), aad)
	if len(sealed) != SealedOverhead+len("value") || bytes.Contains(sealed, b("value")) {
		t.Fatalf("sealed = %x", sealed)
	}
	for _, ps := range [][]string{{"new"}, {"old", "new"}, {"new", "old"}} {
		v, err := OpenValue(ps, sealed, aad)
		if err != nil || string(v) != "value" {
			t.Fatalf("OpenValue(%q) = %q, %v", ps, v, err)
		}
	}
	_, err := OpenValue(nil, sealed, aad)
	wantErr(t, err, ErrNeedPassphrase)
	_, err = OpenValue([]string{"old"}, sealed, aad)
	wantErr(t, err, ErrWrongPassphrase)
	_, err = OpenValue([]string{"new"}, sealed, KeyAAD(b("other")))
	wantErr(t, err, ErrCorrupt)
	_, err = OpenValue([]string{"new", ""}, sealed, aad)
	wantErr(t, err, ErrInvalid)
	for i := range sealed {
		if i > 1 && i < sealedHeader {
			continue // one salt byte is enough: each costs a key derivation
		}
		bad := bytes.Clone(sealed)
		bad[i] ^= 1
		if _, err := OpenValue([]string{"new"}, bad, aad); err == nil {
			t.Fatalf("flipping byte %d: opened", i)
		}
	}
	_, err = OpenValue([]string{"new"}, sealed[:SealedOverhead-1], aad)
	wantErr(t, err, ErrCorrupt)
	if _, err := SealValue("", b("v"), aad); err == nil {
		t.Fatal("sealed with an empty passphrase")
	}
	empty := sealT(t, "new", nil, aad)
	if v, err := OpenValue([]string{"new"}, empty, aad); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("empty value: %q, %v", v, err)
	}

	// The raw encoding round-trips, and Open opens either kind.
	for _, rv := range []RawValue{{Value: b("plain")}, {Type: TypeUint32, Sealed: true, Value: sealed}} {
		got, err := DecodeRawValue(rv.Encode())
		must(t, err)
		if got.Sealed != rv.Sealed || got.Type != rv.Type || !bytes.Equal(got.Value, rv.Value) {
			t.Fatalf("DecodeRawValue(Encode(%+v)) = %+v", rv, got)
		}
	}
	if v, err := (RawValue{Sealed: true, Value: sealed}).Open([]string{"new"}, aad); err != nil || string(v) != "value" {
		t.Fatalf("RawValue.Open = %q, %v", v, err)
	}
	if bytes.Equal(Guard(nil, nil), Guard(nil, []byte{})) || bytes.Equal(Guard(b("a"), b("bc")), Guard(b("ab"), b("c"))) {
		t.Fatal("Guard collides")
	}
}

// TestStoredSealed: values stored sealed (as a cluster's shards store them)
// read back through the local engine as any encrypted value, with the same
// errors, and the raw and guarded operations work on them.
func TestStoredSealed(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	m := marker(t)
	v := "value:" + m
	ok, err := s.SetSealed(ctx, b("k"), sealT(t, "P", b(v), KeyAAD(b("k"))), TypeBytes, -1, nil)
	must(t, err)
	if !ok {
		t.Fatal("SetSealed without guard: not applied")
	}
	must(t, s.PushSealed(ctx, b("q"), sealT(t, "P", b("item:"+m), QueueItemAAD(b("q")))))
	must(t, s.PushSealed(ctx, b("q"), sealT(t, "P", b("item2"), QueueItemAAD(b("q")))))
	_, err = s.SetSealed(ctx, b("n"), sealT(t, "P", encodeUint(32, 7), KeyAAD(b("n"))), TypeUint32, -1, nil)
	must(t, err)
	must(t, s.Set(ctx, b("plain"), b("clear"), -1))

	// Without passphrases: encrypted, and closed.
	_, err = s.Get(ctx, b("k"))
	wantErr(t, err, ErrNeedPassphrase)
	_, err = s.CASGet(ctx, b("n"), 32)
	wantErr(t, err, ErrNeedPassphrase)
	_, err = s.Pop(ctx, b("q"), Front)
	wantErr(t, err, ErrNeedPassphrase)
	if n, _, _ := s.QueueLen(ctx, b("q")); n != 2 {
		t.Fatalf("a pop that could not open its item removed it: len %d", n)
	}
	a, err := s.Attributes(ctx, b("k"))
	must(t, err)
	if !a.Encrypted || a.Size != len(v) {
		t.Fatalf("Attributes = %+v, want encrypted, size %d", a, len(v))
	}
	if _, err := s.SetSealed(ctx, b("bad"), b("not sealed"), TypeBytes, -1, nil); err == nil {
		t.Fatal("SetSealed took a value that is not sealed")
	}

	// Raw reads return the sealed bytes, and plaintext for the rest.
	rv, err := s.GetRaw(ctx, b("k"))
	must(t, err)
	if !rv.Sealed {
		t.Fatalf("GetRaw = %+v", rv)
	}
	if got, err := rv.Open([]string{"P"}, KeyAAD(b("k"))); err != nil || string(got) != v {
		t.Fatalf("open raw = %q, %v", got, err)
	}
	kvs, _, err := s.ScanRaw(ctx, b("p"), nil, 10)
	must(t, err)
	if len(kvs) != 1 || kvs[0].Value.Sealed || string(kvs[0].Value.Value) != "clear" {
		t.Fatalf("ScanRaw = %+v", kvs)
	}

	// Guarded writes apply only on the value read.
	cur := rv.Encode()
	if ok, err := s.SetSealed(ctx, b("k"), sealT(t, "P", b("v2"), KeyAAD(b("k"))), TypeBytes, -1, Guard(nil, b("other"))); err != nil || ok {
		t.Fatalf("SetSealed with a stale guard = %v, %v", ok, err)
	}
	if _, ok, err := s.TakeRaw(ctx, b("k"), Guard(nil, nil)); err != nil || ok {
		t.Fatalf("TakeRaw with a stale guard = %v, %v", ok, err)
	}
	got, ok, err := s.TakeRaw(ctx, b("k"), Guard(nil, cur))
	if err != nil || !ok || got == nil || !got.Sealed {
		t.Fatalf("TakeRaw = %+v, %v, %v", got, ok, err)
	}
	wantMissing(t, s, "k")
	if got, ok, err := s.TakeRaw(ctx, b("k"), Guard(nil, nil)); err != nil || !ok || got != nil {
		t.Fatalf("TakeRaw of a missing key = %+v, %v, %v", got, ok, err)
	}
	it, err := s.PeekRaw(ctx, b("q"), Front)
	must(t, err)
	if _, ok, err := s.PopRaw(ctx, b("q"), Back, it.Guard()); err != nil || ok {
		t.Fatalf("PopRaw of the other end = %v, %v", ok, err)
	}
	popped, ok, err := s.PopRaw(ctx, b("q"), Front, it.Guard())
	if err != nil || !ok || !bytes.Equal(popped.Value.Value, it.Value.Value) {
		t.Fatalf("PopRaw = %+v, %v, %v", popped, ok, err)
	}
	if n, _, _ := s.QueueLen(ctx, b("q")); n != 1 {
		t.Fatalf("queue length %d after PopRaw, want 1", n)
	}
	closeT(t, s)
	if found, files := dirContains(t, dir, b(m)); found {
		t.Fatalf("plaintext marker found on disk in %v", files)
	}

	// The local engine opens them with the passphrase, and rotation works.
	for _, ps := range [][]string{{"P"}, {"new", "P"}} {
		s = openT(t, dir, Options{Passphrases: ps})
		wantGet(t, s, "plain", "clear")
		if n, err := s.CASAdd(ctx, b("n"), 32, 1); err != nil || n != 8+uint64(len(ps)-1) {
			t.Fatalf("CASAdd with %q = %d, %v", ps, n, err)
		}
		closeT(t, s)
	}
	s = openT(t, dir, Options{Passphrases: []string{"wrong"}})
	_, err = s.Pop(ctx, b("q"), Front)
	wantErr(t, err, ErrWrongPassphrase)
	closeT(t, s)
	s = openT(t, dir, Options{Passphrases: []string{"P"}})
	if got := popAll(t, s, "q", Front); len(got) != 1 || got[0] != "item2" {
		t.Fatalf("queue with the passphrase: %q", got)
	}
}

// FuzzOpenValue: opening arbitrary bytes as a sealed value, or decoding
// them as a raw value, fails cleanly and never panics.
func FuzzOpenValue(f *testing.F) {
	aad := KeyAAD(b("k"))
	good, err := SealValue("P", b("value"), aad)
	if err != nil {
		f.Fatal(err)
	}
	salt := bytes.Clone(good[1:sealedHeader])
	f.Add(good)
	f.Add(good[:SealedOverhead-1])
	f.Add((RawValue{Sealed: true, Value: good}).Encode())
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, data []byte) {
		if v, err := DecodeRawValue(data); err == nil {
			if v.Sealed {
				v.Value = bytes.Clone(v.Value)
				copy(v.Value[1:], salt)
			}
			v.Open([]string{"P"}, aad)
		}
		// Keep the salt of the seed (each new salt costs a key
		// derivation): what follows it is what a decoder parses.
		if len(data) >= sealedHeader {
			data = bytes.Clone(data)
			copy(data[1:], salt)
		}
		v, err := OpenValue([]string{"P", "Q"}, data, aad)
		if err == nil && !bytes.Equal(data, good) && !bytes.Equal(v, b("value")) {
			t.Fatalf("opened forged bytes %x as %q", data, v)
		}
	})
}
