// Package testbin builds the kura binary once for a test package whose
// tests run real kura processes (the e2e packages).
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Build compiles ./cmd/kura (found from this file's location, so any
// package may call it) into a fresh temporary directory and returns the
// binary's path and a function that removes it. It is a normal build, not
// -race, even when the tests run with -race: the processes are the system
// under test, not the test.
func Build() (bin string, cleanup func(), err error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", nil, fmt.Errorf("build kura: cannot locate the repository")
	}
	root := filepath.Join(filepath.Dir(self), "..", "..")
	tmp, err := os.MkdirTemp("", "kura-test-bin-")
	if err != nil {
		return "", nil, fmt.Errorf("build kura: %w", err)
	}
	bin = filepath.Join(tmp, "kura")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/kura")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		os.RemoveAll(tmp)
		return "", nil, fmt.Errorf("build kura in %s: %w", root, err)
	}
	return bin, func() { os.RemoveAll(tmp) }, nil
}

// Main builds the binary, stores its path in *bin, runs the tests and
// exits with their code: the whole TestMain of an e2e package.
func Main(m interface{ Run() int }, bin *string) {
	b, cleanup, err := Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*bin = b
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// RunFunc adapts a function to Main's runner, for a TestMain that wraps
// m.Run (e.g. daltest.Main, which also runs a PostgreSQL server).
type RunFunc func() int

// Run calls f.
func (f RunFunc) Run() int { return f() }
