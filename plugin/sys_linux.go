//go:build linux

package plugin

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

const supported = true

// unreadBytes returns how many bytes sit unread in the pipe f is an end of
// (FIONREAD, which x/sys/unix names TIOCINQ on Linux: same request). It
// leaves f in non-blocking mode, unlike f.Fd.
func unreadBytes(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		n, ierr = unix.IoctlGetInt(int(fd), unix.TIOCINQ)
	}); err != nil {
		return 0, err
	}
	if ierr != nil {
		return 0, fmt.Errorf("ioctl FIONREAD: %w", ierr)
	}
	return n, nil
}

// reopenReader opens a new read end of the pipe whose write end is w,
// through /proc/self/fd. Holding it keeps the pipe's buffer measurable after
// w is closed; it reads nothing, so the plugin still sees end of file.
func reopenReader(w *os.File) (*os.File, error) {
	rc, err := w.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd, oerr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) {
		nfd, oerr = unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if oerr != nil {
		return nil, fmt.Errorf("reopen pipe: %w", oerr)
	}
	return os.NewFile(uintptr(nfd), "plugin-stdin-reader"), nil
}

// sysProcAttr puts the plugin in a process group of its own, so that
// killGroup reaches the programs its shell started too.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// killGroup sends SIGKILL to p's process group, or to p alone if that fails.
func killGroup(p *os.Process) {
	if err := unix.Kill(-p.Pid, unix.SIGKILL); err != nil {
		_ = p.Kill()
	}
}
