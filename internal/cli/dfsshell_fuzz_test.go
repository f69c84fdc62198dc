package cli

import (
	"strings"
	"testing"
)

// FuzzExpandBraces checks the {a,b} expansion of file command arguments:
// never a panic, never more than the limit, and a pattern without braces
// is itself.
func FuzzExpandBraces(f *testing.F) {
	for _, s := range []string{"/d/{a,b}.csv", "{a,{b,c}}x", `\{a,b}`, "{", "}", "{a,b}{c,d}{e,f}", "{,}", "{{{,},},}", "/x/{a\\,b,c}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if len(p) > 256 {
			return
		}
		out, ok := expandBraces(p, 100)
		if !ok {
			return
		}
		if len(out) == 0 || len(out) > 100 {
			t.Fatalf("expandBraces(%q) gave %d patterns", p, len(out))
		}
		if !strings.ContainsAny(p, "{}") && (len(out) != 1 || out[0] != p) {
			t.Fatalf("expandBraces(%q) = %q, want the pattern itself", p, out)
		}
	})
}

// FuzzDFSBenchParseSize checks kura dfs bench's size parser: never a
// panic, never a negative size.
func FuzzDFSBenchParseSize(f *testing.F) {
	for _, s := range []string{"256MiB", "1GiB", "1.5G", "10", "0", "-1", "9999999999TiB", "1e9", "kB", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := dfsBenchParseSize(s)
		if err == nil && n < 0 {
			t.Fatalf("dfsBenchParseSize(%q) = %d", s, n)
		}
	})
}
