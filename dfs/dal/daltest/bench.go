package daltest

import (
	"context"
	"fmt"
	"testing"

	"github.com/kura-dev/kura/dfs/dal"
)

// BenchPointRead measures one read-only transaction reading one inode by
// (parent, name), the commonest metadata operation (stat).
func BenchPointRead(b *testing.B, s dal.Store) {
	ctx := context.Background()
	err := s.Tx(ctx, func(tx dal.Tx) error {
		if err := tx.InsertInode(ctx, newDir(2, dal.RootID, "bench")); err != nil {
			return err
		}
		return tx.InsertInode(ctx, newFile(3, 2, "target"))
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		err := s.ReadTx(ctx, func(tx dal.Tx) error {
			_, err := tx.GetInode(ctx, 2, "target", dal.LockNone)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchInsert measures one write transaction inserting one file inode into
// a directory (ids reserved beforehand, as the batched id generator does).
func BenchInsert(b *testing.B, s dal.Store) {
	ctx := context.Background()
	if err := s.Tx(ctx, func(tx dal.Tx) error { return tx.InsertInode(ctx, newDir(2, dal.RootID, "bench")) }); err != nil {
		b.Fatal(err)
	}
	next := int64(1000)
	b.ReportAllocs()
	for b.Loop() {
		next++
		id := next
		err := s.Tx(ctx, func(tx dal.Tx) error {
			return tx.InsertInode(ctx, newFile(id, 2, fmt.Sprintf("f%d", id)))
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
