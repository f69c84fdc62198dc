package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/kura-dev/kura/kv/client"
	"github.com/kura-dev/kura/proto/kvpb"
	"github.com/kura-dev/kura/store"
)

// These examples compile with the package's tests; they need a running
// cluster (kura kv serve) to run, so they print nothing checked.

func ExampleNew() {
	c, err := client.New(client.Config{
		Endpoints: []string{"127.0.0.1:7401", "127.0.0.1:7402", "127.0.0.1:7403"},
		Timeout:   10 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, []byte("greeting"), []byte("hello"), time.Hour); err != nil {
		log.Fatal(err)
	}
	v, err := c.Get(ctx, []byte("greeting"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		fmt.Println("no greeting")
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Printf("%s\n", v)
	}
}

// Non-idempotent operations (queue pops, CAS, pushes) are not retried
// once they may have reached a node: their failure can be "outcome
// unknown", which the caller resolves (here: by reading the counter).
func ExampleErrUnknownOutcome() {
	c, err := client.New(client.Config{Endpoints: []string{"127.0.0.1:7401"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	n, err := c.CASAdd(ctx, []byte("visits"), 64, 1)
	if errors.Is(err, client.ErrUnknownOutcome) {
		// The increment may or may not have happened.
		n, err = c.CASGet(ctx, []byte("visits"), 64)
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("visits:", n)
}

func ExampleClient_Pop() {
	c, err := client.New(client.Config{Endpoints: []string{"127.0.0.1:7401"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Push(ctx, []byte("jobs"), []byte("job-1")); err != nil {
		log.Fatal(err)
	}
	it, err := c.Pop(ctx, []byte("jobs"), store.Front) // FIFO; store.Back for LIFO
	if errors.Is(err, store.ErrNotFound) {
		fmt.Println("queue empty")
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("took %s\n", it.Value)
}

// Follow streams every committed change whose key starts with a prefix and
// survives node failures, resuming each shard where it left off.
func ExampleClient_Follow() {
	c, err := client.New(client.Config{Endpoints: []string{"127.0.0.1:7401", "127.0.0.1:7402"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = c.Follow(ctx, client.FollowConfig{Prefix: []byte("user/"), FromOldest: true}, func(ev *kvpb.Event) error {
		fmt.Printf("shard %d seq %d: %s\n", ev.Shard, ev.Seq, ev.Json)
		return nil
	})
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Fatal(err)
	}
}

// Per-call passphrases: values written under the context are sealed with
// the first passphrase; reads open them with any of them.
func ExampleWithPassphrases() {
	c, err := client.New(client.Config{Endpoints: []string{"127.0.0.1:7401"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := client.WithPassphrases(context.Background(), "new secret", "old secret")
	if err := c.Set(ctx, []byte("card"), []byte("4111..."), 0); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Get(context.Background(), []byte("card")); errors.Is(err, store.ErrNeedPassphrase) {
		fmt.Println("sealed: needs a passphrase")
	}
}

func ExampleClient_RemoveNode() {
	c, err := client.New(client.Config{Endpoints: []string{"127.0.0.1:7401"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	const node = 0x4ea973796a11d885 // from Status
	ctx := context.Background()
	if _, err := c.RemoveNode(ctx, node); err != nil {
		log.Fatal(err)
	}
	err = c.WaitRemoved(ctx, node, func(shards []uint32) {
		fmt.Println("shards still on the node:", shards)
	})
	if err != nil {
		log.Fatal(err)
	}
}
