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
