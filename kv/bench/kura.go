package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kura-dev/kura/kv/client"
	"github.com/kura-dev/kura/store"
)

type kuraDriver struct {
	cli  *client.Client
	name string
}

// NewKura returns a Driver for the kura kv cluster at endpoints
// ("host:port" of any of its nodes), through kv/client: Put is Set without
// TTL and Get is Get. Reads are linearizable (through each shard's leader
// with a quorum check) and the Driver is named "kura"; with serializable
// they are served by the nearest replica, possibly stale, and the Driver is
// named "kura-serializable". It fails when no endpoint is given or when a
// read does not succeed within 5 s (so an unreachable cluster, or one whose
// shard for the probe key has no quorum, is reported here, not as a run
// full of errors).
func NewKura(endpoints []string, serializable bool) (Driver, error) {
	var eps []string
	for _, ep := range endpoints {
		if ep = strings.TrimSpace(ep); ep != "" {
			eps = append(eps, ep)
		}
	}
	if len(eps) == 0 {
		return nil, errors.New("bench: NewKura: no endpoints")
	}
	name := "kura"
	if serializable {
		name = "kura-serializable"
	}
	cli, err := client.New(client.Config{Endpoints: eps, Serializable: serializable})
	if err != nil {
		return nil, fmt.Errorf("bench: kura %v: %w", eps, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if _, err := cli.Get(ctx, []byte("kura-bench/probe")); err != nil && !errors.Is(err, store.ErrNotFound) {
		cli.Close()
		return nil, fmt.Errorf("bench: kura %v: probe read: %w", eps, err)
	}
	return &kuraDriver{cli: cli, name: name}, nil
}

func (k *kuraDriver) Name() string { return k.name }

func (k *kuraDriver) Put(ctx context.Context, key string, value []byte) error {
	return k.cli.Set(ctx, []byte(key), value, 0)
}

func (k *kuraDriver) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := k.cli.Get(ctx, []byte(key))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("kura get %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}

func (k *kuraDriver) Close() error { return k.cli.Close() }
