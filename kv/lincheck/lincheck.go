// Package lincheck records the histories of concurrent clients of a
// key-value service and checks them for linearizability with porcupine
// (github.com/anishathalye/porcupine).
//
// Each client wraps every request in Begin and End:
//
//	c := rec.Begin(client, lincheck.Input{Op: lincheck.CASSet, Key: "k", Old: 1, New: 2})
//	swapped, n, err := svc.CASSet(ctx, "k", 1, 2)
//	if err != nil { // e.g. a timeout: it may or may not have happened
//		c.Unknown()
//	} else {
//		c.End(lincheck.Output{Found: true, Swapped: swapped, N: n})
//	}
//
// and once the clients are done, Check says whether some sequential order
// of the operations, consistent with their real-time order, explains every
// answer (see Kind for the semantics of each operation). Visualize writes
// porcupine's HTML view of the history to help find out why not.
package lincheck

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Recorder records a history of operations invoked by concurrent clients.
// It is safe for concurrent use. The zero Recorder is empty and ready to
// use, like one returned by NewRecorder.
type Recorder struct {
	mu      sync.Mutex
	clock   int64  // logical time of the last call or return
	version uint64 // bumped whenever calls change
	calls   []*Call
	last    *checkRun // the last Check, reused by Visualize
}

// checkRun is what Check learned about the history at version.
type checkRun struct {
	version uint64
	timeout time.Duration
	info    porcupine.LinearizationInfo
}

type callState int

const (
	pending callState = iota
	ended
	unknown
)

// Call is one operation begun with Recorder.Begin. Exactly one of End and
// Unknown must be called on it, once; a Call still pending when the history
// is checked counts as Unknown.
type Call struct {
	r      *Recorder
	client int
	in     Input
	call   int64
	ret    int64
	out    Output
	state  callState
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{}
}

// Begin records that client (a small non-negative number that identifies
// the client, for the visualization) invoked the operation in, and returns
// the Call to finish with End or Unknown once the answer is known. Begin
// must be called before the request is sent.
func (r *Recorder) Begin(client int, in Input) *Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clock++
	c := &Call{r: r, client: client, in: in, call: r.clock}
	r.calls = append(r.calls, c)
	r.version++
	return c
}

// End records that the operation returned out. It must be called after the
// answer was received. An out with Unknown set is recorded as by Unknown.
// End panics if End or Unknown was already called on c.
func (c *Call) End(out Output) {
	if out.Unknown {
		c.Unknown()
		return
	}
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	c.finish("End")
	r.clock++
	c.ret = r.clock
	c.out = out
	c.state = ended
}

// Unknown records that the outcome of the operation is unknown, for
// example because the request timed out: it may have taken effect at any
// time after Begin, or never. Following porcupine's convention the
// operation is checked with a return time of infinity (math.MaxInt64) and
// an output that the model accepts whatever the state: a write (Set,
// Delete, CASInit, CASSet, CASAdd, Push, Pop) may then be placed anywhere
// after its call, including after every other operation, which amounts to
// never having happened. A read (Get, CASGet) with an unknown outcome tells
// nothing and is left out of the history. Unknown panics if End or Unknown
// was already called on c.
func (c *Call) Unknown() {
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	c.finish("Unknown")
	c.out = Output{Unknown: true}
	c.state = unknown
}

// finish checks that c is pending and notes the change; r.mu is held.
func (c *Call) finish(method string) {
	if c.state != pending {
		panic(fmt.Sprintf("lincheck: %s on a %s call that already finished", method, c.in.Op))
	}
	c.r.version++
}

// Operations returns the history recorded so far as porcupine operations,
// in the order the calls began, for use with Model. Operations with an
// unknown outcome, and calls still pending, are given Output{Unknown: true}
// and Return math.MaxInt64, except reads, which are left out.
func (r *Recorder) Operations() []porcupine.Operation {
	ops, _ := r.snapshot()
	return ops
}

func (r *Recorder) snapshot() ([]porcupine.Operation, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := make([]porcupine.Operation, 0, len(r.calls))
	for _, c := range r.calls {
		op := porcupine.Operation{ClientId: c.client, Input: c.in, Call: c.call}
		if c.state == ended {
			op.Output, op.Return = c.out, c.ret
		} else {
			if c.in.Op.isRead() {
				continue
			}
			op.Output, op.Return = Output{Unknown: true}, math.MaxInt64
		}
		ops = append(ops, op)
	}
	return ops, r.version
}

// validate rejects histories the model cannot judge fairly.
func validate(ops []porcupine.Operation) error {
	for _, op := range ops {
		in := op.Input.(Input)
		if !in.Op.Valid() {
			return fmt.Errorf("lincheck: client %d: operation on key %q has invalid kind %s", op.ClientId, in.Key, in.Op)
		}
		if op.ClientId < 0 {
			return fmt.Errorf("lincheck: %s on key %q has negative client %d", in.Op, in.Key, op.ClientId)
		}
	}
	return nil
}

// Check checks the history recorded so far for linearizability, giving up
// after timeout (0 means no limit). It returns porcupine.Ok and a nil error
// if the history is linearizable, porcupine.Illegal and an error naming the
// keys whose histories are not, or porcupine.Unknown and an error if the
// check timed out or the history holds an operation of an invalid Kind.
// The error is nil exactly when the result is porcupine.Ok. The history is
// checked one key at a time, keys in parallel.
func (r *Recorder) Check(timeout time.Duration) (porcupine.CheckResult, error) {
	ops, version := r.snapshot()
	if err := validate(ops); err != nil {
		return porcupine.Unknown, err
	}
	model := Model()
	res, info := porcupine.CheckOperationsVerbose(model, ops, timeout)
	r.mu.Lock()
	r.last = &checkRun{version: version, timeout: timeout, info: info}
	r.mu.Unlock()
	switch res {
	case porcupine.Ok:
		return res, nil
	case porcupine.Illegal:
		return res, fmt.Errorf("lincheck: history of %d operations is not linearizable; no linearization for key %s",
			len(ops), strings.Join(failedKeys(model, ops, info), ", "))
	default:
		return res, fmt.Errorf("lincheck: checking %d operations timed out after %v (no violation found so far)", len(ops), timeout)
	}
}

// failedKeys returns the quoted keys whose partitions have no complete
// linearization in info.
func failedKeys(model porcupine.Model, ops []porcupine.Operation, info porcupine.LinearizationInfo) []string {
	parts := model.Partition(ops)
	partials := info.PartialLinearizations()
	var keys []string
	for i, part := range parts {
		complete := false
		if i < len(partials) {
			for _, lin := range partials[i] {
				if len(lin) == len(part) {
					complete = true
					break
				}
			}
		}
		if !complete {
			keys = append(keys, strconv.Quote(keyOf(part[0].Input)))
		}
	}
	return keys
}

// Visualize writes porcupine's HTML visualization of the history to path:
// the operations of each key on a timeline with, for a history that is not
// linearizable, the longest partial linearizations found and where they
// got stuck. It reuses the last Check if nothing was recorded since, and
// otherwise checks the history again with the last Check's timeout (no
// limit if Check was never called).
func (r *Recorder) Visualize(path string) error {
	ops, version := r.snapshot()
	r.mu.Lock()
	last := r.last
	r.mu.Unlock()
	model := Model()
	var info porcupine.LinearizationInfo
	if last != nil && last.version == version {
		info = last.info
	} else {
		if err := validate(ops); err != nil {
			return err
		}
		var timeout time.Duration
		if last != nil {
			timeout = last.timeout
		}
		_, info = porcupine.CheckOperationsVerbose(model, ops, timeout)
	}
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		return fmt.Errorf("lincheck: visualize: %w", err)
	}
	return nil
}
