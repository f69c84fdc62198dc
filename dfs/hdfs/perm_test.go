package hdfs

import (
	"errors"
	"testing"
)

func TestActionNames(t *testing.T) {
	names := []string{"NONE", "EXECUTE", "WRITE", "WRITE_EXECUTE", "READ", "READ_EXECUTE", "READ_WRITE", "ALL"}
	symbols := []string{"---", "--x", "-w-", "-wx", "r--", "r-x", "rw-", "rwx"}
	for a := ActionNone; a <= ActionAll; a++ {
		if a.String() != names[a] || a.Symbol() != symbols[a] {
			t.Errorf("%d: %s %s", a, a, a.Symbol())
		}
	}
	if !ActionAll.Implies(ActionReadExecute) || ActionRead.Implies(ActionReadExecute) || !ActionRead.Implies(ActionNone) {
		t.Error("Implies")
	}
}

func TestPermissionFormats(t *testing.T) {
	tests := []struct {
		perm     FsPermission
		octal    string
		symbolic string
	}{
		{0o755, "755", "rwxr-xr-x"},
		{0o644, "644", "rw-r--r--"},
		{0o777, "777", "rwxrwxrwx"},
		{0o711, "711", "rwx--x--x"},
		{0o000, "0", "---------"},
		{0o055, "55", "---r-xr-x"},
		{0o1777, "1777", "rwxrwxrwt"},
		{0o1770, "1770", "rwxrwx--T"},
		{0o1000, "1000", "--------T"},
		{0o1001, "1001", "--------t"},
	}
	for _, tt := range tests {
		if got := tt.perm.Octal(); got != tt.octal {
			t.Errorf("Octal(%o) = %q, want %q", tt.perm, got, tt.octal)
		}
		if got := tt.perm.String(); got != tt.symbolic {
			t.Errorf("String(%o) = %q, want %q", tt.perm, got, tt.symbolic)
		}
		if p, err := ParseOctal(tt.octal); err != nil || p != tt.perm {
			t.Errorf("ParseOctal(%q) = %o, %v", tt.octal, p, err)
		}
		if p, err := ParseSymbolic(tt.symbolic); err != nil || p != tt.perm {
			t.Errorf("ParseSymbolic(%q) = %o, %v", tt.symbolic, p, err)
		}
		if p, err := ParsePermission(tt.symbolic); err != nil || p != tt.perm {
			t.Errorf("ParsePermission(%q) = %o, %v", tt.symbolic, p, err)
		}
		if p, err := ParsePermission(tt.octal); err != nil || p != tt.perm {
			t.Errorf("ParsePermission(%q) = %o, %v", tt.octal, p, err)
		}
	}
	if p := NewFsPermission(ActionAll, ActionReadExecute, ActionNone, true); p != 0o1750 ||
		p.User() != ActionAll || p.Group() != ActionReadExecute || p.Other() != ActionNone || !p.Sticky() {
		t.Errorf("NewFsPermission: %o", p)
	}
}

func TestParsePermissionErrors(t *testing.T) {
	good := map[string]FsPermission{
		"0755": 0o755, "00644": 0o644, "01777": 0o1777, "7": 0o7,
		"drwxr-xr-x": 0o755, "-rw-r--r--": 0o644, "drwxrwxrwt": 0o1777, "lrwxrwxrwx": 0o777,
	}
	for s, want := range good {
		if p, err := ParsePermission(s); err != nil || p != want {
			t.Errorf("ParsePermission(%q) = %o, %v; want %o", s, p, err, want)
		}
	}
	for _, s := range []string{"", "2000", "7777", "8", "75a", "-755", "+755", " 755", "rwxr-xr-", "rwxr-xr-xx",
		"rwsr-xr-x", "rwxr-Sr-x", "xwrr-xr-x", "Rwxr-xr-x", "trwxr-xr-x", "rwt------", "99999999999999999999"} {
		if p, err := ParsePermission(s); err == nil {
			t.Errorf("ParsePermission(%q) = %o, want an error", s, p)
		} else if !errors.Is(err, ErrIllegalArgument) {
			t.Errorf("ParsePermission(%q): %v is not an IllegalArgumentException", s, err)
		}
	}
}

func TestUmask(t *testing.T) {
	if DirDefault.ApplyUmask(DefaultUmask) != 0o755 || FileDefault.ApplyUmask(DefaultUmask) != 0o644 {
		t.Error("defaults with umask 022")
	}
	if FsPermission(0o1777).ApplyUmask(0o022) != 0o755 {
		t.Error("applyUMask keeps no sticky bit")
	}
	if FsPermission(0o777).ApplyUmask(0o077) != 0o700 {
		t.Error("umask 077")
	}
	tests := []struct {
		in   string
		want FsPermission
		ok   bool
	}{
		{"022", 0o022, true},
		{"0022", 0o022, true},
		{"000", 0, true},
		{"777", 0o777, true},
		{"+027", 0o027, true},
		{" 077 ", 0o077, true},
		{"u=rwx,g=rx,o=", 0o027, true},
		{"u=rwx,g=rwx,o=rx", 0o002, true},
		{"a=rwx", 0, true},
		{"o-rwx", 0o777, true}, // symbolic umasks start from "keep nothing": '-' keeps nothing more
		{"1022", 0, false},     // no sticky digit in a umask
		{"22", 0, false},
		{"u=rwxt", 0, false},
		{"", 0, false},
		{"abc", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseUmask(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("ParseUmask(%q) = %03o, %v; want %03o ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestChmod(t *testing.T) {
	tests := []struct {
		mode string
		cur  FsPermission
		dir  bool
		want FsPermission
		ok   bool
	}{
		{"755", 0o644, false, 0o755, true},
		{"0644", 0o1777, true, 0o644, true}, // a three-digit mode clears the sticky bit
		{"1777", 0o755, true, 0o1777, true},
		{"+1755", 0o000, true, 0o1755, true},
		{"u+x", 0o644, false, 0o744, true},
		{"go-w", 0o777, false, 0o755, true},
		{"a=r", 0o777, false, 0o444, true},
		{"=r", 0o777, false, 0o444, true},
		{"u=rwx,g=rx,o=r", 0o000, true, 0o754, true},
		{"u=rwx,g=rx,o=", 0o000, true, 0, false}, // chmod needs a right after the operator
		{"+t", 0o777, true, 0o1777, true},
		{"o+t", 0o755, true, 0o1755, true},
		{"-t", 0o1777, true, 0o777, true},
		{"u+x", 0o1777, true, 0o1777, true},    // user-only clauses keep the sticky bit
		{"o=rx", 0o1777, true, 0o775, true},    // o= also sets the sticky bit: no 't' clears it
		{"a+X", 0o644, false, 0o644, true},     // X: no execute for a file nobody executes
		{"a+X", 0o744, false, 0o755, true},     // but yes when someone already may
		{"a+X", 0o644, true, 0o755, true},      // and for directories
		{"u+r,u+w", 0o000, false, 0o200, true}, // Hadoop: a later clause replaces the mode
		{"u+x g-w", 0o000, false, 0, false},    // clauses need a comma
		{"", 0o644, false, 0, false},
		{"u+", 0o644, false, 0, false},
		{"z+x", 0o644, false, 0, false},
		{"2755", 0o644, false, 0, false},
		{"75", 0o644, false, 0, false},
	}
	for _, tt := range tests {
		got, err := Chmod(tt.mode, tt.cur, tt.dir)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("Chmod(%q, %o, dir=%v) = %o, %v; want %o ok=%v", tt.mode, tt.cur, tt.dir, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrIllegalArgument) {
			t.Errorf("Chmod(%q): %v", tt.mode, err)
		}
	}
}
