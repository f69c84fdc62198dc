package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestNamenodeRecoveryTimeoutFlag: `dfs namenode --recovery-timeout` is
// documented in the help and refuses a duration that is not positive
// (a usage error, exit 2) before anything starts.
func TestNamenodeRecoveryTimeoutFlag(t *testing.T) {
	out, _, code := kura(t, "", "dfs", "namenode", "--help")
	if code != 0 || !strings.Contains(out, "--recovery-timeout duration") || !strings.Contains(out, "(default 30s)") {
		t.Fatalf("help: exit %d, no --recovery-timeout with its default:\n%s", code, out)
	}
	meta := "sqlite://" + filepath.Join(t.TempDir(), "meta.db")
	for _, v := range []string{"0s", "-1s"} {
		_, errOut, code := kura(t, "", "dfs", "namenode", "--meta", meta, "--http", "127.0.0.1:0", "--rpc", "127.0.0.1:0", "--recovery-timeout", v)
		if code != 2 || !strings.Contains(errOut, "--recovery-timeout "+v+": want a positive duration") {
			t.Errorf("--recovery-timeout %s: exit %d, stderr %q", v, code, errOut)
		}
	}
}

// TestNamenodeReplicationFlags: the replication check's flags are in the
// help with their defaults, and bad values are usage errors (exit 2).
func TestNamenodeReplicationFlags(t *testing.T) {
	out, _, code := kura(t, "", "dfs", "namenode", "--help")
	for _, want := range []string{"--replication-interval duration", "(default 10s)", "--replication-retry duration", "--replications-per-round int", "(default 100)"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("help: exit %d, no %q:\n%s", code, want, out)
		}
	}
	meta := "sqlite://" + filepath.Join(t.TempDir(), "meta.db")
	for _, c := range []struct{ flag, value, msg string }{
		{"--replication-retry", "-1s", "--replication-retry -1s: want a positive duration"},
		{"--replications-per-round", "0", "--replications-per-round 0: want at least 1"},
	} {
		_, errOut, code := kura(t, "", "dfs", "namenode", "--meta", meta, "--http", "127.0.0.1:0", "--rpc", "127.0.0.1:0", c.flag, c.value)
		if code != 2 || !strings.Contains(errOut, c.msg) {
			t.Errorf("%s %s: exit %d, stderr %q", c.flag, c.value, code, errOut)
		}
	}
}
