package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

var columns = []string{"DRIVER", "OPS", "READS", "WRITES", "MISSES", "ERRORS", "ELAPSED", "OPS/S", "READ P50", "READ P99", "WRITE P50", "WRITE P99"}

func row(r Result) []string {
	return []string{
		r.Driver,
		fmt.Sprint(r.Ops),
		fmt.Sprint(r.Reads),
		fmt.Sprint(r.Writes),
		fmt.Sprint(r.Misses),
		fmt.Sprint(r.Errors),
		fmtDur(r.Elapsed),
		fmt.Sprintf("%.0f", r.OpsPerSec),
		fmtLat(r.ReadP50, r.ReadP99),
		fmtLat(r.ReadP99, r.ReadP50),
		fmtLat(r.WriteP50, r.WriteP99),
		fmtLat(r.WriteP99, r.WriteP50),
	}
}

// fmtLat formats a percentile, or "-" when the pair says there were no
// samples (a histogram of real latencies never reports 0 for both).
func fmtLat(d, other time.Duration) string {
	if d == 0 && other == 0 {
		return "-"
	}
	return fmtDur(d)
}

// fmtDur formats d with three or four significant digits in a unit suited
// to its size.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", int64(d))
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

// FormatTable writes results as an aligned plain-text table, one row per
// result, followed by a "DRIVER: first error: ..." line for every result
// that had errors.
func FormatTable(w io.Writer, results []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(columns, "\t"))
	for _, r := range results {
		fmt.Fprintln(tw, strings.Join(row(r), "\t"))
	}
	tw.Flush()
	for _, r := range results {
		if r.FirstErr != "" {
			fmt.Fprintf(w, "%s: first error: %s\n", r.Driver, r.FirstErr)
		}
	}
}

// FormatMarkdown writes results as a GitHub-flavoured Markdown table (for
// docs/benchmarks.md), numbers right-aligned, followed by a bullet list of
// first errors when any result had errors.
func FormatMarkdown(w io.Writer, results []Result) {
	var b strings.Builder
	b.WriteString("|")
	for _, c := range columns {
		b.WriteString(" " + mdHeader(c) + " |")
	}
	b.WriteString("\n|")
	for i := range columns {
		if i == 0 {
			b.WriteString(" --- |")
		} else {
			b.WriteString(" ---: |")
		}
	}
	b.WriteString("\n")
	for _, r := range results {
		b.WriteString("|")
		for _, cell := range row(r) {
			b.WriteString(" " + mdEscape(cell) + " |")
		}
		b.WriteString("\n")
	}
	first := true
	for _, r := range results {
		if r.FirstErr == "" {
			continue
		}
		if first {
			b.WriteString("\n")
			first = false
		}
		fmt.Fprintf(&b, "- %s: %d errors, first: `%s`\n", mdEscape(r.Driver), r.Errors, strings.NewReplacer("`", "'", "\n", " ").Replace(r.FirstErr))
	}
	io.WriteString(w, b.String())
}

// mdHeader turns "READ P50" into "Read p50".
func mdHeader(c string) string {
	words := strings.Fields(strings.ToLower(c))
	words[0] = strings.ToUpper(words[0][:1]) + words[0][1:]
	return strings.Join(words, " ")
}

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}
