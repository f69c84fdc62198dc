package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progressStyle is how a transfer's progress shows on stderr.
type progressStyle int

const (
	// progressOff shows nothing.
	progressOff progressStyle = iota
	// progressBar redraws one line in place ("\r"): for a terminal.
	progressBar
	// progressLines prints plain lines: for logs and tests.
	progressLines
)

// Progress timing: a bar appears only once a transfer has run for
// progressDelay (so that small copies stay silent) and is redrawn at most
// once per progressEvery.
const (
	progressDelay = time.Second
	progressEvery = 250 * time.Millisecond
)

// progressConfig is what a command's flags and its stderr decide about
// progress: the style, the delay before the first report and the clock.
type progressConfig struct {
	w     io.Writer
	style progressStyle
	delay time.Duration
	now   func() time.Time
}

// newProgressConfig reads --progress (force) and --no-progress (disable)
// for stderr w: by default a bar after progressDelay when w is a terminal,
// nothing otherwise; forced, a bar on a terminal and lines elsewhere, from
// the start.
func newProgressConfig(w io.Writer, force, disable bool) progressConfig {
	pc := progressConfig{w: w, now: time.Now}
	tty := isTerminal(w)
	switch {
	case disable:
	case force && tty:
		pc.style = progressBar
	case force:
		pc.style = progressLines
	case tty:
		pc.style, pc.delay = progressBar, progressDelay
	}
	return pc
}

// isTerminal reports whether w is a character device (a terminal), the
// check that needs no terminal library.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}

// progress reports the advance of one transfer of total bytes (negative:
// unknown, as from stdin) named label. It is not safe for concurrent use:
// the copy loop calls Add and then Finish.
type progress struct {
	cfg   progressConfig
	label string
	total int64
	start time.Time
	last  time.Time // of the last report
	n     int64
	shown bool // something was written
}

// start returns the progress of a transfer starting now.
func (pc progressConfig) start(label string, total int64) *progress {
	if pc.now == nil {
		pc.now = time.Now
	}
	return &progress{cfg: pc, label: label, total: total, start: pc.now()}
}

// Add counts n more bytes and reports when it is time to.
func (p *progress) Add(n int64) {
	p.n += n
	if p.cfg.style == progressOff {
		return
	}
	now := p.cfg.now()
	if now.Sub(p.start) < p.cfg.delay || (p.shown && now.Sub(p.last) < progressEvery) {
		return
	}
	p.report(now, false)
}

// Finish reports the end of the transfer. After a success a bar already
// shown is completed and ended with a newline, and forced lines always end
// with a final line; after a failure a bar shown is only ended, so that
// the error starts on a line of its own.
func (p *progress) Finish(ok bool) {
	switch {
	case !ok:
		if p.cfg.style == progressBar && p.shown {
			fmt.Fprintln(p.cfg.w)
		}
	case p.cfg.style == progressLines, p.cfg.style == progressBar && p.shown:
		p.report(p.cfg.now(), true)
	}
}

func (p *progress) report(now time.Time, done bool) {
	p.last, p.shown = now, true
	s := p.render(now, done)
	switch p.cfg.style {
	case progressBar:
		end := "\x1b[K"
		if done {
			end += "\n"
		}
		fmt.Fprint(p.cfg.w, "\r"+s+end)
	case progressLines:
		fmt.Fprintln(p.cfg.w, s)
	}
}

// barWidth is the number of cells of a bar; labelWidth the most
// characters of the label a bar shows: with them a bar line stays within
// 79 columns, so that "\r" redraws it on an 80-column terminal.
const (
	barWidth   = 10
	labelWidth = 16
)

// render formats the state: "label [====>     ]  45% 1.5/3.2 MiB 12.0 MiB/s
// ETA 0:01" for a bar, "label: 1.5 MiB / 3.2 MiB (45%), 12.0
// MiB/s, ETA 0:01" for lines.
func (p *progress) render(now time.Time, done bool) string {
	el := now.Sub(p.start)
	var rate float64
	if el > 0 {
		rate = float64(p.n) / el.Seconds()
	}
	size := humanBytes(p.n)
	pct := -1
	if p.total >= 0 {
		size += " / " + humanBytes(p.total)
		pct = 100
		if p.total > 0 {
			pct = int(min(p.n, p.total) * 100 / p.total)
		}
	}
	when := ""
	switch {
	case done:
		when = "done in " + formatClock(el)
	case pct >= 0 && rate > 0:
		when = "ETA " + formatClock(time.Duration(float64(p.total-min(p.n, p.total))/rate*float64(time.Second)))
	}
	speed := humanBytes(int64(rate)) + "/s"
	if p.cfg.style == progressBar {
		if p.total >= 0 {
			size = humanPair(p.n, p.total)
		}
		parts := []string{shortLabel(p.label, labelWidth)}
		if pct >= 0 {
			fill := pct * barWidth / 100
			bar := strings.Repeat("=", fill)
			if fill < barWidth {
				bar += ">" + strings.Repeat(" ", barWidth-fill-1)
			}
			parts = append(parts, "["+bar+"]", fmt.Sprintf("%3d%%", pct))
		}
		parts = append(parts, size, speed)
		if when != "" {
			parts = append(parts, when)
		}
		return strings.Join(parts, " ")
	}
	s := p.label + ": " + size
	if pct >= 0 {
		s += fmt.Sprintf(" (%d%%)", pct)
	}
	s += ", " + speed
	if when != "" {
		s += ", " + when
	}
	return s
}

// shortLabel keeps the end of s (the file name) within width characters.
func shortLabel(s string, width int) string {
	r := []rune(s)
	if len(r) <= width {
		return s
	}
	return "…" + string(r[len(r)-width+1:])
}

// humanBytes formats n with a binary prefix: "512 B", "1.5 KiB", "12.0 MiB".
func humanBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		v /= 1024
		if v < 1024 || u == "PiB" {
			return fmt.Sprintf("%.1f %s", v, u)
		}
	}
	return "" // not reached
}

// humanPair formats n of total in total's unit: "1.5/3.2 MiB".
func humanPair(n, total int64) string {
	t := humanBytes(total)
	i := strings.IndexByte(t, ' ')
	unit := t[i+1:]
	if unit == "B" {
		return fmt.Sprintf("%d/%s", n, t)
	}
	div := float64(int64(1) << (10 * (strings.Index("KMGTP", unit[:1]) + 1)))
	return fmt.Sprintf("%.1f/%s", float64(n)/div, t)
}

// formatClock formats d, rounded to the second, as "m:ss" or "h:mm:ss".
func formatClock(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s < 0 {
		s = 0
	}
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// progressWriter counts what goes through it into a progress.
type progressWriter struct {
	w io.Writer
	p *progress
}

// Write writes b and counts what was written.
func (pw progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	pw.p.Add(int64(n))
	return n, err
}
