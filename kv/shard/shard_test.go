package shard

import (
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/kura-dev/kura/proto/kvpb"
	"github.com/kura-dev/kura/store"
)

func f2time() time.Time { return time.Unix(1700000000, 0) }

func cmd(t testing.TB, id uint64, at time.Time, req *kvpb.Request) []byte {
	t.Helper()
	b, err := proto.Marshal(&kvpb.Command{Id: id, TimeNanos: at.UnixNano(), Req: req})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestApplyUsesLeaderTimeAndSurvivesReopen: TTL is decided by the command's
// time, the applied index persists with the data, and a snapshot restores
// another replica exactly.
func TestApplyUsesLeaderTimeAndSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "a"), 1, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	// Set with a 1 s TTL at a time an hour ago: expired for every replica.
	id, res := s.Apply(1, cmd(t, 7, past, &kvpb.Request{Op: kvpb.Op_SET, Key: []byte("old"), Value: []byte("v"), TtlNanos: int64(time.Second)}))
	if id != 7 || res.(*kvpb.Response).Code != kvpb.Code_OK {
		t.Fatalf("apply: %d %v", id, res)
	}
	s.Apply(2, cmd(t, 8, time.Now(), &kvpb.Request{Op: kvpb.Op_PUSH, Key: []byte("q"), Value: []byte("item")}))
	if r := s.Read(t.Context(), &kvpb.Request{Op: kvpb.Op_GET, Key: []byte("old")}); r.Code != kvpb.Code_NOT_FOUND {
		t.Fatalf("expired key: %v", r)
	}
	if r := s.Read(t.Context(), &kvpb.Request{Op: kvpb.Op_SET, Key: []byte("x")}); r.Code != kvpb.Code_INVALID {
		t.Fatalf("write through Read: %v", r)
	}
	_, bad := s.Apply(3, []byte("garbage"))
	if bad.(*kvpb.Response).Code != kvpb.Code_CORRUPT {
		t.Fatalf("garbage command: %v", bad)
	}
	snap, err := s.SnapshotData()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(filepath.Join(dir, "a"), 1, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Applied() != 2 {
		t.Fatalf("applied after reopen = %d, want 2 (the last entry that wrote)", s.Applied())
	}
	b, err := Open(filepath.Join(dir, "b"), 1, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Restore(snap, 2); err != nil {
		t.Fatal(err)
	}
	if b.Applied() != 2 {
		t.Fatalf("applied after restore = %d", b.Applied())
	}
	if r := b.Read(t.Context(), &kvpb.Request{Op: kvpb.Op_QUEUE_LEN, Key: []byte("q")}); r.Code != kvpb.Code_OK || r.N != 1 {
		t.Fatalf("restored queue: %v", r)
	}
	if err := untar([]byte("not a tar"), filepath.Join(dir, "c")); err == nil {
		t.Fatal("untar accepted garbage")
	}
}
