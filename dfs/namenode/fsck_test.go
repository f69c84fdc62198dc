package namenode_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/client"
	"github.com/kura-dev/kura/dfs/dfstest"
	"github.com/kura-dev/kura/dfs/namenode"
)

// TestFsckHTTP drives GET /fsck as curl would: the text report (its
// per-file lines and HEALTHY verdict), the JSON lines the CLI reads, and
// the errors answered before any report (a missing path, a bad parameter,
// a directory the user may not read, a POST).
func TestFsckHTTP(t *testing.T) {
	ctx := context.Background()
	c := dfstest.Start(t, dfstest.Options{Datanodes: 2})
	base := "http://" + c.Namenode.HTTPAddr() + namenode.FsckPath
	cl := c.Client(t, "root")
	w, err := cl.Create(ctx, "/d/f", client.CreateOptions{CreateParent: true, Perm: 0o644, Replication: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("fsck me\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Mkdirs(ctx, "/secret", 0o700, true); err != nil {
		t.Fatal(err)
	}

	// The text report, once both replicas are reported.
	var body string
	deadline := time.Now().Add(20 * time.Second)
	for {
		var code int
		code, body = get(t, "GET", base+"?path=/d&files=1&blocks=1&user.name=root")
		if code == 200 && strings.Contains(body, " Live_repl=2\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /fsck: %d\n%s", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{
		"FSCK started by root (auth:SIMPLE) from /127.0.0.1 for path /d at ",
		"\n/d <dir>\n/d/f 8 bytes, replicated: replication=2, 1 block(s):  OK\n0. blk_",
		"\nStatus: HEALTHY\n", " Number of data-nodes:\t2\n", " Total files:\t1\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("text report lacks %q:\n%s", want, body)
		}
	}
	if !strings.HasSuffix(body, "\n\nThe filesystem under path '/d' is HEALTHY\n") {
		t.Errorf("text report's last line:\n%s", body)
	}

	// JSON lines: the same text in pieces (ugi= as DFSck sends it).
	resp, err := http.Get(base + "?path=/&ugi=root&format=json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/x-ndjson" {
		t.Fatalf("format=json: %d %s", resp.StatusCode, ct)
	}
	var text strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var rec namenode.FsckRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("format=json line %q: %v", sc.Text(), err)
		}
		text.WriteString(rec.Text)
	}
	if !strings.HasSuffix(text.String(), "The filesystem under path '/' is HEALTHY\n") || !strings.Contains(text.String(), " Total dirs:\t\t\t3\n") {
		t.Errorf("format=json text:\n%s", text.String())
	}

	for _, tc := range []struct {
		method, query string
		code          int
		has           string
	}{
		{"GET", "?path=/nope&user.name=root", 404, `"FileNotFoundException"`},
		{"GET", "?path=/d&format=xml&user.name=root", 400, `format`},
		{"GET", "?path=/d&user.name=a%20b", 400, `user.name`},
		{"GET", "?path=/secret&user.name=bob", 403, `Permission denied: user=bob, access=READ_EXECUTE`},
		{"GET", "?path=a/b&user.name=root", 400, `InvalidPathException`},
		{"POST", "?path=/", 405, ""},
	} {
		code, body := get(t, tc.method, base+tc.query)
		if code != tc.code || !strings.Contains(body, tc.has) {
			t.Errorf("%s /fsck%s: %d %s, want %d with %q", tc.method, tc.query, code, body, tc.code, tc.has)
		}
	}
}
