package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kura-dev/kura/plugin"
	"github.com/kura-dev/kura/proto/kvpb"
)

func TestCursorFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.cursor")
	got, err := readCursorFile(path)
	if err != nil || len(got) != 0 {
		t.Fatalf("missing file: %v, %v; want no cursors", got, err)
	}
	for _, want := range []map[uint32]uint64{{}, {1: 120, 2: 98, 10: 1 << 40}, {3: 7}} {
		if err := writeCursorFile(path, want); err != nil {
			t.Fatal(err)
		}
		got, err := readCursorFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("read back %v, wrote %v", got, want)
		}
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), "# kura kv watch") || !strings.HasSuffix(string(b), "\n3:7\n") {
		t.Fatalf("cursor file content:\n%s", b)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Fatalf("temporary files left behind: %v", ents)
	}
	// Hand-written files: blanks, comments, spaces.
	if err := os.WriteFile(path, []byte("\n# mine\n 1 : 5 \n\n2:6"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := readCursorFile(path); err != nil || !reflect.DeepEqual(got, map[uint32]uint64{1: 5, 2: 6}) {
		t.Fatalf("hand-written file: %v, %v", got, err)
	}
}

func TestCursorFileCorrupt(t *testing.T) {
	dir := t.TempDir()
	for i, c := range []struct{ content, want string }{
		{"1:5\n2:6\nthree\n", "line 3: \"three\": want SHARD:SEQ"},
		{"# c\n1:5\n1:6\n", "line 3: shard 1 listed twice"},
		{"0:4\n", "line 1: \"0:4\""},
		{"1:-4\n", "line 1: \"1:-4\""},
		{"1:99999999999999999999\n", "line 1"},
	} {
		path := filepath.Join(dir, fmt.Sprintf("c%d", i))
		if err := os.WriteFile(path, []byte(c.content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := readCursorFile(path)
		if err == nil || !strings.Contains(err.Error(), "cursor file "+path+" "+c.want) {
			t.Errorf("%q: error %v, want one naming the file and %q", c.content, err, c.want)
		}
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%q: %v is not a usage error", c.content, err)
		}
	}
	// A directory where the file should be.
	if _, err := readCursorFile(dir); err == nil || !strings.Contains(err.Error(), "cursor file") {
		t.Errorf("directory as cursor file: %v", err)
	}
}

func TestCursorFileLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.cursor")
	unlock, err := lockCursorFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockCursorFile(path); err == nil || !strings.Contains(err.Error(), "in use by another") {
		t.Fatalf("second lock: %v", err)
	}
	unlock()
	unlock2, err := lockCursorFile(path)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
}

func TestEventLine(t *testing.T) {
	ev := &kvpb.Event{Shard: 3, Seq: 9, Json: []byte(`{"seq":9,"op":"set","key":"k"}`)}
	if got := string(eventLine(ev)); got != `{"seq":9,"op":"set","key":"k","shard":3}` {
		t.Fatalf("eventLine: %s", got)
	}
	if got := string(eventLine(&kvpb.Event{Shard: 1, Json: []byte(`{}`)})); got != `{"shard":1}` {
		t.Fatalf("eventLine of {}: %s", got)
	}
}

func TestClusterWatchUsage(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.cursor")
	if err := os.WriteFile(bad, []byte("1:5\nnonsense\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ep := []string{"kv", "--endpoints", "127.0.0.1:1", "watch"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{append(ep, "--cursor", "audit"), "--cursor-file PATH"},
		{append(ep, "--plugin", "cat", "--cursor", "audit"), "--cursor-file PATH"},
		{append(ep, "--from", "3"), "--after SHARD:SEQ"},
		{append(ep, "--cursor-file", filepath.Join(dir, "x")), "needs --plugin"},
		{append(ep, "--after", "1:x"), "want SHARD:SEQ"},
		{append(ep, "--plugin", "cat", "--cursor-file", bad), "cursor file " + bad + " line 2"},
		{[]string{"kv", "--local", filepath.Join(dir, "kv"), "watch", "--cursor-file", "x"}, "--cursor NAME"},
	} {
		_, errOut, code := kura(t, "", c.args...)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("kura %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(c.args, " "), code, errOut, c.want)
		}
	}
}

// TestClusterFeedPlugin drives the feed that maps shard events to the
// runner's single sequence with a real plugin that dies now and then: every
// event reaches the plugin's output, in order per shard, and the cursors
// committed are exactly what the plugin took.
func TestClusterFeedPlugin(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	// Each instance takes 7 lines and exits; the runner restarts it. The
	// shell's read takes one byte at a time from a pipe: nothing is read
	// that is not written out.
	cmd := fmt.Sprintf(`i=0; while [ $i -lt 7 ] && IFS= read -r l; do printf '%%s\n' "$l" >> %q; i=$((i+1)); done`, out)
	r, err := plugin.New(plugin.Config{Command: cmd, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Stderr: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	feed := newClusterFeed(map[uint32]uint64{2: 100})
	const perShard = 40
	go func() {
		for i := uint64(1); i <= perShard; i++ {
			for sh := uint32(1); sh <= 3; sh++ {
				seq := i + 100*uint64(sh-1) + 1 // shard 2 resumes after 100
				js := fmt.Sprintf(`{"seq":%d,"op":"set","key":"k%d-%d"}`, seq, sh, i)
				feed.events <- &kvpb.Event{Shard: sh, Seq: seq, Json: []byte(js)}
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var commits []map[uint32]uint64
	err = r.Run(ctx, feed, 0, func(n uint64) error {
		c := feed.consumed(n)
		commits = append(commits, c)
		if n == 3*perShard {
			cancel()
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if ctx.Err() == context.DeadlineExceeded {
		t.Fatal("plugin did not take every event in 30s")
	}
	want := map[uint32]uint64{1: perShard + 1, 2: perShard + 101, 3: perShard + 201}
	if last := commits[len(commits)-1]; !reflect.DeepEqual(last, want) {
		t.Fatalf("last cursors %v, want %v", last, want)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 3*perShard {
		t.Fatalf("%d lines, want %d (the plugin takes whole lines: no duplicates)", len(lines), 3*perShard)
	}
	last := map[uint32]uint64{}
	for _, l := range lines {
		var ev struct {
			Seq   uint64 `json:"seq"`
			Shard uint32 `json:"shard"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if ev.Seq <= last[ev.Shard] {
			t.Fatalf("shard %d: seq %d after %d", ev.Shard, ev.Seq, last[ev.Shard])
		}
		last[ev.Shard] = ev.Seq
	}
	if !reflect.DeepEqual(last, want) {
		t.Fatalf("plugin's last seqs %v, want %v", last, want)
	}
	if st := r.Stats(); st.Restarts < 5 {
		t.Fatalf("plugin restarted %d times, want many (it exits every 7 lines)", st.Restarts)
	}
}
