package lincheck

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

const checkTimeout = time.Minute

// memKV is a trivially linearizable service: every operation runs under
// one mutex.
type memKV struct {
	mu       sync.Mutex
	buggy    bool // every 5th Pop leaves its item in the queue
	pops     int
	values   map[string]string
	counters map[string]uint64
	queues   map[string][]string
}

func newMemKV() *memKV {
	return &memKV{values: map[string]string{}, counters: map[string]uint64{}, queues: map[string][]string{}}
}

func (m *memKV) do(in Input) Output {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out Output
	switch in.Op {
	case Get:
		out.Value, out.Found = m.values[in.Key]
	case Set:
		m.values[in.Key] = in.Value
	case Delete:
		_, out.Found = m.values[in.Key]
		delete(m.values, in.Key)
	case CASInit:
		m.counters[in.Key] = in.New
	case CASGet:
		out.N, out.Found = m.counters[in.Key]
	case CASSet:
		cur, ok := m.counters[in.Key]
		out.Found, out.N = ok, cur
		if ok && cur == in.Old {
			m.counters[in.Key], out.Swapped, out.N = in.New, true, in.New
		}
	case CASAdd:
		cur, ok := m.counters[in.Key]
		if ok {
			m.counters[in.Key] = cur + uint64(in.Delta)
			out.Found, out.N = true, cur+uint64(in.Delta)
		}
	case Push:
		m.queues[in.Key] = append(m.queues[in.Key], in.Value)
	case Pop:
		if q := m.queues[in.Key]; len(q) > 0 {
			out.Found, out.Value = true, q[0]
			m.pops++
			if !m.buggy || m.pops%5 != 0 {
				m.queues[in.Key] = q[1:]
			}
		}
	default:
		panic("bad kind " + in.Op.String())
	}
	return out
}

// randomInput picks an operation on one of a few keys of each family.
func randomInput(rng *rand.Rand, client, seq int) Input {
	k := rng.IntN(3)
	unique := fmt.Sprintf("c%d-%d", client, seq)
	switch rng.IntN(3) {
	case 0:
		key := fmt.Sprintf("str%d", k)
		switch r := rng.IntN(10); {
		case r < 5:
			return Input{Op: Get, Key: key}
		case r < 9:
			return Input{Op: Set, Key: key, Value: unique}
		default:
			return Input{Op: Delete, Key: key}
		}
	case 1:
		key := fmt.Sprintf("ctr%d", k)
		switch r := rng.IntN(10); {
		case r < 1:
			return Input{Op: CASInit, Key: key, New: uint64(rng.IntN(4))}
		case r < 4:
			return Input{Op: CASGet, Key: key}
		case r < 7:
			return Input{Op: CASSet, Key: key, Old: uint64(rng.IntN(4)), New: uint64(rng.IntN(4))}
		default:
			return Input{Op: CASAdd, Key: key, Delta: int64(rng.IntN(5) - 2)}
		}
	default:
		key := fmt.Sprintf("queue%d", k)
		if rng.IntN(2) == 0 {
			return Input{Op: Push, Key: key, Value: unique}
		}
		return Input{Op: Pop, Key: key}
	}
}

// TestMemKVLinearizable drives a mutex-protected map from several
// goroutines; its history must check Ok. A few requests are "lost" (never
// applied) or "time out" (applied, answer lost) and recorded as Unknown.
func TestMemKVLinearizable(t *testing.T) {
	for _, withUnknown := range []bool{false, true} {
		t.Run(fmt.Sprintf("unknown=%v", withUnknown), func(t *testing.T) {
			const clients, perClient = 8, 300
			kv := newMemKV()
			rec := NewRecorder()
			var wg sync.WaitGroup
			for client := range clients {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(client), 42))
					for seq := range perClient {
						in := randomInput(rng, client, seq)
						c := rec.Begin(client, in)
						switch r := rng.IntN(100); {
						case withUnknown && r == 0: // lost request
							c.Unknown()
						case withUnknown && r == 1: // lost answer
							kv.do(in)
							c.Unknown()
						default:
							c.End(kv.do(in))
						}
					}
				})
			}
			wg.Wait()
			start := time.Now()
			res, err := rec.Check(checkTimeout)
			t.Logf("%d operations checked in %v", len(rec.Operations()), time.Since(start))
			if res != porcupine.Ok || err != nil {
				path := filepath.Join(t.TempDir(), "history.html")
				if verr := rec.Visualize(path); verr != nil {
					t.Log(verr)
				}
				t.Fatalf("Check = %v, %v; visualization in %s", res, err, path)
			}
		})
	}
}

// TestBuggyKVCaught drives a service that sometimes delivers a queue item
// twice the same way; the check must catch it.
func TestBuggyKVCaught(t *testing.T) {
	kv := newMemKV()
	kv.buggy = true
	rec := NewRecorder()
	var wg sync.WaitGroup
	for client := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(client), 7))
			for seq := range 200 {
				in := randomInput(rng, client, seq)
				rec.Begin(client, in).End(kv.do(in))
			}
		})
	}
	wg.Wait()
	res, err := rec.Check(checkTimeout)
	if res != porcupine.Illegal || err == nil || !strings.Contains(err.Error(), `"queue`) {
		t.Fatalf("Check = %v, %v; want Illegal on a queue", res, err)
	}
	t.Log(err)
}

// history builds a hand-made history. op appends one completed operation
// that does not overlap the ones before; overlapping operations use the
// Recorder directly.
type history struct {
	t   *testing.T
	rec *Recorder
}

func newHistory(t *testing.T) *history {
	return &history{t: t, rec: NewRecorder()}
}

func (h *history) op(client int, in Input, out Output) {
	h.rec.Begin(client, in).End(out)
}

func (h *history) want(want porcupine.CheckResult) {
	h.t.Helper()
	res, err := h.rec.Check(checkTimeout)
	if res != want {
		h.t.Fatalf("Check = %v (%v), want %v", res, err, want)
	}
	if (err == nil) != (res == porcupine.Ok) {
		h.t.Fatalf("Check = %v with error %v", res, err)
	}
	if err != nil {
		h.t.Logf("Check: %v", err)
	}
}

func TestSequentialOk(t *testing.T) {
	h := newHistory(t)
	h.op(0, Input{Op: Get, Key: "a"}, Output{})
	h.op(0, Input{Op: Delete, Key: "a"}, Output{})
	h.op(0, Input{Op: Set, Key: "a", Value: "1"}, Output{})
	h.op(1, Input{Op: Get, Key: "a"}, Output{Found: true, Value: "1"})
	h.op(1, Input{Op: Delete, Key: "a"}, Output{Found: true})
	h.op(0, Input{Op: Get, Key: "a"}, Output{})

	h.op(0, Input{Op: CASGet, Key: "c"}, Output{})
	h.op(0, Input{Op: CASSet, Key: "c", Old: 0, New: 1}, Output{})
	h.op(0, Input{Op: CASAdd, Key: "c", Delta: 1}, Output{})
	h.op(0, Input{Op: CASInit, Key: "c", New: math.MaxUint64}, Output{})
	h.op(1, Input{Op: CASAdd, Key: "c", Delta: 2}, Output{Found: true, N: 1})
	h.op(1, Input{Op: CASAdd, Key: "c", Delta: -2}, Output{Found: true, N: math.MaxUint64})
	h.op(0, Input{Op: CASSet, Key: "c", Old: 7, New: 8}, Output{Found: true, N: math.MaxUint64})
	h.op(0, Input{Op: CASSet, Key: "c", Old: math.MaxUint64, New: 8}, Output{Found: true, Swapped: true, N: 8})
	h.op(1, Input{Op: CASGet, Key: "c"}, Output{Found: true, N: 8})

	h.op(0, Input{Op: Pop, Key: "q"}, Output{})
	h.op(0, Input{Op: Push, Key: "q", Value: "x"}, Output{})
	h.op(1, Input{Op: Push, Key: "q", Value: "y"}, Output{})
	h.op(1, Input{Op: Pop, Key: "q"}, Output{Found: true, Value: "x"})
	h.op(0, Input{Op: Pop, Key: "q"}, Output{Found: true, Value: "y"})
	h.op(0, Input{Op: Pop, Key: "q"}, Output{})

	// The families under one key are independent.
	h.op(0, Input{Op: Set, Key: "mixed", Value: "v"}, Output{})
	h.op(0, Input{Op: CASInit, Key: "mixed", New: 3}, Output{})
	h.op(0, Input{Op: Push, Key: "mixed", Value: "w"}, Output{})
	h.op(0, Input{Op: Get, Key: "mixed"}, Output{Found: true, Value: "v"})
	h.op(0, Input{Op: CASGet, Key: "mixed"}, Output{Found: true, N: 3})
	h.op(0, Input{Op: Pop, Key: "mixed"}, Output{Found: true, Value: "w"})
	h.want(porcupine.Ok)
}

func TestConcurrentOk(t *testing.T) {
	// A read concurrent with a write may see either value.
	for _, seen := range []string{"old", "new"} {
		h := newHistory(t)
		h.op(0, Input{Op: Set, Key: "k", Value: "old"}, Output{})
		w := h.rec.Begin(0, Input{Op: Set, Key: "k", Value: "new"})
		h.op(1, Input{Op: Get, Key: "k"}, Output{Found: true, Value: seen})
		w.End(Output{})
		h.want(porcupine.Ok)
	}
	// Concurrent pops may return in either order.
	h := newHistory(t)
	h.op(0, Input{Op: Push, Key: "q", Value: "1"}, Output{})
	h.op(0, Input{Op: Push, Key: "q", Value: "2"}, Output{})
	p1 := h.rec.Begin(1, Input{Op: Pop, Key: "q"})
	p2 := h.rec.Begin(2, Input{Op: Pop, Key: "q"})
	p1.End(Output{Found: true, Value: "2"})
	p2.End(Output{Found: true, Value: "1"})
	h.want(porcupine.Ok)
}

// TestIllegal checks that a violation of each family is caught.
func TestIllegal(t *testing.T) {
	tests := []struct {
		name  string
		build func(h *history)
	}{
		{"stale read after completed write", func(h *history) {
			h.op(0, Input{Op: Set, Key: "k", Value: "1"}, Output{})
			h.op(0, Input{Op: Set, Key: "k", Value: "2"}, Output{})
			h.op(1, Input{Op: Get, Key: "k"}, Output{Found: true, Value: "1"})
		}},
		{"read misses a completed write", func(h *history) {
			h.op(0, Input{Op: Set, Key: "k", Value: "1"}, Output{})
			h.op(1, Input{Op: Get, Key: "k"}, Output{})
		}},
		{"read sees a deleted value", func(h *history) {
			h.op(0, Input{Op: Set, Key: "k", Value: "1"}, Output{})
			h.op(0, Input{Op: Delete, Key: "k"}, Output{Found: true})
			h.op(1, Input{Op: Get, Key: "k"}, Output{Found: true, Value: "1"})
		}},
		{"delete of a missing key reports found", func(h *history) {
			h.op(0, Input{Op: Delete, Key: "k"}, Output{Found: true})
		}},
		{"value read goes back in time", func(h *history) {
			h.op(0, Input{Op: Set, Key: "k", Value: "1"}, Output{})
			w := h.rec.Begin(0, Input{Op: Set, Key: "k", Value: "2"})
			h.op(1, Input{Op: Get, Key: "k"}, Output{Found: true, Value: "2"})
			h.op(2, Input{Op: Get, Key: "k"}, Output{Found: true, Value: "1"})
			w.End(Output{})
		}},
		{"two CASSet with the same Old both succeed", func(h *history) {
			h.op(0, Input{Op: CASInit, Key: "c", New: 0}, Output{})
			a := h.rec.Begin(1, Input{Op: CASSet, Key: "c", Old: 0, New: 1})
			b := h.rec.Begin(2, Input{Op: CASSet, Key: "c", Old: 0, New: 2})
			a.End(Output{Found: true, Swapped: true, N: 1})
			b.End(Output{Found: true, Swapped: true, N: 2})
		}},
		{"CASSet fails although the counter held Old", func(h *history) {
			h.op(0, Input{Op: CASInit, Key: "c", New: 5}, Output{})
			h.op(1, Input{Op: CASSet, Key: "c", Old: 5, New: 6}, Output{Found: true, N: 5})
		}},
		{"CASSet reports a swap although the counter differed", func(h *history) {
			h.op(0, Input{Op: CASInit, Key: "c", New: 2}, Output{})
			h.op(1, Input{Op: CASSet, Key: "c", Old: 1, New: 2}, Output{Found: true, Swapped: true, N: 2})
		}},
		{"CASAdd loses an update", func(h *history) {
			h.op(0, Input{Op: CASInit, Key: "c", New: 10}, Output{})
			a := h.rec.Begin(1, Input{Op: CASAdd, Key: "c", Delta: 1})
			b := h.rec.Begin(2, Input{Op: CASAdd, Key: "c", Delta: 1})
			a.End(Output{Found: true, N: 11})
			b.End(Output{Found: true, N: 11})
		}},
		{"CASAdd creates a missing counter", func(h *history) {
			h.op(0, Input{Op: CASAdd, Key: "c", Delta: 1}, Output{Found: true, N: 1})
		}},
		{"CASGet of a missing counter", func(h *history) {
			h.op(0, Input{Op: CASGet, Key: "c"}, Output{Found: true, N: 0})
		}},
		{"value popped twice", func(h *history) {
			h.op(0, Input{Op: Push, Key: "q", Value: "a"}, Output{})
			h.op(0, Input{Op: Push, Key: "q", Value: "b"}, Output{})
			p1 := h.rec.Begin(1, Input{Op: Pop, Key: "q"})
			p2 := h.rec.Begin(2, Input{Op: Pop, Key: "q"})
			p1.End(Output{Found: true, Value: "a"})
			p2.End(Output{Found: true, Value: "a"})
		}},
		{"pop returns an item never pushed", func(h *history) {
			h.op(0, Input{Op: Push, Key: "q", Value: "a"}, Output{})
			h.op(1, Input{Op: Pop, Key: "q"}, Output{Found: true, Value: "z"})
		}},
		{"pop out of FIFO order", func(h *history) {
			h.op(0, Input{Op: Push, Key: "q", Value: "a"}, Output{})
			h.op(0, Input{Op: Push, Key: "q", Value: "b"}, Output{})
			h.op(1, Input{Op: Pop, Key: "q"}, Output{Found: true, Value: "b"})
		}},
		{"pop finds a non-empty queue empty", func(h *history) {
			h.op(0, Input{Op: Push, Key: "q", Value: "a"}, Output{})
			h.op(1, Input{Op: Pop, Key: "q"}, Output{})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistory(t)
			// Unrelated keys with linearizable histories must not hide
			// the violation.
			h.op(3, Input{Op: Set, Key: "other", Value: "x"}, Output{})
			h.op(3, Input{Op: Get, Key: "other"}, Output{Found: true, Value: "x"})
			tt.build(h)
			h.want(porcupine.Illegal)
		})
	}
}

func TestIllegalErrorNamesKey(t *testing.T) {
	h := newHistory(t)
	h.op(0, Input{Op: Set, Key: "fine", Value: "1"}, Output{})
	h.op(0, Input{Op: Set, Key: "broken", Value: "1"}, Output{})
	h.op(1, Input{Op: Get, Key: "broken"}, Output{})
	_, err := h.rec.Check(checkTimeout)
	if err == nil || !strings.Contains(err.Error(), `"broken"`) || strings.Contains(err.Error(), `"fine"`) {
		t.Fatalf("Check error = %v, want it to name only \"broken\"", err)
	}
}

// TestUnknown checks operations whose outcome is unknown: each may or may
// not have taken effect, at any time after it was invoked.
func TestUnknown(t *testing.T) {
	tests := []struct {
		name  string
		want  porcupine.CheckResult
		build func(h *history)
	}{
		{"Set that never took effect", porcupine.Ok, func(h *history) {
			h.op(0, Input{Op: Set, Key: "k", Value: "1"}, Output{})
			h.rec.Begin(0, Input{Op: Set, Key: "k", Value: "2"}).Unknown()
			h.op(1, Input{Op: Get, Key: "k"}, Output{Found: true, Value: "1"})
			h.op(1, Input{Op: Get, Key: "k"}, Output{Found: true, Value: "1"})
		}},
		{"Set that took effect", porcupine.Ok, func(h *history) {
			h.op(0, Input{Op: Set, Key: "k", Value: "1"}, Output{})
			h.rec.Begin(0, Input{Op: Set, Key: "k", Value: "2"}).Unknown()
			h.op(1, Input{Op: Get, Key: "k"}, Output{Found: true, Value: "1"})
			h.op(1, Input{Op: Get, Key: "k"}, Output{Found: true, Value: "2"})
			h.op(2, Input{Op: Get, Key: "k"}, Output{Found: true, Value: "2"})
		}},
		{"Set recorded through End with Unknown", porcupine.Ok, func(h *history) {
			h.rec.Begin(0, Input{Op: Set, Key: "k", Value: "2"}).End(Output{Unknown: true, Found: true})
			h.op(1, Input{Op: Get, Key: "k"}, Output{})
			h.op(1, Input{Op: Get, Key: "k"}, Output{Found: true, Value: "2"})
		}},
		{"Set still pending at Check", porcupine.Ok, func(h *history) {
			h.rec.Begin(0, Input{Op: Set, Key: "k", Value: "2"})
			h.op(1, Input{Op: Get, Key: "k"}, Output{})
			h.op(1, Input{Op: Get, Key: "k"}, Output{Found: true, Value: "2"})
		}},
		{"Set that took effect cannot be undone", porcupine.Illegal, func(h *history) {
			h.op(0, Input{Op: Set, Key: "k", Value: "1"}, Output{})
			h.rec.Begin(0, Input{Op: Set, Key: "k", Value: "2"}).Unknown()
			h.op(1, Input{Op: Get, Key: "k"}, Output{Found: true, Value: "2"})
			h.op(1, Input{Op: Get, Key: "k"}, Output{Found: true, Value: "1"})
		}},
		{"Set cannot take effect before it was invoked", porcupine.Illegal, func(h *history) {
			h.op(1, Input{Op: Get, Key: "k"}, Output{Found: true, Value: "2"})
			h.rec.Begin(0, Input{Op: Set, Key: "k", Value: "2"}).Unknown()
		}},
		{"reads with unknown outcome are dropped", porcupine.Ok, func(h *history) {
			h.op(0, Input{Op: Set, Key: "k", Value: "1"}, Output{})
			h.rec.Begin(1, Input{Op: Get, Key: "k"}).Unknown()
			h.rec.Begin(1, Input{Op: CASGet, Key: "c"}).Unknown()
			h.rec.Begin(1, Input{Op: Get, Key: "k"}) // pending
		}},
		{"Delete that took effect", porcupine.Ok, func(h *history) {
			h.op(0, Input{Op: Set, Key: "k", Value: "1"}, Output{})
			h.rec.Begin(0, Input{Op: Delete, Key: "k"}).Unknown()
			h.op(1, Input{Op: Get, Key: "k"}, Output{Found: true, Value: "1"})
			h.op(1, Input{Op: Get, Key: "k"}, Output{})
		}},
		{"CASSet that swapped", porcupine.Ok, func(h *history) {
			h.op(0, Input{Op: CASInit, Key: "c", New: 1}, Output{})
			h.rec.Begin(0, Input{Op: CASSet, Key: "c", Old: 1, New: 2}).Unknown()
			h.op(1, Input{Op: CASGet, Key: "c"}, Output{Found: true, N: 2})
		}},
		{"CASSet that never happened", porcupine.Ok, func(h *history) {
			h.op(0, Input{Op: CASInit, Key: "c", New: 1}, Output{})
			h.rec.Begin(0, Input{Op: CASSet, Key: "c", Old: 1, New: 2}).Unknown()
			h.op(1, Input{Op: CASSet, Key: "c", Old: 1, New: 3}, Output{Found: true, Swapped: true, N: 3})
			h.op(1, Input{Op: CASGet, Key: "c"}, Output{Found: true, N: 3})
		}},
		{"CASSet cannot swap a value it does not expect", porcupine.Illegal, func(h *history) {
			h.op(0, Input{Op: CASInit, Key: "c", New: 5}, Output{})
			h.rec.Begin(0, Input{Op: CASSet, Key: "c", Old: 1, New: 2}).Unknown()
			h.op(1, Input{Op: CASGet, Key: "c"}, Output{Found: true, N: 2})
		}},
		{"CASAdd that took effect", porcupine.Ok, func(h *history) {
			h.op(0, Input{Op: CASInit, Key: "c", New: 1}, Output{})
			h.rec.Begin(0, Input{Op: CASAdd, Key: "c", Delta: 10}).Unknown()
			h.op(1, Input{Op: CASAdd, Key: "c", Delta: 1}, Output{Found: true, N: 2})
			h.op(1, Input{Op: CASAdd, Key: "c", Delta: 1}, Output{Found: true, N: 13})
		}},
		{"Push that took effect and one that did not", porcupine.Ok, func(h *history) {
			h.rec.Begin(0, Input{Op: Push, Key: "q", Value: "a"}).Unknown()
			h.rec.Begin(0, Input{Op: Push, Key: "q", Value: "b"}).Unknown()
			h.op(1, Input{Op: Pop, Key: "q"}, Output{Found: true, Value: "b"})
			h.op(1, Input{Op: Pop, Key: "q"}, Output{})
		}},
		{"Pop whose item was lost", porcupine.Ok, func(h *history) {
			h.op(0, Input{Op: Push, Key: "q", Value: "a"}, Output{})
			h.op(0, Input{Op: Push, Key: "q", Value: "b"}, Output{})
			h.rec.Begin(0, Input{Op: Pop, Key: "q"}).Unknown()
			h.op(1, Input{Op: Pop, Key: "q"}, Output{Found: true, Value: "b"})
		}},
		{"Pop that never happened", porcupine.Ok, func(h *history) {
			h.op(0, Input{Op: Push, Key: "q", Value: "a"}, Output{})
			h.rec.Begin(0, Input{Op: Pop, Key: "q"}).Unknown()
			h.op(1, Input{Op: Pop, Key: "q"}, Output{Found: true, Value: "a"})
		}},
		{"unknown Pop takes only one item", porcupine.Illegal, func(h *history) {
			h.op(0, Input{Op: Push, Key: "q", Value: "a"}, Output{})
			h.op(0, Input{Op: Push, Key: "q", Value: "b"}, Output{})
			h.rec.Begin(0, Input{Op: Pop, Key: "q"}).Unknown()
			h.op(1, Input{Op: Pop, Key: "q"}, Output{})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistory(t)
			tt.build(h)
			h.want(tt.want)
		})
	}
}

func TestOperationsUnknownReturnsAtInfinity(t *testing.T) {
	rec := NewRecorder()
	rec.Begin(0, Input{Op: Set, Key: "k", Value: "1"}).Unknown()
	rec.Begin(0, Input{Op: Get, Key: "k"}).Unknown()
	rec.Begin(0, Input{Op: Push, Key: "q", Value: "1"}) // pending
	rec.Begin(0, Input{Op: CASGet, Key: "c"})           // pending read
	rec.Begin(1, Input{Op: Get, Key: "k"}).End(Output{})
	ops := rec.Operations()
	if len(ops) != 3 {
		t.Fatalf("got %d operations, want 3: %+v", len(ops), ops)
	}
	for _, op := range ops[:2] {
		if op.Return != math.MaxInt64 || !op.Output.(Output).Unknown {
			t.Errorf("unknown %v: Return %d, Output %+v", op.Input, op.Return, op.Output)
		}
	}
	if last := ops[2]; last.Return == math.MaxInt64 || last.Return <= last.Call || last.Call <= ops[1].Call {
		t.Errorf("completed Get: Call %d, Return %d", last.Call, last.Return)
	}
}

func TestFinishTwicePanics(t *testing.T) {
	for _, second := range []string{"End", "Unknown"} {
		c := NewRecorder().Begin(0, Input{Op: Set, Key: "k"})
		c.End(Output{})
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("second %s did not panic", second)
				}
			}()
			if second == "End" {
				c.End(Output{})
			} else {
				c.Unknown()
			}
		}()
	}
}

func TestInvalidKind(t *testing.T) {
	rec := NewRecorder()
	rec.Begin(0, Input{Key: "k"}).End(Output{})
	res, err := rec.Check(checkTimeout)
	if res == porcupine.Ok || err == nil || !strings.Contains(err.Error(), "Kind(0)") {
		t.Fatalf("Check = %v, %v; want an invalid-kind error", res, err)
	}
}

func TestEmptyHistory(t *testing.T) {
	var rec Recorder
	if res, err := rec.Check(0); res != porcupine.Ok || err != nil {
		t.Fatalf("Check = %v, %v", res, err)
	}
}

func TestVisualize(t *testing.T) {
	h := newHistory(t)
	h.op(0, Input{Op: Push, Key: "q", Value: "a"}, Output{})
	h.op(1, Input{Op: Pop, Key: "q"}, Output{Found: true, Value: "a"})
	h.op(2, Input{Op: Pop, Key: "q"}, Output{Found: true, Value: "a"})
	h.rec.Begin(3, Input{Op: Push, Key: "q", Value: "lost"}).Unknown()
	h.want(porcupine.Illegal)
	dir := t.TempDir()
	check := func(name string) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := h.rec.Visualize(path); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "<html") || !strings.Contains(string(b), `Pop(\"q\")`) {
			t.Fatalf("%s does not look like a visualization of the history (%d bytes)", name, len(b))
		}
	}
	check("cached.html")
	// After more operations Visualize checks the history again.
	h.op(0, Input{Op: CASInit, Key: "c", New: 1}, Output{})
	check("rechecked.html")
	if err := h.rec.Visualize(filepath.Join(dir, "missing", "x.html")); err == nil {
		t.Fatal("Visualize into a missing directory succeeded")
	}
}

func TestDescribe(t *testing.T) {
	m := Model()
	for _, tt := range []struct {
		in   Input
		out  Output
		want string
	}{
		{Input{Op: Get, Key: "k"}, Output{Found: true, Value: "v"}, `Get("k") → "v"`},
		{Input{Op: Get, Key: "k"}, Output{}, `Get("k") → missing`},
		{Input{Op: Set, Key: "k", Value: "v"}, Output{Unknown: true}, `Set("k", "v") → unknown`},
		{Input{Op: CASSet, Key: "c", Old: 1, New: 2}, Output{Found: true, N: 3}, `CASSet("c", 1→2) → not swapped, 3`},
		{Input{Op: CASAdd, Key: "c", Delta: -1}, Output{Found: true, N: 4}, `CASAdd("c", -1) → 4`},
		{Input{Op: Pop, Key: "q"}, Output{}, `Pop("q") → empty`},
	} {
		if got := m.DescribeOperation(tt.in, tt.out); got != tt.want {
			t.Errorf("DescribeOperation = %s, want %s", got, tt.want)
		}
	}
	_, st := m.Step(m.Init(), Input{Op: Push, Key: "q", Value: "a"}, Output{})
	_, st = m.Step(st, Input{Op: CASInit, Key: "q", New: 7}, Output{})
	if got, want := m.DescribeState(st), `value=<none> counter=7 queue=["a"]`; got != want {
		t.Errorf("DescribeState = %s, want %s", got, want)
	}
}

// TestStepDoesNotMutate checks that states stay immutable: stepping from a
// shared state must not change it or its siblings.
func TestStepDoesNotMutate(t *testing.T) {
	m := Model()
	_, base := m.Step(m.Init(), Input{Op: Push, Key: "q", Value: "a"}, Output{})
	_, base = m.Step(base, Input{Op: Push, Key: "q", Value: "b"}, Output{})
	_, popped := m.Step(base, Input{Op: Pop, Key: "q"}, Output{Found: true, Value: "a"})
	_, x := m.Step(popped, Input{Op: Push, Key: "q", Value: "x"}, Output{})
	_, y := m.Step(popped, Input{Op: Push, Key: "q", Value: "y"}, Output{})
	if got := m.DescribeState(base); got != `value=<none> counter=<none> queue=["a" "b"]` {
		t.Errorf("base changed: %s", got)
	}
	if got := m.DescribeState(x); got != `value=<none> counter=<none> queue=["b" "x"]` {
		t.Errorf("x = %s", got)
	}
	if got := m.DescribeState(y); got != `value=<none> counter=<none> queue=["b" "y"]` {
		t.Errorf("y = %s", got)
	}
	if m.Equal(x, y) || !m.Equal(x, x) || m.Hash(base) == m.Hash(popped) {
		t.Error("Equal or Hash is wrong")
	}
}

func TestPartitionEvents(t *testing.T) {
	events := []porcupine.Event{
		{Kind: porcupine.CallEvent, Value: Input{Op: Set, Key: "a", Value: "1"}, Id: 0},
		{Kind: porcupine.CallEvent, Value: Input{Op: Get, Key: "b"}, Id: 1},
		{Kind: porcupine.ReturnEvent, Value: Output{}, Id: 0},
		{Kind: porcupine.CallEvent, Value: Input{Op: Get, Key: "a"}, Id: 2},
		{Kind: porcupine.ReturnEvent, Value: Output{Found: true, Value: "1"}, Id: 2},
		{Kind: porcupine.ReturnEvent, Value: Output{}, Id: 1},
	}
	parts := Model().PartitionEvent(events)
	if len(parts) != 2 || len(parts[0]) != 4 || len(parts[1]) != 2 {
		t.Fatalf("partitions = %+v", parts)
	}
	if !porcupine.CheckEvents(Model(), events) {
		t.Fatal("event history not linearizable")
	}
}
