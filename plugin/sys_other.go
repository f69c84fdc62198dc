//go:build !linux

package plugin

import (
	"errors"
	"os"
	"syscall"
)

// The pipe accounting needs Linux's FIONREAD on a pipe's write end and
// /proc/self/fd; elsewhere New refuses.
const supported = false

var errUnsupported = errors.New("not supported on this system")

func unreadBytes(*os.File) (int, error) { return 0, errUnsupported }

func reopenReader(*os.File) (*os.File, error) { return nil, errUnsupported }

func sysProcAttr() *syscall.SysProcAttr { return nil }

func killGroup(p *os.Process) { _ = p.Kill() }
