//go:build unix

package serve

import (
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive flock on path, refusing to wait.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: another receiver uses this directory (%w)", path, err)
	}
	return f, nil
}
