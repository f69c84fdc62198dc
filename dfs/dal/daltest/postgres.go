// Package daltest holds test helpers for dfs's data-access layer: a real
// PostgreSQL server for tests (Main, PostgresURL), the conformance suite
// every dal.Store implementation passes (RunConformance), the migration
// suite (RunMigrations) and shared benchmarks (BenchPointRead, BenchInsert).
package daltest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvPostgresURL names the environment variable holding the URL of a
// PostgreSQL server for tests (any database on it; the user must be allowed
// to create databases). When it is unset, Main starts a throwaway server.
const EnvPostgresURL = "KURA_TEST_POSTGRES_URL"

// envStartError carries, from Main to PostgresURL, why the server could not
// be started (through the environment, so the package keeps no state).
const envStartError = "KURA_TEST_POSTGRES_START_ERROR"

// Main runs the tests of a test binary that uses PostgresURL; call it from
// TestMain as os.Exit(daltest.Main(m)). Unless EnvPostgresURL is set, it
// starts one PostgreSQL server for the binary with scripts/pg.sh (installing
// Debian's postgresql when missing), publishes its URL in EnvPostgresURL,
// runs the tests and stops the server. pg.sh also watches this process and
// stops the server should the binary die without returning here (a test
// timeout), so no postgres process outlives the tests. A server that cannot
// be started makes every test calling PostgresURL fail with the reason.
func Main(m *testing.M) int {
	if os.Getenv(EnvPostgresURL) != "" {
		return m.Run()
	}
	stop, err := startServer()
	if err != nil {
		os.Setenv(envStartError, err.Error())
	}
	code := m.Run()
	if stop != nil {
		if err := stop(); err != nil {
			fmt.Fprintf(os.Stderr, "daltest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// startServer starts a server with scripts/pg.sh in a new temporary
// directory, sets EnvPostgresURL and returns how to stop it.
func startServer() (stop func() error, err error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	script := filepath.Join(root, "scripts", "pg.sh")
	dir, err := os.MkdirTemp("", "kura-pg-")
	if err != nil {
		return nil, fmt.Errorf("start PostgreSQL: %w", err)
	}
	cmd := exec.Command("bash", script, "start", dir, strconv.Itoa(os.Getpid()))
	out, err := cmd.Output()
	if err != nil {
		msg := err.Error()
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			msg = strings.TrimSpace(string(ee.Stderr))
		}
		_ = exec.Command("bash", script, "stop", dir).Run()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start PostgreSQL with %s: %s", script, msg)
	}
	os.Setenv(EnvPostgresURL, strings.TrimSpace(string(out)))
	return func() error {
		defer os.RemoveAll(dir)
		if out, err := exec.Command("bash", script, "stop", dir).CombinedOutput(); err != nil {
			return fmt.Errorf("stop PostgreSQL in %s: %v: %s", dir, err, out)
		}
		return nil
	}, nil
}

// RepoRoot finds the repository root (the directory holding go.mod and
// scripts/pg.sh) from the working directory upwards; go test runs a test
// binary in its package's directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "scripts", "pg.sh")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				return d, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("find repository root: no go.mod with scripts/pg.sh above %s", dir)
		}
	}
}

// PostgresURL returns the URL of a fresh, empty PostgreSQL database for
// the test, dropped when the test ends. The server is the one named by
// EnvPostgresURL, started by Main unless set by the caller. When no server
// is available the test fails (it never skips): PostgreSQL is part of the
// test suite.
func PostgresURL(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(EnvPostgresURL)
	if admin == "" {
		if reason := os.Getenv(envStartError); reason != "" {
			t.Fatalf("PostgreSQL is not available: %s", reason)
		}
		t.Fatalf("PostgreSQL is not available: set %s or call daltest.Main from TestMain", EnvPostgresURL)
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("PostgreSQL: bad %s %q: %v", EnvPostgresURL, admin, err)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("PostgreSQL at %s: %v", u.Redacted(), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("PostgreSQL at %s: create database %s: %v", u.Redacted(), name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("PostgreSQL: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("PostgreSQL: drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}
