package namenode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kura-dev/kura/dfs/datanode"
	"github.com/kura-dev/kura/dfs/dnmanager"
	"github.com/kura-dev/kura/dfs/namespace"
	"github.com/kura-dev/kura/proto/dfspb"
)

// DefaultRecoveryTimeout bounds the datanode calls of one block recovery.
const DefaultRecoveryTimeout = 30 * time.Second

// blockRecoverer is the namenode's namespace.BlockRecoverer: it calls the
// live datanodes holding a block's replicas directly (HDFS has a primary
// datanode do this on the namenode's command; kura's namenode, which
// already knows every datanode's address, does it itself), within a
// timeout.
type blockRecoverer struct {
	dnm     *dnmanager.Manager
	dn      *datanode.Client
	timeout time.Duration
	log     *slog.Logger
}

// replicaAnswer is one datanode's answer to InitReplicaRecovery.
type replicaAnswer struct {
	t    namespace.Target
	info datanode.ReplicaInfo
	err  error
}

// RecoverBlock implements namespace.BlockRecoverer (HDFS's
// BlockRecoveryWorker.syncBlock): every live holder reports its replica
// (its writer stopped); the length is a finalized replica's if there is
// one, else the shortest among the replicas being written, leaving out
// replicas shorter than the length the writer's hflush recorded; the
// replicas of that length (at least) are cut to it and finalized under the
// recovery id.
func (r *blockRecoverer) RecoverBlock(ctx context.Context, br namespace.BlockRecovery) (namespace.RecoveredBlock, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	b := datanode.Block{ID: uint64(br.Block.BlockID), GenStamp: uint64(max(br.Block.GenerationStamp, 0))}
	rid := uint64(br.RecoveryID)
	log := r.log.With("path", br.Path, "block", b.String(), "recovery", rid)
	fail := func(err error) (namespace.RecoveredBlock, error) {
		log.Warn("block recovery failed; the file is closed with the lengths recorded", "err", err)
		return namespace.RecoveredBlock{}, fmt.Errorf("recover %s of %s: %w", b, br.Path, err)
	}
	targets := r.dnm.Resolve(br.Targets)
	if len(targets) == 0 {
		return fail(fmt.Errorf("none of the %d datanodes with a replica is live", len(br.Targets)))
	}

	answers := make([]replicaAnswer, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			info, err := r.dn.InitReplicaRecovery(ctx, t.Addr, b, rid)
			answers[i] = replicaAnswer{t: t, info: info, err: err}
		})
	}
	wg.Wait()
	length, chosen, errs := agree(answers, br.Block.NumBytes)
	if len(chosen) == 0 {
		return fail(fmt.Errorf("no replica to recover from: %w", errors.Join(errs...)))
	}

	done := make([]bool, len(chosen))
	uerrs := make([]error, len(chosen))
	for i, t := range chosen {
		wg.Go(func() {
			_, err := r.dn.UpdateReplicaUnderRecovery(ctx, t.Addr, b, rid, length)
			done[i], uerrs[i] = err == nil, err
		})
	}
	wg.Wait()
	var res namespace.RecoveredBlock
	res.Length = length
	for i, t := range chosen {
		if done[i] {
			res.Storages = append(res.Storages, t.StorageID)
		}
	}
	if len(res.Storages) == 0 {
		return fail(fmt.Errorf("no replica could be finalized at %d bytes: %w", length, errors.Join(uerrs...)))
	}
	log.Info("block recovered", "length", length, "replicas", len(res.Storages), "asked", len(targets),
		"failed", errors.Join(append(errs, uerrs...)...))
	return res, nil
}

// agree picks the recovered length from the datanodes' answers and the
// replicas that take part: a finalized replica's length if any (and the
// replicas of at least that length), else the shortest replica being
// written; replicas shorter than minLength (the recorded, acknowledged
// length) are left out. It also returns the answers' errors.
func agree(answers []replicaAnswer, minLength int64) (int64, []namespace.Target, []error) {
	var errs []error
	var ok []replicaAnswer
	finalized := int64(-1)
	for _, a := range answers {
		switch {
		case a.err != nil:
			errs = append(errs, a.err)
		case a.info.Length < minLength:
			errs = append(errs, fmt.Errorf("%s: the replica has %d bytes, fewer than the %d recorded", a.t.Addr, a.info.Length, minLength))
		default:
			ok = append(ok, a)
			if a.info.Finalized && finalized < 0 {
				finalized = a.info.Length
			}
		}
	}
	length := finalized
	if length < 0 {
		for _, a := range ok {
			if length < 0 || a.info.Length < length {
				length = a.info.Length
			}
		}
	}
	var chosen []namespace.Target
	for _, a := range ok {
		if a.info.Length >= length && !(a.info.Finalized && a.info.Length != length) {
			chosen = append(chosen, a.t)
		}
	}
	return length, chosen, errs
}

// recoverer returns the namenode's BlockRecoverer (nil without the
// datanode protocol, when lease recovery keeps the recorded lengths).
func (n *Namenode) recoverer() namespace.BlockRecoverer {
	if n.rec == nil {
		return nil
	}
	return n.rec
}

// Fsync records the length the writer's hflush got acknowledged.
func (s *clientRPC) Fsync(ctx context.Context, req *dfspb.FsyncRequest) (*dfspb.FsyncResponse, error) {
	if req.Block == nil {
		return nil, rpcError(fmt.Errorf("fsync %s: no block", req.Path))
	}
	if err := s.ns.FsyncFile(ctx, fileRef(req.Path, req.FileId), req.ClientName, int64(req.Block.Id), req.LastBlockLength); err != nil {
		return nil, rpcError(err)
	}
	return &dfspb.FsyncResponse{}, nil
}
