package hdfs

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestIsValidName(t *testing.T) {
	tests := []struct {
		path  string
		valid bool
	}{
		{"/", true},
		{"/a", true},
		{"/a/b", true},
		{"/a/b/", true}, // a trailing slash is tolerated
		{"/a b/ü/日本", true},
		{"/.a/..b/...", true},
		{"/a.b", true},
		{"", false},
		{"a", false},
		{"a/b", false},
		{"//", true},   // Hadoop drops trailing empty components
		{"///", true},  // before checking, so any number of
		{"/a//", true}, // trailing slashes is tolerated
		{"//a", false},
		{"/a//b", false},
		{"/a//b/", false},
		{"/.", false},
		{"/..", false},
		{"/a/./b", false},
		{"/a/../b", false},
		{"/a/..", false},
		{"/a/.", false},
		{"/a:b", false},
		{"/a/b:", false},
		{"/C:/tmp", false},
		{"/a\x00b", false},   // kura: NUL
		{"/a\xffb", false},   // kura: invalid UTF-8
		{"/a\\b", true},      // a backslash is an ordinary character
		{"/a/b\n", true},     // so is a newline
		{"/.snapshot", true}, // reserved for creation, not for lookups
	}
	for _, tt := range tests {
		if got := IsValidName(tt.path); got != tt.valid {
			t.Errorf("IsValidName(%q) = %v, want %v", tt.path, got, tt.valid)
		}
		err := Validate(tt.path)
		if tt.valid != (err == nil) {
			t.Errorf("Validate(%q) = %v", tt.path, err)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidPath) || !errors.Is(err, ErrIllegalArgument) {
				t.Errorf("Validate(%q): %v is not an InvalidPathException", tt.path, err)
			}
			if want := "Invalid path name " + tt.path; ToRemote(err).Message != want {
				t.Errorf("Validate(%q) message %q, want %q", tt.path, ToRemote(err).Message, want)
			}
		}
	}
}

func TestSplitCleanJoin(t *testing.T) {
	tests := []struct {
		path  string
		clean string
		comps []string
	}{
		{"/", "/", nil},
		{"/a", "/a", []string{"a"}},
		{"/a/", "/a", []string{"a"}},
		{"/a/b/c", "/a/b/c", []string{"a", "b", "c"}},
		{"/a/b/c/", "/a/b/c", []string{"a", "b", "c"}},
		{"/a/b//", "/a/b", []string{"a", "b"}},
		{"//", "/", nil},
	}
	for _, tt := range tests {
		c, err := Clean(tt.path)
		if err != nil || c != tt.clean {
			t.Errorf("Clean(%q) = %q, %v; want %q", tt.path, c, err, tt.clean)
		}
		comps, err := Split(tt.path)
		if err != nil || !slices.Equal(comps, tt.comps) {
			t.Errorf("Split(%q) = %q, %v; want %q", tt.path, comps, err, tt.comps)
		}
		if j := JoinComponents(comps); j != tt.clean {
			t.Errorf("JoinComponents(%q) = %q", comps, j)
		}
		if d := Depth(tt.clean); d != len(tt.comps) {
			t.Errorf("Depth(%q) = %d", tt.clean, d)
		}
	}
	if _, err := Split("/a/../b"); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("Split of an invalid path: %v", err)
	}
	if _, err := Clean("rel"); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("Clean of a relative path: %v", err)
	}
}

func TestParentBaseJoin(t *testing.T) {
	tests := []struct{ path, parent, base string }{
		{"/", "", ""},
		{"/a", "/", "a"},
		{"/a/b", "/a", "b"},
		{"/a/b/c", "/a/b", "c"},
	}
	for _, tt := range tests {
		if got := Parent(tt.path); got != tt.parent {
			t.Errorf("Parent(%q) = %q, want %q", tt.path, got, tt.parent)
		}
		if got := Base(tt.path); got != tt.base {
			t.Errorf("Base(%q) = %q, want %q", tt.path, got, tt.base)
		}
		if tt.path != "/" {
			if got := Join(tt.parent, tt.base); got != tt.path {
				t.Errorf("Join(%q, %q) = %q", tt.parent, tt.base, got)
			}
		}
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"/", "/"},
		{"//", "/"},
		{"/a//b///c/", "/a/b/c"},
		{"a//b/", "a/b"},
		{"/a/./b", "/a/./b"}, // Normalize does not resolve dots; Validate refuses them
	}
	for _, tt := range tests {
		if got := Normalize(tt.in); got != tt.want {
			t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestIsAncestor(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"/", "/a", true},
		{"/", "/", false},
		{"/a", "/a", false},
		{"/a", "/a/b", true},
		{"/a", "/a/b/c", true},
		{"/a", "/ab", false},
		{"/a/b", "/a", false},
		{"/a/b", "/a/c", false},
	}
	for _, tt := range tests {
		if got := IsAncestor(tt.a, tt.b); got != tt.want {
			t.Errorf("IsAncestor(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
	err := RenameUnderSource("/a", "/a/b")
	if !errors.Is(err, ErrIO) || err.Message != "Rename destination /a/b is a directory or file under source /a" {
		t.Errorf("RenameUnderSource: %v", err)
	}
}

func TestLimits(t *testing.T) {
	l := DefaultLimits()
	if l.MaxComponentLength != 255 || l.MaxDirectoryItems != 1048576 || l.MaxPathLength != 8000 || l.MaxPathDepth != 1000 {
		t.Fatalf("defaults: %+v", l)
	}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Limits{{MaxComponentLength: -1}, {MaxDirectoryItems: -1}, {MaxDirectoryItems: MaxDirectoryItemsCeiling + 1}, {MaxPathDepth: -1}} {
		if err := bad.Validate(); !errors.Is(err, ErrIllegalArgument) {
			t.Errorf("Validate(%+v) = %v", bad, err)
		}
	}

	// component length counts UTF-8 bytes
	if err := l.CheckComponent("/d", strings.Repeat("a", 255)); err != nil {
		t.Error(err)
	}
	err := l.CheckComponent("/d", strings.Repeat("ü", 128)) // 256 bytes
	if !errors.Is(err, ErrPathComponentTooLong) || !errors.Is(err, ErrQuotaExceeded) || !errors.Is(err, ErrIO) {
		t.Fatalf("CheckComponent: %v", err)
	}
	long := strings.Repeat("x", 256)
	want := "The maximum path component name limit of " + long + " in directory /d is exceeded: limit=255 length=256"
	if got := ToRemote(l.CheckComponent("/d", long)); got.Message != want || got.Exception != "PathComponentTooLongException" ||
		got.JavaClassName != "org.apache.hadoop.hdfs.protocol.FSLimitException$PathComponentTooLongException" {
		t.Errorf("CheckComponent: %+v", got)
	}
	if err := (Limits{}).CheckComponent("/d", long); err != nil {
		t.Errorf("no limit: %v", err)
	}

	small := Limits{MaxDirectoryItems: 2}
	if err := small.CheckDirectoryItems("/d", 1); err != nil {
		t.Error(err)
	}
	err = small.CheckDirectoryItems("/d", 2)
	if !errors.Is(err, ErrMaxDirectoryItemsExceeded) ||
		ToRemote(err).Message != "The directory item limit of /d is exceeded: limit=2 items=2" {
		t.Errorf("CheckDirectoryItems: %v", err)
	}

	deep := JoinComponents(slices.Repeat([]string{"a"}, 1001))
	if err := l.CheckPathLength("mkdirs", deep); !errors.Is(err, ErrIO) ||
		ToRemote(err).Message != "mkdirs: Pathname too long.  Limit 8000 characters, 1000 levels." {
		t.Errorf("depth: %v", err)
	}
	if err := l.CheckPathLength("create", JoinComponents(slices.Repeat([]string{"a"}, 1000))); err != nil {
		t.Errorf("1000 levels: %v", err)
	}
	if err := l.CheckPathLength("create", "/"+strings.Repeat("é", 7999)); err != nil { // 8000 characters
		t.Errorf("8000 characters: %v", err)
	}
	if err := l.CheckPathLength("create", "/"+strings.Repeat("é", 8000)); err == nil {
		t.Error("8001 characters accepted")
	}
}

func TestCheckNewName(t *testing.T) {
	if err := CheckNewName("/a", "b"); err != nil {
		t.Error(err)
	}
	err := CheckNewName("/a", ".snapshot")
	if !errors.Is(err, ErrHadoopIllegalArgument) || ToRemote(err).Message != `".snapshot" is a reserved name.` {
		t.Errorf(".snapshot: %v", err)
	}
	if err := CheckNewName("/", ".reserved"); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("/.reserved: %v", err)
	}
	if err := CheckNewName("/a", ".reserved"); err != nil {
		t.Errorf("/a/.reserved: %v", err)
	}
}
