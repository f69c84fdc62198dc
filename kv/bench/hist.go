package bench

import (
	"math"
	"math/bits"
	"time"
)

// histogram is a log-linear latency histogram in the spirit of HDR
// Histogram. Values (nanoseconds) below 2*histSub are counted exactly; above
// that, every power-of-two range [2^k, 2^(k+1)) is split into histSub equal
// sub-buckets, so a bucket's width is at most 1/histSub of its lower bound
// and a reported percentile is at most 1/histSub (0.78%) above the true
// value. The bucket slice grows on demand, so a histogram of
// millisecond-scale latencies stays around 20 KiB. Not safe for concurrent
// use: Run keeps one per goroutine and merges them.
type histogram struct {
	counts   []uint64
	total    uint64
	min, max uint64
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits
)

// histIndex returns the bucket holding v.
func histIndex(v uint64) int {
	if v < 2*histSub {
		return int(v)
	}
	s := bits.Len64(v) - histSubBits - 1 // v>>s is in [histSub, 2*histSub)
	return s*histSub + int(v>>s)
}

// histUpper returns the largest value that falls in bucket i.
func histUpper(i int) uint64 {
	if i < 2*histSub {
		return uint64(i)
	}
	s := i/histSub - 1
	m := uint64(i%histSub + histSub)
	return (m+1)<<s - 1
}

// record adds one observation; negative durations count as 0.
func (h *histogram) record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	i := histIndex(v)
	if i >= len(h.counts) {
		n := make([]uint64, i+1+histSub)
		copy(n, h.counts)
		h.counts = n
	}
	h.counts[i]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
}

// merge adds every observation of o to h.
func (h *histogram) merge(o *histogram) {
	if o.total == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		n := make([]uint64, len(o.counts))
		copy(n, h.counts)
		h.counts = n
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
}

// percentile returns the value at percentile p (0..100): the upper bound of
// the bucket holding the observation of rank ceil(p/100*total), clamped to
// the exact minimum and maximum seen (and exactly those for the first and
// last rank). It returns 0 for an empty histogram.
func (h *histogram) percentile(p float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(p / 100 * float64(h.total)))
	if p != p || rank < 1 { // NaN or p <= 0
		rank = 1
	}
	switch {
	case rank <= 1:
		return time.Duration(h.min) // exact
	case rank >= h.total:
		return time.Duration(h.max) // exact
	}
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			v := histUpper(i)
			v = max(min(v, h.max), h.min)
			return time.Duration(v)
		}
	}
	return time.Duration(h.max) // unreachable: counts sum to total
}
