package lincheck

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/anishathalye/porcupine"
)

// Kind is the kind of operation a client invoked.
type Kind int

// Operation kinds. The zero Kind is not valid, so an Input whose Op was left
// unset is reported by Check instead of being taken for a Get.
const (
	// Get reads the string value of Key: Output.Found reports whether it
	// exists and Output.Value holds it.
	Get Kind = iota + 1
	// Set sets the string value of Key to Input.Value. It always succeeds;
	// its Output is not checked.
	Set
	// Delete removes the string value of Key. It always succeeds;
	// Output.Found reports whether the value existed.
	Delete
	// CASInit sets the counter of Key to Input.New, creating it if needed.
	// It always succeeds; its Output is not checked.
	CASInit
	// CASGet reads the counter of Key: Output.Found reports whether it
	// exists and Output.N holds it.
	CASGet
	// CASSet swaps the counter of Key from Input.Old to Input.New if it
	// holds Input.Old. Output.Found reports whether the counter exists,
	// Output.Swapped whether it was swapped, and Output.N the value it
	// holds afterwards (Input.New if swapped, else the current value).
	CASSet
	// CASAdd adds Input.Delta to the counter of Key, wrapping modulo 2^64.
	// Output.Found reports whether the counter exists (a missing counter is
	// left missing) and Output.N holds the new value.
	CASAdd
	// Push appends Input.Value to the back of the FIFO queue named Key. It
	// always succeeds; its Output is not checked.
	Push
	// Pop takes the item at the front of the FIFO queue named Key:
	// Output.Found reports whether there was one (false: the queue was
	// empty) and Output.Value holds it.
	Pop
)

var kindNames = [...]string{
	Get:     "Get",
	Set:     "Set",
	Delete:  "Delete",
	CASInit: "CASInit",
	CASGet:  "CASGet",
	CASSet:  "CASSet",
	CASAdd:  "CASAdd",
	Push:    "Push",
	Pop:     "Pop",
}

// Valid reports whether k is one of the defined operation kinds.
func (k Kind) Valid() bool {
	return k >= Get && k <= Pop
}

// String returns the name of the kind, such as "CASSet", or "Kind(n)" for
// an invalid kind.
func (k Kind) String() string {
	if !k.Valid() {
		return "Kind(" + strconv.Itoa(int(k)) + ")"
	}
	return kindNames[k]
}

// isRead reports whether operations of kind k never change the state, so
// that one whose outcome is unknown can simply be left out of the history.
func (k Kind) isRead() bool {
	return k == Get || k == CASGet
}

// Input is what a client asked the service to do. Only the fields the kind
// uses matter: Value for Set and Push, Old and New for CASSet, New for
// CASInit, Delta for CASAdd.
//
// The three families of operations (string value: Get, Set, Delete;
// counter: CASInit, CASGet, CASSet, CASAdd; queue: Push, Pop) are
// independent of each other even under the same Key: a Set does not touch
// the counter or the queue of its key.
type Input struct {
	Op    Kind   // the operation
	Key   string // the key, or the queue name for Push and Pop
	Value string // the value to Set or Push
	Old   uint64 // the value CASSet expects
	New   uint64 // the value CASSet swaps in, or CASInit sets
	Delta int64  // the amount CASAdd adds (negative to subtract)
}

// Output is what the service answered. Which fields are checked depends on
// the kind of operation (see the Kind constants); Value and N are ignored
// when Found is false.
type Output struct {
	Value   string // the value read by Get or taken by Pop
	Found   bool   // whether the key, counter or queue item existed
	Swapped bool   // whether CASSet swapped
	N       uint64 // the counter after CASGet, CASSet or CASAdd
	// Unknown marks an operation whose outcome the client never learned,
	// such as one that timed out: it may or may not have taken effect, at
	// any time after it was invoked. Set by Call.Unknown (or by passing an
	// Output with Unknown set to Call.End); all other fields are then
	// ignored.
	Unknown bool
}

// state is the sequential state of one key. It is immutable: step returns
// a modified copy and never writes into the queue's backing array, so
// states can share it.
type state struct {
	value      string
	hasValue   bool
	counter    uint64
	hasCounter bool
	queue      []string
}

// step applies in to s and reports whether the service could have answered
// out; for an unknown outcome every answer is acceptable and only the
// effect is applied.
func step(s state, in Input, out Output) (bool, state) {
	known := !out.Unknown
	switch in.Op {
	case Get:
		if known && (out.Found != s.hasValue || out.Found && out.Value != s.value) {
			return false, s
		}
	case Set:
		s.value, s.hasValue = in.Value, true
	case Delete:
		if known && out.Found != s.hasValue {
			return false, s
		}
		s.value, s.hasValue = "", false
	case CASInit:
		s.counter, s.hasCounter = in.New, true
	case CASGet:
		if known && (out.Found != s.hasCounter || out.Found && out.N != s.counter) {
			return false, s
		}
	case CASSet:
		swapped := s.hasCounter && s.counter == in.Old
		if swapped {
			s.counter = in.New
		}
		if known && (out.Found != s.hasCounter || out.Swapped != swapped || out.Found && out.N != s.counter) {
			return false, s
		}
	case CASAdd:
		if s.hasCounter {
			s.counter += uint64(in.Delta)
		}
		if known && (out.Found != s.hasCounter || out.Found && out.N != s.counter) {
			return false, s
		}
	case Push:
		q := make([]string, len(s.queue)+1)
		copy(q, s.queue)
		q[len(s.queue)] = in.Value
		s.queue = q
	case Pop:
		found := len(s.queue) > 0
		if known && (out.Found != found || found && out.Value != s.queue[0]) {
			return false, s
		}
		if found {
			s.queue = s.queue[1:]
		}
	default:
		return false, s
	}
	return true, s
}

func equalStates(a, b state) bool {
	if a.hasValue != b.hasValue || a.value != b.value ||
		a.hasCounter != b.hasCounter || a.counter != b.counter ||
		len(a.queue) != len(b.queue) {
		return false
	}
	for i := range a.queue {
		if a.queue[i] != b.queue[i] {
			return false
		}
	}
	return true
}

// FNV-1a, inlined so that hashing a state does not allocate.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return (h ^ uint64(len(s))) * fnvPrime
}

func hashUint(h, v uint64) uint64 {
	return (h ^ v) * fnvPrime
}

func hashState(s state) uint64 {
	h := uint64(fnvOffset)
	if s.hasValue {
		h = hashString(hashUint(h, 1), s.value)
	}
	if s.hasCounter {
		h = hashUint(hashUint(h, 2), s.counter)
	}
	h = hashUint(h, uint64(len(s.queue)))
	for _, v := range s.queue {
		h = hashString(h, v)
	}
	return h
}

func describeState(s state) string {
	var b strings.Builder
	b.WriteString("value=")
	if s.hasValue {
		b.WriteString(strconv.Quote(s.value))
	} else {
		b.WriteString("<none>")
	}
	b.WriteString(" counter=")
	if s.hasCounter {
		b.WriteString(strconv.FormatUint(s.counter, 10))
	} else {
		b.WriteString("<none>")
	}
	b.WriteString(" queue=[")
	for i, v := range s.queue {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(strconv.Quote(v))
	}
	b.WriteString("]")
	return b.String()
}

func describeOperation(in Input, out Output) string {
	key := strconv.Quote(in.Key)
	var call string
	switch in.Op {
	case Set, Push:
		call = fmt.Sprintf("%s(%s, %q)", in.Op, key, in.Value)
	case CASInit:
		call = fmt.Sprintf("CASInit(%s, %d)", key, in.New)
	case CASSet:
		call = fmt.Sprintf("CASSet(%s, %d→%d)", key, in.Old, in.New)
	case CASAdd:
		call = fmt.Sprintf("CASAdd(%s, %+d)", key, in.Delta)
	default:
		call = fmt.Sprintf("%s(%s)", in.Op, key)
	}
	if out.Unknown {
		return call + " → unknown"
	}
	switch in.Op {
	case Get, Pop:
		if !out.Found {
			if in.Op == Pop {
				return call + " → empty"
			}
			return call + " → missing"
		}
		return call + " → " + strconv.Quote(out.Value)
	case Delete:
		if !out.Found {
			return call + " → missing"
		}
		return call + " → deleted"
	case CASGet, CASAdd:
		if !out.Found {
			return call + " → missing"
		}
		return fmt.Sprintf("%s → %d", call, out.N)
	case CASSet:
		switch {
		case !out.Found:
			return call + " → missing"
		case out.Swapped:
			return fmt.Sprintf("%s → swapped, %d", call, out.N)
		default:
			return fmt.Sprintf("%s → not swapped, %d", call, out.N)
		}
	}
	return call
}

// keyOf returns the key an operation's input names; an input of another
// type gets the empty key (and is then rejected by the model's step).
func keyOf(input interface{}) string {
	in, _ := input.(Input)
	return in.Key
}

// partition splits a history by key, keeping the keys in order of first
// appearance and each key's operations in history order.
func partition(history []porcupine.Operation) [][]porcupine.Operation {
	index := make(map[string]int)
	var parts [][]porcupine.Operation
	for _, op := range history {
		key := keyOf(op.Input)
		i, ok := index[key]
		if !ok {
			i = len(parts)
			index[key] = i
			parts = append(parts, nil)
		}
		parts[i] = append(parts[i], op)
	}
	return parts
}

// partitionEvents splits an event history by key. A return event has no
// input, so it goes with the call event of the same Id.
func partitionEvents(history []porcupine.Event) [][]porcupine.Event {
	index := make(map[string]int)
	byID := make(map[int]string)
	var parts [][]porcupine.Event
	for _, ev := range history {
		var key string
		if ev.Kind == porcupine.CallEvent {
			key = keyOf(ev.Value)
			byID[ev.Id] = key
		} else {
			key = byID[ev.Id]
		}
		i, ok := index[key]
		if !ok {
			i = len(parts)
			index[key] = i
			parts = append(parts, nil)
		}
		parts[i] = append(parts[i], ev)
	}
	return parts
}

// Model returns the porcupine model of the key-value service that Check
// uses, for checking histories built by other means. Operation inputs must
// be Input values and outputs Output values (not pointers); histories are
// partitioned by Input.Key and each key starts with no value, no counter
// and an empty queue. An operation whose outcome is unknown must have
// Output.Unknown set and Return math.MaxInt64.
func Model() porcupine.Model {
	return porcupine.Model{
		Partition:      partition,
		PartitionEvent: partitionEvents,
		Init:           func() interface{} { return state{} },
		Step: func(st, input, output interface{}) (bool, interface{}) {
			in, ok := input.(Input)
			if !ok {
				return false, st
			}
			out, ok := output.(Output)
			if !ok {
				return false, st
			}
			return step(st.(state), in, out)
		},
		Equal: func(a, b interface{}) bool {
			return equalStates(a.(state), b.(state))
		},
		Hash: func(st interface{}) uint64 {
			return hashState(st.(state))
		},
		DescribeOperation: func(input, output interface{}) string {
			in, ok := input.(Input)
			if !ok {
				return fmt.Sprintf("%v → %v", input, output)
			}
			out, _ := output.(Output)
			return describeOperation(in, out)
		},
		DescribeState: func(st interface{}) string {
			return describeState(st.(state))
		},
	}
}
