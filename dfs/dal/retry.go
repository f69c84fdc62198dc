package dal

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// RetryPolicy bounds how Store.Tx retries a transaction that failed
// transiently: attempt k (from 1) that fails waits a random duration in
// [0, min(MaxDelay, BaseDelay * 2^(k-1))] ("full jitter") before the next,
// and after MaxAttempts attempts the last error is returned.
type RetryPolicy struct {
	// MaxAttempts is the number of attempts, including the first (>= 1).
	MaxAttempts int
	// BaseDelay is the backoff ceiling after the first failure.
	BaseDelay time.Duration
	// MaxDelay caps the backoff ceiling.
	MaxDelay time.Duration
}

// DefaultRetryPolicy returns the policy stores use unless told otherwise:
// 10 attempts, backoff from 2 ms up to 500 ms (about 1.5 s of waiting at
// most in all).
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 10, BaseDelay: 2 * time.Millisecond, MaxDelay: 500 * time.Millisecond}
}

// withDefaults fills zero fields from DefaultRetryPolicy.
func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetryPolicy()
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = d.BaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = d.MaxDelay
	}
	return p
}

// Backoff returns the random wait after failed attempt number attempt
// (from 1).
func (p RetryPolicy) Backoff(attempt int) time.Duration {
	p = p.withDefaults()
	ceiling := p.BaseDelay
	for i := 1; i < attempt && ceiling < p.MaxDelay; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, p.MaxDelay)
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

// Retry runs attempt until it succeeds, fails with an error that transient
// does not accept (nor IsMarkedTransient), the policy's attempts run out, or
// ctx ends. Implementations of Store use it for Tx; it is exported for them
// and for tests. An exhausted retry returns the last error wrapped with the
// number of attempts.
func Retry(ctx context.Context, p RetryPolicy, transient func(error) bool, attempt func() error) error {
	p = p.withDefaults()
	for n := 1; ; n++ {
		err := attempt()
		if err == nil {
			return nil
		}
		if !IsMarkedTransient(err) && (transient == nil || !transient(err)) {
			return err
		}
		if n >= p.MaxAttempts {
			return fmt.Errorf("transaction failed after %d attempts: %w", n, err)
		}
		t := time.NewTimer(p.Backoff(n))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("transaction retry abandoned: %w (last error: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}
