package namespace

import (
	"sync"
	"time"
)

// maxRenewals bounds the holders a renewals remembers; past it the memory
// starts over (forgetting costs one lease write per holder, nothing more).
const maxRenewals = 4096

// renewals remembers when this Namespace last wrote each holder's lease in
// a committed transaction, so that a writer creating many files rewrites
// its lease at most once per window instead of once per file (on
// PostgreSQL an upsert of the same hot row, on SQLite a statement in the
// one writer). A create within the window of the last write leaves the
// lease's renewal time up to one window old, which only shortens, by that
// window, how long the lease keeps other writers away; the window is a
// small fraction of the soft limit.
//
// The lease row itself must still exist when a create skips the write (its
// lease path references it). Only lease recovery deletes leases: one past
// the hard limit and without files. This Namespace forgets a holder whose
// lease it deleted (forget); another namenode deletes it only an hour after
// its last renewal, which the window excludes unless that namenode's clock
// runs about an hour ahead.
type renewals struct {
	window int64 // milliseconds

	mu sync.Mutex
	at map[string]int64 // holder -> ms of the last committed lease write
}

// newRenewals returns a renewals with a window of a sixteenth of soft, at
// most a second.
func newRenewals(soft time.Duration) *renewals {
	return &renewals{window: min(time.Second, soft/16).Milliseconds(), at: map[string]int64{}}
}

// fresh reports whether holder's lease was written within the window
// before now.
func (r *renewals) fresh(holder string, now int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.at[holder]
	return ok && at <= now && now-at < r.window
}

// wrote records a committed write of holder's lease at now.
func (r *renewals) wrote(holder string, now int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.at) >= maxRenewals {
		clear(r.at)
	}
	r.at[holder] = now
}

// forget drops holder: its lease was deleted.
func (r *renewals) forget(holder string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.at, holder)
}
