package serve

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kura-dev/kura/ft/record"
)

const (
	stateDirName  = ".kura-serve"
	stateFileName = "state"
	stateTmpName  = "state.tmp"
	lockFileName  = "lock"
	stateMagic    = "KURASRV\x01"
	maxComponent  = 255
	maxPathLen    = 4096
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// diskState is the decoded state file.
type diskState struct {
	seqs  map[record.SenderID]uint64
	files map[string]int64
}

// The state file:
//
//	magic(8) uvarint(nSenders) { sender(16) uvarint(seq) }
//	uvarint(nFiles) { uvarint(len) path uvarint(length) } crc32c(4 LE, of all before)
func decodeState(b []byte) (diskState, error) {
	st := diskState{seqs: map[record.SenderID]uint64{}, files: map[string]int64{}}
	if len(b) < len(stateMagic)+4 || string(b[:len(stateMagic)]) != stateMagic {
		return st, errors.New("not a kura serve state file")
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return st, errors.New("state file checksum mismatch")
	}
	rest := body[len(stateMagic):]
	uv := func(what string) (uint64, error) {
		v, k := binary.Uvarint(rest)
		if k <= 0 {
			return 0, fmt.Errorf("state file: bad %s", what)
		}
		rest = rest[k:]
		return v, nil
	}
	n, err := uv("sender count")
	if err != nil {
		return st, err
	}
	for i := uint64(0); i < n; i++ {
		if len(rest) < 16 {
			return st, errors.New("state file: truncated sender")
		}
		var id record.SenderID
		copy(id[:], rest)
		rest = rest[16:]
		seq, err := uv("sender seq")
		if err != nil {
			return st, err
		}
		st.seqs[id] = seq
	}
	if n, err = uv("file count"); err != nil {
		return st, err
	}
	for i := uint64(0); i < n; i++ {
		l, err := uv("path length")
		if err != nil {
			return st, err
		}
		if l > uint64(len(rest)) {
			return st, errors.New("state file: truncated path")
		}
		p := string(rest[:l])
		rest = rest[l:]
		if err := checkRelPath(p); err != nil || inStateDir(p) {
			return st, fmt.Errorf("state file: bad path %q", p)
		}
		length, err := uv("file length")
		if err != nil {
			return st, err
		}
		if length > 1<<62 {
			return st, fmt.Errorf("state file: bad length for %q", p)
		}
		st.files[p] = int64(length)
	}
	if len(rest) != 0 {
		return st, errors.New("state file: trailing bytes")
	}
	return st, nil
}

// loadState reads the state file; a missing one is an empty state.
func loadState(dir string) (diskState, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return diskState{seqs: map[record.SenderID]uint64{}, files: map[string]int64{}}, nil
	}
	if err != nil {
		return diskState{}, err
	}
	st, err := decodeState(b)
	if err != nil {
		return st, fmt.Errorf("%s: %w (refusing to start without the dedupe state; move it away to start afresh, accepting duplicates)", filepath.Join(dir, stateFileName), err)
	}
	return st, nil
}

// encodeState appends the state: seqs overlaid by over, and every known
// file with its committed length, or its written length if final and it was
// prepared in the current attempt.
func (s *Server) encodeState(dst []byte, over map[record.SenderID]uint64, final bool) []byte {
	dst = append(dst, stateMagic...)
	n := len(s.seqs)
	for id := range over {
		if _, ok := s.seqs[id]; !ok {
			n++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	for id, seq := range s.seqs {
		if v, ok := over[id]; ok {
			seq = v
		}
		dst = append(dst, id[:]...)
		dst = binary.AppendUvarint(dst, seq)
	}
	for id, seq := range over {
		if _, ok := s.seqs[id]; !ok {
			dst = append(dst, id[:]...)
			dst = binary.AppendUvarint(dst, seq)
		}
	}
	n = 0
	for _, of := range s.files {
		if of.known {
			n++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	for rel, of := range s.files {
		if !of.known {
			continue
		}
		length := of.committed
		if final && of.attempt == s.attemptNo {
			length = of.written
		}
		dst = binary.AppendUvarint(dst, uint64(len(rel)))
		dst = append(dst, rel...)
		dst = binary.AppendUvarint(dst, uint64(length))
	}
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst, castagnoli))
}

// writeState durably replaces the state file with b. renamed reports whether
// the new state replaced the old one (an error after the rename, from
// syncing the directory, leaves it in place).
func (s *Server) writeState(b []byte) (renamed bool, err error) {
	if s.failCommit != nil {
		if err := s.failCommit(); err != nil {
			return false, err
		}
	}
	tmp := filepath.Join(s.stateDir, stateTmpName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return false, fmt.Errorf("state: %w", err)
	}
	_, err = f.Write(b)
	if err == nil && !s.opts.NoSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.stateDir, stateFileName)); err != nil {
		return false, fmt.Errorf("state: %w", err)
	}
	if !s.opts.NoSync {
		if err := s.stateDirF.Sync(); err != nil {
			return true, fmt.Errorf("state: sync directory: %w", err)
		}
	}
	s.stats.commits.Add(1)
	return true, nil
}

// checkRelPath checks a record path (or a state path): a relative slash
// path of non-empty components other than "." and "..", without NUL.
func checkRelPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case len(p) > maxPathLen:
		return fmt.Errorf("path longer than %d bytes", maxPathLen)
	case strings.IndexByte(p, 0) >= 0:
		return errors.New("path contains NUL")
	case p[0] == '/':
		return errors.New("absolute path")
	}
	for c := range strings.SplitSeq(p, "/") {
		switch {
		case c == "":
			return errors.New("empty path component")
		case c == "..":
			return errors.New(`".." path component`)
		case c == ".":
			return errors.New(`"." path component`)
		case len(c) > maxComponent:
			return fmt.Errorf("path component longer than %d bytes", maxComponent)
		}
	}
	return nil
}

// inStateDir reports whether the relative path p is in the state directory.
func inStateDir(p string) bool {
	return p == stateDirName || strings.HasPrefix(p, stateDirName+"/")
}

// sanitizeHost turns a host name into one path component: "/" and NUL
// become "_", an empty name becomes "_", and ".", ".." or a name starting
// with ".kura-serve" get a "_" prefix; a name longer than 255 bytes is cut.
func sanitizeHost(h string) string {
	h = strings.Map(func(r rune) rune {
		if r == '/' || r == 0 {
			return '_'
		}
		return r
	}, h)
	switch {
	case h == "":
		return "_"
	case h == "." || h == ".." || strings.HasPrefix(h, stateDirName):
		h = "_" + h
	}
	if len(h) > maxComponent {
		h = h[:maxComponent]
	}
	return h
}
