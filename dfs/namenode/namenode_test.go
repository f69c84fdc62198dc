package namenode_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/dal/sqlite"
	"github.com/kura-dev/kura/dfs/namenode"
)

func get(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestStartServeClose(t *testing.T) {
	ctx := context.Background()
	meta := "sqlite://" + filepath.Join(t.TempDir(), "meta.db")
	cfg := namenode.Config{MetaURL: meta, HTTPAddr: "127.0.0.1:0", RPCAddr: "127.0.0.1:0", MaintenanceInterval: 20e6}
	n1, err := namenode.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n1.Close()
	n2, err := namenode.Start(ctx, cfg) // a second namenode on the same database
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	base1 := "http://" + n1.HTTPAddr() + "/webhdfs/v1"
	base2 := "http://" + n2.HTTPAddr() + "/webhdfs/v1"
	if code, body := get(t, "PUT", base1+"/a/b?op=MKDIRS&user.name=root"); code != 200 || body != `{"boolean":true}` {
		t.Fatalf("MKDIRS: %d %s", code, body)
	}
	if code, body := get(t, "GET", base2+"/a?op=LISTSTATUS"); code != 200 || !strings.Contains(body, `"pathSuffix":"b"`) {
		t.Fatalf("LISTSTATUS via the other namenode: %d %s", code, body)
	}
	// ServeMux's path cleaning does not apply: ".." is Hadoop's InvalidPathException.
	if code, body := get(t, "GET", base1+"/a/../b?op=GETFILESTATUS"); code != 400 || !strings.Contains(body, "InvalidPathException") {
		t.Errorf("..: %d %s", code, body)
	}
	if code, _ := get(t, "GET", "http://"+n1.HTTPAddr()+"/other"); code != 404 {
		t.Errorf("/other: %d", code)
	}
	if err := n1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n1.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	if code, _ := get(t, "GET", base2+"/a/b?op=GETFILESTATUS"); code != 200 {
		t.Errorf("n2 after n1 closed: %d", code)
	}
}

func TestStartErrors(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{"", "mysql://x", "meta.db", "sqlite://"} {
		_, err := namenode.Start(ctx, namenode.Config{MetaURL: u, HTTPAddr: "127.0.0.1:0", RPCAddr: "127.0.0.1:0"})
		if !errors.Is(err, namenode.ErrBadMetaURL) {
			t.Errorf("Start(%q): %v, want ErrBadMetaURL", u, err)
		}
	}
	// A database of a newer schema is refused with the DAL's error.
	path := filepath.Join(t.TempDir(), "new.db")
	ms := append(dal.Migrations(), dal.Migration{Version: dal.LatestSchemaVersion() + 1, Name: "future",
		Statements: func(dal.Dialect) []string { return []string{"CREATE TABLE future (x INTEGER)"} }})
	s, err := sqlite.Open(ctx, path, sqlite.Options{Migrations: ms})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = namenode.Start(ctx, namenode.Config{MetaURL: "sqlite://" + path, HTTPAddr: "127.0.0.1:0", RPCAddr: "127.0.0.1:0"})
	if !errors.Is(err, dal.ErrSchemaTooNew) || !strings.Contains(err.Error(), "newer than this binary") {
		t.Errorf("newer schema: %v", err)
	}
	// The address in use.
	n, err := namenode.Start(ctx, namenode.Config{MetaURL: "sqlite://" + filepath.Join(t.TempDir(), "m.db"), HTTPAddr: "127.0.0.1:0", RPCAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	_, err = namenode.Start(ctx, namenode.Config{MetaURL: "sqlite://" + filepath.Join(t.TempDir(), "m2.db"), HTTPAddr: n.HTTPAddr(), RPCAddr: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("address in use: %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://kura:secret@db:5432/kura": "postgres://kura:xxxxx@db:5432/kura",
		"postgres://kura@db/kura":             "postgres://kura@db/kura",
		"sqlite:///var/lib/a@b/meta.db":       "sqlite:///var/lib/a@b/meta.db",
	} {
		if got := namenode.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
