package cli

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// fakeClock is a clock the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestProgressBarDelayAndThrottle(t *testing.T) {
	var buf bytes.Buffer
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	pc := progressConfig{w: &buf, style: progressBar, delay: progressDelay, now: clk.now}

	// A copy done within the delay shows nothing, not even at the end.
	p := pc.start("/small", 1000)
	for range 9 {
		clk.advance(100 * time.Millisecond)
		p.Add(100)
	}
	p.Finish(true)
	if buf.Len() != 0 {
		t.Fatalf("short copy printed %q", buf.String())
	}

	// A long one: nothing in the first second, then at most one redraw per
	// progressEvery, then a final 100% line ending in a newline.
	p = pc.start("/user/root/big.bin", 29*256<<10)
	for range 9 {
		clk.advance(100 * time.Millisecond)
		p.Add(256 << 10)
	}
	if buf.Len() != 0 {
		t.Fatalf("printed before the delay: %q", buf.String())
	}
	for range 20 { // 2 s in steps of 100 ms: at most 8 redraws
		clk.advance(100 * time.Millisecond)
		p.Add(256 << 10)
	}
	out := buf.String()
	if n := strings.Count(out, "\r"); n < 4 || n > 9 {
		t.Errorf("%d redraws in 2 s, want 4..9 (≤ 4/s): %q", n, out)
	}
	if strings.Contains(out, "\n") {
		t.Errorf("a newline before the end: %q", out)
	}
	if !strings.Contains(out, "[") || !strings.Contains(out, "%") || !strings.Contains(out, "MiB/s") || !strings.Contains(out, "ETA ") {
		t.Errorf("bar without bar, percent, rate or ETA: %q", out)
	}
	p.Finish(true)
	out = buf.String()
	last := out[strings.LastIndex(out, "\r"):]
	if !strings.HasSuffix(last, "\x1b[K\n") || !strings.Contains(last, "100%") || !strings.Contains(last, "done in") {
		t.Errorf("final redraw %q", last)
	}
	for _, line := range strings.Split(out, "\r") {
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\x1b[K")
		if n := len([]rune(line)); n > 79 {
			t.Errorf("bar line of %d columns: %q", n, line)
		}
	}
}

func TestProgressBarFailureEndsLine(t *testing.T) {
	var buf bytes.Buffer
	clk := &fakeClock{t: time.Unix(0, 0)}
	p := progressConfig{w: &buf, style: progressBar, delay: progressDelay, now: clk.now}.start("f", 100)
	clk.advance(2 * time.Second)
	p.Add(10)
	p.Finish(false)
	if out := buf.String(); !strings.HasSuffix(out, "\x1b[K\n") || strings.Contains(out, "100%") {
		t.Errorf("failed transfer: %q", out)
	}
}

func TestProgressLines(t *testing.T) {
	var buf bytes.Buffer
	clk := &fakeClock{t: time.Unix(0, 0)}
	p := progressConfig{w: &buf, style: progressLines, now: clk.now}.start("/d/f", 4<<20)
	for range 8 {
		clk.advance(50 * time.Millisecond)
		p.Add(512 << 10)
	}
	p.Finish(true)
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) < 2 || len(lines) > 4 {
		t.Fatalf("%d lines for 400 ms, want 2..4: %q", len(lines), buf.String())
	}
	if lines[0] != "/d/f: 512.0 KiB / 4.0 MiB (12%), 10.0 MiB/s, ETA 0:00" {
		t.Errorf("first line %q", lines[0])
	}
	if want := "/d/f: 4.0 MiB / 4.0 MiB (100%), 10.0 MiB/s, done in 0:00"; lines[len(lines)-1] != want {
		t.Errorf("last line %q, want %q", lines[len(lines)-1], want)
	}
	if strings.Contains(buf.String(), "\r") {
		t.Error("lines with a carriage return")
	}

	// Unknown size (stdin): no percent, no ETA; forced lines end with a line
	// even for a transfer of nothing.
	buf.Reset()
	p = progressConfig{w: &buf, style: progressLines, now: clk.now}.start("-", -1)
	clk.advance(time.Second)
	p.Add(3 << 20)
	p.Finish(true)
	if got := buf.String(); strings.Contains(got, "%") || strings.Contains(got, "ETA") || !strings.Contains(got, "3.0 MiB, 3.0 MiB/s") {
		t.Errorf("unknown size: %q", got)
	}
	buf.Reset()
	progressConfig{w: &buf, style: progressLines, now: clk.now}.start("empty", 0).Finish(true)
	if got := buf.String(); got != "empty: 0 B / 0 B (100%), 0 B/s, done in 0:00\n" {
		t.Errorf("empty transfer: %q", got)
	}
}

func TestProgressOffAndConfig(t *testing.T) {
	var buf bytes.Buffer
	p := progressConfig{w: &buf}.start("f", 10)
	p.Add(10)
	p.Finish(true)
	if buf.Len() != 0 {
		t.Errorf("off printed %q", buf.String())
	}
	for _, c := range []struct {
		force, disable bool
		want           progressStyle
	}{
		{false, false, progressOff}, // not a terminal
		{true, false, progressLines},
		{false, true, progressOff},
		{true, true, progressOff},
	} {
		if got := newProgressConfig(&buf, c.force, c.disable); got.style != c.want || got.delay != 0 {
			t.Errorf("force %v disable %v: style %v delay %v, want %v and no delay", c.force, c.disable, got.style, got.delay, c.want)
		}
	}
	if isTerminal(io.Discard) {
		t.Error("io.Discard is a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file is a terminal")
	}
}

func TestProgressFormats(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 40: "3.0 TiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
	for _, c := range []struct {
		n, total int64
		want     string
	}{{100, 1000, "100/1000 B"}, {1 << 20, 3 << 20, "1.0/3.0 MiB"}, {512, 2048, "0.5/2.0 KiB"}} {
		if got := humanPair(c.n, c.total); got != c.want {
			t.Errorf("humanPair(%d, %d) = %q, want %q", c.n, c.total, got, c.want)
		}
	}
	for d, want := range map[time.Duration]string{0: "0:00", 1499 * time.Millisecond: "0:01", 75 * time.Second: "1:15", 3*time.Hour + 2*time.Minute + 5*time.Second: "3:02:05", -time.Second: "0:00"} {
		if got := formatClock(d); got != want {
			t.Errorf("formatClock(%v) = %q, want %q", d, got, want)
		}
	}
	if got := shortLabel("/user/alice/data/very-long-name.csv", 16); len([]rune(got)) != 16 || !strings.HasPrefix(got, "…") || !strings.HasSuffix(got, "-long-name.csv") {
		t.Errorf("shortLabel: %q", got)
	}
	if got := shortLabel("/a/b", 16); got != "/a/b" {
		t.Errorf("shortLabel of a short label: %q", got)
	}
}
