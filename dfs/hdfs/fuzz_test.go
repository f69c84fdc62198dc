package hdfs

import (
	"errors"
	"strings"
	"testing"
)

// FuzzPath checks that path validation never panics and that its pieces
// agree: Clean, Split, JoinComponents, Parent, Base and Depth describe the
// same path, and a clean path is a fixed point.
func FuzzPath(f *testing.F) {
	for _, s := range []string{"/", "/a", "/a/b/", "//", "/a/../b", "/a:b", "rel", "", "/a\x00", "/\xff", "/.", "/.snapshot/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		_ = Normalize(p)
		valid := IsValidName(p)
		c, err := Clean(p)
		if valid != (err == nil) {
			t.Fatalf("IsValidName=%v Clean err=%v", valid, err)
		}
		if !valid {
			if !errors.Is(err, ErrInvalidPath) {
				t.Fatalf("error %v is not an InvalidPathException", err)
			}
			return
		}
		if c2, err := Clean(c); err != nil || c2 != c {
			t.Fatalf("Clean not idempotent: %q -> %q (%v)", c, c2, err)
		}
		if Normalize(c) != c {
			t.Fatalf("clean path %q not normal: %q", c, Normalize(c))
		}
		comps, err := Split(p)
		if err != nil {
			t.Fatal(err)
		}
		if JoinComponents(comps) != c || Depth(c) != len(comps) {
			t.Fatalf("Split(%q) = %q; clean %q depth %d", p, comps, c, Depth(c))
		}
		for _, comp := range comps {
			if comp == "" || comp == "." || comp == ".." || strings.ContainsAny(comp, ":/") {
				t.Fatalf("bad component %q", comp)
			}
		}
		if c == Root {
			if Parent(c) != "" || Base(c) != "" {
				t.Fatal("root")
			}
			return
		}
		parent := Parent(c)
		if Join(parent, Base(c)) != c || !IsAncestor(parent, c) || IsAncestor(c, parent) || IsAncestor(c, c) {
			t.Fatalf("parent %q base %q of %q", parent, Base(c), c)
		}
		if !IsValidName(parent) {
			t.Fatalf("parent %q of %q invalid", parent, c)
		}
	})
}

// FuzzPermission checks that permission parsing never panics and round
// trips: whatever ParseOctal or ParseSymbolic accepts formats back to its
// canonical form and parses to the same value.
func FuzzPermission(f *testing.F) {
	for _, s := range []string{"755", "0644", "1777", "rwxr-xr-x", "rwxrwxrwt", "drwx------", "---------T", "u+x,go-w", "+t", "a=rX", "8", ""} {
		f.Add(s, uint16(0o644), false)
	}
	f.Fuzz(func(t *testing.T, s string, cur uint16, isDir bool) {
		if p, err := ParseOctal(s); err == nil {
			if p&^PermMask != 0 {
				t.Fatalf("ParseOctal(%q) = %o", s, p)
			}
			if q, err := ParseOctal(p.Octal()); err != nil || q != p {
				t.Fatalf("octal round trip %q -> %q -> %o (%v)", s, p.Octal(), q, err)
			}
		}
		if p, err := ParseSymbolic(s); err == nil {
			want := s
			if len(s) == 10 {
				want = s[1:]
			}
			if p.String() != want {
				t.Fatalf("symbolic round trip %q -> %o -> %q", s, p, p.String())
			}
		}
		if p, err := ParsePermission(s); err == nil {
			if q, err := ParsePermission(p.String()); err != nil || q != p {
				t.Fatalf("ParsePermission(%q) = %o; via %q gives %o (%v)", s, p, p.String(), q, err)
			}
		} else if !errors.Is(err, ErrIllegalArgument) {
			t.Fatalf("ParsePermission(%q): %v", s, err)
		}
		if p, err := Chmod(s, FsPermission(cur)&PermMask, isDir); err == nil && p&^PermMask != 0 {
			t.Fatalf("Chmod(%q) = %o", s, p)
		}
		if p, err := ParseUmask(s); err == nil && p&^0o777 != 0 {
			t.Fatalf("ParseUmask(%q) = %o", s, p)
		}
	})
}
