package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kura-dev/kura/ft/mount"
	"github.com/kura-dev/kura/ft/queue"
	"github.com/kura-dev/kura/ft/record"
	"github.com/kura-dev/kura/ft/ship"
)

// SendOptions configure SendFiles.
type SendOptions struct {
	To       string
	TLS      *tls.Config
	Base     string // paths are sent relative to Base (default: each file's own directory)
	Binary   bool   // send each file as binary messages instead of lines
	Host     string // default os.Hostname()
	StateDir string // where the temporary queue lives (default: a new temp dir, removed afterwards)
	Progress io.Writer
	Logger   *slog.Logger
}

// SendResult says what SendFiles delivered.
type SendResult struct {
	Files   int
	Records uint64
	Bytes   int64
	Sender  record.SenderID
}

// SendFiles ships files as records, the way the mount would have: text
// files line by line (a last line without a newline goes too), binary files
// in 80 KiB messages. It returns once the receiver acknowledged every
// record, or with an error (nothing is delivered twice within one call; a
// second call for the same files sends them again under a new sender id).
func SendFiles(ctx context.Context, files []string, opts SendOptions) (SendResult, error) {
	var res SendResult
	if opts.To == "" {
		return res, errors.New("ft send: no receiver address (--to HOST:PORT)")
	}
	if len(files) == 0 {
		return res, errors.New("ft send: no files given")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Host == "" {
		h, err := os.Hostname()
		if err != nil {
			return res, fmt.Errorf("host name: %w", err)
		}
		opts.Host = h
	}
	rels := make([]string, len(files))
	for i, f := range files {
		rel, err := relPath(opts.Base, f)
		if err != nil {
			return res, err
		}
		rels[i] = rel
	}
	if opts.StateDir == "" {
		tmp, err := os.MkdirTemp("", "kura-ft-send-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(tmp)
		opts.StateDir = tmp
	}
	sender, err := record.NewSenderID()
	if err != nil {
		return res, err
	}
	res.Sender = sender
	q, err := queue.Open(queue.Options{Dir: filepath.Join(opts.StateDir, "queue"), Sync: queue.SyncNever, MaxBytes: 256 << 20, Logger: opts.Logger})
	if err != nil {
		return res, fmt.Errorf("ft send: %w", err)
	}
	defer q.Close()
	sh, err := ship.New(ship.Options{Addr: opts.To, TLS: opts.TLS, Sender: sender, Host: opts.Host, Queue: q, Logger: opts.Logger})
	if err != nil {
		return res, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	shipped := make(chan struct{})
	go func() {
		defer close(shipped)
		sh.Run(ctx)
	}()
	defer func() { cancel(); <-shipped }()

	sink := &QueueSink{Queue: q, Sender: sender, Host: opts.Host}
	for i, f := range files {
		n, b, err := sendFile(ctx, sink, f, rels[i], opts.Binary)
		if err != nil {
			return res, err
		}
		res.Files++
		res.Records += n
		res.Bytes += b
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "queued %s: %d records, %d bytes\n", f, n, b)
		}
	}
	last := q.Stats().LastSeq
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	reported := time.Now()
	for {
		st := q.Stats()
		if st.AckedSeq >= last {
			return res, nil
		}
		if opts.Progress != nil && time.Since(reported) > 2*time.Second {
			reported = time.Now()
			ss := sh.Stats()
			fmt.Fprintf(opts.Progress, "delivered %d of %d records (connected: %t%s)\n", st.AckedSeq, last, ss.Connected, lastErr(ss))
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("ft send: stopped with %d of %d records acknowledged: %w", st.AckedSeq, last, ctx.Err())
		case <-tick.C:
		}
	}
}

func lastErr(s ship.Stats) string {
	if s.LastError == "" || s.Connected {
		return ""
	}
	return "; last error: " + s.LastError
}

func relPath(base, file string) (string, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", err
	}
	if base == "" {
		return filepath.Base(abs), nil
	}
	b, err := filepath.Abs(base)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(b, abs)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return "", fmt.Errorf("ft send: %s is not under --base %s", file, base)
	}
	return filepath.ToSlash(rel), nil
}

// sendFile queues one file's records, in writes of up to 1 MiB like `cat`.
func sendFile(ctx context.Context, sink *QueueSink, file, rel string, binary bool) (uint64, int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, 0, fmt.Errorf("ft send: %w", err)
	}
	defer f.Close()
	sp := record.Splitter{Binary: binary}
	buf := make([]byte, 1<<20)
	pid := uint32(os.Getpid())
	var records uint64
	var size int64
	for {
		n, rerr := f.Read(buf)
		if n > 0 {
			size += int64(n)
			recs := sp.Write(buf[:n], nil)
			if err := sink.Emit(ctx, mount.Write{Path: rel, PID: pid, TID: pid, Time: time.Now().UnixNano(), Binary: binary, Records: recs}); err != nil {
				return records, size, err
			}
			records += uint64(len(recs))
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return records, size, fmt.Errorf("ft send: read %s: %w", file, rerr)
		}
	}
	if recs := sp.Flush(nil); len(recs) > 0 {
		if err := sink.Emit(ctx, mount.Write{Path: rel, PID: pid, TID: pid, Time: time.Now().UnixNano(), Records: recs}); err != nil {
			return records, size, err
		}
		records += uint64(len(recs))
	}
	return records, size, nil
}
