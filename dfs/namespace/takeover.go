package namespace

import (
	"context"
	"log/slog"
	"math"
	"sync"

	"github.com/kura-dev/kura/dfs/dal"
	"github.com/kura-dev/kura/dfs/hdfs"
)

// Reasons of the RecoveryInProgressException a takeover answers, as HDFS's
// FSNamesystem.recoverLeaseInternal words them.
const (
	reasonRecoveryStarted = "lease recovery is in progress. Try again later."
	reasonRecoveryRunning = "another recovery is in progress by "
)

// takeovers runs the block recoveries that writers taking a file over
// start (see SetBlockRecoverer), in the background.
type takeovers struct {
	mu      sync.Mutex
	rec     BlockRecoverer
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	closed  bool
	running map[int64]int // inode id -> recoveries of its last block running here
	wg      sync.WaitGroup
}

// SetBlockRecoverer has a writer that takes a file over from a writer
// whose lease passed the soft limit (Append, Create without overwrite) go
// through block recovery with rec first, as HDFS's does: when the file's
// last block is still being written with replicas recorded, the call puts
// the block under recovery, answers a RecoveryInProgressException ("...
// lease recovery is in progress. Try again later."), which clients retry,
// and recovers the block in the background (then closes the file, as
// lease recovery does), so that the file keeps what the old writer
// hflushed and the retry finds it closed. ctx bounds the background
// recoveries (its end, or Close, stops them, leaving their blocks under
// recovery for a later one to take up); log reports their outcome (nil:
// slog.Default()). Call it before serving. Without it a takeover closes
// the file at once with the block lengths recorded.
func (ns *Namespace) SetBlockRecoverer(ctx context.Context, rec BlockRecoverer, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	t := &ns.takeovers
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cancel != nil {
		t.cancel()
	}
	t.rec, t.log = rec, log
	t.ctx, t.cancel = context.WithCancel(ctx)
	if t.running == nil {
		t.running = map[int64]int{}
	}
}

// recoverer returns the BlockRecoverer takeovers use (nil: none).
func (t *takeovers) recoverer() BlockRecoverer {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	return t.rec
}

// isRunning reports whether a recovery of file id's last block runs here.
func (t *takeovers) isRunning(id int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.running[id] > 0
}

// enter records a recovery of file id's last block running here; leave
// ends it.
func (t *takeovers) enter(id int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running == nil {
		t.running = map[int64]int{}
	}
	t.running[id]++
}

// leave ends a recovery enter recorded.
func (t *takeovers) leave(id int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running[id]--; t.running[id] <= 0 {
		delete(t.running, id)
	}
}

// close stops the background recoveries and waits for them.
func (t *takeovers) close() {
	t.mu.Lock()
	t.closed = true
	if t.cancel != nil {
		t.cancel()
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// takeover is a block recovery a takeover put in place, to be started once
// its transaction committed.
type takeover struct {
	br     *BlockRecovery
	holder string // the file's writer, whose lease passed the soft limit
	inode  int64
}

// takeoverRecovery is block recovery's part in a takeover, inside tx: the
// file in (write-locked, its blocks listed) is being written by another
// client whose lease passed the soft limit, and the caller (op, for holder
// on machine) wants it. With a BlockRecoverer set and the last block
// unfinished with replicas recorded, the file is not taken over now: the
// block is put under recovery and the takeover returned, to be started
// with startTakeover once tx commits and answered with takeoverBusy; a
// recovery of the block already running here is a RecoveryInProgress
// error at once. nil, nil: the file may be taken over now (closed with
// the lengths recorded).
func (ns *Namespace) takeoverRecovery(ctx context.Context, tx dal.Tx, op hdfs.LeaseOp, path, holder, machine string, in *dal.Inode, blocks []*dal.Block) (*takeover, error) {
	if ns.takeovers.recoverer() == nil || len(blocks) == 0 {
		return nil, nil
	}
	if last := blocks[len(blocks)-1]; last.State == dal.BlockUnderRecovery && ns.takeovers.isRunning(in.ID) {
		return nil, recoveryRunning(op, path, holder, machine, in)
	}
	br, err := ns.markUnderRecovery(ctx, tx, in, blocks, path)
	if err != nil || br == nil {
		return nil, err
	}
	return &takeover{br: br, holder: in.ClientName, inode: in.ID}, nil
}

// recoveryRunning is the RecoveryInProgressException of a writer that
// wants the file in while its last block's recovery runs.
func recoveryRunning(op hdfs.LeaseOp, path, holder, machine string, in *dal.Inode) error {
	return hdfs.RecoveryInProgress(op, path, holder, machine, reasonRecoveryRunning+in.ClientName+" on "+in.ClientMachine)
}

// takeoverBusy is the answer to the takeover that started a recovery.
func takeoverBusy(op hdfs.LeaseOp, path, holder, machine string) error {
	return hdfs.RecoveryInProgress(op, path, holder, machine, reasonRecoveryStarted)
}

// startTakeover runs tk's recovery in the background (see
// SetBlockRecoverer): the datanodes recover the block, then the file is
// closed as lease recovery closes it, whatever its writer's lease became
// meanwhile (it passed the soft limit, and the block fences the writer
// off). A namespace closed meanwhile starts nothing: the block stays under
// recovery for the next takeover or lease recovery.
func (ns *Namespace) startTakeover(tk *takeover) {
	t := &ns.takeovers
	t.mu.Lock()
	if t.closed || t.rec == nil {
		t.mu.Unlock()
		return
	}
	rec, log, ctx := t.rec, t.log, t.ctx
	t.wg.Add(1)
	t.mu.Unlock()
	t.enter(tk.inode)
	go func() {
		defer t.wg.Done()
		defer t.leave(tk.inode)
		lp := &dal.LeasePath{InodeID: tk.inode, Holder: tk.holder, Path: tk.br.Path}
		closed, err := ns.finishBlockRecovery(ctx, tk.holder, lp, math.MaxInt64, ns.now(), rec, tk.br)
		switch {
		case err != nil:
			log.Warn("block recovery for a takeover failed; the block stays under recovery", "path", tk.br.Path,
				"block", tk.br.Block.BlockID, "recovery", tk.br.RecoveryID, "err", err)
		case closed:
			log.Info("file closed by block recovery for a takeover", "path", tk.br.Path, "block", tk.br.Block.BlockID,
				"recovery", tk.br.RecoveryID, "holder", tk.holder)
		default:
			log.Info("block recovery for a takeover superseded: the file moved on", "path", tk.br.Path,
				"block", tk.br.Block.BlockID, "recovery", tk.br.RecoveryID)
		}
	}()
}
