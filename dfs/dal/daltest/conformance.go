package daltest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/dal"
)

// RunConformance runs the behaviour every dal.Store implementation must
// show, as subtests; open returns a new store on an empty database (closed
// by the suite).
func RunConformance(t *testing.T, open func(t testing.TB) dal.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, dal.Store)
	}{
		{"Root", testRoot},
		{"InodeCRUD", testInodeCRUD},
		{"InodeUnique", testInodeUnique},
		{"InodesByIDs", testInodesByIDs},
		{"ListChildrenPaged", testListChildren},
		{"Blocks", testBlocks},
		{"Replicas", testReplicas},
		{"ReplicaStorages", testReplicaStorages},
		{"Leases", testLeases},
		{"Variables", testVariables},
		{"ReserveIDsConcurrent", testReserveConcurrent},
		{"Rollback", testRollback},
		{"Deferred", testDeferred},
		{"Namenodes", testNamenodes},
		{"DeleteIdleLease", testDeleteIdleLease},
		{"RetryTransient", testRetryTransient},
		{"WriteLockWaits", testWriteLockWaits},
		{"FileByID", testFileByID},
		{"FileByIDLocks", testFileByIDLocks},
		{"FileByIDBlocksAfterLockWait", testFileByIDBlocksAfterLockWait},
		{"ReadTx", testReadTx},
		{"DeleteCascades", testDeleteCascades},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// tx runs fn in a write transaction and fails the test on error.
func tx(t testing.TB, s dal.Store, fn func(ctx context.Context, tx dal.Tx) error) {
	t.Helper()
	ctx := context.Background()
	if err := s.Tx(ctx, func(tx dal.Tx) error { return fn(ctx, tx) }); err != nil {
		t.Fatal(err)
	}
}

// txErr runs fn in a write transaction and returns its error.
func txErr(s dal.Store, fn func(ctx context.Context, tx dal.Tx) error) error {
	ctx := context.Background()
	return s.Tx(ctx, func(tx dal.Tx) error { return fn(ctx, tx) })
}

// newDir returns a directory inode for tests.
func newDir(id, parent int64, name string) *dal.Inode {
	return &dal.Inode{ID: id, ParentID: parent, Name: name, IsDir: true, Permission: 0o755,
		Owner: "alice", Group: "staff", MTime: 1000, ATime: 1000}
}

// newFile returns a file inode for tests.
func newFile(id, parent int64, name string) *dal.Inode {
	return &dal.Inode{ID: id, ParentID: parent, Name: name, Permission: 0o644, Owner: "bob", Group: "staff",
		MTime: 2000, ATime: 2001, Size: 0, Replication: 3, BlockSize: 128 << 20, UnderConstruction: true,
		ClientName: "DFSClient_1", ClientMachine: "10.0.0.1"}
}

func mustNotFound(t testing.TB, what string, err error) {
	t.Helper()
	if !errors.Is(err, dal.ErrNotFound) {
		t.Fatalf("%s: got %v, want an error wrapping ErrNotFound", what, err)
	}
}

func mustExists(t testing.TB, what string, err error) {
	t.Helper()
	if !errors.Is(err, dal.ErrExists) {
		t.Fatalf("%s: got %v, want an error wrapping ErrExists", what, err)
	}
}

func testRoot(t *testing.T, s dal.Store) {
	ctx := context.Background()
	v, err := s.SchemaVersion(ctx)
	if err != nil || v != dal.LatestSchemaVersion() {
		t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, dal.LatestSchemaVersion())
	}
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		root, err := tx.GetInodeByID(ctx, dal.RootID, dal.LockRead)
		if err != nil {
			return err
		}
		if !root.IsDir || root.ParentID != dal.RootParentID || root.Name != "" || root.Permission != 0o755 || root.MTime <= 0 {
			t.Errorf("root = %+v", root)
		}
		byName, err := tx.GetInode(ctx, dal.RootParentID, "", dal.LockWrite)
		if err != nil {
			return err
		}
		if *byName != *root {
			t.Errorf("root by name %+v != by id %+v", byName, root)
		}
		return nil
	})
}

func testInodeCRUD(t *testing.T, s dal.Store) {
	top := newDir(2, dal.RootID, "user") // depth 1: hashed partition
	sub := newDir(3, 2, "alice")         // depth 2: partition = parent
	f := newFile(4, 3, "data.csv")       // depth 3
	ln := newFile(5, 3, "link")          // a symlink
	ln.Symlink, ln.UnderConstruction = "/x/y", false
	top.Children, sub.Children = 1, 2 // stored as given, read back
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		for _, in := range []*dal.Inode{top, sub, f, ln} {
			if err := tx.InsertInode(ctx, in); err != nil {
				return err
			}
		}
		return nil
	})
	if top.PartitionID != dal.PartitionID(dal.RootID, "user") || top.PartitionID == dal.RootID {
		t.Errorf("top-level partition = %d, want the hash %d", top.PartitionID, dal.PartitionID(dal.RootID, "user"))
	}
	if sub.PartitionID != 2 || f.PartitionID != 3 {
		t.Errorf("partitions = %d, %d; want parent ids 2, 3", sub.PartitionID, f.PartitionID)
	}
	for _, lock := range []dal.LockMode{dal.LockNone, dal.LockRead, dal.LockWrite} {
		tx(t, s, func(ctx context.Context, tx dal.Tx) error {
			for _, want := range []*dal.Inode{top, sub, f, ln} {
				got, err := tx.GetInode(ctx, want.ParentID, want.Name, lock)
				if err != nil {
					return err
				}
				if *got != *want {
					t.Errorf("GetInode(%d, %q, %s) = %+v, want %+v", want.ParentID, want.Name, lock, got, want)
				}
				got, err = tx.GetInodeByID(ctx, want.ID, lock)
				if err != nil {
					return err
				}
				if *got != *want {
					t.Errorf("GetInodeByID(%d, %s) = %+v, want %+v", want.ID, lock, got, want)
				}
			}
			return nil
		})
	}
	if !ln.IsSymlink() || f.IsSymlink() {
		t.Error("IsSymlink wrong")
	}
	// Update every field and move the file to the top-level directory.
	moved := *f
	moved.ParentID, moved.Name = 2, "renamed.csv"
	moved.Permission, moved.Owner, moved.Group = 0o600, "carol", "ops"
	moved.MTime, moved.ATime, moved.Size, moved.Replication, moved.BlockSize = 5000, 6000, 12345, 2, 64<<20
	moved.UnderConstruction, moved.ClientName, moved.ClientMachine = false, "", ""
	tx(t, s, func(ctx context.Context, tx dal.Tx) error { return tx.UpdateInode(ctx, &moved) })
	if moved.PartitionID != 2 {
		t.Errorf("partition after move = %d, want 2", moved.PartitionID)
	}
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		_, err := tx.GetInode(ctx, 3, "data.csv", dal.LockNone)
		mustNotFound(t, "old name after rename", err)
		got, err := tx.GetInode(ctx, 2, "renamed.csv", dal.LockNone)
		if err != nil {
			return err
		}
		if *got != moved {
			t.Errorf("after update: %+v, want %+v", got, moved)
		}
		return nil
	})
	// The children count round-trips through UpdateInode and every read.
	counted := *sub
	counted.Children, counted.MTime = 1<<40+7, 7000
	tx(t, s, func(ctx context.Context, tx dal.Tx) error { return tx.UpdateInode(ctx, &counted) })
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		byID, err := tx.GetInodeByID(ctx, sub.ID, dal.LockWrite)
		if err != nil {
			return err
		}
		byName, err := tx.GetInode(ctx, sub.ParentID, sub.Name, dal.LockRead)
		if err != nil {
			return err
		}
		byIDs, err := tx.GetInodesByIDs(ctx, []int64{top.ID, sub.ID}, dal.LockNone)
		if err != nil {
			return err
		}
		listed, err := tx.ListChildren(ctx, top.ID, "", 0)
		if err != nil {
			return err
		}
		if len(byIDs) != 2 || len(listed) != 2 {
			return fmt.Errorf("read %d by ids and listed %d, want 2 and 2", len(byIDs), len(listed))
		}
		for what, got := range map[string]*dal.Inode{"by id": byID, "by name": byName, "by ids": byIDs[1], "listed": listed[0]} {
			if *got != counted {
				t.Errorf("children count %s: %+v, want %+v", what, got, counted)
			}
		}
		if byIDs[0].Children != 1 {
			t.Errorf("children of %d = %d, want 1", top.ID, byIDs[0].Children)
		}
		return nil
	})
	// Delete, then everything about the missing inode is ErrNotFound.
	tx(t, s, func(ctx context.Context, tx dal.Tx) error { return tx.DeleteInode(ctx, 4) })
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		_, err := tx.GetInodeByID(ctx, 4, dal.LockWrite)
		mustNotFound(t, "get deleted", err)
		mustNotFound(t, "delete deleted", tx.DeleteInode(ctx, 4))
		mustNotFound(t, "update deleted", tx.UpdateInode(ctx, &moved))
		_, err = tx.GetInode(ctx, 99, "nope", dal.LockRead)
		mustNotFound(t, "get missing name", err)
		return nil
	})
}

func testInodeUnique(t *testing.T, s dal.Store) {
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		for _, in := range []*dal.Inode{newDir(2, dal.RootID, "a"), newDir(3, 2, "b"), newFile(4, 3, "c"), newFile(5, 3, "d")} {
			if err := tx.InsertInode(ctx, in); err != nil {
				return err
			}
		}
		return nil
	})
	cases := []struct {
		what string
		fn   func(ctx context.Context, tx dal.Tx) error
	}{
		{"same name in a top-level directory", func(ctx context.Context, tx dal.Tx) error { return tx.InsertInode(ctx, newDir(10, dal.RootID, "a")) }},
		{"same name deeper", func(ctx context.Context, tx dal.Tx) error { return tx.InsertInode(ctx, newFile(10, 3, "c")) }},
		{"same id", func(ctx context.Context, tx dal.Tx) error { return tx.InsertInode(ctx, newFile(4, 3, "other")) }},
		{"rename onto an existing name", func(ctx context.Context, tx dal.Tx) error {
			d := newFile(5, 3, "c")
			return tx.UpdateInode(ctx, d)
		}},
	}
	for _, c := range cases {
		mustExists(t, c.what, txErr(s, c.fn))
	}
	// The failed transactions changed nothing.
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		n, err := tx.CountChildren(ctx, 3)
		if err != nil {
			return err
		}
		if n != 2 {
			t.Errorf("children of 3 = %d, want 2", n)
		}
		return nil
	})
}

func testInodesByIDs(t *testing.T, s dal.Store) {
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		if err := tx.InsertInode(ctx, newDir(2, dal.RootID, "a")); err != nil {
			return err
		}
		for i := int64(3); i < 13; i++ {
			if err := tx.InsertInode(ctx, newDir(i, i-1, fmt.Sprintf("d%d", i))); err != nil {
				return err
			}
		}
		return nil
	})
	for _, lock := range []dal.LockMode{dal.LockNone, dal.LockRead, dal.LockWrite} {
		tx(t, s, func(ctx context.Context, tx dal.Tx) error {
			got, err := tx.GetInodesByIDs(ctx, []int64{12, 1, 7, 404, 3, 7}, lock)
			if err != nil {
				return err
			}
			var ids []int64
			for _, in := range got {
				ids = append(ids, in.ID)
				if in.ID > 2 && (in.ParentID != in.ID-1 || in.Name != fmt.Sprintf("d%d", in.ID)) {
					t.Errorf("inode %d = %+v", in.ID, in)
				}
			}
			if want := []int64{1, 3, 7, 12}; !slices.Equal(ids, want) {
				t.Errorf("GetInodesByIDs(%s) ids = %v, want %v", lock, ids, want)
			}
			none, err := tx.GetInodesByIDs(ctx, nil, lock)
			if err != nil || len(none) != 0 {
				t.Errorf("GetInodesByIDs(nil) = %v, %v", none, err)
			}
			return nil
		})
	}
	// ReadPath: the same read plus one child by name (d8 in d7 exists,
	// "nope" in d7 does not; d5 is both asked by id and found as the
	// child), with one of them locked or none.
	for _, c := range []struct {
		ids    []int64
		lockID int64
		parent int64
		name   string
		want   []int64
	}{
		{[]int64{1, 3, 7}, 0, 7, "d8", []int64{1, 3, 7, 8}},
		{[]int64{1, 3, 7}, 7, 7, "d8", []int64{1, 3, 7, 8}},
		{[]int64{1, 3, 7, 404}, 3, 7, "nope", []int64{1, 3, 7}},
		{[]int64{4, 5}, 0, 4, "d5", []int64{4, 5, 5}},
		{[]int64{1, 4}, 9, 0, "", []int64{1, 4, 9}},
		{[]int64{1, 4}, 0, 0, "", []int64{1, 4}},
		{nil, 0, 11, "d12", []int64{12}},
		{nil, 0, 11, "nope", nil},
		{nil, 0, 0, "", nil},
	} {
		var child *dal.InodeKey
		if c.name != "" {
			child = &dal.InodeKey{ParentID: c.parent, Name: c.name}
		}
		tx(t, s, func(ctx context.Context, tx dal.Tx) error {
			got, err := tx.ReadPath(ctx, c.ids, c.lockID, dal.LockWrite, child)
			if err != nil {
				return err
			}
			var ids []int64
			for _, in := range got {
				ids = append(ids, in.ID)
				if in.ID > 2 && (in.ParentID != in.ID-1 || in.Name != fmt.Sprintf("d%d", in.ID)) {
					t.Errorf("inode %d = %+v", in.ID, in)
				}
			}
			slices.Sort(ids)
			if !slices.Equal(ids, c.want) {
				t.Errorf("ReadPath(%v, lock %d, child %d/%q) ids = %v, want %v", c.ids, c.lockID, c.parent, c.name, ids, c.want)
			}
			return nil
		})
	}
}

// childNames returns names whose byte order differs from case-insensitive
// and locale orders.
func childNames() []string {
	return []string{"B", "a", "Z", "é", "a b", "a-b", "a_b", "_x", "0", "10", "9", "zz", "Ä", "ab", "aB",
		"file.001", "file.01", "file.1", "~tilde", "UPPER", "lower", "😀", "ß", "a.b", "A"}
}

func testListChildren(t *testing.T, s dal.Store) {
	// The same names under the root (hashed partitions) and deeper.
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		if err := tx.InsertInode(ctx, newDir(2, dal.RootID, "dir")); err != nil {
			return err
		}
		id := int64(100)
		for _, parent := range []int64{dal.RootID, 2} {
			for _, name := range childNames() {
				if parent == dal.RootID && name == "dir" {
					continue
				}
				id++
				if err := tx.InsertInode(ctx, newFile(id, parent, name)); err != nil {
					return err
				}
			}
		}
		// Noise in a sibling directory must not show.
		if err := tx.InsertInode(ctx, newDir(3, dal.RootID, "other")); err != nil {
			return err
		}
		return tx.InsertInode(ctx, newFile(4, 3, "zzz"))
	})
	want := childNames()
	sort.Slice(want, func(i, j int) bool { return bytes.Compare([]byte(want[i]), []byte(want[j])) < 0 })
	wantRoot := slices.Clone(want)
	wantRoot = append(wantRoot, "dir", "other")
	sort.Slice(wantRoot, func(i, j int) bool { return bytes.Compare([]byte(wantRoot[i]), []byte(wantRoot[j])) < 0 })

	for _, c := range []struct {
		parent int64
		want   []string
	}{{2, want}, {dal.RootID, wantRoot}} {
		for _, pageSize := range []int{1, 7, 25, 0} {
			var got []string
			after := ""
			for pages := 0; ; pages++ {
				if pages > len(c.want)+1 {
					t.Fatalf("parent %d page size %d: paging does not end", c.parent, pageSize)
				}
				var page []*dal.Inode
				err := s.ReadTx(context.Background(), func(tx dal.Tx) error {
					var err error
					page, err = tx.ListChildren(context.Background(), c.parent, after, pageSize)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				if pageSize > 0 && len(page) > pageSize {
					t.Fatalf("page of %d > limit %d", len(page), pageSize)
				}
				if len(page) == 0 {
					break
				}
				for _, in := range page {
					if in.ParentID != c.parent {
						t.Fatalf("child %+v of wrong parent", in)
					}
					got = append(got, in.Name)
				}
				after = page[len(page)-1].Name
				if pageSize <= 0 {
					break
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("parent %d page size %d: names\n%q\nwant (byte order)\n%q", c.parent, pageSize, got, c.want)
			}
		}
		tx(t, s, func(ctx context.Context, tx dal.Tx) error {
			n, err := tx.CountChildren(ctx, c.parent)
			if err != nil {
				return err
			}
			if n != int64(len(c.want)) {
				t.Errorf("CountChildren(%d) = %d, want %d", c.parent, n, len(c.want))
			}
			last, err := tx.ListChildren(ctx, c.parent, c.want[len(c.want)-1], 10)
			if err != nil || len(last) != 0 {
				t.Errorf("after the last name: %v, %v", last, err)
			}
			return nil
		})
	}
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		empty, err := tx.ListChildren(ctx, 4, "", 10)
		if err != nil || len(empty) != 0 {
			t.Errorf("children of a file: %v, %v", empty, err)
		}
		n, err := tx.CountChildren(ctx, 999)
		if err != nil || n != 0 {
			t.Errorf("CountChildren(missing) = %d, %v", n, err)
		}
		return nil
	})
}

func testBlocks(t *testing.T, s dal.Store) {
	const file, other = 10, 11
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		if err := tx.InsertInode(ctx, newFile(file, dal.RootID, "f")); err != nil {
			return err
		}
		if err := tx.InsertInode(ctx, newFile(other, dal.RootID, "g")); err != nil {
			return err
		}
		// Out of order on purpose.
		for _, b := range []*dal.Block{
			{InodeID: file, BlockID: 5002, Index: 2, NumBytes: 10, GenerationStamp: 1001, State: dal.BlockUnderRecovery, RecoveryID: 1003},
			{InodeID: file, BlockID: 5000, Index: 0, NumBytes: 128, GenerationStamp: 1001, State: dal.BlockComplete},
			{InodeID: file, BlockID: 5001, Index: 1, NumBytes: 128, GenerationStamp: 1001, State: dal.BlockComplete},
		} {
			if err := tx.AddBlock(ctx, b); err != nil {
				return err
			}
		}
		return nil
	})
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		bs, err := tx.ListBlocks(ctx, file)
		if err != nil {
			return err
		}
		var ids []int64
		for _, b := range bs {
			ids = append(ids, b.BlockID)
		}
		if !slices.Equal(ids, []int64{5000, 5001, 5002}) {
			t.Errorf("ListBlocks ids = %v", ids)
		}
		b, err := tx.GetBlock(ctx, 5002)
		if err != nil {
			return err
		}
		if *b != (dal.Block{InodeID: file, BlockID: 5002, Index: 2, NumBytes: 10, GenerationStamp: 1001, State: dal.BlockUnderRecovery, RecoveryID: 1003}) {
			t.Errorf("GetBlock = %+v", b)
		}
		if last := bs[len(bs)-1]; len(bs) != 3 || *last != *b || bs[0].RecoveryID != 0 {
			t.Errorf("ListBlocks: last %+v, first %+v; want the recovery id on the last only", last, bs[0])
		}
		none, err := tx.ListBlocks(ctx, other)
		if err != nil || len(none) != 0 {
			t.Errorf("blocks of an empty file: %v, %v", none, err)
		}
		return nil
	})
	// A block id is unique across files; a block needs its inode.
	mustExists(t, "same block id in another file", txErr(s, func(ctx context.Context, tx dal.Tx) error {
		return tx.AddBlock(ctx, &dal.Block{InodeID: other, BlockID: 5001})
	}))
	mustExists(t, "same block twice", txErr(s, func(ctx context.Context, tx dal.Tx) error {
		return tx.AddBlock(ctx, &dal.Block{InodeID: file, BlockID: 5001})
	}))
	mustNotFound(t, "block of a missing inode", txErr(s, func(ctx context.Context, tx dal.Tx) error {
		return tx.AddBlock(ctx, &dal.Block{InodeID: 404, BlockID: 6000})
	}))
	// The recovery id is written, and cleared, like the other columns.
	rec := dal.Block{InodeID: file, BlockID: 5002, Index: 2, NumBytes: 20, GenerationStamp: 1001, State: dal.BlockUnderRecovery, RecoveryID: 1004}
	upd := dal.Block{InodeID: file, BlockID: 5002, Index: 2, NumBytes: 77, GenerationStamp: 1004, State: dal.BlockComplete}
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		if err := tx.UpdateBlock(ctx, &rec); err != nil {
			return err
		}
		if b, err := tx.GetBlock(ctx, 5002); err != nil || *b != rec {
			t.Errorf("after update %+v %v, want %+v", b, err, rec)
		}
		if err := tx.UpdateBlock(ctx, &upd); err != nil {
			return err
		}
		b, err := tx.GetBlock(ctx, 5002)
		if err != nil {
			return err
		}
		if *b != upd {
			t.Errorf("after update %+v, want %+v", b, upd)
		}
		mustNotFound(t, "update missing block", tx.UpdateBlock(ctx, &dal.Block{InodeID: file, BlockID: 9}))
		if err := tx.DeleteBlock(ctx, file, 5000); err != nil {
			return err
		}
		_, err = tx.GetBlock(ctx, 5000)
		mustNotFound(t, "get deleted block", err)
		mustNotFound(t, "delete deleted block", tx.DeleteBlock(ctx, file, 5000))
		bs, err := tx.ListBlocks(ctx, file)
		if err != nil || len(bs) != 2 {
			t.Errorf("after delete: %d blocks, %v", len(bs), err)
		}
		return nil
	})
	// The deleted block's id is free again (its lookup row went with it).
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		return tx.AddBlock(ctx, &dal.Block{InodeID: other, BlockID: 5000})
	})
}

func testReplicas(t *testing.T, s dal.Store) {
	const file = 10
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		if err := tx.InsertInode(ctx, newFile(file, dal.RootID, "f")); err != nil {
			return err
		}
		for i := int64(0); i < 3; i++ {
			if err := tx.AddBlock(ctx, &dal.Block{InodeID: file, BlockID: 100 + i, Index: int32(i)}); err != nil {
				return err
			}
			for _, dn := range []string{"dn-b", "dn-a", "dn-c"} {
				if err := tx.AddReplica(ctx, &dal.Replica{InodeID: file, BlockID: 100 + i, StorageID: dn, State: dal.ReplicaFinalized}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	mustExists(t, "same replica twice", txErr(s, func(ctx context.Context, tx dal.Tx) error {
		return tx.AddReplica(ctx, &dal.Replica{InodeID: file, BlockID: 101, StorageID: "dn-a"})
	}))
	mustNotFound(t, "replica of a missing block", txErr(s, func(ctx context.Context, tx dal.Tx) error {
		return tx.AddReplica(ctx, &dal.Replica{InodeID: file, BlockID: 999, StorageID: "dn-a"})
	}))
	storages := func(rs []*dal.Replica) (out []string) {
		for _, r := range rs {
			out = append(out, fmt.Sprintf("%d@%s", r.BlockID, r.StorageID))
		}
		return out
	}
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		rs, err := tx.ListReplicas(ctx, file, 101)
		if err != nil {
			return err
		}
		if got := storages(rs); !slices.Equal(got, []string{"101@dn-a", "101@dn-b", "101@dn-c"}) {
			t.Errorf("ListReplicas = %v", got)
		}
		all, err := tx.ListFileReplicas(ctx, file)
		if err != nil {
			return err
		}
		if len(all) != 9 || all[0].BlockID != 100 || all[8].BlockID != 102 || all[0].StorageID != "dn-a" {
			t.Errorf("ListFileReplicas = %v", storages(all))
		}
		// Paged by block id on one storage.
		var got []string
		after := int64(0)
		for {
			page, err := tx.ListStorageReplicas(ctx, "dn-b", after, 2)
			if err != nil {
				return err
			}
			if len(page) == 0 {
				break
			}
			got = append(got, storages(page)...)
			after = page[len(page)-1].BlockID
		}
		if !slices.Equal(got, []string{"100@dn-b", "101@dn-b", "102@dn-b"}) {
			t.Errorf("ListStorageReplicas pages = %v", got)
		}
		if err := tx.UpdateReplicaState(ctx, file, 101, "dn-b", dal.ReplicaCorrupt); err != nil {
			return err
		}
		rs, err = tx.ListReplicas(ctx, file, 101)
		if err != nil {
			return err
		}
		if rs[1].StorageID != "dn-b" || rs[1].State != dal.ReplicaCorrupt || rs[0].State != dal.ReplicaFinalized {
			t.Errorf("after state update: %+v %+v", rs[0], rs[1])
		}
		mustNotFound(t, "update missing replica", tx.UpdateReplicaState(ctx, file, 101, "dn-z", dal.ReplicaExcess))
		if err := tx.RemoveReplica(ctx, file, 101, "dn-b"); err != nil {
			return err
		}
		mustNotFound(t, "remove removed replica", tx.RemoveReplica(ctx, file, 101, "dn-b"))
		rs, err = tx.ListReplicas(ctx, file, 101)
		if got := storages(rs); err != nil || !slices.Equal(got, []string{"101@dn-a", "101@dn-c"}) {
			t.Errorf("after remove: %v, %v", got, err)
		}
		// Deleting a block deletes its replicas.
		if err := tx.DeleteBlock(ctx, file, 100); err != nil {
			return err
		}
		rs, err = tx.ListStorageReplicas(ctx, "dn-a", 0, 0)
		if got := storages(rs); err != nil || !slices.Equal(got, []string{"101@dn-a", "102@dn-a"}) {
			t.Errorf("after block delete: %v, %v", got, err)
		}
		return nil
	})
}

func testReplicaStorages(t *testing.T, s dal.Store) {
	list := func(after string, limit int) []string {
		t.Helper()
		var out []string
		err := s.ReadTx(context.Background(), func(tx dal.Tx) error {
			var err error
			out, err = tx.ListReplicaStorages(context.Background(), after, limit)
			return err
		})
		if err != nil {
			t.Fatalf("ListReplicaStorages(%q, %d): %v", after, limit, err)
		}
		return out
	}
	if got := list("", 0); len(got) != 0 {
		t.Errorf("ListReplicaStorages on an empty table = %v", got)
	}
	// Two files, four blocks, several replicas per storage; "DN-Z" sorts
	// first in byte order.
	all := []string{"DN-Z", "dn-a", "dn-b", "dn-c", "dn-c2"}
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		for f := int64(10); f < 12; f++ {
			if err := tx.InsertInode(ctx, newFile(f, dal.RootID, fmt.Sprintf("f%d", f))); err != nil {
				return err
			}
			for i := int64(0); i < 2; i++ {
				id := 100 + 10*f + i
				if err := tx.AddBlock(ctx, &dal.Block{InodeID: f, BlockID: id, Index: int32(i)}); err != nil {
					return err
				}
				for j, dn := range all {
					if f == 11 && j%2 == 1 {
						continue // dn-a and dn-c only hold file 10's blocks
					}
					if err := tx.AddReplica(ctx, &dal.Replica{InodeID: f, BlockID: id, StorageID: dn, State: dal.ReplicaState(j % 3)}); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if got := list("", 0); !slices.Equal(got, all) {
		t.Errorf("ListReplicaStorages(\"\", 0) = %v, want %v", got, all)
	}
	if got := list("", -1); !slices.Equal(got, all) {
		t.Errorf("ListReplicaStorages(\"\", -1) = %v, want %v", got, all)
	}
	// Paged: each page after the last id of the one before.
	var pages [][]string
	for after := ""; ; {
		page := list(after, 2)
		if len(page) == 0 {
			break
		}
		if len(page) > 2 {
			t.Fatalf("page after %q = %v: more than the limit", after, page)
		}
		pages = append(pages, page)
		after = page[len(page)-1]
	}
	if got := slices.Concat(pages...); len(pages) != 3 || !slices.Equal(got, all) {
		t.Errorf("pages of 2 = %v, want %v in 3 pages", pages, all)
	}
	for _, c := range []struct {
		after string
		limit int
		want  []string
	}{
		{"dn-a", 0, []string{"dn-b", "dn-c", "dn-c2"}},
		{"dn-a", 1, []string{"dn-b"}},
		{"dn-b0", 10, []string{"dn-c", "dn-c2"}}, // after an id with no rows
		{"dn-c", 5, []string{"dn-c2"}},
		{"dn-c2", 5, nil},
		{"zzz", 0, nil},
	} {
		if got := list(c.after, c.limit); !slices.Equal(got, c.want) {
			t.Errorf("ListReplicaStorages(%q, %d) = %v, want %v", c.after, c.limit, got, c.want)
		}
	}
	// A storage whose last replica goes is no longer listed.
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		for _, id := range []int64{200, 201} {
			if err := tx.RemoveReplica(ctx, 10, id, "dn-b"); err != nil {
				return err
			}
		}
		return nil
	})
	if got, want := list("", 0), []string{"DN-Z", "dn-a", "dn-b", "dn-c", "dn-c2"}; !slices.Equal(got, want) {
		t.Errorf("after removing dn-b's replicas of file 10 = %v, want %v (file 11's remain)", got, want)
	}
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		return tx.DeleteInode(ctx, 11)
	})
	if got, want := list("", 0), []string{"DN-Z", "dn-a", "dn-c", "dn-c2"}; !slices.Equal(got, want) {
		t.Errorf("after deleting file 11 = %v, want %v", got, want)
	}
}

func testLeases(t *testing.T, s dal.Store) {
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		for i := int64(10); i < 14; i++ {
			if err := tx.InsertInode(ctx, newFile(i, dal.RootID, fmt.Sprintf("f%d", i))); err != nil {
				return err
			}
		}
		for _, l := range []*dal.Lease{{Holder: "c1", LastRenewal: 100}, {Holder: "c2", LastRenewal: 50}, {Holder: "c3", LastRenewal: 300}} {
			if err := tx.PutLease(ctx, l); err != nil {
				return err
			}
		}
		for _, p := range []*dal.LeasePath{{InodeID: 12, Holder: "c1", Path: "/f12"}, {InodeID: 10, Holder: "c1", Path: "/f10"}, {InodeID: 11, Holder: "c2", Path: "/f11"}} {
			if err := tx.AddLeasePath(ctx, p); err != nil {
				return err
			}
		}
		return nil
	})
	mustExists(t, "second lease path for a file", txErr(s, func(ctx context.Context, tx dal.Tx) error {
		return tx.AddLeasePath(ctx, &dal.LeasePath{InodeID: 10, Holder: "c2", Path: "/f10"})
	}))
	mustNotFound(t, "lease path without a lease", txErr(s, func(ctx context.Context, tx dal.Tx) error {
		return tx.AddLeasePath(ctx, &dal.LeasePath{InodeID: 13, Holder: "nobody", Path: "/f13"})
	}))
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		l, err := tx.GetLease(ctx, "c2")
		if err != nil {
			return err
		}
		if *l != (dal.Lease{Holder: "c2", LastRenewal: 50}) {
			t.Errorf("GetLease = %+v", l)
		}
		_, err = tx.GetLease(ctx, "nobody")
		mustNotFound(t, "missing lease", err)
		// Renewal replaces the time.
		if err := tx.PutLease(ctx, &dal.Lease{Holder: "c2", LastRenewal: 400}); err != nil {
			return err
		}
		exp, err := tx.ListExpiredLeases(ctx, 301, 0)
		if err != nil {
			return err
		}
		if len(exp) != 2 || exp[0].Holder != "c1" || exp[1].Holder != "c3" {
			t.Errorf("expired before 301: %+v", exp)
		}
		exp, err = tx.ListExpiredLeases(ctx, 1000, 1)
		if err != nil || len(exp) != 1 || exp[0].Holder != "c1" {
			t.Errorf("expired before 1000, limit 1: %+v, %v", exp, err)
		}
		ps, err := tx.ListLeasePaths(ctx, "c1")
		if err != nil {
			return err
		}
		if len(ps) != 2 || *ps[0] != (dal.LeasePath{InodeID: 10, Holder: "c1", Path: "/f10"}) || ps[1].InodeID != 12 {
			t.Errorf("ListLeasePaths(c1) = %+v", ps)
		}
		for _, c := range []struct {
			holder string
			except int64
			want   bool
		}{{"c1", 0, true}, {"c1", 10, true}, {"c2", 0, true}, {"c2", 11, false}, {"nobody", 0, false}} {
			if has, err := tx.HasLeasePaths(ctx, c.holder, c.except); err != nil || has != c.want {
				t.Errorf("HasLeasePaths(%s, except %d) = %v, %v; want %v", c.holder, c.except, has, err, c.want)
			}
		}
		p, err := tx.GetLeasePath(ctx, 11)
		if err != nil || p.Holder != "c2" || p.Path != "/f11" {
			t.Errorf("GetLeasePath(11) = %+v, %v", p, err)
		}
		if err := tx.DeleteLeasePath(ctx, 11); err != nil {
			return err
		}
		mustNotFound(t, "delete deleted lease path", tx.DeleteLeasePath(ctx, 11))
		_, err = tx.GetLeasePath(ctx, 11)
		mustNotFound(t, "get deleted lease path", err)
		// Deleting a lease deletes its paths.
		if err := tx.DeleteLease(ctx, "c1"); err != nil {
			return err
		}
		mustNotFound(t, "delete deleted lease", tx.DeleteLease(ctx, "c1"))
		_, err = tx.GetLeasePath(ctx, 10)
		mustNotFound(t, "lease path of a deleted lease", err)
		ps, err = tx.ListLeasePaths(ctx, "c1")
		if err != nil || len(ps) != 0 {
			t.Errorf("paths of a deleted lease: %+v, %v", ps, err)
		}
		if has, err := tx.HasLeasePaths(ctx, "c1", 0); err != nil || has {
			t.Errorf("HasLeasePaths of a deleted lease: %v, %v", has, err)
		}
		return nil
	})
}

func testVariables(t *testing.T, s dal.Store) {
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		for name, want := range map[string]int64{dal.VarInodeID: 1, dal.VarBlockID: 1 << 30, dal.VarGenerationStamp: 1000,
			dal.VarSchemaVersion: int64(dal.LatestSchemaVersion())} {
			got, err := tx.GetVariable(ctx, name)
			if err != nil {
				return err
			}
			if got != want {
				t.Errorf("variable %s = %d, want %d", name, got, want)
			}
		}
		_, err := tx.GetVariable(ctx, "nope")
		mustNotFound(t, "missing variable", err)
		_, err = tx.ReserveIDs(ctx, "nope", 5)
		mustNotFound(t, "reserve on a missing variable", err)
		if _, err := tx.ReserveIDs(ctx, dal.VarInodeID, 0); err == nil {
			t.Error("reserving 0 ids succeeded")
		}
		if err := tx.SetVariable(ctx, "custom", 41); err != nil {
			return err
		}
		if err := tx.SetVariable(ctx, "custom", 99); err != nil {
			return err
		}
		r, err := tx.ReserveIDs(ctx, "custom", 1)
		if err != nil {
			return err
		}
		if r != (dal.IDRange{First: 100, Last: 100}) || r.Len() != 1 {
			t.Errorf("reserve 1 after 99 = %+v", r)
		}
		r, err = tx.ReserveIDs(ctx, dal.VarInodeID, 1000)
		if err != nil {
			return err
		}
		if r != (dal.IDRange{First: 2, Last: 1001}) || r.Len() != 1000 {
			t.Errorf("reserve 1000 inode ids = %+v", r)
		}
		v, err := tx.GetVariable(ctx, dal.VarInodeID)
		if err != nil || v != 1001 {
			t.Errorf("inode_id after reservation = %d, %v", v, err)
		}
		return nil
	})
}

func testReserveConcurrent(t *testing.T, s dal.Store) {
	const workers, rounds = 8, 25
	var mu sync.Mutex
	var ranges []dal.IDRange
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				n := int64(1 + (w+i)%5)
				var r dal.IDRange
				err := txErr(s, func(ctx context.Context, tx dal.Tx) error {
					var err error
					r, err = tx.ReserveIDs(ctx, dal.VarBlockID, n)
					return err
				})
				if err != nil {
					errs <- err
					return
				}
				if r.Len() != n {
					errs <- fmt.Errorf("reserved %+v, want %d ids", r, n)
					return
				}
				mu.Lock()
				ranges = append(ranges, r)
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	var total int64
	for _, r := range ranges {
		for id := r.First; id <= r.Last; id++ {
			if seen[id] {
				t.Fatalf("id %d handed out twice", id)
			}
			seen[id] = true
		}
		total += r.Len()
	}
	// Together the ranges are exactly the ids after the initial value.
	for id := int64(1<<30) + 1; id <= 1<<30+total; id++ {
		if !seen[id] {
			t.Fatalf("id %d never handed out (gap)", id)
		}
	}
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		v, err := tx.GetVariable(ctx, dal.VarBlockID)
		if err != nil || v != 1<<30+total {
			t.Errorf("block_id = %d, %v; want %d", v, err, 1<<30+total)
		}
		return nil
	})
}

func testRollback(t *testing.T, s dal.Store) {
	boom := errors.New("boom")
	err := txErr(s, func(ctx context.Context, tx dal.Tx) error {
		if err := tx.InsertInode(ctx, newDir(2, dal.RootID, "gone")); err != nil {
			return err
		}
		if _, err := tx.ReserveIDs(ctx, dal.VarInodeID, 10); err != nil {
			return err
		}
		return fmt.Errorf("the operation failed: %w", boom)
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Tx returned %v, want the function's error", err)
	}
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		_, err := tx.GetInodeByID(ctx, 2, dal.LockNone)
		mustNotFound(t, "inode of a rolled-back transaction", err)
		v, err := tx.GetVariable(ctx, dal.VarInodeID)
		if err != nil || v != 1 {
			t.Errorf("inode_id after rollback = %d, %v; want 1", v, err)
		}
		return nil
	})
	// A failed statement inside a transaction surfaces and rolls back too.
	mustExists(t, "duplicate in a transaction", txErr(s, func(ctx context.Context, tx dal.Tx) error {
		if err := tx.InsertInode(ctx, newDir(3, dal.RootID, "x")); err != nil {
			return err
		}
		return tx.InsertInode(ctx, newDir(4, dal.RootID, "x"))
	}))
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		_, err := tx.GetInodeByID(ctx, 3, dal.LockNone)
		mustNotFound(t, "first insert of a failed transaction", err)
		return nil
	})
}

// testDeferred checks Tx.Deferred: held-back writes are seen by the
// transaction's later reads and committed with it; a held-back write that
// fails (a duplicate, no row to update) fails the transaction from a later
// call or the commit, and nothing of it stays.
func testDeferred(t *testing.T, s dal.Store) {
	// Writes only, all deferred: the commit sends them.
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		w := tx.Deferred()
		if err := w.InsertInode(ctx, newDir(2, dal.RootID, "d")); err != nil {
			return err
		}
		if err := w.PutLease(ctx, &dal.Lease{Holder: "h", LastRenewal: 5}); err != nil {
			return err
		}
		return w.AddLeasePath(ctx, &dal.LeasePath{InodeID: 2, Holder: "h", Path: "/d"})
	})
	// Reads after deferred writes see them, on the view and on the
	// transaction.
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		w := tx.Deferred()
		in, err := w.GetInodeByID(ctx, 2, dal.LockWrite)
		if err != nil {
			return err
		}
		in.MTime = 77
		if err := w.UpdateInode(ctx, in); err != nil {
			return err
		}
		if err := w.InsertInode(ctx, newFile(3, 2, "f")); err != nil {
			return err
		}
		got, err := tx.GetInodeByID(ctx, 2, dal.LockNone)
		if err != nil {
			return err
		}
		if got.MTime != 77 {
			t.Errorf("read after a deferred update: mtime %d, want 77", got.MTime)
		}
		kids, err := w.ListChildren(ctx, 2, "", 0)
		if err != nil {
			return err
		}
		if len(kids) != 1 || kids[0].Name != "f" {
			t.Errorf("children after a deferred insert: %v, want [f]", kids)
		}
		return w.DeleteLease(ctx, "h")
	})
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		l, err := tx.GetLease(ctx, "h")
		mustNotFound(t, "lease deleted by a deferred write", err)
		if l != nil {
			t.Errorf("lease %v still there", l)
		}
		_, err = tx.GetLeasePath(ctx, 2)
		mustNotFound(t, "lease path of a deleted lease", err)
		return nil
	})
	// A deferred duplicate fails the transaction; the earlier writes go.
	mustExists(t, "deferred duplicate", txErr(s, func(ctx context.Context, tx dal.Tx) error {
		if err := tx.InsertInode(ctx, newFile(4, 2, "g")); err != nil {
			return err
		}
		if err := tx.Deferred().InsertInode(ctx, newFile(5, 2, "f")); err != nil {
			return err
		}
		_, err := tx.GetInodeByID(ctx, 4, dal.LockNone)
		return err
	}))
	// A deferred update of a missing row: ErrNotFound, at the latest from
	// the commit.
	mustNotFound(t, "deferred update of a missing inode", txErr(s, func(ctx context.Context, tx dal.Tx) error {
		if err := tx.InsertInode(ctx, newFile(6, 2, "h")); err != nil {
			return err
		}
		return tx.Deferred().UpdateInode(ctx, newFile(99, 2, "nobody"))
	}))
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		for _, id := range []int64{4, 5, 6} {
			_, err := tx.GetInodeByID(ctx, id, dal.LockNone)
			mustNotFound(t, fmt.Sprintf("inode %d of a failed transaction", id), err)
		}
		return nil
	})
}

// testNamenodes checks the le_descriptors rows of leader election.
func testNamenodes(t *testing.T, s dal.Store) {
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		ns, err := tx.ListNamenodes(ctx)
		if err != nil || len(ns) != 0 {
			t.Errorf("namenodes of a new database: %v, %v; want none", ns, err)
		}
		for _, id := range []int64{7, 3} {
			if err := tx.PutNamenode(ctx, &dal.Namenode{ID: id, Counter: 1, RPCAddress: fmt.Sprintf("h:%d", id), HTTPAddress: "w"}); err != nil {
				return err
			}
		}
		return tx.PutNamenode(ctx, &dal.Namenode{ID: 7, Counter: 2, RPCAddress: "h:7b", HTTPAddress: "w7"})
	})
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		ns, err := tx.ListNamenodes(ctx)
		if err != nil {
			return err
		}
		want := []dal.Namenode{{ID: 3, Counter: 1, RPCAddress: "h:3", HTTPAddress: "w"}, {ID: 7, Counter: 2, RPCAddress: "h:7b", HTTPAddress: "w7"}}
		if len(ns) != len(want) {
			t.Fatalf("namenodes = %d rows, want %d", len(ns), len(want))
		}
		for i := range want {
			if *ns[i] != want[i] {
				t.Errorf("namenode %d = %+v, want %+v", i, *ns[i], want[i])
			}
		}
		if err := tx.DeleteNamenode(ctx, 3); err != nil {
			return err
		}
		mustNotFound(t, "delete of a missing namenode", tx.DeleteNamenode(ctx, 3))
		first, err := tx.ReserveIDs(ctx, dal.VarNamenodeID, 1)
		if err != nil || first.First != 1 {
			t.Errorf("first namenode id = %v, %v; want 1", first, err)
		}
		return nil
	})
}

// testDeleteIdleLease checks the atomic "delete the lease if expired and
// without paths", also against a renewal and create by the holder that
// holds the lease row when the deletion starts.
func testDeleteIdleLease(t *testing.T, s dal.Store) {
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		for i := int64(10); i < 12; i++ {
			if err := tx.InsertInode(ctx, newFile(i, dal.RootID, fmt.Sprintf("f%d", i))); err != nil {
				return err
			}
		}
		for _, l := range []*dal.Lease{{Holder: "idle", LastRenewal: 100}, {Holder: "busy", LastRenewal: 100}, {Holder: "fresh", LastRenewal: 900}, {Holder: "race", LastRenewal: 100}} {
			if err := tx.PutLease(ctx, l); err != nil {
				return err
			}
		}
		return tx.AddLeasePath(ctx, &dal.LeasePath{InodeID: 10, Holder: "busy", Path: "/f10"})
	})
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		for _, c := range []struct {
			holder string
			want   bool
		}{{"idle", true}, {"busy", false}, {"fresh", false}, {"nobody", false}} {
			got, err := tx.DeleteIdleLease(ctx, c.holder, 500)
			if err != nil {
				return err
			}
			if got != c.want {
				t.Errorf("DeleteIdleLease(%q, 500) = %v, want %v", c.holder, got, c.want)
			}
		}
		for _, h := range []string{"busy", "fresh"} {
			if _, err := tx.GetLease(ctx, h); err != nil {
				t.Errorf("lease %q: %v, want it kept", h, err)
			}
		}
		_, err := tx.GetLease(ctx, "idle")
		mustNotFound(t, "the idle lease", err)
		return nil
	})

	// The holder renews and opens a file; the deletion starts while that
	// transaction is open and must leave both once it commits.
	ctx := context.Background()
	inside, release := make(chan struct{}), make(chan struct{})
	creator := make(chan error, 1)
	go func() {
		creator <- s.Tx(ctx, func(tx dal.Tx) error {
			if err := tx.PutLease(ctx, &dal.Lease{Holder: "race", LastRenewal: 1000}); err != nil {
				return err
			}
			if err := tx.AddLeasePath(ctx, &dal.LeasePath{InodeID: 11, Holder: "race", Path: "/f11"}); err != nil {
				return err
			}
			select {
			case <-inside:
			default:
				close(inside)
			}
			<-release
			return nil
		})
	}()
	<-inside
	deleted := make(chan error, 1)
	var got bool
	go func() {
		deleted <- s.Tx(ctx, func(tx dal.Tx) error {
			var err error
			got, err = tx.DeleteIdleLease(ctx, "race", 500)
			return err
		})
	}()
	time.Sleep(100 * time.Millisecond) // the deletion waits for the creator
	close(release)
	if err := <-creator; err != nil {
		t.Fatal(err)
	}
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	if got {
		t.Error("DeleteIdleLease deleted a lease renewed by a transaction it waited for")
	}
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		if _, err := tx.GetLease(ctx, "race"); err != nil {
			t.Errorf("the renewed lease: %v", err)
		}
		if _, err := tx.GetLeasePath(ctx, 11); err != nil {
			t.Errorf("the new lease path: %v", err)
		}
		return nil
	})
}

func testRetryTransient(t *testing.T, s dal.Store) {
	var attempts int
	err := txErr(s, func(ctx context.Context, tx dal.Tx) error {
		attempts++
		// Each attempt inserts the same row: a retry must start clean.
		if err := tx.InsertInode(ctx, newDir(2, dal.RootID, "retried")); err != nil {
			return err
		}
		if attempts < 3 {
			return dal.MarkTransient(fmt.Errorf("injected transient failure %d", attempts))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Tx after two transient failures: %v", err)
	}
	if attempts != 3 {
		t.Fatalf("attempts = %d, want 3", attempts)
	}
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		n, err := tx.CountChildren(ctx, dal.RootID)
		if err != nil || n != 1 {
			t.Errorf("children of root = %d, %v; want 1", n, err)
		}
		return nil
	})
	// Non-transient errors are not retried.
	attempts = 0
	_ = txErr(s, func(ctx context.Context, tx dal.Tx) error { attempts++; return errors.New("permanent") })
	if attempts != 1 {
		t.Fatalf("a permanent error ran %d attempts", attempts)
	}
}

func testWriteLockWaits(t *testing.T, s dal.Store) {
	for i, v := range []struct {
		name string
		lock func(ctx context.Context, tx dal.Tx, id int64) (*dal.Inode, error)
	}{
		{"GetInodeByID", func(ctx context.Context, tx dal.Tx, id int64) (*dal.Inode, error) {
			return tx.GetInodeByID(ctx, id, dal.LockWrite)
		}},
		{"GetFileByID", func(ctx context.Context, tx dal.Tx, id int64) (*dal.Inode, error) {
			in, _, err := tx.GetFileByID(ctx, id, dal.LockWrite)
			return in, err
		}},
		{"ReadPath", func(ctx context.Context, tx dal.Tx, id int64) (*dal.Inode, error) {
			ins, err := tx.ReadPath(ctx, []int64{dal.RootID, id}, id, dal.LockWrite, &dal.InodeKey{ParentID: id, Name: "x"})
			if err != nil {
				return nil, err
			}
			for _, in := range ins {
				if in.ID == id {
					return in, nil
				}
			}
			return nil, fmt.Errorf("ReadPath did not return inode %d: %v", id, ins)
		}},
	} {
		t.Run(v.name, func(t *testing.T) { testWriteLockWaitsVia(t, s, int64(2+i), v.lock) })
	}
}

// testWriteLockWaitsVia checks that a second writer locking inode id with
// lock waits for the first writer's commit and then reads its write.
func testWriteLockWaitsVia(t *testing.T, s dal.Store, id int64, lock func(ctx context.Context, tx dal.Tx, id int64) (*dal.Inode, error)) {
	testLockWaits(t, s, id, lockByID, lock)
}

// lockByID write-locks inode id with GetInodeByID.
func lockByID(ctx context.Context, tx dal.Tx, id int64) (*dal.Inode, error) {
	return tx.GetInodeByID(ctx, id, dal.LockWrite)
}

// testLockWaits checks that a second writer locking inode id with second
// waits for the commit of a first writer that locked it with first, and
// then reads the first's write.
func testLockWaits(t *testing.T, s dal.Store, id int64, first, second func(ctx context.Context, tx dal.Tx, id int64) (*dal.Inode, error)) {
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		return tx.InsertInode(ctx, newFile(id, dal.RootID, fmt.Sprintf("hot%d", id)))
	})
	var mu sync.Mutex
	var events []string
	record := func(e string) { mu.Lock(); events = append(events, e); mu.Unlock() }
	locked := make(chan struct{})
	secondDone := make(chan error, 1)
	var secondSize atomic.Int64
	go func() {
		<-locked
		secondDone <- txErr(s, func(ctx context.Context, tx dal.Tx) error {
			in, err := second(ctx, tx, id)
			if err != nil {
				return err
			}
			record("second locked")
			secondSize.Store(in.Size)
			return nil
		})
	}()
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		in, err := first(ctx, tx, id)
		if err != nil {
			return err
		}
		close(locked)
		// Give the second transaction time to reach its lock; whatever the
		// timing, it must not get it before this one commits.
		time.Sleep(100 * time.Millisecond)
		in.Size = 42
		if err := tx.UpdateInode(ctx, in); err != nil {
			return err
		}
		record("first commits")
		return nil
	})
	if err := <-secondDone; err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(events, []string{"first commits", "second locked"}) {
		t.Fatalf("events %v: the second writer did not wait for the first", events)
	}
	if secondSize.Load() != 42 {
		t.Fatalf("the second writer read size %d, want the first's committed 42", secondSize.Load())
	}
}

func testReadTx(t *testing.T, s dal.Store) {
	ctx := context.Background()
	tx(t, s, func(ctx context.Context, tx dal.Tx) error { return tx.InsertInode(ctx, newDir(2, dal.RootID, "r")) })
	err := s.ReadTx(ctx, func(tx dal.Tx) error {
		in, err := tx.GetInode(ctx, dal.RootID, "r", dal.LockNone)
		if err != nil {
			return err
		}
		if in.ID != 2 {
			t.Errorf("read %+v", in)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.ReadTx(ctx, func(tx dal.Tx) error { return tx.InsertInode(ctx, newDir(3, dal.RootID, "w")) })
	if err == nil {
		t.Fatal("an insert in a read-only transaction succeeded")
	}
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		_, err := tx.GetInodeByID(ctx, 3, dal.LockNone)
		mustNotFound(t, "insert of a read-only transaction", err)
		return nil
	})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Tx(cctx, func(dal.Tx) error { return nil }); err == nil {
		t.Fatal("Tx with a cancelled context succeeded")
	}
}

func testDeleteCascades(t *testing.T, s dal.Store) {
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		if err := tx.InsertInode(ctx, newFile(10, dal.RootID, "f")); err != nil {
			return err
		}
		if err := tx.AddBlock(ctx, &dal.Block{InodeID: 10, BlockID: 77}); err != nil {
			return err
		}
		if err := tx.AddReplica(ctx, &dal.Replica{InodeID: 10, BlockID: 77, StorageID: "dn"}); err != nil {
			return err
		}
		if err := tx.PutLease(ctx, &dal.Lease{Holder: "c", LastRenewal: 1}); err != nil {
			return err
		}
		if err := tx.AddLeasePath(ctx, &dal.LeasePath{InodeID: 10, Holder: "c", Path: "/f"}); err != nil {
			return err
		}
		return tx.DeleteInode(ctx, 10)
	})
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		_, err := tx.GetBlock(ctx, 77)
		mustNotFound(t, "block of a deleted file", err)
		rs, err := tx.ListStorageReplicas(ctx, "dn", 0, 0)
		if err != nil || len(rs) != 0 {
			t.Errorf("replicas of a deleted file: %v, %v", rs, err)
		}
		_, err = tx.GetLeasePath(ctx, 10)
		mustNotFound(t, "lease path of a deleted file", err)
		if _, err := tx.GetLease(ctx, "c"); err != nil {
			t.Errorf("the lease itself stays: %v", err)
		}
		return nil
	})
}

// checkFileByID checks that GetFileByID(id, lock) returns what
// GetInodeByID and ListBlocks return, or ErrNotFound with them.
func checkFileByID(ctx context.Context, t testing.TB, tx dal.Tx, id int64, lock dal.LockMode) {
	t.Helper()
	in, blocks, err := tx.GetFileByID(ctx, id, lock)
	wantIn, werr := tx.GetInodeByID(ctx, id, dal.LockNone)
	if errors.Is(werr, dal.ErrNotFound) {
		mustNotFound(t, fmt.Sprintf("GetFileByID(%d, %s) of a missing inode", id, lock), err)
		if in != nil || blocks != nil {
			t.Errorf("GetFileByID(%d, %s) of a missing inode returned %+v, %v", id, lock, in, blocks)
		}
		return
	}
	if werr != nil {
		t.Fatal(werr)
	}
	if err != nil {
		t.Fatalf("GetFileByID(%d, %s): %v", id, lock, err)
	}
	wantBlocks, err := tx.ListBlocks(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if *in != *wantIn {
		t.Errorf("GetFileByID(%d, %s) inode %+v, want %+v", id, lock, in, wantIn)
	}
	if !slices.EqualFunc(blocks, wantBlocks, func(a, b *dal.Block) bool { return *a == *b }) {
		t.Errorf("GetFileByID(%d, %s) blocks %v, want %v", id, lock, blockList(blocks), blockList(wantBlocks))
	}
}

// blockList formats blocks for messages.
func blockList(bs []*dal.Block) []dal.Block {
	out := make([]dal.Block, len(bs))
	for i, b := range bs {
		out[i] = *b
	}
	return out
}

func testFileByID(t *testing.T, s dal.Store) {
	const file, empty, dir = 10, 11, 12
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		if err := tx.InsertInode(ctx, newFile(file, dal.RootID, "f")); err != nil {
			return err
		}
		if err := tx.InsertInode(ctx, newFile(empty, dal.RootID, "e")); err != nil {
			return err
		}
		if err := tx.InsertInode(ctx, newDir(dir, dal.RootID, "d")); err != nil {
			return err
		}
		// Out of order on purpose; two blocks share an index (ordered by id).
		for _, b := range []*dal.Block{
			{InodeID: file, BlockID: 5003, Index: 3, NumBytes: 10, GenerationStamp: 1002, State: dal.BlockUnderRecovery, RecoveryID: 1005},
			{InodeID: file, BlockID: 5000, Index: 0, NumBytes: 128, GenerationStamp: 1001, State: dal.BlockComplete},
			{InodeID: file, BlockID: 5002, Index: 1, NumBytes: 7, GenerationStamp: 1001, State: dal.BlockCommitted},
			{InodeID: file, BlockID: 5001, Index: 1, NumBytes: 128, GenerationStamp: 1001, State: dal.BlockComplete},
		} {
			if err := tx.AddBlock(ctx, b); err != nil {
				return err
			}
		}
		return nil
	})
	locks := []dal.LockMode{dal.LockNone, dal.LockRead, dal.LockWrite}
	for _, lock := range locks {
		tx(t, s, func(ctx context.Context, tx dal.Tx) error {
			in, blocks, err := tx.GetFileByID(ctx, file, lock)
			if err != nil {
				return err
			}
			var ids []int64
			for _, b := range blocks {
				ids = append(ids, b.BlockID)
			}
			if in.ID != file || in.Name != "f" || !slices.Equal(ids, []int64{5000, 5001, 5002, 5003}) {
				t.Errorf("GetFileByID(%s): inode %d %q, blocks %v", lock, in.ID, in.Name, ids)
			}
			_, blocks, err = tx.GetFileByID(ctx, empty, lock)
			if err != nil || len(blocks) != 0 {
				t.Errorf("GetFileByID(%s) of a file without blocks: %v, %v", lock, blockList(blocks), err)
			}
			for _, id := range []int64{file, empty, dir, dal.RootID, 404} {
				checkFileByID(ctx, t, tx, id, lock)
			}
			return nil
		})
	}
	// Read-only transactions read without locks.
	ctx := context.Background()
	if err := s.ReadTx(ctx, func(tx dal.Tx) error {
		for _, id := range []int64{file, empty, dir, 404} {
			checkFileByID(ctx, t, tx, id, dal.LockNone)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Through a Deferred view, after writes held back: they are seen.
	tx(t, s, func(ctx context.Context, tx dal.Tx) error {
		w := tx.Deferred()
		in, blocks, err := w.GetFileByID(ctx, file, dal.LockWrite)
		if err != nil {
			return err
		}
		in.Size = 4242
		if err := w.UpdateInode(ctx, in); err != nil {
			return err
		}
		blocks[0].NumBytes = 99
		if err := w.UpdateBlock(ctx, blocks[0]); err != nil {
			return err
		}
		got, gotBlocks, err := w.GetFileByID(ctx, file, dal.LockWrite)
		if err != nil {
			return err
		}
		if got.Size != 4242 || gotBlocks[0].NumBytes != 99 {
			t.Errorf("after deferred writes: size %d, first block %+v", got.Size, *gotBlocks[0])
		}
		for _, lock := range locks {
			checkFileByID(ctx, t, w, file, lock)
		}
		return nil
	})
}

// testFileByIDLocks checks that GetFileByID takes its lock: a writer
// locking the inode after it waits for its commit, and reads its write.
func testFileByIDLocks(t *testing.T, s dal.Store) {
	testLockWaits(t, s, 20, func(ctx context.Context, tx dal.Tx, id int64) (*dal.Inode, error) {
		in, _, err := tx.GetFileByID(ctx, id, dal.LockWrite)
		return in, err
	}, lockByID)
}

// testFileByIDBlocksAfterLockWait checks that GetFileByID, having waited
// for the inode's lock, returns the blocks as the lock's holder left them
// when it committed, even one that changed the blocks and not the inode
// row: at READ COMMITTED a single statement would return the locked row's
// latest version but the blocks of its snapshot, taken before the wait.
func testFileByIDBlocksAfterLockWait(t *testing.T, s dal.Store) {
	for i, touchInode := range []bool{false, true} {
		t.Run(fmt.Sprintf("inode updated %v", touchInode), func(t *testing.T) {
			id := int64(30 + i)
			base := 7000 + 10*id
			tx(t, s, func(ctx context.Context, tx dal.Tx) error {
				if err := tx.InsertInode(ctx, newFile(id, dal.RootID, fmt.Sprintf("w%d", id))); err != nil {
					return err
				}
				for j := range int64(2) {
					b := &dal.Block{InodeID: id, BlockID: base + j, Index: int32(j), NumBytes: 128, GenerationStamp: 1001, State: dal.BlockComplete}
					if j == 1 {
						b.State, b.NumBytes = dal.BlockUnderConstruction, 5
					}
					if err := tx.AddBlock(ctx, b); err != nil {
						return err
					}
				}
				return nil
			})
			locked := make(chan struct{})
			type result struct {
				in     *dal.Inode
				blocks []*dal.Block
				err    error
			}
			second := make(chan result, 1)
			var waiting atomic.Bool
			go func() {
				<-locked
				var r result
				r.err = txErr(s, func(ctx context.Context, tx dal.Tx) error {
					waiting.Store(true)
					var err error
					r.in, r.blocks, err = tx.GetFileByID(ctx, id, dal.LockWrite)
					return err
				})
				second <- r
			}()
			want := []dal.Block{
				{InodeID: id, BlockID: base + 1, Index: 0, NumBytes: 64, GenerationStamp: 1002, State: dal.BlockCommitted},
				{InodeID: id, BlockID: base + 2, Index: 1, GenerationStamp: 1003, State: dal.BlockUnderConstruction},
			}
			tx(t, s, func(ctx context.Context, tx dal.Tx) error {
				in, err := tx.GetInodeByID(ctx, id, dal.LockWrite)
				if err != nil {
					return err
				}
				close(locked)
				// Let the second transaction take its snapshot and wait for
				// the lock (on SQLite it waits for the writer's turn).
				time.Sleep(200 * time.Millisecond)
				if err := tx.DeleteBlock(ctx, id, base); err != nil {
					return err
				}
				if err := tx.UpdateBlock(ctx, &want[0]); err != nil {
					return err
				}
				if err := tx.AddBlock(ctx, &want[1]); err != nil {
					return err
				}
				if touchInode {
					in.Size = 64
					return tx.UpdateInode(ctx, in)
				}
				return nil
			})
			r := <-second
			if r.err != nil {
				t.Fatal(r.err)
			}
			if !waiting.Load() {
				t.Fatal("the second transaction did not run")
			}
			if wantSize := map[bool]int64{false: 0, true: 64}[touchInode]; r.in.Size != wantSize {
				t.Errorf("inode size %d after the wait, want %d", r.in.Size, wantSize)
			}
			if got := blockList(r.blocks); !slices.Equal(got, want) {
				t.Errorf("blocks after the lock wait:\n got %+v\nwant %+v (the first writer's, committed before the lock was granted)", got, want)
			}
		})
	}
}
