package record

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestChunkRoundTrip(t *testing.T) {
	id, err := NewSenderID()
	if err != nil {
		t.Fatal(err)
	}
	c := Chunk{Sender: id, FirstSeq: 42, Time: 1700000000123456789, PID: 7, TID: 8, Host: "web1", Path: "app/x.log", Binary: true,
		Records: [][]byte{[]byte("one"), {}, bytes.Repeat([]byte{0xff}, 300)}}
	enc := c.AppendEncode([]byte("prefix"))
	if len(enc)-len("prefix") != c.EncodedLen() {
		t.Fatalf("EncodedLen %d, encoded %d", c.EncodedLen(), len(enc)-6)
	}
	got, err := Decode(enc[6:])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, c)
	}
	if got.LastSeq() != 44 || got.DataBytes() != 303 {
		t.Fatalf("LastSeq %d DataBytes %d", got.LastSeq(), got.DataBytes())
	}
	back, err := ParseSenderID(id.String())
	if err != nil || back != id {
		t.Fatalf("ParseSenderID: %v %v", back, err)
	}
	if _, err := ParseSenderID("xyz"); err == nil {
		t.Fatal("ParseSenderID accepted xyz")
	}
}

func TestDecodeRejects(t *testing.T) {
	good := (&Chunk{FirstSeq: 1, Records: [][]byte{[]byte("a")}}).AppendEncode(nil)
	cases := map[string][]byte{
		"empty":      {},
		"version":    append([]byte{9}, good[1:]...),
		"flags":      append([]byte{1, 0x80}, good[2:]...),
		"truncated":  good[:len(good)-1],
		"trailing":   append(append([]byte(nil), good...), 0),
		"no records": (&Chunk{FirstSeq: 1}).AppendEncode(nil),
		"seq zero":   (&Chunk{Records: [][]byte{[]byte("a")}}).AppendEncode(nil),
	}
	for name, b := range cases {
		if _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err %v, want ErrCorrupt", name, err)
		}
	}
}

func strs(recs [][]byte) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r)
	}
	return out
}

func TestSplitter(t *testing.T) {
	cases := []struct {
		name    string
		s       Splitter
		writes  []string
		flush   bool
		want    []string
		split   uint64
		dropped uint64
		pending int
	}{
		{name: "lines", writes: []string{"a\nbb\nccc\n"}, want: []string{"a", "bb", "ccc"}},
		{name: "crlf and cr", writes: []string{"a\r\nb\rc\n"}, want: []string{"a", "b", "c"}},
		{name: "crlf across writes", writes: []string{"a\r", "\nb\n"}, want: []string{"a", "b"}},
		{name: "empty lines", writes: []string{"\n\na\n"}, want: []string{"", "", "a"}},
		{name: "partial waits", writes: []string{"ab", "cd"}, want: nil, pending: 4},
		{name: "partial joins", writes: []string{"ab", "cd\nef"}, want: []string{"abcd"}, pending: 2},
		{name: "flush partial", writes: []string{"ab", "cd"}, flush: true, want: []string{"abcd"}},
		{name: "flush nothing", writes: []string{"ab\n"}, flush: true, want: []string{"ab"}},
		{name: "overlong split", s: Splitter{MaxLine: 3}, writes: []string{"abcdefg\nxy\n"}, want: []string{"abc", "def", "g", "xy"}, split: 1},
		{name: "overlong split across writes", s: Splitter{MaxLine: 3}, writes: []string{"ab", "cdefg", "h\n"}, want: []string{"abc", "def", "gh"}, split: 1},
		{name: "overlong drop", s: Splitter{MaxLine: 3, OverLong: DropOverLong}, writes: []string{"abcdefg\nxy\n"}, want: []string{"xy"}, dropped: 1},
		{name: "overlong drop across writes", s: Splitter{MaxLine: 3, OverLong: DropOverLong}, writes: []string{"ab", "cdef", "gh\nok\n"}, want: []string{"ok"}, dropped: 1},
		{name: "binary whole writes", s: Splitter{Binary: true}, writes: []string{"a\nb", "c"}, want: []string{"a\nb", "c"}},
		{name: "binary split", s: Splitter{Binary: true, MaxLine: 2}, writes: []string{"abcde"}, want: []string{"ab", "cd", "e"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s
			var got []string
			for _, w := range tc.writes {
				got = append(got, strs(s.Write([]byte(w), nil))...)
			}
			if tc.flush {
				got = append(got, strs(s.Flush(nil))...)
			}
			if !reflect.DeepEqual(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("records %q, want %q", got, tc.want)
			}
			if s.Split != tc.split || s.Dropped != tc.dropped || s.Pending() != tc.pending {
				t.Fatalf("split %d dropped %d pending %d, want %d %d %d", s.Split, s.Dropped, s.Pending(), tc.split, tc.dropped, tc.pending)
			}
		})
	}
}

// FuzzSplitter checks that text splitting loses nothing: joining the records
// with "\n" gives the input with line ends normalised, however the input is
// cut into writes.
func FuzzSplitter(f *testing.F) {
	f.Add("a\nb\r\nc\rd", uint8(3))
	f.Add("\r\r\n\n", uint8(1))
	f.Fuzz(func(t *testing.T, in string, cut uint8) {
		var s Splitter
		var recs []string
		step := int(cut%7) + 1
		for i := 0; i < len(in); i += step {
			recs = append(recs, strs(s.Write([]byte(in[i:min(i+step, len(in))]), nil))...)
		}
		recs = append(recs, strs(s.Flush(nil))...)
		norm := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(in)
		want := strings.Split(norm, "\n")
		if strings.HasSuffix(norm, "\n") || norm == "" {
			want = want[:len(want)-1]
		}
		if !reflect.DeepEqual(recs, want) && !(len(recs) == 0 && len(want) == 0) {
			t.Fatalf("input %q step %d: records %q, want %q", in, step, recs, want)
		}
	})
}

func FuzzDecode(f *testing.F) {
	f.Add((&Chunk{FirstSeq: 1, Host: "h", Path: "p", Records: [][]byte{[]byte("a"), []byte("bc")}}).AppendEncode(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			return
		}
		// Varints may come non-canonical, so compare what the bytes mean.
		again, err := Decode(c.AppendEncode(nil))
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("re-encoded chunk decodes as %+v, %v; want %+v", again, err, c)
		}
	})
}
