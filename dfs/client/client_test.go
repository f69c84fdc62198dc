package client

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kura-dev/kura/dfs/hdfs"
)

func TestFromStatus(t *testing.T) {
	for _, c := range []struct {
		err  error
		want error
	}{
		{status.Error(codes.NotFound, "FileNotFoundException: File does not exist: /a"), hdfs.ErrFileNotFound},
		{status.Error(codes.FailedPrecondition, "AlreadyBeingCreatedException: Failed to CREATE_FILE /f"), hdfs.ErrAlreadyBeingCreated},
		{status.Error(codes.FailedPrecondition, "AlreadyBeingCreatedException: x"), hdfs.ErrIO},
		{status.Error(codes.Unavailable, "connection refused"), hdfs.ErrIO},
		{status.Error(codes.DeadlineExceeded, "slow"), context.DeadlineExceeded},
	} {
		if got := fromStatus(c.err); !errors.Is(got, c.want) {
			t.Errorf("fromStatus(%v) = %v, want one that is %v", c.err, got, c.want)
		}
	}
	got := fromStatus(status.Error(codes.NotFound, "FileNotFoundException: File does not exist: /a"))
	if got.Error() != "FileNotFoundException: File does not exist: /a" {
		t.Errorf("message %q", got)
	}
	if fromStatus(nil) != nil {
		t.Error("fromStatus(nil) != nil")
	}
	other := status.Error(codes.Internal, "boom")
	if got := fromStatus(other); got != other {
		t.Errorf("unknown exception: %v", got)
	}
}

func TestNewNeedsNamenodes(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without namenodes succeeded")
	}
	c, err := New(Config{Namenodes: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.ClientName() == "" {
		t.Error("no client name")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	if _, err := c.Stat(ctx, "/"); err == nil {
		t.Error("Stat against nothing succeeded")
	}
}

func TestSliceWriter(t *testing.T) {
	w := &sliceWriter{p: make([]byte, 4)}
	if n, err := w.Write([]byte("abc")); n != 3 || err != nil {
		t.Fatal(n, err)
	}
	if n, err := w.Write([]byte("de")); n != 1 || err == nil || string(w.p) != "abcd" {
		t.Fatal(n, err, string(w.p))
	}
}
