package blockstore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// writeRBW leaves a replica of id being written at gs with data (a writer
// that closed without finalizing).
func writeRBW(t *testing.T, s *Store, id, gs uint64, data []byte) {
	t.Helper()
	w, err := s.Create(ctx, id, gs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRecoveryID: a replica remembers the newest recovery that
// initialized it, on disk: an older recovery's InitRecovery and Recover
// are refused, before and after the store is reopened, and appends under
// stamps at or below it too; the newer recovery finalizes the replica,
// after which the recovery file is gone.
func TestRecoveryID(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	data := randBytes(3, 10_000)
	writeRBW(t, s, 1, 5, data)

	if bi, err := s.InitRecovery(ctx, 1, 10); err != nil || bi.RecoveryID != 10 || bi.Length != 10_000 || bi.GenStamp != 5 {
		t.Fatalf("InitRecovery 10: %+v %v", bi, err)
	}
	if bi, err := s.InitRecovery(ctx, 1, 10); err != nil || bi.RecoveryID != 10 {
		t.Fatalf("InitRecovery 10 again (a retry): %+v %v", bi, err)
	}
	if bi, err := s.InitRecovery(ctx, 1, 11); err != nil || bi.RecoveryID != 11 {
		t.Fatalf("InitRecovery 11: %+v %v", bi, err)
	}
	if _, err := s.InitRecovery(ctx, 1, 5); !errors.Is(err, ErrStaleRecovery) {
		t.Fatalf("InitRecovery at the replica's stamp: %v, want ErrStaleRecovery", err)
	}
	stale := func(when string) {
		t.Helper()
		if _, err := s.InitRecovery(ctx, 1, 10); !errors.Is(err, ErrStaleRecovery) {
			t.Fatalf("%s: InitRecovery 10 under recovery 11: %v, want ErrStaleRecovery", when, err)
		}
		if _, err := s.Recover(ctx, 1, 10, 4000); !errors.Is(err, ErrStaleRecovery) {
			t.Fatalf("%s: Recover to 10 under recovery 11: %v, want ErrStaleRecovery", when, err)
		}
		if _, err := s.AppendAt(ctx, 1, 9, 4000); !errors.Is(err, ErrStaleRecovery) {
			t.Fatalf("%s: AppendAt stamp 9 under recovery 11: %v, want ErrStaleRecovery", when, err)
		}
		if bi, err := s.Stat(1); err != nil || bi.Length != 10_000 || bi.GenStamp != 5 || bi.State != BeingWritten || bi.RecoveryID != 11 {
			t.Fatalf("%s: the replica after the stale calls: %+v %v", when, bi, err)
		}
	}
	stale("before a restart")
	s.Close()
	s = open(t, dir, Options{})
	stale("after a restart")

	bi, err := s.Recover(ctx, 1, 11, 7777)
	if err != nil || bi.GenStamp != 11 || bi.Length != 7777 || bi.State != Finalized || bi.RecoveryID != 0 {
		t.Fatalf("Recover to 11: %+v %v", bi, err)
	}
	if !bytes.Equal(readAll(t, s, 1), data[:7777]) {
		t.Fatal("the recovered replica's data differs")
	}
	if _, err := os.Stat(filepath.Join(dir, "recovery", "blk_1")); !os.IsNotExist(err) {
		t.Fatalf("the recovery file after the recovery: %v, want gone", err)
	}
	if _, err := s.InitRecovery(ctx, 1, 10); !errors.Is(err, ErrStaleRecovery) {
		t.Fatalf("InitRecovery 10 after recovery 11 finished: %v, want ErrStaleRecovery", err)
	}
}

// TestRecoveryFileCleanup: at Open, a recovery file whose replica is gone
// or whose stamp reached the recovery id (a crash after the re-stamp) is
// removed; a deleted replica's file goes with it.
func TestRecoveryFileCleanup(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	writeRBW(t, s, 1, 5, randBytes(1, 3000))
	writeRBW(t, s, 2, 5, randBytes(2, 3000))
	writeRBW(t, s, 3, 5, randBytes(3, 3000))
	for id := uint64(1); id <= 3; id++ {
		if _, err := s.InitRecovery(ctx, id, 8); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "recovery", "blk_2")); !os.IsNotExist(err) {
		t.Fatalf("a deleted replica's recovery file: %v, want gone", err)
	}
	s.Close()
	// A crash between Recover's re-stamp and the file's removal.
	rbw := filepath.Join(dir, "rbw")
	if err := os.Rename(filepath.Join(rbw, metaName(3, 5)), filepath.Join(rbw, metaName(3, 8))); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "recovery", "blk_9"), []byte("12\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "recovery", "blk_1.tmp"), []byte("1"), 0o644)
	s = open(t, dir, Options{})
	if bi, err := s.Stat(1); err != nil || bi.RecoveryID != 8 {
		t.Fatalf("replica 1 after a restart: %+v %v, want under recovery 8", bi, err)
	}
	if bi, err := s.Stat(3); err != nil || bi.RecoveryID != 0 || bi.GenStamp != 8 {
		t.Fatalf("replica 3 after a restart: %+v %v, want stamp 8 and no recovery", bi, err)
	}
	ents, err := os.ReadDir(filepath.Join(dir, "recovery"))
	if err != nil || len(ents) != 1 || ents[0].Name() != "blk_1" {
		t.Fatalf("recovery/ after a restart: %v %v, want blk_1 only", ents, err)
	}
}

// TestFinalizeAt: a replica left being written is finalized at the
// namenode's length, keeping its stamp; a finalized replica, another
// stamp or a longer length is refused; a replica under recovery is no
// longer under it once finalized.
func TestFinalizeAt(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	data := randBytes(4, 5000)
	writeRBW(t, s, 1, 5, data)
	if _, err := s.FinalizeAt(ctx, 1, 6, 3000); !errors.Is(err, ErrInvalid) {
		t.Fatalf("FinalizeAt another stamp: %v, want ErrInvalid", err)
	}
	if _, err := s.FinalizeAt(ctx, 1, 5, 5001); !errors.Is(err, ErrInvalid) {
		t.Fatalf("FinalizeAt past the end: %v, want ErrInvalid", err)
	}
	if _, err := s.InitRecovery(ctx, 1, 9); err != nil {
		t.Fatal(err)
	}
	bi, err := s.FinalizeAt(ctx, 1, 5, 3001)
	if err != nil || bi.State != Finalized || bi.GenStamp != 5 || bi.Length != 3001 || bi.RecoveryID != 0 {
		t.Fatalf("FinalizeAt: %+v %v", bi, err)
	}
	checkMeta(t, s, 1, 5, data[:3001])
	if _, err := s.Recover(ctx, 1, 9, 2000); err != nil {
		// Recovery 9 is forgotten: Recover without InitRecovery works
		// as before (the datanode asks for the recovery id it holds).
		t.Fatalf("Recover after FinalizeAt: %v", err)
	}
	writeBlock(t, s, 2, 5, data)
	if _, err := s.FinalizeAt(ctx, 2, 5, 100); !errors.Is(err, ErrInvalid) {
		t.Fatalf("FinalizeAt of a finalized replica: %v, want ErrInvalid", err)
	}
	s.Close()
	s = open(t, dir, Options{})
	if bi, err := s.Stat(1); err != nil || bi.State != Finalized || bi.RecoveryID != 0 {
		t.Fatalf("after a restart: %+v %v", bi, err)
	}
}
