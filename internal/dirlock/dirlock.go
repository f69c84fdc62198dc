// Package dirlock keeps two processes (or two opens in one process) off the
// same data directory: an exclusive, non-blocking flock on a lock file that
// also names the holder's pid, for the error the second one gets.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// HeldError says the lock is held, and by which pid ("unknown" if the file
// does not say).
type HeldError struct {
	Path string
	PID  string
}

// Error names the lock file and its holder.
func (e *HeldError) Error() string {
	return fmt.Sprintf("%s is held by pid %s", e.Path, e.PID)
}

// Lock is a held lock; Release frees it.
type Lock struct{ f *os.File }

// Acquire takes the lock on the file at path, creating it, and writes our
// pid in it. A lock held elsewhere is a *HeldError. flock locks belong to
// the open file, so a second Acquire in the same process fails too.
func Acquire(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			pid := strings.TrimSpace(string(holder))
			if pid == "" {
				pid = "unknown"
			}
			return nil, &HeldError{Path: path, PID: pid}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// Release frees the lock.
func (l *Lock) Release() error { return l.f.Close() }
