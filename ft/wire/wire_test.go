package wire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/kura-dev/kura/ft/record"
)

func TestFramesRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	id := record.SenderID{1, 2, 3}
	chunks := []record.Chunk{
		{Sender: id, FirstSeq: 1, Time: 5, PID: 1, TID: 2, Host: "h", Path: "a.log", Records: [][]byte{[]byte("x"), []byte("y")}},
		{Sender: id, FirstSeq: 3, Path: "b.bin", Binary: true, Records: [][]byte{{0, 1, 2}}},
	}
	enc := [][]byte{chunks[0].AppendEncode(nil), chunks[1].AppendEncode(nil)}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.WriteHello(Hello{Version: Version, Sender: id, Host: "web1"}))
	must(w.WriteWelcome(Welcome{Version: Version, Receiver: "rx"}))
	must(w.WriteBatch(7, chunks))
	must(w.WriteEncodedBatch(8, enc))
	must(w.WriteAck(7))
	must(w.WriteError("disk full"))
	must(w.Flush())

	r := NewReader(&buf)
	next := func(want byte) []byte {
		t.Helper()
		typ, body, err := r.Next()
		if err != nil || typ != want {
			t.Fatalf("frame type %d err %v, want %d", typ, err, want)
		}
		return append([]byte(nil), body...)
	}
	if h, err := ParseHello(next(TypeHello)); err != nil || h.Host != "web1" || h.Sender != id || h.Version != Version {
		t.Fatalf("hello %+v %v", h, err)
	}
	if m, err := ParseWelcome(next(TypeWelcome)); err != nil || m.Receiver != "rx" {
		t.Fatalf("welcome %+v %v", m, err)
	}
	for _, wantID := range []uint64{7, 8} {
		b, err := ParseBatch(next(TypeBatch))
		if err != nil || b.ID != wantID || !reflect.DeepEqual(b.Chunks, chunks) {
			t.Fatalf("batch %d: %+v %v", wantID, b, err)
		}
	}
	if a, err := ParseAck(next(TypeAck)); err != nil || a.ID != 7 {
		t.Fatalf("ack %+v %v", a, err)
	}
	if e, err := ParseError(next(TypeError)); err != nil || e.Message != "disk full" {
		t.Fatalf("error %+v %v", e, err)
	}
	if _, _, err := r.Next(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want EOF", err)
	}
}

// TestEncodedBatchSameBytes: the gathered and the piecewise batch writers
// put the same bytes on the wire.
func TestEncodedBatchSameBytes(t *testing.T) {
	var chunks []record.Chunk
	var encoded [][]byte
	for i := 0; i < 50; i++ {
		c := record.Chunk{FirstSeq: uint64(1 + i*3), Path: "p", Records: [][]byte{bytes.Repeat([]byte{'x'}, i*40), {}, []byte("z")}}
		chunks = append(chunks, c)
		encoded = append(encoded, c.AppendEncode(nil))
	}
	var a, b bytes.Buffer
	wa, wb := NewWriter(&a), NewWriter(&b)
	if err := wa.WriteBatch(9, chunks); err != nil {
		t.Fatal(err)
	}
	if err := wb.WriteEncodedBatch(9, encoded); err != nil {
		t.Fatal(err)
	}
	wa.Flush()
	wb.Flush()
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("WriteEncodedBatch wrote %d bytes unlike WriteBatch's %d", b.Len(), a.Len())
	}
}

func TestCorruptFrames(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.WriteAck(1)
	w.Flush()
	good := buf.Bytes()

	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-1] ^= 1
	if _, _, err := NewReader(bytes.NewReader(flipped)).Next(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("flipped byte: %v", err)
	}
	huge := append([]byte{0xff, 0xff, 0xff, 0xff}, good[4:]...)
	if _, _, err := NewReader(bytes.NewReader(huge)).Next(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("huge length: %v", err)
	}
	if _, _, err := NewReader(bytes.NewReader(good[:len(good)-2])).Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("torn frame: %v", err)
	}
}

func FuzzParseBatch(f *testing.F) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.WriteBatch(3, []record.Chunk{{FirstSeq: 1, Records: [][]byte{[]byte("a")}}})
	w.Flush()
	f.Add(buf.Bytes()[9:])
	f.Fuzz(func(t *testing.T, b []byte) {
		bt, err := ParseBatch(b)
		if err != nil {
			return
		}
		var out bytes.Buffer
		w := NewWriter(&out)
		w.WriteBatch(bt.ID, bt.Chunks)
		w.Flush()
		// Varints may come non-canonical, so compare what the bytes mean.
		again, err := ParseBatch(out.Bytes()[9:])
		if err != nil || !reflect.DeepEqual(again, bt) {
			t.Fatalf("re-encoded batch parses as %+v, %v; want %+v", again, err, bt)
		}
	})
}

func FuzzReader(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(bytes.NewReader(b))
		for i := 0; i < 10; i++ {
			typ, body, err := r.Next()
			if err != nil {
				return
			}
			switch typ {
			case TypeHello:
				ParseHello(body)
			case TypeWelcome:
				ParseWelcome(body)
			case TypeBatch:
				ParseBatch(body)
			case TypeAck:
				ParseAck(body)
			case TypeError:
				ParseError(body)
			}
		}
	})
}
