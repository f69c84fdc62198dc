package config

import (
	"strings"
	"testing"
)

func TestParseAndDecide(t *testing.T) {
	c, err := Parse("ft.yaml", []byte(`
mount:
  to: 127.0.0.1:8470
  sync: always
  sync_interval: 50ms
  queue_max: 64MiB
  queue_full: drop-oldest
rules:
  - path: "secret/"
    transfer: false
  - path: "*.bin"
    mode: binary
    keep_local: false
  - path: "app/*.log"
    max_line: 4KiB
    over_long: drop
default:
  transfer: false
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Mount.QueueMax != 64<<20 || c.Mount.SyncInterval.String() != "50ms" {
		t.Fatalf("mount %+v", c.Mount)
	}
	cases := map[string]Decision{
		"secret/a.log":    {Transfer: false, KeepLocal: true},
		"x/y/data.bin":    {Transfer: true, Binary: true, KeepLocal: false},
		"app/web.log":     {Transfer: true, KeepLocal: true, MaxLine: 4096, DropLong: true},
		"app/sub/web.log": {Transfer: false, KeepLocal: true},
		"other.txt":       {Transfer: false, KeepLocal: true},
	}
	for p, want := range cases {
		if got := c.Decide(p); got != want {
			t.Errorf("Decide(%q) = %+v, want %+v", p, got, want)
		}
	}
	empty, err := Parse("empty.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := empty.Decide("a.log"); d != (Decision{Transfer: true, KeepLocal: true}) {
		t.Fatalf("empty config decides %+v", d)
	}
}

func TestErrorsNameFileLineKey(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"mount:\n  sync: sometimes\n", "ft.yaml:2: mount.sync: \"sometimes\" is not one of always, interval, never"},
		{"mount:\n  to: nowhere\n", "ft.yaml:2: mount.to"},
		{"mount:\n  queue_full: panic\n", "ft.yaml:2: mount.queue_full"},
		{"mount:\n  bogus: 1\n", "line 2: field bogus not found"},
		{"mount:\n  sync_interval: soon\n", "\"soon\" is not a duration"},
		{"mount:\n  queue_max: lots\n", "\"lots\" is not a size"},
		{"rules:\n  - mode: text\n", "ft.yaml:2: rules[0].path: a rule needs a path"},
		{"rules:\n  - path: a.log\n  - path: \"[x\"\n", "ft.yaml:3: rules[1].path: \"[x\" is not a valid glob"},
		{"rules:\n  - path: /abs\n", "rules[0].path: \"/abs\" must be relative"},
		{"rules:\n  - path: a\n    mode: hex\n", "ft.yaml:3: rules[0].mode"},
		{"rules:\n  - path: a\n    over_long: wrap\n", "ft.yaml:3: rules[0].over_long"},
		{"default:\n  mode: nope\n", "ft.yaml:2: default.mode"},
		{"serve:\n  layout: tree\n", "ft.yaml:2: serve.layout"},
		{"mount: [1, 2]\n", "ft.yaml"},
	}
	for _, tc := range cases {
		_, err := Parse("ft.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to contain %q", tc.yaml, err, tc.want)
		}
	}
}

func TestMatch(t *testing.T) {
	cases := []struct {
		pattern, path string
		want          bool
	}{
		{"**", "a/b/c", true},
		{"*.log", "a/b/c.log", true},
		{"*.log", "c.txt", false},
		{"a/*.log", "a/x.log", true},
		{"a/*.log", "b/a/x.log", false},
		{"a/", "a/x.log", true},
		{"a/", "a/b/x.log", true},
		{"a/", "ab/x.log", false},
		{"a/b/", "a/b/c/d", true},
	}
	for _, tc := range cases {
		if got := Match(tc.pattern, tc.path); got != tc.want {
			t.Errorf("Match(%q, %q) = %v", tc.pattern, tc.path, got)
		}
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]int64{"0": 0, "65536": 65536, "64KiB": 65536, "1GiB": 1 << 30, "10MB": 10e6, "2k": 2048, "5 MiB": 5 << 20}
	for s, want := range good {
		if got, err := ParseSize(s); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "x", "-1", "1.5GiB", "99999999999999999999"} {
		if _, err := ParseSize(s); err == nil {
			t.Errorf("ParseSize(%q) succeeded", s)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("mount:\n  sync: always\nrules:\n  - path: a/\n")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse("f.yaml", []byte(s))
		if err == nil {
			c.Decide("a/b.log")
		}
	})
}
