package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestClusterPassphrasesCLI: `kura kv --endpoints ... --passphrase-file F`
// sends F's passphrases with every request; values are sealed by the node
// that receives the request, open on any node (after the shard's leader
// died, through a node process that never saw them written), give the
// local engine's errors without or with the wrong passphrase, and neither
// the passphrase nor the plaintext is ever written to a node's disk.
func TestClusterPassphrasesCLI(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 3, shards: 2, replicas: 3})
	hexMarker := func(prefix string) string {
		var r [16]byte
		rand.Read(r[:])
		return prefix + hex.EncodeToString(r[:])
	}
	pass, plain, control := hexMarker("pass-"), hexMarker("plain-"), hexMarker("control-")
	dir := t.TempDir()
	file := func(name string, lines ...string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pf := file("pass", pass)
	rot := file("rotated", "# new first, old after", "new-passphrase", pass)
	wrong := file("wrong", "not-it")

	kv := func(eps []*node, passFile string, want int, args ...string) string {
		t.Helper()
		all := []string{"kv", "--endpoints", strings.Join(c.addrs(eps...), ",")}
		if passFile != "" {
			all = append(all, "--passphrase-file", passFile)
		}
		out, errOut, code := run(t, "", append(all, args...)...)
		if code != want {
			t.Fatalf("kura %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(all[3:], " ")+" "+strings.Join(args, " "), code, want, out, errOut)
		}
		if want != 0 {
			return errOut
		}
		return out
	}
	expect := func(eps []*node, passFile, want string, args ...string) {
		t.Helper()
		if out := kv(eps, passFile, 0, args...); out != want {
			t.Fatalf("kura kv %s: got %q, want %q", strings.Join(args, " "), out, want)
		}
	}
	needs := func(eps []*node, passFile, what string, args ...string) {
		t.Helper()
		if errOut := kv(eps, passFile, 1, args...); !strings.Contains(errOut, what) {
			t.Fatalf("kura kv %s: stderr %q does not say %q", strings.Join(args, " "), errOut, what)
		}
	}
	const need, notAmong = "no passphrase was given", "not among those given"

	kv(nil, pf, 0, "set", "secret", plain)
	kv(nil, "", 0, "set", "clear", control)
	expect(nil, pf, plain+"\n", "get", "secret")
	expect(nil, rot, plain+"\n", "get", "secret")
	needs(nil, "", need, "get", "secret")
	needs(nil, wrong, notAmong, "get", "secret")
	if out := kv(nil, "", 0, "attrs", "secret"); !strings.Contains(out, "encrypted: true") || !strings.Contains(out, "size: "+strconv.Itoa(len(plain))) {
		t.Fatalf("attrs of a sealed value: %q", out)
	}
	kv(nil, pf, 0, "subkey", "set", "users", "alice", "sub-"+plain)
	expect(nil, rot, "sub-"+plain+"\n", "get", "alice")
	kv(nil, pf, 0, "queue", "push", "jobs", "job-"+plain)
	needs(nil, "", need, "queue", "pop", "jobs")
	needs(nil, wrong, notAmong, "queue", "pop", "jobs")
	kv(nil, pf, 0, "queue", "push", "--keyed", "kjobs", "kjob", "kjob-"+plain)
	kv(nil, pf, 0, "cas", "init", "visits", "41", "--bits", "32")
	needs(nil, "", need, "cas", "get", "visits", "--bits", "32")
	expect(nil, pf, "42\n", "cas", "incr", "visits", "--bits", "32")

	// Kill the leader of the key's shard: another node process, with
	// another sealing salt and an empty key cache, opens the values.
	lead, err := c.leaderOf(shardOf("secret", c.shards))
	if err != nil {
		t.Fatal(err)
	}
	lead.kill()
	rest := c.others(lead)
	c.waitLeader(shardOf("secret", c.shards), lead, 30*time.Second)
	c.waitLeader(shardOf("jobs", c.shards), lead, 30*time.Second)
	for _, n := range rest {
		expect([]*node{n}, pf, plain+"\n", "get", "secret")
	}
	needs(rest, "", need, "get", "secret")
	expect(rest, pf, "job-"+plain+"\n", "queue", "pop", "jobs")
	expect(rest, rot, "kjob\tkjob-"+plain+"\n", "queue", "pop", "kjobs")
	expect(rest, rot, "43\n", "cas", "incr", "visits", "--bits", "32")
	kv(rest, rot, 0, "set", "secret2", "2-"+plain)
	needs(rest, pf, notAmong, "get", "secret2")
	expect(rest, rot, "2-"+plain+"\n", "get", "secret2")

	lead.start()
	c.waitHealthy(60 * time.Second)
	for _, n := range c.nodes {
		n.stop()
	}
	found := func(needle string) []string {
		var hits []string
		for _, n := range c.nodes {
			filepath.WalkDir(n.dir, func(path string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), needle) {
					hits = append(hits, path)
				}
				return nil
			})
		}
		return hits
	}
	if len(found(control)) == 0 {
		t.Fatal("the plaintext control value is on no node's disk: the search below proves nothing")
	}
	for _, needle := range []string{pass, plain} {
		if hits := found(needle); len(hits) > 0 {
			t.Fatalf("%q found on disk: %v", needle, hits)
		}
	}
	for _, n := range c.nodes {
		b, err := os.ReadFile(n.logf)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), pass) || strings.Contains(string(b), plain) {
			t.Fatalf("the passphrase or the plaintext is in %s's log", n.name)
		}
	}
}
