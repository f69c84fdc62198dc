package serve

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/kura-dev/kura/ft/record"
)

// outFile is an output file the writer knows.
type outFile struct {
	rel, abs  string
	f         *os.File // nil when not open
	known     bool     // in the state (committed is meaningful)
	committed int64    // length in the committed state
	written   int64    // length after this attempt's writes
	dirty     bool     // may hold bytes past committed that a rollback failed to cut
	created   bool     // created in this attempt
	attempt   uint64   // the attempt that last prepared it
	lastUse   uint64
	buf       []byte
	contrib   []*item // items with bytes in buf or written in this attempt
}

// intent undoes what prepare changed in a file's state entry.
type intent struct {
	of        *outFile
	known     bool
	committed int64
}

// planned is a chunk to write, minus its first skip records.
type planned struct {
	it   *item
	c    *record.Chunk
	skip int
	of   *outFile
}

// attemptError is a failed attempt: culprits are the items to fail, or all
// of the attempted ones if nil.
type attemptError struct {
	err      error
	culprits []*item
}

// writer is the goroutine that owns the output files and the state.
func (s *Server) writer() {
	defer close(s.writerDone)
	var carry []*item
	for {
		group := carry
		if len(group) == 0 {
			select {
			case it := <-s.in:
				group = append(group, it)
			case <-s.stop:
				return
			}
		} else {
			select {
			case <-s.stop:
				return
			default:
			}
		}
		size := 0
		for _, it := range group {
			size += it.size
		}
	collect:
		for len(group) < maxGroupBatches && size < maxGroupBytes {
			select {
			case it := <-s.in:
				group = append(group, it)
				size += it.size
			default:
				break collect
			}
		}
		carry = s.cycle(group)
	}
}

// cycle writes and commits a group; it returns the items it deferred to
// the next cycle (when the group touches too many files).
func (s *Server) cycle(group []*item) []*item {
	s.cycleNo++
	active := make([]*item, 0, len(group))
	for _, it := range group {
		if it.c.failed.Load() {
			it.done <- errSkipped
			continue
		}
		active = append(active, it)
	}
	var carry []*item
	for len(active) > 0 {
		n, aerr := s.attempt(active)
		if aerr == nil {
			for _, it := range active[:n] {
				it.done <- nil
			}
			carry = active[n:]
			break
		}
		s.stats.errs.Add(1)
		culprits := aerr.culprits
		if len(culprits) == 0 || isGlobal(aerr.err) {
			culprits = active[:n]
		}
		active = s.failItems(active, culprits, aerr.err)
	}
	s.afterCycle()
	return carry
}

// failItems fails the culprits' connections, and any connection in active
// that carries one of their sender ids (so no later record of a sender is
// written before an earlier one that failed), answering all their items
// with the error; it returns the items left to retry.
func (s *Server) failItems(active []*item, culprits []*item, err error) []*item {
	msg := errMessage(err)
	conns := map[*conn]bool{}
	senders := map[record.SenderID]bool{}
	addItem := func(it *item) {
		conns[it.c] = true
		for i := range it.batch.Chunks {
			senders[it.batch.Chunks[i].Sender] = true
		}
	}
	for _, it := range culprits {
		addItem(it)
	}
	for changed := true; changed; {
		changed = false
		for _, it := range active {
			if conns[it.c] {
				if !sendersOf(it, senders) {
					addItem(it)
					changed = true
				}
				continue
			}
			for i := range it.batch.Chunks {
				if senders[it.batch.Chunks[i].Sender] {
					addItem(it)
					changed = true
					break
				}
			}
		}
	}
	rest := active[:0:0]
	for c := range conns {
		c.failed.Store(true)
		c.log.Error("serve: write failed; not acknowledging, closing the connection (the sender will resend)", "err", err)
	}
	for _, it := range active {
		if conns[it.c] {
			it.done <- &batchError{msg}
			continue
		}
		rest = append(rest, it)
	}
	return rest
}

// sendersOf reports whether all of it's sender ids are in set.
func sendersOf(it *item, set map[record.SenderID]bool) bool {
	for i := range it.batch.Chunks {
		if !set[it.batch.Chunks[i].Sender] {
			return false
		}
	}
	return true
}

// attempt writes and commits items (all, or a prefix of n of them when they
// touch many files). On error every touched file is back at its committed
// length and the state is unchanged.
func (s *Server) attempt(items []*item) (n int, aerr *attemptError) {
	s.attemptNo++
	var (
		over    = map[record.SenderID]uint64{}
		touched []*outFile
		intents []intent
		plan    []planned
		dirs    = map[string]bool{}
		dups    uint64
	)
	undo := func() {
		for i := len(intents) - 1; i >= 0; i-- {
			in := intents[i]
			in.of.known, in.of.committed = in.known, in.committed
		}
	}

	// 1, 2: dedupe and prepare the files.
	n = len(items)
	for idx, it := range items {
		if idx > 0 && len(touched) >= s.maxOpen {
			n = idx
			break
		}
		for ci := range it.batch.Chunks {
			c := &it.batch.Chunks[ci]
			hi, ok := over[c.Sender]
			if !ok {
				hi = s.seqs[c.Sender]
			}
			last := c.LastSeq()
			if last <= hi {
				dups += uint64(len(c.Records))
				continue
			}
			skip := 0
			if c.FirstSeq <= hi {
				skip = int(hi - c.FirstSeq + 1)
				dups += uint64(skip)
			} else if hi != 0 && c.FirstSeq > hi+1 {
				it.c.log.Debug("serve: sequence gap", "chunk_sender", c.Sender.String(), "after", hi, "next", c.FirstSeq)
			}
			over[c.Sender] = last
			of := s.file(s.outRel(c))
			if of.attempt != s.attemptNo {
				of.attempt = s.attemptNo
				of.contrib = of.contrib[:0]
				of.created = false
				touched = append(touched, of)
				if err := s.prepare(of, &intents, dirs); err != nil {
					s.rollback(touched)
					undo()
					return idx + 1, &attemptError{err: err, culprits: []*item{it}}
				}
			}
			plan = append(plan, planned{it: it, c: c, skip: skip, of: of})
		}
	}
	if len(intents) > 0 {
		renamed, err := s.writeState(s.encodeState(s.stateBuf[:0], nil, false))
		if err != nil && !renamed {
			s.rollback(touched)
			undo()
			return n, &attemptError{err: err}
		}
		if err != nil {
			s.rollback(touched)
			return n, &attemptError{err: err}
		}
	}

	// 3: append.
	var records, written uint64
	var ct chunkText
	for i := range plan {
		p := &plan[i]
		of := p.of
		s.fm.prepare(p.c, &ct)
		for ri := p.skip; ri < len(p.c.Records); ri++ {
			of.buf = s.fm.appendRecord(of.buf, p.c, &ct, p.c.FirstSeq+uint64(ri), p.c.Records[ri])
		}
		records += uint64(len(p.c.Records) - p.skip)
		if k := len(of.contrib); k == 0 || of.contrib[k-1] != p.it {
			of.contrib = append(of.contrib, p.it)
		}
		if len(of.buf) >= flushThreshold {
			if err := s.flush(of); err != nil {
				culprits := slices.Clone(of.contrib)
				s.rollback(touched)
				return n, &attemptError{err: err, culprits: culprits}
			}
		}
	}
	for _, of := range touched {
		if err := s.flush(of); err != nil {
			culprits := slices.Clone(of.contrib)
			s.rollback(touched)
			return n, &attemptError{err: err, culprits: culprits}
		}
		written += uint64(of.written - of.committed)
	}

	// 4: fsync files and the directories of created entries.
	if !s.opts.NoSync {
		for _, of := range touched {
			if of.written == of.committed && !of.created {
				continue
			}
			if err := of.f.Sync(); err != nil {
				culprits := slices.Clone(of.contrib)
				s.rollback(touched)
				return n, &attemptError{err: fmt.Errorf("fsync %s: %w", of.rel, err), culprits: culprits}
			}
		}
		for d := range dirs {
			if err := syncDir(d); err != nil {
				s.rollback(touched)
				return n, &attemptError{err: fmt.Errorf("fsync %s: %w", d, err)}
			}
		}
	}

	// 5: commit.
	s.stateBuf = s.encodeState(s.stateBuf[:0], over, true)
	renamed, err := s.writeState(s.stateBuf)
	if err != nil && !renamed {
		s.rollback(touched)
		return n, &attemptError{err: err}
	}
	// The new state is in place (even if syncing its directory failed,
	// either state on disk matches the files, which are synced).
	for id, seq := range over {
		s.seqs[id] = seq
	}
	for _, of := range touched {
		of.committed = of.written
		of.contrib = of.contrib[:0]
	}
	if err != nil {
		return n, &attemptError{err: err}
	}
	s.stats.batches.Add(uint64(n))
	s.stats.records.Add(records)
	s.stats.dups.Add(dups)
	s.stats.bytes.Add(written)
	return n, nil
}

// file returns the writer's entry for an output file.
func (s *Server) file(rel string) *outFile {
	of := s.files[rel]
	if of == nil {
		of = &outFile{rel: rel, abs: filepath.Join(s.outDir, filepath.FromSlash(rel))}
		s.files[rel] = of
	}
	return of
}

// prepare makes of ready for appending in this attempt: cuts a tail a
// failed rollback left, notices rotation, opens the file, and when its size
// is not its committed length (new, rotated, changed by someone else)
// records an intent to commit its current size before writing.
func (s *Server) prepare(of *outFile, intents *[]intent, dirs map[string]bool) error {
	s.tick++
	of.lastUse = s.tick
	if of.dirty {
		if err := s.truncate(of); err != nil {
			return err
		}
	}
	prevKnown, prevCommitted := of.known, of.committed
	fi, err := os.Stat(of.abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if of.f != nil {
			s.closeFile(of)
		}
		if of.known {
			s.log.Info("serve: output file gone (rotated?); starting it anew", "file", of.rel)
			of.known = false
		}
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s: not a regular file", of.rel)
	case of.f != nil:
		if ofi, err := of.f.Stat(); err != nil || !os.SameFile(ofi, fi) {
			s.log.Info("serve: output file replaced (rotated?); reopening", "file", of.rel)
			s.closeFile(of)
		}
	}
	if of.f == nil {
		if err := s.openFile(of, dirs); err != nil {
			return err
		}
	}
	fi, err = of.f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if of.known && size != of.committed {
		if size < of.committed {
			s.log.Info("serve: output file shorter than its committed length (rotated or truncated); continuing from its size", "file", of.rel, "size", size, "committed", of.committed)
		} else {
			s.log.Warn("serve: output file longer than its committed length (written by someone else?); continuing from its size", "file", of.rel, "size", size, "committed", of.committed)
		}
	}
	if !of.known || size != of.committed {
		of.known, of.committed = true, size
	}
	if of.known != prevKnown || of.committed != prevCommitted {
		*intents = append(*intents, intent{of: of, known: prevKnown, committed: prevCommitted})
	}
	of.written = size
	return nil
}

// openFile opens (creating it and its directories if need be) of for
// appending, noting created entries' directories in dirs.
func (s *Server) openFile(of *outFile, dirs map[string]bool) error {
	for try := 0; ; try++ {
		f, err := os.OpenFile(of.abs, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			of.created = true
			dirs[filepath.Dir(of.abs)] = true
			s.noteOpen(of, f)
			return nil
		}
		if errors.Is(err, fs.ErrExist) {
			f, err = os.OpenFile(of.abs, os.O_WRONLY|os.O_APPEND, 0)
			if err == nil {
				s.noteOpen(of, f)
				return nil
			}
		}
		if !errors.Is(err, fs.ErrNotExist) || try > 0 {
			return err
		}
		if err := s.mkdirs(path.Dir(of.rel), dirs); err != nil {
			return err
		}
	}
}

// mkdirs creates the missing directories of rel (relative to OutDir).
func (s *Server) mkdirs(rel string, dirs map[string]bool) error {
	if rel == "." {
		return nil
	}
	cur := s.outDir
	for c := range strings.SplitSeq(rel, "/") {
		next := filepath.Join(cur, c)
		err := os.Mkdir(next, 0o755)
		if err == nil {
			dirs[cur] = true
		} else if !errors.Is(err, fs.ErrExist) {
			return err
		}
		cur = next
	}
	return nil
}

// noteOpen records of's new descriptor, closing the least recently used
// other one when too many are open.
func (s *Server) noteOpen(of *outFile, f *os.File) {
	of.f = f
	s.open[of] = struct{}{}
	for len(s.open) > s.maxOpen {
		var lru *outFile
		for o := range s.open {
			if o.attempt == s.attemptNo || o.dirty {
				continue
			}
			if lru == nil || o.lastUse < lru.lastUse {
				lru = o
			}
		}
		if lru == nil {
			break
		}
		s.closeFile(lru)
	}
}

func (s *Server) closeFile(of *outFile) {
	if of.f == nil {
		return
	}
	if err := of.f.Close(); err != nil {
		s.log.Warn("serve: close output file", "file", of.rel, "err", err)
	}
	of.f = nil
	delete(s.open, of)
}

// flush writes of's buffer.
func (s *Server) flush(of *outFile) error {
	if len(of.buf) == 0 {
		return nil
	}
	k, err := of.f.Write(of.buf)
	of.written += int64(k)
	of.buf = of.buf[:0]
	if err != nil {
		return fmt.Errorf("write %s: %w", of.rel, err)
	}
	return nil
}

// rollback cuts every touched file back to its committed length.
func (s *Server) rollback(touched []*outFile) {
	for _, of := range touched {
		of.buf = of.buf[:0]
		of.contrib = of.contrib[:0]
		if of.written != of.committed || of.dirty {
			of.dirty = true
			if err := s.truncate(of); err != nil {
				s.log.Error("serve: cutting an output file back to its committed length failed; will retry before writing to it again", "file", of.rel, "err", err)
			}
		}
	}
}

// truncate cuts of back to its committed length.
func (s *Server) truncate(of *outFile) error {
	var err error
	if of.f != nil {
		err = of.f.Truncate(of.committed)
	} else {
		err = os.Truncate(of.abs, of.committed)
	}
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("truncate %s: %w", of.rel, err)
	}
	of.dirty = false
	of.written = of.committed
	return nil
}

// afterCycle trims buffers, open descriptors and the state's file list.
func (s *Server) afterCycle() {
	var dirty []*outFile
	for _, of := range s.files {
		if cap(of.buf) > flushThreshold*2 {
			of.buf = nil
		}
		if of.dirty && of.attempt != s.attemptNo {
			dirty = append(dirty, of)
		}
	}
	for _, of := range dirty {
		if err := s.truncate(of); err != nil {
			s.log.Error("serve: cutting an output file back to its committed length failed again", "file", of.rel, "err", err)
		}
	}
	known := 0
	for _, of := range s.files {
		if of.known {
			known++
		}
	}
	if known > maxKnownFiles {
		var old []*outFile
		for _, of := range s.files {
			if of.attempt != s.attemptNo && !of.dirty {
				old = append(old, of)
			}
		}
		slices.SortFunc(old, func(a, b *outFile) int {
			switch {
			case a.lastUse < b.lastUse:
				return -1
			case a.lastUse > b.lastUse:
				return 1
			}
			return 0
		})
		for _, of := range old {
			if known <= maxKnownFiles*3/4 {
				break
			}
			s.closeFile(of)
			delete(s.files, of.rel)
			if of.known {
				known--
			}
		}
	}
	for rel, of := range s.files {
		if !of.known && of.f == nil && !of.dirty {
			delete(s.files, rel)
		}
	}
	s.updateGauges()
}

// isDiskFull reports whether err is ENOSPC or EDQUOT.
func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// isGlobal reports whether err is about the file system rather than one
// file (so every batch of the attempt fails, not only the culprits).
func isGlobal(err error) bool {
	return isDiskFull(err) || errors.Is(err, syscall.EIO) || errors.Is(err, syscall.EROFS)
}
