package namenode

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/kura-dev/kura/dfs/hdfs"
	"github.com/kura-dev/kura/dfs/webhdfs"
)

// fsckTestGroups is the static group mapping the fuzz targets parse with.
var fsckTestGroups = map[string][]string{"root": {"supergroup"}, "bob": {"staff", "users"}}

// checkFsckRequest fails unless parseFsckRequest's answer to rawQuery is
// either a valid request or an error that answers 4xx with a message.
func checkFsckRequest(t *testing.T, rawQuery, defaultUser string) (fsckOptions, hdfs.User, error) {
	t.Helper()
	o, u, err := parseFsckRequest(rawQuery, defaultUser, fsckTestGroups)
	if err != nil {
		re := hdfs.ToRemote(err)
		if code := re.HTTPStatus(); code < 400 || code > 499 {
			t.Fatalf("query %q: %v answers %d, want 4xx", rawQuery, err, code)
		}
		if strings.TrimSpace(re.Message) == "" || re.Exception == "" {
			t.Fatalf("query %q: error %#v without a message", rawQuery, re)
		}
		w := httptest.NewRecorder()
		fsckError(w, err)
		if w.Code != re.HTTPStatus() {
			t.Fatalf("query %q: fsckError answers %d, want %d", rawQuery, w.Code, re.HTTPStatus())
		}
		got, perr := hdfs.ParseRemoteException(w.Body.Bytes())
		if perr != nil || got.Exception != re.Exception || strings.TrimSpace(got.Message) == "" {
			t.Fatalf("query %q: fsckError's body %q: %v", rawQuery, w.Body.String(), perr)
		}
		return o, u, err
	}
	q, perr := url.ParseQuery(rawQuery)
	if perr != nil {
		t.Fatalf("query %q does not parse (%v) but is accepted", rawQuery, perr)
	}
	if !hdfs.IsValidName(o.path) {
		t.Fatalf("query %q: invalid path %q accepted", rawQuery, o.path)
	}
	if c, err := hdfs.Clean(o.path); err != nil || c != o.path {
		t.Fatalf("query %q: path %q is not clean (%q, %v)", rawQuery, o.path, c, err)
	}
	want := q.Get("path")
	if want == "" {
		want = hdfs.Root
	}
	if c, _ := hdfs.Clean(want); c != o.path {
		t.Fatalf("query %q: path %q, want %q", rawQuery, o.path, c)
	}
	if f := q.Get("format"); f != "" && f != "text" && f != "json" || o.json != (f == "json") {
		t.Fatalf("query %q: format %q gave json=%v", rawQuery, f, o.json)
	}
	wantUser := defaultUser
	if wantUser == "" {
		wantUser = webhdfs.DefaultUser
	}
	if n := q.Get("user.name"); n != "" {
		wantUser = n
	} else if n := q.Get("ugi"); n != "" {
		wantUser = n
	}
	if u.Name != wantUser {
		t.Fatalf("query %q: user %q, want %q", rawQuery, u.Name, wantUser)
	}
	if u.Name != defaultUser && u.Name != webhdfs.DefaultUser && !fsckUserPattern.MatchString(u.Name) {
		t.Fatalf("query %q: invalid user %q accepted", rawQuery, u.Name)
	}
	if d := q.Get("doas"); d != "" && d != u.Name {
		t.Fatalf("query %q: %q may impersonate %q", rawQuery, u.Name, d)
	}
	if !slices.Equal(u.Groups, fsckTestGroups[u.Name]) {
		t.Fatalf("query %q: groups %q of %q", rawQuery, u.Groups, u.Name)
	}
	return o, u, nil
}

// FuzzParseFsckRequest checks the parsing of GET /fsck's query string:
// any query string gives a valid request (a clean valid path, a user of
// the domain, the format asked for) or an error answered 4xx with a
// message, never a panic or a 5xx.
func FuzzParseFsckRequest(f *testing.F) {
	for _, s := range []string{
		"",
		"path=/d&files=1&blocks=1&user.name=root",
		"path=/&ugi=root&format=json",
		"path=/d&format=xml&user.name=root",
		"path=/d&user.name=a%20b",
		"path=a/b&user.name=root",
		"path=/data/&files&blocks=0&locations=false&openforwrite=true",
		"path=//&user.name=bob&doas=root",
		"path=/a/../b",
		"path=/a:b",
		"path=/a%00b",
		"path=%2Fa%2F%2Fb",
		"path=/%ff",
		"user.name=&ugi=hdfs$",
		"format=text&format=json&path=/x&path=/y",
		// Regressions: a query string that does not parse used to lose
		// its bad pairs (path= among them), and the check ran on "/".
		"path=/d;x&user.name=root",
		"path=/d%zz&files=1",
		"user.name=root&path=/data%",
		"path=/d&files=1;blocks=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		checkFsckRequest(t, rawQuery, "")
		checkFsckRequest(t, rawQuery, "hdfs")
	})
}

// FuzzFsckRequestParams checks the parsing of well-formed /fsck queries
// built from parameter values, as the CLI and curl send them: the path is
// the one asked for (cleaned) or the request is refused, a bad path with
// InvalidPathException (400).
func FuzzFsckRequestParams(f *testing.F) {
	f.Add("/d", "root", "", "", "json", "1")
	f.Add("/", "", "root", "", "", "")
	f.Add("/a/b//", "bob", "", "bob", "text", "0")
	f.Add("/a/./b", "root", "", "", "", "false")
	f.Add("a", "root", "", "", "", "1")
	f.Add("/x\nThe filesystem under path '/' is HEALTHY", "root", "", "", "json", "1")
	f.Add("/d", "bad name", "", "", "", "1")
	f.Add("/d", "bob", "", "root", "", "1")
	f.Add("/d", "", "", "", "XML", "1")
	f.Add("/\xff", "root", "", "", "", "1")
	f.Fuzz(func(t *testing.T, path, user, ugi, doas, format, files string) {
		q := url.Values{}
		for k, v := range map[string]string{"path": path, "user.name": user, "ugi": ugi, "doas": doas, "format": format, "files": files} {
			if v != "" {
				q.Set(k, v)
			}
		}
		raw := q.Encode()
		o, _, err := checkFsckRequest(t, raw, "")
		if _, errQ := url.ParseQuery(raw); errQ != nil {
			t.Fatalf("url.Values %v encodes to %q, which does not parse: %v", q, raw, errQ)
		}
		// The same request on "/": the path alone decides between the two.
		q.Set("path", hdfs.Root)
		_, _, errRoot := parseFsckRequest(q.Encode(), "", fsckTestGroups)
		switch {
		case errRoot != nil:
			if err == nil {
				t.Fatalf("%q refused on / (%v) but not on %q", raw, errRoot, path)
			}
			return
		case path != "" && !hdfs.IsValidName(path):
			if re := hdfs.ToRemote(err); err == nil || re.HTTPStatus() != http.StatusBadRequest || !strings.Contains(re.Message, "Invalid path name") {
				t.Fatalf("invalid path %q: %v, want InvalidPathException", path, err)
			}
			return
		case err != nil:
			t.Fatalf("%q refused (%v), but its path %q is valid and / is accepted", raw, err, path)
		}
		if path != "" && o.path != strings.TrimRight(path, "/") && o.path != hdfs.Root {
			t.Fatalf("path %q became %q", path, o.path)
		}
		if files != "" && o.files != (files != "0" && !strings.EqualFold(files, "false")) {
			t.Fatalf("files=%q gave %v", files, o.files)
		}
	})
}

// TestFsckMalformedQuery drives the handler with query strings that do not
// parse: each is refused with 400 and a message naming the problem, not
// checked as "/" (r.URL.Query() drops the pairs it cannot parse, path=
// among them).
func TestFsckMalformedQuery(t *testing.T) {
	n := &Namenode{} // the handler refuses these before it needs the namespace
	for _, q := range []string{"path=/d;x&user.name=root", "path=/d%zz", "user.name=root&path=/data%", "path=/d&files=1;blocks=1"} {
		w := httptest.NewRecorder()
		n.serveFsck(w, httptest.NewRequest(http.MethodGet, FsckPath+"?"+q, nil))
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "Invalid query string: ") {
			t.Errorf("GET /fsck?%s: %d %s, want 400 Invalid query string", q, w.Code, w.Body.String())
		}
	}
}
