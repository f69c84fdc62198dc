package mountinfo

import "testing"

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		"/mnt/plain":         "/mnt/plain",
		`/mnt/a\040b`:        "/mnt/a b",
		`/mnt/t\011n\012`:    "/mnt/t\tn\n",
		`/mnt/back\134slash`: `/mnt/back\slash`,
		`/mnt/bad\09`:        `/mnt/bad\09`,
		`/mnt/end\04`:        `/mnt/end\04`,
		`\`:                  `\`,
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzUnescape(f *testing.F) {
	f.Add(`/mnt/a\040b`)
	f.Add(`\777\0`)
	f.Fuzz(func(t *testing.T, s string) {
		out := Unescape(s)
		if len(out) > len(s) {
			t.Fatalf("Unescape(%q) = %q: longer than its input", s, out)
		}
	})
}
