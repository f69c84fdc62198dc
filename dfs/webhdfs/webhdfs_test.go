package webhdfs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kura-dev/kura/dfs/dal/daltest"
	"github.com/kura-dev/kura/dfs/dal/open"
	"github.com/kura-dev/kura/dfs/hdfs"
	"github.com/kura-dev/kura/dfs/namespace"
	"github.com/kura-dev/kura/dfs/webhdfs"
)

func TestMain(m *testing.M) { os.Exit(daltest.Main(m)) }

// env is a WebHDFS server over a fresh namespace.
type env struct {
	t   *testing.T
	ns  *namespace.Namespace
	srv *httptest.Server
}

func forEachBackend(t *testing.T, cfg webhdfs.Config, fn func(t *testing.T, e *env)) {
	for _, b := range []struct {
		name string
		url  func(t testing.TB) string
	}{
		{"sqlite", func(t testing.TB) string { return "sqlite://" + filepath.Join(t.TempDir(), "meta.db") }},
		{"postgres", daltest.PostgresURL},
	} {
		t.Run(b.name, func(t *testing.T) {
			store, err := open.Open(context.Background(), b.url(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			ns, err := namespace.New(store, namespace.Config{MinReplication: -1, Supergroup: "admins"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ns.Close() })
			srv := httptest.NewServer(webhdfs.New(ns, cfg))
			t.Cleanup(srv.Close)
			e := &env{t: t, ns: ns, srv: srv}
			fn(t, e)
			r, err := ns.Fsck(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Err(); err != nil {
				t.Error(err)
			}
		})
	}
}

// do sends a request: target is "<path>?op=...", relative to /webhdfs/v1.
func (e *env) do(method, target string) (int, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+webhdfs.Prefix+target, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); len(b) > 0 && ct != "application/json" {
		e.t.Errorf("%s %s: Content-Type %q", method, target, ct)
	}
	return resp.StatusCode, b
}

// ok sends a request that must succeed and decodes its body into v (which
// must re-encode to the same bytes: Hadoop's shape, key order included).
func (e *env) ok(method, target string, v any) {
	e.t.Helper()
	code, b := e.do(method, target)
	if code != http.StatusOK {
		e.t.Fatalf("%s %s: %d %s", method, target, code, b)
	}
	if v == nil {
		if len(b) != 0 {
			e.t.Fatalf("%s %s: body %s, want none", method, target, b)
		}
		return
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		e.t.Fatalf("%s %s: %v in %s", method, target, err, b)
	}
	again, err := hdfs.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	if !bytes.Equal(again, b) {
		e.t.Fatalf("%s %s: body\n%s\nis not in Hadoop's shape\n%s", method, target, b, again)
	}
}

// fails sends a request that must fail with status and exception class, and
// a message containing msg.
func (e *env) fails(method, target string, status int, class *hdfs.Class, msg string) {
	e.t.Helper()
	code, b := e.do(method, target)
	if code != status {
		e.t.Errorf("%s %s: status %d, want %d (%s)", method, target, code, status, b)
	}
	re, err := hdfs.ParseRemoteException(b)
	if err != nil {
		e.t.Fatalf("%s %s: %v in %s", method, target, err, b)
	}
	if re.JavaClassName != class.JavaClassName() || re.Exception != class.Name() {
		e.t.Errorf("%s %s: %s, want %s", method, target, b, class.JavaClassName())
	}
	if !strings.Contains(re.Message, msg) {
		e.t.Errorf("%s %s: message %q, want it to contain %q", method, target, re.Message, msg)
	}
	if want := string(re.JSON()); string(b) != want {
		e.t.Errorf("%s %s: body %s, want %s", method, target, b, want)
	}
}

func (e *env) boolean(method, target string, want bool) {
	e.t.Helper()
	var r hdfs.BooleanResponse
	e.ok(method, target, &r)
	if r.Boolean != want {
		e.t.Errorf("%s %s: boolean %v, want %v", method, target, r.Boolean, want)
	}
}

func (e *env) stat(p, user string) hdfs.FileStatus {
	e.t.Helper()
	var r hdfs.FileStatusResponse
	e.ok("GET", p+"?op=GETFILESTATUS&user.name="+user, &r)
	return r.FileStatus
}

// createFile makes a closed empty file through the namespace (WebHDFS CREATE
// needs datanodes).
func (e *env) createFile(p, user string) {
	e.t.Helper()
	ctx := context.Background()
	u := hdfs.User{Name: user}
	if _, err := e.ns.Create(ctx, u, p, namespace.CreateOptions{Perm: 0o644, ClientName: "test", Replication: 1}); err != nil {
		e.t.Fatal(err)
	}
	if ok, err := e.ns.Complete(ctx, p, "test", 0); err != nil || !ok {
		e.t.Fatalf("complete %s: %v %v", p, ok, err)
	}
}

func TestMetadataOps(t *testing.T) {
	forEachBackend(t, webhdfs.Config{Groups: map[string][]string{"alice": {"staff"}}}, func(t *testing.T, e *env) {
		// MKDIRS: default permission 755, parents created, owner the caller.
		e.boolean("PUT", "/user/alice?op=MKDIRS&user.name=root", true)
		e.ok("PUT", "/user/alice?op=SETOWNER&owner=alice&group=staff&user.name=root", nil)
		e.boolean("PUT", "/user/alice/d1/d2?op=MKDIRS&user.name=alice", true)
		e.boolean("PUT", "/user/alice/d1/d2?op=MKDIRS&user.name=alice", true) // existing: success
		e.boolean("PUT", "/user/alice/p?op=mkdirs&Permission=0700&user.name=alice", true)
		st := e.stat("/user/alice/d1/d2", "alice")
		if st.Type != hdfs.TypeDirectory || st.Permission != "755" || st.Owner != "alice" || st.Group != "staff" || st.PathSuffix != "" || st.FileID == 0 {
			t.Errorf("stat d2: %+v", st)
		}
		if st := e.stat("/user/alice/p", "alice"); st.Permission != "700" {
			t.Errorf("MKDIRS permission=0700 gave %s", st.Permission)
		}
		// GETFILESTATUS of "/" (and of "/webhdfs/v1" itself).
		root := e.stat("/", "bob")
		if root.Type != hdfs.TypeDirectory || root.Owner != "root" || root.ChildrenNum != 1 {
			t.Errorf("stat /: %+v", root)
		}
		var r2 hdfs.FileStatusResponse
		e.ok("GET", "?op=GETFILESTATUS", &r2)
		if r2.FileStatus.FileID != root.FileID {
			t.Errorf("stat of %s: %+v", webhdfs.Prefix, r2.FileStatus)
		}

		// A file, made through the namespace.
		e.createFile("/user/alice/f", "alice")
		var ls hdfs.FileStatusesResponse
		e.ok("GET", "/user/alice?op=LISTSTATUS&user.name=bob", &ls)
		var names []string
		for _, s := range ls.FileStatuses.FileStatus {
			names = append(names, s.PathSuffix+":"+string(s.Type))
		}
		if want := []string{"d1:DIRECTORY", "f:FILE", "p:DIRECTORY"}; !reflect.DeepEqual(names, want) {
			t.Errorf("LISTSTATUS: %v, want %v", names, want)
		}
		// LISTSTATUS of a file: the file itself, pathSuffix "".
		e.ok("GET", "/user/alice/f?op=LISTSTATUS&user.name=bob", &ls)
		if len(ls.FileStatuses.FileStatus) != 1 || ls.FileStatuses.FileStatus[0].PathSuffix != "" || ls.FileStatuses.FileStatus[0].Replication != 1 {
			t.Errorf("LISTSTATUS of a file: %+v", ls)
		}
		// ... but a directory whose only child has its name is listed.
		e.createFile("/user/alice/d1/d1", "alice")
		e.ok("GET", "/user/alice/d1/d1?op=LISTSTATUS", &ls) // the file
		e.ok("GET", "/user/alice/d1?op=LISTSTATUS", &ls)
		if len(ls.FileStatuses.FileStatus) != 2 || ls.FileStatuses.FileStatus[0].PathSuffix != "d1" {
			t.Errorf("LISTSTATUS /user/alice/d1: %+v", ls)
		}
		// Empty directory: [] not null.
		if code, b := e.do("GET", "/user/alice/p?op=LISTSTATUS&user.name=alice"); code != 200 || string(b) != `{"FileStatuses":{"FileStatus":[]}}` {
			t.Errorf("empty LISTSTATUS: %d %s", code, b)
		}

		// GETCONTENTSUMMARY.
		var cs hdfs.ContentSummaryResponse
		e.ok("GET", "/user/alice?op=GETCONTENTSUMMARY&user.name=alice", &cs)
		if c := cs.ContentSummary; c.DirectoryCount != 4 || c.FileCount != 2 || c.Quota != -1 || c.SpaceQuota != -1 {
			t.Errorf("GETCONTENTSUMMARY: %+v", c)
		}

		// GETHOMEDIRECTORY.
		var home hdfs.PathResponse
		e.ok("GET", "/?op=GETHOMEDIRECTORY&user.name=alice", &home)
		if home.Path != "/user/alice" {
			t.Errorf("home: %q", home.Path)
		}
		e.ok("GET", "/?op=GETHOMEDIRECTORY", &home)
		if home.Path != "/user/dr.who" {
			t.Errorf("default user's home: %q", home.Path)
		}

		// SETPERMISSION, SETOWNER, SETREPLICATION, SETTIMES.
		e.ok("PUT", "/user/alice/f?op=SETPERMISSION&permission=600&user.name=alice", nil)
		e.ok("PUT", "/user/alice/d1?op=SETPERMISSION&user.name=alice", nil) // default 755
		e.ok("PUT", "/user/alice/p?op=SETPERMISSION&permission=1777&user.name=alice", nil)
		e.ok("PUT", "/user/alice/f?op=SETOWNER&group=staff&user.name=alice", nil)
		e.boolean("PUT", "/user/alice/f?op=SETREPLICATION&replication=2&user.name=alice", true)
		e.boolean("PUT", "/user/alice/d1?op=SETREPLICATION&replication=2&user.name=alice", false)
		e.ok("PUT", "/user/alice/f?op=SETTIMES&modificationtime=1000&accesstime=2000&user.name=alice", nil)
		e.ok("PUT", "/user/alice/f?op=SETTIMES&accesstime=3000&user.name=alice", nil) // mtime unchanged
		st = e.stat("/user/alice/f", "alice")
		if st.Permission != "600" || st.Group != "staff" || st.Replication != 2 || st.ModificationTime != 1000 || st.AccessTime != 3000 || st.Type != hdfs.TypeFile {
			t.Errorf("after SET*: %+v", st)
		}
		if st := e.stat("/user/alice/p", "alice"); st.Permission != "1777" {
			t.Errorf("sticky: %s", st.Permission)
		}

		// RENAME: boolean, false when the source is missing; with
		// renameoptions, rename2 (exceptions).
		e.boolean("PUT", "/user/alice/f?op=RENAME&destination=/user/alice/g&user.name=alice", true)
		e.boolean("PUT", "/user/alice/f?op=RENAME&destination=/user/alice/h&user.name=alice", false)
		e.boolean("PUT", "/user/alice/g?op=RENAME&destination=/user/alice/d1&user.name=alice", true) // into d1
		e.stat("/user/alice/d1/g", "alice")
		e.createFile("/user/alice/x", "alice")
		e.fails("PUT", "/user/alice/x?op=RENAME&destination=/user/alice/d1/g&renameoptions=NONE&user.name=alice", 403, hdfs.ErrFileAlreadyExists, "already exists")
		e.ok("PUT", "/user/alice/x?op=RENAME&destination=/user/alice/d1/g&renameoptions=OVERWRITE&user.name=alice", nil)

		// DELETE: non-empty needs recursive; missing is false.
		e.fails("DELETE", "/user/alice/d1?op=DELETE&user.name=alice", 403, hdfs.ErrPathIsNotEmptyDirectory, "is non empty")
		e.boolean("DELETE", "/user/alice/d1?op=DELETE&recursive=true&user.name=alice", true)
		e.boolean("DELETE", "/user/alice/d1?op=DELETE&recursive=true&user.name=alice", false)
		e.fails("GET", "/user/alice/d1?op=GETFILESTATUS&user.name=alice", 404, hdfs.ErrFileNotFound, "File does not exist: /user/alice/d1")
	})
}

func TestErrors(t *testing.T) {
	forEachBackend(t, webhdfs.Config{}, func(t *testing.T, e *env) {
		e.boolean("PUT", "/a/b?op=MKDIRS&user.name=root", true)
		e.createFile("/a/f", "root")
		const ia, unsup = 400, 400
		iae := hdfs.ErrIllegalArgument

		// Missing paths: 404 FileNotFoundException.
		for _, op := range []string{"GETFILESTATUS", "LISTSTATUS", "LISTSTATUS_BATCH", "GETCONTENTSUMMARY"} {
			e.fails("GET", "/nope?op="+op, 404, hdfs.ErrFileNotFound, "/nope")
		}
		for _, op := range []string{"SETPERMISSION&permission=700", "SETOWNER&owner=x", "SETTIMES&modificationtime=1", "SETREPLICATION&replication=2"} {
			e.fails("PUT", "/nope?user.name=root&op="+op, 404, hdfs.ErrFileNotFound, "/nope")
		}

		// Unknown op, op for another method, no op.
		e.fails("GET", "/a?op=FROB", ia, iae, `Invalid value for webhdfs parameter "op": No enum constant org.apache.hadoop.hdfs.web.resources.GetOpParam.Op.FROB`)
		e.fails("PUT", "/a?op=GETFILESTATUS", ia, iae, "PutOpParam.Op.GETFILESTATUS")
		e.fails("GET", "/a?op=MKDIRS", ia, iae, "GetOpParam.Op.MKDIRS")
		e.fails("POST", "/a?op=DELETE", ia, iae, "PostOpParam.Op.DELETE")
		e.fails("DELETE", "/a?op=LISTSTATUS", ia, iae, "DeleteOpParam.Op.LISTSTATUS")
		e.fails("PUT", "/a?op=GETHOMEDIRECTORY", ia, iae, "PutOpParam.Op.GETHOMEDIRECTORY")
		e.fails("GET", "/a", unsup, hdfs.ErrUnsupportedOperation, "NULL is not supported")

		// Data operations without datanodes (Config.Datanodes nil): Hadoop's
		// IOException, never a fake success; their parameters are checked
		// first, and OPEN and APPEND check the file.
		const noDN = "Failed to find datanode, suggest to check cluster health. excludeDatanodes=null"
		e.fails("PUT", "/a/new?op=CREATE&user.name=root", 403, hdfs.ErrIO, noDN)
		e.fails("POST", "/a/f?op=APPEND&user.name=root", 403, hdfs.ErrIO, noDN)
		e.fails("GET", "/a/f?op=OPEN&user.name=root", 403, hdfs.ErrIO, noDN)
		e.fails("GET", "/a/f?op=OPEN&excludedatanodes=h:1", 403, hdfs.ErrIO, "excludeDatanodes=h:1")
		e.fails("GET", "/a/nope?op=OPEN&user.name=root", 404, hdfs.ErrFileNotFound, "File does not exist: /a/nope")
		e.fails("POST", "/a/nope?op=APPEND&user.name=root", 404, hdfs.ErrFileNotFound, "File does not exist: /a/nope")
		e.fails("GET", "/a?op=OPEN&user.name=root", 404, hdfs.ErrFileNotFound, "Path is not a file: /a")
		e.fails("GET", "/a/f?op=OPEN&offset=-1", ia, iae, `Invalid value for webhdfs parameter "offset": Invalid parameter range: offset = -1 < 0`)
		e.fails("GET", "/a/f?op=OPEN&offset=x", ia, iae, `Invalid value for webhdfs parameter "offset": Failed to parse "x" as a radix-10 long integer.`)
		e.fails("GET", "/a/f?op=OPEN&length=-5", ia, iae, `Invalid value for webhdfs parameter "length": Invalid parameter range: length = -5 < 0`)
		e.fails("GET", "/a/f?op=OPEN&buffersize=0", ia, iae, `"buffersize": Invalid parameter range: buffersize = 0 < 1`)
		e.fails("GET", "/a/f?op=OPEN&noredirect=maybe", ia, iae, `"noredirect": Failed to parse "maybe" to Boolean.`)
		e.fails("PUT", "/a/new?op=CREATE&overwrite=yes", ia, iae, `"overwrite": Failed to parse "yes" to Boolean.`)
		e.fails("PUT", "/a/new?op=CREATE&blocksize=0", ia, iae, `"blocksize": Invalid parameter range: blocksize = 0 < 1`)
		e.fails("PUT", "/a/new?op=CREATE&blocksize=big", ia, iae, `"blocksize": Failed to parse "big" as a radix-10 long integer.`)
		e.fails("PUT", "/a/new?op=CREATE&replication=99999", ia, iae, `"replication": Failed to parse "99999" as a radix-10 short integer.`)
		e.fails("PUT", "/a/new?op=CREATE&permission=888", ia, iae, `"permission": Failed to parse "888" as a radix-8 short integer.`)
		e.fails("PUT", "/a/new?op=CREATE&buffersize=1x", ia, iae, `"buffersize": Failed to parse "1x" as a radix-10 integer.`)
		e.fails("PUT", "/a/../new?op=CREATE", 400, hdfs.ErrInvalidPath, "Invalid path name /a/../new")
		e.fails("POST", "/a/f?op=APPEND&buffersize=-1", ia, iae, `"buffersize"`)
		e.fails("GET", "/a?op=GETACLSTATUS", unsup, hdfs.ErrUnsupportedOperation, "GETACLSTATUS is not supported")

		// Bad parameters.
		e.fails("PUT", "/a/c?op=MKDIRS&permission=999&user.name=root", ia, iae, `Invalid value for webhdfs parameter "permission": Failed to parse "999" as a radix-8 short integer.`)
		e.fails("PUT", "/a?op=SETPERMISSION&permission=2000&user.name=root", ia, iae, `"permission": Invalid parameter range`)
		e.fails("DELETE", "/a?op=DELETE&recursive=yes&user.name=root", ia, iae, `Invalid value for webhdfs parameter "recursive": Failed to parse "yes" to Boolean.`)
		e.fails("PUT", "/a?op=SETTIMES&modificationtime=soon&user.name=root", ia, iae, `"modificationtime": Failed to parse "soon" as a radix-10 long integer.`)
		e.fails("PUT", "/a/f?op=SETREPLICATION&replication=many&user.name=root", ia, iae, `"replication"`)
		e.fails("PUT", "/a/f?op=SETREPLICATION&replication=0&user.name=root", 403, hdfs.ErrIO, "replication")
		e.fails("PUT", "/a?op=RENAME&user.name=root", ia, iae, "Required param destination for op: RENAME is null or empty")
		e.fails("PUT", "/a?op=RENAME&destination=b&user.name=root", ia, iae, "is not an absolute path")
		e.fails("PUT", "/a?op=RENAME&destination=/b&renameoptions=SIDEWAYS&user.name=root", ia, iae, "renameoptions")
		e.fails("PUT", "/a?op=SETOWNER&user.name=root", ia, iae, "Both owner and group are empty.")
		e.fails("GET", "/a?op=GETFILESTATUS&user.name=bad%20name", ia, iae, `"user.name"`)
		e.fails("GET", "/a/../b?op=GETFILESTATUS", 400, hdfs.ErrInvalidPath, "Invalid path name /a/../b")
		e.fails("PUT", "/a/b?op=RENAME&destination=/a/b/c&user.name=root", 403, hdfs.ErrIO, "under source")
		e.fails("GET", "/a?op=GETFILESTATUS&user.name=bob&doas=root", 403, hdfs.ErrAccessControl, "not allowed to impersonate")
		// A pair that does not parse is refused, not dropped: without it
		// this DELETE would lose nothing, but a CREATE its overwrite=false.
		e.fails("DELETE", "/a?op=DELETE&recursive=true;x&user.name=root", ia, iae, "Invalid query string")
		e.fails("PUT", "/a/new?op=CREATE&overwrite=false&permission=%zz", ia, iae, "Invalid query string")
		if st := e.stat("/a", "root"); st.Type != "DIRECTORY" {
			t.Errorf("/a after the refused DELETE: %+v", st)
		}

		// Not WebHDFS, an unsupported HTTP method.
		if code, _ := e.do("PATCH", "/a?op=MKDIRS"); code != http.StatusMethodNotAllowed {
			t.Errorf("PATCH: %d", code)
		}
		resp, err := http.Get(e.srv.URL + "/webhdfs/v2/a?op=GETFILESTATUS")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("/webhdfs/v2: %d", resp.StatusCode)
		}
	})
}

func TestPermissions(t *testing.T) {
	forEachBackend(t, webhdfs.Config{Groups: map[string][]string{"carol": {"admins"}, "alice": {"staff"}}}, func(t *testing.T, e *env) {
		e.boolean("PUT", "/home?op=MKDIRS&user.name=root", true)
		e.boolean("PUT", "/home/alice?op=MKDIRS&permission=750&user.name=root", true)
		e.ok("PUT", "/home/alice?op=SETOWNER&owner=alice&group=staff&user.name=root", nil)
		e.createFile("/home/alice/f", "alice")
		const denied = 403
		ace := hdfs.ErrAccessControl
		for _, c := range []struct{ method, target, msg string }{
			{"PUT", "/home/alice/x?op=MKDIRS&user.name=bob", "user=bob, access=EXECUTE"},
			{"PUT", "/home/y?op=MKDIRS&user.name=bob", "user=bob, access=WRITE"},
			{"PUT", "/home/x?op=MKDIRS", "user=dr.who, access=WRITE"}, // the default user
			{"GET", "/home/alice?op=LISTSTATUS&user.name=bob", "user=bob, access=READ_EXECUTE"},
			{"GET", "/home/alice?op=LISTSTATUS_BATCH&user.name=bob", "user=bob, access=READ_EXECUTE"},
			{"GET", "/home/alice/f?op=GETFILESTATUS&user.name=bob", "user=bob, access=EXECUTE"},
			{"GET", "/home/alice?op=GETCONTENTSUMMARY&user.name=bob", "user=bob"},
			{"DELETE", "/home/alice?op=DELETE&recursive=true&user.name=bob", "user=bob, access=WRITE"},
			{"PUT", "/home/alice?op=RENAME&destination=/home/bob&user.name=bob", "user=bob, access=WRITE"},
			{"PUT", "/home/alice?op=SETPERMISSION&permission=777&user.name=bob", "is not the owner"},
			{"PUT", "/home/alice?op=SETOWNER&owner=bob&user.name=bob", "is not the owner"},
			{"PUT", "/home/alice/f?op=SETOWNER&owner=bob&user.name=alice", "Non-super user cannot change owner"},
			{"PUT", "/home/alice/f?op=SETOWNER&group=admins&user.name=alice", "User does not belong to admins"},
			{"PUT", "/home/alice?op=SETTIMES&modificationtime=5&user.name=bob", "user=bob, access=WRITE"},
			{"PUT", "/home/alice/f?op=SETREPLICATION&replication=1&user.name=bob", "user=bob"},
		} {
			e.fails(c.method, c.target, denied, ace, c.msg)
		}
		// The owner, the superuser and a supergroup member pass.
		e.boolean("PUT", "/home/alice/x?op=MKDIRS&user.name=alice", true)
		e.stat("/home/alice/f", "root")
		e.stat("/home/alice/f", "carol")
		e.ok("PUT", "/home/alice/f?op=SETOWNER&owner=carol&user.name=carol", nil)
	})
}

func TestListStatusBatch(t *testing.T) {
	forEachBackend(t, webhdfs.Config{BatchListing: 3}, func(t *testing.T, e *env) {
		var want []string
		for i := range 8 {
			name := fmt.Sprintf("e%02d", i)
			want = append(want, name)
			e.boolean("PUT", "/d/"+name+"?op=MKDIRS&user.name=root", true)
		}
		var got []string
		after := ""
		var remaining []int64
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatal("too many pages")
			}
			var r hdfs.DirectoryListingResponse
			e.ok("GET", "/d?op=LISTSTATUS_BATCH&startAfter="+after, &r)
			l := r.DirectoryListing
			for _, s := range l.PartialListing.FileStatuses.FileStatus {
				got = append(got, s.PathSuffix)
				after = s.PathSuffix
			}
			remaining = append(remaining, l.RemainingEntries)
			if l.RemainingEntries == 0 {
				break
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("pages gave %v, want %v", got, want)
		}
		if !reflect.DeepEqual(remaining, []int64{5, 2, 0}) {
			t.Errorf("remainingEntries %v, want [5 2 0]", remaining)
		}
		// A start after every entry: an empty last page.
		if code, b := e.do("GET", "/d?op=LISTSTATUS_BATCH&startafter=zzz"); code != 200 ||
			string(b) != `{"DirectoryListing":{"partialListing":{"FileStatuses":{"FileStatus":[]}},"remainingEntries":0}}` {
			t.Errorf("past the end: %d %s", code, b)
		}
		// LISTSTATUS gives everything regardless of the batch size.
		var ls hdfs.FileStatusesResponse
		e.ok("GET", "/d?op=LISTSTATUS", &ls)
		if len(ls.FileStatuses.FileStatus) != 8 {
			t.Errorf("LISTSTATUS: %d entries", len(ls.FileStatuses.FileStatus))
		}
	})
}

// TestShapes compares the keys of kura's bodies with Hadoop's documented
// examples (dfs/hdfs/testdata), in order.
func TestShapes(t *testing.T) {
	forEachBackend(t, webhdfs.Config{}, func(t *testing.T, e *env) {
		e.boolean("PUT", "/d/sub?op=MKDIRS&user.name=root", true)
		e.createFile("/d/f", "root")
		for _, c := range []struct{ method, target, example string }{
			{"GET", "/d?op=LISTSTATUS", "liststatus.txt"},
			{"GET", "/d/f?op=LISTSTATUS", "liststatus_file.txt"},
			{"GET", "/d?op=LISTSTATUS_BATCH", "liststatus_batch_2.txt"},
			{"GET", "/d?op=GETHOMEDIRECTORY", "homedirectory.txt"},
			{"PUT", "/d/x?op=MKDIRS&user.name=root", "boolean.txt"},
			{"GET", "/nope?op=GETFILESTATUS", "remoteexception_filenotfound.txt"},
			{"PUT", "/d/y?op=MKDIRS&user.name=bob", "remoteexception_accesscontrol.txt"},
			{"PUT", "/d/y?op=MKDIRS&permission=x", "remoteexception_illegalargument.txt"},
		} {
			_, b := e.do(c.method, c.target)
			got := keyPaths(t, b)
			want := withoutOptional(keyPaths(t, example(t, c.example)))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s %s: keys\n%v\nwant (%s)\n%v", c.method, c.target, got, c.example, want)
			}
		}
		// GETFILESTATUS of a file has the keys of a LISTSTATUS entry;
		// of a directory, Hadoop's example minus the optional ones kura
		// never sets (snapshotEnabled, ecPolicy), plus childrenNum, fileId
		// and storagePolicy, which Hadoop always writes.
		_, b := e.do("GET", "/d/f?op=GETFILESTATUS")
		if got, want := keyPaths(t, b), keyPaths(t, example(t, "liststatus_file.txt")); !reflect.DeepEqual(dropPrefix(got, "FileStatus."), dropPrefix(want, "FileStatuses.FileStatus.")) {
			t.Errorf("GETFILESTATUS of a file: %v, want %v", got, want)
		}
		var cs hdfs.ContentSummaryResponse
		e.ok("GET", "/d?op=GETCONTENTSUMMARY", &cs)
	})
}

// dropPrefix strips prefix from the keys and drops the keys it wraps.
func dropPrefix(keys []string, prefix string) []string {
	var out []string
	for _, k := range keys {
		if strings.HasPrefix(k, prefix) {
			out = append(out, strings.TrimPrefix(k, prefix))
		}
	}
	return out
}

// withoutOptional drops the keys Hadoop writes only when set, which kura
// never sets (no snapshots, erasure coding, ACLs, encryption).
func withoutOptional(keys []string) []string {
	var out []string
	for _, k := range keys {
		switch k[strings.LastIndex(k, ".")+1:] {
		case "snapshotEnabled", "ecPolicy", "aclBit", "ecBit", "encBit", "symlink":
			continue
		}
		out = append(out, k)
	}
	return out
}

// example reads a testdata example of dfs/hdfs without its comment lines.
func example(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "hdfs", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return []byte(strings.Join(out, "\n"))
}

// keyPaths lists the distinct dotted key paths of a JSON document in order of
// first appearance (array elements share their array's path).
func keyPaths(t *testing.T, b []byte) []string {
	t.Helper()
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	seen := map[string]bool{}
	var out []string
	// Walk the raw tokens to keep key order.
	dec = json.NewDecoder(bytes.NewReader(b))
	var stack []string // path of each open container ("" for arrays: same path)
	var kinds []json.Delim
	expectKey := false
	cur := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch tk := tok.(type) {
		case json.Delim:
			switch tk {
			case '{', '[':
				stack = append(stack, cur)
				kinds = append(kinds, tk)
				expectKey = tk == '{'
				continue
			case '}', ']':
				cur = stack[len(stack)-1]
				stack, kinds = stack[:len(stack)-1], kinds[:len(kinds)-1]
			}
		case string:
			if expectKey {
				base := stack[len(stack)-1]
				if base != "" {
					cur = base + "." + tk
				} else {
					cur = tk
				}
				if !seen[cur] {
					seen[cur] = true
					out = append(out, cur)
				}
				expectKey = false
				continue
			}
		}
		// A value ended: inside an object, the next token is a key.
		if len(kinds) > 0 && kinds[len(kinds)-1] == '{' {
			expectKey = true
			cur = stack[len(stack)-1]
		}
	}
	return out
}
