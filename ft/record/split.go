package record

import "bytes"

// Splitter cuts the bytes written to one open file into records.
//
// Text mode: a record ends at "\n", "\r\n" or "\r"; the terminator is not
// part of the record. A partial last line waits in the splitter for its end
// or for Flush (close, fsync, flush), and then goes as it is. A line longer
// than MaxLine is split into MaxLine-sized records (OverLong = Split) or
// dropped whole (OverLong = Drop); either way it is counted.
//
// Binary mode: every Write is one message, cut into MaxLine-sized pieces
// when longer.
type Splitter struct {
	Binary   bool
	MaxLine  int // default 64 KiB in text mode, 80 KiB in binary mode
	OverLong OverLongPolicy

	partial []byte
	afterCR bool // the last byte seen was '\r': a following '\n' belongs to it
	drop    bool // dropping the rest of an over-long line

	// Split and Dropped count over-long lines split and dropped.
	Split, Dropped uint64
}

// OverLongPolicy says what happens to a line longer than MaxLine.
type OverLongPolicy int

// Over-long line policies.
const (
	SplitOverLong OverLongPolicy = iota // cut it into MaxLine-sized records
	DropOverLong                        // drop it whole
)

// Defaults for MaxLine.
const (
	DefaultMaxLine    = 64 << 10
	DefaultMaxMessage = 80 << 10 // K2HFTFUSE's binary chunk size
)

func (s *Splitter) max() int {
	if s.MaxLine > 0 {
		return s.MaxLine
	}
	if s.Binary {
		return DefaultMaxMessage
	}
	return DefaultMaxLine
}

// Write feeds data and appends the records it completes to recs, which it
// returns. Records that alias data are valid until data is reused; records
// built from the partial buffer are private copies.
func (s *Splitter) Write(data []byte, recs [][]byte) [][]byte {
	max := s.max()
	if s.Binary {
		for len(data) > max {
			recs = append(recs, data[:max])
			data = data[max:]
		}
		if len(data) > 0 {
			recs = append(recs, data)
		}
		return recs
	}
	for len(data) > 0 {
		if s.afterCR {
			s.afterCR = false
			if data[0] == '\n' {
				data = data[1:]
				continue
			}
		}
		i := indexEOL(data)
		if i < 0 {
			s.addPartial(data, max, &recs)
			return recs
		}
		line := data[:i]
		if data[i] == '\r' {
			s.afterCR = true
		}
		data = data[i+1:]
		if len(s.partial) == 0 && !s.drop {
			recs = s.emit(line, max, recs)
			continue
		}
		s.addPartial(line, max, &recs)
		if !s.drop {
			recs = s.emit(s.partial, max, recs)
		}
		s.partial, s.drop = nil, false
	}
	return recs
}

// addPartial keeps b as the start of an unfinished line, handling lines
// that grow past max.
func (s *Splitter) addPartial(b []byte, max int, recs *[][]byte) {
	if s.drop {
		return
	}
	if len(s.partial)+len(b) <= max {
		s.partial = append(s.partial, b...)
		return
	}
	if s.OverLong == DropOverLong {
		s.Dropped++
		s.partial, s.drop = nil, true
		return
	}
	s.Split++
	s.partial = append(s.partial, b...)
	for len(s.partial) > max {
		*recs = append(*recs, s.partial[:max:max])
		s.partial = append([]byte(nil), s.partial[max:]...)
	}
}

// emit appends a complete line, splitting or dropping it when too long.
func (s *Splitter) emit(line []byte, max int, recs [][]byte) [][]byte {
	if len(line) <= max {
		return append(recs, line)
	}
	if s.OverLong == DropOverLong {
		s.Dropped++
		return recs
	}
	s.Split++
	for len(line) > max {
		recs = append(recs, line[:max:max])
		line = line[max:]
	}
	return append(recs, line)
}

// Flush appends the partial last line, if any, as a record.
func (s *Splitter) Flush(recs [][]byte) [][]byte {
	if len(s.partial) > 0 && !s.drop {
		recs = append(recs, s.partial)
	}
	s.partial, s.drop = nil, false
	return recs
}

// Pending returns how many bytes wait for the end of their line.
func (s *Splitter) Pending() int { return len(s.partial) }

// indexEOL returns the index of the first '\n' or '\r' in b, or -1, with
// two vectorised scans instead of a byte loop.
func indexEOL(b []byte) int {
	n := bytes.IndexByte(b, '\n')
	limit := b
	if n >= 0 {
		limit = b[:n]
	}
	if r := bytes.IndexByte(limit, '\r'); r >= 0 {
		return r
	}
	return n
}
