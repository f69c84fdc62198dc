package serve

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"path"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/kura-dev/kura/ft/record"
)

// Format kinds.
const (
	formatRaw = iota
	formatJSON
	formatTemplate
)

// formatter turns records into output bytes.
type formatter struct {
	kind     int
	ops      []op
	usesTime bool
	layout   string
	loc      *time.Location
}

// op is one piece of a template: a literal (code 0) or a directive.
type op struct {
	code byte
	lit  string
}

// ValidateFormat checks a Format value: "" or "raw", "json", or a template.
//
// A template copies its text to the output and replaces these directives,
// per record (compare K2HFTFUSESVR's FORMAT):
//
//	%H  the writer's host name
//	%P  the writer's process id
//	%p  the writer's thread id (K2HFTFUSE printed "pid/tid" for %P; write
//	    "%P/%p" for its output)
//	%F  the path the record was written to, relative to the sender's mount
//	%f  the file name, the last element of %F
//	%T  the write time, formatted with Options.TimeLayout (a Go time layout,
//	    not strftime) in Options.Location
//	%L  the record's data (a text line without its terminator, or a binary
//	    message)
//	%l  the data with leading and trailing white space trimmed
//	%%  a percent sign
//
// The C escapes \n, \t, \r and \\ are interpreted. Nothing is added after
// the template: a line-per-record template ends with "\n" (for example
// "%T %H %L\n"). Any other directive or escape is an error that names it and
// its byte offset in the template.
func ValidateFormat(f string) error {
	if f == "" || f == "raw" || f == "json" {
		return nil
	}
	_, err := parseTemplate(f)
	return err
}

func parseTemplate(f string) ([]op, error) {
	var ops []op
	var lit []byte
	flush := func() {
		if len(lit) > 0 {
			ops = append(ops, op{lit: string(lit)})
			lit = lit[:0]
		}
	}
	for i := 0; i < len(f); i++ {
		switch ch := f[i]; ch {
		case '\\':
			if i+1 == len(f) {
				return nil, fmt.Errorf("format %q: lone backslash at the end (byte offset %d); write \\\\ for a backslash", f, i)
			}
			switch e := f[i+1]; e {
			case 'n':
				lit = append(lit, '\n')
			case 't':
				lit = append(lit, '\t')
			case 'r':
				lit = append(lit, '\r')
			case '\\':
				lit = append(lit, '\\')
			default:
				r, _ := utf8.DecodeRuneInString(f[i+1:])
				return nil, fmt.Errorf("format %q: unknown escape %q at byte offset %d (known: \\n \\t \\r \\\\)", f, "\\"+string(r), i)
			}
			i++
		case '%':
			if i+1 == len(f) {
				return nil, fmt.Errorf("format %q: lone %% at the end (byte offset %d); write %%%% for a percent sign", f, i)
			}
			switch d := f[i+1]; d {
			case '%':
				lit = append(lit, '%')
			case 'H', 'P', 'p', 'F', 'f', 'T', 'L', 'l':
				flush()
				ops = append(ops, op{code: d})
			default:
				r, _ := utf8.DecodeRuneInString(f[i+1:])
				return nil, fmt.Errorf("format %q: unknown directive %q at byte offset %d (known: %%H %%P %%p %%F %%f %%T %%L %%l %%%%)", f, "%"+string(r), i)
			}
			i++
		default:
			lit = append(lit, ch)
		}
	}
	flush()
	return ops, nil
}

func newFormatter(f, layout string, loc *time.Location) (*formatter, error) {
	fm := &formatter{layout: layout, loc: loc}
	switch f {
	case "", "raw":
		fm.kind = formatRaw
	case "json":
		fm.kind = formatJSON
	default:
		ops, err := parseTemplate(f)
		if err != nil {
			return nil, err
		}
		fm.kind, fm.ops = formatTemplate, ops
		for _, o := range ops {
			if o.code == 'T' {
				fm.usesTime = true
			}
		}
	}
	return fm, nil
}

// chunkText caches what a chunk's records share.
type chunkText struct {
	time   string
	sender string // JSON: the sender id in hex
	host   []byte // JSON: the host as a JSON string
	path   []byte // JSON: the path as a JSON string
	base   string // template: the file name
}

func (f *formatter) prepare(c *record.Chunk, ct *chunkText) {
	switch f.kind {
	case formatJSON:
		ct.time = time.Unix(0, c.Time).UTC().Format(time.RFC3339Nano)
		ct.sender = hex.EncodeToString(c.Sender[:])
		ct.host = appendJSONString(ct.host[:0], []byte(c.Host))
		ct.path = appendJSONString(ct.path[:0], []byte(c.Path))
	case formatTemplate:
		if f.usesTime {
			ct.time = time.Unix(0, c.Time).In(f.loc).Format(f.layout)
		}
		ct.base = path.Base(c.Path)
	}
}

// appendRecord appends record rec (sequence number seq) of chunk c.
func (f *formatter) appendRecord(dst []byte, c *record.Chunk, ct *chunkText, seq uint64, rec []byte) []byte {
	switch f.kind {
	case formatRaw:
		dst = append(dst, rec...)
		if !c.Binary {
			dst = append(dst, '\n')
		}
	case formatJSON:
		dst = append(dst, `{"sender":"`...)
		dst = append(dst, ct.sender...)
		dst = append(dst, `","seq":`...)
		dst = strconv.AppendUint(dst, seq, 10)
		dst = append(dst, `,"time":"`...)
		dst = append(dst, ct.time...)
		dst = append(dst, `","host":`...)
		dst = append(dst, ct.host...)
		dst = append(dst, `,"pid":`...)
		dst = strconv.AppendUint(dst, uint64(c.PID), 10)
		dst = append(dst, `,"tid":`...)
		dst = strconv.AppendUint(dst, uint64(c.TID), 10)
		dst = append(dst, `,"path":`...)
		dst = append(dst, ct.path...)
		dst = append(dst, `,"binary":`...)
		dst = strconv.AppendBool(dst, c.Binary)
		if utf8.Valid(rec) {
			dst = append(dst, `,"data":`...)
			dst = appendJSONString(dst, rec)
		} else {
			dst = append(dst, `,"data_b64":"`...)
			dst = base64.StdEncoding.AppendEncode(dst, rec)
			dst = append(dst, '"')
		}
		dst = append(dst, "}\n"...)
	default:
		for i := range f.ops {
			o := &f.ops[i]
			switch o.code {
			case 0:
				dst = append(dst, o.lit...)
			case 'H':
				dst = append(dst, c.Host...)
			case 'P':
				dst = strconv.AppendUint(dst, uint64(c.PID), 10)
			case 'p':
				dst = strconv.AppendUint(dst, uint64(c.TID), 10)
			case 'F':
				dst = append(dst, c.Path...)
			case 'f':
				dst = append(dst, ct.base...)
			case 'T':
				dst = append(dst, ct.time...)
			case 'L':
				dst = append(dst, rec...)
			case 'l':
				dst = append(dst, bytes.TrimSpace(rec)...)
			}
		}
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, invalid UTF-8 replaced by
// U+FFFD as encoding/json does.
func appendJSONString(dst []byte, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\u202`...)
			dst = append(dst, hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
