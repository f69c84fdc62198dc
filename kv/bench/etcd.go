package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// connectTimeout bounds the reachability check of NewEtcd and NewRedis.
const connectTimeout = 5 * time.Second

type etcdDriver struct {
	cli *clientv3.Client
}

// NewEtcd returns a Driver named "etcd" for the cluster at endpoints
// ("host:port" or URLs). Get is clientv3's default, linearizable Range and
// Put a plain Put. It fails when no endpoint is given or when a
// linearizable read does not succeed within 5 s (so an unreachable or
// quorum-less cluster is reported here, not as a run full of errors).
func NewEtcd(endpoints []string) (Driver, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("bench: NewEtcd: no endpoints")
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: connectTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("bench: etcd %v: %w", endpoints, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if _, err := cli.Get(ctx, "kura-bench/probe"); err != nil {
		cli.Close()
		return nil, fmt.Errorf("bench: etcd %v: probe read: %w", endpoints, err)
	}
	return &etcdDriver{cli: cli}, nil
}

func (e *etcdDriver) Name() string { return "etcd" }

func (e *etcdDriver) Put(ctx context.Context, key string, value []byte) error {
	_, err := e.cli.Put(ctx, key, string(value))
	return err
}

func (e *etcdDriver) Get(ctx context.Context, key string) ([]byte, error) {
	resp, err := e.cli.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("etcd get %s: %w", key, ErrNotFound)
	}
	return resp.Kvs[0].Value, nil
}

func (e *etcdDriver) Close() error { return e.cli.Close() }
