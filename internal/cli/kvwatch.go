package cli

// The cluster side of 'kura kv watch': printing the change stream of every
// shard, and feeding it to a plugin with durable per-shard cursors. Both
// survive the death of the node serving the stream (client.Follow).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kura-dev/kura/kv/client"
	"github.com/kura-dev/kura/plugin"
	"github.com/kura-dev/kura/proto/kvpb"
)

// defaultCursorFile is where a cluster plugin's cursors go without
// --cursor-file (relative to the working directory).
const defaultCursorFile = "kura-watch.cursor"

// clusterWatchArgs are the watch command's flags in cluster mode.
type clusterWatchArgs struct {
	prefix, after string
	fromOldest    bool
	plugin        string
	cursorFile    string
}

// parseAfter parses --after SHARD:SEQ,...
func parseAfter(s string) (map[uint32]uint64, error) {
	if s == "" {
		return nil, nil
	}
	out := map[uint32]uint64{}
	for _, part := range strings.Split(s, ",") {
		sh, seq, err := parseShardSeq(part)
		if err != nil {
			return nil, usagef("--after %q: want SHARD:SEQ,... (e.g. 1:120,2:98)", part)
		}
		out[sh] = seq
	}
	return out, nil
}

// parseShardSeq parses SHARD:SEQ (shards count from 1).
func parseShardSeq(s string) (uint32, uint64, error) {
	sh, seq, ok := strings.Cut(strings.TrimSpace(s), ":")
	a, err1 := strconv.ParseUint(strings.TrimSpace(sh), 10, 32)
	b, err2 := strconv.ParseUint(strings.TrimSpace(seq), 10, 64)
	if !ok || err1 != nil || err2 != nil || a == 0 {
		return 0, 0, errors.New("want SHARD:SEQ")
	}
	return uint32(a), b, nil
}

// eventLine is the JSON line of an event: the change's JSON with its shard.
func eventLine(ev *kvpb.Event) []byte {
	js := bytes.TrimRight(ev.Json, " \r\n")
	js = bytes.TrimSuffix(js, []byte("}"))
	line := make([]byte, 0, len(js)+24)
	line = append(line, js...)
	if len(js) > 1 {
		line = append(line, ',')
	}
	line = append(line, `"shard":`...)
	line = strconv.AppendUint(line, uint64(ev.Shard), 10)
	return append(line, '}')
}

func watchLogger(e *env) *slog.Logger {
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// clusterWatch prints a cluster's change stream as JSON lines, each with its
// shard, until interrupted, or feeds it to a plugin. A stream that breaks is
// reopened on another node, resuming after the last event printed.
func clusterWatch(ctx context.Context, e *env, f *kvFlags, a clusterWatchArgs) error {
	am, err := parseAfter(a.after)
	if err != nil {
		return err
	}
	if a.plugin != "" {
		return clusterWatchPlugin(ctx, e, f, a, am)
	}
	if a.cursorFile != "" {
		return usagef("kv watch: --cursor-file records a plugin's progress and needs --plugin; to resume printing, use --after SHARD:SEQ,...")
	}
	cl, err := f.openCluster()
	if err != nil {
		return err
	}
	defer cl.Close()
	log := watchLogger(e)
	broken := false
	w := bufio.NewWriter(e.stdout)
	err = cl.Follow(ctx, client.FollowConfig{
		Prefix: []byte(a.prefix), After: am, FromOldest: a.fromOldest,
		OnOpen: func(ep string) {
			if broken {
				log.Info("watch resumed", "endpoint", ep)
			}
			log.Info("watch stream opened", "endpoint", ep)
		},
		OnBreak: func(ep string, err error, wait time.Duration) {
			broken = true
			log.Warn("watch stream failed; reopening", "endpoint", ep, "err", err, "wait", wait)
		},
	}, func(ev *kvpb.Event) error {
		w.Write(eventLine(ev))
		w.WriteByte('\n')
		return w.Flush()
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// clusterWatchPlugin feeds the stream to a plugin, keeping in a cursor file
// the last sequence of each shard the plugin has taken.
func clusterWatchPlugin(ctx context.Context, e *env, f *kvFlags, a clusterWatchArgs, am map[uint32]uint64) error {
	path := a.cursorFile
	if path == "" {
		path = defaultCursorFile
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	log := watchLogger(e)
	r, err := plugin.New(plugin.Config{Command: a.plugin, Stdout: e.stdout, Stderr: e.stderr, Logger: log})
	if err != nil {
		return usageError{err}
	}
	unlock, err := lockCursorFile(path)
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := readCursorFile(path)
	if err != nil {
		return err
	}
	for sh, seq := range am {
		if _, ok := cur[sh]; !ok {
			cur[sh] = seq // --after seeds the shards the file does not have
		}
	}
	if err := writeCursorFile(path, cur); err != nil {
		return err
	}
	cl, err := f.openCluster()
	if err != nil {
		return err
	}
	defer cl.Close()
	log.Info("watch feeding plugin", "plugin", a.plugin, "cursor_file", path, "resume_after", formatCursors(cur))

	fctx, cancel := context.WithCancel(ctx)
	feed := newClusterFeed(cur)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		feed.follow(fctx, cl, client.FollowConfig{
			Prefix: []byte(a.prefix), After: cur, FromOldest: true,
			OnOpen: func(ep string) { log.Info("watch stream opened", "endpoint", ep) },
			OnBreak: func(ep string, err error, wait time.Duration) {
				log.Warn("watch stream failed; reopening", "endpoint", ep, "err", err, "wait", wait)
			},
		})
	}()
	err = r.Run(ctx, feed, 0, func(n uint64) error { return writeCursorFile(path, feed.consumed(n)) })
	cancel()
	wg.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	st := r.Stats()
	log.Info("watch stopped", "taken", st.Taken, "written", st.Written, "restarts", st.Restarts,
		"cursor_file", path, "cursors", formatCursors(feed.consumed(0)))
	return err
}

// clusterFeed turns the cluster's per-shard streams into the single
// sequence the plugin runner wants: every event received gets the next
// local sequence number, and is kept until the runner commits it (a
// restarted plugin is fed again from the first record it had not taken).
// A commit of local N means the plugin took every event up to N, which
// advances each shard's cursor to the last of its events among them.
type clusterFeed struct {
	events chan *kvpb.Event
	done   chan struct{} // closed when follow returned
	ferr   error         // follow's error, set before done is closed

	mu   sync.Mutex
	recs []feedRec // handed to the runner and not committed; local seqs consecutive
	last uint64    // local seq of the last record handed out
	cur  map[uint32]uint64
}

type feedRec struct {
	local uint64
	shard uint32
	seq   uint64
	line  []byte
}

func newClusterFeed(cur map[uint32]uint64) *clusterFeed {
	c := make(map[uint32]uint64, len(cur))
	for sh, seq := range cur {
		c[sh] = seq
	}
	return &clusterFeed{events: make(chan *kvpb.Event, 256), done: make(chan struct{}), cur: c}
}

// follow receives the stream into f.events until ctx ends or it fails.
func (f *clusterFeed) follow(ctx context.Context, cl *client.Client, cfg client.FollowConfig) {
	f.ferr = cl.Follow(ctx, cfg, func(ev *kvpb.Event) error {
		select {
		case f.events <- ev:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if f.ferr == nil {
		f.ferr = errors.New("watch ended")
	}
	close(f.done)
}

// Next implements plugin.Feed.
func (f *clusterFeed) Next(ctx context.Context, after uint64) (plugin.Record, error) {
	f.mu.Lock()
	if after < f.last {
		if len(f.recs) == 0 || after+1 < f.recs[0].local {
			f.mu.Unlock()
			return plugin.Record{}, fmt.Errorf("watch feed: record %d was committed already", after+1)
		}
		r := f.recs[after+1-f.recs[0].local]
		f.mu.Unlock()
		return plugin.Record{Seq: r.local, Line: r.line}, nil
	}
	if after > f.last {
		f.mu.Unlock()
		return plugin.Record{}, fmt.Errorf("watch feed: asked for records after %d, only %d exist", after, f.last)
	}
	f.mu.Unlock()
	select {
	case ev := <-f.events:
		f.mu.Lock()
		defer f.mu.Unlock()
		f.last++
		r := feedRec{local: f.last, shard: ev.Shard, seq: ev.Seq, line: eventLine(ev)}
		f.recs = append(f.recs, r)
		return plugin.Record{Seq: r.local, Line: r.line}, nil
	case <-f.done:
		return plugin.Record{}, f.ferr
	case <-ctx.Done():
		return plugin.Record{}, ctx.Err()
	}
}

// consumed records that the plugin took every record up to local seq n and
// returns the per-shard cursors that follow.
func (f *clusterFeed) consumed(n uint64) map[uint32]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := 0
	for k < len(f.recs) && f.recs[k].local <= n {
		f.cur[f.recs[k].shard] = f.recs[k].seq
		k++
	}
	f.recs = append(f.recs[:0], f.recs[k:]...)
	out := make(map[uint32]uint64, len(f.cur))
	for sh, seq := range f.cur {
		out[sh] = seq
	}
	return out
}

func formatCursors(cur map[uint32]uint64) string {
	if len(cur) == 0 {
		return "(none: every shard from its oldest change)"
	}
	shs := make([]uint32, 0, len(cur))
	for sh := range cur {
		shs = append(shs, sh)
	}
	sort.Slice(shs, func(i, j int) bool { return shs[i] < shs[j] })
	var b strings.Builder
	for i, sh := range shs {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d:%d", sh, cur[sh])
	}
	return b.String()
}

const cursorFileHeader = `# kura kv watch --plugin: per shard, the sequence number of the last change
# the plugin took (SHARD:SEQ). Written by kura; edit only while no watch runs.
`

// readCursorFile reads a cursor file; a missing file holds no cursors.
func readCursorFile(path string) (map[uint32]uint64, error) {
	cur := map[uint32]uint64{}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return cur, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cursor file: %w", err)
	}
	for i, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		sh, seq, err := parseShardSeq(l)
		if err != nil {
			return nil, usagef("cursor file %s line %d: %q: want SHARD:SEQ (e.g. 3:120), shards counted from 1", path, i+1, l)
		}
		if _, dup := cur[sh]; dup {
			return nil, usagef("cursor file %s line %d: shard %d listed twice", path, i+1, sh)
		}
		cur[sh] = seq
	}
	return cur, nil
}

// writeCursorFile replaces the cursor file atomically and durably: a
// temporary file is written and synced, renamed over the old one, and the
// directory synced.
func writeCursorFile(path string, cur map[uint32]uint64) error {
	var b bytes.Buffer
	b.WriteString(cursorFileHeader)
	if len(cur) > 0 {
		b.WriteString(strings.ReplaceAll(formatCursors(cur), ",", "\n"))
		b.WriteByte('\n')
	}
	tmp := path + ".tmp"
	fail := func(err error) error {
		os.Remove(tmp)
		return fmt.Errorf("write cursor file %s: %w", path, err)
	}
	t, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fail(err)
	}
	if _, err := t.Write(b.Bytes()); err != nil {
		t.Close()
		return fail(err)
	}
	if err := t.Sync(); err != nil {
		t.Close()
		return fail(err)
	}
	if err := t.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("write cursor file %s: sync directory: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write cursor file %s: sync directory: %w", path, err)
	}
	return nil
}

// lockCursorFile makes sure one watch at a time uses a cursor file: it holds
// an flock on PATH.lock (released when the process exits, however).
func lockCursorFile(path string) (func(), error) {
	lp := path + ".lock"
	lf, err := os.OpenFile(lp, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cursor file %s: lock: %w", path, err)
	}
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lf.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("cursor file %s is in use by another 'kura kv watch' (it holds %s)", path, lp)
		}
		return nil, fmt.Errorf("cursor file %s: lock %s: %w", path, lp, err)
	}
	return func() { lf.Close() }, nil
}
