package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kura-dev/kura/store"
)

// kura runs the command line in-process and returns stdout, stderr and the
// exit code.
func kura(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

type step struct {
	args    []string
	stdin   string
	code    int
	out     string // exact stdout, unless outHas is set
	outHas  string // stdout contains
	errHas  string // stderr contains
	anyText bool   // do not check stdout
}

func runSteps(t *testing.T, dir string, steps []step) {
	t.Helper()
	for i, s := range steps {
		args := append([]string{"kv", "--local", dir}, s.args...)
		out, errOut, code := kura(t, s.stdin, args...)
		where := func() string { return strings.Join(s.args, " ") }
		if code != s.code {
			t.Fatalf("step %d (%s): exit %d, want %d; stdout %q stderr %q", i, where(), code, s.code, out, errOut)
		}
		switch {
		case s.anyText:
		case s.outHas != "":
			if !strings.Contains(out, s.outHas) {
				t.Fatalf("step %d (%s): stdout %q does not contain %q", i, where(), out, s.outHas)
			}
		default:
			if out != s.out {
				t.Fatalf("step %d (%s): stdout %q, want %q", i, where(), out, s.out)
			}
		}
		if s.errHas != "" && !strings.Contains(errOut, s.errHas) {
			t.Fatalf("step %d (%s): stderr %q does not contain %q", i, where(), errOut, s.errHas)
		}
	}
}

func TestKVCommands(t *testing.T) {
	cases := []struct {
		name  string
		steps []step
	}{
		{"get set del", []step{
			{args: []string{"set", "greeting", "hello"}},
			{args: []string{"get", "greeting"}, out: "hello\n"},
			{args: []string{"get", "greeting", "--raw"}, out: "hello"},
			{args: []string{"set", "bin", "-"}, stdin: "a\x00b"},
			{args: []string{"get", "bin", "--raw"}, out: "a\x00b"},
			{args: []string{"del", "greeting"}},
			{args: []string{"get", "greeting"}, code: 1, errHas: `key "greeting": not found`},
			{args: []string{"del", "greeting"}, code: 1, errHas: "not found"},
		}},
		{"scan", []step{
			{args: []string{"set", "user/2", "b"}},
			{args: []string{"set", "user/1", "a"}},
			{args: []string{"set", "user/3", "c"}},
			{args: []string{"set", "other", "x"}},
			{args: []string{"scan", "--prefix", "user/"}, out: "user/1\ta\nuser/2\tb\nuser/3\tc\n"},
			{args: []string{"scan", "--prefix", "user/", "--keys-only", "--limit", "2"}, out: "user/1\nuser/2\n", errHas: `--after "user/2"`},
			{args: []string{"scan", "--prefix", "user/", "--after", "user/2"}, out: "user/3\tc\n"},
			{args: []string{"scan", "--limit", "-1"}, code: 2, errHas: "--limit"},
		}},
		{"subkeys", []step{
			{args: []string{"subkey", "set", "users", "alice", "a@x"}},
			{args: []string{"subkey", "set", "users", "bob", "b@x"}},
			{args: []string{"subkey", "set", "bob", "bob-home", "/home/bob"}},
			{args: []string{"subkey", "list", "users"}, out: "alice\nbob\n"},
			{args: []string{"get", "bob"}, out: "b@x\n"},
			{args: []string{"subkey", "del", "users", "alice"}},
			{args: []string{"subkey", "list", "users"}, out: "bob\n"},
			{args: []string{"get", "alice"}, code: 1},
			{args: []string{"subkey", "del", "users", "alice"}, code: 1, errHas: "not found"},
			{args: []string{"set", "users", "root"}},
			{args: []string{"del", "users", "--all"}},
			{args: []string{"get", "bob"}, code: 1},
			{args: []string{"get", "bob-home"}, code: 1},
		}},
		{"plain del leaves subkeys", []step{
			{args: []string{"set", "p", "v"}},
			{args: []string{"subkey", "set", "p", "c", "cv"}},
			{args: []string{"del", "p"}},
			{args: []string{"get", "c"}, out: "cv\n"},
			{args: []string{"subkey", "list", "p"}, out: ""},
		}},
		{"queues", []step{
			{args: []string{"queue", "push", "jobs", "j1"}},
			{args: []string{"queue", "push", "jobs", "j2"}},
			{args: []string{"queue", "push", "jobs", "j3"}},
			{args: []string{"queue", "len", "jobs"}, out: "3\n"},
			{args: []string{"queue", "peek", "jobs"}, out: "j1\n"},
			{args: []string{"queue", "pop", "jobs", "--lifo"}, out: "j3\n"},
			{args: []string{"queue", "pop", "jobs"}, out: "j1\n"},
			{args: []string{"queue", "remove", "jobs", "5"}, out: "1\n"},
			{args: []string{"queue", "pop", "jobs"}, code: 1, errHas: "empty"},
			{args: []string{"queue", "push", "mail", "--keyed", "m1", "hello"}},
			{args: []string{"queue", "push", "mail", "--keyed", "m2", "world"}},
			{args: []string{"get", "m1"}, out: "hello\n"},
			{args: []string{"queue", "pop", "mail", "--keyed"}, out: "m1\thello\n"},
			{args: []string{"get", "m1"}, code: 1},
			{args: []string{"queue", "push", "mail", "plain"}, code: 1, errHas: "keyed queue"},
			{args: []string{"queue", "push", "mail", "--keyed", "only-two"}, code: 2},
			{args: []string{"queue", "remove", "mail", "zero"}, code: 2, errHas: "positive integer"},
		}},
		{"cas", []step{
			{args: []string{"cas", "init", "n", "254", "--bits", "8"}},
			{args: []string{"cas", "incr", "n", "--bits", "8"}, out: "255\n"},
			{args: []string{"cas", "incr", "n", "--bits", "8"}, out: "0\n"},
			{args: []string{"cas", "decr", "n", "--bits", "8", "--by", "2"}, out: "254\n"},
			{args: []string{"cas", "set", "n", "254", "7", "--bits", "8"}},
			{args: []string{"cas", "get", "n", "--bits", "8"}, out: "7\n"},
			{args: []string{"cas", "set", "n", "254", "9", "--bits", "8"}, code: 1, errHas: "holds 7, not 254"},
			{args: []string{"cas", "get", "n", "--bits", "16"}, code: 1, errHas: "not a 16-bit integer"},
			{args: []string{"cas", "init", "n", "256", "--bits", "8"}, code: 2, errHas: "does not fit in 8 bits"},
			{args: []string{"cas", "get", "n", "--bits", "12"}, code: 2, errHas: "--bits 12"},
			{args: []string{"cas", "init", "n", "x1"}, code: 2, errHas: "not an unsigned integer"},
			{args: []string{"set", "s", "text"}},
			{args: []string{"cas", "incr", "s"}, code: 1, errHas: "holds a bytes value"},
			{args: []string{"cas", "incr", "missing"}, code: 1, errHas: "not found"},
			{args: []string{"attrs", "n"}, outHas: "type: uint8\nsize: 1\n"},
		}},
		{"ttl and attrs", []step{
			{args: []string{"set", "t", "v", "--ttl", "1h"}},
			{args: []string{"attrs", "t"}, anyText: true},
			{args: []string{"set", "gone", "v", "--ttl", "1ns"}},
			{args: []string{"get", "gone"}, code: 1},
			{args: []string{"set", "t2", "v", "--ttl", "soon"}, code: 2, errHas: "--ttl"},
		}},
		{"usage errors", []step{
			{args: []string{"get"}, code: 2, errHas: "expected arguments KEY"},
			{args: []string{"set", "", "v"}, code: 2, errHas: "empty key"},
			{args: []string{"frobnicate"}, code: 2, errHas: "unknown command"},
			{args: []string{"get", "k", "--nope"}, code: 2, errHas: "unknown flag"},
			{args: []string{"--max-value-size", "4", "set", "k", "12345"}, code: 2, errHas: "exceeds the limit of 4 bytes"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runSteps(t, t.TempDir(), tc.steps)
		})
	}
}

func TestKVAttrsOutput(t *testing.T) {
	dir := t.TempDir()
	runSteps(t, dir, []step{
		{args: []string{"set", "k", "hello", "--ttl", "1h"}},
		{args: []string{"subkey", "set", "k", "c", "x"}},
	})
	out, _, code := kura(t, "", "kv", "--local", dir, "attrs", "k")
	if code != 0 {
		t.Fatalf("attrs exit %d", code)
	}
	for _, want := range []string{"type: bytes\n", "size: 5\n", "encrypted: false\n", "subkeys: 1\n", "modified: 20"} {
		if !strings.Contains(out, want) {
			t.Errorf("attrs output %q lacks %q", out, want)
		}
	}
	if strings.Contains(out, "expires: never") {
		t.Errorf("attrs output %q: the key has a TTL", out)
	}
}

func TestKVNeedsLocal(t *testing.T) {
	_, errOut, code := kura(t, "", "kv", "get", "k")
	if code != 2 || !strings.Contains(errOut, "--local") {
		t.Fatalf("exit %d stderr %q; want 2 naming --local", code, errOut)
	}
}

func TestKVEncryptionCLI(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pass, []byte("# current first\nnew secret\nold secret\n"), 0o600)
	oldOnly := filepath.Join(t.TempDir(), "old")
	os.WriteFile(oldOnly, []byte("old secret\n"), 0o600)
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte("# nothing\n\n"), 0o600)
	runSteps(t, dir, []step{
		{args: []string{"--passphrase-file", pass, "set", "s", "s3cr3t"}},
		{args: []string{"--passphrase-file", pass, "get", "s"}, out: "s3cr3t\n"},
		{args: []string{"get", "s"}, code: 1, errHas: "no passphrase was given"},
		{args: []string{"--passphrase-file", oldOnly, "get", "s"}, code: 1, errHas: "not among those given"},
		{args: []string{"attrs", "s"}, outHas: "encrypted: true"},
		{args: []string{"--passphrase-file", empty, "get", "s"}, code: 2, errHas: "no passphrase in it"},
		{args: []string{"--passphrase-file", filepath.Join(dir, "missing"), "get", "s"}, code: 2, errHas: "passphrase file"},
	})
}

func TestKVWatch(t *testing.T) {
	dir := t.TempDir()
	runSteps(t, dir, []step{
		{args: []string{"set", "before", "not logged"}},
		{args: []string{"watch"}, code: 2, errHas: "changelog on"},
		{args: []string{"changelog", "status"}, out: "change log off, last sequence 0\n"},
		{args: []string{"changelog", "on"}, out: "change log on, last sequence 0\n"},
		{args: []string{"changelog", "maybe"}, code: 2, errHas: "maybe"},
		{args: []string{"set", "a", "1"}},
		{args: []string{"subkey", "set", "a", "b", "2"}},
		{args: []string{"queue", "push", "q", "item"}},
		{args: []string{"cas", "init", "n", "5", "--bits", "16"}},
		{args: []string{"del", "a"}},
	})
	out, _, code := kura(t, "", "kv", "--local", dir, "watch")
	if code != 0 {
		t.Fatalf("watch exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	wantOps := []string{"set", "subkey.add", "queue.push", "set", "delete"}
	if len(lines) != len(wantOps) {
		t.Fatalf("watch printed %d lines, want %d:\n%s", len(lines), len(wantOps), out)
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
		if m["op"] != wantOps[i] || m["seq"] != float64(i+1) {
			t.Errorf("line %d = %s, want op %s seq %d", i, l, wantOps[i], i+1)
		}
	}
	if !strings.Contains(lines[3], `"int":5`) || !strings.Contains(lines[1], `"subkey":"b"`) {
		t.Errorf("unexpected fields:\n%s", out)
	}

	// A named cursor resumes where the last watch stopped.
	out, _, _ = kura(t, "", "kv", "--local", dir, "watch", "--cursor", "audit")
	if n := strings.Count(out, "\n"); n != 5 {
		t.Fatalf("first cursor watch printed %d lines", n)
	}
	runSteps(t, dir, []step{{args: []string{"set", "z", "26"}}})
	out, _, _ = kura(t, "", "kv", "--local", dir, "watch", "--cursor", "audit")
	if !strings.Contains(out, `"seq":6`) || strings.Count(out, "\n") != 1 {
		t.Fatalf("resumed watch printed %q, want only seq 6", out)
	}
	out, _, _ = kura(t, "", "kv", "--local", dir, "watch", "--from", "4")
	if strings.Count(out, "\n") != 2 {
		t.Fatalf("watch --from 4 printed %q, want seqs 5 and 6", out)
	}
}

func TestKVWatchPlugin(t *testing.T) {
	dir := t.TempDir()
	sink := filepath.Join(t.TempDir(), "changes.jsonl")
	runSteps(t, dir, []step{{args: []string{"changelog", "on"}, anyText: true}})
	for i := 0; i < 50; i++ {
		runSteps(t, dir, []step{{args: []string{"queue", "push", "q", strings.Repeat("x", i)}}})
	}
	_, errOut, code := kura(t, "", "kv", "--local", dir, "watch", "--plugin", "cat >> "+sink)
	if code != 0 {
		t.Fatalf("watch --plugin exit %d: %s", code, errOut)
	}
	lines := readJSONLines(t, sink)
	if len(lines) != 50 {
		t.Fatalf("plugin got %d records, want 50", len(lines))
	}
	// The next run feeds only what is new.
	runSteps(t, dir, []step{{args: []string{"set", "k", "v"}}})
	if _, errOut, code := kura(t, "", "kv", "--local", dir, "watch", "--plugin", "cat >> "+sink); code != 0 {
		t.Fatalf("second watch --plugin exit %d: %s", code, errOut)
	}
	lines = readJSONLines(t, sink)
	if len(lines) != 51 || lines[50]["op"] != "set" || lines[50]["seq"] != float64(51) {
		t.Fatalf("after the second run the plugin has %d records, last %v", len(lines), lines[len(lines)-1])
	}
	for i, l := range lines {
		if l["seq"] != float64(i+1) {
			t.Fatalf("record %d has seq %v", i, l["seq"])
		}
	}
}

func readJSONLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%s: line %q: %v", path, l, err)
		}
		out = append(out, m)
	}
	return out
}

func TestKVLockedDirectory(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, errOut, code := kura(t, "", "kv", "--local", dir, "get", "k")
	if code != 1 || !strings.Contains(errOut, "in use by another process") {
		t.Fatalf("exit %d stderr %q; want 1 and 'in use by another process'", code, errOut)
	}
}

func TestKVForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
	_, errOut, code := kura(t, "", "kv", "--local", dir, "set", "k", "v")
	if code != 1 || !strings.Contains(errOut, "not a kura store") {
		t.Fatalf("exit %d stderr %q", code, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "notes.txt")); string(b) != "mine" {
		t.Fatal("the foreign directory was changed")
	}
}

// TestBinary runs the real kura binary to check main's exit codes and
// streams, and `kura dev`.
func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kura")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/kura")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	run := func(args ...string) (string, string, int) {
		cmd := exec.Command(bin, args...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errOut.String(), code
	}
	if _, _, code := run("kv", "--local", dir, "set", "k", "v"); code != 0 {
		t.Fatalf("set exit %d", code)
	}
	if out, _, code := run("kv", "--local", dir, "get", "k"); code != 0 || out != "v\n" {
		t.Fatalf("get: exit %d out %q", code, out)
	}
	if _, errOut, code := run("kv", "--local", dir, "get", "nope"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("missing key: exit %d stderr %q", code, errOut)
	}
	if _, _, code := run("kv", "--local", dir, "get"); code != 2 {
		t.Fatalf("usage error: exit %d, want 2", code)
	}
	out, errOut, code := run("dev")
	if code != 0 || !strings.Contains(out, "FIFO pop: job-1, LIFO pop: job-3") || !strings.Contains(out, "no passphrase was given") ||
		!strings.Contains(out, "hello, dfs\n(one block, 3 replicas)") || !strings.Contains(out, `"type":"FILE"`) {
		t.Fatalf("kura dev: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}
