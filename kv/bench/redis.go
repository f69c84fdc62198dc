package bench

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

type redisDriver struct {
	cli *redis.Client
}

// NewRedis returns a Driver named "redis" for the server at addr
// ("host:port"): Get is GET and Put is SET without expiry. It fails when
// the server does not answer PING within 5 s.
func NewRedis(addr string) (Driver, error) {
	if addr == "" {
		return nil, errors.New("bench: NewRedis: empty address")
	}
	cli := redis.NewClient(&redis.Options{Addr: addr})
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if err := cli.Ping(ctx).Err(); err != nil {
		cli.Close()
		return nil, fmt.Errorf("bench: redis %s: ping: %w", addr, err)
	}
	return &redisDriver{cli: cli}, nil
}

func (r *redisDriver) Name() string { return "redis" }

func (r *redisDriver) Put(ctx context.Context, key string, value []byte) error {
	return r.cli.Set(ctx, key, value, 0).Err()
}

func (r *redisDriver) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := r.cli.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redis get %s: %w", key, ErrNotFound)
	}
	return v, err
}

func (r *redisDriver) Close() error { return r.cli.Close() }
