package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/namenode"
)

// Reports as dfs/namenode/fsck.go writes them (format=text), for the seeds.
const (
	fsckSeedHealthy = "FSCK started by root (auth:SIMPLE) from /127.0.0.1 for path /d at Mon Jan 02 15:04:05 UTC 2006\n" +
		"/d <dir>\n" +
		"/d/f 8 bytes, replicated: replication=2, 1 block(s):  OK\n" +
		"0. blk_1073741825_1001 len=8 Live_repl=2 [DatanodeInfoWithStorage[127.0.0.1:9866,DS-1,DISK], DatanodeInfoWithStorage[127.0.0.1:9867,DS-2,DISK]]\n" +
		"\n" +
		"/d/g 3 bytes, replicated: replication=4, 1 block(s):  Under replicated blk_1073741826_1002. Target Replicas is 4 but found 3 live replica(s).\n" +
		"0. blk_1073741826_1002 len=3 Live_repl=3\n" +
		"\n" +
		"\nStatus: HEALTHY\n" +
		" Number of data-nodes:\t3\n" +
		" Total dirs:\t\t\t1\n" +
		" Total symlinks:\t\t0\n" +
		"\nReplicated Blocks:\n" +
		" Total size:\t11 B (Total open files size: 5 B)\n" +
		" Total files:\t2 (Files currently being written: 1)\n" +
		" Total blocks (validated):\t2 (avg. block size 5 B) (Total open file blocks (not validated): 1)\n" +
		" Minimally replicated blocks:\t2 (100.0 %)\n" +
		" Over-replicated blocks:\t0 (0.0 %)\n" +
		" Under-replicated blocks:\t1 (50.0 %)\n" +
		" Default replication factor:\t3\n" +
		" Average block replication:\t2.5\n" +
		" Missing blocks:\t\t0\n" +
		" Corrupt blocks:\t\t0\n" +
		" Blocks with corrupt replicas:\t0\n" +
		" Missing replicas:\t\t1 (16.666666 %)\n" +
		" Blocks queued for replication:\t1\n" +
		"FSCK ended at Mon Jan 02 15:04:05 UTC 2006 in 3 milliseconds\n" +
		"\n\nThe filesystem under path '/d' is HEALTHY\n"
	fsckSeedCorrupt = "FSCK started by root (auth:SIMPLE) from /127.0.0.1 for path / at Mon Jan 02 15:04:05 UTC 2006\n" +
		"/data/lost: MISSING 1 blocks of total size 1048576 B.\n" +
		"/data/bad: CORRUPT block blk_1073741830\n" +
		"/data/bad: CORRUPT 1 blocks of total size 42 B.\n" +
		"\nStatus: CORRUPT\n" +
		" Number of data-nodes:\t2\n" +
		" Total dirs:\t\t\t4\n" +
		" Total symlinks:\t\t1\n" +
		"\nReplicated Blocks:\n" +
		" Total size:\t1048618 B\n" +
		" Total files:\t2\n" +
		" Total blocks (validated):\t2 (avg. block size 524309 B)\n" +
		"  ********************************\n" +
		"  UNDER MIN REPL'D BLOCKS:\t2 (100.0 %)\n" +
		"  MINIMAL BLOCK REPLICATION:\t1\n" +
		"  CORRUPT FILES:\t2\n" +
		"  MISSING BLOCKS:\t1\n" +
		"  MISSING SIZE:\t\t1048576 B\n" +
		"  CORRUPT BLOCKS: \t1\n" +
		"  CORRUPT SIZE:\t\t42 B\n" +
		"  ********************************\n" +
		" Minimally replicated blocks:\t0 (0.0 %)\n" +
		" Over-replicated blocks:\t0 (0.0 %)\n" +
		" Under-replicated blocks:\t0 (0.0 %)\n" +
		" Default replication factor:\t3\n" +
		" Average block replication:\t0.0\n" +
		" Missing blocks:\t\t1\n" +
		" Corrupt blocks:\t\t1\n" +
		" Blocks with corrupt replicas:\t1\n" +
		" Missing replicas:\t\t0\n" +
		" Blocks queued for replication:\t0\n" +
		"FSCK ended at Mon Jan 02 15:04:05 UTC 2006 in 12 milliseconds\n" +
		"\n\nThe filesystem under path '/' is CORRUPT\n"
	fsckSeedFailed = "FSCK started by bob (auth:SIMPLE) from /127.0.0.1 for path /secret at Mon Jan 02 15:04:05 UTC 2006\n" +
		"FSCK ended at Mon Jan 02 15:04:05 UTC 2006 in 1 milliseconds\n" +
		"Permission denied: user=bob, access=READ_EXECUTE, inode=\"/secret/x\":root:supergroup:drwx------\n" +
		"\n\nFsck on path '/secret' FAILED\n"
)

// fsckJSONLines encodes text as format=json sends it: records cut at cuts
// (offsets into text), with a progress record after each.
func fsckJSONLines(text string, cuts ...int) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	last := 0
	for i, c := range append(cuts, len(text)) {
		c = min(max(c, last), len(text))
		if c > last {
			enc.Encode(namenode.FsckRecord{Text: text[last:c]})
		}
		if i < len(cuts) {
			enc.Encode(namenode.FsckRecord{Progress: &namenode.FsckProgress{Dirs: int64(i), Files: int64(2 * i), Blocks: int64(3 * i)}})
		}
		last = c
	}
	return b.Bytes()
}

// fsckReportRun feeds body to the command's reader for a check of p, and
// returns its stdout, stderr and error; a reader that does not finish
// within a minute fails the test.
func fsckReportRun(t *testing.T, p string, body []byte) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := &fsckRun{
		ctx: context.Background(), prefix: "kura dfs fsck", path: p,
		stdout: bufio.NewWriter(&out), stderr: &errOut,
		progress: newProgressConfig(&errOut, true, false),
	}
	done := make(chan error, 1)
	go func() { done <- f.report("nn:9870", bytes.NewReader(body)) }()
	select {
	case err := <-done:
		return out.String(), errOut.String(), err
	case <-time.After(time.Minute):
		t.Fatalf("the report reader hangs on %q", body)
		return "", "", nil
	}
}

// FuzzFsckReport checks how `kura dfs fsck` reads a namenode's answer
// (JSON lines of namenode.FsckRecord): any body gives an error naming the
// problem or a verdict, never a panic or a hang, and HEALTHY (nil, exit 0)
// only when the body decodes to its end and its text, all of it on
// stdout, ends with the line "The filesystem under path 'P' is HEALTHY"
// for the path P asked for.
func FuzzFsckReport(f *testing.F) {
	for _, s := range []struct {
		path string
		body []byte
	}{
		{"/d", fsckJSONLines(fsckSeedHealthy)},
		{"/d", fsckJSONLines(fsckSeedHealthy, 100, 300, len(fsckSeedHealthy)-10)},
		{"/", fsckJSONLines(fsckSeedCorrupt, 200)},
		{"/secret", fsckJSONLines(fsckSeedFailed)},
		{"/d", []byte(fsckSeedHealthy)}, // a text answer: not JSON lines
		{"/d", fsckJSONLines(fsckSeedHealthy)[:500]},
		{"/d", append(fsckJSONLines(fsckSeedHealthy), `{"text":"tr`...)},
		{"/d", append(fsckJSONLines(fsckSeedHealthy), "null\n[]\n"...)},
		{"/d", append(fsckJSONLines(fsckSeedHealthy), `{"progress":{"dirs":1e400}}`...)},
		{"/", []byte(`{"text":"x"} {"progress":{"dirs":-1,"files":2,"blocks":3}}{"TEXT":"\n\nThe filesystem under path '/' is HEALTHY\n"}`)},
		{"/", []byte(`"The filesystem under path '/' is HEALTHY\n"`)},
		{"/", []byte{}},
		{"/a'b", fsckJSONLines("FSCK started\n\n\nThe filesystem under path '/a'b' is HEALTHY\n")},
		{"/a\nb", fsckJSONLines("FSCK started\n\n\nThe filesystem under path '/a\nb' is HEALTHY\n")},
		// Regressions: a last line that only ended with "is HEALTHY" was
		// taken for the verdict.
		{"/", fsckJSONLines("FSCK started by root (auth:SIMPLE) from /127.0.0.1 for path / at Mon Jan 02 15:04:05 UTC 2006\n/d/this is HEALTHY")},
		{"/", fsckJSONLines("is HEALTHY")},
		{"/d", fsckJSONLines(strings.Replace(fsckSeedHealthy, "path '/d' is", "path '/' is", 1))},
		{"/d", fsckJSONLines(fsckSeedHealthy + "\n\n")},
		{"/", fsckJSONLines("The filesystem under path '/' is HEALTHY\n")},
	} {
		f.Add(s.path, s.body)
	}
	f.Fuzz(func(t *testing.T, p string, body []byte) {
		if p == "" {
			p = "/"
		}
		out, _, err := fsckReportRun(t, p, body)
		// The text the body holds, and whether it decodes to its end.
		var text strings.Builder
		dec := json.NewDecoder(bytes.NewReader(body))
		var derr error
		for {
			var rec namenode.FsckRecord
			if derr = dec.Decode(&rec); derr != nil {
				break
			}
			text.WriteString(rec.Text)
		}
		if !strings.HasPrefix(text.String(), out) {
			t.Fatalf("stdout %q is not the report's text %q", out, text.String())
		}
		if err != nil {
			if q := (quietFailure{}); errors.As(err, &q) {
				if !strings.HasSuffix(strings.TrimRight(out, "\n"), namenode.FsckCorrupt) {
					t.Fatalf("exit 1 quietly on a report that is not CORRUPT: %q", out)
				}
			} else if !strings.HasPrefix(err.Error(), "kura dfs fsck: ") || len(err.Error()) == len("kura dfs fsck: ") {
				t.Fatalf("error %q does not say what went wrong", err)
			}
			return
		}
		if !errors.Is(derr, io.EOF) {
			t.Fatalf("HEALTHY on a body that does not decode to its end (%v): %q", derr, body)
		}
		if out != text.String() {
			t.Fatalf("HEALTHY, but stdout %q is not the report %q", out, text.String())
		}
		if want := "\nThe filesystem under path '" + p + "' is HEALTHY\n"; !strings.HasSuffix(out, want) {
			t.Fatalf("HEALTHY on a report that does not end with %q: %q", want, out)
		}
	})
}

// TestFsckReportVerdict checks the verdict of reports whose last line
// ends with "is HEALTHY" without being the healthy verdict on the path
// asked for: none is HEALTHY.
func TestFsckReportVerdict(t *testing.T) {
	for _, tc := range []struct {
		name, path, text string
		healthy          bool
	}{
		{"healthy", "/d", fsckSeedHealthy, true},
		{"cut after a file's line", "/", "FSCK started by root (auth:SIMPLE) from /127.0.0.1 for path / at Mon Jan 02 15:04:05 UTC 2006\n/d/this is HEALTHY", false},
		{"a bare verdict word", "/", "is HEALTHY\n", false},
		{"another path's verdict", "/d", strings.Replace(fsckSeedHealthy, "path '/d' is", "path '/' is", 1), false},
		{"a path with a quote", "/a'b", "FSCK\n\n\nThe filesystem under path '/a'b' is HEALTHY\n", true},
		{"a path with a newline", "/a\nb", "FSCK\n\n\nThe filesystem under path '/a\nb' is HEALTHY\n", true},
		{"a long path", "/" + strings.Repeat("x", 7000), "FSCK\n\n\nThe filesystem under path '/" + strings.Repeat("x", 7000) + "' is HEALTHY\n", true},
	} {
		_, _, err := fsckReportRun(t, tc.path, fsckJSONLines(tc.text, 5, 30))
		if (err == nil) != tc.healthy {
			t.Errorf("%s: %v, want healthy %v", tc.name, err, tc.healthy)
		}
	}
}
